//! The tree file: every perfect-subtree hash of the log, stored in post-order.
//!
//! `tree.hashes` is a flat array of 32-byte hashes. Appending leaf `i` writes the leaf hash and
//! then the hash of every perfect subtree that leaf completes (`trailing_zeros(i + 1)` of them),
//! so the file only ever grows and a tree of `n` leaves holds exactly `2n - popcount(n)` hashes
//! (about 64 bytes per entry). The node at `level` with position `index` on that level sits at
//! slot `2(m - 1) - popcount(m - 1) + level` with `m = (index + 1) << level`, so any perfect
//! subtree is one positioned read. A proof or a root over any size needs O(log n) reads; the
//! writer keeps only the right frontier (at most 64 hashes) in memory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::hash::{HASH_LEN, Hash};
use crate::merkle::{Frontier, NodeSource};

const HASH_BYTES: u64 = HASH_LEN as u64;

/// Number of stored hashes for a tree of `leaves` leaves.
pub(crate) fn nodes_for(leaves: u64) -> u64 {
    2 * leaves - u64::from(leaves.count_ones())
}

/// The most leaves whose hashes fit in `nodes` stored hashes.
pub(crate) fn leaves_for_nodes(nodes: u64) -> u64 {
    // nodes_for is strictly increasing, and nodes_for(n) >= n.
    let (mut lo, mut hi) = (0u64, nodes);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if nodes_for(mid) <= nodes {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Slot of the perfect subtree at (`level`, `index`).
fn slot(level: u32, index: u64) -> u64 {
    let m = (index + 1) << level;
    nodes_for(m - 1) + u64::from(level)
}

fn outside(level: u32, index: u64, leaves: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("subtree ({level}, {index}) is outside a stored tree of {leaves} leaves"),
    )
}

/// The tree file, open for reading and (for the ledger's writer) appending.
#[derive(Debug)]
pub(crate) struct TreeFile {
    file: File,
    path: PathBuf,
    leaves: u64,
    frontier: Frontier,
}

impl TreeFile {
    /// Open (creating when `writable`) the tree file. Returns the file and the number of
    /// trailing bytes that do not form a complete leaf group (a torn write); a writable open
    /// cuts them.
    pub(crate) fn open(path: &Path, writable: bool) -> io::Result<(Self, u64)> {
        crate::segment::require_regular(path)?;
        let file = if writable {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?
        } else {
            File::open(path)?
        };
        let bytes = file.metadata()?.len();
        let leaves = leaves_for_nodes(bytes / HASH_BYTES);
        let used = nodes_for(leaves) * HASH_BYTES;
        if writable && used != bytes {
            file.set_len(used)?;
        }
        let mut tree = Self {
            file,
            path: path.to_owned(),
            leaves,
            frontier: Frontier::default(),
        };
        tree.frontier = Frontier::load(&tree, leaves)?;
        Ok((tree, bytes - used))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Number of leaves stored.
    pub(crate) fn leaves(&self) -> u64 {
        self.leaves
    }

    /// The root over every stored leaf.
    pub(crate) fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Append leaf hashes and the subtrees they complete, in one write.
    pub(crate) fn append(&mut self, leaves: &[Hash]) -> io::Result<()> {
        let before = self.frontier.clone();
        let mut buf = Vec::with_capacity(leaves.len() * 2 * HASH_LEN);
        for leaf in leaves {
            self.frontier
                .push(*leaf, |h| buf.extend_from_slice(h.as_bytes()));
        }
        if let Err(e) = self
            .file
            .write_all_at(&buf, nodes_for(self.leaves) * HASH_BYTES)
        {
            self.frontier = before;
            return Err(e);
        }
        self.leaves = self.frontier.size();
        Ok(())
    }

    /// Keep only the first `leaves` leaves.
    pub(crate) fn truncate_to(&mut self, leaves: u64) -> io::Result<()> {
        self.file.set_len(nodes_for(leaves) * HASH_BYTES)?;
        self.leaves = leaves.min(self.leaves);
        self.frontier = Frontier::load(self, self.leaves)?;
        Ok(())
    }

    /// Re-read the length of a file another process appends to (read-only use).
    pub(crate) fn refresh(&mut self) -> io::Result<()> {
        let bytes = self.file.metadata()?.len();
        let leaves = leaves_for_nodes(bytes / HASH_BYTES);
        if leaves != self.leaves {
            self.leaves = leaves;
            self.frontier = Frontier::load(self, leaves)?;
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Another handle on the file, for syncing it from another thread.
    pub(crate) fn clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

impl NodeSource for TreeFile {
    type Error = io::Error;

    fn perfect_node(&self, level: u32, index: u64) -> io::Result<Hash> {
        index
            .checked_add(1)
            .and_then(|i| i.checked_mul(1u64.checked_shl(level)?))
            .filter(|end| *end <= self.leaves)
            .ok_or_else(|| outside(level, index, self.leaves))?;
        let mut raw = [0u8; HASH_LEN];
        self.file
            .read_exact_at(&mut raw, slot(level, index) * HASH_BYTES)?;
        Ok(Hash::from_bytes(raw))
    }
}

/// Sequential reader of the tree file, one leaf group (leaf + completed subtrees) at a time.
#[derive(Debug)]
pub(crate) struct TreeCursor {
    reader: Option<BufReader<File>>,
    next_leaf: u64,
    leaves: u64,
}

impl TreeCursor {
    /// Open the tree file at `path`; a missing file reads as an empty tree.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        crate::segment::require_regular(path)?;
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    reader: None,
                    next_leaf: 0,
                    leaves: 0,
                });
            }
            Err(e) => return Err(e),
        };
        let leaves = leaves_for_nodes(file.metadata()?.len() / HASH_BYTES);
        Ok(Self {
            reader: Some(BufReader::with_capacity(1 << 20, file)),
            next_leaf: 0,
            leaves,
        })
    }

    /// Read no leaf group at or past `limit`.
    pub(crate) fn up_to(mut self, limit: u64) -> Self {
        self.leaves = self.leaves.min(limit);
        self
    }

    /// Number of complete leaf groups in the file (at most the limit).
    pub(crate) fn leaves(&self) -> u64 {
        self.leaves
    }

    /// The next leaf hash, with the subtree hashes it completes in `parents` (bottom-up).
    pub(crate) fn next_group(&mut self, parents: &mut Vec<Hash>) -> io::Result<Option<Hash>> {
        if self.next_leaf >= self.leaves {
            return Ok(None);
        }
        let leaf = self.read_hash()?;
        parents.clear();
        for _ in 0..(self.next_leaf + 1).trailing_zeros() {
            parents.push(self.read_hash()?);
        }
        self.next_leaf += 1;
        Ok(Some(leaf))
    }

    fn read_hash(&mut self) -> io::Result<Hash> {
        let mut raw = [0u8; HASH_LEN];
        match &mut self.reader {
            Some(reader) => reader.read_exact(&mut raw)?,
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
        Ok(Hash::from_bytes(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, node_hash};

    #[test]
    fn slots_follow_post_order() {
        assert_eq!(slot(0, 0), 0);
        assert_eq!(slot(0, 1), 1);
        assert_eq!(slot(1, 0), 2);
        assert_eq!(slot(0, 2), 3);
        assert_eq!(slot(0, 3), 4);
        assert_eq!(slot(1, 1), 5);
        assert_eq!(slot(2, 0), 6);
        for n in 0..200 {
            assert_eq!(leaves_for_nodes(nodes_for(n)), n);
            if n > 0 {
                assert_eq!(leaves_for_nodes(nodes_for(n) - 1), n - 1);
            }
        }
    }

    #[test]
    fn stored_nodes_are_the_subtree_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tree.hashes");
        let (mut tree, torn) = TreeFile::open(&path, true).unwrap();
        assert_eq!(torn, 0);
        let leaves: Vec<Hash> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
        tree.append(&leaves[..3]).unwrap();
        tree.append(&leaves[3..]).unwrap();
        let n01 = node_hash(&leaves[0], &leaves[1]);
        let n23 = node_hash(&leaves[2], &leaves[3]);
        assert_eq!(tree.perfect_node(1, 0).unwrap(), n01);
        assert_eq!(tree.perfect_node(2, 0).unwrap(), node_hash(&n01, &n23));
        assert_eq!(tree.perfect_node(0, 4).unwrap(), leaves[4]);
        assert!(tree.perfect_node(1, 2).is_err());

        // A torn write of a partial leaf group is cut on open.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len + 40).unwrap();
        let (tree, torn) = TreeFile::open(&path, true).unwrap();
        assert_eq!((tree.leaves(), torn), (5, 40));
        assert_eq!(tree.root(), {
            let mut f = Frontier::default();
            leaves.iter().for_each(|l| f.push(*l, |_| {}));
            f.root()
        });
    }
}
