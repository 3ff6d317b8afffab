//! Risk scores: raised by alerts, decaying, thresholds.

use tenet_detect::{Analytics, Level, RiskAction, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn risk_halves_after_one_half_life() {
    let mut a = analytics();
    let s = Subject::Session("sess-1".into());
    let half_life = Duration::seconds(a.config().risk.half_life_secs as i64);
    assert_eq!(a.risk(&s, T0), 0);
    assert!(a.raise(&s, 40, "failed MFA", T0).is_none());
    assert_eq!(a.risk(&s, T0), 40);
    assert_eq!(a.risk(&s, T0 + half_life), 20);
    assert_eq!(a.risk(&s, T0 + half_life * 2), 10);
    assert_eq!(a.risk(&s, T0 + half_life * 20), 0);
    assert_eq!(a.risk_report(&s, T0).reasons, vec!["failed MFA"]);
}

#[test]
fn half_life_is_configurable() {
    let mut c = config();
    c.risk.half_life_secs = 60;
    let mut a = Analytics::new(c).unwrap();
    let s = Subject::Device("0a1b".into());
    a.raise(&s, 90, "x", T0);
    assert_eq!(a.risk(&s, T0 + Duration::minutes(1)), 45);
}

#[test]
fn crossing_thresholds_is_reported_and_sets_the_action() {
    let mut a = analytics();
    let s = Subject::Principal(spiffe("web"));
    assert!(a.raise(&s, 45, "x", T0).is_none());
    assert_eq!(a.action(std::slice::from_ref(&s), T0), RiskAction::Allow);

    let alert = a.raise(&s, 10, "playbook", T0).unwrap();
    assert_eq!(alert.rule, rules::RISK_THRESHOLD);
    assert_eq!(alert.level, Level::High);
    assert_eq!(
        alert.explanation,
        format!(
            "risk of principal {} rose from 45 to 55, crossing the re-authenticate threshold \
             50 (raised by playbook; half-life 3600 s)",
            spiffe("web")
        )
    );
    assert_eq!(
        a.action(std::slice::from_ref(&s), T0),
        RiskAction::Reauthenticate
    );

    let alert = a.raise(&s, 30, "playbook", T0).unwrap();
    assert_eq!(alert.level, Level::Critical);
    assert_eq!(alert.evidence["action"], "cut_off");
    assert_eq!(a.action(std::slice::from_ref(&s), T0), RiskAction::CutOff);
    // Staying above the threshold is not a new crossing.
    assert!(a.raise(&s, 5, "playbook", T0).is_none());
    // Decayed below both thresholds an hour later.
    assert_eq!(a.action(&[s], T0 + Duration::hours(2)), RiskAction::Allow);
}

#[test]
fn alerts_raise_the_principal_and_its_certificate_and_feed_context_risk() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["catalog"]);
    let mut alerts = Vec::new();
    for (i, s) in ["billing", "vault", "hr"].iter().enumerate() {
        let t = after + Duration::minutes(i as i64 * 10);
        alerts.extend(feed(&mut a, &Req::new(&p, s).at(t)));
    }
    assert_eq!(of(&alerts, rules::LATERAL_MOVEMENT).len(), 3);
    let thresholds = of(&alerts, rules::RISK_THRESHOLD);
    let subjects: Vec<&Subject> = thresholds.iter().map(|a| &a.subject).collect();
    assert!(
        subjects.contains(&&Subject::Principal(p.clone())),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&&Subject::Device("0a1b".into())),
        "{subjects:?}"
    );

    let now = after + Duration::minutes(20);
    let principal = a.risk(&Subject::Principal(p.clone()), now);
    assert!(
        principal >= 80,
        "three high alerts within 20 minutes: {principal}"
    );
    let context = [
        Subject::Principal(spiffe("other")),
        Subject::Device("0a1b".into()),
        Subject::Source("10.0.0.10".parse().unwrap()),
    ];
    assert_eq!(
        a.context_risk(&context, now),
        a.risk(&Subject::Device("0a1b".into()), now)
    );
    assert_eq!(a.context_risk(&[], now), 0);
}

#[test]
fn low_alerts_alone_stay_below_the_thresholds() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["orders"]);
    // A new route now and then (low, 5 points) never asks for re-authentication.
    for i in 0..10 {
        let req = Req::new(&p, "orders").route(&format!("r{i}"));
        let alerts = feed(&mut a, &req.at(after + Duration::minutes(30 * i)));
        assert!(of(&alerts, rules::RISK_THRESHOLD).is_empty(), "{alerts:#?}");
    }
}
