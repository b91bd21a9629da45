//! What the benchmarks share: certificates from rcgen, pin stores of a given size (built once
//! through `Store::import` and cached under `target/bench-stores/`), and in-memory TLS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use tofu_core::{
    pin::{PinSource, PinState},
    store::NewPin,
    Endpoint, Store,
};

/// How many distinct certificates a generated store holds; pin `i` is certificate
/// `i % DISTINCT_CERTS`. Realistic for size (every row holds its own DER), fast to generate.
pub(crate) const DISTINCT_CERTS: usize = 256;

/// Bump when the way stores are generated changes, so cached stores are rebuilt.
const STORE_FORMAT: &str = "bench-store v1";

/// A certificate and its private key.
pub(crate) struct Identity {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

fn prime_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    dn
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key generation")
}

/// A self-signed ECDSA P-256 certificate, shaped like an appliance's (Prime Infrastructure's
/// subject, the CN as DNS name and an IP address as SANs).
pub(crate) fn self_signed(cn: &str) -> Identity {
    let key = p256();
    let mut params = CertificateParams::new(vec![cn.to_string()]).expect("valid SAN");
    params.subject_alt_names.push(SanType::IpAddress(
        "10.1.1.1".parse().expect("an IP address"),
    ));
    params.distinguished_name = prime_dn(cn);
    let cert = params.self_signed(&key).expect("self-signing");
    Identity {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// A CA (ECDSA P-256) and a leaf for `name` that it issued (ECDSA P-256).
pub(crate) struct CaIssued {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) leaf: Identity,
}

pub(crate) fn ca_issued(name: &str) -> CaIssued {
    let ca_key = p256();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("no SANs");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = prime_dn("Bench Root CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA self-signing");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = p256();
    let mut leaf_params = CertificateParams::new(vec![name.to_string()]).expect("valid SAN");
    leaf_params.distinguished_name = prime_dn(name);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("signing");
    CaIssued {
        ca: ca_cert.der().clone(),
        leaf: Identity {
            cert: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        },
    }
}

/// The endpoint of pin `i` in a generated store.
pub(crate) fn endpoint(i: usize) -> Endpoint {
    Endpoint::new(&format!("host-{i}"), 443).expect("a valid endpoint")
}

/// Where cached stores live: `target/bench-stores/` (the target directory is found from the
/// benchmark executable, `target/release/deps/NAME-HASH`, unless `CARGO_TARGET_DIR` says).
pub(crate) fn bench_stores_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("bench-stores");
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .map(|target| target.join("bench-stores"))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-stores"))
}

/// A human name for a store size: 1k, 100k, 1m.
pub(crate) fn size_name(pins: usize) -> String {
    match pins {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// A generated store: `pins` endpoints `host-0:443` … with one active pin each, pin `i` being
/// `certs[i % certs.len()]`.
pub(crate) struct BenchStore {
    pub(crate) dir: PathBuf,
    pub(crate) pins: usize,
    pub(crate) certs: Vec<CertificateDer<'static>>,
}

impl BenchStore {
    /// The certificate pinned for endpoint `i`.
    pub(crate) fn cert_of(&self, i: usize) -> &CertificateDer<'static> {
        &self.certs[i % self.certs.len()]
    }

    pub(crate) fn open(&self) -> Arc<Store> {
        Arc::new(Store::open_existing(&self.dir).expect("the bench store opens"))
    }
}

/// The store of `pins` pins, built on first use and cached under `target/bench-stores/`.
/// The certificates are kept next to it (`certs.der`), so a rerun needs no generation.
pub(crate) fn bench_store(pins: usize) -> BenchStore {
    let dir = bench_stores_dir().join(size_name(pins));
    let marker = dir.join("complete");
    let certs_file = dir.join("certs.der");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&format!("{STORE_FORMAT} {pins}")) {
        if let Ok(bytes) = std::fs::read(&certs_file) {
            let certs = split_ders(&bytes);
            if certs.len() == DISTINCT_CERTS {
                return BenchStore { dir, pins, certs };
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().expect("has a parent")).expect("target/bench-stores");
    let started = Instant::now();
    eprintln!("building the {}-pin store in {} …", pins, dir.display());
    let certs: Vec<_> = (0..DISTINCT_CERTS)
        .map(|i| self_signed(&format!("device-{i}.example")).cert)
        .collect();
    let store = Store::open(&dir).expect("create the bench store");
    const BATCH: usize = 50_000;
    let mut start = 0;
    while start < pins {
        let end = (start + BATCH).min(pins);
        let batch: Vec<NewPin> = (start..end)
            .map(|i| NewPin {
                endpoint: endpoint(i),
                der: certs[i % certs.len()].clone(),
                state: PinState::Active,
                source: PinSource::Imported,
                label: None,
                pinned_at: None,
                first_seen: None,
                last_seen: None,
                times_seen: 0,
                matches: tofu_core::pin::PinMatch::Certificate,
            })
            .collect();
        let report = store
            .import(&batch, false)
            .expect("import the generated pins");
        assert_eq!(report.added, end - start);
        start = end;
        if pins > BATCH {
            eprintln!("  {end} pins ({:.0?})", started.elapsed());
        }
    }
    drop(store);
    let mut all = Vec::new();
    for c in &certs {
        all.extend_from_slice(&(c.len() as u32).to_be_bytes());
        all.extend_from_slice(c);
    }
    std::fs::write(&certs_file, all).expect("write certs.der");
    std::fs::write(&marker, format!("{STORE_FORMAT} {pins}")).expect("write the marker");
    eprintln!("built in {:.1?}", started.elapsed());
    BenchStore { dir, pins, certs }
}

fn split_ders(mut bytes: &[u8]) -> Vec<CertificateDer<'static>> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("four bytes")) as usize;
        if bytes.len() < 4 + len {
            return Vec::new();
        }
        out.push(CertificateDer::from(bytes[4..4 + len].to_vec()));
        bytes = &bytes[4 + len..];
    }
    out
}

/// The ring provider, which every benchmark uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 server presenting `chain` and signing with `key`; it sends no session tickets,
/// so every handshake is a full one.
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivatePkcs8KeyDer<'static>,
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring does TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(key.clone_key()))
        .expect("a usable certificate and key");
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// One full handshake in memory: the two sides exchange bytes through a `Vec` until neither
/// is handshaking. Panics when the handshake fails.
pub(crate) fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    name: &rustls::pki_types::ServerName<'static>,
) {
    let mut c = ClientConnection::new(client.clone(), name.clone()).expect("client connection");
    let mut s = ServerConnection::new(server.clone()).expect("server connection");
    let mut buf = Vec::with_capacity(4096);
    while c.is_handshaking() || s.is_handshaking() {
        let mut progressed = false;
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write_tls");
        }
        if !buf.is_empty() {
            progressed = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server read_tls");
            }
            s.process_new_packets().expect("server handshake");
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server write_tls");
        }
        if !buf.is_empty() {
            progressed = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).expect("client read_tls");
            }
            c.process_new_packets().expect("client handshake");
        }
        assert!(progressed, "the handshake stalled");
    }
}
