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
        let answered = tokio::select! {
            biased;
            () = watch.cut() => return Err(ForwardError::BodyStalled(idle)),
            result = self.client.request(request) => result,
            () = tokio::time::sleep(RESPONSE_TIMEOUT) => {
                // An upstream cannot answer a request whose body has not arrived: when the
                // client is the one still awaited, the client is late.
                if watch.is_waiting_for_client() {
                    watch.cut_off();
                    return Err(ForwardError::BodyUnfinished(RESPONSE_TIMEOUT));
                }
                return Err(ForwardError::Timeout(RESPONSE_TIMEOUT));
            }
        };
        match answered {
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
