//! Responses the gateway writes itself: denials and refusals as small JSON bodies that carry
//! the request id and never policy internals.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

/// The error a response body may end with: hyper's (an upstream's answer broke off) or the
/// gateway's own (an upstream stopped sending one).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway sends.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// The header carrying the request id on every response.
pub(crate) static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-tenet-request-id");

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON error response: `{"error": ..., "request_id": ..., "reason": ...}`.
pub(crate) fn refuse(
    status: StatusCode,
    error: &str,
    reason: Option<&str>,
    request_id: &str,
    close: bool,
) -> Response<Body> {
    let mut body = serde_json::json!({ "error": error, "request_id": request_id });
    if let (Some(reason), serde_json::Value::Object(map)) = (reason, &mut body) {
        map.insert("reason".into(), reason.into());
    }
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(&REQUEST_ID_HEADER, v);
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
