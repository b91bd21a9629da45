//! A hermetic environment for running the real `tofu-certs` binary: a cleared environment, a
//! temporary HOME, and `--store` in a temporary directory. Certificates are made with rcgen;
//! servers are real `openssl s_server` processes on loopback ports.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::CertificateDer;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tofu-certs");

/// The subject Cisco Prime Infrastructure gives its servers, as OpenSSL prints it.
pub(crate) const PRIME_SUBJECT: &str =
    "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri";

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("home")).expect("HOME");
        Self { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The store directory every `run` uses (`--store`).
    pub(crate) fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `tofu-certs` with a cleared environment: only HOME, set to a temporary directory.
    pub(crate) fn bare_command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("HOME", self.home())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// `tofu-certs --store <temp>/store ARGS`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_command();
        cmd.arg("--store").arg(self.store()).args(args);
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("tofu-certs runs"))
    }

    /// Writes a file in the temporary directory and returns its path as text.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write a test file");
        path.to_str().expect("temp paths are UTF-8").to_owned()
    }

    /// Writes `cert` to NAME.pem and its key to NAME.key, for addcert and s_server.
    pub(crate) fn write_cert(&self, name: &str, cert: &TestCert) -> (String, String) {
        (
            self.write(&format!("{name}.pem"), &cert.pem),
            self.write(&format!("{name}.key"), &cert.key_pem),
        )
    }

    /// `addcert host ENDPOINT --cert FILE`, which must succeed.
    pub(crate) fn pin(&self, endpoint: &str, cert: &TestCert) {
        let file = self.write(&format!("pin-{}.pem", sanitize(endpoint)), &cert.pem);
        self.run(&["addcert", "host", endpoint, "--cert", &file])
            .success();
    }

    /// The store path as `--store` shows it in hints.
    pub(crate) fn store_arg(&self) -> String {
        format!(" --store {}", self.store().display())
    }
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().expect("exited, not killed by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Run {
    /// Asserts exit status 0 and nothing on stderr.
    #[track_caller]
    pub(crate) fn success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        assert_eq!(self.stderr, "", "expected a quiet stderr: {self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit status {code}: {self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn stdout(&self, pattern: &str) -> &Self {
        assert_matches(pattern, &self.stdout);
        self
    }

    #[track_caller]
    pub(crate) fn stderr(&self, pattern: &str) -> &Self {
        assert_matches(pattern, &self.stderr);
        self
    }
}

/// Asserts that `actual` matches `pattern`, where `[..]` in a pattern line stands for any
/// text within the line (times, fingerprints, pids) and a line `...` for any lines: snapbox's
/// matching, which shows a diff when they differ. Without its path normalisation (`\` to `/`):
/// the escapes in the output are what many tests check.
#[track_caller]
pub(crate) fn assert_matches(pattern: &str, actual: &str) {
    snapbox::Assert::new()
        .normalize_paths(false)
        .eq(actual, pattern);
}

/// A certificate and its key.
pub(crate) struct TestCert {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) pem: String,
    pub(crate) key_pem: String,
}

impl TestCert {
    /// `SHA256:…`, as tofu-certs prints fingerprints.
    pub(crate) fn fingerprint(&self) -> String {
        tofu_core::Fingerprint::of(&self.der).to_string()
    }
}

/// A self-signed certificate with Prime's subject and common name `cn`; a fresh key each time.
pub(crate) fn prime_cert(cn: &str) -> TestCert {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    cert_with(dn, cn)
}

pub(crate) fn cert_with(dn: DistinguishedName, san: &str) -> TestCert {
    let mut params = CertificateParams::new(vec![san.to_owned()]).expect("valid SAN");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2045, 1, 2);
    let key = KeyPair::generate().expect("key generation");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    TestCert {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The subject as `openssl x509 -noout -subject -nameopt compat` prints it, without the
/// `subject=` prefix.
pub(crate) fn openssl_subject(pem_file: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "x509", "-in", pem_file, "-noout", "-subject", "-nameopt", "compat",
        ])
        .output()
        .expect("openssl is installed (the README and .ci/run say so)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("openssl prints ASCII");
    text.trim_end_matches('\n')
        .strip_prefix("subject=")
        .expect("openssl prints subject=")
        .to_owned()
}

/// A free loopback port (free a moment ago).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port")
        .port()
}

/// A real `openssl s_server` on 127.0.0.1, killed when dropped.
pub(crate) struct TlsServer {
    child: Child,
    pub(crate) port: u16,
}

impl TlsServer {
    pub(crate) fn start(cert: &str, key: &str, port: u16) -> Self {
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", cert, "-key", key, "-www", "-quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server and waits until the port is closed.
    pub(crate) fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` with stdin from `input`.
pub(crate) fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("tofu-certs runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("write stdin");
    Run::from(child.wait_with_output().expect("tofu-certs ends"))
}

/// Fills the store directly through the library with `n` endpoints 127.0.0.1:(port) pinned to
/// `cert`, for tests that need many pins fast.
pub(crate) fn fill_store(store: &Path, n: u16, cert: &TestCert) {
    let store = tofu_core::Store::open(store).expect("open the store");
    let pins: Vec<tofu_core::store::NewPin> = (1..=n)
        .map(|port| tofu_core::store::NewPin {
            endpoint: tofu_core::Endpoint::new("127.0.0.1", port).expect("an endpoint"),
            der: cert.der.clone(),
            state: tofu_core::pin::PinState::Active,
            source: tofu_core::pin::PinSource::Operator,
            label: None,
            pinned_at: None,
            first_seen: None,
            last_seen: None,
            times_seen: 0,
            matches: tofu_core::pin::PinMatch::Certificate,
        })
        .collect();
    store.import(&pins, false).expect("import");
}

/// Runs `openssl ARGS` in `dir`; it must succeed. Returns its standard output.
pub(crate) fn openssl_in(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the tests need the openssl binary");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl prints ASCII")
}
