//! The origin and rpId rule of case F007: which WebAuthn client origins and rpId hashes a
//! relying party accepts.
//!
//! An origin is accepted only when its scheme is `https`, its host (lowercased) equals the rpId
//! or ends with `"." + rpId` (a label boundary, so `evilexample.test` is not under
//! `example.test`), and its host and port are those of a configured origin. The rpIdHash must
//! equal SHA-256 of the configured rpId exactly.
//!
//! A cross-origin ceremony (clientDataJSON `crossOrigin: true`: the relying party's page runs
//! in a frame embedded by another site) is refused unless the relying party lists the embedding
//! site's origin in `top_origins` and the client names it in `topOrigin` (WebAuthn Level 3,
//! 5.8.1). `crossOrigin: true` without `topOrigin` (browsers that do not send topOrigin) is
//! refused unless the relying party explicitly accepts it
//! (`cross_origin_without_top_origin`), since the embedding site is then unknown; a
//! `topOrigin` without `crossOrigin: true` is inconsistent and always refused.

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
    /// The host is an IP address or absent, not a domain name.
    #[error("origin {origin:?} does not name a domain")]
    NotADomain {
        /// The origin as the client sent it.
        origin: String,
    },
    /// The ceremony ran in a cross-origin frame and the client did not say which site embeds it.
    #[error("cross-origin ceremony without a topOrigin: the embedding site is unknown")]
    CrossOriginWithoutTopOrigin,
    /// The ceremony ran in a cross-origin frame of a site that is not a configured top origin.
    #[error(
        "cross-origin ceremony embedded by {top_origin:?}, which is not a configured top origin"
    )]
    TopOriginNotAllowed {
        /// The topOrigin as the client sent it.
        top_origin: String,
    },
    /// The client sent a topOrigin but not `crossOrigin: true`.
    #[error("topOrigin {top_origin:?} was sent without crossOrigin: true")]
    TopOriginWithoutCrossOrigin {
        /// The topOrigin as the client sent it.
        top_origin: String,
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
    /// Sites that may embed the relying party's pages in a cross-origin frame.
    top_origins: Vec<AllowedOrigin>,
    /// Whether a cross-origin ceremony that names no top origin is accepted.
    cross_origin_without_top_origin: bool,
}

impl OriginRule {
    /// A rule for `rp_id` (already lowercased) that allows no origin yet.
    pub(crate) fn new(rp_id: &str) -> Self {
        OriginRule {
            rp_id: rp_id.to_owned(),
            rp_id_hash: Sha256::digest(rp_id.as_bytes()).into(),
            allowed: Vec::new(),
            top_origins: Vec::new(),
            cross_origin_without_top_origin: false,
        }
    }

    /// Add a configured origin; it must itself pass the scheme, shape and rpId checks.
    pub(crate) fn allow(&mut self, origin: &Url) -> Result<(), OriginRefusal> {
        let parts = self.parts(origin.as_str())?;
        self.allowed.push(parts);
        Ok(())
    }

    /// Add a site that may embed the relying party in a cross-origin frame. It need not be
    /// under the rpId, but must be a bare https origin with a domain name.
    pub(crate) fn allow_top_origin(&mut self, origin: &Url) -> Result<(), OriginRefusal> {
        let parts = bare_https(origin.as_str())?;
        self.top_origins.push(parts);
        Ok(())
    }

    /// Accept (or, the default, refuse) cross-origin ceremonies that name no top origin.
    pub(crate) fn allow_cross_origin_without_top_origin(&mut self, allow: bool) {
        self.cross_origin_without_top_origin = allow;
    }

    /// Accept or refuse the `crossOrigin` and `topOrigin` members of clientDataJSON.
    pub(crate) fn check_embedding(
        &self,
        cross_origin: bool,
        top_origin: Option<&str>,
    ) -> Result<(), OriginRefusal> {
        match (cross_origin, top_origin) {
            (false, None) => Ok(()),
            (false, Some(top)) => Err(OriginRefusal::TopOriginWithoutCrossOrigin {
                top_origin: top.to_owned(),
            }),
            (true, None) if self.cross_origin_without_top_origin => Ok(()),
            (true, None) => Err(OriginRefusal::CrossOriginWithoutTopOrigin),
            (true, Some(top)) => {
                let not_allowed = || OriginRefusal::TopOriginNotAllowed {
                    top_origin: top.to_owned(),
                };
                let parts = bare_https(top).map_err(|_| not_allowed())?;
                if self.top_origins.contains(&parts) {
                    Ok(())
                } else {
                    Err(not_allowed())
                }
            }
        }
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
        let outside = || OriginRefusal::OutsideRpId {
            origin: origin.to_owned(),
            rp_id: self.rp_id.clone(),
        };
        let parts = bare_https(origin).map_err(|refusal| match refusal {
            OriginRefusal::NotADomain { .. } => outside(),
            other => other,
        })?;
        // A label boundary: "evilexample.test" must not pass for "example.test".
        let under_rp_id = parts.host == self.rp_id
            || parts
                .host
                .strip_suffix(self.rp_id.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'));
        if !under_rp_id {
            return Err(outside());
        }
        Ok(parts)
    }

    /// The configured rpId.
    pub(crate) fn rp_id(&self) -> &str {
        &self.rp_id
    }
}

/// Scheme and shape checks: an https URL with a domain name and nothing after host and port.
/// Returns the lowercase host and effective port.
fn bare_https(origin: &str) -> Result<AllowedOrigin, OriginRefusal> {
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
    let Some(Host::Domain(host)) = url.host() else {
        return Err(OriginRefusal::NotADomain { origin: owned() });
    };
    let host = host.to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(AllowedOrigin { host, port })
}
