//! Requirements, verdicts, merging of sources, and the facts for Cedar.

use std::collections::BTreeMap;
use std::time::Duration;

use tenet_device::{
    MdmMatch, NO_POSTURE_AGE, PostureFacts, PostureReport, PostureRequirements, PostureSource,
    PostureStore, ReportVerifier, compare_versions, import_mdm, sign_report,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Fixture, now};

fn agent_report(
    f: &Fixture,
    store: &mut PostureStore,
    svid: &tenet_identity::X509Svid,
    report: PostureReport,
    at: OffsetDateTime,
) {
    let verifier = ReportVerifier::new(
        f.ca.bundle(),
        Duration::from_secs(60),
        Duration::from_secs(3600),
    );
    let jws = sign_report(&report, svid).unwrap();
    store
        .ingest_report(&verifier, &f.registry, &jws, at)
        .unwrap();
}

fn report(id: Uuid, at: OffsetDateTime) -> PostureReport {
    PostureReport {
        device_id: id,
        collected_at: at,
        os: Some("ubuntu".into()),
        os_version: Some("22.04".into()),
        disk_encrypted: Some(true),
        screen_lock: None,
        firewall: Some(false),
        endpoint_protection: None,
        agent_version: "0.1.0".into(),
        sequence: 1,
    }
}

fn strict() -> PostureRequirements {
    PostureRequirements {
        max_age_secs: Some(3600),
        require_disk_encryption: true,
        require_firewall: true,
        require_screen_lock: true,
        require_endpoint_protection: false,
        require_mdm_compliant: false,
        min_os_versions: BTreeMap::from([("Ubuntu".to_owned(), "24.04".to_owned())]),
    }
}

#[test]
fn failed_checks_are_named_and_unknown_is_not_compliant() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut store = PostureStore::new();
    agent_report(&f, &mut store, &svid, report(id, now()), now());

    let verdict = strict().evaluate(&store, id, now() + time::Duration::seconds(10));
    assert!(!verdict.compliant);
    assert!(!verdict.stale);
    assert_eq!(verdict.age_secs, Some(10));
    let names: Vec<&str> = verdict.failed.iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["firewall", "screen_lock", "os_version"]);
    assert_eq!(verdict.failed[1].reason, "unknown");

    let lenient = PostureRequirements {
        require_firewall: false,
        require_screen_lock: false,
        min_os_versions: BTreeMap::from([("ubuntu".to_owned(), "22.04".to_owned())]),
        ..strict()
    };
    let verdict = lenient.evaluate(&store, id, now());
    assert!(verdict.compliant, "{verdict:?}");
}

#[test]
fn missing_and_stale_posture_are_not_compliant() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut store = PostureStore::new();
    let verdict = PostureRequirements::default().evaluate(&store, id, now());
    assert!(!verdict.compliant);
    assert_eq!(verdict.failed[0].name, "posture");
    assert_eq!(verdict.age_secs, None);

    agent_report(&f, &mut store, &svid, report(id, now()), now());
    let later = now() + time::Duration::hours(25);
    let verdict = PostureRequirements::default().evaluate(&store, id, later);
    assert!(verdict.stale);
    assert!(!verdict.compliant);
    assert_eq!(verdict.failed[0].name, "fresh");
    assert_eq!(verdict.age_secs, Some(25 * 3600));

    // Nothing required: no posture needed.
    let none = PostureRequirements {
        max_age_secs: None,
        ..PostureRequirements::default()
    };
    assert!(none.evaluate(&store, id, later).compliant);
}

#[test]
fn agent_and_mdm_merge_per_check_with_the_oldest_age() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut store = PostureStore::new();
    agent_report(&f, &mut store, &svid, report(id, now()), now());
    let csv = b"Serial,Screen Lock,Firewall,Compliance,Last Check-in\n\
                SN-001,yes,yes,compliant,2026-06-01 11:00:00\n";
    let import = import_mdm("mdm.csv", csv, &f.registry, MdmMatch::Serial, now()).unwrap();
    store.apply_mdm(&import);

    let merged = store.merged(id, now()).unwrap();
    assert_eq!(
        merged.sources,
        vec![PostureSource::Agent, PostureSource::Mdm]
    );
    // The agent is newer and knows the firewall is off; the MDM fills the screen lock.
    assert_eq!(merged.posture.firewall, Some(false));
    assert_eq!(merged.posture.screen_lock, Some(true));
    assert_eq!(merged.posture.mdm_compliant, Some(true));
    assert_eq!(merged.age_secs, 3600);

    // With a 30-minute maximum age only the agent counts.
    let fresh = store
        .merged_within(id, Some(Duration::from_secs(1800)), now())
        .unwrap();
    assert_eq!(fresh.sources, vec![PostureSource::Agent]);
    assert_eq!(fresh.posture.screen_lock, None);
}

#[test]
fn facts_are_flat_and_three_valued() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut store = PostureStore::new();
    agent_report(&f, &mut store, &svid, report(id, now()), now());
    let reqs = PostureRequirements {
        require_disk_encryption: true,
        ..PostureRequirements::default()
    };
    let facts = PostureFacts::gather(&f.registry, &store, &reqs, id, now());
    assert!(facts.enrolled);
    assert!(facts.compliant);
    assert_eq!(facts.os, "ubuntu");
    assert_eq!(facts.disk_encrypted, "yes");
    assert_eq!(facts.firewall, "no");
    assert_eq!(facts.screen_lock, "unknown");
    assert_eq!(facts.age_secs, 0);
    let json = facts.to_json();
    assert_eq!(json["endpoint_protection"], "unknown");
    assert_eq!(json["enrolled"], true);

    f.registry.revoke(id, now()).unwrap();
    let facts = PostureFacts::gather(&f.registry, &store, &reqs, id, now());
    assert!(!facts.enrolled);
    assert!(!facts.compliant);

    let stranger = PostureFacts::gather(&f.registry, &store, &reqs, Uuid::new_v4(), now());
    assert_eq!(stranger.age_secs, NO_POSTURE_AGE);
    assert_eq!(stranger.os, "unknown");
    assert!(!stranger.compliant);
}

#[test]
fn store_persists_and_versions_compare_numerically() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let mut store = PostureStore::new();
    agent_report(&f, &mut store, &svid, report(id, now()), now());
    let path = f.path("posture.json");
    store.save(&path).unwrap();
    assert_eq!(PostureStore::load(&path).unwrap(), store);

    use std::cmp::Ordering::*;
    assert_eq!(compare_versions("14.10", "14.9"), Greater);
    assert_eq!(compare_versions("14", "14.0.0"), Equal);
    assert_eq!(compare_versions("10.0.19045", "10.0.22631"), Less);
    assert_eq!(compare_versions("v24.04-lts", "24.04"), Equal);
}
