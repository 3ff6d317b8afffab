//! Authentication- and authorization-failure bursts.

use tenet_detect::{Level, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn tls_refusals_from_one_source_fire_at_the_threshold() {
    let mut a = analytics();
    let mut alerts = Vec::new();
    for i in 0..19 {
        let e = tls_refusal("203.0.113.9", "unknown_issuer", T0 + Duration::seconds(i));
        assert!(feed(&mut a, &e).is_empty(), "fired early at {i}");
    }
    // A denial from the same source completes the burst.
    let denied = Req::new(&spiffe("scanner"), "orders")
        .from("203.0.113.9")
        .denied();
    alerts.extend(feed(&mut a, &denied.at(T0 + Duration::seconds(19))));

    let bursts = of(&alerts, rules::AUTH_FAILURE_BURST);
    assert_eq!(bursts.len(), 1, "{alerts:#?}");
    let burst = bursts[0];
    assert_eq!(
        burst.subject,
        Subject::Source("203.0.113.9".parse().unwrap())
    );
    assert_eq!(burst.level, Level::Medium);
    assert_eq!(
        burst.explanation,
        "source 203.0.113.9 failed authentication or authorization 20 times within 19.0 s \
         (threshold 20 per 60 s): 19 unknown_issuer, 1 denied by policy"
    );
    assert_eq!(burst.evidence["failures"], 20);

    // Still bursting: not reported again within the window.
    let e = tls_refusal("203.0.113.9", "unknown_issuer", T0 + Duration::seconds(20));
    assert!(of(&feed(&mut a, &e), rules::AUTH_FAILURE_BURST).is_empty());
}

#[test]
fn near_miss_failures_spread_out_or_not_authentication_do_not_fire() {
    let mut a = analytics();
    // One every four seconds: 15 per minute, below 20.
    for i in 0..200 {
        let e = tls_refusal(
            "203.0.113.9",
            "expired_certificate",
            T0 + Duration::seconds(4 * i),
        );
        assert!(feed(&mut a, &e).is_empty());
    }
    // Malformed TLS, scanners and bad HTTP are not authentication attempts.
    for i in 0..100 {
        let t = T0 + Duration::milliseconds(i);
        assert!(feed(&mut a, &tls_refusal("198.51.100.1", "malformed_tls", t)).is_empty());
        assert!(feed(&mut a, &http_refusal("198.51.100.1", "encoded_slash", t)).is_empty());
    }
}

#[test]
fn denials_of_one_principal_fire_and_nine_do_not() {
    let mut a = analytics();
    let p = spiffe("web");
    let mut alerts = Vec::new();
    for i in 0..9 {
        let req = Req::new(&p, "payroll")
            .from(&format!("10.0.{i}.1"))
            .denied();
        alerts.extend(feed(&mut a, &req.at(T0 + Duration::seconds(3 * i))));
    }
    assert!(
        of(&alerts, rules::AUTH_FAILURE_BURST).is_empty(),
        "nine is a near miss"
    );

    let req = Req::new(&p, "ledger").no_route();
    let alerts = feed(&mut a, &req.at(T0 + Duration::seconds(27)));
    let bursts = of(&alerts, rules::AUTH_FAILURE_BURST);
    assert_eq!(bursts.len(), 1, "{alerts:#?}");
    assert_eq!(bursts[0].subject, Subject::Principal(p.clone()));
    assert_eq!(
        bursts[0].explanation,
        format!(
            "principal {p} was refused 10 times within 27.0 s (threshold 10 per 60 s): \
             9 denied by policy, 1 no route"
        )
    );
}

#[test]
fn anonymous_denials_count_per_source_only() {
    let mut a = analytics();
    let mut alerts = Vec::new();
    for i in 0..15 {
        let req = Req::new("anonymous", "orders")
            .from(&format!("192.0.2.{i}"))
            .serial(None)
            .denied();
        alerts.extend(feed(&mut a, &req.at(T0 + Duration::seconds(i))));
    }
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert_eq!(a.tracked().principals, 0);
}

fn sign_in_failure(user: &str, ip: &str, time: time::OffsetDateTime) -> tenet_event::Event {
    tenet_event::Event::new(
        time,
        tenet_event::EventKind::Authentication(tenet_event::AuthenticationEvent {
            activity: "mfa".into(),
            user: user.into(),
            provider: Some("corp".into()),
            factor: Some("webauthn".into()),
            success: false,
            reason: "signature".into(),
            source_ip: ip.parse().unwrap(),
            device: None,
            request_id: None,
        }),
    )
}

/// People: failed second factors burst per person; sign-ins that failed before anyone was
/// known count only toward the source.
#[test]
fn failed_sign_ins_burst_per_person_and_per_source() {
    let mut a = analytics();
    let mut alerts = Vec::new();
    for i in 0..10 {
        let e = sign_in_failure("user:corp:42", "198.51.100.7", T0 + Duration::seconds(i));
        alerts.extend(feed(&mut a, &e));
    }
    let bursts = of(&alerts, rules::AUTH_FAILURE_BURST);
    assert_eq!(bursts.len(), 1, "{alerts:#?}");
    assert_eq!(bursts[0].subject, Subject::Principal("user:corp:42".into()));
    assert!(
        bursts[0].explanation.contains("10 failed sign-in"),
        "{}",
        bursts[0].explanation
    );

    let mut b = analytics();
    let mut alerts = Vec::new();
    for i in 0..20 {
        let e = sign_in_failure("unknown", "203.0.113.5", T0 + Duration::seconds(i));
        alerts.extend(feed(&mut b, &e));
    }
    let bursts = of(&alerts, rules::AUTH_FAILURE_BURST);
    assert_eq!(bursts.len(), 1, "{alerts:#?}");
    assert_eq!(
        bursts[0].subject,
        Subject::Source("203.0.113.5".parse().unwrap())
    );
    // A successful step is no failure.
    let mut ok = sign_in_failure("user:corp:42", "198.51.100.7", T0);
    if let tenet_event::EventKind::Authentication(e) = &mut ok.kind {
        e.success = true;
    }
    assert!(feed(&mut analytics(), &ok).is_empty());
}
