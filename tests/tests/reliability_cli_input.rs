//! Hostile and broken input given to the real `tofu-certs`: certificate files, import files,
//! endpoints and fingerprints. Each is refused with the documented exit status and an
//! `error:` line that says what is wrong (printable, bounded, naming the file or value),
//! and the store is exactly as it was: an import is all or nothing, never half done.
//! (`tofu-core/tests/hostile_input.rs` covers the same inputs at the library level.)

use std::fmt::Write as _;
use std::fs;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use examples::{prime_identity, tofu_certs_binary};
use tofu_core::{cert::to_pem, Fingerprint, Store};

struct Env {
    tmp: tempfile::TempDir,
    store: PathBuf,
}

impl Env {
    /// A store holding an active pin, a staged pin and a quarantined certificate.
    fn new() -> (Env, Vec<examples::Identity>) {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        let ids: Vec<_> = (0..4)
            .map(|i| prime_identity(&format!("peer-{i}")))
            .collect();
        let s = Store::open(&store).unwrap();
        let ep = "10.1.1.1:8082".parse().unwrap();
        s.pin_first_use(&ep, &ids[0].cert).unwrap();
        s.add_pin(
            &ep,
            &ids[1].cert,
            tofu_core::pin::PinState::Next,
            Some("next"),
        )
        .unwrap();
        s.quarantine(&ep, &ids[2].cert).unwrap();
        (Env { tmp, store }, ids)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(tofu_certs_binary())
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("TOFU_CERTS_STORE")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Everything the store holds, as text: pins with their history, quarantine, audit.
    fn contents(&self) -> String {
        let store = Store::open_existing(&self.store).unwrap();
        store.integrity_check().unwrap();
        let mut out = String::new();
        store
            .for_each_pin(|p| {
                writeln!(out, "{p:?}").unwrap();
                ControlFlow::Continue(())
            })
            .unwrap();
        store
            .for_each_quarantined(|q| {
                writeln!(out, "{q:?}").unwrap();
                ControlFlow::Continue(())
            })
            .unwrap();
        store
            .for_each_audit(None, |a| {
                writeln!(out, "{a:?}").unwrap();
                ControlFlow::Continue(())
            })
            .unwrap();
        out
    }

    /// Runs `args`, which must fail with `code` and an error naming `needle`, changing
    /// nothing.
    fn refused(&self, args: &[&str], code: i32, needle: &str) -> String {
        let before = self.contents();
        let started = Instant::now();
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(60).collect()).collect();
        assert_eq!(out.status.code(), Some(code), "{shown:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{shown:?}: expected an error about {needle:?}, got: {stderr}"
        );
        assert!(
            stderr.len() < 2000,
            "{shown:?}: {} bytes of error: {}…",
            stderr.len(),
            &stderr[..300]
        );
        assert!(
            !stderr
                .chars()
                .any(|c| c != '\n' && tofu_core::text::must_escape(c)),
            "{shown:?}: a control character in {stderr:?}"
        );
        assert!(out.stdout.is_empty(), "{shown:?}: nothing on stdout");
        assert!(started.elapsed() < Duration::from_secs(20), "{shown:?}");
        assert_eq!(self.contents(), before, "{shown:?}: the store changed");
        stderr
    }
}

#[test]
fn addcert_refuses_what_is_not_one_certificate_and_pins_nothing() {
    let (env, ids) = Env::new();
    let new = prime_identity("new");
    let der = new.cert.to_vec();
    let key_pem = to_pem(new.key.secret_pkcs8_der()).replace("CERTIFICATE", "PRIVATE KEY");
    let bundle = format!("{}{}", new.cert_pem, ids[3].cert_pem);
    let big = {
        // A well-formed certificate over the 64 KiB limit.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["big".into()]).unwrap();
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55555, 1],
                vec![0; 100 * 1024],
            ));
        params.self_signed(&key).unwrap().pem()
    };
    let cases: Vec<(String, &str)> = vec![
        (env.write("empty.pem", ""), "empty"),
        (env.write("blank.pem", "\n\n  \n"), "empty"),
        (
            env.write("text.pem", "hello\n"),
            "neither a PEM certificate",
        ),
        (
            env.write("noise.der", noise(3000)),
            "neither a PEM certificate",
        ),
        (
            env.write("cut.der", &der[..der.len() / 2]),
            "neither a PEM certificate",
        ),
        (
            env.write("cut.pem", &new.cert_pem[..new.cert_pem.len() / 2]),
            "PEM text is damaged",
        ),
        (env.write("key.pem", &key_pem), "private key"),
        (env.write("bundle.pem", &bundle), "holds 2 certificates"),
        (env.write("big.pem", &big), "bytes long"),
        ("/dev/zero".into(), "larger than"),
        (env.tmp.path().to_str().unwrap().into(), "cannot read"),
        (
            env.write("missing", "").replace("missing", "absent"),
            "No such file",
        ),
    ];
    for (file, needle) in &cases {
        env.refused(
            &["addcert", "host", "new.example:443", "--cert", file],
            1,
            needle,
        );
        // Also for an endpoint that has pins, and as a staged pin.
        env.refused(
            &["addcert", "host", "10.1.1.1_8082", "--cert", file, "--next"],
            1,
            needle,
        );
    }
    let stderr = env.refused(
        &["addcert", "host", "new.example:443", "--cert", &cases[6].0],
        1,
        "private key",
    );
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!stderr.contains(line), "the key is echoed: {stderr}");
    }
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5679;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn entry(endpoint: &str, pem: &str, extra: &str) -> String {
    format!("\n[[pin]]\nendpoint = \"{endpoint}\"\n{extra}certificate = \"\"\"\n{pem}\"\"\"\n")
}

#[test]
fn import_is_all_or_nothing_whatever_is_wrong_with_the_file() {
    let (env, ids) = Env::new();
    // 100 good new entries, then one wrong one: none of the 100 may land.
    let good: String = (0..100)
        .map(|i| entry(&format!("host-{i}.example:443"), &ids[3].cert_pem, ""))
        .collect();
    let with = |bad: &str| format!("version = 1\n{good}{bad}");
    let other_fp = Fingerprint::of(&ids[2].cert);
    let huge = "x".repeat(2_000_000);
    let cases: Vec<(String, &str)> = vec![
        // A JSON document, not JSON lines: taken for JSON lines by its `{`, and refused there.
        (
            env.write("json.toml", "{\n  \"version\": 1\n}\n"),
            "line 1 is not valid JSON",
        ),
        (env.write("noise.toml", noise(5000)), "not UTF-8"),
        (
            env.write("v2.toml", format!("version = 2\n{good}")),
            "version 2",
        ),
        (env.write("none.toml", good.clone()), "no `version`"),
        (
            env.write(
                "dup.toml",
                with(&entry("host-7.example_443", &ids[3].cert_pem, "")),
            ),
            "repeats entry 8",
        ),
        (
            env.write(
                "fp.toml",
                with(&entry(
                    "late.example:443",
                    &ids[3].cert_pem,
                    &format!("fingerprint = \"{other_fp}\"\n"),
                )),
            ),
            "altered or damaged",
        ),
        (
            env.write(
                "badfp.toml",
                with(&entry(
                    "late.example:443",
                    &ids[3].cert_pem,
                    "fingerprint = \"sha1:abc\"\n",
                )),
            ),
            "field `fingerprint`",
        ),
        (
            env.write(
                "label.toml",
                with(&entry(
                    "late.example:443",
                    &ids[3].cert_pem,
                    &format!("label = \"{huge}\"\n"),
                )),
            ),
            "longer than 1000",
        ),
        (
            env.write(
                "line.toml",
                format!("version = 1\n{good}\nlabel = \"{huge}\" x\n"),
            ),
            "not valid TOML",
        ),
        (
            env.write("endpoint.toml", with(&entry(&huge, &ids[3].cert_pem, ""))),
            "field `endpoint`",
        ),
        (
            env.write(
                "port.toml",
                with(&entry("late.example:99999", &ids[3].cert_pem, "")),
            ),
            "larger than 65535",
        ),
        (
            env.write(
                "ctl.toml",
                with(&entry("late\\u001b[2J.example:443", &ids[3].cert_pem, "")),
            ),
            "control character",
        ),
        (
            env.write(
                "key.toml",
                with(&entry(
                    "late.example:443",
                    &to_pem(ids[3].key.secret_pkcs8_der()).replace("CERTIFICATE", "PRIVATE KEY"),
                    "",
                )),
            ),
            "private key",
        ),
        (
            env.write(
                "cut.toml",
                with(&entry("late.example:443", &ids[3].cert_pem[..300], "")),
            ),
            "field `certificate`",
        ),
        (
            env.write(
                "nest.toml",
                format!(
                    "version = 1\nx = {}{}\n",
                    "[".repeat(50_000),
                    "]".repeat(50_000)
                ),
            ),
            "not valid TOML",
        ),
        // A conflict with the store, found at the last entry.
        (
            env.write(
                "conflict.toml",
                with(&entry("10.1.1.1:8082", &ids[3].cert_pem, "")),
            ),
            "nothing was imported",
        ),
        ("/dev/zero".into(), "larger than 256 MiB"),
    ];
    for (file, needle) in &cases {
        let stderr = env.refused(&["import", file], 1, needle);
        assert!(stderr.contains("nothing was imported"), "{file}: {stderr}");
    }
    // The same good entries import, all of them, once nothing is wrong.
    let file = env.write("good.toml", format!("version = 1\n{good}"));
    let out = env.run(&["import", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = env.run(&["listcerts"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 102);
}

#[test]
fn bad_endpoints_and_fingerprints_are_usage_errors_that_change_nothing() {
    let (env, ids) = Env::new();
    let cert = env.write("c.pem", &ids[3].cert_pem);
    let fp = Fingerprint::of(&ids[2].cert).to_string();
    let long = format!("{}.example:443", "a".repeat(300));
    let endpoints = [
        ("", "empty"),
        ("a\u{1b}[2J.example:443", "control character"),
        ("a\u{7}.example:443", "control character"),
        ("a\u{85}.example:443", "control character"),
        (long.as_str(), "longer than"),
        ("a.example", "no port"),
        ("a.example:0", "port 0"),
        ("a.example:65536", "larger than 65535"),
        ("a.example:-1", "number from 1 to 65535"),
        ("a.example:443x", "number from 1 to 65535"),
        ("https://a.example:443", "URL"),
        ("fd00::5:443", "brackets"),
    ];
    for (ep, needle) in endpoints {
        for args in [
            vec!["addcert", "host", ep, "--cert", &cert],
            vec!["deletecert", "host", ep],
            vec!["showcert", "host", ep],
            vec!["accept", "host", ep, "--fingerprint", &fp],
            vec!["probe", "host", ep],
        ] {
            let stderr = env.refused(&args, 2, needle);
            assert!(stderr.contains("is not an endpoint"), "{stderr}");
        }
    }
    let fingerprints = [
        "",
        "SHA256:",
        "sha1:a9993e364706816aba3e25717850c26c9cd0d89d",
        "\u{1b}[2J",
        &fp[..fp.len() - 2],
    ];
    for bad in fingerprints {
        for args in [
            vec!["accept", "host", "10.1.1.1_8082", "--fingerprint", bad],
            vec!["deletecert", "host", "10.1.1.1_8082", "--fingerprint", bad],
        ] {
            env.refused(&args, 2, "is not a SHA-256 fingerprint");
        }
    }
}

#[test]
fn a_probe_list_with_hostile_lines_reports_each_and_pins_nothing() {
    let (env, _) = Env::new();
    let list = env.write(
        "list.txt",
        format!(
            "a\u{1b}[2J.example:443\n{}:443\nnot an endpoint\n\u{0}\n",
            "b".repeat(100_000)
        ),
    );
    let before = env.contents();
    let out = env.run(&["probe", "--from", &list, "--pin"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        !text
            .chars()
            .any(|c| c != '\n' && tofu_core::text::must_escape(c)),
        "a control character in {text:?}"
    );
    assert!(text.len() < 10_000, "{} bytes of output", text.len());
    assert_eq!(env.contents(), before);
}
