//! Protocol abuse: HTTP/2 connections the gateway ended because their client broke the
//! protocol.

use std::net::{IpAddr, Ipv4Addr};

use tenet_detect::{Analytics, Level, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn a_workload_that_breaks_http2_fires_once_per_cooldown_and_raises_its_risk() {
    let mut a = analytics();
    let p = spiffe("web");
    let subject = Subject::Principal(p.clone());
    let first = http2_violation("10.0.0.7", Some(&p), "http2_enhance_your_calm", T0);
    let alerts = feed(&mut a, &first);
    let abuse = of(&alerts, rules::PROTOCOL_ABUSE);
    assert_eq!(abuse.len(), 1, "{alerts:#?}");
    assert_eq!(abuse[0].subject, subject);
    assert_eq!(abuse[0].level, Level::Medium);
    assert_eq!(
        abuse[0].explanation,
        format!(
            "principal {p} broke HTTP/2 (http2_enhance_your_calm) on listener main from \
             10.0.0.7, and the gateway ended its connection"
        )
    );
    assert_eq!(abuse[0].evidence["kind"], "http2_enhance_your_calm");
    assert_eq!(a.risk(&subject, T0), 15);

    // A flood within the cool-down fires nothing more, and raises nothing more.
    for i in 1..=40 {
        let t = T0 + Duration::seconds(i);
        let e = http2_violation("10.0.0.7", Some(&p), "http2_protocol_error", t);
        assert!(feed(&mut a, &e).is_empty(), "fired again at {i} s");
    }
    // After it, the next one fires and counts those in between.
    let t = T0 + Duration::seconds(61);
    let alerts = feed(
        &mut a,
        &http2_violation("10.0.0.7", Some(&p), "http2_protocol_error", t),
    );
    let abuse = of(&alerts, rules::PROTOCOL_ABUSE);
    assert_eq!(abuse.len(), 1, "{alerts:#?}");
    assert_eq!(abuse[0].evidence["connections"], 41);
    assert!(
        abuse[0]
            .explanation
            .ends_with("; 41 connections ended so since the last alert on it"),
        "{}",
        abuse[0].explanation
    );
    assert!(a.risk(&subject, t) > 15);

    // Sustained abuse crosses the re-authenticate threshold, then the cut-off.
    let mut crossed = Vec::new();
    for minute in 2..=8 {
        let t = T0 + Duration::seconds(61 * minute);
        let e = http2_violation("10.0.0.7", Some(&p), "http2_protocol_error", t);
        crossed.extend(
            of(&feed(&mut a, &e), rules::RISK_THRESHOLD)
                .into_iter()
                .map(|alert| alert.evidence["action"].clone()),
        );
    }
    assert_eq!(crossed, ["reauthenticate", "cut_off"], "{crossed:?}");
}

#[test]
fn a_reset_flood_is_reported_without_raising_risk_and_keeps_its_own_cooldown() {
    let mut a = analytics();
    let p = spiffe("grpc-client");
    let subject = Subject::Principal(p.clone());
    let e = http2_violation("10.0.0.8", Some(&p), "http2_reset_flood", T0);
    let alerts = feed(&mut a, &e);
    let abuse = of(&alerts, rules::PROTOCOL_ABUSE);
    assert_eq!(abuse.len(), 1, "{alerts:#?}");
    assert_eq!(abuse[0].level, Level::Informational);
    assert!(
        abuse[0]
            .explanation
            .contains("reset most of its HTTP/2 streams as soon as they started"),
        "{}",
        abuse[0].explanation
    );
    // A slow upstream makes such a client flood every few seconds: never a risk.
    for i in 1..=600 {
        let t = T0 + Duration::seconds(5 * i);
        feed(
            &mut a,
            &http2_violation("10.0.0.8", Some(&p), "http2_reset_flood", t),
        );
    }
    assert_eq!(a.risk(&subject, T0 + Duration::seconds(3000)), 0);
    // A protocol violation within the flood's cool-down still fires.
    let t = T0 + Duration::seconds(3001);
    let e = http2_violation("10.0.0.8", Some(&p), "http2_protocol_error", t);
    let alerts = feed(&mut a, &e);
    assert_eq!(of(&alerts, rules::PROTOCOL_ABUSE)[0].level, Level::Medium);
}

#[test]
fn an_anonymous_client_that_breaks_http2_is_reported_by_its_address() {
    let mut a = analytics();
    for principal in [None, Some("anonymous")] {
        let ip = if principal.is_none() {
            "198.51.100.4"
        } else {
            "198.51.100.5"
        };
        let e = http2_violation(ip, principal, "http2_flow_control_error", T0);
        let alerts = feed(&mut a, &e);
        let abuse = of(&alerts, rules::PROTOCOL_ABUSE);
        assert_eq!(abuse.len(), 1, "{alerts:#?}");
        assert_eq!(abuse[0].subject, Subject::Source(ip.parse().unwrap()));
    }
}

#[test]
fn other_refusals_are_not_protocol_abuse_and_the_cooldown_table_stays_bounded() {
    let mut a = analytics();
    // Bad HTTP/1.1 heads and TLS failures are someone else's business.
    let e = http_refusal("198.51.100.1", "encoded_slash", T0);
    assert!(of(&feed(&mut a, &e), rules::PROTOCOL_ABUSE).is_empty());
    let e = tls_refusal("198.51.100.1", "unknown_issuer", T0);
    assert!(of(&feed(&mut a, &e), rules::PROTOCOL_ABUSE).is_empty());
    // Nor is the summary of HTTP/2 refusals past a source's limit: the refusals recorded one
    // by one before it fired what they should; nor does a TLS one count as failures.
    for t in 0..30 {
        let at = T0 + Duration::seconds(t);
        let e = http2_violation("198.51.100.2", None, tenet_event::THROTTLED, at);
        assert!(feed(&mut a, &e).is_empty(), "a summary fired");
        let e = tls_refusal("198.51.100.2", tenet_event::THROTTLED, at);
        assert!(feed(&mut a, &e).is_empty(), "a summary fired");
    }

    let mut c = config();
    c.limits.max_sources = 100;
    let mut a = Analytics::new(c).unwrap();
    for i in 0..10_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i)).to_string();
        let e = http2_violation(&ip, None, "http2_protocol_error", T0);
        assert_eq!(of(&feed(&mut a, &e), rules::PROTOCOL_ABUSE).len(), 1);
    }
    assert_eq!(a.tracked().protocol_subjects, 100);
}
