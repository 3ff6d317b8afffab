//! Panther's test events for its CloudTrail, Kubernetes audit and Okta rules: as Panther
//! exports them, and with the vendors' spelling of the top-level keys restored. Shared by the
//! throughput example and the tests that compare Tenet with bare rsigma.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tenet_sigma::Source;

pub const PANTHER_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/panther-analysis/rules"
);

/// Every `.yml` file under `dir`, recursively.
pub fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml") {
            out.push(p);
        }
    }
}

/// Every test event (`Tests[].Log`) of Panther's rules that Tenet recognises as CloudTrail,
/// Kubernetes audit or Okta, in file order, as Panther exports it.
pub fn events() -> Vec<Value> {
    let dir = Path::new(PANTHER_RULES);
    assert!(dir.is_dir(), "corpus folder missing: {}", dir.display());
    let mut files = Vec::new();
    yml_files(dir, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let doc: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for t in doc["Tests"].as_sequence().into_iter().flatten() {
            let Some(log) = t.get("Log") else { continue };
            let v: Value = match log.as_str() {
                Some(s) => serde_json::from_str(s).unwrap(),
                None => serde_json::to_value(log).unwrap(),
            };
            if matches!(
                Source::recognise(&v),
                Source::CloudTrail | Source::KubernetesAudit | Source::Okta
            ) {
                out.push(v);
            }
        }
    }
    out
}

/// `events` with the vendor's spelling of their keys. Panther's export lowercases some keys
/// (`eventtype`, `displaymessage`, `eventsource`, `userIdentity.sessioncontext`, ...) while
/// other events of the same source in the corpus carry them as the vendor writes them
/// (`eventType`, ...): an all-lowercase key that appears in exactly one other spelling at the
/// same place (the same path, without regard to case) among the events of its source is
/// renamed to that spelling, unless its object has that key already.
pub fn vendor_spelling(events: &[Value]) -> Vec<Value> {
    let mut spellings = Spellings::new();
    for e in events {
        collect(e, Source::recognise(e), "", &mut spellings);
    }
    events
        .iter()
        .map(|e| restore(e, Source::recognise(e), "", &spellings))
        .collect()
}

/// (source, lowercased path of the key) → the key's spellings.
type Spellings = BTreeMap<(Source, String), BTreeSet<String>>;

fn collect(value: &Value, source: Source, path: &str, out: &mut Spellings) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{}", key.to_lowercase());
                out.entry((source, here.clone()))
                    .or_default()
                    .insert(key.clone());
                collect(child, source, &here, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, source, path, out);
            }
        }
        _ => {}
    }
}

fn restore(value: &Value, source: Source, path: &str, spellings: &Spellings) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    let here = format!("{path}.{}", key.to_lowercase());
                    let others: Vec<&String> = spellings[&(source, here.clone())]
                        .iter()
                        .filter(|s| *s != key)
                        .collect();
                    let key = match others.as_slice() {
                        [vendor] if *key == key.to_lowercase() && !map.contains_key(*vendor) => {
                            (*vendor).clone()
                        }
                        _ => key.clone(),
                    };
                    (key, restore(child, source, &here, spellings))
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| restore(item, source, path, spellings))
                .collect(),
        ),
        other => other.clone(),
    }
}
