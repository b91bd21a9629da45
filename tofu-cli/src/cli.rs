//! The command line: global options and the list of commands. Each command's own arguments,
//! and its `--help` text, are in its file under `commands/`.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::{
    accept, addcert, check, completions, deletecert, export, import, listcerts, log, man, mode,
    probe, showcert, status,
};

/// The exit statuses, the same for every command; shown at the end of every `--help`.
pub(crate) const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  operational error: the store, a file, the network or the environment failed
  2  usage error: an unknown option, a malformed endpoint or fingerprint
  3  nothing found for that endpoint (showcert, deletecert, accept, log host)
  4  the presented certificate does not match the pin (probe)
  5  the endpoint is not pinned (probe)";

/// The exit statuses of `status`, the monitoring-plugin convention.
pub(crate) const STATUS_EXIT_STATUS: &str = "\
Exit status (the monitoring-plugin convention):
  0  OK
  1  WARNING: a pin expiring or expired, a public key pinned on several hosts
  2  CRITICAL: an endpoint is refusing connections
  3  UNKNOWN: the store cannot be read, or a usage error";

/// A persistent trust-on-first-use store of pinned TLS certificates, keyed by host:port.
///
/// Services that must trust each other without a CA (Cisco Prime Infrastructure's HA pair, for
/// one) pin the certificate an endpoint presents the first time, and refuse a different one
/// later. This command lists, inspects, adds, accepts, deletes, probes, exports, imports
/// and checks those pins, with the syntax of Prime's `ncs certvalidation tofu-certs`:
///
///     tofu-certs listcerts
///     tofu-certs deletecert host 10.1.1.1_8082
///
/// The store is the directory given by --store, else by the TOFU_CERTS_STORE environment
/// variable, else tofu-certs in the platform's data directory (~/.local/share/tofu-certs on
/// Linux). Commands that write create it; commands that only read report that it is missing.
#[derive(Debug, Parser)]
#[command(verbatim_doc_comment)]
#[command(
    name = "tofu-certs",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// The store: a directory (it holds pins.sqlite3), or a PostgreSQL database as a libpq
    /// URI, postgresql://[user@][host][:port][/database][?param=value&...], completed from
    /// PGHOST, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE and the password file
    /// [default: $TOFU_CERTS_STORE, else the per-user data directory].
    #[arg(long, global = true, value_name = "DIR|URI")]
    pub(crate) store: Option<OsString>,

    /// Who is making the change, as written to the store's audit log (a rotation script's
    /// name, a ticket number); the process id and user id are added.
    #[arg(long, global = true, value_name = "NAME", default_value = "tofu-certs")]
    pub(crate) actor: String,

    /// Show more of what the library logs: -v information, -vv debugging (also rustls's);
    /// warnings are shown without it [default: RUST_LOG's levels when it is set].
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,

    /// Show only errors, not the library's warnings (an expired pin presented, a store owned
    /// by another user).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Listcerts(listcerts::Args),
    Showcert(showcert::Args),
    Deletecert(deletecert::Args),
    Addcert(addcert::Args),
    Accept(accept::Args),
    Probe(probe::Args),
    Export(export::Args),
    Import(import::Args),
    Log(log::Args),
    Check(check::Args),
    Status(status::Args),
    Mode(mode::Args),
    Completions(completions::Args),
    Man(man::Args),
}

/// The full clap definition, with the exit statuses under every command's help: what the
/// parser, the shell completions and the man page are generated from.
pub(crate) fn command() -> clap::Command {
    Cli::command()
        .after_help(EXIT_STATUS)
        .mut_subcommands(|sub| {
            let help = if sub.get_name() == "status" {
                STATUS_EXIT_STATUS
            } else {
                EXIT_STATUS
            };
            sub.after_help(help)
        })
}

/// Parses the process's arguments; exits with status 2 on a usage error (clap's own).
pub(crate) fn parse() -> Cli {
    command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
        .unwrap_or_else(|e| usage_error(e))
}

/// Exits as clap would, except that a usage error is printed with what
/// [`tofu_core::text::must_escape`] escaped (line breaks apart): clap quotes the offending argument
/// raw, and an endpoint taken from an untrusted list could carry terminal escape sequences or
/// a bidirectional override.
fn usage_error(e: clap::Error) -> ! {
    if !e.use_stderr() {
        e.exit() // --help, --version
    }
    eprint!(
        "{}",
        tofu_core::text::escape_message(&e.render().to_string())
    );
    // A monitoring check's wrong arguments are UNKNOWN (3), not CRITICAL (2).
    let code = if e.exit_code() == 2 && runs_status() {
        3
    } else {
        e.exit_code()
    };
    std::process::exit(code)
}

/// Whether the command line's subcommand is `status`: the first argument that is neither an
/// option nor the value of a global option that takes one.
fn runs_status() -> bool {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        if a == "--store" || a == "--actor" {
            args.next();
        } else if !a.starts_with('-') {
            return a == "status";
        }
    }
    false
}
