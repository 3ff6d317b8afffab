//! Verification keys: a fixed, in-memory set, each key bound to exactly one algorithm.
//!
//! A token's `kid` is only ever a lookup in this set, and its `alg` must equal the algorithm
//! the key was loaded with; nothing in a token header can add a key or choose an algorithm.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::config::JwsAlgorithm;

/// A key set that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The JWKS document is not JSON with a `keys` array.
    #[error("JWKS document is malformed: {0}")]
    MalformedJwks(String),
    /// A PEM key could not be read for the given algorithm.
    #[error("PEM key for {algorithm} is unusable: {problem}")]
    Pem {
        /// The algorithm the key was meant for.
        algorithm: JwsAlgorithm,
        /// What went wrong.
        problem: String,
    },
    /// Two keys carry the same `kid`.
    #[error("two keys share the key id {0:?}")]
    DuplicateKeyId(String),
    /// No key is usable with the allowed algorithms; nothing would verify.
    #[error("no usable signing key (of {total} in the set) for the allowed algorithms")]
    NoUsableKey {
        /// Number of keys in the document.
        total: usize,
    },
}

/// One public key and the one algorithm it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: JwsAlgorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Reads a public key (SPKI or PKCS#1 PEM) for one algorithm.
    pub fn from_pem(
        kid: Option<&str>,
        pem: &[u8],
        algorithm: JwsAlgorithm,
    ) -> Result<Self, KeyError> {
        use JwsAlgorithm as A;
        let key = match algorithm {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
                DecodingKey::from_rsa_pem(pem)
            }
            A::ES256 | A::ES384 => DecodingKey::from_ec_pem(pem),
            A::EdDSA => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|e| KeyError::Pem {
            algorithm,
            problem: e.to_string(),
        })?;
        Ok(Self {
            kid: kid.map(str::to_owned),
            algorithm,
            key,
        })
    }

    /// The key id, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// Why no key was found for a token.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Found(&'a VerificationKey),
    MissingKeyId,
    Unknown,
}

/// A fixed set of verification keys.
#[derive(Clone, Debug)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// A set of keys; key ids must be distinct and the set non-empty.
    pub fn new(keys: Vec<VerificationKey>) -> Result<Self, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            let Some(kid) = key.kid() else { continue };
            if keys.iter().skip(i + 1).any(|k| k.kid() == Some(kid)) {
                return Err(KeyError::DuplicateKeyId(kid.to_owned()));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoUsableKey { total: 0 });
        }
        Ok(Self { keys })
    }

    /// Reads a JWKS document, keeping the signature keys usable with `allowed`.
    ///
    /// A key's algorithm is its `alg` member, or for a key without one the default of its type
    /// (RSA: RS256, P-256: ES256, P-384: ES384, Ed25519: EdDSA). Symmetric (`oct`) keys,
    /// encryption keys, weak RSA keys and keys whose algorithm is not allowed are skipped.
    pub fn from_jwks(document: &[u8], allowed: &[JwsAlgorithm]) -> Result<Self, KeyError> {
        let value: Value =
            serde_json::from_slice(document).map_err(|e| KeyError::MalformedJwks(e.to_string()))?;
        let entries = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::MalformedJwks("no \"keys\" array".to_owned()))?;
        let mut keys: Vec<VerificationKey> = Vec::new();
        for entry in entries {
            match parse_jwk(entry, allowed) {
                Ok(key) if keys.iter().any(|k| k.kid.is_some() && k.kid == key.kid) => {
                    tracing::info!(kid = ?key.kid, "JWKS key skipped: duplicate key id");
                }
                Ok(key) => keys.push(key),
                Err(reason) => {
                    let kid = entry.get("kid").and_then(Value::as_str);
                    tracing::debug!(?kid, reason, "JWKS key skipped");
                }
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoUsableKey {
                total: entries.len(),
            });
        }
        Ok(Self { keys })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in document order.
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Finds the key for a token: by exact `kid`, or the only key when the token has none.
    pub(crate) fn lookup(&self, kid: Option<&str>) -> Lookup<'_> {
        match (kid, self.keys.as_slice()) {
            (Some(kid), keys) => keys
                .iter()
                .find(|k| k.kid() == Some(kid))
                .map_or(Lookup::Unknown, Lookup::Found),
            (None, [only]) => Lookup::Found(only),
            (None, _) => Lookup::MissingKeyId,
        }
    }
}

fn parse_jwk(jwk: &Value, allowed: &[JwsAlgorithm]) -> Result<VerificationKey, &'static str> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return Err("not a signature key");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err("key_ops lacks verify");
        }
    }
    let (algorithm, key) = match text("kty") {
        Some("RSA") => rsa_key(jwk, text("alg"))?,
        Some("EC") => ec_key(jwk, text("alg"))?,
        Some("OKP") => okp_key(jwk, text("alg"))?,
        _ => return Err("unsupported key type"),
    };
    if !allowed.contains(&algorithm) {
        return Err("algorithm not allowed");
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string"),
    };
    Ok(VerificationKey {
        kid,
        algorithm,
        key,
    })
}

fn declared_or(alg: Option<&str>, default: JwsAlgorithm) -> Result<JwsAlgorithm, &'static str> {
    match alg {
        None => Ok(default),
        Some(alg) => alg.parse().map_err(|_| "unsupported alg"),
    }
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, &'static str> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or("missing key parameter")
}

fn decoded_len(b64: &str) -> Result<usize, &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| "bad base64url")?;
    let significant = bytes.iter().skip_while(|b| **b == 0).count();
    Ok(significant)
}

fn rsa_key(jwk: &Value, alg: Option<&str>) -> Result<(JwsAlgorithm, DecodingKey), &'static str> {
    use JwsAlgorithm as A;
    let algorithm = declared_or(alg, A::RS256)?;
    if !matches!(
        algorithm,
        A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
    ) {
        return Err("alg does not match an RSA key");
    }
    let (n, e) = (member(jwk, "n")?, member(jwk, "e")?);
    if decoded_len(n)? < 256 {
        return Err("RSA modulus shorter than 2048 bits");
    }
    let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "bad RSA components")?;
    Ok((algorithm, key))
}

fn ec_key(jwk: &Value, alg: Option<&str>) -> Result<(JwsAlgorithm, DecodingKey), &'static str> {
    let (default, size) = match member(jwk, "crv")? {
        "P-256" => (JwsAlgorithm::ES256, 32),
        "P-384" => (JwsAlgorithm::ES384, 48),
        _ => return Err("unsupported curve"),
    };
    if declared_or(alg, default)? != default {
        return Err("alg does not match the curve");
    }
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    let exact = |b64: &str| {
        URL_SAFE_NO_PAD
            .decode(b64)
            .is_ok_and(|bytes| bytes.len() == size)
    };
    if !exact(x) || !exact(y) {
        return Err("bad EC coordinates");
    }
    let key = DecodingKey::from_ec_components(x, y).map_err(|_| "bad EC coordinates")?;
    Ok((default, key))
}

fn okp_key(jwk: &Value, alg: Option<&str>) -> Result<(JwsAlgorithm, DecodingKey), &'static str> {
    if member(jwk, "crv")? != "Ed25519" {
        return Err("unsupported curve");
    }
    if declared_or(alg, JwsAlgorithm::EdDSA)? != JwsAlgorithm::EdDSA {
        return Err("alg does not match the curve");
    }
    let x = member(jwk, "x")?;
    if URL_SAFE_NO_PAD.decode(x).map(|b| b.len()) != Ok(32) {
        return Err("bad Ed25519 key");
    }
    let key = DecodingKey::from_ed_components(x).map_err(|_| "bad Ed25519 key")?;
    Ok((JwsAlgorithm::EdDSA, key))
}
