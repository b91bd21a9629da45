//! A process that uses the pin store, for the multi-process tests in
//! `tests/store_processes.rs`. Each run does one thing to a store directory and reports on
//! stdout, one line at a time, flushed:
//!
//! ```text
//! store-worker first-use <store-dir> <endpoint> <cert.der>  pinned <fp> | lost <winner's fp>
//! store-worker delete <store-dir> <endpoint>                removed <pins removed>
//! store-worker hold <store-dir> <endpoint>                  see below
//! store-worker write-stream <store-dir> <n>                 ok <i>, after each pin is stored
//! ```
//!
//! `hold` keeps the store open and reads it continuously. It prints
//! `start <generation> <state>` once, `moved <generation> <state>` each time `generation()`
//! moves, and `read <generation> <state>` for each `read` line on its standard input; it
//! exits when its standard input closes. `<state>` is `pins=<fingerprints of the endpoint's
//! pins, comma-separated, or ->` and `total=<pins in the store>`.
//!
//! `first-use` and `delete` also take a `postgresql://` URI for `<store-dir>`.
//!
//! `write-stream` pins `host-<i>:443` for i = 0, 1, … n-1, one transaction each.
//!
//! When `STORE_WORKER_GO` names a file, `first-use` and `delete` open the store, print
//! `ready`, and wait for that file to exist before acting, so that a test can release many
//! workers at the same moment. `write-stream` prints `ready` once the store is open.
//!
//! Any failure prints `error: <message>` on stdout and exits with status 1.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tofu_core::{store::FirstUse, Endpoint, Store, StoreLocation};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        say(&format!("error: {e}"));
        std::process::exit(1);
    }
}

/// Prints one line and flushes it, so the test sees it at once.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A test that stopped reading is not this process's failure.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: &[String]) -> Result<()> {
    let arg = |i: usize, what: &str| -> Result<&str> {
        args.get(i).map(String::as_str).ok_or_else(|| {
            format!("missing {what}; see the usage at the top of store-worker.rs").into()
        })
    };
    let command = arg(0, "command")?;
    let dir = PathBuf::from(arg(1, "store directory")?);
    match command {
        "first-use" => {
            let endpoint: Endpoint = arg(2, "endpoint")?.parse()?;
            let der = CertificateDer::from(std::fs::read(arg(3, "certificate file")?)?);
            let store = open(&dir)?;
            wait_for_go()?;
            match store.pin_first_use(&endpoint, &der)? {
                FirstUse::Pinned(pin) => say(&format!("pinned {}", pin.fingerprint())),
                FirstUse::AlreadyPinned(record) => {
                    let winner = record.pins.first().ok_or("AlreadyPinned without a pin")?;
                    say(&format!("lost {}", winner.fingerprint()));
                }
            }
        }
        "delete" => {
            let endpoint: Endpoint = arg(2, "endpoint")?.parse()?;
            let store = open(&dir)?;
            wait_for_go()?;
            let removed = store.remove_endpoint(&endpoint)?;
            say(&format!("removed {}", removed.pins.len()));
        }
        "hold" => {
            let endpoint: Endpoint = arg(2, "endpoint")?.parse()?;
            hold(&dir, &endpoint)?;
        }
        "write-stream" => {
            let n: usize = arg(2, "count")?.parse()?;
            write_stream(&dir, n)?;
        }
        other => return Err(format!("unknown command {other:?}").into()),
    }
    Ok(())
}

/// The store at `dir` as `--store` reads it: a directory, or a `postgresql://` URI.
fn open(dir: &Path) -> Result<Store> {
    let location = StoreLocation::parse(dir.to_str().ok_or("the store is not UTF-8")?)?;
    Ok(Store::open_location(&location)?)
}

fn wait_for_go() -> Result<()> {
    let Some(go) = std::env::var_os("STORE_WORKER_GO") else {
        return Ok(());
    };
    say("ready");
    let go = Path::new(&go);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} did not appear within 60 s", go.display()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn state(store: &Store, endpoint: &Endpoint) -> Result<String> {
    let record = store.endpoint(endpoint)?;
    let pins: Vec<String> = record
        .pins
        .iter()
        .map(|p| p.fingerprint().to_string())
        .collect();
    let mut total = 0usize;
    store.for_each_pin(|_| {
        total += 1;
        ControlFlow::Continue(())
    })?;
    let pins = if pins.is_empty() {
        "-".to_string()
    } else {
        pins.join(",")
    };
    Ok(format!("pins={pins} total={total}"))
}

fn hold(dir: &Path, endpoint: &Endpoint) -> Result<()> {
    let store = Store::open_existing(dir)?;
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) => {
                    if tx.send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });

    let mut last = store.generation()?;
    say(&format!("start {last} {}", state(&store, endpoint)?));
    loop {
        // Keep reading, as a service that verifies handshakes would.
        let g = store.generation()?;
        let now = state(&store, endpoint)?;
        if g != last {
            last = g;
            say(&format!("moved {g} {now}"));
        }
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(Some(cmd)) if cmd.trim() == "read" => {
                let g = store.generation()?;
                last = g;
                say(&format!("read {g} {}", state(&store, endpoint)?));
            }
            Ok(Some(cmd)) => return Err(format!("unknown input {cmd:?}").into()),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

fn write_stream(dir: &Path, n: usize) -> Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let der = rcgen::CertificateParams::new(vec!["stream.example".to_string()])?
        .self_signed(&key)?
        .der()
        .clone();
    let store = Store::open(dir)?;
    say("ready");
    for i in 0..n {
        let endpoint: Endpoint = format!("host-{i}:443").parse()?;
        match store.pin_first_use(&endpoint, &der)? {
            FirstUse::Pinned(_) => say(&format!("ok {i}")),
            FirstUse::AlreadyPinned(_) => {
                return Err(format!("{endpoint} was pinned already").into())
            }
        }
    }
    Ok(())
}
