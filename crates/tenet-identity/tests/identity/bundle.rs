//! Trust bundles built by the CA: the SPIFFE JSON form, PEM, and hostile bundle documents.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tenet_identity::{BundleError, BundleSet, CertificateAuthority, TrustBundle};

use crate::common::{T, td};

fn ca_bundle() -> TrustBundle {
    CertificateAuthority::generate(&td("prod.example.test"), T)
        .unwrap()
        .bundle()
}

#[test]
fn jwks_shape_and_round_trip() {
    let bundle = ca_bundle();
    let doc: Value = serde_json::from_str(&bundle.to_jwks()).unwrap();
    assert_eq!(doc["spiffe_sequence"], json!(1));
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let x509 = &keys[0];
    assert_eq!(x509["use"], "x509-svid");
    assert_eq!(
        (x509["kty"].as_str(), x509["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(x509["x5c"].as_array().unwrap().len(), 1);
    let jwt = &keys[1];
    assert_eq!(jwt["use"], "jwt-svid");
    assert_eq!(jwt["kid"].as_str(), Some(bundle.jwt_authorities()[0].kid()));
    for coordinate in ["x", "y"] {
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwt[coordinate].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    let again =
        TrustBundle::from_jwks(td("prod.example.test"), bundle.to_jwks().as_bytes()).unwrap();
    assert_eq!(again, bundle);
    let pem = TrustBundle::from_pem(td("prod.example.test"), bundle.to_pem().as_bytes()).unwrap();
    assert_eq!(pem.x509_authorities(), bundle.x509_authorities());
}

fn edit(bundle: &TrustBundle, change: impl FnOnce(&mut Value)) -> Result<TrustBundle, BundleError> {
    let mut doc: Value = serde_json::from_str(&bundle.to_jwks()).unwrap();
    change(&mut doc);
    TrustBundle::from_jwks(td("prod.example.test"), doc.to_string().as_bytes())
}

#[test]
fn hostile_bundle_documents() {
    let bundle = ca_bundle();

    // Unknown uses are ignored; nothing else changes.
    let b = edit(&bundle, |d| d["keys"][1]["use"] = json!("wit-svid")).unwrap();
    assert!(b.jwt_authorities().is_empty());
    assert_eq!(b.x509_authorities().len(), 1);

    // A JWK that disagrees with its certificate.
    let err = edit(&bundle, |d| d["keys"][0]["x"] = d["keys"][1]["x"].clone()).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::X509KeyMismatch { index: 0 } | BundleError::InvalidKey { index: 0, .. }
        ),
        "{err}"
    );

    // A point that is not on the curve.
    let err = edit(&bundle, |d| d["keys"][1]["y"] = d["keys"][1]["x"].clone()).unwrap_err();
    assert!(
        matches!(err, BundleError::InvalidKey { index: 1, .. }),
        "{err}"
    );

    // The same kid twice with different keys.
    let err = edit(&bundle, |d| {
        let mut twin = d["keys"][1].clone();
        twin["x"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
        d["keys"].as_array_mut().unwrap().push(twin);
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::DuplicateKid { .. } | BundleError::InvalidKey { .. }
        ),
        "{err}"
    );
    let other = ca_bundle();
    let err = edit(&bundle, |d| {
        let mut twin = serde_json::from_str::<Value>(&other.to_jwks()).unwrap()["keys"][1].clone();
        twin["kid"] = d["keys"][1]["kid"].clone();
        d["keys"].as_array_mut().unwrap().push(twin);
    })
    .unwrap_err();
    assert!(matches!(err, BundleError::DuplicateKid { .. }), "{err}");

    // Padded base64url, unsupported key types, broken x5c.
    let err = edit(&bundle, |d| {
        d["keys"][1]["x"] = json!(format!("{}=", d["keys"][1]["x"].as_str().unwrap()))
    })
    .unwrap_err();
    assert!(matches!(err, BundleError::InvalidKey { .. }), "{err}");
    let err = edit(&bundle, |d| d["keys"][1]["kty"] = json!("oct")).unwrap_err();
    assert!(matches!(err, BundleError::UnsupportedKey { .. }), "{err}");
    let err = edit(&bundle, |d| d["keys"][0]["x5c"] = json!(["!!"])).unwrap_err();
    assert!(
        matches!(err, BundleError::MalformedCertificate { index: 0, .. }),
        "{err}"
    );
    let err = edit(&bundle, |d| d["keys"][0]["x5c"] = json!([])).unwrap_err();
    assert!(
        matches!(err, BundleError::X509EntryCertCount { count: 0, .. }),
        "{err}"
    );
    assert!(matches!(
        TrustBundle::from_jwks(td("a"), b"{"),
        Err(BundleError::Json { .. })
    ));
    assert!(matches!(
        TrustBundle::from_jwks(td("a"), b"{\"keys\":[],\"keys\":[]}"),
        Err(BundleError::Json { .. })
    ));
    // An empty key list is a valid, empty bundle (it trusts nothing).
    assert!(
        TrustBundle::from_jwks(td("a"), b"{\"keys\":[]}")
            .unwrap()
            .x509_authorities()
            .is_empty()
    );
}

#[test]
fn bundle_set_is_keyed_by_trust_domain() {
    let a = ca_bundle();
    let b = CertificateAuthority::generate(&td("other.test"), T)
        .unwrap()
        .bundle();
    let mut set: BundleSet = [a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_eq!(set.get(&td("other.test")), Some(&b));
    let replaced = set.insert(ca_bundle());
    assert_eq!(replaced, Some(a));
    assert_eq!(set.len(), 2);
    assert!(set.remove(&td("other.test")).is_some());
    assert!(set.get(&td("other.test")).is_none());
}
