//! A ureq 3 transport that does TLS with the configuration of the endpoint each connection
//! goes to.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{ClientConnection, StreamOwned};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};

use super::endpoint_of;
use crate::TofuClientConfigs;

/// A ureq 3 transport [`Connector`] that wraps the connection made before it (TCP, through
/// a proxy or not) in TLS with the configuration of the endpoint of *that connection's*
/// URI, from a [`TofuClientConfigs`]. ureq runs its connectors for every new connection,
/// redirects included, and pools connections by scheme and authority, so one agent serves
/// any number of endpoints, each verified against its own pins.
///
/// Like ureq's own TLS connectors it wraps only `https` connections: give the agent
/// `https_only(true)` so that nothing (a redirect, say) goes out in clear text.
/// [`ureq_agent`] builds the whole chain.
pub struct UreqConnector {
    configs: Arc<TofuClientConfigs>,
}

impl UreqConnector {
    /// A connector taking each endpoint's configuration from `configs`.
    pub fn new(configs: Arc<TofuClientConfigs>) -> Self {
        Self { configs }
    }
}

impl std::fmt::Debug for UreqConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UreqConnector").finish_non_exhaustive()
    }
}

/// A ureq agent that connects as ureq's default one does (HTTP `CONNECT` proxies, then
/// TCP), with TLS through [`UreqConnector`]. A refusal comes back as the request's
/// `ureq::Error`; [`TofuError::find`](crate::TofuError::find) gets it back.
///
/// ```no_run
/// use std::sync::Arc;
/// use tofu_core::{connect, Policy, Store, TofuClientConfigs, TofuError};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let configs = Arc::new(TofuClientConfigs::new(store, Policy::trust_on_first_use()));
/// let config = ureq::Agent::config_builder().https_only(true).build();
/// let agent = connect::ureq_agent(configs, config);
/// // Pinned under 10.1.1.1:443 and 10.1.1.1:8443 respectively.
/// for url in ["https://10.1.1.1/", "https://10.1.1.1:8443/"] {
///     match agent.get(url).call() {
///         Ok(response) => println!("{url}: {}", response.status()),
///         Err(e) => match TofuError::find(&e) {
///             Some(refusal) => println!("{url}: refused:\n{refusal}"),
///             None => println!("{url}: {e}"),
///         },
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ureq_agent(configs: Arc<TofuClientConfigs>, config: ureq::config::Config) -> ureq::Agent {
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(UreqConnector::new(configs));
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

impl<In: Transport> Connector<In> for UreqConnector {
    type Out = Either<In, UreqTlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::Other(
                "tofu_core::connect::UreqConnector wraps a connection in TLS, so it must come \
                 after a connector that makes one (TcpConnector); see connect::ureq_agent"
                    .into(),
            ));
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let uri = details.uri;
        let endpoint = endpoint_of(uri, uri.scheme_str(), uri.host(), uri.port_u16())
            .map_err(|e| ureq::Error::Other(e.into()))?;
        let config = self
            .configs
            .client_config(&endpoint)
            .map_err(|e| ureq::Error::Other(Box::new(e)))?;
        let mut conn = ClientConnection::new(config, endpoint.server_name())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // The whole handshake; a refusal is the `io::Error` rustls returns, carrying the
        // verifier's `TofuError`.
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(UreqTlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection made by [`UreqConnector`].
pub struct UreqTlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for UreqTlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UreqTlsTransport").finish_non_exhaustive()
    }
}

impl Transport for UreqTlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
