//! Lateral movement: services and routes outside the baseline, and fan-out.

use tenet_detect::{Level, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn new_service_after_learning_fires_and_a_known_one_does_not() {
    let mut a = analytics();
    let p = spiffe("web");
    let (learning, after) = learn(&mut a, &p, &["catalog", "orders", "users"]);
    assert!(learning.is_empty(), "{learning:#?}");
    assert!(a.is_established(&p));

    // Near miss: a known service.
    assert!(feed(&mut a, &Req::new(&p, "orders").at(after)).is_empty());

    let req = Req::new(&p, "billing").path("/invoices");
    let alerts = feed(&mut a, &req.at(after + Duration::minutes(1)));
    let lateral = of(&alerts, rules::LATERAL_MOVEMENT);
    assert_eq!(lateral.len(), 1, "{alerts:#?}");
    assert_eq!(lateral[0].level, Level::High);
    assert_eq!(lateral[0].subject, Subject::Principal(p.clone()));
    assert_eq!(
        lateral[0].explanation,
        format!(
            "{p} reached service \"billing\" (GET billing.example.test /invoices, allowed), \
             outside its baseline of 3 services learned over 2 days: catalog, orders, users"
        )
    );
    assert_eq!(lateral[0].evidence["baseline_services"][1], "orders");
    assert!(lateral[0].evidence["event_id"].is_string());

    // Reported once: the move was allowed, so billing is part of the baseline now.
    let again = feed(&mut a, &req.at(after + Duration::minutes(2)));
    assert!(of(&again, rules::LATERAL_MOVEMENT).is_empty());
}

#[test]
fn denied_probes_while_learning_do_not_become_the_baseline() {
    let mut a = analytics();
    let p = spiffe("web");
    // While the baseline is learned, the principal is also denied on a service, again and
    // again (an attacker probing early with a stolen SVID).
    for i in 0..20 {
        let t = T0 + Duration::hours(9) + Duration::minutes(i);
        assert!(
            of(
                &feed(&mut a, &Req::new(&p, "vault").denied().at(t)),
                rules::LATERAL_MOVEMENT
            )
            .is_empty()
        );
    }
    let (_, after) = learn(&mut a, &p, &["catalog"]);
    assert!(a.is_established(&p));
    // The same service after learning: outside the baseline, flagged on every denied try
    // and on the first allowed one.
    for (i, req) in [
        Req::new(&p, "vault").denied(),
        Req::new(&p, "vault").denied(),
        Req::new(&p, "vault"),
    ]
    .iter()
    .enumerate()
    {
        let alerts = feed(&mut a, &req.at(after + Duration::minutes(i as i64)));
        let lateral = of(&alerts, rules::LATERAL_MOVEMENT);
        assert_eq!(lateral.len(), 1, "{i}: {alerts:#?}");
        assert!(
            lateral[0]
                .explanation
                .contains("outside its baseline of 1 services"),
            "{}",
            lateral[0].explanation
        );
    }
    // A known service is still quiet, and so is vault once an allowed request was flagged.
    for (i, service) in ["catalog", "vault"].iter().enumerate() {
        let t = after + Duration::minutes(5 + i as i64);
        assert!(
            feed(&mut a, &Req::new(&p, service).at(t)).is_empty(),
            "{service}"
        );
    }
}

#[test]
fn denied_attempt_on_a_new_service_is_medium() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["catalog"]);
    let alerts = feed(&mut a, &Req::new(&p, "vault").denied().at(after));
    let lateral = of(&alerts, rules::LATERAL_MOVEMENT);
    assert_eq!(lateral.len(), 1);
    assert_eq!(lateral[0].level, Level::Medium);
    assert!(
        lateral[0]
            .explanation
            .contains("denied), outside its baseline")
    );
}

#[test]
fn nothing_is_novel_while_learning() {
    let mut a = analytics();
    let p = spiffe("web");
    let mut alerts = Vec::new();
    for (i, s) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        alerts.extend(feed(
            &mut a,
            &Req::new(&p, s).at(T0 + Duration::hours(i as i64 + 9)),
        ));
    }
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert!(!a.is_established(&p));
}

#[test]
fn new_route_of_a_known_service_is_low() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["orders"]);
    let req = Req::new(&p, "orders")
        .route("orders-admin")
        .method("DELETE")
        .path("/all");
    let alerts = feed(&mut a, &req.at(after));
    let lateral = of(&alerts, rules::LATERAL_MOVEMENT);
    assert_eq!(lateral.len(), 1, "{alerts:#?}");
    assert_eq!(lateral[0].level, Level::Low);
    assert_eq!(
        lateral[0].explanation,
        format!(
            "{p} used route \"orders-admin\" of service \"orders\" for the first time \
             (DELETE /all, allowed); routes it used there: orders"
        )
    );
}

#[test]
fn fan_out_to_many_services_fires_beyond_the_learned_peak() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["s0", "s1", "s2"]);
    let mut alerts = Vec::new();
    for i in 0..8 {
        let t = after + Duration::seconds(20 * i);
        alerts.extend(feed(&mut a, &Req::new(&p, &format!("s{i}")).at(t)));
    }
    let fan = of(&alerts, rules::SERVICE_FAN_OUT);
    assert_eq!(fan.len(), 1, "{alerts:#?}");
    assert_eq!(fan[0].level, Level::High);
    assert_eq!(
        fan[0].explanation,
        format!(
            "{p} reached 8 distinct services within 300 s (threshold 8: at least 8 and above \
             its previous peak of 3): s0, s1, s2, s3, s4, s5, s6, s7"
        )
    );
}

#[test]
fn near_miss_fan_out_below_threshold_or_spread_out() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["s0", "s1", "s2"]);
    let mut alerts = Vec::new();
    // Seven services in five minutes.
    for i in 0..7 {
        let t = after + Duration::seconds(20 * i);
        alerts.extend(feed(&mut a, &Req::new(&p, &format!("s{i}")).at(t)));
    }
    // Twelve services, one every ten minutes.
    for i in 0..12 {
        let t = after + Duration::hours(1) + Duration::minutes(10 * i);
        alerts.extend(feed(&mut a, &Req::new(&p, &format!("t{i}")).at(t)));
    }
    assert!(
        of(&alerts, rules::SERVICE_FAN_OUT).is_empty(),
        "{alerts:#?}"
    );
}

#[test]
fn an_aggregator_that_learned_a_wide_fan_out_is_not_flagged_for_it() {
    let mut a = analytics();
    let p = spiffe("aggregator");
    let services: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let (learning, after) = learn(&mut a, &p, &names);
    // While learning, fanning out further than ever before is reported: once here.
    assert_eq!(
        of(&learning, rules::SERVICE_FAN_OUT).len(),
        1,
        "{learning:#?}"
    );
    let mut alerts = Vec::new();
    for (i, s) in names.iter().enumerate() {
        alerts.extend(feed(
            &mut a,
            &Req::new(&p, s).at(after + Duration::seconds(i as i64)),
        ));
    }
    assert!(alerts.is_empty(), "{alerts:#?}");
}
