//! Enrolment: tokens, certificates, the registry file.

use std::time::Duration;

use tenet_device::{
    DEFAULT_DEVICE_CERT_TTL, DeviceKey, DeviceRegistry, EnrolError, EnrolmentRequest, FileError,
    KeyError, device_id_of,
};
use tenet_identity::{BundleSet, SvidVerifier, Usage};
use x509_parser::extensions::ParsedExtension;

use crate::{Fixture, mode, now};

fn request(token: String) -> EnrolmentRequest {
    let key = DeviceKey::generate().unwrap();
    EnrolmentRequest {
        token,
        csr: key.csr_pem().unwrap(),
        name: None,
        hardware_serial: None,
    }
}

#[test]
fn enrolment_round_trip_gives_a_device_svid_from_the_ca() {
    let mut f = Fixture::create();
    let (device_id, svid) = f.enrol("laptop-1", "SN-001");

    let expected = format!(
        "spiffe://corp.example.test/device/{}",
        device_id.hyphenated()
    );
    assert_eq!(svid.spiffe_id().as_str(), expected);
    assert_eq!(device_id_of(svid.spiffe_id()), Some(device_id));
    assert_eq!(svid.not_after(), now() + time::Duration::days(90));

    // The chain verifies as a TLS client certificate against Tenet's bundle.
    let verifier = SvidVerifier::new(
        std::iter::once(f.ca.bundle()).collect::<BundleSet>(),
        Duration::from_secs(60),
    );
    let (leaf, rest) = svid.cert_chain().split_first().unwrap();
    let peer = verifier.verify(leaf, rest, Usage::Client, now()).unwrap();
    assert_eq!(peer.id, *svid.spiffe_id());

    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let client_auth = cert
        .extensions()
        .iter()
        .any(|e| match e.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(eku) => eku.client_auth,
            _ => false,
        });
    assert!(client_auth, "device certificate must allow client auth");

    let record = f.registry.device(device_id).unwrap();
    assert_eq!(record.owner.as_deref(), Some("alice@example.test"));
    assert_eq!(record.name.as_deref(), Some("laptop-1"));
    assert_eq!(record.cert_serial, svid.serial_hex());
    assert_eq!(record.enrolled_at, now());
    assert!(!record.is_revoked());
    assert_eq!(mode(&f.path("laptop-1.key")), 0o600);

    // The SVID can be written for the agent and read back.
    let out = f.path("agent");
    std::fs::create_dir(&out).unwrap();
    svid.write_files(&out, &f.ca.bundle()).unwrap();
    assert_eq!(mode(&out.join("svid.key")), 0o600);
}

#[test]
fn registry_persists_with_mode_0600_and_keeps_only_token_hashes() {
    let mut f = Fixture::create();
    let (device_id, _) = f.enrol("laptop-1", "SN-001");
    let pending = f
        .registry
        .create_token(None, Duration::from_secs(600), now())
        .unwrap();
    let path = f.path("devices.json");
    f.registry.save(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&pending.token),
        "the token itself must not be stored"
    );

    let loaded = DeviceRegistry::load(&path).unwrap();
    assert_eq!(loaded, f.registry);
    assert!(loaded.device(device_id).is_some());
    assert_eq!(
        DeviceRegistry::load(&f.path("missing.json")).unwrap(),
        DeviceRegistry::new()
    );
}

#[test]
fn corrupt_registry_file_is_an_error_naming_it() {
    let f = Fixture::create();
    let path = f.path("devices.json");
    std::fs::write(&path, b"{not json").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = DeviceRegistry::load(&path).unwrap_err();
    assert!(matches!(err, FileError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("devices.json"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = DeviceRegistry::load(&path).unwrap_err();
    assert!(
        matches!(err, FileError::InsecurePermissions { .. }),
        "{err}"
    );
}

#[test]
fn token_is_single_use() {
    let mut f = Fixture::create();
    let token = f
        .registry
        .create_token(None, Duration::from_secs(600), now())
        .unwrap();
    let first = f
        .registry
        .enrol(
            &f.ca,
            &request(token.token.clone()),
            DEFAULT_DEVICE_CERT_TTL,
            now(),
        )
        .unwrap();
    let err = f
        .registry
        .enrol(&f.ca, &request(token.token), DEFAULT_DEVICE_CERT_TTL, now())
        .unwrap_err();
    match err {
        EnrolError::TokenUsed { device_id } => assert_eq!(device_id, first.device_id),
        other => panic!("expected TokenUsed, got {other}"),
    }
    assert_eq!(f.registry.devices().len(), 1);
}

#[test]
fn expired_unknown_and_malformed_tokens_are_refused() {
    let mut f = Fixture::create();
    let token = f
        .registry
        .create_token(None, Duration::from_secs(60), now())
        .unwrap();
    let later = now() + time::Duration::seconds(60);
    let err = f
        .registry
        .enrol(
            &f.ca,
            &request(token.token.clone()),
            DEFAULT_DEVICE_CERT_TTL,
            later,
        )
        .unwrap_err();
    assert!(matches!(err, EnrolError::TokenExpired { .. }), "{err}");

    let guessed = format!("{}{}", tenet_device::TOKEN_PREFIX, "A".repeat(43));
    let err = f
        .registry
        .enrol(&f.ca, &request(guessed), DEFAULT_DEVICE_CERT_TTL, now())
        .unwrap_err();
    assert!(matches!(err, EnrolError::UnknownToken), "{err}");

    let err = f
        .registry
        .enrol(
            &f.ca,
            &request("hunter2".into()),
            DEFAULT_DEVICE_CERT_TTL,
            now(),
        )
        .unwrap_err();
    assert!(matches!(err, EnrolError::MalformedToken { .. }), "{err}");
    assert_eq!(f.registry.purge_expired_tokens(later), 1);
}

#[test]
fn bad_csr_and_owner_are_refused_without_burning_the_token() {
    let mut f = Fixture::create();
    let err = f
        .registry
        .create_token(Some("not an email"), Duration::from_secs(60), now())
        .unwrap_err();
    assert!(matches!(err, EnrolError::InvalidOwner { .. }), "{err}");

    let token = f
        .registry
        .create_token(None, Duration::from_secs(60), now())
        .unwrap();
    let mut bad = request(token.token.clone());
    bad.csr = "bm90IGEgY3Ny".into();
    let err = f
        .registry
        .enrol(&f.ca, &bad, DEFAULT_DEVICE_CERT_TTL, now())
        .unwrap_err();
    assert!(matches!(err, EnrolError::MalformedCsr { .. }), "{err}");
    f.registry
        .enrol(&f.ca, &request(token.token), DEFAULT_DEVICE_CERT_TTL, now())
        .unwrap();
}

/// A CSR for a fresh key pair of `alg` (RSA keys are 2048 bits), as PEM and as base64 of
/// its DER.
fn csr_for(alg: &'static rcgen::SignatureAlgorithm) -> [String; 2] {
    use base64::Engine as _;

    let pair = rcgen::KeyPair::generate_for(alg).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&pair)
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr.der());
    [csr.pem().unwrap(), b64]
}

#[test]
fn csr_keys_that_cannot_sign_a_report_are_refused_without_burning_the_token() {
    let mut f = Fixture::create();
    let token = f
        .registry
        .create_token(None, Duration::from_secs(600), now())
        .unwrap();
    let cases: [(&'static rcgen::SignatureAlgorithm, &str); 3] = [
        (&rcgen::PKCS_RSA_SHA256, "found RSA (2048 bits)"),
        (&rcgen::PKCS_ED25519, "found Ed25519"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "found EC P-384"),
    ];
    for (alg, found) in cases {
        // Base64 of the DER is checked the same way as PEM.
        for csr in csr_for(alg) {
            let bad = EnrolmentRequest {
                csr,
                ..request(token.token.clone())
            };
            let err = f
                .registry
                .enrol(&f.ca, &bad, DEFAULT_DEVICE_CERT_TTL, now())
                .unwrap_err();
            assert!(matches!(err, EnrolError::CsrKeyNotP256 { .. }), "{err}");
            let message = err.to_string();
            assert!(
                message.contains("CSR key must be EC P-256 (ES256)") && message.contains(found),
                "{message}"
            );
        }
    }
    assert!(f.registry.devices().is_empty(), "no certificate was issued");

    // The token is still good for a P-256 key.
    let enrolment = f
        .registry
        .enrol(&f.ca, &request(token.token), DEFAULT_DEVICE_CERT_TTL, now())
        .unwrap();
    assert_eq!(f.registry.devices().len(), 1);
    assert_eq!(f.registry.devices()[0].id, enrolment.device_id);
}

#[test]
fn device_key_file_is_private_and_never_overwritten() {
    let f = Fixture::create();
    let path = f.path("device.key");
    let key = DeviceKey::generate().unwrap();
    key.save(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let err = DeviceKey::generate().unwrap().save(&path).unwrap_err();
    assert!(
        matches!(err, KeyError::File(FileError::AlreadyExists { .. })),
        "{err}"
    );

    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = DeviceKey::load(&path).unwrap_err();
    assert!(
        matches!(err, KeyError::File(FileError::InsecurePermissions { .. })),
        "{err}"
    );
}

#[test]
fn revoking_marks_the_device() {
    let mut f = Fixture::create();
    let (device_id, _) = f.enrol("laptop-1", "SN-001");
    f.registry.revoke(device_id, now()).unwrap();
    assert!(f.registry.device(device_id).unwrap().is_revoked());
    assert!(f.registry.find_by_serial("sn-001").is_none());
    let err = f.registry.revoke(uuid::Uuid::new_v4(), now()).unwrap_err();
    assert!(matches!(err, EnrolError::UnknownDevice { .. }), "{err}");
}
