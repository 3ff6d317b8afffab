//! Tenet's own WebAuthn verification, for what webauthn-rs 0.6 cannot verify: credentials whose
//! public key is Ed25519, Ed448, ECDSA P-521 or RSA other than 2048-bit, and registrations in a
//! cross-origin frame (which webauthn-rs refuses outright). Everything else stays with
//! webauthn-rs.
//!
//! It follows WebAuthn Level 3 sections 7.1 (registration) and 7.2 (authentication). The
//! caller (`ceremony.rs`) has already closed the ceremony, applied the origin, cross-origin and
//! rpIdHash rules, and does the credential-uniqueness and counter checks; this module checks
//! the client data type and challenge, the authenticator data (flags, attested credential data,
//! extensions, no trailing bytes), the credential id, the algorithm, the attestation statement
//! (formats `none`, `packed`, and `tpm` in `tpm.rs` and `android-key` in `android_key.rs`) and
//! the assertion signature.

use serde::Deserialize;
use serde_cbor_2::Value;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cose::{CoseAlgorithm, KeyError, PublicKey};

/// The longest credential id WebAuthn allows.
pub(crate) const MAX_CREDENTIAL_ID: usize = 1023;
/// The FIDO AAGUID certificate extension (id-fido-gen-ce-aaguid).
const AAGUID_OID: &str = "1.3.6.1.4.1.45724.1.1.4";

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// Why Tenet's own verifier refused a registration or an assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtendedError {
    /// clientDataJSON is not for this kind of ceremony.
    #[error("clientDataJSON type is {found:?}, expected {expected:?}")]
    ClientDataType {
        /// The type sent.
        found: String,
        /// The type expected.
        expected: &'static str,
    },
    /// The challenge signed is not the one this ceremony issued.
    #[error("the challenge in clientDataJSON is not the one issued")]
    ChallengeMismatch,
    /// A structure could not be read.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The user-present flag is not set.
    #[error("the authenticator did not report the user present")]
    UserNotPresent,
    /// User verification was required and the authenticator did not report it.
    #[error("user verification was required and not performed")]
    UserNotVerified,
    /// The backup flags are inconsistent or changed since registration.
    #[error("backup flags: {reason}")]
    BackupFlags {
        /// What is wrong.
        reason: &'static str,
    },
    /// The credential id in the authenticator data is too long or not the one sent.
    #[error("credential id: {reason}")]
    CredentialId {
        /// What is wrong.
        reason: &'static str,
    },
    /// The credential public key was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The attestation statement format is not one Tenet verifies.
    #[error(
        "attestation format {fmt:?} is not verified for this credential (only none, packed, tpm and android-key)"
    )]
    UnsupportedAttestation {
        /// The format.
        fmt: String,
    },
    /// The attestation statement is wrong.
    #[error("attestation statement refused: {reason}")]
    Attestation {
        /// What is wrong.
        reason: String,
    },
    /// The assertion signature does not verify with the stored public key.
    #[error("the assertion signature does not verify with the credential's public key")]
    SignatureInvalid,
    /// The userHandle of the assertion is not this user's.
    #[error("the assertion's userHandle is not this user's")]
    UserHandleMismatch,
}

impl ExtendedError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        ExtendedError::Malformed {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn attestation(reason: impl Into<String>) -> Self {
        ExtendedError::Attestation {
            reason: reason.into(),
        }
    }
}

/// The members of clientDataJSON this module checks (origin and cross-origin are checked
/// before, by the origin rule).
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    type_: String,
    challenge: String,
}

/// Check clientDataJSON's type and challenge.
pub(crate) fn check_client_data(
    client_data_json: &[u8],
    expected_type: &'static str,
    challenge: &[u8],
) -> Result<(), ExtendedError> {
    use base64::Engine as _;
    let client: ClientData = serde_json::from_slice(client_data_json)
        .map_err(|e| ExtendedError::malformed("clientDataJSON", e.to_string()))?;
    if client.type_ != expected_type {
        return Err(ExtendedError::ClientDataType {
            found: client.type_,
            expected: expected_type,
        });
    }
    let sent = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(client.challenge.trim_end_matches('='))
        .map_err(|_| ExtendedError::ChallengeMismatch)?;
    if subtle::ConstantTimeEq::ct_eq(sent.as_slice(), challenge).into() {
        Ok(())
    } else {
        Err(ExtendedError::ChallengeMismatch)
    }
}

/// Authenticator data, read.
#[derive(Debug)]
pub(crate) struct AuthData {
    pub(crate) rp_id_hash: Vec<u8>,
    pub(crate) flags: u8,
    pub(crate) counter: u32,
    pub(crate) attested: Option<AttestedCredential>,
}

/// Attested credential data, read.
#[derive(Debug)]
pub(crate) struct AttestedCredential {
    pub(crate) aaguid: [u8; 16],
    pub(crate) credential_id: Vec<u8>,
    /// The credentialPublicKey as CBOR (read into a [`PublicKey`] only on Tenet's path).
    pub(crate) public_key: Value,
}

impl AuthData {
    pub(crate) fn user_present(&self) -> bool {
        self.flags & FLAG_UP != 0
    }
    pub(crate) fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }
    pub(crate) fn backup_eligible(&self) -> bool {
        self.flags & FLAG_BE != 0
    }
    pub(crate) fn backup_state(&self) -> bool {
        self.flags & FLAG_BS != 0
    }

    /// Read authenticator data: rpIdHash, flags, counter, attested credential data when AT is
    /// set, extensions when ED is set, and nothing after.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ExtendedError> {
        let bad = |reason: &str| ExtendedError::malformed("authenticatorData", reason);
        let (head, mut rest) = bytes
            .split_at_checked(37)
            .ok_or_else(|| bad("shorter than 37 bytes"))?;
        let (rp_id_hash, tail) = head.split_at(32);
        let (flags, counter) = tail.split_first().ok_or_else(|| bad("no flags"))?;
        let counter: [u8; 4] = counter.try_into().map_err(|_| bad("no counter"))?;
        let flags = *flags;
        let attested = if flags & FLAG_AT != 0 {
            let (aaguid, after) = rest
                .split_at_checked(16)
                .ok_or_else(|| bad("attested credential data is cut short"))?;
            let (len, after) = after
                .split_at_checked(2)
                .ok_or_else(|| bad("attested credential data is cut short"))?;
            let len: [u8; 2] = len
                .try_into()
                .map_err(|_| bad("attested credential data is cut short"))?;
            let len = usize::from(u16::from_be_bytes(len));
            let (credential_id, after) = after
                .split_at_checked(len)
                .ok_or_else(|| bad("credential id is cut short"))?;
            let (public_key, after) = read_cbor(after).map_err(|e| bad(&e))?;
            rest = after;
            Some(AttestedCredential {
                aaguid: aaguid.try_into().map_err(|_| bad("aaguid"))?,
                credential_id: credential_id.to_vec(),
                public_key,
            })
        } else {
            None
        };
        if flags & FLAG_ED != 0 {
            let (extensions, after) = read_cbor(rest).map_err(|e| bad(&e))?;
            if !matches!(extensions, Value::Map(_)) {
                return Err(bad("extensions are not a CBOR map"));
            }
            rest = after;
        }
        if !rest.is_empty() {
            return Err(bad("bytes left after the authenticator data"));
        }
        Ok(AuthData {
            rp_id_hash: rp_id_hash.to_vec(),
            flags,
            counter: u32::from_be_bytes(counter),
            attested,
        })
    }

    /// The backup flags: BS needs BE (L3 7.1 step 17, 7.2 step 18).
    fn check_backup_flags(&self) -> Result<(), ExtendedError> {
        if self.backup_state() && !self.backup_eligible() {
            return Err(ExtendedError::BackupFlags {
                reason: "backed up (BS) but not backup eligible (BE)",
            });
        }
        Ok(())
    }
}

/// Read one CBOR item from the front of `bytes`; return it and what follows.
fn read_cbor(bytes: &[u8]) -> Result<(Value, &[u8]), String> {
    let mut de = serde_cbor_2::Deserializer::from_slice(bytes);
    let value = serde::Deserialize::deserialize(&mut de).map_err(|e| e.to_string())?;
    let rest = bytes
        .get(de.byte_offset()..)
        .ok_or_else(|| "CBOR item overruns the data".to_owned())?;
    Ok((value, rest))
}

/// An attestation object, read: its format, statement and authenticator data.
pub(crate) struct AttestationObject {
    pub(crate) fmt: String,
    pub(crate) att_stmt: Value,
    pub(crate) auth_data_bytes: Vec<u8>,
    pub(crate) auth_data: AuthData,
}

impl AttestationObject {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ExtendedError> {
        let bad = |reason: &str| ExtendedError::malformed("attestationObject", reason);
        let value: Value = serde_cbor_2::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let Value::Map(map) = value else {
            return Err(bad("not a CBOR map"));
        };
        let member = |name: &str| map.get(&Value::Text(name.to_owned()));
        let Some(Value::Text(fmt)) = member("fmt") else {
            return Err(bad("fmt is missing"));
        };
        let Some(att_stmt @ Value::Map(_)) = member("attStmt") else {
            return Err(bad("attStmt is missing or not a map"));
        };
        let Some(Value::Bytes(auth_data_bytes)) = member("authData") else {
            return Err(bad("authData is missing"));
        };
        Ok(AttestationObject {
            fmt: fmt.clone(),
            att_stmt: att_stmt.clone(),
            auth_data: AuthData::parse(auth_data_bytes)?,
            auth_data_bytes: auth_data_bytes.clone(),
        })
    }
}

/// What a registration verified by Tenet yields.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) credential_id: Vec<u8>,
    pub(crate) public_key: PublicKey,
    pub(crate) attestation_format: String,
    pub(crate) counter: u32,
    pub(crate) user_verified: bool,
    pub(crate) backup_eligible: bool,
    pub(crate) backup_state: bool,
}

/// Registration (L3 7.1) after the origin, cross-origin and rpIdHash rules: client data type
/// and challenge, UP, UV when `require_uv`, backup flags, attested credential data and id,
/// the algorithm, and the attestation statement.
pub(crate) fn verify_registration(
    object: &AttestationObject,
    client_data_json: &[u8],
    challenge: &[u8],
    presented_id: &[u8],
    require_uv: bool,
) -> Result<Registered, ExtendedError> {
    check_client_data(client_data_json, "webauthn.create", challenge)?;
    let auth = &object.auth_data;
    if !auth.user_present() {
        return Err(ExtendedError::UserNotPresent);
    }
    if require_uv && !auth.user_verified() {
        return Err(ExtendedError::UserNotVerified);
    }
    auth.check_backup_flags()?;
    let attested = auth.attested.as_ref().ok_or_else(|| {
        ExtendedError::malformed("authenticatorData", "no attested credential data")
    })?;
    if attested.credential_id.len() > MAX_CREDENTIAL_ID {
        return Err(ExtendedError::CredentialId {
            reason: "longer than 1023 bytes",
        });
    }
    if attested.credential_id.is_empty() {
        return Err(ExtendedError::CredentialId { reason: "empty" });
    }
    if attested.credential_id != presented_id {
        return Err(ExtendedError::CredentialId {
            reason: "the response's rawId is not the id in the attested credential data",
        });
    }
    // Only offered algorithms parse (PublicKey::from_cose refuses the others).
    let public_key = PublicKey::from_cose(&attested.public_key)?;
    let hash = Sha256::digest(client_data_json);
    let signed = [object.auth_data_bytes.as_slice(), hash.as_slice()].concat();
    match object.fmt.as_str() {
        "none" => match &object.att_stmt {
            Value::Map(m) if m.is_empty() => {}
            _ => return Err(ExtendedError::attestation("none with a non-empty attStmt")),
        },
        "packed" => verify_packed(&object.att_stmt, &signed, &public_key, &attested.aaguid)?,
        "tpm" => crate::tpm::verify(&object.att_stmt, &signed, &public_key, &attested.aaguid)?,
        "android-key" => crate::android_key::verify(&object.att_stmt, &signed, &public_key)?,
        other => {
            return Err(ExtendedError::UnsupportedAttestation {
                fmt: other.to_owned(),
            });
        }
    }
    Ok(Registered {
        credential_id: attested.credential_id.clone(),
        public_key,
        attestation_format: object.fmt.clone(),
        counter: auth.counter,
        user_verified: auth.user_verified(),
        backup_eligible: auth.backup_eligible(),
        backup_state: auth.backup_state(),
    })
}

/// The packed attestation statement (L3 8.2): self attestation with the credential key, or an
/// x5c attestation certificate meeting the packed certificate requirements.
fn verify_packed(
    att_stmt: &Value,
    signed: &[u8],
    credential_key: &PublicKey,
    aaguid: &[u8; 16],
) -> Result<(), ExtendedError> {
    let Value::Map(map) = att_stmt else {
        return Err(ExtendedError::attestation("packed attStmt is not a map"));
    };
    let member = |name: &str| map.get(&Value::Text(name.to_owned()));
    let Some(Value::Integer(alg)) = member("alg") else {
        return Err(ExtendedError::attestation("packed alg is missing"));
    };
    let Some(Value::Bytes(sig)) = member("sig") else {
        return Err(ExtendedError::attestation("packed sig is missing"));
    };
    if member("ecdaaKeyId").is_some() {
        return Err(ExtendedError::attestation("ECDAA is not supported"));
    }
    match member("x5c") {
        None => {
            if i128::from(credential_key.alg.id()) != *alg {
                return Err(ExtendedError::attestation(format!(
                    "self attestation alg {alg} is not the credential's {}",
                    credential_key.alg.id()
                )));
            }
            if !credential_key.verify(signed, sig) {
                return Err(ExtendedError::attestation(
                    "self attestation signature is invalid",
                ));
            }
            Ok(())
        }
        Some(Value::Array(chain)) => {
            let Some(Value::Bytes(der)) = chain.first() else {
                return Err(ExtendedError::attestation("x5c is empty"));
            };
            let (rest, cert) = X509Certificate::from_der(der)
                .map_err(|e| ExtendedError::attestation(format!("x5c[0]: {e}")))?;
            if !rest.is_empty() {
                return Err(ExtendedError::attestation("x5c[0] has trailing bytes"));
            }
            check_packed_certificate(&cert, aaguid)?;
            let alg = i64::try_from(*alg)
                .ok()
                .and_then(CoseAlgorithm::from_id)
                .ok_or_else(|| {
                    ExtendedError::attestation(format!("x5c alg {alg} is not supported"))
                })?;
            if !verify_with_certificate(&cert, alg, signed, sig) {
                return Err(ExtendedError::attestation(
                    "signature does not verify with the attestation certificate",
                ));
            }
            Ok(())
        }
        Some(_) => Err(ExtendedError::attestation("x5c is not an array")),
    }
}

/// The packed attestation certificate requirements (L3 8.2.1): version 3; subject C, O,
/// OU = "Authenticator Attestation" and CN; not a CA; the AAGUID extension, if present, not
/// critical and equal to the authenticator's AAGUID.
fn check_packed_certificate(
    cert: &X509Certificate<'_>,
    aaguid: &[u8; 16],
) -> Result<(), ExtendedError> {
    let refuse =
        |reason: &str| ExtendedError::attestation(format!("attestation certificate: {reason}"));
    if cert.version().0 != 2 {
        return Err(refuse("not version 3"));
    }
    let subject = cert.subject();
    fn one<'a>(
        mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    ) -> Option<String> {
        it.next().and_then(|a| a.as_str().ok().map(str::to_owned))
    }
    let country = one(subject.iter_country()).unwrap_or_default();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(refuse("subject C is not a two-letter country code"));
    }
    if one(subject.iter_organization()).is_none_or(|o| o.is_empty()) {
        return Err(refuse("subject O is missing"));
    }
    if one(subject.iter_organizational_unit()).as_deref() != Some("Authenticator Attestation") {
        return Err(refuse("subject OU is not \"Authenticator Attestation\""));
    }
    if one(subject.iter_common_name()).is_none_or(|c| c.is_empty()) {
        return Err(refuse("subject CN is missing"));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(refuse("is a CA certificate")),
        Ok(_) => {}
        Err(_) => return Err(refuse("basic constraints are malformed")),
    }
    check_aaguid_extension(cert, aaguid).map_err(refuse)
}

/// The id-fido-gen-ce-aaguid extension, if the certificate has it: not critical and equal to
/// the authenticator's AAGUID.
pub(crate) fn check_aaguid_extension(
    cert: &X509Certificate<'_>,
    aaguid: &[u8; 16],
) -> Result<(), &'static str> {
    for ext in cert.extensions() {
        if ext.oid.to_id_string() == AAGUID_OID {
            if ext.critical {
                return Err("the AAGUID extension is critical");
            }
            let inner = x509_parser::der_parser::der::parse_der_octetstring(ext.value)
                .ok()
                .and_then(|(_, o)| o.as_slice().ok().map(<[u8]>::to_vec));
            if inner.as_deref() != Some(aaguid.as_slice()) {
                return Err("the AAGUID extension is not the authenticator's AAGUID");
            }
        }
    }
    Ok(())
}

/// Verify `signature` over `message` with the attestation certificate's public key.
pub(crate) fn verify_with_certificate(
    cert: &X509Certificate<'_>,
    alg: CoseAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use aws_lc_rs::signature as lc;
    let spki = cert.public_key();
    let raw = spki.subject_public_key.data.as_ref();
    let algorithm: &'static dyn lc::VerificationAlgorithm = match alg {
        CoseAlgorithm::Es256 => &lc::ECDSA_P256_SHA256_ASN1,
        CoseAlgorithm::Es384 => &lc::ECDSA_P384_SHA384_ASN1,
        CoseAlgorithm::Es512 => &lc::ECDSA_P521_SHA512_ASN1,
        CoseAlgorithm::Rs256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        CoseAlgorithm::EdDsa => &lc::ED25519,
        CoseAlgorithm::Ed448 => return false,
    };
    // The SPKI algorithm must agree with alg: aws-lc-rs refuses a key of another type.
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let fits = match alg {
        CoseAlgorithm::Es256 | CoseAlgorithm::Es384 | CoseAlgorithm::Es512 => {
            key_oid == "1.2.840.10045.2.1"
        }
        CoseAlgorithm::Rs256 => key_oid == "1.2.840.113549.1.1.1",
        CoseAlgorithm::EdDsa => key_oid == "1.3.101.112",
        CoseAlgorithm::Ed448 => false,
    };
    fits && lc::UnparsedPublicKey::new(algorithm, raw)
        .verify(message, signature)
        .is_ok()
}

/// What an assertion verified by Tenet yields.
#[derive(Debug)]
pub(crate) struct Asserted {
    pub(crate) counter: u32,
    pub(crate) user_verified: bool,
    pub(crate) backup_state: bool,
}

/// The stored facts an assertion is checked against.
pub(crate) struct Stored<'a> {
    pub(crate) public_key: &'a PublicKey,
    pub(crate) backup_eligible: bool,
    pub(crate) user_handle: &'a [u8],
}

/// Authentication (L3 7.2) after the origin, cross-origin and rpIdHash rules and the lookup of
/// the credential: client data type and challenge, userHandle, UP, UV when `require_uv`, backup
/// flags against the stored ones, and the signature. The counter is the caller's.
pub(crate) fn verify_assertion(
    stored: &Stored<'_>,
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
    user_handle: Option<&[u8]>,
    challenge: &[u8],
    require_uv: bool,
) -> Result<Asserted, ExtendedError> {
    check_client_data(client_data_json, "webauthn.get", challenge)?;
    if user_handle.is_some_and(|h| h != stored.user_handle) {
        return Err(ExtendedError::UserHandleMismatch);
    }
    let auth = AuthData::parse(authenticator_data)?;
    if auth.attested.is_some() {
        return Err(ExtendedError::malformed(
            "authenticatorData",
            "an assertion carries attested credential data",
        ));
    }
    if !auth.user_present() {
        return Err(ExtendedError::UserNotPresent);
    }
    if require_uv && !auth.user_verified() {
        return Err(ExtendedError::UserNotVerified);
    }
    auth.check_backup_flags()?;
    if auth.backup_eligible() != stored.backup_eligible {
        return Err(ExtendedError::BackupFlags {
            reason: "backup eligibility changed since registration",
        });
    }
    let hash = Sha256::digest(client_data_json);
    let signed = [authenticator_data, hash.as_slice()].concat();
    if !stored.public_key.verify(&signed, signature) {
        return Err(ExtendedError::SignatureInvalid);
    }
    Ok(Asserted {
        counter: auth.counter,
        user_verified: auth.user_verified(),
        backup_state: auth.backup_state(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use base64::Engine as _;
    use rcgen::{CertificateParams, CustomExtension, DnType, IsCa, SigningKey as _};
    use std::collections::BTreeMap;

    const CHALLENGE: &[u8] = b"a challenge of thirty-two bytes!";
    const ID: &[u8] = b"credential-id";
    const AAGUID: [u8; 16] = [9; 16];

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn cbor(value: &Value) -> Vec<u8> {
        serde_cbor_2::to_vec(value).unwrap()
    }

    fn ed25519() -> (Ed25519KeyPair, Vec<u8>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pair =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref())
                .unwrap();
        let key = Value::Map(BTreeMap::from([
            (Value::Integer(1), Value::Integer(1)),
            (Value::Integer(3), Value::Integer(-8)),
            (Value::Integer(-1), Value::Integer(6)),
            (
                Value::Integer(-2),
                Value::Bytes(pair.public_key().as_ref().to_vec()),
            ),
        ]));
        (pair, cbor(&key))
    }

    fn auth_data(flags: u8, counter: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut out = Sha256::digest(b"example.test").to_vec();
        out.push(flags);
        out.extend_from_slice(&counter.to_be_bytes());
        if let Some((id, key)) = attested {
            out.extend_from_slice(&AAGUID);
            out.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
            out.extend_from_slice(id);
            out.extend_from_slice(key);
        }
        out
    }

    fn client_data(kind: &str, challenge: &[u8]) -> Vec<u8> {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(challenge);
        format!(
            r#"{{"type":"{kind}","challenge":"{challenge}","origin":"https://login.example.test"}}"#
        )
        .into_bytes()
    }

    fn object(fmt: &str, att_stmt: Value, auth_data: &[u8]) -> AttestationObject {
        let bytes = cbor(&Value::Map(BTreeMap::from([
            (text("fmt"), text(fmt)),
            (text("attStmt"), att_stmt),
            (text("authData"), Value::Bytes(auth_data.to_vec())),
        ])));
        AttestationObject::parse(&bytes).unwrap()
    }

    fn empty() -> Value {
        Value::Map(BTreeMap::new())
    }

    fn signed(auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
        [auth_data, Sha256::digest(client_data).as_slice()].concat()
    }

    const UP_UV: u8 = FLAG_UP | FLAG_UV | FLAG_AT;

    #[test]
    fn none_registration_checks_type_challenge_flags_and_credential_id() {
        let (_, key) = ed25519();
        let cd = client_data("webauthn.create", CHALLENGE);
        let register = |flags: u8, id: &[u8], presented: &[u8], cd: &[u8], uv: bool| {
            let data = auth_data(flags, 0, Some((id, &key)));
            verify_registration(
                &object("none", empty(), &data),
                cd,
                CHALLENGE,
                presented,
                uv,
            )
        };
        let ok = register(UP_UV, ID, ID, &cd, true).unwrap();
        assert_eq!(ok.credential_id, ID);
        assert_eq!(ok.public_key.alg, CoseAlgorithm::EdDsa);
        assert!(ok.user_verified);

        let other_challenge = client_data("webauthn.create", b"another challenge");
        assert_eq!(
            register(UP_UV, ID, ID, &other_challenge, true).unwrap_err(),
            ExtendedError::ChallengeMismatch
        );
        let get = client_data("webauthn.get", CHALLENGE);
        assert!(matches!(
            register(UP_UV, ID, ID, &get, true),
            Err(ExtendedError::ClientDataType { .. })
        ));
        assert_eq!(
            register(FLAG_UV | FLAG_AT, ID, ID, &cd, false).unwrap_err(),
            ExtendedError::UserNotPresent
        );
        assert_eq!(
            register(FLAG_UP | FLAG_AT, ID, ID, &cd, true).unwrap_err(),
            ExtendedError::UserNotVerified
        );
        assert!(register(FLAG_UP | FLAG_AT, ID, ID, &cd, false).is_ok());
        assert!(matches!(
            register(UP_UV | FLAG_BS, ID, ID, &cd, true),
            Err(ExtendedError::BackupFlags { .. })
        ));
        assert!(matches!(
            register(UP_UV, ID, b"another-id", &cd, true),
            Err(ExtendedError::CredentialId { .. })
        ));
        let long = vec![7; 1024];
        assert!(matches!(
            register(UP_UV, &long, &long, &cd, true),
            Err(ExtendedError::CredentialId { .. })
        ));

        let data = auth_data(UP_UV, 0, Some((ID, &key)));
        let statement = Value::Map(BTreeMap::from([(text("alg"), Value::Integer(-8))]));
        assert!(matches!(
            verify_registration(&object("none", statement, &data), &cd, CHALLENGE, ID, true),
            Err(ExtendedError::Attestation { .. })
        ));
        assert!(matches!(
            verify_registration(
                &object("fido-u2f", empty(), &data),
                &cd,
                CHALLENGE,
                ID,
                true
            ),
            Err(ExtendedError::UnsupportedAttestation { .. })
        ));
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(matches!(
            AuthData::parse(&trailing),
            Err(ExtendedError::Malformed { .. })
        ));
        assert!(matches!(
            AuthData::parse(&data[..data.len() - 1]),
            Err(ExtendedError::Malformed { .. })
        ));
    }

    #[test]
    fn packed_self_attestation_needs_the_credential_alg_and_signature() {
        let (pair, key) = ed25519();
        let cd = client_data("webauthn.create", CHALLENGE);
        let data = auth_data(UP_UV, 0, Some((ID, &key)));
        let sig = pair.sign(&signed(&data, &cd)).as_ref().to_vec();
        let packed = |alg: i128, sig: &[u8]| {
            let statement = Value::Map(BTreeMap::from([
                (text("alg"), Value::Integer(alg)),
                (text("sig"), Value::Bytes(sig.to_vec())),
            ]));
            verify_registration(
                &object("packed", statement, &data),
                &cd,
                CHALLENGE,
                ID,
                true,
            )
        };
        assert!(packed(-8, &sig).is_ok());
        assert!(matches!(
            packed(-7, &sig),
            Err(ExtendedError::Attestation { .. })
        ));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(matches!(
            packed(-8, &bad),
            Err(ExtendedError::Attestation { .. })
        ));
    }

    fn attestation_cert(ou: &str, ca: bool, aaguid: Option<[u8; 16]>) -> (rcgen::KeyPair, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CountryName, "AA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Vendor");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        params
            .distinguished_name
            .push(DnType::CommonName, "Attestation");
        if ca {
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        if let Some(aaguid) = aaguid {
            let mut content = vec![0x04, 16];
            content.extend_from_slice(&aaguid);
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
                    content,
                ));
        }
        let der = params.self_signed(&key).unwrap().der().to_vec();
        (key, der)
    }

    #[test]
    fn packed_x5c_needs_a_conforming_certificate_that_signed() {
        let (_, key) = ed25519();
        let cd = client_data("webauthn.create", CHALLENGE);
        let data = auth_data(UP_UV, 0, Some((ID, &key)));
        let with = |cert: (rcgen::KeyPair, Vec<u8>), tamper: bool| {
            let mut sig = cert.0.sign(&signed(&data, &cd)).unwrap();
            if tamper {
                let last = sig.len() - 1;
                sig[last] ^= 1;
            }
            let statement = Value::Map(BTreeMap::from([
                (text("alg"), Value::Integer(-7)),
                (text("sig"), Value::Bytes(sig)),
                (text("x5c"), Value::Array(vec![Value::Bytes(cert.1)])),
            ]));
            verify_registration(
                &object("packed", statement, &data),
                &cd,
                CHALLENGE,
                ID,
                true,
            )
        };
        let good = || attestation_cert("Authenticator Attestation", false, Some(AAGUID));
        assert!(with(good(), false).is_ok());
        assert!(
            with(
                attestation_cert("Authenticator Attestation", false, None),
                false
            )
            .is_ok()
        );
        for refused in [
            with(good(), true),
            with(
                attestation_cert("Something Else", false, Some(AAGUID)),
                false,
            ),
            with(
                attestation_cert("Authenticator Attestation", true, Some(AAGUID)),
                false,
            ),
            with(
                attestation_cert("Authenticator Attestation", false, Some([1; 16])),
                false,
            ),
        ] {
            assert!(
                matches!(refused, Err(ExtendedError::Attestation { .. })),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn assertions_check_signature_user_handle_flags_and_uv() {
        let (pair, key) = ed25519();
        let reg_cd = client_data("webauthn.create", CHALLENGE);
        let data = auth_data(UP_UV, 0, Some((ID, &key)));
        let registered = verify_registration(
            &object("none", empty(), &data),
            &reg_cd,
            CHALLENGE,
            ID,
            true,
        )
        .unwrap();
        let stored = Stored {
            public_key: &registered.public_key,
            backup_eligible: false,
            user_handle: b"user",
        };
        let cd = client_data("webauthn.get", CHALLENGE);
        let assert = |flags: u8, handle: Option<&[u8]>, uv: bool, tamper: bool| {
            let data = auth_data(flags, 5, None);
            let mut sig = pair.sign(&signed(&data, &cd)).as_ref().to_vec();
            if tamper {
                sig[0] ^= 1;
            }
            verify_assertion(&stored, &cd, &data, &sig, handle, CHALLENGE, uv)
        };
        let ok = assert(FLAG_UP | FLAG_UV, Some(b"user"), true, false).unwrap();
        assert_eq!((ok.counter, ok.user_verified), (5, true));
        assert!(assert(FLAG_UP, None, false, false).is_ok());
        assert_eq!(
            assert(FLAG_UP | FLAG_UV, None, true, true).unwrap_err(),
            ExtendedError::SignatureInvalid
        );
        assert_eq!(
            assert(FLAG_UP, None, true, false).unwrap_err(),
            ExtendedError::UserNotVerified
        );
        assert_eq!(
            assert(FLAG_UV, None, false, false).unwrap_err(),
            ExtendedError::UserNotPresent
        );
        assert_eq!(
            assert(FLAG_UP, Some(b"someone else"), false, false).unwrap_err(),
            ExtendedError::UserHandleMismatch
        );
        assert!(matches!(
            assert(FLAG_UP | FLAG_BE, None, false, false),
            Err(ExtendedError::BackupFlags { .. })
        ));
        assert!(matches!(
            assert(FLAG_UP | FLAG_AT, None, false, false),
            Err(ExtendedError::Malformed { .. })
        ));
        let data = auth_data(FLAG_UP, 5, None);
        let sig = pair.sign(&signed(&data, &cd)).as_ref().to_vec();
        assert_eq!(
            verify_assertion(&stored, &cd, &data, &sig, None, b"other", false).unwrap_err(),
            ExtendedError::ChallengeMismatch
        );
    }
}
