//! JWT-SVID issuance and verification, including hand-crafted hostile tokens.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::json;
use tenet_identity::{
    BundleSet, CertificateAuthority, JWT_KEY_FILE, JwtError, TrustBundle, verify_jwt_svid,
};

use crate::common::{T, id, td};

const API: &str = "spiffe://prod.example.test/ns/payments/sa/api";

struct Fixture {
    ca: CertificateAuthority,
    bundles: BundleSet,
    /// The CA's JWT signing key, read back from disk to forge tokens with.
    signing_key: EcdsaKeyPair,
}

fn fixture() -> Fixture {
    let ca = CertificateAuthority::generate(&td("prod.example.test"), T).unwrap();
    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();
    let pem = std::fs::read(dir.path().join(JWT_KEY_FILE)).unwrap();
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
    let signing_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der()).unwrap();
    let bundles = [ca.bundle()].into_iter().collect();
    Fixture {
        ca,
        bundles,
        signing_key,
    }
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A compact JWS over arbitrary header and claims JSON, signed ES256 with `key`.
fn forge(header: &str, claims: &serde_json::Value, key: &EcdsaKeyPair) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), b64(claims));
    let sig = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn claims(exp_offset: i64) -> serde_json::Value {
    let now = T.unix_timestamp();
    json!({"sub": API, "aud": ["payments"], "exp": now + exp_offset, "iat": now})
}

#[test]
fn jwt_svid_round_trip() {
    let f = fixture();
    let aud = vec!["payments".to_owned(), "ledger".to_owned()];
    let token =
        f.ca.issue_jwt_svid(&id(API), &aud, Duration::from_secs(300), T)
            .unwrap();

    // The header is exactly alg, kid, typ.
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "ES256", "kid": f.ca.jwt_key_id(), "typ": "JWT"})
    );

    let got = verify_jwt_svid(&token, &f.bundles, "ledger", T).unwrap();
    assert_eq!(got.spiffe_id, id(API));
    assert_eq!(got.audience, aud);
    assert_eq!(got.expires_at, T + time::Duration::seconds(300));
    assert_eq!(got.issued_at, Some(T));
    assert_eq!(got.key_id, f.ca.jwt_key_id());

    // Through a JWKS round trip of the bundle, too.
    let jwks = f.ca.bundle().to_jwks();
    let reread: BundleSet =
        [TrustBundle::from_jwks(td("prod.example.test"), jwks.as_bytes()).unwrap()]
            .into_iter()
            .collect();
    verify_jwt_svid(&token, &reread, "payments", T).unwrap();
}

#[test]
fn jwt_svid_wrong_audience() {
    let f = fixture();
    let token =
        f.ca.issue_jwt_svid(&id(API), &["payments".into()], Duration::from_secs(60), T)
            .unwrap();
    assert!(matches!(
        verify_jwt_svid(&token, &f.bundles, "Payments", T),
        Err(JwtError::AudienceMismatch { .. })
    ));
}

#[test]
fn jwt_svid_expiry() {
    let f = fixture();
    let token =
        f.ca.issue_jwt_svid(&id(API), &["a".into()], Duration::from_secs(60), T)
            .unwrap();
    let last_valid = T + time::Duration::seconds(59);
    assert!(verify_jwt_svid(&token, &f.bundles, "a", last_valid).is_ok());
    let at_exp = T + time::Duration::seconds(60);
    assert!(matches!(
        verify_jwt_svid(&token, &f.bundles, "a", at_exp),
        Err(JwtError::Expired { .. })
    ));
}

#[test]
fn jwt_svid_other_key() {
    let f = fixture();
    // Another CA of the same trust domain: its kid is unknown here.
    let other = CertificateAuthority::generate(&td("prod.example.test"), T).unwrap();
    let token = other
        .issue_jwt_svid(&id(API), &["a".into()], Duration::from_secs(60), T)
        .unwrap();
    assert!(matches!(
        verify_jwt_svid(&token, &f.bundles, "a", T),
        Err(JwtError::UnknownKey { .. })
    ));

    // A key claiming our kid: the signature does not verify.
    let stranger = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let header = json!({"alg": "ES256", "kid": f.ca.jwt_key_id(), "typ": "JWT"}).to_string();
    let forged = forge(&header, &claims(60), &stranger);
    assert!(matches!(
        verify_jwt_svid(&forged, &f.bundles, "payments", T),
        Err(JwtError::BadSignature)
    ));

    // A subject in a trust domain without a bundle.
    let elsewhere =
        json!({"sub": "spiffe://other.test/w", "aud": "payments", "exp": T.unix_timestamp() + 60});
    let token = forge(&header, &elsewhere, &f.signing_key);
    assert!(matches!(
        verify_jwt_svid(&token, &f.bundles, "payments", T),
        Err(JwtError::UnknownTrustDomain(_))
    ));
}

#[test]
fn jwt_svid_alg_none_and_other_algorithms() {
    let f = fixture();
    let kid = f.ca.jwt_key_id();
    let body = b64(&claims(60));
    for alg in ["none", "None", "HS256", "RS256", "ES384", "EdDSA"] {
        let header = b64(&json!({"alg": alg, "kid": kid, "typ": "JWT"}));
        for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
            let err = verify_jwt_svid(&token, &f.bundles, "payments", T).unwrap_err();
            assert!(
                matches!(&err, JwtError::UnsupportedAlgorithm { alg: a } if a == alg),
                "{alg}: {err}"
            );
        }
    }
}

#[test]
fn jwt_svid_header_is_strict() {
    let f = fixture();
    let kid = f.ca.jwt_key_id();
    let signed = |header: String| forge(&header, &claims(60), &f.signing_key);

    // The control, forged with the real key: accepted.
    let ok = signed(json!({"alg": "ES256", "kid": kid, "typ": "JWT"}).to_string());
    verify_jwt_svid(&ok, &f.bundles, "payments", T).unwrap();
    let ok = signed(json!({"alg": "ES256", "kid": kid}).to_string());
    verify_jwt_svid(&ok, &f.bundles, "payments", T).unwrap();

    let rejected = [
        json!({"alg": "ES256", "kid": kid, "typ": "JWT", "jku": "https://evil.test/jwks"})
            .to_string(),
        json!({"alg": "ES256", "kid": kid, "typ": "JWT", "x5u": "https://evil.test/c"}).to_string(),
        json!({"alg": "ES256", "kid": kid, "typ": "JWT", "crit": ["exp"]}).to_string(),
        json!({"alg": "ES256", "kid": kid, "typ": "JWT", "b64": false}).to_string(),
        json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}).to_string(),
        json!({"alg": "ES256", "typ": "JWT"}).to_string(),
        format!(r#"{{"alg":"ES256","kid":"{kid}","alg":"ES256"}}"#),
        "[]".to_owned(),
    ];
    for header in rejected {
        let err = verify_jwt_svid(&signed(header.clone()), &f.bundles, "payments", T).unwrap_err();
        assert!(matches!(err, JwtError::BadHeader { .. }), "{header}: {err}");
    }
}

#[test]
fn jwt_svid_claims_and_framing() {
    let f = fixture();
    let header = json!({"alg": "ES256", "kid": f.ca.jwt_key_id(), "typ": "JWT"}).to_string();
    let verify = |claims: serde_json::Value| {
        verify_jwt_svid(
            &forge(&header, &claims, &f.signing_key),
            &f.bundles,
            "payments",
            T,
        )
    };
    let exp = T.unix_timestamp() + 60;

    // aud as a single string; iat optional.
    assert!(verify(json!({"sub": API, "aud": "payments", "exp": exp})).is_ok());
    // Missing or mistyped claims.
    assert!(matches!(
        verify(json!({"aud": "payments", "exp": exp})),
        Err(JwtError::BadClaim { claim: "sub" })
    ));
    assert!(matches!(
        verify(json!({"sub": API, "exp": exp})),
        Err(JwtError::BadClaim { claim: "aud" })
    ));
    assert!(matches!(
        verify(json!({"sub": API, "aud": [], "exp": exp})),
        Err(JwtError::BadClaim { claim: "aud" })
    ));
    assert!(matches!(
        verify(json!({"sub": API, "aud": "payments"})),
        Err(JwtError::BadClaim { claim: "exp" })
    ));
    assert!(matches!(
        verify(json!({"sub": API, "aud": "payments", "exp": "soon"})),
        Err(JwtError::BadClaim { claim: "exp" })
    ));
    // The subject is parsed strictly, and must name a workload.
    let bad_sub = |sub: &str| verify(json!({"sub": sub, "aud": "payments", "exp": exp}));
    assert!(matches!(
        bad_sub("spiffe://prod.example.test/ns/payments/sa/%61dmin"),
        Err(JwtError::BadSubject { .. })
    ));
    assert!(matches!(
        bad_sub("spiffe://prod.example.test"),
        Err(JwtError::BadSubject { .. })
    ));

    // A tampered payload no longer matches the signature.
    let token =
        f.ca.issue_jwt_svid(&id(API), &["payments".into()], Duration::from_secs(60), T)
            .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("spiffe://prod.example.test/ns/payments/sa/admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert!(matches!(
        verify_jwt_svid(&tampered, &f.bundles, "payments", T),
        Err(JwtError::BadSignature)
    ));

    // Framing.
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        &format!("{token}."),
        &"a".repeat(20_000),
        "...",
    ] {
        assert!(
            matches!(
                verify_jwt_svid(junk, &f.bundles, "payments", T),
                Err(JwtError::Malformed { .. })
            ),
            "{junk:.40}"
        );
    }
}
