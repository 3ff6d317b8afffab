//! Tenet's tamper-evident event log: an append-only ledger with an RFC 9162 Merkle tree,
//! C2SP signed checkpoints, inclusion and consistency proofs, and full verification.
//!
//! - [`Ledger`] appends entries in batches (group commit) to segment files in one directory,
//!   keeps the tree's subtree hashes in a post-order file for O(log n) proofs, recovers from a
//!   crash by cutting a torn final record, and signs checkpoints with a [`CheckpointSigner`]
//!   that never signs a smaller tree than before.
//! - [`LedgerSink`] puts the ledger behind `tenet_event::EventSink`: an event's future
//!   resolves once its batch is written (and synced per [`SyncPolicy`]); a checkpoint is signed
//!   at least every `checkpoint_every` while events arrive, and on shutdown.
//! - [`verify`] recomputes everything from the records and reports typed [`Finding`]s naming
//!   the first bad entry and the kind of tampering; without a checkpoint it says that
//!   completeness is unknown.
//! - [`verify_inclusion`] and [`verify_consistency`] check proofs without a ledger.
//!
//! An entry is the exact bytes given to [`Ledger::append_batch`]; the sink stores
//! `Event::to_canonical_json()`.
//!
//! # Storage
//!
//! - `segments/<first index>.seg`: records `u32 LE length | entry | first 8 bytes of the
//!   entry's RFC 9162 leaf hash`. The trailer doubles as the checksum that finds torn and
//!   damaged records, so reading and hashing an entry is one pass; it is not the tamper
//!   evidence (anyone can recompute it), the signed tree is.
//! - `tree.hashes`: every perfect-subtree hash in post-order, `2n - popcount(n)` hashes for
//!   `n` entries (about 64 bytes an entry). Any subtree is one positioned read, so a root or a
//!   proof for any size costs O(log n) reads; the writer keeps only the right frontier (at most
//!   64 hashes) in memory. The file is derived data: rebuilt from the records on open when a
//!   crash left it behind, and used by verification only once a signed checkpoint vouches
//!   for it.
//! - `checkpoints`: C2SP signed notes, oldest first, each followed by a blank line.
//!
//! Proofs serialise to JSON with hashes as lowercase hex (see [`InclusionProof`]).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod checkpoint;
mod clock;
mod error;
mod hash;
mod ledger;
mod merkle;
mod note;
mod proof;
mod reader;
mod scan;
mod segment;
mod sink;
mod tree_file;
mod verify;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, SignError, SignedCheckpoint, SignerState,
    read_signer, read_signer_state, read_signer_stop,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::LedgerError;
pub use hash::{HASH_LEN, Hash, HashParseError, empty_root, leaf_hash, node_hash};
pub use ledger::{
    CheckpointJob, CheckpointStart, Ledger, LedgerOptions, OpenWarning, Opened, SyncJob, SyncPolicy,
};
pub use merkle::{ProofError, tree_root, verify_consistency, verify_inclusion};
pub use note::{KeyError, Note, NoteError, NoteSignature, SigningKey, VerifierKey};
pub use proof::{ConsistencyProof, InclusionProof};
pub use reader::{Entries, LedgerReader, entries};
pub use segment::MAX_ENTRY_LEN;
pub use sink::{HistoryCheck, LedgerSink, SinkOptions, SinkStatus, StoredEvent};
pub use verify::{
    CheckpointRef, Completeness, Finding, Report, TamperKind, Verdict, VerifyError, VerifyOptions,
    Warning, verify, verify_with,
};
