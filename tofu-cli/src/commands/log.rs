//! `tofu-certs log [host <HOST>]`: the audit trail.

use std::io::Write;
use std::ops::ControlFlow;

use tofu_core::{audit::AuditEntry, Endpoint};

use super::{host_keyword, Context, HostKeyword};
use crate::error::{CliError, Exit};
use crate::output::{name, printable, write_json, Out};

/// Show the audit log: every change to the store, when, and who made it.
///
/// Events: pinned, added, staged, promoted, retired, replaced, removed, accepted, imported,
/// mismatch-rejected, unpinned-rejected, discarded; oldest first, with the certificate's
/// fingerprint and subject, and who made the change (name, pid, uid; see --actor). A refused
/// certificate is logged the first time it is presented; repeats are counted in its
/// quarantine (showcert). The log is append-only; `deletecert` does not erase an endpoint's
/// history.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs log [host <HOST>] [OPTIONS]")]
pub(crate) struct Args {
    /// The word `host` (Cisco Prime's syntax).
    #[arg(value_name = "host", value_parser = host_keyword, hide = true, requires = "endpoint")]
    keyword: Option<HostKeyword>,

    /// Only this endpoint's entries; exits with status 3 when it has none.
    #[arg(value_name = "HOST")]
    endpoint: Option<Endpoint>,

    /// text (one line per change) or json (one JSON object per line).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let mut out = Out::stdout();
    let mut count = 0usize;
    let mut failure = None;
    store
        .for_each_audit(args.endpoint.as_ref(), |entry| {
            count += 1;
            match write_entry(&mut out, &entry, args.format) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|e| CliError::store(&e, ctx))?;
    if let Some(e) = failure {
        return Err(e);
    }
    out.flush()?;
    match (&args.endpoint, count) {
        (Some(endpoint), 0) => Err(CliError::new(
            Exit::NotFound,
            format!("the audit log has no entry for {endpoint}: it was never pinned in this store"),
        )
        .hint(format!("`{}` shows the whole log", ctx.cmd("log")))),
        _ => Ok(Exit::Success),
    }
}

fn write_entry(out: &mut Out, e: &AuditEntry, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => write_json(out, e, false)?,
        Format::Text => {
            let mut line = format!("{}  {}  {}", e.at, e.endpoint, e.event);
            if let Some(fp) = &e.fingerprint {
                line.push_str(&format!("  {fp}"));
            }
            if let Some(prev) = &e.previous {
                line.push_str(&format!(" (was {prev})"));
            }
            if let Some(subject) = &e.subject {
                line.push_str(&format!("  {}", name(subject)));
            }
            line.push_str(&format!("  by {}", printable(&e.actor)));
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
