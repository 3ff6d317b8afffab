//! The streaming detector: detections and correlations over events, with bounded state.

use rsigma_eval::{CorrelationConfig, CorrelationEngine, EvaluationResult, ResultBody};
use rsigma_parser::Level;
use serde::Serialize;
use serde_json::Value;
use tenet_finding::Severity;

use crate::fields::SourceEvent;
use crate::rules::{LoadProblem, RuleSet};
use crate::source::Source;

/// Correlation state entries (correlation × group) kept at most; past it the oldest are evicted.
const MAX_STATE_ENTRIES: usize = 100_000;
/// Entries kept at most within one group's window; past it the oldest are dropped, which can
/// only under-count.
const MAX_GROUP_ENTRIES: usize = 10_000;

/// A rule that fired on an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// The rule's `id`, else its `name`, else its title.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// The rule's `level`, as a Tenet severity (`informational` is `info`).
    pub level: Option<Severity>,
    /// All of the rule's tags.
    pub tags: Vec<String>,
    /// The ATT&CK tags (`attack.*`), in the rule's order.
    pub attack: Vec<String>,
    /// Whether a correlation rule fired (over several events) rather than a detection.
    pub correlation: bool,
    /// For a correlation: the group-by values it fired for.
    pub group: Vec<(String, String)>,
}

impl Match {
    fn from_result(result: &EvaluationResult) -> Match {
        let header = &result.header;
        let (correlation, group) = match &result.body {
            ResultBody::Correlation(c) => (true, c.group_key.clone()),
            ResultBody::Detection(_) => (false, Vec::new()),
        };
        Match {
            rule_id: header
                .rule_id
                .clone()
                .unwrap_or_else(|| header.rule_title.clone()),
            title: header.rule_title.clone(),
            level: header.level.map(severity),
            attack: header
                .tags
                .iter()
                .filter(|t| t.starts_with("attack."))
                .cloned()
                .collect(),
            tags: header.tags.clone(),
            correlation,
            group,
        }
    }
}

fn severity(level: Level) -> Severity {
    match level {
        Level::Informational => Severity::Info,
        Level::Low => Severity::Low,
        Level::Medium => Severity::Medium,
        Level::High => Severity::High,
        Level::Critical => Severity::Critical,
    }
}

/// Evaluates a [`RuleSet`] over a stream of events. Detections are stateless; correlations keep
/// per-group windows whose total size is bounded (at most 100,000 groups and 10,000 entries per
/// group; the oldest go first, so a bound can only make a correlation fire less, never more).
pub struct Engine {
    inner: CorrelationEngine,
    problems: Vec<LoadProblem>,
}

impl Engine {
    /// An engine over `rules`. Rules were checked when the set was loaded; one that still fails
    /// here is listed in [`Engine::problems`].
    pub fn new(rules: RuleSet) -> Engine {
        let config = CorrelationConfig {
            max_state_entries: MAX_STATE_ENTRIES,
            max_group_entries: Some(MAX_GROUP_ENTRIES),
            ..CorrelationConfig::default()
        };
        let mut inner = CorrelationEngine::new(config);
        let mut problems = Vec::new();
        if let Err(e) = inner.add_collection(&rules.collection) {
            // Unreachable after RuleSet's checks unless rsigma changes; keep what loads.
            problems.push(LoadProblem {
                file: "(rule set)".into(),
                rule_id: None,
                title: None,
                construct: "engine".into(),
                reason: e.to_string(),
            });
            inner = CorrelationEngine::new(CorrelationConfig::default());
            for rule in &rules.collection.rules {
                if let Err(e) = inner.add_rule(rule) {
                    problems.push(LoadProblem {
                        file: "(rule set)".into(),
                        rule_id: rule.id.clone(),
                        title: Some(rule.title.clone()),
                        construct: "engine".into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Engine { inner, problems }
    }

    /// Rules the engine could not take although the set loaded them (normally none).
    pub fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }

    /// Evaluates one event from `source` at `now_ms` (milliseconds since the Unix epoch; the
    /// correlation windows run on this time, never on the clock). Rules whose logsource names a
    /// different product, service or category than the source's are not evaluated.
    pub fn observe(&mut self, event: &Value, source: Source, now_ms: i64) -> Vec<Match> {
        let view = SourceEvent::new(event, source);
        let detections = match source.logsource(event) {
            Some(ls) => self.inner.engine().evaluate_pruned(&view, &ls),
            None => self.inner.engine().evaluate(&view),
        };
        let results =
            self.inner
                .process_with_detections(&view, detections, now_ms.div_euclid(1000));
        results.iter().map(Match::from_result).collect()
    }

    /// Correlation state entries currently held (for monitoring the memory bound).
    pub fn state_entries(&self) -> usize {
        self.inner.state_count()
    }

    /// Number of detection rules loaded.
    pub fn detection_rules(&self) -> usize {
        self.inner.detection_rule_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = r#"
title: Denied access
id: tenet-denied
logsource: {product: tenet, service: access}
detection:
  sel: {disposition: Blocked}
  condition: sel
level: low
tags: [attack.discovery, attack.t1046, cve.2024-1]
---
title: Many denials from one principal
id: tenet-denied-burst
correlation:
  type: event_count
  rules: [tenet-denied]
  group-by: [User]
  timespan: 1m
  condition: {gte: 3}
level: high
"#;

    fn denied(principal: &str) -> Value {
        json!({"class_uid": 4002, "metadata": {"product": {"name": "Tenet"}},
               "disposition": "Blocked", "actor": {"app_name": principal},
               "http_request": {"http_method": "GET", "url": {"path": "/", "hostname": "h"}}})
    }

    #[test]
    fn detections_and_a_correlation_on_tenet_events() {
        let set = RuleSet::from_yaml("t.yml", RULES);
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let mut engine = Engine::new(set);
        let m = engine.observe(&denied("spiffe://a"), Source::Tenet, 1_000);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].rule_id, "tenet-denied");
        assert_eq!(m[0].level, Some(Severity::Low));
        assert_eq!(m[0].attack, vec!["attack.discovery", "attack.t1046"]);
        engine.observe(&denied("spiffe://b"), Source::Tenet, 2_000);
        let m = engine.observe(&denied("spiffe://a"), Source::Tenet, 3_000);
        assert!(m.iter().all(|m| !m.correlation));
        let m = engine.observe(&denied("spiffe://a"), Source::Tenet, 4_000);
        let corr: Vec<_> = m.iter().filter(|m| m.correlation).collect();
        assert_eq!(corr.len(), 1);
        assert_eq!(corr[0].rule_id, "tenet-denied-burst");
        assert_eq!(
            corr[0].group,
            vec![("User".to_owned(), "spiffe://a".to_owned())]
        );
        // Outside the window the count starts again.
        let m = engine.observe(&denied("spiffe://b"), Source::Tenet, 200_000);
        assert!(m.iter().all(|m| !m.correlation));
    }

    #[test]
    fn rules_of_another_product_are_not_evaluated() {
        let set = RuleSet::from_yaml("t.yml", RULES);
        let mut engine = Engine::new(set);
        // The same fields, but a CloudTrail record: the Tenet rule must not run.
        let ev = json!({"eventSource": "s3.amazonaws.com", "eventName": "GetObject",
                        "eventVersion": "1.08", "awsRegion": "x", "disposition": "Blocked"});
        assert!(engine.observe(&ev, Source::CloudTrail, 0).is_empty());
    }
}
