//! The fleet story: two machines share one PostgreSQL pin store. Machine A runs a health
//! monitor against a real TLS server, which is pinned on first use; the server's certificate
//! is rotated and A refuses it; an operator on machine B accepts the new certificate, once,
//! with `tofu-certs`; A's monitor trusts it on a following round, with no restart.
//!
//! A "machine" here is a set of processes with its own working directory and its own HOME
//! and XDG data directories, so nothing but the PostgreSQL store is shared between A and B.

#[path = "../../tofu-core/tests/pg_support/mod.rs"]
mod pg_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use examples::{example_binary, prime_identity, tofu_certs_binary, ChildLines, DemoServer};
use tofu_core::{Endpoint, Fingerprint};

/// A machine of the fleet: its own working directory, HOME and XDG directories.
struct Machine {
    root: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        for d in ["work", "home", "data", "config", "state"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        Machine { root }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// `program` as run on this machine: nothing of the test's environment that names a store
    /// or a directory leaks in.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir("work"))
            .env_remove("TOFU_CERTS_STORE")
            .env("HOME", self.dir("home"))
            .env("XDG_DATA_HOME", self.dir("data"))
            .env("XDG_CONFIG_HOME", self.dir("config"))
            .env("XDG_STATE_HOME", self.dir("state"))
            .env("NO_COLOR", "1");
        cmd
    }
}

/// The round number a health_monitor line starts with (`round N 127.0.0.1:P ...`).
fn round_of(line: &str) -> u64 {
    line.strip_prefix("round ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a health_monitor line: {line:?}"))
}

#[test]
fn an_accept_on_machine_b_reaches_machine_as_running_monitor_through_the_shared_store() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let _drop = pg_support::DropOnDrop(url.clone());
    let (a, b) = (Machine::new(), Machine::new());

    let old = prime_identity("prime-sec");
    let server = DemoServer::start(&old, 0).unwrap();
    let endpoint = Endpoint::new("127.0.0.1", server.addr().port()).unwrap();
    let old_fp = Fingerprint::of(&old.cert).to_string();

    // Machine A: the monitor pins the server on first use.
    let mut cmd = a.command(&example_binary("health_monitor"));
    cmd.args(["--store", &url, "--endpoint", &endpoint.to_string()])
        .args(["--interval", "100"]);
    let mut monitor = ChildLines::spawn(cmd);
    let pinned = monitor.wait_for(&[&endpoint.to_string(), "pinned on first use", &old_fp]);
    monitor.wait_for(&["ok: certificate matches pin", &old_fp]);

    // The server is redeployed with a new certificate: A refuses it.
    let new = prime_identity("prime-sec");
    let new_fp = Fingerprint::of(&new.cert).to_string();
    server.restart_with(&new);
    let refused = monitor.wait_for(&[&format!(
        "{endpoint} the certificate presented by {endpoint} does not match"
    )]);
    monitor.wait_for(&["Current certificate of the remote host is different from what was used earlier - CN=prime-sec"]);
    assert!(round_of(&refused) > round_of(&pinned), "{refused}");

    // Machine B: the operator accepts exactly the new certificate, once.
    let out = b
        .command(&tofu_certs_binary())
        .args(["--store", &url])
        .args([
            "accept",
            "host",
            &endpoint.host_port(),
            "--fingerprint",
            &new_fp,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "accept on machine B:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A trusts the new certificate on a following round, without a restart and without
    // pinning anything itself: the pin came from B.
    let trusted = monitor.wait_for(&["ok: certificate matches pin", &new_fp]);
    assert!(round_of(&trusted) > round_of(&refused), "{trusted}");
    assert!(
        trusted.starts_with(&format!("round {} {endpoint} ok: ", round_of(&trusted))),
        "{trusted}"
    );
    assert!(
        !monitor
            .seen()
            .iter()
            .any(|l| l.contains("pinned on first use") && l.contains(&new_fp)),
        "A never pinned the new certificate itself:\n{}",
        monitor.seen().join("\n")
    );
    assert_eq!(
        monitor.child.try_wait().unwrap(),
        None,
        "A's monitor kept running throughout"
    );

    // Nothing landed in either machine's own directories: the store is the database.
    for m in [&a, &b] {
        for d in ["work", "data"] {
            let entries: Vec<_> = std::fs::read_dir(m.dir(d)).unwrap().flatten().collect();
            assert!(entries.is_empty(), "{d}: {entries:?}");
        }
    }
}
