//! Typed errors of the identity crate, one enum per concern, each message naming the input.

use std::fmt;
use std::path::PathBuf;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::spiffe_id::{SpiffeId, TrustDomain};

/// What a SPIFFE ID or trust domain parser was asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseTarget {
    /// A full `spiffe://` ID.
    SpiffeId,
    /// A bare trust domain name.
    TrustDomain,
}

impl fmt::Display for ParseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SpiffeId => f.write_str("spiffe id"),
            Self::TrustDomain => f.write_str("trust domain"),
        }
    }
}

/// Why a SPIFFE ID or trust domain was rejected. The wording follows go-spiffe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdErrorKind {
    /// The input is the empty string.
    #[error("cannot be empty")]
    Empty,
    /// The input is longer than the SPIFFE limit.
    #[error("is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// The input does not start with `spiffe://` (lowercase).
    #[error("scheme is missing or invalid")]
    BadScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain is missing")]
    MissingTrustDomain,
    /// A character outside `[a-z0-9._-]` in the trust domain.
    #[error(
        "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and \
         underscores (found {found:?} at byte {at})"
    )]
    BadTrustDomainChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the input.
        at: usize,
    },
    /// A character outside `[a-zA-Z0-9._-]` in a path segment (this includes `%`).
    #[error(
        "path segment characters are limited to letters, numbers, dots, dashes, and underscores \
         (found {found:?} at byte {at})"
    )]
    BadPathChar {
        /// The offending character.
        found: char,
        /// Its byte offset in the input.
        at: usize,
    },
    /// `//` in the path.
    #[error("path cannot contain empty segments")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path cannot contain dot segments")]
    DotSegment,
    /// The path ends with `/`.
    #[error("path cannot have a trailing slash")]
    TrailingSlash,
}

/// A SPIFFE ID or trust domain that does not parse. Parsers never decode or repair input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {target} {input:?}: {kind}")]
pub struct SpiffeIdError {
    target: ParseTarget,
    input: String,
    kind: SpiffeIdErrorKind,
}

/// Inputs quoted in error messages are cut to this many characters.
const QUOTE_LIMIT: usize = 128;

impl SpiffeIdError {
    pub(crate) fn new(target: ParseTarget, input: &str, kind: SpiffeIdErrorKind) -> Self {
        let input = if input.chars().count() > QUOTE_LIMIT {
            let mut cut: String = input.chars().take(QUOTE_LIMIT).collect();
            cut.push('…');
            cut
        } else {
            input.to_owned()
        };
        Self {
            target,
            input,
            kind,
        }
    }

    /// What was being parsed.
    pub fn target(&self) -> ParseTarget {
        self.target
    }

    /// The rejected input (cut to 128 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was rejected.
    pub fn kind(&self) -> &SpiffeIdErrorKind {
        &self.kind
    }
}

/// Formats a timestamp as RFC 3339 for error messages.
pub(crate) fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Why a certificate is not an acceptable X509-SVID (SPIFFE X509-SVID spec, sections 2 to 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotSvidReason {
    /// No URI SAN; the subject CN is never read as an identity.
    #[error("certificate has no uri san (the subject common name is never used as an identity)")]
    NoUriSan,
    /// More than one URI SAN (of any scheme).
    #[error("certificate has {count} uri sans; an x509-svid has exactly one")]
    MultipleUriSans {
        /// How many URI SANs were found.
        count: usize,
    },
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("uri san is not a valid spiffe id: {0}")]
    InvalidId(SpiffeIdError),
    /// The SPIFFE ID names a trust domain, not a workload.
    #[error("spiffe id {id} has no path; a leaf svid must name a workload")]
    IdWithoutPath {
        /// The path-less ID.
        id: SpiffeId,
    },
    /// The leaf has basicConstraints cA=true.
    #[error("leaf certificate must not have the ca flag set")]
    LeafIsCa,
    /// The leaf has no keyUsage digitalSignature bit.
    #[error("leaf certificate must have digitalSignature in its key usage")]
    MissingDigitalSignature,
    /// The leaf may sign certificates.
    #[error("leaf certificate must not have keyCertSign in its key usage")]
    LeafKeyCertSign,
    /// The leaf may sign CRLs.
    #[error("leaf certificate must not have cRLSign in its key usage")]
    LeafCrlSign,
    /// A signing certificate in the chain is not a CA.
    #[error("signing certificate {index} in the chain must have the ca flag set")]
    SigningCertNotCa {
        /// Position in the chain (the leaf is 0).
        index: usize,
    },
    /// A signing certificate in the chain lacks keyCertSign.
    #[error("signing certificate {index} in the chain must have keyCertSign in its key usage")]
    SigningCertNoKeyCertSign {
        /// Position in the chain (the leaf is 0).
        index: usize,
    },
    /// An extension the rules depend on is malformed or duplicated.
    #[error("certificate {index} has malformed extensions: {reason}")]
    BadExtensions {
        /// Position in the chain (the leaf is 0).
        index: usize,
        /// Parser detail.
        reason: String,
    },
}

/// Which certificate a validity-window error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The end-entity (leaf) certificate.
    Leaf,
    /// A certificate on the path to the trust anchor (intermediate or anchor).
    Chain,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf => f.write_str("leaf certificate"),
            Self::Chain => f.write_str("a certificate in the chain"),
        }
    }
}

/// Errors reading an X509-SVID or verifying a peer's one.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// The certificate input is not usable PEM.
    #[error("certificate pem is unreadable: {reason}")]
    CertificatePem {
        /// What is wrong with it.
        reason: String,
    },
    /// PEM was read, but no CERTIFICATE block was in it.
    #[error("no certificates found in the certificate pem")]
    NoCertificates,
    /// A certificate does not parse as X.509 DER.
    #[error("certificate {index} is malformed: {reason}")]
    MalformedCertificate {
        /// Position in the chain (the leaf is 0).
        index: usize,
        /// Parser detail.
        reason: String,
    },
    /// The key input is not usable PEM.
    #[error("private key pem is unreadable: {reason}")]
    KeyPem {
        /// What is wrong with it.
        reason: String,
    },
    /// PEM was read, but no private key block was in it.
    #[error("no private key found in the key pem")]
    NoPrivateKey,
    /// The key is PKCS#1 or SEC1, not PKCS#8.
    #[error("private key is {found}, expected pkcs#8 (\"PRIVATE KEY\")")]
    KeyNotPkcs8 {
        /// The PEM label that was found.
        found: &'static str,
    },
    /// More than one private key was found.
    #[error("key pem holds {count} private keys, expected one")]
    MultipleKeys {
        /// How many were found.
        count: usize,
    },
    /// The PKCS#8 key does not parse or is of an unsupported type.
    #[error("private key is malformed or of an unsupported type")]
    MalformedKey,
    /// The private key is not the leaf certificate's key.
    #[error("private key does not match the leaf certificate's public key")]
    KeyMismatch,
    /// The certificate breaks an X509-SVID rule.
    #[error("not an x509-svid: {0}")]
    NotSvid(NotSvidReason),
    /// No bundle is configured for the trust domain in the leaf's SPIFFE ID.
    #[error("unknown trust domain {0:?}: no trust bundle is configured for it")]
    UnknownTrustDomain(TrustDomain),
    /// A certificate is past its notAfter (beyond the allowed skew).
    #[error("{role} expired at {}, verification time {}", rfc3339(.not_after), rfc3339(.now))]
    Expired {
        /// Which certificate.
        role: CertRole,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// The verification time.
        now: OffsetDateTime,
    },
    /// A certificate is before its notBefore (beyond the allowed skew).
    #[error(
        "{role} is not valid before {}, verification time {}",
        rfc3339(.not_before),
        rfc3339(.now)
    )]
    NotYetValid {
        /// Which certificate.
        role: CertRole,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// The verification time.
        now: OffsetDateTime,
    },
    /// The chain does not lead to an X.509 authority of the leaf's own trust domain.
    #[error("certificate chain does not verify against the bundle of {trust_domain:?}: {reason}")]
    UntrustedChain {
        /// The leaf's trust domain.
        trust_domain: TrustDomain,
        /// What path validation reported.
        reason: String,
    },
    /// The leaf's extended key usage does not allow this use.
    #[error("certificate is not valid for {usage} authentication (extended key usage)")]
    WrongUsage {
        /// The requested use.
        usage: &'static str,
    },
    /// The peer has a valid SVID, but not the one that was expected.
    #[error("peer is {actual}, expected {expected}")]
    UnexpectedPeer {
        /// The ID the caller asked for.
        expected: SpiffeId,
        /// The ID the peer presented.
        actual: SpiffeId,
    },
    /// The verification time cannot be expressed as a certificate time.
    #[error("verification time {} is out of range", rfc3339(.0))]
    TimeOutOfRange(OffsetDateTime),
}

/// Errors of the certificate authority: issuance, CSR signing, and key storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The ID to issue for belongs to another trust domain.
    #[error("cannot issue for {id}: it is outside trust domain {trust_domain:?}")]
    ForeignTrustDomain {
        /// The requested ID.
        id: SpiffeId,
        /// This CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// The ID to issue for has no path.
    #[error("cannot issue for {id}: an svid must name a workload, and this id has no path")]
    IdWithoutPath {
        /// The requested ID.
        id: SpiffeId,
    },
    /// The TTL is zero or cannot be represented.
    #[error("invalid ttl {ttl:?}: {reason}")]
    InvalidTtl {
        /// The requested TTL.
        ttl: std::time::Duration,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A JWT-SVID needs at least one non-empty audience.
    #[error("a jwt-svid needs at least one non-empty audience")]
    EmptyAudience,
    /// The intermediate CA has expired; a new CA generation is needed.
    #[error("intermediate ca expired at {}, issuance time {}", rfc3339(.not_after), rfc3339(.now))]
    IntermediateExpired {
        /// The intermediate's notAfter.
        not_after: OffsetDateTime,
        /// The issuance time.
        now: OffsetDateTime,
    },
    /// The intermediate CA is not valid yet at the issuance time.
    #[error(
        "intermediate ca is not valid before {}, issuance time {}",
        rfc3339(.not_before),
        rfc3339(.now)
    )]
    IntermediateNotYetValid {
        /// The intermediate's notBefore.
        not_before: OffsetDateTime,
        /// The issuance time.
        now: OffsetDateTime,
    },
    /// The issuance time is outside what a certificate can encode.
    #[error("issuance time {} is out of range", rfc3339(.0))]
    TimeOutOfRange(OffsetDateTime),
    /// The CSR does not parse.
    #[error("certificate signing request is malformed: {reason}")]
    MalformedCsr {
        /// Parser detail.
        reason: String,
    },
    /// The CSR's self-signature does not verify.
    #[error("certificate signing request signature does not verify")]
    CsrBadSignature,
    /// The CSR asks for a different identity.
    #[error("certificate signing request asks for uri san {found:?}, expected {expected}")]
    CsrIdMismatch {
        /// The ID being issued.
        expected: SpiffeId,
        /// What the CSR asked for.
        found: String,
    },
    /// The CSR asks for several URI SANs.
    #[error("certificate signing request has {count} uri sans; at most one is allowed")]
    CsrMultipleUris {
        /// How many were requested.
        count: usize,
    },
    /// The CSR key is of a type or size we do not certify.
    #[error("certificate signing request key is not acceptable: {reason}")]
    CsrKeyRejected {
        /// What is wrong with it.
        reason: String,
    },
    /// Building or signing a certificate failed.
    #[error("building the certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Signing a JWT-SVID failed.
    #[error("signing the jwt-svid failed: {0}")]
    JwtSigning(#[from] jsonwebtoken::errors::Error),
    /// A freshly issued SVID failed the SVID rules (a bug, reported rather than handed out).
    #[error("issued svid failed its own validation: {0}")]
    SelfCheck(SvidError),
    /// The CA's own bundle could not be built.
    #[error("building the ca trust bundle failed: {0}")]
    Bundle(#[from] BundleError),
    /// Random number generation failed.
    #[error("the system random number generator failed")]
    Random,
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Saving would overwrite an existing CA file.
    #[error("{} already exists; refusing to overwrite ca material", .path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A private key file can be read by other users.
    #[error(
        "{} has mode {mode:o}; private keys must not be readable by group or others (chmod 600)",
        .path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A CA file was read but its content is wrong.
    #[error("{}: {reason}", .path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Errors reading or building a trust bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle is not valid JSON of the expected shape.
    #[error("bundle is not a valid jwks document: {reason}")]
    Json {
        /// Parser detail.
        reason: String,
    },
    /// The required `keys` member is absent.
    #[error("bundle has no \"keys\" member")]
    MissingKeys,
    /// An `x509-svid` entry does not hold exactly one certificate.
    #[error("expected a single certificate in x509-svid entry {index}; got {count}")]
    X509EntryCertCount {
        /// Position in `keys`.
        index: usize,
        /// How many certificates it held.
        count: usize,
    },
    /// A certificate in the bundle does not parse.
    #[error("certificate in entry {index} is malformed: {reason}")]
    MalformedCertificate {
        /// Position in `keys`, or in the PEM input.
        index: usize,
        /// Parser detail.
        reason: String,
    },
    /// The JWK parameters of an `x509-svid` entry disagree with its certificate.
    #[error("x509-svid entry {index}: jwk public key does not match the certificate's key")]
    X509KeyMismatch {
        /// Position in `keys`.
        index: usize,
    },
    /// A JWT authority without a key ID.
    #[error("jwt authority in entry {index} has no \"kid\"")]
    MissingKid {
        /// Position in `keys`.
        index: usize,
    },
    /// Two different JWT authorities share a key ID.
    #[error("two different jwt authorities share kid {kid:?}")]
    DuplicateKid {
        /// The key ID.
        kid: String,
    },
    /// A key of a type we cannot use or express.
    #[error("entry {index}: unsupported key: {reason}")]
    UnsupportedKey {
        /// Position in `keys`, or in the PEM input.
        index: usize,
        /// What is unsupported.
        reason: String,
    },
    /// Key parameters that do not decode to a valid public key.
    #[error("entry {index}: invalid key: {reason}")]
    InvalidKey {
        /// Position in `keys`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The PEM input is not PEM.
    #[error("bundle pem is unreadable: {reason}")]
    Pem {
        /// What is wrong with it.
        reason: String,
    },
    /// The PEM input holds no certificate.
    #[error("no certificates found in the bundle pem")]
    NoCertificates,
}

/// Errors verifying a JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not three base64url parts of JSON.
    #[error("jwt-svid is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The header names an algorithm other than ES256 (this includes "none").
    #[error("jwt-svid algorithm {alg:?} is not accepted (only ES256)")]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// The header has a field outside alg, kid and typ, or a wrong typ.
    #[error("jwt-svid header is not accepted: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// A required claim is absent or has the wrong type.
    #[error("jwt-svid claim {claim:?} is missing or malformed")]
    BadClaim {
        /// The claim name.
        claim: &'static str,
    },
    /// `sub` is not a SPIFFE ID with a path.
    #[error("jwt-svid subject is not a workload spiffe id: {reason}")]
    BadSubject {
        /// What is wrong with it.
        reason: String,
    },
    /// No bundle for the subject's trust domain.
    #[error("unknown trust domain {0:?}: no trust bundle is configured for it")]
    UnknownTrustDomain(TrustDomain),
    /// The bundle has no JWT authority with this key ID.
    #[error("no jwt authority with kid {kid:?} in the bundle of {trust_domain:?}")]
    UnknownKey {
        /// The header's `kid`.
        kid: String,
        /// The subject's trust domain.
        trust_domain: TrustDomain,
    },
    /// The JWT authority's key cannot verify ES256.
    #[error("jwt authority {kid:?} is not a p-256 key, so cannot verify es256")]
    KeyAlgorithmMismatch {
        /// The key ID.
        kid: String,
    },
    /// The signature does not verify.
    #[error("jwt-svid signature does not verify")]
    BadSignature,
    /// `exp` is not after the verification time.
    #[error("jwt-svid expired at {}, verification time {}", rfc3339(.expired_at), rfc3339(.now))]
    Expired {
        /// The `exp` claim.
        expired_at: OffsetDateTime,
        /// The verification time.
        now: OffsetDateTime,
    },
    /// `aud` does not contain the expected audience.
    #[error("jwt-svid audience {actual:?} does not contain {expected:?}")]
    AudienceMismatch {
        /// The audience the verifier stands for.
        expected: String,
        /// The token's audiences.
        actual: Vec<String>,
    },
}
