//! The WebAuthn relying party: its validated configuration and the webauthn-rs core behind it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::{Host, Url};
use webauthn_rs_core::WebauthnCore;

use crate::origin::{OriginRefusal, OriginRule};

/// How long a started ceremony may be finished (also the timeout the browser is given).
pub(crate) const CEREMONY_TTL: Duration = Duration::from_secs(300);

/// The relying party as configured by the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingPartyConfig {
    /// The rpId: a registrable domain such as "example.test" (no scheme, port or path).
    pub rp_id: String,
    /// The name shown to the user by the authenticator.
    pub rp_name: String,
    /// The allowed origins, such as `https://login.example.test`. Each must be https and
    /// under the rpId; subdomains are not implied and must be listed.
    pub origins: Vec<String>,
    /// The sites that may embed the relying party's pages in a cross-origin frame, such as
    /// `https://portal.example.net`. A cross-origin ceremony is accepted only when the client
    /// names one of them as its topOrigin. Empty (the default): cross-origin ceremonies are
    /// refused.
    #[serde(default)]
    pub top_origins: Vec<String>,
    /// Accept a cross-origin ceremony whose client data names no topOrigin (`crossOrigin:
    /// true` without `topOrigin`, as browsers that do not send topOrigin report a frame).
    /// Default false. The embedding site is then unknown: any site that can frame the relying
    /// party's pages could run the ceremony in its frame, so only framing protections
    /// (`Content-Security-Policy: frame-ancestors`) decide which sites can embed them.
    #[serde(default)]
    pub cross_origin_without_top_origin: bool,
}

/// A configuration field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field has a value that cannot be used.
    #[error("relying party config: {field} = {value:?}: {reason}")]
    Invalid {
        /// The field, such as `rp_id` or `origins[1]`.
        field: String,
        /// The value as configured.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The person a credential is registered for, as the authenticator shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    /// A login name, such as an e-mail address.
    pub name: String,
    /// A display name.
    pub display_name: String,
}

/// A WebAuthn relying party with the origin rule of case F007.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    pub(crate) core: WebauthnCore,
    pub(crate) rule: OriginRule,
}

impl RelyingParty {
    /// Validate `config` and build the relying party. Errors name the bad field.
    pub fn new(config: &RelyingPartyConfig) -> Result<Self, ConfigError> {
        let rp_id = validate_rp_id(&config.rp_id)?;
        if config.rp_name.trim().is_empty() {
            return Err(ConfigError::invalid("rp_name", &config.rp_name, "is empty"));
        }
        let origins = validate_origins(&config.origins)?;
        // Top origins must be https too; the list may be empty.
        let top_origins = https_urls("top_origins", &config.top_origins)?;

        let mut rule = OriginRule::new(&rp_id);
        rule.allow_cross_origin_without_top_origin(config.cross_origin_without_top_origin);
        for (i, (url, raw)) in origins.iter().zip(&config.origins).enumerate() {
            rule.allow(url).map_err(|refusal| {
                ConfigError::invalid(format!("origins[{i}]"), raw, refusal.to_string())
            })?;
        }
        for (i, (url, raw)) in top_origins.iter().zip(&config.top_origins).enumerate() {
            rule.allow_top_origin(url).map_err(|refusal| {
                ConfigError::invalid(format!("top_origins[{i}]"), raw, refusal.to_string())
            })?;
        }
        // webauthn-rs compares origins exactly (no subdomains, no other port) on top of ours.
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &rp_id,
            origins,
            CEREMONY_TTL,
            Some(false),
            Some(false),
        );
        Ok(RelyingParty { core, rule })
    }

    /// The rpId, lowercased.
    pub fn rp_id(&self) -> &str {
        self.rule.rp_id()
    }

    /// Accept or refuse a client origin by the F007 rule.
    pub fn check_origin(&self, origin: &str) -> Result<(), OriginRefusal> {
        self.rule.check_origin(origin)
    }

    /// Accept or refuse an rpIdHash: it must be SHA-256 of the rpId exactly.
    pub fn check_rp_id_hash(&self, hash: &[u8]) -> Result<(), OriginRefusal> {
        self.rule.check_rp_id_hash(hash)
    }
}

/// The rpId must be a bare lowercase-able domain name.
fn validate_rp_id(rp_id: &str) -> Result<String, ConfigError> {
    let lower = rp_id.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return Err(ConfigError::invalid("rp_id", rp_id, "is empty"));
    }
    let as_url = Url::parse(&format!("https://{lower}/"));
    let is_domain = matches!(
        as_url.as_ref().map(|u| u.host()),
        Ok(Some(Host::Domain(host))) if host == lower
    );
    if !is_domain || lower.contains(['/', ':', '@']) {
        return Err(ConfigError::invalid(
            "rp_id",
            rp_id,
            "is not a bare domain name (no scheme, port, path or IP address)",
        ));
    }
    if is_public_suffix(&lower) {
        return Err(ConfigError::invalid(
            "rp_id",
            rp_id,
            "is a public suffix: every site registered under it could claim its credentials; \
             use the registrable domain of the people routes (such as example.com)",
        ));
    }
    Ok(lower)
}

/// Whether `domain` (lowercase) is itself a rule of the Public Suffix List compiled into the
/// `psl` crate (`com`, `co.uk`, `github.io`). A name the list does not know, such as
/// `localhost` or `example.test`, is not one.
fn is_public_suffix(domain: &str) -> bool {
    use psl::Psl as _;
    psl::List
        .suffix(domain.as_bytes())
        .is_some_and(|suffix| suffix.is_known() && suffix.as_bytes().len() == domain.len())
}

/// Every origin must parse and be https; the list must not be empty.
fn validate_origins(origins: &[String]) -> Result<Vec<Url>, ConfigError> {
    if origins.is_empty() {
        return Err(ConfigError::invalid(
            "origins",
            "",
            "is empty: nothing would be allowed",
        ));
    }
    https_urls("origins", origins)
}

/// Parse each entry of the list `key` as an https URL; errors name `key[i]`.
fn https_urls(key: &str, origins: &[String]) -> Result<Vec<Url>, ConfigError> {
    origins
        .iter()
        .enumerate()
        .map(|(i, origin)| {
            let field = format!("{key}[{i}]");
            let url = Url::parse(origin)
                .map_err(|e| ConfigError::invalid(field.clone(), origin, e.to_string()))?;
            if url.scheme() != "https" {
                return Err(ConfigError::invalid(field, origin, "scheme must be https"));
            }
            Ok(url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn config(origins: &[&str]) -> RelyingPartyConfig {
        RelyingPartyConfig {
            rp_id: "example.test".into(),
            rp_name: "Tenet".into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            top_origins: Vec::new(),
            cross_origin_without_top_origin: false,
        }
    }

    fn field_of(result: Result<RelyingParty, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { field, .. }) => field,
            Ok(_) => panic!("config accepted"),
        }
    }

    #[test]
    fn f007_origin_and_rp_id_hash_need_a_label_boundary_https_and_a_configured_port() {
        let rp = RelyingParty::new(&config(&[
            "https://login.example.test",
            "https://app.example.test",
        ]))
        .unwrap();
        for accepted in [
            "https://login.example.test",
            "https://APP.Example.Test",
            "https://login.example.test:443",
            "https://login.example.test/",
        ] {
            assert_eq!(rp.check_origin(accepted), Ok(()), "{accepted}");
        }

        let refused = |origin: &str| rp.check_origin(origin).unwrap_err();
        assert!(matches!(
            refused("https://evilexample.test"),
            OriginRefusal::OutsideRpId { .. }
        ));
        assert!(matches!(
            refused("https://badexample.test"),
            OriginRefusal::OutsideRpId { .. }
        ));
        assert!(matches!(
            refused("https://example.test.evil.example.net"),
            OriginRefusal::OutsideRpId { .. }
        ));
        assert!(matches!(
            refused("http://login.example.test"),
            OriginRefusal::NotHttps { .. }
        ));
        assert!(matches!(
            refused("https://login.example.test:8443"),
            OriginRefusal::NotConfigured { .. }
        ));
        assert!(matches!(
            refused("https://other.example.test"),
            OriginRefusal::NotConfigured { .. }
        ));
        assert!(matches!(
            refused("https://login.example.test/x"),
            OriginRefusal::NotBare { .. }
        ));
        assert!(matches!(
            refused("https://1.2.3.4"),
            OriginRefusal::OutsideRpId { .. }
        ));
        assert!(matches!(
            refused("login.example.test"),
            OriginRefusal::NotAUrl { .. }
        ));

        let good = Sha256::digest(b"example.test");
        assert_eq!(rp.check_rp_id_hash(&good), Ok(()));
        for bad in ["evilexample.test", "EXAMPLE.TEST", "login.example.test"] {
            let hash = Sha256::digest(bad.as_bytes());
            assert!(matches!(
                rp.check_rp_id_hash(&hash),
                Err(OriginRefusal::RpIdHashMismatch { .. })
            ));
        }
        assert!(rp.check_rp_id_hash(&good[..31]).is_err());
    }

    #[test]
    fn cross_origin_needs_a_configured_top_origin() {
        let same_only = RelyingParty::new(&config(&["https://login.example.test"])).unwrap();
        assert_eq!(same_only.rule.check_embedding(false, None), Ok(()));
        assert_eq!(
            same_only
                .rule
                .check_embedding(true, Some("https://portal.example.net")),
            Err(OriginRefusal::TopOriginNotAllowed {
                top_origin: "https://portal.example.net".into()
            })
        );

        let mut embedded = config(&["https://login.example.test"]);
        embedded.top_origins = vec!["https://Portal.Example.Net".into()];
        let rp = RelyingParty::new(&embedded).unwrap();
        let rule = &rp.rule;
        assert_eq!(rule.check_embedding(false, None), Ok(()));
        for accepted in [
            "https://portal.example.net",
            "https://portal.example.net:443/",
        ] {
            assert_eq!(
                rule.check_embedding(true, Some(accepted)),
                Ok(()),
                "{accepted}"
            );
        }
        for refused in [
            "https://portal.example.net:8443",
            "http://portal.example.net",
            "https://evil.example.net",
            "https://portal.example.net/x",
            "portal.example.net",
        ] {
            assert_eq!(
                rule.check_embedding(true, Some(refused)),
                Err(OriginRefusal::TopOriginNotAllowed {
                    top_origin: refused.into()
                }),
                "{refused}"
            );
        }
        assert_eq!(
            rule.check_embedding(true, None),
            Err(OriginRefusal::CrossOriginWithoutTopOrigin)
        );

        // Opting in accepts crossOrigin without topOrigin, and nothing else that was refused.
        let mut blind = embedded.clone();
        blind.cross_origin_without_top_origin = true;
        let rp = RelyingParty::new(&blind).unwrap();
        let rule = &rp.rule;
        assert_eq!(rule.check_embedding(true, None), Ok(()));
        assert_eq!(rule.check_embedding(false, None), Ok(()));
        assert_eq!(
            rule.check_embedding(true, Some("https://portal.example.net")),
            Ok(())
        );
        assert_eq!(
            rule.check_embedding(true, Some("https://evil.example.net")),
            Err(OriginRefusal::TopOriginNotAllowed {
                top_origin: "https://evil.example.net".into()
            })
        );
        assert_eq!(
            rule.check_embedding(false, Some("https://portal.example.net")),
            Err(OriginRefusal::TopOriginWithoutCrossOrigin {
                top_origin: "https://portal.example.net".into()
            })
        );
        blind.top_origins.clear();
        let rp = RelyingParty::new(&blind).unwrap();
        assert_eq!(rp.rule.check_embedding(true, None), Ok(()));
        assert_eq!(
            rule.check_embedding(false, Some("https://portal.example.net")),
            Err(OriginRefusal::TopOriginWithoutCrossOrigin {
                top_origin: "https://portal.example.net".into()
            })
        );
    }

    #[test]
    fn config_errors_name_the_bad_field() {
        assert_eq!(field_of(RelyingParty::new(&config(&[]))), "origins");
        assert_eq!(
            field_of(RelyingParty::new(&config(&["http://login.example.test"]))),
            "origins[0]"
        );
        assert_eq!(
            field_of(RelyingParty::new(&config(&[
                "https://login.example.test",
                "https://evilexample.test"
            ]))),
            "origins[1]"
        );
        assert_eq!(
            field_of(RelyingParty::new(&config(&["not a url"]))),
            "origins[0]"
        );
        let mut bad_id = config(&["https://login.example.test"]);
        bad_id.rp_id = "https://example.test".into();
        assert_eq!(field_of(RelyingParty::new(&bad_id)), "rp_id");
        bad_id.rp_id = "example.test:443".into();
        assert_eq!(field_of(RelyingParty::new(&bad_id)), "rp_id");
        let mut no_name = config(&["https://login.example.test"]);
        no_name.rp_name = " ".into();
        assert_eq!(field_of(RelyingParty::new(&no_name)), "rp_name");
        for (bad, field) in [
            (vec!["http://portal.example.net"], "top_origins[0]"),
            (
                vec!["https://portal.example.net", "not a url"],
                "top_origins[1]",
            ),
            (vec!["https://portal.example.net/path"], "top_origins[0]"),
            (vec!["https://10.0.0.1"], "top_origins[0]"),
        ] {
            let mut top = config(&["https://login.example.test"]);
            top.top_origins = bad.iter().map(|o| o.to_string()).collect();
            assert_eq!(field_of(RelyingParty::new(&top)), field, "{bad:?}");
        }
        let mut upper = config(&["https://Login.Example.Test"]);
        upper.rp_id = "Example.Test".into();
        assert_eq!(RelyingParty::new(&upper).unwrap().rp_id(), "example.test");
    }

    /// An rpId that is a public suffix would let every site under it use the credentials.
    #[test]
    fn a_public_suffix_is_not_an_rp_id() {
        for (suffix, origin) in [
            ("com", "https://login.example.com"),
            ("COM", "https://login.example.com"),
            ("co.uk", "https://login.example.co.uk"),
            ("github.io", "https://someone.github.io"),
            ("s3.amazonaws.com", "https://bucket.s3.amazonaws.com"),
            // A wildcard rule (*.ck): every name directly under ck is a suffix.
            ("anything.ck", "https://login.anything.ck"),
        ] {
            let mut rp = config(&[origin]);
            rp.rp_id = suffix.into();
            match RelyingParty::new(&rp) {
                Err(ConfigError::Invalid {
                    field,
                    value,
                    reason,
                }) => {
                    assert_eq!((field.as_str(), value.as_str()), ("rp_id", suffix));
                    assert!(reason.contains("public suffix"), "{reason}");
                }
                Ok(_) => panic!("{suffix} accepted as an rp id"),
            }
        }
        // Registrable domains under those suffixes, the wildcard's exception, and names the
        // list does not know (localhost, .test) stay accepted.
        for (rp_id, origin) in [
            ("example.com", "https://login.example.com"),
            ("example.co.uk", "https://login.example.co.uk"),
            ("someone.github.io", "https://someone.github.io"),
            ("www.ck", "https://www.ck"),
            ("localhost", "https://localhost:8443"),
            ("example.test", "https://login.example.test"),
        ] {
            let mut rp = config(&[origin]);
            rp.rp_id = rp_id.into();
            assert_eq!(RelyingParty::new(&rp).unwrap().rp_id(), rp_id);
        }
        // An IP address was never an rp id, and still is not.
        let mut ip = config(&["https://login.example.test"]);
        ip.rp_id = "127.0.0.1".into();
        assert_eq!(field_of(RelyingParty::new(&ip)), "rp_id");
    }
}
