//! SvidVerifier rules beyond the field cases: leaf shape, EKU, chain completeness, input.

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use tenet_identity::{NotSvidReason, SvidError, Usage, peer_spiffe_id};
use time::macros::datetime;

use crate::common::{T, TestPki, id, verifier_for};

const API: &str = "spiffe://prod.example.test/ns/payments/sa/api";

fn verify_with(
    edit: impl FnOnce(&mut rcgen::CertificateParams),
    usage: Usage,
) -> Result<tenet_identity::VerifiedPeer, SvidError> {
    let pki = TestPki::new("prod.example.test");
    let mut params = TestPki::leaf_params(API);
    edit(&mut params);
    let (chain, _) = pki.leaf(&params);
    verifier_for([pki.bundle()], 0).verify(&chain[0], &chain[1..], usage, T)
}

fn not_svid(result: Result<tenet_identity::VerifiedPeer, SvidError>) -> NotSvidReason {
    match result {
        Err(SvidError::NotSvid(reason)) => reason,
        other => panic!("want a not-an-svid error, got {other:?}"),
    }
}

#[test]
fn leaf_shape_rules() {
    let reason = not_svid(verify_with(
        |p| {
            p.subject_alt_names = vec![rcgen::SanType::URI(
                "spiffe://prod.example.test".try_into().unwrap(),
            )]
        },
        Usage::Client,
    ));
    assert!(matches!(reason, NotSvidReason::IdWithoutPath { .. }));

    let reason = not_svid(verify_with(
        |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
        Usage::Client,
    ));
    assert_eq!(reason, NotSvidReason::LeafIsCa);

    let reason = not_svid(verify_with(
        |p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment],
        Usage::Client,
    ));
    assert_eq!(reason, NotSvidReason::MissingDigitalSignature);
    let reason = not_svid(verify_with(|p| p.key_usages.clear(), Usage::Client));
    assert_eq!(reason, NotSvidReason::MissingDigitalSignature);

    let reason = not_svid(verify_with(
        |p| p.key_usages.push(KeyUsagePurpose::KeyCertSign),
        Usage::Client,
    ));
    assert_eq!(reason, NotSvidReason::LeafKeyCertSign);
    let reason = not_svid(verify_with(
        |p| p.key_usages.push(KeyUsagePurpose::CrlSign),
        Usage::Client,
    ));
    assert_eq!(reason, NotSvidReason::LeafCrlSign);

    // keyAgreement next to digitalSignature is allowed by the spec.
    assert!(
        verify_with(
            |p| p.key_usages.push(KeyUsagePurpose::KeyAgreement),
            Usage::Client
        )
        .is_ok()
    );
}

#[test]
fn extended_key_usage_per_side() {
    let server_only = |p: &mut rcgen::CertificateParams| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    };
    assert!(verify_with(server_only, Usage::Server).is_ok());
    assert!(matches!(
        verify_with(server_only, Usage::Client),
        Err(SvidError::WrongUsage { usage: "client" })
    ));
    // No EKU extension: usable both ways (the SPIFFE spec makes EKU optional).
    for usage in [Usage::Client, Usage::Server] {
        assert!(verify_with(|p| p.extended_key_usages.clear(), usage).is_ok());
    }
}

#[test]
fn chain_completeness_and_input() {
    let pki = TestPki::new("prod.example.test");
    let verifier = verifier_for([pki.bundle()], 0);
    let (chain, _) = pki.svid(API);
    // Without the intermediate, no path to the root.
    assert!(matches!(
        verifier.verify(&chain[0], &[], Usage::Client, T),
        Err(SvidError::UntrustedChain { .. })
    ));
    // Garbage and truncated DER.
    let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(matches!(
        verifier.verify(&junk, &[], Usage::Client, T),
        Err(SvidError::MalformedCertificate { index: 0, .. })
    ));
    let truncated = CertificateDer::from(chain[0][..chain[0].len() - 1].to_vec());
    assert!(
        verifier
            .verify(&truncated, &chain[1..], Usage::Client, T)
            .is_err()
    );
    let mut trailing = chain[0].to_vec();
    trailing.push(0);
    assert!(matches!(
        verifier.verify(
            &CertificateDer::from(trailing),
            &chain[1..],
            Usage::Client,
            T
        ),
        Err(SvidError::MalformedCertificate { .. })
    ));
    // A time before the epoch cannot be a certificate time.
    let (old_chain, _) = pki.leaf(&{
        let mut p = TestPki::leaf_params(API);
        p.not_before = datetime!(1960-01-01 0:00 UTC);
        p
    });
    assert!(
        verifier
            .verify(
                &old_chain[0],
                &old_chain[1..],
                Usage::Client,
                datetime!(1969-12-31 0:00 UTC)
            )
            .is_err()
    );
    // peer_spiffe_id applies the URI SAN rules only.
    assert_eq!(peer_spiffe_id(&chain[0]).unwrap(), id(API));
}

#[test]
fn empty_bundle_trusts_nothing() {
    let pki = TestPki::new("prod.example.test");
    let empty = tenet_identity::TrustBundle::new(crate::common::td("prod.example.test"));
    let (chain, _) = pki.svid(API);
    let err = verifier_for([empty], 0)
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap_err();
    assert!(matches!(err, SvidError::UntrustedChain { .. }), "{err}");
    assert!(err.to_string().contains("no x509 authorities"), "{err}");
}
