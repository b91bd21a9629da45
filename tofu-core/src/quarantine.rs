//! How much a peer can make the store keep: the bounds on an endpoint's quarantine and on the
//! refusals written to its audit log, as pure rules over what the endpoint holds.
//!
//! A refused certificate is recorded only after the server proved it holds its key (see
//! `verifier`), but a hostile server can make as many keys as it likes. So the store keeps, per
//! endpoint, a bounded quarantine in which repeats of one certificate are one entry with a
//! count, and the first certificates refused since the endpoint's pins last changed (the
//! ones an operator is reading about, and may want to `accept`) are never evicted by later
//! ones. Refusals are audited up to a budget per change of the pins; beyond it they are
//! counted, not logged.

/// Certificates quarantined per endpoint at most.
pub(crate) const MAX_ENTRIES: usize = 8;

/// Bytes of quarantined certificates (DER) per endpoint at most: a handful of the largest
/// certificates a handshake can carry (64 KiB).
pub(crate) const MAX_BYTES: usize = 384 * 1024;

/// The first certificates quarantined since the pins last changed that a later certificate
/// never evicts.
pub(crate) const PROTECTED: usize = 4;

/// Refusals of distinct certificates written to the audit log per change of an endpoint's
/// pins; later ones are counted in the endpoint's state only.
pub(crate) const MAX_AUDITED_REFUSALS: i64 = 8;

/// One quarantined certificate, as far as the bounds are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The row, in insertion order.
    pub(crate) id: i64,
    /// The change of the endpoint's pins it was first quarantined after.
    pub(crate) epoch: i64,
    /// Its size in bytes.
    pub(crate) len: usize,
    /// When it was last presented.
    pub(crate) last_seen: i64,
}

/// What to do with a certificate not quarantined yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Keep it, after evicting these slots (by id).
    Keep {
        /// The slots to remove first.
        evict: Vec<i64>,
    },
    /// Do not keep it: the quarantine is full of certificates that may not be evicted.
    Full,
}

/// Whether a new certificate of `len` bytes is quarantined beside `slots`, the endpoint's
/// quarantine, at pin change `epoch`; and what it evicts. Evicted first: certificates from
/// before the last change of the pins, least recently presented first; then the least
/// recently presented of this epoch's, except its first [`PROTECTED`].
pub(crate) fn admit(slots: &[Slot], epoch: i64, len: usize) -> Admission {
    if len > MAX_BYTES {
        return Admission::Full;
    }
    let mut current: Vec<&Slot> = slots.iter().filter(|s| s.epoch == epoch).collect();
    current.sort_by_key(|s| s.id);
    let protected: Vec<i64> = current.iter().take(PROTECTED).map(|s| s.id).collect();
    let mut candidates: Vec<&Slot> = slots
        .iter()
        .filter(|s| !protected.contains(&s.id))
        .collect();
    // Stale epochs first, then by when last presented, then by age.
    candidates.sort_by_key(|s| (s.epoch == epoch, s.last_seen, s.id));
    let mut candidates = candidates.into_iter();
    let mut count = slots.len();
    let mut bytes: usize = slots.iter().map(|s| s.len).sum();
    let mut evict = Vec::new();
    while count + 1 > MAX_ENTRIES || bytes + len > MAX_BYTES {
        let Some(victim) = candidates.next() else {
            return Admission::Full;
        };
        evict.push(victim.id);
        count -= 1;
        bytes -= victim.len;
    }
    Admission::Keep { evict }
}

/// Whether a refusal of a certificate not quarantined before is written to the audit log,
/// when `audited` refusals were written since the pins last changed.
pub(crate) fn audits_refusal(audited: i64) -> bool {
    audited < MAX_AUDITED_REFUSALS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: i64, epoch: i64, len: usize, last_seen: i64) -> Slot {
        Slot {
            id,
            epoch,
            len,
            last_seen,
        }
    }

    #[test]
    fn an_empty_quarantine_keeps_a_certificate_and_evicts_nothing() {
        assert_eq!(admit(&[], 1, 1000), Admission::Keep { evict: vec![] });
    }

    #[test]
    fn a_full_quarantine_evicts_certificates_from_before_the_last_change_first() {
        let mut slots: Vec<Slot> = (1..=4).map(|i| slot(i, 0, 100, 50 + i)).collect();
        slots.extend((5..=8).map(|i| slot(i, 1, 100, i)));
        assert_eq!(admit(&slots, 1, 100), Admission::Keep { evict: vec![1] });
    }

    #[test]
    fn the_first_certificates_since_the_change_are_never_evicted() {
        let slots: Vec<Slot> = (1..=8).map(|i| slot(i, 3, 100, 100 - i)).collect();
        // Slots 1-4 came first; of the others, 8 was presented least recently.
        assert_eq!(admit(&slots, 3, 100), Admission::Keep { evict: vec![8] });
        // A flood: each newcomer takes the place of the previous unprotected one.
        let mut slots = slots;
        for n in 9..100 {
            let Admission::Keep { evict } = admit(&slots, 3, 100) else {
                panic!("full")
            };
            slots.retain(|s| !evict.contains(&s.id));
            slots.push(slot(n, 3, 100, 1000 + n));
            assert_eq!(slots.len(), MAX_ENTRIES);
            for first in 1..=4 {
                assert!(slots.iter().any(|s| s.id == first), "slot {first} evicted");
            }
        }
    }

    #[test]
    fn the_bytes_are_bounded_as_well_as_the_entries() {
        let big = 60 * 1024;
        let mut slots = Vec::new();
        for n in 1..50 {
            match admit(&slots, 1, big) {
                Admission::Keep { evict } => {
                    slots.retain(|s: &Slot| !evict.contains(&s.id));
                    slots.push(slot(n, 1, big, n));
                }
                Admission::Full => panic!("protected slots leave room"),
            }
            assert!(slots.iter().map(|s| s.len).sum::<usize>() <= MAX_BYTES);
        }
        assert!(slots.len() < MAX_ENTRIES);
        assert!((1..=4).all(|id| slots.iter().any(|s| s.id == id)));
    }

    #[test]
    fn a_quarantine_full_of_protected_certificates_keeps_no_more() {
        let len = MAX_BYTES / PROTECTED;
        let slots: Vec<Slot> = (1..=4).map(|i| slot(i, 2, len, i)).collect();
        assert_eq!(admit(&slots, 2, 1000), Admission::Full);
        assert_eq!(admit(&[], 2, MAX_BYTES + 1), Admission::Full);
    }

    #[test]
    fn refusals_are_audited_up_to_a_budget_per_change() {
        assert!(audits_refusal(0));
        assert!(audits_refusal(MAX_AUDITED_REFUSALS - 1));
        assert!(!audits_refusal(MAX_AUDITED_REFUSALS));
    }
}
