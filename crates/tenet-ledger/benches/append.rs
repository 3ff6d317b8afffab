//! Durable append throughput with group commit: 200-byte events in batches, each batch one
//! write to the segment and the tree file and (with `EveryBatch`) one `fdatasync`, then the
//! root of the whole log. The peer, SQLite in WAL mode doing the same (a transaction per
//! batch, `synchronous=FULL`), is `bench/peers/append_sqlite.py`; `bench/run.sh` runs both.
//!
//! Run: `cargo bench -p tenet-ledger --bench append` (`-- --quick` for a short run).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use tenet_ledger::{Ledger, LedgerOptions, SyncPolicy};

fn run(sync: SyncPolicy, batch: usize, budget: Duration) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        sync,
        ..LedgerOptions::default()
    };
    let mut ledger = Ledger::open(dir.path(), options).unwrap().ledger;
    let entries: Vec<Vec<u8>> = (0..batch)
        .map(|i| {
            let mut e = format!("{{\"event\":{i},\"pad\":\"").into_bytes();
            e.resize(198, b'x');
            e.extend_from_slice(b"\"}");
            e
        })
        .collect();
    let start = Instant::now();
    let mut appended = 0u64;
    while start.elapsed() < budget {
        ledger.append_batch(&entries).unwrap();
        appended += batch as u64;
    }
    std::hint::black_box(ledger.root());
    let rate = appended as f64 / start.elapsed().as_secs_f64();
    let bytes: u64 = walk(dir.path());
    (rate, bytes / appended.max(1))
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    for (label, sync) in [
        ("fdatasync every batch", SyncPolicy::EveryBatch),
        ("no sync", SyncPolicy::Never),
    ] {
        for batch in [100, 1000] {
            let (rate, per_entry) = run(sync, batch, budget);
            println!(
                "tenet ledger, {label}, batches of {batch}: {rate:.0} events/s \
                 ({per_entry} bytes on disk per 200-byte event, tree included)"
            );
        }
    }
}
