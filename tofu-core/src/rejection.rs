//! Why the verifier refused a certificate, in words an operator can act on.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{
    cert::{CertificateDetails, CertificateError},
    pin::Pin,
    text::escape_name,
    Endpoint, Fingerprint,
};

/// Why a [`TofuVerifier`](crate::TofuVerifier) refused a handshake.
///
/// rustls carries it as `Error::InvalidCertificate(CertificateError::Other(..))` and prints it
/// with `Debug` (in `{}` and `{:?}` alike), so `Debug` here prints the same full message as
/// `Display`. Get it back from a rustls or I/O error with [`TofuError::from_rustls`] or
/// [`TofuError::from_io`], and from the error of any other stack (hyper-util, ureq, reqwest,
/// tonic) with [`TofuError::find`].
#[derive(Clone)]
#[non_exhaustive]
pub enum TofuError {
    /// The endpoint is pinned to other certificates.
    Mismatch(Box<Mismatch>),
    /// The endpoint has no pin and the policy is strict.
    NotPinned(Box<NotPinned>),
    /// The verifier was used for a server name other than the one it was built for.
    WrongServerName {
        /// The endpoint the verifier is bound to.
        endpoint: Endpoint,
        /// The server name it expects.
        expected: String,
        /// The server name rustls was asked to connect to.
        requested: String,
    },
    /// The server presented something that is not a usable certificate.
    UnusableCertificate {
        /// The endpoint.
        endpoint: Endpoint,
        /// What is wrong with it.
        reason: CertificateError,
    },
    /// Other threads or processes kept changing the endpoint's pins while this handshake
    /// tried to record its certificate; the handshake fails closed.
    Contended {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// The pin store could not be read or written; the handshake fails closed.
    Store {
        /// The endpoint.
        endpoint: Endpoint,
        /// The store's error.
        error: Arc<crate::Error>,
    },
}

/// The data of a certificate mismatch.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The endpoint's pins (active and staged).
    pub pinned: Vec<Pin>,
    /// The endpoint's awaited pins (made from a fingerprint, no certificate yet).
    pub awaited: Vec<crate::pin::AwaitedPin>,
    /// The certificate presented.
    pub presented: CertificateDetails,
    /// Whether the presented certificate was kept in quarantine (so it can be accepted by
    /// fingerprint).
    pub quarantined: bool,
    /// Whether the server proved it holds the presented certificate's key (the handshake
    /// signature verified). When it did not, it may be replaying someone else's certificate,
    /// and nothing was recorded.
    pub key_proved: bool,
    /// Whether the policy pins on first use (so that deleting the pin lets the next
    /// connection pin what the server presents).
    pub pins_on_first_use: bool,
    /// ` --store DIR`, for the commands shown.
    pub store_arg: String,
}

/// What the certificate of a mismatch changed, compared with the endpoint's pins: the
/// question an operator asks first, because the answer says how suspicious the change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhatChanged {
    /// The public key of a pinned certificate, in a new certificate: a renewal or a reissue,
    /// likely benign (whoever presents it proved they hold the pinned key).
    SameKey,
    /// A new public key, with the subject and issuer of a pinned certificate: a server that
    /// was re-keyed, or someone imitating it; suspicious until its administrator confirms it.
    NewKeySameNames,
    /// A new public key and other names: suspicious.
    NewKey,
}

impl WhatChanged {
    /// `same-key`, `new-key-same-names` or `new-key`, as JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            WhatChanged::SameKey => "same-key",
            WhatChanged::NewKeySameNames => "new-key-same-names",
            WhatChanged::NewKey => "new-key",
        }
    }
}

impl Mismatch {
    /// What the presented certificate changed, compared with the pins (a key found in any
    /// pin counts first, then the names).
    pub fn change(&self) -> WhatChanged {
        let p = &self.presented;
        if self
            .pinned
            .iter()
            .any(|pin| pin.details.spki_fingerprint == p.spki_fingerprint)
        {
            WhatChanged::SameKey
        } else if self
            .pinned
            .iter()
            .any(|pin| pin.details.subject == p.subject && pin.details.issuer == p.issuer)
        {
            WhatChanged::NewKeySameNames
        } else {
            WhatChanged::NewKey
        }
    }
}

/// A refusal as a service's callback sees it ([`crate::verifier::TofuVerifierBuilder::on_refusal`]):
/// which endpoint, what it presented, what it is pinned to, and what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The fingerprint of the certificate presented.
    pub presented: Fingerprint,
    /// The fingerprints of the endpoint's active pins (empty: it has none, and the policy is
    /// strict).
    pub pinned: Vec<Fingerprint>,
    /// What the presented certificate changed (`None` when the endpoint has no pin).
    pub change: Option<WhatChanged>,
    /// Whether the server proved it holds the presented certificate's key.
    pub key_proved: bool,
    /// The endpoint is in report-only mode, so the connection went on: recorded and
    /// reported as a refusal, but not refused.
    pub let_through: bool,
}

impl Refusal {
    /// Whether the presented certificate has a public key none of the pins has: the case to
    /// treat as suspicious.
    pub fn key_changed(&self) -> bool {
        self.change != Some(WhatChanged::SameKey)
    }
}

/// The data of a refusal under the strict policy.
#[derive(Clone, Debug)]
pub struct NotPinned {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The certificate presented.
    pub presented: CertificateDetails,
    /// Whether the presented certificate was kept in quarantine (so it can be accepted by
    /// fingerprint).
    pub quarantined: bool,
    /// Whether the server proved it holds the presented certificate's key; see
    /// [`Mismatch::key_proved`].
    pub key_proved: bool,
    /// ` --store DIR`, for the commands shown.
    pub store_arg: String,
}

/// Said after the presented certificate when the server did not prove it holds its key.
fn write_unproved(f: &mut fmt::Formatter<'_>, key_proved: bool) -> fmt::Result {
    if key_proved {
        return Ok(());
    }
    writeln!(
        f,
        "The server did not prove it holds the key of the certificate it presented (the \
         handshake signature did not verify with it), so it may be replaying someone else's \
         certificate; nothing was recorded, and there is nothing to accept."
    )?;
    writeln!(f)
}

impl TofuError {
    /// Finds a `TofuError` inside a rustls error.
    pub fn from_rustls(error: &rustls::Error) -> Option<&TofuError> {
        match error {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<TofuError>()
            }
            _ => None,
        }
    }

    /// Finds a `TofuError` inside an I/O error, as `rustls::StreamOwned` and tokio-rustls
    /// return them.
    pub fn from_io(error: &std::io::Error) -> Option<&TofuError> {
        let inner = error.get_ref()?;
        if let Some(rustls) = inner.downcast_ref::<rustls::Error>() {
            return Self::from_rustls(rustls);
        }
        inner.downcast_ref::<TofuError>()
    }

    /// Finds a `TofuError` anywhere in the chain of `error`: the error itself, its
    /// [`source`](std::error::Error::source)s, and what an [`std::io::Error`] or a
    /// `rustls::Error::InvalidCertificate(CertificateError::Other(..))` carries (neither
    /// shows it as a source). So a refusal seen through an HTTP client, which wraps the
    /// handshake's error a few times, can be turned back into the structured error.
    ///
    /// ```
    /// use tofu_core::TofuError;
    /// fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    ///     match TofuError::find(error) {
    ///         Some(refusal) => format!("refused by the pin of {}:\n{refusal}", refusal.endpoint()),
    ///         None => format!("failed: {error}"),
    ///     }
    /// }
    /// # let io = std::io::Error::other("no route to host");
    /// # assert_eq!(explain(&io), "failed: no route to host");
    /// ```
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TofuError> {
        // Bounded, in case some error's chain loops back on itself.
        let mut next = Some(error);
        for _ in 0..MAX_CHAIN {
            let error = next?;
            if let Some(found) = error.downcast_ref::<TofuError>() {
                return Some(found);
            }
            if let Some(rustls) = error.downcast_ref::<rustls::Error>() {
                next = match rustls {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
                    | rustls::Error::Other(other) => Some(other.0.as_ref()),
                    _ => None,
                };
                continue;
            }
            next = match error.downcast_ref::<std::io::Error>() {
                // `io::Error::source` skips the error it wraps and goes to that one's source.
                Some(io) => match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => None,
                },
                None => Self::carried(error).or_else(|| error.source()),
            };
        }
        None
    }

    /// What an error that shows no source carries, for the stacks whose errors do that.
    #[allow(clippy::needless_return, unused_variables)]
    fn carried<'a>(
        error: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a (dyn std::error::Error + 'static)> {
        // ureq 3's `Error` implements `std::error::Error` without a source.
        #[cfg(feature = "ureq")]
        if let Some(ureq) = error.downcast_ref::<ureq::Error>() {
            return match ureq {
                ureq::Error::Io(io) => Some(io),
                ureq::Error::Other(other) => Some(other.as_ref()),
                _ => None,
            };
        }
        None
    }

    /// The endpoint concerned.
    pub fn endpoint(&self) -> &Endpoint {
        match self {
            TofuError::Mismatch(m) => &m.endpoint,
            TofuError::NotPinned(n) => &n.endpoint,
            TofuError::WrongServerName { endpoint, .. }
            | TofuError::UnusableCertificate { endpoint, .. }
            | TofuError::Contended { endpoint }
            | TofuError::Store { endpoint, .. } => endpoint,
        }
    }

    /// The refusal this error is, for a callback: `Some` for [`TofuError::Mismatch`] and
    /// [`TofuError::NotPinned`], `None` for the errors that refused nothing in particular.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            TofuError::Mismatch(m) => Some(Refusal {
                endpoint: m.endpoint.clone(),
                presented: m.presented.fingerprint,
                pinned: m
                    .pinned
                    .iter()
                    .filter(|p| p.state == crate::pin::PinState::Active)
                    .map(|p| p.details.fingerprint)
                    .collect(),
                change: Some(m.change()),
                key_proved: m.key_proved,
                let_through: false,
            }),
            TofuError::NotPinned(n) => Some(Refusal {
                endpoint: n.endpoint.clone(),
                presented: n.presented.fingerprint,
                pinned: Vec::new(),
                change: None,
                key_proved: n.key_proved,
                let_through: false,
            }),
            _ => None,
        }
    }

    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(self),
        )))
    }
}

impl fmt::Display for TofuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TofuError::Mismatch(m) => m.fmt(f),
            TofuError::NotPinned(n) => n.fmt(f),
            TofuError::WrongServerName {
                endpoint,
                expected,
                requested,
            } => write!(
                f,
                "this TLS client configuration is bound to {endpoint} (server name {expected:?}) \
                 but was used to connect to {requested:?}; build one verifier per endpoint \
                 (TofuClientConfigs::client_config does this)"
            ),
            TofuError::UnusableCertificate { endpoint, reason } => write!(
                f,
                "{endpoint} presented a certificate that cannot be used: {reason}; nothing was \
                 pinned"
            ),
            TofuError::Contended { endpoint } => write!(
                f,
                "the pins of {endpoint} kept changing while this handshake tried to record its \
                 certificate, so the connection was refused; retry it"
            ),
            TofuError::Store { endpoint, error } => write!(
                f,
                "the pin store could not be consulted for {endpoint}, so the connection was \
                 refused: {error}"
            ),
        }
    }
}

impl fmt::Debug for TofuError {
    /// The full message: rustls 0.23 prints `CertificateError::Other` with `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TofuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TofuError::Store { error, .. } => Some(error.as_ref()),
            TofuError::UnusableCertificate { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// How deep [`TofuError::find`] looks into a chain of errors.
const MAX_CHAIN: usize = 64;

/// ` --store DIR`, with DIR quoted for a POSIX shell when it needs it: what a `tofu-certs`
/// command shown in a message adds so that, pasted into a shell, it acts on the store in `dir`.
/// (`tofu-cli` has the same for the commands it prints: `tofu-cli/src/shell.rs`.)
pub(crate) fn store_arg(dir: &Path) -> String {
    format!(" --store {}", shell_quote(&dir.to_string_lossy()))
}

/// Quotes `s` for a POSIX shell when it needs it (a path or file name in a command shown in a
/// message), and leaves it as it is otherwise, so the common case stays readable.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The last `CN=` attribute of a subject in OpenSSL's one-line form, where a `/` inside a
/// value is escaped as `\/`.
fn common_name(subject: &str) -> &str {
    let mut cn = None;
    let mut start = 0;
    let bytes = subject.as_bytes();
    for i in 0..=bytes.len() {
        let at_boundary =
            i == bytes.len() || (bytes[i] == b'/' && (i == 0 || bytes[i - 1] != b'\\'));
        if at_boundary {
            let part = &subject[start..i];
            if part.starts_with("CN=") {
                cn = Some(part);
            }
            start = i + 1;
        }
    }
    cn.unwrap_or(subject)
}

/// The common name shown in the message's first lines: the subject's last `CN=`, escaped.
/// A subject cut short (`… [truncated: …]`) may have lost its last `CN=`, so an earlier one
/// would name a different certificate: the whole (bounded) subject is shown instead.
fn shown_common_name(subject: &str) -> std::borrow::Cow<'_, str> {
    let subject = escape_name(subject);
    if subject.contains("… [truncated: ") {
        return subject;
    }
    match subject {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(common_name(s)),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(common_name(&s).to_owned()),
    }
}

/// One certificate of the message. Its subject comes from the store, which may have been
/// tampered with, and is shown escaped as all certificate names are ([`escape_name`]).
fn write_cert(f: &mut fmt::Formatter<'_>, heading: &str, d: &CertificateDetails) -> fmt::Result {
    writeln!(
        f,
        "  {heading:<10} subject      {}",
        escape_name(&d.subject)
    )?;
    writeln!(f, "  {:<10} fingerprint  {}", "", d.fingerprint)?;
    writeln!(f, "  {:<10} not after    {}", "", d.not_after)
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = &self.endpoint;
        writeln!(
            f,
            "the certificate presented by {ep} does not match the certificate pinned for it."
        )?;
        writeln!(
            f,
            "{} is configured for this connection. Current certificate of the remote host is \
             different from what was used earlier - {}",
            if self.pins_on_first_use {
                "Trust-on-first-use"
            } else {
                "Certificate pinning"
            },
            shown_common_name(&self.presented.subject)
        )?;
        writeln!(f)?;
        for pin in &self.pinned {
            let heading = match pin.state {
                crate::pin::PinState::Active => "pinned",
                crate::pin::PinState::Next => "staged",
            };
            write_cert(f, heading, &pin.details)?;
            writeln!(
                f,
                "  {:<10} pinned at    {} ({})",
                "", pin.pinned_at, pin.source
            )?;
        }
        for a in &self.awaited {
            let of = match a.matches {
                crate::pin::PinMatch::Certificate => "fingerprint",
                crate::pin::PinMatch::Key => "key (SPKI) ",
            };
            writeln!(
                f,
                "  {:<10} {of}  {} (awaited: no certificate presented yet)",
                "awaited", a.fingerprint
            )?;
            writeln!(
                f,
                "  {:<10} pinned at    {} ({})",
                "", a.pinned_at, a.source
            )?;
        }
        write_cert(f, "presented", &self.presented)?;
        writeln!(f)?;
        let change = self.change();
        match change {
            WhatChanged::SameKey => writeln!(
                f,
                "What changed: the certificate, not the key. It has the public key of the \
                 pinned certificate ({}): a renewal or a reissue, likely benign. A pin of the \
                 key (--match key) accepts such renewals.",
                self.presented.spki_fingerprint
            )?,
            WhatChanged::NewKeySameNames => writeln!(
                f,
                "What changed: the key. The certificate has a new public key under the same \
                 subject and issuer as the pinned one: a re-keyed server, or someone imitating \
                 it; treat it as suspicious until the server's administrator confirms a new key."
            )?,
            WhatChanged::NewKey => writeln!(
                f,
                "What changed: the key and the names. The certificate has a new public key and \
                 another subject or issuer than the pinned one: treat it as suspicious."
            )?,
        }
        writeln!(f)?;
        write_unproved(f, self.key_proved)?;
        writeln!(
            f,
            "Either someone is intercepting this connection (a man-in-the-middle attack), or the \
             server's certificate was changed legitimately (a new CSR, a redeployed server, an HA \
             re-registration). Confirm with the server's administrator which it is before \
             trusting the new certificate."
        )?;
        writeln!(f)?;
        let store = &self.store_arg;
        let host_port = ep.host_port();
        match (self.quarantined, self.pins_on_first_use) {
            (true, _) => {
                writeln!(
                    f,
                    "If the change is legitimate, accept exactly the presented certificate:"
                )?;
                writeln!(
                    f,
                    "    tofu-certs accept host {ep} --fingerprint {}{}{store}",
                    self.presented.fingerprint,
                    // The same key: pin it, and the next renewal is accepted too.
                    if change == WhatChanged::SameKey {
                        " --match key"
                    } else {
                        ""
                    }
                )?;
            }
            (false, _) => writeln!(f, "If the change is legitimate:")?,
        }
        if self.pins_on_first_use {
            let or = if self.quarantined { "or " } else { "" };
            writeln!(
                f,
                "{or}delete the pin, and the next connection pins what the server presents:"
            )?;
            write!(f, "    tofu-certs deletecert host {host_port}{store}")
        } else {
            let or = if self.quarantined { "or " } else { "" };
            writeln!(f, "{or}replace the pin by a certificate file you trust:")?;
            writeln!(f, "    tofu-certs deletecert host {host_port}{store}")?;
            write!(f, "    tofu-certs addcert host {ep} --cert FILE{store}")
        }
    }
}

impl fmt::Display for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = &self.endpoint;
        let store = &self.store_arg;
        writeln!(
            f,
            "{ep} is not pinned, and this connection accepts only pinned certificates (strict \
             policy)."
        )?;
        writeln!(f)?;
        write_cert(f, "presented", &self.presented)?;
        writeln!(f)?;
        write_unproved(f, self.key_proved)?;
        if self.quarantined {
            writeln!(
                f,
                "To pin exactly this certificate, after checking its fingerprint with the \
                 server's administrator:"
            )?;
            writeln!(
                f,
                "    tofu-certs accept host {ep} --fingerprint {}{store}",
                self.presented.fingerprint
            )?;
            writeln!(f, "or pin a certificate file you trust:")?;
        } else {
            writeln!(f, "To pin a certificate file you trust:")?;
        }
        write!(f, "    tofu-certs addcert host {ep} --cert FILE{store}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_arg_quotes_only_what_a_shell_would_split() {
        use std::path::Path;
        assert_eq!(
            super::store_arg(Path::new("/var/lib/tofu")),
            " --store /var/lib/tofu"
        );
        assert_eq!(
            super::store_arg(Path::new("/tmp/my store")),
            " --store '/tmp/my store'"
        );
        assert_eq!(super::shell_quote("pins.toml"), "pins.toml");
        assert_eq!(super::shell_quote("it's.toml"), r"'it'\''s.toml'");
        assert_eq!(super::shell_quote(""), "''");
    }

    use super::{shell_quote, store_arg, TofuError};
    use std::error::Error as StdError;
    use std::path::Path;

    fn contended() -> TofuError {
        TofuError::Contended {
            endpoint: "10.1.1.1:8443".parse().unwrap(),
        }
    }

    /// A client's error that names its cause only through `source()`, as hyper-util's and
    /// reqwest's do.
    #[derive(Debug)]
    struct Wrapper(Box<dyn StdError + Send + Sync>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error")
        }
    }

    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self.0.as_ref())
        }
    }

    fn as_handshake_error(e: TofuError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.into_rustls())
    }

    #[test]
    fn a_refusal_is_found_through_io_rustls_and_source_wrapping() {
        let found = |e: &(dyn StdError + 'static)| TofuError::find(e).map(|t| t.to_string());
        let expected = Some(contended().to_string());
        assert_eq!(found(&contended()), expected);
        assert_eq!(found(&contended().into_rustls()), expected);
        assert_eq!(found(&as_handshake_error(contended())), expected);
        let deep = Wrapper(Box::new(Wrapper(Box::new(as_handshake_error(contended())))));
        assert_eq!(found(&deep), expected);
        // An I/O error around a client's error around the handshake's.
        let io = std::io::Error::other(Wrapper(Box::new(as_handshake_error(contended()))));
        assert_eq!(found(&io), expected);
        let other = rustls::Error::Other(rustls::OtherError(std::sync::Arc::new(contended())));
        assert_eq!(found(&other), expected);
    }

    #[test]
    fn no_refusal_is_found_in_other_errors() {
        let found = |e: &(dyn StdError + 'static)| TofuError::find(e).is_some();
        assert!(!found(&std::io::Error::other("connection reset")));
        assert!(!found(&std::io::Error::from(std::io::ErrorKind::TimedOut)));
        assert!(!found(&rustls::Error::DecryptError));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert!(!found(&Wrapper(Box::new(io))));
    }

    #[test]
    fn store_paths_are_quoted_only_when_a_shell_needs_it() {
        assert_eq!(shell_quote("/var/lib/tofu-certs"), "/var/lib/tofu-certs");
        assert_eq!(shell_quote("/tmp/my store"), "'/tmp/my store'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(store_arg(Path::new("/tmp/a b")), " --store '/tmp/a b'");
    }
}
