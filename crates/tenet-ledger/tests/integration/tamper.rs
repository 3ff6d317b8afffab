//! Tampering and crash recovery: each kind of change gives its typed verdict.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use tenet_ledger::{
    CheckpointRef, CheckpointSigner, Finding, Ledger, LedgerError, LedgerOptions, OpenWarning,
    SigningKey, TamperKind, Verdict, VerifyOptions, Warning, verify_with,
};

use super::support::{
    ORIGIN, entry, forge, ledger_with, numbered, open, report, segment, segment_files, signer,
    tree, verifier,
};

/// Byte offset of the payload of record `n` in segment 0 of a `numbered(0..)` log.
fn payload_offset(n: u64) -> u64 {
    16 + (0..n).map(|i| 4 + entry(i).len() as u64 + 8).sum::<u64>() + 4
}

fn flip_byte(path: &std::path::Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, offset).unwrap();
    file.write_all_at(&[b[0] ^ 0x20], offset).unwrap();
}

fn twenty() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), &numbered(0..20), true);
    dir
}

#[test]
fn intact_log_verifies_and_reopens_without_warnings() {
    let dir = twenty();
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
    let opened = super::support::open_with(dir.path(), LedgerOptions::default()).unwrap();
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    assert_eq!(opened.ledger.size(), 20);
    assert_eq!(opened.ledger.entry(7).unwrap(), entry(7));
}

#[test]
fn modified_byte_names_the_entry() {
    let dir = twenty();
    flip_byte(&segment(dir.path()), payload_offset(7) + 3);
    let report = report(dir.path());
    assert_eq!(report.verdict, Verdict::Tampered);
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Modified { entry: 7 }),
        "{report}"
    );
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[test]
fn modified_entry_with_recomputed_checksum_names_the_entry() {
    let dir = twenty();
    let mut entries = numbered(0..20);
    entries[11] = b"{\"seq\":11,\"event\":\"harmless\"}".to_vec();
    forge(dir.path(), &entries, false);
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Modified { entry: 11 }),
        "{report}"
    );
}

#[test]
fn deleted_record_is_missing() {
    let dir = twenty();
    let mut entries = numbered(0..20);
    entries.remove(4);
    forge(dir.path(), &entries, false);
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Missing { entry: 4, count: 1 }),
        "{report}"
    );
}

#[test]
fn swapped_records_are_reordered() {
    let dir = twenty();
    let mut entries = numbered(0..20);
    entries.swap(9, 10);
    forge(dir.path(), &entries, false);
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Reordered {
            entry: 9,
            original: 10
        }),
        "{report}"
    );
}

#[test]
fn inserted_record_is_inserted() {
    let dir = twenty();
    let mut entries = numbered(0..20);
    entries.insert(6, b"{\"forged\":true}".to_vec());
    forge(dir.path(), &entries, false);
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Inserted { entry: 6, count: 1 }),
        "{report}"
    );
}

#[test]
fn truncated_segment_is_truncation() {
    let dir = twenty();
    let file = OpenOptions::new()
        .write(true)
        .open(segment(dir.path()))
        .unwrap();
    file.set_len(payload_offset(15) - 4).unwrap();
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Truncated {
            entries: 15,
            expected: 20,
            vouched: 15
        }),
        "{report}"
    );
    // Opening refuses to paper over it.
    assert!(matches!(
        super::support::open_with(dir.path(), LedgerOptions::default()),
        Err(LedgerError::BehindCheckpoint {
            entries: 15,
            checkpoint: 20,
            ..
        })
    ));
}

#[test]
fn rewritten_log_with_tree_is_bounded_by_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path());
    let mut s = signer();
    ledger.append_batch(&numbered(0..8)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    ledger.append_batch(&numbered(8..16)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    drop(ledger);
    let mut entries = numbered(0..16);
    entries[12] = b"rewritten".to_vec();
    forge(dir.path(), &entries, true);
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Rewritten {
            from: 8,
            to: 16,
            checkpoint_size: 16
        }),
        "{report}"
    );
}

#[test]
fn rolled_back_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path());
    let mut s = signer();
    ledger.append_batch(&numbered(0..5)).unwrap();
    let old = ledger.checkpoint(&mut s).unwrap();
    ledger.append_batch(&numbered(5..9)).unwrap();
    let new = ledger.checkpoint(&mut s).unwrap();
    drop(ledger);

    // Re-append the old checkpoint as if it were the newest.
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("checkpoints"))
        .unwrap();
    file.write_all(format!("{}\n", old.text()).as_bytes())
        .unwrap();
    let report = report(dir.path());
    assert_eq!(
        report.findings,
        vec![Finding::CheckpointRollback {
            checkpoint: CheckpointRef::Stored(2),
            size: 5,
            newest: 9
        }],
        "{report}"
    );

    // Or roll the whole directory back to size 5 and keep the new checkpoint elsewhere.
    std::fs::write(dir.path().join("checkpoints"), format!("{}\n", old.text())).unwrap();
    forge(dir.path(), &numbered(0..5), true);
    assert_eq!(
        super::support::report(dir.path()).verdict,
        Verdict::Verified
    );
    let options = VerifyOptions {
        trusted_checkpoints: vec![new.text().to_owned()],
        ..VerifyOptions::default()
    };
    let report = verify_with(dir.path(), &verifier(), &options).unwrap();
    let kinds: Vec<TamperKind> = report.findings.iter().map(Finding::kind).collect();
    assert_eq!(
        kinds,
        vec![TamperKind::Truncated, TamperKind::CheckpointRollback],
        "{report}"
    );
}

#[test]
fn signer_refuses_to_roll_back_even_after_the_directory_is() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("signer.state");
    let mut ledger = open(&dir.path().join("log"));
    let mut s = signer().with_state_file(&state).unwrap();
    ledger.append_batch(&numbered(0..9)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    drop(ledger);

    std::fs::remove_dir_all(dir.path().join("log")).unwrap();
    let mut ledger = open(&dir.path().join("log"));
    ledger.append_batch(&numbered(0..3)).unwrap();
    let mut restarted = signer().with_state_file(&state).unwrap();
    // The ledger refuses first (it no longer holds what was signed)...
    assert!(matches!(
        ledger.checkpoint(&mut restarted),
        Err(LedgerError::NotWhatWasSigned { signed_size: 9, .. })
    ));
    // ...and the signer itself would refuse the smaller tree anyway.
    assert!(matches!(
        restarted.sign(3, ledger.root()),
        Err(tenet_ledger::SignError::Rollback {
            signed: 9,
            requested: 3
        })
    ));
}

/// The trial's forgery: keep only an early checkpoint in the file, rewrite a later entry with
/// its checksum, drop the tree file. The files alone then verify (the rewritten entry is after
/// every checkpoint left), but the signer's own state says what it signed, and neither a CLI
/// checkpoint nor the gateway's sink signs on top of a tree that does not extend it.
#[test]
fn a_log_rewritten_after_its_last_signature_is_not_signed_again() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("signer.state");
    let log = dir.path().join("log");
    let mut ledger = open(&log);
    let mut s = signer().with_state_file(&state).unwrap();
    ledger.append_batch(&numbered(0..5)).unwrap();
    let old = ledger.checkpoint(&mut s).unwrap();
    ledger.append_batch(&numbered(5..12)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    drop(ledger);

    std::fs::write(log.join("checkpoints"), format!("{}\n", old.text())).unwrap();
    let mut entries = numbered(0..12);
    entries[8] = b"{\"seq\":8,\"event\":\"harmless\"}".to_vec();
    forge(&log, &entries, false);
    std::fs::remove_file(tree(&log)).unwrap();
    assert_eq!(
        report(&log).verdict,
        Verdict::Verified,
        "the files alone look whole"
    );

    let mut ledger = open(&log);
    let mut restarted = signer().with_state_file(&state).unwrap();
    let refused = ledger.checkpoint(&mut restarted).unwrap_err();
    assert!(
        matches!(
            refused,
            LedgerError::NotWhatWasSigned {
                signed_size: 12,
                ..
            }
        ),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("changed after they were signed"),
        "{refused}"
    );
    drop(ledger);

    let sink = tenet_ledger::LedgerSink::start(
        open(&log),
        signer().with_state_file(&state).unwrap(),
        tenet_ledger::SinkOptions::default(),
        std::sync::Arc::new(tenet_ledger::SystemClock),
    );
    let refused = sink.expect_err("the sink refuses to start");
    assert!(refused.to_string().contains("last signed"), "{refused}");

    // A ledger cut short of what was signed is refused the same way.
    forge(&log, &numbered(0..7), false);
    std::fs::remove_file(tree(&log)).unwrap();
    let ledger = open(&log);
    let refused = ledger
        .check_signed_history(signer().with_state_file(&state).unwrap().last_signed())
        .unwrap_err();
    assert!(
        refused.to_string().contains("holds only 7 entries"),
        "{refused}"
    );
}

#[test]
fn checkpoint_signed_by_another_key_is_a_bad_signature() {
    let dir = twenty();
    let intruder = SigningKey::from_seed(ORIGIN, &[1u8; 32]).unwrap();
    let mut ledger = open(dir.path());
    ledger.append(b"one more").unwrap();
    ledger
        .checkpoint(&mut CheckpointSigner::new(intruder))
        .unwrap();
    drop(ledger);
    let report = report(dir.path());
    assert_eq!(report.findings.len(), 1, "{report}");
    assert!(
        matches!(
            &report.findings[0],
            Finding::BadSignature {
                checkpoint: CheckpointRef::Stored(1),
                ..
            }
        ),
        "{report}"
    );
}

#[test]
fn edited_checkpoint_size_is_a_bad_signature() {
    let dir = twenty();
    let path = dir.path().join("checkpoints");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\n20\n", "\n19\n", 1)).unwrap();
    let report = report(dir.path());
    assert_eq!(
        report.first_finding().map(Finding::kind),
        Some(TamperKind::BadSignature)
    );
}

#[test]
fn forked_checkpoint_is_reported() {
    let dir = twenty();
    // A second, validly signed root for size 20 (key misuse or a compromised signer).
    let mut rogue = signer();
    let fork = rogue.sign(20, tenet_ledger::leaf_hash(b"fork")).unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("checkpoints"))
        .unwrap();
    file.write_all(format!("{}\n", fork.text()).as_bytes())
        .unwrap();
    let report = report(dir.path());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind() == TamperKind::ForkedCheckpoint),
        "{report}"
    );
}

#[test]
fn damaged_tree_file_is_a_tree_mismatch_not_tampered_entries() {
    let dir = twenty();
    flip_byte(&tree(dir.path()), 32 * 5 + 1);
    let report = report(dir.path());
    assert_eq!(report.findings.len(), 1, "{report}");
    assert_eq!(
        report.findings[0].kind(),
        TamperKind::TreeMismatch,
        "{report}"
    );
}

/// A segment created just before a crash, with none of its header on disk, is reported as
/// such (not as a torn record).
#[test]
fn a_new_segment_without_its_header_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path());
    ledger.append_batch(&numbered(0..10)).unwrap();
    ledger.checkpoint(&mut signer()).unwrap();
    drop(ledger);
    let empty = dir.path().join("segments").join(format!("{:020}.seg", 10));
    std::fs::write(&empty, b"").unwrap();

    let report = report(dir.path());
    assert_eq!(report.verdict, Verdict::Verified, "{report}");
    assert_eq!(report.entries, 10);
    let text = report.to_string();
    assert!(
        text.contains("incomplete segment header: 0 bytes in"),
        "{text}"
    );
    assert!(!text.contains("incomplete final record"), "{text}");
}

#[test]
fn torn_tail_is_cut_on_open_and_the_rest_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path());
    ledger.append_batch(&numbered(0..10)).unwrap();
    ledger.checkpoint(&mut signer()).unwrap();
    ledger.append_batch(&numbered(10..12)).unwrap();
    drop(ledger);

    // A crash in the middle of writing record 11: half of it reached the disk.
    let file = OpenOptions::new()
        .write(true)
        .open(segment(dir.path()))
        .unwrap();
    let full = file.metadata().unwrap().len();
    let cut = payload_offset(11) + 5;
    file.set_len(cut).unwrap();
    let report = report(dir.path());
    assert_eq!(report.verdict, Verdict::Verified, "{report}");
    assert_eq!(report.entries, 11);
    assert!(
        matches!(report.warnings[0], Warning::TornTail { .. }),
        "{report}"
    );

    let opened = super::support::open_with(dir.path(), LedgerOptions::default()).unwrap();
    assert_eq!(
        opened.warnings[0],
        OpenWarning::TornRecord {
            segment: segment(dir.path()),
            offset: payload_offset(11) - 4,
            bytes: cut - (payload_offset(11) - 4),
        }
    );
    assert!(
        opened
            .warnings
            .iter()
            .any(|w| matches!(w, OpenWarning::TreeCut { from: 12, to: 11 }))
    );
    let mut ledger = opened.ledger;
    assert_eq!(ledger.size(), 11);
    assert!(full > cut);
    ledger.append(&entry(11)).unwrap();
    ledger.checkpoint(&mut signer()).unwrap();
    drop(ledger);
    assert_eq!(
        super::support::report(dir.path()).verdict,
        Verdict::Verified
    );
}

#[test]
fn zeroed_tail_after_a_crash_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), &numbered(0..4), false);
    let file = OpenOptions::new()
        .write(true)
        .open(segment(dir.path()))
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len + 8192).unwrap();
    let opened = super::support::open_with(dir.path(), LedgerOptions::default()).unwrap();
    assert!(matches!(
        opened.warnings[0],
        OpenWarning::TornRecord { bytes: 8192, .. }
    ));
    assert_eq!(opened.ledger.size(), 4);
}

#[test]
fn tree_behind_the_records_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), &numbered(0..50), true);
    let expected = open(dir.path()).root();
    let file = OpenOptions::new()
        .write(true)
        .open(tree(dir.path()))
        .unwrap();
    file.set_len(32 * 7 + 9).unwrap();
    let opened = super::support::open_with(dir.path(), LedgerOptions::default()).unwrap();
    assert!(
        opened
            .warnings
            .contains(&OpenWarning::TreeRebuilt { from: 4, to: 50 })
    );
    assert_eq!(opened.ledger.root(), expected);
}

#[test]
fn damage_before_the_end_refuses_to_open() {
    let dir = twenty();
    flip_byte(&segment(dir.path()), payload_offset(3));
    assert!(matches!(
        super::support::open_with(dir.path(), LedgerOptions::default()),
        Err(LedgerError::Corrupt { .. })
    ));
}

#[test]
fn second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    assert!(matches!(
        Ledger::open(dir.path(), LedgerOptions::default()),
        Err(LedgerError::Locked { .. })
    ));
}

#[test]
fn segments_roll_over_and_everything_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let options = LedgerOptions {
        segment_bytes: 256,
        ..LedgerOptions::default()
    };
    let mut ledger = super::support::open_with(dir.path(), options.clone())
        .unwrap()
        .ledger;
    for n in 0..40 {
        ledger.append(&entry(n)).unwrap();
    }
    ledger.checkpoint(&mut signer()).unwrap();
    assert_eq!(ledger.entry(33).unwrap(), entry(33));
    drop(ledger);
    let segments = segment_files(dir.path()).len();
    assert!(segments > 5, "{segments} segments");
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
    let all: Vec<_> = tenet_ledger::entries(dir.path(), 30)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0], (30, entry(30)));
    let reopened = super::support::open_with(dir.path(), options).unwrap();
    assert!(reopened.warnings.is_empty());
    assert_eq!(reopened.ledger.size(), 40);

    // A whole segment deleted from the middle.
    let names = segment_files(dir.path());
    drop(reopened);
    std::fs::remove_file(&names[2]).unwrap();
    let report = report(dir.path());
    assert_eq!(
        report.first_finding().map(Finding::kind),
        Some(TamperKind::Missing),
        "{report}"
    );
}

#[test]
fn sparse_checkpoints_bound_the_first_bad_entry() {
    // One checkpoint over five entries; the attacker drops e2, alters e3 and e4, and rebuilds
    // the tree file. Nothing pins the change closer than "before entry 4".
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), &numbered(0..5), true);
    forge(
        dir.path(),
        &[entry(0), entry(1), b"x".to_vec(), b"y".to_vec()],
        true,
    );
    let report = report(dir.path());
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Truncated {
            entries: 4,
            expected: 5,
            vouched: 0
        }),
        "{report}"
    );
    assert_eq!(report.first_bad_entry(), Some(0));
    assert!(
        report
            .to_string()
            .contains("entries 0..4 cannot be checked"),
        "{report}"
    );
}

#[test]
fn checkpoint_contradicting_a_later_one_is_a_fork() {
    let dir = twenty();
    // Validly signed, but the log that checkpoint 20 vouches for has another root at 10.
    let mut rogue = signer();
    let lie = rogue.sign(10, tenet_ledger::leaf_hash(b"lie")).unwrap();
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join("checkpoints"))
        .unwrap();
    file.write_all(format!("{}\n", lie.text()).as_bytes())
        .unwrap();
    let report = report(dir.path());
    let kinds: Vec<TamperKind> = report.findings.iter().map(Finding::kind).collect();
    assert_eq!(
        kinds,
        vec![TamperKind::CheckpointRollback, TamperKind::ForkedCheckpoint],
        "{report}"
    );
}

/// A bounded verification reads only the entries and checkpoints up to its bound: what was
/// appended after it (here damaged) is not its business; the whole ledger is.
#[test]
fn a_bounded_verification_stops_at_its_bound() {
    let dir = twenty();
    {
        let mut ledger = open(dir.path());
        ledger.append_batch(&numbered(20..30)).unwrap();
        ledger.checkpoint(&mut signer()).unwrap();
    }
    flip_byte(&segment(dir.path()), payload_offset(25) + 3);
    let bounded = VerifyOptions {
        up_to: Some(20),
        ..VerifyOptions::default()
    };
    let report = verify_with(dir.path(), &verifier(), &bounded).unwrap();
    assert_eq!(report.verdict, Verdict::Verified, "{report}");
    assert_eq!(report.entries, 20);
    assert_eq!(report.anchored_entries(), 20);
    let whole = super::support::report(dir.path());
    assert_eq!(
        whole.first_finding(),
        Some(&Finding::Modified { entry: 25 }),
        "{whole}"
    );
}

/// A ledger in `dir/log` of five entries signed by a signer keeping its state in
/// `dir/signer.state`: (ledger dir, state file, ledger, signer).
fn five_signed(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    Ledger,
    CheckpointSigner,
) {
    let (log, state) = (dir.join("log"), dir.join("signer.state"));
    let mut ledger = open(&log);
    let mut s = signer().with_state_file(&state).unwrap();
    ledger.append_batch(&numbered(0..5)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    (log, state, ledger, s)
}

/// The checkpoint the signer's state names is stored before the state is written, so it is
/// always in the checkpoints file: its absence means checkpoints were removed, and nothing
/// more is signed (signing on would leave no trace of the removal). A crash between storing
/// and recording leaves the state behind, which is fine.
#[test]
fn a_removed_checkpoint_stops_signing_but_a_crash_before_recording_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (log, state, mut ledger, mut s) = five_signed(dir.path());
    let kept = std::fs::read_to_string(log.join("checkpoints")).unwrap();
    ledger.append_batch(&numbered(5..9)).unwrap();
    ledger.checkpoint(&mut s).unwrap();
    drop(ledger);

    // The newest checkpoint removed: refused, naming what is left.
    std::fs::write(log.join("checkpoints"), &kept).unwrap();
    let mut ledger = open(&log);
    let mut restarted = signer().with_state_file(&state).unwrap();
    match ledger.checkpoint(&mut restarted) {
        Err(LedgerError::NotWhatWasSigned {
            signed_size: 9,
            reason,
        }) => assert!(reason.contains("the newest stored covers 5"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let reader = tenet_ledger::LedgerReader::open(&log).unwrap();
    assert!(
        reader
            .check_signed_history(restarted.last_signed())
            .is_err()
    );
    drop(ledger);

    // A crash after storing a checkpoint, before recording it: the state is behind the file.
    let dir = tempfile::tempdir().unwrap();
    let (log, state, mut ledger, mut s) = five_signed(dir.path());
    ledger.append_batch(&numbered(5..9)).unwrap();
    let unrecorded = s.prepare(9, ledger.root()).unwrap();
    let mut notes = std::fs::read_to_string(log.join("checkpoints")).unwrap();
    notes.push_str(&format!("{}\n", unrecorded.text()));
    std::fs::write(log.join("checkpoints"), notes).unwrap();
    drop(ledger);
    let mut ledger = open(&log);
    let mut restarted = signer().with_state_file(&state).unwrap();
    assert_eq!(restarted.last_signed().map(|(size, _)| size), Some(5));
    ledger.append_batch(&numbered(9..10)).unwrap();
    assert_eq!(ledger.checkpoint(&mut restarted).unwrap().size(), 10);
    assert_eq!(report(&log).verdict, Verdict::Verified);
}

/// A ledger file replaced by a FIFO or a device is refused at once, naming it: a FIFO would
/// block its reader forever and `/dev/zero` never ends.
#[test]
fn ledger_files_that_are_not_regular_files_are_refused_without_hanging() {
    for (what, file) in [
        ("segment", "segments/00000000000000000000.seg"),
        ("tree", "tree.hashes"),
        ("checkpoints", "checkpoints"),
    ] {
        let dir = twenty();
        let path = dir.path().join(file);
        std::fs::remove_file(&path).unwrap();
        if what == "checkpoints" {
            std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        } else {
            let made = std::process::Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap();
            assert!(made.success());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let checked = dir.path().to_owned();
        std::thread::spawn(move || {
            let verified =
                verify_with(&checked, &verifier(), &VerifyOptions::default()).map(|r| r.verdict);
            let opened = Ledger::open(&checked, LedgerOptions::default()).map(drop);
            let _ = tx.send((
                verified.map_err(|e| e.to_string()),
                opened.map_err(|e| e.to_string()),
            ));
        });
        let (verified, opened) = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{what}: hung"));
        for result in [verified.map(drop), opened] {
            let error = result.expect_err(what);
            assert!(error.contains("not a regular file"), "{what}: {error}");
            assert!(
                error.contains(file.rsplit('/').next().unwrap()),
                "{what}: {error}"
            );
        }
    }
}

/// After a clean stop (every entry signed, marked in the signer's state), entries appended by
/// anything but a writer holding the key are refused: by the next writer before it appends or
/// signs, and by a reader. A writer that starts clears the mark, so a crash afterwards leaves
/// its own unsigned entries acceptable.
#[test]
fn entries_appended_while_stopped_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, state, ledger, mut s) = five_signed(dir.path());
    s.mark_stopped().unwrap();
    drop(ledger);
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), Some(5));
    assert_eq!(
        tenet_ledger::read_signer_state(&state)
            .unwrap()
            .map(|(n, _)| n),
        Some(5)
    );

    // Someone without the key appends, tree file and all.
    let mut ledger = open(&log);
    ledger.append_batch(&numbered(5..7)).unwrap();
    drop(ledger);

    let ledger = open(&log);
    let restarted = signer().with_state_file(&state).unwrap();
    assert_eq!(restarted.stopped_at(), Some(5));
    match ledger.check_nothing_appended_while_stopped(restarted.stopped_at()) {
        Err(LedgerError::NotWhatWasSigned {
            signed_size: 5,
            reason,
        }) => assert!(
            reason.contains("2 entries were appended while Tenet was stopped"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let reader = tenet_ledger::LedgerReader::open(&log).unwrap();
    assert!(
        reader
            .check_nothing_appended_while_stopped(Some(5))
            .is_err()
    );
    let clock = std::sync::Arc::new(tenet_ledger::ManualClock::new(std::time::Instant::now()));
    let refused = tenet_ledger::LedgerSink::start(
        ledger,
        restarted,
        tenet_ledger::SinkOptions::default(),
        clock,
    );
    assert!(refused.is_err());

    // A start refused for a tampered history keeps the mark for the next one.
    let dir = tempfile::tempdir().unwrap();
    let (log, state, ledger, mut s) = five_signed(dir.path());
    s.mark_stopped().unwrap();
    drop(ledger);
    let mut entries = numbered(0..5);
    entries[2] = b"{\"seq\":2,\"event\":\"forged\"}".to_vec();
    forge(&log, &entries, false);
    let clock = std::sync::Arc::new(tenet_ledger::ManualClock::new(std::time::Instant::now()));
    let refused = tenet_ledger::LedgerSink::start(
        open(&log),
        signer().with_state_file(&state).unwrap(),
        tenet_ledger::SinkOptions::default(),
        clock,
    );
    assert!(refused.is_err());
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), Some(5));

    // A writer that starts on an untouched ledger clears the mark.
    let dir = tempfile::tempdir().unwrap();
    let (_, state, ledger, mut s) = five_signed(dir.path());
    s.mark_stopped().unwrap();
    let mut restarted = signer().with_state_file(&state).unwrap();
    ledger
        .check_nothing_appended_while_stopped(restarted.stopped_at())
        .unwrap();
    restarted.mark_running().unwrap();
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), None);
    assert_eq!(
        tenet_ledger::read_signer_state(&state)
            .unwrap()
            .map(|(n, _)| n),
        Some(5)
    );
}
