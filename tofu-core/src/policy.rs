//! What to do with a presented certificate: a pure function of the endpoint's pins, the
//! certificate, the policy and the time. The rustls adapter (`verifier`) only carries out
//! what [`decide`] returns.

use rustls::pki_types::CertificateDer;

use crate::{
    pin::{Pin, PinState},
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
            Decision::Promote { .. } | Decision::PinFirstUse | Decision::ReplaceExpired { .. }
        )
    }
}

/// Decides what to do with the leaf certificate `presented` by an endpoint whose pins (active
/// and staged) are `pins`.
///
/// Only the leaf is ever compared: intermediates a server sends never satisfy a pin. A match
/// compares the DER bytes the store holds, so the common case hashes nothing.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cert::CertificateDetails, pin::PinSource, Endpoint};

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
}
