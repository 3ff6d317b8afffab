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
    AllowCredentials, AttestationConveyancePreference, AuthenticationState, COSEAlgorithm,
    CreationChallengeResponse, CredProtect, CredentialProtectionPolicy, PubKeyCredParams,
    PublicKeyCredential, PublicKeyCredentialHints, RegisterPublicKeyCredential, RegistrationState,
    RequestChallengeResponse, RequestRegistrationExtensions, UserVerificationPolicy,
};

use crate::cose::{CoseAlgorithm, PublicKey};
use crate::credential::{Credential, CredentialKind, Verifier};
use crate::extended::{self, AttestationObject, ExtendedError};
use crate::factor::Factor;
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
    /// The response's `type` is not `public-key`.
    #[error("credential type is {found:?}, expected \"public-key\"")]
    CredentialType {
        /// The type sent.
        found: String,
    },
    /// Tenet's own verifier (keys webauthn-rs cannot verify, cross-origin registrations)
    /// refused the response.
    #[error("webauthn verification failed: {0}")]
    Extended(ExtendedError),
    /// webauthn-rs refused the response (challenge, signature, attestation, flags...).
    #[error("webauthn verification failed: {source}")]
    Verification {
        /// The webauthn-rs error.
        #[source]
        source: WebauthnError,
    },
}

impl From<ExtendedError> for CeremonyError {
    fn from(source: ExtendedError) -> Self {
        match source {
            ExtendedError::UserNotVerified => CeremonyError::UserNotVerified,
            source => CeremonyError::Extended(source),
        }
    }
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
            .credential_algorithms(webauthn_rs_algorithms())
            .require_resident_key(false)
            .user_verification_policy(policy)
            .reject_synchronised_authenticators(false)
            .exclude_credentials(Some(exclude))
            .hints(hints)
            .extensions(Some(registration_extensions()));
        let (mut challenge, state) = self.core.generate_challenge_register(builder)?;
        // Ed448 (-53) has no webauthn-rs name; Tenet verifies it (and EdDSA, ES512) itself.
        let params = &mut challenge.public_key.pub_key_cred_params;
        for alg in CoseAlgorithm::OFFERED {
            if !params.iter().any(|p| p.alg == alg.id()) {
                params.push(PubKeyCredParams {
                    type_: "public-key".into(),
                    alg: alg.id(),
                });
            }
        }

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
        check_credential_type(&reg.type_)?;
        check_registration_ids(&reg)?;
        // webauthn-rs refuses an excluded id with an unrelated error; say what it is.
        if user
            .credentials
            .iter()
            .any(|c| c.raw_id() == reg.raw_id.as_slice())
        {
            return Err(CeremonyError::AlreadyRegistered {
                id: URL_SAFE_NO_PAD.encode(&reg.raw_id),
            });
        }
        let cross_origin = self.check_client_data(&reg.response.client_data_json)?;
        let credential = match self.tenet_registration(&reg, cross_origin)? {
            Some(object) => {
                // Tenet's own verifier: webauthn-rs cannot verify this key, or refuses every
                // cross-origin registration (the cross-origin rule was applied above).
                self.rule.check_rp_id_hash(&object.auth_data.rp_id_hash)?;
                let challenge = state_challenge(&pending.state)?;
                let registered = extended::verify_registration(
                    &object,
                    &reg.response.client_data_json,
                    &challenge,
                    &reg.raw_id,
                    pending.kind == CredentialKind::Passkey,
                )?;
                Credential::registered_by_tenet(pending.kind, registered, now)
            }
            None => {
                let key = self.core.register_credential(&reg, &pending.state, None)?;
                // webauthn-rs was offered EdDSA and ES512 only so that browsers may choose
                // them; it cannot verify their signatures, so it must never keep such a key.
                if matches!(key.cred.type_, COSEAlgorithm::EDDSA | COSEAlgorithm::ES521) {
                    return Err(CeremonyError::Verification {
                        source: WebauthnError::COSEKeyInvalidType,
                    });
                }
                if pending.kind == CredentialKind::Passkey && !key.user_verified {
                    return Err(CeremonyError::UserNotVerified);
                }
                Credential::registered(pending.kind, key, now)
            }
        };
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
        // webauthn-rs refuses an assertion without UV from a credential whose stored
        // registration_policy is "preferred" and that verified its user at registration
        // (core.rs: "registered UV=preferred, enforcing UV"), because its callers cannot tell
        // a verified sign-in from an unverified one. Tenet can: every sign-in records its UV
        // flag for policy (`context.session.user_verified`). So for this ceremony only, the
        // copies of security keys handed to webauthn-rs carry the "discouraged" registration
        // policy, under which webauthn-rs enforces UV only when the ceremony requires it. The
        // stored credentials are not changed; passkeys keep "required"; every other check
        // (challenge, origin, rpIdHash, UP, backup flags, signature, counter) is unchanged.
        let keys = user
            .credentials
            .iter()
            .filter_map(|c| {
                let mut key = c.key()?.clone();
                if c.kind() == CredentialKind::SecurityKey {
                    key.registration_policy = UserVerificationPolicy::Discouraged_DO_NOT_USE;
                }
                Some(key)
            })
            .collect();
        let builder = self
            .core
            .new_challenge_authenticate_builder(keys, Some(policy))?
            .allow_backup_eligible_upgrade(false);
        let (mut challenge, state) = self.core.generate_challenge_authenticate(builder)?;
        // Credentials Tenet verifies itself are not in webauthn-rs's state; the browser is
        // still told about them.
        for credential in user.credentials.iter().filter(|c| c.verified_by_tenet()) {
            challenge
                .public_key
                .allow_credentials
                .push(AllowCredentials {
                    type_: "public-key".into(),
                    id: credential.raw_id().to_vec(),
                    transports: None,
                });
        }

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
        check_credential_type(&rsp.type_)?;
        check_credential_id(&rsp.id, &rsp.raw_id)?;
        // webauthn-rs does not compare the userHandle; when present it must be this user's.
        if rsp
            .response
            .user_handle
            .as_deref()
            .is_some_and(|h| h != user_handle_bytes(user.webauthn_user_id).as_slice())
        {
            return Err(ExtendedError::UserHandleMismatch.into());
        }
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

        if let Verifier::Tenet(tenet) = &stored.verifier {
            let challenge = state_challenge(&pending.state)?;
            let required = state_policy(&pending.state)? == UserVerificationPolicy::Required;
            // A passkey must always verify its user; a security key only when the ceremony
            // requires it (the same rule as for webauthn-rs's credentials, see
            // start_authentication). Whether it did is recorded for policy.
            let require_uv = required || stored.kind() == CredentialKind::Passkey;
            let user_handle = user_handle_bytes(user.webauthn_user_id);
            let asserted = extended::verify_assertion(
                &extended::Stored {
                    public_key: &tenet.public_key,
                    backup_eligible: stored.backup_eligible(),
                    user_handle: &user_handle,
                },
                &rsp.response.client_data_json,
                &rsp.response.authenticator_data,
                &rsp.response.signature,
                rsp.response.user_handle.as_deref(),
                &challenge,
                require_uv,
            )?;
            let presented = asserted.counter;
            if (presented != 0 || stored.counter() != 0) && presented <= stored.counter() {
                return Err(CeremonyError::CounterRegression {
                    id: presented_id,
                    stored: stored.counter(),
                    presented,
                });
            }
            stored.record_use(presented, asserted.backup_state, now);
            return Ok(AuthenticationOutcome {
                credential_id: presented_id,
                kind: stored.kind(),
                user_verified: asserted.user_verified,
                counter: presented,
                backup_state: asserted.backup_state,
                factor: Factor::webauthn(now, asserted.user_verified),
            });
        }

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
            factor: Factor::webauthn(now, result.user_verified()),
        })
    }

    /// The F007 origin check and the cross-origin rule on clientDataJSON, before webauthn-rs
    /// sees it (webauthn-rs checks crossOrigin only at registration, and not topOrigin).
    /// Returns whether the ceremony is cross-origin (and was accepted as such).
    fn check_client_data(&self, client_data_json: &[u8]) -> Result<bool, CeremonyError> {
        let client: ClientData = serde_json::from_slice(client_data_json).map_err(|e| {
            CeremonyError::MalformedResponse {
                reason: format!("clientDataJSON: {e}"),
            }
        })?;
        self.rule.check_origin(&client.origin)?;
        let cross_origin = client.cross_origin.unwrap_or(false);
        self.rule
            .check_embedding(cross_origin, client.top_origin.as_deref())?;
        Ok(cross_origin)
    }
}

impl RelyingParty {
    /// Whether Tenet verifies this registration itself, and if so its attestation object: when
    /// it is cross-origin, its attestation format is `tpm`, or its credential key is one
    /// webauthn-rs cannot verify. A response
    /// whose key cannot be read is left to webauthn-rs (which refuses it) unless cross-origin.
    fn tenet_registration(
        &self,
        reg: &RegisterPublicKeyCredential,
        cross_origin: bool,
    ) -> Result<Option<AttestationObject>, CeremonyError> {
        let parsed = AttestationObject::parse(&reg.response.attestation_object);
        if cross_origin {
            return Ok(Some(parsed?));
        }
        let Ok(object) = parsed else {
            return Ok(None);
        };
        // webauthn-rs 0.6 refuses every TPM statement (it cannot hash attToBeSigned for
        // certInfo's extraData), and every android-key statement whose authorization lists do
        // not state origin and purpose (see `android_key.rs`), so these formats are Tenet's
        // whatever the key.
        let beyond_webauthn_rs = object.fmt == "tpm"
            || object.fmt == "android-key"
            || object
                .auth_data
                .attested
                .as_ref()
                .and_then(|a| PublicKey::from_cose(&a.public_key).ok())
                .is_some_and(|key| !key.webauthn_rs_verifies());
        Ok(beyond_webauthn_rs.then_some(object))
    }
}

/// The algorithms named to webauthn-rs at registration: its secure set, plus EdDSA and ES512,
/// whose credentials Tenet verifies itself.
fn webauthn_rs_algorithms() -> Vec<COSEAlgorithm> {
    let mut algorithms = COSEAlgorithm::secure_algs();
    algorithms.extend([COSEAlgorithm::EDDSA, COSEAlgorithm::ES521]);
    algorithms
}

/// A response's `type` must be `public-key` (webauthn-rs does not look at it).
fn check_credential_type(type_: &str) -> Result<(), CeremonyError> {
    if type_ == "public-key" {
        Ok(())
    } else {
        Err(CeremonyError::CredentialType {
            found: type_.to_owned(),
        })
    }
}

/// A response's `rawId` is at most 1023 bytes and its `id` is the same id in base64url.
fn check_credential_id(id: &str, raw_id: &[u8]) -> Result<(), CeremonyError> {
    if raw_id.len() > extended::MAX_CREDENTIAL_ID {
        return Err(ExtendedError::CredentialId {
            reason: "longer than 1023 bytes",
        }
        .into());
    }
    if URL_SAFE_NO_PAD
        .decode(id.trim_end_matches('='))
        .ok()
        .as_deref()
        != Some(raw_id)
    {
        return Err(ExtendedError::CredentialId {
            reason: "the response's id is not its rawId in base64url",
        }
        .into());
    }
    Ok(())
}

/// The ids of a registration response: `id` and `rawId` as in `check_credential_id`, and the id
/// in the attested credential data the same as `rawId` (webauthn-rs keeps the attested one and
/// checks neither its length nor that it is the one sent). An attestation object that cannot be
/// read is refused later by whichever verifier takes it.
fn check_registration_ids(reg: &RegisterPublicKeyCredential) -> Result<(), CeremonyError> {
    check_credential_id(&reg.id, &reg.raw_id)?;
    let Ok(object) = AttestationObject::parse(&reg.response.attestation_object) else {
        return Ok(());
    };
    if let Some(attested) = &object.auth_data.attested {
        if attested.credential_id.len() > extended::MAX_CREDENTIAL_ID {
            return Err(ExtendedError::CredentialId {
                reason: "longer than 1023 bytes",
            }
            .into());
        }
        if attested.credential_id != reg.raw_id {
            return Err(ExtendedError::CredentialId {
                reason: "the response's rawId is not the id in the attested credential data",
            }
            .into());
        }
    }
    Ok(())
}

/// The user handle given to authenticators: the user's opaque id as 16 bytes, as
/// `start_registration` passes it to webauthn-rs.
fn user_handle_bytes(id: Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

/// The challenge a pending webauthn-rs state carries (it has no accessor; read its serialised
/// form, as the state is kept server side).
fn state_challenge<S: Serialize>(state: &S) -> Result<Vec<u8>, CeremonyError> {
    let broken = || CeremonyError::MalformedResponse {
        reason: "the pending ceremony state has no challenge".into(),
    };
    let value = serde_json::to_value(state).map_err(|_| broken())?;
    let text = value
        .get("challenge")
        .and_then(|c| c.as_str())
        .ok_or_else(broken)?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| broken())
}

/// The user verification policy a pending authentication state carries.
fn state_policy(state: &AuthenticationState) -> Result<UserVerificationPolicy, CeremonyError> {
    let broken = || CeremonyError::MalformedResponse {
        reason: "the pending ceremony state has no policy".into(),
    };
    let value = serde_json::to_value(state).map_err(|_| broken())?;
    serde_json::from_value(value.get("policy").cloned().ok_or_else(broken)?).map_err(|_| broken())
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
