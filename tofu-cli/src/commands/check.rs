//! `tofu-certs check`: is the store sound?

use std::io::Write;

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{printable, write_json, Out};

/// Check the store: SQLite's integrity check and the store's own invariants.
///
/// Runs `PRAGMA integrity_check` (every page, and every index against its table), checks the
/// application id and schema version, and reads every pin, quarantined certificate and audit
/// entry from the tables themselves: each pin's certificate must parse and match its stored
/// fingerprints, subject and issuer, its endpoint, state and source must be valid, and no
/// endpoint may have the same certificate twice. Prints each finding; exits with status 0
/// when the store is sound and 1 when it is not. Reads the whole store, so it takes time in
/// proportion to its size.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// text (one line per finding, then a summary) or json (one document; see README).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

/// `check --format json`, schema version 1.
#[derive(serde::Serialize)]
struct Document<'a> {
    version: u32,
    store: String,
    sound: bool,
    #[serde(flatten)]
    report: &'a tofu_core::store::CheckReport,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let report = store.check().map_err(|e| CliError::store(&e, ctx))?;
    let mut out = Out::stdout();
    match args.format {
        Format::Json => {
            let doc = Document {
                version: 1,
                store: store.location().to_string(),
                sound: report.is_sound(),
                report: &report,
            };
            write_json(&mut out, &doc, true)?;
        }
        Format::Text => {
            for f in &report.findings {
                writeln!(out, "{}: {}", f.kind, printable(&f.detail))?;
            }
            writeln!(
                out,
                "{}: {} pins, {}{} quarantined, {} audit entries, {} findings",
                if report.is_sound() {
                    "sound"
                } else {
                    "damaged"
                },
                report.pins,
                // Only when there are some: the line stays as it was for other stores.
                if report.awaited > 0 {
                    format!("{} awaited, ", report.awaited)
                } else {
                    String::new()
                },
                report.quarantined,
                report.audit_entries,
                report.findings.len()
            )?;
        }
    }
    out.flush()?;
    if report.is_sound() {
        return Ok(Exit::Success);
    }
    Err(CliError::failure(format!(
        "the pin store {} is damaged ({} findings); do not trust what it says is unpinned",
        store.location(),
        report.findings.len()
    ))
    .hint(format!(
        "keep the damaged store for inspection; save what it still yields with `{}`, and \
         restore the last backup into a fresh store: `tofu-certs import BACKUP.toml --store \
         NEW_DIR`",
        ctx.cmd("export --output SALVAGED.toml")
    )))
}
