//! Why a request was refused before authorisation: one typed reason per ambiguity.

use http::{HeaderName, Method, StatusCode};

use crate::host::CanonicalHost;

/// Longest piece of client input copied into a rejection, in characters.
const MAX_QUOTED_CHARS: usize = 128;

/// A request the PEP refuses to authorise because its meaning is ambiguous or malformed.
///
/// The client is at fault in every case; retrying the same request cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// `%2F` in the path: backends disagree on whether it separates segments.
    #[error("request path contains an encoded slash (%2F)")]
    EncodedSlash,
    /// `%5C` in the path: some backends treat it as a path separator.
    #[error("request path contains an encoded backslash (%5C)")]
    EncodedBackslash,
    /// A raw `\` in the path: some backends treat it as a path separator.
    #[error("request path contains a backslash")]
    Backslash,
    /// A NUL byte, raw or as `%00`, in the path or the query.
    #[error("request target contains a NUL byte (raw or %00)")]
    Nul,
    /// A control character (below 0x20, or 0x7F): raw anywhere, or percent-encoded in the path.
    #[error("request target contains a control character")]
    ControlCharacter,
    /// A `%` not followed by two hex digits, in the path or the query.
    #[error(
        "request target contains invalid percent-encoding (a % not followed by two hex digits)"
    )]
    InvalidPercentEncoding,
    /// The percent-decoded path is not UTF-8 (this includes overlong forms such as `%C0%AE`).
    #[error("request path does not percent-decode to valid UTF-8")]
    InvalidUtf8,
    /// `%25` in the path: a backend that decodes twice would see a different path.
    #[error("request path contains an encoded percent sign (%25)")]
    EncodedPercent,
    /// `;` or `%3B` in the path while path parameters are not accepted.
    #[error("request path contains a semicolon (path parameters are not accepted)")]
    Semicolon,
    /// A segment such as `..;x` or `;x` that is a dot segment or empty once its parameters
    /// are removed, as Tomcat-style backends do.
    #[error("request path has a segment that is a dot segment or empty without its parameters")]
    AmbiguousPathParameter,
    /// `..` segments would climb above `/`.
    #[error("request path climbs above the root with dot segments")]
    DotSegmentsClimbAboveRoot,
    /// The request target is neither origin-form (`/path`) nor absolute-form
    /// (`http://host/path`); authority-form is only meaningful for CONNECT.
    #[error("request target is not in origin form or absolute form")]
    NotOriginForm,
    /// `*` as request target with a method other than OPTIONS.
    #[error("request target \"*\" is only allowed with OPTIONS, not {method}")]
    AsteriskForm {
        /// The method the request used.
        method: Method,
    },
    /// CONNECT (tunnelling) is not supported by the PEP.
    #[error("CONNECT requests are not supported")]
    ConnectNotSupported,
    /// An absolute-form target whose scheme is not `http` or `https`.
    #[error("request target has unsupported scheme {0:?}")]
    UnsupportedScheme(String),
    /// A Host header, `:authority` or absolute-form authority that is not a canonical host.
    #[error("invalid host {host:?}: {problem}")]
    InvalidHost {
        /// The host as received (shortened to 128 characters).
        host: String,
        /// What is wrong with it.
        problem: HostProblem,
    },
    /// The Host header and the request target's authority name different hosts.
    #[error("host header {host} does not match the request target authority {authority}")]
    HostMismatch {
        /// The canonical Host header.
        host: CanonicalHost,
        /// The canonical `:authority` or absolute-form authority.
        authority: CanonicalHost,
    },
    /// No Host header (HTTP/1.1) and no authority in the request target.
    #[error("request has no host (no Host header and no authority)")]
    MissingHost,
    /// A header that must appear at most once appears more than once.
    #[error("header {0} appears more than once")]
    DuplicateHeader(HeaderName),
    /// Both Content-Length and Transfer-Encoding: the framing is ambiguous.
    #[error("request has both content-length and transfer-encoding")]
    ContentLengthWithTransferEncoding,
    /// A Transfer-Encoding other than exactly `chunked`.
    #[error("transfer-encoding {0:?} is not supported (only \"chunked\" is)")]
    UnsupportedTransferEncoding(String),
    /// A Content-Length that is not a single decimal number.
    #[error("content-length {0:?} is not a decimal number")]
    InvalidContentLength(String),
    /// The request head is larger than the gateway accepts, in bytes or in header fields.
    #[error("request head is too large (too many bytes or header fields)")]
    RequestHeadTooLarge,
    /// The trailer section of a chunked body is larger than the gateway accepts.
    #[error("chunked body trailer section is too large (too many bytes or fields)")]
    TrailersTooLarge,
    /// The request head or a trailer section is not HTTP/1.x syntax.
    #[error("request head or trailer section is malformed: {0}")]
    MalformedHead(&'static str),
    /// A request target that is no URI: a character that must be percent-encoded (such as
    /// `<`, `>`, `"` in the query, `` ` ``), or an authority that is not one.
    #[error(
        "request target {0:?} is not a valid uri (characters such as <, > and \" must be percent-encoded)"
    )]
    InvalidTarget(String),
    /// A CR or LF that is not part of a CRLF line ending: bare LF line endings are not
    /// accepted, because parsers disagree on them.
    #[error("request has a line ending other than crlf (a bare lf or cr)")]
    InvalidLineEnding,
    /// A field line that starts with whitespace: obsolete line folding (obs-fold).
    #[error("request has a header line folded onto several lines (obs-fold)")]
    ObsoleteLineFolding,
    /// Whitespace between a field name and its colon, which some parsers strip.
    #[error("header field name {0:?} is followed by whitespace before the colon")]
    WhitespaceBeforeColon(String),
    /// A NUL or another control character (other than tab) in a field value.
    #[error("header {0:?} has a nul or other control character in its value")]
    HeaderControlCharacter(String),
    /// Transfer-Encoding in an HTTP/1.0 request, which has no chunked framing.
    #[error("transfer-encoding is not allowed in an http/1.0 request")]
    TransferEncodingInHttp10,
    /// A chunk-size line that is not hexadecimal digits fitting in 64 bits, followed by
    /// optional chunk extensions.
    #[error("chunk size line {0:?} is not a hexadecimal size with optional extensions")]
    InvalidChunkSize(String),
    /// Chunk data that is not followed by CRLF.
    #[error("chunk data is not followed by crlf")]
    ChunkDataNotTerminated,
    /// The TLS SNI and the request's host differ.
    #[error("tls server name {sni} does not match the request host {host}")]
    SniMismatch {
        /// The canonical SNI of the connection.
        sni: CanonicalHost,
        /// The canonical host of the request.
        host: CanonicalHost,
    },
    /// The TLS connection carried no SNI but the request names a DNS host.
    #[error("tls connection has no server name but the request host is {host}")]
    MissingSni {
        /// The canonical host of the request.
        host: CanonicalHost,
    },
}

/// What is wrong with a host name, port or server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostProblem {
    /// Nothing left once an optional trailing dot is removed.
    #[error("empty host")]
    Empty,
    /// `user@host`: credentials in the authority.
    #[error("userinfo is not allowed")]
    UserInfo,
    /// Characters outside visible ASCII.
    #[error("not visible ASCII")]
    NotAscii,
    /// A character outside `[a-z0-9._-]` (after lowercasing).
    #[error("character {0:?} is not allowed")]
    InvalidCharacter(char),
    /// More than one trailing dot, e.g. `example.test..`.
    #[error("more than one trailing dot")]
    MultipleTrailingDots,
    /// An empty label, e.g. `a..example.test`.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("label longer than 63 characters")]
    LabelTooLong,
    /// A name longer than 253 characters.
    #[error("name longer than 253 characters")]
    NameTooLong,
    /// A port that is not 1 to 5 digits with a value in 1..=65535.
    #[error("port is not a number in 1..=65535")]
    InvalidPort,
    /// A name ending in a numeric label that is not a dotted-quad IPv4 address (`127.1`,
    /// `0x7f.0.0.1`, `010.0.0.1`), which resolvers read in different ways.
    #[error("numeric name is not a dotted-quad IPv4 address")]
    InvalidIpv4,
    /// A bracketed literal that is not an IPv6 address (zone ids are not accepted).
    #[error("bracketed literal is not an IPv6 address")]
    InvalidIpv6,
    /// An IP literal where a TLS server name is expected (RFC 6066 forbids it).
    #[error("ip literal is not a tls server name")]
    IpLiteralInSni,
}

impl Rejection {
    /// The HTTP status to answer with: 421 when the request reached the wrong TLS
    /// connection, 431 when its head or trailers are too large, 400 otherwise.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SniMismatch { .. } | Self::MissingSni { .. } => StatusCode::MISDIRECTED_REQUEST,
            Self::RequestHeadTooLarge | Self::TrailersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable snake_case label for metrics and logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EncodedSlash => "encoded_slash",
            Self::EncodedBackslash => "encoded_backslash",
            Self::Backslash => "backslash",
            Self::Nul => "nul",
            Self::ControlCharacter => "control_character",
            Self::InvalidPercentEncoding => "invalid_percent_encoding",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::EncodedPercent => "encoded_percent",
            Self::Semicolon => "semicolon",
            Self::AmbiguousPathParameter => "ambiguous_path_parameter",
            Self::DotSegmentsClimbAboveRoot => "dot_segments_climb_above_root",
            Self::NotOriginForm => "not_origin_form",
            Self::AsteriskForm { .. } => "asterisk_form",
            Self::ConnectNotSupported => "connect_not_supported",
            Self::UnsupportedScheme(_) => "unsupported_scheme",
            Self::InvalidHost { .. } => "invalid_host",
            Self::HostMismatch { .. } => "host_mismatch",
            Self::MissingHost => "missing_host",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Self::UnsupportedTransferEncoding(_) => "unsupported_transfer_encoding",
            Self::InvalidContentLength(_) => "invalid_content_length",
            Self::RequestHeadTooLarge => "request_head_too_large",
            Self::TrailersTooLarge => "trailers_too_large",
            Self::MalformedHead(_) => "malformed_head",
            Self::InvalidTarget(_) => "invalid_target",
            Self::InvalidLineEnding => "invalid_line_ending",
            Self::ObsoleteLineFolding => "obsolete_line_folding",
            Self::WhitespaceBeforeColon(_) => "whitespace_before_colon",
            Self::HeaderControlCharacter(_) => "header_control_character",
            Self::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Self::InvalidChunkSize(_) => "invalid_chunk_size",
            Self::ChunkDataNotTerminated => "chunk_data_not_terminated",
            Self::SniMismatch { .. } => "sni_mismatch",
            Self::MissingSni { .. } => "missing_sni",
        }
    }
}

/// Client input shortened for quoting in a rejection, so a huge header cannot bloat logs.
pub(crate) fn quote_input(input: &[u8]) -> String {
    String::from_utf8_lossy(input)
        .chars()
        .take(MAX_QUOTED_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_rejections_are_misdirected_and_the_rest_bad_request() {
        let host = crate::canonical_host("a.example.test", 443).unwrap();
        let sni = crate::canonical_sni("b.example.test").unwrap();
        let misdirected = Rejection::SniMismatch {
            sni,
            host: host.clone(),
        };
        assert_eq!(misdirected.status(), StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(
            Rejection::MissingSni { host }.status(),
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(Rejection::EncodedSlash.status(), StatusCode::BAD_REQUEST);
        assert_eq!(Rejection::MissingHost.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn kinds_are_snake_case_labels() {
        let samples = [
            Rejection::EncodedSlash,
            Rejection::DotSegmentsClimbAboveRoot,
            Rejection::DuplicateHeader(http::header::HOST),
            Rejection::InvalidHost {
                host: "x".into(),
                problem: HostProblem::Empty,
            },
            Rejection::ContentLengthWithTransferEncoding,
        ];
        for rejection in samples {
            let kind = rejection.kind();
            assert!(
                kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind}"
            );
        }
        assert_eq!(Rejection::EncodedSlash.kind(), "encoded_slash");
    }

    #[test]
    fn framing_rejections_have_distinct_kinds_and_statuses() {
        let samples = [
            Rejection::RequestHeadTooLarge,
            Rejection::TrailersTooLarge,
            Rejection::MalformedHead("invalid token"),
            Rejection::InvalidTarget("/<x>".into()),
            Rejection::InvalidLineEnding,
            Rejection::ObsoleteLineFolding,
            Rejection::WhitespaceBeforeColon("transfer-encoding".into()),
            Rejection::HeaderControlCharacter("x-a".into()),
            Rejection::TransferEncodingInHttp10,
            Rejection::InvalidChunkSize("0x5".into()),
            Rejection::ChunkDataNotTerminated,
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for rejection in &samples {
            let kind = rejection.kind();
            assert!(
                kind.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{kind}"
            );
            assert!(kinds.insert(kind), "duplicate kind {kind}");
            let message = rejection.to_string();
            assert_eq!(message, message.to_lowercase(), "{message}");
        }
        assert_eq!(
            Rejection::RequestHeadTooLarge.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            Rejection::TrailersTooLarge.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            Rejection::InvalidLineEnding.status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn messages_are_lowercase_and_quote_the_input() {
        let rejection = Rejection::InvalidHost {
            host: quote_input(b"admin.example.test.."),
            problem: HostProblem::MultipleTrailingDots,
        };
        assert_eq!(
            rejection.to_string(),
            "invalid host \"admin.example.test..\": more than one trailing dot"
        );
        assert_eq!(
            Rejection::DuplicateHeader(http::header::HOST).to_string(),
            "header host appears more than once"
        );
    }

    #[test]
    fn quoted_input_is_shortened() {
        let long = vec![b'a'; 10_000];
        assert_eq!(quote_input(&long).len(), MAX_QUOTED_CHARS);
        assert_eq!(quote_input(b"\xffab"), "\u{fffd}ab");
    }
}
