//! A registered WebAuthn credential as Tenet stores it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use webauthn_rs_core::proto::Credential as CoreCredential;

use crate::cose::PublicKey;
use crate::extended::Registered;

/// What kind of authenticator a credential was registered as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A passkey: user verification (PIN or biometric) is required at every use.
    Passkey,
    /// A security key: user verification is used when the key offers it.
    SecurityKey,
}

impl CredentialKind {
    /// A stable name: "passkey" or "security_key".
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Passkey => "passkey",
            CredentialKind::SecurityKey => "security_key",
        }
    }
}

/// A registered WebAuthn credential with its usage record.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "CredentialRecord", into = "CredentialRecord")]
pub struct Credential {
    pub(crate) id: String,
    pub(crate) raw_id: Vec<u8>,
    pub(crate) kind: CredentialKind,
    pub(crate) verifier: Verifier,
    pub(crate) counter: u32,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) user_verified: bool,
    pub(crate) backup_eligible: bool,
    pub(crate) backup_state: bool,
}

/// Who verifies a credential's assertions: webauthn-rs, or Tenet itself for keys webauthn-rs
/// cannot verify and for credentials registered cross-origin.
#[derive(Clone, Debug)]
pub(crate) enum Verifier {
    /// Public key, algorithm, policy and attestation, exactly as webauthn-rs stores them.
    WebauthnRs(Box<CoreCredential>),
    /// The public key as Tenet stores it.
    Tenet(TenetKey),
}

/// A credential verified by Tenet: its public key and the attestation format it came with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TenetKey {
    pub(crate) public_key: PublicKey,
    pub(crate) attestation_format: String,
}

/// The stored form. Records written before Tenet verified credentials itself have `key` only.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CredentialRecord {
    id: String,
    kind: CredentialKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Box<CoreCredential>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenet_key: Option<TenetKey>,
    counter: u32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    user_verified: bool,
    backup_eligible: bool,
    backup_state: bool,
}

impl TryFrom<CredentialRecord> for Credential {
    type Error = String;

    fn try_from(r: CredentialRecord) -> Result<Self, String> {
        let raw_id = URL_SAFE_NO_PAD
            .decode(&r.id)
            .map_err(|e| format!("credential id {:?}: {e}", r.id))?;
        let verifier = match (r.key, r.tenet_key) {
            (Some(key), None) if key.cred_id == raw_id => Verifier::WebauthnRs(key),
            (Some(_), None) => {
                return Err(format!("credential {:?}: key.cred_id is another id", r.id));
            }
            (None, Some(tenet)) => Verifier::Tenet(tenet),
            _ => {
                return Err(format!(
                    "credential {:?} needs exactly one of key and tenet_key",
                    r.id
                ));
            }
        };
        Ok(Credential {
            id: r.id,
            raw_id,
            kind: r.kind,
            verifier,
            counter: r.counter,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            user_verified: r.user_verified,
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
        })
    }
}

impl From<Credential> for CredentialRecord {
    fn from(c: Credential) -> Self {
        let (key, tenet_key) = match c.verifier {
            Verifier::WebauthnRs(key) => (Some(key), None),
            Verifier::Tenet(tenet) => (None, Some(tenet)),
        };
        CredentialRecord {
            id: c.id,
            kind: c.kind,
            key,
            tenet_key,
            counter: c.counter,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
            user_verified: c.user_verified,
            backup_eligible: c.backup_eligible,
            backup_state: c.backup_state,
        }
    }
}

impl Credential {
    /// Wrap a credential that webauthn-rs has just verified.
    pub(crate) fn registered(
        kind: CredentialKind,
        key: CoreCredential,
        now: OffsetDateTime,
    ) -> Self {
        Credential {
            id: URL_SAFE_NO_PAD.encode(&key.cred_id),
            raw_id: key.cred_id.clone(),
            kind,
            counter: key.counter,
            user_verified: key.user_verified,
            backup_eligible: key.backup_eligible,
            backup_state: key.backup_state,
            verifier: Verifier::WebauthnRs(Box::new(key)),
            created_at: now,
            last_used_at: None,
        }
    }

    /// Wrap a credential that Tenet's own verifier has just verified.
    pub(crate) fn registered_by_tenet(
        kind: CredentialKind,
        registered: Registered,
        now: OffsetDateTime,
    ) -> Self {
        Credential {
            id: URL_SAFE_NO_PAD.encode(&registered.credential_id),
            raw_id: registered.credential_id,
            kind,
            counter: registered.counter,
            user_verified: registered.user_verified,
            backup_eligible: registered.backup_eligible,
            backup_state: registered.backup_state,
            verifier: Verifier::Tenet(TenetKey {
                public_key: registered.public_key,
                attestation_format: registered.attestation_format,
            }),
            created_at: now,
            last_used_at: None,
        }
    }

    /// The credential id, base64url without padding (as browsers send it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw credential id bytes.
    pub fn raw_id(&self) -> &[u8] {
        &self.raw_id
    }

    /// Passkey or security key.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The public key material as webauthn-rs stores it; `None` for a credential that Tenet
    /// verifies itself (see [`Credential::verified_by_tenet`]).
    pub fn key(&self) -> Option<&CoreCredential> {
        match &self.verifier {
            Verifier::WebauthnRs(key) => Some(key),
            Verifier::Tenet(_) => None,
        }
    }

    /// Whether Tenet verifies this credential's assertions itself (a key type webauthn-rs
    /// cannot verify, or a cross-origin registration).
    pub fn verified_by_tenet(&self) -> bool {
        matches!(self.verifier, Verifier::Tenet(_))
    }

    /// The COSE algorithm identifier the credential signs with.
    pub fn algorithm(&self) -> i64 {
        match &self.verifier {
            Verifier::WebauthnRs(key) => key.cred.type_ as i64,
            Verifier::Tenet(tenet) => tenet.public_key.alg.id(),
        }
    }

    /// The last signature counter seen (0 for authenticators that keep none).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// When it was registered.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// When it last authenticated successfully.
    pub fn last_used_at(&self) -> Option<OffsetDateTime> {
        self.last_used_at
    }

    /// Whether the user was verified (PIN or biometric) at registration.
    pub fn user_verified(&self) -> bool {
        self.user_verified
    }

    /// Whether the authenticator may back the credential up (a synced passkey).
    pub fn backup_eligible(&self) -> bool {
        self.backup_eligible
    }

    /// Whether the credential was backed up when last seen.
    pub fn backup_state(&self) -> bool {
        self.backup_state
    }

    /// Record a successful authentication.
    pub(crate) fn record_use(&mut self, counter: u32, backup_state: bool, now: OffsetDateTime) {
        self.counter = counter;
        self.backup_state = backup_state;
        if let Verifier::WebauthnRs(key) = &mut self.verifier {
            key.counter = counter;
            key.backup_state = backup_state;
        }
        self.last_used_at = Some(now);
    }
}
