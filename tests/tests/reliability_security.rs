//! Security properties of the store on disk and of the `tofu-certs` command, checked through
//! the real binary: the store is private to its owner whatever the umask, it is never
//! written through a symbolic link planted in place of one of its files, and what the
//! command prints at its default level holds no certificate body and no key.
//! (`tofu-core/tests/store.rs` checks the library's side of modes and links;
//! `tofu-core/tests/hostile_logs.rs` the library's log messages.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use examples::{prime_identity, tofu_certs_binary, DemoServer};
use tofu_core::{store::DATABASE_FILE, Fingerprint, Store};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs `tofu-certs --store DIR ARGS` under `umask`, with a clean environment.
fn tofu_certs(store: &Path, umask: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(tofu_certs_binary())
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("TOFU_CERTS_STORE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tofu-certs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A certificate file for `cn`, in `dir`.
fn cert_file(dir: &Path, cn: &str) -> (PathBuf, examples::Identity) {
    let id = prime_identity(cn);
    let path = dir.join(format!("{cn}.pem"));
    fs::write(&path, &id.cert_pem).unwrap();
    (path, id)
}

#[test]
fn a_store_the_command_creates_is_private_whatever_the_umask() {
    for umask in ["000", "022", "077"] {
        let tmp = tempfile::tempdir().unwrap();
        let (cert, _) = cert_file(tmp.path(), "prime-pri");
        let top = tmp.path().join("var");
        let store = top.join("lib").join("tofu");
        ok(&tofu_certs(
            &store,
            umask,
            &[
                "addcert",
                "host",
                "10.1.1.1_8082",
                "--cert",
                cert.to_str().unwrap(),
            ],
        ));
        for dir in [&top, &top.join("lib"), &store] {
            assert_eq!(mode(dir), 0o700, "umask {umask}: {}", dir.display());
        }
        let db = store.join(DATABASE_FILE);
        assert_eq!(mode(&db), 0o600, "umask {umask}");
        // The write-ahead log and its index exist while the store is open; SQLite gives them
        // the database file's mode.
        let held = Store::open(&store).unwrap();
        held.integrity_check().unwrap();
        ok(&tofu_certs(
            &store,
            umask,
            &["deletecert", "host", "10.1.1.1_8082"],
        ));
        for side in ["-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{side}", db.display()));
            assert_eq!(mode(&path), 0o600, "umask {umask}: {}", path.display());
        }
        drop(held);
        // An export is written 0600 too: it is the list of whom this machine trusts.
        let export = tmp.path().join("backup.toml");
        ok(&tofu_certs(
            &store,
            umask,
            &["export", "--output", export.to_str().unwrap()],
        ));
        assert_eq!(mode(&export), 0o600, "umask {umask}");
    }
}

#[test]
fn the_command_never_writes_through_a_link_in_place_of_a_store_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, id) = cert_file(tmp.path(), "prime-sec");
    let fp = Fingerprint::of(&id.cert).to_string();
    let export = tmp.path().join("seed.toml");
    let seed_store = tmp.path().join("seed");
    ok(&tofu_certs(
        &seed_store,
        "022",
        &[
            "addcert",
            "host",
            "seed.example:443",
            "--cert",
            cert.to_str().unwrap(),
        ],
    ));
    ok(&tofu_certs(
        &seed_store,
        "022",
        &["export", "--output", export.to_str().unwrap()],
    ));
    let cert = cert.to_str().unwrap();
    let export = export.to_str().unwrap();
    let commands: [&[&str]; 8] = [
        &["listcerts"],
        &["showcert", "host", "a.example:443"],
        &["addcert", "host", "a.example:443", "--cert", cert],
        &["deletecert", "host", "a.example:443"],
        &["accept", "host", "a.example:443", "--fingerprint", &fp],
        &["import", export],
        &["export"],
        &["log"],
    ];
    for name in [
        DATABASE_FILE.to_string(),
        format!("{DATABASE_FILE}-wal"),
        format!("{DATABASE_FILE}-shm"),
    ] {
        let case = tmp.path().join(name.replace('.', "_"));
        let store = case.join("store");
        ok(&tofu_certs(
            &store,
            "022",
            &["addcert", "host", "b.example:443", "--cert", cert],
        ));
        // The link points at another store, where following it would "work", or at a file
        // whose loss would hurt.
        let victim_store = case.join("victim");
        ok(&tofu_certs(
            &victim_store,
            "022",
            &["addcert", "host", "victim.example:443", "--cert", cert],
        ));
        let victim = if name == DATABASE_FILE {
            victim_store.join(DATABASE_FILE)
        } else {
            let file = case.join("precious");
            fs::write(&file, b"precious").unwrap();
            file
        };
        let before = fs::read(&victim).unwrap();
        let link = store.join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for args in commands {
            let out = tofu_certs(&store, "022", args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{name}: {args:?}: {stderr}");
            assert!(
                stderr.contains("symbolic link") && stderr.contains(&*link.to_string_lossy()),
                "{name}: {args:?}: the error names the link: {stderr}"
            );
            assert_eq!(fs::read(&victim).unwrap(), before, "{name}: {args:?}");
            assert!(fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
        }
    }
}

#[test]
fn a_link_planted_at_the_name_a_new_store_is_created_under_is_not_followed() {
    // A new store is written under `.pins.sqlite3.new-<pid>-<n>` and linked into place.
    // Links planted at those names for this process are removed, not written through.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    for n in 0..64 {
        let name = format!(".{DATABASE_FILE}.new-{}-{n}", std::process::id());
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    let store = Store::open(&dir).unwrap();
    store.integrity_check().unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!fs::symlink_metadata(dir.join(DATABASE_FILE))
        .unwrap()
        .file_type()
        .is_symlink());

    // A store directory that is a dangling link: its target is not created.
    let nowhere = tmp.path().join("nowhere");
    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    assert!(Store::open(&dangling).is_err());
    assert!(!nowhere.exists());
}

#[test]
fn an_export_replaces_a_link_at_its_output_path_instead_of_writing_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = cert_file(tmp.path(), "prime-pri");
    let store = tmp.path().join("store");
    ok(&tofu_certs(
        &store,
        "022",
        &[
            "addcert",
            "host",
            "10.1.1.1:8082",
            "--cert",
            cert.to_str().unwrap(),
        ],
    ));
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out = tmp.path().join("backup.toml");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    ok(&tofu_certs(
        &store,
        "022",
        &["export", "--output", out.to_str().unwrap()],
    ));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(&out).unwrap().is_file());
    assert!(fs::read_to_string(&out).unwrap().contains("10.1.1.1:8082"));
}

/// Lines of base64 from the certificate's PEM body (and the key's), any one of which in
/// the output would mean the body was printed.
fn body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .map(str::to_owned)
        .collect()
}

fn assert_no_body(output: &str, bodies: &[String], what: &str) {
    // (Advice may name `-----BEGIN CERTIFICATE-----`; a block starts a line.)
    assert!(
        !output.lines().any(|l| l.starts_with("-----BEGIN")),
        "{what}: a PEM block in {output}"
    );
    for line in bodies {
        assert!(
            !output.contains(line.as_str()),
            "{what}: a certificate or key body in {output}"
        );
    }
}

#[test]
fn the_command_prints_no_certificate_body_or_key_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let old = prime_identity("prime-sec");
    let new = prime_identity("prime-sec");
    let server = DemoServer::start(&old, 0).unwrap();
    let ep = format!("127.0.0.1:{}", server.addr().port());
    let key_pem = {
        let der = old.key.secret_pkcs8_der();
        tofu_core::cert::to_pem(der).replace("CERTIFICATE", "PRIVATE KEY")
    };
    let key_file = tmp.path().join("key.pem");
    fs::write(&key_file, &key_pem).unwrap();
    let mut bodies = body_lines(&old.cert_pem);
    bodies.extend(body_lines(&new.cert_pem));
    bodies.extend(body_lines(&key_pem));
    let new_fp = Fingerprint::of(&new.cert).to_string();

    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let out = tofu_certs(&store, "022", args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((args.join(" "), out.status.code(), text));
    };
    run(&["probe", "host", &ep, "--pin"]);
    server.restart_with(&new);
    run(&["probe", "host", &ep]); // a mismatch: the full story, but no certificate body
    run(&["showcert", "host", &ep]);
    run(&["listcerts", "--format", "table"]);
    run(&["listcerts", "--format", "json"]);
    run(&["accept", "host", &ep, "--fingerprint", &new_fp]);
    run(&["log"]);
    // A key given where a certificate belongs is refused without being echoed.
    run(&[
        "addcert",
        "host",
        "x.example:443",
        "--cert",
        key_file.to_str().unwrap(),
    ]);
    let import = tmp.path().join("key.toml");
    fs::write(
        &import,
        format!("version = 1\n[[pin]]\nendpoint = \"x.example:443\"\ncertificate = \"\"\"\n{key_pem}\"\"\"\n"),
    )
    .unwrap();
    run(&["import", import.to_str().unwrap()]);
    run(&["deletecert", "host", &ep]);

    let codes: Vec<Option<i32>> = outputs.iter().map(|(_, code, _)| *code).collect();
    assert_eq!(
        codes,
        [0, 4, 0, 0, 0, 0, 0, 1, 1, 0].map(Some),
        "{outputs:#?}"
    );
    for (args, _, text) in &outputs {
        assert_no_body(text, &bodies, args);
    }
    // Asked for, the certificates are printed: the check above is not vacuous.
    let cert = tmp.path().join("old.pem");
    fs::write(&cert, &old.cert_pem).unwrap();
    ok(&tofu_certs(
        &store,
        "022",
        &["addcert", "host", &ep, "--cert", cert.to_str().unwrap()],
    ));
    let out = ok(&tofu_certs(&store, "022", &["export"]));
    assert!(out.contains("-----BEGIN CERTIFICATE-----"));
    assert!(!out.contains("PRIVATE KEY"));
}

/// Runs `tofu-certs --store DIR ARGS` with `TOFU_CERTS_ALLOW_OWNER` set to `allow`, or unset.
fn tofu_certs_allowing(store: &Path, allow: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(tofu_certs_binary());
    cmd.arg("--store")
        .arg(store)
        .args(args)
        .env_remove("TOFU_CERTS_STORE")
        .env_remove(tofu_core::store::ALLOW_OWNER_VARIABLE)
        .env("NO_COLOR", "1");
    if let Some(allow) = allow {
        cmd.env(tofu_core::store::ALLOW_OWNER_VARIABLE, allow);
    }
    cmd.output().unwrap()
}

/// Regression: a store owned by another user was only a log warning, and not even that for
/// root, so whoever owned the store decided whom root's services trusted.
#[test]
fn a_store_owned_by_another_user_is_refused_even_for_root_unless_that_owner_is_allowed() {
    if !rustix::process::geteuid().is_root() {
        println!("note: not running as root, so no store can be given away; test skipped");
        return;
    }
    const NOBODY: u32 = 65534;
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = cert_file(tmp.path(), "prime-pri");
    let store = tmp.path().join("store");
    ok(&tofu_certs(
        &store,
        "077",
        &[
            "addcert",
            "host",
            "10.1.1.1_8082",
            "--cert",
            cert.to_str().unwrap(),
        ],
    ));
    let db = store.join(DATABASE_FILE);
    for (given_away, fix) in [
        (&store, format!("chown -R 0 {}", store.display())),
        (&db, format!("chown 0 {}", db.display())),
    ] {
        std::os::unix::fs::chown(given_away, Some(NOBODY), None).unwrap();
        for args in [&["listcerts"][..], &["showcert", "host", "10.1.1.1_8082"]] {
            for allow in [None, Some("1234"), Some("root")] {
                let out = tofu_certs_allowing(&store, allow, args);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{args:?} {allow:?}: {stderr}");
                assert!(
                    stderr.starts_with(&format!(
                        "error: refusing to use the pin store {}: it belongs to uid 65534",
                        given_away.display()
                    )) && stderr.contains("TOFU_CERTS_ALLOW_OWNER=65534")
                        && stderr.contains(&format!("\nhint: run `{fix}`\n")),
                    "{args:?} {allow:?}: {stderr}"
                );
                assert!(out.stdout.is_empty());
            }
            for allow in ["65534", "nobody", "1234, nobody"] {
                let out = tofu_certs_allowing(&store, Some(allow), args);
                assert!(
                    out.status.success(),
                    "{args:?} allowing {allow}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        std::os::unix::fs::chown(given_away, Some(0), None).unwrap();
    }
    let out = tofu_certs_allowing(&store, Some("no-such-user-here"), &["listcerts"]);
    assert!(out.status.success(), "an unused allowance is not even read");
}

/// A tiny tmpfs mounted in a temporary directory, unmounted when dropped.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// `None`, with a visible note, when this process may not mount.
    fn mount(size: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() {
            println!("note: not running as root, so no tmpfs can be mounted; test skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            println!("note: mounting a tmpfs is not permitted here; test skipped");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Regression: on a full disk SQLite could not create the write-ahead log's index, and every
/// command, listcerts and showcert included, failed with "disk I/O error".
#[test]
fn a_full_disk_leaves_an_idle_store_readable_and_a_write_names_the_filesystem() {
    let Some(fs_) = TinyFs::mount("512k") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (pri, _) = cert_file(tmp.path(), "prime-pri");
    let (sec, _) = cert_file(tmp.path(), "prime-sec");
    let store = fs_.path().join("store");
    ok(&tofu_certs(
        &store,
        "077",
        &[
            "addcert",
            "host",
            "10.1.1.1_8082",
            "--cert",
            pri.to_str().unwrap(),
        ],
    ));
    let listed = ok(&tofu_certs(&store, "077", &["listcerts"]));
    // Fill the filesystem to the last block.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", fs_.path().join("fill").display()))
        .output()
        .unwrap();

    assert_eq!(ok(&tofu_certs(&store, "077", &["listcerts"])), listed);
    let shown = ok(&tofu_certs(
        &store,
        "077",
        &["showcert", "host", "10.1.1.1_8082"],
    ));
    assert!(shown.contains("active pin"), "{shown}");
    // The verifier's lookups, through the library.
    let lib = Store::open(&store).expect("opens read-only");
    assert!(lib.is_read_only());
    assert_eq!(
        lib.endpoint(&"10.1.1.1:8082".parse().unwrap())
            .unwrap()
            .pins
            .len(),
        1
    );
    drop(lib);

    let out = tofu_certs(
        &store,
        "077",
        &[
            "addcert",
            "host",
            "10.1.1.2_8082",
            "--cert",
            sec.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the pin store ")
            && stderr.contains(&format!(
                "the filesystem mounted on {} is full (",
                fs_.path().display()
            ))
            && stderr.contains(&format!("hint: `df -h {}`", fs_.path().display())),
        "{stderr}"
    );

    // Space again: nothing stored was lost, and writes work.
    fs::remove_file(fs_.path().join("fill")).unwrap();
    assert_eq!(ok(&tofu_certs(&store, "077", &["listcerts"])), listed);
    ok(&tofu_certs(
        &store,
        "077",
        &[
            "addcert",
            "host",
            "10.1.1.2_8082",
            "--cert",
            sec.to_str().unwrap(),
        ],
    ));
    let store_now = Store::open(&store).unwrap();
    store_now.integrity_check().unwrap();
    assert!(store_now.check().unwrap().is_sound());
}
