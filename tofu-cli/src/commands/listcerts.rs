//! `tofu-certs listcerts`: the pins of the store, one line per pin.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;

use rustls::pki_types::CertificateDer;
use tofu_core::{Endpoint, Pin, PinState, Quarantined, Timestamp};

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{date, paint, printable, state_name, write_json, Out, Style};

/// List the pinned certificates, one line per pin, sorted by endpoint
///
/// The default format is exactly that of Cisco Prime Infrastructure's `ncs certvalidation
/// tofu-certs listcerts`:
///
///     host=10.1.1.1_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri
///
/// the endpoint in Prime's host_port form (which deletecert, showcert and the other commands
/// accept as it is), and the subject as `openssl x509 -noout -subject -nameopt compat` prints
/// it. Staged pins (addcert --next) are listed too, after the endpoint's active pins; `--format
/// table` shows which is which, with fingerprints, expiry, use and quarantined certificates.
/// `--format json` is for scripts; its schema is in the README.
///
/// Endpoints sort by host (names alphabetically, then addresses numerically), then port.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// How to print: prime (Cisco Prime's listcerts), table (for people), json (for scripts).
    #[arg(long, value_enum, default_value_t = Format::Prime)]
    format: Format,

    /// Only pins whose certificate expires within DAYS days (or has expired).
    #[arg(long, value_name = "DAYS")]
    expiring_within: Option<u32>,

    /// Only endpoints that presented a certificate matching none of their pins (kept in
    /// quarantine until accepted or deleted).
    #[arg(long)]
    quarantined: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Prime,
    Table,
    Json,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let now = Timestamp::now();

    // Certificates' DER is not printed; drop it so a large store lists in little memory.
    let mut quarantined: BTreeMap<Endpoint, Vec<Quarantined>> = BTreeMap::new();
    store
        .for_each_quarantined(|mut q| {
            q.der = CertificateDer::from(Vec::new());
            quarantined.entry(q.endpoint.clone()).or_default().push(q);
            ControlFlow::Continue(())
        })
        .map_err(|e| CliError::store(&e, ctx))?;

    let deadline = args
        .expiring_within
        .map(|days| Timestamp::from_unix(now.unix().saturating_add(i64::from(days) * 86_400)));
    let mut pins = Vec::new();
    store
        .for_each_pin(|mut pin| {
            let expiring = deadline.map_or(true, |d| pin.details.not_after <= d);
            let flagged = !args.quarantined || quarantined.contains_key(&pin.endpoint);
            if expiring && flagged {
                pin.der = CertificateDer::from(Vec::new());
                pins.push(pin);
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| CliError::store(&e, ctx))?;
    // The store orders endpoints as text; people expect 10.1.1.9 before 10.1.1.10. The sort is
    // stable, so each endpoint keeps its active pins before its staged ones.
    pins.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));

    // The quarantined certificates shown: all of them, unless --expiring-within narrowed the
    // pins, in which case those of the endpoints still listed.
    if deadline.is_some() {
        quarantined.retain(|ep, _| pins.iter().any(|p| p.endpoint == *ep));
    }

    let mut out = Out::stdout();
    match args.format {
        Format::Prime => prime(&mut out, &pins)?,
        Format::Table => table(&mut out, &pins, &quarantined, now)?,
        Format::Json => json(&mut out, &pins, &quarantined, now)?,
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// `host=10.1.1.1_8082;  subject= /C=US/…`, byte for byte as Prime prints it.
fn prime(out: &mut Out, pins: &[Pin]) -> std::io::Result<()> {
    for pin in pins {
        writeln!(
            out,
            "host={};  subject= {}",
            pin.endpoint.host_port(),
            pin.details.subject
        )?;
    }
    Ok(())
}

fn days_left(now: Timestamp, not_after: Timestamp) -> i64 {
    now.days_until(not_after)
}

fn table(
    out: &mut Out,
    pins: &[Pin],
    quarantined: &BTreeMap<Endpoint, Vec<Quarantined>>,
    now: Timestamp,
) -> std::io::Result<()> {
    const HEADER: [&str; 10] = [
        "ENDPOINT",
        "STATE",
        "FINGERPRINT",
        "NOT AFTER",
        "DAYS",
        "FIRST SEEN",
        "LAST SEEN",
        "SEEN",
        "SOURCE",
        "LABEL",
    ];
    let never = || "-".to_owned();
    let mut rows: Vec<(Endpoint, [String; 10])> = pins
        .iter()
        .map(|p| {
            (
                p.endpoint.clone(),
                [
                    p.endpoint.to_string(),
                    state_name(p.state).to_owned(),
                    p.details.fingerprint.to_string(),
                    date(p.details.not_after),
                    days_left(now, p.details.not_after).to_string(),
                    p.first_seen.map_or_else(never, date),
                    p.last_seen.map_or_else(never, date),
                    p.times_seen.to_string(),
                    p.source.to_string(),
                    p.label.as_deref().map_or_else(never, printable),
                ],
            )
        })
        .collect();
    for (endpoint, qs) in quarantined {
        for q in qs {
            rows.push((
                endpoint.clone(),
                [
                    endpoint.to_string(),
                    "quarantined".to_owned(),
                    q.details.fingerprint.to_string(),
                    date(q.details.not_after),
                    days_left(now, q.details.not_after).to_string(),
                    date(q.first_seen),
                    date(q.last_seen),
                    q.times_seen.to_string(),
                    "-".to_owned(),
                    "-".to_owned(),
                ],
            ));
        }
    }
    // Quarantined certificates come right after their endpoint's pins.
    rows.sort_by(|a, b| a.0.cmp(&b.0));

    let mut widths = HEADER.map(str::len);
    for (_, row) in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let colour = out.colour();
    let line = |cells: [&str; 10], styles: [Option<Style>; 10]| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let last = i == cells.len() - 1;
            let pad = if last {
                String::new()
            } else {
                " ".repeat(widths[i] - cell.chars().count() + 2)
            };
            match styles[i] {
                Some(style) => s.push_str(&paint(colour, style, cell)),
                None => s.push_str(cell),
            }
            s.push_str(&pad);
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(HEADER, [Some(Style::Bold); 10]))?;
    for (_, row) in &rows {
        let mut styles = [None; 10];
        styles[1] = match row[1].as_str() {
            "quarantined" => Some(Style::Red),
            "staged" => Some(Style::Yellow),
            _ => None,
        };
        let days: i64 = row[4].parse().unwrap_or(0);
        styles[4] = if days < 0 {
            Some(Style::Red)
        } else if days < 30 {
            Some(Style::Yellow)
        } else {
            None
        };
        let cells = [
            &*row[0], &*row[1], &*row[2], &*row[3], &*row[4], &*row[5], &*row[6], &*row[7],
            &*row[8], &*row[9],
        ];
        let text = line(cells, styles);
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// The JSON document of `listcerts --format json` (schema version 1, in the README).
#[derive(serde::Serialize)]
pub(crate) struct JsonListing<'a> {
    version: u32,
    pins: Vec<JsonPin<'a>>,
    quarantined: Vec<JsonQuarantined<'a>>,
}

#[derive(serde::Serialize)]
struct JsonCert<'a> {
    fingerprint: String,
    spki_fingerprint: String,
    subject: &'a str,
    issuer: &'a str,
    sans: &'a [String],
    not_before: Timestamp,
    not_after: Timestamp,
    days_left: i64,
}

#[derive(serde::Serialize)]
struct JsonPin<'a> {
    endpoint: String,
    host_port: String,
    state: PinState,
    #[serde(flatten)]
    cert: JsonCert<'a>,
    pinned_at: Timestamp,
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
    times_seen: u64,
    source: tofu_core::PinSource,
    label: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct JsonQuarantined<'a> {
    endpoint: String,
    host_port: String,
    #[serde(flatten)]
    cert: JsonCert<'a>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    times_seen: u64,
}

fn json_cert(d: &tofu_core::CertificateDetails, now: Timestamp) -> JsonCert<'_> {
    JsonCert {
        fingerprint: d.fingerprint.to_string(),
        spki_fingerprint: d.spki_fingerprint.to_string(),
        subject: &d.subject,
        issuer: &d.issuer,
        sans: &d.sans,
        not_before: d.not_before,
        not_after: d.not_after,
        days_left: days_left(now, d.not_after),
    }
}

pub(crate) fn json_listing<'a>(
    pins: &'a [Pin],
    quarantined: impl IntoIterator<Item = &'a Quarantined>,
    now: Timestamp,
) -> JsonListing<'a> {
    JsonListing {
        version: 1,
        pins: pins
            .iter()
            .map(|p| JsonPin {
                endpoint: p.endpoint.to_string(),
                host_port: p.endpoint.host_port(),
                state: p.state,
                cert: json_cert(&p.details, now),
                pinned_at: p.pinned_at,
                first_seen: p.first_seen,
                last_seen: p.last_seen,
                times_seen: p.times_seen,
                source: p.source,
                label: p.label.as_deref(),
            })
            .collect(),
        quarantined: quarantined
            .into_iter()
            .map(|q| JsonQuarantined {
                endpoint: q.endpoint.to_string(),
                host_port: q.endpoint.host_port(),
                cert: json_cert(&q.details, now),
                first_seen: q.first_seen,
                last_seen: q.last_seen,
                times_seen: q.times_seen,
            })
            .collect(),
    }
}

fn json(
    out: &mut Out,
    pins: &[Pin],
    quarantined: &BTreeMap<Endpoint, Vec<Quarantined>>,
    now: Timestamp,
) -> Result<(), CliError> {
    let listing = json_listing(pins, quarantined.values().flatten(), now);
    write_json(out, &listing, true)
}
