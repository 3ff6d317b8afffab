//! Forwarding allowed requests to upstreams: plain HTTP (HTTP/1.1 or h2c) or mTLS with the
//! gateway's own SVID, the upstream's SPIFFE ID checked.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tenet_identity::SvidVerifier;

use crate::config::{UpstreamProtocol, UpstreamSpec};
use crate::error::GatewayError;
use crate::request_body::ForwardedBody;
use crate::tls::{SvidResolver, upstream_client_config};

/// An upstream with its pooled client.
pub(crate) struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, ForwardedBody>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// [`RESPONSE_TIMEOUT`], shorter in tests.
    response_timeout: Duration,
}

/// How long an upstream may take to answer with headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("upstream request could not be built: {0}")]
    Build(#[from] http::Error),
    #[error("upstream unreachable or failed: {0}")]
    Upstream(#[from] hyper_util::client::legacy::Error),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The client stopped sending the request body: the client's fault, not the upstream's.
    #[error("client sent no request body bytes for {0:?}")]
    BodyStalled(Duration),
    /// The upstream's time to answer ran out while it still waited for the client's body.
    #[error("request body not complete when the upstream's {0:?} to answer ran out")]
    BodyUnfinished(Duration),
    /// `101 Switching Protocols` to a request that asked for no upgrade: the gateway removes
    /// `Upgrade` from every request, so the caller could not take the connection over.
    #[error("upstream answered 101 Switching Protocols to a request without an upgrade")]
    UnaskedSwitch,
}

impl ForwardError {
    /// Whether the client, not the upstream, is why the request failed.
    pub(crate) fn is_client_body(&self) -> bool {
        matches!(self, Self::BodyStalled(_) | Self::BodyUnfinished(_))
    }
}

impl Upstream {
    pub fn new(
        route: &str,
        spec: &UpstreamSpec,
        svid: Arc<SvidResolver>,
        verifier: Arc<SvidVerifier>,
    ) -> Result<Self, GatewayError> {
        let bad = |why: &str| GatewayError::Config(format!("route {route:?}: upstream {why}"));
        let scheme = spec
            .url
            .scheme()
            .cloned()
            .ok_or_else(|| bad("url has no scheme"))?;
        let authority = spec
            .url
            .authority()
            .cloned()
            .ok_or_else(|| bad("url has no host"))?;
        let is_https = scheme == http::uri::Scheme::HTTPS;
        if !is_https && scheme != http::uri::Scheme::HTTP {
            return Err(bad("scheme must be http or https"));
        }
        if spec.spiffe_id.is_some() && !is_https {
            return Err(bad("spiffe_id is set but the url is not https"));
        }

        let tls = upstream_client_config(svid, verifier, spec.spiffe_id.clone())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = match spec.protocol {
            UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
            UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256);
        if spec.protocol == UpstreamProtocol::Http2 {
            client.http2_only(true);
        }
        Ok(Self {
            client: client.build(connector),
            scheme,
            authority,
            response_timeout: RESPONSE_TIMEOUT,
        })
    }

    /// Send `request` (whose URI is origin-form, already normalised) to this upstream. A body
    /// the client stops sending cancels the upstream request (see [`ForwardedBody`]).
    pub async fn send(
        &self,
        mut parts: http::request::Parts,
        path_and_query: &str,
        body: ForwardedBody,
    ) -> Result<http::Response<Incoming>, ForwardError> {
        parts.uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()?;
        // The pooled client picks the version per connection; HTTP/2 to the upstream is
        // decided by the connector (ALPN or h2c), not by the client's version.
        parts.version = http::Version::HTTP_11;
        let (watch, idle) = (body.watch(), body.idle());
        let request = http::Request::from_parts(parts, body);
        let limit = self.response_timeout;
        let answered = tokio::select! {
            biased;
            () = watch.cut() => return Err(ForwardError::BodyStalled(idle)),
            result = self.client.request(request) => result,
            () = tokio::time::sleep(limit) => {
                // An upstream cannot answer a request whose body has not arrived: when the
                // client is the one still awaited, the client is late.
                if watch.is_waiting_for_client() {
                    watch.cut_off();
                    return Err(ForwardError::BodyUnfinished(limit));
                }
                return Err(ForwardError::Timeout(limit));
            }
        };
        match answered {
            Ok(response) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                Err(ForwardError::UnaskedSwitch)
            }
            Ok(response) => {
                watch.answered();
                Ok(response)
            }
            // The cut-off body ended the upstream request with an error of its own.
            Err(_) if watch.is_cut_off() => Err(ForwardError::BodyStalled(idle)),
            Err(e) => Err(ForwardError::Upstream(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tenet_identity::{BundleSet, CertificateAuthority, SpiffeId, TrustDomain};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    use super::*;

    const ANSWER_WITHIN: Duration = Duration::from_millis(300);

    /// An upstream that reads whatever it is sent and never answers.
    async fn silent_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        addr
    }

    fn upstream(addr: SocketAddr) -> Upstream {
        let td = TrustDomain::parse("example.org").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let ca = CertificateAuthority::generate(&td, now).unwrap();
        let id = SpiffeId::parse("spiffe://example.org/tenet/gateway").unwrap();
        let svid = ca
            .issue_x509_svid(&id, Duration::from_secs(3600), now)
            .unwrap();
        let bundles: BundleSet = std::iter::once(ca.bundle()).collect();
        let spec = UpstreamSpec {
            url: format!("http://{addr}").parse().unwrap(),
            spiffe_id: None,
            protocol: UpstreamProtocol::Auto,
        };
        let upstream = Upstream::new(
            "test",
            &spec,
            Arc::new(SvidResolver::new(&svid).unwrap()),
            Arc::new(SvidVerifier::new(bundles, Duration::from_secs(60))),
        )
        .unwrap();
        Upstream {
            response_timeout: ANSWER_WITHIN,
            ..upstream
        }
    }

    /// The request a real client sends to a real HTTP/1.1 server: `head`, then `body`; the
    /// client's connection is returned so that it stays open.
    async fn client_request(
        head: &str,
        body: &[u8],
    ) -> (http::request::Parts, Incoming, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(request.into_parts()).await;
                    std::future::pending::<()>().await;
                    Ok::<_, Infallible>(http::Response::new(String::new()))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(head.as_bytes()).await.unwrap();
        client.write_all(body).await.unwrap();
        let (parts, body) = rx.recv().await.unwrap();
        (parts, body, client)
    }

    const HEAD: &str = "POST /upload HTTP/1.1\r\nHost: upstream\r\nContent-Length: 10\r\n\r\n";

    #[tokio::test]
    async fn an_answer_overdue_while_the_body_is_awaited_is_the_clients_fault() {
        let upstream = upstream(silent_upstream().await);
        // Three of ten bytes; the idle limit itself is far away.
        let (parts, body, _client) = client_request(HEAD, b"abc").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r1".into());
        let watch = body.watch();
        let err = upstream.send(parts, "/upload", body).await.unwrap_err();
        assert!(
            matches!(err, ForwardError::BodyUnfinished(d) if d == ANSWER_WITHIN),
            "{err}"
        );
        assert!(err.is_client_body());
        assert!(watch.is_cut_off());
    }

    #[tokio::test]
    async fn an_answer_overdue_with_the_whole_body_sent_is_the_upstreams_fault() {
        let upstream = upstream(silent_upstream().await);
        let (parts, body, _client) = client_request(HEAD, b"0123456789").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r2".into());
        let watch = body.watch();
        let err = upstream.send(parts, "/upload", body).await.unwrap_err();
        assert!(
            matches!(err, ForwardError::Timeout(d) if d == ANSWER_WITHIN),
            "{err}"
        );
        assert!(!err.is_client_body());
        assert!(!watch.is_cut_off());
    }
}
