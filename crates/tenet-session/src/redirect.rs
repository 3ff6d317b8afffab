//! Where a person may be sent after login: same-origin paths, or absolute URLs on an
//! allow-list of domains.
//!
//! Host names are matched on label boundaries: `.example.test` allows `example.test` and
//! `app.example.test`, never `badexample.test` (oauth2-proxy CVE-2021-21291).

use url::{Host, Url};

/// The longest `return_to` accepted.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// Why a `return_to` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectError {
    /// Empty input.
    #[error("return_to is empty")]
    Empty,
    /// Longer than [`MAX_RETURN_TO_LEN`].
    #[error("return_to is too long ({0} bytes)")]
    TooLong(usize),
    /// Contains a control character, a space or a backslash.
    #[error("return_to '{0}' contains a control character, space or backslash")]
    BadCharacter(String),
    /// Starts with "//" (a scheme-relative URL to another host).
    #[error("return_to '{0}' is scheme-relative")]
    SchemeRelative(String),
    /// Neither a path nor an absolute URL.
    #[error("return_to '{0}' is not a path or an absolute URL")]
    NotAUrl(String),
    /// An absolute URL whose scheme is not https.
    #[error("return_to '{0}' is not https")]
    NotHttps(String),
    /// An absolute URL with user name or password.
    #[error("return_to '{0}' carries credentials")]
    Credentials(String),
    /// An absolute URL whose host is not on the allow-list.
    #[error("return_to '{0}' names a host that is not allowed")]
    HostNotAllowed(String),
    /// An absolute URL whose port is not configured.
    #[error("return_to '{0}' uses port {1}, which is not allowed")]
    PortNotAllowed(String, u16),
}

/// A domain on the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedDomain {
    /// Exactly this host (written `example.test`).
    Exact(String),
    /// This domain and its subdomains (written `.example.test`).
    WithSubdomains(String),
}

impl AllowedDomain {
    /// Parses `.example.test` (domain and subdomains) or `example.test` (that host only).
    /// `None` for an empty or unusable entry.
    pub fn parse(entry: &str) -> Option<Self> {
        let lower = entry.trim().to_ascii_lowercase();
        let (subdomains, name) = match lower.strip_prefix('.') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, lower),
        };
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        match (valid, subdomains) {
            (false, _) => None,
            (true, true) => Some(Self::WithSubdomains(name)),
            (true, false) => Some(Self::Exact(name)),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::WithSubdomains(name) => {
                host == name
                    || host
                        .strip_suffix(name.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            }
        }
    }
}

/// A checked post-login destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnTo {
    /// A path on this origin.
    Path(String),
    /// An allowed absolute URL.
    Absolute(Url),
}

impl ReturnTo {
    /// The text for the `Location` header.
    pub fn as_str(&self) -> &str {
        match self {
            ReturnTo::Path(p) => p,
            ReturnTo::Absolute(u) => u.as_str(),
        }
    }
}

/// The redirect policy. An empty allow-list accepts only same-origin paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPolicy {
    domains: Vec<AllowedDomain>,
    ports: Vec<u16>,
}

impl Default for RedirectPolicy {
    /// Paths only: no absolute URL is allowed.
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            ports: vec![443],
        }
    }
}

impl RedirectPolicy {
    /// A policy allowing these domains on these ports (443 must be listed to allow URLs
    /// without a port).
    pub fn new(domains: Vec<AllowedDomain>, ports: Vec<u16>) -> Self {
        Self { domains, ports }
    }

    /// Checks a `return_to` value.
    pub fn check(&self, input: &str) -> Result<ReturnTo, RedirectError> {
        let result = self.check_inner(input);
        match &result {
            Ok(_) => tracing::debug!("return_to accepted"),
            Err(err) => tracing::info!(error = %err, "return_to refused"),
        }
        result
    }

    fn check_inner(&self, input: &str) -> Result<ReturnTo, RedirectError> {
        check_characters(input)?;
        if input.starts_with("//") {
            return Err(RedirectError::SchemeRelative(input.to_owned()));
        }
        if input.starts_with('/') {
            return Ok(ReturnTo::Path(input.to_owned()));
        }
        let url = Url::parse(input).map_err(|_| RedirectError::NotAUrl(input.to_owned()))?;
        self.check_absolute(input, url)
    }

    fn check_absolute(&self, input: &str, url: Url) -> Result<ReturnTo, RedirectError> {
        if url.scheme() != "https" {
            return Err(RedirectError::NotHttps(input.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectError::Credentials(input.to_owned()));
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            _ => return Err(RedirectError::HostNotAllowed(input.to_owned())),
        };
        if !self.domains.iter().any(|d| d.matches(&host)) {
            return Err(RedirectError::HostNotAllowed(input.to_owned()));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        if !self.ports.contains(&port) {
            return Err(RedirectError::PortNotAllowed(input.to_owned(), port));
        }
        Ok(ReturnTo::Absolute(url))
    }
}

/// Refuses what browsers strip or reinterpret: controls, spaces, backslashes.
fn check_characters(input: &str) -> Result<(), RedirectError> {
    if input.is_empty() {
        return Err(RedirectError::Empty);
    }
    if input.len() > MAX_RETURN_TO_LEN {
        return Err(RedirectError::TooLong(input.len()));
    }
    if input
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(RedirectError::BadCharacter(
            input.escape_default().to_string(),
        ));
    }
    Ok(())
}
