//! Pinning through other stacks: connectors and helpers that hand each connection the
//! configuration of the endpoint (`host:port`) it goes to, never one endpoint's to another.
//!
//! rustls tells a verifier the server name but not the port, so a `ClientConfig` built for
//! `A:443` given to a pooled HTTP client would also verify `A:8443`, and pin that
//! certificate under the wrong endpoint. The connectors here see the host *and* port of every
//! connection (redirects included) and take that endpoint's configuration from a
//! [`TofuClientConfigs`]:
//!
//! | feature | item | for |
//! |---|---|---|
//! | `hyper` | [`HttpsConnector`] | hyper-util's pooled `Client`, tonic's `Endpoint::connect_with_connector` |
//! | `ureq` | [`UreqConnector`], [`ureq_agent`] | a ureq 3 `Agent` |
//! | `reqwest` | [`reqwest_client`] | a `reqwest::Client` for exactly one endpoint (reqwest has no per-connection hook) |
//! | `tokio-rustls` | [`tls_connector`] | a tokio-rustls `TlsConnector` for one endpoint |
//!
//! None of them brings a TLS stack or a crypto provider of its own: the handshake is
//! rustls's, on the provider the [`TofuClientConfigs`] was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::ClientConfig;

use crate::{verifier::BuildError, Endpoint, TofuClientConfigs};

#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "reqwest")]
mod reqwest;
#[cfg(feature = "tokio-rustls")]
mod tokio;
#[cfg(feature = "ureq")]
mod ureq;

#[cfg(feature = "hyper")]
pub use self::hyper::{HttpsConnector, TlsStream};
#[cfg(feature = "reqwest")]
pub use self::reqwest::reqwest_client;
#[cfg(feature = "tokio-rustls")]
pub use self::tokio::tls_connector;
#[cfg(feature = "ureq")]
pub use self::ureq::{ureq_agent, UreqConnector, UreqTlsTransport};

/// The endpoint a connection to `scheme://host:port` goes to: an explicit port, else the
/// scheme's (443 for `https`, 80 for `http`).
///
/// # Errors
/// A sentence naming the URI and what is missing, for an `io::Error` or a client's error.
#[allow(dead_code)]
pub(crate) fn endpoint_of(
    uri: &dyn std::fmt::Display,
    scheme: Option<&str>,
    host: Option<&str>,
    port: Option<u16>,
) -> Result<Endpoint, String> {
    let host = host.ok_or_else(|| {
        format!("{uri} names no host; a pinned connection needs the host and port it goes to")
    })?;
    let port = match (port, scheme) {
        (Some(port), _) => port,
        (None, Some("https")) => 443,
        (None, Some("http")) => 80,
        (None, _) => {
            return Err(format!(
                "{uri} names no port and no http or https scheme to take it from; give the port"
            ))
        }
    };
    // `http::Uri::host` keeps an IPv6 address's brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Endpoint::new(host, port).map_err(|e| format!("{uri}: {e}"))
}

/// The configurations of a [`TofuClientConfigs`] with ALPN protocols set: derived once per
/// endpoint and cached, sharing the endpoint's verifier and session cache.
#[allow(dead_code)]
pub(crate) struct AlpnConfigs {
    configs: Arc<TofuClientConfigs>,
    alpn: Vec<Vec<u8>>,
    derived: Mutex<HashMap<Endpoint, Arc<ClientConfig>>>,
}

#[allow(dead_code)]
impl AlpnConfigs {
    pub(crate) fn new(configs: Arc<TofuClientConfigs>, alpn: Vec<Vec<u8>>) -> Self {
        Self {
            configs,
            alpn,
            derived: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn alpn(&self) -> &[Vec<u8>] {
        &self.alpn
    }

    pub(crate) fn configs(&self) -> &Arc<TofuClientConfigs> {
        &self.configs
    }

    /// The configuration of `endpoint`, offering the ALPN protocols.
    pub(crate) fn get(&self, endpoint: &Endpoint) -> Result<Arc<ClientConfig>, BuildError> {
        let base = self.configs.client_config(endpoint)?;
        if self.alpn.is_empty() {
            return Ok(base);
        }
        let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(derived
            .entry(endpoint.clone())
            .or_insert_with(|| {
                // The clone shares `base`'s verifier and resumption store (both `Arc`s).
                let mut config = (*base).clone();
                config.alpn_protocols = self.alpn.clone();
                Arc::new(config)
            })
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_of;

    #[test]
    fn the_endpoint_of_a_uri_is_its_host_and_port_or_the_schemes_port() {
        let ep = |s, h, p| endpoint_of(&"uri", s, h, p).map(|e| e.to_string());
        assert_eq!(
            ep(Some("https"), Some("a.example"), None).unwrap(),
            "a.example:443"
        );
        assert_eq!(
            ep(Some("https"), Some("a.example"), Some(8443)).unwrap(),
            "a.example:8443"
        );
        assert_eq!(
            ep(Some("http"), Some("10.0.0.1"), None).unwrap(),
            "10.0.0.1:80"
        );
        assert_eq!(
            ep(Some("https"), Some("[::1]"), Some(9)).unwrap(),
            "[::1]:9"
        );
        assert!(ep(Some("https"), None, Some(9))
            .unwrap_err()
            .contains("names no host"));
        assert!(ep(Some("ftp"), Some("a.example"), None)
            .unwrap_err()
            .contains("no port"));
    }
}
