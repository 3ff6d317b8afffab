//! Peer X509-SVID verification, and the rustls verifiers built on it.
//!
//! A peer's chain is verified against the bundle of the trust domain named in the leaf's own
//! SPIFFE ID, never against another trust domain's authorities. Every certificate's validity
//! window is checked, including a leaf that is itself a trust anchor; a failure that is only
//! a matter of time and disappears within the configured skew is accepted and reported.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use time::OffsetDateTime;

use crate::bundle::{BundleSet, TrustBundle};
use crate::error::{CertRole, NotSvidReason, SvidError};
use crate::spiffe_id::SpiffeId;
use crate::svid::{check_leaf_usage, leaf_spiffe_id, parse_cert, serial_hex};

/// Path validation is retried at most this many times at a shifted time (within the skew).
const MAX_TIME_SHIFTS: usize = 4;

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
#[derive(Debug)]
pub struct SvidVerifier {
    bundles: BundleSet,
    skew: Duration,
    algorithms: WebPkiSupportedAlgorithms,
    root_hints: Vec<DistinguishedName>,
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
        let leaf = parse_cert(end_entity, 0)?;
        let id = leaf_spiffe_id(&leaf)?;
        check_leaf_usage(&leaf)?;

        // The leaf's own window is checked here, whatever path validation does later, so a
        // leaf that is also a trust anchor ("pinned") is never exempt from it.
        let validity = leaf.validity();
        let not_after = validity.not_after.to_datetime();
        let leaf_skewed = self.check_window(
            CertRole::Leaf,
            validity.not_before.to_datetime(),
            not_after,
            now,
        )?;
        let serial_hex = serial_hex(&leaf);

        let bundle = self
            .bundles
            .get(id.trust_domain())
            .ok_or_else(|| SvidError::UnknownTrustDomain(id.trust_domain().clone()))?;
        let path_skewed = self.verify_path(end_entity, intermediates, bundle, usage, now)?;

        Ok(VerifiedPeer {
            id,
            serial_hex,
            not_after,
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

        let mut at = now_secs;
        let mut last_error = None;
        for _ in 0..MAX_TIME_SHIFTS {
            let time = UnixTime::since_unix_epoch(Duration::from_secs(at));
            let result = ee.verify_for_usage(
                self.algorithms.all,
                bundle.trust_anchors(),
                intermediates,
                time,
                usage.key_usage(),
                None,
                None,
            );
            let error = match result {
                Ok(_) => return Ok(at != now_secs),
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
