//! The CA: SVID shape (x509-parser and openssl), serials, TTLs, CSRs, save and load.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, SanType};
use tenet_identity::{
    BACKDATE, CaError, CertificateAuthority, INTERMEDIATE_KEY_FILE, JWT_KEY_FILE, ROOT_CERT_FILE,
    ROOT_KEY_FILE, SVID_KEY_FILE, Usage, X509Svid, verify_jwt_svid,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry;
use x509_parser::prelude::X509Certificate;

use crate::common::{T, hours, id, td, verifier_for};

const API: &str = "spiffe://prod.example.test/ns/payments/sa/api";

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate(&td("prod.example.test"), T).unwrap()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("subject key identifier")
}

#[test]
fn x509_svid_shape() {
    let ca = ca();
    let svid = ca
        .issue_x509_svid(&id(API), Duration::from_secs(3600), T)
        .unwrap();
    assert_eq!(svid.spiffe_id(), &id(API));
    assert_eq!(svid.cert_chain().len(), 2, "leaf then intermediate");
    assert_eq!(&svid.cert_chain()[1], ca.intermediate_certificate());

    let leaf = parse(&svid.cert_chain()[0]);
    let intermediate = parse(&svid.cert_chain()[1]);

    // Exactly one URI SAN, the ID.
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    let names: Vec<_> = san.value.general_names.iter().collect();
    assert_eq!(names.len(), 1);
    assert!(matches!(names[0], GeneralName::URI(u) if *u == API));

    // cA=false, critical.
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);

    // keyUsage critical, digitalSignature only.
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags.count_ones(), 1, "no other key usage bit");

    // EKU serverAuth + clientAuth.
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth && eku.other.is_empty());

    // AKI = intermediate's SKI; SKI present.
    let aki = leaf
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authority key identifier");
    assert_eq!(aki, ski(&intermediate));
    assert!(!ski(&leaf).is_empty());

    // Positive serial of at least 64 bits.
    let serial = leaf.raw_serial();
    assert!(serial.len() >= 8 && serial[0] & 0x80 == 0 && serial[0] != 0);
    assert_eq!(svid.serial_hex(), hex::encode(serial));

    // P-256 leaf key.
    let spki = leaf.public_key();
    assert_eq!(
        spki.algorithm.algorithm,
        oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert_eq!(
        spki.algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap(),
        oid_registry::OID_EC_P256
    );

    // Window: backdated 30 s, ttl from now.
    let validity = leaf.validity();
    assert_eq!(validity.not_before.to_datetime(), T - BACKDATE);
    assert_eq!(validity.not_after.to_datetime(), T + hours(1));
    assert_eq!(svid.not_after(), T + hours(1));

    // The CA certificates: root pathlen 1, intermediate pathlen 0, both keyCertSign.
    let root = parse(ca.root_certificate());
    assert_eq!(
        root.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(1)
    );
    assert_eq!(
        intermediate
            .basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    assert!(
        intermediate
            .key_usage()
            .unwrap()
            .unwrap()
            .value
            .key_cert_sign()
    );
    assert_eq!(
        root.validity().not_after.to_datetime(),
        T + hours(24 * 3650)
    );
    assert_eq!(
        intermediate.validity().not_after.to_datetime(),
        T + hours(24 * 365)
    );
}

#[test]
fn x509_svid_shape_per_openssl() {
    // openssl checks validity against the real clock, so issue at the real time.
    let now = time::OffsetDateTime::now_utc();
    let ca = CertificateAuthority::generate(&td("prod.example.test"), now).unwrap();
    let svid = ca
        .issue_x509_svid(&id(API), Duration::from_secs(3600), now)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let leaf = dir.path().join("leaf.pem");
    let root = dir.path().join("root.pem");
    let intermediate = dir.path().join("intermediate.pem");
    let pem = svid.chain_pem();
    let end =
        pem.find("-----END CERTIFICATE-----\n").unwrap() + "-----END CERTIFICATE-----\n".len();
    std::fs::write(&leaf, &pem[..end]).unwrap();
    std::fs::write(&intermediate, &pem[end..]).unwrap();
    std::fs::write(&root, ca.bundle().to_pem()).unwrap();

    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        &format!("URI:{API}"),
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "ASN1 OID: prime256v1",
    ] {
        assert!(
            text.contains(needle),
            "openssl output lacks {needle:?}:\n{text}"
        );
    }
    let usage_line = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 Key Usage"))
        .nth(1)
        .unwrap();
    assert_eq!(usage_line.trim(), "Digital Signature");

    let out = Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&intermediate)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serials_are_unique() {
    let ca = ca();
    let serials: HashSet<String> = (0..200)
        .map(|_| {
            ca.issue_x509_svid(&id(API), Duration::from_secs(60), T)
                .unwrap()
                .serial_hex()
        })
        .collect();
    assert_eq!(serials.len(), 200);
}

#[test]
fn ttl_is_clamped_and_validated() {
    let ca = ca();
    let long = ca
        .issue_x509_svid(&id(API), Duration::from_secs(10 * 365 * 24 * 3600), T)
        .unwrap();
    assert_eq!(
        long.not_after(),
        ca.intermediate_not_after(),
        "never beyond the intermediate"
    );
    assert!(matches!(
        ca.issue_x509_svid(&id(API), Duration::ZERO, T),
        Err(CaError::InvalidTtl { .. })
    ));
    // Sub-second parts of now are dropped: certificate times are whole seconds.
    let svid = ca
        .issue_x509_svid(
            &id(API),
            Duration::from_secs(60),
            T + time::Duration::milliseconds(700),
        )
        .unwrap();
    assert_eq!(svid.not_after(), T + time::Duration::seconds(60));
    // After the intermediate's end, issuance stops with a clear error.
    let late = ca.intermediate_not_after() + time::Duration::seconds(1);
    assert!(matches!(
        ca.issue_x509_svid(&id(API), Duration::from_secs(60), late),
        Err(CaError::IntermediateExpired { .. })
    ));
}

#[test]
fn issuance_refuses_foreign_or_pathless_ids() {
    let ca = ca();
    let ttl = Duration::from_secs(60);
    assert!(matches!(
        ca.issue_x509_svid(&id("spiffe://other.test/x"), ttl, T),
        Err(CaError::ForeignTrustDomain { .. })
    ));
    assert!(matches!(
        ca.issue_x509_svid(&id("spiffe://prod.example.test"), ttl, T),
        Err(CaError::IdWithoutPath { .. })
    ));
    assert!(matches!(
        ca.issue_jwt_svid(&id(API), &[], ttl, T),
        Err(CaError::EmptyAudience)
    ));
}

#[test]
fn issued_chain_verifies() {
    let ca = ca();
    let verifier = verifier_for([ca.bundle()], 0);
    let svid = ca
        .issue_x509_svid(&id(API), Duration::from_secs(3600), T)
        .unwrap();
    let chain = svid.cert_chain();
    for usage in [Usage::Client, Usage::Server] {
        let peer = verifier.verify(&chain[0], &chain[1..], usage, T).unwrap();
        assert_eq!(peer.id, id(API));
        assert_eq!(peer.not_after, T + hours(1));
    }
    // Another CA of the same trust domain is not trusted.
    let other = CertificateAuthority::generate(&td("prod.example.test"), T).unwrap();
    let foreign = other
        .issue_x509_svid(&id(API), Duration::from_secs(3600), T)
        .unwrap();
    let chain = foreign.cert_chain();
    assert!(
        verifier
            .verify(&chain[0], &chain[1..], Usage::Client, T)
            .is_err()
    );
    // Expired an hour later.
    let chain = svid.cert_chain();
    assert!(
        verifier
            .verify(&chain[0], &chain[1..], Usage::Client, T + hours(2))
            .is_err()
    );
}

fn csr(uris: &[&str]) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    (params.serialize_request(&key).unwrap().der().to_vec(), key)
}

#[test]
fn csr_signing() {
    let ca = ca();
    let ttl = Duration::from_secs(600);
    let verifier = verifier_for([ca.bundle()], 0);

    for uris in [vec![API], vec![]] {
        let (der, key) = csr(&uris);
        let chain = ca.sign_csr(&der, &id(API), ttl, T).unwrap();
        let leaf = parse(&chain[0]);
        assert_eq!(
            leaf.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_eq!(
            verifier
                .verify(&chain[0], &chain[1..], Usage::Client, T)
                .unwrap()
                .id,
            id(API)
        );
    }

    let (der, _) = csr(&["spiffe://prod.example.test/ns/payments/sa/admin"]);
    assert!(matches!(
        ca.sign_csr(&der, &id(API), ttl, T),
        Err(CaError::CsrIdMismatch { .. })
    ));
    let (der, _) = csr(&[API, "https://x.test/"]);
    assert!(matches!(
        ca.sign_csr(&der, &id(API), ttl, T),
        Err(CaError::CsrMultipleUris { count: 2 })
    ));

    // A flipped bit in the signed request breaks its signature.
    let (mut der, _) = csr(&[API]);
    let at = der.len() - 10;
    der[at] ^= 0x01;
    assert!(matches!(
        ca.sign_csr(&der, &id(API), ttl, T),
        Err(CaError::CsrBadSignature | CaError::MalformedCsr { .. })
    ));
    assert!(matches!(
        ca.sign_csr(b"junk", &id(API), ttl, T),
        Err(CaError::MalformedCsr { .. })
    ));
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn save_and_load_round_trip() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();
    #[cfg(unix)]
    for key in [ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE, JWT_KEY_FILE] {
        assert_eq!(mode(&dir.path().join(key)), 0o600, "{key}");
    }

    let loaded = CertificateAuthority::load(dir.path()).unwrap();
    assert_eq!(loaded.trust_domain(), ca.trust_domain());
    assert_eq!(loaded.root_certificate(), ca.root_certificate());
    assert_eq!(
        loaded.intermediate_certificate(),
        ca.intermediate_certificate()
    );
    assert_eq!(loaded.jwt_key_id(), ca.jwt_key_id());
    assert_eq!(loaded.bundle(), ca.bundle());

    // What the loaded CA issues verifies against the original bundle.
    let verifier = verifier_for([ca.bundle()], 0);
    let svid = loaded
        .issue_x509_svid(&id(API), Duration::from_secs(60), T)
        .unwrap();
    let chain = svid.cert_chain();
    verifier
        .verify(&chain[0], &chain[1..], Usage::Server, T)
        .unwrap();
    let token = loaded
        .issue_jwt_svid(&id(API), &["a".into()], Duration::from_secs(60), T)
        .unwrap();
    verify_jwt_svid(&token, verifier.bundles(), "a", T).unwrap();

    // Saving again does not overwrite.
    assert!(matches!(
        ca.save(dir.path()),
        Err(CaError::AlreadyExists { .. })
    ));
}

#[test]
fn load_names_the_file_and_the_problem() {
    let ca = ca();
    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();

    // A missing file.
    let missing = tempfile::tempdir().unwrap();
    let err = CertificateAuthority::load(missing.path()).unwrap_err();
    assert!(
        matches!(&err, CaError::Read { path, .. } if path.ends_with(ROOT_CERT_FILE)),
        "{err}"
    );
    assert!(err.to_string().contains(ROOT_CERT_FILE));

    // A key that belongs to another certificate.
    let other = tempfile::tempdir().unwrap();
    CertificateAuthority::generate(&td("prod.example.test"), T)
        .unwrap()
        .save(other.path())
        .unwrap();
    std::fs::remove_file(dir.path().join(ROOT_KEY_FILE)).unwrap();
    std::fs::copy(
        other.path().join(ROOT_KEY_FILE),
        dir.path().join(ROOT_KEY_FILE),
    )
    .unwrap();
    let err = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, CaError::InvalidFile { path, .. } if path.ends_with(ROOT_CERT_FILE)),
        "{err}"
    );
    assert!(err.to_string().contains("does not belong"), "{err}");

    // A corrupt certificate.
    std::fs::write(dir.path().join(ROOT_CERT_FILE), "not pem").unwrap();
    let err = CertificateAuthority::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, CaError::InvalidFile { path, .. } if path.ends_with(ROOT_CERT_FILE)),
        "{err}"
    );

    // A key file others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let fresh = tempfile::tempdir().unwrap();
        ca.save(fresh.path()).unwrap();
        let key = fresh.path().join(JWT_KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = CertificateAuthority::load(fresh.path()).unwrap_err();
        assert!(
            matches!(&err, CaError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
    }
}

#[test]
fn svid_files_round_trip() {
    let ca = ca();
    let svid = ca
        .issue_x509_svid(&id(API), Duration::from_secs(60), T)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    svid.write_files(dir.path(), &ca.bundle()).unwrap();
    // Rotation overwrites in place.
    let next = ca
        .issue_x509_svid(&id(API), Duration::from_secs(60), T)
        .unwrap();
    next.write_files(dir.path(), &ca.bundle()).unwrap();

    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join(SVID_KEY_FILE)), 0o600);
    let chain = std::fs::read(dir.path().join("svid.pem")).unwrap();
    let key = std::fs::read(dir.path().join(SVID_KEY_FILE)).unwrap();
    let loaded = X509Svid::load_pem(&chain, &key).unwrap();
    assert_eq!(loaded.serial_hex(), next.serial_hex());
    assert_eq!(loaded.cert_chain(), next.cert_chain());
    let bundle = std::fs::read(dir.path().join("bundle.pem")).unwrap();
    assert_eq!(
        tenet_identity::TrustBundle::from_pem(td("prod.example.test"), &bundle)
            .unwrap()
            .x509_authorities(),
        ca.bundle().x509_authorities()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
