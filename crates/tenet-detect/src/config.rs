//! Configuration of the analytics, with defaults chosen to be quiet and bounded.

use serde::{Deserialize, Serialize};

use crate::Level;

/// Everything the analytics can be tuned with. Durations are in seconds. Every field has a
/// default (see [`AnalyticsConfig::default`]), so a configuration file names only what it
/// changes; unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// How a principal's baseline is learned.
    pub learning: LearningConfig,
    /// Authentication- and authorization-failure bursts.
    pub failures: FailureConfig,
    /// Lateral movement: novelty and fan-out.
    pub lateral: LateralConfig,
    /// Privilege escalation after a policy change, unusual admin actions.
    pub escalation: EscalationConfig,
    /// Request-rate deviation.
    pub rate: RateConfig,
    /// Hours of activity and source networks.
    pub habits: HabitConfig,
    /// Protocol abuse: connections the gateway ended for breaking HTTP/2.
    pub protocol: ProtocolConfig,
    /// Risk scores.
    pub risk: RiskConfig,
    /// Memory caps.
    pub limits: LimitConfig,
}

/// How long a baseline is learned before novelty raises alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningConfig {
    /// Time from a principal's first event (or, for admin actors, from the first event the
    /// analytics saw) until its baseline counts. Default: 7 days.
    pub period_secs: u64,
    /// Events a principal must have made before its baseline counts. Default: 50.
    pub min_events: u32,
}

/// Failure bursts per principal and per source in a sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureConfig {
    /// The sliding window. Default: 60 s.
    pub window_secs: u64,
    /// Denials by one principal within the window that fire. Default: 10.
    pub per_principal: u32,
    /// Denials and refused handshakes from one source address within the window that fire.
    /// Default: 20.
    pub per_source: u32,
    /// The `kind`s of TLS-stage rejection events that count as authentication failures
    /// (bad, unknown or missing client certificates). Malformed TLS and closed connections
    /// are not authentication attempts and do not count.
    pub tls_kinds: Vec<String>,
}

/// Lateral movement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LateralConfig {
    /// Window for counting distinct services. Default: 300 s.
    pub fan_out_window_secs: u64,
    /// Distinct services within the window that fire, unless the principal's learned peak is
    /// higher. Default: 8.
    pub fan_out_services: u32,
    /// Most services, routes (and denied routes) remembered per principal; a principal that
    /// reaches more is too broad for novelty to mean anything and stops raising novelty
    /// alerts on that dimension. Default: 64.
    pub max_baseline_items: u32,
}

/// Privilege escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationConfig {
    /// How long after a policy change the use of a new policy id is reported. Default: 1 day.
    pub window_secs: u64,
    /// Minimum time between two unusual-admin alerts about the same actor. Default: 1 hour.
    pub admin_cooldown_secs: u64,
}

/// Request-rate deviation: an EWMA of the requests per bucket over the buckets in which the
/// principal was active, and its deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Bucket length. Default: 60 s.
    pub bucket_secs: u64,
    /// EWMA weight of each new bucket, in (0, 1]. Default: 0.1.
    pub alpha: f64,
    /// Standard deviations above the mean that fire. Default: 4.
    pub sigmas: f64,
    /// Requests in a bucket below which nothing fires, whatever the baseline. Default: 60.
    pub min_requests: u32,
    /// Active buckets needed before the rate baseline counts. Default: 10.
    pub min_buckets: u32,
}

/// Hours of activity and source networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HabitConfig {
    /// Whether activity at an unusual hour (UTC) fires. Default: true.
    pub hours: bool,
    /// Hours next to a usual hour that also count as usual. Default: 1.
    pub hour_tolerance: u8,
    /// Whether a never-seen source network fires. Default: true.
    pub networks: bool,
    /// IPv4 prefix length that makes one network. Default: 24.
    pub ipv4_prefix: u8,
    /// IPv6 prefix length that makes one network. Default: 64.
    pub ipv6_prefix: u8,
    /// Most networks remembered per principal (beyond it, no more network alerts for that
    /// principal). Default: 32.
    pub max_networks: u32,
}

/// Protocol abuse: each HTTP/2 connection the gateway ended because its client broke the
/// protocol fires, for the principal it authenticated as (or, without a client certificate,
/// for its source address), at most once per cool-down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Minimum time between two protocol-abuse alerts about the same subject; the
    /// connections ended meanwhile are counted in the next one. Default: 60 s.
    pub cooldown_secs: u64,
}

/// Risk scores: raised by alerts, decaying exponentially.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Time for a score to halve. Default: 1 hour.
    pub half_life_secs: u64,
    /// Points an informational alert adds. Default: 0.
    pub informational: u8,
    /// Points a low alert adds. Default: 5.
    pub low: u8,
    /// Points a medium alert adds. Default: 15.
    pub medium: u8,
    /// Points a high alert adds. Default: 30.
    pub high: u8,
    /// Points a critical alert adds. Default: 60.
    pub critical: u8,
    /// Score at or above which the subject should re-authenticate. Default: 50.
    pub reauthenticate: u8,
    /// Score at or above which the subject should be cut off. Default: 80.
    pub cut_off: u8,
}

/// Caps that keep memory bounded under a flood of distinct principals or addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitConfig {
    /// Principals tracked. Learned baselines may take four fifths of it and are never
    /// evicted by a new principal, so a flood of new identities cannot wipe them.
    /// Default: 20,000.
    pub max_principals: usize,
    /// Source addresses tracked for failure bursts. Default: 50,000.
    pub max_sources: usize,
    /// Subjects with a risk score. Default: 100,000.
    pub max_risk_subjects: usize,
    /// Admin actors remembered. Default: 1,000.
    pub max_admin_actors: usize,
    /// Policy sets (by hash) whose policy ids are remembered. Default: 16.
    pub max_policy_sets: usize,
    /// Policy ids remembered per policy set. Default: 10,000.
    pub max_policy_ids: usize,
    /// Distinct service, route and policy names remembered. Default: 65,536.
    pub max_names: usize,
}

impl Default for LearningConfig {
    fn default() -> Self {
        Self {
            period_secs: 7 * 24 * 3600,
            min_events: 50,
        }
    }
}

impl Default for FailureConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            per_principal: 10,
            per_source: 20,
            tls_kinds: [
                "no_client_certificate",
                "expired_certificate",
                "certificate_not_yet_valid",
                "unknown_issuer",
                "invalid_certificate",
                "unknown_trust_domain",
                "untrusted_chain",
                "wrong_key_usage",
                "malformed_certificate",
                "leaf_is_ca",
                "multiple_uri_sans",
                "no_uri_san",
                "not_svid",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl Default for LateralConfig {
    fn default() -> Self {
        Self {
            fan_out_window_secs: 300,
            fan_out_services: 8,
            max_baseline_items: 64,
        }
    }
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            window_secs: 24 * 3600,
            admin_cooldown_secs: 3600,
        }
    }
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            bucket_secs: 60,
            alpha: 0.1,
            sigmas: 4.0,
            min_requests: 60,
            min_buckets: 10,
        }
    }
}

impl Default for HabitConfig {
    fn default() -> Self {
        Self {
            hours: true,
            hour_tolerance: 1,
            networks: true,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            max_networks: 32,
        }
    }
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self { cooldown_secs: 60 }
    }
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            half_life_secs: 3600,
            informational: 0,
            low: 5,
            medium: 15,
            high: 30,
            critical: 60,
            reauthenticate: 50,
            cut_off: 80,
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            max_principals: 20_000,
            max_sources: 50_000,
            max_risk_subjects: 100_000,
            max_admin_actors: 1_000,
            max_policy_sets: 16,
            max_policy_ids: 10_000,
            max_names: 65_536,
        }
    }
}

/// A configuration value out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that must be positive is zero.
    #[error("analytics config: `{field}` must be greater than zero")]
    Zero {
        /// The offending key.
        field: &'static str,
    },
    /// A value outside its allowed range.
    #[error("analytics config: `{field}` must be {expected}, got {got}")]
    OutOfRange {
        /// The offending key.
        field: &'static str,
        /// The allowed range, in words.
        expected: &'static str,
        /// The value given.
        got: String,
    },
}

/// Longest window accepted: a year, so that millisecond arithmetic cannot overflow.
const MAX_SECS: u64 = 366 * 24 * 3600;

impl AnalyticsConfig {
    /// Check every value; the first one out of range is named in the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("learning.period_secs", self.learning.period_secs, true),
            ("failures.window_secs", self.failures.window_secs, false),
            (
                "lateral.fan_out_window_secs",
                self.lateral.fan_out_window_secs,
                false,
            ),
            ("escalation.window_secs", self.escalation.window_secs, false),
            (
                "escalation.admin_cooldown_secs",
                self.escalation.admin_cooldown_secs,
                true,
            ),
            ("rate.bucket_secs", self.rate.bucket_secs, false),
            ("protocol.cooldown_secs", self.protocol.cooldown_secs, true),
            ("risk.half_life_secs", self.risk.half_life_secs, false),
        ];
        for (field, value, zero_ok) in durations {
            if value == 0 && !zero_ok {
                return Err(ConfigError::Zero { field });
            }
            if value > MAX_SECS {
                return Err(out_of_range(field, "at most 31622400 (a year)", value));
            }
        }
        let counts = [
            ("failures.per_principal", self.failures.per_principal),
            ("failures.per_source", self.failures.per_source),
            ("lateral.fan_out_services", self.lateral.fan_out_services),
            (
                "lateral.max_baseline_items",
                self.lateral.max_baseline_items,
            ),
            ("habits.max_networks", self.habits.max_networks),
        ];
        for (field, value) in counts {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
            if value > 100_000 {
                return Err(out_of_range(field, "at most 100000", value));
            }
        }
        let limits = [
            ("limits.max_principals", self.limits.max_principals),
            ("limits.max_sources", self.limits.max_sources),
            ("limits.max_risk_subjects", self.limits.max_risk_subjects),
            ("limits.max_admin_actors", self.limits.max_admin_actors),
            ("limits.max_policy_sets", self.limits.max_policy_sets),
            ("limits.max_policy_ids", self.limits.max_policy_ids),
            ("limits.max_names", self.limits.max_names),
        ];
        for (field, value) in limits {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        self.validate_rate()?;
        self.validate_habits()?;
        self.validate_risk()
    }

    fn validate_rate(&self) -> Result<(), ConfigError> {
        let r = &self.rate;
        if !(r.alpha > 0.0 && r.alpha <= 1.0) {
            return Err(out_of_range("rate.alpha", "in (0, 1]", r.alpha));
        }
        if !(r.sigmas.is_finite() && r.sigmas >= 0.0) {
            return Err(out_of_range(
                "rate.sigmas",
                "a finite number >= 0",
                r.sigmas,
            ));
        }
        Ok(())
    }

    fn validate_habits(&self) -> Result<(), ConfigError> {
        let h = &self.habits;
        if h.hour_tolerance > 11 {
            return Err(out_of_range(
                "habits.hour_tolerance",
                "in 0..=11",
                h.hour_tolerance,
            ));
        }
        if !(1..=32).contains(&h.ipv4_prefix) {
            return Err(out_of_range(
                "habits.ipv4_prefix",
                "in 1..=32",
                h.ipv4_prefix,
            ));
        }
        if !(1..=128).contains(&h.ipv6_prefix) {
            return Err(out_of_range(
                "habits.ipv6_prefix",
                "in 1..=128",
                h.ipv6_prefix,
            ));
        }
        Ok(())
    }

    fn validate_risk(&self) -> Result<(), ConfigError> {
        let r = &self.risk;
        let points = [
            ("risk.informational", r.informational),
            ("risk.low", r.low),
            ("risk.medium", r.medium),
            ("risk.high", r.high),
            ("risk.critical", r.critical),
            ("risk.reauthenticate", r.reauthenticate),
            ("risk.cut_off", r.cut_off),
        ];
        for (field, value) in points {
            if value > 100 {
                return Err(out_of_range(field, "in 0..=100", value));
            }
        }
        if r.reauthenticate == 0 {
            return Err(ConfigError::Zero {
                field: "risk.reauthenticate",
            });
        }
        if r.cut_off < r.reauthenticate {
            return Err(out_of_range(
                "risk.cut_off",
                "at least risk.reauthenticate",
                r.cut_off,
            ));
        }
        Ok(())
    }

    /// The risk points an alert of `level` adds.
    pub(crate) fn points(&self, level: Level) -> u8 {
        let r = &self.risk;
        match level {
            Level::Informational => r.informational,
            Level::Low => r.low,
            Level::Medium => r.medium,
            Level::High => r.high,
            Level::Critical => r.critical,
        }
    }
}

fn out_of_range(field: &'static str, expected: &'static str, got: impl ToString) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        expected,
        got: got.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(AnalyticsConfig::default().validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = AnalyticsConfig::default();
        c.rate.alpha = 1.5;
        let e = c.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "analytics config: `rate.alpha` must be in (0, 1], got 1.5"
        );

        let mut c = AnalyticsConfig::default();
        c.failures.window_secs = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("failures.window_secs")
        );

        let mut c = AnalyticsConfig::default();
        c.risk.cut_off = 10;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("risk.cut_off")
        );

        let mut c = AnalyticsConfig::default();
        c.rate.sigmas = f64::NAN;
        assert!(c.validate().is_err());

        let mut c = AnalyticsConfig::default();
        c.learning.period_secs = u64::MAX;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("learning.period_secs")
        );
    }

    #[test]
    fn partial_config_takes_defaults_and_unknown_keys_are_refused() {
        let c: AnalyticsConfig =
            serde_json::from_str(r#"{"risk": {"half_life_secs": 600}}"#).unwrap();
        assert_eq!(c.risk.half_life_secs, 600);
        assert_eq!(c.risk.cut_off, 80);
        assert_eq!(c.limits, LimitConfig::default());

        let e = serde_json::from_str::<AnalyticsConfig>(r#"{"risk": {"halflife": 600}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("halflife"), "{e}");
    }
}
