//! What policy asks of a device's posture, the verdict, and the flat facts handed to Cedar.
//!
//! Fail closed: a required check whose value is unknown fails, and so does every required
//! check when the posture is missing or older than the maximum age.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::posture::{Posture, tri_state};
use crate::registry::DeviceRegistry;
use crate::store::PostureStore;

/// What a device must satisfy to be compliant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostureRequirements {
    /// Posture older than this is stale (`None`: any age will do).
    pub max_age_secs: Option<u64>,
    /// The system disk must be encrypted.
    pub require_disk_encryption: bool,
    /// A host firewall must be active.
    pub require_firewall: bool,
    /// A screen lock must be enabled.
    pub require_screen_lock: bool,
    /// Endpoint protection must be running.
    pub require_endpoint_protection: bool,
    /// The MDM must call the device compliant.
    pub require_mdm_compliant: bool,
    /// Minimum OS version per OS name (names compared case-insensitively); an OS not listed
    /// has no minimum.
    pub min_os_versions: BTreeMap<String, String>,
}

impl Default for PostureRequirements {
    /// Posture at most 24 hours old; no check required.
    fn default() -> Self {
        Self {
            max_age_secs: Some(24 * 3600),
            require_disk_encryption: false,
            require_firewall: false,
            require_screen_lock: false,
            require_endpoint_protection: false,
            require_mdm_compliant: false,
            min_os_versions: BTreeMap::new(),
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCheck {
    /// The check's name (`posture`, `fresh`, `disk_encryption`, `firewall`, `screen_lock`,
    /// `endpoint_protection`, `mdm_compliant`, `os_version`).
    pub name: &'static str,
    /// Why it failed.
    pub reason: String,
}

/// The outcome of [`PostureRequirements::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureVerdict {
    /// True when no check failed.
    pub compliant: bool,
    /// The failed checks, in a fixed order.
    pub failed: Vec<FailedCheck>,
    /// Age of the merged posture, if there is any posture.
    pub age_secs: Option<u64>,
    /// True when posture exists but none is within the maximum age.
    pub stale: bool,
}

impl PostureRequirements {
    /// The maximum age as a duration.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_secs.map(Duration::from_secs)
    }

    /// True when any check or a maximum age is asked for.
    pub fn requires_posture(&self) -> bool {
        self.max_age_secs.is_some()
            || self.require_disk_encryption
            || self.require_firewall
            || self.require_screen_lock
            || self.require_endpoint_protection
            || self.require_mdm_compliant
            || !self.min_os_versions.is_empty()
    }

    /// Evaluates a device's posture in `store` at `now`.
    pub fn evaluate(
        &self,
        store: &PostureStore,
        device: Uuid,
        now: OffsetDateTime,
    ) -> PostureVerdict {
        let any = store.merged(device, now);
        let fresh = store.merged_within(device, self.max_age(), now);
        let stale = any.is_some() && fresh.is_none();
        let mut failed = Vec::new();
        match &fresh {
            Some(merged) => self.check_posture(&merged.posture, &mut failed),
            None if self.requires_posture() => {
                let (name, reason) = match &any {
                    Some(old) => ("fresh", format!("posture is {} seconds old", old.age_secs)),
                    None => ("posture", "no posture reported".to_owned()),
                };
                failed.push(FailedCheck { name, reason });
            }
            None => {}
        }
        PostureVerdict {
            compliant: failed.is_empty(),
            failed,
            age_secs: fresh.as_ref().or(any.as_ref()).map(|m| m.age_secs),
            stale,
        }
    }

    fn check_posture(&self, posture: &Posture, failed: &mut Vec<FailedCheck>) {
        let flags = [
            (
                "disk_encryption",
                self.require_disk_encryption,
                posture.disk_encrypted,
            ),
            ("firewall", self.require_firewall, posture.firewall),
            ("screen_lock", self.require_screen_lock, posture.screen_lock),
            (
                "endpoint_protection",
                self.require_endpoint_protection,
                posture.endpoint_protection,
            ),
            (
                "mdm_compliant",
                self.require_mdm_compliant,
                posture.mdm_compliant,
            ),
        ];
        for (name, required, value) in flags {
            match (required, value) {
                (true, Some(false)) => failed.push(FailedCheck {
                    name,
                    reason: "reported off".into(),
                }),
                (true, None) => failed.push(FailedCheck {
                    name,
                    reason: "unknown".into(),
                }),
                _ => {}
            }
        }
        if let Some(reason) = self.os_version_failure(posture) {
            failed.push(FailedCheck {
                name: "os_version",
                reason,
            });
        }
    }

    /// Why the OS version is below its minimum, if it is (or cannot be told).
    fn os_version_failure(&self, posture: &Posture) -> Option<String> {
        if self.min_os_versions.is_empty() {
            return None;
        }
        let Some(os) = posture.os.as_deref() else {
            return Some("operating system unknown".into());
        };
        let (_, minimum) = self
            .min_os_versions
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(os))?;
        let Some(version) = posture.os_version.as_deref() else {
            return Some(format!("{os} version unknown, {minimum} required"));
        };
        (compare_versions(version, minimum) == Ordering::Less)
            .then(|| format!("{os} {version} is below {minimum}"))
    }
}

/// Compares dotted versions numerically component by component (`14.10` > `14.9`); a
/// component's leading digits count, missing components are zero.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> {
        v.trim()
            .trim_start_matches(['v', 'V'])
            .split(['.', '-', '_', ' '])
            .map(|part| {
                let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or(0)
            })
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            x.cmp(&y)
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Age reported for a device with no posture: the largest Cedar `Long`, so that a policy
/// condition such as `age_secs < 3600` fails closed.
pub const NO_POSTURE_AGE: i64 = i64::MAX;

/// A flat record of a device's state for the Cedar request context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostureFacts {
    /// Enrolled and not revoked.
    pub enrolled: bool,
    /// Enrolled and compliant with the requirements.
    pub compliant: bool,
    /// OS name, or `"unknown"`.
    pub os: String,
    /// OS version, or `"unknown"`.
    pub os_version: String,
    /// `"yes"`, `"no"` or `"unknown"`.
    pub disk_encrypted: &'static str,
    /// `"yes"`, `"no"` or `"unknown"`.
    pub firewall: &'static str,
    /// `"yes"`, `"no"` or `"unknown"`.
    pub screen_lock: &'static str,
    /// `"yes"`, `"no"` or `"unknown"`.
    pub endpoint_protection: &'static str,
    /// Seconds since the merged posture was observed; [`NO_POSTURE_AGE`] without posture.
    pub age_secs: i64,
}

impl PostureFacts {
    /// The facts of `device` at `now`. A revoked or unknown device is neither enrolled nor
    /// compliant, whatever its posture.
    pub fn gather(
        registry: &DeviceRegistry,
        store: &PostureStore,
        requirements: &PostureRequirements,
        device: Uuid,
        now: OffsetDateTime,
    ) -> Self {
        let enrolled = registry.device(device).is_some_and(|d| !d.is_revoked());
        let verdict = requirements.evaluate(store, device, now);
        let merged = store.merged(device, now);
        let posture = merged.as_ref().map(|m| &m.posture);
        let text = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unknown".to_owned());
        Self {
            enrolled,
            compliant: enrolled && verdict.compliant,
            os: text(posture.and_then(|p| p.os.as_ref())),
            os_version: text(posture.and_then(|p| p.os_version.as_ref())),
            disk_encrypted: tri_state(posture.and_then(|p| p.disk_encrypted)),
            firewall: tri_state(posture.and_then(|p| p.firewall)),
            screen_lock: tri_state(posture.and_then(|p| p.screen_lock)),
            endpoint_protection: tri_state(posture.and_then(|p| p.endpoint_protection)),
            age_secs: merged
                .map(|m| i64::try_from(m.age_secs).unwrap_or(NO_POSTURE_AGE))
                .unwrap_or(NO_POSTURE_AGE),
        }
    }

    /// The facts as a JSON object, the shape a Cedar context record takes.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
