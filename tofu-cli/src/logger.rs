//! The library's log records (tofu-core's warnings: an expired pin presented, a store owned
//! by another user, a certificate that could not be quarantined) on standard error, labelled
//! like the command's own `error:` and `hint:` lines.
//!
//! The level is warn, `-q` errors only, `-v` info, `-vv` debug, `-vvv` trace. Without either
//! flag, `RUST_LOG` chooses when it is set: a level (`debug`, `off`) or comma-separated
//! `target=level` directives, the longest matching target winning (`warn,rustls=debug`).
//! Other crates' records (rustls's "Sending fatal alert", which the command's own error
//! already explains) are shown from debug on, unless `RUST_LOG` names them.

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::output::{self, Style};

/// The crates whose warnings are the operator's business at the default level.
const OWN_TARGETS: [&str; 2] = ["tofu_core", "tofu_certs"];

/// Installs the logger. `verbose` counts `-v`; `quiet` is `-q`.
pub(crate) fn init(verbose: u8, quiet: bool) {
    let filter = if quiet || verbose > 0 {
        Filter::from_flags(verbose, quiet)
    } else {
        match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => Filter::parse(&spec),
            _ => Filter::from_flags(0, false),
        }
    };
    let max = filter.max();
    // The logger lives as long as the process; leaking it is what `log` expects (its
    // `set_boxed_logger` does the same, behind the `std` feature). Setting it fails only when
    // a logger is installed already, which main does not do twice.
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger { filter }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

struct StderrLogger {
    filter: Filter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Records carry text from peers and files (subjects, paths): escaped, one line each.
        let message = output::printable(&record.args().to_string());
        match record.level() {
            Level::Error => output::error(&message),
            Level::Warn => output::warning(&message),
            Level::Info => output::status(&format!("{} {message}", label(Style::Bold, "info:"))),
            level => output::status(&format!(
                "{} {}: {message}",
                label(Style::Bold, &format!("{}:", level.as_str().to_lowercase())),
                output::printable(record.target())
            )),
        }
    }

    fn flush(&self) {}
}

fn label(style: Style, text: &str) -> String {
    output::paint(output::stderr_colour(), style, text)
}

/// Which level each target logs at.
#[derive(Debug, PartialEq, Eq)]
struct Filter {
    /// The level of targets no directive names.
    default: LevelFilter,
    /// `(target prefix, level)`, from `RUST_LOG` or for this command's own crates.
    directives: Vec<(String, LevelFilter)>,
}

impl Filter {
    fn from_flags(verbose: u8, quiet: bool) -> Self {
        let own = match (quiet, verbose) {
            (true, _) => LevelFilter::Error,
            (false, 0) => LevelFilter::Warn,
            (false, 1) => LevelFilter::Info,
            (false, 2) => LevelFilter::Debug,
            (false, _) => LevelFilter::Trace,
        };
        Self {
            default: if own >= LevelFilter::Debug {
                own
            } else {
                LevelFilter::Error
            },
            directives: OWN_TARGETS.iter().map(|t| ((*t).to_owned(), own)).collect(),
        }
    }

    /// `RUST_LOG`'s common forms. A directive that does not parse is skipped rather than an
    /// error: a variable set for another program must not stop this one.
    fn parse(spec: &str) -> Self {
        let mut filter = Self {
            default: LevelFilter::Error,
            directives: Vec::new(),
        };
        let mut default = None;
        for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.split_once('=') {
                Some((target, level)) => {
                    if let Ok(level) = level.trim().parse() {
                        filter
                            .directives
                            .push((target.trim().replace('-', "_"), level));
                    }
                }
                None => match directive.parse::<LevelFilter>() {
                    Ok(level) => default = Some(level),
                    // A bare target means everything it logs.
                    Err(_) => filter
                        .directives
                        .push((directive.replace('-', "_"), LevelFilter::Trace)),
                },
            }
        }
        if let Some(level) = default {
            filter.default = level;
        } else {
            filter.directives.extend(
                OWN_TARGETS
                    .iter()
                    .filter(|t| !filter.directives.iter().any(|(d, _)| d == *t))
                    .map(|t| ((*t).to_owned(), LevelFilter::Warn))
                    .collect::<Vec<_>>(),
            );
        }
        filter
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.directives
            .iter()
            .filter(|(prefix, _)| {
                target == prefix
                    || target
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with("::"))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, level)| *level)
    }

    fn max(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(_, level)| *level)
            .chain([self.default])
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_set_the_level_of_this_commands_crates_and_debug_opens_the_others() {
        let f = Filter::from_flags(0, false);
        assert_eq!(f.level_for("tofu_core::verifier"), LevelFilter::Warn);
        assert_eq!(f.level_for("rustls::client::hs"), LevelFilter::Error);
        assert_eq!(f.level_for("tofu_core_fuzz"), LevelFilter::Error);
        let f = Filter::from_flags(0, true);
        assert_eq!(f.level_for("tofu_core::store"), LevelFilter::Error);
        let f = Filter::from_flags(1, false);
        assert_eq!(f.level_for("tofu_core"), LevelFilter::Info);
        assert_eq!(f.level_for("rustls"), LevelFilter::Error);
        let f = Filter::from_flags(2, false);
        assert_eq!(f.level_for("rustls::conn"), LevelFilter::Debug);
        assert_eq!(Filter::from_flags(7, false).max(), LevelFilter::Trace);
    }

    #[test]
    fn rust_log_takes_a_level_or_target_directives() {
        let f = Filter::parse("debug");
        assert_eq!(f.level_for("rustls"), LevelFilter::Debug);
        assert_eq!(f.level_for("tofu_core"), LevelFilter::Debug);
        let f = Filter::parse("off");
        assert_eq!(f.max(), LevelFilter::Off);
        let f = Filter::parse("warn, rustls=debug ,rustls::client=off");
        assert_eq!(f.level_for("rustls::conn"), LevelFilter::Debug);
        assert_eq!(f.level_for("rustls::client::hs"), LevelFilter::Off);
        assert_eq!(f.level_for("rustlsx"), LevelFilter::Warn);
        // Naming only other crates keeps this command's warnings.
        let f = Filter::parse("rustls=trace,nonsense=loud");
        assert_eq!(f.level_for("tofu_core::verifier"), LevelFilter::Warn);
        assert_eq!(f.level_for("rustls"), LevelFilter::Trace);
        assert_eq!(f.level_for("other"), LevelFilter::Error);
        let f = Filter::parse("tofu-core=info");
        assert_eq!(f.level_for("tofu_core::store"), LevelFilter::Info);
    }
}
