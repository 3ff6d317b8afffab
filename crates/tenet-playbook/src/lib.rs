//! Response playbooks: YAML files that map detections (by rule id, tag or level) to actions.
//!
//! ```yaml
//! playbooks:
//!   - name: contain-lateral-movement
//!     match:
//!       rules: [tenet.lateral-movement]      # any of these rule ids (glob `*` allowed) ...
//!       tags: [attack.lateral_movement]      # ... or any of these tags
//!       min_level: high                      # and at least this level
//!     actions:
//!       - revoke_identity: {for: 1h}         # the alert's subject (a SPIFFE ID)
//!       - quarantine_service: {service: payments, direction: inbound, for: 30m}
//!       - notify: {url: "https://hooks.example/tenet", secret_env: TENET_HOOK_SECRET}
//! ```
//!
//! A playbook whose `match` has neither `rules` nor `tags` matches on level alone. Loading
//! refuses unknown keys, unknown actions, bad durations and levels, so a typo can never turn
//! into a playbook that silently does nothing. [`Playbooks::check`] then holds them against the
//! deployment (rule ids that match no rule, services no route defines, webhook secrets that
//! are not set refuse; tags no rule carries warn). [`Playbooks::plan`] turns one alert into the
//! concrete steps; executing them (containment, webhook) is the caller's job, so this crate
//! stays pure and testable.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tenet_contain::{Direction, Target};

/// Detection levels, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// informational
    Informational,
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
    /// critical
    Critical,
}

impl Level {
    /// Parses a Sigma / Tenet level name.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "informational" | "info" => Some(Level::Informational),
            "low" => Some(Level::Low),
            "medium" => Some(Level::Medium),
            "high" => Some(Level::High),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }
}

/// What fired, as playbooks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// Rule id (`tenet.lateral-movement`, or a Sigma rule id).
    pub rule: String,
    /// Its level.
    pub level: Level,
    /// Its tags.
    pub tags: Vec<String>,
    /// What it is about: a SPIFFE ID, a source address.
    pub subject: String,
    /// Evidence fields (e.g. `service`, `serial`).
    pub evidence: Value,
}

/// One concrete step for one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Apply this containment for this long (`None`: until released).
    Contain {
        /// What.
        target: Target,
        /// How long.
        duration: Option<Duration>,
    },
    /// End every session of the person the alert is about.
    CutSessions {
        /// The person: `user:<provider>:<subject>`.
        person: String,
    },
    /// Make every session of the person confirm with a fresh phishing-resistant factor.
    RequireStepUp {
        /// The person: `user:<provider>:<subject>`.
        person: String,
    },
    /// POST the alert to a webhook, signed with HMAC-SHA256.
    Notify {
        /// Where.
        url: String,
        /// Where the signing secret comes from.
        secret: Secret,
    },
}

/// What a deployment has that playbooks refer to, for [`Playbooks::check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// Every rule id (and Sigma rule name) a detection can carry.
    pub rules: &'a [String],
    /// Every tag a detection can carry.
    pub tags: &'a [String],
    /// The services the routes define.
    pub services: &'a [String],
}

/// The webhook signing secret, read now: an environment variable of `tenet up` or a file.
/// Errors say what is missing.
pub fn secret_value(secret: &Secret) -> Result<Vec<u8>, String> {
    let value = match secret {
        Secret::Env(var) => std::env::var_os(var)
            .ok_or_else(|| format!("the secret variable {var} is not set"))?
            .into_encoded_bytes(),
        Secret::File(path) => std::fs::read(path)
            .map_err(|e| format!("the secret file {} is unreadable: {e}", path.display()))?,
    };
    if value.iter().all(u8::is_ascii_whitespace) {
        return Err(match secret {
            Secret::Env(var) => format!("the secret variable {var} is empty"),
            Secret::File(path) => format!("the secret file {} is empty", path.display()),
        });
    }
    Ok(value)
}

/// Where a webhook secret is read from (never written in the playbook itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// An environment variable of `tenet up`.
    Env(String),
    /// A file (relative paths are relative to the playbook file).
    File(PathBuf),
}

/// The steps one playbook plans for one alert, or why it could not plan one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The playbook's name.
    pub playbook: String,
    /// The steps, in the playbook's order.
    pub steps: Vec<Step>,
    /// Actions skipped for this alert, with the reason (e.g. the subject is not a SPIFFE ID).
    pub skipped: Vec<String>,
}

/// A playbook file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// The file could not be read.
    #[error("playbook {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid playbook file.
    #[error("playbook {file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, with the playbook's name where known.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    playbooks: Vec<PlaybookDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookDoc {
    name: String,
    #[serde(rename = "match")]
    matcher: MatchDoc,
    /// Each action is a one-key map (`- revoke_identity: {for: 1h}`), not a YAML tag.
    #[serde(with = "yaml_serde::with::singleton_map_recursive")]
    actions: Vec<ActionDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    min_level: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ActionDoc {
    RevokeIdentity(RevokeDoc),
    RevokeSerial(RevokeDoc),
    QuarantineService(QuarantineDoc),
    CutSessions(EmptyDoc),
    RequireStepUp(EmptyDoc),
    Notify(NotifyDoc),
}

/// An action without parameters (`- cut_sessions: {}`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmptyDoc {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeDoc {
    #[serde(default, rename = "for")]
    duration: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineDoc {
    /// A fixed service, or absent to take the alert's `evidence.service`.
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    identities: Vec<String>,
    #[serde(default, rename = "for")]
    duration: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyDoc {
    url: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
}

/// A loaded, validated playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// Its name (unique).
    pub name: String,
    /// The file it came from.
    pub file: String,
    rules: Vec<String>,
    tags: Vec<String>,
    min_level: Option<Level>,
    actions: Vec<Action>,
}

#[derive(Debug, Clone)]
enum Action {
    RevokeIdentity(Option<Duration>),
    RevokeSerial(Option<Duration>),
    Quarantine {
        service: Option<String>,
        direction: Direction,
        identities: Vec<String>,
        duration: Option<Duration>,
    },
    CutSessions,
    RequireStepUp,
    Notify {
        url: String,
        secret: Secret,
    },
}

/// All playbooks of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Playbooks {
    playbooks: Vec<Playbook>,
}

/// Files larger than this are refused.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The longest time box a playbook may give (100 years). A longer one would be refused when
/// the containment is applied, that is during the breach, so it is refused at load instead.
const MAX_DURATION_SECS: u64 = 36_525 * 86_400;

impl Playbooks {
    /// Every `*.yaml` / `*.yml` file of `dir` (not recursive). A missing folder is an empty
    /// set; any invalid file refuses the whole set.
    pub fn load_dir(dir: &Path) -> Result<Playbooks, PlaybookError> {
        let read = |source| PlaybookError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Playbooks::default()),
            Err(e) => return Err(read(e)),
        };
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry.map_err(read)?.path();
            let is_yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if is_yaml {
                paths.push(path);
            }
        }
        paths.sort();
        let mut all = Playbooks::default();
        for path in paths {
            let meta = std::fs::metadata(&path).map_err(|source| PlaybookError::Read {
                path: path.clone(),
                source,
            })?;
            if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
                return Err(PlaybookError::Invalid {
                    file: path.display().to_string(),
                    message: format!("not a regular file of at most {MAX_FILE_BYTES} bytes"),
                });
            }
            let text = std::fs::read_to_string(&path).map_err(|source| PlaybookError::Read {
                path: path.clone(),
                source,
            })?;
            let base = path.parent().unwrap_or(Path::new("."));
            let more = Playbooks::parse(&path.display().to_string(), &text, base)?;
            for p in more.playbooks {
                if all.playbooks.iter().any(|q| q.name == p.name) {
                    return Err(PlaybookError::Invalid {
                        file: p.file.clone(),
                        message: format!("playbook name {:?} is used twice", p.name),
                    });
                }
                all.playbooks.push(p);
            }
        }
        Ok(all)
    }

    /// One file's text; relative secret files resolve against `base`.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Playbooks, PlaybookError> {
        let invalid = |message: String| PlaybookError::Invalid {
            file: file.to_owned(),
            message,
        };
        let doc: FileDoc = yaml_serde::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut out = Playbooks::default();
        for p in doc.playbooks {
            let name = p.name.trim().to_owned();
            if name.is_empty() {
                return Err(invalid("a playbook needs a name".into()));
            }
            let ctx = |m: String| invalid(format!("playbook {name:?}: {m}"));
            let min_level = match &p.matcher.min_level {
                Some(l) => Some(Level::parse(l).ok_or_else(|| {
                    ctx(format!(
                        "min_level {l:?}: expected informational, low, medium, high or critical"
                    ))
                })?),
                None => None,
            };
            if p.matcher.rules.is_empty() && p.matcher.tags.is_empty() && min_level.is_none() {
                return Err(ctx(
                    "match needs rules, tags or min_level (it would match every alert)".into(),
                ));
            }
            if p.actions.is_empty() {
                return Err(ctx("no actions".into()));
            }
            let mut actions = Vec::new();
            for a in p.actions {
                actions.push(match a {
                    ActionDoc::RevokeIdentity(r) => {
                        Action::RevokeIdentity(duration(r.duration.as_deref()).map_err(&ctx)?)
                    }
                    ActionDoc::RevokeSerial(r) => {
                        Action::RevokeSerial(duration(r.duration.as_deref()).map_err(&ctx)?)
                    }
                    ActionDoc::QuarantineService(q) => {
                        let direction: Direction = q
                            .direction
                            .as_deref()
                            .unwrap_or("both")
                            .parse()
                            .map_err(|e: tenet_contain::ContainError| ctx(e.to_string()))?;
                        for id in &q.identities {
                            tenet_identity::SpiffeId::parse(id).map_err(|e| {
                                ctx(format!(
                                    "quarantine_service identities: {id:?} is not a SPIFFE ID ({e})"
                                ))
                            })?;
                        }
                        if let Some(service) = &q.service
                            && service.trim().is_empty()
                        {
                            return Err(ctx("quarantine_service: empty service name".into()));
                        }
                        Action::Quarantine {
                            service: q.service,
                            direction,
                            identities: q.identities,
                            duration: duration(q.duration.as_deref()).map_err(&ctx)?,
                        }
                    }
                    ActionDoc::CutSessions(EmptyDoc {}) => Action::CutSessions,
                    ActionDoc::RequireStepUp(EmptyDoc {}) => Action::RequireStepUp,
                    ActionDoc::Notify(n) => {
                        let parsed = url::Url::parse(&n.url)
                            .map_err(|e| ctx(format!("notify url {:?}: {e}", n.url)))?;
                        if !matches!(parsed.scheme(), "https" | "http") {
                            return Err(ctx(format!("notify url {:?} is not http(s)", n.url)));
                        }
                        let secret = match (n.secret_env, n.secret_file) {
                            (Some(v), None) => Secret::Env(v),
                            (None, Some(f)) => Secret::File(base.join(f)),
                            _ => {
                                return Err(ctx(
                                    "notify needs exactly one of secret_env or secret_file".into(),
                                ));
                            }
                        };
                        Action::Notify { url: n.url, secret }
                    }
                });
            }
            out.playbooks.push(Playbook {
                name,
                file: file.to_owned(),
                rules: p.matcher.rules,
                tags: p.matcher.tags,
                min_level,
                actions,
            });
        }
        Ok(out)
    }

    /// Checks the playbooks against the deployment they run in: a rule id (or glob) that
    /// matches no rule, a quarantine of a service no route defines, a webhook whose secret is
    /// not set (or whose file is unreadable or empty) refuse the set, naming the file and the
    /// playbook. A tag that no rule carries cannot match either, but a rule set may gain it
    /// later: it comes back as a warning.
    pub fn check(&self, known: &Known<'_>) -> Result<Vec<String>, PlaybookError> {
        let mut warnings = Vec::new();
        for p in &self.playbooks {
            let refuse = |message: String| PlaybookError::Invalid {
                file: p.file.clone(),
                message: format!("playbook {:?}: {message}", p.name),
            };
            for pattern in &p.rules {
                if !known.rules.iter().any(|r| glob(pattern, r)) {
                    return Err(refuse(format!(
                        "rules: {pattern:?} matches no built-in analytic and no loaded Sigma rule"
                    )));
                }
            }
            for tag in &p.tags {
                if !known.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                    warnings.push(format!(
                        "playbook {} ({:?}): tags: {tag:?} is on no built-in analytic and no \
                         loaded Sigma rule, so it matches nothing until a rule with it is loaded",
                        p.file, p.name
                    ));
                }
            }
            for a in &p.actions {
                match a {
                    Action::Quarantine {
                        service: Some(service),
                        ..
                    } if !known.services.iter().any(|s| s == service) => {
                        return Err(refuse(format!(
                            "quarantine_service: no route defines the service {service:?}"
                        )));
                    }
                    Action::Notify { url, secret } => {
                        secret_value(secret).map_err(|e| refuse(format!("notify {url}: {e}")))?;
                    }
                    _ => {}
                }
            }
        }
        Ok(warnings)
    }

    /// How many playbooks.
    pub fn len(&self) -> usize {
        self.playbooks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.playbooks.is_empty()
    }

    /// The plans of every playbook that matches `trigger`, in load order.
    pub fn plan(&self, trigger: &Trigger) -> Vec<Plan> {
        self.playbooks
            .iter()
            .filter(|p| p.matches(trigger))
            .map(|p| p.plan(trigger))
            .collect()
    }
}

impl Playbook {
    fn matches(&self, t: &Trigger) -> bool {
        if self.min_level.is_some_and(|min| t.level < min) {
            return false;
        }
        if self.rules.is_empty() && self.tags.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| glob(r, &t.rule))
            || self
                .tags
                .iter()
                .any(|tag| t.tags.iter().any(|x| x.eq_ignore_ascii_case(tag)))
    }

    fn plan(&self, t: &Trigger) -> Plan {
        let mut plan = Plan {
            playbook: self.name.clone(),
            steps: Vec::new(),
            skipped: Vec::new(),
        };
        for a in &self.actions {
            match a {
                Action::RevokeIdentity(d) => {
                    if t.subject.starts_with("spiffe://") {
                        plan.steps.push(Step::Contain {
                            target: Target::Identity {
                                spiffe_id: t.subject.clone(),
                            },
                            duration: *d,
                        });
                    } else {
                        plan.skipped.push(format!(
                            "revoke_identity: the subject {:?} is not a SPIFFE ID",
                            t.subject
                        ));
                    }
                }
                Action::RevokeSerial(d) => match t.evidence.get("serial").and_then(Value::as_str) {
                    Some(serial) if !serial.is_empty() => plan.steps.push(Step::Contain {
                        target: Target::Serial {
                            serial: serial.to_ascii_lowercase(),
                        },
                        duration: *d,
                    }),
                    _ => plan
                        .skipped
                        .push("revoke_serial: the alert carries no certificate serial".into()),
                },
                Action::Quarantine {
                    service,
                    direction,
                    identities,
                    duration,
                } => {
                    let service = service.clone().or_else(|| {
                        t.evidence
                            .get("service")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    });
                    match service {
                        Some(service) => plan.steps.push(Step::Contain {
                            target: Target::Service {
                                service,
                                direction: *direction,
                                identities: identities.clone(),
                            },
                            duration: *duration,
                        }),
                        None => plan.skipped.push(
                            "quarantine_service: no service given and none in the alert".into(),
                        ),
                    }
                }
                Action::CutSessions | Action::RequireStepUp => {
                    let name = if matches!(a, Action::CutSessions) {
                        "cut_sessions"
                    } else {
                        "require_step_up"
                    };
                    if t.subject.starts_with("user:") {
                        let person = t.subject.clone();
                        plan.steps.push(if matches!(a, Action::CutSessions) {
                            Step::CutSessions { person }
                        } else {
                            Step::RequireStepUp { person }
                        });
                    } else {
                        plan.skipped.push(format!(
                            "{name}: the subject {:?} is not a person (user:PROVIDER:SUBJECT)",
                            t.subject
                        ));
                    }
                }
                Action::Notify { url, secret } => plan.steps.push(Step::Notify {
                    url: url.clone(),
                    secret: secret.clone(),
                }),
            }
        }
        plan
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = rest.get(at + part.len()..).unwrap_or(""),
                None => return false,
            }
        }
    }
    true
}

/// `30s`, `15m`, `1h`, `2d`.
fn duration(text: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "duration {text:?}: expected a number and s, m, h or d"
            ));
        }
    };
    if num.is_empty() {
        return Err(format!(
            "duration {text:?}: expected a number and s, m, h or d"
        ));
    }
    let too_long = || {
        format!(
            "duration {text:?} is longer than {}d; leave `for` out for a containment until \
             released",
            MAX_DURATION_SECS / 86_400
        )
    };
    let secs = num
        .parse::<u64>()
        .map_err(|_| too_long())?
        .checked_mul(unit_secs)
        .ok_or_else(too_long)?;
    if secs == 0 {
        return Err(format!("duration {text:?} is zero"));
    }
    if secs > MAX_DURATION_SECS {
        return Err(too_long());
    }
    Ok(Some(Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOOK: &str = r#"
playbooks:
  - name: contain-lateral-movement
    match: {rules: ["tenet.lateral-*"], min_level: high}
    actions:
      - revoke_identity: {for: 1h}
      - notify: {url: "http://127.0.0.1:9/hook", secret_env: HOOK_SECRET}
  - name: quarantine-on-exfil
    match: {tags: [attack.exfiltration]}
    actions:
      - quarantine_service: {direction: inbound, for: 30m}
      - revoke_serial: {}
"#;

    fn trigger(rule: &str, level: Level, tags: &[&str], subject: &str) -> Trigger {
        Trigger {
            rule: rule.into(),
            level,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            subject: subject.into(),
            evidence: json!({"service": "payments"}),
        }
    }

    #[test]
    fn plans_follow_rules_tags_and_levels() {
        let books = Playbooks::parse("p.yaml", BOOK, Path::new("/etc")).unwrap();
        assert_eq!(books.len(), 2);
        let plans = books.plan(&trigger(
            "tenet.lateral-movement",
            Level::Critical,
            &[],
            "spiffe://td/a",
        ));
        assert_eq!(plans.len(), 1);
        assert_eq!(
            plans[0].steps[0],
            Step::Contain {
                target: Target::Identity {
                    spiffe_id: "spiffe://td/a".into()
                },
                duration: Some(Duration::from_secs(3600))
            }
        );
        assert!(matches!(plans[0].steps[1], Step::Notify { .. }));
        // Below the level: nothing.
        assert!(
            books
                .plan(&trigger(
                    "tenet.lateral-movement",
                    Level::Medium,
                    &[],
                    "spiffe://td/a"
                ))
                .is_empty()
        );
        // By tag, with the service from the evidence; no serial: skipped with a reason.
        let plans = books.plan(&trigger(
            "x",
            Level::Low,
            &["ATTACK.Exfiltration"],
            "10.0.0.1",
        ));
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].steps.len(), 1);
        assert_eq!(
            plans[0].skipped,
            vec!["revoke_serial: the alert carries no certificate serial"]
        );
        // A subject that is not a SPIFFE ID cannot be revoked.
        let plans = books.plan(&trigger(
            "tenet.lateral-movement",
            Level::High,
            &[],
            "10.0.0.1",
        ));
        assert!(plans[0].skipped[0].contains("not a SPIFFE ID"));
    }

    /// People: sessions are cut or stepped up for a person's alerts, skipped for workloads.
    #[test]
    fn people_actions_apply_to_persons_only() {
        let text = r#"
playbooks:
  - name: people
    match: {rules: ["tenet.auth-failure-burst"]}
    actions:
      - require_step_up: {}
      - cut_sessions: {}
"#;
        let books = Playbooks::parse("p.yaml", text, Path::new("/etc")).unwrap();
        let plans = books.plan(&trigger(
            "tenet.auth-failure-burst",
            Level::High,
            &[],
            "user:corp:42",
        ));
        assert_eq!(
            plans[0].steps,
            vec![
                Step::RequireStepUp {
                    person: "user:corp:42".into()
                },
                Step::CutSessions {
                    person: "user:corp:42".into()
                }
            ]
        );
        let plans = books.plan(&trigger(
            "tenet.auth-failure-burst",
            Level::High,
            &[],
            "spiffe://td/a",
        ));
        assert!(plans[0].steps.is_empty());
        assert_eq!(plans[0].skipped.len(), 2);
        assert!(plans[0].skipped[0].contains("not a person"));
        let bad = "playbooks:\n  - name: x\n    match: {min_level: high}\n    actions:\n      - cut_sessions: {for: 1h}\n";
        assert!(Playbooks::parse("p.yaml", bad, Path::new("/etc")).is_err());
    }

    #[test]
    fn invalid_playbooks_are_refused_with_the_reason() {
        for (text, says) in [
            (
                "playbooks: [{name: a, match: {}, actions: [{revoke_identity: {}}]}]",
                "would match every alert",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: []}]",
                "no actions",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{reboot: {}}]}]",
                "unknown variant",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x], min_level: severe}, actions: [{revoke_identity: {}}]}]",
                "min_level",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{revoke_identity: {for: soon}}]}]",
                "duration \"soon\"",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{notify: {url: 'ftp://x'}}]}]",
                "not http(s)",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{notify: {url: 'https://x'}}]}]",
                "exactly one of secret_env or secret_file",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{quarantine_service: {direction: up}}]}]",
                "expected inbound",
            ),
            (
                "playbooks: [{name: a, matcher: {}, actions: []}]",
                "unknown field",
            ),
            // Longer than a containment can last: refused now, not during the breach.
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{revoke_identity: {for: 99999999999999d}}]}]",
                "is longer than 36525d",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{quarantine_service: {service: s, for: 36526d}}]}]",
                "is longer than 36525d",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{revoke_serial: {for: 99999999999999999999999s}}]}]",
                "is longer than 36525d",
            ),
            (
                "playbooks: [{name: a, match: {rules: [x]}, actions: [{revoke_identity: {for: h}}]}]",
                "expected a number",
            ),
        ] {
            let err = Playbooks::parse("p.yaml", text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.starts_with("playbook p.yaml"), "{err}");
        }
    }

    #[test]
    fn quarantine_identities_must_be_spiffe_ids() {
        let text = "playbooks: [{name: a, match: {rules: [x]}, actions: [{quarantine_service: \
                    {service: s, direction: outbound, identities: [payments]}}]}]";
        let err = Playbooks::parse("p.yaml", text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("playbook p.yaml: playbook \"a\": quarantine_service identities: \"payments\" is not a SPIFFE ID"),
            "{err}"
        );
        let ok = text.replace("[payments]", "[\"spiffe://example.org/payments\"]");
        assert!(Playbooks::parse("p.yaml", &ok, Path::new(".")).is_ok());
    }

    #[test]
    fn playbooks_are_checked_against_the_deployment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let rules = strings(&["tenet.lateral-movement", "sigma-1"]);
        let tags = strings(&["attack.lateral_movement"]);
        let services = strings(&["payments"]);
        let known = Known {
            rules: &rules,
            tags: &tags,
            services: &services,
        };
        let check = |text: &str| {
            Playbooks::parse("p.yaml", text, dir.path())
                .unwrap()
                .check(&known)
                .map_err(|e| e.to_string())
        };
        let good = "playbooks: [{name: a, match: {rules: ['tenet.lateral-*', sigma-1], \
                    tags: [ATTACK.lateral_movement]}, actions: [{quarantine_service: \
                    {service: payments}}, {notify: {url: 'https://h/x', secret_file: secret}}]}]";
        assert_eq!(check(good), Ok(vec![]));
        for (text, says) in [
            (
                "playbooks: [{name: a, match: {rules: [tenet.lateral-movment]}, actions: [{revoke_identity: {}}]}]",
                "playbook p.yaml: playbook \"a\": rules: \"tenet.lateral-movment\" matches no built-in analytic and no loaded Sigma rule",
            ),
            (
                "playbooks: [{name: a, match: {rules: ['nothing*']}, actions: [{revoke_identity: {}}]}]",
                "rules: \"nothing*\" matches no",
            ),
            (
                "playbooks: [{name: a, match: {rules: [sigma-1]}, actions: [{quarantine_service: {service: billing}}]}]",
                "quarantine_service: no route defines the service \"billing\"",
            ),
            (
                "playbooks: [{name: a, match: {rules: [sigma-1]}, actions: [{notify: {url: 'https://h/x', secret_env: TENET_TEST_NO_SUCH_SECRET_VARIABLE}}]}]",
                "notify https://h/x: the secret variable TENET_TEST_NO_SUCH_SECRET_VARIABLE is not set",
            ),
            (
                "playbooks: [{name: a, match: {rules: [sigma-1]}, actions: [{notify: {url: 'https://h/x', secret_file: empty}}]}]",
                "is empty",
            ),
            (
                "playbooks: [{name: a, match: {rules: [sigma-1]}, actions: [{notify: {url: 'https://h/x', secret_file: missing}}]}]",
                "is unreadable",
            ),
        ] {
            let err = check(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        // A tag no rule carries: a warning, not a refusal.
        let warnings = check(
            "playbooks: [{name: a, match: {tags: [attack.exfiltration]}, actions: [{revoke_identity: {}}]}]",
        )
        .unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("tags: \"attack.exfiltration\" is on no built-in analytic"),
            "{warnings:?}"
        );
        // A quarantine of the alert's own service needs no route check.
        let from_alert = "playbooks: [{name: a, match: {rules: [sigma-1]}, actions: [{quarantine_service: {}}]}]";
        assert_eq!(check(from_alert), Ok(vec![]));
    }

    #[test]
    fn the_longest_time_box_loads() {
        let text = "playbooks: [{name: a, match: {rules: [x]}, actions: [{revoke_identity: {for: 36525d}}]}]";
        let books = Playbooks::parse("p.yaml", text, Path::new(".")).unwrap();
        assert!(
            matches!(
                books.playbooks[0].actions[..],
                [Action::RevokeIdentity(Some(d))] if d == Duration::from_secs(36_525 * 86_400)
            ),
            "{:?}",
            books.playbooks[0].actions
        );
    }

    #[test]
    fn a_folder_loads_and_duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Playbooks::load_dir(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
        std::fs::write(dir.path().join("a.yaml"), BOOK).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a playbook").unwrap();
        assert_eq!(Playbooks::load_dir(dir.path()).unwrap().len(), 2);
        std::fs::write(dir.path().join("b.yml"), BOOK).unwrap();
        let err = Playbooks::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("used twice"), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob("tenet.*", "tenet.lateral-movement"));
        assert!(glob("*movement", "tenet.lateral-movement"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }
}
