//! Learned baselines survive an export and an import (a restart): the same decisions
//! afterwards, and unusable state files are reported, never trusted.

use tenet_detect::{Analytics, BaselineError, Baselines, rules};
use time::Duration;

use crate::support::*;

/// A scratch directory of this test process.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tenet-detect-persist-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn an_imported_baseline_makes_the_same_decisions() {
    let mut a = analytics();
    let p = spiffe("web");
    let (_, after) = learn(&mut a, &p, &["catalog", "orders"]);
    assert!(a.is_established(&p));
    // Someone still learning.
    feed(&mut a, &Req::new(&spiffe("new"), "orders").at(after));

    let dir = scratch("same");
    let path = dir.join("detect").join("baselines.json");
    let exported = a.export_baselines(after);
    assert_eq!(exported.len(), 2);
    exported.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"catalog\"") && text.contains(&p), "{text}");
    assert!(text.contains("\"version\":1"), "{text}");

    // A restart: fresh analytics with the same configuration.
    let loaded = Baselines::load(&path).unwrap().unwrap();
    assert_eq!(loaded, exported);
    let mut b = analytics();
    assert_eq!(b.import_baselines(&loaded), 2);
    assert!(b.is_established(&p));
    assert!(!b.is_established(&spiffe("new")));
    assert_eq!(b.tracked().principals, 2);
    assert_eq!(b.tracked().learning, 1);

    // A known service from a known network at a usual hour stays quiet.
    let quiet = feed(
        &mut b,
        &Req::new(&p, "orders").at(after + Duration::minutes(1)),
    );
    assert!(quiet.is_empty(), "{quiet:#?}");
    // A new service still fires, with the restored baseline in its explanation.
    let alerts = feed(
        &mut b,
        &Req::new(&p, "billing").at(after + Duration::minutes(2)),
    );
    let lateral = of(&alerts, rules::LATERAL_MOVEMENT);
    assert_eq!(lateral.len(), 1, "{alerts:#?}");
    assert!(
        lateral[0]
            .explanation
            .contains("baseline of 2 services learned over 2 days: catalog, orders"),
        "{}",
        lateral[0].explanation
    );
    // So do a new network and an unusual hour.
    let alerts = feed(
        &mut b,
        &Req::new(&p, "orders")
            .from("192.0.2.7")
            .at(after + Duration::minutes(3)),
    );
    assert_eq!(
        of(&alerts, rules::NEW_SOURCE_NETWORK).len(),
        1,
        "{alerts:#?}"
    );
    let alerts = feed(
        &mut b,
        &Req::new(&p, "orders").at(after + Duration::hours(13)),
    );
    assert_eq!(of(&alerts, rules::UNUSUAL_HOUR).len(), 1, "{alerts:#?}");

    // The exported form round-trips through the import unchanged.
    let mut c = analytics();
    c.import_baselines(&exported);
    assert_eq!(c.export_baselines(after), exported);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_import_stays_within_the_configured_caps() {
    let mut a = analytics();
    let (_, after) = learn(&mut a, &spiffe("web"), &["catalog", "orders", "users"]);
    for i in 0..50 {
        feed(
            &mut a,
            &Req::new(&spiffe(&format!("p{i}")), "orders").at(after),
        );
    }
    let exported = a.export_baselines(after);
    assert_eq!(exported.len(), 51);

    let mut c = config();
    c.limits.max_principals = 10;
    c.lateral.max_baseline_items = 2;
    let mut b = Analytics::new(c).unwrap();
    assert_eq!(b.import_baselines(&exported), 10);
    assert_eq!(b.tracked().principals, 10);
    assert!(b.is_established(&spiffe("web")), "established ones first");
    // Only two of the three services were kept, and the baseline is saturated: no novelty.
    let alerts = feed(
        &mut b,
        &Req::new(&spiffe("web"), "billing").at(after + Duration::minutes(1)),
    );
    assert!(
        of(&alerts, rules::LATERAL_MOVEMENT).is_empty(),
        "{alerts:#?}"
    );
}

#[test]
fn unusable_files_are_reported_and_moved_aside() {
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("baselines.json");

    assert_eq!(Baselines::load(&path), Ok(None), "a missing file is normal");

    std::fs::write(&path, b"{\"format\":\"tenet-detect-baselines\",\"vers").unwrap();
    assert!(matches!(
        Baselines::load(&path),
        Err(BaselineError::Parse(_))
    ));
    let aside = Baselines::quarantine(&path, 1_780_000_000).unwrap();
    assert_eq!(
        aside.file_name().unwrap().to_str().unwrap(),
        "baselines.json.corrupt-1780000000"
    );
    assert!(aside.exists() && !path.exists());

    std::fs::write(
        &path,
        b"{\"format\":\"tenet-detect-baselines\",\"version\":2,\"saved_at_ms\":0,\"principals\":[]}",
    )
    .unwrap();
    let e = Baselines::load(&path).unwrap_err();
    assert_eq!(e, BaselineError::FutureVersion(2));
    assert_eq!(
        e.to_string(),
        "format version 2 is newer than the supported version 1"
    );

    std::fs::write(&path, b"{\"format\":\"other\",\"version\":1}").unwrap();
    assert!(matches!(
        Baselines::load(&path),
        Err(BaselineError::Format(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
