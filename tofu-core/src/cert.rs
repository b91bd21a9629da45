//! What the store records about a certificate, and reading certificate files.

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::x509::X509Name;

use crate::text::{
    bounded, bounded_list, escape_name_bytes, MAX_NAME_CHARS, MAX_SANS, MAX_SAN_CHARS,
};
use crate::{timestamp::Timestamp, Fingerprint};

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
    /// The subject as `openssl x509 -noout -subject -nameopt compat` prints it after `subject=`,
    /// cut to [`MAX_NAME_CHARS`] (ending `… [truncated: N more
    /// characters]`) when longer.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Subject alternative names as OpenSSL prints them (`DNS:prime-pri`, `IP Address:10.1.1.1`),
    /// each cut to [`MAX_SAN_CHARS`], and at most
    /// [`MAX_SANS`] of them (the last then says how many more there were).
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
        let cert = parse(der)?;
        let validity = cert.validity();
        Ok(Self {
            fingerprint: Fingerprint::of(der),
            spki_fingerprint: Fingerprint::of(cert.public_key().raw),
            // Bounded here, where they are made, so that neither the store nor the audit log
            // nor any output holds a hostile peer's megabytes (see `text::bounded`).
            subject: bounded(openssl_oneline(cert.subject()), MAX_NAME_CHARS),
            issuer: bounded(openssl_oneline(cert.issuer()), MAX_NAME_CHARS),
            sans: bounded_list(
                subject_alt_names(&cert)
                    .into_iter()
                    .map(|san| bounded(san, MAX_SAN_CHARS))
                    .collect(),
                MAX_SANS,
            ),
            not_before: Timestamp::from_unix(validity.not_before.timestamp()),
            not_after: Timestamp::from_unix(validity.not_after.timestamp()),
        })
    }
}

/// Whether `der` is one certificate [`CertificateDetails::from_der`] takes (the same checks
/// and errors), without working out its details: for a reader that only checks.
pub(crate) fn check_der(der: &[u8]) -> Result<(), CertificateError> {
    parse(der).map(drop)
}

/// The checks of [`CertificateDetails::from_der`]: not empty, not too large, one X.509
/// certificate and nothing after it.
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertificateError> {
    {
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
        Ok(cert)
    }
}

/// Reads the certificates of a PEM file (all `CERTIFICATE` blocks, in order) or a DER file
/// (one certificate). Each one is checked as [`CertificateDetails::from_der`] checks it.
///
/// # Errors
/// When the bytes are empty, a private key, damaged PEM, or not a certificate.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CertificateError::Empty);
    }
    let looks_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    // A whole DER certificate is DER even if its names hold "-----BEGIN " (found by
    // `fuzz/run.sh`); PEM text never parses as DER.
    match check_der(bytes) {
        Ok(_) => return Ok(vec![CertificateDer::from(bytes.to_vec())]),
        Err(CertificateError::Malformed(_)) if !looks_pem => {
            return Err(CertificateError::NotCertificate)
        }
        Err(e) if !looks_pem => return Err(e),
        Err(_) => {}
    }
    let mut certs = Vec::new();
    let mut saw_key = false;
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = section.map_err(|e| CertificateError::BadPem(pem_error(&e)))?;
        match kind {
            SectionKind::Certificate => {
                check_der(&der)?;
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

/// A PEM parser error in words, bounded: its own message lists the bytes of the offending
/// line as numbers, however long the line (found by `fuzz/run.sh`).
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as PemError;
    let shown = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let mut short: String = text.chars().take(64).collect();
        if text.chars().nth(64).is_some() {
            short.push('…');
        }
        format!("{short:?}")
    };
    match e {
        PemError::MissingSectionEnd { end_marker } => {
            format!("the section has no {} line", shown(end_marker))
        }
        PemError::IllegalSectionStart { line } => {
            format!("the line {} does not start a section", shown(line))
        }
        other => other.to_string().chars().take(200).collect(),
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
            out.push_str(&attribute_type_name(atv.attr_type()));
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
    if tag != GENERAL_STRING || !bytes.len().is_multiple_of(4) {
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

/// OpenSSL's short names (`OBJ_nid2sn`) for the attribute types of the arcs that names use,
/// as `openssl x509 -nameopt compat` 3.0 prints them; any other type is printed as its dotted
/// OID. (`tests/openssl_subject.rs` checks every entry, and the gaps, against openssl.)
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        // X.520 / RFC 4519 attribute types.
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
        "2.5.4.14" => "searchGuide",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.19" => "physicalDeliveryOfficeName",
        "2.5.4.20" => "telephoneNumber",
        "2.5.4.21" => "telexNumber",
        "2.5.4.22" => "teletexTerminalIdentifier",
        "2.5.4.23" => "facsimileTelephoneNumber",
        "2.5.4.24" => "x121Address",
        "2.5.4.25" => "internationaliSDNNumber",
        "2.5.4.26" => "registeredAddress",
        "2.5.4.27" => "destinationIndicator",
        "2.5.4.28" => "preferredDeliveryMethod",
        "2.5.4.29" => "presentationAddress",
        "2.5.4.30" => "supportedApplicationContext",
        "2.5.4.31" => "member",
        "2.5.4.32" => "owner",
        "2.5.4.33" => "roleOccupant",
        "2.5.4.34" => "seeAlso",
        "2.5.4.35" => "userPassword",
        "2.5.4.36" => "userCertificate",
        "2.5.4.37" => "cACertificate",
        "2.5.4.38" => "authorityRevocationList",
        "2.5.4.39" => "certificateRevocationList",
        "2.5.4.40" => "crossCertificatePair",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.47" => "enhancedSearchGuide",
        "2.5.4.48" => "protocolInformation",
        "2.5.4.49" => "distinguishedName",
        "2.5.4.50" => "uniqueMember",
        "2.5.4.51" => "houseIdentifier",
        "2.5.4.52" => "supportedAlgorithms",
        "2.5.4.53" => "deltaRevocationList",
        "2.5.4.54" => "dmdName",
        "2.5.4.65" => "pseudonym",
        "2.5.4.72" => "role",
        "2.5.4.97" => "organizationIdentifier",
        "2.5.4.98" => "c3",
        "2.5.4.99" => "n3",
        "2.5.4.100" => "dnsName",
        // PKCS #9.
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.2.840.113549.1.9.3" => "contentType",
        "1.2.840.113549.1.9.4" => "messageDigest",
        "1.2.840.113549.1.9.5" => "signingTime",
        "1.2.840.113549.1.9.6" => "countersignature",
        "1.2.840.113549.1.9.7" => "challengePassword",
        "1.2.840.113549.1.9.8" => "unstructuredAddress",
        "1.2.840.113549.1.9.9" => "extendedCertificateAttributes",
        "1.2.840.113549.1.9.14" => "extReq",
        "1.2.840.113549.1.9.15" => "SMIME-CAPS",
        "1.2.840.113549.1.9.16" => "SMIME",
        "1.2.840.113549.1.9.20" => "friendlyName",
        "1.2.840.113549.1.9.21" => "localKeyID",
        // The pilot (RFC 1274 / LDAP) attribute types.
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.2" => "textEncodedORAddress",
        "0.9.2342.19200300.100.1.3" => "mail",
        "0.9.2342.19200300.100.1.4" => "info",
        "0.9.2342.19200300.100.1.5" => "favouriteDrink",
        "0.9.2342.19200300.100.1.6" => "roomNumber",
        "0.9.2342.19200300.100.1.7" => "photo",
        "0.9.2342.19200300.100.1.8" => "userClass",
        "0.9.2342.19200300.100.1.9" => "host",
        "0.9.2342.19200300.100.1.10" => "manager",
        "0.9.2342.19200300.100.1.11" => "documentIdentifier",
        "0.9.2342.19200300.100.1.12" => "documentTitle",
        "0.9.2342.19200300.100.1.13" => "documentVersion",
        "0.9.2342.19200300.100.1.14" => "documentAuthor",
        "0.9.2342.19200300.100.1.15" => "documentLocation",
        "0.9.2342.19200300.100.1.20" => "homeTelephoneNumber",
        "0.9.2342.19200300.100.1.21" => "secretary",
        "0.9.2342.19200300.100.1.22" => "otherMailbox",
        "0.9.2342.19200300.100.1.23" => "lastModifiedTime",
        "0.9.2342.19200300.100.1.24" => "lastModifiedBy",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.26" => "aRecord",
        "0.9.2342.19200300.100.1.27" => "pilotAttributeType27",
        "0.9.2342.19200300.100.1.28" => "mXRecord",
        "0.9.2342.19200300.100.1.29" => "nSRecord",
        "0.9.2342.19200300.100.1.30" => "sOARecord",
        "0.9.2342.19200300.100.1.31" => "cNAMERecord",
        "0.9.2342.19200300.100.1.37" => "associatedDomain",
        "0.9.2342.19200300.100.1.38" => "associatedName",
        "0.9.2342.19200300.100.1.39" => "homePostalAddress",
        "0.9.2342.19200300.100.1.40" => "personalTitle",
        "0.9.2342.19200300.100.1.41" => "mobileTelephoneNumber",
        "0.9.2342.19200300.100.1.42" => "pagerTelephoneNumber",
        "0.9.2342.19200300.100.1.43" => "friendlyCountryName",
        "0.9.2342.19200300.100.1.44" => "uid",
        "0.9.2342.19200300.100.1.45" => "organizationalStatus",
        "0.9.2342.19200300.100.1.46" => "janetMailbox",
        "0.9.2342.19200300.100.1.47" => "mailPreferenceOption",
        "0.9.2342.19200300.100.1.48" => "buildingName",
        "0.9.2342.19200300.100.1.49" => "dSAQuality",
        "0.9.2342.19200300.100.1.50" => "singleLevelQuality",
        "0.9.2342.19200300.100.1.51" => "subtreeMinimumQuality",
        "0.9.2342.19200300.100.1.52" => "subtreeMaximumQuality",
        "0.9.2342.19200300.100.1.53" => "personalSignature",
        "0.9.2342.19200300.100.1.54" => "dITRedirect",
        "0.9.2342.19200300.100.1.55" => "audio",
        "0.9.2342.19200300.100.1.56" => "documentPublisher",
        // EV jurisdiction, Microsoft UPN, RFC 3739 personal data, Russian registration numbers.
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "1.3.6.1.4.1.311.20.2.3" => "msUPN",
        "1.3.6.1.5.5.7.9.1" => "id-pda-dateOfBirth",
        "1.3.6.1.5.5.7.9.2" => "id-pda-placeOfBirth",
        "1.3.6.1.5.5.7.9.3" => "id-pda-gender",
        "1.3.6.1.5.5.7.9.4" => "id-pda-countryOfCitizenship",
        "1.3.6.1.5.5.7.9.5" => "id-pda-countryOfResidence",
        "1.2.643.3.131.1.1" => "INN",
        "1.2.643.100.1" => "OGRN",
        "1.2.643.100.3" => "SNILS",
        "1.2.643.100.5" => "OGRNIP",
        "1.2.643.100.111" => "subjectSignTool",
        "1.2.643.100.112" => "issuerSignTool",
        "1.2.643.100.113" => "classSignTool",
        _ => return None,
    })
}

/// The dotted form of an OID from its DER content bytes, as OpenSSL's `OBJ_obj2txt` writes
/// it: every arc in full however large (x509-parser's own rendering gets arcs under `2.`
/// above 39 wrong, and gives up on arcs over 64 bits).
fn oid_dotted(bytes: &[u8]) -> String {
    /// A non-negative integer in base 10^9 limbs, least significant first.
    struct Big(Vec<u32>);
    const LIMB: u64 = 1_000_000_000;
    impl Big {
        fn mul_add(&mut self, mul: u64, add: u64) {
            let mut carry = add;
            for limb in &mut self.0 {
                let v = u64::from(*limb) * mul + carry;
                *limb = (v % LIMB) as u32;
                carry = v / LIMB;
            }
            while carry > 0 {
                self.0.push((carry % LIMB) as u32);
                carry /= LIMB;
            }
        }
        fn small(&self) -> Option<u64> {
            match self.0.as_slice() {
                [] => Some(0),
                [a] => Some(u64::from(*a)),
                _ => None,
            }
        }
        fn sub_80(&mut self) {
            let mut borrow = 80u64;
            for limb in &mut self.0 {
                let v = u64::from(*limb);
                if v >= borrow {
                    *limb = (v - borrow) as u32;
                    break;
                }
                *limb = (v + LIMB - borrow) as u32;
                borrow = 1;
            }
        }
        fn write(&self, out: &mut String) {
            let mut limbs = self.0.iter().rev().skip_while(|&&l| l == 0);
            match limbs.next() {
                None => out.push('0'),
                Some(top) => {
                    out.push_str(&top.to_string());
                    for limb in limbs {
                        out.push_str(&format!("{limb:09}"));
                    }
                }
            }
        }
    }

    let mut out = String::new();
    let mut arc = Big(Vec::new());
    let mut first = true;
    for (i, &b) in bytes.iter().enumerate() {
        arc.mul_add(128, u64::from(b & 0x7f));
        if b & 0x80 != 0 && i + 1 < bytes.len() {
            continue;
        }
        if first {
            first = false;
            match arc.small() {
                Some(v) if v < 80 => {
                    out.push_str(&format!("{}.{}", v / 40, v % 40));
                    arc = Big(Vec::new());
                    continue;
                }
                _ => {
                    out.push_str("2.");
                    arc.sub_80();
                }
            }
        } else {
            out.push('.');
        }
        arc.write(&mut out);
        arc = Big(Vec::new());
    }
    out
}

/// An attribute type as `X509_NAME_oneline` names it: OpenSSL's short name, or the dotted OID
/// cut to the 79 characters of OpenSSL's buffer.
fn attribute_type_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    let dotted = oid_dotted(oid.as_bytes());
    match short_name(&dotted) {
        Some(sn) => sn.to_string(),
        None => {
            let mut dotted = dotted;
            dotted.truncate(79);
            dotted
        }
    }
}

/// Subject alternative names as `openssl x509 -ext subjectAltName` (OpenSSL 3.0) prints them,
/// except that the characters that [`must_escape`](crate::text::must_escape) inside names (control,
/// format and separator characters) are shown as `\xHH` (OpenSSL prints them raw): a hostile
/// certificate cannot write to the terminal, reorder a name, nor split one into two lines.
fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(d) => format!("DNS:{}", escape_name_bytes(d.as_bytes())),
            GeneralName::RFC822Name(e) => format!("email:{}", escape_name_bytes(e.as_bytes())),
            GeneralName::URI(u) => format!("URI:{}", escape_name_bytes(u.as_bytes())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => {
                    let a: [u8; 4] = (*bytes).try_into().expect("length checked");
                    format!("IP Address:{}", std::net::Ipv4Addr::from(a))
                }
                // OpenSSL 3.0 writes all eight groups, in uppercase hex, never `::`.
                16 => {
                    let groups: Vec<String> = bytes
                        .chunks(2)
                        .map(|g| format!("{:X}", u16::from_be_bytes([g[0], g[1]])))
                        .collect();
                    format!("IP Address:{}", groups.join(":"))
                }
                _ => "IP Address:<invalid>".to_string(),
            },
            GeneralName::DirectoryName(dn) => format!("DirName:{}", openssl_oneline(dn)),
            GeneralName::RegisteredID(oid) => {
                format!("Registered ID:{}", oid_dotted(oid.as_bytes()))
            }
            GeneralName::OtherName(oid, value) => other_name(oid.as_bytes(), value),
            GeneralName::X400Address(_) => "X400Name:<unsupported>".to_string(),
            GeneralName::EDIPartyName(_) => "EdiPartyName:<unsupported>".to_string(),
            GeneralName::Invalid(_, _) => "<invalid>".to_string(),
        })
        .collect()
}

/// An otherName as OpenSSL 3.0 prints it: `othername: <type>::<value>`, the type by
/// OpenSSL's name for the five it knows and otherwise its dotted OID, and the value when it is
/// a UTF8String or IA5String (SRVName: IA5String only; the others: UTF8String only).
fn other_name(oid: &[u8], explicit_value: &[u8]) -> String {
    use x509_parser::der_parser::ber::parse_ber_any;
    const UTF8_STRING: u32 = 12;
    const IA5_STRING: u32 = 22;
    let dotted = oid_dotted(oid);
    let (label, allowed): (&str, &[u32]) = match dotted.as_str() {
        "1.3.6.1.4.1.311.20.2.3" => ("UPN", &[UTF8_STRING]),
        "1.3.6.1.5.5.7.8.5" => ("XmppAddr", &[UTF8_STRING]),
        "1.3.6.1.5.5.7.8.7" => ("SRVName", &[IA5_STRING]),
        "1.3.6.1.5.5.7.8.8" => ("NAIRealm", &[UTF8_STRING]),
        "1.3.6.1.5.5.7.8.9" => ("SmtpUTF8Mailbox", &[UTF8_STRING]),
        other => (other, &[UTF8_STRING, IA5_STRING]),
    };
    // `explicit_value` is the `[0] EXPLICIT` wrapper around the value.
    let value = parse_ber_any(explicit_value)
        .ok()
        .and_then(|(_, wrapper)| parse_ber_any(wrapper.data).ok())
        .filter(|(_, v)| allowed.contains(&v.tag().0))
        .map(|(_, v)| escape_name_bytes(v.data));
    format!(
        "othername: {label}::{}",
        value.as_deref().unwrap_or("<unsupported>")
    )
}
