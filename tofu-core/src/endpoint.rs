//! `host:port`, the key of the pin store.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use rustls::pki_types::ServerName;

/// The longest endpoint text accepted, far above any real DNS name (253) plus a port.
const MAX_INPUT_LEN: usize = 300;

/// A TLS endpoint: a host (DNS name or IP address) and a TCP port.
///
/// Every pin in the store is keyed by an endpoint. Parsing accepts the forms operators meet
/// and canonicalises them, so that one endpoint has exactly one key:
///
/// | input | canonical |
/// |---|---|
/// | `10.1.1.1:8082` | `10.1.1.1:8082` |
/// | `10.1.1.1_8082` (Cisco Prime's `host_port`) | `10.1.1.1:8082` |
/// | `[FD00:0::5]:8443` | `[fd00::5]:8443` |
/// | `Example.COM.:443` | `example.com:443` |
/// | `bücher.example:443` | `xn--bcher-kva.example:443` |
///
/// `Display` prints the canonical form and `FromStr` accepts it back unchanged;
/// [`Endpoint::host_port`] renders Prime's `host_port` form, which `FromStr` accepts as well.
///
/// ```
/// use tofu_core::Endpoint;
/// let e: Endpoint = "10.1.1.1_8082".parse()?;
/// assert_eq!(e.to_string(), "10.1.1.1:8082");
/// assert_eq!(e.host_port(), "10.1.1.1_8082");
/// # Ok::<(), tofu_core::EndpointError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    host: Host,
    port: u16,
}

/// The host part of an [`Endpoint`], in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name: lowercase ASCII (IDN labels in punycode), without a trailing dot.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

/// Why a string is not an endpoint. The message names the input and shows a form that works.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an endpoint: {reason}")]
pub struct EndpointError {
    input: String,
    reason: String,
}

impl EndpointError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        // Keep the echoed input bounded and printable: it may be hostile.
        let mut shown: String = input.chars().take(80).collect();
        if input.chars().count() > 80 {
            shown.push('…');
        }
        Self {
            input: shown,
            reason: reason.into(),
        }
    }

    /// The text that failed to parse (shortened to 80 characters).
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl Endpoint {
    /// An endpoint from a host and a port; the host is validated and canonicalised as by
    /// `FromStr`.
    ///
    /// # Errors
    /// When the host is not a DNS name or IP address, or the port is 0.
    pub fn new(host: &str, port: u16) -> Result<Self, EndpointError> {
        let shown = format!("{host}:{port}");
        if port == 0 {
            return Err(EndpointError::new(
                &shown,
                "port 0 is not a port a server listens on",
            ));
        }
        // An IPv6 address needs no brackets here: the port is not in the text.
        let bare_ipv6 = host.parse::<Ipv6Addr>().is_ok();
        let host = parse_host(host, &shown, bare_ipv6)?;
        Ok(Self { host, port })
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cisco Prime's `host_port` form, as `ncs certvalidation tofu-certs listcerts` prints it:
    /// `10.1.1.1_8082`, `example.com_443`, `fd00::5_8443`.
    pub fn host_port(&self) -> String {
        match &self.host {
            Host::Dns(name) => format!("{name}_{}", self.port),
            Host::Ip(ip) => format!("{ip}_{}", self.port),
        }
    }

    /// The name rustls is given for this endpoint's host (SNI for DNS names; none for IPs).
    pub fn server_name(&self) -> ServerName<'static> {
        match &self.host {
            Host::Dns(name) => ServerName::try_from(name.clone())
                // Canonical DNS names are validated LDH/underscore labels, which rustls accepts;
                // an IP-looking name cannot occur because those parse as `Host::Ip`.
                .expect("a canonical DNS name is a valid rustls ServerName"),
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            host => write!(f, "{host}:{}", self.port),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| EndpointError::new(input, reason);
        if input.is_empty() {
            return Err(err(
                "it is empty; give host:port, for example 10.1.1.1:8082",
            ));
        }
        if input.len() > MAX_INPUT_LEN {
            return Err(err("it is longer than any host name and port can be"));
        }
        if input.chars().any(char::is_control) {
            return Err(err("it contains a control character"));
        }
        if input.chars().any(char::is_whitespace) {
            return Err(err("it contains a space; give host:port without spaces"));
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(err(&format!(
                "it is a URL; give host:port without the `{scheme}://` scheme, for example \
                 example.com:443"
            )));
        }
        if input.contains('/') {
            return Err(err("it contains `/`; give host:port without a path"));
        }

        let (host, port, bracketed) = split_host_port(input)?;
        let port = parse_port(port, input)?;
        let host = parse_host(host, input, bracketed)?;
        Ok(Self { host, port })
    }
}

/// Splits `input` into host text, port text and whether the host was in brackets.
fn split_host_port(input: &str) -> Result<(&str, &str, bool), EndpointError> {
    let err = |reason: &str| EndpointError::new(input, reason);
    if let Some(rest) = input.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| err("`[` opens an IPv6 address that no `]` closes"))?;
        let port = after
            .strip_prefix(':')
            .or_else(|| after.strip_prefix('_'))
            .ok_or_else(|| err("no port after the IPv6 address; write [fd00::5]:8443"))?;
        return Ok((host, port, true));
    }
    match input.matches(':').count() {
        0 => match input.rsplit_once('_') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                Ok((host, port, false))
            }
            _ => Err(err("no port; write host:port, for example example.com:443")),
        },
        1 => {
            let (host, port) = input.split_once(':').expect("one ':' was counted");
            Ok((host, port, false))
        }
        _ => {
            // Several colons: an IPv6 address. Only Prime's `addr_port` form is unambiguous
            // without brackets.
            if let Some((host, port)) = input.rsplit_once('_') {
                if host.parse::<Ipv6Addr>().is_ok() {
                    return Ok((host, port, true));
                }
            }
            Err(err(
                "an IPv6 address with a port needs brackets, for example [fd00::5]:8443",
            ))
        }
    }
}

fn parse_port(port: &str, input: &str) -> Result<u16, EndpointError> {
    let err = |reason: &str| EndpointError::new(input, reason);
    if port.is_empty() {
        return Err(err("the port is missing after the separator"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("the port must be a number from 1 to 65535"));
    }
    match port.parse::<u32>() {
        Ok(0) => Err(err("port 0 is not a port a server listens on")),
        Ok(p) if p <= u32::from(u16::MAX) => Ok(p as u16),
        _ => Err(err("the port is larger than 65535")),
    }
}

fn parse_host(host: &str, input: &str, bracketed: bool) -> Result<Host, EndpointError> {
    let err = |reason: &str| EndpointError::new(input, reason);
    if host.is_empty() {
        return Err(err("the host is empty"));
    }
    if bracketed {
        if host.contains('%') {
            return Err(err("IPv6 zone identifiers (`%eth0`) cannot be pinned"));
        }
        return match host.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V6(ip))),
            Err(_) => Err(err("the text in brackets is not an IPv6 address")),
        };
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    if host.parse::<Ipv6Addr>().is_ok() {
        return Err(err(
            "an IPv6 address with a port needs brackets, for example [fd00::5]:8443",
        ));
    }
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed.is_empty() || trimmed.ends_with('.') {
        return Err(err("the host is not a DNS name"));
    }
    let ascii = idna::domain_to_ascii(trimmed)
        .map_err(|_| err("the host is not a valid DNS name (IDN conversion failed)"))?;
    validate_dns_name(&ascii).map_err(err)?;
    Ok(Host::Dns(ascii))
}

fn validate_dns_name(name: &str) -> Result<(), &'static str> {
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters");
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("the host name has an empty label (`..`)");
        }
        if label.len() > 63 {
            return Err("a label of the host name is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err("the host name contains a character a DNS name cannot have");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label of the host name starts or ends with `-`");
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the host is neither an IPv4 address nor a DNS name");
    }
    Ok(())
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(input: &str) -> String {
        input
            .parse::<Endpoint>()
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    fn reason(input: &str) -> String {
        input.parse::<Endpoint>().unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_forms_operators_type_and_canonicalises_them() {
        assert_eq!(canon("10.1.1.1:8082"), "10.1.1.1:8082");
        assert_eq!(canon("10.1.1.1_8082"), "10.1.1.1:8082");
        assert_eq!(canon("[fd00::5]:8443"), "[fd00::5]:8443");
        assert_eq!(canon("[FD00:0:0::5]:8443"), "[fd00::5]:8443");
        assert_eq!(canon("[fd00::5]_8443"), "[fd00::5]:8443");
        assert_eq!(canon("fd00::5_8443"), "[fd00::5]:8443");
        assert_eq!(canon("Example.COM.:443"), "example.com:443");
        assert_eq!(canon("example.com_443"), "example.com:443");
        assert_eq!(canon("bücher.example:443"), "xn--bcher-kva.example:443");
        assert_eq!(canon("prime-sec:8082"), "prime-sec:8082");
        assert_eq!(canon("localhost:65535"), "localhost:65535");
    }

    #[test]
    fn display_and_from_str_round_trip_and_so_does_prime_form() {
        for input in [
            "10.1.1.1:8082",
            "[fd00::5]:8443",
            "example.com:443",
            "xn--bcher-kva.example:443",
            "my_host.example:1",
        ] {
            let e: Endpoint = input.parse().unwrap();
            assert_eq!(e.to_string(), input);
            assert_eq!(e.to_string().parse::<Endpoint>().unwrap(), e);
            assert_eq!(
                e.host_port().parse::<Endpoint>().unwrap(),
                e,
                "{}",
                e.host_port()
            );
        }
        let e: Endpoint = "[fd00::5]:8443".parse().unwrap();
        assert_eq!(e.host_port(), "fd00::5_8443");
    }

    #[test]
    fn bad_input_is_an_error_that_names_the_input() {
        let cases = [
            ("10.1.1.1", "no port"),
            ("example.com", "no port"),
            ("example.com:", "port is missing"),
            ("example.com:0", "port 0"),
            ("example.com:65536", "larger than 65535"),
            ("example.com:99999999999", "larger than 65535"),
            ("example.com:http", "number from 1 to 65535"),
            (":443", "host is empty"),
            ("_443", "host is empty"),
            ("exa mple.com:443", "space"),
            (" example.com:443", "space"),
            ("https://example.com:443", "`https://` scheme"),
            ("example.com:443/path", "path"),
            ("fd00::5:8443", "needs brackets"),
            ("[fd00::5", "no `]`"),
            ("[fd00::5]", "no port"),
            ("[example.com]:443", "not an IPv6 address"),
            ("[fe80::1%eth0]:443", "zone"),
            ("ex\u{7}ample.com:443", "control character"),
            ("a..b:443", "empty label"),
            ("10.1.1.256:443", "neither an IPv4 address nor a DNS name"),
            ("-bad.example:443", "starts or ends with `-`"),
            ("", "empty"),
        ];
        for (input, want) in cases {
            let got = reason(input);
            assert!(got.contains(want), "{input:?}: {got}");
            assert!(got.starts_with(&format!("{:?}", input)), "{input:?}: {got}");
        }
        let long = format!("{}.example:443", "a".repeat(64));
        assert!(reason(&long).contains("longer than 63"));
        let overlong = format!("{}:443", "a.".repeat(200));
        assert!(reason(&overlong).contains("longer than any host name"));
    }

    #[test]
    fn server_name_is_dns_for_names_and_ip_for_addresses() {
        let e: Endpoint = "Example.com:443".parse().unwrap();
        assert_eq!(e.server_name().to_str(), "example.com");
        let e: Endpoint = "[::1]:443".parse().unwrap();
        assert!(matches!(e.server_name(), ServerName::IpAddress(_)));
    }
}
