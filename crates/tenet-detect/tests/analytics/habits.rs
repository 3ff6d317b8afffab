//! Deviation from the principal's baseline: request rate, hours, source networks.

use tenet_detect::{Alert, Analytics, Level, rules};
use time::{Duration, OffsetDateTime};

use crate::support::*;

/// Analytics whose baselines count after ten events, so rate tests need no long stream.
fn quick() -> Analytics {
    let mut c = config();
    c.learning.period_secs = 0;
    Analytics::new(c).unwrap()
}

/// `n` requests spread over the minute starting at `start`.
fn minute(a: &mut Analytics, p: &str, start: OffsetDateTime, n: i64) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for i in 0..n {
        let t = start + Duration::milliseconds(i * 59_000 / n.max(1));
        alerts.extend(feed(a, &Req::new(p, "orders").at(t)));
    }
    alerts
}

#[test]
fn request_rate_far_above_the_baseline_fires() {
    let mut a = quick();
    let p = spiffe("web");
    let start = T0 + Duration::hours(10);
    for m in 0..30 {
        let alerts = minute(&mut a, &p, start + Duration::minutes(m), 10);
        assert!(alerts.is_empty(), "minute {m}: {alerts:#?}");
    }
    // Near miss: five times the usual rate, still under the floor of 60 per minute.
    let alerts = minute(&mut a, &p, start + Duration::minutes(30), 50);
    assert!(of(&alerts, rules::RATE_ANOMALY).is_empty(), "{alerts:#?}");

    let alerts = minute(&mut a, &p, start + Duration::minutes(31), 200);
    let rate = of(&alerts, rules::RATE_ANOMALY);
    assert_eq!(rate.len(), 1, "once per bucket: {alerts:#?}");
    assert_eq!(rate[0].level, Level::Medium);
    // The 50-request minute was folded in: mean 10 + 0.1 × 40 = 14, variance 0.9 × 40 × 4.
    assert_eq!(
        rate[0].explanation,
        format!(
            "{p} made 63 requests in the current 60 s bucket; its baseline is 14.0 ± 12.0 per \
             bucket (EWMA over 31 active buckets); threshold 62.0 (mean + 4σ, at least 60)"
        )
    );
}

#[test]
fn noisy_busy_principal_within_its_deviation_does_not_fire() {
    let mut a = quick();
    let p = spiffe("batch");
    let start = T0 + Duration::hours(10);
    for m in 0..40i64 {
        let n = if m % 2 == 0 { 80 } else { 120 };
        minute(&mut a, &p, start + Duration::minutes(m), n);
    }
    let alerts = minute(&mut a, &p, start + Duration::minutes(40), 150);
    assert!(of(&alerts, rules::RATE_ANOMALY).is_empty(), "{alerts:#?}");
    let alerts = minute(&mut a, &p, start + Duration::minutes(41), 400);
    let rate = of(&alerts, rules::RATE_ANOMALY);
    assert_eq!(rate.len(), 1, "{alerts:#?}");
    assert!(rate[0].explanation.contains("(mean + 4σ, at least 60)"));
}

#[test]
fn activity_at_an_unusual_hour_fires_and_next_to_usual_hours_does_not() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["orders"]);
    let evening = after - Duration::hours(10) + Duration::hours(17) + Duration::minutes(30);
    let alerts = feed(&mut a, &Req::new(&p, "orders").at(evening));
    assert!(
        alerts.is_empty(),
        "17:30 is within the tolerance: {alerts:#?}"
    );

    let night = after - Duration::hours(10) + Duration::days(1) + Duration::hours(3);
    let alerts = feed(&mut a, &Req::new(&p, "orders").at(night));
    let hour = of(&alerts, rules::UNUSUAL_HOUR);
    assert_eq!(hour.len(), 1, "{alerts:#?}");
    assert_eq!(hour[0].level, Level::Low);
    assert_eq!(
        hour[0].explanation,
        format!(
            "{p} was active at 03:00–04:00 UTC, outside its usual hours (UTC, ± 1 h): \
             09:00–18:00"
        )
    );
}

#[test]
fn new_source_network_fires_and_the_same_network_does_not() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["orders"]);
    let alerts = feed(&mut a, &Req::new(&p, "orders").from("10.0.0.77").at(after));
    assert!(alerts.is_empty(), "same /24: {alerts:#?}");

    let alerts = feed(
        &mut a,
        &Req::new(&p, "orders").from("198.51.100.7").at(after),
    );
    let net = of(&alerts, rules::NEW_SOURCE_NETWORK);
    assert_eq!(net.len(), 1, "{alerts:#?}");
    assert_eq!(net[0].level, Level::Medium);
    assert_eq!(
        net[0].explanation,
        format!(
            "{p} connected from 198.51.100.7 in 198.51.100.0/24, a network never seen for it; \
             known networks: 10.0.0.0/24"
        )
    );

    let v6 = Req::new(&p, "orders").from("2001:db8:1:2::5");
    let alerts = feed(&mut a, &v6.at(after + Duration::minutes(1)));
    assert_eq!(
        of(&alerts, rules::NEW_SOURCE_NETWORK)[0].evidence["network"],
        "2001:db8:1:2::/64"
    );
    // An allowed request is learned from once it has been flagged: the network is known now.
    let v6 = Req::new(&p, "orders").from("2001:db8:1:2:ffff::9");
    assert!(feed(&mut a, &v6.at(after + Duration::minutes(2))).is_empty());
}
