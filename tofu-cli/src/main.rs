//! `tofu-certs`: the operator's command for a trust-on-first-use store of pinned TLS
//! certificates. Parse, run, exit code; everything else is in `commands/` and `tofu-core`.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod error;
mod json;
mod logger;
mod output;
mod shell;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    logger::init(cli.verbose, cli.quiet);
    match commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => err.report(),
    }
}
