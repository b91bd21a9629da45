//! `tofu-certs status`: the store as a monitoring check sees it, in the monitoring-plugin
//! convention (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), as JSON, or as Prometheus
//! metrics for node_exporter's textfile collector.

use std::fmt::Write as _;
use std::io::Write;

use tofu_core::{
    health::{Severity, Status},
    timestamp::Timestamp,
};

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{printable, write_json, Out};

/// Report what needs attention, as a monitoring check (exit 0 OK to 3 UNKNOWN)
///
/// Endpoints refusing connections now, pins expiring soon, one public key pinned on several
/// hosts. A monitoring check in the convention Nagios, Icinga, Zabbix agents and Sensu read. The
/// first line sums up (`TOFU-CERTS CRITICAL - 1 endpoint refusing connections | failing=1
/// ...`, with performance data after the `|`); then one line per finding, with the command
/// that deals with it. The exit status is 0 (OK), 1 (WARNING: a pin expiring within
/// --expiring, or expired; a public key pinned for endpoints on different hosts; an
/// endpoint in report-only mode), 2
/// (CRITICAL: an endpoint refused a certificate since its pins last changed, and presented
/// none of its pins since) or 3 (UNKNOWN: the store cannot be read, or the arguments are
/// wrong).
///
/// An endpoint stops being critical once an operator changed its pins (accept, addcert,
/// deletecert), or within about a minute of a handshake that presented one of its pins
/// again (handshakes are recorded at most once a minute per process).
///
/// --format prometheus writes the text exposition format, for node_exporter's textfile
/// collector (`tofu-certs status --format prometheus > /var/lib/node_exporter/tofu.prom.$$ &&
/// mv /var/lib/node_exporter/tofu.prom.$$ /var/lib/node_exporter/tofu.prom`): the severity,
/// the number of pins, per failing endpoint its refusals and since when, per pin expiring
/// within --expiring the seconds left, and the shared keys. --format json is one document
/// (docs/json.md).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// Report pins expiring within this long: days (30 or 30d), hours (12h) or weeks (2w).
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration_secs)]
    expiring: i64,

    /// text (the monitoring-plugin form), json (one document), or prometheus (the text
    /// exposition format).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Prometheus,
}

/// `30`, `30d`, `12h`, `2w` as seconds.
fn duration_secs(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "d"),
    };
    let per = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration; write days (30 or 30d), hours (12h) or weeks (2w)"
            ))
        }
    };
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n <= 100 * 366)
        .ok_or_else(|| {
            format!("{text:?} is not a duration; write a whole number of days (30 or 30d), hours (12h) or weeks (2w), at most a century")
        })?;
    Ok(n * per)
}

/// `status --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document<'a> {
    version: u32,
    store: String,
    severity: Severity,
    exit_status: u8,
    #[serde(flatten)]
    status: &'a Status,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let unknown = |e: CliError| e.with_exit(Exit::Monitoring(Severity::Unknown));
    let store = ctx.open_existing().map_err(unknown)?;
    let now = Timestamp::now();
    let horizon = Timestamp::from_unix(now.unix().saturating_add(args.expiring));
    let status =
        Status::from_store(&store, now, horizon).map_err(|e| unknown(CliError::store(&e, ctx)))?;
    let severity = status.severity();
    print(&store, &status, severity, ctx, &args).map_err(unknown)?;
    Ok(Exit::Monitoring(severity))
}

/// Writes the report; a failure to write it is UNKNOWN too, never a warning.
fn print(
    store: &tofu_core::Store,
    status: &Status,
    severity: Severity,
    ctx: &Context,
    args: &Args,
) -> Result<(), CliError> {
    let mut out = Out::stdout();
    match args.format {
        Format::Json => write_json(
            &mut out,
            &Document {
                version: crate::json::VERSION,
                store: store.location().to_string(),
                severity,
                exit_status: severity.exit_code(),
                status,
            },
            true,
        )?,
        Format::Text => out.write_all(text(ctx, status, args.expiring).as_bytes())?,
        Format::Prometheus => out.write_all(prometheus(status).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The plugin form: a summary line with performance data, then one line per finding.
fn text(ctx: &Context, s: &Status, expiring: i64) -> String {
    let within = if expiring % 86_400 == 0 {
        plural((expiring / 86_400) as usize, "day", "days")
    } else {
        plural((expiring / 3_600) as usize, "hour", "hours")
    };
    let mut parts = Vec::new();
    let refusing = s.failing.iter().filter(|f| !f.report_only).count();
    if refusing > 0 {
        parts.push(format!(
            "{} refusing connections",
            plural(refusing, "endpoint", "endpoints")
        ));
    }
    if !s.expiring.is_empty() {
        parts.push(format!(
            "{} expiring within {within}",
            plural(s.expiring.len(), "pin", "pins")
        ));
    }
    if !s.shared_keys.is_empty() {
        parts.push(format!(
            "{} pinned on more than one host",
            plural(s.shared_keys.len(), "public key", "public keys")
        ));
    }
    if !s.report_only.is_empty() {
        parts.push(format!(
            "{} in report-only mode",
            plural(s.report_only.len(), "endpoint", "endpoints")
        ));
    }
    if parts.is_empty() {
        parts.push(format!(
            "{}, none refusing connections or expiring within {within}",
            plural(s.pins as usize, "pin", "pins")
        ));
    }
    let mut t = format!(
        "TOFU-CERTS {} - {} | failing={} expiring={} shared_keys={} report_only={} pins={}\n",
        s.severity().as_str(),
        parts.join(", "),
        refusing,
        s.expiring.len(),
        s.shared_keys.len(),
        s.report_only.len(),
        s.pins
    );
    for f in &s.failing {
        let r = &f.refusals;
        let hp = r.endpoint.host_port();
        let _ = write!(
            t,
            "{}: {} {} {} since {} (the latest at {})",
            if f.report_only { "warning" } else { "critical" },
            r.endpoint,
            if f.report_only {
                "in report-only mode let through or refused"
            } else {
                "refused"
            },
            plural(r.count as usize, "handshake", "handshakes"),
            r.since,
            r.last
        );
        match r.last_presented {
            Some(fp) => {
                let _ = writeln!(
                    t,
                    ", presenting {fp}; `{}` shows what changed, `{}` trusts it if the change is expected",
                    ctx.cmd(&format!("showcert host {hp}")),
                    ctx.cmd(&format!("accept host {hp} --fingerprint {fp}")),
                );
            }
            None => {
                let _ = writeln!(
                    t,
                    "; `{}` shows why",
                    ctx.cmd(&format!("showcert host {hp}"))
                );
            }
        }
    }
    for e in &s.expiring {
        let _ = writeln!(
            t,
            "warning: {} pins {} ({}), which {} {}",
            e.endpoint,
            e.fingerprint,
            printable(&e.subject),
            if e.expired { "expired" } else { "expires" },
            e.not_after
        );
    }
    for m in &s.report_only {
        let _ = writeln!(
            t,
            "warning: {} is in report-only mode since {} (set by {}): certificates matching none \
             of its pins are let through; `{}` refuses them again",
            m.endpoint,
            m.since,
            printable(&m.actor),
            ctx.cmd(&format!("mode host {} enforce", m.endpoint.host_port())),
        );
    }
    for k in &s.shared_keys {
        let names: Vec<String> = k.endpoints.iter().map(|e| e.to_string()).collect();
        let _ = writeln!(
            t,
            "warning: public key {} is pinned for endpoints on different hosts: {}; one key on \
             several machines is a cloned image or a vendor's default key",
            k.spki_fingerprint,
            names.join(", ")
        );
    }
    t
}

/// A label value in the exposition format: `\`, `"` and line feeds escaped.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The text exposition format (version 0.0.4), one family after another.
fn prometheus(s: &Status) -> String {
    let mut t = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(t, "# HELP {name} {help}");
        let _ = writeln!(t, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(t, "{name}{labels} {value}");
        }
    };
    family(
        "tofu_certs_status",
        "Severity in the monitoring-plugin convention: 0 OK, 1 warning, 2 critical.",
        vec![(String::new(), s.severity().exit_code().to_string())],
    );
    family(
        "tofu_certs_pins",
        "Pins in the store, active and staged.",
        vec![(String::new(), s.pins.to_string())],
    );
    family(
        "tofu_certs_endpoints_failing",
        "Endpoints refusing connections now (not counting those in report-only mode).",
        vec![(
            String::new(),
            s.failing
                .iter()
                .filter(|f| !f.report_only)
                .count()
                .to_string(),
        )],
    );
    let ep = |e: &tofu_core::Endpoint| format!("{{endpoint=\"{}\"}}", label(&e.to_string()));
    let ep_mode = |f: &tofu_core::health::Failing| {
        format!(
            "{{endpoint=\"{}\",mode=\"{}\"}}",
            label(&f.refusals.endpoint.to_string()),
            if f.report_only {
                "report-only"
            } else {
                "enforce"
            }
        )
    };
    family(
        "tofu_certs_endpoint_refusals",
        "Handshakes an endpoint failing now refused (in report-only mode: recorded, let through) since its pins last changed.",
        s.failing
            .iter()
            .map(|f| (ep_mode(f), f.refusals.count.to_string()))
            .collect(),
    );
    family(
        "tofu_certs_endpoint_failing_since_seconds",
        "When an endpoint refusing connections now first refused one (Unix time).",
        s.failing
            .iter()
            .map(|f| (ep_mode(f), f.refusals.since.unix().to_string()))
            .collect(),
    );
    family(
        "tofu_certs_endpoint_last_refusal_seconds",
        "When an endpoint refusing connections now last refused one (Unix time).",
        s.failing
            .iter()
            .map(|f| (ep_mode(f), f.refusals.last.unix().to_string()))
            .collect(),
    );
    family(
        "tofu_certs_pins_expiring",
        "Active pins whose certificate expires within the horizon asked for, or expired.",
        vec![(String::new(), s.expiring.len().to_string())],
    );
    family(
        "tofu_certs_pin_expiry_seconds",
        "Seconds until an expiring pin's certificate expires (negative once it has).",
        s.expiring
            .iter()
            .map(|e| {
                (
                    format!(
                        "{{endpoint=\"{}\",fingerprint=\"{}\"}}",
                        label(&e.endpoint.to_string()),
                        e.fingerprint
                    ),
                    (e.not_after.unix() - s.at.unix()).to_string(),
                )
            })
            .collect(),
    );
    family(
        "tofu_certs_endpoints_report_only",
        "Endpoints in report-only mode: what they would refuse is let through.",
        vec![(String::new(), s.report_only.len().to_string())],
    );
    family(
        "tofu_certs_endpoint_report_only",
        "1 for an endpoint in report-only mode.",
        s.report_only
            .iter()
            .map(|m| (ep(&m.endpoint), "1".to_owned()))
            .collect(),
    );
    family(
        "tofu_certs_shared_keys",
        "Public keys pinned for endpoints on more than one host.",
        vec![(String::new(), s.shared_keys.len().to_string())],
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_days_hours_or_weeks() {
        assert_eq!(duration_secs("30"), Ok(30 * 86_400));
        assert_eq!(duration_secs("30d"), Ok(30 * 86_400));
        assert_eq!(duration_secs("12h"), Ok(12 * 3_600));
        assert_eq!(duration_secs("2w"), Ok(14 * 86_400));
        for bad in [
            "",
            "d",
            "30m",
            "-1d",
            "1.5d",
            "99999999999999999999d",
            "40000d",
        ] {
            let e = duration_secs(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn label_values_are_escaped_as_the_exposition_format_says() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("a\nb"), "a\\nb");
    }
}
