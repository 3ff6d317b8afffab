//! Workload identity for Tenet: SPIFFE IDs, the CA, X.509- and JWT-SVIDs, trust bundles and
//! peer verification (including rustls verifiers).
//!
//! Everything here takes the current time as a parameter and does no I/O except the
//! explicit file functions ([`CertificateAuthority::save`], [`CertificateAuthority::load`],
//! [`X509Svid::write_files`]). Key generation and serial numbers use the system RNG.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod bundle;
mod ca;
mod error;
mod files;
mod jwt;
mod memo;
mod pem;
mod spiffe_id;
mod svid;
mod verify;

pub use bundle::{BundleSet, EcCurve, JwtAuthority, PublicKeyJwk, TrustBundle};
pub use ca::{
    BACKDATE, CertificateAuthority, DEFAULT_JWT_SVID_TTL, DEFAULT_X509_SVID_TTL,
    INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, INTERMEDIATE_TTL, JWT_KEY_FILE, ROOT_CERT_FILE,
    ROOT_KEY_FILE, ROOT_TTL,
};
pub use error::{
    BundleError, CaError, CertRole, JwtError, NotSvidReason, ParseTarget, SpiffeIdError,
    SpiffeIdErrorKind, SvidError,
};
pub use jwt::{JwtSvidClaims, MAX_TOKEN_LEN, verify_jwt_svid};
pub use spiffe_id::{MAX_SPIFFE_ID_LEN, MAX_TRUST_DOMAIN_LEN, SpiffeId, TrustDomain};
pub use svid::{BUNDLE_FILE, SVID_CHAIN_FILE, SVID_KEY_FILE, X509Svid};
pub use verify::{
    SvidVerifier, Usage, VerifiedPeer, client_cert_verifier, peer_identity, peer_spiffe_id,
    server_cert_verifier, svid_error_of, to_rustls_error,
};
