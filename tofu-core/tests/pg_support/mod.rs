//! A fresh PostgreSQL database per test, on the server `TOFU_TEST_POSTGRES` names.
//!
//! Shared by the integration tests of `tofu-core` (`mod pg_support;`) and of the `tests`
//! crate (`#[path = "../../tofu-core/tests/pg_support/mod.rs"] mod pg_support;`), so there is
//! one copy. It talks to the server with `psql` (installed with the server), so the tests
//! need no PostgreSQL client crate of their own.
//!
//! Without `TOFU_TEST_POSTGRES` the PostgreSQL tests skip, saying so on stderr; with
//! `TOFU_TEST_POSTGRES_REQUIRED=1` (as CI sets it) a test that would skip fails instead.
//! `eval "$(.ci/postgres start)"` starts a throwaway server and sets the variable.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The server's URL, in libpq's URI syntax, for example
/// `postgresql://postgres@/postgres?host=/tmp/tofu-pg.abc123&port=55432`.
pub const SERVER_VARIABLE: &str = "TOFU_TEST_POSTGRES";
/// `1`: a PostgreSQL test without a server fails instead of skipping.
pub const REQUIRED_VARIABLE: &str = "TOFU_TEST_POSTGRES_REQUIRED";

/// What a test prints when it skips.
pub const SKIPPED: &str = "skipped: TOFU_TEST_POSTGRES is not set (PostgreSQL tests did not run)";

/// The URL of a new, empty database on the server `TOFU_TEST_POSTGRES` names, with the same
/// user, host and port parameters and its own database name; `None` (after saying so on
/// stderr) when the variable is unset.
///
/// The database stays until [`drop_database`] (or a [`DropOnDrop`] guard) drops it, or the
/// server is thrown away (`.ci/postgres stop`).
///
/// # Panics
/// When the variable is unset and `TOFU_TEST_POSTGRES_REQUIRED=1`, or when the server cannot
/// create the database.
pub fn fresh_database() -> Option<String> {
    let base = server_url(&|k| std::env::var(k).ok())?;
    let name = unique_name(std::thread::current().name().unwrap_or("test"));
    create_database(&base, &name);
    Some(database_url(&base, &name))
}

/// The server's URL from `env`, or `None` when the PostgreSQL tests skip.
///
/// # Panics
/// When the server is unset and required.
pub fn server_url(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    match env(SERVER_VARIABLE).filter(|v| !v.trim().is_empty()) {
        Some(url) => Some(url),
        None if env(REQUIRED_VARIABLE).as_deref() == Some("1") => panic!(
            "{SERVER_VARIABLE} is not set but {REQUIRED_VARIABLE}=1 requires the PostgreSQL \
             tests to run. Start a throwaway server first: eval \"$(.ci/postgres start)\" \
             (and `.ci/postgres stop \"$TOFU_TEST_POSTGRES_DIR\"` afterwards)"
        ),
        None => {
            eprintln!("{SKIPPED}");
            None
        }
    }
}

/// A database name no other test, thread or process uses: `tofu_<pid>_<n>_<test>`, the
/// test's name cut down to what an unquoted identifier may hold, within PostgreSQL's 63 bytes.
pub fn unique_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let test = test.rsplit("::").next().unwrap_or(test);
    let mut name = format!("tofu_{}_{n}_", std::process::id());
    name.extend(test.chars().map(|c| c.to_ascii_lowercase()).map(|c| {
        if c.is_ascii_alphanumeric() {
            c
        } else {
            '_'
        }
    }));
    name.truncate(63);
    name
}

/// `base` with its database replaced by `name`: the same scheme, user, hosts and parameters,
/// less any `dbname=` parameter (which would win over the path).
pub fn database_url(base: &str, name: &str) -> String {
    let (scheme, rest) = base
        .split_once("://")
        .unwrap_or_else(|| panic!("{SERVER_VARIABLE}={base} is not a postgresql:// URL"));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let mut url = format!("{scheme}://{authority}/{name}");
    let params: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty() && !p.starts_with("dbname="))
        .collect();
    if !params.is_empty() {
        url.push('?');
        url.push_str(&params.join("&"));
    }
    url
}

/// Runs `sql` with `psql` on the database at `url`; its output (unaligned, tuples only), or
/// what `psql` said on failure.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(psql_program())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .map_err(|e| {
            format!(
                "cannot run psql ({e}); it comes with the PostgreSQL server packages \
                 (apt-get install postgresql)"
            )
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim_end().to_owned())
    }
}

fn psql_program() -> String {
    if let Ok(p) = std::env::var("PSQL") {
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("psql").is_file()));
    if !on_path {
        // Debian keeps the binaries of each major version out of PATH.
        if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
            for d in dirs.flatten() {
                let p = d.path().join("bin/psql");
                if p.is_file() {
                    return p.to_string_lossy().into_owned();
                }
            }
        }
    }
    "psql".to_owned()
}

fn create_database(base: &str, name: &str) {
    let sql = format!("CREATE DATABASE \"{name}\"");
    let mut attempt = 0;
    loop {
        match psql(base, &sql) {
            Ok(_) => return,
            // Another session had the template open for a moment (CREATE DATABASE copies it).
            Err(e) if e.contains("is being accessed by other users") && attempt < 10 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            Err(e) => panic!(
                "cannot create the test database {name} on {SERVER_VARIABLE}={base}: {e}\n\
                 Is the server running? eval \"$(.ci/postgres start)\" starts one."
            ),
        }
    }
}

/// Drops the database at `url` (made by [`fresh_database`]), closing any connection still
/// open to it. A failure is reported on stderr, not raised: it runs while a test ends.
pub fn drop_database(url: &str) {
    let Some(base) = std::env::var(SERVER_VARIABLE).ok() else {
        return;
    };
    let name = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('?').next())
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, db)| db)
        .unwrap_or_default();
    if !name.starts_with("tofu_") {
        eprintln!("not dropping {url}: not a database fresh_database made");
        return;
    }
    if let Err(e) = psql(
        &base,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    ) {
        eprintln!("could not drop the test database {name}: {e}");
    }
}

/// Drops its database when it goes out of scope, after the test's stores have closed.
#[derive(Debug)]
pub struct DropOnDrop(pub String);

impl Drop for DropOnDrop {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// A PostgreSQL cluster of the test's own (for a test that stops, restarts or freezes its
/// server), started with `.ci/postgres` on a free port and removed when dropped.
pub struct Cluster {
    /// Its `postgres` database, over the unix socket.
    pub url: String,
    /// The directory holding its data, socket and log.
    pub dir: String,
    /// Its port (socket name and TCP on 127.0.0.1).
    pub port: u16,
}

const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/postgres");

impl Cluster {
    /// Starts one; `None`, saying so on stderr, when this machine has no server binaries
    /// (and `TOFU_TEST_POSTGRES_REQUIRED` is not set).
    pub fn start() -> Option<Cluster> {
        // A port the kernel just handed out and took back: free, unlike a port derived from
        // the process id, which two test binaries running at once can both pick.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let out = Command::new("bash")
            .args([CLUSTER_SCRIPT, "start"])
            .env("TOFU_PG_PORT", port.to_string())
            .output()
            .expect("bash runs .ci/postgres");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("no PostgreSQL server binaries")
                && std::env::var(REQUIRED_VARIABLE).as_deref() != Ok("1")
            {
                eprintln!("skipped: {err}");
                return None;
            }
            panic!("cannot start a cluster on port {port}: {err}");
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                .map(|v| v.trim_end_matches('\'').to_owned())
                .unwrap_or_else(|| panic!(".ci/postgres printed no {name}: {text}"))
        };
        Some(Cluster {
            url: var(SERVER_VARIABLE),
            dir: var("TOFU_TEST_POSTGRES_DIR"),
            port,
        })
    }

    /// Runs `pg_ctl -D <data> -l <log> -w ARGS` as the cluster's owner.
    pub fn pg_ctl(&self, args: &[&str]) {
        let bindir = Command::new("sh")
            .args([
                "-c",
                "for d in /usr/lib/postgresql/*/bin; do [ -x $d/pg_ctl ] && echo $d && break; \
                 done",
            ])
            .output()
            .expect("sh runs");
        let pg_ctl = match String::from_utf8_lossy(&bindir.stdout).trim() {
            "" => "pg_ctl".to_owned(),
            dir => format!("{dir}/pg_ctl"),
        };
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &pg_ctl]);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let status = cmd
            .args(["-D", &format!("{}/data", self.dir)])
            .args(["-l", &format!("{}/server.log", self.dir)])
            .args(["-w", "-t", "60"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl {args:?}");
    }

    /// Stops the server (`-m fast`), keeping its data.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts the stopped server again, with the options `.ci/postgres` gave it.
    pub fn start_again(&self) {
        let options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.dir, self.port
        );
        self.pg_ctl(&["-o", &options, "start"]);
    }

    /// Restarts the server (`-m fast`).
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args([CLUSTER_SCRIPT, "stop", &self.dir])
            .status();
    }
}
