//! The storage boundary: what a backend (SQLite, PostgreSQL) must do, and nothing more.
//!
//! The domain rules (first use, several pins, staged promotion, the quarantine's bounds,
//! compare-and-swap, audit records) live once, in `plan.rs`, as pure functions from what a
//! backend [`Loaded`] for one endpoint to the [`Write`]s that follow. A backend only loads
//! an endpoint's record inside a transaction that keeps other writers of that endpoint out
//! until it commits, applies the writes in order, and commits; it never decides anything.

use std::fmt;
use std::ops::ControlFlow;

use crate::audit::{AuditEntry, AuditEvent};
use crate::error::Result;
use crate::pin::{AwaitedPin, Pin, Quarantined, ReportOnly};
use crate::store::CheckReport;
use crate::StoreLocation;
use crate::{Endpoint, Fingerprint, Timestamp};

/// What a backend reads about one endpoint, inside the write transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// Active pins, then staged pins, each in the order they were pinned.
    pub(crate) pins: Vec<Pin>,
    /// The quarantine, most recently presented first, with what its bounds need.
    pub(crate) quarantined: Vec<Held>,
    /// The endpoint's counters (all zero when it has no row yet).
    pub(crate) state: EndpointState,
    /// Pins from a fingerprint, awaiting their certificate, in the order pinned.
    pub(crate) awaited: Vec<AwaitedPin>,
    /// Whether it is in report-only mode.
    pub(crate) report_only: Option<ReportOnly>,
}

/// One quarantined certificate and its place in the bounds of `quarantine.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// The certificate and when it was presented.
    pub(crate) entry: Quarantined,
    /// Its row, in insertion order (unique within the endpoint).
    pub(crate) id: i64,
    /// The change of the endpoint's pins it was first quarantined after.
    pub(crate) epoch: i64,
}

/// Per endpoint: the number of changes of its pins, and the refusals since the last one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EndpointState {
    /// How many times its pins changed (0 before the first change).
    pub(crate) epoch: i64,
    /// Refusals since the last change.
    pub(crate) refusals: i64,
    /// Refusals written to the audit log since the last change.
    pub(crate) audited: i64,
    /// The first refusal since the last change (unix seconds).
    pub(crate) failing_since: Option<i64>,
    /// The latest refusal (unix seconds).
    pub(crate) last_refused: Option<i64>,
    /// What the latest refusal presented.
    pub(crate) last_presented: Option<Fingerprint>,
}

/// One change to an endpoint, applied by a backend in the order given, inside the
/// transaction that loaded the endpoint. Each is a plain row operation: every rule that
/// decides which to make is in `plan.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// Fails the transaction, writing nothing, with [`crate::Error::Corrupt`] unless the pin
    /// table and the awaited table, read *without their indexes*, hold no pin of the endpoint. Made before the one
    /// write that can open trust (a first-use pin), so that an index that lost an entry
    /// never makes a pinned endpoint look unpinned. A backend whose reads cannot miss a row
    /// this way may treat it as a no-op, and says so where it implements it.
    CheckNoPinInTable,
    /// Inserts this pin, and deletes the endpoint's quarantined copy of its certificate.
    InsertPin(Pin),
    /// Deletes the endpoint's pin with this fingerprint (if any).
    DeletePin(Fingerprint),
    /// A staged pin was presented: it becomes active, `first_seen` is set if unset,
    /// `last_seen` becomes `at` and `times_seen` goes up by one.
    ActivatePin {
        /// The staged pin.
        fingerprint: Fingerprint,
        /// When it was presented.
        at: Timestamp,
    },
    /// `count` more handshakes presented this pin, the latest at `at`: `first_seen` is set
    /// if unset, `last_seen` becomes the later of it and `at`. A pin removed meanwhile is
    /// left alone (the write affects no row).
    Seen {
        /// The pin.
        fingerprint: Fingerprint,
        /// Handshakes counted.
        count: u64,
        /// The latest of them.
        at: Timestamp,
    },
    /// Deletes every pin (awaited ones too), quarantined certificate and the counters of the
    /// endpoint.
    DeleteEndpoint,
    /// Inserts this awaited pin.
    InsertAwaited(AwaitedPin),
    /// Deletes the endpoint's awaited pin of this fingerprint (if any).
    DeleteAwaited(Fingerprint),
    /// The endpoint's pins changed: `epoch` goes up by one (the row is created with epoch 1
    /// when missing) and the refusal counters start over (all zero, times `None`).
    PinsChanged,
    /// Stores these counters (creating the row when missing). Made after a refusal.
    SetState(EndpointState),
    /// A quarantined certificate was presented again: its `last_seen` becomes `at` and its
    /// `times_seen` goes up by one.
    QuarantineSeen {
        /// The certificate.
        fingerprint: Fingerprint,
        /// When.
        at: Timestamp,
    },
    /// Inserts a quarantined certificate, first and last seen at its times, in this epoch.
    /// Its id is assigned by the backend, above every id the endpoint has.
    Quarantine {
        /// The certificate and its times.
        entry: Quarantined,
        /// The change of the pins it comes after.
        epoch: i64,
    },
    /// Deletes the quarantined certificate with this id.
    Evict(i64),
    /// Deletes the quarantined certificate with this fingerprint (if any).
    Unquarantine(Fingerprint),
    /// Appends to the audit log (its `id` is assigned by the backend and ignored here).
    Audit(AuditEntry),
    /// Puts the endpoint in report-only mode (`Some`, replacing any earlier row), or back
    /// to enforcing (`None`, deleting it). Not touched by [`Write::DeleteEndpoint`]: the
    /// mode is the operator's setting for the endpoint, not something it holds.
    SetReportOnly(Option<ReportOnly>),
}

impl Write {
    /// The audit entry for `event` on `endpoint`, at `at`, by `actor`.
    pub(crate) fn audit(
        endpoint: &Endpoint,
        event: AuditEvent,
        cert: Option<&crate::CertificateDetails>,
        previous: Option<Fingerprint>,
        at: Timestamp,
        actor: &str,
    ) -> Self {
        Write::Audit(AuditEntry {
            id: 0,
            at,
            endpoint: endpoint.clone(),
            event,
            fingerprint: cert.map(|c| c.fingerprint),
            previous,
            subject: cert.map(|c| c.subject.clone()),
            actor: actor.to_owned(),
        })
    }
}

/// Decides the writes for one endpoint from what was loaded. Called again, with a fresh
/// load, when the backend retries a transaction (a serialization failure); so it must not
/// have effects outside what it returns.
pub(crate) type Plan<'a> = dyn FnMut(&Endpoint, Loaded) -> Result<Vec<Write>> + 'a;

/// A write transaction opened by [`Backend::begin`]: rolled back when dropped uncommitted.
pub(crate) trait WriteTx {
    /// As [`Backend::update`], inside this transaction, and never retried: a serialization
    /// failure or deadlock is an error (the caller's input may be gone), and the transaction
    /// must then be dropped. The endpoints of one call are distinct, and distinct from every
    /// endpoint of an earlier call: a load sees the writes of earlier calls, but `plan` is
    /// not told which pins they wrote.
    fn update(&mut self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()>;

    /// Commits durably, all or nothing.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A place pins are stored. `Send + Sync`: one per process, shared by every thread.
///
/// Errors are [`crate::Error`]s that name the store ([`Backend::location`]) and never a
/// password, with the driver's error as a boxed source where there is one.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// Where the store is, as given (printable: passwords are never kept in its text).
    fn location(&self) -> &StoreLocation;

    /// Whether writes are refused (read-only files, a read-only role).
    fn is_read_only(&self) -> bool;

    /// A number that moves whenever anyone, in any process or on any machine, committed a
    /// change, and otherwise stays put. Cheap: callers read it on every handshake, so it must
    /// not cost a query to the database on that path.
    fn generation(&self) -> Result<u64>;

    /// The endpoint's pins and quarantine, read in one snapshot.
    fn load(&self, endpoint: &Endpoint) -> Result<Loaded>;

    /// In one transaction: for each endpoint of `endpoints` in order, loads it (locked
    /// against other writers of it until the commit, including one that creates its first
    /// pin), calls `plan`, and applies the writes it returns. Then commits, all or nothing,
    /// durably before returning. An error from `plan` rolls everything back and is returned
    /// as it is. A backend may retry the whole transaction a bounded number of times on a
    /// serialization failure or deadlock, calling `plan` again.
    ///
    /// A backend may instead lock and load many distinct endpoints at once, plan them in
    /// another order (the byte order of their text) and write them together, when that is
    /// the same as doing each in turn: an endpoint's load reads only its own rows, and its
    /// writes touch only them (and append to the audit log). So `plan` must not depend on
    /// the order it is called in.
    fn update(&self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()>;

    /// Opens one write transaction that several [`WriteTx::update`]s run in, for an import
    /// streamed in blocks: nothing is visible to anyone else, and nothing is durable, until
    /// [`WriteTx::commit`]; dropped without it (an error, a panic, the process killed), it
    /// writes nothing. Other writers of the store wait, or fail, meanwhile (SQLite: the whole
    /// store; PostgreSQL: the endpoints written so far).
    fn begin(&self) -> Result<Box<dyn WriteTx + '_>>;

    /// Every pin, ordered by endpoint (byte order of its text, `COLLATE "C"`), then active
    /// before staged, then in the order pinned; streamed, in one snapshot, until `f` breaks.
    fn for_each_pin(&self, f: &mut dyn FnMut(Pin) -> ControlFlow<()>) -> Result<()>;

    /// Every awaited pin, ordered by endpoint (byte order), then in the order pinned; streamed,
    /// in one snapshot.
    fn for_each_awaited(&self, f: &mut dyn FnMut(AwaitedPin) -> ControlFlow<()>) -> Result<()>;

    /// Every quarantined certificate, ordered by endpoint, then most recently presented
    /// first; streamed, in one snapshot.
    fn for_each_quarantined(&self, f: &mut dyn FnMut(Quarantined) -> ControlFlow<()>)
        -> Result<()>;

    /// The audit log of one endpoint or of all, oldest first; streamed, in one snapshot.
    fn for_each_audit(
        &self,
        endpoint: Option<&Endpoint>,
        f: &mut dyn FnMut(AuditEntry) -> ControlFlow<()>,
    ) -> Result<()>;

    /// Every endpoint that refused a certificate since its pins last changed, ordered by
    /// endpoint; streamed, in one snapshot.
    fn for_each_refusals(
        &self,
        f: &mut dyn FnMut(crate::health::Refusals) -> ControlFlow<()>,
    ) -> Result<()>;

    /// Every endpoint in report-only mode, ordered by endpoint; streamed, in one snapshot.
    fn for_each_report_only(&self, f: &mut dyn FnMut(ReportOnly) -> ControlFlow<()>) -> Result<()>;

    /// Reads every row and reports what is damaged (see [`crate::Store::check`]).
    fn check(&self) -> Result<CheckReport>;
}
