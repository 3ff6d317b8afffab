//! Credential public keys that Tenet verifies itself (COSE, RFC 9052/9053), for the algorithms
//! webauthn-rs 0.6 cannot verify: Ed25519 and Ed448 (EdDSA), ECDSA P-521, and RSA keys other
//! than 2048-bit. ECDSA P-256/P-384 and 2048-bit RSA are read too, for credentials registered
//! through Tenet's own verifier (cross-origin ceremonies, which webauthn-rs refuses).
//!
//! Signatures are checked with aws-lc-rs, and Ed448 with ed448-goldilocks-plus (PureEdDSA,
//! empty context, as WebAuthn uses it).

use aws_lc_rs::signature::{self as lc, RsaPublicKeyComponents, VerificationAlgorithm};
use serde::{Deserialize, Serialize};
use serde_cbor_2::Value;

/// A COSE algorithm Tenet verifies itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoseAlgorithm {
    /// ECDSA with SHA-256 (-7) on P-256.
    Es256,
    /// ECDSA with SHA-384 (-35) on P-384.
    Es384,
    /// ECDSA with SHA-512 (-36) on P-521.
    Es512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (-257).
    Rs256,
    /// EdDSA (-8), Ed25519 or Ed448 by the key's curve.
    EdDsa,
    /// Ed448, fully specified (-53).
    Ed448,
}

impl CoseAlgorithm {
    /// The algorithms offered at registration, in the order offered.
    pub(crate) const OFFERED: [CoseAlgorithm; 6] = [
        CoseAlgorithm::Es256,
        CoseAlgorithm::Es384,
        CoseAlgorithm::Rs256,
        CoseAlgorithm::EdDsa,
        CoseAlgorithm::Es512,
        CoseAlgorithm::Ed448,
    ];

    /// The COSE identifier.
    pub fn id(self) -> i64 {
        match self {
            CoseAlgorithm::Es256 => -7,
            CoseAlgorithm::Es384 => -35,
            CoseAlgorithm::Es512 => -36,
            CoseAlgorithm::Rs256 => -257,
            CoseAlgorithm::EdDsa => -8,
            CoseAlgorithm::Ed448 => -53,
        }
    }

    /// The algorithm with COSE identifier `id`, if Tenet verifies it.
    pub fn from_id(id: i64) -> Option<Self> {
        CoseAlgorithm::OFFERED.into_iter().find(|a| a.id() == id)
    }
}

/// The curve of an elliptic-curve key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Curve {
    /// NIST P-256 (crv 1).
    P256,
    /// NIST P-384 (crv 2).
    P384,
    /// NIST P-521 (crv 3).
    P521,
    /// Ed25519 (crv 6).
    Ed25519,
    /// Ed448 (crv 7).
    Ed448,
}

impl Curve {
    fn from_id(id: i128) -> Option<Self> {
        match id {
            1 => Some(Curve::P256),
            2 => Some(Curve::P384),
            3 => Some(Curve::P521),
            6 => Some(Curve::Ed25519),
            7 => Some(Curve::Ed448),
            _ => None,
        }
    }

    /// The length of one coordinate (EC2) or of the public key (OKP), in bytes.
    fn key_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
            Curve::Ed448 => 57,
        }
    }
}

/// Why a COSE key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not a CBOR map with the members its type needs.
    #[error("credential public key is malformed: {reason}")]
    Malformed {
        /// What is missing or wrong.
        reason: String,
    },
    /// The algorithm is not one Tenet accepts.
    #[error("credential public key algorithm {alg} is not accepted")]
    UnsupportedAlgorithm {
        /// The COSE algorithm identifier.
        alg: i64,
    },
    /// The key type or curve does not go with the algorithm.
    #[error("credential public key: algorithm {alg} does not go with key type {kty} curve {crv:?}")]
    AlgorithmMismatch {
        /// The COSE algorithm identifier.
        alg: i64,
        /// The COSE key type.
        kty: i128,
        /// The COSE curve, if any.
        crv: Option<i128>,
    },
    /// A coordinate, modulus or exponent has the wrong length.
    #[error("credential public key: {what} is {len} bytes, {expected}")]
    BadLength {
        /// Which member.
        what: &'static str,
        /// Its length.
        len: usize,
        /// What was expected.
        expected: String,
    },
    /// The key material is not a valid public key for its curve or algorithm.
    #[error("credential public key is not a valid {alg:?} key")]
    InvalidKey {
        /// The algorithm.
        alg: CoseAlgorithm,
    },
}

/// A credential public key as Tenet stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// The algorithm the credential signs with.
    pub alg: CoseAlgorithm,
    /// The key material.
    pub key: KeyMaterial,
}

/// The key material of a [`PublicKey`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMaterial {
    /// An elliptic-curve point (COSE kty 2).
    Ec2 {
        /// The curve.
        curve: Curve,
        /// X coordinate, big-endian.
        #[serde(with = "hex::serde")]
        x: Vec<u8>,
        /// Y coordinate, big-endian.
        #[serde(with = "hex::serde")]
        y: Vec<u8>,
    },
    /// An octet key pair (COSE kty 1): Ed25519 or Ed448.
    Okp {
        /// The curve.
        curve: Curve,
        /// The public key.
        #[serde(with = "hex::serde")]
        x: Vec<u8>,
    },
    /// An RSA key (COSE kty 3).
    Rsa {
        /// The modulus, big-endian.
        #[serde(with = "hex::serde")]
        n: Vec<u8>,
        /// The public exponent, big-endian.
        #[serde(with = "hex::serde")]
        e: Vec<u8>,
    },
}

/// RSA moduli Tenet accepts: 2048 to 8192 bits, as aws-lc-rs verifies them.
const RSA_MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

impl PublicKey {
    /// Read a COSE_Key (the credentialPublicKey of attested credential data). The algorithm
    /// must be one Tenet accepts and the key type, curve and lengths must go with it; the key
    /// must be a valid point or RSA key.
    pub fn from_cose(value: &Value) -> Result<Self, KeyError> {
        let Value::Map(map) = value else {
            return Err(malformed("not a CBOR map"));
        };
        let get = |label: i128| map.get(&Value::Integer(label));
        let int = |label: i128, what: &str| match get(label) {
            Some(Value::Integer(i)) => Ok(*i),
            _ => Err(malformed(&format!(
                "{what} ({label}) is missing or not an integer"
            ))),
        };
        let bytes = |label: i128, what: &str| match get(label) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(malformed(&format!(
                "{what} ({label}) is missing or not a byte string"
            ))),
        };
        let kty = int(1, "kty")?;
        let alg_id = int(3, "alg")?;
        let alg = i64::try_from(alg_id)
            .ok()
            .and_then(CoseAlgorithm::from_id)
            .ok_or(KeyError::UnsupportedAlgorithm {
                alg: i64::try_from(alg_id).unwrap_or(i64::MIN),
            })?;
        let crv = match kty {
            1 | 2 => Some(int(-1, "crv")?),
            _ => None,
        };
        let mismatch = || KeyError::AlgorithmMismatch {
            alg: alg.id(),
            kty,
            crv,
        };
        let curve = crv
            .map(|c| Curve::from_id(c).ok_or_else(mismatch))
            .transpose()?;
        let key = match (kty, alg, curve) {
            (2, CoseAlgorithm::Es256, Some(Curve::P256))
            | (2, CoseAlgorithm::Es384, Some(Curve::P384))
            | (2, CoseAlgorithm::Es512, Some(Curve::P521)) => {
                let curve = curve.ok_or_else(mismatch)?;
                let (x, y) = (bytes(-2, "x")?, bytes(-3, "y")?);
                for (what, v) in [("x", &x), ("y", &y)] {
                    exact_len(what, v, curve.key_len())?;
                }
                KeyMaterial::Ec2 { curve, x, y }
            }
            (1, CoseAlgorithm::EdDsa, Some(c @ (Curve::Ed25519 | Curve::Ed448)))
            | (1, CoseAlgorithm::Ed448, Some(c @ Curve::Ed448)) => {
                let x = bytes(-2, "x")?;
                exact_len("x", &x, c.key_len())?;
                KeyMaterial::Okp { curve: c, x }
            }
            (3, CoseAlgorithm::Rs256, None) => {
                let (n, e) = (bytes(-1, "n")?, bytes(-2, "e")?);
                if !RSA_MODULUS_BYTES.contains(&n.len()) || n.first() == Some(&0) {
                    return Err(KeyError::BadLength {
                        what: "n",
                        len: n.len(),
                        expected: "expected 256 to 1024 without a leading zero (2048-8192 bits)"
                            .into(),
                    });
                }
                if e.is_empty() || e.len() > 4 || e.first() == Some(&0) {
                    return Err(KeyError::BadLength {
                        what: "e",
                        len: e.len(),
                        expected: "expected 1 to 4 without a leading zero".into(),
                    });
                }
                KeyMaterial::Rsa { n, e }
            }
            _ => return Err(mismatch()),
        };
        let key = PublicKey { alg, key };
        key.validate()?;
        Ok(key)
    }

    /// Whether webauthn-rs 0.6 can verify this key's signatures (ES256, ES384, 2048-bit RS256).
    pub fn webauthn_rs_verifies(&self) -> bool {
        match &self.key {
            KeyMaterial::Ec2 { curve, .. } => matches!(curve, Curve::P256 | Curve::P384),
            KeyMaterial::Rsa { n, .. } => n.len() == 256,
            KeyMaterial::Okp { .. } => false,
        }
    }

    /// Check the key material is a valid key (a point on its curve, a usable RSA key).
    fn validate(&self) -> Result<(), KeyError> {
        let invalid = || KeyError::InvalidKey { alg: self.alg };
        match &self.key {
            KeyMaterial::Ec2 { .. }
            | KeyMaterial::Okp {
                curve: Curve::Ed25519,
                ..
            } => {
                let (algorithm, point) = self.lc_key().ok_or_else(invalid)?;
                lc::ParsedPublicKey::new(algorithm, point)
                    .map(|_| ())
                    .map_err(|_| invalid())
            }
            KeyMaterial::Okp { x, .. } => ed448_key(x).map(|_| ()).ok_or_else(invalid),
            KeyMaterial::Rsa { e, .. } => {
                // aws-lc-rs checks the modulus at verification; the exponent must be odd, > 1.
                let odd = e.last().is_some_and(|b| b & 1 == 1);
                if odd && e.as_slice() != [1] {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
        }
    }

    /// The aws-lc-rs algorithm and raw key bytes, for ECDSA and Ed25519 keys.
    fn lc_key(&self) -> Option<(&'static dyn VerificationAlgorithm, Vec<u8>)> {
        match &self.key {
            KeyMaterial::Ec2 { curve, x, y } => {
                let algorithm: &'static dyn VerificationAlgorithm = match curve {
                    Curve::P256 => &lc::ECDSA_P256_SHA256_ASN1,
                    Curve::P384 => &lc::ECDSA_P384_SHA384_ASN1,
                    Curve::P521 => &lc::ECDSA_P521_SHA512_ASN1,
                    Curve::Ed25519 | Curve::Ed448 => return None,
                };
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some((algorithm, point))
            }
            KeyMaterial::Okp {
                curve: Curve::Ed25519,
                x,
            } => Some((&lc::ED25519, x.clone())),
            KeyMaterial::Okp { .. } | KeyMaterial::Rsa { .. } => None,
        }
    }

    /// Whether `signature` is this key's valid signature of `message` (DER for ECDSA).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&lc::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            KeyMaterial::Okp {
                curve: Curve::Ed448,
                x,
            } => {
                let Some(key) = ed448_key(x) else {
                    return false;
                };
                ed448_goldilocks_plus::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify_raw(&sig, message).is_ok())
            }
            _ => self.lc_key().is_some_and(|(algorithm, point)| {
                lc::UnparsedPublicKey::new(algorithm, point)
                    .verify(message, signature)
                    .is_ok()
            }),
        }
    }
}

fn ed448_key(x: &[u8]) -> Option<ed448_goldilocks_plus::VerifyingKey> {
    let bytes: [u8; 57] = x.try_into().ok()?;
    ed448_goldilocks_plus::VerifyingKey::from_bytes(&bytes).ok()
}

fn exact_len(what: &'static str, v: &[u8], len: usize) -> Result<(), KeyError> {
    if v.len() == len {
        Ok(())
    } else {
        Err(KeyError::BadLength {
            what,
            len: v.len(),
            expected: format!("expected {len}"),
        })
    }
}

fn malformed(reason: &str) -> KeyError {
    KeyError::Malformed {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
    };

    fn cose(entries: Vec<(i128, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Integer(k), v))
                .collect(),
        )
    }

    fn p521() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P521_SHA512_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = point[1..].split_at(66);
        let value = cose(vec![
            (1, Value::Integer(2)),
            (3, Value::Integer(-36)),
            (-1, Value::Integer(3)),
            (-2, Value::Bytes(x.to_vec())),
            (-3, Value::Bytes(y.to_vec())),
        ]);
        (pair, value)
    }

    #[test]
    fn p521_and_ed25519_signatures_verify_and_a_flipped_byte_does_not() {
        let rng = SystemRandom::new();
        let (pair, value) = p521();
        let key = PublicKey::from_cose(&value).unwrap();
        assert!(!key.webauthn_rs_verifies());
        let mut sig = pair.sign(&rng, b"signed").unwrap().as_ref().to_vec();
        assert!(key.verify(b"signed", &sig));
        assert!(!key.verify(b"signeD", &sig));
        let last = sig.len() - 1;
        sig[last] ^= 1;
        assert!(!key.verify(b"signed", &sig));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_cose(&cose(vec![
            (1, Value::Integer(1)),
            (3, Value::Integer(-8)),
            (-1, Value::Integer(6)),
            (-2, Value::Bytes(ed.public_key().as_ref().to_vec())),
        ]))
        .unwrap();
        let mut sig = ed.sign(b"signed").as_ref().to_vec();
        assert!(key.verify(b"signed", &sig));
        sig[0] ^= 1;
        assert!(!key.verify(b"signed", &sig));
        // An Ed25519 key stored as Ed448 (wrong curve) does not verify either.
        assert!(!key.verify(b"signed", &[0; 114]));
    }

    #[test]
    fn wrong_pairings_lengths_and_algorithms_are_refused() {
        let (_, value) = p521();
        let Value::Map(good) = value else { panic!() };
        let with = |label: i128, v: Value| {
            let mut m = good.clone();
            m.insert(Value::Integer(label), v);
            PublicKey::from_cose(&Value::Map(m))
        };
        // ES512 on P-256, ES256 on P-521, an OKP curve on EC2.
        assert!(matches!(
            with(-1, Value::Integer(1)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            with(3, Value::Integer(-7)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(
            with(-1, Value::Integer(6)),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        // RS1 and unknown algorithms, a short coordinate, a point off the curve.
        assert!(matches!(
            with(3, Value::Integer(-65535)),
            Err(KeyError::UnsupportedAlgorithm { alg: -65535 })
        ));
        assert!(matches!(
            with(-2, Value::Bytes(vec![1; 65])),
            Err(KeyError::BadLength { .. })
        ));
        assert!(matches!(
            with(-3, Value::Bytes(vec![1; 66])),
            Err(KeyError::InvalidKey { .. })
        ));
        assert!(matches!(
            with(-3, Value::Text("y".into())),
            Err(KeyError::Malformed { .. })
        ));
        // Ed448 (-53) needs crv Ed448; an Ed448 key must be 57 bytes.
        let okp = |alg: i128, crv: i128, len: usize| {
            PublicKey::from_cose(&cose(vec![
                (1, Value::Integer(1)),
                (3, Value::Integer(alg)),
                (-1, Value::Integer(crv)),
                (-2, Value::Bytes(vec![7; len])),
            ]))
        };
        assert!(matches!(
            okp(-53, 6, 32),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert!(matches!(okp(-53, 7, 32), Err(KeyError::BadLength { .. })));
        // RSA: a 1024-bit modulus, an even exponent.
        let rsa = |n: Vec<u8>, e: Vec<u8>| {
            PublicKey::from_cose(&cose(vec![
                (1, Value::Integer(3)),
                (3, Value::Integer(-257)),
                (-1, Value::Bytes(n)),
                (-2, Value::Bytes(e)),
            ]))
        };
        assert!(matches!(
            rsa(vec![0xc5; 128], vec![1, 0, 1]),
            Err(KeyError::BadLength { .. })
        ));
        assert!(matches!(
            rsa(vec![0xc5; 436], vec![1, 0, 2]),
            Err(KeyError::InvalidKey { .. })
        ));
        let odd_sized = rsa(vec![0xc5; 436], vec![1, 0, 1]).unwrap();
        assert!(!odd_sized.webauthn_rs_verifies());
        assert!(!odd_sized.verify(b"signed", &[0; 436]));
    }
}
