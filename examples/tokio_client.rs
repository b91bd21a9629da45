//! `blocking_client` with tokio and tokio-rustls: the same verifier, asynchronously.
//!
//!     cargo run -p examples --example tokio_client -- 127.0.0.1:8443 [/path] [STORE_DIR]

use std::sync::Arc;

use tofu_core::{Endpoint, Policy, Store, TofuClientConfigs, TofuError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint: Endpoint = args
        .next()
        .ok_or("usage: tokio_client HOST:PORT [PATH] [STORE_DIR]")?
        .parse()?;
    let path = args.next().unwrap_or_else(|| "/".into());
    let store_dir = args.next().unwrap_or_else(|| "tofu-store".into());

    let store = Arc::new(Store::open(store_dir)?);
    // A service talking to many peers keeps one of these and asks it per endpoint.
    let configs = TofuClientConfigs::new(store, Policy::trust_on_first_use());
    let connector = tokio_rustls::TlsConnector::from(configs.client_config(&endpoint)?);

    let tcp = tokio::net::TcpStream::connect(endpoint.to_string()).await?;
    let mut tls = match connector.connect(endpoint.server_name(), tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            if let Some(refusal) = TofuError::from_io(&e) {
                eprintln!("{refusal}");
                std::process::exit(4);
            }
            return Err(e.into());
        }
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        endpoint.host()
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    std::io::Write::write_all(&mut std::io::stdout(), &response)?;
    Ok(())
}
