//! A sink whose process runs out of file descriptors: syncs and checkpoints cannot open what
//! they need, the sink goes on taking events, does not busy-loop, and signs once descriptors
//! are free again. A test binary of its own, because it lowers the whole process's limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "integration/support.rs"]
#[allow(dead_code)]
mod support;

use std::fs::File;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::event;
use tenet_event::EventSink;
use tenet_ledger::{ManualClock, SyncPolicy, Verdict};

/// This process's soft and hard limits on open files, by `prlimit` (util-linux).
fn nofile() -> (u64, u64) {
    let out = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string()])
        .args(["--nofile", "--output", "SOFT,HARD", "--noheadings"])
        .output()
        .expect("prlimit runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut limits = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (limits.next().unwrap(), limits.next().unwrap())
}

fn set_nofile(soft: u64, hard: u64) {
    let status = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string()])
        .arg(format!("--nofile={soft}:{hard}"))
        .status()
        .expect("prlimit runs");
    assert!(status.success());
}

/// User and system CPU time of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_out_of_descriptors_goes_on_and_signs_once_they_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Instant::now()));
    let sync = SyncPolicy::Interval(Duration::from_millis(100));
    let sink = support::start_with(dir.path(), clock.clone(), sync);
    sink.record(event(1)).await.unwrap();

    // Every descriptor taken: a limit a little above what is open, and /dev/null held open
    // until opening fails.
    let (soft, hard) = nofile();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    set_nofile(open + 16, hard);
    // Read before: reading it takes a descriptor.
    let cpu_before = cpu_time();
    let wall = Instant::now();
    let mut hogs = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        hogs.push(file);
    }

    // Events are still taken (the segment is open already); a checkpoint is due, and so is a
    // sync, and neither can open its files.
    sink.record(event(2)).await.unwrap();
    clock.advance(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.record(event(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.status().failure, None);
    assert_eq!(sink.status().latest_checkpoint, None);

    drop(hogs);
    let busy = cpu_time() - cpu_before;
    set_nofile(soft, hard);
    // The writer retried, it did not spin: well under one core over the second.
    assert!(
        busy < wall.elapsed() / 2,
        "{busy:?} of CPU in {:?}",
        wall.elapsed()
    );

    // Descriptors free: the next try signs everything.
    clock.advance(Duration::from_secs(2));
    support::wait_for_checkpoint(&sink, 3).await;
    assert_eq!(sink.status().failure, None);
    sink.record(event(4)).await.unwrap();
    assert_eq!(sink.shutdown().await.unwrap().unwrap().size(), 4);
    assert_eq!(support::report(dir.path()).verdict, Verdict::Verified);
}
