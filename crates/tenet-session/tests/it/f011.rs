//! Field case F011: session fixation and login state bound to the browser, at this crate's
//! level (the gateway maps the refusals to 401 and 400).

use tenet_session::{
    FactorUse, LoginError, LoginTransactions, SESSION_COOKIE, SessionError, Token,
    parse_cookie_headers,
};

use crate::{alice, login_of, memory_store, t0};

/// Step 1 with an id the attacker made up: login never adopts it, and it stays unknown.
#[test]
fn f011_planted_pre_login_id_is_not_adopted() {
    let store = memory_store();
    let s0 = Token::generate();
    let cookie = format!("{SESSION_COOKIE}={}", s0.as_str());
    let jar = parse_cookie_headers([cookie.as_str()]).unwrap();

    let (s1, _) = store
        .create(login_of(alice(), None), jar.session(), t0())
        .unwrap();
    assert_ne!(s1.as_str(), s0.as_str());
    assert!(matches!(
        store.lookup(s0.as_str(), None, t0()),
        Err(SessionError::Unknown { .. })
    ));
    assert!(store.lookup(s1.as_str(), None, t0()).is_ok());
}

/// Step 1 with a real session of the attacker planted in the victim's browser: the victim's
/// login gets a new id and the planted one is ended.
#[test]
fn f011_planted_live_session_is_replaced_at_login() {
    let store = memory_store();
    let attacker = tenet_session::UserIdentity::new("https://idp.example.test", "mallory");
    let (s0, _) = store.create(login_of(attacker, None), None, t0()).unwrap();

    let (s1, victim) = store
        .create(login_of(alice(), None), Some(s0.as_str()), t0())
        .unwrap();
    assert_ne!(s1.as_str(), s0.as_str());
    assert_eq!(victim.user.subject, "alice");
    assert!(matches!(
        store.lookup(s0.as_str(), None, t0()),
        Err(SessionError::Revoked { .. })
    ));
}

/// Step 2: a callback without the binding cookie, or with another login's, is refused and
/// creates no session.
#[test]
fn f011_callback_without_or_with_wrong_binding_is_refused() {
    let store = memory_store();
    let tx = LoginTransactions::new(100);
    tx.begin("192.0.2.1", "X1", "pending-1".into(), "/".into(), t0())
        .unwrap();
    let x2 = tx
        .begin("192.0.2.1", "X2", "pending-2".into(), "/".into(), t0())
        .unwrap()
        .binding;
    tx.begin("192.0.2.1", "X3", "pending-3".into(), "/".into(), t0())
        .unwrap();

    let outcomes = [
        tx.consume("X1", None, t0()),
        tx.consume("X3", Some(x2.as_str()), t0()),
    ];
    for outcome in outcomes {
        assert!(matches!(
            outcome,
            Err(LoginError::MissingBinding | LoginError::BindingMismatch)
        ));
    }
    // The gateway creates a session only from a completed login: none exists.
    assert!(store.is_empty());
    // X1 and X3 are consumed; only X2, never called back, is still pending.
    assert_eq!(tx.len(), 1);
}

/// Step 3: replaying a completed callback is refused.
#[test]
fn f011_replayed_state_is_refused() {
    let tx = LoginTransactions::new(100);
    let b = tx
        .begin("192.0.2.1", "X1", "pending".into(), "/".into(), t0())
        .unwrap()
        .binding;
    assert!(tx.consume("X1", Some(b.as_str()), t0()).is_ok());
    assert_eq!(
        tx.consume("X1", Some(b.as_str()), t0()),
        Err(LoginError::AlreadyUsed)
    );
}

/// Step 4: step-up with WebAuthn rotates the id and the previous one is refused.
#[test]
fn f011_step_up_rotates_and_old_id_is_refused() {
    let store = memory_store();
    let (s1, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let key = FactorUse::new("webauthn", true, t0());
    let (s2, _) = store.add_factor(s1.as_str(), key, t0()).unwrap();
    assert_ne!(s1.as_str(), s2.as_str());
    assert!(matches!(
        store.lookup(s1.as_str(), None, t0()),
        Err(SessionError::Revoked { .. })
    ));
    assert!(store.lookup(s2.as_str(), None, t0()).is_ok());
}
