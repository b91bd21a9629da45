//! Change-to-visible latency: how long after a write returns on one store handle another
//! process's `Store::generation()` moves (issue 12).
//!
//!     cargo run --release -p examples --example notify_latency -- \
//!         --store "postgresql://postgres@127.0.0.1:55600/postgres?sslmode=disable" --listeners 50 --changes 200
//!
//! The driver spawns `--listeners` copies of itself (`listen` mode), each opening the store
//! and polling `generation()` every `--poll-us` microseconds; a listener prints one line,
//! `<generation> <unix time in ns>`, whenever the generation moves. The driver then makes
//! `--changes` writes (`pin_first_use` of a fresh endpoint, one at a time), notes the time
//! each returns, waits until every listener has reported the change, and prints p50, p99 and
//! max of (listener's time − write's return), over all listener reports and over the last
//! listener of each change. All times are the wall clock (`CLOCK_REALTIME`), common to the
//! processes; the polling adds up to `--poll-us` (half of it on average) to every figure.
//! `--store` is a directory (SQLite) or a `postgresql://` URI, as for `tofu-certs --store`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use tofu_core::{Endpoint, Store, StoreLocation};

#[derive(Parser)]
struct Args {
    /// The store: a directory (SQLite) or a postgresql:// URI.
    #[arg(long)]
    store: String,
    /// Microseconds between two `generation()` calls in a listener.
    #[arg(long, default_value_t = 100)]
    poll_us: u64,
    /// Listening processes.
    #[arg(long, default_value_t = 1)]
    listeners: usize,
    /// Writes to time.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Milliseconds between two writes (after every listener saw the previous one).
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Internal: be one listener (print a line per generation change).
    Listen,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

fn open(store: &str) -> Store {
    let location =
        StoreLocation::parse(store).expect("--store: a directory or a postgresql:// URI");
    Store::open_location(&location).expect("open the store")
}

fn listen(args: &Args) {
    let store = open(&args.store);
    let mut last = store.generation().expect("generation");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {last}")
        .and_then(|()| out.flush())
        .expect("stdout");
    let poll = Duration::from_micros(args.poll_us);
    loop {
        let g = store.generation().expect("generation");
        if g != last {
            let t = now_ns();
            last = g;
            if writeln!(out, "{g} {t}").and_then(|()| out.flush()).is_err() {
                return; // the driver is gone
            }
        }
        std::thread::sleep(poll);
    }
}

fn percentile(sorted: &[i128], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report(what: &str, mut v: Vec<i128>) {
    v.sort_unstable();
    println!(
        "{what}: n={} p50={:.0} µs p99={:.0} µs max={:.0} µs min={:.0} µs",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        *v.last().unwrap() as f64 / 1000.0,
        v[0] as f64 / 1000.0,
    );
}

fn drive(args: &Args) {
    let exe = std::env::current_exe().expect("current_exe");
    let (tx, rx) = mpsc::channel::<(usize, Option<i128>)>();
    let mut children = Vec::new();
    for l in 0..args.listeners {
        let mut child = Command::new(&exe)
            .args([
                "--store",
                &args.store,
                "--poll-us",
                &args.poll_us.to_string(),
                "listen",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a listener");
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let t = if line.starts_with("ready") {
                    None
                } else {
                    Some(
                        line.split(' ')
                            .nth(1)
                            .and_then(|t| t.parse().ok())
                            .expect("a listener line"),
                    )
                };
                if tx.send((l, t)).is_err() {
                    return;
                }
            }
        });
        children.push(child);
    }
    for _ in 0..args.listeners {
        let (_, t) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("listeners ready");
        assert!(t.is_none(), "a change before any write");
    }
    let store = open(&args.store);
    let der = rcgen::generate_simple_self_signed(vec!["notify-latency.example".into()])
        .expect("a certificate")
        .cert
        .der()
        .clone();
    let run = format!("{:x}", now_ns() as u64);
    let (mut all, mut last_of_change, mut write_us) = (Vec::new(), Vec::new(), Vec::new());
    let (mut extra, mut twice) = (0, 0);
    for k in 0..args.changes {
        std::thread::sleep(Duration::from_millis(args.gap_ms));
        while rx.try_recv().is_ok() {
            extra += 1; // a listener that saw more than one move for one write
        }
        let endpoint = Endpoint::new(&format!("lat-{run}-{k}.example"), 443).unwrap();
        let t0 = now_ns();
        store.pin_first_use(&endpoint, &der).expect("write");
        let t = now_ns();
        write_us.push(t - t0);
        // A listener may move twice for one write: a heartbeat that read the sequence
        // between the write's nextval and its commit reloads once (seeing nothing new), then
        // the notification moves it again. The move that made the write visible is the
        // last one: so wait until every listener moved, a little more for second moves, and
        // take each listener's last.
        let mut seen: Vec<Option<i128>> = vec![None; args.listeners];
        let mut waiting = args.listeners;
        while waiting > 0 {
            let (l, ts) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("every listener sees the write");
            if seen[l].replace(ts.expect("a move")).is_none() {
                waiting -= 1;
            } else {
                twice += 1;
            }
        }
        while let Ok((l, ts)) = rx.recv_timeout(Duration::from_millis(20)) {
            seen[l] = Some(ts.expect("a move"));
            twice += 1;
        }
        let mut max = i128::MIN;
        for ts in seen.into_iter().flatten() {
            let d = ts - t;
            all.push(d);
            max = max.max(d);
        }
        last_of_change.push(max);
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    println!(
        "store {} listeners {} changes {} poll {} µs{}",
        store.location(),
        args.listeners,
        args.changes,
        args.poll_us,
        if extra > 0 {
            format!(" ({extra} extra moves ignored)")
        } else {
            String::new()
        }
    );
    println!("listeners that moved twice for one write (the last move counted): {twice}");
    report("write (pin_first_use) itself", write_us);
    report("write returned -> listener saw it, every listener", all);
    report("write returned -> last listener saw it", last_of_change);
}

fn main() {
    let args = Args::parse();
    match args.mode {
        Some(Mode::Listen) => listen(&args),
        None => drive(&args),
    }
}
