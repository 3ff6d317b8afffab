//! Corpus and field-case tests: each corpus prints `<name>: <passed>/<total>` and asserts the
//! floor reached, so a regression fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cases;
mod cloudsplaining;
mod iam_vulnerable;
mod mamip;
mod parliament;
mod regressions;

use std::path::PathBuf;

use serde_json::{Map, Value};
use tenet_iam::Hit;

/// A finding read as the risk classes it stands for: its own rule and evidence, then each
/// class it implies (`implies`: rule, severity and that class's evidence).
pub fn classes_of(h: &Hit) -> Vec<(String, Map<String, Value>)> {
    let own: Map<String, Value> = h
        .evidence
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut out = Vec::new();
    if let Some(Value::Array(implied)) = own.get("implies") {
        for entry in implied {
            if let Value::Object(e) = entry {
                let rule = e["rule"].as_str().unwrap().to_owned();
                out.push((rule, e.clone()));
            }
        }
    }
    out.insert(0, (h.rule.to_owned(), own));
    out
}

/// A corpus folder; the test fails (does not skip) when it is missing.
pub fn corpus(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ))
    .join(rel);
    assert!(p.exists(), "corpus {} is missing", p.display());
    p
}

/// 2025-06-01T00:00:00Z: the analysis time used for time conditions.
pub const NOW: i64 = 1_748_736_000;
