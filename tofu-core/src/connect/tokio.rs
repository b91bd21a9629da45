//! A tokio-rustls connector for one endpoint.

use crate::{verifier::BuildError, Endpoint, TofuClientConfigs};

/// A tokio-rustls `TlsConnector` that verifies with the pins of `endpoint`, and only of it:
/// connect it to that endpoint, with [`Endpoint::server_name`] as the server name. For many
/// endpoints, call this per connection (the configurations are cached by `configs`), or use
/// [`HttpsConnector`](super::HttpsConnector), which does it for you.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tofu_core::{connect, Endpoint, Policy, Store, TofuClientConfigs, TofuError};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
/// let endpoint: Endpoint = "10.1.1.1:8082".parse()?;
/// let connector = connect::tls_connector(&configs, &endpoint)?;
/// let tcp = tokio::net::TcpStream::connect(endpoint.to_string()).await?;
/// match connector.connect(endpoint.server_name(), tcp).await {
///     Ok(tls) => { /* talk */ }
///     Err(e) => match TofuError::find(&e) {
///         Some(refusal) => eprintln!("{refusal}"),
///         None => eprintln!("cannot connect to {endpoint}: {e}"),
///     },
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// Those of [`TofuVerifierBuilder::build`](crate::verifier::TofuVerifierBuilder::build).
pub fn tls_connector(
    configs: &TofuClientConfigs,
    endpoint: &Endpoint,
) -> Result<tokio_rustls::TlsConnector, BuildError> {
    Ok(tokio_rustls::TlsConnector::from(
        configs.client_config(endpoint)?,
    ))
}
