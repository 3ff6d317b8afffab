//! People on the gateway: the interface between the PEP and the sign-in service.
//!
//! Routes marked for people identify the caller by a server-side session instead of (or
//! besides) a client certificate. The gateway stays ignorant of OpenID Connect, WebAuthn and
//! device posture: it asks a [`PeopleGate`] two things.
//!
//! - [`PeopleGate::identify`] on every request of a people route: who is this person, is the
//!   session still good after re-evaluating it (network, device posture, risk), and what do
//!   policies need to know about the session and the device. When it refuses for a reason
//!   that may pass within moments, [`PeopleGate::wait_to_identify_again`] gives the gateway a
//!   bounded wait after which it identifies the request once more.
//! - [`PeopleGate::serve`] for requests under [`AUTH_PREFIX`] on a people route: sign-in, the
//!   provider's callback, WebAuthn ceremonies, step-up and sign-out. Those answers are the
//!   gateway's own and never reach an upstream.
//!
//! INVARIANT: Tenet's own cookies (named with [`COOKIE_PREFIX`]) are removed from every request
//! before it is forwarded, so an upstream never sees a session id.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use tenet_event::AuthenticationEvent;
use tenet_identity::SpiffeId;
use tenet_policy::{DeviceFacts, Principal, SessionFacts};
use time::OffsetDateTime;

/// Paths under this prefix on a people route are served by the [`PeopleGate`].
pub const AUTH_PREFIX: &str = "/.tenet/auth/";

/// The prefix of every cookie Tenet sets; such cookies are never forwarded upstream.
pub const COOKIE_PREFIX: &str = "__Host-tenet_";

/// Largest request body the sign-in endpoints accept (WebAuthn responses are a few KB).
pub const MAX_AUTH_BODY: usize = 64 * 1024;

/// A request on a people route, as the gateway normalised it.
#[derive(Debug)]
pub struct PersonRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The canonical host (what the browser's origin names).
    pub host: &'a str,
    /// The listener's port (part of the origin).
    pub port: u16,
    /// The normalised path and query.
    pub path_and_query: &'a str,
    /// The request headers (cookies, `Accept`, `User-Agent`, ...).
    pub headers: &'a HeaderMap,
    /// The peer address.
    pub source_ip: IpAddr,
    /// The verified client certificate's SPIFFE ID, when the browser presented one (a
    /// device certificate).
    pub client_id: Option<&'a SpiffeId>,
    /// Now, from the gateway's clock.
    pub now: OffsetDateTime,
}

/// A sign-in endpoint request: the normalised request with its body.
#[derive(Debug)]
pub struct AuthRequest {
    /// The method.
    pub method: Method,
    /// The canonical host.
    pub host: String,
    /// The listener's port.
    pub port: u16,
    /// The normalised path and query (starts with [`AUTH_PREFIX`]).
    pub path_and_query: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body (at most [`MAX_AUTH_BODY`] bytes).
    pub body: Bytes,
    /// The peer address.
    pub source_ip: IpAddr,
    /// The verified client certificate's SPIFFE ID, if any.
    pub client_id: Option<SpiffeId>,
    /// The request id the gateway gave the request.
    pub request_id: String,
    /// Now, from the gateway's clock.
    pub now: OffsetDateTime,
}

/// A person the session identified, with what policies see of the session and device.
#[derive(Debug, Clone)]
pub struct Person {
    /// The Cedar principal (a [`Principal::User`]).
    pub principal: Principal,
    /// The principal's name in events, risk and containment (e.g. `user:corp:248289761001`).
    pub name: String,
    /// What the upstream is told in `x-tenet-user` (the email, or the name when none).
    pub display: String,
    /// The session record of the context.
    pub session: SessionFacts,
    /// The device record of the context.
    pub device: DeviceFacts,
}

/// The outcome of identifying a person.
#[derive(Debug, Clone)]
pub enum PersonVerdict {
    /// A valid session that passed re-evaluation.
    Person(Box<Person>),
    /// No valid session: sign in first. The reason is a stable machine string.
    SignInRequired {
        /// Why (e.g. `no_session`, `idle_timeout`, `revoked`).
        reason: String,
    },
    /// The session is good but must be re-confirmed with a fresh phishing-resistant factor.
    StepUpRequired {
        /// Who (the principal name), for the event.
        name: String,
        /// Why (e.g. `network_change`, `posture_changed`, `risk`).
        reason: String,
    },
    /// The session was ended, by this request's re-evaluation or before it (its device was
    /// revoked), and is revoked.
    Ended {
        /// Who (the principal name), for the event.
        name: String,
        /// Why (e.g. `impossible_travel`, `risk`, `device_revoked`).
        reason: String,
        /// The session's end for the ledger (an Authentication `session_end` event), given
        /// only to the request whose re-evaluation ended the session, so that each end is
        /// recorded once; the gateway records it with the request id, off the allow path.
        end: Option<Box<AuthenticationEvent>>,
    },
}

/// A boxed future, for the object-safe [`PeopleGate::serve`].
pub type ServeFuture<'a> = Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send + 'a>>;

/// A bounded wait the gateway awaits before identifying a request again (see
/// [`PeopleGate::wait_to_identify_again`]).
pub type IdentifyWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The sign-in service behind people routes.
pub trait PeopleGate: Send + Sync {
    /// Identifies the person behind a request on a people route and re-evaluates the
    /// session. Called on every such request; must not block.
    fn identify(&self, request: &PersonRequest<'_>) -> PersonVerdict;

    /// Called only after [`PeopleGate::identify`] refused `request` with `refusal`: when the
    /// refusal may pass within moments by itself (a bearer token signed with a key the
    /// provider has just rotated in, while the provider's keys are being fetched again), a
    /// wait that ends once identifying the request again may give another answer, and
    /// within a bound the gate documents in any case. The gateway awaits it and identifies
    /// the request once more; that answer is final. `None` (the default): the refusal stands.
    fn wait_to_identify_again(
        &self,
        request: &PersonRequest<'_>,
        refusal: &PersonVerdict,
    ) -> Option<IdentifyWait> {
        let _ = (request, refusal);
        None
    }

    /// Answers a request under [`AUTH_PREFIX`]. Records its own authentication events.
    fn serve(&self, request: AuthRequest) -> ServeFuture<'_>;
}

/// Whether a refused request should be redirected (a browser navigating) rather than answered
/// with a JSON error (an API call or a script).
pub(crate) fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// The sign-in (or step-up) address for a browser, returning to `path_and_query` after.
pub(crate) fn auth_redirect(endpoint: &str, path_and_query: &str) -> String {
    let rd: String =
        percent_encoding::utf8_percent_encode(path_and_query, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    format!("{AUTH_PREFIX}{endpoint}?rd={rd}")
}

/// Removes Tenet's own cookies from the request's `Cookie` fields; a field left empty is
/// dropped. Values that are not visible ASCII are dropped whole (they cannot be split safely).
pub(crate) fn strip_tenet_cookies(headers: &mut HeaderMap) {
    let fields: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if fields.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    // One field, as an HTTP/1.1 upstream expects it (RFC 9113 §8.2.3).
    let kept: Vec<&str> = fields
        .iter()
        .filter_map(|field| field.to_str().ok())
        .flat_map(|text| text.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default().trim();
            !name.starts_with(COOKIE_PREFIX)
        })
        .collect();
    if kept.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenet_cookies_never_reach_the_upstream() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-tenet_session=S; b=2"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-tenet_login=L"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        strip_tenet_cookies(&mut h);
        let left: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, vec!["a=1; b=2; c=3"]);
    }

    #[test]
    fn navigation_is_a_browser_get_for_html() {
        let mut h = HeaderMap::new();
        assert!(!is_navigation(&Method::GET, &h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html,*/*"));
        assert!(is_navigation(&Method::GET, &h));
        assert!(!is_navigation(&Method::POST, &h));
        h.insert("sec-fetch-mode", HeaderValue::from_static("cors"));
        assert!(!is_navigation(&Method::GET, &h));
    }

    #[test]
    fn redirects_carry_the_encoded_return_path() {
        assert_eq!(
            auth_redirect("login", "/a b?x=1&y=/"),
            "/.tenet/auth/login?rd=%2Fa%20b%3Fx%3D1%26y%3D%2F"
        );
    }
}
