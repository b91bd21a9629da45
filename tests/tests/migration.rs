//! Migration between the two backends (issue item 8): `tofu-certs --store DIR export` piped
//! into `tofu-certs --store URL import -` moves a SQLite store into PostgreSQL, and the same
//! pipe the other way moves it back, exactly: `listcerts`, in Prime's format and as JSON, is
//! byte for byte the same in all three stores.

#[path = "../../tofu-core/tests/pg_support/mod.rs"]
mod pg_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use examples::{example_binary, prime_identity, tofu_certs_binary};

fn tofu_certs(store: &str, args: &[&str]) -> Output {
    let out = Command::new(tofu_certs_binary())
        .env_remove("TOFU_CERTS_STORE")
        .env("NO_COLOR", "1")
        .args(["--store", store])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tofu-certs --store {store} {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tofu-certs --store FROM export | tofu-certs --store TO import -`, checking both ends'
/// exit statuses.
fn pipe(from: &str, to: &str) {
    let export = tofu_certs(from, &["export"]).stdout;
    assert!(!export.is_empty());
    let mut import = Command::new(tofu_certs_binary())
        .env_remove("TOFU_CERTS_STORE")
        .args(["--store", to, "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&export).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "import into {to}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the operator sees of a store: listcerts in Prime's format and as JSON.
fn listings(store: &str) -> [String; 2] {
    [&["listcerts"][..], &["listcerts", "--format", "json"][..]].map(|args| {
        String::from_utf8(tofu_certs(store, args).stdout).expect("listcerts prints UTF-8")
    })
}

#[test]
fn a_store_moved_from_sqlite_to_postgresql_and_back_lists_byte_for_byte_the_same() {
    let Some(url) = pg_support::fresh_database() else {
        return;
    };
    let _drop = pg_support::DropOnDrop(url.clone());
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("sqlite").to_str().unwrap().to_owned();
    let back = dir.path().join("back").to_str().unwrap().to_owned();

    // A store with some history: the Prime HA story (pins trusted on first use, accepted by
    // fingerprint, deleted and re-pinned), and a pin added ahead of use with a staged
    // successor.
    let out = Command::new(example_binary("prime_ha"))
        .args(["--store", &sqlite])
        .env("TOFU_CERTS_BIN", tofu_certs_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prime_ha: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, cn) in [("current.der", "current"), ("next.der", "next")] {
        std::fs::write(dir.path().join(file), prime_identity(cn).cert).unwrap();
    }
    let cert = |f: &str| dir.path().join(f).to_str().unwrap().to_owned();
    tofu_certs(
        &sqlite,
        &[
            "addcert",
            "host",
            "10.1.1.1_8082",
            "--cert",
            &cert("current.der"),
        ],
    );
    tofu_certs(
        &sqlite,
        &[
            "addcert",
            "host",
            "10.1.1.1_8082",
            "--cert",
            &cert("next.der"),
            "--next",
        ],
    );

    let before = listings(&sqlite);
    assert_eq!(before[0].lines().count(), 4, "{}", before[0]);

    pipe(&sqlite, &url);
    let in_postgres = listings(&url);
    assert_eq!(in_postgres, before, "SQLite -> PostgreSQL");

    pipe(&url, &back);
    assert_eq!(listings(&back), before, "PostgreSQL -> SQLite");

    // The export itself is the same from all three stores.
    let export = tofu_certs(&sqlite, &["export"]).stdout;
    assert_eq!(
        String::from_utf8_lossy(&tofu_certs(&url, &["export"]).stdout),
        String::from_utf8_lossy(&export)
    );
    assert_eq!(
        String::from_utf8_lossy(&tofu_certs(&back, &["export"]).stdout),
        String::from_utf8_lossy(&export)
    );
}
