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
//! - [`policy::decide`]: the verdict on a presented certificate as a pure function of the pins, the
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
//! # The store, in use
//!
//! The operations of [`Store`] a service and an operator use, on a SQLite store in a
//! directory ([`store`] has the types they return):
//!
//! ```
//! use std::ops::ControlFlow;
//! use tofu_core::pin::PinState;
//! use tofu_core::store::FirstUse;
//! use tofu_core::{Endpoint, Fingerprint, Store, StoreLocation};
//!
//! # let dir = tempfile::tempdir()?;
//! # let cert = |name: &str| -> rustls::pki_types::CertificateDer<'static> {
//! #     rcgen::generate_simple_self_signed(vec![name.into()]).unwrap().cert.der().clone()
//! # };
//! # let (old, new, stranger) = (cert("old.example"), cert("new.example"), cert("x.example"));
//! let location = StoreLocation::parse(&dir.path().join("tofu").to_string_lossy())?;
//! let store = Store::open_location(&location)?; // or Store::open(dir)
//! let endpoint: Endpoint = "10.1.1.1:8082".parse()?;
//!
//! // The verifier does this after a first handshake proved the server holds the key.
//! assert!(matches!(store.pin_first_use(&endpoint, &old)?, FirstUse::Pinned(_)));
//! assert!(matches!(store.pin_first_use(&endpoint, &new)?, FirstUse::AlreadyPinned(_)));
//!
//! // A planned rotation: stage the next certificate, promote it when the server switches.
//! store.add_pin(&endpoint, &new, PinState::Next, Some("rotation 2027"))?;
//! let promoted = store.promote_staged(&endpoint, &Fingerprint::of(&new))?.unwrap();
//! assert_eq!(promoted.retired[0].fingerprint(), Fingerprint::of(&old));
//!
//! // An unexpected certificate is refused and quarantined; an operator may accept it.
//! store.quarantine(&endpoint, &stranger)?;
//! assert_eq!(store.endpoint(&endpoint)?.quarantined.len(), 1);
//! store.accept_quarantined(&endpoint, &Fingerprint::of(&stranger))?;
//!
//! let mut pins = 0;
//! store.for_each_pin(|_| { pins += 1; ControlFlow::Continue(()) })?;
//! assert_eq!(pins, 1);
//! assert!(store.check()?.is_sound());
//!
//! let removed = store.remove_endpoint(&endpoint)?;
//! assert_eq!(removed.pins.len(), 1);
//! assert!(!store.endpoint(&endpoint)?.is_pinned());
//!
//! // Opening a store that is not there, without creating it, says so.
//! assert!(Store::open_existing(dir.path().join("missing")).is_err());
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
//! [`verifier::TofuVerifierBuilder::require_chain`]); it does not revoke.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The modules by concept. The everyday types are also at the crate root (below); everything
// else is reached through its module, so the root stays a short list and each module's doc
// says what the concept is for.
pub mod audit;
pub mod cert;
pub mod connect;
pub mod endpoint;
mod error;
pub mod events;
pub mod export;
pub mod fingerprint;
pub mod health;
pub mod location;
mod parallel;
pub mod pin;
pub mod policy;
mod quarantine;
pub mod rejection;
// The store's module doc links to its private backend contract, for readers of the source.
#[allow(rustdoc::private_intra_doc_links)]
pub mod store;
pub mod text;
pub mod timestamp;
pub mod verifier;

pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use fingerprint::Fingerprint;
pub use location::StoreLocation;
pub use policy::Policy;
pub use rejection::TofuError;
pub use store::Store;
pub use verifier::{TofuClientConfigs, TofuVerifier};

/// The PostgreSQL backend through a few store-like operations, for its tests until the facade
/// dispatches to it. Not an API.
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub use store::postgres::testing as __postgres_testing;

// The library's own refusal messages show `tofu-certs` commands to run; quoting those is not
// part of the public API (the CLI has its own copy).
pub(crate) use rejection::{shell_quote, store_arg};
// Short paths the store's files (store/**) import by; kept so that those files, which change
// often, did not have to change for the public modules.
#[cfg(feature = "postgres")]
pub(crate) use cert::read_certificates;
pub(crate) use cert::CertificateDetails;
pub(crate) use text::MAX_LABEL_CHARS;
pub(crate) use timestamp::Timestamp;
