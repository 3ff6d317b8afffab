//! The device side of enrolment: a P-256 key generated on the device, kept in an owner-only
//! file, and the CSR that carries its public half to Tenet's CA.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tenet_identity::X509Svid;

use crate::error::KeyError;
use crate::files;

/// A device's private key (P-256). Never leaves the device.
pub struct DeviceKey {
    pair: KeyPair,
}

impl DeviceKey {
    /// Generates a fresh P-256 key with the system RNG.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            pair: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// Writes the key as a PKCS#8 PEM file created with mode 0600. An existing file is
    /// refused, so a device never loses the key its certificate is for.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        files::write_new_private(path, self.pair.serialize_pem().as_bytes())?;
        Ok(())
    }

    /// Reads a key written by [`Self::save`]; a file others can read is refused.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = files::read_private(path)?;
        let invalid = |reason: String| KeyError::InvalidKey {
            path: path.to_owned(),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|_| invalid("not utf-8 text".into()))?;
        let pair = KeyPair::from_pem(&text).map_err(|e| invalid(e.to_string()))?;
        if pair.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(invalid("not a p-256 key".into()));
        }
        Ok(Self { pair })
    }

    /// A PKCS#10 CSR (DER) signed by this key. It names no identity: the CA assigns the
    /// device's SPIFFE ID.
    pub fn csr_der(&self) -> Result<Vec<u8>, KeyError> {
        let request = CertificateParams::default().serialize_request(&self.pair)?;
        Ok(request.der().as_ref().to_vec())
    }

    /// The CSR as PEM (`CERTIFICATE REQUEST`), as [`crate::EnrolmentRequest::csr`] takes it.
    pub fn csr_pem(&self) -> Result<String, KeyError> {
        Ok(CertificateParams::default()
            .serialize_request(&self.pair)?
            .pem()?)
    }

    /// Pairs this key with the chain the CA returned, checking that the leaf is an SVID for
    /// this key. The result can be written with [`X509Svid::write_files`].
    pub fn into_svid(self, chain: Vec<CertificateDer<'static>>) -> Result<X509Svid, KeyError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pair.serialize_der()));
        Ok(X509Svid::from_der(chain, key)?)
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey").finish_non_exhaustive()
    }
}
