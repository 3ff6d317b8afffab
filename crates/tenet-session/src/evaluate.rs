//! Continuous evaluation: on every request, decide from fresh signals whether the session may
//! go on, needs a step-up, or must end.
//!
//! Call [`evaluate`] *before* [`crate::SessionStore::touch`], so the session still holds the
//! previous request's address and time.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::session::{Origin, Reason, ReasonCode, Session, SessionState};
use crate::sites::{SiteTable, distance_km};

/// A summary of the device's posture, as the device service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostureSummary {
    /// Whether the device meets the posture policy.
    pub compliant: bool,
    /// How old the latest posture report is.
    pub age: Duration,
    /// Whether the posture changed since the person signed in.
    pub changed_since_login: bool,
}

/// What is known about the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// The request's source address.
    pub ip: IpAddr,
    /// The device's posture, when the session has a device.
    pub posture: Option<PostureSummary>,
    /// The detection risk score, 0-100.
    pub risk: u8,
}

/// What a bad posture leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostureAction {
    /// Ask for a fresh phishing-resistant factor.
    StepUp,
    /// End the session.
    End,
}

/// The evaluation rules. [`Rules::default`] is the safe starting point.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Ask for a step-up when the source network (IPv4 /24, IPv6 /64) changes.
    pub step_up_on_network_change: bool,
    /// What a non-compliant or stale posture leads to.
    pub posture_action: PostureAction,
    /// A posture report older than this is stale.
    pub posture_max_age: Duration,
    /// A risk at or above this asks for a step-up.
    pub risk_step_up: u8,
    /// A risk at or above this ends the session.
    pub risk_end: u8,
    /// Known networks and where they are, for impossible travel.
    pub sites: SiteTable,
    /// Moving between sites faster than this (km/h) ends the session.
    pub max_speed_kmh: f64,
}

impl Default for Rules {
    /// Network change → step-up; bad posture → step-up; posture older than 24 h is stale;
    /// risk ≥ 50 → step-up, ≥ 80 → end; no sites; 1000 km/h.
    fn default() -> Self {
        Self {
            step_up_on_network_change: true,
            posture_action: PostureAction::StepUp,
            posture_max_age: Duration::hours(24),
            risk_step_up: 50,
            risk_end: 80,
            sites: SiteTable::default(),
            max_speed_kmh: 1000.0,
        }
    }
}

/// An error in the rules.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RulesError {
    /// A threshold is over 100 or the step-up one exceeds the end one.
    #[error("risk thresholds must satisfy step_up {step_up} <= end {end} <= 100")]
    Thresholds {
        /// The step-up threshold.
        step_up: u8,
        /// The end threshold.
        end: u8,
    },
    /// The speed is not a positive number.
    #[error("maximum travel speed must be a positive number of km/h")]
    Speed,
    /// The posture age is not positive.
    #[error("posture maximum age must be positive")]
    PostureAge,
}

impl Rules {
    /// Checks the rules; a configuration loader calls this before using them.
    pub fn validate(&self) -> Result<(), RulesError> {
        if self.risk_step_up > self.risk_end || self.risk_end > 100 {
            return Err(RulesError::Thresholds {
                step_up: self.risk_step_up,
                end: self.risk_end,
            });
        }
        if !(self.max_speed_kmh.is_finite() && self.max_speed_kmh > 0.0) {
            return Err(RulesError::Speed);
        }
        if self.posture_max_age <= Duration::ZERO {
            return Err(RulesError::PostureAge);
        }
        Ok(())
    }
}

/// The outcome of evaluating a session against a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The session may be used.
    Allow,
    /// The session needs a fresh phishing-resistant factor first.
    StepUp {
        /// Why.
        reason: Reason,
    },
    /// The session must end.
    End {
        /// Why.
        reason: Reason,
    },
}

/// Evaluates a session against the current request's signals. The most severe finding wins
/// (end over step-up over allow); a session already waiting for a step-up stays so.
pub fn evaluate(
    session: &Session,
    signals: &Signals,
    rules: &Rules,
    now: OffsetDateTime,
) -> Verdict {
    let mut findings = Vec::new();
    findings.extend(impossible_travel(session, signals, rules, now));
    findings.extend(risk(session, signals, rules));
    findings.extend(posture(signals, rules));
    findings.extend(network_change(session, signals, rules));

    let end = findings
        .iter()
        .find(|(severity, _)| *severity == Severity::End);
    let step_up = findings
        .iter()
        .find(|(severity, _)| *severity == Severity::StepUp);
    let verdict = match (end, step_up, &session.state) {
        (Some((_, reason)), _, _) => Verdict::End {
            reason: reason.clone(),
        },
        (None, Some((_, reason)), _) => Verdict::StepUp {
            reason: reason.clone(),
        },
        (None, None, SessionState::StepUpRequired { reason }) => Verdict::StepUp {
            reason: Reason::new(
                ReasonCode::StepUpPending,
                format!("step-up pending ({reason})"),
            ),
        },
        (None, None, SessionState::SecondFactorPending { .. }) => Verdict::StepUp {
            reason: Reason::new(
                ReasonCode::StepUpPending,
                "the second factor of the sign-in is still missing",
            ),
        },
        (None, None, SessionState::Active) => Verdict::Allow,
    };
    log_verdict(session, &verdict);
    verdict
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    StepUp,
    End,
}

type Finding = (Severity, Reason);

fn network_change(session: &Session, signals: &Signals, rules: &Rules) -> Option<Finding> {
    let now_from = Origin::of(signals.ip);
    if !rules.step_up_on_network_change || now_from.network == session.last_from.network {
        return None;
    }
    let text = format!(
        "source network changed from {} to {}",
        session.last_from.network, now_from.network
    );
    Some((
        Severity::StepUp,
        Reason::new(ReasonCode::NetworkChanged, text),
    ))
}

/// Risk at or over the end threshold ends the session. Over the step-up threshold it asks for
/// a step-up only when it grew since the session last went through (`session.risk`, recorded
/// by every allowed request and by a step-up), so one confirmation holds until the risk rises
/// again instead of asking on every request while the score decays.
fn risk(session: &Session, signals: &Signals, rules: &Rules) -> Option<Finding> {
    let score = signals.risk;
    if score >= rules.risk_end {
        let text = format!("risk {score} reached the end threshold {}", rules.risk_end);
        Some((Severity::End, Reason::new(ReasonCode::RiskEnd, text)))
    } else if score >= rules.risk_step_up && score > session.risk {
        let text = format!(
            "risk {score} reached the step-up threshold {}",
            rules.risk_step_up
        );
        Some((Severity::StepUp, Reason::new(ReasonCode::RiskStepUp, text)))
    } else {
        None
    }
}

fn posture(signals: &Signals, rules: &Rules) -> Option<Finding> {
    let posture = signals.posture?;
    let severity = match rules.posture_action {
        PostureAction::StepUp => Severity::StepUp,
        PostureAction::End => Severity::End,
    };
    if !posture.compliant {
        let when = if posture.changed_since_login {
            "turned"
        } else {
            "is"
        };
        let text = format!("device posture {when} non-compliant");
        return Some((severity, Reason::new(ReasonCode::PostureNoncompliant, text)));
    }
    if posture.age > rules.posture_max_age {
        let text = format!(
            "device posture report is {} old, limit {}",
            posture.age, rules.posture_max_age
        );
        return Some((severity, Reason::new(ReasonCode::PostureStale, text)));
    }
    None
}

fn impossible_travel(
    session: &Session,
    signals: &Signals,
    rules: &Rules,
    now: OffsetDateTime,
) -> Option<Finding> {
    let from = rules.sites.site_of(session.last_from.ip)?;
    let to = rules.sites.site_of(signals.ip)?;
    if from.name == to.name {
        return None;
    }
    let km = distance_km(from, to);
    let hours = (now - session.last_seen).as_seconds_f64() / 3600.0;
    let speed = if hours > 0.0 {
        km / hours
    } else if km > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    // Written as "not within" so that a NaN speed or limit ends the session (fail closed).
    if speed <= rules.max_speed_kmh {
        return None;
    }
    let text = format!(
        "moved from site '{}' to '{}' ({km:.0} km) at {speed:.0} km/h, limit {:.0} km/h",
        from.name, to.name, rules.max_speed_kmh
    );
    Some((
        Severity::End,
        Reason::new(ReasonCode::ImpossibleTravel, text),
    ))
}

fn log_verdict(session: &Session, verdict: &Verdict) {
    match verdict {
        Verdict::Allow => tracing::debug!(session = %session.handle, "session allowed"),
        Verdict::StepUp { reason } => {
            let code = reason.code.as_str();
            let detail = &reason.text;
            tracing::info!(session = %session.handle, reason = code, %detail, "step-up needed");
        }
        Verdict::End { reason } => {
            let code = reason.code.as_str();
            let detail = &reason.text;
            tracing::info!(session = %session.handle, reason = code, %detail, "session to end");
        }
    }
}
