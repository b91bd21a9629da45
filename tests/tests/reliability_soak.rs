//! Concurrency soak: for a bounded time, services and operators share one store.
//!
//! - two `soak-client` processes (src/bin/soak-client.rs), three threads each, do TLS
//!   handshakes through the TOFU verifier against six loopback servers;
//! - the servers restart with a new certificate from time to time (a new CSR), so
//!   handshakes are refused and quarantine what they saw;
//! - four operator threads run the real `tofu-certs` meanwhile: `probe --pin`, `addcert`,
//!   `deletecert`, `accept` and `listcerts`, at random.
//!
//! Afterwards the store passes `integrity_check`; no command and no handshake failed with a
//! lock, busy or any other store error (only the outcomes the commands document: not found,
//! mismatch, already pinned); replaying the audit log gives exactly the pins that exist; and
//! every pin that ever existed (per the audit log) is a certificate of that very endpoint,
//! one its server presented or an operator added for it.
//!
//! `TOFU_SOAK_SECONDS` sets the duration (default 30). The figures are printed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use examples::{prime_identity, tofu_certs_binary, DemoServer, Identity};
use tofu_core::{audit::AuditEvent, pin::PinState, Endpoint, Fingerprint, Store};

const CLIENT: &str = env!("CARGO_BIN_EXE_soak-client");

/// Endpoints, each with its own server.
const ENDPOINTS: usize = 6;
/// Certificates each server may present over the run.
const IDENTITIES: usize = 4;

struct Peer {
    endpoint: Endpoint,
    server: DemoServer,
    ids: Vec<Identity>,
    /// The certificate files an operator adds (`addcert`), one per identity.
    files: Vec<PathBuf>,
}

/// What the operators' commands did, by command and outcome.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, usize>,
    failures: Vec<String>,
}

#[test]
fn services_and_operators_share_one_store_without_a_lock_error_or_an_unexplained_pin() {
    let seconds: f64 = std::env::var("TOFU_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30.0);
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let peers: Vec<Peer> = (0..ENDPOINTS)
        .map(|i| {
            let ids: Vec<Identity> = (0..IDENTITIES)
                .map(|k| prime_identity(&format!("peer-{i}-{k}")))
                .collect();
            let server = DemoServer::start(&ids[0], 0).unwrap();
            let endpoint = Endpoint::new("127.0.0.1", server.addr().port()).unwrap();
            let files = ids
                .iter()
                .enumerate()
                .map(|(k, id)| {
                    let path = tmp.path().join(format!("peer-{i}-{k}.pem"));
                    std::fs::write(&path, &id.cert_pem).unwrap();
                    path
                })
                .collect();
            Peer {
                endpoint,
                server,
                ids,
                files,
            }
        })
        .collect();
    // The store exists before anyone races to create it (creation races are tested in
    // tofu-core/tests/store.rs).
    drop(Store::open(&store_dir).unwrap());

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let endpoints: Vec<String> = peers.iter().map(|p| p.endpoint.to_string()).collect();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            Command::new(CLIENT)
                .arg(&store_dir)
                .arg(seconds.to_string())
                .arg("3")
                .args(&endpoints)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|s| {
        // New CSRs: a server restarts with another of its certificates now and then.
        s.spawn(|| {
            let mut rng = Rng(0x5eed_0001);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(150 + rng.below(250) as u64));
                let peer = &peers[rng.below(ENDPOINTS)];
                peer.server.restart_with(&peer.ids[rng.below(IDENTITIES)]);
            }
        });
        for t in 0..4 {
            let (peers, tally, store_dir) = (&peers, &tally, &store_dir);
            s.spawn(move || {
                let mut rng = Rng(0xc0ff_ee00 + t);
                while Instant::now() < deadline {
                    operate(store_dir, peers, &mut rng, tally);
                }
            });
        }
    });
    let mut handshakes = (0, 0);
    let mut client_failures = Vec::new();
    for client in clients {
        let out = client.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            if let Some(counts) = line.strip_prefix("handshakes ") {
                let n = |key: &str| -> usize {
                    counts
                        .split(' ')
                        .find_map(|kv| kv.strip_prefix(key))
                        .and_then(|v| v.parse().ok())
                        .unwrap()
                };
                handshakes.0 += n("ok=");
                handshakes.1 += n("mismatch=");
            } else {
                client_failures.push(line.to_string());
            }
        }
        assert!(out.status.success(), "a soak client failed: {stdout}");
    }
    let elapsed = started.elapsed();
    let tally = tally.into_inner().unwrap();

    // No handshake and no command failed for any reason but the documented outcomes.
    assert!(
        client_failures.is_empty(),
        "handshakes failed: {client_failures:#?}"
    );
    assert!(
        tally.failures.is_empty(),
        "commands failed: {:#?}",
        tally.failures
    );

    let store = Store::open(&store_dir).unwrap();
    store.integrity_check().unwrap();
    let (audit, pins) = check_audit_explains_every_pin(&store, &peers);
    let commands: usize = tally.outcomes.values().sum();
    println!(
        "soak: {:.0} s, {} handshakes ({} accepted, {} refused as mismatches) in 2 processes \
         of 3 threads, {commands} tofu-certs commands by 4 operators ({}), {audit} audit \
         entries replayed, {pins} pins at the end: no lock or busy error, no unexplained pin",
        elapsed.as_secs_f64(),
        handshakes.0 + handshakes.1,
        handshakes.0,
        handshakes.1,
        tally
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    assert!(handshakes.0 > 0 && handshakes.1 > 0, "{handshakes:?}");
    for kind in [
        "probe --pin",
        "addcert",
        "deletecert",
        "accept",
        "listcerts",
    ] {
        assert!(
            tally.outcomes.keys().any(|k| k.starts_with(kind)),
            "no {kind} ran: {:?}",
            tally.outcomes
        );
    }
}

/// Regression, found by the soak: a handshake that decided "mismatch" on pins it had read a
/// moment before quarantined a certificate that another process had just pinned; accepting
/// it then failed with "UNIQUE constraint failed: pin.endpoint, pin.fingerprint".
#[test]
fn a_quarantined_certificate_pinned_meanwhile_can_still_be_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let ep: Endpoint = "10.1.1.1:8082".parse().unwrap();
    let (a, b, c) = (
        prime_identity("a").cert,
        prime_identity("b").cert,
        prime_identity("c").cert,
    );
    store.pin_first_use(&ep, &a).unwrap();
    store.add_pin(&ep, &b, PinState::Active, None).unwrap();
    store.add_pin(&ep, &c, PinState::Active, None).unwrap();
    // The late quarantine of the stale handshake.
    store.quarantine(&ep, &b).unwrap();
    let promoted = store.accept_quarantined(&ep, &Fingerprint::of(&b)).unwrap();
    let record = store.endpoint(&ep).unwrap();
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, b);
    assert!(record.quarantined.is_empty());
    let retired: BTreeSet<Fingerprint> = promoted.retired.iter().map(|p| p.fingerprint()).collect();
    assert_eq!(
        retired,
        BTreeSet::from([Fingerprint::of(&a), Fingerprint::of(&c)])
    );
}

/// Runs one random `tofu-certs` command and records its outcome.
fn operate(store: &Path, peers: &[Peer], rng: &mut Rng, tally: &Mutex<Tally>) {
    let peer = &peers[rng.below(peers.len())];
    let ep = peer.endpoint.to_string();
    let k = rng.below(IDENTITIES);
    let fp = Fingerprint::of(&peer.ids[k].cert).to_string();
    let file = peer.files[k].to_str().unwrap();
    let (kind, args): (&str, Vec<&str>) = match rng.below(10) {
        0..=2 => ("probe --pin", vec!["probe", "host", &ep, "--pin"]),
        // `--additional`: the operator means to add a pin beside any the endpoint has.
        3 => (
            "addcert",
            vec!["addcert", "host", &ep, "--cert", file, "--additional"],
        ),
        4 => ("deletecert", vec!["deletecert", "host", &ep]),
        5..=7 => ("accept", vec!["accept", "host", &ep, "--fingerprint", &fp]),
        _ => ("listcerts", vec!["listcerts"]),
    };
    let out = Command::new(tofu_certs_binary())
        .arg("--store")
        .arg(store)
        .arg("--actor")
        .arg("soak-operator")
        .args(&args)
        .env_remove("TOFU_CERTS_STORE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    // The documented outcomes of these commands under concurrent change; anything else
    // (a lock, a busy store, a damaged one) is a failure.
    let outcome = match (kind, code) {
        (_, Some(0)) => "ok",
        ("probe --pin", Some(4)) => "mismatch",
        ("deletecert" | "accept", Some(3)) => "nothing to do",
        ("addcert", Some(1)) if stderr.contains("already has a pin") => "already pinned",
        // The probe cannot tell what its handshake did when another process changed the
        // endpoint's pins in between, and says so (tofu-cli/src/commands/probe.rs).
        ("probe --pin", Some(1)) if stderr.contains("changed during the probe") => {
            "changed meanwhile"
        }
        _ => "",
    };
    let mut tally = tally.lock().unwrap();
    if outcome.is_empty() || ["lock", "busy"].iter().any(|w| stderr.contains(w)) {
        tally.failures.push(format!(
            "tofu-certs {} exited {code:?}: {stderr}",
            args.join(" ")
        ));
    } else {
        *tally
            .outcomes
            .entry(format!("{kind} {outcome}"))
            .or_default() += 1;
    }
}

/// Replays the audit log endpoint by endpoint and compares with the pins that exist; checks
/// every certificate ever pinned belongs to its endpoint. Returns the entries replayed and
/// the pins.
fn check_audit_explains_every_pin(store: &Store, peers: &[Peer]) -> (usize, usize) {
    let own: BTreeMap<String, BTreeSet<Fingerprint>> = peers
        .iter()
        .map(|p| {
            let fps = p.ids.iter().map(|id| Fingerprint::of(&id.cert)).collect();
            (p.endpoint.to_string(), fps)
        })
        .collect();
    let mut replayed: BTreeMap<String, BTreeMap<Fingerprint, PinState>> = BTreeMap::new();
    // Pins from a fingerprint (`accept` of a certificate no longer in quarantine), not yet
    // filled: no pin, but what a later `removed` may name.
    let mut awaiting: BTreeMap<String, BTreeSet<Fingerprint>> = BTreeMap::new();
    let mut entries = 0;
    store
        .for_each_audit(None, |a| {
            entries += 1;
            let ep = a.endpoint.to_string();
            let fp = a.fingerprint.expect("every event names a certificate");
            assert!(
                own[&ep].contains(&fp),
                "audit entry {} ({}) names {fp}, which is not a certificate of {ep}",
                a.id,
                a.event
            );
            let awaited = awaiting.entry(ep.clone()).or_default();
            let pins = replayed.entry(ep).or_default();
            match a.event {
                // A pin of the certificate settles an awaited pin of it (no entry of its own).
                AuditEvent::Pinned
                | AuditEvent::Added
                | AuditEvent::Accepted
                | AuditEvent::Promoted
                | AuditEvent::Filled => {
                    awaited.remove(&fp);
                    pins.insert(fp, PinState::Active);
                }
                AuditEvent::Staged => {
                    awaited.remove(&fp);
                    pins.insert(fp, PinState::Next);
                }
                AuditEvent::Replaced | AuditEvent::Renewed => {
                    pins.remove(&a.previous.expect("a replacement names the previous pin"));
                    awaited.remove(&fp);
                    pins.insert(fp, PinState::Active);
                }
                AuditEvent::Awaited => {
                    awaited.insert(fp);
                }
                AuditEvent::Retired | AuditEvent::Removed => {
                    assert!(
                        pins.remove(&fp).is_some() || awaited.remove(&fp),
                        "audit entry {} removes {fp} from {}, which the log never pinned",
                        a.id,
                        a.endpoint
                    );
                }
                AuditEvent::Imported => panic!("nothing was imported"),
                AuditEvent::MismatchRejected
                | AuditEvent::UnpinnedRejected
                | AuditEvent::MismatchReported
                | AuditEvent::UnpinnedReported
                | AuditEvent::Discarded => {}
                AuditEvent::ReportOnly | AuditEvent::Enforced => {
                    unreachable!("a mode change names no certificate")
                }
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let mut actual: BTreeMap<String, BTreeMap<Fingerprint, PinState>> = BTreeMap::new();
    let mut pins = 0;
    store
        .for_each_pin(|p| {
            pins += 1;
            actual
                .entry(p.endpoint.to_string())
                .or_default()
                .insert(p.fingerprint(), p.state);
            ControlFlow::Continue(())
        })
        .unwrap();
    replayed.retain(|_, pins| !pins.is_empty());
    assert_eq!(actual, replayed, "the audit log does not explain the pins");
    (entries, pins)
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
