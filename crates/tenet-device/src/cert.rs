//! What this crate reads from a device certificate: serial, fingerprint, expiry, public key.

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use tenet_identity::SvidError;
use time::OffsetDateTime;

/// The facts of a leaf certificate that the registry and report verification use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafInfo {
    /// Serial number, lowercase hex of its DER integer bytes.
    pub serial_hex: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The subjectPublicKey bits (for an EC key, the uncompressed point).
    pub public_key: Vec<u8>,
}

impl LeafInfo {
    /// Reads the first certificate of `chain`.
    pub fn of_chain(chain: &[CertificateDer<'_>]) -> Result<Self, SvidError> {
        let leaf = chain.first().ok_or(SvidError::NoCertificates)?;
        Self::of(leaf)
    }

    /// Reads one DER certificate; trailing bytes are an error.
    pub fn of(der: &[u8]) -> Result<Self, SvidError> {
        let malformed = |reason: String| SvidError::MalformedCertificate { index: 0, reason };
        let cert = match x509_parser::parse_x509_certificate(der) {
            Ok(([], cert)) => cert,
            Ok((rest, _)) => return Err(malformed(format!("{} trailing bytes", rest.len()))),
            Err(e) => return Err(malformed(e.to_string())),
        };
        Ok(Self {
            serial_hex: hex::encode(cert.raw_serial()),
            fingerprint: fingerprint(der),
            not_after: cert.validity().not_after.to_datetime(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
