//! Detection and response inside `tenet up`.
//!
//! The detector follows the ledger's live feed (every event Tenet records, in ledger order),
//! runs the behavioural analytics (`tenet-detect`) and the Sigma rules (`tenet-sigma`) on it,
//! records each detection as an OCSF Detection Finding, keeps the per-principal risk the
//! gateway hands to policy as `context.risk`, and runs the playbooks (`tenet-playbook`) that
//! match: revocations and quarantines through `tenet-contain` (in force on the next request),
//! and HMAC-signed webhooks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tenet_contain::{Containment, Target};
use tenet_detect::{Alert, Analytics, Baselines, Subject};
use tenet_event::{AdminEvent, DetectionEvent, Event, EventKind};
use tenet_gateway::{Clock, RiskSource};
use tenet_ledger::{LedgerSink, StoredEvent};
use tenet_playbook::{Level, Playbooks, Secret, Step, Trigger};
use tenet_policy::{PolicyEngine, PolicySnapshot};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use crate::config::DetectSpec;
use crate::contain::{Change, Recorder};

/// How often the learned baselines are written to their state file when they changed.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Where the learned baselines are kept, under the deployment's data directory.
pub fn baselines_path(data_dir: &Path) -> PathBuf {
    data_dir.join("detect").join("baselines.json")
}

/// The risk scores the detector keeps, read by the gateway on every request.
pub struct RiskTable {
    scores: RwLock<HashMap<String, (u8, OffsetDateTime)>>,
    half_life: Duration,
    cap: usize,
}

impl RiskTable {
    /// A table whose scores halve every `half_life`.
    pub fn new(half_life: Duration, cap: usize) -> Self {
        Self {
            scores: RwLock::new(HashMap::new()),
            half_life,
            cap,
        }
    }

    fn set(&self, principal: &str, score: u8, now: OffsetDateTime) {
        let mut map = match self.scores.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if score == 0 {
            map.remove(principal);
            return;
        }
        if map.len() >= self.cap && !map.contains_key(principal) {
            // Bounded: forget the lowest score.
            if let Some(lowest) = map
                .iter()
                .min_by_key(|(_, (s, _))| *s)
                .map(|(k, _)| k.clone())
            {
                map.remove(&lowest);
            }
        }
        map.insert(principal.to_owned(), (score, now));
    }
}

impl RiskSource for RiskTable {
    fn risk(&self, principal: &str, now: OffsetDateTime) -> u8 {
        let map = match self.scores.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some((score, at)) = map.get(principal) else {
            return 0;
        };
        let elapsed = (now - *at).as_seconds_f64().max(0.0);
        let half = self.half_life.as_secs_f64().max(1.0);
        let decayed = f64::from(*score) * 0.5f64.powf(elapsed / half);
        // Rounded down, within 0..=100 by construction.
        decayed.clamp(0.0, 100.0) as u8
    }
}

/// Everything the detector runs with.
pub struct Detector {
    analytics: Analytics,
    sigma: Option<tenet_sigma::Engine>,
    playbooks: Playbooks,
    containment: Arc<Containment>,
    policy: Arc<PolicyEngine>,
    sink: LedgerSink,
    clock: Arc<dyn Clock>,
    risk: Arc<RiskTable>,
    cut_off: Option<Duration>,
    http: reqwest::Client,
    /// The sign-in service, for people's alerts (cut sessions, step-up).
    people: Option<Arc<tenet_people::SignIn>>,
    /// The state file of the learned baselines.
    baselines: PathBuf,
    /// [`Analytics::baseline_changes`] when the baselines were last saved or restored.
    saved_changes: u64,
}

/// Loads what `[detect]` names; errors name the file and the problem, so `tenet up` refuses to
/// start with a broken playbook rather than run without it.
///
/// Playbooks are checked against what the deployment has (`services`: the services its
/// routes define; the built-in analytics and the loaded Sigma rules): a rule id that matches
/// no rule, a quarantine of an unknown service or a webhook without its secret refuse the
/// start; a tag no rule carries is logged at warn.
pub fn load(
    spec: &DetectSpec,
    baselines: &Path,
    services: &[String],
    containment: Arc<Containment>,
    policy: Arc<PolicyEngine>,
    sink: LedgerSink,
    clock: Arc<dyn Clock>,
) -> Result<(Detector, Arc<RiskTable>)> {
    let mut analytics =
        Analytics::new(spec.analytics.clone()).map_err(|e| anyhow!("detect.analytics: {e}"))?;
    let current = policy.current();
    analytics.declare_policy_versions(current.hash(), policy_versions(&current));
    // The set in force at start: its "loaded" event was recorded before the detector
    // subscribed, so tell the analytics here; later changes are judged against it.
    let loaded = Event::new(
        clock.now(),
        EventKind::Policy(tenet_event::PolicyEvent {
            outcome: "loaded".into(),
            active_hash: current.hash().to_owned(),
            candidate_hash: None,
            policy_count: current.policy_count(),
            errors: vec![],
        }),
    );
    let _ = analytics.observe(&loaded, clock.now());
    restore_baselines(&mut analytics, baselines, clock.now());
    let saved_changes = analytics.baseline_changes();
    let mut known_rules: Vec<String> = tenet_detect::rules::ALL
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut known_tags: Vec<String> = tenet_detect::rules::ALL
        .iter()
        .flat_map(|r| analytics_tags(r))
        .map(ToString::to_string)
        .collect();
    let mut sigma_rules = 0_usize;
    let sigma = match &spec.rules {
        Some(path) => {
            let set = load_rules(path)?;
            sigma_rules = set.len();
            for rule in set.rules() {
                known_rules.extend(rule.id.iter().chain(&rule.name).cloned());
                known_rules.push(rule.title.clone());
                known_tags.extend(rule.tags.iter().cloned());
            }
            for corr in set.correlations() {
                known_rules.extend(corr.id.iter().chain(&corr.name).cloned());
                known_rules.push(corr.title.clone());
                known_tags.extend(corr.tags.iter().cloned());
            }
            Some(tenet_sigma::Engine::new(set))
        }
        None => None,
    };
    let playbooks = Playbooks::load_dir(&spec.playbooks)
        .with_context(|| format!("loading playbooks from {}", spec.playbooks.display()))?;
    let known = tenet_playbook::Known {
        rules: &known_rules,
        tags: &known_tags,
        services,
    };
    for warning in playbooks
        .check(&known)
        .with_context(|| format!("checking playbooks in {}", spec.playbooks.display()))?
    {
        warn!("{warning}");
    }
    let risk = Arc::new(RiskTable::new(
        Duration::from_secs(spec.analytics.risk.half_life_secs.max(1)),
        100_000,
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the webhook client")?;
    info!(
        analytics = tenet_detect::rules::ALL.len(),
        sigma_rules,
        playbooks = playbooks.len(),
        "detection on"
    );
    Ok((
        Detector {
            analytics,
            sigma,
            playbooks,
            containment,
            policy,
            sink,
            clock,
            risk: risk.clone(),
            cut_off: spec.cut_off,
            http,
            people: None,
            baselines: baselines.to_path_buf(),
            saved_changes,
        },
        risk,
    ))
}

/// Restore the baselines saved by an earlier run. A missing file is normal (nothing learned
/// yet); an unusable one is reported, moved aside and learning starts fresh.
/// The set's policy ids with a digest of what each says, as the analytics take them: a
/// permit edited under the same id is then a change of rights.
fn policy_versions(set: &PolicySnapshot) -> impl Iterator<Item = (&str, &str)> {
    set.policy_versions()
        .iter()
        .map(|(id, version)| (id.as_str(), version.as_str()))
}

fn restore_baselines(analytics: &mut Analytics, path: &Path, now: OffsetDateTime) {
    match Baselines::load(path) {
        Ok(None) => info!(file = %path.display(), "no saved baselines; learning starts fresh"),
        Ok(Some(saved)) => {
            let restored = analytics.import_baselines(&saved);
            info!(file = %path.display(), restored, saved = saved.len(),
                "learned baselines restored");
        }
        Err(problem) => match Baselines::quarantine(path, now.unix_timestamp()) {
            Ok(aside) => warn!(file = %path.display(), %problem, moved_to = %aside.display(),
                "saved baselines unusable, moved aside; learning starts fresh"),
            Err(e) => warn!(file = %path.display(), %problem, error = %e,
                "saved baselines unusable and could not be moved aside; learning starts fresh"),
        },
    }
}

fn load_rules(path: &Path) -> Result<tenet_sigma::RuleSet> {
    if !path.exists() {
        return Err(anyhow!(
            "detect.rules {}: no such file or folder",
            path.display()
        ));
    }
    let set = tenet_sigma::RuleSet::load_paths(&[path.to_path_buf()]);
    for p in set.problems() {
        warn!(problem = %p, "Sigma rule not loaded");
    }
    info!(rules = set.len(), not_loaded = set.problems().len(), path = %path.display(),
        "Sigma rules loaded");
    Ok(set)
}

impl Detector {
    /// Lets playbooks and the risk cut-off act on people's sessions.
    pub fn with_people(mut self, people: Option<Arc<tenet_people::SignIn>>) -> Self {
        self.people = people;
        self
    }

    /// Follows the ledger's feed until it closes or `stop` fires, saving the learned
    /// baselines every minute when they changed, and once more at the end.
    pub async fn run(
        mut self,
        mut feed: tokio::sync::broadcast::Receiver<Arc<StoredEvent>>,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let mut save =
            tokio::time::interval_at(tokio::time::Instant::now() + SAVE_EVERY, SAVE_EVERY);
        save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = feed.recv() => match received {
                    Ok(stored) => {
                        self.handle(&stored.event).await;
                        // One event at a time between the requests on the same worker: after a
                        // burst, draining the feed in one go held every request waiting behind
                        // it for a scheduler pass (the p99 of a proxied request at half of peak
                        // went from 1.5 ms with detection off to 3-6 ms with it on).
                        tokio::task::yield_now().await;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        metrics::counter!("tenet_detect_events_missed_total").increment(missed);
                        warn!(
                            missed,
                            "detection fell behind the event stream; events not analysed"
                        );
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = save.tick() => self.save_baselines().await,
                _ = &mut stop => break,
            }
        }
        self.save_baselines().await;
    }

    /// Write the learned baselines to their state file if they changed since the last save,
    /// off the detector's loop (the file is written on a blocking thread).
    async fn save_baselines(&mut self) {
        let changes = self.analytics.baseline_changes();
        if changes == self.saved_changes {
            return;
        }
        let baselines = self.analytics.export_baselines(self.clock.now());
        let path = self.baselines.clone();
        let principals = baselines.len();
        let written = tokio::task::spawn_blocking(move || baselines.save(&path)).await;
        match written {
            Ok(Ok(())) => {
                self.saved_changes = changes;
                info!(file = %self.baselines.display(), principals, "learned baselines saved");
            }
            Ok(Err(e)) => {
                warn!(file = %self.baselines.display(), error = %e, "learned baselines not saved");
            }
            Err(e) => {
                warn!(file = %self.baselines.display(), error = %e, "learned baselines not saved");
            }
        }
    }

    async fn handle(&mut self, event: &Event) {
        // Our own findings, and Tenet's own responses (playbooks, risk cut-offs, expiries),
        // are not evidence of anything new.
        match &event.kind {
            EventKind::Detection(_) => return,
            EventKind::Admin(a)
                if a.actor.starts_with("playbook:") || a.actor.starts_with("tenet") =>
            {
                return;
            }
            _ => {}
        }
        let now = self.clock.now();
        if let EventKind::Policy(p) = &event.kind {
            let current = self.policy.current();
            if current.hash() == p.active_hash {
                self.analytics
                    .declare_policy_versions(current.hash(), policy_versions(&current));
            }
        }
        let mut triggers: Vec<(DetectionEvent, Trigger)> = self
            .analytics
            .observe(event, now)
            .into_iter()
            .map(from_alert)
            .collect();
        if let Some(engine) = &mut self.sigma {
            let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            for m in engine.observe(&event.to_ocsf(), tenet_sigma::Source::Tenet, ms) {
                triggers.push(from_sigma(m, event));
            }
        }
        if let EventKind::Access(a) = &event.kind {
            let mut subjects = vec![Subject::Principal(a.principal.clone())];
            if let Some(serial) = &a.client_serial {
                subjects.push(Subject::Device(serial.clone()));
            }
            let score = self.analytics.context_risk(&subjects, now);
            self.risk.set(&a.principal, score, now);
        }
        for (detection, trigger) in triggers {
            self.respond(detection, trigger, now).await;
        }
    }

    async fn respond(&mut self, detection: DetectionEvent, trigger: Trigger, now: OffsetDateTime) {
        metrics::counter!("tenet_detections_total", "rule" => detection.rule.clone()).increment(1);
        info!(rule = %detection.rule, level = %detection.level, subject = %detection.subject,
            explanation = %detection.explanation, "detection");
        let recorder = Recorder::Running {
            sink: &self.sink,
            clock: &*self.clock,
        };
        if let Err(e) = crate::up::record(
            &self.sink,
            &*self.clock,
            EventKind::Detection(detection.clone()),
        )
        .await
        {
            warn!(error = %e, rule = %detection.rule, "detection could not be recorded");
        }
        // Built in: a principal whose risk crossed the cut-off threshold is revoked for a while.
        if trigger.rule == tenet_detect::rules::RISK_THRESHOLD
            && trigger.evidence.get("action").and_then(Value::as_str) == Some("cut_off")
            && trigger.subject.starts_with("spiffe://")
            && let Some(duration) = self.cut_off
        {
            let change = Change::Contain {
                target: Target::Identity {
                    spiffe_id: trigger.subject.clone(),
                },
                reason: format!("{}: {}", detection.rule, detection.explanation),
                for_secs: Some(duration.as_secs().max(1)),
            };
            self.contain(&recorder, "tenet:risk", change, now).await;
        }
        // A person over the cut-off: every session ends (the next request must sign in anew).
        if trigger.rule == tenet_detect::rules::RISK_THRESHOLD
            && trigger.evidence.get("action").and_then(Value::as_str) == Some("cut_off")
            && trigger.subject.starts_with("user:")
            && self.cut_off.is_some()
            && let Some(people) = &self.people
        {
            let n = people.revoke_person(&trigger.subject, now);
            info!(person = %trigger.subject, sessions = n, "sessions cut by the risk cut-off");
        }
        for plan in self.playbooks.plan(&trigger) {
            let actor = format!("playbook:{}", plan.playbook);
            let mut done = Vec::new();
            // Steps that were due and did not happen: the record must not claim them.
            let mut failed = Vec::new();
            for step in plan.steps {
                match step {
                    Step::Contain { target, duration } => {
                        let what = target.to_string();
                        let change = Change::Contain {
                            target,
                            reason: format!("{}: {}", detection.rule, detection.explanation),
                            for_secs: duration.map(|d| d.as_secs().max(1)),
                        };
                        match self.contain(&recorder, &actor, change, now).await {
                            Contained::Applied => done.push(format!("contained {what}")),
                            Contained::Already => done.push(format!("{what} already contained")),
                            Contained::Failed(e) => failed.push(format!("contain {what}: {e}")),
                        }
                    }
                    Step::CutSessions { person } => match &self.people {
                        Some(people) => {
                            let n = people.revoke_person(&person, now);
                            info!(%person, sessions = n, actor, "sessions cut by response");
                            done.push(format!("cut {n} sessions of {person}"));
                        }
                        None => done.push(format!("no people routes: no sessions of {person}")),
                    },
                    Step::RequireStepUp { person } => match &self.people {
                        Some(people) => {
                            let why = format!("{}: {}", detection.rule, detection.title);
                            let n = people.step_up_person(&person, &why, now);
                            info!(%person, sessions = n, actor, "step-up required by response");
                            done.push(format!("step-up required on {n} sessions of {person}"));
                        }
                        None => done.push(format!("no people routes: no sessions of {person}")),
                    },
                    Step::Notify { url, secret } => {
                        match self.notify(&url, &secret, &plan.playbook, &detection) {
                            Ok(()) => done.push(format!("notifying {url}")),
                            Err(e) => failed.push(format!("notify {url}: {e}")),
                        }
                    }
                }
            }
            let detail = json!({
                "playbook": plan.playbook,
                "detection": detection.rule,
                "subject": detection.subject,
                "done": done,
                "failed": failed,
                "skipped": plan.skipped,
            });
            let event = EventKind::Admin(AdminEvent {
                actor: actor.clone(),
                operation: "playbook.run".into(),
                success: plan.skipped.is_empty() && failed.is_empty(),
                detail: detail.to_string(),
            });
            if let Err(e) = crate::up::record(&self.sink, &*self.clock, event).await {
                warn!(error = %e, playbook = %plan.playbook, "playbook run could not be recorded");
            }
        }
    }

    /// Applies a containment unless the same target is already contained.
    async fn contain(
        &self,
        recorder: &Recorder<'_>,
        actor: &str,
        change: Change,
        now: OffsetDateTime,
    ) -> Contained {
        if let Change::Contain { target, .. } = &change {
            let snapshot = self.containment.current();
            let already = match target {
                Target::Identity { spiffe_id } => snapshot.check(Some(spiffe_id), None, None, now),
                Target::Serial { serial } => snapshot.check(None, Some(serial), None, now),
                Target::Service { service, .. } => snapshot.check(None, None, Some(service), now),
            };
            if already.is_some() {
                return Contained::Already;
            }
        }
        match crate::contain::apply(&self.containment, recorder, actor, change, now).await {
            Ok(actions) => {
                for a in actions {
                    info!(id = %a.id, target = %a.target, actor, "contained by response");
                }
                Contained::Applied
            }
            Err(e) => {
                warn!(error = %e, actor, "containment failed");
                Contained::Failed(format!("{e:#}"))
            }
        }
    }

    /// POSTs the detection to a webhook in the background, signed with HMAC-SHA256 over
    /// `<timestamp>.<body>` (`X-Tenet-Timestamp`, `X-Tenet-Signature: sha256=<hex>`); the
    /// delivery is recorded as `playbook.notify`. An error when nothing could be sent.
    fn notify(
        &self,
        url: &str,
        secret: &Secret,
        playbook: &str,
        detection: &DetectionEvent,
    ) -> Result<(), String> {
        let key = match webhook_key(secret) {
            Ok(key) => key,
            Err(e) => {
                warn!(playbook, url, error = %e, "notification not sent");
                return Err(e);
            }
        };
        let body = json!({"playbook": playbook, "detection": detection}).to_string();
        let timestamp = self.clock.now().unix_timestamp().to_string();
        let signature = sign(&key, &timestamp, &body);
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-tenet-timestamp", timestamp)
            .header("x-tenet-signature", format!("sha256={signature}"))
            .body(body);
        let sink = self.sink.clone();
        let clock = self.clock.clone();
        let url = url.to_owned();
        let playbook = playbook.to_owned();
        tokio::spawn(async move {
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
                Ok(r) => Err(format!("answered {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = &outcome {
                warn!(%url, playbook, error = %e, "webhook notification failed");
            }
            let event = EventKind::Admin(AdminEvent {
                actor: format!("playbook:{playbook}"),
                operation: "playbook.notify".into(),
                success: outcome.is_ok(),
                detail: json!({"url": url, "outcome": match &outcome {
                    Ok(status) => format!("delivered ({status})"),
                    Err(e) => e.clone(),
                }})
                .to_string(),
            });
            let _ = crate::up::record(&sink, &*clock, event).await;
        });
        Ok(())
    }
}

/// What a containment step came to.
enum Contained {
    Applied,
    /// The target was contained already (by an earlier step, playbook or operator).
    Already,
    Failed(String),
}

/// The webhook signing key, or why there is none.
fn webhook_key(secret: &Secret) -> Result<String, String> {
    let key = match secret {
        Secret::Env(name) => std::env::var(name)
            .map_err(|_| format!("webhook secret: environment variable {name} is not set"))?,
        Secret::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("webhook secret: {}: {e}", path.display()))?
            .trim_end()
            .to_owned(),
    };
    if key.is_empty() {
        return Err("webhook secret is empty".into());
    }
    Ok(key)
}

/// HMAC-SHA256 of `<timestamp>.<body>` with `key`, hex.
pub fn sign(key: &str, timestamp: &str, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    hex_string(ctx.sign().as_ref())
}

fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn level_of(name: &str) -> Level {
    Level::parse(name).unwrap_or(Level::Informational)
}

fn subject_name(subject: &Subject) -> String {
    match subject {
        Subject::Principal(p) | Subject::Session(p) | Subject::Device(p) => p.clone(),
        Subject::Source(ip) => ip.to_string(),
    }
}

/// The ATT&CK tags of a built-in analytic's detections.
fn analytics_tags(rule: &str) -> &'static [&'static str] {
    match rule {
        r if r == tenet_detect::rules::LATERAL_MOVEMENT
            || r == tenet_detect::rules::SERVICE_FAN_OUT =>
        {
            &["attack.lateral_movement"]
        }
        r if r == tenet_detect::rules::PRIVILEGE_ESCALATION => &["attack.privilege_escalation"],
        r if r == tenet_detect::rules::AUTH_FAILURE_BURST => &["attack.credential_access"],
        r if r == tenet_detect::rules::PROTOCOL_ABUSE => &["attack.impact", "attack.t1499.002"],
        _ => &[],
    }
}

fn from_alert(alert: Alert) -> (DetectionEvent, Trigger) {
    let level = alert.level.to_string();
    let subject = subject_name(&alert.subject);
    let tags: Vec<String> = analytics_tags(&alert.rule)
        .iter()
        .map(ToString::to_string)
        .collect();
    let detection = DetectionEvent {
        rule: alert.rule.clone(),
        title: alert.rule.trim_start_matches("tenet.").replace('-', " "),
        level: level.clone(),
        subject: subject.clone(),
        explanation: alert.explanation.clone(),
        tags: tags.clone(),
        evidence: alert.evidence.clone(),
        engine: "analytics".into(),
    };
    let trigger = Trigger {
        rule: alert.rule,
        level: level_of(&level),
        tags,
        subject,
        evidence: alert.evidence,
    };
    (detection, trigger)
}

fn from_sigma(m: tenet_sigma::Match, event: &Event) -> (DetectionEvent, Trigger) {
    let level = m.level.map_or("informational", |l| match l {
        tenet_finding::Severity::Info => "informational",
        tenet_finding::Severity::Low => "low",
        tenet_finding::Severity::Medium => "medium",
        tenet_finding::Severity::High => "high",
        tenet_finding::Severity::Critical => "critical",
    });
    let (subject, evidence) = match &event.kind {
        EventKind::Access(a) => (
            a.principal.clone(),
            json!({"event_id": event.id.to_string(), "service": a.service, "route": a.route,
                   "serial": a.client_serial, "source_ip": a.source_ip.to_string()}),
        ),
        EventKind::Rejection(r) => (
            r.principal
                .clone()
                .unwrap_or_else(|| r.source_ip.to_string()),
            json!({"event_id": event.id.to_string(), "source_ip": r.source_ip.to_string()}),
        ),
        EventKind::Admin(a) => (a.actor.clone(), json!({"event_id": event.id.to_string()})),
        _ => (
            "tenet".to_owned(),
            json!({"event_id": event.id.to_string()}),
        ),
    };
    let mut tags = m.tags.clone();
    tags.extend(m.attack.iter().cloned());
    tags.sort();
    tags.dedup();
    let detection = DetectionEvent {
        rule: m.rule_id.clone(),
        title: m.title.clone(),
        level: level.to_owned(),
        subject: subject.clone(),
        explanation: format!("Sigma rule {:?} matched", m.title),
        tags: tags.clone(),
        evidence: evidence.clone(),
        engine: "sigma".into(),
    };
    let trigger = Trigger {
        rule: m.rule_id,
        level: level_of(level),
        tags,
        subject,
        evidence,
    };
    (detection, trigger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // The primitive against RFC 4231 test case 2.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        let tag = aws_lc_rs::hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex_string(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The signed message is `<timestamp>.<body>`.
        let expected = hex_string(aws_lc_rs::hmac::sign(&key, b"17.{}").as_ref());
        assert_eq!(sign("Jefe", "17", "{}"), expected);
    }

    #[test]
    fn a_missing_webhook_secret_is_an_error_naming_it() {
        let err = webhook_key(&Secret::Env("TENET_TEST_SURELY_UNSET_SECRET".into())).unwrap_err();
        assert!(
            err.contains("TENET_TEST_SURELY_UNSET_SECRET is not set"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = webhook_key(&Secret::File(missing.clone())).unwrap_err();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let err = webhook_key(&Secret::File(dir.path().join("empty"))).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        std::fs::write(dir.path().join("key"), "s3cret\n").unwrap();
        assert_eq!(
            webhook_key(&Secret::File(dir.path().join("key"))).unwrap(),
            "s3cret"
        );
    }

    #[test]
    fn risk_decays_by_half_per_half_life() {
        let t = RiskTable::new(Duration::from_secs(60), 10);
        let now = OffsetDateTime::UNIX_EPOCH;
        t.set("spiffe://td/a", 80, now);
        assert_eq!(t.risk("spiffe://td/a", now), 80);
        assert_eq!(
            t.risk("spiffe://td/a", now + time::Duration::seconds(60)),
            40
        );
        assert_eq!(t.risk("spiffe://td/b", now), 0);
    }
}
