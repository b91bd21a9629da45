//! The workspace's `rust-version` is true: no locked dependency declares a higher
//! `rust_version` than the one our crates promise, so `cargo install` with the promised
//! toolchain does not fail on a dependency (as it did with 1.80 and a lock needing 1.88).

use std::path::Path;
use std::process::Command;

/// A Rust version as `rust-version` writes it (`1.88`, `1.88.0`), compared as numbers.
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    parts.next().is_none().then_some((major, minor, patch))
}

/// `cargo metadata --locked`, offline when everything is already downloaded.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--locked"])
            .arg("--manifest-path")
            .arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("cargo runs")
    };
    let mut out = run(true);
    if !out.status.success() {
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata --locked failed (is Cargo.lock up to date?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_the_workspace_rust_version() {
    let metadata = metadata();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .map(|id| id.as_str().expect("package ids are strings"))
        .collect();
    let packages = metadata["packages"].as_array().expect("packages");
    let field = |p: &serde_json::Value, key: &str| p[key].as_str().map(str::to_owned);

    // What our publishable crates promise: the workspace's rust-version, inherited by both.
    let mut ours = None;
    for name in ["tofu-core", "tofu-cli"] {
        let package = packages
            .iter()
            .find(|p| field(p, "name").as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} is a workspace member"));
        let version = field(package, "rust_version").unwrap_or_else(|| {
            panic!("{name} has no rust-version: add rust-version.workspace = true")
        });
        if let Some(other) = &ours {
            assert_eq!(
                &version, other,
                "tofu-core and tofu-cli promise different Rust versions"
            );
        }
        ours = Some(version);
    }
    let ours = ours.expect("two crates checked");
    let promised = parse_version(&ours).expect("our rust-version parses");

    let mut too_new = Vec::new();
    for package in packages {
        let id = field(package, "id").expect("package id");
        if members.contains(&id.as_str()) {
            continue;
        }
        let Some(needed) = field(package, "rust_version") else {
            continue;
        };
        let name = field(package, "name").expect("package name");
        let version = field(package, "version").expect("package version");
        let parsed = parse_version(&needed).unwrap_or_else(|| {
            panic!("{name} {version} declares rust_version {needed:?}, which does not parse")
        });
        if parsed > promised {
            too_new.push(format!("{name} {version} needs Rust {needed}"));
        }
    }
    assert!(
        too_new.is_empty(),
        "the workspace promises rust-version {ours}, but locked dependencies need newer:\n  {}\n\
         Raise rust-version in the root Cargo.toml to the highest of these, or lock an older \
         release of each (cargo update -p NAME --precise VERSION).",
        too_new.join("\n  ")
    );
}

#[test]
fn versions_compare_as_numbers() {
    assert!(parse_version("1.88") > parse_version("1.80.1"));
    assert!(parse_version("1.100") > parse_version("1.88.0"));
    assert_eq!(parse_version("1.88"), parse_version("1.88.0"));
    assert_eq!(parse_version("1.x"), None);
    assert_eq!(parse_version("1.2.3.4"), None);
}
