//! The session store's file: one JSON document, written to a temporary file with mode 0600,
//! synced, then renamed over the old one, so a crash leaves either the old or the new file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::session::{Session, UserIdentity};
use crate::token::Handle;

/// The version of the file format this crate writes and reads.
pub(crate) const FILE_VERSION: u32 = 1;

/// Errors reading or writing the session store's file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFileError {
    /// The file exists but could not be read.
    #[error("cannot read session store file '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a session store this version understands.
    #[error("session store file '{path}' is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The file was written by a format version this crate does not know.
    #[error("session store file '{path}' has unsupported version {version}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file is well-formed JSON but lists the same session twice.
    #[error("session store file '{path}' lists session {handle} twice")]
    DuplicateSession {
        /// The file.
        path: PathBuf,
        /// The session listed twice.
        handle: Handle,
    },
    /// The file could not be written.
    #[error("cannot write session store file '{path}': {source}")]
    Write {
        /// The file (or its temporary sibling).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a session id stopped working before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCause {
    /// An operator or a playbook revoked it.
    Revoked,
    /// It was replaced by a new id (step-up or explicit rotation).
    Rotated,
    /// Continuous evaluation ended it.
    Ended,
    /// It was evicted to keep the store within its bounds.
    Evicted,
    /// The same browser signed in again and got a new session.
    Replaced,
    /// The device the session was bound to was revoked.
    DeviceRevoked,
}

impl EndCause {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            EndCause::Revoked => "revoked",
            EndCause::Rotated => "rotated",
            EndCause::Ended => "ended",
            EndCause::Evicted => "evicted",
            EndCause::Replaced => "replaced",
            EndCause::DeviceRevoked => "device_revoked",
        }
    }
}

impl std::fmt::Display for EndCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remembered end of a session id, so that its reuse is reported as revoked, not unknown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub(crate) handle: Handle,
    pub(crate) cause: EndCause,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) until: OffsetDateTime,
    /// Whose session it was (issuer, subject and attributes only), so that a request reusing
    /// the id can be recorded as that person's; files written before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<UserIdentity>,
}

/// The whole file.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoreFile {
    pub(crate) version: u32,
    pub(crate) sessions: Vec<Session>,
    pub(crate) tombstones: Vec<Tombstone>,
}

/// Reads the file, or `None` when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<Option<StoreFile>, StoreFileError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: StoreFile =
        serde_json::from_slice(&text).map_err(|source| StoreFileError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
    if file.version != FILE_VERSION {
        let version = file.version;
        return Err(StoreFileError::UnsupportedVersion {
            path: path.to_owned(),
            version,
        });
    }
    Ok(Some(file))
}

/// Writes the file atomically with mode 0600.
pub(crate) fn save(path: &Path, file: &StoreFile) -> Result<(), StoreFileError> {
    let write_err = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreFileError::Write { path: p, source }
    };
    let json = serde_json::to_vec(file).map_err(|e| StoreFileError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    let tmp = temporary_sibling(path);
    write_private(&tmp, &json).map_err(write_err(&tmp))?;
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreFileError::Write {
            path: path.to_owned(),
            source,
        });
    }
    sync_parent(path).map_err(write_err(path))
}

fn temporary_sibling(path: &Path) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand::fill(&mut suffix);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", hex::encode(suffix)))
}

fn write_private(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
