//! Real rustls mTLS handshakes, in memory, through this crate's verifiers.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConfig, ServerConnection};
use tenet_identity::{
    CertificateAuthority, SpiffeId, SvidError, SvidVerifier, Usage, client_cert_verifier,
    peer_spiffe_id, server_cert_verifier, svid_error_of,
};
use time::OffsetDateTime;

use crate::common::{T, TestPki, id, td, verifier_for};

#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

fn clock(now: OffsetDateTime) -> Arc<FixedTime> {
    let secs = u64::try_from(now.unix_timestamp()).unwrap();
    Arc::new(FixedTime(UnixTime::since_unix_epoch(Duration::from_secs(
        secs,
    ))))
}

pub fn server_config_at(
    client_verifier: Arc<dyn ClientCertVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    now: OffsetDateTime,
) -> Arc<ServerConfig> {
    let config =
        ServerConfig::builder_with_details(Arc::new(aws_lc_rs::default_provider()), clock(now))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(config)
}

pub fn client_config_at(
    verifier: Arc<SvidVerifier>,
    expected: Option<SpiffeId>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    now: OffsetDateTime,
) -> Arc<ClientConfig> {
    Arc::new(
        client_builder(server_cert_verifier(verifier, expected), now)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

fn client_builder(
    verifier: Arc<dyn ServerCertVerifier>,
    now: OffsetDateTime,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    ClientConfig::builder_with_details(Arc::new(aws_lc_rs::default_provider()), clock(now))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
}

fn transfer<A, B>(
    from: &mut ConnectionCommon<A>,
    to: &mut ConnectionCommon<B>,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = buf.as_slice();
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs a handshake; returns the client's SPIFFE ID as the server sees it (None when the
/// client sent no certificate), or the first error either side raised.
pub fn handshake_at(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
) -> Result<Option<SpiffeId>, rustls::Error> {
    // The server name is deliberately unrelated to any certificate: it must be ignored.
    let name = ServerName::try_from("unrelated.invalid").unwrap();
    let mut client = ClientConnection::new(client, name)?;
    let mut server = ServerConnection::new(server)?;
    for _ in 0..10 {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(match server.peer_certificates() {
                Some([leaf, ..]) => Some(peer_spiffe_id(leaf).unwrap()),
                _ => None,
            });
        }
    }
    panic!("handshake did not finish");
}

struct Setup {
    ca: CertificateAuthority,
    verifier: Arc<SvidVerifier>,
}

fn setup() -> Setup {
    let ca = CertificateAuthority::generate(&td("prod.example.test"), T).unwrap();
    let verifier = Arc::new(verifier_for([ca.bundle()], 30));
    Setup { ca, verifier }
}

#[test]
fn mtls_with_ca_issued_svids() {
    let Setup { ca, verifier } = setup();
    let ttl = Duration::from_secs(3600);
    let server_id = id("spiffe://prod.example.test/gateway");
    let server_svid = ca.issue_x509_svid(&server_id, ttl, T).unwrap();
    let client_svid = ca
        .issue_x509_svid(&id("spiffe://prod.example.test/ns/payments/sa/api"), ttl, T)
        .unwrap();

    let server = server_config_at(
        client_cert_verifier(verifier.clone(), true),
        server_svid.cert_chain().to_vec(),
        server_svid.private_key(),
        T,
    );
    let client = client_config_at(
        verifier.clone(),
        Some(server_id),
        client_svid.cert_chain().to_vec(),
        client_svid.private_key(),
        T,
    );
    let seen = handshake_at(server, client).unwrap();
    assert_eq!(seen.as_ref(), Some(client_svid.spiffe_id()));

    // After the handshake, the full verification result (serial, skew flag) is one call away.
    let chain = client_svid.cert_chain();
    let peer = verifier
        .verify(&chain[0], &chain[1..], Usage::Client, T)
        .unwrap();
    assert_eq!(peer.serial_hex, client_svid.serial_hex());
    assert!(!peer.within_skew);
}

#[test]
fn mtls_client_rejects_unexpected_server_id() {
    let Setup { ca, verifier } = setup();
    let ttl = Duration::from_secs(3600);
    let server_svid = ca
        .issue_x509_svid(&id("spiffe://prod.example.test/impostor"), ttl, T)
        .unwrap();
    let client_svid = ca
        .issue_x509_svid(&id("spiffe://prod.example.test/cli"), ttl, T)
        .unwrap();
    let server = server_config_at(
        client_cert_verifier(verifier.clone(), true),
        server_svid.cert_chain().to_vec(),
        server_svid.private_key(),
        T,
    );
    let client = client_config_at(
        verifier,
        Some(id("spiffe://prod.example.test/admin-api")),
        client_svid.cert_chain().to_vec(),
        client_svid.private_key(),
        T,
    );
    let err = handshake_at(server, client).unwrap_err();
    assert!(
        matches!(svid_error_of(&err), Some(SvidError::UnexpectedPeer { .. })),
        "{err}"
    );
}

#[test]
fn mtls_client_certificate_optional_or_mandatory() {
    let Setup { ca, verifier } = setup();
    let server_svid = ca
        .issue_x509_svid(
            &id("spiffe://prod.example.test/gateway"),
            Duration::from_secs(600),
            T,
        )
        .unwrap();
    for mandatory in [false, true] {
        let server = server_config_at(
            client_cert_verifier(verifier.clone(), mandatory),
            server_svid.cert_chain().to_vec(),
            server_svid.private_key(),
            T,
        );
        let client = Arc::new(
            client_builder(server_cert_verifier(verifier.clone(), None), T).with_no_client_auth(),
        );
        let result = handshake_at(server, client);
        if mandatory {
            assert!(result.is_err());
        } else {
            assert_eq!(result.unwrap(), None);
        }
    }
}

/// A CA of another trust domain cannot vouch for an ID of ours, even when both are trusted:
/// the chain must verify against the bundle of the leaf ID's own trust domain.
#[test]
fn foreign_ca_cannot_issue_for_our_trust_domain() {
    let ours = TestPki::new("prod.example.test");
    let evil = TestPki::new("evil.example.test");
    let verifier = Arc::new(verifier_for([ours.bundle(), evil.bundle()], 0));
    let (forged, forged_key) = evil.svid("spiffe://prod.example.test/ns/payments/sa/admin");
    let err = verifier
        .verify(&forged[0], &forged[1..], Usage::Client, T)
        .unwrap_err();
    assert!(
        matches!(&err, SvidError::UntrustedChain { trust_domain, .. }
            if *trust_domain == td("prod.example.test")),
        "{err}"
    );

    // Its own IDs are fine (federation).
    let (theirs, _) = evil.svid("spiffe://evil.example.test/w");
    assert!(
        verifier
            .verify(&theirs[0], &theirs[1..], Usage::Client, T)
            .is_ok()
    );

    // Without a bundle for the trust domain: unknown, also in the handshake.
    let only_ours = Arc::new(verifier_for([ours.bundle()], 0));
    let (server_chain, server_key) = ours.svid("spiffe://prod.example.test/gateway");
    let server = server_config_at(
        client_cert_verifier(only_ours.clone(), true),
        server_chain,
        server_key,
        T,
    );
    let (chain, key) = evil.svid("spiffe://evil.example.test/w");
    let err = handshake_at(
        server.clone(),
        client_config_at(only_ours.clone(), None, chain, key, T),
    )
    .unwrap_err();
    assert!(
        matches!(svid_error_of(&err), Some(SvidError::UnknownTrustDomain(_))),
        "{err}"
    );
    let err = handshake_at(
        server,
        client_config_at(only_ours, None, forged, forged_key, T),
    )
    .unwrap_err();
    assert!(
        matches!(svid_error_of(&err), Some(SvidError::UntrustedChain { .. })),
        "{err}"
    );
}

#[test]
fn root_hints_name_the_bundle_roots() {
    let Setup { verifier, .. } = setup();
    let v = client_cert_verifier(verifier, true);
    assert_eq!(v.root_hint_subjects().len(), 1);
    assert!(v.client_auth_mandatory());
}
