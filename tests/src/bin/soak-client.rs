//! A service for the concurrency soak (`tests/reliability_soak.rs`): threads doing TLS
//! handshakes through the TOFU verifier, against a store that operators change meanwhile.
//!
//! ```text
//! soak-client <store-dir> <seconds> <threads> <endpoint>...
//! ```
//!
//! Each thread connects to a random endpoint of the list, again and again, for `seconds`,
//! through one `TofuClientConfigs` shared by the threads (one verifier per endpoint), and
//! counts the outcomes. At the end it prints `handshakes ok=<n> mismatch=<n> failed=<n>`,
//! after one `failed <endpoint>: <error>` line per handshake that failed for any other
//! reason than a certificate mismatch (a store error, a lock, a lost connection).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tofu_core::{Endpoint, Policy, Store, TofuClientConfigs, TofuError};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() {
    if let Err(e) = run() {
        println!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, seconds, threads, endpoints @ ..] = args.as_slice() else {
        return Err("usage: soak-client <store-dir> <seconds> <threads> <endpoint>...".into());
    };
    let endpoints: Vec<Endpoint> = endpoints
        .iter()
        .map(|e| e.parse())
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
    let store = Arc::new(Store::open(dir)?);
    let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
    let (ok, mismatch) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads.parse::<u64>().unwrap_or(1) {
            let (configs, endpoints, ok, mismatch, failed) =
                (&configs, &endpoints, &ok, &mismatch, &failed);
            s.spawn(move || {
                let mut x = (u64::from(std::process::id()) << 8 | t) | 1;
                while Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let endpoint = &endpoints[(x % endpoints.len() as u64) as usize];
                    match handshake(configs, endpoint) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e)
                            if matches!(TofuError::from_io(&e), Some(TofuError::Mismatch(_))) =>
                        {
                            mismatch.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            failed.lock().unwrap().push(format!("{endpoint}: {e}"));
                            0
                        }
                    };
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap();
    let mut out = std::io::stdout().lock();
    for f in &failed {
        writeln!(out, "failed {}", f.replace('\n', " "))?;
    }
    writeln!(
        out,
        "handshakes ok={} mismatch={} failed={}",
        ok.into_inner(),
        mismatch.into_inner(),
        failed.len()
    )?;
    Ok(())
}

/// One handshake through the endpoint's TOFU configuration, then an HTTP request, as the
/// examples' health monitor does.
fn handshake(configs: &TofuClientConfigs, endpoint: &Endpoint) -> std::io::Result<()> {
    let config = configs
        .client_config(endpoint)
        .map_err(std::io::Error::other)?;
    let addr = endpoint
        .to_string()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(config, endpoint.server_name())
        .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(
            "no HTTP response after the handshake",
        ));
    }
    Ok(())
}
