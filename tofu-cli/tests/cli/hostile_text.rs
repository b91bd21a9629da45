//! Text a hostile peer (a certificate's names) or a hostile filesystem (a tampered store)
//! puts in front of the operator: every format of every command that shows it writes the
//! characters a terminal would obey or hide (Unicode Cc, Cf, Zl, Zp) escaped, never raw.

use rcgen::{CertificateParams, DnType, KeyPair};
use tofu_core::{pin::PinState, Endpoint, Store};

use crate::util::{Env, TestCert};

/// A character a terminal would obey or hide rather than show, listed independently of
/// tofu-core's table: the controls, and the format and separator characters that spoof
/// names (bidirectional controls, zero-width characters, the byte-order mark, soft hyphen).
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{e0001}')
}

#[track_caller]
fn assert_nothing_hidden(what: &str, text: &str) {
    assert_eq!(
        text.chars().find(|&c| hidden(c)),
        None,
        "{what}: a raw hidden character in {text:?}"
    );
}

/// `CN=evil\u{202E}moc.elgoog` (read as `CN=evilgoogle.com`), an organisation with a line
/// separator, and a UPN with a zero-width space and a byte-order mark.
fn hostile_cert() -> TestCert {
    let mut params = CertificateParams::new(vec!["ok.example".into()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        rcgen::OtherNameValue::Utf8String("admin\u{202e}moc.elgoog\u{200b}\u{feff}".into()),
    )));
    params
        .distinguished_name
        .push(DnType::CommonName, "evil\u{202e}moc.elgoog");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "a\u{2028}b");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    TestCert {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[test]
fn bidi_and_invisible_characters_from_a_peer_or_a_tampered_store_are_shown_escaped_everywhere() {
    let env = Env::new();
    let cert = hostile_cert();
    env.pin("hostile.example:443", &cert);
    // A library caller's label (the command itself refuses control characters only), and
    // a second endpoint whose stored names someone who can write the store replaced.
    let label = "HA\u{202e}yradnoces\u{2029}  two\u{200b}spaces; and a semicolon";
    {
        let store = Store::open(env.store()).unwrap();
        let other = crate::util::prime_cert("tampered");
        let ep: Endpoint = "tampered.example:443".parse().unwrap();
        store
            .add_pin(&ep, &other.der, PinState::Next, Some(label))
            .unwrap();
    }
    let db = rusqlite::Connection::open(env.store().join(tofu_core::store::DATABASE_FILE)).unwrap();
    db.execute(
        "UPDATE pin SET subject = ?1, issuer = ?1, sans = ?2 WHERE endpoint = 'tampered.example:443'",
        [
            "/CN=evil\u{202e}moc.elgoog\u{2028};  subject= /CN=x",
            "DNS:a\u{2066}b\nDNS:c\u{feff}",
        ],
    )
    .unwrap();
    // The audit log is append-only, but an entry can be forged.
    db.execute(
        "INSERT INTO audit (at, endpoint, event, subject, actor) \
         VALUES (1800000000, 'tampered.example:443', 'added', ?1, ?2)",
        ["/CN=log\u{202e}gol", "evil\u{202e}rotca"],
    )
    .unwrap();
    drop(db);

    let prime = env.run(&["listcerts"]);
    prime.success();
    assert_nothing_hidden("listcerts", &prime.stdout);
    // Prime's format, byte for byte: the subject as OpenSSL prints it, `;` inside it raw.
    assert!(
        prime.stdout.contains(
            r"host=hostile.example_443;  subject= /CN=evil\xE2\x80\xAEmoc.elgoog/O=a\xE2\x80\xA8b"
        ),
        "{}",
        prime.stdout
    );
    assert!(
        prime.stdout.contains(
            r"host=tampered.example_443;  subject= /CN=evil\xE2\x80\xAEmoc.elgoog\xE2\x80\xA8;  subject= /CN=x"
        ),
        "{}",
        prime.stdout
    );

    let table = env.run(&["listcerts", "--format", "table"]);
    table.success();
    assert_nothing_hidden("listcerts --format table", &table.stdout);
    // The label is the last column: whatever it holds cannot shift another.
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("tampered.example:443"))
        .unwrap();
    assert!(
        row.ends_with(r"HA\u{202e}yradnoces\u{2029}  two\u{200b}spaces; and a semicolon"),
        "{row}"
    );

    let json = env.run(&["listcerts", "--format", "json"]);
    json.success();
    assert_nothing_hidden("listcerts --format json", &json.stdout);
    // Valid JSON that keeps the text exact: the characters are written as \uXXXX escapes.
    assert!(
        json.stdout.contains(r"HA\u202eyradnoces\u2029"),
        "{}",
        json.stdout
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let pins = doc["pins"].as_array().unwrap();
    let tampered = pins
        .iter()
        .find(|p| p["endpoint"] == "tampered.example:443")
        .unwrap();
    assert_eq!(tampered["label"], label);
    assert_eq!(
        tampered["subject"],
        "/CN=evil\u{202e}moc.elgoog\u{2028};  subject= /CN=x"
    );
    let hostile = pins
        .iter()
        .find(|p| p["endpoint"] == "hostile.example:443")
        .unwrap();
    assert_eq!(
        hostile["sans"][1],
        r"othername: UPN::admin\xE2\x80\xAEmoc.elgoog\xE2\x80\x8B\xEF\xBB\xBF"
    );

    for endpoint in ["hostile.example:443", "tampered.example:443"] {
        let show = env.run(&["showcert", "host", endpoint]);
        show.success();
        assert_nothing_hidden("showcert", &show.stdout);
    }
    let show = env.run(&["showcert", "host", "tampered.example:443"]);
    for needle in [
        r"  subject           /CN=evil\xE2\x80\xAEmoc.elgoog\xE2\x80\xA8;  subject= /CN=x",
        r"  names             DNS:a\xE2\x81\xA6b, DNS:c\xEF\xBB\xBF",
        r"  label             HA\u{202e}yradnoces\u{2029}  two\u{200b}spaces; and a semicolon",
    ] {
        assert!(show.stdout.contains(needle), "{needle}\n{}", show.stdout);
    }

    for format in ["text", "json"] {
        let log = env.run(&["log", "--format", format]);
        log.success();
        assert_nothing_hidden("log", &log.stdout);
        let forged = log.stdout.lines().last().unwrap();
        if format == "json" {
            let entry: serde_json::Value = serde_json::from_str(forged).unwrap();
            assert_eq!(entry["subject"], "/CN=log\u{202e}gol");
            assert_eq!(entry["actor"], "evil\u{202e}rotca");
        } else {
            assert!(
                forged.ends_with(r"  /CN=log\xE2\x80\xAEgol  by evil\u{202e}rotca"),
                "{forged}"
            );
        }
    }

    let export = env.path("backup.toml");
    env.run(&["export", "--output", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    assert_nothing_hidden("export", &text);
    // The label is written with TOML escapes, and imported back exactly.
    assert!(
        text.contains(r#"label = "HA\u202Eyradnoces\u2029  two\u200Bspaces; and a semicolon""#),
        "{text}"
    );
    let restored = Env::new();
    restored.run(&["import", export.to_str().unwrap()]).code(0);
    let store = Store::open(restored.store()).unwrap();
    let ep: Endpoint = "tampered.example:443".parse().unwrap();
    assert_eq!(
        store.endpoint(&ep).unwrap().pins[0].label.as_deref(),
        Some(label)
    );
}

#[test]
fn an_error_message_shows_a_file_name_s_bidi_characters_escaped() {
    // A file name chosen to reorder the message around it.
    let env = Env::new();
    let name = env.write("evil\u{202e}mep.cert", "not a certificate");
    let out = env.run(&["addcert", "host", "a.example:443", "--cert", &name]);
    out.code(1);
    assert_nothing_hidden("addcert's error", &out.stderr);
    assert!(
        out.stderr.contains(r"evil\u{202e}mep.cert"),
        "{}",
        out.stderr
    );
    let out = env.run(&["showcert", "host", "a.example:443\u{2028}"]);
    out.code(2);
    assert_nothing_hidden("a usage error", &out.stderr);
}
