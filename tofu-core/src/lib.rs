//! Trust-on-first-use (TOFU) pinning of TLS certificates, keyed by `host:port`.
//!
//! Two systems that must trust each other without a CA (an HA primary and secondary, a
//! monitor and the appliances it polls) trust the certificate a peer presents the first time,
//! pin it, and refuse a different one later until an operator decides. This crate holds:
//!
//! - [`Store`]: the persistent pin store, one SQLite database (WAL mode) in a directory,
//!   shared safely by any number of threads and processes: services that verify, the
//!   `tofu-certs` command that operators run, rotation scripts;
//! - [`TofuVerifier`]: a rustls 0.23 `ServerCertVerifier` bound to one endpoint that
//!   enforces the pins; [`TofuClientConfigs`] hands out one `ClientConfig` per endpoint;
//! - [`connect`]: the same, per connection, through hyper-util's client, tonic, ureq,
//!   reqwest and tokio-rustls (cargo features `hyper`, `ureq`, `reqwest`, `tokio-rustls`);
//! - [`decide`]: the verdict on a presented certificate as a pure function of the pins, the
//!   certificate, the [`Policy`] and the time.
//!
//! ```
//! use std::sync::Arc;
//! use tofu_core::{Endpoint, Policy, Store, TofuClientConfigs};
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Arc::new(Store::open(dir.path().join("tofu"))?);
//! let configs = TofuClientConfigs::new(store.clone(), Policy::trust_on_first_use());
//! let endpoint: Endpoint = "10.1.1.1_8082".parse()?;
//! let config = configs.client_config(&endpoint)?;
//! // Use it for this endpoint only:
//! let conn = rustls::ClientConnection::new(config, endpoint.server_name())?;
//! assert!(store.endpoint(&endpoint)?.pins.is_empty()); // pinned at the first handshake
//! # drop(conn);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threat model
//!
//! TOFU defends against an attacker who arrives *after* the first connection: from then on a
//! man-in-the-middle must present the pinned certificate and prove it holds its key, which it
//! cannot. It does not defend the first connection itself (pin ahead of use with
//! `tofu-certs addcert`, `import`, or [`Policy::strict`] where that matters), nor against
//! someone who can write the store (it is created mode 0700/0600 and never followed through
//! a symbolic link). Within that model:
//!
//! - a pin is written only after the server proved it holds the certificate's key (the
//!   handshake signature verified), so a server replaying someone's public certificate can
//!   neither create nor promote a pin;
//! - only the leaf certificate is compared; certificates appended to the chain never
//!   satisfy a pin (CVE-2016-2402);
//! - a mismatch fails closed, with a certificate alert and no application data sent, and the
//!   presented certificate is quarantined so an operator can accept exactly it by fingerprint;
//! - a store that cannot be read fails closed, never open;
//! - resumed sessions are bound to the pins they were verified against.
//!
//! What the store does not do: it does not check dates or names unless asked
//! ([`Policy::replace_expired_pins`], [`Policy::require_valid_name`],
//! [`TofuVerifierBuilder::require_chain`]); it does not revoke.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod cert;
pub mod connect;
mod endpoint;
mod error;
mod export;
mod fingerprint;
mod location;
mod parallel;
mod pin;
mod policy;
mod quarantine;
mod rejection;
mod store;
mod text;
mod timestamp;
mod verifier;

pub use audit::{Actor, AuditEntry, AuditEvent};
pub use cert::{
    read_certificates, to_pem, CertificateDetails, CertificateError, MAX_CERTIFICATE_LEN,
};
pub use endpoint::{Endpoint, EndpointError, Host};
pub use error::{Error, Result};
pub use export::{
    parse_export, read_export, write_export, ExportError, ImportError, EXPORT_VERSION,
    MAX_EXPORT_LEN,
};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use location::{
    LocationError, PostgresHost, PostgresLocation, SslMode, StoreLocation, DEFAULT_CONNECT_TIMEOUT,
};
pub use pin::{EndpointRecord, Pin, PinSource, PinState, Quarantined};
pub use policy::{decide, Decision, Policy};
pub use rejection::{shell_quote, store_arg, Mismatch, NotPinned, TofuError};
/// The PostgreSQL backend through a few store-like operations, for its tests until the facade
/// dispatches to it. Not an API.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub use store::postgres::testing as __postgres_testing;
pub use store::{
    CheckReport, Finding, FirstUse, ImportReport, NewPin, Promoted, Removed, Store,
    ALLOW_OWNER_VARIABLE, DATABASE_FILE,
};
pub use text::{
    escape_message, escape_name, escape_name_bytes, escape_text, must_escape, MAX_LABEL_CHARS,
    MAX_NAME_CHARS, MAX_SANS, MAX_SAN_CHARS,
};
pub use timestamp::{Timestamp, TimestampError};
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
pub use verifier::default_provider;
pub use verifier::{BuildError, TofuClientConfigs, TofuVerifier, TofuVerifierBuilder};
