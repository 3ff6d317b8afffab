//! [`LedgerSink`]: the ledger behind the `EventSink` interface.
//!
//! Events are appended in batches (one write per batch) and each producer is acknowledged with
//! its entry's index only once the batch is written. Who writes depends on the sync policy:
//!
//! - Under [`SyncPolicy::Interval`] and [`SyncPolicy::Never`] no append waits for the disk, so
//!   appends happen on the producers' threads (group commit without a hand-off). A producer
//!   that queues an event while nobody is committing makes a batch: on a tokio runtime it
//!   spawns the commit as a task, which the scheduler runs after the tasks already queued, so
//!   the events those tasks queue meanwhile join the batch (on the gateway's single-threaded
//!   runtime under full load, about 19 events per write instead of one, and two `pwrite`s
//!   saved per request); outside a runtime it commits at once. The commit takes the writer's
//!   lock, then everything queued by then (including the events of producers on other threads
//!   that arrived while the previous batch was being written), appends it as one batch and
//!   acknowledges each producer. Nothing waits for new input: a `yield_now` to gather the
//!   other tasks' events held each request for a whole scheduler pass, the I/O driver's turn
//!   included (0.25 ms at p50, 0.73 ms at p99). The writer thread also commits anything left
//!   queued on each of its ticks (a commit task that never ran because its runtime stopped).
//!   Before this, every event crossed to a writer thread and back (two wake-ups per batch).
//! - Under [`SyncPolicy::EveryBatch`] each batch is synced before it is acknowledged, which
//!   must not block a producer's thread: events go to the writer thread, which takes every
//!   event queued since its last write and appends and syncs them as one batch.
//!
//! The writer thread also keeps the clock: once the oldest unsigned entry is
//! `checkpoint_every` old (by the clock it is given), it fixes the tree's size and root and
//! hands the checkpoint to a second thread, which syncs what it covers, signs it and stores it
//! while appends go on (so the syncs of a checkpoint never hold up an acknowledgement). Batch
//! commits run the same checks after each batch. One checkpoint is in flight at a time; a
//! final one is signed on shutdown. Under [`SyncPolicy::Interval`] the periodic syncs go to
//! that second thread too, and under every policy but [`SyncPolicy::EveryBatch`] so do the
//! syncs of a new segment's header and directory entry ([`Ledger::defer_segment_syncs`]); the
//! producer whose batch fills a segment still syncs the rest of it, so that a power loss can
//! only cut the newest segment.
//!
//! A failed append fails that batch's events; a failed checkpoint stops the sink, because a
//! log that cannot be anchored cannot be proven complete (fail closed).
//!
//! Opening a ledger reads only its last segment and the tree file, so damage further back
//! (an edited, deleted or moved record, a removed segment) would go unnoticed while the tree
//! file still matches what was signed. Under [`SinkOptions::verify_history`] every entry present
//! at start is verified against the checkpoints: before the sink starts (which it then refuses)
//! for ledgers of up to [`SinkOptions::verify_inline_up_to`] entries, otherwise on a third
//! thread while the sink takes events, stopping the sink if the history was tampered with
//! (fail closed: the gateway then denies).

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tenet_event::{Event, EventSink, RecordFuture, SinkError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, oneshot};

use crate::checkpoint::{CheckpointSigner, SignedCheckpoint};
use crate::clock::Clock;
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::ledger::{CheckpointJob, CheckpointStart, Ledger, SyncJob, SyncPolicy};
use crate::note::VerifierKey;
use crate::verify::{Verdict, VerifyOptions, verify_with};

/// While a checkpoint or sync is in flight, the writer looks for its result at least this
/// often.
const CHECKPOINT_POLL: Duration = Duration::from_millis(5);
/// Why the sink stops when the checkpoint thread is gone.
const CHECKPOINTER_STOPPED: &str = "signing a checkpoint: the checkpoint thread stopped";

/// Settings for [`LedgerSink`].
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// At most this many events per batch.
    pub max_batch: usize,
    /// Events waiting for the writer before producers wait.
    pub queue: usize,
    /// Sign a checkpoint when the oldest unsigned entry is this old.
    pub checkpoint_every: Duration,
    /// While idle, the writer looks at the clock at least this often.
    pub idle_wake: Duration,
    /// Verify the entries present at start against the checkpoints signed by the signer's key;
    /// a sink over a tampered history does not start, or stops once that is found.
    pub verify_history: bool,
    /// Ledgers of up to this many entries are verified before the sink starts; larger ones on
    /// a thread of their own while it runs, so that a start does not wait for them.
    pub verify_inline_up_to: u64,
}

impl Default for SinkOptions {
    /// Batches of up to 4,096 events, a queue of 65,536, a checkpoint every second, the
    /// history verified at start (before starting up to 1,000,000 entries: about half a
    /// second).
    fn default() -> Self {
        Self {
            max_batch: 4096,
            queue: 65_536,
            checkpoint_every: Duration::from_secs(1),
            idle_wake: Duration::from_millis(100),
            verify_history: true,
            verify_inline_up_to: 1_000_000,
        }
    }
}

/// An event as stored, with its ledger index.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The entry index.
    pub index: u64,
    /// The event.
    pub event: Event,
}

/// What the writer has done so far.
#[derive(Debug, Clone, Default)]
pub struct SinkStatus {
    /// Entries in the ledger.
    pub size: u64,
    /// The newest checkpoint signed.
    pub latest_checkpoint: Option<SignedCheckpoint>,
    /// Entries known to be on stable storage: synced with their batch (`EveryBatch`), by an
    /// interval sync or by a checkpoint. At start, those of the newest checkpoint.
    pub durable: u64,
    /// Why the sink stopped, if it did.
    pub failure: Option<String>,
    /// The verification of the entries present at start ([`SinkOptions::verify_history`]).
    pub history: HistoryCheck,
}

/// Where the verification of the entries present at start stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HistoryCheck {
    /// Not asked for.
    #[default]
    Off,
    /// Running over this many entries.
    Running {
        /// Entries being verified.
        entries: u64,
    },
    /// Every entry verified; `anchored` of them are covered by a signed checkpoint.
    Verified {
        /// Entries verified.
        entries: u64,
        /// Entries a checkpoint covers.
        anchored: u64,
    },
    /// The history was tampered with (the first finding); the sink stopped.
    Tampered(String),
    /// The ledger could not be read to verify it; the sink stopped.
    Failed(String),
}

/// Work for the second thread: a checkpoint, or a sync of the records under the interval
/// policy.
enum Job {
    Checkpoint(CheckpointJob),
    Sync(SyncJob),
    /// Mark the clean stop in the signer's state, after the final checkpoint.
    MarkStopped,
}

/// The second thread's result for a [`Job`].
enum Done {
    Checkpoint(Result<SignedCheckpoint, LedgerError>),
    Sync(Result<u64, LedgerError>),
    Stopped(Result<(), LedgerError>),
}

type Ack = oneshot::Sender<Result<u64, SinkError>>;
type ShutdownReply = oneshot::Sender<Result<Option<SignedCheckpoint>, SinkError>>;

enum Msg {
    Event {
        event: Box<Event>,
        bytes: Vec<u8>,
        ack: Ack,
        _permit: OwnedSemaphorePermit,
    },
    Shutdown(ShutdownReply),
    /// Stop taking events (the history check failed).
    Fail(String),
}

/// An event waiting for its batch, with its producer's acknowledgement.
type Queued = (Box<Event>, Vec<u8>, Ack);

/// Events queued for the next inline batch.
#[derive(Default)]
struct Queue {
    items: Vec<Queued>,
    /// A commit of what is queued is under way or spawned.
    leader: bool,
    /// The sink is stopping: nothing more is queued.
    closed: bool,
}

/// What producers share when they append on their own threads (see the module docs).
struct Inline {
    writer: Arc<Mutex<Writer>>,
    queue: Mutex<Queue>,
}

impl Inline {
    /// Queues one event; returns whether this producer is to commit the queue.
    fn enqueue(&self, item: Queued) -> Result<bool, SinkError> {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return Err(SinkError::Closed);
        }
        queue.items.push(item);
        Ok(!std::mem::replace(&mut queue.leader, true))
    }

    /// Appends everything queued as one batch.
    fn flush(&self) {
        lock(&self.writer).flush_queue(&self.queue, false);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The ledger as an [`EventSink`]. Clones share one writer.
#[derive(Clone)]
pub struct LedgerSink {
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    status: Arc<Mutex<SinkStatus>>,
    /// Set when producers append on their own threads (every policy but `EveryBatch`).
    inline: Option<Arc<Inline>>,
}

impl std::fmt::Debug for LedgerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerSink").finish_non_exhaustive()
    }
}

impl LedgerSink {
    /// Start the writer thread over `ledger`, signing with `signer`.
    pub fn start(
        mut ledger: Ledger,
        signer: CheckpointSigner,
        options: SinkOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SinkError> {
        let mut signer = signer;
        ledger
            .check_signed_history(signer.last_signed())
            .and_then(|()| ledger.check_nothing_appended_while_stopped(signer.stopped_at()))
            .map_err(|e| SinkError::Io(e.to_string()))?;
        let mut history = HistoryCheck::Off;
        let mut background = None;
        if options.verify_history {
            let job = HistoryJob {
                key: signer.verifier_key(),
                dir: ledger.dir().to_owned(),
                entries: ledger.size(),
                origin: signer.origin().to_owned(),
                signed: signer.last_signed(),
            };
            if ledger.size() <= options.verify_inline_up_to {
                history = job.verify();
                if let Some(failure) = history.failure() {
                    return Err(SinkError::Io(failure));
                }
            } else {
                history = HistoryCheck::Running {
                    entries: ledger.size(),
                };
                background = Some(job);
            }
        }
        // From here on entries past the last clean stop are this writer's (not before: a
        // start refused above keeps the mark for the next one).
        signer
            .mark_running()
            .map_err(|e| SinkError::Io(e.to_string()))?;
        let (tx, rx) = mpsc::channel();
        let (live, _) = broadcast::channel(16_384);
        let status = Arc::new(Mutex::new(SinkStatus {
            size: ledger.size(),
            latest_checkpoint: ledger.latest_checkpoint().cloned(),
            durable: ledger.latest_checkpoint().map_or(0, SignedCheckpoint::size),
            failure: None,
            history,
        }));
        let origin = signer.origin().to_owned();
        let sync_every = ledger.defer_interval_syncs();
        // Under every policy but `EveryBatch` producers append on their own threads (below)
        // and should wait for as few of a segment roll's syncs as is safe.
        ledger.defer_segment_syncs();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("tenet-ledger-checkpointer".into())
            .spawn(move || {
                let mut signer = signer;
                for job in job_rx {
                    let result = match job {
                        Job::Checkpoint(job) => Done::Checkpoint(job.complete(&mut signer)),
                        Job::Sync(job) => Done::Sync(job.complete()),
                        Job::MarkStopped => {
                            Done::Stopped(signer.mark_stopped().map_err(Into::into))
                        }
                    };
                    if done_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SinkError::Io(format!("starting the ledger checkpoint thread: {e}")))?;
        let inline_appends = ledger.sync_policy() != SyncPolicy::EveryBatch;
        let writer = Writer {
            ledger,
            origin,
            jobs,
            done,
            checkpoint_in_flight: false,
            sync_every,
            sync_in_flight: false,
            options: options.clone(),
            clock,
            live: live.clone(),
            status: Arc::clone(&status),
            unsigned_since: None,
            failure: None,
            transient_failures: 0,
        };
        let writer = Arc::new(Mutex::new(writer));
        let inline = inline_appends.then(|| {
            Arc::new(Inline {
                writer: Arc::clone(&writer),
                queue: Mutex::new(Queue::default()),
            })
        });
        let queue = inline.clone();
        std::thread::Builder::new()
            .name("tenet-ledger-writer".into())
            .spawn(move || run(&writer, queue.as_deref(), &rx))
            .map_err(|e| SinkError::Io(format!("starting the ledger writer thread: {e}")))?;
        if let Some(job) = background {
            job.spawn(Arc::clone(&status), tx.clone())?;
        }
        Ok(Self {
            tx,
            permits: Arc::new(Semaphore::new(options.queue.max(1))),
            live,
            status,
            inline,
        })
    }

    /// Record an event and return its entry index once it is stored.
    pub fn record_indexed(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<u64, SinkError>> + Send + 'static {
        let tx = self.tx.clone();
        let permits = Arc::clone(&self.permits);
        let inline = self.inline.clone();
        async move {
            let bytes = event.to_canonical_json();
            if bytes.is_empty() {
                return Err(SinkError::Encode(format!("event {}", event.id)));
            }
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| SinkError::Closed)?;
            let (ack, done) = oneshot::channel();
            match inline {
                Some(inline) => {
                    drop(permit);
                    if inline.enqueue((Box::new(event), bytes, ack))? {
                        match tokio::runtime::Handle::try_current() {
                            Ok(runtime) => {
                                drop(runtime.spawn(async move { inline.flush() }));
                            }
                            Err(_) => inline.flush(),
                        }
                    }
                }
                None => tx
                    .send(Msg::Event {
                        event: Box::new(event),
                        bytes,
                        ack,
                        _permit: permit,
                    })
                    .map_err(|_| SinkError::Closed)?,
            }
            done.await.map_err(|_| SinkError::Closed)?
        }
    }

    /// A live feed of events as they are stored (lagging receivers lose the oldest). Every
    /// subscriber shares each event: receiving it copies a pointer, not the event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.live.subscribe()
    }

    /// Size, newest checkpoint and failure, as of the last batch.
    pub fn status(&self) -> SinkStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Stop taking events, store those already queued, sign a final checkpoint and stop the
    /// writer. Returns the final checkpoint (none for a ledger that never had an entry).
    pub async fn shutdown(&self) -> Result<Option<SignedCheckpoint>, SinkError> {
        self.permits.close();
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Shutdown(reply))
            .map_err(|_| SinkError::Closed)?;
        done.await.map_err(|_| SinkError::Closed)?
    }
}

impl EventSink for LedgerSink {
    fn record(&self, event: Event) -> RecordFuture {
        let stored = self.record_indexed(event);
        Box::pin(async move { stored.await.map(|_| ()) })
    }
}

/// The verification of the entries present at start.
struct HistoryJob {
    key: VerifierKey,
    dir: PathBuf,
    entries: u64,
    origin: String,
    /// What the signer last signed (checked against the ledger when the sink started).
    signed: Option<(u64, Hash)>,
}

impl HistoryJob {
    /// Verify on a thread of its own; stop the sink (through `tx`) if the history is bad.
    fn spawn(self, status: Arc<Mutex<SinkStatus>>, tx: mpsc::Sender<Msg>) -> Result<(), SinkError> {
        std::thread::Builder::new()
            .name("tenet-ledger-history".into())
            .spawn(move || {
                let outcome = self.verify();
                let failure = outcome.failure();
                lock(&status).history = outcome;
                if let Some(failure) = failure {
                    // The writer may already have stopped; then nothing more is taken anyway.
                    let _ = tx.send(Msg::Fail(failure));
                }
            })
            .map(drop)
            .map_err(|e| SinkError::Io(format!("starting the ledger history check: {e}")))
    }

    fn verify(&self) -> HistoryCheck {
        let started = Instant::now();
        // The signer's record anchors everything it signed (the ledger was just checked to
        // hold it, and its checkpoint to be stored): checking every stored checkpoint's
        // signature too would make a start cost grow with the checkpoints, one a second.
        let options = VerifyOptions {
            origin: Some(self.origin.clone()),
            up_to: Some(self.entries),
            max_findings: 1,
            trusted_roots: self.signed.into_iter().collect(),
            stored_checkpoints: self.signed.is_none(),
            ..VerifyOptions::default()
        };
        let dir = self.dir.display().to_string();
        match verify_with(&self.dir, &self.key, &options) {
            Ok(report) if report.verdict == Verdict::Tampered => {
                let finding = report
                    .first_finding()
                    .map_or_else(|| "no finding named".to_owned(), ToString::to_string);
                tracing::error!(ledger = %dir, entries = self.entries, %finding,
                    "the ledger's history was tampered with; no events are taken (requests are \
                     denied) until it is restored");
                HistoryCheck::Tampered(finding)
            }
            Ok(report) => {
                let anchored = report.anchored_entries();
                tracing::info!(ledger = %dir, entries = report.entries, anchored,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ledger history verified");
                HistoryCheck::Verified {
                    entries: report.entries,
                    anchored,
                }
            }
            Err(e) => {
                tracing::error!(ledger = %dir, error = %e,
                    "the ledger's history could not be verified; no events are taken");
                HistoryCheck::Failed(e.to_string())
            }
        }
    }
}

impl HistoryCheck {
    /// Why the sink does not take events after this outcome, if it does not.
    fn failure(&self) -> Option<String> {
        match self {
            Self::Tampered(finding) => Some(format!(
                "the ledger's history was tampered with ({finding}); `tenet log verify` says more"
            )),
            Self::Failed(e) => Some(format!("verifying the ledger's history: {e}")),
            Self::Off | Self::Running { .. } | Self::Verified { .. } => None,
        }
    }
}

struct Writer {
    ledger: Ledger,
    /// The checkpoint signer's origin.
    origin: String,
    /// Checkpoints and syncs for the checkpoint thread, and its results.
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    /// A checkpoint was handed to the checkpoint thread and its result is not in yet.
    checkpoint_in_flight: bool,
    /// The sync interval when syncs are done on the checkpoint thread.
    sync_every: Option<Duration>,
    /// A sync was handed to the checkpoint thread and its result is not in yet.
    sync_in_flight: bool,
    options: SinkOptions,
    clock: Arc<dyn Clock>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    status: Arc<Mutex<SinkStatus>>,
    /// When the oldest entry not covered by a checkpoint was stored.
    unsigned_since: Option<Instant>,
    failure: Option<String>,
    /// Syncs and checkpoints that could not open a file for want of descriptors (retried).
    transient_failures: u64,
}

/// The writer thread: batches of the events sent to it (`EveryBatch`), what inline leaders left
/// queued, checkpoints and syncs when due, and the shutdown.
fn run(writer: &Mutex<Writer>, inline: Option<&Inline>, rx: &mpsc::Receiver<Msg>) {
    let mut batch = Vec::new();
    loop {
        let wait = lock(writer).wait();
        let mut shutdown = None;
        match rx.recv_timeout(wait) {
            Ok(Msg::Event {
                event, bytes, ack, ..
            }) => {
                batch.push((event, bytes, ack));
                // Woken by the first event of a burst: give the producers (often on the
                // same core) one time slice to queue the rest, so that one write and one
                // acknowledgement round covers them all instead of one each.
                std::thread::yield_now();
                let mut writer = lock(writer);
                let max_batch = writer.options.max_batch;
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Msg::Event {
                            event, bytes, ack, ..
                        }) => batch.push((event, bytes, ack)),
                        Ok(Msg::Shutdown(reply)) => {
                            shutdown = Some(reply);
                            break;
                        }
                        Ok(Msg::Fail(message)) => writer.fail(message),
                        Err(_) => break,
                    }
                }
                writer.commit(&mut batch);
            }
            Ok(Msg::Shutdown(reply)) => shutdown = Some(reply),
            Ok(Msg::Fail(message)) => lock(writer).fail(message),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let mut writer = lock(writer);
                if let Some(inline) = inline {
                    writer.flush_queue(&inline.queue, true);
                }
                writer.finish(None);
                return;
            }
        }
        let mut writer = lock(writer);
        if let Some(inline) = inline {
            writer.flush_queue(&inline.queue, shutdown.is_some());
        }
        if let Some(reply) = shutdown {
            writer.finish(Some(reply));
            return;
        }
        writer.after_batch();
    }
}

impl Writer {
    /// Appends what is queued for inline batches as one batch; with `close`, the queue takes
    /// nothing more afterwards. The caller holds the writer's lock, so a leader that took the
    /// queue always commits before a shutdown can sign the final checkpoint.
    fn flush_queue(&mut self, queue: &Mutex<Queue>, close: bool) {
        let mut items = {
            let mut queue = lock(queue);
            queue.leader = false;
            queue.closed |= close;
            std::mem::take(&mut queue.items)
        };
        if !items.is_empty() {
            self.commit(&mut items);
            self.after_batch();
        }
    }

    /// What follows every batch and every tick: take in finished checkpoints and syncs, start
    /// the ones that are due.
    fn after_batch(&mut self) {
        self.collect_done();
        self.checkpoint_if_due();
        self.sync_if_due();
    }

    /// Take in the checkpoint thread's results that are ready.
    fn collect_done(&mut self) {
        while let Ok(done) = self.done.try_recv() {
            self.finished(done);
        }
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Checkpoint(result) => self.checkpointed(result),
            Done::Sync(Ok(size)) => {
                self.sync_in_flight = false;
                self.update_status(|s| s.durable = s.durable.max(size));
            }
            // Only asked for by `finish`, which waits for it itself.
            Done::Stopped(_) => {}
            Done::Sync(Err(e)) => {
                self.sync_in_flight = false;
                self.sync_failed(&e);
            }
        }
    }

    /// Sync the records when the policy says so: here for the policies that sync in line,
    /// on the checkpoint thread under the interval policy (one sync in flight at a time).
    fn sync_if_due(&mut self) {
        if let Err(e) = self.ledger.sync_if_due() {
            self.sync_failed(&e);
        }
        if self.sync_every.is_none() || self.sync_in_flight || self.failure.is_some() {
            return;
        }
        match self.ledger.begin_sync() {
            Ok(Some(job)) => {
                if self.jobs.send(Job::Sync(job)).is_ok() {
                    self.sync_in_flight = true;
                } else {
                    self.fail(CHECKPOINTER_STOPPED.into());
                }
            }
            Ok(None) => {}
            Err(e) => self.sync_failed(&e),
        }
    }

    /// A sync that failed stops the sink, unless it could not even open a file for want of
    /// descriptors: then nothing was synced, the records are still unsynced, and the next
    /// sync (at the next batch under the in-line policies, the next interval otherwise)
    /// tries again.
    fn sync_failed(&mut self, e: &LedgerError) {
        if e.is_transient() {
            self.transient_failure("a ledger sync", e);
            return;
        }
        if e.stops_the_ledger() {
            self.ledger.poison();
        }
        self.fail(format!("syncing the ledger: {e}"));
    }

    /// How long to wait for events before looking at the clock again.
    fn wait(&self) -> Duration {
        let mut idle = self.options.idle_wake;
        if self.failure.is_some() {
            // No checkpoint will be started: an overdue one must not make this a busy loop.
            return idle;
        }
        if let Some(every) = self.sync_every {
            idle = idle.min(every);
        }
        if self.checkpoint_in_flight || self.sync_in_flight {
            idle = idle.min(CHECKPOINT_POLL);
        }
        match self.unsigned_since {
            Some(since) => {
                let age = self.clock.now().saturating_duration_since(since);
                self.options.checkpoint_every.saturating_sub(age).min(idle)
            }
            None => idle,
        }
    }

    fn commit(&mut self, batch: &mut Vec<Queued>) {
        if let Some(failure) = &self.failure {
            for (_, _, ack) in batch.drain(..) {
                let _ = ack.send(Err(SinkError::Io(failure.clone())));
            }
            return;
        }
        let entries: Vec<&[u8]> = batch.iter().map(|(_, bytes, _)| bytes.as_slice()).collect();
        match self.ledger.append_batch(&entries) {
            Ok(range) => {
                if self.unsigned_since.is_none() {
                    self.unsigned_since = Some(self.clock.now());
                }
                let synced = self.ledger.sync_policy() == SyncPolicy::EveryBatch;
                self.update_status(|s| {
                    s.size = range.end;
                    if synced {
                        s.durable = range.end;
                    }
                });
                for ((event, _, ack), index) in batch.drain(..).zip(range) {
                    // A producer that stopped waiting, or nobody subscribed, is fine.
                    let _ = ack.send(Ok(index));
                    let _ = self.live.send(Arc::new(StoredEvent {
                        index,
                        event: *event,
                    }));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, _, ack) in batch.drain(..) {
                    let _ = ack.send(Err(SinkError::Io(message.clone())));
                }
            }
        }
    }

    fn checkpoint_if_due(&mut self) {
        let due = self.unsigned_since.is_some_and(|since| {
            self.clock.now().saturating_duration_since(since) >= self.options.checkpoint_every
        });
        if due && !self.checkpoint_in_flight && self.failure.is_none() {
            self.start_checkpoint();
        }
    }

    /// Hand a checkpoint of the whole tree to the checkpoint thread (nothing to do when the
    /// newest stored checkpoint already covers it).
    fn start_checkpoint(&mut self) {
        match self.ledger.begin_checkpoint(&self.origin) {
            Ok(CheckpointStart::Current(_)) => self.unsigned_since = None,
            Ok(CheckpointStart::Job(job)) => {
                if self.jobs.send(Job::Checkpoint(job)).is_ok() {
                    self.checkpoint_in_flight = true;
                    // Entries appended from now on are not covered by this checkpoint.
                    self.unsigned_since = None;
                } else {
                    self.fail(CHECKPOINTER_STOPPED.into());
                }
            }
            Err(e) => self.checkpoint_failed(&e),
        }
    }

    /// Wait for the checkpoint in flight, if any.
    fn wait_for_checkpoint(&mut self) {
        while self.checkpoint_in_flight {
            match self.done.recv() {
                Ok(done) => self.finished(done),
                Err(_) => {
                    self.checkpoint_in_flight = false;
                    self.sync_in_flight = false;
                    self.fail(CHECKPOINTER_STOPPED.into());
                }
            }
        }
    }

    /// The checkpoint thread's result.
    fn checkpointed(&mut self, result: Result<SignedCheckpoint, LedgerError>) {
        self.checkpoint_in_flight = false;
        match result {
            Ok(signed) => {
                self.ledger.finish_checkpoint(&signed);
                self.update_status(|s| {
                    s.durable = s.durable.max(signed.size());
                    s.latest_checkpoint = Some(signed);
                });
            }
            Err(e) => self.checkpoint_failed(&e),
        }
    }

    fn checkpoint_failed(&mut self, e: &LedgerError) {
        if e.is_transient() {
            // Nothing was signed or stored: the next try, one checkpoint interval from now
            // (not at once, which would make the writer a busy loop), covers these entries.
            self.transient_failure("a checkpoint", e);
            self.unsigned_since = Some(self.clock.now());
            return;
        }
        if e.stops_the_ledger() {
            self.ledger.poison();
        }
        self.fail(format!("signing a checkpoint: {e}"));
    }

    /// Sign a checkpoint of everything appended and wait for it (on shutdown): the newest
    /// checkpoint, none for a ledger that never had an entry.
    fn checkpoint_now(&mut self) -> Result<Option<SignedCheckpoint>, SinkError> {
        self.wait_for_checkpoint();
        if self.failure.is_none() && self.ledger.size() > 0 {
            self.start_checkpoint();
            self.wait_for_checkpoint();
        }
        match &self.failure {
            Some(failure) => Err(SinkError::Io(failure.clone())),
            None => Ok(self.ledger.latest_checkpoint().cloned()),
        }
    }

    fn finish(&mut self, reply: Option<ShutdownReply>) {
        let result = self.checkpoint_now().and_then(|latest| {
            self.mark_stopped()?;
            Ok(latest)
        });
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }

    /// After the final checkpoint: have the checkpoint thread mark the clean stop in the
    /// signer's state, and wait for it.
    fn mark_stopped(&mut self) -> Result<(), SinkError> {
        if self.jobs.send(Job::MarkStopped).is_err() {
            return Err(SinkError::Io(CHECKPOINTER_STOPPED.into()));
        }
        loop {
            match self.done.recv() {
                Ok(Done::Stopped(result)) => {
                    return result.map_err(|e| SinkError::Io(format!("marking the stop: {e}")));
                }
                Ok(other) => self.finished(other),
                Err(_) => return Err(SinkError::Io(CHECKPOINTER_STOPPED.into())),
            }
        }
    }

    /// Log a sync or checkpoint that could not open a file for want of descriptors: the
    /// first, then each time their number doubles (they are tried again on every tick while
    /// the process is out of descriptors).
    fn transient_failure(&mut self, what: &str, e: &LedgerError) {
        self.transient_failures += 1;
        if self.transient_failures.is_power_of_two() {
            tracing::warn!(error = %e, failures = self.transient_failures,
                "{what} failed for want of file descriptors; tried again later");
        }
    }

    fn fail(&mut self, message: String) {
        self.update_status(|s| s.failure = Some(message.clone()));
        self.failure = Some(message);
    }

    fn update_status(&self, change: impl FnOnce(&mut SinkStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
    }
}
