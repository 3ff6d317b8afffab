//! Signed posture reports: what the agent on a device says of its health, as a compact JWS
//! (ES256) signed with the device key, the device certificate chain in the `x5c` header.
//!
//! A JWS signs the exact base64url bytes it carries, so no JSON canonicalisation is needed.
//! Verification checks, in order: the shape and header, the chain against Tenet's bundle (a
//! client-auth SVID of Tenet's trust domain), the signature, that the SVID is a device's
//! enrolled, non-revoked certificate, that the report names that device, and its time.
//! Replays are refused by [`crate::PostureStore::accept_report`].

use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tenet_identity::{BundleSet, SvidVerifier, TrustBundle, TrustDomain, Usage, X509Svid};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cert::LeafInfo;
use crate::error::ReportError;
use crate::posture::Posture;
use crate::registry::{DeviceRegistry, device_id_of};

/// The JWS `typ` of a posture report.
pub const REPORT_TYPE: &str = "tenet-posture+jws";
/// Longest compact JWS accepted, in bytes.
pub const MAX_REPORT_LEN: usize = 64 * 1024;
/// Most certificates accepted in `x5c`.
const MAX_CHAIN_LEN: usize = 4;
/// Default tolerance for device clocks running ahead.
pub const DEFAULT_REPORT_SKEW: Duration = Duration::from_secs(120);
/// Default maximum age of a report when it arrives.
pub const DEFAULT_REPORT_MAX_AGE: Duration = Duration::from_secs(3600);

/// A posture report as the agent collects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostureReport {
    /// The reporting device.
    pub device_id: Uuid,
    /// When the agent collected it.
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// Operating system name.
    pub os: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Whether the system disk is encrypted (`None`: could not tell).
    pub disk_encrypted: Option<bool>,
    /// Whether a screen lock is enabled.
    pub screen_lock: Option<bool>,
    /// Whether a host firewall is active.
    pub firewall: Option<bool>,
    /// Whether endpoint protection is running.
    pub endpoint_protection: Option<bool>,
    /// The agent's version.
    pub agent_version: String,
    /// Orders reports collected at the same instant (a later `collected_at` wins whatever
    /// its sequence); `tenet device report` sends the collection time in Unix seconds.
    pub sequence: u64,
}

impl PostureReport {
    /// The posture this report describes.
    pub fn posture(&self) -> Posture {
        Posture {
            collected_at: self.collected_at,
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            disk_encrypted: self.disk_encrypted,
            screen_lock: self.screen_lock,
            firewall: self.firewall,
            endpoint_protection: self.endpoint_protection,
            mdm_compliant: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    x5c: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// Signs `report` with the device's SVID key; the SVID's chain goes into `x5c`.
pub fn sign_report(report: &PostureReport, svid: &X509Svid) -> Result<String, ReportError> {
    let sign_error = |reason: String| ReportError::Sign { reason };
    let header = Header {
        alg: "ES256".into(),
        typ: REPORT_TYPE.into(),
        x5c: svid
            .cert_chain()
            .iter()
            .map(|c| STANDARD.encode(c))
            .collect(),
        crit: None,
    };
    let header = serde_json::to_vec(&header).map_err(|e| sign_error(e.to_string()))?;
    let payload = serde_json::to_vec(report).map_err(|e| sign_error(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );

    let key = svid.private_key();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.secret_der())
        .map_err(|e| sign_error(format!("device key is not a p-256 pkcs#8 key: {e}")))?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signature = pair
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| sign_error("ecdsa signing failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// A report whose signature, certificate and time checked out. Only
/// [`ReportVerifier::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReport {
    report: PostureReport,
    cert_serial: String,
}

impl VerifiedReport {
    /// The report.
    pub fn report(&self) -> &PostureReport {
        &self.report
    }

    /// The signing certificate's serial, lowercase hex.
    pub fn cert_serial(&self) -> &str {
        &self.cert_serial
    }
}

/// Verifies signed posture reports against Tenet's trust bundle and device registry.
#[derive(Debug)]
pub struct ReportVerifier {
    svids: SvidVerifier,
    trust_domain: TrustDomain,
    skew: Duration,
    max_age: Duration,
}

impl ReportVerifier {
    /// Trusts device certificates chaining to `bundle`; accepts reports at most `max_age` old
    /// and at most `skew` in the future (the same skew applies to certificate validity).
    pub fn new(bundle: TrustBundle, skew: Duration, max_age: Duration) -> Self {
        let trust_domain = bundle.trust_domain().clone();
        let bundles: BundleSet = std::iter::once(bundle).collect();
        Self {
            svids: SvidVerifier::new(bundles, skew),
            trust_domain,
            skew,
            max_age,
        }
    }

    /// Verifies a compact JWS posture report at `now`. Every refusal is logged at info.
    pub fn verify(
        &self,
        jws: &str,
        registry: &DeviceRegistry,
        now: OffsetDateTime,
    ) -> Result<VerifiedReport, ReportError> {
        self.verify_inner(jws, registry, now).inspect_err(|error| {
            tracing::info!(reason = %error, "posture report refused");
        })
    }

    fn verify_inner(
        &self,
        jws: &str,
        registry: &DeviceRegistry,
        now: OffsetDateTime,
    ) -> Result<VerifiedReport, ReportError> {
        let parts = split_jws(jws)?;
        let chain = decode_header(parts.header)?;
        let (leaf, intermediates) = chain.split_first().ok_or_else(|| malformed("empty x5c"))?;

        let peer = self.svids.verify(leaf, intermediates, Usage::Client, now)?;
        if peer.id.trust_domain() != &self.trust_domain {
            return Err(ReportError::NotDevice {
                id: peer.id.to_string(),
            });
        }
        let info = LeafInfo::of(leaf)?;
        check_signature(&parts, &info.public_key)?;

        let device_id = device_id_of(&peer.id).ok_or_else(|| ReportError::NotDevice {
            id: peer.id.to_string(),
        })?;
        check_registered(registry, device_id, &info)?;

        let report: PostureReport = serde_json::from_slice(&parts.payload)
            .map_err(|e| malformed(format!("payload: {e}")))?;
        if report.device_id != device_id {
            return Err(ReportError::DeviceMismatch {
                claimed: report.device_id,
                signer: device_id,
            });
        }
        self.check_time(report.collected_at, now)?;
        tracing::debug!(device_id = %device_id, sequence = report.sequence, "posture report verified");
        Ok(VerifiedReport {
            report,
            cert_serial: info.serial_hex,
        })
    }

    fn check_time(
        &self,
        collected_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), ReportError> {
        let ahead = collected_at - now;
        if ahead > self.skew {
            return Err(ReportError::FromFuture { collected_at, now });
        }
        if now - collected_at > self.max_age {
            return Err(ReportError::TooOld { collected_at, now });
        }
        Ok(())
    }
}

/// The three parts of a compact JWS, the payload decoded.
struct JwsParts<'a> {
    header: &'a str,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn malformed(reason: impl Into<String>) -> ReportError {
    ReportError::Malformed {
        reason: reason.into(),
    }
}

fn split_jws(jws: &str) -> Result<JwsParts<'_>, ReportError> {
    let jws = jws.trim();
    if jws.len() > MAX_REPORT_LEN {
        return Err(malformed(format!(
            "{} bytes long, the limit is {MAX_REPORT_LEN}",
            jws.len()
        )));
    }
    let (signing_input, signature) = jws
        .rsplit_once('.')
        .ok_or_else(|| malformed("not a compact jws (three dot-separated parts)"))?;
    let (header, payload) = signing_input
        .split_once('.')
        .filter(|(_, payload)| !payload.contains('.'))
        .ok_or_else(|| malformed("not a compact jws (three dot-separated parts)"))?;
    Ok(JwsParts {
        header,
        signing_input,
        payload: decode_part("payload", payload)?,
        signature: decode_part("signature", signature)?,
    })
}

fn decode_part(name: &str, part: &str) -> Result<Vec<u8>, ReportError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| malformed(format!("{name} is not base64url: {e}")))
}

/// The header's certificate chain, after checking `alg`, `typ` and `crit`.
fn decode_header(header: &str) -> Result<Vec<CertificateDer<'static>>, ReportError> {
    let header: Header = serde_json::from_slice(&decode_part("header", header)?)
        .map_err(|e| malformed(format!("header: {e}")))?;
    if header.alg != "ES256" {
        return Err(malformed(format!("alg {:?} is not ES256", header.alg)));
    }
    if header.typ != REPORT_TYPE {
        return Err(malformed(format!(
            "typ {:?} is not {REPORT_TYPE}",
            header.typ
        )));
    }
    if header.crit.is_some() {
        return Err(malformed("crit header parameters are not supported"));
    }
    if header.x5c.is_empty() || header.x5c.len() > MAX_CHAIN_LEN {
        return Err(malformed(format!(
            "x5c has {} certificates, expected 1 to {MAX_CHAIN_LEN}",
            header.x5c.len()
        )));
    }
    header
        .x5c
        .iter()
        .enumerate()
        .map(|(index, b64)| {
            STANDARD
                .decode(b64)
                .map(CertificateDer::from)
                .map_err(|e| malformed(format!("x5c[{index}] is not base64: {e}")))
        })
        .collect()
}

fn check_signature(parts: &JwsParts<'_>, public_key: &[u8]) -> Result<(), ReportError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(parts.signing_input.as_bytes(), &parts.signature)
        .map_err(|_| ReportError::BadSignature)
}

/// The device is enrolled, not revoked, and this is the certificate it enrolled with.
fn check_registered(
    registry: &DeviceRegistry,
    device_id: Uuid,
    leaf: &LeafInfo,
) -> Result<(), ReportError> {
    let record = registry
        .device(device_id)
        .ok_or(ReportError::UnknownDevice { device_id })?;
    if let Some(revoked_at) = record.revoked_at {
        return Err(ReportError::Revoked {
            device_id,
            revoked_at,
        });
    }
    if record.cert_fingerprint != leaf.fingerprint {
        return Err(ReportError::UnknownDevice { device_id });
    }
    Ok(())
}
