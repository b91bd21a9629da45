//! Hostile and broken input to the library's parsers and writers: certificate files, export
//! files, endpoints and fingerprints. Each is refused with an error that says what is wrong
//! and stays short and printable however large or strange the input is, and nothing reaches
//! the store. (The export format's own unit tests, in `src/export.rs`, cover the errors that
//! name an entry's line and field; `tests/store.rs` covers an import that conflicts halfway.)

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::pki_types::CertificateDer;
use tofu_core::{
    cert::{read_certificates, to_pem, CertificateError, MAX_CERTIFICATE_LEN},
    export::{parse_export, read_export, ImportError, EXPORT_VERSION},
    pin::{PinSource, PinState},
    store::NewPin,
    Endpoint, Error, Fingerprint, Store,
};

fn key_and_cert(cn: &str) -> (KeyPair, CertificateDer<'static>) {
    let key = KeyPair::generate().expect("key generation");
    let cert = CertificateParams::new(vec![cn.to_string()])
        .expect("a valid name")
        .self_signed(&key)
        .expect("self-signed")
        .der()
        .clone();
    (key, cert)
}

fn cert(cn: &str) -> CertificateDer<'static> {
    key_and_cert(cn).1
}

/// A well-formed certificate of about `size` bytes: a real one, padded by an extension.
fn big_cert(size: usize) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["big.example".to_string()]).unwrap();
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 55555, 1],
            vec![0x41; size],
        ));
    params.self_signed(&key).unwrap().der().clone()
}

/// Deterministic bytes that look random.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A character a terminal would obey or hide rather than show (general categories Cc, Cf, Zl,
/// Zp), listed independently of the library's table: the controls, and the format and
/// separator characters that spoof names (bidirectional controls, zero-width and invisible
/// characters, the byte-order mark, the soft hyphen, the tags).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
            | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}')
}

/// An error message a person can be shown: short, one paragraph, nothing that a terminal
/// would interpret (control characters, bidirectional overrides).
fn assert_presentable(message: &str, limit: usize) {
    assert!(!message.is_empty());
    assert!(
        message.len() <= limit,
        "the message is {} bytes long: {}…",
        message.len(),
        message.chars().take(300).collect::<String>()
    );
    let bad = message.chars().find(|&c| c != '\n' && hidden(c));
    assert_eq!(bad, None, "a control character in the message: {message:?}");
}

// ---------------------------------------------------------------------------------------------
// Certificate files

fn cert_error(bytes: &[u8]) -> CertificateError {
    let err = read_certificates(bytes).expect_err("not a usable certificate file");
    assert_presentable(&err.to_string(), 300);
    err
}

#[test]
fn an_empty_certificate_file_is_empty() {
    for bytes in [&b""[..], b"\n", b"  \r\n\t\n"] {
        assert_eq!(cert_error(bytes), CertificateError::Empty, "{bytes:?}");
    }
}

#[test]
fn a_file_that_is_neither_pem_nor_der_says_so() {
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n".to_vec();
    let utf16: Vec<u8> = "-----BEGIN CERTIFICATE-----"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    for bytes in [
        b"hello, world\n".to_vec(),
        b"{\"certificate\": \"MIIB...\"}".to_vec(),
        noise(4096, 1),
        noise(3, 2),
        pdf,
        utf16,
        vec![0; 1000],
        vec![0x30; 1000],
    ] {
        assert_eq!(cert_error(&bytes), CertificateError::NotCertificate);
    }
}

#[test]
fn a_truncated_der_certificate_is_refused_at_every_length() {
    let der = cert("cut.example");
    for cut in 1..der.len() {
        let err = cert_error(&der[..cut]);
        assert_eq!(err, CertificateError::NotCertificate, "cut at {cut}");
    }
    // And the certificate with anything after it.
    let mut longer = der.to_vec();
    longer.push(0);
    assert_eq!(cert_error(&longer), CertificateError::NotCertificate);
}

#[test]
fn damaged_pem_is_refused_and_says_it_is_damaged_pem() {
    let der = cert("pem.example");
    let pem = to_pem(&der);
    // Cut inside the base64, with no END line.
    let err = cert_error(&pem.as_bytes()[..pem.len() / 2]);
    assert!(matches!(err, CertificateError::BadPem(_)), "{err:?}");
    // A character that is not base64.
    let body_start = pem.find('\n').unwrap() + 1;
    let broken = format!("{}!{}", &pem[..body_start], &pem[body_start + 1..]);
    assert!(matches!(
        cert_error(broken.as_bytes()),
        CertificateError::BadPem(_)
    ));
    // Base64 that decodes to something that is not a certificate.
    let junk = to_pem(&noise(600, 3));
    assert!(matches!(
        cert_error(junk.as_bytes()),
        CertificateError::Malformed(_)
    ));
    // A malformed BEGIN line, a megabyte long: the message quotes a little of it, as text.
    // (Regression, found by `fuzz/run.sh`: it listed every byte of the line as a number.)
    let long = format!("-----BEGIN {}\n", "\u{ff}".repeat(500_000));
    match cert_error(long.as_bytes()) {
        CertificateError::BadPem(m) => assert!(m.contains("does not start a section"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A certificate whose DER is cut short, correctly wrapped in PEM.
    let short = to_pem(&der[..der.len() - 10]);
    assert!(matches!(
        cert_error(short.as_bytes()),
        CertificateError::Malformed(_)
    ));
}

#[test]
fn a_private_key_where_a_certificate_belongs_is_named_as_a_key() {
    let (key, _) = key_and_cert("key.example");
    let pkcs8 = key.serialize_pem();
    assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
    for label in ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"] {
        let pem = pkcs8.replace("PRIVATE KEY", label);
        let err = cert_error(pem.as_bytes());
        assert_eq!(err, CertificateError::PrivateKey, "{label}");
        let message = err.to_string();
        assert!(message.contains("private key"), "{message}");
        assert!(
            !message.contains(pkcs8.lines().nth(1).unwrap()),
            "the key is not echoed: {message}"
        );
    }
    // A key in DER cannot be told from other binary data.
    assert_eq!(
        cert_error(&key.serialize_der()),
        CertificateError::NotCertificate
    );
    // A public key, a certificate request: not certificates either.
    let public = to_pem(rcgen::PublicKeyData::der_bytes(&key)).replace("CERTIFICATE", "PUBLIC KEY");
    assert_eq!(
        cert_error(public.as_bytes()),
        CertificateError::NotCertificate
    );
    let csr = CertificateParams::new(vec!["csr.example".into()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    assert_eq!(cert_error(csr.as_bytes()), CertificateError::NotCertificate);
}

#[test]
fn a_certificate_next_to_its_key_is_read_without_the_key() {
    let (key, der) = key_and_cert("both.example");
    let both = format!("{}{}", key.serialize_pem(), to_pem(&der));
    assert_eq!(read_certificates(both.as_bytes()).unwrap(), vec![der]);
}

/// Regression (found by `fuzz/run.sh`, `fuzz/regressions/certificate/der-holding-a-pem-begin-marker`):
/// a DER certificate whose subject held `-----BEGIN ` was taken for PEM and refused as
/// "neither a PEM certificate nor DER".
#[test]
fn a_der_certificate_holding_a_pem_marker_is_read_as_der() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["marker.example".into()]).unwrap();
    params.distinguished_name.push(
        rcgen::DnType::OrganizationalUnitName,
        "-----BEGIN CERTIFICATE-----",
    );
    let der = params.self_signed(&key).unwrap().der().clone();
    assert_eq!(read_certificates(&der).unwrap(), vec![der.clone()]);
    assert_eq!(
        read_certificates(to_pem(&der).as_bytes()).unwrap(),
        vec![der]
    );
}

#[test]
fn a_bundle_is_read_whole_in_order_or_not_at_all() {
    let certs: Vec<_> = (0..3).map(|i| cert(&format!("c{i}.example"))).collect();
    let bundle: String = certs.iter().map(|c| to_pem(c)).collect();
    assert_eq!(read_certificates(bundle.as_bytes()).unwrap(), certs);
    // One damaged member spoils the bundle: no partial list to pin from.
    let damaged = format!(
        "{}{}{}",
        to_pem(&certs[0]),
        to_pem(&certs[1][..certs[1].len() - 1]),
        to_pem(&certs[2])
    );
    assert!(matches!(
        cert_error(damaged.as_bytes()),
        CertificateError::Malformed(_)
    ));
}

#[test]
fn an_oversized_certificate_is_refused_by_its_size() {
    let der = big_cert(100 * 1024);
    assert!(der.len() > MAX_CERTIFICATE_LEN);
    for bytes in [der.to_vec(), to_pem(&der).into_bytes()] {
        match cert_error(&bytes) {
            CertificateError::TooLarge { len, max } => {
                assert_eq!((len, max), (der.len(), MAX_CERTIFICATE_LEN))
            }
            other => panic!("{other:?}"),
        }
    }
    // Just under the limit is an ordinary certificate.
    let under = big_cert(MAX_CERTIFICATE_LEN - 2048);
    assert!(under.len() <= MAX_CERTIFICATE_LEN);
    assert_eq!(read_certificates(&under).unwrap(), vec![under]);
}

#[test]
fn many_pem_markers_are_read_in_linear_time() {
    let text = "-----BEGIN \n".repeat(200_000);
    let started = Instant::now();
    let _ = read_certificates(text.as_bytes());
    let noise_text = "-----BEGIN CERTIFICATE-----\n".repeat(100_000);
    let _ = read_certificates(noise_text.as_bytes());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Writing what is not a certificate leaves the store as it was

/// Everything a store holds, to compare before and after.
fn contents(store: &Store) -> (Vec<String>, Vec<String>, usize) {
    let mut pins = Vec::new();
    store
        .for_each_pin(|p| {
            pins.push(format!("{} {} {}", p.endpoint, p.state, p.fingerprint()));
            ControlFlow::Continue(())
        })
        .unwrap();
    let mut quarantined = Vec::new();
    store
        .for_each_quarantined(|q| {
            quarantined.push(format!("{} {}", q.endpoint, q.details.fingerprint));
            ControlFlow::Continue(())
        })
        .unwrap();
    let mut audit = 0;
    store
        .for_each_audit(None, |_| {
            audit += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    (pins, quarantined, audit)
}

#[test]
fn no_store_operation_writes_what_is_not_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let pinned: Endpoint = "pinned.example:443".parse().unwrap();
    let fresh: Endpoint = "fresh.example:443".parse().unwrap();
    let good = cert("good.example");
    store.pin_first_use(&pinned, &good).unwrap();
    let before = contents(&store);

    let der = cert("x.example");
    let bad: Vec<CertificateDer<'static>> = vec![
        CertificateDer::from(Vec::new()),
        CertificateDer::from(noise(512, 4)),
        CertificateDer::from(der[..der.len() / 2].to_vec()),
        big_cert(100 * 1024),
    ];
    for der in &bad {
        let certificate_error = |r: Result<(), Error>| match r {
            Err(Error::Certificate { source, .. }) => assert_presentable(&source.to_string(), 300),
            other => panic!("expected a certificate error, got {other:?}"),
        };
        certificate_error(store.pin_first_use(&fresh, der).map(drop));
        certificate_error(store.pin_first_use(&pinned, der).map(drop));
        certificate_error(store.add_pin(&fresh, der, PinState::Active, None).map(drop));
        certificate_error(store.add_pin(&pinned, der, PinState::Next, None).map(drop));
        certificate_error(store.quarantine(&pinned, der).map(drop));
        certificate_error(
            store
                .replace_pin(&pinned, &Fingerprint::of(&good), der, PinSource::Operator)
                .map(drop),
        );
        // One bad pin in a batch: none of the batch is written.
        let batch: Vec<NewPin> = [(&fresh, good.clone()), (&pinned, der.clone())]
            .into_iter()
            .map(|(endpoint, der)| NewPin {
                endpoint: endpoint.clone(),
                der,
                state: PinState::Active,
                source: PinSource::Imported,
                label: None,
                pinned_at: None,
                first_seen: None,
                last_seen: None,
                times_seen: 0,
                matches: tofu_core::pin::PinMatch::Certificate,
            })
            .collect();
        certificate_error(store.import(&batch, true).map(drop));
        assert_eq!(contents(&store), before, "the store is unchanged");
    }
    store.integrity_check().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Export files

fn entry(endpoint: &str, der: &CertificateDer<'_>, extra: &str) -> String {
    format!(
        "\n[[pin]]\nendpoint = \"{endpoint}\"\n{extra}certificate = \"\"\"\n{}\"\"\"\n",
        to_pem(der)
    )
}

fn import_error(text: &str) -> ImportError {
    let err = parse_export(text).expect_err("not an importable file");
    assert_presentable(&err.to_string(), 1000);
    err
}

#[test]
fn a_file_that_is_not_toml_is_a_syntax_error() {
    let der = cert("a.example");
    for text in [
        "{\"version\": 1, \"pin\": []}".to_string(),
        "version: 1\npin:\n  - endpoint: a.example:443\n".to_string(),
        to_pem(&der),
        "version = 1\n[[pin]\n".to_string(),
        "version = 1\nversion = 1\n".to_string(),
        "version = 1\n[[pin]]\nendpoint = \"a.example:443\n".to_string(),
        "version = 1\n\0\n".to_string(),
    ] {
        let err = import_error(&text);
        assert!(
            matches!(err, ImportError::Syntax { .. }),
            "{text:?}: {err:?}"
        );
        assert!(err.to_string().contains("line"), "{err}");
    }
    // Not text at all.
    let mut bytes = b"version = 1\n".to_vec();
    bytes.extend(noise(1000, 5));
    match read_export(&bytes[..]) {
        Err(ImportError::NotText { offset }) => assert!(offset >= 12, "{offset}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(import_error(""), ImportError::MissingVersion));
}

#[test]
fn an_unknown_version_is_refused_before_anything_else_is_read() {
    let der = cert("a.example");
    for version in [
        "2",
        "0",
        "-1",
        "\"1\"",
        "1.0",
        "true",
        "[1]",
        "{ v = 1 }",
        "1979-05-27",
    ] {
        // The rest of the file is from a future format: only the version is judged.
        let text = format!(
            "version = {version}\nfuture = true\n[[pin]]\nhash = \"x\"\n{}",
            entry("a.example:443", &der, "")
        );
        let err = import_error(&text);
        assert!(
            matches!(err, ImportError::UnsupportedVersion { .. }),
            "{version}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("reads version {EXPORT_VERSION}")),
            "{err}"
        );
    }
    // Too large for any integer type is still a clear (syntax) error.
    let err = import_error("version = 99999999999999999999999999\n");
    assert!(matches!(err, ImportError::Syntax { .. }), "{err:?}");
    let err = import_error("[meta]\nversion = 1\n");
    assert!(matches!(err, ImportError::MissingVersion), "{err:?}");
}

#[test]
fn the_same_endpoint_and_certificate_twice_is_refused_in_any_spelling() {
    let der = cert("dup.example");
    for (a, b) in [
        ("10.1.1.1:8082", "10.1.1.1_8082"),
        ("[fd00::5]:8443", "fd00:0::5_8443"),
        ("[fd00::5]:8443", "[FD00:0:0:0:0:0:0:5]:8443"),
        ("Example.COM.:443", "example.com:443"),
        ("bücher.example:443", "xn--bcher-kva.example:443"),
    ] {
        let text = format!(
            "version = 1\n{}{}",
            entry(a, &der, ""),
            entry(b, &der, "state = \"next\"\n")
        );
        match import_error(&text) {
            ImportError::Duplicate {
                entry, first_entry, ..
            } => assert_eq!((entry, first_entry), (2, 1), "{a} {b}"),
            other => panic!("{a} / {b}: {other:?}"),
        }
    }
    // Two certificates for one endpoint are an HA pair, not a duplicate.
    let text = format!(
        "version = 1\n{}{}",
        entry("10.1.1.1:8082", &der, ""),
        entry("10.1.1.1_8082", &cert("other.example"), "")
    );
    assert_eq!(parse_export(&text).unwrap().len(), 2);
}

#[test]
fn a_bad_fingerprint_is_refused_with_the_field_named() {
    let der = cert("fp.example");
    let other = cert("other.example");
    let spki = {
        let parsed = tofu_core::cert::CertificateDetails::from_der(&der).unwrap();
        parsed.spki_fingerprint
    };
    let sha1_hex = "a9993e364706816aba3e25717850c26c9cd0d89d";
    for fp in [
        String::new(),
        "SHA256:".into(),
        sha1_hex.into(),
        format!("MD5:{sha1_hex}"),
        Fingerprint::of(&other).to_string(),
        spki.to_string(),
        Fingerprint::of(&der).to_hex().replace('a', "g"),
        Fingerprint::of(&der).to_hex_colons().replace(':', "-"),
        format!("{}\\u0007", Fingerprint::of(&der)),
        format!("SHA256:{}", "A".repeat(1_000_000)),
    ] {
        let text = format!(
            "version = 1\n{}",
            entry("a.example:443", &der, &format!("fingerprint = \"{fp}\"\n"))
        );
        match import_error(&text) {
            ImportError::Entry { field, .. } => {
                assert_eq!(field, "fingerprint", "{}", &fp[..fp.len().min(80)])
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn huge_values_give_short_errors() {
    let der = cert("huge.example");
    let huge = "x".repeat(1_000_000);
    let cases = [
        (
            "endpoint",
            format!("version = 1\n{}", entry(&huge, &der, "")),
        ),
        (
            "label",
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("label = \"{huge}\"\n"))
            ),
        ),
        (
            "state",
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("state = \"{huge}\"\n"))
            ),
        ),
        (
            "source",
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("source = \"{huge}\"\n"))
            ),
        ),
        (
            "pinned_at",
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("pinned_at = \"@{huge}\"\n"))
            ),
        ),
        (
            "last_seen",
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("last_seen = \"{huge}\"\n"))
            ),
        ),
        (
            "certificate",
            format!(
                "version = 1\n[[pin]]\nendpoint = \"a.example:443\"\ncertificate = \"{huge}\"\n"
            ),
        ),
        (
            &huge[..100],
            format!(
                "version = 1\n{}",
                entry("a.example:443", &der, &format!("{huge} = 1\n"))
            ),
        ),
    ];
    for (field, text) in &cases {
        match import_error(text) {
            ImportError::Entry { field: f, .. } => {
                assert!(f.len() <= 80 && field.starts_with(&f), "{field}: {f}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // Numbers beyond any integer, in a field that takes one.
    let text = format!(
        "version = 1\n{}",
        entry("a.example:443", &der, "times_seen = 99999999999999999999\n")
    );
    assert!(matches!(import_error(&text), ImportError::Syntax { .. }));
    let text = format!(
        "version = 1\n{}",
        entry("a.example:443", &der, "times_seen = -9223372036854775808\n")
    );
    assert!(matches!(import_error(&text), ImportError::Entry { .. }));
    // A syntax error on a megabyte-long line.
    let text = format!("version = 1\nlabel = \"{huge}\" oops\n");
    assert!(matches!(import_error(&text), ImportError::Syntax { .. }));
    // A top-level key a megabyte long.
    let text = format!("version = 1\n{huge} = 1\n");
    assert!(matches!(
        import_error(&text),
        ImportError::UnknownKey { .. }
    ));
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        for text in [
            format!(
                "version = 1\nx = {}{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            format!(
                "version = 1\nx = {}1{}\n",
                "{a=".repeat(depth),
                "}".repeat(depth)
            ),
            format!("version = 1\n[{}]\n", vec!["a"; depth].join(".")),
        ] {
            // A small stack, so a recursion without a limit would show.
            let handle = std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn(move || parse_export(&text).map(drop).map_err(|e| e.to_string()))
                .unwrap();
            let message = handle
                .join()
                .expect("no stack overflow")
                .expect_err("refused");
            assert_presentable(&message, 1000);
        }
    }
}

#[test]
fn ten_thousand_entries_parse_in_seconds() {
    let der = cert("many.example");
    let pem = to_pem(&der);
    let mut text = String::from("version = 1\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[pin]]\nendpoint = \"h{i}.example:443\"\ncertificate = \"\"\"\n{pem}\"\"\"\n"
        ));
    }
    let started = Instant::now();
    assert_eq!(parse_export(&text).unwrap().len(), 10_000);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Endpoints and fingerprints

fn endpoint_error(input: &str) -> String {
    let err = input
        .parse::<Endpoint>()
        .expect_err(&format!("{input:?} must be refused"));
    let message = err.to_string();
    assert_presentable(&message, 500);
    message
}

#[test]
fn control_and_invisible_characters_in_an_endpoint_are_refused_and_not_echoed_raw() {
    let controls = (0u32..0x20)
        .chain([0x7f, 0x85, 0x9b])
        .map(|c| char::from_u32(c).unwrap());
    for c in controls {
        for input in [
            format!("{c}example.com:443"),
            format!("exam{c}ple.com:443"),
            format!("example.com:443{c}"),
            format!("example.com{c}:443"),
        ] {
            let message = endpoint_error(&input);
            // Space-like ones (\t, \n, \r) may be reported as spaces; all are refused.
            assert!(
                message.contains("control character") || message.contains("space"),
                "{input:?}: {message}"
            );
        }
    }
    // Invisible characters are refused, or dropped by IDNA's mapping (a zero-width space, a
    // soft hyphen): either way none reaches the store's key.
    for c in [
        '\u{202e}', '\u{200b}', '\u{feff}', '\u{2066}', '\u{00ad}', '\u{200d}',
    ] {
        let input = format!("exa{c}mple.com:443");
        match input.parse::<Endpoint>() {
            Ok(e) => assert_eq!(e.to_string(), "example.com:443", "{input:?}"),
            Err(e) => assert_presentable(&e.to_string(), 500),
        }
    }
    // An escape sequence that would recolour or clear a terminal is shown escaped.
    let message = endpoint_error("\u{1b}[2J\u{1b}[31mevil:443");
    assert!(message.contains("\\u{1b}"), "{message}");
}

#[test]
fn overlong_names_are_refused_at_the_dns_limits() {
    let label63 = "a".repeat(63);
    let ok = format!("{label63}.example:443");
    assert_eq!(ok.parse::<Endpoint>().unwrap().to_string(), ok);
    assert!(endpoint_error(&format!("a{ok}")).contains("longer than 63"));
    // 253 characters is the longest DNS name.
    let name253 = format!("{}.{}", vec!["b".repeat(61); 4].join("."), "c".repeat(5));
    assert_eq!(name253.len(), 253);
    assert!(format!("{name253}:443").parse::<Endpoint>().is_ok());
    assert!(endpoint_error(&format!("d{name253}:443")).contains("253"));
    // Anything longer is refused before it is looked at, and echoed only in part.
    let message = endpoint_error(&format!("{}:443", "e".repeat(1_000_000)));
    assert!(message.contains('…'), "{message}");
}

#[test]
fn bad_ports_are_refused() {
    for port in [
        "",
        "0",
        "00000",
        "65536",
        "99999999999999999999",
        "-1",
        "+443",
        " 443",
        "443 ",
        "0x1bb",
        "1e3",
        "443.0",
        "4 43",
        "\u{661}\u{662}\u{663}",
        "４４３",
        "443:443",
    ] {
        let message = endpoint_error(&format!("example.com:{port}"));
        assert!(
            message.contains("port") || message.contains("space"),
            "{port:?}: {message}"
        );
    }
    assert_eq!(
        "example.com:00443".parse::<Endpoint>().unwrap().to_string(),
        "example.com:443"
    );
}

#[test]
fn malformed_hosts_are_refused() {
    for input in [
        ":443",
        "[]:443",
        "[::1]:443:443",
        "a:b:c",
        "1.2.3:443",
        "127.1:443",
        "999.1.1.1:443",
        "xn--:443",
        "xn--a.example:443",
        "a..b:443",
        ".:443",
        "-a.example:443",
        "a-.example:443",
        "a*.example:443",
        "user@example.com:443",
        "example.com#frag:443",
        "[::1%lo]:443",
        "[1.2.3.4]:443",
        "0x7f000001:443",
        "0177.0.0.1:443",
        "2130706433:443",
        "foo.0x1:443",
    ] {
        endpoint_error(input);
    }
}

#[test]
fn every_accepted_endpoint_round_trips() {
    for input in [
        "10.1.1.1_8082",
        "[::ffff:1.2.3.4]:443",
        "[::]:1",
        "a_b.example:65535",
        "xn--bcher-kva.example:443",
        "BÜCHER.example.:443",
        "0.0.0.0:1",
        "localhost:443",
    ] {
        let e: Endpoint = input.parse().unwrap();
        assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e, "{input}");
        assert_eq!(e.host_port().parse::<Endpoint>().unwrap(), e, "{input}");
    }
}

/// Regression (found by `fuzz/run.sh`, input `fuzz/regressions/endpoint/ipv6-endpoint-new`):
/// `Endpoint::new("::", 8)` was refused as "an IPv6 address with a port needs brackets",
/// so no IPv6 endpoint could be built from a host and a port.
#[test]
fn endpoint_new_takes_an_ipv6_address_without_brackets() {
    for (host, shown) in [
        ("::", "[::]:8"),
        ("FD00:0::5", "[fd00::5]:8"),
        // An IPv4-mapped address is the IPv4 endpoint (issue 11, item 7).
        ("::ffff:1.2.3.4", "1.2.3.4:8"),
    ] {
        let e = Endpoint::new(host, 8).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(e.to_string(), shown);
        assert_eq!(shown.parse::<Endpoint>().unwrap(), e);
    }
    assert!(Endpoint::new("fe80::1%eth0", 8).is_err());
    assert!(Endpoint::new("[::1]", 8).is_err());
}

#[test]
fn bad_fingerprints_are_refused_with_a_short_message() {
    let fp = Fingerprint::of(b"x");
    for input in [
        String::new(),
        "SHA256:".into(),
        "sha1:AAAA".into(),
        fp.to_hex()[..63].into(),
        format!("{}0", fp.to_hex()),
        fp.to_hex_colons().replace(':', "-"),
        fp.to_hex_colons().replacen(':', "::", 1),
        format!("{}\u{7}", &fp.to_hex()[..63]),
        format!("SHA256:{}", "A".repeat(1_000_000)),
        "\u{1b}[31mSHA256:AAAA".into(),
        "٠".repeat(64),
    ] {
        let err = input.parse::<Fingerprint>().expect_err("refused");
        assert_presentable(&err.to_string(), 400);
    }
    for text in [fp.to_string(), fp.to_hex(), fp.to_hex_colons()] {
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
    }
}

#[test]
fn a_hostile_certificate_s_names_are_escaped_so_they_cannot_drive_a_terminal() {
    // A server chooses its certificate: its names end up in listcerts, showcert, the
    // mismatch message, the export's comments and the logs.
    let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.subject_alt_names = vec![
        rcgen::SanType::DnsName(ia5("a\u{1b}[2Jb.example")),
        rcgen::SanType::Rfc822Name(ia5("x\ny@example.com")),
        rcgen::SanType::URI(ia5("https://\u{7}x/")),
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evil\u{1b}]0;title\u{7}\ncn");
    let der = params.self_signed(&key).unwrap().der().clone();
    let d = tofu_core::cert::CertificateDetails::from_der(&der).unwrap();
    assert_eq!(d.subject, "/CN=evil\\x1B]0;title\\x07\\x0Acn");
    assert_eq!(
        d.sans,
        [
            "DNS:a\\x1B[2Jb.example",
            "email:x\\x0Ay@example.com",
            "URI:https://\\x07x/"
        ]
    );
}

/// A certificate whose names carry the characters that reorder or hide text: a right-to-left
/// override, a line separator, a zero-width space, a byte-order mark.
fn invisible_names_cert() -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["ok.example".into()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        rcgen::OtherNameValue::Utf8String(
            "admin\u{202e}moc.elgoog\u{2028}x\u{200b}y\u{feff}".into(),
        ),
    )));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "evil\u{202e}moc.elgoog");
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "a\u{2028}b\u{200b}c\u{feff}",
    );
    params.self_signed(&key).unwrap().der().clone()
}

#[test]
fn a_hostile_certificate_s_bidi_and_invisible_characters_are_escaped_in_every_name() {
    // `CN=evil\u{202E}moc.elgoog` reads as `CN=evilgoogle.com` on a terminal.
    let d = tofu_core::cert::CertificateDetails::from_der(&invisible_names_cert()).unwrap();
    // The subject as `openssl x509 -nameopt compat` prints it: every non-ASCII byte as \xHH.
    assert_eq!(
        d.subject,
        r"/CN=evil\xE2\x80\xAEmoc.elgoog/O=a\xE2\x80\xA8b\xE2\x80\x8Bc\xEF\xBB\xBF"
    );
    assert_eq!(
        d.sans,
        [
            "DNS:ok.example",
            r"othername: UPN::admin\xE2\x80\xAEmoc.elgoog\xE2\x80\xA8x\xE2\x80\x8By\xEF\xBB\xBF"
        ]
    );
    for name in [&d.subject, &d.issuer].into_iter().chain(&d.sans) {
        assert_eq!(name.chars().find(|&c| hidden(c)), None, "{name:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Names are bounded where they are made

/// The marker that ends a name cut short, and how many characters it says were cut.
fn truncated_marker(text: &str) -> Option<usize> {
    let (_, rest) = text.rsplit_once("… [truncated: ")?;
    let n = rest
        .strip_suffix(" more characters]")
        .or_else(|| rest.strip_suffix(" more names]"))?;
    n.replace(',', "").parse().ok()
}

#[test]
fn an_80000_character_subject_is_stored_and_logged_bounded_with_a_visible_marker() {
    // A hostile peer's certificate: a common name of 6,666 right-to-left overrides (each
    // written \xE2\x80\xAE, 12 characters) makes an 80,000-character subject (and issuer); 70 SANs of
    // 300 characters each; and a library caller's 100,000-character label.
    let key = KeyPair::generate().unwrap();
    let sans: Vec<String> = (0..70)
        .map(|i| format!("{i:03}{}.example", "a".repeat(289)))
        .collect();
    let mut params = CertificateParams::new(sans).unwrap();
    let cn = format!("{}abcd", "\u{202e}".repeat(6_666));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.as_str());
    let der = params.self_signed(&key).unwrap().der().clone();
    assert!(der.len() <= MAX_CERTIFICATE_LEN, "{}", der.len());

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let endpoint: Endpoint = "hostile.example:443".parse().unwrap();
    let label = "L".repeat(100_000);
    let pin = store
        .add_pin(&endpoint, &der, PinState::Active, Some(&label))
        .unwrap();
    let stored = store.endpoint(&endpoint).unwrap().pins.remove(0);
    assert_eq!(stored.details, pin.details);

    let d = &stored.details;
    // The fingerprint and the DER stay exact.
    assert_eq!(d.fingerprint, Fingerprint::of(&der));
    assert_eq!(stored.der.as_ref(), der.as_ref());
    // The subject: at most 1024 characters, whole escapes only, then the marker, which
    // counts what was cut.
    assert!(d.subject.chars().count() <= 1024, "{}", d.subject.len());
    let (kept, _) = d.subject.rsplit_once('…').expect("the marker");
    assert!(kept.starts_with(r"/CN=\xE2\x80\xAE"), "{kept}");
    assert_eq!((kept.len() - 4) % 12, 0, "an escape cut apart: {kept}");
    assert_eq!(
        truncated_marker(&d.subject),
        Some(80_000 - kept.chars().count()),
        "{}",
        d.subject
    );
    // At most 64 names, the last saying how many more there were; each at most 256 characters.
    assert_eq!(d.sans.len(), 64);
    assert_eq!(d.sans[63], "… [truncated: 7 more names]");
    for san in &d.sans[..63] {
        assert!(san.chars().count() <= 256, "{san}");
        assert!(san.starts_with("DNS:"), "{san}");
        let (kept, _) = san.rsplit_once('…').expect("the marker");
        assert_eq!(
            truncated_marker(san),
            Some(304 - kept.chars().count()),
            "{san}"
        );
    }
    // The label: at most 1000 characters, marker included.
    let label = stored.label.as_deref().unwrap();
    assert!(label.chars().count() <= 1000, "{}", label.len());
    assert!(truncated_marker(label).is_some(), "{label}");

    // The audit log holds the same bounded subject.
    let mut logged = Vec::new();
    store
        .for_each_audit(Some(&endpoint), |e| {
            logged.push(e.subject.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(logged, [Some(d.subject.clone())]);
}
