//! `tracing` events for the decisions a service wants in its logs (cargo feature `tracing`).
//!
//! Every event has the target `tofu_core` and these fields, whose names and values are
//! stable (a new outcome may be added; an existing one keeps its name and meaning):
//!
//! | field | value |
//! |---|---|
//! | `outcome` | what happened, one of the words below |
//! | `endpoint` | the `host:port` the verifier is bound to, as `Endpoint` displays it |
//! | `fingerprint` | the certificate concerned (presented, pinned or promoted), `SHA256:` and base64 as OpenSSH writes it |
//! | `pinned` | the active pins' fingerprints, comma-separated (refusals only) |
//! | `generation` | the store's generation the pins were read at (`store_reloaded` only) |
//! | `error` | the store's error message (`store_failed` only) |
//!
//! | `outcome` | level | when |
//! |---|---|---|
//! | `pinned` | INFO | a first-use pin was written, after the server proved it holds the key |
//! | `matched` | DEBUG | the certificate presented is an active pin (every full handshake) |
//! | `promoted` | INFO | a staged (`next`) pin was presented and became the active pin |
//! | `filled` | INFO | an awaited pin (made from a fingerprint) was presented, after the server proved it holds the key, and now holds the certificate |
//! | `replaced_expired` | WARN | every active pin had expired and the policy replaced them |
//! | `refused_mismatch` | WARN | the certificate matches none of the endpoint's pins |
//! | `refused_not_pinned` | WARN | no pin and a policy that does not pin on first use |
//! | `quarantined` | WARN | a refused certificate was kept for an operator to accept (`tofu-certs accept`) |
//! | `store_reloaded` | DEBUG | the verifier read the endpoint's pins afresh (first use, or the store changed) |
//! | `store_failed` | ERROR | the store could not be read or written (unreachable, stale, damaged); the handshake fails closed |
//!
//! Without the feature these functions compile to nothing, and the `log` records the
//! verifier always wrote are unchanged. Adding an event: one function here, named after the
//! outcome, with the fields above.

use crate::{Endpoint, Fingerprint};

#[cfg(feature = "tracing")]
macro_rules! emit {
    ($level:ident, $outcome:literal, $endpoint:expr $(, $field:ident = $value:expr)* ; $message:literal) => {
        tracing::event!(
            target: "tofu_core",
            tracing::Level::$level,
            outcome = $outcome,
            endpoint = %$endpoint,
            $($field = %$value,)*
            $message
        )
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! emit {
    ($level:ident, $outcome:literal, $endpoint:expr $(, $field:ident = $value:expr)* ; $message:literal) => {{
        let _ = &$endpoint;
        $(let _ = &$value;)*
    }};
}

/// The fingerprints of `pins`, comma-separated.
#[cfg(feature = "tracing")]
fn list<'a>(pins: impl Iterator<Item = &'a Fingerprint>) -> String {
    pins.map(Fingerprint::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(not(feature = "tracing"))]
fn list<'a>(pins: impl Iterator<Item = &'a Fingerprint>) {
    drop(pins);
}

pub(crate) fn pinned(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(INFO, "pinned", endpoint, fingerprint = fingerprint; "pinned on first use");
}

pub(crate) fn matched(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(DEBUG, "matched", endpoint, fingerprint = fingerprint; "certificate matches a pin");
}

pub(crate) fn filled(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(INFO, "filled", endpoint, fingerprint = fingerprint; "awaited pin filled in");
}

pub(crate) fn promoted(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(INFO, "promoted", endpoint, fingerprint = fingerprint; "staged pin promoted");
}

pub(crate) fn replaced_expired(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(WARN, "replaced_expired", endpoint, fingerprint = fingerprint;
        "expired pins replaced");
}

pub(crate) fn refused_mismatch<'a>(
    endpoint: &Endpoint,
    presented: &Fingerprint,
    pinned: impl Iterator<Item = &'a Fingerprint>,
) {
    emit!(WARN, "refused_mismatch", endpoint, fingerprint = presented, pinned = list(pinned);
        "certificate refused: it matches none of the pins");
}

pub(crate) fn refused_not_pinned(endpoint: &Endpoint, presented: &Fingerprint) {
    emit!(WARN, "refused_not_pinned", endpoint, fingerprint = presented, pinned = "";
        "certificate refused: the endpoint has no pin");
}

pub(crate) fn quarantined(endpoint: &Endpoint, fingerprint: &Fingerprint) {
    emit!(WARN, "quarantined", endpoint, fingerprint = fingerprint;
        "refused certificate quarantined");
}

pub(crate) fn store_reloaded(endpoint: &Endpoint, generation: u64) {
    emit!(DEBUG, "store_reloaded", endpoint, generation = generation; "pins read from the store");
}

pub(crate) fn store_failed(endpoint: &Endpoint, error: &crate::Error) {
    emit!(ERROR, "store_failed", endpoint, error = error; "pin store failed; refusing");
}
