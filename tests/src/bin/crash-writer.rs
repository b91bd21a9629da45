//! A writer for the crash-safety harness (`tests/reliability_crash.rs`), made to be killed
//! with SIGKILL at a random moment. It writes to one store, forever, a random mix of the
//! operations that change trust, each on endpoints of its own:
//!
//! - `pin`: a first-use pin (`Store::pin_first_use`);
//! - `import`: a batch of pins in one `Store::import`, under a unique batch name;
//! - `delete`: a first-use pin, then `Store::remove_endpoint`;
//! - `accept`: a first-use pin, a presented certificate quarantined, then accepted by
//!   fingerprint (`Store::quarantine`, `Store::accept_quarantined`).
//!
//! ```text
//! crash-writer <store-dir> <cert-dir> <run> <seed>
//! ```
//!
//! `<cert-dir>` holds certificates `0.der`, `1.der`, … (made once by the test: generating
//! them is slower than writing them). `<run>` makes the endpoint names unique across the
//! writers of one store. It prints `ready` once the store is open, then for each call one
//! line before it (`begin <op> <args>`) and one after it returned Ok (`done <op> <args>`),
//! each flushed at once:
//!
//! ```text
//! begin pin <endpoint> <cert>            done pin <endpoint> <cert>
//! begin import <batch> <count> <first>   done import <batch> <count> <first>
//! begin delete <endpoint>                done delete <endpoint>
//! begin quarantine <endpoint> <cert>     done quarantine <endpoint> <cert>
//! begin accept <endpoint> <cert>         done accept <endpoint> <cert>
//! ```
//!
//! A batch's endpoints are `<batch>-<j>.crash:443` for j < count, pinned to certificate
//! `(first + j) % pool`. A `done` line is an acknowledgement: the change was committed.
//! Any failure prints `error: <message>` and exits with status 1.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use tofu_core::{
    pin::{PinSource, PinState},
    store::{FirstUse, NewPin},
    Endpoint, Fingerprint, Store,
};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Pins in one import batch.
const BATCH: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        say(&format!("error: {e}"));
        std::process::exit(1);
    }
}

/// Prints one line with one write, and flushes it, so that a line is either all there or
/// not at all when the process is killed.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn run(args: &[String]) -> Result<()> {
    let [dir, certs, run, seed] = args else {
        return Err("usage: crash-writer <store-dir> <cert-dir> <run> <seed>".into());
    };
    let pool = read_pool(Path::new(certs))?;
    let mut rng = Rng(seed.parse::<u64>()? | 1);
    let store = Store::open(PathBuf::from(dir))?;
    say("ready");
    for unit in 0.. {
        let name = format!("r{run}-u{unit}");
        let ep: Endpoint = format!("{name}.crash:443").parse()?;
        let a = rng.below(pool.len());
        match rng.below(100) {
            0..=39 => pin(&store, &ep, &pool, a)?,
            40..=54 => import(&store, &name, &pool, a)?,
            55..=79 => {
                pin(&store, &ep, &pool, a)?;
                say(&format!("begin delete {ep}"));
                store.remove_endpoint(&ep)?;
                say(&format!("done delete {ep}"));
            }
            _ => {
                pin(&store, &ep, &pool, a)?;
                let b = (a + 1 + rng.below(pool.len() - 1)) % pool.len();
                say(&format!("begin quarantine {ep} {b}"));
                store.quarantine(&ep, &pool[b])?;
                say(&format!("done quarantine {ep} {b}"));
                say(&format!("begin accept {ep} {b}"));
                store.accept_quarantined(&ep, &Fingerprint::of(&pool[b]))?;
                say(&format!("done accept {ep} {b}"));
            }
        }
    }
    Ok(())
}

fn pin(store: &Store, ep: &Endpoint, pool: &[CertificateDer<'static>], i: usize) -> Result<()> {
    say(&format!("begin pin {ep} {i}"));
    match store.pin_first_use(ep, &pool[i])? {
        FirstUse::Pinned(_) => {
            say(&format!("done pin {ep} {i}"));
            Ok(())
        }
        FirstUse::AlreadyPinned(_) => Err(format!("{ep} was pinned already").into()),
    }
}

fn import(
    store: &Store,
    batch: &str,
    pool: &[CertificateDer<'static>],
    first: usize,
) -> Result<()> {
    let pins = (0..BATCH)
        .map(|j| {
            Ok(NewPin {
                endpoint: format!("{batch}-{j}.crash:443").parse()?,
                der: pool[(first + j) % pool.len()].clone(),
                state: PinState::Active,
                source: PinSource::Imported,
                label: Some(batch.to_string()),
                pinned_at: None,
                first_seen: None,
                last_seen: None,
                times_seen: 0,
                matches: tofu_core::pin::PinMatch::Certificate,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    say(&format!("begin import {batch} {BATCH} {first}"));
    let report = store.import(&pins, false)?;
    if report.added != BATCH {
        return Err(format!("import {batch} added {} pins of {BATCH}", report.added).into());
    }
    say(&format!("done import {batch} {BATCH} {first}"));
    Ok(())
}

fn read_pool(dir: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let mut pool = Vec::new();
    while let Ok(der) = std::fs::read(dir.join(format!("{}.der", pool.len()))) {
        pool.push(CertificateDer::from(der));
    }
    if pool.len() < 2 {
        return Err(format!("{} holds fewer than 2 certificates", dir.display()).into());
    }
    Ok(pool)
}

/// xorshift64: the writer's choices follow from its seed, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
