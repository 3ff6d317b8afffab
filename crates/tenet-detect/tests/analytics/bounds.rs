//! Memory stays bounded under floods of distinct principals and source addresses, and a
//! flood cannot evict the baselines already learned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tenet_detect::{Analytics, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn a_million_distinct_principals_and_addresses_stay_at_the_caps() {
    let mut c = config();
    c.limits.max_principals = 1_000;
    c.limits.max_sources = 2_000;
    c.limits.max_risk_subjects = 3_000;
    let mut a = Analytics::new(c).unwrap();

    // An established principal before the flood.
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["catalog", "orders"]);
    assert!(a.is_established(&p));

    let mut peak = a.tracked();
    for i in 0..1_000_000u32 {
        let ip = if i.is_multiple_of(2) {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
        } else {
            IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)))
        };
        let mut req = Req::new(&format!("spiffe://flood.example/{i}"), "orders");
        req.event.source_ip = ip;
        // Every third request is denied, so the sources table fills too.
        if i.is_multiple_of(3) {
            req = req.denied();
        }
        let t = after + Duration::milliseconds(i64::from(i));
        feed(&mut a, &req.at(t));
        if i.is_multiple_of(1000) {
            a.raise(&Subject::Source(ip), 1, "flood", t);
            let now = a.tracked();
            peak.principals = peak.principals.max(now.principals);
            peak.sources = peak.sources.max(now.sources);
            peak.risk_subjects = peak.risk_subjects.max(now.risk_subjects);
        }
    }
    let end = a.tracked();
    assert_eq!(end.principals, 1_000, "{end:?}");
    assert_eq!(end.learning, 999, "{end:?}");
    assert_eq!(peak.principals, 1_000, "{peak:?}");
    assert_eq!(end.sources, 2_000, "{end:?}");
    assert_eq!(peak.sources, 2_000, "{peak:?}");
    assert!(end.risk_subjects <= 3_000, "{end:?}");
    assert!(
        end.names < 10,
        "service, route and policy names only: {end:?}"
    );

    // The established baseline survived: a new service still fires at once, a known one
    // does not.
    assert!(a.is_established(&p));
    let t = after + Duration::seconds(1_001);
    assert!(feed(&mut a, &Req::new(&p, "catalog").at(t)).is_empty());
    let alerts = feed(&mut a, &Req::new(&p, "vault").at(t));
    assert_eq!(of(&alerts, rules::LATERAL_MOVEMENT).len(), 1, "{alerts:#?}");
}

#[test]
fn established_principals_fill_the_whole_cap_and_no_more() {
    let mut c = config();
    c.learning.period_secs = 0;
    c.learning.min_events = 1;
    c.limits.max_principals = 1_000;
    let mut a = Analytics::new(c).unwrap();
    let mut peak = 0;
    for i in 0..100_000u32 {
        let req = Req::new(&format!("spiffe://fleet.example/{i}"), "orders");
        feed(&mut a, &req.at(T0 + Duration::milliseconds(i64::from(i))));
        peak = peak.max(a.tracked().principals);
    }
    assert_eq!(peak, 1_000);
    assert_eq!(a.tracked().principals, 1_000);
    assert!(a.is_established("spiffe://fleet.example/99999"));
    assert!(!a.is_established("spiffe://fleet.example/0"), "evicted");
}

#[test]
fn a_flood_of_risk_subjects_stays_at_the_cap() {
    let mut c = config();
    c.limits.max_risk_subjects = 500;
    let mut a = Analytics::new(c).unwrap();
    for i in 0..100_000 {
        a.raise(&Subject::Session(format!("s{i}")), 10, "x", T0);
    }
    assert_eq!(a.tracked().risk_subjects, 500);
    assert_eq!(a.risk(&Subject::Session("s99999".into()), T0), 10);
    assert_eq!(a.risk(&Subject::Session("s0".into()), T0), 0, "evicted");
}

#[test]
fn hostile_values_neither_panic_nor_grow_memory() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["orders"]);
    let names_before = a.tracked().names;
    // Invented methods, huge paths, a clock jumping back and far ahead.
    for (i, method) in ["BREW", "", "G\u{0}T", &"X".repeat(10_000)]
        .iter()
        .enumerate()
    {
        let req = Req::new(&p, "orders")
            .method(method)
            .path(&"/a".repeat(5_000));
        feed(&mut a, &req.at(after + Duration::seconds(i as i64)));
    }
    let req = Req::new(&p, "orders");
    a.observe(&req.at(after), after - Duration::days(365 * 50));
    a.observe(
        &req.at(after),
        time::macros::datetime!(9999-12-31 23:59:59.999 UTC),
    );
    a.observe(
        &req.at(after),
        time::macros::datetime!(-9999-01-01 0:00 UTC),
    );
    a.raise(
        &Subject::Principal(p.clone()),
        255,
        &"r".repeat(100_000),
        after,
    );
    assert!(a.risk(&Subject::Principal(p.clone()), after) <= 100);
    assert_eq!(a.tracked().names, names_before);
}

#[test]
fn a_fleet_larger_than_the_learning_reserve_still_establishes() {
    // A new deployment: 90 workloads learning at once with room for 100 principals, of which
    // established baselines may keep 80. Learning must not thrash.
    let mut c = config();
    c.limits.max_principals = 100;
    let mut a = Analytics::new(c).unwrap();
    for round in 0..24 {
        for w in 0..90 {
            let t = T0 + Duration::hours(2 * round) + Duration::seconds(w);
            feed(
                &mut a,
                &Req::new(&format!("spiffe://fleet.example/{w}"), "orders").at(t),
            );
        }
    }
    let established = (0..90)
        .filter(|w| a.is_established(&format!("spiffe://fleet.example/{w}")))
        .count();
    assert_eq!(established, 90);
    assert_eq!(a.tracked().principals, 90);
}
