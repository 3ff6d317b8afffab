//! Local posture collection on Linux, for `tenet device report`.
//!
//! Every probe reads files under a root directory (`/` on a real host, a fake tree in tests)
//! and answers `None` when it cannot tell. Nothing here runs a program except
//! [`nft_ruleset`], which the caller runs on a real host and passes in.

use std::fs;
use std::path::Path;
use std::process::Command;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::report::PostureReport;

/// Process names (as in `/proc/<pid>/comm`, at most 15 bytes) of known endpoint protection
/// agents: CrowdStrike Falcon, Microsoft Defender for Endpoint, SentinelOne, Carbon Black,
/// Trend Micro Deep Security, Sophos, Elastic Defend, Cortex XDR, Rapid7, ESET, ClamAV.
pub const KNOWN_EDR_PROCESSES: &[&str] = &[
    "falcon-sensor",
    "falcond",
    "wdavdaemon",
    "mdatp",
    "sentinelagent",
    "s1-agent",
    "cbagentd",
    "cbdaemon",
    "ds_agent",
    "sophos_threat_d",
    "sophosmtr",
    "elastic-endpoin",
    "traps_pmd",
    "ir_agent",
    "esets_daemon",
    "clamd",
];

/// What the caller supplies besides the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// The device id from enrolment.
    pub device_id: Uuid,
    /// The report's sequence number. Reports are ordered by `collected_at` first; the
    /// sequence only orders reports collected at the same instant. `tenet device report` keeps
    /// no state and sends the collection time in Unix seconds.
    pub sequence: u64,
    /// The agent's version.
    pub agent_version: String,
    /// The collection time.
    pub now: OffsetDateTime,
    /// Output of `nft list ruleset`, when it could be run (see [`nft_ruleset`]).
    pub nft_ruleset: Option<String>,
}

/// Collects a posture report from the filesystem under `root`.
pub fn collect_report(root: &Path, options: &CollectOptions) -> PostureReport {
    let os = os_release(root);
    PostureReport {
        device_id: options.device_id,
        collected_at: options.now,
        os: os.as_ref().map(|(name, _)| name.clone()),
        os_version: os.and_then(|(_, version)| version),
        disk_encrypted: root_disk_encrypted(root),
        // No reliable, desktop-independent way to read the lock setting from files.
        screen_lock: None,
        firewall: firewall_active(root, options.nft_ruleset.as_deref()),
        endpoint_protection: endpoint_protection(root),
        agent_version: options.agent_version.clone(),
        sequence: options.sequence,
    }
}

/// The OS id (`ID`, else `NAME`) and `VERSION_ID` from `etc/os-release`, falling back to
/// `usr/lib/os-release`.
pub fn os_release(root: &Path) -> Option<(String, Option<String>)> {
    let text = fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| fs::read_to_string(root.join("usr/lib/os-release")))
        .ok()?;
    let mut fields = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']).trim();
        if !key.starts_with('#') && !value.is_empty() {
            fields.insert(key.trim(), value.to_owned());
        }
    }
    let name = fields.get("ID").or_else(|| fields.get("NAME"))?.clone();
    Some((name, fields.get("VERSION_ID").cloned()))
}

/// Whether the block device behind `/` is on dm-crypt: `Some(true)` when it, or a device
/// below it (LVM on LUKS), is a dm device whose `dm/uuid` starts with `CRYPT-`;
/// `Some(false)` when the stack under it is known and has no such layer; `None` when the
/// root filesystem or its device cannot be found (overlay, network or virtual filesystems).
pub fn root_disk_encrypted(root: &Path) -> Option<bool> {
    let dev = root_device_number(root)?;
    let name = block_device_named(root, &dev)?;
    block_encrypted(root, &name, 0)
}

/// `major:minor` of the filesystem mounted at `/`, from `proc/self/mountinfo`.
fn root_device_number(root: &Path) -> Option<String> {
    let text = fs::read_to_string(root.join("proc/self/mountinfo")).ok()?;
    // Fields: id parent major:minor root mount-point ...; the last mount on `/` wins.
    let dev = text.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let dev = fields.nth(2)?;
        let mount_point = fields.nth(1)?;
        (mount_point == "/").then_some(dev)
    })?;
    // Major 0 is an anonymous device (overlay, tmpfs, btrfs subvolume): no block device.
    (!dev.starts_with("0:")).then(|| dev.to_owned())
}

/// The name under `sys/class/block` whose `dev` file holds `dev`.
fn block_device_named(root: &Path, dev: &str) -> Option<String> {
    let entries = fs::read_dir(root.join("sys/class/block")).ok()?;
    entries.flatten().find_map(|entry| {
        let number = fs::read_to_string(entry.path().join("dev")).ok()?;
        (number.trim() == dev).then(|| entry.file_name().to_string_lossy().into_owned())
    })
}

/// Most device-mapper layers followed down from the root device.
const MAX_DM_DEPTH: usize = 8;

fn block_encrypted(root: &Path, name: &str, depth: usize) -> Option<bool> {
    if depth > MAX_DM_DEPTH || name.contains('/') || name.starts_with('.') {
        return None;
    }
    let device = root.join("sys/class/block").join(name);
    let Ok(uuid) = fs::read_to_string(device.join("dm/uuid")) else {
        // Not a dm device: a plain disk or partition, known only if it exists.
        return device.join("dev").exists().then_some(false);
    };
    if uuid.trim().starts_with("CRYPT-") {
        return Some(true);
    }
    let slaves: Vec<String> = fs::read_dir(device.join("slaves"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if slaves.is_empty() {
        return None;
    }
    let below: Vec<Option<bool>> = slaves
        .iter()
        .map(|slave| block_encrypted(root, slave, depth + 1))
        .collect();
    if below.iter().all(|b| *b == Some(true)) {
        Some(true)
    } else if below.contains(&Some(false)) {
        Some(false)
    } else {
        None
    }
}

/// Whether a host firewall filters traffic. From `nft list ruleset` output when given: a
/// base chain (one with a `hook`) that drops or rejects, by policy or rule, means yes; an
/// empty ruleset means no. Without it, a legacy iptables `filter` table listed in
/// `proc/net/ip_tables_names` means yes; otherwise unknown.
pub fn firewall_active(root: &Path, nft_ruleset: Option<&str>) -> Option<bool> {
    if let Some(ruleset) = nft_ruleset {
        return Some(nft_filters(ruleset));
    }
    ["proc/net/ip_tables_names", "proc/net/ip6_tables_names"]
        .iter()
        .filter_map(|file| fs::read_to_string(root.join(file)).ok())
        .any(|names| names.lines().any(|n| n.trim() == "filter"))
        .then_some(true)
}

/// True when a hooked chain of the ruleset drops or rejects something.
fn nft_filters(ruleset: &str) -> bool {
    let mut in_base_chain = false;
    for line in ruleset.lines().map(str::trim) {
        if line.starts_with("chain ") {
            in_base_chain = false;
        }
        if line.starts_with("type ") && line.contains(" hook ") {
            in_base_chain = true;
            if line.contains("policy drop") {
                return true;
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if in_base_chain && (words.contains(&"drop") || words.contains(&"reject")) {
            return true;
        }
    }
    false
}

/// Runs `nft list ruleset` when an `nft` binary is installed in a system directory; `None`
/// when it is absent or fails (for example without the privilege to read the ruleset).
pub fn nft_ruleset() -> Option<String> {
    let binary = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())?;
    let output = Command::new(binary)
        .args(["list", "ruleset"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}

/// `Some(true)` when a process named in [`KNOWN_EDR_PROCESSES`] runs (from
/// `proc/<pid>/comm`); `None` otherwise, since absence of known names proves nothing.
pub fn endpoint_protection(root: &Path) -> Option<bool> {
    let entries = fs::read_dir(root.join("proc")).ok()?;
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("comm")).ok())
        .any(|comm| {
            let comm = comm.trim().to_ascii_lowercase();
            KNOWN_EDR_PROCESSES.contains(&comm.as_str())
        })
        .then_some(true)
}
