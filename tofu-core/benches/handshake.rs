//! A full TLS 1.3 handshake in memory (no sockets: the client and server exchange bytes through
//! `Vec` buffers), the same server (ECDSA P-256 leaf issued by an ECDSA P-256 CA, ring
//! provider) each time, with four client verifiers:
//!
//! - `accept_any_check_signatures`: accepts any certificate but still verifies the handshake
//!   signature: the cost of TLS itself, the floor;
//! - `webpki`: rustls's `WebPkiServerVerifier`, the CA as its only root;
//! - `tofu`: `TofuVerifier` on an endpoint pinned to the leaf, in a client configuration built
//!   like the other two (no resumption);
//! - `tofu_client_config`: the same verifier through `TofuVerifier::client_config()`, which
//!   adds its pin-bound session store (the server sends no tickets, so nothing resumes).
//!
//! `cargo bench -p tofu-core --bench handshake`

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tofu_core::{
    pin::{PinSource, PinState},
    store::NewPin,
    Endpoint, Store, TofuVerifier,
};

use common::{ca_issued, handshake, provider, server_config};

const NAME: &str = "bench.example";

/// Accepts any certificate; checks the handshake signatures as every verifier must.
#[derive(Debug)]
struct AcceptAnyCheckSignatures(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCheckSignatures {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration like every other one here: ring, TLS 1.3 and 1.2, no resumption.
fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring does TLS")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The four client configurations, the server and the name, built once.
struct Setup {
    server: Arc<rustls::ServerConfig>,
    name: ServerName<'static>,
    clients: Vec<(&'static str, Arc<ClientConfig>)>,
    _store_dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let issued = ca_issued(NAME);
    let server = server_config(vec![issued.leaf.cert.clone()], &issued.leaf.key);
    let name = ServerName::try_from(NAME).expect("a DNS name");

    let any = client_config(Arc::new(AcceptAnyCheckSignatures(provider())));

    let mut roots = RootCertStore::empty();
    roots.add(issued.ca.clone()).expect("the CA as a root");
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .expect("a WebPKI verifier");
    let webpki = client_config(webpki);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(Store::open(dir.path().join("store")).expect("a store"));
    let endpoint = Endpoint::new(NAME, 443).expect("an endpoint");
    store
        .import(
            &[NewPin {
                endpoint: endpoint.clone(),
                der: issued.leaf.cert.clone(),
                state: PinState::Active,
                source: PinSource::Operator,
                label: None,
                pinned_at: None,
                first_seen: None,
                last_seen: None,
                times_seen: 0,
                matches: tofu_core::pin::PinMatch::Certificate,
            }],
            false,
        )
        .expect("pin the leaf");
    let tofu_verifier = TofuVerifier::builder_with_provider(store, endpoint, provider())
        .build()
        .expect("a TOFU verifier");
    let tofu = client_config(tofu_verifier.clone());
    let tofu_own = tofu_verifier.client_config();

    let clients = vec![
        ("accept_any_check_signatures", any),
        ("webpki", webpki),
        ("tofu", tofu),
        ("tofu_client_config", tofu_own),
    ];
    // Every configuration must complete a handshake before it is timed.
    for (_, client) in &clients {
        handshake(client, &server, &name);
    }
    Setup {
        server,
        name,
        clients,
        _store_dir: dir,
    }
}

fn handshakes(c: &mut Criterion) {
    let setup = setup();
    let mut group = c.benchmark_group("handshake_tls13");
    group.throughput(Throughput::Elements(1));
    for (label, client) in &setup.clients {
        group.bench_function(*label, |b| {
            b.iter(|| handshake(client, &setup.server, &setup.name))
        });
    }
    group.finish();
}

/// The same handshakes, interleaved: each round runs one handshake with every configuration
/// (in a rotating order), so a machine that gets busier or quieter during the run (other
/// builds on a shared machine) slows all of them alike. Prints the median of each and its
/// ratio to the floor; the ratios are the numbers to compare, more than criterion's separate
/// runs above.
fn interleaved(rounds: usize) {
    let setup = setup();
    let n = setup.clients.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let start = Instant::now();
            handshake(&setup.clients[i].1, &setup.server, &setup.name);
            samples[i].push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    println!("\nhandshake_tls13_interleaved ({rounds} rounds, median of each)");
    println!("{:<30} {:>12} {:>10}", "verifier", "median µs", "vs floor");
    for (i, (label, _)) in setup.clients.iter().enumerate() {
        println!(
            "{:<30} {:>12.1} {:>9.3}×",
            label,
            medians[i],
            medians[i] / medians[0]
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = handshakes
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then one round
    // checks that the code runs. A name filter that does not match skips it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"handshake_tls13_interleaved".contains(f.as_str())) {
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let rounds = std::env::var("HANDSHAKE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if bench { 3000 } else { 1 });
    interleaved(rounds);
}
