//! MDM exports that say two things of one device are refused, naming the row and the keys.

use tenet_device::{MdmMatch, PostureSource, PostureStore, import_mdm};

use crate::{Fixture, now};

#[test]
fn a_json_key_given_twice_makes_its_row_bad() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let (b, _) = f.enrol("win-1", "PF3ABC");
    // serde_json keeps the last of two equal keys (here "compliant"); another reader of the
    // export may keep the first. An escaped spelling is the same key.
    let json = format!(
        r#"[
  {{"Device ID": "{a}", "Compliance": "noncompliant", "Compliance": "compliant",
    "Last Sync": "2026-06-01T11:00:00Z"}},
  {{"Device ID": "{b}", "Encrypted": "yes", "Firewall": "on", "\u0046irewall": "on",
    "Last Sync": "2026-06-01T11:00:00Z"}},
  {{"Device ID": "{b}", "Compliance": "compliant", "Last Sync": "2026-06-01T10:00:00Z",
    "notes": 1, "notes": 2}}
]"#
    );
    let import = import_mdm(
        "mdm.json",
        json.as_bytes(),
        &f.registry,
        MdmMatch::DeviceId,
        now(),
    )
    .unwrap();
    let lines: Vec<u64> = import.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 4], "{:?}", import.problems);
    assert!(
        import.problems[0]
            .reason
            .contains(r#"key "Compliance" more than once"#),
        "{:?}",
        import.problems[0]
    );
    assert!(
        import.problems[1]
            .reason
            .contains(r#"key "Firewall" more than once"#),
        "{:?}",
        import.problems[1]
    );
    // A column Tenet does not read may repeat: nothing depends on it.
    assert_eq!(import.records.len(), 1);
    assert_eq!(import.records[0].0, b);

    let mut store = PostureStore::new();
    store.apply_mdm(&import);
    assert!(store.latest(a, PostureSource::Mdm).is_none());
}

#[test]
fn two_names_of_one_json_field_must_agree() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let (b, _) = f.enrol("win-1", "PF3ABC");
    let json = format!(
        r#"[
  {{"Device ID": "{a}", "UDID": "{b}", "Last Sync": "2026-06-01T11:00:00Z"}},
  {{"Device ID": "{b}", "UDID": "{b}", "Encrypted": "true", "FileVault": true,
    "Last Sync": "2026-06-01T11:00:00Z"}},
  {{"Device ID": "{a}", "Encrypted": "yes", "FileVault": "no",
    "Last Sync": "2026-06-01T11:00:00Z"}}
]"#
    );
    let import = import_mdm(
        "mdm.json",
        json.as_bytes(),
        &f.registry,
        MdmMatch::DeviceId,
        now(),
    )
    .unwrap();
    let lines: Vec<u64> = import.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 5], "{:?}", import.problems);
    let names = |line: usize, first: &str, second: &str, field: &str| {
        let reason = &import.problems[line].reason;
        assert!(
            reason.contains(&format!("{first:?}"))
                && reason.contains(&format!("{second:?}"))
                && reason.contains(&format!("the {field} field")),
            "{reason}"
        );
    };
    names(0, "Device ID", "UDID", "device id");
    names(1, "Encrypted", "FileVault", "encrypted");
    // Two names giving the same value are one answer.
    assert_eq!(import.records.len(), 1);
    assert_eq!(import.records[0].0, b);
    assert_eq!(import.records[0].1.disk_encrypted, Some(true));
}

#[test]
fn rows_giving_one_device_different_postures_at_one_time_are_bad() {
    let mut f = Fixture::create();
    let (a, _) = f.enrol("mac-1", "C02XK1");
    let (b, _) = f.enrol("win-1", "PF3ABC");
    let csv = "serial,compliance,last check-in\n\
         C02XK1,noncompliant,2026-06-01T10:00:00Z\n\
         PF3ABC,compliant,2026-06-01T10:00:00Z\n\
         C02XK1,compliant,2026-06-01 10:00:00\n\
         PF3ABC,compliant,2026-06-01T10:00:00Z\n\
         PF3ABC,noncompliant,2026-06-01T09:00:00Z\n";
    let import = import_mdm(
        "mdm.csv",
        csv.as_bytes(),
        &f.registry,
        MdmMatch::Serial,
        now(),
    )
    .unwrap();
    let lines: Vec<u64> = import.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 4], "{:?}", import.problems);
    for problem in &import.problems {
        assert!(
            problem.reason.contains("lines 2, 4")
                && problem.reason.contains(&a.to_string())
                && problem.reason.contains("2026-06-01T10:00:00Z"),
            "{problem:?}"
        );
    }
    // Two rows saying the same thing at one time are one answer, and rows at different
    // times are the device's history: the newest counts.
    let devices: Vec<_> = import.records.iter().map(|(id, _)| *id).collect();
    assert_eq!(devices, vec![b, b, b]);
    let mut store = PostureStore::new();
    store.apply_mdm(&import);
    assert!(store.latest(a, PostureSource::Mdm).is_none());
    let latest = store.latest(b, PostureSource::Mdm).unwrap();
    assert_eq!(latest.mdm_compliant, Some(true));
}
