//! `tenet segment generate`: from declared flows, NetworkPolicies that deny everything else
//! (a default deny per namespace, an ingress allow on each target and an egress allow on
//! each source, and optionally DNS egress to kube-dns).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::{Cluster, NAMESPACE_NAME_LABEL, Workload};
use crate::error::K8sError;
use crate::ports::Protocol;
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

/// Generates the policies for the declared flows as a multi-document YAML stream.
pub fn generate_segmentation(cluster: &Cluster, flows: &Flows) -> Result<String, K8sError> {
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

    let mut out = String::new();
    for doc in docs {
        let text = yaml_serde::to_string(&doc).map_err(|e| K8sError::Flows(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&text);
    }
    Ok(out)
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
