//! Times reachability on a generated cluster: 1,000 pods in 20 namespaces and 500
//! NetworkPolicies (selectors, namespace selectors, ipBlocks with except, port ranges).
//!
//! Run: `cargo run --release -p tenet-k8s --example reach_bench`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write;
use std::time::Instant;

use tenet_k8s::Cluster;

fn manifests(pods: usize, policies: usize) -> String {
    let mut out = String::new();
    for ns in 0..20 {
        writeln!(out, "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{ns}, labels: {{tier: t{}}}}}", ns % 4).unwrap();
    }
    for p in 0..pods {
        writeln!(
            out,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod{p}, namespace: ns{}, labels: {{app: a{}, role: r{}}}}}\n\
             spec: {{containers: [{{name: c, ports: [{{name: http, containerPort: {}}}]}}]}}",
            p % 20,
            p % 50,
            p % 7,
            8000 + p % 10
        )
        .unwrap();
    }
    for i in 0..policies {
        let peers = match i % 4 {
            0 => format!("[{{podSelector: {{matchLabels: {{role: r{}}}}}}}]", i % 7),
            1 => format!(
                "[{{namespaceSelector: {{matchLabels: {{tier: t{}}}}}, podSelector: {{matchExpressions: [{{key: role, operator: In, values: [r1, r{}]}}]}}}}]",
                i % 4,
                i % 7
            ),
            2 => format!(
                "[{{ipBlock: {{cidr: 10.{}.0.0/16, except: [10.{}.1.0/24]}}}}]",
                i % 256,
                i % 256
            ),
            _ => "[{namespaceSelector: {}}]".to_owned(),
        };
        writeln!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{i}, namespace: ns{}}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: a{}}}}}\n  policyTypes: [Ingress, Egress]\n  \
             ingress: [{{from: {peers}, ports: [{{port: http}}, {{port: 9000, endPort: 9100}}]}}]\n  \
             egress: [{{to: {peers}, ports: [{{port: {}, protocol: UDP}}]}}]",
            i % 20,
            i % 50,
            1000 + i
        )
        .unwrap();
    }
    out
}

fn main() {
    let text = manifests(1000, 500);
    let mut cluster = Cluster::new();
    let started = Instant::now();
    cluster.add_text("generated.yaml", &text).unwrap();
    let parsed = started.elapsed();
    let started = Instant::now();
    let connections = cluster.connections();
    let reach = started.elapsed();
    let started = Instant::now();
    let rendered: usize = connections.iter().map(|c| c.to_string().len() + 1).sum();
    let render = started.elapsed();
    println!(
        "workloads {}, policies {}: parse {:.3}s, reachability {:.3}s ({} connections), render {:.3}s ({} bytes)",
        cluster.workload_count(),
        cluster.policy_count(),
        parsed.as_secs_f64(),
        reach.as_secs_f64(),
        connections.len(),
        render.as_secs_f64(),
        rendered
    );
}
