//! One finding per cause: RBAC admin bindings, namespaces without default deny; and the
//! lines of YAML findings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;
use tenet_finding::{Finding, Severity};
use tenet_k8s::Cluster;

fn assess(text: &str) -> Vec<Finding> {
    let mut cluster = Cluster::new();
    cluster.add_text("m.yaml", text).unwrap();
    cluster.assess().findings
}

fn rules_about<'f>(findings: &'f [Finding], subject: &str) -> Vec<(&'f str, Severity)> {
    findings
        .iter()
        .filter(|f| f.subject == subject)
        .map(|f| (f.rule.as_str(), f.severity))
        .collect()
}

const ADMIN_BINDING: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ops-admin
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: User
  name: alice
- kind: Group
  name: system:authenticated
";

#[test]
fn a_cluster_admin_binding_is_one_finding_per_subject() {
    let findings = assess(ADMIN_BINDING);
    assert_eq!(
        rules_about(&findings, "User:alice"),
        [("k8s.rbac-cluster-admin", Severity::Critical)]
    );
    let alice = findings.iter().find(|f| f.subject == "User:alice").unwrap();
    let implied = alice.evidence["implies"].as_array().unwrap();
    for id in [
        "k8s.rbac-read-secrets",
        "k8s.rbac-pod-exec",
        "k8s.rbac-escalate",
        "k8s.rbac-impersonate",
        "k8s.rbac-create-pods",
        "k8s.rbac-port-forward",
        "k8s.rbac-token-create",
        "k8s.rbac-node-proxy",
    ] {
        assert!(implied.contains(&json!(id)), "{id} not in {implied:?}");
    }
    assert_eq!(
        alice.evidence["implied_rights"].as_array().unwrap().len(),
        8
    );
    let fix = alice.remediation.as_deref().unwrap();
    assert!(
        fix.starts_with("remove User:alice from ClusterRoleBinding ops-admin"),
        "{fix}"
    );
    assert!(
        fix.contains("Do not edit ClusterRole cluster-admin"),
        "{fix}"
    );
    assert!(!fix.contains("remove these permissions"), "{fix}");
    assert_eq!(alice.location.line, Some(10));

    // Everyone bound to cluster-admin: still one finding, naming both causes.
    let everyone = rules_about(&findings, "Group:system:authenticated");
    assert_eq!(everyone, [("k8s.rbac-cluster-admin", Severity::Critical)]);
    let f = findings
        .iter()
        .find(|f| f.subject == "Group:system:authenticated")
        .unwrap();
    assert!(
        f.evidence["implies"]
            .as_array()
            .unwrap()
            .contains(&json!("k8s.rbac-all-authenticated-binding"))
    );
    assert_eq!(f.location.line, Some(12));
}

#[test]
fn a_star_on_star_role_is_one_finding_and_narrower_roles_keep_theirs() {
    let text = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: everything, namespace: apps}
rules:
- apiGroups: ['*']
  resources: ['*']
  verbs: ['*']
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: everything}
subjects: [{kind: ServiceAccount, name: deployer, namespace: apps}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: debug, namespace: apps}
rules:
- apiGroups: ['']
  resources: [secrets, pods/exec]
  verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: debuggers, namespace: apps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: debug}
subjects: [{kind: User, name: bob}]
";
    let findings = assess(text);
    assert_eq!(
        rules_about(&findings, "ServiceAccount:apps/deployer"),
        [("k8s.rbac-namespace-admin", Severity::High)]
    );
    let mut bob = rules_about(&findings, "User:bob");
    bob.sort();
    assert_eq!(
        bob,
        [
            ("k8s.rbac-pod-exec", Severity::High),
            ("k8s.rbac-read-secrets", Severity::High)
        ]
    );
    let exec = findings
        .iter()
        .find(|f| f.rule == "k8s.rbac-pod-exec")
        .unwrap();
    let fix = exec.remediation.as_deref().unwrap();
    assert!(
        fix.starts_with("remove User:bob from RoleBinding apps/debuggers"),
        "{fix}"
    );
}

const WORKLOADS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec: {template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: jobs}
spec: {template: {metadata: {labels: {app: worker}}, spec: {containers: [{name: c}]}}}
";

fn network(findings: &[Finding]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| {
            f.rule.starts_with("k8s.no-default-deny")
                || f.rule.starts_with("k8s.workload-not-isolated")
                || f.rule == "k8s.namespace-without-network-policy"
        })
        .map(|f| (f.rule.as_str(), f.subject.as_str()))
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn a_namespace_without_default_deny_is_reported_once() {
    // shop: an ingress default deny, no egress policy at all. jobs: nothing.
    let text = format!(
        "{WORKLOADS}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: default-deny-ingress, namespace: shop}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
"
    );
    let findings = assess(&text);
    assert_eq!(
        network(&findings),
        [
            ("k8s.namespace-without-network-policy", "jobs"),
            ("k8s.no-default-deny-egress", "shop"),
        ]
    );
    let egress = findings
        .iter()
        .find(|f| f.rule == "k8s.no-default-deny-egress")
        .unwrap();
    assert_eq!(
        egress.evidence["workloads"],
        json!(["shop/web", "shop/api"])
    );
    assert!(egress.remediation.as_deref().unwrap().contains("- Egress"));
    let jobs = findings
        .iter()
        .find(|f| f.rule == "k8s.namespace-without-network-policy")
        .unwrap();
    assert_eq!(jobs.evidence["workloads"], json!(["jobs/worker"]));
}

#[test]
fn workloads_are_reported_where_the_namespace_has_policies_that_miss_them() {
    let text = format!(
        "{WORKLOADS}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-out, namespace: shop}}
spec: {{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Egress], egress: [{{}}]}}
"
    );
    let findings = assess(&text);
    assert_eq!(
        network(&findings),
        [
            ("k8s.namespace-without-network-policy", "jobs"),
            ("k8s.no-default-deny-egress", "shop"),
            ("k8s.no-default-deny-ingress", "shop"),
            ("k8s.workload-not-isolated-egress", "shop/api"),
        ]
    );
    let api = findings
        .iter()
        .find(|f| f.rule == "k8s.workload-not-isolated-egress")
        .unwrap();
    // The default-deny YAML is the namespace finding's; the workload's says what to do.
    assert!(!api.remediation.as_deref().unwrap().contains("apiVersion"));
    assert_eq!(api.location.line, Some(6));
}

#[test]
fn yaml_findings_carry_lines() {
    let text = "\
# Source: chart/templates/config.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: script
data:
  run.sh: |
    echo start
    ---
    echo still the script
---
# an empty document: not counted
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: open
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: nothing-has-this
  ingress:
  - {}
  policyTypes:
  - Ingress
";
    let findings = assess(text);
    let line = |rule: &str| {
        findings
            .iter()
            .find(|f| f.rule == rule)
            .unwrap_or_else(|| panic!("{rule} missing: {findings:#?}"))
            .location
            .line
    };
    // The indented `---` is script text; the empty document counts as one in the stream,
    // so the policy is `#2` and starts on line 14.
    let pointer = |rule: &str| {
        let f = findings.iter().find(|f| f.rule == rule).unwrap();
        f.location.pointer.clone().unwrap()
    };
    assert_eq!(pointer("k8s.netpol-selects-nothing"), "#2/spec/podSelector");
    assert_eq!(line("k8s.netpol-selects-nothing"), Some(20));
    assert_eq!(pointer("k8s.netpol-allow-all"), "#2/spec/ingress/0");
    assert_eq!(line("k8s.netpol-allow-all"), Some(24));
    assert_eq!(line("k8s.no-default-deny-ingress"), Some(14));
}

#[test]
fn objects_added_one_by_one_get_lines_from_their_source() {
    // As a caller that parses the stream itself: indices count the empty document.
    let text = "---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: bare\n";
    let docs = tenet_k8s::parse_yaml_documents(text).unwrap();
    let mut cluster = Cluster::new();
    assert!(cluster.add_object("ns.yaml", 1, &docs[0]));
    let before = cluster.assess().findings;
    assert_eq!(before[0].location.line, None);
    cluster.add_source("ns.yaml", text);
    let after = cluster.assess().findings;
    assert_eq!(after[0].rule, "k8s.namespace-without-network-policy");
    assert_eq!(after[0].location.line, Some(3));
    // A text the line split cannot follow gives no line rather than a wrong one.
    cluster.add_source("ns.yaml", "a: [\n");
    assert_eq!(cluster.assess().findings[0].location.line, None);
}

/// Minting service-account tokens and reaching the kubelet through nodes/proxy are flagged
/// like secrets and exec rights; reading nodes alone is not.
#[test]
fn token_minting_and_node_proxy_are_flagged() {
    let text = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: minter}
rules:
- apiGroups: ['']
  resources: [serviceaccounts/token]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: minters}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: minter}
subjects: [{kind: User, name: carol}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-reader}
rules:
- apiGroups: ['']
  resources: [nodes/proxy]
  verbs: [get]
- apiGroups: ['']
  resources: [nodes]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: node-readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-reader}
subjects: [{kind: ServiceAccount, name: metrics, namespace: monitoring}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: nodes-only}
rules:
- apiGroups: ['']
  resources: [nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: nodes-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nodes-only}
subjects: [{kind: User, name: dave}]
";
    let findings = assess(text);
    assert_eq!(
        rules_about(&findings, "User:carol"),
        [("k8s.rbac-token-create", Severity::High)]
    );
    assert_eq!(
        rules_about(&findings, "ServiceAccount:monitoring/metrics"),
        [("k8s.rbac-node-proxy", Severity::High)]
    );
    assert!(
        rules_about(&findings, "User:dave").is_empty(),
        "{findings:#?}"
    );
}

/// Egress to every namespace limited to DNS (53/5353 over UDP or TCP) is rated low; other
/// ports keep the medium rating; both messages name the ports.
#[test]
fn dns_egress_to_every_namespace_is_low_and_ports_are_named() {
    let policy = |name: &str, ports: &str| {
        format!(
            "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: app
spec:
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {{}}
    ports:
{ports}"
        )
    };
    let dns = policy(
        "dns",
        "    - protocol: UDP\n      port: 53\n    - protocol: TCP\n      port: 53\n    - protocol: UDP\n      port: 5353\n",
    );
    let web = policy("web", "    - protocol: TCP\n      port: 8080\n");
    let findings = assess(&format!("{dns}---\n{web}"));
    let all_ns = |subject: &str| {
        findings
            .iter()
            .find(|f| f.rule == "k8s.netpol-all-namespaces" && f.subject == subject)
            .unwrap()
    };
    let f = all_ns("app/dns");
    assert_eq!(f.severity, Severity::Low, "{f:?}");
    assert!(f.title.contains("UDP 53, TCP 53, UDP 5353"), "{f:?}");
    assert_eq!(f.evidence["ports"], json!(["UDP 53", "TCP 53", "UDP 5353"]));
    let f = all_ns("app/web");
    assert_eq!(f.severity, Severity::Medium, "{f:?}");
    assert!(f.title.contains("TCP 8080"), "{f:?}");
}
