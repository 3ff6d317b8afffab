//! The canonical host of a request and of its TLS connection, so routing, authorisation and
//! TLS policy all compare the same name.
//!
//! # Rules
//!
//! - ASCII only, lowercased; characters outside `[a-z0-9._-]` are rejected (internationalised
//!   names arrive as `xn--` labels);
//! - exactly one trailing dot is removed; two or more are rejected;
//! - empty labels, labels over 63 and names over 253 characters are rejected;
//! - a name whose last label is numeric (`1.2.3.4`, `127.1`, `0x7f.1`) must be a dotted-quad
//!   IPv4 address without leading zeros, since resolvers read the other spellings in
//!   different ways;
//! - an IPv6 literal in brackets is rewritten in its RFC 5952 form (`[0:0::1]` is `[::1]`);
//!   zone ids are rejected;
//! - a port must be 1 to 5 digits with a value in 1..=65535; the default port is dropped;
//! - userinfo (`user@host`) is rejected.
//!
//! A TLS server name follows the same rules but carries neither a port nor an IP literal.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, Uri, Version, header};

use crate::Rejection;
use crate::rejection::{HostProblem, quote_input};

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
const MAX_PORT_DIGITS: usize = 5;

/// What kind of name a [`CanonicalHost`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKind {
    /// A DNS name.
    Dns,
    /// A dotted-quad IPv4 literal.
    Ipv4,
    /// A bracketed IPv6 literal.
    Ipv6,
}

/// A host in canonical form: equal hosts compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalHost {
    name: String,
    port: Option<u16>,
    kind: HostKind,
}

impl CanonicalHost {
    /// The lowercase name without a trailing dot; IPv6 literals keep their brackets.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port, or None when it was absent or the default port.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the name is a DNS name or an IP literal.
    #[must_use]
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Whether the name is an IPv4 or IPv6 literal.
    #[must_use]
    pub fn is_ip_literal(&self) -> bool {
        self.kind != HostKind::Dns
    }
}

impl fmt::Display for CanonicalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Canonicalise a `host[:port]` as found in a Host header or an authority.
///
/// # Errors
/// [`Rejection::InvalidHost`] naming the input and the rule it breaks.
pub fn canonical_host(raw: &str, default_port: u16) -> Result<CanonicalHost, Rejection> {
    parse_host(raw, default_port).map_err(|problem| invalid(raw.as_bytes(), problem))
}

/// Canonicalise a TLS server name (SNI): a DNS name without port.
///
/// # Errors
/// [`Rejection::InvalidHost`] for an invalid name, a port or an IP literal.
pub fn canonical_sni(raw: &str) -> Result<CanonicalHost, Rejection> {
    let parsed = if raw.starts_with('[') {
        Err(HostProblem::IpLiteralInSni)
    } else {
        canonical_name(raw)
    };
    match parsed {
        Ok((name, HostKind::Dns)) => Ok(CanonicalHost {
            name,
            port: None,
            kind: HostKind::Dns,
        }),
        Ok(_) => Err(invalid(raw.as_bytes(), HostProblem::IpLiteralInSni)),
        Err(problem) => Err(invalid(raw.as_bytes(), problem)),
    }
}

/// The canonical host a request is addressed to.
///
/// The Host header must appear at most once. When the request target carries an authority
/// (absolute-form, or `:authority` in HTTP/2 and HTTP/3), a Host header must name the same
/// canonical host. HTTP/1.1 requires a Host header; other versions may rely on the authority.
///
/// # Errors
/// [`Rejection::DuplicateHeader`], [`Rejection::InvalidHost`], [`Rejection::HostMismatch`]
/// or [`Rejection::MissingHost`].
pub fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    default_port: u16,
) -> Result<CanonicalHost, Rejection> {
    let header = host_header(headers, default_port)?;
    let authority = uri
        .authority()
        .map(|authority| canonical_host(authority.as_str(), default_port));
    match (header, authority.transpose()?) {
        (Some(host), Some(authority)) if host == authority => Ok(authority),
        (Some(host), Some(authority)) => Err(Rejection::HostMismatch { host, authority }),
        (Some(host), None) => Ok(host),
        (None, Some(authority)) if version != Version::HTTP_11 => Ok(authority),
        (None, _) => Err(Rejection::MissingHost),
    }
}

/// Check that a request arrived on the TLS connection meant for its host (same name; SNI
/// carries no port). A connection without SNI only serves IP-literal hosts, because clients
/// send no SNI for those.
///
/// # Errors
/// [`Rejection::SniMismatch`] or [`Rejection::MissingSni`], both answered with 421.
pub fn check_sni(sni: Option<&CanonicalHost>, host: &CanonicalHost) -> Result<(), Rejection> {
    match sni {
        Some(sni) if sni.name == host.name => Ok(()),
        Some(sni) => Err(Rejection::SniMismatch {
            sni: sni.clone(),
            host: host.clone(),
        }),
        None if host.is_ip_literal() => Ok(()),
        None => Err(Rejection::MissingSni { host: host.clone() }),
    }
}

fn invalid(raw: &[u8], problem: HostProblem) -> Rejection {
    Rejection::InvalidHost {
        host: quote_input(raw),
        problem,
    }
}

/// The canonical Host header, if there is exactly one.
fn host_header(headers: &HeaderMap, default_port: u16) -> Result<Option<CanonicalHost>, Rejection> {
    let mut values = headers.get_all(header::HOST).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::DuplicateHeader(header::HOST));
    }
    let raw = value
        .to_str()
        .map_err(|_| invalid(value.as_bytes(), HostProblem::NotAscii))?;
    canonical_host(raw, default_port).map(Some)
}

fn parse_host(raw: &str, default_port: u16) -> Result<CanonicalHost, HostProblem> {
    if raw.contains('@') {
        return Err(HostProblem::UserInfo);
    }
    let (host, port) = split_port(raw)?;
    let port = port
        .map(parse_port)
        .transpose()?
        .filter(|port| *port != default_port);
    let (name, kind) = canonical_name(host)?;
    Ok(CanonicalHost { name, port, kind })
}

/// Split `host[:port]`, where host may be a bracketed IPv6 literal.
fn split_port(raw: &str) -> Result<(&str, Option<&str>), HostProblem> {
    let host_end = if raw.starts_with('[') {
        raw.find(']')
            .map(|close| close + 1)
            .ok_or(HostProblem::InvalidIpv6)?
    } else {
        raw.find(':').unwrap_or(raw.len())
    };
    let (host, rest) = raw
        .split_at_checked(host_end)
        .ok_or(HostProblem::InvalidIpv6)?;
    if rest.is_empty() {
        return Ok((host, None));
    }
    let port = rest.strip_prefix(':').ok_or(HostProblem::InvalidIpv6)?;
    Ok((host, Some(port)))
}

fn parse_port(port: &str) -> Result<u16, HostProblem> {
    let digits_only = !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit());
    if !digits_only || port.len() > MAX_PORT_DIGITS {
        return Err(HostProblem::InvalidPort);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostProblem::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// The canonical name and kind of a host without port.
fn canonical_name(host: &str) -> Result<(String, HostKind), HostProblem> {
    if let Some(inside) = host.strip_prefix('[') {
        let literal = inside.strip_suffix(']').ok_or(HostProblem::InvalidIpv6)?;
        let address: Ipv6Addr = literal.parse().map_err(|_| HostProblem::InvalidIpv6)?;
        return Ok((format!("[{address}]"), HostKind::Ipv6));
    }
    // One pass over the bytes (this runs twice per request, for Host and SNI). A character
    // that is not visible ASCII is reported before one that is not allowed in a name,
    // wherever each is: the first byte that is not visible ASCII starts the first such
    // character (every byte of a multi-byte character is 0x80 or above).
    let mut not_in_name = None;
    for &byte in host.as_bytes() {
        if !byte.is_ascii_graphic() {
            return Err(if byte.is_ascii() {
                HostProblem::InvalidCharacter(char::from(byte))
            } else {
                HostProblem::NotAscii
            });
        }
        let lower = byte.to_ascii_lowercase();
        if not_in_name.is_none() && !is_name_byte(lower) {
            not_in_name = Some(char::from(lower));
        }
    }
    if let Some(bad) = not_in_name {
        return Err(HostProblem::InvalidCharacter(bad));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.ends_with('.') {
        return Err(HostProblem::MultipleTrailingDots);
    }
    check_labels(name)?;

    let name = name.to_ascii_lowercase();
    if name.rsplit('.').next().is_some_and(is_numeric_label) {
        let address: Ipv4Addr = name.parse().map_err(|_| HostProblem::InvalidIpv4)?;
        return Ok((address.to_string(), HostKind::Ipv4));
    }
    Ok((name, HostKind::Dns))
}

fn check_labels(name: &str) -> Result<(), HostProblem> {
    if name.is_empty() {
        return Err(HostProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostProblem::NameTooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostProblem::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostProblem::LabelTooLong);
        }
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
}

/// A label a URL parser would read as a number: decimal digits, or `0x` and hex digits.
fn is_numeric_label(label: &str) -> bool {
    let digits = label.strip_prefix("0x").unwrap_or(label);
    let radix = if digits.len() == label.len() { 10 } else { 16 };
    digits.chars().all(|c| c.is_digit(radix))
}

#[cfg(test)]
mod tests;
