//! NetworkPolicy findings: invalid parts, allow-all rules, the "probably meant AND" list,
//! dangling policies, and namespaces and workloads left open.

use ipnet::IpNet;
use tenet_finding::{Finding, Location, Severity};

use crate::cluster::Cluster;
use crate::netpol::{NetworkPolicy, Peer, PortValue, Rule};
use crate::ports::Protocol;
use crate::reach::{Engine, selects};

/// Every NetworkPolicy finding of the cluster.
pub(crate) fn findings(cluster: &Cluster, engine: &Engine<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for policy in &cluster.policies {
        invalid_findings(policy, &mut out);
        rule_findings(policy, &policy.ingress, true, &mut out);
        rule_findings(policy, &policy.egress, false, &mut out);
        dangling_finding(cluster, policy, &mut out);
    }
    namespace_findings(cluster, engine, &mut out);
    workload_findings(cluster, engine, &mut out);
    out
}

fn location(policy: &NetworkPolicy, path: &str) -> Location {
    Location::file(&policy.file).with_pointer(policy.pointer(path))
}

fn invalid_findings(policy: &NetworkPolicy, out: &mut Vec<Finding>) {
    for issue in &policy.issues {
        out.push(
            Finding::new(
                "k8s.netpol-invalid",
                Severity::High,
                policy.full_name(),
                location(policy, &issue.pointer),
                format!(
                    "NetworkPolicy {} is invalid: {}",
                    policy.full_name(),
                    issue.message
                ),
                format!(
                    "the API server refuses this policy ({}); until it is fixed, the part at {} \
                     allows nothing here and is not enforced in the cluster.",
                    issue.message, issue.pointer
                ),
            )
            .with_remediation(issue.message.clone()),
        );
    }
}

fn rule_findings(policy: &NetworkPolicy, rules: &[Rule], ingress: bool, out: &mut Vec<Finding>) {
    let (dir, peers_key, whom) = if ingress {
        ("ingress", "from", "any source")
    } else {
        ("egress", "to", "any destination")
    };
    for rule in rules {
        if rule.peers.is_empty() {
            let severity = if ingress {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(Finding::new(
                "k8s.netpol-allow-all",
                severity,
                policy.full_name(),
                location(policy, &rule.pointer),
                format!("NetworkPolicy {} allows {dir} from/to {whom}", policy.full_name()),
                format!(
                    "the rule has no `{peers_key}`, so it matches every pod of every namespace and \
                     every external address{}.",
                    ports_note(rule)
                ),
            ).with_remediation(format!("list the peers in `{peers_key}`")));
        }
        for (i, peer) in rule.peers.iter().enumerate() {
            let path = format!("{}/{peers_key}/{i}", rule.pointer);
            peer_finding(policy, rule, peer, &path, ingress, out);
        }
        probably_meant_and(policy, rule, peers_key, out);
    }
}

fn ports_note(rule: &Rule) -> &'static str {
    if rule.ports.is_empty() {
        " on every port"
    } else {
        ""
    }
}

/// The ports of a rule as a reader names them: `UDP 53`, `TCP 8000-8080`, `TCP http`, or
/// `every port` when the rule lists none.
fn port_names(rule: &Rule) -> Vec<String> {
    if rule.ports.is_empty() {
        return vec!["every port".to_owned()];
    }
    rule.ports
        .iter()
        .map(|p| {
            let port = match &p.port {
                PortValue::Any => "every port".to_owned(),
                PortValue::Range(lo, hi) if lo == hi => lo.to_string(),
                PortValue::Range(lo, hi) => format!("{lo}-{hi}"),
                PortValue::Named(name) => name.clone(),
                PortValue::Invalid => "an invalid port".to_owned(),
            };
            format!("{} {port}", p.protocol.as_str())
        })
        .collect()
}

/// Whether a rule is limited to DNS: every port it lists is 53 or 5353 over UDP or TCP.
fn dns_only(rule: &Rule) -> bool {
    !rule.ports.is_empty()
        && rule.ports.iter().all(|p| {
            matches!(p.protocol, Protocol::Udp | Protocol::Tcp)
                && matches!(p.port, PortValue::Range(lo, hi)
                    if lo == hi && (lo == 53 || lo == 5353))
        })
}

fn peer_finding(
    policy: &NetworkPolicy,
    rule: &Rule,
    peer: &Peer,
    path: &str,
    ingress: bool,
    out: &mut Vec<Finding>,
) {
    match peer {
        Peer::Pods {
            namespaces: Some(ns),
            pods,
        } if ns.is_empty() && pods.as_ref().is_none_or(|p| p.is_empty()) => {
            let ports = port_names(rule);
            let dir = if ingress { "ingress from" } else { "egress to" };
            let dns = !ingress && dns_only(rule);
            let (severity, detail, remediation) = if dns {
                (
                    Severity::Low,
                    "an empty namespaceSelector matches all namespaces (but no external \
                     address); the rule is limited to DNS ports, a common and deliberate pattern \
                     for reaching the cluster DNS."
                        .to_owned(),
                    "to narrow it, select the DNS namespace and pods by label, e.g. \
                     kubernetes.io/metadata.name: kube-system and k8s-app: kube-dns",
                )
            } else {
                (
                    Severity::Medium,
                    "an empty namespaceSelector matches all namespaces (but no external address)."
                        .to_owned(),
                    "select the namespaces by label, e.g. kubernetes.io/metadata.name",
                )
            };
            out.push(
                Finding::new(
                    "k8s.netpol-all-namespaces",
                    severity,
                    policy.full_name(),
                    location(policy, path),
                    format!(
                        "NetworkPolicy {} allows {dir} every pod of every namespace on {}",
                        policy.full_name(),
                        ports.join(", ")
                    ),
                    detail,
                )
                .with_remediation(remediation)
                .with_evidence("ports", serde_json::json!(ports)),
            );
        }
        Peer::Block(block) if block.cidr.prefix_len() == 0 => {
            let severity = if ingress {
                Severity::High
            } else {
                Severity::Medium
            };
            let all = match block.cidr {
                IpNet::V4(_) => "0.0.0.0/0",
                IpNet::V6(_) => "::/0",
            };
            out.push(
                Finding::new(
                    "k8s.netpol-internet",
                    severity,
                    policy.full_name(),
                    location(policy, path),
                    format!(
                        "NetworkPolicy {} allows {} the whole internet ({all})",
                        policy.full_name(),
                        if ingress { "ingress from" } else { "egress to" }
                    ),
                    format!(
                        "ipBlock {all}{} covers every address.",
                        if block.except.is_empty() {
                            String::new()
                        } else {
                            format!(" with {} except(s)", block.except.len())
                        }
                    ),
                )
                .with_remediation("name the address ranges that need access"),
            );
        }
        _ => {}
    }
}

/// F022: `[{namespaceSelector: X}, {podSelector: Y}]` is an OR of two peers; the author
/// most often meant one peer with both selectors (pods Y in namespaces X).
fn probably_meant_and(
    policy: &NetworkPolicy,
    rule: &Rule,
    peers_key: &str,
    out: &mut Vec<Finding>,
) {
    for (i, pair) in rule.peers.windows(2).enumerate() {
        let [first, second] = pair else { continue };
        let lone_ns = matches!(
            first,
            Peer::Pods {
                namespaces: Some(_),
                pods: None
            }
        );
        let lone_pods = matches!(
            second,
            Peer::Pods {
                namespaces: None,
                pods: Some(_)
            }
        );
        if !(lone_ns && lone_pods) {
            continue;
        }
        let path = format!("{}/{peers_key}/{}", rule.pointer, i + 1);
        out.push(
            Finding::new(
                "k8s.netpol-probably-meant-and",
                Severity::Medium,
                policy.full_name(),
                location(policy, &path),
                format!(
                    "NetworkPolicy {}: two peers where one was probably meant",
                    policy.full_name()
                ),
                format!(
                    "`{peers_key}` lists a namespaceSelector and a podSelector as two peers, which \
                     allows every pod of the selected namespaces OR the selected pods of the \
                     policy's own namespace; one peer with both selectors would allow only the \
                     selected pods in the selected namespaces."
                ),
            )
            .with_remediation(format!(
                "if only those pods in those namespaces are meant, remove the `-` before \
                 podSelector at {path} so both selectors form one peer"
            )),
        );
    }
}

fn dangling_finding(cluster: &Cluster, policy: &NetworkPolicy, out: &mut Vec<Finding>) {
    let Some(selector) = &policy.pod_selector else {
        return;
    };
    if selector.is_empty() || cluster.workloads.iter().any(|w| selects(policy, w)) {
        return;
    }
    out.push(Finding::new(
        "k8s.netpol-selects-nothing",
        Severity::Low,
        policy.full_name(),
        location(policy, "/spec/podSelector"),
        format!("NetworkPolicy {} selects no workload", policy.full_name()),
        format!(
            "no workload of namespace {} in the manifests has the labels its podSelector requires; \
             the policy protects nothing (a typo in a label, or the wrong namespace?).",
            policy.namespace
        ),
    ).with_remediation("fix the podSelector or the namespace, or remove the policy"));
}

/// The default-deny policy for a namespace, as YAML.
pub(crate) fn default_deny_yaml(namespace: &str, ingress: bool, egress: bool) -> String {
    let mut types = String::new();
    if ingress {
        types.push_str("\n  - Ingress");
    }
    if egress {
        types.push_str("\n  - Egress");
    }
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  \
         namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:{types}\n"
    )
}

/// The workloads of a namespace open in each direction (selected by no policy for it).
struct Openness {
    ingress: Vec<String>,
    egress: Vec<String>,
}

fn openness(cluster: &Cluster, engine: &Engine<'_>, namespace: &str) -> Openness {
    let mut open = Openness {
        ingress: Vec::new(),
        egress: Vec::new(),
    };
    for (w, workload) in cluster.workloads.iter().enumerate() {
        if workload.namespace != namespace {
            continue;
        }
        let (ingress, egress) = engine.isolation(w);
        if !ingress {
            open.ingress.push(workload.short());
        }
        if !egress {
            open.egress.push(workload.short());
        }
    }
    open
}

/// One finding per namespace and cause: no policy at all, or no default deny in a direction.
/// The workloads it leaves open are listed as evidence, so the same default-deny policy is not
/// repeated for each of them.
fn namespace_findings(cluster: &Cluster, engine: &Engine<'_>, out: &mut Vec<Finding>) {
    for namespace in cluster.all_namespaces() {
        let policies: Vec<&NetworkPolicy> = cluster
            .policies
            .iter()
            .filter(|p| p.namespace == namespace)
            .collect();
        let location = match cluster.namespace_origin.get(&namespace) {
            Some((file, doc, base)) => Location::file(file).with_pointer(format!("#{doc}{base}")),
            None => cluster
                .workloads
                .iter()
                .find(|w| w.namespace == namespace)
                .map(|w| Location::file(&w.file).with_pointer(format!("#{}{}", w.doc, w.base)))
                .or_else(|| policies.first().map(|p| location(p, "")))
                .unwrap_or_default(),
        };
        let open = openness(cluster, engine, &namespace);
        if policies.is_empty() {
            out.push(
                Finding::new(
                    "k8s.namespace-without-network-policy",
                    Severity::Medium,
                    namespace.clone(),
                    location,
                    format!("namespace {namespace} has no NetworkPolicy"),
                    format!(
                        "every pod of the namespace accepts and opens connections to anything{}.",
                        workloads_note(&open.ingress)
                    ),
                )
                .with_remediation(default_deny_yaml(&namespace, true, true))
                .with_evidence("workloads", open.ingress),
            );
            continue;
        }
        let deny = |ingress: bool| {
            policies.iter().any(|p| {
                p.pod_selector.as_ref().is_some_and(|s| s.is_empty())
                    && if ingress {
                        p.affects_ingress
                    } else {
                        p.affects_egress
                    }
            })
        };
        for (ingress, rule, severity, open) in [
            (
                true,
                "k8s.no-default-deny-ingress",
                Severity::Medium,
                &open.ingress,
            ),
            (
                false,
                "k8s.no-default-deny-egress",
                Severity::Low,
                &open.egress,
            ),
        ] {
            if deny(ingress) {
                continue;
            }
            let dir = if ingress { "ingress" } else { "egress" };
            out.push(
                Finding::new(
                    rule,
                    severity,
                    namespace.clone(),
                    location.clone(),
                    format!("namespace {namespace} has no default-deny {dir} policy"),
                    format!(
                        "pods of {namespace} that no policy selects for {dir} are open in that \
                         direction; a new workload starts unprotected{}.",
                        workloads_note(open)
                    ),
                )
                .with_remediation(default_deny_yaml(&namespace, ingress, !ingress))
                .with_evidence("workloads", open.clone()),
            );
        }
    }
}

fn workloads_note(open: &[String]) -> String {
    if open.is_empty() {
        String::new()
    } else {
        format!(" (open now: {})", open.join(", "))
    }
}

/// A workload left open in a direction where its namespace does have policies: a policy was
/// written for the namespace but does not select it. Where the namespace has no policy for
/// the direction at all, its namespace finding already lists the workload.
fn workload_findings(cluster: &Cluster, engine: &Engine<'_>, out: &mut Vec<Finding>) {
    for (w, workload) in cluster.workloads.iter().enumerate() {
        let (ingress, egress) = engine.isolation(w);
        let covered = |ingress: bool| {
            cluster.policies.iter().any(|p| {
                p.namespace == workload.namespace
                    && if ingress {
                        p.affects_ingress
                    } else {
                        p.affects_egress
                    }
            })
        };
        for (isolated, rule, severity, dir) in [
            (
                ingress,
                "k8s.workload-not-isolated-ingress",
                Severity::Medium,
                "ingress",
            ),
            (
                egress,
                "k8s.workload-not-isolated-egress",
                Severity::Low,
                "egress",
            ),
        ] {
            if isolated || !covered(dir == "ingress") {
                continue;
            }
            let namespace = &workload.namespace;
            out.push(
                Finding::new(
                    rule,
                    severity,
                    workload.short(),
                    Location::file(&workload.file)
                        .with_pointer(format!("#{}{}", workload.doc, workload.base)),
                    format!(
                        "{} is selected by no {dir} NetworkPolicy",
                        workload.display()
                    ),
                    format!(
                        "namespace {namespace} has {dir} policies, but none selects {}, so all \
                         of its {dir} traffic is allowed.",
                        workload.display()
                    ),
                )
                .with_remediation(format!(
                    "select {} in a {dir} policy that allows only its flows (check the \
                     podSelector labels of the existing policies), or add the namespace's \
                     default-deny {dir} policy (finding k8s.no-default-deny-{dir})",
                    workload.short()
                )),
            );
        }
    }
}
