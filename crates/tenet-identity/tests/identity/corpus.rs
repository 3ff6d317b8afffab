//! go-spiffe v2.8.1 test data (../shared/corpus/go-spiffe): SPIFFE ID and trust domain
//! parsing, X509-SVID loading, and bundle files. Fails when the corpus is missing.

use std::path::PathBuf;

use serde_json::Value;
use tenet_identity::{
    BundleError, NotSvidReason, SpiffeId, SpiffeIdError, SpiffeIdErrorKind, SvidError, TrustBundle,
    TrustDomain, X509Svid,
};

use crate::common::td;

fn corpus(rel: &str) -> PathBuf {
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/go-spiffe"
    );
    let path = PathBuf::from(root).join(rel);
    assert!(path.exists(), "corpus file {} is missing", path.display());
    path
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(corpus(rel)).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&read("spiffe-expected.json")).unwrap()
}

/// Maps go-spiffe's error wording to our error kinds (the corpus scores outcome + category).
fn id_error_matches(expected: &str, kind: &SpiffeIdErrorKind) -> bool {
    use SpiffeIdErrorKind as K;
    match expected {
        "cannot be empty" => matches!(kind, K::Empty),
        "scheme is missing or invalid" => matches!(kind, K::BadScheme),
        "trust domain is missing" => matches!(kind, K::MissingTrustDomain),
        "path cannot have a trailing slash" => matches!(kind, K::TrailingSlash),
        "path cannot contain empty segments" => matches!(kind, K::EmptySegment),
        "path cannot contain dot segments" => matches!(kind, K::DotSegment),
        e if e.starts_with("trust domain characters are limited") => {
            matches!(kind, K::BadTrustDomainChar { .. })
        }
        e if e.starts_with("path segment characters are limited") => {
            matches!(kind, K::BadPathChar { .. })
        }
        other => panic!("unmapped go-spiffe error {other:?}"),
    }
}

fn check_id_case(case: &Value) -> Result<(), String> {
    let input = case["input"].as_str().unwrap();
    let api = case["api"].as_str().unwrap();
    let valid = case["valid"].as_bool().unwrap();
    let (result, path): (Result<TrustDomain, SpiffeIdError>, Option<String>) = match api {
        "parse_spiffe_id" => match SpiffeId::parse(input) {
            Ok(id) => (Ok(id.trust_domain().clone()), Some(id.path().to_owned())),
            Err(e) => (Err(e), None),
        },
        "parse_trust_domain" => {
            let result = TrustDomain::from_name_or_id(input);
            // The strict name parser must agree on inputs that are not IDs.
            if !input.contains(":/") && result.is_ok() != TrustDomain::parse(input).is_ok() {
                return Err(format!("{api} {input:?}: strict parser disagrees"));
            }
            (result, None)
        }
        other => panic!("unknown api {other}"),
    };
    match (valid, result) {
        (true, Ok(got_td)) => {
            let want_td = case["expected_trust_domain"].as_str().unwrap();
            if got_td.as_str() != want_td {
                return Err(format!(
                    "{input:?}: trust domain {got_td:?}, want {want_td:?}"
                ));
            }
            if let (Some(want), Some(got)) = (case["expected_path"].as_str(), path)
                && want != got
            {
                return Err(format!("{input:?}: path {got:?}, want {want:?}"));
            }
            Ok(())
        }
        (false, Err(e)) => {
            let want = case["expected_error_contains"].as_str().unwrap();
            if id_error_matches(want, e.kind()) {
                Ok(())
            } else {
                Err(format!("{input:?}: error {e}, want {want:?}"))
            }
        }
        (true, Err(e)) => Err(format!("{api} {input:?} rejected: {e}")),
        (false, Ok(_)) => Err(format!("{api} {input:?} accepted, want rejection")),
    }
}

#[test]
fn go_spiffe_spiffe_ids() {
    let doc = expected();
    let cases = doc["spiffe_id_cases"].as_array().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_id_case(c).err())
        .collect();
    let passed = cases.len() - failures.len();
    println!("go-spiffe spiffe ids: {passed}/{} passed", cases.len());
    assert!(failures.is_empty(), "failures: {failures:#?}");
    assert!(passed >= 840, "floor: 840 cases");
}

fn svid_error_matches(expected: &str, e: &SvidError) -> bool {
    use NotSvidReason as R;
    let not_svid = |r: &dyn Fn(&R) -> bool| matches!(e, SvidError::NotSvid(reason) if r(reason));
    if expected.contains("certificate validation failed: no certificates found") {
        matches!(e, SvidError::NoCertificates)
    } else if expected.contains("no private key found") {
        matches!(e, SvidError::NoPrivateKey)
    } else if expected.contains("cannot parse PEM encoded private key: no PEM blocks") {
        matches!(e, SvidError::KeyPem { .. })
    } else if expected.contains("cannot parse PEM encoded certificate: no PEM blocks") {
        matches!(e, SvidError::CertificatePem { .. })
    } else if expected.contains("cannot parse PEM encoded private key: asn1") {
        matches!(e, SvidError::MalformedKey)
    } else if expected.contains("x509: malformed certificate") {
        matches!(e, SvidError::MalformedCertificate { index: 0, .. })
    } else if expected.contains("does not match private key") {
        matches!(e, SvidError::KeyMismatch)
    } else if expected.contains("certificate contains no URI SAN") {
        not_svid(&|r| matches!(r, R::NoUriSan))
    } else if expected.contains("leaf certificate must not have CA flag") {
        not_svid(&|r| matches!(r, R::LeafIsCa))
    } else if expected.contains("'digitalSignature'") {
        not_svid(&|r| matches!(r, R::MissingDigitalSignature))
    } else if expected.contains("leaf certificate must not have 'keyCertSign'") {
        not_svid(&|r| matches!(r, R::LeafKeyCertSign))
    } else if expected.contains("'cRLSign'") {
        not_svid(&|r| matches!(r, R::LeafCrlSign))
    } else if expected.contains("signing certificate must have CA flag") {
        not_svid(&|r| matches!(r, R::SigningCertNotCa { index: 1 }))
    } else if expected.contains("signing certificate must have 'keyCertSign'") {
        not_svid(&|r| matches!(r, R::SigningCertNoKeyCertSign { index: 1 }))
    } else {
        panic!("unmapped go-spiffe error {expected:?}")
    }
}

fn check_svid_case(case: &Value) -> Result<(), String> {
    let name = case["name"].as_str().unwrap();
    let dir = "svid/x509svid/testdata/";
    let certs = read(&format!("{dir}{}", case["cert_file"].as_str().unwrap()));
    let key = read(&format!("{dir}{}", case["key_file"].as_str().unwrap()));
    match (
        case["valid"].as_bool().unwrap(),
        X509Svid::load_pem(&certs, &key),
    ) {
        (true, Ok(svid)) => {
            let want_id = case["expected_spiffe_id"].as_str().unwrap();
            let want_len = case["expected_num_certs"].as_u64().unwrap() as usize;
            if svid.spiffe_id().as_str() != want_id || svid.cert_chain().len() != want_len {
                return Err(format!(
                    "{name}: got {} with {} certs",
                    svid.spiffe_id(),
                    svid.cert_chain().len()
                ));
            }
            // The key survives a PEM round trip.
            X509Svid::load_pem(svid.chain_pem().as_bytes(), svid.key_pem().as_bytes())
                .map_err(|e| format!("{name}: round trip failed: {e}"))?;
            Ok(())
        }
        (false, Err(e)) => {
            let want = case["expected_error_contains"].as_str().unwrap();
            if svid_error_matches(want, &e) {
                Ok(())
            } else {
                Err(format!("{name}: {e}, want {want:?}"))
            }
        }
        (true, Err(e)) => Err(format!("{name}: rejected: {e}")),
        (false, Ok(_)) => Err(format!("{name}: accepted, want rejection")),
    }
}

#[test]
fn go_spiffe_x509_svids() {
    let doc = expected();
    let cases = doc["x509svid_cases"].as_array().unwrap();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_svid_case(c).err())
        .collect();
    let passed = cases.len() - failures.len();
    println!("go-spiffe x509-svids: {passed}/{} passed", cases.len());
    assert!(failures.is_empty(), "failures: {failures:#?}");
    assert!(passed >= 18, "floor: 18 cases");
}

/// What upstream's tests expect of each bundle file (go-spiffe v2.8.1 bundle/*/bundle_test.go
/// and exp/bundle/witbundle): Ok((x509 authorities, jwt authorities)) or the error class.
enum Want {
    Ok { x509: usize, jwt: usize },
    Err(fn(&BundleError) -> bool),
}

#[derive(Clone, Copy)]
enum Format {
    Spiffe,
    Jwt,
    Pem,
}

fn bundle_cases() -> Vec<(&'static str, Format, Want)> {
    use BundleError as E;
    use Format::*;
    vec![
        (
            "bundle/spiffebundle/testdata/spiffebundle_valid_1.json",
            Spiffe,
            Want::Ok { x509: 1, jwt: 1 },
        ),
        (
            "bundle/spiffebundle/testdata/spiffebundle_valid_2.json",
            Spiffe,
            Want::Ok { x509: 1, jwt: 6 },
        ),
        // wit-svid keys are not x509-svid or jwt-svid authorities: ignored, as the spec asks.
        (
            "bundle/spiffebundle/testdata/spiffebundle_valid_with_wit.json",
            Spiffe,
            Want::Ok { x509: 1, jwt: 2 },
        ),
        (
            "bundle/spiffebundle/testdata/spiffebundle_missing_kid.json",
            Spiffe,
            Want::Err(|e| matches!(e, E::MissingKid { index: 1 })),
        ),
        (
            "bundle/spiffebundle/testdata/spiffebundle_no_keys.json",
            Spiffe,
            Want::Err(|e| matches!(e, E::MissingKeys)),
        ),
        (
            "bundle/spiffebundle/testdata/spiffebundle_multiple_x509.json",
            Spiffe,
            Want::Err(|e| matches!(e, E::X509EntryCertCount { index: 0, count: 2 })),
        ),
        (
            "bundle/jwtbundle/testdata/jwks_valid_1.json",
            Jwt,
            Want::Ok { x509: 0, jwt: 1 },
        ),
        (
            "bundle/jwtbundle/testdata/jwks_valid_2.json",
            Jwt,
            Want::Ok { x509: 0, jwt: 2 },
        ),
        (
            "bundle/jwtbundle/testdata/jwks_missing_kid.json",
            Jwt,
            Want::Err(|e| matches!(e, E::MissingKid { index: 1 })),
        ),
        (
            "exp/bundle/witbundle/testdata/jwks_valid_1.json",
            Jwt,
            Want::Ok { x509: 0, jwt: 1 },
        ),
        (
            "exp/bundle/witbundle/testdata/jwks_valid_2.json",
            Jwt,
            Want::Ok { x509: 0, jwt: 2 },
        ),
        (
            "exp/bundle/witbundle/testdata/jwks_missing_kid.json",
            Jwt,
            Want::Err(|e| matches!(e, E::MissingKid { index: 1 })),
        ),
        (
            "bundle/x509bundle/testdata/cert.pem",
            Pem,
            Want::Ok { x509: 1, jwt: 0 },
        ),
        (
            "bundle/x509bundle/testdata/certs.pem",
            Pem,
            Want::Ok { x509: 2, jwt: 0 },
        ),
        (
            "bundle/x509bundle/testdata/empty.pem",
            Pem,
            Want::Err(|e| matches!(e, E::NoCertificates)),
        ),
        (
            "bundle/x509bundle/testdata/key.pem",
            Pem,
            Want::Err(|e| matches!(e, E::NoCertificates)),
        ),
        (
            "bundle/x509bundle/testdata/not-pem.pem",
            Pem,
            Want::Err(|e| matches!(e, E::Pem { .. })),
        ),
        (
            "bundle/x509bundle/testdata/corrupted.pem",
            Pem,
            Want::Err(|e| matches!(e, E::MalformedCertificate { .. } | E::Pem { .. })),
        ),
    ]
}

fn check_bundle_case(path: &str, format: Format, want: &Want) -> Result<(), String> {
    let bytes = read(path);
    let trust_domain = td("domain.test");
    let parsed = match format {
        Format::Spiffe => TrustBundle::from_jwks(trust_domain.clone(), &bytes),
        Format::Jwt => TrustBundle::from_jwt_jwks(trust_domain.clone(), &bytes),
        Format::Pem => TrustBundle::from_pem(trust_domain.clone(), &bytes),
    };
    match (want, parsed) {
        (Want::Ok { x509, jwt }, Ok(bundle)) => {
            let got = (
                bundle.x509_authorities().len(),
                bundle.jwt_authorities().len(),
            );
            if got != (*x509, *jwt) {
                return Err(format!(
                    "{path}: {got:?} authorities, want {:?}",
                    (x509, jwt)
                ));
            }
            // Our own serialisations read back to the same bundle.
            let again = match format {
                Format::Pem => {
                    TrustBundle::from_pem(trust_domain.clone(), bundle.to_pem().as_bytes())
                }
                _ => TrustBundle::from_jwks(trust_domain.clone(), bundle.to_jwks().as_bytes()),
            };
            match again {
                Ok(again) if again == bundle => Ok(()),
                other => Err(format!("{path}: round trip gave {other:?}")),
            }
        }
        (Want::Err(is_expected), Err(e)) if is_expected(&e) => Ok(()),
        (Want::Err(_), Err(e)) => Err(format!("{path}: wrong error {e}")),
        (Want::Err(_), Ok(b)) => Err(format!("{path}: accepted {b:?}, want rejection")),
        (Want::Ok { .. }, Err(e)) => Err(format!("{path}: rejected: {e}")),
    }
}

#[test]
fn go_spiffe_bundles() {
    let cases = bundle_cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(p, f, w)| check_bundle_case(p, *f, w).err())
        .collect();
    let passed = cases.len() - failures.len();
    println!("go-spiffe bundles: {passed}/{} passed", cases.len());
    assert!(failures.is_empty(), "failures: {failures:#?}");
    assert!(passed >= 18, "floor: 18 files");
}

#[test]
fn spiffe_bundle_metadata_is_read() {
    let bundle = TrustBundle::from_jwks(
        td("domain.test"),
        &read("bundle/spiffebundle/testdata/spiffebundle_valid_2.json"),
    )
    .unwrap();
    assert_eq!(bundle.sequence(), Some(1));
    assert_eq!(bundle.refresh_hint(), Some(60));
    assert!(
        bundle
            .jwt_authority("IRsID4VIM3T11TsK43Ny1DgCD5UNWhva")
            .is_some()
    );
}
