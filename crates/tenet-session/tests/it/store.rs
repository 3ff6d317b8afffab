//! The session store in memory: lifecycle, timeouts, device binding, revocation, bounds.

use tenet_session::{
    EndCause, FactorUse, Handle, Reason, ReasonCode, SessionError, SessionLimits, SessionState,
    SessionStore, UserIdentity, UserSelector,
};
use time::Duration;

use crate::{alice, ip, login_of, memory_store, t0};

#[test]
fn create_then_lookup_returns_the_session() {
    let store = memory_store();
    let (token, created) = store.create(login_of(alice(), None), None, t0()).unwrap();
    assert_eq!(created.handle, token.handle());
    let found = store
        .lookup(token.as_str(), None, t0() + Duration::minutes(1))
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(found.state, SessionState::Active);
    assert_eq!(found.started_from.network.to_string(), "192.0.2.0/24");
}

#[test]
fn every_create_gets_a_new_id() {
    let store = memory_store();
    let (a, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let (b, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    assert_ne!(a.as_str(), b.as_str());
    assert_eq!(store.len(), 2);
}

#[test]
fn malformed_and_unknown_ids_are_typed() {
    let store = memory_store();
    assert!(matches!(
        store.lookup("nope", None, t0()),
        Err(SessionError::Malformed)
    ));
    let stranger = tenet_session::Token::generate();
    assert!(matches!(
        store.lookup(stranger.as_str(), None, t0()),
        Err(SessionError::Unknown { .. })
    ));
}

#[test]
fn idle_timeout_ends_the_session() {
    let store = memory_store();
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    store
        .touch(
            token.as_str(),
            ip("192.0.2.10"),
            0,
            t0() + Duration::minutes(29),
        )
        .unwrap();
    // 29 minutes after the touch it is still alive; 30 minutes after it is not.
    assert!(
        store
            .lookup(token.as_str(), None, t0() + Duration::minutes(58))
            .is_ok()
    );
    let err = store
        .lookup(token.as_str(), None, t0() + Duration::minutes(59))
        .unwrap_err();
    assert!(matches!(err, SessionError::IdleExpired { .. }), "{err}");
    assert!(store.is_empty());
}

#[test]
fn absolute_timeout_ends_a_busy_session() {
    let store = memory_store();
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    for step in 1..36 {
        let at = t0() + Duration::minutes(20 * step);
        store
            .touch(token.as_str(), ip("192.0.2.10"), 0, at)
            .unwrap();
    }
    let err = store
        .lookup(token.as_str(), None, t0() + Duration::hours(12))
        .unwrap_err();
    assert!(matches!(err, SessionError::AbsoluteExpired { .. }), "{err}");
}

#[test]
fn device_bound_session_refuses_another_or_no_device() {
    let store = memory_store();
    let (token, _) = store
        .create(login_of(alice(), Some("laptop-1")), None, t0())
        .unwrap();
    assert!(store.lookup(token.as_str(), Some("laptop-1"), t0()).is_ok());
    let other = store
        .lookup(token.as_str(), Some("laptop-2"), t0())
        .unwrap_err();
    assert!(matches!(other, SessionError::DeviceMismatch { ref bound, .. } if bound == "laptop-1"));
    let none = store.lookup(token.as_str(), None, t0()).unwrap_err();
    assert!(matches!(
        none,
        SessionError::DeviceMismatch {
            presented: None,
            ..
        }
    ));
}

#[test]
fn touch_records_address_time_and_risk() {
    let store = memory_store();
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let later = t0() + Duration::minutes(5);
    let s = store
        .touch(token.as_str(), ip("2001:db8:7:7::1"), 250, later)
        .unwrap();
    assert_eq!(s.last_seen, later);
    assert_eq!(s.last_from.network.to_string(), "2001:db8:7:7::/64");
    assert_eq!(s.started_from.ip, ip("192.0.2.10"));
    assert_eq!(s.risk, 100);
}

#[test]
fn rotate_gives_a_new_id_and_refuses_the_old() {
    let store = memory_store();
    let (old, before) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let (new, after) = store.rotate(old.as_str(), t0()).unwrap();
    assert_ne!(old.as_str(), new.as_str());
    assert_eq!(before.user, after.user);
    let err = store.lookup(old.as_str(), None, t0()).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Revoked {
                cause: EndCause::Rotated,
                ..
            }
        ),
        "{err}"
    );
    assert!(store.lookup(new.as_str(), None, t0()).is_ok());
    assert_eq!(store.len(), 1);
}

#[test]
fn phishing_resistant_factor_clears_step_up_and_rotates() {
    let store = memory_store();
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let reason = Reason::new(ReasonCode::RiskStepUp, "risk 60");
    store
        .require_step_up(token.as_str(), reason.clone(), t0())
        .unwrap();

    let (token2, s) = store
        .add_factor(token.as_str(), FactorUse::new("totp", false, t0()), t0())
        .unwrap();
    assert_eq!(s.state, SessionState::StepUpRequired { reason });
    assert!(store.lookup(token.as_str(), None, t0()).is_err());

    let key = FactorUse::new("webauthn", true, t0());
    let (token3, s) = store.add_factor(token2.as_str(), key, t0()).unwrap();
    assert_eq!(s.state, SessionState::Active);
    assert_eq!(s.factors.len(), 3);
    assert!(s.has_phishing_resistant_factor_since(t0()));
    assert!(matches!(
        store.lookup(token2.as_str(), None, t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Rotated,
            ..
        })
    ));
    assert!(store.lookup(token3.as_str(), None, t0()).is_ok());
}

/// A response action: every active session of the person must step up; others are untouched.
#[test]
fn step_up_by_user_marks_only_that_persons_active_sessions() {
    let store = memory_store();
    let (a1, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let (a2, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let bob = UserIdentity::new("https://idp.example.test", "bob");
    let (b, _) = store.create(login_of(bob, None), None, t0()).unwrap();
    let reason = Reason::new(ReasonCode::RiskStepUp, "playbook");
    let who = UserSelector::Email("alice@example.test".into());
    assert_eq!(store.require_step_up_user(&who, &reason, t0()).unwrap(), 2);
    for t in [&a1, &a2] {
        let s = store.lookup(t.as_str(), None, t0()).unwrap();
        assert_eq!(
            s.state,
            SessionState::StepUpRequired {
                reason: reason.clone()
            }
        );
    }
    let s = store.lookup(b.as_str(), None, t0()).unwrap();
    assert_eq!(s.state, SessionState::Active);
    // Already pending: nothing changes the second time.
    assert_eq!(store.require_step_up_user(&who, &reason, t0()).unwrap(), 0);
}

#[test]
fn revoke_by_handle_user_and_device() {
    let store = memory_store();
    let bob = UserIdentity::new("https://idp.example.test", "bob");
    let (a1, s1) = store
        .create(login_of(alice(), Some("d1")), None, t0())
        .unwrap();
    let (a2, _) = store
        .create(login_of(alice(), Some("d2")), None, t0())
        .unwrap();
    let (b1, _) = store
        .create(login_of(bob.clone(), Some("d2")), None, t0())
        .unwrap();
    let (b2, _) = store.create(login_of(bob, Some("d3")), None, t0()).unwrap();

    assert!(store.revoke(&s1.handle, t0()).unwrap());
    assert!(!store.revoke(&s1.handle, t0()).unwrap());
    assert!(matches!(
        store.lookup(a1.as_str(), Some("d1"), t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Revoked,
            ..
        })
    ));
    assert_eq!(store.revoke_device("d2", t0()).unwrap().len(), 2);
    assert!(store.lookup(a2.as_str(), Some("d2"), t0()).is_err());
    assert!(store.lookup(b1.as_str(), Some("d2"), t0()).is_err());
    assert!(store.lookup(b2.as_str(), Some("d3"), t0()).is_ok());
    let by_subject = UserSelector::Subject {
        issuer: None,
        subject: "bob".into(),
    };
    assert_eq!(store.revoke_user(&by_subject, t0()).unwrap().len(), 1);
    assert!(store.is_empty());
}

/// A device's revocation ends its sessions at once: they leave the list, and a later request
/// with one is refused as `device_revoked`, naming the person but keeping no e-mail.
#[test]
fn revoked_device_sessions_are_refused_as_device_revoked_naming_the_person() {
    let store = memory_store();
    let (token, _) = store
        .create(login_of(alice(), Some("d1")), None, t0())
        .unwrap();
    let (other, _) = store.create(login_of(alice(), None), None, t0()).unwrap();

    let ended = store.revoke_device("d1", t0()).unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].device_id.as_deref(), Some("d1"));
    assert_eq!(store.list().len(), 1);
    match store.lookup(token.as_str(), None, t0() + Duration::seconds(1)) {
        Err(SessionError::Revoked {
            cause: EndCause::DeviceRevoked,
            user: Some(user),
            ..
        }) => {
            assert_eq!(user.subject, "alice");
            assert_eq!(user.email, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(EndCause::DeviceRevoked.as_str(), "device_revoked");
    assert!(store.lookup(other.as_str(), None, t0()).is_ok());
}

#[test]
fn revoke_user_by_email_ignores_case_and_issuer_scopes_subject() {
    let store = memory_store();
    store.create(login_of(alice(), None), None, t0()).unwrap();
    store.create(login_of(alice(), None), None, t0()).unwrap();
    let other_issuer = UserSelector::Subject {
        issuer: Some("https://other.example.test".into()),
        subject: "alice".into(),
    };
    assert!(store.revoke_user(&other_issuer, t0()).unwrap().is_empty());
    let by_email = UserSelector::Email("alice@example.TEST".into());
    assert_eq!(store.revoke_user(&by_email, t0()).unwrap().len(), 2);
}

#[test]
fn list_is_oldest_first_and_get_finds_by_handle() {
    let store = memory_store();
    let (_, first) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let (_, second) = store
        .create(login_of(alice(), None), None, t0() + Duration::seconds(1))
        .unwrap();
    let all = store.list();
    assert_eq!(
        all.iter().map(|s| s.handle.clone()).collect::<Vec<_>>(),
        [first.handle.clone(), second.handle]
    );
    assert_eq!(store.get(&first.handle), Some(first));
    assert_eq!(
        Handle::from_hex(&"0".repeat(64)).and_then(|h| store.get(&h)),
        None
    );
}

#[test]
fn per_user_cap_evicts_that_users_oldest() {
    let limits = SessionLimits {
        max_sessions_per_user: 2,
        ..SessionLimits::default()
    };
    let store = SessionStore::in_memory(limits).unwrap();
    let bob = UserIdentity::new("https://idp.example.test", "bob");
    let (b, _) = store.create(login_of(bob, None), None, t0()).unwrap();
    let (a1, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let (a2, _) = store
        .create(login_of(alice(), None), None, t0() + Duration::seconds(1))
        .unwrap();
    let (a3, _) = store
        .create(login_of(alice(), None), None, t0() + Duration::seconds(2))
        .unwrap();
    let now = t0() + Duration::seconds(3);
    assert!(matches!(
        store.lookup(a1.as_str(), None, now),
        Err(SessionError::Revoked {
            cause: EndCause::Evicted,
            ..
        })
    ));
    for live in [&a2, &a3, &b] {
        assert!(store.lookup(live.as_str(), None, now).is_ok());
    }
}

#[test]
fn overall_cap_evicts_the_oldest() {
    let limits = SessionLimits {
        max_sessions: 3,
        ..SessionLimits::default()
    };
    let store = SessionStore::in_memory(limits).unwrap();
    let mut tokens = Vec::new();
    for i in 0..5 {
        let user = UserIdentity::new("https://idp.example.test", format!("u{i}"));
        let (t, _) = store
            .create(login_of(user, None), None, t0() + Duration::seconds(i))
            .unwrap();
        tokens.push(t);
    }
    assert_eq!(store.len(), 3);
    let now = t0() + Duration::seconds(5);
    assert!(store.lookup(tokens[0].as_str(), None, now).is_err());
    assert!(store.lookup(tokens[1].as_str(), None, now).is_err());
    assert!(store.lookup(tokens[4].as_str(), None, now).is_ok());
}

#[test]
fn purge_drops_expired_sessions() {
    let store = memory_store();
    store.create(login_of(alice(), None), None, t0()).unwrap();
    store
        .create(login_of(alice(), None), None, t0() + Duration::minutes(20))
        .unwrap();
    assert_eq!(
        store.purge_expired(t0() + Duration::minutes(31)).unwrap(),
        1
    );
    assert_eq!(store.len(), 1);
}

#[test]
fn unusable_limits_are_refused() {
    let bad = [
        SessionLimits {
            idle_timeout: Duration::ZERO,
            ..SessionLimits::default()
        },
        SessionLimits {
            idle_timeout: Duration::hours(13),
            ..SessionLimits::default()
        },
        SessionLimits {
            max_sessions: 0,
            ..SessionLimits::default()
        },
        SessionLimits {
            max_sessions_per_user: 0,
            ..SessionLimits::default()
        },
        SessionLimits {
            second_factor_timeout: Duration::ZERO,
            ..SessionLimits::default()
        },
    ];
    for limits in bad {
        assert!(matches!(
            SessionStore::in_memory(limits),
            Err(SessionError::InvalidLimits(_))
        ));
    }
}

#[test]
fn store_is_shared_across_threads() {
    let store = std::sync::Arc::new(memory_store());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                for j in 0..25 {
                    let user = UserIdentity::new("iss", format!("u{i}-{j}"));
                    let (t, _) = store.create(login_of(user, None), None, t0()).unwrap();
                    store.lookup(t.as_str(), None, t0()).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.len(), 100);
}
