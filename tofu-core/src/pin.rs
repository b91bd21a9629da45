//! A pinned certificate and the certificates held in quarantine.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;

use crate::{cert::CertificateDetails, timestamp::Timestamp, Endpoint, Fingerprint};

/// Whether a pin is trusted now or staged for a planned rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinState {
    /// Trusted now: a handshake presenting this certificate is accepted.
    Active,
    /// Staged: accepted the first time the endpoint presents it, at which moment it becomes
    /// the active pin and the active pins it replaces are retired.
    Next,
}

/// How a pin got into the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinSource {
    /// Pinned by a handshake on first use.
    FirstUse,
    /// Added by an operator ahead of first use (`tofu-certs addcert`).
    Operator,
    /// Read from an export file (`tofu-certs import`).
    Imported,
    /// Accepted by an operator after a mismatch (`tofu-certs accept`).
    Accepted,
}

/// What a pin matches: the exact certificate, or any certificate with its public key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PinMatch {
    /// The exact certificate (its DER bytes): a renewed certificate is a mismatch. The default.
    #[default]
    Certificate,
    /// The certificate's public key (the SHA-256 of its SubjectPublicKeyInfo, as RFC 7469 and
    /// OkHttp pin): a certificate renewed with the same key matches, and the store records the
    /// renewal (the new certificate's details, when it was first seen, an audit entry).
    Key,
}

/// A pinned certificate of an endpoint, with everything the store records about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The endpoint the pin belongs to.
    pub endpoint: Endpoint,
    /// Active or staged.
    pub state: PinState,
    /// The leaf certificate, DER-encoded.
    pub der: CertificateDer<'static>,
    /// Fingerprints, names and validity extracted from `der`.
    pub details: CertificateDetails,
    /// When the pin was written to the store.
    pub pinned_at: Timestamp,
    /// When a handshake first presented the certificate (none yet for an unused operator pin).
    pub first_seen: Option<Timestamp>,
    /// When a handshake last presented it (updated at most once a minute per process).
    pub last_seen: Option<Timestamp>,
    /// How many handshakes presented it.
    pub times_seen: u64,
    /// How the pin got here.
    pub source: PinSource,
    /// An operator's note, such as "HA secondary".
    pub label: Option<String>,
    /// Whether the pin matches the exact certificate or its public key.
    pub matches: PinMatch,
}

impl Pin {
    /// The certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.details.fingerprint
    }

    /// Whether this is a key pin of the public key whose SPKI fingerprint is
    /// `spki_fingerprint`.
    pub fn matches_key(&self, spki_fingerprint: &Fingerprint) -> bool {
        self.matches == PinMatch::Key && self.details.spki_fingerprint == *spki_fingerprint
    }
}

/// A certificate that an endpoint presented and that did not match its pins, kept so an
/// operator can inspect it and accept exactly it (`tofu-certs accept`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The endpoint that presented it.
    pub endpoint: Endpoint,
    /// The presented leaf certificate, DER-encoded.
    pub der: CertificateDer<'static>,
    /// Fingerprints, names and validity extracted from `der`.
    pub details: CertificateDetails,
    /// The first handshake that presented it.
    pub first_seen: Timestamp,
    /// The latest handshake that presented it.
    pub last_seen: Timestamp,
    /// How many handshakes presented it.
    pub times_seen: u64,
}

/// A pin made from a fingerprint alone, before any connection (`tofu-certs addcert host H
/// --fingerprint FP`): the endpoint is pinned (never pinned on first use to whatever it
/// presents), and the first handshake that presents a matching certificate, once the server
/// proved it holds its key, fills in the certificate and its details and makes it an
/// ordinary active [`Pin`] (audited as `filled`). Until then it has no certificate, subject
/// or validity to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwaitedPin {
    /// The endpoint the pin belongs to.
    pub endpoint: Endpoint,
    /// The fingerprint awaited: with [`PinMatch::Certificate`] the SHA-256 of the whole
    /// certificate, with [`PinMatch::Key`] the SHA-256 of its SubjectPublicKeyInfo (an
    /// RFC 7469 / OkHttp pin).
    pub fingerprint: Fingerprint,
    /// What the fingerprint is of, and what the filled-in pin will match.
    pub matches: PinMatch,
    /// [`PinState::Active`]: the filled-in pin joins the endpoint's active pins (`addcert`).
    /// [`PinState::Next`]: it replaces them, as a staged pin does when presented (`addcert
    /// --next`, and `accept --fingerprint` of a certificate no longer in quarantine).
    pub state: PinState,
    /// When the pin was written to the store.
    pub pinned_at: Timestamp,
    /// How the pin got here ([`PinSource::Operator`] for `addcert`, [`PinSource::Accepted`]
    /// for `accept --fingerprint` of a certificate no longer in quarantine).
    pub source: PinSource,
    /// An operator's note.
    pub label: Option<String>,
}

impl AwaitedPin {
    /// Whether a certificate with these details is the one awaited.
    pub fn is_met_by(&self, details: &CertificateDetails) -> bool {
        match self.matches {
            PinMatch::Certificate => details.fingerprint == self.fingerprint,
            PinMatch::Key => details.spki_fingerprint == self.fingerprint,
        }
    }
}

/// Everything the store holds for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointRecord {
    /// Active pins, then staged pins, each in the order they were pinned.
    pub pins: Vec<Pin>,
    /// Quarantined certificates, most recently presented first.
    pub quarantined: Vec<Quarantined>,
    /// Pins made from a fingerprint, awaiting the first handshake that presents a matching
    /// certificate; in the order they were pinned. They count as pins: an endpoint with one
    /// is pinned.
    pub awaited: Vec<AwaitedPin>,
    /// When the endpoint is in report-only mode: since when, and who put it there.
    pub report_only: Option<ReportOnly>,
}

/// An endpoint in report-only mode (`tofu-certs mode host H report-only`): a certificate
/// that matches none of its pins is recorded and reported exactly as a refusal (quarantine,
/// refusal counts, audit log as `mismatch-reported`, the refusal callback), but the
/// connection proceeds. For a rollout that wants to see what would be refused before
/// refusing it; never the default, and shown by every command that touches the endpoint.
/// The handshake's other checks stand: the server must still prove it holds the key of the
/// certificate it presents, and chain or name checks a verifier requires still apply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReportOnly {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// When it was put in report-only mode.
    pub since: Timestamp,
    /// Who did it (the actor of the change).
    pub actor: String,
}

impl EndpointRecord {
    /// The active pins.
    pub fn active(&self) -> impl Iterator<Item = &Pin> {
        self.pins.iter().filter(|p| p.state == PinState::Active)
    }

    /// The staged pins.
    pub fn staged(&self) -> impl Iterator<Item = &Pin> {
        self.pins.iter().filter(|p| p.state == PinState::Next)
    }

    /// Whether the endpoint has any pin, active, staged or awaited.
    pub fn is_pinned(&self) -> bool {
        !self.pins.is_empty() || !self.awaited.is_empty()
    }
}

macro_rules! string_enum {
    ($ty:ty, $what:literal, $($variant:path => $text:literal),+ $(,)?) => {
        impl $ty {
            /// The name used in the store, the export format and JSON output.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($variant),)+
                    other => Err(format!(
                        concat!("{:?} is not a ", $what, "; expected one of: {}"),
                        // Bounded: the text may come from a hostile file.
                        other.chars().take(80).collect::<String>(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    PinMatch, "pin match",
    PinMatch::Certificate => "certificate",
    PinMatch::Key => "key",
);
string_enum!(PinState, "pin state", PinState::Active => "active", PinState::Next => "next");
string_enum!(
    PinSource, "pin source",
    PinSource::FirstUse => "first-use",
    PinSource::Operator => "operator",
    PinSource::Imported => "imported",
    PinSource::Accepted => "accepted",
);
pub(crate) use string_enum;
