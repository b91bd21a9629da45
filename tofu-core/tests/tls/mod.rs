//! Real TLS servers on loopback and certificates from rcgen, for the verifier's tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Ed25519,
    Rsa,
}

pub const KEY_KINDS: [KeyKind; 3] = [KeyKind::Ecdsa, KeyKind::Ed25519, KeyKind::Rsa];

/// A certificate and its private key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub pem: String,
}

fn key_pair(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        // ring cannot generate RSA keys; the openssl binary the tests need anyway can.
        KeyKind::Rsa => {
            let out = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .output()
                .expect("the tests need the openssl binary (.ci/run installs it)");
            assert!(out.status.success(), "openssl genpkey failed");
            let pem = String::from_utf8(out.stdout).unwrap();
            KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap()
        }
    }
}

/// A self-signed certificate with Prime Infrastructure's subject and the given CN.
pub fn identity(cn: &str, kind: KeyKind) -> Identity {
    identity_with(cn, kind, |_| {})
}

fn prime_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(vec![cn.to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params
}

/// A self-signed certificate whose parameters `edit` adjusts first.
pub fn identity_with(
    cn: &str,
    kind: KeyKind,
    edit: impl FnOnce(&mut CertificateParams),
) -> Identity {
    let key = key_pair(kind);
    let mut params = prime_params(cn);
    edit(&mut params);
    let cert = params.self_signed(&key).unwrap();
    Identity {
        pem: cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// A certificate authority that issues leaf certificates.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

pub fn ca(cn: &str) -> Ca {
    let key = key_pair(KeyKind::Ecdsa);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert: cert.der().clone(),
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// A leaf certificate for `cn` (and 127.0.0.1) issued by `ca`.
pub fn issued_by(ca: &Ca, cn: &str) -> Identity {
    let key = key_pair(KeyKind::Ecdsa);
    let cert = prime_params(cn).signed_by(&key, &ca.issuer).unwrap();
    Identity {
        pem: cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

pub const VERSIONS: [Version; 2] = [Version::Tls12, Version::Tls13];

/// What the server saw of one connection.
#[derive(Debug, Clone)]
pub struct Seen {
    pub error: Option<rustls::Error>,
    pub app_bytes: usize,
    pub resumed: bool,
}

/// Presents a chain, signing with a key (which need not be the leaf's).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

pub fn signer(key: &PrivatePkcs8KeyDer<'static>) -> Arc<dyn rustls::sign::SigningKey> {
    any_supported_type(&PrivateKeyDer::Pkcs8(key.clone_key())).unwrap()
}

/// A TLS server on 127.0.0.1 answering every connection in its own thread: after the
/// handshake it writes `hello\n`, then counts the application data it receives until EOF.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    config: Arc<Mutex<Arc<ServerConfig>>>,
    version: Version,
}

fn server_config(
    version: Version,
    chain: Vec<CertificateDer<'static>>,
    signer: Arc<dyn rustls::sign::SigningKey>,
) -> Arc<ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        Version::Tls12 => &[&rustls::version::TLS12],
        Version::Tls13 => &[&rustls::version::TLS13],
    };
    let identity = Arc::new(Fixed(Arc::new(CertifiedKey::new(chain, signer))));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(identity);
    Arc::new(config)
}

impl Server {
    pub fn start(
        chain: Vec<CertificateDer<'static>>,
        key: &PrivatePkcs8KeyDer<'static>,
        version: Version,
    ) -> Server {
        Self::start_signed(chain, signer(key), version)
    }

    /// A server presenting `chain` but signing with `signer`: a server that copied a
    /// certificate without having its key.
    pub fn start_signed(
        chain: Vec<CertificateDer<'static>>,
        signer: Arc<dyn rustls::sign::SigningKey>,
        version: Version,
    ) -> Server {
        let config = Arc::new(Mutex::new(server_config(version, chain, signer)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let config2 = config.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let config = config2.lock().unwrap().clone();
                let seen = seen2.clone();
                std::thread::spawn(move || {
                    let outcome = serve(stream, config);
                    seen.lock().unwrap().push(outcome);
                });
            }
        });
        Server {
            addr,
            seen,
            config,
            version,
        }
    }

    /// From now on, presents `id` (a server restarted with a new key and certificate).
    pub fn set_identity(&self, id: &Identity) {
        self.set_signed(vec![id.cert.clone()], signer(&id.key));
    }

    /// From now on, presents `chain` and signs with `signer`. Like a restarted server, it
    /// has forgotten its sessions.
    pub fn set_signed(
        &self,
        chain: Vec<CertificateDer<'static>>,
        signer: Arc<dyn rustls::sign::SigningKey>,
    ) {
        *self.config.lock().unwrap() = server_config(self.version, chain, signer);
    }

    /// Everything the server saw so far (waits briefly for connection threads to finish).
    pub fn seen(&self, expect: usize) -> Vec<Seen> {
        for _ in 0..200 {
            if self.seen.lock().unwrap().len() >= expect {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut sock: TcpStream, config: Arc<ServerConfig>) -> Seen {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = ServerConnection::new(config).unwrap();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Seen {
                error: rustls_error(&e),
                app_bytes: 0,
                resumed: false,
            };
        }
    }
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let _ = tls.write_all(b"hello\n");
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    Seen {
        error: None,
        app_bytes: buf.len(),
        resumed,
    }
}

fn rustls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

/// The client's result of one connection.
#[derive(Debug)]
pub struct Connected {
    pub kind: HandshakeKind,
}

/// Connects with `config`, completes the handshake, reads the server's `hello`, sends
/// `ping` and closes. Returns the io::Error the handshake failed with, if it did.
pub fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    name: &ServerName<'static>,
) -> Result<Connected, std::io::Error> {
    let mut sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = ClientConnection::new(config.clone(), name.clone()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    let kind = conn.handshake_kind().unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut hello = [0u8; 6];
    tls.read_exact(&mut hello)?;
    assert_eq!(&hello, b"hello\n");
    tls.write_all(b"ping")?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(Connected { kind })
}

/// The rustls error inside an io::Error from `connect`.
pub fn client_error(e: &std::io::Error) -> rustls::Error {
    rustls_error(e).unwrap_or_else(|| panic!("not a TLS error: {e}"))
}
