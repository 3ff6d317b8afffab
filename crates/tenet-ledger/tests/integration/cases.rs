//! Field cases from shared/cases/audit-log.md, one test per case input, named after the id.

use tenet_ledger::{
    Completeness, Finding, Hash, TamperKind, Verdict, VerifyOptions, empty_root, leaf_hash,
    node_hash, tree_root, verify_inclusion, verify_with,
};

use super::support::{entry, forge, ledger_with, numbered, report, tree, verifier};

/// e1..e5, each sealed by a signed checkpoint as it is appended (the case's per-entry
/// signature), and the checkpoint {5, H5} also kept outside the log store (passed to the
/// verifier as trusted).
fn f027_log() -> (tempfile::TempDir, VerifyOptions) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = super::support::open(dir.path());
    let mut signer = super::support::signer();
    let mut last = None;
    for n in 1..6 {
        ledger.append(&entry(n)).unwrap();
        last = Some(ledger.checkpoint(&mut signer).unwrap());
    }
    let h5 = last.unwrap();
    assert_eq!(h5.size(), 5);
    let options = VerifyOptions {
        trusted_checkpoints: vec![h5.text().to_owned()],
        ..VerifyOptions::default()
    };
    (dir, options)
}

fn f027_verify(dir: &std::path::Path, options: &VerifyOptions) -> tenet_ledger::Report {
    let report = verify_with(dir, &verifier(), options).unwrap();
    println!("{report}");
    report
}

/// Run a case input twice: the attacker rewrites the records only (the tree file tells what
/// changed), or the records and the tree file (only the checkpoints speak).
fn f027_both(entries: &[Vec<u8>], records_only: Finding, with_tree: Finding) {
    for (rebuild_tree, want) in [(false, records_only), (true, with_tree)] {
        let (dir, options) = f027_log();
        forge(dir.path(), entries, rebuild_tree);
        let report = f027_verify(dir.path(), &options);
        assert_eq!(report.verdict, Verdict::Tampered);
        assert_eq!(
            report.first_finding(),
            Some(&want),
            "tree rebuilt: {rebuild_tree}"
        );
    }
}

#[test]
fn f027_1_tail_cut_is_truncation_at_entry_3() {
    let truncated = Finding::Truncated {
        entries: 3,
        expected: 5,
        vouched: 3,
    };
    f027_both(&numbered(1..4), truncated.clone(), truncated);
}

#[test]
fn f027_2_deleted_log_is_truncation_at_entry_0() {
    let (dir, options) = f027_log();
    // log = (empty): every file of the log store is gone; only the outside checkpoint stays.
    std::fs::remove_dir_all(dir.path().join("segments")).unwrap();
    std::fs::remove_file(tree(dir.path())).unwrap();
    std::fs::remove_file(dir.path().join("checkpoints")).unwrap();
    let report = f027_verify(dir.path(), &options);
    assert_eq!(report.verdict, Verdict::Tampered);
    assert_eq!(report.entries, 0);
    assert_eq!(
        report.first_finding(),
        Some(&Finding::Truncated {
            entries: 0,
            expected: 5,
            vouched: 0
        })
    );
    // The store's own checkpoint history is gone too: that is a rollback.
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind() == TamperKind::CheckpointRollback)
    );
}

#[test]
fn f027_3_reordered_entries_are_named() {
    f027_both(
        &[entry(1), entry(3), entry(2), entry(4), entry(5)],
        Finding::Reordered {
            entry: 1,
            original: 2,
        },
        Finding::Rewritten {
            from: 1,
            to: 2,
            checkpoint_size: 2,
        },
    );
}

#[test]
fn f027_4_relinked_entries_without_the_key_are_a_forgery() {
    // log = e1,e2,e4',e5': e3 dropped and later entries altered, with everything a keyless
    // attacker can recompute (checksums, leaf and node hashes) recomputed.
    let relinked = |n| {
        let mut e = entry(n);
        e.extend_from_slice(b" relinked");
        e
    };
    f027_both(
        &[entry(1), entry(2), relinked(4), relinked(5)],
        Finding::Modified { entry: 2 },
        Finding::Rewritten {
            from: 2,
            to: 3,
            checkpoint_size: 3,
        },
    );
}

#[test]
fn f027_5_gap_is_a_missing_entry() {
    f027_both(
        &[entry(1), entry(2), entry(4), entry(5)],
        Finding::Missing { entry: 2, count: 1 },
        Finding::Rewritten {
            from: 2,
            to: 3,
            checkpoint_size: 3,
        },
    );
}

#[test]
fn f027_6_unmodified_log_verifies() {
    let (dir, options) = f027_log();
    let report = f027_verify(dir.path(), &options);
    assert_eq!(report.verdict, Verdict::Verified);
    assert!(report.findings.is_empty());
    assert_eq!(
        report.completeness,
        Completeness::Anchored {
            size: 5,
            unanchored: 0
        }
    );
}

#[test]
fn f027_without_checkpoint_completeness_is_unknown_never_just_valid() {
    let dir = tempfile::tempdir().unwrap();
    ledger_with(dir.path(), &numbered(1..6), false);
    let report = report(dir.path());
    assert_eq!(report.verdict, Verdict::IntegrityOnly);
    assert_eq!(report.completeness, Completeness::Unknown);
    assert!(
        report
            .to_string()
            .contains("integrity only, completeness unknown")
    );

    // The weakness this names: a cut tail goes unnoticed without a checkpoint.
    forge(dir.path(), &numbered(1..4), true);
    let report = super::support::report(dir.path());
    assert_eq!(report.verdict, Verdict::IntegrityOnly);
    assert_eq!(report.entries, 3);
}

#[test]
fn f028_1_odd_node_is_not_duplicated() {
    assert_ne!(
        tree_root([b"a", b"b", b"c"]),
        tree_root([b"a", b"b", b"c", b"c"])
    );
}

#[test]
fn f028_2_odd_pair_is_not_duplicated() {
    let six = [b"a", b"b", b"c", b"d", b"e", b"f"];
    let eight = [b"a", b"b", b"c", b"d", b"e", b"f", b"e", b"f"];
    assert_ne!(tree_root(six), tree_root(eight));
}

#[test]
fn f028_3_a_leaf_cannot_stand_in_for_a_node() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    let mut x = a.as_bytes().to_vec();
    x.extend_from_slice(b.as_bytes());
    assert_eq!(x.len(), 64);
    assert_ne!(tree_root([x.as_slice()]), tree_root([b"a", b"b"]));
    assert_eq!(tree_root([b"a", b"b"]), node_hash(&a, &b));
}

#[test]
fn f028_4_inclusion_at_index_3_of_a_tree_of_3_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = super::support::open(dir.path());
    ledger.append_batch(&[b"a", b"b", b"c"]).unwrap();
    let root = ledger.root();
    assert!(
        ledger.prove_inclusion(3, 3).is_err(),
        "no phantom proof is generated"
    );
    // Replaying index 2's proof, or any proof, for index 3 fails.
    let real = ledger.prove_inclusion(2, 3).unwrap();
    for leaf in [leaf_hash(b"c"), leaf_hash(b"d")] {
        assert!(verify_inclusion(leaf.as_bytes(), 3, 3, &real.hashes, root.as_bytes()).is_err());
        assert!(verify_inclusion(leaf.as_bytes(), 3, 3, &[] as &[Hash], root.as_bytes()).is_err());
    }
}

#[test]
fn f028_5_root_of_one_entry_is_not_its_raw_bytes() {
    let a = b"a".repeat(32);
    let root = tree_root([a.as_slice()]);
    assert_ne!(root.as_bytes().as_slice(), a.as_slice());
    assert_eq!(root, leaf_hash(&a));
    assert_ne!(root, empty_root());
}

/// A checkpoint completed on another thread while the ledger goes on appending covers exactly
/// the tree it was begun on; the log verifies, with the later entries not yet anchored, and
/// the next checkpoint extends it.
#[test]
fn a_checkpoint_completed_while_appending_covers_the_tree_it_was_begun_on() {
    use tenet_ledger::CheckpointStart;
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = super::support::open(dir.path());
    let mut signer = super::support::signer();
    ledger
        .append_batch(&super::support::numbered(0..5))
        .unwrap();
    let CheckpointStart::Job(job) = ledger.begin_checkpoint(signer.origin()).unwrap() else {
        panic!("a fresh ledger has no checkpoint to reuse");
    };
    assert_eq!(job.size(), 5);
    let worker = std::thread::spawn(move || job.complete(&mut signer).map(|s| (s, signer)));
    ledger
        .append_batch(&super::support::numbered(5..9))
        .unwrap();
    let (signed, mut signer) = worker.join().unwrap().unwrap();
    assert_eq!(signed.size(), 5);
    ledger.finish_checkpoint(&signed);

    let report = super::support::report(dir.path());
    assert_eq!(report.verdict, Verdict::Verified, "{report:?}");
    assert_eq!(
        report.completeness,
        Completeness::Anchored {
            size: 5,
            unanchored: 4
        }
    );
    // Nothing new since a checkpoint: the stored one is handed back, not signed again.
    let next = ledger.checkpoint(&mut signer).unwrap();
    assert_eq!(next.size(), 9);
    assert!(matches!(
        ledger.begin_checkpoint(signer.origin()).unwrap(),
        CheckpointStart::Current(c) if c.size() == 9
    ));
    // An older checkpoint reported late does not replace the newer one.
    ledger.finish_checkpoint(&signed);
    assert!(matches!(
        ledger.begin_checkpoint(signer.origin()).unwrap(),
        CheckpointStart::Current(c) if c.size() == 9
    ));
    assert_eq!(
        super::support::report(dir.path()).verdict,
        Verdict::Verified
    );
}
