//! Throughput of Tenet's pipeline (source recognition, field mapping, evaluation) against bare
//! rsigma evaluation, over the same events and rules, at 100 and 1,000 rules, on one core, and
//! whether the two find the same rules on each event. Prints a Markdown table.
//!
//! Run: `cargo run --release -p tenet-sigma --example throughput`
//!
//! Events: the Panther test events (CloudTrail, Kubernetes audit, Okta). Rules: SigmaHQ's cloud,
//! identity and Kubernetes rules first, then the rest of the corpus, repeated under new ids to
//! reach the count. Both sides get the same YAML text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rsigma_eval::{Engine as Bare, JsonEvent};
use serde_json::Value;
use tenet_sigma::{Engine, RuleSet, Source};

const PANTHER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/panther-analysis/rules"
);
const SIGMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/sigma/rules"
);

fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml") {
            out.push(p);
        }
    }
}

fn events() -> Vec<Value> {
    let mut files = Vec::new();
    yml_files(Path::new(PANTHER), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let doc: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for t in doc["Tests"].as_sequence().into_iter().flatten() {
            let Some(log) = t.get("Log") else { continue };
            let v: Value = match log.as_str() {
                Some(s) => serde_json::from_str(s).unwrap(),
                None => serde_json::to_value(log).unwrap(),
            };
            if matches!(
                Source::recognise(&v),
                Source::CloudTrail | Source::KubernetesAudit | Source::Okta
            ) {
                out.push(v);
            }
        }
    }
    out
}

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
        yml_files(&Path::new(SIGMA).join(sub), &mut files);
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

/// Timed passes per engine and rule count; the two engines alternate, and the median counts.
const TRIALS: usize = 7;
/// Events per timed pass (the event list repeated).
const EVENTS_PER_PASS: usize = 20_000;

/// One row of the table.
struct Row {
    rules: usize,
    tenet: f64,
    bare: f64,
    same: usize,
    events: usize,
    tenet_matches: usize,
    bare_matches: usize,
}

/// Events per second of one pass of `run` over `events`, repeated to `EVENTS_PER_PASS`.
fn rate(events: &[Value], mut run: impl FnMut(&Value) -> usize) -> (f64, usize) {
    let rounds = EVENTS_PER_PASS / events.len().max(1) + 1;
    let start = Instant::now();
    let mut matches = 0;
    for _ in 0..rounds {
        for e in events {
            matches += run(e);
        }
    }
    let rate = (rounds * events.len()) as f64 / start.elapsed().as_secs_f64();
    (rate, matches)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(events: &[Value], count: usize) -> Row {
    let yaml = rules_yaml(count);
    let set = RuleSet::from_yaml("bench.yml", &yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let mut tenet = Engine::new(set);
    let mut bare = Bare::new();
    bare.add_collection(&rsigma_parser::parse_sigma_yaml(&yaml).unwrap())
        .unwrap();

    // Match sets, event by event. Where they differ, Tenet may only match more (its case
    // folding and aliases), never less.
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
            let missing: Vec<_> = theirs.difference(&ours).collect();
            println!(
                "  {count} rules, event {i}: tenet-only {:?}, rsigma-only {missing:?}",
                ours.difference(&theirs).collect::<Vec<_>>(),
            );
        }
    }

    // Tenet's side is the whole pipeline: recognising the source, mapping fields, evaluating
    // and correlating. rsigma's side is bare evaluation of the raw JSON.
    let (mut tenet_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        let (r, _) = rate(events, |e| tenet.observe(e, Source::recognise(e), 0).len());
        tenet_rates.push(r);
        let (r, _) = rate(events, |e| bare.evaluate(&JsonEvent::borrow(e)).len());
        bare_rates.push(r);
    }
    Row {
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
    let events = events();
    println!(
        "{} Panther events (CloudTrail, Kubernetes audit, Okta); one thread; median of {TRIALS} \
         alternating passes of ~{EVENTS_PER_PASS} events",
        events.len()
    );
    let rows: Vec<Row> = [100, 1000]
        .into_iter()
        .map(|count| measure(&events, count))
        .collect();
    println!();
    println!(
        "| rules | Tenet pipeline (events/s/core) | bare rsigma (events/s/core) | Tenet / rsigma \
         | identical match sets | matches (Tenet / rsigma) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {}/{} | {} / {} |",
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
