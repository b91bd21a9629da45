//! `tofu-certs import FILE`: pins from an export file, all or nothing.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use tofu_core::{
    export::{
        detect_format, import_export, read_export, ExportFormat, ImportError, MAX_EXPORT_LEN,
    },
    store::ImportReport,
    Error,
};

use super::{read_error, Context};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{write_json, Out};

/// Import the pins of an export file, all or nothing.
///
/// The file is one `tofu-certs export` wrote, in either form (TOML, or JSON lines with
/// `--format jsonl`; the form is recognised by the first character), or one written by hand
/// or by a provisioning tool following the schema in the README: to restore a backup, or to
/// seed a fleet with the certificates of its peers. The import is all or nothing, in one
/// transaction: a wrong entry anywhere is reported with its number, line and field, and
/// nothing is imported. A TOML file is read whole, at most 256 MiB (about 320 000 pins); a
/// JSON-lines file is streamed at any size in bounded memory, and must list its endpoints in
/// the order export writes them (the byte order of their text, each endpoint's pins
/// together). Pins already in the store with the same certificate are left as they are. An
/// endpoint that the store pins to other certificates is a conflict that stops the import,
/// unless --replace is given, in which case the file's pins replace the store's for each
/// endpoint in the file. The store is created if it does not exist. While a JSON-lines
/// import runs, other writers of the store wait for it.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The export file (`-` for standard input), TOML or JSON lines.
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// For each endpoint in the file, remove the store's pins first.
    #[arg(long)]
    replace: bool,

    #[command(flatten)]
    format: FormatArg,
}

/// `import --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document {
    version: u32,
    file: String,
    added: usize,
    unchanged: usize,
    replaced: usize,
}

/// The file, or standard input, buffered; `Send`, because a JSON-lines file is read on a
/// thread of its own.
fn open(path: &Path) -> Result<BufReader<Box<dyn Read + Send>>, CliError> {
    let input: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| read_error(path, "the export file", &e))?)
    };
    Ok(BufReader::with_capacity(256 * 1024, input))
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let shown = args.file.display();
    let file_error = |e: ImportError| match e {
        ImportError::Io(e) => read_error(&args.file, "the export file", &e),
        ImportError::Store(e) => store_error(ctx, &args.file, e),
        e => import_error(&shown.to_string(), e),
    };
    let mut input = open(&args.file)?;
    let report: ImportReport = match detect_format(&mut input).map_err(ImportError::Io) {
        Err(e) => return Err(file_error(e)),
        // Checked whole before the store is opened (or created).
        Ok(ExportFormat::Toml) => {
            // A file known to be over the cap is refused before 256 MiB of it are read.
            let len = std::fs::metadata(&args.file).map_or(0, |m| m.len());
            if args.file != Path::new("-") && len > MAX_EXPORT_LEN {
                let max = MAX_EXPORT_LEN;
                return Err(file_error(ImportError::TooLarge { max }));
            }
            let pins = read_export(&mut input).map_err(file_error)?;
            let store = ctx.open()?;
            store
                .import(&pins, args.replace)
                .map_err(|e| store_error(ctx, &args.file, e))?
        }
        // Streamed: checked block by block inside the one transaction.
        Ok(_) => {
            let store = ctx.open()?;
            import_export(&store, &mut input, args.replace).map_err(file_error)?
        }
    };
    let mut out = Out::stdout();
    if args.format.json() {
        let doc = Document {
            version: json::VERSION,
            file: shown.to_string(),
            added: report.added,
            unchanged: report.unchanged,
            replaced: report.replaced,
        };
        write_json(&mut out, &doc, true)?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "imported {} pin{} from {shown} ({} already present, {} replaced)",
        report.added,
        if report.added == 1 { "" } else { "s" },
        report.unchanged,
        report.replaced
    )?;
    out.flush()?;
    Ok(Exit::Success)
}

fn store_error(ctx: &Context, file: &Path, e: Error) -> CliError {
    match e {
        // The hint names the file given, so it can be run as it is.
        Error::ImportConflict { ref endpoint, .. } => {
            let hint = format!(
                "`{}` removes the pins in the store; `{}` replaces them with the file's",
                ctx.cmd(&format!("deletecert host {}", endpoint.host_port())),
                ctx.cmd(&format!(
                    "import {} --replace",
                    crate::shell::quote(&file.to_string_lossy())
                ))
            );
            CliError::failure(e.to_string()).hint(hint)
        }
        e => CliError::store(&e, ctx),
    }
}

fn import_error(file: &str, e: ImportError) -> CliError {
    CliError::failure(format!("{file}: {e}; nothing was imported")).hint(
        "an export file is what `tofu-certs export` writes; its schema is in the README \
         (TOML: `version = 1`, then `[[pin]]` entries with endpoint and certificate; JSON \
         lines: `{\"version\":1}`, then one object per pin, docs/json.md)",
    )
}
