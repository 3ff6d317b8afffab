//! The interface between event producers (gateway, CA, admin API) and event stores.

use std::future::Future;
use std::pin::Pin;

use crate::Event;

/// Why a sink could not take an event. Producers on the request path treat every variant
/// as a reason to deny (fail closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink's writer has stopped (shutdown or an earlier fatal error).
    #[error("event sink is closed")]
    Closed,
    /// Writing or syncing the store failed.
    #[error("event store write failed: {0}")]
    Io(String),
    /// The event could not be serialised.
    #[error("event could not be serialised: {0}")]
    Encode(String),
}

/// A future that resolves once the event is durable by the sink's own rules.
pub type RecordFuture = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'static>>;

/// Where events go. `record` resolves only after the event has been accepted by the store,
/// so a caller that awaits it before answering a request keeps the invariant
/// "no decision without a record".
pub trait EventSink: Send + Sync + 'static {
    /// Hand one event to the store; the future resolves when it is stored.
    fn record(&self, event: Event) -> RecordFuture;
}
