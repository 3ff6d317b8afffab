//! JWT-SVIDs (SPIFFE JWT-SVID spec): ES256 only, a header of alg, kid and typ, and the
//! claims sub, aud, exp (and optionally iat). The verifier parses header and claims itself so
//! that nothing outside that shape slips through a general-purpose JWT library.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::bundle::{BundleSet, EcCurve, PublicKeyJwk};
use crate::error::JwtError;
use crate::spiffe_id::SpiffeId;

/// The only signature algorithm issued and accepted.
const ALG: &str = "ES256";
/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Length of an ES256 signature (r || s).
const ES256_SIGNATURE_LEN: usize = 64;

/// The verified content of a JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSvidClaims {
    /// `sub`: the workload's SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// `aud`: every audience of the token.
    pub audience: Vec<String>,
    /// `exp`.
    pub expires_at: OffsetDateTime,
    /// `iat`, when present.
    pub issued_at: Option<OffsetDateTime>,
    /// The `kid` of the JWT authority that signed it.
    pub key_id: String,
}

/// The accepted header: exactly these members, no others (no jku, x5u, jwk, crit, ...).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

/// The claims Tenet issues.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    aud: &'a [String],
    exp: i64,
    iat: i64,
}

/// Signs a JWT-SVID with a P-256 PKCS#8 key. Inputs are checked by the caller.
pub(crate) fn sign(
    pkcs8: &[u8],
    kid: &str,
    id: &SpiffeId,
    audience: &[String],
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = IssuedClaims {
        sub: id.as_str(),
        aud: audience,
        exp: expires_at.unix_timestamp(),
        iat: issued_at.unix_timestamp(),
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8))
}

/// Verifies a JWT-SVID: the header shape, the subject's trust domain bundle, the signature by
/// the JWT authority named by `kid`, expiry at `now` (no leeway), and that `audience` is one
/// of the token's audiences.
pub fn verify_jwt_svid(
    token: &str,
    bundles: &BundleSet,
    audience: &str,
    now: OffsetDateTime,
) -> Result<JwtSvidClaims, JwtError> {
    let malformed = |reason: &str| JwtError::Malformed {
        reason: reason.to_owned(),
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "a compact jws has exactly three dot-separated parts",
        ));
    };

    let header = parse_header(&decode_part(header_b64, "header")?)?;
    let claims: Value =
        serde_json::from_slice(&decode_part(claims_b64, "claims")?).map_err(|e| {
            JwtError::Malformed {
                reason: format!("claims are not json: {e}"),
            }
        })?;
    let claims = claims
        .as_object()
        .ok_or_else(|| malformed("claims are not a json object"))?;
    let signature = decode_part(signature_b64, "signature")?;
    if signature.len() != ES256_SIGNATURE_LEN {
        return Err(JwtError::BadSignature);
    }

    // The subject names the trust domain whose bundle holds the signing key.
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(JwtError::BadClaim { claim: "sub" })?;
    let spiffe_id = SpiffeId::parse(sub).map_err(|e| JwtError::BadSubject {
        reason: e.to_string(),
    })?;
    if !spiffe_id.has_path() {
        return Err(JwtError::BadSubject {
            reason: format!("{spiffe_id} has no path"),
        });
    }
    let bundle = bundles
        .get(spiffe_id.trust_domain())
        .ok_or_else(|| JwtError::UnknownTrustDomain(spiffe_id.trust_domain().clone()))?;
    let authority = bundle
        .jwt_authority(&header.kid)
        .ok_or_else(|| JwtError::UnknownKey {
            kid: header.kid.clone(),
            trust_domain: spiffe_id.trust_domain().clone(),
        })?;
    verify_signature(
        authority.key(),
        &header.kid,
        header_b64,
        claims_b64,
        signature_b64,
    )?;

    let expires_at = numeric_date(claims.get("exp")).ok_or(JwtError::BadClaim { claim: "exp" })?;
    if now >= expires_at {
        return Err(JwtError::Expired {
            expired_at: expires_at,
            now,
        });
    }
    let issued_at = match claims.get("iat") {
        None => None,
        some => Some(numeric_date(some).ok_or(JwtError::BadClaim { claim: "iat" })?),
    };
    let token_audience = audiences(claims.get("aud")).ok_or(JwtError::BadClaim { claim: "aud" })?;
    if !token_audience.iter().any(|a| a == audience) {
        return Err(JwtError::AudienceMismatch {
            expected: audience.to_owned(),
            actual: token_audience,
        });
    }

    Ok(JwtSvidClaims {
        spiffe_id,
        audience: token_audience,
        expires_at,
        issued_at,
        key_id: header.kid,
    })
}

/// A header that passed the shape rules.
struct CheckedHeader {
    kid: String,
}

fn parse_header(bytes: &[u8]) -> Result<CheckedHeader, JwtError> {
    let bad = |reason: String| JwtError::BadHeader { reason };
    let header: StrictHeader = serde_json::from_slice(bytes).map_err(|e| bad(format!("{e}")))?;
    if header.alg != ALG {
        return Err(JwtError::UnsupportedAlgorithm { alg: header.alg });
    }
    // JWT-SVID spec 2.3: typ, when present, is JWT or JOSE.
    if let Some(typ) = header.typ.filter(|t| t != "JWT" && t != "JOSE") {
        return Err(bad(format!("typ {typ:?} is neither \"JWT\" nor \"JOSE\"")));
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad("kid is missing".into()))?;
    Ok(CheckedHeader { kid })
}

fn decode_part(part: &str, name: &str) -> Result<Vec<u8>, JwtError> {
    if part.is_empty() {
        return Err(JwtError::Malformed {
            reason: format!("{name} is empty"),
        });
    }
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| JwtError::Malformed {
            reason: format!("{name} is not base64url: {e}"),
        })
}

fn verify_signature(
    key: &PublicKeyJwk,
    kid: &str,
    header_b64: &str,
    claims_b64: &str,
    signature_b64: &str,
) -> Result<(), JwtError> {
    let PublicKeyJwk::Ec {
        curve: EcCurve::P256,
        x,
        y,
    } = key
    else {
        return Err(JwtError::KeyAlgorithmMismatch {
            kid: kid.to_owned(),
        });
    };
    let key =
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y))
            .map_err(|_| JwtError::KeyAlgorithmMismatch {
                kid: kid.to_owned(),
            })?;
    let message = format!("{header_b64}.{claims_b64}");
    match jsonwebtoken::crypto::verify(signature_b64, message.as_bytes(), &key, Algorithm::ES256) {
        Ok(true) => Ok(()),
        _ => Err(JwtError::BadSignature),
    }
}

/// A NumericDate (RFC 7519): seconds since the epoch, integer or not.
fn numeric_date(value: Option<&Value>) -> Option<OffsetDateTime> {
    let number = value?.as_number()?;
    let secs = match number.as_i64() {
        Some(secs) => secs,
        None => {
            let float = number.as_f64().filter(|f| f.is_finite())?;
            // Truncation towards negative infinity is the conservative reading of a fraction.
            #[allow(
                clippy::cast_possible_truncation,
                reason = "range checked by from_unix_timestamp"
            )]
            let secs = float.floor() as i64;
            secs
        }
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// `aud` as a non-empty list of strings (a single string or an array of them).
fn audiences(value: Option<&Value>) -> Option<Vec<String>> {
    let list = match value? {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    (!list.is_empty()).then_some(list)
}
