//! The latest posture of each device per source (agent, MDM), and the merged view policy
//! decides on: per check, the value of the newest source that knows it, with the age of the
//! oldest source that contributed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{FileError, ReportError};
use crate::mdm::MdmImport;
use crate::posture::{Posture, PostureSource};
use crate::registry::DeviceRegistry;
use crate::report::{ReportVerifier, VerifiedReport};

/// The latest accepted agent report of a device. Its posture's `collected_at` is the
/// report's collection time or, when that was ahead of the gateway's clock, the time the
/// report arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AgentEntry {
    posture: Posture,
    sequence: u64,
    agent_version: String,
    /// Reports accepted with a collection time after their arrival, as (collection time,
    /// sequence), kept while that time is after the posture's: the same report sent again
    /// is a replay however its arrival time orders it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ahead: Vec<Ahead>,
}

/// A report accepted with a collection time after its arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Ahead {
    #[serde(with = "time::serde::rfc3339")]
    collected_at: OffsetDateTime,
    sequence: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceEntry {
    agent: Option<AgentEntry>,
    mdm: Option<Posture>,
}

/// A device's posture merged over its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPosture {
    /// The merged checks; `collected_at` is that of the oldest contributing source.
    pub posture: Posture,
    /// The sources that contributed at least one value, newest first.
    pub sources: Vec<PostureSource>,
    /// Seconds since the oldest contributing source observed the device.
    pub age_secs: u64,
}

/// What applying an MDM import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MdmApplied {
    /// Rows kept as their device's MDM posture.
    pub applied: usize,
    /// Rows left out because the store already had an MDM posture of the device observed at
    /// the same time or later.
    pub stale: usize,
}

/// Latest posture per device and source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureStore {
    devices: BTreeMap<Uuid, DeviceEntry>,
}

impl PostureStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a store written by [`Self::save`]; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        Ok(crate::files::read_json(path)?.unwrap_or_default())
    }

    /// Writes the store to `path` (owner-only, temporary file then rename).
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        crate::files::replace_json(path, self)
    }

    /// Verifies a signed report and, unless it replays an older one, keeps it.
    pub fn ingest_report(
        &mut self,
        verifier: &ReportVerifier,
        registry: &DeviceRegistry,
        jws: &str,
        now: OffsetDateTime,
    ) -> Result<Uuid, ReportError> {
        let verified = verifier.verify(jws, registry, now)?;
        let device_id = verified.report().device_id;
        self.accept_report(verified, now)?;
        Ok(device_id)
    }

    /// Keeps a verified report, received at `received`, as the device's agent posture.
    /// Reports are ordered and aged by the earlier of their `collected_at` and `received`, so
    /// that one dated ahead (within the allowed skew) neither refuses the device's next
    /// reports until that time nor counts as fresher than it is. A report not newer than the
    /// accepted one (an earlier time, or the same time with a sequence not above the accepted
    /// one), or one accepted before, is a replay and refused.
    pub fn accept_report(
        &mut self,
        verified: VerifiedReport,
        received: OffsetDateTime,
    ) -> Result<(), ReportError> {
        let report = verified.report();
        let at = report.collected_at.min(received);
        let entry = self.devices.entry(report.device_id).or_default();
        let mut ahead = Vec::new();
        if let Some(latest) = &entry.agent {
            let latest_at = latest.posture.collected_at;
            let seen = latest.ahead.contains(&Ahead {
                collected_at: report.collected_at,
                sequence: report.sequence,
            });
            let newer = at > latest_at || (at == latest_at && report.sequence > latest.sequence);
            if !newer || seen {
                let error = ReportError::Replay {
                    device_id: report.device_id,
                    collected_at: report.collected_at,
                    sequence: report.sequence,
                    latest_at,
                    latest_sequence: latest.sequence,
                };
                tracing::info!(reason = %error, "posture report refused");
                return Err(error);
            }
            ahead = latest
                .ahead
                .iter()
                .filter(|a| a.collected_at > at)
                .copied()
                .collect();
        }
        if report.collected_at > at {
            ahead.push(Ahead {
                collected_at: report.collected_at,
                sequence: report.sequence,
            });
        }
        let mut posture = report.posture();
        posture.collected_at = at;
        entry.agent = Some(AgentEntry {
            posture,
            sequence: report.sequence,
            agent_version: report.agent_version.clone(),
            ahead,
        });
        tracing::debug!(device_id = %report.device_id, "agent posture recorded");
        Ok(())
    }

    /// Keeps an MDM posture when it is newer than the MDM posture the store has for the
    /// device (or the store has none); returns whether it was kept. A posture observed at the
    /// same time as the known one or earlier is stale and left out.
    pub fn record_mdm(&mut self, device_id: Uuid, posture: Posture) -> bool {
        let entry = self.devices.entry(device_id).or_default();
        if entry
            .mdm
            .as_ref()
            .is_some_and(|latest| latest.collected_at >= posture.collected_at)
        {
            return false;
        }
        entry.mdm = Some(posture);
        true
    }

    /// Records every row of an import in order; says how many were kept and how many were
    /// stale (not newer than what the store already had from the MDM).
    pub fn apply_mdm(&mut self, import: &MdmImport) -> MdmApplied {
        let mut applied = MdmApplied::default();
        for (device_id, posture) in &import.records {
            if self.record_mdm(*device_id, posture.clone()) {
                applied.applied += 1;
            } else {
                applied.stale += 1;
            }
        }
        applied
    }

    /// The latest posture of one source.
    pub fn latest(&self, device_id: Uuid, source: PostureSource) -> Option<&Posture> {
        let entry = self.devices.get(&device_id)?;
        match source {
            PostureSource::Agent => entry.agent.as_ref().map(|a| &a.posture),
            PostureSource::Mdm => entry.mdm.as_ref(),
        }
    }

    /// The agent version of the latest accepted report.
    pub fn agent_version(&self, device_id: Uuid) -> Option<&str> {
        let agent = self.devices.get(&device_id)?.agent.as_ref()?;
        Some(&agent.agent_version)
    }

    /// The merged view over every source, however old.
    pub fn merged(&self, device_id: Uuid, now: OffsetDateTime) -> Option<MergedPosture> {
        self.merged_within(device_id, None, now)
    }

    /// The merged view over the sources at most `max_age` old (all when `None`); `None` when
    /// no source qualifies.
    pub fn merged_within(
        &self,
        device_id: Uuid,
        max_age: Option<Duration>,
        now: OffsetDateTime,
    ) -> Option<MergedPosture> {
        let fresh = |p: &&Posture| max_age.is_none_or(|max| p.age_secs(now) <= max.as_secs());
        let mut candidates: Vec<(PostureSource, &Posture)> =
            [PostureSource::Agent, PostureSource::Mdm]
                .into_iter()
                .filter_map(|s| self.latest(device_id, s).filter(fresh).map(|p| (s, p)))
                .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.1.collected_at));
        merge(&candidates, now)
    }

    /// Devices the store knows of.
    pub fn device_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.devices.keys().copied()
    }
}

/// Merges candidates sorted newest first.
fn merge(candidates: &[(PostureSource, &Posture)], now: OffsetDateTime) -> Option<MergedPosture> {
    let (_, newest) = candidates.first()?;
    let mut used = vec![false; candidates.len()];
    let mut pick = |get: &dyn Fn(&Posture) -> Option<bool>| {
        let found = candidates.iter().position(|(_, p)| get(p).is_some())?;
        if let Some(flag) = used.get_mut(found) {
            *flag = true;
        }
        candidates.get(found).and_then(|(_, p)| get(p))
    };
    let mut posture = Posture::unknown(newest.collected_at);
    posture.disk_encrypted = pick(&|p| p.disk_encrypted);
    posture.screen_lock = pick(&|p| p.screen_lock);
    posture.firewall = pick(&|p| p.firewall);
    posture.endpoint_protection = pick(&|p| p.endpoint_protection);
    posture.mdm_compliant = pick(&|p| p.mdm_compliant);

    // The OS name and version come from one source together.
    let os_source = candidates.iter().position(|(_, p)| p.os.is_some());
    if let Some(index) = os_source
        && let (Some(flag), Some((_, p))) = (used.get_mut(index), candidates.get(index))
    {
        *flag = true;
        posture.os = p.os.clone();
        posture.os_version = p.os_version.clone();
    }
    if let Some(first) = used.first_mut() {
        *first = true;
    }

    let contributing: Vec<&(PostureSource, &Posture)> = candidates
        .iter()
        .zip(&used)
        .filter_map(|(c, used)| used.then_some(c))
        .collect();
    if let Some(oldest) = contributing.iter().map(|(_, p)| p.collected_at).min() {
        posture.collected_at = oldest;
    }
    Some(MergedPosture {
        age_secs: posture.age_secs(now),
        sources: contributing.iter().map(|(s, _)| *s).collect(),
        posture,
    })
}
