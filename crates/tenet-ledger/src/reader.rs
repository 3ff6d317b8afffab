//! Read-only access to a ledger directory: proofs, roots, entries and checkpoints, usable
//! while a writer appends (the files only grow).

use std::path::{Path, PathBuf};

use crate::checkpoint::{NoteLookup, SignedCheckpoint, find_note, read_last_note, read_notes};
use crate::error::{LedgerError, io_at};
use crate::hash::Hash;
use crate::merkle::{NodeSource, consistency_path, inclusion_path, root_at};
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::segment::{Header, SegmentReader, Step, list_segments, seek_hint};
use crate::tree_file::TreeFile;

/// Sub-directory holding the segment files.
pub(crate) const SEGMENTS_DIR: &str = "segments";
/// The tree file.
pub(crate) const TREE_FILE: &str = "tree.hashes";
/// The checkpoints file.
pub(crate) const CHECKPOINTS_FILE: &str = "checkpoints";

/// The root of the first `size` leaves of `tree` (which holds `stored` leaves).
pub(crate) fn root_in(tree: &TreeFile, stored: u64, size: u64) -> Result<Hash, LedgerError> {
    if size > stored {
        return Err(LedgerError::BadSizes {
            old: 0,
            new: size,
            size: stored,
        });
    }
    root_at(tree, size).map_err(io_at(tree.path()))
}

pub(crate) fn leaf_in(tree: &TreeFile, stored: u64, index: u64) -> Result<Hash, LedgerError> {
    if index >= stored {
        return Err(LedgerError::IndexOutOfRange {
            index,
            size: stored,
        });
    }
    tree.perfect_node(0, index).map_err(io_at(tree.path()))
}

pub(crate) fn inclusion_in(
    tree: &TreeFile,
    stored: u64,
    index: u64,
    tree_size: u64,
) -> Result<InclusionProof, LedgerError> {
    if tree_size > stored {
        return Err(LedgerError::BadSizes {
            old: 0,
            new: tree_size,
            size: stored,
        });
    }
    if index >= tree_size {
        return Err(LedgerError::IndexOutOfRange {
            index,
            size: tree_size,
        });
    }
    let hashes = inclusion_path(tree, index, tree_size).map_err(io_at(tree.path()))?;
    Ok(InclusionProof {
        index,
        tree_size,
        leaf_hash: leaf_in(tree, stored, index)?,
        hashes,
    })
}

pub(crate) fn consistency_in(
    tree: &TreeFile,
    stored: u64,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, LedgerError> {
    if old == 0 || old > new || new > stored {
        return Err(LedgerError::BadSizes {
            old,
            new,
            size: stored,
        });
    }
    let hashes = if old == new {
        Vec::new()
    } else {
        consistency_path(tree, old, new).map_err(io_at(tree.path()))?
    };
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes,
    })
}

/// Every checkpoint in the checkpoints file that parses, in file order (unverified).
pub(crate) fn stored_checkpoints(dir: &Path) -> Result<Vec<SignedCheckpoint>, LedgerError> {
    let path = dir.join(CHECKPOINTS_FILE);
    let stored = read_notes(&path).map_err(io_at(&path))?;
    stored
        .notes
        .iter()
        .map(|text| {
            SignedCheckpoint::parse(text).map_err(|error| LedgerError::BadCheckpoint {
                path: path.clone(),
                error,
            })
        })
        .collect()
}

/// The last stored checkpoint of exactly `size` entries in the ledger in `dir` (unverified):
/// [`LedgerReader::checkpoint_at`].
pub(crate) fn checkpoint_at(
    dir: &Path,
    size: u64,
) -> Result<Option<SignedCheckpoint>, LedgerError> {
    let path = dir.join(CHECKPOINTS_FILE);
    match find_note(&path, size).map_err(io_at(&path))? {
        NoteLookup::Found(text) => SignedCheckpoint::parse(&text)
            .map(Some)
            .map_err(|error| LedgerError::BadCheckpoint { path, error }),
        NoteLookup::Absent => Ok(None),
        NoteLookup::Unusable => Ok(stored_checkpoints_lenient(dir)?
            .into_iter()
            .rev()
            .find(|c| c.size() == size)),
    }
}

/// The checkpoints in the checkpoints file that parse, in file order (unverified); notes that
/// do not parse are left out (`tenet log verify` reports them).
pub(crate) fn stored_checkpoints_lenient(dir: &Path) -> Result<Vec<SignedCheckpoint>, LedgerError> {
    let path = dir.join(CHECKPOINTS_FILE);
    let stored = read_notes(&path).map_err(io_at(&path))?;
    Ok(stored
        .notes
        .iter()
        .filter_map(|text| SignedCheckpoint::parse(text).ok())
        .collect())
}

/// A read-only view of a ledger directory. It takes no lock and repairs nothing; its size is
/// the number of leaves completely written to the tree file when opened or refreshed.
#[derive(Debug)]
pub struct LedgerReader {
    dir: PathBuf,
    tree: TreeFile,
}

impl LedgerReader {
    /// Open the ledger in `dir` for reading.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let dir = dir.as_ref().to_owned();
        let path = dir.join(TREE_FILE);
        let (tree, _) = TreeFile::open(&path, false).map_err(io_at(&path))?;
        Ok(Self { dir, tree })
    }

    /// Pick up entries appended since opening.
    pub fn refresh(&mut self) -> Result<(), LedgerError> {
        self.tree.refresh().map_err(io_at(self.tree.path()))
    }

    /// Number of entries visible.
    pub fn size(&self) -> u64 {
        self.tree.leaves()
    }

    /// Root of all visible entries.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// Root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        root_in(&self.tree, self.size(), size)
    }

    /// Whether the visible entries still hold the tree the signing key last signed
    /// (`last_signed`, from [`crate::read_signer_state`]), as
    /// [`crate::Ledger::check_signed_history`] checks it.
    pub fn check_signed_history(
        &self,
        last_signed: Option<(u64, Hash)>,
    ) -> Result<(), LedgerError> {
        crate::ledger::check_signed_history(
            &self.dir,
            self.size(),
            |size| self.root_at(size),
            last_signed,
        )
    }

    /// Leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        leaf_in(&self.tree, self.size(), index)
    }

    /// Inclusion proof of entry `index` in the tree of `tree_size` entries.
    pub fn prove_inclusion(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, LedgerError> {
        inclusion_in(&self.tree, self.size(), index, tree_size)
    }

    /// Consistency proof from `old` to `new` entries (`0 < old <= new <= size`).
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, LedgerError> {
        consistency_in(&self.tree, self.size(), old, new)
    }

    /// The bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        if index >= self.size() {
            return Err(LedgerError::IndexOutOfRange {
                index,
                size: self.size(),
            });
        }
        read_entry(&self.dir, index)
    }

    /// The stored checkpoints in file order, parsed but not verified.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LedgerError> {
        stored_checkpoints(&self.dir)
    }

    /// [`crate::Ledger::check_nothing_appended_while_stopped`] for a reader.
    pub fn check_nothing_appended_while_stopped(
        &self,
        stopped_at: Option<u64>,
    ) -> Result<(), LedgerError> {
        crate::ledger::appended_while_stopped(self.size(), stopped_at)
    }

    /// The last stored checkpoint of exactly `size` entries, parsed but not verified. A few
    /// small reads of the checkpoints file however long it is (a binary search by size).
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        checkpoint_at(&self.dir, size)
    }

    /// The newest stored checkpoint, parsed but not verified, read from the end of the
    /// checkpoints file.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let path = self.dir.join(CHECKPOINTS_FILE);
        let (newest, _) = read_last_note(&path).map_err(io_at(&path))?;
        newest
            .map(|text| {
                SignedCheckpoint::parse(&text)
                    .map_err(|error| LedgerError::BadCheckpoint { path, error })
            })
            .transpose()
    }
}

/// Read one entry.
pub(crate) fn read_entry(dir: &Path, index: u64) -> Result<Vec<u8>, LedgerError> {
    match entries(dir, index)?.next() {
        Some(Ok((_, entry))) => Ok(entry),
        Some(Err(e)) => Err(e),
        None => Err(LedgerError::Corrupt {
            path: dir.join(SEGMENTS_DIR),
            offset: 0,
            reason: "the tree has an entry the segments do not hold",
        }),
    }
}

/// The entries of the ledger in `dir` from index `from` on, in order. The iteration ends at
/// the last complete record (a record being written is not returned) and yields an error,
/// then ends, at damage.
pub fn entries(dir: impl AsRef<Path>, from: u64) -> Result<Entries, LedgerError> {
    let seg_dir = dir.as_ref().join(SEGMENTS_DIR);
    let segments = list_segments(&seg_dir).map_err(io_at(&seg_dir))?;
    // Start in the last segment whose first entry is at or before `from`.
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= from)
        .unwrap_or(0);
    Ok(Entries {
        dir: dir.as_ref().to_owned(),
        tree: None,
        segments: segments.into_iter().skip(start).collect(),
        next_segment: 0,
        reader: None,
        index: 0,
        from,
        done: false,
    })
}

/// Iterator over stored entries; see [`entries`].
#[derive(Debug)]
pub struct Entries {
    dir: PathBuf,
    /// The tree file, opened to check a seek hint against its leaf hash.
    tree: Option<TreeFile>,
    segments: Vec<(u64, PathBuf)>,
    next_segment: usize,
    reader: Option<SegmentReader>,
    index: u64,
    from: u64,
    done: bool,
}

impl Entries {
    fn fail(&mut self, path: &Path, offset: u64, reason: &'static str) -> LedgerError {
        self.done = true;
        LedgerError::Corrupt {
            path: path.to_owned(),
            offset,
            reason,
        }
    }

    /// Open the next segment; `None` past the last one.
    fn open_next(&mut self) -> Option<Result<(), LedgerError>> {
        let (first, path) = self.segments.get(self.next_segment)?.clone();
        self.next_segment += 1;
        let mut reader = match SegmentReader::open(&path) {
            Ok(reader) => reader,
            Err(e) => {
                self.done = true;
                return Some(Err(io_at(&path)(e)));
            }
        };
        let last = self.next_segment == self.segments.len();
        match reader.header() {
            Header::First(h) if h == first && (self.next_segment == 1 || h == self.index) => {}
            Header::Short if last => {
                self.done = true;
                return None;
            }
            _ => {
                return Some(Err(self.fail(
                    &path,
                    0,
                    "segment header does not continue the log",
                )));
            }
        }
        self.index = first;
        if self.from > first {
            match self.seek_near_from(&mut reader, first) {
                Ok(Some(index)) => self.index = index,
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(io_at(&path)(e)));
                }
            }
        }
        while self.index < self.from {
            match reader.skip() {
                Ok(true) => self.index += 1,
                Ok(false) => break,
                Err(e) => {
                    self.done = true;
                    return Some(Err(io_at(&path)(e)));
                }
            }
        }
        self.reader = Some(reader);
        Some(Ok(()))
    }
}

impl Entries {
    /// Move `reader` (at the start of the segment whose first entry is `first`) to the
    /// record its seek index names nearest before `self.from`, once that record's leaf hash
    /// matches the tree's; returns the index of the entry read next. `None` leaves the
    /// reader at the segment's start: no hint, or one that does not check out.
    fn seek_near_from(
        &mut self,
        reader: &mut SegmentReader,
        first: u64,
    ) -> std::io::Result<Option<u64>> {
        let Some((index, offset)) = seek_hint(reader.path(), first, self.from, reader.file_len())
        else {
            return Ok(None);
        };
        if self.tree.is_none() {
            self.tree = TreeFile::open(&self.dir.join(TREE_FILE), false)
                .ok()
                .map(|(tree, _)| tree);
        }
        let expected = match &self.tree {
            Some(tree) if index < tree.leaves() => tree.perfect_node(0, index).ok(),
            _ => None,
        };
        let start = reader.offset();
        // Any failure to read the hinted record (even an I/O error) only means the hint is
        // not used.
        let found = reader.seek_to(offset).and_then(|()| reader.next(false));
        let matches = matches!(
            (found, expected),
            (Ok(Step::Record { leaf, checksum_ok: true, .. }), Some(expected)) if leaf == expected
        );
        if matches {
            reader.seek_to(offset)?;
            Ok(Some(index))
        } else {
            reader.seek_to(start)?;
            Ok(None)
        }
    }
}

impl Iterator for Entries {
    type Item = Result<(u64, Vec<u8>), LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let last = self.next_segment == self.segments.len();
            let Some(reader) = self.reader.as_mut() else {
                if let Err(e) = self.open_next()? {
                    return Some(Err(e));
                }
                continue;
            };
            let path = reader.path().to_owned();
            match reader.next(last) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(io_at(&path)(e)));
                }
                Ok(Step::Record {
                    checksum_ok: true, ..
                }) => {
                    let entry = reader.entry().to_vec();
                    let index = self.index;
                    self.index += 1;
                    if index >= self.from {
                        return Some(Ok((index, entry)));
                    }
                }
                Ok(Step::Record { offset, .. }) => {
                    return Some(Err(self.fail(&path, offset, "record checksum mismatch")));
                }
                Ok(Step::Broken { offset, reason }) => {
                    return Some(Err(self.fail(&path, offset, reason)));
                }
                Ok(Step::Torn { .. }) => {
                    self.done = true;
                    return None;
                }
                Ok(Step::End) => self.reader = None,
            }
        }
    }
}
