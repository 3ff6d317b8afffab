//! HTTP/1.x request framing guard: every request head is validated, and every message end
//! found, before hyper reads a byte, so hyper and the policy cannot disagree on where a
//! request ends (field case F005, request smuggling).
//!
//! hyper accepts some ambiguous framing silently (it drops `Content-Length` when
//! `Transfer-Encoding` is present, before the service sees the request), so the check has to
//! sit below hyper, on the byte stream of an HTTP/1.x connection:
//!
//! - A head is handed to hyper only once it is complete (CRLF CRLF, at most 64 KiB) and valid:
//!   CRLF line endings only (a bare LF or CR is refused, although httparse accepts a bare LF),
//!   no obs-fold, no whitespace before a colon, no control character in a value, at most one
//!   `Content-Length` (1*DIGIT) or one `Transfer-Encoding` (exactly `chunked`) and never both,
//!   no `Transfer-Encoding` in HTTP/1.0.
//! - The body is then passed through while its end is tracked by the framing hyper applies:
//!   `Content-Length`, chunked (size lines, extensions, data, CRLF, last chunk, trailers), or
//!   none. The next head is buffered and validated in turn (keep-alive and pipelining).
//! - A refused head is replaced by [`SYNTHETIC_REQUEST`] and the typed [`Rejection`] is left
//!   in the [`FramingVerdict`]; nothing of the bad message or of later bytes reaches hyper.
//!   The service answers 400 and hyper closes the connection (the synthetic request says
//!   `Connection: close`). After the synthetic request, reads stay pending rather than
//!   reporting end of file: hyper 1.x (without `half_close`) takes an end of file during a
//!   request for the client leaving and drops the response, so the 400 would never be sent.
//! - A malformed chunked body is found after hyper already has the head, so no synthetic
//!   request can stand in for it: the rejection is recorded and the read fails with
//!   [`io::ErrorKind::InvalidData`] (the rejection is the error's source), which fails the
//!   request's body and the connection.
//!
//! Writes pass straight through; the guard only notes whether they have been flushed, for
//! parking idle connections (the `keepalive` module). Upgrades (101, CONNECT) are not
//! supported: bytes after an upgrade would be parsed as requests. A client that speaks HTTP/2 with prior knowledge and
//! no ALPN gets the synthetic request (its preface is not an HTTP/1.x head).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderValue, header};
use tenet_request::Rejection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::keepalive::Activity;

/// What hyper reads in place of a refused head.
pub(crate) const SYNTHETIC_REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: rejected.invalid\r\nConnection: close\r\n\r\n";
/// Largest request head, leading empty lines and the final CRLF included.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most field lines in a head or a trailer section (hyper's default limit).
const MAX_FIELDS: usize = 100;
/// Longest chunk-size line, extensions included, CRLF excluded.
const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;
/// Largest trailer section, its final CRLF included.
const MAX_TRAILER_BYTES: usize = 64 * 1024;
/// How much is read from the connection at a time into the guard's buffer.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// Reads of the inner stream within one `poll_read` before yielding to the runtime.
const MAX_READS_PER_POLL: usize = 32;
/// Longest piece of client input quoted in a rejection, in characters.
const MAX_QUOTED_CHARS: usize = 128;

/// The rejection the guard found (a refused head or a malformed chunked body), shared
/// between the guard and the HTTP service.
#[derive(Clone, Default)]
pub(crate) struct FramingVerdict(Arc<Mutex<Verdict>>);

#[derive(Default)]
struct Verdict {
    /// How many times `take` was called: the index of the next request to ask.
    asked: u64,
    /// The rejection and the index (0-based, in connection order) of the request it is for.
    pending: Option<(u64, Rejection)>,
    /// A started request head did not complete in time and the stream was failed.
    head_timed_out: bool,
    /// A write stayed blocked for the send timeout: the client stopped taking its answer.
    send_timed_out: bool,
}

impl FramingVerdict {
    /// The rejection for the request being served, if the guard refused its head.
    ///
    /// Call it exactly once per request, first thing: HTTP/1 serves requests one at a
    /// time, in order, so the n-th call belongs to the n-th request. hyper reads ahead while
    /// a request is served (to notice a closed connection), so the guard may refuse the next
    /// head before the current request asks; the rejection is therefore kept for the index
    /// of the synthetic request and an earlier request never receives it. A rejection whose
    /// request never asked is handed to the next caller, and a body failure is handed to
    /// any later call for the same request: failing closed beats losing it.
    pub(crate) fn take(&self) -> Option<Rejection> {
        let mut verdict = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let request = verdict.asked;
        verdict.asked = verdict.asked.saturating_add(1);
        match &verdict.pending {
            Some((due, _)) if *due <= request => verdict.pending.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// Whether the stream was failed because a request head did not complete in time
    /// (hyper saw none of that head, so it may report nothing itself).
    pub(crate) fn head_timed_out(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .head_timed_out
    }

    /// Whether the connection ended because the client took nothing written to it for the
    /// send timeout.
    pub(crate) fn send_timed_out(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send_timed_out
    }

    /// Keep the first rejection for request `request`; later ones cannot happen (the guard
    /// stops at the first) and would not replace it.
    fn record(&self, request: u64, rejection: Rejection) {
        let mut verdict = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if verdict.pending.is_none() {
            verdict.pending = Some((request, rejection));
        }
    }
}

/// An HTTP/1.x server-side stream that hands hyper only validated request bytes.
pub(crate) struct FramingGuard<IO> {
    io: IO,
    verdict: FramingVerdict,
    /// Bytes read from `io` and not yet handed to the reader.
    buffer: BytesMut,
    /// `buffer[..released]` is validated and may be handed to the reader.
    released: usize,
    phase: Phase,
    /// Request heads handed to the reader so far, the synthetic one included.
    heads: u64,
    /// The inner stream reported end of file.
    io_eof: bool,
    /// How long a started request head may take to complete; `None` for no limit.
    head_timeout: Option<Duration>,
    /// When the head being received must be complete.
    head_deadline: Option<Pin<Box<Sleep>>>,
    /// How long a write may stay blocked (the client taking nothing); `None` for no limit.
    send_timeout: Option<Duration>,
    /// When the blocked write must have progressed; armed when a write or flush is pending,
    /// cleared when one completes.
    send_deadline: Option<Pin<Box<Sleep>>>,
    /// Set when idle connections park (see the `keepalive` module): the responses still
    /// being answered.
    activity: Option<Activity>,
    /// A write was attempted since the last completed flush (hyper flushes only once its own
    /// buffer is empty).
    unflushed: bool,
    /// The previous read found the connection idle (parking waits for a second look).
    idle_seen: bool,
    /// How long a connection stays idle, its hyper connection kept, before it parks; zero
    /// parks at the second idle look.
    linger: Duration,
    /// When an idle connection may park, armed at its first idle look and kept across
    /// requests: it fires at most once per `linger`, not once per request.
    linger_timer: Option<Pin<Box<Sleep>>>,
    /// [`Self::heads`] when `linger_timer` was last set: other heads since mean the
    /// connection was not idle all along.
    linger_heads: u64,
    /// Wake the reader when the next flush completes (it wanted to park behind it).
    wake_on_flush: bool,
    /// The last read ended with end of file because the connection is idle, not because the
    /// client closed it.
    parked: bool,
}

/// Where the bytes after `released` are in the request stream.
enum Phase {
    /// A request head, not yet complete.
    Head(LineScan),
    /// A `Content-Length` body with this many bytes left.
    Body(u64),
    /// A chunked body.
    Chunked(Chunked),
    /// A head was refused: the synthetic request is handed out, then reads stay pending.
    Refused,
    /// A chunked body was malformed: every read fails.
    Broken(Rejection),
}

/// Where a chunked body is.
enum Chunked {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    SizeLine,
    /// Chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers(LineScan),
}

/// What one validation step over the unreleased bytes found.
enum Step {
    /// Bytes that can be handed out (a body piece, a chunk line, trailers).
    Release(usize),
    /// A complete, valid request head of this length.
    ReleaseHead(usize),
    /// More bytes are needed.
    Wait,
    /// The head is refused.
    RefuseHead(Rejection),
    /// The body is malformed.
    Break(Rejection),
    /// Nothing more will ever be handed out.
    Stopped,
}

/// Why `validate` stopped.
enum Outcome {
    /// The unreleased bytes are an incomplete head, chunk line or trailer section (or none).
    NeedMore,
    /// Nothing more will be handed out (after the synthetic request).
    Parked,
    /// The chunked body is malformed.
    Failed(Rejection),
}

impl<IO> FramingGuard<IO> {
    pub(crate) fn new(io: IO, verdict: FramingVerdict) -> Self {
        Self {
            io,
            verdict,
            buffer: BytesMut::new(),
            released: 0,
            phase: Phase::Head(LineScan::head()),
            heads: 0,
            io_eof: false,
            head_timeout: None,
            head_deadline: None,
            send_timeout: None,
            send_deadline: None,
            activity: None,
            unflushed: false,
            idle_seen: false,
            linger: Duration::ZERO,
            linger_timer: None,
            linger_heads: 0,
            wake_on_flush: false,
            parked: false,
        }
    }

    /// End a read with end of file, instead of waiting, when the connection is idle between
    /// requests: nothing buffered here, no byte waiting on `io`, every response of
    /// `activity` handed to hyper, and every write flushed. [`Self::take_parked`] tells such
    /// an end of file from the client's.
    pub(crate) fn parking(mut self, activity: Activity) -> Self {
        self.activity = Some(activity);
        self
    }

    /// Park only a connection that stayed idle for at least `linger` (and at most twice
    /// that), so that a busy keep-alive connection keeps its hyper connection from one
    /// request to the next instead of building a new one for each.
    pub(crate) fn lingering(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Whether the last read ended because the connection is idle (and clear the mark).
    pub(crate) fn take_parked(&mut self) -> bool {
        std::mem::take(&mut self.parked)
    }

    /// The stream under the guard.
    pub(crate) fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Put back bytes the reader took and did not use (hyper's read buffer when it handed
    /// the stream back); they were validated already.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut buffer = BytesMut::with_capacity(bytes.len().saturating_add(self.buffer.len()));
        buffer.extend_from_slice(bytes);
        buffer.extend_from_slice(&self.buffer);
        self.buffer = buffer;
        self.released = self.released.saturating_add(bytes.len());
    }

    /// Whether bytes are buffered here (validated or not).
    pub(crate) fn has_buffered(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// A read found nothing on `io`: wait, or end it with end of file when the connection is
    /// idle (see `parking` and the `keepalive` module).
    fn pending_or_park(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let idle = self.buffer.is_empty()
            && matches!(self.phase, Phase::Head(_))
            && self
                .activity
                .as_ref()
                .is_some_and(|a| a.is_idle(self.heads));
        if !idle {
            self.idle_seen = false;
            if let Some(activity) = &self.activity {
                activity.wake_when_answered(cx.waker());
            }
            return Poll::Pending;
        }
        if self.linger.is_zero() {
            if !self.idle_seen {
                // hyper may still hold the end of the last response in its own buffer: look
                // again on the next poll, after hyper's flush.
                self.idle_seen = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        } else if !self.lingered(cx) {
            // The socket wakes the reader for the next request; the timer, to park.
            return Poll::Pending;
        }
        if self.unflushed {
            self.wake_on_flush = true;
            return Poll::Pending;
        }
        self.idle_seen = false;
        self.linger_timer = None;
        self.parked = true;
        Poll::Ready(Ok(()))
    }

    /// Whether the idle connection has lingered long enough to park: the timer ran out with
    /// no request head since it was set. A timer that ran out over requests is set again
    /// for one more `linger`.
    fn lingered(&mut self, cx: &mut Context<'_>) -> bool {
        let (heads, linger) = (self.heads, self.linger);
        let Some(timer) = self.linger_timer.as_mut() else {
            let mut timer = Box::pin(tokio::time::sleep(linger));
            // The first idle look never parks: hyper may still hold the end of the last
            // response in its own buffer.
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
            self.linger_timer = Some(timer);
            self.linger_heads = heads;
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if self.linger_heads == heads {
            return true;
        }
        timer.as_mut().reset(
            tokio::time::Instant::now()
                .checked_add(linger)
                .unwrap_or_else(tokio::time::Instant::now),
        );
        self.linger_heads = heads;
        timer.as_mut().poll(cx).is_ready()
    }

    /// Fail the stream when a request head, once its first byte has arrived, is not complete
    /// within `timeout` (slow-header clients). Bytes trickled into a head never reach hyper,
    /// so hyper's own header timeout cannot see them.
    pub(crate) fn with_head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = Some(timeout);
        self
    }

    /// Fail a write or flush that stays blocked for `timeout`: a client that stops reading
    /// would otherwise hold the connection, and the upstream connection its answer comes
    /// from, for ever. Each write that goes through starts the time again.
    pub(crate) fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = Some(timeout);
        self
    }

    /// Whether part of a request head is buffered and not yet complete.
    fn head_in_progress(&self) -> bool {
        matches!(self.phase, Phase::Head(_)) && self.buffer.len() > self.released
    }

    /// Validate as much of the buffered bytes as possible, moving `released` forward.
    fn validate(&mut self) -> Outcome {
        // Every pass either returns or releases at least one buffered byte, so the loop ends
        // within the buffer's length (bounded by the head, line and trailer limits).
        loop {
            let block = self.buffer.get(self.released..).unwrap_or_default();
            match step(&mut self.phase, block) {
                Step::Release(len) => self.released = self.released.saturating_add(len),
                Step::ReleaseHead(len) => {
                    self.released = self.released.saturating_add(len);
                    self.heads = self.heads.saturating_add(1);
                    self.head_deadline = None;
                }
                Step::RefuseHead(rejection) => self.refuse(rejection),
                Step::Break(rejection) => {
                    // The head of the current request (the last one released) is with hyper.
                    let request = self.heads.saturating_sub(1);
                    self.verdict.record(request, rejection.clone());
                    self.phase = Phase::Broken(rejection.clone());
                    return Outcome::Failed(rejection);
                }
                Step::Wait => return Outcome::NeedMore,
                Step::Stopped => {
                    return match &self.phase {
                        Phase::Broken(rejection) => Outcome::Failed(rejection.clone()),
                        _ => Outcome::Parked,
                    };
                }
            }
        }
    }

    /// Replace the refused head and everything after it with the synthetic request.
    fn refuse(&mut self, rejection: Rejection) {
        self.verdict.record(self.heads, rejection);
        self.buffer.truncate(self.released);
        self.buffer.extend_from_slice(SYNTHETIC_REQUEST);
        self.released = self.released.saturating_add(SYNTHETIC_REQUEST.len());
        self.heads = self.heads.saturating_add(1);
        self.phase = Phase::Refused;
    }

    /// Copy released bytes into the reader's buffer.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) {
        let len = self.released.min(buf.remaining());
        if let Some(bytes) = self.buffer.get(..len) {
            buf.put_slice(bytes);
            self.buffer.advance(len);
            self.released = self.released.saturating_sub(len);
        }
        if self.buffer.is_empty() {
            // Give the allocation back: most connections sit idle between requests.
            self.buffer = BytesMut::new();
        }
    }

    /// Body bytes that may be read from `io` straight into the reader's buffer: only when
    /// nothing is buffered and the current piece of body has a known length.
    fn direct_limit(&self) -> Option<u64> {
        if !self.buffer.is_empty() {
            return None;
        }
        match self.phase {
            Phase::Body(left) | Phase::Chunked(Chunked::Data(left)) if left > 0 => Some(left),
            _ => None,
        }
    }

    /// Count `len` body bytes read directly into the reader's buffer.
    fn consume_direct(&mut self, len: u64) {
        match &mut self.phase {
            Phase::Body(left) => {
                *left = left.saturating_sub(len);
                if *left == 0 {
                    self.phase = Phase::Head(LineScan::head());
                }
            }
            Phase::Chunked(Chunked::Data(left)) => {
                *left = left.saturating_sub(len);
                if *left == 0 {
                    self.phase = Phase::Chunked(Chunked::DataEnd);
                }
            }
            _ => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> FramingGuard<IO> {
    /// Read body bytes straight into the reader's buffer, at most `limit`.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        limit: u64,
    ) -> Poll<io::Result<()>> {
        let limit = usize::try_from(limit).map_or(buf.remaining(), |l| l.min(buf.remaining()));
        let mut direct = ReadBuf::new(buf.initialize_unfilled_to(limit));
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut direct))?;
        let got = direct.filled().len();
        if got == 0 {
            self.io_eof = true;
        }
        buf.advance(got);
        self.consume_direct(u64::try_from(got).unwrap_or(u64::MAX));
        Poll::Ready(Ok(()))
    }

    /// Read more bytes from `io` into the buffer. The read goes into a stack buffer and only
    /// what arrived is kept, so an idle connection holds no read buffer here.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK_BYTES];
        let mut chunk = ReadBuf::uninit(&mut storage);
        let polled = Pin::new(&mut self.io).poll_read(cx, &mut chunk);
        if let Poll::Ready(Ok(())) = polled {
            let got = chunk.filled();
            if got.is_empty() {
                self.io_eof = true;
            }
            self.idle_seen = false;
            self.buffer.extend_from_slice(got);
        }
        polled
    }
}

impl<IO> FramingGuard<IO> {
    /// After a write or flush polled as `polled`: clear the send deadline when it went
    /// through, arm or check it when it is blocked; an error once it has passed.
    fn check_send<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.send_deadline = None;
            return polled;
        }
        let Some(timeout) = self.send_timeout else {
            return polled;
        };
        let deadline = self
            .send_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_pending() {
            return polled;
        }
        self.verdict
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send_timed_out = true;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took nothing written to it for {timeout:?}"),
        )))
    }

    /// Arm, disarm or check the head deadline; `Some` when it has passed.
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let timeout = self.head_timeout?;
        if !self.head_in_progress() {
            self.head_deadline = None;
            return None;
        }
        let deadline = self
            .head_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        deadline.as_mut().poll(cx).is_ready().then(|| {
            self.verdict
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .head_timed_out = true;
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("request head not complete within {timeout:?}"),
            )
        })
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FramingGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..MAX_READS_PER_POLL {
            let outcome = this.validate();
            if this.released > 0 {
                this.hand_out(buf);
                return Poll::Ready(Ok(()));
            }
            match outcome {
                Outcome::Failed(rejection) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, rejection)));
                }
                // No waker is kept: hyper closes the connection after the answer.
                Outcome::Parked => return Poll::Pending,
                Outcome::NeedMore if this.io_eof => return Poll::Ready(Ok(())),
                Outcome::NeedMore => {}
            }
            if let Some(expired) = this.poll_head_deadline(cx) {
                return Poll::Ready(Err(expired));
            }
            if let Some(limit) = this.direct_limit() {
                return this.poll_read_direct(cx, buf, limit);
            }
            if this.poll_fill(cx)?.is_pending() {
                return this.pending_or_park(cx);
            }
        }
        // A peer trickling bytes that are always ready: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FramingGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.check_send(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        let polled = this.check_send(cx, polled);
        if let Poll::Ready(Ok(())) = polled {
            this.unflushed = false;
            if std::mem::take(&mut this.wake_on_flush) {
                cx.waker().wake_by_ref();
            }
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.check_send(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// One validation step of `phase` over `block`, the bytes after those already released.
fn step(phase: &mut Phase, block: &[u8]) -> Step {
    match phase {
        Phase::Head(scan) => match scan.scan(block, MAX_HEAD_BYTES, Rejection::RequestHeadTooLarge)
        {
            Err(rejection) => Step::RefuseHead(rejection),
            Ok(None) => Step::Wait,
            Ok(Some(len)) => match block.get(..len).map(check_head) {
                Some(Ok(next)) => {
                    *phase = next;
                    Step::ReleaseHead(len)
                }
                Some(Err(rejection)) => Step::RefuseHead(rejection),
                None => Step::Wait,
            },
        },
        Phase::Body(left) => match body_piece(block, left) {
            0 => Step::Wait,
            len => {
                if *left == 0 {
                    *phase = Phase::Head(LineScan::head());
                }
                Step::Release(len)
            }
        },
        Phase::Chunked(chunked) => {
            let (next, step) = step_chunked(std::mem::replace(chunked, Chunked::SizeLine), block);
            *phase = next;
            step
        }
        Phase::Refused | Phase::Broken(_) => Step::Stopped,
    }
}

/// One step inside a chunked body: the phase after it, and what it found.
fn step_chunked(chunked: Chunked, block: &[u8]) -> (Phase, Step) {
    match chunked {
        Chunked::SizeLine => match chunk_size_line(block) {
            Ok(Some((len, 0))) => (
                Phase::Chunked(Chunked::Trailers(LineScan::trailers())),
                Step::Release(len),
            ),
            Ok(Some((len, size))) => (Phase::Chunked(Chunked::Data(size)), Step::Release(len)),
            Ok(None) => (Phase::Chunked(Chunked::SizeLine), Step::Wait),
            Err(rejection) => (Phase::Chunked(Chunked::SizeLine), Step::Break(rejection)),
        },
        Chunked::Data(mut left) => match body_piece(block, &mut left) {
            0 => (Phase::Chunked(Chunked::Data(left)), Step::Wait),
            len if left == 0 => (Phase::Chunked(Chunked::DataEnd), Step::Release(len)),
            len => (Phase::Chunked(Chunked::Data(left)), Step::Release(len)),
        },
        Chunked::DataEnd => match block {
            [b'\r', b'\n', ..] => (Phase::Chunked(Chunked::SizeLine), Step::Release(2)),
            [] | [b'\r'] => (Phase::Chunked(Chunked::DataEnd), Step::Wait),
            _ => (
                Phase::Chunked(Chunked::DataEnd),
                Step::Break(Rejection::ChunkDataNotTerminated),
            ),
        },
        Chunked::Trailers(mut scan) => {
            match scan.scan(block, MAX_TRAILER_BYTES, Rejection::TrailersTooLarge) {
                Err(rejection) => (
                    Phase::Chunked(Chunked::Trailers(scan)),
                    Step::Break(rejection),
                ),
                Ok(None) => (Phase::Chunked(Chunked::Trailers(scan)), Step::Wait),
                Ok(Some(len)) => match block.get(..len).map(check_trailers) {
                    Some(Ok(())) => (Phase::Head(LineScan::head()), Step::Release(len)),
                    Some(Err(rejection)) => (
                        Phase::Chunked(Chunked::Trailers(scan)),
                        Step::Break(rejection),
                    ),
                    None => (Phase::Chunked(Chunked::Trailers(scan)), Step::Wait),
                },
            }
        }
    }
}

/// How many of `block`'s bytes belong to a body with `left` bytes to go; `left` shrinks.
fn body_piece(block: &[u8], left: &mut u64) -> usize {
    let len = usize::try_from(*left).map_or(block.len(), |left| left.min(block.len()));
    *left = left.saturating_sub(u64::try_from(len).unwrap_or(u64::MAX));
    len
}

/// An incremental scan for the end of a block of CRLF-terminated lines that ends with an
/// empty line (a request head or a trailer section).
struct LineScan {
    /// Bytes of the block already checked.
    checked: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// Whether empty lines before the first non-empty one are skipped (a head: hyper's
    /// httparse skips them before the request line) or end the block (trailers).
    skip_leading_empty: bool,
    /// A non-empty line was seen.
    seen_line: bool,
}

impl LineScan {
    fn head() -> Self {
        Self {
            checked: 0,
            line_start: 0,
            skip_leading_empty: true,
            seen_line: false,
        }
    }

    fn trailers() -> Self {
        Self {
            skip_leading_empty: false,
            ..Self::head()
        }
    }

    /// The length of the block once its empty line is in `block`, or `None` to wait.
    ///
    /// # Errors
    /// [`Rejection::InvalidLineEnding`] for a CR or LF outside a CRLF, or `too_large` when
    /// the block does not end within `limit` bytes.
    fn scan(
        &mut self,
        block: &[u8],
        limit: usize,
        too_large: Rejection,
    ) -> Result<Option<usize>, Rejection> {
        let window = block.get(..limit).unwrap_or(block);
        let mut previous = self
            .checked
            .checked_sub(1)
            .and_then(|at| window.get(at))
            .copied();
        for (at, &byte) in window.iter().enumerate().skip(self.checked) {
            if previous == Some(b'\r') && byte != b'\n' {
                return Err(Rejection::InvalidLineEnding);
            }
            if byte == b'\n' {
                if previous != Some(b'\r') {
                    return Err(Rejection::InvalidLineEnding);
                }
                let end = at.saturating_add(1);
                let empty = end.saturating_sub(self.line_start) == 2;
                self.line_start = end;
                if !empty {
                    self.seen_line = true;
                } else if self.seen_line || !self.skip_leading_empty {
                    self.checked = end;
                    return Ok(Some(end));
                }
            }
            previous = Some(byte);
        }
        self.checked = window.len();
        if block.len() >= limit {
            return Err(too_large);
        }
        Ok(None)
    }
}

/// Validate a complete request head; the phase its body starts in.
fn check_head(head: &[u8]) -> Result<Phase, Rejection> {
    check_field_lines(head, true)?;

    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    match request.parse(head) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => {
            return Err(Rejection::MalformedHead(
                "head does not end at its empty line",
            ));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Rejection::RequestHeadTooLarge),
        Err(e) => return Err(Rejection::MalformedHead(describe(e))),
    }
    // hyper answers a target its URI parser refuses with a bare 400 of its own: refused here
    // instead, with the gateway's answer and event. An origin-form target of bytes no URI
    // parser refuses (most of them) skips the parse.
    if let Some(target) = request.path
        && !(target.starts_with('/') && target.bytes().all(is_plain_target_byte))
        && http::Uri::try_from(target).is_err()
    {
        return Err(Rejection::InvalidTarget(quote(target.as_bytes())));
    }

    // The shared rule: one Content-Length (1*DIGIT) or one Transfer-Encoding (`chunked`),
    // never both. httparse has already removed the OWS around each value.
    let mut framing = HeaderMap::new();
    for field in request.headers.iter() {
        let name = if field.name.eq_ignore_ascii_case("content-length") {
            header::CONTENT_LENGTH
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            header::TRANSFER_ENCODING
        } else {
            continue;
        };
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| Rejection::HeaderControlCharacter(quote(field.name.as_bytes())))?;
        framing.append(name, value);
    }
    tenet_request::check_framing(&framing)?;

    if framing.contains_key(header::TRANSFER_ENCODING) {
        if request.version == Some(0) {
            return Err(Rejection::TransferEncodingInHttp10);
        }
        return Ok(Phase::Chunked(Chunked::SizeLine));
    }
    match framing.get(header::CONTENT_LENGTH) {
        None => Ok(Phase::Head(LineScan::head())),
        Some(value) => match std::str::from_utf8(value.as_bytes()).map(str::parse::<u64>) {
            Ok(Ok(0)) => Ok(Phase::Head(LineScan::head())),
            Ok(Ok(len)) => Ok(Phase::Body(len)),
            _ => Err(Rejection::InvalidContentLength(quote(value.as_bytes()))),
        },
    }
}

/// Validate a complete trailer section (its field lines and the final CRLF).
fn check_trailers(trailers: &[u8]) -> Result<(), Rejection> {
    check_field_lines(trailers, false)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    match httparse::parse_headers(trailers, &mut fields) {
        Ok(httparse::Status::Complete((len, _))) if len == trailers.len() => Ok(()),
        Ok(_) => Err(Rejection::MalformedHead(
            "trailer section does not end at its empty line",
        )),
        Err(httparse::Error::TooManyHeaders) => Err(Rejection::TrailersTooLarge),
        Err(e) => Err(Rejection::MalformedHead(describe(e))),
    }
}

/// Field-line checks httparse does not make, or makes without saying which: obs-fold,
/// whitespace before the colon, control characters in a value. `block` ends with CRLF CRLF
/// and has no bare CR or LF (the line scan refused those).
fn check_field_lines(block: &[u8], has_request_line: bool) -> Result<(), Rejection> {
    let mut lines = block
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    if has_request_line {
        // Skip the empty lines before the request line, then the request line itself
        // (httparse checks it).
        let _request_line = lines.find(|line| !line.is_empty());
    }
    for line in lines.take_while(|line| !line.is_empty()) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(Rejection::ObsoleteLineFolding);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if matches!(name.last(), Some(b' ' | b'\t')) {
            return Err(Rejection::WhitespaceBeforeColon(quote(
                name.trim_ascii_end(),
            )));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Rejection::HeaderControlCharacter(quote(name)));
        }
    }
    Ok(())
}

/// A chunk-size line at the start of `block`: `Some((line length with CRLF, size))`, or
/// `None` to wait for more bytes. Every decision depends only on the bytes up to the first
/// CR or LF, so how the bytes arrive never changes the outcome.
fn chunk_size_line(block: &[u8]) -> Result<Option<(usize, u64)>, Rejection> {
    let window = block
        .get(..MAX_CHUNK_LINE_BYTES.saturating_add(2))
        .unwrap_or(block);
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if window.len() > MAX_CHUNK_LINE_BYTES {
            return Err(Rejection::InvalidChunkSize(quote(window)));
        }
        return Ok(None);
    };
    let line = window.get(..end).unwrap_or_default();
    if line.len() > MAX_CHUNK_LINE_BYTES {
        return Err(Rejection::InvalidChunkSize(quote(line)));
    }
    match window.get(end..) {
        Some([b'\r', b'\n', ..]) => match parse_chunk_line(line) {
            Some(size) => Ok(Some((end.saturating_add(2), size))),
            None => Err(Rejection::InvalidChunkSize(quote(line))),
        },
        Some([b'\r']) => Ok(None),
        _ => Err(Rejection::InvalidLineEnding),
    }
}

/// `chunk-size *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )` (RFC 9112
/// §7.1.1): hex digits only (no sign, prefix or leading whitespace), fitting in a `u64`.
fn parse_chunk_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (size, mut rest) = line.split_at_checked(digits)?;
    if size.is_empty() {
        return None;
    }
    let size = size.iter().try_fold(0_u64, |acc, &digit| {
        let value = u64::from(char::from(digit).to_digit(16)?);
        acc.checked_mul(16)?.checked_add(value)
    })?;

    // Each pass consumes at least `;` and one name byte, so the loop ends.
    while !rest.is_empty() {
        rest = skip_whitespace(rest).strip_prefix(b";")?;
        rest = skip_whitespace(rest);
        let name = rest.iter().take_while(|&&b| is_tchar(b)).count();
        if name == 0 {
            return None;
        }
        rest = rest.get(name..)?;
        if let Some(value) = skip_whitespace(rest).strip_prefix(b"=") {
            rest = skip_extension_value(skip_whitespace(value))?;
        }
    }
    Some(size)
}

/// The bytes after a `token` or a `quoted-string`.
fn skip_extension_value(value: &[u8]) -> Option<&[u8]> {
    let Some(mut rest) = value.strip_prefix(b"\"") else {
        let token = value.iter().take_while(|&&b| is_tchar(b)).count();
        return if token == 0 { None } else { value.get(token..) };
    };
    loop {
        let (&byte, tail) = rest.split_first()?;
        rest = match byte {
            b'"' => return Some(tail),
            b'\\' => match tail.split_first()? {
                (b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff, tail) => tail,
                _ => return None,
            },
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => tail,
            _ => return None,
        };
    }
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let spaces = bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    bytes.get(spaces..).unwrap_or_default()
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What httparse found wrong, in words.
/// A byte any URI may hold as it is in its path or query (RFC 3986 unreserved, sub-delims,
/// `:`, `@`, `/`, `?` and `%`).
fn is_plain_target_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte)
}

fn describe(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid header field name",
        httparse::Error::HeaderValue => "invalid header field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "unsupported http version",
    }
}

/// Client input shortened for quoting in a rejection.
fn quote(input: &[u8]) -> String {
    String::from_utf8_lossy(input)
        .chars()
        .take(MAX_QUOTED_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An inner stream that yields one scripted piece per read, then end of file.
    struct Script {
        pieces: VecDeque<Vec<u8>>,
    }

    impl Script {
        /// `input` cut into pieces whose sizes cycle through `sizes`.
        fn split(input: &[u8], sizes: &[usize]) -> Self {
            let mut pieces = VecDeque::new();
            let mut rest = input;
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
                pieces.push_back(piece.to_vec());
                rest = tail;
            }
            Self { pieces }
        }

        fn left(&self) -> usize {
            self.pieces.iter().map(Vec::len).sum()
        }
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut piece) = self.pieces.pop_front() {
                let len = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..len]);
                if len < piece.len() {
                    self.pieces.push_front(piece.split_off(len));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// What the reader (hyper's place) saw.
    /// How the reader's view of the stream ended.
    #[derive(Debug, Clone, PartialEq)]
    enum End {
        /// End of file (the inner stream ended).
        Eof,
        /// Reads stay pending with no wake-up (after the synthetic request).
        Parked,
        /// A read failed with this rejection as its source.
        Failed(Rejection),
    }

    /// What the reader (hyper's place) saw.
    #[derive(Debug, PartialEq)]
    struct Seen {
        output: Vec<u8>,
        end: End,
        /// What the service's `take` calls returned, one per request handed out.
        verdict: Option<Rejection>,
    }

    /// A waker that counts wake-ups, to tell a cooperative yield from a parked stream.
    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn read_all(guard: &mut FramingGuard<Script>, read_size: usize) -> (Vec<u8>, End) {
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut output = Vec::new();
        let mut storage = vec![0; read_size];
        for _ in 0..10_000_000 {
            let mut buf = ReadBuf::new(&mut storage);
            let before = wakes.0.load(Ordering::SeqCst);
            match Pin::new(&mut *guard).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return (output, End::Eof),
                Poll::Ready(Ok(())) => output.extend_from_slice(buf.filled()),
                Poll::Ready(Err(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    let rejection = e.get_ref().and_then(|e| e.downcast_ref::<Rejection>());
                    let rejection = rejection.expect("rejection source").clone();
                    return (output, End::Failed(rejection));
                }
                // The script is always ready, so only a yield asks to be woken.
                Poll::Pending if wakes.0.load(Ordering::SeqCst) == before => {
                    return (output, End::Parked);
                }
                Poll::Pending => {}
            }
        }
        panic!("the guard never stopped");
    }

    fn run_split(input: &[u8], sizes: &[usize], read_size: usize) -> Seen {
        let verdict = FramingVerdict::default();
        let mut guard = FramingGuard::new(Script::split(input, sizes), verdict.clone());
        let (output, end) = read_all(&mut guard, read_size);
        // One `take` per request handed out, as the service does; whichever finds it.
        let verdict = (0..=guard.heads).find_map(|_| verdict.take());
        Seen {
            output,
            end,
            verdict,
        }
    }

    /// The same input whole, one byte at a time, and in odd pieces, read in small and large
    /// buffers, must give the same result; that result is returned.
    fn run(input: &[u8]) -> Seen {
        let whole = run_split(input, &[usize::MAX], 16 * 1024);
        let bytewise = run_split(input, &[1], 1);
        let odd = run_split(input, &[7, 1, 300, 2], 5);
        assert_eq!(whole, bytewise, "whole vs one byte at a time");
        assert_eq!(whole, odd, "whole vs odd pieces");
        whole
    }

    fn refused(input: &str) -> Option<Rejection> {
        let seen = run(input.as_bytes());
        assert_eq!(seen.output, SYNTHETIC_REQUEST, "{input:?}");
        assert_eq!(seen.end, End::Parked);
        seen.verdict
    }

    const UPLOAD: &str = "POST /upload HTTP/1.1\r\nHost: app.example.test\r\n";
    const SMUGGLED: &str = "GET /admin HTTP/1.1\r\nHost: app.example.test\r\n\r\n";

    #[test]
    fn f005_ambiguous_framing_is_refused_and_nothing_after_it_reaches_hyper() {
        let cases = [
            (
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Rejection::ContentLengthWithTransferEncoding,
            ),
            (
                "Content-Length: 30\r\nTransfer-Encoding: chunked\t\r\n\r\n",
                Rejection::ContentLengthWithTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
                Rejection::DuplicateHeader(header::TRANSFER_ENCODING),
            ),
            (
                "Content-Length: 5\r\nContent-Length: 0\r\n\r\n",
                Rejection::DuplicateHeader(header::CONTENT_LENGTH),
            ),
            (
                "Content-Length: +5\r\n\r\n",
                Rejection::InvalidContentLength("+5".into()),
            ),
            (
                "Transfer-Encoding : chunked\r\n\r\n",
                Rejection::WhitespaceBeforeColon("Transfer-Encoding".into()),
            ),
        ];
        for (fields, expected) in cases {
            let alone = format!("{UPLOAD}{fields}hello{SMUGGLED}");
            assert_eq!(refused(&alone), Some(expected.clone()), "{fields:?}");

            // Behind a valid request on the same connection: the first request's `take`
            // sees nothing, the synthetic request's `take` sees the rejection.
            let first = "GET / HTTP/1.1\r\nHost: app.example.test\r\n\r\n";
            let input = format!("{first}{alone}");
            let verdict = FramingVerdict::default();
            let mut guard =
                FramingGuard::new(Script::split(input.as_bytes(), &[3]), verdict.clone());
            let (output, end) = read_all(&mut guard, 11);
            assert_eq!(output, [first.as_bytes(), SYNTHETIC_REQUEST].concat());
            assert_eq!(end, End::Parked);
            assert_eq!(verdict.take(), None, "{fields:?}");
            assert_eq!(verdict.take(), Some(expected), "{fields:?}");
            assert_eq!(verdict.take(), None);
        }
    }

    #[test]
    fn malformed_heads_are_refused_with_a_typed_rejection() {
        let cases: Vec<(String, Rejection)> = vec![
            (
                "GET / HTTP/1.1\nHost: a\n\n".into(),
                Rejection::InvalidLineEnding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\n\r\n".into(),
                Rejection::InvalidLineEnding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n".into(),
                Rejection::InvalidLineEnding,
            ),
            (
                "\nGET / HTTP/1.1\r\n\r\n".into(),
                Rejection::InvalidLineEnding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".into(),
                Rejection::ObsoleteLineFolding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n".into(),
                Rejection::ObsoleteLineFolding,
            ),
            (
                format!("{UPLOAD}Content-Length\t: 5\r\n\r\n"),
                Rejection::WhitespaceBeforeColon("Content-Length".into()),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n".into(),
                Rejection::HeaderControlCharacter("X-A".into()),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[0m\r\n\r\n".into(),
                Rejection::HeaderControlCharacter("X-A".into()),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n".into(),
                Rejection::HeaderControlCharacter("X-A".into()),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                Rejection::TransferEncodingInHttp10,
            ),
            (
                format!("{UPLOAD}Transfer-Encoding: gzip, chunked\r\n\r\n"),
                Rejection::UnsupportedTransferEncoding("gzip, chunked".into()),
            ),
            (
                format!("{UPLOAD}Transfer-Encoding: chunked, chunked\r\n\r\n"),
                Rejection::UnsupportedTransferEncoding("chunked, chunked".into()),
            ),
            (
                format!("{UPLOAD}Transfer-Encoding: identity\r\n\r\n"),
                Rejection::UnsupportedTransferEncoding("identity".into()),
            ),
            (
                format!("{UPLOAD}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
                Rejection::DuplicateHeader(header::TRANSFER_ENCODING),
            ),
            (
                format!("{UPLOAD}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
                Rejection::DuplicateHeader(header::CONTENT_LENGTH),
            ),
            (
                format!("{UPLOAD}Content-Length: 5, 5\r\n\r\n"),
                Rejection::InvalidContentLength("5, 5".into()),
            ),
            (
                format!("{UPLOAD}Content-Length: 0x10\r\n\r\n"),
                Rejection::InvalidContentLength("0x10".into()),
            ),
            (
                format!("{UPLOAD}Content-Length: -1\r\n\r\n"),
                Rejection::InvalidContentLength("-1".into()),
            ),
            (
                format!("{UPLOAD}Content-Length: 18446744073709551616\r\n\r\n"),
                Rejection::InvalidContentLength("18446744073709551616".into()),
            ),
            (
                format!("{UPLOAD}transfer-encoding: CHUNKED\r\ncontent-LENGTH: 3\r\n\r\n"),
                Rejection::ContentLengthWithTransferEncoding,
            ),
            (
                "GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(),
                Rejection::MalformedHead("unsupported http version"),
            ),
            (
                "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into(),
                Rejection::MalformedHead("unsupported http version"),
            ),
            (
                "GET  / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
                Rejection::MalformedHead("invalid method or request target"),
            ),
            (
                "GET / HTTP/1.1\r\nX(A): b\r\n\r\n".into(),
                Rejection::MalformedHead("invalid header field name"),
            ),
            (
                "GET / HTTP/1.1\r\nno colon here\r\n\r\n".into(),
                Rejection::MalformedHead("invalid header field name"),
            ),
            (
                format!(
                    "GET / HTTP/1.1\r\n{}\r\n",
                    (0..=MAX_FIELDS)
                        .map(|i| format!("X-{i}: v\r\n"))
                        .collect::<String>()
                ),
                Rejection::RequestHeadTooLarge,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(refused(&input), Some(expected), "{input:?}");
        }
    }

    /// Targets hyper's URI parser refuses get the gateway's own refusal; the ones it takes,
    /// odd as they look, pass to the request normaliser.
    #[test]
    fn targets_that_are_no_uri_are_refused_before_hyper() {
        for target in [
            "/products/<x>",
            "/a>b",
            "/x?q=\"a\"",
            "/x?q=<script>",
            "/a`b",
            "http://exa{mple.test/",
            "http://[::1/",
            "a/b",
        ] {
            let input = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                refused(&input),
                Some(Rejection::InvalidTarget(target.into())),
                "{target}"
            );
        }
        for target in [
            "/",
            "/a/b.c-d_e~f!$&'()*+,;=:@/?x=%41&y=/?",
            "/{a}|^[b]",
            "/x?{a}|^`[b]\\",
            "/\"quoted\"",
            "http://app.example.test/x?y",
            "http://[::1]:8080/",
            "*",
        ] {
            let input = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let seen = run(input.as_bytes());
            assert_eq!(seen.verdict, None, "{target}");
            assert_eq!(seen.output, input.as_bytes(), "{target}");
        }
    }

    #[test]
    fn oversized_head_is_refused_without_reading_the_rest() {
        let filler = "a".repeat(MAX_HEAD_BYTES);
        let input = format!("GET / HTTP/1.1\r\nX-Fill: {filler}{filler}{filler}\r\n\r\n");
        let verdict = FramingVerdict::default();
        let mut guard =
            FramingGuard::new(Script::split(input.as_bytes(), &[4096]), verdict.clone());
        let (output, end) = read_all(&mut guard, 1024);
        assert_eq!(output, SYNTHETIC_REQUEST);
        assert_eq!(end, End::Parked);
        assert_eq!(verdict.take(), Some(Rejection::RequestHeadTooLarge));
        assert!(
            guard.io.left() > MAX_HEAD_BYTES,
            "the guard read past its limit"
        );

        // Exactly at the limit is still accepted.
        let head = "GET / HTTP/1.1\r\nX-Fill: \r\n\r\n";
        let fill = "b".repeat(MAX_HEAD_BYTES - head.len());
        let input = format!("GET / HTTP/1.1\r\nX-Fill: {fill}\r\n\r\n");
        assert_eq!(input.len(), MAX_HEAD_BYTES);
        let seen = run_split(input.as_bytes(), &[1000], 4096);
        assert_eq!(seen.output, input.as_bytes());
        assert_eq!((seen.end, seen.verdict), (End::Eof, None));
    }

    /// A stream of valid requests: a sized body, a chunked body with extensions and
    /// trailers, empty lines before a request, HTTP/1.0, OWS around `chunked`.
    fn clean_stream() -> Vec<u8> {
        [
            "POST /upload HTTP/1.1\r\nHost: app.example.test\r\nContent-Length: 5\r\n\r\nhello",
            "POST /upload HTTP/1.1\r\nHost: app.example.test\r\nTransfer-Encoding: chunked\r\n\r\n",
            "5;name=value;flag ; q=\"a \\\"quoted\\\" ;x\"\r\nhello\r\n",
            "A\r\n0123456789\r\n",
            "0;last\r\nX-Checksum: abc\r\nX-Other: d e\r\n\r\n",
            "\r\n\r\nGET /next HTTP/1.1\r\nHost: app.example.test\r\n\r\n",
            "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED \t\r\n\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
            "GET /text HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Text: caf\u{e9}\r\n\r\n",
            "GET /old HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat()
        .into_bytes()
    }

    #[test]
    fn clean_requests_pass_through_byte_for_byte() {
        let input = clean_stream();
        let seen = run(&input);
        assert_eq!(seen.output, input);
        assert_eq!((seen.end, seen.verdict), (End::Eof, None));
        for read_size in [1, 2, 3, 64, 100_000] {
            let seen = run_split(&input, &[usize::MAX], read_size);
            assert_eq!(seen.output, input, "read size {read_size}");
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_then_a_second_request() {
        let input = [
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "4;ext=\"v\"\r\nwiki\r\n5;a=b\r\npedia\r\n0\r\nExpires: never\r\n\r\n",
            "GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        .concat();
        let seen = run(input.as_bytes());
        assert_eq!(seen.output, input.as_bytes());
        assert_eq!((seen.end, seen.verdict), (End::Eof, None));
    }

    #[test]
    fn large_sized_body_passes_through_and_the_next_head_is_still_checked() {
        let body: Vec<u8> = (0..1_000_000_u32).map(|i| (i % 251) as u8).collect();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // The body contains CRLF CRLF and request-looking bytes: they must not count.
        let next_bad = "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        let input = [head.as_bytes(), &body, next_bad.as_bytes()].concat();
        let seen = run_split(&input, &[65_536, 1, 10_000], 16_384);
        let expected = [head.as_bytes(), &body, SYNTHETIC_REQUEST].concat();
        assert_eq!(seen.output, expected);
        assert_eq!(seen.end, End::Parked);
        assert_eq!(
            seen.verdict,
            Some(Rejection::DuplicateHeader(header::CONTENT_LENGTH))
        );
    }

    #[test]
    fn malformed_chunked_bodies_fail_the_read_after_the_valid_part() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let bad_size = |line: &str| Rejection::InvalidChunkSize(line.into());
        let long_extension = format!("5;{}", "a".repeat(MAX_CHUNK_LINE_BYTES));
        let huge_trailer = format!("0\r\nX-T: {}\r\n\r\n", "t".repeat(MAX_TRAILER_BYTES));
        let many_trailers = format!(
            "0\r\n{}\r\n",
            (0..=MAX_FIELDS)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>()
        );
        let cases: Vec<(String, &str, Rejection)> = vec![
            ("0x5\r\nhello\r\n0\r\n\r\n".into(), "", bad_size("0x5")),
            ("+5\r\nhello\r\n".into(), "", bad_size("+5")),
            ("-5\r\n".into(), "", bad_size("-5")),
            (" 5\r\n".into(), "", bad_size(" 5")),
            ("5 \r\nhello\r\n".into(), "", bad_size("5 ")),
            ("\r\n".into(), "", bad_size("")),
            ("g\r\n".into(), "", bad_size("g")),
            (
                "10000000000000000\r\n".into(),
                "",
                bad_size("10000000000000000"),
            ),
            ("5;\r\n".into(), "", bad_size("5;")),
            ("5;a=\r\n".into(), "", bad_size("5;a=")),
            ("5;a=\"open\r\n".into(), "", bad_size("5;a=\"open")),
            ("5;a b\r\n".into(), "", bad_size("5;a b")),
            ("5;a=b c\r\n".into(), "", bad_size("5;a=b c")),
            ("5;a\0\r\n".into(), "", bad_size("5;a\0")),
            (
                format!("{long_extension}\r\n"),
                "",
                bad_size(&quote(long_extension.as_bytes())),
            ),
            ("5\nhello\r\n".into(), "", Rejection::InvalidLineEnding),
            ("5\rhello\r\n".into(), "", Rejection::InvalidLineEnding),
            (
                "5\r\nhelloX\r\n".into(),
                "5\r\nhello",
                Rejection::ChunkDataNotTerminated,
            ),
            (
                "5\r\nhello\n0\r\n".into(),
                "5\r\nhello",
                Rejection::ChunkDataNotTerminated,
            ),
            (
                "5\r\nhello\r\r\n".into(),
                "5\r\nhello",
                Rejection::ChunkDataNotTerminated,
            ),
            (
                "0\r\nX-T: a\r\n b\r\n\r\n".into(),
                "0\r\n",
                Rejection::ObsoleteLineFolding,
            ),
            (
                "0\r\nX-T: a\nb\r\n\r\n".into(),
                "0\r\n",
                Rejection::InvalidLineEnding,
            ),
            (
                "0\r\nX-T : a\r\n\r\n".into(),
                "0\r\n",
                Rejection::WhitespaceBeforeColon("X-T".into()),
            ),
            (
                "0\r\nnot a field\r\n\r\n".into(),
                "0\r\n",
                Rejection::MalformedHead("invalid header field name"),
            ),
            (huge_trailer, "0\r\n", Rejection::TrailersTooLarge),
            (many_trailers, "0\r\n", Rejection::TrailersTooLarge),
        ];
        for (body, valid, expected) in cases {
            let input = format!("{head}{body}GET /smuggled HTTP/1.1\r\n\r\n");
            let seen = run(input.as_bytes());
            assert_eq!(seen.output, format!("{head}{valid}").as_bytes(), "{body:?}");
            assert_eq!(seen.end, End::Failed(expected.clone()), "{body:?}");
            assert_eq!(seen.verdict, Some(expected), "{body:?}");
        }
    }

    #[test]
    fn end_of_file_inside_a_head_hands_nothing_over() {
        let input = format!("{UPLOAD}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n");
        let seen = run(input.as_bytes());
        let nothing = Seen {
            output: vec![],
            end: End::Eof,
            verdict: None,
        };
        assert_eq!(seen, nothing);
    }

    #[test]
    fn verdict_survives_a_poisoned_lock() {
        let verdict = FramingVerdict::default();
        verdict.record(0, Rejection::InvalidLineEnding);
        let poisoner = verdict.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.0.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(verdict.0.is_poisoned());
        assert_eq!(verdict.take(), Some(Rejection::InvalidLineEnding));
        assert_eq!(verdict.take(), None);
    }

    #[tokio::test]
    async fn writes_pass_straight_through() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut guard = FramingGuard::new(server, FramingVerdict::default());
        guard.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let fields = b"a: b\r\n\r\n";
        let (first, second) = fields.split_at(6);
        let slices = [io::IoSlice::new(first), io::IoSlice::new(second)];
        let written = guard.write_vectored(&slices).await.unwrap();
        assert!(written > 0);
        guard.write_all(&fields[written..]).await.unwrap();
        assert_eq!(guard.is_write_vectored(), guard.io.is_write_vectored());
        guard.flush().await.unwrap();
        guard.shutdown().await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"HTTP/1.1 200 OK\r\na: b\r\n\r\n");
    }

    /// Serve `input` with a real hyper server behind the guard; the service answers
    /// a recorded rejection like the gateway does, otherwise echoes what it received.
    async fn serve(input: Vec<u8>) -> Vec<(u16, String)> {
        serve_pieces(vec![input]).await
    }

    /// Like `serve`, with a pause between the pieces so hyper dispatches what came before.
    async fn serve_pieces(pieces: Vec<Vec<u8>>) -> Vec<(u16, String)> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let verdict = FramingVerdict::default();
        let guard = FramingGuard::new(server, verdict.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let verdict = verdict.clone();
            async move {
                if let Some(rejection) = verdict.take() {
                    let response = Response::builder()
                        .status(rejection.status())
                        .header(header::CONNECTION, "close")
                        .body(Full::new(Bytes::from(rejection.kind())))
                        .unwrap();
                    return Ok::<_, Infallible>(response);
                }
                let (parts, body) = request.into_parts();
                let text = match body.collect().await {
                    Ok(body) => {
                        let trailers = body.trailers().map_or(0, HeaderMap::len);
                        let len = body.to_bytes().len();
                        format!("{} {} {len} {trailers}", parts.method, parts.uri)
                    }
                    Err(_) => format!("body failed: {:?}", verdict.take().map(|r| r.kind())),
                };
                Ok(Response::new(Full::new(Bytes::from(text))))
            }
        });
        // As the gateway serves: the auto builder, which sniffs for an HTTP/2 preface first.
        let connection = tokio::spawn(async move {
            auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(guard), service)
                .await
        });
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = tokio::spawn(async move {
            for piece in pieces {
                let _ = writer.write_all(&piece).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            writer
        });
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut raw))
            .await
            .expect("the connection closes")
            .unwrap();
        let _ = connection.await;
        drop(write.await);
        parse_responses(&raw)
    }

    /// Status and body of each response (hyper sends `content-length` for `Full` bodies).
    fn parse_responses(raw: &[u8]) -> Vec<(u16, String)> {
        let mut text = String::from_utf8_lossy(raw).into_owned();
        let mut responses = Vec::new();
        while let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let status = head[9..12].parse().unwrap();
            let len: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            let body = text[end + 4..end + 4 + len].to_string();
            responses.push((status, body));
            text = text[end + 4 + len..].to_string();
        }
        assert!(text.is_empty(), "trailing bytes {text:?}");
        responses
    }

    #[tokio::test]
    async fn hyper_serves_pipelined_clean_requests_behind_the_guard() {
        let mut input = clean_stream();
        input.extend_from_slice(b"GET /close HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let responses = serve(input).await;
        let expected = [
            "POST /upload 5 0",
            "POST /upload 15 2",
            "GET /next 0 0",
            "PUT /x 3 0",
            "GET /text 0 0",
            "GET /old 0 0",
        ];
        // HTTP/1.0 without keep-alive ends the connection after /old.
        assert_eq!(
            responses,
            expected.map(|body| (200, body.to_string())).to_vec()
        );
    }

    #[tokio::test]
    async fn f005_hyper_answers_400_and_closes_for_each_case() {
        let cases = [
            (
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                "content_length_with_transfer_encoding",
            ),
            (
                "Content-Length: 30\r\nTransfer-Encoding: chunked\t\r\n\r\n",
                "content_length_with_transfer_encoding",
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
                "duplicate_header",
            ),
            (
                "Content-Length: 5\r\nContent-Length: 0\r\n\r\n",
                "duplicate_header",
            ),
            ("Content-Length: +5\r\n\r\n", "invalid_content_length"),
            (
                "Transfer-Encoding : chunked\r\n\r\n",
                "whitespace_before_colon",
            ),
        ];
        for (fields, kind) in cases {
            let alone = format!("{UPLOAD}{fields}hello{SMUGGLED}");
            assert_eq!(
                serve(alone.clone().into_bytes()).await,
                [(400, kind.to_string())],
                "{fields:?}"
            );

            // Pipelined behind a valid request: hyper reads ahead while serving it, yet the
            // valid request is served and only the bad one is refused.
            let first = "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
            let responses = serve(format!("{first}{alone}").into_bytes()).await;
            assert_eq!(
                responses,
                [
                    (200, "POST /first 2 0".to_string()),
                    (400, kind.to_string())
                ],
                "{fields:?}"
            );
        }
    }

    #[tokio::test]
    async fn hyper_fails_a_request_whose_chunked_body_is_malformed() {
        let head =
            "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        let rest = "5 \r\nworld\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let responses = serve_pieces(vec![head.into(), rest.into()]).await;
        assert_eq!(
            responses,
            [(200, "body failed: Some(\"invalid_chunk_size\")".to_string())]
        );
    }

    /// One poll of `guard`'s read: `None` while pending, else the bytes (empty at end of file).
    fn poll_once<IO: AsyncRead + Unpin>(guard: &mut FramingGuard<IO>) -> Option<Vec<u8>> {
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut storage = [0u8; 4096];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(guard).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) => Some(buf.filled().to_vec()),
            Poll::Ready(Err(e)) => panic!("read failed: {e}"),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn an_idle_connection_parks_only_when_answered_flushed_and_between_messages() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let activity = Activity::default();
        let mut guard =
            FramingGuard::new(server, FramingVerdict::default()).parking(activity.clone());
        client
            .write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let head = poll_once(&mut guard).unwrap();
        assert!(head.starts_with(b"GET /a"));

        // The response is being produced: a read waits (hyper watching for a closed client).
        let in_flight = activity.begin();
        assert_eq!(poll_once(&mut guard), None);
        // Produced and written but not flushed: still waits, also at the second look.
        guard
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        drop(in_flight);
        assert_eq!(
            poll_once(&mut guard),
            None,
            "the first idle look only looks"
        );
        assert_eq!(poll_once(&mut guard), None, "written, not flushed");
        assert!(!guard.take_parked());
        // Flushed: the read ends with end of file, marked as parked, once.
        guard.flush().await.unwrap();
        assert_eq!(poll_once(&mut guard), Some(vec![]));
        assert!(guard.take_parked());
        assert!(!guard.take_parked());

        // The next request is read as usual; inside its body the connection never parks.
        client
            .write_all(b"POST /b HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\nab")
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(bytes) = poll_once(&mut guard) {
            assert!(!bytes.is_empty(), "no end of file inside a body");
            got.extend_from_slice(&bytes);
        }
        assert!(got.ends_with(b"\r\n\r\nab"));
        assert!(!guard.take_parked());
        client.write_all(b"cde").await.unwrap();
        assert_eq!(poll_once(&mut guard), Some(b"cde".to_vec()));
        // The head is with hyper, the service has not seen it: busy.
        assert_eq!(poll_once(&mut guard), None);
        assert_eq!(poll_once(&mut guard), None);
        drop(activity.begin());
        assert_eq!(
            poll_once(&mut guard),
            None,
            "the first idle look only looks"
        );
        assert_eq!(
            poll_once(&mut guard),
            Some(vec![]),
            "idle again after the body"
        );
        assert!(guard.take_parked());
        // Part of a head: no parking.
        client.write_all(b"GET /c HTTP/1.1\r\nHo").await.unwrap();
        assert_eq!(poll_once(&mut guard), None);
        assert_eq!(poll_once(&mut guard), None);
        assert!(!guard.take_parked());

        // Bytes put back are handed out again before anything new.
        guard.unread(b"xy");
        assert!(guard.has_buffered());
        assert_eq!(poll_once(&mut guard), Some(b"xy".to_vec()));
        // The client's own end of file is not a parking.
        drop(client);
        assert_eq!(poll_once(&mut guard), Some(vec![]));
        assert!(!guard.take_parked());
    }

    /// One request through `guard`: the client sends its head, the guard hands it out, the
    /// service answers and the answer is flushed.
    async fn serve_one(
        client: &mut tokio::io::DuplexStream,
        guard: &mut FramingGuard<tokio::io::DuplexStream>,
        activity: &Activity,
        path: &str,
    ) {
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = poll_once(guard).unwrap();
        assert!(head.starts_with(format!("GET {path}").as_bytes()));
        drop(activity.begin());
        guard
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        guard.flush().await.unwrap();
    }

    #[tokio::test]
    async fn a_lingering_connection_parks_after_a_whole_linger_without_requests() {
        const LINGER: Duration = Duration::from_millis(200);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let activity = Activity::default();
        let mut guard = FramingGuard::new(server, FramingVerdict::default())
            .parking(activity.clone())
            .lingering(LINGER);
        serve_one(&mut client, &mut guard, &activity, "/a").await;
        assert_eq!(
            poll_once(&mut guard),
            None,
            "the first idle look sets the timer"
        );
        assert_eq!(poll_once(&mut guard), None, "lingering: hyper stays");
        assert!(!guard.take_parked());

        // A request inside the linger is read by the same reader.
        tokio::time::sleep(LINGER / 2).await;
        serve_one(&mut client, &mut guard, &activity, "/b").await;
        assert_eq!(poll_once(&mut guard), None);
        // The timer runs out over that request: it is set again, no parking.
        tokio::time::sleep(LINGER / 2 + Duration::from_millis(50)).await;
        assert_eq!(poll_once(&mut guard), None);
        assert!(!guard.take_parked());
        // A whole linger with nothing: parked.
        tokio::time::sleep(LINGER + Duration::from_millis(50)).await;
        assert_eq!(poll_once(&mut guard), Some(vec![]));
        assert!(guard.take_parked());

        // After parking, the next idle spell lingers again from its start.
        serve_one(&mut client, &mut guard, &activity, "/c").await;
        assert_eq!(poll_once(&mut guard), None);
        assert_eq!(poll_once(&mut guard), None);
        assert!(!guard.take_parked());
    }

    /// hyper serving one 1 MiB answer through a guard with a 10 s send timeout to a client
    /// that reads `read` bytes of it, then (`gap`) reads the rest 16 KiB at a time, `gap`
    /// apart, or stops; how the connection ended (an error: whether the send timeout ended
    /// it) and after how long.
    async fn answer_a_slow_client(
        read: usize,
        gap: Option<Duration>,
    ) -> (Result<(), bool>, Duration) {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let verdict = FramingVerdict::default();
        let guard =
            FramingGuard::new(server, verdict.clone()).with_send_timeout(Duration::from_secs(10));
        let (mut reader, mut writer) = tokio::io::split(client);
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        writer.write_all(head).await.unwrap();
        tokio::spawn(async move {
            let mut taken = vec![0u8; read];
            reader.read_exact(&mut taken).await.unwrap();
            if let Some(gap) = gap {
                let mut piece = vec![0u8; 16 * 1024];
                while reader.read(&mut piece).await.is_ok_and(|n| n > 0) {
                    tokio::time::sleep(gap).await;
                }
            }
            // Keeps the pipe open, unread.
            std::future::pending::<()>().await;
            drop(writer);
        });
        let service = service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(crate::response::full(vec![b'x'; 1 << 20])))
        });
        let start = tokio::time::Instant::now();
        let serving = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(guard), service);
        let served = tokio::time::timeout(Duration::from_secs(3600), serving)
            .await
            .expect("the connection ends within the hour")
            .map_err(|_| verdict.send_timed_out());
        (served, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_its_answer_is_cut_off_after_the_send_timeout() {
        // Nothing read at all, and a first part read: either way ten seconds after the last
        // write that went through.
        for read in [0, 300 * 1024] {
            let (served, after) = answer_a_slow_client(read, None).await;
            assert_eq!(served, Err(true), "failed for the send timeout");
            assert!(
                after >= Duration::from_secs(10) && after < Duration::from_secs(11),
                "{after:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_that_keeps_reading_gets_its_whole_answer() {
        // 16 KiB every 5 s: the whole answer takes more than five minutes.
        let (served, after) = answer_a_slow_client(0, Some(Duration::from_secs(5))).await;
        served.unwrap();
        assert!(after > Duration::from_secs(300), "{after:?}");
    }

    #[tokio::test]
    async fn hyper_hands_a_parked_connection_back_after_a_small_response() {
        // Written and flushed at once: nothing but the guard wakes hyper to park.
        park_between_requests(16).await;
    }

    #[tokio::test]
    async fn hyper_hands_a_parked_connection_back_after_a_large_response() {
        // Larger than the pipe, so that hyper's flush waits on the client: the connection may
        // park only once every byte is out.
        park_between_requests(200 * 1024).await;
    }

    /// Two requests on one connection, each served by its own hyper connection that hands the
    /// stream back when idle; every response arrives whole.
    async fn park_between_requests(body_len: usize) {
        let (client, server) = tokio::io::duplex(16 * 1024);
        let activity = Activity::default();
        let mut guard =
            FramingGuard::new(server, FramingVerdict::default()).parking(activity.clone());
        let (mut reader, mut writer) = tokio::io::split(client);
        let received = tokio::spawn(async move {
            let mut raw = Vec::new();
            let _ = reader.read_to_end(&mut raw).await;
            raw
        });
        for path in ["/one", "/two"] {
            writer
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let activity = activity.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let in_flight = activity.begin();
                async move {
                    // A response that takes a while: hyper reads meanwhile and must not park.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let mut body = request.uri().path().as_bytes().repeat(body_len / 4);
                    body.truncate(body_len);
                    let body = crate::response::full(body);
                    Ok::<_, Infallible>(Response::new(crate::keepalive::TrackedBody::new(
                        body, in_flight,
                    )))
                }
            });
            let parts = tokio::time::timeout(
                Duration::from_secs(10),
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(guard), service)
                    .without_shutdown(),
            )
            .await
            .expect("hyper returns the idle connection")
            .expect("without an error");
            assert!(parts.read_buf.is_empty());
            guard = parts.io.into_inner();
            assert!(guard.take_parked(), "idle, not closed by the client");
        }
        drop(guard);
        let raw = received.await.unwrap();
        let responses = parse_responses(&raw);
        assert_eq!(
            responses.len(),
            2,
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        );
        for ((status, body), path) in responses.iter().zip(["/one", "/two"]) {
            assert_eq!(*status, 200);
            assert_eq!(body.len(), body_len);
            assert!(
                body.starts_with(path) && body.contains('t') == (path == "/two"),
                "{path}"
            );
        }
    }

    fn field_line() -> impl Strategy<Value = String> {
        ("[a-z]{1,8}", "[ -~]{0,16}").prop_map(|(name, value)| format!("X-{name}: {value}\r\n"))
    }

    fn chunk() -> impl Strategy<Value = String> {
        let extension = prop_oneof![
            Just(String::new()),
            "[a-z]{1,5}".prop_map(|n| format!(";{n}")),
            ("[a-z]{1,5}", "[a-z0-9]{1,5}").prop_map(|(n, v)| format!(" ; {n}={v}")),
            ("[a-z]{1,5}", "[ !#-\\[\\]-~]{0,8}").prop_map(|(n, v)| format!(";{n}=\"{v}\"")),
        ];
        ("[ -~\r\n]{1,40}", extension, any::<bool>()).prop_map(|(data, extension, upper)| {
            let size = if upper {
                format!("{:X}", data.len())
            } else {
                format!("{:04x}", data.len())
            };
            format!("{size}{extension}\r\n{data}\r\n")
        })
    }

    fn request() -> impl Strategy<Value = String> {
        let body = prop_oneof![
            Just((String::new(), String::new())),
            "[ -~\r\n]{0,60}".prop_map(|b| (format!("Content-Length: {}\r\n", b.len()), b)),
            (
                proptest::collection::vec(chunk(), 0..4),
                proptest::collection::vec(field_line(), 0..3)
            )
                .prop_map(|(chunks, trailers)| (
                    "Transfer-Encoding: chunked\r\n".to_string(),
                    format!("{}0\r\n{}\r\n", chunks.concat(), trailers.concat())
                )),
        ];
        (
            prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
            "/[a-z0-9/]{0,12}",
            proptest::collection::vec(field_line(), 0..4),
            body,
            any::<bool>(),
        )
            .prop_map(|(method, path, fields, (framing, body), blank)| {
                let blank = if blank { "\r\n" } else { "" };
                format!(
                    "{blank}{method} {path} HTTP/1.1\r\nHost: a\r\n{}{framing}\r\n{body}",
                    fields.concat()
                )
            })
    }

    proptest! {
        #[test]
        fn any_split_of_a_clean_pipelined_stream_passes_unchanged(
            requests in proptest::collection::vec(request(), 1..5),
            sizes in proptest::collection::vec(1_usize..64, 1..8),
            read_size in 1_usize..128,
        ) {
            let input = requests.concat().into_bytes();
            let seen = run_split(&input, &sizes, read_size);
            prop_assert_eq!(&seen.output, &input);
            prop_assert_eq!((seen.end, seen.verdict), (End::Eof, None));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_never_leak_unvalidated_bytes(
            prefix in prop_oneof![
                Just(String::new()),
                Just("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()),
                request(),
            ],
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            sizes in proptest::collection::vec(1_usize..64, 1..8),
            read_size in 1_usize..128,
        ) {
            let input = [prefix.as_bytes(), &noise].concat();
            let seen = run_split(&input, &sizes, read_size);
            // Splits and buffer sizes never change the outcome.
            prop_assert_eq!(&seen, &run_split(&input, &[usize::MAX], 4096));
            let released = match &seen.end {
                End::Eof => &seen.output[..],
                End::Parked => {
                    // Only a refused head parks the stream, and it leaves a verdict.
                    prop_assert!(seen.verdict.is_some());
                    let released = seen.output.strip_suffix(SYNTHETIC_REQUEST);
                    prop_assert!(released.is_some());
                    released.unwrap_or_default()
                }
                End::Failed(rejection) => {
                    prop_assert_eq!(Some(rejection), seen.verdict.as_ref());
                    &seen.output[..]
                }
            };
            prop_assert!(input.starts_with(released));
        }

        #[test]
        fn mutated_clean_streams_never_panic(
            requests in proptest::collection::vec(request(), 1..3),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut input = requests.concat().into_bytes();
            let at = at.index(input.len());
            input[at] = byte;
            let seen = run_split(&input, &[3], 7);
            prop_assert_eq!(&seen, &run_split(&input, &[usize::MAX], 4096));
        }
    }
}
