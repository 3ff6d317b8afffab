//! The TPM attestation statement format (WebAuthn Level 3, 8.3), verified by Tenet: webauthn-rs
//! 0.6 cannot verify any TPM statement (it cannot hash attToBeSigned for certInfo's
//! extraData), so registrations whose format is `tpm` come here and nowhere else.
//!
//! The statement carries `ver` ("2.0"), `alg`, `x5c` (the AIK certificate first), `sig`,
//! `certInfo` (a TPMS_ATTEST) and `pubArea` (a TPMT_PUBLIC). Both TPM structures are read by
//! the small parsers below, which check every length against what is left and refuse trailing
//! bytes (TPM 2.0 Library, Part 2: big-endian integers, TPM2B = u16 size and that many bytes).

use aws_lc_rs::digest;
use serde_cbor_2::Value;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::cose::{CoseAlgorithm, Curve, KeyMaterial, PublicKey};
use crate::extended::{ExtendedError, check_aaguid_extension, verify_with_certificate};

/// TPM_GENERATED_VALUE: certInfo was made by the TPM.
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_CERTIFY: certInfo is the result of TPM2_Certify.
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA1: u16 = 0x0004;
const TPM_ALG_SHA256: u16 = 0x000b;
const TPM_ALG_SHA384: u16 = 0x000c;
const TPM_ALG_SHA512: u16 = 0x000d;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_RSASSA: u16 = 0x0014;
const TPM_ALG_RSAPSS: u16 = 0x0016;
const TPM_ALG_ECDSA: u16 = 0x0018;
const TPM_ALG_ECDAA: u16 = 0x001a;
const TPM_ALG_SM2: u16 = 0x001b;
const TPM_ALG_ECSCHNORR: u16 = 0x001c;
const TPM_ALG_ECC: u16 = 0x0023;

const TPM_ECC_NIST_P256: u16 = 0x0003;
const TPM_ECC_NIST_P384: u16 = 0x0004;
const TPM_ECC_NIST_P521: u16 = 0x0005;

/// tcg-kp-AIKCertificate, the extended key usage an AIK certificate must carry.
const TCG_KP_AIK_CERTIFICATE: &str = "2.23.133.8.3";
/// The TPM manufacturer, model and version attributes of the AIK certificate's SAN.
const TCG_AT_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const TCG_AT_TPM_MODEL: &str = "2.23.133.2.2";
const TCG_AT_TPM_VERSION: &str = "2.23.133.2.3";

/// A bounds-checked reader of a TPM structure.
struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader { what, rest: bytes }
    }

    fn malformed(&self, reason: String) -> ExtendedError {
        ExtendedError::malformed(self.what, reason)
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8], ExtendedError> {
        let (head, tail) = self.rest.split_at_checked(len).ok_or_else(|| {
            self.malformed(format!(
                "{field} needs {len} bytes, {} are left",
                self.rest.len()
            ))
        })?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], ExtendedError> {
        let bytes = self.take(N, field)?;
        bytes
            .try_into()
            .map_err(|_| self.malformed(format!("{field} is not {N} bytes")))
    }

    fn u16(&mut self, field: &str) -> Result<u16, ExtendedError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &str) -> Result<u32, ExtendedError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A TPM2B: a u16 size, then that many bytes.
    fn sized(&mut self, field: &str) -> Result<&'a [u8], ExtendedError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    fn finish(self) -> Result<(), ExtendedError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(format!(
                "{} bytes left after the structure",
                self.rest.len()
            )))
        }
    }
}

/// The public key of a TPMT_PUBLIC.
#[derive(Debug, PartialEq, Eq)]
enum TpmKey<'a> {
    Rsa {
        key_bits: u16,
        /// The exponent, 0 meaning the default 2^16 + 1.
        exponent: u32,
        modulus: &'a [u8],
    },
    Ecc {
        curve: u16,
        x: &'a [u8],
        y: &'a [u8],
    },
}

/// A TPMT_PUBLIC (TPM 2.0 Part 2, 12.2.4), read.
#[derive(Debug)]
struct PubArea<'a> {
    name_alg: u16,
    key: TpmKey<'a>,
}

/// A signing scheme (TPMT_RSA_SCHEME or TPMT_ECC_SCHEME): NULL, or a signing scheme with its
/// hash algorithm (and ECDAA's count). Other schemes are not for signing keys.
fn skip_scheme(r: &mut Reader<'_>) -> Result<(), ExtendedError> {
    match r.u16("scheme")? {
        TPM_ALG_NULL => Ok(()),
        TPM_ALG_RSASSA | TPM_ALG_RSAPSS | TPM_ALG_ECDSA | TPM_ALG_SM2 | TPM_ALG_ECSCHNORR => {
            r.u16("scheme hashAlg").map(drop)
        }
        TPM_ALG_ECDAA => {
            r.u16("scheme hashAlg")?;
            r.u16("scheme count").map(drop)
        }
        other => Err(r.malformed(format!("scheme {other:#06x} is not a signing scheme"))),
    }
}

fn parse_pub_area(bytes: &[u8]) -> Result<PubArea<'_>, ExtendedError> {
    let mut r = Reader::new("TPM pubArea", bytes);
    let kind = r.u16("type")?;
    let name_alg = r.u16("nameAlg")?;
    r.u32("objectAttributes")?;
    r.sized("authPolicy")?;
    // A signing key has no symmetric algorithm (TPMT_SYM_DEF_OBJECT is then just NULL).
    let symmetric = r.u16("symmetric")?;
    if symmetric != TPM_ALG_NULL {
        return Err(r.malformed(format!(
            "symmetric {symmetric:#06x} is not TPM_ALG_NULL, as a signing key's must be"
        )));
    }
    skip_scheme(&mut r)?;
    let key = match kind {
        TPM_ALG_RSA => {
            let key_bits = r.u16("keyBits")?;
            let exponent = r.u32("exponent")?;
            let modulus = r.sized("unique (modulus)")?;
            TpmKey::Rsa {
                key_bits,
                exponent,
                modulus,
            }
        }
        TPM_ALG_ECC => {
            let curve = r.u16("curveID")?;
            if r.u16("kdf")? != TPM_ALG_NULL {
                r.u16("kdf hashAlg")?;
            }
            let x = r.sized("unique (x)")?;
            let y = r.sized("unique (y)")?;
            TpmKey::Ecc { curve, x, y }
        }
        other => {
            return Err(r.malformed(format!("type {other:#06x} is neither RSA nor ECC")));
        }
    };
    r.finish()?;
    Ok(PubArea { name_alg, key })
}

/// A TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY (TPM 2.0 Part 2, 10.12.12), read.
#[derive(Debug)]
struct CertInfo<'a> {
    extra_data: &'a [u8],
    /// The Name of the certified object (TPMS_CERTIFY_INFO.name).
    name: &'a [u8],
}

fn parse_cert_info(bytes: &[u8]) -> Result<CertInfo<'_>, ExtendedError> {
    let mut r = Reader::new("TPM certInfo", bytes);
    if r.u32("magic")? != TPM_GENERATED_VALUE {
        return Err(ExtendedError::attestation(
            "certInfo magic is not TPM_GENERATED_VALUE",
        ));
    }
    if r.u16("type")? != TPM_ST_ATTEST_CERTIFY {
        return Err(ExtendedError::attestation(
            "certInfo type is not TPM_ST_ATTEST_CERTIFY",
        ));
    }
    r.sized("qualifiedSigner")?;
    let extra_data = r.sized("extraData")?;
    // TPMS_CLOCK_INFO: clock (8), resetCount (4), restartCount (4), safe (1).
    r.take(17, "clockInfo")?;
    r.take(8, "firmwareVersion")?;
    let name = r.sized("attested.name")?;
    r.sized("attested.qualifiedName")?;
    r.finish()?;
    Ok(CertInfo { extra_data, name })
}

/// `data` hashed with the TPM hash algorithm `alg`.
fn tpm_hash(alg: u16, data: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match alg {
        TPM_ALG_SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        TPM_ALG_SHA256 => &digest::SHA256,
        TPM_ALG_SHA384 => &digest::SHA384,
        TPM_ALG_SHA512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, data).as_ref().to_vec())
}

/// `data` hashed with the hash of the COSE algorithm `alg` (none for EdDSA).
fn cose_hash(alg: CoseAlgorithm, data: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match alg {
        CoseAlgorithm::Es256 | CoseAlgorithm::Rs256 => &digest::SHA256,
        CoseAlgorithm::Es384 => &digest::SHA384,
        CoseAlgorithm::Es512 => &digest::SHA512,
        CoseAlgorithm::EdDsa | CoseAlgorithm::Ed448 => return None,
    };
    Some(digest::digest(algorithm, data).as_ref().to_vec())
}

/// Whether pubArea's key is the credential public key: same curve and point, or same modulus
/// and exponent.
fn same_key(tpm: &TpmKey<'_>, credential: &PublicKey) -> Result<(), ExtendedError> {
    let refuse = |reason: &str| {
        ExtendedError::attestation(format!(
            "pubArea is not the credential public key: {reason}"
        ))
    };
    match (tpm, &credential.key) {
        (
            TpmKey::Ecc { curve, x, y },
            KeyMaterial::Ec2 {
                curve: c,
                x: cx,
                y: cy,
            },
        ) => {
            let tpm_curve = match *curve {
                TPM_ECC_NIST_P256 => Some(Curve::P256),
                TPM_ECC_NIST_P384 => Some(Curve::P384),
                TPM_ECC_NIST_P521 => Some(Curve::P521),
                _ => None,
            };
            if tpm_curve != Some(*c) {
                return Err(refuse("another curve"));
            }
            if x != cx || y != cy {
                return Err(refuse("another point"));
            }
            Ok(())
        }
        (
            TpmKey::Rsa {
                key_bits,
                exponent,
                modulus,
            },
            KeyMaterial::Rsa { n, e },
        ) => {
            if usize::from(*key_bits) != modulus.len().saturating_mul(8) {
                return Err(refuse("keyBits does not match the modulus"));
            }
            if modulus != n {
                return Err(refuse("another modulus"));
            }
            let tpm_exponent = if *exponent == 0 { 65_537 } else { *exponent };
            let cose_exponent = e.iter().try_fold(0u32, |acc, b| {
                acc.checked_mul(256).map(|v| v | u32::from(*b))
            });
            if cose_exponent != Some(tpm_exponent) {
                return Err(refuse("another exponent"));
            }
            Ok(())
        }
        _ => Err(refuse("another key type")),
    }
}

/// The AIK certificate requirements (L3 8.3.1): version 3, an empty subject, a subject
/// alternative name naming the TPM manufacturer, model and version, the extended key usage
/// tcg-kp-AIKCertificate, basic constraints with CA false; and the AAGUID extension, if
/// present, equal to the authenticator's AAGUID.
fn check_aik_certificate(
    cert: &X509Certificate<'_>,
    aaguid: &[u8; 16],
) -> Result<(), ExtendedError> {
    let refuse = |reason: &str| ExtendedError::attestation(format!("AIK certificate: {reason}"));
    if cert.version().0 != 2 {
        return Err(refuse("not version 3"));
    }
    if cert.subject().iter().next().is_some() {
        return Err(refuse("the subject is not empty"));
    }
    let san = match cert.subject_alternative_name() {
        Ok(Some(san)) => san,
        Ok(None) => return Err(refuse("no subject alternative name")),
        Err(_) => return Err(refuse("the subject alternative name is malformed")),
    };
    let names_the_tpm = san.value.general_names.iter().any(|name| {
        let GeneralName::DirectoryName(dn) = name else {
            return false;
        };
        let has = |oid: &str| {
            dn.iter_attributes()
                .any(|a| a.attr_type().to_id_string() == oid)
        };
        has(TCG_AT_TPM_MANUFACTURER) && has(TCG_AT_TPM_MODEL) && has(TCG_AT_TPM_VERSION)
    });
    if !names_the_tpm {
        return Err(refuse(
            "the subject alternative name does not name the TPM manufacturer, model and version",
        ));
    }
    let aik_usage = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku
            .value
            .other
            .iter()
            .any(|oid| oid.to_id_string() == TCG_KP_AIK_CERTIFICATE),
        Ok(None) => false,
        Err(_) => return Err(refuse("the extended key usage is malformed")),
    };
    if !aik_usage {
        return Err(refuse(
            "the extended key usage lacks tcg-kp-AIKCertificate (2.23.133.8.3)",
        ));
    }
    match cert.basic_constraints() {
        Ok(Some(bc)) if !bc.value.ca => {}
        Ok(Some(_)) => return Err(refuse("is a CA certificate")),
        Ok(None) => return Err(refuse("no basic constraints")),
        Err(_) => return Err(refuse("basic constraints are malformed")),
    }
    check_aaguid_extension(cert, aaguid).map_err(refuse)
}

/// Verify a `tpm` attestation statement (L3 8.3). `signed` is attToBeSigned (authenticatorData
/// followed by the client data hash); `credential_key` is the attested credential public key.
pub(crate) fn verify(
    att_stmt: &Value,
    signed: &[u8],
    credential_key: &PublicKey,
    aaguid: &[u8; 16],
) -> Result<(), ExtendedError> {
    let Value::Map(map) = att_stmt else {
        return Err(ExtendedError::attestation("tpm attStmt is not a map"));
    };
    let member = |name: &str| map.get(&Value::Text(name.to_owned()));
    let bytes = |name: &'static str| match member(name) {
        Some(Value::Bytes(b)) => Ok(b.as_slice()),
        _ => Err(ExtendedError::attestation(format!(
            "tpm {name} is missing or not bytes"
        ))),
    };
    match member("ver") {
        Some(Value::Text(ver)) if ver == "2.0" => {}
        _ => return Err(ExtendedError::attestation("tpm ver is not \"2.0\"")),
    }
    let Some(Value::Integer(alg_id)) = member("alg") else {
        return Err(ExtendedError::attestation("tpm alg is missing"));
    };
    let alg = i64::try_from(*alg_id)
        .ok()
        .and_then(CoseAlgorithm::from_id)
        .ok_or_else(|| ExtendedError::attestation(format!("tpm alg {alg_id} is not supported")))?;
    if member("ecdaaKeyId").is_some() {
        return Err(ExtendedError::attestation("ECDAA is not supported"));
    }
    let sig = bytes("sig")?;
    let cert_info_bytes = bytes("certInfo")?;
    let pub_area_bytes = bytes("pubArea")?;

    // The key in pubArea is the credential public key.
    let pub_area = parse_pub_area(pub_area_bytes)?;
    same_key(&pub_area.key, credential_key)?;

    // certInfo: magic and type (checked while reading), extraData, and the Name of pubArea.
    let cert_info = parse_cert_info(cert_info_bytes)?;
    let expected = cose_hash(alg, signed).ok_or_else(|| {
        ExtendedError::attestation(format!("tpm alg {} has no hash for extraData", alg.id()))
    })?;
    if cert_info.extra_data != expected.as_slice() {
        return Err(ExtendedError::attestation(
            "certInfo extraData is not the hash of attToBeSigned",
        ));
    }
    let digest = tpm_hash(pub_area.name_alg, pub_area_bytes).ok_or_else(|| {
        ExtendedError::attestation(format!(
            "pubArea nameAlg {:#06x} is not a supported hash",
            pub_area.name_alg
        ))
    })?;
    let name = [pub_area.name_alg.to_be_bytes().as_slice(), &digest].concat();
    if cert_info.name != name.as_slice() {
        return Err(ExtendedError::attestation(
            "certInfo does not certify pubArea (its Name differs)",
        ));
    }

    // x5c: the AIK certificate signed certInfo, and meets the AIK requirements.
    let der = match member("x5c") {
        Some(Value::Array(chain)) => match chain.first() {
            Some(Value::Bytes(der)) => der,
            _ => return Err(ExtendedError::attestation("tpm x5c is empty")),
        },
        _ => return Err(ExtendedError::attestation("tpm x5c is missing")),
    };
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| ExtendedError::attestation(format!("tpm x5c[0]: {e}")))?;
    if !rest.is_empty() {
        return Err(ExtendedError::attestation("tpm x5c[0] has trailing bytes"));
    }
    if !verify_with_certificate(&cert, alg, cert_info_bytes, sig) {
        return Err(ExtendedError::attestation(
            "sig does not verify over certInfo with the AIK certificate",
        ));
    }
    check_aik_certificate(&cert, aaguid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
    use rcgen::{
        CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, SigningKey as _,
    };
    use std::collections::BTreeMap;

    const AAGUID: [u8; 16] = [7; 16];
    const SIGNED: &[u8] = b"authenticatorData || clientDataHash";

    /// DER: a tag, a length, the content.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    /// A subjectAltName value: one directoryName with the given TCG attributes.
    fn tpm_san(attributes: &[&[u8]]) -> Vec<u8> {
        let atvs: Vec<u8> = attributes
            .iter()
            .flat_map(|oid| {
                let oid = der(0x06, oid);
                der(0x30, &[oid, der(0x0c, b"id:00000001")].concat())
            })
            .collect();
        let name = der(0x30, &der(0x31, &atvs));
        der(0x30, &der(0xa4, &name))
    }

    // 2.23.133.2.1, 2.23.133.2.2, 2.23.133.2.3.
    const MANUFACTURER: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x01];
    const MODEL: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x02];
    const VERSION: &[u8] = &[0x67, 0x81, 0x05, 0x02, 0x03];

    /// How the AIK certificate is made.
    #[derive(Clone)]
    struct Aik {
        subject_cn: bool,
        san: Option<Vec<&'static [u8]>>,
        aik_usage: bool,
        ca: Option<bool>,
        aaguid: Option<[u8; 16]>,
    }

    impl Default for Aik {
        fn default() -> Self {
            Aik {
                subject_cn: false,
                san: Some(vec![MANUFACTURER, MODEL, VERSION]),
                aik_usage: true,
                ca: Some(false),
                aaguid: Some(AAGUID),
            }
        }
    }

    fn aik(spec: &Aik) -> (rcgen::KeyPair, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if spec.subject_cn {
            params.distinguished_name.push(DnType::CommonName, "AIK");
        }
        if let Some(attributes) = &spec.san {
            let mut san = CustomExtension::from_oid_content(&[2, 5, 29, 17], tpm_san(attributes));
            san.set_criticality(true);
            params.custom_extensions.push(san);
        }
        if spec.aik_usage {
            params.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::Other(vec![2, 23, 133, 8, 3])];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.is_ca = match spec.ca {
            Some(true) => IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
            Some(false) => IsCa::ExplicitNoCa,
            None => IsCa::NoCa,
        };
        if let Some(aaguid) = spec.aaguid {
            let content = [[0x04, 16].as_slice(), &aaguid].concat();
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

    fn ecc_pub_area(name_alg: u16, curve: u16, x: &[u8], y: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [TPM_ALG_ECC, name_alg] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&0x0004_0072u32.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        for v in [
            TPM_ALG_NULL,
            TPM_ALG_ECDSA,
            TPM_ALG_SHA256,
            curve,
            TPM_ALG_NULL,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for coordinate in [x, y] {
            out.extend_from_slice(&u16::try_from(coordinate.len()).unwrap().to_be_bytes());
            out.extend_from_slice(coordinate);
        }
        out
    }

    fn rsa_pub_area(key_bits: u16, exponent: u32, modulus: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [TPM_ALG_RSA, TPM_ALG_SHA256] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&0x0004_0072u32.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        for v in [TPM_ALG_NULL, TPM_ALG_NULL, key_bits] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&exponent.to_be_bytes());
        out.extend_from_slice(&u16::try_from(modulus.len()).unwrap().to_be_bytes());
        out.extend_from_slice(modulus);
        out
    }

    fn name_of(pub_area: &[u8]) -> Vec<u8> {
        let alg = u16::from_be_bytes([pub_area[2], pub_area[3]]);
        [
            alg.to_be_bytes().as_slice(),
            &tpm_hash(alg, pub_area).unwrap(),
        ]
        .concat()
    }

    fn cert_info(magic: u32, kind: u16, extra_data: &[u8], name: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::try_from(extra_data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(extra_data);
        out.extend_from_slice(&[0x11; 17]);
        out.extend_from_slice(&[0x22; 8]);
        out.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&0u16.to_be_bytes());
        out
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// The parts of a statement, each replaceable; `statement` signs certInfo with the AIK.
    #[derive(Clone)]
    struct Parts {
        ver: Option<&'static str>,
        alg: i128,
        pub_area: Vec<u8>,
        cert_info: Vec<u8>,
        aik: Option<Aik>,
        tamper_sig: bool,
    }

    fn parts(pub_area: Vec<u8>) -> Parts {
        let extra = digest::digest(&digest::SHA256, SIGNED).as_ref().to_vec();
        let info = cert_info(
            TPM_GENERATED_VALUE,
            TPM_ST_ATTEST_CERTIFY,
            &extra,
            &name_of(&pub_area),
        );
        Parts {
            ver: Some("2.0"),
            alg: -7,
            pub_area,
            cert_info: info,
            aik: Some(Aik::default()),
            tamper_sig: false,
        }
    }

    fn statement(p: &Parts) -> Value {
        let mut map = BTreeMap::from([
            (text("alg"), Value::Integer(p.alg)),
            (text("pubArea"), Value::Bytes(p.pub_area.clone())),
            (text("certInfo"), Value::Bytes(p.cert_info.clone())),
        ]);
        if let Some(ver) = p.ver {
            map.insert(text("ver"), text(ver));
        }
        let (key, der) = aik(p.aik.as_ref().unwrap_or(&Aik::default()));
        let mut sig = key.sign(&p.cert_info).unwrap();
        if p.tamper_sig {
            let last = sig.len() - 1;
            sig[last] ^= 1;
        }
        map.insert(text("sig"), Value::Bytes(sig));
        if p.aik.is_some() {
            map.insert(text("x5c"), Value::Array(vec![Value::Bytes(der)]));
        }
        Value::Map(map)
    }

    fn ecc_credential() -> (PublicKey, Vec<u8>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let (x, y) = (point[1..33].to_vec(), point[33..65].to_vec());
        let pub_area = ecc_pub_area(TPM_ALG_SHA256, TPM_ECC_NIST_P256, &x, &y);
        let key = PublicKey {
            alg: CoseAlgorithm::Es256,
            key: KeyMaterial::Ec2 {
                curve: Curve::P256,
                x,
                y,
            },
        };
        (key, pub_area)
    }

    fn refused(result: Result<(), ExtendedError>, why: &str) {
        match result {
            Err(ExtendedError::Attestation { reason }) => {
                assert!(reason.contains(why), "{reason:?} does not say {why:?}")
            }
            other => panic!("{why}: {other:?}"),
        }
    }

    #[test]
    fn a_conforming_statement_is_accepted_for_ecc_and_rsa_keys() {
        let (key, pub_area) = ecc_credential();
        assert_eq!(
            verify(&statement(&parts(pub_area)), SIGNED, &key, &AAGUID),
            Ok(())
        );
        // Without the optional AAGUID extension, and with a SHA-1 Name.
        let (key, _) = ecc_credential();
        let KeyMaterial::Ec2 { x, y, .. } = &key.key else {
            unreachable!()
        };
        let mut p = parts(ecc_pub_area(TPM_ALG_SHA1, TPM_ECC_NIST_P256, x, y));
        p.aik = Some(Aik {
            aaguid: None,
            ..Aik::default()
        });
        assert_eq!(verify(&statement(&p), SIGNED, &key, &AAGUID), Ok(()));

        let mut modulus = vec![0xc5; 256];
        modulus[255] = 0x01;
        let rsa = PublicKey {
            alg: CoseAlgorithm::Rs256,
            key: KeyMaterial::Rsa {
                n: modulus.clone(),
                e: vec![1, 0, 1],
            },
        };
        for exponent in [0, 65_537] {
            let p = parts(rsa_pub_area(2048, exponent, &modulus));
            assert_eq!(verify(&statement(&p), SIGNED, &rsa, &AAGUID), Ok(()));
        }
        for (bits, exponent, n, why) in [
            (2048, 3, modulus.clone(), "another exponent"),
            (2048, 0, vec![0xc7; 256], "another modulus"),
            (3072, 0, modulus.clone(), "keyBits"),
        ] {
            let p = parts(rsa_pub_area(bits, exponent, &n));
            refused(verify(&statement(&p), SIGNED, &rsa, &AAGUID), why);
        }
        let (_, ecc_area) = ecc_credential();
        refused(
            verify(&statement(&parts(ecc_area)), SIGNED, &rsa, &AAGUID),
            "another key type",
        );
    }

    #[test]
    fn every_statement_check_refuses_its_flip() {
        let (key, pub_area) = ecc_credential();
        let good = parts(pub_area.clone());
        let check =
            |p: &Parts, why: &str| refused(verify(&statement(p), SIGNED, &key, &AAGUID), why);
        let KeyMaterial::Ec2 { x, y, .. } = &key.key else {
            unreachable!()
        };

        let mut p = good.clone();
        p.ver = Some("1.0");
        check(&p, "ver");
        p.ver = None;
        check(&p, "ver");

        // pubArea: another point or curve, each with a certInfo that certifies it.
        let mut other_x = x.clone();
        other_x[0] ^= 1;
        let mut other_y = y.clone();
        other_y[31] ^= 1;
        for (area, why) in [
            (
                ecc_pub_area(TPM_ALG_SHA256, TPM_ECC_NIST_P256, &other_x, y),
                "another point",
            ),
            (
                ecc_pub_area(TPM_ALG_SHA256, TPM_ECC_NIST_P256, x, &other_y),
                "another point",
            ),
            (
                ecc_pub_area(TPM_ALG_SHA256, TPM_ECC_NIST_P384, x, y),
                "another curve",
            ),
        ] {
            check(&parts(area), why);
        }

        // certInfo: magic, type, extraData (another message, another hash), Name.
        let extra = digest::digest(&digest::SHA256, SIGNED).as_ref().to_vec();
        let name = name_of(&pub_area);
        let other_extra = digest::digest(&digest::SHA256, b"another")
            .as_ref()
            .to_vec();
        let sha384_extra = digest::digest(&digest::SHA384, SIGNED).as_ref().to_vec();
        let mut other_name = name.clone();
        other_name[5] ^= 1;
        let sha1_name = [
            TPM_ALG_SHA1.to_be_bytes().as_slice(),
            &tpm_hash(TPM_ALG_SHA1, &pub_area).unwrap(),
        ]
        .concat();
        for (info, why) in [
            (
                cert_info(0xff54_4348, TPM_ST_ATTEST_CERTIFY, &extra, &name),
                "magic",
            ),
            (
                cert_info(TPM_GENERATED_VALUE, 0x8018, &extra, &name),
                "type",
            ),
            (
                cert_info(
                    TPM_GENERATED_VALUE,
                    TPM_ST_ATTEST_CERTIFY,
                    &other_extra,
                    &name,
                ),
                "extraData",
            ),
            (
                cert_info(
                    TPM_GENERATED_VALUE,
                    TPM_ST_ATTEST_CERTIFY,
                    &sha384_extra,
                    &name,
                ),
                "extraData",
            ),
            (
                cert_info(
                    TPM_GENERATED_VALUE,
                    TPM_ST_ATTEST_CERTIFY,
                    &extra,
                    &other_name,
                ),
                "Name",
            ),
            (
                cert_info(
                    TPM_GENERATED_VALUE,
                    TPM_ST_ATTEST_CERTIFY,
                    &extra,
                    &sha1_name,
                ),
                "Name",
            ),
        ] {
            let mut p = good.clone();
            p.cert_info = info;
            check(&p, why);
        }

        // The signature, and an alg that is not the AIK key's or has no hash.
        let mut p = good.clone();
        p.tamper_sig = true;
        check(&p, "sig does not verify");
        let mut p = good.clone();
        p.alg = -257;
        check(&p, "sig does not verify");
        let mut p = good.clone();
        p.alg = -8;
        check(&p, "no hash");
        let mut p = good.clone();
        p.alg = -65535;
        check(&p, "not supported");

        // x5c and the AIK certificate requirements.
        let mut p = good.clone();
        p.aik = None;
        check(&p, "x5c is missing");
        for (aik, why) in [
            (
                Aik {
                    subject_cn: true,
                    ..Aik::default()
                },
                "subject is not empty",
            ),
            (
                Aik {
                    san: None,
                    ..Aik::default()
                },
                "no subject alternative name",
            ),
            (
                Aik {
                    san: Some(vec![MANUFACTURER, VERSION]),
                    ..Aik::default()
                },
                "manufacturer, model and version",
            ),
            (
                Aik {
                    san: Some(vec![MODEL, VERSION]),
                    ..Aik::default()
                },
                "manufacturer, model and version",
            ),
            (
                Aik {
                    aik_usage: false,
                    ..Aik::default()
                },
                "tcg-kp-AIKCertificate",
            ),
            (
                Aik {
                    ca: Some(true),
                    ..Aik::default()
                },
                "CA certificate",
            ),
            (
                Aik {
                    ca: None,
                    ..Aik::default()
                },
                "no basic constraints",
            ),
            (
                Aik {
                    aaguid: Some([1; 16]),
                    ..Aik::default()
                },
                "AAGUID",
            ),
        ] {
            let mut p = good.clone();
            p.aik = Some(aik);
            check(&p, why);
        }
        // A version 1 certificate: rcgen writes version 3, so the version field is edited (the
        // AIK certificate's own signature is not checked: there is no trust root to check it).
        let (aik_key, mut der) = aik(&Aik::default());
        let at = der
            .windows(5)
            .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
            .unwrap();
        der[at + 4] = 0x00;
        let mut map = match statement(&good) {
            Value::Map(map) => map,
            _ => unreachable!(),
        };
        map.insert(text("x5c"), Value::Array(vec![Value::Bytes(der)]));
        map.insert(
            text("sig"),
            Value::Bytes(aik_key.sign(&good.cert_info).unwrap()),
        );
        let result = verify(&Value::Map(map), SIGNED, &key, &AAGUID);
        assert!(
            matches!(result, Err(ExtendedError::Attestation { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn tpm_structures_are_read_within_bounds() {
        let (key, pub_area) = ecc_credential();
        let good = parts(pub_area.clone());
        for cut in 0..pub_area.len() {
            assert!(
                parse_pub_area(&pub_area[..cut]).is_err(),
                "pubArea cut at {cut}"
            );
        }
        for cut in 0..good.cert_info.len() {
            assert!(
                parse_cert_info(&good.cert_info[..cut]).is_err(),
                "certInfo cut at {cut}"
            );
        }
        let mut long = pub_area.clone();
        long.push(0);
        assert!(matches!(
            parse_pub_area(&long),
            Err(ExtendedError::Malformed { .. })
        ));
        let mut long = good.cert_info.clone();
        long.push(0);
        assert!(matches!(
            parse_cert_info(&long),
            Err(ExtendedError::Malformed { .. })
        ));
        // A size that runs past the end.
        let mut overrun = good.cert_info.clone();
        overrun[8] = 0xff;
        assert!(matches!(
            parse_cert_info(&overrun),
            Err(ExtendedError::Malformed { .. })
        ));
        // A symmetric algorithm, an unknown scheme, an unknown type.
        for (at, value) in [(10, TPM_ALG_SHA256), (12, 0x0042), (0, 0x0008)] {
            let mut odd = pub_area.clone();
            odd[at..at + 2].copy_from_slice(&value.to_be_bytes());
            assert!(
                matches!(parse_pub_area(&odd), Err(ExtendedError::Malformed { .. })),
                "{at}"
            );
        }
        // Members that are absent or of the wrong CBOR type.
        for member in ["sig", "certInfo", "pubArea", "alg"] {
            let Value::Map(mut map) = statement(&good) else {
                unreachable!()
            };
            map.insert(text(member), text("x"));
            let result = verify(&Value::Map(map.clone()), SIGNED, &key, &AAGUID);
            assert!(
                matches!(result, Err(ExtendedError::Attestation { .. })),
                "{member}"
            );
            map.remove(&text(member));
            let result = verify(&Value::Map(map), SIGNED, &key, &AAGUID);
            assert!(
                matches!(result, Err(ExtendedError::Attestation { .. })),
                "{member}"
            );
        }
        let Value::Map(mut map) = statement(&good) else {
            unreachable!()
        };
        map.insert(text("x5c"), Value::Array(Vec::new()));
        let result = verify(&Value::Map(map), SIGNED, &key, &AAGUID);
        assert!(matches!(result, Err(ExtendedError::Attestation { .. })));
    }
}
