//! The store's errors: each names the path or endpoint involved and says what to do.

use std::path::PathBuf;

use crate::{cert::CertificateError, Endpoint, Fingerprint};

/// An error from the pin store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command that only reads found no store.
    #[error(
        "no pin store at {}: nothing has been pinned there yet. Check --store or \
         TOFU_CERTS_STORE; commands that write (addcert, import, probe --pin) create the store",
        path.display()
    )]
    StoreNotFound {
        /// The store directory.
        path: PathBuf,
    },

    /// The file is SQLite but not a tofu-certs store.
    #[error(
        "{} is an SQLite database but not a tofu-certs pin store ({detail}); it was left \
         untouched. Point --store at a tofu-certs store directory",
        path.display()
    )]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },

    /// The file is damaged or not a database at all.
    #[error(
        "the pin store {} is damaged or not a database ({detail}); nothing was written to it. \
         Keep the file for inspection, move it aside and restore the last `tofu-certs export` \
         backup with `tofu-certs import`",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// The store was written by a newer version of tofu-certs.
    #[error(
        "the pin store {} has schema version {found}{}, newer than the {supported} this \
         version of tofu-certs understands; it was not read, to avoid misreading it. Use that \
         version of tofu-certs or a newer one",
        path.display(),
        written_by.as_ref().map(|w| format!(" (written by {w})")).unwrap_or_default()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
        /// The software that last wrote the store, when it says.
        written_by: Option<String>,
    },

    /// The store directory or file cannot be used because of its type or permissions.
    #[error("cannot use the pin store {}: {reason}", path.display())]
    Unusable {
        /// The path at fault.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },

    /// A store file or directory is not safe to trust, as OpenSSH's `StrictModes` would
    /// refuse it: writable by other users, owned by another user, reached through a symbolic
    /// link, or a file with a second hard link. Nothing was read or written.
    #[error(
        "refusing to use the pin store {}: {problem}; nothing was read or written. To fix \
         it: `{fix}`",
        path.display()
    )]
    Unsafe {
        /// The path at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The shell command that fixes it.
        fix: String,
    },

    /// An I/O error on a path of the store.
    #[error("cannot access the pin store {}: {source}", path.display())]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Another process held the store's write lock for longer than the busy timeout.
    #[error(
        "the pin store {} stayed locked by another process for {timeout_secs} s; nothing was \
         changed. Retry; if it persists, look for a process stuck while writing to the store",
        path.display()
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// The busy timeout that expired.
        timeout_secs: u64,
    },

    /// The store is read-only for this process.
    #[error(
        "the pin store {} is read-only for this user; nothing was changed. Run the command as \
         the store's owner, or fix the permissions of the directory and its files",
        path.display()
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },

    /// A write failed because the filesystem holding the store is full.
    #[error(
        "the pin store {} cannot be written: the filesystem mounted on {} is full ({} bytes \
         free); nothing was changed, and the pins already stored can still be read. Free space \
         on {} and retry",
        path.display(),
        filesystem.display(),
        available,
        filesystem.display()
    )]
    NoSpace {
        /// The database file.
        path: PathBuf,
        /// The mount point of the filesystem holding it.
        filesystem: PathBuf,
        /// The bytes available to this user there.
        available: u64,
    },

    /// Any other error of the database holding the store.
    #[error(
        "the pin store {store} failed ({backend}: {source}); a change it was making was \
         rolled back. Retry; if it fails again, run `tofu-certs check` on the store"
    )]
    Database {
        /// The store, as its location prints (never with a password).
        store: String,
        /// The kind of database: `SQLite`, `PostgreSQL`.
        backend: &'static str,
        /// What the database or its driver reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The store's location names a kind of store this build cannot open.
    #[error("cannot open the pin store {location}: {reason}")]
    Unsupported {
        /// The store, as its location prints (never with a password).
        location: String,
        /// Why, and what to do.
        reason: String,
    },

    /// No server of a PostgreSQL store could be reached, or each refused the connection.
    #[error(
        "cannot reach the pin store {store} ({database}): {detail}. Check that the server is \
         running and listening on that host and port, that its pg_hba.conf admits this user \
         from this machine to this database, the password (in the URI, PGPASSWORD or \
         ~/.pgpass), and connect_timeout (raise it for a slow network)"
    )]
    Unreachable {
        /// The store's location (its password masked).
        store: String,
        /// What the location resolved to: database, user and servers tried.
        database: String,
        /// What each server said, in the order tried.
        detail: String,
    },

    /// The database role of a PostgreSQL store may not write what a change needs.
    #[error(
        "the pin store {store} is read-only for this database role ({missing}); nothing was \
         changed. Grant the role those privileges (see the privileges the postgres backend \
         documents) or connect as a role that has them"
    )]
    DatabaseReadOnly {
        /// The store's location (its password masked).
        store: String,
        /// What is missing: privileges, or a server that is a read-only standby.
        missing: String,
    },

    /// A PostgreSQL database that holds no pin store, another application's tables, or a
    /// schema this version does not understand; it was left untouched.
    #[error("cannot use the pin store {store}: {detail}; nothing was changed in the database")]
    DatabaseSchema {
        /// The store's location (its password masked).
        store: String,
        /// What was found, and what to do.
        detail: String,
    },

    /// A row of a PostgreSQL store holds what this crate never writes.
    #[error(
        "the pin store {store} holds a damaged row ({detail}); nothing was written. Run \
         `tofu-certs check` and restore the last `tofu-certs export` backup"
    )]
    DatabaseCorrupt {
        /// The store's location (its password masked).
        store: String,
        /// Which row, and what is wrong with it.
        detail: String,
    },

    /// The connection that tells this process about other processes' changes has been down
    /// for longer than the store's staleness window: what is cached may be out of date, so
    /// nothing is trusted from it (fail closed) until the server is back.
    #[error(
        "the pin store {store} has not been heard from for {silent_secs} s, longer than its \
         staleness window of {staleness_secs} s ({detail}); changes made elsewhere may have \
         been missed, so pins are not trusted until it is back. Check the server and the \
         network; `staleness=<seconds>` in the store's URI sets the window"
    )]
    Stale {
        /// The store's location (its password masked).
        store: String,
        /// For how long nothing was heard.
        silent_secs: u64,
        /// The window.
        staleness_secs: u64,
        /// The last failure seen.
        detail: String,
    },

    /// Any other error of a PostgreSQL store.
    #[error("the pin store {store} failed while {context}: {source}")]
    Postgres {
        /// The store's location (its password masked).
        store: String,
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A certificate could not be used.
    #[error("the certificate for {endpoint} cannot be pinned: {source}")]
    Certificate {
        /// The endpoint it was meant for.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: CertificateError,
    },

    /// [`crate::Store::add_sole_pin`] found the endpoint with an active pin already (perhaps
    /// added a moment ago by another process): a second one would trust both certificates.
    #[error(
        "{endpoint} already has {}; a second active pin would trust both certificates, so \
         nothing was pinned",
        match active.as_slice() {
            [(fp, subject)] => format!("an active pin, {fp} ({subject})"),
            _ => format!("{} active pins, {}", active.len(), active.iter()
                .map(|(fp, subject)| format!("{fp} ({subject})")).collect::<Vec<_>>().join(", ")),
        }
    )]
    ActivePinExists {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its active pins: fingerprint and subject.
        active: Vec<(Fingerprint, String)>,
    },

    /// The certificate is already pinned for the endpoint.
    #[error(
        "{endpoint} already has a pin with fingerprint {fingerprint} ({state}); nothing was \
         changed"
    )]
    AlreadyPinned {
        /// The endpoint.
        endpoint: Endpoint,
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
        /// Whether the existing pin is active or staged.
        state: crate::pin::PinState,
    },

    /// The endpoint already awaits a certificate with this fingerprint.
    #[error(
        "{endpoint} already awaits a certificate with fingerprint {fingerprint} (a pin made \
         from a fingerprint, not yet presented); nothing was changed"
    )]
    AlreadyAwaited {
        /// The endpoint.
        endpoint: Endpoint,
        /// The awaited fingerprint.
        fingerprint: Fingerprint,
    },

    /// A compare-and-swap found the endpoint's pins changed.
    #[error(
        "{endpoint} is no longer pinned to {expected} (another process changed it); nothing \
         was changed. Look at its pins again before retrying"
    )]
    PinChanged {
        /// The endpoint.
        endpoint: Endpoint,
        /// The pin the caller expected.
        expected: Fingerprint,
    },

    /// No quarantined certificate of the endpoint has that fingerprint.
    #[error(
        "{endpoint} has no quarantined certificate with fingerprint {fingerprint}{}; nothing \
         was changed",
        if quarantined.is_empty() { String::new() } else {
            format!(" (quarantined: {})", quarantined.iter().map(|f| f.to_string())
                .collect::<Vec<_>>().join(", "))
        }
    )]
    NotQuarantined {
        /// The endpoint.
        endpoint: Endpoint,
        /// The fingerprint asked for.
        fingerprint: Fingerprint,
        /// The fingerprints that are quarantined.
        quarantined: Vec<Fingerprint>,
    },

    /// An import would give an endpoint pins beside ones it already has.
    #[error(
        "{endpoint} is already pinned to {existing} in this store and the import file pins \
         {imported}; nothing was imported. Delete the store's pin first, or import replacing \
         the pins of the endpoints in the file"
    )]
    ImportConflict {
        /// The endpoint.
        endpoint: Endpoint,
        /// A fingerprint already pinned.
        existing: Fingerprint,
        /// The imported fingerprint.
        imported: Fingerprint,
    },

    /// A streamed import was used after an error ended it.
    #[error("an earlier error ended this import, and nothing of it was written; start it again")]
    ImportEnded,

    /// A streamed import ([`crate::store::ImportStream`]) was given an endpoint out of order.
    #[error(
        "{endpoint} comes after {previous} in a streamed import, which takes the endpoints in \
         the byte order of their text and each endpoint's pins together (as `tofu-certs export \
         --format jsonl` writes them); nothing was imported. Sort the pins by endpoint, or \
         import them all at once"
    )]
    ImportOutOfOrder {
        /// The endpoint out of order.
        endpoint: Endpoint,
        /// The endpoint before it.
        previous: Endpoint,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
