//! TLS for both sides of the gateway: the listener's server configuration (its own SVID,
//! client SVIDs verified against the bundle of their trust domain, an SNI allow-list) and
//! the client configuration toward mTLS upstreams.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use tenet_identity::{SpiffeId, SvidVerifier, X509Svid};

use crate::config::ClientAuth;
use crate::error::GatewayError;

/// The crypto provider used everywhere in Tenet (aws-lc-rs).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Holds the gateway's current SVID and serves it to rustls on both sides; `rotate` swaps
/// it without touching open connections.
pub struct SvidResolver {
    current: RwLock<Arc<CertifiedKey>>,
    spiffe_id: SpiffeId,
}

impl std::fmt::Debug for SvidResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvidResolver")
            .field("spiffe_id", &self.spiffe_id)
            .finish()
    }
}

impl SvidResolver {
    /// A resolver serving `svid`.
    pub fn new(svid: &X509Svid) -> Result<Self, GatewayError> {
        Ok(Self {
            current: RwLock::new(certified_key(svid)?),
            spiffe_id: svid.spiffe_id().clone(),
        })
    }

    /// Replace the served SVID (rotation).
    pub fn rotate(&self, svid: &X509Svid) -> Result<(), GatewayError> {
        let key = certified_key(svid)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }

    /// The SPIFFE ID of the served SVID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn certified_key(svid: &X509Svid) -> Result<Arc<CertifiedKey>, GatewayError> {
    let key = provider()
        .key_provider
        .load_private_key(svid.private_key())
        .map_err(|source| GatewayError::Tls {
            what: format!("SVID key of {}", svid.spiffe_id()),
            source,
        })?;
    Ok(Arc::new(CertifiedKey::new(svid.cert_chain().to_vec(), key)))
}

/// Serves the SVID only for allowed SNI names (or for hellos without SNI).
#[derive(Debug)]
struct ListenerCertResolver {
    svid: Arc<SvidResolver>,
    server_names: Vec<String>,
}

impl ResolvesServerCert for ListenerCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            None => Some(self.svid.get()),
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if self.server_names.contains(&name) {
                    Some(self.svid.get())
                } else {
                    // Refusing to pick a certificate aborts the handshake; the accept loop
                    // logs and counts it as `unknown_sni`.
                    None
                }
            }
        }
    }
}

/// Serves the SVID to every client (admin API, test upstreams); listeners that must check
/// SNI use their own resolver.
impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The rustls server configuration of one listener (ALPN h2 and http/1.1, TLS 1.2 and 1.3).
pub(crate) fn server_config(
    listener: &str,
    svid: Arc<SvidResolver>,
    verifier: Arc<SvidVerifier>,
    client_auth: ClientAuth,
    server_names: Vec<String>,
) -> Result<Arc<ServerConfig>, GatewayError> {
    let tls = |source| GatewayError::Tls {
        what: format!("listener {listener:?}"),
        source,
    };
    let mandatory = client_auth == ClientAuth::Required;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_client_cert_verifier(tenet_identity::client_cert_verifier(verifier, mandatory))
        .with_cert_resolver(Arc::new(ListenerCertResolver { svid, server_names }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Handshake-time session state stays small; tickets are off so that every resumed
    // session still went through client-certificate verification once on this process.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The rustls client configuration toward an mTLS upstream that must present `expected`.
pub(crate) fn upstream_client_config(
    svid: Arc<SvidResolver>,
    verifier: Arc<SvidVerifier>,
    expected: Option<SpiffeId>,
) -> Result<ClientConfig, GatewayError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| GatewayError::Tls {
            what: "upstream client".into(),
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(tenet_identity::server_cert_verifier(verifier, expected))
        .with_client_cert_resolver(svid);
    Ok(config)
}
