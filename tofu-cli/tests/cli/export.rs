//! export and import: backups and fleet seeding.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

#[test]
fn an_export_imported_elsewhere_shows_the_same_pins() {
    let env = Env::new();
    let (pri, sec, next) = (
        prime_cert("prime-pri"),
        prime_cert("prime-sec"),
        prime_cert("prime-sec-2027"),
    );
    env.pin("10.1.1.1:8082", &pri);
    let (sec_file, _) = env.write_cert("sec", &sec);
    let (next_file, _) = env.write_cert("next", &next);
    env.run(&[
        "addcert",
        "host",
        "[fd00::5]:8443",
        "--cert",
        &sec_file,
        "--label",
        "HA \"secondary\" — Zürich",
    ])
    .success();
    env.run(&[
        "addcert",
        "host",
        "[fd00::5]:8443",
        "--cert",
        &next_file,
        "--next",
    ])
    .success();
    // Use recorded by a service's verifier.
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .record_seen(
            &"10.1.1.1:8082".parse().unwrap(),
            &tofu_core::Fingerprint::of(&pri.der),
            41,
            "2026-03-04T05:06:07Z".parse().unwrap(),
        )
        .unwrap();
    drop(store);

    let export = env.run(&["export"]);
    export.success();
    assert!(
        export.stdout.starts_with("# tofu-certs export"),
        "{}",
        export.stdout
    );
    assert!(export.stdout.contains("\nversion = 1\n"));
    assert!(export.stdout.contains(&format!("\n# {PRIME_SUBJECT}\n[[pin]]\nendpoint = \"10.1.1.1:8082\"\nstate = \"active\"\nfingerprint = \"{}\"\nsource = \"operator\"\npinned_at = \"20", pri.fingerprint())));
    assert!(export.stdout.contains("\nfirst_seen = \"2026-03-04T05:06:07Z\"\nlast_seen = \"2026-03-04T05:06:07Z\"\ntimes_seen = 41\ncertificate = \"\"\"\n-----BEGIN CERTIFICATE-----\n"));
    let file = env.write("backup.toml", &export.stdout);

    let copy = Env::new();
    copy.run(&["import", &file]).success().stdout(&format!(
        "imported 3 pins from {file} (0 already present, 0 replaced)\n"
    ));
    for endpoint in ["10.1.1.1_8082", "[fd00::5]:8443"] {
        let here = env.run(&["showcert", "host", endpoint]);
        let there = copy.run(&["showcert", "host", endpoint]);
        here.success();
        there.success();
        assert_eq!(here.stdout, there.stdout);
    }
    for format in ["prime", "table", "json"] {
        assert_eq!(
            env.run(&["listcerts", "--format", format]).stdout,
            copy.run(&["listcerts", "--format", format]).stdout
        );
    }
    assert_eq!(copy.run(&["export"]).stdout, export.stdout);

    // From standard input as well.
    let piped = Env::new();
    run_with_stdin(piped.command(&["import", "-"]), export.stdout.as_bytes())
        .success()
        .stdout("imported 3 pins from - (0 already present, 0 replaced)\n");

    // Importing the same file again changes nothing.
    copy.run(&["import", &file]).success().stdout(&format!(
        "imported 0 pins from {file} (3 already present, 0 replaced)\n"
    ));
}

#[test]
fn export_to_a_file_is_private_and_replaced_whole() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("prime-pri"));
    let out = env.path("backup.toml");
    std::fs::write(&out, "old contents").unwrap();
    env.run(&["export", "--output", out.to_str().unwrap()])
        .code(0)
        .stdout("")
        .stderr(&format!("exported 1 pin to {}\n", out.display()));
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(tofu_core::export::parse_export(&text).unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(env.dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tofu-certs-export"))
            .count(),
        0,
        "no temporary file left behind"
    );
}

/// Regression: the message named tempfile's temporary file, not the directory at fault.
#[test]
fn export_into_a_missing_directory_names_the_directory() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("prime-pri"));
    let dir = env.path("no/such/dir");
    let target = dir.join("backup.toml");
    env.run(&["export", "--output", target.to_str().unwrap()])
        .code(1)
        .stdout("")
        .stderr(&format!(
            "error: cannot create a file in {}: No such file or directory (os error 2)
hint: give --output a file in a directory that exists and that you can write to
",
            dir.display()
        ));
    let file = env.write("a-file", "x");
    env.run(&["export", "-o", &format!("{file}/backup.toml")])
        .code(1)
        .stderr(&format!(
            "error: cannot create a file in {file}: it is not a directory\nhint: [..]\n"
        ));
    // A bare file name is created in the current directory.
    env.run(&["export", "-o", "here.toml"])
        .code(0)
        .stderr("exported 1 pin to here.toml\n");
    assert!(env.path("here.toml").is_file());
}

#[test]
fn a_bad_import_names_the_entry_and_imports_nothing() {
    let env = Env::new();
    let (a, b) = (prime_cert("a"), prime_cert("b"));
    let entry = |endpoint: &str, cert: &TestCert| {
        format!(
            "\n[[pin]]\nendpoint = \"{endpoint}\"\ncertificate = \"\"\"\n{}\"\"\"\n",
            cert.pem
        )
    };
    let good = entry("10.1.1.1:8082", &a);
    // "version = 1", the good entry's lines, a blank line: the second entry's header is here.
    let line = 3 + good.lines().count();

    let bad_endpoint = env.write(
        "bad.toml",
        format!("version = 1\n{good}{}", entry("10.1.1.2", &b)),
    );
    env.run(&["import", &bad_endpoint]).code(1).stdout("").stderr(&format!(
        "error: {bad_endpoint}: pin entry 2 (line {line}), field `endpoint`: \"10.1.1.2\" is not an endpoint: no port; write host:port, for example example.com:443; nothing was imported
hint: an export file is what `tofu-certs export` writes; its schema is in the README (TOML: `version = 1`, then `[[pin]]` entries with endpoint and certificate; JSON lines: `{{\"version\":1}}`, then one object per pin, docs/json.md)
"
    ));
    // Nothing was imported: the first, good entry is not in the store either.
    env.run(&["listcerts"]).code(1);

    let duplicate = env.write(
        "dup.toml",
        format!("version = 1\n{good}{}", entry("10.1.1.1_8082", &a)),
    );
    env.run(&["import", &duplicate]).code(1).stderr(&format!(
        "error: {duplicate}: pin entry 2 (line {line}) repeats entry 1 (line 3): both pin {} for 10.1.1.1:8082; remove one of them; nothing was imported\nhint: [..]\n",
        a.fingerprint()
    ));

    let future = env.write(
        "v2.toml",
        "version = 2\n[[pin]]\nendpoint = \"x:1\"\nshiny = true\n",
    );
    env.run(&["import", &future]).code(1).stderr(&format!(
        "error: {future}: the export file has version 2, but this tofu-certs reads version 1 only. Import it with the tofu-certs that wrote it, or a newer one; nothing was imported\nhint: [..]\n"
    ));

    let wrong_fp = env.write(
        "fp.toml",
        format!("version = 1\n[[pin]]\nendpoint = \"10.1.1.1:8082\"\nfingerprint = \"{}\"\ncertificate = '''\n{}'''\n", b.fingerprint(), a.pem),
    );
    env.run(&["import", &wrong_fp])
        .code(1)
        .stderr("error: [..]: pin entry 1 (line 2), field `fingerprint`: it is SHA256:[..], but the certificate's fingerprint is SHA256:[..]; the entry was altered or damaged; nothing was imported\nhint: [..]\n");

    // Read by tofu_core::export::read_export: a file that is not text says where, one that cannot be
    // read says why, and neither is mistaken for the other.
    let binary = env.write("binary.toml", b"version = 1\n\xff\xfe");
    env.run(&["import", &binary]).code(1).stderr(&format!(
        "error: {binary}: the export file is not UTF-8 text (invalid byte at offset 12); give the file `tofu-certs export` wrote; nothing was imported\nhint: [..]\n"
    ));
    env.run(&["import", "missing.toml"]).code(1).stderr(
        "error: cannot read the export file missing.toml: No such file or directory (os error 2)\n",
    );
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    env.run(&["import", dir.to_str().unwrap()])
        .code(1)
        .stderr(&format!(
            "error: cannot read the export file {}: Is a directory (os error 21)\n",
            dir.display()
        ));

    let not_toml = env.write("junk.toml", "version = 1\n[[pin]\n");
    env.run(&["import", &not_toml])
        .code(1)
        .stderr("error: [..]: the export file is not valid TOML: TOML parse error at line 2, column [..]\n[..]\n[..]\n[..]\n[..]\nhint: [..]\n");
    env.run(&["listcerts"]).code(1);
}

#[test]
fn an_import_that_conflicts_needs_replace() {
    let env = Env::new();
    let (old, new) = (prime_cert("prime-pri"), prime_cert("prime-pri"));
    env.pin("10.1.1.1:8082", &old);
    let file = env.write(
        "seed.toml",
        format!(
            "version = 1\n[[pin]]\nendpoint = \"10.1.1.1_8082\"\nlabel = \"seeded\"\ncertificate = \"\"\"\n{}\"\"\"\n",
            new.pem
        ),
    );
    env.run(&["import", &file]).code(1).stderr(&format!(
        "error: 10.1.1.1:8082 is already pinned to {} in this store and the import file pins {}; nothing was imported. Delete the store's pin first, or import replacing the pins of the endpoints in the file
hint: `tofu-certs deletecert host 10.1.1.1_8082{s}` removes the pins in the store; `tofu-certs import {file} --replace{s}` replaces them with the file's
",
        old.fingerprint(),
        new.fingerprint(),
        s = env.store_arg()
    ));
    env.run(&["import", &file, "--replace"])
        .success()
        .stdout(&format!(
            "imported 1 pin from {file} (0 already present, 1 replaced)\n"
        ));
    let json = env.run(&["listcerts", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["pins"].as_array().unwrap().len(), 1);
    assert_eq!(doc["pins"][0]["fingerprint"], new.fingerprint());
    assert_eq!(doc["pins"][0]["source"], "imported");
    assert_eq!(doc["pins"][0]["label"], "seeded");
}

#[test]
fn an_export_names_awaited_pins_in_comments_and_imports_the_rest() {
    let env = Env::new();
    let pri = prime_cert("prime-pri");
    env.pin("10.1.1.1:8082", &pri);
    let awaited = prime_cert("prime-sec");
    env.run(&[
        "addcert",
        "host",
        "10.1.1.2:8082",
        "--fingerprint",
        &awaited.fingerprint(),
    ])
    .success();
    let export = env.run(&["export"]);
    export.success();
    assert!(
        export.stdout.ends_with(&format!(
            "\n# Not exported: 10.1.1.2:8082 awaits {fp} (a pin from a fingerprint, no certificate yet).\n# Make it again with: tofu-certs addcert host 10.1.1.2:8082 --fingerprint {fp}\n",
            fp = awaited.fingerprint()
        )),
        "{}",
        export.stdout
    );
    let file = env.write("backup.toml", &export.stdout);
    let other = Env::new();
    other.run(&["import", &file]).success();
    other
        .run(&["listcerts"])
        .success()
        .stdout(&format!("host=10.1.1.1_8082;  subject= {PRIME_SUBJECT}\n"));
    // JSON lines has no comments: the command names what it left out on standard error.
    let fp = awaited.fingerprint();
    env.run(&["export", "--format", "jsonl"]).code(0).stderr(&format!(
        "warning: not exported: 10.1.1.2:8082 awaits {fp} (a pin from a fingerprint, no certificate yet); make it again with `tofu-certs addcert host 10.1.1.2:8082 --fingerprint {fp}`\n"
    ));
}

/// Issue 15: the JSON-lines form through the real command, both ways: `import` recognises
/// it with no flag, and a bad line deep in the file names its entry and line and imports
/// nothing (the good lines before it were written inside the transaction, then rolled back).
#[test]
fn json_lines_round_trip_and_a_bad_line_imports_nothing() {
    let env = Env::new();
    let (a, b) = (prime_cert("a"), prime_cert("b"));
    env.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &env.write("a.pem", &a.pem),
    ])
    .code(0);
    env.run(&[
        "addcert",
        "host",
        "10.1.1.2:8082",
        "--cert",
        &env.write("b.pem", &b.pem),
        "--label",
        "HA \"two\"",
    ])
    .code(0);
    env.run(&["export", "--format", "jsonl", "-o", "pins.jsonl"])
        .code(0)
        .stderr("exported 2 pins to pins.jsonl\n");
    let text = std::fs::read_to_string(env.path("pins.jsonl")).unwrap();
    assert!(
        text.starts_with("{\"version\":1}\n{\"endpoint\":\"10.1.1.1:8082\","),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains(",\"label\":\"HA \\\"two\\\"\","), "{text}");

    let other = Env::new();
    let file = env.path("pins.jsonl");
    let file = file.to_str().unwrap();
    other.run(&["import", file]).code(0).stdout(&format!(
        "imported 2 pins from {file} (0 already present, 0 replaced)\n"
    ));
    other
        .run(&["export", "--format", "jsonl"])
        .code(0)
        .stdout(&text);

    // 5000 good lines, then one with an unknown state.
    let line = |i: usize, extra: &str| {
        format!(
            "{{\"endpoint\":\"h{i:05}.example:443\",{extra}\"certificate\":{}}}\n",
            serde_json::to_string(&a.pem).unwrap()
        )
    };
    let mut big = String::from("{\"version\":1}\n");
    for i in 0..5000 {
        big.push_str(&line(i, ""));
    }
    big.push_str(&line(5000, "\"state\":\"later\","));
    let bad = other.write("bad.jsonl", big);
    other.run(&["import", &bad]).code(1).stdout("").stderr(&format!(
        "error: {bad}: pin entry 5001 (line 5002), field `state`: [..]; nothing was imported\nhint: [..]\n"
    ));
    // The store is exactly as it was.
    other
        .run(&["export", "--format", "jsonl"])
        .code(0)
        .stdout(&text);
}
