//! Forwarding allowed requests to upstreams: plain HTTP (HTTP/1.1 or h2c) or mTLS with the
//! gateway's own SVID, the upstream's SPIFFE ID checked.
//!
//! Each upstream keeps its own connections: HTTP/1.1 connections not in use wait in a stack
//! (the most recently used is taken first; a sweeper closes those unused too long), and one
//! HTTP/2 connection, once open, carries every request. A request takes an idle connection
//! or opens one. An HTTP/1.1 connection goes back to the stack when the caller has taken the
//! whole answer (the answer's body is dropped at its end) and the request's body was sent
//! whole; otherwise it closes after its exchange. A request that a reused connection could
//! not start is sent again on another connection, and so are one an HTTP/2 upstream refused
//! unprocessed and one that failed with a reused connection if it may be repeated (an
//! idempotent method); see [`crate::replay`]. An answer body that stops coming ends in an
//! error after [`BODY_IDLE_TIMEOUT`].
//!
//! The upstream is known when the route is configured, so nothing is looked up by key per
//! request, and a connection goes back to its stack without a task of its own.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tenet_identity::SvidVerifier;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use crate::config::{UpstreamProtocol, UpstreamSpec};
use crate::error::GatewayError;
use crate::replay::{Replay, Tape};
use crate::request_body::{BodyError, BodyWatch, ForwardedBody, WaitTimer};
use crate::response::BoxError;
use crate::tls::{SvidResolver, upstream_client_config};

/// An upstream: where it is, how to connect to it, and its idle connections.
pub(crate) struct Upstream {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    connector: Connector,
    pool: Mutex<Pool>,
    /// [`RESPONSE_TIMEOUT`], shorter in tests.
    response_timeout: Duration,
    /// [`IDLE_TIMEOUT`], shorter in tests.
    idle_timeout: Duration,
    /// [`BODY_IDLE_TIMEOUT`], shorter in tests.
    body_idle_timeout: Duration,
}

/// How long an upstream may take to answer with headers.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TCP connection to an upstream may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an HTTP/1.1 connection may wait unused before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an answer's body may go without a byte from the upstream while the caller's side
/// waits for one (nginx's `proxy_read_timeout`): an upstream that stops in the middle of an
/// answer does not hold the caller for ever.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many unused HTTP/1.1 connections an upstream keeps open.
const MAX_IDLE: usize = 256;
/// How many times a request that failed is sent again.
const MAX_RESENDS: u32 = 3;

/// How to open a connection to an upstream.
struct Connector {
    /// `host:port`, the port explicit.
    address: String,
    /// For an `https` upstream: the TLS client (the gateway's SVID, the upstream's checked)
    /// and the name sent as SNI.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Speak HTTP/2 only (h2c with prior knowledge over `http`).
    http2_only: bool,
}

/// An upstream's connections between requests.
#[derive(Default)]
struct Pool {
    /// Unused HTTP/1.1 connections, the most recently used last, each with when it was put
    /// back.
    idle: VecDeque<(Instant, http1::SendRequest<RequestBody>)>,
    /// The HTTP/2 connection every request shares, once one is open.
    shared: Option<http2::SendRequest<RequestBody>>,
    /// Sweeps since a request last took the shared connection.
    shared_unused: u32,
    /// A task closes idle connections unused for [`IDLE_TIMEOUT`] (while any are idle or
    /// the shared one is open).
    sweeping: bool,
}

/// Close the idle connections unused for `timeout` at `now` (the oldest are first).
fn expire(
    idle: &mut VecDeque<(Instant, http1::SendRequest<RequestBody>)>,
    now: Instant,
    timeout: Duration,
) {
    while idle
        .front()
        .is_some_and(|(since, _)| now.duration_since(*since) >= timeout)
    {
        idle.pop_front();
    }
}

/// How many times per idle timeout the sweeper looks.
const SWEEPS_PER_TIMEOUT: u32 = 4;

/// Close an upstream's idle connections as they reach `timeout` unused, checking four times
/// per timeout: HTTP/1.1 ones by when they were put back, the shared HTTP/2 one once no
/// request took it for five looks in a row (so after one to one and a quarter timeouts; its
/// streams still open finish, as hyper closes an HTTP/2 connection only once they end). Ends
/// when no connection is left, or the upstream is gone.
async fn sweep(upstream: std::sync::Weak<Upstream>, timeout: Duration) {
    loop {
        tokio::time::sleep(timeout / SWEEPS_PER_TIMEOUT).await;
        let Some(upstream) = upstream.upgrade() else {
            return;
        };
        let mut pool = upstream.pool.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut pool.idle, Instant::now(), timeout);
        pool.idle.retain(|(_, sender)| !sender.is_closed());
        if pool.shared.is_some() {
            pool.shared_unused += 1;
            // Four looks without a request may span only three quarters of a timeout.
            if pool.shared_unused > SWEEPS_PER_TIMEOUT
                || pool
                    .shared
                    .as_ref()
                    .is_some_and(http2::SendRequest::is_closed)
            {
                pool.shared = None;
                debug!(after = ?timeout, "unused HTTP/2 upstream connection let go; it closes once its open streams end");
            }
        }
        if pool.idle.is_empty() && pool.shared.is_none() {
            pool.sweeping = false;
            return;
        }
    }
}

/// A connection to send one request on.
enum Connection {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("upstream request could not be built: {0}")]
    Build(#[from] http::Error),
    #[error("upstream unreachable: {0}")]
    Connect(std::io::Error),
    #[error("upstream TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("upstream failed: {0}")]
    Upstream(#[from] hyper::Error),
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
        let http2_only = spec.protocol == UpstreamProtocol::Http2;
        let port = authority
            .port_u16()
            .unwrap_or(if is_https { 443 } else { 80 });
        let host = authority.host();
        let tls = if is_https {
            let mut config = upstream_client_config(svid, verifier, spec.spiffe_id.clone())?;
            config.alpn_protocols = if http2_only {
                vec![b"h2".to_vec()]
            } else {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            };
            // The upstream's certificate is checked by its SPIFFE ID, not by this name;
            // the name is what the upstream sees as SNI.
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|e| bad(&format!("host {host:?} is not a TLS server name: {e}")))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            scheme,
            connector: Connector {
                address: format!("{host}:{port}"),
                tls,
                http2_only,
            },
            authority,
            pool: Mutex::default(),
            response_timeout: RESPONSE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_idle_timeout: BODY_IDLE_TIMEOUT,
        })
    }

    /// Send `request` (whose URI is origin-form, already normalised) to this upstream. A body
    /// the client stops sending cancels the upstream request (see [`ForwardedBody`]).
    pub async fn send(
        self: &Arc<Self>,
        mut parts: http::request::Parts,
        path_and_query: &str,
        body: ForwardedBody,
    ) -> Result<http::Response<UpstreamBody>, ForwardError> {
        parts.uri = http::Uri::try_from(path_and_query).map_err(http::Error::from)?;
        // A proxy speaks its own version upstream: HTTP/1.1, or HTTP/2 where the connection
        // is one.
        parts.version = http::Version::HTTP_11;
        let (watch, idle, streaming) = (body.watch(), body.idle(), body.is_streaming());
        // A connection may carry another request only once this body is all sent; a body is
        // recorded so that the request can go out again.
        let (body, unsent_body, _forget) = if body.is_end_stream() {
            (RequestBody::Client(body), None, None)
        } else {
            let tape = Tape::new(body);
            let forget = tape.forget_when_dropped();
            (
                RequestBody::Recorded(tape),
                Some(watch.clone()),
                Some(forget),
            )
        };
        let request = http::Request::from_parts(parts, body);
        let limit = self.response_timeout;
        // Boxed, like the connection opening inside it: the request's own future (moved by
        // hyper as it starts) stays small.
        let mut exchange = Box::pin(self.exchange(request, unsent_body));
        let timer = tokio::time::sleep(limit);
        tokio::pin!(timer);
        let mut frames_taken = 0;
        let answered = loop {
            tokio::select! {
                biased;
                () = watch.cut() => return Err(ForwardError::BodyStalled(idle)),
                result = &mut exchange => break result,
                () = &mut timer => {
                    // A gRPC client stream may go on for longer than the limit, and its
                    // upstream answer only at its end: while its frames still go up (each gap
                    // held to the body's idle limit), the time to answer starts again.
                    let taken = watch.frames_taken();
                    if streaming && !watch.is_sent() && taken != frames_taken {
                        frames_taken = taken;
                        timer.as_mut().reset(tokio::time::Instant::now() + limit);
                        continue;
                    }
                    // An upstream cannot answer a request whose body has not arrived: when
                    // the client is the one still awaited, the client is late.
                    if watch.is_waiting_for_client() {
                        watch.cut_off();
                        return Err(ForwardError::BodyUnfinished(limit));
                    }
                    return Err(ForwardError::Timeout(limit));
                }
            }
        };
        match answered {
            Ok(response) if response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
                // The upstream took the connection over: it carries no other request.
                response.into_body().home = None;
                Err(ForwardError::UnaskedSwitch)
            }
            Ok(response) => {
                watch.answered();
                Ok(response)
            }
            // The cut-off body ended the upstream request with an error of its own.
            Err(_) if watch.is_cut_off() => Err(ForwardError::BodyStalled(idle)),
            Err(e) => Err(e),
        }
    }

    /// Send `request` on an idle connection, or on a new one. A request that a reused
    /// connection could not start goes out again on the next. So does one that an HTTP/2
    /// upstream refused unprocessed (see [`is_refused`]), and one that failed with a reused
    /// connection (the upstream closed it as the request went out) when it may be repeated:
    /// an idempotent method (RFC 9110 section 9.2.2). A request whose body was too long to
    /// keep (see [`crate::replay`]) is not sent again; at most [`MAX_RESENDS`] sends are
    /// repeated.
    async fn exchange(
        self: &Arc<Self>,
        mut request: http::Request<RequestBody>,
        unsent_body: Option<Arc<BodyWatch>>,
    ) -> Result<http::Response<UpstreamBody>, ForwardError> {
        let mut resends = 0;
        let head_only = request.method() == http::Method::HEAD;
        loop {
            let (connection, reused) = match self.take_idle() {
                Some(connection) => (connection, true),
                // Boxed: opening a connection (TCP, TLS, HTTP handshakes) is a large future
                // that most requests never poll; inline, every request's future would carry
                // and move its space.
                None => (Box::pin(self.connect()).await?, false),
            };
            // A new HTTP/1.1 connection hands back what it could not send; only a reused one,
            // or an HTTP/2 stream that may be refused, needs the head kept aside.
            let replay = if reused || matches!(connection, Connection::Http2(_)) {
                Replay::of(&request)
            } else {
                None
            };
            let sent = match connection {
                Connection::Http1(mut sender) => {
                    if let Err(e) = sender.ready().await {
                        if reused {
                            continue;
                        }
                        return Err(e.into());
                    }
                    let sent = sender.try_send_request(request).await;
                    sent.map(|response| (response, Some(sender)))
                }
                Connection::Http2(mut sender) => {
                    if reused && !sender.is_ready() {
                        // Going away (GOAWAY received, or closing): new requests go to a new
                        // connection.
                        self.forget_shared();
                        continue;
                    }
                    let request = self.for_http2(request)?;
                    let sent = sender.try_send_request(request).await;
                    if sent.is_err() {
                        // An HTTP/2 connection that failed a stream is not offered again.
                        self.forget_shared();
                    }
                    sent.map(|response| (response, None))
                }
            };
            let mut failed = match sent {
                Ok((response, sender)) => {
                    let home = sender.map(|sender| (self.clone(), sender));
                    let request_body = unsent_body;
                    let idle_limit = self.body_idle_timeout;
                    let status = response.status();
                    let has_body = !head_only
                        && status != http::StatusCode::NO_CONTENT
                        && status != http::StatusCode::NOT_MODIFIED;
                    return Ok(response.map(|body| UpstreamBody {
                        unseen: has_body.then(|| body.size_hint().exact()).flatten(),
                        body,
                        home,
                        request_body,
                        done: false,
                        idle_limit,
                        wait: WaitTimer::default(),
                    }));
                }
                Err(failed) => failed,
            };
            let unsent = failed.take_message();
            let error = failed.into_error();
            let refused = is_refused(&error);
            if resends >= MAX_RESENDS || !(reused || refused) {
                return Err(error.into());
            }
            let again = match (unsent, replay) {
                (Some(back), _) => Some(for_http1(back)?),
                (None, Some(replay))
                    if refused || (replay.is_idempotent() && is_connection_failure(&error)) =>
                {
                    replay.request()
                }
                _ => None,
            };
            let Some(again) = again else {
                return Err(error.into());
            };
            request = again;
            resends += 1;
            debug!(error = %error, refused, "upstream request failed unprocessed or repeatable; sending it again");
        }
    }

    /// `request` as HTTP/2 sends it: the scheme and the authority in the request itself, the
    /// authority the one the caller asked for (the `Host` the gateway forwards, which HTTP/2
    /// does not send beside it).
    fn for_http2(
        &self,
        mut request: http::Request<RequestBody>,
    ) -> Result<http::Request<RequestBody>, ForwardError> {
        let authority = request
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let mut uri = std::mem::take(request.uri_mut()).into_parts();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(authority);
        *request.uri_mut() = http::Uri::from_parts(uri).map_err(http::Error::from)?;
        Ok(request)
    }

    /// The shared HTTP/2 connection, or the most recently used idle HTTP/1.1 one; closed
    /// ones are dropped on the way.
    fn take_idle(&self) -> Option<Connection> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = &pool.shared {
            if !shared.is_closed() {
                let shared = shared.clone();
                pool.shared_unused = 0;
                return Some(Connection::Http2(shared));
            }
            pool.shared = None;
        }
        while let Some((_, sender)) = pool.idle.pop_back() {
            if !sender.is_closed() {
                return Some(Connection::Http1(sender));
            }
        }
        None
    }

    /// Stop sending new requests on the shared HTTP/2 connection.
    fn forget_shared(&self) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shared = None;
    }

    /// Put an HTTP/1.1 connection whose last answer was read to its end back with the idle
    /// ones, unless [`MAX_IDLE`] wait already. While any wait, a sweeper task closes those
    /// unused for [`IDLE_TIMEOUT`].
    fn give_back(self: &Arc<Self>, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut pool.idle, now, self.idle_timeout);
        if pool.idle.len() < MAX_IDLE {
            pool.idle.push_back((now, sender));
        }
        self.keep_sweeping(&mut pool);
    }

    /// Start the sweeper unless it runs.
    fn keep_sweeping(self: &Arc<Self>, pool: &mut Pool) {
        if !pool.sweeping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            pool.sweeping = true;
            runtime.spawn(sweep(Arc::downgrade(self), self.idle_timeout));
        }
    }

    /// Open a connection: TCP, then TLS where the upstream is `https` (ALPN picks HTTP/2 or
    /// HTTP/1.1), then the HTTP handshake. The connection runs on a task of its own; a new
    /// HTTP/2 connection becomes the shared one.
    async fn connect(self: &Arc<Self>) -> Result<Connection, ForwardError> {
        let connector = &self.connector;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*connector.address))
            .await
            .map_err(|_| {
                ForwardError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                ))
            })?
            .map_err(ForwardError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &connector.tls {
            None => self.handshake(tcp, connector.http2_only).await,
            Some((tls, name)) => {
                let stream = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(ForwardError::Tls)?;
                let h2 = connector.http2_only || stream.get_ref().1.alpn_protocol() == Some(b"h2");
                self.handshake(stream, h2).await
            }
        }
    }

    async fn handshake<IO>(self: &Arc<Self>, io: IO, h2: bool) -> Result<Connection, ForwardError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        if h2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await?;
            drive(connection, "HTTP/2");
            let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            pool.shared = Some(sender.clone());
            pool.shared_unused = 0;
            self.keep_sweeping(&mut pool);
            Ok(Connection::Http2(sender))
        } else {
            let (sender, connection) = http1::handshake(io).await?;
            drive(connection, "HTTP/1.1");
            Ok(Connection::Http1(sender))
        }
    }
}

/// Run an upstream connection on a task of its own until it ends.
fn drive<C>(connection: C, protocol: &'static str)
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(protocol, error = %e, "upstream connection ended");
        }
    });
}

/// `request` back in the form HTTP/1.1 sends (after an HTTP/2 connection handed it back
/// unsent): origin-form, the authority as `Host`.
fn for_http1(
    mut request: http::Request<RequestBody>,
) -> Result<http::Request<RequestBody>, ForwardError> {
    let mut uri = std::mem::take(request.uri_mut()).into_parts();
    let authority = uri.authority.take();
    uri.scheme = None;
    *request.uri_mut() = http::Uri::from_parts(uri).map_err(http::Error::from)?;
    if let Some(authority) = authority
        && !request.headers().contains_key(http::header::HOST)
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(http::header::HOST, host);
    }
    Ok(request)
}

/// The HTTP/2 error under `error`, if it is one.
fn h2_error(error: &hyper::Error) -> Option<&h2::Error> {
    std::error::Error::source(error).and_then(|e| e.downcast_ref::<h2::Error>())
}

/// Whether an HTTP/2 upstream refused the request's stream without processing it (RFC 9113
/// section 8.7): a graceful `GOAWAY` whose last stream is below it (`NO_ERROR`; h2 gives
/// streams it still processes another error if the connection closes under them), or
/// `RST_STREAM` with `REFUSED_STREAM`.
fn is_refused(error: &hyper::Error) -> bool {
    let Some(h2) = h2_error(error) else {
        return false;
    };
    h2.is_remote()
        && match h2.reason() {
            Some(h2::Reason::NO_ERROR) => h2.is_go_away(),
            Some(h2::Reason::REFUSED_STREAM) => h2.is_reset(),
            _ => false,
        }
}

/// Whether a request failed with its connection (closed, reset, refused), not because the
/// upstream's answer could not be read, the request was not one to send, or its HTTP/2
/// stream alone was reset (the upstream chose to stop that request, with whatever reason).
fn is_connection_failure(error: &hyper::Error) -> bool {
    !(error.is_parse()
        || error.is_parse_status()
        || error.is_user()
        || error.is_timeout()
        || h2_error(error).is_some_and(h2::Error::is_reset))
}

/// A request body as it goes upstream: the client's (recorded when it has any, so that the
/// request can go out again), or none.
pub(crate) enum RequestBody {
    Client(ForwardedBody),
    Recorded(Tape),
    Empty,
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Self::Client(body) => Pin::new(body).poll_frame(cx),
            Self::Recorded(tape) => Pin::new(tape).poll_frame(cx),
            Self::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Client(body) => body.is_end_stream(),
            Self::Recorded(tape) => tape.is_end_stream(),
            Self::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Client(body) => body.size_hint(),
            Self::Recorded(tape) => tape.size_hint(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }
}

/// An upstream's answer body. An HTTP/1.1 connection goes back to its upstream when the
/// body is dropped after its end (hyper drops a response body once it has taken its last
/// frame); dropped earlier, the connection closes with it. A body whose next frame takes
/// longer than its idle limit to come, while the caller's side waits for it, ends in an
/// error: hyper then ends the caller's connection (HTTP/1.1) or resets its stream (HTTP/2),
/// so the caller sees a cut-off answer, never a complete-looking one.
pub(crate) struct UpstreamBody {
    body: Incoming,
    /// The connection and its upstream, for an HTTP/1.1 answer.
    home: Option<(Arc<Upstream>, http1::SendRequest<RequestBody>)>,
    /// The request's body, while the connection may still be sending it.
    request_body: Option<Arc<BodyWatch>>,
    /// The body ended: a frame with nothing after it was polled (a chunked body), or its
    /// length was reached.
    done: bool,
    /// [`BODY_IDLE_TIMEOUT`].
    idle_limit: Duration,
    /// Runs while the caller's side waits for the next frame.
    wait: WaitTimer,
    /// How many bytes of the body its `Content-Length` still announces. hyper ends an HTTP/2
    /// body cut off by `RST_STREAM` or `GOAWAY` with `NO_ERROR` (or `CANCEL`) as if it were
    /// whole; a body that ends short of its length is an error instead.
    unseen: Option<u64>,
}

/// The upstream ended an answer's body before the length it announced.
#[derive(Debug, thiserror::Error)]
#[error("upstream ended the answer body {0} bytes short of its Content-Length")]
pub(crate) struct AnswerCutShort(u64);

/// The upstream sent nothing of an answer's body for this long while it was awaited.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent no answer body bytes for {0:?}")]
pub(crate) struct AnswerStalled(Duration);

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("body", &self.body)
            .field("reusable", &self.home.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.wait.stop();
            match &frame {
                // A broken answer: its connection is not reused.
                Some(Err(_)) => this.home = None,
                None => {
                    if let Some(short) = this.unseen.filter(|n| *n > 0) {
                        this.home = None;
                        metrics::counter!("tenet_gateway_upstream_errors_total").increment(1);
                        warn!(
                            short,
                            "upstream ended an answer body short of its length; answer cut off"
                        );
                        return Poll::Ready(Some(Err(AnswerCutShort(short).into())));
                    }
                    this.done = true;
                }
                Some(Ok(frame)) => {
                    if let (Some(unseen), Some(data)) = (this.unseen.as_mut(), frame.data_ref()) {
                        *unseen = unseen.saturating_sub(data.len() as u64);
                    }
                }
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.idle_limit;
        if !this.wait.poll_expired(cx, limit) {
            return Poll::Pending;
        }
        this.home = None;
        metrics::counter!("tenet_gateway_upstream_errors_total").increment(1);
        warn!(after = ?limit, "upstream stopped sending an answer body; answer cut off");
        Poll::Ready(Some(Err(AnswerStalled(limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some((upstream, sender)) = self.home.take()
            && (self.done || self.body.is_end_stream())
            && self.request_body.as_ref().is_none_or(|body| body.is_sent())
        {
            upstream.give_back(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;

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

    fn upstream(addr: SocketAddr) -> Arc<Upstream> {
        upstream_speaking(addr, UpstreamProtocol::Auto)
    }

    fn upstream_speaking(addr: SocketAddr, protocol: UpstreamProtocol) -> Arc<Upstream> {
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
            protocol,
        };
        let upstream = Upstream::new(
            "test",
            &spec,
            Arc::new(SvidResolver::new(&svid).unwrap()),
            Arc::new(SvidVerifier::new(bundles, Duration::from_secs(60))),
        )
        .unwrap();
        Arc::new(Upstream {
            response_timeout: ANSWER_WITHIN,
            ..upstream
        })
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

    /// The answer the raw upstreams give.
    const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    /// An upstream on raw sockets: `serve` gets each accepted connection with its number
    /// (from 0). Counts the connections.
    async fn raw_upstream<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(usize, TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(count.fetch_add(1, Ordering::SeqCst), stream));
            }
        });
        (addr, accepted)
    }

    /// Read through the end of a request head (and whatever came with it); false when the
    /// connection ended first.
    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
        true
    }

    /// What a [`counting_upstream`] saw.
    #[derive(Default)]
    struct Seen {
        accepted: AtomicUsize,
        closed: AtomicUsize,
        /// Each request's URI authority and `Host` field.
        hosts: std::sync::Mutex<Vec<(Option<String>, Option<String>)>>,
    }

    /// An upstream answering every request with `hello` at once (without reading a request
    /// body), over HTTP/1.1 or (h2c) HTTP/2.
    async fn counting_upstream(h2: bool) -> (SocketAddr, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let (seen, record) = (shared.clone(), shared.clone());
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let host = request
                        .headers()
                        .get(http::header::HOST)
                        .map(|h| h.to_str().unwrap().to_owned());
                    let authority = request.uri().authority().map(|a| a.to_string());
                    record.hosts.lock().unwrap().push((authority, host));
                    async {
                        Ok::<_, Infallible>(http::Response::new(crate::response::full("hello")))
                    }
                });
                tokio::spawn(async move {
                    let io = TokioIo::new(stream);
                    let _ = if h2 {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    } else {
                        http1::Builder::new().serve_connection(io, service).await
                    };
                    seen.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (addr, seen)
    }

    /// A GET as the pipeline forwards it.
    async fn get(upstream: &Arc<Upstream>) -> Result<http::Response<UpstreamBody>, ForwardError> {
        let (parts, body, _client) =
            client_request("GET /x HTTP/1.1\r\nHost: up\r\n\r\n", b"").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        upstream.send(parts, "/x", body).await
    }

    async fn text(response: http::Response<UpstreamBody>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_read_serves_the_next_request() {
        let (addr, seen) = counting_upstream(false).await;
        let upstream = upstream(addr);
        for _ in 0..3 {
            assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        }
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_not_read_is_not_reused() {
        let (addr, seen) = counting_upstream(false).await;
        let upstream = upstream(addr);
        // The answer's body is dropped unread: its connection cannot carry another request.
        drop(get(&upstream).await.unwrap());
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_is_replaced() {
        // Answers one request per connection and closes it, without saying so.
        let (addr, accepted) = raw_upstream(|_, mut stream| async move {
            if read_head(&mut stream).await {
                let _ = stream.write_all(HELLO).await;
            }
        })
        .await;
        let upstream = upstream(addr);
        for round in 1..=3 {
            assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
            assert_eq!(accepted.load(Ordering::SeqCst), round);
        }
    }

    #[tokio::test]
    async fn requests_to_an_http2_upstream_share_one_connection() {
        let (addr, seen) = counting_upstream(true).await;
        let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        let (a, b, c) = tokio::join!(get(&upstream), get(&upstream), get(&upstream));
        for response in [a, b, c] {
            assert_eq!(text(response.unwrap()).await, "hello");
        }
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
        // The caller's host is the request's authority, not sent twice (RFC 9113 8.3.1).
        for (authority, host) in seen.hosts.lock().unwrap().iter() {
            assert_eq!(authority.as_deref(), Some("up"));
            assert_eq!(host, &None);
        }
    }

    #[tokio::test]
    async fn a_connection_still_sending_a_request_body_is_not_reused() {
        // Answers as soon as a head is complete, then reads whatever follows and keeps the
        // connection open.
        let (addr, accepted) = raw_upstream(|_, mut stream| async move {
            if read_head(&mut stream).await && stream.write_all(HELLO).await.is_ok() {
                let mut buf = [0u8; 4096];
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            }
        })
        .await;
        let upstream = upstream(addr);
        // The upstream answers at once; 3 of the body's 10 bytes have arrived.
        let (parts, body, _client) = client_request(HEAD, b"abc").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let response = upstream.send(parts, "/upload", body).await.unwrap();
        assert_eq!(text(response).await, "hello");
        // The next request does not wait behind the rest of that body.
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unused_http2_connection_is_closed_after_the_idle_timeout() {
        let (addr, seen) = counting_upstream(true).await;
        let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
        let upstream = Arc::new(Upstream {
            idle_timeout: Duration::from_millis(400),
            ..Arc::into_inner(upstream).unwrap()
        });
        // Used every 100 ms for 1 s: kept open.
        for _ in 0..10 {
            assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen.closed.load(Ordering::SeqCst), 0, "in use");
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(seen.closed.load(Ordering::SeqCst), 1, "unused");
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let (addr, seen) = counting_upstream(false).await;
        let upstream = upstream(addr);
        let upstream = Arc::new(Upstream {
            idle_timeout: Duration::from_millis(200),
            ..Arc::into_inner(upstream).unwrap()
        });
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            seen.closed.load(Ordering::SeqCst),
            0,
            "idle, not yet timed out"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(seen.closed.load(Ordering::SeqCst), 1);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(seen.accepted.load(Ordering::SeqCst), 2);
    }

    /// An upstream whose first connection answers one request, then closes when the next
    /// request's head arrives (as a server does when its keep-alive timer fires just then);
    /// later connections answer every request. Counts connections.
    async fn closing_on_the_second_request() -> (SocketAddr, Arc<AtomicUsize>) {
        raw_upstream(|connection, mut stream| async move {
            for request in 0.. {
                if !read_head(&mut stream).await || (connection == 0 && request == 1) {
                    return;
                }
                if stream.write_all(HELLO).await.is_err() {
                    return;
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn an_idempotent_request_failed_by_a_closing_connection_goes_out_again() {
        let (addr, accepted) = closing_on_the_second_request().await;
        let upstream = upstream(addr);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_with_a_body_failed_by_a_closing_connection_is_not_repeated() {
        let (addr, accepted) = closing_on_the_second_request().await;
        let upstream = upstream(addr);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        let (parts, body, _client) = client_request(HEAD, b"0123456789").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let err = upstream.send(parts, "/upload", body).await.unwrap_err();
        assert!(matches!(err, ForwardError::Upstream(_)), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// An upstream whose answers announce 10 bytes and send them as `pieces`, `gap` apart,
    /// then keep the connection open.
    async fn trickling_upstream(pieces: &'static [&'static [u8]], gap: Duration) -> SocketAddr {
        let (addr, _) = raw_upstream(move |_, mut stream| async move {
            if !read_head(&mut stream).await {
                return;
            }
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            for piece in pieces {
                tokio::time::sleep(gap).await;
                if stream.write_all(piece).await.is_err() {
                    return;
                }
            }
            let mut buf = [0u8; 64];
            while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await;
        addr
    }

    fn with_body_idle_limit(upstream: Arc<Upstream>, limit: Duration) -> Arc<Upstream> {
        Arc::new(Upstream {
            body_idle_timeout: limit,
            ..Arc::into_inner(upstream).unwrap()
        })
    }

    #[tokio::test]
    async fn an_answer_body_that_stops_coming_ends_in_an_error() {
        let addr = trickling_upstream(&[b"abc"], Duration::ZERO).await;
        let upstream = with_body_idle_limit(upstream(addr), Duration::from_millis(200));
        let response = get(&upstream).await.unwrap();
        let started = Instant::now();
        let err = response.into_body().collect().await.unwrap_err();
        assert!(err.is::<AnswerStalled>(), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_slow_answer_body_that_keeps_coming_is_whole() {
        // Five pieces 100 ms apart under a 300 ms limit: 500 ms in all.
        let pieces: &[&[u8]] = &[b"ab", b"cd", b"ef", b"gh", b"ij"];
        let addr = trickling_upstream(pieces, Duration::from_millis(100)).await;
        let upstream = with_body_idle_limit(upstream(addr), Duration::from_millis(300));
        assert_eq!(text(get(&upstream).await.unwrap()).await, "abcdefghij");
    }

    #[tokio::test]
    async fn an_upstream_that_refuses_connections_is_an_error() {
        // Bound, then closed: nothing listens on the port.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = get(&upstream(addr)).await.unwrap_err();
        assert!(matches!(err, ForwardError::Connect(_)), "{err}");
        assert!(!err.is_client_body());
    }

    const HEAD: &str = "POST /upload HTTP/1.1\r\nHost: upstream\r\nContent-Length: 10\r\n\r\n";

    /// How an HTTP/2 upstream turns down the first request of its first connection.
    #[derive(Clone, Copy)]
    enum Refusal {
        /// `GOAWAY` naming stream 0 as the last it processes (a graceful shutdown).
        GoAway,
        /// `RST_STREAM` with `REFUSED_STREAM` on the request's stream.
        ResetRefused,
        /// `RST_STREAM` with `INTERNAL_ERROR`: the request may have been processed.
        ResetInternal,
    }

    /// An h2c upstream whose first connection turns down its first request as `refusal` says
    /// (written as raw frames; after answering one request with an empty `200` first when
    /// `after_one`), and whose later connections answer with what they were sent. Counts the
    /// connections.
    async fn refusing_h2_upstream(
        refusal: Refusal,
        after_one: bool,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        raw_upstream(move |connection, mut stream| async move {
            if connection > 0 {
                let echo = service_fn(|request: http::Request<Incoming>| async move {
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    Ok::<_, Infallible>(http::Response::new(crate::response::full(body)))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), echo)
                    .await;
                return;
            }
            h2_handshake(&mut stream).await;
            let mut answer_first = after_one;
            while let Some(id) = next_h2_request(&mut stream).await {
                let id = &id[..];
                if std::mem::take(&mut answer_first) {
                    // HEADERS, END_STREAM and END_HEADERS: `:status 200` (static index 8).
                    let answer = [&[0, 0, 1, 1, 5][..], id, &[0x88]].concat();
                    stream.write_all(&answer).await.unwrap();
                    continue;
                }
                // The request's HEADERS: turn it down.
                let frame: Vec<u8> = match refusal {
                    Refusal::GoAway => [&[0, 0, 8, 7, 0, 0, 0, 0, 0][..], &[0; 8]].concat(),
                    Refusal::ResetRefused => [&[0, 0, 4, 3, 0][..], id, &[0, 0, 0, 7]].concat(),
                    Refusal::ResetInternal => [&[0, 0, 4, 3, 0][..], id, &[0, 0, 0, 2]].concat(),
                };
                stream.write_all(&frame).await.unwrap();
                hold_open(&mut stream).await;
                return;
            }
        })
        .await
    }

    /// Take an HTTP/2 client's preface and send an empty SETTINGS frame (raw frames).
    async fn h2_handshake(stream: &mut TcpStream) {
        let mut preface = [0u8; 24];
        stream.read_exact(&mut preface).await.unwrap();
        stream
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
    }

    /// The client's next frame: its 9-byte head and its payload; `None` once it has closed.
    async fn next_h2_frame(stream: &mut TcpStream) -> Option<([u8; 9], Vec<u8>)> {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.ok()?;
        Some((head, payload))
    }

    /// The stream id (as sent) of the client's next request HEADERS, other frames skipped;
    /// `None` once the client has closed.
    async fn next_h2_request(stream: &mut TcpStream) -> Option<[u8; 4]> {
        loop {
            let (head, _) = next_h2_frame(stream).await?;
            if head[3] == 1 {
                return Some([head[5], head[6], head[7], head[8]]);
            }
        }
    }

    /// Keep a connection open until the client closes it.
    async fn hold_open(stream: &mut TcpStream) {
        let mut rest = [0u8; 1024];
        while stream.read(&mut rest).await.is_ok_and(|n| n > 0) {}
    }

    async fn post_through(upstream: &Arc<Upstream>) -> Result<String, ForwardError> {
        let (parts, body, _client) = client_request(HEAD, b"0123456789").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let response = upstream.send(parts, "/upload", body).await?;
        Ok(text(response).await)
    }

    #[tokio::test]
    async fn a_post_whose_stream_was_refused_unprocessed_goes_out_again_with_its_body() {
        for refusal in [Refusal::GoAway, Refusal::ResetRefused] {
            let (addr, accepted) = refusing_h2_upstream(refusal, false).await;
            let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
            assert_eq!(post_through(&upstream).await.unwrap(), "0123456789");
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        }
    }

    #[tokio::test]
    async fn a_post_whose_stream_was_reset_by_an_error_is_not_repeated() {
        let (addr, accepted) = refusing_h2_upstream(Refusal::ResetInternal, false).await;
        let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
        let err = post_through(&upstream).await.unwrap_err();
        assert!(matches!(err, ForwardError::Upstream(_)), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// An HTTP/1.1 upstream that answers each request, once its whole body has come, with
    /// that body.
    async fn echoing_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let echo = service_fn(|request: http::Request<Incoming>| async move {
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    Ok::<_, Infallible>(http::Response::new(crate::response::full(body)))
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), echo));
            }
        });
        addr
    }

    /// A chunked upload of `pieces` one-byte chunks, `gap` apart, forwarded as a gRPC stream
    /// (`streaming`) or not; the upstream answers at its end.
    async fn stream_up(
        streaming: bool,
        pieces: usize,
        gap: Duration,
    ) -> Result<String, ForwardError> {
        let upstream = upstream(echoing_upstream().await);
        let head = "POST /stream HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (parts, body, mut client) = client_request(head, b"").await;
        tokio::spawn(async move {
            for _ in 0..pieces {
                tokio::time::sleep(gap).await;
                client.write_all(b"1\r\nx\r\n").await.unwrap();
            }
            client.write_all(b"0\r\n\r\n").await.unwrap();
            // Kept open until the answer is read.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let body = ForwardedBody::new(body, Duration::from_secs(60), streaming, "r".into());
        let response = upstream.send(parts, "/stream", body).await?;
        Ok(text(response).await)
    }

    #[tokio::test]
    async fn a_client_stream_longer_than_the_time_to_answer_is_answered_at_its_end() {
        // Twelve pieces 100 ms apart: four times the 300 ms the upstream has to answer.
        let echoed = stream_up(true, 12, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(echoed, "x".repeat(12));
        // Not a gRPC stream: the client is late.
        let err = stream_up(false, 12, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::BodyUnfinished(_)), "{err}");
    }

    #[tokio::test]
    async fn an_http2_answer_reset_short_of_its_length_ends_in_an_error() {
        // `:status 200`, `content-length: 10`, then 3 bytes and RST_STREAM(NO_ERROR).
        let (addr, _) = raw_upstream(|_, mut stream| async move {
            h2_handshake(&mut stream).await;
            let Some(id) = next_h2_request(&mut stream).await else {
                return;
            };
            let id = &id[..];
            let block: &[u8] = &[0x88, 0x0F, 0x0D, 0x02, b'1', b'0'];
            let answer = [
                &[0, 0, 6, 1, 4][..],
                id,
                block,
                &[0, 0, 3, 0, 0],
                id,
                b"abc",
                &[0, 0, 4, 3, 0],
                id,
                &[0, 0, 0, 0],
            ]
            .concat();
            stream.write_all(&answer).await.unwrap();
            hold_open(&mut stream).await;
        })
        .await;
        let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
        let response = get(&upstream).await.unwrap();
        let err = response.into_body().collect().await.unwrap_err();
        assert!(err.to_string().contains("7 bytes short"), "{err}");
    }

    /// An h2c upstream on raw frames that takes a request, lowers its streams' initial
    /// window to 4,096 bytes once the first DATA frame has come, answers with its head at
    /// once, then reads the body slowly (a millisecond for every 4,096 bytes), opening the stream and connection windows again for
    /// every DATA frame it read, and ends its answer with the number of body bytes it got.
    async fn window_lowering_upstream() -> SocketAddr {
        let (addr, _) = raw_upstream(|_, mut stream| async move {
            h2_handshake(&mut stream).await;
            let Some(id) = next_h2_request(&mut stream).await else {
                return;
            };
            let mut got = 0usize;
            let mut unread = 0usize;
            let mut lowered = false;
            while let Some((head, payload)) = next_h2_frame(&mut stream).await {
                let len = payload.len();
                if head[3] != 0 {
                    continue;
                }
                got += len;
                if !std::mem::replace(&mut lowered, true) {
                    // SETTINGS_INITIAL_WINDOW_SIZE = 4096, then `:status 200`.
                    let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0x10, 0];
                    let answer = [&[0, 0, 1, 1, 4][..], &id, &[0x88]].concat();
                    stream
                        .write_all(&[&settings[..], &answer].concat())
                        .await
                        .unwrap();
                }
                // Slow by the byte: a millisecond for every 4,096 bytes.
                unread += len;
                while unread >= 4096 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    unread -= 4096;
                }
                if len > 0 {
                    let n = u32::try_from(len).unwrap().to_be_bytes();
                    let updates = [
                        &[0, 0, 4, 8, 0][..],
                        &id,
                        &n,
                        &[0, 0, 4, 8, 0, 0, 0, 0, 0],
                        &n,
                    ]
                    .concat();
                    stream.write_all(&updates).await.unwrap();
                }
                if head[4] & 1 == 1 {
                    let text = got.to_string();
                    let size = u8::try_from(text.len()).unwrap();
                    let data = [&[0, 0, size, 0, 1][..], &id, text.as_bytes()].concat();
                    stream.write_all(&data).await.unwrap();
                    hold_open(&mut stream).await;
                    return;
                }
            }
        })
        .await;
        addr
    }

    /// An upload through the window-lowering upstream: `pieces` chunks of 1,000 bytes,
    /// `gap` apart; the number of bytes the upstream got.
    async fn upload_to_a_window_lowering_upstream(pieces: usize, gap: Duration) -> String {
        let upstream = upstream_speaking(window_lowering_upstream().await, UpstreamProtocol::Http2);
        let upstream = Arc::new(Upstream {
            response_timeout: Duration::from_secs(5),
            ..Arc::into_inner(upstream).unwrap()
        });
        let head = "POST /stream HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (parts, body, mut client) = client_request(head, b"").await;
        tokio::spawn(async move {
            for _ in 0..pieces {
                tokio::time::sleep(gap).await;
                let piece = [&b"3e8\r\n"[..], &[b'x'; 1000], b"\r\n"].concat();
                client.write_all(&piece).await.unwrap();
            }
            client.write_all(b"0\r\n\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let response = upstream.send(parts, "/stream", body).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(8), text(response)).await;
        answer.unwrap()
    }

    #[tokio::test]
    async fn an_upload_goes_on_after_an_http2_upstream_lowers_its_window() {
        // A trickle, 40 pieces 10 ms apart; then 300 pieces at once, so that the client has
        // sent the whole initial window when the upstream lowers it.
        let trickle = upload_to_a_window_lowering_upstream(40, Duration::from_millis(10));
        assert_eq!(trickle.await, "40000");
        let burst = upload_to_a_window_lowering_upstream(300, Duration::ZERO);
        assert_eq!(burst.await, "300000");
    }

    #[tokio::test]
    async fn a_put_whose_stream_a_reused_connection_reset_is_not_repeated() {
        let (addr, accepted) = refusing_h2_upstream(Refusal::ResetInternal, true).await;
        let upstream = upstream_speaking(addr, UpstreamProtocol::Http2);
        assert_eq!(get(&upstream).await.unwrap().status(), 200);
        let head = HEAD.replace("POST", "PUT");
        let (parts, body, _client) = client_request(&head, b"0123456789").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let err = upstream.send(parts, "/upload", body).await.unwrap_err();
        assert!(matches!(err, ForwardError::Upstream(_)), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_put_with_a_body_failed_by_a_closing_connection_goes_out_again() {
        // The first connection answers a GET, then closes on the next request; later ones
        // answer each request with its 10-byte body.
        let (addr, accepted) = raw_upstream(|connection, mut stream| async move {
            if connection == 0 {
                if read_head(&mut stream).await {
                    let _ = stream.write_all(HELLO).await;
                    read_head(&mut stream).await;
                }
                return;
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while let Ok(n) = stream.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                if buf.len() >= end + 4 + 10 {
                    let body = buf[end + 4..end + 14].to_vec();
                    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
                    let _ = stream.write_all(&[&head[..], &body].concat()).await;
                    return;
                }
            }
        })
        .await;
        let upstream = upstream(addr);
        assert_eq!(text(get(&upstream).await.unwrap()).await, "hello");
        let head = HEAD.replace("POST", "PUT");
        let (parts, body, _client) = client_request(&head, b"0123456789").await;
        let body = ForwardedBody::new(body, Duration::from_secs(60), false, "r".into());
        let response = upstream.send(parts, "/upload", body).await.unwrap();
        assert_eq!(text(response).await, "0123456789");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

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
