//! What the library logs at the levels a service runs with (info and above): enough to act on
//! (the endpoint, fingerprints, subjects), never a certificate body or a key. A log is read
//! by more people, and kept longer, than a store.

mod tls;

use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use tls::{connect, identity, KeyKind, Server, Version};
use tofu_core::{pin::PinState, Endpoint, Fingerprint, Policy, Store, TofuVerifier};

/// Every record at info and above, from every crate (rustls included).
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(format!(
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Lines of a PEM body and hex runs of a DER: any of them in a log means the body leaked.
fn telltales(der: &[u8]) -> Vec<String> {
    let pem = tofu_core::cert::to_pem(der);
    let mut out: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        .map(|l| l[..32].to_owned())
        .collect();
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    out.extend(
        hex.as_bytes()
            .chunks(64)
            .skip(1)
            .take(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap()),
    );
    // Debug of a byte slice: `[48, 130, 1, …`.
    let listed: Vec<String> = der[..16].iter().map(u8::to_string).collect();
    out.push(listed.join(", "));
    out
}

#[test]
fn first_use_mismatch_promotion_and_expiry_log_no_certificate_or_key() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
    let old = identity("prime-sec", KeyKind::Ecdsa);
    let new = identity("prime-sec", KeyKind::Ecdsa);
    let next = identity("prime-sec", KeyKind::Ed25519);
    let server = Server::start(vec![old.cert.clone()], &old.key, Version::Tls13);
    let endpoint = Endpoint::new("127.0.0.1", server.addr.port()).unwrap();
    let name = endpoint.server_name();
    let connect_with = |policy: Policy| {
        let verifier = TofuVerifier::builder(store.clone(), endpoint.clone())
            .policy(policy)
            .build()
            .unwrap();
        connect(&verifier.client_config(), server.addr, &name)
    };

    connect_with(Policy::default()).expect("first use");
    server.set_identity(&new);
    connect_with(Policy::default()).expect_err("mismatch");
    store
        .add_pin(&endpoint, &next.cert, PinState::Next, None)
        .unwrap();
    server.set_identity(&next);
    connect_with(Policy::default()).expect("staged pin promoted");

    // An expired pinned certificate, accepted with a warning, then replaced by policy.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["prime-sec".to_string()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired = params.self_signed(&key).unwrap().der().clone();
    let expired_key = PrivatePkcs8KeyDer::from(key.serialize_der());
    store.remove_endpoint(&endpoint).unwrap();
    store
        .add_pin(&endpoint, &expired, PinState::Active, None)
        .unwrap();
    server.set_signed(vec![expired.clone()], tls::signer(&expired_key));
    connect_with(Policy::default()).expect("an expired pin is still accepted");
    server.set_identity(&old);
    connect_with(Policy::default().replace_expired_pins(true)).expect("replaced");

    let lines = CAPTURE.0.lock().unwrap().clone();
    let text = lines.join("\n");
    for (what, needle) in [
        ("the first-use pin", "pinned 127.0.0.1:"),
        ("the mismatch", "refused 127.0.0.1:"),
        ("the promotion", "promoted"),
        ("the expiry", "expired"),
    ] {
        assert!(text.contains(needle), "{what} is logged: {text}");
    }
    assert!(
        text.contains(&Fingerprint::of(&new.cert).to_string()),
        "{text}"
    );
    for (what, der) in [
        ("old", old.cert.as_ref()),
        ("new", new.cert.as_ref()),
        ("next", next.cert.as_ref()),
        ("expired", expired.as_ref()),
        ("a key", old.key.secret_pkcs8_der()),
        ("a key", expired_key.secret_pkcs8_der()),
    ] {
        for telltale in telltales(der) {
            assert!(
                !text.contains(&telltale),
                "the {what} body ({telltale}) is in the log:\n{text}"
            );
        }
    }
    assert!(!text.contains("-----BEGIN"), "{text}");
    assert!(
        lines.len() < 40,
        "a handful of handshakes logs a handful of lines, not {}",
        lines.len()
    );
}
