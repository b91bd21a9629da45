//! Support for the examples: loopback TLS servers that can restart with a new certificate,
//! Prime-style certificates, and finding the `tofu-certs` binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// A certificate, its key, and both in PEM.
pub struct Identity {
    /// The certificate.
    pub cert: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivatePkcs8KeyDer<'static>,
    /// The certificate in PEM.
    pub cert_pem: String,
}

/// A fresh key pair and a self-signed certificate with Prime Infrastructure's subject
/// (`/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=<cn>`): what "generate a new CSR" ends
/// in on an appliance with a self-signed certificate.
pub fn prime_identity(cn: &str) -> Identity {
    let key = KeyPair::generate().expect("ECDSA P-256 key generation does not fail");
    let mut params = CertificateParams::new(vec![cn.to_string()]).expect("a valid DNS name");
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    // A year, as an appliance's self-signed certificate usually has, and half a day: whole
    // days from now would put "days left" on a boundary that a listing a second later has
    // crossed (365, then 364), and two listings of one store would differ.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365) + time::Duration::hours(12);
    let cert = params
        .self_signed(&key)
        .expect("self-signing fresh parameters does not fail");
    Identity {
        cert_pem: cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// A TLS server on 127.0.0.1 that answers every connection with a short HTTP response. It
/// can restart with a new certificate on the same port, as an appliance does after a new CSR.
pub struct DemoServer {
    addr: SocketAddr,
    config: Arc<Mutex<Arc<ServerConfig>>>,
}

fn server_config(id: &Identity) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(tofu_core::verifier::default_provider())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![id.cert.clone()],
            PrivateKeyDer::Pkcs8(id.key.clone_key()),
        )
        .expect("a freshly generated key matches its certificate");
    Arc::new(config)
}

impl DemoServer {
    /// Starts serving `id` on `port` of 127.0.0.1 (0: any free port).
    pub fn start(id: &Identity, port: u16) -> std::io::Result<DemoServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let config = Arc::new(Mutex::new(server_config(id)));
        let shared = config.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let config = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                std::thread::spawn(move || serve(stream, config));
            }
        });
        Ok(DemoServer { addr, config })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Restarts with `id`: new connections see the new certificate, and no session of the old
    /// one survives.
    pub fn restart_with(&self, id: &Identity) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = server_config(id);
    }
}

fn serve(mut sock: TcpStream, config: Arc<ServerConfig>) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, &mut sock);
    // Read the request (or nothing: a probe closes after the handshake), then answer.
    let mut buf = [0u8; 1024];
    if let Ok(n) = tls.read(&mut buf) {
        if n > 0 {
            let body = "tofu-certs demo server\n";
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}

/// The `tofu-certs` binary of this workspace: `$TOFU_CERTS_BIN`, else next to the running
/// example or test (cargo builds it there for `cargo test --workspace`), else built now.
pub fn tofu_certs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TOFU_CERTS_BIN") {
        return PathBuf::from(path);
    }
    workspace_binary("tofu-certs", &["-p", "tofu-cli", "--bin", "tofu-certs"])
}

/// The binary of example `name`, built now if cargo has not built it yet.
pub fn example_binary(name: &str) -> PathBuf {
    workspace_binary(
        &format!("examples/{name}"),
        &["-p", "examples", "--example", name],
    )
}

/// `target/<profile>/<relative>`, built with `cargo build <build_args>` when missing.
fn workspace_binary(relative: &str, build_args: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the running program has a path");
    // Examples run from target/<profile>/examples/, tests from target/<profile>/deps/.
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("examples and tests run from target/<profile>/<dir>/");
    let candidate = profile_dir.join(relative);
    if !candidate.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]).args(build_args);
        // What cargo set for the running example or test describes that package; ring's build
        // script records those values, so a nested cargo that inherits them rebuilds ring (and
        // what depends on it, 40-50 s), and the next outer build rebuilds it back.
        for (name, _) in std::env::vars_os() {
            if set_by_cargo_for_the_running_program(&name) {
                cmd.env_remove(name);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs to build the binary");
        assert!(status.success(), "building {relative} failed");
    }
    candidate
}

/// Whether cargo sets the environment variable `name` for the program it runs (`cargo run`,
/// `cargo test`) to describe that program's package: a nested cargo must not inherit these.
/// Everything else stays: `CARGO` (which cargo), `CARGO_HOME`, `CARGO_TARGET_DIR` and the
/// configuration variables (`CARGO_BUILD_*`, `CARGO_PROFILE_*`, `CARGO_NET_*`…), `RUSTFLAGS`
/// and `RUSTUP_TOOLCHAIN`, which the outer build was made with too, so the inner one reuses it.
fn set_by_cargo_for_the_running_program(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    matches!(
        name,
        "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_MANIFEST_LINKS"
            | "CARGO_CRATE_NAME"
            | "CARGO_BIN_NAME"
            | "CARGO_PRIMARY_PACKAGE"
            | "CARGO_TARGET_TMPDIR"
            | "CARGO_RUSTC_CURRENT_DIR"
            | "OUT_DIR"
    ) || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
}

/// What one health check of an endpoint found.
pub enum Check {
    /// The handshake succeeded; the certificate matched its pin, or was pinned now.
    Ok {
        /// The certificate's fingerprint.
        fingerprint: tofu_core::Fingerprint,
        /// Its subject.
        subject: String,
        /// Whether this handshake pinned it (first use).
        pinned_now: bool,
    },
    /// The verifier refused the certificate.
    Refused(tofu_core::TofuError),
    /// Anything else: no connection, a TLS error, a timeout.
    Failed(String),
}

/// One health check: a TLS handshake with `endpoint` through its TOFU client configuration,
/// then an HTTP request for `/`. `connect_to` overrides the address (for servers that were
/// given an ephemeral port).
pub fn check(
    configs: &tofu_core::TofuClientConfigs,
    store: &tofu_core::Store,
    endpoint: &tofu_core::Endpoint,
    timeout: Duration,
) -> Check {
    let was_pinned = match store.endpoint(endpoint) {
        Ok(record) => record.is_pinned(),
        Err(e) => return Check::Failed(e.to_string()),
    };
    let config = match configs.client_config(endpoint) {
        Ok(c) => c,
        Err(e) => return Check::Failed(e.to_string()),
    };
    let result = (|| -> std::io::Result<CertificateDer<'static>> {
        use std::net::ToSocketAddrs;
        let addr = endpoint
            .to_string()
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the host has no address"))?;
        let mut sock = TcpStream::connect_timeout(&addr, timeout)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let conn = rustls::ClientConnection::new(config, endpoint.server_name())
            .map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(conn, &mut sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(tls.sock)?;
        }
        let cert = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or_else(|| std::io::Error::other("the server sent no certificate"))?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: monitor\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response);
        Ok(cert)
    })();
    match result {
        Ok(cert) => {
            let details = tofu_core::cert::CertificateDetails::from_der(&cert);
            Check::Ok {
                fingerprint: tofu_core::Fingerprint::of(&cert),
                subject: details.map(|d| d.subject).unwrap_or_default(),
                pinned_now: !was_pinned,
            }
        }
        Err(e) => match tofu_core::TofuError::from_io(&e) {
            Some(t) => Check::Refused(t.clone()),
            None => Check::Failed(e.to_string()),
        },
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Ok {
                fingerprint,
                subject,
                pinned_now: true,
            } => write!(f, "pinned on first use: {fingerprint} {subject}"),
            Check::Ok { fingerprint, .. } => write!(f, "ok: certificate matches pin {fingerprint}"),
            Check::Refused(tofu_core::TofuError::Mismatch(m)) => {
                write!(f, "mismatch: {}", m.presented.fingerprint)
            }
            Check::Refused(e) => write!(f, "refused: {e}"),
            Check::Failed(e) => write!(f, "error: {e}"),
        }
    }
}

/// The lines a child process writes to its standard output, read on a thread of their own so
/// that a test can wait for one with a timeout. The child is killed when this is dropped.
pub struct ChildLines {
    /// The child.
    pub child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildLines {
    /// Starts `cmd` with its standard output piped here (its standard error inherited).
    pub fn spawn(mut cmd: Command) -> ChildLines {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the child starts");
        let stdout = child.stdout.take().expect("piped just above");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildLines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to 30 s for a line containing all of `needles`, and returns it; panics with
    /// every line seen so far otherwise.
    pub fn wait_for(&mut self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needles:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Every line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
}

impl Drop for ChildLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How one fetch of `hyper_client` or `ureq_client` ended.
pub enum Fetched<'a> {
    /// The server answered with this HTTP status.
    Status(u16),
    /// The request failed; the error may carry a `TofuError`.
    Failed(&'a (dyn std::error::Error + 'static)),
}

impl Fetched<'_> {
    /// The line printed for `url`: `URL: status 200`, `URL: refused: <the TofuError, its
    /// lines indented>`, or `URL: error: ...`; and whether the pins refused it.
    pub fn line(&self, url: &str) -> (String, bool) {
        match self {
            Fetched::Status(status) => (format!("{url}: status {status}"), false),
            Fetched::Failed(error) => match tofu_core::TofuError::find(*error) {
                Some(refusal) => (
                    format!(
                        "{url}: refused: {}",
                        refusal.to_string().replace('\n', "\n    ")
                    ),
                    true,
                ),
                None => (format!("{url}: error: {}", error_chain(*error)), false),
            },
        }
    }
}

/// An error and its sources, as one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let shown = e.to_string();
        if !line.contains(&shown) {
            line.push_str(": ");
            line.push_str(&shown);
        }
        next = e.source();
    }
    line
}

/// The exit status of a run that fetched URLs: 0 when every fetch got a response, 4 when the
/// pins refused one (as `tokio_client`), 1 for any other failure.
pub fn fetch_exit(refused: bool, failed: bool) -> std::process::ExitCode {
    match (refused, failed) {
        (true, _) => std::process::ExitCode::from(4),
        (false, true) => std::process::ExitCode::FAILURE,
        (false, false) => std::process::ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::set_by_cargo_for_the_running_program as inherited;

    #[test]
    fn a_nested_cargo_drops_the_running_packages_description_and_keeps_the_configuration() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_tofu-certs",
            "CARGO_TARGET_TMPDIR",
            "OUT_DIR",
        ] {
            assert!(inherited(name.as_ref()), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_DEV_OPT_LEVEL",
            "CARGO_NET_OFFLINE",
            "RUSTFLAGS",
            "RUSTUP_TOOLCHAIN",
            "PATH",
        ] {
            assert!(!inherited(name.as_ref()), "{name}");
        }
    }
}
