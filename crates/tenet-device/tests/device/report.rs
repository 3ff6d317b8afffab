//! Signed posture reports: signature, chain, registry, time and replay checks.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tenet_device::{
    PostureReport, PostureSource, PostureStore, ReportError, ReportVerifier, sign_report,
};
use tenet_identity::{CertificateAuthority, SpiffeId, TrustDomain};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Fixture, now};

fn report(device_id: Uuid, collected_at: OffsetDateTime, sequence: u64) -> PostureReport {
    PostureReport {
        device_id,
        collected_at,
        os: Some("ubuntu".into()),
        os_version: Some("24.04".into()),
        disk_encrypted: Some(true),
        screen_lock: None,
        firewall: Some(true),
        endpoint_protection: None,
        agent_version: "0.1.0".into(),
        sequence,
    }
}

fn verifier(f: &Fixture) -> ReportVerifier {
    ReportVerifier::new(
        f.ca.bundle(),
        Duration::from_secs(60),
        Duration::from_secs(3600),
    )
}

#[test]
fn signed_report_is_accepted_and_stored() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let jws = sign_report(&report(id, now(), 1), &svid).unwrap();
    let mut store = PostureStore::new();
    let got = store
        .ingest_report(&verifier(&f), &f.registry, &jws, now())
        .unwrap();
    assert_eq!(got, id);
    let posture = store.latest(id, PostureSource::Agent).unwrap();
    assert_eq!(posture.disk_encrypted, Some(true));
    assert_eq!(posture.screen_lock, None);
    assert_eq!(store.agent_version(id), Some("0.1.0"));
}

#[test]
fn report_for_another_device_is_refused() {
    let mut f = Fixture::create();
    let (victim, _) = f.enrol("laptop-1", "SN-001");
    let (_, attacker) = f.enrol("laptop-2", "SN-002");
    let jws = sign_report(&report(victim, now(), 1), &attacker).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::DeviceMismatch { .. }), "{err}");
}

#[test]
fn report_signed_by_another_devices_key_is_refused() {
    let mut f = Fixture::create();
    let (victim, victim_svid) = f.enrol("laptop-1", "SN-001");
    let (_, attacker) = f.enrol("laptop-2", "SN-002");
    // The attacker presents the victim's certificate chain but can only sign with its own key.
    let victim_header = sign_report(&report(victim, now(), 1), &victim_svid).unwrap();
    let forged = sign_report(&report(victim, now(), 2), &attacker).unwrap();
    let header = victim_header.split('.').next().unwrap();
    let rest: Vec<&str> = forged.split('.').skip(1).collect();
    let jws = format!("{header}.{}.{}", rest[0], rest[1]);
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::BadSignature), "{err}");
}

#[test]
fn tampered_report_is_refused() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut honest = report(id, now(), 1);
    honest.disk_encrypted = Some(false);
    let jws = sign_report(&honest, &svid).unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let mut tampered = honest.clone();
    tampered.disk_encrypted = Some(true);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
    let jws = format!("{}.{payload}.{}", parts[0], parts[2]);
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::BadSignature), "{err}");

    for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
        let err = verifier(&f)
            .verify(garbage, &f.registry, now())
            .unwrap_err();
        assert!(
            matches!(err, ReportError::Malformed { .. }),
            "{garbage:?}: {err}"
        );
    }
}

#[test]
fn replayed_and_older_reports_are_refused() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let v = verifier(&f);
    let mut store = PostureStore::new();
    let first = sign_report(&report(id, now(), 5), &svid).unwrap();
    store.ingest_report(&v, &f.registry, &first, now()).unwrap();

    let err = store
        .ingest_report(&v, &f.registry, &first, now())
        .unwrap_err();
    assert!(matches!(err, ReportError::Replay { .. }), "{err}");

    let older = sign_report(&report(id, now() - time::Duration::minutes(5), 6), &svid).unwrap();
    let err = store
        .ingest_report(&v, &f.registry, &older, now())
        .unwrap_err();
    assert!(matches!(err, ReportError::Replay { .. }), "{err}");

    let newer = sign_report(&report(id, now() + time::Duration::seconds(30), 6), &svid).unwrap();
    store.ingest_report(&v, &f.registry, &newer, now()).unwrap();
}

/// A trial reported that a report with sequence `u64::MAX` locks the device's later reports
/// out until re-enrolment. It does not: reports are ordered by collection time first (to the
/// nanosecond), and the sequence only breaks a tie between reports of the same instant. The
/// agent (`tenet device report`) keeps no counter; its sequence is the collection time in Unix
/// seconds, so nothing on either side adds to the largest sequence.
#[test]
fn a_report_with_the_largest_sequence_does_not_lock_out_later_ones() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let v = verifier(&f);
    let mut store = PostureStore::new();
    let at = now() - time::Duration::minutes(10);
    let largest = sign_report(&report(id, at, u64::MAX), &svid).unwrap();
    store
        .ingest_report(&v, &f.registry, &largest, now())
        .unwrap();

    // Only a report of the very same instant is held to the sequence, and named with it.
    let same_instant = sign_report(&report(id, at, 7), &svid).unwrap();
    let err = store
        .ingest_report(&v, &f.registry, &same_instant, now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Replay {
                latest_sequence: u64::MAX,
                sequence: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("sequence 18446744073709551615"),
        "{err}"
    );

    // Kept across a restart of the deployment.
    store.save(&f.path("posture.json")).unwrap();
    let mut store = PostureStore::load(&f.path("posture.json")).unwrap();

    // A millisecond later, with the sequence the agent would send, and a changed posture.
    let later_at = at + time::Duration::milliseconds(1);
    let mut later = report(
        id,
        later_at,
        u64::try_from(later_at.unix_timestamp()).unwrap(),
    );
    later.disk_encrypted = Some(false);
    let later = sign_report(&later, &svid).unwrap();
    store.ingest_report(&v, &f.registry, &later, now()).unwrap();
    let posture = store.latest(id, PostureSource::Agent).unwrap();
    assert_eq!(posture.collected_at, later_at);
    assert_eq!(posture.disk_encrypted, Some(false));

    // And the one after, whatever its sequence.
    let next = sign_report(&report(id, now(), 0), &svid).unwrap();
    store.ingest_report(&v, &f.registry, &next, now()).unwrap();
    assert_eq!(
        store.latest(id, PostureSource::Agent).unwrap().collected_at,
        now()
    );
}

#[test]
fn certificate_from_a_foreign_ca_is_refused() {
    let f = Fixture::create();
    // Same trust domain name, different keys: an attacker's own CA.
    let td = TrustDomain::parse("corp.example.test").unwrap();
    let rogue = CertificateAuthority::generate(&td, now()).unwrap();
    let id = Uuid::new_v4();
    let spiffe = tenet_device::device_spiffe_id(&td, id).unwrap();
    let svid = rogue
        .issue_x509_svid(&spiffe, Duration::from_secs(3600), now())
        .unwrap();
    let jws = sign_report(&report(id, now(), 1), &svid).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::Untrusted(_)), "{err}");
}

#[test]
fn svid_of_tenets_ca_that_is_not_an_enrolled_device_is_refused() {
    let f = Fixture::create();
    let td = f.ca.trust_domain().clone();
    let workload = SpiffeId::parse("spiffe://corp.example.test/workload/api").unwrap();
    let svid =
        f.ca.issue_x509_svid(&workload, Duration::from_secs(3600), now())
            .unwrap();
    let jws = sign_report(&report(Uuid::new_v4(), now(), 1), &svid).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::NotDevice { .. }), "{err}");

    // A device-shaped SVID the CA issued outside enrolment is not in the registry.
    let id = Uuid::new_v4();
    let spiffe = tenet_device::device_spiffe_id(&td, id).unwrap();
    let svid =
        f.ca.issue_x509_svid(&spiffe, Duration::from_secs(3600), now())
            .unwrap();
    let jws = sign_report(&report(id, now(), 1), &svid).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::UnknownDevice { .. }), "{err}");
}

#[test]
fn revoked_device_is_refused() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    f.registry.revoke(id, now()).unwrap();
    let jws = sign_report(&report(id, now(), 1), &svid).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::Revoked { .. }), "{err}");
    // Times read as RFC 3339, like everywhere else in the CLI and the ledger.
    assert!(
        err.to_string()
            .ends_with("was revoked at 2026-06-01T12:00:00Z"),
        "{err}"
    );
}

#[test]
fn stale_and_future_reports_are_refused() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let old = sign_report(&report(id, now() - time::Duration::hours(2), 1), &svid).unwrap();
    let err = verifier(&f).verify(&old, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::TooOld { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("collected at 2026-06-01T10:00:00Z is too old (now 2026-06-01T12:00:00Z)"),
        "{err}"
    );

    let ahead = sign_report(&report(id, now() + time::Duration::minutes(10), 1), &svid).unwrap();
    let err = verifier(&f).verify(&ahead, &f.registry, now()).unwrap_err();
    assert!(matches!(err, ReportError::FromFuture { .. }), "{err}");

    // Within the skew is fine.
    let slightly = sign_report(&report(id, now() + time::Duration::seconds(30), 1), &svid).unwrap();
    verifier(&f).verify(&slightly, &f.registry, now()).unwrap();
}

#[test]
fn expired_device_certificate_is_refused() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let later = now() + time::Duration::days(91);
    let jws = sign_report(&report(id, later, 1), &svid).unwrap();
    let err = verifier(&f).verify(&jws, &f.registry, later).unwrap_err();
    assert!(matches!(err, ReportError::Untrusted(_)), "{err}");
}

/// A trial sent a report dated 50 s ahead (within the allowed skew): the device's real
/// reports were refused as replays until that time, and the posture looked 50 s fresher than
/// it was. Reports are ordered and aged by the earlier of their time and their arrival.
#[test]
fn a_report_dated_ahead_neither_blocks_later_ones_nor_looks_fresher() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let v = verifier(&f);
    let mut store = PostureStore::new();
    let ahead_at = now() + time::Duration::seconds(50);
    let ahead = sign_report(&report(id, ahead_at, 9), &svid).unwrap();
    store.ingest_report(&v, &f.registry, &ahead, now()).unwrap();
    assert_eq!(
        store.latest(id, PostureSource::Agent).unwrap().collected_at,
        now(),
        "aged from its arrival"
    );
    assert_eq!(store.merged(id, now()).unwrap().age_secs, 0);
    // Sent again at once, it is a replay.
    let err = store
        .ingest_report(&v, &f.registry, &ahead, now())
        .unwrap_err();
    assert!(matches!(err, ReportError::Replay { .. }), "{err}");

    // The device's next report, collected 10 s later, is taken.
    let later_at = now() + time::Duration::seconds(10);
    let mut later = report(id, later_at, 1);
    later.disk_encrypted = Some(false);
    let later = sign_report(&later, &svid).unwrap();
    store
        .ingest_report(&v, &f.registry, &later, later_at)
        .unwrap();
    assert_eq!(
        store
            .latest(id, PostureSource::Agent)
            .unwrap()
            .disk_encrypted,
        Some(false)
    );

    // The report dated ahead, sent again after that (also after a restart), is still a
    // replay, though its time now orders it after the accepted one.
    store.save(&f.path("posture.json")).unwrap();
    let mut store = PostureStore::load(&f.path("posture.json")).unwrap();
    for at in [now() + time::Duration::seconds(20), ahead_at] {
        let err = store
            .ingest_report(&v, &f.registry, &ahead, at)
            .unwrap_err();
        assert!(matches!(err, ReportError::Replay { .. }), "{err}");
    }
    assert_eq!(
        store
            .latest(id, PostureSource::Agent)
            .unwrap()
            .disk_encrypted,
        Some(false)
    );
}
