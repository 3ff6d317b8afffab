//! `tenet assess` and `tenet score`: reading configuration files, folders and database URLs,
//! recognising each input by its content, running the analyses of `tenet-iam`, `tenet-k8s`,
//! `tenet-secgroup` and `tenet-pgaudit` on them, and rendering one report (text, JSON,
//! SARIF 2.1.0); and the zero-trust maturity score computed from what Tenet observed.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod inputs;
pub mod lines;
pub mod report;
mod run;
pub mod score;
pub mod strict;

pub use report::{Format, Report};
pub use run::{Options, Progress, assess, unusable};
pub use score::{Facts, Scorecard, Stage, score};
/// Reads a time as IAM conditions write it (RFC 3339, a date, or seconds since the epoch)
/// into seconds since the epoch, for [`Options::now`].
pub use tenet_iam::condition::parse_date as parse_time;
