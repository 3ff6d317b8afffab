//! X.509-SVID issuance throughput on one core: verify a PKCS#10 CSR, sign the SVID.
//!
//! Run: `cargo bench -p tenet-identity --bench issue` (`-- --quick` for a short run). The peer,
//! pyca/cryptography doing the same work, is `bench/peers/issue_pyca.py`; `bench/run.sh` runs
//! both pinned to the same core.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use tenet_identity::{CertificateAuthority, SpiffeId, TrustDomain};
use time::OffsetDateTime;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let now = OffsetDateTime::now_utc();
    let td = TrustDomain::parse("example.org").unwrap();
    let ca = CertificateAuthority::generate(&td, now).unwrap();

    // CSRs are made before the clock starts: only verification and signing are measured.
    let csrs: Vec<(Vec<u8>, SpiffeId)> = (0..512)
        .map(|i| {
            let id = SpiffeId::parse(&format!("spiffe://example.org/ns/bench/sa/w{i}")).unwrap();
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = CertificateParams::default();
            params.subject_alt_names = vec![SanType::URI(id.as_str().try_into().unwrap())];
            (params.serialize_request(&key).unwrap().der().to_vec(), id)
        })
        .collect();

    let ttl = Duration::from_secs(3600);
    let start = Instant::now();
    let mut issued = 0u64;
    while start.elapsed() < budget {
        for (csr, id) in &csrs {
            black_box(ca.sign_csr(black_box(csr), id, ttl, now).unwrap());
        }
        issued += csrs.len() as u64;
    }
    let per_sec = issued as f64 / start.elapsed().as_secs_f64();
    println!(
        "tenet sign_csr (verify CSR + sign SVID): {per_sec:.0}/s on one thread ({issued} issued)"
    );
}
