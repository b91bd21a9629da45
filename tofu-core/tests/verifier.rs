//! The TOFU verifier over real loopback TCP with rustls servers, for TLS 1.2 and 1.3 and
//! ECDSA, Ed25519 and RSA keys.

mod tls;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, HandshakeKind};
use tempfile::TempDir;
use tls::{client_error, connect, identity, KeyKind, Server, Version, KEY_KINDS, VERSIONS};
use tofu_core::{
    audit::AuditEvent,
    pin::{PinMatch, PinSource, PinState},
    rejection::WhatChanged,
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

fn verifier(store: &Arc<Store>, endpoint: &Endpoint) -> Arc<TofuVerifier> {
    TofuVerifier::builder(store.clone(), endpoint.clone())
        .build()
        .unwrap()
}

fn name(endpoint: &Endpoint) -> ServerName<'static> {
    endpoint.server_name()
}

fn audit_events(store: &Store, endpoint: &Endpoint) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    store
        .for_each_audit(Some(endpoint), |e| {
            events.push(e.event);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    events
}

fn tofu_error(e: &std::io::Error) -> TofuError {
    TofuError::from_io(e)
        .unwrap_or_else(|| panic!("expected a TofuError, got {e}"))
        .clone()
}

#[test]
fn the_prime_story_pin_change_mismatch_delete_repin_for_every_key_and_version() {
    for version in VERSIONS {
        for kind in KEY_KINDS {
            let (_dir, store) = store();
            let old = identity("prime-sec", kind);
            let server = Server::start(vec![old.cert.clone()], &old.key, version);
            let endpoint = endpoint_of(&server);
            let config = verifier(&store, &endpoint).client_config();
            let ctx = format!("{version:?} {kind:?}");

            // First use: accepted and pinned.
            connect(&config, server.addr, &name(&endpoint))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let record = store.endpoint(&endpoint).unwrap();
            assert_eq!(record.pins.len(), 1, "{ctx}");
            let pin = &record.pins[0];
            assert_eq!(pin.der, old.cert, "{ctx}");
            assert_eq!(pin.source, PinSource::FirstUse);
            assert_eq!(
                pin.details.subject,
                "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-sec"
            );
            connect(&config, server.addr, &name(&endpoint))
                .expect("the pinned certificate matches");

            // The secondary generates a new key and CSR and restarts with the new certificate.
            let new = identity("prime-sec", kind);
            server.set_identity(&new);
            let err = connect(&config, server.addr, &name(&endpoint))
                .expect_err("a changed certificate must fail");
            let TofuError::Mismatch(m) = tofu_error(&err) else {
                panic!("{ctx}: {err}")
            };
            assert_eq!(m.endpoint, endpoint);
            assert_eq!(m.pinned[0].details.fingerprint, Fingerprint::of(&old.cert));
            assert_eq!(m.presented.fingerprint, Fingerprint::of(&new.cert));
            assert!(m.quarantined);
            // The server was told with a certificate alert, and got no application data.
            let seen = server.seen(3);
            let last = seen
                .iter()
                .find(|s| s.error.is_some())
                .expect("the server saw the failure");
            assert_eq!(
                last.error,
                Some(rustls::Error::AlertReceived(
                    AlertDescription::CertificateUnknown
                )),
                "{ctx}"
            );
            assert_eq!(last.app_bytes, 0);
            assert_eq!(
                store.endpoint(&endpoint).unwrap().quarantined[0].der,
                new.cert
            );

            // The operator deletes the pin; the next connection pins the new certificate.
            let removed = store.remove_endpoint(&endpoint).unwrap();
            assert_eq!(removed.pins.len(), 1);
            connect(&config, server.addr, &name(&endpoint)).expect("re-pins after deletecert");
            let record = store.endpoint(&endpoint).unwrap();
            assert_eq!(record.pins.len(), 1);
            assert_eq!(record.pins[0].der, new.cert, "{ctx}");
        }
    }
}

#[test]
fn the_mismatch_message_names_both_certificates_and_the_commands_that_fix_it() {
    let (dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    let new = identity("prime-sec", KeyKind::Ecdsa);
    server.set_identity(&new);
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    let rustls_err = client_error(&err);

    let old_fp = Fingerprint::of(&old.cert);
    let new_fp = Fingerprint::of(&new.cert);
    let store_dir = dir.path().join("store");
    let port = endpoint.port();
    // rustls prints `CertificateError::Other` with Debug, in `{}` and `{:?}` alike: the
    // whole message must survive both.
    for text in [format!("{rustls_err}"), format!("{rustls_err:?}")] {
        for needle in [
            format!("the certificate presented by 127.0.0.1:{port} does not match"),
            "Current certificate of the remote host is different from what was used earlier - CN=prime-sec".to_string(),
            format!("fingerprint  {old_fp}"),
            format!("fingerprint  {new_fp}"),
            "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-sec".to_string(),
            "pinned at".to_string(),
            "not after".to_string(),
            "man-in-the-middle".to_string(),
            "a new CSR, a redeployed server, an HA re-registration".to_string(),
            format!("tofu-certs accept host 127.0.0.1:{port} --fingerprint {new_fp} --store {}", store_dir.display()),
            format!("tofu-certs deletecert host 127.0.0.1_{port} --store {}", store_dir.display()),
        ] {
            assert!(text.contains(&needle), "missing {needle:?} in:\n{text}");
        }
    }
    let structured =
        TofuError::from_rustls(&rustls_err).expect("the structured error comes back out");
    assert!(matches!(structured, TofuError::Mismatch(_)));
}

#[test]
fn an_ha_pair_behind_one_endpoint_matches_either_pin() {
    let (_dir, store) = store();
    let primary = identity("prime-pri", KeyKind::Ecdsa);
    let secondary = identity("prime-sec", KeyKind::Ed25519);
    let a = Server::start(vec![primary.cert.clone()], &primary.key, Version::Tls13);
    let b = Server::start(vec![secondary.cert.clone()], &secondary.key, Version::Tls12);
    // The virtual IP's endpoint, answered by either node.
    let vip: Endpoint = "127.0.0.1:8082".parse().unwrap();
    store
        .add_pin(&vip, &primary.cert, PinState::Active, Some("HA primary"))
        .unwrap();
    store
        .add_pin(
            &vip,
            &secondary.cert,
            PinState::Active,
            Some("HA secondary"),
        )
        .unwrap();
    let config = verifier(&store, &vip).client_config();
    connect(&config, a.addr, &name(&vip)).expect("the primary's pin matches");
    connect(&config, b.addr, &name(&vip)).expect("the secondary's pin matches");

    let stranger = identity("prime-pri", KeyKind::Ecdsa);
    let c = Server::start(vec![stranger.cert.clone()], &stranger.key, Version::Tls13);
    let err = connect(&config, c.addr, &name(&vip)).unwrap_err();
    let TofuError::Mismatch(m) = tofu_error(&err) else {
        panic!("{err}")
    };
    assert_eq!(m.pinned.len(), 2);
    assert_eq!(store.endpoint(&vip).unwrap().active().count(), 2);
}

#[test]
fn a_staged_pin_is_promoted_on_first_sight_and_the_old_one_retired() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let old = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![old.cert.clone()], &old.key, version);
        let endpoint = endpoint_of(&server);
        let config = verifier(&store, &endpoint).client_config();
        connect(&config, server.addr, &name(&endpoint)).unwrap();

        let next = identity("prime-sec", KeyKind::Ecdsa);
        store
            .add_pin(
                &endpoint,
                &next.cert,
                PinState::Next,
                Some("rotation 2026-11"),
            )
            .unwrap();
        // Until the switch, the old certificate still matches.
        connect(&config, server.addr, &name(&endpoint)).unwrap();
        server.set_identity(&next);
        connect(&config, server.addr, &name(&endpoint)).expect("the staged pin is accepted");

        let record = store.endpoint(&endpoint).unwrap();
        assert_eq!(record.pins.len(), 1);
        assert_eq!(record.pins[0].der, next.cert);
        assert_eq!(record.pins[0].state, PinState::Active);
        assert_eq!(record.pins[0].label.as_deref(), Some("rotation 2026-11"));
        let events = audit_events(&store, &endpoint);
        assert_eq!(
            events,
            [
                AuditEvent::Pinned,
                AuditEvent::Staged,
                AuditEvent::Retired,
                AuditEvent::Promoted
            ]
        );

        // The retired certificate is no longer trusted.
        server.set_identity(&old);
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert!(matches!(tofu_error(&err), TofuError::Mismatch(_)));
    }
}

#[test]
fn a_quarantined_certificate_is_accepted_by_its_fingerprint() {
    let (_dir, store) = store();
    let old = identity("ISE-server", KeyKind::Rsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    let new = identity("ISE-server", KeyKind::Rsa);
    server.set_identity(&new);
    connect(&config, server.addr, &name(&endpoint)).unwrap_err();

    // A wrong fingerprint accepts nothing.
    let wrong = Fingerprint::of(b"something else");
    assert!(matches!(
        store.accept_quarantined(&endpoint, &wrong),
        Err(tofu_core::Error::NotQuarantined { .. })
    ));
    connect(&config, server.addr, &name(&endpoint)).unwrap_err();

    let accepted = store
        .accept_quarantined(&endpoint, &Fingerprint::of(&new.cert))
        .unwrap();
    assert_eq!(accepted.retired.len(), 1);
    connect(&config, server.addr, &name(&endpoint)).expect("the accepted certificate matches");
    assert_eq!(
        store.endpoint(&endpoint).unwrap().pins[0].source,
        PinSource::Accepted
    );
}

#[test]
fn a_server_presenting_a_pinned_certificate_without_its_key_is_rejected_and_changes_nothing() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let real = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![real.cert.clone()], &real.key, version);
        let endpoint = endpoint_of(&server);
        let config = verifier(&store, &endpoint).client_config();
        connect(&config, server.addr, &name(&endpoint)).unwrap();
        let before = store.endpoint(&endpoint).unwrap();
        let audit_before = audit_events(&store, &endpoint);

        // An impostor has the public certificate but signs with a key of its own.
        let impostor = identity("impostor", KeyKind::Ecdsa);
        server.set_signed(vec![real.cert.clone()], tls::signer(&impostor.key));
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert_eq!(
            client_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::BadSignature),
            "{version:?}"
        );
        assert_eq!(store.endpoint(&endpoint).unwrap(), before, "{version:?}");
        assert_eq!(audit_events(&store, &endpoint), audit_before);
    }
}

#[test]
fn a_first_use_server_presenting_someone_elses_certificate_pins_nothing() {
    for version in VERSIONS {
        for kind in [KeyKind::Ecdsa, KeyKind::Ed25519] {
            let (_dir, store) = store();
            let victim = identity("prime-pri", kind);
            let attacker = identity("attacker", kind);
            let server = Server::start_signed(
                vec![victim.cert.clone()],
                tls::signer(&attacker.key),
                version,
            );
            let endpoint = endpoint_of(&server);
            let config = verifier(&store, &endpoint).client_config();
            let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
            assert_eq!(
                client_error(&err),
                rustls::Error::InvalidCertificate(CertificateError::BadSignature),
                "{version:?} {kind:?}"
            );
            let record = store.endpoint(&endpoint).unwrap();
            assert!(
                record.pins.is_empty() && record.quarantined.is_empty(),
                "{version:?} {kind:?}"
            );
            assert!(audit_events(&store, &endpoint).is_empty());
        }
    }
}

#[test]
fn a_pinned_certificate_appended_after_a_different_leaf_does_not_satisfy_the_pin() {
    let (_dir, store) = store();
    let pinned = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![pinned.cert.clone()], &pinned.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();

    // CVE-2016-2402: the attacker's own leaf, with the pinned certificate as an "intermediate".
    let attacker = identity("prime-sec", KeyKind::Ecdsa);
    server.set_signed(
        vec![attacker.cert.clone(), pinned.cert.clone()],
        tls::signer(&attacker.key),
    );
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    let TofuError::Mismatch(m) = tofu_error(&err) else {
        panic!("{err}")
    };
    assert_eq!(m.presented.fingerprint, Fingerprint::of(&attacker.cert));
    let record = store.endpoint(&endpoint).unwrap();
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, pinned.cert);
    assert_eq!(record.quarantined[0].der, attacker.cert);
}

#[test]
fn eight_threads_racing_two_servers_for_one_new_endpoint_pin_exactly_one() {
    let (_dir, store) = store();
    let a_id = identity("node-a", KeyKind::Ecdsa);
    let b_id = identity("node-b", KeyKind::Ecdsa);
    let a = Server::start(vec![a_id.cert.clone()], &a_id.key, Version::Tls13);
    let b = Server::start(vec![b_id.cert.clone()], &b_id.key, Version::Tls13);
    let endpoint: Endpoint = "127.0.0.1:9443".parse().unwrap();
    let config = verifier(&store, &endpoint).client_config();
    let addrs = [a.addr, b.addr];

    let results: Vec<Vec<(usize, bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let config = config.clone();
                let endpoint = endpoint.clone();
                s.spawn(move || {
                    (0..100)
                        .map(|i| {
                            let which = (t + i) % 2;
                            let ok = match connect(&config, addrs[which], &name(&endpoint)) {
                                Ok(_) => true,
                                Err(e) => {
                                    assert!(
                                        matches!(tofu_error(&e), TofuError::Mismatch(_)),
                                        "{e}"
                                    );
                                    false
                                }
                            };
                            (which, ok)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let record = store.endpoint(&endpoint).unwrap();
    assert_eq!(record.pins.len(), 1, "exactly one pin");
    let winner = if record.pins[0].der == a_id.cert {
        0
    } else {
        1
    };
    for (which, ok) in results.into_iter().flatten() {
        assert_eq!(ok, which == winner, "every outcome agrees with the pin");
    }
}

#[test]
fn the_strict_policy_rejects_an_unpinned_endpoint_with_the_command_that_pins_it() {
    let (dir, store) = store();
    let id = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![id.cert.clone()], &id.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = TofuVerifier::builder(store.clone(), endpoint.clone())
        .policy(Policy::strict())
        .build()
        .unwrap()
        .client_config();
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    let e = tofu_error(&err);
    assert!(matches!(e, TofuError::NotPinned(_)));
    let text = e.to_string();
    let fp = Fingerprint::of(&id.cert);
    let store_arg = format!("--store {}", dir.path().join("store").display());
    // The command pins exactly the certificate whose fingerprint the operator checks, not
    // whatever a later handshake presents.
    assert!(
        text.contains(&format!(
            "tofu-certs accept host {endpoint} --fingerprint {fp} {store_arg}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tofu-certs addcert host {endpoint} --cert FILE {store_arg}"
        )),
        "{text}"
    );
    let record = store.endpoint(&endpoint).unwrap();
    assert!(record.pins.is_empty());
    assert_eq!(record.quarantined[0].der, id.cert);
    assert_eq!(
        audit_events(&store, &endpoint),
        [AuditEvent::UnpinnedRejected]
    );

    store.accept_quarantined(&endpoint, &fp).unwrap();
    connect(&config, server.addr, &name(&endpoint)).expect("accepted by fingerprint, then matched");
}

#[test]
fn a_verifier_refuses_a_server_name_it_was_not_built_for() {
    let (_dir, store) = store();
    let id = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![id.cert.clone()], &id.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    let other = ServerName::try_from("prime-sec").unwrap();
    let err = connect(&config, server.addr, &other).unwrap_err();
    assert!(matches!(
        tofu_error(&err),
        TofuError::WrongServerName { .. }
    ));
    assert!(store.endpoint(&endpoint).unwrap().pins.is_empty());
}

#[test]
fn matching_handshakes_write_nothing_to_the_store() {
    let (dir, store) = store();
    let id = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![id.cert.clone()], &id.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    // Another handle sees every commit, from any connection, as a new generation.
    let observer = Store::open_existing(dir.path().join("store")).unwrap();
    let before = observer.generation().unwrap();
    for _ in 0..20 {
        connect(&config, server.addr, &name(&endpoint)).unwrap();
    }
    assert_eq!(
        observer.generation().unwrap(),
        before,
        "a matching handshake committed a write"
    );
}

#[test]
fn no_session_is_resumed_across_a_change_of_the_pin() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let id = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![id.cert.clone()], &id.key, version);
        let endpoint = endpoint_of(&server);
        let config = verifier(&store, &endpoint).client_config();
        assert_eq!(
            connect(&config, server.addr, &name(&endpoint))
                .unwrap()
                .kind,
            HandshakeKind::Full
        );
        assert_eq!(
            connect(&config, server.addr, &name(&endpoint))
                .unwrap()
                .kind,
            HandshakeKind::Resumed,
            "{version:?}: resumption works while the pin stays"
        );

        // The pin is deleted (as by `tofu-certs deletecert`): the next connection verifies
        // the certificate again, which re-pins it.
        store.remove_endpoint(&endpoint).unwrap();
        assert_eq!(
            connect(&config, server.addr, &name(&endpoint))
                .unwrap()
                .kind,
            HandshakeKind::Full,
            "{version:?}"
        );
        assert_eq!(store.endpoint(&endpoint).unwrap().pins.len(), 1);

        // The pin is replaced by another certificate: the old sessions must not resume.
        let other = identity("prime-sec", KeyKind::Ecdsa);
        assert_eq!(
            connect(&config, server.addr, &name(&endpoint))
                .unwrap()
                .kind,
            HandshakeKind::Resumed
        );
        let current = store.endpoint(&endpoint).unwrap().pins[0].fingerprint();
        store
            .replace_pin(&endpoint, &current, &other.cert, PinSource::Operator)
            .unwrap();
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert!(
            matches!(tofu_error(&err), TofuError::Mismatch(_)),
            "{version:?}: {err}"
        );
    }
}

#[test]
fn client_configs_are_one_per_endpoint_and_cached() {
    let (_dir, store) = store();
    let configs = TofuClientConfigs::new(store.clone(), Policy::default());
    let a: Endpoint = "127.0.0.1:1001".parse().unwrap();
    let b: Endpoint = "127.0.0.1:1002".parse().unwrap();
    let ca = configs.client_config(&a).unwrap();
    assert!(Arc::ptr_eq(&ca, &configs.client_config(&a).unwrap()));
    assert!(!Arc::ptr_eq(&ca, &configs.client_config(&b).unwrap()));

    // Each endpoint's configuration pins its own port.
    let id = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![id.cert.clone()], &id.key, Version::Tls13);
    connect(&ca, server.addr, &name(&a)).unwrap();
    assert_eq!(store.endpoint(&a).unwrap().pins.len(), 1);
    assert!(store.endpoint(&b).unwrap().pins.is_empty());
}

#[test]
fn an_async_client_through_tokio_rustls_uses_the_same_verifier() {
    let (_dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut tls = connector
            .connect(name(&endpoint), tcp)
            .await
            .expect("first use over tokio");
        let mut hello = [0u8; 6];
        tls.read_exact(&mut hello).await.unwrap();
        tls.shutdown().await.unwrap();

        server.set_identity(&identity("prime-sec", KeyKind::Ecdsa));
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let err = connector.connect(name(&endpoint), tcp).await.unwrap_err();
        assert!(
            matches!(TofuError::from_io(&err), Some(TofuError::Mismatch(_))),
            "{err}"
        );
    });
    assert_eq!(store.endpoint(&endpoint).unwrap().pins[0].der, old.cert);
}

#[test]
fn with_roots_required_the_chain_must_validate_before_the_pin_is_considered() {
    let (_dir, store) = store();
    let authority = tls::ca("Prime Infra Root CA");
    let leaf = tls::issued_by(&authority, "prime-sec");
    let server = Server::start(vec![leaf.cert.clone()], &leaf.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.cert.clone()).unwrap();
    let config = TofuVerifier::builder(store.clone(), endpoint.clone())
        .require_chain(Arc::new(roots))
        .build()
        .unwrap()
        .client_config();
    connect(&config, server.addr, &name(&endpoint))
        .expect("a CA-issued certificate validates, then is pinned");
    assert_eq!(store.endpoint(&endpoint).unwrap().pins.len(), 1);

    // A self-signed certificate that is even pinned already fails the chain check first.
    let self_signed = identity("prime-sec", KeyKind::Ecdsa);
    store
        .add_pin(&endpoint, &self_signed.cert, PinState::Active, None)
        .unwrap();
    server.set_identity(&self_signed);
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    assert_eq!(
        client_error(&err),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
}

#[test]
fn with_names_required_a_certificate_not_valid_for_the_host_is_refused() {
    let (_dir, store) = store();
    let id = tls::identity_with("prime-sec", KeyKind::Ecdsa, |p| {
        p.subject_alt_names.truncate(1)
    });
    let server = Server::start(vec![id.cert.clone()], &id.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let strict_names = TofuVerifier::builder(store.clone(), endpoint.clone())
        .policy(Policy::trust_on_first_use().require_valid_name(true))
        .build()
        .unwrap()
        .client_config();
    let err = connect(&strict_names, server.addr, &name(&endpoint)).unwrap_err();
    assert!(
        matches!(
            client_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{err}"
    );
    assert!(store.endpoint(&endpoint).unwrap().pins.is_empty());
    // By default names are not checked: appliances rarely name the address they are reached by.
    connect(
        &verifier(&store, &endpoint).client_config(),
        server.addr,
        &name(&endpoint),
    )
    .unwrap();
}

#[test]
fn an_expired_pinned_certificate_is_still_accepted_and_replaced_only_when_the_policy_allows() {
    let (_dir, store) = store();
    let expired = tls::identity_with("prime-sec", KeyKind::Ecdsa, |p| {
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
        p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(35);
    });
    let server = Server::start(vec![expired.cert.clone()], &expired.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint))
        .expect("TOFU trusts the identity, not the dates");
    connect(&config, server.addr, &name(&endpoint)).expect("the expired pin still matches");

    let renewed = identity("prime-sec", KeyKind::Ecdsa);
    server.set_identity(&renewed);
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    assert!(
        matches!(tofu_error(&err), TofuError::Mismatch(_)),
        "by default a new certificate is a mismatch"
    );

    let lenient = TofuVerifier::builder(store.clone(), endpoint.clone())
        .policy(Policy::trust_on_first_use().replace_expired_pins(true))
        .build()
        .unwrap()
        .client_config();
    connect(&lenient, server.addr, &name(&endpoint)).expect("the expired pin is replaced");
    let record = store.endpoint(&endpoint).unwrap();
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, renewed.cert);
    assert_eq!(
        audit_events(&store, &endpoint).last(),
        Some(&AuditEvent::Replaced)
    );
}

/// `old`'s key in a new certificate valid one year longer: what `openssl req -new -key` and
/// `openssl x509 -req` make of a renewal that keeps the key.
fn renewal_of(old: &tls::Identity, cn: &str) -> tls::Identity {
    let key = rcgen::KeyPair::try_from(old.key.secret_pkcs8_der()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    tls::Identity {
        pem: cert.pem(),
        cert: cert.der().clone(),
        key: old.key.clone_key(),
    }
}

fn expiring_2030(cn: &str) -> tls::Identity {
    tls::identity_with(cn, KeyKind::Ecdsa, |p| {
        p.not_after = rcgen::date_time_ymd(2030, 1, 1)
    })
}

#[test]
fn a_key_pin_accepts_a_renewal_with_its_key_and_records_it_and_a_certificate_pin_refuses_it() {
    for version in VERSIONS {
        for matches in [PinMatch::Key, PinMatch::Certificate] {
            let (_dir, store) = store();
            let old = expiring_2030("prime-sec");
            let server = Server::start(vec![old.cert.clone()], &old.key, version);
            let endpoint = endpoint_of(&server);
            store
                .add_pin_matching(&endpoint, &old.cert, PinState::Active, None, matches, true)
                .unwrap();
            let config = verifier(&store, &endpoint).client_config();
            connect(&config, server.addr, &name(&endpoint)).unwrap();

            let new = renewal_of(&old, "prime-sec");
            server.set_identity(&new);
            let result = connect(&config, server.addr, &name(&endpoint));
            let record = store.endpoint(&endpoint).unwrap();
            let events = audit_events(&store, &endpoint);
            match matches {
                PinMatch::Key => {
                    result.expect("a renewal with the pinned key is accepted");
                    assert_eq!(record.pins.len(), 1, "{version:?}");
                    assert_eq!(record.pins[0].der, new.cert, "the pin holds the renewal");
                    assert_eq!(record.pins[0].matches, PinMatch::Key);
                    assert!(record.pins[0].first_seen.is_some());
                    assert_eq!(events, [AuditEvent::Added, AuditEvent::Renewed]);
                    // And from now on it is the exact certificate: accepted, nothing written.
                    connect(&config, server.addr, &name(&endpoint)).unwrap();
                    assert_eq!(audit_events(&store, &endpoint).len(), 2);
                }
                PinMatch::Certificate => {
                    let err = result.unwrap_err();
                    assert!(matches!(tofu_error(&err), TofuError::Mismatch(_)));
                    assert_eq!(record.pins[0].der, old.cert, "{version:?}");
                    assert_eq!(events, [AuditEvent::Added, AuditEvent::MismatchRejected]);
                }
            }
        }
    }
}

#[test]
fn a_renewal_presented_without_its_key_records_nothing() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let old = expiring_2030("prime-sec");
        let server = Server::start(vec![old.cert.clone()], &old.key, version);
        let endpoint = endpoint_of(&server);
        store
            .add_pin_matching(
                &endpoint,
                &old.cert,
                PinState::Active,
                None,
                PinMatch::Key,
                true,
            )
            .unwrap();
        let config = verifier(&store, &endpoint).client_config();
        let before = store.endpoint(&endpoint).unwrap();
        // Someone has a renewal's certificate (public), not the key it names.
        let new = renewal_of(&old, "prime-sec");
        let impostor = identity("impostor", KeyKind::Ecdsa);
        server.set_signed(vec![new.cert.clone()], tls::signer(&impostor.key));
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert_eq!(
            client_error(&err),
            rustls::Error::InvalidCertificate(CertificateError::BadSignature),
            "{version:?}"
        );
        assert_eq!(store.endpoint(&endpoint).unwrap(), before, "{version:?}");
        assert_eq!(audit_events(&store, &endpoint), [AuditEvent::Added]);
    }
}

#[test]
fn a_mismatch_says_whether_the_key_or_only_the_certificate_changed() {
    let (_dir, store) = store();
    let old = expiring_2030("prime-sec");
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
    let config = verifier(&store, &endpoint).client_config();
    let refusal = |id: &tls::Identity| {
        server.set_identity(id);
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        match tofu_error(&err) {
            TofuError::Mismatch(m) => (m.change(), m.to_string()),
            other => panic!("not a mismatch: {other}"),
        }
    };

    let renewal = renewal_of(&old, "prime-sec");
    let (change, text) = refusal(&renewal);
    assert_eq!(change, WhatChanged::SameKey);
    assert!(text.contains("the certificate, not the key"), "{text}");
    assert!(text.contains("likely benign"), "{text}");
    assert!(
        text.contains(&format!(
            "--fingerprint {} --match key",
            Fingerprint::of(&renewal.cert)
        )),
        "{text}"
    );

    // identity() gives the same subject (and, self-signed, issuer) with a new key.
    let (change, text) = refusal(&identity("prime-sec", KeyKind::Ecdsa));
    assert_eq!(change, WhatChanged::NewKeySameNames);
    assert!(
        text.contains("new public key under the same subject and issuer"),
        "{text}"
    );
    assert!(text.contains("suspicious"), "{text}");
    assert!(!text.contains("--match key"), "{text}");

    let (change, text) = refusal(&identity("someone-else", KeyKind::Ecdsa));
    assert_eq!(change, WhatChanged::NewKey);
    assert!(text.contains("the key and the names"), "{text}");
}

#[test]
fn a_service_hears_of_every_refusal_at_once_with_both_fingerprints_and_what_changed() {
    use std::sync::Mutex;
    use tofu_core::rejection::Refusal;

    let (_dir, store) = store();
    let old = expiring_2030("prime-sec");
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
    let heard: Arc<Mutex<Vec<Refusal>>> = Arc::default();
    let sink = heard.clone();
    let config = TofuVerifier::builder(store.clone(), endpoint.clone())
        .on_refusal(move |r| sink.lock().unwrap().push(r.clone()))
        .build()
        .unwrap()
        .client_config();

    connect(&config, server.addr, &name(&endpoint)).unwrap();
    assert!(heard.lock().unwrap().is_empty(), "a match is not a refusal");

    let renewal = renewal_of(&old, "prime-sec");
    server.set_identity(&renewal);
    connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    let stranger = identity("prime-sec", KeyKind::Ecdsa);
    server.set_identity(&stranger);
    connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    // Someone replaying the renewal without its key is heard of too, as unproved.
    let impostor = identity("impostor", KeyKind::Ecdsa);
    server.set_signed(vec![renewal.cert.clone()], tls::signer(&impostor.key));
    connect(&config, server.addr, &name(&endpoint)).unwrap_err();

    let heard = heard.lock().unwrap();
    let pinned = vec![Fingerprint::of(&old.cert)];
    let summary: Vec<_> = heard
        .iter()
        .map(|r| {
            assert_eq!(r.endpoint, endpoint);
            assert_eq!(r.pinned, pinned);
            (r.presented, r.change, r.key_changed(), r.key_proved)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Fingerprint::of(&renewal.cert),
                Some(WhatChanged::SameKey),
                false,
                true
            ),
            (
                Fingerprint::of(&stranger.cert),
                Some(WhatChanged::NewKeySameNames),
                true,
                true
            ),
            (
                Fingerprint::of(&renewal.cert),
                Some(WhatChanged::SameKey),
                false,
                false
            ),
        ]
    );
}

#[test]
fn a_panicking_refusal_callback_leaves_the_refusal_standing() {
    let (_dir, store) = store();
    let old = expiring_2030("prime-sec");
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
    let configs = TofuClientConfigs::new(store.clone(), Policy::trust_on_first_use())
        .on_refusal(|_| panic!("the service's callback has a bug"));
    let config = configs.client_config(&endpoint).unwrap();
    server.set_identity(&identity("other", KeyKind::Ecdsa));
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    assert!(matches!(tofu_error(&err), TofuError::Mismatch(_)));
    server.set_identity(&old);
    connect(&config, server.addr, &name(&endpoint)).expect("the verifier still works");
}

#[test]
fn status_is_critical_while_an_endpoint_is_refused_and_ok_once_the_operator_accepts() {
    use tofu_core::health::{Severity, Status};
    use tofu_core::timestamp::Timestamp;

    let (_dir, store) = store();
    let old = expiring_2030("prime-sec");
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
    let config = verifier(&store, &endpoint).client_config();
    let status = |days: i64| {
        let now = Timestamp::now();
        Status::from_store(
            &store,
            now,
            Timestamp::from_unix(now.unix() + days * 86_400),
        )
        .unwrap()
    };
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    assert_eq!(status(30).severity(), Severity::Ok);
    // Expiring in 2030: a warning with a horizon beyond it.
    let far = status(20 * 365);
    assert_eq!(far.severity(), Severity::Warning);
    assert_eq!(far.expiring[0].endpoint, endpoint);

    let new = identity("prime-sec", KeyKind::Ecdsa);
    server.set_identity(&new);
    for _ in 0..3 {
        connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    }
    let s = status(30);
    assert_eq!(s.severity(), Severity::Critical);
    assert_eq!(s.failing.len(), 1);
    let failing = &s.failing[0];
    assert_eq!(failing.refusals.endpoint, endpoint);
    assert_eq!(failing.refusals.count, 3);
    assert_eq!(
        failing.refusals.last_presented,
        Some(Fingerprint::of(&new.cert))
    );
    assert_eq!(failing.pinned, [Fingerprint::of(&old.cert)]);
    assert!(failing.refusals.since <= failing.refusals.last);

    store
        .accept_quarantined(&endpoint, &Fingerprint::of(&new.cert))
        .unwrap();
    assert_eq!(status(30).severity(), Severity::Ok);
    connect(&config, server.addr, &name(&endpoint)).unwrap();
}

#[test]
fn report_only_lets_a_mismatch_through_recorded_and_reported_exactly_like_a_refusal() {
    use std::sync::Mutex;
    use tofu_core::health::{Severity, Status};
    use tofu_core::rejection::Refusal;
    use tofu_core::timestamp::Timestamp;

    for version in VERSIONS {
        let (_dir, store) = store();
        let old = identity("prime-sec", KeyKind::Ecdsa);
        let new = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![new.cert.clone()], &new.key, version);
        let endpoint = endpoint_of(&server);
        store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
        let heard: Arc<Mutex<Vec<Refusal>>> = Arc::default();
        let sink = heard.clone();
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .on_refusal(move |r| sink.lock().unwrap().push(r.clone()))
            .build()
            .unwrap();
        let config = verifier.client_config();
        connect(&config, server.addr, &name(&endpoint)).unwrap_err();

        assert!(store.set_report_only(&endpoint, true).unwrap());
        assert!(!store.set_report_only(&endpoint, true).unwrap(), "already");
        // Let through, every time: never resumed, so each connection is verified and reported.
        for _ in 0..2 {
            let c = connect(&config, server.addr, &name(&endpoint))
                .unwrap_or_else(|e| panic!("{version:?}: report-only lets it through: {e}"));
            assert_eq!(c.kind, HandshakeKind::Full, "{version:?}");
        }
        let record = store.endpoint(&endpoint).unwrap();
        assert_eq!(record.pins.len(), 1);
        assert_eq!(record.pins[0].der, old.cert, "nothing was pinned");
        assert_eq!(
            record.quarantined[0].details.fingerprint,
            Fingerprint::of(&new.cert)
        );
        assert_eq!(record.quarantined[0].times_seen, 3);
        assert_eq!(
            audit_events(&store, &endpoint),
            [
                AuditEvent::Added,
                AuditEvent::MismatchRejected,
                AuditEvent::ReportOnly
            ],
            "a repeat of one certificate is counted, not logged again"
        );
        let let_through: Vec<bool> = heard
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.let_through)
            .collect();
        assert_eq!(let_through, [false, true, true]);
        let now = Timestamp::now();
        let status = Status::from_store(&store, now, now).unwrap();
        // Reported, and a warning: in report-only mode nothing is refused.
        assert_eq!(status.severity(), Severity::Warning);
        assert_eq!(status.report_only[0].endpoint, endpoint);
        assert_eq!(status.failing[0].refusals.count, 3);
        assert!(status.failing[0].report_only);

        // A server without the key of what it presents is refused in report-only mode too.
        let impostor = identity("impostor", KeyKind::Ecdsa);
        server.set_signed(vec![new.cert.clone()], tls::signer(&impostor.key));
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        match tofu_error(&err) {
            TofuError::Mismatch(m) => assert!(!m.key_proved, "{version:?}"),
            other => panic!("{version:?}: refused as a mismatch, not {other}"),
        }
        assert_eq!(
            heard.lock().unwrap().last().map(|r| r.let_through),
            Some(false)
        );

        // Back to enforcing: refused at the next handshake.
        server.set_identity(&new);
        assert!(store.set_report_only(&endpoint, false).unwrap());
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert!(matches!(tofu_error(&err), TofuError::Mismatch(_)));
        assert_eq!(
            audit_events(&store, &endpoint).last(),
            Some(&AuditEvent::Enforced)
        );
    }
}

fn spki_of(cert: &rustls::pki_types::CertificateDer<'_>) -> Fingerprint {
    tofu_core::cert::CertificateDetails::from_der(cert)
        .unwrap()
        .spki_fingerprint
}

#[test]
fn an_awaited_pin_is_filled_only_after_the_server_proved_the_key_for_every_version() {
    for version in VERSIONS {
        for matches in [PinMatch::Certificate, PinMatch::Key] {
            let ctx = format!("{version:?} {matches:?}");
            let (_dir, store) = store();
            let real = identity("prime-sec", KeyKind::Ecdsa);
            let fp = match matches {
                PinMatch::Certificate => Fingerprint::of(&real.cert),
                PinMatch::Key => spki_of(&real.cert),
            };
            // Someone has the real certificate (it is public), not its key.
            let impostor = identity("impostor", KeyKind::Ecdsa);
            let server =
                Server::start_signed(vec![real.cert.clone()], tls::signer(&impostor.key), version);
            let endpoint = endpoint_of(&server);
            store.await_pin(&endpoint, &fp, matches, None).unwrap();
            let before = store.endpoint(&endpoint).unwrap();
            let config = verifier(&store, &endpoint).client_config();
            let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
            assert_eq!(
                client_error(&err),
                rustls::Error::InvalidCertificate(CertificateError::BadSignature),
                "{ctx}"
            );
            // Nothing the peer presented was written: still awaited, nothing pinned.
            assert_eq!(store.endpoint(&endpoint).unwrap(), before, "{ctx}");
            assert_eq!(audit_events(&store, &endpoint), [AuditEvent::Awaited]);

            // The real server proves the key: the pin is filled in with its certificate.
            server.set_identity(&real);
            connect(&config, server.addr, &name(&endpoint))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let record = store.endpoint(&endpoint).unwrap();
            assert!(record.awaited.is_empty(), "{ctx}");
            assert_eq!(record.pins.len(), 1, "{ctx}");
            let pin = &record.pins[0];
            assert_eq!(pin.der, real.cert, "{ctx}");
            assert_eq!(pin.matches, matches);
            assert_eq!(pin.state, PinState::Active);
            assert_eq!(pin.source, PinSource::Operator);
            assert_eq!(pin.times_seen, 1);
            assert!(pin.details.subject.ends_with("/CN=prime-sec"), "{ctx}");
            assert_eq!(
                audit_events(&store, &endpoint),
                [AuditEvent::Awaited, AuditEvent::Filled]
            );
            connect(&config, server.addr, &name(&endpoint)).expect("a normal pin now");
        }
    }
}

#[test]
fn an_endpoint_with_an_awaited_pin_is_pinned_not_trusted_on_first_use() {
    let (_dir, store) = store();
    let awaited = identity("prime-sec", KeyKind::Ecdsa);
    let other = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![other.cert.clone()], &other.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let fp = Fingerprint::of(&awaited.cert);
    store
        .await_pin(
            &endpoint,
            &fp,
            PinMatch::Certificate,
            Some("from the admin"),
        )
        .unwrap();
    // Trust on first use: still refused, as a mismatch of any pin is.
    let config = verifier(&store, &endpoint).client_config();
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    let TofuError::Mismatch(m) = tofu_error(&err) else {
        panic!("{err}")
    };
    assert!(m.pinned.is_empty());
    assert_eq!(m.awaited.len(), 1);
    assert_eq!(m.awaited[0].fingerprint, fp);
    assert!(m.quarantined);
    let text = m.to_string();
    assert!(
        text.contains(&format!("awaited    fingerprint  {fp} (awaited")),
        "{text}"
    );
    let record = store.endpoint(&endpoint).unwrap();
    assert!(record.pins.is_empty());
    assert_eq!(record.awaited.len(), 1);
    assert_eq!(record.quarantined[0].der, other.cert);
    // The store's own first-use entry point refuses too.
    let first = store.pin_first_use(&endpoint, &other.cert).unwrap();
    assert!(matches!(
        first,
        tofu_core::store::FirstUse::AlreadyPinned(_)
    ));
    // A key pin of another key refuses a certificate of a different key alike.
    let (_dir2, store2) = self::store();
    store2
        .await_pin(&endpoint, &spki_of(&awaited.cert), PinMatch::Key, None)
        .unwrap();
    let config = verifier(&store2, &endpoint).client_config();
    let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
    assert!(matches!(tofu_error(&err), TofuError::Mismatch(_)), "{err}");
    assert!(store2.endpoint(&endpoint).unwrap().pins.is_empty());
}

#[test]
fn no_session_outlives_a_filled_awaited_pin() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let id = identity("prime-sec", KeyKind::Ecdsa);
        let server = Server::start(vec![id.cert.clone()], &id.key, version);
        let endpoint = endpoint_of(&server);
        store
            .await_pin(
                &endpoint,
                &Fingerprint::of(&id.cert),
                PinMatch::Certificate,
                None,
            )
            .unwrap();
        let config = verifier(&store, &endpoint).client_config();
        let first = connect(&config, server.addr, &name(&endpoint)).unwrap();
        assert_eq!(first.kind, HandshakeKind::Full);
        assert_eq!(
            connect(&config, server.addr, &name(&endpoint))
                .unwrap()
                .kind,
            HandshakeKind::Resumed,
            "{version:?}: resumption works while the filled pin stays"
        );
        // The pin is deleted and another fingerprint awaited: the session of the old pin must
        // not resume, and the certificate is refused.
        store.remove_endpoint(&endpoint).unwrap();
        let other = identity("prime-sec", KeyKind::Ecdsa);
        store
            .await_pin(
                &endpoint,
                &Fingerprint::of(&other.cert),
                PinMatch::Certificate,
                None,
            )
            .unwrap();
        let err = connect(&config, server.addr, &name(&endpoint)).unwrap_err();
        assert!(
            matches!(tofu_error(&err), TofuError::Mismatch(_)),
            "{version:?}: {err}"
        );
        assert!(store.endpoint(&endpoint).unwrap().pins.is_empty());
    }
}

#[test]
fn a_new_certificate_in_report_only_mode_is_audited_as_reported_and_the_mode_outlives_deletecert() {
    let (_dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let new = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![new.cert.clone()], &new.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store.add_sole_pin(&endpoint, &old.cert, None).unwrap();
    store.set_report_only(&endpoint, true).unwrap();
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    assert_eq!(
        audit_events(&store, &endpoint),
        [
            AuditEvent::Added,
            AuditEvent::ReportOnly,
            AuditEvent::MismatchReported
        ]
    );
    store.remove_endpoint(&endpoint).unwrap();
    assert!(store.endpoint(&endpoint).unwrap().report_only.is_some());
    // Re-pinned on first use: a match, nothing to report.
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    let record = store.endpoint(&endpoint).unwrap();
    assert_eq!(record.pins[0].der, new.cert);
    assert!(
        record.report_only.is_some(),
        "until an operator enforces again"
    );
}

#[test]
fn an_awaited_next_pin_replaces_the_active_pin_when_presented() {
    let (_dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let new = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    let config = verifier(&store, &endpoint).client_config();
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    // As `accept --fingerprint` of a certificate no longer in quarantine does.
    store
        .await_pin_from(
            &endpoint,
            &Fingerprint::of(&new.cert),
            PinMatch::Certificate,
            PinState::Next,
            false,
            None,
            PinSource::Accepted,
        )
        .unwrap();
    // The old certificate is still the active pin until the new one is presented.
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    server.set_identity(&new);
    connect(&config, server.addr, &name(&endpoint)).unwrap();
    let record = store.endpoint(&endpoint).unwrap();
    assert!(record.awaited.is_empty());
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, new.cert);
    assert_eq!(record.pins[0].source, PinSource::Accepted);
    assert_eq!(
        audit_events(&store, &endpoint),
        [
            AuditEvent::Pinned,
            AuditEvent::Awaited,
            AuditEvent::Retired,
            AuditEvent::Filled
        ]
    );
    server.set_identity(&old);
    assert!(connect(&config, server.addr, &name(&endpoint)).is_err());
}
