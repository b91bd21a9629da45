//! What a hostile peer can make the verifier do, over real loopback TLS: resume a session
//! past a pin that was removed, or make the store write (quarantine, audit log) before it
//! proved it holds the key of the certificate it presents.
//!
//! The promise under test: a certificate that is not an active pin of the endpoint *now* is
//! never accepted, whether by a full handshake or by resuming a session; and a peer that
//! has not proved its key writes nothing, while one that has writes a bounded amount.

mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};
use tempfile::TempDir;
use tls::{connect, identity, signer, Identity, KeyKind, Server, Version, VERSIONS};
use tofu_core::{
    audit::AuditEvent,
    pin::{PinSource, PinState},
    Endpoint, Fingerprint, Policy, Store, TofuClientConfigs, TofuError, TofuVerifier,
};

fn store() -> (TempDir, Arc<Store>) {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    (dir, store)
}

fn endpoint_of(server: &Server) -> Endpoint {
    Endpoint::new("127.0.0.1", server.addr.port()).unwrap()
}

fn tofu_error(e: &std::io::Error) -> TofuError {
    TofuError::from_io(e)
        .unwrap_or_else(|| panic!("expected a TofuError, got {e}"))
        .clone()
}

fn audit(store: &Store, endpoint: &Endpoint) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    store
        .for_each_audit(Some(endpoint), |e| {
            events.push(e.event);
            ControlFlow::Continue(())
        })
        .unwrap();
    events
}

/// A connection whose handshake completed but whose first bytes after it (TLS 1.3 session
/// tickets among them) have not been read yet: a client that is slow to read.
struct Unread(StreamOwned<ClientConnection, TcpStream>);

fn handshake_only(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &ServerName<'static>,
) -> Unread {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = ClientConnection::new(config.clone(), name.clone()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    Unread(StreamOwned::new(conn, sock))
}

impl Unread {
    /// Reads what the server sent after the handshake (the tickets, then `hello`) and closes.
    fn finish(mut self) {
        let mut hello = [0u8; 6];
        self.0.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello\n");
        let _ = self.0.write_all(b"ping");
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
    }
}

/// The ways an operator takes a certificate out of an endpoint's active pins.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// `tofu-certs deletecert`.
    Delete,
    /// `tofu-certs accept` (a compare-and-swap to another certificate).
    Replace,
    /// A staged pin presented by another server of the endpoint, and promoted.
    Promote,
}

fn change(store: &Store, endpoint: &Endpoint, how: Change, other: &Identity) {
    let current = store.endpoint(endpoint).unwrap().pins[0].fingerprint();
    match how {
        Change::Delete => {
            store.remove_endpoint(endpoint).unwrap();
        }
        Change::Replace => {
            store
                .replace_pin(endpoint, &current, &other.cert, PinSource::Accepted)
                .unwrap();
        }
        Change::Promote => {
            store
                .add_pin(endpoint, &other.cert, PinState::Next, None)
                .unwrap();
            let fp = Fingerprint::of(&other.cert);
            store.promote_staged(endpoint, &fp).unwrap().unwrap();
        }
    }
}

/// The attack of issue 11: a TLS 1.3 ticket reaches the client after the pin it was verified
/// against left the active set; meanwhile another connection made the verifier read the new
/// pins. The ticket must not be usable: the next connection does a full handshake, and is
/// refused (or, after a deletion under trust-on-first-use, pins again).
#[test]
fn a_ticket_that_arrives_after_the_pin_changed_never_resumes_past_it() {
    for how in [Change::Delete, Change::Replace, Change::Promote] {
        for policy in [Policy::trust_on_first_use(), Policy::strict()] {
            let (_dir, store) = store();
            let old = identity("prime-sec", KeyKind::Ecdsa);
            let new = identity("prime-sec", KeyKind::Ecdsa);
            let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
            let endpoint = endpoint_of(&server);
            if !policy.pins_on_first_use() {
                store
                    .add_pin(&endpoint, &old.cert, PinState::Active, None)
                    .unwrap();
            }
            // Through the per-endpoint configs, as a service would.
            let configs = TofuClientConfigs::new(store.clone(), policy.clone());
            let config = configs.client_config(&endpoint).unwrap();
            let name = endpoint.server_name();
            // A first connection, so that resumption demonstrably works while nothing changes.
            connect(&config, server.addr, &name).unwrap();
            assert_eq!(
                connect(&config, server.addr, &name).unwrap().kind,
                HandshakeKind::Resumed,
                "{how:?}: resumption works while the pin stays"
            );

            let slow = handshake_only(&config, server.addr, &name);
            change(&store, &endpoint, how, &new);
            // Another connection reads the new pins (it finds no ticket it may use: the old
            // ones were verified against the old pin).
            if let Ok(c) = connect(&config, server.addr, &name) {
                assert_eq!(c.kind, HandshakeKind::Full, "{how:?} {policy:?}: resumed");
            }
            // Only now does the slow client read its tickets.
            slow.finish();

            let still_old = store
                .endpoint(&endpoint)
                .unwrap()
                .active()
                .any(|p| p.der == old.cert);
            match connect(&config, server.addr, &name) {
                // Pinned again on first use (after a deletion): resuming is then right.
                Ok(_) => assert!(
                    still_old,
                    "{how:?} {policy:?}: connected to a certificate that is not pinned"
                ),
                Err(e) => {
                    assert!(!still_old, "{how:?} {policy:?}: {e}");
                    assert!(
                        matches!(
                            tofu_error(&e),
                            TofuError::Mismatch(_) | TofuError::NotPinned(_)
                        ),
                        "{how:?} {policy:?}: {e}"
                    );
                }
            }
        }
    }
}

/// TLS 1.2 stores a session at the end of the handshake; a session stored under one pin
/// must not be resumed once that pin is gone, for session IDs and tickets alike.
#[test]
fn a_tls12_session_never_outlives_its_pin() {
    for how in [Change::Delete, Change::Replace, Change::Promote] {
        let (_dir, store) = store();
        let old = identity("prime-sec", KeyKind::Ecdsa);
        let new = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls12);
        let endpoint = endpoint_of(&server);
        store
            .add_pin(&endpoint, &old.cert, PinState::Active, None)
            .unwrap();
        let configs = TofuClientConfigs::new(store.clone(), Policy::strict());
        let config = configs.client_config(&endpoint).unwrap();
        let name = endpoint.server_name();
        connect(&config, server.addr, &name).unwrap();
        assert_eq!(
            connect(&config, server.addr, &name).unwrap().kind,
            HandshakeKind::Resumed
        );
        change(&store, &endpoint, how, &new);
        let err = connect(&config, server.addr, &name).unwrap_err();
        assert!(
            matches!(
                tofu_error(&err),
                TofuError::Mismatch(_) | TofuError::NotPinned(_)
            ),
            "{how:?}: {err}"
        );
    }
}

/// Run as a child process by the test below: deletes the endpoint named in the environment
/// from the store named there, as `tofu-certs deletecert` run by an operator would.
#[test]
#[ignore = "run as a child process by another test"]
fn child_process_deletes_the_endpoint() {
    let Ok(dir) = std::env::var("HOSTILE_PEERS_STORE") else {
        return;
    };
    let endpoint: Endpoint = std::env::var("HOSTILE_PEERS_ENDPOINT")
        .unwrap()
        .parse()
        .unwrap();
    let removed = Store::open_existing(dir)
        .unwrap()
        .remove_endpoint(&endpoint)
        .unwrap();
    assert_eq!(removed.pins.len(), 1);
}

#[test]
fn a_pin_deleted_by_another_process_invalidates_the_tickets_this_one_holds() {
    let (dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store
        .add_pin(&endpoint, &old.cert, PinState::Active, None)
        .unwrap();
    let configs = TofuClientConfigs::new(store.clone(), Policy::strict());
    let config = configs.client_config(&endpoint).unwrap();
    let name = endpoint.server_name();
    connect(&config, server.addr, &name).unwrap();
    let slow = handshake_only(&config, server.addr, &name);

    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_deletes_the_endpoint",
            "--ignored",
            "--quiet",
        ])
        .env("HOSTILE_PEERS_STORE", dir.path().join("store"))
        .env("HOSTILE_PEERS_ENDPOINT", endpoint.to_string())
        .status()
        .unwrap();
    assert!(status.success());

    slow.finish();
    let err = connect(&config, server.addr, &name).unwrap_err();
    assert!(
        matches!(tofu_error(&err), TofuError::NotPinned(_)),
        "the tickets held from before the deletion must not resume: {err}"
    );
}

/// After a resumed handshake the peer's certificate is known again (the one the session was
/// verified with); `TofuVerifier::check_connection` says whether it is still pinned.
#[test]
fn a_connection_can_be_checked_against_the_pins_after_it_resumed() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let old = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![old.cert.clone()], &old.key, version);
        let endpoint = endpoint_of(&server);
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .build()
            .unwrap();
        let config = verifier.client_config();
        let name = endpoint.server_name();
        connect(&config, server.addr, &name).unwrap();
        let Unread(tls) = handshake_only_or_resumed(&config, server.addr, &name);
        verifier.check_connection(&tls.conn).unwrap();
        store.remove_endpoint(&endpoint).unwrap();
        let err = verifier.check_connection(&tls.conn).unwrap_err();
        assert!(matches!(err, TofuError::NotPinned(_)), "{version:?}: {err}");
    }
}

fn handshake_only_or_resumed(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &ServerName<'static>,
) -> Unread {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = ClientConnection::new(config.clone(), name.clone()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    Unread(StreamOwned::new(conn, sock))
}

/// A certificate of about `extra` bytes more than usual, for `key`.
fn padded_cert(key: &KeyPair, extra: usize) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["prime-sec".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 55555, 1],
            vec![0x41; extra],
        ));
    params.self_signed(key).unwrap().der().clone()
}

fn store_state(store: &Store, endpoint: &Endpoint) -> (usize, usize, usize) {
    let record = store.endpoint(endpoint).unwrap();
    (
        record.pins.len(),
        record.quarantined.len(),
        audit(store, endpoint).len(),
    )
}

/// A server that copied a certificate but does not hold its key cannot plant it in the
/// quarantine or the audit log: the refusal is reported, and nothing is written.
#[test]
fn a_peer_that_does_not_prove_its_key_writes_nothing() {
    for version in VERSIONS {
        for strict in [false, true] {
            let (_dir, store) = store();
            let pinned = identity("prime-sec", KeyKind::Ecdsa);
            let copied = identity("prime-sec", KeyKind::Ecdsa);
            let impostor = identity("impostor", KeyKind::Ecdsa);
            // Presents `copied` (someone else's certificate) but signs with its own key.
            let server =
                Server::start_signed(vec![copied.cert.clone()], signer(&impostor.key), version);
            let endpoint = endpoint_of(&server);
            if !strict {
                store
                    .add_pin(&endpoint, &pinned.cert, PinState::Active, None)
                    .unwrap();
            }
            let policy = if strict {
                Policy::strict()
            } else {
                Policy::trust_on_first_use()
            };
            let before = store_state(&store, &endpoint);
            let configs = TofuClientConfigs::new(store.clone(), policy);
            let config = configs.client_config(&endpoint).unwrap();
            for _ in 0..3 {
                let err = connect(&config, server.addr, &endpoint.server_name()).unwrap_err();
                let error = tofu_error(&err);
                match (&error, strict) {
                    (TofuError::Mismatch(m), false) => assert!(!m.quarantined),
                    (TofuError::NotPinned(n), true) => assert!(!n.quarantined),
                    other => panic!("{version:?} strict={strict}: {other:?}"),
                }
                let text = error.to_string();
                assert!(
                    text.contains("did not prove"),
                    "the message says why nothing was recorded: {text}"
                );
            }
            assert_eq!(
                store_state(&store, &endpoint),
                before,
                "{version:?} strict={strict}: nothing written"
            );
        }
    }
}

/// A peer that does hold its key and presents the same refused certificate again and again
/// is one quarantine entry with a count, and one audit entry.
#[test]
fn repeated_refusals_of_one_certificate_coalesce() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let pinned = identity("prime-sec", KeyKind::Ecdsa);
        let other = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![other.cert.clone()], &other.key, version);
        let endpoint = endpoint_of(&server);
        store
            .add_pin(&endpoint, &pinned.cert, PinState::Active, None)
            .unwrap();
        let config = TofuClientConfigs::new(store.clone(), Policy::default())
            .client_config(&endpoint)
            .unwrap();
        for _ in 0..20 {
            let err = connect(&config, server.addr, &endpoint.server_name()).unwrap_err();
            assert!(matches!(tofu_error(&err), TofuError::Mismatch(m) if m.quarantined));
        }
        let record = store.endpoint(&endpoint).unwrap();
        assert_eq!(record.quarantined.len(), 1);
        assert_eq!(record.quarantined[0].times_seen, 20);
        assert!(record.quarantined[0].first_seen <= record.quarantined[0].last_seen);
        let refusals = audit(&store, &endpoint)
            .into_iter()
            .filter(|e| *e == AuditEvent::MismatchRejected)
            .count();
        assert_eq!(refusals, 1, "{version:?}");
    }
}

/// A flood of distinct large certificates, each with its key proved: the quarantine stays
/// bounded in entries and bytes, the audit log stays bounded, and the certificate that was
/// quarantined first since the last change (the one the operator is reading about) is still
/// there to be accepted.
#[test]
fn a_flood_of_distinct_certificates_cannot_evict_the_first_refusal_or_grow_the_store() {
    let (dir, store) = store();
    let pinned = identity("prime-sec", KeyKind::Ecdsa);
    let legit = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![legit.cert.clone()], &legit.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store
        .add_pin(&endpoint, &pinned.cert, PinState::Active, None)
        .unwrap();
    let config = TofuClientConfigs::new(store.clone(), Policy::default())
        .client_config(&endpoint)
        .unwrap();
    let name = endpoint.server_name();
    connect(&config, server.addr, &name).unwrap_err();
    let db = dir
        .path()
        .join("store")
        .join(tofu_core::store::DATABASE_FILE);
    let before = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len());

    // The figure: a thousand handshakes (about two seconds here).
    let flood = 1000;
    for _ in 0..flood {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let big = padded_cert(&key, 60 * 1024);
        server.set_signed(
            vec![big],
            signer(&PrivatePkcs8KeyDer::from(key.serialize_der())),
        );
        connect(&config, server.addr, &name).unwrap_err();
    }
    let record = store.endpoint(&endpoint).unwrap();
    assert!(
        record.quarantined.len() <= 8,
        "{}",
        record.quarantined.len()
    );
    let bytes: usize = record.quarantined.iter().map(|q| q.der.len()).sum();
    assert!(bytes <= 512 * 1024, "{bytes} bytes quarantined");
    assert!(
        record.quarantined.iter().any(|q| q.der == legit.cert),
        "the first refusal since the last change survives the flood"
    );
    let logged = audit(&store, &endpoint).len();
    assert!(
        logged < 30,
        "the audit log coalesced the flood: {logged} entries"
    );

    // Closed, the store's write-ahead log is checkpointed into the database and removed:
    // what stays is the database file.
    drop(config);
    let store = Arc::into_inner(store).expect("the last reference");
    drop(store);
    assert!(!std::path::Path::new(&format!("{}-wal", db.display())).exists());
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(
        after < before + 1024 * 1024,
        "{flood} certificates of 60 kB grew the store from {before} to {after} bytes"
    );

    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    let fp = Fingerprint::of(&legit.cert);
    store.accept_quarantined(&endpoint, &fp).unwrap();
    server.set_identity(&legit);
    let config = TofuClientConfigs::new(store.clone(), Policy::default())
        .client_config(&endpoint)
        .unwrap();
    connect(&config, server.addr, &name).expect("the accepted certificate is trusted");
}
