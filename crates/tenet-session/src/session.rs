//! What a session knows about the person behind it: identity, factors, device and origin.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::token::Handle;

/// The person, as the identity provider described them. Plain strings: this crate does not
/// depend on the OIDC client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    /// The issuer (`iss`) that vouched for the person.
    pub issuer: String,
    /// The subject (`sub`) at that issuer.
    pub subject: String,
    /// The e-mail address, when the provider gave one.
    pub email: Option<String>,
    /// A name to show, when the provider gave one.
    pub display_name: Option<String>,
    /// Group memberships.
    pub groups: Vec<String>,
    /// Further attributes (claim name → value).
    pub attributes: BTreeMap<String, String>,
}

impl UserIdentity {
    /// An identity with only issuer and subject set.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            email: None,
            display_name: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// The same identity with an e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}

/// One authentication factor the person used in this session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorUse {
    /// What it was (for example `oidc`, `webauthn`, `totp`).
    pub name: String,
    /// Whether the factor resists phishing (bound to the origin, like WebAuthn).
    pub phishing_resistant: bool,
    /// When it was used.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Whether this use verified the person (a WebAuthn sign-in whose authenticator reported
    /// user verification: PIN or biometric). Other factors never set it; sessions saved before
    /// it existed read as false.
    #[serde(default)]
    pub user_verified: bool,
}

impl FactorUse {
    /// A factor used at `at`, without user verification.
    pub fn new(name: impl Into<String>, phishing_resistant: bool, at: OffsetDateTime) -> Self {
        Self {
            name: name.into(),
            phishing_resistant,
            at,
            user_verified: false,
        }
    }

    /// The same use, recording whether it verified the person.
    pub fn with_user_verified(mut self, user_verified: bool) -> Self {
        self.user_verified = user_verified;
        self
    }
}

/// Where a request came from: the address and the network it belongs to (IPv4 /24, IPv6 /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The source address (IPv4-mapped IPv6 addresses are stored as IPv4).
    pub ip: IpAddr,
    /// The /24 or /64 network of that address.
    pub network: IpNet,
}

impl Origin {
    /// The origin of a request from `ip`.
    pub fn of(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Self {
            ip,
            network: network_of(ip),
        }
    }
}

/// The network a source address belongs to for "did the network change" purposes.
pub fn network_of(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new_assert(v4, 24).trunc()),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new_assert(v6, 64).trunc()),
    }
}

/// Why a verdict was reached: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The machine-readable code.
    pub code: ReasonCode,
    /// The explanation for people.
    pub text: String,
}

impl Reason {
    /// A reason with its code and text.
    pub fn new(code: ReasonCode, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.text)
    }
}

/// The stable machine codes of [`Reason`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasonCode {
    /// The request came from another /24 or /64 than the session's last one.
    NetworkChanged,
    /// The device reported itself non-compliant.
    PostureNoncompliant,
    /// The device's posture report is older than allowed.
    PostureStale,
    /// The detection risk reached the step-up threshold.
    RiskStepUp,
    /// The detection risk reached the end threshold.
    RiskEnd,
    /// The session moved between sites faster than anyone travels.
    ImpossibleTravel,
    /// A step-up was required and has not been satisfied yet.
    StepUpPending,
}

impl ReasonCode {
    /// The stable string form (`network_changed`, `risk_end`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NetworkChanged => "network_changed",
            ReasonCode::PostureNoncompliant => "posture_noncompliant",
            ReasonCode::PostureStale => "posture_stale",
            ReasonCode::RiskStepUp => "risk_step_up",
            ReasonCode::RiskEnd => "risk_end",
            ReasonCode::ImpossibleTravel => "impossible_travel",
            ReasonCode::StepUpPending => "step_up_pending",
        }
    }
}

/// Whether the session may be used as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    /// Usable.
    Active,
    /// Usable only for a step-up: a fresh phishing-resistant factor is required.
    StepUpRequired {
        /// Why the step-up was asked for.
        reason: Reason,
    },
    /// Signed in at the identity provider, but the second factor the sign-in requires has not
    /// been given yet. Usable only to give it, and only until `until`, when the session ends.
    /// Such half-done sessions are counted apart from completed ones (see
    /// [`crate::SessionStore::create_awaiting_second_factor`]).
    SecondFactorPending {
        /// When the session ends unless the second factor was given.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
}

/// A server-side session. The secret id is never part of it; only its [`Handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The SHA-256 handle of the current session id.
    pub handle: Handle,
    /// Who signed in.
    pub user: UserIdentity,
    /// Factors used, in order.
    pub factors: Vec<FactorUse>,
    /// The device the session is bound to, if any.
    pub device_id: Option<String>,
    /// When the person signed in.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When the session was last used.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Where the session started from.
    pub started_from: Origin,
    /// Where the session was last used from.
    pub last_from: Origin,
    /// The last detection risk seen for the session, 0-100.
    pub risk: u8,
    /// Whether the session is usable or needs a step-up.
    pub state: SessionState,
}

impl Session {
    /// Whether the sign-in is half done: the second factor it requires is still missing.
    pub fn awaits_second_factor(&self) -> bool {
        matches!(self.state, SessionState::SecondFactorPending { .. })
    }

    /// Whether a phishing-resistant factor was used at or after `since`.
    pub fn has_phishing_resistant_factor_since(&self, since: OffsetDateTime) -> bool {
        self.factors
            .iter()
            .any(|f| f.phishing_resistant && f.at >= since)
    }
}

/// What a new session starts with.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Who signed in.
    pub user: UserIdentity,
    /// The factors used to sign in.
    pub factors: Vec<FactorUse>,
    /// The device to bind the session to, if known.
    pub device_id: Option<String>,
    /// The source address of the login request.
    pub ip: IpAddr,
    /// The detection risk at login, 0-100.
    pub risk: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(
            network_of("192.0.2.77".parse().unwrap()).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2:3:4:5:6".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(
            Origin::of(mapped).ip,
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(network_of(mapped).to_string(), "192.0.2.0/24");
    }

    #[test]
    fn reason_codes_serialise_as_their_stable_strings() {
        for code in [
            ReasonCode::NetworkChanged,
            ReasonCode::PostureNoncompliant,
            ReasonCode::PostureStale,
            ReasonCode::RiskStepUp,
            ReasonCode::RiskEnd,
            ReasonCode::ImpossibleTravel,
            ReasonCode::StepUpPending,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
