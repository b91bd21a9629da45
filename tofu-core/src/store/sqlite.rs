//! The SQLite backend: a store directory holding one database in WAL mode.
//!
//! Every change is one `BEGIN IMMEDIATE` transaction, committed with `synchronous=FULL` before
//! the call returns, so changes are atomic across threads and processes and survive a crash or
//! power loss once acknowledged. Readers never block writers and writers never block readers
//! (WAL), so the CLI works while services hold the store open. Each process keeps a
//! *generation* number that moves whenever anyone committed a change (seen from SQLite's
//! WAL-index header, then `PRAGMA data_version`), which lets callers cache what they read and
//! still see another process's change on their next lookup.
//!
//! This module is the only one that speaks SQLite: it loads an endpoint's record and applies
//! the [`Write`]s that `plan.rs` decided, and decides nothing itself. The files' safety checks
//! (OpenSSH's `StrictModes`, no links, whole pages) are here too, because only a store made of
//! files needs them.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, Row, Transaction};
use rustls::pki_types::CertificateDer;

use super::backend::{Backend, EndpointState, Held, Loaded, Plan, Write, WriteTx};
use super::{CheckReport, Finding};
use crate::audit::AuditEntry;
use crate::error::{Error, Result};
use crate::pin::{AwaitedPin, Pin, PinMatch, PinSource, PinState, Quarantined, ReportOnly};
use crate::{CertificateDetails, Endpoint, Fingerprint, StoreLocation, Timestamp};

/// How long a write waits for another process's write to finish before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the database file inside a store directory.
pub const DATABASE_FILE: &str = "pins.sqlite3";

/// The environment variable naming the users, other than the one running, that may own a
/// store: a comma-separated list of user ids or user names (looked up in `/etc/passwd`), such
/// as `TOFU_CERTS_ALLOW_OWNER=tofu-svc` for a service account's store that an operator (or
/// root) uses too. Without it a store owned by anyone else, root included, is refused, as
/// OpenSSH's `StrictModes` refuses another user's `authorized_keys`: whoever owns the store
/// can change whom this process trusts.
pub const ALLOW_OWNER_VARIABLE: &str = "TOFU_CERTS_ALLOW_OWNER";

/// `MIGRATIONS[i]` takes a store from schema version `i + 1` to `i + 2`. A new store is
/// created at version 1 (`SCHEMA`) and migrated like any other, so every migration runs
/// whenever a store is created.
const MIGRATIONS: &[&str] = &[
    // 2: who created and who last upgraded the store, so that a version refusing a store
    // written by a newer one can say which.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    // 3: what the quarantine's bounds need (`quarantine.rs`): which change of an endpoint's
    // pins each quarantined certificate came after, and per endpoint the number of that
    // change and the refusals since.
    "CREATE TABLE endpoint_state (
        endpoint       TEXT    PRIMARY KEY,
        epoch          INTEGER NOT NULL DEFAULT 0,
        refusals       INTEGER NOT NULL DEFAULT 0,
        audited        INTEGER NOT NULL DEFAULT 0,
        failing_since  INTEGER,
        last_refused   INTEGER,
        last_presented BLOB CHECK (last_presented IS NULL OR length(last_presented) = 32)
    ) WITHOUT ROWID;
    ALTER TABLE quarantine ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;",
    // 4: every endpoint key in the form this version writes (`canonical_keys`, in Rust,
    // after this step): an IPv4-mapped IPv6 address is its IPv4 endpoint now.
    "SELECT 1;",
    // 5: what a pin matches, the exact certificate (every pin until now) or its public key.
    "ALTER TABLE pin ADD COLUMN match_kind TEXT NOT NULL DEFAULT 'certificate' \
        CHECK (match_kind IN ('certificate', 'key'));",
    // 6: pins made from a fingerprint alone, awaiting the certificate (`AwaitedPin`). A
    // table of their own rather than `pin` rows without a certificate: every `pin` row keeps
    // its certificate, and `check` keeps comparing the stored details with it.
    "CREATE TABLE awaited (
        id          INTEGER PRIMARY KEY,
        endpoint    TEXT    NOT NULL,
        fingerprint BLOB    NOT NULL CHECK (length(fingerprint) = 32),
        match_kind  TEXT    NOT NULL CHECK (match_kind IN ('certificate', 'key')),
        state       TEXT    NOT NULL CHECK (state IN ('active', 'next')),
        pinned_at   INTEGER NOT NULL,
        source      TEXT    NOT NULL,
        label       TEXT,
        UNIQUE (endpoint, fingerprint)
    );",
    // 7: endpoints in report-only mode (`pin::ReportOnly`); a row only while it is.
    "CREATE TABLE endpoint_mode (
        endpoint TEXT    PRIMARY KEY,
        mode     TEXT    NOT NULL CHECK (mode IN ('report-only')),
        since    INTEGER NOT NULL,
        actor    TEXT    NOT NULL
    ) WITHOUT ROWID;",
];

/// The first schema whose endpoint keys are all canonical.
const CANONICAL_KEYS_VERSION: i64 = 4;

/// The schema this build writes. Older stores are migrated on open; newer ones are refused.
const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// Written to the `meta` table.
const WRITER: &str = concat!("tofu-core ", env!("CARGO_PKG_VERSION"));

/// `PRAGMA application_id` of a tofu-certs store ("ToFU"), so that another SQLite database is
/// never mistaken for one.
const APPLICATION_ID: i32 = 0x546f_4655;

const SCHEMA: &str = "
CREATE TABLE pin (
    id               INTEGER PRIMARY KEY,
    endpoint         TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('active', 'next')),
    fingerprint      BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    spki_fingerprint BLOB    NOT NULL CHECK (length(spki_fingerprint) = 32),
    der              BLOB    NOT NULL,
    subject          TEXT    NOT NULL,
    issuer           TEXT    NOT NULL,
    sans             TEXT    NOT NULL,
    not_before       INTEGER NOT NULL,
    not_after        INTEGER NOT NULL,
    pinned_at        INTEGER NOT NULL,
    first_seen       INTEGER,
    last_seen        INTEGER,
    times_seen       INTEGER NOT NULL DEFAULT 0,
    source           TEXT    NOT NULL,
    label            TEXT,
    UNIQUE (endpoint, fingerprint)
);
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    endpoint    TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    der         BLOB    NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    times_seen  INTEGER NOT NULL,
    UNIQUE (endpoint, fingerprint)
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    endpoint    TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    fingerprint BLOB,
    previous    BLOB,
    subject     TEXT,
    actor       TEXT    NOT NULL
);
CREATE INDEX audit_by_endpoint ON audit (endpoint, id);
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

const AWAITED_COLUMNS: &str = "endpoint, fingerprint, match_kind, pinned_at, source, label, state";

const PIN_COLUMNS: &str = "endpoint, state, der, fingerprint, spki_fingerprint, subject, issuer, \
     sans, not_before, not_after, pinned_at, first_seen, last_seen, times_seen, source, label, \
     match_kind";

/// A persistent store of pinned certificates, shared safely by threads and processes.
///
/// At most this many findings per check are listed; a store that damaged is named anyway.
const MAX_FINDINGS_PER_CHECK: usize = 100;

/// A store directory's database, shared by every thread of the process: one writer
/// connection behind a lock, and reader shards so that lookups on different threads do not
/// wait for each other.
pub(crate) struct SqliteBackend {
    location: StoreLocation,
    dir: PathBuf,
    db_path: PathBuf,
    writer: Mutex<Connection>,
    readers: Box<[Shard]>,
    generation: AtomicU64,
    read_only: bool,
    /// Opened with SQLite's `immutable=1`, because the write-ahead log's index could not be
    /// set up (a full disk, a read-only directory): read-only, and blind to later changes.
    immutable: bool,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// A reader shard on cache lines of its own: a thread taking and releasing its shard's lock
/// on every lookup must not slow down the threads using the neighbouring shards.
#[repr(align(128))]
struct Shard(Mutex<Reader>);

struct Reader {
    conn: Option<Connection>,
    data_version: Option<i64>,
    /// The store's WAL-index (`-shm`) file, once this connection is known to be in WAL mode.
    wal_index: Option<fs::File>,
    /// The WAL-index header as read just before `data_version` was last queried.
    wal_header: Option<[u8; WAL_INDEX_HEADER_LEN]>,
}
impl SqliteBackend {
    /// The store directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file inside the store directory.
    pub(crate) fn database_path(&self) -> &Path {
        &self.db_path
    }

    /// Opens the store in `dir`, creating the directory (mode 0700) and the database (mode
    /// 0600) when `create` is set and they do not exist.
    pub(crate) fn open(dir: &Path, create: bool) -> Result<Self> {
        let db_path = dir.join(DATABASE_FILE);
        check_no_link_in_path(dir)?;
        prepare_directory(dir, create)?;
        check_not_linked(&db_path)?;
        match fs::symlink_metadata(&db_path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(Error::Corrupt {
                    path: db_path,
                    detail: "the file is empty; it was truncated".into(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Err(Error::StoreNotFound {
                        path: dir.to_path_buf(),
                    });
                }
                create_database(dir, &db_path)?;
            }
            Err(source) => {
                return Err(Error::Io {
                    path: db_path,
                    source,
                })
            }
        }
        let sides = side_files(&db_path);
        for side in &sides {
            check_not_linked(side)?;
        }
        for file in std::iter::once(&db_path).chain(&sides) {
            check_store_file(dir, file)?;
        }
        let sides_existed = sides.iter().map(|p| p.exists()).collect::<Vec<_>>();
        check_header(&db_path)?;

        let opened = open_connection(&db_path).and_then(|mut conn| {
            let read_only = conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true);
            check_schema(&mut conn, &db_path, read_only)?;
            Ok((conn, read_only))
        });
        let (writer, read_only, immutable) = match opened {
            Ok((conn, read_only)) => (conn, read_only, false),
            // SQLite could not create the write-ahead log or its index (no space, a
            // read-only directory or filesystem). An idle store can still be read from the
            // database file alone, so that listing and matching go on.
            Err(e) if wal_unavailable(&e) => {
                check_no_wal_frames(&db_path, &e)?;
                let mut conn = open_immutable(&db_path)?;
                check_schema(&mut conn, &db_path, true)?;
                // Info, not a warning: reading is unaffected, and a write reports the same
                // cause as its own error.
                log::info!(
                    "pin store {} opened read-only from its database file alone: {e}",
                    db_path.display()
                );
                (conn, true, true)
            }
            Err(e) => return Err(e),
        };
        if !read_only {
            let mode: String = writer
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| db_error(&db_path, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                log::warn!(
                    "pin store {} is in journal mode {mode}, not WAL",
                    db_path.display()
                );
            }
            // The log and its index were just created: make their names durable, as the
            // database's own name was made durable when it was created.
            if sides
                .iter()
                .zip(&sides_existed)
                .any(|(p, &e)| !e && p.exists())
            {
                sync_directory(dir)?;
            }
        }

        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .max(4);
        let readers = (0..shards)
            .map(|_| {
                Shard(Mutex::new(Reader {
                    conn: None,
                    data_version: None,
                    wal_index: None,
                    wal_header: None,
                }))
            })
            .collect();
        Ok(Self {
            location: StoreLocation::Directory(dir.to_path_buf()),
            dir: dir.to_path_buf(),
            db_path,
            writer: Mutex::new(writer),
            readers,
            generation: AtomicU64::new(1),
            read_only,
            immutable,
        })
    }

    /// Refuses a write before taking any lock, when this process can only read.
    fn check_writable(&self) -> Result<()> {
        if !self.read_only {
            return Ok(());
        }
        if self.immutable {
            if let Some(full) = no_space(&self.db_path) {
                return Err(full);
            }
        }
        Err(Error::ReadOnly {
            path: self.db_path.clone(),
        })
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> TxResult<T>) -> Result<T> {
        self.check_writable()?;
        // A panic while the lock was held dropped its transaction, which rolled back: the
        // connection is sound.
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(out)
    }

    /// Applies one planned write, with the SQL each has always had.
    fn apply(&self, tx: &Connection, endpoint: &Endpoint, write: &Write) -> TxResult<()> {
        let key = endpoint.to_string();
        match write {
            Write::CheckNoPinInTable => {
                // The load went through the (endpoint, fingerprint) index; the table itself
                // must agree before the write that can open trust.
                if pinned_in_table(tx, endpoint)? {
                    return Err(self
                        .corrupt(format!(
                            "the pin table (or the awaited table) holds a pin of {endpoint} that its index does not; \
                             nothing was pinned. Run `tofu-certs check`"
                        ))
                        .into());
                }
            }
            Write::InsertPin(pin) => insert_pin(tx, pin)?,
            Write::DeletePin(fp) => delete_pin(tx, endpoint, fp)?,
            Write::ActivatePin { fingerprint, at } => {
                tx.execute(
                    "UPDATE pin SET state = 'active', first_seen = coalesce(first_seen, ?3), \
                     last_seen = ?3, times_seen = times_seen + 1 \
                     WHERE endpoint = ?1 AND fingerprint = ?2",
                    params![key, fingerprint.as_bytes().as_slice(), at.unix()],
                )?;
            }
            Write::Seen {
                fingerprint,
                count,
                at,
            } => {
                tx.prepare_cached(
                    "UPDATE pin SET first_seen = coalesce(first_seen, ?3), \
                     last_seen = max(coalesce(last_seen, ?3), ?3), times_seen = times_seen + ?4 \
                     WHERE endpoint = ?1 AND fingerprint = ?2",
                )?
                .execute(params![
                    key,
                    fingerprint.as_bytes().as_slice(),
                    at.unix(),
                    i64::try_from(*count).unwrap_or(i64::MAX)
                ])?;
            }
            Write::InsertAwaited(a) => {
                tx.execute(
                    &format!("INSERT INTO awaited ({AWAITED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    params![
                        a.endpoint.to_string(),
                        a.fingerprint.as_bytes().as_slice(),
                        a.matches.as_str(),
                        a.pinned_at.unix(),
                        a.source.as_str(),
                        a.label,
                        a.state.as_str(),
                    ],
                )?;
            }
            Write::DeleteAwaited(fp) => {
                tx.execute(
                    "DELETE FROM awaited WHERE endpoint = ?1 AND fingerprint = ?2",
                    params![key, fp.as_bytes().as_slice()],
                )?;
            }
            Write::DeleteEndpoint => {
                tx.execute("DELETE FROM awaited WHERE endpoint = ?1", [&key])?;
                tx.execute("DELETE FROM pin WHERE endpoint = ?1", [&key])?;
                tx.execute("DELETE FROM quarantine WHERE endpoint = ?1", [&key])?;
                tx.execute("DELETE FROM endpoint_state WHERE endpoint = ?1", [&key])?;
            }
            Write::PinsChanged => pins_changed(tx, endpoint)?,
            Write::SetState(state) => {
                tx.prepare_cached(
                    "INSERT INTO endpoint_state (endpoint, epoch, refusals, audited, \
                     failing_since, last_refused, last_presented) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (endpoint) DO UPDATE SET epoch = excluded.epoch, \
                     refusals = excluded.refusals, audited = excluded.audited, \
                     failing_since = excluded.failing_since, \
                     last_refused = excluded.last_refused, \
                     last_presented = excluded.last_presented",
                )?
                .execute(params![
                    key,
                    state.epoch,
                    state.refusals,
                    state.audited,
                    state.failing_since,
                    state.last_refused,
                    state.last_presented.map(|f| f.as_bytes().to_vec()),
                ])?;
            }
            Write::QuarantineSeen { fingerprint, at } => {
                tx.prepare_cached(
                    "UPDATE quarantine SET last_seen = ?3, times_seen = times_seen + 1 \
                     WHERE endpoint = ?1 AND fingerprint = ?2",
                )?
                .execute(params![
                    key,
                    fingerprint.as_bytes().as_slice(),
                    at.unix()
                ])?;
            }
            Write::Quarantine { entry, epoch } => {
                tx.prepare_cached(
                    "INSERT INTO quarantine (endpoint, fingerprint, der, first_seen, \
                     last_seen, times_seen, epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    entry.endpoint.to_string(),
                    entry.details.fingerprint.as_bytes().as_slice(),
                    entry.der.as_ref(),
                    entry.first_seen.unix(),
                    entry.last_seen.unix(),
                    i64::try_from(entry.times_seen).unwrap_or(i64::MAX),
                    epoch,
                ])?;
            }
            Write::Evict(id) => {
                tx.execute(
                    "DELETE FROM quarantine WHERE id = ?1 AND endpoint = ?2",
                    params![id, key],
                )?;
            }
            Write::Unquarantine(fp) => {
                tx.execute(
                    "DELETE FROM quarantine WHERE endpoint = ?1 AND fingerprint = ?2",
                    params![key, fp.as_bytes().as_slice()],
                )?;
            }
            Write::SetReportOnly(Some(mode)) => {
                tx.prepare_cached(
                    "INSERT INTO endpoint_mode (endpoint, mode, since, actor) \
                     VALUES (?1, 'report-only', ?2, ?3) ON CONFLICT (endpoint) DO UPDATE \
                     SET mode = excluded.mode, since = excluded.since, actor = excluded.actor",
                )?
                .execute(params![key, mode.since.unix(), mode.actor])?;
            }
            Write::SetReportOnly(None) => {
                tx.execute("DELETE FROM endpoint_mode WHERE endpoint = ?1", [&key])?;
            }
            Write::Audit(entry) => {
                tx.prepare_cached(
                    "INSERT INTO audit (at, endpoint, event, fingerprint, previous, subject, \
                     actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    entry.at.unix(),
                    entry.endpoint.to_string(),
                    entry.event.as_str(),
                    entry.fingerprint.map(|f| f.as_bytes().to_vec()),
                    entry.previous.map(|f| f.as_bytes().to_vec()),
                    entry.subject.as_deref(),
                    entry.actor.as_str(),
                ])?;
            }
        }
        Ok(())
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `Ok(())` when the database is sound.
    ///
    /// # Errors
    /// [`Error::Corrupt`] with SQLite's findings.
    pub(crate) fn integrity_check(&self) -> Result<()> {
        let mut reader = self.reader();
        let conn = reader_conn(&mut reader, &self.db_path, self.immutable)?;
        let mut stmt = conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| self.err(e))?;
        let findings: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        if findings == ["ok"] {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.db_path.clone(),
                detail: findings.join("; "),
            })
        }
    }

    /// The reader shard for this thread: threads spread over several connections, so readers
    /// on different threads do not wait for each other.
    fn reader(&self) -> MutexGuard<'_, Reader> {
        thread_local! {
            static SHARD: usize = next_thread_number();
        }
        let start = SHARD.with(|s| *s);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(guard) = self.readers[(start + i) % n].0.try_lock() {
                return guard;
            }
        }
        self.readers[start % n]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: self.db_path.clone(),
            detail: detail.to_string(),
        }
    }

    fn err(&self, e: impl Into<StoreFailure>) -> Error {
        match e.into() {
            StoreFailure::Sqlite(e) => db_error(&self.db_path, e),
            StoreFailure::Error(e) => e,
        }
    }

    /// Runs `sql` in one read transaction (one consistent snapshot) and calls `f` with each
    /// row as `from_row` reads it, until the rows end or `f` breaks.
    fn stream<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        from_row: fn(&Row<'_>) -> rusqlite::Result<T>,
        mut f: impl FnMut(T) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut reader = self.reader();
        let conn = reader_conn(&mut reader, &self.db_path, self.immutable)?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut stmt = tx.prepare(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            if f(from_row(row).map_err(|e| self.err(e))?).is_break() {
                break;
            }
        }
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Cheap: one read of the WAL-index header, no lock and no disk write; one
    /// `PRAGMA data_version` on a per-thread connection when that header moved.
    fn generation(&self) -> Result<u64> {
        let mut guard = self.reader();
        let reader = &mut *guard;
        let path = &self.db_path;
        reader_conn(reader, path, self.immutable)?;
        // Every commit, by any process, rewrites the WAL-index header (its change counter goes
        // up), and SQLite's own `data_version` moves only when that header differs from the
        // one the connection read last. So while the header is byte for byte the one read
        // before this connection's last `data_version`, the answer cannot have changed, and
        // SQLite's read transaction (file locks, system calls, a global mutex) is skipped.
        // The header is read before the query, so what is recorded is never newer than what
        // the query saw.
        let header = reader.wal_index.as_ref().and_then(read_wal_header);
        if header.is_some() && header == reader.wal_header {
            return Ok(self.generation.load(Ordering::Acquire));
        }
        let conn = reader.conn.as_mut().expect("opened just above");
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| db_error(path, e))?;
        reader.wal_header = header;
        if reader.wal_index.is_none() && !self.read_only {
            reader.wal_index = open_wal_index(conn, path);
        }
        if reader.data_version != Some(version) {
            reader.data_version = Some(version);
            return Ok(self.generation.fetch_add(1, Ordering::AcqRel) + 1);
        }
        Ok(self.generation.load(Ordering::Acquire))
    }

    fn load(&self, endpoint: &Endpoint) -> Result<Loaded> {
        let mut reader = self.reader();
        let conn = reader_conn(&mut reader, &self.db_path, self.immutable)?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let loaded = load(&tx, endpoint).map_err(|e| self.err(e))?;
        drop(tx);
        Ok(loaded)
    }

    /// One `BEGIN IMMEDIATE` transaction on the writer connection: SQLite's write lock keeps
    /// every other writer, in any process, out until the commit, so nothing is retried.
    fn update(&self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()> {
        self.write(|tx| update_in(self, tx, endpoints, plan))
    }

    fn begin(&self) -> Result<Box<dyn WriteTx + '_>> {
        self.check_writable()?;
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        Ok(Box::new(SqliteTx {
            backend: self,
            conn,
            open: true,
        }))
    }

    fn for_each_pin(&self, f: &mut dyn FnMut(Pin) -> ControlFlow<()>) -> Result<()> {
        // `ORDER BY endpoint` walks the (endpoint, fingerprint) index with no sort. Adding
        // `state, id` made SQLite copy every row, certificate included, through a temporary
        // sorter per endpoint (a quarter of the time of listing a million pins); the few pins
        // of one endpoint are put in that order here instead.
        let sql = format!("SELECT {PIN_COLUMNS}, id FROM pin ORDER BY endpoint");
        let mut group: Vec<(Pin, i64)> = Vec::new();
        let mut emit = |group: &mut Vec<(Pin, i64)>| {
            group.sort_by(|(a, a_id), (b, b_id)| {
                (a.state.as_str(), a_id).cmp(&(b.state.as_str(), b_id))
            });
            group.drain(..).try_for_each(|(pin, _)| f(pin))
        };
        let mut stopped = false;
        self.stream(
            &sql,
            [],
            |row| Ok((pin_from_row(row)?, row.get::<_, i64>(17)?)),
            |(pin, id)| {
                if group
                    .first()
                    .is_some_and(|(p, _)| p.endpoint != pin.endpoint)
                    && emit(&mut group).is_break()
                {
                    stopped = true;
                    return ControlFlow::Break(());
                }
                group.push((pin, id));
                ControlFlow::Continue(())
            },
        )?;
        if !stopped {
            let _ = emit(&mut group);
        }
        Ok(())
    }

    fn for_each_awaited(&self, f: &mut dyn FnMut(AwaitedPin) -> ControlFlow<()>) -> Result<()> {
        let sql = format!("SELECT {AWAITED_COLUMNS} FROM awaited ORDER BY endpoint, id");
        self.stream(&sql, [], awaited_from_row, f)
    }

    fn for_each_quarantined(
        &self,
        f: &mut dyn FnMut(Quarantined) -> ControlFlow<()>,
    ) -> Result<()> {
        let sql = "SELECT endpoint, der, first_seen, last_seen, times_seen FROM quarantine \
                   ORDER BY endpoint, last_seen DESC, id DESC";
        self.stream(sql, [], quarantined_from_row, f)
    }

    fn for_each_audit(
        &self,
        endpoint: Option<&Endpoint>,
        f: &mut dyn FnMut(AuditEntry) -> ControlFlow<()>,
    ) -> Result<()> {
        let base =
            "SELECT id, at, endpoint, event, fingerprint, previous, subject, actor FROM audit";
        match endpoint {
            Some(e) => self.stream(
                &format!("{base} WHERE endpoint = ?1 ORDER BY id"),
                [e.to_string()],
                audit_from_row,
                f,
            ),
            None => self.stream(&format!("{base} ORDER BY id"), [], audit_from_row, f),
        }
    }

    fn for_each_report_only(&self, f: &mut dyn FnMut(ReportOnly) -> ControlFlow<()>) -> Result<()> {
        let sql = "SELECT endpoint, since, actor FROM endpoint_mode ORDER BY endpoint";
        self.stream(sql, [], report_only_from_row, f)
    }

    fn for_each_refusals(
        &self,
        f: &mut dyn FnMut(crate::health::Refusals) -> ControlFlow<()>,
    ) -> Result<()> {
        let sql = "SELECT endpoint, refusals, failing_since, last_refused, last_presented \
                   FROM endpoint_state WHERE refusals > 0 ORDER BY endpoint";
        self.stream(sql, [], refusals_from_row, f)
    }

    /// SQLite's `PRAGMA integrity_check` (every page, and every index against its table),
    /// the application id and schema version, then every row read from the tables
    /// themselves (`NOT INDEXED`) rather than through their indexes.
    fn check(&self) -> Result<CheckReport> {
        let mut reader = self.reader();
        let conn = reader_conn(&mut reader, &self.db_path, self.immutable)?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut report = CheckReport::default();
        let find = |report: &mut CheckReport, kind: &'static str, detail: String| {
            if report.findings.iter().filter(|f| f.kind == kind).count() < MAX_FINDINGS_PER_CHECK {
                report.findings.push(Finding { kind, detail });
            }
        };
        let failed = |e: rusqlite::Error| format!("cannot be read: {e}");

        match tx
            .prepare("PRAGMA integrity_check")
            .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        {
            Ok(rows) => {
                let rows: Vec<String> = rows;
                for row in rows.into_iter().filter(|r| r != "ok") {
                    find(&mut report, "sqlite", row);
                }
            }
            Err(e) => find(&mut report, "sqlite", failed(e)),
        }

        let header = (|| -> rusqlite::Result<(i32, i64)> {
            Ok((
                tx.query_row("PRAGMA application_id", [], |r| r.get(0))?,
                tx.query_row("PRAGMA user_version", [], |r| r.get(0))?,
            ))
        })();
        match header {
            Ok((app, version)) => {
                if app != APPLICATION_ID {
                    find(
                        &mut report,
                        "schema",
                        format!("application_id is {app:#x}, not {APPLICATION_ID:#x}"),
                    );
                }
                if version != SCHEMA_VERSION {
                    find(
                        &mut report,
                        "schema",
                        format!("schema version is {version}, not {SCHEMA_VERSION}"),
                    );
                }
            }
            Err(e) => find(&mut report, "schema", failed(e)),
        }

        let pins = (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare(&format!("SELECT id, {PIN_COLUMNS} FROM pin NOT INDEXED"))?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                report.pins += 1;
                let id: i64 = row.get(0)?;
                if let Some(problem) = pin_problem(row) {
                    find(&mut report, "pin", format!("pin {id}: {problem}"));
                }
            }
            Ok(())
        })();
        if let Err(e) = pins {
            find(&mut report, "pin", format!("the pin table {}", failed(e)));
        }

        let dups = (|| -> rusqlite::Result<Vec<(String, Vec<u8>, i64)>> {
            tx.prepare(
                "SELECT endpoint, fingerprint, count(*) FROM pin NOT INDEXED \
                 GROUP BY endpoint, fingerprint HAVING count(*) > 1",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })();
        match dups {
            Ok(dups) => {
                for (endpoint, fp, n) in dups {
                    let fp = <[u8; 32]>::try_from(fp.as_slice())
                        .map(|a| Fingerprint::from_bytes(a).to_string())
                        .unwrap_or_else(|_| "a malformed fingerprint".into());
                    find(
                        &mut report,
                        "duplicate",
                        format!("{endpoint} has {n} pins of {fp}"),
                    );
                }
            }
            Err(e) => find(&mut report, "duplicate", failed(e)),
        }

        let quarantine = (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare(
                "SELECT endpoint, der, first_seen, last_seen, times_seen, id, fingerprint \
                 FROM quarantine NOT INDEXED",
            )?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                report.quarantined += 1;
                let id: i64 = row.get(5)?;
                match quarantined_from_row(row) {
                    Ok(q) if fingerprint_col(row, 6).ok() != Some(q.details.fingerprint) => find(
                        &mut report,
                        "quarantine",
                        format!("quarantined {id}: its fingerprint is not its certificate's"),
                    ),
                    Ok(_) => {}
                    Err(e) => find(&mut report, "quarantine", format!("quarantined {id}: {e}")),
                }
            }
            Ok(())
        })();
        if let Err(e) = quarantine {
            find(
                &mut report,
                "quarantine",
                format!("the quarantine {}", failed(e)),
            );
        }

        let awaited = (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare(&format!(
                "SELECT {AWAITED_COLUMNS}, id FROM awaited NOT INDEXED"
            ))?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                report.awaited += 1;
                let id: i64 = row.get(7)?;
                let problem = match awaited_from_row(row) {
                    Ok(a) if a.endpoint.to_string() != row.get::<_, String>(0)? => {
                        Some(format!("endpoint {} is not in canonical form", a.endpoint))
                    }
                    Ok(a) => {
                        // A pin of the endpoint that meets it: the fill left it behind.
                        let mut pins = tx.prepare(&format!(
                            "SELECT {PIN_COLUMNS} FROM pin NOT INDEXED WHERE endpoint = ?1"
                        ))?;
                        let met = pins
                            .query_map([a.endpoint.to_string()], pin_from_row)?
                            .filter_map(|p| p.ok())
                            .any(|p| a.is_met_by(&p.details) && p.matches == a.matches);
                        met.then(|| {
                            format!(
                                "{}: awaits {}, which a pin of the endpoint already holds",
                                a.endpoint, a.fingerprint
                            )
                        })
                    }
                    Err(e) => Some(e.to_string()),
                };
                if let Some(problem) = problem {
                    find(
                        &mut report,
                        "awaited",
                        format!("awaited pin {id}: {problem}"),
                    );
                }
            }
            Ok(())
        })();
        if let Err(e) = awaited {
            find(
                &mut report,
                "awaited",
                format!("the awaited table {}", failed(e)),
            );
        }

        let audit = (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare(
                "SELECT id, at, endpoint, event, fingerprint, previous, subject, actor \
                 FROM audit NOT INDEXED",
            )?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                report.audit_entries += 1;
                if let Err(e) = audit_from_row(row) {
                    let id: i64 = row.get(0)?;
                    find(&mut report, "audit", format!("audit entry {id}: {e}"));
                }
            }
            Ok(())
        })();
        if let Err(e) = audit {
            find(&mut report, "audit", format!("the audit log {}", failed(e)));
        }
        drop(tx);
        Ok(report)
    }
}

fn next_thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Errors inside a transaction: SQLite's, or ours with their context already attached.
pub(crate) enum StoreFailure {
    Sqlite(rusqlite::Error),
    Error(Error),
}

impl From<rusqlite::Error> for StoreFailure {
    fn from(e: rusqlite::Error) -> Self {
        StoreFailure::Sqlite(e)
    }
}

impl From<Error> for StoreFailure {
    fn from(e: Error) -> Self {
        StoreFailure::Error(e)
    }
}

type TxResult<T> = std::result::Result<T, StoreFailure>;

/// A streamed import's transaction: `BEGIN IMMEDIATE` on the writer connection, held (with
/// SQLite's write lock) until committed or dropped. Written by hand rather than as a
/// `rusqlite::Transaction`, which would borrow the connection from the guard it lives beside.
struct SqliteTx<'a> {
    backend: &'a SqliteBackend,
    conn: MutexGuard<'a, Connection>,
    open: bool,
}

impl SqliteTx<'_> {
    /// SQLite rolls a transaction back by itself after some errors (a full disk, I/O): the
    /// statements after would then each commit on their own, so check before every use.
    fn still_open(&self) -> Result<()> {
        if self.conn.is_autocommit() {
            return Err(self.backend.err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the import's transaction was rolled back after an error".into()),
            )));
        }
        Ok(())
    }
}

impl WriteTx for SqliteTx<'_> {
    fn update(&mut self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()> {
        self.still_open()?;
        update_in(self.backend, &self.conn, endpoints, plan).map_err(|e| self.backend.err(e))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.still_open()?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.backend.err(e))?;
        self.open = false;
        self.backend.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            // Nothing of the import is kept; an error here leaves the transaction to be
            // rolled back when the connection closes, which is the same.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn prepare_directory(dir: &Path, create: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(Error::Unusable {
            path: dir.to_path_buf(),
            reason: "it is a file, not a directory; a store is a directory (give --store the \
                     directory that holds pins.sqlite3)"
                .into(),
        }),
        Ok(meta) => {
            if meta.permissions().mode() & 0o022 != 0 {
                return Err(Error::Unsafe {
                    path: dir.to_path_buf(),
                    problem: format!(
                        "the directory is writable by other users (mode {:o}), so anyone could \
                         replace the pins",
                        meta.permissions().mode() & 0o777,
                    ),
                    fix: format!("chmod 700 {}", quote(dir)),
                });
            }
            check_owner(dir, &meta, true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::StoreNotFound {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(Error::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Refuses a symbolic link where a store file belongs: writing through one would let whoever
/// planted it direct the store's writes elsewhere.
fn check_not_linked(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Unusable {
            path: path.to_path_buf(),
            reason: "it is a symbolic link; the store never follows links in place of its files. \
                     Remove the link and point --store at the real store directory"
                .into(),
        }),
        Ok(meta) if !meta.is_file() => Err(Error::Unusable {
            path: path.to_path_buf(),
            reason: "it is not a regular file".into(),
        }),
        _ => Ok(()),
    }
}

fn quote(path: &Path) -> String {
    crate::shell_quote(&path.to_string_lossy())
}

/// Refuses a symbolic link anywhere in the store's path, naming it and where it points.
/// SQLite, opened with `SQLITE_OPEN_NOFOLLOW`, refuses such a path anyway, but says only
/// "unable to open database file"; and a link in the path lets whoever can change it swap the
/// store for another.
fn check_no_link_in_path(dir: &Path) -> Result<()> {
    let absolute = std::path::absolute(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut prefix = PathBuf::new();
    for component in absolute.components() {
        prefix.push(component);
        match fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&prefix)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|e| format!("an unreadable target ({e})"));
                let rest = absolute.strip_prefix(&prefix).unwrap_or(Path::new(""));
                let real = fs::canonicalize(&prefix).map(|r| r.join(rest));
                return Err(Error::Unsafe {
                    path: prefix.clone(),
                    problem: format!(
                        "{} is a symbolic link to {target}; a store is never opened through a \
                         link, since whoever can change the link could swap the store",
                        prefix.display()
                    ),
                    fix: match real {
                        Ok(real) => format!("--store {}", quote(&real)),
                        Err(_) => format!("rm {}", quote(&prefix)),
                    },
                });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// The user ids [`ALLOW_OWNER_VARIABLE`] allows, besides this process's own.
fn allowed_owners() -> Result<Vec<u32>> {
    let Some(value) = std::env::var_os(ALLOW_OWNER_VARIABLE) else {
        return Ok(Vec::new());
    };
    let value = value.to_string_lossy().into_owned();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .or_else(|| user_id(&passwd, v))
                .ok_or_else(|| Error::Unusable {
                    path: PathBuf::from(format!("${ALLOW_OWNER_VARIABLE}")),
                    reason: format!(
                        "{ALLOW_OWNER_VARIABLE} names {v:?}, which is neither a user id nor a \
                         user in /etc/passwd; give the store owner's user id"
                    ),
                })
        })
        .collect()
}

fn user_id(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

fn describe_user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// Refuses a store directory or file owned by anyone but this user (root included), unless
/// [`ALLOW_OWNER_VARIABLE`] names its owner.
fn check_owner(path: &Path, meta: &fs::Metadata, is_dir: bool) -> Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() == uid || allowed_owners()?.contains(&meta.uid()) {
        return Ok(());
    }
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        problem: format!(
            "it belongs to {}, not to this user ({}), and whoever owns the store decides whom \
             this process trusts. If that user is meant to own it (a service account's shared \
             store), allow exactly that owner with {ALLOW_OWNER_VARIABLE}={}",
            describe_user(meta.uid()),
            describe_user(uid),
            meta.uid()
        ),
        fix: format!(
            "chown {}{uid} {}",
            if is_dir { "-R " } else { "" },
            quote(path)
        ),
    })
}

/// The checks of OpenSSH's `StrictModes` on a store file that exists: writable by no one
/// else, owned by this user (or one allowed), and with one name only. A database reached by
/// two names gets two write-ahead logs, one per name, and writes acknowledged through one
/// are lost to the other.
fn check_store_file(dir: &Path, path: &Path) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Ok(());
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::Unsafe {
            path: path.to_path_buf(),
            problem: format!(
                "the file is writable by other users (mode {:o}), so anyone could change the \
                 pins",
                meta.permissions().mode() & 0o777
            ),
            fix: format!("chmod 600 {}", quote(path)),
        });
    }
    check_owner(path, &meta, false)?;
    if meta.nlink() <= 1 {
        return Ok(());
    }
    let mut others = same_file_in(dir, path, &meta);
    // A name this crate gave a new database before linking it into place, left by a creator
    // killed between the link and the removal: ours, so removed.
    let ours = format!(".{DATABASE_FILE}.new-");
    let (temporary, rest): (Vec<_>, Vec<_>) = others.drain(..).partition(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&ours))
    });
    for t in &temporary {
        let _ = fs::remove_file(t);
    }
    let nlink = fs::symlink_metadata(path).map_or(meta.nlink(), |m| m.nlink());
    if nlink <= 1 {
        return Ok(());
    }
    let fix = match rest.first() {
        Some(other) => format!("rm {}", quote(other)),
        None => format!(
            "find {} -xdev -samefile {}",
            quote(&mount_point(path).unwrap_or_else(|| PathBuf::from("/"))),
            quote(path)
        ),
    };
    Err(Error::Unsafe {
        path: path.to_path_buf(),
        problem: format!(
            "the file has {nlink} hard links: SQLite keeps one write-ahead log per name, so \
             writes acknowledged through another name would be lost; remove every other name"
        ),
        fix,
    })
}

/// The other names of `path`'s file in `dir`.
fn same_file_in(dir: &Path, path: &Path, meta: &fs::Metadata) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p != path)
        .filter(|p| {
            fs::symlink_metadata(p).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
        })
        .collect()
}

/// The mount point of the filesystem holding `path`, from `/proc/self/mountinfo`.
pub(crate) fn mount_point(path: &Path) -> Option<PathBuf> {
    let real = fs::canonicalize(path)
        .ok()
        .or_else(|| fs::canonicalize(path.parent()?).ok())?;
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| real.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// Mount points in mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    PathBuf::from(out)
}

/// Refuses another application's SQLite database from its header alone, before SQLite opens
/// it: closing an SQLite connection may checkpoint a write-ahead log that application left
/// behind into its file, and a file that is not a store must be left untouched. Also refuses
/// a store cut short inside a page: SQLite reads the missing bytes as zeros, so such a file
/// opens, passes `PRAGMA integrity_check` and yields damaged pins. Anything else that is not
/// SQLite is left for SQLite to report.
fn check_header(db_path: &Path) -> Result<()> {
    use std::io::Read;
    let mut header = Vec::with_capacity(100);
    let len = match fs::File::open(db_path).and_then(|f| {
        let len = f.metadata()?.len();
        f.take(100).read_to_end(&mut header)?;
        Ok(len)
    }) {
        Ok(len) => len,
        // SQLite would say only "unable to open database file", not why.
        Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
            return Err(Error::Io {
                path: db_path.to_path_buf(),
                source,
            })
        }
        Err(_) => return Ok(()),
    };
    // SQLite takes a file shorter than its header for an empty database.
    if header.len() < 100 {
        return Err(Error::Corrupt {
            path: db_path.to_path_buf(),
            detail: format!(
                "it is {len} bytes long, shorter than the 100-byte header every SQLite \
                 database starts with; it was truncated"
            ),
        });
    }
    if !header.starts_with(b"SQLite format 3\0") {
        return Ok(());
    }
    let app = i32::from_be_bytes(header[68..72].try_into().expect("four bytes"));
    if app != APPLICATION_ID {
        return Err(Error::NotAStore {
            path: db_path.to_path_buf(),
            detail: format!("its application_id is {app:#x}"),
        });
    }
    // SQLite writes whole pages only; the page size is at offset 16, with 1 meaning 65536.
    // A write-ahead log left by a crash may still rewrite the last pages, so then SQLite
    // decides.
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let wal = PathBuf::from(format!("{}-wal", db_path.display()));
    let wal_has_frames = fs::symlink_metadata(wal).is_ok_and(|m| m.len() > 0);
    if page_size >= 512 && len % page_size != 0 && !wal_has_frames {
        return Err(Error::Corrupt {
            path: db_path.to_path_buf(),
            detail: format!(
                "it is {len} bytes long, not a whole number of its {page_size}-byte pages; it \
                 was truncated or appended to"
            ),
        });
    }
    Ok(())
}

/// Creates the database under a temporary name and links it into place, so the store file
/// is never seen half-initialised: a zero-length or schema-less store file can only mean
/// damage, and is reported as such instead of being silently recreated.
fn create_database(dir: &Path, db_path: &Path) -> Result<()> {
    // Unique per call, not only per process: threads of one process may create the store at
    // the same moment, and each must not remove the file another is still writing.
    static CREATIONS: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!(
        ".{DATABASE_FILE}.new-{}-{}",
        std::process::id(),
        CREATIONS.fetch_add(1, Ordering::Relaxed)
    ));
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let _ = fs::remove_file(&tmp);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let result = (|| {
        let mut conn = Connection::open_with_flags(
            &tmp,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")?;
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; \
             PRAGMA user_version = 1; COMMIT;"
        ))?;
        migrate(&mut conn)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('created_by', ?1)",
            [WRITER],
        )?;
        conn.close().map_err(|(_, e)| e)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(db_error(&tmp, e));
    }
    let linked = fs::hard_link(&tmp, db_path);
    let _ = fs::remove_file(&tmp);
    match linked {
        // Another process created the store at the same moment; theirs is as good as ours.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Io {
            path: db_path.to_path_buf(),
            source,
        }),
        Ok(()) => sync_directory(dir),
    }
}

/// Makes the names in `dir` durable (a new file's directory entry is not, until then).
fn sync_directory(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The write-ahead log and its index beside `db_path`.
fn side_files(db_path: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| PathBuf::from(format!("{}{suffix}", db_path.display())))
}

fn open_connection(db_path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(db_path, flags)
        .or_else(|_| {
            Connection::open_with_flags(
                db_path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_NOFOLLOW,
            )
        })
        .map_err(|e| db_error(db_path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db_error(db_path, e))?;
    // FULL: in WAL mode, every commit is fsynced before it returns. NORMAL could lose the
    // last acknowledged pins on power loss, reopening the first-use window.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA trusted_schema = OFF;")
        .map_err(|e| db_error(db_path, e))?;
    Ok(conn)
}

/// Whether opening failed because SQLite could not set up the write-ahead log or its index.
fn wal_unavailable(e: &Error) -> bool {
    use rusqlite::ErrorCode;
    match e {
        Error::ReadOnly { .. } | Error::NoSpace { .. } => true,
        Error::Database { source, .. } => matches!(
            source.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, ErrorCode::SystemIoFailure | ErrorCode::CannotOpen)
        ),
        _ => false,
    }
}

/// Refuses to read the database file alone while the write-ahead log holds frames (more than
/// its 32-byte header): they may be committed changes that the file does not have yet, a
/// deletion or a replaced pin among them.
fn check_no_wal_frames(db_path: &Path, cause: &Error) -> Result<()> {
    let [wal, _] = side_files(db_path);
    match fs::symlink_metadata(&wal) {
        Ok(meta) if meta.len() > 32 => Err(Error::Unusable {
            path: wal,
            reason: format!(
                "{cause}; and the write-ahead log holds {} bytes of changes that the database \
                 file alone does not have, so the store is not read without it. Free space on \
                 (or make writable) the filesystem holding the store, then retry",
                meta.len()
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens the database file alone, read-only, with SQLite's `immutable=1`: no write-ahead
/// log, no index, no locks. Only for an idle store (see [`check_no_wal_frames`]).
fn open_immutable(db_path: &Path) -> Result<Connection> {
    let mut uri = String::from("file:");
    for b in db_path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                uri.push(char::from(*b))
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| db_error(db_path, e))?;
    conn.execute_batch("PRAGMA trusted_schema = OFF;")
        .map_err(|e| db_error(db_path, e))?;
    Ok(conn)
}

/// [`Error::NoSpace`] when the filesystem holding `path` has (almost) no space left.
pub(crate) fn no_space(path: &Path) -> Option<Error> {
    let dir = path.parent().unwrap_or(path);
    let st = rustix::fs::statvfs(dir).ok()?;
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    (available < 64 * 1024).then(|| Error::NoSpace {
        path: path.to_path_buf(),
        filesystem: mount_point(path).unwrap_or_else(|| dir.to_path_buf()),
        available,
    })
}

fn reader_conn<'a>(
    reader: &'a mut Reader,
    db_path: &Path,
    immutable: bool,
) -> Result<&'a mut Connection> {
    if reader.conn.is_none() {
        reader.conn = Some(match immutable {
            true => open_immutable(db_path)?,
            false => open_connection(db_path)?,
        });
        reader.data_version = None;
        reader.wal_index = None;
        reader.wal_header = None;
    }
    Ok(reader.conn.as_mut().expect("opened just above"))
}

/// The two copies of SQLite's 48-byte WAL-index header at the start of the `-shm` file
/// (<https://sqlite.org/walformat.html>); what follows them changes on reads too.
const WAL_INDEX_HEADER_LEN: usize = 96;

/// Opens the `-shm` file for [`Store::generation`], when `conn` (which has read the database)
/// is in WAL mode; `None` otherwise, and then `generation` always asks SQLite. Stays valid as
/// long as `conn` is open: SQLite neither leaves WAL mode nor removes or reinitialises the
/// file while another connection has it mapped.
fn open_wal_index(conn: &Connection, db_path: &Path) -> Option<fs::File> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .ok()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return None;
    }
    let path = PathBuf::from(format!("{}-shm", db_path.display()));
    let file = fs::File::open(&path).ok()?;
    // Only the file SQLite maps: never through a link, never another file.
    let opened = file.metadata().ok()?;
    let named = fs::symlink_metadata(&path).ok()?;
    (opened.is_file()
        && named.is_file()
        && opened.dev() == named.dev()
        && opened.ino() == named.ino())
    .then_some(file)
}

/// The WAL-index header, or `None` when it cannot be read whole.
fn read_wal_header(file: &fs::File) -> Option<[u8; WAL_INDEX_HEADER_LEN]> {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; WAL_INDEX_HEADER_LEN];
    file.read_exact_at(&mut header, 0).ok()?;
    Some(header)
}

fn check_schema(conn: &mut Connection, db_path: &Path, read_only: bool) -> Result<()> {
    let header = (|| -> rusqlite::Result<(i32, i64, i64)> {
        let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        Ok((app, version, tables))
    })();
    let (app, version, tables) = header.map_err(|e| db_error(db_path, e))?;
    if app != APPLICATION_ID {
        return Err(Error::NotAStore {
            path: db_path.to_path_buf(),
            detail: format!("its application_id is {app:#x} and it has {tables} schema objects"),
        });
    }
    if version > SCHEMA_VERSION {
        // Best effort: a newer schema may have moved this, and the refusal stands regardless.
        let written_by = conn
            .query_row(
                "SELECT value FROM meta WHERE key IN ('upgraded_by', 'created_by') \
                 ORDER BY key = 'upgraded_by' DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        return Err(Error::NewerSchema {
            path: db_path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
            written_by,
        });
    }
    if version < 1 {
        return Err(Error::Corrupt {
            path: db_path.to_path_buf(),
            detail: format!("schema version {version} is not one tofu-certs ever wrote"),
        });
    }
    if version < SCHEMA_VERSION {
        if read_only {
            return Err(Error::Unusable {
                path: db_path.to_path_buf(),
                reason: format!(
                    "the store has schema version {version} and needs an upgrade to \
                     {SCHEMA_VERSION}, which needs write access; run any tofu-certs command \
                     once as the store's owner"
                ),
            });
        }
        migrate(conn).map_err(|e| db_error(db_path, e))?;
    }
    Ok(())
}

/// Brings the schema to `SCHEMA_VERSION` in one transaction that reads the version under the
/// write lock, so that processes opening an old store at the same moment migrate it once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let from = usize::try_from(version - 1).unwrap_or(0);
    for step in &MIGRATIONS[from..] {
        tx.execute_batch(step)?;
    }
    if version < CANONICAL_KEYS_VERSION {
        canonical_keys(&tx)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('upgraded_by', ?1)",
        [WRITER],
    )?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()
}

/// Rewrites the endpoint keys that an earlier version stored in a form this one no longer
/// writes (`[::ffff:10.1.1.1]:8082` is `10.1.1.1:8082` now), so that a pin made through the
/// mapped address is found, not silently bypassed by a new first use. When the canonical
/// endpoint has pins of its own, those are kept and the others are removed, audited, rather
/// than merged: merging would trust certificates nobody chose for that endpoint. A key that
/// no longer parses at all is left for `tofu-certs check` to name.
fn canonical_keys(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut keys: Vec<String> = Vec::new();
    for table in ["pin", "quarantine", "endpoint_state"] {
        let mut stmt = tx.prepare(&format!("SELECT DISTINCT endpoint FROM {table}"))?;
        for key in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let key = key?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    for old in keys {
        let Ok(endpoint) = old.parse::<Endpoint>() else {
            continue;
        };
        let new = endpoint.to_string();
        if new == old {
            continue;
        }
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM pin WHERE endpoint = ?1)",
            [&new],
            |r| r.get(0),
        )?;
        if taken {
            tx.execute(
                "INSERT INTO audit (at, endpoint, event, fingerprint, previous, subject, actor) \
                 SELECT ?3, ?2, 'removed', fingerprint, NULL, subject, ?4 FROM pin \
                 WHERE endpoint = ?1",
                params![old, new, Timestamp::now().unix(), MIGRATION_ACTOR],
            )?;
            tx.execute("DELETE FROM pin WHERE endpoint = ?1", [&old])?;
        } else {
            tx.execute(
                "UPDATE pin SET endpoint = ?2 WHERE endpoint = ?1",
                [&old, &new],
            )?;
        }
        tx.execute(
            "UPDATE OR IGNORE quarantine SET endpoint = ?2 WHERE endpoint = ?1",
            [&old, &new],
        )?;
        tx.execute("DELETE FROM quarantine WHERE endpoint = ?1", [&old])?;
        tx.execute(
            "UPDATE OR IGNORE endpoint_state SET endpoint = ?2 WHERE endpoint = ?1",
            [&old, &new],
        )?;
        tx.execute("DELETE FROM endpoint_state WHERE endpoint = ?1", [&old])?;
        log::info!("pin store upgrade: the endpoint {old} is now written {new}");
    }
    Ok(())
}

/// The audit log's actor for what an upgrade of the store changed.
const MIGRATION_ACTOR: &str = concat!("tofu-core ", env!("CARGO_PKG_VERSION"), " upgrade");

/// The endpoint's pins (active, then staged, each in the order pinned), its quarantine
/// (most recently presented first, with its rows' ids and epochs) and its counters.
fn refusals_from_row(row: &Row<'_>) -> rusqlite::Result<crate::health::Refusals> {
    let count: i64 = row.get(1)?;
    let since: Option<i64> = row.get(2)?;
    let last: Option<i64> = row.get(3)?;
    // Written together with the count; a row without them (never written so) counts as now.
    let last = last.or(since).unwrap_or_else(|| Timestamp::now().unix());
    Ok(crate::health::Refusals {
        endpoint: endpoint_col(row, 0)?,
        count: u64::try_from(count).unwrap_or(0),
        since: Timestamp::from_unix(since.unwrap_or(last)),
        last: Timestamp::from_unix(last),
        last_presented: optional_fingerprint_col(row, 4)?,
    })
}

/// Fewer endpoints than this in one update are loaded one by one, without [`present`].
const MIN_PRESENT: usize = 16;

/// Loads, plans and applies `endpoints` in turn (see [`Backend::update`]). Many at once (an
/// import) first learn in one statement which of them have any row, so that the others,
/// most of a restore into an empty store, are known empty without three queries each.
fn update_in(
    backend: &SqliteBackend,
    tx: &Connection,
    endpoints: &[&Endpoint],
    plan: &mut Plan<'_>,
) -> TxResult<()> {
    let distinct = || {
        let mut seen = std::collections::HashSet::new();
        endpoints.iter().all(|e| seen.insert(*e))
    };
    // One endpoint twice would be judged on a lookup made before its own first writes.
    let present = if endpoints.len() >= MIN_PRESENT && distinct() {
        Some(present(tx, endpoints)?)
    } else {
        None
    };
    for endpoint in endpoints {
        let loaded = match &present {
            // Nothing of it: what `load` would read. Its own plan is the only writer of its
            // rows before its load, so nothing can have appeared meanwhile.
            Some(present) if !present.contains(&endpoint.to_string()) => Loaded::default(),
            _ => load(tx, endpoint)?,
        };
        for write in &plan(endpoint, loaded)? {
            backend.apply(tx, endpoint, write)?;
        }
    }
    Ok(())
}

/// Which of `endpoints` have a pin, an awaited pin, a quarantined certificate, counters or a
/// mode: one statement, five index probes each.
fn present(
    tx: &Connection,
    endpoints: &[&Endpoint],
) -> rusqlite::Result<std::collections::HashSet<String>> {
    let keys: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
    let keys = serde_json::to_string(&keys).expect("a list of strings serializes");
    let mut stmt = tx.prepare_cached(
        "SELECT k.value FROM json_each(?1) AS k WHERE \
         EXISTS (SELECT 1 FROM pin WHERE endpoint = k.value) OR \
         EXISTS (SELECT 1 FROM quarantine WHERE endpoint = k.value) OR \
         EXISTS (SELECT 1 FROM endpoint_state WHERE endpoint = k.value) OR \
         EXISTS (SELECT 1 FROM awaited WHERE endpoint = k.value) OR \
         EXISTS (SELECT 1 FROM endpoint_mode WHERE endpoint = k.value)",
    )?;
    let found = stmt
        .query_map([keys], |row| row.get::<_, String>(0))?
        .collect();
    found
}

fn load(tx: &Connection, endpoint: &Endpoint) -> rusqlite::Result<Loaded> {
    let key = endpoint.to_string();
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {PIN_COLUMNS} FROM pin WHERE endpoint = ?1 ORDER BY state, id"
    ))?;
    let pins = stmt
        .query_map([&key], pin_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = tx.prepare_cached(
        "SELECT endpoint, der, first_seen, last_seen, times_seen, id, epoch FROM quarantine \
         WHERE endpoint = ?1 ORDER BY last_seen DESC, id DESC",
    )?;
    let quarantined = stmt
        .query_map([&key], |row| {
            Ok(Held {
                entry: quarantined_from_row(row)?,
                id: row.get(5)?,
                epoch: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let state = tx
        .prepare_cached(
            "SELECT epoch, refusals, audited, failing_since, last_refused, last_presented \
             FROM endpoint_state WHERE endpoint = ?1",
        )?
        .query_map([&key], |row| {
            Ok(EndpointState {
                epoch: row.get(0)?,
                refusals: row.get(1)?,
                audited: row.get(2)?,
                failing_since: row.get(3)?,
                last_refused: row.get(4)?,
                last_presented: optional_fingerprint_col(row, 5)?,
            })
        })?
        .next()
        .transpose()?
        .unwrap_or_default();
    let report_only = tx
        .prepare_cached("SELECT endpoint, since, actor FROM endpoint_mode WHERE endpoint = ?1")?
        .query_map([&key], report_only_from_row)?
        .next()
        .transpose()?;
    let awaited = tx
        .prepare_cached(&format!(
            "SELECT {AWAITED_COLUMNS} FROM awaited WHERE endpoint = ?1 ORDER BY id"
        ))?
        .query_map([&key], awaited_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Loaded {
        pins,
        quarantined,
        state,
        awaited,
        report_only,
    })
}

fn report_only_from_row(row: &Row<'_>) -> rusqlite::Result<ReportOnly> {
    Ok(ReportOnly {
        endpoint: endpoint_col(row, 0)?,
        since: Timestamp::from_unix(row.get(1)?),
        actor: row.get(2)?,
    })
}

/// Whether the pin table or the awaited table itself, read without any index, holds a pin of
/// `endpoint`. Scans both tables (see BENCHMARKS.md for the pin table's cost; the awaited
/// table is small); only the first-use write pays it.
fn pinned_in_table(tx: &Connection, endpoint: &Endpoint) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM pin NOT INDEXED WHERE endpoint = ?1) \
         OR EXISTS (SELECT 1 FROM awaited NOT INDEXED WHERE endpoint = ?1)",
    )?
    .query_row([endpoint.to_string()], |r| r.get(0))
}

fn delete_pin(tx: &Connection, endpoint: &Endpoint, fp: &Fingerprint) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM pin WHERE endpoint = ?1 AND fingerprint = ?2",
        params![endpoint.to_string(), fp.as_bytes().as_slice()],
    )?;
    Ok(())
}

/// Notes that the pins of `endpoint` changed: its refusals start over, and the certificates
/// quarantined before become the first to be evicted (`quarantine.rs`). Called once by every
/// operation that changes an endpoint's pins.
fn pins_changed(tx: &Connection, endpoint: &Endpoint) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO endpoint_state (endpoint, epoch) VALUES (?1, 1) \
         ON CONFLICT (endpoint) DO UPDATE SET epoch = epoch + 1, refusals = 0, audited = 0, \
         failing_since = NULL, last_refused = NULL, last_presented = NULL",
    )?
    .execute([endpoint.to_string()])?;
    Ok(())
}

/// Writes `pin`, and takes its certificate out of the endpoint's quarantine: however it got
/// pinned (first use after a strict refusal, addcert, import), a quarantined copy would go on
/// being shown as "presented, matched no pin, not trusted", with an `accept` to run.
fn insert_pin(tx: &Connection, pin: &Pin) -> rusqlite::Result<()> {
    let d = &pin.details;
    tx.prepare_cached("DELETE FROM quarantine WHERE endpoint = ?1 AND fingerprint = ?2")?
        .execute(params![
            pin.endpoint.to_string(),
            d.fingerprint.as_bytes().as_slice()
        ])?;
    tx.prepare_cached(&format!(
        "INSERT INTO pin ({PIN_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        pin.endpoint.to_string(),
        pin.state.as_str(),
        pin.der.as_ref(),
        d.fingerprint.as_bytes().as_slice(),
        d.spki_fingerprint.as_bytes().as_slice(),
        d.subject,
        d.issuer,
        d.sans.join("\n"),
        d.not_before.unix(),
        d.not_after.unix(),
        pin.pinned_at.unix(),
        pin.first_seen.map(Timestamp::unix),
        pin.last_seen.map(Timestamp::unix),
        i64::try_from(pin.times_seen).unwrap_or(i64::MAX),
        pin.source.as_str(),
        pin.label,
        pin.matches.as_str(),
    ])?;
    Ok(())
}

/// What is wrong with a pin row (`id` then [`PIN_COLUMNS`]), if anything: what
/// [`pin_from_row`] cannot read, or stored details that are not its certificate's.
fn pin_problem(row: &Row<'_>) -> Option<String> {
    // `pin_from_row` reads PIN_COLUMNS from column 0; here they start at 1.
    let text = |col: usize| row.get::<_, String>(col).unwrap_or_default();
    let endpoint = text(1);
    match endpoint.parse::<Endpoint>() {
        Ok(e) if e.to_string() == endpoint => {}
        Ok(e) => {
            return Some(format!(
                "endpoint {endpoint:?} is not in canonical form ({e})"
            ))
        }
        Err(e) => return Some(format!("endpoint {endpoint:?}: {e}")),
    }
    if text(2).parse::<PinState>().is_err() {
        return Some(format!(
            "{endpoint}: state {:?} is not active or next",
            text(2)
        ));
    }
    if text(17).parse::<PinMatch>().is_err() {
        return Some(format!(
            "{endpoint}: match {:?} is not certificate or key",
            text(17)
        ));
    }
    if text(15).parse::<PinSource>().is_err() {
        return Some(format!(
            "{endpoint}: source {:?} is not a pin source",
            text(15)
        ));
    }
    let der: Vec<u8> = match row.get(3) {
        Ok(der) => der,
        Err(e) => return Some(format!("{endpoint}: certificate: {e}")),
    };
    let details = match CertificateDetails::from_der(&der) {
        Ok(d) => d,
        Err(e) => return Some(format!("{endpoint}: the certificate does not parse: {e}")),
    };
    let stored = |col| {
        row.get::<_, Vec<u8>>(col)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .map(Fingerprint::from_bytes)
    };
    if stored(4) != Some(details.fingerprint) {
        return Some(format!(
            "{endpoint}: the stored fingerprint is not the certificate's"
        ));
    }
    if stored(5) != Some(details.spki_fingerprint) {
        return Some(format!(
            "{endpoint}: the stored SPKI fingerprint is not the certificate's"
        ));
    }
    if text(6) != details.subject || text(7) != details.issuer {
        return Some(format!(
            "{endpoint}: the stored subject or issuer is not the certificate's"
        ));
    }
    None
}

fn bad_value(col: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("stored value is invalid: {what}").into(),
    )
}

fn fingerprint_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Fingerprint> {
    let bytes: Vec<u8> = row.get(col)?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad_value(col, "fingerprint length"))?;
    Ok(Fingerprint::from_bytes(arr))
}

fn endpoint_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Endpoint> {
    let text: String = row.get(col)?;
    text.parse().map_err(|e| bad_value(col, e))
}

fn parsed_col<T: std::str::FromStr<Err = String>>(
    row: &Row<'_>,
    col: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(col)?;
    text.parse().map_err(|e| bad_value(col, e))
}

fn pin_from_row(row: &Row<'_>) -> rusqlite::Result<Pin> {
    let sans: String = row.get(7)?;
    let times: i64 = row.get(13)?;
    Ok(Pin {
        endpoint: endpoint_col(row, 0)?,
        state: parsed_col(row, 1)?,
        der: CertificateDer::from(row.get::<_, Vec<u8>>(2)?),
        details: CertificateDetails {
            fingerprint: fingerprint_col(row, 3)?,
            spki_fingerprint: fingerprint_col(row, 4)?,
            subject: row.get(5)?,
            issuer: row.get(6)?,
            sans: if sans.is_empty() {
                Vec::new()
            } else {
                sans.split('\n').map(str::to_owned).collect()
            },
            not_before: Timestamp::from_unix(row.get(8)?),
            not_after: Timestamp::from_unix(row.get(9)?),
        },
        pinned_at: Timestamp::from_unix(row.get(10)?),
        first_seen: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_unix),
        last_seen: row.get::<_, Option<i64>>(12)?.map(Timestamp::from_unix),
        times_seen: u64::try_from(times).unwrap_or(0),
        source: parsed_col(row, 14)?,
        label: row.get(15)?,
        matches: parsed_col(row, 16)?,
    })
}

fn awaited_from_row(row: &Row<'_>) -> rusqlite::Result<AwaitedPin> {
    Ok(AwaitedPin {
        endpoint: endpoint_col(row, 0)?,
        fingerprint: fingerprint_col(row, 1)?,
        matches: parsed_col(row, 2)?,
        pinned_at: Timestamp::from_unix(row.get(3)?),
        source: parsed_col(row, 4)?,
        label: row.get(5)?,
        state: parsed_col(row, 6)?,
    })
}

fn quarantined_from_row(row: &Row<'_>) -> rusqlite::Result<Quarantined> {
    let der: Vec<u8> = row.get(1)?;
    let details = CertificateDetails::from_der(&der).map_err(|e| bad_value(1, e))?;
    let times: i64 = row.get(4)?;
    Ok(Quarantined {
        endpoint: endpoint_col(row, 0)?,
        der: CertificateDer::from(der),
        details,
        first_seen: Timestamp::from_unix(row.get(2)?),
        last_seen: Timestamp::from_unix(row.get(3)?),
        times_seen: u64::try_from(times).unwrap_or(0),
    })
}

fn optional_fingerprint_col(row: &Row<'_>, col: usize) -> rusqlite::Result<Option<Fingerprint>> {
    match row.get::<_, Option<Vec<u8>>>(col)? {
        None => Ok(None),
        Some(b) => {
            let arr: [u8; 32] = b
                .try_into()
                .map_err(|_| bad_value(col, "fingerprint length"))?;
            Ok(Some(Fingerprint::from_bytes(arr)))
        }
    }
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.get(0)?,
        at: Timestamp::from_unix(row.get(1)?),
        endpoint: endpoint_col(row, 2)?,
        event: parsed_col(row, 3)?,
        fingerprint: optional_fingerprint_col(row, 4)?,
        previous: optional_fingerprint_col(row, 5)?,
        subject: row.get(6)?,
        actor: row.get(7)?,
    })
}

/// The crate's error for what SQLite reported about the database file `path`: damage, a
/// lock held too long, a read-only or full filesystem get their own variants, so that each
/// says what to do; anything else is [`Error::Database`].
pub(crate) fn db_error(path: &Path, source: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let path = path.to_path_buf();
    if let rusqlite::Error::SqliteFailure(e, ref msg) = source {
        let detail = msg.clone().unwrap_or_else(|| e.to_string());
        match e.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return Error::Corrupt { path, detail }
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return Error::Busy {
                    path,
                    timeout_secs: BUSY_TIMEOUT.as_secs(),
                }
            }
            ErrorCode::ReadOnly => return Error::ReadOnly { path },
            ErrorCode::DiskFull | ErrorCode::SystemIoFailure => {
                if let Some(full) = no_space(&path) {
                    return full;
                }
            }
            // Damage SQLite reports under another code ("malformed database schema"
            // while preparing a statement): fail closed, as for SQLITE_CORRUPT.
            _ if detail.contains("malformed") => return Error::Corrupt { path, detail },
            _ => {}
        }
    }
    // A stored value this crate never writes (a state, an endpoint, a fingerprint's
    // length): the row is damaged, and must not be read as "no pin".
    if let rusqlite::Error::FromSqlConversionFailure(..)
    | rusqlite::Error::InvalidColumnType(..)
    | rusqlite::Error::IntegralValueOutOfRange(..) = source
    {
        return Error::Corrupt {
            path,
            detail: source.to_string(),
        };
    }
    Error::Database {
        store: path.display().to_string(),
        backend: "SQLite",
        source: Box::new(source),
    }
}
