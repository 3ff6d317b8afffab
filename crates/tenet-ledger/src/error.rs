//! Errors of the ledger's storage operations.

use std::path::PathBuf;

use crate::checkpoint::{CheckpointError, SignError};

/// Why a ledger operation failed. Every variant means "the event is not recorded" to a caller
/// on the request path, which therefore denies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Reading or writing a ledger file failed.
    #[error("ledger file {path:?}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (part of the message, so that it is stated once).
        error: std::io::Error,
    },
    /// Another process holds the ledger directory.
    #[error("ledger directory {dir:?} is locked by another writer")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A segment holds damage that a crash cannot explain; run verification.
    #[error("ledger segment {path:?} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer entries are stored than the newest checkpoint covers: signed entries are gone.
    #[error(
        "ledger in {dir:?} holds {entries} entries but its newest checkpoint covers {checkpoint}; \
         refusing to open a log that lost signed entries"
    )]
    BehindCheckpoint {
        /// The directory.
        dir: PathBuf,
        /// Intact entries found.
        entries: u64,
        /// Size of the newest checkpoint.
        checkpoint: u64,
    },
    /// The stored tree does not have the root the newest checkpoint signed.
    #[error("ledger tree root at size {size} differs from the newest checkpoint's root")]
    CheckpointMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// A stored checkpoint needed cannot be parsed.
    #[error("a checkpoint in {path:?} is unreadable: {error}")]
    BadCheckpoint {
        /// The checkpoints file.
        path: PathBuf,
        /// The cause (part of the message, so that it is stated once).
        error: CheckpointError,
    },
    /// The signer refused or failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The tree to be signed does not extend the last signed one.
    #[error("tree of {new} entries is not consistent with the checkpoint of {old} entries")]
    Inconsistent {
        /// Size of the last checkpoint.
        old: u64,
        /// Size of the tree now.
        new: u64,
    },
    /// The ledger does not hold the tree its signing key last signed: entries it covered were
    /// changed or removed, or the ledger was rolled back (the checkpoints file with it).
    #[error("the signing key last signed {signed_size} entries, and {reason}")]
    NotWhatWasSigned {
        /// Size of the tree the signer last signed.
        signed_size: u64,
        /// What differs.
        reason: String,
    },
    /// An entry is larger than the ledger accepts.
    #[error("entry of {len} bytes is larger than the limit of {max} bytes")]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An index at or past the end of the tree.
    #[error("entry index {index} is not inside a tree of {size} entries")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size larger than the log, or a meaningless pair of sizes.
    #[error("tree sizes {old}..{new} are not valid for a log of {size} entries")]
    BadSizes {
        /// The older size (0 when only one size is involved).
        old: u64,
        /// The newer size.
        new: u64,
        /// Entries in the log.
        size: u64,
    },
    /// An earlier write or sync failed in a way that leaves the files uncertain.
    #[error("ledger in {dir:?} stopped after a failed write or sync; reopen it to recover")]
    Poisoned {
        /// The directory.
        dir: PathBuf,
    },
}

impl LedgerError {
    /// Whether this failure stops the ledger until it is reopened: a failed write or sync
    /// (after a failed fsync the page cache may have dropped data).
    pub fn stops_the_ledger(&self) -> bool {
        matches!(self, LedgerError::Io { .. }) && !self.is_transient()
    }

    /// Whether this failure is the process or the system running out of file descriptors
    /// (`EMFILE`, `ENFILE`): only opening a file fails that way, before anything is written
    /// or synced, so the same work can be tried again once descriptors are free.
    pub fn is_transient(&self) -> bool {
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        match self {
            LedgerError::Io { error, .. } => {
                matches!(error.raw_os_error(), Some(ENFILE | EMFILE))
            }
            _ => false,
        }
    }
}

/// Attach a path to an I/O error.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LedgerError {
    let path = path.into();
    move |error| LedgerError::Io { path, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(error: std::io::Error) -> LedgerError {
        LedgerError::Io {
            path: PathBuf::from("ledger/segments"),
            error,
        }
    }

    #[test]
    fn running_out_of_descriptors_is_transient_and_other_io_failures_stop_the_ledger() {
        for exhausted in [23, 24] {
            let e = io(std::io::Error::from_raw_os_error(exhausted));
            assert!(e.is_transient() && !e.stops_the_ledger(), "{e}");
        }
        // EIO, as a failed fsync reports it; ENOSPC.
        for failed in [5, 28] {
            let e = io(std::io::Error::from_raw_os_error(failed));
            assert!(!e.is_transient() && e.stops_the_ledger(), "{e}");
        }
    }
}
