//! Crash safety: writers killed with SIGKILL at random moments, hundreds of times, lose
//! nothing they acknowledged and leave nothing half-done.
//!
//! Each writer is a `crash-writer` process (src/bin/crash-writer.rs) writing first-use pins,
//! import batches, deletions and acceptances to one store, and printing a line before and
//! after each call. After each kill the store is reopened and must:
//!
//! - open, and pass SQLite's `PRAGMA integrity_check`;
//! - hold the effect of every acknowledged call (`done` line), exactly;
//! - hold, for the one call in flight when the signal came, either its whole effect or
//!   none of it: an import batch has all of its pins or none, an acceptance has replaced
//!   the pin and left quarantine or not started;
//! - hold no pin that no writer began to write, and an audit entry for every pin.
//!
//! What was observed of an in-flight call becomes the expectation for every later check of
//! that store, so a change that "comes back" or vanishes after a later crash is caught too.
//!
//! `TOFU_CRASH_KILLS` sets the number of kills (default 400, in 4 stores), `TOFU_CRASH_SEED`
//! replays a run (the seed is printed). The figures are printed at the end (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tofu_core::{audit::AuditEvent, pin::PinState, Fingerprint, Store};

const WRITER: &str = env!("CARGO_BIN_EXE_crash-writer");

/// Certificates in the pool the writers draw from.
const POOL: usize = 24;

/// Stores, each with its own sequence of writers; they run side by side.
const STORES: usize = 4;

/// Long enough for a loaded 2-core CI machine to open a store.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn writers_killed_at_random_moments_lose_nothing_they_acknowledged() {
    let kills: usize = std::env::var("TOFU_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("TOFU_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash harness: {kills} kills in {STORES} stores, TOFU_CRASH_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let (certs, pool) = write_pool(&tmp.path().join("certs"));

    let started = Instant::now();
    let figures: Vec<Figures> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..STORES)
            .map(|i| {
                let dir = tmp.path().join(format!("store-{i}"));
                let (certs, pool) = (&certs, &pool);
                let n = kills / STORES + usize::from(i < kills % STORES);
                s.spawn(move || crash_store(&dir, certs, pool, n, seed ^ ((i as u64 + 1) * 0x9e37)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = figures.iter().fold(Figures::default(), |a, b| a.add(b));
    println!(
        "crash harness: {} kills survived in {:.1} s: {} writers killed before the store was \
         open, {} acknowledged calls all present, {} calls in flight ({} committed whole, {} \
         not at all), {} import batches interrupted ({} all in, {} none), {} pins and {} \
         audit entries at the end, integrity_check passed {} times",
        total.kills,
        started.elapsed().as_secs_f64(),
        total.killed_before_ready,
        total.acknowledged,
        total.in_flight,
        total.in_flight_committed,
        total.in_flight - total.in_flight_committed,
        total.interrupted_imports,
        total.interrupted_imports_committed,
        total.interrupted_imports - total.interrupted_imports_committed,
        total.pins,
        total.audit,
        total.kills,
    );
    assert_eq!(total.kills, kills);
    assert!(
        total.acknowledged >= kills,
        "the writers acknowledged only {} calls in {kills} runs: the kills came too early to \
         test much",
        total.acknowledged
    );
    assert!(total.in_flight > 0, "no kill landed during a call");
}

/// The figures of a store's runs.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    kills: usize,
    killed_before_ready: usize,
    acknowledged: usize,
    in_flight: usize,
    in_flight_committed: usize,
    interrupted_imports: usize,
    interrupted_imports_committed: usize,
    pins: usize,
    audit: usize,
}

impl Figures {
    fn add(self, o: &Figures) -> Figures {
        Figures {
            kills: self.kills + o.kills,
            killed_before_ready: self.killed_before_ready + o.killed_before_ready,
            acknowledged: self.acknowledged + o.acknowledged,
            in_flight: self.in_flight + o.in_flight,
            in_flight_committed: self.in_flight_committed + o.in_flight_committed,
            interrupted_imports: self.interrupted_imports + o.interrupted_imports,
            interrupted_imports_committed: self.interrupted_imports_committed
                + o.interrupted_imports_committed,
            pins: self.pins + o.pins,
            audit: self.audit + o.audit,
        }
    }
}

/// Makes the certificate pool once and writes it for the writers; returns its directory and
/// the fingerprints.
fn write_pool(dir: &Path) -> (PathBuf, Vec<Fingerprint>) {
    std::fs::create_dir_all(dir).unwrap();
    let fps = (0..POOL)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let der = rcgen::CertificateParams::new(vec![format!("crash-{i}.example")])
                .unwrap()
                .self_signed(&key)
                .unwrap()
                .der()
                .clone();
            std::fs::write(dir.join(format!("{i}.der")), &der).unwrap();
            Fingerprint::of(&der)
        })
        .collect();
    (dir.to_path_buf(), fps)
}

// ---------------------------------------------------------------------------------------------
// What the store must hold

/// An endpoint's pins (all active in these runs) and quarantined certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    pins: BTreeSet<Fingerprint>,
    quarantined: BTreeSet<Fingerprint>,
}

/// A call, as the store carries it out on one endpoint.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A first-use pin, or one pin of an import batch (the endpoint is new either way).
    Pin(Fingerprint),
    Delete,
    Quarantine(Fingerprint),
    Accept(Fingerprint),
}

impl Op {
    fn apply(self, s: &State) -> State {
        let mut s = s.clone();
        match self {
            Op::Pin(fp) => {
                if s.pins.is_empty() {
                    s.pins.insert(fp);
                }
            }
            Op::Delete => s = State::default(),
            Op::Quarantine(fp) => {
                s.quarantined.insert(fp);
            }
            Op::Accept(fp) => {
                s.pins = BTreeSet::from([fp]);
                s.quarantined.remove(&fp);
            }
        }
        s
    }
}

/// An endpoint's state after its acknowledged calls, and the call in flight, if any.
#[derive(Debug, Default)]
struct Expected {
    state: State,
    in_flight: Option<Op>,
    /// One of an import batch's endpoints (the batch is counted as one call).
    in_batch: bool,
}

struct Batch {
    endpoints: Vec<String>,
    acknowledged: bool,
}

#[derive(Default)]
struct Model {
    endpoints: BTreeMap<String, Expected>,
    /// Batches whose outcome has not been observed yet.
    batches: BTreeMap<String, Batch>,
}

impl Model {
    /// Takes in a killed writer's complete lines.
    fn read(&mut self, lines: &[String], pool: &[Fingerprint], figures: &mut Figures) {
        for line in lines {
            let words: Vec<&str> = line.split(' ').collect();
            let (acknowledged, op_name, args) = match words.as_slice() {
                ["ready"] => continue,
                ["begin", op, args @ ..] => (false, *op, args),
                ["done", op, args @ ..] => (true, *op, args),
                _ => panic!("the writer said {line:?}"),
            };
            let cert = |i: &str| pool[i.parse::<usize>().unwrap()];
            let calls: Vec<(String, Op)> = match (op_name, args) {
                ("pin", [ep, i]) => vec![(ep.to_string(), Op::Pin(cert(i)))],
                ("delete", [ep]) => vec![(ep.to_string(), Op::Delete)],
                ("quarantine", [ep, i]) => vec![(ep.to_string(), Op::Quarantine(cert(i)))],
                ("accept", [ep, i]) => vec![(ep.to_string(), Op::Accept(cert(i)))],
                ("import", [batch, count, first]) => {
                    let (count, first): (usize, usize) =
                        (count.parse().unwrap(), first.parse().unwrap());
                    let members: Vec<(String, Op)> = (0..count)
                        .map(|j| {
                            let fp = pool[(first + j) % pool.len()];
                            (format!("{batch}-{j}.crash:443"), Op::Pin(fp))
                        })
                        .collect();
                    let b = self.batches.entry(batch.to_string()).or_insert(Batch {
                        endpoints: members.iter().map(|(e, _)| e.clone()).collect(),
                        acknowledged: false,
                    });
                    b.acknowledged |= acknowledged;
                    members
                }
                _ => panic!("the writer said {line:?}"),
            };
            if acknowledged {
                figures.acknowledged += 1;
            }
            for (ep, op) in calls {
                let e = self.endpoints.entry(ep).or_default();
                e.in_batch = op_name == "import";
                if acknowledged {
                    let op = e
                        .in_flight
                        .take()
                        .expect("a done line follows its begin line");
                    e.state = op.apply(&e.state);
                } else {
                    assert!(e.in_flight.is_none(), "{line}: one call at a time");
                    e.in_flight = Some(op);
                }
            }
        }
    }

    /// Checks the store against the model, then takes what was observed of the calls in
    /// flight as the expectation from now on.
    fn check(&mut self, store: &Store, ctx: &str, figures: &mut Figures) {
        let mut actual: BTreeMap<String, State> = BTreeMap::new();
        store
            .for_each_pin(|p| {
                assert_eq!(p.state, PinState::Active, "{ctx}: {}", p.endpoint);
                actual
                    .entry(p.endpoint.to_string())
                    .or_default()
                    .pins
                    .insert(p.fingerprint());
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        store
            .for_each_quarantined(|q| {
                actual
                    .entry(q.endpoint.to_string())
                    .or_default()
                    .quarantined
                    .insert(q.details.fingerprint);
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let mut pinned_by: BTreeSet<(String, Fingerprint)> = BTreeSet::new();
        let mut audit = 0;
        store
            .for_each_audit(None, |a| {
                audit += 1;
                if matches!(
                    a.event,
                    AuditEvent::Pinned | AuditEvent::Imported | AuditEvent::Accepted
                ) {
                    pinned_by.insert((a.endpoint.to_string(), a.fingerprint.unwrap()));
                }
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));

        for ep in actual.keys() {
            assert!(
                self.endpoints.contains_key(ep),
                "{ctx}: {ep} is in the store, but no writer began to write it"
            );
        }
        for (ep, expected) in &mut self.endpoints {
            let got = actual.remove(ep).unwrap_or_default();
            let done = &expected.state;
            match expected.in_flight.take() {
                None => assert_eq!(
                    &got, done,
                    "{ctx}: {ep} differs from what its acknowledged calls left"
                ),
                Some(op) => {
                    let whole = op.apply(done);
                    assert!(
                        got == *done || got == whole,
                        "{ctx}: {ep}: {op:?} was in flight, and left {got:?}: neither before \
                         ({done:?}) nor after ({whole:?})"
                    );
                    if !expected.in_batch {
                        figures.in_flight += 1;
                        figures.in_flight_committed += usize::from(got == whole);
                    }
                }
            }
            for fp in &got.pins {
                assert!(
                    pinned_by.contains(&(ep.clone(), *fp)),
                    "{ctx}: {ep} is pinned to {fp} with no audit entry that explains it"
                );
            }
            expected.state = got;
        }
        // Every pin of a batch, or none; all of an acknowledged one.
        let mut settled = Vec::new();
        for (name, batch) in &self.batches {
            let present = batch
                .endpoints
                .iter()
                .filter(|ep| !self.endpoints[*ep].state.pins.is_empty())
                .count();
            let n = batch.endpoints.len();
            if batch.acknowledged {
                assert_eq!(present, n, "{ctx}: acknowledged import {name}");
            } else {
                assert!(
                    present == 0 || present == n,
                    "{ctx}: interrupted import {name} left {present} of its {n} pins"
                );
                figures.interrupted_imports += 1;
                figures.interrupted_imports_committed += usize::from(present == n);
            }
            settled.push(name.clone());
        }
        for name in settled {
            self.batches.remove(&name);
        }
        figures.pins = self.endpoints.values().map(|e| e.state.pins.len()).sum();
        figures.audit = audit;
    }
}

// ---------------------------------------------------------------------------------------------
// The runs

/// Runs `kills` writers one after the other on the store in `dir`, killing each.
fn crash_store(dir: &Path, certs: &Path, pool: &[Fingerprint], kills: usize, seed: u64) -> Figures {
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    let mut figures = Figures::default();
    for run in 0..kills {
        let writer_seed = rng.next();
        let ctx = format!(
            "{} run {run} (crash-writer {} {} {run} {writer_seed})",
            dir.display(),
            dir.display(),
            certs.display()
        );
        let mut child = Command::new(WRITER)
            .arg(dir)
            .arg(certs)
            .arg(run.to_string())
            .arg(writer_seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {WRITER}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut complete = Vec::new();
            let mut line = Vec::new();
            // Only whole lines count: a line cut by the kill was never printed.
            while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if line.last() != Some(&b'\n') {
                    break;
                }
                let text = String::from_utf8(line.clone())
                    .unwrap()
                    .trim_end()
                    .to_string();
                line.clear();
                let _ = tx.send(text.clone());
                complete.push(text);
            }
            complete
        });

        // Most kills land while the writer writes; some (the first of each store, and one
        // in eight) while it creates or opens the store.
        if run == 0 || rng.below(8) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(15_000) as u64));
        } else {
            match rx.recv_timeout(PATIENCE) {
                Ok(line) if line == "ready" => {}
                other => panic!("{ctx}: the writer did not start: {other:?}"),
            }
            std::thread::sleep(Duration::from_micros(5_000 + rng.below(55_000) as u64));
        }
        child.kill().expect("SIGKILL"); // kill(2) with SIGKILL on Unix
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        if let Some(error) = lines.iter().find(|l| l.starts_with("error")) {
            panic!("{ctx}: the writer failed: {error}");
        }
        assert!(
            status.code().is_none(),
            "{ctx}: exited by itself ({status})"
        );
        if !lines.iter().any(|l| l == "ready") {
            figures.killed_before_ready += 1;
        }
        model.read(&lines, pool, &mut figures);

        let store =
            Store::open(dir).unwrap_or_else(|e| panic!("{ctx}: the store does not open: {e}"));
        store
            .integrity_check()
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        model.check(&store, &ctx, &mut figures);
        figures.kills += 1;
    }
    figures
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Issue 15: a JSON-lines import is streamed in blocks, but into one transaction. A real
/// `tofu-certs import --replace` of a file of 20 000 pins, killed with SIGKILL at moments
/// spread over its run, leaves the store as it was (the pin it would replace included) or,
/// when the kill came after the commit, with the whole file: never part of it.
#[test]
fn a_streamed_import_killed_at_any_moment_is_all_or_nothing() {
    use std::fmt::Write as _;
    use tofu_core::Endpoint;

    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<_> = (0..4)
        .map(|i| examples::prime_identity(&format!("stream-{i}")))
        .collect();
    let n = 20_000;
    let mut file = String::from("{\"version\":1}\n");
    for i in 0..n {
        let pem = &ids[i % ids.len()].cert_pem;
        writeln!(
            file,
            "{{\"endpoint\":\"host-{i:05}.crash:443\",\"label\":\"pin {i}\",\"times_seen\":{i},\"certificate\":{}}}",
            serde_json::to_string(pem).unwrap()
        )
        .unwrap();
    }
    let path = tmp.path().join("pins.jsonl");
    std::fs::write(&path, &file).unwrap();
    let replaced: Endpoint = "host-00007.crash:443".parse().unwrap();
    let kept: Endpoint = "outside.crash:443".parse().unwrap();
    let other = examples::prime_identity("already-there");
    let import = |store: &Path| {
        Command::new(examples::tofu_certs_binary())
            .arg("--store")
            .arg(store)
            .arg("import")
            .arg(&path)
            .arg("--replace")
            .env_remove("TOFU_CERTS_STORE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let prepare = |dir: &Path| {
        let store = Store::open(dir).unwrap();
        store.pin_first_use(&replaced, &other.cert).unwrap();
        store.pin_first_use(&kept, &other.cert).unwrap();
    };

    // How long a whole import takes here, to spread the kills over it.
    let timed = tmp.path().join("timed");
    prepare(&timed);
    let started = Instant::now();
    let out = import(&timed).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = started.elapsed();

    let kills = 10;
    let (mut none, mut all) = (0, 0);
    for k in 0..kills {
        let dir = tmp.path().join(format!("store-{k}"));
        prepare(&dir);
        let mut child = import(&dir);
        // Over the first 90 % of the timed run: a later run may be faster (warm caches).
        std::thread::sleep(whole.mul_f64(0.9 * (k as f64 + 0.5) / kills as f64));
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        let store = Store::open(&dir).unwrap();
        store.integrity_check().unwrap();
        assert!(store.check().unwrap().is_sound());
        let mut count = 0;
        store
            .for_each_pin(|_| {
                count += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        let replaced_now = store.endpoint(&replaced).unwrap().pins;
        assert_eq!(store.endpoint(&kept).unwrap().pins.len(), 1, "kill {k}");
        if count == n + 1 {
            all += 1;
            assert_eq!(
                replaced_now[0].fingerprint(),
                Fingerprint::of(&ids[7 % 4].cert)
            );
        } else {
            assert_eq!(
                count, 2,
                "kill {k} ({status}): part of the file was imported"
            );
            assert_eq!(replaced_now[0].fingerprint(), Fingerprint::of(&other.cert));
            none += 1;
        }
    }
    println!("{kills} kills over a {whole:?} import: {none} left the store as it was, {all} after the commit");
    assert!(
        none >= kills / 2,
        "most kills should land inside the import ({none} of {kills})"
    );
}
