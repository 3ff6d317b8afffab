//! Local collection against fake filesystem trees.

use std::fs;
use std::path::Path;
use std::time::Duration;

use tenet_device::{
    CollectOptions, PostureStore, ReportVerifier, collect_report, endpoint_protection,
    firewall_active, os_release, root_disk_encrypted, sign_report,
};

use crate::{Fixture, now};

fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn mountinfo(root: &Path, dev: &str, source: &str) {
    let text = format!(
        "22 1 0:21 / /proc rw - proc proc rw\n\
         28 1 {dev} / / rw,relatime shared:1 - ext4 {source} rw\n\
         30 28 0:25 / /run rw - tmpfs tmpfs rw\n"
    );
    write(root, "proc/self/mountinfo", &text);
}

fn block(root: &Path, name: &str, dev: &str, dm_uuid: Option<&str>, slaves: &[&str]) {
    write(
        root,
        &format!("sys/class/block/{name}/dev"),
        &format!("{dev}\n"),
    );
    if let Some(uuid) = dm_uuid {
        write(
            root,
            &format!("sys/class/block/{name}/dm/uuid"),
            &format!("{uuid}\n"),
        );
        fs::create_dir_all(root.join(format!("sys/class/block/{name}/slaves"))).unwrap();
    }
    for slave in slaves {
        write(root, &format!("sys/class/block/{name}/slaves/{slave}"), "");
    }
}

#[test]
fn os_release_gives_id_and_version() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(os_release(root.path()), None);
    write(
        root.path(),
        "usr/lib/os-release",
        "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n# comment\n",
    );
    assert_eq!(
        os_release(root.path()),
        Some(("ubuntu".into(), Some("24.04".into())))
    );
    write(root.path(), "etc/os-release", "NAME='Debian GNU/Linux'\n");
    assert_eq!(
        os_release(root.path()),
        Some(("Debian GNU/Linux".into(), None))
    );
}

#[test]
fn root_on_lvm_on_luks_is_encrypted() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    mountinfo(r, "253:1", "/dev/mapper/vg-root");
    block(r, "nvme0n1p3", "259:3", None, &[]);
    block(
        r,
        "dm-0",
        "253:0",
        Some("CRYPT-LUKS2-0123abcd-luks"),
        &["nvme0n1p3"],
    );
    block(r, "dm-1", "253:1", Some("LVM-abcdef"), &["dm-0"]);
    assert_eq!(root_disk_encrypted(r), Some(true));
}

#[test]
fn root_on_plain_lvm_or_partition_is_not_encrypted() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    mountinfo(r, "253:1", "/dev/mapper/vg-root");
    block(r, "sda2", "8:2", None, &[]);
    block(r, "dm-1", "253:1", Some("LVM-abcdef"), &["sda2"]);
    assert_eq!(root_disk_encrypted(r), Some(false));

    let plain = tempfile::tempdir().unwrap();
    mountinfo(plain.path(), "8:2", "/dev/sda2");
    block(plain.path(), "sda2", "8:2", None, &[]);
    assert_eq!(root_disk_encrypted(plain.path()), Some(false));
}

#[test]
fn root_encryption_is_unknown_when_it_cannot_be_told() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(root_disk_encrypted(empty.path()), None);

    let overlay = tempfile::tempdir().unwrap();
    mountinfo(overlay.path(), "0:45", "overlay");
    assert_eq!(root_disk_encrypted(overlay.path()), None);

    // The root device is not in sysfs.
    let missing = tempfile::tempdir().unwrap();
    mountinfo(missing.path(), "253:7", "/dev/mapper/x");
    block(missing.path(), "sda1", "8:1", None, &[]);
    assert_eq!(root_disk_encrypted(missing.path()), None);
}

#[test]
fn firewall_from_nft_ruleset_or_iptables_tables() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    assert_eq!(firewall_active(r, None), None);

    let dropping = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority \
                    filter; policy drop;\n\t\tct state established accept\n\t}\n}\n";
    assert_eq!(firewall_active(r, Some(dropping)), Some(true));
    let rejecting = "table inet f {\n chain input {\n  type filter hook input priority 0; \
                     policy accept;\n  tcp dport 22 reject\n }\n}\n";
    assert_eq!(firewall_active(r, Some(rejecting)), Some(true));
    let open = "table inet f {\n chain input {\n  type filter hook input priority 0; policy \
                accept;\n }\n chain helper {\n  drop\n }\n}\n";
    assert_eq!(firewall_active(r, Some(open)), Some(false));
    assert_eq!(firewall_active(r, Some("")), Some(false));

    write(r, "proc/net/ip_tables_names", "nat\nfilter\n");
    assert_eq!(firewall_active(r, None), Some(true));
}

#[test]
fn endpoint_protection_from_process_names() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(r, "proc/1/comm", "systemd\n");
    write(r, "proc/self/comm", "falcon-sensor\n");
    assert_eq!(
        endpoint_protection(r),
        None,
        "non-numeric entries are not processes"
    );
    write(r, "proc/4242/comm", "falcon-sensor\n");
    assert_eq!(endpoint_protection(r), Some(true));
}

#[test]
fn collected_report_signs_and_verifies() {
    let mut f = Fixture::create();
    let (id, svid) = f.enrol("laptop-1", "SN-001");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(r, "etc/os-release", "ID=fedora\nVERSION_ID=40\n");
    mountinfo(r, "253:0", "/dev/mapper/luks-1");
    block(
        r,
        "dm-0",
        "253:0",
        Some("CRYPT-LUKS2-feed-luks-1"),
        &["vda3"],
    );
    block(r, "vda3", "252:3", None, &[]);
    let options = CollectOptions {
        device_id: id,
        sequence: 7,
        agent_version: "0.1.0".into(),
        now: now(),
        nft_ruleset: None,
    };
    let report = collect_report(r, &options);
    assert_eq!(report.os.as_deref(), Some("fedora"));
    assert_eq!(report.os_version.as_deref(), Some("40"));
    assert_eq!(report.disk_encrypted, Some(true));
    assert_eq!(report.firewall, None);
    assert_eq!(report.screen_lock, None);
    assert_eq!(report.endpoint_protection, None);

    let jws = sign_report(&report, &svid).unwrap();
    let verifier = ReportVerifier::new(
        f.ca.bundle(),
        Duration::from_secs(60),
        Duration::from_secs(600),
    );
    let mut store = PostureStore::new();
    store
        .ingest_report(&verifier, &f.registry, &jws, now())
        .unwrap();
}
