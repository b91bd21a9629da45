//! The HTTP client adapters (`tofu_core::connect`) with real handshakes: two TLS servers on
//! two ports of 127.0.0.1, with two different self-signed certificates, reached through ONE
//! shared client. Each certificate must be pinned under its own `host:port`, a changed
//! certificate on one port must be refused while the other port still works, and the refusal
//! must come back out of the client's error as the structured `TofuError`.

use std::sync::Arc;

use examples::{prime_identity, DemoServer, Identity};
use tofu_core::{connect, Endpoint, Fingerprint, Policy, Store, TofuClientConfigs, TofuError};

/// Two servers on one host, a fresh store, and the configurations over it.
struct TwoPorts {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    configs: Arc<TofuClientConfigs>,
    a: DemoServer,
    b: DemoServer,
    a_id: Identity,
    b_id: Identity,
}

impl TwoPorts {
    fn start() -> TwoPorts {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("store")).unwrap());
        let configs = Arc::new(TofuClientConfigs::new(
            store.clone(),
            Policy::trust_on_first_use(),
        ));
        let a_id = prime_identity("port-a");
        let b_id = prime_identity("port-b");
        let a = DemoServer::start(&a_id, 0).unwrap();
        let b = DemoServer::start(&b_id, 0).unwrap();
        TwoPorts {
            _dir: dir,
            store,
            configs,
            a,
            b,
            a_id,
            b_id,
        }
    }

    fn endpoint(server: &DemoServer) -> Endpoint {
        Endpoint::new("127.0.0.1", server.addr().port()).unwrap()
    }

    fn url(server: &DemoServer) -> String {
        format!("https://127.0.0.1:{}/", server.addr().port())
    }

    /// The one active pin of `server`'s endpoint.
    fn pin_of(&self, server: &DemoServer) -> Fingerprint {
        let record = self.store.endpoint(&Self::endpoint(server)).unwrap();
        assert_eq!(
            record.pins.len(),
            1,
            "{} should have exactly one pin: {:?}",
            Self::endpoint(server),
            record.pins
        );
        record.pins[0].fingerprint()
    }

    /// After both ports were fetched once: each certificate pinned under its own endpoint.
    fn assert_each_pinned_under_its_own_port(&self) {
        assert_ne!(self.a.addr().port(), self.b.addr().port());
        assert_eq!(self.pin_of(&self.a), Fingerprint::of(&self.a_id.cert));
        assert_eq!(self.pin_of(&self.b), Fingerprint::of(&self.b_id.cert));
    }

    /// Restarts port b with a new certificate, and returns its fingerprint.
    fn change_b(&self) -> Fingerprint {
        let new = prime_identity("port-b");
        self.b.restart_with(&new);
        Fingerprint::of(&new.cert)
    }

    /// The refusal of b's new certificate, found in a client's error.
    fn assert_mismatch_of_b(
        &self,
        error: &(dyn std::error::Error + 'static),
        presented: &Fingerprint,
    ) {
        let refusal = TofuError::find(error)
            .unwrap_or_else(|| panic!("no TofuError in the client's error: {error:?}"));
        let TofuError::Mismatch(mismatch) = refusal else {
            panic!("expected a mismatch, got: {refusal}");
        };
        assert_eq!(mismatch.endpoint, Self::endpoint(&self.b));
        assert_eq!(mismatch.presented.fingerprint, *presented);
        assert_eq!(
            mismatch.pinned[0].fingerprint(),
            Fingerprint::of(&self.b_id.cert)
        );
        // The pin stays as it was.
        assert_eq!(self.pin_of(&self.b), Fingerprint::of(&self.b_id.cert));
    }
}

/// How many pins the store holds, over all endpoints.
fn pin_count(store: &Store) -> usize {
    let mut n = 0;
    store
        .for_each_pin(|_| {
            n += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    n
}

/// A TLS server on 127.0.0.1 that answers every request with a redirect to `location`.
fn redirecting_server(id: &Identity, location: String) -> u16 {
    use std::io::{Read, Write};
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(tofu_core::verifier::default_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![id.cert.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(id.key.clone_key()),
            )
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, &mut sock);
            let mut buf = [0u8; 2048];
            if matches!(tls.read(&mut buf), Ok(n) if n > 0) {
                let _ = write!(
                    tls,
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
    });
    port
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

mod hyper_util_client {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    async fn status(
        client: &Client<connect::HttpsConnector, String>,
        url: &str,
    ) -> Result<u16, hyper_util::client::legacy::Error> {
        let response = client.get(url.parse().unwrap()).await?;
        Ok(response.status().as_u16())
    }

    #[test]
    fn one_pooled_client_pins_each_port_under_its_own_endpoint_and_refuses_only_the_changed_one() {
        let t = TwoPorts::start();
        let client = Client::builder(TokioExecutor::new())
            .build::<_, String>(connect::HttpsConnector::new(t.configs.clone()));
        runtime().block_on(async {
            assert_eq!(status(&client, &TwoPorts::url(&t.a)).await.unwrap(), 200);
            assert_eq!(status(&client, &TwoPorts::url(&t.b)).await.unwrap(), 200);
            t.assert_each_pinned_under_its_own_port();
            // From the pins, through the same client.
            assert_eq!(status(&client, &TwoPorts::url(&t.b)).await.unwrap(), 200);

            let presented = t.change_b();
            let error = status(&client, &TwoPorts::url(&t.b)).await.unwrap_err();
            t.assert_mismatch_of_b(&error, &presented);
            assert_eq!(status(&client, &TwoPorts::url(&t.a)).await.unwrap(), 200);
        });
    }

    /// An HTTP/2-only TLS server (ALPN `h2`) on 127.0.0.1, answering every request with 200.
    async fn h2_server(id: &Identity) -> u16 {
        use hyper::server::conn::http2;
        use hyper_util::rt::TokioIo;
        let mut config =
            rustls::ServerConfig::builder_with_provider(tofu_core::verifier::default_provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![id.cert.clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(id.key.clone_key()),
                )
                .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("h2")))
                    });
                    let _ = http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        port
    }

    #[test]
    fn a_connection_that_negotiated_h2_is_used_as_http2_and_pinned_under_its_port() {
        let t = TwoPorts::start();
        let client = Client::builder(TokioExecutor::new())
            .build::<_, String>(connect::HttpsConnector::new(t.configs.clone()));
        let id = prime_identity("h2-server");
        runtime().block_on(async {
            let port = h2_server(&id).await;
            let url = format!("https://127.0.0.1:{port}/");
            let response = client.get(url.parse().unwrap()).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), http::Version::HTTP_2);
            let record = t
                .store
                .endpoint(&Endpoint::new("127.0.0.1", port).unwrap())
                .unwrap();
            assert_eq!(record.pins.len(), 1);
            assert_eq!(record.pins[0].fingerprint(), Fingerprint::of(&id.cert));

            // With ALPN http/1.1 only, the h2-only server refuses the handshake.
            let http1 = Client::builder(TokioExecutor::new()).build::<_, String>(
                connect::HttpsConnector::new(t.configs.clone())
                    .alpn_protocols(vec![b"http/1.1".to_vec()]),
            );
            assert!(http1.get(url.parse().unwrap()).await.is_err());
        });
    }

    #[test]
    fn a_uri_without_a_port_goes_to_443_of_its_host() {
        // Nothing listens on 127.0.0.1:443 here: the connection fails, and nothing is pinned
        // under any port.
        let t = TwoPorts::start();
        let client = Client::builder(TokioExecutor::new())
            .build::<_, String>(connect::HttpsConnector::new(t.configs.clone()));
        let error = runtime()
            .block_on(status(&client, "https://127.0.0.1/"))
            .unwrap_err();
        let shown = format!("{:?}", error);
        assert!(shown.contains("cannot connect to 127.0.0.1:443"), "{shown}");
        assert!(TofuError::find(&error).is_none());
        assert_eq!(pin_count(&t.store), 0);
    }
}

mod ureq_agent {
    use super::*;

    fn agent(configs: &Arc<TofuClientConfigs>) -> ureq::Agent {
        let config = ureq::Agent::config_builder().https_only(true).build();
        connect::ureq_agent(configs.clone(), config)
    }

    fn status(agent: &ureq::Agent, url: &str) -> Result<u16, ureq::Error> {
        let response = agent.get(url).call()?;
        Ok(response.status().as_u16())
    }

    #[test]
    fn one_agent_pins_each_port_under_its_own_endpoint_and_refuses_only_the_changed_one() {
        let t = TwoPorts::start();
        let agent = agent(&t.configs);
        assert_eq!(status(&agent, &TwoPorts::url(&t.a)).unwrap(), 200);
        assert_eq!(status(&agent, &TwoPorts::url(&t.b)).unwrap(), 200);
        t.assert_each_pinned_under_its_own_port();
        assert_eq!(status(&agent, &TwoPorts::url(&t.b)).unwrap(), 200);

        let presented = t.change_b();
        let error = status(&agent, &TwoPorts::url(&t.b)).unwrap_err();
        t.assert_mismatch_of_b(&error, &presented);
        assert_eq!(status(&agent, &TwoPorts::url(&t.a)).unwrap(), 200);
    }
    #[test]
    fn a_redirect_to_another_port_is_verified_and_pinned_as_that_port() {
        let t = TwoPorts::start();
        let redirector = prime_identity("redirector");
        let port = redirecting_server(&redirector, TwoPorts::url(&t.b));
        let agent = agent(&t.configs);
        let url = format!("https://127.0.0.1:{port}/");
        assert_eq!(status(&agent, &url).unwrap(), 200);
        let at = |port| {
            t.store
                .endpoint(&Endpoint::new("127.0.0.1", port).unwrap())
                .unwrap()
                .pins
                .iter()
                .map(|p| p.fingerprint())
                .collect::<Vec<_>>()
        };
        assert_eq!(at(port), [Fingerprint::of(&redirector.cert)]);
        assert_eq!(at(t.b.addr().port()), [Fingerprint::of(&t.b_id.cert)]);

        // And a changed certificate behind the redirect is refused as that port's.
        let presented = t.change_b();
        let error = status(&agent, &url).unwrap_err();
        t.assert_mismatch_of_b(&error, &presented);
    }
}

mod reqwest_client {
    use super::*;

    async fn status(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
        Ok(client.get(url).send().await?.status().as_u16())
    }

    #[test]
    fn a_client_per_port_pins_each_under_its_own_endpoint_and_refuses_only_the_changed_one() {
        let t = TwoPorts::start();
        let client = |server: &DemoServer| {
            connect::reqwest_client(&t.configs, &TwoPorts::endpoint(server))
                .unwrap()
                .build()
                .unwrap()
        };
        let (a, b) = (client(&t.a), client(&t.b));
        runtime().block_on(async {
            assert_eq!(status(&a, &TwoPorts::url(&t.a)).await.unwrap(), 200);
            assert_eq!(status(&b, &TwoPorts::url(&t.b)).await.unwrap(), 200);
            t.assert_each_pinned_under_its_own_port();

            let presented = t.change_b();
            let error = status(&b, &TwoPorts::url(&t.b)).await.unwrap_err();
            t.assert_mismatch_of_b(&error, &presented);
            assert_eq!(status(&a, &TwoPorts::url(&t.a)).await.unwrap(), 200);
        });
    }

    #[test]
    fn a_redirect_to_another_port_is_not_followed() {
        let t = TwoPorts::start();
        let redirector = prime_identity("redirector");
        let port = redirecting_server(&redirector, TwoPorts::url(&t.b));
        let endpoint = Endpoint::new("127.0.0.1", port).unwrap();
        let client = connect::reqwest_client(&t.configs, &endpoint)
            .unwrap()
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}/");
        let response = runtime().block_on(client.get(&url).send()).unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], TwoPorts::url(&t.b).as_str());
        // Only the endpoint the client serves was contacted, and pinned.
        assert_eq!(pin_count(&t.store), 1);
        assert_eq!(t.store.endpoint(&endpoint).unwrap().pins.len(), 1);
    }

    #[test]
    fn a_client_refuses_plain_http() {
        let t = TwoPorts::start();
        let client = connect::reqwest_client(&t.configs, &TwoPorts::endpoint(&t.a))
            .unwrap()
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{}/", t.a.addr().port());
        let error = runtime().block_on(status(&client, &url)).unwrap_err();
        assert!(error.is_builder(), "{error:?}");
        assert_eq!(pin_count(&t.store), 0);
    }
}

mod tokio_rustls_connector {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn fetch(configs: &TofuClientConfigs, server: &DemoServer) -> std::io::Result<String> {
        let endpoint = TwoPorts::endpoint(server);
        let connector = connect::tls_connector(configs, &endpoint).unwrap();
        let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
        let mut tls = connector.connect(endpoint.server_name(), tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    #[test]
    fn a_connector_per_endpoint_pins_each_port_and_refuses_only_the_changed_one() {
        let t = TwoPorts::start();
        runtime().block_on(async {
            assert!(fetch(&t.configs, &t.a)
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200"));
            assert!(fetch(&t.configs, &t.b)
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200"));
            t.assert_each_pinned_under_its_own_port();

            let presented = t.change_b();
            let error = fetch(&t.configs, &t.b).await.unwrap_err();
            t.assert_mismatch_of_b(&error, &presented);
            assert!(fetch(&t.configs, &t.a)
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200"));
        });
    }
}

/// The `hyper_client` and `ureq_client` examples, run as a person would: first use pins each
/// port's certificate under its own endpoint, a second run succeeds from the pins, and after
/// one server changes its certificate only its URL is refused, with the TofuError's text.
mod client_examples {
    use super::*;
    use std::process::Command;

    fn run(example: &str, store: &std::path::Path, urls: &[String]) -> (Option<i32>, String) {
        let out = Command::new(examples::example_binary(example))
            .arg("--store")
            .arg(store)
            .args(urls)
            .env_remove("TOFU_CERTS_STORE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{example} wrote to stderr:\n{stderr}");
        (out.status.code(), stdout)
    }

    fn first_use_then_pins_then_one_refusal(example: &str) {
        let t = TwoPorts::start();
        let store_dir = t.store.dir().unwrap().to_path_buf();
        let (a, b) = (TwoPorts::url(&t.a), TwoPorts::url(&t.b));
        let urls = [a.clone(), b.clone()];

        let (code, out) = run(example, &store_dir, &urls);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out, format!("{a}: status 200\n{b}: status 200\n"));
        t.assert_each_pinned_under_its_own_port();

        let (code, out) = run(example, &store_dir, &urls);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out, format!("{a}: status 200\n{b}: status 200\n"));

        let presented = t.change_b();
        let (code, out) = run(example, &store_dir, &urls);
        assert_eq!(code, Some(4), "{out}");
        let (first, rest) = out.split_once('\n').unwrap();
        assert_eq!(first, format!("{a}: status 200"));
        let b_endpoint = TwoPorts::endpoint(&t.b);
        assert!(
            rest.starts_with(&format!(
                "{b}: refused: the certificate presented by {b_endpoint} does not match the \
                 certificate pinned for it."
            )),
            "{out}"
        );
        assert!(
            rest.contains(&format!(
                "tofu-certs accept host {b_endpoint} --fingerprint {presented}"
            )),
            "{out}"
        );
        assert_eq!(t.pin_of(&t.b), Fingerprint::of(&t.b_id.cert));
    }

    #[test]
    fn hyper_client_pins_each_port_on_first_use_then_refuses_only_the_changed_one() {
        first_use_then_pins_then_one_refusal("hyper_client");
    }

    #[test]
    fn ureq_client_pins_each_port_on_first_use_then_refuses_only_the_changed_one() {
        first_use_then_pins_then_one_refusal("ureq_client");
    }
}
