//! The `tracing` events (feature `tracing`) over real loopback handshakes: each decision a
//! service logs comes with the documented target, level and field names (`tofu_core::events`).

mod tls;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tofu_core::{Endpoint, Fingerprint, Policy, Store, TofuClientConfigs};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event: its target, level and fields as text.
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn get(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
}

/// Keeps every event it is given.
#[derive(Default, Clone)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    next_span: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    /// The events with outcome `outcome` since the last call, forgetting all of them.
    fn take(&self, outcome: &str) -> Vec<Captured> {
        let all = std::mem::take(&mut *self.events.lock().unwrap());
        for e in &all {
            assert_eq!(e.target, "tofu_core", "{e:?}");
            assert!(e.fields.contains_key("outcome"), "{e:?}");
            assert!(e.fields.contains_key("endpoint"), "{e:?}");
        }
        all.into_iter()
            .filter(|e| e.fields.get("outcome").map(String::as_str) == Some(outcome))
            .collect()
    }
}

/// A handshake with a verifier of its own (a new `TofuClientConfigs`), so nothing is resumed
/// and every connection is decided afresh.
fn handshake(
    store: &Arc<Store>,
    policy: Policy,
    server: &tls::Server,
) -> Result<(), rustls::Error> {
    let endpoint = Endpoint::new("127.0.0.1", server.addr.port()).unwrap();
    let configs = TofuClientConfigs::new(store.clone(), policy);
    let config = configs.client_config(&endpoint).unwrap();
    tls::connect(&config, server.addr, &endpoint.server_name())
        .map(drop)
        .map_err(|e| tls::client_error(&e))
}

#[test]
fn decisions_are_events_with_the_documented_fields() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("tofu")).unwrap());
    let first = tls::identity("first", tls::KeyKind::Ecdsa);
    let second = tls::identity("second", tls::KeyKind::Ed25519);
    let (fp1, fp2) = (Fingerprint::of(&first.cert), Fingerprint::of(&second.cert));
    let server = tls::Server::start(vec![first.cert.clone()], &first.key, tls::Version::Tls13);
    let endpoint = format!("127.0.0.1:{}", server.addr.port());

    // First use: the pins are read, then the certificate is pinned.
    handshake(&store, Policy::trust_on_first_use(), &server).unwrap();
    let reloaded = capture.events.lock().unwrap().clone();
    let pinned = capture.take("pinned");
    assert_eq!(pinned.len(), 1, "{pinned:?}");
    assert_eq!(pinned[0].level, Level::INFO);
    assert_eq!(pinned[0].get("endpoint"), endpoint);
    assert_eq!(pinned[0].get("fingerprint"), fp1.to_string());
    let reloaded: Vec<_> = reloaded
        .iter()
        .filter(|e| e.get("outcome") == "store_reloaded")
        .collect();
    assert!(!reloaded.is_empty());
    assert_eq!(reloaded[0].level, Level::DEBUG);
    assert!(
        reloaded[0].get("generation").parse::<u64>().is_ok(),
        "{reloaded:?}"
    );

    // The same certificate again: a match.
    handshake(&store, Policy::strict(), &server).unwrap();
    let matched = capture.take("matched");
    assert_eq!(matched.len(), 1, "{matched:?}");
    assert_eq!(matched[0].level, Level::DEBUG);
    assert_eq!(matched[0].get("fingerprint"), fp1.to_string());

    // Another certificate: refused (naming both) and quarantined.
    server.set_identity(&second);
    handshake(&store, Policy::trust_on_first_use(), &server).unwrap_err();
    let all = capture.events.lock().unwrap().clone();
    let refused = capture.take("refused_mismatch");
    assert_eq!(refused.len(), 1, "{all:?}");
    assert_eq!(refused[0].level, Level::WARN);
    assert_eq!(refused[0].get("endpoint"), endpoint);
    assert_eq!(refused[0].get("fingerprint"), fp2.to_string());
    assert_eq!(refused[0].get("pinned"), fp1.to_string());
    let quarantined: Vec<_> = all
        .iter()
        .filter(|e| e.get("outcome") == "quarantined")
        .collect();
    assert_eq!(quarantined.len(), 1, "{all:?}");
    assert_eq!(quarantined[0].get("fingerprint"), fp2.to_string());
    assert_eq!(quarantined[0].level, Level::WARN);

    // An endpoint with no pin under a strict policy.
    let other = tls::Server::start(vec![second.cert.clone()], &second.key, tls::Version::Tls12);
    handshake(&store, Policy::strict(), &other).unwrap_err();
    let refused = capture.take("refused_not_pinned");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused[0].get("endpoint"),
        format!("127.0.0.1:{}", other.addr.port())
    );
    assert_eq!(refused[0].get("fingerprint"), fp2.to_string());
    assert_eq!(refused[0].get("pinned"), "");

    // A pin from a fingerprint: filled in by the first handshake that presents it.
    let third = tls::identity("third", tls::KeyKind::Ecdsa);
    let fp3 = Fingerprint::of(&third.cert);
    let awaited = tls::Server::start(vec![third.cert.clone()], &third.key, tls::Version::Tls13);
    let awaited_ep = Endpoint::new("127.0.0.1", awaited.addr.port()).unwrap();
    store
        .await_pin(
            &awaited_ep,
            &fp3,
            tofu_core::pin::PinMatch::Certificate,
            None,
        )
        .unwrap();
    handshake(&store, Policy::strict(), &awaited).unwrap();
    let filled = capture.take("filled");
    assert_eq!(filled.len(), 1, "{filled:?}");
    assert_eq!(filled[0].level, Level::INFO);
    assert_eq!(filled[0].get("endpoint"), awaited_ep.to_string());
    assert_eq!(filled[0].get("fingerprint"), fp3.to_string());

    // The store's files are overwritten under a running service: the handshake fails closed.
    for entry in std::fs::read_dir(dir.path().join("tofu")).unwrap() {
        let path = entry.unwrap().path();
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        std::fs::write(&path, vec![0x5a; len.max(4096)]).unwrap();
    }
    handshake(&store, Policy::strict(), &server).unwrap_err();
    let failed = capture.take("store_failed");
    assert!(!failed.is_empty(), "no store_failed event");
    assert_eq!(failed[0].level, Level::ERROR);
    assert_eq!(failed[0].get("endpoint"), endpoint);
    assert!(!failed[0].get("error").is_empty());
}
