//! The outbound HTTP client used for discovery, JWKS and the token endpoint.
//!
//! It never follows redirects, bounds time and response size, and can trust one extra root CA
//! for the provider's TLS. It implements oauth2's `AsyncHttpClient`, so openidconnect runs on
//! our reqwest instead of the one its default features would bring.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use crate::config::HttpLimits;

/// A failure talking to the identity provider over HTTP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The extra CA file could not be read or holds no certificate.
    #[error("cannot use CA file {path:?}: {problem}")]
    CaFile {
        /// The file named in the configuration.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// The client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// The request could not be turned into a reqwest request.
    #[error("cannot build request to {url}: {source}")]
    Request {
        /// Target of the request.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Connecting, sending or receiving failed (includes timeouts); a retry may help.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// Target of the request.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The response body was larger than allowed.
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge {
        /// Target of the request.
        url: String,
        /// The configured limit.
        limit: usize,
    },
    /// The provider answered with a status we cannot use here.
    #[error("{url} answered with HTTP status {status}")]
    Status {
        /// Target of the request.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The response could not be turned into an `http::Response`.
    #[error("invalid response from {url}: {problem}")]
    Response {
        /// Target of the request.
        url: String,
        /// What was wrong.
        problem: String,
    },
}

impl HttpError {
    /// Whether a retry of the same request may succeed: a transport failure (refused,
    /// unreachable, timed out) or a status that says "later" (5xx, 408, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Self::CaFile { .. }
            | Self::Build(_)
            | Self::Request { .. }
            | Self::TooLarge { .. }
            | Self::Response { .. } => false,
        }
    }
}

/// HTTP client for talking to one identity provider.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    max_response_bytes: usize,
}

impl HttpClient {
    /// Builds a client with the given limits and, optionally, one more trusted root CA file.
    pub fn new(limits: &HttpLimits, ca_file: Option<&Path>) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout)
            .connect_timeout(limits.connect_timeout)
            .no_proxy()
            .https_only(true);
        if let Some(path) = ca_file {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        let inner = builder.build().map_err(HttpError::Build)?;
        Ok(Self {
            inner,
            max_response_bytes: limits.max_response_bytes,
        })
    }

    /// Sends one request and returns the response whatever its status, body size-limited.
    pub async fn execute(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let url = request.uri().to_string();
        let request = reqwest::Request::try_from(request).map_err(|source| HttpError::Request {
            url: url.clone(),
            source,
        })?;
        let response =
            self.inner
                .execute(request)
                .await
                .map_err(|source| HttpError::Transport {
                    url: url.clone(),
                    source,
                })?;
        self.read_response(url, response).await
    }

    /// GETs a URL and returns the body of a 200 response with the given `Accept` type.
    pub async fn get_ok(&self, url: &str, accept: &str) -> Result<Vec<u8>, HttpError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())
            .map_err(|e| HttpError::Response {
                url: url.to_owned(),
                problem: format!("invalid request: {e}"),
            })?;
        let response = self.execute(request).await?;
        if response.status() != http::StatusCode::OK {
            return Err(HttpError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        Ok(response.into_body())
    }

    async fn read_response(
        &self,
        url: String,
        mut response: reqwest::Response,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let limit = self.max_response_bytes;
        let too_large = || HttpError::TooLarge {
            url: url.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(too_large());
        }
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }

        // INVARIANT: the body is read chunk by chunk so that a lying or absent
        // Content-Length cannot make us buffer more than the limit.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| HttpError::Transport {
                url: url.clone(),
                source,
            })?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError::Response {
            url,
            problem: e.to_string(),
        })
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let ca_error = |problem: String| HttpError::CaFile {
        path: path.display().to_string(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
