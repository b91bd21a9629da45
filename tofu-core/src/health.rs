//! Refusals nobody can miss: which endpoints are failing now, which pins expire soon, and the
//! store's state as a monitoring check sees it ([`Status`], `tofu-certs status`).
//!
//! The store counts, per endpoint, the refusals since its pins last changed ([`Refusals`]).
//! An endpoint is *failing now* while it has such refusals and no handshake presented one of
//! its active pins after the latest of them; an operator's fix (`deletecert`, `accept`,
//! `addcert`) changes the pins and so clears the count. "Last seen" reaches the store at most
//! once a minute per process, so an endpoint that recovers on its own (the peer presents its
//! pinned certificate again) stops counting as failing within about a minute of that.
//!
//! [`Status::from_store`] reads the refusals, then every pin once, streamed: memory grows with
//! the number of distinct public keys (a hash and 8 bytes each), not with the certificates.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::ops::ControlFlow;

use crate::pin::{Pin, PinState, ReportOnly};
use crate::{Endpoint, Fingerprint, Result, Store, Timestamp};

/// An endpoint that refused certificates since its pins last changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusals {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// How many handshakes it refused since its pins last changed.
    pub count: u64,
    /// The first of them.
    pub since: Timestamp,
    /// The latest of them.
    pub last: Timestamp,
    /// What the latest of them presented.
    pub last_presented: Option<Fingerprint>,
}

/// How bad the store's state is, in the monitoring-plugin convention (Nagios, Icinga, Zabbix
/// agents): the exit status of `tofu-certs status` is [`Severity::exit_code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Ok,
    /// Something to look at soon: a pin expiring, an endpoint in report-only mode, a public
    /// key pinned for endpoints on different hosts.
    Warning,
    /// An endpoint is refusing connections now.
    Critical,
    /// The store could not be read.
    Unknown,
}

impl Severity {
    /// 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN).
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
            Severity::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`, as a plugin's first line starts.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Unknown => "UNKNOWN",
        }
    }
}

/// An endpoint refusing connections now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Failing {
    /// Its refusals since its pins last changed.
    #[serde(flatten)]
    pub refusals: Refusals,
    /// Its active pins' fingerprints (none: it has no pin, and the policy refuses first use).
    pub pinned: Vec<Fingerprint>,
    /// The endpoint is in report-only mode now: what it would refuse is let through, so it
    /// is a warning, not a critical failure (its refusals before the mode was set count too).
    pub report_only: bool,
}

/// An active pin whose certificate expires before the horizon asked for (or has expired).
/// Trust-on-first-use still accepts it; the peer will present a new certificate sooner or
/// later, and that is the moment its endpoint will be refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Expiring {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The pinned certificate.
    pub fingerprint: Fingerprint,
    /// Its subject.
    pub subject: String,
    /// When it expires.
    pub not_after: Timestamp,
    /// Whether that is already past.
    pub expired: bool,
}

/// One public key pinned for endpoints on more than one host: the same key on unrelated
/// machines is a cloned image or a vendor's default key, and whoever holds it can be any of
/// them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SharedKey {
    /// The SHA-256 of the SubjectPublicKeyInfo.
    pub spki_fingerprint: Fingerprint,
    /// The endpoints that pin it, in endpoint order.
    pub endpoints: Vec<Endpoint>,
}

/// The store's state as a monitoring check sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// When it was read.
    pub at: Timestamp,
    /// Pins expiring before this time are reported.
    pub horizon: Timestamp,
    /// Pins in the store, active and staged.
    pub pins: u64,
    /// Endpoints refusing connections now, or in report-only mode letting through what they
    /// would refuse ([`Failing::report_only`]).
    pub failing: Vec<Failing>,
    /// Endpoints that refused since their pins last changed but presented a pin since.
    pub recovered: Vec<Refusals>,
    /// Active pins expiring before the horizon.
    pub expiring: Vec<Expiring>,
    /// Public keys pinned for endpoints on more than one host.
    pub shared_keys: Vec<SharedKey>,
    /// Endpoints in report-only mode: what they would refuse goes through.
    pub report_only: Vec<ReportOnly>,
}

impl Status {
    /// Reads the store's state at `now`, reporting pins that expire before `horizon`.
    ///
    /// ```
    /// use tofu_core::{health::{Severity, Status}, timestamp::Timestamp, Store};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("tofu"))?;
    /// let now = Timestamp::now();
    /// let status = Status::from_store(&store, now, Timestamp::from_unix(now.unix() + 30 * 86_400))?;
    /// assert_eq!(status.severity(), Severity::Ok);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the store cannot be read.
    pub fn from_store(store: &Store, now: Timestamp, horizon: Timestamp) -> Result<Status> {
        let mut refusals = BTreeMap::new();
        store.for_each_refusals(|r| {
            refusals.insert(r.endpoint.clone(), r);
            ControlFlow::Continue(())
        })?;
        let mut builder = Builder::new(now, horizon, refusals);
        store.for_each_pin(|pin| {
            builder.pin(&pin);
            ControlFlow::Continue(())
        })?;
        let shared = builder.shared_spkis();
        let mut shared_keys: BTreeMap<Fingerprint, Vec<Endpoint>> = BTreeMap::new();
        if !shared.is_empty() {
            // Only when some key is shared: the second pass names its endpoints.
            store.for_each_pin(|pin| {
                let spki = pin.details.spki_fingerprint;
                if shared.contains_key(&spki) {
                    let list = shared_keys.entry(spki).or_default();
                    if list.last() != Some(&pin.endpoint) {
                        list.push(pin.endpoint.clone());
                    }
                }
                ControlFlow::Continue(())
            })?;
        }
        let mut report_only = Vec::new();
        store.for_each_report_only(|m| {
            report_only.push(m);
            ControlFlow::Continue(())
        })?;
        let mut status = builder.finish(shared_keys);
        for f in &mut status.failing {
            f.report_only = report_only
                .iter()
                .any(|m| m.endpoint == f.refusals.endpoint);
        }
        status.report_only = report_only;
        Ok(status)
    }

    /// The worst of what it found: critical while an endpoint that enforces its pins is
    /// failing, a warning for expiring pins, shared keys and endpoints in report-only mode
    /// (failing or not), else OK.
    pub fn severity(&self) -> Severity {
        if self.failing.iter().any(|f| !f.report_only) {
            Severity::Critical
        } else if !self.expiring.is_empty()
            || !self.shared_keys.is_empty()
            || !self.report_only.is_empty()
        {
            Severity::Warning
        } else {
            Severity::Ok
        }
    }
}

/// One pass over the pins, ordered by endpoint.
struct Builder {
    now: Timestamp,
    horizon: Timestamp,
    pins: u64,
    refusals: BTreeMap<Endpoint, Refusals>,
    /// Per refusing endpoint: its active pins and the latest time one was presented.
    seen: HashMap<Endpoint, (Vec<Fingerprint>, Option<Timestamp>)>,
    expiring: Vec<Expiring>,
    /// Per public key: a hash of the first host that pins it, or [`SHARED`].
    hosts: HashMap<Fingerprint, u64>,
    hasher: std::collections::hash_map::RandomState,
}

/// In [`Builder::hosts`]: the key is pinned on more than one host.
const SHARED: u64 = u64::MAX;

impl Builder {
    fn new(now: Timestamp, horizon: Timestamp, refusals: BTreeMap<Endpoint, Refusals>) -> Self {
        Builder {
            now,
            horizon,
            pins: 0,
            refusals,
            seen: HashMap::new(),
            expiring: Vec::new(),
            hosts: HashMap::new(),
            hasher: Default::default(),
        }
    }

    fn pin(&mut self, pin: &Pin) {
        self.pins += 1;
        if pin.state != PinState::Active {
            return;
        }
        if self.refusals.contains_key(&pin.endpoint) {
            let (pinned, latest) = self.seen.entry(pin.endpoint.clone()).or_default();
            pinned.push(pin.fingerprint());
            *latest = (*latest).max(pin.last_seen);
        }
        if pin.details.not_after < self.horizon {
            self.expiring.push(Expiring {
                endpoint: pin.endpoint.clone(),
                fingerprint: pin.fingerprint(),
                subject: pin.details.subject.clone(),
                not_after: pin.details.not_after,
                expired: pin.details.not_after < self.now,
            });
        }
        // The low bit cleared, so that a host's hash is never the sentinel.
        let host = self.hasher.hash_one(pin.endpoint.host()) & !1;
        self.hosts
            .entry(pin.details.spki_fingerprint)
            .and_modify(|first| {
                if *first != host {
                    *first = SHARED;
                }
            })
            .or_insert(host);
    }

    fn shared_spkis(&mut self) -> HashMap<Fingerprint, ()> {
        self.hosts
            .iter()
            .filter(|(_, h)| **h == SHARED)
            .map(|(k, _)| (*k, ()))
            .collect()
    }

    fn finish(self, shared_keys: BTreeMap<Fingerprint, Vec<Endpoint>>) -> Status {
        let mut failing = Vec::new();
        let mut recovered = Vec::new();
        let mut seen = self.seen;
        for (endpoint, refusals) in self.refusals {
            let (pinned, latest) = seen.remove(&endpoint).unwrap_or_default();
            if latest.is_some_and(|seen| seen > refusals.last) {
                recovered.push(refusals);
            } else {
                failing.push(Failing {
                    refusals,
                    pinned,
                    report_only: false,
                });
            }
        }
        Status {
            at: self.now,
            horizon: self.horizon,
            pins: self.pins,
            failing,
            recovered,
            expiring: self.expiring,
            shared_keys: shared_keys
                .into_iter()
                .map(|(spki_fingerprint, endpoints)| SharedKey {
                    spki_fingerprint,
                    endpoints,
                })
                .collect(),
            report_only: Vec::new(),
        }
    }
}
