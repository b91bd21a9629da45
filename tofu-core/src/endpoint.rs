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
/// | `example。com。:443` (UTS #46 dots, full-width letters) | `example.com:443` |
/// | `[::ffff:10.1.1.1]:8082` (IPv4-mapped IPv6) | `10.1.1.1:8082` |
///
/// IPv4 addresses in the shorthand forms of URL parsers and `inet_aton` (`127.1`,
/// `0x7f000001`, `0177.0.0.1`, `2130706433`, `127.0.0.01`) are refused with an error that
/// names the address they mean (`write 127.0.0.1:443`), rather than canonicalised: resolvers
/// disagree on some of them (`0177` is octal to one, decimal to another), and an operator's
/// `deletecert host 127.1_443` should not quietly remove 127.0.0.1's pin. A host name whose
/// last label is a number (`foo.0x1`, `1.2.3.4.5`) is neither an address nor a name.
///
/// `Display` prints the canonical form and `FromStr` accepts it back unchanged;
/// [`Endpoint::host_port`] renders Prime's `host_port` form, which `FromStr` accepts as well.
///
/// ```
/// use tofu_core::Endpoint;
/// let e: Endpoint = "10.1.1.1_8082".parse()?;
/// assert_eq!(e.to_string(), "10.1.1.1:8082");
/// assert_eq!(e.host_port(), "10.1.1.1_8082");
/// # Ok::<(), tofu_core::endpoint::EndpointError>(())
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
    ///
    /// ```
    /// use tofu_core::endpoint::Host;
    /// use tofu_core::Endpoint;
    ///
    /// let e = Endpoint::new("Prime.Example", 8082)?;
    /// assert_eq!(e.to_string(), "prime.example:8082"); // names are case-folded
    /// assert_eq!(e.port(), 8082);
    /// assert!(matches!(e.host(), Host::Dns(_)));
    /// assert_eq!(e.server_name().to_str(), "prime.example");
    /// assert!(Endpoint::new("", 443).is_err());
    /// # Ok::<(), tofu_core::endpoint::EndpointError>(())
    /// ```
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
        let host = parse_host(host, port, &shown, bare_ipv6)?;
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
        let host = parse_host(host, port, input, bracketed)?;
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

fn parse_host(host: &str, port: u16, input: &str, bracketed: bool) -> Result<Host, EndpointError> {
    let err = |reason: &str| EndpointError::new(input, reason);
    if host.is_empty() {
        return Err(err("the host is empty"));
    }
    if bracketed {
        if host.contains('%') {
            return Err(err("IPv6 zone identifiers (`%eth0`) cannot be pinned"));
        }
        return match host.parse::<Ipv6Addr>() {
            // `::ffff:10.1.1.1` is how an IPv6 socket names the IPv4 peer 10.1.1.1: the same
            // peer, so the same key.
            Ok(ip) => Ok(Host::Ip(IpAddr::V6(ip).to_canonical())),
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
    if host == "." {
        return Err(err("the host is not a DNS name"));
    }
    // UTS #46 first (case, full-width letters and digits, the ideographic and full-width
    // dots, ignored characters such as the soft hyphen), then the one trailing dot of a fully
    // qualified name, whichever dot it was written with.
    let mapped;
    let ascii = if uts46_maps_to_itself(host) {
        host
    } else {
        mapped = idna::domain_to_ascii(host)
            .map_err(|_| err("the host is not a valid DNS name (IDN conversion failed)"))?;
        &mapped
    };
    let ascii = ascii.strip_suffix('.').unwrap_or(ascii);
    if ascii.is_empty() {
        return Err(err("the host is not a DNS name"));
    }
    match whatwg_ipv4(ascii) {
        Some(Ok(ip)) => {
            return Err(err(&format!(
                "the host means the IPv4 address {ip} to URL parsers and to inet_aton, but not \
                 to every resolver; write {ip}:{port}"
            )))
        }
        Some(Err(())) => return Err(err("the host is neither an IPv4 address nor a DNS name")),
        None => {}
    }
    validate_dns_name(ascii).map_err(err)?;
    Ok(Host::Dns(ascii.to_owned()))
}

/// Whether UTS #46 (as `idna::domain_to_ascii` applies it) gives `host` back unchanged, seen
/// without running it: lowercase ASCII letters, digits, `-`, `_` and `.` only, and no label
/// in punycode (`xn--`, which it decodes and checks). Every name a store holds is of this
/// kind, and the mapping is most of the cost of reading an endpoint back.
fn uts46_maps_to_itself(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && !host.split('.').any(|label| label.starts_with("xn--"))
}

/// The WHATWG URL standard's IPv4 parser (<https://url.spec.whatwg.org/#concept-ipv4-parser>),
/// run on a host already mapped by UTS #46: `None` when the host does not end in a number
/// (so it is a name), else the address it means (`127.1`, `0x7f000001`, `0177.0.0.1`) or
/// `Err` when it ends in a number but is no address (`1.2.3.4.5`, `foo.0x1`).
///
/// Shorthand spellings are refused rather than canonicalised: an endpoint is the key of
/// trust, and `0177.0.0.1` is 127.0.0.1 to a URL parser and `inet_aton` but 177.0.0.1 to
/// others, while `deletecert host 127.1_443` quietly removing 127.0.0.1's pin would surprise
/// the operator who typed it. A URL parsed by a library (`url::Url::host_str`) already gives
/// the canonical dotted-decimal form, so refusing costs callers nothing.
fn whatwg_ipv4(host: &str) -> Option<Result<Ipv4Addr, ()>> {
    let parts: Vec<&str> = host.split('.').collect();
    let last = parts.last().copied().unwrap_or("");
    let ends_in_number = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || ipv4_number(last).is_some();
    if !ends_in_number {
        return None;
    }
    if parts.len() > 4 {
        return Some(Err(()));
    }
    let Some(numbers) = parts
        .iter()
        .map(|part| ipv4_number(part))
        .collect::<Option<Vec<u64>>>()
    else {
        return Some(Err(()));
    };
    let (last, init) = numbers
        .split_last()
        .expect("split yields at least one part");
    if init.iter().any(|&n| n > 255) || *last >= 1u64 << (8 * (5 - numbers.len())) {
        return Some(Err(()));
    }
    let address = init
        .iter()
        .enumerate()
        .fold(*last, |sum, (i, &n)| sum + (n << (8 * (3 - i))));
    Some(Ok(Ipv4Addr::from(
        u32::try_from(address).expect("bounded by the checks above"),
    )))
}

/// One part of a WHATWG IPv4 address: decimal, `0x` hexadecimal or `0` octal.
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Too many digits for a u64 is too large for an address part as well.
    Some(u64::from_str_radix(digits, radix).unwrap_or(u64::MAX))
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

    #[test]
    fn names_read_back_without_uts46_are_exactly_what_uts46_gives() {
        // Every string over the fast path's alphabet, short ones exhaustively and longer ones
        // by a fixed pseudo-random walk: where the shortcut applies, UTS #46 agrees.
        const ALPHABET: &[u8] = b"abxnz09-_.";
        let check = |host: &str| {
            if uts46_maps_to_itself(host) {
                assert_eq!(
                    idna::domain_to_ascii(host).ok().as_deref(),
                    Some(host),
                    "{host:?}"
                );
            }
        };
        for len in 1..=4u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                let mut host = String::new();
                for _ in 0..len {
                    host.push(char::from(ALPHABET[n % ALPHABET.len()]));
                    n /= ALPHABET.len();
                }
                check(&host);
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut host = String::new();
            for _ in 0..(x % 40) + 1 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                host.push(char::from(b"abcxyz019-_."[(x % 12) as usize]));
            }
            check(&host);
        }
        assert!(!uts46_maps_to_itself("xn--nxasmq6b.example"));
        assert!(!uts46_maps_to_itself("Example.com"));
        assert_eq!(
            "a.xn--nxasmq6b:1".parse::<Endpoint>().unwrap().to_string(),
            "a.xn--nxasmq6b:1"
        );
    }

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

    /// Issue 11, item 7: an IPv4 peer reached through an IPv4-mapped IPv6 address is the same
    /// peer, so it has the same key; otherwise `[::ffff:10.1.1.1]:8082` would be an unpinned
    /// second endpoint for a pinned 10.1.1.1:8082.
    #[test]
    fn an_ipv4_mapped_ipv6_address_is_the_ipv4_endpoint() {
        let v4: Endpoint = "127.0.0.1:443".parse().unwrap();
        for input in [
            "[::ffff:127.0.0.1]:443",
            "[::FFFF:7f00:1]:443",
            "[0:0:0:0:0:ffff:127.0.0.1]_443",
            "::ffff:127.0.0.1_443",
        ] {
            let e: Endpoint = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(e, v4, "{input}");
            assert_eq!(e.to_string(), "127.0.0.1:443", "{input}");
            assert_eq!(e.host_port(), "127.0.0.1_443", "{input}");
            assert!(matches!(e.server_name(), ServerName::IpAddress(_)));
        }
        assert_eq!(Endpoint::new("::ffff:127.0.0.1", 443), Ok(v4));
        // Other IPv6 addresses that embed an IPv4 one are other addresses.
        assert_eq!(canon("[::127.0.0.1]:443"), "[::7f00:1]:443");
        assert_eq!(canon("[64:ff9b::127.0.0.1]:443"), "[64:ff9b::7f00:1]:443");
    }

    /// Issue 11, item 7: the shorthand IPv4 spellings that URL parsers (WHATWG) and
    /// `inet_aton` read as an address are refused, naming the address they mean: were they
    /// canonicalised, `deletecert host 127.1_443` would silently delete 127.0.0.1's pin, and
    /// were they taken as names (as `0x7f000001` was), they would be a second, unpinned key
    /// for the same peer.
    #[test]
    fn shorthand_ipv4_is_refused_naming_the_address_it_means() {
        for input in [
            "0x7f000001:443",
            "0X7F000001:443",
            "127.1:443",
            "127.1_443",
            "0177.0.0.1:443",
            "2130706433:443",
            "127.0.0.01:443",
            "0x7f.1:443",
            "0x7f.0x0.0.0x1:443",
            "127.0.0.1.:443",
            "\u{ff11}\u{ff12}\u{ff17}\u{ff0e}0\u{3002}0\u{ff61}1:443",
        ] {
            let got = reason(input);
            assert!(
                got.contains("means the IPv4 address 127.0.0.1") && got.contains("127.0.0.1:443"),
                "{input:?}: {got}"
            );
        }
        assert!(reason("0x0a010101_8082").contains("write 10.1.1.1:8082"));
        // Numeric last labels that are no address at all are neither.
        for input in [
            "foo.0x1:443",
            "1.2.3.4.5:443",
            "0x100000000:443",
            "1..2:443",
            "foo.0x:443",
        ] {
            let got = reason(input);
            assert!(
                got.contains("neither an IPv4 address nor a DNS name"),
                "{input:?}: {got}"
            );
        }
        // Names that merely contain digits or `0x` are names.
        assert_eq!(canon("0x7f000001.example:443"), "0x7f000001.example:443");
        assert_eq!(canon("1e100.net:443"), "1e100.net:443");
        assert_eq!(canon("0xg:443"), "0xg:443");
    }

    /// Issue 11, item 7: every spelling UTS #46 maps to one name is that name, including the
    /// ideographic and full-width dots at the end of the name.
    #[test]
    fn a_host_name_has_one_key_whatever_its_spelling() {
        for input in [
            "example.com:443",
            "EXAMPLE.com.:443",
            "example\u{3002}com:443",
            "example\u{ff0e}com:443",
            "example\u{ff61}com:443",
            "example.com\u{3002}:443",
            "\u{ff25}\u{ff38}\u{ff21}\u{ff2d}\u{ff30}\u{ff2c}\u{ff25}.com:443",
            "exa\u{ad}mple.com:443",
            "example.com\u{3002}_443",
        ] {
            let e: Endpoint = input.parse().unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(e.to_string(), "example.com:443", "{input:?}");
            assert_eq!(e.server_name().to_str(), "example.com");
        }
        assert_eq!(
            canon("B\u{fc}cher.example\u{3002}:443"),
            "xn--bcher-kva.example:443"
        );
        assert!(reason("example.com..:443").contains("empty label"));
        assert!(reason("example.com\u{3002}\u{3002}:443").contains("empty label"));
        assert!(reason("\u{3002}:443").contains("not a DNS name"));
    }

    #[test]
    fn server_name_is_dns_for_names_and_ip_for_addresses() {
        let e: Endpoint = "Example.com:443".parse().unwrap();
        assert_eq!(e.server_name().to_str(), "example.com");
        let e: Endpoint = "[::1]:443".parse().unwrap();
        assert!(matches!(e.server_name(), ServerName::IpAddress(_)));
    }
}
