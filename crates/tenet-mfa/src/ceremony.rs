//! WebAuthn registration and authentication ceremonies on top of webauthn-rs.
//!
//! `start_*` returns the JSON challenge for the browser and a serialisable pending state that
//! the server keeps; the user's record remembers the ceremony as open. `finish_*` closes it
//! first, so a pending state is good for exactly one attempt: a replayed state is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{debug, info};
use uuid::Uuid;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, CreationChallengeResponse,
    CredProtect, CredentialProtectionPolicy, PublicKeyCredential, PublicKeyCredentialHints,
    RegisterPublicKeyCredential, RegistrationState, RequestChallengeResponse,
    RequestRegistrationExtensions, UserVerificationPolicy,
};

use crate::credential::{Credential, CredentialKind};
use crate::factor::{Factor, FactorKind};
use crate::origin::OriginRefusal;
use crate::relying_party::{CEREMONY_TTL, RelyingParty, UserAccount};
use crate::store::UserFactors;

/// Why a ceremony was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The client origin or rpIdHash broke the F007 rule.
    #[error(transparent)]
    Origin(#[from] OriginRefusal),
    /// The browser's response is not the expected JSON.
    #[error("webauthn response is malformed: {reason}")]
    MalformedResponse {
        /// What could not be read.
        reason: String,
    },
    /// The pending state is unknown, already used (a replay), or was superseded.
    #[error("ceremony {ceremony} is not open (already used, replayed or unknown)")]
    NotOpen {
        /// The ceremony id from the pending state.
        ceremony: Uuid,
    },
    /// The pending state is older than the ceremony lifetime.
    #[error("ceremony {ceremony} expired at {expired_at}")]
    Expired {
        /// The ceremony id from the pending state.
        ceremony: Uuid,
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The pending state belongs to another user.
    #[error("ceremony {ceremony} was started for another user")]
    WrongUser {
        /// The ceremony id from the pending state.
        ceremony: Uuid,
    },
    /// Authentication was asked for a user with no registered credential.
    #[error("the user has no registered webauthn credential")]
    NoCredentials,
    /// The assertion is by a credential not registered for this user.
    #[error("credential {id:?} is not registered for this user")]
    UnknownCredential {
        /// The credential id presented, base64url.
        id: String,
    },
    /// The new credential is already registered for this user.
    #[error("credential {id:?} is already registered")]
    AlreadyRegistered {
        /// The credential id, base64url.
        id: String,
    },
    /// The signature counter did not increase: the authenticator may have been cloned.
    #[error("credential {id:?} counter went from {stored} to {presented}: possible clone")]
    CounterRegression {
        /// The credential id, base64url.
        id: String,
        /// The counter stored from the last use.
        stored: u32,
        /// The counter in this assertion.
        presented: u32,
    },
    /// User verification was required and not performed.
    #[error("user verification was required and not performed")]
    UserNotVerified,
    /// webauthn-rs refused the response (challenge, signature, attestation, flags...).
    #[error("webauthn verification failed: {source}")]
    Verification {
        /// The webauthn-rs error.
        #[source]
        source: WebauthnError,
    },
}

impl From<WebauthnError> for CeremonyError {
    fn from(source: WebauthnError) -> Self {
        match source {
            WebauthnError::UserNotVerified => CeremonyError::UserNotVerified,
            source => CeremonyError::Verification { source },
        }
    }
}

/// The server-side state of a registration in progress. Keep it server side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingRegistration {
    ceremony: Uuid,
    user_id: Uuid,
    kind: CredentialKind,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    state: RegistrationState,
}

/// The server-side state of an authentication in progress. Keep it server side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingAuthentication {
    ceremony: Uuid,
    user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    state: AuthenticationState,
}

impl PendingRegistration {
    /// The ceremony id.
    pub fn ceremony(&self) -> Uuid {
        self.ceremony
    }
}

impl PendingAuthentication {
    /// The ceremony id.
    pub fn ceremony(&self) -> Uuid {
        self.ceremony
    }
}

/// The result of a successful WebAuthn authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticationOutcome {
    /// The credential that signed, base64url.
    pub credential_id: String,
    /// Passkey or security key.
    pub kind: CredentialKind,
    /// Whether the user was verified (PIN or biometric) this time.
    pub user_verified: bool,
    /// The signature counter now stored.
    pub counter: u32,
    /// Whether the credential reports being backed up.
    pub backup_state: bool,
    /// The factor used, for the session and policy.
    pub factor: Factor,
}

#[derive(Deserialize)]
struct ClientData {
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default)]
    top_origin: Option<String>,
}

impl RelyingParty {
    /// Begin registering a credential of `kind` for `user`. Send the first value to the
    /// browser (`navigator.credentials.create`); keep the second until the response arrives.
    pub fn start_registration(
        &self,
        user: &mut UserFactors,
        account: &UserAccount,
        kind: CredentialKind,
        now: OffsetDateTime,
    ) -> Result<(CreationChallengeResponse, PendingRegistration), CeremonyError> {
        let exclude: Vec<_> = user
            .credentials
            .iter()
            .map(|c| c.raw_id().to_vec())
            .collect();
        let (policy, hints) = match kind {
            CredentialKind::Passkey => (UserVerificationPolicy::Required, None),
            CredentialKind::SecurityKey => (
                UserVerificationPolicy::Preferred,
                Some(vec![PublicKeyCredentialHints::SecurityKey]),
            ),
        };
        let builder = self
            .core
            .new_challenge_register_builder(
                user.webauthn_user_id.as_bytes(),
                &account.name,
                &account.display_name,
            )?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .require_resident_key(false)
            .user_verification_policy(policy)
            .reject_synchronised_authenticators(false)
            .exclude_credentials(Some(exclude))
            .hints(hints)
            .extensions(Some(registration_extensions()));
        let (challenge, state) = self.core.generate_challenge_register(builder)?;

        let (ceremony, expires_at) = user.open_ceremony(now, CEREMONY_TTL);
        let pending = PendingRegistration {
            ceremony,
            user_id: user.webauthn_user_id,
            kind,
            expires_at,
            state,
        };
        debug!(%ceremony, kind = kind.name(), "webauthn registration started");
        Ok((challenge, pending))
    }

    /// Finish a registration with the browser's JSON response. On success the credential is
    /// added to `user` and a copy returned.
    pub fn finish_registration(
        &self,
        user: &mut UserFactors,
        pending: &PendingRegistration,
        response_json: &str,
        now: OffsetDateTime,
    ) -> Result<Credential, CeremonyError> {
        let result = self.verify_registration(user, pending, response_json, now);
        match &result {
            Ok(cred) => {
                debug!(ceremony = %pending.ceremony, credential = cred.id(), "webauthn registration accepted")
            }
            Err(error) => {
                info!(ceremony = %pending.ceremony, %error, "webauthn registration refused")
            }
        }
        result
    }

    fn verify_registration(
        &self,
        user: &mut UserFactors,
        pending: &PendingRegistration,
        response_json: &str,
        now: OffsetDateTime,
    ) -> Result<Credential, CeremonyError> {
        close_ceremony(
            user,
            pending.ceremony,
            pending.user_id,
            pending.expires_at,
            now,
        )?;

        let reg: RegisterPublicKeyCredential = parse_json(response_json)?;
        self.check_client_data(&reg.response.client_data_json)?;
        let key = self.core.register_credential(&reg, &pending.state, None)?;
        if pending.kind == CredentialKind::Passkey && !key.user_verified {
            return Err(CeremonyError::UserNotVerified);
        }

        let credential = Credential::registered(pending.kind, key, now);
        if user
            .credentials
            .iter()
            .any(|c| c.raw_id() == credential.raw_id())
        {
            return Err(CeremonyError::AlreadyRegistered {
                id: credential.id().to_owned(),
            });
        }
        user.credentials.push(credential.clone());
        Ok(credential)
    }

    /// Begin authenticating `user` with any of their registered credentials.
    pub fn start_authentication(
        &self,
        user: &mut UserFactors,
        now: OffsetDateTime,
    ) -> Result<(RequestChallengeResponse, PendingAuthentication), CeremonyError> {
        if user.credentials.is_empty() {
            return Err(CeremonyError::NoCredentials);
        }
        // Passkeys keep their own "required" policy inside webauthn-rs even when the request
        // only prefers verification for the sake of security keys.
        let any_security_key = user
            .credentials
            .iter()
            .any(|c| c.kind() == CredentialKind::SecurityKey);
        let policy = if any_security_key {
            UserVerificationPolicy::Preferred
        } else {
            UserVerificationPolicy::Required
        };
        let keys = user.credentials.iter().map(|c| c.key().clone()).collect();
        let builder = self
            .core
            .new_challenge_authenticate_builder(keys, Some(policy))?
            .allow_backup_eligible_upgrade(false);
        let (challenge, state) = self.core.generate_challenge_authenticate(builder)?;

        let (ceremony, expires_at) = user.open_ceremony(now, CEREMONY_TTL);
        let pending = PendingAuthentication {
            ceremony,
            user_id: user.webauthn_user_id,
            expires_at,
            state,
        };
        debug!(%ceremony, "webauthn authentication started");
        Ok((challenge, pending))
    }

    /// Finish an authentication with the browser's JSON response. On success the stored
    /// counter and last use are updated in `user`.
    pub fn finish_authentication(
        &self,
        user: &mut UserFactors,
        pending: &PendingAuthentication,
        response_json: &str,
        now: OffsetDateTime,
    ) -> Result<AuthenticationOutcome, CeremonyError> {
        let result = self.verify_authentication(user, pending, response_json, now);
        match &result {
            Ok(outcome) => {
                debug!(ceremony = %pending.ceremony, credential = outcome.credential_id, "webauthn authentication accepted")
            }
            Err(error) => {
                info!(ceremony = %pending.ceremony, %error, "webauthn authentication refused")
            }
        }
        result
    }

    fn verify_authentication(
        &self,
        user: &mut UserFactors,
        pending: &PendingAuthentication,
        response_json: &str,
        now: OffsetDateTime,
    ) -> Result<AuthenticationOutcome, CeremonyError> {
        close_ceremony(
            user,
            pending.ceremony,
            pending.user_id,
            pending.expires_at,
            now,
        )?;

        let rsp: PublicKeyCredential = parse_json(response_json)?;
        self.check_client_data(&rsp.response.client_data_json)?;
        let rp_id_hash = rsp.response.authenticator_data.get(..32).ok_or_else(|| {
            CeremonyError::MalformedResponse {
                reason: "authenticatorData is shorter than 32 bytes".into(),
            }
        })?;
        self.rule.check_rp_id_hash(rp_id_hash)?;

        // Only credentials registered to this user now, not merely when the ceremony began.
        let presented_id = URL_SAFE_NO_PAD.encode(&rsp.raw_id);
        let unknown = || CeremonyError::UnknownCredential {
            id: presented_id.clone(),
        };
        let stored = user
            .credentials
            .iter_mut()
            .find(|c| c.raw_id() == rsp.raw_id.as_slice())
            .ok_or_else(unknown)?;

        let result = self
            .core
            .authenticate_credential(&rsp, &pending.state)
            .map_err(|e| match e {
                WebauthnError::CredentialNotFound => unknown(),
                WebauthnError::CredentialPossibleCompromise => CeremonyError::CounterRegression {
                    id: presented_id.clone(),
                    stored: stored.counter(),
                    presented: signature_counter(&rsp.response.authenticator_data),
                },
                other => other.into(),
            })?;

        // The state carries the counter as it was at start; compare with what is stored now.
        let presented = result.counter();
        if (presented != 0 || stored.counter() != 0) && presented <= stored.counter() {
            return Err(CeremonyError::CounterRegression {
                id: presented_id,
                stored: stored.counter(),
                presented,
            });
        }
        if stored.kind() == CredentialKind::Passkey && !result.user_verified() {
            return Err(CeremonyError::UserNotVerified);
        }

        stored.record_use(presented, result.backup_state(), now);
        Ok(AuthenticationOutcome {
            credential_id: presented_id,
            kind: stored.kind(),
            user_verified: result.user_verified(),
            counter: presented,
            backup_state: result.backup_state(),
            factor: Factor::new(FactorKind::WebAuthn, now),
        })
    }

    /// The F007 origin check and the cross-origin rule on clientDataJSON, before webauthn-rs
    /// sees it (webauthn-rs checks crossOrigin only at registration, and not topOrigin).
    fn check_client_data(&self, client_data_json: &[u8]) -> Result<(), CeremonyError> {
        let client: ClientData = serde_json::from_slice(client_data_json).map_err(|e| {
            CeremonyError::MalformedResponse {
                reason: format!("clientDataJSON: {e}"),
            }
        })?;
        self.rule.check_origin(&client.origin)?;
        self.rule.check_embedding(
            client.cross_origin.unwrap_or(false),
            client.top_origin.as_deref(),
        )?;
        Ok(())
    }
}

/// The extensions webauthn-rs itself asks for: credProtect (UV required, not enforced, as many
/// authenticators fail when it is), uvm and credProps.
fn registration_extensions() -> RequestRegistrationExtensions {
    RequestRegistrationExtensions {
        cred_protect: Some(CredProtect {
            credential_protection_policy: CredentialProtectionPolicy::UserVerificationRequired,
            enforce_credential_protection_policy: Some(false),
        }),
        uvm: Some(true),
        cred_props: Some(true),
        min_pin_length: None,
        hmac_create_secret: None,
    }
}

/// Close the ceremony before verifying anything, so a state can never be used twice.
fn close_ceremony(
    user: &mut UserFactors,
    ceremony: Uuid,
    user_id: Uuid,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), CeremonyError> {
    if user_id != user.webauthn_user_id {
        return Err(CeremonyError::WrongUser { ceremony });
    }
    if !user.close_ceremony(ceremony) {
        return Err(CeremonyError::NotOpen { ceremony });
    }
    if now > expires_at {
        return Err(CeremonyError::Expired {
            ceremony,
            expired_at: expires_at,
        });
    }
    Ok(())
}

/// The signature counter in authenticator data (bytes 33..37, big-endian), 0 if absent.
fn signature_counter(authenticator_data: &[u8]) -> u32 {
    authenticator_data
        .get(33..37)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, CeremonyError> {
    serde_json::from_str(json).map_err(|e| CeremonyError::MalformedResponse {
        reason: e.to_string(),
    })
}
