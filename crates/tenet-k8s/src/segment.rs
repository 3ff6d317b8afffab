//! `tenet segment generate`: from declared flows, NetworkPolicies that deny everything else
//! (a default deny per namespace, an ingress allow on each target and an egress allow on
//! each source, and optionally DNS egress to kube-dns).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{Value, json};
use tenet_finding::Location;

use crate::cluster::{Cluster, NAMESPACE_NAME_LABEL, Workload};
use crate::error::K8sError;
use crate::ports::{ConnSet, Protocol};
use crate::reach::{Connection, Engine};
use crate::selector::LabelSelector;

/// A flows file:
///
/// ```yaml
/// dns: true          # optional: allow every pod DNS (UDP/TCP 53) to kube-system/kube-dns
/// flows:
///   - {from: shop/frontend, to: shop/api, port: 8080}          # protocol defaults to TCP
///   - {from: shop/api, to: data/postgres, port: 5432, protocol: TCP}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flows {
    /// Also allow DNS egress from every pod to `kube-system` pods labelled `k8s-app: kube-dns`.
    #[serde(default)]
    pub dns: bool,
    /// The allowed flows; everything else is denied.
    pub flows: Vec<Flow>,
}

/// One allowed flow between two workloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// `namespace/workload` of the client.
    pub from: String,
    /// `namespace/workload` of the server.
    pub to: String,
    /// The destination port (1–65535).
    pub port: u16,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default)]
    pub protocol: Option<String>,
}

impl Flows {
    /// Reads a flows file (YAML or JSON).
    pub fn from_yaml(text: &str) -> Result<Flows, K8sError> {
        yaml_serde::from_str(text).map_err(|e| K8sError::Flows(e.to_string()))
    }
}

struct Checked<'c> {
    from: &'c Workload,
    to: &'c Workload,
    port: u16,
    protocol: Protocol,
}

/// What [`generate_segmentation`] produces: the policies, and the existing policies that
/// keep allowing more than the flows once they are applied.
///
/// It prints (`Display`) and writes (`AsRef<[u8]>`) as the YAML stream, so callers that only
/// want the policies can use it as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmentation {
    /// The generated NetworkPolicies, a multi-document YAML stream (each document opens with
    /// `---`).
    pub yaml: String,
    /// One entry per existing NetworkPolicy of the manifests that still allows connections
    /// beyond the declared flows: NetworkPolicies add up, so a default deny does not restrict
    /// them. Empty when the generated policies alone decide.
    pub warnings: Vec<SegmentWarning>,
}

impl fmt::Display for Segmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.yaml)
    }
}

impl AsRef<[u8]> for Segmentation {
    fn as_ref(&self) -> &[u8] {
        self.yaml.as_bytes()
    }
}

impl AsRef<str> for Segmentation {
    fn as_ref(&self) -> &str {
        &self.yaml
    }
}

/// An existing NetworkPolicy that allows connections the flows do not declare, even next to
/// the generated default deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentWarning {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// Where it is written.
    pub location: Location,
    /// The undeclared connections it allows (on its side: the ingress of the destination or
    /// the egress of the source), in netpol-analyzer's order.
    pub extra: Vec<Connection>,
}

impl fmt::Display for SegmentWarning {
    /// `existing NetworkPolicy shop/allow-all (deploy.yaml:12 #3) still allows connections
    /// beyond the flows: a => b : TCP 80; ...; remove or narrow it`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "existing NetworkPolicy {} ({}) still allows connections beyond the flows: ",
            self.policy, self.location
        )?;
        for (i, conn) in self.extra.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{conn}")?;
        }
        f.write_str("; policies add up, so remove or narrow it")
    }
}

/// Generates the policies for the declared flows, and warns about existing policies of the
/// manifests that would still allow more than the flows.
pub fn generate_segmentation(cluster: &Cluster, flows: &Flows) -> Result<Segmentation, K8sError> {
    let docs = generated_policies(cluster, flows)?;
    let mut yaml = String::new();
    for doc in &docs {
        let text = yaml_serde::to_string(doc).map_err(|e| K8sError::Flows(e.to_string()))?;
        yaml.push_str("---\n");
        yaml.push_str(&text);
    }
    let warnings = if cluster.policies.is_empty() {
        Vec::new()
    } else {
        warnings(cluster, &docs)
    };
    Ok(Segmentation { yaml, warnings })
}

/// The connections allowed with the existing and the generated policies together, minus
/// those the generated policies alone allow, blamed on the existing policies that allow them.
fn warnings(cluster: &Cluster, docs: &[Value]) -> Vec<SegmentWarning> {
    const GENERATED: &str = "<generated>";
    let mut intended = cluster.clone();
    intended.policies.clear();
    let mut combined = cluster.clone();
    for (i, doc) in docs.iter().enumerate() {
        intended.add_object(GENERATED, i, doc);
        combined.add_object(GENERATED, i, doc);
    }
    let declared: BTreeMap<(String, String), ConnSet> = intended
        .connections()
        .into_iter()
        .map(|c| ((c.src.to_string(), c.dst.to_string()), c.conns))
        .collect();

    let existing = cluster.policies.len();
    let engine = Engine::new(&combined);
    let mut extra: BTreeMap<usize, Vec<Connection>> = BTreeMap::new();
    for conn in engine.connections() {
        let key = (conn.src.to_string(), conn.dst.to_string());
        let beyond = match declared.get(&key) {
            Some(allowed) => conn.conns.difference(allowed),
            None => conn.conns.clone(),
        };
        if beyond.is_empty() {
            continue;
        }
        let conn = Connection {
            conns: beyond,
            ..conn
        };
        for (p, part) in engine.blame(&conn, |p| p < existing) {
            extra.entry(p).or_default().push(Connection {
                conns: part,
                ..conn.clone()
            });
        }
    }
    extra
        .into_iter()
        .filter_map(|(p, extra)| {
            let policy = cluster.policies.get(p)?;
            let mut location = Location::file(&policy.file).with_pointer(policy.pointer(""));
            crate::lines::fill(&cluster.sources, &mut location);
            Some(SegmentWarning {
                policy: policy.full_name(),
                location,
                extra,
            })
        })
        .collect()
}

fn generated_policies(cluster: &Cluster, flows: &Flows) -> Result<Vec<Value>, K8sError> {
    let checked = check_flows(cluster, flows)?;
    let mut namespaces: Vec<&str> = cluster
        .workloads
        .iter()
        .map(|w| w.namespace.as_str())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();

    let mut docs: Vec<Value> = Vec::new();
    for ns in &namespaces {
        docs.push(policy(
            ns,
            "default-deny",
            json!({}),
            &["Ingress", "Egress"],
            None,
            None,
        ));
        if flows.dns {
            let dns = json!([{
                "to": [{
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
            }]);
            docs.push(policy(
                ns,
                "allow-dns-egress",
                json!({}),
                &["Egress"],
                None,
                Some(dns),
            ));
            if *ns == "kube-system" {
                // The default deny of kube-system would otherwise refuse the queries.
                let selector = json!({"matchLabels": {"k8s-app": "kube-dns"}});
                let ingress = json!([{
                    "from": [{"namespaceSelector": {}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
                }]);
                let types = ["Ingress"];
                docs.push(policy(
                    ns,
                    "allow-dns-ingress",
                    selector,
                    &types,
                    Some(ingress),
                    None,
                ));
            }
        }
    }

    // One ingress policy per target and one egress policy per source, a rule per flow.
    let mut ingress: BTreeMap<(String, String), (&Workload, Vec<Value>)> = BTreeMap::new();
    let mut egress: BTreeMap<(String, String), (&Workload, Vec<Value>)> = BTreeMap::new();
    for flow in &checked {
        let ports = json!([{"protocol": flow.protocol.as_str(), "port": flow.port}]);
        let key = |w: &Workload| (w.namespace.clone(), w.name.clone());
        ingress
            .entry(key(flow.to))
            .or_insert_with(|| (flow.to, Vec::new()))
            .1
            .push(json!({"from": [peer(flow.from)], "ports": ports.clone()}));
        egress
            .entry(key(flow.from))
            .or_insert_with(|| (flow.from, Vec::new()))
            .1
            .push(json!({"to": [peer(flow.to)], "ports": ports}));
    }
    for (workload, rules) in ingress.values() {
        let name = format!("allow-ingress-{}", workload.name);
        let selector = json!({"matchLabels": workload.labels});
        docs.push(policy(
            &workload.namespace,
            &name,
            selector,
            &["Ingress"],
            Some(json!(rules)),
            None,
        ));
    }
    for (workload, rules) in egress.values() {
        let name = format!("allow-egress-{}", workload.name);
        let selector = json!({"matchLabels": workload.labels});
        docs.push(policy(
            &workload.namespace,
            &name,
            selector,
            &["Egress"],
            None,
            Some(json!(rules)),
        ));
    }

    Ok(docs)
}

fn check_flows<'c>(cluster: &'c Cluster, flows: &Flows) -> Result<Vec<Checked<'c>>, K8sError> {
    let find = |i: usize, name: &str| -> Result<&'c Workload, K8sError> {
        let workload = cluster
            .workloads
            .iter()
            .find(|w| w.short() == name)
            .ok_or_else(|| K8sError::UnknownWorkload {
                flow: i,
                workload: name.to_owned(),
            })?;
        // The generated selector must pick this workload alone.
        let selector = LabelSelector::from_labels(&workload.labels);
        if let Some(other) = cluster.workloads.iter().find(|o| {
            o.namespace == workload.namespace
                && o.short() != workload.short()
                && selector.matches(&o.labels)
        }) {
            return Err(K8sError::AmbiguousWorkload {
                workload: name.to_owned(),
                other: other.short(),
            });
        }
        Ok(workload)
    };
    let mut out = Vec::with_capacity(flows.flows.len());
    for (i, flow) in flows.flows.iter().enumerate() {
        let protocol = match &flow.protocol {
            None => Protocol::Tcp,
            Some(text) => Protocol::parse(text).ok_or_else(|| {
                K8sError::Flows(format!(
                    "flow {i}: protocol {text:?} is not TCP, UDP or SCTP"
                ))
            })?,
        };
        if flow.port == 0 {
            return Err(K8sError::Flows(format!("flow {i}: port 0 is not a port")));
        }
        out.push(Checked {
            from: find(i, &flow.from)?,
            to: find(i, &flow.to)?,
            port: flow.port,
            protocol,
        });
    }
    Ok(out)
}

fn peer(workload: &Workload) -> Value {
    json!({
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: workload.namespace}},
        "podSelector": {"matchLabels": workload.labels}
    })
}

fn policy(
    namespace: &str,
    name: &str,
    pod_selector: Value,
    types: &[&str],
    ingress: Option<Value>,
    egress: Option<Value>,
) -> Value {
    let mut spec = json!({"podSelector": pod_selector, "policyTypes": types});
    if let (Some(rules), Some(map)) = (ingress, spec.as_object_mut()) {
        map.insert("ingress".to_owned(), rules);
    }
    if let (Some(rules), Some(map)) = (egress, spec.as_object_mut()) {
        map.insert("egress".to_owned(), rules);
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec
    })
}
