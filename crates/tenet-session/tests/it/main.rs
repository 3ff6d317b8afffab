//! Integration tests of tenet-session, one module per topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod awaiting_second_factor;
mod evaluation;
mod f011;
mod login;
mod properties;
mod redirect;
mod store;
mod store_file;

use std::net::IpAddr;

use tenet_session::{FactorUse, NewSession, SessionLimits, SessionStore, UserIdentity};
use time::OffsetDateTime;
use time::macros::datetime;

/// A fixed start time for deterministic tests.
pub fn t0() -> OffsetDateTime {
    datetime!(2026-12-01 09:00 UTC)
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

pub fn alice() -> UserIdentity {
    UserIdentity::new("https://idp.example.test", "alice").with_email("Alice@Example.test")
}

pub fn login_of(user: UserIdentity, device: Option<&str>) -> NewSession {
    NewSession {
        user,
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: device.map(str::to_owned),
        ip: ip("192.0.2.10"),
        risk: 0,
    }
}

pub fn memory_store() -> SessionStore {
    SessionStore::in_memory(SessionLimits::default()).unwrap()
}
