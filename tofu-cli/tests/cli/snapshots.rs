//! The main commands' output as reviewable snapshots (snapbox): each test runs a short
//! session and compares its transcript (command, stdout, stderr, exit status) with a file in
//! `tests/cli/snapshots/`. The certificates are fixed (Ed25519 keys from fixed seeds, fixed
//! dates and serials, and Ed25519 signatures are deterministic), so fingerprints are real
//! values; only what depends on the run is replaced: the store's path by `[STORE]`, the test's
//! temporary directory by `[TMP]`, a port by `[PORT]`, times of this run by `[NOW]` and day counts from now by `[DAYS]`.
//!
//! After an intended change of output, regenerate with
//! `SNAPSHOTS=overwrite cargo test -p tofu-cli --test cli snapshots` and review the diff.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
use rustls::pki_types::PrivatePkcs8KeyDer;

use crate::util::*;

/// A certificate whose bytes are the same on every run: an Ed25519 key from `seed`, and
/// fixed dates and serial.
fn fixed_cert(cn: &str, seed: u8) -> TestCert {
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend([seed; 32]);
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8),
        &rcgen::PKCS_ED25519,
    )
    .expect("an Ed25519 PKCS#8 key");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    let mut params = CertificateParams::new(vec![cn.to_owned()]).expect("valid SAN");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2045, 1, 2);
    params.serial_number = Some(SerialNumber::from(u64::from(seed)));
    let cert = params.self_signed(&key).expect("self-signed certificate");
    TestCert {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// 2045-01-02T00:00:00Z, the certificates' expiry.
const NOT_AFTER: i64 = 2_366_928_000;

/// A session's transcript, with what depends on the run replaced.
struct Transcript<'a> {
    env: &'a Env,
    text: String,
    port: Option<u16>,
}

impl<'a> Transcript<'a> {
    fn new(env: &'a Env) -> Self {
        Self {
            env,
            text: String::new(),
            port: None,
        }
    }

    fn run(&mut self, args: &[&str]) -> &mut Self {
        let before = now();
        let run = self.env.run(args);
        let after = now();
        let args = self.normalize(&args.join(" "), before, after);
        self.text += &format!("$ tofu-certs {args}\n");
        for (name, out) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            if !out.is_empty() {
                self.text += &format!("--- {name}\n{}", self.normalize(out, before, after));
                if !out.ends_with('\n') {
                    self.text += "\n[no newline at the end]\n";
                }
            }
        }
        self.text += &format!("--- exit status {}\n\n", run.code);
        self
    }

    fn normalize(&self, out: &str, before: i64, after: i64) -> String {
        let mut out = out
            .replace(&self.env.store().display().to_string(), "[STORE]")
            .replace(&self.env.dir.path().display().to_string(), "[TMP]");
        if let Some(port) = self.port {
            out = out.replace(&port.to_string(), "[PORT]");
        }
        // Times written during this session (pinned at, ...): RFC 3339 from `before` on.
        let mut times = Vec::new();
        for (i, _) in out.char_indices() {
            let Some(candidate) = out.get(i..i + 20) else {
                continue;
            };
            if let Ok(t) = candidate.parse::<tofu_core::timestamp::Timestamp>() {
                if (before - 86_400..=after + 86_400).contains(&t.unix()) {
                    times.push(candidate.to_owned());
                }
            }
        }
        for t in times {
            out = out.replace(&t, "[NOW]");
        }
        // Days until the certificates expire, as counted during the run.
        for days in [(NOT_AFTER - before) / 86_400, (NOT_AFTER - after) / 86_400] {
            for (from, to) in [
                (format!("\"days_left\": {days}"), "\"days_left\": [DAYS]"),
                (format!("({days} days left)"), "([DAYS] days left)"),
                (format!("  {days}  "), "  [DAYS]  "),
            ] {
                out = out.replace(&from, to);
            }
        }
        out
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Compares without snapbox's path normalisation (`\` to `/`): escapes are part of the output.
fn assert_snapshot(actual: &str, expected: snapbox::Data) {
    snapbox::Assert::new()
        .action_env(snapbox::assert::DEFAULT_ACTION_ENV)
        .normalize_paths(false)
        .eq(actual, expected);
}

#[test]
fn listcerts_in_each_format() {
    let env = Env::new();
    let (pri, sec) = (fixed_cert("prime-pri", 1), fixed_cert("prime-sec", 2));
    let mut t = Transcript::new(&env);
    t.run(&["listcerts"]);
    env.pin("10.1.1.1_8082", &pri);
    env.pin("10.1.1.2:8082", &sec);
    let next = env.write("next.pem", &fixed_cert("prime-pri-2027", 3).pem);
    t.run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--cert",
        &next,
        "--next",
    ]);
    t.run(&["listcerts"])
        .run(&["listcerts", "--format", "table"])
        .run(&["listcerts", "--format", "json"]);
    assert_snapshot(&t.text, snapbox::file!["snapshots/listcerts.txt"]);
}

#[test]
fn showcert_and_deletecert() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &fixed_cert("prime-pri", 1));
    let mut t = Transcript::new(&env);
    t.run(&["showcert", "host", "10.1.1.1_8082"])
        .run(&["showcert", "host", "10.9.9.9:443"])
        .run(&["deletecert", "host", "10.1.1.1_8082"])
        .run(&["deletecert", "host", "10.1.1.1_8082"]);
    assert_snapshot(&t.text, snapbox::file!["snapshots/showcert_deletecert.txt"]);
}

#[test]
fn probe_errors() {
    let env = Env::new();
    let port = free_port();
    let mut t = Transcript::new(&env);
    t.port = Some(port);
    let endpoint = format!("127.0.0.1:{port}");
    // No store yet, then a store and nothing listening on the port.
    t.run(&["probe", "host", &endpoint]);
    env.pin("10.1.1.1:8082", &fixed_cert("prime-pri", 1));
    t.run(&["probe", "host", &endpoint, "--timeout", "5"])
        .run(&["probe", &endpoint])
        .run(&["probe", "host", "not a host:443"]);
    assert_snapshot(&t.text, snapbox::file!["snapshots/probe_errors.txt"]);
}

#[test]
fn awaited_pins_in_every_listing() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &fixed_cert("prime-pri", 1));
    let mut t = Transcript::new(&env);
    // The SHA-256 of nothing, as openssl prints fingerprints: a certificate nobody presented.
    let hex = "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55";
    t.run(&[
        "addcert",
        "host",
        "10.1.1.3:8082",
        "--fingerprint",
        hex,
        "--label",
        "from the admin",
    ])
    .run(&[
        "addcert",
        "host",
        "10.1.1.1:8082",
        "--fingerprint",
        "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "--match",
        "key",
        "--next",
    ])
    .run(&["listcerts"])
    .run(&["listcerts", "--format", "table"])
    .run(&["listcerts", "--format", "json"])
    .run(&["showcert", "host", "10.1.1.3_8082"])
    .run(&["deletecert", "host", "10.1.1.3_8082"]);
    assert_snapshot(&t.text, snapbox::file!["snapshots/awaited.txt"]);
}
