//! Forwarded request bodies under an idle limit: a client that announces a body and then stops
//! sending it (slowloris on the body) cannot hold a gateway connection and an upstream request
//! open for ever.
//!
//! The limit is a gap: how long the body may go without a frame while the upstream side is
//! waiting for one. Time the upstream side spends not asking (an upstream that reads slowly)
//! does not count, so only a client that is late is cut off.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info};

use crate::response::BoxError;

/// How long a forwarded request's body may go without a byte while the upstream waits for it,
/// unless the deployment says otherwise.
pub const DEFAULT_REQUEST_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a forwarded request body ended in an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The client sent nothing for the idle limit while the upstream waited.
    #[error("client sent no request body bytes for {0:?}")]
    Stalled(Duration),
    /// The body was cut off for another reason (see [`BodyWatch::cut_off`]).
    #[error("request body cut off: the client did not send it in time")]
    CutOff,
    /// The client's own stream failed (reset, closed, malformed chunk).
    #[error("request body: {0}")]
    Client(#[source] BoxError),
    /// The request went out again, and this earlier send of it no longer carries its body.
    #[error("request body taken by a later send of the same request")]
    Replaced,
}

/// What the forwarding side learns about a body it hands to the upstream client, which polls
/// the body on its own connection task.
pub(crate) struct BodyWatch {
    request_id: String,
    /// The body's last poll found no frame: the upstream side waits for the client.
    waiting: AtomicBool,
    /// The body was cut off; set once.
    cut: AtomicBool,
    /// The upstream answered with its head.
    answered: AtomicBool,
    /// The upstream side took the body's last frame.
    sent: AtomicBool,
    /// How many frames the upstream side has taken.
    frames: AtomicU64,
    notify: Notify,
}

impl BodyWatch {
    fn new(request_id: String) -> Self {
        Self {
            request_id,
            waiting: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            sent: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            notify: Notify::new(),
        }
    }

    /// Cut the body off: from now on it yields an error, which cancels the upstream request.
    /// Counted once, whoever cuts first.
    pub(crate) fn cut_off(&self) {
        if self.cut.swap(true, Ordering::AcqRel) {
            return;
        }
        metrics::counter!("tenet_gateway_connections_timed_out_total", "reason" => "request_body")
            .increment(1);
        if self.answered.load(Ordering::Acquire) {
            // The answer is already streaming to the client, which cannot be told 408: the
            // upstream request is cancelled and the client's connection ends.
            info!(request_id = %self.request_id, "request body stalled after the upstream \
                answered; request cancelled");
        }
        // A stored permit: the forwarding side may not be waiting yet.
        self.notify.notify_one();
    }

    /// Whether the body was cut off.
    pub(crate) fn is_cut_off(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Whether the upstream side is waiting for the client's next body bytes.
    pub(crate) fn is_waiting_for_client(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// The upstream answered with its head.
    pub(crate) fn answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    /// Whether the upstream side took the body's last frame (an HTTP/1.1 connection still
    /// sending a body cannot carry another request).
    pub(crate) fn is_sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }

    /// Mark the body as taken whole by the upstream side, or (a request sent again) not.
    pub(crate) fn set_sent(&self, sent: bool) {
        self.sent.store(sent, Ordering::Release);
    }

    /// How many frames of the body the upstream side has taken so far.
    pub(crate) fn frames_taken(&self) -> u64 {
        self.frames.load(Ordering::Acquire)
    }

    /// Resolves once the body is cut off.
    pub(crate) async fn cut(&self) {
        self.notify.notified().await;
    }
}

/// A timer that runs only while a body waits for its next frame: started (for its limit) by
/// the first poll that finds none, stopped by the next frame. The sleep is allocated once and
/// reset for each wait.
#[derive(Default)]
pub(crate) struct WaitTimer {
    timer: Option<Pin<Box<Sleep>>>,
    running: bool,
}

impl WaitTimer {
    /// A frame came: the wait is over.
    pub(crate) fn stop(&mut self) {
        self.running = false;
    }

    /// Whether a wait is being timed.
    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    /// Start timing a wait of at most `limit` unless one is timed already; whether it has
    /// lasted `limit` (otherwise `cx` is woken when it has).
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, limit: Duration) -> bool {
        if !self.running {
            let deadline = Instant::now() + limit;
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.running = true;
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }
}

/// How long a request body the upstream side dropped unread may still be read and discarded
/// for the client's sake (nginx's `lingering_time`).
pub(crate) const LINGER_LIMIT: Duration = Duration::from_secs(30);

/// A body a client sends: what [`ForwardedBody`] wraps (hyper's, or a test's).
pub(crate) trait ClientBody:
    HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> ClientBody for B where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

/// A request body on its way to the upstream, cut off when the client leaves a gap longer than
/// the idle limit. gRPC streams may idle once the upstream has answered (a bidirectional
/// stream waits for the server's messages); before that they are held to the limit too.
///
/// A lingering body (an HTTP/1.x client's) dropped before its end, by an upstream that
/// answered without reading all of it or by a request that failed, is read to its end and
/// discarded by a task of its own, under the same idle limit and for at most
/// [`LINGER_LIMIT`]. The client, still sending, can then read the answer and keep its
/// connection: closed while the client sends, the connection would be reset, and the client
/// could lose the answer with it.
pub(crate) struct ForwardedBody<B: ClientBody = Incoming> {
    /// `None` once handed to the lingering task.
    inner: Option<B>,
    idle: Duration,
    streaming: bool,
    /// Runs while the upstream side waits for the next frame.
    wait: WaitTimer,
    watch: Arc<BodyWatch>,
    /// Read the rest when dropped before the end, until the gateway stops (this turns true).
    linger: Option<tokio::sync::watch::Receiver<bool>>,
    /// The client waits for `100 Continue` before it sends the body (`Expect: 100-continue`).
    awaits_continue: bool,
    /// The body was asked for a frame (hyper sends `100 Continue` then).
    polled: bool,
    /// The body ended or failed: nothing is left to read.
    finished: bool,
}

impl<B: ClientBody> ForwardedBody<B> {
    /// `streaming`: a gRPC request, whose stream may idle after the upstream answered.
    pub(crate) fn new(inner: B, idle: Duration, streaming: bool, request_id: String) -> Self {
        Self {
            inner: Some(inner),
            idle,
            streaming,
            wait: WaitTimer::default(),
            watch: Arc::new(BodyWatch::new(request_id)),
            linger: None,
            awaits_continue: false,
            polled: false,
            finished: false,
        }
    }

    /// This body is read to its end even if dropped before (see [`ForwardedBody`]), or until
    /// `stopped` turns true (the gateway stops), unless its client awaits `100 Continue`
    /// (`awaits_continue`) and the body was never asked for: hyper then sent no `100
    /// Continue`, and the client may send its next request instead of the body, which must
    /// not be read as this body.
    pub(crate) fn lingering(
        mut self,
        awaits_continue: bool,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        self.linger = Some(stopped);
        self.awaits_continue = awaits_continue;
        self
    }

    pub(crate) fn watch(&self) -> Arc<BodyWatch> {
        self.watch.clone()
    }

    /// What the forwarding side learns about this body.
    pub(crate) fn watch_ref(&self) -> &BodyWatch {
        &self.watch
    }

    /// The idle limit of this body.
    pub(crate) fn idle(&self) -> Duration {
        self.idle
    }

    /// Whether this is a gRPC request's stream.
    pub(crate) fn is_streaming(&self) -> bool {
        self.streaming
    }

    fn rest(&mut self) {
        self.wait.stop();
        self.watch.waiting.store(false, Ordering::Release);
    }
}

impl<B: ClientBody> Drop for ForwardedBody<B> {
    fn drop(&mut self) {
        if self.finished || self.watch.is_cut_off() || (self.awaits_continue && !self.polled) {
            return;
        }
        let Some(stopped) = self.linger.take() else {
            return;
        };
        let Some(inner) = self.inner.take() else {
            return;
        };
        if inner.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let rest = Self {
            inner: Some(inner),
            idle: self.idle,
            streaming: false,
            wait: WaitTimer::default(),
            watch: self.watch.clone(),
            linger: None,
            awaits_continue: false,
            polled: true,
            finished: false,
        };
        runtime.spawn(discard(rest, stopped));
    }
}

/// Read `rest` to its end, an error, its idle limit, [`LINGER_LIMIT`] or the gateway's stop
/// (`stopped`), whichever comes first, and throw it away.
async fn discard<B: ClientBody>(
    mut rest: ForwardedBody<B>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    use http_body_util::BodyExt;
    let limit = tokio::time::sleep(LINGER_LIMIT);
    tokio::pin!(limit);
    let mut discarded = 0u64;
    loop {
        if *stopped.borrow_and_update() {
            return;
        }
        tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            frame = rest.frame() => match frame {
                Some(Ok(frame)) => {
                    discarded += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                Some(Err(e)) => {
                    debug!(request_id = %rest.watch.request_id, discarded, error = %e,
                        "unread request body: discarding stopped");
                    return;
                }
                None => {
                    debug!(request_id = %rest.watch.request_id, discarded,
                        "unread request body discarded to its end");
                    return;
                }
            },
            () = &mut limit => {
                debug!(request_id = %rest.watch.request_id, discarded, limit = ?LINGER_LIMIT,
                    "unread request body: discarding stopped at the time limit");
                return;
            }
        }
    }
}

impl<B: ClientBody> HttpBody for ForwardedBody<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        this.polled = true;
        if this.watch.is_cut_off() {
            this.finished = true;
            return Poll::Ready(Some(Err(BodyError::CutOff)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // What the client already sent is taken first: a gap the upstream side caused by not
        // asking is never the client's.
        if let Poll::Ready(frame) = Pin::new(&mut *inner).poll_frame(cx) {
            let ended = frame.is_none() || inner.is_end_stream();
            this.rest();
            if ended {
                this.watch.sent.store(true, Ordering::Release);
            }
            this.finished = ended || matches!(frame, Some(Err(_)));
            if matches!(frame, Some(Ok(_))) {
                this.watch.frames.fetch_add(1, Ordering::AcqRel);
            }
            return Poll::Ready(frame.map(|f| f.map_err(|e| BodyError::Client(e.into()))));
        }
        if this.streaming && this.watch.answered.load(Ordering::Acquire) {
            this.rest();
            return Poll::Pending;
        }

        if !this.wait.is_running() {
            this.watch.waiting.store(true, Ordering::Release);
        }
        let expired = this.wait.poll_expired(cx, this.idle);
        if !expired {
            return Poll::Pending;
        }
        this.watch.cut_off();
        this.finished = true;
        Poll::Ready(Some(Err(BodyError::Stalled(this.idle))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed by the test, one chunk at a time.
    struct Fed(mpsc::Receiver<&'static str>);

    impl HttpBody for Fed {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes())))))
        }
    }

    const IDLE: Duration = Duration::from_millis(200);

    fn body(streaming: bool) -> (mpsc::Sender<&'static str>, ForwardedBody<Fed>) {
        let (tx, rx) = mpsc::channel(8);
        (
            tx,
            ForwardedBody::new(Fed(rx), IDLE, streaming, "r1".into()),
        )
    }

    async fn next(body: &mut ForwardedBody<Fed>) -> Option<Result<Bytes, BodyError>> {
        body.frame()
            .await
            .map(|f| f.map(|f| f.into_data().unwrap_or_default()))
    }

    #[tokio::test]
    async fn gaps_shorter_than_the_limit_pass() {
        let (tx, mut body) = body(false);
        let feeder = tokio::spawn(async move {
            for chunk in ["a", "b", "c"] {
                tokio::time::sleep(IDLE / 2).await;
                tx.send(chunk).await.unwrap();
            }
        });
        let mut got = String::new();
        while let Some(chunk) = next(&mut body).await {
            got.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        feeder.await.unwrap();
        assert_eq!(got, "abc");
        assert!(!body.watch().is_cut_off());
    }

    #[tokio::test]
    async fn a_gap_longer_than_the_limit_cuts_the_body_off() {
        let (tx, mut body) = body(false);
        let watch = body.watch();
        tx.send("a").await.unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "a");
        assert!(!watch.is_waiting_for_client());

        let started = Instant::now();
        let cut = tokio::spawn({
            let watch = watch.clone();
            async move { watch.cut().await }
        });
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Stalled(d) if d == IDLE), "{err}");
        assert!(started.elapsed() >= IDLE);
        assert!(watch.is_cut_off());
        tokio::time::timeout(IDLE, cut).await.unwrap().unwrap();

        // Bytes arriving late do not revive it: the upstream request is already cancelled.
        tx.send("b").await.unwrap();
        assert!(matches!(
            next(&mut body).await,
            Some(Err(BodyError::CutOff))
        ));
    }

    #[tokio::test]
    async fn time_the_upstream_side_does_not_ask_is_not_the_clients() {
        let (tx, mut body) = body(false);
        // Armed, then left unpolled (an upstream reading slowly) past the limit while the
        // client's bytes wait.
        let pending = futures_poll_once(&mut body).await;
        assert!(pending);
        assert!(body.watch().is_waiting_for_client());
        tx.send("a").await.unwrap();
        tokio::time::sleep(IDLE * 2).await;
        assert_eq!(next(&mut body).await.unwrap().unwrap(), "a");
        assert!(!body.watch().is_cut_off());
    }

    #[tokio::test]
    async fn a_grpc_stream_may_idle_once_answered_but_not_before() {
        let (_tx, mut before) = body(true);
        assert!(matches!(
            next(&mut before).await,
            Some(Err(BodyError::Stalled(_)))
        ));

        let (tx, mut after) = body(true);
        after.watch().answered();
        let waited = tokio::time::timeout(IDLE * 3, next(&mut after)).await;
        assert!(waited.is_err(), "an answered gRPC stream was cut off");
        tx.send("late").await.unwrap();
        assert_eq!(next(&mut after).await.unwrap().unwrap(), "late");
    }

    #[tokio::test]
    async fn a_cut_off_by_the_forwarding_side_ends_the_body() {
        let (_tx, mut body) = body(false);
        let watch = body.watch();
        watch.cut_off();
        watch.cut_off();
        tokio::time::timeout(IDLE, watch.cut()).await.unwrap();
        assert!(matches!(
            next(&mut body).await,
            Some(Err(BodyError::CutOff))
        ));
    }

    /// Poll the body once; true when it was pending.
    async fn futures_poll_once(body: &mut ForwardedBody<Fed>) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx).is_pending()))
            .await
    }

    /// An HTTP/1.1 server whose handler takes the first frame of a request's body (wrapped
    /// as the gateway wraps it, lingering or not), drops the body and answers `early`.
    async fn answering_early(linger: bool) -> std::net::SocketAddr {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // The gateway's stop signal, never sent.
            let (_running, stopped) = tokio::sync::watch::channel(false);
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |request: http::Request<Incoming>| {
                let stopped = stopped.clone();
                async move {
                    let body = request.into_body();
                    let mut body =
                        ForwardedBody::new(body, Duration::from_secs(5), false, "r".into());
                    if linger {
                        body = body.lingering(false, stopped);
                    }
                    let _ = body.frame().await;
                    drop(body);
                    Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                        Bytes::from_static(b"early"),
                    )))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        addr
    }

    /// Send an upload of 64 KiB in two halves, the second after the answer to the first has
    /// come, then a GET on the same connection; what came back after the upload's answer.
    async fn upload_then_get(addr: std::net::SocketAddr) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let half = vec![b'x'; 32 * 1024];
        let head = "POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: 65536\r\n\r\n";
        client.write_all(head.as_bytes()).await.unwrap();
        client.write_all(&half).await.unwrap();
        let mut answer = vec![0u8; 1024];
        let n = client.read(&mut answer).await.unwrap();
        assert!(
            answer[..n].ends_with(b"early"),
            "{:?}",
            String::from_utf8_lossy(&answer[..n])
        );
        // The client is still sending: what a closed connection would reset.
        let sent = async {
            client.write_all(&half).await?;
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .await?;
            let mut rest = Vec::new();
            let mut buf = [0u8; 1024];
            while !rest.ends_with(b"early") {
                let n = client.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(rest)
        };
        match tokio::time::timeout(Duration::from_secs(5), sent)
            .await
            .unwrap()
        {
            Ok(rest) => String::from_utf8_lossy(&rest).into_owned(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[tokio::test]
    async fn a_lingering_body_dropped_early_is_read_to_its_end_and_the_connection_kept() {
        let addr = answering_early(true).await;
        let after = upload_then_get(addr).await;
        assert!(
            after.starts_with("HTTP/1.1 200") && after.ends_with("early"),
            "{after}"
        );
    }

    #[tokio::test]
    async fn a_body_that_does_not_linger_closes_its_connection_when_dropped_early() {
        let addr = answering_early(false).await;
        let after = upload_then_get(addr).await;
        assert!(!after.contains("HTTP/1.1 200"), "{after}");
    }
}
