//! Verification of `Authorization: Bearer` JWTs presented by API callers.
//!
//! One verifier per endpoint: it fixes the keys (each with its one algorithm), the issuer, the
//! audience (required, exact) and the kind of token the endpoint accepts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::config::ConfigError;
use crate::keys::KeySet;
use crate::token::{self, TokenError};

/// The kind of token an endpoint accepts, so that a token minted for one purpose is not taken
/// for another.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// The JOSE `typ` header must be this media type (e.g. `at+jwt`; compared without case,
    /// with an optional `application/` prefix).
    Typ(String),
    /// The `token_use` claim must equal this value exactly.
    TokenUse(String),
    /// Any kind: only for endpoints whose keys sign a single kind of token.
    Any,
}

impl TokenKind {
    fn check(&self, typ: Option<&str>, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let mismatch = |expected: &str, found: Option<&str>| TokenError::WrongTokenKind {
            expected: expected.to_owned(),
            found: found.map(str::to_owned),
        };
        match self {
            Self::Typ(expected) => match typ {
                Some(found) if media_type_eq(found, expected) => Ok(()),
                found => Err(mismatch(expected, found)),
            },
            Self::TokenUse(expected) => {
                let found = claims.get("token_use").and_then(Value::as_str);
                if found == Some(expected.as_str()) {
                    Ok(())
                } else {
                    Err(mismatch(expected, found))
                }
            }
            Self::Any => Ok(()),
        }
    }
}

fn media_type_eq(a: &str, b: &str) -> bool {
    fn short(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => t.get(12..).unwrap_or(t),
            _ => t,
        }
    }
    short(a).eq_ignore_ascii_case(short(b))
}

/// What one endpoint requires of a bearer token.
#[derive(Clone, Debug)]
pub struct BearerPolicy {
    /// Required `iss`, compared exactly; `None` only for a key set of a single issuer.
    pub issuer: Option<String>,
    /// Required audience: `aud` must be present and equal it or, as an array, contain it.
    pub audience: String,
    /// Required token kind.
    pub kind: TokenKind,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

impl BearerPolicy {
    /// A policy with no issuer check and a 30-second leeway.
    pub fn new(audience: impl Into<String>, kind: TokenKind) -> Self {
        Self {
            issuer: None,
            audience: audience.into(),
            kind,
            leeway: Duration::from_secs(30),
        }
    }

    /// Requires `iss` to equal `issuer`.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }
}

/// The claims of an accepted bearer token.
#[derive(Clone, Debug, PartialEq)]
pub struct BearerClaims {
    /// `iss`, if present.
    pub issuer: Option<String>,
    /// `sub`.
    pub subject: String,
    /// Every `aud` value.
    pub audiences: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// All claims, as sent.
    pub claims: Map<String, Value>,
}

/// Verifies bearer JWTs for one endpoint.
#[derive(Clone, Debug)]
pub struct BearerVerifier {
    keys: Arc<KeySet>,
    policy: BearerPolicy,
    leeway: i64,
}

impl BearerVerifier {
    /// A verifier over a fixed key set; the policy's issuer, audience and kind must be
    /// non-empty.
    pub fn new(keys: Arc<KeySet>, policy: BearerPolicy) -> Result<Self, ConfigError> {
        if policy.issuer.as_ref().is_some_and(String::is_empty) {
            return Err(ConfigError::invalid("issuer", "must not be empty"));
        }
        if policy.audience.is_empty() {
            return Err(ConfigError::invalid("audience", "must not be empty"));
        }
        let kind_empty = match &policy.kind {
            TokenKind::Typ(t) | TokenKind::TokenUse(t) => t.is_empty(),
            TokenKind::Any => false,
        };
        if kind_empty {
            return Err(ConfigError::invalid("kind", "must not be empty"));
        }
        let leeway = i64::try_from(policy.leeway.as_secs())
            .ok()
            .filter(|s| *s <= 300)
            .ok_or_else(|| ConfigError::invalid("leeway", "must be at most 300 seconds"))?;
        Ok(Self {
            keys,
            policy,
            leeway,
        })
    }

    /// Verifies the value of an `Authorization` header (`Bearer <token>`).
    pub fn verify_header(
        &self,
        authorization: &str,
        now: OffsetDateTime,
    ) -> Result<BearerClaims, TokenError> {
        let token = authorization
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(TokenError::Malformed("not a Bearer authorization"));
        match token {
            Ok(token) => self.verify(token, now),
            Err(error) => Err(self.refused(error)),
        }
    }

    /// Verifies a bearer token: signature, kind, issuer, audience, `exp`/`nbf`/`iat`, `sub`.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<BearerClaims, TokenError> {
        match self.check(token, now.unix_timestamp()) {
            Ok(claims) => {
                tracing::debug!(
                    subject = %claims.subject,
                    audience = %self.policy.audience,
                    "bearer token accepted"
                );
                Ok(claims)
            }
            Err(error) => Err(self.refused(error)),
        }
    }

    fn refused(&self, error: TokenError) -> TokenError {
        tracing::info!(
            audience = %self.policy.audience,
            reason = error.reason(),
            %error,
            "bearer token refused"
        );
        error
    }

    fn check(&self, token: &str, now: i64) -> Result<BearerClaims, TokenError> {
        let verified = token::verify(token, &self.keys)?;
        let claims = verified.claims;
        self.policy.kind.check(verified.typ.as_deref(), &claims)?;
        if let Some(issuer) = &self.policy.issuer {
            token::check_issuer(&claims, issuer)?;
        }
        let audiences = token::check_audience(&claims, &self.policy.audience)?;
        token::check_times(&claims, now, self.leeway, false)?;
        let expires_at = token::numeric_date(&claims, "exp")?.unwrap_or_default();
        let subject = token::required_str(&claims, "sub")?.to_owned();
        let issuer = claims.get("iss").and_then(Value::as_str).map(str::to_owned);
        Ok(BearerClaims {
            issuer,
            subject,
            audiences,
            expires_at,
            claims,
        })
    }
}

/// The issuer an `Authorization: Bearer` token claims, read without verifying it: only for
/// saying which provider a token that no provider accepted was meant for (for instance one
/// not discovered yet), never for accepting anything.
pub fn claimed_issuer(authorization: &str) -> Option<String> {
    let (scheme, token) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    token::unverified_issuer(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claimed_issuer_is_read_from_a_bearer_token_only() {
        use base64::Engine as _;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k1"}"#),
            b64(r#"{"iss":"https://idp.example.test","sub":"u"}"#),
            b64("not a signature")
        );
        assert_eq!(
            claimed_issuer(&format!("Bearer {token}")).as_deref(),
            Some("https://idp.example.test")
        );
        assert_eq!(
            claimed_issuer(&format!("bearer  {token}")).as_deref(),
            Some("https://idp.example.test")
        );
        assert_eq!(claimed_issuer(&format!("Basic {token}")), None);
        assert_eq!(claimed_issuer("Bearer not-a-jwt"), None);
        let no_iss = format!("{}.{}.x", b64(r#"{"alg":"RS256"}"#), b64(r#"{"sub":"u"}"#));
        assert_eq!(claimed_issuer(&format!("Bearer {no_iss}")), None);
    }

    #[test]
    fn media_types_compare_without_prefix_or_case() {
        assert!(media_type_eq("at+jwt", "application/AT+JWT"));
        assert!(media_type_eq("Application/at+jwt", "at+jwt"));
        assert!(!media_type_eq("JWT", "at+jwt"));
        assert!(!media_type_eq("", "at+jwt"));
    }

    #[test]
    fn policy_fields_must_be_set() {
        let keys = Arc::new(crate::test_keys::rsa_set("k1").0);
        let policy = |aud: &str| BearerPolicy::new(aud, TokenKind::Typ("at+jwt".into()));
        assert!(BearerVerifier::new(keys.clone(), policy("")).is_err());
        assert!(BearerVerifier::new(keys, policy("tenet-proxy")).is_ok());
    }
}
