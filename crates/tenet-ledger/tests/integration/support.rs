//! Shared helpers: keys, ledgers with known entries, and an attacker's file surgery.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tenet_ledger::{
    CheckpointSigner, Ledger, LedgerError, LedgerOptions, Opened, Report, SignedCheckpoint,
    SigningKey, VerifierKey, verify,
};

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
