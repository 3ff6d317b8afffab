//! Accepting connections: TLS handshake under a deadline, the caller's identity read from
//! its verified SVID, then HTTP/1.1 or HTTP/2 (ALPN) served with size and time limits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tenet_event::RejectionEvent;
use tenet_identity::SpiffeId;
use tenet_policy::{Principal, TlsFacts};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::framing::{FramingGuard, FramingVerdict};
#[cfg(test)]
use crate::keepalive::PREMATURE_RESET_LIMIT;
use crate::keepalive::{Activity, PREMATURE_RESET, TrackedBody};
use crate::refusals::{self, log_refusal};
use crate::response::BoxError;
use crate::server::{ListenerState, Shared};
use crate::sources::SourceSlot;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (HTTP/1.1 buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long open connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an HTTP/1.x connection may stay idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take nothing of the answers it asked for: on HTTP/1.x no write to
/// it goes through, on HTTP/2 no answer body is pulled (its flow-control windows stay shut)
/// while none waits for its upstream. Such a connection is closed: it would otherwise hold
/// its upstream connections for ever (nginx's `send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most answer bytes the kernel holds for a client that it has not yet sent
/// (`TCP_NOTSENT_LOWAT`). Without a limit a slow reader's autotuned send buffer holds
/// megabytes, and the kernel reports the socket writable again only once about a third of
/// them has gone: minutes for a client reading a few KB/s, however steadily. With it, a write
/// goes through each time the client's window has taken about half of this. (A client's own
/// receive buffer can still hide its reading: Linux keeps the window it advertises shut until
/// a sixteenth of that buffer is free, so a reader of a few KB/s with megabytes of buffer sends
/// no window for over a minute, and nothing distinguishes it from one that stopped.)
const UNSENT_LIMIT: u32 = 128 * 1024;
/// How long an HTTP/1.x connection may wait after its handshake before its first request
/// starts: a connection that never asks for anything should not hold one of the listener's
/// connection slots for a whole [`IDLE_TIMEOUT`].
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/2 connection that never started a request gets to finish after shutdown
/// starts.
const STOP_GRACE: Duration = Duration::from_millis(200);
/// How long closing a connection (TLS close_notify, then TCP shutdown) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an HTTP/1.x connection stays idle, hyper's buffers kept, before it parks (see
/// the `keepalive` module): long enough that a busy client's next request finds hyper still
/// there, short enough that many idle connections hold little memory.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// What the gateway knows about a connection once the handshake is done.
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The TLS facts as policies see them (empty strings for absent facts).
    pub tls: TlsFacts,
    /// The caller's verified SPIFFE ID; `None` for anonymous callers.
    pub principal: Option<SpiffeId>,
    /// [`ConnInfo::principal`] as policies see it (a workload, or anonymous). Like the values
    /// below, built once per connection instead of once per request.
    pub policy_principal: Principal,
    /// The caller's name in events, logs and risk: its SPIFFE ID, or `anonymous`.
    pub name: String,
    /// [`ConnInfo::name`] as the upstream's principal header; `None` if it cannot be one.
    pub name_header: Option<HeaderValue>,
    /// The peer's address as the upstream's `X-Forwarded-For`.
    pub forwarded_for: Option<HeaderValue>,
}

impl ConnInfo {
    /// The server name the client asked for, if it sent one.
    pub fn sni(&self) -> Option<&str> {
        Some(self.tls.sni.as_str()).filter(|s| !s.is_empty())
    }

    /// The client certificate's serial number (hex), if the client presented one.
    pub fn client_serial(&self) -> Option<&str> {
        Some(self.tls.client_serial.as_str()).filter(|s| !s.is_empty())
    }
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
    // Accepts failed in a row (EMFILE and friends): each retried after 50 ms, logged when
    // their number doubles.
    let mut failed_accepts: u64 = 0;
    // Connections dropped in a row at the connection limit, logged when their number doubles.
    let mut over_limit: u64 = 0;
    // Connections dropped because their source held its share, logged when their number
    // doubles.
    let mut over_source_limit: u64 = 0;
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
                failed_accepts += 1;
                metrics::counter!("tenet_gateway_accept_errors_total").increment(1);
                if failed_accepts.is_power_of_two() {
                    warn!(listener = %listener.name, error = %e, failed_in_a_row = failed_accepts,
                        "accept failed; retried every 50 ms");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if failed_accepts > 0 {
            info!(listener = %listener.name, failed_in_a_row = failed_accepts, "accepting again");
            failed_accepts = 0;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!("tenet_gateway_connections_refused_total", "reason" => "limit")
                .increment(1);
            over_limit += 1;
            if over_limit.is_power_of_two() {
                warn!(listener = %listener.name, %peer, dropped_in_a_row = over_limit,
                    "connection limit reached; new connections are dropped");
            }
            continue;
        };
        if over_limit > 0 {
            info!(listener = %listener.name, dropped_in_a_row = over_limit,
                "below the connection limit again");
            over_limit = 0;
        }
        let Some(slot) = shared.sources.enter(peer.ip()) else {
            metrics::counter!("tenet_gateway_connections_refused_total", "reason" => "source_limit")
                .increment(1);
            over_source_limit += 1;
            if over_source_limit.is_power_of_two() {
                warn!(listener = %listener.name, %peer, limit = shared.sources.limit(),
                    dropped = over_source_limit,
                    "a source holds as many connections as one source may; its new \
                     connections are dropped");
            }
            continue;
        };
        let span = info_span!("accept", listener = %listener.name, %peer);
        // Spawned as it is: wrapping it in another async block would store the future twice
        // in the task (once captured, once being awaited).
        let task = serve_connection(
            stream,
            peer,
            acceptor.clone(),
            listener.clone(),
            shared.clone(),
            stopped.clone(),
            (permit, slot),
        );
        connections.spawn(task.instrument(span));
    }
    info!(listener = %listener.name, open = connections.len(), "listener stopping");
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// Limit the answer bytes the kernel holds unsent for this client to [`UNSENT_LIMIT`]. A
/// kernel without the option leaves the send buffer as it is.
fn limit_unsent(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(UNSENT_LIMIT) {
        debug!(error = %e, "the unsent-bytes limit could not be set");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    listener: Arc<ListenerState>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    _held: (OwnedSemaphorePermit, SourceSlot),
) {
    let _ = stream.set_nodelay(true);
    limit_unsent(&stream);
    // The TLS state (rustls's connection, a couple of KiB) lives on the heap, once: inline,
    // every await point that holds it would reserve its own copy in this task's future.
    let handshake = Box::pin(acceptor.accept(Received::new(stream)).into_fallible());
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => Box::new(tls),
        Ok(Err((e, stream))) => {
            // A client that closes before sending a byte is a port scan or a health check;
            // one that closes inside its ClientHello truncated a handshake (and is recorded).
            let kind = match classify(&e) {
                "client_closed" if stream.any => "truncated_handshake",
                kind => kind,
            };
            return refuse_handshake(&listener, &shared, peer, kind, e).await;
        }
        Err(_) => {
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out");
            return refuse_handshake(&listener, &shared, peer, "handshake_timeout", e).await;
        }
    };
    let info = Arc::new(conn_info(peer, tls.get_ref().1, shared.clock.now()));
    debug!(principal = ?info.principal.as_ref().map(SpiffeId::as_str), alpn = %info.tls.alpn,
        "connection established");

    // HTTP/1.x byte streams go through the framing guard, so that hyper only ever sees
    // unambiguous request heads; HTTP/2 (negotiated by ALPN) frames its own messages.
    let http1 = info.tls.alpn != "h2";
    let verdict = http1.then(FramingVerdict::default);
    let streams = (!http1).then(Activity::default);
    // Each protocol's connection is driven on its own and boxed, so that an idle connection
    // holds the state of the protocol it speaks and nothing more.
    let result: Result<(), BoxError> = match verdict.clone() {
        Some(verdict) => serve_http1(tls, verdict, &info, &listener, &shared, &mut stopped)
            .await
            .map_err(Into::into),
        None => {
            let requests = streams.clone().unwrap_or_default();
            let activity = requests.clone();
            let (conn, listener, shared) = (info.clone(), listener.clone(), shared.clone());
            let service = http2_service(activity, move |request| {
                crate::pipeline::handle(
                    request,
                    None,
                    conn.clone(),
                    listener.clone(),
                    shared.clone(),
                )
            });
            // No keep-alive pings: a client reading a large answer slowly sees a PING only
            // after the megabytes queued before it, so hyper's 20 s wait for the answer cut
            // off slow readers. A dead or silent client is ended by the idle and send checks
            // of `drive_http2` instead.
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
                .max_concurrent_streams(256);
            drive_http2(
                Box::pin(builder.serve_connection(TokioIo::new(tls), service)),
                &mut stopped,
                &requests,
                peer,
            )
            .await
            .map_err(Into::into)
        }
    };
    if verdict.as_ref().is_some_and(FramingVerdict::head_timed_out) {
        let refusal = HeadRefusal {
            kind: "header_timeout",
            status: None,
        };
        let detail = format!("request head not complete within {HEADER_TIMEOUT:?}");
        return refuse_head(&listener, &shared, &info, refusal, detail).await;
    }
    if let Some((premature, started)) = streams.as_ref().and_then(Activity::reset_flooded) {
        let detail = format!(
            "{premature} of {started} streams reset by the client within {PREMATURE_RESET:?} \
             of their start, before their answer"
        );
        return refuse_http2(&listener, &shared, &info, "http2_reset_flood", detail).await;
    }
    if verdict.as_ref().is_some_and(FramingVerdict::send_timed_out) {
        send_stalled(peer, "a write to it stayed blocked");
        return;
    }
    if let Err(e) = result {
        // Malformed HTTP, oversized heads and slow clients end here; hyper has already
        // answered with 400/431 where the protocol allows.
        metrics::counter!("tenet_gateway_http_errors_total").increment(1);
        // Only HTTP/1.x has request heads hyper refuses on its own; an HTTP/2 connection error
        // is never one.
        let refusal = if http1 { refused_head(&*e) } else { None };
        if let Some(refusal) = refusal {
            refuse_head(&listener, &shared, &info, refusal, e.to_string()).await;
        } else if let Some(kind) = http2_violation(&*e) {
            refuse_http2(&listener, &shared, &info, kind, error_chain(&*e)).await;
        } else if client_went_away(&*e) {
            debug!(%peer, error = %e, "connection ended: the client went away");
        } else {
            info!(%peer, error = %e, "connection ended with a protocol error");
        }
    }
}

/// Serve HTTP/1.x requests until the connection ends. Between requests the connection is
/// parked (see the `keepalive` module): hyper hands the stream back, the connection waits for
/// the socket to become readable (at most [`IDLE_TIMEOUT`]) holding only its TLS state, and a
/// new hyper connection serves the next request. A stopping gateway closes parked
/// connections; a connection inside a request finishes it first.
async fn serve_http1(
    tls: Box<TlsStream<Received>>,
    verdict: FramingVerdict,
    conn: &Arc<ConnInfo>,
    listener: &Arc<ListenerState>,
    shared: &Arc<Shared>,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error> {
    let activity = Activity::default();
    let mut guard = FramingGuard::new(tls, verdict.clone())
        .with_head_timeout(HEADER_TIMEOUT)
        .with_send_timeout(SEND_TIMEOUT)
        .parking(activity.clone())
        .lingering(PARK_AFTER);
    // No hyper timer: the guard times out started heads, and parked connections time out
    // here; hyper's own header timer would also run while a request is merely awaited.
    let mut builder = http1::Builder::new();
    builder.max_buf_size(MAX_HEADER_BYTES).keep_alive(true);
    let (requests, peer) = (activity.clone(), conn.peer);
    loop {
        let (verdict, activity) = (verdict.clone(), activity.clone());
        let (conn, listener, shared) = (conn.clone(), listener.clone(), shared.clone());
        let stopping = stopped.clone();
        let service = service_fn(move |request| {
            let in_flight = activity.begin();
            let handled = crate::pipeline::handle(
                request,
                verdict.take(),
                conn.clone(),
                listener.clone(),
                shared.clone(),
            );
            let stopping = stopping.clone();
            async move {
                let mut response = handled.await?;
                // A response finished while the gateway stops closes its connection, and
                // says so, so that the client does not send its next request into a close.
                if *stopping.borrow() {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, in_flight)))
            }
        });
        let served = Box::pin(
            builder
                .serve_connection(TokioIo::new(guard), service)
                .without_shutdown(),
        );
        // Everything of hyper is dropped here, its read buffer (`parts.read_buf`) included.
        let parked = {
            let parts = served.await?;
            guard = parts.io.into_inner();
            let parked = guard.take_parked();
            guard.unread(&parts.read_buf);
            parked
        };
        if !parked {
            // The client closed, or a response closed the connection.
            close(guard).await;
            return Ok(());
        }
        if guard.has_buffered() {
            // hyper handed back bytes it had not used: serve them without waiting.
            continue;
        }
        let socket = &guard.get_ref().get_ref().0.stream;
        let first = !requests.any_started();
        let limit = if first {
            FIRST_REQUEST_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        let wake = tokio::select! {
            readable = socket.readable() => Ok(readable.is_ok()),
            _ = stopped.changed() => Ok(false),
            () = tokio::time::sleep(limit) => Err(()),
        };
        match wake {
            Ok(true) => {}
            Ok(false) => {
                close(guard).await;
                return Ok(());
            }
            Err(()) => {
                timed_out(peer, first, limit);
                close(guard).await;
                return Ok(());
            }
        }
    }
}

/// Send TLS close_notify and end the TCP stream, giving a client that does not read at most
/// [`CLOSE_TIMEOUT`].
async fn close<IO: AsyncWrite + Unpin>(mut io: IO) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
}

/// A client's TCP stream that remembers whether the client sent anything, so that a handshake
/// ending at EOF tells a truncated ClientHello from a connection closed before its first byte
/// without a separate peek (one system call per connection).
struct Received {
    stream: TcpStream,
    /// True once a read returned at least one byte.
    any: bool,
}

impl Received {
    fn new(stream: TcpStream) -> Self {
        Self { stream, any: false }
    }
}

impl AsyncRead for Received {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.any |= buf.filled().len() > before;
        poll
    }
}

impl AsyncWrite for Received {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Count and log a connection ended for having nothing to do: no request since its
/// handshake (`first`), or none for `after`.
fn timed_out(peer: SocketAddr, first: bool, after: Duration) {
    let reason = if first { "no_request" } else { "idle" };
    metrics::counter!("tenet_gateway_connections_timed_out_total", "reason" => reason).increment(1);
    debug!(%peer, reason, ?after, "connection ended: nothing to serve");
}

/// Count and log a connection closed because its client took none of its answers for
/// [`SEND_TIMEOUT`]; `how` says how that showed.
fn send_stalled(peer: SocketAddr, how: &'static str) {
    metrics::counter!("tenet_gateway_connections_timed_out_total", "reason" => "send_stalled")
        .increment(1);
    info!(%peer, how, limit = ?SEND_TIMEOUT, "connection closed: the client took none of its answers");
}

/// The HTTP/2 service of a connection: each request answered by `handle`, its answer body
/// counted by the send check, and its stream watched by the reset-flood check (see
/// [`Activity::watch_reset`]). Once the connection is being closed for a reset flood, a new
/// stream gets a 503 without any work done for it.
fn http2_service<H, F>(
    activity: Activity,
    handle: H,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<TrackedBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<TrackedBody>, Infallible>> + Send + 'static,
> + Clone
where
    H: Fn(http::Request<hyper::body::Incoming>) -> F + Clone,
    F: Future<Output = Result<http::Response<crate::response::Body>, Infallible>> + Send + 'static,
{
    service_fn(move |request| {
        let in_flight = activity.begin();
        let handled = (!activity.is_flooding()).then(|| (handle(request), activity.watch_reset()));
        async move {
            let response = match handled {
                Some((handled, reset)) => {
                    let response = handled.await?;
                    reset.answered();
                    response
                }
                None => closing_for_resets(),
            };
            Ok(response.map(|body| TrackedBody::http2(body, in_flight)))
        }
    })
}

/// The answer to a stream opened on a connection being closed for a reset flood.
fn closing_for_resets() -> http::Response<crate::response::Body> {
    let mut response = http::Response::new(crate::response::full(
        r#"{"error":"this connection is closing: its client resets too many streams"}"#,
    ));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Run an HTTP/2 connection to its end, shutting it down gracefully (GOAWAY) when the gateway
/// stops or when it has nothing to do: no stream by [`FIRST_REQUEST_TIMEOUT`] after the
/// handshake, later no new stream and none open for an [`IDLE_TIMEOUT`] window (so between
/// one and two of them after the last stream ended). hyper's HTTP/2 server has no idle
/// timeout of its own, and the gateway sends no keep-alive pings (see `serve_connection`).
/// A connection whose client took none of its answers between two checks a [`SEND_TIMEOUT`]
/// apart is dropped (see [`Activity::stalled_since`]). A connection whose client resets most
/// of its streams before their answers start is sent GOAWAY and dropped (see
/// [`Activity::watch_reset`]).
async fn drive_http2<C: GracefulConnection>(
    mut connection: Pin<Box<C>>,
    stopped: &mut watch::Receiver<bool>,
    requests: &Activity,
    peer: SocketAddr,
) -> Result<(), C::Error> {
    let mut seen = 0;
    let mut window = FIRST_REQUEST_TIMEOUT;
    let mut pulls = requests.pulls();
    // Both timers live across the loop's turns: one set anew on every turn would restart
    // whenever the other fired.
    let mut idle_check = Box::pin(tokio::time::sleep(window));
    let mut send_check = Box::pin(tokio::time::sleep(SEND_TIMEOUT));
    loop {
        tokio::select! {
            result = connection.as_mut() => return result,
            () = send_check.as_mut() => {
                if requests.stalled_since(pulls) {
                    send_stalled(peer, "no answer polled between two checks");
                    return Ok(());
                }
                pulls = requests.pulls();
                send_check.as_mut().reset(tokio::time::Instant::now() + SEND_TIMEOUT);
            }
            _ = stopped.changed() => {
                connection.as_mut().graceful_shutdown();
                return stop_http2(connection, requests).await;
            }
            () = requests.reset_flood() => {
                // GOAWAY, a moment for it to go out, then the connection is dropped with
                // whatever it still has open.
                requests.end_for_reset_flood();
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(STOP_GRACE, connection.as_mut()).await;
                return Ok(());
            }
            () = idle_check.as_mut() => {
                let started = requests.started();
                if started == seen && requests.is_idle(started) {
                    timed_out(peer, started == 0, window);
                    connection.as_mut().graceful_shutdown();
                    // Every answer is with hyper, but a client that keeps its windows shut
                    // would leave the last piece in hyper's buffers, and the connection open,
                    // for ever.
                    return match tokio::time::timeout(SEND_TIMEOUT, connection).await {
                        Ok(result) => result,
                        Err(_) => {
                            send_stalled(peer, "its last answer still unsent after the idle close");
                            Ok(())
                        }
                    };
                }
                seen = started;
                window = IDLE_TIMEOUT;
                idle_check.as_mut().reset(tokio::time::Instant::now() + window);
            }
        }
    }
}

/// Finish an HTTP/2 connection told to shut down. One that never started a request is
/// dropped after [`STOP_GRACE`] (enough to send the GOAWAY) unless one starts meanwhile:
/// hyper would wait for the client's next move, from a client that never sent its preface
/// for the whole drain. One that did is left to hyper's graceful close (within the listener's
/// drain): an answer may still be in hyper's buffers after its last frame was handed over,
/// and a slow client would lose its end.
async fn stop_http2<C: GracefulConnection>(
    mut connection: Pin<Box<C>>,
    requests: &Activity,
) -> Result<(), C::Error> {
    if !requests.any_started() {
        tokio::select! {
            result = connection.as_mut() => return result,
            () = tokio::time::sleep(STOP_GRACE) => {}
        }
        if !requests.any_started() {
            return Ok(());
        }
    }
    connection.await
}

/// Why hyper refused a request head before the pipeline saw it, and what it answered.
#[derive(Debug, Clone, Copy)]
struct HeadRefusal {
    kind: &'static str,
    status: Option<http::StatusCode>,
}

/// A request head hyper refused (malformed, too large, or not sent in time); `None` for
/// other connection errors (a client that went away, an HTTP/2 protocol error).
fn refused_head(error: &(dyn std::error::Error + 'static)) -> Option<HeadRefusal> {
    use tenet_request::Rejection;
    let error = error.downcast_ref::<hyper::Error>()?;
    let answered = |r: Rejection| HeadRefusal {
        kind: r.kind(),
        status: Some(r.status()),
    };
    if error.is_parse_too_large() {
        Some(answered(Rejection::RequestHeadTooLarge))
    } else if error.is_parse() {
        Some(answered(Rejection::MalformedHead("not http/1.1 syntax")))
    } else if error.is_timeout() {
        // hyper closes without answering.
        Some(HeadRefusal {
            kind: "header_timeout",
            status: None,
        })
    } else {
        None
    }
}

async fn refuse_head(
    listener: &ListenerState,
    shared: &Shared,
    conn: &ConnInfo,
    refusal: HeadRefusal,
    detail: String,
) {
    let kind = refusal.kind;
    metrics::counter!("tenet_gateway_rejections_total", "reason" => kind).increment(1);
    let status = refusal.status.map(|s| s.as_u16());
    let recorded = record_refusal(listener, shared, conn, ("http", kind), &detail, status).await;
    log_refusal!(recorded, peer = %conn.peer, reason = kind, error = %detail, "request head refused");
}

/// Record the refusal of a connection past its handshake, within its source's limit:
/// `stage` and `kind` as in [`RejectionEvent`], `status` the HTTP status sent, if any.
/// Returns whether it was recorded one by one.
async fn record_refusal(
    listener: &ListenerState,
    shared: &Shared,
    conn: &ConnInfo,
    (stage, kind): (&'static str, &'static str),
    detail: &str,
    status: Option<u16>,
) -> bool {
    let refusal = RejectionEvent {
        request_id: None,
        listener: listener.name.clone(),
        source_ip: conn.peer.ip(),
        source_port: conn.peer.port(),
        stage: stage.into(),
        kind: kind.into(),
        detail: detail.to_owned(),
        principal: conn.principal.as_ref().map(|p| p.as_str().to_string()),
        status,
    };
    refusals::record(shared, refusal).await
}

/// Whether `e` is the client closing or resetting its connection mid-exchange (a client that
/// gave up, or was stopped): not a protocol error.
fn client_went_away(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    cause::<std::io::Error>(e).is_some_and(|io| {
        matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        )
    })
}

/// The first error of type `T` in `e`'s chain of sources, `e` included.
fn cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// `e` and its sources, joined: hyper's own message ("http2 error") says nothing of the cause.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        let more = source.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = source.source();
    }
    text
}

/// The label of an HTTP/2 connection error the client caused: the gateway's HTTP/2 stack
/// found it breaking the protocol (or resetting streams faster than they can be served) and
/// ended the connection with GOAWAY. `None` for anything else: a client that went away, or a
/// GOAWAY the client sent.
fn http2_violation(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let h2 = cause::<h2::Error>(e)?;
    if !(h2.is_go_away() && h2.is_library()) {
        return None;
    }
    let reason = h2.reason()?;
    Some(match reason {
        h2::Reason::PROTOCOL_ERROR => "http2_protocol_error",
        h2::Reason::FLOW_CONTROL_ERROR => "http2_flow_control_error",
        h2::Reason::SETTINGS_TIMEOUT => "http2_settings_timeout",
        h2::Reason::STREAM_CLOSED => "http2_stream_closed",
        h2::Reason::FRAME_SIZE_ERROR => "http2_frame_size_error",
        h2::Reason::COMPRESSION_ERROR => "http2_compression_error",
        h2::Reason::ENHANCE_YOUR_CALM => "http2_enhance_your_calm",
        // NO_ERROR is a graceful close; the others are not the client's doing.
        _ => return None,
    })
}

/// Count, log and record an HTTP/2 connection the gateway ended because its client broke the
/// protocol (see [`http2_violation`]): an authenticated workload that does this is a
/// detection's business, not only a counter's.
async fn refuse_http2(
    listener: &ListenerState,
    shared: &Shared,
    conn: &ConnInfo,
    kind: &'static str,
    detail: String,
) {
    metrics::counter!("tenet_gateway_rejections_total", "reason" => kind).increment(1);
    let recorded = record_refusal(listener, shared, conn, ("http2", kind), &detail, None).await;
    log_refusal!(recorded, peer = %conn.peer, principal = %conn.name, reason = kind,
        error = %detail, "connection ended: the client broke HTTP/2");
}

fn conn_info(
    peer: SocketAddr,
    tls: &rustls::ServerConnection,
    now: time::OffsetDateTime,
) -> ConnInfo {
    let leaf = tls.peer_certificates().and_then(|certs| certs.first());
    let identity = leaf.and_then(|cert| tenet_identity::peer_identity(cert).ok());
    if let Some(id) = identity.as_ref().filter(|id| id.not_after < now) {
        // The verifier accepted it only because of the configured clock skew (case F017).
        metrics::counter!("tenet_gateway_certificates_within_skew_total").increment(1);
        warn!(%peer, principal = %id.id, not_after = %id.not_after,
            "client certificate past its notAfter accepted within the allowed clock skew");
    }
    let principal = identity.as_ref().map(|p| p.id.clone());
    let name = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |p| p.as_str().to_string());
    let policy_principal =
        principal
            .as_ref()
            .map_or(Principal::Anonymous, |id| Principal::Workload {
                spiffe_id: id.as_str().to_string(),
                trust_domain: id.trust_domain().as_str().to_string(),
                path: id.path().to_string(),
            });
    let version = tls
        .protocol_version()
        .map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default();
    ConnInfo {
        peer,
        name_header: HeaderValue::from_str(&name).ok(),
        forwarded_for: HeaderValue::from_str(&peer.ip().to_string()).ok(),
        name,
        tls: TlsFacts {
            version,
            sni: tls.server_name().map(str::to_string).unwrap_or_default(),
            alpn: tls
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            mtls: principal.is_some(),
            client_serial: identity.map(|p| p.serial_hex).unwrap_or_default(),
        },
        principal,
        policy_principal,
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
    // The SVID verifier carries its own error inside `CertificateError::Other`.
    if let Some(svid) = tenet_identity::svid_error_of(tls) {
        return classify_svid(svid);
    }
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

/// A stable label for why a client SVID was refused.
fn classify_svid(e: &tenet_identity::SvidError) -> &'static str {
    use tenet_identity::{NotSvidReason, SvidError};
    match e {
        SvidError::Expired { .. } => "expired_certificate",
        SvidError::NotYetValid { .. } => "certificate_not_yet_valid",
        SvidError::UnknownTrustDomain(_) => "unknown_trust_domain",
        SvidError::UntrustedChain { .. } => "untrusted_chain",
        SvidError::WrongUsage { .. } => "wrong_key_usage",
        SvidError::MalformedCertificate { .. } => "malformed_certificate",
        SvidError::NotSvid(NotSvidReason::LeafIsCa) => "leaf_is_ca",
        SvidError::NotSvid(NotSvidReason::MultipleUriSans { .. }) => "multiple_uri_sans",
        SvidError::NotSvid(NotSvidReason::NoUriSan) => "no_uri_san",
        SvidError::NotSvid(_) => "not_svid",
        _ => "invalid_certificate",
    }
}

/// What went wrong, for the log and the event: the SVID verifier's own message when it
/// refused the certificate (rustls would print its debug form).
fn refusal_detail(e: &std::io::Error) -> String {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(tenet_identity::svid_error_of)
        .map_or_else(
            || e.to_string(),
            |svid| format!("invalid peer certificate: {svid}"),
        )
}

async fn refuse_handshake(
    listener: &ListenerState,
    shared: &Shared,
    peer: SocketAddr,
    kind: &'static str,
    error: std::io::Error,
) {
    metrics::counter!("tenet_gateway_handshakes_refused_total", "reason" => kind).increment(1);
    let detail = refusal_detail(&error);
    if kind == "client_closed" {
        // Port scanners and health checks that close at once are not authentication attempts.
        info!(listener = %listener.name, %peer, reason = kind, error = %detail,
            "tls handshake refused");
        return;
    }
    let refusal = RejectionEvent {
        request_id: None,
        listener: listener.name.clone(),
        source_ip: peer.ip(),
        source_port: peer.port(),
        stage: "tls".into(),
        kind: kind.into(),
        detail: detail.clone(),
        principal: None,
        status: None,
    };
    let recorded = refusals::record(shared, refusal).await;
    log_refusal!(recorded, listener = %listener.name, %peer, reason = kind, error = %detail,
        "tls handshake refused");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;

    use super::*;

    /// Bytes written, with the unsent-bytes limit, to a client that reads nothing before a
    /// write stays blocked for a second.
    async fn written_to_a_client_that_reads_nothing() -> usize {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        let client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        limit_unsent(&server);
        let piece = vec![b'x'; 16 * 1024];
        let mut written = 0;
        while let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_secs(1), server.write_all(&piece)).await
        {
            written += piece.len();
            assert!(written < 1 << 30, "the client's buffers never filled");
        }
        drop(client);
        written
    }

    #[tokio::test]
    async fn the_kernel_holds_little_unsent_for_a_client_that_reads_nothing() {
        // What the client's receive buffer takes (the kernel doubles the 64 KiB asked for,
        // and the window may open a little more) and the limit, with room for one piece.
        // Without the limit the kernel's autotuned send buffer took about 3.9 MB.
        let bound = 4 * 64 * 1024 + UNSENT_LIMIT as usize + 16 * 1024;
        let written = written_to_a_client_that_reads_nothing().await;
        assert!(written <= bound, "{written} bytes taken, more than {bound}");
    }

    /// What the served answer is.
    #[derive(Clone, Copy)]
    enum Answer {
        /// 1 MiB at once.
        Large,
        /// 10 bytes after its upstream was silent for three send timeouts.
        Late,
        /// 1 KiB at once.
        Small,
    }

    /// An HTTP/2 connection driven by `drive_http2`, serving `answer` to a client that opens
    /// `window` bytes of flow-control window and no more (`drip` `None`), or takes 16 KiB
    /// every `drip`. The bytes the client got, and whether and when the driver ended.
    async fn serve_h2(
        answer: Answer,
        window: u32,
        drip: Option<Duration>,
    ) -> (usize, Option<Duration>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let activity = Activity::default();
        let requests = activity.clone();
        let service = service_fn(move |_: http::Request<hyper::body::Incoming>| {
            let in_flight = activity.begin();
            async move {
                let body = match answer {
                    Answer::Large => crate::response::full(vec![b'x'; 1 << 20]),
                    Answer::Small => crate::response::full(vec![b'x'; 1024]),
                    Answer::Late => {
                        Late(Some(Box::pin(tokio::time::sleep(SEND_TIMEOUT * 3)))).boxed()
                    }
                };
                Ok::<_, Infallible>(http::Response::new(TrackedBody::http2(body, in_flight)))
            }
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(server), service);
        let (_stop, mut stopped) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let driver = tokio::spawn(async move {
            let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
            let _ = drive_http2(Box::pin(connection), &mut stopped, &requests, peer).await;
            start.elapsed()
        });

        let (mut sender, connection) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, Bytes>(client)
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get("https://h/").body(()).unwrap();
        let (answer, _) = sender.send_request(request, true).unwrap();
        let mut body = answer.await.unwrap().into_body();
        let mut got = 0;
        if let Some(drip) = drip {
            while let Some(Ok(data)) = body.data().await {
                got += data.len();
                tokio::time::sleep(drip).await;
                let _ = body.flow_control().release_capacity(data.len());
            }
        }
        let ended = tokio::time::timeout(SEND_TIMEOUT * 5, driver).await;
        (got, ended.ok().map(Result::unwrap))
    }

    /// How hyper's HTTP/2 server ends a connection whose client sends `frames` after its
    /// preface and an empty SETTINGS frame, then waits (or closes, `close`).
    async fn http2_ending(frames: &[u8], close: bool) -> Option<&'static str> {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let service = service_fn(|_: http::Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(http::Response::new(crate::response::full("ok")))
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(server), service);
        let mut sent = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
        sent.extend_from_slice(frames);
        client.write_all(&sent).await.unwrap();
        if close {
            drop(client);
            let ended = connection.await;
            return ended.err().and_then(|e| http2_violation(&e));
        }
        let ended = tokio::time::timeout(Duration::from_secs(5), connection)
            .await
            .expect("the connection ends");
        // Keeps the client open until the server has ended.
        drop(client);
        http2_violation(&ended.expect_err("a connection error"))
    }

    #[test]
    fn a_client_that_resets_its_connection_went_away() {
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] std::io::Error);
        let reset = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(client_went_away(&reset));
        let timed_out = Wrapped(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!client_went_away(&timed_out));
        assert!(!client_went_away(&NotIo));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("not an io error")]
    struct NotIo;

    #[tokio::test]
    async fn http2_connection_errors_the_client_caused_are_labelled() {
        // DATA on stream 0.
        let data_on_zero = b"\0\0\x01\0\0\0\0\0\0x";
        assert_eq!(
            http2_ending(data_on_zero, false).await,
            Some("http2_protocol_error")
        );
        // The connection window raised past 2^31 - 1.
        let update = b"\0\0\x04\x08\0\0\0\0\0\x7f\xff\xff\xff";
        assert_eq!(
            http2_ending(&[update.as_slice(), update].concat(), false).await,
            Some("http2_flow_control_error")
        );
        // A frame larger than the 16 KiB the server allows.
        let mut large = vec![0, 0x40, 0x01, 0, 0, 0, 0, 0, 0];
        large.resize(9 + 0x4001, 0);
        assert_eq!(
            http2_ending(&large, false).await,
            Some("http2_frame_size_error")
        );
        // Streams opened and reset at once, faster than they are accepted (rapid reset).
        let mut resets = Vec::new();
        for stream in (1u32..400).step_by(2) {
            let id = stream.to_be_bytes();
            resets.extend_from_slice(&[0, 0, 6, 1, 5]);
            resets.extend_from_slice(&id);
            resets.extend_from_slice(&[0x82, 0x87, 0x84, 0x01, 0x01, b'h']);
            resets.extend_from_slice(&[0, 0, 4, 3, 0]);
            resets.extend_from_slice(&id);
            resets.extend_from_slice(&[0, 0, 0, 8]);
        }
        assert_eq!(
            http2_ending(&resets, false).await,
            Some("http2_enhance_your_calm")
        );
        // A client that leaves is not a violation.
        assert_eq!(http2_ending(b"", true).await, None);
    }

    /// An HTTP/2 connection whose answers take `answer_after` (an upstream that slow), to a
    /// client that opens `streams` streams, 50 at a time, and resets each `reset_after` after
    /// opening it. Whether the connection was ended for a reset flood, how many streams were
    /// opened before it ended, and how many of them were handled. With `driven` false, hyper
    /// serves the connection without `drive_http2`, which would end it (as a client that
    /// ignores the GOAWAY would see it).
    async fn reset_streams(
        streams: usize,
        answer_after: Duration,
        reset_after: Duration,
        driven: bool,
    ) -> (Option<(u64, u64)>, usize, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (client, server) = tokio::io::duplex(1 << 20);
        let requests = Activity::default();
        let handled = Arc::new(AtomicUsize::new(0));
        let calls = handled.clone();
        let service = http2_service(requests.clone(), move |_| {
            calls.fetch_add(1, Ordering::AcqRel);
            async move {
                tokio::time::sleep(answer_after).await;
                Ok(http::Response::new(crate::response::full("ok")))
            }
        });
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(server), service);
        let (_stop, mut stopped) = watch::channel(false);
        let flood = requests.clone();
        let driver = tokio::spawn(async move {
            let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
            if driven {
                let _ = drive_http2(Box::pin(connection), &mut stopped, &requests, peer).await;
            } else {
                let _ = connection.await;
            }
        });
        let (sender, connection) = h2::client::handshake(client).await.unwrap();
        tokio::spawn(connection);
        let mut opened = 0;
        'open: while opened < streams {
            let mut batch = Vec::new();
            for _ in 0..50 {
                let Ok(mut sender) = sender.clone().ready().await else {
                    break 'open;
                };
                let request = http::Request::get("https://h/").body(()).unwrap();
                let Ok((answer, mut body)) = sender.send_request(request, false) else {
                    break 'open;
                };
                opened += 1;
                batch.push(tokio::spawn(async move {
                    tokio::time::sleep(reset_after).await;
                    body.send_reset(h2::Reason::CANCEL);
                    drop(answer);
                }));
            }
            for reset in batch {
                reset.await.unwrap();
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
        (
            flood.reset_flooded(),
            opened,
            handled.load(Ordering::Acquire),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_resets_most_streams_once_accepted_is_cut_off() {
        // Reset 10 ms after opening, once hyper has accepted them (h2's own limit counts only
        // streams reset before that), while the upstream takes 50 ms to answer.
        let (flooded, opened, handled) = reset_streams(
            2_000,
            Duration::from_millis(50),
            Duration::from_millis(10),
            true,
        )
        .await;
        let (premature, started) = flooded.expect("ended for a reset flood");
        assert!(
            premature >= PREMATURE_RESET_LIMIT && premature * 2 > started,
            "{premature} of {started}"
        );
        assert!(
            opened < 2_000,
            "the connection ended early: {opened} streams opened"
        );
        // Streams opened after the limit was passed got no work done: the batch in which it
        // was passed, at most.
        assert!(
            handled < PREMATURE_RESET_LIMIT as usize + 50 && handled < opened,
            "{handled} of {opened} streams handled"
        );

        // A client that goes on opening streams before the connection ends gets them refused
        // without any work done.
        let (_, opened, handled) = reset_streams(
            2_000,
            Duration::from_millis(50),
            Duration::from_millis(10),
            false,
        )
        .await;
        assert_eq!(opened, 2_000);
        assert!(
            handled < PREMATURE_RESET_LIMIT as usize + 50,
            "{handled} of {opened} streams handled"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streams_reset_after_their_answer_started_or_late_are_no_flood() {
        // Answered before the reset (a client leaving an answer it no longer wants).
        let (flooded, opened, handled) = reset_streams(
            1_000,
            Duration::from_millis(5),
            Duration::from_millis(10),
            true,
        )
        .await;
        assert_eq!((flooded, opened, handled), (None, 1_000, 1_000));
        // Reset after waiting more than a second for the answer (a deadline).
        let (flooded, opened, handled) =
            reset_streams(1_000, Duration::from_secs(5), Duration::from_secs(2), true).await;
        assert_eq!((flooded, opened, handled), (None, 1_000, 1_000));
    }

    /// A body of 10 bytes that come when its timer fires (an upstream silent until then).
    struct Late(Option<Pin<Box<tokio::time::Sleep>>>);

    impl hyper::body::Body for Late {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
            let Some(timer) = self.0.as_mut() else {
                return Poll::Ready(None);
            };
            std::task::ready!(timer.as_mut().poll(cx));
            self.0 = None;
            let data = hyper::body::Frame::data(Bytes::from_static(b"0123456789"));
            Poll::Ready(Some(Ok(data)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_client_that_opens_no_window_is_cut_off_after_the_send_timeout() {
        let (got, ended) = serve_h2(Answer::Large, 0, None).await;
        assert_eq!(got, 0);
        let ended = ended.expect("the connection is dropped");
        // Checked once every send timeout: cut off at the second check at the latest.
        assert!(
            ended >= SEND_TIMEOUT && ended <= SEND_TIMEOUT * 2,
            "{ended:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_client_that_leaves_its_last_answer_in_the_buffers_is_cut_off() {
        // One byte of window: hyper takes the whole 1 KiB answer, sends a byte and keeps the
        // rest; the connection is idle, then shut down, then dropped.
        let (got, ended) = serve_h2(Answer::Small, 1, None).await;
        assert_eq!(got, 0);
        let ended = ended.expect("the connection is dropped");
        // The first idle window (10 s), a second one (60 s) without a new stream, then the
        // send timeout: the send checks between them do not delay the idle checks.
        assert_eq!(ended, FIRST_REQUEST_TIMEOUT + IDLE_TIMEOUT + SEND_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_client_that_takes_its_answer_slowly_gets_all_of_it() {
        // 16 KiB every 5 s: the whole answer takes more than five minutes.
        let (got, _) = serve_h2(Answer::Large, 16 * 1024, Some(Duration::from_secs(5))).await;
        assert_eq!(got, 1 << 20);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_waiting_for_its_upstream_is_not_the_clients_stall() {
        let (got, _) = serve_h2(Answer::Late, 16 * 1024, Some(Duration::ZERO)).await;
        assert_eq!(got, 10);
    }
}
