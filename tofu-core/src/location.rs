//! Where a pin store is: a directory (the embedded SQLite store) or a PostgreSQL database
//! named in libpq's URI syntax, completed from libpq's environment.
//!
//! A location's text never holds a password: [`fmt::Display`] writes `user:***@` where the
//! URI had one, so a location can go into any message, log line or audit actor.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where a pin store is.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory holding the SQLite database (`pins.sqlite3`).
    Directory(PathBuf),
    /// A PostgreSQL database (the cargo feature `postgres` opens it).
    Postgres(PostgresLocation),
}

impl StoreLocation {
    /// Parses `text` as `--store` and `TOFU_CERTS_STORE` do: a value starting with
    /// `postgres://` or `postgresql://` is a PostgreSQL URI, completed from the process's
    /// libpq environment (`PGHOST`, `PGUSER`, …); anything else is a directory.
    ///
    /// ```
    /// use tofu_core::StoreLocation;
    ///
    /// let dir = StoreLocation::parse("/var/lib/myservice/tofu")?;
    /// assert_eq!(dir.directory(), Some(std::path::Path::new("/var/lib/myservice/tofu")));
    /// assert_eq!(dir.backend(), "sqlite");
    /// let pg = StoreLocation::parse("postgresql://tofu:secret@db.example/pins")?;
    /// assert_eq!(pg.backend(), "postgres");
    /// assert!(!pg.to_string().contains("secret")); // never shown
    /// assert!(StoreLocation::parse("postgresql://db.example:notaport/pins").is_err());
    /// # Ok::<(), tofu_core::location::LocationError>(())
    /// ```
    ///
    /// # Errors
    /// When a PostgreSQL URI is malformed.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        text.parse()
    }

    /// The directory, for a SQLite store.
    pub fn directory(&self) -> Option<&Path> {
        match self {
            StoreLocation::Directory(d) => Some(d),
            StoreLocation::Postgres(_) => None,
        }
    }

    /// Which kind of store: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreLocation::Directory(_) => "sqlite",
            StoreLocation::Postgres(_) => "postgres",
        }
    }
}

impl FromStr for StoreLocation {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<Self, LocationError> {
        if has_postgres_scheme(text) {
            PostgresLocation::parse_with_env(text, &|k| std::env::var(k).ok())
                .map(StoreLocation::Postgres)
        } else {
            Ok(StoreLocation::Directory(PathBuf::from(text)))
        }
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(dir: PathBuf) -> Self {
        StoreLocation::Directory(dir)
    }
}

impl From<&Path> for StoreLocation {
    fn from(dir: &Path) -> Self {
        StoreLocation::Directory(dir.to_path_buf())
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Directory(d) => write!(f, "{}", d.display()),
            StoreLocation::Postgres(p) => p.fmt(f),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Directory(d) => f.debug_tuple("Directory").field(d).finish(),
            StoreLocation::Postgres(p) => f.debug_tuple("Postgres").field(p).finish(),
        }
    }
}

fn has_postgres_scheme(text: &str) -> bool {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// A malformed PostgreSQL URI, or an environment variable that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the PostgreSQL store location {shown} is not usable: {problem}. {hint}")]
pub struct LocationError {
    /// The location as given, its password masked.
    pub shown: String,
    /// What is wrong.
    pub problem: String,
    /// What to write instead.
    pub hint: &'static str,
}

const SYNTAX_HINT: &str = "Write it as libpq does: postgresql://[user@][host][:port][/database]\
                           [?param=value&...], for example postgresql://tofu@db.example:5432/tofu \
                           or postgresql:///tofu?host=/run/postgresql for a unix socket";

/// One server to try, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostgresHost {
    /// A host name or IP address, over TCP.
    Tcp(String, u16),
    /// The directory of a unix socket (`.s.PGSQL.<port>` inside it).
    Socket(PathBuf, u16),
}

impl PostgresHost {
    /// The port (TCP port, or the number in the socket's name).
    pub fn port(&self) -> u16 {
        match self {
            PostgresHost::Tcp(_, p) | PostgresHost::Socket(_, p) => *p,
        }
    }
}

impl fmt::Display for PostgresHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostgresHost::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            PostgresHost::Tcp(h, p) => write!(f, "{h}:{p}"),
            PostgresHost::Socket(d, p) => write!(f, "{}/.s.PGSQL.{p}", d.display()),
        }
    }
}

/// libpq's `sslmode`, as far as this store supports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without verifying it (libpq's default).
    Prefer,
    /// TLS, without verifying the server's certificate.
    Require,
    /// TLS, with the server's certificate verified against `sslrootcert` (or the system
    /// roots) and the host name checked.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Err(
                "sslmode verify-ca is not supported (it checks the certificate's \
                                issuer but not its name); use verify-full"
                    .into(),
            ),
            other => Err(format!(
                "sslmode {:?} is not one of disable, prefer, require, verify-full",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// A PostgreSQL database, from a libpq URI completed by libpq's environment variables.
///
/// Precedence, as in libpq: what the URI says, then `PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`,
/// `PGAPPNAME`, then the password file (`PGPASSFILE`, else `~/.pgpass`, used only when it is
/// private to its owner), then the defaults: the unix socket directory `/run/postgresql` (or
/// `/var/run/postgresql`, or `localhost` when neither has a socket; never `/tmp`, where any
/// local user may create the socket first), port 5432, the operating system's user name, a
/// database named after the user, a 10 s connect timeout, and a server that accepts writes
/// (`target_session_attrs=read-write`: a standby's pins lag).
///
/// Over TCP the server is verified by default (`sslmode=verify-full`, against `sslrootcert`,
/// else `~/.postgresql/root.crt`; `sslrootcert=system` is the system's CA bundle): a pin store
/// read from an unauthenticated server is a store a man in the middle writes. `sslmode=require`
/// (encrypted, unverified), `prefer` and `disable` are what a location says explicitly. A unix
/// socket carries no TLS (the kernel carries it), as in libpq.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresLocation {
    shown: String,
    hosts: Vec<PostgresHost>,
    user: String,
    password: Option<String>,
    dbname: String,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    connect_timeout: Duration,
    application_name: Option<String>,
    connection: Box<ConnectionOptions>,
    params: BTreeMap<String, String>,
}

/// What the connection does besides where it goes: libpq's parameters that change it, each
/// applied (none is accepted and then ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionOptions {
    /// `hostaddr`: the address to connect to for each host, in order (the host name still
    /// names the server for TLS).
    pub(crate) hostaddrs: Vec<std::net::IpAddr>,
    /// `options`: command-line options sent to the server at connection start.
    pub(crate) options: Option<String>,
    /// `target_session_attrs=any`: a read-only server (a standby) is acceptable. Without it,
    /// only a server that accepts writes is: a standby's pins lag the primary's.
    pub(crate) any_session: bool,
    /// `keepalives=0` turns TCP keepalives off.
    pub(crate) keepalives: bool,
    /// `keepalives_idle`: seconds of silence before the first keepalive.
    pub(crate) keepalives_idle: Option<Duration>,
    /// `channel_binding`.
    pub(crate) channel_binding: ChannelBinding,
}

/// libpq's `channel_binding`: whether SCRAM authentication binds itself to the TLS
/// connection, so that a man in the middle cannot relay it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ChannelBinding {
    /// Never.
    Disable,
    /// When the server offers it (libpq's default).
    #[default]
    Prefer,
    /// Always: authentication without it fails.
    Require,
}

/// Without a `connect_timeout`, this long at most is spent reaching the server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const KNOWN_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "passfile",
    "options",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "channel_binding",
    "staleness",
];

impl PostgresLocation {
    /// Parses a libpq URI, completing it from `env` (a lookup of environment variables).
    ///
    /// # Errors
    /// When the URI is malformed or a value does not parse.
    pub fn parse_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LocationError> {
        let shown = mask_password(text);
        // A password the URI may hold, by the reading that masks the most: a problem quotes
        // nothing that shares a character sequence with it, since a malformed URI may have
        // been split through the middle of its password.
        let secret = userinfo_password(text);
        let fail = |problem: String| LocationError {
            shown: shown.clone(),
            problem: match secret {
                Some(secret) => redact_quoted(&problem, secret),
                None => problem,
            },
            hint: SYNTAX_HINT,
        };
        let rest = text
            .split_once("://")
            .map(|(_, r)| r)
            .ok_or_else(|| fail("it does not start with postgresql://".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };

        let mut params: BTreeMap<String, String> = BTreeMap::new();
        // Kept apart from `params`, which `param` shows.
        let mut uri_password = None;
        if let Some((user, password)) = userinfo.map(|u| match u.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (u, None),
        }) {
            if !user.is_empty() {
                params.insert("user".into(), decode(user).map_err(&fail)?);
            }
            if let Some(p) = password {
                uri_password = Some(
                    decode(p)
                        .map_err(|_| fail("its password is not valid percent-encoding".into()))?,
                );
            }
        }
        if let Some(db) = path.filter(|p| !p.is_empty()) {
            params.insert("dbname".into(), decode(db).map_err(&fail)?);
        }
        let mut uri_hosts = Vec::new();
        for spec in hostlist.split(',').filter(|_| !hostlist.is_empty()) {
            let (host, port) = split_host_port(spec).map_err(&fail)?;
            uri_hosts.push((decode(host).map_err(&fail)?, port.map(str::to_owned)));
        }
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| fail(format!("the parameter {pair:?} has no value")))?;
            let k = decode(k).map_err(&fail)?;
            if !KNOWN_PARAMS.contains(&k.as_str()) {
                return Err(fail(format!(
                    "the parameter {:?} is not one this store understands ({})",
                    k.chars().take(40).collect::<String>(),
                    KNOWN_PARAMS.join(", ")
                )));
            }
            if k == "password" {
                uri_password = Some(
                    decode(v)
                        .map_err(|_| fail("its password is not valid percent-encoding".into()))?,
                );
            } else {
                params.insert(k, decode(v).map_err(&fail)?);
            }
        }

        let get = |key: &str, var: &str| params.get(key).cloned().or_else(|| env(var));
        // Hosts: the URI's list, else `host=` (which may list several), else PGHOST.
        let port_default = get("port", "PGPORT");
        let mut host_specs: Vec<(String, Option<String>)> = uri_hosts
            .into_iter()
            .filter(|(h, _)| !h.is_empty())
            .collect();
        if host_specs.is_empty() {
            if let Some(h) = get("host", "PGHOST").filter(|h| !h.is_empty()) {
                host_specs = h.split(',').map(|h| (h.to_owned(), None)).collect();
            }
        }
        let parse_port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| fail(format!("the port {p:?} is not a number from 1 to 65535")))
        };
        let default_port = match &port_default {
            Some(p) => parse_port(p)?,
            None => 5432,
        };
        let to_host = |h: String, port: u16| {
            if h.starts_with('/') {
                PostgresHost::Socket(PathBuf::from(h), port)
            } else {
                PostgresHost::Tcp(h, port)
            }
        };
        let hostaddrs = match params.get("hostaddr").filter(|h| !h.is_empty()) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| fail(format!("hostaddr {a:?} is not an IPv4 or IPv6 address")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if host_specs.is_empty() {
            // libpq: hostaddr alone names the servers.
            host_specs = hostaddrs.iter().map(|a| (a.to_string(), None)).collect();
        } else if !hostaddrs.is_empty() && hostaddrs.len() != host_specs.len() {
            return Err(fail(format!(
                "it names {} hosts and {} hostaddr addresses; give one address per host, in \
                 the same order",
                host_specs.len(),
                hostaddrs.len()
            )));
        }
        let mut hosts = Vec::new();
        for (h, p) in host_specs {
            let port = match p {
                Some(p) => parse_port(&p)?,
                None => default_port,
            };
            hosts.push(to_host(h, port));
        }
        if hosts
            .iter()
            .zip(&hostaddrs)
            .any(|(h, _)| matches!(h, PostgresHost::Socket(..)))
        {
            return Err(fail(
                "hostaddr is an address for TCP and one of its hosts is a unix socket".into(),
            ));
        }
        if hosts.is_empty() {
            // Not /tmp: libpq's compiled-in default on some systems, but a directory where
            // any local user can create the socket before the server does.
            let socket = ["/run/postgresql", "/var/run/postgresql"]
                .into_iter()
                .find(|d| {
                    Path::new(d)
                        .join(format!(".s.PGSQL.{default_port}"))
                        .exists()
                });
            hosts.push(match socket {
                Some(d) => PostgresHost::Socket(PathBuf::from(d), default_port),
                None => PostgresHost::Tcp("localhost".into(), default_port),
            });
        }
        let user = match get("user", "PGUSER").filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => env("USER")
                .or_else(|| env("LOGNAME"))
                .or_else(os_user_name)
                .ok_or_else(|| fail("no user name: give one in the URI or PGUSER".into()))?,
        };
        let dbname = get("dbname", "PGDATABASE")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        let sslmode = match get("sslmode", "PGSSLMODE") {
            Some(m) => m.parse().map_err(&fail)?,
            None => SslMode::VerifyFull,
        };
        // libpq's default root file, when it exists.
        let sslrootcert = get("sslrootcert", "PGSSLROOTCERT")
            .map(PathBuf::from)
            .or_else(|| {
                env("HOME")
                    .map(|h| Path::new(&h).join(".postgresql/root.crt"))
                    .filter(|p| p.is_file())
            });
        let connect_timeout = match get("connect_timeout", "PGCONNECT_TIMEOUT") {
            // libpq: zero or negative means "wait forever"; a store that must fail closed in
            // bounded time takes that as the default instead.
            Some(t) => match t.trim().parse::<i64>() {
                Ok(s) if s > 0 => Duration::from_secs(s.unsigned_abs().max(2)),
                Ok(_) => DEFAULT_CONNECT_TIMEOUT,
                Err(_) => {
                    return Err(fail(format!(
                        "connect_timeout {t:?} is not a whole number of seconds"
                    )))
                }
            },
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let application_name = get("application_name", "PGAPPNAME");
        let connection = Box::new(ConnectionOptions {
            hostaddrs,
            options: get("options", "PGOPTIONS").filter(|o| !o.is_empty()),
            any_session: match get("target_session_attrs", "PGTARGETSESSIONATTRS").as_deref() {
                None | Some("read-write" | "primary") => false,
                Some("any") => true,
                Some(other) => {
                    return Err(fail(format!(
                        "target_session_attrs {other:?} is not supported: read-write (the \
                         default: a server that accepts writes) or any (a standby too, whose \
                         pins lag the primary's and which cannot take a write)"
                    )))
                }
            },
            keepalives: match params.get("keepalives").map(|k| k.trim()) {
                None | Some("1") => true,
                Some("0") => false,
                Some(other) => return Err(fail(format!("keepalives {other:?} is not 0 or 1"))),
            },
            keepalives_idle: match params.get("keepalives_idle") {
                None => None,
                Some(t) => Some(Duration::from_secs(t.trim().parse::<u64>().map_err(
                    |_| {
                        fail(format!(
                            "keepalives_idle {t:?} is not a whole number of seconds"
                        ))
                    },
                )?)),
            },
            channel_binding: match get("channel_binding", "PGCHANNELBINDING").as_deref() {
                None | Some("prefer") => ChannelBinding::Prefer,
                Some("disable") => ChannelBinding::Disable,
                Some("require") => ChannelBinding::Require,
                Some(other) => {
                    return Err(fail(format!(
                        "channel_binding {other:?} is not one of disable, prefer, require"
                    )))
                }
            },
        });
        if connection.channel_binding == ChannelBinding::Require && sslmode == SslMode::Disable {
            return Err(fail(
                "channel_binding=require binds authentication to TLS, and sslmode=disable has none"
                    .into(),
            ));
        }
        let mut password = uri_password.or_else(|| env("PGPASSWORD"));
        if password.is_none() {
            let passfile = get("passfile", "PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
            if let Some(file) = passfile {
                password = password_from_file(&file, &hosts, &dbname, &user);
            }
        }
        Ok(PostgresLocation {
            shown,
            hosts,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            connect_timeout,
            application_name,
            connection,
            params,
        })
    }

    /// How the connection is made beyond where it goes.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn connection(&self) -> &ConnectionOptions {
        &self.connection
    }

    /// The servers to try, in order.
    pub fn hosts(&self) -> &[PostgresHost] {
        &self.hosts
    }

    /// The role to connect as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password, from the URI, `PGPASSWORD` or the password file. Never printed.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// How TLS to the server is used.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The CA certificates (PEM) that verify the server under `verify-full`.
    pub fn sslrootcert(&self) -> Option<&Path> {
        self.sslrootcert.as_deref()
    }

    /// How long at most reaching the server may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The `application_name` the server shows for the connection.
    pub fn application_name(&self) -> Option<&str> {
        self.application_name.as_deref()
    }

    /// A parameter of the URI's query (`options`, `target_session_attrs`, `staleness`, …),
    /// as written; never the password.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// What the location resolved to, for messages: `database tofu as tofu on
    /// /run/postgresql/.s.PGSQL.5432`.
    pub fn describe(&self) -> String {
        let hosts = self
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        format!("database {} as {} on {hosts}", self.dbname, self.user)
    }
}

impl fmt::Display for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PostgresLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLocation")
            .field("shown", &self.shown)
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl FromStr for PostgresLocation {
    type Err = LocationError;
    fn from_str(text: &str) -> Result<Self, LocationError> {
        Self::parse_with_env(text, &|k| std::env::var(k).ok())
    }
}

/// `text` with any password in it replaced by `***`: the one after `user:` and before the
/// last `@` (a password may hold an unencoded `/`, `?` or `@`), and the value of every query
/// parameter whose name decodes to `password`, or does not decode at all.
pub(crate) fn mask_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "***".into();
    };
    let mut out = format!("{scheme}://");
    let rest = match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            out.push_str(user);
            out.push_str(":***");
            &rest[at..]
        }
        _ => rest,
    };
    let (head, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    out.push_str(head);
    if let Some(q) = query {
        out.push('?');
        let masked: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if decode(k).map_or(true, |k| k.eq_ignore_ascii_case("password")) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&masked.join("&"));
    }
    out
}

/// The password `text` may hold before an `@`, by [`mask_password`]'s reading: what follows
/// the first `:` up to the last `@`.
fn userinfo_password(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("://")?;
    let at = rest.rfind('@')?;
    let (_, password) = rest[..at].split_once(':')?;
    Some(password)
}

/// `problem` with every quoted (`"…"`) part that overlaps `secret` (holds part of it, or is
/// part of it) replaced by `"***"`.
fn redact_quoted(problem: &str, secret: &str) -> String {
    let mut out = String::with_capacity(problem.len());
    let mut parts = problem.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        let quoted = i % 2 == 0;
        out.push_str(if quoted && overlaps(part, secret) {
            "***"
        } else {
            part
        });
    }
    out
}

/// Whether `a` and `b` share a run of bytes at an edge or inside: one holds the other, or an
/// end of one is a start of the other. (The Debug quoting of a fragment escapes little that
/// a URI holds; a fragment it escapes is compared as escaped, and redacted when in doubt.)
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if contains(a, b) || contains(b, a) {
        return true;
    }
    (1..a.len().min(b.len())).any(|k| a.ends_with(&b[..k]) || b.ends_with(&a[..k]))
}

fn split_host_port(spec: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("the host {spec:?} opens [ without closing it"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(format!("unexpected {after:?} after the host {host:?}")),
            },
        };
    }
    Ok(match spec.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (spec, None),
    })
}

/// Percent-decoding, as libpq does for every part of a URI.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a % in it is not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-encoded part of it is not UTF-8".into())
}

fn os_user_name() -> Option<String> {
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid.to_string()).then(|| name.to_owned())
    })
}

/// The password for the first host from a libpq password file
/// (`hostname:port:database:username:password`, `*` matching anything, `\` escaping), as
/// libpq reads it: only when the file is a regular file that its group and others cannot
/// read, and the first matching line wins.
fn password_from_file(
    file: &Path,
    hosts: &[PostgresHost],
    dbname: &str,
    user: &str,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.mode() & 0o077 != 0 {
        log::warn!(
            "the password file {} is readable by its group or others, and was not used; run \
             `chmod 0600 {}`",
            file.display(),
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host = hosts.first()?;
    let (host_name, port) = match host {
        // libpq matches a socket connection against "localhost".
        PostgresHost::Socket(_, p) => ("localhost".to_owned(), *p),
        PostgresHost::Tcp(h, p) => (h.clone(), *p),
    };
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_passfile_line(line);
            let [h, p, d, u, pw] = fields.as_slice() else {
                return None;
            };
            let matches = |field: &str, value: &str| field == "*" || field == value;
            (matches(h, &host_name) && matches(p, &port) && matches(d, dbname) && matches(u, user))
                .then(|| pw.clone())
        })
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<PostgresLocation, LocationError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PostgresLocation::parse_with_env(text, &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn a_directory_is_the_sqlite_store_and_a_postgres_scheme_is_a_database() {
        assert_eq!(
            "/var/lib/tofu".parse::<StoreLocation>().unwrap(),
            StoreLocation::Directory("/var/lib/tofu".into())
        );
        assert_eq!(
            "postgres-pins".parse::<StoreLocation>().unwrap().backend(),
            "sqlite"
        );
        for url in ["postgres://h/db", "postgresql://h/db", "PostgreSQL://h/db"] {
            assert_eq!(url.parse::<StoreLocation>().unwrap().backend(), "postgres");
        }
    }

    #[test]
    fn the_uri_gives_user_password_hosts_database_and_parameters() {
        let loc = parse(
            "postgresql://tofu:s%40cret@db1.example:5433,[::1]/pins?sslmode=require&connect_timeout=3",
            &[("PGUSER", "other"), ("PGDATABASE", "otherdb")],
        )
        .unwrap();
        assert_eq!(loc.user(), "tofu");
        assert_eq!(loc.password(), Some("s@cret"));
        assert_eq!(
            loc.hosts(),
            [
                PostgresHost::Tcp("db1.example".into(), 5433),
                PostgresHost::Tcp("::1".into(), 5432)
            ]
        );
        assert_eq!(loc.dbname(), "pins");
        assert_eq!(loc.sslmode(), SslMode::Require);
        assert_eq!(loc.connect_timeout(), Duration::from_secs(3));
    }

    #[test]
    fn a_unix_socket_is_a_host_parameter_that_is_a_directory() {
        let loc = parse(
            "postgresql:///tofu?host=/run/postgresql",
            &[("USER", "svc")],
        )
        .unwrap();
        assert_eq!(
            loc.hosts(),
            [PostgresHost::Socket("/run/postgresql".into(), 5432)]
        );
        assert_eq!((loc.user(), loc.dbname()), ("svc", "tofu"));
        let encoded = parse("postgresql://%2Ftmp%2Fpg:6000/x", &[("USER", "svc")]).unwrap();
        assert_eq!(
            encoded.hosts(),
            [PostgresHost::Socket("/tmp/pg".into(), 6000)]
        );
    }

    #[test]
    fn the_libpq_environment_fills_in_what_the_uri_leaves_out() {
        let loc = parse(
            "postgresql://",
            &[
                ("PGHOST", "pg.internal"),
                ("PGPORT", "6432"),
                ("PGUSER", "fleet"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "tofu"),
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/etc/ca.pem"),
                ("PGCONNECT_TIMEOUT", "4"),
            ],
        )
        .unwrap();
        assert_eq!(loc.hosts(), [PostgresHost::Tcp("pg.internal".into(), 6432)]);
        assert_eq!(
            (loc.user(), loc.password(), loc.dbname()),
            ("fleet", Some("pw"), "tofu")
        );
        assert_eq!(loc.sslmode(), SslMode::VerifyFull);
        assert_eq!(loc.sslrootcert(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(loc.connect_timeout(), Duration::from_secs(4));
        // The URI wins over the environment.
        let loc = parse("postgresql://a@h/d", &[("PGUSER", "b"), ("PGHOST", "x")]).unwrap();
        assert_eq!(
            (loc.user(), loc.hosts()[0].to_string().as_str()),
            ("a", "h:5432")
        );
    }

    #[test]
    fn a_password_never_appears_in_the_text_of_a_location() {
        for (url, shown) in [
            ("postgresql://u:hunter2@h/db", "postgresql://u:***@h/db"),
            (
                "postgresql://u:hun:ter2@h/db?x",
                "postgresql://u:***@h/db?x",
            ),
            (
                "postgres://h/db?user=u&password=hunter2",
                "postgres://h/db?user=u&password=***",
            ),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
        ] {
            assert_eq!(mask_password(url), shown);
        }
        let loc = parse("postgresql://u:hunter2@h/db?application_name=x", &[]).unwrap();
        for text in [
            loc.to_string(),
            format!("{loc:?}"),
            loc.describe(),
            StoreLocation::Postgres(loc.clone()).to_string(),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        let err = parse("postgresql://u:hunter2@h:99999/db", &[]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("99999"), "{err}");
    }

    #[test]
    fn a_password_hidden_by_encoding_or_split_by_a_malformed_uri_is_never_shown() {
        // Parameter names are percent-decoded (libpq), so is the masked one; an unencoded `/`,
        // `?` or `@` in a password splits the URI where the parser may not expect it.
        for url in [
            "postgresql://h/db?pass%77ord=hunter2",
            "postgresql://h/db?PASSWORD=hunter2",
            "postgresql://h/db?pass%zzword=hunter2",
            "postgresql://u:hun/ter2@h/db",
            "postgresql://u:hun?ter2@h/db",
            "postgresql://u:hun@ter2@h/db",
            "postgresql://u:hunter2@h:x/db",
            "postgresql://u:hunter2@[::1/db",
            "postgresql://u:h%unter2@h/db",
        ] {
            let text = match parse(url, &[("USER", "u")]) {
                Ok(loc) => {
                    assert_eq!(loc.param("password"), None, "{url}");
                    format!("{loc} {loc:?} {}", loc.describe())
                }
                Err(e) => format!("{e} {e:?}"),
            };
            for fragment in ["hunter2", "hun", "ter2"] {
                assert!(!text.contains(fragment), "{url}: {text}");
            }
        }
        let loc = parse("postgresql://h/db?pass%77ord=hunter2", &[("USER", "u")]).unwrap();
        assert_eq!(loc.password(), Some("hunter2"));
    }

    #[test]
    fn tcp_is_verified_unless_the_location_says_otherwise() {
        let loc = parse("postgresql://u@db.example/tofu", &[]).unwrap();
        assert_eq!(loc.sslmode(), SslMode::VerifyFull);
        for (url, vars, mode) in [
            (
                "postgresql://u@h/d?sslmode=require",
                &[][..],
                SslMode::Require,
            ),
            (
                "postgresql://u@h/d",
                &[("PGSSLMODE", "disable")][..],
                SslMode::Disable,
            ),
            (
                "postgresql://u@h/d?sslmode=prefer",
                &[][..],
                SslMode::Prefer,
            ),
        ] {
            assert_eq!(parse(url, vars).unwrap().sslmode(), mode, "{url}");
        }
    }

    #[test]
    fn the_default_socket_is_never_one_in_tmp() {
        // Anyone may create /tmp/.s.PGSQL.<port> before the server does.
        let port = 50_000 + (std::process::id() % 10_000) as u16;
        let squat = PathBuf::from(format!("/tmp/.s.PGSQL.{port}"));
        std::fs::write(&squat, b"").unwrap();
        let loc = parse(&format!("postgresql://u@/d?port={port}"), &[]);
        std::fs::remove_file(&squat).unwrap();
        assert_eq!(
            loc.unwrap().hosts(),
            [PostgresHost::Tcp("localhost".into(), port)]
        );
    }

    #[test]
    fn connection_parameters_are_applied_or_refused_never_ignored() {
        let loc = parse(
            "postgresql://u@db1,db2/d?hostaddr=10.0.0.1,10.0.0.2&options=-c%20statement_timeout%3D5s\
             &target_session_attrs=any&keepalives=0&keepalives_idle=7&channel_binding=require",
            &[],
        )
        .unwrap();
        let c = loc.connection();
        assert_eq!(
            c.hostaddrs,
            [
                "10.0.0.1".parse::<std::net::IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        assert_eq!(c.options.as_deref(), Some("-c statement_timeout=5s"));
        assert!(c.any_session && !c.keepalives);
        assert_eq!(c.keepalives_idle, Some(Duration::from_secs(7)));
        assert_eq!(c.channel_binding, ChannelBinding::Require);
        let only_addr = parse("postgresql://u@/d?hostaddr=192.0.2.7&port=6000", &[]).unwrap();
        assert_eq!(
            only_addr.hosts(),
            [PostgresHost::Tcp("192.0.2.7".into(), 6000)]
        );
        assert!(
            !parse("postgresql://u@h/d", &[])
                .unwrap()
                .connection()
                .any_session
        );
        for (url, problem) in [
            ("postgresql://u@h/d?hostaddr=db.example", "not an IPv4"),
            (
                "postgresql://u@a,b/d?hostaddr=10.0.0.1",
                "2 hosts and 1 hostaddr",
            ),
            (
                "postgresql://u@h/d?target_session_attrs=standby",
                "not supported",
            ),
            ("postgresql://u@h/d?keepalives=yes", "not 0 or 1"),
            (
                "postgresql://u@h/d?channel_binding=maybe",
                "disable, prefer, require",
            ),
            (
                "postgresql://u@h/d?channel_binding=require&sslmode=disable",
                "has none",
            ),
        ] {
            let err = parse(url, &[]).unwrap_err().to_string();
            assert!(err.contains(problem), "{url}: {err}");
        }
    }

    #[test]
    fn a_malformed_uri_says_what_is_wrong_and_how_to_write_it() {
        for (url, problem) in [
            ("postgresql://h/db?sslmode=verify-ca", "verify-full"),
            ("postgresql://h/db?sslmode=maybe", "disable, prefer"),
            ("postgresql://h:x/db", "port \"x\""),
            ("postgresql://h/db?bogus=1", "\"bogus\""),
            ("postgresql://h/d%zz", "hex digits"),
            ("postgresql://[::1/db", "without closing"),
            ("postgresql://h/db?connect_timeout=soon", "whole number"),
        ] {
            let err = parse(url, &[("USER", "u")]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(problem), "{url}: {text}");
            assert!(text.contains("postgresql://[user@]"), "{text}");
        }
    }

    #[test]
    fn no_connect_timeout_or_zero_means_ten_seconds_never_forever() {
        for url in ["postgresql://h/db", "postgresql://h/db?connect_timeout=0"] {
            assert_eq!(
                parse(url, &[("USER", "u")]).unwrap().connect_timeout(),
                DEFAULT_CONNECT_TIMEOUT
            );
        }
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it_and_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\ndb.example:5432:tofu:svc:pa\\:ss\n*:*:*:*:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pf = file.to_str().unwrap();
        let loc = parse("postgresql://svc@db.example/tofu", &[("PGPASSFILE", pf)]).unwrap();
        assert_eq!(loc.password(), Some("pa:ss"));
        let loc = parse("postgresql://svc@elsewhere/tofu", &[("PGPASSFILE", pf)]).unwrap();
        assert_eq!(loc.password(), Some("fallback"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loc = parse("postgresql://svc@db.example/tofu", &[("PGPASSFILE", pf)]).unwrap();
        assert_eq!(loc.password(), None);
    }
}
