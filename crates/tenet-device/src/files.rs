//! File I/O for the registry, the posture store and device keys: private files are created
//! owner-only (never chmod-ed afterwards), replaced atomically, and refused when others can
//! read them.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::FileError;

/// Permission bits of every file this crate writes.
const PRIVATE_MODE: u32 = 0o600;

/// Opens a new owner-only file; an existing file (or symlink) is an error.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(PRIVATE_MODE);
    }
    #[cfg(not(unix))]
    let _ = PRIVATE_MODE;
    options.open(path)
}

fn write_all(mut file: File, contents: &[u8]) -> std::io::Result<()> {
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes a new owner-only file; an existing file is refused, not overwritten.
pub(crate) fn write_new_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let file = create_private(path).map_err(|source| match source.kind() {
        ErrorKind::AlreadyExists => FileError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => FileError::Write {
            path: path.to_owned(),
            source,
        },
    })?;
    write_all(file, contents).map_err(|source| FileError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` atomically with `value` as pretty JSON: a fresh owner-only temporary file
/// beside it, then a rename over it.
pub(crate) fn replace_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FileError> {
    let mut contents = serde_json::to_vec_pretty(value).map_err(|e| FileError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot serialise: {e}"),
    })?;
    contents.push(b'\n');
    let tmp = temp_path(path)?;
    let written = create_private(&tmp)
        .and_then(|file| write_all(file, &contents))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|source| {
        // Best effort: the temporary file is useless once the write failed.
        let _ = fs::remove_file(&tmp);
        FileError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Reads a JSON file written by [`replace_json`]; `Ok(None)` when it does not exist. A file
/// that does not parse is an error naming it.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    let bytes = match read_private(path) {
        Ok(bytes) => bytes,
        Err(FileError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| FileError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// `.<name>.tmp-<random>` in the same directory, so the rename stays on one filesystem.
fn temp_path(path: &Path) -> Result<PathBuf, FileError> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| FileError::Random)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", hex::encode(suffix))))
}

/// Reads a private file, refusing one that group or others can access.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path).map_err(read_error)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(FileError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    fs::read(path).map_err(read_error)
}
