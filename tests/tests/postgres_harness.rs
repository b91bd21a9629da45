//! The PostgreSQL test harness (`tofu-core/tests/pg_support`), which both test crates share:
//! when the PostgreSQL tests skip, when they must not, and that each test gets a database of
//! its own on the server `TOFU_TEST_POSTGRES` names.

#[path = "../../tofu-core/tests/pg_support/mod.rs"]
mod pg_support;

use tofu_core::StoreLocation;

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn without_a_server_the_postgresql_tests_skip() {
    assert_eq!(pg_support::server_url(&env(&[])), None);
    assert_eq!(
        pg_support::server_url(&env(&[("TOFU_TEST_POSTGRES_REQUIRED", "0")])),
        None
    );
}

#[test]
#[should_panic(expected = "eval \"$(.ci/postgres start)\"")]
fn without_a_server_but_required_the_postgresql_tests_fail_saying_how_to_start_one() {
    pg_support::server_url(&env(&[("TOFU_TEST_POSTGRES_REQUIRED", "1")]));
}

#[test]
fn a_database_url_keeps_the_servers_user_host_and_port_and_changes_only_the_database() {
    for (base, want) in [
        (
            "postgresql://postgres@/postgres?host=/tmp/tofu-pg.x&port=55432",
            "postgresql://postgres@/t1?host=/tmp/tofu-pg.x&port=55432",
        ),
        ("postgres://u:pw@db:6432", "postgres://u:pw@db:6432/t1"),
        (
            "postgresql://u@h/other?dbname=x&sslmode=disable",
            "postgresql://u@h/t1?sslmode=disable",
        ),
    ] {
        assert_eq!(pg_support::database_url(base, "t1"), want, "{base}");
    }
}

#[test]
fn database_names_are_unique_identifiers_of_at_most_63_bytes() {
    let a = pg_support::unique_name("postgres::Some-Test name");
    let b = pg_support::unique_name("postgres::Some-Test name");
    assert_ne!(a, b);
    assert!(
        a.starts_with(&format!("tofu_{}_", std::process::id())),
        "{a}"
    );
    assert!(a.ends_with("_some_test_name"), "{a}");
    let long = pg_support::unique_name(&"x".repeat(200));
    assert_eq!(long.len(), 63);
    assert!(long
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
}

#[test]
fn each_fresh_database_is_its_own_empty_database_on_the_server() {
    let Some(a) = pg_support::fresh_database() else {
        return;
    };
    let b = pg_support::fresh_database().expect("a second database");
    assert_ne!(a, b);
    let name_of = |url: &str| match StoreLocation::parse(url).unwrap() {
        StoreLocation::Postgres(loc) => loc.dbname().to_owned(),
        other => panic!("{url} is not a PostgreSQL location: {other:?}"),
    };
    for url in [&a, &b] {
        assert_eq!(
            pg_support::psql(url, "SELECT current_database()").unwrap(),
            name_of(url)
        );
        assert_eq!(
            pg_support::psql(
                url,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            .unwrap(),
            "0",
            "{url} is empty"
        );
    }
    pg_support::psql(&a, "CREATE TABLE only_in_a (x int)").unwrap();
    assert_eq!(
        pg_support::psql(&b, "SELECT to_regclass('only_in_a') IS NULL").unwrap(),
        "t"
    );

    drop(pg_support::DropOnDrop(a.clone()));
    pg_support::drop_database(&b);
    for url in [&a, &b] {
        let err = pg_support::psql(url, "SELECT 1").unwrap_err();
        assert!(err.contains("does not exist"), "{url}: {err}");
    }
}
