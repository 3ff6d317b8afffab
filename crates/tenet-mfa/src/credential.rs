//! A registered WebAuthn credential as Tenet stores it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use webauthn_rs_core::proto::Credential as CoreCredential;

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
pub struct Credential {
    pub(crate) id: String,
    pub(crate) kind: CredentialKind,
    /// Public key, algorithm, policy and attestation, exactly as webauthn-rs stores them.
    pub(crate) key: CoreCredential,
    pub(crate) counter: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) user_verified: bool,
    pub(crate) backup_eligible: bool,
    pub(crate) backup_state: bool,
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
            kind,
            counter: key.counter,
            user_verified: key.user_verified,
            backup_eligible: key.backup_eligible,
            backup_state: key.backup_state,
            key,
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
        &self.key.cred_id
    }

    /// Passkey or security key.
    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The public key material as webauthn-rs stores it.
    pub fn key(&self) -> &CoreCredential {
        &self.key
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
        self.key.counter = counter;
        self.backup_state = backup_state;
        self.key.backup_state = backup_state;
        self.last_used_at = Some(now);
    }
}
