//! kubescape regolibrary cases whose input is RBAC or NetworkPolicy objects: alert versus no
//! alert must match `expected.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use tenet_finding::Finding;
use tenet_k8s::Cluster;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/kubescape-regolibrary/rules"
);

/// A kubescape rule in scope and the Tenet rule ids that stand for its alert.
const RULES: &[(&str, &[&str])] = &[
    ("cluster-admin-role", &["k8s.rbac-cluster-admin"]),
    (
        "rule-list-all-cluster-admins-v1",
        &["k8s.rbac-cluster-admin", "k8s.rbac-namespace-admin"],
    ),
    ("rule-can-list-get-secrets-v1", &["k8s.rbac-read-secrets"]),
    ("rule-can-bind-escalate", &["k8s.rbac-escalate"]),
    (
        "rule-can-impersonate-users-groups-v1",
        &["k8s.rbac-impersonate"],
    ),
    ("exec-into-container-v1", &["k8s.rbac-pod-exec"]),
    ("rule-can-portforward-v1", &["k8s.rbac-port-forward"]),
    ("rule-can-create-pod", &["k8s.rbac-create-pods"]),
    (
        "system-authenticated-allowed-to-take-over-cluster",
        &["k8s.rbac-all-authenticated-binding"],
    ),
    (
        "ensure-default-service-accounts-has-only-default-roles",
        &["k8s.rbac-default-service-account"],
    ),
    (
        "internal-networking",
        &["k8s.namespace-without-network-policy"],
    ),
    ("dangling-networkpolicy", &["k8s.netpol-selects-nothing"]),
    // Special: the workload is selected by no policy in either direction.
    ("ingress-and-egress-blocked", &[]),
];

fn alerts(rule: &str, ids: &[&str], findings: &[Finding]) -> bool {
    if rule == "ingress-and-egress-blocked" {
        // A workload is open in a direction when a workload finding names it, or when a
        // namespace finding lists it among the workloads it leaves open.
        let open = |ids: &[&str]| -> Vec<&str> {
            findings
                .iter()
                .filter(|f| ids.contains(&f.rule.as_str()))
                .flat_map(|f| {
                    let listed = f.evidence.get("workloads").and_then(|v| v.as_array());
                    match listed {
                        Some(list) => list.iter().filter_map(|v| v.as_str()).collect(),
                        None => vec![f.subject.as_str()],
                    }
                })
                .collect()
        };
        let ns = "k8s.namespace-without-network-policy";
        let egress = open(&[
            "k8s.workload-not-isolated-egress",
            "k8s.no-default-deny-egress",
            ns,
        ]);
        return open(&[
            "k8s.workload-not-isolated-ingress",
            "k8s.no-default-deny-ingress",
            ns,
        ])
        .iter()
        .any(|s| egress.contains(s));
    }
    findings
        .iter()
        .any(|f| stands_for(f).iter().any(|r| ids.contains(r)))
}

/// The rule ids a finding stands for: its own, and those an admin finding folds in as
/// `implies` (cluster-admin implies reading secrets, exec, escalation, ...).
fn stands_for(f: &Finding) -> Vec<&str> {
    let mut ids = vec![f.rule.as_str()];
    if let Some(implied) = f.evidence.get("implies").and_then(|v| v.as_array()) {
        ids.extend(implied.iter().filter_map(|v| v.as_str()));
    }
    ids
}

#[test]
fn kubescape_network_and_rbac() {
    assert!(Path::new(CORPUS).is_dir(), "corpus missing: {CORPUS}");
    let (mut passed, mut total, mut excluded) = (0, 0, 0);
    for (rule, ids) in RULES {
        let tests = Path::new(CORPUS).join(rule).join("test");
        let mut cases: Vec<_> = std::fs::read_dir(&tests)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        for case in cases {
            let mut cluster = Cluster::new();
            let mut cilium = false;
            let mut inputs: Vec<_> = std::fs::read_dir(case.join("input"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            inputs.sort();
            for input in inputs {
                let text = std::fs::read_to_string(&input).unwrap();
                cilium |= text.contains("CiliumNetworkPolicy")
                    || text.contains("CiliumClusterwideNetworkPolicy");
                cluster
                    .add_text(&input.display().to_string(), &text)
                    .unwrap();
            }
            let name = format!("{rule}/{}", case.file_name().unwrap().to_string_lossy());
            if cilium {
                // Cilium's own policy kinds are out of scope.
                excluded += 1;
                continue;
            }
            let expected: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                    .unwrap();
            let expected = expected.as_array().is_some_and(|a| !a.is_empty());
            let got = alerts(rule, ids, &cluster.assess().findings);
            total += 1;
            if got == expected {
                passed += 1;
            } else {
                println!("FAIL {name}: expected alert={expected}, got {got}");
            }
        }
    }
    println!("excluded (Cilium policies): {excluded}");
    println!("kubescape network/rbac: {passed}/{total}");
    assert!(passed >= 45, "regression: {passed}/{total}");
}
