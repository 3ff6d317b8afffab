//! Throughput of Tenet's pipeline (source recognition, field mapping, evaluation) against bare
//! rsigma evaluation, over the same events and rules, at 100 and 1,000 rules, on one core, and
//! whether the two find the same rules on each event. Prints a Markdown table.
//!
//! Run: `cargo run --release -p tenet-sigma --example throughput [RULES...]` (100 and 1,000
//! rules when none are given).
//!
//! Events: the Panther test events (CloudTrail, Kubernetes audit, Okta), in two forms, each
//! given to both engines as the same JSON values: with the vendors' spelling of the top-level
//! keys (Panther's export lowercases some of them; the spelling is the one the same key has in
//! the corpus's other events of that source), and as Panther exports them. Rules: SigmaHQ's
//! cloud, identity and Kubernetes rules first, then the rest of the corpus, repeated under new
//! ids to reach the count. Both sides get the same YAML text.
//!
//! Time is the thread's time on a CPU (`/proc/thread-self/schedstat`), so that other work on
//! the machine does not count against either side; wall-clock time where that is unavailable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/panther.rs"]
mod panther;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use rsigma_eval::{Engine as Bare, JsonEvent};
use serde_json::Value;
use tenet_sigma::{Engine, RuleSet, Source};

const SIGMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/sigma/rules"
);

fn rules_yaml(count: usize) -> String {
    let mut files = Vec::new();
    for sub in [
        "cloud/aws",
        "identity/okta",
        "application/kubernetes",
        "cloud",
        "identity",
        "windows",
        "network",
        "application",
    ] {
        panther::yml_files(&Path::new(SIGMA).join(sub), &mut files);
    }
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(f.clone()));
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let mut docs = Vec::new();
    let mut round = 0;
    while docs.len() < count {
        for text in &texts {
            if docs.len() == count {
                break;
            }
            let renamed: String = text
                .lines()
                .map(|l| match l.strip_prefix("id: ") {
                    Some(id) if round > 0 => format!("id: {id}-{round}\n"),
                    _ => format!("{l}\n"),
                })
                .collect();
            docs.push(renamed);
        }
        round += 1;
    }
    docs.join("---\n")
}

/// Timed passes per engine, rule count and input; the two engines alternate, and the median
/// counts.
const TRIALS: usize = 7;
/// Events per timed pass (the event list repeated).
const EVENTS_PER_PASS: usize = 20_000;

/// One row of the table.
struct Row {
    input: &'static str,
    rules: usize,
    tenet: f64,
    bare: f64,
    same: usize,
    events: usize,
    tenet_matches: usize,
    bare_matches: usize,
}

/// The calling thread's time on a CPU so far, when the kernel reports it.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Events per second of one pass of `run` over `events`, repeated to `EVENTS_PER_PASS`.
fn rate(events: &[Value], mut run: impl FnMut(&Value) -> usize) -> f64 {
    let rounds = EVENTS_PER_PASS / events.len().max(1) + 1;
    let (cpu, wall) = (cpu_time(), Instant::now());
    let mut matches = 0;
    for _ in 0..rounds {
        for e in events {
            matches += run(e);
        }
    }
    std::hint::black_box(matches);
    let elapsed = match (cpu, cpu_time()) {
        (Some(start), Some(end)) if end > start => end - start,
        _ => wall.elapsed(),
    };
    (rounds * events.len()) as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(input: &'static str, events: &[Value], count: usize) -> Row {
    let yaml = rules_yaml(count);
    let set = RuleSet::from_yaml("bench.yml", &yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let mut tenet = Engine::new(set);
    let mut bare = Bare::new();
    bare.add_collection(&rsigma_parser::parse_sigma_yaml(&yaml).unwrap())
        .unwrap();

    // Match sets, event by event.
    let (mut same, mut tenet_matches, mut bare_matches) = (0, 0, 0);
    for (i, e) in events.iter().enumerate() {
        let ours: BTreeSet<String> = tenet
            .observe(e, Source::recognise(e), 0)
            .into_iter()
            .map(|m| m.rule_id)
            .collect();
        let theirs: BTreeSet<String> = bare
            .evaluate(&JsonEvent::borrow(e))
            .into_iter()
            .map(|r| r.header.rule_id.unwrap_or(r.header.rule_title))
            .collect();
        tenet_matches += ours.len();
        bare_matches += theirs.len();
        if ours == theirs {
            same += 1;
        } else {
            println!(
                "  {input}, {count} rules, event {i}: tenet-only {:?}, rsigma-only {:?}",
                ours.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&ours).collect::<Vec<_>>(),
            );
        }
    }

    // Tenet's side is the whole pipeline: recognising the source, mapping fields, evaluating
    // and correlating. rsigma's side is bare evaluation of the same JSON.
    let (mut tenet_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        tenet_rates.push(rate(events, |e| {
            tenet.observe(e, Source::recognise(e), 0).len()
        }));
        bare_rates.push(rate(events, |e| bare.evaluate(&JsonEvent::borrow(e)).len()));
    }
    Row {
        input,
        rules: count,
        tenet: median(tenet_rates),
        bare: median(bare_rates),
        same,
        events: events.len(),
        tenet_matches,
        bare_matches,
    }
}

fn main() {
    let exported = panther::events();
    let vendor = panther::vendor_spelling(&exported);
    let clock = if cpu_time().is_some() {
        "time on a CPU"
    } else {
        "wall-clock time"
    };
    println!(
        "{} Panther events (CloudTrail, Kubernetes audit, Okta); one thread; {clock}; median \
         of {TRIALS} alternating passes of ~{EVENTS_PER_PASS} events",
        exported.len()
    );
    // Rule counts may be given as arguments (for profiling one of them); 100 and 1,000 by default.
    let mut counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("rule count"))
        .collect();
    if counts.is_empty() {
        counts = vec![100, 1000];
    }
    let mut rows = Vec::new();
    for &count in &counts {
        rows.push(measure("vendor spelling", &vendor, count));
        rows.push(measure("as exported by Panther", &exported, count));
    }
    println!();
    println!(
        "| events | rules | Tenet pipeline (events/s/core) | bare rsigma (events/s/core) \
         | Tenet / rsigma | identical match sets | matches (Tenet / rsigma) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {}/{} | {} / {} |",
            r.input,
            r.rules,
            r.tenet,
            r.bare,
            r.tenet / r.bare,
            r.same,
            r.events,
            r.tenet_matches,
            r.bare_matches
        );
    }
}
