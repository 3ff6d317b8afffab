//! File I/O for keys and certificates: private keys are created owner-only, never chmod-ed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::CaError;

/// Permission bits of private key files.
const PRIVATE_MODE: u32 = 0o600;
/// Permission bits of certificate and bundle files.
const PUBLIC_MODE: u32 = 0o644;

/// Opens `path` for writing with the right mode set at creation. `create_new` refuses to
/// follow or reuse an existing file.
fn create(path: &Path, private: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { PRIVATE_MODE } else { PUBLIC_MODE });
    }
    #[cfg(not(unix))]
    let _ = (private, PRIVATE_MODE, PUBLIC_MODE);
    options.open(path)
}

fn write_all(file: &mut File, contents: &[u8]) -> std::io::Result<()> {
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes a new file; an existing file is an error, not overwritten.
pub(crate) fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let mut file = create(path, private).map_err(|source| match source.kind() {
        ErrorKind::AlreadyExists => CaError::AlreadyExists {
            path: path.to_owned(),
        },
        _ => CaError::Write {
            path: path.to_owned(),
            source,
        },
    })?;
    write_all(&mut file, contents).map_err(|source| CaError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` atomically: writes a fresh temporary file beside it, then renames it over.
pub(crate) fn replace(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let tmp = temp_path(path)?;
    let written = create(&tmp, private)
        .and_then(|mut file| write_all(&mut file, contents))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|source| {
        // Best effort: the temporary file is useless once the write failed.
        let _ = fs::remove_file(&tmp);
        CaError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// `.<name>.tmp-<random>` in the same directory, so the rename stays on one filesystem.
fn temp_path(path: &Path) -> Result<PathBuf, CaError> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| CaError::Random)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", hex::encode(suffix))))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(|source| CaError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a private key file, refusing one that group or others can access.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = fs::metadata(path).map_err(|source| CaError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    read(path)
}
