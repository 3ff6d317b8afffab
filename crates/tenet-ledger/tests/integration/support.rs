//! Shared helpers: keys, ledgers with known entries, and an attacker's file surgery.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenet_event::{AdminEvent, Event, EventKind};
use tenet_ledger::{
    CheckpointSigner, Ledger, LedgerError, LedgerOptions, LedgerSink, ManualClock, Opened, Report,
    SignedCheckpoint, SigningKey, SinkOptions, SyncPolicy, VerifierKey, verify,
};
use time::OffsetDateTime;

pub const ORIGIN: &str = "tenet.test/ledger";

pub fn key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[9u8; 32]).unwrap()
}

pub fn verifier() -> VerifierKey {
    key().verifier_key()
}

pub fn signer() -> CheckpointSigner {
    CheckpointSigner::new(key())
}

pub fn open(dir: &Path) -> Ledger {
    open_with(dir, LedgerOptions::default()).unwrap().ledger
}

/// `Ledger::open`, waiting out a lock that a just-dropped ledger still appears to hold: the
/// lock is an flock, and a child process forked by another test (the Python verifier) keeps
/// a copy of the descriptor until it execs.
pub fn open_with(dir: &Path, options: LedgerOptions) -> Result<Opened, LedgerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Ledger::open(dir, options.clone()) {
            Err(LedgerError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Entry `n` of the test logs.
pub fn entry(n: u64) -> Vec<u8> {
    format!("{{\"seq\":{n},\"event\":\"e{n}\"}}").into_bytes()
}

/// A ledger holding `entries`, with a signed checkpoint over all of them when `checkpoint`.
pub fn ledger_with(dir: &Path, entries: &[Vec<u8>], checkpoint: bool) -> Option<SignedCheckpoint> {
    let mut ledger = open(dir);
    ledger.append_batch(entries).unwrap();
    checkpoint.then(|| ledger.checkpoint(&mut signer()).unwrap())
}

pub fn numbered(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(entry).collect()
}

pub fn report(dir: &Path) -> Report {
    verify(dir, &verifier()).unwrap()
}

pub fn segment(dir: &Path) -> PathBuf {
    dir.join("segments").join(format!("{:020}.seg", 0))
}

/// The segment files (not their seek indexes), in order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    names.sort();
    names
}

pub fn tree(dir: &Path) -> PathBuf {
    dir.join("tree.hashes")
}

/// What an attacker without the signing key can do: build the files of a log holding
/// `entries` (correct framing and checksums, and a consistent tree) and copy the records,
/// and when `with_tree` the tree file too, over the victim's.
pub fn forge(dir: &Path, entries: &[Vec<u8>], with_tree: bool) {
    let scratch = tempfile::tempdir().unwrap();
    ledger_with(scratch.path(), entries, false);
    std::fs::copy(segment(scratch.path()), segment(dir)).unwrap();
    if with_tree {
        std::fs::copy(tree(scratch.path()), tree(dir)).unwrap();
    }
}

/// Event `n` of the sink tests.
pub fn event(n: usize) -> Event {
    Event::new(
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        EventKind::Admin(AdminEvent {
            actor: "test".into(),
            operation: "op".into(),
            success: true,
            detail: n.to_string(),
        }),
    )
}

/// A sink over a ledger synced by `sync`: `EveryBatch` hands every event to the writer thread,
/// `Interval` has producers append inline.
pub fn start_with(dir: &Path, clock: Arc<ManualClock>, sync: SyncPolicy) -> LedgerSink {
    let ledger = open_with(
        dir,
        LedgerOptions {
            sync,
            ..LedgerOptions::default()
        },
    )
    .unwrap()
    .ledger;
    let options = SinkOptions {
        idle_wake: Duration::from_millis(10),
        ..SinkOptions::default()
    };
    LedgerSink::start(ledger, signer(), options, clock).unwrap()
}

/// Wait (5 s of real time at most) for the sink's newest checkpoint to cover `size` entries.
pub async fn wait_for_checkpoint(sink: &LedgerSink, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.status().latest_checkpoint.map(|c| c.size()) != Some(size) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} entries: {:?}",
            sink.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
