//! The session store's file: restart keeps sessions, mode 0600, corrupt files, no replay.

use std::os::unix::fs::PermissionsExt as _;

use tenet_session::{
    EndCause, FactorUse, SessionError, SessionLimits, SessionStore, StoreFileError, UserSelector,
};
use time::Duration;

use crate::{alice, ip, login_of, t0};

fn open(path: &std::path::Path) -> SessionStore {
    SessionStore::open(path, SessionLimits::default(), t0()).unwrap()
}

#[test]
fn restart_keeps_sessions_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let (kept, rotated_from, rotated_to) = {
        let store = open(&path);
        let (kept, _) = store
            .create(login_of(alice(), Some("d1")), None, t0())
            .unwrap();
        let (old, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
        let (new, _) = store.rotate(old.as_str(), t0()).unwrap();
        (kept, old, new)
    };
    let store = open(&path);
    assert_eq!(store.len(), 2);
    assert!(store.lookup(kept.as_str(), Some("d1"), t0()).is_ok());
    assert!(store.lookup(rotated_to.as_str(), None, t0()).is_ok());
    assert!(matches!(
        store.lookup(rotated_from.as_str(), None, t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Rotated,
            ..
        })
    ));
}

/// Whether each WebAuthn sign-in verified the person survives a restart; factor records
/// written without the field read as unverified.
#[test]
fn restart_keeps_whether_each_sign_in_verified_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let token = {
        let store = open(&path);
        let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
        let key = FactorUse::new("webauthn", true, t0());
        let (token, _) = store.add_factor(token.as_str(), key, t0()).unwrap();
        let verified = FactorUse::new("webauthn", true, t0()).with_user_verified(true);
        let (token, _) = store.add_factor(token.as_str(), verified, t0()).unwrap();
        token
    };
    let store = open(&path);
    let s = store.lookup(token.as_str(), None, t0()).unwrap();
    let recorded: Vec<_> = s
        .factors
        .iter()
        .map(|f| (f.name.as_str(), f.user_verified))
        .collect();
    assert_eq!(
        recorded,
        [("oidc", false), ("webauthn", false), ("webauthn", true)]
    );

    let old: FactorUse = serde_json::from_str(
        r#"{"name":"webauthn","phishing_resistant":true,"at":"2026-12-01T09:00:00Z"}"#,
    )
    .unwrap();
    assert!(!old.user_verified);
}

#[test]
fn file_is_private_and_holds_no_session_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let store = open(&path);
    let (token, session) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(token.as_str()));
    assert!(text.contains(session.handle.as_str()));
    // What a thief reads from the file does not work as a cookie.
    let err = store
        .lookup(session.handle.as_str(), None, t0())
        .unwrap_err();
    assert!(matches!(err, SessionError::Malformed));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary file left behind");
}

#[test]
fn touch_is_written_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let store = open(&path);
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let later = t0() + Duration::minutes(20);
    store
        .touch(token.as_str(), ip("198.51.100.4"), 10, later)
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let store = SessionStore::open(&path, SessionLimits::default(), later).unwrap();
    let s = store
        .lookup(token.as_str(), None, t0() + Duration::minutes(45))
        .unwrap();
    assert_eq!(s.last_seen, later);
    assert_eq!(s.last_from.ip, ip("198.51.100.4"));
}

#[test]
fn expired_sessions_are_dropped_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let store = open(&path);
    store.create(login_of(alice(), None), None, t0()).unwrap();
    drop(store);
    let later = t0() + Duration::hours(1);
    let store = SessionStore::open(&path, SessionLimits::default(), later).unwrap();
    assert!(store.is_empty());
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    std::fs::write(&path, b"{\"version\": 1, \"sessions\": [").unwrap();
    let err = SessionStore::open(&path, SessionLimits::default(), t0()).unwrap_err();
    assert!(matches!(
        err,
        SessionError::File(StoreFileError::Corrupt { .. })
    ));
    assert!(err.to_string().contains("sessions.json"), "{err}");

    std::fs::write(
        &path,
        br#"{"version": 9, "sessions": [], "tombstones": []}"#,
    )
    .unwrap();
    let err = SessionStore::open(&path, SessionLimits::default(), t0()).unwrap_err();
    assert!(matches!(
        err,
        SessionError::File(StoreFileError::UnsupportedVersion { version: 9, .. })
    ));
}

#[test]
fn duplicated_session_in_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let store = open(&path);
    store.create(login_of(alice(), None), None, t0()).unwrap();
    drop(store);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let first = json["sessions"][0].clone();
    json["sessions"].as_array_mut().unwrap().push(first);
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = SessionStore::open(&path, SessionLimits::default(), t0()).unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::File(StoreFileError::DuplicateSession { .. })
        ),
        "{err}"
    );
}

#[test]
fn unwritable_location_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("sessions.json");
    let store = SessionStore::open(&path, SessionLimits::default(), t0()).unwrap();
    let err = store
        .create(login_of(alice(), None), None, t0())
        .unwrap_err();
    assert!(
        matches!(err, SessionError::File(StoreFileError::Write { .. })),
        "{err}"
    );
}

#[test]
fn revocation_of_a_user_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.json");
    let store = open(&path);
    let (token, _) = store.create(login_of(alice(), None), None, t0()).unwrap();
    let who = UserSelector::Subject {
        issuer: None,
        subject: "alice".into(),
    };
    assert_eq!(store.revoke_user(&who, t0()).unwrap().len(), 1);
    drop(store);
    let store = open(&path);
    assert!(matches!(
        store.lookup(token.as_str(), None, t0()),
        Err(SessionError::Revoked {
            cause: EndCause::Revoked,
            ..
        })
    ));
}
