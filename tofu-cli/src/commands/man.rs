//! `tofu-certs man`: the man page, generated from the clap definitions.

use crate::error::{CliError, Exit};
use crate::output::Out;

/// Print the man page (roff).
///
/// Read it with `tofu-certs man | man -l -`, or install it; for example: `tofu-certs man > /usr/local/share/man/man1/tofu-certs.1`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> Result<Exit, CliError> {
    let mut out = Out::stdout();
    clap_mangen::Man::new(crate::cli::command()).render(&mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(Exit::Success)
}
