//! Compact JWS verification and the claim checks shared by ID tokens and bearer tokens.
//!
//! The header is read for `alg`, `kid` and `typ` only; `jwk`, `jku`, `x5u`, `x5c` and every
//! other member are ignored, and a `crit` member makes the token unusable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::JwsAlgorithm;
use crate::keys::{KeySet, Lookup};

/// Largest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused. The token's sender is at fault unless stated otherwise.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS with a JSON header and a JSON object payload.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm that is never accepted (`none`, `HS*`, unknown).
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` member; no JOSE extension is understood here.
    #[error("token header has critical extensions")]
    CriticalHeader,
    /// The token has no `kid` and the key set holds several keys.
    #[error("token has no key id and the key set has several keys")]
    MissingKeyId,
    /// The `kid` is not in the key set (a key rotation may explain it).
    #[error("token key id {kid:?} is not a known key")]
    UnknownKey {
        /// The key id from the token.
        kid: String,
    },
    /// The header's `alg` is not the algorithm the key is bound to.
    #[error("token algorithm {token} does not match key {kid:?} ({key})")]
    AlgorithmMismatch {
        /// The key id, if any.
        kid: Option<String>,
        /// The algorithm the key is bound to.
        key: JwsAlgorithm,
        /// The algorithm the token claims.
        token: JwsAlgorithm,
    },
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// A required claim is absent.
    #[error("token lacks the {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or form.
    #[error("token claim {claim:?} is invalid: {problem}")]
    InvalidClaim {
        /// The claim name.
        claim: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// `iss` is not the expected issuer.
    #[error("token issuer {found:?} is not {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The token's issuer.
        found: String,
    },
    /// `aud` is absent although an audience is required.
    #[error("token has no audience")]
    AudienceMissing,
    /// `aud` does not contain the expected audience.
    #[error("token audience does not include {expected:?}")]
    AudienceMismatch {
        /// The audience required.
        expected: String,
    },
    /// `azp` is not our client id (or is absent although there are several audiences).
    #[error("token authorized party is not {expected:?}")]
    AuthorizedPartyMismatch {
        /// Our client id.
        expected: String,
    },
    /// `exp` has passed.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's expiry, Unix seconds.
        exp: i64,
        /// The verification time, Unix seconds.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's not-before time, Unix seconds.
        nbf: i64,
        /// The verification time, Unix seconds.
        now: i64,
    },
    /// `iat` is in the future.
    #[error("token was issued in the future ({iat}, now {now})")]
    IssuedInFuture {
        /// The token's issue time, Unix seconds.
        iat: i64,
        /// The verification time, Unix seconds.
        now: i64,
    },
    /// `nonce` differs from the pending login's.
    #[error("ID token nonce does not match the login")]
    NonceMismatch,
    /// The token is of another kind than this endpoint accepts (`typ` or `token_use`).
    #[error("token kind {found:?} is not the required {expected:?}")]
    WrongTokenKind {
        /// The required kind.
        expected: String,
        /// What the token carries, if anything.
        found: Option<String>,
    },
}

impl TokenError {
    /// A short stable reason code for logs and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::CriticalHeader => "critical_header",
            Self::MissingKeyId => "missing_kid",
            Self::UnknownKey { .. } => "unknown_kid",
            Self::AlgorithmMismatch { .. } => "algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::AudienceMissing => "audience_missing",
            Self::AudienceMismatch { .. } => "audience_mismatch",
            Self::AuthorizedPartyMismatch { .. } => "azp_mismatch",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::IssuedInFuture { .. } => "issued_in_future",
            Self::NonceMismatch => "nonce_mismatch",
            Self::WrongTokenKind { .. } => "wrong_token_kind",
        }
    }
}

/// The header members that matter; everything else is ignored on purpose.
#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token whose signature verified with a key from the set.
#[derive(Debug)]
pub(crate) struct Verified {
    pub typ: Option<String>,
    pub claims: Map<String, Value>,
}

/// The header of a token, read before any key is chosen.
#[derive(Debug)]
struct Header {
    alg: JwsAlgorithm,
    kid: Option<String>,
    typ: Option<String>,
}

/// Splits a compact JWS into its three parts and reads the header.
fn split(token: &str) -> Result<(Header, &str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let raw: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("header is not a JOSE header"))?;
    if raw.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    let alg = raw
        .alg
        .parse()
        .map_err(|_| TokenError::UnsupportedAlgorithm(raw.alg.clone()))?;
    let header = Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    };
    Ok((header, h, p, s))
}

/// Verifies the signature with the key the `kid` names, under that key's own algorithm.
pub(crate) fn verify(token: &str, keys: &KeySet) -> Result<Verified, TokenError> {
    let (header, h, p, signature) = split(token)?;
    let key = match keys.lookup(header.kid.as_deref()) {
        Lookup::Found(key) => key,
        Lookup::MissingKeyId => return Err(TokenError::MissingKeyId),
        Lookup::Unknown => {
            let kid = header.kid.unwrap_or_default();
            return Err(TokenError::UnknownKey { kid });
        }
    };

    // The algorithm is the key's, never the header's: a header that names another one
    // (HS256 with an RSA key's bytes, ES256 against an RSA key) is refused here.
    if key.algorithm() != header.alg {
        return Err(TokenError::AlgorithmMismatch {
            kid: header.kid,
            key: key.algorithm(),
            token: header.alg,
        });
    }
    let message = token
        .get(..h.len() + 1 + p.len())
        .ok_or(TokenError::Malformed("signing input"))?;
    let valid = jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        key.decoding_key(),
        key.algorithm().to_jsonwebtoken(),
    );
    if !matches!(valid, Ok(true)) {
        return Err(TokenError::BadSignature);
    }

    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let claims = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    Ok(Verified {
        typ: header.typ,
        claims,
    })
}

/// The `iss` a token claims, read without verifying anything (bounded as every token is).
/// Only for telling which provider a refused token meant; never for a decision.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let (_, _, payload, _) = split(token).ok()?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// A NumericDate claim, in whole seconds.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let invalid = TokenError::InvalidClaim {
        claim: name,
        problem: "not a NumericDate",
    };
    if let Some(seconds) = value.as_i64() {
        return Ok(Some(seconds));
    }
    let seconds = value
        .as_f64()
        .filter(|f| f.is_finite())
        .ok_or(invalid.clone())?;
    if seconds.abs() > 1e15 {
        return Err(invalid);
    }
    // Fractions of a second are dropped; the range was checked above, so nothing saturates.
    Ok(Some(seconds.floor() as i64))
}

/// A string claim that must be present.
pub(crate) fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, TokenError> {
    match claims.get(name) {
        None => Err(TokenError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: name,
            problem: "not a string",
        }),
    }
}

/// `iss` must equal the expected issuer exactly.
pub(crate) fn check_issuer(claims: &Map<String, Value>, expected: &str) -> Result<(), TokenError> {
    let found = required_str(claims, "iss")?;
    if found == expected {
        Ok(())
    } else {
        Err(TokenError::IssuerMismatch {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// `aud` must be present and contain `expected` (exact, case-sensitive); returns all values.
pub(crate) fn check_audience(
    claims: &Map<String, Value>,
    expected: &str,
) -> Result<Vec<String>, TokenError> {
    let invalid = TokenError::InvalidClaim {
        claim: "aud",
        problem: "not a string or an array of strings",
    };
    let audiences: Vec<String> = match claims.get("aud") {
        None => return Err(TokenError::AudienceMissing),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(invalid.clone()))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid),
    };
    if audiences.is_empty() {
        return Err(TokenError::AudienceMissing);
    }
    if audiences.iter().any(|a| a == expected) {
        Ok(audiences)
    } else {
        Err(TokenError::AudienceMismatch {
            expected: expected.to_owned(),
        })
    }
}

/// `exp` (required), `nbf` and `iat` (required when asked) against `now` with `skew` seconds.
pub(crate) fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    skew: i64,
    require_iat: bool,
) -> Result<(), TokenError> {
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(skew) {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf.saturating_sub(skew) > now
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    match numeric_date(claims, "iat")? {
        Some(iat) if iat.saturating_sub(skew) > now => Err(TokenError::IssuedInFuture { iat, now }),
        None if require_iat => Err(TokenError::MissingClaim("iat")),
        _ => Ok(()),
    }
}
