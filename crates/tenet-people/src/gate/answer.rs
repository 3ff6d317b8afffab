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

/// How long a person is told to wait before trying a provider that is not reachable yet.
const RETRY_AFTER_SECS: &str = "10";

/// 503 for a sign-in through a provider that has not answered discovery yet: a page for a
/// browser (`Accept: text/html`), JSON otherwise, both naming the provider.
pub(super) fn provider_unreachable(headers: &http::HeaderMap, provider: &str) -> Answer {
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    let mut answer = if wants_html {
        crate::pages::provider_unreachable(provider)
    } else {
        let body = serde_json::json!({
            "error": "provider_unreachable",
            "provider": provider,
            "detail": format!("identity provider {provider} is not reachable yet; try again in a moment"),
        });
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            body.to_string().into_bytes(),
        )
    };
    *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    answer.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    answer
}
