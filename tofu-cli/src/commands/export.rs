//! `tofu-certs export`: every pin of the store, as TOML.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tofu_core::export::{write_export, ExportError};

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{status, Out};

/// Write every pin of the store as TOML, for a backup or to seed a fleet.
///
/// `import` restores it exactly: the same certificates, states, labels, sources, times and
/// counts. The schema (version 1) is in the README. Quarantined certificates are not exported: they
/// are evidence of a refused handshake waiting for an operator, not trust. The pins are read
/// from one consistent snapshot, while services go on using the store.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write to FILE (created with mode 0600, replaced atomically) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let Some(path) = args.output else {
        let mut out = Out::stdout();
        write_export(&store, &mut out).map_err(|e| export_error(e, ctx))?;
        out.flush()?;
        return Ok(Exit::Success);
    };

    let shown = path.display();
    let fail = |e: &dyn std::fmt::Display| CliError::failure(format!("cannot write {shown}: {e}"));
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A temporary file beside the target, renamed over it once complete: a failed export
    // never leaves a truncated backup in place of a good one.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tofu-certs-export")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&parent)
        .map_err(|e| cannot_create_in(&parent, &e))?;
    let count = match write_export(&store, tmp.as_file_mut()) {
        Ok(n) => n,
        Err(ExportError::Io(e)) => return Err(fail(&e)),
        Err(e) => return Err(export_error(e, ctx)),
    };
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(&path).map_err(|e| fail(&e.error))?;
    // The rename is durable only once the directory is: a crash now must not bring back the
    // old backup, or none.
    File::open(&parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            CliError::failure(format!(
                "wrote {shown}, but cannot make it durable (syncing {}): {e}",
                parent.display()
            ))
        })?;
    status(&format!(
        "exported {count} pin{} to {shown}",
        if count == 1 { "" } else { "s" }
    ));
    Ok(Exit::Success)
}

/// The temporary file could not be created: tempfile's error names that file, which the
/// operator never asked for, so the directory is named, with its own error when it has one.
fn cannot_create_in(dir: &Path, e: &io::Error) -> CliError {
    let why = match std::fs::metadata(dir) {
        Err(m) => m.to_string(),
        Ok(meta) if !meta.is_dir() => "it is not a directory".to_owned(),
        Ok(_) => io::Error::from(e.kind()).to_string(),
    };
    CliError::failure(format!("cannot create a file in {}: {why}", dir.display()))
        .hint("give --output a file in a directory that exists and that you can write to")
}

fn export_error(e: ExportError, ctx: &Context) -> CliError {
    match e {
        ExportError::Store(e) => CliError::store(&e, ctx),
        ExportError::Io(e) => CliError::from(e),
        other => CliError::failure(other.to_string()),
    }
}
