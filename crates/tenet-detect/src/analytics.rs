//! The analytics engine: routes each event to the analytics it concerns, raises risk for the
//! alerts, and keeps every table within its cap.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Value, json};
use tenet_event::{
    AccessEvent, AdminEvent, Disposition, Event, EventKind, RejectionEvent, THROTTLED,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{AnalyticsConfig, ConfigError};
use crate::escalation::{Admins, NewRight, Policies};
use crate::lru::Lru;
use crate::names::{NameId, Names};
use crate::persist::Baselines;
use crate::principals::Principals;
use crate::profile::{Context, Method, Profile, Request, secs_to_ms};
use crate::risk::{RiskAction, RiskReport, RiskTable};
use crate::window::{Burst, BurstSeen, Failure};
use crate::{Alert, Level, Subject, rules};

/// The principal of requests without a client certificate: shared by every anonymous
/// caller, so it has no behaviour of its own to learn.
const ANONYMOUS: &str = "anonymous";

/// The `kind` of the gateway's refusal of an HTTP/2 connection whose client reset most of its
/// streams as soon as they started.
const RESET_FLOOD: &str = "http2_reset_flood";

/// Built-in behavioural analytics and risk scores over Tenet's event stream.
///
/// Feed it every event with [`Analytics::observe`]; it returns the alerts the event fired,
/// each with its explanation, and raises the risk of the subjects concerned. Memory is
/// bounded by [`crate::LimitConfig`]: every table forgets its least recently seen entry when
/// full, and a new principal only ever evicts one still learning, so a flood of new
/// identities cannot evict the baselines already learned.
#[derive(Debug)]
pub struct Analytics {
    config: AnalyticsConfig,
    names: Names,
    principals: Principals,
    sources: Lru<IpAddr, Burst>,
    /// Per subject (and whether for reset floods), when its last protocol-abuse alert fired
    /// and the connections ended since.
    protocol: Lru<(Subject, bool), Abuse>,
    policies: Policies,
    admins: Admins,
    risk: RiskTable,
    started_ms: Option<i64>,
    last_hash: Option<(Box<str>, NameId)>,
    changes: u64,
}

/// How many entries the analytics hold, per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// Principals with a profile (learning and established).
    pub principals: usize,
    /// Of those, principals still learning their baseline. They use any free room, but
    /// established baselines keep four fifths of `limits.max_principals` for themselves.
    pub learning: usize,
    /// Source addresses with a failure window.
    pub sources: usize,
    /// Principals and source addresses with a protocol-abuse cool-down.
    pub protocol_subjects: usize,
    /// Subjects with a risk score.
    pub risk_subjects: usize,
    /// Admin actors remembered.
    pub admin_actors: usize,
    /// Policy sets remembered.
    pub policy_sets: usize,
    /// Interned service, route and policy names.
    pub names: usize,
}

impl Default for Analytics {
    fn default() -> Self {
        Self::with_valid_config(AnalyticsConfig::default())
    }
}

impl Analytics {
    /// Analytics with `config`, checked first.
    pub fn new(config: AnalyticsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_valid_config(config))
    }

    fn with_valid_config(config: AnalyticsConfig) -> Self {
        let l = &config.limits;
        Self {
            names: Names::new(l.max_names),
            principals: Principals::new(l.max_principals),
            sources: Lru::new(l.max_sources),
            protocol: Lru::new(l.max_sources),
            policies: Policies::new(l.max_policy_sets, l.max_policy_ids),
            admins: Admins::new(l.max_admin_actors),
            risk: RiskTable::new(l.max_risk_subjects, config.risk.half_life_secs),
            started_ms: None,
            last_hash: None,
            changes: 0,
            config,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Observe one event at `now` (the gateway's clock; pass the event's own time when
    /// replaying a log). Returns the alerts it fired, risk-threshold crossings last.
    pub fn observe(&mut self, event: &Event, now: OffsetDateTime) -> Vec<Alert> {
        let now_ms = millis(now);
        let started = *self.started_ms.get_or_insert(now_ms);
        let mut out = Vec::new();
        let mut device = None;
        if matches!(
            event.kind,
            EventKind::Access(_) | EventKind::Rejection(_) | EventKind::Authentication(_)
        ) {
            self.changes = self.changes.wrapping_add(1);
        }
        match &event.kind {
            EventKind::Access(a) => {
                self.access(a, now, now_ms, &mut out);
                device = a.client_serial.as_deref();
            }
            EventKind::Rejection(r) => self.rejection(r, now, now_ms, &mut out),
            EventKind::Policy(p) => {
                // Every outcome names the set in force; only a different one is a change.
                if let Some(hash) = self.names.intern(&p.active_hash) {
                    self.policies.activate(hash, now_ms);
                }
            }
            EventKind::Admin(a) => self.admin(a, started, now, now_ms, &mut out),
            EventKind::Authentication(a) if !a.success => {
                self.sign_in_failure(a, now, now_ms, &mut out);
            }
            // SVID issuance and kinds added later carry no behaviour these analytics learn.
            _ => {}
        }
        if !out.is_empty() {
            self.raise_for(&mut out, event, device, now, now_ms);
        }
        out
    }

    /// The decayed risk of `subject` at `now`, 0–100.
    pub fn risk(&self, subject: &Subject, now: OffsetDateTime) -> u8 {
        self.risk.score(subject, millis(now))
    }

    /// The highest risk among `subjects` (the principal, its device, its source address):
    /// the value for Cedar's `context.risk`.
    pub fn context_risk(&self, subjects: &[Subject], now: OffsetDateTime) -> u8 {
        let now_ms = millis(now);
        subjects
            .iter()
            .map(|s| self.risk.score(s, now_ms))
            .max()
            .unwrap_or(0)
    }

    /// What the thresholds say about the highest risk among `subjects`.
    pub fn action(&self, subjects: &[Subject], now: OffsetDateTime) -> RiskAction {
        self.action_for(self.context_risk(subjects, now))
    }

    /// The risk of `subject`, what it means, and what raised it.
    pub fn risk_report(&self, subject: &Subject, now: OffsetDateTime) -> RiskReport {
        let score = self.risk(subject, now);
        RiskReport {
            score,
            action: self.action_for(score),
            reasons: self.risk.reasons(subject),
        }
    }

    /// Raise the risk of `subject` by `amount` (a playbook, a failed MFA, an external
    /// signal). Returns the alert when the raise crosses a threshold.
    pub fn raise(
        &mut self,
        subject: &Subject,
        amount: u8,
        reason: &str,
        now: OffsetDateTime,
    ) -> Option<Alert> {
        let (before, after) = self.risk.raise(subject, amount, reason, millis(now));
        self.crossing(subject, before, after, reason, now)
    }

    /// Declare the exact policy ids of the set with `hash`, as the policy engine loaded it.
    /// With it, a new right after a change is judged exactly; without it, the previous set's
    /// ids are inferred from the decisions observed under it.
    pub fn declare_policy_set<I, S>(&mut self, hash: &str, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let Some(hash) = self.names.intern(hash) else {
            return;
        };
        let ids: HashSet<NameId> = ids
            .into_iter()
            .filter_map(|id| self.names.intern(id.as_ref()))
            .collect();
        self.policies.declare(hash, ids);
    }

    /// Declare the exact policies of the set with `hash`, each as its id and a digest of what
    /// it says: besides [`Self::declare_policy_set`], a policy edited under the same id that
    /// allows a route denied under the earlier set is judged a change of rights.
    pub fn declare_policy_versions<I, S, V>(&mut self, hash: &str, versions: I)
    where
        I: IntoIterator<Item = (S, V)>,
        S: AsRef<str>,
        V: AsRef<str>,
    {
        let Some(hash) = self.names.intern(hash) else {
            return;
        };
        let versions = versions
            .into_iter()
            .filter_map(|(id, version)| {
                let id = self.names.intern(id.as_ref())?;
                Some((id, Box::from(version.as_ref())))
            })
            .collect();
        self.policies.declare_versions(hash, versions);
    }

    /// How many entries each table holds.
    pub fn tracked(&self) -> Tracked {
        Tracked {
            principals: self.principals.len(),
            learning: self.principals.learning(),
            sources: self.sources.len(),
            protocol_subjects: self.protocol.len(),
            risk_subjects: self.risk.len(),
            admin_actors: self.admins.len(),
            policy_sets: self.policies.len(),
            names: self.names.len(),
        }
    }

    /// Whether `principal` has finished learning its baseline.
    pub fn is_established(&self, principal: &str) -> bool {
        self.principals
            .peek(principal)
            .is_some_and(Profile::established)
    }

    /// A counter that moves whenever an event may have changed a baseline: save the
    /// baselines again only when it differs from the value at the last save.
    pub fn baseline_changes(&self) -> u64 {
        self.changes
    }

    /// Every principal's learned baseline (services, routes, hours, networks, rate, event
    /// count, learning state) in a stable form, stamped with `now`. Risk scores, failure
    /// windows and remembered denials are not included.
    pub fn export_baselines(&self, now: OffsetDateTime) -> Baselines {
        let principals = self
            .principals
            .iter()
            .map(|(principal, profile)| profile.save(principal, &self.names))
            .collect();
        Baselines::new(millis(now), principals)
    }

    /// Restore baselines exported earlier, within this configuration's caps: at most
    /// `limits.max_principals` principals (the most recently seen first, established
    /// baselines within their share), and per principal at most the configured services,
    /// routes and networks. A restored principal whose learning period was over stays
    /// established. Returns how many principals were restored.
    pub fn import_baselines(&mut self, baselines: &Baselines) -> usize {
        let cap = self.config.limits.max_principals;
        let established_cap = self.principals.established_cap();
        let (mut established, mut chosen) = (0usize, Vec::new());
        for saved in &baselines.principals {
            if chosen.len() >= cap {
                break;
            }
            if saved.principal.is_empty() || saved.principal == ANONYMOUS {
                continue;
            }
            if saved.established {
                if established >= established_cap {
                    continue;
                }
                established += 1;
            }
            chosen.push(saved);
        }
        // Oldest first, so that the most recently seen end up most recent again.
        for saved in chosen.iter().rev() {
            let profile = Profile::restore(saved, &mut self.names, &self.config);
            self.principals.restore(&saved.principal, profile);
        }
        chosen.len()
    }

    fn action_for(&self, score: u8) -> RiskAction {
        if score >= self.config.risk.cut_off {
            RiskAction::CutOff
        } else if score >= self.config.risk.reauthenticate {
            RiskAction::Reauthenticate
        } else {
            RiskAction::Allow
        }
    }

    fn access(&mut self, a: &AccessEvent, now: OffsetDateTime, now_ms: i64, out: &mut Vec<Alert>) {
        let allowed = a.disposition == Disposition::Allowed;
        if !allowed {
            let failure = if a.route.is_none() {
                Failure::NoRoute
            } else {
                Failure::Denied
            };
            self.source_failure(a.source_ip, failure, now, now_ms, out);
        }

        let policy_hash = self.hash_id(&a.policy_hash);
        let req = Request {
            event: a,
            service: a.service.as_deref().and_then(|s| self.names.intern(s)),
            route: a.route.as_deref().and_then(|r| self.names.intern(r)),
            policy_hash,
            method: Method::of(&a.action),
            reasons: a
                .reasons
                .iter()
                .filter_map(|r| self.names.intern(r))
                .collect(),
        };
        if a.principal != ANONYMOUS {
            self.profile_access(&req, now, now_ms, out);
        }

        if let Some(hash) = policy_hash {
            let window_ms = secs_to_ms(self.config.escalation.window_secs);
            let found = self.policies.decision(
                &a.principal,
                hash,
                &req.reasons,
                allowed,
                now_ms,
                window_ms,
            );
            for right in found {
                out.push(self.new_right_alert(a, &right, now));
            }
        }
        merge_escalations(out);

        // The baseline learns only from requests that were allowed: a denied request (an
        // attacker's probe, also during the learning period) never becomes usual. An allowed
        // request outside the baseline is flagged once (risk, playbooks) and then learned, so
        // that a legitimate new dependency does not raise the principal's risk forever.
        if allowed && a.principal != ANONYMOUS {
            let principal = a.principal.as_str();
            if let Some(profile) = self.principals.get_mut(principal) {
                let ctx = Context {
                    config: &self.config,
                    names: &self.names,
                    policies: &self.policies,
                    principal,
                    now,
                    now_ms,
                };
                profile.learn(&ctx, &req);
            }
        }
    }

    /// The principal's profile: failure burst, then everything it learns from a request.
    fn profile_access(
        &mut self,
        req: &Request<'_>,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        let principal = req.event.principal.as_str();
        let Self {
            config,
            names,
            principals,
            policies,
            ..
        } = self;
        let Some((profile, was_established)) = principals.get_or_insert(principal, now_ms) else {
            return;
        };
        let ctx = Context {
            config,
            names,
            policies,
            principal,
            now,
            now_ms,
        };
        if req.event.disposition == Disposition::Blocked {
            let failure = if req.event.route.is_none() {
                Failure::NoRoute
            } else {
                Failure::Denied
            };
            let c = &config.failures;
            let window_ms = secs_to_ms(c.window_secs);
            if let Some(seen) = profile
                .failures
                .record(now_ms, failure, c.per_principal, window_ms)
            {
                let subject = Subject::Principal(principal.to_string());
                out.push(burst_alert(config, subject, c.per_principal, &seen, now));
            }
        }
        profile.observe(&ctx, req, out);

        if !was_established {
            principals.promote(principal);
        }
    }

    fn rejection(
        &mut self,
        r: &RejectionEvent,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        if r.kind == THROTTLED {
            // A summary of refusals past a source's limit: the source's refusals recorded one
            // by one before it already fed the detections of that window.
            return;
        }
        if r.stage == "http2" {
            return self.protocol_abuse(r, now, now_ms, out);
        }
        if r.stage != "tls" {
            // Malformed HTTP is refused before anyone is authenticated or authorized.
            return;
        }
        let Some(index) = self
            .config
            .failures
            .tls_kinds
            .iter()
            .position(|k| *k == r.kind)
        else {
            return;
        };
        let failure = Failure::Tls(u16::try_from(index).unwrap_or(u16::MAX));
        self.source_failure(r.source_ip, failure, now, now_ms, out);

        let Some(principal) = r.principal.as_deref().filter(|p| *p != ANONYMOUS) else {
            return;
        };
        let Some((profile, _)) = self.principals.get_or_insert(principal, now_ms) else {
            return;
        };
        let c = &self.config.failures;
        if let Some(seen) =
            profile
                .failures
                .record(now_ms, failure, c.per_principal, secs_to_ms(c.window_secs))
        {
            let subject = Subject::Principal(principal.to_string());
            out.push(burst_alert(
                &self.config,
                subject,
                c.per_principal,
                &seen,
                now,
            ));
        }
    }

    /// An HTTP/2 connection the gateway ended because its client broke the protocol: an
    /// alert about the principal it authenticated as (a workload whose credential runs
    /// attack tooling), or about its source address, unless one fired within the cool-down.
    /// A reset flood (most streams reset right after they started) is legal HTTP/2, and also
    /// what a client whose deadlines are shorter than a slow upstream's answers does: it is
    /// reported at informational level, which raises no risk by default, with a cool-down of
    /// its own.
    fn protocol_abuse(
        &mut self,
        r: &RejectionEvent,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        let subject = match r.principal.as_deref().filter(|p| *p != ANONYMOUS) {
            Some(principal) => Subject::Principal(principal.to_string()),
            None => Subject::Source(r.source_ip),
        };
        let flood = r.kind == RESET_FLOOD;
        let key = (subject, flood);
        let cooldown = secs_to_ms(self.config.protocol.cooldown_secs);
        let ended = match self.protocol.get_mut(&key) {
            Some(abuse) if now_ms.saturating_sub(abuse.alerted_ms) < cooldown => {
                abuse.since = abuse.since.saturating_add(1);
                return;
            }
            Some(abuse) => {
                let ended = abuse.since.saturating_add(1);
                *abuse = Abuse::alerted(now_ms);
                ended
            }
            None => {
                self.protocol.insert(key.clone(), Abuse::alerted(now_ms));
                1
            }
        };
        let earlier = if ended > 1 {
            format!("; {ended} connections ended so since the last alert on it")
        } else {
            String::new()
        };
        let (subject, _) = key;
        let (level, what) = if flood {
            (
                Level::Informational,
                "reset most of its HTTP/2 streams as soon as they started",
            )
        } else {
            (Level::Medium, "broke HTTP/2")
        };
        out.push(Alert {
            rule: rules::PROTOCOL_ABUSE.into(),
            level,
            explanation: format!(
                "{subject} {what} ({}) on listener {} from {}, and the gateway ended its \
                 connection{earlier}",
                r.kind, r.listener, r.source_ip
            ),
            evidence: json!({"kind": r.kind, "detail": r.detail, "listener": r.listener,
                             "source_ip": r.source_ip, "connections": ended}),
            subject,
            at: now,
        });
    }

    /// A failed sign-in step counts toward the source's burst and, when the person is known
    /// (a failed second factor), toward the person's.
    fn sign_in_failure(
        &mut self,
        a: &tenet_event::AuthenticationEvent,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        self.source_failure(a.source_ip, Failure::SignIn, now, now_ms, out);
        if a.user == "unknown" || a.user.is_empty() {
            return;
        }
        let Some((profile, _)) = self.principals.get_or_insert(&a.user, now_ms) else {
            return;
        };
        let c = &self.config.failures;
        if let Some(seen) = profile.failures.record(
            now_ms,
            Failure::SignIn,
            c.per_principal,
            secs_to_ms(c.window_secs),
        ) {
            let subject = Subject::Principal(a.user.clone());
            out.push(burst_alert(
                &self.config,
                subject,
                c.per_principal,
                &seen,
                now,
            ));
        }
    }

    fn source_failure(
        &mut self,
        ip: IpAddr,
        failure: Failure,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        if !self.sources.contains(&ip) {
            self.sources.insert(ip, Burst::default());
        }
        let Some(burst) = self.sources.get_mut(&ip) else {
            return;
        };
        let c = &self.config.failures;
        if let Some(seen) = burst.record(now_ms, failure, c.per_source, secs_to_ms(c.window_secs)) {
            out.push(burst_alert(
                &self.config,
                Subject::Source(ip),
                c.per_source,
                &seen,
                now,
            ));
        }
    }

    fn admin(
        &mut self,
        a: &AdminEvent,
        started_ms: i64,
        now: OffsetDateTime,
        now_ms: i64,
        out: &mut Vec<Alert>,
    ) {
        let c = &self.config;
        let judge = now_ms.saturating_sub(started_ms) >= secs_to_ms(c.learning.period_secs);
        let cooldown = secs_to_ms(c.escalation.admin_cooldown_secs);
        let Some(seen) = self
            .admins
            .observe(&a.actor, a.success, judge, now_ms, cooldown)
        else {
            return;
        };
        let outcome = if a.success { "succeeded" } else { "failed" };
        let usual = if seen.usual.is_empty() {
            "none".to_string()
        } else {
            seen.usual.join(", ")
        };
        out.push(Alert {
            rule: rules::UNUSUAL_ADMIN.into(),
            level: if a.success {
                Level::High
            } else {
                Level::Medium
            },
            subject: Subject::Principal(a.actor.clone()),
            explanation: format!(
                "{} attempted admin operation \"{}\" ({outcome}: {}); it has never performed an \
                 admin action successfully{}; actors that usually do: {usual}",
                a.actor,
                a.operation,
                a.detail,
                if seen.earlier_attempts {
                    ", and made failed attempts before"
                } else {
                    ""
                }
            ),
            evidence: json!({"operation": a.operation, "success": a.success,
                             "detail": a.detail, "usual_admin_actors": seen.usual}),
            at: now,
        });
    }

    fn new_right_alert(&self, a: &AccessEvent, right: &NewRight, now: OffsetDateTime) -> Alert {
        let policy = self.names.name(right.policy);
        let to = self.names.name(right.change.to);
        let from = right.change.from.map_or("none", |h| self.names.name(h));
        let changed_at = rfc3339_ms(right.change.at_ms);
        let basis = if right.declared {
            format!(
                "{} policy ids, as declared by the policy engine",
                right.previous_ids
            )
        } else {
            "inferred from the decisions observed under earlier sets".to_string()
        };
        Alert {
            rule: rules::PRIVILEGE_ESCALATION.into(),
            level: if right.declared {
                Level::High
            } else {
                Level::Medium
            },
            subject: Subject::Principal(a.principal.clone()),
            explanation: format!(
                "{} was allowed {} {}{} by policy \"{policy}\", which was not in the policy set \
                 in force before the change from {from} to {to} at {changed_at} (previous set: \
                 {basis})",
                a.principal, a.action, a.host, a.path,
            ),
            evidence: json!({"kind": "new_policy", "policy": policy, "method": a.action,
                             "host": a.host, "path": a.path, "route": a.route,
                             "policy_hash": to, "previous_policy_hash": from,
                             "changed_at": changed_at, "previous_set_declared": right.declared}),
            at: now,
        }
    }

    /// Raise the risk of each alert's subject (and, for a principal, of the certificate it
    /// presented), once per rule and subject per event; append threshold crossings.
    fn raise_for(
        &mut self,
        out: &mut Vec<Alert>,
        event: &Event,
        device: Option<&str>,
        now: OffsetDateTime,
        now_ms: i64,
    ) {
        let mut raised: Vec<(String, Subject)> = Vec::new();
        let mut crossings = Vec::new();
        for alert in out.iter_mut() {
            if let Value::Object(map) = &mut alert.evidence {
                map.insert("event_id".into(), json!(event.id.to_string()));
            }
            let points = self.config.points(alert.level);
            let mut subjects = vec![alert.subject.clone()];
            if let (Subject::Principal(_), Some(serial)) = (&alert.subject, device) {
                subjects.push(Subject::Device(serial.to_string()));
            }
            for subject in subjects {
                let key = (alert.rule.clone(), subject);
                if points == 0 || raised.contains(&key) {
                    continue;
                }
                let (before, after) = self.risk.raise(&key.1, points, &alert.rule, now_ms);
                crossings.extend(self.crossing(&key.1, before, after, &alert.rule, now));
                raised.push(key);
            }
        }
        out.extend(crossings);
    }

    fn crossing(
        &self,
        subject: &Subject,
        before: u8,
        after: u8,
        reason: &str,
        now: OffsetDateTime,
    ) -> Option<Alert> {
        let r = &self.config.risk;
        let (action, threshold, level, words) = if before < r.cut_off && after >= r.cut_off {
            (RiskAction::CutOff, r.cut_off, Level::Critical, "cut-off")
        } else if before < r.reauthenticate && after >= r.reauthenticate {
            (
                RiskAction::Reauthenticate,
                r.reauthenticate,
                Level::High,
                "re-authenticate",
            )
        } else {
            return None;
        };
        Some(Alert {
            rule: rules::RISK_THRESHOLD.into(),
            level,
            subject: subject.clone(),
            explanation: format!(
                "risk of {subject} rose from {before} to {after}, crossing the {words} \
                 threshold {threshold} (raised by {reason}; half-life {} s)",
                r.half_life_secs
            ),
            evidence: json!({"action": action, "before": before, "after": after,
                             "threshold": threshold, "reason": reason}),
            at: now,
        })
    }

    fn hash_id(&mut self, hash: &str) -> Option<NameId> {
        if let Some((last, id)) = &self.last_hash
            && **last == *hash
        {
            return Some(*id);
        }
        let id = self.names.intern(hash)?;
        self.last_hash = Some((hash.into(), id));
        Some(id)
    }
}

/// One request can show a new right in several ways at once (a policy that was not in the
/// earlier set, a route denied before the change): those are one escalation, so they become
/// one alert per subject, at the highest of their levels, with every explanation and the
/// other findings' evidence under `also`.
fn merge_escalations(out: &mut Vec<Alert>) {
    let mut merged: Vec<Alert> = Vec::with_capacity(out.len());
    for alert in out.drain(..) {
        let same = merged.iter_mut().find(|m| {
            m.rule == rules::PRIVILEGE_ESCALATION
                && m.rule == alert.rule
                && m.subject == alert.subject
        });
        let Some(first) = same else {
            merged.push(alert);
            continue;
        };
        first.level = first.level.max(alert.level);
        first.explanation = format!("{}; also, {}", first.explanation, alert.explanation);
        if let Value::Object(map) = &mut first.evidence {
            match map.get_mut("also") {
                Some(Value::Array(also)) => also.push(alert.evidence),
                _ => {
                    map.insert("also".into(), Value::Array(vec![alert.evidence]));
                }
            }
        }
    }
    *out = merged;
}

/// A subject's protocol abuse since its last alert.
#[derive(Debug, Clone, Copy)]
struct Abuse {
    /// When the last alert about it fired.
    alerted_ms: i64,
    /// Connections ended since, not yet reported.
    since: u32,
}

impl Abuse {
    /// An alert fired at `now_ms`.
    fn alerted(now_ms: i64) -> Self {
        Self {
            alerted_ms: now_ms,
            since: 0,
        }
    }
}

fn burst_alert(
    config: &AnalyticsConfig,
    subject: Subject,
    threshold: u32,
    seen: &BurstSeen,
    now: OffsetDateTime,
) -> Alert {
    let c = &config.failures;
    let mut counts: Vec<(String, usize)> = Vec::new();
    for failure in &seen.kinds {
        let label = match failure {
            Failure::Denied => "denied by policy",
            Failure::NoRoute => "no route",
            Failure::SignIn => "failed sign-in",
            Failure::Tls(i) => c
                .tls_kinds
                .get(usize::from(*i))
                .map_or("tls", String::as_str),
        };
        match counts.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label.to_string(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let breakdown: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    let what = match &subject {
        Subject::Source(_) => "failed authentication or authorization",
        _ => "was refused",
    };
    Alert {
        rule: rules::AUTH_FAILURE_BURST.into(),
        level: Level::Medium,
        explanation: format!(
            "{subject} {what} {} times within {:.1} s (threshold {threshold} per {} s): {}",
            seen.count,
            seen.span_ms as f64 / 1000.0,
            c.window_secs,
            breakdown.join(", ")
        ),
        evidence: json!({"failures": seen.count, "span_ms": seen.span_ms,
                         "window_secs": c.window_secs, "threshold": threshold,
                         "kinds": counts.iter().map(|(l, n)| json!({"kind": l, "count": n}))
                             .collect::<Vec<_>>()}),
        subject,
        at: now,
    }
}

/// `now` as milliseconds since the Unix epoch, saturating far outside any real clock.
fn millis(now: OffsetDateTime) -> i64 {
    let ms = now.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
