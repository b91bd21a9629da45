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
    #[arg(value_enum, ignore_case = true)]
    shell: Shell,
}

/// The binary's name, which the shell completes.
const BIN: &str = "tofu-certs";

/// The name bash's script is generated for. clap_complete (4.6) turns the `-` of a binary's
/// name into `__` in the variable that tracks the subcommand (`tofu__certs__subcmd__probe`)
/// but into `__subcmd__` in the cases that list each subcommand's options
/// (`tofu__subcmd__certs__subcmd__probe`), so that after `tofu-certs deletecert` nothing
/// completed. Generated for a name without `-`, the two agree; only the `complete` lines
/// that register the function name the binary itself.
const BASH_NAME: &str = "tofu_certs";

pub(crate) fn run(args: Args) -> Result<Exit, CliError> {
    // clap_complete panics when its writer fails; generate into memory, so that a closed
    // standard output is reported (quietly) like everywhere else.
    let mut script = Vec::new();
    let mut command = crate::cli::command();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(Shell::Bash, &mut command, BASH_NAME, &mut script);
            script = register_for_the_binary(&script);
        }
        shell => clap_complete::generate(shell, &mut command, BIN, &mut script),
    }
    let mut out = Out::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(Exit::Success)
}

/// Bash's script for [`BASH_NAME`], with its `complete -F FUNCTION … tofu_certs` lines
/// registering the function for `tofu-certs` instead.
fn register_for_the_binary(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let suffix = format!(" {BASH_NAME}");
    let mut fixed = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match body.strip_suffix(&suffix) {
            Some(start) if start.trim_start().starts_with("complete -F ") => {
                fixed.push_str(start);
                fixed.push(' ');
                fixed.push_str(BIN);
                fixed.push_str(end);
            }
            _ => fixed.push_str(line),
        }
    }
    fixed.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_registers_the_function_for_the_hyphenated_binary() {
        let mut script = Vec::new();
        clap_complete::generate(
            Shell::Bash,
            &mut crate::cli::command(),
            BASH_NAME,
            &mut script,
        );
        let fixed = String::from_utf8(register_for_the_binary(&script)).unwrap();
        let registrations: Vec<&str> = fixed
            .lines()
            .filter(|l| l.trim_start().starts_with("complete "))
            .collect();
        assert!(!registrations.is_empty(), "{fixed}");
        for line in registrations {
            assert!(line.starts_with("    complete -F _tofu_certs "), "{line}");
            assert!(line.ends_with(" tofu-certs"), "{line}");
        }
        // The variable and the cases agree on each subcommand's name.
        assert!(fixed.contains("cmd=\"tofu_certs__subcmd__deletecert\""));
        assert!(fixed.contains("\n        tofu_certs__subcmd__deletecert)\n"));
    }
}
