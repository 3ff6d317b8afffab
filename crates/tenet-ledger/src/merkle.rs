//! RFC 9162 Merkle tree algorithms: roots, proof generation over stored subtree hashes, and
//! proof verification.
//!
//! The tree over entries `D[0..n]` is the one RFC 9162 §2.1.1 defines: a leaf is
//! SHA-256(0x00 || entry), an interior node SHA-256(0x01 || left || right), the left subtree
//! holds the largest power of two strictly smaller than `n` entries, and an odd node is carried
//! up, never duplicated. Proof generation needs only the hashes of *perfect* subtrees (aligned
//! power-of-two ranges), which is exactly what the tree file stores.

use crate::hash::{HASH_LEN, Hash, empty_root, node_hash};

/// Where the hashes of perfect subtrees come from (the tree file, or memory in tests).
pub trait NodeSource {
    /// The error reading a node.
    type Error;

    /// The hash of the perfect subtree at `level` (0 = leaves) with position `index` on that
    /// level, covering entries `[index << level, (index + 1) << level)`. Callers only ask for
    /// subtrees that lie inside the stored tree.
    fn perfect_node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[lo..hi]) for `lo < hi` where `lo` is a multiple of the largest power of two not above
/// `hi - lo` (true for every range the RFC recursion visits). Reads one perfect subtree per set
/// bit of `hi - lo` and folds them from the right.
pub(crate) fn range_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let mut chunks: Vec<Hash> = Vec::with_capacity(64);
    let mut start = lo;
    for level in (0..64u32).rev() {
        let width = 1u64 << level;
        if (hi - lo) & width != 0 {
            chunks.push(src.perfect_node(level, start >> level)?);
            start += width;
        }
    }
    Ok(fold_right(&chunks))
}

/// Fold perfect-subtree hashes listed left to right into the hash of their union.
fn fold_right(chunks: &[Hash]) -> Hash {
    let mut iter = chunks.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The root of the first `size` entries.
pub(crate) fn root_at<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// The RFC 9162 §2.1.3.1 inclusion path of entry `index` in the tree of `size` entries,
/// bottom-up. Requires `index < size`, both within the stored tree.
pub(crate) fn inclusion_path<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let (mut lo, mut hi) = (0, size);
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            top_down.push(range_hash(src, mid, hi)?);
            hi = mid;
        } else {
            top_down.push(range_hash(src, lo, mid)?);
            lo = mid;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The RFC 9162 §2.1.4.1 consistency proof from `old` to `new` entries.
/// Requires `0 < old < new`, both within the stored tree.
pub(crate) fn consistency_path<S: NodeSource>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, S::Error> {
    let (mut lo, mut hi) = (0, new);
    let mut whole_old_tree = true;
    let mut top_down = Vec::new();
    // INVARIANT: lo < old <= hi.
    while old != hi {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            top_down.push(range_hash(src, mid, hi)?);
            hi = mid;
        } else {
            top_down.push(range_hash(src, lo, mid)?);
            lo = mid;
            whole_old_tree = false;
        }
    }
    let mut proof = Vec::with_capacity(top_down.len() + 1);
    if !whole_old_tree {
        proof.push(range_hash(src, lo, hi)?);
    }
    proof.extend(top_down.into_iter().rev());
    Ok(proof)
}

/// The right edge of an append-only tree: one perfect-subtree hash per set bit of the size,
/// largest (leftmost) first. Enough to append and to compute the root; memory is O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the first `size` entries, read from stored perfect subtrees.
    pub(crate) fn load<S: NodeSource>(src: &S, size: u64) -> Result<Self, S::Error> {
        let mut nodes = Vec::with_capacity(64);
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                nodes.push(src.perfect_node(level, start >> level)?);
                start += width;
            }
        }
        Ok(Self { size, nodes })
    }

    /// Number of leaves.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf hash; `emit` sees the leaf and then each perfect subtree it completes,
    /// bottom-up (post-order, the order the tree file stores them).
    pub(crate) fn push(&mut self, leaf: Hash, mut emit: impl FnMut(&Hash)) {
        emit(&leaf);
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            emit(&hash);
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub(crate) fn root(&self) -> Hash {
        fold_right(&self.nodes)
    }
}

/// The RFC 9162 root of a list of entries, computed in memory (O(log n) space).
pub fn tree_root<E: AsRef<[u8]>>(entries: impl IntoIterator<Item = E>) -> Hash {
    let mut frontier = Frontier::default();
    for entry in entries {
        frontier.push(crate::hash::leaf_hash(entry.as_ref()), |_| {});
    }
    frontier.root()
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not inside a tree of {size} entries")]
    IndexOutOfRange {
        /// The claimed index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// A consistency proof from a larger to a smaller tree.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldLargerThanNew {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// Consistency with the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyOldTree,
    /// A hash (leaf, root or proof element) is not 32 bytes.
    #[error("{what} is {len} bytes, not {HASH_LEN}")]
    HashLength {
        /// Which value.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, a proof for these sizes has {want}")]
    WrongLength {
        /// Hashes given.
        got: usize,
        /// Hashes expected.
        want: usize,
    },
    /// The entry does not hash to the leaf hash the proof is about.
    #[error("the entry does not hash to the proof's leaf hash")]
    LeafMismatch,
    /// The proof does not lead to the given root.
    #[error("proof does not lead to the {which} root")]
    RootMismatch {
        /// `"tree"`, `"old"` or `"new"`.
        which: &'static str,
    },
}

fn hash_arg(what: &'static str, bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::from_slice(bytes).ok_or(ProofError::HashLength {
        what,
        len: bytes.len(),
    })
}

fn hash_args<H: AsRef<[u8]>>(proof: &[H]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .map(|h| hash_arg("a proof hash", h.as_ref()))
        .collect()
}

/// Verify that the entry with `leaf_hash` is at `index` in the tree of `size` entries whose
/// root is `root`, given the RFC 9162 inclusion path `proof` (bottom-up).
///
/// Hashes are raw bytes so that malformed input is reported rather than unrepresentable:
/// every hash must be 32 bytes.
pub fn verify_inclusion<H: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[H],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = hash_arg("the leaf hash", leaf_hash)?;
    let root = hash_arg("the root", root)?;
    let proof = hash_args(proof)?;
    let want = path_len(index, size - 1);
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }

    // RFC 9162 §2.1.3.2.
    let (mut fnode, mut snode, mut acc) = (index, size - 1, leaf);
    for sibling in &proof {
        if fnode & 1 == 1 || fnode == snode {
            acc = node_hash(sibling, &acc);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            acc = node_hash(&acc, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    if acc != root {
        return Err(ProofError::RootMismatch { which: "tree" });
    }
    Ok(())
}

/// Verify that the tree of `new_size` entries with root `new_root` extends the tree of
/// `old_size` entries with root `old_root`, given the RFC 9162 consistency proof.
///
/// Equal sizes need an empty proof and identical roots. An old size of zero is refused:
/// consistency with the empty tree proves nothing.
pub fn verify_consistency<H: AsRef<[u8]>>(
    old_size: u64,
    new_size: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[H],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldLargerThanNew {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch { which: "new" });
        }
        return Ok(());
    }
    let old_root = hash_arg("the old root", old_root)?;
    let new_root = hash_arg("the new root", new_root)?;
    let mut path = hash_args(proof)?;

    // RFC 9162 §2.1.4.2: a power-of-two old tree is a node of the new one; its hash is implied.
    if old_size.is_power_of_two() {
        path.insert(0, old_root);
    }
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let want = path_len(fnode, snode) + usize::from(!old_size.is_power_of_two());
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength { got: 0, want });
    };
    if proof.len() != want {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    let (mut old_acc, mut new_acc) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            old_acc = node_hash(c, &old_acc);
            new_acc = node_hash(c, &new_acc);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            new_acc = node_hash(&new_acc, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want,
        });
    }
    if old_acc != old_root {
        return Err(ProofError::RootMismatch { which: "old" });
    }
    if new_acc != new_root {
        return Err(ProofError::RootMismatch { which: "new" });
    }
    Ok(())
}

/// Number of proof hashes the RFC 9162 verification loops consume starting from (fn, sn):
/// the inclusion path length for (index, size - 1), and the length after the seed for a
/// consistency proof.
fn path_len(mut fnode: u64, mut snode: u64) -> usize {
    let mut len = 0usize;
    while snode != 0 {
        len += 1;
        if fnode & 1 == 1 || fnode == snode {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    /// Perfect subtrees computed from leaves by recursion: slow, obviously right.
    struct Leaves(Vec<Hash>);

    impl NodeSource for Leaves {
        type Error = ();
        fn perfect_node(&self, level: u32, index: u64) -> Result<Hash, ()> {
            if level == 0 {
                return self
                    .0
                    .get(usize::try_from(index).unwrap())
                    .copied()
                    .ok_or(());
            }
            let left = self.perfect_node(level - 1, index * 2)?;
            let right = self.perfect_node(level - 1, index * 2 + 1)?;
            Ok(node_hash(&left, &right))
        }
    }

    /// MTH exactly as RFC 9162 §2.1.1 writes it.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Leaves {
        Leaves((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect())
    }

    #[test]
    fn frontier_and_stored_roots_match_the_rfc_definition() {
        let all = leaves(70);
        let mut frontier = Frontier::default();
        for n in 1..=70u64 {
            frontier.push(all.0[n as usize - 1], |_| {});
            let want = mth(&all.0[..n as usize]);
            assert_eq!(frontier.root(), want, "frontier at {n}");
            assert_eq!(root_at(&all, n).unwrap(), want, "stored at {n}");
            assert_eq!(Frontier::load(&all, n).unwrap(), frontier, "load at {n}");
        }
    }

    #[test]
    fn every_proof_of_small_trees_verifies_and_mutations_fail() {
        let all = leaves(33);
        for size in 1..=33u64 {
            let root = root_at(&all, size).unwrap();
            for index in 0..size {
                let proof = inclusion_path(&all, index, size).unwrap();
                let leaf = all.0[index as usize];
                verify_inclusion(leaf.as_bytes(), index, size, &proof, root.as_bytes()).unwrap();
                if index + 1 < size {
                    let other = all.0[index as usize + 1];
                    assert!(
                        verify_inclusion(other.as_bytes(), index, size, &proof, root.as_bytes())
                            .is_err()
                    );
                }
            }
            for old in 1..size {
                let old_root = root_at(&all, old).unwrap();
                let proof = consistency_path(&all, old, size).unwrap();
                verify_consistency(old, size, old_root.as_bytes(), root.as_bytes(), &proof)
                    .unwrap();
                let mut bad = proof.clone();
                bad.push(root);
                assert!(
                    verify_consistency(old, size, old_root.as_bytes(), root.as_bytes(), &bad)
                        .is_err()
                );
            }
        }
    }

    #[test]
    fn inclusion_beyond_the_tree_is_rejected() {
        let all = leaves(3);
        let root = root_at(&all, 3).unwrap();
        let leaf = all.0[2];
        let err = verify_inclusion(leaf.as_bytes(), 3, 3, &[root], root.as_bytes()).unwrap_err();
        assert_eq!(err, ProofError::IndexOutOfRange { index: 3, size: 3 });
    }
}
