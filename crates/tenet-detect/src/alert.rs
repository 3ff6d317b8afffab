//! What the analytics report: alerts about a subject, each with its explanation.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The rule ids of the built-in analytics (`<domain>.<kebab-name>`).
pub mod rules {
    /// Many authentication or authorization failures from one principal or source in a window.
    pub const AUTH_FAILURE_BURST: &str = "tenet.auth-failure-burst";
    /// A principal reached a service or route outside its learned baseline.
    pub const LATERAL_MOVEMENT: &str = "tenet.lateral-movement";
    /// A principal reached many distinct services in a short window.
    pub const SERVICE_FAN_OUT: &str = "tenet.service-fan-out";
    /// A right used for the first time after a policy change: a policy id that was not in the
    /// previous set, or a route the principal was denied under the previous set.
    pub const PRIVILEGE_ESCALATION: &str = "tenet.privilege-escalation";
    /// An admin action by a principal that does not usually perform admin actions.
    pub const UNUSUAL_ADMIN: &str = "tenet.unusual-admin";
    /// A request rate far above the principal's learned rate.
    pub const RATE_ANOMALY: &str = "tenet.rate-anomaly";
    /// Activity at an hour of the day the principal is not active at.
    pub const UNUSUAL_HOUR: &str = "tenet.unusual-hour";
    /// Activity from a network (/24 or /64) never seen for the principal.
    pub const NEW_SOURCE_NETWORK: &str = "tenet.new-source-network";
    /// A client broke HTTP/2 (malformed frames, flow-control overruns, streams reset faster
    /// than they are served) and the gateway ended its connection.
    pub const PROTOCOL_ABUSE: &str = "tenet.protocol-abuse";
    /// A risk score crossed the re-authenticate or cut-off threshold.
    pub const RISK_THRESHOLD: &str = "tenet.risk-threshold";

    /// Every rule id the built-in analytics raise.
    pub const ALL: [&str; 10] = [
        AUTH_FAILURE_BURST,
        LATERAL_MOVEMENT,
        SERVICE_FAN_OUT,
        PRIVILEGE_ESCALATION,
        UNUSUAL_ADMIN,
        RATE_ANOMALY,
        UNUSUAL_HOUR,
        NEW_SOURCE_NETWORK,
        PROTOCOL_ABUSE,
        RISK_THRESHOLD,
    ];
}

/// How serious an alert is, in Sigma's vocabulary. Ordered:
/// `Informational < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth recording; raises no risk by default.
    Informational,
    /// Unusual but often benign.
    Low,
    /// Suspicious; worth a look.
    Medium,
    /// Likely hostile or a policy breach.
    High,
    /// Act now.
    Critical,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        })
    }
}

/// Who or what an alert or a risk score is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Subject {
    /// A caller identity: a SPIFFE ID, or an admin actor such as `local-cli`.
    Principal(String),
    /// A login session, by its id (given by the session layer through [`crate::Analytics::raise`]).
    Session(String),
    /// A device or workload credential: for gateway events, the client certificate serial.
    Device(String),
    /// A network peer address.
    Source(IpAddr),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Principal(p) => write!(f, "principal {p}"),
            Subject::Session(s) => write!(f, "session {s}"),
            Subject::Device(d) => write!(f, "device {d}"),
            Subject::Source(ip) => write!(f, "source {ip}"),
        }
    }
}

/// One alert: what was seen, against which baseline and threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule that fired, one of [`rules`].
    pub rule: String,
    /// How serious it is.
    pub level: Level,
    /// Who it is about.
    pub subject: Subject,
    /// One or two sentences: what was seen, the baseline, the threshold.
    pub explanation: String,
    /// The same facts as structured data, plus the id of the event that fired it.
    pub evidence: serde_json::Value,
    /// When it fired (the `now` given to [`crate::Analytics::observe`]).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_serialise_for_playbooks_and_back() {
        let alert = Alert {
            rule: rules::AUTH_FAILURE_BURST.into(),
            level: Level::Medium,
            subject: Subject::Source("203.0.113.9".parse().unwrap()),
            explanation: "x".into(),
            evidence: serde_json::json!({"failures": 20}),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(json["level"], "medium");
        assert_eq!(
            json["subject"],
            serde_json::json!({"type": "source", "id": "203.0.113.9"})
        );
        assert_eq!(json["at"], "1970-01-01T00:00:00Z");
        assert_eq!(serde_json::from_value::<Alert>(json).unwrap(), alert);
        assert!(Level::Low < Level::High);
        assert_eq!(Subject::Device("0a".into()).to_string(), "device 0a");
    }
}
