//! `generate_segmentation`: reachability over the generated policies shows exactly the
//! declared flows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use tenet_k8s::{Cluster, Flows, K8sError, generate_segmentation};

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec: {template: {metadata: {labels: {app: frontend}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec: {template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: data}
spec: {template: {metadata: {labels: {app: postgres}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: data}
spec: {template: {metadata: {labels: {app: batch}}, spec: {containers: [{name: c}]}}}
"#;

const FLOWS: &str = r#"
flows:
  - {from: shop/frontend, to: shop/api, port: 8080}
  - {from: shop/api, to: data/postgres, port: 5432}
  - {from: shop/api, to: data/postgres, port: 9187, protocol: TCP}
  - {from: data/batch, to: shop/api, port: 53, protocol: UDP}
"#;

#[test]
fn generated_policies_allow_exactly_the_flows() {
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    let flows = Flows::from_yaml(FLOWS).unwrap();
    let yaml = generate_segmentation(&cluster, &flows).unwrap();

    // Before: everything is open.
    assert!(cluster.connections().len() > 4);

    cluster.add_text("generated.yaml", &yaml.yaml).unwrap();
    assert!(
        cluster
            .assess()
            .findings
            .iter()
            .all(|f| f.rule != "k8s.netpol-invalid")
    );
    let got: BTreeSet<String> = cluster
        .connections()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected: BTreeSet<String> = [
        "data/batch[Deployment] => shop/api[Deployment] : UDP 53",
        "shop/api[Deployment] => data/postgres[StatefulSet] : TCP 5432,9187",
        "shop/frontend[Deployment] => shop/api[Deployment] : TCP 8080",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(got, expected, "generated:\n{yaml}");
}

#[test]
fn dns_egress_reaches_kube_dns_only() {
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    cluster
        .add_text(
            "dns.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\n\
             spec: {template: {metadata: {labels: {k8s-app: kube-dns}}, spec: {containers: [{name: c}]}}}\n",
        )
        .unwrap();
    let flows =
        Flows::from_yaml("dns: true\nflows: [{from: shop/frontend, to: shop/api, port: 8080}]")
            .unwrap();
    let yaml = generate_segmentation(&cluster, &flows).unwrap();
    cluster.add_text("generated.yaml", &yaml.yaml).unwrap();
    let lines: Vec<String> = cluster
        .connections()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(lines.contains(
        &"shop/frontend[Deployment] => kube-system/coredns[Deployment] : TCP 53,UDP 53".to_owned()
    ));
    assert!(
        lines.contains(&"shop/frontend[Deployment] => shop/api[Deployment] : TCP 8080".to_owned())
    );
    assert!(!lines.iter().any(|l| l.contains("[External]")
        && !l.starts_with("kube-system")
        && !l.contains("=> kube-system")));
}

#[test]
fn unknown_and_ambiguous_workloads_are_refused() {
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    let flows = Flows::from_yaml("flows: [{from: shop/nope, to: shop/api, port: 80}]").unwrap();
    assert!(matches!(
        generate_segmentation(&cluster, &flows),
        Err(K8sError::UnknownWorkload { .. })
    ));

    cluster
        .add_text(
            "twin.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api-canary, namespace: shop}\n\
             spec: {template: {metadata: {labels: {app: api, track: canary}}, spec: {containers: [{name: c}]}}}\n",
        )
        .unwrap();
    let flows = Flows::from_yaml("flows: [{from: shop/frontend, to: shop/api, port: 80}]").unwrap();
    let err = generate_segmentation(&cluster, &flows).unwrap_err();
    assert!(matches!(err, K8sError::AmbiguousWorkload { .. }), "{err}");
    assert!(Flows::from_yaml("flows: [{from: a/b, to: c/d, port: 70000}]").is_err());
    assert!(Flows::from_yaml("flows: 3").is_err());
}

#[test]
fn existing_policies_that_allow_more_than_the_flows_are_named() {
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    let existing = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress: [{}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: batch-out, namespace: data}
spec:
  podSelector: {matchLabels: {app: batch}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: postgres}}}]
    ports: [{port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: narrow, namespace: data}
spec:
  podSelector: {matchLabels: {app: postgres}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}},
            podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 5432}]
"#;
    cluster.add_text("existing.yaml", existing).unwrap();
    let flows = Flows::from_yaml(FLOWS).unwrap();
    let out = generate_segmentation(&cluster, &flows).unwrap();

    let named: Vec<&str> = out.warnings.iter().map(|w| w.policy.as_str()).collect();
    assert_eq!(named, ["shop/allow-all"], "{:#?}", out.warnings);
    let warning = &out.warnings[0];
    assert_eq!(warning.location.file, "existing.yaml");
    assert_eq!(warning.location.pointer.as_deref(), Some("#0"));
    assert_eq!(warning.location.line, Some(2));
    let extra: Vec<String> = warning.extra.iter().map(ToString::to_string).collect();
    // The internet reaches the api on every port; frontend and batch are held by their
    // generated egress policies, so only what they declared gets through.
    assert_eq!(
        extra,
        ["0.0.0.0-255.255.255.255[External] => shop/api[Deployment] : All Connections"]
    );
    let text = warning.to_string();
    assert!(
        text.contains("shop/allow-all (existing.yaml:2 #0)"),
        "{text}"
    );

    // batch-out only allows a subset of what batch may not do; it widens nothing because
    // postgres's ingress stays closed to batch, and `narrow` allows only a declared flow.
    assert!(!named.contains(&"data/batch-out") && !named.contains(&"data/narrow"));
}

#[test]
fn no_warnings_without_existing_policies() {
    let mut cluster = Cluster::new();
    cluster.add_text("workloads.yaml", WORKLOADS).unwrap();
    let out = generate_segmentation(&cluster, &Flows::from_yaml(FLOWS).unwrap()).unwrap();
    assert!(out.warnings.is_empty());
    assert_eq!(out.to_string(), out.yaml);
    assert!(out.yaml.starts_with("---\n"));
}
