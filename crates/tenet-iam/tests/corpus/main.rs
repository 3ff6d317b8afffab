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

use std::path::PathBuf;

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
