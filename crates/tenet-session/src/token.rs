//! Secret tokens handed to the browser (session ids, login binding values) and their hashes.
//!
//! A token is 256 bits from a cryptographically secure generator, given to the browser as
//! unpadded base64url. Only the SHA-256 of the token is ever stored, so a leaked store file or
//! log line cannot be replayed as a cookie.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Length in bytes of every token's random part.
pub const TOKEN_BYTES: usize = 32;

/// Length of a token's unpadded base64url text (32 bytes → 43 characters).
pub const TOKEN_TEXT_LEN: usize = 43;

/// A secret value sent to the browser in a cookie. Its `Debug` form never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Draws a fresh token from the thread's cryptographically secure generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::fill(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value to put in the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 handle under which this token is stored.
    pub fn handle(&self) -> Handle {
        // INVARIANT: a generated token always decodes, so hashing the text form is avoided.
        Handle::of_text(&self.0).unwrap_or_else(|| Handle::of_bytes(self.0.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 (hex) of a token: what the stores keep, safe to log and to show an operator.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    /// The handle of a token presented by a browser, or `None` when the text is not a
    /// well-formed token (wrong length or alphabet).
    pub fn of_text(text: &str) -> Option<Self> {
        if text.len() != TOKEN_TEXT_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        Some(Self::of_bytes(&bytes))
    }

    fn of_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Builds a handle from its hex form (as listed by an operator), if it is 64 hex digits.
    pub fn from_hex(hex_text: &str) -> Option<Self> {
        let ok = hex_text.len() == 64 && hex_text.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(hex_text.to_ascii_lowercase()))
    }

    /// The hex text of the handle.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.short())
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

impl Handle {
    /// The first 16 hex digits: enough to tell sessions apart in logs.
    pub fn short(&self) -> &str {
        self.0.get(..16).unwrap_or(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_well_formed() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_TEXT_LEN);
        assert_eq!(Handle::of_text(a.as_str()), Some(a.handle()));
        assert_ne!(a.handle(), b.handle());
    }

    #[test]
    fn handle_is_sha256_of_the_decoded_bytes() {
        let token = Token::generate();
        let raw = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
        assert_eq!(token.handle().as_str(), hex::encode(Sha256::digest(&raw)));
        assert!(!token.handle().as_str().contains(token.as_str()));
    }

    #[test]
    fn malformed_text_has_no_handle() {
        for bad in ["", "abc", &"A".repeat(44), &"!".repeat(43), &"+".repeat(43)] {
            assert_eq!(Handle::of_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::generate();
        assert!(!format!("{token:?}").contains(token.as_str()));
    }

    #[test]
    fn handle_from_hex_checks_form() {
        let h = Token::generate().handle();
        assert_eq!(Handle::from_hex(&h.as_str().to_uppercase()), Some(h));
        assert_eq!(Handle::from_hex("xyz"), None);
    }
}
