//! `tofu-certs completions SHELL`: shell completions, generated from the clap definitions.

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
    let mut out = Out::stdout();
    let mut command = crate::cli::command();
    clap_complete::generate(args.shell, &mut command, "tofu-certs", &mut out);
    std::io::Write::flush(&mut out)?;
    Ok(Exit::Success)
}
