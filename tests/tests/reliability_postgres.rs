//! The PostgreSQL store under the failures of real processes: `tofu-certs import` killed with
//! SIGKILL mid-import, ten processes racing one first use, the server restarted under a
//! running service, and a server that cannot be reached.
//!
//! Each test takes a fresh database on the server `TOFU_TEST_POSTGRES` names (skipping,
//! saying so, when it is unset; failing when `TOFU_TEST_POSTGRES_REQUIRED=1`). The restart
//! test starts a cluster of its own with `.ci/postgres start` (port `TOFU_PG_PORT`, else one
//! derived from the process id in 55700–55899) and stops it at the end. The backend's own
//! tests (`tofu-core/tests/postgres.rs`) cover threads racing, a stopped and a stalled
//! (SIGSTOP) server, and the connect-timeout bound at the library level; these run the real
//! `tofu-certs` binary and real child processes.

#[path = "../../tofu-core/tests/pg_support/mod.rs"]
mod pg_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use examples::{example_binary, prime_identity, tofu_certs_binary, ChildLines, DemoServer};
use tofu_core::{Endpoint, Fingerprint};

const WORKER: &str = env!("CARGO_BIN_EXE_store-worker");

/// Runs `tofu-certs --store STORE ARGS…`.
fn tofu(store: &str, args: &[&str]) -> Output {
    Command::new(tofu_certs_binary())
        .args(["--store", store])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The database name of a URL `fresh_database` made.
fn dbname(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let path = rest.split('?').next().unwrap();
    path.split_once('/').unwrap().1.to_owned()
}

/// Waits until no session but ours is connected to the database at `url`: the server has
/// finished with every client that was killed (a killed client's transaction is rolled back,
/// or committed if its COMMIT had reached the server, only when its backend ends).
fn wait_until_no_sessions(url: &str) {
    let base = std::env::var(pg_support::SERVER_VARIABLE).unwrap();
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
        dbname(url)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if pg_support::psql(&base, &sql).unwrap() == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the killed client's session never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sessions on the database at `url` with a transaction open.
fn sessions_in_a_transaction(url: &str) -> usize {
    let base = std::env::var(pg_support::SERVER_VARIABLE).unwrap();
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND xact_start IS NOT NULL",
        dbname(url)
    );
    pg_support::psql(&base, &sql).unwrap().parse().unwrap()
}

/// A self-signed certificate (PEM and DER) for `name`.
fn certificate(name: &str) -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// An export file of `n` pins, `<prefix>-<i>.example:443`, drawn from `pool`.
fn export_file(path: &Path, prefix: &str, n: usize, pool: &[(String, Vec<u8>)]) {
    let mut text = String::from("version = 1\n");
    for i in 0..n {
        let pem = &pool[i % pool.len()].0;
        text.push_str(&format!(
            "\n[[pin]]\nendpoint = \"{prefix}-{i}.example:443\"\nstate = \"active\"\n\
             source = \"imported\"\ncertificate = \"\"\"\n{pem}\"\"\"\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// How many of `listcerts`' pins have endpoints starting with `prefix`.
fn listed(store: &str, prefix: &str) -> usize {
    let out = ok(&tofu(store, &["listcerts"]), "listcerts");
    out.lines()
        .filter(|l| l.starts_with(&format!("host={prefix}-")))
        .count()
}

fn check_sound(store: &str) {
    let out = ok(&tofu(store, &["check"]), "check");
    assert!(
        out.contains("sound:") && out.contains(" 0 findings"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL during a large import

const IMPORT_PINS: usize = 5000;

#[test]
fn an_import_killed_at_any_point_leaves_all_of_its_pins_or_none() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let _drop = pg_support::DropOnDrop(url.clone());
    let tmp = tempfile::tempdir().unwrap();
    let pool: Vec<_> = (0..8)
        .map(|i| certificate(&format!("bulk-{i}.example")))
        .collect();

    // One import run to its end, to measure how long one takes.
    let file = tmp.path().join("whole.toml");
    export_file(&file, "whole", IMPORT_PINS, &pool);
    let started = Instant::now();
    ok(&tofu(&url, &["import", file.to_str().unwrap()]), "import");
    let mut whole = started.elapsed();
    assert_eq!(listed(&url, "whole"), IMPORT_PINS);
    eprintln!("an import of {IMPORT_PINS} pins took {whole:?}");

    // Then kills spread over that time, each on a file of its own. An import that finishes
    // before its kill shortens the estimate, so the later kills land inside the import.
    let (mut none, mut all, mut mid_transaction) = (0, 0, 0);
    let kills = 10;
    for k in 0..kills {
        let prefix = format!("kill{k}");
        let file = tmp.path().join(format!("{prefix}.toml"));
        export_file(&file, &prefix, IMPORT_PINS, &pool);
        let delay = whole.mul_f64(0.1 + 0.9 * k as f64 / kills as f64);
        let started = Instant::now();
        let mut child = Command::new(tofu_certs_binary())
            .args(["--store", &url, "import", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut exited_first = false;
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                exited_first = true;
                whole = started.elapsed();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Whether the kill lands inside the import's transaction on the server.
        let in_transaction = !exited_first && sessions_in_a_transaction(&url) > 0;
        mid_transaction += usize::from(in_transaction);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        wait_until_no_sessions(&url);
        let n = listed(&url, &prefix);
        eprintln!(
            "kill {k} after {delay:?}: {}: {n} of {IMPORT_PINS} pins",
            if exited_first {
                "had exited"
            } else if in_transaction {
                "killed inside its transaction"
            } else {
                "killed"
            }
        );
        match n {
            0 => none += 1,
            IMPORT_PINS => all += 1,
            _ => panic!("a killed import left {n} of its {IMPORT_PINS} pins ({status})"),
        }
        if exited_first && status.success() {
            assert_eq!(n, IMPORT_PINS, "an import that exited 0 has all its pins");
        }
        check_sound(&url);
    }
    eprintln!(
        "{kills} killed imports: {all} all in, {none} none; {mid_transaction} killed inside \
         the import's transaction"
    );
    assert!(none > 0, "no kill landed before the import committed");
    assert!(
        mid_transaction > 0,
        "no kill landed inside the import's transaction"
    );
    // The store still takes the interrupted files whole.
    for k in 0..kills {
        let prefix = format!("kill{k}");
        let file = tmp.path().join(format!("{prefix}.toml"));
        ok(
            &tofu(&url, &["import", file.to_str().unwrap()]),
            "re-import",
        );
        assert_eq!(listed(&url, &prefix), IMPORT_PINS);
    }
    check_sound(&url);
}

// ---------------------------------------------------------------------------------------------
// 2. Ten machines racing one first use

#[test]
fn ten_processes_racing_a_first_use_pin_it_exactly_once_each_round() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let _drop = pg_support::DropOnDrop(url.clone());
    let tmp = tempfile::tempdir().unwrap();
    let certs: Vec<PathBuf> = (0..10)
        .map(|i| {
            let path = tmp.path().join(format!("{i}.der"));
            std::fs::write(&path, certificate(&format!("machine-{i}.example")).1).unwrap();
            path
        })
        .collect();
    let fps: Vec<Fingerprint> = certs
        .iter()
        .map(|p| Fingerprint::of(&std::fs::read(p).unwrap()))
        .collect();
    // The first round's racers also create the store in the fresh database.

    for round in 0..5 {
        let endpoint = format!("race-{round}.example:8443");
        let go = tmp.path().join(format!("go-{round}"));
        let mut children: Vec<_> = certs
            .iter()
            .map(|cert| {
                Command::new(WORKER)
                    .args(["first-use", &url, &endpoint, cert.to_str().unwrap()])
                    .env("STORE_WORKER_GO", &go)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Release them together once all are connected.
        let mut readers: Vec<_> = children
            .iter_mut()
            .map(|c| std::io::BufReader::new(c.stdout.take().unwrap()))
            .collect();
        for r in &mut readers {
            let mut line = String::new();
            std::io::BufRead::read_line(r, &mut line).unwrap();
            assert_eq!(line.trim(), "ready", "{line}");
        }
        std::fs::write(&go, "").unwrap();
        let mut pinned = Vec::new();
        let mut lost = Vec::new();
        for (i, (mut c, mut r)) in children.into_iter().zip(readers).enumerate() {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut r, &mut line).unwrap();
            let status = c.wait().unwrap();
            assert!(status.success(), "worker {i}: {line}");
            match line.trim().split_once(' ') {
                Some(("pinned", fp)) => {
                    assert_eq!(fp, fps[i].to_string());
                    pinned.push(fp.to_owned());
                }
                Some(("lost", fp)) => lost.push(fp.to_owned()),
                _ => panic!("worker {i}: {line}"),
            }
        }
        assert_eq!(pinned.len(), 1, "round {round}: {pinned:?}");
        assert!(
            lost.iter().all(|fp| *fp == pinned[0]),
            "round {round}: the losers saw {lost:?}, the winner pinned {}",
            pinned[0]
        );
        let shown = ok(&tofu(&url, &["showcert", "host", &endpoint]), "showcert");
        assert!(shown.contains("SHA256:"), "{shown}");
        let listing = ok(&tofu(&url, &["listcerts", "--format", "json"]), "listcerts");
        let mine = listing
            .matches(&format!("\"endpoint\": \"{endpoint}\""))
            .count();
        assert_eq!(mine, 1, "round {round}: {mine} pins for {endpoint}");
        assert!(listing.contains(&pinned[0]), "{listing}");
    }
    check_sound(&url);
}

// ---------------------------------------------------------------------------------------------
// 3. The server restarted under a running service

#[test]
fn a_running_service_recovers_from_a_server_restart_and_no_acknowledged_write_is_lost() {
    if pg_support::server_url(&|k| std::env::var(k).ok()).is_none() {
        return;
    }
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let name = pg_support::unique_name("restart");
    pg_support::psql(&cluster.url, &format!("CREATE DATABASE \"{name}\"")).unwrap();
    let url = format!(
        "{}&connect_timeout=2",
        pg_support::database_url(&cluster.url, &name)
    );
    let tmp = tempfile::tempdir().unwrap();

    let id = prime_identity("prime-sec");
    let server = DemoServer::start(&id, 0).unwrap();
    let endpoint = Endpoint::new("127.0.0.1", server.addr().port()).unwrap();
    let fp = Fingerprint::of(&id.cert).to_string();
    let cert_file = tmp.path().join("prime.pem");
    std::fs::write(&cert_file, &id.cert_pem).unwrap();
    ok(
        &tofu(
            &url,
            &[
                "addcert",
                "host",
                &endpoint.host_port(),
                "--cert",
                cert_file.to_str().unwrap(),
            ],
        ),
        "addcert",
    );

    let mut cmd = Command::new(example_binary("health_monitor"));
    cmd.args([
        "--store",
        &url,
        "--endpoint",
        &endpoint.to_string(),
        "--interval",
        "100",
    ]);
    let mut monitor = ChildLines::spawn(cmd);
    monitor.wait_for(&["ok: certificate matches pin", &fp]);

    // Writes acknowledged (each a `tofu-certs addcert` that exited 0) before the restart.
    const WRITES: usize = 30;
    let others: Vec<_> = (0..WRITES)
        .map(|i| {
            let path = tmp.path().join(format!("w{i}.pem"));
            std::fs::write(&path, certificate(&format!("w{i}.example")).0).unwrap();
            path
        })
        .collect();
    for (i, path) in others.iter().enumerate() {
        ok(
            &tofu(
                &url,
                &[
                    "addcert",
                    "host",
                    &format!("acked-{i}.example_443"),
                    "--cert",
                    path.to_str().unwrap(),
                ],
            ),
            "addcert before the restart",
        );
    }

    let restarted = Instant::now();
    cluster.restart();
    eprintln!("pg_ctl restart -m fast took {:?}", restarted.elapsed());
    assert_eq!(
        listed(&url, "acked"),
        WRITES,
        "acknowledged writes after the restart"
    );
    check_sound(&url);

    // The monitor, not restarted, goes on verifying.
    let skip = monitor.seen().len();
    monitor.wait_for(&["ok: certificate matches pin", &fp]);
    let line = monitor.wait_for(&["ok: certificate matches pin", &fp]);
    eprintln!(
        "the monitor's lines during the restart: {:?}; then: {line}",
        &monitor.seen()[skip..]
    );

    // A deletion made after the restart is honoured: the next handshake pins afresh.
    ok(
        &tofu(&url, &["deletecert", "host", &endpoint.host_port()]),
        "deletecert",
    );
    monitor.wait_for(&["pinned on first use", &fp]);
    monitor.wait_for(&["ok: certificate matches pin", &fp]);
    assert_eq!(
        monitor.child.try_wait().unwrap(),
        None,
        "the monitor kept running"
    );
    drop(monitor);
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// 4. An unreachable server

/// Runs `listcerts` against `url`; asserts it failed, within `bound`, naming the database
/// `pins` and not the password. Returns how long it took.
fn refused_within(url: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    let out = tofu(url, &["listcerts"]);
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success(), "{url}: {all}");
    assert!(took < bound, "{url}: took {took:?}: {err}");
    assert!(
        err.contains("pins"),
        "the message names the database: {err}"
    );
    assert!(
        !all.contains("s3cret-pw"),
        "the password is not shown: {all}"
    );
    eprintln!("{took:?}: {}", err.trim());
    took
}

#[test]
fn a_command_against_an_unreachable_server_fails_within_the_connect_timeout_without_the_password() {
    let _ = pg_support::server_url(&|k| std::env::var(k).ok()); // the skip message; no server needed
    let dir = tempfile::tempdir().unwrap();
    // No server at that socket: refused at once.
    refused_within(
        &format!(
            "postgresql://tofu:s3cret-pw@/pins?host={}&port=5999",
            dir.path().display()
        ),
        Duration::from_secs(3),
    );

    // A server that accepts the connection and never answers: the connect timeout bounds it,
    // 10 s by default, or the URI's connect_timeout.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let took = refused_within(
        &format!(
            "postgresql://tofu:s3cret-pw@127.0.0.1:{port}/pins?connect_timeout=2&sslmode=disable"
        ),
        Duration::from_secs(5),
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let took = refused_within(
        &format!("postgresql://tofu:s3cret-pw@127.0.0.1:{port}/pins?sslmode=disable"),
        Duration::from_secs(14),
    );
    assert!(took >= Duration::from_secs(10), "{took:?}");
    drop(listener);
}
