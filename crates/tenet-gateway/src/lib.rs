//! The policy enforcement point (PEP): terminates TLS and mTLS, identifies the caller from
//! its X.509-SVID, normalises each request once, asks the policy engine, records the
//! decision, and forwards exactly what was authorized to the upstream.
//!
//! Request pipeline, in order (each stage is a span of the same name):
//! `accept` (TLS handshake, client SVID verified against the bundle of its own trust domain)
//! → `normalise` (framing, host, SNI = Host, path) → `route` → `authorize` (Cedar, default
//! deny) → `record` (the event is stored before anything is answered or forwarded)
//! → `forward` (hop-by-hop headers stripped, identity assertion added, mTLS to upstream).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod assertion;
mod clock;
mod config;
mod conn;
mod error;
mod forward;
mod framing;
mod keepalive;
mod people;
mod pipeline;
mod refusals;
mod replay;
mod request_body;
mod response;
mod routes;
mod server;
mod sources;
mod tls;

pub use assertion::{ASSERTION_HEADER, AssertionIssuer, CaAssertionIssuer};
pub use clock::{Clock, SystemClock};
pub use config::{ClientAuth, ListenerSpec, RouteSpec, UpstreamProtocol, UpstreamSpec};
pub use error::GatewayError;
pub use people::{
    AUTH_PREFIX, AuthRequest, COOKIE_PREFIX, IdentifyWait, MAX_AUTH_BODY, PeopleGate, Person,
    PersonRequest, PersonVerdict, ServeFuture,
};
pub use refusals::{REFUSAL_WINDOW, RefusalLimits};
pub use request_body::DEFAULT_REQUEST_BODY_IDLE_TIMEOUT;
pub use server::{Gateway, GatewayHandle, GatewayParts, NoRisk, RiskSource};
pub use tls::SvidResolver;
