//! listcerts and showcert: what an operator reads.

use std::ops::ControlFlow;

use rcgen::{DistinguishedName, DnType, DnValue};

use crate::util::*;

#[test]
fn listcerts_prints_primes_format_byte_for_byte() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    let (file, _) = env.write_cert("c", &cert);
    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &file])
        .success();

    let run = env.run(&["listcerts"]);
    run.success();
    assert_eq!(
        run.stdout,
        "host=10.1.1.1_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri\n"
    );
    assert_eq!(openssl_subject(&file), PRIME_SUBJECT);
}

#[test]
fn subjects_are_printed_exactly_as_openssl_compat_prints_them() {
    let env = Env::new();
    let email = DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]);
    let mut names: Vec<DistinguishedName> = Vec::new();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DE");
    dn.push(DnType::LocalityName, "Zürich München");
    dn.push(DnType::OrganizationName, "R&D/Ops+Lab");
    dn.push(DnType::CommonName, "prime-sec");
    names.push(dn);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "only-cn");
    names.push(dn);
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::PrintableString("Cisco Systems".try_into().unwrap()),
    );
    dn.push(
        email,
        DnValue::Ia5String("ops@example.com".try_into().unwrap()),
    );
    dn.push(DnType::CommonName, "with spaces = and, commas");
    names.push(dn);
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        DnValue::BmpString("bmp".try_into().unwrap()),
    );
    names.push(dn);

    let mut expected = String::new();
    for (i, dn) in names.into_iter().enumerate() {
        let cert = cert_with(dn, "tricky.example");
        let (file, _) = env.write_cert(&format!("tricky{i}"), &cert);
        let endpoint = format!("10.0.0.{}:443", i + 1);
        env.run(&["addcert", "host", &endpoint, "--cert", &file])
            .success();
        expected.push_str(&format!(
            "host=10.0.0.{}_443;  subject= {}\n",
            i + 1,
            openssl_subject(&file)
        ));
    }
    let run = env.run(&["listcerts"]);
    run.success();
    assert_eq!(run.stdout, expected);
}

#[test]
fn listcerts_lists_in_the_stores_order_endpoint_text_then_active_before_staged() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    let next = prime_cert("prime-pri-2027");
    let next_file = env.write("next.pem", &next.pem);
    // Pinned in no particular order; 10.1.1.1:8082's staged pin before its active one.
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &next_file,
        "--next",
    ])
    .success();
    for endpoint in [
        "10.1.1.10:8082",
        "[FD00::5]:8443",
        "10.1.1.9:8082",
        "Prime-Sec.Example.com:443",
        "10.1.1.9:443",
        "10.1.1.1:8082",
        "1prime.example:443",
    ] {
        env.pin(endpoint, &cert);
    }
    // By the endpoint as host:port text, byte by byte: `:` sorts after the digits, so
    // 10.1.1.10:8082 comes before 10.1.1.1:8082; `[` after the digits, letters after `[`.
    // Within an endpoint, active pins before staged ones.
    let order = [
        "10.1.1.10:8082",
        "10.1.1.1:8082",
        "10.1.1.1:8082",
        "10.1.1.9:443",
        "10.1.1.9:8082",
        "1prime.example:443",
        "[fd00::5]:8443",
        "prime-sec.example.com:443",
    ];
    env.run(&["listcerts"]).success().stdout(&format!(
        "host=10.1.1.10_8082;  subject= {PRIME_SUBJECT}
host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}
host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}-2027
host=10.1.1.9_443;  subject= {PRIME_SUBJECT}
host=10.1.1.9_8082;  subject= {PRIME_SUBJECT}
host=1prime.example_443;  subject= {PRIME_SUBJECT}
host=fd00::5_8443;  subject= {PRIME_SUBJECT}
host=prime-sec.example.com_443;  subject= {PRIME_SUBJECT}
"
    ));

    // The table and the JSON document list the pins in the same order.
    let table = env.run(&["listcerts", "--format", "table"]);
    table.success();
    let rows: Vec<(&str, &str)> = table
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split_whitespace();
            (cells.next().unwrap(), cells.next().unwrap())
        })
        .collect();
    let mut expected: Vec<(&str, &str)> = order.iter().map(|e| (*e, "active")).collect();
    expected[2].1 = "staged";
    assert_eq!(rows, expected, "{}", table.stdout);
    let json = env.run(&["listcerts", "--format", "json"]);
    json.success();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let pins: Vec<(&str, &str)> = doc["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["endpoint"].as_str().unwrap(),
                p["state"].as_str().unwrap(),
            )
        })
        .collect();
    expected[2].1 = "next";
    assert_eq!(pins, expected, "{}", json.stdout);
}

#[test]
fn quarantined_certificates_follow_their_endpoints_pins() {
    let env = Env::new();
    let (a, b, c) = (prime_cert("a"), prime_cert("b"), prime_cert("c"));
    for (endpoint, cert) in [
        ("10.0.0.3:443", &c),
        ("10.0.0.1:443", &a),
        ("10.0.0.2:443", &b),
    ] {
        env.pin(endpoint, cert);
    }
    // Refused certificates: two at 10.0.0.2, which is pinned, and one at 10.0.0.15, which is
    // not (it sorts between 10.0.0.1:443 and 10.0.0.2:443).
    let (x, y, z) = (prime_cert("x"), prime_cert("y"), prime_cert("z"));
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"10.0.0.2:443".parse().unwrap(), &x.der)
        .unwrap();
    store
        .quarantine(&"10.0.0.15:443".parse().unwrap(), &y.der)
        .unwrap();
    // Quarantined certificates of one endpoint come newest first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    store
        .quarantine(&"10.0.0.2:443".parse().unwrap(), &z.der)
        .unwrap();
    drop(store);

    let rows = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["listcerts", "--format", "table"];
        all.extend_from_slice(args);
        let run = env.run(&all);
        run.success();
        run.stdout
            .lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", cells[0], cells[1], cells[2])
            })
            .collect()
    };
    let fp = |c: &TestCert| c.fingerprint();
    let [a, b, c] = [&a, &b, &c].map(fp);
    assert_eq!(
        rows(&[]),
        [
            format!("10.0.0.15:443 quarantined {}", fp(&y)),
            format!("10.0.0.1:443 active {a}"),
            format!("10.0.0.2:443 active {b}"),
            format!("10.0.0.2:443 quarantined {}", fp(&z)),
            format!("10.0.0.2:443 quarantined {}", fp(&x)),
            format!("10.0.0.3:443 active {c}"),
        ]
    );
    // --quarantined: the pins of endpoints with quarantined certificates, and every
    // quarantined certificate.
    assert_eq!(
        rows(&["--quarantined"]),
        [
            format!("10.0.0.15:443 quarantined {}", fp(&y)),
            format!("10.0.0.2:443 active {b}"),
            format!("10.0.0.2:443 quarantined {}", fp(&z)),
            format!("10.0.0.2:443 quarantined {}", fp(&x)),
        ]
    );
    // --expiring-within: only the quarantined certificates of the endpoints still listed.
    assert_eq!(
        rows(&["--quarantined", "--expiring-within", "100000"]),
        [
            format!("10.0.0.2:443 active {b}"),
            format!("10.0.0.2:443 quarantined {}", fp(&z)),
            format!("10.0.0.2:443 quarantined {}", fp(&x)),
        ]
    );

    // The JSON document: the same order, laid out as serde_json's pretty printer would.
    for args in [&[][..], &["--expiring-within", "100000"]] {
        let mut all = vec!["listcerts", "--format", "json"];
        all.extend_from_slice(args);
        let run = env.run(&all);
        run.success();
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let text = &run.stdout;
        assert!(
            text.starts_with("{\n  \"version\": 1,\n  \"pins\": [\n    {\n      \"endpoint\": ")
                && text.contains("\n      \"label\": null\n    },\n    {\n      \"endpoint\": ")
                && text
                    .contains("\n    }\n  ],\n  \"quarantined\": [\n    {\n      \"endpoint\": ")
                && text.contains("\n      \"sans\": [\n        \"DNS:")
                && text.ends_with("\n      \"times_seen\": 1\n    }\n  ],\n  \"awaited\": []\n}\n"),
            "{text}"
        );
        let endpoints = |key: &str| -> Vec<String> {
            doc[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{} {}", p["endpoint"], p["fingerprint"]).replace('"', ""))
                .collect()
        };
        assert_eq!(
            endpoints("pins"),
            [
                format!("10.0.0.1:443 {a}"),
                format!("10.0.0.2:443 {b}"),
                format!("10.0.0.3:443 {c}"),
            ]
        );
        let mut quarantined = vec![
            format!("10.0.0.15:443 {}", fp(&y)),
            format!("10.0.0.2:443 {}", fp(&z)),
            format!("10.0.0.2:443 {}", fp(&x)),
        ];
        if !args.is_empty() {
            quarantined.remove(0);
        }
        assert_eq!(endpoints("quarantined"), quarantined);
    }
}

#[test]
fn table_sizes_its_columns_from_the_first_1000_rows_then_streams() {
    let env = Env::new();
    fill_store(&env.store(), 1100, &prime_cert("prime-pri"));
    // Sorts after 127.0.0.1:…, so it is row 1101: wider than the column sized before it.
    let long = "zz-a-much-longer-name.example:443";
    env.pin(long, &prime_cert("prime-pri"));

    let run = env.run(&["listcerts", "--format", "table"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1 + 1101);
    // The widest endpoint of the first 1000 rows is 127.0.0.1:1000 (14 characters).
    assert!(
        lines[0].starts_with("ENDPOINT        STATE   FINGERPRINT"),
        "{}",
        lines[0]
    );
    for line in &lines[1..1101] {
        assert_eq!(line.find("  active  SHA256:"), Some(14), "{line}");
    }
    assert!(
        lines[1101].starts_with(&format!("{long}  active  SHA256:")),
        "{}",
        lines[1101]
    );
}

#[test]
fn deletecert_takes_what_listcerts_printed() {
    let env = Env::new();
    for (endpoint, cn) in [
        ("10.1.1.1:8082", "prime-pri"),
        ("[fd00::5]:8443", "prime-v6"),
        ("prime-sec.example.com:443", "prime-sec"),
    ] {
        env.pin(endpoint, &prime_cert(cn));
    }
    let listing = env.run(&["listcerts"]);
    listing.success();
    assert_eq!(listing.stdout.lines().count(), 3);
    for line in listing.stdout.lines() {
        let host = line
            .strip_prefix("host=")
            .and_then(|rest| rest.split(';').next())
            .expect("host=…;");
        let subject = line.split_once(";  subject= ").unwrap().1;
        env.run(&["deletecert", "host", host])
            .success()
            .stdout(&format!(
                "removed active pin host={host};  subject= {subject}  (SHA256:[..])\n"
            ));
    }
    env.run(&["listcerts"]).success().stdout("");
    // Deleting again finds nothing: status 3, and the hint names the command that lists.
    env.run(&["deletecert", "host", "10.1.1.1_8082"])
        .code(3)
        .stdout("")
        .stderr(&format!(
            "error: 10.1.1.1:8082 is not pinned; nothing was removed
hint: `tofu-certs listcerts{}` lists the pinned endpoints, in the form deletecert takes
",
            env.store_arg()
        ));
}

#[test]
fn deletecert_with_a_fingerprint_removes_one_pin_of_several() {
    let env = Env::new();
    let (a, b) = (prime_cert("prime-pri"), prime_cert("prime-sec"));
    env.pin("10.1.1.1:8082", &a);
    let (b_file, _) = env.write_cert("b", &b);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &b_file,
        "--additional",
    ])
    .success();
    env.run(&["deletecert", "host", "10.1.1.1_8082", "--fingerprint", &b.fingerprint()])
        .success()
        .stdout(&format!(
            "removed active pin host=10.1.1.1_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-sec  ({})\n",
            b.fingerprint()
        ));
    env.run(&["listcerts"])
        .success()
        .stdout(&format!("host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}\n"));
    env.run(&[
        "deletecert",
        "host",
        "10.1.1.1:8082",
        "--fingerprint",
        &b.fingerprint(),
    ])
    .code(3)
    .stderr(&format!(
        "error: 10.1.1.1:8082 has no pin with fingerprint {}; nothing was removed\n[..]\n",
        b.fingerprint()
    ));
}

#[test]
fn table_shows_state_expiry_use_source_label_and_quarantine() {
    let env = Env::new();
    let (a, next, intruder) = (
        prime_cert("prime-pri"),
        prime_cert("prime-pri-2027"),
        prime_cert("prime-pri"),
    );
    let (a_file, _) = env.write_cert("a", &a);
    let (next_file, _) = env.write_cert("next", &next);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &a_file,
        "--label",
        "HA primary",
    ])
    .success();
    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &next_file, "--next"])
        .success()
        .stdout(&format!(
            "staged {} (/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri-2027) for 10.1.1.1:8082: the first connection that presents it makes it the pin\n",
            next.fingerprint()
        ));
    // What the verifier does when a handshake presents a certificate matching no pin.
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"10.1.1.1:8082".parse().unwrap(), &intruder.der)
        .unwrap();

    let run = env.run(&["listcerts", "--format", "table"]);
    run.success().stdout(&format!(
        "ENDPOINT       STATE        FINGERPRINT[..]NOT AFTER   DAYS[..]FIRST SEEN  LAST SEEN   SEEN  SOURCE    MATCH        SUBJECT[..]LABEL
10.1.1.1:8082  active       {}  2045-01-02  [..]  -           -           0     operator  certificate  {PRIME_SUBJECT}       HA primary
10.1.1.1:8082  staged       {}  2045-01-02  [..]  -           -           0     operator  certificate  {PRIME_SUBJECT}-2027  -
10.1.1.1:8082  quarantined  {}  2045-01-02  [..]  20[..]  20[..]  1     -         -            {PRIME_SUBJECT}       -
",
        a.fingerprint(),
        next.fingerprint(),
        intruder.fingerprint()
    ));
    assert!(!run.stdout.contains('\x1b'), "no colour off a terminal");

    // Prime's format lists pins, staged ones too, but not quarantined certificates.
    env.run(&["listcerts"]).success().stdout(&format!(
        "host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}
host=10.1.1.1_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri-2027
"
    ));
}

#[test]
fn json_has_the_documented_schema() {
    let env = Env::new();
    let (a, intruder) = (prime_cert("prime-pri"), prime_cert("mitm"));
    let (file, _) = env.write_cert("a", &a);
    env.run(&[
        "addcert",
        "host",
        "[fd00::5]:8443",
        "--cert",
        &file,
        "--label",
        "HA",
    ])
    .success();
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"[fd00::5]:8443".parse().unwrap(), &intruder.der)
        .unwrap();

    let run = env.run(&["listcerts", "--format", "json"]);
    run.success();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k.join(",")
    };
    assert_eq!(keys(&doc), "awaited,pins,quarantined,version");
    assert_eq!(doc["version"], 1);
    let pin = &doc["pins"][0];
    assert_eq!(
        keys(pin),
        "days_left,endpoint,fingerprint,first_seen,host_port,issuer,label,last_seen,match,\
         not_after,not_before,pinned_at,sans,source,spki_fingerprint,state,subject,times_seen"
    );
    assert_eq!(pin["endpoint"], "[fd00::5]:8443");
    assert_eq!(pin["host_port"], "fd00::5_8443");
    assert_eq!(pin["state"], "active");
    assert_eq!(pin["match"], "certificate");
    assert_eq!(pin["fingerprint"], a.fingerprint());
    assert_eq!(pin["subject"], PRIME_SUBJECT);
    assert_eq!(pin["sans"], serde_json::json!(["DNS:prime-pri"]));
    assert_eq!(pin["not_after"], "2045-01-02T00:00:00Z");
    assert_eq!(pin["first_seen"], serde_json::Value::Null);
    assert_eq!(pin["times_seen"], 0);
    assert_eq!(pin["source"], "operator");
    assert_eq!(pin["label"], "HA");
    let q = &doc["quarantined"][0];
    assert_eq!(
        keys(q),
        "days_left,endpoint,fingerprint,first_seen,host_port,issuer,last_seen,not_after,\
         not_before,sans,spki_fingerprint,subject,times_seen"
    );
    assert_eq!(q["fingerprint"], intruder.fingerprint());
    assert_eq!(q["times_seen"], 1);

    // An empty store is an empty document, not nothing.
    env.run(&["deletecert", "host", "fd00::5_8443"]).success();
    let empty = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&empty.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"version": 1, "pins": [], "quarantined": [], "awaited": []})
    );
    assert_eq!(
        empty.stdout,
        "{\n  \"version\": 1,\n  \"pins\": [],\n  \"quarantined\": [],\n  \"awaited\": []\n}\n"
    );
}

#[test]
fn filters_select_expiring_and_quarantined_pins() {
    let env = Env::new();
    let soon = {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "expiring");
        let mut params = rcgen::CertificateParams::new(vec!["expiring".into()]).unwrap();
        params.distinguished_name = dn;
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    };
    let soon_file = env.write("soon.pem", soon);
    let addcert = env.run(&["addcert", "host", "10.0.0.1:443", "--cert", &soon_file]);
    addcert.code(0).stderr(
        "warning: the certificate expired at 2020-01-01T00:00:00Z; it is pinned all the same (trust-on-first-use trusts the identity, not the dates)\n",
    );
    env.pin("10.0.0.2:443", &prime_cert("later"));
    env.pin("10.0.0.3:443", &prime_cert("mismatched"));
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"10.0.0.3:443".parse().unwrap(), &prime_cert("x").der)
        .unwrap();

    let show = env.run(&["showcert", "host", "10.0.0.1:443"]);
    show.success();
    assert!(
        show.stdout
            .contains("\n  not after         2020-01-01T00:00:00Z (expired "),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains(" days ago)\n"), "{}", show.stdout);
    env.run(&["listcerts", "--expiring-within", "30"])
        .success()
        .stdout("host=10.0.0.1_443;  subject= /CN=expiring\n");
    env.run(&["listcerts", "--quarantined"])
        .success()
        .stdout("host=10.0.0.3_443;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=mismatched\n");
    env.run(&["listcerts", "--quarantined", "--expiring-within", "30"])
        .success()
        .stdout("");
    let json = env.run(&["listcerts", "--format", "json", "--expiring-within", "30"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["pins"].as_array().unwrap().len(), 1);
    assert!(doc["pins"][0]["days_left"].as_i64().unwrap() < 0);
    assert_eq!(doc["quarantined"], serde_json::json!([]));
}

#[test]
fn showcert_shows_pins_staged_pins_and_quarantine() {
    let env = Env::new();
    let (a, next, intruder) = (
        prime_cert("prime-pri"),
        prime_cert("prime-pri-next"),
        prime_cert("prime-pri"),
    );
    let (a_file, _) = env.write_cert("a", &a);
    let (next_file, _) = env.write_cert("next", &next);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1_8082",
        "--cert",
        &a_file,
        "--label",
        "HA secondary",
    ])
    .success();
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1_8082",
        "--cert",
        &next_file,
        "--next",
    ])
    .success();
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"10.1.1.1:8082".parse().unwrap(), &intruder.der)
        .unwrap();

    let run = env.run(&["showcert", "host", "10.1.1.1_8082"]);
    run.success().stdout(&format!(
        "10.1.1.1:8082 (host=10.1.1.1_8082)

active pin
  fingerprint       {a_fp}
  sha256 (openssl)  [..]
  public key sha256 SHA256:[..]
  subject           {PRIME_SUBJECT}
  issuer            {PRIME_SUBJECT}
  names             DNS:prime-pri
  not before        2025-01-02T00:00:00Z
  not after         2045-01-02T00:00:00Z ([..] days left)
  pinned at         20[..]Z
  first seen        never
  last seen         never
  times seen        0
  source            operator
  matches           this certificate
  label             HA secondary

staged pin
  fingerprint       {next_fp}
  sha256 (openssl)  [..]
  public key sha256 SHA256:[..]
  subject           /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri-next
  issuer            /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri-next
  names             DNS:prime-pri-next
  not before        2025-01-02T00:00:00Z
  not after         2045-01-02T00:00:00Z ([..] days left)
  pinned at         20[..]Z
  first seen        never
  last seen         never
  times seen        0
  source            operator
  matches           this certificate

quarantined certificate (presented, matched no pin, not trusted)
  fingerprint       {q_fp}
  sha256 (openssl)  [..]
  public key sha256 SHA256:[..]
  subject           {PRIME_SUBJECT}
  issuer            {PRIME_SUBJECT}
  names             DNS:prime-pri
  not before        2025-01-02T00:00:00Z
  not after         2045-01-02T00:00:00Z ([..] days left)
  first seen        20[..]Z
  last seen         20[..]Z
  times seen        1
  to trust it       tofu-certs accept host 10.1.1.1:8082 --fingerprint {q_fp}{store}
",
        a_fp = a.fingerprint(),
        next_fp = next.fingerprint(),
        q_fp = intruder.fingerprint(),
        store = env.store_arg(),
    ));
    // The hex fingerprint is the one openssl prints.
    let hex = std::process::Command::new("openssl")
        .args(["x509", "-in", &a_file, "-noout", "-fingerprint", "-sha256"])
        .output()
        .unwrap();
    let hex = String::from_utf8(hex.stdout).unwrap();
    let hex = hex.trim().split_once('=').unwrap().1;
    assert!(
        run.stdout.contains(&format!("  sha256 (openssl)  {hex}\n")),
        "{hex}"
    );

    // --pem prints the certificates themselves, pins first, in a form openssl reads.
    let pem = env.run(&["showcert", "host", "10.1.1.1:8082", "--pem"]);
    pem.success();
    let certs = tofu_core::cert::read_certificates(pem.stdout.as_bytes()).unwrap();
    assert_eq!(
        certs,
        vec![a.der.clone(), next.der.clone(), intruder.der.clone()]
    );
    assert!(pem.stdout.starts_with(&format!(
        "# 10.1.1.1:8082 active {}\n-----BEGIN CERTIFICATE-----\n",
        a.fingerprint()
    )));
    // Each certificate after `# ENDPOINT STATE FINGERPRINT`, the states named as elsewhere.
    let headers: Vec<&str> = pem.stdout.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        headers,
        [
            format!("# 10.1.1.1:8082 active {}", a.fingerprint()),
            format!("# 10.1.1.1:8082 staged {}", next.fingerprint()),
            format!("# 10.1.1.1:8082 quarantined {}", intruder.fingerprint()),
        ]
    );

    env.run(&["showcert", "host", "10.9.9.9:1"]).code(3).stderr(&format!(
        "error: nothing is stored for 10.9.9.9:1: it has no pin and no quarantined certificate
hint: `tofu-certs listcerts{s}` lists the pinned endpoints; `tofu-certs probe host 10.9.9.9:1 --pin{s}` pins what it presents now
",
        s = env.store_arg()
    ));
    let mut count = 0;
    store
        .for_each_pin(|_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(count, 2, "showcert changed nothing");

    // deletecert names the states as showcert does.
    env.run(&["deletecert", "host", "10.1.1.1_8082"])
        .success()
        .stdout(&format!(
            "removed active pin host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}  ({a_fp})
removed staged pin host=10.1.1.1_8082;  subject= [..]CN=prime-pri-next  ({next_fp})
removed quarantined host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}  ({q_fp})
",
            a_fp = a.fingerprint(),
            next_fp = next.fingerprint(),
            q_fp = intruder.fingerprint(),
        ));
}

/// Issue 11, item 7: keys written before endpoints were canonicalised further
/// (`[::ffff:127.0.0.1]:443` is now 127.0.0.1:443, `0x7f000001:443` is now refused) must be
/// read without a panic until a migration rewrites them: a key that parses to another
/// canonical text is listed under it, one that no longer parses is a store error (status 1).
#[test]
fn keys_stored_in_a_spelling_that_is_no_longer_canonical_do_not_panic() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    env.pin("10.9.9.9:443", &cert);
    let db = rusqlite::Connection::open(env.store().join(tofu_core::store::DATABASE_FILE)).unwrap();
    db.execute(
        "UPDATE pin SET endpoint = '[::ffff:127.0.0.1]:443' WHERE endpoint = '10.9.9.9:443'",
        [],
    )
    .unwrap();
    env.run(&["listcerts"])
        .success()
        .stdout(&format!("host=127.0.0.1_443;  subject= {PRIME_SUBJECT}\n"));
    env.run(&["export"]).success();

    db.execute(
        "UPDATE pin SET endpoint = '0x7f000001:443' WHERE endpoint = '[::ffff:127.0.0.1]:443'",
        [],
    )
    .unwrap();
    drop(db);
    for args in [
        &["listcerts"][..],
        &["listcerts", "--format", "json"],
        &["export"],
    ] {
        let run = env.run(args);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:#?}");
        run.code(1)
            .stderr("error: [..]0x7f000001[..]\nhint: [..]\n");
    }
    for args in [
        &["showcert", "host", "127.0.0.1:443"][..],
        &["deletecert", "host", "127.0.0.1_443"],
        &["log"],
    ] {
        let run = env.run(args);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:#?}");
    }
}

/// The table pads by display width: a CJK character takes two columns of a terminal, so
/// counting characters would leave every column after a CJK subject or label out of line.
#[test]
fn table_aligns_cjk_subjects_and_labels_by_display_width() {
    use unicode_width::UnicodeWidthStr;

    let env = Env::new();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::CommonName, "東京サーバー");
    let tokyo = cert_with(dn, "tokyo.example");
    let (tokyo_file, _) = env.write_cert("tokyo", &tokyo);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &tokyo_file,
        "--label",
        "本社",
    ])
    .success();
    let (prime_file, _) = env.write_cert("prime", &prime_cert("p"));
    env.run(&[
        "addcert",
        "host",
        "10.1.1.2:8082",
        "--cert",
        &prime_file,
        "--label",
        "plain",
    ])
    .success();

    let run = env.run(&["listcerts", "--format", "table"]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[1].contains("  /C=JP/CN=東京サーバー  "),
        "{}",
        lines[1]
    );
    // Where each line's last column starts, in display columns: the same on every line.
    let label_column = |line: &str, label: &str| {
        let at = line.rfind(label).expect("the label ends the line");
        line[..at].width()
    };
    let header = label_column(lines[0], "LABEL");
    assert_eq!(label_column(lines[1], "本社"), header, "{}", run.stdout);
    assert_eq!(label_column(lines[2], "plain"), header, "{}", run.stdout);
    // The columns before the subject line up too.
    let subject = |line: &str| line.find("/C=").expect("a subject");
    assert_eq!(
        lines[1][..subject(lines[1])].width(),
        lines[2][..subject(lines[2])].width()
    );

    // Prime's format keeps OpenSSL's bytes, as Prime prints them.
    env.run(&["listcerts"]).success().stdout(
        "host=10.1.1.1_8082;  subject= /C=JP/CN=\\xE6\\x9D\\xB1\\xE4\\xBA\\xAC\\xE3\\x82\\xB5\\xE3\\x83\\xBC\\xE3\\x83\\x90\\xE3\\x83\\xBC
host=10.1.1.2_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=p
",
    );
}
