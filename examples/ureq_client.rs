//! A ureq 3 agent over `tofu_core::connect::UreqConnector`: ONE agent for any number of
//! endpoints, each connection (redirects included) verified against the pins of its own
//! `host:port`.
//!
//!     cargo run -p examples --example ureq_client -- --store DIR https://127.0.0.1:8443/ https://127.0.0.1:9443/
//!
//! Prints one line per URL: its status, or the refusal (the `TofuError`, in full). Exits 4
//! when the pins refused a URL, 1 when a fetch failed otherwise.

use std::sync::Arc;

use clap::Parser;
use examples::{fetch_exit, Fetched};
use tofu_core::{audit::Actor, connect, Policy, Store, StoreLocation, TofuClientConfigs};

/// Fetches each URL with one shared ureq agent, pinning on first use.
#[derive(Parser)]
struct Args {
    /// The pin store: a directory, or a PostgreSQL URI (postgresql://...).
    #[arg(long, env = "TOFU_CERTS_STORE", value_parser = StoreLocation::parse)]
    store: StoreLocation,
    /// The https:// URLs to fetch.
    #[arg(required = true)]
    urls: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let store = match Store::open_location(&args.store) {
        Ok(s) => Arc::new(s.with_actor(Actor::named("ureq_client"))),
        Err(e) => {
            eprintln!("ureq_client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let configs = Arc::new(TofuClientConfigs::new(store, Policy::trust_on_first_use()));
    // Nothing in clear text, not even after a redirect; a 4xx/5xx is a status, not an error.
    let config = ureq::Agent::config_builder()
        .https_only(true)
        .http_status_as_error(false)
        .build();
    let agent = connect::ureq_agent(configs, config);
    let (mut refused, mut failed) = (false, false);
    for url in &args.urls {
        let outcome = agent.get(url).call();
        let (line, was_refused) = match &outcome {
            Ok(response) => Fetched::Status(response.status().as_u16()),
            Err(e) => Fetched::Failed(e),
        }
        .line(url);
        refused |= was_refused;
        failed |= outcome.is_err();
        println!("{line}");
    }
    fetch_exit(refused, failed)
}
