//! Login transactions: binding to the browser, single use, expiry, bounds.

use tenet_session::{LOGIN_TTL, LoginError, LoginTransactions, Token, parse_cookie_headers};
use time::Duration;

use crate::t0;

fn started(tx: &LoginTransactions, state: &str) -> Token {
    tx.begin(state, format!("payload-{state}"), "/app".into(), t0())
        .unwrap()
        .binding
}

#[test]
fn callback_with_its_binding_cookie_completes_once() {
    let tx = LoginTransactions::new(100);
    let binding = started(&tx, "X1");
    let done = tx
        .consume("X1", Some(binding.as_str()), t0() + Duration::minutes(1))
        .unwrap();
    assert_eq!(done.payload, "payload-X1");
    assert_eq!(done.return_to, "/app");
    let again = tx.consume("X1", Some(binding.as_str()), t0() + Duration::minutes(1));
    assert_eq!(again, Err(LoginError::AlreadyUsed));
}

#[test]
fn binding_travels_in_the_login_cookie() {
    let tx = LoginTransactions::new(100);
    let binding = started(&tx, "X1");
    let header = tenet_session::login_set_cookie(binding.as_str(), LOGIN_TTL.whole_seconds());
    let pair = header.split(';').next().unwrap().to_owned();
    let jar = parse_cookie_headers([pair.as_str()]).unwrap();
    assert!(tx.consume("X1", jar.login_binding(), t0()).is_ok());
}

#[test]
fn missing_or_wrong_binding_is_refused_and_consumes() {
    let tx = LoginTransactions::new(100);
    let b1 = started(&tx, "X1");
    let b2 = started(&tx, "X2");
    assert_eq!(
        tx.consume("X1", None, t0()),
        Err(LoginError::MissingBinding)
    );
    assert_eq!(
        tx.consume("X1", Some(b1.as_str()), t0()),
        Err(LoginError::AlreadyUsed)
    );
    assert_eq!(
        tx.consume("X2", Some(b1.as_str()), t0()),
        Err(LoginError::BindingMismatch)
    );
    assert_eq!(
        tx.consume("X2", Some(b2.as_str()), t0()),
        Err(LoginError::AlreadyUsed)
    );
    assert!(tx.is_empty());
}

#[test]
fn garbage_binding_is_a_mismatch() {
    let tx = LoginTransactions::new(100);
    started(&tx, "X1");
    assert_eq!(
        tx.consume("X1", Some("garbage"), t0()),
        Err(LoginError::BindingMismatch)
    );
}

#[test]
fn unknown_and_expired_states_are_refused() {
    let tx = LoginTransactions::new(100);
    assert_eq!(
        tx.consume("nope", None, t0()),
        Err(LoginError::UnknownState)
    );
    let b = started(&tx, "X1");
    let late = t0() + LOGIN_TTL;
    assert_eq!(
        tx.consume("X1", Some(b.as_str()), late),
        Err(LoginError::Expired)
    );
    let b = started(&tx, "X3");
    let in_time = t0() + LOGIN_TTL - Duration::seconds(1);
    assert!(tx.consume("X3", Some(b.as_str()), in_time).is_ok());
}

#[test]
fn state_reuse_and_malformed_state_are_refused() {
    let tx = LoginTransactions::new(100);
    started(&tx, "X1");
    let again = tx.begin("X1", String::new(), "/".into(), t0());
    assert!(matches!(again, Err(LoginError::StateInUse)));
    for bad in ["", "a b", "\u{7f}", &"s".repeat(513)] {
        let r = tx.begin(bad, String::new(), "/".into(), t0());
        assert!(matches!(r, Err(LoginError::MalformedState)), "{bad:?}");
    }
}

#[test]
fn bounded_store_evicts_the_oldest() {
    let tx = LoginTransactions::new(2);
    let first = tx
        .begin("s1", String::new(), "/".into(), t0())
        .unwrap()
        .binding;
    let later = t0() + Duration::seconds(1);
    tx.begin("s2", String::new(), "/".into(), later).unwrap();
    let b3 = tx
        .begin("s3", String::new(), "/".into(), later)
        .unwrap()
        .binding;
    assert_eq!(tx.len(), 2);
    assert_eq!(
        tx.consume("s1", Some(first.as_str()), later),
        Err(LoginError::UnknownState)
    );
    assert!(tx.consume("s3", Some(b3.as_str()), later).is_ok());
}
