//! A reqwest client for exactly one endpoint.

use crate::{verifier::BuildError, Endpoint, TofuClientConfigs};

/// A `reqwest::ClientBuilder` for a client that serves exactly one endpoint: TLS with that
/// endpoint's configuration (`use_preconfigured_tls`), `https_only`, and redirects followed
/// only while they stay on the endpoint's host and port (one that leaves it is not followed:
/// the redirect response itself is returned).
///
/// reqwest has no per-connection hook in which to choose a configuration by port, so
/// **one client serves one endpoint**: build a client per endpoint, and never send it
/// requests for another. A request for another host is refused by the verifier (the server
/// name differs); a request for another port of the same host would be verified against
/// *this* endpoint's pins, which is the mistake this module exists to prevent. For many
/// endpoints through one client, use [`HttpsConnector`](super::HttpsConnector) with
/// hyper-util's client.
///
/// Add timeouts and the like to the builder, but leave its TLS alone: `use_rustls_tls()` or
/// `use_native_tls()` would replace the pinned configuration (and reqwest's own rustls would
/// then look for a process-wide crypto provider).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tofu_core::{connect, Endpoint, Policy, Store, TofuClientConfigs, TofuError};
///
/// let store = Arc::new(Store::open("/var/lib/myservice/tofu")?);
/// let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
/// let endpoint: Endpoint = "10.1.1.1:8443".parse()?;
/// let client = connect::reqwest_client(&configs, &endpoint)?.build()?;
/// match client.get("https://10.1.1.1:8443/status").send().await {
///     Ok(response) => println!("{}", response.status()),
///     Err(e) => match TofuError::find(&e) {
///         Some(refusal) => println!("refused:\n{refusal}"),
///         None => println!("{e}"),
///     },
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// Those of [`TofuVerifierBuilder::build`](crate::verifier::TofuVerifierBuilder::build).
pub fn reqwest_client(
    configs: &TofuClientConfigs,
    endpoint: &Endpoint,
) -> Result<reqwest::ClientBuilder, BuildError> {
    let config = configs.client_config(endpoint)?;
    let bound = endpoint.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let url = attempt.url();
        let target = super::endpoint_of(
            url,
            Some(url.scheme()),
            url.host_str(),
            url.port_or_known_default(),
        );
        let same_endpoint = target.as_ref() == Ok(&bound);
        if attempt.previous().len() >= MAX_REDIRECTS {
            let error = format!("more than {MAX_REDIRECTS} redirects, the last to {url}");
            attempt.error(error)
        } else if same_endpoint {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    Ok(reqwest::Client::builder()
        // The clone shares the endpoint's verifier and session cache.
        .use_preconfigured_tls((*config).clone())
        .https_only(true)
        .redirect(redirects))
}

/// reqwest's own default limit.
const MAX_REDIRECTS: usize = 10;
