//! Trust-on-first-use pinning of TLS certificates, keyed by `host:port`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod cert;
mod endpoint;
mod error;
mod export;
mod fingerprint;
mod pin;
mod policy;
mod rejection;
mod store;
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
pub use pin::{EndpointRecord, Pin, PinSource, PinState, Quarantined};
pub use policy::{decide, Decision, Policy};
pub use rejection::{Mismatch, NotPinned, TofuError};
pub use store::{FirstUse, ImportReport, NewPin, Promoted, Removed, Store, DATABASE_FILE};
pub use timestamp::{Timestamp, TimestampError};
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
pub use verifier::default_provider;
pub use verifier::{BuildError, TofuClientConfigs, TofuVerifier, TofuVerifierBuilder};
