//! Peer X509-SVID verification, and the rustls verifiers built on it.
//!
//! A peer's chain is verified against the bundle of the trust domain named in the leaf's own
//! SPIFFE ID, never against another trust domain's authorities. Every certificate's validity
//! window is checked, including a leaf that is itself a trust anchor; a failure that is only
//! a matter of time and disappears within the configured skew is accepted and reported.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, FipsStatus, InvalidSignature, ServerName,
    SignatureVerificationAlgorithm, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use time::OffsetDateTime;

use crate::bundle::{BundleSet, TrustBundle};
use crate::error::{CertRole, NotSvidReason, SvidError};
use crate::memo::{Memo, MemoKey, der_key, signature_key};
use crate::spiffe_id::SpiffeId;
use crate::svid::{check_leaf_usage, leaf_spiffe_id, parse_cert, serial_hex};

/// Path validation is retried at most this many times at a shifted time (within the skew).
const MAX_TIME_SHIFTS: usize = 4;
/// Leaves whose SVID shape checks are remembered, per generation (see [`crate::memo`]).
const LEAF_MEMO_CAPACITY: usize = 2048;
/// Certificate signatures whose verification is remembered, per generation: about one per
/// leaf plus the intermediates.
const SIGNATURE_MEMO_CAPACITY: usize = 4096;

/// What the peer's certificate is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    /// The peer is a TLS client (extended key usage clientAuth, if the leaf restricts it).
    Client,
    /// The peer is a TLS server (extended key usage serverAuth, if the leaf restricts it).
    Server,
}

impl Usage {
    fn key_usage(self) -> webpki::KeyUsage {
        match self {
            Self::Client => webpki::KeyUsage::client_auth(),
            Self::Server => webpki::KeyUsage::server_auth(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// A peer whose X509-SVID verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// The SPIFFE ID of the leaf.
    pub id: SpiffeId,
    /// The leaf's serial number, lowercase hex.
    pub serial_hex: String,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// True when a certificate was outside its validity window at the verification time and
    /// was accepted only because of the allowed clock skew; callers should log a warning.
    pub within_skew: bool,
}

/// Verifies peer X509-SVIDs against a set of trust bundles.
///
/// What depends only on the certificate bytes (a leaf's SVID shape checks and the facts read
/// from it, and each certificate signature in a verified path) is remembered for SVIDs seen
/// again; the time, the bundle, the path and the key usage are checked on every call.
#[derive(Debug)]
pub struct SvidVerifier {
    bundles: BundleSet,
    skew: Duration,
    algorithms: WebPkiSupportedAlgorithms,
    root_hints: Vec<DistinguishedName>,
    leaves: Memo<LeafFacts>,
    signatures: Memo<()>,
}

/// What a leaf that passed the SVID shape checks says about itself.
#[derive(Debug, Clone)]
struct LeafFacts {
    id: SpiffeId,
    serial_hex: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl LeafFacts {
    /// Parses a leaf and applies the SVID shape rules: exactly one URI SAN holding a SPIFFE ID
    /// with a path, not a CA, digitalSignature and no keyCertSign/cRLSign.
    fn read(end_entity: &CertificateDer<'_>) -> Result<Self, SvidError> {
        let leaf = parse_cert(end_entity, 0)?;
        let id = leaf_spiffe_id(&leaf)?;
        check_leaf_usage(&leaf)?;
        let validity = leaf.validity();
        Ok(Self {
            id,
            serial_hex: serial_hex(&leaf),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }
}

impl SvidVerifier {
    /// A verifier trusting `bundles`, tolerating clock differences up to `skew`.
    pub fn new(bundles: BundleSet, skew: Duration) -> Self {
        let root_hints = bundles
            .iter()
            .flat_map(TrustBundle::trust_anchors)
            .map(|anchor| DistinguishedName::in_sequence(anchor.subject.as_ref()))
            .collect();
        Self {
            bundles,
            skew,
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
            root_hints,
            leaves: Memo::new(LEAF_MEMO_CAPACITY),
            signatures: Memo::new(SIGNATURE_MEMO_CAPACITY),
        }
    }

    /// The trusted bundles.
    pub fn bundles(&self) -> &BundleSet {
        &self.bundles
    }

    /// The allowed clock skew.
    pub fn skew(&self) -> Duration {
        self.skew
    }

    /// Verifies a peer's leaf and intermediates at `now`: first the SVID rules (exactly one
    /// URI SAN holding a SPIFFE ID with a path, not a CA, digitalSignature and no
    /// keyCertSign/cRLSign), then the leaf's validity window, then the path to an X.509
    /// authority of the leaf's own trust domain with the EKU `usage` asks for.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        usage: Usage,
        now: OffsetDateTime,
    ) -> Result<VerifiedPeer, SvidError> {
        let leaf_key = der_key(end_entity);
        let remembered = self.leaves.get(&leaf_key);
        let known = remembered.is_some();
        let leaf = match remembered {
            Some(facts) => facts,
            None => LeafFacts::read(end_entity)?,
        };

        // The leaf's own window is checked here, whatever path validation does later, so a
        // leaf that is also a trust anchor ("pinned") is never exempt from it.
        let leaf_skewed =
            self.check_window(CertRole::Leaf, leaf.not_before, leaf.not_after, now)?;

        let bundle = self
            .bundles
            .get(leaf.id.trust_domain())
            .ok_or_else(|| SvidError::UnknownTrustDomain(leaf.id.trust_domain().clone()))?;
        let path_skewed = self.verify_path(end_entity, intermediates, bundle, usage, now)?;

        if !known {
            self.leaves.insert(leaf_key, leaf.clone());
        }
        Ok(VerifiedPeer {
            id: leaf.id,
            serial_hex: leaf.serial_hex,
            not_after: leaf.not_after,
            within_skew: leaf_skewed || path_skewed,
        })
    }

    /// Ok(true) when `now` is outside the window by no more than the skew.
    fn check_window(
        &self,
        role: CertRole,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, SvidError> {
        if now > not_after {
            if now - not_after <= self.skew {
                return Ok(true);
            }
            return Err(SvidError::Expired {
                role,
                not_after,
                now,
            });
        }
        if now < not_before {
            if not_before - now <= self.skew {
                return Ok(true);
            }
            return Err(SvidError::NotYetValid {
                role,
                not_before,
                now,
            });
        }
        Ok(false)
    }

    /// webpki path validation. When it fails on a validity window that ends or starts within
    /// the skew of `now`, it is retried at that boundary; Ok(true) reports such a retry.
    fn verify_path(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        bundle: &TrustBundle,
        usage: Usage,
        now: OffsetDateTime,
    ) -> Result<bool, SvidError> {
        let untrusted = |reason: &str| SvidError::UntrustedChain {
            trust_domain: bundle.trust_domain().clone(),
            reason: reason.to_owned(),
        };
        if bundle.trust_anchors().is_empty() {
            return Err(untrusted("the bundle has no x509 authorities"));
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|e| {
            SvidError::MalformedCertificate {
                index: 0,
                reason: e.to_string(),
            }
        })?;
        let now_secs =
            u64::try_from(now.unix_timestamp()).map_err(|_| SvidError::TimeOutOfRange(now))?;
        let skew_secs = i128::from(self.skew.as_secs());

        // Signatures checked by this call are remembered only if the whole path verifies.
        let checked = Mutex::new(Vec::new());
        let memoized: Vec<MemoizedAlgorithm<'_>> = self
            .algorithms
            .all
            .iter()
            .enumerate()
            .map(|(index, &inner)| MemoizedAlgorithm {
                index,
                inner,
                memo: &self.signatures,
                checked: &checked,
            })
            .collect();
        let algorithms: Vec<&dyn SignatureVerificationAlgorithm> = memoized
            .iter()
            .map(|alg| alg as &dyn SignatureVerificationAlgorithm)
            .collect();

        let mut at = now_secs;
        let mut last_error = None;
        for _ in 0..MAX_TIME_SHIFTS {
            let time = UnixTime::since_unix_epoch(Duration::from_secs(at));
            let result = ee.verify_for_usage(
                &algorithms,
                bundle.trust_anchors(),
                intermediates,
                time,
                usage.key_usage(),
                None,
                None,
            );
            let error = match result {
                Ok(_) => {
                    let checked = checked.into_inner().unwrap_or_else(PoisonError::into_inner);
                    self.signatures.insert_all(checked, ());
                    return Ok(at != now_secs);
                }
                Err(error) => error,
            };
            let shifted = match &error {
                webpki::Error::CertExpired { not_after, .. } => Some(not_after.as_secs()),
                webpki::Error::CertNotValidYet { not_before, .. } => Some(not_before.as_secs()),
                _ => None,
            };
            last_error = Some(error);
            match shifted {
                Some(boundary)
                    if (i128::from(boundary) - i128::from(now_secs)).abs() <= skew_secs
                        && boundary != at =>
                {
                    at = boundary;
                }
                _ => break,
            }
        }
        let error = last_error.unwrap_or(webpki::Error::UnknownIssuer);
        Err(map_webpki_error(error, bundle, usage, now))
    }

    /// The subjects of all X.509 authorities, for the TLS CertificateRequest.
    fn root_hints(&self) -> &[DistinguishedName] {
        &self.root_hints
    }
}

/// A signature algorithm of the verifier that skips the arithmetic for a signature it has
/// already verified in a path that verified: same algorithm, key, message and signature bytes.
/// webpki still chooses the algorithm, checks the key's algorithm identifier and counts the
/// check against its budget exactly as without the memo.
#[derive(Debug)]
struct MemoizedAlgorithm<'a> {
    index: usize,
    inner: &'static dyn SignatureVerificationAlgorithm,
    memo: &'a Memo<()>,
    /// Keys of the signatures this verification checked.
    checked: &'a Mutex<Vec<MemoKey>>,
}

impl SignatureVerificationAlgorithm for MemoizedAlgorithm<'_> {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = signature_key(self.index, public_key, message, signature);
        if self.memo.get(&key).is_none() {
            self.inner
                .verify_signature(public_key, message, signature)?;
            self.checked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(key);
        }
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips_status(&self) -> FipsStatus {
        self.inner.fips_status()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// Translates a webpki path error into an SVID error.
fn map_webpki_error(
    error: webpki::Error,
    bundle: &TrustBundle,
    usage: Usage,
    now: OffsetDateTime,
) -> SvidError {
    let untrusted = |reason: String| SvidError::UntrustedChain {
        trust_domain: bundle.trust_domain().clone(),
        reason,
    };
    #[allow(
        deprecated,
        reason = "webpki may still return the context-free variant"
    )]
    match error {
        webpki::Error::CertExpired { not_after, .. } => SvidError::Expired {
            role: CertRole::Chain,
            not_after: to_datetime(not_after),
            now,
        },
        webpki::Error::CertNotValidYet { not_before, .. } => SvidError::NotYetValid {
            role: CertRole::Chain,
            not_before: to_datetime(not_before),
            now,
        },
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
            SvidError::WrongUsage {
                usage: usage.name(),
            }
        }
        webpki::Error::CaUsedAsEndEntity => SvidError::NotSvid(NotSvidReason::LeafIsCa),
        webpki::Error::UnknownIssuer => {
            untrusted("no path to an x509 authority of this trust domain (unknown issuer)".into())
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            untrusted("a signature in the chain does not verify".into())
        }
        other => untrusted(other.to_string()),
    }
}

fn to_datetime(t: UnixTime) -> OffsetDateTime {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_unix(t: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

/// Converts rustls's clock reading for [`SvidVerifier::verify`].
fn from_rustls_time(now: UnixTime) -> Result<OffsetDateTime, rustls::Error> {
    i64::try_from(now.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(rustls::Error::FailedToGetCurrentTime)
}

/// Maps an SVID error to a rustls error: validity-window errors become the standard
/// expired / not-yet-valid certificate errors (and TLS alerts); every other error is carried
/// whole in `CertificateError::Other`, where [`svid_error_of`] finds it again.
pub fn to_rustls_error(error: SvidError) -> rustls::Error {
    let cert_error = match &error {
        SvidError::Expired { not_after, now, .. } => CertificateError::ExpiredContext {
            time: to_unix(*now),
            not_after: to_unix(*not_after),
        },
        SvidError::NotYetValid {
            not_before, now, ..
        } => CertificateError::NotValidYetContext {
            time: to_unix(*now),
            not_before: to_unix(*not_before),
        },
        _ => CertificateError::Other(OtherError(Arc::new(error))),
    };
    rustls::Error::InvalidCertificate(cert_error)
}

/// The SVID error inside a rustls error produced by this crate's verifiers, if any.
pub fn svid_error_of(error: &rustls::Error) -> Option<&SvidError> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<SvidError>()
        }
        _ => None,
    }
}

/// Identity facts of a certificate that a handshake already verified (URI SAN rules only; no
/// chain or time checks): its SPIFFE ID, serial and notAfter. `within_skew` is always false.
pub fn peer_identity(end_entity: &CertificateDer<'_>) -> Result<VerifiedPeer, SvidError> {
    let leaf = parse_cert(end_entity, 0)?;
    Ok(VerifiedPeer {
        id: leaf_spiffe_id(&leaf)?,
        serial_hex: serial_hex(&leaf),
        not_after: leaf.validity().not_after.to_datetime(),
        within_skew: false,
    })
}

/// The SPIFFE ID of a certificate that a handshake already verified (URI SAN rules only; no
/// chain or time checks).
pub fn peer_spiffe_id(end_entity: &CertificateDer<'_>) -> Result<SpiffeId, SvidError> {
    leaf_spiffe_id(&parse_cert(end_entity, 0)?)
}

/// A rustls client-certificate verifier accepting X509-SVIDs that `verifier` accepts for
/// client use. With `mandatory` false, clients without a certificate are let through (and
/// must then be treated as anonymous).
pub fn client_cert_verifier(
    verifier: Arc<SvidVerifier>,
    mandatory: bool,
) -> Arc<dyn ClientCertVerifier> {
    Arc::new(SpiffeClientCertVerifier {
        verifier,
        mandatory,
    })
}

/// A rustls server-certificate verifier accepting X509-SVIDs that `verifier` accepts for
/// server use. The TLS server name is ignored; with `expected`, the server's SPIFFE ID must
/// equal it.
pub fn server_cert_verifier(
    verifier: Arc<SvidVerifier>,
    expected: Option<SpiffeId>,
) -> Arc<dyn ServerCertVerifier> {
    Arc::new(SpiffeServerCertVerifier { verifier, expected })
}

#[derive(Debug)]
struct SpiffeClientCertVerifier {
    verifier: Arc<SvidVerifier>,
    mandatory: bool,
}

impl ClientCertVerifier for SpiffeClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.verifier.root_hints()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let now = from_rustls_time(now)?;
        self.verifier
            .verify(end_entity, intermediates, Usage::Client, now)
            .map(|_| ClientCertVerified::assertion())
            .map_err(to_rustls_error)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.verifier.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.verifier.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.algorithms.supported_schemes()
    }
}

#[derive(Debug)]
struct SpiffeServerCertVerifier {
    verifier: Arc<SvidVerifier>,
    expected: Option<SpiffeId>,
}

impl ServerCertVerifier for SpiffeServerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = from_rustls_time(now)?;
        let peer = self
            .verifier
            .verify(end_entity, intermediates, Usage::Server, now)
            .map_err(to_rustls_error)?;
        match &self.expected {
            Some(expected) if *expected != peer.id => {
                Err(to_rustls_error(SvidError::UnexpectedPeer {
                    expected: expected.clone(),
                    actual: peer.id,
                }))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.verifier.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.verifier.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        Some(self.verifier.root_hints())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use time::macros::datetime;

    use super::*;
    use crate::ca::CertificateAuthority;
    use crate::spiffe_id::TrustDomain;

    const NOW: OffsetDateTime = datetime!(2030-01-01 00:00:00 UTC);
    const HOUR: Duration = Duration::from_secs(3600);

    fn pki(trust_domain: &str) -> (CertificateAuthority, Vec<CertificateDer<'static>>) {
        let td = TrustDomain::parse(trust_domain).unwrap();
        let ca = CertificateAuthority::generate(&td, NOW).unwrap();
        let id = SpiffeId::parse(&format!("spiffe://{trust_domain}/ns/a/sa/b")).unwrap();
        let svid = ca.issue_x509_svid(&id, HOUR, NOW).unwrap();
        (ca, svid.cert_chain().to_vec())
    }

    fn verifier(ca: &CertificateAuthority) -> SvidVerifier {
        SvidVerifier::new([ca.bundle()].into_iter().collect(), Duration::ZERO)
    }

    #[test]
    fn only_verified_paths_are_remembered() {
        let (ca, chain) = pki("prod.example.test");
        let verifier = verifier(&ca);
        let verify = |chain: &[CertificateDer<'static>], now| {
            verifier.verify(&chain[0], &chain[1..], Usage::Client, now)
        };

        // Expired: nothing is remembered.
        let late = NOW + time::Duration::hours(2);
        assert!(matches!(
            verify(&chain, late),
            Err(SvidError::Expired { .. })
        ));
        assert_eq!((verifier.leaves.len(), verifier.signatures.len()), (0, 0));

        // Another authority of the same trust domain: refused, nothing remembered.
        let (_, foreign) = pki("prod.example.test");
        assert!(matches!(
            verify(&foreign, NOW),
            Err(SvidError::UntrustedChain { .. })
        ));
        assert_eq!((verifier.leaves.len(), verifier.signatures.len()), (0, 0));

        // Verified: the leaf and the two signatures of its path (leaf, intermediate).
        let first = verify(&chain, NOW).unwrap();
        assert_eq!((verifier.leaves.len(), verifier.signatures.len()), (1, 2));
        assert_eq!(verify(&chain, NOW).unwrap(), first);
        assert_eq!((verifier.leaves.len(), verifier.signatures.len()), (1, 2));
    }

    #[test]
    fn remembered_results_do_not_replace_checks() {
        let (ca, chain) = pki("prod.example.test");
        let verifier = verifier(&ca);
        verifier
            .verify(&chain[0], &chain[1..], Usage::Client, NOW)
            .unwrap();

        // The time is checked again.
        let late = NOW + time::Duration::hours(2);
        assert!(matches!(
            verifier.verify(&chain[0], &chain[1..], Usage::Client, late),
            Err(SvidError::Expired { .. })
        ));
        // The path is built again: without the intermediate there is none.
        assert!(matches!(
            verifier.verify(&chain[0], &[], Usage::Client, NOW),
            Err(SvidError::UntrustedChain { .. })
        ));
        // The signature bytes are part of what is remembered: the same leaf with another
        // signature is checked, and fails.
        let mut forged = chain[0].to_vec();
        let last = forged.last_mut().unwrap();
        *last ^= 1;
        assert!(matches!(
            verifier.verify(
                &CertificateDer::from(forged),
                &chain[1..],
                Usage::Client,
                NOW
            ),
            Err(SvidError::UntrustedChain { .. })
        ));
        // Another verifier, whose bundle is another authority, refuses the remembered chain.
        let (other, _) = pki("prod.example.test");
        assert!(matches!(
            self::verifier(&other).verify(&chain[0], &chain[1..], Usage::Client, NOW),
            Err(SvidError::UntrustedChain { .. })
        ));
        // The one that verified it still does.
        assert!(
            verifier
                .verify(&chain[0], &chain[1..], Usage::Client, NOW)
                .is_ok()
        );
    }

    /// Accepts signatures whose first byte is 1, and counts its calls.
    #[derive(Debug)]
    struct Counting(AtomicUsize);

    impl SignatureVerificationAlgorithm for Counting {
        fn verify_signature(&self, _: &[u8], _: &[u8], sig: &[u8]) -> Result<(), InvalidSignature> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match sig.first() {
                Some(1) => Ok(()),
                _ => Err(InvalidSignature),
            }
        }

        fn public_key_alg_id(&self) -> AlgorithmIdentifier {
            rustls::pki_types::alg_id::ECDSA_P256
        }

        fn signature_alg_id(&self) -> AlgorithmIdentifier {
            rustls::pki_types::alg_id::ECDSA_SHA256
        }
    }

    #[test]
    fn memoized_algorithm_skips_only_remembered_checks() {
        static COUNTING: Counting = Counting(AtomicUsize::new(0));
        let calls = || COUNTING.0.load(Ordering::SeqCst);
        let memo = Memo::new(16);
        let checked = Mutex::new(Vec::new());
        let alg = MemoizedAlgorithm {
            index: 0,
            inner: &COUNTING,
            memo: &memo,
            checked: &checked,
        };
        assert_eq!(alg.signature_alg_id(), COUNTING.signature_alg_id());
        assert_eq!(alg.public_key_alg_id(), COUNTING.public_key_alg_id());

        assert!(alg.verify_signature(b"key", b"msg", &[1]).is_ok());
        assert_eq!(calls(), 1);
        // Not remembered until the caller's path verified.
        assert!(alg.verify_signature(b"key", b"msg", &[1]).is_ok());
        assert_eq!(calls(), 2);
        memo.insert_all(checked.lock().unwrap().drain(..), ());
        assert!(alg.verify_signature(b"key", b"msg", &[1]).is_ok());
        assert_eq!(calls(), 2);
        // Any other byte anywhere is checked, and failures are never recorded.
        assert!(alg.verify_signature(b"key", b"msg", &[2]).is_err());
        assert!(alg.verify_signature(b"kez", b"msg", &[1]).is_ok());
        assert!(alg.verify_signature(b"key", b"msh", &[1]).is_ok());
        assert_eq!(calls(), 5);
        assert_eq!(checked.lock().unwrap().len(), 2);
        // Another algorithm index is another check.
        let other = MemoizedAlgorithm { index: 1, ..alg };
        assert!(other.verify_signature(b"key", b"msg", &[1]).is_ok());
        assert_eq!(calls(), 6);
    }
}
