//! The request target in its one canonical form: the path the PEP authorises and forwards.
//!
//! # Rules
//!
//! **Form.** Origin-form (`/path?query`) and absolute-form (`http[s]://host/path?query`, whose
//! path is used; HTTP/2 requests arrive in this form) are accepted. `*` is accepted for
//! OPTIONS only and yields the path `*`. Authority-form and every CONNECT request are
//! rejected ([`Rejection::NotOriginForm`], [`Rejection::ConnectNotSupported`]).
//!
//! **Rejected in the path**, raw or percent-encoded: NUL and control characters (below 0x20,
//! 0x7F); a raw `\`, `%5C` and `%2F`; a `%` not followed by two hex digits; bytes that do not
//! percent-decode to UTF-8 (so overlong forms like `%C0%AE` are refused). By default
//! ([`TargetRules::STRICT`]) also `;`/`%3B` (path parameters, which Tomcat-style backends
//! strip before routing, so `/public/..;/admin` reaches `/admin`) and `%25` (a backend that
//! decodes twice would see a second layer). With path parameters allowed, a segment that is
//! empty, `.` or `..` once its parameters are removed is still rejected.
//!
//! **Canonicalised in the path:**
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, so `%2E%2E`
//!   becomes `..` and is resolved like `..`;
//! - every other percent-encoding is kept, with uppercase hex (`%3a` becomes `%3A`); encoded
//!   sub-delimiters stay encoded because backends may treat the raw form as a delimiter;
//! - characters that have no delimiter meaning but are not allowed raw in a URI path
//!   (non-ASCII, `"`, `{`, `}`, `[`, `]`, `^`, `|`) are percent-encoded, so `/café` and
//!   `/caf%C3%A9` are the same path;
//! - repeated slashes are merged; `.` and `..` segments are resolved as in RFC 3986 §5.2.4,
//!   except that `..` which would climb above `/` is rejected
//!   ([`Rejection::DotSegmentsClimbAboveRoot`]), not clamped;
//! - a trailing slash is kept, and a path ending in `.` or `..` ends with `/`;
//! - case is preserved: paths are case-sensitive, and routing must use the same rule.
//!
//! The result always starts with `/` (except `*`), is ASCII, and never contains `//`, `/./`
//! or `/../` or ends in `/.` or `/..`. Normalising it again gives the same result.
//!
//! **Query.** Passed through verbatim, but a raw NUL or control character, `%00` or a `%`
//! not followed by two hex digits is rejected.

use std::fmt;

use http::uri::Scheme;
use http::{Method, Uri};

use crate::Rejection;

/// Which ambiguity-prone path features [`normalize_target_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetRules {
    allow_path_parameters: bool,
    allow_encoded_percent: bool,
}

impl TargetRules {
    /// Reject `;`, `%3B` and `%25` in paths (the default, used by [`normalize_target`]).
    pub const STRICT: Self = Self {
        allow_path_parameters: false,
        allow_encoded_percent: false,
    };

    /// Accept `;` and `%3B` in paths, for upstreams that use path (matrix) parameters.
    ///
    /// Segments like `..;x` or `;x` stay rejected. A rule that denies `/admin` does not
    /// match `/admin;x/users`, which Tomcat-style backends serve as `/admin/users`: only
    /// enable this for upstreams that do not strip path parameters before routing.
    #[must_use]
    pub const fn with_path_parameters(mut self) -> Self {
        self.allow_path_parameters = true;
        self
    }

    /// Accept `%25` in paths, for upstreams that are known to decode exactly once.
    #[must_use]
    pub const fn with_encoded_percent(mut self) -> Self {
        self.allow_encoded_percent = true;
        self
    }
}

/// A request target after normalisation: the exact path and query to authorise and forward.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPath {
    path: String,
    query: Option<String>,
}

impl NormalizedPath {
    /// The canonical path: starts with `/`, or is `*` for `OPTIONS *`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The query without its `?`, verbatim; `Some("")` for a bare `?`.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The asterisk-form target of `OPTIONS *`.
    #[must_use]
    pub fn is_asterisk(&self) -> bool {
        self.path == "*"
    }

    /// The path and query to forward upstream.
    #[must_use]
    pub fn path_and_query(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        match &self.query {
            Some(query) => write!(f, "?{query}"),
            None => Ok(()),
        }
    }
}

/// Normalise a request target under [`TargetRules::STRICT`]; see the module documentation.
///
/// # Errors
/// A [`Rejection`] naming the first ambiguity found.
pub fn normalize_target(method: &Method, uri: &Uri) -> Result<NormalizedPath, Rejection> {
    normalize_target_with(method, uri, TargetRules::STRICT)
}

/// Normalise a request target under the given rules; see the module documentation.
///
/// # Errors
/// A [`Rejection`] naming the first ambiguity found.
pub fn normalize_target_with(
    method: &Method,
    uri: &Uri,
    rules: TargetRules,
) -> Result<NormalizedPath, Rejection> {
    if method == Method::CONNECT {
        return Err(Rejection::ConnectNotSupported);
    }
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), _) if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS => {
            return Err(Rejection::UnsupportedScheme(crate::rejection::quote_input(
                scheme.as_str().as_bytes(),
            )));
        }
        (None, Some(_)) => return Err(Rejection::NotOriginForm),
        _ => {}
    }

    let query = uri.query().map(check_query).transpose()?;
    if uri.path() == "*" {
        if method != Method::OPTIONS {
            return Err(Rejection::AsteriskForm {
                method: method.clone(),
            });
        }
        return Ok(NormalizedPath {
            path: "*".to_owned(),
            query,
        });
    }
    let path = normalize_path(uri.path(), rules)?;
    Ok(NormalizedPath { path, query })
}

/// Canonicalise and resolve an absolute path (one that starts with `/`).
fn normalize_path(raw: &str, rules: TargetRules) -> Result<String, Rejection> {
    let body = raw.strip_prefix('/').ok_or(Rejection::NotOriginForm)?;
    // Splitting on raw '/' is sound: %2F is rejected and decoding never yields '/'.
    let mut resolved = ResolvedSegments::default();
    let mut decoded = Vec::with_capacity(raw.len());
    for segment in body.split('/') {
        decoded.push(b'/');
        let canonical = canonical_segment(segment, rules, &mut decoded)?;
        resolved.push(canonical, rules)?;
    }

    std::str::from_utf8(&decoded).map_err(|_| Rejection::InvalidUtf8)?;
    Ok(resolved.into_path())
}

/// The segment stack of RFC 3986 §5.2.4, refusing to climb above the root.
#[derive(Default)]
struct ResolvedSegments {
    stack: Vec<String>,
    ends_in_directory: bool,
}

impl ResolvedSegments {
    fn push(&mut self, segment: String, rules: TargetRules) -> Result<(), Rejection> {
        match segment.as_str() {
            "" | "." => self.ends_in_directory = true,
            ".." => {
                self.stack
                    .pop()
                    .ok_or(Rejection::DotSegmentsClimbAboveRoot)?;
                self.ends_in_directory = true;
            }
            _ => {
                if rules.allow_path_parameters && parameters_hide_a_dot_segment(&segment) {
                    return Err(Rejection::AmbiguousPathParameter);
                }
                self.stack.push(segment);
                self.ends_in_directory = false;
            }
        }
        Ok(())
    }

    fn into_path(self) -> String {
        let mut path = String::from("/");
        path.push_str(&self.stack.join("/"));
        if self.ends_in_directory && !self.stack.is_empty() {
            path.push('/');
        }
        path
    }
}

/// Whether a canonical segment is empty, `.` or `..` once its `;` parameters are removed.
fn parameters_hide_a_dot_segment(segment: &str) -> bool {
    let name_end = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min();
    let name = name_end.and_then(|end| segment.get(..end));
    matches!(name, Some("" | "." | ".."))
}

/// Canonicalise one segment, appending its fully decoded bytes to `decoded`.
fn canonical_segment(
    raw: &str,
    rules: TargetRules,
    decoded: &mut Vec<u8>,
) -> Result<String, Rejection> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let value = percent_decoded(bytes.get(i + 1..i + 3))?;
            check_encoded_path_byte(value, rules)?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                push_percent_encoded(&mut out, value);
            }
            decoded.push(value);
            i += 3;
        } else {
            check_raw_path_byte(byte, rules)?;
            if is_unreserved(byte) || is_raw_path_delimiter(byte) {
                out.push(char::from(byte));
            } else {
                push_percent_encoded(&mut out, byte);
            }
            decoded.push(byte);
            i += 1;
        }
    }
    Ok(out)
}

fn check_raw_path_byte(byte: u8, rules: TargetRules) -> Result<(), Rejection> {
    match byte {
        0 => Err(Rejection::Nul),
        0x01..=0x1F | 0x7F => Err(Rejection::ControlCharacter),
        b'\\' => Err(Rejection::Backslash),
        b';' if !rules.allow_path_parameters => Err(Rejection::Semicolon),
        _ => Ok(()),
    }
}

fn check_encoded_path_byte(value: u8, rules: TargetRules) -> Result<(), Rejection> {
    match value {
        0 => Err(Rejection::Nul),
        0x01..=0x1F | 0x7F => Err(Rejection::ControlCharacter),
        b'/' => Err(Rejection::EncodedSlash),
        b'\\' => Err(Rejection::EncodedBackslash),
        b'%' if !rules.allow_encoded_percent => Err(Rejection::EncodedPercent),
        b';' if !rules.allow_path_parameters => Err(Rejection::Semicolon),
        _ => Ok(()),
    }
}

/// Check a query; it is returned verbatim.
fn check_query(query: &str) -> Result<String, Rejection> {
    let bytes = query.as_bytes();
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                if percent_decoded(bytes.get(i + 1..i + 3))? == 0 {
                    return Err(Rejection::Nul);
                }
                i += 3;
            }
            0 => return Err(Rejection::Nul),
            0x01..=0x1F | 0x7F => return Err(Rejection::ControlCharacter),
            _ => i += 1,
        }
    }
    Ok(query.to_owned())
}

/// The byte a `%XX` stands for, given the two bytes after the `%` (None when truncated).
fn percent_decoded(hex: Option<&[u8]>) -> Result<u8, Rejection> {
    match hex {
        Some(&[high, low]) => Ok(hex_value(high)? << 4 | hex_value(low)?),
        _ => Err(Rejection::InvalidPercentEncoding),
    }
}

fn hex_value(digit: u8) -> Result<u8, Rejection> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
        .ok_or(Rejection::InvalidPercentEncoding)
}

fn push_percent_encoded(out: &mut String, byte: u8) {
    out.push('%');
    out.push(hex_digit_upper(byte >> 4));
    out.push(hex_digit_upper(byte & 0x0F));
}

fn hex_digit_upper(nibble: u8) -> char {
    let nibble = nibble & 0x0F;
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

/// RFC 3986 unreserved: the characters whose encoded and raw forms are equivalent.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 sub-delims, `:` and `@`: allowed raw in a path segment, and possibly meaningful
/// to a backend, so their raw and encoded forms are kept apart.
fn is_raw_path_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@'
    )
}

#[cfg(test)]
mod tests;
