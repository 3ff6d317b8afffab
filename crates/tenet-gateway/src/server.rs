//! Building the gateway from its parts, binding listeners, and running accept loops until
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tenet_event::EventSink;
use tenet_identity::SvidVerifier;
use tenet_policy::PolicyEngine;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::assertion::AssertionIssuer;
use crate::clock::Clock;
use crate::config::{ListenerSpec, RouteSpec};
use crate::error::GatewayError;
use crate::forward::Upstream;
use crate::people::PeopleGate;
use crate::refusals::{RefusalLimits, Refusals};
use crate::routes::{Route, RouteTable};
use crate::sources::SourceSlots;
use crate::tls::{SvidResolver, server_config};

/// Everything the gateway needs, supplied by the caller (`tenet up`, the demo, tests).
pub struct GatewayParts {
    /// TLS listeners.
    pub listeners: Vec<ListenerSpec>,
    /// Routes; each names one of the listeners.
    pub routes: Vec<RouteSpec>,
    /// The gateway's own SVID (served to callers, presented to upstreams).
    pub svid: Arc<SvidResolver>,
    /// Verifies client and upstream SVIDs against the trust bundles.
    pub verifier: Arc<SvidVerifier>,
    /// The PDP.
    pub policy: Arc<PolicyEngine>,
    /// Where decisions are recorded; a failing sink makes the gateway deny.
    pub sink: Arc<dyn EventSink>,
    /// Signs the identity assertions forwarded upstream.
    pub assertions: Arc<dyn AssertionIssuer>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Most connections open at once across all listeners.
    pub max_connections: usize,
    /// Most connections open at once from one source (an address, or an IPv6 /64) across all
    /// listeners; `None` for half of `max_connections`.
    pub max_connections_per_source: Option<usize>,
    /// Revoked identities and serials, quarantined services: checked on every request.
    pub containment: Arc<tenet_contain::Containment>,
    /// The caller's current risk, passed to policy as `context.risk`.
    pub risk: Arc<dyn RiskSource>,
    /// The sign-in service for people routes; required when any route is for people.
    pub people: Option<Arc<dyn PeopleGate>>,
    /// How long a forwarded request's body may go without a byte while the upstream waits for
    /// it ([`crate::DEFAULT_REQUEST_BODY_IDLE_TIMEOUT`] unless configured); a longer gap cancels
    /// the upstream request and is answered 408.
    pub request_body_idle: Duration,
    /// How many refusals of connections and requests are recorded one by one; past these
    /// they are summarised.
    pub refusal_limits: RefusalLimits,
}

/// Where the gateway reads a caller's risk score (0–100) for `context.risk`.
pub trait RiskSource: Send + Sync {
    /// The current risk of `principal` (a SPIFFE ID or `anonymous`).
    fn risk(&self, principal: &str, now: time::OffsetDateTime) -> u8;
}

/// No risk information: every caller is 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRisk;

impl RiskSource for NoRisk {
    fn risk(&self, _principal: &str, _now: time::OffsetDateTime) -> u8 {
        0
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub policy: Arc<PolicyEngine>,
    pub sink: Arc<dyn EventSink>,
    pub assertions: Arc<dyn AssertionIssuer>,
    pub clock: Arc<dyn Clock>,
    pub containment: Arc<tenet_contain::Containment>,
    pub risk: Arc<dyn RiskSource>,
    pub people: Option<Arc<dyn PeopleGate>>,
    pub request_body_idle: Duration,
    /// The limits on refusal events and what they held back.
    pub refusals: Refusals,
    /// The connections open per source.
    pub sources: Arc<SourceSlots>,
    /// Turns `true` when the gateway stops.
    pub stopped: watch::Receiver<bool>,
}

/// State of one listener.
pub(crate) struct ListenerState {
    pub name: String,
    pub port: u16,
    pub routes: RouteTable,
}

struct Bound {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<ListenerState>,
}

/// A gateway whose listeners are bound but not yet accepting.
pub struct Gateway {
    bound: Vec<Bound>,
    shared: Arc<Shared>,
    max_connections: usize,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listeners", &self.local_addrs())
            .finish()
    }
}

impl Gateway {
    /// Validate the parts, build TLS and upstream clients, and bind every listener.
    pub async fn bind(parts: GatewayParts) -> Result<Self, GatewayError> {
        if parts.request_body_idle.is_zero() {
            return Err(GatewayError::Config(
                "the request body idle limit must be more than zero".into(),
            ));
        }
        for route in &parts.routes {
            if route.people && parts.people.is_none() {
                return Err(GatewayError::Config(format!(
                    "route {:?} is for people, but no sign-in service is configured",
                    route.name
                )));
            }
            if !parts.listeners.iter().any(|l| l.name == route.listener) {
                return Err(GatewayError::Config(format!(
                    "route {:?} names listener {:?}, which does not exist",
                    route.name, route.listener
                )));
            }
        }
        let mut bound = Vec::new();
        for spec in &parts.listeners {
            bound.push(bind_listener(spec, &parts).await?);
        }
        let (stop, stopped) = watch::channel(false);
        let max_connections = parts.max_connections.max(1);
        let per_source = parts
            .max_connections_per_source
            .unwrap_or(max_connections / 2)
            .clamp(1, max_connections);
        tracing::info!(
            connections = max_connections,
            per_source,
            "connection limits"
        );
        let shared = Arc::new(Shared {
            policy: parts.policy,
            sink: parts.sink,
            assertions: parts.assertions,
            clock: parts.clock,
            containment: parts.containment,
            risk: parts.risk,
            people: parts.people,
            request_body_idle: parts.request_body_idle,
            refusals: Refusals::new(parts.refusal_limits),
            sources: SourceSlots::new(per_source),
            stopped,
        });
        Ok(Self {
            bound,
            shared,
            max_connections,
            stop,
        })
    }

    /// The bound address of each listener, by name.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.bound
            .iter()
            .filter_map(|b| b.tcp.local_addr().ok().map(|a| (b.state.name.clone(), a)))
            .collect()
    }

    /// Start accepting on every listener.
    pub fn spawn(self) -> GatewayHandle {
        let (stop, stopped) = (self.stop, self.shared.stopped.clone());
        let limit = Arc::new(Semaphore::new(self.max_connections));
        let mut tasks = JoinSet::new();
        for b in self.bound {
            tasks.spawn(crate::conn::accept_loop(
                b.tcp,
                b.acceptor,
                b.state,
                self.shared.clone(),
                limit.clone(),
                stopped.clone(),
            ));
        }
        let (end_summaries, ended) = tokio::sync::oneshot::channel();
        let summaries = tokio::spawn(summarise_refusals(self.shared.clone(), ended));
        GatewayHandle {
            stop,
            tasks,
            shared: self.shared,
            summaries: (end_summaries, summaries),
        }
    }
}

async fn bind_listener(spec: &ListenerSpec, parts: &GatewayParts) -> Result<Bound, GatewayError> {
    let mut routes = Vec::new();
    for r in parts.routes.iter().filter(|r| r.listener == spec.name) {
        let upstream = Upstream::new(
            &r.name,
            &r.upstream,
            parts.svid.clone(),
            parts.verifier.clone(),
        )?;
        routes.push(Arc::new(Route {
            spec: r.clone(),
            upstream: Arc::new(upstream),
        }));
    }
    let routes = RouteTable::new(routes);
    let server_names = if spec.server_names.is_empty() {
        routes.hosts()
    } else {
        spec.server_names.clone()
    };
    let config = server_config(
        &spec.name,
        parts.svid.clone(),
        parts.verifier.clone(),
        spec.client_auth,
        server_names,
    )?;
    let tcp = TcpListener::bind(spec.addr)
        .await
        .map_err(|source| GatewayError::Bind {
            name: spec.name.clone(),
            addr: spec.addr,
            source,
        })?;
    let port = tcp
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(spec.addr.port());
    let state = Arc::new(ListenerState {
        name: spec.name.clone(),
        port,
        routes,
    });
    Ok(Bound {
        tcp,
        acceptor: TlsAcceptor::from(config),
        state,
    })
}

/// A running gateway.
pub struct GatewayHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
    /// Ends the task that records refusal summaries, and the task.
    summaries: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("listeners", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl GatewayHandle {
    /// Stop accepting, let open requests finish, and wait for the listeners to end; then
    /// record the summaries of the refusals held back so far.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let (end, task) = self.summaries;
        let _ = end.send(());
        let _ = task.await;
        crate::refusals::record_summaries(&self.shared, true).await;
    }
}

/// How often the summaries of refusals held back in windows that ended are recorded.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Records the summaries of refusals held back, every [`SUMMARY_INTERVAL`] until `end`
/// (never in the middle of recording them).
async fn summarise_refusals(shared: Arc<Shared>, mut end: tokio::sync::oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(SUMMARY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => crate::refusals::record_summaries(&shared, false).await,
            _ = &mut end => return,
        }
    }
}
