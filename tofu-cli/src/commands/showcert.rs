//! `tofu-certs showcert host <HOST>`: everything stored for one endpoint.

use std::io::Write;

use tofu_core::{
    cert::{to_pem, CertificateDetails},
    pin::PinState,
    timestamp::Timestamp,
};

use super::{Context, HostArgs};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{name, printable, state_name, write_json, Out, Style};

/// Show everything stored for an endpoint: pins, staged pins, quarantined certificates.
///
/// Quarantined certificates are those the endpoint presented that matched none of its pins
/// (or that a strict probe refused before it had any); they stay until accepted, pinned or
/// deleted. For each certificate: fingerprints (SHA-256 of the certificate, as OpenSSH and OpenSSL
/// print it, and of its public key), subject, issuer, names, validity, and for pins when
/// they were pinned, first and last presented, how often, how and by whom (source), and the
/// label. `--pem` prints the certificates themselves instead, to pipe into openssl.
///
/// A pin made from a fingerprint (addcert --fingerprint) is shown as awaited: the fingerprint
/// it waits for and no subject, until the first handshake that presents a matching
/// certificate fills it in. `--pem` has no certificate to print for it.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs showcert host <HOST> [OPTIONS]")]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) host: HostArgs,

    /// Print the certificates as PEM (pins first, then quarantined), each after a line
    /// `# ENDPOINT STATE FINGERPRINT` (state: active, staged or quarantined), e.g. for
    /// `| openssl x509 -noout -text`.
    #[arg(long)]
    pem: bool,

    #[command(flatten)]
    format: FormatArg,
}

/// `showcert --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    head: json::Head,
    pins: Vec<json::PinJson<'a>>,
    quarantined: Vec<json::QuarantinedJson<'a>>,
    awaited: Vec<json::AwaitedJson<'a>>,
    /// `null`, or since when and by whom the endpoint is in report-only mode.
    report_only: Option<ReportOnlyJson<'a>>,
}

#[derive(serde::Serialize)]
struct ReportOnlyJson<'a> {
    since: tofu_core::timestamp::Timestamp,
    actor: &'a str,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    if args.pem && args.format.json() {
        return Err(CliError::new(
            Exit::Usage,
            "--pem and --format json are two different outputs; give one",
        )
        .hint(format!(
            "`{}` has the certificates' details; `{}` the certificates themselves",
            ctx.cmd(&format!("showcert host {endpoint} --format json")),
            ctx.cmd(&format!("showcert host {endpoint} --pem"))
        )));
    }
    let store = ctx.open_existing()?;
    let record = store
        .endpoint(endpoint)
        .map_err(|e| CliError::store(&e, ctx))?;
    if record.pins.is_empty() && record.quarantined.is_empty() && record.awaited.is_empty() {
        return Err(CliError::new(
            Exit::NotFound,
            format!(
                "nothing is stored for {endpoint}: it has no pin and no quarantined certificate"
            ),
        )
        .hint(format!(
            "`{}` lists the pinned endpoints; `{}` pins what it presents now",
            ctx.cmd("listcerts"),
            ctx.cmd(&format!("probe host {endpoint} --pin"))
        )));
    }

    let mut out = Out::stdout();
    if args.pem {
        for pin in &record.pins {
            writeln!(
                out,
                "# {} {} {}\n{}",
                endpoint,
                state_name(pin.state),
                pin.details.fingerprint,
                to_pem(&pin.der)
            )?;
        }
        for q in &record.quarantined {
            writeln!(
                out,
                "# {} quarantined {}\n{}",
                endpoint,
                q.details.fingerprint,
                to_pem(&q.der)
            )?;
        }
        out.flush()?;
        return Ok(Exit::Success);
    }

    let now = Timestamp::now();
    if args.format.json() {
        let doc = Document {
            head: json::Head::new(endpoint),
            pins: json::pins(&record.pins, now),
            quarantined: json::all_quarantined(&record.quarantined, now),
            awaited: json::all_awaited(&record.awaited),
            report_only: record.report_only.as_ref().map(|m| ReportOnlyJson {
                since: m.since,
                actor: &m.actor,
            }),
        };
        write_json(&mut out, &doc, true)?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "{} (host={})",
        out.paint(Style::Bold, &endpoint.to_string()),
        endpoint.host_port()
    )?;
    for pin in &record.pins {
        let style = match pin.state {
            PinState::Active => Style::Green,
            PinState::Next => Style::Yellow,
        };
        let heading = out.paint(style, &format!("{} pin", state_name(pin.state)));
        writeln!(out, "\n{heading}")?;
        write_details(&mut out, &pin.details, now)?;
        field(&mut out, "pinned at", &pin.pinned_at.to_string())?;
        field(&mut out, "first seen", &seen(pin.first_seen))?;
        field(&mut out, "last seen", &seen(pin.last_seen))?;
        field(&mut out, "times seen", &pin.times_seen.to_string())?;
        field(&mut out, "source", pin.source.as_str())?;
        let matches = match pin.matches {
            tofu_core::pin::PinMatch::Certificate => "this certificate",
            tofu_core::pin::PinMatch::Key => "its public key (renewals with it match)",
        };
        field(&mut out, "matches", matches)?;
        if let Some(label) = &pin.label {
            field(&mut out, "label", &printable(label))?;
        }
    }
    for a in &record.awaited {
        let heading = match a.state {
            PinState::Active => "awaited pin (from a fingerprint; no certificate presented yet)",
            PinState::Next => {
                "awaited next pin (from a fingerprint; replaces the active pins when presented)"
            }
        };
        writeln!(out, "\n{}", out.paint(Style::Yellow, heading))?;
        match a.matches {
            tofu_core::pin::PinMatch::Certificate => {
                field(&mut out, "fingerprint", &a.fingerprint.to_string())?;
                field(&mut out, "sha256 (openssl)", &a.fingerprint.to_hex_colons())?;
            }
            tofu_core::pin::PinMatch::Key => {
                field(&mut out, "public key sha256", &a.fingerprint.to_string())?;
            }
        }
        field(&mut out, "subject", "none yet (no certificate presented)")?;
        field(&mut out, "pinned at", &a.pinned_at.to_string())?;
        field(&mut out, "source", a.source.as_str())?;
        let matches = match a.matches {
            tofu_core::pin::PinMatch::Certificate => "the certificate with this fingerprint",
            tofu_core::pin::PinMatch::Key => "any certificate with this public key",
        };
        field(&mut out, "matches", matches)?;
        if let Some(label) = &a.label {
            field(&mut out, "label", &printable(label))?;
        }
    }
    for q in &record.quarantined {
        let heading = out.paint(
            Style::Red,
            "quarantined certificate (presented, matched no pin, not trusted)",
        );
        writeln!(out, "\n{heading}")?;
        write_details(&mut out, &q.details, now)?;
        field(&mut out, "first seen", &q.first_seen.to_string())?;
        field(&mut out, "last seen", &q.last_seen.to_string())?;
        field(&mut out, "times seen", &q.times_seen.to_string())?;
        field(
            &mut out,
            "to trust it",
            &ctx.cmd(&format!(
                "accept host {endpoint} --fingerprint {}",
                q.details.fingerprint
            )),
        )?;
    }
    out.flush()?;
    Ok(Exit::Success)
}

fn seen(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "never".to_owned(), |t| t.to_string())
}

fn field(out: &mut Out, name: &str, value: &str) -> std::io::Result<()> {
    writeln!(out, "  {name:<17} {value}")
}

fn write_details(out: &mut Out, d: &CertificateDetails, now: Timestamp) -> std::io::Result<()> {
    field(out, "fingerprint", &d.fingerprint.to_string())?;
    field(out, "sha256 (openssl)", &d.fingerprint.to_hex_colons())?;
    field(out, "public key sha256", &d.spki_fingerprint.to_string())?;
    field(out, "subject", &name(&d.subject))?;
    field(out, "issuer", &name(&d.issuer))?;
    let names = if d.sans.is_empty() {
        "none".to_owned()
    } else {
        d.sans
            .iter()
            .map(|san| name(san))
            .collect::<Vec<_>>()
            .join(", ")
    };
    field(out, "names", &names)?;
    field(out, "not before", &d.not_before.to_string())?;
    let days = now.days_until(d.not_after);
    let plural = |n: i64| if n == 1 { "" } else { "s" };
    let left = if days < 0 {
        out.paint(
            Style::Red,
            &format!("expired {} day{} ago", -days, plural(-days)),
        )
    } else {
        let text = format!("{days} day{} left", plural(days));
        if days < 30 {
            out.paint(Style::Yellow, &text)
        } else {
            text
        }
    };
    field(out, "not after", &format!("{} ({left})", d.not_after))
}
