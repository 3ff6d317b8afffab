//! Sign-ins that still need their second factor: a short life of their own, and never in the
//! way of the person's completed sessions.

use tenet_session::{
    EndCause, FactorUse, Handle, ReasonCode, Rules, SessionError, SessionLimits, SessionState,
    SessionStore, Signals, Token, UserIdentity, Verdict, evaluate,
};
use time::{Duration, OffsetDateTime};

use crate::{alice, ip, login_of, memory_store, t0};

fn awaiting(store: &SessionStore, user: UserIdentity, at: OffsetDateTime) -> Token {
    store
        .create_awaiting_second_factor(login_of(user, None), None, at)
        .unwrap()
        .0
}

fn completed(store: &SessionStore, user: UserIdentity, at: OffsetDateTime) -> Token {
    store.create(login_of(user, None), None, at).unwrap().0
}

fn passkey(store: &SessionStore, token: &Token, at: OffsetDateTime) -> Token {
    let factor = FactorUse::new("webauthn", true, at);
    store.add_factor(token.as_str(), factor, at).unwrap().0
}

fn evicted(store: &SessionStore, token: &Token, now: OffsetDateTime) -> bool {
    matches!(
        store.lookup(token.as_str(), None, now),
        Err(SessionError::Revoked {
            cause: EndCause::Evicted,
            ..
        })
    )
}

#[test]
fn a_sign_in_waiting_for_its_second_factor_ends_after_the_timeout() {
    let store = memory_store();
    let waiting = awaiting(&store, alice(), t0());
    let s = store
        .lookup(waiting.as_str(), None, t0() + Duration::minutes(9))
        .unwrap();
    assert_eq!(
        s.state,
        SessionState::SecondFactorPending {
            until: t0() + Duration::minutes(10)
        }
    );
    assert!(s.awaits_second_factor());
    // Being used does not extend it, and neither does a weaker factor.
    store
        .touch(
            waiting.as_str(),
            ip("192.0.2.10"),
            0,
            t0() + Duration::minutes(9),
        )
        .unwrap();
    let totp = FactorUse::new("totp", false, t0() + Duration::minutes(9));
    let (waiting, s) = store
        .add_factor(waiting.as_str(), totp, t0() + Duration::minutes(9))
        .unwrap();
    assert!(s.awaits_second_factor());
    assert!(matches!(
        store.lookup(waiting.as_str(), None, t0() + Duration::minutes(10)),
        Err(SessionError::SecondFactorExpired { .. })
    ));
    assert!(store.is_empty());
}

#[test]
fn the_passkey_completes_the_sign_in_and_lifts_the_timeout() {
    let store = memory_store();
    let waiting = awaiting(&store, alice(), t0());
    let done = passkey(&store, &waiting, t0() + Duration::minutes(3));
    let s = store
        .lookup(done.as_str(), None, t0() + Duration::minutes(20))
        .unwrap();
    assert_eq!(s.state, SessionState::Active);
    assert!(!s.awaits_second_factor());
}

#[test]
fn purge_drops_sign_ins_whose_second_factor_is_overdue() {
    let store = memory_store();
    awaiting(&store, alice(), t0());
    completed(&store, alice(), t0());
    assert_eq!(store.purge_expired(t0() + Duration::minutes(9)).unwrap(), 0);
    assert_eq!(
        store.purge_expired(t0() + Duration::minutes(10)).unwrap(),
        1
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn waiting_sign_ins_never_evict_the_persons_completed_sessions() {
    let limits = SessionLimits {
        max_sessions_per_user: 2,
        ..SessionLimits::default()
    };
    let store = SessionStore::in_memory(limits).unwrap();
    let c1 = completed(&store, alice(), t0());
    let c2 = completed(&store, alice(), t0() + Duration::seconds(1));
    let waiting: Vec<Token> = (2..7)
        .map(|i| awaiting(&store, alice(), t0() + Duration::seconds(i)))
        .collect();
    let now = t0() + Duration::seconds(10);
    for live in [&c1, &c2, &waiting[3], &waiting[4]] {
        assert!(store.lookup(live.as_str(), None, now).is_ok());
    }
    for gone in &waiting[..3] {
        assert!(evicted(&store, gone, now));
    }

    // Completing one makes it a completed session: the person's oldest completed one goes.
    let done = passkey(&store, &waiting[4], now);
    assert!(evicted(&store, &c1, now));
    for live in [&c2, &done, &waiting[3]] {
        assert!(store.lookup(live.as_str(), None, now).is_ok());
    }
}

#[test]
fn the_overall_cap_evicts_waiting_sign_ins_first() {
    let limits = SessionLimits {
        max_sessions: 3,
        ..SessionLimits::default()
    };
    let store = SessionStore::in_memory(limits).unwrap();
    let user = |i: i64| UserIdentity::new("https://idp.example.test", format!("u{i}"));
    let c0 = completed(&store, user(0), t0());
    let c1 = completed(&store, user(1), t0() + Duration::seconds(1));
    let w2 = awaiting(&store, user(2), t0() + Duration::seconds(2));
    let w3 = awaiting(&store, user(3), t0() + Duration::seconds(3));
    let now = t0() + Duration::seconds(4);
    assert!(evicted(&store, &w2, now));
    let c4 = completed(&store, user(4), now);
    assert!(evicted(&store, &w3, now));
    for live in [&c0, &c1, &c4] {
        assert!(store.lookup(live.as_str(), None, now).is_ok());
    }
    // With none waiting, the oldest completed session goes as before.
    completed(&store, user(5), now);
    assert!(evicted(&store, &c0, now));
}

#[test]
fn a_waiting_sign_in_evaluates_to_a_step_up() {
    let store = memory_store();
    let waiting = awaiting(&store, alice(), t0());
    let s = store.lookup(waiting.as_str(), None, t0()).unwrap();
    let signals = Signals {
        ip: ip("192.0.2.10"),
        posture: None,
        risk: 0,
    };
    let verdict = evaluate(&s, &signals, &Rules::default(), t0());
    let Verdict::StepUp { reason } = verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(reason.code, ReasonCode::StepUpPending);
}

#[test]
fn a_waiting_sign_in_survives_a_restart_until_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let limits = SessionLimits::default();
    let store = SessionStore::open(&path, limits, t0()).unwrap();
    let waiting = awaiting(&store, alice(), t0());
    let handle: Handle = waiting.handle();
    drop(store);

    let later = t0() + Duration::minutes(5);
    let store = SessionStore::open(&path, limits, later).unwrap();
    assert!(store.get(&handle).unwrap().awaits_second_factor());
    drop(store);
    let store = SessionStore::open(&path, limits, t0() + Duration::minutes(10)).unwrap();
    assert!(store.is_empty());
}
