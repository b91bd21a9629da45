//! One file per command. Each holds the command's arguments (whose doc comments are its
//! `--help`) and its `run`, which calls `tofu_core` and prints; no pin logic lives here.

pub(crate) mod accept;
pub(crate) mod addcert;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod deletecert;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod listcerts;
pub(crate) mod log;
pub(crate) mod man;
pub(crate) mod mode;
pub(crate) mod probe;
pub(crate) mod showcert;
pub(crate) mod status;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tofu_core::{audit::Actor, Endpoint, Store, StoreLocation};

use crate::cli::{Cli, Command};
use crate::error::{CliError, Exit};

/// Runs the command; the exit status on success is 0 except for `probe --from`, which sums
/// up many outcomes in one status.
pub(crate) fn run(cli: Cli) -> Result<Exit, CliError> {
    let ctx = Context::new(cli.store, &cli.actor)?;
    let touched = match &cli.command {
        Command::Showcert(a) => Some(a.host.endpoint.clone()),
        Command::Deletecert(a) => Some(a.host.endpoint.clone()),
        Command::Addcert(a) => Some(a.host.endpoint.clone()),
        Command::Accept(a) => Some(a.host.endpoint.clone()),
        Command::Probe(a) => a.endpoint.clone(),
        _ => None,
    };
    let result = match cli.command {
        Command::Listcerts(args) => listcerts::run(&ctx, args),
        Command::Showcert(args) => showcert::run(&ctx, args),
        Command::Deletecert(args) => deletecert::run(&ctx, args),
        Command::Addcert(args) => addcert::run(&ctx, args),
        Command::Accept(args) => accept::run(&ctx, args),
        Command::Probe(args) => probe::run(&ctx, args),
        Command::Export(args) => export::run(&ctx, args),
        Command::Import(args) => import::run(&ctx, args),
        Command::Log(args) => log::run(&ctx, args),
        Command::Check(args) => check::run(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Mode(args) => mode::run(&ctx, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    };
    if let Some(endpoint) = touched {
        warn_if_report_only(&ctx, &endpoint);
    }
    result
}

/// Says on standard error that `endpoint` is in report-only mode, if it is: every command
/// that touches the endpoint does, so that nobody forgets one in that state. Silent when the
/// command opened no store, or it cannot be read (the command has said why, if it mattered).
fn warn_if_report_only(ctx: &Context, endpoint: &Endpoint) {
    // Only with the store the command opened: never a second open for a warning.
    let Some(store) = ctx.opened.borrow().clone() else {
        return;
    };
    if let Ok(tofu_core::pin::EndpointRecord {
        report_only: Some(mode),
        ..
    }) = store.endpoint(endpoint)
    {
        crate::output::warning(&report_only_warning(ctx, &mode));
    }
}

/// What every command says of an endpoint in report-only mode.
pub(crate) fn report_only_warning(ctx: &Context, mode: &tofu_core::pin::ReportOnly) -> String {
    format!(
        "{} is in report-only mode (since {}, set by {}): certificates matching none of its \
         pins are recorded and let through; `{}` refuses them again",
        mode.endpoint,
        mode.since,
        mode.actor,
        ctx.cmd(&format!("mode host {} enforce", mode.endpoint.host_port())),
    )
}

/// The per-user default store directory: `tofu-certs` in the platform's data directory
/// (`$XDG_DATA_HOME/tofu-certs`, else `~/.local/share/tofu-certs`, on Linux). The command's
/// convention, not the library's: a service names its own store.
fn default_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("tofu-certs"))
}

/// The environment variable naming the store, when --store is not given.
const STORE_VARIABLE: &str = "TOFU_CERTS_STORE";

/// What every command shares: which store, and who is acting.
pub(crate) struct Context {
    location: Option<StoreLocation>,
    /// ` --store DIR` when the store is not the default one, for the commands in hints.
    store_arg: String,
    actor: String,
    /// The store, once a command opened it: opened once per process (on PostgreSQL an open
    /// is a connection, a schema check and a listener), and read again for the warnings.
    opened: std::cell::RefCell<Option<Arc<Store>>>,
}

impl Context {
    fn new(store: Option<OsString>, actor: &str) -> Result<Self, CliError> {
        // An empty TOFU_CERTS_STORE (or --store "") means "not set", as an unset variable would.
        let given = match store.filter(|d| !d.is_empty()) {
            Some(s) => Some((s, "--store")),
            None => std::env::var_os(STORE_VARIABLE)
                .filter(|d| !d.is_empty())
                .map(|d| (d, STORE_VARIABLE)),
        };
        let location = match given {
            // A directory is taken as it is, byte for byte; only a PostgreSQL URI is parsed.
            Some((text, from)) => Some(match text.to_str() {
                Some(text) => StoreLocation::parse(text)
                    .map_err(|e| CliError::new(Exit::Usage, format!("{from}: {e}")))?,
                None => StoreLocation::Directory(PathBuf::from(text)),
            }),
            None => default_dir().map(StoreLocation::Directory),
        };
        let store_arg = match (&location, default_dir()) {
            (Some(StoreLocation::Directory(dir)), Some(default)) if *dir == default => {
                String::new()
            }
            (Some(StoreLocation::Directory(dir)), _) => crate::shell::store_arg(dir),
            // The URI's text, its password masked: the hint's reader has the password (or
            // PGPASSWORD, or a password file) already.
            (Some(loc), _) => format!(" --store {}", crate::shell::quote(&loc.to_string())),
            (None, _) => String::new(),
        };
        Ok(Self {
            location,
            store_arg,
            actor: actor.to_owned(),
            opened: std::cell::RefCell::new(None),
        })
    }

    fn location(&self) -> Result<&StoreLocation, CliError> {
        // The environment failed, not the command line: status 1, as for a store that cannot
        // be opened (status 2 would tell a script its arguments were wrong).
        self.location.as_ref().ok_or_else(|| {
            CliError::failure(
                "no store: neither --store nor TOFU_CERTS_STORE is set, and this user has no \
                 data directory (is HOME set?)",
            )
            .hint("give the store: `tofu-certs --store DIR ...` or `--store postgresql://...`")
        })
    }

    /// Opens the store, creating it if it does not exist: for commands that write.
    pub(crate) fn open(&self) -> Result<Arc<Store>, CliError> {
        self.cached(|| {
            Store::open_location(self.location()?).map_err(|e| CliError::store(&e, self))
        })
    }

    /// Opens an existing store; a missing one is an error that says so.
    pub(crate) fn open_existing(&self) -> Result<Arc<Store>, CliError> {
        self.cached(|| {
            Store::open_existing_location(self.location()?).map_err(|e| CliError::store(&e, self))
        })
    }

    /// The store this process opened already, else the one `open` opens (with the actor).
    fn cached(
        &self,
        open: impl FnOnce() -> Result<Store, CliError>,
    ) -> Result<Arc<Store>, CliError> {
        if let Some(store) = self.opened.borrow().as_ref() {
            return Ok(store.clone());
        }
        let store = Arc::new(open()?.with_actor(Actor::named(&self.actor)));
        *self.opened.borrow_mut() = Some(store.clone());
        Ok(store)
    }

    /// `tofu-certs ARGS`, with `--store DIR` when the store is not the default one.
    pub(crate) fn cmd(&self, args: &str) -> String {
        format!("tofu-certs {args}{}", self.store_arg)
    }
}

/// The word `host` before an endpoint, as in Cisco Prime's `deletecert host 10.1.1.1_8082`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HostKeyword;

pub(crate) fn host_keyword(text: &str) -> Result<HostKeyword, String> {
    if text == "host" {
        Ok(HostKeyword)
    } else {
        Err(format!(
            "expected the word `host` before the endpoint, as in `host {}`",
            text.chars().take(80).collect::<String>()
        ))
    }
}

/// `host <HOST>`: the endpoint argument of the commands that act on one endpoint.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct HostArgs {
    /// The word `host` (Cisco Prime's syntax).
    #[arg(value_name = "host", value_parser = host_keyword, hide = true)]
    pub(crate) keyword: HostKeyword,

    /// The endpoint, in any form: 10.1.1.1:8082, 10.1.1.1_8082 (as listcerts prints it),
    /// [fd00::5]:8443, prime-sec.example.com:443.
    #[arg(value_name = "HOST")]
    pub(crate) endpoint: Endpoint,
}

/// A certificate's fingerprint given on the command line, in any notation
/// `tofu_core::Fingerprint` parses, except `sha256/<base64>`: that notation (HPKP, OkHttp)
/// only ever names a public key, and taking it for a certificate's fingerprint would find
/// nothing, with no word of why.
pub(crate) fn certificate_fingerprint(text: &str) -> Result<tofu_core::Fingerprint, String> {
    if tofu_core::fingerprint::names_a_public_key(text) {
        return Err(
            "`sha256/…` is the notation of a public-key pin (HPKP, OkHttp), not of a \
             certificate's fingerprint; give the certificate's fingerprint as `tofu-certs \
             showcert` or `openssl x509 -noout -fingerprint -sha256` prints it (add --match key \
             to pin the certificate's public key)"
                .into(),
        );
    }
    text.parse()
        .map_err(|e: tofu_core::fingerprint::FingerprintError| e.to_string())
}

/// `--match`: what a new pin matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MatchArg {
    /// The exact certificate: a renewed certificate is refused until accepted.
    Certificate,
    /// The certificate's public key (SHA-256 of its SubjectPublicKeyInfo): a certificate
    /// renewed with the same key is accepted, and recorded as a renewal.
    Key,
}

impl From<MatchArg> for tofu_core::pin::PinMatch {
    fn from(arg: MatchArg) -> Self {
        match arg {
            MatchArg::Certificate => tofu_core::pin::PinMatch::Certificate,
            MatchArg::Key => tofu_core::pin::PinMatch::Key,
        }
    }
}

/// Opens a file given on the command line (`-` for standard input) for reading.
pub(crate) fn open_input(path: &Path, what: &str) -> Result<Box<dyn Read>, CliError> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    match std::fs::File::open(path) {
        Ok(file) => Ok(Box::new(file)),
        Err(e) => Err(read_error(path, what, &e)),
    }
}

/// `cannot read WHAT FILE: why`.
pub(crate) fn read_error(path: &Path, what: &str, e: &std::io::Error) -> CliError {
    CliError::failure(format!("cannot read {what} {}: {e}", path.display()))
}

/// Reads a file given on the command line (`-` for standard input), at most `max` bytes.
pub(crate) fn read_input(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    open_input(path, what)?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, what, &e))?;
    if bytes.len() as u64 > max {
        return Err(CliError::failure(format!(
            "{what} {} is larger than {} KiB; that is not {what}",
            path.display(),
            max / 1024
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a user without a data directory (no HOME, no passwd entry) got status 2,
    /// which says the command line was wrong.
    #[test]
    fn no_data_directory_is_an_operational_failure() {
        let ctx = Context {
            location: None,
            store_arg: String::new(),
            actor: "test".into(),
            opened: Default::default(),
        };
        let Err(err) = ctx.open_existing() else {
            panic!("a store opened without a directory");
        };
        assert_eq!(err.exit(), Exit::Failure);
        assert!(err.message().starts_with("no store: "), "{err:?}");
        assert_eq!(ctx.open().err().map(|e| e.exit()), Some(Exit::Failure));
    }
}
