//! Kubernetes: NetworkPolicy semantics, reachability, default-deny generation, RBAC findings.
//!
//! Manifests (multi-document YAML, JSON, `kind: List`) are read into a [`Cluster`]:
//! namespaces, workloads with their pod labels and container ports, NetworkPolicies and RBAC
//! objects. [`Cluster::connections`] lists the allowed connections between workloads and
//! external address ranges in netpol-analyzer's connlist format; [`Cluster::assess`] reports
//! findings; [`generate_segmentation`] writes policies allowing exactly a declared set of flows.
//!
//! NetworkPolicy semantics follow the Kubernetes API: selectors inside one peer are ANDed,
//! peers and rules are ORed, policies add up, a pod no policy selects for a direction is open
//! in that direction, an `ipBlock` `except` is a hole in that one peer, named ports resolve
//! against the destination's container ports. Invalid parts of a policy allow nothing and are
//! reported.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cluster;
mod error;
mod findings;
mod lines;
mod netpol;
mod ports;
mod rbac;
mod reach;
mod segment;
mod selector;

use serde::Deserialize;
use tenet_finding::Outcome;

pub use cluster::{Cluster, NAMESPACE_NAME_LABEL};
pub use error::K8sError;
pub use ports::{ConnSet, PortSet, Protocol};
pub use reach::{Address, Connection, Endpoint};
pub use segment::{Flow, Flows, SegmentWarning, Segmentation, generate_segmentation};

/// Splits a YAML (or JSON) stream into its documents, each as JSON. Empty documents
/// (a stray `---`) are dropped.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<serde_json::Value>, K8sError> {
    Ok(parse_stream(text)?
        .into_iter()
        .filter(|value| !value.is_null())
        .collect())
}

/// Every document of the stream, empty ones (`null`) included, so that positions are the
/// stream's document indices.
fn parse_stream(text: &str) -> Result<Vec<serde_json::Value>, K8sError> {
    let mut all = Vec::new();
    for (document, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(de).map_err(|e| K8sError::Parse {
            document,
            message: e.to_string(),
        })?;
        all.push(value);
    }
    Ok(all)
}

impl Cluster {
    /// Findings about NetworkPolicies, namespaces, workloads and RBAC, plus the inputs that
    /// were not used.
    pub fn assess(&self) -> Outcome {
        let engine = reach::Engine::new(self);
        let mut findings = findings::findings(self, &engine);
        findings.extend(rbac::findings(&self.roles, &self.bindings));
        for finding in &mut findings {
            lines::fill(&self.sources, &mut finding.location);
        }
        findings.sort_by(tenet_finding::Finding::report_order);
        Outcome {
            findings,
            skipped: self.skipped.clone(),
        }
    }

    /// Every allowed connection between the workloads and external address ranges, in
    /// netpol-analyzer's order (by source, then destination). A workload's connections to
    /// itself and external-to-external pairs are not listed.
    pub fn connections(&self) -> Vec<Connection> {
        reach::Engine::new(self).connections()
    }

    /// The connections allowed from one address to another; `None` when a workload named
    /// there is not in the manifests.
    pub fn allowed(&self, from: &Address, to: &Address) -> Option<ConnSet> {
        reach::Engine::new(self).query(from, to)
    }

    /// Reads every document of a YAML/JSON text. Documents that are not Kubernetes objects
    /// are reported as skipped; a parse error stops at the broken document. Pointers name a
    /// document by its index in the stream (`#2`), empty documents counted, and findings get
    /// lines (see [`Cluster::add_source`]).
    pub fn add_text(&mut self, file: &str, text: &str) -> Result<usize, K8sError> {
        let docs = parse_stream(text)?;
        self.keep_source(file, text, docs.len());
        let mut used = 0;
        for (i, doc) in docs.iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            if self.add_object(file, i, doc) {
                used += 1;
            } else {
                self.skipped.push(tenet_finding::Skipped::new(
                    format!("{file}#{i}"),
                    "not a Kubernetes object (no apiVersion and kind)",
                ));
            }
        }
        Ok(used)
    }

    /// Keeps the text of `file` so that [`Cluster::assess`] can give its findings a line:
    /// the line of the node a `#<doc>/path` pointer names in block-style YAML, else the
    /// line where document `<doc>` starts (its first content line). For callers that parse
    /// the file themselves and add its documents with [`Cluster::add_object`], giving each
    /// its index in the stream, empty documents counted. Only [`Cluster::add_text`] calls it
    /// otherwise; without it, findings have no line.
    pub fn add_source(&mut self, file: &str, text: &str) {
        // The document count as the parser sees it, to check the line split against.
        let documents = yaml_serde::Deserializer::from_str(text)
            .map(serde::de::IgnoredAny::deserialize)
            .take_while(Result::is_ok)
            .count();
        self.keep_source(file, text, documents);
    }

    fn keep_source(&mut self, file: &str, text: &str, documents: usize) {
        match lines::SourceLines::new(text, documents) {
            Some(source) => self.sources.insert(file.to_owned(), source),
            None => self.sources.remove(file),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_lists_and_bad_input() {
        let docs = parse_yaml_documents("a: 1\n---\n---\nkind: List\n").unwrap();
        assert_eq!(docs.len(), 2);
        let err = parse_yaml_documents("a: 1\n---\nb: [\n").unwrap_err();
        assert!(matches!(err, K8sError::Parse { document: 1, .. }), "{err}");

        let mut cluster = Cluster::new();
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "np"}, "spec": {"podSelector": 7, "ingress": "x"}}]}"#;
        assert_eq!(cluster.add_text("l.json", text).unwrap(), 1);
        assert_eq!(cluster.workload_count(), 1);
        let findings = cluster.assess().findings;
        let invalid: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == "k8s.netpol-invalid")
            .map(|f| f.location.pointer.clone().unwrap())
            .collect();
        assert_eq!(
            invalid,
            ["#0/items/1/spec/ingress", "#0/items/1/spec/podSelector"]
        );
        assert_eq!(cluster.add_text("x.yaml", "just: data\n").unwrap(), 0);
        assert_eq!(cluster.skipped().len(), 1);
    }

    #[test]
    fn named_ports_resolve_against_the_destination() {
        let mut cluster = Cluster::new();
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: a}}\n\
            spec: {containers: [{name: c, ports: [{name: web, containerPort: 8080}]}]}\n---\n\
            apiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: {app: b}}\n---\n\
            apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n\
            spec: {podSelector: {}, ingress: [{ports: [{port: web}, {port: 9000, endPort: 9010, protocol: SCTP}]}]}\n";
        cluster.add_text("f.yaml", text).unwrap();
        let to = |w: &str| Address::Workload(format!("default/{w}"));
        let ab = cluster.allowed(&to("b"), &to("a")).unwrap();
        assert_eq!(ab.to_string(), "SCTP 9000-9010,TCP 8080");
        let ba = cluster.allowed(&to("a"), &to("b")).unwrap();
        assert_eq!(ba.to_string(), "SCTP 9000-9010");
    }
}
