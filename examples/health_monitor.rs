//! A long-running client that keeps the pin store open while operators use `tofu-certs`:
//! every `--interval` milliseconds it connects to each `--endpoint` through the TOFU
//! verifier and prints one line per attempt, until stopped.
//!
//!     cargo run -p examples --example health_monitor -- \
//!         --store /var/lib/monitor/tofu --endpoint 10.1.1.1:8082 --endpoint ise.example:443
//!
//! `--store` is a directory or a PostgreSQL URI (`postgresql://monitor@db/tofu`), which a
//! fleet of machines can share.
//!
//! A `tofu-certs deletecert` or `accept` from another shell takes effect at the next attempt,
//! with no restart: the verifier notices the store changed.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use examples::{check, Check};
use tofu_core::{audit::Actor, Endpoint, Policy, Store, StoreLocation, TofuClientConfigs};

/// Connects to endpoints through the trust-on-first-use verifier, forever.
#[derive(Parser)]
struct Args {
    /// The pin store: a directory, or a PostgreSQL URI (postgresql://...).
    #[arg(long, env = "TOFU_CERTS_STORE", value_parser = StoreLocation::parse)]
    store: StoreLocation,
    /// An endpoint to check (HOST:PORT); repeat for several.
    #[arg(long = "endpoint", required = true)]
    endpoints: Vec<Endpoint>,
    /// Milliseconds between rounds.
    #[arg(long, default_value_t = 1000)]
    interval: u64,
    /// Stop after this many rounds (default: run until stopped).
    #[arg(long)]
    rounds: Option<u64>,
    /// Refuse endpoints that are not pinned yet instead of pinning them.
    #[arg(long)]
    strict: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let store = match Store::open_location(&args.store) {
        Ok(s) => Arc::new(s.with_actor(Actor::named("health_monitor"))),
        Err(e) => {
            eprintln!("health_monitor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let policy = if args.strict {
        Policy::strict()
    } else {
        Policy::trust_on_first_use()
    };
    let configs = TofuClientConfigs::new(store.clone(), policy);
    let mut stdout = std::io::stdout().lock();
    let mut round = 0u64;
    loop {
        round += 1;
        for endpoint in &args.endpoints {
            let outcome = check(&configs, &store, endpoint, Duration::from_secs(5));
            let line = match &outcome {
                Check::Refused(e) => format!("{}", e).replace('\n', "\n    "),
                other => other.to_string(),
            };
            // A closed pipe ends the monitor quietly.
            if writeln!(stdout, "round {round} {endpoint} {line}")
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return std::process::ExitCode::SUCCESS;
            }
        }
        if args.rounds.is_some_and(|n| round >= n) {
            return std::process::ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(args.interval));
    }
}
