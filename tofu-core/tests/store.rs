//! The pin store, specified by what it does: one contract, run against every backend, then
//! what the SQLite store does with its files on disk.
//!
//! A contract test is a function of a [`Fixture`] (a fresh, empty store and how to open it
//! again), listed in [`contract!`] at the end, which runs it as `sqlite::NAME` against a
//! SQLite store in a fresh temporary directory and, with the cargo feature `postgres`, as
//! `postgres::NAME` against a fresh database on the server `TOFU_TEST_POSTGRES` names
//! (`eval "$(.ci/postgres start)"` starts one; without it those tests skip, or fail under
//! `TOFU_TEST_POSTGRES_REQUIRED=1`). A body not listed there is dead code, which the lints
//! refuse. The tests about SQLite's files are plain `#[test]`s in the last section.
//!
//! Nothing is mocked. Certificates are made with rcgen, with subjects like the ones Cisco
//! Prime Infrastructure issues.

mod pg_support;

use std::collections::BTreeSet;
use std::fs;
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, Issuer, KeyPair, PublicKeyData, SanType,
};
use rustls::pki_types::CertificateDer;
use tofu_core::{
    audit::{Actor, AuditEntry, AuditEvent},
    cert::CertificateDetails,
    pin::{Pin, PinMatch, PinSource, PinState},
    store::{FirstUse, NewPin, DATABASE_FILE},
    timestamp::Timestamp,
    Endpoint, Error, Fingerprint, Store,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The subject Prime Infrastructure gives its servers, with `cn` as the common name.
fn prime_subject(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, cn);
    dn
}

fn prime_params(cn: &str) -> CertificateParams {
    let mut params =
        CertificateParams::new(vec![cn.to_string(), "10.1.1.1".to_string()]).expect("valid SANs");
    params.distinguished_name = prime_subject(cn);
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2035, 1, 2);
    params
}

/// A self-signed certificate for `cn` (a fresh key each time, so each call gives a different
/// certificate).
fn cert(cn: &str) -> CertificateDer<'static> {
    let key = KeyPair::generate().expect("key generation");
    prime_params(cn)
        .self_signed(&key)
        .expect("self-signed certificate")
        .der()
        .clone()
}

fn ep(text: &str) -> Endpoint {
    text.parse().expect("a valid endpoint")
}

fn fp(der: &CertificateDer<'_>) -> Fingerprint {
    Fingerprint::of(der)
}

/// A fresh, empty store of one backend, and how to open it: each [`Fixture::open`] is a new
/// handle with its own connections, as another process would have.
struct Fixture {
    /// Where the store is: a directory, or a PostgreSQL URL.
    location: String,
    /// Opens the store at a location, creating it when missing.
    open_at: fn(&str) -> Store,
    /// Opens the store at a location that already holds one (SQLite: `open_existing`).
    reopen_at: fn(&str) -> Store,
    /// Another fresh store of the same backend.
    fresh: fn() -> Option<Fixture>,
    /// Runs SQL on the store's database directly, past the library (as an intruder with the
    /// database's credentials would): what the database said when it refused.
    raw_sql: fn(&str, &str) -> Result<(), String>,
    /// How long another handle's change may take to move this handle's generation: none for
    /// SQLite (the next call sees it); for PostgreSQL, the notification's trip (measured in
    /// milliseconds, see BENCHMARKS.md) with a generous margin for a busy machine.
    visible_within: Duration,
    /// The temporary directory or database, removed when the test ends.
    _keep: Box<dyn Send + Sync>,
}

impl Fixture {
    /// A handle on the store, creating it on first use.
    fn open(&self) -> Store {
        (self.open_at)(&self.location)
    }

    /// A handle on the store, which must exist already.
    fn reopen(&self) -> Store {
        (self.reopen_at)(&self.location)
    }

    /// `store`'s generation once it differs from `before`, as soon as another handle's
    /// change reaches it; fails if that takes longer than the backend promises.
    fn next_generation(&self, store: &Store, before: u64) -> u64 {
        let deadline = Instant::now() + self.visible_within;
        loop {
            let now = store.generation().unwrap();
            if now != before || Instant::now() >= deadline {
                assert_ne!(
                    now, before,
                    "no change seen within {:?}",
                    self.visible_within
                );
                return now;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `store`'s generation once every change made so far has reached it (a notification of
    /// its own write may still be on its way right after the write).
    fn settled_generation(&self, store: &Store) -> u64 {
        if self.visible_within.is_zero() {
            return store.generation().unwrap();
        }
        let deadline = Instant::now() + self.visible_within;
        let mut last = store.generation().unwrap();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = store.generation().unwrap();
            if now == last || Instant::now() >= deadline {
                return now;
            }
            last = now;
        }
    }

    /// Another fresh, empty store of the same backend.
    fn fresh(&self) -> Fixture {
        (self.fresh)().expect("the backend that gave one store gives another")
    }

    /// A store in a fresh temporary directory.
    fn sqlite() -> Option<Fixture> {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let dir = tmp.path().join("store");
        Some(Fixture {
            location: dir.to_str().expect("a UTF-8 temporary path").to_owned(),
            open_at: |dir| Store::open(dir).unwrap_or_else(|e| panic!("{dir}: {e}")),
            reopen_at: |dir| Store::open_existing(dir).unwrap_or_else(|e| panic!("{dir}: {e}")),
            fresh: Fixture::sqlite,
            raw_sql: |dir, sql| {
                let conn = rusqlite::Connection::open(Path::new(dir).join(DATABASE_FILE))
                    .map_err(|e| e.to_string())?;
                conn.execute_batch(sql).map_err(|e| e.to_string())
            },
            visible_within: Duration::ZERO,
            _keep: Box::new(tmp),
        })
    }

    /// A store in a fresh database on the test server, dropped when the test ends; `None`
    /// (the test skips) without a server.
    #[cfg(feature = "postgres")]
    fn postgres() -> Option<Fixture> {
        fn open(url: &str) -> Store {
            let location = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
            Store::open_location(&location).unwrap_or_else(|e| panic!("{url}: {e}"))
        }
        let url = pg_support::fresh_database()?;
        Some(Fixture {
            location: url.clone(),
            open_at: open,
            reopen_at: open,
            fresh: Fixture::postgres,
            raw_sql: |url, sql| pg_support::psql(url, sql).map(drop),
            visible_within: Duration::from_secs(5),
            _keep: Box::new(pg_support::DropOnDrop(url)),
        })
    }
}

fn audit(store: &Store, endpoint: Option<&Endpoint>) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    store
        .for_each_audit(endpoint, |e| {
            out.push(e);
            ControlFlow::Continue(())
        })
        .expect("the audit log reads");
    out
}

fn all_pins(store: &Store) -> Vec<Pin> {
    let mut out = Vec::new();
    store
        .for_each_pin(|p| {
            out.push(p);
            ControlFlow::Continue(())
        })
        .expect("the pins read");
    out
}

fn events(entries: &[AuditEntry]) -> Vec<AuditEvent> {
    entries.iter().map(|e| e.event).collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The names, lengths and SHA-256 of the files in `dir`, to show that something left a
/// directory exactly as it was.
fn snapshot(dir: &Path) -> Vec<(String, usize, Fingerprint)> {
    let mut out: Vec<(String, usize, Fingerprint)> = fs::read_dir(dir)
        .expect("readable directory")
        .map(|e| {
            let e = e.expect("directory entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(e.path()).expect("metadata");
            let bytes = if meta.is_file() {
                fs::read(e.path()).expect("readable file")
            } else {
                Vec::new()
            };
            (name, bytes.len(), Fingerprint::of(&bytes))
        })
        .collect();
    out.sort();
    out
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------------------------------------
// What a pin records

#[test]
fn certificate_details_are_extracted_from_the_der() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = prime_subject("Prime Infra CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params = prime_params("prime-pri");
    params.subject_alt_names = vec![
        SanType::DnsName("prime-pri".try_into().unwrap()),
        SanType::IpAddress("10.1.1.1".parse().unwrap()),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
        SanType::URI("https://prime-pri/".try_into().unwrap()),
    ];
    let der = params.signed_by(&key, &issuer).unwrap().der().clone();

    let d = CertificateDetails::from_der(&der).expect("the certificate parses");
    assert_eq!(d.fingerprint, Fingerprint::of(&der));
    assert_eq!(
        d.spki_fingerprint,
        Fingerprint::of(&key.subject_public_key_info()),
        "the SPKI fingerprint is the SHA-256 of the SubjectPublicKeyInfo DER"
    );
    assert_ne!(d.spki_fingerprint, d.fingerprint);
    assert_eq!(
        d.subject,
        "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri"
    );
    assert_eq!(
        d.issuer,
        "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=Prime Infra CA"
    );
    assert_eq!(
        d.sans,
        [
            "DNS:prime-pri",
            "IP Address:10.1.1.1",
            "email:ops@example.com",
            "URI:https://prime-pri/"
        ]
    );
    assert_eq!(d.not_before, "2025-01-02T00:00:00Z".parse().unwrap());
    assert_eq!(d.not_after, "2035-01-02T00:00:00Z".parse().unwrap());
}

fn every_field_of_a_pin_survives_the_store_and_a_reopen(fixture: &Fixture) {
    let der = cert("prime-pri");
    let staged_der = cert("prime-pri");
    let e = ep("10.1.1.1:8082");
    let pinned_at: Timestamp = "2025-03-04T05:06:07Z".parse().unwrap();
    let first_seen: Timestamp = "2025-03-04T05:06:08Z".parse().unwrap();
    let last_seen: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();

    let expected = Pin {
        endpoint: e.clone(),
        state: PinState::Active,
        der: der.clone(),
        details: CertificateDetails::from_der(&der).unwrap(),
        pinned_at,
        first_seen: Some(first_seen),
        last_seen: Some(last_seen),
        times_seen: 4242,
        matches: PinMatch::Certificate,
        source: PinSource::FirstUse,
        label: Some("HA primary — rack 7".into()),
    };
    let staged;
    {
        let store = fixture.open();
        let report = store
            .import(
                &[NewPin {
                    endpoint: e.clone(),
                    der: der.clone(),
                    state: PinState::Active,
                    source: PinSource::FirstUse,
                    label: expected.label.clone(),
                    pinned_at: Some(pinned_at),
                    first_seen: Some(first_seen),
                    last_seen: Some(last_seen),
                    times_seen: 4242,
                    matches: PinMatch::Certificate,
                }],
                false,
            )
            .unwrap();
        assert_eq!(report.added, 1);
        staged = store
            .add_pin(&e, &staged_der, PinState::Next, None)
            .unwrap();
        assert_eq!(
            store.endpoint(&e).unwrap().pins,
            [expected.clone(), staged.clone()]
        );
    }

    let store = fixture.reopen();
    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.pins.len(), 2);
    let got = &record.pins[0];
    // Field by field first, so a failure names the field that was lost.
    assert_eq!(got.endpoint, e);
    assert_eq!(got.state, PinState::Active);
    assert_eq!(got.der, der);
    assert_eq!(got.details.fingerprint, fp(&der));
    assert_eq!(
        got.details.spki_fingerprint,
        expected.details.spki_fingerprint
    );
    assert_eq!(
        got.details.subject,
        "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri"
    );
    assert_eq!(got.details.issuer, got.details.subject, "self-signed");
    assert_eq!(got.details.sans, ["DNS:prime-pri", "IP Address:10.1.1.1"]);
    assert_eq!(
        got.details.not_before,
        "2025-01-02T00:00:00Z".parse().unwrap()
    );
    assert_eq!(
        got.details.not_after,
        "2035-01-02T00:00:00Z".parse().unwrap()
    );
    assert_eq!(got.pinned_at, pinned_at);
    assert_eq!(got.first_seen, Some(first_seen));
    assert_eq!(got.last_seen, Some(last_seen));
    assert_eq!(got.times_seen, 4242);
    assert_eq!(got.source, PinSource::FirstUse);
    assert_eq!(got.label.as_deref(), Some("HA primary — rack 7"));
    assert_eq!(*got, expected);

    let next = &record.pins[1];
    assert_eq!(*next, staged);
    assert_eq!(next.state, PinState::Next);
    assert_eq!(next.source, PinSource::Operator);
    assert_eq!(
        (next.first_seen, next.last_seen, next.times_seen),
        (None, None, 0)
    );
    assert_eq!(next.label, None);
    assert!(record.quarantined.is_empty());
}

fn a_certificate_without_sans_stores_an_empty_list_not_one_empty_name(fixture: &Fixture) {
    let store = fixture.open();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = prime_subject("no-sans");
    let der = params.self_signed(&key).unwrap().der().clone();
    let e = ep("no-sans:443");
    store.add_pin(&e, &der, PinState::Active, None).unwrap();
    let pin = &store.endpoint(&e).unwrap().pins[0];
    assert!(pin.details.sans.is_empty(), "{:?}", pin.details.sans);
}

fn what_is_not_a_certificate_is_refused_and_nothing_is_written(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-pri:443");
    for bad in [Vec::new(), b"not a certificate".to_vec(), {
        let mut der = cert("x").to_vec();
        der.push(0);
        der
    }] {
        let err = store
            .pin_first_use(&e, &CertificateDer::from(bad.clone()))
            .unwrap_err();
        assert!(matches!(err, Error::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("prime-pri:443"), "{err}");
    }
    assert!(!store.endpoint(&e).unwrap().is_pinned());
    assert!(audit(&store, None).is_empty());
}

// ---------------------------------------------------------------------------------------------
// First use, HA pairs and planned rotation

fn first_use_pins_once_and_later_callers_learn_the_winner(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-pri:443");
    let first = cert("prime-pri");
    let second = cert("prime-pri");

    let pinned = match store.pin_first_use(&e, &first).unwrap() {
        FirstUse::Pinned(pin) => *pin,
        other => panic!("the first use pins: {other:?}"),
    };
    assert_eq!(pinned.fingerprint(), fp(&first));
    assert_eq!(pinned.source, PinSource::FirstUse);
    assert_eq!(pinned.times_seen, 1);
    assert_eq!(pinned.first_seen, Some(pinned.pinned_at));

    match store.pin_first_use(&e, &second).unwrap() {
        FirstUse::AlreadyPinned(record) => assert_eq!(record.pins, std::slice::from_ref(&pinned)),
        other => panic!("a second certificate is not pinned: {other:?}"),
    }
    assert_eq!(store.endpoint(&e).unwrap().pins, [pinned]);
    let log = audit(&store, Some(&e));
    assert_eq!(events(&log), [AuditEvent::Pinned]);
    assert_eq!(log[0].fingerprint, Some(fp(&first)));
}

fn threads_racing_to_pin_one_endpoint_produce_exactly_one_pin(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("race.example:443");
    let certs: Vec<_> = (0..8).map(|i| cert(&format!("racer-{i}"))).collect();
    let barrier = std::sync::Barrier::new(certs.len());
    let outcomes: Vec<FirstUse> = std::thread::scope(|s| {
        let handles: Vec<_> = certs
            .iter()
            .map(|c| {
                let (store, e, barrier) = (&store, &e, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    store.pin_first_use(e, c).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&Pin> = outcomes
        .iter()
        .filter_map(|o| match o {
            FirstUse::Pinned(p) => Some(&**p),
            FirstUse::AlreadyPinned(_) => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        if let FirstUse::AlreadyPinned(record) = o {
            assert_eq!(record.pins, [winners[0].clone()]);
        }
    }
    assert_eq!(store.endpoint(&e).unwrap().pins, [winners[0].clone()]);
    assert_eq!(events(&audit(&store, None)), [AuditEvent::Pinned]);
}

fn an_ha_pair_keeps_both_active_pins(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-vip:443");
    let primary = cert("prime-pri");
    let secondary = cert("prime-sec");
    store
        .add_pin(&e, &primary, PinState::Active, Some("HA primary"))
        .unwrap();
    store
        .add_pin(&e, &secondary, PinState::Active, Some("HA secondary"))
        .unwrap();

    let record = store.endpoint(&e).unwrap();
    let active: Vec<_> = record.active().map(|p| p.fingerprint()).collect();
    assert_eq!(
        active,
        [fp(&primary), fp(&secondary)],
        "in the order pinned"
    );
    assert_eq!(record.staged().count(), 0);
    assert_eq!(record.pins[1].label.as_deref(), Some("HA secondary"));
    assert_eq!(
        record.pins[1].details.subject.rsplit('=').next(),
        Some("prime-sec")
    );

    // The same certificate twice is refused, naming the existing pin's state.
    let err = store
        .add_pin(&e, &secondary, PinState::Next, None)
        .unwrap_err();
    match err {
        Error::AlreadyPinned {
            endpoint,
            fingerprint,
            state,
        } => {
            assert_eq!(endpoint, e);
            assert_eq!(fingerprint, fp(&secondary));
            assert_eq!(state, PinState::Active);
        }
        other => panic!("expected AlreadyPinned, got {other}"),
    }
    assert_eq!(store.endpoint(&e).unwrap(), record);
    assert_eq!(
        events(&audit(&store, Some(&e))),
        [AuditEvent::Added, AuditEvent::Added]
    );
}

fn promoting_a_staged_pin_retires_the_active_pins(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-vip:443");
    let primary = cert("prime-pri");
    let secondary = cert("prime-sec");
    let renewed = cert("prime-vip");
    let other = ep("other:443");
    let other_cert = cert("other");
    store
        .add_pin(&e, &primary, PinState::Active, Some("HA"))
        .unwrap();
    store
        .add_pin(&e, &secondary, PinState::Active, None)
        .unwrap();
    let staged = store.add_pin(&e, &renewed, PinState::Next, None).unwrap();
    store
        .add_pin(&other, &other_cert, PinState::Active, None)
        .unwrap();
    assert_eq!(staged.state, PinState::Next);
    assert_eq!(store.endpoint(&e).unwrap().staged().count(), 1);

    // Promoting a certificate that is not staged does nothing.
    assert_eq!(store.promote_staged(&e, &fp(&primary)).unwrap(), None);
    assert_eq!(store.promote_staged(&e, &fp(&other_cert)).unwrap(), None);
    assert_eq!(store.endpoint(&e).unwrap().pins.len(), 3);

    let promoted = store
        .promote_staged(&e, &fp(&renewed))
        .unwrap()
        .expect("the staged pin is promoted");
    assert_eq!(promoted.pin.fingerprint(), fp(&renewed));
    assert_eq!(promoted.pin.state, PinState::Active);
    assert_eq!(
        promoted.pin.times_seen, 1,
        "the presenting handshake is counted"
    );
    assert!(promoted.pin.first_seen.is_some());
    let retired: Vec<_> = promoted.retired.iter().map(Pin::fingerprint).collect();
    assert_eq!(retired, [fp(&primary), fp(&secondary)]);

    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.pins, std::slice::from_ref(&promoted.pin));
    assert_eq!(
        store.endpoint(&other).unwrap().pins.len(),
        1,
        "other endpoints are untouched"
    );

    // A second promotion (another process got there first) is a no-op.
    assert_eq!(store.promote_staged(&e, &fp(&renewed)).unwrap(), None);

    let log = audit(&store, Some(&e));
    assert_eq!(
        events(&log),
        [
            AuditEvent::Added,
            AuditEvent::Added,
            AuditEvent::Staged,
            AuditEvent::Retired,
            AuditEvent::Retired,
            AuditEvent::Promoted,
        ]
    );
    assert_eq!(log[3].fingerprint, Some(fp(&primary)));
    assert_eq!(log[4].fingerprint, Some(fp(&secondary)));
    assert_eq!(log[5].fingerprint, Some(fp(&renewed)));
    assert_eq!(log[5].previous, Some(fp(&primary)));
}

fn record_seen_counts_handshakes_and_ignores_removed_pins(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-pri:443");
    let der = cert("prime-pri");
    store.add_pin(&e, &der, PinState::Active, None).unwrap();
    let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let t0: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
    let t2: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();

    store.record_seen(&e, &fp(&der), 3, t1).unwrap();
    store.record_seen(&e, &fp(&der), 2, t0).unwrap(); // a late report from another process
    let pin = store.endpoint(&e).unwrap().pins.remove(0);
    assert_eq!(pin.times_seen, 5);
    assert_eq!(pin.first_seen, Some(t1), "first_seen is set once");
    assert_eq!(pin.last_seen, Some(t1), "last_seen never goes backwards");

    store.record_seen(&e, &fp(&der), 1, t2).unwrap();
    let pin = store.endpoint(&e).unwrap().pins.remove(0);
    assert_eq!((pin.times_seen, pin.last_seen), (6, Some(t2)));

    store.remove_pin(&e, &fp(&der)).unwrap().unwrap();
    store.record_seen(&e, &fp(&der), 1, t2).unwrap();
    assert!(!store.endpoint(&e).unwrap().is_pinned());
}

// ---------------------------------------------------------------------------------------------
// Quarantine and acceptance

fn quarantine_counts_repeats_and_accepting_by_fingerprint_replaces_the_pin(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    let old = cert("prime-pri");
    let presented = cert("prime-pri");
    store
        .add_pin(&e, &old, PinState::Active, Some("primary"))
        .unwrap();

    store.quarantine(&e, &presented).unwrap();
    store.quarantine(&e, &presented).unwrap();
    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.pins.len(), 1, "quarantine never changes the pins");
    assert_eq!(record.quarantined.len(), 1, "one entry per certificate");
    let q = &record.quarantined[0];
    assert_eq!(q.times_seen, 2);
    assert_eq!(q.der, presented);
    assert_eq!(q.details.fingerprint, fp(&presented));
    assert!(q.first_seen <= q.last_seen);
    let mut listed = Vec::new();
    store
        .for_each_quarantined(|q| {
            listed.push(q);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(listed, record.quarantined);

    let promoted = store.accept_quarantined(&e, &fp(&presented)).unwrap();
    assert_eq!(promoted.pin.fingerprint(), fp(&presented));
    assert_eq!(promoted.pin.source, PinSource::Accepted);
    assert_eq!(promoted.pin.state, PinState::Active);
    assert_eq!(
        promoted.pin.label.as_deref(),
        Some("primary"),
        "the label carries over"
    );
    assert_eq!(promoted.pin.first_seen, Some(q.first_seen));
    assert_eq!(
        promoted
            .retired
            .iter()
            .map(Pin::fingerprint)
            .collect::<Vec<_>>(),
        [fp(&old)]
    );

    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.pins, std::slice::from_ref(&promoted.pin));
    assert!(
        record.quarantined.is_empty(),
        "the accepted certificate left quarantine"
    );

    let log = audit(&store, Some(&e));
    assert_eq!(
        events(&log),
        [
            AuditEvent::Added,
            // Once per certificate: the repeat is counted in the quarantine, not logged.
            AuditEvent::MismatchRejected,
            AuditEvent::Retired,
            AuditEvent::Accepted,
        ]
    );
    let accepted = log.last().unwrap();
    assert_eq!(accepted.fingerprint, Some(fp(&presented)));
    assert_eq!(accepted.previous, Some(fp(&old)));
    assert_eq!(
        accepted.subject.as_deref(),
        Some(&*promoted.pin.details.subject)
    );
}

/// Regression: a certificate refused under the strict policy (and so quarantined) that was
/// then pinned some other way stayed in quarantine, shown as untrusted with an `accept` to run.
fn a_certificate_pinned_any_way_leaves_quarantine(fixture: &Fixture) {
    let store = fixture.open();
    let (a, b, c, d) = (cert("a"), cert("b"), cert("c"), cert("d"));
    let (first_use, added, staged, imported) = (
        ep("10.1.1.1:1"),
        ep("10.1.1.2:1"),
        ep("10.1.1.3:1"),
        ep("10.1.1.4:1"),
    );
    for (e, der) in [
        (&first_use, &a),
        (&added, &b),
        (&staged, &c),
        (&imported, &d),
    ] {
        store.quarantine(e, der).unwrap();
        store.quarantine(e, &cert("other")).unwrap();
    }
    store.pin_first_use(&first_use, &a).unwrap();
    store.add_pin(&added, &b, PinState::Active, None).unwrap();
    store.add_pin(&staged, &c, PinState::Next, None).unwrap();
    store
        .import(&[new_pin(&imported, &d, PinState::Active)], false)
        .unwrap();
    for (e, der) in [
        (&first_use, &a),
        (&added, &b),
        (&staged, &c),
        (&imported, &d),
    ] {
        let record = store.endpoint(e).unwrap();
        assert_eq!(record.pins.len(), 1, "{e}");
        assert_eq!(
            record.quarantined.len(),
            1,
            "{e}: only the other certificate stays"
        );
        assert_ne!(record.quarantined[0].details.fingerprint, fp(der), "{e}");
    }
}

fn accepting_a_fingerprint_that_is_not_quarantined_changes_nothing(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    let pinned = cert("prime-pri");
    let presented = cert("prime-pri");
    let never_presented = cert("prime-pri");
    store.add_pin(&e, &pinned, PinState::Active, None).unwrap();
    store.quarantine(&e, &presented).unwrap();
    let before = store.endpoint(&e).unwrap();
    let log_before = audit(&store, None);

    for wrong in [fp(&never_presented), fp(&pinned)] {
        match store.accept_quarantined(&e, &wrong).unwrap_err() {
            Error::NotQuarantined {
                endpoint,
                fingerprint,
                quarantined,
            } => {
                assert_eq!(endpoint, e);
                assert_eq!(fingerprint, wrong);
                assert_eq!(quarantined, [fp(&presented)]);
            }
            other => panic!("expected NotQuarantined, got {other}"),
        }
    }
    // Another endpoint's quarantine cannot be accepted here either.
    let elsewhere = ep("10.1.1.2:8082");
    store.quarantine(&elsewhere, &never_presented).unwrap();
    let err = store
        .accept_quarantined(&e, &fp(&never_presented))
        .unwrap_err();
    assert!(matches!(err, Error::NotQuarantined { .. }), "{err}");

    assert_eq!(store.endpoint(&e).unwrap(), before);
    assert_eq!(audit(&store, Some(&e)), log_before);
}

fn quarantine_keeps_the_first_certificates_since_the_last_change_and_the_latest_ones(
    fixture: &Fixture,
) {
    let store = fixture.open();
    let e = ep("hostile.example:443");
    let neighbour = ep("neighbour.example:443");
    store.quarantine(&neighbour, &cert("n")).unwrap();
    let certs: Vec<_> = (0..11).map(|i| cert(&format!("spam-{i}"))).collect();
    for c in &certs {
        assert!(store.quarantine(&e, c).unwrap(), "kept");
    }
    let kept: BTreeSet<Fingerprint> = store
        .endpoint(&e)
        .unwrap()
        .quarantined
        .iter()
        .map(|q| q.details.fingerprint)
        .collect();
    // The first four since the last change are never evicted; the other four places go to
    // the most recently presented (within one second, the latest to arrive).
    let expected: BTreeSet<Fingerprint> = certs[..4].iter().chain(&certs[7..]).map(fp).collect();
    assert_eq!(kept, expected);
    assert_eq!(
        store.endpoint(&neighbour).unwrap().quarantined.len(),
        1,
        "the cap is per endpoint"
    );

    // Refusals are audited up to a budget per change of the pins; evictions are not.
    let log = audit(&store, Some(&e));
    assert!(log.iter().all(|a| a.event == AuditEvent::UnpinnedRejected));
    assert_eq!(log.len(), 8, "{log:?}");

    // After a change of the pins, the certificates from before are the first to go.
    store
        .add_pin(&e, &cert("pinned"), PinState::Active, None)
        .unwrap();
    let after: Vec<_> = (0..4).map(|i| cert(&format!("after-{i}"))).collect();
    for c in &after {
        store.quarantine(&e, c).unwrap();
    }
    let record = store.endpoint(&e).unwrap();
    for c in &after {
        assert!(record.quarantined.iter().any(|q| q.der == *c));
    }
    assert_eq!(record.quarantined.len(), 8);

    // A repeat of a kept certificate is counted and does not push anything out.
    store.quarantine(&e, &after[1]).unwrap();
    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.quarantined.len(), 8);
    let repeated = record
        .quarantined
        .iter()
        .find(|q| q.details.fingerprint == fp(&after[1]))
        .expect("still quarantined");
    assert_eq!(repeated.times_seen, 2);
    // Most recently presented first; times are whole seconds, so within one second the
    // order is that of arrival.
    for pair in record.quarantined.windows(2) {
        assert!(pair[0].last_seen >= pair[1].last_seen);
    }
}

// ---------------------------------------------------------------------------------------------
// Compare-and-swap and removal

fn replace_pin_swaps_only_when_the_expected_pin_is_current(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-pri:443");
    let a = cert("prime-pri");
    let b = cert("prime-pri");
    let c = cert("prime-pri");
    let staged = cert("prime-pri");
    store
        .add_pin(&e, &a, PinState::Active, Some("keep me"))
        .unwrap();
    store.add_pin(&e, &staged, PinState::Next, None).unwrap();

    let pin = store
        .replace_pin(&e, &fp(&a), &b, PinSource::Operator)
        .unwrap();
    assert_eq!(pin.fingerprint(), fp(&b));
    assert_eq!(pin.state, PinState::Active);
    assert_eq!(pin.label.as_deref(), Some("keep me"));
    let record = store.endpoint(&e).unwrap();
    assert_eq!(
        record.active().map(Pin::fingerprint).collect::<Vec<_>>(),
        [fp(&b)]
    );
    assert_eq!(
        record.staged().map(Pin::fingerprint).collect::<Vec<_>>(),
        [fp(&staged)]
    );

    // `a` is gone: a caller that still expects it loses the race and nothing changes.
    let log_before = audit(&store, None);
    for expected in [fp(&a), fp(&staged), fp(&c)] {
        match store
            .replace_pin(&e, &expected, &c, PinSource::Operator)
            .unwrap_err()
        {
            Error::PinChanged {
                endpoint,
                expected: got,
            } => {
                assert_eq!(endpoint, e);
                assert_eq!(got, expected);
            }
            other => panic!("expected PinChanged, got {other}"),
        }
    }
    assert_eq!(store.endpoint(&e).unwrap(), record);
    assert_eq!(audit(&store, None), log_before);

    let log = audit(&store, Some(&e));
    let replaced = log.last().unwrap();
    assert_eq!(replaced.event, AuditEvent::Replaced);
    assert_eq!(replaced.fingerprint, Some(fp(&b)));
    assert_eq!(replaced.previous, Some(fp(&a)));
}

fn remove_endpoint_returns_what_it_removed_and_nothing_the_second_time(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-vip:443");
    let keep = ep("prime-other:443");
    let (a, b, n, q) = (cert("a"), cert("b"), cert("n"), cert("q"));
    store.add_pin(&e, &a, PinState::Active, None).unwrap();
    store.add_pin(&e, &b, PinState::Active, None).unwrap();
    store.add_pin(&e, &n, PinState::Next, None).unwrap();
    store.quarantine(&e, &q).unwrap();
    store.add_pin(&keep, &a, PinState::Active, None).unwrap();
    let before = store.endpoint(&e).unwrap();

    let removed = store.remove_endpoint(&e).unwrap();
    assert_eq!(removed.pins, before.pins);
    assert_eq!(removed.quarantined, before.quarantined);
    assert_eq!(store.endpoint(&e).unwrap(), Default::default());
    assert_eq!(store.endpoint(&keep).unwrap().pins.len(), 1);

    let log = audit(&store, Some(&e));
    assert_eq!(
        events(&log[log.len() - 4..]),
        [
            AuditEvent::Removed,
            AuditEvent::Removed,
            AuditEvent::Removed,
            AuditEvent::Discarded
        ]
    );
    let removed_fps: Vec<_> = log[log.len() - 4..].iter().map(|a| a.fingerprint).collect();
    assert_eq!(
        removed_fps,
        [Some(fp(&a)), Some(fp(&b)), Some(fp(&n)), Some(fp(&q))]
    );

    let again = store.remove_endpoint(&e).unwrap();
    assert!(again.pins.is_empty() && again.quarantined.is_empty());
    assert_eq!(
        audit(&store, Some(&e)).len(),
        log.len(),
        "removing nothing is not audited"
    );
}

fn remove_pin_removes_one_pin_and_returns_none_when_there_is_none(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-vip:443");
    let (a, b) = (cert("a"), cert("b"));
    store.add_pin(&e, &a, PinState::Active, None).unwrap();
    store.add_pin(&e, &b, PinState::Active, None).unwrap();

    let removed = store
        .remove_pin(&e, &fp(&a))
        .unwrap()
        .expect("a was pinned");
    assert_eq!(removed.fingerprint(), fp(&a));
    let record = store.endpoint(&e).unwrap();
    assert_eq!(
        record.pins.iter().map(Pin::fingerprint).collect::<Vec<_>>(),
        [fp(&b)]
    );

    assert_eq!(store.remove_pin(&e, &fp(&a)).unwrap(), None);
    assert_eq!(store.remove_pin(&ep("nowhere:1"), &fp(&b)).unwrap(), None);
    assert_eq!(store.endpoint(&e).unwrap(), record);
    assert_eq!(
        events(&audit(&store, None)),
        [AuditEvent::Added, AuditEvent::Added, AuditEvent::Removed]
    );
}

// ---------------------------------------------------------------------------------------------
// The audit log

fn the_audit_log_records_every_kind_of_change_with_who_made_it(fixture: &Fixture) {
    let store = fixture.open();
    let store = store.with_actor(Actor::named("rotation-script"));
    let e = ep("10.1.1.1:8082");
    let f = ep("[fd00::5]:8443");
    let (c1, c2, c3, c4, c5, c6) = (
        cert("c1"),
        cert("c2"),
        cert("c3"),
        cert("c4"),
        cert("c5"),
        cert("c6"),
    );
    let started = Timestamp::now();

    store.pin_first_use(&e, &c1).unwrap(); // pinned
    store.add_pin(&e, &c2, PinState::Active, None).unwrap(); // added
    store.add_pin(&e, &c3, PinState::Next, None).unwrap(); // staged
    store.promote_staged(&e, &fp(&c3)).unwrap().unwrap(); // retired ×2, promoted
    store
        .replace_pin(&e, &fp(&c3), &c4, PinSource::Operator)
        .unwrap(); // replaced
    store.quarantine(&e, &c5).unwrap(); // mismatch-rejected
    store.accept_quarantined(&e, &fp(&c5)).unwrap(); // retired, accepted
    store
        .import(
            &[NewPin {
                endpoint: f.clone(),
                der: c6.clone(),
                state: PinState::Active,
                source: PinSource::Imported,
                label: None,
                pinned_at: None,
                first_seen: None,
                last_seen: None,
                times_seen: 0,
                matches: PinMatch::Certificate,
            }],
            false,
        )
        .unwrap(); // imported
    store.quarantine(&f, &c1).unwrap(); // mismatch-rejected
    store.remove_endpoint(&f).unwrap(); // removed, discarded

    let log = audit(&store, None);
    let expected = [
        (AuditEvent::Pinned, &e, Some(&c1), None),
        (AuditEvent::Added, &e, Some(&c2), None),
        (AuditEvent::Staged, &e, Some(&c3), None),
        (AuditEvent::Retired, &e, Some(&c1), None),
        (AuditEvent::Retired, &e, Some(&c2), None),
        (AuditEvent::Promoted, &e, Some(&c3), Some(&c1)),
        (AuditEvent::Replaced, &e, Some(&c4), Some(&c3)),
        (AuditEvent::MismatchRejected, &e, Some(&c5), None),
        (AuditEvent::Retired, &e, Some(&c4), None),
        (AuditEvent::Accepted, &e, Some(&c5), Some(&c4)),
        (AuditEvent::Imported, &f, Some(&c6), None),
        (AuditEvent::MismatchRejected, &f, Some(&c1), None),
        (AuditEvent::Removed, &f, Some(&c6), None),
        (AuditEvent::Discarded, &f, Some(&c1), None),
    ];
    let got: Vec<_> = log
        .iter()
        .map(|a| (a.event, &a.endpoint, a.fingerprint, a.previous))
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(ev, ep, c, p)| (*ev, *ep, c.map(fp), p.map(fp)))
        .collect();
    assert_eq!(got, want);

    let kinds: BTreeSet<&str> = log.iter().map(|a| a.event.as_str()).collect();
    assert_eq!(
        kinds.len(),
        11,
        "every kind of change is covered: {kinds:?}"
    );

    let actor = format!(
        "rotation-script (pid {}, uid {})",
        std::process::id(),
        rustix::process::getuid().as_raw()
    );
    let now = Timestamp::now();
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry.actor, actor);
        assert!(started <= entry.at && entry.at <= now, "{entry:?}");
        let cert = expected[i].2.unwrap();
        let subject = CertificateDetails::from_der(cert).unwrap().subject;
        assert_eq!(entry.subject.as_deref(), Some(subject.as_str()));
        if i > 0 {
            assert!(entry.id > log[i - 1].id, "ids strictly increase");
        }
    }

    // Per-endpoint reading returns that endpoint's entries only, in order.
    let only_f = audit(&store, Some(&f));
    assert_eq!(only_f, log[10..].to_vec());
    // Reading can stop early.
    let mut seen = 0;
    store
        .for_each_audit(None, |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(seen, 1);
}

fn the_default_actor_names_the_executable(fixture: &Fixture) {
    let store = fixture.open();
    store
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy();
    let actor = &audit(&store, None)[0].actor;
    assert!(
        actor.starts_with(&format!("{name} (pid {}, uid ", std::process::id())),
        "{actor}"
    );
}

// ---------------------------------------------------------------------------------------------
// Import and listing

fn new_pin(endpoint: &Endpoint, der: &CertificateDer<'static>, state: PinState) -> NewPin {
    NewPin {
        endpoint: endpoint.clone(),
        der: der.clone(),
        state,
        source: PinSource::Imported,
        label: None,
        pinned_at: None,
        first_seen: None,
        last_seen: None,
        times_seen: 0,
        matches: PinMatch::Certificate,
    }
}

fn import_is_all_or_nothing(fixture: &Fixture) {
    let store = fixture.open();
    let taken = ep("10.1.1.1:8082");
    let existing = cert("existing");
    store
        .add_pin(&taken, &existing, PinState::Active, None)
        .unwrap();
    let before_pins = all_pins(&store);
    let before_log = audit(&store, None);

    let (b, c, d) = (cert("b"), cert("c"), cert("d"));
    let file = [
        new_pin(&ep("b.example:443"), &b, PinState::Active),
        new_pin(&ep("c.example:443"), &c, PinState::Active),
        new_pin(&taken, &d, PinState::Active),
    ];
    match store.import(&file, false).unwrap_err() {
        Error::ImportConflict {
            endpoint,
            existing: got_existing,
            imported,
        } => {
            assert_eq!(endpoint, taken);
            assert_eq!(got_existing, fp(&existing));
            assert_eq!(imported, fp(&d));
        }
        other => panic!("expected ImportConflict, got {other}"),
    }
    assert_eq!(all_pins(&store), before_pins, "nothing was imported");
    assert_eq!(audit(&store, None), before_log, "nothing was audited");

    // A damaged certificate anywhere in the file also imports nothing.
    let damaged = [
        new_pin(&ep("b.example:443"), &b, PinState::Active),
        new_pin(
            &ep("e.example:443"),
            &CertificateDer::from(vec![0x30, 0x00]),
            PinState::Active,
        ),
    ];
    let err = store.import(&damaged, true).unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err}");
    assert_eq!(all_pins(&store), before_pins);

    let report = store
        .import(&file, true)
        .expect("replace resolves the conflict");
    assert_eq!((report.added, report.replaced, report.unchanged), (3, 1, 0));
    let record = store.endpoint(&taken).unwrap();
    assert_eq!(
        record.pins.iter().map(Pin::fingerprint).collect::<Vec<_>>(),
        [fp(&d)]
    );
    assert_eq!(record.pins[0].source, PinSource::Imported);
    assert_eq!(all_pins(&store).len(), 3);

    // Importing the same file again changes nothing.
    let log = audit(&store, None);
    let report = store.import(&file, false).unwrap();
    assert_eq!((report.added, report.replaced, report.unchanged), (0, 0, 3));
    let report = store.import(&file, true).unwrap();
    assert_eq!((report.added, report.replaced, report.unchanged), (0, 0, 3));
    assert_eq!(audit(&store, None), log);
}

/// A store with history (an HA pair, a staged key pin, a label with quotes, handshakes
/// counted) exported as JSON lines and imported into another store of the same backend:
/// every pin and every field comes back, and the copy exports to the same bytes.
fn a_store_round_trips_through_json_lines_with_its_history(fixture: &Fixture) {
    use tofu_core::export::{import_export, write_export_as, ExportFormat};
    let store = fixture.open();
    let (a, b, c) = (cert("prime-pri"), cert("prime-sec"), cert("prime-next"));
    let ha = ep("10.1.1.1:8082");
    store.pin_first_use(&ha, &a).unwrap();
    store
        .add_pin(
            &ha,
            &b,
            PinState::Active,
            Some("HA \"secondary\" \\ ü \u{202e}"),
        )
        .unwrap();
    store
        .add_pin_matching(
            &ep("[fd00::5]:8443"),
            &c,
            PinState::Next,
            None,
            PinMatch::Key,
            false,
        )
        .unwrap();
    store
        .record_seen(&ha, &fp(&a), 4, Timestamp::from_unix(1_900_000_000))
        .unwrap();
    let original = all_pins(&store);

    let mut file = Vec::new();
    assert_eq!(
        write_export_as(&store, &mut file, ExportFormat::JsonLines).unwrap(),
        3
    );
    let copy_fixture = fixture.fresh();
    let copy = copy_fixture.open();
    let report = import_export(&copy, file.as_slice(), false).unwrap();
    assert_eq!((report.added, report.unchanged, report.replaced), (3, 0, 0));
    assert_eq!(all_pins(&copy), original);
    let mut again = Vec::new();
    write_export_as(&copy, &mut again, ExportFormat::JsonLines).unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        String::from_utf8(file.clone()).unwrap()
    );

    // Again: everything is already there. With --replace over a changed store: replaced.
    let report = import_export(&copy, file.as_slice(), false).unwrap();
    assert_eq!((report.added, report.unchanged), (0, 3));
    copy.remove_endpoint(&ep("[fd00::5]:8443")).unwrap();
    copy.add_pin(
        &ep("[fd00::5]:8443"),
        &cert("other"),
        PinState::Active,
        None,
    )
    .unwrap();
    let report = import_export(&copy, file.as_slice(), true).unwrap();
    assert_eq!((report.added, report.unchanged, report.replaced), (1, 2, 1));
    assert_eq!(all_pins(&copy), original);
}

/// A streamed import is one transaction: a bad entry, an out-of-order endpoint or a
/// conflict found thousands of lines in (after blocks were written inside the transaction)
/// leaves the store exactly as it was, audit log included, and names the line.
fn a_bad_line_deep_in_a_json_lines_file_leaves_the_store_unchanged(fixture: &Fixture) {
    use tofu_core::export::{import_export, ImportError};
    let store = fixture.open();
    let taken = ep("host-09990.example:443");
    store
        .add_pin(&taken, &cert("existing"), PinState::Active, None)
        .unwrap();
    let before = (all_pins(&store), audit(&store, None));

    let pem = tofu_core::cert::to_pem(&cert("many"));
    let pem = serde_json::to_string(&pem).unwrap();
    let n = 10_000;
    let file = |bad: Option<(usize, &str)>| {
        let mut text = String::from("{\"version\":1}\n");
        for i in 0..n {
            let line = match bad {
                Some((at, what)) if at == i => what.replace("{pem}", &pem),
                _ => {
                    format!("{{\"endpoint\":\"host-{i:05}.example:443\",\"certificate\":{pem}}}\n")
                }
            };
            text.push_str(&line);
        }
        text
    };
    let cases: [(usize, &str, &str); 3] = [
        (
            9000,
            "{\"endpoint\":\"host-09000.example:443\",\"state\":\"later\",\"certificate\":{pem}}\n",
            "state",
        ),
        (
            9500,
            "{\"endpoint\":\"host-00001.example:443\",\"certificate\":{pem}}\n",
            "endpoint",
        ),
        (
            9700,
            "{\"endpoint\":\"host-09700.example:443\",\"colour\":\"blue\",\"certificate\":{pem}}\n",
            "colour",
        ),
    ];
    for (at, line, field_at_fault) in cases {
        match import_export(&store, file(Some((at, line))).as_bytes(), false) {
            Err(ImportError::Entry {
                entry, line, field, ..
            }) => {
                assert_eq!(
                    (entry, line, field.as_str()),
                    (at + 1, at + 2, field_at_fault)
                );
            }
            other => panic!("expected an entry error at line {}, got {other:?}", at + 2),
        }
        assert_eq!(
            (all_pins(&store), audit(&store, None)),
            before,
            "line {}",
            at + 2
        );
    }
    // The conflict is the store's: the endpoint is pinned to another certificate.
    match import_export(&store, file(None).as_bytes(), false) {
        Err(ImportError::Store(Error::ImportConflict { endpoint, .. })) => {
            assert_eq!(endpoint, taken)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!((all_pins(&store), audit(&store, None)), before);
    // And the handle still works, and the whole file imports with --replace.
    let report = import_export(&store, file(None).as_bytes(), true).unwrap();
    assert_eq!((report.added, report.replaced), (n, 1));
    assert_eq!(all_pins(&store).len(), n);
}

fn import_keeps_pins_of_one_endpoint_together(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-vip:443");
    let (a, b, n) = (cert("a"), cert("b"), cert("n"));
    let report = store
        .import(
            &[
                new_pin(&e, &a, PinState::Active),
                new_pin(&e, &b, PinState::Active),
                new_pin(&e, &n, PinState::Next),
            ],
            false,
        )
        .unwrap();
    assert_eq!(report.added, 3);
    let record = store.endpoint(&e).unwrap();
    assert_eq!(record.active().count(), 2);
    assert_eq!(record.staged().count(), 1);

    // The same certificate in a different state is a conflict, not a silent change.
    let err = store
        .import(&[new_pin(&e, &n, PinState::Active)], false)
        .unwrap_err();
    assert!(matches!(err, Error::ImportConflict { .. }), "{err}");
    assert_eq!(store.endpoint(&e).unwrap(), record);
}

/// The fingerprints of an endpoint's active pins and of its staged pins.
fn active_and_staged(
    record: &tofu_core::pin::EndpointRecord,
) -> (Vec<Fingerprint>, Vec<Fingerprint>) {
    (
        record.active().map(Pin::fingerprint).collect(),
        record.staged().map(Pin::fingerprint).collect(),
    )
}

fn import_adds_a_staged_successor_beside_the_active_pin_it_already_has(fixture: &Fixture) {
    // Regression: a file holding an endpoint's active pin and its staged successor was
    // refused against a store holding only the active pin, even with --replace.
    for replace in [false, true] {
        let fixture = fixture.fresh();
        let store = fixture.open();
        let e = ep("prime-sec:8082");
        let (a, b) = (cert("a"), cert("b"));
        store.add_pin(&e, &a, PinState::Active, None).unwrap();
        let report = store
            .import(
                &[
                    new_pin(&e, &a, PinState::Active),
                    new_pin(&e, &b, PinState::Next),
                ],
                replace,
            )
            .unwrap_or_else(|err| panic!("replace={replace}: {err}"));
        assert_eq!((report.added, report.unchanged, report.replaced), (1, 1, 0));
        let record = store.endpoint(&e).unwrap();
        assert_eq!(active_and_staged(&record), (vec![fp(&a)], vec![fp(&b)]));
    }
}

fn import_with_replace_swaps_an_endpoints_pins_for_the_files(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-sec:8082");
    let (old, a, b) = (cert("old"), cert("a"), cert("b"));
    store.add_pin(&e, &old, PinState::Active, None).unwrap();
    let file = [
        new_pin(&e, &a, PinState::Active),
        new_pin(&e, &b, PinState::Next),
    ];
    assert!(matches!(
        store.import(&file, false),
        Err(Error::ImportConflict { .. })
    ));
    let report = store.import(&file, true).unwrap();
    assert_eq!((report.added, report.unchanged, report.replaced), (2, 0, 1));
    let record = store.endpoint(&e).unwrap();
    assert_eq!(active_and_staged(&record), (vec![fp(&a)], vec![fp(&b)]));
}

/// An import of more endpoints than a backend may load and write at once (PostgreSQL does
/// 2000 at a time), its file in no particular order, mixing new endpoints with endpoints the
/// store has: pins kept, replaced, a staged successor added, a quarantined certificate
/// pinned. Each endpoint ends as if imported alone, the audit log says what was done, and a
/// conflict in any endpoint still imports nothing.
fn an_import_of_many_endpoints_treats_each_as_if_imported_alone(fixture: &Fixture) {
    let store = fixture.open();
    let name = |i: usize| ep(&format!("h-{i:04}:443"));
    let shared: Vec<_> = (0..4).map(|i| cert(&format!("shared-{i}"))).collect();
    let (kept, replaced, staged, held) = (name(500), name(1000), name(1999), name(2050));
    let (k, old, new, s, t, q, r) = (
        cert("k"),
        cert("old"),
        cert("new"),
        cert("s"),
        cert("t"),
        cert("q"),
        cert("r"),
    );
    store.add_pin(&kept, &k, PinState::Active, None).unwrap();
    store
        .add_pin(&replaced, &old, PinState::Active, None)
        .unwrap();
    store.add_pin(&staged, &s, PinState::Active, None).unwrap();
    store.quarantine(&held, &q).unwrap();
    store.quarantine(&held, &r).unwrap();
    let log_before = audit(&store, None).len();

    let special = [500, 1000, 1999, 2050];
    let mut file = Vec::new();
    for i in (0..2100).rev() {
        if !special.contains(&i) {
            file.push(new_pin(
                &name(i),
                &shared[i % shared.len()],
                PinState::Active,
            ));
        }
        match i {
            500 => file.push(new_pin(&kept, &k, PinState::Active)),
            1000 => file.push(new_pin(&replaced, &new, PinState::Active)),
            1999 => {
                file.push(new_pin(&staged, &t, PinState::Next));
                file.push(new_pin(&staged, &s, PinState::Active));
            }
            2050 => file.push(new_pin(&held, &q, PinState::Active)),
            _ => {}
        }
    }

    // Without replace, the one conflict (late in the file, early in byte order) imports
    // nothing, in any endpoint.
    let pins_before = all_pins(&store);
    match store.import(&file, false).unwrap_err() {
        Error::ImportConflict { endpoint, .. } => assert_eq!(endpoint, replaced),
        other => panic!("expected ImportConflict, got {other}"),
    }
    assert_eq!(all_pins(&store), pins_before, "nothing was imported");
    assert_eq!(audit(&store, None).len(), log_before, "nothing was audited");

    let report = store.import(&file, true).unwrap();
    assert_eq!(
        (report.added, report.replaced, report.unchanged),
        (2096 + 1 + 1 + 1, 1, 2)
    );
    for i in (0..2100).filter(|i| !special.contains(i)) {
        let record = store.endpoint(&name(i)).unwrap();
        assert_eq!(
            active_and_staged(&record),
            (vec![fp(&shared[i % shared.len()])], vec![]),
            "{}",
            name(i)
        );
    }
    let record = store.endpoint(&kept).unwrap();
    assert_eq!(active_and_staged(&record), (vec![fp(&k)], vec![]));
    assert_eq!(
        record.pins[0].source,
        PinSource::Operator,
        "a kept pin is left as it was"
    );
    let record = store.endpoint(&replaced).unwrap();
    assert_eq!(active_and_staged(&record), (vec![fp(&new)], vec![]));
    let record = store.endpoint(&staged).unwrap();
    assert_eq!(active_and_staged(&record), (vec![fp(&s)], vec![fp(&t)]));
    let record = store.endpoint(&held).unwrap();
    assert_eq!(active_and_staged(&record), (vec![fp(&q)], vec![]));
    assert_eq!(
        record
            .quarantined
            .iter()
            .map(|c| c.details.fingerprint)
            .collect::<Vec<_>>(),
        [fp(&r)],
        "the pinned certificate left quarantine, the other stayed"
    );
    assert_eq!(all_pins(&store).len(), 2096 + 4 + 1);

    let log = audit(&store, None);
    let new_entries = &log[log_before..];
    let count = |event| new_entries.iter().filter(|e| e.event == event).count();
    assert_eq!(count(AuditEvent::Imported), 2099);
    assert_eq!(count(AuditEvent::Removed), 1);
    assert_eq!(new_entries.len(), 2100);
    let of = |e: &Endpoint| {
        audit(&store, Some(e))
            .into_iter()
            .map(|a| a.event)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(&replaced)[1..],
        [AuditEvent::Removed, AuditEvent::Imported],
        "the old pin is removed before the new one is imported"
    );
    assert!(store.check().unwrap().is_sound());

    // The same file again changes nothing, with or without replace.
    for replace in [false, true] {
        let report = store.import(&file, replace).unwrap();
        assert_eq!(
            (report.added, report.replaced, report.unchanged),
            (0, 0, 2101)
        );
    }
    assert_eq!(audit(&store, None), log);
}

fn for_each_pin_streams_in_endpoint_order_and_can_stop_early(fixture: &Fixture) {
    let store = fixture.open();
    let names = [
        "m.example:443",
        "a.example:443",
        "z.example:443",
        "c.example:8443",
    ];
    for (i, name) in names.iter().enumerate() {
        let e = ep(name);
        store
            .add_pin(&e, &cert(&format!("next-{i}")), PinState::Next, None)
            .unwrap();
        store
            .add_pin(&e, &cert(&format!("active-{i}")), PinState::Active, None)
            .unwrap();
    }
    let pins = all_pins(&store);
    let order: Vec<(String, PinState)> = pins
        .iter()
        .map(|p| (p.endpoint.to_string(), p.state))
        .collect();
    let mut sorted = names.map(str::to_string).to_vec();
    sorted.sort();
    let expected: Vec<(String, PinState)> = sorted
        .iter()
        .flat_map(|n| [(n.clone(), PinState::Active), (n.clone(), PinState::Next)])
        .collect();
    assert_eq!(order, expected, "by endpoint, active before staged");

    let mut calls = 0;
    store
        .for_each_pin(|_| {
            calls += 1;
            if calls == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(calls, 3, "stopped after the third pin");
}

fn a_listing_stopped_early_in_a_large_store_leaves_the_handle_working(fixture: &Fixture) {
    // More rows than one batch of a stream, so that rows are still on their way when it stops.
    let store = fixture.open();
    let der = cert("many");
    let pins: Vec<NewPin> = (0..5000)
        .map(|i| new_pin(&ep(&format!("h{i:04}:1")), &der, PinState::Active))
        .collect();
    store.import(&pins, false).unwrap();
    let mut left: Vec<String> = pins.iter().map(|p| p.endpoint.to_string()).collect();
    for stop_at in [1, 1500] {
        let mut seen = Vec::new();
        store
            .for_each_pin(|p| {
                seen.push(p.endpoint.to_string());
                if seen.len() == stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(seen, left[..stop_at]);
        // The same handle then writes and reads, on whichever connection it gets.
        let gone = ep(&left.remove(stop_at - 1));
        assert!(!store.remove_endpoint(&gone).unwrap().pins.is_empty());
        assert!(store.endpoint(&gone).unwrap().pins.is_empty());
    }
    let mut count = 0;
    store
        .for_each_pin(|_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(count, 4998, "a listing to the end sees every pin left");
}

// ---------------------------------------------------------------------------------------------
// Other handles, and the store as a whole

fn many_threads_opening_a_new_store_at_once_all_get_the_same_store(fixture: &Fixture) {
    let barrier = std::sync::Barrier::new(6);
    let stores: Vec<Store> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    fixture.open()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    stores[0]
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
        .unwrap();
    for s in &stores {
        assert!(s.endpoint(&ep("a:1")).unwrap().is_pinned());
    }
}

fn generation_moves_when_another_handle_writes_and_only_then(fixture: &Fixture) {
    let reader = fixture.open();
    // A second handle on the same store has its own connections, exactly as another process
    // would.
    let writer = fixture.open();
    let e = ep("prime-pri:443");

    let g0 = fixture.settled_generation(&reader);
    assert_eq!(reader.generation().unwrap(), g0, "nothing changed");
    // Reads, by anyone, are not changes.
    writer.endpoint(&e).unwrap();
    all_pins(&writer);
    reader.endpoint(&e).unwrap();
    assert_eq!(
        fixture.settled_generation(&reader),
        g0,
        "reads are not changes"
    );

    let der = cert("prime-pri");
    writer.pin_first_use(&e, &der).unwrap();
    let g1 = fixture.next_generation(&reader, g0);
    assert!(
        reader.endpoint(&e).unwrap().is_pinned(),
        "another handle's write moves the generation, and is visible then"
    );
    let g1 = fixture.settled_generation(&reader).max(g1);
    assert_eq!(reader.generation().unwrap(), g1);
    assert_eq!(reader.generation().unwrap(), g1);

    writer.remove_endpoint(&e).unwrap();
    let g2 = fixture.next_generation(&reader, g1);
    assert!(g2 != g1 && g2 != g0, "{g0} {g1} {g2}");
    assert!(!reader.endpoint(&e).unwrap().is_pinned());
    let g2 = fixture.settled_generation(&reader);

    // The handle's own writes move it at once.
    reader.add_pin(&e, &der, PinState::Active, None).unwrap();
    let g3 = reader.generation().unwrap();
    assert_ne!(g3, g2);
    let g3 = fixture.settled_generation(&reader);
    assert_eq!(reader.generation().unwrap(), g3);

    // Every thread sees a change, whichever reader connection it uses.
    writer.remove_endpoint(&e).unwrap();
    let seen: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| fixture.next_generation(&reader, g3)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in seen {
        assert_ne!(g, g3, "a thread saw a stale generation");
    }
}

fn integrity_check_passes_on_a_sound_store(fixture: &Fixture) {
    let store = fixture.open();
    for i in 0..20 {
        store
            .pin_first_use(&ep(&format!("host-{i}:443")), &cert("h"))
            .unwrap();
    }
    store.integrity_check().unwrap();
}

fn a_hostile_name_with_a_newline_stays_one_name_through_the_store(fixture: &Fixture) {
    let store = fixture.open();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = prime_subject("evil\nCN=prime-pri");
    params.subject_alt_names = vec![
        SanType::DnsName("evil\nDNS:bank.example".try_into().unwrap()),
        SanType::DnsName("prime-pri".try_into().unwrap()),
    ];
    let der = params.self_signed(&key).unwrap().der().clone();
    let e = ep("evil.example:443");
    let pin = store.add_pin(&e, &der, PinState::Active, None).unwrap();
    assert_eq!(
        pin.details.sans,
        [r"DNS:evil\x0ADNS:bank.example", "DNS:prime-pri"]
    );
    assert!(pin.details.subject.ends_with(r"/CN=evil\x0ACN=prime-pri"));
    assert_eq!(store.endpoint(&e).unwrap().pins, [pin]);
}

fn the_audit_log_cannot_be_rewritten_even_with_raw_sql(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-pri:443");
    store.pin_first_use(&e, &cert("prime-pri")).unwrap();
    store.remove_endpoint(&e).unwrap();
    let before = audit(&store, None);
    assert_eq!(before.len(), 2);

    // The database itself refuses, whoever asks: SQLite's triggers, PostgreSQL's (which
    // fire in every session, session_replication_role = replica included).
    for sql in [
        "UPDATE audit SET actor = 'nobody'",
        "UPDATE audit SET event = 'added' WHERE event = 'removed'",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE event = 'removed'",
    ] {
        let err = (fixture.raw_sql)(&fixture.location, sql).expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(audit(&store, None), before);
    // Appending still works (the log is append-only, not read-only).
    store
        .add_pin(&e, &cert("again"), PinState::Active, None)
        .unwrap();
    assert_eq!(audit(&store, None).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// SQLite only: the database file, its log and its directory

#[test]
fn a_new_store_is_private_to_its_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("store");
    let store = Store::open(&dir).unwrap();
    store
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
        .unwrap();
    assert_eq!(mode(&dir), 0o700, "store directory");
    let db = dir.join(DATABASE_FILE);
    assert_eq!(store.database_path(), Some(db.as_path()));
    assert_eq!(store.dir(), Some(dir.as_path()));
    assert_eq!(mode(&db), 0o600, "database file");
    for side in ["-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{side}", db.display()));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    let names: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with(DATABASE_FILE)),
        "no temporary file is left behind: {names:?}"
    );
    assert!(!store.is_read_only());
}

#[test]
fn open_existing_never_creates_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    match Store::open_existing(&missing).unwrap_err() {
        Error::StoreNotFound { path } => assert_eq!(path, missing),
        other => panic!("expected StoreNotFound, got {other}"),
    }
    assert!(!missing.exists(), "the directory was not created");

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    set_mode(&empty, 0o700);
    let err = Store::open_existing(&empty).unwrap_err();
    assert!(matches!(err, Error::StoreNotFound { .. }), "{err}");
    assert_eq!(
        fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing was created"
    );
}

/// Writes `bytes` as the database file of a fresh store directory, then checks that opening
/// it (both ways) fails as `check` expects and leaves every file as it was.
fn assert_refused(prepare: impl FnOnce(&Path), check: impl Fn(&Error) -> bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o700);
    prepare(&dir.join(DATABASE_FILE));
    let before = snapshot(&dir);
    for open in [Store::open, Store::open_existing] {
        let err = open(&dir).expect_err("the file is refused");
        assert!(check(&err), "unexpected error: {err:?}");
        assert!(
            err.to_string().contains(DATABASE_FILE),
            "the message names the file: {err}"
        );
        assert_eq!(snapshot(&dir), before, "the store directory is unchanged");
    }
}

#[test]
fn a_truncated_database_file_is_refused_as_corrupt() {
    assert_refused(
        |db| fs::write(db, b"").unwrap(),
        |e| matches!(e, Error::Corrupt { .. }),
    );
}

#[test]
fn random_bytes_are_refused_as_corrupt() {
    // Deterministic "random" bytes: a simple xorshift stream.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_refused(
        |db| fs::write(db, &bytes).unwrap(),
        |e| matches!(e, Error::Corrupt { .. }),
    );
}

#[test]
fn another_sqlite_database_is_refused_as_not_a_store() {
    assert_refused(
        |db| {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch(
                "CREATE TABLE pin (endpoint TEXT, fingerprint BLOB); \
                 INSERT INTO pin VALUES ('a:1', x'00');",
            )
            .unwrap();
        },
        |e| matches!(e, Error::NotAStore { .. }),
    );
}

#[test]
fn another_sqlite_database_with_an_uncheckpointed_wal_is_left_as_it_was() {
    // An application that crashed left its changes in the write-ahead log. Refusing the file
    // must not checkpoint that log into it.
    assert_refused(
        |db| {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .unwrap();
            drop(conn);
            let wal = PathBuf::from(format!("{}-wal", db.display()));
            assert!(
                fs::metadata(wal).unwrap().len() > 0,
                "the WAL holds the changes"
            );
        },
        |e| matches!(e, Error::NotAStore { .. }),
    );
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    assert_refused(
        |db| {
            let dir = db.parent().unwrap();
            let store = Store::open(dir).unwrap();
            store
                .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
                .unwrap();
            drop(store);
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("PRAGMA user_version = 99").unwrap();
        },
        |e| {
            matches!(
                e,
                Error::NewerSchema {
                    found: 99,
                    supported: 7,
                    written_by: Some(w),
                    ..
                } if w.starts_with("tofu-core ")
            ) && e.to_string().contains("(written by tofu-core ")
        },
    );
}

#[test]
fn a_store_with_the_first_schema_is_upgraded_on_open_and_keeps_its_pins() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let pin = store
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, Some("kept"))
        .unwrap();
    drop(store);
    // What a store written by the first release looks like: schema 1, no meta table.
    let db = store_dir.join(tofu_core::store::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TABLE meta; DROP TABLE endpoint_state; \
         ALTER TABLE quarantine DROP COLUMN epoch; ALTER TABLE pin DROP COLUMN match_kind; \
         DROP TABLE awaited; DROP TABLE endpoint_mode; PRAGMA user_version = 1",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&store_dir).unwrap();
    assert_eq!(store.endpoint(&ep("a:1")).unwrap().pins, [pin]);
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let upgraded_by: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'upgraded_by'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 7);
    assert!(upgraded_by.starts_with("tofu-core "), "{upgraded_by}");
}

#[test]
fn a_schema_4_store_is_upgraded_and_its_pins_match_their_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let pin = store
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
        .unwrap();
    drop(store);
    let db = store_dir.join(DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "ALTER TABLE pin DROP COLUMN match_kind; DROP TABLE awaited; DROP TABLE endpoint_mode; PRAGMA user_version = 4",
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&store_dir).unwrap();
    let pins = store.endpoint(&ep("a:1")).unwrap().pins;
    assert_eq!(pins, [pin]);
    assert_eq!(pins[0].matches, PinMatch::Certificate);
    assert!(store.check().unwrap().is_sound());
}

#[test]
fn a_schema_5_store_is_upgraded_to_take_awaited_pins_and_keeps_its_pins() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let pin = store
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, Some("kept"))
        .unwrap();
    drop(store);
    // What version 5 was: no awaited table.
    let db = store_dir.join(DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TABLE awaited; DROP TABLE endpoint_mode; PRAGMA user_version = 5")
        .unwrap();
    drop(conn);
    let store = Store::open(&store_dir).unwrap();
    assert_eq!(store.endpoint(&ep("a:1")).unwrap().pins, [pin]);
    let awaited = fp(&cert("b"));
    store
        .await_pin(&ep("b:2"), &awaited, PinMatch::Certificate, None)
        .unwrap();
    assert_eq!(
        store.endpoint(&ep("b:2")).unwrap().awaited[0].fingerprint,
        awaited
    );
    let report = store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.pins, report.awaited), (1, 1));
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 7);
}

#[test]
fn check_reports_an_awaited_row_that_a_pin_already_holds_and_one_that_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let der = cert("a");
    store
        .add_pin(&ep("a:1"), &der, PinState::Active, None)
        .unwrap();
    assert!(store.check().unwrap().is_sound());
    drop(store);
    // Written past the library: the fill's delete lost, and a row of an unknown match.
    let conn = rusqlite::Connection::open(store_dir.join(DATABASE_FILE)).unwrap();
    conn.execute(
        "INSERT INTO awaited (endpoint, fingerprint, match_kind, state, pinned_at, source) \
         VALUES ('a:1', ?1, 'certificate', 'active', 0, 'operator'), \
         ('b:2', ?2, 'certificate', 'active', 0, 'nobody')",
        rusqlite::params![
            fp(&der).as_bytes().as_slice(),
            fp(&cert("b")).as_bytes().as_slice()
        ],
    )
    .unwrap();
    drop(conn);
    let store = Store::open(&store_dir).unwrap();
    let report = store.check().unwrap();
    let awaited: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.kind == "awaited")
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(awaited.len(), 2, "{report:?}");
    assert!(
        awaited[0].contains("which a pin of the endpoint already holds"),
        "{awaited:?}"
    );
    assert!(awaited[1].contains("nobody"), "{awaited:?}");
    assert_eq!(report.awaited, 2);
}

/// Regression: a pin stored by an earlier version under an IPv4-mapped IPv6 address
/// (`[::ffff:10.1.1.1]:8082`) was not found once such addresses became their IPv4
/// endpoint, so the next handshake through the mapped address pinned whatever it was
/// shown. The upgrade moves it to the endpoint's key; where that endpoint has pins of its
/// own, those win and the others are removed, audited.
#[test]
fn an_upgrade_moves_pins_stored_under_a_mapped_ipv6_address_to_their_ipv4_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let moved = store
        .add_pin(
            &ep("10.1.1.1:8082"),
            &cert("prime-sec"),
            PinState::Active,
            None,
        )
        .unwrap();
    let kept = store
        .add_pin(&ep("10.2.2.2:443"), &cert("ise"), PinState::Active, None)
        .unwrap();
    store
        .add_pin(&ep("10.2.2.2:9"), &cert("old-ise"), PinState::Active, None)
        .unwrap();
    drop(store);
    // As the previous version stored them: the mapped form, at schema 3.
    let db = store_dir.join(tofu_core::store::DATABASE_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "UPDATE pin SET endpoint = '[::ffff:10.1.1.1]:8082' WHERE endpoint = '10.1.1.1:8082';
         UPDATE pin SET endpoint = '[::ffff:10.2.2.2]:443' WHERE endpoint = '10.2.2.2:9';
         ALTER TABLE pin DROP COLUMN match_kind; DROP TABLE awaited; DROP TABLE endpoint_mode;
         PRAGMA user_version = 3",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&store_dir).unwrap();
    assert_eq!(
        store.endpoint(&ep("10.1.1.1:8082")).unwrap().pins,
        [moved],
        "found under the endpoint's key"
    );
    assert_eq!(
        store.endpoint(&ep("10.2.2.2:443")).unwrap().pins,
        [kept],
        "the endpoint's own pin wins; the other is not merged into it"
    );
    let pins: Vec<String> = all_pins(&store)
        .iter()
        .map(|p| p.endpoint.to_string())
        .collect();
    assert_eq!(pins, ["10.1.1.1:8082", "10.2.2.2:443"]);
    let removed = audit(&store, Some(&ep("10.2.2.2:443")));
    assert!(
        removed
            .iter()
            .any(|e| e.event == AuditEvent::Removed && e.actor.ends_with(" upgrade")),
        "{removed:?}"
    );
    assert!(store.check().unwrap().is_sound());
}

#[test]
fn a_store_whose_schema_version_was_reset_is_refused() {
    assert_refused(
        |db| {
            let dir = db.parent().unwrap();
            drop(Store::open(dir).unwrap());
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("PRAGMA user_version = 0").unwrap();
        },
        |e| matches!(e, Error::Corrupt { .. }),
    );
}

#[test]
fn a_symlink_in_place_of_the_database_is_refused_and_its_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    // The target is a real store elsewhere: following the link would "work", which is exactly
    // what must not happen.
    let elsewhere = tmp.path().join("elsewhere");
    Store::open(&elsewhere)
        .unwrap()
        .add_pin(&ep("a:1"), &cert("a"), PinState::Active, None)
        .unwrap();
    let target = elsewhere.join(DATABASE_FILE);
    let target_before = snapshot(&elsewhere);

    let dir = tmp.path().join("store");
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o700);
    let link = dir.join(DATABASE_FILE);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for open in [Store::open, Store::open_existing] {
        match open(&dir).unwrap_err() {
            Error::Unusable { path, reason } => {
                assert_eq!(path, link);
                assert!(reason.contains("symbolic link"), "{reason}");
            }
            other => panic!("expected Unusable, got {other}"),
        }
    }
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        snapshot(&elsewhere),
        target_before,
        "the target is untouched"
    );
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        1,
        "only the link is there"
    );

    // A dangling link is refused too, and its target is not created.
    let dangling = tmp.path().join("dangling");
    fs::create_dir(&dangling).unwrap();
    set_mode(&dangling, 0o700);
    let nowhere = tmp.path().join("nowhere.sqlite3");
    std::os::unix::fs::symlink(&nowhere, dangling.join(DATABASE_FILE)).unwrap();
    let err = Store::open(&dangling).unwrap_err();
    assert!(matches!(err, Error::Unusable { .. }), "{err}");
    assert!(!nowhere.exists());
}

#[test]
fn a_symlink_in_place_of_the_write_ahead_log_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    drop(Store::open(&dir).unwrap());
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let wal = dir.join(format!("{DATABASE_FILE}-wal"));
    assert!(!wal.exists(), "a closed store has no WAL");
    std::os::unix::fs::symlink(&victim, &wal).unwrap();
    let err = Store::open(&dir).unwrap_err();
    assert!(
        matches!(err, Error::Unusable { ref path, .. } if *path == wal),
        "{err}"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn a_store_directory_others_can_write_is_refused() {
    for bad_mode in [0o770, 0o720, 0o702, 0o777] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        drop(Store::open(&dir).unwrap());
        set_mode(&dir, bad_mode);
        let before = snapshot(&dir);
        for open in [Store::open, Store::open_existing] {
            match open(&dir).unwrap_err() {
                Error::Unsafe { path, fix, .. } => {
                    assert_eq!(path, dir);
                    assert_eq!(fix, format!("chmod 700 {}", dir.display()));
                }
                other => panic!("mode {bad_mode:o}: expected Unusable, got {other}"),
            }
        }
        assert_eq!(snapshot(&dir), before);
        assert_eq!(
            mode(&dir),
            bad_mode,
            "the store does not fix permissions behind your back"
        );
    }
    // Readable by others is the owner's choice (a monitoring group may read the pins).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    drop(Store::open(&dir).unwrap());
    set_mode(&dir, 0o755);
    Store::open(&dir).expect("a world-readable store directory is allowed");
}

#[test]
fn a_file_or_directory_in_the_wrong_place_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, Error::Unusable { .. }), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"x");

    let dir = tmp.path().join("store");
    fs::create_dir_all(dir.join(DATABASE_FILE)).unwrap();
    set_mode(&dir, 0o700);
    let err = Store::open(&dir).unwrap_err();
    assert!(matches!(err, Error::Unusable { .. }), "{err}");
}

/// Set in the environment of the copy of this test binary that runs the read-only checks as
/// an unprivileged user: `<dir mode in octal>:<store directory>`.
const READ_ONLY_CHILD: &str = "TOFU_CORE_TEST_READ_ONLY_STORE";

/// The checks of [`a_read_only_store_can_be_read_but_not_written`], run by a user for whom
/// the store's permissions do restrict.
fn check_read_only_store(dir: &Path, dir_writable: bool) {
    let db = dir.join(DATABASE_FILE);
    let before = snapshot(dir);
    for open in [Store::open, Store::open_existing] {
        if !dir_writable {
            // SQLite cannot set up the shared index of the write-ahead log without writing
            // in the directory; an idle store there is read from its database file alone
            // (SQLite's immutable mode), and nothing is created.
            let store = open(dir).expect("an idle store in a read-only directory is read");
            assert!(store.is_read_only());
            assert_eq!(all_pins(&store).len(), 1);
            let err = store
                .add_pin(&ep("prime-pri:443"), &cert("new"), PinState::Active, None)
                .unwrap_err();
            assert!(
                matches!(err, Error::ReadOnly { ref path } if *path == db),
                "{err:?}"
            );
            drop(store);
            assert_eq!(snapshot(dir), before, "nothing was written");
            continue;
        }
        let store = open(dir).expect("a read-only store opens for reading");
        assert!(store.is_read_only());
        let e = ep("prime-pri:443");
        let record = store.endpoint(&e).expect("the pins can be read");
        assert_eq!(record.pins.len(), 1);
        assert_eq!(all_pins(&store).len(), 1);
        // (On a read-only file SQLite rebuilds its log index for every read, so the
        // generation may move without a change; it must still be readable.)
        store.generation().expect("the generation can be read");
        store.integrity_check().expect("integrity check reads");
        for err in [
            store
                .add_pin(&e, &cert("new"), PinState::Active, None)
                .unwrap_err(),
            store.remove_endpoint(&e).unwrap_err(),
            store.quarantine(&e, &cert("new")).unwrap_err(),
        ] {
            assert!(
                matches!(err, Error::ReadOnly { ref path } if *path == db),
                "{err:?}"
            );
            assert!(err.to_string().contains("nothing was changed"), "{err}");
        }
        assert_eq!(store.endpoint(&e).unwrap(), record);
        drop(store);
        // A reader may leave SQLite's empty log and index behind; the database is unchanged.
        let after = snapshot(dir);
        assert_eq!(after[0], before[0], "the database file is unchanged");
        for (name, len, _) in &after[1..] {
            assert!(
                name == &format!("{DATABASE_FILE}-shm")
                    || (name == &format!("{DATABASE_FILE}-wal") && *len == 0),
                "unexpected {name} ({len} bytes)"
            );
        }
    }
}

#[test]
fn a_read_only_store_can_be_read_but_not_written() {
    if let Some(arg) = std::env::var_os(READ_ONLY_CHILD) {
        let arg = arg.to_str().unwrap();
        let (mode, dir) = arg.split_once(':').unwrap();
        check_read_only_store(Path::new(dir), mode == "700");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let setpriv = Path::new("/usr/bin/setpriv");
    const NOBODY: u32 = 65534;
    let as_nobody = || {
        let mut cmd = std::process::Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        cmd
    };
    if is_root() {
        let can_switch = setpriv.exists()
            && as_nobody()
                .arg("--list")
                .output()
                .is_ok_and(|o| o.status.success());
        if !can_switch {
            println!(
                "note: running as root, where permissions do not restrict, and cannot run this \
                 test binary as `nobody`; the read-only assertions were skipped"
            );
            return;
        }
    }

    for dir_mode in [0o700, 0o500] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        Store::open(&dir)
            .unwrap()
            .add_pin(
                &ep("prime-pri:443"),
                &cert("prime-pri"),
                PinState::Active,
                None,
            )
            .unwrap();
        let db = dir.join(DATABASE_FILE);
        set_mode(&db, 0o400);
        set_mode(&dir, dir_mode);

        if !is_root() {
            check_read_only_store(&dir, dir_mode == 0o700);
            set_mode(&dir, 0o700);
            continue;
        }
        // Permissions do not restrict root: run the checks in a copy of this test binary as
        // the unprivileged user `nobody`, made the store's owner.
        set_mode(tmp.path(), 0o711);
        for path in [&dir, &db] {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let out = as_nobody()
            .args([
                "--exact",
                "a_read_only_store_can_be_read_but_not_written",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(READ_ONLY_CHILD, format!("{dir_mode:o}:{}", dir.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the read-only checks (directory mode {dir_mode:o}) failed as user nobody:\n\
             {stdout}\n{stderr}"
        );
        // Let the temporary directory be removed.
        set_mode(&dir, 0o700);
    }
}

/// Two certificates of one key: the second a renewal of the first (later notAfter).
fn renewal_pair(cn: &str) -> (CertificateDer<'static>, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = prime_params(cn);
    params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let old = params.self_signed(&key).unwrap().der().clone();
    params.not_after = rcgen::date_time_ymd(2031, 1, 1);
    let new = params.self_signed(&key).unwrap().der().clone();
    (old, new)
}

fn a_key_pin_keeps_its_kind_and_a_renewal_takes_the_new_certificate(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    let (old, new) = renewal_pair("prime-sec");
    let pinned = store
        .add_pin_matching(&e, &old, PinState::Active, Some("HA"), PinMatch::Key, true)
        .unwrap();
    assert_eq!(pinned.matches, PinMatch::Key);
    let reread = fixture.reopen().endpoint(&e).unwrap().pins;
    assert_eq!(reread.len(), 1);
    assert_eq!(reread[0], pinned);

    let renewed = store
        .renew_pin(&e, &fp(&old), &new)
        .unwrap()
        .expect("an active key pin of that key is renewed");
    assert_eq!(renewed.der, new);
    assert_eq!(
        (renewed.matches, renewed.label.as_deref(), renewed.source),
        (PinMatch::Key, Some("HA"), PinSource::Operator)
    );
    assert_eq!(renewed.pinned_at, pinned.pinned_at);
    assert!(renewed.first_seen.is_some());
    let reread = fixture.reopen().endpoint(&e).unwrap();
    assert_eq!(reread.pins.len(), 1, "one pin, holding the new certificate");
    assert_eq!(reread.pins[0], renewed);
    let log = audit(&store, Some(&e));
    let last = log.last().unwrap();
    assert_eq!(
        (last.event, last.fingerprint, last.previous),
        (AuditEvent::Renewed, Some(fp(&new)), Some(fp(&old)))
    );
    // The renewal happened once: the old pin is gone, so a second call writes nothing.
    assert_eq!(store.renew_pin(&e, &fp(&old), &new).unwrap(), None);
    assert!(store.check().unwrap().is_sound());
}

fn a_certificate_pin_is_never_renewed_by_a_certificate_with_its_key(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    let (old, new) = renewal_pair("prime-sec");
    let pinned = store.add_sole_pin(&e, &old, None).unwrap();
    assert_eq!(pinned.matches, PinMatch::Certificate);
    assert_eq!(store.renew_pin(&e, &fp(&old), &new).unwrap(), None);
    // Nor a key pin by another key.
    let other = ep("10.1.1.2:8082");
    store
        .add_pin_matching(&other, &old, PinState::Active, None, PinMatch::Key, true)
        .unwrap();
    assert_eq!(
        store.renew_pin(&other, &fp(&old), &cert("x")).unwrap(),
        None
    );
    assert_eq!(store.endpoint(&e).unwrap().pins, [pinned]);
    assert_eq!(store.endpoint(&other).unwrap().pins[0].der, old);
}

fn accepting_as_a_key_pin_and_importing_keep_the_kind(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    store.add_sole_pin(&e, &cert("old"), None).unwrap();
    let presented = cert("new");
    store.quarantine(&e, &presented).unwrap();
    let promoted = store
        .accept_quarantined_matching(&e, &fp(&presented), PinMatch::Key)
        .unwrap();
    assert_eq!(promoted.pin.matches, PinMatch::Key);
    let other = fixture.fresh();
    let copy = other.open();
    let mut pin = new_pin(&e, &presented, PinState::Active);
    pin.matches = PinMatch::Key;
    copy.import(&[pin], false).unwrap();
    assert_eq!(copy.endpoint(&e).unwrap().pins[0].matches, PinMatch::Key);
}

// ---------------------------------------------------------------------------------------------
// The contract, run against each backend

/// For each contract body `NAME`: the test `sqlite::NAME` and, with the feature `postgres`,
/// `postgres::NAME`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    if let Some(fixture) = super::Fixture::sqlite() {
                        super::$name(&fixture);
                    }
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(fixture) = super::Fixture::postgres() {
                        super::$name(&fixture);
                    }
                }
            )*
        }
    };
}

fn report_only_is_the_endpoints_setting_audited_listed_and_seen_by_other_handles(
    fixture: &Fixture,
) {
    let store = fixture.open().with_actor(Actor::named("rollout"));
    let other = fixture.open();
    let a = ep("10.1.1.1:8082");
    let b = ep("10.1.1.2:8082");
    store.add_sole_pin(&a, &cert("prime-pri"), None).unwrap();
    let before = fixture.settled_generation(&other);
    assert!(store.set_report_only(&a, true).unwrap());
    // A verifier holding the other handle rereads the endpoint: the change moved it.
    fixture.next_generation(&other, before);
    let seen = other
        .endpoint(&a)
        .unwrap()
        .report_only
        .expect("report-only");
    assert_eq!(seen.endpoint, a);
    assert!(seen.actor.starts_with("rollout (pid "), "{}", seen.actor);
    assert!(
        !store.set_report_only(&a, true).unwrap(),
        "already so: nothing written"
    );
    assert!(
        store.set_report_only(&b, true).unwrap(),
        "an endpoint with no pin too"
    );

    let mut listed = Vec::new();
    store
        .for_each_report_only(|m| {
            listed.push(m.endpoint.to_string());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(listed, ["10.1.1.1:8082", "10.1.1.2:8082"]);

    // The operator's setting, not something the endpoint holds: it outlives deletecert.
    store.remove_endpoint(&a).unwrap();
    assert!(fixture.reopen().endpoint(&a).unwrap().report_only.is_some());
    assert!(store.set_report_only(&a, false).unwrap());
    assert!(store.endpoint(&a).unwrap().report_only.is_none());
    let events: Vec<AuditEvent> = {
        let mut v = Vec::new();
        store
            .for_each_audit(Some(&a), |e| {
                v.push(e.event);
                ControlFlow::Continue(())
            })
            .unwrap();
        v
    };
    assert_eq!(
        events,
        [
            AuditEvent::Added,
            AuditEvent::ReportOnly,
            AuditEvent::Removed,
            AuditEvent::Enforced
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Awaited pins: pinned from a fingerprint alone, filled in by the first matching certificate

fn awaited_events(store: &Store, e: &Endpoint) -> Vec<(AuditEvent, Option<Fingerprint>, bool)> {
    audit(store, Some(e))
        .into_iter()
        .map(|a| (a.event, a.fingerprint, a.subject.is_some()))
        .collect()
}

fn an_awaited_pin_pins_the_endpoint_until_a_matching_certificate_fills_it_in(fixture: &Fixture) {
    let store = fixture.open();
    let reader = fixture.open();
    let e = ep("10.1.1.1:8082");
    let real = cert("prime-pri");
    let other = cert("prime-pri");
    let g0 = reader.generation().unwrap();
    let awaited = store
        .await_pin(
            &e,
            &fp(&real),
            PinMatch::Certificate,
            Some("from the admin"),
        )
        .unwrap();
    assert_eq!(awaited.fingerprint, fp(&real));
    assert_eq!(awaited.state, PinState::Active);
    assert_eq!(awaited.source, PinSource::Operator);
    // Another handle (another process, another machine) sees the change.
    fixture.next_generation(&reader, g0);
    let record = reader.endpoint(&e).unwrap();
    assert!(record.pins.is_empty());
    assert_eq!(record.awaited, std::slice::from_ref(&awaited));
    assert!(record.is_pinned());

    // Pinned: first use refuses, and twice the same fingerprint is refused.
    assert!(matches!(
        store.pin_first_use(&e, &other).unwrap(),
        FirstUse::AlreadyPinned(_)
    ));
    assert!(matches!(
        store.await_pin(&e, &fp(&real), PinMatch::Certificate, None),
        Err(Error::AlreadyAwaited { .. })
    ));
    // A certificate that is not the one awaited fills nothing.
    assert_eq!(store.fill_awaited(&e, &other).unwrap(), None);
    assert!(store.endpoint(&e).unwrap().pins.is_empty());

    let pin = store
        .fill_awaited(&e, &real)
        .unwrap()
        .expect("it is the one awaited");
    assert_eq!(pin.der, real);
    assert_eq!(
        pin.details.subject,
        "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri"
    );
    assert_eq!(pin.label.as_deref(), Some("from the admin"));
    assert_eq!(pin.pinned_at, awaited.pinned_at);
    assert_eq!(pin.times_seen, 1);
    let record = fixture.reopen().endpoint(&e).unwrap();
    assert_eq!(record.pins, std::slice::from_ref(&pin));
    assert!(record.awaited.is_empty());
    assert_eq!(
        awaited_events(&store, &e),
        [
            (AuditEvent::Awaited, Some(fp(&real)), false),
            (AuditEvent::Filled, Some(fp(&real)), true)
        ]
    );
    // Filled once: a second fill finds nothing awaited.
    assert_eq!(store.fill_awaited(&e, &real).unwrap(), None);
    let report = store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.pins, report.awaited), (1, 0));
}

fn an_awaited_key_pin_is_filled_by_any_certificate_of_the_key(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("prime-sec.example.com:443");
    let key = KeyPair::generate().unwrap();
    let der = prime_params("prime-sec")
        .self_signed(&key)
        .unwrap()
        .der()
        .clone();
    let spki = Fingerprint::of(&key.subject_public_key_info());
    assert_eq!(
        CertificateDetails::from_der(&der).unwrap().spki_fingerprint,
        spki
    );
    store.await_pin(&e, &spki, PinMatch::Key, None).unwrap();
    // A certificate pin's fingerprint is not the key's: it does not meet a key pin.
    assert_eq!(store.fill_awaited(&e, &cert("prime-sec")).unwrap(), None);
    let pin = store
        .fill_awaited(&e, &der)
        .unwrap()
        .expect("the key is the one awaited");
    assert_eq!(pin.matches, PinMatch::Key);
    assert_eq!(pin.details.spki_fingerprint, spki);
    assert!(store.check().unwrap().is_sound());
}

fn awaited_pins_are_listed_in_endpoint_order_and_removed_with_their_endpoint(fixture: &Fixture) {
    let store = fixture.open();
    let (a, b) = (ep("10.1.1.9:443"), ep("10.1.1.1:8082"));
    let (fa, fb, fb2) = (fp(&cert("a")), fp(&cert("b")), fp(&cert("b")));
    store
        .await_pin(&a, &fa, PinMatch::Certificate, None)
        .unwrap();
    store.await_pin(&b, &fb, PinMatch::Key, None).unwrap();
    store
        .await_pin_from(
            &b,
            &fb2,
            PinMatch::Certificate,
            PinState::Next,
            false,
            None,
            PinSource::Accepted,
        )
        .unwrap();
    let mut listed = Vec::new();
    store
        .for_each_awaited(|x| {
            listed.push((x.endpoint.to_string(), x.fingerprint, x.state));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        listed,
        [
            (b.to_string(), fb, PinState::Active),
            (b.to_string(), fb2, PinState::Next),
            (a.to_string(), fa, PinState::Active)
        ]
    );
    let report = store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.awaited, 3);

    // One by its fingerprint, then the rest with the endpoint.
    assert_eq!(
        store
            .remove_awaited(&b, &fb)
            .unwrap()
            .map(|x| x.fingerprint),
        Some(fb)
    );
    assert_eq!(store.remove_awaited(&b, &fb).unwrap(), None);
    let removed = store.remove_endpoint(&b).unwrap();
    assert_eq!(removed.awaited.len(), 1);
    assert!(!store.endpoint(&b).unwrap().is_pinned());
    // Unpinned again: first use pins.
    assert!(matches!(
        store.pin_first_use(&b, &cert("b")).unwrap(),
        FirstUse::Pinned(_)
    ));
    let events: Vec<AuditEvent> = audit(&store, Some(&b))
        .into_iter()
        .map(|x| x.event)
        .collect();
    assert_eq!(
        events,
        [
            AuditEvent::Awaited,
            AuditEvent::Awaited,
            AuditEvent::Removed,
            AuditEvent::Removed,
            AuditEvent::Pinned
        ]
    );
}

fn pinning_an_awaited_certificate_another_way_settles_the_awaited_pin(fixture: &Fixture) {
    let store = fixture.open();
    let e = ep("10.1.1.1:8082");
    let (a, b) = (cert("prime-pri"), cert("prime-pri"));
    store
        .await_pin(&e, &fp(&a), PinMatch::Certificate, None)
        .unwrap();
    store
        .await_pin(&e, &fp(&b), PinMatch::Certificate, None)
        .unwrap();
    // addcert of the certificate's file.
    store.add_pin(&e, &a, PinState::Active, None).unwrap();
    // accept of it once quarantined.
    store.quarantine(&e, &b).unwrap();
    store.accept_quarantined(&e, &fp(&b)).unwrap();
    let record = store.endpoint(&e).unwrap();
    assert!(record.awaited.is_empty(), "{:?}", record.awaited);
    assert_eq!(record.pins.len(), 1);
    let report = store.check().unwrap();
    assert!(report.is_sound(), "{report:?}");
}

fn a_large_import_sees_an_endpoint_pinned_only_by_an_awaited_pin_or_in_report_only_mode(
    fixture: &Fixture,
) {
    // Enough endpoints for a backend to load them together (and SQLite to look up first
    // which of them hold anything): an endpoint whose only row is an awaited pin is pinned,
    // and one whose only row is its mode keeps it.
    let store = fixture.open();
    let awaited_at = ep("awaited.example:443");
    let mode_at = ep("mode.example:443");
    let expected = cert("expected");
    store
        .await_pin(&awaited_at, &fp(&expected), PinMatch::Certificate, None)
        .unwrap();
    store.set_report_only(&mode_at, true).unwrap();
    let other = cert("other");
    let mut file: Vec<NewPin> = (0..40)
        .map(|i| {
            new_pin(
                &ep(&format!("h{i:02}.example:443")),
                &other,
                PinState::Active,
            )
        })
        .collect();
    file.push(new_pin(&awaited_at, &other, PinState::Active));
    match store.import(&file, false).unwrap_err() {
        Error::ImportConflict { endpoint, .. } => assert_eq!(endpoint, awaited_at),
        other => panic!("expected ImportConflict, got {other}"),
    }
    file.pop();
    file.push(new_pin(&awaited_at, &expected, PinState::Active));
    file.push(new_pin(&mode_at, &other, PinState::Active));
    store.import(&file, false).unwrap();
    let record = store.endpoint(&awaited_at).unwrap();
    assert!(
        record.awaited.is_empty(),
        "the import settled the awaited pin"
    );
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, expected);
    assert!(store.endpoint(&mode_at).unwrap().report_only.is_some());
}

contract! {
    a_large_import_sees_an_endpoint_pinned_only_by_an_awaited_pin_or_in_report_only_mode,
    pinning_an_awaited_certificate_another_way_settles_the_awaited_pin,
    an_awaited_pin_pins_the_endpoint_until_a_matching_certificate_fills_it_in,
    an_awaited_key_pin_is_filled_by_any_certificate_of_the_key,
    awaited_pins_are_listed_in_endpoint_order_and_removed_with_their_endpoint,
    report_only_is_the_endpoints_setting_audited_listed_and_seen_by_other_handles,
    the_audit_log_cannot_be_rewritten_even_with_raw_sql,
    every_field_of_a_pin_survives_the_store_and_a_reopen,
    a_certificate_without_sans_stores_an_empty_list_not_one_empty_name,
    what_is_not_a_certificate_is_refused_and_nothing_is_written,
    first_use_pins_once_and_later_callers_learn_the_winner,
    threads_racing_to_pin_one_endpoint_produce_exactly_one_pin,
    an_ha_pair_keeps_both_active_pins,
    promoting_a_staged_pin_retires_the_active_pins,
    record_seen_counts_handshakes_and_ignores_removed_pins,
    quarantine_counts_repeats_and_accepting_by_fingerprint_replaces_the_pin,
    a_certificate_pinned_any_way_leaves_quarantine,
    accepting_a_fingerprint_that_is_not_quarantined_changes_nothing,
    quarantine_keeps_the_first_certificates_since_the_last_change_and_the_latest_ones,
    replace_pin_swaps_only_when_the_expected_pin_is_current,
    remove_endpoint_returns_what_it_removed_and_nothing_the_second_time,
    remove_pin_removes_one_pin_and_returns_none_when_there_is_none,
    the_audit_log_records_every_kind_of_change_with_who_made_it,
    the_default_actor_names_the_executable,
    import_is_all_or_nothing,
    a_store_round_trips_through_json_lines_with_its_history,
    a_bad_line_deep_in_a_json_lines_file_leaves_the_store_unchanged,
    import_keeps_pins_of_one_endpoint_together,
    import_adds_a_staged_successor_beside_the_active_pin_it_already_has,
    import_with_replace_swaps_an_endpoints_pins_for_the_files,
    an_import_of_many_endpoints_treats_each_as_if_imported_alone,
    for_each_pin_streams_in_endpoint_order_and_can_stop_early,
    a_listing_stopped_early_in_a_large_store_leaves_the_handle_working,
    many_threads_opening_a_new_store_at_once_all_get_the_same_store,
    generation_moves_when_another_handle_writes_and_only_then,
    integrity_check_passes_on_a_sound_store,
    a_hostile_name_with_a_newline_stays_one_name_through_the_store,
    a_key_pin_keeps_its_kind_and_a_renewal_takes_the_new_certificate,
    a_certificate_pin_is_never_renewed_by_a_certificate_with_its_key,
    accepting_as_a_key_pin_and_importing_keep_the_kind,
}

#[test]
fn a_directory_location_opens_the_sqlite_store_and_says_where_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let location = tofu_core::StoreLocation::Directory(dir.clone());
    let err = Store::open_existing_location(&location).expect_err("nothing there yet");
    assert!(matches!(err, Error::StoreNotFound { .. }), "{err:?}");
    let store = Store::open_location(&location).unwrap();
    assert_eq!(store.location().to_string(), dir.display().to_string());
    assert_eq!(store.dir(), Some(dir.as_path()));
}

#[cfg(not(feature = "postgres"))]
#[test]
fn a_postgres_location_is_refused_by_a_build_without_the_feature() {
    let location = tofu_core::StoreLocation::parse("postgres://db.example/tofu").unwrap();
    let err = Store::open_location(&location).expect_err("no PostgreSQL in this build");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("build with the cargo feature `postgres`"),
        "{err}"
    );
}
