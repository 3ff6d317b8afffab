//! Pods are grouped into workloads by their controlling owner: one peer per
//! `(namespace, owner, kind)`, whatever the number of pods read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use tenet_k8s::Cluster;

fn pod(namespace: &str, name: &str, owner: Option<(&str, &str)>) -> Value {
    let mut meta = json!({"name": name, "namespace": namespace, "labels": {"app": name}});
    if let Some((kind, owner)) = owner {
        meta["ownerReferences"] = json!([{"kind": kind, "name": owner, "controller": true}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "c", "image": "x"}]}})
}

#[test]
fn pods_of_one_owner_are_one_workload_and_other_owners_stay_apart() {
    let mut cluster = Cluster::new();
    let pods = [
        pod("shop", "web-1", Some(("ReplicaSet", "web"))),
        pod("shop", "web-2", Some(("ReplicaSet", "web"))),
        // Same owner name, other kind or other namespace: other workloads.
        pod("shop", "web-3", Some(("StatefulSet", "web"))),
        pod("billing", "web-4", Some(("ReplicaSet", "web"))),
        // A bare pod named like the owner is a Pod, not the ReplicaSet.
        pod("shop", "web", None),
        pod("shop", "web", None),
    ];
    for (i, p) in pods.iter().enumerate() {
        assert!(cluster.add_object("m.yaml", i, p));
    }
    assert_eq!(cluster.workload_count(), 4);
}

#[test]
fn many_pods_are_grouped_by_owner() {
    let mut cluster = Cluster::new();
    // 20,000 pods: 10,000 bare pods and 10,000 pods of 100 ReplicaSets in 10 namespaces.
    for i in 0..10_000 {
        let ns = format!("ns{}", i % 10);
        assert!(cluster.add_object("m.yaml", i, &pod(&ns, &format!("p{i}"), None)));
        let owner = format!("rs{}", i % 100);
        let p = pod(&ns, &format!("q{i}"), Some(("ReplicaSet", &owner)));
        assert!(cluster.add_object("m.yaml", 10_000 + i, &p));
    }
    // i % 100 fixes i % 10, so each ReplicaSet lives in one namespace.
    assert_eq!(cluster.workload_count(), 10_000 + 100);
}
