//! Why the verifier refused a certificate, in words an operator can act on.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::{escape_name, CertificateDetails, CertificateError, Endpoint, Pin};

/// Why a [`TofuVerifier`](crate::TofuVerifier) refused a handshake.
///
/// rustls carries it as `Error::InvalidCertificate(CertificateError::Other(..))` and prints it
/// with `Debug` (in `{}` and `{:?}` alike), so `Debug` here prints the same full message as
/// `Display`. Get it back from a rustls or I/O error with [`TofuError::from_rustls`] or
/// [`TofuError::from_io`].
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

/// ` --store DIR`, with DIR quoted for a POSIX shell when it needs it: what a `tofu-certs`
/// command shown in a message adds so that, pasted into a shell, it acts on the store in `dir`.
///
/// ```
/// use std::path::Path;
/// assert_eq!(tofu_core::store_arg(Path::new("/var/lib/tofu")), " --store /var/lib/tofu");
/// assert_eq!(tofu_core::store_arg(Path::new("/tmp/my store")), " --store '/tmp/my store'");
/// ```
pub fn store_arg(dir: &Path) -> String {
    format!(" --store {}", shell_quote(&dir.to_string_lossy()))
}

/// Quotes `s` for a POSIX shell when it needs it (a path or file name in a command shown in a
/// message), and leaves it as it is otherwise, so the common case stays readable.
///
/// ```
/// assert_eq!(tofu_core::shell_quote("pins.toml"), "pins.toml");
/// assert_eq!(tofu_core::shell_quote("it's.toml"), r"'it'\''s.toml'");
/// ```
pub fn shell_quote(s: &str) -> String {
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
                crate::PinState::Active => "pinned",
                crate::PinState::Next => "staged",
            };
            write_cert(f, heading, &pin.details)?;
            writeln!(
                f,
                "  {:<10} pinned at    {} ({})",
                "", pin.pinned_at, pin.source
            )?;
        }
        write_cert(f, "presented", &self.presented)?;
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
                    "    tofu-certs accept host {ep} --fingerprint {}{store}",
                    self.presented.fingerprint
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
    use super::{shell_quote, store_arg};
    use std::path::Path;

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
