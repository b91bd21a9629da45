//! Where output goes and how it looks: data to stdout, status and errors to stderr, colour only
//! on a terminal and never with NO_COLOR set.

use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};

use tofu_core::pin::PinState;

use crate::error::CliError;

/// Standard output, buffered. Write errors propagate, so a closed pipe (`| head -1`) ends the
/// command (quietly, see `CliError::report`) instead of a panic.
pub(crate) struct Out {
    inner: BufWriter<StdoutLock<'static>>,
    colour: bool,
}

impl Out {
    pub(crate) fn stdout() -> Self {
        let stdout = io::stdout();
        let colour = colour_for(stdout.is_terminal());
        Self {
            inner: BufWriter::new(stdout.lock()),
            colour,
        }
    }

    /// Whether standard output takes colour.
    pub(crate) fn colour(&self) -> bool {
        self.colour
    }

    /// `text` in `style` when standard output takes colour.
    pub(crate) fn paint(&self, style: Style, text: &str) -> String {
        paint(self.colour, style, text)
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Terminal styles, as SGR codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Bold,
    Red,
    Yellow,
    Green,
}

impl Style {
    fn sgr(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Red => "1;31",
            Style::Yellow => "33",
            Style::Green => "32",
        }
    }
}

/// Whether a stream that is (or is not) a terminal takes colour: only a terminal, and never
/// when NO_COLOR is set to anything non-empty (<https://no-color.org>) or TERM is `dumb`.
pub(crate) fn colour_for(is_terminal: bool) -> bool {
    is_terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

pub(crate) fn paint(colour: bool, style: Style, text: &str) -> String {
    if colour {
        format!("\x1b[{}m{text}\x1b[0m", style.sgr())
    } else {
        text.to_owned()
    }
}

/// Whether standard error takes colour.
pub(crate) fn stderr_colour() -> bool {
    colour_for(io::stderr().is_terminal())
}

/// Writes a line to standard error, with what [`tofu_core::text::must_escape`] escaped except line
/// breaks: messages quote file names, endpoints and names that anyone may have chosen. A
/// closed or failing standard error is ignored: there is nowhere left to report it.
pub(crate) fn status(line: &str) {
    let _ = writeln!(
        io::stderr().lock(),
        "{}",
        tofu_core::text::escape_message(line)
    );
}

/// `error: …` on standard error.
pub(crate) fn error(message: &str) {
    labelled(Style::Red, "error:", message);
}

/// `hint: …` on standard error.
pub(crate) fn hint(message: &str) {
    labelled(Style::Bold, "hint:", message);
}

/// `warning: …` on standard error.
pub(crate) fn warning(message: &str) {
    labelled(Style::Yellow, "warning:", message);
}

fn labelled(style: Style, label: &str, message: &str) {
    // Escaped before it is painted: the colour's own escape sequences must stay.
    let _ = writeln!(
        io::stderr().lock(),
        "{} {}",
        paint(stderr_colour(), style, label),
        tofu_core::text::escape_message(message.trim_end())
    );
}

/// Writes `value` as JSON to standard output: one indented document when `pretty`, else one
/// line. A closed standard output is reported as such (it ends the command quietly).
pub(crate) fn write_json(
    out: &mut Out,
    value: &impl serde::Serialize,
    pretty: bool,
) -> Result<(), CliError> {
    let written = to_json_writer(&mut *out, value, pretty);
    written.map_err(|e| match e.classify() {
        serde_json::error::Category::Io => CliError::from(io::Error::from(e)),
        _ => CliError::failure(format!("cannot write JSON: {e}")),
    })?;
    writeln!(out)?;
    Ok(())
}

/// How a pin's state is named in everything people read (listcerts's table, showcert,
/// deletecert); JSON and the export file keep the schema's `next`.
pub(crate) fn state_name(state: PinState) -> &'static str {
    match state {
        PinState::Active => "active",
        PinState::Next => "staged",
    }
}

/// Text from the store or a file shown on a terminal (a label, an actor): what
/// [`tofu_core::text::must_escape`] (control characters, which could move the cursor or recolour
/// the screen; format and separator characters, which reorder or hide text) is shown as a
/// Rust escape, `\u{202e}`.
pub(crate) fn printable(text: &str) -> String {
    tofu_core::text::escape_text(text).into_owned()
}

/// A certificate's name (subject, issuer, SAN) read from the store, shown on a terminal:
/// what [`tofu_core::text::must_escape`] is shown as `\xHH` per byte, as OpenSSL shows a name's
/// bytes. A store that was not tampered with holds none.
pub(crate) fn name(text: &str) -> std::borrow::Cow<'_, str> {
    tofu_core::text::escape_name(text)
}

/// serde_json's formatter `F`, except that in strings what [`tofu_core::text::must_escape`] and
/// serde_json leaves raw (format and separator characters, U+007F–U+009F) is written as a
/// `\uXXXX` escape (a UTF-16 surrogate pair above U+FFFF): the document is the same JSON, a
/// parser reads back the exact text, and a terminal showing it never obeys a bidirectional
/// override.
pub(crate) struct Escaping<F>(pub(crate) F);

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Escaping<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if tofu_core::text::must_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// `value` as JSON to `writer` through [`Escaping`]: indented when `pretty`, else one line.
pub(crate) fn to_json_writer<W: Write>(
    writer: W,
    value: &impl serde::Serialize,
    pretty: bool,
) -> serde_json::Result<()> {
    use serde_json::ser::{CompactFormatter, PrettyFormatter, Serializer};
    if pretty {
        value.serialize(&mut Serializer::with_formatter(
            writer,
            Escaping(PrettyFormatter::new()),
        ))
    } else {
        value.serialize(&mut Serializer::with_formatter(
            writer,
            Escaping(CompactFormatter),
        ))
    }
}

/// The date part of a timestamp (`2026-11-21`), for tables.
pub(crate) fn date(t: tofu_core::timestamp::Timestamp) -> String {
    let text = t.to_string();
    match text.get(..10) {
        Some(day) if text.len() == 20 => day.to_owned(),
        _ => text,
    }
}

/// A certificate's name as people read it in a table: [`name`], except that the UTF-8 text
/// OpenSSL's one-line form writes as `\xHH` bytes (`/CN=\xE6\x9D\xB1` for `/CN=東`) is shown as
/// the characters it encodes. Only bytes from 0x80 up are decoded, and only when they form
/// UTF-8 of characters [`tofu_core::text::must_escape`] lets through; anything else (a control
/// character, a right-to-left override, bytes that are not UTF-8) keeps its `\xHH` form, so a
/// name never shows more than it holds. A literal `\xE6\x9D\xB1` in a value already reads
/// like those bytes in OpenSSL's form; this reads both as `東`, adding no new ambiguity.
pub(crate) fn readable_name(text: &str) -> String {
    let text = name(text);
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let escaped = (b == b'\\' && tail.first() == Some(&b'x'))
            .then(|| tail.get(1..3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|&byte| byte >= 0x80);
        match escaped {
            Some(byte) => {
                bytes.push(byte);
                rest = &tail[3..];
            }
            None => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    tofu_core::text::escape_name_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::readable_name;

    #[test]
    fn a_name_shows_its_utf8_text_and_nothing_it_does_not_hold() {
        assert_eq!(readable_name(r"/CN=\xE6\x9D\xB1\xE4\xBA\xAC"), "/CN=東京");
        assert_eq!(
            readable_name("/O=Cisco Systems/CN=prime"),
            "/O=Cisco Systems/CN=prime"
        );
        // A right-to-left override and a control stay escaped; so does what is not UTF-8.
        assert_eq!(readable_name(r"/CN=a\xE2\x80\xAEb"), r"/CN=a\xE2\x80\xAEb");
        assert_eq!(readable_name(r"/CN=\x1B[31m"), r"/CN=\x1B[31m");
        assert_eq!(readable_name(r"/CN=\xE6\x9D"), r"/CN=\xE6\x9D");
        assert_eq!(readable_name(r"/CN=\xFF\xC3\xA9"), r"/CN=\xFFé");
        // Printable ASCII is never escaped by OpenSSL, so `\x41` is text, not `A`.
        assert_eq!(readable_name(r"/CN=\x41"), r"/CN=\x41");
        assert_eq!(readable_name(r"/CN=a\x"), r"/CN=a\x");
        // A raw control character from a tampered store is escaped as `name` does.
        assert_eq!(readable_name("/CN=a\u{202e}"), r"/CN=a\xE2\x80\xAE");
    }
}
