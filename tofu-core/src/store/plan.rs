//! The store's domain rules, once for every backend: pure functions from what a backend
//! [`Loaded`] for one endpoint (and the caller's inputs, the time and the actor) to the
//! [`Write`]s that follow and the outcome the caller gets, or the domain error that refuses
//! the change (then nothing is written).
//!
//! Nothing here reads a clock or a database, so each rule is tested below as a
//! specification, without one; `sqlite.rs` (and `postgres.rs`) only apply what is planned.

use rustls::pki_types::CertificateDer;

use super::backend::{Loaded, Write};
use super::{FirstUse, ImportReport, NewPin, Promoted, Removed};
use crate::audit::AuditEvent;
use crate::error::{Error, Result};
use crate::pin::{
    AwaitedPin, EndpointRecord, Pin, PinMatch, PinSource, PinState, Quarantined, ReportOnly,
};
use crate::quarantine::{self, Admission, Slot};
use crate::{CertificateDetails, Endpoint, Fingerprint, Timestamp};

/// What an operation writes, and what its caller is told.
#[derive(Debug)]
pub(crate) struct Planned<T> {
    /// Applied in this order, in the transaction that loaded the endpoint.
    pub(crate) writes: Vec<Write>,
    /// The operation's result, true once the writes commit.
    pub(crate) outcome: T,
}

impl<T> Planned<T> {
    fn nothing(outcome: T) -> Self {
        Planned {
            writes: Vec::new(),
            outcome,
        }
    }
}

/// The endpoint's record as callers see it (the quarantine without its bookkeeping).
pub(crate) fn record(loaded: Loaded) -> EndpointRecord {
    EndpointRecord {
        pins: loaded.pins,
        quarantined: loaded.quarantined.into_iter().map(|h| h.entry).collect(),
        awaited: loaded.awaited,
        report_only: loaded.report_only,
    }
}

fn find<'a>(pins: &'a [Pin], fingerprint: &Fingerprint) -> Option<&'a Pin> {
    pins.iter().find(|p| p.fingerprint() == *fingerprint)
}

fn active(pins: &[Pin]) -> impl Iterator<Item = &Pin> {
    pins.iter().filter(|p| p.state == PinState::Active)
}

/// The actor and time every audit entry of one operation shares.
struct Audit<'a> {
    endpoint: &'a Endpoint,
    now: Timestamp,
    actor: &'a str,
}

impl Audit<'_> {
    fn entry(
        &self,
        event: AuditEvent,
        cert: &CertificateDetails,
        previous: Option<Fingerprint>,
    ) -> Write {
        Write::audit(
            self.endpoint,
            event,
            Some(cert),
            previous,
            self.now,
            self.actor,
        )
    }
}

/// First use: pins `der` if, and only if, the endpoint has no pin, active or staged. The
/// table is checked without its index first ([`Write::CheckNoPinInTable`]): this is the one
/// write that opens trust, and an index that lost the endpoint's entry must not make a
/// pinned endpoint look unpinned.
pub(crate) fn first_use(
    endpoint: &Endpoint,
    loaded: Loaded,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    matches: PinMatch,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<FirstUse>> {
    // An awaited pin pins the endpoint: what it presents is checked against the fingerprint,
    // never trusted on first use.
    if !loaded.pins.is_empty() || !loaded.awaited.is_empty() {
        return Ok(Planned::nothing(FirstUse::AlreadyPinned(record(loaded))));
    }
    let pin = Pin {
        endpoint: endpoint.clone(),
        state: PinState::Active,
        der: der.clone().into_owned(),
        details,
        pinned_at: now,
        first_seen: Some(now),
        last_seen: Some(now),
        times_seen: 1,
        source: PinSource::FirstUse,
        label: None,
        matches,
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let writes = vec![
        Write::CheckNoPinInTable,
        Write::InsertPin(pin.clone()),
        Write::PinsChanged,
        audit.entry(AuditEvent::Pinned, &pin.details, None),
    ];
    Ok(Planned {
        writes,
        outcome: FirstUse::Pinned(Box::new(pin)),
    })
}

/// An operator's pin: active ahead of first use, or staged (`next`) for a planned rotation.
/// Other pins are kept; the same certificate twice is refused.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add(
    endpoint: &Endpoint,
    loaded: Loaded,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    state: PinState,
    label: Option<&str>,
    matches: PinMatch,
    sole: bool,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<Pin>> {
    if let Some(existing) = find(&loaded.pins, &details.fingerprint) {
        return Err(Error::AlreadyPinned {
            endpoint: endpoint.clone(),
            fingerprint: details.fingerprint,
            state: existing.state,
        });
    }
    if sole && state == PinState::Active {
        let active: Vec<(Fingerprint, String)> = loaded
            .pins
            .iter()
            .filter(|p| p.state == PinState::Active)
            .map(|p| (p.fingerprint(), p.details.subject.clone()))
            .collect();
        if !active.is_empty() {
            return Err(Error::ActivePinExists {
                endpoint: endpoint.clone(),
                active,
            });
        }
    }
    let pin = unseen_pin(
        endpoint,
        state,
        der,
        details,
        PinSource::Operator,
        now,
        label.map(|l| crate::text::bounded(l.to_owned(), crate::MAX_LABEL_CHARS)),
        matches,
    );
    let event = match state {
        PinState::Active => AuditEvent::Added,
        PinState::Next => AuditEvent::Staged,
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let writes = vec![
        Write::InsertPin(pin.clone()),
        Write::PinsChanged,
        audit.entry(event, &pin.details, None),
    ];
    Ok(Planned {
        writes,
        outcome: pin,
    })
}

/// Compare-and-swap of one active pin: `expected` must still be an active pin. The new
/// certificate keeps the old pin's label, and takes the place of any pin it already had.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replace(
    endpoint: &Endpoint,
    loaded: Loaded,
    expected: &Fingerprint,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    source: PinSource,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<Pin>> {
    let old = match find(&loaded.pins, expected) {
        Some(old) if old.state == PinState::Active => old,
        _ => {
            return Err(Error::PinChanged {
                endpoint: endpoint.clone(),
                expected: *expected,
            })
        }
    };
    let mut writes = vec![Write::DeletePin(*expected)];
    if details.fingerprint != *expected && find(&loaded.pins, &details.fingerprint).is_some() {
        writes.push(Write::DeletePin(details.fingerprint));
    }
    let pin = unseen_pin(
        endpoint,
        PinState::Active,
        der,
        details,
        source,
        now,
        old.label.clone(),
        old.matches,
    );
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    writes.push(Write::InsertPin(pin.clone()));
    writes.push(Write::PinsChanged);
    writes.push(audit.entry(AuditEvent::Replaced, &pin.details, Some(*expected)));
    Ok(Planned {
        writes,
        outcome: pin,
    })
}

/// Compare-and-swap over the whole active set: the active pins must still be exactly
/// `expected` (in any order, and not none). Staged pins are kept, except a staged copy of
/// the new certificate, which the new active pin replaces.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replace_active(
    endpoint: &Endpoint,
    loaded: Loaded,
    expected: &[Fingerprint],
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    source: PinSource,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<Pin>> {
    let mut current: Vec<Fingerprint> = active(&loaded.pins).map(Pin::fingerprint).collect();
    let mut wanted = expected.to_vec();
    current.sort_unstable();
    wanted.sort_unstable();
    if wanted.is_empty() || current != wanted {
        return Err(Error::PinChanged {
            endpoint: endpoint.clone(),
            expected: expected.first().copied().unwrap_or(details.fingerprint),
        });
    }
    let mut writes: Vec<Write> = active(&loaded.pins)
        .map(|old| Write::DeletePin(old.fingerprint()))
        .collect();
    if loaded
        .pins
        .iter()
        .any(|p| p.state == PinState::Next && p.fingerprint() == details.fingerprint)
    {
        writes.push(Write::DeletePin(details.fingerprint));
    }
    let pin = unseen_pin(
        endpoint,
        PinState::Active,
        der,
        details,
        source,
        now,
        active(&loaded.pins).find_map(|p| p.label.clone()),
        // What the operator chose for the endpoint stays: a key pin is replaced by a key pin.
        match active(&loaded.pins).any(|p| p.matches == PinMatch::Key) {
            true => PinMatch::Key,
            false => PinMatch::Certificate,
        },
    );
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    writes.push(Write::InsertPin(pin.clone()));
    writes.push(Write::PinsChanged);
    for old in &wanted {
        writes.push(audit.entry(AuditEvent::Replaced, &pin.details, Some(*old)));
    }
    Ok(Planned {
        writes,
        outcome: pin,
    })
}

/// Forgets the endpoint: every pin (audited as removed), every quarantined certificate
/// (audited as discarded) and its counters, so that the next refusal starts afresh.
pub(crate) fn remove_endpoint(
    endpoint: &Endpoint,
    loaded: Loaded,
    now: Timestamp,
    actor: &str,
) -> Planned<Removed> {
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let record = record(loaded);
    let mut writes: Vec<Write> = record
        .pins
        .iter()
        .map(|p| audit.entry(AuditEvent::Removed, &p.details, None))
        .chain(
            record
                .awaited
                .iter()
                .map(|a| awaited_audit(endpoint, AuditEvent::Removed, &a.fingerprint, now, actor)),
        )
        .chain(
            record
                .quarantined
                .iter()
                .map(|q| audit.entry(AuditEvent::Discarded, &q.details, None)),
        )
        .collect();
    writes.push(Write::DeleteEndpoint);
    Planned {
        writes,
        outcome: Removed {
            pins: record.pins,
            quarantined: record.quarantined,
            awaited: record.awaited,
        },
    }
}

/// Removes one pin by fingerprint; nothing (and `None`) when the endpoint has no such pin.
pub(crate) fn remove_pin(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    now: Timestamp,
    actor: &str,
) -> Planned<Option<Pin>> {
    let Some(pin) = find(&loaded.pins, fingerprint).cloned() else {
        return Planned::nothing(None);
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    Planned {
        writes: vec![
            Write::DeletePin(*fingerprint),
            Write::PinsChanged,
            audit.entry(AuditEvent::Removed, &pin.details, None),
        ],
        outcome: Some(pin),
    }
}

/// A refusal of `der`, which matched no pin: counted always; kept in quarantine within the
/// bounds of `quarantine.rs` (a repeat only counts); audited within its budget. The outcome
/// is whether the certificate is in quarantine, so that it can be accepted by fingerprint.
pub(crate) fn quarantine(
    endpoint: &Endpoint,
    loaded: Loaded,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    now: Timestamp,
    actor: &str,
) -> Planned<bool> {
    let fingerprint = details.fingerprint;
    let mut state = loaded.state;
    state.refusals += 1;
    state.failing_since = state.failing_since.or(Some(now.unix()));
    state.last_refused = Some(now.unix());
    state.last_presented = Some(fingerprint);
    let repeated = loaded
        .quarantined
        .iter()
        .any(|h| h.entry.details.fingerprint == fingerprint);
    if repeated {
        return Planned {
            writes: vec![
                Write::SetState(state),
                Write::QuarantineSeen {
                    fingerprint,
                    at: now,
                },
            ],
            outcome: true,
        };
    }
    let slots: Vec<Slot> = loaded
        .quarantined
        .iter()
        .map(|h| Slot {
            id: h.id,
            epoch: h.epoch,
            len: h.entry.der.len(),
            last_seen: h.entry.last_seen.unix(),
        })
        .collect();
    let mut kept = Vec::new();
    let admitted = match quarantine::admit(&slots, state.epoch, der.len()) {
        Admission::Keep { evict } => {
            kept.extend(evict.into_iter().map(Write::Evict));
            kept.push(Write::Quarantine {
                entry: Quarantined {
                    endpoint: endpoint.clone(),
                    der: der.clone().into_owned(),
                    details: details.clone(),
                    first_seen: now,
                    last_seen: now,
                    times_seen: 1,
                },
                epoch: state.epoch,
            });
            true
        }
        Admission::Full => false,
    };
    let audited = quarantine::audits_refusal(state.audited);
    if audited {
        state.audited += 1;
    }
    let mut writes = vec![Write::SetState(state)];
    writes.extend(kept);
    if audited {
        // An endpoint with only an awaited pin is pinned: its refusal is a mismatch.
        let unpinned = loaded.pins.is_empty() && loaded.awaited.is_empty();
        let event = match (unpinned, loaded.report_only.is_some()) {
            (false, false) => AuditEvent::MismatchRejected,
            (true, false) => AuditEvent::UnpinnedRejected,
            (false, true) => AuditEvent::MismatchReported,
            (true, true) => AuditEvent::UnpinnedReported,
        };
        let audit = Audit {
            endpoint,
            now,
            actor,
        };
        writes.push(audit.entry(event, &details, None));
    }
    Planned {
        writes,
        outcome: admitted,
    }
}

/// Puts the endpoint in report-only mode (`report_only`) or back to enforcing, audited;
/// nothing when it is in that mode already. The outcome is whether the mode changed.
pub(crate) fn set_report_only(
    endpoint: &Endpoint,
    loaded: Loaded,
    report_only: bool,
    now: Timestamp,
    actor: &str,
) -> Planned<bool> {
    if loaded.report_only.is_some() == report_only {
        return Planned::nothing(false);
    }
    let (write, event) = if report_only {
        let mode = ReportOnly {
            endpoint: endpoint.clone(),
            since: now,
            actor: actor.to_owned(),
        };
        (Write::SetReportOnly(Some(mode)), AuditEvent::ReportOnly)
    } else {
        (Write::SetReportOnly(None), AuditEvent::Enforced)
    };
    Planned {
        writes: vec![write, Write::audit(endpoint, event, None, None, now, actor)],
        outcome: true,
    }
}

/// Deletes the active awaited pins other than `keep` (awaited by `addcert --fingerprint`
/// without --next: trusted alongside the active pins, so replaced with them), each audited
/// as retired.
fn retire_awaited(
    writes: &mut Vec<Write>,
    audit: &Audit<'_>,
    awaited: &[AwaitedPin],
    keep: &Fingerprint,
) {
    for a in awaited
        .iter()
        .filter(|a| a.state == PinState::Active && a.fingerprint != *keep)
    {
        writes.push(Write::DeleteAwaited(a.fingerprint));
        writes.push(awaited_audit(
            audit.endpoint,
            AuditEvent::Retired,
            &a.fingerprint,
            audit.now,
            audit.actor,
        ));
    }
}

/// Deletes the active pins other than `keep`, each audited as retired; returns them.
fn retire_active(
    writes: &mut Vec<Write>,
    audit: &Audit<'_>,
    pins: &[Pin],
    keep: &Fingerprint,
) -> Vec<Pin> {
    let mut retired = Vec::new();
    for pin in active(pins).filter(|p| p.fingerprint() != *keep) {
        writes.push(Write::DeletePin(pin.fingerprint()));
        writes.push(audit.entry(AuditEvent::Retired, &pin.details, None));
        retired.push(pin.clone());
    }
    retired
}

/// An operator accepts the quarantined certificate named by fingerprint (never "whatever
/// was presented last"): it becomes the active pin, with the history of its refusals, and
/// the active pins are retired. Staged pins are kept.
pub(crate) fn accept_quarantined(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    matches: PinMatch,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<Promoted>> {
    let Some(q) = loaded
        .quarantined
        .iter()
        .map(|h| &h.entry)
        .find(|q| q.details.fingerprint == *fingerprint)
    else {
        return Err(Error::NotQuarantined {
            endpoint: endpoint.clone(),
            fingerprint: *fingerprint,
            quarantined: loaded
                .quarantined
                .iter()
                .map(|h| h.entry.details.fingerprint)
                .collect(),
        });
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let mut writes = Vec::new();
    let retired = retire_active(&mut writes, &audit, &loaded.pins, fingerprint);
    retire_awaited(&mut writes, &audit, &loaded.awaited, fingerprint);
    // Pinned meanwhile (staged, or added or pinned by another process after it was
    // quarantined): the accepted pin takes its place.
    if find(&loaded.pins, fingerprint).is_some() {
        writes.push(Write::DeletePin(*fingerprint));
    }
    writes.push(Write::Unquarantine(*fingerprint));
    let pin = Pin {
        endpoint: endpoint.clone(),
        state: PinState::Active,
        der: q.der.clone(),
        details: q.details.clone(),
        pinned_at: now,
        first_seen: Some(q.first_seen),
        last_seen: Some(q.last_seen),
        times_seen: q.times_seen,
        source: PinSource::Accepted,
        label: retired.iter().find_map(|p| p.label.clone()),
        matches,
    };
    writes.push(Write::InsertPin(pin.clone()));
    writes.push(Write::PinsChanged);
    let previous = retired.first().map(Pin::fingerprint);
    writes.push(audit.entry(AuditEvent::Accepted, &pin.details, previous));
    Ok(Planned {
        writes,
        outcome: Promoted { pin, retired },
    })
}

/// A handshake presented the staged pin `fingerprint`: it becomes active and the active
/// pins are retired. Nothing (and `None`) when it is not staged any more (another thread or
/// process promoted or removed it first).
pub(crate) fn promote_staged(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    now: Timestamp,
    actor: &str,
) -> Planned<Option<Promoted>> {
    let Some(staged) = loaded
        .pins
        .iter()
        .find(|p| p.state == PinState::Next && p.fingerprint() == *fingerprint)
        .cloned()
    else {
        return Planned::nothing(None);
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let mut writes = Vec::new();
    let retired = retire_active(&mut writes, &audit, &loaded.pins, fingerprint);
    retire_awaited(&mut writes, &audit, &loaded.awaited, fingerprint);
    writes.push(Write::ActivatePin {
        fingerprint: *fingerprint,
        at: now,
    });
    writes.push(Write::PinsChanged);
    let previous = retired.first().map(Pin::fingerprint);
    writes.push(audit.entry(AuditEvent::Promoted, &staged.details, previous));
    // What `ActivatePin` makes of the row.
    let pin = Pin {
        state: PinState::Active,
        first_seen: staged.first_seen.or(Some(now)),
        last_seen: Some(now),
        times_seen: staged.times_seen + 1,
        ..staged
    };
    Planned {
        writes,
        outcome: Some(Promoted { pin, retired }),
    }
}

/// A handshake presented `der`, a new certificate with the public key of the active key pin
/// `fingerprint`, after the server proved it holds that key: the pin takes the new certificate
/// (and keeps its label, source and when it was made), first seen now, audited as renewed with
/// the old certificate as the previous one. Nothing (and `None`) when that pin is not an
/// active key pin of this key any more (another process renewed, replaced or removed it), or
/// when the endpoint has the certificate pinned already.
pub(crate) fn renew(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    now: Timestamp,
    actor: &str,
) -> Planned<Option<Pin>> {
    let Some(old) = find(&loaded.pins, fingerprint)
        .filter(|p| p.state == PinState::Active && p.matches_key(&details.spki_fingerprint))
    else {
        return Planned::nothing(None);
    };
    if find(&loaded.pins, &details.fingerprint).is_some() {
        return Planned::nothing(None);
    }
    let pin = Pin {
        der: der.clone().into_owned(),
        details,
        first_seen: Some(now),
        last_seen: Some(now),
        times_seen: 1,
        ..old.clone()
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let writes = vec![
        Write::DeletePin(*fingerprint),
        Write::InsertPin(pin.clone()),
        Write::PinsChanged,
        audit.entry(AuditEvent::Renewed, &pin.details, Some(*fingerprint)),
    ];
    Planned {
        writes,
        outcome: Some(pin),
    }
}

/// `count` more handshakes presented the pin, the latest at `at`. Needs nothing loaded: a
/// pin removed meanwhile is simply not updated.
pub(crate) fn record_seen(fingerprint: &Fingerprint, count: u64, at: Timestamp) -> Vec<Write> {
    vec![Write::Seen {
        fingerprint: *fingerprint,
        count,
        at,
    }]
}

/// One endpoint's pins of an import file (`entries`, each certificate once, already
/// parsed), against what the store has. Pins with the same certificate in the same state
/// are left as they are; other pins of the endpoint are a conflict, or, when `replace` is
/// set, removed first.
/// Whether one entry of an import file is to be added to its endpoint's `group` (the file's
/// pins of that endpoint so far): the same certificate twice is kept once (`false`), but not
/// in two states (an error).
pub(crate) fn import_entry<'g>(
    mut group: impl Iterator<Item = (&'g NewPin, &'g CertificateDetails)>,
    p: &NewPin,
    details: &CertificateDetails,
) -> Result<bool> {
    match group.find(|(_, d)| d.fingerprint == details.fingerprint) {
        None => Ok(true),
        Some((q, _)) if q.state == p.state => Ok(false),
        Some(_) => Err(Error::ImportConflict {
            endpoint: p.endpoint.clone(),
            existing: details.fingerprint,
            imported: details.fingerprint,
        }),
    }
}

pub(crate) fn import(
    endpoint: &Endpoint,
    loaded: Loaded,
    entries: &[(&NewPin, CertificateDetails)],
    replace: bool,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<ImportReport>> {
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let mut report = ImportReport::default();
    let mut writes = Vec::new();
    let in_file = |pin: &Pin| {
        entries
            .iter()
            .any(|(p, d)| d.fingerprint == pin.fingerprint() && p.state == pin.state)
    };
    let foreign: Vec<&Pin> = loaded.pins.iter().filter(|pin| !in_file(pin)).collect();
    if let Some(other) = foreign.first() {
        if !replace {
            let imported = entries
                .iter()
                .find(|(_, d)| d.fingerprint != other.fingerprint())
                .map_or(other.fingerprint(), |(_, d)| d.fingerprint);
            return Err(Error::ImportConflict {
                endpoint: endpoint.clone(),
                existing: other.fingerprint(),
                imported,
            });
        }
        for old in &foreign {
            writes.push(Write::DeletePin(old.fingerprint()));
            writes.push(audit.entry(AuditEvent::Removed, &old.details, None));
            report.replaced += 1;
        }
    }
    // An awaited pin pins the endpoint as a pin does: the file must hold its certificate
    // (which then settles it), else it is a conflict, or with `replace` it goes too.
    let met = |a: &AwaitedPin| {
        entries.iter().any(|(p, d)| {
            a.is_met_by(d) && (a.matches == p.matches || a.matches == PinMatch::Certificate)
        })
    };
    let foreign_awaited: Vec<&AwaitedPin> = loaded.awaited.iter().filter(|a| !met(a)).collect();
    if let Some(other) = foreign_awaited.first() {
        if !replace {
            return Err(Error::ImportConflict {
                endpoint: endpoint.clone(),
                existing: other.fingerprint,
                imported: entries
                    .first()
                    .map_or(other.fingerprint, |(_, d)| d.fingerprint),
            });
        }
        for old in &foreign_awaited {
            writes.push(Write::DeleteAwaited(old.fingerprint));
            writes.push(awaited_audit(
                endpoint,
                AuditEvent::Removed,
                &old.fingerprint,
                now,
                actor,
            ));
            report.replaced += 1;
        }
    }
    for (p, details) in entries {
        if loaded
            .pins
            .iter()
            .any(|x| x.fingerprint() == details.fingerprint && x.state == p.state)
        {
            report.unchanged += 1;
            continue;
        }
        let pin = Pin {
            endpoint: p.endpoint.clone(),
            state: p.state,
            der: p.der.clone(),
            details: details.clone(),
            pinned_at: p.pinned_at.unwrap_or(now),
            first_seen: p.first_seen,
            last_seen: p.last_seen,
            times_seen: p.times_seen,
            source: p.source,
            label: p.label.clone(),
            matches: p.matches,
        };
        writes.push(Write::InsertPin(pin));
        writes.push(audit.entry(AuditEvent::Imported, details, None));
        report.added += 1;
    }
    if report.added + report.replaced > 0 {
        writes.push(Write::PinsChanged);
    }
    Ok(Planned {
        writes,
        outcome: report,
    })
}

/// An operator pins the endpoint from a fingerprint alone (`addcert --fingerprint`, or
/// `accept --fingerprint` of a certificate no longer in quarantine): an awaited pin, which
/// makes the endpoint pinned. Refused when a pin already matches that fingerprint, or the
/// same fingerprint is already awaited.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_awaited(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    matches: PinMatch,
    state: PinState,
    sole: bool,
    source: PinSource,
    label: Option<&str>,
    now: Timestamp,
    actor: &str,
) -> Result<Planned<AwaitedPin>> {
    let pinned = loaded.pins.iter().find(|p| match matches {
        PinMatch::Certificate => p.fingerprint() == *fingerprint,
        PinMatch::Key => p.matches_key(fingerprint),
    });
    if let Some(existing) = pinned {
        return Err(Error::AlreadyPinned {
            endpoint: endpoint.clone(),
            fingerprint: existing.fingerprint(),
            state: existing.state,
        });
    }
    if loaded.awaited.iter().any(|a| a.fingerprint == *fingerprint) {
        return Err(Error::AlreadyAwaited {
            endpoint: endpoint.clone(),
            fingerprint: *fingerprint,
        });
    }
    if sole && state == PinState::Active {
        let active: Vec<(Fingerprint, String)> = active(&loaded.pins)
            .map(|p| (p.fingerprint(), p.details.subject.clone()))
            .chain(
                loaded
                    .awaited
                    .iter()
                    .filter(|a| a.state == PinState::Active)
                    .map(|a| (a.fingerprint, "awaited, no certificate yet".to_owned())),
            )
            .collect();
        if !active.is_empty() {
            return Err(Error::ActivePinExists {
                endpoint: endpoint.clone(),
                active,
            });
        }
    }
    let awaited = AwaitedPin {
        endpoint: endpoint.clone(),
        fingerprint: *fingerprint,
        matches,
        state,
        pinned_at: now,
        source,
        label: label.map(|l| crate::text::bounded(l.to_owned(), crate::MAX_LABEL_CHARS)),
    };
    let writes = vec![
        Write::InsertAwaited(awaited.clone()),
        Write::PinsChanged,
        awaited_audit(endpoint, AuditEvent::Awaited, fingerprint, now, actor),
    ];
    Ok(Planned {
        writes,
        outcome: awaited,
    })
}

/// The audit entry of an awaited pin: its fingerprint, no subject (there is no certificate).
fn awaited_audit(
    endpoint: &Endpoint,
    event: AuditEvent,
    fingerprint: &Fingerprint,
    now: Timestamp,
    actor: &str,
) -> Write {
    Write::Audit(crate::audit::AuditEntry {
        id: 0,
        at: now,
        endpoint: endpoint.clone(),
        event,
        fingerprint: Some(*fingerprint),
        previous: None,
        subject: None,
        actor: actor.to_owned(),
    })
}

/// A handshake presented `der`, and the server proved it holds its key: the awaited pin it
/// meets becomes an active pin holding the certificate and its details (first seen now), with
/// the awaited pin's time, source and label. Nothing (and `None`) when no awaited pin is met
/// any more (another thread or process filled or removed it first).
pub(crate) fn fill(
    endpoint: &Endpoint,
    loaded: Loaded,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    now: Timestamp,
    actor: &str,
) -> Planned<Option<Pin>> {
    let Some(awaited) = loaded.awaited.iter().find(|a| a.is_met_by(&details)) else {
        return Planned::nothing(None);
    };
    let pin = Pin {
        endpoint: endpoint.clone(),
        state: PinState::Active,
        der: der.clone().into_owned(),
        details,
        pinned_at: awaited.pinned_at,
        first_seen: Some(now),
        last_seen: Some(now),
        times_seen: 1,
        source: awaited.source,
        label: awaited.label.clone(),
        matches: awaited.matches,
    };
    let audit = Audit {
        endpoint,
        now,
        actor,
    };
    let mut writes = vec![Write::DeleteAwaited(awaited.fingerprint)];
    // Awaited as the next pin: it replaces the active pins, as a staged pin does.
    let retired = match awaited.state {
        PinState::Next => {
            let keep = awaited.fingerprint;
            retire_awaited(&mut writes, &audit, &loaded.awaited, &keep);
            retire_active(&mut writes, &audit, &loaded.pins, &pin.details.fingerprint)
        }
        PinState::Active => Vec::new(),
    };
    // The certificate pinned meanwhile (addcert of the same certificate): the filled pin,
    // with its history, takes its place.
    if find(&loaded.pins, &pin.details.fingerprint).is_some() {
        writes.push(Write::DeletePin(pin.details.fingerprint));
    }
    writes.push(Write::InsertPin(pin.clone()));
    writes.push(Write::PinsChanged);
    writes.push(audit.entry(
        AuditEvent::Filled,
        &pin.details,
        retired.first().map(Pin::fingerprint),
    ));
    Planned {
        writes,
        outcome: Some(pin),
    }
}

/// Removes one awaited pin by fingerprint; nothing (and `None`) when there is none.
pub(crate) fn remove_awaited(
    endpoint: &Endpoint,
    loaded: Loaded,
    fingerprint: &Fingerprint,
    now: Timestamp,
    actor: &str,
) -> Planned<Option<AwaitedPin>> {
    let Some(awaited) = loaded
        .awaited
        .into_iter()
        .find(|a| a.fingerprint == *fingerprint)
    else {
        return Planned::nothing(None);
    };
    Planned {
        writes: vec![
            Write::DeleteAwaited(*fingerprint),
            Write::PinsChanged,
            awaited_audit(endpoint, AuditEvent::Removed, fingerprint, now, actor),
        ],
        outcome: Some(awaited),
    }
}

/// Every change that writes a pin also settles the awaited pins it meets: an awaited pin
/// whose certificate (or key, for a key pin) is now pinned another way (addcert of the file,
/// accept, import, a fill) is done waiting, and is deleted before the pin is written, so that
/// no awaited pin outlives its certificate's pin (which `check` reports). Run by the store
/// on what every plan returns, with the awaited pins that were loaded.
pub(crate) fn settle_awaited(awaited: &[AwaitedPin], writes: Vec<Write>) -> Vec<Write> {
    if awaited.is_empty() {
        return writes;
    }
    let mut out = Vec::with_capacity(writes.len() + 1);
    for w in writes {
        if let Write::InsertPin(pin) = &w {
            for a in awaited.iter().filter(|a| {
                a.is_met_by(&pin.details)
                    && (a.matches == pin.matches || a.matches == PinMatch::Certificate)
            }) {
                let delete = Write::DeleteAwaited(a.fingerprint);
                if !out.contains(&delete) {
                    out.push(delete);
                }
            }
        }
        out.push(w);
    }
    out
}

/// A pin an operator or a compare-and-swap made: pinned now, never presented yet.
#[allow(clippy::too_many_arguments)]
fn unseen_pin(
    endpoint: &Endpoint,
    state: PinState,
    der: &CertificateDer<'_>,
    details: CertificateDetails,
    source: PinSource,
    now: Timestamp,
    label: Option<String>,
    matches: PinMatch,
) -> Pin {
    Pin {
        endpoint: endpoint.clone(),
        state,
        der: der.clone().into_owned(),
        details,
        pinned_at: now,
        first_seen: None,
        last_seen: None,
        times_seen: 0,
        source,
        label,
        matches,
    }
}

#[cfg(test)]
mod tests {
    //! The rules as specifications: what each operation writes for a given record, with no
    //! database (what `sqlite.rs` makes of the writes is tested in `tests/store.rs`).

    use super::*;
    use crate::store::backend::{EndpointState, Held};

    const ACTOR: &str = "test";
    const NOW: Timestamp = Timestamp::from_unix(1_800_000_000);

    fn ep() -> Endpoint {
        "10.1.1.1_8082".parse().expect("a valid endpoint")
    }

    /// A self-signed certificate (a fresh key each time, so each call gives another one),
    /// and its details.
    fn cert() -> (CertificateDer<'static>, CertificateDetails) {
        let key = rcgen::KeyPair::generate().expect("key generation");
        let der = rcgen::CertificateParams::new(vec!["peer.example".into()])
            .expect("valid SANs")
            .self_signed(&key)
            .expect("self-signed certificate")
            .der()
            .clone();
        let details = CertificateDetails::from_der(&der).expect("rcgen's certificate parses");
        (der, details)
    }

    fn pin(state: PinState) -> Pin {
        let (der, details) = cert();
        Pin {
            endpoint: ep(),
            state,
            der,
            details,
            pinned_at: Timestamp::from_unix(1_700_000_000),
            first_seen: None,
            last_seen: None,
            times_seen: 0,
            source: PinSource::Operator,
            label: Some("primary".into()),
            matches: PinMatch::Certificate,
        }
    }

    fn held(id: i64, epoch: i64, last_seen: i64) -> Held {
        let (der, details) = cert();
        Held {
            entry: Quarantined {
                endpoint: ep(),
                der,
                details,
                first_seen: Timestamp::from_unix(last_seen),
                last_seen: Timestamp::from_unix(last_seen),
                times_seen: 1,
            },
            id,
            epoch,
        }
    }

    fn with_pins(pins: Vec<Pin>) -> Loaded {
        Loaded {
            pins,
            ..Loaded::default()
        }
    }

    /// The audit events among `writes`, in order.
    fn audited(writes: &[Write]) -> Vec<AuditEvent> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Audit(a) => Some(a.event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_use_of_an_unpinned_endpoint_checks_the_table_then_pins_and_audits() {
        let (der, details) = cert();
        let planned = first_use(
            &ep(),
            Loaded::default(),
            &der,
            details,
            PinMatch::Key,
            NOW,
            ACTOR,
        )
        .unwrap();
        let FirstUse::Pinned(pin) = planned.outcome else {
            panic!("not pinned: {:?}", planned.outcome)
        };
        assert_eq!(
            (
                pin.state,
                pin.source,
                pin.times_seen,
                pin.first_seen,
                pin.matches
            ),
            (
                PinState::Active,
                PinSource::FirstUse,
                1,
                Some(NOW),
                PinMatch::Key
            )
        );
        assert_eq!(planned.writes[0], Write::CheckNoPinInTable);
        assert_eq!(planned.writes[1], Write::InsertPin((*pin).clone()));
        assert_eq!(planned.writes[2], Write::PinsChanged);
        assert_eq!(audited(&planned.writes), [AuditEvent::Pinned]);
        let Write::Audit(entry) = &planned.writes[3] else {
            panic!("no audit entry")
        };
        assert_eq!((entry.at, entry.actor.as_str()), (NOW, ACTOR));
    }

    #[test]
    fn first_use_of_a_pinned_endpoint_writes_nothing_and_shows_the_pin() {
        for state in [PinState::Active, PinState::Next] {
            let existing = pin(state);
            let (der, details) = cert();
            let loaded = with_pins(vec![existing.clone()]);
            let planned = first_use(
                &ep(),
                loaded,
                &der,
                details,
                PinMatch::Certificate,
                NOW,
                ACTOR,
            )
            .unwrap();
            assert!(planned.writes.is_empty());
            let FirstUse::AlreadyPinned(record) = planned.outcome else {
                panic!("pinned beside a {state} pin")
            };
            assert_eq!(record.pins, [existing]);
        }
    }

    #[test]
    fn adding_a_certificate_the_endpoint_has_is_refused_with_its_state() {
        let existing = pin(PinState::Next);
        let (der, details) = (existing.der.clone(), existing.details.clone());
        let loaded = with_pins(vec![existing]);
        let err = add(
            &ep(),
            loaded,
            &der,
            details,
            PinState::Active,
            None,
            PinMatch::Certificate,
            false,
            NOW,
            ACTOR,
        )
        .expect_err("the same certificate twice");
        assert!(
            matches!(
                err,
                Error::AlreadyPinned {
                    state: PinState::Next,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn staging_a_pin_keeps_the_others_and_audits_it_as_staged() {
        let (der, details) = cert();
        let loaded = with_pins(vec![pin(PinState::Active)]);
        let planned = add(
            &ep(),
            loaded,
            &der,
            details,
            PinState::Next,
            Some("B"),
            PinMatch::Certificate,
            true,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert_eq!(planned.outcome.label.as_deref(), Some("B"));
        assert!(!planned
            .writes
            .iter()
            .any(|w| matches!(w, Write::DeletePin(_))));
        assert_eq!(audited(&planned.writes), [AuditEvent::Staged]);
        assert!(planned.writes.contains(&Write::PinsChanged));
    }

    #[test]
    fn a_sole_pin_is_refused_beside_an_active_one_and_allowed_beside_a_staged_one() {
        let active = pin(PinState::Active);
        let (der, details) = cert();
        let err = add(
            &ep(),
            with_pins(vec![active.clone()]),
            &der,
            details.clone(),
            PinState::Active,
            None,
            PinMatch::Certificate,
            true,
            NOW,
            ACTOR,
        )
        .expect_err("a second active pin, not asked for");
        assert!(
            matches!(&err, Error::ActivePinExists { active: a, .. }
                if a == &[(active.fingerprint(), active.details.subject.clone())]),
            "{err:?}"
        );
        let planned = add(
            &ep(),
            with_pins(vec![pin(PinState::Next)]),
            &der,
            details.clone(),
            PinState::Active,
            None,
            PinMatch::Certificate,
            true,
            NOW,
            ACTOR,
        )
        .expect("a staged pin is not an active one");
        assert!(planned.writes.contains(&Write::PinsChanged));
        // Asked for (`--additional`): the second active pin is added.
        add(
            &ep(),
            with_pins(vec![active]),
            &der,
            details,
            PinState::Active,
            None,
            PinMatch::Certificate,
            false,
            NOW,
            ACTOR,
        )
        .expect("an additional active pin");
    }

    #[test]
    fn replacing_with_a_stale_expected_fingerprint_changes_nothing() {
        let current = pin(PinState::Active);
        let staged = pin(PinState::Next);
        let (der, details) = cert();
        for stale in [details.fingerprint, staged.fingerprint()] {
            let loaded = with_pins(vec![current.clone(), staged.clone()]);
            let err = replace(
                &ep(),
                loaded,
                &stale,
                &der,
                details.clone(),
                PinSource::Operator,
                NOW,
                ACTOR,
            )
            .expect_err("expected pin is not active");
            assert!(
                matches!(err, Error::PinChanged { expected, .. } if expected == stale),
                "{err:?}"
            );
        }
    }

    #[test]
    fn replacing_the_active_pin_keeps_its_label_and_audits_the_old_fingerprint() {
        let current = pin(PinState::Active);
        let (der, details) = cert();
        let loaded = with_pins(vec![current.clone()]);
        let planned = replace(
            &ep(),
            loaded,
            &current.fingerprint(),
            &der,
            details,
            PinSource::Operator,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert_eq!(planned.outcome.label, current.label);
        assert_eq!(planned.writes[0], Write::DeletePin(current.fingerprint()));
        let Some(Write::Audit(entry)) = planned.writes.last() else {
            panic!("no audit entry")
        };
        assert_eq!(
            (entry.event, entry.previous),
            (AuditEvent::Replaced, Some(current.fingerprint()))
        );
    }

    #[test]
    fn replacing_the_active_set_needs_exactly_that_set_in_any_order() {
        let (a, b) = (pin(PinState::Active), pin(PinState::Active));
        let (der, details) = cert();
        let replace_with = |expected: &[Fingerprint]| {
            let loaded = with_pins(vec![a.clone(), b.clone()]);
            let (der, details) = (der.clone(), details.clone());
            replace_active(
                &ep(),
                loaded,
                expected,
                &der,
                details,
                PinSource::Operator,
                NOW,
                ACTOR,
            )
        };
        for partial in [&[][..], &[a.fingerprint()][..]] {
            let err = replace_with(partial).expect_err("not the whole set");
            assert!(matches!(err, Error::PinChanged { .. }), "{err:?}");
        }
        let planned = replace_with(&[b.fingerprint(), a.fingerprint()]).unwrap();
        let deleted: Vec<&Write> = planned
            .writes
            .iter()
            .filter(|w| matches!(w, Write::DeletePin(_)))
            .collect();
        assert_eq!(deleted.len(), 2);
        assert_eq!(
            audited(&planned.writes),
            [AuditEvent::Replaced, AuditEvent::Replaced]
        );
        assert_eq!(planned.outcome.matches, PinMatch::Certificate);
    }

    #[test]
    fn replacing_the_active_set_of_key_pins_makes_a_key_pin() {
        let old = Pin {
            matches: PinMatch::Key,
            ..pin(PinState::Active)
        };
        let (der, details) = cert();
        let planned = replace_active(
            &ep(),
            with_pins(vec![old.clone()]),
            &[old.fingerprint()],
            &der,
            details,
            PinSource::FirstUse,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert_eq!(planned.outcome.matches, PinMatch::Key);
    }

    #[test]
    fn removing_an_endpoint_audits_each_pin_and_certificate_then_deletes_it() {
        let loaded = Loaded {
            pins: vec![pin(PinState::Active), pin(PinState::Next)],
            quarantined: vec![held(7, 1, 100)],
            state: EndpointState::default(),
            awaited: Vec::new(),
            report_only: None,
        };
        let planned = remove_endpoint(&ep(), loaded, NOW, ACTOR);
        assert_eq!(
            audited(&planned.writes),
            [
                AuditEvent::Removed,
                AuditEvent::Removed,
                AuditEvent::Discarded
            ]
        );
        assert_eq!(planned.writes.last(), Some(&Write::DeleteEndpoint));
        assert_eq!(
            (
                planned.outcome.pins.len(),
                planned.outcome.quarantined.len()
            ),
            (2, 1)
        );
    }

    #[test]
    fn removing_a_pin_the_endpoint_does_not_have_writes_nothing() {
        let (_, other) = cert();
        let planned = remove_pin(
            &ep(),
            with_pins(vec![pin(PinState::Active)]),
            &other.fingerprint,
            NOW,
            ACTOR,
        );
        assert_eq!((planned.outcome, planned.writes), (None, vec![]));
    }

    #[test]
    fn a_first_refusal_quarantines_counts_and_audits_as_unpinned_or_mismatch() {
        for (pins, event) in [
            (vec![], AuditEvent::UnpinnedRejected),
            (vec![pin(PinState::Active)], AuditEvent::MismatchRejected),
        ] {
            let (der, details) = cert();
            let planned = quarantine(&ep(), with_pins(pins), &der, details, NOW, ACTOR);
            assert!(planned.outcome, "kept in quarantine");
            let Write::SetState(state) = planned.writes[0] else {
                panic!("no counters: {:?}", planned.writes)
            };
            assert_eq!(
                (state.refusals, state.audited, state.failing_since),
                (1, 1, Some(NOW.unix()))
            );
            assert!(matches!(
                planned.writes[1],
                Write::Quarantine { epoch: 0, .. }
            ));
            assert_eq!(audited(&planned.writes), [event]);
        }
    }

    #[test]
    fn a_repeated_refusal_only_counts() {
        let again = held(3, 1, 100);
        let loaded = Loaded {
            quarantined: vec![again.clone()],
            state: EndpointState {
                epoch: 1,
                refusals: 5,
                audited: 1,
                failing_since: Some(50),
                ..EndpointState::default()
            },
            ..Loaded::default()
        };
        let (der, details) = (again.entry.der.clone(), again.entry.details.clone());
        let planned = quarantine(&ep(), loaded, &der, details, NOW, ACTOR);
        assert!(planned.outcome);
        assert_eq!(
            planned.writes,
            [
                Write::SetState(EndpointState {
                    epoch: 1,
                    refusals: 6,
                    audited: 1,
                    failing_since: Some(50),
                    last_refused: Some(NOW.unix()),
                    last_presented: Some(again.entry.details.fingerprint),
                }),
                Write::QuarantineSeen {
                    fingerprint: again.entry.details.fingerprint,
                    at: NOW,
                },
            ]
        );
    }

    #[test]
    fn a_flood_never_evicts_the_first_certificates_of_the_epoch() {
        let mut loaded = Loaded {
            pins: vec![pin(PinState::Active)],
            quarantined: (1..=quarantine::MAX_ENTRIES as i64)
                .map(|id| held(id, 2, 100 + id))
                .collect(),
            state: EndpointState {
                epoch: 2,
                audited: quarantine::MAX_AUDITED_REFUSALS,
                ..EndpointState::default()
            },
            awaited: Vec::new(),
            report_only: None,
        };
        for next_id in 100..120 {
            let (der, details) = cert();
            let planned = quarantine(&ep(), loaded.clone(), &der, details, NOW, ACTOR);
            assert!(planned.outcome);
            assert!(audited(&planned.writes).is_empty(), "over the audit budget");
            for write in &planned.writes {
                match write {
                    Write::Evict(id) => {
                        assert!(*id > quarantine::PROTECTED as i64, "evicted {id}");
                        loaded.quarantined.retain(|h| h.id != *id);
                    }
                    Write::Quarantine { entry, epoch } => loaded.quarantined.insert(
                        0,
                        Held {
                            entry: entry.clone(),
                            id: next_id,
                            epoch: *epoch,
                        },
                    ),
                    _ => {}
                }
            }
            assert_eq!(loaded.quarantined.len(), quarantine::MAX_ENTRIES);
        }
    }

    #[test]
    fn accepting_retires_the_active_pins_and_keeps_the_staged_ones() {
        let (active_pin, staged) = (pin(PinState::Active), pin(PinState::Next));
        let q = held(4, 1, 100);
        let fingerprint = q.entry.details.fingerprint;
        let loaded = Loaded {
            pins: vec![active_pin.clone(), staged.clone()],
            quarantined: vec![q.clone()],
            state: EndpointState::default(),
            awaited: Vec::new(),
            report_only: None,
        };
        let planned = accept_quarantined(
            &ep(),
            loaded,
            &fingerprint,
            PinMatch::Certificate,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert_eq!(planned.outcome.retired, std::slice::from_ref(&active_pin));
        assert_eq!(
            planned.outcome.pin.label, active_pin.label,
            "the label carries over"
        );
        assert_eq!(planned.outcome.pin.source, PinSource::Accepted);
        assert!(planned
            .writes
            .contains(&Write::DeletePin(active_pin.fingerprint())));
        assert!(!planned
            .writes
            .contains(&Write::DeletePin(staged.fingerprint())));
        assert_eq!(
            audited(&planned.writes),
            [AuditEvent::Retired, AuditEvent::Accepted]
        );
    }

    #[test]
    fn accepting_a_certificate_not_in_quarantine_names_those_that_are() {
        let q = held(4, 1, 100);
        let (_, other) = cert();
        let loaded = Loaded {
            quarantined: vec![q.clone()],
            ..Loaded::default()
        };
        let err = accept_quarantined(
            &ep(),
            loaded,
            &other.fingerprint,
            PinMatch::Certificate,
            NOW,
            ACTOR,
        )
        .expect_err("not quarantined");
        let Error::NotQuarantined { quarantined, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(quarantined, [q.entry.details.fingerprint]);
    }

    #[test]
    fn promoting_a_staged_pin_activates_it_once() {
        let (old, staged) = (pin(PinState::Active), pin(PinState::Next));
        let loaded = with_pins(vec![old.clone(), staged.clone()]);
        let planned = promote_staged(&ep(), loaded, &staged.fingerprint(), NOW, ACTOR);
        let promoted = planned.outcome.expect("staged");
        assert_eq!(
            (
                promoted.pin.state,
                promoted.pin.times_seen,
                promoted.pin.last_seen
            ),
            (PinState::Active, 1, Some(NOW))
        );
        assert_eq!(promoted.retired, [old]);
        assert!(planned.writes.contains(&Write::ActivatePin {
            fingerprint: staged.fingerprint(),
            at: NOW
        }));
        // Promoted by someone else first: it is active now, and nothing is written.
        let again = with_pins(vec![promoted.pin.clone()]);
        let planned = promote_staged(&ep(), again, &staged.fingerprint(), NOW, ACTOR);
        assert!(planned.outcome.is_none() && planned.writes.is_empty());
    }

    #[test]
    fn importing_beside_other_pins_is_a_conflict_unless_replacing() {
        let existing = pin(PinState::Active);
        let (der, details) = cert();
        let new = NewPin {
            endpoint: ep(),
            der,
            state: PinState::Active,
            source: PinSource::Operator,
            label: None,
            pinned_at: None,
            first_seen: None,
            last_seen: None,
            times_seen: 0,
            matches: PinMatch::Certificate,
        };
        let entries = [(&new, details)];
        let loaded = with_pins(vec![existing.clone()]);
        let err =
            import(&ep(), loaded.clone(), &entries, false, NOW, ACTOR).expect_err("a conflict");
        assert!(matches!(err, Error::ImportConflict { .. }), "{err:?}");
        let planned = import(&ep(), loaded, &entries, true, NOW, ACTOR).unwrap();
        assert_eq!(
            planned.outcome,
            ImportReport {
                added: 1,
                unchanged: 0,
                replaced: 1
            }
        );
        assert_eq!(planned.writes.last(), Some(&Write::PinsChanged));
    }

    #[test]
    fn importing_what_is_already_pinned_changes_nothing() {
        let existing = pin(PinState::Active);
        let same = NewPin {
            endpoint: ep(),
            der: existing.der.clone(),
            state: PinState::Active,
            source: PinSource::Operator,
            label: None,
            pinned_at: None,
            first_seen: None,
            last_seen: None,
            times_seen: 0,
            matches: PinMatch::Certificate,
        };
        let entries = [(&same, existing.details.clone())];
        let planned = import(
            &ep(),
            with_pins(vec![existing]),
            &entries,
            false,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert_eq!(planned.outcome.unchanged, 1);
        assert!(planned.writes.is_empty());
    }

    /// A certificate of `key` (so two calls with one key give a renewal of each other).
    fn cert_of(
        key: &rcgen::KeyPair,
        not_after: i64,
    ) -> (CertificateDer<'static>, CertificateDetails) {
        let mut params = rcgen::CertificateParams::new(vec!["peer.example".into()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let der = params.self_signed(key).unwrap().der().clone();
        let details = CertificateDetails::from_der(&der).unwrap();
        (der, details)
    }

    #[test]
    fn a_renewal_of_a_key_pin_takes_the_new_certificate_and_audits_the_old_one() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (old_der, old_details) = cert_of(&key, 1_900_000_000);
        let old = Pin {
            der: old_der,
            details: old_details,
            matches: PinMatch::Key,
            times_seen: 40,
            ..pin(PinState::Active)
        };
        let (der, details) = cert_of(&key, 1_950_000_000);
        let planned = renew(
            &ep(),
            with_pins(vec![old.clone()]),
            &old.fingerprint(),
            &der,
            details.clone(),
            NOW,
            ACTOR,
        );
        let renewed = planned.outcome.expect("renewed");
        assert_eq!(renewed.details, details);
        assert_eq!(renewed.der, der);
        assert_eq!(
            (renewed.matches, renewed.label.as_deref(), renewed.source),
            (PinMatch::Key, Some("primary"), old.source)
        );
        assert_eq!(renewed.pinned_at, old.pinned_at);
        assert_eq!((renewed.first_seen, renewed.times_seen), (Some(NOW), 1));
        assert_eq!(planned.writes[0], Write::DeletePin(old.fingerprint()));
        assert_eq!(planned.writes[1], Write::InsertPin(renewed.clone()));
        assert_eq!(planned.writes[2], Write::PinsChanged);
        let Write::Audit(entry) = &planned.writes[3] else {
            panic!("no audit entry")
        };
        assert_eq!(
            (entry.event, entry.fingerprint, entry.previous),
            (
                AuditEvent::Renewed,
                Some(details.fingerprint),
                Some(old.fingerprint())
            )
        );
    }

    #[test]
    fn a_renewal_writes_nothing_unless_the_pin_is_still_an_active_key_pin_of_that_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (old_der, old_details) = cert_of(&key, 1_900_000_000);
        let key_pin = Pin {
            der: old_der,
            details: old_details,
            matches: PinMatch::Key,
            ..pin(PinState::Active)
        };
        let (der, details) = cert_of(&key, 1_950_000_000);
        let (_, other_key) = cert();
        for (pins, presented) in [
            // A certificate pin of the key: the exact certificate only.
            (
                vec![Pin {
                    matches: PinMatch::Certificate,
                    ..key_pin.clone()
                }],
                details.clone(),
            ),
            // Staged, not active.
            (
                vec![Pin {
                    state: PinState::Next,
                    ..key_pin.clone()
                }],
                details.clone(),
            ),
            // Another key.
            (vec![key_pin.clone()], other_key),
            // Removed meanwhile.
            (vec![], details.clone()),
        ] {
            let planned = renew(
                &ep(),
                with_pins(pins),
                &key_pin.fingerprint(),
                &der,
                presented,
                NOW,
                ACTOR,
            );
            assert!(planned.outcome.is_none() && planned.writes.is_empty());
        }
    }

    fn awaiting(fingerprint: Fingerprint, matches: PinMatch, state: PinState) -> AwaitedPin {
        AwaitedPin {
            endpoint: ep(),
            fingerprint,
            matches,
            state,
            pinned_at: Timestamp::from_unix(1_700_000_000),
            source: PinSource::Operator,
            label: Some("from the admin".into()),
        }
    }

    #[test]
    fn an_awaited_pin_is_inserted_and_audited_with_its_fingerprint_and_no_subject() {
        let fp = Fingerprint::of(b"a certificate");
        let planned = add_awaited(
            &ep(),
            Loaded::default(),
            &fp,
            PinMatch::Key,
            PinState::Active,
            true,
            PinSource::Operator,
            Some("admin"),
            NOW,
            ACTOR,
        )
        .unwrap();
        assert!(
            matches!(&planned.writes[0], Write::InsertAwaited(a) if a.fingerprint == fp
            && a.matches == PinMatch::Key && a.pinned_at == NOW)
        );
        assert_eq!(planned.writes[1], Write::PinsChanged);
        let Write::Audit(entry) = &planned.writes[2] else {
            panic!("{:?}", planned.writes)
        };
        assert_eq!(entry.event, AuditEvent::Awaited);
        assert_eq!(entry.fingerprint, Some(fp));
        assert_eq!(entry.subject, None);
    }

    #[test]
    fn an_awaited_pin_is_refused_twice_beside_its_pin_and_as_a_second_active_pin() {
        let p = pin(PinState::Active);
        let add = |loaded: Loaded, fp: &Fingerprint, matches, sole| {
            add_awaited(
                &ep(),
                loaded,
                fp,
                matches,
                PinState::Active,
                sole,
                PinSource::Operator,
                None,
                NOW,
                ACTOR,
            )
        };
        let same = add(
            with_pins(vec![p.clone()]),
            &p.fingerprint(),
            PinMatch::Certificate,
            false,
        );
        assert!(matches!(same, Err(Error::AlreadyPinned { .. })), "{same:?}");
        let other = Fingerprint::of(b"other");
        let loaded = Loaded {
            awaited: vec![awaiting(other, PinMatch::Certificate, PinState::Active)],
            ..Loaded::default()
        };
        let twice = add(loaded, &other, PinMatch::Certificate, false);
        assert!(
            matches!(twice, Err(Error::AlreadyAwaited { .. })),
            "{twice:?}"
        );
        let sole = add(
            with_pins(vec![p.clone()]),
            &other,
            PinMatch::Certificate,
            true,
        );
        assert!(
            matches!(sole, Err(Error::ActivePinExists { .. })),
            "{sole:?}"
        );
        // Beside it, when asked (--additional): the SPKI of a certificate pin is another pin.
        let beside = add(with_pins(vec![p]), &other, PinMatch::Key, false);
        assert!(beside.is_ok());
    }

    #[test]
    fn first_use_of_an_endpoint_with_only_an_awaited_pin_pins_nothing() {
        let (der, details) = cert();
        let loaded = Loaded {
            awaited: vec![awaiting(
                Fingerprint::of(b"x"),
                PinMatch::Certificate,
                PinState::Active,
            )],
            ..Loaded::default()
        };
        let planned = first_use(
            &ep(),
            loaded,
            &der,
            details,
            PinMatch::Certificate,
            NOW,
            ACTOR,
        )
        .unwrap();
        assert!(planned.writes.is_empty());
        assert!(matches!(planned.outcome, FirstUse::AlreadyPinned(r) if r.awaited.len() == 1));
    }

    #[test]
    fn a_fill_makes_the_awaited_pin_an_active_pin_of_the_certificate_keeping_its_label() {
        let (der, details) = cert();
        for (fp, matches) in [
            (details.fingerprint, PinMatch::Certificate),
            (details.spki_fingerprint, PinMatch::Key),
        ] {
            let loaded = Loaded {
                awaited: vec![awaiting(fp, matches, PinState::Active)],
                ..Loaded::default()
            };
            let planned = fill(&ep(), loaded, &der, details.clone(), NOW, ACTOR);
            let pin = planned
                .outcome
                .expect("the certificate meets the awaited pin");
            assert_eq!(pin.der, der);
            assert_eq!(pin.matches, matches);
            assert_eq!(pin.label.as_deref(), Some("from the admin"));
            assert_eq!(pin.pinned_at, Timestamp::from_unix(1_700_000_000));
            assert_eq!(pin.first_seen, Some(NOW));
            assert_eq!(planned.writes[0], Write::DeleteAwaited(fp));
            assert!(matches!(&planned.writes[1], Write::InsertPin(p) if *p == pin));
            assert_eq!(planned.writes[2], Write::PinsChanged);
            assert_eq!(audited(&planned.writes), [AuditEvent::Filled]);
        }
        // A certificate that meets none: nothing.
        let (other, other_details) = cert();
        let loaded = Loaded {
            awaited: vec![awaiting(
                details.fingerprint,
                PinMatch::Certificate,
                PinState::Active,
            )],
            ..Loaded::default()
        };
        let planned = fill(&ep(), loaded, &other, other_details, NOW, ACTOR);
        assert!(planned.outcome.is_none() && planned.writes.is_empty());
    }

    #[test]
    fn a_fill_of_an_awaited_next_pin_retires_the_active_pins_and_keeps_the_staged() {
        let (der, details) = cert();
        let active = pin(PinState::Active);
        let staged = pin(PinState::Next);
        let loaded = Loaded {
            pins: vec![active.clone(), staged],
            awaited: vec![awaiting(
                details.fingerprint,
                PinMatch::Certificate,
                PinState::Next,
            )],
            ..Loaded::default()
        };
        let planned = fill(&ep(), loaded, &der, details, NOW, ACTOR);
        assert!(planned
            .writes
            .contains(&Write::DeletePin(active.fingerprint())));
        assert_eq!(
            audited(&planned.writes),
            [AuditEvent::Retired, AuditEvent::Filled]
        );
    }

    #[test]
    fn removing_the_endpoint_removes_and_audits_its_awaited_pins() {
        let fp = Fingerprint::of(b"x");
        let loaded = Loaded {
            awaited: vec![awaiting(fp, PinMatch::Key, PinState::Active)],
            ..Loaded::default()
        };
        let planned = remove_endpoint(&ep(), loaded, NOW, ACTOR);
        assert_eq!(planned.outcome.awaited.len(), 1);
        assert_eq!(audited(&planned.writes), [AuditEvent::Removed]);
        assert_eq!(planned.writes.last(), Some(&Write::DeleteEndpoint));
        let loaded = Loaded {
            awaited: vec![awaiting(fp, PinMatch::Key, PinState::Active)],
            ..Loaded::default()
        };
        let planned = remove_awaited(&ep(), loaded, &fp, NOW, ACTOR);
        assert_eq!(planned.writes[0], Write::DeleteAwaited(fp));
        assert!(planned.outcome.is_some());
    }

    #[test]
    fn accepting_a_quarantined_certificate_retires_the_active_awaited_pins_too() {
        let h = held(1, 1, 100);
        let fp = h.entry.details.fingerprint;
        let (active, next) = (Fingerprint::of(b"active"), Fingerprint::of(b"next"));
        let loaded = Loaded {
            quarantined: vec![h],
            awaited: vec![
                awaiting(active, PinMatch::Certificate, PinState::Active),
                awaiting(next, PinMatch::Certificate, PinState::Next),
            ],
            ..Loaded::default()
        };
        let planned =
            accept_quarantined(&ep(), loaded, &fp, PinMatch::Certificate, NOW, ACTOR).unwrap();
        assert!(planned.writes.contains(&Write::DeleteAwaited(active)));
        assert!(!planned.writes.contains(&Write::DeleteAwaited(next)));
        assert_eq!(
            audited(&planned.writes),
            [AuditEvent::Retired, AuditEvent::Accepted]
        );
    }
}
