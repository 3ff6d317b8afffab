//! The certificate authority of one trust domain: a P-256 root, an intermediate that signs
//! X509-SVIDs, and a P-256 key that signs JWT-SVIDs.
//!
//! Issued leaves follow the X509-SVID spec: one URI SAN (the SPIFFE ID), basicConstraints
//! cA=false (critical), keyUsage digitalSignature only (critical), EKU serverAuth and
//! clientAuth, a random positive 126-bit serial, AKI and SKI. notBefore is the issuance time
//! minus 30 seconds (for peers whose clocks run behind), clamped to the intermediate's window,
//! and notAfter never passes the intermediate's notAfter.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::bundle::{EcCurve, JwtAuthority, PublicKeyJwk, TrustBundle};
use crate::error::CaError;
use crate::files;
use crate::jwt;
use crate::pem;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::X509Svid;

/// Lifetime of a generated root.
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of a generated intermediate (never beyond the root).
pub const INTERMEDIATE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Default lifetime of an X509-SVID.
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);
/// Default lifetime of a JWT-SVID.
pub const DEFAULT_JWT_SVID_TTL: Duration = Duration::from_secs(300);
/// How far notBefore is backdated from the issuance time.
pub const BACKDATE: Duration = Duration::from_secs(30);

/// File names written by [`CertificateAuthority::save`].
pub const ROOT_CERT_FILE: &str = "root.pem";
/// Root private key file (mode 0600).
pub const ROOT_KEY_FILE: &str = "root.key";
/// Intermediate certificate file.
pub const INTERMEDIATE_CERT_FILE: &str = "intermediate.pem";
/// Intermediate private key file (mode 0600).
pub const INTERMEDIATE_KEY_FILE: &str = "intermediate.key";
/// JWT signing key file (mode 0600).
pub const JWT_KEY_FILE: &str = "jwt.key";

/// Smallest RSA modulus accepted in a CSR, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The CA of one trust domain.
pub struct CertificateAuthority {
    trust_domain: TrustDomain,
    root_cert: CertificateDer<'static>,
    root_key: KeyPair,
    intermediate_cert: CertificateDer<'static>,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_not_before: OffsetDateTime,
    intermediate_not_after: OffsetDateTime,
    jwt_key: KeyPair,
    jwt_kid: String,
    bundle: TrustBundle,
}

impl CertificateAuthority {
    /// Generates a new root (10 years, pathlen 1), intermediate (1 year, pathlen 0) and JWT
    /// signing key for `trust_domain`. Both CA certificates carry the trust domain's SPIFFE ID
    /// as their URI SAN.
    pub fn generate(trust_domain: &TrustDomain, now: OffsetDateTime) -> Result<Self, CaError> {
        let now = whole_seconds(now)?;
        let not_before = now - BACKDATE;

        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let root_not_after = now + ROOT_TTL;
        let root_params = ca_params(trust_domain, "root", 1, not_before, root_not_after, false)?;
        let root_cert = root_params.self_signed(&root_key)?.der().clone();

        let intermediate_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let intermediate_not_after = (now + INTERMEDIATE_TTL).min(root_not_after);
        let intermediate_params = ca_params(
            trust_domain,
            "intermediate",
            0,
            not_before,
            intermediate_not_after,
            true,
        )?;
        let root_issuer = Issuer::from_params(&root_params, &root_key);
        let intermediate_cert = intermediate_params
            .signed_by(&intermediate_key, &root_issuer)?
            .der()
            .clone();
        let intermediate = Issuer::new(intermediate_params, intermediate_key);

        let jwt_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let (jwt_public, jwt_kid) = jwt_public_and_kid(&jwt_key)?;
        let bundle = build_bundle(trust_domain, &root_cert, &jwt_kid, jwt_public)?;

        Ok(Self {
            trust_domain: trust_domain.clone(),
            root_cert,
            root_key,
            intermediate_cert,
            intermediate,
            intermediate_not_before: not_before,
            intermediate_not_after,
            jwt_key,
            jwt_kid,
            bundle,
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The root certificate.
    pub fn root_certificate(&self) -> &CertificateDer<'static> {
        &self.root_cert
    }

    /// The intermediate certificate, which signs X509-SVIDs.
    pub fn intermediate_certificate(&self) -> &CertificateDer<'static> {
        &self.intermediate_cert
    }

    /// The intermediate's notAfter: no SVID outlives it.
    pub fn intermediate_not_after(&self) -> OffsetDateTime {
        self.intermediate_not_after
    }

    /// The key ID of the JWT signing key (its RFC 7638 SHA-256 thumbprint).
    pub fn jwt_key_id(&self) -> &str {
        &self.jwt_kid
    }

    /// The trust bundle: the root as X.509 authority, the JWT key as JWT authority,
    /// `spiffe_sequence` 1.
    pub fn bundle(&self) -> TrustBundle {
        self.bundle.clone()
    }

    /// Issues an X509-SVID with a fresh P-256 key.
    pub fn issue_x509_svid(
        &self,
        id: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Svid, CaError> {
        self.issue_x509_svid_with_dns(id, &[], ttl, now)
    }

    /// Issues an X509-SVID that also carries DNS SANs (allowed by the X509-SVID spec beside
    /// the one URI SAN), so that ordinary TLS clients can verify a server by name.
    pub fn issue_x509_svid_with_dns(
        &self,
        id: &SpiffeId,
        dns_names: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Svid, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let chain = self.sign_leaf(&key, id, dns_names, ttl, now)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        // Self-check: what was just issued must pass the same rules peers apply.
        X509Svid::from_der(chain, key).map_err(CaError::SelfCheck)
    }

    /// Signs a PKCS#10 CSR for `id`: the CSR's signature must verify, and its URI SAN, if it
    /// asks for one, must be `id`. Only the CSR's public key is used; the certificate gets the
    /// same profile as [`Self::issue_x509_svid`]. Returns the chain, leaf first.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        id: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<CertificateDer<'static>>, CaError> {
        let malformed = |reason: String| CaError::MalformedCsr { reason };
        let csr = match X509CertificationRequest::from_der(csr_der) {
            Ok(([], csr)) => csr,
            Ok((rest, _)) => return Err(malformed(format!("{} trailing bytes", rest.len()))),
            Err(e) => return Err(malformed(e.to_string())),
        };
        csr.verify_signature()
            .map_err(|_| CaError::CsrBadSignature)?;
        check_csr_uris(&csr, id)?;

        let spki = &csr.certification_request_info.subject_pki;
        if let Ok(PublicKey::RSA(rsa)) = spki.parsed()
            && rsa.key_size() < MIN_RSA_BITS
        {
            let bits = rsa.key_size();
            return Err(CaError::CsrKeyRejected {
                reason: format!("rsa key of {bits} bits, at least {MIN_RSA_BITS} needed"),
            });
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|e| {
            CaError::CsrKeyRejected {
                reason: e.to_string(),
            }
        })?;
        self.sign_leaf(&public_key, id, &[], ttl, now)
    }

    /// Issues a JWT-SVID (ES256, header alg/kid/typ, claims sub/aud/exp/iat).
    pub fn issue_jwt_svid(
        &self,
        id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<String, CaError> {
        self.check_subject(id)?;
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(CaError::EmptyAudience);
        }
        let now = whole_seconds(now)?;
        let expires_at = expiry(now, ttl)?;
        Ok(jwt::sign(
            self.jwt_key.serialized_der(),
            &self.jwt_kid,
            id,
            audience,
            now,
            expires_at,
        )?)
    }

    /// Writes the CA into `dir` (which must exist): `root.pem`, `root.key`,
    /// `intermediate.pem`, `intermediate.key`, `jwt.key`. Keys are PKCS#8 PEM created with mode
    /// 0600. Existing files are never overwritten.
    pub fn save(&self, dir: &Path) -> Result<(), CaError> {
        let files = [
            (
                ROOT_CERT_FILE,
                pem::encode("CERTIFICATE", &self.root_cert),
                false,
            ),
            (
                INTERMEDIATE_CERT_FILE,
                pem::encode("CERTIFICATE", &self.intermediate_cert),
                false,
            ),
            (ROOT_KEY_FILE, self.root_key.serialize_pem(), true),
            (
                INTERMEDIATE_KEY_FILE,
                self.intermediate.key().serialize_pem(),
                true,
            ),
            (JWT_KEY_FILE, self.jwt_key.serialize_pem(), true),
        ];
        // Refuse before writing anything, so a failed save leaves no half-written CA.
        for (name, _, _) in &files {
            let path = dir.join(name);
            if path.symlink_metadata().is_ok() {
                return Err(CaError::AlreadyExists { path });
            }
        }
        for (name, contents, private) in &files {
            files::write_new(&dir.join(name), contents.as_bytes(), *private)?;
        }
        Ok(())
    }

    /// Loads a CA written by [`Self::save`], checking that each key matches its certificate,
    /// that the intermediate is a CA signed by the root, and that both name the same trust
    /// domain. Private key files readable by group or others are refused.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let root_path = dir.join(ROOT_CERT_FILE);
        let intermediate_path = dir.join(INTERMEDIATE_CERT_FILE);
        let root_cert = read_cert(&root_path)?;
        let intermediate_cert = read_cert(&intermediate_path)?;
        let root_key = read_key(&dir.join(ROOT_KEY_FILE))?;
        let intermediate_key = read_key(&dir.join(INTERMEDIATE_KEY_FILE))?;
        let jwt_path = dir.join(JWT_KEY_FILE);
        let jwt_key = read_key(&jwt_path)?;

        let root = parse_ca_cert(&root_path, &root_cert)?;
        let intermediate = parse_ca_cert(&intermediate_path, &intermediate_cert)?;
        let invalid = |path: &Path, reason: &str| CaError::InvalidFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        check_key_matches(&root_path, &root, &root_key)?;
        check_key_matches(&intermediate_path, &intermediate, &intermediate_key)?;
        intermediate
            .verify_signature(Some(root.public_key()))
            .map_err(|_| invalid(&intermediate_path, "intermediate is not signed by the root"))?;

        let trust_domain = ca_trust_domain(&root_path, &root)?;
        if ca_trust_domain(&intermediate_path, &intermediate)? != trust_domain {
            return Err(invalid(
                &intermediate_path,
                "trust domain differs from the root's",
            ));
        }
        if jwt_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(invalid(&jwt_path, "jwt signing key is not a p-256 key"));
        }
        let (jwt_public, jwt_kid) = jwt_public_and_kid(&jwt_key)?;
        let bundle = build_bundle(&trust_domain, &root_cert, &jwt_kid, jwt_public)
            .map_err(|e| invalid(&root_path, &e.to_string()))?;

        let validity = intermediate.validity();
        let (intermediate_not_before, intermediate_not_after) = (
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        );
        let issuer = Issuer::from_ca_cert_der(&intermediate_cert, intermediate_key)?;
        drop((root, intermediate));

        Ok(Self {
            trust_domain,
            root_cert,
            root_key,
            intermediate_cert,
            intermediate: issuer,
            intermediate_not_before,
            intermediate_not_after,
            jwt_key,
            jwt_kid,
            bundle,
        })
    }

    /// The issuing checks shared by all SVID kinds.
    fn check_subject(&self, id: &SpiffeId) -> Result<(), CaError> {
        if id.trust_domain() != &self.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        if !id.has_path() {
            return Err(CaError::IdWithoutPath { id: id.clone() });
        }
        Ok(())
    }

    /// Issues the leaf for `public_key`; returns `[leaf, intermediate]`.
    fn sign_leaf(
        &self,
        public_key: &impl PublicKeyData,
        id: &SpiffeId,
        dns_names: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<CertificateDer<'static>>, CaError> {
        self.check_subject(id)?;
        let now = whole_seconds(now)?;
        if now >= self.intermediate_not_after {
            return Err(CaError::IntermediateExpired {
                not_after: self.intermediate_not_after,
                now,
            });
        }
        if now < self.intermediate_not_before {
            return Err(CaError::IntermediateNotYetValid {
                not_before: self.intermediate_not_before,
                now,
            });
        }
        let not_before = (now - BACKDATE).max(self.intermediate_not_before);
        let not_after = expiry(now, ttl)?.min(self.intermediate_not_after);

        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        params.distinguished_name = organisation_only();
        params.subject_alt_names = vec![SanType::URI(id.as_str().try_into()?)];
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;

        let leaf = params.signed_by(public_key, &self.intermediate)?;
        Ok(vec![leaf.der().clone(), self.intermediate_cert.clone()])
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("intermediate_not_after", &self.intermediate_not_after)
            .field("jwt_kid", &self.jwt_kid)
            .finish_non_exhaustive()
    }
}

/// The bundle of a CA: its root and its JWT key.
fn build_bundle(
    trust_domain: &TrustDomain,
    root_cert: &CertificateDer<'static>,
    jwt_kid: &str,
    jwt_public: PublicKeyJwk,
) -> Result<TrustBundle, CaError> {
    let mut bundle = TrustBundle::new(trust_domain.clone());
    bundle.add_x509_authority(root_cert.clone())?;
    bundle.add_jwt_authority(JwtAuthority::new(jwt_kid, jwt_public)?)?;
    bundle.set_sequence(Some(1));
    Ok(bundle)
}

/// Parameters of a CA certificate (`role` is "root" or "intermediate").
fn ca_params(
    trust_domain: &TrustDomain,
    role: &str,
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    with_aki: bool,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    let mut dn = organisation_only();
    dn.push(DnType::CommonName, format!("{trust_domain} {role} ca"));
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(trust_domain.id().as_str().try_into()?)];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = with_aki;
    Ok(params)
}

fn organisation_only() -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Tenet");
    dn
}

/// 16 random bytes, the top bit cleared and the next set: always a positive 16-byte INTEGER
/// with 126 random bits (RFC 5280 allows up to 20 bytes; CA/B BR ask for 64 random bits).
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x3f) | 0x40;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// `now` truncated to whole seconds, as certificates and JWTs encode it.
fn whole_seconds(now: OffsetDateTime) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(now.unix_timestamp())
        .map_err(|_| CaError::TimeOutOfRange(now))
}

/// `now + ttl`, for a non-zero TTL of at least a second.
fn expiry(now: OffsetDateTime, ttl: Duration) -> Result<OffsetDateTime, CaError> {
    if ttl.as_secs() == 0 {
        return Err(CaError::InvalidTtl {
            ttl,
            reason: "shorter than one second",
        });
    }
    let whole = Duration::from_secs(ttl.as_secs());
    time::Duration::try_from(whole)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or(CaError::InvalidTtl {
            ttl,
            reason: "too long to represent",
        })
}

/// The JWK of a P-256 key and its RFC 7638 thumbprint, used as `kid`.
fn jwt_public_and_kid(key: &KeyPair) -> Result<(PublicKeyJwk, String), CaError> {
    let raw = key.public_key_raw();
    let (x, y) = match raw {
        [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
        _ => {
            return Err(CaError::InvalidFile {
                path: JWT_KEY_FILE.into(),
                reason: "jwt signing key is not an uncompressed p-256 key".into(),
            });
        }
    };
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    Ok((
        PublicKeyJwk::Ec {
            curve: EcCurve::P256,
            x: x.to_vec(),
            y: y.to_vec(),
        },
        kid,
    ))
}

/// A CSR's URI SANs: none, or exactly `id`.
fn check_csr_uris(csr: &X509CertificationRequest<'_>, id: &SpiffeId) -> Result<(), CaError> {
    let mut uris = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                uris.extend(san.general_names.iter().filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                }));
            }
            ParsedExtension::ParseError { error } => {
                return Err(CaError::MalformedCsr {
                    reason: format!("requested extension: {error}"),
                });
            }
            _ => {}
        }
    }
    match uris.as_slice() {
        [] => Ok(()),
        [one] if one == id.as_str() => Ok(()),
        [one] => Err(CaError::CsrIdMismatch {
            expected: id.clone(),
            found: one.clone(),
        }),
        many => Err(CaError::CsrMultipleUris { count: many.len() }),
    }
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, CaError> {
    let invalid = |reason: String| CaError::InvalidFile {
        path: path.to_owned(),
        reason,
    };
    let sections = pem::sections(&files::read(path)?).map_err(|e| invalid(e.to_string()))?;
    let mut certs = sections
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate);
    match (certs.next(), certs.next()) {
        (Some((_, der)), None) => Ok(CertificateDer::from(der)),
        (None, _) => Err(invalid("no certificate found".into())),
        (Some(_), Some(_)) => Err(invalid(
            "more than one certificate; expected exactly one".into(),
        )),
    }
}

fn read_key(path: &Path) -> Result<KeyPair, CaError> {
    let invalid = |reason: String| CaError::InvalidFile {
        path: path.to_owned(),
        reason,
    };
    let sections =
        pem::sections(&files::read_private(path)?).map_err(|e| invalid(e.to_string()))?;
    let mut keys = sections
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::PrivateKey);
    let der = match (keys.next(), keys.next()) {
        (Some((_, der)), None) => der,
        (None, _) => return Err(invalid("no pkcs#8 \"PRIVATE KEY\" block found".into())),
        (Some(_), Some(_)) => return Err(invalid("more than one private key".into())),
    };
    KeyPair::try_from(der.as_slice())
        .map_err(|e| invalid(format!("private key does not parse: {e}")))
}

fn parse_ca_cert<'a>(
    path: &Path,
    der: &'a CertificateDer<'static>,
) -> Result<X509Certificate<'a>, CaError> {
    let invalid = |reason: String| CaError::InvalidFile {
        path: path.to_owned(),
        reason,
    };
    let cert = crate::svid::parse_cert(der, 0).map_err(|e| invalid(e.to_string()))?;
    if !cert.is_ca() {
        return Err(invalid(
            "certificate is not a ca (basicConstraints ca=false)".into(),
        ));
    }
    Ok(cert)
}

fn check_key_matches(
    path: &Path,
    cert: &X509Certificate<'_>,
    key: &KeyPair,
) -> Result<(), CaError> {
    if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(CaError::InvalidFile {
            path: path.to_owned(),
            reason: "the private key file does not belong to this certificate".into(),
        });
    }
    Ok(())
}

/// The trust domain of a CA certificate: its one URI SAN, a SPIFFE ID without a path.
fn ca_trust_domain(path: &Path, cert: &X509Certificate<'_>) -> Result<TrustDomain, CaError> {
    let invalid = |reason: String| CaError::InvalidFile {
        path: path.to_owned(),
        reason,
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|e| invalid(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    let [uri] = uris.as_slice() else {
        return Err(invalid(format!(
            "expected one uri san naming the trust domain, found {}",
            uris.len()
        )));
    };
    let id = SpiffeId::parse(uri).map_err(|e| invalid(e.to_string()))?;
    if id.has_path() {
        return Err(invalid(format!(
            "uri san {id} is not a trust domain id (it has a path)"
        )));
    }
    Ok(id.trust_domain().clone())
}
