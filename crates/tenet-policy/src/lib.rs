//! Per-request authorization for the Tenet gateway (the PEP): the Tenet Cedar schema, the
//! mapping of a request onto it, decisions with the policies that determined them, strict
//! validation, and hot reload that keeps the last good policy set.
//!
//! Default deny: a request is allowed only when a permit policy matches, no forbid policy
//! matches and nothing errored. An unknown method, a request that cannot be built or a policy
//! that errors while evaluating denies, with the reason in [`Decision::Deny`]'s `errors`.
//!
//! ```
//! use tenet_policy::{PolicySnapshot, PolicyEngine, example_policies};
//! let files = vec![("main.cedar".to_owned(), example_policies("example.org"))];
//! let engine = PolicyEngine::new(PolicySnapshot::from_sources(&files)?);
//! assert_eq!(engine.current().policy_count(), 2);
//! # Ok::<(), tenet_policy::PolicyError>(())
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod blast;
mod decision;
mod engine;
mod error;
mod example;
mod index;
mod near_miss;
mod policy_set;
mod raw;
mod request;
mod schema;

pub use blast::{Assumptions, BlastRadius, Reach, RouteInfo, blast_radius};
pub use decision::{Decision, Explanation};
pub use engine::{PolicyEngine, PolicySnapshot, ReloadOutcome};
pub use error::{PolicyError, ValidationIssue};
pub use example::example_policies;
pub use near_miss::{ClauseKind, NearMiss, ScopePart, Unmet};
pub use raw::{RawEvaluator, evaluate_raw};
pub use request::{
    AccessRequest, AccessRequestRef, DeviceFacts, Principal, RequestContext, RouteResource,
    SessionFacts, TlsFacts,
};
pub use schema::TENET_SCHEMA;
