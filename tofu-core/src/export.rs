//! The export format: every pin of a store as TOML, for backups and for seeding a fleet.
//!
//! ```toml
//! version = 1
//!
//! # /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri
//! [[pin]]
//! endpoint = "10.1.1.1:8082"
//! state = "active"                  # or "next" (staged for a planned rotation)
//! fingerprint = "SHA256:…"          # optional; checked against the certificate
//! label = "HA secondary"            # optional
//! source = "operator"               # optional: first-use, operator, imported, accepted
//! match = "key"                     # optional: "certificate" (the default) or "key"
//! pinned_at = "2026-11-21T19:53:52Z"  # optional, like first_seen and last_seen
//! times_seen = 3                    # optional, 0 when absent
//! certificate = """
//! -----BEGIN CERTIFICATE-----
//! …
//! -----END CERTIFICATE-----
//! """
//! ```
//!
//! [`write_export`] writes everything the store records about a pin, so that exporting and
//! importing gives back the same pins with the same history. Quarantined certificates are not
//! exported: they are evidence of a refused handshake waiting for an operator, not trust.
//!
//! [`parse_export`] is strict, because an import is a change of trust: an unknown version, an
//! unknown field, a malformed value or a repeated (endpoint, certificate) pair is an error
//! that names the entry, its line and the field, and nothing is imported.

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::ops::ControlFlow;

use rustls::pki_types::CertificateDer;

use crate::text::MAX_LABEL_CHARS;
use crate::{
    cert::{read_certificates, to_pem},
    pin::{Pin, PinMatch, PinSource, PinState},
    store::{ImportReport, NewPin},
    timestamp::Timestamp,
    Endpoint, Fingerprint, Store,
};

mod jsonl;

/// The version of the export format that this build writes and reads.
pub const EXPORT_VERSION: i64 = 1;

/// The largest TOML export file read (256 MiB, about 320 000 pins), a bound on the memory a
/// hostile or mistaken file can take: TOML is read whole. The JSON-lines form
/// ([`ExportFormat::JsonLines`]) is streamed, at any size.
pub const MAX_EXPORT_LEN: u64 = 256 * 1024 * 1024;

/// Entries parsed together, on the machine's cores, before the next ones are taken.
const PARSE_BLOCK: usize = 4096;

/// The fields a `[[pin]]` entry may have.
const FIELDS: &[&str] = &[
    "endpoint",
    "certificate",
    "state",
    "fingerprint",
    "label",
    "source",
    "match",
    "pinned_at",
    "first_seen",
    "last_seen",
    "times_seen",
];

/// Why an export file cannot be imported. Nothing is imported when any entry is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read the export file: {0}")]
    Io(#[from] io::Error),

    /// The file is TOML and larger than [`MAX_EXPORT_LEN`].
    #[error(
        "the export file is TOML and larger than {} MiB, the most an import reads of TOML \
         (which is read whole); export the store as JSON lines instead (`tofu-certs export \
         --format jsonl`), which import streams at any size",
        max / (1024 * 1024)
    )]
    TooLarge {
        /// The limit, in bytes.
        max: u64,
    },

    /// The file is not UTF-8 text.
    #[error(
        "the export file is not UTF-8 text (invalid byte at offset {offset}); give the file \
         `tofu-certs export` wrote"
    )]
    NotText {
        /// Where the first invalid byte is.
        offset: usize,
    },

    /// The file is not valid TOML.
    #[error("the export file is not valid TOML: {message}")]
    Syntax {
        /// The TOML parser's message, with the line and column.
        message: String,
    },

    /// The file has no `version` key.
    #[error(
        "the export file has no `version`; an export file starts with `version = \
         {EXPORT_VERSION}`"
    )]
    MissingVersion,

    /// The file is of a version this build does not read.
    #[error(
        "the export file has version {found}, but this tofu-certs reads version \
         {EXPORT_VERSION} only. Import it with the tofu-certs that wrote it, or a newer one"
    )]
    UnsupportedVersion {
        /// The version found, as written.
        found: String,
    },

    /// The file has a top-level key that is not part of the format.
    #[error(
        "the export file has an unknown top-level key `{key}`; version {EXPORT_VERSION} has \
         only `version` and `[[pin]]` entries"
    )]
    UnknownKey {
        /// The key.
        key: String,
    },

    /// One entry is wrong.
    #[error("pin entry {entry} (line {line}), field `{field}`: {reason}")]
    Entry {
        /// The entry's position in the file, from 1.
        entry: usize,
        /// The line of the entry's `[[pin]]` header (or inline table), from 1.
        line: usize,
        /// The field at fault.
        field: String,
        /// What is wrong, and what is expected.
        reason: String,
    },

    /// The store refused the import (a conflict, a certificate it cannot pin) or could not
    /// be written; nothing was imported.
    #[error(transparent)]
    Store(#[from] crate::Error),

    /// Two entries pin the same certificate for the same endpoint.
    #[error(
        "pin entry {entry} (line {line}) repeats entry {first_entry} (line {first_line}): both \
         pin {fingerprint} for {endpoint}; remove one of them"
    )]
    Duplicate {
        /// The later entry, from 1.
        entry: usize,
        /// Its line.
        line: usize,
        /// The earlier entry.
        first_entry: usize,
        /// Its line.
        first_line: usize,
        /// The endpoint.
        endpoint: Endpoint,
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
}

/// The two forms of an export file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportFormat {
    /// TOML (`version = 1`, then `[[pin]]` entries): for reading and editing by hand. Read
    /// whole, so at most [`MAX_EXPORT_LEN`] bytes.
    #[default]
    Toml,
    /// JSON lines (`{"version":1}`, then one JSON object per pin, with the fields of a
    /// `[[pin]]` entry): streamed both ways, at any size, in bounded memory. The pins come in
    /// the store's order (endpoints in the byte order of their text, each endpoint's pins
    /// together), and an import requires that order.
    JsonLines,
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
}

/// Writes every pin of `store` to `out` in the export format, reading the pins one at a time
/// from one consistent snapshot of the store. Returns how many pins were written.
///
/// ```
/// use tofu_core::export::{parse_export, read_export, write_export};
/// use tofu_core::{Endpoint, Store};
///
/// # let dir = tempfile::tempdir()?;
/// # let der = rcgen::generate_simple_self_signed(vec!["a.example".into()])?.cert.der().clone();
/// let primary = Store::open(dir.path().join("primary"))?;
/// let endpoint: Endpoint = "10.1.1.1:8082".parse()?;
/// primary.pin_first_use(&endpoint, &der)?;
///
/// let mut file = Vec::new();
/// assert_eq!(write_export(&primary, &mut file)?, 1);
///
/// // Seed another store from the file.
/// let pins = read_export(file.as_slice())?;
/// assert_eq!(pins, parse_export(std::str::from_utf8(&file)?)?);
/// let secondary = Store::open(dir.path().join("secondary"))?;
/// secondary.import(&pins, false)?;
/// assert!(secondary.endpoint(&endpoint)?.is_pinned());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// When the store cannot be read or `out` cannot be written; what was written by then is an
/// incomplete file.
pub fn write_export(store: &Store, mut out: impl Write) -> Result<usize, ExportError> {
    out.write_all(
        format!(
            "# tofu-certs export: pinned TLS certificates, keyed by host:port.\n\
             # Restore or seed a store with `tofu-certs import FILE`.\n\
             version = {EXPORT_VERSION}\n"
        )
        .as_bytes(),
    )?;
    let count = write_pins(store, &mut out, |pin, line| {
        line.push_str(&export_entry(pin))
    })?;
    let mut failure = None;
    // Awaited pins (from a fingerprint, no certificate yet) are not exported: an entry is a
    // certificate, and import reads certificates. Each is named in a comment, with the
    // command that makes it again, so that the file says what it leaves out.
    store.for_each_awaited(|a| {
        let key = match a.matches {
            crate::pin::PinMatch::Certificate => "",
            crate::pin::PinMatch::Key => " --match key",
        };
        let next = match a.state {
            crate::pin::PinState::Active => "",
            crate::pin::PinState::Next => " --next",
        };
        let line = format!(
            "\n# Not exported: {} awaits {} (a pin from a fingerprint, no certificate yet).\n\
             # Make it again with: tofu-certs addcert host {} --fingerprint {}{key}{next}\n",
            a.endpoint, a.fingerprint, a.endpoint, a.fingerprint
        );
        match out.write_all(line.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    out.flush()?;
    Ok(count)
}

/// Writes every pin to `out`, each as `entry` puts it in a line buffer, stopping at the
/// first write that fails; the number written. Shared by both forms of the export.
pub(crate) fn write_pins(
    store: &Store,
    out: &mut impl Write,
    mut entry: impl FnMut(&Pin, &mut String),
) -> Result<usize, ExportError> {
    let mut count = 0;
    let mut failure = None;
    let mut line = String::with_capacity(2048);
    store.for_each_pin(|pin| {
        line.clear();
        entry(&pin, &mut line);
        match out.write_all(line.as_bytes()) {
            Ok(()) => {
                count += 1;
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(count),
    }
}

/// [`write_export`], in the form `format`.
///
/// ```
/// use tofu_core::export::{import_export, write_export_as, ExportFormat};
/// use tofu_core::{Endpoint, Store};
///
/// # let dir = tempfile::tempdir()?;
/// # let der = rcgen::generate_simple_self_signed(vec!["a.example".into()])?.cert.der().clone();
/// let primary = Store::open(dir.path().join("primary"))?;
/// let endpoint: Endpoint = "10.1.1.1:8082".parse()?;
/// primary.pin_first_use(&endpoint, &der)?;
///
/// let mut file = Vec::new();
/// assert_eq!(write_export_as(&primary, &mut file, ExportFormat::JsonLines)?, 1);
/// assert!(file.starts_with(b"{\"version\":1}\n{\"endpoint\":\"10.1.1.1:8082\""));
///
/// // The form is recognised by its first bytes.
/// let secondary = Store::open(dir.path().join("secondary"))?;
/// assert_eq!(import_export(&secondary, file.as_slice(), false)?.added, 1);
/// assert!(secondary.endpoint(&endpoint)?.is_pinned());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// Those of [`write_export`].
pub fn write_export_as(
    store: &Store,
    out: impl Write,
    format: ExportFormat,
) -> Result<usize, ExportError> {
    match format {
        ExportFormat::Toml => write_export(store, out),
        ExportFormat::JsonLines => jsonl::write(store, out),
    }
}

/// Imports an export file into `store`, all or nothing, in whichever form it is: JSON lines
/// when its first character other than white space is `{`, else TOML. A TOML file is read
/// whole ([`read_export`], at most [`MAX_EXPORT_LEN`] bytes) and given to [`Store::import`];
/// a JSON-lines file is streamed, a block at a time, into one [`Store::import_stream`]
/// transaction, in bounded memory whatever its size. Either way, a wrong entry anywhere
/// leaves the store as it was and is reported with its number, line and field.
///
/// # Errors
/// Those of [`read_export`] and [`parse_export`] for either form, [`ImportError::Entry`]
/// naming the endpoint for a JSON-lines file whose endpoints are out of order, and
/// [`ImportError::Store`] with what the store refused ([`crate::Error::ImportConflict`]) or
/// why it could not be written.
pub fn import_export(
    store: &Store,
    mut reader: impl BufRead + Send,
    replace: bool,
) -> Result<ImportReport, ImportError> {
    import_capped(store, &mut reader, replace, MAX_EXPORT_LEN)
}

fn import_capped(
    store: &Store,
    mut input: impl BufRead + Send,
    replace: bool,
    max: u64,
) -> Result<ImportReport, ImportError> {
    match detect_format(&mut input)? {
        ExportFormat::JsonLines => jsonl::import(store, input, replace),
        ExportFormat::Toml => {
            let pins = read_export_capped(input, max)?;
            Ok(store.import(&pins, replace)?)
        }
    }
}

/// The form of the export file `input` starts: [`ExportFormat::JsonLines`] when the first
/// character other than white space that its first read gives is `{` (no TOML document starts
/// so), else [`ExportFormat::Toml`]. Consumes nothing.
///
/// ```
/// use tofu_core::export::{detect_format, ExportFormat};
/// assert_eq!(detect_format(&mut &b"\n{\"version\":1}\n"[..])?, ExportFormat::JsonLines);
/// assert_eq!(detect_format(&mut &b"version = 1\n"[..])?, ExportFormat::Toml);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// When `input` cannot be read.
pub fn detect_format(input: &mut impl BufRead) -> io::Result<ExportFormat> {
    Ok(if jsonl::looks_like(input)? {
        ExportFormat::JsonLines
    } else {
        ExportFormat::Toml
    })
}

/// One `[[pin]]` entry, preceded by a blank line and a comment with the subject.
fn export_entry(pin: &Pin) -> String {
    let mut s = String::with_capacity(pin.der.len() * 2 + 512);
    s.push('\n');
    s.push_str(&format!("# {}\n", comment_text(&pin.details.subject)));
    s.push_str("[[pin]]\n");
    s.push_str(&format!(
        "endpoint = {}\n",
        toml_string(&pin.endpoint.to_string())
    ));
    s.push_str(&format!("state = \"{}\"\n", pin.state));
    s.push_str(&format!("fingerprint = \"{}\"\n", pin.details.fingerprint));
    if let Some(label) = &pin.label {
        s.push_str(&format!("label = {}\n", toml_string(label)));
    }
    s.push_str(&format!("source = \"{}\"\n", pin.source));
    // Written only for key pins, so that a store without any reads back as it always did.
    if pin.matches == PinMatch::Key {
        s.push_str(&format!("match = \"{}\"\n", pin.matches));
    }
    s.push_str(&format!("pinned_at = \"{}\"\n", pin.pinned_at));
    if let Some(t) = pin.first_seen {
        s.push_str(&format!("first_seen = \"{t}\"\n"));
    }
    if let Some(t) = pin.last_seen {
        s.push_str(&format!("last_seen = \"{t}\"\n"));
    }
    s.push_str(&format!("times_seen = {}\n", pin.times_seen));
    // PEM is base64 and dashes: nothing in it needs escaping in a multi-line string, and the
    // newline right after the opening quotes is not part of the value.
    s.push_str(&format!(
        "certificate = \"\"\"\n{}\"\"\"\n",
        to_pem(&pin.der)
    ));
    s
}

/// `text` for a one-line TOML comment. Subjects are printed as `openssl -nameopt compat`
/// does, but the store's text is not trusted to be that: a newline would end the comment and
/// let a subject write `[[pin]]` lines into a backup, and TOML forbids control characters in
/// comments; a bidirectional override would reorder what a person reading the backup sees.
/// So what [`must_escape`](crate::text::must_escape) is written escaped (`\n`, `\u{1b}`, `\u{202e}`).
fn comment_text(text: &str) -> String {
    crate::text::escape_text(text).into_owned()
}

/// A TOML basic string (`"…"`): `"` and `\\` escaped, and what
/// [`must_escape`](crate::text::must_escape) (controls, which TOML forbids raw, and the format and
/// separator characters, which would reorder the file for a person reading it) written as
/// `\\uXXXX` or `\\UXXXXXXXX`, which TOML reads back exactly.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if crate::text::must_escape(c) && u32::from(c) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)))
            }
            c if crate::text::must_escape(c) => out.push_str(&format!("\\U{:08X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads an export file from `reader`, at most [`MAX_EXPORT_LEN`] bytes, and parses it with
/// [`parse_export`].
///
/// ```
/// use tofu_core::export::{read_export, ImportError};
///
/// let err = read_export(&b"version = 2\n"[..]).unwrap_err();
/// assert!(matches!(err, ImportError::UnsupportedVersion { .. }));
/// assert!(matches!(read_export(&b"\xff"[..]), Err(ImportError::NotText { offset: 0 })));
/// ```
///
/// # Errors
/// [`ImportError::Io`], [`ImportError::TooLarge`], [`ImportError::NotText`], and those of
/// [`parse_export`].
pub fn read_export(reader: impl Read) -> Result<Vec<NewPin>, ImportError> {
    read_export_capped(reader, MAX_EXPORT_LEN)
}

fn read_export_capped(reader: impl Read, max: u64) -> Result<Vec<NewPin>, ImportError> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(ImportError::TooLarge { max });
    }
    let text = String::from_utf8(bytes).map_err(|e| ImportError::NotText {
        offset: e.utf8_error().valid_up_to(),
    })?;
    parse_export(&text)
}

/// Parses the text of an export file into the pins it holds, in file order, ready for
/// [`Store::import`].
///
/// ```
/// let pins = tofu_core::export::parse_export("version = 1\n")?;
/// assert!(pins.is_empty());
/// assert!(tofu_core::export::parse_export("version = 1\n[[pin]]\nendpoint = \"a:1\"\n").is_err());
/// # Ok::<(), tofu_core::export::ImportError>(())
/// ```
///
/// # Errors
/// When the text is over [`MAX_EXPORT_LEN`], is not TOML, has no or another `version`, has
/// unknown keys or fields, or an entry has a malformed endpoint, certificate, state,
/// fingerprint (or one that does not match its certificate), source, time or count, or
/// repeats an earlier entry's endpoint and certificate.
pub fn parse_export(text: &str) -> Result<Vec<NewPin>, ImportError> {
    if text.len() as u64 > MAX_EXPORT_LEN {
        return Err(ImportError::TooLarge {
            max: MAX_EXPORT_LEN,
        });
    }
    // One pass when the document is what this version writes; else the two passes below,
    // which check the version before anything version-specific and say what is wrong.
    let entries = match toml::from_str::<Document>(text) {
        Ok(doc) if doc.version_is_current() && doc.unknown.is_none() => doc.pin,
        _ => entries_checked(text)?,
    };
    pins_of(text, entries)
}

/// A version 1 export, read in one pass: its version, its entries with their positions, and
/// the first key it should not have.
struct Document {
    version: Option<toml::Value>,
    pin: Vec<toml::Spanned<toml::Table>>,
    unknown: Option<String>,
}

impl Document {
    fn version_is_current(&self) -> bool {
        matches!(self.version, Some(toml::Value::Integer(EXPORT_VERSION)))
    }
}

impl<'de> serde::Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Document;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an export document")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Document, A::Error> {
                let mut doc = Document {
                    version: None,
                    pin: Vec::new(),
                    unknown: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "version" => doc.version = Some(map.next_value()?),
                        "pin" => doc.pin = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            doc.unknown.get_or_insert(key);
                        }
                    }
                }
                Ok(doc)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The entries of `text`, read in two passes: the whole document first, for its version and
/// keys, then the entries with their positions, for error messages.
fn entries_checked(text: &str) -> Result<Vec<toml::Spanned<toml::Table>>, ImportError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, e))?;
    match doc.get("version") {
        None => return Err(ImportError::MissingVersion),
        Some(toml::Value::Integer(EXPORT_VERSION)) => {}
        Some(other) => {
            return Err(ImportError::UnsupportedVersion {
                found: other.to_string(),
            })
        }
    }
    if let Some(key) = doc.keys().find(|k| *k != "version" && *k != "pin") {
        return Err(ImportError::UnknownKey {
            key: key.chars().take(80).collect(),
        });
    }
    drop(doc);

    // Then the entries, with their positions, for error messages.
    #[derive(serde::Deserialize)]
    struct Entries {
        #[serde(default)]
        pin: Vec<toml::Spanned<toml::Table>>,
    }
    let entries: Entries = toml::from_str(text).map_err(|e| syntax_error(text, e))?;
    Ok(entries.pin)
}

fn pins_of(
    text: &str,
    entries: Vec<toml::Spanned<toml::Table>>,
) -> Result<Vec<NewPin>, ImportError> {
    let mut pins = Vec::with_capacity(entries.len());
    let mut seen: HashMap<(Endpoint, Fingerprint), (usize, usize)> = HashMap::new();
    let mut lines = LineCounter::new(text);
    // Block by block, so that an entry's table is freed once it is parsed, as in a plain loop.
    let mut entries = entries.into_iter().enumerate().peekable();
    while entries.peek().is_some() {
        let block: Vec<(usize, usize, toml::Table)> = entries
            .by_ref()
            .take(PARSE_BLOCK)
            .map(|(i, spanned)| {
                let line = lines.line_of(spanned.span().start);
                (i + 1, line, spanned.into_inner())
            })
            .collect();
        let parsed = crate::parallel::map_in_order(&block, |(entry, line, table)| {
            parse_entry(table, *entry, *line)
        });
        for (&(entry, line, _), parsed) in block.iter().zip(parsed) {
            let (pin, fingerprint) = parsed?;
            if let Some(&(first_entry, first_line)) = seen.get(&(pin.endpoint.clone(), fingerprint))
            {
                return Err(ImportError::Duplicate {
                    entry,
                    line,
                    first_entry,
                    first_line,
                    endpoint: pin.endpoint,
                    fingerprint,
                });
            }
            seen.insert((pin.endpoint.clone(), fingerprint), (entry, line));
            pins.push(pin);
        }
    }
    Ok(pins)
}

fn syntax_error(text: &str, e: toml::de::Error) -> ImportError {
    let rendered = e.to_string();
    let rendered = rendered.trim_end();
    // toml quotes the offending line whole and raw: right for a typo in a hand-written file,
    // but megabytes for a long line, and terminal escape sequences for a hostile file.
    if rendered.len() <= 1000 && !rendered.chars().any(|c| c != '\n' && unprintable(c)) {
        return ImportError::Syntax {
            message: rendered.to_owned(),
        };
    }
    let position = e.span().map_or_else(String::new, |span| {
        let at = span.start.min(text.len());
        let line_start = text.as_bytes()[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = text
            .get(line_start..at)
            .map_or(at - line_start, |s| s.chars().count());
        format!(
            " at line {}, column {}",
            LineCounter::new(text).line_of(at),
            column + 1
        )
    });
    let full = e.message().trim_end();
    let mut message = String::new();
    for c in full.chars().take(200) {
        if unprintable(c) {
            message.extend(c.escape_unicode());
        } else {
            message.push(c);
        }
    }
    if full.chars().nth(200).is_some() {
        message.push('…');
    }
    ImportError::Syntax {
        message: format!("TOML parse error{position}: {message}"),
    }
}

/// Characters that must not reach a terminal raw.
fn unprintable(c: char) -> bool {
    crate::text::must_escape(c)
}

/// The lines (from 1) of byte offsets. Entries come in file order, so each newline is counted
/// once; counting from the start for every entry made a large import quadratic.
struct LineCounter<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of byte offset `at`; the span of a `[[pin]]` table starts at its header.
    fn line_of(&mut self, at: usize) -> usize {
        let at = at.min(self.text.len());
        if at < self.offset {
            (self.offset, self.line) = (0, 1);
        }
        self.line += self.text[self.offset..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = at;
        self.line
    }
}

fn parse_entry(
    table: &toml::Table,
    entry: usize,
    line: usize,
) -> Result<(NewPin, Fingerprint), ImportError> {
    let err = entry_error(entry, line);
    if let Some(key) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(
            key,
            format!("unknown field; a pin has the fields {}", FIELDS.join(", ")),
        ));
    }
    let string = |field: &str| -> Result<Option<&str>, ImportError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(err(
                field,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    };
    let time = |field: &str| -> Result<Option<std::borrow::Cow<'_, str>>, ImportError> {
        match table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.as_str().into())),
            // A TOML datetime written without quotes: take it as RFC 3339 text.
            Some(toml::Value::Datetime(d)) => Ok(Some(d.to_string().into())),
            Some(other) => Err(err(
                field,
                format!("expected an RFC 3339 time, found {}", other.type_str()),
            )),
        }
    };
    let times_seen = match table.get("times_seen") {
        None => 0,
        Some(toml::Value::Integer(n)) => {
            u64::try_from(*n).map_err(|_| err("times_seen", format!("{n} is negative")))?
        }
        Some(other) => {
            return Err(err(
                "times_seen",
                format!("expected a whole number, found {}", other.type_str()),
            ))
        }
    };
    let raw = RawEntry {
        endpoint: string("endpoint")?,
        certificate: string("certificate")?,
        state: string("state")?,
        fingerprint: string("fingerprint")?,
        label: string("label")?,
        source: string("source")?,
        matches: string("match")?,
        pinned_at: time("pinned_at")?,
        first_seen: time("first_seen")?,
        last_seen: time("last_seen")?,
        times_seen,
    };
    raw.check(&err)
}

/// The maker of [`ImportError::Entry`] for one entry.
fn entry_error(entry: usize, line: usize) -> impl Fn(&str, String) -> ImportError {
    move |field: &str, reason: String| ImportError::Entry {
        entry,
        line,
        field: field.chars().take(80).collect(),
        reason,
    }
}

/// One entry's fields, of the right types, in either form of the file; [`RawEntry::check`]
/// holds every rule about their values, once.
struct RawEntry<'a> {
    endpoint: Option<&'a str>,
    certificate: Option<&'a str>,
    state: Option<&'a str>,
    fingerprint: Option<&'a str>,
    label: Option<&'a str>,
    source: Option<&'a str>,
    matches: Option<&'a str>,
    pinned_at: Option<std::borrow::Cow<'a, str>>,
    first_seen: Option<std::borrow::Cow<'a, str>>,
    last_seen: Option<std::borrow::Cow<'a, str>>,
    times_seen: u64,
}

impl RawEntry<'_> {
    fn check(
        self,
        err: &dyn Fn(&str, String) -> ImportError,
    ) -> Result<(NewPin, Fingerprint), ImportError> {
        let required = |field: &str, value: Option<&str>| -> Result<String, ImportError> {
            value
                .map(str::to_owned)
                .ok_or_else(|| err(field, "missing; every pin needs it".into()))
        };
        let time = |field: &str, value: Option<&str>| -> Result<Option<Timestamp>, ImportError> {
            value
                .map(|text| text.parse().map_err(|e| err(field, format!("{e}"))))
                .transpose()
        };

        let endpoint: Endpoint = required("endpoint", self.endpoint)?
            .parse()
            .map_err(|e| err("endpoint", format!("{e}")))?;

        let certs = read_certificates(required("certificate", self.certificate)?.as_bytes())
            .map_err(|e| err("certificate", format!("{e}")))?;
        let der: CertificateDer<'static> = match <[_; 1]>::try_from(certs) {
            Ok([der]) => der,
            Err(certs) => {
                return Err(err(
                    "certificate",
                    format!(
                        "it holds {} certificates; a pin is one leaf certificate",
                        certs.len()
                    ),
                ))
            }
        };
        // `read_certificates` checked that it parses; the store works out the details once,
        // when it imports. Here only the fingerprint is needed.
        let fingerprint = Fingerprint::of(&der);

        if let Some(text) = self.fingerprint {
            let claimed: Fingerprint = text
                .parse()
                .map_err(|e| err("fingerprint", format!("{e}")))?;
            if claimed != fingerprint {
                return Err(err(
                    "fingerprint",
                    format!(
                        "it is {claimed}, but the certificate's fingerprint is {}; the entry \
                         was altered or damaged",
                        fingerprint
                    ),
                ));
            }
        }

        let state = match self.state {
            None => PinState::Active,
            Some(s) => s.parse::<PinState>().map_err(|e| err("state", e))?,
        };
        let source = match self.source {
            None => PinSource::Imported,
            Some(s) => s.parse::<PinSource>().map_err(|e| err("source", e))?,
        };
        let matches = match self.matches {
            None => PinMatch::Certificate,
            Some(s) => s.parse::<PinMatch>().map_err(|e| err("match", e))?,
        };
        let label = match self.label {
            None => None,
            Some(s) if s.chars().any(char::is_control) => {
                return Err(err(
                    "label",
                    "it contains a control character (such as a newline)".into(),
                ))
            }
            Some(s) if s.chars().count() > MAX_LABEL_CHARS => {
                return Err(err(
                    "label",
                    format!("it is longer than {MAX_LABEL_CHARS} characters"),
                ))
            }
            Some(s) => Some(s.to_owned()),
        };

        let pin = NewPin {
            endpoint,
            der,
            state,
            source,
            label,
            pinned_at: time("pinned_at", self.pinned_at.as_deref())?,
            first_seen: time("first_seen", self.first_seen.as_deref())?,
            last_seen: time("last_seen", self.last_seen.as_deref())?,
            times_seen: self.times_seen,
            matches,
        };
        Ok((pin, fingerprint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert(cn: &str) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![cn.to_string()]).expect("valid SAN");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, "Cisco Systems");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        let key = KeyPair::generate().expect("key generation");
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    fn entry(endpoint: &str, der: &CertificateDer<'_>, extra: &str) -> String {
        format!(
            "\n[[pin]]\nendpoint = \"{endpoint}\"\n{extra}certificate = \"\"\"\n{}\"\"\"\n",
            to_pem(der)
        )
    }

    fn entry_error(text: &str) -> (usize, usize, String, String) {
        match parse_export(text) {
            Err(ImportError::Entry {
                entry,
                line,
                field,
                reason,
            }) => (entry, line, field, reason),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn in_a_large_file_the_first_bad_entry_is_the_one_reported_whatever_kind() {
        // Enough entries that they are parsed on several threads and in several blocks.
        let der = cert("many");
        let n = PARSE_BLOCK + 1000;
        let file = |bad: Option<usize>, repeat: Option<usize>| {
            let mut text = String::from("version = 1\n");
            for i in 1..=n {
                let endpoint = if Some(i) == repeat {
                    "h1:1".to_owned()
                } else {
                    format!("h{i}:1")
                };
                let extra = if Some(i) == bad {
                    "state = \"later\"\n"
                } else {
                    ""
                };
                text.push_str(&entry(&endpoint, &der, extra));
            }
            text
        };
        let (entry_no, _, field, _) = entry_error(&file(Some(300), Some(PARSE_BLOCK + 500)));
        assert_eq!((entry_no, field.as_str()), (300, "state"));
        let (entry_no, _, field, _) = entry_error(&file(Some(PARSE_BLOCK + 10), None));
        assert_eq!((entry_no, field.as_str()), (PARSE_BLOCK + 10, "state"));
        match parse_export(&file(Some(PARSE_BLOCK + 500), Some(700))) {
            Err(ImportError::Duplicate {
                entry, first_entry, ..
            }) => assert_eq!((entry, first_entry), (700, 1)),
            other => panic!("expected the duplicate first, got {other:?}"),
        }
        assert_eq!(parse_export(&file(None, None)).unwrap().len(), n);
    }

    /// A JSON-lines line for `endpoint` with `extra` fields.
    fn json_line(endpoint: &str, der: &CertificateDer<'_>, extra: &str) -> String {
        format!(
            "{{\"endpoint\":\"{endpoint}\",{extra}\"certificate\":{}}}\n",
            serde_json::to_string(&to_pem(der)).unwrap()
        )
    }

    /// Issue 15: a file over the TOML cap imports as JSON lines. The cap is lowered so that
    /// the test stays small: the same pins are refused as TOML, with the way out in the
    /// message, and import as JSON lines, which has no cap.
    #[test]
    fn a_file_over_the_toml_cap_imports_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let der = cert("big");
        let mut toml_text = String::from("version = 1\n");
        let mut jsonl_text = String::from("{\"version\":1}\n");
        for i in 0..2000 {
            toml_text.push_str(&entry(&format!("h{i:04}.example:1"), &der, ""));
            jsonl_text.push_str(&json_line(&format!("h{i:04}.example:1"), &der, ""));
        }
        let cap = 64 * 1024;
        assert!(toml_text.len() > cap && jsonl_text.len() > cap);
        let e = import_capped(&store, toml_text.as_bytes(), false, cap as u64).unwrap_err();
        assert!(matches!(e, ImportError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("--format jsonl"), "{e}");
        let report = import_capped(&store, jsonl_text.as_bytes(), false, cap as u64).unwrap();
        assert_eq!(report.added, 2000);
        // Blank lines and CRLF line endings are fine.
        let other = Store::open(dir.path().join("t")).unwrap();
        let text = format!("\n{}", jsonl_text.replace('\n', "\r\n\n"));
        assert_eq!(
            import_export(&other, text.as_bytes(), false).unwrap().added,
            2000
        );
    }

    #[test]
    fn json_lines_errors_name_the_entry_its_line_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let der = cert("a");
        let run = |lines: &[String]| {
            let text = format!("{{\"version\":1}}\n{}", lines.concat());
            import_export(&store, text.as_bytes(), false).unwrap_err()
        };
        let good = json_line("a.example:1", &der, "");
        let cases = [
            (
                json_line("b.example:1", &der, "\"times_seen\":-1,"),
                "times_seen",
            ),
            (
                json_line("b.example:1", &der, "\"times_seen\":\"3\","),
                "times_seen",
            ),
            (json_line("b.example:1", &der, "\"label\":7,"), "label"),
            (
                json_line("b.example:1", &der, "\"label\":\"a\\nb\","),
                "label",
            ),
            (
                json_line("b.example:1", &der, "\"pinned_at\":\"yesterday\","),
                "pinned_at",
            ),
            (
                json_line("b.example:1", &der, "\"match\":\"subject\","),
                "match",
            ),
            (json_line("https://b.example", &der, ""), "endpoint"),
            ("{\"endpoint\":\"b.example:1\"}\n".to_owned(), "certificate"),
            (
                "{\"endpoint\":\"b.example:1\",\"certificate\":\"junk\"}\n".to_owned(),
                "certificate",
            ),
        ];
        for (bad, field_at_fault) in cases {
            match run(&[good.clone(), "\n".into(), bad.clone()]) {
                ImportError::Entry {
                    entry, line, field, ..
                } => {
                    assert_eq!(
                        (entry, line, field.as_str()),
                        (2, 4, field_at_fault),
                        "{bad}"
                    )
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let e = run(&[good.clone(), "{\"endpoint\": \n".into()]);
        assert!(matches!(e, ImportError::Syntax { .. }), "{e:?}");
        assert!(e.to_string().contains("line 3"), "{e}");

        // The same certificate twice for an endpoint, whatever the state.
        let again = json_line("a.example:1", &der, "\"state\":\"next\",");
        match run(&[good.clone(), again]) {
            ImportError::Duplicate {
                entry,
                line,
                first_entry,
                first_line,
                ..
            } => {
                assert_eq!((entry, line, first_entry, first_line), (2, 3, 1, 2))
            }
            other => panic!("{other:?}"),
        }
        // Out of order: named, with the entry before and the way to sort.
        let e = run(&[json_line("b.example:1", &der, ""), good.clone()]);
        match &e {
            ImportError::Entry {
                entry: 2,
                line: 3,
                field,
                reason,
            } if field == "endpoint" => {
                assert!(
                    reason.contains("comes after b.example:1 (entry 1, line 2)"),
                    "{reason}"
                );
                assert!(reason.contains("LC_ALL=C sort"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!store
            .endpoint(&"a.example:1".parse().unwrap())
            .unwrap()
            .is_pinned());

        // The header.
        let header = |text: &str| import_export(&store, text.as_bytes(), false).unwrap_err();
        assert!(matches!(
            header("{\"version\":2}\n"),
            ImportError::UnsupportedVersion { .. }
        ));
        assert!(matches!(header(&good), ImportError::MissingVersion));
        assert!(
            matches!(header("{\"version\":1,\"x\":1}\n"), ImportError::UnknownKey { ref key } if key == "x")
        );
        assert!(matches!(
            header("{\"version\":1}\n\u{ff}\n"),
            ImportError::Entry { .. } | ImportError::Syntax { .. } | ImportError::NotText { .. }
        ));
        assert!(matches!(
            import_export(&store, &b"{\"version\":1}\n\xff\n"[..], false),
            Err(ImportError::NotText { offset: 14 })
        ));
    }

    #[test]
    fn a_line_longer_than_any_pin_is_refused_before_it_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let long = io::repeat(b' ').take(jsonl::MAX_LINE_LEN as u64 * 3);
        let input = io::BufReader::new(b"{\"version\":1}\n{".chain(long));
        let e = import_export(&store, input, false).unwrap_err();
        assert!(e.to_string().contains("longer than 1 MiB"), "{e}");
    }

    #[test]
    fn a_store_round_trips_through_the_format_with_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a")).unwrap();
        let a = cert("prime-pri");
        let b = cert("prime-sec");
        let c = cert("prime-sec-next");
        let ep1: Endpoint = "10.1.1.1:8082".parse().unwrap();
        let ep2: Endpoint = "[fd00::5]:8443".parse().unwrap();
        store.pin_first_use(&ep1, &a).unwrap();
        store
            .add_pin(&ep2, &b, PinState::Active, Some("HA \"secondary\" \\ ü"))
            .unwrap();
        store
            .add_pin_matching(&ep2, &c, PinState::Next, None, PinMatch::Key, false)
            .unwrap();
        store
            .record_seen(
                &ep1,
                &Fingerprint::of(&a),
                4,
                Timestamp::from_unix(1_900_000_000),
            )
            .unwrap();

        let mut out = Vec::new();
        assert_eq!(write_export(&store, &mut out).unwrap(), 3);
        let text = String::from_utf8(out).unwrap();
        let parsed = parse_export(&text).unwrap();

        let mut original = Vec::new();
        store
            .for_each_pin(|p| {
                original.push(p);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(parsed.len(), 3);
        for (p, n) in original.iter().zip(&parsed) {
            assert_eq!(n.endpoint, p.endpoint);
            assert_eq!(n.der, p.der);
            assert_eq!(n.state, p.state);
            assert_eq!(n.source, p.source);
            assert_eq!(n.label, p.label);
            assert_eq!(n.matches, p.matches);
            assert_eq!(n.pinned_at, Some(p.pinned_at));
            assert_eq!(n.first_seen, p.first_seen);
            assert_eq!(n.last_seen, p.last_seen);
            assert_eq!(n.times_seen, p.times_seen);
        }

        let copy = Store::open(dir.path().join("b")).unwrap();
        copy.import(&parsed, false).unwrap();
        let mut copied = Vec::new();
        copy.for_each_pin(|p| {
            copied.push(p);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(copied, original);
        let mut again = Vec::new();
        write_export(&copy, &mut again).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), text);
    }

    /// Regression: the subject went into the entry's comment unescaped, so a subject with a
    /// newline (from a damaged or hostile store) could add TOML lines to a backup.
    #[test]
    fn a_subject_cannot_write_lines_into_the_export() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let endpoint: Endpoint = "10.1.1.1:8082".parse().unwrap();
        let mut pin = store
            .add_pin(&endpoint, &cert("a"), PinState::Active, None)
            .unwrap();
        let injected = "\n[[pin]]\nendpoint = \"evil.example:443\"\n";
        pin.details.subject = format!("/CN=a{injected}\r\t\u{1b}[31m\u{7f}");

        let entry = export_entry(&pin);
        let comment = entry.lines().nth(1).unwrap();
        assert_eq!(
            comment,
            r#"# /CN=a\n[[pin]]\nendpoint = "evil.example:443"\n\r\t\u{1b}[31m\u{7f}"#
        );
        assert_eq!(entry.matches("[[pin]]").count(), 2, "{entry}"); // the comment's, escaped
        let pins = parse_export(&format!("version = 1\n{entry}")).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].endpoint, endpoint);

        // An ordinary subject is written as it is.
        pin.details.subject = "/C=US/O=Cisco Systems/CN=prime-pri".into();
        assert!(export_entry(&pin).starts_with("\n# /C=US/O=Cisco Systems/CN=prime-pri\n[[pin]]\n"));
    }

    #[test]
    fn a_minimal_hand_written_entry_is_an_active_imported_pin() {
        let der = cert("seed");
        let text = format!("version = 1\n{}", entry("Seed.Example:443", &der, ""));
        let pins = parse_export(&text).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].endpoint.to_string(), "seed.example:443");
        assert_eq!(pins[0].state, PinState::Active);
        assert_eq!(pins[0].source, PinSource::Imported);
        assert_eq!(pins[0].pinned_at, None);
        assert_eq!(pins[0].times_seen, 0);
        assert!(parse_export("version = 1\n").unwrap().is_empty());
    }

    #[test]
    fn unquoted_toml_datetimes_are_accepted() {
        let der = cert("seed");
        let text = format!(
            "version = 1\n{}",
            entry("a.example:1", &der, "pinned_at = 2026-11-21T19:53:52Z\n")
        );
        let pins = parse_export(&text).unwrap();
        assert_eq!(
            pins[0].pinned_at,
            Some("2026-11-21T19:53:52Z".parse().unwrap())
        );
    }

    #[test]
    fn the_version_is_checked_first() {
        assert!(matches!(
            parse_export("[[pin]]\nendpoint = \"a:1\"\n"),
            Err(ImportError::MissingVersion)
        ));
        let e = parse_export("version = 2\nnew_thing = true\n").unwrap_err();
        assert!(matches!(e, ImportError::UnsupportedVersion { ref found } if found == "2"));
        assert!(e.to_string().contains("reads version 1 only"), "{e}");
        assert!(matches!(
            parse_export("version = \"1\"\n"),
            Err(ImportError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            parse_export("version = 1\nextra = 3\n"),
            Err(ImportError::UnknownKey { ref key }) if key == "extra"
        ));
        let e = parse_export("version = 1\n[[pin]\n").unwrap_err();
        assert!(matches!(e, ImportError::Syntax { .. }), "{e:?}");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn errors_name_the_entry_its_line_and_the_field() {
        let good = cert("good");
        let other = cert("other");
        let first = entry("a.example:443", &good, "");
        // The second `[[pin]]` follows "version = 1", the first entry and a blank line.
        let second_line = 3 + first.lines().count();

        let text = format!(
            "version = 1\n{first}{}",
            entry("https://b.example", &good, "")
        );
        let (n, line, field, reason) = entry_error(&text);
        assert_eq!((n, line, field.as_str()), (2, second_line, "endpoint"));
        assert!(reason.contains("URL"), "{reason}");

        let text = format!(
            "version = 1\n{first}{}",
            entry("b.example:443", &good, "state = \"staged\"\n")
        );
        let (n, _, field, reason) = entry_error(&text);
        assert_eq!((n, field.as_str()), (2, "state"));
        assert!(reason.contains("active, next"), "{reason}");

        let wrong_fp = format!("fingerprint = \"{}\"\n", Fingerprint::of(&other));
        let text = format!("version = 1\n{}", entry("b.example:443", &good, &wrong_fp));
        let (_, _, field, reason) = entry_error(&text);
        assert_eq!(field, "fingerprint");
        assert!(reason.contains("altered or damaged"), "{reason}");

        let text = format!(
            "version = 1\n{}",
            entry("b.example:443", &good, "fingerprint = \"abc\"\n")
        );
        assert_eq!(entry_error(&text).2, "fingerprint");

        let text = format!(
            "version = 1\n{}",
            entry("b.example:443", &good, "times_seen = -1\n")
        );
        assert_eq!(entry_error(&text).2, "times_seen");

        let text = format!(
            "version = 1\n{}",
            entry("b.example:443", &good, "pinned_at = \"yesterday\"\n")
        );
        assert_eq!(entry_error(&text).2, "pinned_at");

        let text = format!(
            "version = 1\n{}",
            entry("b.example:443", &good, "label = \"a\\nb\"\n")
        );
        assert_eq!(entry_error(&text).2, "label");

        let text = format!(
            "version = 1\n{}",
            entry("b.example:443", &good, "colour = \"blue\"\n")
        );
        let (_, _, field, reason) = entry_error(&text);
        assert_eq!(field, "colour");
        assert!(reason.contains("unknown field"), "{reason}");

        let text = "version = 1\n[[pin]]\nendpoint = \"b.example:443\"\ncertificate = \"junk\"\n";
        let (n, line, field, _) = entry_error(text);
        assert_eq!((n, line, field.as_str()), (1, 2, "certificate"));

        let text = "version = 1\n[[pin]]\ncertificate = \"junk\"\n";
        let (_, _, field, reason) = entry_error(text);
        assert_eq!(field, "endpoint");
        assert!(reason.contains("missing"), "{reason}");

        let bundle = format!("{}{}", to_pem(&good), to_pem(&other));
        let text = format!(
            "version = 1\n[[pin]]\nendpoint = \"b.example:443\"\ncertificate = \"\"\"\n{bundle}\"\"\"\n"
        );
        let (_, _, field, reason) = entry_error(&text);
        assert_eq!(field, "certificate");
        assert!(reason.contains("2 certificates"), "{reason}");
    }

    #[test]
    fn a_repeated_endpoint_and_certificate_is_refused() {
        let der = cert("dup");
        let first = entry("10.1.1.1:8082", &der, "");
        let text = format!(
            "version = 1\n{first}{}",
            entry("10.1.1.1_8082", &der, "state = \"next\"\n")
        );
        match parse_export(&text) {
            Err(ImportError::Duplicate {
                entry,
                first_entry,
                first_line,
                ..
            }) => assert_eq!((entry, first_entry, first_line), (2, 1, 3)),
            other => panic!("{other:?}"),
        }
        // The same certificate for two endpoints is an HA pair sharing a certificate: fine.
        let text = format!("version = 1\n{first}{}", entry("10.1.1.2:8082", &der, ""));
        assert_eq!(parse_export(&text).unwrap().len(), 2);
    }

    #[test]
    fn oversized_and_non_text_input_is_refused_before_parsing() {
        let big = io::repeat(b' ').take(4097);
        assert!(matches!(
            read_export_capped(big, 4096),
            Err(ImportError::TooLarge { max: 4096 })
        ));
        let e = ImportError::TooLarge {
            max: MAX_EXPORT_LEN,
        };
        assert!(e.to_string().contains("larger than 256 MiB"), "{e}");
        assert!(matches!(
            read_export(&b"version = 1\n\xff"[..]),
            Err(ImportError::NotText { offset: 12 })
        ));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        // A cheap stand-in for fuzzing: mutilate a valid file at every position.
        let der = cert("fuzz");
        let text = format!(
            "version = 1\n{}",
            entry("a.example:443", &der, "label = \"x\"\ntimes_seen = 2\n")
        );
        for cut in (0..text.len()).step_by(7) {
            let _ = parse_export(&text[..cut]);
            let mut bytes = text.clone().into_bytes();
            bytes[cut] = b'"';
            if let Ok(s) = String::from_utf8(bytes) {
                let _ = parse_export(&s);
            }
        }
    }
}
