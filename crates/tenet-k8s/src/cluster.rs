//! Everything read from the manifests: namespaces, workloads (with their pod labels and
//! container ports), NetworkPolicies and RBAC objects.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use tenet_finding::Skipped;

use crate::netpol::NetworkPolicy;
use crate::ports::Protocol;
use crate::rbac::{Binding, Role};
use crate::selector::{Labels, kind, scalar_string};

/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A named container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// A set of pods with the same owner and labels, as netpol-analyzer groups them.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub labels: Labels,
    pub ports: Vec<ContainerPort>,
    pub file: String,
    pub doc: usize,
    pub base: String,
}

impl Workload {
    /// `namespace/name[Kind]`, the netpol-analyzer spelling.
    pub fn display(&self) -> String {
        format!("{}/{}[{}]", self.namespace, self.name, self.kind)
    }

    /// `namespace/name`.
    pub fn short(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The number of a named container port for a protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .filter(|p| p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// Everything read so far, across files.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Declared namespaces and their labels (the name label included).
    pub(crate) namespaces: BTreeMap<String, Labels>,
    /// Where each declared namespace was read: (file, doc, base).
    pub(crate) namespace_origin: BTreeMap<String, (String, usize, String)>,
    pub(crate) workloads: Vec<Workload>,
    /// `(namespace, name, kind)` of every workload in `workloads`, so that a duplicate is
    /// found without a scan (a scan per pod made reading large manifests quadratic).
    workload_keys: HashSet<(String, String, String)>,
    pub(crate) policies: Vec<NetworkPolicy>,
    pub(crate) roles: Vec<Role>,
    pub(crate) bindings: Vec<Binding>,
    /// Services by `namespace/name`, for naming only.
    pub(crate) services: Vec<String>,
    pub(crate) skipped: Vec<Skipped>,
    /// The lines of each file read with [`Cluster::add_text`], to give findings a line.
    pub(crate) sources: crate::lines::Sources,
}

const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Cluster::default()
    }

    /// Adds one YAML/JSON document (already parsed). Returns false when it is not a
    /// Kubernetes object (no `apiVersion` and `kind`); `kind: List` and `*List` documents
    /// are read item by item. Kinds this crate does not use are accepted and ignored.
    pub fn add_object(&mut self, file: &str, doc_index: usize, value: &Value) -> bool {
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let kind = value.get("kind").and_then(Value::as_str);
        let (Some(_), Some(kind)) = (api_version, kind) else {
            return false;
        };
        self.add_typed(file, doc_index, "", kind, value);
        true
    }

    fn add_typed(&mut self, file: &str, doc: usize, base: &str, kind: &str, value: &Value) {
        if let Some(item_kind) = kind.strip_suffix("List") {
            self.add_list(file, doc, base, item_kind, value);
            return;
        }
        match kind {
            "Namespace" => self.add_namespace(file, doc, base, value),
            "Pod" => self.add_pod(file, doc, base, value),
            k if WORKLOAD_KINDS.contains(&k) => self.add_workload(file, doc, base, k, value),
            "NetworkPolicy" => self
                .policies
                .push(NetworkPolicy::parse(value, file, doc, base)),
            "Role" | "ClusterRole" => match Role::parse(value, kind, file, doc, base) {
                Ok(role) => self.roles.push(role),
                Err(reason) => self.skip(file, doc, base, reason),
            },
            "RoleBinding" | "ClusterRoleBinding" => {
                match Binding::parse(value, kind, file, doc, base) {
                    Ok(binding) => self.bindings.push(binding),
                    Err(reason) => self.skip(file, doc, base, reason),
                }
            }
            "Service" => {
                let (ns, name) = namespace_and_name(value);
                self.services.push(format!("{ns}/{name}"));
            }
            _ => {}
        }
    }

    fn add_list(&mut self, file: &str, doc: usize, base: &str, item_kind: &str, value: &Value) {
        let Some(items) = value.get("items").and_then(Value::as_array) else {
            self.skip(file, doc, base, "a List without an items list".to_owned());
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let item_base = format!("{base}/items/{i}");
            let kind = match item.get("kind").and_then(Value::as_str) {
                Some(k) => k,
                // `kind: List` items must say what they are; `PodList` items may not.
                None if !item_kind.is_empty() => item_kind,
                None => {
                    self.skip(file, doc, &item_base, "a List item without kind".to_owned());
                    continue;
                }
            };
            self.add_typed(file, doc, &item_base, kind, item);
        }
    }

    fn skip(&mut self, file: &str, doc: usize, base: &str, reason: String) {
        self.skipped
            .push(Skipped::new(format!("{file}#{doc}{base}"), reason));
    }

    fn add_namespace(&mut self, file: &str, doc: usize, base: &str, value: &Value) {
        let meta = value.get("metadata").unwrap_or(&Value::Null);
        let Some(name) = meta.get("name").and_then(Value::as_str) else {
            self.skip(
                file,
                doc,
                base,
                "a Namespace without metadata.name".to_owned(),
            );
            return;
        };
        let mut labels = read_labels(meta.get("labels"));
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        self.namespaces.insert(name.to_owned(), labels);
        self.namespace_origin
            .insert(name.to_owned(), (file.to_owned(), doc, base.to_owned()));
    }

    fn add_pod(&mut self, file: &str, doc: usize, base: &str, value: &Value) {
        let meta = value.get("metadata").unwrap_or(&Value::Null);
        let (namespace, name) = namespace_and_name(value);
        if name.is_empty() {
            self.skip(file, doc, base, "a Pod without metadata.name".to_owned());
            return;
        }
        // Pods are grouped by their controlling owner, as netpol-analyzer does.
        let owner = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|r| {
                // An owner without kind is printed as a Pod, as netpol-analyzer does.
                let kind = r
                    .get("kind")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty());
                let name = r.get("name").and_then(Value::as_str)?;
                (kind != Some("Node")).then(|| (kind.unwrap_or("Pod").to_owned(), name.to_owned()))
            });
        let (kind, name) = owner.unwrap_or_else(|| ("Pod".to_owned(), name));
        let workload = Workload {
            namespace,
            name,
            kind,
            labels: read_labels(meta.get("labels")),
            ports: read_ports(value.get("spec")),
            file: file.to_owned(),
            doc,
            base: base.to_owned(),
        };
        self.push_workload(workload);
    }

    fn add_workload(&mut self, file: &str, doc: usize, base: &str, kind: &str, value: &Value) {
        let (namespace, name) = namespace_and_name(value);
        if name.is_empty() {
            self.skip(file, doc, base, format!("a {kind} without metadata.name"));
            return;
        }
        let spec = value.get("spec").unwrap_or(&Value::Null);
        let template = if kind == "CronJob" {
            spec.pointer("/jobTemplate/spec/template")
        } else {
            spec.get("template")
        };
        let Some(template) = template.filter(|t| t.is_object()) else {
            let found = template.map_or("nothing", kind_of);
            self.skip(
                file,
                doc,
                base,
                format!("{kind} {name}: no pod template, found {found}"),
            );
            return;
        };
        let workload = Workload {
            namespace,
            name,
            kind: kind.to_owned(),
            labels: read_labels(template.pointer("/metadata/labels")),
            ports: read_ports(template.get("spec")),
            file: file.to_owned(),
            doc,
            base: base.to_owned(),
        };
        self.push_workload(workload);
    }

    fn push_workload(&mut self, workload: Workload) {
        // One peer per owner: the first pod read represents it.
        let key = (
            workload.namespace.clone(),
            workload.name.clone(),
            workload.kind.clone(),
        );
        if self.workload_keys.insert(key) {
            self.workloads.push(workload);
        }
    }

    /// Labels of a namespace: declared ones, or just the name label for an undeclared one.
    pub(crate) fn namespace_labels(&self, name: &str) -> Labels {
        self.namespaces
            .get(name)
            .cloned()
            .unwrap_or_else(|| Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]))
    }

    /// Every namespace: declared, holding a workload, or holding a policy.
    pub(crate) fn all_namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces.keys().cloned().collect();
        names.extend(self.workloads.iter().map(|w| w.namespace.clone()));
        names.extend(self.policies.iter().map(|p| p.namespace.clone()));
        names.sort();
        names.dedup();
        names
    }

    /// Inputs, or parts of inputs, that were not used.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The number of workloads (pod groups) read.
    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// The number of NetworkPolicies read.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }
}

fn kind_of(value: &Value) -> &'static str {
    kind(value)
}

fn namespace_and_name(value: &Value) -> (String, String) {
    let meta = value.get("metadata");
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (namespace.to_owned(), name.to_owned())
}

fn read_labels(value: Option<&Value>) -> Labels {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| scalar_string(v).map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

fn read_ports(pod_spec: Option<&Value>) -> Vec<ContainerPort> {
    let Some(containers) = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    containers
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| {
            let port = p
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())?;
            let protocol = match p.get("protocol").and_then(Value::as_str) {
                None => Protocol::Tcp,
                Some(text) => Protocol::parse(text)?,
            };
            let name = p.get("name").and_then(Value::as_str).map(str::to_owned);
            Some(ContainerPort {
                name,
                port,
                protocol,
            })
        })
        .collect()
}
