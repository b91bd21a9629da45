//! A connector for hyper-util's pooled client (and tonic) that does TLS with the
//! configuration of the endpoint each URI names.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{endpoint_of, AlpnConfigs};
use crate::{endpoint::Host, Endpoint, TofuClientConfigs};

/// A `tower_service::Service<http::Uri>` that connects TCP to the host and port of each URI
/// and does TLS with *that* endpoint's configuration from a [`TofuClientConfigs`], for
/// hyper-util's pooled `Client`: one client serves any number of endpoints, each verified
/// against its own pins.
///
/// The port is the URI's, else 443 for `https` (80 for `http`). Every connection is TLS,
/// whatever the scheme: an `http://` URI is never sent in clear text (tonic wants those,
/// below). ALPN offers `h2` and `http/1.1` unless [`alpn_protocols`](Self::alpn_protocols)
/// says otherwise; a connection that negotiated `h2` tells the client so
/// ([`Connected::negotiated_h2`]).
///
/// A refusal reaches the caller inside the client's error;
/// [`TofuError::find`](crate::TofuError::find) gets it back.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tofu_core::{connect::HttpsConnector, Policy, Store, TofuClientConfigs, TofuError};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let configs = Arc::new(TofuClientConfigs::new(store, Policy::trust_on_first_use()));
/// let client: Client<_, String> =
///     Client::builder(TokioExecutor::new()).build(HttpsConnector::new(configs));
/// // Pinned under 10.1.1.1:443 and 10.1.1.1:8443 respectively.
/// for url in ["https://10.1.1.1/", "https://10.1.1.1:8443/"] {
///     match client.get(url.parse()?).await {
///         Ok(response) => println!("{url}: {}", response.status()),
///         Err(e) => match TofuError::find(&e) {
///             Some(refusal) => println!("{url}: refused:\n{refusal}"),
///             None => println!("{url}: {e}"),
///         },
///     }
/// }
/// # Ok(()) }
/// ```
///
/// # tonic
///
/// A tonic channel takes this connector too, with ALPN `h2` only (gRPC is HTTP/2) and an
/// `http://` URI, because the connector does the TLS itself (a tonic `https` URI would make
/// tonic want a TLS configuration of its own):
///
/// ```ignore
/// let connector = HttpsConnector::new(configs).alpn_protocols(vec![b"h2".to_vec()]);
/// let channel = tonic::transport::Endpoint::from_static("http://10.1.1.1:50051")
///     .connect_with_connector(connector)
///     .await?;
/// ```
#[derive(Clone)]
pub struct HttpsConnector {
    configs: Arc<AlpnConfigs>,
}

impl HttpsConnector {
    /// A connector offering ALPN `h2` and `http/1.1`.
    pub fn new(configs: Arc<TofuClientConfigs>) -> Self {
        Self {
            configs: Arc::new(AlpnConfigs::new(
                configs,
                vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            )),
        }
    }

    /// Offers these ALPN protocols instead, in order of preference (`h2` only for tonic,
    /// `http/1.1` only for a client built without HTTP/2; empty: no ALPN).
    #[must_use]
    pub fn alpn_protocols(self, protocols: Vec<Vec<u8>>) -> Self {
        Self {
            configs: Arc::new(AlpnConfigs::new(self.configs.configs().clone(), protocols)),
        }
    }

    /// Connects to `endpoint`: TCP, then the TLS handshake with its configuration.
    async fn connect(configs: Arc<AlpnConfigs>, endpoint: Endpoint) -> io::Result<TlsStream> {
        let config = configs.get(&endpoint).map_err(io::Error::other)?;
        let tcp = match endpoint.host() {
            Host::Ip(ip) => TcpStream::connect((*ip, endpoint.port())).await,
            Host::Dns(name) => TcpStream::connect((name.as_str(), endpoint.port())).await,
        }
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {endpoint}: {e}")))?;
        // Requests are small and latency matters more than packet count here.
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(endpoint.server_name(), tcp)
            .await?;
        Ok(TlsStream { inner: tls })
    }
}

impl std::fmt::Debug for HttpsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alpn: Vec<_> = self
            .configs
            .alpn()
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        f.debug_struct("HttpsConnector")
            .field("alpn", &alpn)
            .finish_non_exhaustive()
    }
}

impl tower_service::Service<Uri> for HttpsConnector {
    type Response = TokioIo<TlsStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let endpoint = endpoint_of(&uri, uri.scheme_str(), uri.host(), uri.port_u16())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
        let configs = self.configs.clone();
        Box::pin(async move { Self::connect(configs, endpoint?).await.map(TokioIo::new) })
    }
}

/// A TLS connection made by [`HttpsConnector`]: tokio-rustls's client stream over TCP, which
/// tells hyper-util's client whether it negotiated HTTP/2.
#[derive(Debug)]
pub struct TlsStream {
    inner: tokio_rustls::client::TlsStream<TcpStream>,
}

impl TlsStream {
    /// The tokio-rustls stream (for the peer's certificate, the negotiated protocol, or
    /// [`TofuVerifier::check_connection`](crate::TofuVerifier::check_connection)).
    pub fn get_ref(&self) -> &tokio_rustls::client::TlsStream<TcpStream> {
        &self.inner
    }

    /// The tokio-rustls stream.
    pub fn into_inner(self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.inner
    }
}

impl Connection for TlsStream {
    fn connected(&self) -> Connected {
        let (tcp, tls) = self.inner.get_ref();
        let connected = tcp.connected();
        if tls.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
