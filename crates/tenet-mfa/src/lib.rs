//! Phishing-resistant MFA for Tenet: WebAuthn ceremonies (passkeys, security keys), TOTP as a
//! weaker fallback, and single-use recovery codes.
//!
//! The gateway signs a person in through an OpenID Connect provider, then asks this crate for a
//! second factor. The pieces are:
//!
//! - [`RelyingParty`]: the WebAuthn relying party, with the origin and rpId rules (case F007)
//!   enforced before and in addition to webauthn-rs's own checks;
//! - registration and authentication ceremonies ([`RelyingParty::start_registration`] and
//!   friends) that keep their server-side state in a serialisable pending value and refuse a
//!   replayed state;
//! - [`TotpEnrolment`] (RFC 6238, ±1 step, no step used twice) and [`RecoveryCodes`] (hashed,
//!   single use);
//! - [`Factor`], the record of which factor was used, when, and whether it verified the user
//!   (the WebAuthn UV flag), for the gateway and policy;
//! - [`FactorStore`], the per-user factors persisted as one JSON file.
//!
//! Time and randomness are passed in; the only I/O is [`FactorStore::open`] and
//! [`FactorStore::save`].
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod android_key;
mod ceremony;
mod cose;
mod credential;
mod extended;
mod factor;
mod origin;
mod recovery;
mod relying_party;
mod store;
mod totp;
mod tpm;

pub use ceremony::{
    AuthenticationOutcome, CeremonyError, PendingAuthentication, PendingRegistration,
};
pub use cose::{CoseAlgorithm, KeyError};
pub use credential::{Credential, CredentialKind};
pub use extended::ExtendedError;
pub use factor::{Factor, FactorKind};
pub use origin::OriginRefusal;
pub use recovery::{RecoveryCodes, RecoveryError};
pub use relying_party::{ConfigError, RelyingParty, RelyingPartyConfig, UserAccount};
pub use store::{FactorStore, StoreError, UserFactors};
pub use totp::{TotpAlgorithm, TotpEnrolment, TotpError, TotpSetup};

/// The browser-facing WebAuthn JSON types, re-exported so callers need not depend on
/// webauthn-rs directly.
pub mod json {
    pub use webauthn_rs_core::proto::{
        CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
        RequestChallengeResponse,
    };
}
