//! People on Tenet's gateway: the sign-in service behind people routes.
//!
//! [`SignIn`] implements the gateway's [`tenet_gateway::PeopleGate`]: it federates sign-in to
//! OpenID Connect providers (`tenet-oidc`), requires a WebAuthn factor (`tenet-mfa`), keeps
//! server-side sessions that are re-evaluated on every request (`tenet-session`), and knows
//! each browser's device by its Tenet device certificate and posture (`tenet-device`).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod devices;
mod error;
mod gate;
mod pages;

pub use devices::{
    Compliance, DeviceState, Devices, ListedDevice, REPORT_WINDOW, REPORTS_PER_DEVICE,
};
pub use error::PeopleError;
pub use gate::{BearerSettings, SignIn, SignInParts};
