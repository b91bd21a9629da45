//! `tofu-certs probe host <HOST>`: one TLS handshake through the real verifier.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use tofu_core::{
    cert::CertificateDetails, endpoint::Host, pin::EndpointRecord, timestamp::Timestamp, Endpoint,
    Policy, Store, TofuError, TofuVerifier,
};
use unicode_width::UnicodeWidthStr;

use super::{host_keyword, read_input, Context, HostKeyword};
use crate::error::{CliError, Exit};
use crate::json::{self, Format};
use crate::output::{self, name, write_json, Out};

/// The largest --from file read.
const MAX_LIST_FILE: u64 = 16 * 1024 * 1024;

/// Check an endpoint's certificate against its pins, with one TLS handshake.
///
/// The handshake goes through the same verifier services use. No application data is sent:
/// the connection is closed right after the handshake. Reports `match` (the certificate is
/// pinned), `promoted` (it was the staged pin, and now is the pin), `renewed` (a renewal
/// with the key of a `--match key` pin, which now holds it), `pinned` (--pin: the
/// endpoint had no pin, and now has this one), `mismatch` (exit status 4, with the full
/// story: what is pinned, what was presented, and the command to accept it) or `not-pinned`
/// (exit status 5, with the command to accept it). Either way the presented certificate is
/// kept in quarantine, so that `accept --fingerprint` pins exactly the certificate checked.
/// Only pinned certificates are accepted, unless --pin is given, which pins what an endpoint
/// that is not pinned yet presents (trust on first use).
///
/// --from FILE probes many endpoints: one per line, `#` starts a comment, and listcerts's
/// own output (`host=10.1.1.1_8082;  subject= ...`) is accepted as it is. It prints one line
/// per endpoint (match, promoted, pinned, mismatch, not-pinned or failed) and a summary, with
/// a progress bar on a terminal, and exits with the most serious status: 4 if any
/// mismatched, else 1 if any failed, else 5 if any is not pinned.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs probe host <HOST> [OPTIONS]\n       \
                            tofu-certs probe --from FILE [OPTIONS]")]
pub(crate) struct Args {
    /// The word `host` (Cisco Prime's syntax).
    #[arg(
        value_name = "host",
        value_parser = host_keyword,
        hide = true,
        requires = "endpoint",
        conflicts_with = "from"
    )]
    keyword: Option<HostKeyword>,

    /// The endpoint, in any form: 10.1.1.1:8082, 10.1.1.1_8082, [fd00::5]:8443,
    /// prime-sec.example.com:443.
    #[arg(value_name = "HOST", required_unless_present = "from")]
    pub(crate) endpoint: Option<Endpoint>,

    /// Probe the endpoints listed in FILE (`-` for standard input), one per line.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,

    /// Pin the certificate of an endpoint that is not pinned yet (trust on first use). A
    /// pinned endpoint is checked as without --pin: a different certificate is a mismatch.
    #[arg(long)]
    pin: bool,

    /// With --pin, what the new pin matches: `certificate` (the exact certificate; the
    /// default) or `key` (its public key, so that a renewal with the same key is accepted and
    /// recorded).
    #[arg(
        long = "match",
        value_name = "WHAT",
        value_enum,
        default_value = "certificate",
        requires = "pin"
    )]
    matches: super::MatchArg,

    /// Give up on an endpoint after this long, connecting and handshaking together
    /// (seconds, or a number with ms or s; from 1ms to a day).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = timeout)]
    timeout: Duration,

    /// Send this server name (SNI) instead of the endpoint's host, for a server reached by
    /// address that expects a name. The pins are still those of the endpoint.
    #[arg(long, value_name = "NAME", value_parser = sni, conflicts_with = "from")]
    sni: Option<String>,

    /// How many endpoints of --from to probe at once.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,

    /// text (for people) or json (one document; with --from, one JSON object per line per
    /// endpoint; the schema is in docs/json.md).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    format: Format,
}

/// `probe --format json`: one endpoint's outcome, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct OutcomeJson<'a> {
    #[serde(flatten)]
    head: json::Head,
    /// match, promoted, renewed, pinned, filled, mismatch, not-pinned or failed.
    outcome: &'static str,
    /// The certificate the endpoint presented; null when the probe failed before it did.
    certificate: Option<json::CertJson<'a>>,
    /// For a mismatch, the pins the certificate matched none of; else empty.
    pinned: Vec<json::PinJson<'a>>,
    /// For a mismatch, what changed: `same-key` (a renewal, likely benign),
    /// `new-key-same-names` or `new-key` (suspicious); else null.
    change: Option<tofu_core::rejection::WhatChanged>,
    /// Whether the presented certificate was kept in quarantine (mismatch, not-pinned).
    quarantined: bool,
    /// Why the probe failed (outcome `failed`), else null.
    error: Option<String>,
    /// For a mismatch of an endpoint with awaited pins (from a fingerprint), those pins;
    /// absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    awaited: Vec<json::AwaitedJson<'a>>,
}

fn timeout(text: &str) -> Result<Duration, String> {
    let (number, unit) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    // At least a millisecond: a zero timeout would fail every probe before it started, and
    // socket timeouts of zero mean "none" to the operating system.
    match number.trim().parse::<f64>() {
        Ok(n) if n * unit >= 0.001 && n * unit <= 86_400.0 => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err("expected a time from 1ms to a day, such as 10, 2.5, 10s or 500ms".into()),
    }
}

fn sni(text: &str) -> Result<String, String> {
    ServerName::try_from(text.to_owned())
        .map(|_| text.to_owned())
        .map_err(|_| format!("{text:?} is not a valid TLS server name"))
}

/// What one handshake showed.
enum Outcome {
    /// The certificate is one of the endpoint's active pins.
    Match(CertificateDetails),
    /// It was the staged pin, and was promoted.
    Promoted(CertificateDetails),
    /// It is a renewal with the key of a key pin, which now holds it.
    Renewed(CertificateDetails),
    /// The endpoint was not pinned; it is now (--pin).
    Pinned(CertificateDetails),
    /// It met an awaited pin (made from a fingerprint), which now holds it.
    Filled(CertificateDetails),
    Mismatch(TofuError),
    NotPinned(TofuError),
    Failed(Failure),
}

impl Outcome {
    /// The outcomes, in the order the summary of `probe --from` lists them.
    const NAMES: [&'static str; 8] = [
        "match",
        "promoted",
        "renewed",
        "pinned",
        "filled",
        "mismatch",
        "not-pinned",
        "failed",
    ];

    fn name(&self) -> &'static str {
        match self {
            Outcome::Match(_) => "match",
            Outcome::Promoted(_) => "promoted",
            Outcome::Renewed(_) => "renewed",
            Outcome::Pinned(_) => "pinned",
            Outcome::Filled(_) => "filled",
            Outcome::Mismatch(_) => "mismatch",
            Outcome::NotPinned(_) => "not-pinned",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The object of `--format json`.
    fn json(&self, endpoint: &Endpoint, now: Timestamp) -> OutcomeJson<'_> {
        let mut doc = OutcomeJson {
            head: json::Head::new(endpoint),
            outcome: self.name(),
            certificate: None,
            pinned: Vec::new(),
            change: None,
            quarantined: false,
            error: None,
            awaited: Vec::new(),
        };
        match self {
            Outcome::Match(d)
            | Outcome::Promoted(d)
            | Outcome::Renewed(d)
            | Outcome::Pinned(d)
            | Outcome::Filled(d) => {
                doc.certificate = Some(json::cert(d, now));
            }
            Outcome::Mismatch(TofuError::Mismatch(m)) => {
                doc.certificate = Some(json::cert(&m.presented, now));
                doc.pinned = json::pins(&m.pinned, now);
                doc.awaited = json::all_awaited(&m.awaited);
                doc.change = Some(m.change());
                doc.quarantined = m.quarantined;
            }
            Outcome::NotPinned(TofuError::NotPinned(n)) => {
                doc.certificate = Some(json::cert(&n.presented, now));
                doc.quarantined = n.quarantined;
            }
            Outcome::Mismatch(e) | Outcome::NotPinned(e) => doc.error = Some(e.to_string()),
            Outcome::Failed(f) => doc.error = Some(f.message()),
        }
        doc
    }

    /// The line of `probe --from`: outcome, endpoint (padded to `width` columns, so that
    /// what follows lines up), and the certificate (the one presented) or the failure.
    fn line(&self, endpoint: &Endpoint, width: usize) -> String {
        let detail = match self {
            Outcome::Match(d)
            | Outcome::Promoted(d)
            | Outcome::Renewed(d)
            | Outcome::Pinned(d)
            | Outcome::Filled(d) => {
                format!("{}  {}", d.fingerprint, name(&d.subject))
            }
            Outcome::Mismatch(e) => match e {
                TofuError::Mismatch(m) => format!(
                    "{}  {}  (pinned: {})",
                    m.presented.fingerprint,
                    name(&m.presented.subject),
                    m.pinned
                        .iter()
                        .map(|p| p.fingerprint().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => other.to_string(),
            },
            Outcome::NotPinned(e) => match e {
                TofuError::NotPinned(n) => {
                    format!(
                        "{}  {}",
                        n.presented.fingerprint,
                        name(&n.presented.subject)
                    )
                }
                other => other.to_string(),
            },
            Outcome::Failed(f) => f.message(),
        };
        let endpoint = endpoint.to_string();
        let pad = width.saturating_sub(endpoint.width());
        format!("{:<10}  {endpoint}{:pad$}  {detail}", self.name(), "")
    }
}

/// Why a probe ended without a verdict on the certificate, kept apart by kind so that the
/// hint fits: a store that failed is not a network problem.
enum Failure {
    /// The pin store could not be read or written.
    Store(Arc<tofu_core::Error>),
    /// The host name did not resolve.
    Resolve { host: String, message: String },
    /// Connecting or the handshake failed on the network (`kind` chooses the hint).
    Network {
        kind: io::ErrorKind,
        message: String,
    },
    /// The server closed the connection during the handshake.
    Closed { message: String },
    /// Another process changed the endpoint's pins during the probe.
    Changed { message: String },
    /// Anything else: a TLS error, an unusable certificate.
    Other { message: String },
}

impl Failure {
    fn store(error: tofu_core::Error) -> Self {
        Failure::Store(Arc::new(error))
    }

    fn message(&self) -> String {
        match self {
            Failure::Store(e) => e.to_string(),
            Failure::Resolve { message, .. }
            | Failure::Network { message, .. }
            | Failure::Closed { message }
            | Failure::Changed { message }
            | Failure::Other { message } => message.clone(),
        }
    }

    /// The error of `probe host`: the message, and the hint that fits its kind.
    fn into_error(self, ctx: &Context, endpoint: &Endpoint, timeout: Duration) -> CliError {
        let message = self.message();
        let hint = match self {
            Failure::Store(e) => return CliError::store(&e, ctx),
            Failure::Resolve { host, .. } => format!(
                "check the host name {host}: it did not resolve to an address (DNS, /etc/hosts)"
            ),
            Failure::Network { kind, .. } => match kind {
                io::ErrorKind::ConnectionRefused => format!(
                    "nothing listens on {endpoint}: check the address and port, and that the \
                     server runs"
                ),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                    "`--timeout SECS` waits longer than {} s",
                    timeout.as_secs_f64()
                ),
                _ => "check the address and port, and that a TLS server listens there".to_owned(),
            },
            Failure::Closed { .. } => format!(
                "check that {endpoint} is a TLS server; `--sni NAME` sends another server name"
            ),
            Failure::Changed { .. } => format!(
                "run the probe again; `{}` shows the endpoint's pins now",
                ctx.cmd(&format!("showcert host {endpoint}"))
            ),
            Failure::Other { .. } => {
                "check that a TLS server listens on the address and port".to_owned()
            }
        };
        CliError::failure(message).hint(hint)
    }
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = if args.pin {
        ctx.open()?
    } else {
        ctx.open_existing()?
    };
    // Pinning needs to write; say so before any connection, as the store error it is.
    if args.pin && store.is_read_only() {
        // The database file for a store directory, as every read-only error names it.
        let path = match store.database_path() {
            Some(file) => file.to_path_buf(),
            None => store.location().to_string().into(),
        };
        let error = tofu_core::Error::ReadOnly { path };
        return Err(CliError::store(&error, ctx));
    }
    let probe = Probe {
        store,
        policy: if args.pin {
            Policy::trust_on_first_use().pin_first_use_matching(args.matches.into())
        } else {
            Policy::strict()
        },
        sni: args.sni.clone(),
        timeout: args.timeout,
    };
    let json = args.format == Format::Json;
    match (&args.from, &args.endpoint) {
        (Some(file), _) => probe_many(ctx, &probe, &read_list(file)?, args.jobs.into(), json),
        (None, Some(endpoint)) => probe_one(ctx, &probe, endpoint, json),
        // clap requires one of them.
        (None, None) => Err(CliError::new(
            Exit::Usage,
            "give an endpoint (`probe host HOST`) or a list (`probe --from FILE`)",
        )),
    }
}

fn probe_one(
    ctx: &Context,
    probe: &Probe,
    endpoint: &Endpoint,
    json: bool,
) -> Result<Exit, CliError> {
    let mut out = Out::stdout();
    let showcert = ctx.cmd(&format!("showcert host {endpoint}"));
    let outcome = probe.run(endpoint);
    if json {
        // The document on stdout whatever the outcome; a refusal or a failure is also told
        // on stderr, with its hint, and in the exit status, as without --format json.
        write_json(&mut out, &outcome.json(endpoint, Timestamp::now()), true)?;
        out.flush()?;
    }
    match outcome {
        Outcome::Match(_)
        | Outcome::Promoted(_)
        | Outcome::Renewed(_)
        | Outcome::Pinned(_)
        | Outcome::Filled(_)
            if json => {}
        Outcome::Match(d) => writeln!(
            out,
            "match: {endpoint} presented its pinned certificate {} ({})",
            d.fingerprint,
            name(&d.subject)
        )?,
        Outcome::Promoted(d) => writeln!(
            out,
            "promoted: {endpoint} presented its staged certificate {} ({}), which is now its pin",
            d.fingerprint,
            name(&d.subject)
        )?,
        Outcome::Renewed(d) => writeln!(
            out,
            "renewed: {endpoint} presented {} ({}), a renewal with its pinned public key {}; \
             the pin now holds it",
            d.fingerprint,
            name(&d.subject),
            d.spki_fingerprint
        )?,
        Outcome::Pinned(d) => writeln!(
            out,
            "pinned: {endpoint} is now pinned to {} ({})",
            d.fingerprint,
            name(&d.subject)
        )?,
        Outcome::Filled(d) => writeln!(
            out,
            "filled: {endpoint} presented {} ({}), the certificate its awaited pin named; the \
             pin now holds it",
            d.fingerprint,
            name(&d.subject)
        )?,
        Outcome::Mismatch(e) => {
            return Err(CliError::new(Exit::Mismatch, e.to_string()).hint(format!(
                "`{showcert}` shows the pinned and the quarantined certificates side by side"
            )))
        }
        Outcome::NotPinned(e) => {
            // The certificate checked is the one pinned: `accept` names it by fingerprint,
            // where `probe --pin` would pin whatever the next handshake presents.
            let hint = match &e {
                TofuError::NotPinned(n) if n.quarantined => format!(
                    "`{}` pins exactly the presented certificate, once the server's \
                     administrator confirmed its fingerprint",
                    ctx.cmd(&format!(
                        "accept host {endpoint} --fingerprint {}",
                        n.presented.fingerprint
                    ))
                ),
                _ => format!(
                    "`{}` pins a certificate file you trust",
                    ctx.cmd(&format!("addcert host {endpoint} --cert FILE"))
                ),
            };
            return Err(CliError::new(Exit::NotPinned, e.to_string()).hint(hint));
        }
        Outcome::Failed(failure) => return Err(failure.into_error(ctx, endpoint, probe.timeout)),
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// The endpoints of a --from file, in order, each once, and how many lines were not one.
struct List {
    endpoints: Vec<Endpoint>,
    /// Lines that are not an endpoint, each reported as it was read; the others are probed.
    bad_lines: usize,
}

/// Reads a --from file. A line that is not an endpoint is reported (its number and why) and
/// skipped, and an endpoint listed again (in any spelling) is reported and probed once; the
/// rest of the list is probed all the same.
fn read_list(file: &std::path::Path) -> Result<List, CliError> {
    let bytes = read_input(file, MAX_LIST_FILE, "the endpoint list")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::failure(format!("the endpoint list {} is not text", file.display()))
            .hint("give a text file with one endpoint per line, such as 10.1.1.1:8082")
    })?;
    let shown = if file == std::path::Path::new("-") {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    };
    let mut list = List {
        endpoints: Vec::new(),
        bad_lines: 0,
    };
    // Each endpoint and the line that first listed it.
    let mut listed: HashMap<Endpoint, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim();
        let item = if let Some(rest) = trimmed.strip_prefix("host=") {
            // listcerts's own output: `host=10.1.1.1_8082;  subject= …`.
            rest.split(';').next().unwrap_or(rest)
        } else {
            let uncommented = trimmed.split('#').next().unwrap_or("").trim();
            uncommented
                .strip_prefix("host ")
                .unwrap_or(uncommented)
                .trim()
        };
        if item.is_empty() {
            continue;
        }
        match item.parse::<Endpoint>() {
            Err(e) => {
                output::error(&format!("{shown} line {number}: {e}"));
                list.bad_lines += 1;
            }
            Ok(endpoint) => match listed.get(&endpoint) {
                Some(first) => output::warning(&format!(
                    "{shown} line {number}: {endpoint} is listed already, on line {first}; \
                     it is probed once"
                )),
                None => {
                    listed.insert(endpoint.clone(), number);
                    list.endpoints.push(endpoint);
                }
            },
        }
    }
    if list.bad_lines > 0 {
        output::hint(
            "give one endpoint per line, such as 10.1.1.1:8082 or 10.1.1.1_8082, and fix or \
             remove the lines above; the rest of the list is probed",
        );
    }
    Ok(list)
}

/// `1 endpoint`, `2 endpoints`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn probe_many(
    ctx: &Context,
    probe: &Probe,
    list: &List,
    jobs: usize,
    json: bool,
) -> Result<Exit, CliError> {
    let endpoints = &list.endpoints;
    let width = endpoints
        .iter()
        .map(|e| e.to_string().width())
        .max()
        .unwrap_or(0);
    let now = Timestamp::now();
    let mut out = Out::stdout();
    let mut progress = Progress::new(endpoints.len());
    let mut results: Vec<Option<Outcome>> = endpoints.iter().map(|_| None).collect();
    let mut printed = 0;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let outcome: Result<(), CliError> = std::thread::scope(|scope| {
        for _ in 0..jobs.min(endpoints.len()) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(endpoint) = endpoints.get(i) else {
                    break;
                };
                if tx.send((i, probe.run(endpoint))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, result) in rx {
            progress.clear();
            if let Outcome::Mismatch(e) = &result {
                output::error(&e.to_string());
            }
            results[i] = Some(result);
            while let Some(Some(done)) = results.get(printed) {
                let endpoint = &endpoints[printed];
                let written = if json {
                    write_json(&mut out, &done.json(endpoint, now), false)
                } else {
                    writeln!(out, "{}", done.line(endpoint, width)).map_err(CliError::from)
                };
                if let Err(e) = written {
                    // A closed pipe stops the remaining probes.
                    next.store(endpoints.len(), Ordering::Relaxed);
                    return Err(e);
                }
                printed += 1;
            }
            out.flush()?;
            progress.step(&endpoints[i]);
        }
        Ok(())
    });
    progress.clear();
    outcome?;

    let count = |name: &str| {
        results
            .iter()
            .filter(|r| r.as_ref().is_some_and(|o| o.name() == name))
            .count()
    };
    let parts: Vec<String> = Outcome::NAMES
        .iter()
        .map(|name| (name, count(name)))
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    let skipped = match list.bad_lines {
        0 => String::new(),
        n => format!("; {} not an endpoint, skipped", plural(n, "line")),
    };
    output::status(&format!(
        "probed {}: {}{skipped}",
        plural(endpoints.len(), "endpoint"),
        if parts.is_empty() {
            "nothing to probe".to_owned()
        } else {
            parts.join(", ")
        }
    ));
    // A line that is not an endpoint is a failure of the list: status 1, unless a mismatch.
    let exit = if count("mismatch") > 0 {
        Exit::Mismatch
    } else if count("failed") > 0 || list.bad_lines > 0 {
        Exit::Failure
    } else if count("not-pinned") > 0 {
        Exit::NotPinned
    } else {
        Exit::Success
    };
    if exit == Exit::Mismatch {
        output::hint(&format!(
            "`{}` lists the endpoints with quarantined certificates",
            ctx.cmd("listcerts --quarantined --format table")
        ));
    }
    // A store that failed fails every endpoint alike: say what to do about it once.
    if let Some(Outcome::Failed(Failure::Store(e))) = results
        .iter()
        .flatten()
        .find(|r| matches!(r, Outcome::Failed(Failure::Store(_))))
    {
        CliError::store(e, ctx).print_hints();
    }
    Ok(exit)
}

/// A progress bar on standard error, drawn only when it is a terminal.
struct Progress {
    total: usize,
    done: usize,
    visible: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            visible: total > 1 && io::stderr().is_terminal(),
        }
    }

    fn step(&mut self, last: &Endpoint) {
        self.done += 1;
        if !self.visible || self.done >= self.total {
            return;
        }
        const WIDTH: usize = 30;
        let filled = WIDTH * self.done / self.total;
        let _ = write!(
            io::stderr().lock(),
            "\r[{}{}] {}/{} {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            self.done,
            self.total,
            last
        );
    }

    fn clear(&self) {
        if self.visible {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

/// How to probe: the store, the policy and the connection settings.
struct Probe {
    store: Arc<Store>,
    policy: Policy,
    sni: Option<String>,
    timeout: Duration,
}

impl Probe {
    fn run(&self, endpoint: &Endpoint) -> Outcome {
        match self.try_run(endpoint) {
            Ok(outcome) => outcome,
            Err(failure) => Outcome::Failed(failure),
        }
        // The verifier is dropped by now, which recorded that the pin was seen.
    }

    fn try_run(&self, endpoint: &Endpoint) -> Result<Outcome, Failure> {
        let before = self.store.endpoint(endpoint).map_err(Failure::store)?;
        // A probe says what the pins decide, even for an endpoint in report-only mode (whose
        // refusal is still recorded as reported, and whose mode every command warns of).
        let mut builder = TofuVerifier::builder(self.store.clone(), endpoint.clone())
            .policy(self.policy.clone())
            .enforce_report_only();
        if let Some(name) = &self.sni {
            builder = builder.server_name(name.clone());
        }
        let verifier = builder.build().map_err(|e| Failure::Other {
            message: format!("cannot probe {endpoint}: {e}"),
        })?;
        let details = match self.handshake(&verifier, endpoint) {
            Ok(details) => details,
            Err(HandshakeError::Tofu(e)) => {
                return match e {
                    TofuError::Mismatch(_) => Ok(Outcome::Mismatch(e)),
                    TofuError::NotPinned(_) => Ok(Outcome::NotPinned(e)),
                    TofuError::Store { error, .. } => Err(Failure::Store(error)),
                    TofuError::Contended { .. } => Err(Failure::Changed {
                        message: e.to_string(),
                    }),
                    other => Err(Failure::Other {
                        message: other.to_string(),
                    }),
                }
            }
            Err(HandshakeError::Failed(failure)) => return Err(failure),
        };
        // The verifier wrote what it did (a first-use pin, a promotion) before the handshake
        // completed, so the store now says what happened.
        let after = self.store.endpoint(endpoint).map_err(Failure::store)?;
        classify(endpoint, &before, &after, details)
    }

    fn handshake(
        &self,
        verifier: &Arc<TofuVerifier>,
        endpoint: &Endpoint,
    ) -> Result<CertificateDetails, HandshakeError> {
        let deadline = Instant::now() + self.timeout;
        let secs = self.timeout.as_secs_f64();
        let sock = connect(endpoint, deadline)?;
        let mut sock = DeadlineStream { sock, deadline };
        let mut conn =
            ClientConnection::new(verifier.client_config(), verifier.server_name().clone())
                .map_err(|e| Failure::Other {
                    message: format!("cannot start TLS with {endpoint}: {e}"),
                })?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                if let Some(tofu) = TofuError::from_io(&e) {
                    return Err(HandshakeError::Tofu(tofu.clone()));
                }
                return Err(match e.kind() {
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Network {
                        kind: io::ErrorKind::TimedOut,
                        message: format!(
                            "{endpoint} did not complete the TLS handshake within {secs} s"
                        ),
                    },
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                        Failure::Closed {
                            message: format!(
                                "{endpoint} closed the connection during the TLS handshake (is \
                                 it a TLS server? does it want a client certificate or another \
                                 server name?)"
                            ),
                        }
                    }
                    // rustls reports TLS errors (an alert, a protocol error) as InvalidData.
                    io::ErrorKind::InvalidData => Failure::Other {
                        message: format!("the TLS handshake with {endpoint} failed: {e}"),
                    },
                    kind => Failure::Network {
                        kind,
                        message: format!("the TLS handshake with {endpoint} failed: {e}"),
                    },
                }
                .into());
            }
        }
        let presented = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or_else(|| Failure::Other {
                message: format!("{endpoint} presented no certificate"),
            })?;
        let details = CertificateDetails::from_der(presented).map_err(|e| Failure::Other {
            message: format!("{endpoint}: {e}"),
        })?;
        // Close politely, without application data; the outcome is known whatever happens.
        conn.send_close_notify();
        let _ = conn.complete_io(&mut sock);
        let _ = sock.sock.shutdown(std::net::Shutdown::Both);
        Ok(details)
    }
}

enum HandshakeError {
    Tofu(TofuError),
    Failed(Failure),
}

impl From<Failure> for HandshakeError {
    fn from(failure: Failure) -> Self {
        HandshakeError::Failed(failure)
    }
}

/// What the accepted handshake did, from the endpoint's record before and after it: where
/// the presented certificate was before (an active pin: a match; the staged pin: promoted;
/// nothing pinned at all: pinned) and that it is an active pin after. Exact for one probe;
/// when another process changed the endpoint in between, that is what is reported, not a
/// guess.
fn classify(
    endpoint: &Endpoint,
    before: &EndpointRecord,
    after: &EndpointRecord,
    details: CertificateDetails,
) -> Result<Outcome, Failure> {
    let fp = details.fingerprint;
    let active_after = after.active().any(|p| p.fingerprint() == fp);
    if before.active().any(|p| p.fingerprint() == fp) {
        Ok(Outcome::Match(details))
    } else if before.staged().any(|p| p.fingerprint() == fp) && active_after {
        Ok(Outcome::Promoted(details))
    } else if before
        .active()
        .any(|p| p.matches_key(&details.spki_fingerprint))
    {
        // A renewal is recorded; an older certificate of the key is accepted as it is.
        match active_after {
            true => Ok(Outcome::Renewed(details)),
            false => Ok(Outcome::Match(details)),
        }
    } else if before
        .staged()
        .any(|p| p.matches_key(&details.spki_fingerprint))
        && after
            .active()
            .any(|p| p.matches_key(&details.spki_fingerprint))
    {
        Ok(Outcome::Promoted(details))
    } else if before.awaited.iter().any(|a| a.is_met_by(&details)) && active_after {
        Ok(Outcome::Filled(details))
    } else if !before.is_pinned() && active_after {
        Ok(Outcome::Pinned(details))
    } else {
        Err(Failure::Changed {
            message: format!(
                "the pins of {endpoint} changed during the probe (another process changed \
                 them), so what the probe did is not known; the endpoint presented {fp}"
            ),
        })
    }
}

fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = match endpoint.host() {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, endpoint.port())],
        Host::Dns(name) => {
            let unresolved = |why: String| Failure::Resolve {
                host: name.to_string(),
                message: format!("cannot connect to {endpoint}: {why}"),
            };
            let addrs: Vec<SocketAddr> = (name.as_str(), endpoint.port())
                .to_socket_addrs()
                .map_err(|e| unresolved(format!("{name} does not resolve: {e}")))?
                .collect();
            if addrs.is_empty() {
                return Err(unresolved(format!("{name} has no address")));
            }
            addrs
        }
    };
    let mut last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
    for addr in addrs {
        let Some(left) = remaining(deadline) else {
            last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                return Ok(sock);
            }
            // A name may resolve to several addresses: say which one failed.
            Err(e) if matches!(endpoint.host(), Host::Dns(_)) => {
                last = io::Error::new(e.kind(), format!("{addr}: {e}"))
            }
            Err(e) => last = e,
        }
    }
    Err(Failure::Network {
        kind: last.kind(),
        message: format!("cannot connect to {endpoint}: {last}"),
    })
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// A socket whose reads and writes all end by one deadline, so that --timeout bounds the
/// whole handshake, not each read.
struct DeadlineStream {
    sock: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn arm(&self, read: bool) -> io::Result<()> {
        let left = remaining(self.deadline)
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))?;
        if read {
            self.sock.set_read_timeout(Some(left))
        } else {
            self.sock.set_write_timeout(Some(left))
        }
    }
}

fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        _ => e,
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true)?;
        self.sock.read(buf).map_err(timed_out)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false)?;
        self.sock.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tofu_core::{
        pin::{Pin, PinSource, PinState},
        timestamp::Timestamp,
    };

    fn details(cn: &str) -> CertificateDetails {
        let key = rcgen::KeyPair::generate().expect("key generation");
        let cert = rcgen::CertificateParams::new(vec![cn.to_owned()])
            .expect("valid SAN")
            .self_signed(&key)
            .expect("self-signed");
        CertificateDetails::from_der(cert.der()).expect("rcgen makes valid certificates")
    }

    fn record(pins: &[(&CertificateDetails, PinState)]) -> EndpointRecord {
        EndpointRecord {
            pins: pins
                .iter()
                .map(|(d, state)| Pin {
                    endpoint: "10.1.1.1:8082".parse().expect("an endpoint"),
                    state: *state,
                    der: Vec::new().into(),
                    details: (*d).clone(),
                    pinned_at: Timestamp::from_unix(0),
                    first_seen: None,
                    last_seen: None,
                    times_seen: 0,
                    source: PinSource::Operator,
                    label: None,
                    matches: tofu_core::pin::PinMatch::Certificate,
                })
                .collect(),
            quarantined: Vec::new(),
            awaited: Vec::new(),
            report_only: None,
        }
    }

    fn name(
        before: &EndpointRecord,
        after: &EndpointRecord,
        d: &CertificateDetails,
    ) -> &'static str {
        let endpoint = "10.1.1.1:8082".parse().expect("an endpoint");
        match classify(&endpoint, before, after, d.clone()) {
            Ok(outcome) => outcome.name(),
            Err(Failure::Changed { .. }) => "changed",
            Err(_) => "other failure",
        }
    }

    #[test]
    fn the_outcome_is_read_from_the_store_before_and_after_the_handshake() {
        use PinState::{Active, Next};
        let (a, b) = (details("a"), details("b"));
        let empty = record(&[]);
        // What one probe alone does.
        assert_eq!(
            name(&record(&[(&a, Active)]), &record(&[(&a, Active)]), &a),
            "match"
        );
        assert_eq!(
            name(
                &record(&[(&a, Active), (&b, Next)]),
                &record(&[(&a, Active), (&b, Next)]),
                &a
            ),
            "match"
        );
        assert_eq!(
            name(
                &record(&[(&a, Active), (&b, Next)]),
                &record(&[(&b, Active)]),
                &b
            ),
            "promoted"
        );
        assert_eq!(name(&empty, &record(&[(&a, Active)]), &a), "pinned");
        // Another process changed the endpoint meanwhile: said so, not guessed.
        assert_eq!(
            name(&record(&[(&a, Active)]), &record(&[(&b, Active)]), &b),
            "changed"
        );
        assert_eq!(name(&empty, &empty, &a), "changed");
        assert_eq!(name(&record(&[(&b, Next)]), &empty, &b), "changed");
        assert_eq!(
            name(&record(&[(&b, Active)]), &record(&[(&a, Active)]), &a),
            "changed"
        );
    }
}
