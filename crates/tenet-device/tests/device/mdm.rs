//! MDM imports: JSON and CSV, aliases, bad rows with line numbers, refusals.

use tenet_device::{MdmError, MdmMatch, PostureSource, PostureStore, import_mdm};

use crate::{Fixture, now};

#[test]
fn csv_export_with_aliases_and_bad_rows() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let (b, _) = f.enrol("win-1", "PF3ABC");
    let csv = "Device name,Serial Number,Operating System,OS Version,FileVault 2 Status,\
         Firewall Enabled,Compliance State,Last Check-in,Colour\n\
         mac-1,C02XK1,macOS,14.2.1,All Partitions Encrypted,Yes,Compliant,2026-06-01 10:00:00,red\n\
         win-1,PF3ABC,Windows,10.0.19045,Not Encrypted,maybe,Noncompliant,2026-06-01T09:00:00Z,\n\
         \"ghost\nbox\",ZZZ999,Linux,6.1,No,No,Compliant,2026-06-01 09:00:00,blue\n\
         win-1,pf3abc,Windows,10.0.19045,Not Encrypted,Off,In grace period,,\n\
         win-1,PF3ABC,Windows,10.0.22631,Fully Encrypted,Off,Noncompliant,1780300800,\n";
    let import = import_mdm(
        "intune.csv",
        csv.as_bytes(),
        &f.registry,
        MdmMatch::Serial,
        now(),
    )
    .unwrap();

    let lines: Vec<u64> = import.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 4, 6], "{:?}", import.problems);
    assert!(
        import.problems[0].reason.contains("firewall"),
        "{:?}",
        import.problems[0]
    );
    assert!(
        import.problems[1].reason.contains("ZZZ999"),
        "{:?}",
        import.problems[1]
    );
    assert!(
        import.problems[2].reason.contains("check-in"),
        "{:?}",
        import.problems[2]
    );

    assert_eq!(import.records.len(), 2);
    let (id, mac) = &import.records[0];
    assert_eq!(*id, a);
    assert_eq!(mac.os.as_deref(), Some("macOS"));
    assert_eq!(mac.os_version.as_deref(), Some("14.2.1"));
    assert_eq!(mac.disk_encrypted, Some(true));
    assert_eq!(mac.firewall, Some(true));
    assert_eq!(mac.mdm_compliant, Some(true));
    assert_eq!(mac.screen_lock, None);
    assert_eq!(mac.collected_at, now() - time::Duration::hours(2));
    let (id, win) = &import.records[1];
    assert_eq!(*id, b);
    assert_eq!(win.disk_encrypted, Some(true));
    assert_eq!(win.firewall, Some(false));
    assert_eq!(win.collected_at.unix_timestamp(), 1_780_300_800);

    let mut store = PostureStore::new();
    let applied = store.apply_mdm(&import);
    assert_eq!((applied.applied, applied.stale), (2, 0));
    assert!(store.latest(a, PostureSource::Mdm).is_some());
    assert!(store.latest(a, PostureSource::Agent).is_none());
}

#[test]
fn rows_not_newer_than_the_known_mdm_posture_are_counted_stale_and_left_out() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let (b, _) = f.enrol("win-1", "PF3ABC");
    let export = |rows: &str| {
        let csv = format!("serial,encrypted,last check-in\n{rows}");
        import_mdm(
            "mdm.csv",
            csv.as_bytes(),
            &f.registry,
            MdmMatch::Serial,
            now(),
        )
        .unwrap()
    };
    let mut store = PostureStore::new();
    let first = export("C02XK1,yes,2026-06-01T10:00:00Z\nPF3ABC,yes,2026-06-01T10:00:00Z\n");
    let applied = store.apply_mdm(&first);
    assert_eq!((applied.applied, applied.stale), (2, 0));

    // The same export again changes nothing; an older row for a is stale, a newer one for b
    // is kept.
    let applied = store.apply_mdm(&first);
    assert_eq!((applied.applied, applied.stale), (0, 2));
    let second = export("C02XK1,no,2026-06-01T09:00:00Z\nPF3ABC,no,2026-06-01T11:00:00Z\n");
    let applied = store.apply_mdm(&second);
    assert_eq!((applied.applied, applied.stale), (1, 1));
    let mdm = |id| store.latest(id, PostureSource::Mdm).unwrap().disk_encrypted;
    assert_eq!(mdm(a), Some(true));
    assert_eq!(mdm(b), Some(false));
}

#[test]
fn json_export_matched_by_device_id_reports_bad_rows_by_line() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let json = format!(
        r#"[
  {{"deviceId": "{a}", "osVersion": "14.5", "isEncrypted": true, "complianceState": "compliant",
    "lastSyncDateTime": "2026-06-01T11:00:00Z", "extra": {{"nested": 1}}}},
  {{"deviceId": "not-a-uuid", "lastSyncDateTime": "2026-06-01T11:00:00Z"}},
  {{"deviceId": "{a}", "isEncrypted": [true], "lastSyncDateTime": "2026-06-01T11:00:00Z"}},
  "not an object"
]"#
    );
    let import = import_mdm(
        "graph.json",
        json.as_bytes(),
        &f.registry,
        MdmMatch::DeviceId,
        now(),
    )
    .unwrap();
    assert_eq!(import.records.len(), 1);
    assert_eq!(import.records[0].0, a);
    assert_eq!(import.records[0].1.disk_encrypted, Some(true));
    assert_eq!(import.records[0].1.mdm_compliant, Some(true));
    let lines: Vec<u64> = import.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![4, 5, 6], "{:?}", import.problems);
}

#[test]
fn export_with_no_known_column_or_no_match_column_is_refused() {
    let f = Fixture::create();
    let err = import_mdm(
        "x.csv",
        b"colour,size\nred,1\n",
        &f.registry,
        MdmMatch::Name,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, MdmError::NoKnownColumn { .. }), "{err}");
    assert!(err.to_string().contains("x.csv"), "{err}");

    let err = import_mdm(
        "y.csv",
        b"Serial Number,Last Check-in\nA,2026-06-01 10:00:00\n",
        &f.registry,
        MdmMatch::Name,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, MdmError::NoMatchColumn { .. }), "{err}");

    let err = import_mdm("z.json", b"[1, 2", &f.registry, MdmMatch::Name, now()).unwrap_err();
    assert!(matches!(err, MdmError::NotJsonArray { .. }), "{err}");

    // The same field twice: which column counts would depend on their order.
    let err = import_mdm(
        "twice.csv",
        b"Device ID,Encrypted,Device ID\nA,Yes,B\n",
        &f.registry,
        MdmMatch::DeviceId,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, MdmError::BadHeader { .. }), "{err}");
    assert!(
        err.to_string().contains("twice.csv") && err.to_string().contains("both give"),
        "{err}"
    );
}

#[test]
fn future_check_in_is_a_bad_row() {
    let mut f = Fixture::create();
    f.enrol("mac-1", "C02XK1");
    let csv = b"Name,Last Check-in\nmac-1,2026-06-02 12:00:00\n";
    let import = import_mdm("x.csv", csv, &f.registry, MdmMatch::Name, now()).unwrap();
    assert!(import.records.is_empty());
    assert!(
        import.problems[0].reason.contains("future"),
        "{:?}",
        import.problems
    );
}

#[test]
fn a_serial_or_name_claimed_by_several_devices_matches_none_of_them() {
    let mut f = Fixture::create();
    let (managed, _) = f.enrol("mac-1", "C02XK1");
    // Another device claims the managed laptop's serial (different case) and name.
    let (claimant, _) = f.enrol("MAC-1", "c02xk1");
    let (other, _) = f.enrol("win-1", "PF3ABC");
    let csv = "Device name,Serial Number,Compliance State,Last Check-in\n\
         mac-1,C02XK1,Compliant,2026-06-01 10:00:00\n\
         win-1,PF3ABC,Compliant,2026-06-01 10:00:00\n";
    for match_by in [MdmMatch::Serial, MdmMatch::Name] {
        let import =
            import_mdm("intune.csv", csv.as_bytes(), &f.registry, match_by, now()).unwrap();
        assert_eq!(
            import.records.len(),
            1,
            "{match_by:?}: {:?}",
            import.records
        );
        assert_eq!(import.records[0].0, other);
        assert_eq!(import.problems.len(), 1, "{:?}", import.problems);
        let problem = &import.problems[0];
        assert_eq!(problem.line, 2);
        assert!(problem.reason.contains("2 enrolled devices"), "{problem:?}");
        assert!(problem.reason.contains(&managed.to_string()), "{problem:?}");
        assert!(
            problem.reason.contains(&claimant.to_string()),
            "{problem:?}"
        );
    }
}
