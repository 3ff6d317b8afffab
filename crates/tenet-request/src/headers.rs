//! Header rules: fields that must not repeat, and the headers the upstream must never see
//! from the client (hop-by-hop, forged identity and forwarding, request overrides).

use http::HeaderMap;
use http::header::{self, HeaderName};

use crate::Rejection;

/// Fields that must appear at most once: the PEP and the upstream could read a repeated
/// one differently (first value, last value, or all of them).
pub static SINGLE_VALUED_HEADERS: [HeaderName; 10] = [
    header::HOST,
    header::AUTHORIZATION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONTENT_TYPE,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-for"),
];

/// Hop-by-hop fields (RFC 9110 §7.6.1 and common non-standard ones), never forwarded.
/// `te: trailers` is the one exception, kept for gRPC.
pub static HOP_BY_HOP_HEADERS: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Client-supplied fields that claim a client address, or rewrite the URL or the method
/// behind the PEP's back; the gateway writes its own forwarding fields.
pub static CLIENT_CLAIM_HEADERS: [HeaderName; 13] = [
    header::FORWARDED,
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Name prefixes of fields only the gateway may write: its own identity assertions,
/// `x-forwarded-*`, and Envoy's internal fields.
pub const GATEWAY_ONLY_PREFIXES: [&str; 3] = ["x-tenet-", "x-forwarded-", "x-envoy-"];

/// Fields a client cannot remove by naming them in Connection: the PEP decided on them.
static NOT_REMOVABLE_BY_CONNECTION: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Reject a request that repeats a field in [`SINGLE_VALUED_HEADERS`] or in `extra`.
///
/// # Errors
/// [`Rejection::DuplicateHeader`] naming the first repeated field.
pub fn check_single_valued(headers: &HeaderMap, extra: &[HeaderName]) -> Result<(), Rejection> {
    // Each name holds one value: nothing can repeat (the common case, without a lookup).
    if headers.len() == headers.keys_len() {
        return Ok(());
    }
    let repeated = SINGLE_VALUED_HEADERS
        .iter()
        .chain(extra)
        .find(|name| headers.get_all(*name).iter().nth(1).is_some());
    match repeated {
        Some(name) => Err(Rejection::DuplicateHeader(name.clone())),
        None => Ok(()),
    }
}

/// Remove what the upstream must not receive from the client, before the gateway adds its
/// own forwarding and identity fields.
///
/// Removed: [`HOP_BY_HOP_HEADERS`] (but `te` whose only value is `trailers` is kept, as
/// gRPC needs it), every field named in Connection (except Host and Content-Length),
/// [`CLIENT_CLAIM_HEADERS`], and every field starting with one of
/// [`GATEWAY_ONLY_PREFIXES`]. Connection itself is removed, so nothing the gateway adds
/// afterwards can be nominated for removal.
pub fn prepare_upstream_headers(headers: &mut HeaderMap) {
    let keep_te = is_te_trailers(headers);
    // Only names the request holds are looked for (a request has a few fields; the lists
    // name 22).
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            HOP_BY_HOP_HEADERS.contains(name)
                || CLIENT_CLAIM_HEADERS.contains(name)
                || is_gateway_only(name)
        })
        .cloned()
        .collect();
    let mut nominated = connection_nominated(headers);
    nominated.retain(|name| !NOT_REMOVABLE_BY_CONNECTION.contains(name));
    doomed.extend(nominated);

    for name in doomed {
        if !(keep_te && name == header::TE) {
            headers.remove(&name);
        }
    }
    join_cookie_fields(headers);
}

/// Several `Cookie` fields (HTTP/2 clients split the header into one field per cookie) as
/// the one field an HTTP/1.1 server expects, joined with `"; "` (RFC 9113 §8.2.3, RFC 6265
/// §5.4). A single field is left as it is.
fn join_cookie_fields(headers: &mut HeaderMap) {
    let mut fields = headers.get_all(header::COOKIE).iter();
    if fields.next().is_none() || fields.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for field in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(field.as_bytes());
    }
    // Made of valid field values and "; ", so itself a valid one.
    if let Ok(value) = http::HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

fn is_gateway_only(name: &HeaderName) -> bool {
    GATEWAY_ONLY_PREFIXES
        .iter()
        .any(|prefix| name.as_str().starts_with(prefix))
}

/// Exactly one `te` field whose value is `trailers`.
fn is_te_trailers(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::TE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.as_bytes().eq_ignore_ascii_case(b"trailers"),
        _ => false,
    }
}

/// The field names listed in every Connection field; tokens that are no field name are
/// skipped, since no field could carry them.
fn connection_nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect()
}

#[cfg(test)]
mod tests;
