//! `tofu-certs export`: every pin of the store, as TOML or as JSON lines.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tofu_core::export::{write_export_as, ExportError, ExportFormat, MAX_EXPORT_LEN};

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{status, warning, Out};

/// Write every pin of the store as TOML or JSON lines, for a backup or to seed a fleet.
///
/// `import` restores it exactly: the same certificates, states, labels, sources, times and
/// counts. TOML (the default) is for reading and editing by hand; `import` reads it whole, so
/// at most 256 MiB (about 320 000 pins). `--format jsonl` writes a header line, then one JSON
/// object per pin with the same fields, in the store's order; `import` streams it, at any
/// size, in bounded memory. The schemas are in the README and docs/json.md. Quarantined
/// certificates are not exported: they are evidence of a refused handshake waiting for an
/// operator, not trust. The pins are read from one consistent snapshot, while services go on
/// using the store.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write to FILE (created with mode 0600, replaced atomically) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// toml (readable, imports up to 256 MiB) or jsonl (one JSON object per pin; imports at
    /// any size).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Form::Toml)]
    format: Form,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Form {
    /// TOML: `version = 1`, then `[[pin]]` entries.
    Toml,
    /// JSON lines: `{"version":1}`, then one object per pin.
    Jsonl,
}

impl Form {
    fn format(self) -> ExportFormat {
        match self {
            Form::Toml => ExportFormat::Toml,
            Form::Jsonl => ExportFormat::JsonLines,
        }
    }
}

/// Counts what goes through, to tell when a TOML export is too large to import.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A JSON-lines export has no line for an awaited pin (a pin from a fingerprint, with no
/// certificate yet), where TOML names each in a comment: said on standard error instead,
/// with the command that makes it again, so that a restore does not lose one unawares.
fn warn_of_awaited(store: &tofu_core::Store, form: Form, ctx: &Context) -> Result<(), CliError> {
    if form != Form::Jsonl {
        return Ok(());
    }
    store
        .for_each_awaited(|a| {
            let key = if a.matches == tofu_core::pin::PinMatch::Key {
                " --match key"
            } else {
                ""
            };
            let next = if a.state == tofu_core::pin::PinState::Next {
                " --next"
            } else {
                ""
            };
            warning(&format!(
                "not exported: {} awaits {} (a pin from a fingerprint, no certificate yet); \
                 make it again with `tofu-certs addcert host {} --fingerprint {}{key}{next}`",
                a.endpoint, a.fingerprint, a.endpoint, a.fingerprint
            ));
            std::ops::ControlFlow::Continue(())
        })
        .map_err(|e| CliError::store(&e, ctx))
}

/// A TOML export over what `import` reads: written all the same (it is a valid file, and
/// other tools may read it), with the way to write one that imports.
fn warn_if_too_large(form: Form, bytes: u64) {
    if form == Form::Toml && bytes > MAX_EXPORT_LEN {
        warning(&format!(
            "this TOML export is {} MiB, more than the {} MiB `tofu-certs import` reads of \
             TOML; to restore it, export with `--format jsonl`, which imports at any size",
            bytes / (1024 * 1024),
            MAX_EXPORT_LEN / (1024 * 1024)
        ));
    }
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let Some(path) = args.output else {
        let mut out = Counted {
            inner: Out::stdout(),
            bytes: 0,
        };
        write_export_as(&store, &mut out, args.format.format())
            .map_err(|e| export_error(e, ctx))?;
        out.flush()?;
        warn_if_too_large(args.format, out.bytes);
        warn_of_awaited(&store, args.format, ctx)?;
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
    let (count, bytes) = {
        let mut out = Counted {
            inner: io::BufWriter::with_capacity(256 * 1024, tmp.as_file_mut()),
            bytes: 0,
        };
        let count = match write_export_as(&store, &mut out, args.format.format()) {
            Ok(n) => n,
            Err(ExportError::Io(e)) => return Err(fail(&e)),
            Err(e) => return Err(export_error(e, ctx)),
        };
        if let Err(e) = out.inner.into_inner() {
            return Err(fail(e.error()));
        }
        (count, out.bytes)
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
    warn_if_too_large(args.format, bytes);
    warn_of_awaited(&store, args.format, ctx)?;
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
