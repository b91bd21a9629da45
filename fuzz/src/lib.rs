//! What each fuzz target checks, as plain functions: the targets in `fuzz_targets/` call them
//! with libFuzzer's inputs, and the workspace's `tests/tests/reliability_fuzz_inputs.rs`
//! calls them with every committed seed and regression input, so that `cargo test` keeps a
//! crash found once fixed without needing cargo-fuzz.
//!
//! Beyond "never panics": what is accepted round-trips through the form tofu-certs prints,
//! and what is refused is refused with a message fit for a terminal.

use tofu_core::{
    cert::{read_certificates, to_pem, CertificateDetails},
    endpoint::Host,
    export::parse_export,
    Endpoint, Fingerprint,
};

/// The longest error message any parser may produce, whatever the input.
pub const MAX_MESSAGE: usize = 2000;

/// An error message a person can be shown: bounded, and nothing a terminal would interpret
/// (control characters other than line breaks, format characters such as bidirectional
/// overrides, line and paragraph separators).
pub fn assert_presentable(message: &str) {
    assert!(!message.is_empty(), "an empty error message");
    assert!(
        message.len() <= MAX_MESSAGE,
        "an error message of {} bytes: {:?}…",
        message.len(),
        message.chars().take(200).collect::<String>()
    );
    assert!(
        !message.chars().any(|c| c != '\n' && unprintable(c)),
        "an unprintable character in the message {message:?}"
    );
}

/// Control, format and separator characters (Unicode Cc, Cf, Zl, Zp): tofu-core's one
/// definition of what is never shown raw.
fn unprintable(c: char) -> bool {
    tofu_core::text::must_escape(c)
}

/// `str::parse::<Endpoint>`: an endpoint prints in a form that parses back to it (canonical
/// and Prime's `host_port` alike), printable ASCII; `Endpoint::new` agrees with parsing; no
/// accepted name ends in a number (so none is an IPv4 address in disguise).
pub fn endpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Endpoint>() {
        Ok(e) => {
            let shown = e.to_string();
            assert!(
                shown.bytes().all(|b| b.is_ascii_graphic()),
                "{text:?} printed as {shown:?}"
            );
            assert_eq!(
                shown.parse::<Endpoint>().as_ref(),
                Ok(&e),
                "{text:?} → {shown:?}"
            );
            let prime = e.host_port();
            assert_eq!(
                prime.parse::<Endpoint>().as_ref(),
                Ok(&e),
                "{text:?} → {prime:?}"
            );
            let host = match e.host() {
                Host::Dns(name) => {
                    // A name a URL parser would read as an IPv4 address is a second key for
                    // that address: such names are refused.
                    let last = name.rsplit('.').next().unwrap_or_default();
                    assert!(
                        !(last.bytes().all(|b| b.is_ascii_digit())
                            || last.starts_with("0x")
                                && last[2..].bytes().all(|b| b.is_ascii_hexdigit())),
                        "{text:?} is the name {name:?}, which ends in a number"
                    );
                    name.clone()
                }
                Host::Ip(ip) => ip.to_string(),
            };
            assert_eq!(Endpoint::new(&host, e.port()).as_ref(), Ok(&e), "{text:?}");
            let _ = e.server_name();
        }
        Err(err) => assert_presentable(&err.to_string()),
    }
}

/// `str::parse::<Fingerprint>`: every form a fingerprint prints in parses back to it.
pub fn fingerprint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Fingerprint>() {
        Ok(fp) => {
            for form in [
                fp.to_string(),
                fp.to_hex(),
                fp.to_hex_colons(),
                fp.to_hex_colons().to_lowercase(),
                format!("sha256 Fingerprint={}", fp.to_hex_colons()),
            ] {
                assert_eq!(form.parse::<Fingerprint>(), Ok(fp), "{text:?} → {form:?}");
            }
        }
        Err(err) => assert_presentable(&err.to_string()),
    }
}

/// `CertificateDetails::from_der` and `read_certificates`: what is extracted is the
/// certificate's own fingerprint and one-line printable names; a certificate accepted as DER
/// is accepted as PEM too; whatever `read_certificates` returns is a usable certificate.
pub fn certificate(data: &[u8]) {
    match CertificateDetails::from_der(data) {
        Ok(details) => {
            assert_eq!(details.fingerprint, Fingerprint::of(data));
            for name in [&details.subject, &details.issuer] {
                assert!(
                    name.bytes().all(|b| (b' '..=b'~').contains(&b)),
                    "a subject or issuer that is not printable ASCII: {name:?}"
                );
            }
            for san in &details.sans {
                assert!(!san.chars().any(unprintable), "a SAN with {san:?}");
            }
            let pem = to_pem(data);
            for bytes in [data, pem.as_bytes()] {
                let certs = read_certificates(bytes).expect("a certificate is read back");
                assert_eq!(certs.len(), 1);
                assert_eq!(certs[0].as_ref(), data);
            }
        }
        Err(err) => assert_presentable(&err.to_string()),
    }
    match read_certificates(data) {
        Ok(certs) => {
            assert!(!certs.is_empty());
            for cert in certs {
                CertificateDetails::from_der(&cert).expect("what is read is usable");
            }
        }
        Err(err) => assert_presentable(&err.to_string()),
    }
}

/// `parse_export`: every pin of an accepted file has a canonical endpoint, a usable
/// certificate and a one-line label; a refused file gets a bounded, printable message.
pub fn import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_export(text) {
        Ok(pins) => {
            for pin in pins {
                let shown = pin.endpoint.to_string();
                assert_eq!(shown.parse::<Endpoint>().as_ref(), Ok(&pin.endpoint));
                CertificateDetails::from_der(&pin.der).expect("an imported certificate is usable");
                if let Some(label) = &pin.label {
                    assert!(!label.chars().any(unprintable), "label {label:?}");
                }
            }
        }
        Err(err) => assert_presentable(&err.to_string()),
    }
}
