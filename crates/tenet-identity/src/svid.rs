//! X509-SVIDs: the certificate chain plus key a workload holds, and the SVID shape rules.
//!
//! The rules (SPIFFE X509-SVID spec, sections 2 to 5): the leaf has exactly one URI SAN, a
//! SPIFFE ID with a path; it is not a CA; its key usage includes digitalSignature and excludes
//! keyCertSign and cRLSign. Every other certificate in the chain is a CA with keyCertSign.

use std::fmt;
use std::path::Path;

use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::bundle::TrustBundle;
use crate::error::{CaError, NotSvidReason, SvidError};
use crate::files;
use crate::pem;
use crate::spiffe_id::SpiffeId;

/// Name of the certificate chain file written by [`X509Svid::write_files`].
pub const SVID_CHAIN_FILE: &str = "svid.pem";
/// Name of the private key file written by [`X509Svid::write_files`] (mode 0600).
pub const SVID_KEY_FILE: &str = "svid.key";
/// Name of the trust bundle file written by [`X509Svid::write_files`].
pub const BUNDLE_FILE: &str = "bundle.pem";

/// An X509-SVID: the SPIFFE ID, the certificate chain (leaf first) and the leaf's key.
pub struct X509Svid {
    id: SpiffeId,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    not_after: OffsetDateTime,
    serial_hex: String,
}

impl X509Svid {
    /// Validates a chain (leaf first) and its PKCS#8 key as an X509-SVID. The checks run in
    /// go-spiffe's order: certificates parse, the key parses, the SVID shape, the key matches.
    /// The chain is not verified against a bundle here; see [`crate::SvidVerifier`].
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, SvidError> {
        let parsed = chain
            .iter()
            .enumerate()
            .map(|(index, der)| parse_cert(der, index))
            .collect::<Result<Vec<_>, _>>()?;
        let (leaf, signers) = parsed.split_first().ok_or(SvidError::NoCertificates)?;

        let key = match key {
            PrivateKeyDer::Pkcs8(key) => key,
            PrivateKeyDer::Pkcs1(_) => return Err(SvidError::KeyNotPkcs8 { found: "pkcs#1" }),
            PrivateKeyDer::Sec1(_) => return Err(SvidError::KeyNotPkcs8 { found: "sec1" }),
            _ => return Err(SvidError::MalformedKey),
        };
        let pair = rcgen::KeyPair::try_from(&key).map_err(|_| SvidError::MalformedKey)?;

        let id = leaf_spiffe_id(leaf)?;
        check_leaf_usage(leaf)?;
        for (offset, signer) in signers.iter().enumerate() {
            check_signing_cert(signer, offset + 1)?;
        }
        if pair.public_key_raw() != leaf.public_key().subject_public_key.data.as_ref() {
            return Err(SvidError::KeyMismatch);
        }

        let not_after = leaf.validity().not_after.to_datetime();
        let serial_hex = serial_hex(leaf);
        drop(parsed);
        Ok(Self {
            id,
            chain,
            key,
            not_after,
            serial_hex,
        })
    }

    /// Reads an X509-SVID from PEM, as go-spiffe's `x509svid.Parse` does: the chain from
    /// CERTIFICATE blocks, the key from one PKCS#8 PRIVATE KEY block. The two inputs may be the
    /// same bytes. The SVID shape is validated; the chain is not verified against a bundle.
    pub fn load_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, SvidError> {
        let cert_sections =
            pem::sections(cert_chain_pem).map_err(|e| SvidError::CertificatePem {
                reason: e.to_string(),
            })?;
        let chain: Vec<CertificateDer<'static>> = cert_sections
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect();
        if chain.is_empty() {
            return Err(SvidError::NoCertificates);
        }
        // A malformed certificate is reported before any problem with the key.
        for (index, der) in chain.iter().enumerate() {
            parse_cert(der, index)?;
        }
        let key = read_private_key(key_pem)?;
        Self::from_der(chain, key)
    }

    /// The SPIFFE ID in the leaf's URI SAN.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.id
    }

    /// The chain: leaf first, then intermediates (no root).
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's private key (PKCS#8).
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The chain as concatenated CERTIFICATE blocks, leaf first.
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// The key as a PKCS#8 PRIVATE KEY block.
    pub fn key_pem(&self) -> String {
        pem::encode("PRIVATE KEY", self.key.secret_pkcs8_der())
    }

    /// The leaf's notAfter.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The leaf's serial number as lowercase hex of its DER integer bytes.
    pub fn serial_hex(&self) -> String {
        self.serial_hex.clone()
    }

    /// Writes `svid.pem` (chain), `svid.key` (mode 0600) and `bundle.pem` into `dir`. Each file
    /// is written to a temporary name and renamed into place, so readers never see half a file
    /// and the key never exists with a wider mode.
    pub fn write_files(&self, dir: &Path, bundle: &TrustBundle) -> Result<(), CaError> {
        files::replace(
            &dir.join(SVID_CHAIN_FILE),
            self.chain_pem().as_bytes(),
            false,
        )?;
        files::replace(&dir.join(SVID_KEY_FILE), self.key_pem().as_bytes(), true)?;
        files::replace(&dir.join(BUNDLE_FILE), bundle.to_pem().as_bytes(), false)
    }
}

impl Clone for X509Svid {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_after: self.not_after,
            serial_hex: self.serial_hex.clone(),
        }
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("id", &self.id)
            .field("chain_len", &self.chain.len())
            .field("not_after", &self.not_after)
            .field("serial_hex", &self.serial_hex)
            .finish_non_exhaustive()
    }
}

/// The single PKCS#8 key in `key_pem`.
fn read_private_key(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, SvidError> {
    let sections = pem::sections(key_pem).map_err(|e| SvidError::KeyPem {
        reason: e.to_string(),
    })?;
    let mut pkcs8 = Vec::new();
    let mut other = None;
    for (kind, der) in sections {
        match kind {
            SectionKind::PrivateKey => pkcs8.push(der),
            SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                other.get_or_insert(pem::label(kind));
            }
            _ => {}
        }
    }
    match (pkcs8.len(), other) {
        (1, _) => Ok(PrivateKeyDer::Pkcs8(pkcs8.remove(0).into())),
        (0, Some(found)) => Err(SvidError::KeyNotPkcs8 { found }),
        (0, None) => Err(SvidError::NoPrivateKey),
        (count, _) => Err(SvidError::MultipleKeys { count }),
    }
}

/// Parses one DER certificate; trailing bytes are an error.
pub(crate) fn parse_cert(der: &[u8], index: usize) -> Result<X509Certificate<'_>, SvidError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(SvidError::MalformedCertificate {
            index,
            reason: format!("{} trailing bytes after the certificate", rest.len()),
        }),
        Err(e) => Err(SvidError::MalformedCertificate {
            index,
            reason: e.to_string(),
        }),
    }
}

/// The SPIFFE ID of a leaf: exactly one URI SAN, a valid SPIFFE ID, with a path. The subject
/// is never consulted.
pub(crate) fn leaf_spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let not_svid = SvidError::NotSvid;
    let san = cert.subject_alternative_name().map_err(|e| {
        not_svid(NotSvidReason::BadExtensions {
            index: 0,
            reason: e.to_string(),
        })
    })?;
    let uris: Vec<&str> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let uri = match uris.as_slice() {
        [] => return Err(not_svid(NotSvidReason::NoUriSan)),
        [one] => *one,
        many => {
            return Err(not_svid(NotSvidReason::MultipleUriSans {
                count: many.len(),
            }));
        }
    };
    let id = SpiffeId::parse(uri).map_err(|e| not_svid(NotSvidReason::InvalidId(e)))?;
    if !id.has_path() {
        return Err(not_svid(NotSvidReason::IdWithoutPath { id }));
    }
    Ok(id)
}

/// Leaf constraints: not a CA; key usage digitalSignature, and neither keyCertSign nor cRLSign.
pub(crate) fn check_leaf_usage(cert: &X509Certificate<'_>) -> Result<(), SvidError> {
    let bad_ext = |e: x509_parser::error::X509Error| {
        SvidError::NotSvid(NotSvidReason::BadExtensions {
            index: 0,
            reason: e.to_string(),
        })
    };
    let is_ca = cert
        .basic_constraints()
        .map_err(bad_ext)?
        .is_some_and(|bc| bc.value.ca);
    if is_ca {
        return Err(SvidError::NotSvid(NotSvidReason::LeafIsCa));
    }
    let usage = cert.key_usage().map_err(bad_ext)?;
    let Some(usage) = usage.map(|ku| ku.value) else {
        return Err(SvidError::NotSvid(NotSvidReason::MissingDigitalSignature));
    };
    if !usage.digital_signature() {
        return Err(SvidError::NotSvid(NotSvidReason::MissingDigitalSignature));
    }
    if usage.key_cert_sign() {
        return Err(SvidError::NotSvid(NotSvidReason::LeafKeyCertSign));
    }
    if usage.crl_sign() {
        return Err(SvidError::NotSvid(NotSvidReason::LeafCrlSign));
    }
    Ok(())
}

/// Signing-certificate constraints: a CA with keyCertSign.
pub(crate) fn check_signing_cert(
    cert: &X509Certificate<'_>,
    index: usize,
) -> Result<(), SvidError> {
    let bad_ext = |e: x509_parser::error::X509Error| {
        SvidError::NotSvid(NotSvidReason::BadExtensions {
            index,
            reason: e.to_string(),
        })
    };
    let is_ca = cert
        .basic_constraints()
        .map_err(bad_ext)?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(SvidError::NotSvid(NotSvidReason::SigningCertNotCa {
            index,
        }));
    }
    let cert_sign = cert
        .key_usage()
        .map_err(bad_ext)?
        .is_some_and(|ku| ku.value.key_cert_sign());
    if !cert_sign {
        return Err(SvidError::NotSvid(
            NotSvidReason::SigningCertNoKeyCertSign { index },
        ));
    }
    Ok(())
}

/// Lowercase hex of the serial number's DER integer content.
pub(crate) fn serial_hex(cert: &X509Certificate<'_>) -> String {
    hex::encode(cert.raw_serial())
}
