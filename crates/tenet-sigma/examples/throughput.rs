//! Throughput of Tenet's pipeline (source recognition, field mapping, evaluation) against bare
//! rsigma evaluation, over the same events and rules, at 100 and 1,000 rules, on one core.
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

fn main() {
    let events = events();
    println!("events: {}", events.len());
    for count in [100, 1000] {
        let yaml = rules_yaml(count);
        let set = RuleSet::from_yaml("bench.yml", &yaml);
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let mut tenet = Engine::new(set);
        let mut bare = Bare::new();
        bare.add_collection(&rsigma_parser::parse_sigma_yaml(&yaml).unwrap())
            .unwrap();

        // Match sets, event by event.
        let (mut same, mut differ) = (0, 0);
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
            if ours == theirs {
                same += 1;
            } else {
                differ += 1;
                println!(
                    "  event {i}: tenet-only {:?}, rsigma-only {:?}",
                    ours.difference(&theirs).collect::<Vec<_>>(),
                    theirs.difference(&ours).collect::<Vec<_>>()
                );
            }
        }

        let rounds = 20_000 / events.len().max(1) + 1;
        let start = Instant::now();
        let mut n = 0_usize;
        for _ in 0..rounds {
            for e in &events {
                n += tenet.observe(e, Source::recognise(e), 0).len();
            }
        }
        let tenet_rate = (rounds * events.len()) as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut m = 0_usize;
        for _ in 0..rounds {
            for e in &events {
                m += bare.evaluate(&JsonEvent::borrow(e)).len();
            }
        }
        let bare_rate = (rounds * events.len()) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{count} rules: identical match sets {same}/{}, tenet {tenet_rate:.0} events/s, \
             bare rsigma {bare_rate:.0} events/s (matches {n} vs {m}, differing events {differ})",
            events.len()
        );
    }
}
