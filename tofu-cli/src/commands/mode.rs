//! `tofu-certs mode host <HOST> report-only|enforce`: whether an endpoint's refusals refuse.

use std::io::Write;

use super::{Context, HostArgs};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{write_json, Out};

/// Put an endpoint in report-only mode, or back to enforcing its pins
///
/// In report-only mode, a certificate that matches none of the endpoint's pins is recorded
/// and reported exactly as a refusal (quarantined, counted, written to the audit log as
/// mismatch-reported, passed to a service's refusal callback, and shown by `status`), but
/// the connection proceeds. For a rollout that wants to see what would be refused before
/// refusing it. The server must still prove it holds the key of the certificate it presents.
///
/// Never the default, and hard to forget: `status` warns (exit 1) while any endpoint is in
/// it, listcerts and showcert show it, and every command that touches the endpoint says so
/// on standard error. The mode stays through deletecert and re-pinning until `enforce`.
/// Audited (report-only, enforce). Running processes see the change at their next
/// handshake.
#[derive(Debug, clap::Args)]
#[command(override_usage = "tofu-certs mode host <HOST> <MODE> [OPTIONS]")]
pub(crate) struct Args {
    #[command(flatten)]
    host: HostArgs,

    /// report-only (record and report mismatches, let the connection through) or enforce
    /// (refuse them: the default of every endpoint).
    #[arg(value_enum, ignore_case = true, value_name = "MODE")]
    mode: Mode,

    #[command(flatten)]
    format: FormatArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    ReportOnly,
    Enforce,
}

/// `mode --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document {
    #[serde(flatten)]
    head: json::Head,
    mode: &'static str,
    changed: bool,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    let store = ctx.open()?;
    let report_only = args.mode == Mode::ReportOnly;
    let changed = store
        .set_report_only(endpoint, report_only)
        .map_err(|e| CliError::store(&e, ctx))?;
    let name = if report_only {
        "report-only"
    } else {
        "enforce"
    };
    let mut out = Out::stdout();
    if args.format.json() {
        write_json(
            &mut out,
            &Document {
                head: json::Head::new(endpoint),
                mode: name,
                changed,
            },
            true,
        )?;
    } else {
        let hp = endpoint.host_port();
        match (report_only, changed) {
            (true, _) => writeln!(
                out,
                "{}: {endpoint} is in report-only mode: a certificate matching none of its pins \
                 is recorded and reported, and the connection proceeds; `{}` refuses them again",
                if changed { "report-only" } else { "unchanged" },
                ctx.cmd(&format!("mode host {hp} enforce")),
            )?,
            (false, true) => writeln!(
                out,
                "enforce: {endpoint} refuses certificates that match none of its pins again"
            )?,
            (false, false) => writeln!(
                out,
                "unchanged: {endpoint} already refuses certificates that match none of its pins"
            )?,
        }
    }
    out.flush()?;
    Ok(Exit::Success)
}
