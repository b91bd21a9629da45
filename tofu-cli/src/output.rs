//! Where output goes and how it looks: data to stdout, status and errors to stderr, colour only
//! on a terminal and never with NO_COLOR set.

use std::io::{self, BufWriter, IsTerminal, StdoutLock, Write};

use tofu_core::PinState;

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
        && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty())
        && std::env::var_os("TERM").map_or(true, |t| t != "dumb")
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

/// Writes a line to standard error. A closed or failing standard error is ignored: there is
/// nowhere left to report it.
pub(crate) fn status(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
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
    status(&format!(
        "{} {}",
        paint(stderr_colour(), style, label),
        message.trim_end()
    ));
}

/// Writes `value` as JSON to standard output: one indented document when `pretty`, else one
/// line. A closed standard output is reported as such (it ends the command quietly).
pub(crate) fn write_json(
    out: &mut Out,
    value: &impl serde::Serialize,
    pretty: bool,
) -> Result<(), CliError> {
    let written = if pretty {
        serde_json::to_writer_pretty(&mut *out, value)
    } else {
        serde_json::to_writer(&mut *out, value)
    };
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

/// Text from the store or a file shown on a terminal: control characters (which could move
/// the cursor or recolour the screen) are shown escaped.
pub(crate) fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    } else {
        text.to_owned()
    }
}

/// The date part of a timestamp (`2026-11-21`), for tables.
pub(crate) fn date(t: tofu_core::Timestamp) -> String {
    let text = t.to_string();
    match text.get(..10) {
        Some(day) if text.len() == 20 => day.to_owned(),
        _ => text,
    }
}
