//! Inclusion and consistency proofs as JSON-serialisable values, with their verification.
//!
//! JSON shape (hashes are 64 lowercase hex digits; the proof hashes are bottom-up, exactly the
//! RFC 9162 `inclusion_path` / `consistency_path`):
//!
//! ```json
//! {"index": 3, "tree_size": 7, "leaf_hash": "…", "hashes": ["…", "…"]}
//! {"old_size": 3, "new_size": 7, "hashes": ["…", "…"]}
//! ```
//!
//! A proof carries no root on purpose: the verifier must take the root from a checkpoint it
//! trusts.

use serde::{Deserialize, Serialize};

use crate::hash::{Hash, leaf_hash};
use crate::merkle::{ProofError, verify_consistency, verify_inclusion};

/// Proof that one entry is in the tree of a given size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// Zero-based index of the entry.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// RFC 9162 leaf hash of the entry.
    pub leaf_hash: Hash,
    /// The inclusion path, bottom-up.
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Check the proof against the root of a trusted checkpoint of `tree_size` entries.
    pub fn verify(&self, root: &Hash) -> Result<(), ProofError> {
        verify_inclusion(
            self.leaf_hash.as_bytes(),
            self.index,
            self.tree_size,
            &self.hashes,
            root.as_bytes(),
        )
    }

    /// Check that `entry` is the proven entry, then the proof against `root`.
    pub fn verify_entry(&self, entry: &[u8], root: &Hash) -> Result<(), ProofError> {
        if leaf_hash(entry) != self.leaf_hash {
            return Err(ProofError::LeafMismatch);
        }
        self.verify(root)
    }
}

/// Proof that a tree of `new_size` entries extends the tree of `old_size` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub old_size: u64,
    /// Size of the newer tree.
    pub new_size: u64,
    /// The consistency path.
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Check the proof against the roots of two trusted checkpoints.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        verify_consistency(
            self.old_size,
            self.new_size,
            old_root.as_bytes(),
            new_root.as_bytes(),
            &self.hashes,
        )
    }
}
