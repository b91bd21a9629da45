//! The verifier's matching path: `ServerCertVerifier::verify_server_cert` on a pinned endpoint
//! of stores of 1k, 100k and 1M pins, next to the floor it is claimed to beat (one SHA-256 over
//! the same certificate DER); the cost of reading an endpoint that is not cached (a verifier's
//! first handshake, or the first after the store changed); opening a store; and many threads
//! verifying at once.
//!
//! `cargo bench -p tofu-core --bench matching`; stores are built once into
//! `target/bench-stores/` (the 1M store takes a minute or two the first time).

mod common;

use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tofu_core::{Fingerprint, Store, TofuVerifier};

use common::{bench_store, endpoint, size_name, BenchStore};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

/// A verifier for the endpoint in the middle of `store`, its certificate and its server name,
/// after one verification so the endpoint's view is cached as it is in a running service.
fn pinned_verifier(
    store: &BenchStore,
    i: usize,
) -> (
    Arc<TofuVerifier>,
    CertificateDer<'static>,
    ServerName<'static>,
) {
    let verifier = TofuVerifier::builder(store.open(), endpoint(i))
        .build()
        .expect("a verifier");
    let cert = store.cert_of(i).clone();
    let name = verifier.server_name().clone();
    verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        .expect("the pinned certificate verifies");
    (verifier, cert, name)
}

fn matching(c: &mut Criterion) {
    let stores: Vec<BenchStore> = SIZES.iter().map(|&n| bench_store(n)).collect();
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(1));
    for store in &stores {
        let (verifier, cert, name) = pinned_verifier(store, store.pins / 2);
        let now = UnixTime::now();
        group.bench_function(
            BenchmarkId::new("verify_server_cert", size_name(store.pins)),
            |b| {
                b.iter(|| {
                    verifier
                        .verify_server_cert(black_box(&cert), &[], &name, &[], now)
                        .expect("pinned")
                })
            },
        );
    }
    // The floor: hashing the certificate once, which a lookup keyed by fingerprint must do.
    let cert = stores[0].cert_of(0).clone();
    group.bench_function(
        BenchmarkId::new("sha256_of_cert", format!("{}B", cert.len())),
        |b| b.iter(|| Fingerprint::of(black_box(cert.as_ref()))),
    );
    let kib = vec![0x5au8; 1024];
    group.bench_function(BenchmarkId::new("sha256_of_cert", "1024B"), |b| {
        b.iter(|| Fingerprint::of(black_box(&kib)))
    });
    group.finish();

    // Reading an endpoint from SQLite: what a verifier does on its first handshake and after
    // the store changed. Endpoints are visited in a scattered order so the B-tree pages are
    // not all hot.
    let mut group = c.benchmark_group("endpoint_lookup");
    group.throughput(Throughput::Elements(1));
    for store in &stores {
        let s = store.open();
        let endpoints: Vec<_> = (0..4096u64)
            .map(|k| endpoint((k.wrapping_mul(2_654_435_761) % store.pins as u64) as usize))
            .collect();
        let mut k = 0;
        group.bench_function(
            BenchmarkId::new("store_endpoint", size_name(store.pins)),
            |b| {
                b.iter(|| {
                    k = (k + 1) % endpoints.len();
                    let record = s.endpoint(&endpoints[k]).expect("readable");
                    assert_eq!(record.pins.len(), 1);
                    record
                })
            },
        );
    }
    group.finish();

    // Reading every pin, as `tofu-certs listcerts` and `export` do (one pass in endpoint order).
    let mut group = c.benchmark_group("for_each_pin");
    group.sample_size(10);
    for store in &stores {
        let s = store.open();
        group.throughput(Throughput::Elements(store.pins as u64));
        group.bench_function(BenchmarkId::new("all", size_name(store.pins)), |b| {
            b.iter(|| {
                let mut n = 0usize;
                s.for_each_pin(|pin| {
                    n += black_box(&pin).der.len();
                    ControlFlow::Continue(())
                })
                .expect("readable");
                n
            })
        });
    }
    group.finish();

    // Opening a store, as every `tofu-certs` command does: the schema checks and the first
    // connection (closing it, dropped outside the timing, checkpoints and removes the WAL).
    let mut group = c.benchmark_group("store_open");
    for store in &stores {
        group.bench_function(
            BenchmarkId::new("open_existing", size_name(store.pins)),
            |b| b.iter_with_large_drop(|| Store::open_existing(&store.dir).expect("opens")),
        );
    }
    group.finish();
}

/// Throughput of `verify_server_cert` with 1, 2 and 4 threads at once on the 1M-pin store:
/// all threads on one endpoint's verifier (the most sharing), and each thread on its own
/// endpoint's verifier. One iteration is one call on every thread; criterion's elements/s is
/// the calls per second of all threads together.
fn threads(c: &mut Criterion) {
    let store = bench_store(1_000_000);
    let mut group = c.benchmark_group("matching_threads");
    for (label, shared) in [("one_endpoint", true), ("own_endpoint", false)] {
        for n in [1usize, 2, 4] {
            let verifiers: Vec<_> = if shared {
                let one = pinned_verifier(&store, 500_000);
                (0..n).map(|_| one.clone()).collect()
            } else {
                (0..n)
                    .map(|t| pinned_verifier(&store, 500_000 + t))
                    .collect()
            };
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new(label, format!("{n}_threads")), |b| {
                b.iter_custom(|iters| concurrent_calls(&verifiers, iters))
            });
        }
    }
    group.finish();
}

/// Runs `iters` calls of `verify_server_cert` on each verifier, each on its own thread, all
/// started together; returns the wall time until the last one finished.
fn concurrent_calls(
    verifiers: &[(
        Arc<TofuVerifier>,
        CertificateDer<'static>,
        ServerName<'static>,
    )],
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(verifiers.len() + 1);
    let now = UnixTime::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = verifiers
            .iter()
            .map(|(verifier, cert, name)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..iters {
                        verifier
                            .verify_server_cert(black_box(cert), &[], name, &[], now)
                            .expect("pinned");
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("a verifying thread");
        }
        start.elapsed()
    })
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = matching, threads
}
criterion_main!(benches);
