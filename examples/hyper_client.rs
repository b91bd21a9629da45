//! hyper-util's pooled client over `tofu_core::connect::HttpsConnector`: ONE client for any
//! number of endpoints, each connection verified against the pins of its own `host:port`.
//!
//!     cargo run -p examples --example hyper_client -- --store DIR https://127.0.0.1:8443/ https://127.0.0.1:9443/
//!
//! Prints one line per URL: its status, or the refusal (the `TofuError`, in full). Exits 4
//! when the pins refused a URL, 1 when a fetch failed otherwise.

use std::sync::Arc;

use clap::Parser;
use examples::{fetch_exit, Fetched};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tofu_core::connect::HttpsConnector;
use tofu_core::{audit::Actor, Policy, Store, StoreLocation, TofuClientConfigs};

/// Fetches each URL with one shared hyper-util client, pinning on first use.
#[derive(Parser)]
struct Args {
    /// The pin store: a directory, or a PostgreSQL URI (postgresql://...).
    #[arg(long, env = "TOFU_CERTS_STORE", value_parser = StoreLocation::parse)]
    store: StoreLocation,
    /// The https:// URLs to fetch.
    #[arg(required = true)]
    urls: Vec<http::Uri>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let store = match Store::open_location(&args.store) {
        Ok(s) => Arc::new(s.with_actor(Actor::named("hyper_client"))),
        Err(e) => {
            eprintln!("hyper_client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let configs = Arc::new(TofuClientConfigs::new(store, Policy::trust_on_first_use()));
    let client: Client<_, String> =
        Client::builder(TokioExecutor::new()).build(HttpsConnector::new(configs));
    let (mut refused, mut failed) = (false, false);
    for url in args.urls {
        let outcome = client.get(url.clone()).await;
        let (line, was_refused) = match &outcome {
            Ok(response) => Fetched::Status(response.status().as_u16()),
            Err(e) => Fetched::Failed(e),
        }
        .line(&url.to_string());
        refused |= was_refused;
        failed |= outcome.is_err();
        println!("{line}");
    }
    fetch_exit(refused, failed)
}
