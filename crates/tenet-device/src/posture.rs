//! The posture of one device as one source saw it at one time. Every check is three-valued:
//! `None` means the source could not tell, which is never the same as `Some(false)`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a posture came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostureSource {
    /// A signed report from Tenet's agent on the device.
    Agent,
    /// A row of an MDM export.
    Mdm,
}

impl PostureSource {
    /// `"agent"` or `"mdm"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Mdm => "mdm",
        }
    }
}

/// What one source knows of a device's health at `collected_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posture {
    /// When the source observed the device.
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// Operating system name (for example `ubuntu`, `macOS`, `Windows`).
    pub os: Option<String>,
    /// Operating system version (for example `24.04`, `14.2.1`).
    pub os_version: Option<String>,
    /// Whether the system disk is encrypted.
    pub disk_encrypted: Option<bool>,
    /// Whether a screen lock is enabled.
    pub screen_lock: Option<bool>,
    /// Whether a host firewall is active.
    pub firewall: Option<bool>,
    /// Whether endpoint protection (EDR or antivirus) is running.
    pub endpoint_protection: Option<bool>,
    /// The MDM's own compliance verdict (agent reports leave it unknown).
    pub mdm_compliant: Option<bool>,
}

impl Posture {
    /// A posture observed at `collected_at` that knows nothing yet.
    pub fn unknown(collected_at: OffsetDateTime) -> Self {
        Self {
            collected_at,
            os: None,
            os_version: None,
            disk_encrypted: None,
            screen_lock: None,
            firewall: None,
            endpoint_protection: None,
            mdm_compliant: None,
        }
    }

    /// Whole seconds from `collected_at` to `now`, zero when it lies in the future.
    pub fn age_secs(&self, now: OffsetDateTime) -> u64 {
        u64::try_from((now - self.collected_at).whole_seconds()).unwrap_or(0)
    }
}

/// `"yes"`, `"no"` or `"unknown"`, as policy facts spell a three-valued check.
pub fn tri_state(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}
