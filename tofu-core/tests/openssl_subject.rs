//! `CertificateDetails` shows a certificate the way `openssl x509` does, so that what
//! `tofu-certs showcert` prints can be compared by eye with what operators already use.
//!
//! Every expectation here is what the real `openssl` binary prints for the same DER:
//! subject and issuer as `-nameopt compat` (OpenSSL's `X509_NAME_oneline`), the subject
//! alternative names as `-ext subjectAltName`, the SHA-256 fingerprint, the SPKI digest and
//! the validity dates.

use std::path::Path;
use std::process::Command;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyPair, OtherNameValue, SanType,
};
use tofu_core::{cert::CertificateDetails, timestamp::Timestamp, Fingerprint};

// ---------------------------------------------------------------------------------------------
// Running openssl

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "these tests compare with the real `openssl` binary, which is not on PATH: install \
             it (Debian/Ubuntu: `apt-get install openssl`); CI installs it"
        ),
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What `openssl x509` prints about `der`.
struct OpenSslView {
    subject: String,
    issuer: String,
    sans: String,
    fingerprint: Fingerprint,
    spki_fingerprint: Fingerprint,
    not_before: Timestamp,
    not_after: Timestamp,
}

fn openssl_view(der: &[u8]) -> OpenSslView {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("c.der"), der).unwrap();
    let x509 = |args: &[&str]| {
        let mut all = vec!["x509", "-inform", "DER", "-in", "c.der", "-noout"];
        all.extend_from_slice(args);
        // `-nameopt compat` escapes every byte outside printable ASCII, so this is ASCII.
        String::from_utf8(openssl(&all, dir)).expect("openssl printed ASCII")
    };
    let line = |text: &str, prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text:?}"))
            .to_string()
    };
    let names = x509(&["-subject", "-issuer", "-nameopt", "compat"]);
    let sans = x509(&["-ext", "subjectAltName"]);
    let fingerprint = x509(&["-fingerprint", "-sha256"]);
    let dates = x509(&["-startdate", "-enddate", "-dateopt", "iso_8601"]);
    let date = |prefix| -> Timestamp {
        // 2026-11-21 19:59:01Z
        let text = line(&dates, prefix).replacen(' ', "T", 1);
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    };
    std::fs::write(dir.join("pub.pem"), x509(&["-pubkey"])).unwrap();
    let spki = openssl(
        &["pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"],
        dir,
    );
    OpenSslView {
        subject: line(&names, "subject="),
        issuer: line(&names, "issuer="),
        // The names follow a header line, indented; nothing when there are none.
        sans: sans
            .split_once('\n')
            .map(|(_, names)| {
                let names = names.trim_start_matches(' ');
                names.strip_suffix('\n').unwrap_or(names)
            })
            .unwrap_or("")
            .to_string(),
        fingerprint: fingerprint.trim().parse().unwrap_or_else(|e| panic!("{e}")),
        spki_fingerprint: Fingerprint::of(&spki),
        not_before: date("notBefore="),
        not_after: date("notAfter="),
    }
}

/// What `openssl x509 -noout -subject -nameopt compat` prints after `subject=`.
fn openssl_subject(der: &[u8]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.der"), der).unwrap();
    let out = openssl(
        &[
            "x509", "-inform", "DER", "-in", "c.der", "-noout", "-subject", "-nameopt", "compat",
        ],
        tmp.path(),
    );
    let out = String::from_utf8(out).expect("ASCII");
    out.trim_end()
        .strip_prefix("subject=")
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_string()
}

/// Asserts that our details of `der` match what openssl prints, and returns them.
#[track_caller]
fn assert_matches_openssl(der: &[u8]) -> CertificateDetails {
    let ours = CertificateDetails::from_der(der).expect("the certificate parses");
    let theirs = openssl_view(der);
    assert_eq!(ours.subject, theirs.subject, "subject");
    assert_eq!(ours.issuer, theirs.issuer, "issuer");
    assert_eq!(
        ours.sans.join(", "),
        theirs.sans,
        "subject alternative names"
    );
    assert_eq!(ours.fingerprint, theirs.fingerprint, "fingerprint");
    assert_eq!(
        ours.spki_fingerprint, theirs.spki_fingerprint,
        "SPKI fingerprint"
    );
    assert_eq!(ours.not_before, theirs.not_before, "notBefore");
    assert_eq!(ours.not_after, theirs.not_after, "notAfter");
    ours
}

// ---------------------------------------------------------------------------------------------
// Certificates made by openssl itself

/// A self-signed certificate made by `openssl req` for `subj` (OpenSSL's `/type=value` form,
/// with `-multivalue-rdn`, so `+` joins attributes into one RDN unless escaped as `\+`).
fn openssl_req(subj: &str, extra: &[&str]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "k.pem",
        "-outform",
        "DER",
        "-out",
        "c.der",
        "-days",
        "30",
        "-utf8",
        "-multivalue-rdn",
        "-subj",
        subj,
    ];
    args.extend_from_slice(extra);
    openssl(&args, tmp.path());
    std::fs::read(tmp.path().join("c.der")).unwrap()
}

/// A certificate for `leaf_subj` signed by a CA named `ca_subj`, both made by openssl.
fn openssl_signed(ca_subj: &str, leaf_subj: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let req = |subj: &str, key: &str, out: &str, x509: bool| {
        let mut args = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            out,
            "-utf8",
            "-multivalue-rdn",
            "-subj",
            subj,
        ];
        if x509 {
            args.extend_from_slice(&["-x509", "-days", "30"]);
        }
        openssl(&args, dir);
    };
    req(ca_subj, "ca.key", "ca.pem", true);
    req(leaf_subj, "leaf.key", "leaf.csr", false);
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-outform",
            "DER",
            "-out",
            "leaf.der",
        ],
        dir,
    );
    std::fs::read(dir.join("leaf.der")).unwrap()
}

#[test]
fn prime_subjects_print_as_openssl_prints_them() {
    let subj = "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri";
    let d = assert_matches_openssl(&openssl_req(subj, &[]));
    assert_eq!(d.subject, subj);
    assert_eq!(d.issuer, subj);

    let ca = "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=Prime Infra CA";
    let d = assert_matches_openssl(&openssl_signed(ca, subj));
    assert_eq!((d.subject.as_str(), d.issuer.as_str()), (subj, ca));
}

#[test]
fn a_multi_valued_rdn_joins_its_attributes_with_plus() {
    let d = assert_matches_openssl(&openssl_req("/CN=a+UID=b/O=x", &[]));
    // DER sorts the attributes of one RDN by their encoding; both orders are one RDN.
    assert!(
        d.subject == "/CN=a+UID=b/O=x" || d.subject == "/UID=b+CN=a/O=x",
        "{}",
        d.subject
    );
    assert_matches_openssl(&openssl_req("/O=x/OU=y+OU=z+CN=w/C=US", &[]));
}

#[test]
fn slash_and_plus_inside_values_are_escaped() {
    let d = assert_matches_openssl(&openssl_req(r"/O=x\/y/OU=p\+q/CN=a\/b\+c", &[]));
    assert_eq!(d.subject, r"/O=x\/y/OU=p\+q/CN=a\/b\+c");
    // A value that looks like more attributes stays one value.
    let d = assert_matches_openssl(&openssl_req(r"/CN=host\/O=Evil Corp", &[]));
    assert_eq!(d.subject, r"/CN=host\/O=Evil Corp");
}

#[test]
fn other_punctuation_and_spaces_are_printed_as_they_are() {
    for subj in [
        r"/CN=a\\b/O=c=d, e; f",
        "/CN=  leading and trailing  /O=\"quoted\" <angle> #hash",
        "/CN=~!@$%^&*()_|{}[]:'?.`",
    ] {
        assert_matches_openssl(&openssl_req(subj, &[]));
    }
}

#[test]
fn utf8_is_printed_as_escaped_bytes() {
    let d = assert_matches_openssl(&openssl_req("/CN=é/O=日本/L=Zürich", &[]));
    assert_eq!(
        d.subject,
        r"/CN=\xC3\xA9/O=\xE6\x97\xA5\xE6\x9C\xAC/L=Z\xC3\xBCrich"
    );
}

#[test]
fn email_and_domain_components_use_openssl_short_names() {
    let d = assert_matches_openssl(&openssl_req(
        "/DC=com/DC=example/CN=host/emailAddress=ops@example.com/UID=jdoe",
        &[],
    ));
    assert_eq!(
        d.subject,
        "/DC=com/DC=example/CN=host/emailAddress=ops@example.com/UID=jdoe"
    );
}

#[test]
fn awkward_issuers_print_as_openssl_prints_them() {
    assert_matches_openssl(&openssl_signed(
        r"/DC=corp/CN=Issuing CA+UID=ca1/O=Evil\/Good/OU=a\+b/L=日本",
        "/CN=leaf",
    ));
}

#[test]
fn directory_names_and_registered_ids_in_sans_print_as_openssl_prints_them() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("openssl.cnf");
    let base = std::fs::read_to_string("/etc/ssl/openssl.cnf").unwrap_or_default();
    std::fs::write(
        &config,
        format!("{base}\n[dirname_sect]\nC = US\nO = a+b, c\nCN = z/w\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let d = assert_matches_openssl(&openssl_req(
        "/CN=x",
        &[
            "-config",
            config,
            "-addext",
            "subjectAltName=DNS:prime-pri,dirName:dirname_sect,RID:1.2.3.4,IP:fd00::5,\
             otherName:1.3.6.1.5.5.7.8.7;IA5:_https.prime-pri,\
             otherName:1.3.6.1.5.5.7.8.5;UTF8:xmpp@prime,\
             otherName:1.3.6.1.5.5.7.8.9;UTF8:smtp@prime,\
             otherName:1.3.6.1.5.5.7.8.8;UTF8:realm,\
             otherName:1.2.3.4;INT:5,\
             otherName:1.2.3.5;IA5:ia5 text",
        ],
    ));
    assert_eq!(
        d.sans,
        [
            "DNS:prime-pri",
            r"DirName:/C=US/O=a\+b, c/CN=z\/w",
            "Registered ID:1.2.3.4",
            "IP Address:FD00:0:0:0:0:0:0:5",
            "othername: SRVName::_https.prime-pri",
            "othername: XmppAddr::xmpp@prime",
            "othername: SmtpUTF8Mailbox::smtp@prime",
            "othername: NAIRealm::realm",
            "othername: 1.2.3.4::<unsupported>",
            "othername: 1.2.3.5::ia5 text",
        ]
    );
}

#[test]
fn control_characters_in_sans_are_escaped_where_openssl_prints_them_raw() {
    // A deliberate difference: printed raw, a newline would split one name into two lines
    // (and the store keeps one name per line), and escape sequences would reach the terminal.
    let hostile = "evil\nDNS:bank.example\x1b[2J";
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "x");
    let der = rcgen_cert(
        dn,
        vec![
            SanType::DnsName(hostile.try_into().unwrap()),
            SanType::URI("https://x/\r\n".try_into().unwrap()),
        ],
    );
    let d = CertificateDetails::from_der(&der).unwrap();
    assert_eq!(
        d.sans,
        [
            r"DNS:evil\x0ADNS:bank.example\x1B[2J",
            r"URI:https://x/\x0D\x0A"
        ]
    );
    let theirs = openssl_view(&der).sans;
    assert_eq!(
        theirs
            .replace('\n', r"\x0A")
            .replace('\r', r"\x0D")
            .replace('\x1b', r"\x1B"),
        d.sans.join(", "),
        "apart from the escaping, the same as openssl"
    );
}

// ---------------------------------------------------------------------------------------------
// Certificates made by rcgen: string types and attribute types openssl's `req` will not write

fn rcgen_cert(dn: DistinguishedName, sans: Vec<SanType>) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.self_signed(&key).unwrap().der().to_vec()
}

fn oid(dotted: &str) -> Vec<u64> {
    dotted.split('.').map(|a| a.parse().unwrap()).collect()
}

#[test]
fn an_unknown_attribute_type_prints_as_its_dotted_oid() {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CustomDnType(oid("1.2.3.4.5")), "unknown");
    dn.push(DnType::CustomDnType(oid("2.999.1")), "also/unknown");
    dn.push(DnType::CommonName, "x");
    let d = assert_matches_openssl(&rcgen_cert(dn, vec![]));
    assert_eq!(d.subject, r"/1.2.3.4.5=unknown/2.999.1=also\/unknown/CN=x");

    // Arcs beyond 64 bits are printed in full; OpenSSL cuts the whole OID at 79 characters.
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CustomDnType(oid("1.3.6.1.4.1.18446744073709551615.7")),
        "big",
    );
    dn.push(
        DnType::CustomDnType(
            [1, 3]
                .into_iter()
                .chain((1..=38).map(|n| n * 1000 + 7))
                .collect(),
        ),
        "long",
    );
    let d = assert_matches_openssl(&rcgen_cert(dn, vec![]));
    assert!(d
        .subject
        .starts_with("/1.3.6.1.4.1.18446744073709551615.7=big/"));
    let long_type = d
        .subject
        .split('/')
        .nth(2)
        .unwrap()
        .split('=')
        .next()
        .unwrap();
    assert_eq!(long_type.len(), 79, "{long_type}");
}

#[test]
fn every_string_type_prints_its_bytes_as_openssl_does() {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        DnValue::BmpString("日本".try_into().unwrap()),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::UniversalString("é/x".try_into().unwrap()),
    );
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::TeletexString("teletex".try_into().unwrap()),
    );
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("US".try_into().unwrap()),
    );
    dn.push(
        DnType::LocalityName,
        DnValue::Ia5String("ia5+x".try_into().unwrap()),
    );
    dn.push(DnType::StateOrProvinceName, "tab\there\u{7f}del\u{80}c1");
    let d = assert_matches_openssl(&rcgen_cert(dn, vec![]));
    // BMPString "日本" is U+65E5 U+672C: the bytes 65 E5 67 2C, two of them printable.
    assert!(
        d.subject.starts_with(r"/CN=e\xE5g,/O=\x00\x00\x00\xE9"),
        "{}",
        d.subject
    );
}

#[test]
fn an_empty_subject_prints_as_nothing() {
    let d = assert_matches_openssl(&rcgen_cert(
        DistinguishedName::new(),
        vec![SanType::DnsName("x".try_into().unwrap())],
    ));
    assert_eq!(d.subject, "");
}

/// The attribute types of the arcs that names use: X.520 (2.5.4), PKCS #9, the pilot/LDAP
/// arc (0.9.2342.19200300.100.1), EV jurisdiction, and the Russian INN/OGRN/SNILS family, each
/// with numbers openssl knows and numbers it does not.
fn name_attribute_oids() -> Vec<String> {
    let mut oids = Vec::new();
    oids.extend((0..=105).map(|n| format!("2.5.4.{n}")));
    oids.extend((1..=30).map(|n| format!("1.2.840.113549.1.9.{n}")));
    oids.extend((1..=60).map(|n| format!("0.9.2342.19200300.100.1.{n}")));
    oids.extend((1..=4).map(|n| format!("1.3.6.1.4.1.311.60.2.1.{n}")));
    oids.extend(
        [
            "1.2.643.3.131.1.1",
            "1.2.643.100.1",
            "1.2.643.100.3",
            "1.2.643.100.5",
            "1.2.643.100.111",
            "1.2.643.100.112",
            "1.2.643.100.113",
            "1.2.643.100.114",
            "1.3.6.1.4.1.311.20.2.3",
            "1.3.6.1.5.5.7.9.1",
            "1.3.6.1.5.5.7.9.2",
            "1.3.6.1.5.5.7.9.3",
            "1.3.6.1.5.5.7.9.4",
            "1.3.6.1.5.5.7.9.5",
            "0.2.262.1.10.7.20",
        ]
        .map(String::from),
    );
    oids
}

#[test]
fn every_attribute_type_used_in_names_gets_openssl_short_name() {
    let oids = name_attribute_oids();
    // One certificate per batch keeps each name well within the certificate size limit.
    let mut mismatches = Vec::new();
    for batch in oids.chunks(50) {
        let mut dn = DistinguishedName::new();
        for oid_text in batch {
            dn.push(DnType::CustomDnType(oid(oid_text)), "v");
        }
        let der = rcgen_cert(dn, vec![]);
        let ours = CertificateDetails::from_der(&der).unwrap().subject;
        let theirs = openssl_subject(&der);
        // Every value is "v", so the attributes split cleanly on '/'.
        let ours: Vec<&str> = ours.split('/').skip(1).collect();
        let theirs: Vec<&str> = theirs.split('/').skip(1).collect();
        assert_eq!(ours.len(), batch.len());
        assert_eq!(theirs.len(), batch.len(), "{theirs:?}");
        for ((oid_text, o), t) in batch.iter().zip(ours).zip(theirs) {
            if o != t {
                mismatches.push(format!("{oid_text}: ours {o:?}, openssl {t:?}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} attribute types differ:\n{}",
        mismatches.len(),
        oids.len(),
        mismatches.join("\n")
    );
}

#[test]
fn subject_alternative_names_print_as_openssl_prints_them() {
    let ip = |s: &str| SanType::IpAddress(s.parse().unwrap());
    let sans = vec![
        SanType::DnsName("prime-pri".try_into().unwrap()),
        SanType::DnsName("xn--bcher-kva.example".try_into().unwrap()),
        SanType::DnsName("*.example.com".try_into().unwrap()),
        ip("10.1.1.1"),
        ip("fd00::5"),
        ip("::1"),
        ip("::"),
        ip("2001:db8:0:0:1:0:0:1"),
        ip("::ffff:1.2.3.4"),
        ip("fe80::abcd:ef01:2345:6789"),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
        SanType::URI("https://prime-pri:8443/x?y=z".try_into().unwrap()),
        SanType::OtherName((
            oid("1.3.6.1.4.1.311.20.2.3"),
            OtherNameValue::Utf8String("upn@corp".into()),
        )),
        SanType::OtherName((oid("1.2.3.4"), OtherNameValue::Utf8String("other".into()))),
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "prime-pri");
    let d = assert_matches_openssl(&rcgen_cert(dn, sans));
    assert_eq!(d.sans[4], "IP Address:FD00:0:0:0:0:0:0:5");
}

#[test]
fn details_of_certificates_signed_by_an_rcgen_ca_match_openssl() {
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CountryName, "US");
    ca_dn.push(DnType::OrganizationName, "Cisco Systems");
    ca_dn.push(DnType::CommonName, "Prime Infra CA / Issuing + 1");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = ca_dn;
    let issuer = Issuer::new(ca_params, KeyPair::generate().unwrap());

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["prime-pri".into(), "10.1.1.1".into()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "CA");
    dn.push(DnType::LocalityName, "SJ");
    dn.push(DnType::OrganizationName, "Cisco Systems");
    dn.push(DnType::OrganizationalUnitName, "Prime Infra");
    dn.push(DnType::CommonName, "prime-pri");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
    let d = assert_matches_openssl(&der);
    assert_eq!(
        d.issuer,
        r"/C=US/O=Cisco Systems/CN=Prime Infra CA \/ Issuing \+ 1"
    );
    assert_eq!(d.sans, ["DNS:prime-pri", "IP Address:10.1.1.1"]);
    assert_eq!(d.not_after, "2049-12-31T00:00:00Z".parse().unwrap());
}

#[test]
fn dates_after_2049_use_generalized_time_and_still_match() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["far".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    assert_matches_openssl(&der);
}
