//! Shared fixtures: a fixed clock, and a hand-built PKI for certificates the CA would refuse
//! to issue.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tenet_identity::{BundleSet, SpiffeId, SvidVerifier, TrustBundle, TrustDomain};
use time::OffsetDateTime;
use time::macros::datetime;

/// The fixed "now" of the tests.
pub const T: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);

pub fn hours(h: i64) -> time::Duration {
    time::Duration::hours(h)
}

pub fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

pub fn verifier_for(
    bundles: impl IntoIterator<Item = TrustBundle>,
    skew_secs: u64,
) -> SvidVerifier {
    SvidVerifier::new(
        bundles.into_iter().collect::<BundleSet>(),
        Duration::from_secs(skew_secs),
    )
}

/// A root and an intermediate built directly with rcgen.
pub struct TestPki {
    pub trust_domain: TrustDomain,
    pub root_cert: CertificateDer<'static>,
    pub intermediate_cert: CertificateDer<'static>,
    intermediate: Issuer<'static, KeyPair>,
}

fn ca(
    td: &TrustDomain,
    cn: &str,
    path_len: u8,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.not_before = from;
    p.not_after = to;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::URI(td.id().as_str().try_into().unwrap())];
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl TestPki {
    /// Root and intermediate valid T-1y..T+1y.
    pub fn new(trust_domain: &str) -> Self {
        Self::with_intermediate_window(trust_domain, T - hours(24 * 365), T + hours(24 * 365))
    }

    pub fn with_intermediate_window(
        trust_domain: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Self {
        let trust_domain = td(trust_domain);
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca(
            &trust_domain,
            "test root",
            1,
            T - hours(24 * 3650),
            T + hours(24 * 3650),
        );
        let root_cert = root_params.self_signed(&root_key).unwrap().der().clone();
        let root = Issuer::new(root_params, root_key);

        let key = KeyPair::generate().unwrap();
        let mut params = ca(&trust_domain, "test intermediate", 0, from, to);
        params.use_authority_key_identifier_extension = true;
        let intermediate_cert = params.signed_by(&key, &root).unwrap().der().clone();
        Self {
            trust_domain,
            root_cert,
            intermediate_cert,
            intermediate: Issuer::new(params, key),
        }
    }

    pub fn bundle(&self) -> TrustBundle {
        let mut bundle = TrustBundle::new(self.trust_domain.clone());
        bundle.add_x509_authority(self.root_cert.clone()).unwrap();
        bundle
    }

    /// Leaf parameters shaped like an SVID for `uri`, valid T-1h..T+1h; `edit` changes them.
    pub fn leaf_params(uri: &str) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.not_before = T - hours(1);
        p.not_after = T + hours(1);
        p.distinguished_name = DistinguishedName::new();
        p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        p
    }

    /// Signs a leaf; returns `[leaf, intermediate]` and the leaf key.
    pub fn leaf(
        &self,
        params: &CertificateParams,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let leaf = params
            .signed_by(&key, &self.intermediate)
            .unwrap()
            .der()
            .clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![leaf, self.intermediate_cert.clone()], key)
    }

    /// An SVID-shaped leaf for `uri` with the default window.
    pub fn svid(&self, uri: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        self.leaf(&Self::leaf_params(uri))
    }
}
