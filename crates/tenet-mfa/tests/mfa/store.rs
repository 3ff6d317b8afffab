//! FactorStore: round trip, file mode, corrupt files.

use rand::SeedableRng as _;
use tenet_mfa::{FactorStore, RecoveryCodes, StoreError, TotpEnrolment};
use time::macros::datetime;

#[test]
fn round_trip_keeps_every_factor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("factors.json");
    let now = datetime!(2026-12-04 10:00 UTC);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);

    let mut store = FactorStore::open(&path).unwrap();
    assert_eq!(store.user_keys().count(), 0);
    let user = store.user_mut("https://idp.example.test|ada");
    let handle = user.webauthn_user_id();
    let (mut totp, _) = TotpEnrolment::enrol(
        TotpEnrolment::generate_secret(&mut rng),
        "Tenet",
        "ada",
        now,
    )
    .unwrap();
    let code = totp.code_at(now).unwrap();
    totp.verify(&code, now).unwrap();
    user.totp = Some(totp);
    let (codes, plain) = RecoveryCodes::generate(&mut rng, 10);
    user.recovery = codes;
    user.recovery.redeem(&plain[0], now).unwrap();
    store.save().unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary file left behind");

    let mut store = FactorStore::open(&path).unwrap();
    assert_eq!(
        store.user_keys().collect::<Vec<_>>(),
        ["https://idp.example.test|ada"]
    );
    let user = store.user_mut("https://idp.example.test|ada");
    assert_eq!(user.webauthn_user_id(), handle);
    assert_eq!(user.recovery.remaining(), 9);
    assert!(user.recovery.redeem(&plain[0], now).is_err());
    // The TOTP step used before saving stays used.
    assert!(user.totp.as_mut().unwrap().verify(&code, now).is_err());
    assert!(store.remove_user("https://idp.example.test|ada").is_some());
    assert!(store.user("https://idp.example.test|ada").is_none());
}

#[test]
fn corrupt_file_is_an_error_naming_the_file_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("truncated.json", "{\"version\":1,\"users\":{"),
        ("garbage.json", "not json at all"),
        ("future.json", "{\"version\":99,\"users\":{}}"),
        (
            "wrong-shape.json",
            "{\"version\":1,\"users\":{\"a\":{\"credentials\":7}}}",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = FactorStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
    }
}

#[test]
fn unreadable_path_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = FactorStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}
