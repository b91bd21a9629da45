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

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
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

/// On-CPU and run-queue nanoseconds of the calling thread, from `/proc/thread-self/schedstat`
/// (Linux); zeros where it is not available.
fn thread_schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// Where the threads' time went: a machine shared with other work cannot give two free cores
/// on demand, so wall-clock throughput alone cannot tell serialisation in the hot path from a
/// busy machine. Each thread's own accounting can: time on a CPU per call (which grows when
/// threads fight over cache lines or locks), time runnable but waiting for a CPU (the
/// machine was busy) and time blocked (waiting for a lock held by another thread).
fn threads_cpu_report(calls_per_thread: u64) {
    let store = bench_store(1_000_000);
    let shared = pinned_verifier(&store, 500_000);
    println!(
        "\nmatching_threads_accounting (1M pins, one endpoint, {calls_per_thread} calls per thread)"
    );
    println!(
        "{:>7} {:>14} {:>9} {:>16} {:>17} {:>10}",
        "threads", "calls/s", "scaling", "on-CPU ns/call", "waiting for CPU", "blocked"
    );
    let mut base = None;
    for n in [1usize, 2, 4] {
        let barrier = Barrier::new(n + 1);
        let now = UnixTime::now();
        let (wall, per_thread) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let barrier = &barrier;
                    let (verifier, cert, name) = &shared;
                    scope.spawn(move || {
                        barrier.wait();
                        let (cpu0, wait0) = thread_schedstat();
                        let start = Instant::now();
                        for _ in 0..calls_per_thread {
                            verifier
                                .verify_server_cert(black_box(cert), &[], name, &[], now)
                                .expect("pinned");
                        }
                        let elapsed = start.elapsed().as_nanos() as u64;
                        let (cpu1, wait1) = thread_schedstat();
                        (elapsed, cpu1 - cpu0, wait1 - wait0)
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let per_thread: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("a verifying thread"))
                .collect();
            (start.elapsed(), per_thread)
        });
        let calls = (n as u64 * calls_per_thread) as f64;
        let rate = calls / wall.as_secs_f64();
        let base_rate = *base.get_or_insert(rate);
        let (lifetime, cpu, wait) = per_thread
            .iter()
            .fold((0u64, 0u64, 0u64), |(l, c, w), &(tl, tc, tw)| {
                (l + tl, c + tc, w + tw)
            });
        let blocked = lifetime.saturating_sub(cpu + wait);
        let pct = |x: u64| 100.0 * x as f64 / lifetime.max(1) as f64;
        println!(
            "{:>7} {:>14.0} {:>8.2}× {:>16.1} {:>16.1}% {:>9.1}%",
            n,
            rate,
            rate / base_rate,
            cpu as f64 / calls,
            pct(wait),
            pct(blocked)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = matching, threads
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then a few calls
    // check that the code runs. A name filter that does not match skips the report.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"matching_threads_accounting".contains(f.as_str())) {
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    threads_cpu_report(if bench { 2_000_000 } else { 10 });
}
