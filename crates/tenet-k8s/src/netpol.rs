//! NetworkPolicy as this crate evaluates it: parsed from JSON with every problem recorded
//! against its pointer, so an invalid part matches nothing and is reported instead of
//! being guessed at.

use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde_json::Value;

use crate::ports::{ConnSet, MAX_PORT, PortSet, Protocol};
use crate::selector::{LabelSelector, kind};

/// A problem found while reading a policy, with the pointer (inside the document) it is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub pointer: String,
    pub message: String,
}

/// One parsed NetworkPolicy.
#[derive(Debug, Clone)]
pub(crate) struct NetworkPolicy {
    pub name: String,
    pub namespace: String,
    pub file: String,
    pub doc: usize,
    /// Pointer of the object inside its document (`""`, or `/items/3` inside a List).
    pub base: String,
    /// `None` when the selector is invalid: the policy then selects nothing.
    pub pod_selector: Option<LabelSelector>,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub affects_ingress: bool,
    pub affects_egress: bool,
    pub issues: Vec<Issue>,
}

/// One ingress or egress rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Empty means every peer (the `from`/`to` list was missing or empty).
    pub peers: Vec<Peer>,
    /// Empty means every port.
    pub ports: Vec<PortSpec>,
    /// Pointer of the rule inside its document.
    pub pointer: String,
    /// The rule's connections when they do not depend on the destination's named ports.
    pub fixed_conns: Option<ConnSet>,
}

/// One entry of `from`/`to`.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// `namespaceSelector` and/or `podSelector` (ANDed). `None` namespaces: the policy's own.
    Pods {
        namespaces: Option<LabelSelector>,
        pods: Option<LabelSelector>,
    },
    /// An `ipBlock`.
    Block(IpBlock),
    /// A peer that is not valid; it matches nothing.
    Invalid,
}

/// An `ipBlock`: a CIDR with holes.
#[derive(Debug, Clone)]
pub(crate) struct IpBlock {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

/// One entry of `ports`.
#[derive(Debug, Clone)]
pub(crate) struct PortSpec {
    pub protocol: Protocol,
    pub port: PortValue,
}

/// The `port` (and `endPort`) of a policy port.
#[derive(Debug, Clone)]
pub(crate) enum PortValue {
    Any,
    Range(u16, u16),
    Named(String),
    /// Invalid: matches nothing.
    Invalid,
}

/// The IPv4 interval of a network, if it is IPv4.
pub(crate) fn v4_range(net: &IpNet) -> Option<(u32, u32)> {
    match net {
        IpNet::V4(v4) => Some((u32::from(v4.network()), u32::from(v4.broadcast()))),
        IpNet::V6(_) => None,
    }
}

impl IpBlock {
    /// Whether every address of the IPv4 interval is in the block (CIDR minus excepts).
    pub fn contains_range(&self, lo: u32, hi: u32) -> bool {
        let Some((c_lo, c_hi)) = v4_range(&self.cidr) else {
            return false;
        };
        if lo < c_lo || hi > c_hi {
            return false;
        }
        self.except
            .iter()
            .filter_map(v4_range)
            .all(|(e_lo, e_hi)| hi < e_lo || lo > e_hi)
    }

    /// The IPv4 intervals of the block (CIDR minus excepts), used to cut external atoms.
    pub fn v4_intervals(&self) -> Vec<(u32, u32)> {
        let Some(whole) = v4_range(&self.cidr) else {
            return Vec::new();
        };
        let mut holes: Vec<(u32, u32)> = self.except.iter().filter_map(v4_range).collect();
        holes.sort_unstable();
        let mut out = Vec::new();
        let mut next = Some(whole.0);
        for (h_lo, h_hi) in holes {
            let Some(start) = next else { break };
            if h_hi < start || h_lo > whole.1 {
                continue;
            }
            if h_lo > start {
                out.push((start, h_lo - 1));
            }
            next = h_hi.checked_add(1).filter(|n| *n <= whole.1);
        }
        if let Some(start) = next {
            out.push((start, whole.1));
        }
        out
    }
}

impl NetworkPolicy {
    /// Reads a NetworkPolicy object. `base` is the object's pointer inside its document.
    pub fn parse(value: &Value, file: &str, doc: usize, base: &str) -> NetworkPolicy {
        let meta = value.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let mut policy = NetworkPolicy {
            name,
            namespace,
            file: file.to_owned(),
            doc,
            base: base.to_owned(),
            pod_selector: None,
            ingress: Vec::new(),
            egress: Vec::new(),
            affects_ingress: false,
            affects_egress: false,
            issues: Vec::new(),
        };
        if policy.name.is_empty() {
            policy.issue("/metadata/name", "the policy has no name".to_owned());
        }
        let spec = value.get("spec").unwrap_or(&Value::Null);
        if !spec.is_object() {
            policy.issue("/spec", format!("spec must be a map, found {}", kind(spec)));
        }

        match LabelSelector::parse(spec.get("podSelector").unwrap_or(&Value::Null)) {
            Ok(selector) => policy.pod_selector = Some(selector),
            Err(e) => policy.issue("/spec/podSelector", e),
        }
        policy.ingress = policy.parse_rules(spec, "ingress", "from");
        policy.egress = policy.parse_rules(spec, "egress", "to");

        match spec.get("policyTypes") {
            None | Some(Value::Null) => {
                policy.affects_ingress = true;
                policy.affects_egress = !policy.egress.is_empty();
            }
            Some(Value::Array(types)) => {
                for (i, t) in types.iter().enumerate() {
                    match t.as_str() {
                        Some("Ingress") => policy.affects_ingress = true,
                        Some("Egress") => policy.affects_egress = true,
                        _ => policy.issue(
                            &format!("/spec/policyTypes/{i}"),
                            format!("policy type must be Ingress or Egress, found {t}"),
                        ),
                    }
                }
            }
            Some(other) => policy.issue(
                "/spec/policyTypes",
                format!("policyTypes must be a list, found {}", kind(other)),
            ),
        }
        policy
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The pointer of a path inside this object, prefixed by the document index.
    pub fn pointer(&self, path: &str) -> String {
        format!("#{}{}{}", self.doc, self.base, path)
    }

    fn issue(&mut self, path: &str, message: String) {
        self.issues.push(Issue {
            pointer: path.to_owned(),
            message,
        });
    }

    fn parse_rules(&mut self, spec: &Value, direction: &str, peers_key: &str) -> Vec<Rule> {
        let rules = match spec.get(direction) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(rules)) => rules,
            Some(other) => {
                let message = format!("{direction} must be a list, found {}", kind(other));
                self.issue(&format!("/spec/{direction}"), message);
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let pointer = format!("/spec/{direction}/{i}");
            let peers = match rule.get(peers_key) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(peers)) => peers
                    .iter()
                    .enumerate()
                    .map(|(j, p)| self.parse_peer(p, &format!("{pointer}/{peers_key}/{j}")))
                    .collect(),
                Some(other) => {
                    let message = format!("{peers_key} must be a list, found {}", kind(other));
                    self.issue(&format!("{pointer}/{peers_key}"), message);
                    vec![Peer::Invalid]
                }
            };
            let ports = match rule.get("ports") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(ports)) => ports
                    .iter()
                    .enumerate()
                    .map(|(j, p)| self.parse_port(p, &format!("{pointer}/ports/{j}")))
                    .collect(),
                Some(other) => {
                    let message = format!("ports must be a list, found {}", kind(other));
                    self.issue(&format!("{pointer}/ports"), message);
                    vec![PortSpec {
                        protocol: Protocol::Tcp,
                        port: PortValue::Invalid,
                    }]
                }
            };
            let fixed_conns = if ports.iter().any(|p| matches!(p.port, PortValue::Named(_))) {
                None
            } else {
                Some(rule_conns(&ports, |_, _| None))
            };
            out.push(Rule {
                peers,
                ports,
                pointer,
                fixed_conns,
            });
        }
        out
    }

    fn parse_peer(&mut self, peer: &Value, pointer: &str) -> Peer {
        let Some(object) = peer.as_object() else {
            self.issue(
                pointer,
                format!("a peer must be a map, found {}", kind(peer)),
            );
            return Peer::Invalid;
        };
        let ns = object.get("namespaceSelector").filter(|v| !v.is_null());
        let pods = object.get("podSelector").filter(|v| !v.is_null());
        let block = object.get("ipBlock").filter(|v| !v.is_null());
        if block.is_some() && (ns.is_some() || pods.is_some()) {
            let message = "ipBlock cannot be combined with namespaceSelector or podSelector";
            self.issue(pointer, message.to_owned());
            return Peer::Invalid;
        }
        if let Some(block) = block {
            return self.parse_block(block, &format!("{pointer}/ipBlock"));
        }
        if ns.is_none() && pods.is_none() {
            let message = "a peer needs podSelector, namespaceSelector or ipBlock";
            self.issue(pointer, message.to_owned());
            return Peer::Invalid;
        }
        let mut parse = |value: Option<&Value>, key: &str| match value {
            None => Ok(None),
            Some(v) => LabelSelector::parse(v)
                .map(Some)
                .map_err(|e| self.issue(&format!("{pointer}/{key}"), e)),
        };
        match (parse(ns, "namespaceSelector"), parse(pods, "podSelector")) {
            (Ok(namespaces), Ok(pods)) => Peer::Pods { namespaces, pods },
            _ => Peer::Invalid,
        }
    }

    fn parse_block(&mut self, block: &Value, pointer: &str) -> Peer {
        let Some(cidr_text) = block.get("cidr").and_then(Value::as_str) else {
            self.issue(pointer, "ipBlock needs a cidr".to_owned());
            return Peer::Invalid;
        };
        let Some(cidr) = parse_cidr(cidr_text) else {
            self.issue(
                &format!("{pointer}/cidr"),
                format!("{cidr_text:?} is not a CIDR"),
            );
            return Peer::Invalid;
        };
        let mut except = Vec::new();
        let mut valid = true;
        if let Some(list) = block.get("except").filter(|v| !v.is_null()) {
            let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
            if !list.is_array() {
                self.issue(
                    &format!("{pointer}/except"),
                    "except must be a list".to_owned(),
                );
                valid = false;
            }
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/except/{i}");
                let text = item.as_str().unwrap_or_default();
                match parse_cidr(text) {
                    None => {
                        self.issue(&at, format!("{text:?} is not a CIDR"));
                        valid = false;
                    }
                    // The API server refuses an except that is not strictly inside the cidr.
                    Some(hole)
                        if !(cidr.contains(&hole) && hole.prefix_len() > cidr.prefix_len()) =>
                    {
                        self.issue(&at, format!("except {text} is not inside cidr {cidr_text}"));
                        valid = false;
                    }
                    Some(hole) => except.push(hole),
                }
            }
        }
        if valid {
            Peer::Block(IpBlock { cidr, except })
        } else {
            Peer::Invalid
        }
    }

    fn parse_port(&mut self, port: &Value, pointer: &str) -> PortSpec {
        let invalid = PortSpec {
            protocol: Protocol::Tcp,
            port: PortValue::Invalid,
        };
        if !port.is_object() {
            self.issue(
                pointer,
                format!("a port must be a map, found {}", kind(port)),
            );
            return invalid;
        }
        let protocol = match port.get("protocol") {
            None | Some(Value::Null) => Protocol::Tcp,
            Some(value) => match value.as_str().and_then(Protocol::parse) {
                Some(p) => p,
                None => {
                    self.issue(
                        &format!("{pointer}/protocol"),
                        format!("protocol must be TCP, UDP or SCTP, found {value}"),
                    );
                    return invalid;
                }
            },
        };
        let end = port.get("endPort").filter(|v| !v.is_null());
        let value = match port.get("port") {
            None | Some(Value::Null) => {
                if end.is_some() {
                    self.issue(pointer, "endPort needs a numeric port".to_owned());
                    PortValue::Invalid
                } else {
                    PortValue::Any
                }
            }
            Some(Value::String(name)) if name.parse::<u16>().is_err() => {
                if end.is_some() {
                    self.issue(
                        pointer,
                        "endPort cannot be used with a named port".to_owned(),
                    );
                    PortValue::Invalid
                } else {
                    PortValue::Named(name.clone())
                }
            }
            Some(value) => self.numeric_port(value, end, pointer),
        };
        PortSpec {
            protocol,
            port: value,
        }
    }

    fn numeric_port(&mut self, value: &Value, end: Option<&Value>, pointer: &str) -> PortValue {
        let number = |v: &Value| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        let valid = |n: u64| (1..=u64::from(MAX_PORT)).contains(&n);
        let Some(lo) = number(value).filter(|n| valid(*n)) else {
            self.issue(
                &format!("{pointer}/port"),
                format!("port {value} is not in 1-65535"),
            );
            return PortValue::Invalid;
        };
        let hi = match end {
            None => lo,
            Some(end) => match number(end).filter(|n| valid(*n) && *n >= lo) {
                Some(hi) => hi,
                None => {
                    self.issue(
                        &format!("{pointer}/endPort"),
                        format!("endPort {end} is not in {lo}-65535"),
                    );
                    return PortValue::Invalid;
                }
            },
        };
        match (u16::try_from(lo), u16::try_from(hi)) {
            (Ok(lo), Ok(hi)) => PortValue::Range(lo, hi),
            _ => PortValue::Invalid,
        }
    }
}

/// Parses a CIDR; a plain address is not accepted, host bits are.
pub(crate) fn parse_cidr(text: &str) -> Option<IpNet> {
    text.trim().parse::<IpNet>().ok().map(|n| n.trunc())
}

/// The connections of a rule's ports; `resolve` maps a named port to the destination's
/// (protocol, number), or `None` when the destination has no such port.
pub(crate) fn rule_conns(
    ports: &[PortSpec],
    resolve: impl Fn(&str, Protocol) -> Option<u16>,
) -> ConnSet {
    if ports.is_empty() {
        return ConnSet::all();
    }
    let mut out = ConnSet::none();
    for spec in ports {
        let set = match &spec.port {
            PortValue::Any => PortSet::all(),
            PortValue::Range(lo, hi) => PortSet::range(*lo, *hi),
            PortValue::Named(name) => match resolve(name, spec.protocol) {
                Some(port) => PortSet::range(port, port),
                None => PortSet::default(),
            },
            PortValue::Invalid => PortSet::default(),
        };
        out.add(spec.protocol, &set);
    }
    out
}

/// The first address of an IPv4 interval, for printing.
pub(crate) fn v4(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn except_outside_cidr_is_reported_at_its_pointer() {
        let p = NetworkPolicy::parse(
            &json!({"metadata": {"name": "n3"}, "spec": {"podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/24",
                    "except": ["192.168.0.0/16"]}}]}]}}),
            "f.yaml",
            0,
            "",
        );
        assert_eq!(p.issues.len(), 1);
        assert_eq!(
            p.issues[0].pointer,
            "/spec/ingress/0/from/0/ipBlock/except/0"
        );
        assert!(matches!(p.ingress[0].peers[0], Peer::Invalid));
    }

    #[test]
    fn block_intervals_leave_holes() {
        let b = IpBlock {
            cidr: parse_cidr("0.0.0.0/0").unwrap(),
            except: vec![parse_cidr("10.0.0.0/8").unwrap()],
        };
        assert_eq!(
            b.v4_intervals(),
            vec![(0, u32::from(v4(0x09ff_ffff))), (0x0b00_0000, u32::MAX)]
        );
        assert!(!b.contains_range(0x0a00_0001, 0x0a00_0001));
        assert!(b.contains_range(0x0b00_0001, 0x0b00_0001));
    }

    #[test]
    fn policy_types_default() {
        let p = NetworkPolicy::parse(
            &json!({"metadata": {"name": "a"}, "spec": {"podSelector": {}, "egress": [{}]}}),
            "f",
            0,
            "",
        );
        assert!(p.affects_ingress && p.affects_egress);
        let q = NetworkPolicy::parse(
            &json!({"metadata": {"name": "a"}, "spec": {"podSelector": {}}}),
            "f",
            0,
            "",
        );
        assert!(q.affects_ingress && !q.affects_egress);
    }
}
