//! `tenet demo`, the README's main command, end to end: on every CPU the machine has (the
//! multi-threaded runtime) and pinned to one (a single-threaded runtime, as in a container
//! allotted one CPU).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Stdio};
use std::time::Duration;

mod support;

fn demo(pinned: bool) -> (bool, String) {
    let tenet = env!("CARGO_BIN_EXE_tenet");
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", tenet]);
        c
    } else {
        Command::new(tenet)
    };
    let child = cmd
        .arg("demo")
        .env_remove("TENET_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("taskset (util-linux) and the tenet binary run");
    let out = support::wait_output(child, Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_demo_passes_on_every_cpu_and_on_one() {
    for pinned in [false, true] {
        let (ok, text) = demo(pinned);
        assert!(ok, "pinned {pinned}:\n{text}");
        assert!(
            text.contains("demo passed: every step behaved as expected"),
            "pinned {pinned}:\n{text}"
        );
    }
}
