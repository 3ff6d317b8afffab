//! Integration tests of tenet-ledger, one module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cases;
mod corpus;
mod perf;
mod properties;
mod python;
mod seek;
mod sink;
mod support;
mod tamper;
