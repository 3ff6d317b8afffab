//! Speed checks, ignored by default; run in release:
//! `cargo test --release -p tenet-ledger --test integration -- --ignored --nocapture perf`

use std::time::Instant;

use tenet_ledger::{Ledger, LedgerOptions, SyncPolicy, Verdict};

use super::support::{report, signer};

/// An access-event-sized entry (about 600 bytes of JSON).
fn event_like(n: u64) -> Vec<u8> {
    let mut e = format!(
        "{{\"class_uid\":4002,\"seq\":{n},\"http_request\":{{\"url\":{{\"path\":\"/api/v1/items/{n}\"}}}}"
    );
    while e.len() < 600 {
        e.push_str(",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
    }
    e.push('}');
    e.into_bytes()
}

#[test]
#[ignore = "benchmark: run in release with --ignored"]
fn perf_verify_one_million_entries() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        sync: SyncPolicy::Never,
        ..LedgerOptions::default()
    };
    let mut ledger = Ledger::open(dir.path(), options).unwrap().ledger;
    let started = Instant::now();
    let mut s = signer();
    for chunk in 0..100u64 {
        let batch: Vec<Vec<u8>> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(event_like)
            .collect();
        ledger.append_batch(&batch).unwrap();
        if chunk % 10 == 9 {
            ledger.checkpoint(&mut s).unwrap();
        }
    }
    println!(
        "append 1M entries (~600 B) in batches of 10k: {:?}",
        started.elapsed()
    );
    drop(ledger);

    let started = Instant::now();
    let report = report(dir.path());
    let took = started.elapsed();
    println!("verify 1M entries: {took:?} ({report})");
    assert_eq!(report.verdict, Verdict::Verified);
    assert_eq!(report.entries, 1_000_000);
}

#[test]
#[ignore = "benchmark: run in release with --ignored"]
fn perf_proofs_over_ten_million_entries() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        sync: SyncPolicy::Never,
        ..LedgerOptions::default()
    };
    let mut ledger = Ledger::open(dir.path(), options).unwrap().ledger;
    let started = Instant::now();
    for chunk in 0..1000u64 {
        let batch: Vec<[u8; 8]> = (chunk * 10_000..(chunk + 1) * 10_000)
            .map(u64::to_be_bytes)
            .collect();
        ledger.append_batch(&batch).unwrap();
    }
    println!("append 10M entries: {:?}", started.elapsed());
    let size = ledger.size();
    let root = ledger.root();

    let started = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % size;
        let proof = ledger.prove_inclusion(index, size).unwrap();
        proof.verify_entry(&index.to_be_bytes(), &root).unwrap();
        let old = 1 + x % (size - 1);
        let c = ledger.prove_consistency(old, size).unwrap();
        c.verify(&ledger.root_at(old).unwrap(), &root).unwrap();
    }
    let took = started.elapsed();
    println!("1000 inclusion + 1000 consistency proofs (+ roots) at 10M: {took:?}");
}
