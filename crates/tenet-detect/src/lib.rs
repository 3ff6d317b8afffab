//! Behavioural analytics and risk scores over Tenet's event stream.
//!
//! [`Analytics`] runs in the gateway's process and sees every [`tenet_event::Event`]. It
//! learns, per principal, which services and routes it uses, how fast, at which hours and
//! from which networks, and reports what departs from that baseline once the learning period
//! is over. Independently of any baseline it reports bursts of authentication and
//! authorization failures per principal and per source address, fan-out to many services,
//! rights used for the first time after a policy change, and admin actions by principals
//! that do not usually perform them.
//!
//! Every [`Alert`] explains itself: what was seen, the baseline, the threshold. Alerts raise
//! a risk score (0–100) per [`Subject`] that halves every half-life; the gateway passes it to
//! Cedar as `context.risk` ([`Analytics::context_risk`]) and the thresholds say when to ask
//! for re-authentication or cut a subject off ([`RiskAction`]).
//!
//! Learned baselines survive a restart through [`Analytics::export_baselines`] and
//! [`Analytics::import_baselines`], saved to and loaded from a versioned JSON state file by
//! [`Baselines::save`] and [`Baselines::load`]. Risk scores are not part of them.
//!
//! The library never reads the clock: `now` is a parameter. Memory is bounded by the caps in
//! [`LimitConfig`].
//!
//! ```
//! use tenet_detect::{Analytics, AnalyticsConfig, RiskAction, Subject};
//! use tenet_event::{AdminEvent, Event, EventKind};
//! use time::macros::datetime;
//!
//! let mut analytics = Analytics::new(AnalyticsConfig::default())?;
//! let now = datetime!(2026-03-02 10:00 UTC);
//! let event = Event::new(now, EventKind::Admin(AdminEvent {
//!     actor: "local-cli".into(),
//!     operation: "policy.reload".into(),
//!     success: true,
//!     detail: "reloaded".into(),
//! }));
//! for alert in analytics.observe(&event, now) {
//!     println!("{} {}: {}", alert.level, alert.rule, alert.explanation);
//! }
//! // Before authorizing a request: the risk Cedar sees as `context.risk`.
//! let subjects = [Subject::Principal("spiffe://example.org/web".into())];
//! let risk = i64::from(analytics.context_risk(&subjects, now));
//! assert_eq!(risk, 0);
//! assert_eq!(analytics.action(&subjects, now), RiskAction::Allow);
//! # Ok::<(), tenet_detect::ConfigError>(())
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

mod alert;
mod analytics;
mod config;
mod escalation;
mod lru;
mod names;
mod persist;
mod principals;
mod profile;
mod rate;
mod risk;
mod window;

pub use alert::{Alert, Level, Subject, rules};
pub use analytics::{Analytics, Tracked};
pub use config::{
    AnalyticsConfig, ConfigError, EscalationConfig, FailureConfig, HabitConfig, LateralConfig,
    LearningConfig, LimitConfig, RateConfig, RiskConfig,
};
pub use persist::{BASELINES_VERSION, BaselineError, Baselines};
pub use risk::{RiskAction, RiskReport};
