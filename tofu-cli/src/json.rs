//! `--format json`: the objects every command's JSON document is made of (a certificate, a
//! pin, a quarantined certificate), so that a pin reads the same in `listcerts`, `showcert`,
//! `deletecert`, `accept` and `addcert`, and the `--format` flag itself. The documents are
//! described in docs/json.md; fields are only ever added within a schema version.

use tofu_core::{
    cert::CertificateDetails,
    pin::{AwaitedPin, Pin, PinMatch, PinSource, PinState, Quarantined},
    timestamp::Timestamp,
    Endpoint,
};

/// The schema version of every command's JSON document.
pub(crate) const VERSION: u32 = 1;

/// `--format text|json`, for the commands that print a result. Case does not matter
/// (`--format JSON`), as a person typing it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// `--format`, flattened into a command's arguments.
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct FormatArg {
    /// text (for people) or json (one document for scripts; its schema is in docs/json.md).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

impl FormatArg {
    pub(crate) fn json(self) -> bool {
        self.format == Format::Json
    }
}

/// A certificate: what `CertificateDetails` holds, with the days left until it expires.
#[derive(serde::Serialize)]
pub(crate) struct CertJson<'a> {
    pub(crate) fingerprint: String,
    pub(crate) spki_fingerprint: String,
    pub(crate) subject: &'a str,
    pub(crate) issuer: &'a str,
    pub(crate) sans: &'a [String],
    pub(crate) not_before: Timestamp,
    pub(crate) not_after: Timestamp,
    pub(crate) days_left: i64,
}

/// A pin, active or staged (`next`).
#[derive(serde::Serialize)]
pub(crate) struct PinJson<'a> {
    pub(crate) endpoint: String,
    pub(crate) host_port: String,
    pub(crate) state: PinState,
    /// `certificate` (the exact certificate) or `key` (its public key: renewals match).
    #[serde(rename = "match")]
    pub(crate) matches: PinMatch,
    #[serde(flatten)]
    pub(crate) cert: CertJson<'a>,
    pub(crate) pinned_at: Timestamp,
    pub(crate) first_seen: Option<Timestamp>,
    pub(crate) last_seen: Option<Timestamp>,
    pub(crate) times_seen: u64,
    pub(crate) source: PinSource,
    pub(crate) label: Option<&'a str>,
}

/// An awaited pin: made from a fingerprint, no certificate presented yet. The fingerprint is
/// `fingerprint` (of the certificate) or `spki_fingerprint` (of its public key) as `match`
/// says, the other `null`; `subject` is `null` until the pin is filled in.
#[derive(serde::Serialize)]
pub(crate) struct AwaitedJson<'a> {
    pub(crate) endpoint: String,
    pub(crate) host_port: String,
    pub(crate) state: PinState,
    #[serde(rename = "match")]
    pub(crate) matches: PinMatch,
    pub(crate) awaited: bool,
    pub(crate) fingerprint: Option<String>,
    pub(crate) spki_fingerprint: Option<String>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) pinned_at: Timestamp,
    pub(crate) source: PinSource,
    pub(crate) label: Option<&'a str>,
}

pub(crate) fn awaited(a: &AwaitedPin) -> AwaitedJson<'_> {
    let fp = Some(a.fingerprint.to_string());
    let (fingerprint, spki_fingerprint) = match a.matches {
        PinMatch::Certificate => (fp, None),
        PinMatch::Key => (None, fp),
    };
    AwaitedJson {
        endpoint: a.endpoint.to_string(),
        host_port: a.endpoint.host_port(),
        state: a.state,
        matches: a.matches,
        awaited: true,
        fingerprint,
        spki_fingerprint,
        subject: None,
        pinned_at: a.pinned_at,
        source: a.source,
        label: a.label.as_deref(),
    }
}

pub(crate) fn all_awaited(list: &[AwaitedPin]) -> Vec<AwaitedJson<'_>> {
    list.iter().map(awaited).collect()
}

/// A quarantined certificate: presented, matched no pin, not trusted.
#[derive(serde::Serialize)]
pub(crate) struct QuarantinedJson<'a> {
    pub(crate) endpoint: String,
    pub(crate) host_port: String,
    #[serde(flatten)]
    pub(crate) cert: CertJson<'a>,
    pub(crate) first_seen: Timestamp,
    pub(crate) last_seen: Timestamp,
    pub(crate) times_seen: u64,
}

pub(crate) fn cert(d: &CertificateDetails, now: Timestamp) -> CertJson<'_> {
    CertJson {
        fingerprint: d.fingerprint.to_string(),
        spki_fingerprint: d.spki_fingerprint.to_string(),
        subject: &d.subject,
        issuer: &d.issuer,
        sans: &d.sans,
        not_before: d.not_before,
        not_after: d.not_after,
        days_left: now.days_until(d.not_after),
    }
}

pub(crate) fn pin(p: &Pin, now: Timestamp) -> PinJson<'_> {
    PinJson {
        endpoint: p.endpoint.to_string(),
        host_port: p.endpoint.host_port(),
        state: p.state,
        matches: p.matches,
        cert: cert(&p.details, now),
        pinned_at: p.pinned_at,
        first_seen: p.first_seen,
        last_seen: p.last_seen,
        times_seen: p.times_seen,
        source: p.source,
        label: p.label.as_deref(),
    }
}

pub(crate) fn pins(pins: &[Pin], now: Timestamp) -> Vec<PinJson<'_>> {
    pins.iter().map(|p| pin(p, now)).collect()
}

pub(crate) fn quarantined(q: &Quarantined, now: Timestamp) -> QuarantinedJson<'_> {
    QuarantinedJson {
        endpoint: q.endpoint.to_string(),
        host_port: q.endpoint.host_port(),
        cert: cert(&q.details, now),
        first_seen: q.first_seen,
        last_seen: q.last_seen,
        times_seen: q.times_seen,
    }
}

pub(crate) fn all_quarantined(list: &[Quarantined], now: Timestamp) -> Vec<QuarantinedJson<'_>> {
    list.iter().map(|q| quarantined(q, now)).collect()
}

/// The first members of a document about one endpoint: `version`, `endpoint`, `host_port`.
#[derive(serde::Serialize)]
pub(crate) struct Head {
    pub(crate) version: u32,
    pub(crate) endpoint: String,
    pub(crate) host_port: String,
}

impl Head {
    pub(crate) fn new(endpoint: &Endpoint) -> Self {
        Self {
            version: VERSION,
            endpoint: endpoint.to_string(),
            host_port: endpoint.host_port(),
        }
    }
}
