//! TOTP (RFC 6238) as a weaker, not phishing-resistant fallback factor.
//!
//! A code is accepted for the current step or one step either side, and a step is never
//! accepted twice: a code (or an older one) that was already used is refused as a replay.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use tracing::{debug, info};

use crate::factor::{Factor, FactorKind};

/// Steps accepted either side of the current one.
const SKEW_STEPS: u16 = 1;
/// Secret length for new enrolments (160 bits, as RFC 4226 recommends).
const SECRET_BYTES: usize = 20;

/// The HMAC of a TOTP enrolment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1, what authenticator apps support.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    fn to_totp_rs(self) -> Algorithm {
        match self {
            TotpAlgorithm::Sha1 => Algorithm::SHA1,
            TotpAlgorithm::Sha256 => Algorithm::SHA256,
            TotpAlgorithm::Sha512 => Algorithm::SHA512,
        }
    }
}

/// Why a TOTP enrolment or code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The parameters (secret length, digits, step, issuer, account name) are not usable.
    #[error("totp parameters rejected: {reason}")]
    Parameters {
        /// What is wrong.
        reason: String,
    },
    /// The code does not match any step in the window.
    #[error("totp code does not match")]
    WrongCode,
    /// The code is for a step already used (or older than one used).
    #[error("totp code for step {step} was already used (last used step {last_used})")]
    Replayed {
        /// The step the code matched.
        step: u64,
        /// The last step accepted.
        last_used: u64,
    },
    /// The clock is before 1970.
    #[error("clock {now} is before the unix epoch")]
    ClockBeforeEpoch {
        /// The time given.
        now: OffsetDateTime,
    },
}

/// What the user needs to set up an authenticator app.
#[derive(Clone, Debug)]
pub struct TotpSetup {
    /// The secret, base32 without padding.
    pub secret_base32: String,
    /// The `otpauth://totp/...` URL (for a QR code).
    pub otpauth_url: String,
}

/// A user's TOTP enrolment: the secret, its parameters and the last step used.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TotpEnrolment {
    #[serde(with = "hex::serde")]
    secret: Vec<u8>,
    algorithm: TotpAlgorithm,
    digits: u8,
    step_seconds: u64,
    last_used_step: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    enrolled_at: OffsetDateTime,
}

impl TotpEnrolment {
    /// A fresh 160-bit secret from `rng`.
    pub fn generate_secret<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Vec<u8> {
        let mut secret = vec![0u8; SECRET_BYTES];
        rng.fill_bytes(&mut secret);
        secret
    }

    /// Enrol with the common parameters (SHA-1, 6 digits, 30 s) that authenticator apps
    /// support. `issuer` and `account` appear in the app and must not contain ':'.
    pub fn enrol(
        secret: Vec<u8>,
        issuer: &str,
        account: &str,
        now: OffsetDateTime,
    ) -> Result<(TotpEnrolment, TotpSetup), TotpError> {
        let enrolment = TotpEnrolment::with_parameters(secret, TotpAlgorithm::Sha1, 6, 30, now)?;
        let totp = enrolment.totp_with_label(issuer, account)?;
        let otpauth_url = totp.to_url().map_err(parameters)?;
        let setup = TotpSetup {
            secret_base32: Secret::from(enrolment.secret.clone()).to_base32(),
            otpauth_url,
        };
        Ok((enrolment, setup))
    }

    /// Enrol with explicit parameters (RFC 6238 allows SHA-256/512 and 6 to 8 digits).
    pub fn with_parameters(
        secret: Vec<u8>,
        algorithm: TotpAlgorithm,
        digits: u8,
        step_seconds: u64,
        now: OffsetDateTime,
    ) -> Result<TotpEnrolment, TotpError> {
        let enrolment = TotpEnrolment {
            secret,
            algorithm,
            digits,
            step_seconds,
            last_used_step: None,
            enrolled_at: now,
        };
        enrolment.totp()?;
        Ok(enrolment)
    }

    /// When the enrolment was made.
    pub fn enrolled_at(&self) -> OffsetDateTime {
        self.enrolled_at
    }

    /// The code for the step containing `now` (for provisioning checks and tests).
    pub fn code_at(&self, now: OffsetDateTime) -> Result<String, TotpError> {
        Ok(self.totp()?.generate(unix_seconds(now)?).to_string())
    }

    /// Check `code` at `now`: accepted for the current step ±1, never for a step at or
    /// before the last one accepted. On success the step is recorded.
    pub fn verify(&mut self, code: &str, now: OffsetDateTime) -> Result<Factor, TotpError> {
        let result = self.check(code, now);
        match &result {
            Ok(_) => debug!(step = self.last_used_step, "totp code accepted"),
            Err(error) => info!(%error, "totp code refused"),
        }
        result
    }

    fn check(&mut self, code: &str, now: OffsetDateTime) -> Result<Factor, TotpError> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let step = self
            .totp()?
            .check(&code, unix_seconds(now)?)
            .ok_or(TotpError::WrongCode)?;
        if let Some(last_used) = self.last_used_step
            && step <= last_used
        {
            return Err(TotpError::Replayed { step, last_used });
        }
        self.last_used_step = Some(step);
        Ok(Factor::new(FactorKind::Totp, now))
    }

    fn totp(&self) -> Result<Totp, TotpError> {
        self.builder().build().map_err(parameters)
    }

    fn totp_with_label(&self, issuer: &str, account: &str) -> Result<Totp, TotpError> {
        self.builder()
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .map_err(parameters)
    }

    fn builder(&self) -> Builder {
        Builder::new()
            .with_algorithm(self.algorithm.to_totp_rs())
            .with_digits(self.digits)
            .with_skew(SKEW_STEPS)
            .with_step_duration(self.step_seconds)
            .with_secret(self.secret.clone())
    }
}

fn parameters(e: impl std::fmt::Display) -> TotpError {
    TotpError::Parameters {
        reason: e.to_string(),
    }
}

fn unix_seconds(now: OffsetDateTime) -> Result<u64, TotpError> {
    u64::try_from(now.unix_timestamp()).map_err(|_| TotpError::ClockBeforeEpoch { now })
}
