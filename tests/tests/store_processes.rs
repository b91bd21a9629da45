//! The pin store shared by real OS processes: a service holding it open while an operator
//! changes it, a crowd of processes deleting at the same moment, two processes racing to pin
//! one endpoint, and writers killed with SIGKILL mid-stream.
//!
//! The other processes are `store-worker` (src/bin/store-worker.rs); this test process is
//! the operator. Nothing is mocked: every process opens the same SQLite store on disk.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tofu_core::{audit::AuditEvent, pin::PinState, Endpoint, Fingerprint, Store};

const WORKER: &str = env!("CARGO_BIN_EXE_store-worker");

/// Long enough for a loaded 2-core CI machine; a healthy run needs a small fraction of it.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Workers

/// A running `store-worker`: its stdout arrives line by line on a channel, so that reading
/// never blocks the test for longer than [`PATIENCE`]. Killed if the test ends early.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    what: String,
}

impl Worker {
    fn start(args: &[&str], go: Option<&Path>) -> Self {
        let mut cmd = Command::new(WORKER);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(go) = go {
            cmd.env("STORE_WORKER_GO", go);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {WORKER}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            what: args.join(" "),
        }
    }

    /// The next line, failing the test on a worker error or silence.
    #[track_caller]
    fn line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => {
                assert!(
                    !line.starts_with("error"),
                    "store-worker {} failed: {line}",
                    self.what
                );
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("store-worker {} said nothing for {PATIENCE:?}", self.what)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("store-worker {} ended its output early", self.what)
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("the worker reads its input");
        stdin.flush().unwrap();
    }

    /// Closes stdin, waits for the exit and asserts it was a success.
    #[track_caller]
    fn finish(mut self) {
        self.stdin = None;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "store-worker {} exited {status}",
                    self.what
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "store-worker {} did not exit",
                self.what
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every line until the output ends (after the process died).
    fn rest(&self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => out.push(line),
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("store-worker {} kept its output open", self.what)
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn cert(cn: &str) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.self_signed(&key).unwrap().der().clone()
}

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap()
}

fn fp(der: &CertificateDer<'_>) -> String {
    Fingerprint::of(der).to_string()
}

fn pinned_endpoints(store: &Store) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    store
        .for_each_pin(|p| {
            out.insert(p.endpoint.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

/// `(word, generation, state)` of a `hold` line such as `read 7 pins=SHA256:… total=3`.
fn parse_hold(line: &str) -> (String, u64, String) {
    let mut parts = line.splitn(3, ' ');
    let word = parts.next().unwrap().to_string();
    let generation = parts
        .next()
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("not a hold line: {line:?}"));
    let state = parts.next().unwrap_or_default().to_string();
    (word, generation, state)
}

/// A small deterministic generator, seeded from the clock (the seed is printed so a failure
/// can be replayed by hand).
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("random seed: {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn new_store_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    (tmp, dir)
}

/// Waits until every worker printed `ready`, then creates the file that releases them all.
fn release_together(workers: &[Worker], go: &Path) {
    for w in workers {
        assert_eq!(w.line(), "ready");
    }
    std::fs::write(go, b"go").unwrap();
}

// ---------------------------------------------------------------------------------------------
// (a) A service holds the store open while an operator changes it

#[test]
fn a_process_holding_the_store_sees_each_change_on_its_next_read() {
    let (_tmp, dir) = new_store_dir();
    let store = Store::open(&dir).unwrap();
    let e = ep("prime-pri:443");
    let (a, b, c, d) = (cert("a"), cert("b"), cert("c"), cert("d"));
    store.add_pin(&e, &a, PinState::Active, None).unwrap();
    store
        .add_pin(&ep("other:443"), &d, PinState::Active, None)
        .unwrap();

    let mut holder = Worker::start(&["hold", dir.to_str().unwrap(), &e.to_string()], None);
    let (word, mut generation, state) = parse_hold(&holder.line());
    assert_eq!(word, "start");
    assert_eq!(state, format!("pins={} total=2", fp(&a)));

    // Each step: what this process does, and what the holder must read right after it.
    type Step<'a> = (&'a str, Box<dyn Fn(&Store) + 'a>, Option<String>);
    let steps: Vec<Step<'_>> = vec![
        (
            "list the pins (not a change)",
            Box::new(|s| {
                assert_eq!(pinned_endpoints(s).len(), 2);
            }),
            None,
        ),
        (
            "delete the endpoint",
            Box::new(|s| {
                assert_eq!(s.remove_endpoint(&e).unwrap().pins.len(), 1);
            }),
            Some("pins=- total=1".to_string()),
        ),
        (
            "read the empty endpoint (not a change)",
            Box::new(|s| {
                assert!(!s.endpoint(&e).unwrap().is_pinned());
            }),
            None,
        ),
        (
            "pin it again",
            Box::new(|s| {
                s.add_pin(&e, &b, PinState::Active, None).unwrap();
            }),
            Some(format!("pins={} total=2", fp(&b))),
        ),
        (
            "add the HA secondary",
            Box::new(|s| {
                s.add_pin(&e, &c, PinState::Active, Some("secondary"))
                    .unwrap();
            }),
            Some(format!("pins={},{} total=3", fp(&b), fp(&c))),
        ),
        (
            "change another endpoint",
            Box::new(|s| {
                s.remove_endpoint(&ep("other:443")).unwrap();
            }),
            Some(format!("pins={},{} total=2", fp(&b), fp(&c))),
        ),
        (
            "replace one pin by compare-and-swap",
            Box::new(|s| {
                s.replace_pin(
                    &e,
                    &Fingerprint::of(&b),
                    &a,
                    tofu_core::pin::PinSource::Operator,
                )
                .unwrap();
            }),
            Some(format!("pins={},{} total=2", fp(&c), fp(&a))),
        ),
    ];

    let mut state = state;
    for (what, act, expected) in steps {
        let started = Instant::now();
        act(&store);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: took {:?} while another process held the store (a lock wait?)",
            started.elapsed()
        );
        holder.send("read");
        // The holder may notice the change by itself first ("moved"); then comes the read.
        loop {
            let (word, g, now) = parse_hold(&holder.line());
            match &expected {
                Some(new) => {
                    assert_eq!(&now, new, "{what}: the holder read a stale store ({word})");
                    assert_ne!(
                        g, generation,
                        "{what}: the generation did not move ({word})"
                    );
                }
                None => {
                    assert_eq!(
                        word, "read",
                        "{what}: the generation moved without a change"
                    );
                    assert_eq!(now, state, "{what}");
                    assert_eq!(
                        g, generation,
                        "{what}: the generation moved without a change"
                    );
                }
            }
            if word == "read" {
                generation = g;
                state = now;
                break;
            }
            assert_eq!(word, "moved");
        }
    }
    store.integrity_check().unwrap();
    holder.finish();
}

// ---------------------------------------------------------------------------------------------
// (b) Many processes delete at the same moment

#[test]
fn twenty_processes_deleting_at_once_each_delete_exactly_their_endpoint() {
    let (tmp, dir) = new_store_dir();
    let store = Store::open(&dir).unwrap();
    let der = cert("fleet");
    for i in 0..40 {
        store
            .add_pin(&ep(&format!("host-{i}:443")), &der, PinState::Active, None)
            .unwrap();
    }
    let go = tmp.path().join("go");
    let doomed: Vec<usize> = (0..40).filter(|i| i % 2 == 0).collect();
    let workers: Vec<Worker> = doomed
        .iter()
        .map(|i| {
            Worker::start(
                &["delete", dir.to_str().unwrap(), &format!("host-{i}:443")],
                Some(&go),
            )
        })
        .collect();
    release_together(&workers, &go);
    for w in workers {
        assert_eq!(w.line(), "removed 1", "{}", w.what);
        w.finish();
    }

    let left = pinned_endpoints(&store);
    let expected: BTreeSet<String> = (0..40)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("host-{i}:443"))
        .collect();
    assert_eq!(left, expected, "exactly the 20 others remain");

    // Each deletion is audited once, by the process that made it.
    let mut removers = HashSet::new();
    store
        .for_each_audit(None, |a| {
            if a.event == AuditEvent::Removed {
                assert!(a.actor.starts_with("store-worker (pid "), "{}", a.actor);
                removers.insert(a.actor.clone());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        removers.len(),
        20,
        "20 processes, each audited: {removers:?}"
    );
    store.integrity_check().unwrap();
}

// ---------------------------------------------------------------------------------------------
// (c) Two processes race to pin one endpoint on first use

#[test]
fn two_processes_racing_to_first_pin_an_endpoint_produce_one_pin_and_one_loser() {
    let (tmp, dir) = new_store_dir();
    let store = Store::open(&dir).unwrap();
    let mut winners_by_slot = [0usize; 2];
    for round in 0..25 {
        let e = format!("race-{round}:443");
        let certs = [
            cert(&format!("left-{round}")),
            cert(&format!("right-{round}")),
        ];
        let files: Vec<PathBuf> = certs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = tmp.path().join(format!("{round}-{i}.der"));
                std::fs::write(&path, c).unwrap();
                path
            })
            .collect();
        let go = tmp.path().join(format!("go-{round}"));
        let workers: Vec<Worker> = files
            .iter()
            .map(|f| {
                Worker::start(
                    &["first-use", dir.to_str().unwrap(), &e, f.to_str().unwrap()],
                    Some(&go),
                )
            })
            .collect();
        release_together(&workers, &go);
        let outcomes: Vec<String> = workers.iter().map(|w| w.line()).collect();
        for w in workers {
            w.finish();
        }

        let record = store.endpoint(&ep(&e)).unwrap();
        assert_eq!(record.pins.len(), 1, "round {round}: {outcomes:?}");
        let pinned = record.pins[0].fingerprint().to_string();
        let won: Vec<usize> = (0..2)
            .filter(|&i| outcomes[i].starts_with("pinned "))
            .collect();
        let lost: Vec<usize> = (0..2)
            .filter(|&i| outcomes[i].starts_with("lost "))
            .collect();
        assert_eq!(
            (won.len(), lost.len()),
            (1, 1),
            "round {round}: exactly one winner and one loser: {outcomes:?}"
        );
        let (w, l) = (won[0], lost[0]);
        assert_eq!(
            pinned,
            fp(&certs[w]),
            "round {round}: the winner's certificate is pinned"
        );
        assert_eq!(outcomes[w], format!("pinned {pinned}"));
        assert_eq!(
            outcomes[l],
            format!("lost {pinned}"),
            "round {round}: the loser is told the winner's pin"
        );
        winners_by_slot[w] += 1;
    }
    println!("wins by start order: {winners_by_slot:?}");
    let mut pinned_events = 0;
    store
        .for_each_audit(None, |a| {
            assert_eq!(a.event, AuditEvent::Pinned);
            pinned_events += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        pinned_events, 25,
        "one audited pin per round, none for the losers"
    );
}

// ---------------------------------------------------------------------------------------------
// (d) A writer killed with SIGKILL loses nothing it acknowledged

#[test]
fn a_writer_killed_with_sigkill_leaves_a_sound_store_with_every_acknowledged_pin() {
    let mut rng = Rng::from_clock();
    let mut acknowledged_total = 0;
    for round in 0..20 {
        let (_tmp, dir) = new_store_dir();
        let mut writer = Worker::start(&["write-stream", dir.to_str().unwrap(), "1000000"], None);
        assert_eq!(writer.line(), "ready");
        let delay = Duration::from_millis(rng.below(120));
        std::thread::sleep(delay);
        writer.child.kill().expect("SIGKILL"); // kill(2) with SIGKILL on Unix
        let status = writer.child.wait().unwrap();
        assert!(!status.success(), "round {round}: the writer was killed");

        let acknowledged: Vec<usize> = writer
            .rest()
            .iter()
            .map(|line| {
                line.strip_prefix("ok ")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or_else(|| panic!("round {round}: unexpected line {line:?}"))
            })
            .collect();
        assert!(
            acknowledged.iter().enumerate().all(|(n, &i)| n == i),
            "round {round}: acknowledged in order"
        );
        acknowledged_total += acknowledged.len();

        let store = Store::open(&dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
        store
            .integrity_check()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let pinned = pinned_endpoints(&store);
        for i in &acknowledged {
            assert!(
                pinned.contains(&format!("host-{i}:443")),
                "round {round} (killed after {delay:?}): host-{i}:443 was acknowledged but is \
                 not pinned"
            );
        }
        // At most the one write in flight when the signal came is there beyond those.
        let n = acknowledged.len();
        assert!(
            pinned.len() == n || pinned.len() == n + 1,
            "round {round}: {n} acknowledged, {} pinned",
            pinned.len()
        );
        let expected: BTreeSet<String> =
            (0..pinned.len()).map(|i| format!("host-{i}:443")).collect();
        assert_eq!(pinned, expected, "round {round}: no gaps");
        // And every pin is audited: pin and audit entry are one transaction.
        let mut audited = 0;
        store
            .for_each_audit(None, |_| {
                audited += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(audited, pinned.len(), "round {round}");
        // The store is usable for writing again.
        store
            .add_pin(
                &ep("after-crash:443"),
                &cert("after"),
                PinState::Active,
                None,
            )
            .unwrap();
    }
    println!("{acknowledged_total} pins acknowledged over 20 killed writers");
    assert!(
        acknowledged_total > 0,
        "no writer got as far as one pin; the kills came too early to test anything"
    );
}
