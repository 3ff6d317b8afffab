//! Full verification of a ledger directory and its typed report.
//!
//! [`verify`] recomputes every leaf and the tree from the records, checks every checkpoint's
//! signature and order, and compares the recomputed roots with the signed ones. The tree file
//! is treated as an untrusted second copy of the leaf hashes: once a signed checkpoint
//! authenticates it, it pins down exactly which entry changed and how. When the tree file was
//! rewritten along with the records, the checkpoints still catch the change, and the report
//! bounds the first bad entry between the last matching and the first failing checkpoint.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hash::Hash;
use crate::note::VerifierKey;

pub use crate::scan::verify_with;

/// Extra inputs to [`verify_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The origin every checkpoint must carry; by default the first valid checkpoint's.
    pub origin: Option<String>,
    /// Signed checkpoints kept outside the ledger directory (by a witness, a SIEM, an
    /// operator). They must verify too, and a newer one than the directory holds reveals a
    /// rolled-back checkpoints file.
    pub trusted_checkpoints: Vec<String>,
    /// How many entries past the first difference are compared to tell a deletion, an
    /// insertion or a move from a modification.
    pub window: usize,
    /// At most this many findings are listed; the rest are counted.
    pub max_findings: usize,
    /// Verify only the first this many entries, against the checkpoints of at most that
    /// size; `None` for the whole ledger. With a bound the ledger may be appended to while it
    /// is verified: entries and checkpoints added past the bound are not read.
    pub up_to: Option<u64>,
    /// Sizes and roots known good without a signature to check (the signer's own record of
    /// what it last signed), as anchors beside the checkpoints.
    pub trusted_roots: Vec<(u64, Hash)>,
    /// Read and check the checkpoints file (default). Without it, only the trusted
    /// checkpoints and roots anchor the entries: the cost no longer grows with the number of
    /// checkpoints stored.
    pub stored_checkpoints: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            origin: None,
            trusted_checkpoints: Vec::new(),
            window: 4096,
            max_findings: 1000,
            up_to: None,
            trusted_roots: Vec::new(),
            stored_checkpoints: true,
        }
    }
}

/// Verify the ledger in `dir` against checkpoints signed by `key`.
pub fn verify(dir: &Path, key: &VerifierKey) -> Result<Report, VerifyError> {
    verify_with(dir, key, &VerifyOptions::default())
}

/// Verification could not run (this is never a verdict about the log).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The directory does not exist or is not a directory.
    #[error("ledger directory {0:?} does not exist")]
    NoDirectory(PathBuf),
    /// A file could not be read.
    #[error("reading ledger file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Which checkpoint a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointRef {
    /// The n-th note (from 0) in the directory's checkpoints file.
    Stored(usize),
    /// The n-th of [`VerifyOptions::trusted_checkpoints`].
    Trusted(usize),
    /// The n-th of [`VerifyOptions::trusted_roots`].
    TrustedRoot(usize),
}

impl fmt::Display for CheckpointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stored(n) => write!(f, "stored checkpoint #{n}"),
            Self::Trusted(n) => write!(f, "trusted checkpoint #{n}"),
            Self::TrustedRoot(n) => write!(f, "trusted root #{n}"),
        }
    }
}

/// The kind of a finding, for matching without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TamperKind {
    /// An entry's bytes were changed.
    Modified,
    /// Entries were removed from the middle; later ones moved down.
    Missing,
    /// Entries were added that were never logged.
    Inserted,
    /// Entries are present but in another order.
    Reordered,
    /// The log ends before a signed checkpoint's size.
    Truncated,
    /// Entries and their tree hashes were rewritten consistently; only the signature shows it.
    Rewritten,
    /// A record's framing is destroyed.
    Unreadable,
    /// The tree file disagrees with the records that the checkpoints vouch for.
    TreeMismatch,
    /// A checkpoint's signature does not verify.
    BadSignature,
    /// A checkpoint note cannot be parsed.
    MalformedCheckpoint,
    /// A checkpoint for another log.
    WrongOrigin,
    /// A checkpoint older than one before it, or a stored file older than a trusted checkpoint.
    CheckpointRollback,
    /// A validly signed checkpoint that contradicts the log or another checkpoint.
    ForkedCheckpoint,
    /// The ledger no longer holds what its signing key last signed (rolled back, rewritten, or
    /// checkpoints removed), by the signer's own record.
    SignedHistory,
}

/// One problem found. Entry indices are zero-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// Entry `entry` differs from what was logged.
    Modified {
        /// First bad entry.
        entry: u64,
    },
    /// `count` entries were removed at position `entry`.
    Missing {
        /// Position of the first removed entry.
        entry: u64,
        /// How many.
        count: u64,
    },
    /// `count` entries that were never logged appear at position `entry`.
    Inserted {
        /// Position of the first inserted entry.
        entry: u64,
        /// How many.
        count: u64,
    },
    /// The entry now at `entry` was logged at `original`.
    Reordered {
        /// First position out of order.
        entry: u64,
        /// Where the entry found there was logged.
        original: u64,
    },
    /// Only `entries` entries remain; signed checkpoints cover `expected`. The first
    /// `vouched` entries are proven intact; when `vouched < entries`, no checkpoint or
    /// authenticated tree file covers the entries between, so they may be bad too.
    Truncated {
        /// Entries present (the first missing index).
        entries: u64,
        /// Size of the newest valid checkpoint.
        expected: u64,
        /// Entries proven intact.
        vouched: u64,
    },
    /// The first bad entry lies in `from..to`; the records and tree file agree with each
    /// other but not with the checkpoint of `checkpoint_size` entries.
    Rewritten {
        /// Entries before this index are vouched for by a checkpoint.
        from: u64,
        /// The first bad entry is before this index.
        to: u64,
        /// Size of the first checkpoint that fails.
        checkpoint_size: u64,
    },
    /// The record for `entry` cannot be parsed; nothing after it in its segment is read.
    Unreadable {
        /// Index the record would have.
        entry: u64,
        /// The segment file.
        segment: PathBuf,
        /// Byte offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The tree file disagrees with the records from `entry` on.
    TreeMismatch {
        /// First entry whose stored hashes differ.
        entry: u64,
    },
    /// A checkpoint's signature by the verifier key is missing or wrong.
    BadSignature {
        /// The checkpoint.
        checkpoint: CheckpointRef,
        /// The verifier's message.
        reason: String,
    },
    /// A checkpoint note that cannot be parsed.
    MalformedCheckpoint {
        /// The checkpoint.
        checkpoint: CheckpointRef,
        /// The parser's message.
        reason: String,
    },
    /// A checkpoint with another origin.
    WrongOrigin {
        /// The checkpoint.
        checkpoint: CheckpointRef,
        /// Its origin line.
        origin: String,
    },
    /// A checkpoint of `size` entries after (or, when trusted, missing from) a stored
    /// history whose newest checkpoint is `newest`.
    CheckpointRollback {
        /// The checkpoint.
        checkpoint: CheckpointRef,
        /// Its size.
        size: u64,
        /// The newest size stored before it.
        newest: u64,
    },
    /// A validly signed checkpoint of `size` entries whose root contradicts the log or an
    /// earlier checkpoint of the same size.
    ForkedCheckpoint {
        /// The checkpoint.
        checkpoint: CheckpointRef,
        /// Its size.
        size: u64,
    },
    /// The ledger no longer holds the tree of `signed_size` entries its signing key last
    /// signed (the signer's record, kept apart from the ledger): `reason` says how.
    SignedHistory {
        /// The size the key last signed.
        signed_size: u64,
        /// What the ledger holds instead.
        reason: String,
    },
}

impl Finding {
    /// The kind, without details.
    pub fn kind(&self) -> TamperKind {
        match self {
            Self::Modified { .. } => TamperKind::Modified,
            Self::Missing { .. } => TamperKind::Missing,
            Self::Inserted { .. } => TamperKind::Inserted,
            Self::Reordered { .. } => TamperKind::Reordered,
            Self::Truncated { .. } => TamperKind::Truncated,
            Self::Rewritten { .. } => TamperKind::Rewritten,
            Self::Unreadable { .. } => TamperKind::Unreadable,
            Self::TreeMismatch { .. } => TamperKind::TreeMismatch,
            Self::BadSignature { .. } => TamperKind::BadSignature,
            Self::MalformedCheckpoint { .. } => TamperKind::MalformedCheckpoint,
            Self::WrongOrigin { .. } => TamperKind::WrongOrigin,
            Self::CheckpointRollback { .. } => TamperKind::CheckpointRollback,
            Self::ForkedCheckpoint { .. } => TamperKind::ForkedCheckpoint,
            Self::SignedHistory { .. } => TamperKind::SignedHistory,
        }
    }

    /// The first bad entry, when the finding is about entries. For
    /// [`Finding::Rewritten`] this is the lower bound of the range it names.
    pub fn entry(&self) -> Option<u64> {
        match self {
            Self::Modified { entry }
            | Self::Missing { entry, .. }
            | Self::Inserted { entry, .. }
            | Self::Reordered { entry, .. }
            | Self::Unreadable { entry, .. }
            | Self::TreeMismatch { entry } => Some(*entry),
            Self::Truncated { vouched, .. } => Some(*vouched),
            Self::Rewritten { from, .. } => Some(*from),
            Self::BadSignature { .. }
            | Self::MalformedCheckpoint { .. }
            | Self::WrongOrigin { .. }
            | Self::CheckpointRollback { .. }
            | Self::ForkedCheckpoint { .. }
            | Self::SignedHistory { .. } => None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Modified { entry } => write!(f, "entry {entry} was modified"),
            Self::Missing { entry, count } => {
                write!(f, "{count} entries are missing at entry {entry}")
            }
            Self::Inserted { entry, count } => {
                write!(f, "{count} entries were inserted at entry {entry}")
            }
            Self::Reordered { entry, original } => {
                write!(
                    f,
                    "entries were reordered: entry {entry} was logged at {original}"
                )
            }
            Self::Truncated {
                entries,
                expected,
                vouched,
            } => {
                write!(
                    f,
                    "the log was truncated: {entries} entries remain, a signed checkpoint \
                     covers {expected}"
                )?;
                if vouched < entries {
                    write!(
                        f,
                        "; entries {vouched}..{entries} cannot be checked (no checkpoint \
                         between)"
                    )?;
                }
                Ok(())
            }
            Self::Rewritten {
                from,
                to,
                checkpoint_size,
            } => write!(
                f,
                "entries were rewritten with recomputed hashes: the first bad entry is in \
                 {from}..{to} (the checkpoint of {checkpoint_size} entries disagrees)"
            ),
            Self::Unreadable {
                entry,
                segment,
                offset,
                reason,
            } => write!(
                f,
                "entry {entry} is unreadable at byte {offset} of {segment:?}: {reason}"
            ),
            Self::TreeMismatch { entry } => write!(
                f,
                "the tree file disagrees with the records from entry {entry} on"
            ),
            Self::BadSignature { checkpoint, reason } => {
                write!(f, "{checkpoint} has a bad signature: {reason}")
            }
            Self::MalformedCheckpoint { checkpoint, reason } => {
                write!(f, "{checkpoint} is malformed: {reason}")
            }
            Self::WrongOrigin { checkpoint, origin } => {
                write!(f, "{checkpoint} is for another log: origin {origin:?}")
            }
            Self::CheckpointRollback {
                checkpoint,
                size,
                newest,
            } => write!(
                f,
                "checkpoint rollback: {checkpoint} covers {size} entries, the stored history \
                 had reached {newest}"
            ),
            Self::ForkedCheckpoint { checkpoint, size } => write!(
                f,
                "{checkpoint} signs a root for {size} entries that contradicts the log"
            ),
            Self::SignedHistory {
                signed_size,
                reason,
            } => write!(
                f,
                "the signing key last signed {signed_size} entries, but {reason}"
            ),
        }
    }
}

/// Not a problem with the log, but worth knowing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// The final record is incomplete (a crash, or a write in progress); it was not counted.
    TornTail {
        /// The segment.
        segment: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// Bytes from there to the end.
        bytes: u64,
    },
    /// The checkpoints file ends in an incomplete note.
    TornCheckpoint {
        /// Its length.
        bytes: u64,
    },
    /// The tree file holds fewer leaves than there are records (rebuilt on the next open).
    TreeBehind {
        /// Leaves stored.
        stored: u64,
        /// Records read.
        entries: u64,
    },
    /// The tree file holds leaves for records that are not there, past every checkpoint
    /// (unsynced records lost in a crash; cut on the next open).
    TreeAhead {
        /// Leaves stored.
        stored: u64,
        /// Records read.
        entries: u64,
    },
}

/// How much of the log the checkpoints vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Completeness {
    /// No valid checkpoint: integrity only, completeness unknown. Deleting the tail or the
    /// whole log cannot be detected without a checkpoint.
    Unknown,
    /// The newest valid checkpoint covers `size` entries; `unanchored` entries after it are
    /// checked for integrity only.
    Anchored {
        /// Size of the newest valid checkpoint.
        size: u64,
        /// Entries past it.
        unanchored: u64,
    },
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No finding, and a signed checkpoint vouches for the log.
    Verified,
    /// No finding, but no checkpoint: integrity only, completeness unknown.
    IntegrityOnly,
    /// At least one finding.
    Tampered,
}

/// The result of verifying a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The overall answer.
    pub verdict: Verdict,
    /// Records read.
    pub entries: u64,
    /// Root recomputed over those records.
    pub root: Hash,
    /// Checkpoints examined (stored and trusted).
    pub checkpoints: usize,
    /// Coverage by valid checkpoints.
    pub completeness: Completeness,
    /// Problems, the one with the lowest entry first, then checkpoint problems.
    pub findings: Vec<Finding>,
    /// Findings left out beyond [`VerifyOptions::max_findings`].
    pub more_findings: u64,
    /// Conditions that are not tampering.
    pub warnings: Vec<Warning>,
}

impl Report {
    /// Whether nothing was found (completeness may still be unknown).
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first finding.
    pub fn first_finding(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// How many entries a valid checkpoint covers (0 without one).
    pub fn anchored_entries(&self) -> u64 {
        match self.completeness {
            Completeness::Anchored { size, .. } => size,
            Completeness::Unknown => 0,
        }
    }

    /// The lowest bad entry any finding names.
    pub fn first_bad_entry(&self) -> Option<u64> {
        self.findings.iter().filter_map(Finding::entry).min()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let coverage = match self.completeness {
            Completeness::Unknown => "integrity only, completeness unknown (no checkpoint)".into(),
            Completeness::Anchored { size, unanchored } => format!(
                "checkpoint covers {size} entries, {unanchored} entries after it are not yet \
                 signed"
            ),
        };
        let verdict = match self.verdict {
            Verdict::Verified => "verified",
            Verdict::IntegrityOnly => "no tampering found",
            Verdict::Tampered => "TAMPERED",
        };
        writeln!(
            f,
            "{verdict}: {} entries, root {}, {} checkpoints; {coverage}",
            self.entries, self.root, self.checkpoints
        )?;
        for finding in &self.findings {
            writeln!(f, "  finding: {finding}")?;
        }
        if self.more_findings > 0 {
            writeln!(f, "  ... and {} more findings", self.more_findings)?;
        }
        for warning in &self.warnings {
            let text = match warning {
                // A segment created just before a crash may lack all or part of its header.
                Warning::TornTail {
                    segment,
                    offset: 0,
                    bytes,
                } => format!("incomplete segment header: {bytes} bytes in {segment:?}"),
                Warning::TornTail {
                    segment,
                    offset,
                    bytes,
                } => format!("incomplete final record: {bytes} bytes at {offset} of {segment:?}"),
                Warning::TornCheckpoint { bytes } => {
                    format!("incomplete final checkpoint of {bytes} bytes")
                }
                Warning::TreeBehind { stored, entries } => {
                    format!("tree file holds {stored} of {entries} leaves")
                }
                Warning::TreeAhead { stored, entries } => {
                    format!("tree file holds {stored} leaves for {entries} records")
                }
            };
            writeln!(f, "  warning: {text}")?;
        }
        Ok(())
    }
}
