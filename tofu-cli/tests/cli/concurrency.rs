//! Several processes on one store: the CLI works while services hold the store open, and
//! parallel changes lose nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;

#[test]
fn the_cli_works_while_other_processes_hold_the_store_open_and_write() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    let (file, key) = env.write_cert("c", &cert);
    let server = TlsServer::start(&file, &key, free_port());
    env.run(&["probe", "host", &server.endpoint(), "--pin"])
        .success();

    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        // A second tofu-certs process after another, probing in a loop: each opens the store,
        // reads the pin and records the handshake.
        let prober = {
            let (stop, probes, env, endpoint) = (&stop, &probes, &env, server.endpoint());
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    env.run(&["probe", "host", &endpoint]).success();
                    probes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // And a service holding the store open for the whole test, writing now and then (what
        // a verifier writes: quarantined certificates and "last seen" times).
        let service = {
            let (stop, store_dir) = (&stop, env.store());
            scope.spawn(move || {
                let store = tofu_core::Store::open(store_dir).unwrap();
                let endpoint: tofu_core::Endpoint = "10.9.9.9:443".parse().unwrap();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .quarantine(&endpoint, &prime_cert("noise").der)
                        .unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                n
            })
        };

        for i in 0..15u16 {
            let endpoint = format!("10.1.1.{}:8082", i + 1);
            env.run(&["addcert", "host", &endpoint, "--cert", &file])
                .success();
            let listing = env.run(&["listcerts"]);
            listing.success();
            assert!(listing
                .stdout
                .contains(&format!("host=10.1.1.{}_8082;", i + 1)));
            env.run(&["deletecert", "host", &endpoint.replace(':', "_")])
                .success();
        }
        stop.store(true, Ordering::Relaxed);
        prober.join().unwrap();
        assert!(service.join().unwrap() > 0);
    });
    assert!(probes.load(Ordering::Relaxed) > 0, "the prober ran");
    // Only the probed pin and the noise endpoint's quarantine remain.
    env.run(&["listcerts"]).success().stdout(&format!(
        "host=127.0.0.1_{};  subject= {PRIME_SUBJECT}\n",
        server.port
    ));
}

#[test]
fn twenty_parallel_deletecerts_lose_nothing() {
    let env = Env::new();
    let cert = prime_cert("prime-pri");
    fill_store(&env.store(), 40, &cert);

    let children: Vec<_> = (1..=20)
        .map(|port| {
            env.command(&["deletecert", "host", &format!("127.0.0.1_{port}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        Run::from(child.wait_with_output().unwrap())
            .success()
            .stdout(&format!(
                "removed active pin host=127.0.0.1_{};  subject= {PRIME_SUBJECT}  ({})\n",
                i + 1,
                cert.fingerprint()
            ));
    }
    let expected: String = (21..=40)
        .map(|port| format!("host=127.0.0.1_{port};  subject= {PRIME_SUBJECT}\n"))
        .collect();
    env.run(&["listcerts"]).success().stdout(&expected);
    let log = env.run(&["log"]);
    assert_eq!(log.stdout.matches("  removed  ").count(), 20);

    // Twenty at once on one endpoint: exactly one removes it, the others find nothing.
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.command(&["deletecert", "host", "127.0.0.1:40"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| Run::from(c.wait_with_output().unwrap()).code)
        .collect();
    assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 19, "{codes:?}");
    assert_eq!(env.run(&["listcerts"]).stdout.lines().count(), 19);
}

/// Regression: addcert checked for an active pin, then added its own in a second
/// transaction, so operators or scripts adding different certificates to one endpoint at
/// once could each see none and leave it with several active pins, none asked for with
/// `--additional`.
#[test]
fn parallel_addcerts_of_different_certificates_leave_one_active_pin() {
    let env = Env::new();
    // The store exists before the race, so that none of the racers creates it.
    env.pin("10.9.9.9:1", &prime_cert("other"));
    for round in 0..5 {
        let endpoint = format!("10.1.1.{round}:8082");
        let files: Vec<String> = (0..10)
            .map(|i| {
                env.write_cert(&format!("r{round}-{i}"), &prime_cert("prime-sec"))
                    .0
            })
            .collect();
        let children: Vec<_> = files
            .iter()
            .map(|file| {
                env.command(&["addcert", "host", &endpoint, "--cert", file])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let runs: Vec<Run> = children
            .into_iter()
            .map(|c| Run::from(c.wait_with_output().unwrap()))
            .collect();
        let won = runs.iter().filter(|r| r.code == 0).count();
        assert_eq!(won, 1, "round {round}: {runs:#?}");
        for lost in runs.iter().filter(|r| r.code != 0) {
            assert_eq!(lost.code, 1, "{lost:#?}");
            assert!(
                lost.stderr.contains("already has an active pin")
                    && lost.stderr.contains("nothing was pinned"),
                "{lost:#?}"
            );
        }
        let shown = env.run(&["showcert", "host", &endpoint]);
        assert_eq!(
            shown.stdout.matches("active pin").count(),
            1,
            "round {round}: {}",
            shown.stdout
        );
    }
}
