//! Trust bundles: the X.509 and JWT authorities of one trust domain, and sets of them.
//!
//! The JSON form is the SPIFFE bundle format (SPIFFE Trust Domain and Bundle spec, section 4):
//! a JWK set whose keys carry `use` = `x509-svid` (with exactly one certificate in `x5c`) or
//! `jwt-svid` (with a `kid`), plus `spiffe_sequence` and `spiffe_refresh_hint`. Keys with any
//! other `use` are ignored, as the spec requires.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use webpki::anchor_from_trusted_cert;
use x509_parser::oid_registry;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::BundleError;
use crate::pem;
use crate::spiffe_id::TrustDomain;

/// `use` of X.509 authorities in a SPIFFE bundle.
const X509_SVID_USE: &str = "x509-svid";
/// `use` of JWT authorities in a SPIFFE bundle.
const JWT_SVID_USE: &str = "jwt-svid";

/// A NIST curve of an EC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// P-256 (secp256r1), the curve of ES256.
    P256,
    /// P-384 (secp384r1).
    P384,
    /// P-521 (secp521r1).
    P521,
}

impl EcCurve {
    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Length in bytes of one coordinate.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    fn verification_alg(self) -> &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm {
        use aws_lc_rs::signature as sig;
        match self {
            Self::P256 => &sig::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &sig::ECDSA_P384_SHA384_FIXED,
            Self::P521 => &sig::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// The public parameters of a key, as a JWK carries them. Integers are big-endian bytes with
/// no leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PublicKeyJwk {
    /// `kty` EC.
    Ec {
        /// `crv`.
        curve: EcCurve,
        /// `x`, exactly `curve.coordinate_len()` bytes.
        x: Vec<u8>,
        /// `y`, exactly `curve.coordinate_len()` bytes.
        y: Vec<u8>,
    },
    /// `kty` RSA.
    Rsa {
        /// Modulus `n`.
        n: Vec<u8>,
        /// Public exponent `e`.
        e: Vec<u8>,
    },
    /// `kty` OKP, `crv` Ed25519.
    Ed25519 {
        /// `x`, 32 bytes.
        x: Vec<u8>,
    },
}

impl PublicKeyJwk {
    /// The uncompressed SEC1 point `04 || x || y` of an EC key.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        match self {
            Self::Ec { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some(point)
            }
            _ => None,
        }
    }

    /// The JWK members (`kty`, `crv`, `x`, `y`, `n`, `e`) of this key.
    fn members(&self) -> Map<String, Value> {
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let mut m = Map::new();
        match self {
            Self::Ec { curve, x, y } => {
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), curve.name().into());
                m.insert("x".into(), b64(x));
                m.insert("y".into(), b64(y));
            }
            Self::Rsa { n, e } => {
                m.insert("kty".into(), "RSA".into());
                m.insert("n".into(), b64(n));
                m.insert("e".into(), b64(e));
            }
            Self::Ed25519 { x } => {
                m.insert("kty".into(), "OKP".into());
                m.insert("crv".into(), "Ed25519".into());
                m.insert("x".into(), b64(x));
            }
        }
        m
    }

    /// The public key of a certificate's SubjectPublicKeyInfo.
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, String> {
        let alg = &spki.algorithm.algorithm;
        if *alg == oid_registry::OID_SIG_ED25519 {
            return Ok(Self::Ed25519 {
                x: spki.subject_public_key.data.to_vec(),
            });
        }
        let parsed = spki
            .parsed()
            .map_err(|e| format!("unreadable public key: {e}"))?;
        match parsed {
            PublicKey::RSA(rsa) => Ok(Self::Rsa {
                n: strip_leading_zeros(rsa.modulus).to_vec(),
                e: strip_leading_zeros(rsa.exponent).to_vec(),
            }),
            PublicKey::EC(point) => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .ok_or("ec key without a named curve")?;
                let curve = if curve_oid == oid_registry::OID_EC_P256 {
                    EcCurve::P256
                } else if curve_oid == oid_registry::OID_NIST_EC_P384 {
                    EcCurve::P384
                } else if curve_oid == oid_registry::OID_NIST_EC_P521 {
                    EcCurve::P521
                } else {
                    return Err(format!("ec curve {curve_oid} is not supported"));
                };
                let n = curve.coordinate_len();
                match point.data() {
                    [0x04, xy @ ..] if xy.len() == 2 * n => {
                        let (x, y) = xy.split_at(n);
                        Ok(Self::Ec {
                            curve,
                            x: x.to_vec(),
                            y: y.to_vec(),
                        })
                    }
                    _ => Err("ec point is not an uncompressed point of its curve".into()),
                }
            }
            _ => Err(format!("public key algorithm {alg} is not supported")),
        }
    }

    /// Reads the key members of a JWK.
    fn from_jwk(jwk: &Jwk, index: usize) -> Result<Self, BundleError> {
        let unsupported = |reason: String| BundleError::UnsupportedKey { index, reason };
        let invalid = |reason: String| BundleError::InvalidKey { index, reason };
        let member = |name: &'static str, value: &Option<String>| {
            let text = value
                .as_deref()
                .ok_or_else(|| invalid(format!("missing {name:?}")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|e| invalid(format!("{name:?} is not base64url: {e}")))
        };
        match jwk.kty.as_deref() {
            Some("EC") => {
                let crv = jwk.crv.as_deref().unwrap_or_default();
                let curve = EcCurve::from_name(crv)
                    .ok_or_else(|| unsupported(format!("ec curve {crv:?}")))?;
                let (x, y) = (member("x", &jwk.x)?, member("y", &jwk.y)?);
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(invalid(format!("coordinates are not {crv} sized")));
                }
                let key = Self::Ec { curve, x, y };
                let point = key.ec_point().unwrap_or_default();
                aws_lc_rs::signature::ParsedPublicKey::new(curve.verification_alg(), &point)
                    .map_err(|_| invalid(format!("not a point on {crv}")))?;
                Ok(key)
            }
            Some("RSA") => {
                let (n, e) = (member("n", &jwk.n)?, member("e", &jwk.e)?);
                if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
                    return Err(invalid(
                        "rsa n and e must be minimal non-zero integers".into(),
                    ));
                }
                Ok(Self::Rsa { n, e })
            }
            Some("OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
                let x = member("x", &jwk.x)?;
                if x.len() != 32 {
                    return Err(invalid("ed25519 key is not 32 bytes".into()));
                }
                Ok(Self::Ed25519 { x })
            }
            Some(other) => Err(unsupported(format!("kty {other:?}"))),
            None => Err(invalid("missing \"kty\"".into())),
        }
    }
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        if rest.is_empty() {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// A key that can verify JWT-SVIDs, and its key ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwtAuthority {
    kid: String,
    key: PublicKeyJwk,
}

impl JwtAuthority {
    /// A JWT authority; the key ID must not be empty.
    pub fn new(kid: impl Into<String>, key: PublicKeyJwk) -> Result<Self, BundleError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(BundleError::MissingKid { index: 0 });
        }
        Ok(Self { kid, key })
    }

    /// The key ID (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key.
    pub fn key(&self) -> &PublicKeyJwk {
        &self.key
    }
}

/// The trust material of one trust domain.
#[derive(Clone)]
pub struct TrustBundle {
    trust_domain: TrustDomain,
    x509_authorities: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    x509_keys: Vec<PublicKeyJwk>,
    jwt_authorities: Vec<JwtAuthority>,
    sequence: Option<u64>,
    refresh_hint: Option<u64>,
}

/// One member of a JWK set, as far as a SPIFFE bundle uses it.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x5c: Option<Vec<String>>,
}

/// A SPIFFE bundle document.
#[derive(Deserialize)]
struct BundleDoc {
    keys: Option<Vec<Jwk>>,
    spiffe_sequence: Option<u64>,
    spiffe_refresh_hint: Option<u64>,
}

impl TrustBundle {
    /// An empty bundle, which trusts nothing.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            x509_authorities: Vec::new(),
            anchors: Vec::new(),
            x509_keys: Vec::new(),
            jwt_authorities: Vec::new(),
            sequence: None,
            refresh_hint: None,
        }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The X.509 authorities (root certificates, DER).
    pub fn x509_authorities(&self) -> &[CertificateDer<'static>] {
        &self.x509_authorities
    }

    /// The JWT authorities.
    pub fn jwt_authorities(&self) -> &[JwtAuthority] {
        &self.jwt_authorities
    }

    /// The JWT authority with key ID `kid`.
    pub fn jwt_authority(&self, kid: &str) -> Option<&JwtAuthority> {
        self.jwt_authorities.iter().find(|a| a.kid == kid)
    }

    /// `spiffe_sequence`, if set.
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// Sets or clears `spiffe_sequence`.
    pub fn set_sequence(&mut self, sequence: Option<u64>) {
        self.sequence = sequence;
    }

    /// `spiffe_refresh_hint` in seconds, if set.
    pub fn refresh_hint(&self) -> Option<u64> {
        self.refresh_hint
    }

    /// Sets or clears `spiffe_refresh_hint` (seconds).
    pub fn set_refresh_hint(&mut self, seconds: Option<u64>) {
        self.refresh_hint = seconds;
    }

    /// Adds an X.509 authority. It must parse, be usable as a trust anchor, and have a key we
    /// can express as a JWK. Adding a certificate already present changes nothing.
    pub fn add_x509_authority(&mut self, cert: CertificateDer<'static>) -> Result<(), BundleError> {
        let index = self.x509_authorities.len();
        self.add_x509_at(cert, index).map(|_| ())
    }

    /// Adds a JWT authority. A different key under an existing key ID is an error; the same
    /// key again changes nothing.
    pub fn add_jwt_authority(&mut self, authority: JwtAuthority) -> Result<(), BundleError> {
        match self.jwt_authority(&authority.kid) {
            Some(existing) if *existing == authority => Ok(()),
            Some(_) => Err(BundleError::DuplicateKid { kid: authority.kid }),
            None => {
                self.jwt_authorities.push(authority);
                Ok(())
            }
        }
    }

    /// Adds a certificate; returns its JWK. `index` names the entry in errors.
    fn add_x509_at(
        &mut self,
        cert: CertificateDer<'static>,
        index: usize,
    ) -> Result<PublicKeyJwk, BundleError> {
        let malformed = |reason: String| BundleError::MalformedCertificate { index, reason };
        let key = match x509_parser::parse_x509_certificate(&cert) {
            Ok(([], parsed)) => PublicKeyJwk::from_spki(parsed.public_key())
                .map_err(|reason| BundleError::UnsupportedKey { index, reason })?,
            Ok((rest, _)) => return Err(malformed(format!("{} trailing bytes", rest.len()))),
            Err(e) => return Err(malformed(e.to_string())),
        };
        if self.x509_authorities.contains(&cert) {
            return Ok(key);
        }
        let anchor = anchor_from_trusted_cert(&cert)
            .map_err(|e| malformed(format!("not usable as a trust anchor: {e}")))?
            .to_owned();
        self.x509_authorities.push(cert);
        self.anchors.push(anchor);
        self.x509_keys.push(key.clone());
        Ok(key)
    }

    /// The webpki trust anchors of the X.509 authorities.
    pub(crate) fn trust_anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// The X.509 authorities as concatenated CERTIFICATE blocks.
    pub fn to_pem(&self) -> String {
        self.x509_authorities
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect()
    }

    /// Reads X.509 authorities from CERTIFICATE blocks (go-spiffe's `x509bundle.Parse`):
    /// input with no certificate at all is an error, other PEM blocks are skipped.
    pub fn from_pem(trust_domain: TrustDomain, pem_bytes: &[u8]) -> Result<Self, BundleError> {
        let sections = pem::sections(pem_bytes).map_err(|e| BundleError::Pem {
            reason: e.to_string(),
        })?;
        let mut bundle = Self::new(trust_domain);
        let certs = sections
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate);
        for (index, (_, der)) in certs.enumerate() {
            bundle.add_x509_at(CertificateDer::from(der), index)?;
        }
        if bundle.x509_authorities.is_empty() {
            return Err(BundleError::NoCertificates);
        }
        Ok(bundle)
    }

    /// The bundle in the SPIFFE bundle format (pretty-printed JSON).
    pub fn to_jwks(&self) -> String {
        let x509 = self
            .x509_authorities
            .iter()
            .zip(&self.x509_keys)
            .map(|(cert, key)| {
                let mut m = key.members();
                m.insert("use".into(), X509_SVID_USE.into());
                m.insert("x5c".into(), json!([STANDARD.encode(cert)]));
                Value::Object(m)
            });
        let jwt = self.jwt_authorities.iter().map(|a| {
            let mut m = a.key.members();
            m.insert("use".into(), JWT_SVID_USE.into());
            m.insert("kid".into(), a.kid.clone().into());
            Value::Object(m)
        });
        let mut doc = Map::new();
        doc.insert("keys".into(), Value::Array(x509.chain(jwt).collect()));
        if let Some(sequence) = self.sequence {
            doc.insert("spiffe_sequence".into(), sequence.into());
        }
        if let Some(hint) = self.refresh_hint {
            doc.insert("spiffe_refresh_hint".into(), hint.into());
        }
        format!("{:#}", Value::Object(doc))
    }

    /// Reads a bundle in the SPIFFE bundle format (go-spiffe's `spiffebundle.Parse`).
    pub fn from_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc: BundleDoc = serde_json::from_slice(json).map_err(|e| BundleError::Json {
            reason: e.to_string(),
        })?;
        let keys = doc.keys.ok_or(BundleError::MissingKeys)?;
        let mut bundle = Self::new(trust_domain);
        bundle.sequence = doc.spiffe_sequence;
        bundle.refresh_hint = doc.spiffe_refresh_hint;

        for (index, jwk) in keys.iter().enumerate() {
            match jwk.key_use.as_deref() {
                Some(X509_SVID_USE) => bundle.add_x509_entry(jwk, index)?,
                Some(JWT_SVID_USE) => bundle.add_jwt_entry(jwk, index)?,
                // SPIFFE bundle spec 4.2: keys whose use is not understood are ignored.
                _ => {}
            }
        }
        Ok(bundle)
    }

    /// Reads a plain JWK set in which every key is a JWT authority (go-spiffe's
    /// `jwtbundle.Parse`); `use` is not consulted and every key needs a `kid`.
    pub fn from_jwt_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc: BundleDoc = serde_json::from_slice(json).map_err(|e| BundleError::Json {
            reason: e.to_string(),
        })?;
        let keys = doc.keys.ok_or(BundleError::MissingKeys)?;
        let mut bundle = Self::new(trust_domain);
        for (index, jwk) in keys.iter().enumerate() {
            bundle.add_jwt_entry(jwk, index)?;
        }
        Ok(bundle)
    }

    fn add_x509_entry(&mut self, jwk: &Jwk, index: usize) -> Result<(), BundleError> {
        let chain = jwk.x5c.as_deref().unwrap_or_default();
        let [cert_b64] = chain else {
            return Err(BundleError::X509EntryCertCount {
                index,
                count: chain.len(),
            });
        };
        let der = STANDARD
            .decode(cert_b64)
            .map_err(|e| BundleError::MalformedCertificate {
                index,
                reason: format!("x5c is not base64: {e}"),
            })?;
        let cert_key = self.add_x509_at(CertificateDer::from(der), index)?;
        // The JWK members, when present, must describe the certificate's own key.
        if jwk.kty.is_some() && PublicKeyJwk::from_jwk(jwk, index)? != cert_key {
            return Err(BundleError::X509KeyMismatch { index });
        }
        Ok(())
    }

    fn add_jwt_entry(&mut self, jwk: &Jwk, index: usize) -> Result<(), BundleError> {
        let kid = jwk.kid.clone().filter(|k| !k.is_empty());
        let kid = kid.ok_or(BundleError::MissingKid { index })?;
        let key = PublicKeyJwk::from_jwk(jwk, index)?;
        self.add_jwt_authority(JwtAuthority { kid, key })
    }
}

impl PartialEq for TrustBundle {
    fn eq(&self, other: &Self) -> bool {
        self.trust_domain == other.trust_domain
            && self.x509_authorities == other.x509_authorities
            && self.jwt_authorities == other.jwt_authorities
            && self.sequence == other.sequence
            && self.refresh_hint == other.refresh_hint
    }
}

impl Eq for TrustBundle {}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustBundle")
            .field("trust_domain", &self.trust_domain)
            .field("x509_authorities", &self.x509_authorities.len())
            .field(
                "jwt_authorities",
                &self
                    .jwt_authorities
                    .iter()
                    .map(|a| &a.kid)
                    .collect::<Vec<_>>(),
            )
            .field("sequence", &self.sequence)
            .field("refresh_hint", &self.refresh_hint)
            .finish()
    }
}

/// Trust bundles by trust domain: the bundle of each trust domain a verifier accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSet {
    bundles: BTreeMap<TrustDomain, TrustBundle>,
}

impl BundleSet {
    /// An empty set, which trusts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the bundle of the bundle's trust domain; returns the replaced one.
    pub fn insert(&mut self, bundle: TrustBundle) -> Option<TrustBundle> {
        self.bundles.insert(bundle.trust_domain.clone(), bundle)
    }

    /// The bundle of `trust_domain`.
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&TrustBundle> {
        self.bundles.get(trust_domain)
    }

    /// Removes the bundle of `trust_domain`.
    pub fn remove(&mut self, trust_domain: &TrustDomain) -> Option<TrustBundle> {
        self.bundles.remove(trust_domain)
    }

    /// The bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &TrustBundle> {
        self.bundles.values()
    }

    /// How many trust domains have a bundle.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    /// True when no trust domain has a bundle.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

impl FromIterator<TrustBundle> for BundleSet {
    fn from_iter<I: IntoIterator<Item = TrustBundle>>(iter: I) -> Self {
        let mut set = Self::new();
        for bundle in iter {
            set.insert(bundle);
        }
        set
    }
}
