//! The ledger writer: append-only segments, the tree file and signed checkpoints in one
//! directory, with group commit and crash recovery.
//!
//! ```text
//! <dir>/LOCK              held (advisory lock) by the one writer
//! <dir>/segments/*.seg    the records (see `segment`)
//! <dir>/tree.hashes       every perfect-subtree hash, post-order (see `tree_file`)
//! <dir>/checkpoints       signed C2SP checkpoints, oldest first
//! ```
//!
//! A batch is one write to the segment, then one write to the tree file, then (per
//! [`SyncPolicy`]) one `fdatasync` of the segment. The tree file is derived data: it is synced
//! before each checkpoint and rebuilt from the records on open when a crash left it behind.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::{
    CheckpointSigner, SignedCheckpoint, append_note, cut_notes, read_last_note,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{LedgerError, io_at};
use crate::hash::{Hash, leaf_hash};
use crate::merkle::verify_consistency;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::reader::{
    CHECKPOINTS_FILE, SEGMENTS_DIR, TREE_FILE, consistency_in, entries, inclusion_in, leaf_in,
    read_entry, root_in,
};
use crate::segment::{
    HEADER_LEN, Header, MAX_ENTRY_LEN, SEEK_EVERY, SegmentReader, SegmentWriter, Step, encode_hint,
    encode_record, list_segments, record_len, segment_name,
};
use crate::tree_file::TreeFile;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` after every batch, before it is acknowledged: survives power loss.
    EveryBatch,
    /// `fdatasync` when this long has passed since the last one; a power loss can lose the
    /// entries of the last interval (never entries a checkpoint covers).
    Interval(Duration),
    /// Leave it to the OS: survives a process crash, not a power loss.
    Never,
}

/// Settings for [`Ledger::open`].
#[derive(Clone)]
pub struct LedgerOptions {
    /// When to sync.
    pub sync: SyncPolicy,
    /// A new segment starts once the current one would grow past this many bytes.
    pub segment_bytes: u64,
    /// Time source for [`SyncPolicy::Interval`].
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for LedgerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerOptions")
            .field("sync", &self.sync)
            .field("segment_bytes", &self.segment_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for LedgerOptions {
    /// Sync every batch, 64 MiB segments, the system clock.
    fn default() -> Self {
        Self {
            sync: SyncPolicy::EveryBatch,
            segment_bytes: 64 << 20,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Something recovery repaired while opening; none of it loses an acknowledged, synced entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenWarning {
    /// An incomplete final record (a crash during a write) was cut off.
    TornRecord {
        /// The segment.
        segment: PathBuf,
        /// Where the torn record started.
        offset: u64,
        /// Bytes removed.
        bytes: u64,
    },
    /// A segment created just before a crash had no complete header; it was rewritten.
    TornSegmentHeader {
        /// The segment.
        segment: PathBuf,
    },
    /// An incomplete final checkpoint note was cut off.
    TornCheckpoint {
        /// Bytes removed.
        bytes: u64,
    },
    /// A partly written group of tree hashes was cut off.
    TornTreeHashes {
        /// Bytes removed.
        bytes: u64,
    },
    /// The tree file was behind the records and was extended from them.
    TreeRebuilt {
        /// Leaves before.
        from: u64,
        /// Leaves after.
        to: u64,
    },
    /// The tree file was ahead of the records (unsynced records lost) and was cut back.
    TreeCut {
        /// Leaves before.
        from: u64,
        /// Leaves after.
        to: u64,
    },
}

impl fmt::Display for OpenWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornRecord {
                segment,
                offset,
                bytes,
            } => write!(
                f,
                "cut a torn final record: {bytes} bytes at offset {offset} of {segment:?}"
            ),
            Self::TornSegmentHeader { segment } => {
                write!(f, "rewrote the incomplete header of {segment:?}")
            }
            Self::TornCheckpoint { bytes } => {
                write!(f, "cut an incomplete final checkpoint of {bytes} bytes")
            }
            Self::TornTreeHashes { bytes } => {
                write!(f, "cut {bytes} bytes of partly written tree hashes")
            }
            Self::TreeRebuilt { from, to } => {
                write!(
                    f,
                    "rebuilt tree hashes for entries {from}..{to} from the records"
                )
            }
            Self::TreeCut { from, to } => write!(
                f,
                "cut tree hashes for entries {to}..{from} that have no records (unsynced writes)"
            ),
        }
    }
}

/// An opened ledger and what recovery did.
#[derive(Debug)]
pub struct Opened {
    /// The ledger, ready to append.
    pub ledger: Ledger,
    /// Repairs made while opening.
    pub warnings: Vec<OpenWarning>,
}

/// The single writer of a ledger directory.
pub struct Ledger {
    dir: PathBuf,
    _lock: File,
    options: LedgerOptions,
    segment: SegmentWriter,
    tree: TreeFile,
    latest: Option<SignedCheckpoint>,
    last_sync: Instant,
    unsynced: bool,
    /// Interval syncs are handed out by [`Ledger::begin_sync`] instead of done by appends.
    deferred_syncs: bool,
    /// A new segment's header and directory entry are synced by the next [`SyncJob`] and
    /// [`CheckpointJob`], not in line (see [`Ledger::defer_segment_syncs`]).
    deferred_rolls: bool,
    /// The first entry of the newest segment created while the segments directory may not
    /// name it on stable storage yet (only under `deferred_rolls`). Cleared by a sync in line,
    /// or by a finished checkpoint begun after that segment held entries (its job synced the
    /// directory after the segment was created).
    dir_unsynced_since: Option<u64>,
    poisoned: bool,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Open (creating if needed) the ledger in `dir`, take the writer lock, and recover from
    /// a crash: cut a torn final record, cut or rebuild the tree file to match the records.
    ///
    /// Opening refuses, changing nothing, when the damage is not what a crash leaves: a bad
    /// record before the end, fewer entries than the newest checkpoint covers, or a tree root
    /// that differs from the newest checkpoint's.
    pub fn open(dir: impl AsRef<Path>, options: LedgerOptions) -> Result<Opened, LedgerError> {
        let dir = dir.as_ref().to_owned();
        let seg_dir = dir.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&seg_dir).map_err(io_at(&seg_dir))?;
        let lock = lock_dir(&dir)?;
        let mut warnings = Vec::new();

        // The newest checkpoint bounds what recovery may cut.
        let cp_path = dir.join(CHECKPOINTS_FILE);
        let (newest, notes) = read_last_note(&cp_path).map_err(io_at(&cp_path))?;
        let latest = match newest {
            Some(text) => Some(SignedCheckpoint::parse(&text).map_err(|error| {
                LedgerError::BadCheckpoint {
                    path: cp_path.clone(),
                    error,
                }
            })?),
            None => None,
        };
        let floor = latest.as_ref().map_or(0, SignedCheckpoint::size);

        let (segment, entries) = recover_segment(&dir, floor, &mut warnings)?;
        if notes.torn_bytes > 0 {
            cut_notes(&cp_path, notes.complete_len).map_err(io_at(&cp_path))?;
            warnings.push(OpenWarning::TornCheckpoint {
                bytes: notes.torn_bytes,
            });
        }
        let tree = recover_tree(&dir, entries, &mut warnings)?;
        // A writer that stopped before syncing the directory after a roll (its syncs were
        // deferred) left the newest segment's name possibly not on stable storage: made so
        // here, before anything is signed over it.
        sync_dir(&seg_dir)?;

        if let Some(cp) = &latest
            && root_in(&tree, entries, cp.size())? != cp.root()
        {
            return Err(LedgerError::CheckpointMismatch { size: cp.size() });
        }
        let last_sync = options.clock.now();
        Ok(Opened {
            ledger: Self {
                dir,
                _lock: lock,
                options,
                segment,
                tree,
                latest,
                last_sync,
                unsynced: false,
                deferred_syncs: false,
                deferred_rolls: false,
                dir_unsynced_since: None,
                poisoned: false,
            },
            warnings,
        })
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.tree.leaves()
    }

    /// Root of all entries.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// Root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        root_in(&self.tree, self.size(), size)
    }

    /// Leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        leaf_in(&self.tree, self.size(), index)
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

    /// The newest checkpoint written to this ledger.
    pub fn latest_checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// Append one entry; returns its index.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, LedgerError> {
        self.append_batch(&[entry]).map(|range| range.start)
    }

    /// Append entries as one group commit: one write to the segment, one to the tree file,
    /// then a sync as [`SyncPolicy`] says. Returns the indices given to the entries. On error
    /// none of the batch is kept.
    pub fn append_batch<E: AsRef<[u8]>>(
        &mut self,
        entries: &[E],
    ) -> Result<Range<u64>, LedgerError> {
        self.usable()?;
        let first = self.size();
        let mut buf = Vec::new();
        let mut leaves = Vec::with_capacity(entries.len());
        // Entries the seek index notes, with where their records start in `buf`.
        let mut seek_points = Vec::new();
        for (index, entry) in (first..).zip(entries) {
            let entry = entry.as_ref();
            if index.is_multiple_of(SEEK_EVERY) {
                seek_points.push((index, buf.len() as u64));
            }
            if entry.len() > MAX_ENTRY_LEN {
                return Err(LedgerError::EntryTooLarge {
                    len: entry.len(),
                    max: MAX_ENTRY_LEN,
                });
            }
            let leaf = leaf_hash(entry);
            buf.reserve(usize::try_from(record_len(entry.len())).unwrap_or(0));
            encode_record(&mut buf, entry, &leaf);
            leaves.push(leaf);
        }
        if leaves.is_empty() {
            return Ok(first..first);
        }
        let grown = self.segment.len() + buf.len() as u64;
        if self.segment.len() > HEADER_LEN && grown > self.options.segment_bytes {
            self.start_segment(first)?;
        }

        let (seg_len, tree_leaves) = (self.segment.len(), self.tree.leaves());
        let written = self
            .segment
            .append(&buf)
            .map_err(io_at(self.segment.path()))
            .and_then(|()| self.tree.append(&leaves).map_err(io_at(self.tree.path())));
        if let Err(e) = written {
            // Undo the partial batch so records and tree stay aligned; if that fails, stop.
            let undone = self
                .segment
                .truncate(seg_len)
                .and_then(|()| self.tree.truncate_to(tree_leaves));
            if undone.is_err() {
                self.poisoned = true;
            }
            return Err(e);
        }
        let mut pairs = Vec::new();
        for (index, at) in seek_points {
            encode_hint(&mut pairs, index, seg_len + at);
        }
        self.segment.append_seek_hints(&pairs);
        self.unsynced = true;
        let due = match self.options.sync {
            SyncPolicy::EveryBatch => true,
            SyncPolicy::Interval(every) => !self.deferred_syncs && self.sync_due(every),
            SyncPolicy::Never => false,
        };
        if due {
            self.sync_records()?;
        }
        Ok(first..self.size())
    }

    /// Sync the records if the interval policy says it is time (call when idle).
    pub fn sync_if_due(&mut self) -> Result<(), LedgerError> {
        if let SyncPolicy::Interval(every) = self.options.sync
            && !self.deferred_syncs
            && self.unsynced
            && self.sync_due(every)
        {
            self.sync_records()?;
        }
        Ok(())
    }

    /// When appended records are forced to stable storage.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.options.sync
    }

    /// For a writer that syncs on another thread: from now on appends and
    /// [`Ledger::sync_if_due`] leave the syncs of [`SyncPolicy::Interval`] to
    /// [`Ledger::begin_sync`], so that no append waits for the disk. Returns the interval, or
    /// `None` (changing nothing) under another policy.
    pub fn defer_interval_syncs(&mut self) -> Option<Duration> {
        match self.options.sync {
            SyncPolicy::Interval(every) => {
                self.deferred_syncs = true;
                Some(every)
            }
            SyncPolicy::EveryBatch | SyncPolicy::Never => None,
        }
    }

    /// For a writer whose appends should wait for the disk as little as possible: from now on
    /// a new segment's header and the segments directory that names it are not synced in line
    /// when a segment fills up, but by the next [`SyncJob`] and [`CheckpointJob`] on another
    /// thread. The full segment is still synced before the next one is created, so a power
    /// loss can only cut the newest segment, which opening repairs. Not for
    /// [`SyncPolicy::EveryBatch`], whose appends are synced before they are acknowledged.
    pub fn defer_segment_syncs(&mut self) {
        if self.options.sync != SyncPolicy::EveryBatch {
            self.deferred_rolls = true;
        }
    }

    /// The segments directory, while a new segment's directory entry may not be on stable
    /// storage.
    fn unsynced_dir(&self) -> Option<PathBuf> {
        self.dir_unsynced_since.map(|_| self.dir.join(SEGMENTS_DIR))
    }

    /// When the records appended so far are due a sync under [`SyncPolicy::Interval`], hand
    /// it out as a [`SyncJob`] to complete on another thread while appends go on; `None` when
    /// nothing is due. Report a failed job with [`Ledger::poison`].
    pub fn begin_sync(&mut self) -> Result<Option<SyncJob>, LedgerError> {
        self.usable()?;
        let SyncPolicy::Interval(every) = self.options.sync else {
            return Ok(None);
        };
        if !self.unsynced || !self.sync_due(every) {
            return Ok(None);
        }
        let file = self
            .segment
            .clone_file()
            .map_err(io_at(self.segment.path()))?;
        // The directory stays pending until a checkpoint job that synced it finishes: that job
        // syncs everything it covers itself, whatever became of this one.
        let segments_dir = self.unsynced_dir();
        // Entries appended from here on are not covered by this job.
        self.unsynced = false;
        self.last_sync = self.options.clock.now();
        Ok(Some(SyncJob {
            size: self.size(),
            segments_dir,
            segment: (file, self.segment.path().to_path_buf()),
        }))
    }

    /// Force records and tree hashes to stable storage.
    pub fn sync(&mut self) -> Result<(), LedgerError> {
        self.usable()?;
        self.sync_records()?;
        let synced = self.tree.sync().map_err(io_at(self.tree.path()));
        if synced.is_err() {
            self.poisoned = true;
        }
        synced
    }

    /// Refuses to go on from a tree that does not extend the one the signing key last signed
    /// (`last_signed`, the signer's own record): the checkpoints file can be rolled back
    /// together with the records, but the signer's state says what was signed. Without this,
    /// entries edited after the newest checkpoint left in the file (with that checkpoint and the
    /// later ones removed) would be signed again as if they were the log.
    pub fn check_signed_history(
        &self,
        last_signed: Option<(u64, Hash)>,
    ) -> Result<(), LedgerError> {
        check_signed_history(
            &self.dir,
            self.size(),
            |size| self.root_at(size),
            last_signed,
        )
    }

    /// Refuses a ledger that grew while no writer ran: the signer's state says the writer
    /// last stopped cleanly with every entry signed at `stopped_at`
    /// ([`CheckpointSigner::stopped_at`]), so entries past it were appended by something else.
    /// Call before appending anything.
    pub fn check_nothing_appended_while_stopped(
        &self,
        stopped_at: Option<u64>,
    ) -> Result<(), LedgerError> {
        appended_while_stopped(self.size(), stopped_at)
    }

    /// Sign and store a checkpoint of the whole log, after syncing everything it covers.
    /// Returns the newest checkpoint unchanged when nothing was appended since. Before
    /// signing, the tree is checked to extend the newest stored checkpoint.
    pub fn checkpoint(
        &mut self,
        signer: &mut CheckpointSigner,
    ) -> Result<SignedCheckpoint, LedgerError> {
        self.check_signed_history(signer.last_signed())?;
        match self.begin_checkpoint(signer.origin())? {
            CheckpointStart::Current(latest) => Ok(latest),
            CheckpointStart::Job(job) => {
                let signed = job.complete(signer).inspect_err(|e| {
                    if e.stops_the_ledger() {
                        self.poisoned = true;
                    }
                })?;
                self.finish_checkpoint(&signed);
                Ok(signed)
            }
        }
    }

    /// The first half of [`Ledger::checkpoint`]: fix the tree's size and root, check that the
    /// tree extends the newest stored checkpoint, and hand out what
    /// [`CheckpointJob::complete`] needs to make those entries durable, sign and store the
    /// checkpoint, on another thread if wanted while this ledger goes on appending. Report the
    /// result with [`Ledger::finish_checkpoint`] (or [`Ledger::poison`] after a failure that
    /// stops the ledger). `origin` is the signer's: a checkpoint of another origin is not
    /// reused.
    pub fn begin_checkpoint(&mut self, origin: &str) -> Result<CheckpointStart, LedgerError> {
        self.usable()?;
        let (size, root) = (self.size(), self.root());
        let mut previous = None;
        if let Some(latest) = &self.latest {
            previous = Some((latest.size(), latest.root()));
            let same_origin = latest.checkpoint().origin == origin;
            if latest.size() == size && latest.root() == root && same_origin {
                return Ok(CheckpointStart::Current(latest.clone()));
            }
            if latest.size() > 0 && latest.size() < size {
                // Defence in depth: never sign a tree that does not extend the last one.
                let proof = self.prove_consistency(latest.size(), size)?;
                verify_consistency(
                    latest.size(),
                    size,
                    latest.root().as_bytes(),
                    root.as_bytes(),
                    &proof.hashes,
                )
                .map_err(|_| LedgerError::Inconsistent {
                    old: latest.size(),
                    new: size,
                })?;
            }
        }
        let segment = self
            .segment
            .clone_file()
            .map_err(io_at(self.segment.path()))?;
        let tree = self.tree.clone_file().map_err(io_at(self.tree.path()))?;
        // Kept pending until the job is finished: a segment rolled before its directory sync
        // runs must not count as synced (see `finish_checkpoint`).
        let segments_dir = self.unsynced_dir();
        Ok(CheckpointStart::Job(CheckpointJob {
            size,
            root,
            previous,
            segments_dir,
            segment: (segment, self.segment.path().to_path_buf()),
            tree: (tree, self.tree.path().to_path_buf()),
            notes: self.dir.join(CHECKPOINTS_FILE),
        }))
    }

    /// Record a checkpoint a [`CheckpointJob`] stored (an older one than the newest known is
    /// ignored).
    pub fn finish_checkpoint(&mut self, signed: &SignedCheckpoint) {
        // The job synced the directory after it was begun, when the ledger held
        // `signed.size()` entries: a segment that held some of them existed by then.
        if self
            .dir_unsynced_since
            .is_some_and(|first| first < signed.size())
        {
            self.dir_unsynced_since = None;
        }
        if self
            .latest
            .as_ref()
            .is_none_or(|latest| signed.size() >= latest.size())
        {
            self.latest = Some(signed.clone());
        }
    }

    /// Stop this ledger after a failed sync elsewhere (a [`CheckpointJob`]'s): the page cache
    /// may have dropped data, so nothing more is written until it is reopened.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    fn usable(&self) -> Result<(), LedgerError> {
        if self.poisoned {
            return Err(LedgerError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn sync_due(&self, every: Duration) -> bool {
        self.options
            .clock
            .now()
            .saturating_duration_since(self.last_sync)
            >= every
    }

    fn sync_records(&mut self) -> Result<(), LedgerError> {
        // INVARIANT: after a failed fsync the page cache may have dropped the data; the
        // only safe reaction is to stop writing (reopening re-reads what is on disk).
        if let Some(dir) = self.unsynced_dir() {
            if let Err(e) = sync_dir(&dir) {
                // A directory that could not even be opened was not synced: try again later.
                if !e.is_transient() {
                    self.poisoned = true;
                }
                return Err(e);
            }
            self.dir_unsynced_since = None;
        }
        if let Err(e) = self.segment.sync() {
            self.poisoned = true;
            return Err(io_at(self.segment.path())(e));
        }
        self.unsynced = false;
        self.last_sync = self.options.clock.now();
        Ok(())
    }

    fn start_segment(&mut self, first: u64) -> Result<(), LedgerError> {
        // INVARIANT: the full segment is on stable storage before the next one exists, so
        // that a power loss can only cut the newest segment (the one opening repairs).
        self.sync_records()?;
        let seg_dir = self.dir.join(SEGMENTS_DIR);
        let path = seg_dir.join(segment_name(first));
        let deferred = self.deferred_rolls;
        self.segment =
            SegmentWriter::create(path.clone(), first, !deferred).map_err(io_at(&path))?;
        if deferred {
            // A lost header or directory entry loses only entries no sync job or checkpoint
            // has covered yet: both sync the directory and the segment first.
            self.dir_unsynced_since = Some(first);
            return Ok(());
        }
        sync_dir(&seg_dir)
    }
}

/// What [`Ledger::begin_checkpoint`] found.
#[derive(Debug)]
pub enum CheckpointStart {
    /// The newest stored checkpoint already covers the whole tree.
    Current(SignedCheckpoint),
    /// A checkpoint to make durable, sign and store.
    Job(CheckpointJob),
}

/// A checkpoint of the tree as it stood at [`Ledger::begin_checkpoint`]: its own handles on
/// the current segment and the tree file, so that it can be completed on another thread.
/// Earlier segments were synced when they were closed; the segments directory is synced here
/// when a segment was created since the previous job without it
/// ([`Ledger::defer_segment_syncs`]).
#[derive(Debug)]
pub struct CheckpointJob {
    size: u64,
    root: Hash,
    previous: Option<(u64, Hash)>,
    segments_dir: Option<PathBuf>,
    segment: (File, PathBuf),
    tree: (File, PathBuf),
    notes: PathBuf,
}

impl CheckpointJob {
    /// The tree size this checkpoint covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Sync the records and the tree hashes it covers, sign it and append it to the
    /// checkpoints file. A failed sync stops the ledger ([`LedgerError::stops_the_ledger`]).
    pub fn complete(self, signer: &mut CheckpointSigner) -> Result<SignedCheckpoint, LedgerError> {
        if let Some((size, root)) = self.previous {
            signer.observe(size, root)?;
        }
        if let Some(dir) = &self.segments_dir {
            sync_dir(dir)?;
        }
        let (segment, segment_path) = &self.segment;
        segment.sync_data().map_err(io_at(segment_path))?;
        let (tree, tree_path) = &self.tree;
        tree.sync_data().map_err(io_at(tree_path))?;
        let signed = signer.prepare(self.size, self.root)?;
        append_note(&self.notes, signed.text()).map_err(io_at(&self.notes))?;
        signer.record(&signed)?;
        Ok(signed)
    }
}

/// A sync of the records [`Ledger::begin_sync`] covered: its own handle on the segment, so
/// that it can be completed on another thread. Earlier segments were synced when they were
/// closed; the segments directory is synced here when a segment was created without it
/// ([`Ledger::defer_segment_syncs`]).
#[derive(Debug)]
pub struct SyncJob {
    size: u64,
    segments_dir: Option<PathBuf>,
    segment: (File, PathBuf),
}

impl SyncJob {
    /// The number of entries this sync makes durable.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Force the records to stable storage; returns [`SyncJob::size`]. A failure stops the
    /// ledger ([`LedgerError::stops_the_ledger`]): the page cache may have dropped them.
    pub fn complete(self) -> Result<u64, LedgerError> {
        if let Some(dir) = &self.segments_dir {
            sync_dir(dir)?;
        }
        let (segment, path) = &self.segment;
        segment.sync_data().map_err(io_at(path))?;
        Ok(self.size)
    }
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn lock_dir(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked {
            dir: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

/// Find the end of the records in the last segment, cut a torn tail, and return the writer
/// and the number of entries. Nothing is cut when it would drop a checkpointed entry.
fn recover_segment(
    dir: &Path,
    floor: u64,
    warnings: &mut Vec<OpenWarning>,
) -> Result<(SegmentWriter, u64), LedgerError> {
    let seg_dir = dir.join(SEGMENTS_DIR);
    let segments = list_segments(&seg_dir).map_err(io_at(&seg_dir))?;
    let behind = |entries| LedgerError::BehindCheckpoint {
        dir: dir.to_owned(),
        entries,
        checkpoint: floor,
    };
    let Some((first, path)) = segments.last().cloned() else {
        if floor > 0 {
            return Err(behind(0));
        }
        let path = seg_dir.join(segment_name(0));
        let writer = SegmentWriter::create(path.clone(), 0, true).map_err(io_at(&path))?;
        sync_dir(&seg_dir)?;
        return Ok((writer, 0));
    };

    let mut reader = SegmentReader::open(&path).map_err(io_at(&path))?;
    let corrupt = |offset, reason| LedgerError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    match reader.header() {
        Header::First(h) if h == first => {}
        Header::First(_) => return Err(corrupt(0, "header names another first entry")),
        Header::BadMagic => return Err(corrupt(0, "not a segment header")),
        Header::Short => {
            if first < floor {
                return Err(behind(first));
            }
            let writer = SegmentWriter::recreate(path.clone(), first).map_err(io_at(&path))?;
            warnings.push(OpenWarning::TornSegmentHeader { segment: path });
            return Ok((writer, first));
        }
    }

    let mut count = 0u64;
    // The seek index is rewritten from the records found, dropping any hint a crash left
    // for records that are cut here.
    let mut seek_pairs = Vec::new();
    let (end, torn) = loop {
        match reader.next(true).map_err(io_at(&path))? {
            Step::Record {
                checksum_ok: true,
                offset,
                ..
            } => {
                let index = first + count;
                if index.is_multiple_of(SEEK_EVERY) {
                    encode_hint(&mut seek_pairs, index, offset);
                }
                count += 1;
            }
            Step::Record { offset, .. } => {
                return Err(corrupt(offset, "record checksum mismatch before the end"));
            }
            Step::Broken { offset, reason } => return Err(corrupt(offset, reason)),
            Step::End => break (reader.offset(), None),
            Step::Torn { offset, .. } => break (offset, Some(reader.file_len() - offset)),
        }
    };
    let entries = first + count;
    if entries < floor {
        return Err(behind(entries));
    }
    if let Some(bytes) = torn {
        warnings.push(OpenWarning::TornRecord {
            segment: path.clone(),
            offset: end,
            bytes,
        });
    }
    let writer = SegmentWriter::reopen(path.clone(), end, &seek_pairs).map_err(io_at(&path))?;
    Ok((writer, entries))
}

/// Open the tree file and make it hold exactly `entries` leaves.
fn recover_tree(
    dir: &Path,
    entries: u64,
    warnings: &mut Vec<OpenWarning>,
) -> Result<TreeFile, LedgerError> {
    let path = dir.join(TREE_FILE);
    let (mut tree, torn) = TreeFile::open(&path, true).map_err(io_at(&path))?;
    if torn > 0 {
        warnings.push(OpenWarning::TornTreeHashes { bytes: torn });
    }
    let stored = tree.leaves();
    if stored > entries {
        tree.truncate_to(entries).map_err(io_at(&path))?;
        warnings.push(OpenWarning::TreeCut {
            from: stored,
            to: entries,
        });
    } else if stored < entries {
        let mut leaves = Vec::new();
        for item in self::entries(dir, stored)? {
            let (_, entry) = item?;
            leaves.push(leaf_hash(&entry));
            if leaves.len() >= 65_536 {
                tree.append(&leaves).map_err(io_at(&path))?;
                leaves.clear();
            }
        }
        tree.append(&leaves).map_err(io_at(&path))?;
        if tree.leaves() != entries {
            return Err(LedgerError::Corrupt {
                path: dir.join(SEGMENTS_DIR),
                offset: 0,
                reason: "segments hold fewer records than their names say",
            });
        }
        tree.sync().map_err(io_at(&path))?;
        warnings.push(OpenWarning::TreeRebuilt {
            from: stored,
            to: entries,
        });
    }
    Ok(tree)
}

/// Whether a ledger of `size` entries, whose root over the first `n` is `root_at(n)`, still
/// holds the tree its signing key last signed (`last_signed`): the check behind
/// [`Ledger::check_signed_history`] and [`crate::LedgerReader::check_signed_history`].
pub(crate) fn check_signed_history(
    dir: &Path,
    size: u64,
    root_at: impl FnOnce(u64) -> Result<Hash, LedgerError>,
    last_signed: Option<(u64, Hash)>,
) -> Result<(), LedgerError> {
    let Some((signed_size, signed_root)) = last_signed else {
        return Ok(());
    };
    if signed_size > size {
        return Err(LedgerError::NotWhatWasSigned {
            signed_size,
            reason: format!("this ledger holds only {size} entries: it was rolled back"),
        });
    }
    if root_at(signed_size)? != signed_root {
        return Err(LedgerError::NotWhatWasSigned {
            signed_size,
            reason: format!(
                "this ledger's first {signed_size} entries have another root: they were \
                 changed after they were signed"
            ),
        });
    }
    // The checkpoint is stored before the state names it, so it must be there.
    let stored = crate::reader::checkpoint_at(dir, signed_size)?;
    if stored.as_ref().is_none_or(|c| c.root() != signed_root) {
        let newest = crate::reader::stored_checkpoints_lenient(dir)?
            .last()
            .map_or(0, SignedCheckpoint::size);
        return Err(LedgerError::NotWhatWasSigned {
            signed_size,
            reason: format!(
                "the checkpoints file holds no checkpoint of them (the newest stored covers \
                 {newest}): checkpoints were removed (a checkpoint rollback)"
            ),
        });
    }
    Ok(())
}

/// The check behind [`Ledger::check_nothing_appended_while_stopped`] and
/// [`crate::LedgerReader::check_nothing_appended_while_stopped`].
pub(crate) fn appended_while_stopped(
    size: u64,
    stopped_at: Option<u64>,
) -> Result<(), LedgerError> {
    match stopped_at {
        Some(signed_size) if size > signed_size => Err(LedgerError::NotWhatWasSigned {
            signed_size,
            reason: format!(
                "this ledger holds {size}: {} entries were appended while Tenet was stopped \
                 (its last clean stop had signed every entry)",
                size - signed_size
            ),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::note::SigningKey;

    fn rolling(dir: &Path, sync: SyncPolicy) -> Ledger {
        let options = LedgerOptions {
            sync,
            segment_bytes: 256,
            ..LedgerOptions::default()
        };
        Ledger::open(dir, options).unwrap().ledger
    }

    fn entry(n: u64) -> Vec<u8> {
        format!("{{\"entry\":{n},\"padding\":\"{}\"}}", "x".repeat(40)).into_bytes()
    }

    /// Segment files and their seek indexes.
    fn files_in_segments(dir: &Path) -> usize {
        std::fs::read_dir(dir.join(SEGMENTS_DIR)).unwrap().count()
    }

    /// A checkpoint of the whole ledger begun, and the signer to complete it with.
    fn begun_checkpoint(ledger: &mut Ledger) -> (CheckpointJob, CheckpointSigner) {
        let key = SigningKey::from_seed("tenet.test/ledger", &[9u8; 32]).unwrap();
        let signer = CheckpointSigner::new(key);
        match ledger.begin_checkpoint(signer.origin()).unwrap() {
            CheckpointStart::Job(job) => (job, signer),
            CheckpointStart::Current(_) => panic!("entries were appended: a checkpoint is due"),
        }
    }

    /// A roll's directory sync is left to the jobs: every job until the next checkpoint job
    /// carries it, and the checkpoint job takes it. The full segment is synced in line.
    #[test]
    fn deferred_rolls_go_with_the_next_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = rolling(dir.path(), SyncPolicy::Interval(Duration::ZERO));
        ledger.defer_interval_syncs();
        ledger.defer_segment_syncs();
        for n in 0..12 {
            ledger.append(&entry(n)).unwrap();
        }
        assert!(
            files_in_segments(dir.path()) > 2,
            "the entries fill several segments"
        );
        assert!(ledger.dir_unsynced_since.is_some());

        let sync = ledger.begin_sync().unwrap().unwrap();
        assert!(sync.segments_dir.is_some());
        sync.complete().unwrap();
        assert!(
            ledger.dir_unsynced_since.is_some(),
            "kept for the checkpoint job"
        );

        let (job, mut signer) = begun_checkpoint(&mut ledger);
        assert!(job.segments_dir.is_some());
        let signed = job.complete(&mut signer).unwrap();
        ledger.finish_checkpoint(&signed);
        assert!(ledger.dir_unsynced_since.is_none());
        drop(ledger);

        let reopened = rolling(dir.path(), SyncPolicy::Interval(Duration::ZERO));
        assert_eq!(reopened.size(), 12);
        assert_eq!(
            reopened.latest_checkpoint().map(SignedCheckpoint::size),
            Some(12)
        );
    }

    /// A segment rolled after a checkpoint job began (its directory sync may already have
    /// run) stays pending when that checkpoint finishes.
    #[test]
    fn a_roll_after_a_checkpoint_began_stays_pending() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = rolling(dir.path(), SyncPolicy::Never);
        ledger.defer_segment_syncs();
        for n in 0..12 {
            ledger.append(&entry(n)).unwrap();
        }
        let (job, mut signer) = begun_checkpoint(&mut ledger);
        let signed = job.complete(&mut signer).unwrap();
        let before = files_in_segments(dir.path());
        let mut n = 12;
        while files_in_segments(dir.path()) == before {
            ledger.append(&entry(n)).unwrap();
            n += 1;
        }
        ledger.finish_checkpoint(&signed);
        assert_eq!(ledger.dir_unsynced_since, Some(n - 1));
    }

    /// Without the deferral (and always under `EveryBatch`) a roll syncs in line.
    #[test]
    fn rolls_sync_in_line_unless_deferred() {
        for (sync, defer) in [
            (SyncPolicy::Interval(Duration::from_secs(60)), false),
            (SyncPolicy::EveryBatch, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut ledger = rolling(dir.path(), sync);
            if defer {
                ledger.defer_segment_syncs();
            }
            for n in 0..12 {
                ledger.append(&entry(n)).unwrap();
            }
            assert!(!ledger.deferred_rolls, "{sync:?}");
            assert!(ledger.dir_unsynced_since.is_none(), "{sync:?}");
            assert!(
                files_in_segments(dir.path()) > 2,
                "{sync:?}: the entries fill several segments"
            );
        }
    }

    /// `sync` (the writer's full sync) also completes a deferred roll.
    #[test]
    fn a_full_sync_completes_a_deferred_roll() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = rolling(dir.path(), SyncPolicy::Never);
        ledger.defer_segment_syncs();
        for n in 0..12 {
            ledger.append(&entry(n)).unwrap();
        }
        assert!(ledger.dir_unsynced_since.is_some());
        ledger.sync().unwrap();
        assert!(ledger.dir_unsynced_since.is_none());
    }
}
