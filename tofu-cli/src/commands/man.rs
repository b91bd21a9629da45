//! `tofu-certs man`: the man pages, generated from the clap definitions: one for `tofu-certs`
//! and one per command (`tofu-certs-deletecert(1)`, as git and cargo name theirs).

use std::io::Write;
use std::path::PathBuf;

use tofu_core::text::escape_text;

use crate::error::{CliError, Exit};
use crate::output::Out;

/// Print a man page (roff), or write all of them to a directory
///
/// Read one with `tofu-certs man | man -l -` or `tofu-certs man deletecert | man -l -`.
/// Install them all with `tofu-certs man --dir /usr/local/share/man/man1`, which writes
/// tofu-certs.1 and tofu-certs-COMMAND.1 for each command (read them as `man tofu-certs-probe`).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// The command whose page to print; without it, the page of tofu-certs itself.
    #[arg(value_name = "COMMAND", conflicts_with = "dir")]
    command: Option<String>,
    /// Write every page into DIR (created if missing) and print the paths written.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `tofu-certs` with each command's display name (`tofu-certs-probe`) filled in, as the pages
/// are titled; without the `help` pseudo-command, which has no page of its own.
fn built() -> clap::Command {
    let mut cmd = crate::cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

pub(crate) fn run(args: Args) -> Result<Exit, CliError> {
    let cmd = built();
    if let Some(dir) = args.dir {
        return write_all(cmd, dir);
    }
    let page = match &args.command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                return Err(CliError::new(
                    Exit::Usage,
                    format!("tofu-certs has no command named {:?}", escape_text(name)),
                )
                .hint(format!(
                    "the commands are {}; `tofu-certs man` alone prints the main page",
                    names.join(", ")
                )));
            }
        },
    };
    let mut out = Out::stdout();
    clap_mangen::Man::new(page).render(&mut out)?;
    out.flush()?;
    Ok(Exit::Success)
}

fn write_all(cmd: clap::Command, dir: PathBuf) -> Result<Exit, CliError> {
    let failed = |e: std::io::Error| {
        CliError::failure(format!(
            "cannot write the man pages to {}: {e}",
            escape_text(&dir.to_string_lossy())
        ))
        .hint("give a directory you can write with --dir, or print one page with `tofu-certs man [COMMAND]`")
    };
    std::fs::create_dir_all(&dir).map_err(failed)?;
    let mut pages = vec![cmd.clone()];
    pages.extend(cmd.get_subcommands().cloned());
    let mut out = Out::stdout();
    for page in pages {
        let path = clap_mangen::Man::new(page)
            .generate_to(&dir)
            .map_err(failed)?;
        writeln!(out, "{}", escape_text(&path.to_string_lossy()))?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
