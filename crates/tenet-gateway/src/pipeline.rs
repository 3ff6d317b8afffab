//! One request through the PEP: normalise, route, authorize, record, forward.
//!
//! INVARIANT: the host and path the policy decides on are exactly the host and path that
//! are forwarded; nothing after `normalise` rewrites them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tenet_event::{AccessEvent, Disposition, Event, EventKind, RejectionEvent};
use tenet_identity::SpiffeId;
use tenet_policy::{AccessRequestRef, Decision, DeviceFacts, SessionFacts};
use tenet_request::{CanonicalHost, NormalizedPath, Rejection};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::assertion::ASSERTION_HEADER;
use crate::conn::ConnInfo;
use crate::forward::UpstreamBody;
use crate::people::{
    AUTH_PREFIX, AuthRequest, MAX_AUTH_BODY, PeopleGate, Person, PersonRequest, PersonVerdict,
    auth_redirect, is_navigation, strip_tenet_cookies,
};
use crate::refusals::log_refusal;
use crate::request_body::ForwardedBody;
use crate::response::{Body, REQUEST_ID_HEADER, full, refuse};
use crate::routes::Route;
use crate::server::{ListenerState, Shared};

/// The header naming the caller to the upstream (its SPIFFE ID, a person's principal name,
/// or `anonymous`).
static PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("x-tenet-principal");
/// The header naming a signed-in person to the upstream (email, or name).
static USER_HEADER: HeaderName = HeaderName::from_static("x-tenet-user");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The longest a sign-in endpoint waits for its whole request body (the head has its own
/// limit in `conn`); a slower client is answered 408 and the connection closed.
const AUTH_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One request. `framing` is the refusal the HTTP/1.x framing guard recorded for it: the
/// request hyper parsed is then only a stand-in and is answered with that refusal.
pub(crate) async fn handle(
    request: Request<Incoming>,
    framing: Option<Rejection>,
    conn: Arc<ConnInfo>,
    listener: Arc<ListenerState>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    // A refused head's stand-in has a method of its own, not the client's.
    let span = match framing {
        Some(_) => info_span!("request", request_id = %request_id, method = "-"),
        None => info_span!("request", request_id = %request_id, method = %request.method()),
    };
    let response = match framing {
        Some(rejection) => {
            let refused = reject(&rejection, &request_id, &conn, &listener, &shared);
            refused.instrument(span).await
        }
        None => {
            handle_inner(request, request_id, conn, listener, shared)
                .instrument(span)
                .await
        }
    };
    Ok(response)
}

async fn handle_inner(
    request: Request<Incoming>,
    request_id: String,
    conn: Arc<ConnInfo>,
    listener: Arc<ListenerState>,
    shared: Arc<Shared>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let (host, target) = match normalise(&parts, &conn, &listener) {
        Ok(pair) => pair,
        Err(rejection) => {
            return reject(&rejection, &request_id, &conn, &listener, &shared).await;
        }
    };
    let protocol = protocol_of(&parts);
    let route = listener.routes.find(host.name(), target.as_str()).cloned();
    let route = route.filter(|_| host.port().is_none());

    // people: the sign-in endpoints are the gateway's own; every other request of a people
    // route must come with a session that survives re-evaluation.
    let mut person = None;
    if let Some(route) = route.as_ref().filter(|r| r.spec.people) {
        let Some(gate) = shared.people.clone() else {
            warn!(route = %route.spec.name, "people route without a sign-in service; denied");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                &request_id,
                false,
            );
        };
        if target.as_str().starts_with(AUTH_PREFIX) {
            return serve_auth(
                gate,
                parts,
                body,
                &host,
                &target,
                &request_id,
                &conn,
                &listener,
                &shared,
            )
            .await;
        }
        let path_and_query = target.path_and_query();
        let asked = PersonRequest {
            method: &parts.method,
            host: host.name(),
            port: listener.port,
            path_and_query: &path_and_query,
            headers: &parts.headers,
            source_ip: conn.peer.ip(),
            client_id: conn.principal.as_ref(),
            now: shared.clock.now(),
        };
        let mut verdict = gate.identify(&asked);
        // A refusal that may pass within moments (the gate bounds the wait): identified once
        // more after it. Identified people never get here.
        if !matches!(verdict, PersonVerdict::Person(_))
            && let Some(wait) = gate.wait_to_identify_again(&asked, &verdict)
        {
            wait.await;
            verdict = gate.identify(&PersonRequest {
                now: shared.clock.now(),
                ..asked
            });
        }
        match verdict {
            PersonVerdict::Person(p) => person = Some(*p),
            refused => {
                let ctx = Refusal {
                    parts: &parts,
                    host: &host,
                    target: &target,
                    protocol,
                    route,
                    request_id: &request_id,
                };
                return refuse_person(refused, ctx, &conn, &listener, &shared).await;
            }
        }
    }

    // The body from here on: forwarded if the request is allowed. On an HTTP/1.x connection
    // a body dropped before its end (a denial, an upstream that failed or answered without
    // reading it all) is read to its end by a task of its own: closed while the client still
    // sends, the connection would be reset, and the client could lose the answer with it.
    let version = parts.version;
    let mut body = ForwardedBody::new(
        body,
        shared.request_body_idle,
        protocol == "gRPC",
        request_id.clone(),
    );
    if version < http::Version::HTTP_2 && !hyper::body::Body::is_end_stream(&body) {
        let awaits_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        body = body.lingering(awaits_continue, shared.stopped.clone());
    }

    // authorize: containment first (a revoked identity or quarantined service is refused
    // whatever the policy says), then the policy with the caller's current risk.
    let started = Instant::now();
    let snapshot = shared.policy.current();
    let now = shared.clock.now();
    let contained = shared.containment.current();
    let caller = person
        .as_ref()
        .map(|p| p.name.as_str())
        .or_else(|| conn.principal.as_ref().map(SpiffeId::as_str));
    let hit = contained
        .check(
            caller,
            conn.client_serial(),
            route.as_ref().map(|r| r.spec.service.as_str()),
            now,
        )
        .map(|a| format!("contained: {} ({}, {})", a.id, a.target, a.reason));
    // A default deny also names the permits that came closest, for the operator (the event
    // and the log); the caller's answer never carries them.
    let (decision, near_misses) = match (&route, hit) {
        (Some(_), Some(reason)) => (
            Decision::Deny {
                policies: vec![],
                errors: vec![reason],
            },
            Vec::new(),
        ),
        (Some(route), None) => {
            let explained = snapshot.explain_memoized_ref(access_request(
                &parts,
                &conn,
                person.as_ref(),
                route,
                &host,
                &target,
                protocol,
                &shared,
            ));
            let near: Vec<String> = explained
                .near_misses
                .iter()
                .map(ToString::to_string)
                .collect();
            (explained.decision.clone(), near)
        }
        (None, _) => (
            Decision::Deny {
                policies: vec![],
                errors: vec!["no route".into()],
            },
            Vec::new(),
        ),
    };
    let decision_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let allowed = decision.is_allowed();
    let status = match (&route, allowed) {
        (None, _) => Some(StatusCode::NOT_FOUND),
        (Some(_), false) => Some(StatusCode::FORBIDDEN),
        (Some(_), true) => None,
    };

    // record: the event is stored before the caller sees anything.
    let principal = person
        .as_ref()
        .map_or_else(|| conn.name.clone(), |p| p.name.clone());
    let event = AccessEvent {
        request_id: request_id.clone(),
        listener: listener.name.clone(),
        principal: principal.clone(),
        action: parts.method.as_str().to_string(),
        route: route.as_ref().map(|r| r.spec.name.clone()),
        service: route.as_ref().map(|r| r.spec.service.clone()),
        host: host.to_string(),
        path: target.as_str().to_string(),
        query: target.query().map(str::to_owned),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        protocol: protocol.to_string(),
        tls_version: conn.tls.version.clone(),
        client_serial: conn.client_serial().map(str::to_owned),
        disposition: if allowed {
            Disposition::Allowed
        } else {
            Disposition::Blocked
        },
        status: status.map(|s| s.as_u16()),
        reasons: decision.reasons().to_vec(),
        errors: decision_errors(&decision),
        near_misses: near_misses.clone(),
        policy_hash: snapshot.hash().to_string(),
        decision_us,
    };
    let now = shared.clock.now();
    let recording = Instant::now();
    let recorded = shared
        .sink
        .record(Event::new(now, EventKind::Access(event)))
        .await;
    // What the ledger adds to every request: the event's bytes, the queue, the group-commit
    // write (and its sync under `sync = "batch"`), the acknowledgement.
    metrics::histogram!("tenet_gateway_record_seconds").record(recording.elapsed().as_secs_f64());
    if let Err(e) = recorded {
        // No decision without a record: fail closed.
        metrics::counter!("tenet_gateway_requests_total", "decision" => "unrecorded").increment(1);
        warn!(error = %e, %principal, "decision could not be recorded; request denied");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            None,
            &request_id,
            false,
        );
    }

    let Some(route) = route.filter(|_| allowed) else {
        metrics::counter!("tenet_gateway_requests_total", "decision" => "deny").increment(1);
        info!(%principal, host = %host, path = %target.as_str(), reasons = ?decision.reasons(),
            errors = ?decision_errors(&decision), near_misses = ?near_misses, "request denied");
        let (status, error) = match status {
            Some(StatusCode::NOT_FOUND) => (StatusCode::NOT_FOUND, "no_route"),
            _ => (StatusCode::FORBIDDEN, "forbidden"),
        };
        return refuse(status, error, None, &request_id, false);
    };
    metrics::counter!("tenet_gateway_requests_total", "decision" => "allow").increment(1);
    debug!(%principal, route = %route.spec.name, reasons = ?decision.reasons(), "request allowed");

    // forward
    if let Err(e) = upstream_headers(
        &mut parts,
        &conn,
        person.as_ref(),
        &route,
        &host,
        &request_id,
        &shared,
    ) {
        warn!(error = %e, route = %route.spec.name, "identity assertion failed; request denied");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            None,
            &request_id,
            false,
        );
    }
    let path_and_query = target.path_and_query();
    // No span of its own: the request's span (its id and method) is the context of what the
    // upstream client logs, and every log line below names the route. A span per request
    // costs more than the rest of the forwarding code when the log level enables it.
    match route.upstream.send(parts, &path_and_query, body).await {
        Ok(response) => downstream_response(response, &request_id, version),
        Err(e) if e.is_client_body() => {
            let detail = e.to_string();
            info!(peer = %conn.peer, %principal, route = %route.spec.name, error = %detail,
                "request body not received in time; upstream request cancelled");
            let refusal = BodyRefusal {
                request_id: &request_id,
                principal,
                detail,
            };
            refuse_late_body(refusal, &conn, &listener, &shared).await
        }
        Err(e) => {
            metrics::counter!("tenet_gateway_upstream_errors_total").increment(1);
            warn!(route = %route.spec.name, error = %e, "upstream failed");
            refuse(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                None,
                &request_id,
                false,
            )
        }
    }
}

/// A forwarded request whose body stopped arriving.
struct BodyRefusal<'a> {
    request_id: &'a str,
    /// The caller the request was allowed for (a person, a workload, or `anonymous`).
    principal: String,
    detail: String,
}

/// The client stopped sending an allowed request's body and the upstream request was
/// cancelled: recorded as a refusal beside the request's decision (which stays what it was),
/// answered 408 and the connection closed (the rest of the body is not read).
async fn refuse_late_body(
    r: BodyRefusal<'_>,
    conn: &ConnInfo,
    listener: &ListenerState,
    shared: &Shared,
) -> Response<Body> {
    let status = StatusCode::REQUEST_TIMEOUT;
    metrics::counter!("tenet_gateway_rejections_total", "reason" => "body_timeout").increment(1);
    let refusal = RejectionEvent {
        request_id: Some(r.request_id.to_string()),
        listener: listener.name.clone(),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        stage: "http".into(),
        kind: "body_timeout".into(),
        detail: r.detail,
        principal: Some(r.principal),
        status: Some(status.as_u16()),
    };
    crate::refusals::record(shared, refusal).await;
    refuse(
        status,
        "bad_request",
        Some("body_timeout"),
        r.request_id,
        true,
    )
}

/// Framing, single-valued headers, host (and SNI = Host), path: once, in this order.
fn normalise(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    listener: &ListenerState,
) -> Result<(CanonicalHost, NormalizedPath), Rejection> {
    tenet_request::check_framing(&parts.headers)?;
    tenet_request::check_single_valued(&parts.headers, &[])?;
    let host =
        tenet_request::request_host(parts.version, &parts.uri, &parts.headers, listener.port)?;
    let sni = conn.sni().map(tenet_request::canonical_sni).transpose()?;
    tenet_request::check_sni(sni.as_ref(), &host)?;
    let target = tenet_request::normalize_target(&parts.method, &parts.uri)?;
    Ok((host, target))
}

async fn reject(
    rejection: &Rejection,
    request_id: &str,
    conn: &ConnInfo,
    listener: &ListenerState,
    shared: &Shared,
) -> Response<Body> {
    let status = rejection.status();
    metrics::counter!("tenet_gateway_rejections_total", "reason" => rejection.kind()).increment(1);
    let refusal = RejectionEvent {
        request_id: Some(request_id.to_string()),
        listener: listener.name.clone(),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        stage: "http".into(),
        kind: rejection.kind().into(),
        detail: rejection.to_string(),
        principal: conn.principal.as_ref().map(|p| p.as_str().to_string()),
        status: Some(status.as_u16()),
    };
    let recorded = crate::refusals::record(shared, refusal).await;
    log_refusal!(recorded, peer = %conn.peer, reason = rejection.kind(), detail = %rejection,
        "request rejected");
    // Close the connection after a framing problem: the rest of the stream is suspect.
    let error = if status == StatusCode::MISDIRECTED_REQUEST {
        "misdirected"
    } else {
        "bad_request"
    };
    refuse(status, error, Some(rejection.kind()), request_id, true)
}

fn protocol_of(parts: &http::request::Parts) -> &'static str {
    let grpc = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    match parts.version {
        http::Version::HTTP_2 if grpc => "gRPC",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

fn decision_errors(decision: &Decision) -> Vec<String> {
    match decision {
        Decision::Deny { errors, .. } => errors.clone(),
        Decision::Allow { .. } => Vec::new(),
    }
}

/// The request as the policy sees it, borrowed from the connection, the person and the
/// request (the memo answers most requests without copying any of it).
#[allow(clippy::too_many_arguments)]
fn access_request<'a>(
    parts: &'a http::request::Parts,
    conn: &'a ConnInfo,
    person: Option<&'a Person>,
    route: &'a Route,
    host: &'a CanonicalHost,
    target: &'a NormalizedPath,
    protocol: &'a str,
    shared: &Shared,
) -> AccessRequestRef<'a> {
    let name = person.map_or(conn.name.as_str(), |p| p.name.as_str());
    let now = shared.clock.now();
    AccessRequestRef {
        principal: person.map_or(&conn.policy_principal, |p| &p.principal),
        action: parts.method.as_str(),
        route: &route.spec.name,
        service: &route.spec.service,
        host: host.name(),
        path: target.as_str(),
        source_ip: conn.peer.ip(),
        tls: &conn.tls,
        unix_time: now.unix_timestamp(),
        protocol,
        risk: shared.risk.risk(name, now),
        session: person.map_or(SessionFacts::none(), |p| &p.session),
        device: person.map_or(DeviceFacts::unknown(), |p| &p.device),
    }
}

/// Strip what the client may not send upstream, then add what only Tenet writes.
fn upstream_headers(
    parts: &mut http::request::Parts,
    conn: &ConnInfo,
    person: Option<&Person>,
    route: &Route,
    host: &CanonicalHost,
    request_id: &str,
    shared: &Shared,
) -> Result<(), String> {
    tenet_request::prepare_upstream_headers(&mut parts.headers);
    let headers = &mut parts.headers;
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| e.to_string());
    let host_value = value(&host.to_string())?;
    headers.insert(header::HOST, host_value.clone());
    let forwarded_for = conn.forwarded_for.clone();
    headers.insert(
        &X_FORWARDED_FOR,
        forwarded_for.ok_or("the peer's address is not a header value")?,
    );
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    headers.insert(&X_FORWARDED_HOST, host_value);
    headers.insert(&REQUEST_ID_HEADER, value(request_id)?);
    if let Some(person) = person {
        strip_tenet_cookies(headers);
        // The upstream learns who calls from Tenet's headers only: a client's own
        // `Authorization` (a forged token beside a real session, or the access token that was
        // meant for the gateway and could be replayed) never reaches it.
        headers.remove(header::AUTHORIZATION);
        headers.insert(&PRINCIPAL_HEADER, value(&person.name)?);
        headers.insert(&USER_HEADER, value(&person.display)?);
        return Ok(());
    }
    let name = conn.name_header.clone();
    headers.insert(
        &PRINCIPAL_HEADER,
        name.ok_or("the caller's name is not a header value")?,
    );
    if let Some(caller) = &conn.principal {
        let token = shared
            .assertions
            .assertion(caller, &route.spec.service, shared.clock.now())?;
        headers.insert(&ASSERTION_HEADER, token);
    }
    Ok(())
}

/// The upstream's answer as the caller gets it: hop-by-hop headers removed, the request id
/// added, and the gateway's own HTTP version on the caller's connection (a proxy speaks its
/// own version, RFC 9110 section 7.6.3; an HTTP/1.0 upstream must not make the caller's
/// keep-alive connection close).
fn downstream_response(
    response: Response<UpstreamBody>,
    request_id: &str,
    version: http::Version,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.version = version;
    strip_response_hop_by_hop(&mut parts.headers);
    strip_no_content_length(parts.status, &mut parts.headers);
    strip_tenet_set_cookies(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(&REQUEST_ID_HEADER, v);
    }
    Response::from_parts(parts, body.boxed())
}

/// A 204 has no content and no length (RFC 9110 section 8.6): an upstream's `Content-Length`
/// on one would announce bytes that never come (an HTTP/2 caller takes that as a protocol
/// error).
fn strip_no_content_length(status: StatusCode, headers: &mut http::HeaderMap) {
    if status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// Only the gateway sets Tenet's cookies: an upstream's `Set-Cookie` for a name with
/// [`crate::COOKIE_PREFIX`] would plant, swap or clear a person's session on every route of
/// the host, so it is dropped (and logged).
fn strip_tenet_set_cookies(headers: &mut http::HeaderMap) {
    if !headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(sets_tenet_cookie)
    {
        return;
    }
    let all: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in all {
        if sets_tenet_cookie(&v) {
            info!("upstream tried to set a Tenet cookie; dropped");
        } else {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Whether a `Set-Cookie` value names a cookie with [`crate::COOKIE_PREFIX`] (any case,
/// leading whitespace ignored).
fn sets_tenet_cookie(value: &HeaderValue) -> bool {
    let prefix = crate::COOKIE_PREFIX.as_bytes();
    value
        .as_bytes()
        .trim_ascii_start()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

fn strip_response_hop_by_hop(headers: &mut http::HeaderMap) {
    // Only names the answer holds are looked for (an answer has a few fields), so an answer
    // without any of them costs no removal.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| tenet_request::HOP_BY_HOP_HEADERS.contains(name))
        .cloned()
        .collect();
    if doomed.contains(&header::CONNECTION) {
        // Tokens that are no field name are skipped: no field could carry them.
        let nominated = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok());
        doomed.extend(nominated);
    }
    for name in doomed {
        headers.remove(&name);
    }
}

/// A sign-in endpoint: the body is read (bounded) and the [`PeopleGate`] answers. Nothing is
/// forwarded; the gate records its own authentication events.
#[allow(clippy::too_many_arguments)]
async fn serve_auth(
    gate: Arc<dyn PeopleGate>,
    parts: http::request::Parts,
    body: Incoming,
    host: &CanonicalHost,
    target: &NormalizedPath,
    request_id: &str,
    conn: &ConnInfo,
    listener: &ListenerState,
    shared: &Shared,
) -> Response<Body> {
    let limited = http_body_util::Limited::new(body, MAX_AUTH_BODY);
    let body = match tokio::time::timeout(AUTH_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            metrics::counter!(
                "tenet_gateway_connections_timed_out_total",
                "reason" => "sign_in_body"
            )
            .increment(1);
            info!(
                peer = %conn.peer,
                after = ?AUTH_BODY_TIMEOUT,
                "sign-in request body not complete in time"
            );
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "bad_request",
                Some("body_timeout"),
                request_id,
                true,
            );
        }
        Ok(Err(e)) => {
            info!(peer = %conn.peer, error = %e, "sign-in request body refused");
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                Some("body_too_large"),
                request_id,
                true,
            );
        }
    };
    let request = AuthRequest {
        method: parts.method.clone(),
        host: host.name().to_string(),
        port: listener.port,
        path_and_query: target.path_and_query(),
        headers: parts.headers,
        body,
        source_ip: conn.peer.ip(),
        client_id: conn.principal.clone(),
        request_id: request_id.to_string(),
        now: shared.clock.now(),
    };
    let response = gate.serve(request).await;
    let (mut parts, bytes) = response.into_parts();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(&REQUEST_ID_HEADER, v);
    }
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, full(bytes))
}

/// What a refused person's request was, for its event.
struct Refusal<'a> {
    parts: &'a http::request::Parts,
    host: &'a CanonicalHost,
    target: &'a NormalizedPath,
    protocol: &'a str,
    route: &'a Route,
    request_id: &'a str,
}

/// A people-route request without a usable session: recorded, then a redirect for a browser
/// navigating (to sign in or step up) or a 401 for anything else.
async fn refuse_person(
    verdict: PersonVerdict,
    r: Refusal<'_>,
    conn: &ConnInfo,
    listener: &ListenerState,
    shared: &Shared,
) -> Response<Body> {
    let mut end = None;
    let (principal, endpoint, error, reason) = match verdict {
        PersonVerdict::SignInRequired { reason } => {
            ("anonymous".to_string(), "login", "sign_in_required", reason)
        }
        PersonVerdict::StepUpRequired { name, reason } => {
            (name, "stepup", "step_up_required", reason)
        }
        PersonVerdict::Ended {
            name,
            reason,
            end: ended,
        } => {
            end = ended;
            (name, "login", "session_ended", reason)
        }
        PersonVerdict::Person(_) => (
            "anonymous".to_string(),
            "login",
            "sign_in_required",
            String::new(),
        ),
    };
    let navigate = is_navigation(&r.parts.method, &r.parts.headers);
    let status = if navigate {
        StatusCode::FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    // The session's end first (once, from the request that ended it), then the refusal.
    if let Some(mut end) = end {
        end.request_id = Some(r.request_id.to_string());
        let recorded = shared
            .sink
            .record(Event::new(
                shared.clock.now(),
                EventKind::Authentication(*end),
            ))
            .await;
        if let Err(e) = recorded {
            warn!(error = %e, %principal, "session end could not be recorded");
        }
    }
    let event = AccessEvent {
        request_id: r.request_id.to_string(),
        listener: listener.name.clone(),
        principal: principal.clone(),
        action: r.parts.method.as_str().to_string(),
        route: Some(r.route.spec.name.clone()),
        service: Some(r.route.spec.service.clone()),
        host: r.host.to_string(),
        path: r.target.as_str().to_string(),
        query: r.target.query().map(str::to_owned),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        protocol: r.protocol.to_string(),
        tls_version: conn.tls.version.clone(),
        client_serial: conn.client_serial().map(str::to_owned),
        disposition: Disposition::Blocked,
        status: Some(status.as_u16()),
        reasons: vec![],
        errors: vec![format!("session: {error} ({reason})")],
        near_misses: vec![],
        policy_hash: shared.policy.current().hash().to_string(),
        decision_us: 0,
    };
    if let Err(e) = shared
        .sink
        .record(Event::new(shared.clock.now(), EventKind::Access(event)))
        .await
    {
        warn!(error = %e, %principal, "refusal could not be recorded");
    }
    metrics::counter!("tenet_gateway_requests_total", "decision" => error).increment(1);
    info!(%principal, host = %r.host, path = %r.target.as_str(), error, reason = %reason,
        "person refused");
    if navigate {
        let location = auth_redirect(endpoint, &r.target.path_and_query());
        let mut response = refuse(status, error, Some(&reason), r.request_id, false);
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return response;
    }
    refuse(status, error, Some(&reason), r.request_id, false)
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, header};

    /// Hop-by-hop fields of an answer, listed or named in Connection (any case, with blanks
    /// and empty or invalid tokens), end at the gateway; the rest passes, duplicates kept.
    #[test]
    fn a_no_content_answer_loses_its_length() {
        let length = || {
            let mut h = http::HeaderMap::new();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
            h
        };
        let mut h = length();
        super::strip_no_content_length(http::StatusCode::NO_CONTENT, &mut h);
        assert!(h.is_empty());
        for status in [
            http::StatusCode::OK,
            http::StatusCode::NOT_MODIFIED,
            http::StatusCode::NOT_FOUND,
        ] {
            let mut h = length();
            super::strip_no_content_length(status, &mut h);
            assert_eq!(h.len(), 1, "{status}");
        }
    }

    #[test]
    fn answers_lose_their_hop_by_hop_fields() {
        let mut h = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "Keep-Alive, X-Hop ,, bad token,X-Also"),
            ("connection", "x-third"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic x"),
            ("x-hop", "1"),
            ("x-also", "2"),
            ("x-third", "3"),
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-kept", "yes"),
        ] {
            h.append(
                http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        super::strip_response_hop_by_hop(&mut h);
        let mut left: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ("content-type", "text/plain"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-kept", "yes"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );

        // Nothing to remove: nothing changes.
        let mut plain = http::HeaderMap::new();
        plain.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let before = plain.clone();
        super::strip_response_hop_by_hop(&mut plain);
        assert_eq!(plain, before);
    }

    #[test]
    fn upstreams_cannot_set_tenet_cookies() {
        let mut h = http::HeaderMap::new();
        for v in [
            "__Host-tenet_session=planted; Path=/; Secure",
            "theme=dark",
            " __host-TENET_login=x",
            "app=1; Path=/",
        ] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(v));
        }
        super::strip_tenet_set_cookies(&mut h);
        let left: Vec<&str> = h
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, vec!["theme=dark", "app=1; Path=/"]);
    }
}
