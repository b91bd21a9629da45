//! What to do with a presented certificate: a pure function of the endpoint's pins, the
//! certificate, the policy and the time. The rustls adapter (`verifier`) only carries out
//! what [`decide`] returns.

use rustls::pki_types::CertificateDer;

use crate::{
    cert::CertificateDetails,
    pin::{AwaitedPin, Pin, PinMatch, PinState},
    timestamp::Timestamp,
    Fingerprint,
};

/// How a verifier treats endpoints and certificates.
///
/// ```
/// use tofu_core::Policy;
/// let policy = Policy::trust_on_first_use().replace_expired_pins(true);
/// assert!(policy.pins_on_first_use());
/// assert!(!Policy::strict().pins_on_first_use());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pin_on_first_use: bool,
    first_use_match: PinMatch,
    replace_expired: bool,
    require_valid_name: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self::trust_on_first_use()
    }
}

impl Policy {
    /// Trust on first use: an endpoint that has no pin is pinned to the certificate it
    /// presents (once the server proved it holds the certificate's key).
    ///
    /// ```
    /// let policy = tofu_core::Policy::trust_on_first_use();
    /// assert!(policy.pins_on_first_use() && !policy.replaces_expired_pins());
    /// ```
    pub fn trust_on_first_use() -> Self {
        Self {
            pin_on_first_use: true,
            first_use_match: PinMatch::Certificate,
            replace_expired: false,
            require_valid_name: false,
        }
    }

    /// Strict: only pinned endpoints are accepted; an operator pins them ahead of use
    /// (`tofu-certs addcert`, `tofu-certs probe --pin`, `tofu-certs import`).
    ///
    /// ```
    /// let policy = tofu_core::Policy::strict().require_valid_name(true);
    /// assert!(!policy.pins_on_first_use() && policy.requires_valid_name());
    /// ```
    pub fn strict() -> Self {
        Self {
            pin_on_first_use: false,
            ..Self::trust_on_first_use()
        }
    }

    /// Lets a new certificate replace the pins of an endpoint whose pinned certificates have
    /// all passed their notAfter. Off by default: trust-on-first-use trusts an identity, not
    /// dates, so an expired pinned certificate is still accepted (with a warning) and a new one
    /// is a mismatch.
    pub fn replace_expired_pins(mut self, yes: bool) -> Self {
        self.replace_expired = yes;
        self
    }

    /// Also requires the certificate to be valid for the server name (its subjectAltName).
    /// Off by default: self-signed appliance certificates rarely name the address used.
    pub fn require_valid_name(mut self, yes: bool) -> Self {
        self.require_valid_name = yes;
        self
    }

    /// What a pin made on first use matches (default: [`PinMatch::Certificate`]); with
    /// [`PinMatch::Key`], the endpoint's later certificates with the same key are accepted
    /// and recorded as renewals.
    pub fn pin_first_use_matching(mut self, matches: PinMatch) -> Self {
        self.first_use_match = matches;
        self
    }

    /// What a pin made on first use matches.
    pub fn first_use_match(&self) -> PinMatch {
        self.first_use_match
    }

    /// Whether an unpinned endpoint is pinned on first use.
    pub fn pins_on_first_use(&self) -> bool {
        self.pin_on_first_use
    }

    /// Whether expired pins may be replaced.
    pub fn replaces_expired_pins(&self) -> bool {
        self.replace_expired
    }

    /// Whether the certificate must be valid for the server name.
    pub fn requires_valid_name(&self) -> bool {
        self.require_valid_name
    }
}

/// The verdict on a presented certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The certificate is one of the endpoint's active pins.
    Accept {
        /// The matching pin.
        fingerprint: Fingerprint,
        /// The pinned certificate has passed its notAfter (accepted all the same).
        expired: bool,
    },
    /// The certificate is the endpoint's staged pin: accept it and make it the active pin.
    Promote {
        /// The staged pin.
        fingerprint: Fingerprint,
    },
    /// The certificate is new but has the public key of an active key pin, and is not older
    /// than the pinned one: accept it and record the renewal (the pin takes the new
    /// certificate).
    Renew {
        /// The key pin.
        fingerprint: Fingerprint,
    },
    /// The certificate is the one an awaited pin names (by certificate or key fingerprint):
    /// accept it and fill the pin in with it.
    Fill {
        /// The awaited fingerprint.
        awaited: Fingerprint,
    },
    /// The endpoint has no pin: accept and pin the certificate.
    PinFirstUse,
    /// Every active pin has expired and the policy lets a new certificate replace them.
    ReplaceExpired {
        /// The expired pins to replace.
        expired: Vec<Fingerprint>,
    },
    /// The endpoint has no pin and the policy is strict.
    RejectNotPinned,
    /// The endpoint is pinned to other certificates.
    RejectMismatch,
}

impl Decision {
    /// Whether the handshake may go on.
    pub fn accepts(&self) -> bool {
        !matches!(self, Decision::RejectNotPinned | Decision::RejectMismatch)
    }

    /// Whether carrying out the decision writes to the store (and so must wait until the
    /// server has proved it holds the certificate's key).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Decision::Promote { .. }
                | Decision::Renew { .. }
                | Decision::Fill { .. }
                | Decision::PinFirstUse
                | Decision::ReplaceExpired { .. }
        )
    }
}

/// Decides what to do with the leaf certificate `presented` by an endpoint whose pins (active
/// and staged) are `pins`.
///
/// Only the leaf is ever compared: intermediates a server sends never satisfy a pin. A match
/// compares the DER bytes the store holds, so the common case hashes nothing; only a
/// certificate that is none of the pins, of an endpoint with a key pin ([`PinMatch::Key`]),
/// is parsed to compare its public key. An older certificate with the pinned key (a server
/// rolled back) is accepted without being recorded, so two certificates of one key taking
/// turns never rewrite the pin at every handshake.
///
/// ```
/// use tofu_core::policy::{decide, Decision};
/// use tofu_core::timestamp::Timestamp;
/// use tofu_core::Policy;
///
/// # let der = rcgen::generate_simple_self_signed(vec!["a.example".into()])?.cert.der().clone();
/// // No pins yet: trust on first use pins, strict refuses.
/// let now = Timestamp::now();
/// let tofu = decide(&[], &der, &Policy::trust_on_first_use(), now);
/// assert!(matches!(tofu, Decision::PinFirstUse));
/// assert!(tofu.accepts() && tofu.writes());
/// assert!(!decide(&[], &der, &Policy::strict(), now).accepts());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(
    pins: &[Pin],
    presented: &CertificateDer<'_>,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    decide_with_awaited(pins, &[], presented, policy, now)
}

/// [`decide`] for an endpoint that may also have awaited pins (pins made from a fingerprint,
/// [`AwaitedPin`]). An awaited pin pins the endpoint: a certificate that meets none of its
/// pins is a mismatch, never a first use, and never replaces expired pins. Only a
/// certificate that is none of the pins, of an endpoint with an awaited pin, is hashed to
/// compare with the awaited fingerprints.
///
/// ```
/// use tofu_core::pin::{AwaitedPin, PinMatch, PinSource, PinState};
/// use tofu_core::policy::{decide_with_awaited, Decision};
/// use tofu_core::timestamp::Timestamp;
/// use tofu_core::{Fingerprint, Policy};
///
/// # let der = rcgen::generate_simple_self_signed(vec!["a.example".into()])?.cert.der().clone();
/// let awaited = AwaitedPin {
///     endpoint: "a.example:443".parse()?,
///     fingerprint: Fingerprint::of(&der),
///     matches: PinMatch::Certificate,
///     state: PinState::Active,
///     pinned_at: Timestamp::now(),
///     source: PinSource::Operator,
///     label: None,
/// };
/// let policy = Policy::trust_on_first_use();
/// let d = decide_with_awaited(&[], &[awaited], &der, &policy, Timestamp::now());
/// assert!(matches!(d, Decision::Fill { .. }) && d.writes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide_with_awaited(
    pins: &[Pin],
    awaited: &[AwaitedPin],
    presented: &CertificateDer<'_>,
    policy: &Policy,
    now: Timestamp,
) -> Decision {
    let presented = presented.as_ref();
    if let Some(pin) = pins
        .iter()
        .find(|p| p.state == PinState::Active && p.der.as_ref() == presented)
    {
        return Decision::Accept {
            fingerprint: pin.fingerprint(),
            expired: pin.details.not_after < now,
        };
    }
    if let Some(pin) = pins
        .iter()
        .find(|p| p.state == PinState::Next && p.der.as_ref() == presented)
    {
        return Decision::Promote {
            fingerprint: pin.fingerprint(),
        };
    }
    if let Some(decision) = match_key(pins, presented, now) {
        return decision;
    }
    if !awaited.is_empty() {
        // Unparsable: nothing to compare; refused as any mismatch.
        if let Ok(details) = CertificateDetails::from_der(presented) {
            if let Some(a) = awaited.iter().find(|a| a.is_met_by(&details)) {
                return Decision::Fill {
                    awaited: a.fingerprint,
                };
            }
        }
        return Decision::RejectMismatch;
    }
    if pins.is_empty() {
        return match policy.pin_on_first_use {
            true => Decision::PinFirstUse,
            false => Decision::RejectNotPinned,
        };
    }
    let all_active_expired = pins
        .iter()
        .all(|p| p.state == PinState::Active && p.details.not_after < now);
    if policy.replace_expired && all_active_expired {
        return Decision::ReplaceExpired {
            expired: pins.iter().map(Pin::fingerprint).collect(),
        };
    }
    Decision::RejectMismatch
}

/// The decision for a certificate that is none of the pins but may have a key pin's key.
fn match_key(pins: &[Pin], presented: &[u8], now: Timestamp) -> Option<Decision> {
    if !pins.iter().any(|p| p.matches == PinMatch::Key) {
        return None;
    }
    // Unparsable: no key to compare; the caller refuses it as it refuses any mismatch.
    let details = CertificateDetails::from_der(presented).ok()?;
    let spki = details.spki_fingerprint;
    if let Some(pin) = pins
        .iter()
        .find(|p| p.state == PinState::Active && p.matches_key(&spki))
    {
        if details.not_after < pin.details.not_after {
            return Some(Decision::Accept {
                fingerprint: pin.fingerprint(),
                expired: details.not_after < now,
            });
        }
        return Some(Decision::Renew {
            fingerprint: pin.fingerprint(),
        });
    }
    pins.iter()
        .find(|p| p.state == PinState::Next && p.matches_key(&spki))
        .map(|pin| Decision::Promote {
            fingerprint: pin.fingerprint(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pin::PinSource, Endpoint};

    fn pin(der: &[u8], state: PinState, not_after: i64) -> Pin {
        Pin {
            endpoint: "10.1.1.1:8082".parse::<Endpoint>().unwrap(),
            state,
            der: CertificateDer::from(der.to_vec()),
            details: CertificateDetails {
                fingerprint: Fingerprint::of(der),
                spki_fingerprint: Fingerprint::of(b"spki"),
                subject: "/CN=prime-sec".into(),
                issuer: "/CN=prime-sec".into(),
                sans: vec![],
                not_before: Timestamp::from_unix(0),
                not_after: Timestamp::from_unix(not_after),
            },
            pinned_at: Timestamp::from_unix(0),
            first_seen: None,
            last_seen: None,
            times_seen: 0,
            source: PinSource::FirstUse,
            label: None,
            matches: PinMatch::Certificate,
        }
    }

    const NOW: Timestamp = Timestamp::from_unix(1_000);
    const LATER: i64 = 2_000;
    const EARLIER: i64 = 500;

    fn cert(bytes: &'static [u8]) -> CertificateDer<'static> {
        CertificateDer::from(bytes)
    }

    #[test]
    fn a_matching_active_pin_is_accepted() {
        let pins = [
            pin(b"A", PinState::Active, LATER),
            pin(b"B", PinState::Active, LATER),
        ];
        let d = decide(&pins, &cert(b"B"), &Policy::strict(), NOW);
        assert_eq!(
            d,
            Decision::Accept {
                fingerprint: Fingerprint::of(b"B"),
                expired: false
            }
        );
        assert!(d.accepts() && !d.writes());
    }

    #[test]
    fn an_expired_pin_is_still_accepted_but_flagged() {
        let pins = [pin(b"A", PinState::Active, EARLIER)];
        let d = decide(&pins, &cert(b"A"), &Policy::default(), NOW);
        assert_eq!(
            d,
            Decision::Accept {
                fingerprint: Fingerprint::of(b"A"),
                expired: true
            }
        );
    }

    #[test]
    fn a_staged_pin_is_promoted_when_presented() {
        let pins = [
            pin(b"A", PinState::Active, LATER),
            pin(b"N", PinState::Next, LATER),
        ];
        let d = decide(&pins, &cert(b"N"), &Policy::default(), NOW);
        assert_eq!(
            d,
            Decision::Promote {
                fingerprint: Fingerprint::of(b"N")
            }
        );
        assert!(d.writes());
    }

    #[test]
    fn an_unpinned_endpoint_is_pinned_or_rejected_by_policy() {
        assert_eq!(
            decide(&[], &cert(b"A"), &Policy::trust_on_first_use(), NOW),
            Decision::PinFirstUse
        );
        assert_eq!(
            decide(&[], &cert(b"A"), &Policy::strict(), NOW),
            Decision::RejectNotPinned
        );
    }

    #[test]
    fn a_different_certificate_is_a_mismatch_whatever_the_policy() {
        let pins = [pin(b"A", PinState::Active, LATER)];
        for policy in [
            Policy::trust_on_first_use(),
            Policy::strict(),
            Policy::default().replace_expired_pins(true),
        ] {
            assert_eq!(
                decide(&pins, &cert(b"X"), &policy, NOW),
                Decision::RejectMismatch
            );
        }
        // An endpoint with only a staged pin is pinned: it expects that certificate.
        let staged = [pin(b"N", PinState::Next, LATER)];
        assert_eq!(
            decide(&staged, &cert(b"X"), &Policy::default(), NOW),
            Decision::RejectMismatch
        );
    }

    #[test]
    fn expired_pins_are_replaced_only_when_the_policy_allows_and_all_have_expired() {
        let expired = [pin(b"A", PinState::Active, EARLIER)];
        assert_eq!(
            decide(&expired, &cert(b"X"), &Policy::default(), NOW),
            Decision::RejectMismatch
        );
        let allow = Policy::default().replace_expired_pins(true);
        assert_eq!(
            decide(&expired, &cert(b"X"), &allow, NOW),
            Decision::ReplaceExpired {
                expired: vec![Fingerprint::of(b"A")]
            }
        );
        let mixed = [
            pin(b"A", PinState::Active, EARLIER),
            pin(b"B", PinState::Active, LATER),
        ];
        assert_eq!(
            decide(&mixed, &cert(b"X"), &allow, NOW),
            Decision::RejectMismatch
        );
        let with_staged = [
            pin(b"A", PinState::Active, EARLIER),
            pin(b"N", PinState::Next, LATER),
        ];
        assert_eq!(
            decide(&with_staged, &cert(b"X"), &allow, NOW),
            Decision::RejectMismatch
        );
    }

    /// A certificate of `key` valid until `not_after`, and a pin of it matching `matches`.
    fn keyed(key: &rcgen::KeyPair, not_after: i64, matches: PinMatch) -> (Pin, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(vec!["prime-sec".into()]).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let der = params.self_signed(key).unwrap().der().to_vec();
        let mut p = pin(&der, PinState::Active, 0);
        p.details = CertificateDetails::from_der(&der).unwrap();
        p.matches = matches;
        (p, der)
    }

    const YEAR: i64 = 365 * 86_400;
    const T0: i64 = 1_900_000_000;

    #[test]
    fn a_key_pin_matches_a_renewal_with_its_key_and_records_only_a_newer_one() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (pinned, _) = keyed(&key, T0, PinMatch::Key);
        let (_, renewed) = keyed(&key, T0 + YEAR, PinMatch::Key);
        let (_, older) = keyed(&key, T0 - YEAR, PinMatch::Key);
        let pins = [pinned.clone()];
        let now = Timestamp::from_unix(T0 - 2 * YEAR);
        let d = decide(&pins, &cert_of(&renewed), &Policy::strict(), now);
        assert_eq!(
            d,
            Decision::Renew {
                fingerprint: pinned.fingerprint()
            }
        );
        assert!(
            d.accepts() && d.writes(),
            "a renewal is written after the proof"
        );
        // A server that went back to an older certificate of the key is accepted, unrecorded.
        assert_eq!(
            decide(&pins, &cert_of(&older), &Policy::strict(), now),
            Decision::Accept {
                fingerprint: pinned.fingerprint(),
                expired: false
            }
        );
    }

    #[test]
    fn a_certificate_pin_refuses_a_renewal_with_the_same_key_and_a_key_pin_a_new_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (cert_pin, _) = keyed(&key, T0, PinMatch::Certificate);
        let (key_pin, _) = keyed(&key, T0, PinMatch::Key);
        let (_, renewed) = keyed(&key, T0 + YEAR, PinMatch::Key);
        let other = rcgen::KeyPair::generate().unwrap();
        let (_, new_key) = keyed(&other, T0 + YEAR, PinMatch::Key);
        let now = Timestamp::from_unix(T0 - YEAR);
        for policy in [Policy::strict(), Policy::trust_on_first_use()] {
            assert_eq!(
                decide(
                    std::slice::from_ref(&cert_pin),
                    &cert_of(&renewed),
                    &policy,
                    now
                ),
                Decision::RejectMismatch
            );
            assert_eq!(
                decide(
                    std::slice::from_ref(&key_pin),
                    &cert_of(&new_key),
                    &policy,
                    now
                ),
                Decision::RejectMismatch
            );
        }
    }

    #[test]
    fn a_staged_key_pin_is_promoted_by_a_certificate_with_its_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (mut staged, _) = keyed(&key, T0, PinMatch::Key);
        staged.state = PinState::Next;
        let (_, renewed) = keyed(&key, T0 + YEAR, PinMatch::Key);
        let pins = [pin(b"A", PinState::Active, LATER), staged.clone()];
        assert_eq!(
            decide(&pins, &cert_of(&renewed), &Policy::strict(), NOW),
            Decision::Promote {
                fingerprint: staged.fingerprint()
            }
        );
    }

    #[test]
    fn certificate_pins_never_parse_what_is_presented() {
        // Not a certificate at all: with certificate pins only, it is compared as bytes and
        // refused without being parsed (the hit path and the miss path hash nothing).
        let pins = [pin(b"A", PinState::Active, LATER)];
        assert_eq!(
            decide(&pins, &cert(b"not DER"), &Policy::strict(), NOW),
            Decision::RejectMismatch
        );
    }

    fn cert_of(der: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(der.to_vec())
    }
}
