//! Broken and hostile store files, beyond the cases `store.rs` already pins down (an empty
//! file, random bytes, another application's SQLite database, a newer schema, a read-only
//! store, symbolic links, a directory others can write). Each case gives an error that names
//! the file and says what to do, and leaves the file as it was; damage the open cannot see
//! fails closed where it is read and is named by `Store::integrity_check`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::CertificateDer;
use tofu_core::{store::DATABASE_FILE, Endpoint, Error, Fingerprint, Store};

fn cert(cn: &str) -> CertificateDer<'static> {
    let key = KeyPair::generate().expect("key generation");
    CertificateParams::new(vec![cn.to_string()])
        .expect("a valid name")
        .self_signed(&key)
        .expect("self-signed")
        .der()
        .clone()
}

fn ep(text: &str) -> Endpoint {
    text.parse().unwrap()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The SHA-256 of a file, to show it is unchanged.
fn digest(path: &Path) -> Fingerprint {
    Fingerprint::of(&fs::read(path).unwrap())
}

/// A closed store of `n` pins (several pages of B-tree), and its database file's bytes.
fn populated_store(dir: &Path, n: usize) -> Vec<u8> {
    let store = Store::open(dir).unwrap();
    let der = cert("shared");
    for i in 0..n {
        store
            .pin_first_use(&ep(&format!("host-{i}.example:443")), &der)
            .unwrap();
    }
    drop(store);
    fs::read(dir.join(DATABASE_FILE)).unwrap()
}

/// A fresh store directory (mode 0700) whose database file holds `bytes`.
fn store_dir_with(parent: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o700);
    fs::write(dir.join(DATABASE_FILE), bytes).unwrap();
    dir
}

/// Opening `dir` (both ways) fails as `check` expects, names the database file, and leaves
/// the database file's bytes as they were.
fn assert_refused(dir: &Path, check: impl Fn(&Error) -> bool) -> String {
    let db = dir.join(DATABASE_FILE);
    let before = digest(&db);
    let mut message = String::new();
    for open in [Store::open, Store::open_existing] {
        let err = open(dir).expect_err("the damaged file is refused");
        assert!(check(&err), "{}: unexpected error {err:?}", db.display());
        message = err.to_string();
        assert!(message.contains(DATABASE_FILE), "names the file: {message}");
        assert_eq!(digest(&db), before, "the file is unchanged");
    }
    message
}

#[test]
fn a_store_cut_short_anywhere_is_refused_as_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = populated_store(&tmp.path().join("whole"), 300);
    let len = bytes.len();
    assert!(len > 16 * 4096, "the store spans many pages ({len} bytes)");
    // Inside the last page (which SQLite would read as zeros), on page boundaries, in the
    // middle, inside the 100-byte header, and down to one byte.
    let cuts = [
        len - 1,
        len - 100,
        len - 4096,
        len - 3 * 4096,
        len / 2,
        len / 2 + 17,
        8192,
        4096,
        1000,
        100,
        99,
        16,
        1,
    ];
    for cut in cuts {
        let dir = store_dir_with(tmp.path(), &format!("cut-{cut}"), &bytes[..cut]);
        let message = assert_refused(&dir, |e| matches!(e, Error::Corrupt { .. }));
        assert!(
            message.contains("restore the last `tofu-certs export` backup"),
            "says what to do: {message}"
        );
        if cut < 100 || cut % 4096 != 0 {
            assert!(
                message.contains("truncated"),
                "says what happened: {message}"
            );
        }
    }
}

/// Regression: a store cut short inside its last page opened, passed `integrity_check`
/// (SQLite reads missing bytes as zeros) and then failed reads with "Conversion error ...
/// \"first-us\\0\" is not a pin source", while writes went on into the damaged file.
#[test]
fn a_store_cut_inside_its_last_page_is_named_as_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = populated_store(&tmp.path().join("whole"), 300);
    let dir = store_dir_with(tmp.path(), "cut", &bytes[..bytes.len() - 1]);
    let message = assert_refused(&dir, |e| matches!(e, Error::Corrupt { .. }));
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("4096-byte pages"), "{message}");

    let mut appended = bytes.clone();
    appended.extend_from_slice(b"garbage");
    let dir = store_dir_with(tmp.path(), "appended", &appended);
    let message = assert_refused(&dir, |e| matches!(e, Error::Corrupt { .. }));
    assert!(message.contains("appended to"), "{message}");
}

/// The page number (from 1) where SQLite keeps the root of table or index `name`.
fn root_page(db: &Path, name: &str) -> usize {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let page: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    usize::try_from(page).unwrap()
}

#[test]
fn a_zeroed_page_fails_closed_where_it_is_read_and_integrity_check_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let bytes = populated_store(&whole, 300);
    let page = root_page(&whole.join(DATABASE_FILE), "pin");
    let mut damaged = bytes.clone();
    damaged[(page - 1) * 4096..page * 4096].fill(0);
    let dir = store_dir_with(tmp.path(), "zeroed", &damaged);
    let db = dir.join(DATABASE_FILE);

    // The damage is in the pins themselves, which the open does not read (a million pins
    // cannot be checked on every open): it opens, and every read of a pin fails closed.
    let store = Store::open(&dir).expect("the header and schema are intact");
    let corrupt = |r: Result<_, Error>, what: &str| match r {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, db, "{what}"),
        Err(other) => panic!("{what}: expected Corrupt, got {other:?}"),
        Ok(_) => panic!("{what}: read a damaged store without an error"),
    };
    let pinned = ep("host-7.example:443");
    corrupt(
        store.endpoint(&pinned).map(drop),
        "lookup of a pinned endpoint",
    );
    // Never "no pin, so pin what is presented now": that would reopen the first-use window.
    corrupt(
        store.pin_first_use(&pinned, &cert("attacker")).map(drop),
        "first use of a pinned endpoint",
    );
    corrupt(
        store
            .pin_first_use(&ep("new.example:443"), &cert("new"))
            .map(drop),
        "first use of a new endpoint",
    );
    corrupt(
        store.for_each_pin(|_| std::ops::ControlFlow::Continue(())),
        "listing",
    );
    let err = store
        .integrity_check()
        .expect_err("integrity_check finds the damage");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    drop(store);
    assert_eq!(
        digest(&db),
        Fingerprint::of(&damaged),
        "nothing was written"
    );
}

#[test]
fn a_garbage_write_ahead_log_is_ignored_and_the_pins_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    populated_store(&dir, 50);
    // A log without SQLite's magic and checksums holds no committed transaction.
    let mut x: u32 = 0x1234_5678;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    fs::write(dir.join(format!("{DATABASE_FILE}-wal")), &garbage).unwrap();
    let store = Store::open(&dir).unwrap();
    store.integrity_check().unwrap();
    let mut pins = 0;
    store
        .for_each_pin(|_| {
            pins += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(pins, 50);
}

#[test]
fn a_fifo_in_place_of_a_store_file_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, name) in [
        DATABASE_FILE.to_string(),
        format!("{DATABASE_FILE}-wal"),
        format!("{DATABASE_FILE}-shm"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("store-{i}"));
        if i == 0 {
            fs::create_dir(&dir).unwrap();
            set_mode(&dir, 0o700);
        } else {
            drop(Store::open(&dir).unwrap());
        }
        let fifo = dir.join(&name);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo is part of coreutils");
        assert!(made.success());
        // Opening a FIFO for reading blocks until a writer comes: the open must not try.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir2 = dir.clone();
        std::thread::spawn(move || tx.send(Store::open(&dir2).map(drop)).unwrap());
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("opening a store with a FIFO at {name} hung"));
        match result {
            Err(Error::Unusable { path, reason }) => {
                assert_eq!(path, fifo);
                assert!(reason.contains("not a regular file"), "{reason}");
            }
            other => panic!("{name}: expected Unusable, got {other:?}"),
        }
    }
}

#[test]
fn a_huge_sparse_file_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = store_dir_with(tmp.path(), "sparse", b"");
    let db = dir.join(DATABASE_FILE);
    fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let started = Instant::now();
    for open in [Store::open, Store::open_existing] {
        let err = open(&dir).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the file is not read through: {:?}",
        started.elapsed()
    );
    assert_eq!(fs::metadata(&db).unwrap().len(), 4 << 30);
}

/// Set in the environment of the copy of this test binary that runs the unreadable-store
/// checks as the unprivileged user `nobody`: the directory holding the cases.
const UNREADABLE_CHILD: &str = "TOFU_CORE_TEST_UNREADABLE_STORE";

/// The cases: a database file nobody may read, and a store directory nobody may enter.
fn check_unreadable_stores(parent: &Path) {
    for (name, expect_path) in [("file-000", DATABASE_FILE), ("dir-000", DATABASE_FILE)] {
        let dir = parent.join(name);
        for open in [Store::open, Store::open_existing] {
            let err = open(&dir).expect_err("an unreadable store is refused");
            let message = err.to_string();
            assert!(
                message.contains(expect_path) && message.contains(&*dir.to_string_lossy()),
                "{name}: the message names the file: {message}"
            );
            assert!(
                message.to_lowercase().contains("permission denied")
                    || matches!(err, Error::ReadOnly { .. }),
                "{name}: the message says why: {message}"
            );
        }
    }
}

#[test]
fn an_unreadable_store_is_refused_and_says_why() {
    if let Some(parent) = std::env::var_os(UNREADABLE_CHILD) {
        check_unreadable_stores(Path::new(&parent));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path();
    for name in ["file-000", "dir-000"] {
        populated_store(&parent.join(name), 3);
    }
    let file_000 = parent.join("file-000").join(DATABASE_FILE);
    set_mode(&file_000, 0o000);
    let dir_000 = parent.join("dir-000");
    let before = [digest(&file_000), digest(&dir_000.join(DATABASE_FILE))];
    set_mode(&dir_000, 0o000);

    if !rustix::process::geteuid().is_root() {
        check_unreadable_stores(parent);
    } else {
        // Permissions do not restrict root: run the checks in a copy of this test binary as
        // `nobody`, made the owner of the stores (as the owner whose mode forbids reading).
        const NOBODY: u32 = 65534;
        let setpriv = Path::new("/usr/bin/setpriv");
        if !setpriv.exists() {
            println!("note: running as root without setpriv; the unreadable checks were skipped");
            return;
        }
        set_mode(parent, 0o711);
        for path in [
            parent.join("file-000"),
            file_000.clone(),
            dir_000.clone(),
            dir_000.join(DATABASE_FILE),
        ] {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let out = std::process::Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "an_unreadable_store_is_refused_and_says_why",
                "--nocapture",
            ])
            .env(UNREADABLE_CHILD, parent)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the checks failed as user nobody:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    set_mode(&dir_000, 0o700);
    set_mode(&file_000, 0o600);
    assert_eq!(
        [digest(&file_000), digest(&dir_000.join(DATABASE_FILE))],
        before,
        "nothing was written"
    );
}

// ---------------------------------------------------------------------------------------------
// Unsafe store files, refused as OpenSSH's StrictModes refuses them (issue 11, item 3)

/// The path and the fix of an [`Error::Unsafe`], or a panic saying what came instead.
fn unsafe_refusal(result: Result<Store, Error>, what: &str) -> (PathBuf, String, String) {
    match result {
        Err(Error::Unsafe { path, problem, fix }) => (path, problem, fix),
        Err(other) => panic!("{what}: expected Unsafe, got {other:?}"),
        Ok(_) => panic!("{what}: the store opened"),
    }
}

/// A database file with a second name gives SQLite two write-ahead logs (one per name), and
/// writes acknowledged through one name are lost to the other. Regression: it opened.
#[test]
fn a_store_file_with_a_second_hard_link_is_refused_naming_the_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    populated_store(&dir, 3);
    let db = dir.join(DATABASE_FILE);

    // A second name inside the store directory: the fix removes exactly it.
    let inside = dir.join("copy.sqlite3");
    fs::hard_link(&db, &inside).unwrap();
    for open in [Store::open, Store::open_existing] {
        let (path, problem, fix) = unsafe_refusal(open(&dir), "a link inside");
        assert_eq!(path, db);
        assert!(problem.contains("2 hard links"), "{problem}");
        assert_eq!(fix, format!("rm {}", inside.display()));
    }
    fs::remove_file(&inside).unwrap();

    // A second name elsewhere: the fix says how to find it.
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    set_mode(&other, 0o700);
    fs::hard_link(&db, other.join(DATABASE_FILE)).unwrap();
    let (path, _, fix) = unsafe_refusal(Store::open(&dir), "a link elsewhere");
    assert_eq!(path, db);
    assert!(
        fix.starts_with("find ") && fix.contains("-samefile"),
        "{fix}"
    );
    let (path, _, _) = unsafe_refusal(Store::open(&other), "the other name");
    assert_eq!(path, other.join(DATABASE_FILE));
    fs::remove_file(other.join(DATABASE_FILE)).unwrap();

    // The write-ahead log and its index too, while a store holds them open.
    let held = Store::open(&dir).unwrap();
    held.endpoint(&ep("host-1.example:443")).unwrap();
    for side in ["-wal", "-shm"] {
        let file = dir.join(format!("{DATABASE_FILE}{side}"));
        let link = dir.join(format!("link{side}"));
        fs::hard_link(&file, &link).unwrap();
        let (path, _, fix) = unsafe_refusal(Store::open(&dir), side);
        assert_eq!(path, file);
        assert_eq!(fix, format!("rm {}", link.display()));
        fs::remove_file(&link).unwrap();
    }
    drop(held);
    Store::open(&dir).expect("with the extra names gone, the store opens");
}

/// Regression: only the directory's mode was checked.
#[test]
fn a_store_file_others_can_write_is_refused_with_the_chmod_that_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    populated_store(&dir, 3);
    let db = dir.join(DATABASE_FILE);
    for bad in [0o620, 0o602, 0o666] {
        set_mode(&db, bad);
        for open in [Store::open, Store::open_existing] {
            let (path, problem, fix) = unsafe_refusal(open(&dir), &format!("{bad:o}"));
            assert_eq!(path, db);
            assert!(problem.contains(&format!("mode {bad:o}")), "{problem}");
            assert_eq!(fix, format!("chmod 600 {}", db.display()));
        }
    }
    set_mode(&db, 0o644);
    drop(Store::open(&dir).expect("readable by others is the owner's choice"));
    set_mode(&db, 0o600);

    let held = Store::open(&dir).unwrap();
    held.endpoint(&ep("host-1.example:443")).unwrap();
    for side in ["-wal", "-shm"] {
        let file = dir.join(format!("{DATABASE_FILE}{side}"));
        set_mode(&file, 0o666);
        let (path, _, fix) = unsafe_refusal(Store::open(&dir), side);
        assert_eq!(path, file);
        assert_eq!(fix, format!("chmod 600 {}", file.display()));
        set_mode(&file, 0o600);
    }
}

/// Regression: SQLite refused the path with a bare "unable to open database file".
#[test]
fn a_symbolic_link_in_the_store_path_is_named_with_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    populated_store(&real.join("store"), 1);
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for open in [Store::open, Store::open_existing] {
        let (path, problem, fix) = unsafe_refusal(open(link.join("store")), "linked parent");
        assert_eq!(path, link);
        assert!(
            problem.contains("symbolic link") && problem.contains(&*real.to_string_lossy()),
            "says where it points: {problem}"
        );
        assert!(
            fix.contains(&*real.join("store").to_string_lossy()),
            "the fix uses the real path: {fix}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fail closed on a damaged index (issue 11, item 4)

/// Drops the last entry of the pin table's (endpoint, fingerprint) index in a closed store by
/// lowering its root leaf page's cell count: the page stays well formed, so SQLite reads it
/// without complaint, and a lookup of the endpoint whose key sorts last finds nothing.
fn drop_last_index_entry(dir: &Path) {
    drop_last_entry_of(dir, "sqlite_autoindex_pin_1");
}

/// [`drop_last_index_entry`] for the index `index`.
fn drop_last_entry_of(dir: &Path, index: &str) {
    let db = dir.join(DATABASE_FILE);
    let page = root_page(&db, index);
    let mut bytes = fs::read(&db).unwrap();
    let header = (page - 1) * 4096 + if page == 1 { 100 } else { 0 };
    assert_eq!(bytes[header], 0x0a, "the index fits in one leaf page");
    let cells = u16::from_be_bytes([bytes[header + 3], bytes[header + 4]]);
    bytes[header + 3..header + 5].copy_from_slice(&(cells - 1).to_be_bytes());
    fs::write(&db, bytes).unwrap();
}

/// Regression: with its index entry gone, a pinned endpoint looked unpinned, and the next
/// first use pinned whatever was presented beside the real pin.
#[test]
fn a_pin_missing_from_the_index_is_never_pinned_again_on_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(&dir).unwrap();
    for name in ["a.example:443", "b.example:443", "z.example:443"] {
        store.pin_first_use(&ep(name), &cert(name)).unwrap();
    }
    drop(store);
    drop_last_index_entry(&dir);

    let store = Store::open(&dir).unwrap();
    let victim = ep("z.example:443");
    match store.pin_first_use(&victim, &cert("attacker")) {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("z.example:443"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(store);
    // What is in the table is what was pinned, and nothing more.
    let conn = rusqlite::Connection::open(dir.join(DATABASE_FILE)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM pin NOT INDEXED", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3, "nothing was pinned");
    drop(conn);

    let report = Store::open(&dir).unwrap().check().unwrap();
    assert!(!report.is_sound());
    assert!(
        report.findings.iter().any(|f| f.kind == "sqlite"),
        "integrity_check names the index: {report:?}"
    );
}

/// The same for a pin made from a fingerprint: with its index entry gone, the endpoint's
/// awaited pin must not make way for a first use of whatever is presented.
#[test]
fn an_awaited_pin_missing_from_the_index_is_never_pinned_over_on_first_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(&dir).unwrap();
    for name in ["a.example:443", "b.example:443", "z.example:443"] {
        let fp = tofu_core::Fingerprint::of(&cert(name));
        store
            .await_pin(&ep(name), &fp, tofu_core::pin::PinMatch::Certificate, None)
            .unwrap();
    }
    drop(store);
    drop_last_entry_of(&dir, "sqlite_autoindex_awaited_1");

    let store = Store::open(&dir).unwrap();
    let victim = ep("z.example:443");
    // Through the index the endpoint now looks unpinned ...
    assert!(!store.endpoint(&victim).unwrap().is_pinned());
    // ... but the first-use write reads the tables themselves and fails closed.
    match store.pin_first_use(&victim, &cert("attacker")) {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("z.example:443"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(store);
    let conn = rusqlite::Connection::open(dir.join(DATABASE_FILE)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM pin NOT INDEXED", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "nothing was pinned");
}
