//! The pin store in a PostgreSQL database (cargo feature `postgres`): a [`Backend`] over
//! tokio-postgres, for a fleet of machines that share one store.
//!
//! The API is synchronous, like SQLite's, and works inside and outside a tokio runtime: the
//! connections live on a private runtime owned by a background thread, and a caller's
//! thread only waits on a channel for the answer (it never calls `block_on`, which panics
//! inside a runtime). The plan of an update runs on the caller's thread, between round trips.
//!
//! # Privileges
//!
//! The role that first opens a database with `create` needs `CREATE` on the schema the
//! tables go to (the first of its `search_path`, normally `public`); it owns them, and it
//! upgrades an older schema on open (another role is told to ask it). Once the store's schema
//! is found, every connection's `search_path` is `pg_catalog, <that schema>`. A service's
//! role that verifies and pins needs:
//!
//! ```sql
//! GRANT SELECT, INSERT, UPDATE, DELETE ON pin, quarantine, endpoint_state, awaited, endpoint_mode TO tofu_service;
//! GRANT SELECT, INSERT ON audit TO tofu_service;   -- append-only: never UPDATE or DELETE
//! GRANT SELECT ON meta TO tofu_service;
//! GRANT SELECT, USAGE ON SEQUENCE generation TO tofu_service;
//! ```
//!
//! A role that only reads (`tofu-certs list`, a monitor) needs `SELECT` on the five tables
//! and on the sequence `generation`; its store is read-only ([`Backend::is_read_only`]) and
//! a write names the privileges missing. Opening never runs DDL when the schema is current.

/// How many of the store's five triggers are there and `ENABLE ALWAYS` (a literal, for
/// `concat!`; `schema::TRIGGERS` is the statement).
macro_rules! count_triggers {
    () => {
        "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgenabled = 'A' AND (tgrelid, tgname) \
         IN (('pin'::regclass, 'pin_changed'::name), \
         ('quarantine'::regclass, 'quarantine_changed'::name), \
         ('awaited'::regclass, 'awaited_changed'::name), \
         ('endpoint_mode'::regclass, 'endpoint_mode_changed'::name), \
         ('audit'::regclass, 'audit_is_append_only'::name), \
         ('audit'::regclass, 'audit_is_append_only_truncate'::name))"
    };
}

mod schema;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Row, Statement};

use super::backend::{Backend, EndpointState, Held, Loaded, Plan, Write, WriteTx};
use super::{CheckReport, Finding};
use crate::audit::AuditEntry;
use crate::error::{Error, Result};
use crate::location::{ChannelBinding, PostgresHost, PostgresLocation, SslMode};
use crate::pin::{AwaitedPin, Pin, PinMatch, PinSource, PinState, Quarantined, ReportOnly};
use crate::{CertificateDetails, Endpoint, Fingerprint, StoreLocation, Timestamp};

use self::tls::MakeRustls;

/// How long one round trip (a statement, a batch of rows) may take before the connection is
/// given up; a stalled server is silence, not an error, without it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the listening connection checks that the server answers.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a heartbeat may wait for its answer.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two attempts of the listening connection to reconnect.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);
/// The staleness window without a `staleness` parameter.
const DEFAULT_STALENESS: Duration = Duration::from_secs(30);
/// Attempts of one update, when the server reports a serialization failure or a deadlock.
const MAX_ATTEMPTS: u32 = 5;
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;
/// Rows a stream hands from the runtime to the caller's thread at a time, while the server
/// goes on sending the next ones.
const ROWS_PER_BATCH: usize = 1024;

macro_rules! pin_columns {
    () => {
        "endpoint, state, der, fingerprint, spki_fingerprint, subject, issuer, sans, \
         not_before, not_after, pinned_at, first_seen, last_seen, times_seen, source, label, \
         match_kind"
    };
}

const SELECT_STATE: &str = "SELECT epoch, refusals, audited, failing_since, last_refused, \
     last_presented FROM endpoint_state WHERE endpoint = $1";
/// Takes the endpoint's row lock, creating the row if it has none, in one statement. Not an
/// `INSERT … DO NOTHING` then `SELECT … FOR UPDATE`: when a `deletecert` that holds the row
/// commits while the `SELECT` waits, the `SELECT` finds no row and locks nothing, and two
/// first uses waiting behind it both pin. `DO UPDATE` waits for the row, and inserts it
/// again when it was deleted meanwhile, so it always returns a row that this transaction
/// holds.
const LOCK_STATE: &str = "INSERT INTO endpoint_state AS s (endpoint) VALUES ($1) \
     ON CONFLICT (endpoint) DO UPDATE SET endpoint = s.endpoint \
     RETURNING epoch, refusals, audited, failing_since, last_refused, last_presented";
const SELECT_PINS: &str = concat!(
    "SELECT ",
    pin_columns!(),
    " FROM pin WHERE endpoint = $1 ORDER BY state, id"
);
const SELECT_MODE: &str = "SELECT endpoint, since, actor FROM endpoint_mode WHERE endpoint = $1";
const SELECT_MODE_OF: &str =
    "SELECT endpoint, since, actor FROM endpoint_mode WHERE endpoint = ANY($1::text[])";
const SELECT_QUARANTINE: &str = "SELECT endpoint, der, first_seen, last_seen, times_seen, id, \
     epoch FROM quarantine WHERE endpoint = $1 ORDER BY last_seen DESC, id DESC";
const AWAITED_COLUMNS: &str = "endpoint, fingerprint, match_kind, pinned_at, source, label, state";
const SELECT_AWAITED: &str = "SELECT endpoint, fingerprint, match_kind, pinned_at, source, label, \
     state FROM awaited WHERE endpoint = $1 ORDER BY id";
const SELECT_AWAITED_OF: &str = "SELECT endpoint, fingerprint, match_kind, pinned_at, source, \
     label, state FROM awaited WHERE endpoint = ANY($1::text[]) ORDER BY endpoint, id";
const AUDIT_COLUMNS: &str = "id, at, endpoint, event, fingerprint, previous, subject, actor";

/// Endpoints an update of many loads, plans and writes together, in a few statements each.
const CHUNK: usize = 2000;
/// From how many endpoints an update goes by chunks; below, the few round trips of each
/// endpoint in turn cost little, and the endpoints are locked in the order given.
const MIN_BATCH: usize = 16;
/// [`LOCK_STATE`] for a chunk of endpoints, in the order given (sorted, so that two updates
/// take their rows' locks in one order): one row each, held until the commit.
const LOCK_STATES: &str = "INSERT INTO endpoint_state AS s (endpoint) \
     SELECT e FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n \
     ON CONFLICT (endpoint) DO UPDATE SET endpoint = s.endpoint \
     RETURNING epoch, refusals, audited, failing_since, last_refused, last_presented, endpoint";
const SELECT_PINS_OF: &str = concat!(
    "SELECT ",
    pin_columns!(),
    " FROM pin WHERE endpoint = ANY($1::text[]) ORDER BY endpoint, state, id"
);
const SELECT_QUARANTINE_OF: &str = "SELECT endpoint, der, first_seen, last_seen, times_seen, \
     id, epoch FROM quarantine WHERE endpoint = ANY($1::text[]) \
     ORDER BY endpoint, last_seen DESC, id DESC";

/// A pin store in a PostgreSQL database.
pub(crate) struct PostgresBackend {
    location: StoreLocation,
    shown: String,
    inner: Arc<Inner>,
    rt: Runtime,
    read_only: bool,
    /// What the role misses to write, when `read_only`.
    missing: String,
    staleness: Duration,
}

/// What the private runtime's tasks share with the backend.
struct Inner {
    location: PostgresLocation,
    tls: Option<MakeRustls>,
    pool: Mutex<Vec<Arc<Db>>>,
    generation: AtomicU64,
    /// Whether the listening connection is up and answered its last heartbeat.
    healthy: AtomicBool,
    /// When the server last answered the listening connection (ms since `base`).
    last_ok_ms: AtomicU64,
    base: Instant,
    last_failure: Mutex<String>,
    /// `search_path` of every connection once the store's schema is known.
    search_path: std::sync::OnceLock<String>,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn heard(&self) {
        self.last_ok_ms.store(self.now_ms(), Ordering::Release);
        self.healthy.store(true, Ordering::Release);
    }

    fn failed(&self, detail: String) {
        log::debug!(
            "pin store {}: the listening connection failed: {detail}",
            self.location
        );
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = detail;
        self.healthy.store(false, Ordering::Release);
    }
}

/// One connection, with the statements it prepared.
struct Db {
    client: Client,
    statements: Mutex<HashMap<&'static str, Statement>>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Db {
    async fn statement(&self, sql: &'static str) -> Result<Statement, Failure> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
            .cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let s = self.client.prepare(sql).await?;
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sql, s.clone());
        Ok(s)
    }

    async fn query(&self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, Failure> {
        let s = self.statement(sql).await?;
        Ok(self.client.query(&s, params).await?)
    }

    async fn query_opt(
        &self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        let s = self.statement(sql).await?;
        Ok(self.client.query_opt(&s, params).await?)
    }

    async fn execute(&self, sql: &'static str, params: Params<'_>) -> Result<u64, Failure> {
        let s = self.statement(sql).await?;
        Ok(self.client.execute(&s, params).await?)
    }
}

/// What went wrong on the runtime's side, before it is given the store's name.
#[derive(Debug)]
enum Failure {
    Pg(tokio_postgres::Error),
    Corrupt(String),
    /// The connection is in an unknown state (a rollback failed): never reused.
    Broken(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

/// An update's failure: retried (a serialization failure or deadlock), or final.
enum Fail {
    Retry(tokio_postgres::Error),
    Final(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Final(e)
    }
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The private runtime, owned by a background thread that drops it when the backend goes
/// (never on a caller's thread, which may be inside a runtime, where dropping one panics).
struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Runtime {
    fn start() -> std::io::Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tofu-postgres".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("tofu-postgres-io")
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        let _ = rt.block_on(stopped);
                        rt.shutdown_timeout(Duration::from_secs(1));
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })?;
        let handle = handle_rx.recv().map_err(|_| {
            std::io::Error::other("the thread of the database runtime ended at its start")
        })??;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("location", &self.shown)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to the database of `location`, creates the schema when it has none and
    /// `create` is set, and starts listening for other processes' changes.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when no server answers within `connect_timeout`;
    /// [`Error::DatabaseSchema`] for a database without a store (and no `create`), with
    /// another application's tables, or with a newer schema, all left untouched.
    pub(crate) fn open(location: &PostgresLocation, create: bool) -> Result<Self> {
        let shown = location.to_string();
        let staleness = match location.param("staleness") {
            None => DEFAULT_STALENESS,
            Some(text) => Duration::from_secs(text.trim().parse::<u64>().map_err(|_| {
                Error::DatabaseSchema {
                    store: shown.clone(),
                    detail: format!(
                        "staleness={text:?} is not a number of seconds (0 fails closed as soon \
                         as the server is lost; the default is {} s)",
                        DEFAULT_STALENESS.as_secs()
                    ),
                }
            })?),
        };
        let tls = tls::client_config(location)
            .map_err(|detail| Error::Unreachable {
                store: shown.clone(),
                database: location.describe(),
                detail,
            })?
            .map(MakeRustls);
        let rt = Runtime::start().map_err(|e| Error::Postgres {
            store: shown.clone(),
            context: "starting its runtime".into(),
            source: Box::new(e),
        })?;
        let inner = Arc::new(Inner {
            location: location.clone(),
            tls,
            pool: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
            healthy: AtomicBool::new(false),
            last_ok_ms: AtomicU64::new(0),
            base: Instant::now(),
            last_failure: Mutex::new(String::new()),
            search_path: std::sync::OnceLock::new(),
        });
        let mut backend = Self {
            location: StoreLocation::Postgres(location.clone()),
            shown,
            inner,
            rt,
            read_only: false,
            missing: String::new(),
            staleness,
        };
        backend.prepare_schema(create)?;

        // The listening connection, up before the store is handed out: a change committed
        // after `open` returns always moves the generation.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        backend
            .rt
            .handle
            .spawn(listen(backend.inner.clone(), ready_tx));
        let wait = location.connect_timeout()
            * u32::try_from(location.hosts().len().max(1)).unwrap_or(1)
            + HEARTBEAT_TIMEOUT;
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => Ok(backend),
            Ok(Err(detail)) => Err(backend.unreachable(detail)),
            Err(_) => Err(backend.unreachable(format!(
                "the connection that listens for changes did not come up within {} s",
                wait.as_secs()
            ))),
        }
    }

    fn unreachable(&self, detail: String) -> Error {
        Error::Unreachable {
            store: self.shown.clone(),
            database: self.inner.location.describe(),
            detail,
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::DatabaseCorrupt {
            store: self.shown.clone(),
            detail,
        }
    }

    fn schema_error(&self, detail: String) -> Error {
        Error::DatabaseSchema {
            store: self.shown.clone(),
            detail,
        }
    }

    fn pg_error(&self, context: &str, e: tokio_postgres::Error) -> Error {
        if let Some(code) = e.code() {
            if *code == SqlState::INSUFFICIENT_PRIVILEGE
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            {
                let missing = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                return Error::DatabaseReadOnly {
                    store: self.shown.clone(),
                    missing: format!("while {context}: {missing}"),
                };
            }
        }
        Error::Postgres {
            store: self.shown.clone(),
            context: context.to_owned(),
            source: Box::new(e),
        }
    }

    fn failure(&self, context: &str, f: Failure) -> Fail {
        match f {
            Failure::Pg(e) if retryable(&e) => Fail::Retry(e),
            Failure::Pg(e) | Failure::Broken(e) => Fail::Final(self.pg_error(context, e)),
            Failure::Corrupt(detail) => Fail::Final(self.corrupt(detail)),
        }
    }

    /// Runs `fut` on the private runtime and waits for it on this thread.
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::Postgres {
            store: self.shown.clone(),
            context: "waiting for the database".into(),
            source: "the database task ended without an answer".into(),
        })
    }

    /// A connection: an idle one, else a new one.
    fn session(&self) -> Result<Session<'_>> {
        loop {
            let idle = self
                .inner
                .pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(db) if !db.client.is_closed() => {
                    return Ok(Session {
                        backend: self,
                        db: Some(db),
                        in_tx: false,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let inner = self.inner.clone();
        let client = self
            .run(async move { connect(&inner, None).await.map(|(c, _)| c) })?
            .map_err(|detail| self.unreachable(detail))?;
        Ok(Session {
            backend: self,
            db: Some(Arc::new(Db {
                client,
                statements: Mutex::new(HashMap::new()),
            })),
            in_tx: false,
        })
    }

    fn prepare_schema(&mut self, create: bool) -> Result<()> {
        let mut s = self.session()?;
        let inner = self.inner.clone();
        let outcome = s
            .call("reading the schema", move |db| async move {
                schema_state(&db, &inner, create).await
            })
            .map_err(|f| self.final_error(f))?;
        drop(s);
        match outcome {
            SchemaState::Ready(missing) => {
                self.read_only = !missing.is_empty();
                self.missing = missing.join("; ");
                Ok(())
            }
            SchemaState::Absent => Err(self.schema_error(
                "the database holds no pin store yet: nothing has been pinned there. Check the \
                 database name; commands that write (addcert, import, probe --pin) create the \
                 store"
                    .into(),
            )),
            SchemaState::Foreign(what) => Err(self.schema_error(format!(
                "the database has a table meta that is not a tofu-certs store's ({what}); point \
                 the URI at the database of the store"
            ))),
            SchemaState::Newer { found, written_by } => Err(self.schema_error(format!(
                "the store has PostgreSQL schema version {found}{}, newer than the {} this \
                 version of tofu-certs understands; it was not read, to avoid misreading it. \
                 Use that version of tofu-certs or a newer one",
                written_by
                    .map(|w| format!(" (written by {w})"))
                    .unwrap_or_default(),
                schema::SCHEMA_VERSION
            ))),
            SchemaState::Invalid(what) => Err(self.corrupt(format!("the meta table: {what}"))),
            SchemaState::NoSchema => Err(self.schema_error(
                "no schema of the role's search_path exists, so there is none to find or create \
                 the store in; create one, or name it with options=-csearch_path%3D<schema>"
                    .into(),
            )),
            SchemaState::Upgrade { found, owner, why } => Err(self.schema_error(format!(
                "the store has PostgreSQL schema version {found}, which this version of \
                 tofu-certs upgrades to {} on open, and the upgrade needs the owner of its \
                 tables{}: {why}. Open it once as that role (any command, e.g. `tofu-certs \
                 listcerts --store <the URI with user={}>`), then again as this one",
                schema::SCHEMA_VERSION,
                owner
                    .as_ref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default(),
                owner.as_deref().unwrap_or("<owner>"),
            ))),
            SchemaState::Triggers(found) => Err(self.schema_error(triggers_problem(found))),
        }
    }

    fn try_update(&self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<(), Fail> {
        let mut s = self.session()?;
        s.begin("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        if endpoints.len() >= MIN_BATCH {
            // Many endpoints (an import): in byte order of their text, so that two such
            // updates lock shared endpoints in the same order, a chunk at a time.
            let mut keyed: Vec<(String, &Endpoint)> =
                endpoints.iter().map(|e| (e.to_string(), *e)).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            // One endpoint twice would be planned on a load that misses its own first
            // writes: the path one at a time has it.
            if keyed.windows(2).all(|w| w[0].0 != w[1].0) {
                for chunk in keyed.chunks(CHUNK) {
                    self.update_chunk(&mut s, chunk, plan)?;
                }
                return s.commit();
            }
        }
        for endpoint in endpoints {
            let key = endpoint.to_string();
            let k = key.clone();
            let (state, pins, quarantined, awaited, mode) =
                s.call("loading an endpoint", move |db| async move {
                    // The row lock is what keeps two first uses of one endpoint apart. A
                    // check-then-insert at READ COMMITTED without it pins twice.
                    let state = db.query_opt(LOCK_STATE, &[&k]).await?;
                    // READ COMMITTED: these statements see every commit up to the lock.
                    let pins = db.query(SELECT_PINS, &[&k]).await?;
                    let quarantined = db.query(SELECT_QUARANTINE, &[&k]).await?;
                    let awaited = db.query(SELECT_AWAITED, &[&k]).await?;
                    let mode = db.query_opt(SELECT_MODE, &[&k]).await?;
                    Ok((state, pins, quarantined, awaited, mode))
                })?;
            let loaded = self.loaded(state, &pins, &quarantined, &awaited, mode.as_ref())?;
            let writes = plan(endpoint, loaded)?;
            if !writes.is_empty() {
                s.call(
                    "writing",
                    move |db| async move { apply(&db, key, writes).await },
                )?;
            }
        }
        s.commit()
    }

    /// One chunk of a many-endpoint update, in the transaction of `s`: locks and loads every
    /// endpoint in three statements, plans each, and writes the writes of consecutive
    /// endpoints that [`Batch`] takes in a few statements for all of them, the others one
    /// endpoint at a time (in order: the audit log keeps the order of the endpoints).
    /// Equivalent to loading, planning and applying each in turn: an endpoint's load reads
    /// only its own rows, which no other endpoint's writes touch.
    fn update_chunk(
        &self,
        s: &mut Session<'_>,
        chunk: &[(String, &Endpoint)],
        plan: &mut Plan<'_>,
    ) -> Result<(), Fail> {
        let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
        let (states, pins, quarantined, awaited, modes) =
            s.call("loading endpoints", move |db| async move {
                // As in the path one at a time: the locks first, then what they protect.
                let states = db.query(LOCK_STATES, &[&keys]).await?;
                let pins = db.query(SELECT_PINS_OF, &[&keys]).await?;
                let quarantined = db.query(SELECT_QUARANTINE_OF, &[&keys]).await?;
                let awaited = db.query(SELECT_AWAITED_OF, &[&keys]).await?;
                let modes = db.query(SELECT_MODE_OF, &[&keys]).await?;
                Ok((states, pins, quarantined, awaited, modes))
            })?;
        let mut states = self.by_endpoint(states, 6)?;
        let mut pins = self.by_endpoint(pins, 0)?;
        let mut quarantined = self.by_endpoint(quarantined, 0)?;
        let mut awaited = self.by_endpoint(awaited, 0)?;
        let mut modes = self.by_endpoint(modes, 0)?;
        let mut batch = Batch::default();
        for (key, endpoint) in chunk {
            let state = states.remove(key).and_then(|rows| rows.into_iter().next());
            let p = pins.remove(key).unwrap_or_default();
            let q = quarantined.remove(key).unwrap_or_default();
            let a = awaited.remove(key).unwrap_or_default();
            let m = modes.remove(key).and_then(|rows| rows.into_iter().next());
            let loaded = self.loaded(state, &p, &q, &a, m.as_ref())?;
            let writes = plan(endpoint, loaded)?;
            if writes.is_empty() {
                continue;
            }
            if Batch::takes(&writes) {
                batch.add(key, writes);
            } else {
                self.flush(s, &mut batch)?;
                let key = key.clone();
                s.call(
                    "writing",
                    move |db| async move { apply(&db, key, writes).await },
                )?;
            }
        }
        self.flush(s, &mut batch)
    }

    /// `rows` by the endpoint in their column `column`.
    fn by_endpoint(&self, rows: Vec<Row>, column: usize) -> Result<HashMap<String, Vec<Row>>> {
        let mut by: HashMap<String, Vec<Row>> = HashMap::new();
        for r in rows {
            let key: String =
                get(&r, column).map_err(|e| self.corrupt(format!("an endpoint: {e}")))?;
            by.entry(key).or_default().push(r);
        }
        Ok(by)
    }

    /// Writes what `batch` holds, and empties it.
    fn flush(&self, s: &mut Session<'_>, batch: &mut Batch) -> Result<(), Fail> {
        if batch.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(batch);
        s.call("writing", move |db| async move { b.write(&db).await })
    }

    fn loaded(
        &self,
        state: Option<Row>,
        pins: &[Row],
        quarantined: &[Row],
        awaited: &[Row],
        mode: Option<&Row>,
    ) -> Result<Loaded> {
        let state = match state {
            None => EndpointState::default(),
            Some(r) => {
                state_from_row(&r).map_err(|e| self.corrupt(format!("endpoint state: {e}")))?
            }
        };
        let pins = pins
            .iter()
            .map(|r| pin_from_row(r, 0))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| self.corrupt(format!("a pin: {e}")))?;
        let quarantined = quarantined
            .iter()
            .map(|r| {
                Ok(Held {
                    entry: quarantined_from_row(r)?,
                    id: get(r, 5)?,
                    epoch: get(r, 6)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| self.corrupt(format!("a quarantined certificate: {e}")))?;
        let awaited = awaited
            .iter()
            .map(awaited_from_row)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| self.corrupt(format!("an awaited pin: {e}")))?;
        let report_only = mode
            .map(report_only_from_row)
            .transpose()
            .map_err(|e| self.corrupt(format!("an endpoint's mode: {e}")))?;
        Ok(Loaded {
            pins,
            quarantined,
            state,
            awaited,
            report_only,
        })
    }

    /// Runs `sql` in one REPEATABLE READ READ ONLY transaction (one snapshot) and calls
    /// `each` with every row, until the rows end or it breaks.
    fn stream(
        &self,
        sql: String,
        param: Option<String>,
        mut each: impl FnMut(&Row) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut s = self.session()?;
        s.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|f| self.final_error(f))?;
        if s.rows("reading", sql, param, &mut each)?.is_break() {
            return Ok(());
        }
        s.commit().map_err(|f| self.final_error(f))
    }
}

/// A streamed import's transaction: one session, `BEGIN … READ COMMITTED` until committed;
/// the session rolls back when dropped with the transaction open.
struct PostgresTx<'a> {
    backend: &'a PostgresBackend,
    session: Session<'a>,
}

impl PostgresTx<'_> {
    fn error(&self, f: Fail) -> Error {
        match f {
            Fail::Final(e) => e,
            // The input of the blocks before is gone: the whole import is the retry.
            Fail::Retry(e) => self.backend.pg_error(
                "importing (a deadlock or serialization failure with another writer; nothing \
                 was imported: run the import again)",
                e,
            ),
        }
    }
}

impl WriteTx for PostgresTx<'_> {
    fn update(&mut self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()> {
        // In byte order, a chunk at a time, as `try_update` locks many endpoints, so that two
        // imports lock shared endpoints in the same order.
        let mut keyed: Vec<(String, &Endpoint)> =
            endpoints.iter().map(|e| (e.to_string(), *e)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for chunk in keyed.chunks(CHUNK) {
            if let Err(f) = self.backend.update_chunk(&mut self.session, chunk, plan) {
                return Err(self.error(f));
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if let Err(f) = self.session.commit() {
            return Err(self.error(f));
        }
        self.backend.inner.bump();
        Ok(())
    }
}

impl PostgresBackend {
    /// Outside an update nothing is retried: a serialization failure is an error as it is.
    fn final_error(&self, f: Fail) -> Error {
        match f {
            Fail::Final(e) => e,
            Fail::Retry(e) => self.pg_error("reading", e),
        }
    }
}

/// A connection in use; back to the pool when dropped, rolled back first if a transaction
/// was left open (an error, a plan's refusal, a stream stopped early), dropped if broken.
struct Session<'a> {
    backend: &'a PostgresBackend,
    db: Option<Arc<Db>>,
    in_tx: bool,
}

impl Session<'_> {
    fn call<T, F, Fut>(&mut self, context: &str, f: F) -> Result<T, Fail>
    where
        F: FnOnce(Arc<Db>) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
        T: Send + 'static,
    {
        let db = self
            .db
            .clone()
            .expect("a session has its connection until dropped");
        let fut = f(db);
        let out = self
            .backend
            .run(async move { tokio::time::timeout(QUERY_TIMEOUT, fut).await })?;
        match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(f)) => {
                if matches!(&f, Failure::Pg(e) if e.is_closed()) || matches!(f, Failure::Broken(_))
                {
                    self.db = None;
                }
                Err(self.backend.failure(context, f))
            }
            Err(_) => {
                // Its state is unknown: never reused.
                self.db = None;
                Err(Fail::Final(self.backend.pg_timeout(context)))
            }
        }
    }

    fn begin(&mut self, sql: &'static str) -> Result<(), Fail> {
        self.call("starting a transaction", move |db| async move {
            db.client.batch_execute(sql).await?;
            Ok(())
        })?;
        self.in_tx = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Fail> {
        self.call("committing", |db| async move {
            db.client.batch_execute("COMMIT").await?;
            Ok(())
        })?;
        self.in_tx = false;
        Ok(())
    }

    /// Runs `sql` and calls `each` with every row until they end or it breaks. One query,
    /// not a cursor fetched batch by batch: the server sends rows while this thread handles
    /// the ones before, with no round trip between, and the connection reads no further
    /// ahead than its buffers (the client's memory stays bounded). Each batch of rows must
    /// arrive within the query timeout. Stopped early, the connection discards the rest
    /// before its next statement (the rollback when the session is dropped).
    fn rows(
        &mut self,
        context: &str,
        sql: String,
        param: Option<String>,
        each: &mut dyn FnMut(&Row) -> Result<ControlFlow<()>>,
    ) -> Result<ControlFlow<()>> {
        let final_error = |f| self.backend.final_error(f);
        let mut rows = self
            .call(context, move |db| async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    param.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                Ok(Box::pin(db.client.query_raw(sql.as_str(), params).await?))
            })
            .map_err(final_error)?;
        loop {
            let (back, batch, more) = self
                .call(context, move |_| async move {
                    let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
                    while batch.len() < ROWS_PER_BATCH {
                        match rows.try_next().await? {
                            Some(row) => batch.push(row),
                            None => return Ok((rows, batch, false)),
                        }
                    }
                    Ok((rows, batch, true))
                })
                .map_err(|f| self.backend.final_error(f))?;
            for row in &batch {
                if each(row)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            if !more {
                return Ok(ControlFlow::Continue(()));
            }
            rows = back;
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        if db.client.is_closed() {
            return;
        }
        let inner = self.backend.inner.clone();
        let in_tx = self.in_tx;
        self.backend.rt.handle.spawn(async move {
            if in_tx {
                let rolled =
                    tokio::time::timeout(HEARTBEAT_TIMEOUT, db.client.batch_execute("ROLLBACK"))
                        .await;
                if !matches!(rolled, Ok(Ok(()))) {
                    return;
                }
            }
            let mut pool = inner.pool.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < MAX_IDLE {
                pool.push(db);
            }
        });
    }
}

impl PostgresBackend {
    fn pg_timeout(&self, context: &str) -> Error {
        Error::Postgres {
            store: self.shown.clone(),
            context: context.to_owned(),
            source: format!(
                "the server did not answer within {} s; the connection was given up",
                QUERY_TIMEOUT.as_secs()
            )
            .into(),
        }
    }
}

/// Connects to the first server of the location that answers, each within
/// `connect_timeout`. With `notify`, the connection's notifications are sent there.
async fn connect(
    inner: &Inner,
    notify: Option<tokio::sync::mpsc::UnboundedSender<Heard>>,
) -> std::result::Result<(Client, tokio::task::JoinHandle<()>), String> {
    let loc = &inner.location;
    let timeout = loc.connect_timeout();
    let mut errors = Vec::new();
    let options = loc.connection();
    for (i, host) in loc.hosts().iter().enumerate() {
        let mut config = tokio_postgres::Config::new();
        config
            .user(loc.user())
            .dbname(loc.dbname())
            .application_name(loc.application_name().unwrap_or("tofu-certs"))
            .connect_timeout(timeout)
            .keepalives(options.keepalives)
            .channel_binding(match options.channel_binding {
                ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
                ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
                ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
            })
            // A standby's pins lag the primary's: only a server that takes writes, unless the
            // location says `target_session_attrs=any`.
            .target_session_attrs(if options.any_session {
                tokio_postgres::config::TargetSessionAttrs::Any
            } else {
                tokio_postgres::config::TargetSessionAttrs::ReadWrite
            });
        if let Some(idle) = options.keepalives_idle {
            config.keepalives_idle(idle);
        }
        if let Some(o) = &options.options {
            config.options(o);
        }
        if let Some(p) = loc.password() {
            config.password(p);
        }
        // As libpq: no TLS over a unix socket (the kernel carries it).
        let tls = match host {
            PostgresHost::Tcp(h, p) => {
                config.host(h).port(*p);
                if let Some(addr) = options.hostaddrs.get(i) {
                    config.hostaddr(*addr);
                }
                inner.tls.clone()
            }
            PostgresHost::Socket(dir, p) => {
                config.host_path(dir).port(*p);
                None
            }
        };
        config.ssl_mode(match (&tls, loc.sslmode()) {
            (None, _) => tokio_postgres::config::SslMode::Disable,
            (Some(_), SslMode::Prefer) => tokio_postgres::config::SslMode::Prefer,
            (Some(_), _) => tokio_postgres::config::SslMode::Require,
        });
        let notify = notify.clone();
        let path = inner.search_path.get().cloned();
        let attempt = async move {
            let (client, driver) = match tls {
                None => {
                    let (client, conn) = config.connect(NoTls).await?;
                    (client, drive(conn, notify))
                }
                Some(tls) => {
                    let (client, conn) = config.connect(tls).await?;
                    (client, drive(conn, notify))
                }
            };
            if let Some(path) = path {
                if let Err(e) = client.execute(schema::SET_SEARCH_PATH, &[&path]).await {
                    driver.abort();
                    return Err(e);
                }
            }
            Ok::<_, tokio_postgres::Error>((client, driver))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(e)) => errors.push(format!("{host}: {}", chain(&e))),
            Err(_) => errors.push(format!(
                "{host}: no answer within connect_timeout ({} s)",
                timeout.as_secs_f64()
            )),
        }
    }
    if errors.is_empty() {
        errors.push("the location names no server".into());
    }
    Err(errors.join("; "))
}

/// An error with its causes (tokio-postgres keeps the server's or the socket's in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// A notification: its channel and payload.
type Heard = (String, String);

/// Drives a connection on the runtime, sending its notifications to `notify`.
fn drive<S, T>(
    mut conn: Connection<S, T>,
    notify: Option<tokio::sync::mpsc::UnboundedSender<Heard>>,
) -> tokio::task::JoinHandle<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notify {
                        let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log::debug!("a connection of a pin store ended: {e}");
                    break;
                }
                None => break,
            }
        }
    })
}

/// The listening connection: `LISTEN`s, bumps the generation on every genuine
/// notification, and reconnects when it is lost, then bumps the generation (what was
/// notified meanwhile is lost) once it listens again.
///
/// A notification is a hint, not the truth: anyone who may connect can `NOTIFY` the channel.
/// Its payload is the generation sequence's value the change drew, and it counts only when
/// the sequence has reached it and it was not counted before, so a foreign `NOTIFY` makes no
/// reload (a replayed old value at most one, while it is remembered).
///
/// The heartbeat, every [`HEARTBEAT`], proves the whole path rather than that the server
/// answers: it notifies a channel only this connection listens on and waits for that
/// notification to come back (through a pooler that moves sessions between server
/// connections it never does), checks that the store's triggers are still enabled (else
/// changes make no notification), and bumps the generation when the sequence moved without a
/// notification this connection heard.
async fn listen(
    inner: Arc<Inner>,
    ready: std::sync::mpsc::SyncSender<std::result::Result<(), String>>,
) {
    let mut ready = Some(ready);
    let own = format!(
        "tofu_certs_heartbeat_{}_{:x}",
        std::process::id(),
        rand_u64()
    );
    loop {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        match connect(&inner, Some(tx)).await {
            Err(detail) => inner.failed(detail),
            Ok((client, driver)) => {
                let setup = tokio::time::timeout(
                    HEARTBEAT_TIMEOUT.max(inner.location.connect_timeout()),
                    async {
                        client
                            .batch_execute(&format!("LISTEN {}; LISTEN \"{own}\"", schema::CHANNEL))
                            .await?;
                        let beat = client.prepare(HEARTBEAT_QUERY).await?;
                        let row = client.query_one(&beat, &[&own, &"setup"]).await?;
                        Ok::<_, tokio_postgres::Error>((
                            beat,
                            row.get::<_, i64>(0),
                            row.get::<_, i64>(1),
                        ))
                    },
                )
                .await;
                match setup {
                    Ok(Ok((_, _, triggers))) if triggers != schema::TRIGGER_COUNT => {
                        inner.failed(triggers_problem(triggers));
                    }
                    Ok(Ok((beat, sequence, _))) => {
                        inner.bump();
                        inner.heard();
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                        let detail =
                            listening(&inner, &client, &beat, &own, &mut rx, sequence).await;
                        inner.failed(detail);
                    }
                    Ok(Err(e)) => inner.failed(format!("listening: {}", chain(&e))),
                    Err(_) => inner.failed("no answer while starting to listen".into()),
                }
                driver.abort();
            }
        }
        if let Some(r) = ready.take() {
            let detail = inner
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let _ = r.send(Err(detail));
            return;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// One heartbeat: notifies this connection's own channel ($1) with a nonce ($2), and reads
/// the generation sequence and how many of the store's triggers are enabled.
const HEARTBEAT_QUERY: &str = concat!(
    "SELECT (SELECT last_value FROM generation), (",
    count_triggers!(),
    "), pg_catalog.pg_notify($1::text, $2::text)"
);

/// How many counted payloads are remembered, to count each once.
const REMEMBERED: usize = 8192;

/// A connection that listens, until it fails: why.
async fn listening(
    inner: &Inner,
    client: &Client,
    beat: &Statement,
    own: &str,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>,
    mut sequence: i64,
) -> String {
    let mut counted = std::collections::BTreeSet::new();
    // The nonce of the heartbeat in flight, and when it was sent.
    let mut waiting: Option<(String, Instant)> = None;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv() => {
                let Some(first) = n else {
                    return "the server closed the connection".into();
                };
                // Every notification already here, weighed with one read of the sequence.
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut claimed = Vec::new();
                for (channel, payload) in batch {
                    if channel == own {
                        if waiting.as_ref().is_some_and(|(nonce, _)| *nonce == payload) {
                            waiting = None;
                            inner.heard();
                        }
                    } else if let Ok(value) = payload.parse::<i64>() {
                        let forgotten = counted.len() >= REMEMBERED
                            && counted.first().is_some_and(|low| value < *low);
                        if !counted.contains(&value) && !forgotten {
                            claimed.push(value);
                        }
                    }
                }
                if claimed.is_empty() {
                    continue;
                }
                let read = tokio::time::timeout(
                    HEARTBEAT_TIMEOUT,
                    client.query_one("SELECT last_value FROM generation", &[]),
                )
                .await;
                match read {
                    Ok(Ok(row)) => sequence = sequence.max(row.get::<_, i64>(0)),
                    Ok(Err(e)) => return chain(&e),
                    Err(_) => return "no answer to a read of the generation".into(),
                }
                let mut genuine = false;
                for value in claimed.into_iter().filter(|v| *v <= sequence) {
                    genuine = true;
                    counted.insert(value);
                    if counted.len() > REMEMBERED {
                        counted.pop_first();
                    }
                }
                if genuine {
                    inner.bump();
                }
            }
            _ = tick.tick() => {
                if let Some((_, sent)) = &waiting {
                    if sent.elapsed() < HEARTBEAT_TIMEOUT {
                        continue;
                    }
                    return format!(
                        "a heartbeat's notification did not come back within {} s: \
                         notifications do not reach this connection (a pooler in transaction \
                         mode cannot carry LISTEN: connect to the server or to a pooler in \
                         session mode)",
                        HEARTBEAT_TIMEOUT.as_secs()
                    );
                }
                let nonce = format!("{:x}", rand_u64());
                let answer = tokio::time::timeout(
                    HEARTBEAT_TIMEOUT,
                    client.query_one(beat, &[&own, &nonce]),
                )
                .await;
                match answer {
                    Ok(Ok(row)) => {
                        let (now, triggers) = (row.get::<_, i64>(0), row.get::<_, i64>(1));
                        if triggers != schema::TRIGGER_COUNT {
                            return triggers_problem(triggers);
                        }
                        // Drawn without a notification heard (yet): reload once, for a
                        // notification that may never come.
                        if now != sequence {
                            sequence = now;
                            inner.bump();
                        }
                        waiting = Some((nonce, Instant::now()));
                    }
                    Ok(Err(e)) => return chain(&e),
                    Err(_) => {
                        return format!(
                            "no answer to a heartbeat within {} s",
                            HEARTBEAT_TIMEOUT.as_secs()
                        )
                    }
                }
            }
        }
    }
}

/// A number no other process guesses: for a channel name and a heartbeat's nonce.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// What is wrong when a store has `found` of its five triggers enabled always.
fn triggers_problem(found: i64) -> String {
    format!(
        "only {found} of the store's {} triggers are in place and ENABLE ALWAYS (pin_changed, \
         quarantine_changed, awaited_changed, endpoint_mode_changed, audit_is_append_only, audit_is_append_only_truncate): without them \
         other machines' changes go unnoticed or the audit log can be rewritten, so the store \
         is not used. Its owner restores them with ALTER TABLE pin ENABLE ALWAYS TRIGGER \
         pin_changed (and likewise for the others)",
        schema::TRIGGER_COUNT
    )
}

enum SchemaState {
    /// Current; the privileges the role misses to write (none: writable).
    Ready(Vec<String>),
    /// The role's search_path names no existing schema.
    NoSchema,
    /// An older schema that this role cannot upgrade.
    Upgrade {
        found: i64,
        owner: Option<String>,
        why: String,
    },
    /// Triggers missing or not `ENABLE ALWAYS`: how many are.
    Triggers(i64),
    Absent,
    Foreign(String),
    Newer {
        found: i64,
        written_by: Option<String>,
    },
    Invalid(String),
}

async fn read_meta(db: &Db) -> Result<Option<HashMap<String, String>>, Failure> {
    let exists: bool = db.query(schema::PROBE, &[]).await?[0].try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let rows = db.query(schema::READ_META, &[]).await?;
    let mut meta = HashMap::new();
    for r in rows {
        meta.insert(r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?);
    }
    Ok(Some(meta))
}

fn judge(meta: &HashMap<String, String>) -> std::result::Result<i64, SchemaState> {
    if meta.get("application").map(String::as_str) != Some(schema::APPLICATION) {
        return Err(SchemaState::Foreign(format!(
            "its application is {:?}",
            meta.get("application").map_or("missing", String::as_str)
        )));
    }
    let version = meta.get("schema_version").map(String::as_str).unwrap_or("");
    let Ok(found) = version.parse::<i64>() else {
        return Err(SchemaState::Invalid(format!("schema_version {version:?}")));
    };
    if found > schema::SCHEMA_VERSION {
        return Err(SchemaState::Newer {
            found,
            written_by: meta
                .get("upgraded_by")
                .or_else(|| meta.get("created_by"))
                .cloned(),
        });
    }
    if found < 1 {
        return Err(SchemaState::Invalid(format!(
            "schema version {found} is not one tofu-certs ever wrote"
        )));
    }
    Ok(found)
}

/// Reads the schema, creating it when absent and `create`: under an advisory lock, in one
/// transaction, so that of many processes opening a fresh database at once one creates it and
/// the others find it. A current schema is never altered (and no DDL is tried).
async fn schema_state(db: &Db, inner: &Inner, create: bool) -> Result<SchemaState, Failure> {
    // The store's schema, found through the role's own search_path once; from here on this
    // connection and every later one name nothing outside it and pg_catalog.
    let found: Option<String> = db.query(schema::FIND_SCHEMA, &[]).await?[0].try_get(0)?;
    let Some(store_schema) = found else {
        return Ok(SchemaState::NoSchema);
    };
    let path = inner
        .search_path
        .get_or_init(|| schema::search_path(&store_schema))
        .clone();
    db.execute(schema::SET_SEARCH_PATH, &[&path]).await?;
    let mut meta = read_meta(db).await?;
    if meta.is_none() && create {
        db.client.batch_execute("BEGIN").await?;
        let created = async {
            lock_schema(db).await?;
            // Another process may have created it while this one waited for the lock.
            if let Some(m) = read_meta(db).await? {
                return Ok(Some(m));
            }
            db.client
                .batch_execute(&schema::ddl(schema::SCHEMA, &store_schema))
                .await?;
            for (k, v) in [
                ("application", schema::APPLICATION),
                ("schema_version", &schema::SCHEMA_VERSION.to_string()),
                ("created_by", schema::WRITER),
            ] {
                db.client
                    .execute("INSERT INTO meta (key, value) VALUES ($1, $2)", &[&k, &v])
                    .await?;
            }
            Ok::<_, Failure>(None)
        }
        .await;
        match created {
            Ok(m) => {
                db.client.batch_execute("COMMIT").await?;
                meta = match m {
                    Some(m) => Some(m),
                    None => read_meta(db).await?,
                };
            }
            Err(e) => {
                // A connection whose rollback failed is in an unknown state: given up.
                db.client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(Failure::Broken)?;
                // An advisory lock does not make this backend read the catalog changes that
                // the process which held it committed (those are read at a transaction's
                // start or a relation lock), so the check above can miss a schema created a
                // moment ago: the creation then fails on a table that exists, and the
                // creator's schema is read again, in a new transaction.
                let exists = matches!(&e, Failure::Pg(p) if p.code() == Some(&SqlState::DUPLICATE_TABLE)
                    || p.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    || p.code() == Some(&SqlState::DUPLICATE_OBJECT)
                    || p.code() == Some(&SqlState::DUPLICATE_FUNCTION));
                if !exists {
                    return Err(e);
                }
                meta = read_meta(db).await?;
            }
        }
    }
    let Some(meta) = meta else {
        return Ok(SchemaState::Absent);
    };
    let version = match judge(&meta) {
        Ok(v) => v,
        Err(state) => return Ok(state),
    };
    if version < schema::SCHEMA_VERSION {
        if let Some(state) = upgrade(db, &store_schema).await? {
            return Ok(state);
        }
    }
    let triggers: i64 = db.query(schema::TRIGGERS, &[]).await?[0].try_get(0)?;
    if triggers != schema::TRIGGER_COUNT {
        return Ok(SchemaState::Triggers(triggers));
    }
    let missing: Vec<String> = db.query(schema::PRIVILEGES, &[]).await?[0].try_get(0)?;
    Ok(SchemaState::Ready(missing))
}

/// Takes the schema lock for the rest of the transaction: one process creates or upgrades
/// the schema at a time.
async fn lock_schema(db: &Db) -> Result<(), Failure> {
    db.client
        .execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::SCHEMA_LOCK_KEY],
        )
        .await?;
    Ok(())
}

/// Upgrades an older schema to the current one, in one transaction under the schema lock
/// (another process may be upgrading it too); `Some` when this role may not.
async fn upgrade(db: &Db, store_schema: &str) -> Result<Option<SchemaState>, Failure> {
    db.client.batch_execute("BEGIN").await?;
    let done = async {
        lock_schema(db).await?;
        let meta = read_meta(db).await?.unwrap_or_default();
        let version = meta
            .get("schema_version")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if version == 1 {
            db.client
                .batch_execute(&schema::ddl(schema::UPGRADE_1_TO_2, store_schema))
                .await?;
        }
        if (1..=2).contains(&version) {
            db.client
                .batch_execute(&schema::ddl(schema::UPGRADE_2_TO_3, store_schema))
                .await?;
        }
        if (1..=3).contains(&version) {
            db.client
                .batch_execute(&schema::ddl(schema::UPGRADE_3_TO_4, store_schema))
                .await?;
        }
        if (1..=4).contains(&version) {
            db.client
                .batch_execute(&schema::ddl(schema::UPGRADE_4_TO_5, store_schema))
                .await?;
        }
        if (1..schema::SCHEMA_VERSION).contains(&version) {
            db.client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('upgraded_by', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&schema::WRITER],
                )
                .await?;
        }
        Ok::<_, Failure>(version)
    }
    .await;
    match done {
        Ok(_) => {
            db.client.batch_execute("COMMIT").await?;
            Ok(None)
        }
        Err(e) => {
            db.client
                .batch_execute("ROLLBACK")
                .await
                .map_err(Failure::Broken)?;
            let denied = matches!(&e, Failure::Pg(p) if p.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
                || p.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
            if !denied {
                return Err(e);
            }
            let owner: Option<String> = db
                .query(
                    "SELECT pg_catalog.pg_get_userbyid(relowner)::text FROM pg_catalog.pg_class \
                     WHERE oid = pg_catalog.to_regclass('pin')",
                    &[],
                )
                .await?
                .first()
                .and_then(|r| r.try_get(0).ok());
            let found = read_meta(db)
                .await?
                .and_then(|m| m.get("schema_version").and_then(|v| v.parse().ok()))
                .unwrap_or(1);
            let why = match e {
                Failure::Pg(p) => p
                    .as_db_error()
                    .map_or_else(|| p.to_string(), |d| d.message().to_owned()),
                _ => String::new(),
            };
            Ok(Some(SchemaState::Upgrade { found, owner, why }))
        }
    }
}

/// Applies `writes` to endpoint `key`, in order, inside the caller's transaction.
async fn apply(db: &Db, key: String, writes: Vec<Write>) -> Result<(), Failure> {
    for w in writes {
        match w {
            Write::CheckNoPinInTable => {
                // PostgreSQL's indexes can be damaged too (a collation change under an index,
                // a bug): read the table itself, as SQLite's `NOT INDEXED` does, before the
                // one write that opens trust. The settings end with the transaction's next
                // statement that resets them.
                db.client
                    .batch_execute(
                        "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; \
                         SET LOCAL enable_indexonlyscan = off",
                    )
                    .await?;
                let found = db
                    .query_opt(
                        "SELECT 1 FROM pin WHERE endpoint = $1 UNION ALL \
                         SELECT 1 FROM awaited WHERE endpoint = $1 LIMIT 1",
                        &[&key],
                    )
                    .await?;
                db.client
                    .batch_execute(
                        "SET LOCAL enable_indexscan TO DEFAULT; SET LOCAL enable_bitmapscan TO \
                         DEFAULT; SET LOCAL enable_indexonlyscan TO DEFAULT",
                    )
                    .await?;
                if found.is_some() {
                    return Err(Failure::Corrupt(format!(
                        "the pin table (or the awaited table) holds a pin of {key} that its index does not; nothing \
                         was pinned"
                    )));
                }
            }
            Write::InsertPin(pin) => {
                let d = &pin.details;
                let fp = d.fingerprint.as_bytes().as_slice();
                db.execute(
                    "DELETE FROM quarantine WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fp],
                )
                .await?;
                db.execute(
                    concat!(
                        "INSERT INTO pin (",
                        pin_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                         $14, $15, $16, $17)"
                    ),
                    &[
                        &pin.endpoint.to_string(),
                        &pin.state.as_str(),
                        &pin.der.as_ref(),
                        &fp,
                        &d.spki_fingerprint.as_bytes().as_slice(),
                        &d.subject,
                        &d.issuer,
                        &d.sans.join("\n"),
                        &d.not_before.unix(),
                        &d.not_after.unix(),
                        &pin.pinned_at.unix(),
                        &pin.first_seen.map(Timestamp::unix),
                        &pin.last_seen.map(Timestamp::unix),
                        &i64::try_from(pin.times_seen).unwrap_or(i64::MAX),
                        &pin.source.as_str(),
                        &pin.label,
                        &pin.matches.as_str(),
                    ],
                )
                .await?;
            }
            Write::DeletePin(fp) => {
                db.execute(
                    "DELETE FROM pin WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fp.as_bytes().as_slice()],
                )
                .await?;
            }
            Write::ActivatePin { fingerprint, at } => {
                db.execute(
                    "UPDATE pin SET state = 'active', first_seen = coalesce(first_seen, $3), \
                     last_seen = $3, times_seen = times_seen + 1 \
                     WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fingerprint.as_bytes().as_slice(), &at.unix()],
                )
                .await?;
            }
            Write::Seen {
                fingerprint,
                count,
                at,
            } => {
                db.execute(
                    "UPDATE pin SET first_seen = coalesce(first_seen, $3), \
                     last_seen = greatest(coalesce(last_seen, $3), $3), \
                     times_seen = times_seen + $4 WHERE endpoint = $1 AND fingerprint = $2",
                    &[
                        &key,
                        &fingerprint.as_bytes().as_slice(),
                        &at.unix(),
                        &i64::try_from(count).unwrap_or(i64::MAX),
                    ],
                )
                .await?;
            }
            Write::InsertAwaited(a) => {
                db.execute(
                    "INSERT INTO awaited (endpoint, fingerprint, match_kind, pinned_at, source, \
                     label, state) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &key,
                        &a.fingerprint.as_bytes().as_slice(),
                        &a.matches.as_str(),
                        &a.pinned_at.unix(),
                        &a.source.as_str(),
                        &a.label,
                        &a.state.as_str(),
                    ],
                )
                .await?;
            }
            Write::DeleteAwaited(fp) => {
                db.execute(
                    "DELETE FROM awaited WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fp.as_bytes().as_slice()],
                )
                .await?;
            }
            Write::DeleteEndpoint => {
                db.execute("DELETE FROM awaited WHERE endpoint = $1", &[&key])
                    .await?;
                db.execute("DELETE FROM pin WHERE endpoint = $1", &[&key])
                    .await?;
                db.execute("DELETE FROM quarantine WHERE endpoint = $1", &[&key])
                    .await?;
                db.execute("DELETE FROM endpoint_state WHERE endpoint = $1", &[&key])
                    .await?;
            }
            Write::PinsChanged => {
                db.execute(
                    "INSERT INTO endpoint_state (endpoint, epoch) VALUES ($1, 1) \
                     ON CONFLICT (endpoint) DO UPDATE SET epoch = endpoint_state.epoch + 1, \
                     refusals = 0, audited = 0, failing_since = NULL, last_refused = NULL, \
                     last_presented = NULL",
                    &[&key],
                )
                .await?;
            }
            Write::SetState(s) => {
                let presented = s.last_presented.map(|f| f.as_bytes().to_vec());
                db.execute(
                    "INSERT INTO endpoint_state (endpoint, epoch, refusals, audited, \
                     failing_since, last_refused, last_presented) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (endpoint) DO UPDATE SET \
                     epoch = excluded.epoch, refusals = excluded.refusals, \
                     audited = excluded.audited, failing_since = excluded.failing_since, \
                     last_refused = excluded.last_refused, \
                     last_presented = excluded.last_presented",
                    &[
                        &key,
                        &s.epoch,
                        &s.refusals,
                        &s.audited,
                        &s.failing_since,
                        &s.last_refused,
                        &presented,
                    ],
                )
                .await?;
            }
            Write::QuarantineSeen { fingerprint, at } => {
                db.execute(
                    "UPDATE quarantine SET last_seen = $3, times_seen = times_seen + 1 \
                     WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fingerprint.as_bytes().as_slice(), &at.unix()],
                )
                .await?;
            }
            Write::Quarantine { entry, epoch } => {
                db.execute(
                    "INSERT INTO quarantine (endpoint, fingerprint, der, first_seen, last_seen, \
                     times_seen, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &key,
                        &entry.details.fingerprint.as_bytes().as_slice(),
                        &entry.der.as_ref(),
                        &entry.first_seen.unix(),
                        &entry.last_seen.unix(),
                        &i64::try_from(entry.times_seen.max(1)).unwrap_or(i64::MAX),
                        &epoch,
                    ],
                )
                .await?;
            }
            Write::Evict(id) => {
                db.execute("DELETE FROM quarantine WHERE id = $1", &[&id])
                    .await?;
            }
            Write::Unquarantine(fp) => {
                db.execute(
                    "DELETE FROM quarantine WHERE endpoint = $1 AND fingerprint = $2",
                    &[&key, &fp.as_bytes().as_slice()],
                )
                .await?;
            }
            Write::SetReportOnly(Some(m)) => {
                db.execute(
                    "INSERT INTO endpoint_mode (endpoint, mode, since, actor) \
                     VALUES ($1, 'report-only', $2, $3) ON CONFLICT (endpoint) DO UPDATE \
                     SET mode = excluded.mode, since = excluded.since, actor = excluded.actor",
                    &[&key, &m.since.unix(), &m.actor],
                )
                .await?;
            }
            Write::SetReportOnly(None) => {
                db.execute("DELETE FROM endpoint_mode WHERE endpoint = $1", &[&key])
                    .await?;
            }
            Write::Audit(e) => {
                db.execute(
                    "INSERT INTO audit (at, endpoint, event, fingerprint, previous, subject, \
                     actor) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &e.at.unix(),
                        &e.endpoint.to_string(),
                        &e.event.as_str(),
                        &e.fingerprint.map(|f| f.as_bytes().to_vec()),
                        &e.previous.map(|f| f.as_bytes().to_vec()),
                        &e.subject,
                        &e.actor,
                    ],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// The writes of several endpoints, in a few statements for all of them: each statement one
/// phase (checks, pin deletions, pin insertions, epochs, audit records), run in that order.
/// It takes an endpoint's writes only when they come in that order (audit records anywhere:
/// nothing reads the log inside an update), so running each phase for every endpoint at
/// once is running each endpoint's writes in order; rows of one phase keep the endpoints'
/// order (pin ids, audit ids).
#[derive(Default)]
struct Batch {
    /// Endpoints to [`Write::CheckNoPinInTable`].
    check: Vec<String>,
    /// [`Write::DeletePin`]: endpoint, fingerprint.
    delete: Vec<(String, Fingerprint)>,
    /// [`Write::InsertPin`]: endpoint, pin.
    insert: Vec<(String, Pin)>,
    /// [`Write::PinsChanged`].
    changed: Vec<String>,
    /// [`Write::Audit`].
    audit: Vec<AuditEntry>,
}

impl Batch {
    /// The phase of a write, `None` for an audit record (any), or not taken.
    fn phase(w: &Write) -> Option<Option<u8>> {
        match w {
            Write::CheckNoPinInTable => Some(Some(0)),
            Write::DeletePin(_) => Some(Some(1)),
            Write::InsertPin(_) => Some(Some(2)),
            Write::PinsChanged => Some(Some(3)),
            Write::Audit(_) => Some(None),
            _ => None,
        }
    }

    /// Whether the writes of one endpoint can go in a batch: only the kinds above, phases
    /// in order, and at most one `PinsChanged` (one row updated once per statement).
    fn takes(writes: &[Write]) -> bool {
        let mut last = 0;
        let mut changed = 0;
        for w in writes {
            match Self::phase(w) {
                None => return false,
                Some(None) => {}
                Some(Some(p)) if p < last => return false,
                Some(Some(p)) => {
                    last = p;
                    if p == 3 {
                        changed += 1;
                    }
                }
            }
        }
        changed <= 1
    }

    fn add(&mut self, key: &str, writes: Vec<Write>) {
        for w in writes {
            match w {
                Write::CheckNoPinInTable => self.check.push(key.to_owned()),
                Write::DeletePin(fp) => self.delete.push((key.to_owned(), fp)),
                Write::InsertPin(pin) => self.insert.push((key.to_owned(), pin)),
                Write::PinsChanged => self.changed.push(key.to_owned()),
                Write::Audit(e) => self.audit.push(e),
                other => unreachable!("Batch::takes refuses {other:?}"),
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.check.is_empty()
            && self.delete.is_empty()
            && self.insert.is_empty()
            && self.changed.is_empty()
            && self.audit.is_empty()
    }

    /// Runs the phases, inside the caller's transaction.
    async fn write(self, db: &Db) -> Result<(), Failure> {
        if !self.check.is_empty() {
            // As `apply` does, for every endpoint at once: the table itself, not its indexes
            // (a hash join over a sequential scan).
            db.client
                .batch_execute(
                    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; \
                     SET LOCAL enable_indexonlyscan = off",
                )
                .await?;
            let found = db
                .query_opt(
                    "SELECT p.endpoint FROM pin p JOIN unnest($1::text[]) AS e(endpoint) \
                     ON p.endpoint = e.endpoint UNION ALL SELECT a.endpoint FROM awaited a \
                     JOIN unnest($1::text[]) AS e(endpoint) ON a.endpoint = e.endpoint LIMIT 1",
                    &[&self.check],
                )
                .await?;
            db.client
                .batch_execute(
                    "SET LOCAL enable_indexscan TO DEFAULT; SET LOCAL enable_bitmapscan TO \
                     DEFAULT; SET LOCAL enable_indexonlyscan TO DEFAULT",
                )
                .await?;
            if let Some(r) = found {
                let key: String = r.try_get(0)?;
                return Err(Failure::Corrupt(format!(
                    "the pin table (or the awaited table) holds a pin of {key} that its index does not; nothing \
                     was pinned"
                )));
            }
        }
        if !self.delete.is_empty() {
            let keys: Vec<&str> = self.delete.iter().map(|(k, _)| k.as_str()).collect();
            let fps: Vec<&[u8]> = self
                .delete
                .iter()
                .map(|(_, f)| f.as_bytes().as_slice())
                .collect();
            db.execute(
                "DELETE FROM pin p USING unnest($1::text[], $2::bytea[]) AS d(endpoint, fp) \
                 WHERE p.endpoint = d.endpoint AND p.fingerprint = d.fp",
                &[&keys, &fps],
            )
            .await?;
        }
        if !self.insert.is_empty() {
            let keys: Vec<&str> = self.insert.iter().map(|(k, _)| k.as_str()).collect();
            let pins: Vec<&Pin> = self.insert.iter().map(|(_, p)| p).collect();
            let fps: Vec<&[u8]> = pins
                .iter()
                .map(|p| p.details.fingerprint.as_bytes().as_slice())
                .collect();
            // `InsertPin` deletes the endpoint's quarantined copy of the certificate first.
            db.execute(
                "DELETE FROM quarantine q USING unnest($1::text[], $2::bytea[]) AS d(endpoint, fp) \
                 WHERE q.endpoint = d.endpoint AND q.fingerprint = d.fp",
                &[&keys, &fps],
            )
            .await?;
            let endpoints: Vec<String> = pins.iter().map(|p| p.endpoint.to_string()).collect();
            let states: Vec<&str> = pins.iter().map(|p| p.state.as_str()).collect();
            let ders: Vec<&[u8]> = pins.iter().map(|p| p.der.as_ref()).collect();
            let spkis: Vec<&[u8]> = pins
                .iter()
                .map(|p| p.details.spki_fingerprint.as_bytes().as_slice())
                .collect();
            let subjects: Vec<&str> = pins.iter().map(|p| p.details.subject.as_str()).collect();
            let issuers: Vec<&str> = pins.iter().map(|p| p.details.issuer.as_str()).collect();
            let sans: Vec<String> = pins.iter().map(|p| p.details.sans.join("\n")).collect();
            let not_before: Vec<i64> = pins.iter().map(|p| p.details.not_before.unix()).collect();
            let not_after: Vec<i64> = pins.iter().map(|p| p.details.not_after.unix()).collect();
            let pinned_at: Vec<i64> = pins.iter().map(|p| p.pinned_at.unix()).collect();
            let first_seen: Vec<Option<i64>> = pins
                .iter()
                .map(|p| p.first_seen.map(Timestamp::unix))
                .collect();
            let last_seen: Vec<Option<i64>> = pins
                .iter()
                .map(|p| p.last_seen.map(Timestamp::unix))
                .collect();
            let times_seen: Vec<i64> = pins
                .iter()
                .map(|p| i64::try_from(p.times_seen).unwrap_or(i64::MAX))
                .collect();
            let sources: Vec<&str> = pins.iter().map(|p| p.source.as_str()).collect();
            let labels: Vec<Option<&str>> = pins.iter().map(|p| p.label.as_deref()).collect();
            let matches: Vec<&str> = pins.iter().map(|p| p.matches.as_str()).collect();
            db.execute(
                concat!(
                    "INSERT INTO pin (",
                    pin_columns!(),
                    ") SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, \
                     c16, c17 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], \
                     $5::bytea[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], \
                     $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::text[], \
                     $16::text[], $17::text[]) WITH ORDINALITY AS t(c1, c2, c3, c4, c5, c6, c7, \
                     c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, n) ORDER BY n"
                ),
                &[
                    &endpoints,
                    &states,
                    &ders,
                    &fps,
                    &spkis,
                    &subjects,
                    &issuers,
                    &sans,
                    &not_before,
                    &not_after,
                    &pinned_at,
                    &first_seen,
                    &last_seen,
                    &times_seen,
                    &sources,
                    &labels,
                    &matches,
                ],
            )
            .await?;
        }
        if !self.changed.is_empty() {
            db.execute(
                "INSERT INTO endpoint_state (endpoint, epoch) \
                 SELECT e, 1 FROM unnest($1::text[]) WITH ORDINALITY AS t(e, n) ORDER BY n \
                 ON CONFLICT (endpoint) DO UPDATE SET epoch = endpoint_state.epoch + 1, \
                 refusals = 0, audited = 0, failing_since = NULL, last_refused = NULL, \
                 last_presented = NULL",
                &[&self.changed],
            )
            .await?;
        }
        if !self.audit.is_empty() {
            let a = &self.audit;
            let at: Vec<i64> = a.iter().map(|e| e.at.unix()).collect();
            let endpoints: Vec<String> = a.iter().map(|e| e.endpoint.to_string()).collect();
            let events: Vec<&str> = a.iter().map(|e| e.event.as_str()).collect();
            let fps: Vec<Option<&[u8]>> = a
                .iter()
                .map(|e| e.fingerprint.as_ref().map(|f| f.as_bytes().as_slice()))
                .collect();
            let previous: Vec<Option<&[u8]>> = a
                .iter()
                .map(|e| e.previous.as_ref().map(|f| f.as_bytes().as_slice()))
                .collect();
            let subjects: Vec<Option<&str>> = a.iter().map(|e| e.subject.as_deref()).collect();
            let actors: Vec<&str> = a.iter().map(|e| e.actor.as_str()).collect();
            db.execute(
                "INSERT INTO audit (at, endpoint, event, fingerprint, previous, subject, actor) \
                 SELECT c1, c2, c3, c4, c5, c6, c7 FROM unnest($1::int8[], $2::text[], \
                 $3::text[], $4::bytea[], $5::bytea[], $6::text[], $7::text[]) \
                 WITH ORDINALITY AS t(c1, c2, c3, c4, c5, c6, c7, n) ORDER BY n",
                &[
                    &at, &endpoints, &events, &fps, &previous, &subjects, &actors,
                ],
            )
            .await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Rows

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, String> {
    row.try_get(i)
        .map_err(|e| format!("column {}: {e}", row.columns()[i].name()))
}

fn fingerprint(bytes: &[u8]) -> Result<Fingerprint, String> {
    <[u8; 32]>::try_from(bytes)
        .map(Fingerprint::from_bytes)
        .map_err(|_| format!("a fingerprint of {} bytes, not 32", bytes.len()))
}

fn opt_fingerprint(bytes: Option<Vec<u8>>) -> Result<Option<Fingerprint>, String> {
    bytes.as_deref().map(fingerprint).transpose()
}

fn endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse::<Endpoint>()
        .map_err(|e| format!("endpoint: {e}"))
}

fn report_only_from_row(r: &Row) -> Result<ReportOnly, String> {
    Ok(ReportOnly {
        endpoint: endpoint(&get::<String>(r, 0)?)?,
        since: Timestamp::from_unix(get(r, 1)?),
        actor: get(r, 2)?,
    })
}

fn refusals_from_row(r: &Row) -> Result<crate::health::Refusals, String> {
    let count: i64 = get(r, 1)?;
    let since: Option<i64> = get(r, 2)?;
    let last: Option<i64> = get(r, 3)?;
    // Written together with the count; a row without them (never written so) counts as now.
    let last = last.or(since).unwrap_or_else(|| Timestamp::now().unix());
    Ok(crate::health::Refusals {
        endpoint: endpoint(&get::<String>(r, 0)?)?,
        count: u64::try_from(count).unwrap_or(0),
        since: Timestamp::from_unix(since.unwrap_or(last)),
        last: Timestamp::from_unix(last),
        last_presented: opt_fingerprint(get(r, 4)?)?,
    })
}

fn awaited_from_row(r: &Row) -> Result<AwaitedPin, String> {
    Ok(AwaitedPin {
        endpoint: endpoint(&get::<String>(r, 0)?)?,
        fingerprint: fingerprint(&get::<Vec<u8>>(r, 1)?)?,
        matches: get::<String>(r, 2)?.parse()?,
        pinned_at: Timestamp::from_unix(get(r, 3)?),
        source: get::<String>(r, 4)?.parse()?,
        label: get(r, 5)?,
        state: get::<String>(r, 6)?.parse()?,
    })
}

fn state_from_row(r: &Row) -> Result<EndpointState, String> {
    Ok(EndpointState {
        epoch: get(r, 0)?,
        refusals: get(r, 1)?,
        audited: get(r, 2)?,
        failing_since: get(r, 3)?,
        last_refused: get(r, 4)?,
        last_presented: opt_fingerprint(get(r, 5)?)?,
    })
}

/// A pin from [`pin_columns`], starting at column `o`.
fn pin_from_row(r: &Row, o: usize) -> Result<Pin, String> {
    let sans: String = get(r, o + 7)?;
    let times: i64 = get(r, o + 13)?;
    Ok(Pin {
        endpoint: endpoint(get(r, o)?)?,
        state: get::<&str>(r, o + 1)?.parse::<PinState>()?,
        der: CertificateDer::from(get::<Vec<u8>>(r, o + 2)?),
        details: CertificateDetails {
            fingerprint: fingerprint(get(r, o + 3)?)?,
            spki_fingerprint: fingerprint(get(r, o + 4)?)?,
            subject: get(r, o + 5)?,
            issuer: get(r, o + 6)?,
            sans: if sans.is_empty() {
                Vec::new()
            } else {
                sans.split('\n').map(str::to_owned).collect()
            },
            not_before: Timestamp::from_unix(get(r, o + 8)?),
            not_after: Timestamp::from_unix(get(r, o + 9)?),
        },
        pinned_at: Timestamp::from_unix(get(r, o + 10)?),
        first_seen: get::<Option<i64>>(r, o + 11)?.map(Timestamp::from_unix),
        last_seen: get::<Option<i64>>(r, o + 12)?.map(Timestamp::from_unix),
        times_seen: u64::try_from(times).unwrap_or(0),
        source: get::<&str>(r, o + 14)?.parse::<PinSource>()?,
        label: get(r, o + 15)?,
        matches: get::<&str>(r, o + 16)?.parse::<PinMatch>()?,
    })
}

/// A quarantined certificate from `endpoint, der, first_seen, last_seen, times_seen`.
fn quarantined_from_row(r: &Row) -> Result<Quarantined, String> {
    let der: Vec<u8> = get(r, 1)?;
    let details =
        CertificateDetails::from_der(&der).map_err(|e| format!("the certificate: {e}"))?;
    let times: i64 = get(r, 4)?;
    Ok(Quarantined {
        endpoint: endpoint(get(r, 0)?)?,
        der: CertificateDer::from(der),
        details,
        first_seen: Timestamp::from_unix(get(r, 2)?),
        last_seen: Timestamp::from_unix(get(r, 3)?),
        times_seen: u64::try_from(times).unwrap_or(0),
    })
}

fn audit_from_row(r: &Row) -> Result<AuditEntry, String> {
    Ok(AuditEntry {
        id: get(r, 0)?,
        at: Timestamp::from_unix(get(r, 1)?),
        endpoint: endpoint(get(r, 2)?)?,
        event: get::<&str>(r, 3)?.parse()?,
        fingerprint: opt_fingerprint(get(r, 4)?)?,
        previous: opt_fingerprint(get(r, 5)?)?,
        subject: get(r, 6)?,
        actor: get(r, 7)?,
    })
}

/// What is wrong with a pin row (`id` then [`pin_columns`]), if anything: as SQLite's check.
fn pin_problem(r: &Row) -> Option<String> {
    let pin = match pin_from_row(r, 1) {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let text: String = get(r, 1).unwrap_or_default();
    if pin.endpoint.to_string() != text {
        return Some(format!(
            "endpoint {text:?} is not in canonical form ({})",
            pin.endpoint
        ));
    }
    let e = &pin.endpoint;
    let details = match CertificateDetails::from_der(&pin.der) {
        Ok(d) => d,
        Err(err) => return Some(format!("{e}: the certificate does not parse: {err}")),
    };
    if pin.details.fingerprint != details.fingerprint {
        return Some(format!(
            "{e}: the stored fingerprint is not the certificate's"
        ));
    }
    if pin.details.spki_fingerprint != details.spki_fingerprint {
        return Some(format!(
            "{e}: the stored SPKI fingerprint is not the certificate's"
        ));
    }
    if pin.details.subject != details.subject || pin.details.issuer != details.issuer {
        return Some(format!(
            "{e}: the stored subject or issuer is not the certificate's"
        ));
    }
    None
}

/// At most this many findings per check are listed (as SQLite's check).
const MAX_FINDINGS_PER_CHECK: usize = 100;

impl Backend for PostgresBackend {
    fn location(&self) -> &StoreLocation {
        &self.location
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// No query: an atomic moved by the listening connection's notifications, by this
    /// process's own commits and by each reconnection. Fails closed while that connection has
    /// been unhealthy for longer than the staleness window.
    fn generation(&self) -> Result<u64> {
        let inner = &self.inner;
        if !inner.healthy.load(Ordering::Acquire) {
            let silent = inner
                .now_ms()
                .saturating_sub(inner.last_ok_ms.load(Ordering::Acquire));
            if Duration::from_millis(silent) >= self.staleness {
                return Err(Error::Stale {
                    store: self.shown.clone(),
                    silent_secs: silent / 1000,
                    staleness_secs: self.staleness.as_secs(),
                    detail: inner
                        .last_failure
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                });
            }
        }
        Ok(inner.generation.load(Ordering::Acquire))
    }

    fn load(&self, endpoint: &Endpoint) -> Result<Loaded> {
        let mut s = self.session()?;
        s.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|f| self.final_error(f))?;
        let k = endpoint.to_string();
        let (state, pins, quarantined, awaited, mode) = s
            .call("reading an endpoint", move |db| async move {
                let state = db.query_opt(SELECT_STATE, &[&k]).await?;
                let pins = db.query(SELECT_PINS, &[&k]).await?;
                let quarantined = db.query(SELECT_QUARANTINE, &[&k]).await?;
                let awaited = db.query(SELECT_AWAITED, &[&k]).await?;
                let mode = db.query_opt(SELECT_MODE, &[&k]).await?;
                Ok((state, pins, quarantined, awaited, mode))
            })
            .map_err(|f| self.final_error(f))?;
        s.commit().map_err(|f| self.final_error(f))?;
        self.loaded(state, &pins, &quarantined, &awaited, mode.as_ref())
    }

    fn update(&self, endpoints: &[&Endpoint], plan: &mut Plan<'_>) -> Result<()> {
        if self.read_only {
            return Err(Error::DatabaseReadOnly {
                store: self.shown.clone(),
                missing: format!("the role lacks {}", self.missing),
            });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_update(endpoints, plan) {
                Ok(()) => {
                    self.inner.bump();
                    return Ok(());
                }
                Err(Fail::Retry(e)) if attempt < MAX_ATTEMPTS => {
                    log::debug!("pin store {}: retrying a write after: {e}", self.shown);
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
                }
                Err(Fail::Retry(e)) => {
                    return Err(self.pg_error(
                        &format!(
                            "writing (each of {MAX_ATTEMPTS} attempts met a serialization \
                             failure or a deadlock; nothing was changed)"
                        ),
                        e,
                    ))
                }
                Err(Fail::Final(e)) => return Err(e),
            }
        }
    }

    fn begin(&self) -> Result<Box<dyn WriteTx + '_>> {
        if self.read_only {
            return Err(Error::DatabaseReadOnly {
                store: self.shown.clone(),
                missing: format!("the role lacks {}", self.missing),
            });
        }
        let mut s = self.session()?;
        s.begin("BEGIN ISOLATION LEVEL READ COMMITTED")
            .map_err(|f| self.final_error(f))?;
        Ok(Box::new(PostgresTx {
            backend: self,
            session: s,
        }))
    }

    fn for_each_pin(&self, f: &mut dyn FnMut(Pin) -> ControlFlow<()>) -> Result<()> {
        self.stream(
            concat!(
                "SELECT ",
                pin_columns!(),
                " FROM pin ORDER BY endpoint, state, id"
            )
            .into(),
            None,
            |r| {
                let pin = pin_from_row(r, 0).map_err(|e| self.corrupt(format!("a pin: {e}")))?;
                Ok(f(pin))
            },
        )
    }

    fn for_each_awaited(&self, f: &mut dyn FnMut(AwaitedPin) -> ControlFlow<()>) -> Result<()> {
        self.stream(
            format!("SELECT {AWAITED_COLUMNS} FROM awaited ORDER BY endpoint, id"),
            None,
            |r| {
                let a = awaited_from_row(r)
                    .map_err(|e| self.corrupt(format!("an awaited pin: {e}")))?;
                Ok(f(a))
            },
        )
    }

    fn for_each_quarantined(
        &self,
        f: &mut dyn FnMut(Quarantined) -> ControlFlow<()>,
    ) -> Result<()> {
        self.stream(
            "SELECT endpoint, der, first_seen, \
             last_seen, times_seen FROM quarantine ORDER BY endpoint, last_seen DESC, id DESC"
                .into(),
            None,
            |r| {
                let q = quarantined_from_row(r)
                    .map_err(|e| self.corrupt(format!("a quarantined certificate: {e}")))?;
                Ok(f(q))
            },
        )
    }

    fn for_each_report_only(&self, f: &mut dyn FnMut(ReportOnly) -> ControlFlow<()>) -> Result<()> {
        self.stream(
            "SELECT endpoint, since, actor FROM endpoint_mode ORDER BY endpoint".into(),
            None,
            |r| {
                let m = report_only_from_row(r)
                    .map_err(|e| self.corrupt(format!("an endpoint's mode: {e}")))?;
                Ok(f(m))
            },
        )
    }

    fn for_each_refusals(
        &self,
        f: &mut dyn FnMut(crate::health::Refusals) -> ControlFlow<()>,
    ) -> Result<()> {
        self.stream(
            "SELECT endpoint, refusals, failing_since, last_refused, last_presented \
             FROM endpoint_state WHERE refusals > 0 ORDER BY endpoint"
                .into(),
            None,
            |r| {
                let q = refusals_from_row(r)
                    .map_err(|e| self.corrupt(format!("an endpoint's refusals: {e}")))?;
                Ok(f(q))
            },
        )
    }

    fn for_each_audit(
        &self,
        endpoint: Option<&Endpoint>,
        f: &mut dyn FnMut(AuditEntry) -> ControlFlow<()>,
    ) -> Result<()> {
        let (sql, param) = match endpoint {
            Some(e) => (
                format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     WHERE endpoint = $1 ORDER BY id"
                ),
                Some(e.to_string()),
            ),
            None => (
                format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     ORDER BY id"
                ),
                None,
            ),
        };
        self.stream(sql, param, |r| {
            let a = audit_from_row(r).map_err(|e| self.corrupt(format!("an audit entry: {e}")))?;
            Ok(f(a))
        })
    }

    /// Reads every row of the tables themselves (index scans off): the schema version, each
    /// pin against its certificate, duplicates, and every quarantined certificate and audit
    /// entry. PostgreSQL has no `PRAGMA integrity_check`; `amcheck` is the DBA's tool.
    fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let find = |report: &mut CheckReport, kind: &'static str, detail: String| {
            if report.findings.iter().filter(|f| f.kind == kind).count() < MAX_FINDINGS_PER_CHECK {
                report.findings.push(Finding { kind, detail });
            }
        };
        let mut s = self.session()?;
        s.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|f| self.final_error(f))?;
        let meta = s
            .call("checking", |db| async move {
                db.client
                    .batch_execute(
                        "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; \
                         SET LOCAL enable_indexonlyscan = off",
                    )
                    .await?;
                let meta = read_meta(&db).await?;
                let triggers: i64 = db.query(schema::TRIGGERS, &[]).await?[0].try_get(0)?;
                Ok((meta, triggers))
            })
            .map_err(|f| self.final_error(f))?;
        let (meta, triggers) = meta;
        if triggers != schema::TRIGGER_COUNT {
            find(&mut report, "schema", triggers_problem(triggers));
        }
        match meta.as_ref().map(judge) {
            Some(Ok(v)) if v == schema::SCHEMA_VERSION => {}
            Some(Ok(_) | Err(_)) | None => find(
                &mut report,
                "schema",
                format!(
                    "schema version is {:?}, not {}",
                    meta.as_ref().and_then(|m| m.get("schema_version")),
                    schema::SCHEMA_VERSION
                ),
            ),
        }
        let batches = |s: &mut Session<'_>, sql: &str, each: &mut dyn FnMut(&Row)| -> Result<()> {
            s.rows("checking", sql.to_owned(), None, &mut |r| {
                each(r);
                Ok(ControlFlow::Continue(()))
            })
            .map(drop)
        };
        batches(
            &mut s,
            concat!("SELECT id, ", pin_columns!(), " FROM pin"),
            &mut |r| {
                report.pins += 1;
                if let Some(problem) = pin_problem(r) {
                    let id: i64 = r.try_get(0).unwrap_or(-1);
                    find(&mut report, "pin", format!("pin {id}: {problem}"));
                }
            },
        )?;
        batches(
            &mut s,
            "SELECT endpoint, fingerprint, count(*) \
             FROM pin GROUP BY endpoint, fingerprint HAVING count(*) > 1",
            &mut |r| {
                let endpoint: String = r.try_get(0).unwrap_or_default();
                let fp = r
                    .try_get::<_, Vec<u8>>(1)
                    .ok()
                    .and_then(|b| fingerprint(&b).ok())
                    .map_or_else(|| "a malformed fingerprint".into(), |f| f.to_string());
                let n: i64 = r.try_get(2).unwrap_or(0);
                find(
                    &mut report,
                    "duplicate",
                    format!("{endpoint} has {n} pins of {fp}"),
                );
            },
        )?;
        batches(
            &mut s,
            "SELECT endpoint, der, first_seen, \
             last_seen, times_seen, id, fingerprint FROM quarantine",
            &mut |r| {
                report.quarantined += 1;
                let id: i64 = r.try_get(5).unwrap_or(-1);
                match quarantined_from_row(r) {
                    Ok(q)
                        if r.try_get::<_, Vec<u8>>(6)
                            .ok()
                            .and_then(|b| fingerprint(&b).ok())
                            != Some(q.details.fingerprint) =>
                    {
                        find(
                            &mut report,
                            "quarantine",
                            format!("quarantined {id}: its fingerprint is not its certificate's"),
                        )
                    }
                    Ok(_) => {}
                    Err(e) => find(&mut report, "quarantine", format!("quarantined {id}: {e}")),
                }
            },
        )?;
        batches(
            &mut s,
            // Each awaited row, and whether a pin of its endpoint already holds what it
            // awaits (a fill that left it behind).
            "SELECT a.endpoint, a.fingerprint, a.match_kind, a.pinned_at, a.source, a.label, \
             a.state, a.id, EXISTS (SELECT 1 FROM pin p WHERE p.endpoint = a.endpoint \
             AND p.match_kind = a.match_kind AND (CASE a.match_kind WHEN 'key' \
             THEN p.spki_fingerprint ELSE p.fingerprint END) = a.fingerprint) FROM awaited a",
            &mut |r| {
                report.awaited += 1;
                let id: i64 = r.try_get(7).unwrap_or(-1);
                match awaited_from_row(r) {
                    Ok(a) if r.try_get::<_, String>(0).ok() != Some(a.endpoint.to_string()) => {
                        find(
                            &mut report,
                            "awaited",
                            format!(
                                "awaited pin {id}: endpoint {} is not in canonical form",
                                a.endpoint
                            ),
                        )
                    }
                    Ok(a) if r.try_get::<_, bool>(8).unwrap_or(false) => find(
                        &mut report,
                        "awaited",
                        format!(
                            "awaited pin {id}: {}: awaits {}, which a pin of the endpoint \
                             already holds",
                            a.endpoint, a.fingerprint
                        ),
                    ),
                    Ok(_) => {}
                    Err(e) => find(&mut report, "awaited", format!("awaited pin {id}: {e}")),
                }
            },
        )?;
        batches(
            &mut s,
            &format!("SELECT {AUDIT_COLUMNS} FROM audit"),
            &mut |r| {
                report.audit_entries += 1;
                if let Err(e) = audit_from_row(r) {
                    let id: i64 = r.try_get(0).unwrap_or(-1);
                    find(&mut report, "audit", format!("audit entry {id}: {e}"));
                }
            },
        )?;
        s.commit().map_err(|f| self.final_error(f))?;
        Ok(report)
    }
}

/// A test hook: the backend through a few store-like operations, until the facade
/// (`Store::open_location`) dispatches to it. Not an API.
#[doc(hidden)]
pub mod testing {
    use std::ops::ControlFlow;

    use rustls::pki_types::CertificateDer;

    use super::{Backend, PostgresBackend, Write};
    use crate::audit::{AuditEntry, AuditEvent};
    use crate::error::{Error, Result};
    use crate::location::PostgresLocation;
    use crate::pin::{Pin, PinMatch, PinSource, PinState, Quarantined};
    use crate::store::CheckReport;
    use crate::{CertificateDetails, Endpoint, Timestamp};

    /// A PostgreSQL backend, for the tests.
    #[derive(Debug)]
    pub struct Handle(PostgresBackend);

    impl Handle {
        /// Opens the store (see `PostgresBackend::open`).
        pub fn open(location: &PostgresLocation, create: bool) -> Result<Self> {
            PostgresBackend::open(location, create).map(Handle)
        }

        /// `Backend::generation`.
        pub fn generation(&self) -> Result<u64> {
            self.0.generation()
        }

        /// `Backend::is_read_only`.
        pub fn is_read_only(&self) -> bool {
            self.0.is_read_only()
        }

        /// Pins `der` if the endpoint has no pin: whether this call pinned it.
        pub fn pin_first_use(&self, endpoint: &Endpoint, der: &CertificateDer<'_>) -> Result<bool> {
            let details =
                CertificateDetails::from_der(der).map_err(|source| Error::Certificate {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let mut pinned = false;
            self.0.update(&[endpoint], &mut |e, loaded| {
                pinned = false;
                if !loaded.pins.is_empty() {
                    return Ok(Vec::new());
                }
                pinned = true;
                let now = Timestamp::now();
                let pin = Pin {
                    endpoint: e.clone(),
                    state: PinState::Active,
                    der: der.clone().into_owned(),
                    details: details.clone(),
                    pinned_at: now,
                    first_seen: Some(now),
                    last_seen: Some(now),
                    times_seen: 1,
                    source: PinSource::FirstUse,
                    label: None,
                    matches: PinMatch::Certificate,
                };
                Ok(vec![
                    Write::CheckNoPinInTable,
                    Write::InsertPin(pin),
                    Write::PinsChanged,
                    Write::audit(e, AuditEvent::Pinned, Some(&details), None, now, "test"),
                ])
            })?;
            Ok(pinned)
        }

        /// Quarantines `der` (no bounds: a test of the row operations).
        pub fn quarantine(&self, endpoint: &Endpoint, der: &CertificateDer<'_>) -> Result<()> {
            let details =
                CertificateDetails::from_der(der).map_err(|source| Error::Certificate {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            self.0.update(&[endpoint], &mut |e, loaded| {
                let now = Timestamp::now();
                Ok(vec![Write::Quarantine {
                    entry: Quarantined {
                        endpoint: e.clone(),
                        der: der.clone().into_owned(),
                        details: details.clone(),
                        first_seen: now,
                        last_seen: now,
                        times_seen: 1,
                    },
                    epoch: loaded.state.epoch,
                }])
            })
        }

        /// In one update, `PinsChanged` for each endpoint in order, pausing after planning
        /// each (to make two updates interleave); how many times the plan ran.
        pub fn bump_epochs(
            &self,
            endpoints: &[&Endpoint],
            pause: std::time::Duration,
        ) -> Result<usize> {
            let mut calls = 0;
            self.0.update(endpoints, &mut |_, _| {
                calls += 1;
                std::thread::sleep(pause);
                Ok(vec![Write::PinsChanged])
            })?;
            Ok(calls)
        }

        /// Deletes everything of the endpoint.
        pub fn remove_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
            self.remove_endpoint_slowly(endpoint, std::time::Duration::ZERO)
        }

        /// Deletes everything of the endpoint, pausing between loading it (and so holding
        /// its lock) and writing.
        pub fn remove_endpoint_slowly(
            &self,
            endpoint: &Endpoint,
            pause: std::time::Duration,
        ) -> Result<()> {
            self.0.update(&[endpoint], &mut |_, _| {
                std::thread::sleep(pause);
                Ok(vec![Write::DeleteEndpoint])
            })
        }

        /// The endpoint's pins and quarantine, and its epoch.
        pub fn load(&self, endpoint: &Endpoint) -> Result<(Vec<Pin>, Vec<Quarantined>, i64)> {
            let l = self.0.load(endpoint)?;
            Ok((
                l.pins,
                l.quarantined.into_iter().map(|h| h.entry).collect(),
                l.state.epoch,
            ))
        }

        /// Every pin, in the trait's order; stops after `limit`.
        pub fn pins(&self, limit: usize) -> Result<Vec<Pin>> {
            let mut out = Vec::new();
            self.0.for_each_pin(&mut |p| {
                out.push(p);
                if out.len() >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            Ok(out)
        }

        /// Every quarantined certificate.
        pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
            let mut out = Vec::new();
            self.0.for_each_quarantined(&mut |q| {
                out.push(q);
                ControlFlow::Continue(())
            })?;
            Ok(out)
        }

        /// The audit log.
        pub fn audit(&self, endpoint: Option<&Endpoint>) -> Result<Vec<AuditEntry>> {
            let mut out = Vec::new();
            self.0.for_each_audit(endpoint, &mut |a| {
                out.push(a);
                ControlFlow::Continue(())
            })?;
            Ok(out)
        }

        /// `Backend::check`.
        pub fn check(&self) -> Result<CheckReport> {
            self.0.check()
        }
    }
}
