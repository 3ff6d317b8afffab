//! Containment: what Tenet has cut off, and until when.
//!
//! A compromised workload is contained by **revoking** its identity (every request from its
//! SPIFFE ID is refused, whatever certificate it shows, until the action ends), by revoking
//! one certificate **serial**, or by **quarantining** a service (requests to it, requests
//! from its identities, or both, are refused). Actions come from an operator (`tenet revoke |
//! quarantine | release`) or from a playbook reacting to a detection; each can be time-boxed
//! and ends by itself.
//!
//! The set of actions is persisted as one JSON file, written atomically (temporary file,
//! fsync, rename) *before* it takes effect, so a restart never forgets a containment. The
//! gateway asks [`Snapshot::check`] on every request: a lookup in hash maps under an
//! `Arc`, so an action takes effect on the very next request, including on connections that
//! were already open.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which requests a service quarantine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Requests to the service's routes.
    Inbound,
    /// Requests made by the service's identities.
    Outbound,
    /// Both.
    Both,
}

impl Direction {
    fn inbound(self) -> bool {
        matches!(self, Direction::Inbound | Direction::Both)
    }
    fn outbound(self) -> bool {
        matches!(self, Direction::Outbound | Direction::Both)
    }
}

impl std::str::FromStr for Direction {
    type Err = ContainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            "both" => Ok(Direction::Both),
            other => Err(ContainError::Invalid(format!(
                "direction {other:?}: expected inbound, outbound or both"
            ))),
        }
    }
}

/// What an action cuts off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Every request from this SPIFFE ID.
    Identity {
        /// The SPIFFE ID.
        spiffe_id: String,
    },
    /// Every request made with this certificate (serial as lowercase hex).
    Serial {
        /// The serial.
        serial: String,
    },
    /// A service, by name (as in the routes).
    Service {
        /// The service.
        service: String,
        /// Which direction.
        direction: Direction,
        /// The SPIFFE IDs the service calls others with (for outbound).
        #[serde(default)]
        identities: Vec<String>,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Identity { spiffe_id } => write!(f, "identity {spiffe_id}"),
            Target::Serial { serial } => write!(f, "certificate serial {serial}"),
            Target::Service {
                service, direction, ..
            } => write!(
                f,
                "service {service} ({})",
                match direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                    Direction::Both => "inbound and outbound",
                }
            ),
        }
    }
}

/// One containment action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `c-` and a time-ordered unique id.
    pub id: String,
    /// What it cuts off.
    pub target: Target,
    /// Why (an operator's words, or the detection that triggered a playbook).
    pub reason: String,
    /// Who: the admin SPIFFE ID, `local-cli`, or `playbook:<name>`.
    pub actor: String,
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it ends by itself; `None` until released.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// Whether its end (release or expiry) has been recorded in the ledger.
    #[serde(default)]
    pub end_recorded: bool,
}

impl Action {
    /// A new action with a fresh id.
    pub fn new(
        target: Target,
        reason: impl Into<String>,
        actor: impl Into<String>,
        now: OffsetDateTime,
        expires: Option<OffsetDateTime>,
    ) -> Self {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(now.unix_timestamp()).unwrap_or(0),
            now.nanosecond(),
        );
        Action {
            id: format!("c-{}", uuid::Uuid::new_v7(ts).simple()),
            target,
            reason: reason.into(),
            actor: actor.into(),
            created: now,
            expires,
            end_recorded: false,
        }
    }

    /// Whether it is in force at `now`.
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }
}

/// The actions in force, indexed for the per-request check.
#[derive(Debug, Default)]
pub struct Snapshot {
    actions: Vec<Action>,
    identities: HashMap<String, Vec<usize>>,
    serials: HashMap<String, Vec<usize>>,
    inbound: HashMap<String, Vec<usize>>,
}

impl Snapshot {
    fn build(actions: Vec<Action>) -> Snapshot {
        let mut s = Snapshot {
            actions,
            ..Snapshot::default()
        };
        for (i, a) in s.actions.iter().enumerate() {
            match &a.target {
                Target::Identity { spiffe_id } => {
                    s.identities.entry(spiffe_id.clone()).or_default().push(i);
                }
                Target::Serial { serial } => {
                    s.serials
                        .entry(serial.to_ascii_lowercase())
                        .or_default()
                        .push(i);
                }
                Target::Service {
                    service,
                    direction,
                    identities,
                } => {
                    if direction.inbound() {
                        s.inbound.entry(service.clone()).or_default().push(i);
                    }
                    if direction.outbound() {
                        for id in identities {
                            s.identities.entry(id.clone()).or_default().push(i);
                        }
                    }
                }
            }
        }
        s
    }

    /// The action that refuses a request from `principal` (SPIFFE ID) with certificate
    /// `serial` to `service`, if any is in force at `now`.
    pub fn check(
        &self,
        principal: Option<&str>,
        serial: Option<&str>,
        service: Option<&str>,
        now: OffsetDateTime,
    ) -> Option<&Action> {
        if self.actions.is_empty() {
            return None;
        }
        let hit = |map: &HashMap<String, Vec<usize>>, key: &str| -> Option<&Action> {
            map.get(key)?
                .iter()
                .filter_map(|i| self.actions.get(*i))
                .find(|a| a.active(now))
        };
        principal
            .and_then(|p| hit(&self.identities, p))
            .or_else(|| serial.and_then(|s| hit(&self.serials, &s.to_ascii_lowercase())))
            .or_else(|| service.and_then(|s| hit(&self.inbound, s)))
    }

    /// Every action, in the order they were taken.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The actions in force at `now`.
    pub fn active(&self, now: OffsetDateTime) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(move |a| a.active(now))
    }
}

/// Containment could not be read, changed or stored.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    /// The state file could not be read or written.
    #[error("containment state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file is not a containment state.
    #[error("containment state {path} is damaged: {message}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request to contain or release was not valid.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    actions: Vec<Action>,
}

const STATE_VERSION: u32 = 1;
/// A state file larger than this is refused (it holds a few hundred bytes per action).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// The containment state of a deployment: persisted, shared, swapped atomically.
#[derive(Debug)]
pub struct Containment {
    path: Option<PathBuf>,
    current: RwLock<Arc<Snapshot>>,
    /// Serialises writers so two changes never race on the file.
    write: std::sync::Mutex<()>,
}

impl Containment {
    /// Reads the state file at `path` (an absent file is an empty state). Expired actions
    /// are kept until [`Containment::expire`] records their end.
    pub fn open(path: &Path) -> Result<Containment, ContainError> {
        let actions = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(ContainError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Ok(meta) => {
                if !meta.is_file() || meta.len() > MAX_STATE_BYTES {
                    return Err(ContainError::Damaged {
                        path: path.to_path_buf(),
                        message: format!("not a regular file of at most {MAX_STATE_BYTES} bytes"),
                    });
                }
                let text = std::fs::read_to_string(path).map_err(|source| ContainError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let state: StateFile =
                    serde_json::from_str(&text).map_err(|e| ContainError::Damaged {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if state.version != STATE_VERSION {
                    return Err(ContainError::Damaged {
                        path: path.to_path_buf(),
                        message: format!("unknown version {}", state.version),
                    });
                }
                state.actions
            }
        };
        Ok(Containment {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Arc::new(Snapshot::build(actions))),
            write: std::sync::Mutex::new(()),
        })
    }

    /// A state that lives only in memory (tests, throwaway deployments).
    pub fn in_memory() -> Containment {
        Containment {
            path: None,
            current: RwLock::new(Arc::new(Snapshot::default())),
            write: std::sync::Mutex::new(()),
        }
    }

    /// The actions now, for the per-request check.
    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Adds an action: stored first, then in force.
    pub fn apply(&self, action: Action) -> Result<(), ContainError> {
        validate(&action.target)?;
        self.change(|actions| {
            actions.push(action);
            Ok(())
        })
        .map(|_| ())
    }

    /// Ends the actions matching `selector` (an action id, a SPIFFE ID, a serial or a
    /// service name) that are in force at `now`; returns them. Released actions stay in the
    /// file with `expires = now`, as a record.
    pub fn release(
        &self,
        selector: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Action>, ContainError> {
        self.change(|actions| {
            let mut released = Vec::new();
            for a in actions
                .iter_mut()
                .filter(|a| a.active(now) && matches(a, selector))
            {
                a.expires = Some(now);
                a.end_recorded = true;
                released.push(a.clone());
            }
            Ok(released)
        })
    }

    /// The actions in force at `now` that `selector` would release (nothing changes).
    pub fn matching(&self, selector: &str, now: OffsetDateTime) -> Vec<Action> {
        self.current()
            .active(now)
            .filter(|a| matches(a, selector))
            .cloned()
            .collect()
    }

    /// Actions that expired by themselves at or before `now` and whose end has not been
    /// recorded yet.
    pub fn due(&self, now: OffsetDateTime) -> Vec<Action> {
        self.current()
            .actions()
            .iter()
            .filter(|a| !a.active(now) && !a.end_recorded)
            .cloned()
            .collect()
    }

    /// Notes that the end of these actions is in the ledger.
    pub fn mark_end_recorded(&self, ids: &[String]) -> Result<(), ContainError> {
        self.change(|actions| {
            for a in actions.iter_mut().filter(|a| ids.contains(&a.id)) {
                a.end_recorded = true;
            }
            Ok(())
        })
    }

    /// Drops actions that ended more than `keep` ago from the file, so it does not grow
    /// without bound. Returns how many were dropped.
    pub fn compact(
        &self,
        now: OffsetDateTime,
        keep: time::Duration,
    ) -> Result<usize, ContainError> {
        self.change(|actions| {
            let before = actions.len();
            actions.retain(|a| a.expires.is_none_or(|e| e + keep > now));
            Ok(before - actions.len())
        })
    }

    fn change<T>(
        &self,
        edit: impl FnOnce(&mut Vec<Action>) -> Result<T, ContainError>,
    ) -> Result<T, ContainError> {
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut actions = self.current().actions.clone();
        let result = edit(&mut actions)?;
        if let Some(path) = &self.path {
            store(path, &actions)?;
        }
        let next = Arc::new(Snapshot::build(actions));
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(result)
    }
}

fn matches(a: &Action, selector: &str) -> bool {
    a.id == selector
        || match &a.target {
            Target::Identity { spiffe_id } => spiffe_id == selector,
            Target::Serial { serial } => serial.eq_ignore_ascii_case(selector),
            Target::Service { service, .. } => service == selector,
        }
}

fn validate(target: &Target) -> Result<(), ContainError> {
    match target {
        Target::Identity { spiffe_id } if !spiffe_id.starts_with("spiffe://") => Err(
            ContainError::Invalid(format!("{spiffe_id:?} is not a SPIFFE ID")),
        ),
        Target::Serial { serial }
            if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Err(ContainError::Invalid(format!(
                "certificate serial {serial:?} must be hexadecimal"
            )))
        }
        Target::Service {
            service,
            direction,
            identities,
        } => {
            if service.is_empty() {
                return Err(ContainError::Invalid("empty service name".into()));
            }
            if direction.outbound() && identities.is_empty() {
                return Err(ContainError::Invalid(format!(
                    "service {service}: an outbound quarantine needs the SPIFFE IDs the service calls with"
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Writes the state atomically: a temporary file in the same folder, fsync, rename, fsync of
/// the folder.
fn store(path: &Path, actions: &[Action]) -> Result<(), ContainError> {
    let io = |source| ContainError::Io {
        path: path.to_path_buf(),
        source,
    };
    let state = StateFile {
        version: STATE_VERSION,
        actions: actions.to_vec(),
    };
    let text = serde_json::to_vec_pretty(&state).map_err(|e| ContainError::Damaged {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("containment")
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-04 12:00 UTC);

    fn revoke(id: &str, minutes: i64) -> Action {
        Action::new(
            Target::Identity {
                spiffe_id: id.into(),
            },
            "test",
            "local-cli",
            NOW,
            Some(NOW + time::Duration::minutes(minutes)),
        )
    }

    #[test]
    fn revocation_refuses_until_it_expires() {
        let c = Containment::in_memory();
        c.apply(revoke("spiffe://td/a", 10)).unwrap();
        let s = c.current();
        assert!(
            s.check(Some("spiffe://td/a"), None, Some("svc"), NOW)
                .is_some()
        );
        assert!(
            s.check(Some("spiffe://td/b"), None, Some("svc"), NOW)
                .is_none()
        );
        let later = NOW + time::Duration::minutes(10);
        assert!(s.check(Some("spiffe://td/a"), None, None, later).is_none());
    }

    #[test]
    fn serials_and_services() {
        let c = Containment::in_memory();
        c.apply(Action::new(
            Target::Serial {
                serial: "ABCDEF".into(),
            },
            "r",
            "a",
            NOW,
            None,
        ))
        .unwrap();
        c.apply(Action::new(
            Target::Service {
                service: "payments".into(),
                direction: Direction::Both,
                identities: vec!["spiffe://td/payments".into()],
            },
            "r",
            "a",
            NOW,
            None,
        ))
        .unwrap();
        let s = c.current();
        assert!(s.check(None, Some("abcdef"), None, NOW).is_some());
        assert!(
            s.check(Some("spiffe://td/x"), None, Some("payments"), NOW)
                .is_some()
        );
        assert!(
            s.check(Some("spiffe://td/payments"), None, Some("other"), NOW)
                .is_some()
        );
        assert!(
            s.check(Some("spiffe://td/x"), None, Some("other"), NOW)
                .is_none()
        );
    }

    #[test]
    fn invalid_targets_are_refused() {
        let c = Containment::in_memory();
        assert!(c.apply(revoke("not-an-id", 1)).is_err());
        let bad = Action::new(
            Target::Serial {
                serial: "xyz".into(),
            },
            "r",
            "a",
            NOW,
            None,
        );
        assert!(c.apply(bad).is_err());
        let no_ids = Action::new(
            Target::Service {
                service: "s".into(),
                direction: Direction::Outbound,
                identities: vec![],
            },
            "r",
            "a",
            NOW,
            None,
        );
        assert!(
            c.apply(no_ids)
                .unwrap_err()
                .to_string()
                .contains("outbound")
        );
        assert!(c.current().actions().is_empty());
    }

    #[test]
    fn survives_a_restart_and_release_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containment.json");
        {
            let c = Containment::open(&path).unwrap();
            c.apply(revoke("spiffe://td/a", 60)).unwrap();
            c.apply(revoke("spiffe://td/b", 60)).unwrap();
        }
        let c = Containment::open(&path).unwrap();
        assert_eq!(c.current().actions().len(), 2);
        let released = c
            .release("spiffe://td/a", NOW + time::Duration::minutes(1))
            .unwrap();
        assert_eq!(released.len(), 1);
        let c = Containment::open(&path).unwrap();
        let s = c.current();
        let later = NOW + time::Duration::minutes(2);
        assert!(s.check(Some("spiffe://td/a"), None, None, later).is_none());
        assert!(s.check(Some("spiffe://td/b"), None, None, later).is_some());
        // Compaction forgets only what ended long enough ago.
        assert_eq!(c.compact(later, time::Duration::minutes(5)).unwrap(), 0);
        // b expires by itself after 60 minutes: due once, until its end is recorded.
        let after = NOW + time::Duration::minutes(61);
        let due = c.due(after);
        assert_eq!(due.len(), 1);
        c.mark_end_recorded(&[due[0].id.clone()]).unwrap();
        assert!(c.due(after).is_empty());
        assert_eq!(
            c.compact(NOW + time::Duration::hours(2), time::Duration::minutes(5))
                .unwrap(),
            2
        );
    }

    #[test]
    fn damaged_state_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containment.json");
        std::fs::write(&path, "{\"version\":1,\"actions\":[{").unwrap();
        let err = Containment::open(&path).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
