//! Each correlation type on its own: it fires on the events that satisfy it and not on
//! events that come close (too few distinct values, a sum or average under the threshold,
//! another group, outside the timespan, the wrong order).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use tenet_sigma::{Engine, RuleSet, Source};

/// Two detections the correlations below count.
const BASE: &str = "\
title: login
id: login
name: login
logsource: {product: x}
detection: {sel: {action: login}, condition: sel}
---
title: transfer
id: transfer
name: transfer
logsource: {product: x}
detection: {sel: {action: transfer}, condition: sel}
";

fn engine(correlation: &str) -> Engine {
    let text = format!("{BASE}---\ntitle: corr\nid: corr\ncorrelation:\n{correlation}");
    let set = RuleSet::from_yaml("c.yml", &text);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    assert_eq!(set.correlations().len(), 1);
    Engine::new(set)
}

/// Whether the correlation fired on this event (at `ms` since the epoch).
fn fired(engine: &mut Engine, event: Value, ms: i64) -> bool {
    engine
        .observe(&event, Source::Unknown, ms)
        .iter()
        .any(|m| m.correlation && m.rule_id == "corr")
}

fn ev(action: &str, user: &str, extra: Value) -> Value {
    let mut e = json!({"action": action, "user": user});
    if let (Some(map), Value::Object(more)) = (e.as_object_mut(), extra) {
        map.extend(more);
    }
    e
}

#[test]
fn value_count_counts_distinct_values_per_group() {
    let corr = "  type: value_count\n  rules: [transfer]\n  group-by: [user]\n  \
                timespan: 1m\n  condition: {field: dst, gte: 3}\n";
    let mut e = engine(corr);
    // The same value again does not count twice; another user's values are theirs.
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "x"})),
        1_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "x"})),
        2_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "b", json!({"dst": "y"})),
        3_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "y"})),
        4_000
    ));
    // Another rule's event with a new value does not count.
    assert!(!fired(&mut e, ev("login", "a", json!({"dst": "w"})), 5_000));
    assert!(fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "z"})),
        6_000
    ));

    // Three distinct values spread over more than the timespan do not fire.
    let mut e = engine(corr);
    assert!(!fired(&mut e, ev("transfer", "a", json!({"dst": "x"})), 0));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "y"})),
        40_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"dst": "z"})),
        90_000
    ));
}

#[test]
fn value_sum_adds_the_field_per_group() {
    let corr = "  type: value_sum\n  rules: [transfer]\n  group-by: [user]\n  \
                timespan: 1m\n  condition: {field: bytes, gte: 1000}\n";
    let mut e = engine(corr);
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"bytes": 400})),
        1_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "b", json!({"bytes": 900})),
        2_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"bytes": 500})),
        3_000
    ));
    // Events without the field, or of another rule, add nothing.
    assert!(!fired(&mut e, ev("transfer", "a", json!({})), 4_000));
    assert!(!fired(
        &mut e,
        ev("login", "a", json!({"bytes": 5000})),
        5_000
    ));
    assert!(fired(
        &mut e,
        ev("transfer", "a", json!({"bytes": 100})),
        6_000
    ));

    // The same sum outside the timespan does not fire.
    let mut e = engine(corr);
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"bytes": 600})),
        0
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"bytes": 600})),
        61_000
    ));
}

#[test]
fn value_avg_averages_the_field_per_group() {
    let corr = "  type: value_avg\n  rules: [transfer]\n  group-by: [user]\n  \
                timespan: 1m\n  condition: {field: ms, gt: 500}\n";
    let mut e = engine(corr);
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 100})),
        1_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 800})),
        2_000
    )); // 450
    assert!(!fired(&mut e, ev("login", "a", json!({"ms": 5000})), 2_500));
    assert!(fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 700})),
        3_000
    )); // 533
    assert!(!fired(&mut e, ev("transfer", "a", json!({"ms": 0})), 4_000)); // 400
}

#[test]
fn value_percentile_compares_the_percentile_with_the_condition() {
    let corr = "  type: value_percentile\n  rules: [transfer]\n  group-by: [user]\n  \
                timespan: 1m\n  condition: {field: ms, percentile: 90, gt: 1000}\n";
    let mut e = engine(corr);
    // p90 of 10, 20, 30 is 28: under the threshold, so nothing fires.
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 10})),
        1_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 20})),
        2_000
    ));
    assert!(!fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 30})),
        3_000
    ));
    // Another group's slow request is its own.
    assert!(fired(
        &mut e,
        ev("transfer", "b", json!({"ms": 5000})),
        3_500
    ));
    // p90 of 10, 20, 30, 5000 is 3509.
    assert!(fired(
        &mut e,
        ev("transfer", "a", json!({"ms": 5000})),
        4_000
    ));
}

#[test]
fn temporal_ordered_needs_the_rules_in_their_order() {
    let corr = "  type: temporal_ordered\n  rules: [login, transfer]\n  group-by: [user]\n  \
                timespan: 1m\n";
    // The wrong order does not fire.
    let mut e = engine(corr);
    assert!(!fired(&mut e, ev("transfer", "a", json!({})), 1_000));
    assert!(!fired(&mut e, ev("login", "a", json!({})), 5_000));
    // Then the right order does (the earlier transfer does not count).
    assert!(fired(&mut e, ev("transfer", "a", json!({})), 6_000));

    // Another user's login does not open the sequence; nor does one out of the timespan.
    let mut e = engine(corr);
    assert!(!fired(&mut e, ev("login", "b", json!({})), 1_000));
    assert!(!fired(&mut e, ev("transfer", "a", json!({})), 2_000));
    assert!(!fired(&mut e, ev("login", "a", json!({})), 3_000));
    assert!(!fired(&mut e, ev("transfer", "a", json!({})), 70_000));

    // Within one second the order of the events still counts.
    let mut e = engine(corr);
    assert!(!fired(&mut e, ev("transfer", "a", json!({})), 10_200));
    assert!(!fired(&mut e, ev("login", "a", json!({})), 10_500));
    let mut e = engine(corr);
    assert!(!fired(&mut e, ev("login", "a", json!({})), 10_200));
    assert!(fired(&mut e, ev("transfer", "a", json!({})), 10_500));
}
