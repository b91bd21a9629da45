//! The persistent pin store: the public [`Store`] facade over a storage backend.
//!
//! Every change is one transaction of the backend ([`backend::Backend::update`]): load the
//! endpoint's record, decide with the pure rules of `plan.rs`, apply what they planned,
//! commit durably before returning. So the rules (first use, several pins, staged promotion,
//! compare-and-swap, the quarantine's bounds, the audit log) exist once, and each backend
//! only stores rows: `sqlite.rs` for a store directory, `postgres.rs` (cargo feature
//! `postgres`) for a shared database.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use std::sync::Arc;

use crate::audit::{Actor, AuditEntry};
use crate::error::{Error, Result};
use crate::pin::{AwaitedPin, EndpointRecord, Pin, PinMatch, PinSource, PinState, Quarantined};
use crate::{CertificateDetails, Endpoint, Fingerprint, StoreLocation, Timestamp};

mod backend;
mod plan;
mod sqlite;
// The PostgreSQL backend, for `postgresql://` locations.
#[cfg(feature = "postgres")]
pub(crate) mod postgres;

use backend::{Backend, Loaded};
use sqlite::SqliteBackend;
pub use sqlite::{ALLOW_OWNER_VARIABLE, DATABASE_FILE};

/// A persistent store of pinned certificates, shared safely by threads and processes.
///
/// `Store` is `Send + Sync`; share one per process behind an `Arc`.
pub struct Store {
    backend: Arc<dyn Backend>,
    /// The same backend, when it is SQLite: what only a store directory has (its paths,
    /// SQLite's own integrity check).
    sqlite: Option<Arc<SqliteBackend>>,
    actor: Actor,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", self.backend.location())
            .field("actor", &self.actor)
            .field("read_only", &self.backend.is_read_only())
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Store::pin_first_use`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstUse {
    /// The endpoint had no pin; this certificate is now its pin.
    Pinned(Box<Pin>),
    /// The endpoint was pinned already (perhaps a moment ago, by another process); nothing was
    /// written. The record shows what is pinned.
    AlreadyPinned(EndpointRecord),
}

/// The outcome of [`Store::promote_staged`] and [`Store::accept_quarantined`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promoted {
    /// The pin that is now active.
    pub pin: Pin,
    /// The active pins it replaced, now removed (and audited as retired).
    pub retired: Vec<Pin>,
}

/// What [`Store::remove_endpoint`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The pins removed, active and staged.
    pub pins: Vec<Pin>,
    /// The quarantined certificates discarded.
    pub quarantined: Vec<Quarantined>,
    /// The awaited pins removed.
    pub awaited: Vec<AwaitedPin>,
}

/// A pin to be written by [`Store::import`], with the recorded history it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPin {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The leaf certificate.
    pub der: CertificateDer<'static>,
    /// Active or staged.
    pub state: PinState,
    /// How the pin first got into a store (kept across export and import).
    pub source: PinSource,
    /// An operator's note.
    pub label: Option<String>,
    /// When it was pinned; now, if unknown.
    pub pinned_at: Option<Timestamp>,
    /// When first presented.
    pub first_seen: Option<Timestamp>,
    /// When last presented.
    pub last_seen: Option<Timestamp>,
    /// How many handshakes presented it.
    pub times_seen: u64,
    /// Whether it matches the exact certificate or its public key.
    pub matches: PinMatch,
}

/// What [`Store::check`] found: the store is sound when `findings` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Pins read from the table itself (not through its index).
    pub pins: u64,
    /// Quarantined certificates read.
    pub quarantined: u64,
    /// Awaited pins (pins from a fingerprint, no certificate yet) read.
    pub awaited: u64,
    /// Audit entries read.
    pub audit_entries: u64,
    /// Each problem found, in the order the checks ran.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether nothing was found wrong.
    pub fn is_sound(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One problem [`Store::check`] found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Which check found it: `sqlite` (`PRAGMA integrity_check`), `schema` (application id
    /// or schema version), `pin`, `duplicate`, `quarantine`, `audit`.
    pub kind: &'static str,
    /// What is wrong, naming the row (`pin 12`, its endpoint) where there is one.
    pub detail: String,
}

/// What [`Store::import`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Pins written.
    pub added: usize,
    /// Pins already present with the same certificate and state.
    pub unchanged: usize,
    /// Existing pins removed because `replace` was asked for.
    pub replaced: usize,
}
impl Store {
    /// Opens the store in directory `dir`, creating the directory (mode 0700) and the database
    /// (mode 0600) if they do not exist.
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// assert_eq!(store.dir(), Some(dir.path().join("tofu").as_path()));
    /// // Another handle on the same store, as another process would open it.
    /// let again = Store::open_existing(dir.path().join("tofu"))?;
    /// # drop((store, again));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the directory or file cannot be created or used, the file is not a tofu-certs
    /// store, is damaged, or was written by a newer version.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_sqlite(dir.as_ref(), true)
    }

    /// Opens an existing store; never creates anything.
    ///
    /// # Errors
    /// [`Error::StoreNotFound`] when there is no store in `dir`, and those of [`Store::open`].
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_sqlite(dir.as_ref(), false)
    }

    /// Opens the store at `location`, creating it if it does not exist, as [`Store::open`]
    /// does for a directory.
    ///
    /// ```
    /// use tofu_core::{Store, StoreLocation};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// // What --store or TOFU_CERTS_STORE says: a directory, or a postgresql:// URI.
    /// let location: StoreLocation = dir.path().join("tofu").to_str().unwrap().parse()?;
    /// let store = Store::open_location(&location)?;
    /// assert!(!store.is_read_only());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a kind of store this build cannot open, and those of
    /// opening that kind of store.
    pub fn open_location(location: &StoreLocation) -> Result<Self> {
        Self::open_at(location, true)
    }

    /// Opens the existing store at `location`; never creates anything.
    ///
    /// # Errors
    /// [`Error::StoreNotFound`] when there is no store there, and those of
    /// [`Store::open_location`].
    pub fn open_existing_location(location: &StoreLocation) -> Result<Self> {
        Self::open_at(location, false)
    }

    fn open_at(location: &StoreLocation, create: bool) -> Result<Self> {
        match location {
            StoreLocation::Directory(dir) => Self::open_sqlite(dir, create),
            #[cfg(feature = "postgres")]
            StoreLocation::Postgres(pg) => Ok(Self {
                backend: Arc::new(postgres::PostgresBackend::open(pg, create)?),
                sqlite: None,
                actor: Actor::current_process(),
            }),
            #[cfg(not(feature = "postgres"))]
            StoreLocation::Postgres(_) => Err(Error::Unsupported {
                location: location.to_string(),
                reason: "this build has no PostgreSQL support; build with the cargo feature \
                         `postgres`, or give --store a directory"
                    .into(),
            }),
        }
    }

    fn open_sqlite(dir: &Path, create: bool) -> Result<Self> {
        let sqlite = Arc::new(SqliteBackend::open(dir, create)?);
        Ok(Self {
            backend: sqlite.clone(),
            sqlite: Some(sqlite),
            actor: Actor::current_process(),
        })
    }

    /// Names the actor written to the audit log for changes made through this handle
    /// (default: the process's executable name, pid and uid).
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Whether this process can only read the store.
    pub fn is_read_only(&self) -> bool {
        self.backend.is_read_only()
    }

    /// Where the store is: its directory, or its database (printable: never with a
    /// password).
    pub fn location(&self) -> &StoreLocation {
        self.backend.location()
    }

    /// The store directory, for a store that is one (SQLite); `None` otherwise.
    pub fn dir(&self) -> Option<&Path> {
        self.sqlite.as_deref().map(SqliteBackend::dir)
    }

    /// The SQLite database file inside the store directory; `None` for another kind of
    /// store.
    pub fn database_path(&self) -> Option<&Path> {
        self.sqlite.as_deref().map(SqliteBackend::database_path)
    }

    /// A number that changes whenever the store may have changed, in this process or any
    /// other. Cheap (one read of the WAL-index header, no lock and no disk write; one
    /// `PRAGMA data_version` on a per-thread connection when that header moved), so callers
    /// may call it on every lookup and reload what they cached when it moves.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn generation(&self) -> Result<u64> {
        self.backend.generation()
    }

    /// Everything stored for `endpoint`: active and staged pins and quarantined certificates.
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// assert!(!store.endpoint(&endpoint)?.is_pinned());
    /// store.add_sole_pin(&endpoint, &der("prime-sec"), Some("HA secondary"))?;
    /// let record = store.endpoint(&endpoint)?;
    /// assert_eq!(record.active().count(), 1);
    /// assert!(record.report_only.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn endpoint(&self, endpoint: &Endpoint) -> Result<EndpointRecord> {
        self.backend.load(endpoint).map(plan::record)
    }

    /// Pins `der` for `endpoint` if, and only if, the endpoint has no pin (active or staged).
    /// Of several threads or processes racing to pin one endpoint, exactly one gets
    /// [`FirstUse::Pinned`]; the others get [`FirstUse::AlreadyPinned`] with the winner's pin.
    ///
    /// # Errors
    /// When the certificate does not parse or the database cannot be written.
    pub fn pin_first_use(&self, endpoint: &Endpoint, der: &CertificateDer<'_>) -> Result<FirstUse> {
        self.pin_first_use_matching(endpoint, der, PinMatch::Certificate)
    }

    /// [`Store::pin_first_use`], the pin matching `matches` (the certificate, or its key).
    ///
    /// # Errors
    /// Those of [`Store::pin_first_use`].
    pub fn pin_first_use_matching(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
        matches: PinMatch,
    ) -> Result<FirstUse> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            plan::first_use(endpoint, loaded, der, details.clone(), matches, now, actor)
        })
    }

    /// Adds a pin ahead of first use (`state` active) or stages one for a planned rotation
    /// (`state` next). Other pins of the endpoint are kept.
    ///
    /// # Errors
    /// [`Error::AlreadyPinned`] when the endpoint already has this certificate, and those of
    /// reading the certificate or writing the database.
    pub fn add_pin(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
        state: PinState,
        label: Option<&str>,
    ) -> Result<Pin> {
        self.add(endpoint, der, state, label, PinMatch::Certificate, false)
    }

    /// [`Store::add_pin`], or with `matches` [`PinMatch::Key`] [`Store::add_sole_pin`] (`sole`),
    /// for a pin that matches the certificate's public key: a certificate renewed with the same
    /// key is then accepted, and recorded as a renewal.
    ///
    /// # Errors
    /// Those of [`Store::add_pin`] and [`Store::add_sole_pin`].
    pub fn add_pin_matching(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
        state: PinState,
        label: Option<&str>,
        matches: PinMatch,
        sole: bool,
    ) -> Result<Pin> {
        self.add(endpoint, der, state, label, matches, sole)
    }

    /// Adds `der` as the endpoint's active pin only if the endpoint has no active pin, in one
    /// transaction: of two operators or scripts adding different certificates at once, one
    /// succeeds and the other is refused, where checking first and adding after would give
    /// the endpoint two active pins. Staged pins do not count.
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// let pin = store.add_sole_pin(&endpoint, &der("prime-sec"), None)?;
    /// // Pinning the endpoint again, to another certificate, is refused.
    /// assert!(store.add_sole_pin(&endpoint, &der("other"), None).is_err());
    /// assert_eq!(store.endpoint(&endpoint)?.pins, [pin]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ActivePinExists`] when the endpoint has an active pin; those of
    /// [`Store::add_pin`].
    pub fn add_sole_pin(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
        label: Option<&str>,
    ) -> Result<Pin> {
        self.add(
            endpoint,
            der,
            PinState::Active,
            label,
            PinMatch::Certificate,
            true,
        )
    }

    fn add(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
        state: PinState,
        label: Option<&str>,
        matches: PinMatch,
        sole: bool,
    ) -> Result<Pin> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            plan::add(
                endpoint,
                loaded,
                der,
                details.clone(),
                state,
                label,
                matches,
                sole,
                now,
                actor,
            )
        })
    }

    /// Compare-and-swap: replaces the active pin `expected` of `endpoint` by `der`, only if
    /// `expected` is still an active pin of the endpoint.
    ///
    /// # Errors
    /// [`Error::PinChanged`] when `expected` is no longer pinned; nothing is written then.
    pub fn replace_pin(
        &self,
        endpoint: &Endpoint,
        expected: &Fingerprint,
        der: &CertificateDer<'_>,
        source: PinSource,
    ) -> Result<Pin> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            let details = details.clone();
            plan::replace(endpoint, loaded, expected, der, details, source, now, actor)
        })
    }

    /// Compare-and-swap over the whole active set: replaces the active pins of `endpoint` by
    /// `der`, only if they are still exactly `expected` (in any order). Staged pins are kept.
    ///
    /// # Errors
    /// [`Error::PinChanged`] when the active pins are no longer `expected`; nothing is
    /// written then.
    pub fn replace_active(
        &self,
        endpoint: &Endpoint,
        expected: &[Fingerprint],
        der: &CertificateDer<'_>,
        source: PinSource,
    ) -> Result<Pin> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            let details = details.clone();
            plan::replace_active(endpoint, loaded, expected, der, details, source, now, actor)
        })
    }

    /// Removes every pin of `endpoint`, active and staged, and its quarantined certificates.
    /// An empty result means there was nothing to remove.
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// store.add_sole_pin(&endpoint, &der("prime-sec"), None)?;
    /// // Prime's `deletecert host 10.1.1.1_8082`: the next connection pins what it presents.
    /// let removed = store.remove_endpoint(&endpoint)?;
    /// assert_eq!(removed.pins.len(), 1);
    /// assert!(!store.endpoint(&endpoint)?.is_pinned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn remove_endpoint(&self, endpoint: &Endpoint) -> Result<Removed> {
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::remove_endpoint(endpoint, loaded, now, actor))
        })
    }

    /// Pins `endpoint` from a fingerprint alone, before any connection: an awaited pin. With
    /// [`PinMatch::Certificate`], `fingerprint` is the SHA-256 of the whole certificate; with
    /// [`PinMatch::Key`], of its SubjectPublicKeyInfo (as RFC 7469 and OkHttp pin). The
    /// endpoint is pinned from now on (a certificate that does not match is refused and
    /// quarantined, never pinned on first use); the first handshake that presents a matching
    /// certificate and proves its key fills the pin in (see [`Store::fill_awaited`]).
    ///
    /// ```
    /// use tofu_core::pin::PinMatch;
    /// use tofu_core::{Fingerprint, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// let fp: Fingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".parse()?;
    /// let awaited = store.await_pin(&endpoint, &fp, PinMatch::Key, None)?;
    /// assert_eq!(awaited.fingerprint, fp);
    /// assert!(store.endpoint(&endpoint)?.is_pinned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AlreadyPinned`] when a pin already matches the fingerprint,
    /// [`Error::AlreadyAwaited`] when it is already awaited; when the database cannot be
    /// written.
    pub fn await_pin(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
        matches: PinMatch,
        label: Option<&str>,
    ) -> Result<AwaitedPin> {
        self.await_pin_from(
            endpoint,
            fingerprint,
            matches,
            PinState::Active,
            false,
            label,
            PinSource::Operator,
        )
    }

    /// [`Store::await_pin`] in full: `state` [`PinState::Next`] awaits a certificate that
    /// replaces the active pins when it is presented (as a staged pin does); `sole` refuses
    /// an active awaited pin beside an active pin (as [`Store::add_sole_pin`] does); `source`
    /// records how the pin got here (`accept --fingerprint` of a certificate no longer in
    /// quarantine records [`PinSource::Accepted`]).
    ///
    /// # Errors
    /// As [`Store::await_pin`], and [`Error::ActivePinExists`] when `sole` refuses.
    #[allow(clippy::too_many_arguments)]
    pub fn await_pin_from(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
        matches: PinMatch,
        state: PinState,
        sole: bool,
        label: Option<&str>,
        source: PinSource,
    ) -> Result<AwaitedPin> {
        self.update(endpoint, |loaded, now, actor| {
            plan::add_awaited(
                endpoint,
                loaded,
                fingerprint,
                matches,
                state,
                sole,
                source,
                label,
                now,
                actor,
            )
        })
    }

    /// Fills in the awaited pin of `endpoint` that `der` meets: it becomes an active pin of
    /// `der` (audited as `filled`). `None` when no awaited pin is met (another process
    /// filled or removed it first). For the verifier, which calls it only after the server
    /// proved it holds the certificate's key; call it yourself only with a certificate whose
    /// key was proved likewise.
    ///
    /// # Errors
    /// When `der` does not parse, or the database cannot be written.
    pub fn fill_awaited(
        &self,
        endpoint: &Endpoint,
        der: &CertificateDer<'_>,
    ) -> Result<Option<Pin>> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::fill(
                endpoint,
                loaded,
                der,
                details.clone(),
                now,
                actor,
            ))
        })
    }

    /// Removes one awaited pin of `endpoint` by its fingerprint; `None` when there is none.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn remove_awaited(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
    ) -> Result<Option<AwaitedPin>> {
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::remove_awaited(
                endpoint,
                loaded,
                fingerprint,
                now,
                actor,
            ))
        })
    }

    /// Calls `f` with every awaited pin, by endpoint, in the order pinned, in one snapshot.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_awaited(&self, mut f: impl FnMut(AwaitedPin) -> ControlFlow<()>) -> Result<()> {
        self.backend.for_each_awaited(&mut f)
    }

    /// Removes one pin of `endpoint` by fingerprint; `None` when it had no such pin.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn remove_pin(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Pin>> {
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::remove_pin(endpoint, loaded, fingerprint, now, actor))
        })
    }

    /// Records that `endpoint` presented `der`, which matched none of its pins, after the
    /// server proved it holds the certificate's key: counts the refusal, keeps the
    /// certificate in quarantine (a repeat only counts) and audits it, within the bounds of
    /// `quarantine.rs`, so that no peer can grow the store without bound or evict the
    /// certificates an operator is reading about. Returns whether the certificate is in
    /// quarantine (so that it can be accepted by fingerprint).
    ///
    /// # Errors
    /// When the certificate does not parse or the database cannot be written.
    pub fn quarantine(&self, endpoint: &Endpoint, der: &CertificateDer<'_>) -> Result<bool> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::quarantine(
                endpoint,
                loaded,
                der,
                details.clone(),
                now,
                actor,
            ))
        })
    }

    /// Accepts the quarantined certificate of `endpoint` whose fingerprint is `fingerprint`:
    /// it becomes the endpoint's active pin and the active pins are retired. Because the
    /// certificate is named by fingerprint, a different certificate presented later can never
    /// be accepted by mistake. Staged pins are kept.
    ///
    /// ```
    /// use tofu_core::{Fingerprint, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// store.add_sole_pin(&endpoint, &der("old"), None)?;
    /// // A handshake presented a new certificate: refused and quarantined (the verifier
    /// // does this once the server proved its key).
    /// let new = der("new");
    /// store.quarantine(&endpoint, &new)?;
    /// // The operator confirmed its fingerprint with the server's administrator.
    /// store.accept_quarantined(&endpoint, &Fingerprint::of(&new))?;
    /// assert_eq!(store.endpoint(&endpoint)?.pins[0].der, new);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::NotQuarantined`] when no quarantined certificate has that fingerprint.
    pub fn accept_quarantined(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
    ) -> Result<Promoted> {
        self.accept_quarantined_matching(endpoint, fingerprint, PinMatch::Certificate)
    }

    /// [`Store::accept_quarantined`], the new pin matching `matches`: with [`PinMatch::Key`],
    /// the certificate's later renewals with the same key are accepted too.
    ///
    /// # Errors
    /// Those of [`Store::accept_quarantined`].
    pub fn accept_quarantined_matching(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
        matches: PinMatch,
    ) -> Result<Promoted> {
        self.update(endpoint, |loaded, now, actor| {
            plan::accept_quarantined(endpoint, loaded, fingerprint, matches, now, actor)
        })
    }

    /// Records that `endpoint` presented `der`, a new certificate with the public key of its
    /// active key pin `fingerprint`, after the server proved it holds that key: the pin takes
    /// the new certificate (its details, first seen now) and the renewal is audited. Returns
    /// `None`, writing nothing, when that pin is no longer an active key pin of this key
    /// (another process renewed, replaced or removed it first).
    ///
    /// # Errors
    /// When the certificate does not parse or the database cannot be written.
    pub fn renew_pin(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
        der: &CertificateDer<'_>,
    ) -> Result<Option<Pin>> {
        let details = details(endpoint, der)?;
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::renew(
                endpoint,
                loaded,
                fingerprint,
                der,
                details.clone(),
                now,
                actor,
            ))
        })
    }

    /// Promotes the staged pin `fingerprint` of `endpoint` to active, retiring the active pins,
    /// because a handshake just presented it. Returns `None` when it is not staged any more
    /// (another thread or process promoted or removed it first).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn promote_staged(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
    ) -> Result<Option<Promoted>> {
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::promote_staged(
                endpoint,
                loaded,
                fingerprint,
                now,
                actor,
            ))
        })
    }

    /// Records `count` more handshakes that presented the pin `fingerprint`, the latest at
    /// `at`. Callers coalesce these (the verifier writes at most once a minute per pin) so a
    /// handshake is not a disk write. A pin removed meanwhile is ignored.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn record_seen(
        &self,
        endpoint: &Endpoint,
        fingerprint: &Fingerprint,
        count: u64,
        at: Timestamp,
    ) -> Result<()> {
        self.update(endpoint, |_, _, _| {
            Ok(plan::Planned {
                writes: plan::record_seen(fingerprint, count, at),
                outcome: (),
            })
        })
    }

    /// Writes `pins` in one transaction: all of them or, on any error, none.
    ///
    /// A pin whose endpoint already has the same certificate in the same state is left as it
    /// is. An endpoint that has other pins is a conflict, unless `replace` is set, in which case
    /// its existing pins are removed first.
    ///
    /// # Errors
    /// [`Error::ImportConflict`] and those of reading certificates or writing the database.
    pub fn import(&self, pins: &[NewPin], replace: bool) -> Result<ImportReport> {
        // The file's pins, grouped by endpoint in the order the endpoints first appear: an
        // endpoint's pins in one file belong together (an HA pair, an active pin and its
        // staged successor) and are compared with the store's as a set.
        let mut groups: Vec<(&Endpoint, Vec<(&NewPin, CertificateDetails)>)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let all_details = crate::parallel::map_in_order(pins, |p| details(&p.endpoint, &p.der));
        for (p, details) in pins.iter().zip(all_details) {
            let details = details?;
            let slot = *index.entry(&p.endpoint).or_insert_with(|| {
                groups.push((&p.endpoint, Vec::new()));
                groups.len() - 1
            });
            let group = &mut groups[slot].1;
            if plan::import_entry(group.iter().map(|(p, d)| (*p, d)), p, &details)? {
                group.push((p, details));
            }
        }
        let endpoints: Vec<&Endpoint> = groups.iter().map(|(e, _)| *e).collect();
        let mut reports = vec![ImportReport::default(); groups.len()];
        let actor = self.actor.as_str();
        self.backend.update(&endpoints, &mut |endpoint, loaded| {
            // By position, not appended: a backend that retries plans every endpoint again.
            let Some(&i) = index.get(endpoint) else {
                return Ok(Vec::new());
            };
            let awaited = loaded.awaited.clone();
            let planned = plan::import(
                endpoint,
                loaded,
                &groups[i].1,
                replace,
                Timestamp::now(),
                actor,
            )?;
            reports[i] = planned.outcome;
            Ok(plan::settle_awaited(&awaited, planned.writes))
        })?;
        Ok(reports
            .into_iter()
            .fold(ImportReport::default(), |sum, r| ImportReport {
                added: sum.added + r.added,
                unchanged: sum.unchanged + r.unchanged,
                replaced: sum.replaced + r.replaced,
            }))
    }

    /// Starts an import streamed in blocks, for more pins than fit in memory: give them to
    /// [`ImportStream::add`] a block at a time, then [`ImportStream::finish`]. It is one
    /// transaction, all or nothing, with the rules of [`Store::import`]; dropped before
    /// `finish` (an error, a panic, the process killed), nothing is written. Memory is bounded
    /// by one block and one endpoint's pins, because the pins must come in the order
    /// [`Store::for_each_pin`] gives them (and `tofu-certs export` writes them): the endpoints
    /// in the byte order of their text, each endpoint's pins together.
    ///
    /// Meanwhile, other writers wait for the store (SQLite: the whole store, up to its busy
    /// timeout; PostgreSQL: the endpoints written so far).
    ///
    /// ```
    /// use tofu_core::{pin::{PinMatch, PinSource, PinState}, store::NewPin, Endpoint, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("store"))?;
    /// let pin = |endpoint: &str, der| NewPin {
    ///     endpoint: endpoint.parse().unwrap(), der, state: PinState::Active,
    ///     source: PinSource::Imported, label: None, pinned_at: None, first_seen: None,
    ///     last_seen: None, times_seen: 0, matches: PinMatch::Certificate,
    /// };
    /// let mut import = store.import_stream(false)?;
    /// import.add(vec![pin("a.example:443", der("a")), pin("b.example:443", der("b"))])?;
    /// import.add(vec![pin("c.example:443", der("c"))])?;
    /// assert_eq!(import.finish()?.added, 3);
    ///
    /// // Out of order: refused, and nothing of it is written.
    /// let mut import = store.import_stream(false)?;
    /// import.add(vec![pin("e.example:443", der("e"))])?;
    /// assert!(import.add(vec![pin("d.example:443", der("d"))]).is_err());
    /// drop(import);
    /// assert!(!store.endpoint(&"e.example:443".parse()?)?.is_pinned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the store cannot be written (a read-only store, the database unreachable).
    pub fn import_stream(&self, replace: bool) -> Result<ImportStream<'_>> {
        Ok(ImportStream {
            tx: Some(self.backend.begin()?),
            actor: self.actor.as_str(),
            replace,
            pending: Vec::new(),
            previous: None,
            report: ImportReport::default(),
        })
    }

    /// Calls `f` with every pin, ordered by endpoint (then active before staged, then age),
    /// reading them one at a time so a million pins never sit in memory at once. `f` may stop
    /// early by returning `ControlFlow::Break`.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// store.add_sole_pin(&"b.example:443".parse()?, &der("b"), None)?;
    /// store.add_sole_pin(&"a.example:443".parse()?, &der("a"), None)?;
    /// let mut listed = Vec::new();
    /// store.for_each_pin(|pin| {
    ///     listed.push(pin.endpoint.host_port());
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(listed, ["a.example_443", "b.example_443"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_pin(&self, mut f: impl FnMut(Pin) -> ControlFlow<()>) -> Result<()> {
        self.backend.for_each_pin(&mut f)
    }

    /// Calls `f` with every quarantined certificate, ordered by endpoint.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_quarantined(
        &self,
        mut f: impl FnMut(Quarantined) -> ControlFlow<()>,
    ) -> Result<()> {
        self.backend.for_each_quarantined(&mut f)
    }

    /// Calls `f` with the audit log, oldest first, of one endpoint or of all.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use tofu_core::{audit::AuditEvent, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// store.add_sole_pin(&endpoint, &der("prime-sec"), None)?;
    /// store.remove_endpoint(&endpoint)?;
    /// let mut events = Vec::new();
    /// store.for_each_audit(Some(&endpoint), |entry| {
    ///     events.push(entry.event);
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(events, [AuditEvent::Added, AuditEvent::Removed]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_audit(
        &self,
        endpoint: Option<&Endpoint>,
        mut f: impl FnMut(AuditEntry) -> ControlFlow<()>,
    ) -> Result<()> {
        self.backend.for_each_audit(endpoint, &mut f)
    }

    /// Puts `endpoint` in report-only mode (`report_only`), or back to enforcing its pins:
    /// see [`ReportOnly`](crate::pin::ReportOnly). Audited (`report-only`, `enforce`);
    /// returns whether the mode changed (false: it was in that mode already). The mode is
    /// the endpoint's, whatever its pins: it stays through `remove_endpoint` and re-pinning,
    /// until set back. Verifiers see the change at their next handshake.
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let endpoint = "10.1.1.1:8082".parse()?;
    /// assert!(store.set_report_only(&endpoint, true)?);
    /// assert!(store.endpoint(&endpoint)?.report_only.is_some());
    /// assert!(store.set_report_only(&endpoint, false)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the database cannot be written.
    pub fn set_report_only(&self, endpoint: &Endpoint, report_only: bool) -> Result<bool> {
        self.update(endpoint, |loaded, now, actor| {
            Ok(plan::set_report_only(
                endpoint,
                loaded,
                report_only,
                now,
                actor,
            ))
        })
    }

    /// Calls `f` with every endpoint in report-only mode, ordered by endpoint.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_report_only(
        &self,
        mut f: impl FnMut(crate::pin::ReportOnly) -> ControlFlow<()>,
    ) -> Result<()> {
        self.backend.for_each_report_only(&mut f)
    }

    /// Calls `f` with every endpoint that refused a certificate since its pins last changed
    /// (how many times, since when, what it last presented), ordered by endpoint. Whether
    /// such an endpoint is failing *now* is [`crate::health::Status`]'s to say.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn for_each_refusals(
        &self,
        mut f: impl FnMut(crate::health::Refusals) -> ControlFlow<()>,
    ) -> Result<()> {
        self.backend.for_each_refusals(&mut f)
    }

    /// Checks the whole store: SQLite's `PRAGMA integrity_check` (every page, and every index
    /// against its table), the application id and schema version, and the store's own
    /// invariants, reading the tables themselves rather than their indexes: every pin's
    /// certificate parses and its stored fingerprints, subject and issuer are the
    /// certificate's, its endpoint and state and source are valid, no endpoint has the same
    /// certificate twice, and every quarantined certificate and audit entry can be read.
    /// Reads every row, so it takes time in proportion to the store (`tofu-certs check`).
    ///
    /// ```
    /// use tofu_core::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let der = |n: &str| rcgen::generate_simple_self_signed(vec![n.into()]).unwrap().cert.der().clone();
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// store.add_sole_pin(&"10.1.1.1:8082".parse()?, &der("prime-sec"), None)?;
    /// let report = store.check()?;
    /// assert!(report.is_sound(), "{:?}", report.findings);
    /// assert_eq!(report.pins, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Only when the store cannot be read at all; damage is reported as findings.
    pub fn check(&self) -> Result<CheckReport> {
        self.backend.check()
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `Ok(())` when the database is sound. For
    /// another kind of store, [`Store::check`] stands in for it.
    ///
    /// # Errors
    /// [`Error::Corrupt`] with the findings.
    pub fn integrity_check(&self) -> Result<()> {
        if let Some(sqlite) = &self.sqlite {
            return sqlite.integrity_check();
        }
        let report = self.backend.check()?;
        if report.is_sound() {
            return Ok(());
        }
        Err(Error::Corrupt {
            path: PathBuf::from(self.location().to_string()),
            detail: report
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.kind, f.detail))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// One change of one endpoint: `plan` decides, from what the backend loaded (inside the
    /// transaction), the time and this handle's actor, what to write and what to answer.
    /// Called again if the backend retries the transaction; the last call's answer stands.
    fn update<T>(
        &self,
        endpoint: &Endpoint,
        mut plan: impl FnMut(Loaded, Timestamp, &str) -> Result<plan::Planned<T>>,
    ) -> Result<T> {
        let mut outcome = None;
        let actor = self.actor.as_str();
        self.backend.update(&[endpoint], &mut |_, loaded| {
            let awaited = loaded.awaited.clone();
            let planned = plan(loaded, Timestamp::now(), actor)?;
            outcome = Some(planned.outcome);
            Ok(plan::settle_awaited(&awaited, planned.writes))
        })?;
        // `update` returns `Ok` only after it planned (and committed) every endpoint given.
        Ok(outcome.expect("the backend planned the one endpoint it was given"))
    }
}

/// An import in progress, from [`Store::import_stream`]: one open transaction, rolled back
/// when dropped before [`ImportStream::finish`].
pub struct ImportStream<'a> {
    /// `None` once an error made the transaction unusable: every later call fails.
    tx: Option<Box<dyn backend::WriteTx + 'a>>,
    actor: &'a str,
    replace: bool,
    /// The last endpoint's pins, held back until a later pin (or `finish`) shows that no
    /// more of that endpoint's pins follow.
    pending: Vec<(NewPin, CertificateDetails)>,
    /// The text of the endpoint of the pins written (or held) last.
    previous: Option<(String, Endpoint)>,
    report: ImportReport,
}

impl std::fmt::Debug for ImportStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportStream")
            .field("replace", &self.replace)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl ImportStream<'_> {
    /// Adds the next block of pins, in the order [`Store::import_stream`] requires; each
    /// certificate is parsed here, on the machine's cores.
    ///
    /// # Errors
    /// [`Error::ImportOutOfOrder`], [`Error::ImportConflict`] and those of reading
    /// certificates or writing the database. After an error, nothing of the import will be
    /// written and every later call fails: drop it.
    pub fn add(&mut self, pins: Vec<NewPin>) -> Result<()> {
        let all_details = crate::parallel::map_in_order(&pins, |p| details(&p.endpoint, &p.der));
        let mut detailed = Vec::with_capacity(pins.len());
        for (p, d) in pins.into_iter().zip(all_details) {
            match d {
                Ok(d) => detailed.push((p, d)),
                Err(e) => {
                    self.tx = None;
                    return Err(e);
                }
            }
        }
        self.add_detailed(detailed)
    }

    /// [`ImportStream::add`], the certificates' details already made.
    pub(crate) fn add_detailed(&mut self, pins: Vec<(NewPin, CertificateDetails)>) -> Result<()> {
        let result = self.try_add(pins);
        if result.is_err() {
            self.tx = None;
        }
        result
    }

    fn try_add(&mut self, pins: Vec<(NewPin, CertificateDetails)>) -> Result<()> {
        if self.tx.is_none() {
            return Err(Self::unusable());
        }
        // Complete groups, each an endpoint's pins, in order; the last stays pending.
        let mut groups: Vec<Vec<(NewPin, CertificateDetails)>> = Vec::new();
        for (p, d) in pins {
            let key = p.endpoint.to_string();
            match &self.previous {
                Some((prev, _)) if *prev == key => {}
                Some((prev, previous)) if key < *prev => {
                    return Err(Error::ImportOutOfOrder {
                        endpoint: p.endpoint,
                        previous: previous.clone(),
                    })
                }
                _ => {
                    if !self.pending.is_empty() {
                        groups.push(std::mem::take(&mut self.pending));
                    }
                    self.previous = Some((key, p.endpoint.clone()));
                }
            }
            if plan::import_entry(self.pending.iter().map(|(p, d)| (p, d)), &p, &d)? {
                self.pending.push((p, d));
            }
        }
        self.write(groups)
    }

    /// Plans and writes complete groups, in the transaction.
    fn write(&mut self, groups: Vec<Vec<(NewPin, CertificateDetails)>>) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let refs: Vec<Vec<(&NewPin, CertificateDetails)>> = groups
            .iter()
            .map(|g| g.iter().map(|(p, d)| (p, d.clone())).collect())
            .collect();
        let endpoints: Vec<&Endpoint> = groups.iter().map(|g| &g[0].0.endpoint).collect();
        let index: std::collections::HashMap<&Endpoint, usize> =
            endpoints.iter().enumerate().map(|(i, e)| (*e, i)).collect();
        let mut reports = vec![ImportReport::default(); groups.len()];
        let (replace, actor) = (self.replace, self.actor);
        let tx = self.tx.as_mut().ok_or_else(Self::unusable)?;
        tx.update(&endpoints, &mut |endpoint, loaded| {
            let Some(&i) = index.get(endpoint) else {
                return Ok(Vec::new());
            };
            let planned =
                plan::import(endpoint, loaded, &refs[i], replace, Timestamp::now(), actor)?;
            reports[i] = planned.outcome;
            Ok(planned.writes)
        })?;
        for r in reports {
            self.report.added += r.added;
            self.report.unchanged += r.unchanged;
            self.report.replaced += r.replaced;
        }
        Ok(())
    }

    /// Writes the last endpoint's pins and commits: every pin added, or (on an error) none.
    ///
    /// # Errors
    /// Those of [`ImportStream::add`], and of the commit.
    pub fn finish(mut self) -> Result<ImportReport> {
        if self.tx.is_none() {
            return Err(Self::unusable());
        }
        let last = std::mem::take(&mut self.pending);
        if !last.is_empty() {
            self.write(vec![last])?;
        }
        let tx = self.tx.take().ok_or_else(Self::unusable)?;
        tx.commit()?;
        Ok(self.report)
    }

    fn unusable() -> Error {
        Error::ImportEnded
    }
}

/// The certificate's details, or why it cannot be pinned for `endpoint`.
fn details(endpoint: &Endpoint, der: &CertificateDer<'_>) -> Result<CertificateDetails> {
    CertificateDetails::from_der(der).map_err(|source| Error::Certificate {
        endpoint: endpoint.clone(),
        source,
    })
}
