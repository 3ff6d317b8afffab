//! TOTP (RFC 6238 values, skew, replay) and recovery codes (single use, normalised input).

use rand::SeedableRng as _;
use tenet_mfa::{
    FactorKind, RecoveryCodes, RecoveryError, TotpAlgorithm, TotpEnrolment, TotpError,
};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-12-04 10:00 UTC);

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// RFC 6238 appendix B: 8 digits, 30 s step, ASCII seeds of 20, 32 and 64 bytes.
#[test]
fn rfc6238_appendix_b_values() {
    let seed = |len: usize| {
        b"1234567890"
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>()
    };
    let table: [(i64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];
    let algorithms = [
        (TotpAlgorithm::Sha1, 20),
        (TotpAlgorithm::Sha256, 32),
        (TotpAlgorithm::Sha512, 64),
    ];
    for (time, sha1, sha256, sha512) in table {
        for ((algorithm, len), expected) in algorithms.iter().zip([sha1, sha256, sha512]) {
            let mut enrolment =
                TotpEnrolment::with_parameters(seed(*len), *algorithm, 8, 30, NOW).unwrap();
            assert_eq!(
                enrolment.code_at(at(time)).unwrap(),
                expected,
                "{algorithm:?} at {time}"
            );
            let factor = enrolment.verify(expected, at(time)).unwrap();
            assert_eq!(factor.kind, FactorKind::Totp);
            assert!(!factor.is_phishing_resistant());
        }
    }
}

#[test]
fn totp_accepts_one_step_of_skew_and_refuses_replay() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let secret = TotpEnrolment::generate_secret(&mut rng);
    let (mut enrolment, setup) =
        TotpEnrolment::enrol(secret, "Tenet", "ada@example.test", NOW).unwrap();
    assert!(setup.otpauth_url.starts_with("otpauth://totp/"));
    assert!(
        setup
            .otpauth_url
            .contains(&format!("secret={}", setup.secret_base32))
    );
    assert!(setup.otpauth_url.contains("issuer=Tenet"));

    let now = NOW.unix_timestamp();
    let previous = enrolment.code_at(at(now - 30)).unwrap();
    let current = enrolment.code_at(at(now)).unwrap();
    let next = enrolment.code_at(at(now + 30)).unwrap();
    let too_old = enrolment.code_at(at(now - 60)).unwrap();
    let too_new = enrolment.code_at(at(now + 60)).unwrap();

    for code in [&too_old, &too_new] {
        if *code != previous && *code != current && *code != next {
            assert_eq!(enrolment.verify(code, NOW), Err(TotpError::WrongCode));
        }
    }
    assert_eq!(enrolment.verify("12345", NOW), Err(TotpError::WrongCode));
    enrolment.verify(&previous, NOW).unwrap();
    assert!(matches!(
        enrolment.verify(&previous, NOW),
        Err(TotpError::Replayed { .. })
    ));
    enrolment.verify(&current, NOW).unwrap();
    assert!(matches!(
        enrolment.verify(&current, NOW),
        Err(TotpError::Replayed { .. })
    ));
    // A code from the step before the one last used is a replay too.
    assert!(matches!(
        enrolment.verify(&previous, NOW),
        Err(TotpError::Replayed { .. })
    ));
    enrolment.verify(&format!(" {} ", next), NOW).unwrap();
}

#[test]
fn totp_parameters_are_checked() {
    let short = vec![0u8; 10];
    assert!(matches!(
        TotpEnrolment::with_parameters(short, TotpAlgorithm::Sha1, 6, 30, NOW),
        Err(TotpError::Parameters { .. })
    ));
    let secret = vec![1u8; 20];
    assert!(
        TotpEnrolment::with_parameters(secret.clone(), TotpAlgorithm::Sha1, 9, 30, NOW).is_err()
    );
    assert!(
        TotpEnrolment::with_parameters(secret.clone(), TotpAlgorithm::Sha1, 6, 0, NOW).is_err()
    );
    assert!(TotpEnrolment::enrol(secret, "Ten:et", "ada", NOW).is_err());
}

#[test]
fn recovery_codes_are_single_use_and_normalised() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let (mut codes, plain) = RecoveryCodes::generate(&mut rng, 10);
    assert_eq!(plain.len(), 10);
    assert_eq!(codes.remaining(), 10);
    let unique: std::collections::BTreeSet<_> = plain.iter().collect();
    assert_eq!(unique.len(), 10);

    // Only hashes are stored.
    let stored = serde_json::to_string(&codes).unwrap();
    for code in &plain {
        assert!(!stored.contains(&code.replace('-', "")) && !stored.contains(code.as_str()));
    }

    let messy = format!("  {} ", plain[3].to_uppercase().replace('-', " - "));
    let factor = codes.redeem(&messy, NOW).unwrap();
    assert_eq!(factor.kind, FactorKind::Recovery);
    assert!(!factor.is_phishing_resistant());
    assert_eq!(codes.remaining(), 9);
    assert_eq!(codes.redeem(&plain[3], NOW), Err(RecoveryError::NotValid));
    assert_eq!(
        codes.redeem("00000-00000-00000-00000", NOW),
        Err(RecoveryError::NotValid)
    );
    assert_eq!(codes.redeem("", NOW), Err(RecoveryError::NotValid));

    let mut restored: RecoveryCodes =
        serde_json::from_str(&serde_json::to_string(&codes).unwrap()).unwrap();
    assert_eq!(
        restored.redeem(&plain[3], NOW),
        Err(RecoveryError::NotValid)
    );
    restored.redeem(&plain[0], NOW).unwrap();
    assert_eq!(restored.remaining(), 8);
}
