//! Offline hunting: read log files, recognise each event's source, run the rules, report hits
//! with a pointer to each event and every input that could not be used.
//!
//! Files are streamed: JSON lines one line at a time, a JSON document (`{"Records": [...]}`,
//! an array) one element at a time, gzip decompressed on the way. Memory does not grow with
//! the size of a file, only with the size of its largest event (and of an `EventList` or an
//! object that is not a container, which is read whole).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Deserialize;
use serde::Serialize;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tenet_finding::{Location, Severity, Skipped};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::engine::{Engine, Match};
use crate::rules::RuleSet;
use crate::source::Source;

/// Largest input read, after decompression. Reading stops with an error when a file grows
/// past it, so a compression bomb costs at most this much decompression, never memory.
const MAX_INPUT_BYTES: u64 = 1 << 30;
/// Longest line that is not JSON skipped to find the next line; past it the file is given up
/// (a binary file, or a bomb of zeros, has no lines worth looking for).
const MAX_BAD_LINE_BYTES: u64 = 16 << 20;
/// Lines that are not JSON listed one by one per file; the rest are counted in one entry.
const MAX_LISTED_BAD_LINES: usize = 100;
/// Lines that are not JSON before a file without a single JSON value is given up.
const MAX_BAD_LINES_BEFORE_ANY_VALUE: usize = 1_000;
/// Nesting depth of JSON the parser accepts (serde_json's recursion limit).
pub const MAX_JSON_DEPTH: usize = 128;

/// Where an event is: the file, and a line (JSON lines) or a JSON pointer (documents).
pub type EventPointer = Location;

/// One rule firing on one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The rule's id (or name, or title).
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The rule's level.
    pub level: Option<Severity>,
    /// ATT&CK tags (`attack.*`).
    pub attack: Vec<String>,
    /// A correlation rule fired; the pointer names the event that completed it.
    pub correlation: bool,
    /// The source the event was recognised as.
    pub source: Source,
    /// The event.
    pub event: EventPointer,
}

/// What a hunt found and what it could not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HuntReport {
    /// Hits in input order.
    pub hits: Vec<Hit>,
    /// Files, lines or events that were not evaluated, with the reason.
    pub skipped: Vec<Skipped>,
    /// Events evaluated, per source.
    pub events: BTreeMap<Source, usize>,
}

impl HuntReport {
    /// Total events evaluated.
    pub fn event_count(&self) -> usize {
        self.events.values().sum()
    }
}

/// How far a hunt is, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HuntProgress {
    /// Bytes of the input files read so far (as stored, before decompression).
    pub bytes_read: u64,
    /// Size of all input files together (as stored).
    pub bytes_total: u64,
    /// Events read so far (evaluated or not recognised).
    pub events: u64,
}

/// The input path that stands for standard input.
pub const STDIN_PATH: &str = "-";

/// How an input is named in hit locations and skipped entries: its path, or `stdin` for
/// [`STDIN_PATH`].
pub fn input_name(path: &Path) -> String {
    if path == Path::new(STDIN_PATH) {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Runs `rules` over the events in `paths` (files, or folders searched recursively; `-` for
/// standard input), in order.
/// Reads CloudTrail (`{"Records": [...]}` or JSON lines), Kubernetes audit (JSON lines or an
/// `EventList`), Okta System Log (a JSON array or lines) and Tenet ledger exports (JSON lines,
/// plain or `{"index", "leaf_hash", "event"}`), each optionally gzip-compressed, with or
/// without a UTF-8 byte order mark. Correlation windows run on the events' own timestamps.
pub fn hunt(rules: &RuleSet, paths: &[PathBuf]) -> HuntReport {
    hunt_with_progress(rules, paths, &mut |_| {})
}

/// [`hunt`], calling `progress` after every event read.
pub fn hunt_with_progress(
    rules: &RuleSet,
    paths: &[PathBuf],
    progress: &mut dyn FnMut(HuntProgress),
) -> HuntReport {
    let engine = Engine::new(rules.clone());
    let mut report = HuntReport::default();
    for problem in engine.problems() {
        report
            .skipped
            .push(Skipped::new(problem.file.clone(), problem.to_string()));
    }
    let mut files = Vec::new();
    for path in paths {
        collect_inputs(path, &mut files, &mut report.skipped);
    }
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    let mut hunter = Hunter {
        engine,
        clock_ms: 0,
        report,
        progress,
        state: HuntProgress {
            bytes_total: sizes.iter().sum(),
            ..HuntProgress::default()
        },
        done_bytes: 0,
        file_bytes: Rc::new(Cell::new(0)),
        first: None,
    };
    for (file, size) in files.iter().zip(sizes) {
        hunter.file_bytes.set(0);
        hunter.read_file(file);
        hunter.done_bytes = hunter.done_bytes.saturating_add(size);
        hunter.state.bytes_read = hunter.done_bytes;
        (hunter.progress)(hunter.state);
    }
    hunter.report
}

/// The state of a hunt across files.
struct Hunter<'p> {
    engine: Engine,
    clock_ms: i64,
    report: HuntReport,
    progress: &'p mut dyn FnMut(HuntProgress),
    state: HuntProgress,
    /// Bytes of the files before the current one.
    done_bytes: u64,
    /// Bytes of the current file read so far (shared with its reader).
    file_bytes: Rc<Cell<u64>>,
    /// While the first JSON value of a file is read: what it produced, so that its
    /// locations get a line number once a second value shows the file is JSON lines.
    first: Option<FirstValue>,
}

/// What the first value of a file produced.
struct FirstValue {
    /// Index of its first hit in the report.
    hits_from: usize,
    /// Its events that were not recognised.
    unknown: Vec<Location>,
}

/// How reading one JSON value ended.
enum ValueEnd {
    /// Read whole.
    Done,
    /// Not JSON; `lines` is how many lines the parser read before it gave up.
    Bad { message: String, lines: u64 },
    /// The input failed (unreadable, corrupt or truncated gzip, too large).
    Failed(String),
}

/// What is known about the file being read.
struct FileState {
    name: String,
    /// Events read before this file.
    events_before: u64,
    /// JSON values read whole.
    values: usize,
    /// The line the first value starts on.
    first_line: u32,
    /// Lines that are not JSON.
    bad_lines: usize,
    /// The first of them, listed.
    bad: Vec<Skipped>,
    /// The reason of the first, for a file with no value at all.
    first_bad: Option<String>,
}

impl FileState {
    fn bad_line(&mut self, line: u32, reason: String) {
        self.bad_lines += 1;
        if self.bad.len() < MAX_LISTED_BAD_LINES {
            self.bad.push(Skipped::new(
                Location::file(&self.name).with_line(line).to_string(),
                reason.clone(),
            ));
        }
        self.first_bad.get_or_insert(reason);
    }
}

fn at(base: &Location, pointer: String) -> Location {
    if pointer.is_empty() {
        base.clone()
    } else {
        base.clone().with_pointer(pointer)
    }
}

fn too_long() -> String {
    format!("a line longer than {MAX_BAD_LINE_BYTES} bytes is not JSON")
}

/// serde_json's message, with its recursion limit said as what it means.
fn parse_message(e: &serde_json::Error) -> String {
    if e.to_string().starts_with("recursion limit exceeded") {
        format!(
            "nested deeper than {MAX_JSON_DEPTH} levels, the most Tenet reads (line {} column {})",
            e.line(),
            e.column()
        )
    } else {
        e.to_string()
    }
}

impl Hunter<'_> {
    fn read_file(&mut self, path: &Path) {
        let name = input_name(path);
        let file: std::io::Result<Box<dyn Read>> = if path == Path::new(STDIN_PATH) {
            Ok(Box::new(std::io::stdin().lock()))
        } else {
            std::fs::File::open(path).map(|f| Box::new(f) as Box<dyn Read>)
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                return self
                    .report
                    .skipped
                    .push(Skipped::new(name, format!("unreadable: {e}")));
            }
        };
        let mut raw = BufReader::new(Counted {
            inner: file,
            count: self.file_bytes.clone(),
        });
        let gzip = match raw.fill_buf() {
            Ok(head) => head.starts_with(&[0x1f, 0x8b]),
            Err(e) => {
                return self
                    .report
                    .skipped
                    .push(Skipped::new(name, format!("unreadable: {e}")));
            }
        };
        let decoded: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else {
            Box::new(raw)
        };
        let too_large = Rc::new(Cell::new(false));
        let capped = Capped {
            inner: decoded,
            left: MAX_INPUT_BYTES,
            exceeded: too_large.clone(),
        };
        let mut input = Input {
            inner: BufReader::with_capacity(1 << 16, capped),
            newlines: 0,
            recording: None,
        };
        let failure = |e: &dyn fmt::Display, events: u64| {
            let read = if events == 0 {
                String::new()
            } else {
                format!(" after {events} event(s)")
            };
            if too_large.get() {
                format!(
                    "larger than {MAX_INPUT_BYTES} bytes{}; reading stopped{read}",
                    if gzip { " after decompression" } else { "" }
                )
            } else if gzip {
                format!("bad or truncated gzip data{read}: {e}")
            } else {
                format!("unreadable{read}: {e}")
            }
        };
        self.read_values(&name, &mut input, &failure);
    }

    /// Reads the JSON values of one file: one document (streamed), or JSON lines (one line at
    /// a time).
    fn read_values(
        &mut self,
        name: &str,
        input: &mut Input<impl BufRead>,
        failure: &dyn Fn(&dyn fmt::Display, u64) -> String,
    ) {
        let mut file = FileState {
            name: name.to_owned(),
            events_before: self.state.events,
            values: 0,
            first_line: 1,
            bad_lines: 0,
            bad: Vec::new(),
            first_bad: None,
        };
        let gave_up = self.read_all(&mut file, input, failure);
        if file.values == 1 {
            self.settle_first(name, None);
        }
        self.first = None;
        if file.values == 0 && file.bad_lines > 0 {
            // Not JSON at all: one entry for the file rather than one per line.
            let reason = match file.first_bad {
                Some(r) if r.contains("nested deeper") => r,
                _ => "neither a JSON document nor JSON lines".to_owned(),
            };
            self.report.skipped.push(Skipped::new(name, reason));
        } else {
            let more = file.bad_lines.saturating_sub(file.bad.len());
            self.report.skipped.append(&mut file.bad);
            if more > 0 {
                self.report.skipped.push(Skipped::new(
                    name,
                    format!("{more} more line(s) that are not JSON"),
                ));
            }
        }
        match gave_up {
            Some(reason) => self.report.skipped.push(Skipped::new(name, reason)),
            None if file.values == 0 && file.bad_lines == 0 => {
                self.report.skipped.push(Skipped::new(name, "empty file"));
            }
            None => {}
        }
    }

    /// Reads the file; `Some(reason)` when reading had to stop before its end.
    fn read_all(
        &mut self,
        file: &mut FileState,
        input: &mut Input<impl BufRead>,
        failure: &dyn Fn(&dyn fmt::Display, u64) -> String,
    ) -> Option<String> {
        let events = |h: &Self, f: &FileState| h.state.events - f.events_before;
        if let Err(e) = input.skip_bom() {
            return Some(failure(&e, 0));
        }
        match input.skip_whitespace() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(failure(&e, 0)),
        }
        // The first value is streamed: it may be a whole document.
        file.first_line = input.line();
        self.first = Some(FirstValue {
            hits_from: self.report.hits.len(),
            unknown: Vec::new(),
        });
        input.recording = Some(Vec::new());
        let end = self.read_value(input, &Location::file(&file.name));
        let recorded = input.recording.take();
        match end {
            ValueEnd::Done => file.values = 1,
            ValueEnd::Failed(e) => return Some(failure(&e, events(self, file))),
            ValueEnd::Bad { message, .. } if events(self, file) > 0 => {
                // A document that went wrong part of the way: its events so far were
                // evaluated, the rest cannot be found.
                file.values = 1;
                return Some(format!(
                    "not valid JSON after {} event(s): {message}",
                    events(self, file)
                ));
            }
            ValueEnd::Bad { message, lines } => {
                self.first = None;
                match recorded {
                    // Each line the parser read is judged on its own, as JSON lines.
                    Some(mut bytes) => match input.read_line(&mut bytes, MAX_BAD_LINE_BYTES) {
                        Ok(LineEnd::Line | LineEnd::Eof) => {
                            let mut line = file.first_line;
                            for text in bytes.split(|&b| b == b'\n') {
                                self.read_line_value(file, line, text);
                                line = line.saturating_add(1);
                            }
                        }
                        Ok(LineEnd::TooLong) => return Some(too_long()),
                        Err(e) => return Some(failure(&e, events(self, file))),
                    },
                    None => {
                        let last = file.first_line.saturating_add(
                            u32::try_from(lines.saturating_sub(1)).unwrap_or(u32::MAX),
                        );
                        file.bad_line(
                            file.first_line,
                            format!("not JSON (through line {last}): {message}"),
                        );
                        match input.skip_line(MAX_BAD_LINE_BYTES) {
                            Ok(true) => {}
                            Ok(false) => return Some(too_long()),
                            Err(e) => return Some(failure(&e, events(self, file))),
                        }
                    }
                }
            }
        }
        // The rest, one line at a time.
        let mut buf = Vec::new();
        loop {
            if file.values == 0 && file.bad_lines >= MAX_BAD_LINES_BEFORE_ANY_VALUE {
                return None;
            }
            let line = input.line();
            buf.clear();
            match input.read_line(&mut buf, MAX_BAD_LINE_BYTES) {
                Ok(LineEnd::Eof) => return None,
                Ok(LineEnd::Line) => self.read_line_value(file, line, &buf),
                Ok(LineEnd::TooLong) => return Some(too_long()),
                Err(e) => return Some(failure(&e, events(self, file))),
            }
        }
    }

    /// One line of JSON lines.
    fn read_line_value(&mut self, file: &mut FileState, line: u32, text: &[u8]) {
        let text = text.trim_ascii();
        if text.is_empty() {
            return;
        }
        if file.values == 1 {
            // A second value: the file is JSON lines, so the first one gets its line.
            self.settle_first(&file.name, Some(file.first_line));
        }
        let base = Location::file(&file.name).with_line(line);
        let result = {
            let mut de = serde_json::Deserializer::from_slice(text);
            let mut sink = |value: Value, pointer: String| self.evaluate(value, at(&base, pointer));
            Top { sink: &mut sink }
                .deserialize(&mut de)
                .and_then(|()| de.end())
        };
        match result {
            Ok(()) => file.values += 1,
            Err(e) => file.bad_line(line, format!("not JSON: {}", parse_message(&e))),
        }
    }

    /// Gives the first value's hits and unrecognised events their line, when the file turned
    /// out to be JSON lines (`Some`), and lists the unrecognised ones.
    fn settle_first(&mut self, name: &str, line: Option<u32>) {
        let Some(first) = self.first.take() else {
            return;
        };
        if let Some(line) = line {
            for hit in self.report.hits.iter_mut().skip(first.hits_from) {
                if hit.event.file == name {
                    hit.event.line = Some(line);
                }
            }
        }
        for mut at in first.unknown {
            at.line = line.or(at.line);
            self.report
                .skipped
                .push(Skipped::new(at.to_string(), UNRECOGNISED));
        }
    }

    /// Reads one JSON value from `input`, evaluating its events as they are parsed.
    fn read_value(&mut self, input: &mut Input<impl BufRead>, base: &Location) -> ValueEnd {
        let start = input.newlines;
        let result = {
            let mut de = serde_json::Deserializer::from_reader(&mut *input);
            let mut sink = |value: Value, pointer: String| self.evaluate(value, at(base, pointer));
            Top { sink: &mut sink }.deserialize(&mut de)
        };
        match result {
            Ok(()) => ValueEnd::Done,
            Err(e) if e.is_io() => ValueEnd::Failed(std::io::Error::from(e).to_string()),
            Err(e) => ValueEnd::Bad {
                message: parse_message(&e),
                lines: input.newlines.saturating_sub(start).saturating_add(1),
            },
        }
    }
    fn evaluate(&mut self, value: Value, at: Location) {
        self.state.events += 1;
        self.state.bytes_read = self.done_bytes.saturating_add(self.file_bytes.get());
        (self.progress)(self.state);
        let source = Source::recognise(&value);
        if source == Source::Unknown {
            match &mut self.first {
                Some(first) => first.unknown.push(at),
                None => self
                    .report
                    .skipped
                    .push(Skipped::new(at.to_string(), UNRECOGNISED)),
            }
            return;
        }
        if let Some(ms) = event_time_ms(&value, source) {
            self.clock_ms = ms;
        }
        *self.report.events.entry(source).or_default() += 1;
        for m in self.engine.observe(&value, source, self.clock_ms) {
            self.report.hits.push(hit(m, source, at.clone()));
        }
    }
}

const UNRECOGNISED: &str =
    "not recognised as CloudTrail, Kubernetes audit, Okta, Tenet or Windows event";

fn hit(m: Match, source: Source, event: EventPointer) -> Hit {
    Hit {
        rule_id: m.rule_id,
        title: m.title,
        level: m.level,
        attack: m.attack,
        correlation: m.correlation,
        source,
        event,
    }
}

fn collect_inputs(path: &Path, out: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) {
    if path == Path::new(STDIN_PATH) {
        return out.push(path.to_owned());
    }
    let name = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => out.push(path.to_owned()),
        Ok(m) if m.is_dir() => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut children: Vec<PathBuf> = Vec::new();
                for entry in entries {
                    match entry {
                        Ok(e) => children.push(e.path()),
                        Err(e) => skipped.push(Skipped::new(&name, format!("unreadable: {e}"))),
                    }
                }
                children.sort();
                for child in children {
                    collect_inputs(&child, out, skipped);
                }
            }
            Err(e) => skipped.push(Skipped::new(name, format!("unreadable: {e}"))),
        },
        Ok(_) => skipped.push(Skipped::new(name, "not a regular file or folder")),
        Err(e) => skipped.push(Skipped::new(name, format!("unreadable: {e}"))),
    }
}

/// Counts the bytes read from a file, for progress.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

/// Fails the read once more than `left` bytes came through.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0_u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(std::io::Error::other(format!(
                "larger than {MAX_INPUT_BYTES} bytes"
            )));
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..room).unwrap_or_default())?;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// The decoded text of a file, with the lines consumed counted.
struct Input<R> {
    inner: R,
    newlines: u64,
    /// The bytes read through [`Read`] while recording, up to [`MAX_RECORDED_BYTES`]
    /// (`None` past it).
    recording: Option<Vec<u8>>,
}

/// Bytes of a first value kept to read them again as JSON lines if it is not one document.
const MAX_RECORDED_BYTES: usize = 1 << 20;

/// How reading a line ended.
#[derive(Debug, PartialEq, Eq)]
enum LineEnd {
    /// A line (possibly empty) was read.
    Line,
    /// Nothing was left.
    Eof,
    /// The line is longer than allowed.
    TooLong,
}

impl<R: BufRead> Input<R> {
    /// The 1-based line the next byte is on.
    fn line(&self) -> u32 {
        u32::try_from(self.newlines.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// Skips a UTF-8 byte order mark at the start.
    fn skip_bom(&mut self) -> std::io::Result<()> {
        let bom = [0xEF, 0xBB, 0xBF];
        if self.inner.fill_buf()?.starts_with(&bom) {
            self.inner.consume(bom.len());
        }
        Ok(())
    }

    /// Skips whitespace; `false` at the end of the input.
    fn skip_whitespace(&mut self) -> std::io::Result<bool> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let n = buf
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(buf.len());
            self.newlines += count_newlines(buf.get(..n).unwrap_or_default());
            let more = n < buf.len();
            self.inner.consume(n);
            if more {
                return Ok(true);
            }
        }
    }

    /// Appends the rest of the current line to `out`, without its line feed.
    fn read_line(&mut self, out: &mut Vec<u8>, max: u64) -> std::io::Result<LineEnd> {
        let mut read = 0_u64;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(if read == 0 {
                    LineEnd::Eof
                } else {
                    LineEnd::Line
                });
            }
            let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            read = read.saturating_add(n as u64);
            if read > max {
                return Ok(LineEnd::TooLong);
            }
            out.extend_from_slice(buf.get(..n).unwrap_or_default());
            if found {
                self.inner.consume(n + 1);
                self.newlines += 1;
                return Ok(LineEnd::Line);
            }
            self.inner.consume(n);
        }
    }

    /// Skips the rest of the current line; `false` when it is longer than `max` bytes.
    fn skip_line(&mut self, max: u64) -> std::io::Result<bool> {
        let mut skipped = 0_u64;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(true);
            }
            let (n, found) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            self.inner.consume(n);
            if found {
                self.newlines += 1;
                return Ok(true);
            }
            skipped = skipped.saturating_add(n as u64);
            if skipped > max {
                return Ok(false);
            }
        }
    }
}

impl<R: BufRead> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        self.newlines += count_newlines(read);
        if let Some(recorded) = &mut self.recording {
            if recorded.len() + n > MAX_RECORDED_BYTES {
                self.recording = None;
            } else {
                recorded.extend_from_slice(read);
            }
        }
        Ok(n)
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where each event of a value goes, with its JSON pointer (`""` for the value itself).
type Sink<'s> = &'s mut dyn FnMut(Value, String);

/// A top-level JSON value, streamed: the elements of an array and of a `Records` array are
/// handed over one at a time; any other value is read whole and unwrapped by [`expand`].
struct Top<'s> {
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        stream_elements(seq, "", self.sink)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut kept = serde_json::Map::new();
        let mut streamed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" && !streamed {
                match map.next_value_seed(Records {
                    sink: &mut *self.sink,
                })? {
                    None => streamed = true,
                    Some(other) => {
                        kept.insert(key, other);
                    }
                }
            } else {
                let value: Value = map.next_value()?;
                if !streamed {
                    kept.insert(key, value);
                }
            }
        }
        if !streamed {
            expand(Value::Object(kept), "", self.sink);
        }
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        (self.sink)(Value::Bool(v), String::new());
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        (self.sink)(Value::from(v), String::new());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        (self.sink)(Value::from(v), String::new());
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        (self.sink)(Value::from(v), String::new());
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        (self.sink)(Value::from(v), String::new());
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        (self.sink)(Value::Null, String::new());
        Ok(())
    }
}

/// Each element of an array, unwrapped, at `{prefix}/{index}`.
fn stream_elements<'de, A: SeqAccess<'de>>(
    mut seq: A,
    prefix: &str,
    sink: Sink<'_>,
) -> Result<(), A::Error> {
    let mut i = 0_usize;
    while let Some(element) = seq.next_element::<Value>()? {
        expand(element, &format!("{prefix}/{i}"), sink);
        i += 1;
    }
    Ok(())
}

/// The value of a top-level `Records` key: streamed when it is an array (`None`), else
/// returned to be kept with the object.
struct Records<'s> {
    sink: Sink<'s>,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        stream_elements(seq, "/Records", self.sink).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }
}

/// Unwraps containers into events, handing each to `sink` with its JSON pointer.
fn expand(value: Value, pointer: &str, sink: Sink<'_>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                expand(item, &format!("{pointer}/{i}"), sink);
            }
        }
        Value::Object(mut map) => {
            if let Some(Value::Array(records)) = map.remove("Records") {
                return expand(Value::Array(records), &format!("{pointer}/Records"), sink);
            }
            if map.get("kind").and_then(Value::as_str) == Some("EventList")
                && let Some(items @ Value::Array(_)) = map.remove("items")
            {
                return expand(items, &format!("{pointer}/items"), sink);
            }
            if map.contains_key("leaf_hash")
                && let Some(event) = map.remove("event")
            {
                return expand(event, &format!("{pointer}/event"), sink);
            }
            sink(Value::Object(map), pointer.to_owned());
        }
        other => sink(other, pointer.to_owned()),
    }
}

/// The event's own time, in milliseconds since the epoch.
fn event_time_ms(event: &Value, source: Source) -> Option<i64> {
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| event.pointer(k).and_then(Value::as_str))
    };
    let rfc3339 = match source {
        Source::Tenet => return event.get("time").and_then(Value::as_i64),
        Source::CloudTrail => text(&["/eventTime", "/eventtime"]),
        Source::KubernetesAudit => text(&["/requestReceivedTimestamp", "/stageTimestamp"]),
        Source::Okta => text(&["/published"]),
        Source::Windows => text(&["/Event/System/TimeCreated/#attributes/SystemTime"]),
        Source::Unknown => None,
    }?;
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const RULE: &str = r#"
title: Bucket policy changed
id: ct-bucket-policy
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: s3.amazonaws.com, eventName: PutBucketPolicy}
  filter: {errorCode|exists: true}
  condition: sel and not filter
level: medium
tags: [attack.impact]
"#;

    fn ct(name: &str) -> Value {
        serde_json::json!({"eventVersion": "1.08", "eventSource": "s3.amazonaws.com",
            "eventName": name, "awsRegion": "us-east-1", "eventTime": "2024-01-01T00:00:00Z"})
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn hunt_bytes(name: &str, bytes: &[u8]) -> (HuntReport, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let report = hunt(
            &RuleSet::from_yaml("r.yml", RULE),
            std::slice::from_ref(&path),
        );
        (report, path.display().to_string())
    }

    fn reasons(report: &HuntReport) -> Vec<String> {
        report
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.input, s.reason))
            .collect()
    }

    #[test]
    fn reads_records_lines_gzip_and_reports_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let records = serde_json::json!({"Records": [ct("GetObject"), ct("PutBucketPolicy")]});
        std::fs::write(dir.path().join("a.json"), records.to_string()).unwrap();

        let lines = format!(
            "{}\n{{broken\n{}\n",
            ct("PutBucketPolicy"),
            ct("ListBuckets")
        );
        std::fs::write(dir.path().join("b.jsonl.gz"), gzip(lines.as_bytes())).unwrap();

        std::fs::write(dir.path().join("c.txt"), "hello\nworld\n").unwrap();
        std::fs::write(dir.path().join("d.json"), r#"[{"x": 1}]"#).unwrap();
        let pretty = serde_json::to_string_pretty(&records).unwrap();
        std::fs::write(dir.path().join("e.json"), pretty).unwrap();

        let set = RuleSet::from_yaml("r.yml", RULE);
        let report = hunt(&set, &[dir.path().to_owned(), dir.path().join("missing")]);
        let hits: Vec<String> = report.hits.iter().map(|h| h.event.to_string()).collect();
        let a = dir.path().join("a.json").display().to_string();
        let b = dir.path().join("b.jsonl.gz").display().to_string();
        let e = dir.path().join("e.json").display().to_string();
        assert_eq!(
            hits,
            vec![
                format!("{a} /Records/1"),
                format!("{b}:1"),
                format!("{e} /Records/1")
            ]
        );
        assert_eq!(report.hits[0].attack, vec!["attack.impact"]);
        assert_eq!(report.event_count(), 6);

        let skipped: Vec<&str> = report.skipped.iter().map(|s| s.input.as_str()).collect();
        assert!(skipped.contains(&format!("{b}:2").as_str()), "{skipped:?}");
        assert!(skipped.iter().any(|s| s.ends_with("c.txt")), "{skipped:?}");
        assert!(
            skipped.iter().any(|s| s.ends_with("d.json /0")),
            "{skipped:?}"
        );
        assert!(
            skipped.iter().any(|s| s.ends_with("missing")),
            "{skipped:?}"
        );
        let c = report
            .skipped
            .iter()
            .find(|s| s.input.ends_with("c.txt"))
            .unwrap();
        assert_eq!(c.reason, "neither a JSON document nor JSON lines");
    }

    #[test]
    fn ledger_export_wrappers_and_event_lists_unwrap() {
        let text = "{\"index\":0,\"leaf_hash\":\"ab\",\"event\":{\"class_uid\":4002}}\n\
                    {\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{\"verb\":\"get\"}]}\n";
        let (report, name) = hunt_bytes("l.jsonl", text.as_bytes());
        assert_eq!(
            reasons(&report),
            vec![
                format!("{name}:1 /event: {UNRECOGNISED}"),
                format!("{name}:2 /items/0: {UNRECOGNISED}"),
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let records = serde_json::json!({"Records": [ct("PutBucketPolicy")]}).to_string();
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(records.as_bytes());
        let (report, name) = hunt_bytes("bom.json", &bytes);
        assert!(report.skipped.is_empty(), "{:?}", reasons(&report));
        assert_eq!(
            report.hits[0].event.to_string(),
            format!("{name} /Records/0")
        );
        let (report, _) = hunt_bytes("bom.json.gz", &gzip(&bytes));
        assert_eq!(report.hits.len(), 1, "{:?}", reasons(&report));
    }

    #[test]
    fn deep_nesting_is_reported_as_too_deep() {
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        let (report, name) = hunt_bytes("deep.json", deep.as_bytes());
        let all = reasons(&report);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with(&format!("{name}: not JSON: nested deeper than 128 levels")),
            "{all:?}"
        );
        // Among good lines, the deep one is listed with its line.
        let lines = format!("{}\n{deep}\n", ct("PutBucketPolicy"));
        let (report, name) = hunt_bytes("deep.jsonl", lines.as_bytes());
        assert_eq!(report.hits.len(), 1);
        assert!(
            reasons(&report)[0].starts_with(&format!("{name}:2: not JSON: nested deeper")),
            "{:?}",
            reasons(&report)
        );
    }

    #[test]
    fn a_truncated_gzip_yields_the_events_before_the_cut() {
        let mut lines = String::new();
        for _ in 0..2_000 {
            lines.push_str(&ct("PutBucketPolicy").to_string());
            lines.push('\n');
        }
        let whole = gzip(lines.as_bytes());
        let cut = &whole[..whole.len() / 2];
        let (report, name) = hunt_bytes("cut.jsonl.gz", cut);
        assert!(report.event_count() > 100, "{}", report.event_count());
        assert_eq!(report.hits.len(), report.event_count());
        let last = report.skipped.last().unwrap();
        assert_eq!(last.input, name);
        assert!(
            last.reason.starts_with(&format!(
                "bad or truncated gzip data after {} event(s)",
                report.event_count()
            )),
            "{}",
            last.reason
        );
        // The same for a CloudTrail document, streamed record by record.
        let records: Vec<Value> = (0..2_000).map(|_| ct("PutBucketPolicy")).collect();
        let doc = serde_json::json!({ "Records": records }).to_string();
        let whole = gzip(doc.as_bytes());
        let (report, _) = hunt_bytes("cut.json.gz", &whole[..whole.len() / 2]);
        assert!(report.event_count() > 100, "{}", report.event_count());
        assert!(
            report
                .skipped
                .last()
                .unwrap()
                .reason
                .starts_with("bad or truncated gzip"),
            "{:?}",
            reasons(&report)
        );
    }

    #[test]
    fn a_compression_bomb_is_refused_early() {
        // 64 MiB of zeros: one "line" that is not JSON, given up after 16 MiB.
        let zeros = gzip(&vec![0_u8; 64 << 20]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.gz");
        std::fs::write(&path, &zeros).unwrap();
        let mut read = 0;
        let report = hunt_with_progress(
            &RuleSet::from_yaml("r.yml", RULE),
            std::slice::from_ref(&path),
            &mut |p| read = p.bytes_read,
        );
        let all = reasons(&report);
        assert!(
            all.iter().any(|r| r.ends_with(&format!(
                "a line longer than {MAX_BAD_LINE_BYTES} bytes is not JSON"
            ))),
            "{all:?}"
        );
        assert_eq!(read, zeros.len() as u64);
        // Valid JSON lines past the cap: the events before it count, then reading stops.
        let mut input = Input {
            inner: BufReader::new(Capped {
                inner: std::io::Cursor::new(format!("{}\n", ct("PutBucketPolicy")).repeat(10)),
                left: 500,
                exceeded: Rc::new(Cell::new(false)),
            }),
            newlines: 0,
            recording: None,
        };
        let mut events = 0;
        let mut progress = |p: HuntProgress| events = p.events;
        let mut hunter = Hunter {
            engine: Engine::new(RuleSet::from_yaml("r.yml", RULE)),
            clock_ms: 0,
            report: HuntReport::default(),
            progress: &mut progress,
            state: HuntProgress::default(),
            done_bytes: 0,
            file_bytes: Rc::new(Cell::new(0)),
            first: None,
        };
        hunter.read_values("f", &mut input, &|e, n| format!("stopped after {n}: {e}"));
        let report = hunter.report;
        assert_eq!(report.event_count(), 3);
        assert_eq!(
            report.skipped.last().unwrap().reason,
            format!("stopped after 3: larger than {MAX_INPUT_BYTES} bytes")
        );
        assert_eq!(events, 3);
    }

    #[test]
    fn empty_files_and_lines_that_span_lines() {
        let (report, name) = hunt_bytes("empty.json", b"  \n\n");
        assert_eq!(reasons(&report), vec![format!("{name}: empty file")]);
        let text = format!("{{\"a\": 1\n{}\n", ct("PutBucketPolicy"));
        let (report, name) = hunt_bytes("two.jsonl", text.as_bytes());
        // The first line is cut short; the second, read by the parser looking for the end
        // of the first, is still an event of its own.
        assert_eq!(report.event_count(), 1);
        assert_eq!(report.hits[0].event.to_string(), format!("{name}:2"));
        let all = reasons(&report);
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].starts_with(&format!("{name}:1: not JSON: EOF")),
            "{all:?}"
        );
    }
}
