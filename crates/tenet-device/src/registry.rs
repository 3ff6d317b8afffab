//! Device enrolment and the registry of enrolled devices.
//!
//! An administrator creates a one-time enrolment token; only its SHA-256 is kept. The device
//! redeems it with a CSR for a key it generated itself, and gets a certificate from Tenet's CA
//! whose SPIFFE ID is `spiffe://<trust-domain>/device/<uuid>`. The registry, tokens included,
//! is persisted as one owner-only JSON file replaced atomically.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenet_identity::{CertificateAuthority, SpiffeId, SpiffeIdError, TrustDomain};
use time::OffsetDateTime;
use uuid::Uuid;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{EnrolError, FileError};
use crate::files;

/// Default lifetime of a device certificate: 90 days.
pub const DEFAULT_DEVICE_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default lifetime of an enrolment token: 24 hours.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Prefix of every enrolment token, so a pasted token is recognisable.
pub const TOKEN_PREFIX: &str = "tenet-enrol-";
/// Path segment under which device SPIFFE IDs live.
pub const DEVICE_PATH_PREFIX: &str = "/device/";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Longest device name, hardware serial or owner accepted.
const MAX_ATTRIBUTE_LEN: usize = 256;
/// Version of the registry file format.
const REGISTRY_FORMAT: u32 = 1;

/// The SPIFFE ID of a device: `spiffe://<trust-domain>/device/<device-id>`.
pub fn device_spiffe_id(
    trust_domain: &TrustDomain,
    device_id: Uuid,
) -> Result<SpiffeId, SpiffeIdError> {
    let path = format!("{DEVICE_PATH_PREFIX}{}", device_id.hyphenated());
    SpiffeId::from_parts(trust_domain, &path)
}

/// The device id in a device SPIFFE ID, if it is one.
pub fn device_id_of(id: &SpiffeId) -> Option<Uuid> {
    let rest = id.path().strip_prefix(DEVICE_PATH_PREFIX)?;
    let device_id = Uuid::try_parse(rest).ok()?;
    // Only the canonical spelling, so one device has one SPIFFE ID.
    (rest == device_id.hyphenated().to_string()).then_some(device_id)
}

/// A token as handed to the administrator, once. Not stored anywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The secret text to give to the device's owner.
    pub token: String,
    /// When it stops being redeemable.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a device sends to enrol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentRequest {
    /// The enrolment token.
    pub token: String,
    /// The PKCS#10 CSR, PEM (`CERTIFICATE REQUEST`) or base64 of DER.
    pub csr: String,
    /// The device's host name, for MDM matching and display.
    #[serde(default)]
    pub name: Option<String>,
    /// The device's hardware serial number, for MDM matching.
    #[serde(default)]
    pub hardware_serial: Option<String>,
}

/// The result of a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The new device's id.
    pub device_id: Uuid,
    /// Its SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Its certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
}

impl Enrolment {
    /// The chain as concatenated PEM CERTIFICATE blocks, leaf first.
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| cert_pem(c)).collect()
    }
}

/// One enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The device id (also in its SPIFFE ID).
    pub id: Uuid,
    /// The owner's email, if the token named one.
    pub owner: Option<String>,
    /// The host name given at enrolment.
    pub name: Option<String>,
    /// The hardware serial given at enrolment.
    pub hardware_serial: Option<String>,
    /// The device certificate's serial, lowercase hex.
    pub cert_serial: String,
    /// SHA-256 of the device certificate's DER, lowercase hex.
    pub cert_fingerprint: String,
    /// The device certificate's notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    /// When it enrolled.
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

impl DeviceRecord {
    /// True when the device was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A stored token: its hash, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TokenRecord {
    sha256: String,
    owner: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    redeemed_by: Option<Uuid>,
}

/// Enrolled devices and outstanding enrolment tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRegistry {
    format: u32,
    devices: Vec<DeviceRecord>,
    tokens: Vec<TokenRecord>,
}

impl DeviceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            format: REGISTRY_FORMAT,
            ..Self::default()
        }
    }

    /// Loads the registry file at `path`; a missing file is an empty registry. A file that
    /// does not parse, or is readable by others, is an error naming it.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let Some(registry) = files::read_json::<Self>(path)? else {
            return Ok(Self::new());
        };
        if registry.format != REGISTRY_FORMAT {
            return Err(FileError::Corrupt {
                path: path.to_owned(),
                reason: format!("unsupported registry format {}", registry.format),
            });
        }
        Ok(registry)
    }

    /// Writes the registry to `path` (owner-only, temporary file then rename).
    pub fn save(&self, path: &Path) -> Result<(), FileError> {
        files::replace_json(path, self)
    }

    /// Creates a one-time enrolment token valid for `ttl`, optionally naming the device's
    /// owner. Only the token's hash is kept.
    pub fn create_token(
        &mut self,
        owner: Option<&str>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, EnrolError> {
        let owner = owner.map(check_owner).transpose()?;
        let expires_at = add_ttl(now, ttl)?;
        let mut secret = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut secret).map_err(|_| EnrolError::Random)?;
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        self.tokens.push(TokenRecord {
            sha256: token_hash(&token),
            owner,
            created_at: now,
            expires_at,
            redeemed_by: None,
        });
        tracing::debug!(expires_at = %expires_at, "enrolment token created");
        Ok(IssuedToken { token, expires_at })
    }

    /// Redeems a token: checks it, has `ca` sign the CSR for a new device id with lifetime
    /// `ttl`, and records the device. A token works once, and only a request that gets a
    /// certificate uses it: a CSR whose key is not EC P-256 (the only key a posture report
    /// can be signed with, ES256) is refused before anything is signed.
    pub fn enrol(
        &mut self,
        ca: &CertificateAuthority,
        request: &EnrolmentRequest,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Enrolment, EnrolError> {
        let token_index = self.redeemable_token(&request.token, now)?;
        let name = check_attribute("name", request.name.as_deref())?;
        let hardware_serial = check_attribute("serial", request.hardware_serial.as_deref())?;
        let csr_der = decode_csr(&request.csr)?;

        let device_id = Uuid::new_v4();
        let spiffe_id = device_spiffe_id(ca.trust_domain(), device_id)?;
        let chain = ca.sign_csr(&csr_der, &spiffe_id, ttl, now)?;
        let leaf = crate::cert::LeafInfo::of_chain(&chain)?;

        let owner = self.tokens.get_mut(token_index).and_then(|token| {
            token.redeemed_by = Some(device_id);
            token.owner.clone()
        });
        self.devices.push(DeviceRecord {
            id: device_id,
            owner,
            name,
            hardware_serial,
            cert_serial: leaf.serial_hex,
            cert_fingerprint: leaf.fingerprint,
            cert_not_after: leaf.not_after,
            enrolled_at: now,
            revoked_at: None,
        });
        tracing::debug!(device_id = %device_id, "device enrolled");
        Ok(Enrolment {
            device_id,
            spiffe_id,
            chain,
            not_after: leaf.not_after,
        })
    }

    /// The index of an unused, unexpired token with this value.
    fn redeemable_token(&self, token: &str, now: OffsetDateTime) -> Result<usize, EnrolError> {
        let refuse = |error: EnrolError| {
            tracing::info!(reason = %error, "enrolment refused");
            error
        };
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(refuse(EnrolError::MalformedToken {
                reason: "it does not start with the enrolment token prefix",
            }));
        }
        let hash = token_hash(token);
        let (index, record) = self
            .tokens
            .iter()
            .enumerate()
            .find(|(_, t)| t.sha256 == hash)
            .ok_or_else(|| refuse(EnrolError::UnknownToken))?;
        if let Some(device_id) = record.redeemed_by {
            return Err(refuse(EnrolError::TokenUsed { device_id }));
        }
        if now >= record.expires_at {
            return Err(refuse(EnrolError::TokenExpired {
                expired_at: record.expires_at,
            }));
        }
        Ok(index)
    }

    /// The device with this id, revoked or not.
    pub fn device(&self, id: Uuid) -> Option<&DeviceRecord> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// Every enrolled device, in enrolment order.
    pub fn devices(&self) -> &[DeviceRecord] {
        &self.devices
    }

    /// The non-revoked device with this hardware serial (compared case-insensitively).
    pub fn find_by_serial(&self, serial: &str) -> Option<&DeviceRecord> {
        self.all_by_serial(serial).into_iter().next()
    }

    /// Every non-revoked device with this hardware serial (compared case-insensitively).
    /// Serials are what each device claimed at enrolment, so several may share one.
    pub fn all_by_serial(&self, serial: &str) -> Vec<&DeviceRecord> {
        self.active()
            .filter(|d| {
                d.hardware_serial
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(serial.trim()))
            })
            .collect()
    }

    /// The non-revoked device with this name (compared case-insensitively).
    pub fn find_by_name(&self, name: &str) -> Option<&DeviceRecord> {
        self.all_by_name(name).into_iter().next()
    }

    /// Every non-revoked device with this name (compared case-insensitively). Names are what
    /// each device claimed at enrolment, so several may share one.
    pub fn all_by_name(&self, name: &str) -> Vec<&DeviceRecord> {
        self.active()
            .filter(|d| {
                d.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name.trim()))
            })
            .collect()
    }

    fn active(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.devices.iter().filter(|d| !d.is_revoked())
    }

    /// Revokes a device: its reports are refused from now on. Revoking twice keeps the first
    /// time.
    pub fn revoke(&mut self, id: Uuid, now: OffsetDateTime) -> Result<(), EnrolError> {
        let device = self
            .devices
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or(EnrolError::UnknownDevice { device_id: id })?;
        device.revoked_at.get_or_insert(now);
        tracing::info!(device_id = %id, "device revoked");
        Ok(())
    }

    /// Drops tokens that expired before `now`; returns how many.
    pub fn purge_expired_tokens(&mut self, now: OffsetDateTime) -> usize {
        let before = self.tokens.len();
        self.tokens
            .retain(|t| t.redeemed_by.is_some() || t.expires_at > now);
        before - self.tokens.len()
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn add_ttl(now: OffsetDateTime, ttl: Duration) -> Result<OffsetDateTime, EnrolError> {
    if ttl.is_zero() {
        return Err(EnrolError::InvalidTtl {
            ttl,
            reason: "it is zero",
        });
    }
    time::Duration::try_from(ttl)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or(EnrolError::InvalidTtl {
            ttl,
            reason: "too long to represent",
        })
}

/// A plausible email: one `@` with text on both sides, no whitespace or controls.
fn check_owner(owner: &str) -> Result<String, EnrolError> {
    let plausible = owner.len() <= MAX_ATTRIBUTE_LEN
        && owner
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && owner.matches('@').count() == 1
        && !owner.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plausible {
        return Err(EnrolError::InvalidOwner {
            owner: owner.to_owned(),
        });
    }
    Ok(owner.to_owned())
}

fn check_attribute(field: &'static str, value: Option<&str>) -> Result<Option<String>, EnrolError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > MAX_ATTRIBUTE_LEN || value.chars().any(char::is_control) {
        return Err(EnrolError::InvalidAttribute {
            field,
            value: value.chars().take(MAX_ATTRIBUTE_LEN).collect(),
        });
    }
    Ok(Some(value.to_owned()))
}

/// A CSR given as PEM or as base64 of its DER, whose key is EC P-256: a device signs its
/// posture reports with ES256, so a certificate for any other key would be useless.
fn decode_csr(csr: &str) -> Result<Vec<u8>, EnrolError> {
    let malformed = |reason: String| EnrolError::MalformedCsr { reason };
    let der = if csr.contains("-----BEGIN") {
        CertificateSigningRequestDer::from_pem_slice(csr.as_bytes())
            .map(|der| der.as_ref().to_vec())
            .map_err(|e| malformed(e.to_string()))?
    } else {
        let compact: String = csr.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| malformed(format!("neither pem nor base64: {e}")))?
    };
    let request = match X509CertificationRequest::from_der(&der) {
        Ok(([], request)) => request,
        Ok((rest, _)) => return Err(malformed(format!("{} trailing bytes", rest.len()))),
        Err(e) => return Err(malformed(e.to_string())),
    };
    if let Some(found) = not_p256(&request.certification_request_info.subject_pki) {
        tracing::info!(key = %found, "enrolment refused: csr key is not ec p-256");
        return Err(EnrolError::CsrKeyNotP256 { found });
    }
    Ok(der)
}

/// `None` for an EC P-256 key (uncompressed point), else what the key is, for the error.
fn not_p256(spki: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    let algorithm = &spki.algorithm.algorithm;
    if *algorithm == oid_registry::OID_SIG_ED25519 {
        return Some("Ed25519".into());
    }
    if *algorithm == oid_registry::OID_SIG_ED448 {
        return Some("Ed448".into());
    }
    if *algorithm == oid_registry::OID_PKCS1_RSASSAPSS {
        return Some("RSA-PSS".into());
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => Some(format!("RSA ({} bits)", rsa.key_size())),
        Ok(PublicKey::DSA(_)) => Some("DSA".into()),
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == oid_registry::OID_EC_P256 => match point.data() {
                    [0x04, xy @ ..] if xy.len() == 64 => None,
                    _ => Some("EC P-256 with a point that is not uncompressed".into()),
                },
                Some(c) if c == oid_registry::OID_NIST_EC_P384 => Some("EC P-384".into()),
                Some(c) if c == oid_registry::OID_NIST_EC_P521 => Some("EC P-521".into()),
                Some(c) => Some(format!("EC curve {c}")),
                None => Some("EC without a named curve".into()),
            }
        }
        Ok(_) | Err(_) => Some(format!("key algorithm {algorithm}")),
    }
}

/// One certificate as a PEM block.
pub(crate) fn cert_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
