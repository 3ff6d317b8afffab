//! Reachability: which connections NetworkPolicies allow between the workloads of the
//! manifests and the outside, with netpol-analyzer's conventions (one peer per workload,
//! external addresses cut into the disjoint ranges the policies' ipBlocks make).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::cluster::{Cluster, Workload};
use crate::netpol::{NetworkPolicy, Peer, Rule, rule_conns, v4};
use crate::ports::ConnSet;
use crate::selector::Labels;

/// One end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// A workload: printed `namespace/name[Kind]`.
    Workload {
        /// Its namespace.
        namespace: String,
        /// The owner's name (or the pod's, for a pod without owner).
        name: String,
        /// `Deployment`, `Pod`, `ReplicaSet`, ...
        kind: String,
    },
    /// An inclusive range of IPv4 addresses outside the cluster: printed `a-b[External]`.
    External {
        /// First address.
        first: Ipv4Addr,
        /// Last address.
        last: Ipv4Addr,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Workload {
                namespace,
                name,
                kind,
            } => write!(f, "{namespace}/{name}[{kind}]"),
            Endpoint::External { first, last } => write!(f, "{first}-{last}[External]"),
        }
    }
}

/// An allowed connection: `src => dst : TCP 8080` as netpol-analyzer prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Where it starts.
    pub src: Endpoint,
    /// Where it goes.
    pub dst: Endpoint,
    /// The protocols and ports allowed (never empty).
    pub conns: ConnSet,
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} => {} : {}", self.src, self.dst, self.conns)
    }
}

/// An address for a point query: a workload by `namespace/name`, or one IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `namespace/name` of a workload in the manifests.
    Workload(String),
    /// An address outside the cluster.
    Ip(Ipv4Addr),
}

/// What a rule is checked against: a workload (by index) or an IPv4 interval.
#[derive(Debug, Clone, Copy)]
enum Target {
    Workload(usize),
    Range(u32, u32),
}

/// The precomputed view of a cluster for reachability.
pub(crate) struct Engine<'a> {
    cluster: &'a Cluster,
    /// Per workload: indices of policies isolating it for ingress / egress.
    ingress_of: Vec<Vec<usize>>,
    egress_of: Vec<Vec<usize>>,
    /// Per policy, per ingress/egress rule: which workloads the rule's peers match.
    ingress_match: Vec<Vec<Vec<bool>>>,
    egress_match: Vec<Vec<Vec<bool>>>,
}

impl<'a> Engine<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        let workloads = &cluster.workloads;
        let ns_labels: Vec<Labels> = workloads
            .iter()
            .map(|w| cluster.namespace_labels(&w.namespace))
            .collect();
        let mut ingress_of = vec![Vec::new(); workloads.len()];
        let mut egress_of = vec![Vec::new(); workloads.len()];
        for (p, policy) in cluster.policies.iter().enumerate() {
            for (w, workload) in workloads.iter().enumerate() {
                if !selects(policy, workload) {
                    continue;
                }
                if policy.affects_ingress
                    && let Some(list) = ingress_of.get_mut(w)
                {
                    list.push(p);
                }
                if policy.affects_egress
                    && let Some(list) = egress_of.get_mut(w)
                {
                    list.push(p);
                }
            }
        }
        let match_rules = |policy: &NetworkPolicy, rules: &[Rule]| -> Vec<Vec<bool>> {
            rules
                .iter()
                .map(|rule| {
                    workloads
                        .iter()
                        .zip(&ns_labels)
                        .map(|(w, ns)| rule_matches_workload(policy, rule, w, ns))
                        .collect()
                })
                .collect()
        };
        let ingress_match = cluster
            .policies
            .iter()
            .map(|p| match_rules(p, &p.ingress))
            .collect();
        let egress_match = cluster
            .policies
            .iter()
            .map(|p| match_rules(p, &p.egress))
            .collect();
        Engine {
            cluster,
            ingress_of,
            egress_of,
            ingress_match,
            egress_match,
        }
    }

    fn rule_matches(&self, policy: usize, rule: usize, ingress: bool, target: Target) -> bool {
        match target {
            Target::Workload(w) => {
                let table = if ingress {
                    &self.ingress_match
                } else {
                    &self.egress_match
                };
                table
                    .get(policy)
                    .and_then(|rules| rules.get(rule))
                    .and_then(|row| row.get(w))
                    .copied()
                    .unwrap_or(false)
            }
            Target::Range(lo, hi) => {
                let Some(p) = self.cluster.policies.get(policy) else {
                    return false;
                };
                let rules = if ingress { &p.ingress } else { &p.egress };
                rules
                    .get(rule)
                    .is_some_and(|r| rule_matches_range(r, lo, hi))
            }
        }
    }

    /// Connections the egress policies of `src` allow towards `dst`.
    fn egress(&self, src: usize, dst: Target) -> ConnSet {
        let policies = self
            .egress_of
            .get(src)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.allowed(policies, false, dst, dst)
    }

    /// Connections the ingress policies of `dst` allow from `src`.
    fn ingress(&self, src: Target, dst: usize) -> ConnSet {
        let policies = self
            .ingress_of
            .get(dst)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.allowed(policies, true, src, Target::Workload(dst))
    }

    /// The union over isolating policies of the rules matching `peer`; everything when no
    /// policy isolates the pod in this direction. Named ports resolve against `port_owner`.
    fn allowed(
        &self,
        policies: &[usize],
        ingress: bool,
        peer: Target,
        port_owner: Target,
    ) -> ConnSet {
        if policies.is_empty() {
            return ConnSet::all();
        }
        let mut out = ConnSet::none();
        for &p in policies {
            let Some(policy) = self.cluster.policies.get(p) else {
                continue;
            };
            let rules = if ingress {
                &policy.ingress
            } else {
                &policy.egress
            };
            for (r, rule) in rules.iter().enumerate() {
                if !self.rule_matches(p, r, ingress, peer) {
                    continue;
                }
                match &rule.fixed_conns {
                    Some(conns) => out.union_with(conns),
                    None => out.union_with(&self.resolved_conns(rule, port_owner)),
                }
                if out.is_all() {
                    return out;
                }
            }
        }
        out
    }

    fn resolved_conns(&self, rule: &Rule, port_owner: Target) -> ConnSet {
        let owner = match port_owner {
            Target::Workload(w) => self.cluster.workloads.get(w),
            Target::Range(..) => None,
        };
        // A named port means nothing for an address outside the cluster.
        rule_conns(&rule.ports, |name, protocol| {
            owner?.named_port(name, protocol)
        })
    }

    /// Connections allowed between two targets (egress of the source ∩ ingress of the
    /// destination; an external end has no policy of its own).
    fn between(&self, src: Target, dst: Target) -> ConnSet {
        match (src, dst) {
            (Target::Workload(s), Target::Workload(d)) => {
                let out = self.egress(s, dst);
                if out.is_empty() {
                    return out;
                }
                out.intersection(&self.ingress(src, d))
            }
            (Target::Range(..), Target::Workload(d)) => self.ingress(src, d),
            (Target::Workload(s), Target::Range(..)) => self.egress(s, dst),
            (Target::Range(..), Target::Range(..)) => ConnSet::none(),
        }
    }

    /// Every allowed connection, sorted as netpol-analyzer sorts its text output.
    pub fn connections(&self) -> Vec<Connection> {
        let workloads = &self.cluster.workloads;
        if workloads.is_empty() {
            return Vec::new();
        }
        let src_ranges = external_atoms(&self.cluster.policies, true);
        let dst_ranges = external_atoms(&self.cluster.policies, false);
        let endpoints: Vec<Endpoint> = workloads.iter().map(workload_endpoint).collect();
        let names: Vec<String> = endpoints.iter().map(ToString::to_string).collect();

        let mut out: Vec<(String, String, Connection)> = Vec::new();
        for &(lo, hi) in &src_ranges {
            let src = range_endpoint(lo, hi);
            let src_name = src.to_string();
            for (d, dst) in endpoints.iter().enumerate() {
                let conns = self.between(Target::Range(lo, hi), Target::Workload(d));
                push(&mut out, &src, &src_name, dst, names.get(d), conns);
            }
        }
        for (s, src) in endpoints.iter().enumerate() {
            let src_name = names.get(s).cloned().unwrap_or_default();
            for (d, dst) in endpoints.iter().enumerate() {
                // A workload's connections to itself are not listed.
                if names.get(d) == Some(&src_name) {
                    continue;
                }
                let conns = self.between(Target::Workload(s), Target::Workload(d));
                push(&mut out, src, &src_name, dst, names.get(d), conns);
            }
            for &(lo, hi) in &dst_ranges {
                let dst = range_endpoint(lo, hi);
                let dst_name = dst.to_string();
                let conns = self.between(Target::Workload(s), Target::Range(lo, hi));
                push(&mut out, src, &src_name, &dst, Some(&dst_name), conns);
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out.into_iter().map(|(_, _, c)| c).collect()
    }

    /// Connections allowed from one address to another.
    pub fn query(&self, from: &Address, to: &Address) -> Option<ConnSet> {
        let target = |a: &Address| match a {
            Address::Workload(name) => self
                .cluster
                .workloads
                .iter()
                .position(|w| &w.short() == name)
                .map(Target::Workload),
            Address::Ip(ip) => Some(Target::Range(u32::from(*ip), u32::from(*ip))),
        };
        Some(self.between(target(from)?, target(to)?))
    }

    /// The policies accepted by `candidate` that allow part of `conn` on their side (the
    /// egress of its source, the ingress of its destination), each with the part it allows.
    pub(crate) fn blame(
        &self,
        conn: &Connection,
        candidate: impl Fn(usize) -> bool,
    ) -> Vec<(usize, ConnSet)> {
        let target = |e: &Endpoint| match e {
            Endpoint::Workload { .. } => self
                .cluster
                .workloads
                .iter()
                .position(|w| workload_endpoint(w) == *e)
                .map(Target::Workload),
            Endpoint::External { first, last } => {
                Some(Target::Range(u32::from(*first), u32::from(*last)))
            }
        };
        let (Some(src), Some(dst)) = (target(&conn.src), target(&conn.dst)) else {
            return Vec::new();
        };
        let mut out: BTreeMap<usize, ConnSet> = BTreeMap::new();
        let sides = [
            (src, &self.egress_of, false, dst),
            (dst, &self.ingress_of, true, src),
        ];
        for (end, table, ingress, peer) in sides {
            let Target::Workload(w) = end else { continue };
            for &p in table.get(w).map(Vec::as_slice).unwrap_or_default() {
                if !candidate(p) {
                    continue;
                }
                let part = self
                    .allowed(&[p], ingress, peer, dst)
                    .intersection(&conn.conns);
                if !part.is_empty() {
                    out.entry(p).or_default().union_with(&part);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Whether any policy isolates the workload for ingress / egress.
    pub fn isolation(&self, w: usize) -> (bool, bool) {
        let has = |v: &Vec<Vec<usize>>| v.get(w).is_some_and(|l| !l.is_empty());
        (has(&self.ingress_of), has(&self.egress_of))
    }
}

fn push(
    out: &mut Vec<(String, String, Connection)>,
    src: &Endpoint,
    src_name: &str,
    dst: &Endpoint,
    dst_name: Option<&String>,
    conns: ConnSet,
) {
    if conns.is_empty() {
        return;
    }
    out.push((
        src_name.to_owned(),
        dst_name.cloned().unwrap_or_default(),
        Connection {
            src: src.clone(),
            dst: dst.clone(),
            conns,
        },
    ));
}

fn workload_endpoint(w: &Workload) -> Endpoint {
    Endpoint::Workload {
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        kind: w.kind.clone(),
    }
}

fn range_endpoint(lo: u32, hi: u32) -> Endpoint {
    Endpoint::External {
        first: v4(lo),
        last: v4(hi),
    }
}

/// Whether the policy's podSelector selects the workload (same namespace).
pub(crate) fn selects(policy: &NetworkPolicy, workload: &Workload) -> bool {
    policy.namespace == workload.namespace
        && policy
            .pod_selector
            .as_ref()
            .is_some_and(|s| s.matches(&workload.labels))
}

/// Whether a rule's peers match a workload: any peer (OR), each peer's selectors ANDed.
pub(crate) fn rule_matches_workload(
    policy: &NetworkPolicy,
    rule: &Rule,
    workload: &Workload,
    ns_labels: &Labels,
) -> bool {
    if rule.peers.is_empty() {
        return true;
    }
    rule.peers.iter().any(|peer| match peer {
        Peer::Pods { namespaces, pods } => {
            let ns_ok = match namespaces {
                None => workload.namespace == policy.namespace,
                Some(selector) => selector.matches(ns_labels),
            };
            ns_ok && pods.as_ref().is_none_or(|s| s.matches(&workload.labels))
        }
        Peer::Block(_) | Peer::Invalid => false,
    })
}

/// Whether a rule's peers match every address of an IPv4 interval.
fn rule_matches_range(rule: &Rule, lo: u32, hi: u32) -> bool {
    if rule.peers.is_empty() {
        return true;
    }
    rule.peers.iter().any(|peer| match peer {
        Peer::Block(block) => block.contains_range(lo, hi),
        Peer::Pods { .. } | Peer::Invalid => false,
    })
}

/// The disjoint IPv4 intervals cut by every ipBlock of the ingress (sources) or egress
/// (destinations) rules of all policies, covering the whole IPv4 space.
fn external_atoms(policies: &[NetworkPolicy], ingress: bool) -> Vec<(u32, u32)> {
    // Starts of atoms: 0 and every interval start and every interval end + 1.
    let mut cuts: Vec<u32> = vec![0];
    for policy in policies {
        let rules = if ingress {
            &policy.ingress
        } else {
            &policy.egress
        };
        for peer in rules.iter().flat_map(|r| &r.peers) {
            if let Peer::Block(block) = peer {
                for (lo, hi) in block.v4_intervals() {
                    cuts.push(lo);
                    if let Some(next) = hi.checked_add(1) {
                        cuts.push(next);
                    }
                }
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut atoms = Vec::with_capacity(cuts.len());
    let mut iter = cuts.iter().peekable();
    while let Some(&start) = iter.next() {
        let end = iter.peek().map_or(u32::MAX, |&&next| next - 1);
        atoms.push((start, end));
    }
    atoms
}
