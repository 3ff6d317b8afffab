//! netpol-analyzer's connlist outputs: for every scenario with a plain
//! `<scenario>_connlist_output.txt`, the exact connection list.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use tenet_k8s::Cluster;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/netpol-analyzer"
);

/// Scenario families excluded, with why.
fn excluded(scenario: &str) -> Option<&'static str> {
    if scenario.starts_with("anp_") || scenario.starts_with("banp_") {
        return Some("AdminNetworkPolicy/BaselineAdminNetworkPolicy are not supported");
    }
    if ["udn", "cudn", "nad_", "virtual_machines"]
        .iter()
        .any(|p| scenario.starts_with(p))
    {
        return Some(
            "OVN-Kubernetes user-defined networks, NADs and KubeVirt VMs are out of scope",
        );
    }
    if scenario.starts_with("example_pods_w_same_owner_and_labels_gap_anp") {
        return Some("uses AdminNetworkPolicy");
    }
    None
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}

fn run(scenario: &Path) -> Vec<String> {
    let mut files = Vec::new();
    yaml_files(scenario, &mut files);
    let mut cluster = Cluster::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // netpol-analyzer skips files it cannot parse; so do we (they are outputs, not input).
        let _ = cluster.add_text(&file.display().to_string(), &text);
    }
    cluster
        .connections()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn netpol_analyzer_connlist() {
    let tests = Path::new(CORPUS).join("tests");
    let outputs = Path::new(CORPUS).join("test_outputs/connlist");
    assert!(tests.is_dir(), "corpus missing: {}", tests.display());
    let mut scenarios: Vec<String> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|s| outputs.join(format!("{s}_connlist_output.txt")).is_file())
        .collect();
    scenarios.sort();
    let (mut passed, mut total, mut skipped) = (0, 0, 0);
    for scenario in &scenarios {
        if let Some(reason) = excluded(scenario) {
            println!("excluded {scenario}: {reason}");
            skipped += 1;
            continue;
        }
        total += 1;
        let expected_text =
            std::fs::read_to_string(outputs.join(format!("{scenario}_connlist_output.txt")))
                .unwrap();
        // Ingress/Route analysis ({ingress-controller} lines) is not implemented.
        let expected: Vec<String> = expected_text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("{ingress-controller}"))
            .map(str::to_owned)
            .collect();
        let got = run(&tests.join(scenario));
        if got == expected {
            passed += 1;
        } else {
            let missing: Vec<_> = expected
                .iter()
                .filter(|l| !got.contains(l))
                .take(4)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|l| !expected.contains(l))
                .take(4)
                .collect();
            println!(
                "FAIL {scenario}: expected {} got {}\n  missing {missing:#?}\n  extra {extra:#?}",
                expected.len(),
                got.len()
            );
        }
    }
    println!("excluded scenarios: {skipped}");
    println!("netpol-analyzer connlist: {passed}/{total}");
    assert!(passed >= 28, "regression: {passed}/{total}");
}
