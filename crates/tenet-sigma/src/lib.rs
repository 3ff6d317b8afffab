//! Sigma rules for Tenet: an established engine behind Tenet's interface, field mappings for
//! Tenet, CloudTrail, Kubernetes audit and Okta, offline hunting.
//!
//! Rules are parsed and evaluated by rsigma (`rsigma-parser`, `rsigma-eval`), pinned and kept
//! behind [`RuleSet`] and [`Engine`] so it can be replaced. Tenet's own code covers what rsigma
//! does not: per-rule load problems, the checks where the Sigma specification is stricter
//! (`null` in a value list), the `|base64offset` patterns, the condition of `value_percentile`
//! correlations (rsigma fires on every percentile), a correlation clock in milliseconds (so
//! `temporal_ordered` keeps the order of events within a second), field mappings per [`Source`]
//! (the `fields` module documents the lookup order and the case-folding decision), source
//! recognition, and reading log files for [`hunt`].
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod engine;
mod fields;
mod hunt;
mod paths;
mod rules;
mod source;

pub use engine::{Engine, Match};
pub use hunt::{
    EventPointer, Hit, HuntProgress, HuntReport, MAX_JSON_DEPTH, STDIN_PATH, hunt,
    hunt_with_progress, input_name,
};
pub use rules::{LoadProblem, RuleSet};
pub use source::Source;
