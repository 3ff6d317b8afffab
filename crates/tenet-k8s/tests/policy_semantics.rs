//! Field cases F022 (peer AND/OR, empty selectors) and F024 (ipBlock except) from
//! shared/cases/policy-semantics.md, with exactly the results stated there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::Ipv4Addr;

use tenet_k8s::{Address, Cluster, Protocol};

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: web-ns, labels: {team: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: data}
---
apiVersion: v1
kind: Namespace
metadata: {name: other-ns}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: data, labels: {app: db}}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: web-ns, labels: {role: batch}}
---
apiVersion: v1
kind: Pod
metadata: {name: local-frontend, namespace: data, labels: {role: frontend}}
---
apiVersion: v1
kind: Pod
metadata: {name: other-frontend, namespace: other-ns, labels: {role: frontend}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-frontend, namespace: web-ns, labels: {role: frontend}}
"#;

fn f022_cluster(ingress: &str) -> Cluster {
    let policy = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: data}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress: {ingress}\n"
    );
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    cluster.add_text("policy.yaml", &policy).unwrap();
    cluster
}

/// Allowed (any port) from sources 1..5 of F022 to the db pod.
fn f022_row(cluster: &Cluster) -> [bool; 5] {
    let db = Address::Workload("data/db".to_owned());
    let sources = [
        Address::Workload("web-ns/batch".to_owned()),
        Address::Workload("data/local-frontend".to_owned()),
        Address::Workload("other-ns/other-frontend".to_owned()),
        Address::Workload("web-ns/web-frontend".to_owned()),
        Address::Ip(Ipv4Addr::new(192, 0, 2, 10)),
    ];
    sources.map(|s| !cluster.allowed(&s, &db).unwrap().is_empty())
}

#[test]
fn f022_peer_semantics() {
    let a = f022_cluster(
        "[{from: [{namespaceSelector: {matchLabels: {team: web}}, podSelector: {matchLabels: {role: frontend}}}]}]",
    );
    let b = f022_cluster(
        "[{from: [{namespaceSelector: {matchLabels: {team: web}}}, {podSelector: {matchLabels: {role: frontend}}}]}]",
    );
    let c = f022_cluster("[{from: [{namespaceSelector: {}}]}]");
    assert_eq!(f022_row(&a), [false, false, false, true, false]);
    assert_eq!(f022_row(&b), [true, true, false, true, false]);
    assert_eq!(f022_row(&c), [true, true, true, true, false]);

    let meant = |c: &Cluster| {
        c.assess()
            .findings
            .into_iter()
            .filter(|f| f.rule == "k8s.netpol-probably-meant-and")
            .collect::<Vec<_>>()
    };
    assert!(meant(&a).is_empty());
    let flagged = meant(&b);
    assert_eq!(flagged.len(), 1, "B must be flagged as probably meant A");
    assert_eq!(
        flagged[0].location.pointer.as_deref(),
        Some("#0/spec/ingress/0/from/1")
    );
    assert!(meant(&c).is_empty());
}

const WEB: &str =
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {app: web}}\n";
const N1: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n1}\nspec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]\n";
const N2: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n2}\nspec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 169.254.169.254/32}}], ports: [{port: 80}]}]\n";
const N3: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n3}\nspec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 192.168.0.0/24, except: [192.168.0.0/16]}}]}]\n";

fn web_to(cluster: &Cluster, ip: [u8; 4], port: u16) -> bool {
    let web = Address::Workload("default/web".to_owned());
    let dst = Address::Ip(Ipv4Addr::from(ip));
    cluster
        .allowed(&web, &dst)
        .unwrap()
        .allows(Protocol::Tcp, port)
}

#[test]
fn f024_ipblock_except() {
    let mut n1 = Cluster::new();
    n1.add_text("web.yaml", WEB).unwrap();
    n1.add_text("n1.yaml", N1).unwrap();
    assert!(
        !web_to(&n1, [169, 254, 169, 254], 80),
        "metadata denied with N1 only"
    );
    assert!(
        web_to(&n1, [203, 0, 113, 9], 443),
        "203.0.113.9 allowed with N1 only"
    );

    let mut both = n1.clone();
    both.add_text("n2.yaml", N2).unwrap();
    assert!(
        web_to(&both, [169, 254, 169, 254], 80),
        "policies add up: :80 allowed"
    );
    assert!(!web_to(&both, [169, 254, 169, 254], 22), ":22 stays denied");

    let mut n3 = Cluster::new();
    n3.add_text("web.yaml", WEB).unwrap();
    n3.add_text("n3.yaml", N3).unwrap();
    let invalid: Vec<_> = n3
        .assess()
        .findings
        .into_iter()
        .filter(|f| f.rule == "k8s.netpol-invalid")
        .collect();
    assert_eq!(invalid.len(), 1, "N3 is invalid and reported");
    assert_eq!(invalid[0].subject, "default/n3");
    assert_eq!(
        invalid[0].location.pointer.as_deref(),
        Some("#0/spec/ingress/0/from/0/ipBlock/except/0")
    );
    assert!(
        invalid[0].title.contains("not inside cidr"),
        "{}",
        invalid[0].title
    );
}
