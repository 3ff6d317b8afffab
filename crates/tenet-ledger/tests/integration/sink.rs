//! LedgerSink: group commit behind EventSink, periodic and final checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenet_event::{Event, EventSink, SinkError};
use tenet_ledger::{
    HistoryCheck, LedgerOptions, LedgerReader, LedgerSink, ManualClock, SinkOptions, SyncPolicy,
    Verdict,
};

use super::support::{event, report, signer, start_with, wait_for_checkpoint};

fn start(dir: &std::path::Path, clock: Arc<ManualClock>) -> LedgerSink {
    start_with(dir, clock, SyncPolicy::EveryBatch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_stored_once_and_verifies() {
    every_acknowledged_event_is_stored_once_and_verifies_under(SyncPolicy::EveryBatch).await;
    every_acknowledged_event_is_stored_once_and_verifies_under(SyncPolicy::Interval(
        Duration::from_millis(100),
    ))
    .await;
}

async fn every_acknowledged_event_is_stored_once_and_verifies_under(sync: SyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sink = start_with(dir.path(), clock, sync);
    let mut live = sink.subscribe();
    let mut tasks = Vec::new();
    let events: Vec<Event> = (0..300).map(event).collect();
    for e in events.clone() {
        let s = sink.clone();
        tasks.push(tokio::spawn(async move { s.record_indexed(e).await }));
    }
    let mut indices = Vec::new();
    for t in tasks {
        indices.push(t.await.unwrap().unwrap());
    }
    indices.sort_unstable();
    assert_eq!(indices, (0..300).collect::<Vec<u64>>());
    let first = live.recv().await.unwrap();
    assert_eq!(first.index, 0);

    let final_cp = sink.shutdown().await.unwrap().unwrap();
    assert_eq!(final_cp.size(), 300);
    assert!(matches!(
        sink.record(event(999)).await,
        Err(SinkError::Closed)
    ));

    let reader = LedgerReader::open(dir.path()).unwrap();
    let mut stored: Vec<Vec<u8>> = (0..300).map(|i| reader.entry(i).unwrap()).collect();
    let mut expected: Vec<Vec<u8>> = events.iter().map(Event::to_canonical_json).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_follows_within_the_interval_while_events_arrive() {
    a_checkpoint_follows_within_the_interval_while_events_arrive_under(SyncPolicy::EveryBatch)
        .await;
    a_checkpoint_follows_within_the_interval_while_events_arrive_under(SyncPolicy::Interval(
        Duration::from_millis(100),
    ))
    .await;
}

async fn a_checkpoint_follows_within_the_interval_while_events_arrive_under(sync: SyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sink = start_with(dir.path(), Arc::clone(&clock), sync);
    sink.record(event(1)).await.unwrap();
    assert!(sink.status().latest_checkpoint.is_none(), "not due yet");

    // Half a second later: still not due.
    clock.advance(Duration::from_millis(500));
    sink.record(event(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sink.status().latest_checkpoint.is_none());

    // One second after the first unsigned entry the writer signs, even with no new events.
    clock.advance(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(5);
    let signed = loop {
        if let Some(cp) = sink.status().latest_checkpoint {
            break cp;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint within 5 s of real time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(signed.size(), 2);

    // The next entry starts a new interval, signed one (clock) second after it.
    sink.record(event(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.status().latest_checkpoint.map(|c| c.size()), Some(2));
    clock.advance(Duration::from_secs(1));
    wait_for_checkpoint(&sink, 3).await;
    // Shutdown signs whatever is left.
    sink.record(event(4)).await.unwrap();
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 4);
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_still_signs_a_final_checkpoint() {
    dropping_every_handle_still_signs_a_final_checkpoint_under(SyncPolicy::EveryBatch).await;
    dropping_every_handle_still_signs_a_final_checkpoint_under(SyncPolicy::Interval(
        Duration::from_millis(100),
    ))
    .await;
}

async fn dropping_every_handle_still_signs_a_final_checkpoint_under(sync: SyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sink = start_with(dir.path(), clock, sync);
    for n in 0..5 {
        sink.record(event(n)).await.unwrap();
    }
    drop(sink);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reader = LedgerReader::open(dir.path()).unwrap();
        if reader.latest_checkpoint().unwrap().map(|c| c.size()) == Some(5) {
            break;
        }
        assert!(Instant::now() < deadline, "no final checkpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The writer released the directory: it opens again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while super::support::open_with(dir.path(), LedgerOptions::default()).is_err() {
        assert!(Instant::now() < deadline, "writer lock never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_syncs_run_beside_the_writer_and_are_reported_as_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let options = LedgerOptions {
        sync: SyncPolicy::Interval(Duration::from_millis(100)),
        clock: clock.clone(),
        ..LedgerOptions::default()
    };
    let ledger = super::support::open_with(dir.path(), options)
        .unwrap()
        .ledger;
    let sink_options = SinkOptions {
        idle_wake: Duration::from_millis(10),
        checkpoint_every: Duration::from_secs(3600),
        ..SinkOptions::default()
    };
    let sink = LedgerSink::start(ledger, signer(), sink_options, clock.clone()).unwrap();

    // Acknowledged as soon as written; no sync is due yet, so nothing is known durable.
    for n in 0..3 {
        sink.record(event(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.status().size, 3);
    assert_eq!(sink.status().durable, 0, "{:?}", sink.status());

    // Once the interval has passed, the idle writer hands the sync to the second thread.
    clock.advance(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.status().durable != 3 {
        assert!(Instant::now() < deadline, "no sync: {:?}", sink.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        sink.status().latest_checkpoint.is_none(),
        "a sync, not a checkpoint"
    );

    // Entries after it wait for the next interval.
    sink.record(event(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.status().durable, 3);
    clock.advance(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.status().durable != 4 {
        assert!(
            Instant::now() < deadline,
            "no second sync: {:?}",
            sink.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 4);
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_is_durable_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sink = start(dir.path(), clock);
    for n in 0..5 {
        sink.record(event(n)).await.unwrap();
        assert_eq!(sink.status().durable, n as u64 + 1);
    }
    sink.shutdown().await.unwrap();
}

/// A ledger synced on an interval (the gateway's default): producers append inline.
fn open_interval(dir: &std::path::Path) -> tenet_ledger::Ledger {
    let options = LedgerOptions {
        sync: SyncPolicy::Interval(Duration::from_millis(100)),
        ..LedgerOptions::default()
    };
    super::support::open_with(dir, options).unwrap().ledger
}

/// Under the interval policy the producers' events are committed on their own runtime, with no
/// hand-off to the writer thread (whose own tick is an hour away here): the first producer of
/// a batch spawns the commit, which runs after the tasks already queued, so that the events
/// queued in the meantime go in the same batch.
#[tokio::test(flavor = "current_thread")]
async fn inline_appends_of_one_scheduler_pass_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let ledger = open_interval(dir.path());
    let options = SinkOptions {
        idle_wake: Duration::from_secs(3600),
        checkpoint_every: Duration::from_secs(3600),
        ..SinkOptions::default()
    };
    let sink = LedgerSink::start(ledger, signer(), options, clock).unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for round in 0..2u64 {
        let mut records: Vec<_> = (0..3)
            .map(|n| Box::pin(sink.record_indexed(event(round as usize * 3 + n))))
            .collect();
        for record in &mut records {
            assert!(record.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(
            sink.status().size,
            round * 3,
            "committed before the pass ended"
        );
        // Let the spawned commit run.
        tokio::task::yield_now().await;
        assert_eq!(sink.status().size, round * 3 + 3, "one commit for the pass");
        for (n, record) in (round * 3..).zip(&mut records) {
            match record.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(index) => assert_eq!(index.unwrap(), n),
                std::task::Poll::Pending => panic!("event {n} waited for another thread"),
            }
        }
    }
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 6);
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
}

/// Many producers at once (tasks spawned in order on one thread): each is acknowledged with its
/// own index, in order, and the live feed sees them in that order.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_inline_producers_are_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let options = SinkOptions {
        idle_wake: Duration::from_millis(10),
        ..SinkOptions::default()
    };
    let sink = LedgerSink::start(open_interval(dir.path()), signer(), options, clock).unwrap();
    let mut live = sink.subscribe();
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let s = sink.clone();
            tokio::spawn(async move { s.record_indexed(event(n)).await })
        })
        .collect();
    let mut indices = Vec::new();
    for t in tasks {
        indices.push(t.await.unwrap().unwrap());
    }
    // Spawned in order on one thread, queued in order, stored in order.
    assert_eq!(indices, (0..64).collect::<Vec<u64>>());
    for n in 0..64 {
        assert_eq!(live.recv().await.unwrap().index, n);
    }
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 64);
    assert_eq!(report(dir.path()).verdict, Verdict::Verified);
}

fn options_of_rolled() -> LedgerOptions {
    LedgerOptions {
        sync: SyncPolicy::Interval(Duration::from_millis(100)),
        segment_bytes: 256,
        ..LedgerOptions::default()
    }
}

/// 40 signed entries over several small segments, and how to open them.
fn rolled_ledger(dir: &std::path::Path) -> LedgerOptions {
    let options = options_of_rolled();
    let mut ledger = super::support::open_with(dir, options.clone())
        .unwrap()
        .ledger;
    for n in 0..40 {
        ledger.append(&super::support::entry(n)).unwrap();
    }
    let mut signer = signer().with_state_file(&dir.join("signer.state")).unwrap();
    ledger.checkpoint(&mut signer).unwrap();
    options
}

/// The sink's signer: with the state file `rolled_ledger` wrote (the history is then checked
/// against the signer's record alone), or without (against the stored checkpoints).
fn sink_signer(dir: &std::path::Path, state: bool) -> tenet_ledger::CheckpointSigner {
    if state {
        signer().with_state_file(&dir.join("signer.state")).unwrap()
    } else {
        signer()
    }
}

/// Starts a sink over the ledger in `dir`, its history checked on a thread of its own, and
/// waits for the check.
async fn history_of(
    dir: &std::path::Path,
    options: LedgerOptions,
    state: bool,
) -> (LedgerSink, HistoryCheck) {
    let ledger = super::support::open_with(dir, options).unwrap().ledger;
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let options = SinkOptions {
        verify_inline_up_to: 0,
        ..SinkOptions::default()
    };
    let sink = LedgerSink::start(ledger, sink_signer(dir, state), options, clock).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = sink.status().history;
        if !matches!(history, HistoryCheck::Running { .. }) {
            return (sink, history);
        }
        assert!(
            Instant::now() < deadline,
            "the history check never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_history_is_verified_and_events_flow() {
    let dir = tempfile::tempdir().unwrap();
    let options = rolled_ledger(dir.path());
    let (sink, history) = history_of(dir.path(), options, false).await;
    assert_eq!(
        history,
        HistoryCheck::Verified {
            entries: 40,
            anchored: 40
        }
    );
    assert_eq!(sink.record_indexed(event(40)).await.unwrap(), 40);
    assert!(sink.status().failure.is_none());
    sink.shutdown().await.unwrap();
    drop(sink);

    // A ledger small enough is verified before the sink starts.
    let ledger = super::support::open_with(dir.path(), options_of_rolled())
        .unwrap()
        .ledger;
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let signer = sink_signer(dir.path(), true);
    let sink = LedgerSink::start(ledger, signer, SinkOptions::default(), clock).unwrap();
    // Checked against the signer's record (40 entries; the sink above signed 41 without one).
    assert_eq!(
        sink.status().history,
        HistoryCheck::Verified {
            entries: 41,
            anchored: 40
        }
    );
    sink.shutdown().await.unwrap();
}

/// Damage before the last segment is not seen by opening (which reads only the last segment
/// and the tree file, still matching the checkpoint): the history check finds it, and the sink
/// then takes no more events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_tampered_before_the_last_segment_stops_the_sink() {
    type Damage = fn(&[std::path::PathBuf]);
    let edit: Damage = |segments| {
        let first = &segments[0];
        let mut bytes = std::fs::read(first).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == b"\"e1\"")
            .expect("entry 1 in the first segment");
        bytes[at + 1] = b'x';
        std::fs::write(first, bytes).unwrap();
    };
    let delete: Damage = |segments| std::fs::remove_file(&segments[2]).unwrap();
    for (name, damage, kind, state) in [
        ("edited record", edit, "entry 1 was modified", false),
        ("deleted segment", delete, "missing", false),
        (
            "edited record, signer's record",
            edit,
            "entry 1 was modified",
            true,
        ),
        ("deleted segment, signer's record", delete, "missing", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = rolled_ledger(dir.path());
        let segments = super::support::segment_files(dir.path());
        assert!(segments.len() > 3, "{name}: {} segments", segments.len());
        damage(&segments);
        let (sink, history) = history_of(dir.path(), options, state).await;
        let HistoryCheck::Tampered(finding) = history else {
            panic!("{name}: {history:?}");
        };
        assert!(finding.contains(kind), "{name}: {finding}");
        // The writer takes the failure on its next tick.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.status().failure.is_none() {
            assert!(Instant::now() < deadline, "{name}: the sink never stopped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let failure = sink.status().failure.unwrap();
        assert!(failure.contains("tampered"), "{name}: {failure}");
        let refused = sink.record_indexed(event(40)).await;
        assert!(
            matches!(refused, Err(SinkError::Io(ref m)) if m.contains("tampered")),
            "{name}: {refused:?}"
        );
        assert_eq!(LedgerReader::open(dir.path()).unwrap().size(), 40, "{name}");
        sink.shutdown().await.unwrap_err();
        drop(sink);

        // Small enough to be verified before it starts, the sink does not start.
        let ledger = super::support::open_with(dir.path(), options_of_rolled())
            .unwrap()
            .ledger;
        let clock = Arc::new(ManualClock::new(Instant::now()));
        let signer = sink_signer(dir.path(), state);
        let refused = LedgerSink::start(ledger, signer, SinkOptions::default(), clock);
        assert!(
            matches!(refused, Err(SinkError::Io(ref m)) if m.contains(kind)),
            "{name}: {:?}",
            refused.map(drop)
        );
    }
}

/// A clean shutdown signs every entry and marks the stop in the signer's state; a start clears
/// the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_marks_the_stop_and_a_start_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = rolled_ledger(dir.path());
    let state = dir.path().join("signer.state");
    let ledger = super::support::open_with(dir.path(), options.clone())
        .unwrap()
        .ledger;
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sink = LedgerSink::start(
        ledger,
        sink_signer(dir.path(), true),
        SinkOptions::default(),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), None);
    sink.record_indexed(event(40)).await.unwrap();
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 41);
    drop(sink);
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), Some(41));

    let ledger = super::support::open_with(dir.path(), options)
        .unwrap()
        .ledger;
    let sink = LedgerSink::start(
        ledger,
        sink_signer(dir.path(), true),
        SinkOptions::default(),
        clock,
    )
    .unwrap();
    assert_eq!(tenet_ledger::read_signer_stop(&state).unwrap(), None);
    sink.shutdown().await.unwrap();
}
