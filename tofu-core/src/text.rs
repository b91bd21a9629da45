//! Text that reaches a person: which characters are never shown raw, how they are shown
//! instead, and how long the names the store keeps may be.
//!
//! Everything the store shows comes from someone who may be hostile: a server chooses its
//! certificate's names, anyone who can write a file chooses what `import` reads, and a
//! damaged or tampered store holds whatever it holds. A terminal obeys some characters
//! instead of showing them: control characters (Unicode general category Cc) move the cursor
//! and recolour the screen, and the format characters (Cf: bidirectional overrides such as
//! U+202E, zero-width spaces, the byte-order mark, the soft hyphen) and the line and paragraph
//! separators (Zl, Zp) reorder, hide or break the text around them, so that
//! `CN=evil\u{202E}moc.elgoog` reads as `CN=evilgoogle.com`. [`must_escape`] is the one
//! definition of those characters, taken from the Unicode Character Database (by ICU4X's
//! `icu_properties`); every place that shows stored or presented text escapes exactly them.
//!
//! Two notations, one set of characters:
//!
//! - names from certificates (subject, issuer, subject alternative names) are written as
//!   `openssl x509 -nameopt compat` writes the bytes of a subject it will not print:
//!   `\xHH` for each UTF-8 byte (U+202E is `\xE2\x80\xAE`), so that a subject stays byte for
//!   byte what OpenSSL prints ([`escape_name`]);
//! - other text (labels, the audit log's actor, file names, messages) is written as Rust
//!   writes a character escape: `\u{202e}`, and `\n`, `\r`, `\t` ([`escape_text`]).
//!
//! JSON output keeps the text exact and writes each of these characters as a `\uXXXX`
//! escape, which every JSON parser reads back and no terminal obeys.

use std::borrow::Cow;

use icu_properties::props::GeneralCategory;
use icu_properties::CodePointMapData;

/// The most characters kept of a certificate's subject or issuer. A real one is under 200;
/// a hostile one can be tens of thousands (each unprintable byte of a name takes four
/// characters as `\xHH`). Longer names are cut to this length, marker included.
pub const MAX_NAME_CHARS: usize = 1024;

/// The most characters kept of one subject alternative name (a DNS name is at most 253).
pub const MAX_SAN_CHARS: usize = 256;

/// The most subject alternative names kept of one certificate; when it has more, the last
/// one kept says how many more there were.
pub const MAX_SANS: usize = 64;

/// The most characters of an operator's label (`addcert --label`, an import file's `label`).
pub const MAX_LABEL_CHARS: usize = 1000;

/// Whether `c` must be shown escaped, never raw: a control character (general category Cc),
/// a format character (Cf: bidirectional controls such as U+202E and U+2066–U+2069, U+200B–
/// U+200F, U+FEFF, U+00AD, …), a line separator (Zl, U+2028) or a paragraph separator (Zp,
/// U+2029).
///
/// ```
/// use tofu_core::text::must_escape;
/// assert!(must_escape('\u{1b}') && must_escape('\n'));
/// assert!(must_escape('\u{202e}') && must_escape('\u{2028}') && must_escape('\u{feff}'));
/// assert!(!must_escape('a') && !must_escape(' ') && !must_escape('é') && !must_escape('…'));
/// ```
pub fn must_escape(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `text` with every character that [`must_escape`] written as a Rust escape (`\u{202e}`,
/// `\n`, `\u{1b}`): for labels, the audit log's actor, file names and other text that is
/// not a certificate's name.
///
/// ```
/// assert_eq!(tofu_core::text::escape_text("HA\u{202e}1\n"), r"HA\u{202e}1\n");
/// assert_eq!(tofu_core::text::escape_text("HA secondary"), "HA secondary");
/// ```
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// [`escape_text`], except that line breaks (`\n`) stay: for messages of several lines.
pub fn escape_message(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| must_escape(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if must_escape(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A certificate's name (a subject, an issuer, a subject alternative name) as read from the
/// store, with every character that [`must_escape`] written as `\xHH` per UTF-8 byte, the
/// notation of `openssl x509 -nameopt compat`. Names the store made itself have none left
/// to escape (it escaped them when it read the certificate); a damaged or tampered store's
/// may.
///
/// ```
/// assert_eq!(tofu_core::text::escape_name("/CN=evil\u{202e}moc"), r"/CN=evil\xE2\x80\xAEmoc");
/// assert_eq!(tofu_core::text::escape_name("/CN=prime-pri"), "/CN=prime-pri");
/// ```
pub fn escape_name(name: &str) -> Cow<'_, str> {
    if !name.chars().any(must_escape) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(escape_name_bytes(name.as_bytes()))
}

/// Bytes of a name as text: what [`must_escape`], and bytes that are not UTF-8, as `\xHH`.
pub fn escape_name_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if must_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// The marker that ends a cut text: `… [truncated: 79,744 more characters]`. In a subject or
/// issuer `…` can only be this marker: the names' own non-ASCII bytes are written `\xHH`.
fn marker(more: usize, what: &str) -> String {
    format!("… [truncated: {} more {what}]", thousands(more))
}

/// `79744` as `79,744`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `text` cut to at most `max` characters, marker included, when it is longer: the first
/// characters, then `… [truncated: N more characters]`, N counting what was cut. The cut
/// falls between whole escapes (`\xHH`, with the other bytes of the same UTF-8 character,
/// and `\/`, `\+`), never inside one, so what is kept is never a different name that happens
/// to be a prefix of an escape; and the marker shows that it is not the whole name.
pub(crate) fn bounded(text: String, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text;
    }
    // The marker's own length depends on N; the longest possible N sizes it.
    let room = max.saturating_sub(marker(total, "characters").chars().count());
    let mut kept_chars = 0;
    let mut cut = 0;
    for token in tokens(&text) {
        let len = token.chars().count();
        if kept_chars + len > room {
            break;
        }
        kept_chars += len;
        cut += token.len();
    }
    let mut out = text[..cut].to_owned();
    out.push_str(&marker(total - kept_chars, "characters"));
    out
}

/// `names` cut to at most `max` entries when there are more: the first `max - 1`, then one
/// that says how many more there were.
pub(crate) fn bounded_list(mut names: Vec<String>, max: usize) -> Vec<String> {
    if names.len() > max {
        let keep = max.saturating_sub(1);
        let more = names.len() - keep;
        names.truncate(keep);
        names.push(marker(more, "names"));
    }
    names
}

/// The text split into what must not be cut apart: one escape (`\xHH` and the escapes of the
/// rest of its UTF-8 character; `\/` or `\+`), or one character.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let hex_escape = |at: usize| -> Option<u8> {
        let s = text.get(at..at + 4)?;
        let hex = s.strip_prefix("\\x")?;
        u8::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let start = at;
        if let Some(lead) = hex_escape(at) {
            at += 4;
            let continuation = match lead {
                0xC0..=0xDF => 1,
                0xE0..=0xEF => 2,
                0xF0..=0xF7 => 3,
                _ => 0,
            };
            for _ in 0..continuation {
                match hex_escape(at) {
                    Some(0x80..=0xBF) => at += 4,
                    _ => break,
                }
            }
        } else if bytes[at] == b'\\' && matches!(bytes.get(at + 1), Some(b'/' | b'+')) {
            at += 2;
        } else {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
        Some(&text[start..at])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code point of the general categories Cc, Cf, Zl and Zp is escaped, and nothing
    /// else: checked against the category table over the whole code space, and against the
    /// characters that spoof names, listed by hand.
    #[test]
    fn exactly_the_control_format_and_separator_characters_must_be_escaped() {
        let gc = CodePointMapData::<GeneralCategory>::new();
        let mut escaped = 0;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let expected = matches!(
                gc.get(c),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            );
            assert_eq!(must_escape(c), expected, "U+{:04X}", c as u32);
            assert_eq!(c.is_control(), gc.get(c) == GeneralCategory::Control);
            escaped += usize::from(expected);
        }
        // 65 Cc, 2 separators, and (Unicode 15-16) some 170 Cf.
        assert!((220..300).contains(&escaped), "{escaped}");
        for c in [
            '\u{0}',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{9b}',
            '\u{ad}',
            '\u{61c}',
            '\u{180e}',
            '\u{200b}',
            '\u{200c}',
            '\u{200d}',
            '\u{200e}',
            '\u{200f}',
            '\u{2028}',
            '\u{2029}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2060}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{feff}',
            '\u{fff9}',
            '\u{e0001}',
            '\u{e007f}',
        ] {
            assert!(must_escape(c), "U+{:04X}", c as u32);
        }
        for c in [
            'a',
            ' ',
            '~',
            '\u{a0}',
            'é',
            '…',
            '\u{3000}',
            '中',
            '\u{1f600}',
        ] {
            assert!(!must_escape(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn escaped_text_shows_each_hidden_character_as_an_escape() {
        assert_eq!(escape_text("a\u{202e}b\u{2028}c"), r"a\u{202e}b\u{2028}c");
        assert_eq!(escape_message("one\ntwo\u{200b}"), "one\ntwo\\u{200b}");
        assert_eq!(
            escape_name("DNS:x\u{200b}y\u{feff}"),
            r"DNS:x\xE2\x80\x8By\xEF\xBB\xBF"
        );
        assert!(matches!(escape_text("plain é"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_long_name_is_cut_between_escapes_and_says_how_much_was_cut() {
        let name = format!("/CN={}", r"\xE2\x80\xAE".repeat(1000));
        let cut = bounded(name.clone(), 100);
        assert!(cut.chars().count() <= 100, "{cut}");
        let (kept, rest) = cut.split_once('…').unwrap();
        assert!(name.starts_with(kept));
        // Whole characters' escapes only: 12 characters each after `/CN=`.
        assert_eq!((kept.len() - 4) % 12, 0, "{kept}");
        let more = name.chars().count() - kept.chars().count();
        assert_eq!(
            rest,
            format!(" [truncated: {} more characters]", thousands(more))
        );

        let name = format!("/CN=a{}", r"\/".repeat(100));
        let cut = bounded(name, 60);
        let kept = cut.split_once('…').unwrap().0;
        assert!(kept.ends_with(r"\/"), "{kept}");

        assert_eq!(bounded("/CN=short".into(), 100), "/CN=short");
        let exact = "x".repeat(100);
        assert_eq!(bounded(exact.clone(), 100), exact);
    }

    #[test]
    fn a_long_list_keeps_its_first_names_and_says_how_many_more() {
        let names: Vec<String> = (0..100).map(|i| format!("DNS:n{i}")).collect();
        let kept = bounded_list(names, 64);
        assert_eq!(kept.len(), 64);
        assert_eq!(kept[62], "DNS:n62");
        assert_eq!(kept[63], "… [truncated: 37 more names]");
        assert_eq!(thousands(79_744), "79,744");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }
}
