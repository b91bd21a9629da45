//! `tofu-certs import FILE`: pins from an export file, all or nothing.

use std::io::Write;
use std::path::PathBuf;

use tofu_core::{
    export::{read_export, ImportError},
    Error,
};

use super::{open_input, read_error, Context};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{write_json, Out};

/// Import the pins of an export file, all or nothing.
///
/// The file is one `tofu-certs export` wrote, or one written by hand or by a provisioning
/// tool following the schema in the README: to restore a backup, or to seed a fleet with
/// the certificates of its peers. The import is all or nothing: the file is checked entirely first (a wrong entry is
/// reported with its number, line and field), then written in one transaction. Pins already
/// in the store with the same certificate are left as they are. An endpoint that the store
/// pins to other certificates is a conflict that stops the import, unless --replace is
/// given, in which case the file's pins replace the store's for each endpoint in the file.
/// The store is created if it does not exist.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The export file (`-` for standard input).
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

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let shown = args.file.display();
    // read_export caps the size and checks the text before parsing.
    let pins = read_export(open_input(&args.file, "the export file")?).map_err(|e| match e {
        ImportError::Io(e) => read_error(&args.file, "the export file", &e),
        e => import_error(&shown.to_string(), e),
    })?;
    let store = ctx.open()?;
    let report = store.import(&pins, args.replace).map_err(|e| match e {
        // The hint names the file given, so it can be run as it is.
        Error::ImportConflict { ref endpoint, .. } => {
            let hint = format!(
                "`{}` removes the pins in the store; `{}` replaces them with the file's",
                ctx.cmd(&format!("deletecert host {}", endpoint.host_port())),
                ctx.cmd(&format!(
                    "import {} --replace",
                    crate::shell::quote(&args.file.to_string_lossy())
                ))
            );
            CliError::failure(e.to_string()).hint(hint)
        }
        e => CliError::store(&e, ctx),
    })?;
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

fn import_error(file: &str, e: ImportError) -> CliError {
    CliError::failure(format!("{file}: {e}; nothing was imported")).hint(
        "an export file is what `tofu-certs export` writes; its schema is in the README \
         (`version = 1`, then `[[pin]]` entries with endpoint and certificate)",
    )
}
