//! An append-only JSON-lines event file with group commit.
//!
//! A dedicated writer thread takes every event queued since its last write, writes them in
//! one `write`, optionally syncs, and only then acknowledges each producer. Producers on the
//! request path therefore wait for one batched write, not one write each.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Event, EventSink, RecordFuture, SinkError};

/// When the writer forces data to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Write to the OS only: survives a process crash, not a power loss.
    Never,
    /// `fdatasync` after every batch before acknowledging: survives power loss.
    EveryBatch,
    /// `fdatasync` at most this often; acknowledged events may be lost on power loss.
    Interval(Duration),
}

/// Settings for [`JsonlSink`].
#[derive(Debug, Clone)]
pub struct JsonlSinkOptions {
    /// The file to append to (created if absent).
    pub path: PathBuf,
    /// When to sync.
    pub sync: SyncPolicy,
    /// At most this many events per write.
    pub max_batch: usize,
    /// Queue depth before producers wait.
    pub queue: usize,
}

impl JsonlSinkOptions {
    /// Defaults: sync every batch, batches of up to 4,096 events.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: SyncPolicy::EveryBatch,
            max_batch: 4096,
            queue: 65_536,
        }
    }
}

type Ack = oneshot::Sender<Result<(), SinkError>>;

/// Appends events as JSON lines, one event per line, in the order they were acknowledged.
#[derive(Clone)]
pub struct JsonlSink {
    tx: mpsc::Sender<(Event, Ack)>,
    live: broadcast::Sender<Event>,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink").finish_non_exhaustive()
    }
}

impl JsonlSink {
    /// Open (or create) the file and start the writer thread. The thread ends when every
    /// clone of the sink has been dropped and the queue is drained.
    pub fn open(options: JsonlSinkOptions) -> Result<Self, SinkError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.path)
            .map_err(|e| SinkError::Io(format!("opening {}: {e}", options.path.display())))?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let (live, _) = broadcast::channel(1024);
        let writer = Writer {
            file,
            options,
            live: live.clone(),
            last_sync: Instant::now(),
        };
        std::thread::Builder::new()
            .name("tenet-event-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| SinkError::Io(format!("starting the writer thread: {e}")))?;
        Ok(Self { tx, live })
    }

    /// A live feed of events as they are stored (lagging receivers lose the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }
}

impl EventSink for JsonlSink {
    fn record(&self, event: Event) -> RecordFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            tx.send((event, ack)).await.map_err(|_| SinkError::Closed)?;
            done.await.map_err(|_| SinkError::Closed)?
        })
    }
}

struct Writer {
    file: File,
    options: JsonlSinkOptions,
    live: broadcast::Sender<Event>,
    last_sync: Instant,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<(Event, Ack)>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.options.max_batch {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            for (event, ack) in batch.drain(..) {
                if result.is_ok() {
                    // Nobody listening is fine.
                    let _ = self.live.send(event);
                }
                let _ = ack.send(result.clone().map_err(SinkError::Io));
            }
        }
        let _ = self.file.sync_data();
    }

    fn write_batch(&mut self, batch: &[(Event, Ack)]) -> Result<(), String> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for (event, _) in batch {
            serde_json::to_writer(&mut buf, event).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        let path = self.options.path.display();
        self.file
            .write_all(&buf)
            .map_err(|e| format!("writing {path}: {e}"))?;
        let sync_now = match self.options.sync {
            SyncPolicy::Never => false,
            SyncPolicy::EveryBatch => true,
            SyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if sync_now {
            self.file
                .sync_data()
                .map_err(|e| format!("syncing {path}: {e}"))?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdminEvent, EventKind};
    use time::OffsetDateTime;

    fn admin(n: usize) -> Event {
        Event::new(
            OffsetDateTime::now_utc(),
            EventKind::Admin(AdminEvent {
                actor: "test".into(),
                operation: "op".into(),
                success: true,
                detail: n.to_string(),
            }),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_event_is_in_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = JsonlSink::open(JsonlSinkOptions::new(&path)).unwrap();
        let mut tasks = Vec::new();
        for n in 0..500 {
            let s = sink.clone();
            tasks.push(tokio::spawn(async move { s.record(admin(n)).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen: Vec<usize> = text
            .lines()
            .map(|l| match serde_json::from_str::<Event>(l).unwrap().kind {
                EventKind::Admin(a) => a.detail.parse().unwrap(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn unopenable_path_names_the_file() {
        let err = JsonlSink::open(JsonlSinkOptions::new("/nonexistent-dir/x/events.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent-dir/x/events.jsonl"), "{err}");
    }
}
