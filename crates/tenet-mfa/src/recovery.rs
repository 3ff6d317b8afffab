//! Single-use recovery codes: generated once, shown once, stored only as SHA-256 hashes.
//!
//! Codes carry 80 random bits, so an unsalted SHA-256 is enough to make the stored hashes
//! useless to a reader of the file. Input is normalised (spaces, dashes, case) before hashing,
//! and hashes are compared in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tracing::{debug, info};

use crate::factor::{Factor, FactorKind};

/// Random bytes per code (80 bits), shown as 20 hex digits in groups of five.
const CODE_BYTES: usize = 10;

/// Why a recovery code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The code matches no unused recovery code (wrong, or already used).
    #[error("recovery code is not valid or was already used")]
    NotValid,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredCode {
    #[serde(with = "hex::serde")]
    hash: [u8; 32],
    #[serde(with = "time::serde::rfc3339::option")]
    used_at: Option<OffsetDateTime>,
}

/// A user's recovery codes, as hashes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecoveryCodes {
    codes: Vec<StoredCode>,
}

impl RecoveryCodes {
    /// Generate `count` codes from `rng`. Returns the hashes to store and the codes to show
    /// the user once; the plain codes are not kept.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R, count: usize) -> (Self, Vec<String>) {
        let plain: Vec<String> = (0..count).map(|_| new_code(rng)).collect();
        let codes = plain
            .iter()
            .map(|code| StoredCode {
                hash: hash(&normalise(code)),
                used_at: None,
            })
            .collect();
        (RecoveryCodes { codes }, plain)
    }

    /// How many codes are still unused.
    pub fn remaining(&self) -> usize {
        self.codes.iter().filter(|c| c.used_at.is_none()).count()
    }

    /// Redeem `input`: accepted once if it matches an unused code.
    pub fn redeem(&mut self, input: &str, now: OffsetDateTime) -> Result<Factor, RecoveryError> {
        let presented = hash(&normalise(input));
        // Compare against every stored hash, so timing does not reveal which one matched.
        let mut matched = None;
        for (i, code) in self.codes.iter().enumerate() {
            let equal = code.hash.ct_eq(&presented);
            if bool::from(equal) && code.used_at.is_none() {
                matched = Some(i);
            }
        }
        let Some(code) = matched.and_then(|i| self.codes.get_mut(i)) else {
            info!("recovery code refused");
            return Err(RecoveryError::NotValid);
        };
        code.used_at = Some(now);
        debug!(remaining = self.remaining(), "recovery code accepted");
        Ok(Factor::new(FactorKind::Recovery, now))
    }
}

/// Lowercase, with spaces and dashes removed.
fn normalise(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn hash(normalised: &str) -> [u8; 32] {
    Sha256::digest(normalised.as_bytes()).into()
}

fn new_code<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; CODE_BYTES];
    rng.fill_bytes(&mut bytes);
    let digits = hex::encode(bytes);
    let groups: Vec<&str> = digits
        .as_bytes()
        .chunks(5)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    groups.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_strips_spaces_dashes_and_case() {
        assert_eq!(normalise(" AB12-cd 34\t-EF "), "ab12cd34ef");
    }
}
