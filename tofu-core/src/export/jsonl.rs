//! The JSON-lines form of the export: a header line, then one JSON object per pin, with the
//! fields of a TOML `[[pin]]` entry. Read and written a block at a time, at any size, in
//! memory bounded by a block (and one endpoint's pins), because the pins come in the store's
//! order: endpoints in the byte order of their text, each endpoint's pins together.
//!
//! ```text
//! {"version":1}
//! {"endpoint":"10.1.1.1:8082","state":"active","match":"certificate","fingerprint":"SHA256:…","source":"operator","pinned_at":"2026-11-21T19:53:52Z","times_seen":0,"certificate":"-----BEGIN CERTIFICATE-----\nMII…\n-----END CERTIFICATE-----\n"}
//! ```

use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::sync::mpsc;

use super::{entry_error, ExportError, ImportError, RawEntry, EXPORT_VERSION, FIELDS};
use crate::cert::to_pem;
use crate::pin::Pin;
use crate::store::{ImportReport, NewPin};
use crate::{CertificateDetails, Fingerprint, Store};

/// The longest line read: a certificate of 700 kB in PEM, and the other fields, fit.
pub(super) const MAX_LINE_LEN: usize = 1024 * 1024;

/// The most pins one endpoint may have in a JSON-lines file: its pins are held until the
/// next endpoint's line, and each is compared with the others, so this bounds the memory
/// and the time a hostile file can take. Far above any real endpoint (an HA group with its
/// staged successors).
pub(super) const MAX_PINS_PER_ENDPOINT: usize = 10_000;

/// Lines parsed together, on the machine's cores, while the block before is written.
const BLOCK: usize = 4096;

/// Writes the header and every pin, one line each. Returns how many pins were written.
pub(super) fn write(store: &Store, mut out: impl Write) -> Result<usize, ExportError> {
    out.write_all(format!("{{\"version\":{EXPORT_VERSION}}}\n").as_bytes())?;
    // Awaited pins have no line: a line is a certificate. The command says which it left out.
    let count = super::write_pins(store, &mut out, entry)?;
    out.flush()?;
    Ok(count)
}

/// One pin's line, newline included: every field the store records, the endpoint first (so
/// that the lines sort by endpoint as text).
fn entry(pin: &Pin, s: &mut String) {
    s.push_str("{\"endpoint\":");
    string(&pin.endpoint.to_string(), s);
    s.push_str(&format!(
        ",\"state\":\"{}\",\"match\":\"{}\",\"fingerprint\":\"{}\"",
        pin.state, pin.matches, pin.details.fingerprint
    ));
    if let Some(label) = &pin.label {
        s.push_str(",\"label\":");
        string(label, s);
    }
    s.push_str(&format!(
        ",\"source\":\"{}\",\"pinned_at\":\"{}\"",
        pin.source, pin.pinned_at
    ));
    if let Some(t) = pin.first_seen {
        s.push_str(&format!(",\"first_seen\":\"{t}\""));
    }
    if let Some(t) = pin.last_seen {
        s.push_str(&format!(",\"last_seen\":\"{t}\""));
    }
    s.push_str(&format!(
        ",\"times_seen\":{},\"certificate\":",
        pin.times_seen
    ));
    string(&to_pem(&pin.der), s);
    s.push_str("}\n");
}

/// A JSON string: `"` and `\` escaped, and what [`must_escape`](crate::text::must_escape)
/// (controls, which JSON forbids raw, and the format and separator characters, which would
/// reorder the line for a person reading it) as `\uXXXX` (a surrogate pair above U+FFFF).
fn string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if crate::text::must_escape(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One pin line, typed: the fast path. A line it refuses is read again as a JSON object to
/// say which field is wrong.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow, default)]
    endpoint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    certificate: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    label: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "match")]
    matches: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pinned_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    first_seen: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    last_seen: Option<Cow<'a, str>>,
    #[serde(default)]
    times_seen: Option<u64>,
}

/// A parsed entry, with where it is in the file.
pub(super) struct Parsed {
    entry: usize,
    line: usize,
    pin: NewPin,
    details: CertificateDetails,
}

/// One line of the file, as read.
struct Text {
    entry: usize,
    line: usize,
    text: String,
}

fn parse_line(t: &Text) -> Result<Parsed, ImportError> {
    let err = entry_error(t.entry, t.line);
    let (pin, fingerprint) = match serde_json::from_str::<Line<'_>>(&t.text) {
        Ok(l) => RawEntry {
            endpoint: l.endpoint.as_deref(),
            certificate: l.certificate.as_deref(),
            state: l.state.as_deref(),
            fingerprint: l.fingerprint.as_deref(),
            label: l.label.as_deref(),
            source: l.source.as_deref(),
            matches: l.matches.as_deref(),
            pinned_at: l.pinned_at,
            first_seen: l.first_seen,
            last_seen: l.last_seen,
            times_seen: l.times_seen.unwrap_or(0),
        }
        .check(&err)?,
        Err(e) => return Err(explain(t, e)),
    };
    let details =
        CertificateDetails::from_der(&pin.der).map_err(|e| err("certificate", format!("{e}")))?;
    debug_assert_eq!(details.fingerprint, fingerprint);
    Ok(Parsed {
        entry: t.entry,
        line: t.line,
        pin,
        details,
    })
}

/// Why `t` is not a pin line, naming the field when it is one.
fn explain(t: &Text, e: serde_json::Error) -> ImportError {
    let err = entry_error(t.entry, t.line);
    let object = match serde_json::from_str::<serde_json::Value>(&t.text) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(other) => {
            return err(
                "",
                format!(
                    "the line is {}, not a JSON object with a pin's fields",
                    kind(&other)
                ),
            )
        }
        Err(e) => {
            return ImportError::Syntax {
                message: format!(
                    "line {} (pin entry {}) is not valid JSON: {}",
                    t.line,
                    t.entry,
                    printable(&e.to_string())
                ),
            }
        }
    };
    for (key, value) in &object {
        if !FIELDS.contains(&key.as_str()) {
            return err(
                key,
                format!("unknown field; a pin has the fields {}", FIELDS.join(", ")),
            );
        }
        match (key.as_str(), value) {
            (_, serde_json::Value::Null) => {}
            ("times_seen", serde_json::Value::Number(n)) => {
                return err(
                    key,
                    format!(
                        "{} is not a whole number of 0 or more",
                        printable(&n.to_string())
                    ),
                )
            }
            ("times_seen", other) => {
                return err(
                    key,
                    format!("expected a whole number, found {}", kind(other)),
                )
            }
            (_, serde_json::Value::String(_)) => {}
            (_, other) => return err(key, format!("expected a string, found {}", kind(other))),
        }
    }
    err("", printable(&e.to_string()))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// At most 200 characters of `text`, with what must not reach a terminal escaped.
fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(|c| {
            let escaped: Vec<char> = if crate::text::must_escape(c) {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

/// Reads lines into blocks, parses each block on the machine's cores, and sends it on; a
/// thread of its own, so that the next block is parsed while the one before is written.
struct Reader<R> {
    input: R,
    /// Bytes read so far, for [`ImportError::NotText`].
    offset: usize,
    line: usize,
    entry: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    /// The next line that is not blank, without its line ending; `None` at the end.
    fn next_line(&mut self) -> Result<Option<(usize, String)>, ImportError> {
        loop {
            self.buf.clear();
            let n = io::Read::take(&mut self.input, MAX_LINE_LEN as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let start = self.offset;
            self.offset += n;
            if n > MAX_LINE_LEN {
                return Err(ImportError::Syntax {
                    message: format!(
                        "line {} is longer than {} MiB, more than any pin needs; give the file \
                         `tofu-certs export --format jsonl` wrote",
                        self.line,
                        MAX_LINE_LEN / (1024 * 1024)
                    ),
                });
            }
            let bytes = std::mem::take(&mut self.buf);
            let text = String::from_utf8(bytes).map_err(|e| ImportError::NotText {
                offset: start + e.utf8_error().valid_up_to(),
            })?;
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if trimmed.trim().is_empty() {
                continue;
            }
            let text = if trimmed.len() == text.len() {
                text
            } else {
                trimmed.to_owned()
            };
            return Ok(Some((self.line, text)));
        }
    }

    /// Checks the header line: `{"version":1}`.
    fn header(&mut self) -> Result<(), ImportError> {
        let Some((line, text)) = self.next_line()? else {
            return Err(ImportError::MissingVersion);
        };
        let map = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(ImportError::MissingVersion),
            Err(e) => {
                return Err(ImportError::Syntax {
                    message: format!(
                        "line {line} is not valid JSON: {}",
                        printable(&e.to_string())
                    ),
                })
            }
        };
        match map.get("version") {
            Some(v) if v.as_i64() == Some(EXPORT_VERSION) => {}
            Some(v) => {
                return Err(ImportError::UnsupportedVersion {
                    found: printable(&v.to_string()),
                })
            }
            None => return Err(ImportError::MissingVersion),
        }
        if let Some(key) = map.keys().find(|k| *k != "version") {
            return Err(ImportError::UnknownKey {
                key: printable(key),
            });
        }
        Ok(())
    }

    /// The next block of lines, parsed in order; empty at the end of the file.
    fn block(&mut self) -> Result<Vec<Parsed>, ImportError> {
        let mut texts = Vec::with_capacity(BLOCK);
        while texts.len() < BLOCK {
            let Some((line, text)) = self.next_line()? else {
                break;
            };
            self.entry += 1;
            texts.push(Text {
                entry: self.entry,
                line,
                text,
            });
        }
        crate::parallel::map_in_order(&texts, parse_line)
            .into_iter()
            .collect()
    }
}

/// Imports a JSON-lines export from `input` (positioned at its first byte), streamed: one
/// transaction, all or nothing.
pub(super) fn import(
    store: &Store,
    input: impl BufRead + Send,
    replace: bool,
) -> Result<ImportReport, ImportError> {
    let mut reader = Reader {
        input,
        offset: 0,
        line: 0,
        entry: 0,
        buf: Vec::new(),
    };
    reader.header()?;
    let mut import = store.import_stream(replace)?;
    let mut order = Order::default();
    std::thread::scope(|scope| {
        // Two blocks ahead at most: the memory of three blocks, whatever the file's size.
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<Parsed>, ImportError>>(1);
        scope.spawn(move || loop {
            let block = reader.block();
            let last = !matches!(&block, Ok(b) if !b.is_empty());
            // The receiver is gone when the import failed: stop reading.
            if tx.send(block).is_err() || last {
                return;
            }
        });
        for block in rx {
            let block = block?;
            if block.is_empty() {
                break;
            }
            let mut pins = Vec::with_capacity(block.len());
            for p in block {
                order.check(&p)?;
                pins.push((p.pin, p.details));
            }
            import.add_detailed(pins)?;
        }
        Ok::<(), ImportError>(())
    })?;
    Ok(import.finish()?)
}

/// What the order of the entries needs checked, with their lines: the endpoints in the
/// byte order of their text, and no certificate twice for one endpoint.
#[derive(Default)]
struct Order {
    /// The current endpoint's text, its first entry and line.
    endpoint: Option<(String, usize, usize)>,
    /// The certificates of the current endpoint, with their entries and lines.
    seen: Vec<(Fingerprint, usize, usize)>,
}

impl Order {
    fn check(&mut self, p: &Parsed) -> Result<(), ImportError> {
        let key = p.pin.endpoint.to_string();
        match &self.endpoint {
            Some((prev, _, _)) if *prev == key => {}
            Some((prev, entry, line)) if key < *prev => {
                return Err(entry_error(p.entry, p.line)(
                    "endpoint",
                    format!(
                        "{key} comes after {prev} (entry {entry}, line {line}); the lines of a \
                         JSON-lines export list the endpoints in the byte order of their text, \
                         each endpoint's pins together, as `tofu-certs export --format jsonl` \
                         writes them. Sort the lines after the first: \
                         `(head -n 1 FILE; tail -n +2 FILE | LC_ALL=C sort) > SORTED`"
                    ),
                ))
            }
            _ => {
                self.endpoint = Some((key, p.entry, p.line));
                self.seen.clear();
            }
        }
        let fingerprint = p.details.fingerprint;
        if let Some(&(_, first_entry, first_line)) =
            self.seen.iter().find(|(f, _, _)| *f == fingerprint)
        {
            return Err(ImportError::Duplicate {
                entry: p.entry,
                line: p.line,
                first_entry,
                first_line,
                endpoint: p.pin.endpoint.clone(),
                fingerprint,
            });
        }
        if self.seen.len() >= MAX_PINS_PER_ENDPOINT {
            return Err(entry_error(p.entry, p.line)(
                "endpoint",
                format!(
                    "{} has more than {MAX_PINS_PER_ENDPOINT} pins in the file, more than a \
                     streamed import holds for one endpoint; this is not an export",
                    p.pin.endpoint
                ),
            ));
        }
        self.seen.push((fingerprint, p.entry, p.line));
        Ok(())
    }
}

/// Whether `input` starts like a JSON-lines export: the first byte other than white space
/// of what the first read gives is `{`, which no TOML document starts with. Nothing is
/// consumed, so line numbers count from the file's first line.
pub(super) fn looks_like(input: &mut impl BufRead) -> io::Result<bool> {
    let buf = input.fill_buf()?;
    Ok(buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}
