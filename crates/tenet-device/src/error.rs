//! Typed errors of the device crate, one enum per concern, each message naming the input.

use std::path::PathBuf;

use tenet_identity::{CaError, SpiffeIdError, SvidError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// A time as RFC 3339 (`2026-12-05T12:38:47.566802473Z`), as the rest of Tenet prints times.
fn rfc3339(time: &OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// A registry or key file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading the file failed.
    #[error("cannot read {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the file (or its temporary sibling) failed.
    #[error("cannot write {path:?}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists where a new one was to be created.
    #[error("{path:?} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file's contents are not what was expected.
    #[error("{path:?} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private file is readable or writable by group or others.
    #[error("{path:?} has mode {mode:o}; a private file must not be accessible to group or others")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Why an enrolment token could not be created or redeemed, or a device not changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolError {
    /// No token with this value was ever issued.
    #[error("enrolment token is not known")]
    UnknownToken,
    /// The token was redeemed before.
    #[error("enrolment token was already used (by device {device_id})")]
    TokenUsed {
        /// The device that redeemed it.
        device_id: Uuid,
    },
    /// The token's lifetime is over.
    #[error("enrolment token expired at {}", rfc3339(expired_at))]
    TokenExpired {
        /// When it expired.
        expired_at: OffsetDateTime,
    },
    /// The token text does not have the token shape.
    #[error("enrolment token is malformed: {reason}")]
    MalformedToken {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The owner is not a plausible email address.
    #[error("owner {owner:?} is not an email address")]
    InvalidOwner {
        /// The value given.
        owner: String,
    },
    /// A lifetime of zero or one too long to represent.
    #[error("lifetime {ttl:?} is invalid: {reason}")]
    InvalidTtl {
        /// The lifetime given.
        ttl: std::time::Duration,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The CSR is not PEM or DER the CA can read.
    #[error("certificate signing request is unreadable: {reason}")]
    MalformedCsr {
        /// What is wrong with it.
        reason: String,
    },
    /// The CSR's key is not one a posture report can be signed with (ES256 needs EC P-256).
    #[error("CSR key must be EC P-256 (ES256); found {found}")]
    CsrKeyNotP256 {
        /// The key type found, e.g. `RSA (2048 bits)`, `Ed25519`, `EC P-384`.
        found: String,
    },
    /// The CA refused to sign, or the certificate it produced is not usable.
    #[error("the ca refused the enrolment: {0}")]
    Ca(#[from] CaError),
    /// The device's SPIFFE ID could not be formed.
    #[error("device spiffe id is invalid: {0}")]
    InvalidId(#[from] SpiffeIdError),
    /// The issued certificate could not be read back.
    #[error("issued device certificate is unusable: {0}")]
    IssuedCertificate(#[from] SvidError),
    /// No device with this id is enrolled.
    #[error("device {device_id} is not enrolled")]
    UnknownDevice {
        /// The device id.
        device_id: Uuid,
    },
    /// A device name or serial is too long or has control characters.
    #[error("device {field} {value:?} is invalid: at most 256 printable characters")]
    InvalidAttribute {
        /// Which attribute.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Why a device key could not be made, saved, loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key generation or CSR serialisation failed.
    #[error("cannot generate the device key or its request: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing the key file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key file holds no usable P-256 PKCS#8 key.
    #[error("{path:?} holds no usable p-256 pkcs#8 key: {reason}")]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate chain does not fit the key.
    #[error("device certificate does not fit the device key: {0}")]
    Certificate(#[from] SvidError),
}

/// Why a signed posture report was refused or could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The compact JWS is not three base64url parts with a usable header and payload.
    #[error("posture report is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate chain did not verify against Tenet's bundle.
    #[error("posture report certificate is not trusted: {0}")]
    Untrusted(#[from] SvidError),
    /// The certificate is an SVID, but not a device's.
    #[error("posture report certificate {id:?} is not a device identity")]
    NotDevice {
        /// The SPIFFE ID in the certificate.
        id: String,
    },
    /// The device is not (or no longer) in the registry, or its certificate is not the one
    /// enrolled.
    #[error("device {device_id} is not enrolled with this certificate")]
    UnknownDevice {
        /// The device id from the certificate.
        device_id: Uuid,
    },
    /// The device was revoked.
    #[error("device {device_id} was revoked at {}", rfc3339(revoked_at))]
    Revoked {
        /// The device id.
        device_id: Uuid,
        /// When it was revoked.
        revoked_at: OffsetDateTime,
    },
    /// The signature does not verify with the certificate's key.
    #[error("posture report signature does not verify")]
    BadSignature,
    /// The report names another device than its certificate.
    #[error("posture report is for device {claimed} but signed by device {signer}")]
    DeviceMismatch {
        /// The device id in the report.
        claimed: Uuid,
        /// The device id in the certificate.
        signer: Uuid,
    },
    /// collected_at is too far in the future.
    #[error(
        "posture report collected at {} is in the future (now {})",
        rfc3339(collected_at),
        rfc3339(now)
    )]
    FromFuture {
        /// The report's time.
        collected_at: OffsetDateTime,
        /// The verification time.
        now: OffsetDateTime,
    },
    /// collected_at is older than the maximum age.
    #[error(
        "posture report collected at {} is too old (now {})",
        rfc3339(collected_at),
        rfc3339(now)
    )]
    TooOld {
        /// The report's time.
        collected_at: OffsetDateTime,
        /// The verification time.
        now: OffsetDateTime,
    },
    /// The report is not newer than the latest accepted one for its device.
    #[error(
        "posture report for device {device_id} (collected at {}, sequence {sequence}) is not \
         newer than the accepted one (collected at {}, sequence {latest_sequence})",
        rfc3339(collected_at),
        rfc3339(latest_at)
    )]
    Replay {
        /// The device.
        device_id: Uuid,
        /// The refused report's time.
        collected_at: OffsetDateTime,
        /// The refused report's sequence number.
        sequence: u64,
        /// The accepted report's time.
        latest_at: OffsetDateTime,
        /// The accepted report's sequence number.
        latest_sequence: u64,
    },
    /// Signing failed (bad key or RNG failure).
    #[error("cannot sign the posture report: {reason}")]
    Sign {
        /// What failed.
        reason: String,
    },
}

/// Why an MDM export was refused as a whole. Single bad rows are reported, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MdmError {
    /// The file is not JSON, or not an array of objects.
    #[error("mdm export {source_name:?} is not a json array of objects: {reason}")]
    NotJsonArray {
        /// The name of the input (usually its file name).
        source_name: String,
        /// Parser detail.
        reason: String,
    },
    /// The CSV header could not be read.
    #[error("mdm export {source_name:?} has no readable csv header: {reason}")]
    BadHeader {
        /// The name of the input.
        source_name: String,
        /// Parser detail.
        reason: String,
    },
    /// No column is one Tenet knows.
    #[error("mdm export {source_name:?} has no known column (found: {found})")]
    NoKnownColumn {
        /// The name of the input.
        source_name: String,
        /// The columns found, comma-separated.
        found: String,
    },
    /// The column rows are matched by is missing.
    #[error("mdm export {source_name:?} has no {column} column to match devices by")]
    NoMatchColumn {
        /// The name of the input.
        source_name: String,
        /// The missing column's role.
        column: &'static str,
    },
}
