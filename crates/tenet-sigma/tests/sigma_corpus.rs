//! SigmaHQ corpus: every rule loads or is reported with its construct, and every regression
//! event fires the rule its `info.yml` names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tenet_sigma::{Engine, RuleSet, Source};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/sigma");

fn corpus() -> PathBuf {
    let p = PathBuf::from(CORPUS);
    assert!(p.is_dir(), "corpus folder missing: {}", p.display());
    p
}

fn files_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_named(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

/// Several JSON documents may follow each other in one regression file.
fn json_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect()
}

#[test]
fn sigma_rules_load_or_are_reported() {
    let root = corpus();
    let mut total_files = 0;
    let set = RuleSet::load_paths(&[root.join("rules"), root.join("rules-emerging-threats")]);
    for dir in ["rules", "rules-emerging-threats"] {
        let mut files = Vec::new();
        for ext in ["yml", "yaml"] {
            collect_ext(&root.join(dir), ext, &mut files);
        }
        total_files += files.len();
    }
    let problems = set.problems().to_vec();
    let mut grouped: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &problems {
        *grouped.entry(p.construct.as_str()).or_default() += 1;
    }
    println!(
        "sigma rules loaded: {}/{}",
        set.len(),
        set.len() + problems.len()
    );
    for (construct, n) in &grouped {
        println!("  unsupported: {construct}: {n}");
    }
    for p in &problems {
        println!("  {p}");
    }
    // Every document is accounted for: loaded or reported.
    assert!(set.len() + problems.len() >= total_files);
    assert!(set.len() >= 480, "loaded {}", set.len());

    // The other folders too: rules-placeholder needs values Tenet does not have.
    let all = RuleSet::load_paths(&[
        root.join("rules"),
        root.join("rules-emerging-threats"),
        root.join("rules-threat-hunting"),
        root.join("rules-placeholder"),
    ]);
    let problems = all.problems();
    println!(
        "sigma rules loaded (all folders): {}/{}",
        all.len(),
        all.len() + problems.len()
    );
    for p in problems {
        println!("  unsupported: {p}");
    }
    assert!(all.len() >= 481, "loaded {}", all.len());
    assert!(problems.iter().any(|p| p.construct == "modifier |expand"));
}

fn collect_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            collect_ext(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

#[test]
fn sigma_regression_events_fire_their_rule() {
    let root = corpus();
    let set = RuleSet::load_paths(&[
        root.join("rules"),
        root.join("rules-emerging-threats"),
        root.join("rules-threat-hunting"),
    ]);
    let mut engine = Engine::new(set);
    let mut infos = Vec::new();
    files_named(&root.join("regression_data"), "info.yml", &mut infos);
    infos.sort();
    let (mut passed, mut total) = (0, 0);
    for info in infos {
        let meta: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
        let rule_id = meta["rule_metadata"][0]["id"].as_str().unwrap().to_owned();
        let dir = info.parent().unwrap();
        let mut events = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                events.extend(json_stream(&std::fs::read_to_string(&p).unwrap()));
            }
        }
        // One regression test is one recorded log: the rule must fire on it. The logs also
        // hold the events around the attack (the parent shell, files the tool touched), which
        // the rule is right not to fire on.
        total += 1;
        let mut fired = false;
        for event in &events {
            let source = Source::recognise(event);
            let hits = engine.observe(event, source, 0);
            fired |= hits.iter().any(|m| m.rule_id == rule_id);
        }
        if fired {
            passed += 1;
        } else {
            println!("  miss: {} rule {rule_id}", dir.display());
        }
    }
    println!("sigma regression: {passed}/{total}");
    assert!(total >= 95, "only {total} regression tests found");
    assert!(passed >= 94, "sigma regression fell to {passed}/{total}");
}
