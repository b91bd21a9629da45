//! The story of Cisco Prime Infrastructure's trust-on-first-use tech note, end to end, on
//! 127.0.0.1 with real TLS servers, the real verifier and the real `tofu-certs` command.
//!
//!     cargo run -p examples --example prime_ha [-- --store DIR|postgresql://...]

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::{check, prime_identity, tofu_certs_binary, Check, DemoServer};
use tofu_core::{
    audit::Actor, Endpoint, Policy, Store, StoreLocation, TofuClientConfigs, TofuError,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prime_ha: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Demo {
    /// The store as given (a directory or a PostgreSQL URI, password and all), for the
    /// `tofu-certs` child's TOFU_CERTS_STORE; never printed.
    store_arg: std::ffi::OsString,
    tofu_certs: PathBuf,
    store: Arc<Store>,
    configs: TofuClientConfigs,
}

impl Demo {
    /// The primary's health monitor checks one peer, printing the outcome as Prime logs it.
    fn monitor(&self, peer: &str, endpoint: &Endpoint) -> Check {
        let outcome = check(&self.configs, &self.store, endpoint, TIMEOUT);
        match &outcome {
            Check::Refused(e) => {
                println!("[HealthMonitorThread] TOFU failed. Connection to {peer} at {endpoint} refused:");
                for line in e.to_string().lines() {
                    if line.is_empty() {
                        println!();
                    } else {
                        println!("    {line}");
                    }
                }
            }
            other => println!("[HealthMonitorThread] {peer} at {endpoint}: {other}"),
        }
        outcome
    }

    /// Runs `tofu-certs ARGS` as the operator would, showing the command and its output, and
    /// checks its exit status.
    fn operator(&self, args: &[&str], expect_status: i32) -> Result<String, String> {
        println!("$ tofu-certs {}", args.join(" "));
        let out = Command::new(&self.tofu_certs)
            .args(args)
            .env("TOFU_CERTS_STORE", &self.store_arg)
            .env("NO_COLOR", "1")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.tofu_certs.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        match out.status.code() {
            Some(code) if code == expect_status => Ok(stdout),
            other => Err(format!(
                "`tofu-certs {}` exited with {other:?}, expected {expect_status}",
                args.join(" ")
            )),
        }
    }
}

fn say(text: &str) {
    println!();
    println!("{text}");
}

fn parse_store_arg() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut store = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => {
                store = Some(
                    args.next()
                        .ok_or("--store needs a directory or a postgresql:// URI")?,
                )
            }
            "-h" | "--help" => {
                println!("usage: prime_ha [--store DIR|postgresql://...]\n\nRuns the HA re-registration story on 127.0.0.1; the store is a temporary directory unless --store is given.");
                std::process::exit(0);
            }
            other => {
                return Err(format!(
                    "unexpected argument {other:?}; usage: prime_ha [--store DIR|postgresql://...]"
                ))
            }
        }
    }
    Ok(store)
}

fn run() -> Result<(), String> {
    let started = Instant::now();
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (store_arg, kept) = match parse_store_arg()? {
        Some(text) => (text.into(), true),
        None => (temp.path().join("tofu-store").into_os_string(), false),
    };
    let location = match store_arg.to_str() {
        Some(text) => StoreLocation::parse(text).map_err(|e| e.to_string())?,
        None => StoreLocation::Directory(PathBuf::from(&store_arg)),
    };
    let store = Arc::new(
        Store::open_location(&location)
            .map_err(|e| e.to_string())?
            .with_actor(Actor::named("prime-pri HealthMonitorThread")),
    );
    let demo = Demo {
        tofu_certs: tofu_certs_binary(),
        configs: TofuClientConfigs::new(store.clone(), Policy::trust_on_first_use()),
        store,
        store_arg,
    };
    println!("tofu-certs demo: Cisco Prime Infrastructure HA registration with trust-on-first-use");
    println!(
        "store: {}{}",
        location,
        if kept {
            ""
        } else {
            " (temporary; pass --store DIR to keep it)"
        }
    );
    println!("The tofu-certs commands below run with TOFU_CERTS_STORE={location}");

    let sec_id = prime_identity("prime-sec");
    let ise_id = prime_identity("ISE-server");
    let secondary = DemoServer::start(&sec_id, 0).map_err(|e| e.to_string())?;
    let ise = DemoServer::start(&ise_id, 0).map_err(|e| e.to_string())?;
    let sec_ep = endpoint(&secondary)?;
    let ise_ep = endpoint(&ise)?;

    say(&format!(
        "1. The HA secondary (CN=prime-sec) listens on {sec_ep} and the ISE server (CN=ISE-server) on {ise_ep}.\n   The primary's health monitor connects to both through the TOFU verifier. Nothing is pinned yet,\n   so each certificate is trusted on first use and pinned."
    ));
    expect_ok(demo.monitor("prime-sec", &sec_ep), true)?;
    expect_ok(demo.monitor("ISE-server", &ise_ep), true)?;
    expect_ok(demo.monitor("prime-sec", &sec_ep), false)?;

    say("2. The operator lists what is pinned, in Prime's format:");
    let listed = demo.operator(&["listcerts"], 0)?;
    check_listing(&listed, &[(&sec_ep, "prime-sec"), (&ise_ep, "ISE-server")])?;

    say("3. On the secondary, someone generates a new key and CSR, and it restarts with the new certificate.\n   The health monitor's next connection is refused: the certificate is not the one pinned,\n   and HA registration fails here.");
    let sec_new = prime_identity("prime-sec");
    secondary.restart_with(&sec_new);
    let refused = demo.monitor("prime-sec", &sec_ep);
    let presented = match refused {
        Check::Refused(TofuError::Mismatch(m)) => m.presented.fingerprint,
        other => return Err(format!("expected a mismatch, got: {other}")),
    };

    say("4. The operator confirms the new certificate with the secondary's administrator, looks at it,\n   and accepts exactly that certificate, by fingerprint:");
    demo.operator(&["showcert", "host", &sec_ep.host_port()], 0)?;
    demo.operator(
        &[
            "accept",
            "host",
            &sec_ep.to_string(),
            "--fingerprint",
            &presented.to_string(),
        ],
        0,
    )?;

    say("5. The health monitor reconnects without a restart: the new certificate matches its pin.");
    expect_ok(demo.monitor("prime-sec", &sec_ep), false)?;

    say("6. The ISE server is redeployed too. This time the operator takes Prime's documented route:\n   delete the stale pin, and let the next connection pin what the server presents.");
    let ise_new = prime_identity("ISE-server");
    ise.restart_with(&ise_new);
    match demo.monitor("ISE-server", &ise_ep) {
        Check::Refused(TofuError::Mismatch(_)) => {}
        other => return Err(format!("expected a mismatch, got: {other}")),
    }
    demo.operator(&["deletecert", "host", &ise_ep.host_port()], 0)?;
    expect_ok(demo.monitor("ISE-server", &ise_ep), true)?;
    demo.operator(&["listcerts"], 0)?;

    say(&format!(
        "Done in {:.1} s: both peers are pinned to their new certificates, and `tofu-certs log` has the whole story.",
        started.elapsed().as_secs_f64()
    ));
    if !kept {
        drop(temp);
    }
    Ok(())
}

fn endpoint(server: &DemoServer) -> Result<Endpoint, String> {
    Endpoint::new("127.0.0.1", server.addr().port()).map_err(|e| e.to_string())
}

fn expect_ok(outcome: Check, pinned_now: bool) -> Result<(), String> {
    match outcome {
        Check::Ok { pinned_now: p, .. } if p == pinned_now => Ok(()),
        other => Err(format!(
            "expected {}, got: {other}",
            if pinned_now {
                "a first-use pin"
            } else {
                "a match"
            }
        )),
    }
}

fn check_listing(listed: &str, expected: &[(&Endpoint, &str)]) -> Result<(), String> {
    for (endpoint, cn) in expected {
        let line = format!(
            "host={};  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN={cn}",
            endpoint.host_port()
        );
        if !listed.lines().any(|l| l == line) {
            return Err(format!("listcerts did not print {line:?}"));
        }
    }
    Ok(())
}
