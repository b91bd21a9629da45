//! `tofu-certs listcerts`: the pins of the store, one line per pin, streamed in the store's
//! order.
//!
//! Pins are not collected: each is printed as `Store::for_each_pin` yields it, so listing a
//! million pins takes a few MB, as listing ten does. The store yields pins by endpoint text
//! (`host:port`), each endpoint's active pins before its staged ones; that is the order listed.
//! When quarantined certificates matter (`--quarantined`, `--format table`, `--format json
//! --expiring-within`), they are read alongside, from `Store::for_each_quarantined` (also in
//! endpoint order), and merged in endpoint by endpoint.

use std::collections::HashSet;
use std::io::Write;
use std::iter::Peekable;
use std::ops::ControlFlow;
use std::sync::mpsc;

use rustls::pki_types::CertificateDer;
use tofu_core::{
    pin::{AwaitedPin, Pin, PinMatch, PinState, Quarantined},
    timestamp::Timestamp,
    Endpoint, Store,
};
use unicode_width::UnicodeWidthStr;

use super::Context;
use crate::error::{CliError, Exit};
use crate::output::{date, name, paint, printable, readable_name, state_name, Out, Style};

/// List the pinned certificates, one line per pin, in the store's order
///
/// The default format is exactly that of Cisco Prime Infrastructure's `ncs certvalidation
/// tofu-certs listcerts`:
///
///     host=10.1.1.1_8082;  subject= /C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-pri
///
/// the endpoint in Prime's host_port form (which deletecert, showcert and the other commands
/// accept as it is), and the subject as `openssl x509 -noout -subject -nameopt compat` prints
/// it. As in Prime, the subject is printed raw after `subject= `: a `;` (or two spaces) inside
/// it is part of the subject, not a separator, and only the first `;  ` of a line ends the
/// host. Bytes OpenSSL does not print, and the control, format and separator characters
/// that could reorder or hide text (a right-to-left override, a zero-width space), are
/// written `\xHH` per byte, as OpenSSL writes them; labels show them as `\u{202e}`.
///
/// Pins made from a fingerprint alone (addcert --fingerprint), which await the first
/// handshake that presents their certificate, have no subject yet: Prime's format prints
/// `subject= (awaited: no certificate yet, FP)` in place of one (a real subject starts with
/// `/`), the table the state `awaited` (or `awaited-next`), and JSON lists them under
/// `awaited`. --expiring-within leaves them out (they have no dates); --quarantined keeps
/// those of endpoints with quarantined certificates.
///
/// Staged pins (addcert --next) are listed too, after the endpoint's active pins; `--format
/// table` shows which is which, with subjects, fingerprints, expiry, use and quarantined certificates
/// (right after their endpoint's pins). `--format json` is for scripts; its schema is in the
/// README.
///
/// Pins are printed as they are read, in the store's order: by the endpoint written as
/// host:port (10.1.1.1:8082, [fd00::5]:8443, prime-sec.example.com:443), compared as text
/// byte by byte, then each endpoint's active pins before its staged ones, oldest first. The
/// order is not numeric: 10.1.1.10:8082 comes before 10.1.1.1:8082 (`:` sorts after the
/// digits), which comes before 10.1.1.9:443; IPv4 addresses come before bracketed IPv6 ones,
/// and those before names that start with a letter. The table's columns are as wide as the
/// widest cell of its first 1000 rows.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// How to print: prime (Cisco Prime's listcerts), table (for people), json (for scripts).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Format::Prime)]
    format: Format,

    /// Only pins whose certificate expires within DAYS days (or has expired).
    #[arg(long, value_name = "DAYS")]
    expiring_within: Option<u32>,

    /// Only endpoints that presented a certificate matching none of their pins (kept in
    /// quarantine until accepted or deleted).
    #[arg(long)]
    quarantined: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Prime,
    Table,
    Json,
}

pub(crate) fn run(ctx: &Context, args: Args) -> Result<Exit, CliError> {
    let store = ctx.open_existing()?;
    let now = Timestamp::now();
    let filter = Filter {
        deadline: args
            .expiring_within
            .map(|days| Timestamp::from_unix(now.unix().saturating_add(i64::from(days) * 86_400))),
        only_quarantined: args.quarantined,
    };
    let mut out = Out::stdout();
    match args.format {
        Format::Prime => walk(ctx, &store, &filter, &mut Prime { out: &mut out })?,
        Format::Table => {
            let mut table = Table::new(&mut out, now);
            walk(ctx, &store, &filter, &mut table)?;
            table.finish()?;
        }
        Format::Json => json(ctx, &store, &filter, &mut out, now)?,
    }
    out.flush()?;
    // After the listing, on standard error: a script reading the listing is not disturbed,
    // and the operator reading it cannot miss an endpoint that lets mismatches through.
    let mut report_only = Vec::new();
    store
        .for_each_report_only(|m| {
            report_only.push(m);
            ControlFlow::Continue(())
        })
        .map_err(|e| CliError::store(&e, ctx))?;
    for m in report_only {
        crate::output::warning(&super::report_only_warning(ctx, &m));
    }
    Ok(Exit::Success)
}

/// What `--expiring-within` and `--quarantined` select.
struct Filter {
    /// Only pins whose certificate expires by then.
    deadline: Option<Timestamp>,
    /// Only pins of endpoints with quarantined certificates.
    only_quarantined: bool,
}

impl Filter {
    fn expiring(&self, pin: &Pin) -> bool {
        self.deadline.is_none_or(|d| pin.details.not_after <= d)
    }
}

/// A format, fed one pin or quarantined certificate at a time, in listing order.
trait Sink {
    /// Whether it shows quarantined certificates as they come (the table does).
    fn wants_quarantined(&self) -> bool;
    /// A pin that the filters selected.
    fn pin(&mut self, pin: &Pin) -> Result<(), CliError>;
    /// An awaited pin, after its endpoint's pins (an endpoint with none takes its place in
    /// the endpoint order); never under --expiring-within or --quarantined.
    fn awaited(&mut self, a: &AwaitedPin) -> Result<(), CliError>;
    /// A quarantined certificate to show: all of them, unless --expiring-within narrowed the
    /// pins, in which case those of the endpoints whose pins were listed. It comes right after
    /// its endpoint's pins (an endpoint with no pins takes its place in the endpoint order).
    fn quarantined(&mut self, q: &Quarantined) -> Result<(), CliError>;
}

/// How many quarantined certificates the reading thread may be ahead of the listing.
const QUARANTINE_QUEUE: usize = 64;

/// Feeds `sink` the pins the filters select, in the store's order, and if the sink or the
/// filters need them the quarantined certificates, each endpoint's after its pins.
///
/// Both tables are streamed: the pins by `for_each_pin` on this thread, the quarantined
/// certificates by `for_each_quarantined` on a second one (the store is built to be read by
/// several threads at once), through a small queue that this thread takes from as the pins'
/// endpoints advance. Both are in endpoint text order, so one walk merges them; only the
/// current endpoint is remembered.
fn walk(
    ctx: &Context,
    store: &Store,
    filter: &Filter,
    sink: &mut impl Sink,
) -> Result<(), CliError> {
    let store_error = |e: tofu_core::Error| CliError::store(&e, ctx);
    let mut failed = None;
    let awaited = awaited_listed(store, filter)
        .map_err(store_error)?
        .into_iter()
        .map(|a| (a.endpoint.to_string(), a));
    let mut awaited = Awaited(awaited.collect::<Vec<_>>().into_iter().peekable());
    if !(sink.wants_quarantined() || filter.only_quarantined) {
        store
            .for_each_pin(|pin| {
                if !filter.expiring(&pin) {
                    return ControlFlow::Continue(());
                }
                awaited
                    .before(Some(&pin.endpoint), sink)
                    .and_then(|()| sink.pin(&pin))
                    .map_or_else(
                        |e| {
                            failed = Some(e);
                            ControlFlow::Break(())
                        },
                        ControlFlow::Continue,
                    )
            })
            .map_err(store_error)?;
        if failed.is_none() {
            failed = awaited.before(None, sink).err();
        }
        return failed.map_or(Ok(()), Err);
    }

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(QUARANTINE_QUEUE);
        let reader = scope.spawn(move || {
            store.for_each_quarantined(|mut q| {
                // The DER is not printed; the details were read from it already.
                q.der = CertificateDer::from(Vec::new());
                let text = q.endpoint.to_string();
                // A closed queue: the listing ended early (a closed pipe, an error).
                tx.send((text, q))
                    .map_or(ControlFlow::Break(()), ControlFlow::Continue)
            })
        });
        let mut merge = Merge {
            queue: rx.into_iter().peekable(),
            awaited,
            current: None,
            filter,
            sink,
        };
        let pins = store.for_each_pin(|pin| {
            merge.pin(&pin).map_or_else(
                |e| {
                    failed = Some(e);
                    ControlFlow::Break(())
                },
                ControlFlow::Continue,
            )
        });
        if failed.is_none() && pins.is_ok() {
            // The quarantined certificates of endpoints after the last pinned one.
            failed = merge
                .quarantined_before(None)
                .and_then(|()| merge.awaited.before(None, merge.sink))
                .err();
        }
        // Closes the queue, so that a reader still sending stops, before waiting for it.
        drop(merge);
        let quarantine = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match failed {
            Some(e) => Err(e),
            None => pins.and(quarantine).map_err(store_error),
        }
    })
}

/// The awaited pins the filters select, in the store's endpoint order: none under
/// --expiring-within (they have no dates), under --quarantined those of endpoints with
/// quarantined certificates. Few (each is an operator's command), so read at once.
fn awaited_listed(store: &Store, filter: &Filter) -> Result<Vec<AwaitedPin>, tofu_core::Error> {
    let mut awaited = Vec::new();
    if filter.deadline.is_some() {
        return Ok(awaited);
    }
    store.for_each_awaited(|a| {
        awaited.push(a);
        ControlFlow::Continue(())
    })?;
    if filter.only_quarantined && !awaited.is_empty() {
        let mut with_quarantine = HashSet::new();
        store.for_each_quarantined(|q| {
            with_quarantine.insert(q.endpoint);
            ControlFlow::Continue(())
        })?;
        awaited.retain(|a| with_quarantine.contains(&a.endpoint));
    }
    Ok(awaited)
}

/// The awaited pins not yet listed, with their endpoint as text, in the order of that text.
struct Awaited(Peekable<std::vec::IntoIter<(String, AwaitedPin)>>);

impl Awaited {
    /// Hands the sink the awaited pins of the endpoints before `until` (all when `None`):
    /// called before each pin, it lists an endpoint's awaited pins after its other pins.
    fn before(&mut self, until: Option<&Endpoint>, sink: &mut impl Sink) -> Result<(), CliError> {
        if self.0.peek().is_none() {
            return Ok(());
        }
        let until = until.map(Endpoint::to_string);
        while let Some((_, a)) = self
            .0
            .next_if(|(e, _)| until.as_deref().is_none_or(|u| e.as_str() < u))
        {
            sink.awaited(&a)?;
        }
        Ok(())
    }
}

/// The state of [`walk`]'s merge of pins and quarantined certificates.
struct Merge<'a, S> {
    /// Quarantined certificates not yet merged, with their endpoint as text, in the order of
    /// that text (as the store orders them).
    queue: Peekable<mpsc::IntoIter<(String, Quarantined)>>,
    awaited: Awaited,
    /// The endpoint whose pins are being listed.
    current: Option<Current>,
    filter: &'a Filter,
    sink: &'a mut S,
}

struct Current {
    endpoint: Endpoint,
    /// `endpoint` as text, the store's sort key.
    text: String,
    /// Whether it has quarantined certificates.
    quarantined: bool,
    /// Whether any of its pins was listed.
    listed: bool,
}

impl<S: Sink> Merge<'_, S> {
    fn pin(&mut self, pin: &Pin) -> Result<(), CliError> {
        self.awaited.before(Some(&pin.endpoint), self.sink)?;
        if self.queue.peek().is_none() {
            // No quarantined certificate is left to merge (the usual case, soon): no endpoint
            // from here on has any.
            if self.filter.expiring(pin) && !self.filter.only_quarantined {
                self.sink.pin(pin)?;
            }
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.endpoint != pin.endpoint)
        {
            let text = pin.endpoint.to_string();
            // Those of the previous endpoint, and of unpinned endpoints before this one.
            self.quarantined_before(Some(&text))?;
            let quarantined = self.queue.peek().is_some_and(|(e, _)| *e == text);
            self.current = Some(Current {
                endpoint: pin.endpoint.clone(),
                text,
                quarantined,
                listed: false,
            });
        }
        let current = self.current.as_mut().expect("set just above");
        if self.filter.expiring(pin) && (current.quarantined || !self.filter.only_quarantined) {
            current.listed = true;
            self.sink.pin(pin)?;
        }
        Ok(())
    }

    /// Hands the sink the quarantined certificates of the endpoints before `until` (all of
    /// them when `None`), those it shows.
    fn quarantined_before(&mut self, until: Option<&str>) -> Result<(), CliError> {
        let before = |(endpoint, _): &(String, Quarantined)| {
            until.is_none_or(|until| endpoint.as_str() < until)
        };
        while let Some((endpoint, q)) = self.queue.next_if(before) {
            let listed = self
                .current
                .as_ref()
                .is_some_and(|c| c.listed && c.text == endpoint);
            if self.filter.deadline.is_none() || listed {
                self.sink.quarantined(&q)?;
            }
        }
        Ok(())
    }
}

/// `host=10.1.1.1_8082;  subject= /C=US/…`, byte for byte as Prime prints it.
struct Prime<'a> {
    out: &'a mut Out,
}

impl Sink for Prime<'_> {
    fn wants_quarantined(&self) -> bool {
        false
    }

    fn pin(&mut self, pin: &Pin) -> Result<(), CliError> {
        writeln!(
            self.out,
            "host={};  subject= {}",
            pin.endpoint.host_port(),
            name(&pin.details.subject)
        )?;
        Ok(())
    }

    fn awaited(&mut self, a: &AwaitedPin) -> Result<(), CliError> {
        writeln!(
            self.out,
            "host={};  subject= (awaited: no certificate yet, {})",
            a.endpoint.host_port(),
            awaited_what(a)
        )?;
        Ok(())
    }

    fn quarantined(&mut self, _: &Quarantined) -> Result<(), CliError> {
        Ok(())
    }
}

/// What an awaited pin waits for, in words: `SHA256:…`, or `key SHA256:…`.
pub(crate) fn awaited_what(a: &AwaitedPin) -> String {
    match a.matches {
        PinMatch::Certificate => a.fingerprint.to_string(),
        PinMatch::Key => format!("key {}", a.fingerprint),
    }
}

/// The table's state of an awaited pin.
pub(crate) fn awaited_state(a: &AwaitedPin) -> &'static str {
    match a.state {
        PinState::Active => "awaited",
        PinState::Next => "awaited-next",
    }
}

fn days_left(now: Timestamp, not_after: Timestamp) -> i64 {
    now.days_until(not_after)
}

const COLUMNS: usize = 12;

const HEADER: [&str; COLUMNS] = [
    "ENDPOINT",
    "STATE",
    "FINGERPRINT",
    "NOT AFTER",
    "DAYS",
    "FIRST SEEN",
    "LAST SEEN",
    "SEEN",
    "SOURCE",
    // What the pin matches: the exact certificate, or its public key (renewals match). After
    // the columns scripts already read by position.
    "MATCH",
    "SUBJECT",
    // Last: a label is free text, so whatever it holds shifts no other column.
    "LABEL",
];

/// How many rows the table holds back to size its columns; the rest are printed as they come.
const TABLE_SIZING_ROWS: usize = 1000;

/// `--format table`: the first rows are held back until the columns can be sized from them
/// (or the listing ends), then every row is printed as it comes. A cell wider than its column
/// further down pushes the rest of its row to the right.
struct Table<'a> {
    out: &'a mut Out,
    now: Timestamp,
    /// The rows held back, until `widths` is known.
    held: Vec<[String; COLUMNS]>,
    widths: Option<[usize; COLUMNS]>,
}

impl<'a> Table<'a> {
    fn new(out: &'a mut Out, now: Timestamp) -> Self {
        Self {
            out,
            now,
            held: Vec::new(),
            widths: None,
        }
    }

    fn row(&mut self, row: [String; COLUMNS]) -> Result<(), CliError> {
        match self.widths {
            Some(widths) => self.print(&widths, &row),
            None => {
                self.held.push(row);
                if self.held.len() >= TABLE_SIZING_ROWS {
                    self.release()?;
                }
                Ok(())
            }
        }
    }

    /// Sizes the columns from the rows held back, and prints the header and those rows.
    fn release(&mut self) -> Result<(), CliError> {
        let mut widths = HEADER.map(str::len);
        for row in &self.held {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        self.widths = Some(widths);
        let line = line(
            self.out.colour(),
            &widths,
            HEADER,
            [Some(Style::Bold); COLUMNS],
        );
        writeln!(self.out, "{line}")?;
        for row in std::mem::take(&mut self.held) {
            self.print(&widths, &row)?;
        }
        Ok(())
    }

    fn print(
        &mut self,
        widths: &[usize; COLUMNS],
        row: &[String; COLUMNS],
    ) -> Result<(), CliError> {
        let mut styles = [None; COLUMNS];
        styles[1] = match row[1].as_str() {
            "quarantined" => Some(Style::Red),
            "awaited" | "awaited-next" => Some(Style::Yellow),
            "staged" => Some(Style::Yellow),
            _ => None,
        };
        let days: i64 = row[4].parse().unwrap_or(0);
        styles[4] = if days < 0 {
            Some(Style::Red)
        } else if days < 30 {
            Some(Style::Yellow)
        } else {
            None
        };
        let text = line(
            self.out.colour(),
            widths,
            row.each_ref().map(String::as_str),
            styles,
        );
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    /// Prints what is still held back (the header, at least).
    fn finish(mut self) -> Result<(), CliError> {
        if self.widths.is_none() {
            self.release()?;
        }
        Ok(())
    }
}

/// One table line: each cell padded to its column's width plus two spaces (at least two
/// spaces when it is wider), the last one not padded. Widths are display columns, as a
/// terminal shows them: a CJK character or an emoji takes two, a combining mark none.
fn line(
    colour: bool,
    widths: &[usize; COLUMNS],
    cells: [&str; COLUMNS],
    styles: [Option<Style>; COLUMNS],
) -> String {
    let mut s = String::new();
    for (i, cell) in cells.iter().enumerate() {
        match styles[i] {
            Some(style) => s.push_str(&paint(colour, style, cell)),
            None => s.push_str(cell),
        }
        if i < COLUMNS - 1 {
            let pad = widths[i].saturating_sub(cell.width()) + 2;
            s.extend(std::iter::repeat_n(' ', pad));
        }
    }
    s.truncate(s.trim_end().len());
    s
}

impl Sink for Table<'_> {
    fn wants_quarantined(&self) -> bool {
        true
    }

    fn pin(&mut self, p: &Pin) -> Result<(), CliError> {
        let never = || "-".to_owned();
        let now = self.now;
        self.row([
            p.endpoint.to_string(),
            state_name(p.state).to_owned(),
            p.details.fingerprint.to_string(),
            date(p.details.not_after),
            days_left(now, p.details.not_after).to_string(),
            p.first_seen.map_or_else(never, date),
            p.last_seen.map_or_else(never, date),
            p.times_seen.to_string(),
            p.source.to_string(),
            p.matches.to_string(),
            readable_name(&p.details.subject),
            p.label.as_deref().map_or_else(never, printable),
        ])
    }

    fn awaited(&mut self, a: &AwaitedPin) -> Result<(), CliError> {
        let never = || "-".to_owned();
        self.row([
            a.endpoint.to_string(),
            awaited_state(a).to_owned(),
            a.fingerprint.to_string(),
            never(),
            never(),
            never(),
            never(),
            "0".to_owned(),
            a.source.to_string(),
            a.matches.to_string(),
            "(no certificate yet)".to_owned(),
            a.label.as_deref().map_or_else(never, printable),
        ])
    }

    fn quarantined(&mut self, q: &Quarantined) -> Result<(), CliError> {
        let now = self.now;
        self.row([
            q.endpoint.to_string(),
            "quarantined".to_owned(),
            q.details.fingerprint.to_string(),
            date(q.details.not_after),
            days_left(now, q.details.not_after).to_string(),
            date(q.first_seen),
            date(q.last_seen),
            q.times_seen.to_string(),
            "-".to_owned(),
            "-".to_owned(),
            readable_name(&q.details.subject),
            "-".to_owned(),
        ])
    }
}

// `--format json`: the document of schema version 1 (in the README), written as it goes:
//
//     {
//       "version": 1,
//       "pins": [ …one object per pin, as they stream… ],
//       "quarantined": [ …one object per quarantined certificate… ]
//     }
//
// laid out exactly as serde_json's pretty printer lays out the whole document.

/// A JSON array (a member of the top-level object) written one element at a time.
struct JsonArray {
    empty: bool,
    /// One element, pretty-printed, before it is indented into the document.
    buf: Vec<u8>,
}

impl JsonArray {
    fn open(out: &mut Out, name: &str) -> Result<Self, CliError> {
        write!(out, "  \"{name}\": [")?;
        Ok(Self {
            empty: true,
            buf: Vec::new(),
        })
    }

    fn element(&mut self, out: &mut Out, value: &impl serde::Serialize) -> Result<(), CliError> {
        self.buf.clear();
        crate::output::to_json_writer(&mut self.buf, value, true)
            .map_err(|e| CliError::failure(format!("cannot write JSON: {e}")))?;
        out.write_all(if self.empty { b"\n    " } else { b",\n    " })?;
        self.empty = false;
        // Strings are escaped, so every newline is the pretty printer's: indent each line.
        let mut lines = self.buf.split(|&b| b == b'\n');
        if let Some(first) = lines.next() {
            out.write_all(first)?;
        }
        for line in lines {
            out.write_all(b"\n    ")?;
            out.write_all(line)?;
        }
        Ok(())
    }

    fn close(self, out: &mut Out) -> Result<(), CliError> {
        out.write_all(if self.empty { b"]" } else { b"\n  ]" })?;
        Ok(())
    }
}

/// The pins of the JSON document, as they stream.
struct JsonPins<'a> {
    out: &'a mut Out,
    now: Timestamp,
    array: JsonArray,
    /// Whether quarantined certificates are shown only for the endpoints listed
    /// (`--expiring-within`), and if so, those endpoints among the ones that have some.
    narrowed: bool,
    listed_with_quarantine: HashSet<Endpoint>,
}

impl Sink for JsonPins<'_> {
    fn wants_quarantined(&self) -> bool {
        self.narrowed
    }

    fn pin(&mut self, pin: &Pin) -> Result<(), CliError> {
        self.array
            .element(self.out, &crate::json::pin(pin, self.now))
    }

    fn awaited(&mut self, _: &AwaitedPin) -> Result<(), CliError> {
        // In the document's own `awaited` array, written after the walk.
        Ok(())
    }

    fn quarantined(&mut self, q: &Quarantined) -> Result<(), CliError> {
        if self.narrowed {
            self.listed_with_quarantine.insert(q.endpoint.clone());
        }
        Ok(())
    }
}

/// Writes the JSON document: the pins as they stream, then the quarantined certificates, read
/// in a second pass (a second read transaction, as the pins and the quarantine always were).
/// With --expiring-within, those are the ones of the endpoints listed, which the first pass
/// noted (only endpoints that have quarantined certificates are remembered).
fn json(
    ctx: &Context,
    store: &Store,
    filter: &Filter,
    out: &mut Out,
    now: Timestamp,
) -> Result<(), CliError> {
    out.write_all(b"{\n  \"version\": 1,\n")?;
    let mut pins = JsonPins {
        array: JsonArray::open(out, "pins")?,
        out,
        now,
        narrowed: filter.deadline.is_some(),
        listed_with_quarantine: HashSet::new(),
    };
    walk(ctx, store, filter, &mut pins)?;
    let JsonPins {
        out,
        array,
        narrowed,
        listed_with_quarantine,
        ..
    } = pins;
    array.close(out)?;
    out.write_all(b",\n")?;

    let mut array = JsonArray::open(out, "quarantined")?;
    let mut failed = None;
    store
        .for_each_quarantined(|q| {
            if narrowed && !listed_with_quarantine.contains(&q.endpoint) {
                return ControlFlow::Continue(());
            }
            array
                .element(out, &crate::json::quarantined(&q, now))
                .map_or_else(
                    |e| {
                        failed = Some(e);
                        ControlFlow::Break(())
                    },
                    ControlFlow::Continue,
                )
        })
        .map_err(|e| CliError::store(&e, ctx))?;
    if let Some(e) = failed {
        return Err(e);
    }
    array.close(out)?;
    out.write_all(b",\n")?;

    // Pins from a fingerprint, not yet presented: no certificate, so not among `pins`,
    // whose every object has one.
    let mut array = JsonArray::open(out, "awaited")?;
    for a in awaited_listed(store, filter).map_err(|e| CliError::store(&e, ctx))? {
        array.element(out, &crate::json::awaited(&a))?;
    }
    array.close(out)?;
    out.write_all(b"\n}\n")?;
    Ok(())
}
