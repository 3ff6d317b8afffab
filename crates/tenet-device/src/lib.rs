//! Devices for Tenet: enrolment with a device certificate from Tenet's CA, signed posture
//! reports, local posture collection on Linux, MDM exports as a second source, and the
//! latest posture with its age for policy.
//!
//! Like the identity crate, everything takes the current time as a parameter; file I/O is
//! limited to the explicit `load`/`save` functions and [`collect_report`], which reads under
//! the root it is given.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cert;
mod collect;
mod error;
mod files;
mod key;
mod mdm;
mod posture;
mod registry;
mod report;
mod requirements;
mod store;

pub use collect::{
    CollectOptions, KNOWN_EDR_PROCESSES, collect_report, endpoint_protection, firewall_active,
    nft_ruleset, os_release, root_disk_encrypted,
};
pub use error::{EnrolError, FileError, KeyError, MdmError, ReportError};
pub use key::DeviceKey;
pub use mdm::{MdmImport, MdmMatch, RowProblem, import_mdm};
pub use posture::{Posture, PostureSource, tri_state};
pub use registry::{
    DEFAULT_DEVICE_CERT_TTL, DEFAULT_TOKEN_TTL, DEVICE_PATH_PREFIX, DeviceRecord, DeviceRegistry,
    Enrolment, EnrolmentRequest, IssuedToken, TOKEN_PREFIX, device_id_of, device_spiffe_id,
};
pub use report::{
    DEFAULT_REPORT_MAX_AGE, DEFAULT_REPORT_SKEW, MAX_REPORT_LEN, PostureReport, REPORT_TYPE,
    ReportVerifier, VerifiedReport, sign_report,
};
pub use requirements::{
    FailedCheck, NO_POSTURE_AGE, PostureFacts, PostureRequirements, PostureVerdict,
    compare_versions,
};
pub use store::{MdmApplied, MergedPosture, PostureStore};
