//! Integration tests of tenet-identity, one module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bundle;
mod common;
mod corpus;
mod field_cases;
mod issuance;
mod jwt;
mod mtls;
mod properties;
mod verification;
