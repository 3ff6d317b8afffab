//! OpenID Connect relying party for Tenet's gateway, and bearer-token verification for its APIs.
//!
//! - [`Provider`]: discovery, the authorization-code flow with PKCE, ID token checks and JWKS
//!   rotation, producing an [`Identity`].
//! - [`ProviderSlot`]: a configured provider that may not be discovered yet, filled once
//!   discovery succeeds (retried with a capped exponential [`Backoff`]), so that a gateway
//!   starts while a provider is unreachable.
//! - [`BearerVerifier`]: `Authorization: Bearer` JWTs against a fixed key set, with a required
//!   audience and token kind per endpoint.
//!
//! Every key is bound to one algorithm when loaded; a token header never chooses the
//! algorithm or the key. Time is passed in by the caller.
#![warn(missing_docs)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod bearer;
mod config;
mod error;
mod http;
mod identity;
mod keys;
mod login;
mod provider;
mod slot;
mod token;

#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests_f008_f009;

pub use bearer::{BearerClaims, BearerPolicy, BearerVerifier, TokenKind, claimed_issuer};
pub use config::{
    ClientSecret, ConfigError, HttpLimits, JWKS_REFETCH_INTERVAL, JwsAlgorithm, ProviderConfig,
    UnsupportedAlgorithm,
};
pub use error::OidcError;
pub use http::{HttpClient, HttpError};
pub use identity::Identity;
pub use keys::{KeyError, KeySet, VerificationKey};
pub use login::{AuthorizationResponse, LoginRedirect, PendingLogin};
pub use provider::{KidRefetch, Provider, RefetchDone};
pub use slot::{Backoff, ProviderSlot};
pub use token::TokenError;
