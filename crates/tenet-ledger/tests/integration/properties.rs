//! Property tests: random append sequences; every proof of the resulting trees verifies.

use proptest::prelude::*;
use tenet_ledger::{LedgerOptions, SyncPolicy, tree_root, verify_consistency};

fn batches() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let entry = proptest::collection::vec(any::<u8>(), 0..40);
    let batch = proptest::collection::vec(entry, 1..8);
    proptest::collection::vec(batch, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_inclusion_and_consistency_proof_verifies(batches in batches()) {
        let dir = tempfile::tempdir().unwrap();
        let options = LedgerOptions { sync: SyncPolicy::Never, ..LedgerOptions::default() };
        let mut ledger = super::support::open_with(dir.path(), options.clone()).unwrap().ledger;
        let mut all: Vec<Vec<u8>> = Vec::new();
        for batch in &batches {
            let range = ledger.append_batch(batch).unwrap();
            prop_assert_eq!(range.start, all.len() as u64);
            all.extend(batch.iter().cloned());
            prop_assert_eq!(range.end, all.len() as u64);
        }
        let n = all.len() as u64;
        let roots: Vec<_> = (0..=n).map(|s| ledger.root_at(s).unwrap()).collect();
        for size in 0..=n {
            prop_assert_eq!(roots[size as usize], tree_root(&all[..size as usize]));
        }
        for size in 1..=n {
            for index in 0..size {
                let proof = ledger.prove_inclusion(index, size).unwrap();
                prop_assert!(proof.verify_entry(&all[index as usize], &roots[size as usize]).is_ok());
                if size > 1 {
                    let other = &roots[size as usize - 1];
                    prop_assert!(proof.verify(other).is_err());
                }
            }
            for old in 1..=size {
                let proof = ledger.prove_consistency(old, size).unwrap();
                prop_assert!(proof.verify(&roots[old as usize], &roots[size as usize]).is_ok());
                if old < size {
                    prop_assert!(verify_consistency(
                        old, size,
                        roots[old as usize - 1].as_bytes(),
                        roots[size as usize].as_bytes(),
                        &proof.hashes,
                    ).is_err());
                }
            }
        }
        drop(ledger);
        let reopened = super::support::open_with(dir.path(), options).unwrap();
        prop_assert!(reopened.warnings.is_empty());
        prop_assert_eq!(reopened.ledger.root(), roots[n as usize]);
    }
}
