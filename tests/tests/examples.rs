//! The examples, run end to end as a newcomer and an operator would run them: the Prime HA
//! demo, the planned-rotation script, and a long-running health monitor that keeps working
//! while the store is changed from other processes.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Instant;

use examples::{example_binary, prime_identity, tofu_certs_binary, ChildLines, DemoServer};
use tofu_core::{audit::AuditEvent, Endpoint, Fingerprint, Store, StoreLocation};

#[path = "../../tofu-core/tests/pg_support/mod.rs"]
mod pg_support;

#[test]
fn the_prime_ha_demo_tells_the_whole_story_and_leaves_both_peers_pinned_to_their_new_certificates()
{
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    prime_ha_tells_the_whole_story(
        store_dir.as_os_str(),
        &StoreLocation::from(store_dir.as_path()),
    );
}

#[test]
fn the_prime_ha_demo_tells_the_same_story_with_a_postgresql_store() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let _drop = pg_support::DropOnDrop(url.clone());
    prime_ha_tells_the_whole_story(url.as_ref(), &StoreLocation::parse(&url).unwrap());
}

/// Runs `prime_ha --store STORE` and checks its story, step by step, and what it left in the
/// store at `location` (the same store, parsed).
fn prime_ha_tells_the_whole_story(store: &OsStr, location: &StoreLocation) {
    let started = Instant::now();
    let out = Command::new(example_binary("prime_ha"))
        .args(["--store".as_ref(), store])
        .env("TOFU_CERTS_BIN", tofu_certs_binary())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "prime_ha failed:\n{stdout}\n{stderr}");
    eprintln!("prime_ha finished in {:?}", started.elapsed());

    // Each step, in order.
    let steps = [
        "1. The HA secondary (CN=prime-sec)",
        "[HealthMonitorThread] prime-sec at 127.0.0.1:",
        ": pinned on first use: SHA256:",
        "[HealthMonitorThread] ISE-server at 127.0.0.1:",
        "2. The operator lists what is pinned",
        "$ tofu-certs listcerts",
        "3. On the secondary, someone generates a new key and CSR",
        "[HealthMonitorThread] TOFU failed.",
        "Current certificate of the remote host is different from what was used earlier - CN=prime-sec",
        "tofu-certs accept host 127.0.0.1:",
        "4. The operator confirms",
        "$ tofu-certs showcert host 127.0.0.1_",
        "$ tofu-certs accept host 127.0.0.1:",
        "5. The health monitor reconnects",
        "ok: certificate matches pin SHA256:",
        "6. The ISE server is redeployed too.",
        "$ tofu-certs deletecert host 127.0.0.1_",
        "Done in ",
    ];
    let mut rest: &str = &stdout;
    for step in steps {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("missing (or out of order) {step:?} in:\n{stdout}"));
        rest = &rest[at + step.len()..];
    }

    // listcerts sorts by endpoint, and the ports are whatever the system gave.
    for cn in ["prime-sec", "ISE-server"] {
        let line = format!(";  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN={cn}\n");
        assert!(
            stdout.contains(&line),
            "no listcerts line for {cn} in:\n{stdout}"
        );
    }

    let store = Store::open_existing_location(location).unwrap();
    let mut pins = Vec::new();
    store
        .for_each_pin(|p| {
            pins.push(p);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(pins.len(), 2, "one pin for each peer");
    let mut events = Vec::new();
    store
        .for_each_audit(None, |e| {
            events.push(e.event);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    for event in [
        AuditEvent::Pinned,
        AuditEvent::MismatchRejected,
        AuditEvent::Accepted,
        AuditEvent::Retired,
        AuditEvent::Removed,
    ] {
        assert!(events.contains(&event), "no {event} in {events:?}");
    }
}

#[test]
fn the_rotation_script_stages_switches_and_promotes_checking_every_exit_status() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rotate.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("TOFU_CERTS", tofu_certs_binary())
        .env_remove("TOFU_CERTS_STORE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rotate.sh failed:\n{stdout}\n{stderr}"
    );
    for step in [
        "probe host 127.0.0.1:",
        "addcert host 127.0.0.1:",
        "--next",
        "promoted",
        "retired",
        "a server rolled back to the old certificate is refused",
        "rotation complete: 127.0.0.1:",
    ] {
        assert!(
            stdout.contains(step),
            "missing {step:?} in:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn a_running_health_monitor_recovers_after_a_rotation_and_a_deletecert_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let old = prime_identity("prime-sec");
    let server = DemoServer::start(&old, 0).unwrap();
    let endpoint = Endpoint::new("127.0.0.1", server.addr().port()).unwrap();

    let mut cmd = Command::new(example_binary("health_monitor"));
    cmd.arg("--store").arg(&store_dir).args([
        "--endpoint",
        &endpoint.to_string(),
        "--interval",
        "50",
    ]);
    let mut monitor = ChildLines::spawn(cmd);
    monitor.wait_for(&[
        &endpoint.to_string(),
        "pinned on first use",
        &Fingerprint::of(&old.cert).to_string(),
    ]);
    monitor.wait_for(&["ok: certificate matches pin"]);

    // The server is redeployed with a new certificate while the monitor runs.
    let new = prime_identity("prime-sec");
    server.restart_with(&new);
    monitor.wait_for(&["Current certificate of the remote host is different"]);

    // An operator deletes the pin from another process; the monitor's next handshake re-pins,
    // without a restart.
    let out = Command::new(tofu_certs_binary())
        .args(["--store".as_ref(), store_dir.as_os_str()])
        .args(["deletecert", "host", &endpoint.host_port()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    monitor.wait_for(&[
        "pinned on first use",
        &Fingerprint::of(&new.cert).to_string(),
    ]);
    monitor.wait_for(&[
        "ok: certificate matches pin",
        &Fingerprint::of(&new.cert).to_string(),
    ]);
    assert_eq!(
        monitor.child.try_wait().unwrap(),
        None,
        "the monitor kept running throughout"
    );
}

#[test]
fn the_blocking_and_tokio_clients_fetch_a_page_pin_on_first_use_and_refuse_a_changed_certificate() {
    for example in ["blocking_client", "tokio_client"] {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let old = prime_identity("prime-sec");
        let server = DemoServer::start(&old, 0).unwrap();
        let endpoint = Endpoint::new("127.0.0.1", server.addr().port()).unwrap();
        let run = || {
            Command::new(example_binary(example))
                .arg(endpoint.to_string())
                .arg("/")
                .arg(&store_dir)
                .output()
                .unwrap()
        };

        let out = run();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("HTTP/1.1 200 OK"), "{example}: {stdout}");
        assert!(
            stdout.ends_with("tofu-certs demo server\n"),
            "{example}: {stdout}"
        );
        let store = Store::open_existing(&store_dir).unwrap();
        assert_eq!(
            store.endpoint(&endpoint).unwrap().pins[0].der,
            old.cert,
            "{example}"
        );

        server.restart_with(&prime_identity("prime-sec"));
        let out = run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{example}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{example}: nothing is fetched from a refused server"
        );
        assert!(
            stderr.contains("Current certificate of the remote host is different"),
            "{example}: {stderr}"
        );
    }
}
