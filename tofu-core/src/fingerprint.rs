//! SHA-256 fingerprints of certificates and public keys.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A SHA-256 digest: of a certificate's DER (its fingerprint) or of its SubjectPublicKeyInfo.
///
/// It displays as OpenSSH does, `SHA256:` and unpadded base64, and parses from every notation
/// people paste: that form (padding allowed), the hex forms OpenSSL prints (`AB:CD:…`, with or
/// without colons, any case, with or without a `SHA256:`/`sha256:`/`sha256 Fingerprint=`
/// prefix), and `sha256/<base64>` as HPKP and OkHttp write public-key pins. A SHA-1 or MD5
/// fingerprint is refused with the reason and the command that prints the SHA-256 one.
///
/// ```
/// use tofu_core::Fingerprint;
/// let fp = Fingerprint::of(b"certificate DER");
/// let hex = fp.to_hex_colons();
/// assert_eq!(hex.parse::<Fingerprint>()?, fp);
/// assert_eq!(fp.to_string().parse::<Fingerprint>()?, fp);
/// # Ok::<(), tofu_core::fingerprint::FingerprintError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

/// Why a string is not a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a SHA-256 fingerprint: {reason}; give it as `SHA256:<base64>` \
     (as `tofu-certs showcert` prints it) or as 64 hex digits, colons allowed"
)]
pub struct FingerprintError {
    input: String,
    reason: &'static str,
}

impl Fingerprint {
    /// The SHA-256 of `bytes`.
    ///
    /// ```
    /// use tofu_core::Fingerprint;
    ///
    /// let fp = Fingerprint::of(b"certificate DER");
    /// assert_eq!(fp.as_bytes().len(), 32);
    /// assert_eq!(Fingerprint::from_bytes(*fp.as_bytes()), fp);
    /// assert_eq!(fp.to_hex().len(), 64);
    /// assert!(fp.to_hex_colons().starts_with(&fp.to_hex()[..2].to_uppercase()));
    /// assert!("SHA256:not-a-fingerprint".parse::<Fingerprint>().is_err());
    /// ```
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// A fingerprint from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Uppercase hex with colons, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn to_hex_colons(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02X}"));
        }
        out
    }

    /// Lowercase hex without separators.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| FingerprintError {
            input: input.chars().take(120).collect(),
            reason,
        };
        let text = input.trim();
        // `openssl x509 -fingerprint -sha256` prints `sha256 Fingerprint=AB:CD:…`
        // (`SHA256 Fingerprint=` before OpenSSL 3).
        let text = match text.split_once("Fingerprint=") {
            Some((prefix, rest)) if prefix.trim().eq_ignore_ascii_case("sha256") => rest,
            Some((prefix, _)) if is_weak_digest_name(prefix.trim()) => {
                return Err(err(WEAK));
            }
            _ => text,
        };
        if let Some((prefix, _)) = text.split_once([':', '/']) {
            if is_weak_digest_name(prefix) {
                return Err(err(WEAK));
            }
        }
        let (prefixed, body) = match text.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") || p.eq_ignore_ascii_case("sha256/") => {
                (true, &text[7..])
            }
            _ => (false, text),
        };
        if body.is_empty() {
            return Err(err("it is empty"));
        }
        let digits = body.bytes().filter(|&b| b != b':').count();
        if !prefixed
            && (digits == 40 || digits == 32)
            && body.bytes().all(|b| b == b':' || b.is_ascii_hexdigit())
        {
            // 20 bytes is SHA-1 (`openssl x509 -fingerprint` without -sha256), 16 is MD5.
            return Err(err(WEAK));
        }

        let hex: String = body.chars().filter(|&c| c != ':').collect();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let colons = body.len() - hex.len();
            if colons != 0 && colons != 31 {
                return Err(err("colons must separate every pair of hex digits"));
            }
            let mut out = [0u8; 32];
            for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
                let pair = std::str::from_utf8(chunk).expect("ASCII hex digits are UTF-8");
                out[i] = u8::from_str_radix(pair, 16).expect("two hex digits are a byte");
            }
            return Ok(Self(out));
        }
        if !prefixed {
            return Err(err("it is neither 64 hex digits nor `SHA256:` and base64"));
        }
        // `sha256/` (HPKP, OkHttp) is standard base64 with padding, `SHA256:` (OpenSSH)
        // without; either is accepted with either.
        // OpenSSH prints base64 without padding; accept padding too.
        let b64 = body.trim_end_matches('=');
        let bytes = STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| err("the part after `SHA256:` is not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("a SHA-256 digest is 32 bytes long"))?;
        Ok(Self(bytes))
    }
}

/// Why a SHA-1 or MD5 fingerprint is refused, and how to get the SHA-256 one.
const WEAK: &str = "it is a SHA-1 or MD5 fingerprint, which cannot tell certificates apart \
     (colliding ones can be made); `openssl x509 -noout -fingerprint -sha256 -in cert.pem` \
     prints the SHA-256 one";

fn is_weak_digest_name(name: &str) -> bool {
    ["sha1", "sha-1", "md5"]
        .iter()
        .any(|weak| name.eq_ignore_ascii_case(weak))
}

/// Whether `text` is written as a public-key pin (`sha256/<base64>`, the notation of HPKP and
/// OkHttp, which only ever name the SHA-256 of a SubjectPublicKeyInfo) rather than as the
/// fingerprint of a certificate.
pub fn names_a_public_key(text: &str) -> bool {
    text.trim()
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sha256/"))
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of the empty string, a digest everyone can check.
    const EMPTY_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY_B64: &str = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";

    #[test]
    fn displays_as_openssh_does() {
        assert_eq!(Fingerprint::of(b"").to_string(), EMPTY_B64);
    }

    #[test]
    fn parses_every_form_people_copy_from_tools() {
        let fp = Fingerprint::of(b"");
        let colons = fp.to_hex_colons();
        assert!(colons.starts_with("E3:B0:C4"));
        for text in [
            EMPTY_B64.to_string(),
            format!("{EMPTY_B64}="),
            format!("sha256:{}", &EMPTY_B64[7..]),
            EMPTY_HEX.to_string(),
            EMPTY_HEX.to_uppercase(),
            colons.clone(),
            colons.to_lowercase(),
            format!("SHA256:{EMPTY_HEX}"),
            format!("sha256 Fingerprint={colons}"),
            format!("SHA256 Fingerprint={colons}\n"),
            format!("sha256:{EMPTY_HEX}"),
            format!("sha256/{}=", &EMPTY_B64[7..]),
            format!("sha256/{}", &EMPTY_B64[7..]),
            format!("  sha256 Fingerprint={}  ", colons.to_lowercase()),
        ] {
            assert_eq!(text.parse::<Fingerprint>(), Ok(fp), "{text}");
        }
    }

    #[test]
    fn only_the_slash_notation_names_a_public_key() {
        assert!(names_a_public_key(&format!("sha256/{}", &EMPTY_B64[7..])));
        assert!(!names_a_public_key(EMPTY_B64));
        assert!(!names_a_public_key(EMPTY_HEX));
    }

    #[test]
    fn sha1_and_md5_are_refused_saying_why_and_how_to_get_a_sha256() {
        // SHA-1 and MD5 of the empty string, as openssl and old OpenSSH print them.
        let sha1 = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09";
        let md5 = "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e";
        for text in [
            format!("SHA1 Fingerprint={sha1}"),
            format!("sha1 Fingerprint={sha1}"),
            sha1.to_string(),
            sha1.replace(':', ""),
            format!("MD5:{md5}"),
            format!("md5 Fingerprint={md5}"),
            md5.to_string(),
            md5.replace(':', ""),
            "SHA1:2jmj7l5rSw0yVb/vlWAYkK/YBwk".to_string(),
        ] {
            let err = text.parse::<Fingerprint>().unwrap_err().to_string();
            assert!(err.contains("SHA-1 or MD5"), "{text}: {err}");
            assert!(err.contains("-fingerprint -sha256"), "{text}: {err}");
            assert!(err.len() < 400, "{err}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_sha256_digest() {
        for (text, why) in [
            ("", "empty"),
            ("SHA256:", "empty"),
            ("abcd", "neither"),
            (&EMPTY_HEX[..62], "neither"),
            ("SHA256:!!!!", "not base64"),
            ("SHA256:AAAA", "32 bytes"),
            ("E3B0:C4", "neither"),
        ] {
            let err = text.parse::<Fingerprint>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("SHA256:<base64>"), "{err}");
        }
        let misplaced = format!("{}:{}", &EMPTY_HEX[..3], &EMPTY_HEX[3..]);
        assert!(misplaced
            .parse::<Fingerprint>()
            .unwrap_err()
            .to_string()
            .contains("every pair"));
    }
}
