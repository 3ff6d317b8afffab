//! Continuous evaluation: each rule, severity order, and the step-up round trip.

use tenet_session::{
    EndCause, FactorUse, PostureAction, PostureSummary, ReasonCode, Rules, RulesError, Session,
    SessionError, SessionState, Signals, Site, SiteTable, Verdict, evaluate,
};
use time::Duration;

use crate::{alice, ip, login_of, memory_store, t0};

fn session() -> Session {
    memory_store()
        .create(login_of(alice(), None), None, t0())
        .unwrap()
        .1
}

fn quiet(addr: &str) -> Signals {
    Signals {
        ip: ip(addr),
        posture: None,
        risk: 0,
    }
}

fn code(v: &Verdict) -> Option<ReasonCode> {
    match v {
        Verdict::Allow => None,
        Verdict::StepUp { reason } | Verdict::End { reason } => Some(reason.code),
    }
}

fn sites() -> SiteTable {
    let site = |net: &str, name: &str, lat, lon| Site {
        network: net.parse().unwrap(),
        name: name.into(),
        latitude: lat,
        longitude: lon,
    };
    SiteTable::new(vec![
        site("192.0.2.0/24", "paris", 48.8566, 2.3522),
        site("198.51.100.0/24", "new-york", 40.7128, -74.0060),
        site("203.0.113.0/24", "lyon", 45.7640, 4.8357),
    ])
    .unwrap()
}

#[test]
fn same_network_low_risk_is_allowed() {
    let v = evaluate(&session(), &quiet("192.0.2.200"), &Rules::default(), t0());
    assert_eq!(v, Verdict::Allow);
}

#[test]
fn network_change_asks_for_step_up_unless_disabled() {
    let v = evaluate(&session(), &quiet("192.0.3.10"), &Rules::default(), t0());
    assert!(matches!(v, Verdict::StepUp { .. }));
    assert_eq!(code(&v), Some(ReasonCode::NetworkChanged));
    let off = Rules {
        step_up_on_network_change: false,
        ..Rules::default()
    };
    assert_eq!(
        evaluate(&session(), &quiet("192.0.3.10"), &off, t0()),
        Verdict::Allow
    );
}

#[test]
fn ipv6_network_is_the_slash_64() {
    let mut s = session();
    s.last_from = tenet_session::Origin::of(ip("2001:db8:1:2::1"));
    assert_eq!(
        evaluate(&s, &quiet("2001:db8:1:2:ffff::9"), &Rules::default(), t0()),
        Verdict::Allow
    );
    let v = evaluate(&s, &quiet("2001:db8:1:3::1"), &Rules::default(), t0());
    assert_eq!(code(&v), Some(ReasonCode::NetworkChanged));
}

#[test]
fn risk_thresholds_step_up_then_end() {
    let rules = Rules::default();
    let at = |risk| {
        evaluate(
            &session(),
            &Signals {
                risk,
                ..quiet("192.0.2.10")
            },
            &rules,
            t0(),
        )
    };
    assert_eq!(at(49), Verdict::Allow);
    assert!(matches!(at(50), Verdict::StepUp { .. }));
    assert_eq!(code(&at(79)), Some(ReasonCode::RiskStepUp));
    assert!(matches!(at(80), Verdict::End { .. }));
    assert_eq!(code(&at(100)), Some(ReasonCode::RiskEnd));
}

/// A confirmed risk level holds: once the session went through at risk 60 (a step-up records
/// it), 60 or less does not ask again while the score decays; a rise does, and the end
/// threshold always ends.
#[test]
fn risk_step_up_holds_until_the_risk_rises() {
    let rules = Rules::default();
    let mut confirmed = session();
    confirmed.risk = 60;
    let at = |risk| {
        evaluate(
            &confirmed,
            &Signals {
                risk,
                ..quiet("192.0.2.10")
            },
            &rules,
            t0(),
        )
    };
    assert_eq!(at(60), Verdict::Allow);
    assert_eq!(at(55), Verdict::Allow);
    assert_eq!(code(&at(61)), Some(ReasonCode::RiskStepUp));
    assert_eq!(code(&at(85)), Some(ReasonCode::RiskEnd));
}

#[test]
fn posture_noncompliant_or_stale_follows_the_configured_action() {
    let posture = |compliant, hours| PostureSummary {
        compliant,
        age: Duration::hours(hours),
        changed_since_login: !compliant,
    };
    let signals = |p| Signals {
        posture: Some(p),
        ..quiet("192.0.2.10")
    };
    let step = Rules::default();
    let end = Rules {
        posture_action: PostureAction::End,
        ..Rules::default()
    };

    assert_eq!(
        evaluate(&session(), &signals(posture(true, 1)), &step, t0()),
        Verdict::Allow
    );
    let v = evaluate(&session(), &signals(posture(false, 1)), &step, t0());
    assert!(matches!(v, Verdict::StepUp { .. }));
    assert_eq!(code(&v), Some(ReasonCode::PostureNoncompliant));
    let v = evaluate(&session(), &signals(posture(true, 25)), &end, t0());
    assert!(matches!(v, Verdict::End { .. }));
    assert_eq!(code(&v), Some(ReasonCode::PostureStale));
}

#[test]
fn impossible_travel_ends_the_session() {
    let rules = Rules {
        sites: sites(),
        ..Rules::default()
    };
    let s = session();
    // Paris to New York (about 5 840 km) in one hour: far over 1000 km/h.
    let v = evaluate(
        &s,
        &quiet("198.51.100.7"),
        &rules,
        t0() + Duration::hours(1),
    );
    assert!(matches!(v, Verdict::End { .. }));
    assert_eq!(code(&v), Some(ReasonCode::ImpossibleTravel));
    // The same trip in seven hours is plausible: only the network change remains.
    let v = evaluate(
        &s,
        &quiet("198.51.100.7"),
        &rules,
        t0() + Duration::hours(7),
    );
    assert_eq!(code(&v), Some(ReasonCode::NetworkChanged));
    // Paris to Lyon (about 390 km) in the same instant is impossible too.
    let v = evaluate(&s, &quiet("203.0.113.9"), &rules, t0());
    assert_eq!(code(&v), Some(ReasonCode::ImpossibleTravel));
    // Unknown networks never count as travel.
    let v = evaluate(&s, &quiet("100.64.0.1"), &rules, t0());
    assert_eq!(code(&v), Some(ReasonCode::NetworkChanged));
}

#[test]
fn end_outranks_step_up() {
    let rules = Rules {
        sites: sites(),
        ..Rules::default()
    };
    let signals = Signals {
        risk: 60,
        ..quiet("198.51.100.7")
    };
    let v = evaluate(&session(), &signals, &rules, t0());
    assert_eq!(code(&v), Some(ReasonCode::ImpossibleTravel));
}

#[test]
fn step_up_persists_until_a_phishing_resistant_factor() {
    let store = memory_store();
    let rules = Rules::default();
    let (token, s) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let v = evaluate(&s, &quiet("192.0.3.10"), &rules, t0());
    store.apply_verdict(token.as_str(), &v, t0()).unwrap();
    store
        .touch(token.as_str(), ip("192.0.3.10"), 0, t0())
        .unwrap();

    // Back to a quiet request: still gated.
    let s = store.lookup(token.as_str(), None, t0()).unwrap();
    assert!(matches!(s.state, SessionState::StepUpRequired { .. }));
    let v = evaluate(&s, &quiet("192.0.3.10"), &rules, t0());
    assert_eq!(code(&v), Some(ReasonCode::StepUpPending));

    let key = FactorUse::new("webauthn", true, t0());
    let (token2, s) = store.add_factor(token.as_str(), key, t0()).unwrap();
    assert_eq!(
        evaluate(&s, &quiet("192.0.3.10"), &rules, t0()),
        Verdict::Allow
    );
    assert!(store.lookup(token.as_str(), None, t0()).is_err());
    assert!(store.lookup(token2.as_str(), None, t0()).is_ok());
}

#[test]
fn end_verdict_revokes_the_session() {
    let store = memory_store();
    let (token, s) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let v = evaluate(
        &s,
        &Signals {
            risk: 95,
            ..quiet("192.0.2.10")
        },
        &Rules::default(),
        t0(),
    );
    let ended = store.apply_verdict(token.as_str(), &v, t0()).unwrap();
    assert_eq!(ended.map(|e| e.handle), Some(s.handle));
    assert!(matches!(
        store.lookup(token.as_str(), None, t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Ended,
            ..
        })
    ));
    // A second request whose evaluation also ends it finds it ended: the end is given once.
    assert!(matches!(
        store.apply_verdict(token.as_str(), &v, t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Ended,
            ..
        })
    ));
}

#[test]
fn rules_validation() {
    assert_eq!(Rules::default().validate(), Ok(()));
    let bad = Rules {
        risk_step_up: 90,
        risk_end: 80,
        ..Rules::default()
    };
    assert!(matches!(bad.validate(), Err(RulesError::Thresholds { .. })));
    let bad = Rules {
        risk_end: 101,
        ..Rules::default()
    };
    assert!(matches!(bad.validate(), Err(RulesError::Thresholds { .. })));
    let bad = Rules {
        max_speed_kmh: f64::NAN,
        ..Rules::default()
    };
    assert_eq!(bad.validate(), Err(RulesError::Speed));
    let bad = Rules {
        posture_max_age: Duration::ZERO,
        ..Rules::default()
    };
    assert_eq!(bad.validate(), Err(RulesError::PostureAge));
}

#[test]
fn nan_speed_limit_fails_closed() {
    let rules = Rules {
        sites: sites(),
        max_speed_kmh: f64::NAN,
        ..Rules::default()
    };
    let v = evaluate(
        &session(),
        &quiet("203.0.113.9"),
        &rules,
        t0() + Duration::hours(100),
    );
    assert!(matches!(v, Verdict::End { .. }));
}
