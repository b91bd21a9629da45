//! What the store records about a certificate, and reading certificate files.

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::x509::X509Name;

use crate::{Fingerprint, Timestamp};

/// The largest certificate accepted. Real leaf certificates are a few kilobytes; the cap keeps
/// a hostile peer from filling the store (or the quarantine) with megabytes per handshake.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// The details of a leaf certificate that the store keeps next to its DER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateDetails {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub spki_fingerprint: Fingerprint,
    /// The subject as `openssl x509 -noout -subject -nameopt compat` prints it after `subject=`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Subject alternative names as OpenSSL prints them (`DNS:prime-pri`, `IP Address:10.1.1.1`).
    pub sans: Vec<String>,
    /// Start of the validity period.
    pub not_before: Timestamp,
    /// End of the validity period.
    pub not_after: Timestamp,
}

/// Why bytes are not a usable certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// No bytes at all.
    #[error("the certificate is empty")]
    Empty,
    /// Larger than [`MAX_CERTIFICATE_LEN`].
    #[error("the certificate is {len} bytes long; certificates over {max} bytes are refused")]
    TooLarge {
        /// The length found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The DER does not parse as an X.509 certificate.
    #[error("the bytes are not an X.509 certificate in DER ({0})")]
    Malformed(String),
    /// A file holds a private key where a certificate was expected.
    #[error(
        "the file holds a private key, not a certificate; give the server's certificate \
         (`-----BEGIN CERTIFICATE-----`), and keep the key where it was"
    )]
    PrivateKey,
    /// A file holds neither PEM certificates nor DER.
    #[error("the file is neither a PEM certificate (`-----BEGIN CERTIFICATE-----`) nor DER")]
    NotCertificate,
    /// A PEM file is damaged.
    #[error("the PEM text is damaged: {0}")]
    BadPem(String),
}

impl CertificateDetails {
    /// Parses a DER certificate and extracts the recorded details.
    ///
    /// # Errors
    /// When `der` is empty, over [`MAX_CERTIFICATE_LEN`], not a certificate, or has bytes after
    /// the certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        if der.is_empty() {
            return Err(CertificateError::Empty);
        }
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(CertificateError::TooLarge {
                len: der.len(),
                max: MAX_CERTIFICATE_LEN,
            });
        }
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertificateError::Malformed(format!(
                "{} bytes follow the certificate",
                rest.len()
            )));
        }
        let validity = cert.validity();
        Ok(Self {
            fingerprint: Fingerprint::of(der),
            spki_fingerprint: Fingerprint::of(cert.public_key().raw),
            subject: openssl_oneline(cert.subject()),
            issuer: openssl_oneline(cert.issuer()),
            sans: subject_alt_names(&cert),
            not_before: Timestamp::from_unix(validity.not_before.timestamp()),
            not_after: Timestamp::from_unix(validity.not_after.timestamp()),
        })
    }
}

/// Reads the certificates of a PEM file (all `CERTIFICATE` blocks, in order) or a DER file
/// (one certificate). Each one is checked with [`CertificateDetails::from_der`].
///
/// # Errors
/// When the bytes are empty, a private key, damaged PEM, or not a certificate.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CertificateError::Empty);
    }
    let looks_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if !looks_pem {
        return match CertificateDetails::from_der(bytes) {
            Ok(_) => Ok(vec![CertificateDer::from(bytes.to_vec())]),
            Err(CertificateError::Malformed(_)) => Err(CertificateError::NotCertificate),
            Err(e) => Err(e),
        };
    }
    let mut certs = Vec::new();
    let mut saw_key = false;
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = section.map_err(|e| CertificateError::BadPem(e.to_string()))?;
        match kind {
            SectionKind::Certificate => {
                CertificateDetails::from_der(&der)?;
                certs.push(CertificateDer::from(der));
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                saw_key = true
            }
            _ => {}
        }
    }
    match (certs.is_empty(), saw_key) {
        (false, _) => Ok(certs),
        (true, true) => Err(CertificateError::PrivateKey),
        (true, false) => Err(CertificateError::NotCertificate),
    }
}

/// PEM text of one certificate.
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// OpenSSL's `X509_NAME_oneline`, which `openssl x509 -nameopt compat` prints: `/` before each
/// attribute (`+` between the attributes of one multi-valued RDN), OpenSSL's short name of the
/// attribute type (or its dotted OID), `=`, and the value's bytes with `/` and `+` escaped as
/// `\/` and `\+` and bytes outside printable ASCII as `\xHH`.
fn openssl_oneline(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter() {
        for (i, atv) in rdn.iter().enumerate() {
            out.push(if i == 0 { '/' } else { '+' });
            let oid = atv.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => out.push_str(sn),
                None => out.push_str(&oid),
            }
            out.push('=');
            let value = atv.attr_value();
            let bytes: &[u8] = value.data;
            // OpenSSL drops the padding zeros of a GeneralString holding UCS-4-like text.
            let keep = general_string_mask(value.tag().0, bytes);
            for (j, &b) in bytes.iter().enumerate() {
                if !keep[j & 3] {
                    continue;
                }
                match b {
                    b'/' | b'+' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    b' '..=b'~' => out.push(b as char),
                    _ => out.push_str(&format!("\\x{b:02X}")),
                }
            }
        }
    }
    out
}

/// Which byte positions (mod 4) `X509_NAME_oneline` prints: all of them, except for a
/// GeneralString whose length is a multiple of four and whose first three bytes of each group
/// are zero, where only the last of each four is printed.
fn general_string_mask(tag: u32, bytes: &[u8]) -> [bool; 4] {
    const GENERAL_STRING: u32 = 27;
    if tag != GENERAL_STRING || bytes.len() % 4 != 0 {
        return [true; 4];
    }
    let mut nonzero = [false; 4];
    for (j, &b) in bytes.iter().enumerate() {
        if b != 0 {
            nonzero[j & 3] = true;
        }
    }
    if nonzero[0] || nonzero[1] || nonzero[2] {
        [true; 4]
    } else {
        [false, false, false, true]
    }
}

/// OpenSSL's short names (`OBJ_nid2sn`) for the attribute types found in names.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.54" => "dmdName",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.2.840.113549.1.9.8" => "unstructuredAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::RFC822Name(e) => format!("email:{e}"),
            GeneralName::URI(u) => format!("URI:{u}"),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => {
                    let a: [u8; 4] = (*bytes).try_into().expect("length checked");
                    format!("IP Address:{}", std::net::Ipv4Addr::from(a))
                }
                16 => {
                    let a: [u8; 16] = (*bytes).try_into().expect("length checked");
                    format!("IP Address:{}", std::net::Ipv6Addr::from(a))
                }
                _ => "IP Address:<invalid>".to_string(),
            },
            other => format!("othername:{other}"),
        })
        .collect()
}
