//! SPIFFE IDs and trust domains, parsed strictly: input is accepted as written or rejected.
//!
//! The rules are those of the SPIFFE ID specification as implemented by go-spiffe: lowercase
//! scheme `spiffe://`, a trust domain of `[a-z0-9._-]`, and a path of segments made of
//! `[a-zA-Z0-9._-]` with no empty, `.` or `..` segment and no trailing slash. Nothing is
//! percent-decoded, case-folded or normalised, so one workload has exactly one spelling.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseTarget, SpiffeIdError, SpiffeIdErrorKind};

/// The scheme prefix of every SPIFFE ID.
const SCHEME: &str = "spiffe://";
/// SPIFFE ID spec, section 2.3: URIs longer than 2048 bytes are not processed.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// SPIFFE ID spec, section 2.1: a trust domain name is at most 255 bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A trust domain name such as `prod.example.test`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name. `spiffe://` IDs are rejected here; see
    /// [`TrustDomain::from_name_or_id`] for the go-spiffe behaviour that accepts both.
    pub fn parse(name: &str) -> Result<Self, SpiffeIdError> {
        let err = |kind| SpiffeIdError::new(ParseTarget::TrustDomain, name, kind);
        if name.is_empty() {
            return Err(err(SpiffeIdErrorKind::MissingTrustDomain));
        }
        check_trust_domain(name, 0).map_err(err)?;
        Ok(Self(name.to_owned()))
    }

    /// Accepts a trust domain name, or a SPIFFE ID whose trust domain is taken (go-spiffe's
    /// `TrustDomainFromString`): input containing `:/` must be a fully valid SPIFFE ID.
    pub fn from_name_or_id(input: &str) -> Result<Self, SpiffeIdError> {
        if input.contains(":/") {
            let id = SpiffeId::parse(input).map_err(|e| {
                SpiffeIdError::new(ParseTarget::TrustDomain, input, e.kind().clone())
            })?;
            return Ok(id.trust_domain);
        }
        Self::parse(input)
    }

    /// The name, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself, `spiffe://<name>` (no path).
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            full: format!("{SCHEME}{}", self.0),
            trust_domain: self.clone(),
            path_start: SCHEME.len() + self.0.len(),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A SPIFFE ID such as `spiffe://prod.example.test/ns/payments/sa/api`.
///
/// Equality, ordering and hashing are those of the full string: paths are case-sensitive.
#[derive(Clone)]
pub struct SpiffeId {
    full: String,
    trust_domain: TrustDomain,
    path_start: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID. Nothing is decoded or repaired: percent-encoding, empty or dot
    /// segments, a trailing slash, uppercase in the trust domain, a port, a query or a fragment
    /// are all rejected.
    pub fn parse(input: &str) -> Result<Self, SpiffeIdError> {
        let err = |kind| SpiffeIdError::new(ParseTarget::SpiffeId, input, kind);
        if input.is_empty() {
            return Err(err(SpiffeIdErrorKind::Empty));
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(err(SpiffeIdErrorKind::TooLong {
                len: input.len(),
                max: MAX_SPIFFE_ID_LEN,
            }));
        }
        let rest = input
            .strip_prefix(SCHEME)
            .ok_or_else(|| err(SpiffeIdErrorKind::BadScheme))?;

        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        if td.is_empty() {
            return Err(err(SpiffeIdErrorKind::MissingTrustDomain));
        }
        check_trust_domain(td, SCHEME.len()).map_err(err)?;
        check_path(path, SCHEME.len() + td_len).map_err(err)?;

        Ok(Self {
            full: input.to_owned(),
            trust_domain: TrustDomain(td.to_owned()),
            path_start: SCHEME.len() + td_len,
        })
    }

    /// Builds `spiffe://<trust_domain><path>`, validating the path (empty, or `/seg/...`).
    pub fn from_parts(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!("{SCHEME}{}{path}", trust_domain.as_str()))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        self.full.get(self.path_start..).unwrap_or_default()
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// True when the ID has a path, i.e. names a workload rather than the trust domain.
    pub fn has_path(&self) -> bool {
        !self.path().is_empty()
    }
}

/// Checks trust domain characters and length. `offset` is where `td` starts in the input.
fn check_trust_domain(td: &str, offset: usize) -> Result<(), SpiffeIdErrorKind> {
    if let Some((at, found)) = td.char_indices().find(|&(_, c)| !is_trust_domain_char(c)) {
        return Err(SpiffeIdErrorKind::BadTrustDomainChar {
            found,
            at: offset + at,
        });
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdErrorKind::TooLong {
            len: td.len(),
            max: MAX_TRUST_DOMAIN_LEN,
        });
    }
    Ok(())
}

/// Checks a path segment by segment, in input order, like go-spiffe's `ValidatePath`: the
/// characters of a segment first, then its shape once its end is reached.
fn check_path(path: &str, offset: usize) -> Result<(), SpiffeIdErrorKind> {
    let Some(body) = path.strip_prefix('/') else {
        // An empty path is valid; a non-empty one always starts with '/' here.
        return Ok(());
    };
    let mut seg_start = offset + 1;
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        if let Some((at, found)) = segment.char_indices().find(|&(_, c)| !is_path_char(c)) {
            return Err(SpiffeIdErrorKind::BadPathChar {
                found,
                at: seg_start + at,
            });
        }
        let is_last = segments.peek().is_none();
        match segment {
            "" if is_last => return Err(SpiffeIdErrorKind::TrailingSlash),
            "" => return Err(SpiffeIdErrorKind::EmptySegment),
            "." | ".." => return Err(SpiffeIdErrorKind::DotSegment),
            _ => {}
        }
        seg_start += segment.len() + 1;
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_')
}

impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.full == other.full
    }
}

impl Eq for SpiffeId {}

impl Hash for SpiffeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.full.hash(state);
    }
}

impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.full.cmp(&other.full)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &str) -> SpiffeIdErrorKind {
        SpiffeId::parse(input).unwrap_err().kind().clone()
    }

    #[test]
    fn accepts_and_splits() {
        let id = SpiffeId::parse("spiffe://prod.example.test/ns/payments/sa/api").unwrap();
        assert_eq!(id.trust_domain().as_str(), "prod.example.test");
        assert_eq!(id.path(), "/ns/payments/sa/api");
        assert_eq!(
            id.to_string(),
            "spiffe://prod.example.test/ns/payments/sa/api"
        );
        let td = SpiffeId::parse("spiffe://td").unwrap();
        assert_eq!(td.path(), "");
        assert!(!td.has_path());
        assert_eq!(td, TrustDomain::parse("td").unwrap().id());
    }

    #[test]
    fn rejects_without_repair() {
        assert!(matches!(
            kind("spiffe://td/%61dmin"),
            SpiffeIdErrorKind::BadPathChar { found: '%', .. }
        ));
        assert_eq!(kind("spiffe://td/a/../b"), SpiffeIdErrorKind::DotSegment);
        assert_eq!(kind("spiffe://td/a//b"), SpiffeIdErrorKind::EmptySegment);
        assert_eq!(kind("spiffe://td/a/"), SpiffeIdErrorKind::TrailingSlash);
        assert!(matches!(
            kind("spiffe://TD/a"),
            SpiffeIdErrorKind::BadTrustDomainChar { found: 'T', at: 9 }
        ));
        assert!(matches!(
            kind("spiffe://td:443/a"),
            SpiffeIdErrorKind::BadTrustDomainChar { found: ':', .. }
        ));
        assert!(matches!(
            kind("spiffe://td/a?x=1"),
            SpiffeIdErrorKind::BadPathChar { found: '?', .. }
        ));
        assert_eq!(kind("SPIFFE://td/a"), SpiffeIdErrorKind::BadScheme);
        assert!(matches!(
            kind(&format!("spiffe://td/{}", "a".repeat(2040))),
            SpiffeIdErrorKind::TooLong { .. }
        ));
        assert!(matches!(
            TrustDomain::parse(&"a".repeat(256)).unwrap_err().kind(),
            SpiffeIdErrorKind::TooLong { max: 255, .. }
        ));
    }

    #[test]
    fn trust_domain_forms() {
        assert!(TrustDomain::parse("spiffe://td").is_err());
        assert_eq!(
            TrustDomain::from_name_or_id("spiffe://td/x")
                .unwrap()
                .as_str(),
            "td"
        );
        assert_eq!(TrustDomain::from_name_or_id("td").unwrap().as_str(), "td");
        assert_eq!(
            TrustDomain::from_name_or_id("spiffe://td/")
                .unwrap_err()
                .kind(),
            &SpiffeIdErrorKind::TrailingSlash
        );
    }

    #[test]
    fn serde_is_the_string_and_validates() {
        let id = SpiffeId::parse("spiffe://td/a").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"spiffe://td/a\"");
        assert_eq!(
            serde_json::from_str::<SpiffeId>("\"spiffe://td/a\"").unwrap(),
            id
        );
        assert!(serde_json::from_str::<SpiffeId>("\"spiffe://td/a/\"").is_err());
        assert!(serde_json::from_str::<TrustDomain>("\"Td\"").is_err());
    }

    #[test]
    fn error_message_names_input_and_problem() {
        let e = SpiffeId::parse("spiffe://td/a/./b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid spiffe id \"spiffe://td/a/./b\": path cannot contain dot segments"
        );
    }
}
