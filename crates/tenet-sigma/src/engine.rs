//! The streaming detector: detections and correlations over events, with bounded state.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use rsigma_eval::{
    CorrelationConfig, CorrelationEngine, Engine as RsigmaEngine, EvaluationResult, ResultBody,
};
use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Level, LogSource,
    SigmaCollection, SigmaRule,
};
use serde::Serialize;
use serde_json::Value;
use tenet_finding::Severity;

use crate::fields::{FieldPlan, SourceEvent, correlation_fields, detection_fields};
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
    fn from_result(result: EvaluationResult) -> Match {
        let header = result.header;
        let (correlation, group) = match result.body {
            ResultBody::Correlation(c) => (true, c.group_key),
            ResultBody::Detection(_) => (false, Vec::new()),
        };
        let attack = header
            .tags
            .iter()
            .filter(|t| t.starts_with("attack."))
            .cloned()
            .collect();
        Match {
            rule_id: header.rule_id.unwrap_or_else(|| header.rule_title.clone()),
            title: header.rule_title,
            level: header.level.map(severity),
            attack,
            tags: header.tags,
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
    /// One detector per source, indexed by [`slot`].
    detectors: Vec<Detector>,
    /// Correlation state, when the set has correlations.
    correlations: Option<Correlations>,
    rule_count: usize,
    problems: Vec<LoadProblem>,
}

/// The rules that can apply to one source's events, compiled into their own rsigma engine so
/// that its candidate index and always-evaluated set hold nothing another product's rules
/// put there, and the plan of the fields those rules read.
struct Detector {
    engine: RsigmaEngine,
    plan: FieldPlan,
    /// Whether the source's logsource is the same for all its events, so that every rule in
    /// `engine` agrees with every event's.
    fixed: bool,
}

/// Correlations: rsigma's correlation engine, fed only the detections a correlation names.
///
/// Its clock runs in milliseconds (timespans and session gaps are scaled to match), so that
/// `temporal_ordered` tells apart two events within the same second: rsigma counts time in
/// whole seconds and takes equal times as in order.
struct Correlations {
    inner: CorrelationEngine,
    /// Ids of the detection rules a correlation refers to (by id or name).
    feeding: HashSet<String>,
    /// The `value_percentile` correlations, by id and title, with their conditions. rsigma
    /// 0.23 reports every percentile it computes as a match, whatever the condition says, so
    /// the condition is checked here.
    percentiles: Vec<PercentileCondition>,
}

/// A `value_percentile` correlation's id, title and condition.
type PercentileCondition = (Option<String>, String, Vec<(ConditionOperator, u64)>);

/// Milliseconds in a second, for the correlation clock.
const MS_PER_SEC: u64 = 1_000;

/// The correlation with its times in milliseconds.
fn in_milliseconds(mut corr: CorrelationRule) -> CorrelationRule {
    corr.timespan.seconds = corr.timespan.seconds.saturating_mul(MS_PER_SEC);
    if let Some(gap) = &mut corr.gap {
        gap.seconds = gap.seconds.saturating_mul(MS_PER_SEC);
    }
    corr
}

/// Whether `value` satisfies every predicate (rsigma's comparison).
fn satisfies(predicates: &[(ConditionOperator, u64)], value: f64) -> bool {
    predicates.iter().all(|(op, threshold)| {
        // Thresholds are small integers in rules; as f64 they are exact up to 2^53.
        let t = *threshold as f64;
        match op {
            ConditionOperator::Lt => value < t,
            ConditionOperator::Lte => value <= t,
            ConditionOperator::Gt => value > t,
            ConditionOperator::Gte => value >= t,
            ConditionOperator::Eq => (value - t).abs() < f64::EPSILON,
            ConditionOperator::Neq => (value - t).abs() >= f64::EPSILON,
        }
    })
}

/// All sources in [`slot`] order.
const SOURCES: [Source; 6] = [
    Source::Tenet,
    Source::CloudTrail,
    Source::KubernetesAudit,
    Source::Okta,
    Source::Windows,
    Source::Unknown,
];

fn slot(source: Source) -> usize {
    match source {
        Source::Tenet => 0,
        Source::CloudTrail => 1,
        Source::KubernetesAudit => 2,
        Source::Okta => 3,
        Source::Windows => 4,
        Source::Unknown => 5,
    }
}

/// The part of a source's logsource every one of its events has: all of it for CloudTrail,
/// Kubernetes audit and Okta, the product for Tenet and Windows (whose service and category
/// vary by event), nothing for unknown events.
fn base_logsource(source: Source) -> LogSource {
    let product = |p: &str| LogSource {
        product: Some(p.to_owned()),
        ..LogSource::default()
    };
    match source {
        Source::Tenet => product("tenet"),
        Source::Windows => product("windows"),
        Source::Unknown => LogSource::default(),
        fixed => fixed
            .logsource(&Value::Null)
            .unwrap_or_else(LogSource::default),
    }
}

/// rsigma's conflict rule: a dimension set on both sides must agree (ASCII case-insensitive).
fn compatible(rule: &LogSource, event: &LogSource) -> bool {
    let agree = |r: &Option<String>, e: &Option<String>| match (r, e) {
        (Some(r), Some(e)) => r.eq_ignore_ascii_case(e),
        _ => true,
    };
    agree(&rule.product, &event.product)
        && agree(&rule.service, &event.service)
        && agree(&rule.category, &event.category)
}

impl Engine {
    /// An engine over `rules`. Rules were checked when the set was loaded; one that still fails
    /// here is listed in [`Engine::problems`].
    pub fn new(rules: RuleSet) -> Engine {
        let collection = &rules.collection;
        let mut problems = Vec::new();

        let mut correlation_fields_read = BTreeSet::new();
        for corr in &collection.correlations {
            correlation_fields(corr, &mut correlation_fields_read);
        }
        let detectors = SOURCES
            .iter()
            .map(|&source| {
                Detector::new(source, collection, &correlation_fields_read, &mut problems)
            })
            .collect();
        let correlations = Correlations::new(collection, &mut problems);
        problems.sort();
        problems.dedup();
        Engine {
            detectors,
            correlations,
            rule_count: collection.rules.len(),
            problems,
        }
    }

    /// Rules the engine could not take although the set loaded them (normally none).
    pub fn problems(&self) -> &[LoadProblem] {
        &self.problems
    }

    /// Evaluates one event from `source` at `now_ms` (milliseconds since the Unix epoch; the
    /// correlation windows run on this time, never on the clock). Rules whose logsource names a
    /// different product, service or category than the source's are not evaluated.
    pub fn observe(&mut self, event: &Value, source: Source, now_ms: i64) -> Vec<Match> {
        let Some(detector) = self.detectors.get(slot(source)) else {
            return Vec::new();
        };
        let view = SourceEvent::new(event, source, &detector.plan);
        // A fixed-logsource detector holds only rules that agree with it: nothing to prune.
        let logsource = if detector.fixed {
            None
        } else {
            source.logsource(event)
        };
        let detections = match logsource {
            Some(ls) => detector.engine.evaluate_pruned(&view, &ls),
            None => detector.engine.evaluate(&view),
        };
        let results = match &mut self.correlations {
            Some(c) => c.process(&view, detections, now_ms),
            None => detections,
        };
        results.into_iter().map(Match::from_result).collect()
    }

    /// Correlation state entries currently held (for monitoring the memory bound).
    pub fn state_entries(&self) -> usize {
        self.correlations
            .as_ref()
            .map_or(0, |c| c.inner.state_count())
    }

    /// Number of detection rules loaded.
    pub fn detection_rules(&self) -> usize {
        self.rule_count
    }
}

impl Detector {
    /// The detector for `source`: the rules whose logsource can agree with the source's, and
    /// the plan for the fields they, their filters and the correlations read.
    fn new(
        source: Source,
        collection: &SigmaCollection,
        correlation_fields_read: &BTreeSet<String>,
        problems: &mut Vec<LoadProblem>,
    ) -> Detector {
        let base = base_logsource(source);
        let subset = SigmaCollection {
            rules: collection
                .rules
                .iter()
                .filter(|r| compatible(&r.logsource, &base))
                .cloned()
                .collect(),
            correlations: Vec::new(),
            filters: collection.filters.clone(),
            ..SigmaCollection::default()
        };

        let mut fields = correlation_fields_read.clone();
        for rule in &subset.rules {
            detection_fields(&rule.detection, &mut fields);
        }
        for filter in &subset.filters {
            detection_fields(&filter.detection, &mut fields);
        }

        let mut engine = RsigmaEngine::new();
        if let Err(e) = engine.add_collection(&subset) {
            // Unreachable after RuleSet's checks unless rsigma changes; keep what loads.
            problems.push(engine_problem(None, None, &e));
            engine = RsigmaEngine::new();
            for (_, e) in engine.add_rules(subset.rules.iter()) {
                problems.push(engine_problem(None, None, &e));
            }
            for filter in &subset.filters {
                if let Err(e) = engine.apply_filter(filter) {
                    problems.push(engine_problem(filter.id.clone(), Some(&filter.title), &e));
                }
            }
        }
        let fixed = matches!(
            source,
            Source::CloudTrail | Source::KubernetesAudit | Source::Okta
        );
        Detector {
            engine,
            plan: FieldPlan::new(source, &fields),
            fixed,
        }
    }
}

impl Correlations {
    /// rsigma's correlation engine over the correlations and the rules they name; `None`
    /// when the set has no correlation.
    fn new(collection: &SigmaCollection, problems: &mut Vec<LoadProblem>) -> Option<Correlations> {
        if collection.correlations.is_empty() {
            return None;
        }
        let named: HashSet<&str> = collection
            .correlations
            .iter()
            .flat_map(|c| c.rules.iter().map(String::as_str))
            .collect();
        let names = |r: &SigmaRule| {
            r.id.as_deref().is_some_and(|id| named.contains(id))
                || r.name.as_deref().is_some_and(|n| named.contains(n))
        };
        let feeding_rules: Vec<SigmaRule> = collection
            .rules
            .iter()
            .filter(|r| names(r))
            .cloned()
            .collect();
        let feeding = feeding_rules.iter().filter_map(|r| r.id.clone()).collect();
        let percentiles = collection
            .correlations
            .iter()
            .filter(|c| c.correlation_type == CorrelationType::ValuePercentile)
            .filter_map(|c| match &c.condition {
                CorrelationCondition::Threshold { predicates, .. } => {
                    Some((c.id.clone(), c.title.clone(), predicates.clone()))
                }
                CorrelationCondition::Extended(_) => None,
            })
            .collect();
        let subset = SigmaCollection {
            rules: feeding_rules,
            correlations: collection
                .correlations
                .iter()
                .cloned()
                .map(in_milliseconds)
                .collect(),
            ..SigmaCollection::default()
        };

        let config = CorrelationConfig {
            max_state_entries: MAX_STATE_ENTRIES,
            max_group_entries: Some(MAX_GROUP_ENTRIES),
            ..CorrelationConfig::default()
        };
        let mut inner = CorrelationEngine::new(config.clone());
        if let Err(e) = inner.add_collection(&subset) {
            problems.push(engine_problem(None, None, &e));
            inner = CorrelationEngine::new(config);
            for rule in &subset.rules {
                if let Err(e) = inner.add_rule(rule) {
                    problems.push(engine_problem(rule.id.clone(), Some(&rule.title), &e));
                }
            }
            for corr in &subset.correlations {
                if let Err(e) = inner.add_correlation(corr) {
                    problems.push(engine_problem(corr.id.clone(), Some(&corr.title), &e));
                }
            }
        }
        Some(Correlations {
            inner,
            feeding,
            percentiles,
        })
    }

    /// Feeds the detections a correlation names to the correlation engine, and returns every
    /// detection it keeps (a rule only a correlation uses is not reported alone) in the order
    /// found, then the correlations that fired.
    fn process(
        &mut self,
        event: &SourceEvent<'_>,
        detections: Vec<EvaluationResult>,
        ts_ms: i64,
    ) -> Vec<EvaluationResult> {
        let feeds = |d: &EvaluationResult| {
            d.header
                .rule_id
                .as_deref()
                .is_some_and(|id| self.feeding.contains(id))
        };
        let fed: Vec<EvaluationResult> = detections.iter().filter(|d| feeds(d)).cloned().collect();
        if fed.is_empty() {
            // Nothing for any correlation: its state is untouched, so its bound still holds.
            return detections;
        }
        let out = self.inner.process_with_detections(event, fed, ts_ms);
        let (kept, mut fired): (Vec<_>, Vec<_>) = out.into_iter().partition(|r| r.is_detection());
        fired.retain(|r| self.condition_holds(r));
        // rsigma drops the detections of rules only a correlation uses, by rule id.
        let kept: HashSet<&str> = kept
            .iter()
            .filter_map(|d| d.header.rule_id.as_deref())
            .collect();
        let mut results: Vec<EvaluationResult> = detections
            .into_iter()
            .filter(|d| {
                !feeds(d)
                    || d.header
                        .rule_id
                        .as_deref()
                        .is_some_and(|id| kept.contains(id))
            })
            .collect();
        results.extend(fired);
        results
    }
}

impl Correlations {
    /// Whether a correlation result satisfies its rule's condition (see `percentiles`).
    fn condition_holds(&self, result: &EvaluationResult) -> bool {
        let ResultBody::Correlation(body) = &result.body else {
            return true;
        };
        if body.correlation_type != CorrelationType::ValuePercentile {
            return true;
        }
        self.percentiles
            .iter()
            .filter(|(id, title, _)| {
                *id == result.header.rule_id && *title == result.header.rule_title
            })
            .all(|(_, _, predicates)| satisfies(predicates, body.aggregated_value))
    }
}

fn engine_problem(
    rule_id: Option<String>,
    title: Option<&str>,
    e: &dyn fmt::Display,
) -> LoadProblem {
    LoadProblem {
        file: "(rule set)".into(),
        rule_id,
        title: title.map(str::to_owned),
        construct: "engine".into(),
        reason: e.to_string(),
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

    #[test]
    fn each_source_runs_the_rules_that_can_apply_to_it() {
        let rules = "title: any\nid: any\nlogsource: {category: x}\n\
                     detection: {sel: {eventName: Probe}, condition: sel}\n---\n\
                     title: aws\nid: aws\nlogsource: {product: aws, service: cloudtrail}\n\
                     detection: {sel: {eventName: Probe}, condition: sel}\n---\n\
                     title: win\nid: win\nlogsource: {product: windows}\n\
                     detection: {sel: {eventName: Probe}, condition: sel}\n";
        let set = RuleSet::from_yaml("t.yml", rules);
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let mut engine = Engine::new(set);
        assert_eq!(engine.detection_rules(), 3);
        let ids = |m: Vec<Match>| {
            let mut ids: Vec<String> = m.into_iter().map(|m| m.rule_id).collect();
            ids.sort();
            ids
        };
        let ct = json!({"eventSource": "s3.amazonaws.com", "eventName": "Probe"});
        assert_eq!(
            ids(engine.observe(&ct, Source::CloudTrail, 0)),
            ["any", "aws"]
        );
        assert_eq!(
            ids(engine.observe(&ct, Source::Unknown, 0)),
            ["any", "aws", "win"]
        );
        // Field names in another case still reach the per-source index.
        let lower = json!({"eventsource": "s3.amazonaws.com", "eventname": "Probe"});
        assert_eq!(
            ids(engine.observe(&lower, Source::CloudTrail, 0)),
            ["any", "aws"]
        );
        assert!(engine.observe(&lower, Source::Unknown, 0).is_empty());
    }
}
