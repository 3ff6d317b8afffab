//! The `android-key` attestation statement format (WebAuthn L3 8.4), verified by Tenet: the
//! signature over authenticatorData ‖ clientDataHash with the key of the first x5c certificate,
//! that key being the credential public key, and the certificate's key description extension
//! (1.3.6.1.4.1.11129.2.1.17) carrying clientDataHash as its attestation challenge, with no
//! `allApplications` in either authorization list.
//!
//! The origin and purpose checks of 8.4 read the union of the two authorization lists: an
//! origin other than KM_ORIGIN_GENERATED or a purpose other than KM_PURPOSE_SIGN is refused. A
//! list that states neither is not refused for that: like every attestation Tenet accepts, the
//! certificate is not chained to a trust root (Google's hardware attestation roots included),
//! so an authorization list proves nothing a forger could not write, and requiring fields in
//! it would only refuse honest software-backed keys. The W3C test vector of this format has
//! both lists empty.

use serde_cbor_2::Value;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cose::{CoseAlgorithm, Curve, KeyMaterial, PublicKey};
use crate::extended::{ExtendedError, verify_with_certificate};

/// The Android key attestation extension (key description).
const KEY_DESCRIPTION_OID: &str = "1.3.6.1.4.1.11129.2.1.17";
/// AuthorizationList tags (context-specific, explicit).
const TAG_PURPOSE: u32 = 1;
const TAG_ALL_APPLICATIONS: u32 = 600;
const TAG_ORIGIN: u32 = 702;
const KM_ORIGIN_GENERATED: u64 = 0;
const KM_PURPOSE_SIGN: u64 = 2;

/// Verify an `android-key` statement. `signed` is authenticatorData ‖ clientDataHash.
pub(crate) fn verify(
    att_stmt: &Value,
    signed: &[u8],
    credential_key: &PublicKey,
) -> Result<(), ExtendedError> {
    let Value::Map(map) = att_stmt else {
        return Err(ExtendedError::attestation(
            "android-key attStmt is not a map",
        ));
    };
    let member = |name: &str| map.get(&Value::Text(name.to_owned()));
    let Some(Value::Integer(alg_id)) = member("alg") else {
        return Err(ExtendedError::attestation("android-key alg is missing"));
    };
    let alg = i64::try_from(*alg_id)
        .ok()
        .and_then(CoseAlgorithm::from_id)
        .ok_or_else(|| {
            ExtendedError::attestation(format!("android-key alg {alg_id} is not supported"))
        })?;
    let Some(Value::Bytes(sig)) = member("sig") else {
        return Err(ExtendedError::attestation("android-key sig is missing"));
    };
    let Some(Value::Array(chain)) = member("x5c") else {
        return Err(ExtendedError::attestation("android-key x5c is missing"));
    };
    let Some(Value::Bytes(der)) = chain.first() else {
        return Err(ExtendedError::attestation("android-key x5c is empty"));
    };
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| ExtendedError::attestation(format!("x5c[0]: {e}")))?;
    if !rest.is_empty() {
        return Err(ExtendedError::attestation("x5c[0] has trailing bytes"));
    }
    if !verify_with_certificate(&cert, alg, signed, sig) {
        return Err(ExtendedError::attestation(
            "signature does not verify with the attestation certificate",
        ));
    }
    same_key(&cert, credential_key)?;

    let client_data_hash = signed
        .len()
        .checked_sub(32)
        .and_then(|at| signed.get(at..))
        .ok_or_else(|| ExtendedError::attestation("no clientDataHash to compare"))?;
    let extension = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == KEY_DESCRIPTION_OID)
        .ok_or_else(|| ExtendedError::attestation("x5c[0] has no key description extension"))?;
    let description = KeyDescription::parse(extension.value)
        .map_err(|reason| ExtendedError::attestation(format!("key description: {reason}")))?;
    if description.challenge != client_data_hash {
        return Err(ExtendedError::attestation(
            "key description attestationChallenge is not clientDataHash",
        ));
    }
    let lists = [&description.software, &description.tee];
    if lists.iter().any(|l| l.all_applications) {
        return Err(ExtendedError::attestation(
            "key description allows allApplications: the key is not scoped to the RP",
        ));
    }
    if let Some(origin) = lists
        .iter()
        .filter_map(|l| l.origin)
        .find(|o| *o != KM_ORIGIN_GENERATED)
    {
        return Err(ExtendedError::attestation(format!(
            "key description origin is {origin}, not KM_ORIGIN_GENERATED (the key was not made \
             in the keystore)"
        )));
    }
    if let Some(purpose) = lists
        .iter()
        .flat_map(|l| l.purposes.iter())
        .find(|p| **p != KM_PURPOSE_SIGN)
    {
        return Err(ExtendedError::attestation(format!(
            "key description purpose {purpose} is not KM_PURPOSE_SIGN"
        )));
    }
    Ok(())
}

/// The certificate's subject public key is the credential public key.
fn same_key(cert: &X509Certificate<'_>, credential: &PublicKey) -> Result<(), ExtendedError> {
    let refuse = |reason: &str| {
        ExtendedError::attestation(format!(
            "x5c[0] does not hold the credential public key: {reason}"
        ))
    };
    let spki = cert.public_key();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let raw = spki.subject_public_key.data.as_ref();
    match &credential.key {
        KeyMaterial::Ec2 { curve, x, y } => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let expected = match curve {
                Curve::P256 => "1.2.840.10045.3.1.7",
                Curve::P384 => "1.3.132.0.34",
                Curve::P521 => "1.3.132.0.35",
                _ => return Err(refuse("the credential's curve")),
            };
            if key_oid != "1.2.840.10045.2.1" || curve_oid.as_deref() != Some(expected) {
                return Err(refuse("another key type or curve"));
            }
            let point = [[0x04].as_slice(), x, y].concat();
            if raw != point.as_slice() {
                return Err(refuse("another point"));
            }
            Ok(())
        }
        KeyMaterial::Rsa { n, e } => {
            let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(refuse("not an RSA key"));
            };
            let trim =
                |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|v| *v == 0).collect() };
            if trim(rsa.modulus) != trim(n) || trim(rsa.exponent) != trim(e) {
                return Err(refuse("another RSA key"));
            }
            Ok(())
        }
        KeyMaterial::Okp { .. } => Err(refuse("Android keystore keys are EC or RSA")),
    }
}

/// What Tenet reads of the KeyDescription sequence.
#[derive(Debug, Default)]
struct KeyDescription {
    challenge: Vec<u8>,
    software: AuthorizationList,
    tee: AuthorizationList,
}

/// What Tenet reads of an AuthorizationList.
#[derive(Debug, Default)]
struct AuthorizationList {
    purposes: Vec<u64>,
    origin: Option<u64>,
    all_applications: bool,
}

impl KeyDescription {
    /// KeyDescription ::= SEQUENCE { attestationVersion INTEGER, attestationSecurityLevel
    /// ENUMERATED, keymasterVersion INTEGER, keymasterSecurityLevel ENUMERATED,
    /// attestationChallenge OCTET STRING, uniqueId OCTET STRING, softwareEnforced
    /// AuthorizationList, teeEnforced AuthorizationList, ... }
    fn parse(der: &[u8]) -> Result<Self, String> {
        let (top, rest) = Tlv::read(der)?;
        if !rest.is_empty() {
            return Err("trailing bytes".into());
        }
        top.expect_universal(16, "KeyDescription")?;
        let fields = top.children()?;
        let [
            version,
            sec,
            km_version,
            km_sec,
            challenge,
            _unique,
            software,
            tee,
            ..,
        ] = fields.as_slice()
        else {
            return Err(format!("{} fields, at least 8 expected", fields.len()));
        };
        version.expect_universal(2, "attestationVersion")?;
        sec.expect_universal(10, "attestationSecurityLevel")?;
        km_version.expect_universal(2, "keymasterVersion")?;
        km_sec.expect_universal(10, "keymasterSecurityLevel")?;
        challenge.expect_universal(4, "attestationChallenge")?;
        Ok(Self {
            challenge: challenge.value.to_vec(),
            software: AuthorizationList::parse(software, "softwareEnforced")?,
            tee: AuthorizationList::parse(tee, "teeEnforced")?,
        })
    }
}

impl AuthorizationList {
    fn parse(list: &Tlv<'_>, name: &str) -> Result<Self, String> {
        list.expect_universal(16, name)?;
        let mut out = Self::default();
        for item in list.children()? {
            if item.class != CONTEXT {
                continue;
            }
            let inner = || -> Result<Tlv<'_>, String> {
                let (inner, rest) = Tlv::read(item.value)?;
                if rest.is_empty() {
                    Ok(inner)
                } else {
                    Err(format!("{name} [{}] has trailing bytes", item.tag))
                }
            };
            match item.tag {
                TAG_PURPOSE => {
                    let set = inner()?;
                    set.expect_universal(17, "purpose")?;
                    for p in set.children()? {
                        p.expect_universal(2, "purpose")?;
                        out.purposes.push(p.unsigned()?);
                    }
                }
                TAG_ORIGIN => {
                    let origin = inner()?;
                    origin.expect_universal(2, "origin")?;
                    out.origin = Some(origin.unsigned()?);
                }
                TAG_ALL_APPLICATIONS => out.all_applications = true,
                _ => {}
            }
        }
        Ok(out)
    }
}

const UNIVERSAL: u8 = 0;
const CONTEXT: u8 = 2;

/// One DER tag-length-value.
#[derive(Debug)]
struct Tlv<'a> {
    class: u8,
    constructed: bool,
    tag: u32,
    value: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Read one TLV (definite lengths only, tags up to 2^28).
    fn read(input: &'a [u8]) -> Result<(Self, &'a [u8]), String> {
        let (&first, mut rest) = input.split_first().ok_or("truncated tag")?;
        let class = first >> 6;
        let constructed = first & 0x20 != 0;
        let mut tag = u32::from(first & 0x1f);
        if tag == 0x1f {
            tag = 0;
            let mut digits = 0;
            loop {
                let (&b, after) = rest.split_first().ok_or("truncated tag number")?;
                rest = after;
                digits += 1;
                if digits > 4 {
                    return Err("tag number too large".into());
                }
                tag = (tag << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&len_byte, after) = rest.split_first().ok_or("truncated length")?;
        rest = after;
        let len = if len_byte < 0x80 {
            usize::from(len_byte)
        } else {
            let count = usize::from(len_byte & 0x7f);
            if count == 0 || count > 4 {
                return Err("indefinite or oversized length".into());
            }
            let (digits, after) = rest
                .split_at_checked(count)
                .ok_or("truncated length bytes")?;
            rest = after;
            digits
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (value, rest) = rest.split_at_checked(len).ok_or("value past the end")?;
        Ok((
            Self {
                class,
                constructed,
                tag,
                value,
            },
            rest,
        ))
    }

    fn expect_universal(&self, tag: u32, name: &str) -> Result<(), String> {
        let constructed = matches!(tag, 16 | 17);
        if self.class == UNIVERSAL && self.tag == tag && self.constructed == constructed {
            Ok(())
        } else {
            Err(format!("{name} has an unexpected type"))
        }
    }

    fn children(&self) -> Result<Vec<Tlv<'a>>, String> {
        let mut out = Vec::new();
        let mut rest = self.value;
        while !rest.is_empty() {
            let (child, after) = Tlv::read(rest)?;
            out.push(child);
            rest = after;
        }
        Ok(out)
    }

    /// A non-negative INTEGER of at most 8 significant bytes.
    fn unsigned(&self) -> Result<u64, String> {
        match self.value.first() {
            None => return Err("empty INTEGER".into()),
            Some(b) if b & 0x80 != 0 => return Err("negative INTEGER".into()),
            Some(_) => {}
        }
        let digits: Vec<u8> = self.value.iter().copied().skip_while(|b| *b == 0).collect();
        if digits.len() > 8 {
            return Err("INTEGER too large".into());
        }
        Ok(digits
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KeyDescription with the given challenge and authorization list contents.
    fn description(challenge: &[u8], software: &[u8], tee: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            assert!(value.len() < 0x80);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
            out
        }
        let body = [
            tlv(0x02, &[0x01, 0x2c]),
            tlv(0x0a, &[0]),
            tlv(0x02, &[0]),
            tlv(0x0a, &[0]),
            tlv(0x04, challenge),
            tlv(0x04, &[]),
            tlv(0x30, software),
            tlv(0x30, tee),
        ]
        .concat();
        let mut out = vec![0x30, 0x81, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn key_descriptions_are_read_with_their_lists() {
        // purpose [1] { SET { 2 } }, origin [702] { 0 }
        let tee = [
            &[0xa1, 0x05, 0x31, 0x03, 0x02, 0x01, 0x02][..],
            &[0xbf, 0x85, 0x3e, 0x03, 0x02, 0x01, 0x00][..],
        ]
        .concat();
        let d = KeyDescription::parse(&description(&[7; 32], &[], &tee)).unwrap();
        assert_eq!(d.challenge, vec![7; 32]);
        assert_eq!(d.tee.purposes, vec![2]);
        assert_eq!(d.tee.origin, Some(0));
        assert!(!d.tee.all_applications);
        assert!(d.software.purposes.is_empty() && d.software.origin.is_none());

        // allApplications [600] { NULL }
        let all = [0xbf, 0x84, 0x58, 0x02, 0x05, 0x00];
        let d = KeyDescription::parse(&description(&[7; 32], &all, &[])).unwrap();
        assert!(d.software.all_applications);
    }

    #[test]
    fn malformed_key_descriptions_are_refused_not_panicked_on() {
        let good = description(&[7; 32], &[], &[]);
        for cut in 0..good.len() {
            assert!(KeyDescription::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(KeyDescription::parse(&trailing).is_err());
        // Seven fields only.
        assert!(KeyDescription::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        // A negative origin.
        let tee = [0xbf, 0x85, 0x3e, 0x03, 0x02, 0x01, 0xff];
        assert!(KeyDescription::parse(&description(&[7; 32], &[], &tee)).is_err());
    }
}
