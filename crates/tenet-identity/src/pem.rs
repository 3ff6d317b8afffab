//! PEM reading and writing for certificates and keys (RFC 7468 text encoding).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::{PemObject, SectionKind};

/// A PEM input that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PemError {
    /// Not one PEM block in a non-empty input.
    NoBlocks,
    /// A block is broken (bad base64, missing END line, ...).
    Malformed(String),
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBlocks => f.write_str("no pem blocks found"),
            Self::Malformed(reason) => write!(f, "malformed pem: {reason}"),
        }
    }
}

/// Every recognised PEM section of `input`, in order. An input of only whitespace yields no
/// sections; any other input without a PEM block is an error.
pub(crate) fn sections(input: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, PemError> {
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(input) {
        out.push(item.map_err(|e| PemError::Malformed(e.to_string()))?);
    }
    if out.is_empty() && !input.iter().all(u8::is_ascii_whitespace) {
        return Err(PemError::NoBlocks);
    }
    Ok(out)
}

/// Encodes DER as one PEM block with 64-character lines.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The PEM label of a section kind, for messages.
pub(crate) fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let der: Vec<u8> = (0..=200).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.lines().all(|l| l.len() <= 64));
        let got = sections(text.as_bytes()).unwrap();
        assert_eq!(got, vec![(SectionKind::Certificate, der)]);
        assert_eq!(sections(b"").unwrap(), vec![]);
        assert_eq!(sections(b" \n").unwrap(), vec![]);
        assert_eq!(sections(b"not pem"), Err(PemError::NoBlocks));
        assert!(matches!(
            sections(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(PemError::Malformed(_))
        ));
    }
}
