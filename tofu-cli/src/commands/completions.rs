//! `tofu-certs completions SHELL`: shell completions, generated from the clap definitions.

use std::io::Write;

use clap_complete::Shell;

use crate::error::{CliError, Exit};
use crate::output::Out;

/// Print shell completions for tofu-certs.
///
/// For example: `tofu-certs completions bash > /etc/bash_completion.d/tofu-certs`, or for zsh
/// a file `_tofu-certs` in a directory of $fpath, or for fish
/// `~/.config/fish/completions/tofu-certs.fish`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

pub(crate) fn run(args: Args) -> Result<Exit, CliError> {
    // clap_complete panics when its writer fails; generate into memory, so that a closed
    // standard output is reported (quietly) like everywhere else.
    let mut script = Vec::new();
    let mut command = crate::cli::command();
    clap_complete::generate(args.shell, &mut command, "tofu-certs", &mut script);
    let mut out = Out::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Success)
}
