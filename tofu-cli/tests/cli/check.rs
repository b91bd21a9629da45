//! `tofu-certs check` on a sound store and on stores damaged the ways a failing disk or a
//! stray program would damage them.

use crate::util::*;

#[test]
fn check_passes_a_sound_store_and_names_each_finding_in_a_damaged_one() {
    let env = Env::new();
    env.pin("10.1.1.1:8082", &prime_cert("prime-pri"));
    env.pin("10.1.1.2:8082", &prime_cert("prime-sec"));
    env.run(&["check"])
        .success()
        .stdout("sound: 2 pins, 0 quarantined, 2 audit entries, 0 findings\n");
    let json = env.run(&["check", "--format", "json"]);
    json.success();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["sound"], true);
    assert_eq!(doc["pins"], 2);
    assert_eq!(doc["findings"], serde_json::json!([]));

    // A pin whose stored fingerprint is another certificate's, and a state no version writes:
    // damage SQLite's own check cannot see.
    let db = rusqlite::Connection::open(env.store().join(tofu_core::store::DATABASE_FILE)).unwrap();
    db.execute_batch(
        "PRAGMA ignore_check_constraints = ON;
         UPDATE pin SET fingerprint = zeroblob(32) WHERE endpoint = '10.1.1.1:8082';
         UPDATE pin SET state = 'bogus' WHERE endpoint = '10.1.1.2:8082';",
    )
    .unwrap();
    drop(db);
    let run = env.run(&["check"]);
    run.code(1).stdout(
        "sqlite: CHECK constraint failed in pin
pin: pin [..]: 10.1.1.1:8082: the stored fingerprint is not the certificate's
pin: pin [..]: 10.1.1.2:8082: state \"bogus\" is not active or next
damaged: 2 pins, 0 quarantined, 2 audit entries, 3 findings
",
    );
    assert!(
        run.stderr.starts_with("error: the pin store ")
            && run.stderr.contains("is damaged (3 findings)")
            && run.stderr.contains("\nhint: keep the damaged store"),
        "{}",
        run.stderr
    );
    let json = env.run(&["check", "--format", "json"]);
    json.code(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["sound"], false);
    assert_eq!(doc["findings"][0]["kind"], "sqlite");
    assert_eq!(doc["findings"][1]["kind"], "pin");
}
