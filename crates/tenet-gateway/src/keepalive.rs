//! Idle HTTP/1.1 keep-alive connections hold almost no memory.
//!
//! hyper keeps an 8 KiB read buffer, an 8 KiB write buffer and its dispatcher state for as
//! long as a connection lives, busy or not, and has no setting to release them. Most
//! connections of a gateway are idle most of the time (a client waits between requests, a
//! pool keeps connections warm), so the gateway does not keep hyper around while nothing
//! happens: when hyper asks for the next request head, the framing guard has nothing
//! buffered, every response has been written and flushed ([`Activity`]), and no byte is
//! waiting on the socket, the guard ends hyper's read with end of file. hyper takes that for
//! a client that left between requests and hands the stream back without shutting it down
//! (`without_shutdown`); the connection then waits for the socket to become readable holding
//! only its TLS state, and a new hyper connection serves the next request. A connection
//! parks only once it has stayed idle for a short linger (`PARK_AFTER` in `conn.rs`), so that
//! a busy client's next request is read by the same hyper connection.
//!
//! The condition is exact, not a guess: a request head hyper has and the service has not seen
//! yet, or a response still being produced or written keeps the connection busy (an
//! [`InFlight`] mark moves from the service call into the response body, which hyper drops
//! once it has taken the body's last byte), and so does a write not yet flushed. hyper reads
//! once right after taking a response's last byte and before writing it out of its own
//! buffer, so the guard parks only on the second idle read in a row, after a flush. hyper
//! does not read again by itself once a response is out, so a reader that found the
//! connection busy is woken when the last response body is dropped, and one that waited for a
//! flush when the flush completes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::response::Body;

/// The requests of one HTTP/1.x connection that reached the service, and those whose
/// responses are not completely handed to hyper's writer yet; shared by the service and the
/// framing guard.
#[derive(Clone, Default)]
pub(crate) struct Activity(Arc<Counters>);

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// Response bodies handed to hyper and not yet dropped.
    answering: AtomicUsize,
    /// Of those, the ones whose last poll found them waiting for their upstream.
    awaiting_upstream: AtomicUsize,
    /// Polls of response bodies by hyper: it polls one only when the client can take more.
    pulls: AtomicU64,
    /// The reader that found the connection busy: woken when the last response is with
    /// hyper (hyper itself may not read again until the client sends something).
    waiting: Mutex<Option<Waker>>,
    /// HTTP/2 streams the client reset before their answer started, within
    /// [`PREMATURE_RESET`] of their start.
    premature_resets: AtomicU64,
    /// Told when premature resets pass the limit (see [`Activity::watch_reset`]).
    reset_flood: tokio::sync::Notify,
    /// Premature resets have passed the limit: new streams are refused without any work.
    flooding: AtomicBool,
    /// The connection was ended for them.
    reset_flooded: AtomicBool,
}

/// A stream reset by its client within this long of its start, before its answer started, is
/// reset prematurely.
pub(crate) const PREMATURE_RESET: std::time::Duration = std::time::Duration::from_secs(1);
/// Premature resets that, once they are more than half of a connection's streams, make a
/// reset flood (Envoy's default for the same check: half of its 500-stream minimum).
pub(crate) const PREMATURE_RESET_LIMIT: u64 = 250;

impl Activity {
    /// Mark a request as being answered until the returned mark is dropped.
    pub(crate) fn begin(&self) -> InFlight {
        self.0.started.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.0.clone())
    }

    /// Whether each of the first `heads` requests reached the service and has its whole
    /// response with hyper.
    pub(crate) fn is_idle(&self, heads: u64) -> bool {
        self.0.started.load(Ordering::Acquire) >= heads
            && self.0.in_flight.load(Ordering::Acquire) == 0
    }

    /// Whether any request of this connection has reached the service.
    pub(crate) fn any_started(&self) -> bool {
        self.started() > 0
    }

    /// How many requests of this connection have reached the service.
    pub(crate) fn started(&self) -> u64 {
        self.0.started.load(Ordering::Acquire)
    }

    /// How many times hyper has polled this connection's response bodies.
    pub(crate) fn pulls(&self) -> u64 {
        self.0.pulls.load(Ordering::Acquire)
    }

    /// Whether the client has taken none of its answers since [`Self::pulls`] was `pulls`:
    /// response bodies are with hyper, none was polled since, and none is waiting for its
    /// upstream (an upstream's silence is the upstream body's own idle limit to judge).
    /// hyper polls a body only when the client can take more (on HTTP/2, when the stream
    /// has flow-control window), so a client that keeps its windows shut, or stops reading,
    /// leaves its bodies unpolled.
    pub(crate) fn stalled_since(&self, pulls: u64) -> bool {
        self.0.answering.load(Ordering::Acquire) > 0
            && self.0.awaiting_upstream.load(Ordering::Acquire) == 0
            && self.pulls() == pulls
    }

    /// Watch an HTTP/2 request for a premature reset: the returned guard, dropped before
    /// [`ResetWatch::answered`] within [`PREMATURE_RESET`] of now, counts one. hyper drops a
    /// stream's service future when the client resets the stream, so this sees what h2's own
    /// rapid-reset limit does not: a client that waits until its streams are accepted before
    /// resetting them, so that each costs a policy decision, an event and an upstream request
    /// that is then cancelled.
    pub(crate) fn watch_reset(&self) -> ResetWatch {
        ResetWatch {
            counters: Some(self.0.clone()),
            started: tokio::time::Instant::now(),
        }
    }

    /// Wait until premature resets pass the limit: at least [`PREMATURE_RESET_LIMIT`] of
    /// them, and more than half of the requests started.
    pub(crate) async fn reset_flood(&self) {
        self.0.reset_flood.notified().await;
    }

    /// Whether premature resets have passed the limit: a new stream is then refused at once.
    pub(crate) fn is_flooding(&self) -> bool {
        self.0.flooding.load(Ordering::Acquire)
    }

    /// Mark the connection as ended for a reset flood.
    pub(crate) fn end_for_reset_flood(&self) {
        self.0.reset_flooded.store(true, Ordering::Release);
    }

    /// Whether the connection was ended for a reset flood, and how many of how many streams
    /// were reset prematurely.
    pub(crate) fn reset_flooded(&self) -> Option<(u64, u64)> {
        self.0.reset_flooded.load(Ordering::Acquire).then(|| {
            (
                self.0.premature_resets.load(Ordering::Acquire),
                self.started(),
            )
        })
    }

    /// Wake `waker` when the last response in flight is with hyper.
    pub(crate) fn wake_when_answered(&self, waker: &Waker) {
        let mut waiting = self
            .0
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match waiting.as_mut() {
            Some(w) if w.will_wake(waker) => {}
            _ => *waiting = Some(waker.clone()),
        }
    }
}

/// An HTTP/2 request whose answer has not started (see [`Activity::watch_reset`]).
pub(crate) struct ResetWatch {
    counters: Option<Arc<Counters>>,
    started: tokio::time::Instant,
}

impl ResetWatch {
    /// The answer started: the stream can no longer be reset prematurely.
    pub(crate) fn answered(mut self) {
        self.counters = None;
    }
}

impl Drop for ResetWatch {
    fn drop(&mut self) {
        let Some(counters) = self.counters.take() else {
            return;
        };
        if self.started.elapsed() >= PREMATURE_RESET {
            return;
        }
        let premature = counters
            .premature_resets
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let started = counters.started.load(Ordering::Acquire);
        if premature >= PREMATURE_RESET_LIMIT && premature.saturating_mul(2) > started {
            counters.flooding.store(true, Ordering::Release);
            counters.reset_flood.notify_one();
        }
    }
}

/// A request being answered: lives in the service future, then in the response body.
pub(crate) struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiting = self
                .0
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waiting {
                waker.wake();
            }
        }
    }
}

/// The most of an answer handed to hyper per poll. hyper's HTTP/2 server buffers a whole
/// data frame however little window the stream has, and polls the body again only once that
/// frame has gone out, so a poll stands for at most this much taken by the client (an
/// upstream's read can bring hundreds of kilobytes at once).
const MAX_PIECE: usize = 16 * 1024;
/// The most of an HTTP/2 answer handed to hyper per poll once the stream is slow (its last
/// piece took more than [`SLOW_POLL`]). The streams of one connection share its bandwidth: at
/// 2 KiB a stream is polled at least once a minute down to about 35 B/s of it, two hundred
/// streams on a 7 KB/s link, while a fast stream keeps the 16 KiB pieces that cost a third
/// less CPU per byte than 4 KiB ones.
const SLOW_PIECE: usize = 2 * 1024;
/// Time between two polls of an HTTP/2 answer past which its stream counts as slow.
const SLOW_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A response body that keeps its request marked in flight until hyper drops it, counts
/// hyper's polls of it (see [`Activity::stalled_since`]), and hands its data over in pieces
/// of at most [`MAX_PIECE`] ([`SLOW_PIECE`] on a slow HTTP/2 stream).
pub(crate) struct TrackedBody {
    body: Pieces,
    in_flight: InFlight,
    /// The last poll found the body waiting for its upstream.
    awaiting_upstream: bool,
}

/// An answer body handed over in pieces.
struct Pieces {
    body: Body,
    /// The part of a data frame not handed over yet.
    rest: Bytes,
    /// For an HTTP/2 answer: when hyper last polled it (pieces shrink on a slow stream).
    last_poll: Option<tokio::time::Instant>,
}

impl Pieces {
    fn new(body: Body, http2: bool) -> Self {
        Self {
            body,
            rest: Bytes::new(),
            last_poll: http2.then(tokio::time::Instant::now),
        }
    }

    /// The most to hand over at this poll.
    fn piece_size(&mut self) -> usize {
        let Some(last) = self.last_poll.as_mut() else {
            return MAX_PIECE;
        };
        let now = tokio::time::Instant::now();
        let slow = now.duration_since(*last) > SLOW_POLL;
        *last = now;
        if slow { SLOW_PIECE } else { MAX_PIECE }
    }

    /// The next piece: of the data frame being cut, or the body's next frame, cut.
    fn poll_piece(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::response::BoxError>>> {
        let max = self.piece_size();
        if !self.rest.is_empty() {
            let piece = self.rest.split_to(self.rest.len().min(max));
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) if data.len() > max => {
                    self.rest = data.split_off(max);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        if self.rest.is_empty() {
            return inner;
        }
        let rest = u64::try_from(self.rest.len()).unwrap_or(u64::MAX);
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

impl TrackedBody {
    /// An HTTP/1.x answer body.
    pub(crate) fn new(body: Body, in_flight: InFlight) -> Self {
        Self::with_pieces(Pieces::new(body, false), in_flight)
    }

    /// An HTTP/2 answer body: its pieces shrink once its stream is slow.
    pub(crate) fn http2(body: Body, in_flight: InFlight) -> Self {
        Self::with_pieces(Pieces::new(body, true), in_flight)
    }

    fn with_pieces(body: Pieces, in_flight: InFlight) -> Self {
        in_flight.0.answering.fetch_add(1, Ordering::AcqRel);
        Self {
            body,
            in_flight,
            awaiting_upstream: false,
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let counters = &self.in_flight.0;
        if self.awaiting_upstream {
            counters.awaiting_upstream.fetch_sub(1, Ordering::AcqRel);
        }
        counters.answering.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = crate::response::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let counters = &this.in_flight.0;
        counters.pulls.fetch_add(1, Ordering::AcqRel);
        let polled = this.body.poll_piece(cx);
        if polled.is_pending() != this.awaiting_upstream {
            this.awaiting_upstream = polled.is_pending();
            if this.awaiting_upstream {
                counters.awaiting_upstream.fetch_add(1, Ordering::AcqRel);
            } else {
                counters.awaiting_upstream.fetch_sub(1, Ordering::AcqRel);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::response::full;

    #[tokio::test]
    async fn large_data_frames_are_handed_over_in_pieces() {
        use http_body_util::BodyExt;
        let activity = Activity::default();
        let mut body = TrackedBody::new(full(vec![7u8; 40 * 1024]), activity.begin());
        assert_eq!(body.size_hint().exact(), Some(40 * 1024));
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            pieces.push(frame.unwrap().into_data().unwrap().len());
            if !body.is_end_stream() {
                let left = 40 * 1024 - pieces.iter().sum::<usize>();
                assert_eq!(body.size_hint().exact(), Some(left as u64));
            }
        }
        assert_eq!(pieces, [16 * 1024, 16 * 1024, 8 * 1024]);
        assert_eq!(activity.pulls(), 4, "three pieces and the end");
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_answer_taken_slowly_is_handed_over_in_small_pieces() {
        use http_body_util::BodyExt;
        let activity = Activity::default();
        let mut body = TrackedBody::http2(full(vec![7u8; 64 * 1024]), activity.begin());
        let mut pieces = Vec::new();
        // Taken at once, then with more than a second between two polls, then at once again.
        for gap in [0, 0, 2, 2, 0, 0] {
            tokio::time::sleep(Duration::from_secs(gap)).await;
            let frame = body.frame().await.unwrap().unwrap();
            pieces.push(frame.into_data().unwrap().len());
        }
        assert_eq!(
            pieces,
            [
                16 * 1024,
                16 * 1024,
                2 * 1024,
                2 * 1024,
                16 * 1024,
                12 * 1024
            ]
        );
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn a_request_is_in_flight_until_its_response_body_is_dropped() {
        let activity = Activity::default();
        assert!(activity.is_idle(0));
        assert!(
            !activity.is_idle(1),
            "a head handed to hyper, not yet at the service"
        );
        let first = activity.begin();
        let second = activity.begin();
        assert!(!activity.is_idle(2));
        let body = TrackedBody::new(full("ok"), first);
        drop(second);
        assert!(
            !activity.is_idle(2),
            "the first response is still with hyper"
        );
        assert_eq!(body.size_hint().exact(), Some(2));
        drop(body);
        assert!(activity.is_idle(2));
        assert!(!activity.is_idle(3));
    }
}
