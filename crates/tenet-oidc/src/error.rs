//! Errors of the relying-party flow: discovery, login completion and token exchange.

use crate::config::ConfigError;
use crate::http::HttpError;
use crate::keys::KeyError;
use crate::token::TokenError;

/// Why discovery or a login failed. Each variant says who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Our configuration is wrong (operator).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The provider could not be reached or answered badly over HTTP (retry may help).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The discovery document is unusable (provider).
    #[error("discovery document of {issuer:?} is unusable: {problem}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What is wrong.
        problem: String,
    },
    /// The discovery document names another issuer than the configured one (provider or
    /// operator; possibly an attack).
    #[error("discovery document issuer {discovered:?} is not the configured {configured:?}")]
    IssuerMismatch {
        /// The configured issuer.
        configured: String,
        /// The issuer in the document.
        discovered: String,
    },
    /// The JWKS document is unusable (provider).
    #[error("JWKS of {issuer:?} is unusable: {source}")]
    Jwks {
        /// The configured issuer.
        issuer: String,
        /// The cause.
        #[source]
        source: KeyError,
    },
    /// No client authentication method we can use is offered (operator or provider).
    #[error("provider offers no usable token endpoint authentication ({offered:?})")]
    UnsupportedClientAuth {
        /// The methods the provider offers.
        offered: Vec<String>,
    },
    /// The callback request is malformed (browser or attacker).
    #[error("callback is invalid: {0}")]
    InvalidCallback(&'static str),
    /// The provider refused the authorization (user or provider); `error` is its code.
    #[error("provider refused the authorization: {error}")]
    Denied {
        /// The provider's error code (e.g. `access_denied`).
        error: String,
        /// The provider's description, if any.
        description: Option<String>,
    },
    /// The pending login belongs to another provider (caller).
    #[error("pending login is for provider {found:?}, not {expected:?}")]
    WrongProvider {
        /// This provider's name.
        expected: String,
        /// The pending login's provider.
        found: String,
    },
    /// The pending login is older than allowed (user; start again).
    #[error("pending login has expired")]
    LoginExpired,
    /// The callback's `state` is not the pending login's (browser or attacker).
    #[error("callback state does not match the pending login")]
    StateMismatch,
    /// The callback's `iss` is not our issuer (mix-up attack or misconfiguration).
    #[error("callback issuer {found:?} is not {expected:?}")]
    CallbackIssuerMismatch {
        /// Our issuer.
        expected: String,
        /// The `iss` parameter received.
        found: String,
    },
    /// The token endpoint returned an OAuth error; `error` is its code (e.g. `invalid_grant`).
    #[error("token endpoint refused the code: {error}")]
    TokenEndpoint {
        /// The provider's error code.
        error: String,
        /// The provider's description, if any.
        description: Option<String>,
    },
    /// The token endpoint's answer could not be understood (provider).
    #[error("token endpoint response is invalid: {0}")]
    TokenResponse(String),
    /// The token response has no ID token (provider).
    #[error("token response has no id_token")]
    MissingIdToken,
    /// The ID token was refused.
    #[error("ID token refused: {0}")]
    IdToken(#[from] TokenError),
}

impl OidcError {
    /// Whether the same request may succeed later unchanged: the provider could not be
    /// reached, timed out, or answered with a server error (5xx, 408, 429). Everything else
    /// (an issuer other than the configured one, an unusable document or key set, a CA file
    /// that cannot be read, a 404) needs someone to change a configuration first.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http(e) => e.is_transient(),
            _ => false,
        }
    }

    /// A short stable reason code for logs and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Http(_) => "http",
            Self::Discovery { .. } => "discovery",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::Jwks { .. } => "jwks",
            Self::UnsupportedClientAuth { .. } => "unsupported_client_auth",
            Self::InvalidCallback(_) => "invalid_callback",
            Self::Denied { .. } => "denied",
            Self::WrongProvider { .. } => "wrong_provider",
            Self::LoginExpired => "login_expired",
            Self::StateMismatch => "state_mismatch",
            Self::CallbackIssuerMismatch { .. } => "callback_issuer_mismatch",
            Self::TokenEndpoint { .. } => "token_endpoint",
            Self::TokenResponse(_) => "token_response",
            Self::MissingIdToken => "missing_id_token",
            Self::IdToken(e) => e.reason(),
        }
    }
}
