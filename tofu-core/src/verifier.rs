//! The rustls `ServerCertVerifier` that enforces trust-on-first-use against a [`Store`].
//!
//! rustls calls `verify_server_cert` before it checks that the server holds the certificate's
//! key. So `verify_server_cert` only decides; anything that writes to the store (a first-use
//! pin, a promotion, a replacement) is carried out in `verify_tls12_signature` /
//! `verify_tls13_signature`, after the signature over the handshake verified with that very
//! certificate. A server that merely copied someone's certificate can never write a pin.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
    WebPkiServerVerifier,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, CommonState, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme,
};

use crate::policy::{decide_with_awaited, Decision, Policy};
use crate::rejection::{Mismatch, NotPinned, Refusal, TofuError};
use crate::store::FirstUse;
use crate::{
    cert::CertificateDetails,
    events,
    pin::{AwaitedPin, Pin, PinSource, PinState},
    timestamp::Timestamp,
    Endpoint, Fingerprint, Store,
};

/// How often, at most, a process writes "last seen" for one pin.
const SEEN_FLUSH_SECS: i64 = 60;

/// A rustls server certificate verifier bound to one endpoint (`host:port`) of a pin store.
///
/// rustls tells a verifier the server name but not the port, so the port is bound here, when
/// the verifier is built. Build one per endpoint ([`TofuClientConfigs`] does that and caches
/// them), and use it from any number of threads and connections at once.
///
/// ```no_run
/// use std::sync::Arc;
/// use tofu_core::{Store, TofuVerifier};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let verifier = TofuVerifier::builder(store, "10.1.1.1:8082".parse()?).build()?;
/// let config = verifier.client_config();
/// let server_name = verifier.endpoint().server_name();
/// let conn = rustls::ClientConnection::new(config, server_name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TofuVerifier {
    store: Arc<Store>,
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    policy: Policy,
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    store_arg: String,
    view: ArcSwapOption<View>,
    seen: Mutex<HashMap<Fingerprint, Arc<SeenCounter>>>,
    on_refusal: Option<OnRefusal>,
    /// Refuse on an endpoint in report-only mode too.
    enforce: bool,
}

/// What [`TofuVerifierBuilder::on_refusal`] calls.
pub type OnRefusal = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// What the verifier last read of its endpoint, valid while the store's generation stays.
struct View {
    generation: u64,
    pins: Vec<Pin>,
    awaited: Vec<AwaitedPin>,
    /// The endpoint is in report-only mode: a refusal is recorded, and the handshake goes on.
    report_only: bool,
    counters: Vec<Arc<SeenCounter>>,
    warned_expired: AtomicBool,
}

impl View {
    fn decide(&self, cert: &CertificateDer<'_>, policy: &Policy, now: Timestamp) -> Decision {
        decide_with_awaited(&self.pins, &self.awaited, cert, policy, now)
    }

    fn is_active(&self, fingerprint: &Fingerprint) -> bool {
        self.pins
            .iter()
            .any(|p| p.state == PinState::Active && p.fingerprint() == *fingerprint)
    }
}

/// Handshakes that presented a pin, not yet written to the store.
struct SeenCounter {
    pending: AtomicU64,
    last_at: AtomicI64,
    last_flush: AtomicI64,
}

/// Why a [`TofuVerifier`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The roots given for chain validation are unusable.
    #[error("the roots for chain validation cannot be used: {0}")]
    Roots(#[from] rustls::client::VerifierBuilderError),
    /// The crypto provider supports no TLS version rustls accepts.
    #[error("the crypto provider cannot be used for TLS: {0}")]
    Provider(rustls::Error),
    /// The policy pins on first use, but the store is read-only for this process.
    #[error(
        "the pin store {} is read-only for this process, but the trust-on-first-use policy \
         needs to write pins; open a writable store or use Policy::strict()",
        .0.display()
    )]
    ReadOnlyStore(std::path::PathBuf),
    /// The server name override is not a valid name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// Builds a [`TofuVerifier`]; see [`TofuVerifier::builder`].
#[must_use]
pub struct TofuVerifierBuilder {
    store: Arc<Store>,
    endpoint: Endpoint,
    provider: Arc<CryptoProvider>,
    policy: Policy,
    server_name: Option<String>,
    roots: Option<Arc<RootCertStore>>,
    on_refusal: Option<OnRefusal>,
    enforce: bool,
}

impl TofuVerifier {
    /// A builder for a verifier of `endpoint`, on [`default_provider`] (the process's
    /// default provider if one is installed, else the one of the `ring` or `aws-lc-rs`
    /// feature).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tofu_core::{Policy, Store, TofuVerifier};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let verifier = TofuVerifier::builder(store, "10.1.1.1:8082".parse()?)
    ///     .policy(Policy::strict())
    ///     .build()?;
    /// assert_eq!(verifier.endpoint().to_string(), "10.1.1.1:8082");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    pub fn builder(store: Arc<Store>, endpoint: Endpoint) -> TofuVerifierBuilder {
        Self::builder_with_provider(store, endpoint, default_provider())
    }

    /// A builder for a verifier of `endpoint` that verifies signatures with `provider`,
    /// whatever the features or the process default.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tofu_core::{Store, TofuVerifier};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let verifier =
    ///     TofuVerifier::builder_with_provider(store, "db.example:5432".parse()?, provider)
    ///         .build()?;
    /// let config = verifier.client_config();
    /// let conn = rustls::ClientConnection::new(config, verifier.server_name().clone())?;
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder_with_provider(
        store: Arc<Store>,
        endpoint: Endpoint,
        provider: Arc<CryptoProvider>,
    ) -> TofuVerifierBuilder {
        TofuVerifierBuilder {
            store,
            endpoint,
            provider,
            policy: Policy::default(),
            server_name: None,
            roots: None,
            on_refusal: None,
            enforce: false,
        }
    }

    /// The endpoint this verifier is bound to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server name rustls must be given with this verifier (the SNI it sends).
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A rustls client configuration that verifies with this verifier and never resumes a
    /// session across a change of the endpoint's pins.
    pub fn client_config(self: &Arc<Self>) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            // `build()` made this same call and failed if the provider could not do it.
            .expect("the provider was checked when the verifier was built")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        config.resumption = self.resumption();
        Arc::new(config)
    }

    /// Session resumption bound to the endpoint's pins: every stored session is filed under
    /// the certificate it was verified with, and is resumed only while that certificate is an
    /// active pin of the endpoint (read afresh, so a change made by another process counts).
    /// A session whose pin left the active set is dropped, so no session outlives the pin it
    /// was verified against. Set this as `ClientConfig::resumption` when you build your own
    /// configuration.
    pub fn resumption(self: &Arc<Self>) -> Resumption {
        Resumption::store(Arc::new(PinBoundSessions {
            verifier: self.clone(),
            inner: Mutex::new(Sessions::default()),
        }))
    }

    /// Checks an established connection against the endpoint's pins as they are now: `Ok`
    /// while the certificate the peer presented (for a resumed session, the one the session
    /// was verified with) is an active pin of the endpoint. For a connection that lives long,
    /// or was resumed, and must not outlast a `deletecert` or `accept`. Writes nothing.
    ///
    /// # Errors
    /// [`TofuError::Mismatch`] or [`TofuError::NotPinned`] when the certificate is no longer
    /// pinned (or the connection has no peer certificate yet), [`TofuError::Store`] when the
    /// store cannot be read.
    pub fn check_connection(&self, conn: &CommonState) -> Result<(), TofuError> {
        let presented = conn.peer_certificates().and_then(|c| c.first());
        let now = Timestamp::now();
        let (active, pins, report_only) = self.with_view(|v| {
            // The exact certificate of an active pin, or the key of an active key pin.
            let active = presented.is_some_and(|leaf| {
                matches!(
                    v.decide(leaf, &self.policy, now),
                    Decision::Accept { .. } | Decision::Renew { .. }
                )
            });
            (active, (v.pins.clone(), v.awaited.clone()), v.report_only)
        })?;
        match presented {
            _ if active => Ok(()),
            Some(leaf) if report_only => {
                self.refuse(pins, leaf, Proof::Earlier, true);
                Ok(())
            }
            Some(leaf) => Err(self.refuse(pins, leaf, Proof::Earlier, false)),
            None => Err(TofuError::UnusableCertificate {
                endpoint: self.endpoint.clone(),
                reason: crate::cert::CertificateError::Empty,
            }),
        }
    }

    /// Whether `fingerprint` is an active pin of the endpoint now (false when the store cannot
    /// be read: then nothing is resumed).
    fn is_active_now(&self, fingerprint: &Fingerprint) -> bool {
        self.with_view(|v| v.is_active(fingerprint))
            .unwrap_or(false)
    }

    /// Reads the endpoint's pins, from the cached view unless the store changed.
    fn with_view<R>(&self, f: impl FnOnce(&View) -> R) -> Result<R, TofuError> {
        let generation = self.store.generation().map_err(|e| self.store_error(e))?;
        {
            let guard = self.view.load();
            if let Some(view) = guard.as_ref() {
                if view.generation == generation {
                    return Ok(f(view));
                }
            }
        }
        let record = self
            .store
            .endpoint(&self.endpoint)
            .map_err(|e| self.store_error(e))?;
        events::store_reloaded(&self.endpoint, generation);
        let counters = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            record
                .pins
                .iter()
                .map(|p| {
                    seen.entry(p.fingerprint())
                        .or_insert_with(SeenCounter::new)
                        .clone()
                })
                .collect()
        };
        let view = Arc::new(View {
            generation,
            report_only: record.report_only.is_some() && !self.enforce,
            pins: record.pins,
            awaited: record.awaited,
            counters,
            warned_expired: AtomicBool::new(false),
        });
        let out = f(&view);
        self.view.store(Some(view));
        Ok(out)
    }

    fn store_error(&self, error: crate::Error) -> TofuError {
        events::store_failed(&self.endpoint, &error);
        TofuError::Store {
            endpoint: self.endpoint.clone(),
            error: Arc::new(error),
        }
    }

    /// Counts a handshake that presented the pin `index` of `view` (after the server proved
    /// the key). The count reaches the store at most once a minute per pin, from a background
    /// thread, so a matching handshake never waits for a disk write.
    fn note_seen(&self, view: &View, index: usize, expired: bool, now: Timestamp) {
        let pin = &view.pins[index];
        if expired && !view.warned_expired.swap(true, Ordering::Relaxed) {
            log::warn!(
                "the certificate pinned for {} ({}) expired at {}; it is still accepted because \
                 trust-on-first-use trusts the identity, not the dates",
                self.endpoint,
                pin.details.fingerprint,
                pin.details.not_after
            );
        }
        let counter = &view.counters[index];
        counter.pending.fetch_add(1, Ordering::Relaxed);
        counter.last_at.fetch_max(now.unix(), Ordering::Relaxed);
        let last = counter.last_flush.load(Ordering::Relaxed);
        if now.unix() - last >= SEEN_FLUSH_SECS
            && counter
                .last_flush
                .compare_exchange(last, now.unix(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let store = self.store.clone();
            let endpoint = self.endpoint.clone();
            let fingerprint = pin.fingerprint();
            let counter = counter.clone();
            std::thread::spawn(move || flush_seen(&store, &endpoint, &fingerprint, &counter));
        }
    }

    /// The refusal of `presented` by an endpoint whose pins are `pinned`. Only when the
    /// server has just proved it holds the certificate's key is the refusal recorded
    /// (quarantine and audit log, both bounded by the store), so a server replaying someone
    /// else's certificate can write nothing.
    fn refuse(
        &self,
        pins: (Vec<Pin>, Vec<AwaitedPin>),
        presented: &CertificateDer<'_>,
        proof: Proof,
        let_through: bool,
    ) -> TofuError {
        let error = self.record_refusal(pins, presented, proof, let_through);
        if let (Some(f), Some(mut refusal)) = (&self.on_refusal, error.refusal()) {
            refusal.let_through = let_through;
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&refusal)));
            if called.is_err() {
                log::error!(
                    "the refusal callback for {} panicked; the refusal stands",
                    self.endpoint
                );
            }
        }
        error
    }

    fn record_refusal(
        &self,
        (pinned, awaited): (Vec<Pin>, Vec<AwaitedPin>),
        presented: &CertificateDer<'_>,
        proof: Proof,
        let_through: bool,
    ) -> TofuError {
        let details = match CertificateDetails::from_der(presented) {
            Ok(d) => d,
            Err(reason) => {
                return TofuError::UnusableCertificate {
                    endpoint: self.endpoint.clone(),
                    reason,
                }
            }
        };
        let quarantined = match proof {
            Proof::Now => match self.store.quarantine(&self.endpoint, presented) {
                Ok(kept) => {
                    if kept {
                        events::quarantined(&self.endpoint, &details.fingerprint);
                    }
                    kept
                }
                Err(e) => {
                    log::warn!(
                        "could not quarantine the certificate of {}: {e}",
                        self.endpoint
                    );
                    false
                }
            },
            Proof::Failed | Proof::Earlier => false,
        };
        let key_proved = proof != Proof::Failed;
        if pinned.is_empty() && awaited.is_empty() {
            events::refused_not_pinned(&self.endpoint, &details.fingerprint);
            return TofuError::NotPinned(Box::new(NotPinned {
                endpoint: self.endpoint.clone(),
                presented: details,
                quarantined,
                key_proved,
                store_arg: self.store_arg.clone(),
            }));
        }
        events::refused_mismatch(
            &self.endpoint,
            &details.fingerprint,
            pinned
                .iter()
                .filter(|p| p.state == PinState::Active)
                .map(|p| &p.details.fingerprint),
        );
        if let_through {
            log::warn!(
                "{}: it presented {} ({}), which matches none of its pins; let through, because \
                 the endpoint is in report-only mode (`tofu-certs mode host {} enforce{}` \
                 refuses it)",
                self.endpoint,
                details.fingerprint,
                details.subject,
                self.endpoint.host_port(),
                self.store_arg
            );
        } else {
            log::warn!(
                "refused {}: it presented {} ({}), which matches none of its pins",
                self.endpoint,
                details.fingerprint,
                details.subject
            );
        }
        TofuError::Mismatch(Box::new(Mismatch {
            endpoint: self.endpoint.clone(),
            pinned,
            awaited,
            presented: details,
            quarantined,
            key_proved,
            pins_on_first_use: self.policy.pins_on_first_use(),
            store_arg: self.store_arg.clone(),
        }))
    }

    /// The handshake signature did not verify with `cert`: when the certificate would have
    /// been refused anyway, that refusal (recording nothing) says more than the bad signature.
    fn refuse_unproved(&self, cert: &CertificateDer<'_>) -> Option<TofuError> {
        let now = Timestamp::now();
        let (decision, pins) = self
            .with_view(|v| {
                let d = v.decide(cert, &self.policy, now);
                (d, (v.pins.clone(), v.awaited.clone()))
            })
            .ok()?;
        (!decision.accepts()).then(|| self.refuse(pins, cert, Proof::Failed, false))
    }

    /// After the server proved it holds `cert`'s key: carries out what writes to the store.
    fn commit(&self, cert: &CertificateDer<'_>) -> Result<(), TofuError> {
        let now = Timestamp::now();
        let (mut decision, mut pins, mut report_only) = self.with_view(|v| {
            let d = v.decide(cert, &self.policy, now);
            if let Decision::Accept {
                fingerprint,
                expired,
            } = &d
            {
                if let Some(i) = v.pins.iter().position(|p| p.fingerprint() == *fingerprint) {
                    self.note_seen(v, i, *expired, now);
                }
                events::matched(&self.endpoint, fingerprint);
                return (d, (Vec::new(), Vec::new()), false);
            }
            (d, (v.pins.clone(), v.awaited.clone()), v.report_only)
        })?;
        // Each round either finishes or learns that another thread or process changed the
        // endpoint in between, and decides again on what is stored now.
        for _ in 0..4 {
            let outcome = match &decision {
                Decision::Accept { .. } => return Ok(()),
                Decision::RejectNotPinned | Decision::RejectMismatch if report_only => {
                    self.refuse(pins, cert, Proof::Now, true);
                    return Ok(());
                }
                Decision::RejectNotPinned | Decision::RejectMismatch => {
                    return Err(self.refuse(pins, cert, Proof::Now, false))
                }
                Decision::PinFirstUse => match self.store.pin_first_use_matching(
                    &self.endpoint,
                    cert,
                    self.policy.first_use_match(),
                ) {
                    Ok(FirstUse::Pinned(pin)) => {
                        events::pinned(&self.endpoint, &pin.details.fingerprint);
                        log::info!(
                            "pinned {} on first use: {} ({})",
                            self.endpoint,
                            pin.details.fingerprint,
                            pin.details.subject
                        );
                        self.refresh_view();
                        return Ok(());
                    }
                    Ok(FirstUse::AlreadyPinned(_)) => None,
                    Err(e) => Some(e),
                },
                Decision::Promote { fingerprint } => {
                    match self.store.promote_staged(&self.endpoint, fingerprint) {
                        Ok(Some(p)) => {
                            events::promoted(&self.endpoint, fingerprint);
                            log::info!(
                                "{}: staged pin {} presented and promoted; {} retired",
                                self.endpoint,
                                fingerprint,
                                p.retired.len()
                            );
                            self.refresh_view();
                            return Ok(());
                        }
                        Ok(None) => None,
                        Err(e) => Some(e),
                    }
                }
                Decision::Renew { fingerprint } => {
                    match self.store.renew_pin(&self.endpoint, fingerprint, cert) {
                        Ok(Some(pin)) => {
                            log::info!(
                                "{}: renewed certificate {} ({}) has the pinned key; the key \
                                 pin now holds it in place of {fingerprint}",
                                self.endpoint,
                                pin.details.fingerprint,
                                pin.details.subject
                            );
                            self.refresh_view();
                            return Ok(());
                        }
                        Ok(None) => None,
                        Err(e) => Some(e),
                    }
                }
                // Here only after the signature over the handshake verified with `cert`: a
                // server that copied the awaited certificate cannot fill the pin in.
                Decision::Fill { awaited } => match self.store.fill_awaited(&self.endpoint, cert) {
                    Ok(Some(pin)) => {
                        events::filled(&self.endpoint, &pin.details.fingerprint);
                        log::info!(
                            "{}: the awaited pin {awaited} was presented; it now holds {} ({})",
                            self.endpoint,
                            pin.details.fingerprint,
                            pin.details.subject
                        );
                        self.refresh_view();
                        return Ok(());
                    }
                    Ok(None) => None,
                    Err(e) => Some(e),
                },
                Decision::ReplaceExpired { expired } => match self.replace_expired(expired, cert) {
                    Ok(true) => {
                        self.refresh_view();
                        return Ok(());
                    }
                    Ok(false) => None,
                    Err(e) => Some(e),
                },
            };
            if let Some(e) = outcome {
                return Err(self.store_error(e));
            }
            let record = self
                .store
                .endpoint(&self.endpoint)
                .map_err(|e| self.store_error(e))?;
            decision = decide_with_awaited(&record.pins, &record.awaited, cert, &self.policy, now);
            report_only = record.report_only.is_some() && !self.enforce;
            pins = (record.pins, record.awaited);
        }
        Err(TofuError::Contended {
            endpoint: self.endpoint.clone(),
        })
    }

    fn replace_expired(
        &self,
        expired: &[Fingerprint],
        cert: &CertificateDer<'_>,
    ) -> crate::Result<bool> {
        match self
            .store
            .replace_active(&self.endpoint, expired, cert, PinSource::FirstUse)
        {
            Ok(pin) => {
                events::replaced_expired(&self.endpoint, &pin.details.fingerprint);
                log::warn!(
                    "{}: every pinned certificate had expired; replaced by {} as the policy allows",
                    self.endpoint,
                    pin.details.fingerprint
                );
                Ok(true)
            }
            Err(crate::Error::PinChanged { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reloads the view after this verifier changed the endpoint's pins, so that the session
    /// this handshake is about to store is bound to the pins as they now are.
    fn refresh_view(&self) {
        if let Err(e) = self.with_view(|_| ()) {
            log::warn!("could not reread the pins of {}: {e}", self.endpoint);
        }
    }

    fn flush_all_seen(&self) {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for (fingerprint, counter) in seen.iter() {
            flush_seen(&self.store, &self.endpoint, fingerprint, counter);
        }
    }
}

impl Drop for TofuVerifier {
    fn drop(&mut self) {
        self.flush_all_seen();
    }
}

/// Writes the handshakes counted for one pin, keeping the count for later if the store
/// cannot take it now.
fn flush_seen(
    store: &Store,
    endpoint: &Endpoint,
    fingerprint: &Fingerprint,
    counter: &SeenCounter,
) {
    let count = counter.pending.swap(0, Ordering::AcqRel);
    if count == 0 {
        return;
    }
    let at = Timestamp::from_unix(counter.last_at.load(Ordering::Relaxed));
    if let Err(e) = store.record_seen(endpoint, fingerprint, count, at) {
        counter.pending.fetch_add(count, Ordering::Relaxed);
        log::warn!("could not record when {endpoint} was last seen: {e}");
    }
}

impl SeenCounter {
    fn new() -> Arc<Self> {
        let now = Timestamp::now().unix();
        Arc::new(Self {
            pending: AtomicU64::new(0),
            last_at: AtomicI64::new(now),
            last_flush: AtomicI64::new(now),
        })
    }
}

impl std::fmt::Debug for TofuVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TofuVerifier")
            .field("endpoint", &self.endpoint)
            .field("store", self.store.location())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for TofuVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if *server_name != self.server_name {
            return Err(TofuError::WrongServerName {
                endpoint: self.endpoint.clone(),
                expected: self.server_name.to_str().into_owned(),
                requested: server_name.to_str().into_owned(),
            }
            .into_rustls());
        }
        if let Some(chain) = &self.chain {
            chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        if self.policy.requires_valid_name() {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
        }
        let now = Timestamp::from_unix(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        // Only decide here. What writes (a pin, a promotion, a quarantined certificate, an
        // audit entry, the count of handshakes) waits for the signature check (`commit`),
        // and so does a refusal: it is recorded only once the server proved it holds the
        // key, so a server that copied someone's certificate cannot plant it. Nothing is
        // sent to the server before that check, which fails the handshake.
        let refused = self
            .with_view(|view| !view.decide(end_entity, &self.policy, now).accepts())
            .map_err(TofuError::into_rustls)?;
        if refused {
            if let Err(reason) = CertificateDetails::from_der(end_entity) {
                return Err(TofuError::UnusableCertificate {
                    endpoint: self.endpoint.clone(),
                    reason,
                }
                .into_rustls());
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ) {
            Ok(valid) => {
                self.commit(cert).map_err(TofuError::into_rustls)?;
                Ok(valid)
            }
            Err(e) => Err(self.refuse_unproved(cert).map_or(e, TofuError::into_rustls)),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ) {
            Ok(valid) => {
                self.commit(cert).map_err(TofuError::into_rustls)?;
                Ok(valid)
            }
            Err(e) => Err(self.refuse_unproved(cert).map_or(e, TofuError::into_rustls)),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl TofuVerifierBuilder {
    /// The policy (default: [`Policy::trust_on_first_use`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Connects with this server name (SNI) instead of the endpoint's host, for a server
    /// reached by address that expects a name. The pins stay those of the endpoint.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Also requires the certificate chain to validate against `roots` (rustls's
    /// `WebPkiServerVerifier`, name check included) before the pin is considered.
    pub fn require_chain(mut self, roots: Arc<RootCertStore>) -> Self {
        self.roots = Some(roots);
        self
    }

    /// Calls `f` with every refusal, at once, in the thread of the handshake (or of
    /// [`TofuVerifier::check_connection`]) that refused: so that a service reacts (pages
    /// someone, marks a peer down) instead of finding a silent failure months later. Called
    /// after the refusal was recorded in the store, when it was. Keep `f` quick, or send the
    /// [`Refusal`] to a channel; a panic in `f` is caught and logged, and the refusal stands.
    ///
    /// ```
    /// use std::sync::{mpsc, Arc, Mutex};
    /// use tofu_core::{Store, TofuVerifier};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let (tx, refusals) = mpsc::channel();
    /// let tx = Mutex::new(tx);
    /// let verifier = TofuVerifier::builder(store, "10.1.1.1:8082".parse()?)
    ///     .on_refusal(move |refusal| {
    ///         let _ = tx.lock().unwrap().send(refusal.clone());
    ///     })
    ///     .build()?;
    /// # drop((verifier, refusals));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_refusal(mut self, f: impl Fn(&Refusal) + Send + Sync + 'static) -> Self {
        self.on_refusal = Some(Arc::new(f));
        self
    }

    /// Refuse a certificate that matches no pin even when the endpoint is in report-only
    /// mode ([`crate::pin::ReportOnly`]): for a diagnostic such as `tofu-certs probe`, which
    /// must say what enforcing decides. The refusal is recorded as in report-only mode.
    pub fn enforce_report_only(mut self) -> Self {
        self.enforce = true;
        self
    }

    /// [`TofuVerifierBuilder::on_refusal`] with a callback already shared.
    pub fn on_refusal_shared(mut self, f: OnRefusal) -> Self {
        self.on_refusal = Some(f);
        self
    }

    /// Builds the verifier.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tofu_core::verifier::BuildError;
    /// use tofu_core::{Store, TofuVerifier};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let built = TofuVerifier::builder(store, "10.1.1.1:443".parse()?)
    ///     .server_name("not a name!")
    ///     .build();
    /// assert!(matches!(built, Err(BuildError::ServerName(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// When the roots or the crypto provider are unusable, the server name is invalid, or the
    /// policy pins on first use but the store is read-only.
    pub fn build(self) -> Result<Arc<TofuVerifier>, BuildError> {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(BuildError::Provider)?;
        if self.policy.pins_on_first_use() && self.store.is_read_only() {
            return Err(BuildError::ReadOnlyStore(
                self.store.location().to_string().into(),
            ));
        }
        let server_name = match self.server_name {
            None => self.endpoint.server_name(),
            Some(name) => {
                ServerName::try_from(name.clone()).map_err(|_| BuildError::ServerName(name))?
            }
        };
        let chain = match self.roots {
            None => None,
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
                    .build()?,
            ),
        };
        // Always named: the operator reading a service's log is often another user, whose
        // default store is not the service's.
        let store_arg = crate::store_arg(std::path::Path::new(&self.store.location().to_string()));
        Ok(Arc::new(TofuVerifier {
            store: self.store,
            endpoint: self.endpoint,
            server_name,
            policy: self.policy,
            provider: self.provider,
            chain,
            store_arg,
            view: ArcSwapOption::empty(),
            seen: Mutex::new(HashMap::new()),
            on_refusal: self.on_refusal,
            enforce: self.enforce,
        }))
    }
}

/// The crypto provider [`TofuVerifier::builder`] and [`TofuClientConfigs::new`] use: the
/// process default if the application installed one
/// (`rustls::crypto::CryptoProvider::install_default`), else `ring` when its feature is
/// compiled in, else `aws-lc-rs`. With both features and nothing installed the choice is
/// `ring`, always; it never panics and never installs anything (which provider a process
/// uses is the application's choice). To use another one for this library only, pass it
/// to [`TofuVerifier::builder_with_provider`] or [`TofuClientConfigs::with_provider`].
///
/// ```
/// let provider = tofu_core::verifier::default_provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
#[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
pub fn default_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    #[cfg(feature = "ring")]
    let provider = rustls::crypto::ring::default_provider();
    #[cfg(all(not(feature = "ring"), feature = "aws-lc-rs"))]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Arc::new(provider)
}

/// One rustls client configuration per endpoint, built on demand and cached: the way to use
/// trust-on-first-use for many endpoints without ever sharing a verifier between ports.
///
/// ```no_run
/// use std::sync::Arc;
/// use tofu_core::{Policy, Store, TofuClientConfigs};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
/// let endpoint = "10.1.1.1:8082".parse()?;
/// let config = configs.client_config(&endpoint)?;
/// let conn = rustls::ClientConnection::new(config, endpoint.server_name())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TofuClientConfigs {
    store: Arc<Store>,
    provider: Arc<CryptoProvider>,
    policy: Policy,
    on_refusal: Option<OnRefusal>,
    configs: std::sync::RwLock<HashMap<Endpoint, Arc<ClientConfig>>>,
}

impl TofuClientConfigs {
    /// Configurations on [`default_provider`] (the process default if one is installed,
    /// else the one of the `ring` or `aws-lc-rs` feature).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tofu_core::{Policy, Store, TofuClientConfigs};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
    /// let a = configs.client_config(&"10.1.1.1:443".parse()?)?;
    /// let b = configs.client_config(&"10.1.1.1:8443".parse()?)?;
    /// // One configuration (and one verifier) per endpoint, cached.
    /// assert!(!Arc::ptr_eq(&a, &b));
    /// assert!(Arc::ptr_eq(&a, &configs.client_config(&"10.1.1.1:443".parse()?)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    pub fn new(store: Arc<Store>, policy: Policy) -> Self {
        Self::with_provider(store, default_provider(), policy)
    }

    /// Configurations verifying signatures with `provider`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tofu_core::{Policy, Store, TofuClientConfigs};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = Arc::new(Store::open(dir.path().join("tofu"))?);
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let configs = TofuClientConfigs::with_provider(store, provider, Policy::strict());
    /// let config = configs.client_config(&"10.1.1.1:443".parse()?)?;
    /// assert!(config.crypto_provider().cipher_suites.len() > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_provider(store: Arc<Store>, provider: Arc<CryptoProvider>, policy: Policy) -> Self {
        Self {
            store,
            provider,
            policy,
            on_refusal: None,
            configs: std::sync::RwLock::new(HashMap::new()),
        }
    }

    /// Calls `f` with every refusal of every endpoint's verifier (see
    /// [`TofuVerifierBuilder::on_refusal`]); for the configurations built after this call.
    #[must_use]
    pub fn on_refusal(mut self, f: impl Fn(&Refusal) + Send + Sync + 'static) -> Self {
        self.on_refusal = Some(Arc::new(f));
        self
    }

    /// The configuration for `endpoint`, connecting with its host as the server name.
    ///
    /// # Errors
    /// Those of [`TofuVerifierBuilder::build`].
    pub fn client_config(&self, endpoint: &Endpoint) -> Result<Arc<ClientConfig>, BuildError> {
        if let Some(config) = self
            .configs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
        {
            return Ok(config.clone());
        }
        let verifier = TofuVerifier::builder_with_provider(
            self.store.clone(),
            endpoint.clone(),
            self.provider.clone(),
        )
        .policy(self.policy.clone());
        let verifier = match &self.on_refusal {
            Some(f) => verifier.on_refusal_shared(f.clone()),
            None => verifier,
        }
        .build()?;
        let mut configs = self.configs.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have built one meanwhile; keep the first, so every caller for
        // an endpoint shares one verifier and one session cache.
        Ok(configs
            .entry(endpoint.clone())
            .or_insert_with(|| verifier.client_config())
            .clone())
    }
}

/// Whether the server proved it holds the key of the certificate being refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proof {
    /// The handshake signature just verified with it: the refusal is recorded.
    Now,
    /// The signature did not verify: nothing is recorded.
    Failed,
    /// It did, in an earlier handshake (a session checked later): nothing new to record.
    Earlier,
}

/// TLS 1.3 tickets kept per endpoint (rustls's own cache keeps as many per server).
const MAX_TLS13_TICKETS: usize = 8;

/// The session store of one verifier's configurations: each session is filed under the
/// fingerprint of the certificate it was verified with, and handed back for resumption only
/// while that certificate is an active pin of the endpoint, as read from the store at that
/// moment.
///
/// Binding to the pins at the time a session is *stored* is not enough: a TLS 1.3 ticket
/// reaches the client after the handshake, when a `deletecert` or `accept` may have changed
/// the pins already, so it must be bound to the certificate of the handshake that produced
/// it, which the session itself records.
struct PinBoundSessions {
    verifier: Arc<TofuVerifier>,
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<(Fingerprint, Tls12ClientSessionValue)>,
    /// Oldest first.
    tls13: VecDeque<(Fingerprint, Tls13ClientSessionValue)>,
}

impl std::fmt::Debug for PinBoundSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinBoundSessions")
            .field("endpoint", &self.verifier.endpoint)
            .finish_non_exhaustive()
    }
}

impl PinBoundSessions {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether sessions for `server_name` belong here: a verifier serves one server name,
    /// and refuses handshakes for any other.
    fn ours(&self, server_name: &ServerName<'_>) -> bool {
        *server_name == self.verifier.server_name
    }

    /// The pin a session about to be stored was verified against, when it is still active.
    fn bind(&self, server_name: &ServerName<'_>, session: &dyn fmt::Debug) -> Option<Fingerprint> {
        if !self.ours(server_name) {
            return None;
        }
        let Some(leaf) = session_leaf(session) else {
            log::debug!(
                "{}: a session whose certificate cannot be read is not kept",
                self.verifier.endpoint
            );
            return None;
        };
        self.verifier.is_active_now(&leaf).then_some(leaf)
    }
}

impl ClientSessionStore for PinBoundSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        if self.ours(&server_name) {
            self.sessions().kx_hint = Some(group);
        }
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.ours(server_name).then(|| self.sessions().kx_hint)?
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        let bound = self.bind(&server_name, &value);
        self.sessions().tls12 = bound.map(|leaf| (leaf, value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        if !self.ours(server_name) {
            return None;
        }
        let (leaf, value) = self.sessions().tls12.clone()?;
        if self.verifier.is_active_now(&leaf) {
            return Some(value);
        }
        let mut sessions = self.sessions();
        if sessions.tls12.as_ref().is_some_and(|(l, _)| *l == leaf) {
            sessions.tls12 = None;
        }
        None
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        if self.ours(server_name) {
            self.sessions().tls12 = None;
        }
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let Some(leaf) = self.bind(&server_name, &value) else {
            return;
        };
        let mut sessions = self.sessions();
        if sessions.tls13.len() >= MAX_TLS13_TICKETS {
            sessions.tls13.pop_front();
        }
        sessions.tls13.push_back((leaf, value));
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        if !self.ours(server_name) {
            return None;
        }
        // Newest first; a ticket of a pin that left the active set is dropped on the way.
        loop {
            let (leaf, value) = self.sessions().tls13.pop_back()?;
            if self.verifier.is_active_now(&leaf) {
                return Some(value);
            }
            log::debug!(
                "{}: dropped a session ticket of {leaf}, which is no longer pinned",
                self.verifier.endpoint
            );
        }
    }
}

/// The fingerprint of the leaf certificate a stored rustls session was established with.
///
/// rustls keeps the server's certificate chain in every client session but offers no
/// accessor for it; its `Debug` output carries it, as
/// `server_cert_chain: CertificateChain([CertificateDer(0x<hex>), ...])`, after fields that
/// hold no text a peer chooses (the ticket and session ID are printed in hex). The hex of the
/// first certificate is decoded as it is printed, nothing else is kept. If a later rustls
/// prints sessions differently this returns `None`, and sessions are then not kept: no
/// resumption, never a resumption past a pin (the resumption tests notice).
fn session_leaf(session: &dyn fmt::Debug) -> Option<Fingerprint> {
    use fmt::Write;
    let mut finder = LeafFinder {
        matched: 0,
        der: None,
        nibble: None,
        done: false,
    };
    // The finder stops the formatting with an error once it has what it needs.
    let _ = write!(finder, "{session:?}");
    match (finder.done, finder.der) {
        (true, Some(der)) if !der.is_empty() => Some(Fingerprint::of(&der)),
        _ => None,
    }
}

struct LeafFinder {
    /// How much of `MARKER` the text has matched so far.
    matched: usize,
    /// The certificate's bytes, once past the marker.
    der: Option<Vec<u8>>,
    nibble: Option<u8>,
    done: bool,
}

impl LeafFinder {
    const MARKER: &'static [u8] = b"server_cert_chain: CertificateChain([CertificateDer(0x";
}

impl fmt::Write for LeafFinder {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            match &mut self.der {
                None => {
                    // No proper prefix of the marker is also a suffix of it, so a mismatch
                    // restarts the match at this byte.
                    if b == Self::MARKER[self.matched] {
                        self.matched += 1;
                    } else {
                        self.matched = usize::from(b == Self::MARKER[0]);
                    }
                    if self.matched == Self::MARKER.len() {
                        self.der = Some(Vec::with_capacity(2048));
                    }
                }
                Some(der) => {
                    let Some(value) = (b as char).to_digit(16) else {
                        self.done = b == b')' && self.nibble.is_none();
                        return Err(fmt::Error);
                    };
                    let value = value as u8;
                    match self.nibble.take() {
                        None => self.nibble = Some(value),
                        Some(high) => der.push(high << 4 | value),
                    }
                    if der.len() > crate::cert::MAX_CERTIFICATE_LEN {
                        return Err(fmt::Error);
                    }
                }
            }
        }
        Ok(())
    }
}
