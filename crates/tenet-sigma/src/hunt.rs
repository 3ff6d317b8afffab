//! Offline hunting: read log files, recognise each event's source, run the rules, report hits
//! with a pointer to each event and every input that could not be used.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tenet_finding::{Location, Severity, Skipped};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::engine::{Engine, Match};
use crate::rules::RuleSet;
use crate::source::Source;

/// Largest input read, after decompression. A larger file is skipped, not truncated.
const MAX_INPUT_BYTES: u64 = 1 << 30;

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

/// An event read from a file, with where it was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LocatedEvent {
    pub(crate) value: Value,
    pub(crate) at: EventPointer,
}

/// Runs `rules` over the events in `paths` (files, or folders searched recursively), in order.
/// Reads CloudTrail (`{"Records": [...]}` or JSON lines), Kubernetes audit (JSON lines or an
/// `EventList`), Okta System Log (a JSON array or lines) and Tenet ledger exports (JSON lines,
/// plain or `{"index", "leaf_hash", "event"}`), each optionally gzip-compressed. Correlation
/// windows run on the events' own timestamps.
pub fn hunt(rules: &RuleSet, paths: &[PathBuf]) -> HuntReport {
    let mut engine = Engine::new(rules.clone());
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
    let mut clock_ms = 0_i64;
    for file in files {
        let events = match read_events(&file, &mut report.skipped) {
            Ok(events) => events,
            Err(reason) => {
                report
                    .skipped
                    .push(Skipped::new(file.display().to_string(), reason));
                continue;
            }
        };
        for event in events {
            evaluate(&mut engine, event, &mut clock_ms, &mut report);
        }
    }
    report
}

fn evaluate(engine: &mut Engine, event: LocatedEvent, clock_ms: &mut i64, report: &mut HuntReport) {
    let source = Source::recognise(&event.value);
    if source == Source::Unknown {
        report.skipped.push(Skipped::new(
            event.at.to_string(),
            "not recognised as CloudTrail, Kubernetes audit, Okta, Tenet or Windows event",
        ));
        return;
    }
    if let Some(ms) = event_time_ms(&event.value, source) {
        *clock_ms = ms;
    }
    *report.events.entry(source).or_default() += 1;
    for m in engine.observe(&event.value, source, *clock_ms) {
        report.hits.push(hit(m, source, event.at.clone()));
    }
}

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

/// The events of one file. Whole-file problems are `Err`; bad lines go to `skipped`.
pub(crate) fn read_events(
    path: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<LocatedEvent>, String> {
    let bytes = read_input(path)?;
    let text = String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let name = path.display().to_string();
    Ok(parse_events(&name, &text, skipped))
}

fn read_input(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let mut head = [0_u8; 2];
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    let n = reader
        .by_ref()
        .take(2)
        .read(&mut head)
        .map_err(|e| format!("unreadable: {e}"))?;
    let prefix = head.get(..n).unwrap_or_default();
    let chained = std::io::Cursor::new(prefix.to_vec()).chain(reader);
    let result = if prefix == [0x1f, 0x8b] {
        flate2::read::MultiGzDecoder::new(chained)
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("bad gzip data: {e}"))
    } else {
        chained
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("unreadable: {e}"))
    };
    result?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("larger than {MAX_INPUT_BYTES} bytes"));
    }
    Ok(bytes)
}

/// One JSON document (`{"Records": [...]}`, an `EventList`, an array, or one event), else JSON
/// lines.
pub(crate) fn parse_events(
    name: &str,
    text: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<LocatedEvent> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        skipped.push(Skipped::new(name, "empty file"));
        return Vec::new();
    }
    if let Ok(doc) = serde_json::from_str::<Value>(text) {
        let mut out = Vec::new();
        expand(doc, &Location::file(name), "", &mut out);
        return out;
    }
    let mut out = Vec::new();
    let mut bad = 0_usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::file(name).with_line(line_no);
        match serde_json::from_str::<Value>(line) {
            Ok(v) => expand(v, &at, "", &mut out),
            Err(e) => {
                bad += 1;
                skipped.push(Skipped::new(at.to_string(), format!("not JSON: {e}")));
            }
        }
    }
    if out.is_empty() && bad > 0 {
        // Not JSON at all: one entry for the file rather than one per line.
        skipped.retain(|s| !s.input.starts_with(&format!("{name}:")));
        skipped.push(Skipped::new(name, "neither a JSON document nor JSON lines"));
    }
    out
}

/// Unwraps containers into events, keeping a JSON pointer to each.
fn expand(value: Value, at: &Location, pointer: &str, out: &mut Vec<LocatedEvent>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                expand(item, at, &format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(mut map) => {
            if let Some(Value::Array(records)) = map.remove("Records") {
                return expand(
                    Value::Array(records),
                    at,
                    &format!("{pointer}/Records"),
                    out,
                );
            }
            if map.get("kind").and_then(Value::as_str) == Some("EventList")
                && let Some(items @ Value::Array(_)) = map.remove("items")
            {
                return expand(items, at, &format!("{pointer}/items"), out);
            }
            if map.contains_key("leaf_hash")
                && let Some(event) = map.remove("event")
            {
                return expand(event, at, &format!("{pointer}/event"), out);
            }
            let at = if pointer.is_empty() {
                at.clone()
            } else {
                at.clone().with_pointer(pointer)
            };
            out.push(LocatedEvent {
                value: Value::Object(map),
                at,
            });
        }
        other => out.push(LocatedEvent {
            value: other,
            at: at.clone().with_pointer(pointer),
        }),
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
        let gz = std::fs::File::create(dir.path().join("b.jsonl.gz")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
        enc.write_all(lines.as_bytes()).unwrap();
        enc.finish().unwrap();

        std::fs::write(dir.path().join("c.txt"), "hello\nworld\n").unwrap();
        std::fs::write(dir.path().join("d.json"), r#"[{"x": 1}]"#).unwrap();

        let set = RuleSet::from_yaml("r.yml", RULE);
        let report = hunt(&set, &[dir.path().to_owned(), dir.path().join("missing")]);
        let hits: Vec<String> = report.hits.iter().map(|h| h.event.to_string()).collect();
        let a = dir.path().join("a.json").display().to_string();
        let b = dir.path().join("b.jsonl.gz").display().to_string();
        assert_eq!(hits, vec![format!("{a} /Records/1"), format!("{b}:1")]);
        assert_eq!(report.hits[0].attack, vec!["attack.impact"]);
        assert_eq!(report.event_count(), 4);

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
    }

    #[test]
    fn ledger_export_wrappers_and_event_lists_unwrap() {
        let mut skipped = Vec::new();
        let text = r#"{"index":0,"leaf_hash":"ab","event":{"class_uid":4002}}"#;
        let evs = parse_events("l.jsonl", text, &mut skipped);
        assert_eq!(evs[0].value["class_uid"], 4002);
        let list =
            r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"verb":"get"}]}"#;
        let evs = parse_events("k.json", list, &mut skipped);
        assert_eq!(evs[0].at.pointer.as_deref(), Some("/items/0"));
        assert!(skipped.is_empty());
    }
}
