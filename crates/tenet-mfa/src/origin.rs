//! The origin and rpId rule of case F007: which WebAuthn client origins and rpId hashes a
//! relying party accepts.
//!
//! An origin is accepted only when its scheme is `https`, its host (lowercased) equals the rpId
//! or ends with `"." + rpId` (a label boundary, so `evilexample.test` is not under
//! `example.test`), and its host and port are those of a configured origin. The rpIdHash must
//! equal SHA-256 of the configured rpId exactly.

use sha2::{Digest, Sha256};
use url::{Host, Url};

/// Why a client origin or rpIdHash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginRefusal {
    /// The origin is not a URL.
    #[error("origin {origin:?} is not a URL")]
    NotAUrl {
        /// The origin as the client sent it.
        origin: String,
    },
    /// The scheme is not https.
    #[error("origin {origin:?} does not use https")]
    NotHttps {
        /// The origin as the client sent it.
        origin: String,
    },
    /// The origin carries a path, query, fragment or credentials.
    #[error("origin {origin:?} is not a bare scheme://host[:port]")]
    NotBare {
        /// The origin as the client sent it.
        origin: String,
    },
    /// The host is not the rpId or a subdomain of it.
    #[error("origin {origin:?} is not the rp id {rp_id:?} or a subdomain of it")]
    OutsideRpId {
        /// The origin as the client sent it.
        origin: String,
        /// The configured rpId.
        rp_id: String,
    },
    /// Host and port match no configured origin.
    #[error("origin {origin:?} (host and port) is not a configured origin")]
    NotConfigured {
        /// The origin as the client sent it.
        origin: String,
    },
    /// The rpIdHash in the authenticator data is not SHA-256 of the rpId.
    #[error("rpIdHash {hash_hex} is not SHA-256 of the rp id {rp_id:?}")]
    RpIdHashMismatch {
        /// The hash presented, hex.
        hash_hex: String,
        /// The configured rpId.
        rp_id: String,
    },
}

/// One configured origin, reduced to what is compared: lowercase host and effective port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedOrigin {
    host: String,
    port: u16,
}

/// The F007 rule for one relying party.
#[derive(Debug, Clone)]
pub(crate) struct OriginRule {
    rp_id: String,
    rp_id_hash: [u8; 32],
    allowed: Vec<AllowedOrigin>,
}

impl OriginRule {
    /// A rule for `rp_id` (already lowercased) that allows no origin yet.
    pub(crate) fn new(rp_id: &str) -> Self {
        OriginRule {
            rp_id: rp_id.to_owned(),
            rp_id_hash: Sha256::digest(rp_id.as_bytes()).into(),
            allowed: Vec::new(),
        }
    }

    /// Add a configured origin; it must itself pass the scheme, shape and rpId checks.
    pub(crate) fn allow(&mut self, origin: &Url) -> Result<(), OriginRefusal> {
        let parts = self.parts(origin.as_str())?;
        self.allowed.push(parts);
        Ok(())
    }

    /// Accept or refuse a client origin (the `origin` member of clientDataJSON).
    pub(crate) fn check_origin(&self, origin: &str) -> Result<(), OriginRefusal> {
        let parts = self.parts(origin)?;
        if self.allowed.contains(&parts) {
            Ok(())
        } else {
            Err(OriginRefusal::NotConfigured {
                origin: origin.to_owned(),
            })
        }
    }

    /// Accept or refuse an rpIdHash (the first 32 bytes of authenticator data).
    pub(crate) fn check_rp_id_hash(&self, hash: &[u8]) -> Result<(), OriginRefusal> {
        // INVARIANT: exact equality with SHA-256(rpId); no appid or other alternative hash.
        if hash == self.rp_id_hash.as_slice() {
            return Ok(());
        }
        Err(OriginRefusal::RpIdHashMismatch {
            hash_hex: hex::encode(hash),
            rp_id: self.rp_id.clone(),
        })
    }

    /// Scheme, shape and rpId checks; returns the host and port to compare.
    fn parts(&self, origin: &str) -> Result<AllowedOrigin, OriginRefusal> {
        let owned = || origin.to_owned();
        let url = Url::parse(origin).map_err(|_| OriginRefusal::NotAUrl { origin: owned() })?;
        if url.scheme() != "https" {
            return Err(OriginRefusal::NotHttps { origin: owned() });
        }
        let bare = matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !bare {
            return Err(OriginRefusal::NotBare { origin: owned() });
        }

        let outside = || OriginRefusal::OutsideRpId {
            origin: owned(),
            rp_id: self.rp_id.clone(),
        };
        let Some(Host::Domain(host)) = url.host() else {
            return Err(outside());
        };
        let host = host.to_ascii_lowercase();
        // A label boundary: "evilexample.test" must not pass for "example.test".
        let under_rp_id = host == self.rp_id
            || host
                .strip_suffix(self.rp_id.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'));
        if !under_rp_id {
            return Err(outside());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        Ok(AllowedOrigin { host, port })
    }

    /// The configured rpId.
    pub(crate) fn rp_id(&self) -> &str {
        &self.rp_id
    }
}
