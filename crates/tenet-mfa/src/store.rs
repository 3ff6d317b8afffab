//! Per-user factors (WebAuthn credentials, TOTP enrolment, recovery code hashes, open
//! ceremonies), persisted as one JSON file written atomically with mode 0600.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::debug;
use uuid::Uuid;

use crate::credential::Credential;
use crate::recovery::RecoveryCodes;
use crate::totp::TotpEnrolment;

/// The file format version written by this crate.
const FORMAT_VERSION: u32 = 1;

/// At most this many ceremonies stay open per user; starting another closes the oldest.
const MAX_OPEN_CEREMONIES: usize = 16;

/// A failure to load or save the factor store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("factor store {path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a factor store; it is left untouched.
    #[error("factor store {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Everything Tenet keeps about one user's second factors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserFactors {
    /// The opaque user handle given to authenticators (not the IdP subject).
    pub(crate) webauthn_user_id: Uuid,
    pub(crate) credentials: Vec<Credential>,
    /// The TOTP enrolment, if any.
    pub totp: Option<TotpEnrolment>,
    /// The recovery code hashes.
    pub recovery: RecoveryCodes,
    /// Open WebAuthn ceremonies and when each expires.
    #[serde(default)]
    pub(crate) open_ceremonies: BTreeMap<Uuid, i64>,
}

impl UserFactors {
    /// An empty record with the given opaque WebAuthn user handle.
    pub fn new(webauthn_user_id: Uuid) -> Self {
        UserFactors {
            webauthn_user_id,
            credentials: Vec::new(),
            totp: None,
            recovery: RecoveryCodes::default(),
            open_ceremonies: BTreeMap::new(),
        }
    }

    /// The opaque user handle given to authenticators.
    pub fn webauthn_user_id(&self) -> Uuid {
        self.webauthn_user_id
    }

    /// The registered WebAuthn credentials.
    pub fn credentials(&self) -> &[Credential] {
        &self.credentials
    }

    /// Remove a credential by its base64url id; true if it was there.
    pub fn remove_credential(&mut self, id: &str) -> bool {
        let before = self.credentials.len();
        self.credentials.retain(|c| c.id() != id);
        before != self.credentials.len()
    }

    /// Open a ceremony: returns its id and expiry. Expired ceremonies are dropped, and the
    /// oldest if too many are open.
    pub(crate) fn open_ceremony(
        &mut self,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> (Uuid, OffsetDateTime) {
        let now_ts = now.unix_timestamp();
        self.open_ceremonies.retain(|_, expires| *expires >= now_ts);
        while self.open_ceremonies.len() >= MAX_OPEN_CEREMONIES {
            let oldest = self
                .open_ceremonies
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.open_ceremonies.remove(&id),
                None => break,
            };
        }
        let id = Uuid::new_v4();
        let expires_at =
            now.saturating_add(time::Duration::try_from(ttl).unwrap_or(time::Duration::MINUTE));
        self.open_ceremonies.insert(id, expires_at.unix_timestamp());
        (id, expires_at)
    }

    /// Close a ceremony; false if it was not open (used before, superseded, or unknown).
    pub(crate) fn close_ceremony(&mut self, id: Uuid) -> bool {
        self.open_ceremonies.remove(&id).is_some()
    }
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    users: BTreeMap<String, UserFactors>,
}

/// Every user's factors, keyed by a stable user key such as "issuer|subject".
#[derive(Debug)]
pub struct FactorStore {
    path: PathBuf,
    users: BTreeMap<String, UserFactors>,
}

impl FactorStore {
    /// Load the store from `path`; a missing file is an empty store, a corrupt one an error.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!(path = %path.display(), "factor store absent, starting empty");
                return Ok(FactorStore {
                    path,
                    users: BTreeMap::new(),
                });
            }
            Err(source) => return Err(io_error(&path, "read", source)),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file: StoreFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("unsupported version {}", file.version)));
        }
        Ok(FactorStore {
            path,
            users: file.users,
        })
    }

    /// The file this store is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The user's factors, if any were ever recorded.
    pub fn user(&self, key: &str) -> Option<&UserFactors> {
        self.users.get(key)
    }

    /// The user's factors, created empty (with a fresh random user handle) if absent.
    pub fn user_mut(&mut self, key: &str) -> &mut UserFactors {
        self.users
            .entry(key.to_owned())
            .or_insert_with(|| UserFactors::new(Uuid::new_v4()))
    }

    /// Forget a user entirely; returns their factors if there were any.
    pub fn remove_user(&mut self, key: &str) -> Option<UserFactors> {
        self.users.remove(key)
    }

    /// The user keys, in order.
    pub fn user_keys(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Write the store: to a temporary file with mode 0600 in the same directory, synced,
    /// then renamed over the old file.
    pub fn save(&self) -> Result<(), StoreError> {
        let file = StoreFile {
            version: FORMAT_VERSION,
            users: self.users.clone(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            reason: format!("cannot serialise: {e}"),
        })?;
        let tmp = temp_path(&self.path);
        write_private(&tmp, &json).map_err(|e| io_error(&tmp, "write temporary file", e))?;
        fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_error(&self.path, "rename temporary file over", e)
        })?;
        debug!(path = %self.path.display(), users = self.users.len(), "factor store saved");
        Ok(())
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", Uuid::new_v4()));
    path.with_file_name(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn io_error(path: &Path, action: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}
