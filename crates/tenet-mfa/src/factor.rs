//! The factor model the gateway and policy see: which kind of factor was used, and when.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A kind of second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorKind {
    /// A WebAuthn credential (passkey or security key), bound to the relying party's origin.
    #[serde(rename = "webauthn")]
    WebAuthn,
    /// A time-based one-time password (RFC 6238).
    Totp,
    /// A single-use recovery code.
    Recovery,
}

impl FactorKind {
    /// The stable name used in events, policy and storage: "webauthn", "totp" or "recovery".
    pub fn name(self) -> &'static str {
        match self {
            FactorKind::WebAuthn => "webauthn",
            FactorKind::Totp => "totp",
            FactorKind::Recovery => "recovery",
        }
    }

    /// Whether the factor resists phishing: only WebAuthn binds the proof to the origin.
    pub fn is_phishing_resistant(self) -> bool {
        matches!(self, FactorKind::WebAuthn)
    }
}

impl std::fmt::Display for FactorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A factor that was just used successfully.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    /// Which kind of factor.
    pub kind: FactorKind,
    /// When it was used (the clock passed in by the caller).
    #[serde(with = "time::serde::rfc3339")]
    pub used_at: OffsetDateTime,
    /// Whether this use verified the user (the WebAuthn UV flag: PIN or biometric). Only a
    /// WebAuthn assertion or registration can set it; TOTP and recovery codes never do.
    /// Records written before it existed read as false.
    #[serde(default)]
    pub user_verified: bool,
}

impl Factor {
    /// A factor of `kind` used at `used_at`, without user verification.
    pub fn new(kind: FactorKind, used_at: OffsetDateTime) -> Self {
        Factor {
            kind,
            used_at,
            user_verified: false,
        }
    }

    /// A WebAuthn use at `used_at`, with the UV flag of its authenticator data.
    pub fn webauthn(used_at: OffsetDateTime, user_verified: bool) -> Self {
        Factor {
            kind: FactorKind::WebAuthn,
            used_at,
            user_verified,
        }
    }

    /// Shorthand for [`FactorKind::is_phishing_resistant`].
    pub fn is_phishing_resistant(&self) -> bool {
        self.kind.is_phishing_resistant()
    }

    /// Shorthand for [`FactorKind::name`].
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_only_webauthn_resists_phishing() {
        let all = [FactorKind::WebAuthn, FactorKind::Totp, FactorKind::Recovery];
        let names: Vec<_> = all.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["webauthn", "totp", "recovery"]);
        let resistant: Vec<_> = all.iter().map(|k| k.is_phishing_resistant()).collect();
        assert_eq!(resistant, [true, false, false]);
        for kind in all {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn only_webauthn_records_user_verification_and_old_records_read_as_unverified() {
        let at = time::macros::datetime!(2026-12-04 10:00 UTC);
        assert!(!Factor::new(FactorKind::Totp, at).user_verified);
        assert!(Factor::webauthn(at, true).user_verified);
        assert!(!Factor::webauthn(at, false).user_verified);
        let old: Factor =
            serde_json::from_str(r#"{"kind":"webauthn","used_at":"2026-12-04T10:00:00Z"}"#)
                .unwrap();
        assert_eq!(old, Factor::webauthn(at, false));
    }
}
