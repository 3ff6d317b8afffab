//! Configuration of one identity provider: who it is, who we are to it, and what we accept.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// A configuration value that is wrong, naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field has a value that cannot be used.
    #[error("oidc provider field `{field}` is invalid: {problem}")]
    Invalid {
        /// The field at fault, as named in the configuration.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// A JWS signature algorithm that Tenet accepts on tokens.
///
/// There is deliberately no `none` and no HMAC (`HS*`) member: a relying party that verifies
/// with public keys must never accept either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwsAlgorithm {
    /// The name used in a JOSE header (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::RS256 => A::RS256,
            Self::RS384 => A::RS384,
            Self::RS512 => A::RS512,
            Self::PS256 => A::PS256,
            Self::PS384 => A::PS384,
            Self::PS512 => A::PS512,
            Self::ES256 => A::ES256,
            Self::ES384 => A::ES384,
            Self::EdDSA => A::EdDSA,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not an algorithm Tenet accepts (this includes `none` and `HS*`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("algorithm {0:?} is not accepted (allowed: RS256..512, PS256..512, ES256, ES384, EdDSA)")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for JwsAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let alg = match s {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            other => return Err(UnsupportedAlgorithm(other.to_owned())),
        };
        Ok(alg)
    }
}

impl TryFrom<String> for JwsAlgorithm {
    type Error = UnsupportedAlgorithm;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<JwsAlgorithm> for String {
    fn from(value: JwsAlgorithm) -> Self {
        value.as_str().to_owned()
    }
}

/// The client secret shared with the identity provider.
///
/// Its `Debug` and `Display` never show the value, so it cannot leak into logs.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret the caller loaded from a file or the environment.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the token request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// Limits of the outbound HTTP client that talks to the identity provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time allowed for the whole request, response body included.
    pub timeout: Duration,
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 1024 * 1024,
        }
    }
}

/// The bounds of [`ProviderConfig::jwks_refetch_interval`], inclusive.
pub const JWKS_REFETCH_INTERVAL: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));

/// Everything Tenet needs to know about one OpenID provider.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Short name of the provider, used in logs and in pending logins.
    pub name: String,
    /// Issuer identifier; must be an `https` URL and equal the discovery document's `issuer`.
    pub issuer: String,
    /// Our client identifier at the provider.
    pub client_id: String,
    /// Our client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<ClientSecret>,
    /// The exact redirect URI registered at the provider.
    pub redirect_uri: String,
    /// Scopes to request; must contain `openid`.
    pub scopes: Vec<String>,
    /// Algorithms accepted on ID tokens; each JWKS key is used with one of these only.
    pub allowed_algorithms: Vec<JwsAlgorithm>,
    /// Name of the claim that carries group memberships.
    pub groups_claim: String,
    /// Extra root CA (PEM file) trusted for the provider's TLS certificate.
    pub ca_file: Option<PathBuf>,
    /// Limits of the HTTP client.
    pub http: HttpLimits,
    /// Clock skew tolerated on `exp` and `iat`.
    pub clock_skew: Duration,
    /// How long a pending login stays usable.
    pub login_max_age: Duration,
    /// Minimum time between two JWKS refetches caused by an unknown key id (default 30 s,
    /// within [`JWKS_REFETCH_INTERVAL`]).
    pub jwks_refetch_interval: Duration,
}

impl ProviderConfig {
    /// A configuration with Tenet's defaults for everything but the four identifying fields.
    pub fn new(
        name: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            redirect_uri: redirect_uri.into(),
            scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
            allowed_algorithms: vec![JwsAlgorithm::RS256, JwsAlgorithm::ES256],
            groups_claim: "groups".to_owned(),
            ca_file: None,
            http: HttpLimits::default(),
            clock_skew: Duration::from_secs(60),
            login_max_age: Duration::from_secs(600),
            jwks_refetch_interval: Duration::from_secs(30),
        }
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_name(&self.name)?;
        validate_issuer(&self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid("client_id", "must not be empty"));
        }
        if self
            .client_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return Err(ConfigError::invalid(
                "client_secret",
                "must not be empty when set",
            ));
        }
        validate_redirect_uri(&self.redirect_uri)?;
        validate_scopes(&self.scopes)?;
        if self.allowed_algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "allowed_algorithms",
                "must not be empty",
            ));
        }
        if self.groups_claim.is_empty() {
            return Err(ConfigError::invalid("groups_claim", "must not be empty"));
        }
        validate_limits(self)
    }
}

fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "name",
            "must be 1-64 characters of [A-Za-z0-9._-]",
        ))
    }
}

fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let url = Url::parse(issuer)
        .map_err(|e| ConfigError::invalid("issuer", format!("{issuer:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(ConfigError::invalid(
            "issuer",
            format!("{issuer:?} must use https"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            "issuer",
            "must have no query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            "issuer",
            "must have no user information",
        ));
    }
    Ok(())
}

fn validate_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let url = Url::parse(uri)
        .map_err(|e| ConfigError::invalid("redirect_uri", format!("{uri:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ConfigError::invalid(
            "redirect_uri",
            "must be an http(s) URL",
        ));
    }
    if url.fragment().is_some() {
        return Err(ConfigError::invalid(
            "redirect_uri",
            "must have no fragment",
        ));
    }
    Ok(())
}

fn validate_scopes(scopes: &[String]) -> Result<(), ConfigError> {
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError::invalid("scopes", "must contain \"openid\""));
    }
    let bad = scopes.iter().find(|s| {
        s.is_empty()
            || s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    });
    match bad {
        Some(s) => Err(ConfigError::invalid(
            "scopes",
            format!("{s:?} is not a scope token"),
        )),
        None => Ok(()),
    }
}

fn validate_limits(config: &ProviderConfig) -> Result<(), ConfigError> {
    if config.http.timeout.is_zero() || config.http.connect_timeout.is_zero() {
        return Err(ConfigError::invalid("http", "timeouts must be positive"));
    }
    if config.http.max_response_bytes == 0 {
        return Err(ConfigError::invalid(
            "http",
            "max_response_bytes must be positive",
        ));
    }
    if config.clock_skew > Duration::from_secs(300) {
        return Err(ConfigError::invalid(
            "clock_skew",
            "must be at most 300 seconds",
        ));
    }
    if config.login_max_age.is_zero() {
        return Err(ConfigError::invalid("login_max_age", "must be positive"));
    }
    let (low, high) = JWKS_REFETCH_INTERVAL;
    if !(low..=high).contains(&config.jwks_refetch_interval) {
        return Err(ConfigError::invalid(
            "jwks_refetch_interval",
            format!(
                "{:?} is not between 1 second (below it, tokens naming made-up key ids would \
                 have the provider's keys fetched again and again) and 10 minutes (a token of \
                 a newly rotated key would be refused that long)",
                config.jwks_refetch_interval
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ProviderConfig {
        ProviderConfig::new(
            "corp",
            "https://idp.example.test",
            "tenet",
            "https://gw.test/cb",
        )
    }

    fn field_of(config: &ProviderConfig) -> &'static str {
        match config.validate() {
            Err(ConfigError::Invalid { field, .. }) => field,
            Ok(()) => "none",
        }
    }

    #[test]
    fn defaults_are_valid() {
        let config = valid();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.scopes, ["openid", "email", "profile"]);
        assert_eq!(
            config.allowed_algorithms,
            [JwsAlgorithm::RS256, JwsAlgorithm::ES256]
        );
        assert_eq!(config.groups_claim, "groups");
    }

    #[test]
    fn errors_name_the_field() {
        let mut c = valid();
        c.issuer = "http://idp.example.test".into();
        assert_eq!(field_of(&c), "issuer");
        let mut c = valid();
        c.client_id = " ".into();
        assert_eq!(field_of(&c), "client_id");
        let mut c = valid();
        c.redirect_uri = "/cb".into();
        assert_eq!(field_of(&c), "redirect_uri");
        let mut c = valid();
        c.scopes = vec!["email".into()];
        assert_eq!(field_of(&c), "scopes");
        let mut c = valid();
        c.allowed_algorithms.clear();
        assert_eq!(field_of(&c), "allowed_algorithms");
        let mut c = valid();
        c.name = "a b".into();
        assert_eq!(field_of(&c), "name");
        let mut c = valid();
        c.client_secret = Some(ClientSecret::new(""));
        assert_eq!(field_of(&c), "client_secret");
    }

    #[test]
    fn the_jwks_refetch_interval_is_between_a_second_and_ten_minutes() {
        assert_eq!(valid().jwks_refetch_interval, Duration::from_secs(30));
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(601),
            Duration::from_secs(u64::MAX),
        ] {
            let mut c = valid();
            c.jwks_refetch_interval = bad;
            assert_eq!(field_of(&c), "jwks_refetch_interval", "{bad:?}");
        }
        for good in [Duration::from_secs(1), Duration::from_secs(600)] {
            let mut c = valid();
            c.jwks_refetch_interval = good;
            assert_eq!(c.validate(), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn none_and_hmac_are_not_algorithms() {
        for bad in ["none", "HS256", "HS384", "HS512", "rs256", ""] {
            assert!(bad.parse::<JwsAlgorithm>().is_err(), "{bad} accepted");
        }
        let parsed: Result<Vec<JwsAlgorithm>, _> = serde_json::from_str(r#"["RS256","none"]"#);
        assert!(parsed.is_err());
        assert_eq!("ES256".parse::<JwsAlgorithm>(), Ok(JwsAlgorithm::ES256));
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let mut c = valid();
        c.client_secret = Some(ClientSecret::new("s3cr3t-value"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"));
        assert!(shown.contains("redacted"));
    }
}
