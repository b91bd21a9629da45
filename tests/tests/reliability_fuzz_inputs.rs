//! Every committed fuzz input, through the checks its fuzz target makes: the seeds in
//! `fuzz/seeds/TARGET` and the inputs that once crashed a target, kept in
//! `fuzz/regressions/TARGET` under a name that says what the bug was. So `cargo test` keeps
//! those bugs fixed without cargo-fuzz, which needs a toolchain CI does not build with
//! (`fuzz/run.sh` runs the fuzzers themselves; RELIABILITY.md has the figures).

use std::path::Path;

/// The checks, shared with the fuzz targets (`fuzz/fuzz_targets/*.rs`).
#[allow(unreachable_pub, dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod checks;

#[test]
fn every_committed_fuzz_input_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let targets = [
        ("endpoint", checks::endpoint as fn(&[u8])),
        ("fingerprint", checks::fingerprint),
        ("certificate", checks::certificate),
        ("import", checks::import),
    ];
    let mut failures = Vec::new();
    let mut inputs = 0;
    for (target, check) in targets {
        for kind in ["seeds", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            for entry in dir {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                inputs += 1;
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    failures.push(path.display().to_string());
                }
            }
        }
    }
    println!("{inputs} committed fuzz inputs checked");
    assert!(
        failures.is_empty(),
        "these inputs fail their target's checks: {failures:#?}"
    );
    assert!(
        inputs >= 20,
        "only {inputs} inputs found under {}",
        root.display()
    );
}
