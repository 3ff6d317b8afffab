//! Sending a request to an upstream again: its head, kept aside, and its body, recorded as it
//! goes out.
//!
//! A request may go out a second time only when the first try certainly did nothing, or when
//! doing it twice is harmless: an HTTP/2 upstream refused the stream unprocessed (`GOAWAY`
//! naming a lower last stream, or `RST_STREAM` with `REFUSED_STREAM`, RFC 9113 section 8.7),
//! or a reused connection failed under an idempotent request (RFC 9110 section 9.2.2). The body
//! is passed on as it arrives, never held back for the sake of a replay; a copy of up to
//! [`REPLAY_LIMIT`] bytes of it is kept, and only until the exchange is over: once the
//! upstream answered, nothing is kept. A longer body is no longer kept once past the limit,
//! and its request cannot be sent again.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::forward::RequestBody;
use crate::request_body::{BodyError, ClientBody, ForwardedBody};

/// How many bytes of a request body are kept for sending the request again, each frame
/// counted with [`FRAME_COST`] more.
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;
/// What keeping a frame costs beside its bytes: a body of many tiny (or empty) frames is not
/// kept past a thousand or so of them.
const FRAME_COST: usize = 64;

/// The bytes of a trailer section's names and values.
fn trailers_size(trailers: &http::HeaderMap) -> usize {
    trailers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// The head of a request that may go out again, and its body's recording.
pub(crate) struct Replay {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    /// `None` for a request without a body.
    body: Option<Arc<Mutex<Recording>>>,
}

impl Replay {
    /// The head of `request` and a handle on its body's recording, or `None` when its body is
    /// not recorded (nor empty).
    pub(crate) fn of(request: &http::Request<RequestBody>) -> Option<Self> {
        let body = match request.body() {
            RequestBody::Recorded(tape) => Some(tape.recording.clone()),
            body if body.is_end_stream() => None,
            RequestBody::Client(_) | RequestBody::Empty => return None,
        };
        Some(Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            body,
        })
    }

    /// Whether the request may be repeated though it may have been processed.
    pub(crate) fn is_idempotent(&self) -> bool {
        self.method.is_idempotent()
    }

    /// The request once more, its body played back from the start; `None` when the body was
    /// too long to keep.
    pub(crate) fn request(self) -> Option<http::Request<RequestBody>> {
        let body = match self.body {
            None => RequestBody::Empty,
            Some(recording) => RequestBody::Recorded(Tape::rewind(recording)?),
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        Some(request)
    }
}

/// Dropped when a request's exchange is over (answered, or failed for good): from then on
/// its body is never sent again, so nothing more is kept, and what was kept is let go once
/// the send in progress has played it. A long upload or a gRPC stream would otherwise hold
/// up to [`REPLAY_LIMIT`] for its whole life.
pub(crate) struct Forget<B: ClientBody = Incoming>(Arc<Mutex<Recording<B>>>);

impl<B: ClientBody> Drop for Forget<B> {
    fn drop(&mut self) {
        let mut recording = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recording.keeping = false;
        // A tape sent again may still be playing what was kept: it lets it go at its end.
        recording.let_go_if_played();
    }
}

/// A kept frame of a request body.
enum Kept {
    Data(Bytes),
    Trailers(http::HeaderMap),
}

impl Kept {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Self::Data(data) => Frame::data(data.clone()),
            Self::Trailers(trailers) => Frame::trailers(trailers.clone()),
        }
    }
}

/// A request body and what has been read of it so far.
pub(crate) struct Recording<B: ClientBody = Incoming> {
    source: ForwardedBody<B>,
    /// Every frame read from `source`, while they fit in [`REPLAY_LIMIT`].
    kept: Vec<Kept>,
    /// The data bytes in `kept`, each frame counted with [`FRAME_COST`] more.
    kept_bytes: usize,
    /// New frames are kept, and the body may be played again from its start: not once the
    /// body went past [`REPLAY_LIMIT`], nor once its exchange is over (see [`Forget`]).
    keeping: bool,
    /// How many kept frames the reading tape has played.
    played: usize,
    /// `source` ended.
    ended: bool,
    /// Which tape reads: each replay starts a new one, and an older one still held by a failed
    /// exchange gets an error rather than the body.
    generation: u32,
}

impl<B: ClientBody> Recording<B> {
    /// Let the kept frames go once nothing will play them: no new tape (not keeping) and the
    /// reading one past them.
    fn let_go_if_played(&mut self) {
        if !self.keeping && self.played >= self.kept.len() {
            self.kept = Vec::new();
            self.played = 0;
        }
    }
}

/// The body of a request as it goes upstream: the kept frames from its position, then what
/// the client sends next (kept in turn).
pub(crate) struct Tape<B: ClientBody = Incoming> {
    recording: Arc<Mutex<Recording<B>>>,
    /// The recording's generation this tape plays; only the latest reads.
    generation: u32,
}

impl<B: ClientBody> Tape<B> {
    pub(crate) fn new(source: ForwardedBody<B>) -> Self {
        Self {
            recording: Arc::new(Mutex::new(Recording {
                source,
                kept: Vec::new(),
                kept_bytes: 0,
                keeping: true,
                played: 0,
                ended: false,
                generation: 0,
            })),
            generation: 0,
        }
    }

    /// A handle that stops `self`'s recording from keeping frames once dropped.
    pub(crate) fn forget_when_dropped(&self) -> Forget<B> {
        Forget(self.recording.clone())
    }

    /// A tape from the start of `recording`, which earlier tapes stop reading; `None` when
    /// not all of the body read so far was kept.
    fn rewind(recording: Arc<Mutex<Recording<B>>>) -> Option<Self> {
        let generation = {
            let mut kept = recording.lock().unwrap_or_else(PoisonError::into_inner);
            if !kept.keeping {
                return None;
            }
            kept.generation = kept.generation.wrapping_add(1);
            kept.played = 0;
            // The reading tape sets it again at the body's end: a connection may carry
            // another request only once this send of the body is whole.
            kept.source.watch_ref().set_sent(false);
            kept.generation
        };
        Some(Self {
            recording,
            generation,
        })
    }
}

impl<B: ClientBody> HttpBody for Tape<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let mut recording = this
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recording.generation != this.generation {
            return Poll::Ready(Some(Err(BodyError::Replaced)));
        }
        if let Some(kept) = recording.kept.get(recording.played) {
            let frame = kept.frame();
            recording.played += 1;
            recording.let_go_if_played();
            return Poll::Ready(Some(Ok(frame)));
        }
        if recording.ended {
            recording.source.watch_ref().set_sent(true);
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut recording.source).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                recording.ended = true;
                recording.source.watch_ref().set_sent(true);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if recording.keeping {
            let cost = frame
                .data_ref()
                .map_or_else(|| frame.trailers_ref().map_or(0, trailers_size), Bytes::len);
            recording.kept_bytes = recording
                .kept_bytes
                .saturating_add(cost.saturating_add(FRAME_COST));
            if recording.kept_bytes > REPLAY_LIMIT {
                // Past the limit: nothing is kept, and the body cannot be played again.
                recording.keeping = false;
                recording.let_go_if_played();
            } else {
                // A copy: the frame points into a read buffer that may be much larger than
                // the frame, which a kept slice would hold whole.
                let kept = match frame.data_ref() {
                    Some(data) => Some(Kept::Data(Bytes::copy_from_slice(data))),
                    None => frame.trailers_ref().cloned().map(Kept::Trailers),
                };
                if let Some(kept) = kept {
                    recording.kept.push(kept);
                    recording.played += 1;
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let recording = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recording.generation == self.generation
            && recording.played >= recording.kept.len()
            && (recording.ended || recording.source.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let recording = self
            .recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let unplayed: u64 = recording
            .kept
            .get(recording.played..)
            .unwrap_or_default()
            .iter()
            .map(|kept| match kept {
                Kept::Data(data) => data.len() as u64,
                Kept::Trailers(_) => 0,
            })
            .sum();
        if recording.ended {
            return SizeHint::with_exact(unplayed);
        }
        let rest = recording.source.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(unplayed));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(unplayed));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;

    /// A client's body: its frames, all there at once.
    struct Sent(VecDeque<Frame<Bytes>>);

    impl HttpBody for Sent {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    fn tape(pieces: &[&'static [u8]], trailers: bool) -> Tape<Sent> {
        let mut frames: VecDeque<_> = pieces
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p)))
            .collect();
        if trailers {
            let mut map = http::HeaderMap::new();
            map.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push_back(Frame::trailers(map));
        }
        let body = ForwardedBody::new(Sent(frames), Duration::from_secs(5), false, "r".into());
        Tape::new(body)
    }

    async fn next(tape: &mut Tape<Sent>) -> Option<Frame<Bytes>> {
        tape.frame().await.map(|frame| frame.unwrap())
    }

    #[tokio::test]
    async fn a_rewound_tape_plays_what_was_read_then_what_comes_next() {
        let mut first = tape(&[b"one", b"two", b"three"], true);
        assert_eq!(next(&mut first).await.unwrap().into_data().unwrap(), "one");
        assert_eq!(next(&mut first).await.unwrap().into_data().unwrap(), "two");
        let second = Tape::rewind(first.recording.clone()).unwrap();
        assert_eq!(second.size_hint().lower(), 6);
        // The earlier send no longer gets the body.
        assert!(matches!(
            first.frame().await,
            Some(Err(BodyError::Replaced))
        ));
        let played = second.collect().await.unwrap();
        let trailers = played.trailers().cloned().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(played.to_bytes(), "onetwothree");
    }

    #[tokio::test]
    async fn a_tape_read_to_its_end_plays_the_whole_body_again() {
        let mut first = tape(&[b"whole", b" body"], false);
        while next(&mut first).await.is_some() {}
        assert!(first.is_end_stream());
        let recording = first.recording.clone();
        let sent = || recording.lock().unwrap().source.watch_ref().is_sent();
        assert!(sent());
        let second = Tape::rewind(first.recording.clone()).unwrap();
        // Sent again: not whole until the second send reaches its end.
        assert!(!sent());
        assert!(!second.is_end_stream());
        assert_eq!(second.size_hint().exact(), Some(10));
        let replay = second.collect().await.unwrap().to_bytes();
        assert_eq!(replay, "whole body");
        assert!(sent());
    }

    #[tokio::test]
    async fn a_body_longer_than_the_limit_is_passed_on_but_not_kept() {
        static BIG: [u8; REPLAY_LIMIT / 2 + 1] = [7; REPLAY_LIMIT / 2 + 1];
        let mut first = tape(&[&BIG, &BIG, b"tail"], false);
        let mut total = 0;
        while let Some(frame) = next(&mut first).await {
            total += frame.into_data().unwrap().len();
        }
        assert_eq!(total, BIG.len() * 2 + 4);
        assert!(first.recording.lock().unwrap().kept.is_empty());
        assert!(Tape::rewind(first.recording.clone()).is_none());
    }

    #[tokio::test]
    async fn a_body_exactly_at_the_limit_is_kept() {
        static HALF: [u8; REPLAY_LIMIT / 2 - FRAME_COST] = [1; REPLAY_LIMIT / 2 - FRAME_COST];
        let mut first = tape(&[&HALF, &HALF], false);
        while next(&mut first).await.is_some() {}
        let second = Tape::rewind(first.recording.clone()).unwrap();
        assert_eq!(
            second.collect().await.unwrap().to_bytes().len(),
            HALF.len() * 2
        );
    }

    #[tokio::test]
    async fn a_body_of_many_empty_frames_is_not_kept() {
        let empties = vec![&b""[..]; REPLAY_LIMIT / FRAME_COST + 1];
        let mut first = tape(&empties, false);
        let mut frames = 0;
        while next(&mut first).await.is_some() {
            frames += 1;
        }
        assert_eq!(frames, empties.len());
        assert!(first.recording.lock().unwrap().kept.is_empty());
        assert!(Tape::rewind(first.recording.clone()).is_none());
    }

    #[tokio::test]
    async fn once_the_exchange_is_over_nothing_is_kept_and_the_body_still_flows() {
        let mut tape = tape(&[b"one", b"two", b"three"], false);
        let forget = tape.forget_when_dropped();
        assert_eq!(next(&mut tape).await.unwrap().into_data().unwrap(), "one");
        drop(forget);
        assert!(tape.recording.lock().unwrap().kept.is_empty());
        assert!(Tape::rewind(tape.recording.clone()).is_none());
        let recording = tape.recording.clone();
        let rest = tape.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "twothree");
        assert!(recording.lock().unwrap().kept.is_empty());
    }

    #[tokio::test]
    async fn a_tape_sent_again_plays_all_that_was_kept_though_the_exchange_ends_meanwhile() {
        let mut first = tape(&[b"one", b"two", b"three", b"four"], false);
        let forget = first.forget_when_dropped();
        for _ in 0..3 {
            next(&mut first).await.unwrap();
        }
        let mut second = Tape::rewind(first.recording.clone()).unwrap();
        assert_eq!(next(&mut second).await.unwrap().into_data().unwrap(), "one");
        // The answer comes while the second send has played one kept frame of three.
        drop(forget);
        assert!(!second.is_end_stream());
        assert_eq!(second.size_hint().lower(), 8);
        let recording = second.recording.clone();
        let rest = second.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "twothreefour");
        assert!(recording.lock().unwrap().kept.is_empty());
    }
}
