//! addcert, accept, log and the choice of store: what an operator changes.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

#[test]
fn addcert_takes_pem_or_der_and_refuses_bundles_and_keys() {
    let env = Env::new();
    let (leaf, ca) = (prime_cert("prime-pri"), prime_cert("some-ca"));
    let der_file = env.write("leaf.der", leaf.der.as_ref());
    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &der_file])
        .success()
        .stdout(&format!(
            "pinned 10.1.1.1:8082 to {} ({PRIME_SUBJECT})\n",
            leaf.fingerprint()
        ));

    let bundle = env.write("bundle.pem", format!("{}{}", leaf.pem, ca.pem));
    env.run(&["addcert", "host", "10.1.1.2:8082", "--cert", &bundle])
        .code(1)
        .stdout("")
        .stderr(&format!(
            "error: {bundle} holds 2 certificates; a pin is the endpoint's own (leaf) certificate alone, so nothing was pinned
hint: `openssl x509 -in {bundle} -out leaf.pem` writes the first certificate (in a chain, the leaf) to leaf.pem; check it with `openssl x509 -in leaf.pem -noout -subject`, then `tofu-certs addcert host 10.1.1.2:8082 --cert leaf.pem{}`
",
            env.store_arg()
        ));

    let key = env.write("key.pem", &leaf.key_pem);
    env.run(&["addcert", "host", "10.1.1.2:8082", "--cert", &key])
        .code(1)
        .stderr(&format!(
            "error: {key} cannot be pinned: the file holds a private key, not a certificate; [..]\nhint: [..]\n"
        ));
    env.run(&["addcert", "host", "10.1.1.2:8082", "--cert", "missing.pem"])
        .code(1)
        .stderr("error: cannot read the certificate file missing.pem: No such file or directory (os error 2)\n");

    // The same certificate twice is refused, naming the command that shows it.
    env.run(&["addcert", "host", "10.1.1.1_8082", "--cert", &der_file])
        .code(1)
        .stderr(&format!(
            "error: 10.1.1.1:8082 already has a pin with fingerprint {} (active); nothing was changed
hint: `tofu-certs showcert host 10.1.1.1:8082{}` shows the endpoint's pins
",
            leaf.fingerprint(),
            env.store_arg()
        ));
    // A certificate on standard input.
    let mut cmd = env.command(&["addcert", "host", "10.1.1.3:8082", "--cert", "-"]);
    cmd.arg("--label").arg("from stdin");
    run_with_stdin(cmd, leaf.pem.as_bytes()).success();
    env.run(&["listcerts"]).success().stdout(&format!(
        "host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}\nhost=10.1.1.3_8082;  subject= {PRIME_SUBJECT}\n"
    ));
}

#[test]
fn accept_of_a_certificate_not_in_quarantine_awaits_it_and_one_in_quarantine_is_pinned() {
    let env = Env::new();
    let (old, new, other) = (
        prime_cert("prime-pri"),
        prime_cert("prime-pri"),
        prime_cert("prime-pri"),
    );
    env.pin("10.1.1.1:8082", &old);
    // Not quarantined (yet, or any more): awaited as the next pin, and said so.
    env.run(&["accept", "host", "10.1.1.1:8082", "--fingerprint", &new.fingerprint()])
        .success()
        .stdout(&format!(
            "{} is not in the quarantine of 10.1.1.1:8082 (any more), so it is pinned as awaited: the first connection that presents that certificate (and proves it holds its key) makes it the pin of 10.1.1.1:8082 and retires the active pins\n",
            new.fingerprint()
        ));
    // With --match key the key is not known without the certificate: status 3, nothing done.
    env.run(&[
        "accept",
        "host",
        "10.1.1.1:8082",
        "--fingerprint",
        &other.fingerprint(),
        "--match",
        "key",
    ])
    .code(3)
    .stderr(&format!(
        "error: 10.1.1.1:8082 has no quarantined certificate with fingerprint {}, so its public key is not known; nothing was changed\nhint: [..]\nhint: [..]\n",
        other.fingerprint()
    ));
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&"10.1.1.1:8082".parse().unwrap(), &new.der)
        .unwrap();
    // The fingerprint in openssl's hex form works as well.
    let hex = tofu_core::Fingerprint::of(&new.der).to_hex_colons();
    env.run(&["accept", "host", "10.1.1.1_8082", "--fingerprint", &hex])
        .success()
        .stdout(&format!(
            "accepted {} ({PRIME_SUBJECT}): it is now the pin of 10.1.1.1:8082\nretired {} ({PRIME_SUBJECT})\n",
            new.fingerprint(),
            old.fingerprint()
        ));
    let json = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["pins"][0]["fingerprint"], new.fingerprint());
    assert_eq!(doc["pins"][0]["source"], "accepted");
    assert_eq!(doc["quarantined"], serde_json::json!([]));
    // The awaited pin of the same certificate is settled by the accept.
    assert_eq!(doc["awaited"], serde_json::json!([]));
}

#[test]
fn the_log_records_every_change_and_who_made_it() {
    let env = Env::new();
    let (a, b) = (prime_cert("prime-pri"), prime_cert("prime-sec"));
    env.pin("10.1.1.1:8082", &a);
    let (b_file, _) = env.write_cert("b", &b);
    env.run(&[
        "--actor",
        "rotation-2026",
        "addcert",
        "host",
        "10.1.1.2:8082",
        "--cert",
        &b_file,
        "--next",
    ])
    .success();
    env.run(&["deletecert", "host", "10.1.1.1_8082"]).success();

    env.run(&["log"]).success().stdout(&format!(
        "20[..]Z  10.1.1.1:8082  added  {a_fp}  {PRIME_SUBJECT}  by tofu-certs (pid [..], uid [..])
20[..]Z  10.1.1.2:8082  staged  {b_fp}  /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-sec  by rotation-2026 (pid [..], uid [..])
20[..]Z  10.1.1.1:8082  removed  {a_fp}  {PRIME_SUBJECT}  by tofu-certs (pid [..], uid [..])
",
        a_fp = a.fingerprint(),
        b_fp = b.fingerprint()
    ));
    // The history of a deleted endpoint stays.
    env.run(&["log", "host", "10.1.1.1_8082"])
        .success()
        .stdout("[..]  added  [..]\n[..]  removed  [..]\n");
    let json = env.run(&["log", "host", "10.1.1.2:8082", "--format", "json"]);
    json.success();
    let entry: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(entry["event"], "staged");
    assert_eq!(entry["endpoint"], "10.1.1.2:8082");
    assert_eq!(entry["fingerprint"], b.fingerprint());

    env.run(&["log", "host", "10.1.1.3:8082"])
        .code(3)
        .stderr(&format!(
            "error: the audit log has no entry for 10.1.1.3:8082: it was never pinned in this store
hint: `tofu-certs log{}` shows the whole log
",
            env.store_arg()
        ));
}

#[test]
fn the_store_is_chosen_by_flag_then_environment_then_the_per_user_default() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    let (file, _) = env.write_cert("c", &cert);
    let line = format!("host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}\n");

    // No flag, no variable: the data directory under HOME.
    let mut cmd = env.bare_command();
    cmd.args(["addcert", "host", "10.1.1.1:8082", "--cert", &file]);
    Run::from(cmd.output().unwrap()).success();
    let default = env.home().join(".local/share/tofu-certs");
    assert!(default.join("pins.sqlite3").is_file());
    assert_eq!(
        std::fs::metadata(&default).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut cmd = env.bare_command();
    cmd.arg("listcerts");
    Run::from(cmd.output().unwrap()).success().stdout(&line);

    // TOFU_CERTS_STORE names another store, which does not exist yet: a reading command says
    // so, and creates nothing.
    let other = env.path("other-store");
    let mut cmd = env.bare_command();
    cmd.env("TOFU_CERTS_STORE", &other).arg("listcerts");
    Run::from(cmd.output().unwrap()).code(1).stdout("").stderr(&format!(
        "error: no pin store at {dir}: nothing has been pinned there yet. Check --store or TOFU_CERTS_STORE; commands that write (addcert, import, probe --pin) create the store
hint: pin an endpoint first with `tofu-certs addcert host HOST:PORT --cert FILE --store {dir}` or `tofu-certs probe host HOST:PORT --pin --store {dir}`, or give the store's directory with --store DIR
",
        dir = other.display()
    ));
    assert!(!other.exists(), "a reading command created the store");
    for args in [
        vec!["showcert", "host", "10.1.1.1:8082"],
        vec!["deletecert", "host", "10.1.1.1:8082"],
        vec!["export"],
        vec!["log"],
    ] {
        let mut cmd = env.bare_command();
        cmd.env("TOFU_CERTS_STORE", &other).args(&args);
        Run::from(cmd.output().unwrap())
            .code(1)
            .stderr("error: no pin store at [..]\nhint: [..]\n");
    }
    assert!(!other.exists());

    // --store wins over the variable.
    let mut cmd = env.bare_command();
    cmd.env("TOFU_CERTS_STORE", &other)
        .arg("--store")
        .arg(&default)
        .arg("listcerts");
    Run::from(cmd.output().unwrap()).success().stdout(&line);

    // An empty variable counts as unset.
    let mut cmd = env.bare_command();
    cmd.env("TOFU_CERTS_STORE", "").arg("listcerts");
    Run::from(cmd.output().unwrap()).success().stdout(&line);

    // A store that is not a directory is refused with the reason.
    let file_store = env.write("not-a-dir", "x");
    let mut cmd = env.bare_command();
    cmd.args(["--store", &file_store, "listcerts"]);
    Run::from(cmd.output().unwrap()).code(1).stderr(
        "error: cannot use the pin store [..]: it is a file, not a directory; [..]\nhint: [..]\n",
    );
}

/// Issue 11, item 9: `addcert` on an endpoint that already has an active pin silently trusted
/// a second certificate. It now refuses, naming the pin and the commands for each intent, and
/// `--additional` trusts both, saying so.
#[test]
fn addcert_refuses_to_widen_trust_without_additional() {
    let env = Env::new();
    let (first, second, third) = (
        prime_cert("prime-pri"),
        prime_cert("prime-pri"),
        prime_cert("prime-pri"),
    );
    env.pin("10.1.1.1:8082", &first);
    let (file, _) = env.write_cert("second", &second);
    let s = env.store_arg();
    env.run(&["addcert", "host", "10.1.1.1_8082", "--cert", &file])
        .code(1)
        .stdout("")
        .stderr(&format!(
            "error: 10.1.1.1:8082 already has an active pin, {first_fp} ({PRIME_SUBJECT}); a second active pin would trust both certificates, so nothing was pinned
hint: to trust both (an HA pair behind one address): `tofu-certs addcert host 10.1.1.1:8082 --cert {file} --additional{s}`
hint: to stage it for a planned rotation: `tofu-certs addcert host 10.1.1.1:8082 --cert {file} --next{s}`
hint: to replace the pin: `tofu-certs deletecert host 10.1.1.1:8082{s}` then `tofu-certs addcert host 10.1.1.1:8082 --cert {file}{s}`, or, once the server presents it, `tofu-certs probe host 10.1.1.1:8082{s}` and `tofu-certs accept host 10.1.1.1:8082 --fingerprint {second_fp}{s}`
",
            first_fp = first.fingerprint(),
            second_fp = second.fingerprint(),
        ));
    env.run(&["listcerts"])
        .success()
        .stdout(&format!("host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}\n"));

    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &file, "--additional"])
        .success()
        .stdout(&format!(
            "pinned 10.1.1.1:8082 to {} ({PRIME_SUBJECT})\n2 certificates are now trusted for 10.1.1.1:8082: {}, {}\n",
            second.fingerprint(),
            first.fingerprint(),
            second.fingerprint()
        ));
    // The refusal names every active pin.
    let (file3, _) = env.write_cert("third", &third);
    env.run(&["addcert", "host", "10.1.1.1:8082", "--cert", &file3])
        .code(1)
        .stderr(&format!(
            "error: 10.1.1.1:8082 already has 2 active pins, {} ({PRIME_SUBJECT}) and {} ({PRIME_SUBJECT}); a second active pin would trust both certificates, so nothing was pinned\nhint: [..]\nhint: [..]\nhint: [..]\n",
            first.fingerprint(),
            second.fingerprint()
        ));
    // Staging is unchanged, and an endpoint with only a staged pin takes an active one.
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &file3,
        "--next",
    ])
    .success();
    env.run(&[
        "addcert",
        "host",
        "10.1.1.2:8082",
        "--cert",
        &file3,
        "--next",
    ])
    .success();
    env.run(&["addcert", "host", "10.1.1.2:8082", "--cert", &file])
        .success();
    env.run(&[
        "addcert",
        "host",
        "10.1.1.3:8082",
        "--cert",
        &file,
        "--next",
        "--additional",
    ])
    .code(2);
    let help = env.run(&["addcert", "--help"]);
    assert!(help.stdout.contains("--additional"), "{}", help.stdout);
}
