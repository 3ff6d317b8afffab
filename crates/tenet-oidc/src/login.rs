//! The login transaction: what `begin` produces and `complete` consumes, and the callback.
//!
//! Storing a pending login and binding it to the browser is the session layer's job; this
//! module only makes it (with fresh random state, nonce and PKCE verifier) and reads callbacks.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use url::Url;

use crate::error::OidcError;

/// A login started at one provider and not yet completed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    #[serde(with = "time::serde::timestamp")]
    created_at: OffsetDateTime,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("state", &self.state)
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    pub(crate) fn new(provider: &str, return_to: String, now: OffsetDateTime) -> Self {
        Self {
            provider: provider.to_owned(),
            state: random_token(),
            nonce: random_token(),
            pkce_verifier: random_token(),
            return_to,
            created_at: now,
        }
    }

    /// Name of the provider the login was started at.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The `state` sent to the provider; the session layer may key the pending login by it.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Where the browser goes after a successful login (validated by the caller).
    pub fn return_to(&self) -> &str {
        &self.return_to
    }

    /// When the login was started.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    pub(crate) fn nonce(&self) -> &str {
        &self.nonce
    }

    pub(crate) fn pkce_verifier(&self) -> &str {
        &self.pkce_verifier
    }
}

/// 256 bits from the thread-local CSPRNG, base64url (43 characters, a valid PKCE verifier).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets through their SHA-256 digests, so timing says nothing about them.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// What `begin` returns: where to send the browser, and what to keep until the callback.
#[derive(Debug, Clone)]
pub struct LoginRedirect {
    /// The provider's authorization URL with all parameters.
    pub authorization_url: Url,
    /// The transaction to store, bound to the browser, until the callback.
    pub pending: PendingLogin,
}

/// The parameters of a successful authorization response (the redirect to our callback).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// The authorization code.
    pub code: String,
    /// The `state` echoed back.
    pub state: String,
    /// The `iss` parameter (RFC 9207), when the provider sends it.
    pub iss: Option<String>,
}

impl fmt::Debug for AuthorizationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationResponse")
            .field("state", &self.state)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

impl AuthorizationResponse {
    /// Reads the callback's query string; an `error` parameter becomes `OidcError::Denied`.
    ///
    /// Repeated parameters are refused rather than guessed at.
    pub fn from_query(query: &str) -> Result<Self, OidcError> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|(n, _)| *n == name) {
                return Err(OidcError::InvalidCallback("a parameter is repeated"));
            }
            seen.push((name.into_owned(), value.into_owned()));
        }
        let take = |name: &str| seen.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        if let Some(error) = take("error") {
            return Err(OidcError::Denied {
                error,
                description: take("error_description"),
            });
        }
        let code = take("code").filter(|c| !c.is_empty());
        let state = take("state").filter(|s| !s.is_empty());
        let (Some(code), Some(state)) = (code, state) else {
            return Err(OidcError::InvalidCallback("code or state is missing"));
        };
        Ok(Self {
            code,
            state,
            iss: take("iss"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_logins_are_fresh_and_round_trip() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let a = PendingLogin::new("corp", "/app".into(), now);
        let b = PendingLogin::new("corp", "/app".into(), now);
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.pkce_verifier, b.pkce_verifier);
        assert_eq!(a.pkce_verifier.len(), 43);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<PendingLogin>(&json).unwrap(), a);
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.nonce) && !shown.contains(&a.pkce_verifier));
    }

    #[test]
    fn callback_query_is_read_strictly() {
        let ok =
            AuthorizationResponse::from_query("code=c1&state=s1&iss=https%3A%2F%2Fidp").unwrap();
        assert_eq!((ok.code.as_str(), ok.state.as_str()), ("c1", "s1"));
        assert_eq!(ok.iss.as_deref(), Some("https://idp"));
        assert!(matches!(
            AuthorizationResponse::from_query("code=c1&state=s1&state=s2"),
            Err(OidcError::InvalidCallback(_))
        ));
        assert!(matches!(
            AuthorizationResponse::from_query("state=s1"),
            Err(OidcError::InvalidCallback(_))
        ));
        match AuthorizationResponse::from_query("error=access_denied&state=s1") {
            Err(OidcError::Denied { error, .. }) => assert_eq!(error, "access_denied"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
