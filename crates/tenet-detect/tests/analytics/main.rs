//! Synthetic event streams for each analytic: one that must fire, with its explanation
//! checked, and a near miss that must not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bounds;
mod escalation;
mod failures;
mod habits;
mod lateral;
mod persist;
mod protocol;
mod risk;
mod support;
