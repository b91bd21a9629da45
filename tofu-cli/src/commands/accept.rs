//! `tofu-certs accept host <HOST> --fingerprint FP`: trusts a quarantined certificate.

use std::io::Write;

use tofu_core::{
    pin::{PinMatch, PinSource, PinState},
    timestamp::Timestamp,
    Fingerprint,
};

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
/// When no quarantined certificate of the endpoint has that fingerprint (it was pushed out
/// of the quarantine, or discarded by deletecert), the fingerprint is pinned as an awaited
/// next pin instead, as `addcert --fingerprint FP --next` does, and accept says so: the
/// first connection that presents that certificate, once the server proved it holds its key,
/// makes it the endpoint's pin and retires the active pins; until then any other
/// certificate, the old one included, is still judged against the active pins. Status 3,
/// changing nothing, when the fingerprint is already a pin of the endpoint or awaited.
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
    accepted: Option<json::PinJson<'a>>,
    retired: Vec<json::PinJson<'a>>,
    /// The awaited pin made when the certificate was no longer in quarantine (then
    /// `accepted` is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    awaited: Option<json::AwaitedJson<'a>>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    let store = ctx.open_existing()?;
    let promoted =
        match store.accept_quarantined_matching(endpoint, &args.fingerprint, args.matches.into()) {
            Err(tofu_core::Error::NotQuarantined { .. }) => {
                return accept_awaited(ctx, &args, &store)
            }
            other => other.map_err(|e| CliError::store(&e, ctx))?,
        };
    let mut out = Out::stdout();
    if args.format.json() {
        let now = Timestamp::now();
        let doc = Document {
            head: json::Head::new(endpoint),
            accepted: Some(json::pin(&promoted.pin, now)),
            retired: json::pins(&promoted.retired, now),
            awaited: None,
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
    if promoted.pin.matches == PinMatch::Key {
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

/// The certificate is not in quarantine (any more): pins its fingerprint as an awaited next
/// pin, which the first handshake presenting it fills in, retiring the active pins.
fn accept_awaited(ctx: &Context, args: &Args, store: &tofu_core::Store) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    let fp = &args.fingerprint;
    if PinMatch::from(args.matches) == PinMatch::Key {
        // The fingerprint is the certificate's; its key is not known without the certificate.
        return Err(CliError::new(
            Exit::NotFound,
            format!(
                "{endpoint} has no quarantined certificate with fingerprint {fp}, so its public \
                 key is not known; nothing was changed"
            ),
        )
        .hint(format!(
            "to pin the certificate itself until it is presented: `{}`",
            ctx.cmd(&format!("accept host {endpoint} --fingerprint {fp}"))
        ))
        .hint(format!(
            "to pin its public key, give the key's SHA-256: `{}`",
            ctx.cmd(&format!(
                "addcert host {endpoint} --fingerprint SPKI_SHA256 --match key --next"
            ))
        )));
    }
    let awaited = match store.await_pin_from(
        endpoint,
        fp,
        PinMatch::Certificate,
        PinState::Next,
        false,
        None,
        PinSource::Accepted,
    ) {
        // Already trusted, or already awaited (another operator, a moment ago): nothing to
        // accept, as when nothing is quarantined.
        Err(
            e @ (tofu_core::Error::AlreadyPinned { .. } | tofu_core::Error::AlreadyAwaited { .. }),
        ) => {
            return Err(CliError::new(Exit::NotFound, e.to_string()).hint(format!(
                "`{}` shows the endpoint's pins",
                ctx.cmd(&format!("showcert host {endpoint}"))
            )))
        }
        other => other.map_err(|e| CliError::store(&e, ctx))?,
    };
    let mut out = Out::stdout();
    if args.format.json() {
        let doc = Document {
            head: json::Head::new(endpoint),
            accepted: None,
            retired: Vec::new(),
            awaited: Some(json::awaited(&awaited)),
        };
        write_json(&mut out, &doc, true)?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "{fp} is not in the quarantine of {endpoint} (any more), so it is pinned as awaited: \
         the first connection that presents that certificate (and proves it holds its key) \
         makes it the pin of {endpoint} and retires the active pins"
    )?;
    out.flush()?;
    Ok(Exit::Success)
}
