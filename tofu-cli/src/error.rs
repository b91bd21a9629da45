//! The command's errors: a message, `hint:` lines naming the command that helps, and the exit
//! status, the same for every command (see `cli::EXIT_STATUS`).

use std::io;
use std::process::ExitCode;

use tofu_core::Error;

use crate::commands::Context;
use crate::output;

/// The exit statuses; a documented contract (`tofu-certs --help`, README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Success,
    Failure,
    Usage,
    NotFound,
    Mismatch,
    NotPinned,
    /// `status`: the monitoring-plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Monitoring(tofu_core::health::Severity),
}

impl Exit {
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::Mismatch => 4,
            Exit::NotPinned => 5,
            Exit::Monitoring(severity) => severity.exit_code(),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// An error to report on standard error, with its exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    exit: Exit,
    message: String,
    hints: Vec<String>,
    /// Standard output was closed by its reader: end quietly, successfully.
    broken_pipe: bool,
}

impl CliError {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hints: Vec::new(),
            broken_pipe: false,
        }
    }

    /// An operational error (exit status 1).
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    /// The exit status it ends the command with.
    #[cfg(test)]
    pub(crate) fn exit(&self) -> Exit {
        self.exit
    }

    /// The message, without the `error:` label.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The same error, ending the command with `exit`.
    pub(crate) fn with_exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }

    /// Adds a `hint:` line.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// A store error, with the hint and exit status that go with it. `ctx` spells the
    /// commands in hints with the store in use.
    pub(crate) fn store(error: &Error, ctx: &Context) -> Self {
        let message = error.to_string();
        match error {
            Error::StoreNotFound { .. } => Self::failure(message).hint(format!(
                "pin an endpoint first with `{}` or `{}`, or give the store's directory with \
                 --store DIR",
                ctx.cmd("addcert host HOST:PORT --cert FILE"),
                ctx.cmd("probe host HOST:PORT --pin"),
            )),
            Error::Corrupt { .. } => Self::failure(message).hint(format!(
                "restore a backup into a fresh store: `tofu-certs import BACKUP.toml --store \
                 NEW_DIR`; `{}` shows what the damaged store still yields",
                ctx.cmd("export")
            )),
            Error::Unsafe { path, problem, fix } => Self::failure(format!(
                "refusing to use the pin store {}: {problem}; nothing was read or written",
                path.display()
            ))
            .hint(format!("run `{fix}`")),
            Error::NotAStore { .. } | Error::Unusable { .. } | Error::NewerSchema { .. } => {
                Self::failure(message).hint(
                    "the store is chosen by --store DIR, else TOFU_CERTS_STORE, else the \
                     per-user default; see `tofu-certs --help`",
                )
            }
            Error::NoSpace { filesystem, .. } => Self::failure(message).hint(format!(
                "`df -h {}` shows what fills it; reading commands (listcerts, showcert) still \
                 work meanwhile",
                crate::shell::quote(&filesystem.to_string_lossy())
            )),
            Error::Busy { .. } => Self::failure(message)
                .hint("run the command again; readers never wait, only writers queue"),
            Error::Certificate { .. } => Self::failure(message).hint(
                "give the server's leaf certificate as PEM or DER; `openssl x509 -in FILE \
                 -noout -text` shows what a file holds",
            ),
            Error::AlreadyPinned { endpoint, .. }
            | Error::PinChanged { endpoint, .. }
            | Error::AlreadyAwaited { endpoint, .. } => Self::failure(message).hint(format!(
                "`{}` shows the endpoint's pins",
                ctx.cmd(&format!("showcert host {endpoint}"))
            )),
            Error::NotQuarantined { endpoint, .. } => {
                Self::new(Exit::NotFound, message).hint(format!(
                    "`{}` lists the quarantined certificates and their fingerprints; a \
                     certificate is quarantined when `{}` is refused",
                    ctx.cmd(&format!("showcert host {endpoint}")),
                    ctx.cmd(&format!("probe host {endpoint}")),
                ))
            }
            _ => Self::failure(message)
                .hint("see `tofu-certs --help` for how the store is chosen and used"),
        }
    }

    /// Prints the error (`error: …` and `hint: …` lines) to standard error and returns the
    /// exit status. A closed standard output ends quietly with status 0: the reader had
    /// what it wanted.
    pub(crate) fn report(self) -> ExitCode {
        if self.broken_pipe {
            return ExitCode::SUCCESS;
        }
        output::error(&self.message);
        self.print_hints();
        self.exit.into()
    }

    /// Prints the `hint: …` lines alone, for a command that reports the error itself among
    /// other results (`probe --from`).
    pub(crate) fn print_hints(&self) {
        for hint in &self.hints {
            output::hint(hint);
        }
    }
}

/// Errors writing standard output (the only `io::Error`s converted implicitly; reading files
/// reports the file's name explicitly).
impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        let mut err = Self::failure(format!("cannot write to standard output: {e}"));
        err.broken_pipe = e.kind() == io::ErrorKind::BrokenPipe;
        err
    }
}
