//! The smallest complete use of the verifier: fetch a page over HTTPS with
//! `std::net::TcpStream` and `rustls::StreamOwned`, trusting the server on first use.
//!
//!     cargo run -p examples --example blocking_client -- 127.0.0.1:8443 [/path] [STORE_DIR]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use tofu_core::{Endpoint, Store, TofuError, TofuVerifier};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint: Endpoint = args
        .next()
        .ok_or("usage: blocking_client HOST:PORT [PATH] [STORE_DIR]")?
        .parse()?;
    let path = args.next().unwrap_or_else(|| "/".into());
    let store_dir = args.next().unwrap_or_else(|| "tofu-store".into());

    // One store per process; one verifier per endpoint (the port is part of the pin's key).
    let store = Arc::new(Store::open(store_dir)?);
    let verifier = TofuVerifier::builder(store, endpoint.clone()).build()?;
    let conn =
        rustls::ClientConnection::new(verifier.client_config(), verifier.server_name().clone())?;
    let sock = TcpStream::connect(endpoint.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        endpoint.host()
    );
    // The first write completes the handshake, where the verifier pins or checks the pin.
    if let Err(e) = tls.write_all(request.as_bytes()) {
        if let Some(refusal) = TofuError::from_io(&e) {
            eprintln!("{refusal}");
            std::process::exit(4);
        }
        return Err(e.into());
    }
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Servers that close without close_notify: keep what arrived.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    std::io::stdout().write_all(&response)?;
    Ok(())
}
