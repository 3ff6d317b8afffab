//! Accepting connections: TLS handshake under a deadline, the caller's identity read from
//! its verified SVID, then HTTP/1.1 or HTTP/2 (ALPN) served with size and time limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tenet_event::{Event, EventKind, RejectionEvent};
use tenet_identity::SpiffeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::server::{ListenerState, Shared};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (HTTP/1.1 buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long open connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the gateway knows about a connection once the handshake is done.
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub tls_version: String,
    /// The caller's verified SPIFFE ID; `None` for anonymous callers.
    pub principal: Option<SpiffeId>,
    pub client_serial: Option<String>,
}

pub(crate) async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    listener: Arc<ListenerState>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    info!(listener = %listener.name, addr = ?tcp.local_addr().ok(), "listener accepting");
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = stopped.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!("tenet_gateway_connections_refused_total", "reason" => "limit")
                .increment(1);
            warn!(listener = %listener.name, %peer, "connection limit reached; connection dropped");
            continue;
        };
        let span = info_span!("accept", listener = %listener.name, %peer);
        let task = serve_connection(
            stream,
            peer,
            acceptor.clone(),
            listener.clone(),
            shared.clone(),
            stopped.clone(),
        );
        connections.spawn(
            async move {
                task.await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    info!(listener = %listener.name, open = connections.len(), "listener stopping");
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    listener: Arc<ListenerState>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return refuse_handshake(&listener, &shared, peer, classify(&e), e).await,
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out");
            return refuse_handshake(&listener, &shared, peer, "handshake_timeout", e).await;
        }
    };
    let info = Arc::new(conn_info(peer, tls.get_ref().1));
    debug!(principal = ?info.principal.as_ref().map(SpiffeId::as_str), alpn = ?info.alpn,
        "connection established");

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let service = service_fn(move |request| {
        crate::pipeline::handle(request, info.clone(), listener.clone(), shared.clone())
    });
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // Malformed HTTP, oversized heads and slow clients end here; hyper has already
        // answered with 400/431/408 where the protocol allows.
        metrics::counter!("tenet_gateway_http_errors_total").increment(1);
        info!(%peer, error = %e, "connection ended with a protocol error");
    }
}

fn conn_info(peer: SocketAddr, tls: &rustls::ServerConnection) -> ConnInfo {
    let leaf = tls.peer_certificates().and_then(|certs| certs.first());
    let identity = leaf.and_then(|cert| tenet_identity::peer_identity(cert).ok());
    ConnInfo {
        peer,
        sni: tls.server_name().map(str::to_string),
        alpn: tls
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        tls_version: tls
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default(),
        client_serial: identity.as_ref().map(|p| p.serial_hex.clone()),
        principal: identity.map(|p| p.id),
    }
}

/// A stable label for why a handshake failed.
fn classify(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error as TlsError};
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => "client_closed",
            std::io::ErrorKind::InvalidData => "malformed_tls",
            _ => "io_error",
        };
    };
    match tls {
        TlsError::NoCertificatesPresented => "no_client_certificate",
        TlsError::InvalidCertificate(CertificateError::Expired)
        | TlsError::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "expired_certificate"
        }
        TlsError::InvalidCertificate(CertificateError::NotValidYet)
        | TlsError::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "certificate_not_yet_valid"
        }
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown_issuer",
        TlsError::InvalidCertificate(_) => "invalid_certificate",
        TlsError::General(msg) if msg.contains("no server certificate") => "unknown_sni",
        TlsError::InvalidMessage(_) | TlsError::PeerIncompatible(_) => "malformed_tls",
        TlsError::NoApplicationProtocol => "no_application_protocol",
        _ => "tls_error",
    }
}

async fn refuse_handshake(
    listener: &ListenerState,
    shared: &Shared,
    peer: SocketAddr,
    kind: &'static str,
    error: std::io::Error,
) {
    metrics::counter!("tenet_gateway_handshakes_refused_total", "reason" => kind).increment(1);
    info!(listener = %listener.name, %peer, reason = kind, error = %error,
        "tls handshake refused");
    if kind == "client_closed" {
        // Port scanners and health checks that close at once are not authentication attempts.
        return;
    }
    let event = Event::new(
        shared.clock.now(),
        EventKind::Rejection(RejectionEvent {
            request_id: None,
            listener: listener.name.clone(),
            source_ip: peer.ip(),
            source_port: peer.port(),
            stage: "tls".into(),
            kind: kind.into(),
            detail: error.to_string(),
            principal: None,
            status: None,
        }),
    );
    if let Err(e) = shared.sink.record(event).await {
        warn!(error = %e, "could not record a refused handshake");
    }
}
