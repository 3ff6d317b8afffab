//! Responses the sign-in endpoints build.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// A response under construction.
pub(super) type Answer = Response<Bytes>;

/// `/.tenet/auth/<endpoint>?rd=<path>`.
pub(super) fn tenet_gateway_auth_path(endpoint: &str, rd: &str) -> String {
    let rd: String =
        percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("{}{endpoint}?rd={rd}", tenet_gateway::AUTH_PREFIX)
}

pub(super) fn see_other(location: &str) -> Answer {
    let mut answer = Response::new(Bytes::new());
    *answer.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(header::LOCATION, v);
    }
    answer
}

pub(super) fn add_cookie(answer: &mut Answer, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(super) fn json(status: StatusCode, body: Vec<u8>) -> Answer {
    let mut answer = Response::new(Bytes::from(body));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

pub(super) fn error(status: StatusCode, code: &str, detail: &str) -> Answer {
    let body = serde_json::json!({ "error": code, "detail": detail }).to_string();
    json(status, body.into_bytes())
}
