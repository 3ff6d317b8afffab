//! The sign-in pages the gateway serves itself: the second-factor page and its script.
//! Strict headers: no inline script, no framing, no caching.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

const SCRIPT: &str = include_str!("../assets/webauthn.js");

/// The second-factor page for `who`; `mode` is `register` or `authenticate`; the person
/// returns to `rd` (a path already checked) afterwards.
pub(crate) fn mfa(who: &str, rd: &str, mode: &str) -> Response<Bytes> {
    let (title, button) = if mode == "register" {
        ("Register a passkey", "Create passkey")
    } else {
        ("Confirm it is you", "Use passkey")
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title} - Tenet</title></head>\n\
         <body data-mode=\"{mode}\" data-rd=\"{rd}\">\n<h1>{title}</h1>\n\
         <p>Signed in as <strong>{who}</strong>. A passkey or security key is required.</p>\n\
         <button id=\"go\" type=\"button\">{button}</button>\n<p id=\"status\" role=\"status\"></p>\n\
         <script src=\"/.tenet/auth/webauthn.js\"></script>\n</body></html>\n",
        mode = escape(mode),
        rd = escape(rd),
        who = escape(who),
    );
    let mut response = Response::new(Bytes::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers);
    response
}

/// The page for a sign-in through `provider` while it is not reachable yet (its status is the
/// caller's to set).
pub(crate) fn provider_unreachable(provider: &str) -> Response<Bytes> {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Sign-in unavailable - Tenet</title></head>\n<body>\n\
         <h1>Sign-in is not available yet</h1>\n\
         <p>The identity provider <strong>{provider}</strong> is not reachable yet. Tenet keeps \
         trying; try again in a moment.</p>\n<p><a href=\"\">Try again</a></p>\n</body></html>\n",
        provider = escape(provider),
    );
    let mut response = Response::new(Bytes::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers);
    response
}

/// The page's script.
pub(crate) fn script() -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(SCRIPT.as_bytes()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    secure(headers);
    response
}

fn secure(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// HTML text escaping for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_what_it_shows() {
        let page = mfa("<b>\"x\"</b>", "/a?b=1&c=\"", "register");
        let text = std::str::from_utf8(page.body()).unwrap();
        assert!(text.contains("&lt;b&gt;&quot;x&quot;&lt;/b&gt;"));
        assert!(text.contains("data-rd=\"/a?b=1&amp;c=&quot;\""));
        assert!(!text.contains("<b>"));
    }
}
