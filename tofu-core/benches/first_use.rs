//! First use: `Store::pin_first_use` on a fresh endpoint each iteration. Every call is one
//! `BEGIN IMMEDIATE` transaction committed with `synchronous=FULL`, so each is an fsync of
//! the write-ahead log: this measures the disk as much as the store.
//!
//! The store lives under `target/bench-stores/` (same file system as a real store would be on
//! a build machine), not in `/tmp`, which may be a RAM disk where fsync costs nothing.
//!
//! `cargo bench -p tofu-core --bench first_use`

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tofu_core::{store::FirstUse, Store};

use common::{bench_stores_dir, endpoint, self_signed};

fn first_use(c: &mut Criterion) {
    let parent = bench_stores_dir();
    std::fs::create_dir_all(&parent).expect("target/bench-stores");
    let dir = tempfile::tempdir_in(&parent).expect("a temporary directory");
    let store = Store::open(dir.path().join("store")).expect("a store");
    let cert = self_signed("first-use.example").cert;
    let mut i = 0usize;
    let mut group = c.benchmark_group("first_use");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pin_first_use_fsync", |b| {
        b.iter(|| {
            i += 1;
            match store.pin_first_use(&endpoint(i), &cert).expect("writable") {
                FirstUse::Pinned(_) => {}
                FirstUse::AlreadyPinned(_) => panic!("endpoint {i} was fresh"),
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = first_use
}
criterion_main!(benches);
