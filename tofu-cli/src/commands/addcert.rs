//! `tofu-certs addcert host <HOST> --cert FILE`: pins a certificate ahead of first use;
//! `--fingerprint FP` pins one from its fingerprint alone (an awaited pin).

use std::io::Write;
use std::path::PathBuf;

use tofu_core::{
    cert::read_certificates,
    fingerprint::FingerprintError,
    pin::{PinMatch, PinSource, PinState},
    timestamp::Timestamp,
    Endpoint, Fingerprint,
};

use super::{read_input, Context, HostArgs, MatchArg};
use crate::error::{CliError, Exit};
use crate::json::{self, FormatArg};
use crate::output::{warning, write_json, Out};

/// The largest certificate file read: a leaf is a few KiB, a long chain some tens.
const MAX_CERT_FILE: u64 = 1024 * 1024;

/// Pin a certificate for an endpoint ahead of its first use, from a file you trust.
///
/// The file holds the endpoint's own (leaf) certificate, PEM or DER. A file with several
/// certificates (a chain or bundle) is refused rather than guessed from: only the leaf is
/// ever compared, so a CA certificate pinned by mistake would fail every connection. Extract
/// the leaf with `openssl x509 -in FILE -out leaf.pem`.
///
/// An endpoint that already has an active pin is refused: a second active pin widens trust
/// to both certificates. Give --additional to mean that (an HA pair behind one address);
/// `deletecert` then `addcert`, or `accept`, replace the pin instead. With --next the
/// certificate is staged for a planned rotation: it is accepted the first time the endpoint
/// presents it, and then replaces the active pins.
///
/// With --fingerprint FP instead of --cert, the endpoint is pinned from a fingerprint alone,
/// before any connection, as the server's administrator gave it to you: the certificate's
/// SHA-256 (`SHA256:…` as showcert prints it, colon hex as `openssl x509 -noout -fingerprint
/// -sha256` prints it, plain hex, or `sha256:HEX`), or with --match key the SHA-256 of its
/// public key (SubjectPublicKeyInfo; `sha256/BASE64` as HPKP and OkHttp write it, or any of
/// the above). The pin is awaited: the endpoint is pinned from now on (a certificate that does
/// not match is refused and quarantined, as for any pin, never trusted on first use), and the
/// first connection that presents a matching certificate, once the server proved it holds its
/// key, fills in the certificate's details (subject, issuer, names, validity); the audit log
/// records it as `filled`. Until then listcerts and showcert show it as awaited.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "tofu-certs addcert host <HOST> --cert FILE [OPTIONS]\n       \
                      tofu-certs addcert host <HOST> --fingerprint FP [--match key] [OPTIONS]",
    group(clap::ArgGroup::new("pinned").required(true).args(["cert", "fingerprint"]))
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) host: HostArgs,

    /// The certificate file, PEM or DER (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    cert: Option<PathBuf>,

    /// Pin from a fingerprint alone, before any connection: the certificate's SHA-256, or
    /// with --match key its public key's (an awaited pin, filled in by the first connection
    /// that presents a matching certificate).
    #[arg(long, value_name = "FP")]
    fingerprint: Option<String>,

    /// Stage the certificate for a planned rotation instead of pinning it now.
    #[arg(long)]
    next: bool,

    /// Trust the certificate in addition to the endpoint's active pins (without it, an
    /// endpoint that has an active pin is refused).
    #[arg(long, conflicts_with = "next")]
    additional: bool,

    /// What the pin matches: `certificate` (this exact certificate; the default) or `key`
    /// (its public key, so that a certificate renewed with the same key is accepted and
    /// recorded as a renewal).
    #[arg(
        long = "match",
        value_name = "WHAT",
        value_enum,
        default_value = "certificate"
    )]
    matches: MatchArg,

    /// A note kept with the pin, such as "HA secondary".
    #[arg(long, value_name = "TEXT", value_parser = label)]
    label: Option<String>,

    #[command(flatten)]
    format: FormatArg,
}

/// `addcert --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct Document<'a> {
    #[serde(flatten)]
    head: json::Head,
    /// The pin added (state `active`, or `next` with --next).
    pin: json::PinJson<'a>,
    /// The fingerprints of the endpoint's active pins now: every certificate it is trusted with.
    trusted: Vec<String>,
}

fn label(text: &str) -> Result<String, String> {
    if text.chars().any(tofu_core::text::must_escape) {
        Err(
            "a label cannot contain control or invisible formatting characters (such as a \
             newline or a right-to-left override)"
                .into(),
        )
    } else if text.chars().count() > 1000 {
        Err("a label is at most 1000 characters long".into())
    } else {
        Ok(text.to_owned())
    }
}

/// `addcert --fingerprint --format json`, schema version 1 (docs/json.md).
#[derive(serde::Serialize)]
struct AwaitedDocument<'a> {
    #[serde(flatten)]
    head: json::Head,
    /// The awaited pin added.
    awaited: json::AwaitedJson<'a>,
    /// The fingerprints of the endpoint's active pins now (an awaited pin is not among them:
    /// it has no certificate yet).
    trusted: Vec<String>,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let Some(cert) = &args.cert else {
        return run_fingerprint(ctx, &args);
    };
    let endpoint = &args.host.endpoint;
    let file = cert.display();
    let bytes = read_input(cert, MAX_CERT_FILE, "the certificate file")?;
    let certs = read_certificates(&bytes).map_err(|e| {
        CliError::failure(format!("{file} cannot be pinned: {e}")).hint(
            "give the server's certificate: `openssl s_client -connect HOST:PORT </dev/null \
             | openssl x509 -out cert.pem` saves the one a server presents",
        )
    })?;
    let der = match certs.as_slice() {
        [der] => der,
        _ => {
            return Err(CliError::failure(format!(
                "{file} holds {} certificates; a pin is the endpoint's own (leaf) certificate \
                 alone, so nothing was pinned",
                certs.len()
            ))
            .hint(format!(
                "`openssl x509 -in {} -out leaf.pem` writes the first certificate (in a chain, \
                 the leaf) to leaf.pem; check it with `openssl x509 -in leaf.pem -noout \
                 -subject`, then `{}`",
                crate::shell::quote(&cert.to_string_lossy()),
                ctx.cmd(&format!("addcert host {endpoint} --cert leaf.pem"))
            )))
        }
    };
    let state = if args.next {
        PinState::Next
    } else {
        PinState::Active
    };
    let store = ctx.open()?;
    // Without --additional, the store refuses a second active pin in the same transaction
    // that adds this one, so two addcerts racing cannot both succeed.
    let sole = state == PinState::Active && !args.additional;
    let added = store.add_pin_matching(
        endpoint,
        der,
        state,
        args.label.as_deref(),
        args.matches.into(),
        sole,
    );
    let pin = match added {
        Err(tofu_core::Error::ActivePinExists { active, .. }) => {
            return Err(refuse_a_second_active_pin(
                ctx,
                endpoint,
                &Fingerprint::of(der),
                &active,
                &format!("--cert {}", crate::shell::quote(&cert.to_string_lossy())),
            ))
        }
        other => other.map_err(|e| CliError::store(&e, ctx))?,
    };

    let mut out = Out::stdout();
    let d = &pin.details;
    let trusted = || -> Result<Vec<String>, CliError> {
        let record = store
            .endpoint(endpoint)
            .map_err(|e| CliError::store(&e, ctx))?;
        Ok(record
            .active()
            .map(|p| p.fingerprint().to_string())
            .collect())
    };
    if args.format.json() {
        let doc = Document {
            head: json::Head::new(endpoint),
            pin: json::pin(&pin, Timestamp::now()),
            trusted: trusted()?,
        };
        write_json(&mut out, &doc, true)?;
    }
    match state {
        _ if args.format.json() => {}
        PinState::Active => {
            writeln!(
                out,
                "pinned {endpoint} to {} ({})",
                d.fingerprint, d.subject
            )?;
            if pin.matches == PinMatch::Key {
                writeln!(
                    out,
                    "the pin matches the public key {}: a certificate renewed with it is \
                     accepted too",
                    d.spki_fingerprint
                )?;
            }
            let active = trusted()?;
            if active.len() > 1 {
                writeln!(
                    out,
                    "{} certificates are now trusted for {endpoint}: {}",
                    active.len(),
                    active.join(", ")
                )?;
            }
        }
        PinState::Next => writeln!(
            out,
            "staged {} ({}) for {endpoint}: the first connection that presents it makes it \
             the pin",
            d.fingerprint, d.subject
        )?,
    }
    out.flush()?;
    if d.not_after < Timestamp::now() {
        warning(&format!(
            "the certificate expired at {}; it is pinned all the same (trust-on-first-use \
             trusts the identity, not the dates)",
            d.not_after
        ));
    }
    Ok(Exit::Success)
}

/// Refuses to add an active pin to an endpoint that has one, naming its pins and the command
/// for each thing the operator may have meant. The same certificate again is left to
/// `Store::add_pin`, which says it is already pinned.
fn refuse_a_second_active_pin(
    ctx: &Context,
    endpoint: &Endpoint,
    fingerprint: &Fingerprint,
    active: &[(Fingerprint, String)],
    what: &str,
) -> CliError {
    let named: Vec<String> = active
        .iter()
        .map(|(fingerprint, subject)| format!("{fingerprint} ({subject})"))
        .collect();
    let pins = match named.as_slice() {
        [one] => format!("an active pin, {one}"),
        [init @ .., last] => format!(
            "{} active pins, {} and {last}",
            named.len(),
            init.join(", ")
        ),
        [] => "an active pin".to_owned(),
    };
    let add = |extra: &str| ctx.cmd(&format!("addcert host {endpoint} {what}{extra}"));
    CliError::failure(format!(
        "{endpoint} already has {pins}; a second active pin would trust both certificates, so \
         nothing was pinned"
    ))
    .hint(format!(
        "to trust both (an HA pair behind one address): `{}`",
        add(" --additional")
    ))
    .hint(format!(
        "to stage it for a planned rotation: `{}`",
        add(" --next")
    ))
    .hint(format!(
        "to replace the pin: `{}` then `{}`, or, once the server presents it, `{}` and `{}`",
        ctx.cmd(&format!("deletecert host {endpoint}")),
        add(""),
        ctx.cmd(&format!("probe host {endpoint}")),
        ctx.cmd(&format!(
            "accept host {endpoint} --fingerprint {fingerprint}"
        )),
    ))
}

/// `addcert --fingerprint FP`: an awaited pin.
fn run_fingerprint(ctx: &Context, args: &Args) -> Result<Exit, CliError> {
    let endpoint = &args.host.endpoint;
    // Called without --cert, so with --fingerprint: clap requires one of the two.
    let text = args.fingerprint.as_deref().unwrap_or_default();
    let matches: PinMatch = args.matches.into();
    if matches == PinMatch::Certificate && tofu_core::fingerprint::names_a_public_key(text) {
        return Err(CliError::new(
            Exit::Usage,
            format!(
                "{text:?} is in the notation of a public-key pin (HPKP, OkHttp: sha256/BASE64), \
                 but the pin would match the whole certificate; nothing was pinned"
            ),
        )
        .hint(format!(
            "to pin that public key: `{}`",
            ctx.cmd(&format!(
                "addcert host {endpoint} --fingerprint {} --match key",
                crate::shell::quote(text)
            ))
        )));
    }
    let fingerprint: Fingerprint = text.parse().map_err(|e: FingerprintError| {
        CliError::new(
            Exit::Usage,
            format!("--fingerprint {:?} cannot be pinned: {e}", text),
        )
        .hint(
            "give the SHA-256 fingerprint as `openssl x509 -in cert.pem -noout -fingerprint \
             -sha256` or `tofu-certs showcert` prints it",
        )
    })?;
    let state = if args.next {
        PinState::Next
    } else {
        PinState::Active
    };
    let store = ctx.open()?;
    let sole = state == PinState::Active && !args.additional;
    let added = store.await_pin_from(
        endpoint,
        &fingerprint,
        matches,
        state,
        sole,
        args.label.as_deref(),
        PinSource::Operator,
    );
    let awaited = match added {
        Err(tofu_core::Error::ActivePinExists { active, .. }) => {
            let mut what = format!("--fingerprint {fingerprint}");
            if matches == PinMatch::Key {
                what.push_str(" --match key");
            }
            return Err(refuse_a_second_active_pin(
                ctx,
                endpoint,
                &fingerprint,
                &active,
                &what,
            ));
        }
        other => other.map_err(|e| CliError::store(&e, ctx))?,
    };
    let record = store
        .endpoint(endpoint)
        .map_err(|e| CliError::store(&e, ctx))?;
    let trusted: Vec<String> = record
        .active()
        .map(|p| p.fingerprint().to_string())
        .collect();
    let mut out = Out::stdout();
    if args.format.json() {
        let doc = AwaitedDocument {
            head: json::Head::new(endpoint),
            awaited: json::awaited(&awaited),
            trusted,
        };
        write_json(&mut out, &doc, true)?;
        out.flush()?;
        return Ok(Exit::Success);
    }
    let what = match matches {
        PinMatch::Certificate => format!("the certificate {fingerprint}"),
        PinMatch::Key => format!("the public key {fingerprint}"),
    };
    match state {
        PinState::Active => writeln!(
            out,
            "pinned {endpoint} to {what}, awaited: no certificate yet. The first connection \
             that presents a matching certificate (and proves it holds its key) fills in its \
             details; any other certificate is refused"
        )?,
        PinState::Next => writeln!(
            out,
            "staged {what} for {endpoint}, awaited: no certificate yet. The first connection \
             that presents a matching certificate makes it the pin and retires the active pins"
        )?,
    }
    if !trusted.is_empty() && state == PinState::Active {
        writeln!(
            out,
            "{endpoint} also stays pinned to {}",
            trusted.join(", ")
        )?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
