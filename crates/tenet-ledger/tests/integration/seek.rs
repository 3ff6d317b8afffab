//! The seek index beside each segment: entries deep in a segment are found without reading
//! it from its start, and a hint that is wrong, stale or missing never changes what is read.

use std::path::{Path, PathBuf};

use tenet_ledger::{LedgerOptions, LedgerReader, OpenWarning, entries};

use super::support::{entry, numbered, open, open_with, segment, segment_files};

/// Every how many entries the index notes a record (the crate's `SEEK_EVERY`).
const EVERY: u64 = 1024;

fn index_file(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// The (index, offset) pairs of a seek index file.
fn pairs(path: &Path) -> Vec<(u64, u64)> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(16)
        .map(|p| {
            (
                u64::from_le_bytes(p[..8].try_into().unwrap()),
                u64::from_le_bytes(p[8..].try_into().unwrap()),
            )
        })
        .collect()
}

fn encode(pairs: &[(u64, u64)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(i, o)| i.to_le_bytes().into_iter().chain(o.to_le_bytes()))
        .collect()
}

/// Offset of record `n` in segment 0 of a `numbered(0..)` log.
fn record_offset(n: u64) -> u64 {
    16 + (0..n).map(|i| 4 + entry(i).len() as u64 + 8).sum::<u64>()
}

/// A one-segment ledger of `n` numbered entries, appended in batches of 7 so that noted
/// entries fall inside batches.
fn ledger_of(dir: &Path, n: u64) {
    let mut ledger = open(dir);
    let all = numbered(0..n);
    for batch in all.chunks(7) {
        ledger.append_batch(batch).unwrap();
    }
}

fn read_back(dir: &Path, at: &[u64]) {
    let reader = LedgerReader::open(dir).unwrap();
    for &i in at {
        assert_eq!(reader.entry(i).unwrap(), entry(i), "entry {i}");
        let first = entries(dir, i).unwrap().next().unwrap().unwrap();
        assert_eq!(first, (i, entry(i)), "entries from {i}");
    }
}

const PROBES: [u64; 9] = [0, 1, 1023, 1024, 1025, 2047, 3000, 4096, 4999];

#[test]
fn the_index_notes_every_1024th_record_and_reads_use_it() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), 5000);
    let expected: Vec<_> = (0..5000)
        .step_by(EVERY as usize)
        .map(|i| (i, record_offset(i)))
        .collect();
    assert_eq!(pairs(&index_file(&segment(dir.path()))), expected);
    read_back(dir.path(), &PROBES);
}

#[test]
fn wrong_hints_are_checked_against_the_tree_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), 5000);
    let index = index_file(&segment(dir.path()));
    // Each hint names a real record boundary of another entry, the middle of a record, a
    // place past the end, or the segment header.
    let lies = [
        (1024, record_offset(1000)),
        (2048, record_offset(2048) + 3),
        (3072, 1 << 40),
        (4096, 0),
    ];
    std::fs::write(&index, encode(&lies)).unwrap();
    read_back(dir.path(), &PROBES);
    // A torn final pair and garbage are ignored too.
    let mut torn = encode(&[(1024, record_offset(1024))]);
    torn.extend_from_slice(&[7u8; 9]);
    std::fs::write(&index, torn).unwrap();
    read_back(dir.path(), &PROBES);
    std::fs::remove_file(&index).unwrap();
    read_back(dir.path(), &PROBES);
}

#[test]
fn opening_rewrites_the_last_segments_index_from_its_records() {
    let dir = tempfile::tempdir().unwrap();
    ledger_of(dir.path(), 3000);
    let index = index_file(&segment(dir.path()));
    let good = pairs(&index);
    std::fs::write(&index, encode(&[(2048, 17), (9999, 5)])).unwrap();
    drop(open(dir.path()));
    assert_eq!(pairs(&index), good);

    // A torn tail is cut on open, and so is the hint for the record it held; entry 2048 is
    // then written again, with another length, and noted again.
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let cut = record_offset(2048) + 5;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();
    assert!(len > cut);
    let opened = open_with(dir.path(), LedgerOptions::default()).unwrap();
    assert!(
        opened
            .warnings
            .iter()
            .any(|w| matches!(w, OpenWarning::TornRecord { .. })),
        "{:?}",
        opened.warnings
    );
    let mut ledger = opened.ledger;
    assert_eq!(ledger.size(), 2048);
    assert_eq!(pairs(&index), good[..2].to_vec());
    let longer = b"{\"seq\":2048,\"a longer entry than the one cut\":true}".to_vec();
    ledger.append(&longer).unwrap();
    ledger.append_batch(&numbered(2049..2100)).unwrap();
    drop(ledger);
    assert_eq!(pairs(&index), good[..3].to_vec());
    let reader = LedgerReader::open(dir.path()).unwrap();
    assert_eq!(reader.entry(2048).unwrap(), longer);
    assert_eq!(reader.entry(2099).unwrap(), entry(2099));
}

#[test]
fn every_segment_has_its_own_index() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        segment_bytes: 40_000,
        ..LedgerOptions::default()
    };
    let mut ledger = open_with(dir.path(), options).unwrap().ledger;
    for batch in numbered(0..5000).chunks(100) {
        ledger.append_batch(batch).unwrap();
    }
    drop(ledger);
    let segments = segment_files(dir.path());
    assert!(segments.len() > 3, "{} segments", segments.len());
    for seg in &segments {
        assert!(index_file(seg).exists(), "{}", seg.display());
    }
    read_back(dir.path(), &PROBES);
}
