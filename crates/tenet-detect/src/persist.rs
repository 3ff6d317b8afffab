//! The principals' learned baselines in a stable, versioned form, and the state file that
//! keeps them across restarts.
//!
//! The form names principals, services and routes by their strings (never by interned ids),
//! gives times as Unix milliseconds and carries a format version. The file is written
//! atomically (a temporary file in the same directory, synced, then renamed over the old
//! one) with owner-only permissions. Risk scores, failure windows and the current rate
//! bucket are not part of it: they describe the last minutes, not the baseline.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format written, and the newest one read.
pub const BASELINES_VERSION: u32 = 1;

/// The `format` field of every baselines file.
const FORMAT: &str = "tenet-detect-baselines";

/// Larger state files are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// The learned baselines of every principal, as saved by [`crate::Analytics::export_baselines`]
/// and restored by [`crate::Analytics::import_baselines`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    pub(crate) format: String,
    pub(crate) version: u32,
    /// When the baselines were exported, Unix milliseconds.
    pub(crate) saved_at_ms: i64,
    /// The principals, most recently seen first.
    pub(crate) principals: Vec<SavedPrincipal>,
}

impl Baselines {
    pub(crate) fn new(saved_at_ms: i64, principals: Vec<SavedPrincipal>) -> Self {
        Self {
            format: FORMAT.into(),
            version: BASELINES_VERSION,
            saved_at_ms,
            principals,
        }
    }

    /// How many principals they hold.
    pub fn len(&self) -> usize {
        self.principals.len()
    }

    /// Whether they hold no principal.
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
    }

    /// Parse baselines from JSON, checking the format and its version.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BaselineError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| BaselineError::Parse(e.to_string()))?;
        if header.format != FORMAT {
            return Err(BaselineError::Format(header.format));
        }
        if header.version > BASELINES_VERSION {
            return Err(BaselineError::FutureVersion(header.version));
        }
        serde_json::from_slice(bytes).map_err(|e| BaselineError::Parse(e.to_string()))
    }

    /// The baselines as JSON.
    pub fn to_json(&self) -> Result<Vec<u8>, BaselineError> {
        serde_json::to_vec(self).map_err(|e| BaselineError::Parse(e.to_string()))
    }

    /// Write the baselines to `path` atomically, readable by the owner only: a temporary
    /// file in the same directory is written and synced, then renamed over `path`. The
    /// directory is created (owner-only) when missing.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let io = |e: std::io::Error| BaselineError::Io(e.to_string());
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        if !dir.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(io)?;
        }
        let bytes = self.to_json()?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "baselines.json".into());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&tmp).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        // The rename is durable once the directory is synced; not every platform can.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Read baselines from `path`. A missing file is `Ok(None)`: there is nothing learned
    /// yet.
    pub fn load(path: &Path) -> Result<Option<Self>, BaselineError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BaselineError::Io(e.to_string())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BaselineError::Io(e.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(BaselineError::TooLarge(MAX_FILE_BYTES));
        }
        Self::from_json(&bytes).map(Some)
    }

    /// Move an unusable state file aside as `<path>.corrupt-<unix_secs>`, so that learning
    /// starts fresh and the file stays for inspection. Returns where it went.
    pub fn quarantine(path: &Path, unix_secs: i64) -> Result<PathBuf, BaselineError> {
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".corrupt-{unix_secs}"));
        let aside = PathBuf::from(aside);
        fs::rename(path, &aside).map_err(|e| BaselineError::Io(e.to_string()))?;
        Ok(aside)
    }
}

/// Why baselines could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// Reading, writing or renaming the file failed.
    #[error("{0}")]
    Io(String),
    /// The content is not valid baselines JSON.
    #[error("not a valid baselines file: {0}")]
    Parse(String),
    /// The content is JSON of another format.
    #[error("format \"{0}\" is not tenet-detect-baselines")]
    Format(String),
    /// Written by a newer version of Tenet.
    #[error("format version {0} is newer than the supported version {BASELINES_VERSION}")]
    FutureVersion(u32),
    /// Larger than any state the configured caps could produce.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

/// One principal's learned baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedPrincipal {
    pub(crate) principal: String,
    pub(crate) first_seen_ms: i64,
    pub(crate) events: u32,
    pub(crate) established: bool,
    pub(crate) services: Vec<String>,
    pub(crate) services_saturated: bool,
    /// (service, route) pairs.
    pub(crate) routes: Vec<(String, String)>,
    pub(crate) routes_saturated: bool,
    pub(crate) peak_fan_out: u32,
    /// Requests learned per hour of the day (UTC), 24 entries.
    pub(crate) hours: Vec<u32>,
    /// Source networks as `addr/len`.
    pub(crate) networks: Vec<String>,
    pub(crate) networks_saturated: bool,
    pub(crate) rate: SavedRate,
}

/// The request-rate baseline: EWMA mean and variance per bucket, and buckets folded in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedRate {
    pub(crate) mean: f64,
    pub(crate) var: f64,
    pub(crate) buckets: u32,
}
