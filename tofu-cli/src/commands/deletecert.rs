//! `tofu-certs deletecert host <HOST>`: removes an endpoint's pins.

use std::io::Write;

use tofu_core::{
    cert::CertificateDetails,
    pin::{AwaitedPin, Pin, Quarantined},
    timestamp::Timestamp,
    Endpoint, Fingerprint,
};

use super::{Context, HostArgs};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{name, state_name, write_json, Out};

/// Delete the pins of an endpoint, as Cisco Prime's `deletecert host 10.1.1.1_8082` does.
///
/// Removes the endpoint's active and staged pins and its quarantined certificates, and prints
/// each one removed. The next connection to the endpoint then pins whatever it presents
/// (under the trust-on-first-use policy). Give the endpoint as listcerts prints it
/// (10.1.1.1_8082) or in any other form (10.1.1.1:8082).
///
/// With --fingerprint, removes only that pin, for an endpoint with several (an HA pair behind
/// one address, or an active pin and a staged one). An awaited pin (addcert --fingerprint,
/// no certificate presented yet) is removed by the fingerprint it awaits.
///
/// Exits with status 3, changing nothing, when there is nothing to remove.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs deletecert host <HOST> [OPTIONS]")]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) host: HostArgs,

    /// Remove only the pin with this SHA-256 fingerprint (SHA256:… as showcert prints it, or
    /// hex as openssl prints it).
    #[arg(long, value_name = "FP", value_parser = super::certificate_fingerprint)]
    fingerprint: Option<Fingerprint>,

    #[command(flatten)]
    format: FormatArg,
}

/// `deletecert --format json`, schema version 1 (docs/json.md): what was removed.
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    head: json::Head,
    removed: Removed<'a>,
}

#[derive(serde::Serialize)]
struct Removed<'a> {
    pins: Vec<json::PinJson<'a>>,
    quarantined: Vec<json::QuarantinedJson<'a>>,
    awaited: Vec<json::AwaitedJson<'a>>,
}

fn write_document(
    out: &mut Out,
    endpoint: &Endpoint,
    pins: &[Pin],
    quarantined: &[Quarantined],
    awaited: &[AwaitedPin],
) -> Result<(), CliError> {
    let now = Timestamp::now();
    let doc = Document {
        head: json::Head::new(endpoint),
        removed: Removed {
            pins: json::pins(pins, now),
            quarantined: json::all_quarantined(quarantined, now),
            awaited: json::all_awaited(awaited),
        },
    };
    write_json(out, &doc, true)
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    let store = ctx.open_existing()?;
    let mut out = Out::stdout();
    let line = |what: &str, d: &CertificateDetails| {
        format!(
            "removed {what} host={};  subject= {}  ({})",
            endpoint.host_port(),
            name(&d.subject),
            d.fingerprint
        )
    };

    if let Some(fp) = &args.fingerprint {
        return match store
            .remove_pin(endpoint, fp)
            .map_err(|e| CliError::store(&e, ctx))?
        {
            Some(pin) if args.format.json() => {
                write_document(&mut out, endpoint, std::slice::from_ref(&pin), &[], &[])?;
                out.flush()?;
                Ok(Exit::Success)
            }
            Some(pin) => {
                writeln!(
                    out,
                    "{}",
                    line(&format!("{} pin", state_name(pin.state)), &pin.details)
                )?;
                out.flush()?;
                Ok(Exit::Success)
            }
            None => match store
                .remove_awaited(endpoint, fp)
                .map_err(|e| CliError::store(&e, ctx))?
            {
                Some(a) if args.format.json() => {
                    write_document(&mut out, endpoint, &[], &[], std::slice::from_ref(&a))?;
                    out.flush()?;
                    Ok(Exit::Success)
                }
                Some(a) => {
                    writeln!(out, "{}", awaited_line(&a))?;
                    out.flush()?;
                    Ok(Exit::Success)
                }
                None => Err(CliError::new(
                    Exit::NotFound,
                    format!("{endpoint} has no pin with fingerprint {fp}; nothing was removed"),
                )
                .hint(format!(
                    "`{}` shows the endpoint's pins and their fingerprints",
                    ctx.cmd(&format!("showcert host {endpoint}"))
                ))),
            },
        };
    }

    let removed = store
        .remove_endpoint(endpoint)
        .map_err(|e| CliError::store(&e, ctx))?;
    if removed.pins.is_empty() && removed.quarantined.is_empty() && removed.awaited.is_empty() {
        return Err(CliError::new(
            Exit::NotFound,
            format!("{endpoint} is not pinned; nothing was removed"),
        )
        .hint(format!(
            "`{}` lists the pinned endpoints, in the form deletecert takes",
            ctx.cmd("listcerts")
        )));
    }
    if args.format.json() {
        write_document(
            &mut out,
            endpoint,
            &removed.pins,
            &removed.quarantined,
            &removed.awaited,
        )?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    for pin in &removed.pins {
        writeln!(
            out,
            "{}",
            line(&format!("{} pin", state_name(pin.state)), &pin.details)
        )?;
    }
    for a in &removed.awaited {
        writeln!(out, "{}", awaited_line(a))?;
    }
    for q in &removed.quarantined {
        writeln!(out, "{}", line("quarantined", &q.details))?;
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// `removed awaited pin host=…;  subject= (awaited: no certificate yet, FP)`, in the form of
/// the other lines.
fn awaited_line(a: &AwaitedPin) -> String {
    format!(
        "removed {} pin host={};  subject= (awaited: no certificate yet)  ({})",
        super::listcerts::awaited_state(a).replace('-', " "),
        a.endpoint.host_port(),
        super::listcerts::awaited_what(a)
    )
}
