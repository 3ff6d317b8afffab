//! The request as the PEP sees it: one canonical path, host and header set, so the policy
//! decides on exactly the form that is forwarded.
//!
//! Every function is pure (no I/O, no clock). Ambiguous input is rejected with a typed
//! [`Rejection`] (status 400, or 421 when the request reached the wrong TLS connection),
//! never repaired. A gateway applies, in order: [`check_framing`], [`check_single_valued`],
//! [`request_host`] and [`check_sni`], [`normalize_target`]; it authorises the resulting
//! host and path, then calls [`prepare_upstream_headers`] and adds its own identity and
//! forwarding fields before forwarding [`NormalizedPath::path_and_query`].
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod framing;
mod headers;
mod host;
mod rejection;
mod target;

pub use framing::check_framing;
pub use headers::{
    CLIENT_CLAIM_HEADERS, GATEWAY_ONLY_PREFIXES, HOP_BY_HOP_HEADERS, SINGLE_VALUED_HEADERS,
    check_single_valued, prepare_upstream_headers,
};
pub use host::{CanonicalHost, HostKind, canonical_host, canonical_sni, check_sni, request_host};
pub use rejection::{HostProblem, Rejection};
pub use target::{NormalizedPath, TargetRules, normalize_target, normalize_target_with};
