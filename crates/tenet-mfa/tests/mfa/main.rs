//! Integration tests for tenet-mfa: real WebAuthn ceremonies with a software passkey, the
//! W3C test vectors, TOTP, recovery codes and the factor store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod ceremony;
mod codes;
mod store;
mod vectors;
