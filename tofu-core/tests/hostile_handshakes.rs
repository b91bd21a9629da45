//! Servers that present what is not a usable certificate, over real loopback TLS 1.2 and 1.3:
//! garbage DER, a truncated certificate, no certificate at all, a certificate too large for
//! a handshake. The verifier must refuse them without panicking, say why, and write nothing:
//! no pin, no quarantined certificate, no audit entry.

mod tls;

use std::ops::ControlFlow;
use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::{AlertDescription, CertificateError, InvalidMessage};
use tempfile::TempDir;
use tls::{client_error, connect, identity, signer, KeyKind, Server, Version, VERSIONS};
use tofu_core::{
    cert::MAX_CERTIFICATE_LEN, pin::PinState, Endpoint, Store, TofuError, TofuVerifier,
};

fn store() -> (TempDir, Arc<Store>) {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    (dir, store)
}

fn endpoint_of(server: &Server) -> Endpoint {
    Endpoint::new("127.0.0.1", server.addr.port()).unwrap()
}

/// Everything the store holds about `endpoint`, and how long the audit log is.
fn state(store: &Store, endpoint: &Endpoint) -> (usize, usize, usize) {
    let record = store.endpoint(endpoint).unwrap();
    let mut audit = 0;
    store
        .for_each_audit(None, |_| {
            audit += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    (record.pins.len(), record.quarantined.len(), audit)
}

/// Connects once through a fresh verifier of `endpoint` and returns the client's error.
fn refused(store: &Arc<Store>, server: &Server, endpoint: &Endpoint) -> rustls::Error {
    let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
        .build()
        .unwrap();
    let err = connect(
        &verifier.client_config(),
        server.addr,
        &endpoint.server_name(),
    )
    .expect_err("the handshake must fail");
    client_error(&err)
}

/// A certificate of about `extra` bytes more than usual, signed by `key`.
fn padded_cert(key: &KeyPair, extra: usize) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["big.example".to_string()]).unwrap();
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

fn garbage(len: usize) -> CertificateDer<'static> {
    let mut x: u32 = 0x2545_f491;
    CertificateDer::from(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

#[test]
fn garbage_der_on_first_use_pins_nothing() {
    for version in VERSIONS {
        let id = identity("real", KeyKind::Ecdsa);
        let truncated = CertificateDer::from(id.cert[..id.cert.len() - 20].to_vec());
        for leaf in [
            garbage(700),
            truncated,
            CertificateDer::from(vec![0x30, 0x00]),
        ] {
            let (_dir, store) = store();
            // The server signs the handshake with a real key, so only the certificate is
            // at fault.
            let server = Server::start_signed(vec![leaf], signer(&id.key), version);
            let endpoint = endpoint_of(&server);
            let err = refused(&store, &server, &endpoint);
            // The handshake signature cannot be checked with what is not a certificate,
            // which is where a first-use pin would have been written.
            assert_eq!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
                "{version:?}"
            );
            assert_eq!(state(&store, &endpoint), (0, 0, 0), "{version:?}: nothing");
            let seen = server.seen(1);
            assert_eq!(
                seen[0].error,
                Some(rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate
                )),
                "{version:?}: the server is told"
            );
        }
    }
}

#[test]
fn garbage_der_at_a_pinned_endpoint_is_refused_as_unusable_and_not_quarantined() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let id = identity("real", KeyKind::Ed25519);
        let server = Server::start_signed(vec![garbage(900)], signer(&id.key), version);
        let endpoint = endpoint_of(&server);
        store
            .add_pin(&endpoint, &id.cert, PinState::Active, None)
            .unwrap();
        let before = state(&store, &endpoint);
        for _ in 0..3 {
            let err = refused(&store, &server, &endpoint);
            match TofuError::from_rustls(&err) {
                Some(TofuError::UnusableCertificate {
                    endpoint: e,
                    reason,
                }) => {
                    assert_eq!(*e, endpoint);
                    let message = err.to_string();
                    assert!(message.contains("cannot be used"), "{message}");
                    assert!(message.contains("nothing was pinned"), "{message}");
                    assert!(reason.to_string().contains("DER"), "{reason}");
                }
                other => panic!("{version:?}: expected UnusableCertificate, got {other:?}"),
            }
        }
        // Quarantine keeps certificates an operator may accept; garbage is not one.
        assert_eq!(state(&store, &endpoint), before, "{version:?}");
        // The real server is still accepted.
        server.set_identity(&id);
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .build()
            .unwrap();
        connect(
            &verifier.client_config(),
            server.addr,
            &endpoint.server_name(),
        )
        .expect("the pinned certificate matches");
    }
}

#[test]
fn garbage_after_a_pinned_leaf_is_ignored() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let id = identity("real", KeyKind::Ecdsa);
        let server = Server::start(
            vec![id.cert.clone(), garbage(300), CertificateDer::from(vec![])],
            &id.key,
            version,
        );
        let endpoint = endpoint_of(&server);
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .build()
            .unwrap();
        let config = verifier.client_config();
        connect(&config, server.addr, &endpoint.server_name()).expect("first use");
        connect(&config, server.addr, &endpoint.server_name()).expect("pinned");
        let record = store.endpoint(&endpoint).unwrap();
        assert_eq!(record.pins.len(), 1);
        assert_eq!(record.pins[0].der, id.cert, "only the leaf is pinned");
    }
}

#[test]
fn a_server_presenting_no_certificate_is_refused_before_the_verifier() {
    // rustls refuses an empty Certificate message itself (RFC 8446 4.4.2.4, RFC 5246
    // 7.4.2): the verifier is never asked, so nothing can be pinned or quarantined.
    for version in VERSIONS {
        for pinned in [false, true] {
            let (_dir, store) = store();
            let id = identity("real", KeyKind::Ecdsa);
            let server = Server::start_signed(vec![], signer(&id.key), version);
            let endpoint = endpoint_of(&server);
            if pinned {
                store
                    .add_pin(&endpoint, &id.cert, PinState::Active, None)
                    .unwrap();
            }
            let before = state(&store, &endpoint);
            let err = refused(&store, &server, &endpoint);
            assert_eq!(err, rustls::Error::NoCertificatesPresented, "{version:?}");
            assert!(TofuError::from_rustls(&err).is_none(), "{err:?}");
            assert_eq!(state(&store, &endpoint), before, "{version:?}");
        }
    }
}

#[test]
fn a_certificate_too_large_for_a_handshake_is_refused_by_rustls_and_nothing_is_stored() {
    // rustls limits a handshake message to 64 KiB, below the store's own limit
    // (MAX_CERTIFICATE_LEN) for certificates handed to it directly.
    for version in VERSIONS {
        for pinned in [false, true] {
            let (_dir, store) = store();
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let big = padded_cert(&key, 100 * 1024);
            assert!(big.len() > 100 * 1024);
            let pkcs8 = PrivatePkcs8KeyDer::from(key.serialize_der());
            let server = Server::start(vec![big], &pkcs8, version);
            let endpoint = endpoint_of(&server);
            if pinned {
                let other = identity("real", KeyKind::Ecdsa);
                store
                    .add_pin(&endpoint, &other.cert, PinState::Active, None)
                    .unwrap();
            }
            let before = state(&store, &endpoint);
            let err = refused(&store, &server, &endpoint);
            assert_eq!(
                err,
                rustls::Error::InvalidMessage(InvalidMessage::HandshakePayloadTooLarge),
                "{version:?}"
            );
            assert_eq!(state(&store, &endpoint), before, "{version:?}");
        }
    }
}

#[test]
fn a_large_certificate_that_fits_a_handshake_is_pinned_and_quarantined_like_any_other() {
    for version in VERSIONS {
        let (_dir, store) = store();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let big = padded_cert(&key, 60 * 1024);
        assert!(big.len() > 60 * 1024 && big.len() < MAX_CERTIFICATE_LEN);
        let pkcs8 = PrivatePkcs8KeyDer::from(key.serialize_der());
        let server = Server::start(vec![big.clone()], &pkcs8, version);
        let endpoint = endpoint_of(&server);
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .build()
            .unwrap();
        let config = verifier.client_config();
        connect(&config, server.addr, &endpoint.server_name()).expect("pinned on first use");
        assert_eq!(store.endpoint(&endpoint).unwrap().pins[0].der, big);

        // A different large certificate is a mismatch, quarantined in full.
        let key2 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let big2 = padded_cert(&key2, 60 * 1024);
        server.set_signed(
            vec![big2.clone()],
            signer(&PrivatePkcs8KeyDer::from(key2.serialize_der())),
        );
        let err = connect(&config, server.addr, &endpoint.server_name()).unwrap_err();
        assert!(matches!(
            TofuError::from_io(&err),
            Some(TofuError::Mismatch(_))
        ));
        assert_eq!(store.endpoint(&endpoint).unwrap().quarantined[0].der, big2);
        store.integrity_check().unwrap();
    }
}

#[test]
fn a_stream_of_different_garbage_never_grows_the_store() {
    let (_dir, store) = store();
    let id = identity("real", KeyKind::Ecdsa);
    let server = Server::start_signed(vec![garbage(10)], signer(&id.key), Version::Tls13);
    let endpoint = endpoint_of(&server);
    store
        .add_pin(&endpoint, &id.cert, PinState::Active, None)
        .unwrap();
    let before = state(&store, &endpoint);
    for len in (1..2000).step_by(97) {
        server.set_signed(vec![garbage(len)], signer(&id.key));
        refused(&store, &server, &endpoint);
    }
    store.integrity_check().unwrap();
    assert_eq!(state(&store, &endpoint), before);
}

/// A character a terminal would obey or hide rather than show (general categories Cc, Cf, Zl,
/// Zp), listed independently of the library's table.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{e0001}')
}

#[test]
fn a_mismatch_message_shows_bidi_and_invisible_characters_escaped_even_from_a_tampered_store() {
    // The pinned certificate's subject comes from the store, which someone who can write
    // it (a hostile filesystem) set to a raw right-to-left override and line separator; the
    // presented one is a hostile peer's, with a zero-width space and a byte-order mark.
    let (dir, store) = store();
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = endpoint_of(&server);
    store
        .add_pin(&endpoint, &old.cert, PinState::Active, None)
        .unwrap();
    let db = rusqlite::Connection::open(
        dir.path()
            .join("store")
            .join(tofu_core::store::DATABASE_FILE),
    )
    .unwrap();
    db.execute(
        "UPDATE pin SET subject = ?1",
        ["/CN=evil\u{202e}moc.elgoog\u{2028}/CN=x\u{2066}y"],
    )
    .unwrap();
    drop(db);
    let new = tls::identity_with("prime-sec", KeyKind::Ecdsa, |p| {
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "prime\u{200b}sec\u{feff}");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "a\u{202e}b");
    });
    server.set_identity(&new);

    let err = refused(&store, &server, &endpoint);
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(text.contains("does not match"), "{text}");
        assert_eq!(
            text.chars().find(|&c| c != '\n' && hidden(c)),
            None,
            "a raw hidden character in:\n{text:?}"
        );
        // Shown as OpenSSL shows the bytes of a name it will not print.
        assert!(
            text.contains(r"/CN=evil\xE2\x80\xAEmoc.elgoog\xE2\x80\xA8/CN=x\xE2\x81\xA6y"),
            "{text}"
        );
        assert!(
            text.contains(r"CN=prime\xE2\x80\x8Bsec\xEF\xBB\xBF"),
            "{text}"
        );
    }
}
