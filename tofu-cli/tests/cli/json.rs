//! `--format json` on every command that prints a result, parsed as a script would parse it,
//! against the schemas of docs/json.md; and `--format` values in any case.

use serde_json::Value;

use crate::util::*;

/// Runs `ARGS --format json`, which must succeed, and parses its standard output.
#[track_caller]
fn json(env: &Env, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let run = env.run(&all);
    run.success();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn fingerprints(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|o| o["fingerprint"].as_str().expect("a fingerprint"))
        .collect()
}

#[test]
fn format_values_are_case_insensitive() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("prime-pri"));
    for (command, upper, lower) in [
        (vec!["listcerts"], "JSON", "json"),
        (vec!["listcerts"], "Table", "table"),
        (vec!["listcerts"], "PRIME", "prime"),
        (vec!["showcert", "host", "10.1.1.1:8082"], "Json", "json"),
        (vec!["log"], "JSON", "json"),
        (vec!["check"], "Text", "text"),
        (vec!["status"], "PROMETHEUS", "prometheus"),
    ] {
        let run = |format: &str| {
            let mut args = command.clone();
            args.extend(["--format", format]);
            let run = env.run(&args);
            run.success();
            run.stdout
        };
        // The same output; only listcerts's and showcert's times could differ (none here).
        let (a, b) = (run(upper), run(lower));
        if command[0] != "log" {
            assert_eq!(a, b, "{command:?} --format {upper}");
        }
    }
    let run = env.run(&["listcerts", "--format", "yaml"]);
    run.code(2);
    assert!(
        run.stderr
            .starts_with("error: invalid value 'yaml' for '--format <FORMAT>'\n  [possible values: prime, table, json]\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn addcert_showcert_accept_deletecert_import_and_check_print_their_documents() {
    let env = Env::new();
    let endpoint = "10.1.1.1:8082";
    let (a, intruder) = (prime_cert("prime-pri"), prime_cert("prime-pri"));
    let (a_file, _) = env.write_cert("a", &a);

    let added = json(
        &env,
        &[
            "addcert", "host", endpoint, "--cert", &a_file, "--label", "HA",
        ],
    );
    assert_eq!(added["version"], 1);
    assert_eq!(added["endpoint"], endpoint);
    assert_eq!(added["host_port"], "10.1.1.1_8082");
    assert_eq!(added["pin"]["fingerprint"], a.fingerprint());
    assert_eq!(added["pin"]["state"], "active");
    assert_eq!(added["pin"]["source"], "operator");
    assert_eq!(added["pin"]["label"], "HA");
    assert_eq!(added["pin"]["subject"], PRIME_SUBJECT);
    assert_eq!(added["trusted"], serde_json::json!([a.fingerprint()]));

    // What the verifier does when a handshake presents a certificate matching no pin.
    let store = tofu_core::Store::open(env.store()).unwrap();
    store
        .quarantine(&endpoint.parse().unwrap(), &intruder.der)
        .unwrap();
    drop(store);

    let shown = json(&env, &["showcert", "host", "10.1.1.1_8082"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["endpoint"], endpoint);
    assert_eq!(fingerprints(&shown["pins"]), [a.fingerprint()]);
    assert_eq!(shown["pins"][0]["times_seen"], 0);
    assert!(shown["pins"][0]["days_left"].as_i64().unwrap() > 3000);
    assert_eq!(
        fingerprints(&shown["quarantined"]),
        [intruder.fingerprint()]
    );
    assert_eq!(shown["quarantined"][0]["times_seen"], 1);
    // The same objects as listcerts's document.
    let listed = json(&env, &["listcerts"]);
    assert_eq!(shown["pins"], listed["pins"]);
    assert_eq!(shown["quarantined"], listed["quarantined"]);

    let accepted = json(
        &env,
        &[
            "accept",
            "host",
            endpoint,
            "--fingerprint",
            &intruder.fingerprint(),
        ],
    );
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["accepted"]["fingerprint"], intruder.fingerprint());
    assert_eq!(accepted["accepted"]["source"], "accepted");
    assert_eq!(fingerprints(&accepted["retired"]), [a.fingerprint()]);

    let export = env.run(&["export"]);
    export.success();
    let backup = env.write("backup.toml", &export.stdout);

    let removed = json(&env, &["deletecert", "host", endpoint]);
    assert_eq!(removed["version"], 1);
    assert_eq!(removed["endpoint"], endpoint);
    assert_eq!(
        fingerprints(&removed["removed"]["pins"]),
        [intruder.fingerprint()]
    );
    assert_eq!(removed["removed"]["quarantined"], serde_json::json!([]));

    let imported = json(&env, &["import", &backup]);
    assert_eq!(
        imported,
        serde_json::json!({"version": 1, "file": backup, "added": 1, "unchanged": 0, "replaced": 0})
    );
    let again = json(&env, &["import", &backup]);
    assert_eq!(again["added"], 0);
    assert_eq!(again["unchanged"], 1);

    let one = json(
        &env,
        &[
            "deletecert",
            "host",
            endpoint,
            "--fingerprint",
            &intruder.fingerprint(),
        ],
    );
    assert_eq!(
        fingerprints(&one["removed"]["pins"]),
        [intruder.fingerprint()]
    );

    let checked = json(&env, &["check"]);
    assert_eq!(checked["version"], 1);
    assert_eq!(checked["sound"], true);

    // Nothing found is an error on stderr with status 3, and no document on stdout.
    let run = env.run(&["showcert", "host", endpoint, "--format", "json"]);
    run.code(3);
    assert_eq!(run.stdout, "");
    env.run(&["showcert", "host", endpoint, "--format", "json", "--pem"])
        .code(2)
        .stderr("error: --pem and --format json are two different outputs; give one\nhint: [..]\n");
}

#[test]
fn a_staged_pin_is_state_next_and_trusts_nothing_new() {
    let env = Env::new();
    let (a, next) = (prime_cert("prime-pri"), prime_cert("prime-pri-2027"));
    env.pin("10.1.1.1:8082", &a);
    let (next_file, _) = env.write_cert("next", &next);
    let staged = json(
        &env,
        &[
            "addcert",
            "host",
            "10.1.1.1:8082",
            "--cert",
            &next_file,
            "--next",
        ],
    );
    assert_eq!(staged["pin"]["state"], "next");
    assert_eq!(staged["pin"]["fingerprint"], next.fingerprint());
    assert_eq!(staged["trusted"], serde_json::json!([a.fingerprint()]));
}
