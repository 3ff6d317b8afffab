//! Tenet's event model and the sink every component writes decisions into.
//!
//! Every authentication and authorization decision, SVID issuance, policy change and admin
//! action becomes one [`Event`]. Events are shaped after OCSF classes so that a SIEM can take
//! them as they are, and their JSON serialisation is canonical: the ledger hashes exactly
//! the bytes [`Event::to_canonical_json`] returns.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod event;
mod sink;

pub use event::{
    AccessEvent, AdminEvent, AuthenticationEvent, DetectionEvent, Disposition, Event, EventKind,
    PolicyEvent, RejectionEvent, SvidEvent, THROTTLED, default_deny_text,
};
pub use sink::{EventSink, RecordFuture, SinkError};
