//! Field cases from ../shared/cases/certificates-spiffe.md: F013, F015, F017.

use std::sync::Arc;

use rcgen::{DnType, SanType};
use tenet_identity::{
    CertRole, NotSvidReason, SpiffeId, SpiffeIdErrorKind, SvidError, TrustBundle, Usage,
    client_cert_verifier, svid_error_of,
};

use crate::common::{T, TestPki, hours, id, verifier_for};
use crate::mtls::{client_config_at, handshake_at, server_config_at};

const API: &str = "spiffe://prod.example.test/ns/payments/sa/api";
const ADMIN: &str = "spiffe://prod.example.test/ns/payments/sa/admin";

/// The F013 spellings that must be rejected at parse, with the reason each is rejected.
/// A predicate over the reason a spelling is rejected.
type Reason = fn(&SpiffeIdErrorKind) -> bool;

fn f013_rejected() -> Vec<(&'static str, Reason)> {
    use SpiffeIdErrorKind as K;
    vec![
        ("spiffe://prod.example.test/ns/payments/sa/%61dmin", |k| {
            matches!(k, K::BadPathChar { found: '%', .. })
        }),
        (
            "spiffe://prod.example.test/ns/payments/sa/api/../admin",
            |k| matches!(k, K::DotSegment),
        ),
        ("spiffe://prod.example.test/ns/payments/./sa/api", |k| {
            matches!(k, K::DotSegment)
        }),
        ("spiffe://prod.example.test/ns//payments/sa/api", |k| {
            matches!(k, K::EmptySegment)
        }),
        ("spiffe://prod.example.test/ns/payments/sa/api/", |k| {
            matches!(k, K::TrailingSlash)
        }),
    ]
}

#[test]
fn f013_spiffe_id_path_canonical_form_parse() {
    for (input, reason) in f013_rejected() {
        let err = SpiffeId::parse(input).unwrap_err();
        assert!(reason(err.kind()), "{input}: {err}");
        assert_eq!(err.input(), input, "the error names the input as written");
    }
    // Case-sensitive: a different identity, not a spelling of `api`.
    let upper = SpiffeId::parse("spiffe://prod.example.test/ns/payments/sa/API").unwrap();
    assert_ne!(upper, id(API));
    assert_ne!(upper, id(ADMIN));
    assert_eq!(upper.path(), "/ns/payments/sa/API", "never rewritten");
    assert_eq!(SpiffeId::parse(API).unwrap(), id(API));
}

#[test]
fn f013_spiffe_id_path_canonical_form_in_certificates() {
    let pki = TestPki::new("prod.example.test");
    let verifier = verifier_for([pki.bundle()], 0);
    for (uri, reason) in f013_rejected() {
        let (chain, _) = pki.svid(uri);
        let err = verifier
            .verify(&chain[0], &chain[1..], Usage::Client, T)
            .unwrap_err();
        match &err {
            SvidError::NotSvid(NotSvidReason::InvalidId(e)) => {
                assert!(reason(e.kind()), "{uri}: {err}")
            }
            other => panic!("{uri}: want an invalid-id rejection, got {other}"),
        }
    }
    let (chain, _) = pki.svid("spiffe://prod.example.test/ns/payments/sa/API");
    let peer = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap();
    assert_ne!(peer.id, id(ADMIN));
    assert_ne!(peer.id, id(API));
    let (chain, _) = pki.svid(API);
    assert_eq!(
        verifier
            .verify(&chain[0], &chain[1..], Usage::Client, T)
            .unwrap()
            .id,
        id(API)
    );
}

#[test]
fn f015_exactly_one_uri_san() {
    let pki = TestPki::new("prod.example.test");
    let verifier = verifier_for([pki.bundle()], 0);
    let verify = |params: &rcgen::CertificateParams| {
        let (chain, _) = pki.leaf(params);
        verifier.verify(&chain[0], &chain[1..], Usage::Client, T)
    };

    // 1: two SPIFFE URIs.
    let mut p = TestPki::leaf_params(API);
    p.subject_alt_names
        .push(SanType::URI(ADMIN.try_into().unwrap()));
    assert!(matches!(
        verify(&p),
        Err(SvidError::NotSvid(NotSvidReason::MultipleUriSans {
            count: 2
        }))
    ));

    // 2: a SPIFFE URI and an https URI.
    let mut p = TestPki::leaf_params(API);
    p.subject_alt_names.push(SanType::URI(
        "https://api.example.test/".try_into().unwrap(),
    ));
    assert!(matches!(
        verify(&p),
        Err(SvidError::NotSvid(NotSvidReason::MultipleUriSans {
            count: 2
        }))
    ));

    // 3: a SPIFFE URI and a DNS name: accepted, identity from the URI only.
    let mut p = TestPki::leaf_params(API);
    p.subject_alt_names
        .push(SanType::DnsName("api.payments.svc".try_into().unwrap()));
    assert_eq!(verify(&p).unwrap().id, id(API));

    // 4: no URI SAN, the SPIFFE ID only in the subject CN: never used.
    let mut p = TestPki::leaf_params(API);
    p.subject_alt_names = vec![SanType::DnsName("api.payments.svc".try_into().unwrap())];
    p.distinguished_name.push(DnType::CommonName, ADMIN);
    assert!(matches!(
        verify(&p),
        Err(SvidError::NotSvid(NotSvidReason::NoUriSan))
    ));
    p.subject_alt_names.clear();
    assert!(matches!(
        verify(&p),
        Err(SvidError::NotSvid(NotSvidReason::NoUriSan))
    ));
}

#[test]
fn f015_rejected_in_the_handshake() {
    let pki = TestPki::new("prod.example.test");
    let verifier = Arc::new(verifier_for([pki.bundle()], 0));
    let (server_chain, server_key) = pki.svid("spiffe://prod.example.test/gateway");
    let mut p = TestPki::leaf_params(API);
    p.subject_alt_names
        .push(SanType::URI(ADMIN.try_into().unwrap()));
    let (client_chain, client_key) = pki.leaf(&p);

    let server = server_config_at(
        client_cert_verifier(verifier.clone(), true),
        server_chain,
        server_key,
        T,
    );
    let client = client_config_at(verifier, None, client_chain, client_key, T);
    let err = handshake_at(server, client).unwrap_err();
    let reason = svid_error_of(&err).expect("the svid error travels inside the rustls error");
    assert!(matches!(
        reason,
        SvidError::NotSvid(NotSvidReason::MultipleUriSans { count: 2 })
    ));
}

/// The F017 cases against one chain each; skew 60 s.
#[test]
fn f017_validity_window() {
    let pki = TestPki::new("prod.example.test");
    let verifier = verifier_for([pki.bundle()], 60);
    let leaf = |from: time::OffsetDateTime, to: time::OffsetDateTime| {
        let mut p = TestPki::leaf_params(API);
        p.not_before = from;
        p.not_after = to;
        pki.leaf(&p).0
    };
    let secs = time::Duration::seconds;

    // 1: leaf expired an hour ago.
    let chain = leaf(T - hours(2), T - hours(1));
    let err = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SvidError::Expired {
                role: CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );

    // 2: leaf not valid for another hour.
    let chain = leaf(T + hours(1), T + hours(2));
    let err = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SvidError::NotYetValid {
                role: CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );

    // 3: leaf valid, intermediate expired an hour ago.
    let stale = TestPki::with_intermediate_window("prod.example.test", T - hours(48), T - hours(1));
    let chain = stale.svid(API).0;
    let err = verifier_for([stale.bundle()], 60)
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SvidError::Expired {
                role: CertRole::Chain,
                ..
            }
        ),
        "{err}"
    );

    // 5: leaf expired 30 s ago: accepted only thanks to the skew, and flagged.
    let chain = leaf(T - hours(1), T - secs(30));
    let peer = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap();
    assert!(peer.within_skew);
    let strict = verifier_for([pki.bundle()], 0);
    assert!(matches!(
        strict.verify(&chain[0], &chain[1..], Usage::Client, T),
        Err(SvidError::Expired { .. })
    ));

    // 6: control.
    let chain = leaf(T - hours(1), T + hours(1));
    let peer = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap();
    assert!(!peer.within_skew);
    assert_eq!(peer.id, id(API));
}

/// F017-4: a leaf that is itself a trust anchor ("pinned") still has its time checked.
#[test]
fn f017_pinned_leaf_time_is_checked() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = TestPki::leaf_params(API);
    p.not_before = T - hours(2);
    p.not_after = T - hours(1);
    p.use_authority_key_identifier_extension = false;
    let leaf = p.self_signed(&key).unwrap().der().clone();
    let mut bundle = TrustBundle::new(crate::common::td("prod.example.test"));
    bundle.add_x509_authority(leaf.clone()).unwrap();
    let verifier = verifier_for([bundle], 60);

    let err = verifier.verify(&leaf, &[], Usage::Client, T).unwrap_err();
    assert!(
        matches!(
            err,
            SvidError::Expired {
                role: CertRole::Leaf,
                ..
            }
        ),
        "{err}"
    );
    // While it was valid, the same pinned leaf verified: only time rejects it above.
    let during = T - hours(1) - time::Duration::minutes(30);
    assert_eq!(
        verifier
            .verify(&leaf, &[], Usage::Client, during)
            .unwrap()
            .id,
        id(API)
    );
}

/// F017 through a real handshake: the server's clock is T; expired is refused with the
/// standard alert, within-skew is let through.
#[test]
fn f017_validity_window_in_the_handshake() {
    let pki = TestPki::new("prod.example.test");
    let verifier = Arc::new(verifier_for([pki.bundle()], 60));
    let (server_chain, server_key) = pki.svid("spiffe://prod.example.test/gateway");
    let run = |to: time::OffsetDateTime| {
        let mut p = TestPki::leaf_params(API);
        p.not_before = T - hours(2);
        p.not_after = to;
        let (chain, key) = pki.leaf(&p);
        let server = server_config_at(
            client_cert_verifier(verifier.clone(), true),
            server_chain.clone(),
            server_key.clone_key(),
            T,
        );
        handshake_at(
            server,
            client_config_at(verifier.clone(), None, chain, key, T),
        )
    };

    let err = run(T - hours(1)).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
        ),
        "{err}"
    );
    let peer = run(T - time::Duration::seconds(30)).unwrap();
    assert_eq!(peer, Some(id(API)));
}
