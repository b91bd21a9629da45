//! `tofu-certs accept host <HOST> --fingerprint FP`: trusts a quarantined certificate.

use std::io::Write;

use tofu_core::{timestamp::Timestamp, Fingerprint};

use super::{Context, HostArgs, MatchArg};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{name, write_json, Out};

/// Trust, by fingerprint, the certificate an endpoint presented in place of its pin.
///
/// Do this once you know the change is legitimate (a new CSR, a redeployed server, an HA
/// re-registration). When an endpoint presents a certificate that matches none of its pins, the connection is
/// refused and the certificate is kept in quarantine; `showcert` lists it with its
/// fingerprint. `accept` makes exactly that certificate the endpoint's pin and retires the
/// active pins (staged pins are kept). Because the certificate is named by fingerprint, a
/// different certificate presented in the meantime can never be accepted by mistake.
///
/// Exits with status 3, changing nothing, when no quarantined certificate of the endpoint
/// has that fingerprint.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs accept host <HOST> --fingerprint FP [OPTIONS]")]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) host: HostArgs,

    /// The SHA-256 fingerprint of the quarantined certificate (SHA256:… as showcert and the
    /// mismatch message print it, or hex as openssl prints it).
    #[arg(long, value_name = "FP", value_parser = super::certificate_fingerprint)]
    fingerprint: Fingerprint,

    /// What the new pin matches: `certificate` (exactly the accepted certificate; the
    /// default) or `key` (its public key, so that its renewals with the same key are accepted
    /// and recorded).
    #[arg(
        long = "match",
        value_name = "WHAT",
        value_enum,
        default_value = "certificate"
    )]
    matches: MatchArg,

    #[command(flatten)]
    format: FormatArg,
}

/// `accept --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    head: json::Head,
    accepted: json::PinJson<'a>,
    retired: Vec<json::PinJson<'a>>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    let store = ctx.open_existing()?;
    let promoted = store
        .accept_quarantined_matching(endpoint, &args.fingerprint, args.matches.into())
        .map_err(|e| CliError::store(&e, ctx))?;
    let mut out = Out::stdout();
    if args.format.json() {
        let now = Timestamp::now();
        let doc = Document {
            head: json::Head::new(endpoint),
            accepted: json::pin(&promoted.pin, now),
            retired: json::pins(&promoted.retired, now),
        };
        write_json(&mut out, &doc, true)?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    let d = &promoted.pin.details;
    writeln!(
        out,
        "accepted {} ({}): it is now the pin of {endpoint}",
        d.fingerprint,
        name(&d.subject)
    )?;
    if promoted.pin.matches == tofu_core::pin::PinMatch::Key {
        writeln!(
            out,
            "the pin matches the public key {}: a certificate renewed with it is accepted too",
            d.spki_fingerprint
        )?;
    }
    for old in &promoted.retired {
        writeln!(
            out,
            "retired {} ({})",
            old.details.fingerprint,
            name(&old.details.subject)
        )?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
