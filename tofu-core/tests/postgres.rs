//! The PostgreSQL backend against a real server (`TOFU_TEST_POSTGRES`, a superuser URI such
//! as `.ci/postgres start` prints). Each test makes its own database. Without the variable
//! the tests say they skipped, unless `TOFU_TEST_POSTGRES_REQUIRED=1`.
#![cfg(feature = "postgres")]

mod pg_support;
mod tls;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use tofu_core::__postgres_testing::Handle;
use tofu_core::{location::PostgresLocation, Endpoint, Error};

fn server() -> Option<String> {
    match std::env::var("TOFU_TEST_POSTGRES") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            if std::env::var("TOFU_TEST_POSTGRES_REQUIRED").as_deref() == Ok("1") {
                panic!("TOFU_TEST_POSTGRES is not set and TOFU_TEST_POSTGRES_REQUIRED=1");
            }
            eprintln!("skipped: TOFU_TEST_POSTGRES is not set");
            None
        }
    }
}

/// `uri` with its database replaced by `db`.
fn with_db(uri: &str, db: &str) -> String {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let scheme_end = base.find("://").unwrap() + 3;
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{db}{q}", &base[..path_start])
}

fn with_param(uri: &str, param: &str) -> String {
    if uri.contains('?') {
        format!("{uri}&{param}")
    } else {
        format!("{uri}?{param}")
    }
}

fn psql(uri: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            uri,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A fresh database on the server: its URI.
fn fresh_db(server: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "tofu_t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    psql(server, &format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    psql(server, &format!("CREATE DATABASE {name}")).unwrap();
    with_db(server, &name)
}

fn loc(uri: &str) -> PostgresLocation {
    uri.parse().expect("a valid location")
}

fn cert(cn: &str) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
    params.self_signed(&key).unwrap().der().clone()
}

fn endpoint(text: &str) -> Endpoint {
    text.parse().unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

#[test]
fn twenty_openers_of_a_fresh_database_create_the_schema_once_and_none_fails() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (uri, barrier) = (uri.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Handle::open(&loc(&uri), true).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().expect("every opener succeeds");
    }
    assert_eq!(
        psql(&uri, "SELECT count(*) FROM meta WHERE key = 'created_by'").unwrap(),
        "1"
    );
    assert_eq!(
        psql(&uri, "SELECT value FROM meta WHERE key = 'schema_version'").unwrap(),
        "5"
    );
}

#[test]
fn twenty_processes_opening_a_fresh_database_create_the_schema_once() {
    let Some(server) = server() else { return };
    if let Ok(uri) = std::env::var("TOFU_PG_CHILD_OPEN") {
        Handle::open(&loc(&uri), true).expect("the child opens the store");
        return;
    }
    let uri = fresh_db(&server);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "twenty_processes_opening_a_fresh_database_create_the_schema_once",
                    "--nocapture",
                ])
                .env("TOFU_PG_CHILD_OPEN", &uri)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(
            c.wait().unwrap().success(),
            "a process failed to open the store"
        );
    }
    assert_eq!(
        psql(&uri, "SELECT count(*) FROM meta WHERE key = 'created_by'").unwrap(),
        "1"
    );
}

#[test]
fn a_database_without_a_store_is_not_created_without_create() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let err = Handle::open(&loc(&uri), false).unwrap_err();
    assert!(matches!(err, Error::DatabaseSchema { .. }), "{err}");
    assert_eq!(
        psql(&uri, "SELECT to_regclass('meta') IS NULL").unwrap(),
        "t"
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    drop(Handle::open(&loc(&uri), true).unwrap());
    psql(
        &uri,
        "UPDATE meta SET value = '7' WHERE key = 'schema_version'",
    )
    .unwrap();
    let before = psql(
        &uri,
        "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM meta",
    )
    .unwrap();
    let err = Handle::open(&loc(&uri), true).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DatabaseSchema { .. }), "{text}");
    assert!(
        text.contains("version 7") && text.contains("newer"),
        "{text}"
    );
    let after = psql(
        &uri,
        "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM meta",
    )
    .unwrap();
    assert_eq!(before, after);
}

#[test]
fn the_database_refuses_to_change_or_delete_the_audit_log() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    assert!(store
        .pin_first_use(&endpoint("10.1.1.1:8082"), &cert("a"))
        .unwrap());
    assert_eq!(store.audit(None).unwrap().len(), 1);
    for sql in [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = psql(&uri, sql).unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(psql(&uri, "SELECT count(*) FROM audit").unwrap(), "1");
    assert!(store.check().unwrap().is_sound());
}

#[test]
fn ten_threads_racing_a_first_use_pin_exactly_once() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    for round in 0..5 {
        let e = endpoint(&format!("10.2.0.{round}:443"));
        let barrier = Arc::new(Barrier::new(10));
        let threads: Vec<_> = (0..10)
            .map(|i| {
                let (uri, barrier, e) = (uri.clone(), barrier.clone(), e.clone());
                // Each thread is its own machine: its own backend, connections and runtime.
                let store = Handle::open(&loc(&uri), true).unwrap();
                std::thread::spawn(move || {
                    let c = cert(&format!("peer{i}"));
                    barrier.wait();
                    store.pin_first_use(&e, &c).unwrap()
                })
            })
            .collect();
        let won = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&w| w)
            .count();
        assert_eq!(won, 1, "round {round}");
        assert_eq!(
            psql(
                &uri,
                &format!("SELECT count(*) FROM pin WHERE endpoint = '{e}'")
            )
            .unwrap(),
            "1"
        );
    }
}

#[test]
fn first_uses_waiting_on_an_endpoint_that_is_being_deleted_still_pin_it_once() {
    // Two first uses queue behind a `deletecert` that holds the endpoint's row; the delete
    // commits and the row they waited for is gone. Each must still be serialized with the
    // other: a lock taken on a row that no longer exists is no lock.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    for round in 0..3 {
        let e = endpoint(&format!("10.2.1.{round}:443"));
        let setup = Handle::open(&loc(&uri), true).unwrap();
        assert!(setup.pin_first_use(&e, &cert("old")).unwrap());
        let deleter = std::thread::spawn({
            let (store, e) = (setup, e.clone());
            move || store.remove_endpoint_slowly(&e, Duration::from_millis(800))
        });
        std::thread::sleep(Duration::from_millis(200));
        let racers: Vec<_> = (0..2)
            .map(|i| {
                let store = Handle::open(&loc(&uri), true).unwrap();
                let e = e.clone();
                std::thread::spawn(move || store.pin_first_use(&e, &cert(&format!("new{i}"))))
            })
            .collect();
        deleter.join().unwrap().unwrap();
        let won = racers
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .filter(|&w| w)
            .count();
        let pins = psql(
            &uri,
            &format!("SELECT count(*) FROM pin WHERE endpoint = '{e}'"),
        )
        .unwrap();
        assert_eq!((won, pins.as_str()), (1, "1"), "round {round}");
    }
}

#[test]
fn streams_are_in_byte_order_and_round_trip_what_was_written() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    let names = [
        "b.example:443",
        "a-b.example:443",
        "a.example:443",
        "10.0.0.1:443",
    ];
    for n in names {
        store.pin_first_use(&endpoint(n), &cert(n)).unwrap();
    }
    let listed: Vec<String> = store
        .pins(100)
        .unwrap()
        .iter()
        .map(|p| p.endpoint.to_string())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort(); // byte order, as SQLite's
    assert_eq!(listed, sorted);
    assert_eq!(store.pins(2).unwrap().len(), 2, "a stream stops when asked");
    let e = endpoint("a.example:443");
    store.quarantine(&e, &cert("intruder")).unwrap();
    let (pins, quarantined, epoch) = store.load(&e).unwrap();
    assert_eq!((pins.len(), quarantined.len(), epoch), (1, 1, 1));
    assert_eq!(store.quarantined().unwrap().len(), 1);
    assert_eq!(store.audit(Some(&e)).unwrap().len(), 1);
    store.remove_endpoint(&e).unwrap();
    assert_eq!(store.load(&e).unwrap().0.len(), 0);
    let report = store.check().unwrap();
    assert!(report.is_sound(), "{:?}", report.findings);
    assert_eq!(report.pins, 3);
}

#[test]
fn check_reports_a_pin_whose_details_are_not_its_certificates() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.1.1.1:1"), &cert("x"))
        .unwrap();
    psql(&uri, "UPDATE pin SET subject = 'CN=forged'").unwrap();
    let report = store.check().unwrap();
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    assert_eq!(report.findings[0].kind, "pin");
}

#[test]
fn check_reports_an_awaited_row_that_a_pin_already_holds_and_one_that_does_not_read() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.1.1.1:1"), &cert("x"))
        .unwrap();
    assert!(store.check().unwrap().is_sound());
    // Past the library: an awaited row its fill should have deleted, and one of no source.
    psql(
        &uri,
        "INSERT INTO awaited (endpoint, fingerprint, match_kind, state, pinned_at, source) \
         SELECT endpoint, fingerprint, 'certificate', 'active', 0, 'operator' FROM pin; \
         INSERT INTO awaited (endpoint, fingerprint, match_kind, state, pinned_at, source) \
         VALUES ('10.1.1.2:1', decode(repeat('11', 32), 'hex'), 'key', 'next', 0, 'nobody')",
    )
    .unwrap();
    let report = store.check().unwrap();
    let awaited: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.kind == "awaited")
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(awaited.len(), 2, "{:?}", report.findings);
    assert!(
        awaited
            .iter()
            .any(|d| d.contains("which a pin of the endpoint already holds")),
        "{awaited:?}"
    );
    assert!(awaited.iter().any(|d| d.contains("nobody")), "{awaited:?}");
    assert_eq!(report.awaited, 2);
}

#[test]
fn the_generation_moves_after_a_change_through_another_connection_and_after_a_reconnect() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(
        &loc(&with_param(&uri, "application_name=tofu-listen-test")),
        true,
    )
    .unwrap();
    let g0 = store.generation().unwrap();
    let start = Instant::now();
    psql(
        &uri,
        "INSERT INTO quarantine (endpoint, fingerprint, der, first_seen, last_seen, times_seen) \
                VALUES ('x:1', decode(repeat('00', 32), 'hex'), '\\x00', 0, 0, 1)",
    )
    .unwrap();
    let psql_done = start.elapsed();
    let seen = wait_for("a notification", Duration::from_secs(5), || {
        store.generation().unwrap() != g0
    });
    eprintln!("notify latency: {seen:?} after the change began ({psql_done:?} of it in psql)");

    // The listening connection killed: on reconnection the generation moves, whether or
    // not a change was notified meanwhile.
    let g1 = store.generation().unwrap();
    let killed = psql(
        &uri,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'tofu-listen-test' AND (query LIKE '%LISTEN%' OR \
         query LIKE '%pg_notify%' OR query = 'SELECT last_value FROM generation')",
    )
    .unwrap();
    assert_ne!(killed, "0", "the listener's connection was found");
    psql(&uri, "DELETE FROM quarantine").unwrap();
    let seen = wait_for("a reconnection", Duration::from_secs(10), || {
        store.generation().is_ok_and(|g| g != g1)
    });
    eprintln!("generation moved {seen:?} after the listener was killed and a change made");
    // And notifications work again on the new connection.
    let g2 = wait_for_settled(&store);
    psql(&uri, "DELETE FROM quarantine").unwrap();
    wait_for(
        "a notification after reconnecting",
        Duration::from_secs(5),
        || store.generation().unwrap() != g2,
    );
}

/// The generation once it stopped moving for a moment (a reconnection may still bump it).
fn wait_for_settled(store: &Handle) -> u64 {
    let mut g = store.generation().unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = store.generation().unwrap();
        if now == g {
            return g;
        }
        g = now;
    }
}

#[test]
fn an_unreachable_server_is_an_error_within_connect_timeout_naming_the_database() {
    let _ = server(); // the skip message when unset; this test needs no server
    let dir = tempfile::tempdir().unwrap();
    let uri = format!(
        "postgresql://tofu:s3cret-pw@/pins?host={}&port=5999&connect_timeout=2",
        dir.path().display()
    );
    let start = Instant::now();
    let err = Handle::open(&loc(&uri), true).unwrap_err();
    let took = start.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(text.contains("database pins as tofu"), "{text}");
    assert!(
        !text.contains("s3cret-pw") && !format!("{err:?}").contains("s3cret-pw"),
        "{text}"
    );

    // A server that accepts the connection and never answers (a TCP listener): bounded too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let uri = format!(
        "postgresql://tofu:s3cret-pw@127.0.0.1:{port}/pins?connect_timeout=1&sslmode=disable"
    );
    let start = Instant::now();
    let err = Handle::open(&loc(&uri), true).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    drop(listener);
}

#[tokio::test]
async fn it_works_from_inside_a_tokio_runtime_and_from_a_plain_thread() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    assert!(store
        .pin_first_use(&endpoint("10.9.9.9:1"), &cert("t"))
        .unwrap());
    assert_eq!(store.pins(10).unwrap().len(), 1);
    let store = Arc::new(store);
    let s = store.clone();
    std::thread::spawn(move || {
        assert!(!s
            .pin_first_use(&endpoint("10.9.9.9:1"), &cert("u"))
            .unwrap());
        s.generation().unwrap();
    })
    .join()
    .unwrap();
    // Dropped inside the runtime: must not panic.
    drop(store);
}

#[test]
fn a_writer_with_a_hostile_search_path_still_moves_the_stores_own_generation() {
    // The trigger runs in the writer's session: an unqualified nextval('generation') there
    // drew from whatever `generation` the writer's search_path found first, and the
    // listeners, who read the store's own sequence, never saw the change.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.8.0.1:1"), &cert("a"))
        .unwrap();
    psql(
        &uri,
        "CREATE SCHEMA decoy; CREATE SEQUENCE decoy.generation START 1000000",
    )
    .unwrap();
    let before = psql(&uri, "SELECT last_value FROM public.generation").unwrap();
    psql(
        &uri,
        "SET search_path = decoy, public; UPDATE pin SET times_seen = times_seen + 1",
    )
    .unwrap();
    let after = psql(&uri, "SELECT last_value FROM public.generation").unwrap();
    assert_ne!(before, after, "the store's own sequence moved");
    assert_eq!(
        psql(&uri, "SELECT is_called FROM decoy.generation").unwrap(),
        "f",
        "the decoy was never drawn from"
    );
}

#[test]
fn objects_earlier_in_the_search_path_do_not_stand_in_for_the_stores_tables() {
    // A role whose search_path puts another schema first (where someone made a `pin` table
    // of their own) still reads and writes the store's tables.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let e = endpoint("10.8.1.1:443");
    Handle::open(&loc(&uri), true)
        .unwrap()
        .pin_first_use(&e, &cert("genuine"))
        .unwrap();
    psql(
        &uri,
        "CREATE SCHEMA shadow; CREATE TABLE shadow.pin (LIKE public.pin INCLUDING ALL); \
         INSERT INTO shadow.pin (endpoint, state, fingerprint, spki_fingerprint, der, subject, \
         issuer, sans, not_before, not_after, pinned_at, times_seen, source) \
         SELECT endpoint, state, fingerprint, spki_fingerprint, der, 'CN=forged', issuer, sans, \
         not_before, not_after, pinned_at, times_seen, source FROM public.pin",
    )
    .unwrap();
    let shadowed = with_param(&uri, "options=-csearch_path%3Dshadow,public");
    let store = Handle::open(&loc(&shadowed), true).unwrap();
    let (pins, _, _) = store.load(&e).unwrap();
    assert_eq!(pins.len(), 1);
    assert_ne!(pins[0].details.subject, "CN=forged");
    store.remove_endpoint(&e).unwrap();
    assert_eq!(psql(&uri, "SELECT count(*) FROM public.pin").unwrap(), "0");
    assert_eq!(psql(&uri, "SELECT count(*) FROM shadow.pin").unwrap(), "1");
}

#[test]
fn a_foreign_notify_on_the_channel_makes_no_reload() {
    // Anyone who may connect can NOTIFY the channel; only a value the store's sequence drew,
    // counted once, moves the generation.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.8.2.1:1"), &cert("a"))
        .unwrap();
    let g = wait_for_settled(&store);
    let drawn = psql(&uri, "SELECT last_value FROM generation").unwrap();
    for payload in ["999999999", "not a number", "", &drawn, &drawn] {
        psql(&uri, &format!("NOTIFY tofu_certs_changed, '{payload}'")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        store.generation().unwrap(),
        g,
        "no reload for a forged notification"
    );
    // A genuine change still does.
    psql(&uri, "UPDATE pin SET times_seen = times_seen + 1").unwrap();
    wait_for("the genuine change", Duration::from_secs(5), || {
        store.generation().unwrap() != g
    });
}

#[test]
fn a_change_under_session_replication_role_replica_is_still_noticed() {
    // Logical replication applies changes with session_replication_role = replica, where a
    // trigger that is not ENABLE ALWAYS does not fire: no notification, no sequence moved.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.8.3.1:1"), &cert("a"))
        .unwrap();
    let g = wait_for_settled(&store);
    psql(
        &uri,
        "SET session_replication_role = replica; UPDATE pin SET times_seen = times_seen + 1",
    )
    .unwrap();
    wait_for("the replicated change", Duration::from_secs(5), || {
        store.generation().unwrap() != g
    });
    assert!(
        psql(
            &uri,
            "SET session_replication_role = replica; DELETE FROM audit"
        )
        .is_err(),
        "the audit log stays append-only there too"
    );
}

#[test]
fn disabled_triggers_make_the_store_fail_closed_and_enabling_them_again_recovers() {
    // With its notify trigger disabled, other machines' changes are silent: a service would
    // go on trusting removed pins. The heartbeat sees it; opening refuses it.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&with_param(&uri, "staleness=0")), true).unwrap();
    store
        .pin_first_use(&endpoint("10.8.4.1:1"), &cert("a"))
        .unwrap();
    psql(&uri, "ALTER TABLE pin DISABLE TRIGGER pin_changed").unwrap();
    wait_for("failing closed", Duration::from_secs(10), || {
        store.generation().is_err()
    });
    let err = store.generation().unwrap_err();
    assert!(matches!(err, Error::Stale { .. }), "{err}");
    assert!(err.to_string().contains("pin_changed"), "{err}");
    let err = Handle::open(&loc(&uri), true).unwrap_err();
    assert!(matches!(err, Error::DatabaseSchema { .. }), "{err}");
    assert!(err.to_string().contains("ENABLE ALWAYS TRIGGER"), "{err}");
    psql(&uri, "ALTER TABLE pin ENABLE ALWAYS TRIGGER pin_changed").unwrap();
    wait_for("recovery", Duration::from_secs(10), || {
        store.generation().is_ok()
    });
    Handle::open(&loc(&uri), true).unwrap();
}

#[test]
fn a_version_1_schema_is_upgraded_by_its_owner_and_another_role_is_told_to_ask_it() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    Handle::open(&loc(&uri), true).unwrap();
    // Back to what version 1 was: triggers enabled the ordinary way, an unqualified body.
    psql(
        &uri,
        "ALTER TABLE pin ENABLE TRIGGER pin_changed; \
         ALTER TABLE quarantine ENABLE TRIGGER quarantine_changed; \
         ALTER TABLE audit ENABLE TRIGGER audit_is_append_only; \
         ALTER TABLE audit ENABLE TRIGGER audit_is_append_only_truncate; \
         CREATE OR REPLACE FUNCTION tofu_changed() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_notify('tofu_certs_changed', nextval('generation')::text); \
         RETURN NULL; END $$; \
         ALTER TABLE pin DROP COLUMN match_kind; DROP TABLE awaited; DROP TABLE endpoint_mode; \
         UPDATE meta SET value = '1' WHERE key = 'schema_version'",
    )
    .unwrap();
    let role = format!("tofu_svc_{}", std::process::id());
    let _ = psql(&uri, &format!("CREATE ROLE {role} LOGIN"));
    psql(
        &uri,
        &format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON pin, quarantine, endpoint_state TO {role}; \
             GRANT SELECT, INSERT ON audit TO {role}; GRANT SELECT ON meta TO {role}; \
             GRANT SELECT, USAGE ON SEQUENCE generation TO {role}"
        ),
    )
    .unwrap();
    let svc = uri.replacen("postgres@", &format!("{role}@"), 1);
    let err = Handle::open(&loc(&svc), true).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DatabaseSchema { .. }), "{text}");
    assert!(
        text.contains("version 1") && text.contains("(postgres)"),
        "{text}"
    );
    assert_eq!(
        psql(&uri, "SELECT value FROM meta WHERE key = 'schema_version'").unwrap(),
        "1"
    );

    Handle::open(&loc(&uri), false).expect("the owner upgrades it");
    assert_eq!(
        psql(&uri, "SELECT value FROM meta WHERE key = 'schema_version'").unwrap(),
        "5"
    );
    assert_eq!(
        psql(
            &uri,
            "SELECT count(*) FROM pg_trigger WHERE tgenabled = 'A' AND NOT tgisinternal"
        )
        .unwrap(),
        "6"
    );
    let store = Handle::open(&loc(&svc), true).expect("then the service's role opens it");
    assert!(!store.is_read_only());
}

#[test]
fn a_version_2_schema_is_upgraded_and_its_pins_match_their_certificate() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    let endpoint: Endpoint = "10.1.1.1:8082".parse().unwrap();
    assert!(store.pin_first_use(&endpoint, &cert("a")).unwrap());
    drop(store);
    psql(
        &uri,
        "ALTER TABLE pin DROP COLUMN match_kind; DROP TABLE awaited; DROP TABLE endpoint_mode; \
         UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    )
    .unwrap();
    let store = Handle::open(&loc(&uri), false).expect("the owner upgrades it");
    assert_eq!(
        psql(&uri, "SELECT value FROM meta WHERE key = 'schema_version'").unwrap(),
        "5"
    );
    let (pins, _, _) = store.load(&endpoint).unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].matches, tofu_core::pin::PinMatch::Certificate);
    assert!(store.check().unwrap().is_sound());
}

#[test]
fn a_version_3_schema_is_upgraded_to_take_awaited_pins_and_a_service_role_keeps_writing() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    let endpoint: Endpoint = "10.1.1.1:8082".parse().unwrap();
    assert!(store.pin_first_use(&endpoint, &cert("a")).unwrap());
    drop(store);
    // What version 3 was: no awaited table (and so no awaited_changed trigger).
    psql(
        &uri,
        "DROP TABLE awaited; DROP TABLE endpoint_mode; UPDATE meta SET value = '3' WHERE key = 'schema_version'",
    )
    .unwrap();
    let role = format!("tofu_svc3_{}", std::process::id());
    let _ = psql(&uri, &format!("CREATE ROLE {role} LOGIN"));
    psql(
        &uri,
        &format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON pin, quarantine, endpoint_state TO {role}; \
             GRANT SELECT, INSERT ON audit TO {role}; GRANT SELECT ON meta TO {role}; \
             GRANT SELECT, USAGE ON SEQUENCE generation TO {role}"
        ),
    )
    .unwrap();
    let store = Handle::open(&loc(&uri), false).expect("the owner upgrades it");
    assert_eq!(
        psql(&uri, "SELECT value FROM meta WHERE key = 'schema_version'").unwrap(),
        "5"
    );
    assert_eq!(psql(&uri, "SELECT count(*) FROM awaited").unwrap(), "0");
    let (pins, _, _) = store.load(&endpoint).unwrap();
    assert_eq!(pins.len(), 1);
    assert!(store.check().unwrap().is_sound());
    // The role that could write pins can write awaited pins: the store stays writable.
    let svc = uri.replacen("postgres@", &format!("{role}@"), 1);
    let store = Handle::open(&loc(&svc), true).expect("the service's role opens it");
    assert!(!store.is_read_only());
}

#[test]
fn a_server_that_takes_no_writes_is_refused_unless_the_location_accepts_any() {
    // A standby's pins lag its primary's: a service reading one would honour a deleted pin.
    // default_transaction_read_only makes a server look as a standby does to the check.
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    Handle::open(&loc(&uri), true)
        .unwrap()
        .pin_first_use(&endpoint("10.8.5.1:1"), &cert("a"))
        .unwrap();
    let db = uri
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    psql(
        &uri,
        &format!("ALTER DATABASE {db} SET default_transaction_read_only = on"),
    )
    .unwrap();
    let err = Handle::open(&loc(&uri), false).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let any = Handle::open(&loc(&with_param(&uri, "target_session_attrs=any")), false)
        .expect("target_session_attrs=any reads it");
    assert!(any.is_read_only());
    assert_eq!(any.pins(10).unwrap().len(), 1);
}

#[test]
fn a_role_with_select_only_reads_and_is_told_what_it_misses_to_write() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let store = Handle::open(&loc(&uri), true).unwrap();
    store
        .pin_first_use(&endpoint("10.3.3.3:3"), &cert("r"))
        .unwrap();
    let role = format!("tofu_reader_{}", std::process::id());
    let _ = psql(&uri, &format!("CREATE ROLE {role} LOGIN"));
    psql(
        &uri,
        &format!(
            "GRANT SELECT ON meta, pin, quarantine, audit, endpoint_state TO {role}; \
             GRANT SELECT ON SEQUENCE generation TO {role}"
        ),
    )
    .unwrap();
    let ro_uri = uri.replacen("postgres@", &format!("{role}@"), 1);
    let ro = Handle::open(&loc(&ro_uri), true).expect("a read-only role opens the store");
    assert!(ro.is_read_only());
    assert_eq!(ro.pins(10).unwrap().len(), 1);
    ro.generation().unwrap();
    let err = ro
        .pin_first_use(&endpoint("10.3.3.4:3"), &cert("s"))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::DatabaseReadOnly { .. }), "{text}");
    assert!(text.contains("INSERT, UPDATE, DELETE on pin"), "{text}");
    // It holds SELECT on endpoint_state, but not what writing needs: named too (asked as one
    // list, has_table_privilege answered "any of them", and this was left out).
    assert!(
        text.contains("SELECT, INSERT, UPDATE, DELETE on endpoint_state"),
        "{text}"
    );
}

#[test]
fn a_stopped_server_fails_closed_after_the_staleness_window_and_recovers_after_a_restart() {
    let Some(_) = server() else { return };
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let (own, dir) = (cluster.url.clone(), cluster.dir.clone());

    let uri = with_param(&fresh_db(&own), "staleness=2&connect_timeout=1");
    let store = Handle::open(&loc(&uri), true).unwrap();
    let g0 = store.generation().unwrap();
    let stopped = Instant::now();
    cluster.stop();
    let failed = wait_for("fail closed", Duration::from_secs(15), || {
        store.generation().is_err()
    });
    let err = store.generation().unwrap_err();
    assert!(matches!(err, Error::Stale { .. }), "{err}");
    eprintln!("generation() failed {failed:?} after the server stopped (staleness 2 s): {err}");
    // The window runs from the last answer, at most one heartbeat (1 s) before the stop.
    assert!(
        stopped.elapsed() >= Duration::from_secs(1),
        "{:?}",
        stopped.elapsed()
    );

    cluster.start_again();
    let back = wait_for("recovery", Duration::from_secs(15), || {
        store.generation().is_ok()
    });
    eprintln!("generation() recovered {back:?} after the restart");
    assert_ne!(
        store.generation().unwrap(),
        g0,
        "callers reload after the outage"
    );
    assert!(store
        .pin_first_use(&endpoint("10.7.7.7:7"), &cert("z"))
        .unwrap());

    // A stalled server (every process of it stopped): silence, not an error, until the
    // heartbeat's timeout; then the same fail-closed window.
    let postmaster = std::fs::read_to_string(format!("{dir}/data/postmaster.pid")).unwrap();
    let postmaster = postmaster.lines().next().unwrap().trim().to_owned();
    let children = Command::new("pgrep")
        .args(["-P", &postmaster])
        .output()
        .unwrap();
    let mut pids = vec![postmaster];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_owned),
    );
    let signal = |sig: &str| {
        let status = Command::new("kill").arg(sig).args(&pids).status().unwrap();
        assert!(status.success(), "kill {sig}");
    };
    let g1 = store.generation().unwrap();
    signal("-STOP");
    let stalled = Instant::now();
    let failed = wait_for("fail closed on a stall", Duration::from_secs(15), || {
        store.generation().is_err()
    });
    eprintln!(
        "generation() failed {failed:?} after the server stalled: {}",
        store.generation().unwrap_err()
    );
    signal("-CONT");
    let back = wait_for("recovery from the stall", Duration::from_secs(15), || {
        store.generation().is_ok()
    });
    eprintln!("generation() recovered {back:?} after the server resumed");
    assert!(stalled.elapsed() >= Duration::from_secs(1));
    assert_ne!(store.generation().unwrap(), g1);
}

#[test]
fn sslmode_prefer_falls_back_to_plain_and_require_and_verify_full_say_what_is_wrong() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let db = uri
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let port = uri
        .split("port=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    // The test server listens on 127.0.0.1 without TLS.
    let tcp = |mode: &str| format!("postgresql://postgres@127.0.0.1:{port}/{db}?sslmode={mode}");
    Handle::open(&loc(&tcp("prefer")), true).expect("prefer falls back to plain");
    let err = Handle::open(&loc(&tcp("require")), true).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    let err = Handle::open(&loc(&tcp("verify-full")), true).unwrap_err();
    assert!(err.to_string().contains("sslrootcert"), "{err}");
}

#[test]
fn another_backends_commit_reaches_this_ones_generation_within_milliseconds() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let (reader, writer) = (
        Handle::open(&loc(&uri), true).unwrap(),
        Handle::open(&loc(&uri), true).unwrap(),
    );
    let mut latencies = Vec::new();
    for i in 0..20 {
        let g = reader.generation().unwrap();
        writer
            .pin_first_use(&endpoint(&format!("10.5.5.{i}:5")), &cert("w"))
            .unwrap();
        // From the writer's commit returning to the reader's generation moving.
        latencies.push(wait_for("the notification", Duration::from_secs(5), || {
            reader.generation().unwrap() != g
        }));
    }
    latencies.sort();
    eprintln!(
        "notify latency after commit: median {:?}, max {:?}",
        latencies[10], latencies[19]
    );
    assert!(latencies[10] < Duration::from_secs(1));
}

/// An update of many endpoints locks them all at once, in byte order; a small update that
/// holds the last of them and then waits for the first deadlocks with it, and whichever the
/// server aborts is run again, every plan included, and both commit.
#[test]
fn a_large_update_deadlocking_with_a_small_one_is_retried() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let many: Vec<Endpoint> = (0..20)
        .map(|i| endpoint(&format!("10.7.7.{}:1", 10 + i)))
        .collect();
    let (first, last) = (many[0].clone(), many[19].clone());
    let one = Handle::open(&loc(&uri), true).unwrap();
    let two = Handle::open(&loc(&uri), true).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let bar2 = barrier.clone();
    let (f2, l2) = (first.clone(), last.clone());
    let t = std::thread::spawn(move || {
        bar2.wait();
        // Holds `last`, then asks for `first` while the large update waits for `last`.
        two.bump_epochs(&[&l2, &f2], Duration::from_millis(400))
    });
    barrier.wait();
    // Within the small update's first plan: after it locked `last`, before it asks for `first`.
    std::thread::sleep(Duration::from_millis(250));
    let refs: Vec<&Endpoint> = many.iter().collect();
    let calls_one = one.bump_epochs(&refs, Duration::ZERO).unwrap();
    let calls_two = t.join().unwrap().unwrap();
    // The large one, aborted while it waits for its locks, plans nothing before its retry:
    // the server says whether there was a deadlock, and both committing says it was retried.
    eprintln!("plans run: {calls_one} and {calls_two} (20 and 2 without a retry)");
    let deadlocks = || {
        psql(
            &uri,
            "SELECT pg_stat_clear_snapshot(); SELECT deadlocks FROM pg_stat_database \
             WHERE datname = current_database()",
        )
        .unwrap()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
    };
    wait_for(
        "the deadlock in the statistics",
        Duration::from_secs(15),
        || deadlocks() != "0",
    );
    assert_eq!(one.load(&first).unwrap().2, 2);
    assert_eq!(one.load(&last).unwrap().2, 2);
    assert_eq!(one.load(&many[5]).unwrap().2, 1);
}

#[test]
fn two_updates_locking_endpoints_in_opposite_orders_deadlock_and_are_retried() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let (a, b) = (endpoint("10.6.6.1:1"), endpoint("10.6.6.2:1"));
    let one = Handle::open(&loc(&uri), true).unwrap();
    let two = Handle::open(&loc(&uri), true).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let (a2, b2, bar2) = (a.clone(), b.clone(), barrier.clone());
    let t = std::thread::spawn(move || {
        bar2.wait();
        two.bump_epochs(&[&b2, &a2], Duration::from_millis(300))
    });
    barrier.wait();
    let calls_one = one
        .bump_epochs(&[&a, &b], Duration::from_millis(300))
        .unwrap();
    let calls_two = t.join().unwrap().unwrap();
    eprintln!("plans run: {calls_one} and {calls_two} (2 each without a retry)");
    assert!(
        calls_one + calls_two > 4,
        "one of them was retried after the deadlock"
    );
    // Both committed: each endpoint's epoch went up twice.
    assert_eq!(one.load(&a).unwrap().2, 2);
    assert_eq!(one.load(&b).unwrap().2, 2);
}

/// A CA, and a server certificate it issued for `localhost` and 127.0.0.1: (CA PEM, cert PEM,
/// key PEM).
fn server_identity() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

#[test]
fn tls_to_the_server_is_verified_by_default_and_binds_scram_authentication_to_it() {
    let Some(_) = server() else { return };
    let Some(cluster) = pg_support::Cluster::start() else {
        return;
    };
    let data = format!("{}/data", cluster.dir);
    let (ca, server_cert, key) = server_identity();
    std::fs::write(format!("{data}/server.crt"), server_cert).unwrap();
    std::fs::write(format!("{data}/server.key"), key).unwrap();
    let hba = std::fs::read_to_string(format!("{data}/pg_hba.conf")).unwrap();
    // The service's role only over TLS, with SCRAM; everything else as initdb set it up.
    std::fs::write(
        format!("{data}/pg_hba.conf"),
        format!(
            "hostssl all tofu 127.0.0.1/32 scram-sha-256\nhostnossl all tofu 0.0.0.0/0 reject\n{hba}"
        ),
    )
    .unwrap();
    let chown = Command::new("sh")
        .args(["-c", &format!("[ \"$(id -u)\" != 0 ] || chown postgres {data}/server.crt {data}/server.key {data}/pg_hba.conf; chmod 0600 {data}/server.key")])
        .status()
        .unwrap();
    assert!(chown.success());
    psql(&cluster.url, "ALTER SYSTEM SET ssl = on").unwrap();
    psql(
        &cluster.url,
        "ALTER SYSTEM SET password_encryption = 'scram-sha-256'",
    )
    .unwrap();
    psql(&cluster.url, "SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    psql(
        &cluster.url,
        "CREATE ROLE tofu LOGIN PASSWORD 'pw-over-tls'",
    )
    .unwrap();
    psql(&cluster.url, "CREATE DATABASE pins OWNER tofu").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let (other_ca, _, _) = server_identity();
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let url = |params: &str| {
        format!(
            "postgresql://tofu:pw-over-tls@127.0.0.1:{}/pins?connect_timeout=3&{params}",
            cluster.port
        )
    };

    // No sslmode: verified, and with nothing to verify it against, refused with the way out.
    let err = Handle::open(&loc(&url("")), true).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert!(
        text.contains("sslrootcert") && text.contains("sslmode=require"),
        "{text}"
    );
    assert!(!text.contains("pw-over-tls"), "{text}");
    // A server whose certificate another CA issued (a man in the middle's): refused.
    let err = Handle::open(
        &loc(&url(&format!("sslrootcert={}", other_file.display()))),
        true,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    // A name the certificate does not hold: refused.
    let err = Handle::open(
        &loc(&format!(
            "postgresql://tofu:pw-over-tls@db.invalid:{}/pins?hostaddr=127.0.0.1&connect_timeout=3&sslrootcert={}",
            cluster.port,
            ca_file.display()
        )),
        true,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");

    // The right CA: verified, and SCRAM bound to the channel (the server checks the
    // tls-server-end-point hash this side computed).
    let verified = url(&format!(
        "sslrootcert={}&channel_binding=require",
        ca_file.display()
    ));
    let store = Handle::open(&loc(&verified), true).expect("verify-full with its CA");
    assert!(store
        .pin_first_use(&endpoint("10.9.1.1:1"), &cert("a"))
        .unwrap());
    let ssl = psql(
        &cluster.url,
        "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = 'tofu'",
    )
    .unwrap();
    assert_eq!(ssl, "t", "every connection of the store is over TLS");
    // require, said explicitly: encrypted, not verified.
    Handle::open(&loc(&url("sslmode=require")), true).expect("sslmode=require");
}

#[test]
fn an_upgrade_to_version_5_gives_the_new_table_to_the_roles_that_had_the_old_ones() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    Handle::open(&loc(&uri), true).unwrap();
    psql(
        &uri,
        "DROP TABLE endpoint_mode; UPDATE meta SET value = '4' WHERE key = 'schema_version'",
    )
    .unwrap();
    let role = format!("tofu_v4svc_{}", std::process::id());
    let _ = psql(&uri, &format!("CREATE ROLE {role} LOGIN"));
    psql(
        &uri,
        &format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON pin, quarantine, endpoint_state, awaited TO {role}; \
             GRANT SELECT, INSERT ON audit TO {role}; GRANT SELECT ON meta TO {role}; \
             GRANT SELECT, USAGE ON SEQUENCE generation TO {role}"
        ),
    )
    .unwrap();
    Handle::open(&loc(&uri), false).expect("the owner upgrades it");
    let svc = uri.replacen("postgres@", &format!("{role}@"), 1);
    let location: tofu_core::StoreLocation = svc.parse().unwrap();
    let store = tofu_core::Store::open_existing_location(&location).expect("the service opens it");
    assert!(!store.is_read_only(), "the service's role may still write");
    let endpoint: Endpoint = "10.1.1.1:8082".parse().unwrap();
    assert!(store.set_report_only(&endpoint, true).unwrap());
    assert!(store.endpoint(&endpoint).unwrap().report_only.is_some());
}

/// The verifier over a PostgreSQL store: an awaited pin refuses its certificate presented
/// without the key (writing nothing another handle could see), and is filled by the real
/// server's handshake, which another handle (another machine) then sees as an ordinary pin.
#[test]
fn an_awaited_pin_on_postgresql_is_filled_only_by_a_handshake_that_proves_the_key() {
    let Some(server) = server() else { return };
    let uri = fresh_db(&server);
    let location: tofu_core::StoreLocation = uri.parse().unwrap();
    let store = Arc::new(tofu_core::Store::open_location(&location).unwrap());
    let other = tofu_core::Store::open_location(&location).unwrap();
    let id = tls::identity("prime-sec", tls::KeyKind::Ecdsa);
    let impostor = tls::identity("impostor", tls::KeyKind::Ecdsa);
    let peer = tls::Server::start_signed(
        vec![id.cert.clone()],
        tls::signer(&impostor.key),
        tls::Version::Tls13,
    );
    let ep = Endpoint::new("127.0.0.1", peer.addr.port()).unwrap();
    let fp = tofu_core::Fingerprint::of(&id.cert);
    store
        .await_pin(&ep, &fp, tofu_core::pin::PinMatch::Certificate, None)
        .unwrap();
    let verifier = tofu_core::TofuVerifier::builder(store.clone(), ep.clone())
        .build()
        .unwrap();
    let config = verifier.client_config();
    let err = tls::connect(&config, peer.addr, &ep.server_name()).unwrap_err();
    assert_eq!(
        tls::client_error(&err),
        rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
    );
    let record = other.endpoint(&ep).unwrap();
    assert!(record.pins.is_empty() && record.quarantined.is_empty());
    assert_eq!(record.awaited.len(), 1);

    peer.set_identity(&id);
    tls::connect(&config, peer.addr, &ep.server_name()).unwrap();
    let record = other.endpoint(&ep).unwrap();
    assert!(record.awaited.is_empty());
    assert_eq!(record.pins.len(), 1);
    assert_eq!(record.pins[0].der, id.cert);
    assert!(other.check().unwrap().is_sound());
}
