//! Field cases F008 (verification inputs taken from the token header) and F009 (audience and
//! token-kind binding), input by input, plus the ECDSA `r`/`s` range checks.

use std::sync::Arc;

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::bearer::{BearerPolicy, BearerVerifier, TokenKind};
use crate::config::JwsAlgorithm;
use crate::keys::{KeySet, VerificationKey};
use crate::test_keys::{self, b64, sign_es256, sign_rs256, signing_input, with_signature};
use crate::token::TokenError;

const T: i64 = 1_800_000_000;
const ISSUER: &str = "https://idp.example.test";

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T).unwrap()
}

fn reason(result: Result<crate::BearerClaims, TokenError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(e) => e.reason(),
    }
}

#[test]
fn f008_header_cannot_choose_algorithm_key_or_key_url() {
    let (keys, k1) = test_keys::rsa_set("k1");
    let attacker = test_keys::rsa_key("k1");
    let policy = BearerPolicy::new("tenet-proxy", TokenKind::Any).with_issuer(ISSUER);
    let proxy = BearerVerifier::new(Arc::new(keys), policy).unwrap();
    let payload = json!({"iss": ISSUER, "sub": "user-A", "aud": "tenet-proxy", "exp": T + 300});

    let hs256_header = json!({"alg": "HS256", "kid": "k1"});
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, k1.pem.as_bytes());
    let mac = hmac::sign(&mac_key, signing_input(&hs256_header, &payload).as_bytes());
    let inputs: [(u8, String, &str); 8] = [
        (
            1,
            with_signature(&json!({"alg": "none", "typ": "JWT"}), &payload, b""),
            "unsupported_algorithm",
        ),
        (
            2,
            with_signature(&hs256_header, &payload, mac.as_ref()),
            "unsupported_algorithm",
        ),
        (
            3,
            sign_rs256(
                &attacker.pair,
                &json!({"alg": "RS256", "kid": "../../../../dev/null"}),
                &payload,
            ),
            "unknown_kid",
        ),
        (
            4,
            sign_rs256(
                &attacker.pair,
                &json!({"alg": "RS256", "kid": "x' UNION SELECT 'k"}),
                &payload,
            ),
            "unknown_kid",
        ),
        (
            5,
            sign_rs256(
                &attacker.pair,
                &json!({"alg": "RS256", "jwk": attacker.jwk}),
                &payload,
            ),
            "bad_signature",
        ),
        (
            6,
            sign_rs256(
                &attacker.pair,
                &json!({"alg": "RS256", "jku": "https://evil.example.net/jwks.json"}),
                &payload,
            ),
            "bad_signature",
        ),
        (
            7,
            with_signature(&json!({"alg": "ES256", "kid": "k1"}), &payload, &[0u8; 64]),
            "algorithm_mismatch",
        ),
        (
            8,
            sign_rs256(&k1.pair, &json!({"alg": "RS256", "kid": "k1"}), &payload),
            "accepted",
        ),
    ];
    for (number, token, expected) in inputs {
        assert_eq!(
            reason(proxy.verify(&token, now())),
            expected,
            "F008 input {number}"
        );
    }

    // The attacker's key, even under the right kid and embedded as `jwk`, never verifies.
    let forged = sign_rs256(
        &attacker.pair,
        &json!({"alg": "RS256", "kid": "k1", "jwk": attacker.jwk}),
        &payload,
    );
    assert_eq!(reason(proxy.verify(&forged, now())), "bad_signature");
}

/// P-256 group order n.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

#[test]
fn f008_ecdsa_r_and_s_outside_1_to_n_minus_1_are_rejected() {
    let e1 = test_keys::ec_key("e1");
    let jwks = json!({"keys": [e1.jwk]}).to_string();
    let keys = KeySet::from_jwks(jwks.as_bytes(), &[JwsAlgorithm::ES256]).unwrap();
    assert_eq!(keys.keys()[0].algorithm(), JwsAlgorithm::ES256);
    let policy = BearerPolicy::new("tenet-proxy", TokenKind::Any).with_issuer(ISSUER);
    let verifier = BearerVerifier::new(Arc::new(keys), policy).unwrap();
    let header = json!({"alg": "ES256", "kid": "e1"});
    let payload = json!({"iss": ISSUER, "sub": "user-A", "aud": "tenet-proxy", "exp": T + 300});

    let valid = sign_es256(&e1.pair, &header, &payload);
    assert_eq!(reason(verifier.verify(&valid, now())), "accepted");
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        valid.rsplit('.').next().unwrap(),
    )
    .unwrap();
    let (r, s) = signature.split_at(32);
    let join = |r: &[u8], s: &[u8]| [r, s].concat();
    let all_ones = [0xffu8; 32];
    let zero = [0u8; 32];
    let out_of_range = [
        ("r = s = 0", join(&zero, &zero)),
        ("r = 0", join(&zero, s)),
        ("s = 0", join(r, &zero)),
        ("r = n", join(&P256_N, s)),
        ("s = n", join(r, &P256_N)),
        ("r = 2^256 - 1", join(&all_ones, s)),
        ("s = 2^256 - 1", join(r, &all_ones)),
    ];
    for (label, bad) in out_of_range {
        let token = with_signature(&header, &payload, &bad);
        assert_eq!(
            reason(verifier.verify(&token, now())),
            "bad_signature",
            "{label}"
        );
    }
    let short = with_signature(&header, &payload, &signature[..63]);
    assert_eq!(reason(verifier.verify(&short, now())), "bad_signature");
}

#[test]
fn f009_audience_is_required_exact_and_token_kind_is_per_endpoint() {
    let (keys, k1) = test_keys::rsa_set("k1");
    let keys = Arc::new(keys);
    let proxy = BearerVerifier::new(
        Arc::clone(&keys),
        BearerPolicy::new("tenet-proxy", TokenKind::Any),
    )
    .unwrap();
    let admin_kind = TokenKind::TokenUse("user".to_owned());
    let admin = BearerVerifier::new(keys, BearerPolicy::new("tenet-admin", admin_kind)).unwrap();
    let sign =
        |payload: Value| sign_rs256(&k1.pair, &json!({"alg": "RS256", "kid": "k1"}), &payload);
    let id_token = json!({
        "iss": ISSUER, "sub": "user-A", "aud": "tenet-browser", "azp": "tenet-browser",
        "exp": T + 300, "iat": T, "nonce": "n-1"
    });

    let inputs = [
        (
            1,
            &proxy,
            json!({"sub": "user-A", "exp": T + 300}),
            "audience_missing",
        ),
        (
            2,
            &proxy,
            json!({"sub": "user-A", "aud": "billing-svc", "exp": T + 300}),
            "audience_mismatch",
        ),
        (
            3,
            &proxy,
            json!({"sub": "user-A", "aud": ["billing-svc", "tenet-proxy"], "exp": T + 300}),
            "accepted",
        ),
        (
            4,
            &proxy,
            json!({"sub": "user-A", "aud": "Tenet-Proxy", "exp": T + 300}),
            "audience_mismatch",
        ),
        (
            5,
            &admin,
            json!({"sub": "svc-reporter", "aud": "tenet-admin", "token_use": "service", "exp": T + 300}),
            "wrong_token_kind",
        ),
        (6, &proxy, id_token, "audience_mismatch"),
    ];
    for (number, verifier, payload, expected) in inputs {
        assert_eq!(
            reason(verifier.verify(&sign(payload), now())),
            expected,
            "F009 input {number}"
        );
    }

    // Controls: the admin API takes a user token for it, and not the proxy's token.
    let user = json!({"sub": "user-A", "aud": "tenet-admin", "token_use": "user", "exp": T + 300});
    assert_eq!(reason(admin.verify(&sign(user), now())), "accepted");
    let for_proxy = json!({"sub": "user-A", "aud": ["billing-svc", "tenet-proxy"], "exp": T + 300});
    assert_eq!(
        reason(admin.verify(&sign(for_proxy), now())),
        "wrong_token_kind"
    );
}

#[test]
fn bearer_checks_typ_issuer_times_and_header_form() {
    let (keys, k1) = test_keys::rsa_set("k1");
    let policy = BearerPolicy::new("api", TokenKind::Typ("at+jwt".into())).with_issuer(ISSUER);
    let verifier = BearerVerifier::new(Arc::new(keys), policy).unwrap();
    let at = json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"});
    let base = json!({"iss": ISSUER, "sub": "u", "aud": "api", "exp": T + 300});
    let with = |extra: Value| {
        let mut p = base.clone();
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let cases = [
        (at.clone(), base.clone(), "accepted"),
        (
            json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}),
            base.clone(),
            "wrong_token_kind",
        ),
        (
            json!({"alg": "RS256", "kid": "k1"}),
            base.clone(),
            "wrong_token_kind",
        ),
        (
            at.clone(),
            with(json!({"iss": "https://other.test"})),
            "issuer_mismatch",
        ),
        (at.clone(), with(json!({"exp": T - 31})), "expired"),
        (at.clone(), with(json!({"nbf": T + 31})), "not_yet_valid"),
        (at.clone(), with(json!({"exp": "soon"})), "invalid_claim"),
        (
            json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt", "crit": ["exp"]}),
            base.clone(),
            "critical_header",
        ),
    ];
    for (header, payload, expected) in cases {
        let token = sign_rs256(&k1.pair, &header, &payload);
        assert_eq!(
            reason(verifier.verify(&token, now())),
            expected,
            "{header} {payload}"
        );
    }
    let good = sign_rs256(&k1.pair, &at, &base);
    assert_eq!(
        reason(verifier.verify_header(&format!("Bearer {good}"), now())),
        "accepted"
    );
    assert_eq!(
        reason(verifier.verify_header(&format!("Basic {good}"), now())),
        "malformed"
    );
    assert_eq!(
        reason(verifier.verify(&format!("{good}.x"), now())),
        "malformed"
    );
    assert_eq!(reason(verifier.verify("", now())), "malformed");
}

#[test]
fn pem_keys_are_bound_to_their_algorithm() {
    let k1 = test_keys::rsa_key("k1");
    let key =
        VerificationKey::from_pem(Some("k1"), k1.pem.as_bytes(), JwsAlgorithm::RS256).unwrap();
    let set = KeySet::new(vec![key.clone(), key]);
    assert!(set.is_err(), "duplicate kid accepted");
    let key =
        VerificationKey::from_pem(Some("k1"), k1.pem.as_bytes(), JwsAlgorithm::PS256).unwrap();
    let verifier = BearerVerifier::new(
        Arc::new(KeySet::new(vec![key]).unwrap()),
        BearerPolicy::new("api", TokenKind::Any),
    )
    .unwrap();
    let payload = json!({"sub": "u", "aud": "api", "exp": T + 300});
    let rs256 = sign_rs256(&k1.pair, &json!({"alg": "RS256", "kid": "k1"}), &payload);
    assert_eq!(reason(verifier.verify(&rs256, now())), "algorithm_mismatch");
}

#[test]
fn jwks_keys_get_one_algorithm_and_unusable_keys_are_skipped() {
    let rsa = test_keys::rsa_key("r1");
    let mut no_alg = rsa.jwk.clone();
    no_alg["kid"] = json!("r2");
    no_alg.as_object_mut().unwrap().remove("alg");
    let jwks = json!({"keys": [
        rsa.jwk,
        no_alg,
        {"kty": "oct", "kid": "h1", "k": b64(b"secret-secret-secret-secret-1234"), "alg": "HS256"},
        {"kty": "RSA", "kid": "small", "n": b64(&[0xc5; 128]), "e": "AQAB"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&[0xc5; 256]), "e": "AQAB"},
        {"kty": "EC", "kid": "wrong-alg", "crv": "P-256", "alg": "RS256",
         "x": b64(&[1; 32]), "y": b64(&[2; 32])},
        {"kty": "RSA", "kid": "r1", "n": b64(&[0xc5; 256]), "e": "AQAB"},
    ]});
    let set = KeySet::from_jwks(jwks.to_string().as_bytes(), &[JwsAlgorithm::RS256]).unwrap();
    let kept: Vec<_> = set
        .keys()
        .iter()
        .map(|k| (k.kid().unwrap(), k.algorithm()))
        .collect();
    assert_eq!(
        kept,
        [("r1", JwsAlgorithm::RS256), ("r2", JwsAlgorithm::RS256)]
    );

    let none_usable = json!({"keys": [{"kty": "oct", "k": "AAAA"}]}).to_string();
    assert!(KeySet::from_jwks(none_usable.as_bytes(), &[JwsAlgorithm::RS256]).is_err());
    assert!(KeySet::from_jwks(b"[]", &[JwsAlgorithm::RS256]).is_err());
}
