//! Tenet and bare rsigma over the same events and rules: Panther's CloudTrail, Kubernetes audit
//! and Okta test events with the vendors' key spelling, and SigmaHQ's cloud, identity and
//! Kubernetes rules. Both must find the same rules on every event, and Tenet must find the same
//! on the events as Panther exports them (with some keys lowercased), as it reads these
//! sources' fields without regard to case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use rsigma_eval::{Engine as Bare, JsonEvent};
use serde_json::Value;
use support::panther;
use tenet_sigma::{Engine, RuleSet, Source};

const SIGMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/sigma/rules"
);

/// The text of every rule file under `cloud`, `identity` and `application/kubernetes` that
/// Tenet loads without a problem, as one YAML stream.
fn rules_yaml() -> String {
    let mut files = Vec::new();
    for sub in ["cloud", "identity", "application/kubernetes"] {
        panther::yml_files(&Path::new(SIGMA).join(sub), &mut files);
    }
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let set = RuleSet::from_yaml("rule.yml", &text);
        if set.problems().is_empty() && !set.is_empty() {
            docs.push(text);
        }
    }
    assert!(docs.len() >= 200, "only {} rules", docs.len());
    docs.join("\n---\n")
}

fn tenet_ids(engine: &mut Engine, event: &Value) -> BTreeSet<String> {
    engine
        .observe(event, Source::recognise(event), 0)
        .into_iter()
        .map(|m| m.rule_id)
        .collect()
}

#[test]
fn tenet_and_bare_rsigma_find_the_same_rules() {
    let yaml = rules_yaml();
    let mut tenet = Engine::new(RuleSet::from_yaml("rules.yml", &yaml));
    assert!(tenet.problems().is_empty(), "{:?}", tenet.problems());
    let mut bare = Bare::new();
    bare.add_collection(&rsigma_parser::parse_sigma_yaml(&yaml).unwrap())
        .unwrap();

    let exported = panther::events();
    let vendor = panther::vendor_spelling(&exported);
    assert!(exported.len() >= 350, "only {} events", exported.len());
    let respelled = exported.iter().zip(&vendor).filter(|(a, b)| a != b).count();
    assert!(
        respelled >= 30,
        "only {respelled} events had keys respelled"
    );

    let (mut matches, mut differ) = (0, Vec::new());
    for (i, (raw, event)) in exported.iter().zip(&vendor).enumerate() {
        let ours = tenet_ids(&mut tenet, event);
        let theirs: BTreeSet<String> = bare
            .evaluate(&JsonEvent::borrow(event))
            .into_iter()
            .map(|r| r.header.rule_id.unwrap_or(r.header.rule_title))
            .collect();
        if ours != theirs {
            differ.push(format!("event {i}: tenet {ours:?}, rsigma {theirs:?}"));
        }
        let folded = tenet_ids(&mut tenet, raw);
        if folded != ours {
            differ.push(format!(
                "event {i} as exported: tenet {folded:?}, with the vendor's spelling {ours:?}"
            ));
        }
        matches += ours.len();
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(matches >= 150, "only {matches} matches");
}
