//! One request through the PEP: normalise, route, authorize, record, forward.
//!
//! INVARIANT: the host and path the policy decides on are exactly the host and path that
//! are forwarded; nothing after `normalise` rewrites them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tenet_event::{AccessEvent, Disposition, Event, EventKind, RejectionEvent};
use tenet_policy::{AccessRequest, Decision, Principal, RequestContext, RouteResource, TlsFacts};
use tenet_request::{CanonicalHost, NormalizedPath, Rejection};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::assertion::ASSERTION_HEADER;
use crate::conn::ConnInfo;
use crate::response::{Body, REQUEST_ID_HEADER, refuse};
use crate::routes::Route;
use crate::server::{ListenerState, Shared};

/// The header naming the caller to the upstream (its SPIFFE ID, or `anonymous`).
const PRINCIPAL_HEADER: &str = "x-tenet-principal";

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
    let span = info_span!("request", request_id = %request_id, method = %request.method());
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

    // authorize: containment first (a revoked identity or quarantined service is refused
    // whatever the policy says), then the policy with the caller's current risk.
    let started = Instant::now();
    let snapshot = shared.policy.current();
    let now = shared.clock.now();
    let contained = shared.containment.current();
    let hit = contained
        .check(
            conn.principal.as_ref().map(|p| p.as_str()),
            conn.client_serial.as_deref(),
            route.as_ref().map(|r| r.spec.service.as_str()),
            now,
        )
        .map(|a| format!("contained: {} ({}, {})", a.id, a.target, a.reason));
    let decision = match (&route, hit) {
        (Some(_), Some(reason)) => Decision::Deny {
            policies: vec![],
            errors: vec![reason],
        },
        (Some(route), None) => snapshot.authorize(&access_request(
            &parts, &conn, route, &host, &target, protocol, &shared,
        )),
        (None, _) => Decision::Deny {
            policies: vec![],
            errors: vec!["no route".into()],
        },
    };
    let decision_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let allowed = decision.is_allowed();
    let status = match (&route, allowed) {
        (None, _) => Some(StatusCode::NOT_FOUND),
        (Some(_), false) => Some(StatusCode::FORBIDDEN),
        (Some(_), true) => None,
    };

    // record: the event is stored before the caller sees anything.
    let principal = principal_name(&conn);
    let event = AccessEvent {
        request_id: request_id.clone(),
        listener: listener.name.clone(),
        principal: principal.clone(),
        action: parts.method.as_str().to_string(),
        route: route.as_ref().map(|r| r.spec.name.clone()),
        service: route.as_ref().map(|r| r.spec.service.clone()),
        host: host.to_string(),
        path: target.as_str().to_string(),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        protocol: protocol.to_string(),
        tls_version: conn.tls_version.clone(),
        client_serial: conn.client_serial.clone(),
        disposition: if allowed {
            Disposition::Allowed
        } else {
            Disposition::Blocked
        },
        status: status.map(|s| s.as_u16()),
        reasons: decision.reasons().to_vec(),
        errors: decision_errors(&decision),
        policy_hash: snapshot.hash().to_string(),
        decision_us,
    };
    let now = shared.clock.now();
    if let Err(e) = shared
        .sink
        .record(Event::new(now, EventKind::Access(event)))
        .await
    {
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
            errors = ?decision_errors(&decision), "request denied");
        let (status, error) = match status {
            Some(StatusCode::NOT_FOUND) => (StatusCode::NOT_FOUND, "no_route"),
            _ => (StatusCode::FORBIDDEN, "forbidden"),
        };
        return refuse(status, error, None, &request_id, false);
    };
    metrics::counter!("tenet_gateway_requests_total", "decision" => "allow").increment(1);
    debug!(%principal, route = %route.spec.name, reasons = ?decision.reasons(), "request allowed");

    // forward
    if let Err(e) = upstream_headers(&mut parts, &conn, &route, &host, &request_id, &shared) {
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
    let version = parts.version;
    let forwarded = route.upstream.send(parts, &path_and_query, body);
    match forwarded
        .instrument(info_span!("forward", route = %route.spec.name))
        .await
    {
        Ok(response) => downstream_response(response, &request_id, version),
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
    let sni = conn
        .sni
        .as_deref()
        .map(tenet_request::canonical_sni)
        .transpose()?;
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
    info!(peer = %conn.peer, reason = rejection.kind(), detail = %rejection, "request rejected");
    let event = Event::new(
        shared.clock.now(),
        EventKind::Rejection(RejectionEvent {
            request_id: Some(request_id.to_string()),
            listener: listener.name.clone(),
            source_ip: conn.peer.ip(),
            source_port: conn.peer.port(),
            stage: "http".into(),
            kind: rejection.kind().into(),
            detail: rejection.to_string(),
            principal: conn.principal.as_ref().map(|p| p.as_str().to_string()),
            status: Some(status.as_u16()),
        }),
    );
    if let Err(e) = shared.sink.record(event).await {
        warn!(error = %e, "could not record a rejected request");
    }
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

fn principal_name(conn: &ConnInfo) -> String {
    conn.principal
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |p| p.as_str().to_string())
}

fn decision_errors(decision: &Decision) -> Vec<String> {
    match decision {
        Decision::Deny { errors, .. } => errors.clone(),
        Decision::Allow { .. } => Vec::new(),
    }
}

fn access_request(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    route: &Route,
    host: &CanonicalHost,
    target: &NormalizedPath,
    protocol: &str,
    shared: &Shared,
) -> AccessRequest {
    let principal = match &conn.principal {
        Some(id) => Principal::Workload {
            spiffe_id: id.as_str().to_string(),
            trust_domain: id.trust_domain().as_str().to_string(),
            path: id.path().to_string(),
        },
        None => Principal::Anonymous,
    };
    AccessRequest {
        principal,
        action: parts.method.as_str().to_string(),
        resource: RouteResource {
            route: route.spec.name.clone(),
            service: route.spec.service.clone(),
            host: host.name().to_string(),
            path: target.as_str().to_string(),
        },
        context: RequestContext {
            source_ip: conn.peer.ip(),
            tls: TlsFacts {
                version: conn.tls_version.clone(),
                sni: conn.sni.clone().unwrap_or_default(),
                alpn: conn.alpn.clone().unwrap_or_default(),
                mtls: conn.principal.is_some(),
                client_serial: conn.client_serial.clone().unwrap_or_default(),
            },
            unix_time: shared.clock.now().unix_timestamp(),
            protocol: protocol.to_string(),
            risk: shared.risk.risk(&principal_name(conn), shared.clock.now()),
            session: Default::default(),
            device: Default::default(),
        },
    }
}

/// Strip what the client may not send upstream, then add what only Tenet writes.
fn upstream_headers(
    parts: &mut http::request::Parts,
    conn: &ConnInfo,
    route: &Route,
    host: &CanonicalHost,
    request_id: &str,
    shared: &Shared,
) -> Result<(), String> {
    tenet_request::prepare_upstream_headers(&mut parts.headers);
    let headers = &mut parts.headers;
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| e.to_string());
    headers.insert(header::HOST, value(&host.to_string())?);
    headers.insert("x-forwarded-for", value(&conn.peer.ip().to_string())?);
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    headers.insert("x-forwarded-host", value(&host.to_string())?);
    headers.insert(REQUEST_ID_HEADER, value(request_id)?);
    headers.insert(PRINCIPAL_HEADER, value(&principal_name(conn))?);
    if let Some(caller) = &conn.principal {
        let token = shared
            .assertions
            .assertion(caller, &route.spec.service, shared.clock.now())?;
        headers.insert(ASSERTION_HEADER, value(&token)?);
    }
    Ok(())
}

/// The upstream's response with its hop-by-hop headers removed and the request id added.
/// The upstream's answer as the caller gets it: hop-by-hop headers removed, the request id
/// added, and the gateway's own HTTP version on the caller's connection (a proxy speaks its
/// own version, RFC 9110 section 7.6.3; an HTTP/1.0 upstream must not make the caller's
/// keep-alive connection close).
fn downstream_response(
    response: Response<Incoming>,
    request_id: &str,
    version: http::Version,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.version = version;
    strip_response_hop_by_hop(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(REQUEST_ID_HEADER, v);
    }
    Response::from_parts(parts, body.boxed())
}

fn strip_response_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
    ] {
        headers.remove(name);
    }
}
