//! Fills a deployment's ledger with synthetic access-event-sized entries and signs a
//! checkpoint over them with the deployment's own key, so that `tenet log prove` and
//! `tenet log verify` can be timed through the CLI on large ledgers (bench/ledger_cli.sh).
//!
//! `cargo run --release -p tenet-ledger --example fill -- DEPLOYMENT_DIR ENTRIES`
//! (a deployment made by `tenet init`; entries are about 200 bytes of JSON).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Instant;

use tenet_ledger::{CheckpointSigner, Ledger, LedgerOptions, SigningKey, SyncPolicy, VerifierKey};

/// About 200 bytes of JSON (an access event's core fields and padding in a string).
fn event(n: u64) -> Vec<u8> {
    let head = format!(
        "{{\"activity_id\":1,\"class_uid\":4002,\"http_request\":{{\"http_method\":\"GET\",\"url\":{{\"path\":\"/api/v1/items/{n}\"}}}},\"seq\":{n},\"pad\":\""
    );
    let pad = 198usize.saturating_sub(head.len());
    format!("{head}{}\"}}", "x".repeat(pad)).into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: fill DEPLOYMENT_DIR ENTRIES"));
    let entries: u64 = args
        .next()
        .expect("ENTRIES")
        .parse()
        .expect("ENTRIES is a number");
    let vkey = VerifierKey::load(&dir.join("data/ledger.vkey")).expect("verifier key");
    let key = SigningKey::load(vkey.name(), &dir.join("data/ledger-key/signing.pem"))
        .expect("signing key");
    let mut signer = CheckpointSigner::new(key)
        .with_state_file(&dir.join("data/ledger-key/signer.state"))
        .expect("signer state");
    let options = LedgerOptions {
        sync: SyncPolicy::Never,
        ..LedgerOptions::default()
    };
    let mut ledger = Ledger::open(dir.join("data/ledger"), options)
        .expect("ledger")
        .ledger;
    let started = Instant::now();
    let start = ledger.size();
    let mut n = start;
    while n < start + entries {
        let end = (n + 10_000).min(start + entries);
        let batch: Vec<Vec<u8>> = (n..end).map(event).collect();
        ledger.append_batch(&batch).expect("append");
        n = end;
        if (n - start).is_multiple_of(1_000_000) {
            ledger.checkpoint(&mut signer).expect("checkpoint");
        }
    }
    ledger.checkpoint(&mut signer).expect("checkpoint");
    ledger.sync().expect("sync");
    eprintln!(
        "appended {entries} entries in {:?}; ledger size {}",
        started.elapsed(),
        ledger.size()
    );
}
