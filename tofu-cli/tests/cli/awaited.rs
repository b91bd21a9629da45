//! Pins from a fingerprint alone (`addcert --fingerprint`), awaited until the first handshake
//! that presents the certificate fills them in, against real `openssl s_server` processes.

use crate::util::*;

/// A key and a self-signed certificate for /CN=`cn`, made by openssl in `dir`.
fn openssl_cert(dir: &std::path::Path, name: &str, cn: &str) -> (String, String) {
    let key = format!("{name}.key");
    let cert = format!("{name}.pem");
    openssl_in(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl_in(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            &key,
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "365",
            "-out",
            &cert,
        ],
    );
    let path = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    (path(&cert), path(&key))
}

/// What `openssl x509 -fingerprint -sha256 -noout` prints after `=`: colon hex.
fn openssl_fingerprint(dir: &std::path::Path, cert: &str) -> String {
    let line = openssl_in(
        dir,
        &["x509", "-in", cert, "-fingerprint", "-sha256", "-noout"],
    );
    let (_, hex) = line
        .trim_end()
        .split_once('=')
        .expect("sha256 Fingerprint=…");
    assert_eq!(hex.len(), 32 * 3 - 1, "{line}");
    hex.to_owned()
}

#[test]
fn a_pin_from_openssls_fingerprint_is_awaited_then_filled_by_the_first_handshake() {
    let env = Env::new();
    let dir = env.dir.path();
    let (cert, key) = openssl_cert(dir, "server", "prime-sec");
    let hex = openssl_fingerprint(dir, &cert);
    let fp: tofu_core::Fingerprint = hex.parse().unwrap();
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let host_port = format!("127.0.0.1_{port}");

    // Before any connection: pinned from the fingerprint alone.
    env.run(&["addcert", "host", &endpoint, "--fingerprint", &hex, "--label", "from the admin"])
        .success()
        .stdout(&format!(
            "pinned {endpoint} to the certificate {fp}, awaited: no certificate yet. The first connection that presents a matching certificate (and proves it holds its key) fills in its details; any other certificate is refused\n"
        ));
    // Shown as awaited everywhere, with no subject.
    env.run(&["listcerts"]).success().stdout(&format!(
        "host={host_port};  subject= (awaited: no certificate yet, {fp})\n"
    ));
    let table = env.run(&["listcerts", "--format", "table"]);
    let line = table
        .success()
        .stdout
        .lines()
        .find(|l| l.starts_with(&endpoint))
        .expect("listed")
        .to_owned();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (words[1], words[2], words[9]),
        ("awaited", fp.to_string().as_str(), "certificate"),
        "{line}"
    );
    assert!(
        line.contains("(no certificate yet)  from the admin"),
        "{line}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&env.run(&["listcerts", "--format", "json"]).success().stdout)
            .unwrap();
    assert_eq!(doc["pins"], serde_json::json!([]));
    let awaited = &doc["awaited"][0];
    assert_eq!(awaited["endpoint"], endpoint.as_str());
    assert_eq!(awaited["awaited"], true);
    assert_eq!(awaited["state"], "active");
    assert_eq!(awaited["match"], "certificate");
    assert_eq!(awaited["fingerprint"], fp.to_string());
    assert_eq!(awaited["spki_fingerprint"], serde_json::Value::Null);
    assert_eq!(awaited["subject"], serde_json::Value::Null);
    assert_eq!(awaited["source"], "operator");
    let shown = env.run(&["showcert", "host", &endpoint]);
    shown.success();
    assert!(
        shown
            .stdout
            .contains("awaited pin (from a fingerprint; no certificate presented yet)")
            && shown
                .stdout
                .contains(&format!("  sha256 (openssl)  {hex}\n"))
            && shown
                .stdout
                .contains("  subject           none yet (no certificate presented)\n"),
        "{}",
        shown.stdout
    );
    env.run(&["check"])
        .success()
        .stdout("sound: 0 pins, 1 awaited, 0 quarantined, 1 audit entries, 0 findings\n");

    // The first handshake presents it, and the server holds its key: filled in.
    let _server = TlsServer::start(&cert, &key, port);
    env.run(&["probe", "host", &endpoint]).success().stdout(&format!(
        "filled: {endpoint} presented {fp} (/CN=prime-sec), the certificate its awaited pin named; the pin now holds it\n"
    ));
    env.run(&["listcerts"])
        .success()
        .stdout(&format!("host={host_port};  subject= /CN=prime-sec\n"));
    let doc: serde_json::Value =
        serde_json::from_str(&env.run(&["listcerts", "--format", "json"]).success().stdout)
            .unwrap();
    assert_eq!(doc["awaited"], serde_json::json!([]));
    assert_eq!(doc["pins"][0]["subject"], "/CN=prime-sec");
    assert_eq!(doc["pins"][0]["label"], "from the admin");
    assert_eq!(doc["pins"][0]["times_seen"], 1);
    env.run(&["log", "host", &endpoint])
        .success()
        .stdout(&format!(
            "[..]awaited[..]{fp}[..]\n[..]filled[..]{fp}[..]/CN=prime-sec[..]\n"
        ));
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout("match: [..]\n");
    env.run(&["check"])
        .success()
        .stdout("sound: 1 pins, 0 quarantined, 2 audit entries, 0 findings\n");
}

#[test]
fn an_awaited_pin_refuses_another_certificate_even_on_first_use_and_deletecert_removes_it() {
    let env = Env::new();
    let dir = env.dir.path();
    let (awaited_cert, _) = openssl_cert(dir, "awaited", "prime-sec");
    let (other_cert, other_key) = openssl_cert(dir, "other", "prime-sec");
    let fp: tofu_core::Fingerprint = openssl_fingerprint(dir, &awaited_cert).parse().unwrap();
    let other_fp: tofu_core::Fingerprint = openssl_fingerprint(dir, &other_cert).parse().unwrap();
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let host_port = format!("127.0.0.1_{port}");
    env.run(&[
        "addcert",
        "host",
        &endpoint,
        "--fingerprint",
        &fp.to_string(),
    ])
    .success();
    let _server = TlsServer::start(&other_cert, &other_key, port);
    // Trust on first use (--pin) does not apply: the endpoint is pinned.
    let refused = env.run(&["probe", "host", &endpoint, "--pin"]);
    refused.code(4);
    assert!(
        refused.stderr.contains(&format!(
            "  awaited    fingerprint  {fp} (awaited: no certificate presented yet)\n"
        )) && refused.stderr.contains(&format!(
            "tofu-certs accept host {endpoint} --fingerprint {other_fp}"
        )),
        "{}",
        refused.stderr
    );
    let json = env.run(&["probe", "host", &endpoint, "--format", "json"]);
    json.code(4);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["outcome"], "mismatch");
    assert_eq!(doc["pinned"], serde_json::json!([]));
    assert_eq!(doc["awaited"][0]["fingerprint"], fp.to_string());
    // Audited as the mismatch it is, not as an unpinned endpoint's refusal.
    let log = env.run(&["log", "host", &endpoint]);
    assert!(
        log.success().stdout.contains("  mismatch-rejected  "),
        "{}",
        log.stdout
    );
    // Quarantined, and the endpoint is listed with what it awaits.
    env.run(&["listcerts", "--quarantined"])
        .success()
        .stdout(&format!(
            "host={host_port};  subject= (awaited: no certificate yet, {fp})\n"
        ));
    let doc: serde_json::Value = serde_json::from_str(
        &env.run(&["showcert", "host", &endpoint, "--format", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(doc["pins"], serde_json::json!([]));
    assert_eq!(doc["awaited"][0]["fingerprint"], fp.to_string());
    assert_eq!(doc["quarantined"][0]["fingerprint"], other_fp.to_string());

    // deletecert by the awaited fingerprint removes it, and says it was awaited.
    env.run(&[
        "deletecert",
        "host",
        &endpoint,
        "--fingerprint",
        &fp.to_string(),
    ])
    .success()
    .stdout(&format!(
        "removed awaited pin host={host_port};  subject= (awaited: no certificate yet)  ({fp})\n"
    ));
    env.run(&[
        "deletecert",
        "host",
        &endpoint,
        "--fingerprint",
        &fp.to_string(),
    ])
    .code(3);
    // Awaited twice: refused, naming the command that shows it.
    let fp_text = fp.to_string();
    let add = ["addcert", "host", &endpoint, "--fingerprint", &fp_text];
    env.run(&add).success();
    env.run(&add).code(1).stderr(&format!(
        "error: {endpoint} already awaits a certificate with fingerprint {fp} (a pin made from a fingerprint, not yet presented); nothing was changed\nhint: `tofu-certs showcert host {endpoint} --store [..]` shows the endpoint's pins\n"
    ));
    env.run(&[
        "deletecert",
        "host",
        &endpoint,
        "--fingerprint",
        &fp.to_string(),
    ])
    .success();
    // Again, then the whole endpoint, in JSON.
    env.run(&[
        "addcert",
        "host",
        &endpoint,
        "--fingerprint",
        &fp.to_string(),
    ])
    .success();
    let doc: serde_json::Value = serde_json::from_str(
        &env.run(&["deletecert", "host", &endpoint, "--format", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(doc["removed"]["awaited"][0]["fingerprint"], fp.to_string());
    assert_eq!(
        doc["removed"]["quarantined"][0]["fingerprint"],
        other_fp.to_string()
    );
    env.run(&["showcert", "host", &endpoint]).code(3);
}

#[test]
fn a_key_pin_from_an_okhttp_pin_is_filled_by_a_certificate_of_the_key() {
    let env = Env::new();
    let dir = env.dir.path();
    let (cert, key) = openssl_cert(dir, "server", "prime-sec");
    // sha256/BASE64 of the SubjectPublicKeyInfo, as OkHttp's CertificatePinner takes it.
    openssl_in(
        dir,
        &[
            "pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", "spki.der",
        ],
    );
    openssl_in(
        dir,
        &[
            "dgst",
            "-sha256",
            "-binary",
            "-out",
            "spki.sha256",
            "spki.der",
        ],
    );
    let b64 = openssl_in(dir, &["base64", "-A", "-in", "spki.sha256"]);
    let pin = format!("sha256/{}", b64.trim());
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");

    // The key pin's notation without --match key: refused, with the command that means it.
    env.run(&["addcert", "host", &endpoint, "--fingerprint", &pin])
        .code(2)
        .stderr(&format!(
            "error: \"{pin}\" is in the notation of a public-key pin (HPKP, OkHttp: sha256/BASE64), but the pin would match the whole certificate; nothing was pinned\nhint: to pin that public key: `tofu-certs addcert host {endpoint} --fingerprint {pin} --match key --store [..]`\n"
        ));
    env.run(&[
        "addcert",
        "host",
        &endpoint,
        "--fingerprint",
        &pin,
        "--match",
        "key",
    ])
    .success()
    .stdout(&format!(
        "pinned {endpoint} to the public key SHA256:[..], awaited: [..]\n"
    ));
    let doc: serde_json::Value =
        serde_json::from_str(&env.run(&["listcerts", "--format", "json"]).success().stdout)
            .unwrap();
    assert_eq!(doc["awaited"][0]["match"], "key");
    assert_eq!(doc["awaited"][0]["fingerprint"], serde_json::Value::Null);
    let _server = TlsServer::start(&cert, &key, port);
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout("filled: [..]\n");
    let doc: serde_json::Value =
        serde_json::from_str(&env.run(&["listcerts", "--format", "json"]).success().stdout)
            .unwrap();
    assert_eq!(doc["pins"][0]["match"], "key");
    let spki_fp: tofu_core::Fingerprint = pin.parse().unwrap();
    assert_eq!(doc["pins"][0]["spki_fingerprint"], spki_fp.to_string());
}

#[test]
fn accepting_a_certificate_no_longer_quarantined_awaits_it_as_the_next_pin() {
    let env = Env::new();
    let dir = env.dir.path();
    let (old_cert, old_key) = openssl_cert(dir, "old", "prime-sec");
    let (new_cert, new_key) = openssl_cert(dir, "new", "prime-sec");
    let new_fp: tofu_core::Fingerprint = openssl_fingerprint(dir, &new_cert).parse().unwrap();
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    env.run(&["addcert", "host", &endpoint, "--cert", &old_cert])
        .success();
    // The administrator says the new certificate is coming; nothing presented it yet.
    env.run(&["accept", "host", &endpoint, "--fingerprint", &new_fp.to_string()])
        .success()
        .stdout(&format!(
            "{new_fp} is not in the quarantine of {endpoint} (any more), so it is pinned as awaited: the first connection that presents that certificate (and proves it holds its key) makes it the pin of {endpoint} and retires the active pins\n"
        ));
    let table = env.run(&["listcerts", "--format", "table"]);
    assert!(
        table.success().stdout.contains("awaited-next"),
        "{}",
        table.stdout
    );
    // Until then the old certificate stays the pin.
    let server = TlsServer::start(&old_cert, &old_key, port);
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout("match: [..]\n");
    server.stop();
    let _server = TlsServer::start(&new_cert, &new_key, port);
    env.run(&["probe", "host", &endpoint])
        .success()
        .stdout("filled: [..]\n");
    let doc: serde_json::Value =
        serde_json::from_str(&env.run(&["listcerts", "--format", "json"]).success().stdout)
            .unwrap();
    assert_eq!(doc["pins"].as_array().unwrap().len(), 1);
    assert_eq!(doc["pins"][0]["fingerprint"], new_fp.to_string());
    assert_eq!(doc["pins"][0]["source"], "accepted");
    env.run(&["log", "host", &endpoint])
        .success()
        .stdout("[..]added[..]\n[..]awaited[..]\n[..]retired[..]\n[..]filled[..]\n");
}
