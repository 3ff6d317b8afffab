//! The shape of listeners, routes and upstreams the gateway is built from.

use std::net::SocketAddr;

use tenet_identity::SpiffeId;

/// Whether a listener asks callers for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Workload routes: a client X.509-SVID is mandatory.
    Required,
    /// A certificate is verified when presented; otherwise the caller is anonymous.
    Optional,
}

/// One TLS listener.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Name used in logs, events and routes.
    pub name: String,
    /// Address to bind.
    pub addr: SocketAddr,
    /// SNI names this listener answers; a hello for any other name is refused. When empty,
    /// the hosts of the listener's routes are used.
    pub server_names: Vec<String>,
    /// Client certificate requirement.
    pub client_auth: ClientAuth,
}

/// Which HTTP version the gateway speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (or ALPN-negotiated HTTP/2 over TLS).
    Auto,
    /// HTTP/2 only (h2c over plain TCP): needed for gRPC upstreams without TLS.
    Http2,
}

/// Where allowed requests of a route go.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    /// `http://host:port` or `https://host:port` (no path).
    pub url: http::Uri,
    /// For `https`: the SPIFFE ID the upstream must present. The gateway presents its own SVID.
    pub spiffe_id: Option<SpiffeId>,
    /// HTTP version toward the upstream.
    pub protocol: UpstreamProtocol,
}

/// A route: requests for `host` under `path_prefix` on `listener` belong to `service`.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Route name: the Cedar resource id.
    pub name: String,
    /// The service the route belongs to: the resource's parent in Cedar.
    pub service: String,
    /// The listener that serves the route.
    pub listener: String,
    /// Canonical host (lowercase, no trailing dot, no default port).
    pub host: String,
    /// Path prefix, matched on segment boundaries; `/` matches everything.
    pub path_prefix: String,
    /// The upstream.
    pub upstream: UpstreamSpec,
    /// A route for people: callers are identified by a session (see [`crate::PeopleGate`]),
    /// and paths under [`crate::AUTH_PREFIX`] are the gateway's sign-in endpoints.
    pub people: bool,
}
