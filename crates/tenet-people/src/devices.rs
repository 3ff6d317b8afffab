//! Enrolled devices and their posture, as the gateway and the admin API use them: enrolment
//! tokens, enrolment, signed posture reports, MDM imports, revocation, and the device facts
//! policies see. State lives in two owner-only JSON files in the data directory and is written
//! on every change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::Serialize;
use tenet_device::{
    DeviceRecord, DeviceRegistry, Enrolment, EnrolmentRequest, IssuedToken, MdmImport, MdmMatch,
    NO_POSTURE_AGE, PostureFacts, PostureRequirements, PostureStore, PostureVerdict,
    ReportVerifier,
};
use tenet_identity::{CertificateAuthority, SpiffeId};
use tenet_policy::DeviceFacts;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::PeopleError;

/// File names in the data directory.
const REGISTRY_FILE: &str = "devices.json";
const POSTURE_FILE: &str = "posture.json";

/// How far a report's time may be ahead of the gateway's clock.
const REPORT_SKEW: Duration = Duration::from_secs(300);
/// Most posture reports a device may send per [`REPORT_WINDOW`] (an agent reports every few
/// minutes); more are answered 429 and neither kept nor recorded, so that an enrolled device
/// cannot flood the ledger and the posture file.
pub const REPORTS_PER_DEVICE: u32 = 6;
/// The window of [`REPORTS_PER_DEVICE`], starting with a device's first report after the
/// last window ended.
pub const REPORT_WINDOW: Duration = Duration::from_secs(60);

/// Devices and posture, shared by the sign-in service and the admin API.
pub struct Devices {
    registry: RwLock<DeviceRegistry>,
    registry_path: PathBuf,
    posture: RwLock<PostureStore>,
    posture_path: PathBuf,
    requirements: PostureRequirements,
    verifier: ReportVerifier,
    cert_ttl: Duration,
    /// Per device that reported: when its window started and how many reports it sent in it.
    report_windows: Mutex<HashMap<Uuid, (OffsetDateTime, u32)>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("registry", &self.registry_path)
            .field("posture", &self.posture_path)
            .finish_non_exhaustive()
    }
}

/// A device's compliance with the deployment's posture requirements, as the report answer,
/// the device list and the ledger tell it. It is the verdict policy sees as
/// `context.device.compliant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    /// Enrolled, not revoked, and no requirement failed.
    pub compliant: bool,
    /// The names of the failed requirements (`disk_encryption`, `fresh`, `os_version` …).
    pub failing: Vec<&'static str>,
    /// Each failed requirement with why it failed.
    pub failures: Vec<tenet_device::FailedCheck>,
    /// Age of the device's merged posture, if it has any.
    pub posture_age_secs: Option<u64>,
    /// The oldest posture that still counts (`None`: any age will do).
    pub max_age_secs: Option<u64>,
}

impl Compliance {
    fn of(verdict: PostureVerdict, revoked: bool, requirements: &PostureRequirements) -> Self {
        Self {
            compliant: verdict.compliant && !revoked,
            failing: verdict.failed.iter().map(|f| f.name).collect(),
            failures: verdict.failed,
            posture_age_secs: verdict.age_secs,
            max_age_secs: requirements.max_age_secs,
        }
    }

    /// One line for the ledger: `compliant`, or `not compliant: disk_encryption (reported
    /// off)`.
    pub fn summary(&self) -> String {
        if self.compliant {
            return "compliant".to_owned();
        }
        let failures: Vec<String> = self
            .failures
            .iter()
            .map(|f| format!("{} ({})", f.name, f.reason))
            .collect();
        if failures.is_empty() {
            "not compliant: the device is revoked".to_owned()
        } else {
            format!("not compliant: {}", failures.join(", "))
        }
    }
}

/// An enrolled device with its current compliance, as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedDevice {
    /// The registry's record.
    #[serde(flatten)]
    pub record: DeviceRecord,
    /// Its compliance now.
    #[serde(flatten)]
    pub compliance: Compliance,
}

/// What the session evaluation needs of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The facts for the policy context.
    pub facts: DeviceFacts,
    /// Whether posture requirements are configured at all (no requirement: posture is not
    /// a session signal).
    pub posture_required: bool,
}

impl Devices {
    /// Loads (or starts empty) the registry and posture files in `data_dir`. Reports are
    /// verified against `ca`'s bundle and accepted up to the requirements' maximum age.
    pub fn open(
        data_dir: &Path,
        ca: &CertificateAuthority,
        requirements: PostureRequirements,
        cert_ttl: Duration,
    ) -> Result<Self, PeopleError> {
        let registry_path = data_dir.join(REGISTRY_FILE);
        let posture_path = data_dir.join(POSTURE_FILE);
        let registry = DeviceRegistry::load(&registry_path)?;
        let posture = PostureStore::load(&posture_path)?;
        let max_age = requirements
            .max_age()
            .unwrap_or(Duration::from_secs(7 * 24 * 3600));
        Ok(Self {
            registry: RwLock::new(registry),
            registry_path,
            posture: RwLock::new(posture),
            posture_path,
            verifier: ReportVerifier::new(ca.bundle(), REPORT_SKEW, max_age),
            requirements,
            cert_ttl,
            report_windows: Mutex::new(HashMap::new()),
        })
    }

    fn registry(&self) -> RwLockReadGuard<'_, DeviceRegistry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, DeviceRegistry> {
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn posture(&self) -> RwLockReadGuard<'_, PostureStore> {
        self.posture.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn posture_mut(&self) -> RwLockWriteGuard<'_, PostureStore> {
        self.posture.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A one-time enrolment token for a device of `owner`, valid for `ttl`.
    pub fn create_token(
        &self,
        owner: Option<&str>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, PeopleError> {
        let mut registry = self.registry_mut();
        let token = registry.create_token(owner, ttl, now)?;
        registry.save(&self.registry_path)?;
        Ok(token)
    }

    /// Redeems a token for a device certificate signed by `ca`.
    pub fn enrol(
        &self,
        ca: &CertificateAuthority,
        request: &EnrolmentRequest,
        now: OffsetDateTime,
    ) -> Result<Enrolment, PeopleError> {
        let mut registry = self.registry_mut();
        let enrolment = registry.enrol(ca, request, self.cert_ttl, now)?;
        registry.save(&self.registry_path)?;
        Ok(enrolment)
    }

    /// Verifies and keeps a signed posture report; returns the device's id and its
    /// compliance with the report taken into account. A verified report past the device's
    /// [`REPORTS_PER_DEVICE`] in its window is refused with [`PeopleError::TooManyReports`].
    pub fn report(
        &self,
        jws: &str,
        now: OffsetDateTime,
    ) -> Result<(Uuid, Compliance), PeopleError> {
        let registry = self.registry();
        let verified = self.verifier.verify(jws, &registry, now)?;
        let device = verified.report().device_id;
        self.count_report(device, now)?;
        let mut posture = self.posture_mut();
        posture.accept_report(verified, now)?;
        posture.save(&self.posture_path)?;
        let revoked = registry.device(device).is_none_or(|d| d.is_revoked());
        let verdict = self.requirements.evaluate(&posture, device, now);
        Ok((device, Compliance::of(verdict, revoked, &self.requirements)))
    }

    /// Counts a verified report of `device` at `now` against its window.
    fn count_report(&self, device: Uuid, now: OffsetDateTime) -> Result<(), PeopleError> {
        let mut windows = self
            .report_windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (start, count) = windows.entry(device).or_insert((now, 0));
        if now >= *start + REPORT_WINDOW || now < *start {
            (*start, *count) = (now, 0);
        }
        *count = count.saturating_add(1);
        if *count <= REPORTS_PER_DEVICE {
            return Ok(());
        }
        let error = PeopleError::TooManyReports {
            device_id: device,
            max: REPORTS_PER_DEVICE,
            window_secs: REPORT_WINDOW.as_secs(),
            until: *start + REPORT_WINDOW,
        };
        if *count == REPORTS_PER_DEVICE + 1 {
            tracing::warn!(%device, reason = %error, "device over its posture report limit; further reports in the window are answered 429 and not recorded");
        } else {
            tracing::debug!(%device, "posture report over the device's limit");
        }
        Err(error)
    }

    /// Imports an MDM export; returns the rows imported and the rows refused.
    pub fn import_mdm(
        &self,
        source_name: &str,
        bytes: &[u8],
        match_by: MdmMatch,
        now: OffsetDateTime,
    ) -> Result<(MdmImport, tenet_device::MdmApplied), PeopleError> {
        let import = {
            let registry = self.registry();
            tenet_device::import_mdm(source_name, bytes, &registry, match_by, now)?
        };
        let mut posture = self.posture_mut();
        let applied = posture.apply_mdm(&import);
        posture.save(&self.posture_path)?;
        Ok((import, applied))
    }

    /// Revokes a device: its certificate no longer identifies it and its reports are refused.
    /// The sessions signed in through it live on: [`crate::SignIn::revoke_device`] ends them
    /// too, and is what the admin API calls.
    pub fn revoke(&self, id: Uuid, now: OffsetDateTime) -> Result<(), PeopleError> {
        let mut registry = self.registry_mut();
        registry.revoke(id, now)?;
        registry.save(&self.registry_path)?;
        Ok(())
    }

    /// Every enrolled device.
    pub fn list(&self) -> Vec<DeviceRecord> {
        self.registry().devices().to_vec()
    }

    /// Every enrolled device with its compliance at `now`.
    pub fn list_with_compliance(&self, now: OffsetDateTime) -> Vec<ListedDevice> {
        let registry = self.registry();
        let posture = self.posture();
        registry
            .devices()
            .iter()
            .map(|record| {
                let verdict = self.requirements.evaluate(&posture, record.id, now);
                ListedDevice {
                    compliance: Compliance::of(verdict, record.is_revoked(), &self.requirements),
                    record: record.clone(),
                }
            })
            .collect()
    }

    /// The device a verified client certificate names, if it is a device SVID of a known
    /// device that is not revoked.
    pub fn device_of(&self, client: Option<&SpiffeId>) -> Option<Uuid> {
        let id = tenet_device::device_id_of(client?)?;
        self.registry()
            .device(id)
            .filter(|d| !d.is_revoked())
            .map(|d| d.id)
    }

    /// The device a verified client certificate names, as [`Devices::device_of`], counted for
    /// the person with `email` only: a device enrolled for a named owner is nobody else's
    /// (whoever holds its key). A device enrolled without an owner counts for anyone.
    pub fn device_for(&self, client: Option<&SpiffeId>, email: Option<&str>) -> Option<Uuid> {
        let id = tenet_device::device_id_of(client?)?;
        let registry = self.registry();
        let record = registry.device(id).filter(|d| !d.is_revoked())?;
        match (&record.owner, email) {
            (None, _) => Some(record.id),
            (Some(owner), Some(email)) if owner.eq_ignore_ascii_case(email) => Some(record.id),
            (Some(owner), _) => {
                tracing::info!(
                    device = %record.id,
                    owner = %owner,
                    person = email.unwrap_or("(no verified email)"),
                    "device certificate of another owner presented; not counted as the person's device"
                );
                None
            }
        }
    }

    /// The device's facts for policy, at `now`; the defaults when no device is known.
    pub fn state(&self, device: Option<Uuid>, now: OffsetDateTime) -> DeviceState {
        let posture_required = self.requirements.requires_posture();
        let Some(id) = device else {
            return DeviceState {
                facts: DeviceFacts::default(),
                posture_required,
            };
        };
        let facts = {
            let registry = self.registry();
            let posture = self.posture();
            PostureFacts::gather(&registry, &posture, &self.requirements, id, now)
        };
        DeviceState {
            facts: DeviceFacts {
                id: id.to_string(),
                enrolled: facts.enrolled,
                compliant: facts.compliant,
                posture_age_secs: if facts.age_secs == NO_POSTURE_AGE {
                    -1
                } else {
                    facts.age_secs
                },
                os: facts.os,
                os_version: facts.os_version,
                disk_encrypted: facts.disk_encrypted.to_owned(),
                firewall: facts.firewall.to_owned(),
                screen_lock: facts.screen_lock.to_owned(),
                endpoint_protection: facts.endpoint_protection.to_owned(),
            },
            posture_required,
        }
    }
}
