//! TLS to the PostgreSQL server through rustls, on the process's crypto provider: the small
//! `MakeTlsConnect` of tokio-postgres, written here so that no second rustls comes in.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::location::{PostgresHost, PostgresLocation, SslMode};

/// The provider TLS to the database uses: the process's default, else the one of the crypto
/// feature compiled in; never installed as the default (that is the application's choice).
pub(super) fn provider() -> Result<Arc<CryptoProvider>, String> {
    if let Some(p) = CryptoProvider::get_default() {
        return Ok(p.clone());
    }
    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    {
        Ok(crate::verifier::default_provider())
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        Err(
            "TLS to the database needs a rustls crypto provider: install one as the process \
             default (CryptoProvider::install_default) or build tofu-core with its `ring` or \
             `aws-lc-rs` feature, or use sslmode=disable"
                .into(),
        )
    }
}

/// The rustls configuration for `location`'s sslmode; `None` for `disable`, and when every
/// server is a unix socket (which carries no TLS).
pub(super) fn client_config(
    location: &PostgresLocation,
) -> Result<Option<Arc<ClientConfig>>, String> {
    let mode = location.sslmode();
    let tcp = location
        .hosts()
        .iter()
        .any(|h| matches!(h, PostgresHost::Tcp(..)));
    if mode == SslMode::Disable || !tcp {
        return Ok(None);
    }
    let provider = provider()?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("the crypto provider cannot make TLS: {e}"))?;
    let config = match mode {
        SslMode::VerifyFull => {
            let path = location.sslrootcert().ok_or_else(|| {
                "the server is verified over TCP (sslmode=verify-full, the default) and no CA \
                 is given to verify it with: add sslrootcert=<file of the CA certificates (PEM) \
                 that issued the server's certificate> (or PGSSLROOTCERT, or \
                 ~/.postgresql/root.crt), or sslrootcert=system for the system's CA bundle. \
                 sslmode=require encrypts without verifying: anyone on the path can then pose \
                 as the server and serve it false pins"
                    .to_string()
            })?;
            let system;
            let path = if path == Path::new("system") {
                system = system_roots()?;
                system.as_path()
            } else {
                path
            };
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
            let certs = crate::read_certificates(&bytes)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            let mut roots = RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        // prefer and require: encrypted, the certificate not verified (as libpq does), but
        // the handshake signature still checked, so the session keys are the server's.
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// The system's CA bundle (`sslrootcert=system`): `SSL_CERT_FILE`, else the first of the
/// places Linux distributions and BSDs keep it.
fn system_roots() -> Result<PathBuf, String> {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/usr/local/share/certs/ca-root-nss.crt",
    ];
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "sslrootcert=system: no CA bundle found (SSL_CERT_FILE is not set, and none of {} \
                 exists); give the CA file itself as sslrootcert",
                BUNDLES.join(", ")
            )
        })
}

/// Accepts any certificate (sslmode prefer/require) but verifies the handshake's signature.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// tokio-postgres's `MakeTlsConnect` over rustls.
#[derive(Clone)]
pub(super) struct MakeRustls(pub(super) Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.0.clone()),
            name,
        })
    }
}

pub(super) struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

pub(super) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): the server's certificate hashed with the hash of its
    /// signature (SHA-256 for MD5 and SHA-1), which SCRAM-SHA-256-PLUS binds authentication
    /// to. None for a signature without one hash (Ed25519, RSA-PSS), as the server does.
    fn channel_binding(&self) -> ChannelBinding {
        let Some(cert) = self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        else {
            return ChannelBinding::none();
        };
        match end_point_hash(cert) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The `tls-server-end-point` hash of `cert`, when its signature algorithm names one hash.
fn end_point_hash(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use sha2::Digest;
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).ok()?;
    let oid = parsed.signature_algorithm.algorithm.to_id_string();
    let bytes = cert.as_ref();
    Some(match oid.as_str() {
        // md5, sha1, sha256 with RSA; ecdsa with sha1, sha256; dsa with sha1, sha256.
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10040.4.3"
        | "2.16.840.1.101.3.4.3.2" => sha2::Sha256::digest(bytes).to_vec(),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => sha2::Sha224::digest(bytes).to_vec(),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(bytes).to_vec(),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(bytes).to_vec(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::end_point_hash;
    use sha2::Digest;

    #[test]
    fn the_end_point_hash_is_the_one_of_the_certificates_signature() {
        // rcgen's default key is ECDSA P-256 with SHA-256; P-384 signs with SHA-384.
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 32),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 48),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["db".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let hash = end_point_hash(cert.der()).unwrap();
            assert_eq!(hash.len(), len);
            if len == 32 {
                assert_eq!(hash, sha2::Sha256::digest(cert.der().as_ref()).to_vec());
            }
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(end_point_hash(cert.der()), None);
    }
}
