//! The audit log: every change to the store, who made it and when. Append-only.

use std::fmt;
use std::str::FromStr;

use crate::pin::string_enum;
use crate::{timestamp::Timestamp, Endpoint, Fingerprint};

/// What happened to an endpoint's pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditEvent {
    /// A handshake pinned the endpoint on first use.
    Pinned,
    /// An operator added an active pin.
    Added,
    /// An operator staged a pin for a planned rotation.
    Staged,
    /// A staged pin was presented and became active.
    Promoted,
    /// An active pin was replaced by a promoted or accepted one.
    Retired,
    /// A pin was replaced by compare-and-swap.
    Replaced,
    /// A pin was removed.
    Removed,
    /// An operator accepted a quarantined certificate.
    Accepted,
    /// A pin was imported.
    Imported,
    /// A handshake presented a certificate that matched no pin and was rejected (logged the
    /// first time each certificate is presented; repeats are counted in the quarantine).
    MismatchRejected,
    /// Under the strict policy, an endpoint with no pin presented a certificate, which was
    /// rejected and quarantined so an operator can accept it by fingerprint.
    UnpinnedRejected,
    /// A key pin's endpoint presented a new certificate with the pinned public key (a
    /// renewal): the pin now holds the new certificate.
    Renewed,
    /// An endpoint in report-only mode presented a certificate that matched none of its
    /// pins: recorded as a refusal would be, and the connection proceeded.
    MismatchReported,
    /// An endpoint in report-only mode with no pin (under the strict policy) presented a
    /// certificate: recorded as a refusal would be, and the connection proceeded.
    UnpinnedReported,
    /// An operator put the endpoint in report-only mode.
    ReportOnly,
    /// An operator put the endpoint back to enforcing its pins.
    Enforced,
    /// A quarantined certificate was discarded (its endpoint was deleted, or newer ones
    /// pushed it out).
    Discarded,
    /// An operator pinned the endpoint from a fingerprint alone (an awaited pin, no
    /// certificate yet).
    Awaited,
    /// A handshake presented the certificate an awaited pin named, and proved its key: the
    /// pin now holds the certificate and its details.
    Filled,
}

string_enum!(
    AuditEvent, "audit event",
    AuditEvent::Pinned => "pinned",
    AuditEvent::Added => "added",
    AuditEvent::Staged => "staged",
    AuditEvent::Promoted => "promoted",
    AuditEvent::Retired => "retired",
    AuditEvent::Replaced => "replaced",
    AuditEvent::Removed => "removed",
    AuditEvent::Accepted => "accepted",
    AuditEvent::Imported => "imported",
    AuditEvent::MismatchRejected => "mismatch-rejected",
    AuditEvent::UnpinnedRejected => "unpinned-rejected",
    AuditEvent::Discarded => "discarded",
    AuditEvent::Renewed => "renewed",
    AuditEvent::Awaited => "awaited",
    AuditEvent::Filled => "filled",
    AuditEvent::MismatchReported => "mismatch-reported",
    AuditEvent::UnpinnedReported => "unpinned-reported",
    AuditEvent::ReportOnly => "report-only",
    AuditEvent::Enforced => "enforce",
);

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// Position in the log; strictly increasing.
    pub id: i64,
    /// When the change was committed.
    pub at: Timestamp,
    /// The endpoint changed.
    pub endpoint: Endpoint,
    /// What happened.
    pub event: AuditEvent,
    /// The certificate concerned (the new one, for a replacement).
    pub fingerprint: Option<Fingerprint>,
    /// The certificate it replaced, if any.
    pub previous: Option<Fingerprint>,
    /// The subject of `fingerprint`'s certificate.
    pub subject: Option<String>,
    /// Who made the change: a name and the process's pid and uid.
    pub actor: String,
}

/// Who is changing the store, as written to the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The current process: its name, pid and uid.
    pub fn current_process() -> Self {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".into());
        Self::named(&name)
    }

    /// A caller-chosen name (a service, a script, an operator), with the process's pid and uid.
    pub fn named(name: &str) -> Self {
        let name: String = name
            .chars()
            .filter(|&c| !crate::text::must_escape(c))
            .take(100)
            .collect();
        Self(format!(
            "{name} (pid {}, uid {})",
            std::process::id(),
            rustix::process::getuid().as_raw()
        ))
    }

    /// The text written to the log.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
