//! Internet exposure of a whole group: the union of the sources of all of its rules, per
//! protocol and port.
//!
//! AWS evaluates a group's rules as a union, and `aws_vpc_security_group_ingress_rule` takes
//! one CIDR per rule, so `0.0.0.0/1` in one rule and `128.0.0.0/1` in another make the port
//! public although neither rule is. Port ranges are cut into elementary intervals at every
//! rule boundary; each interval is public for a family when the sources of the rules that
//! cover it add up to all of that family. Adjacent public intervals are merged, and each merged
//! range keeps a minimal set of the rules that make it public.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::model::{MAX_PORT, Ports, Protocol, Rule};

/// A rule with its sources resolved to addresses.
pub(crate) struct Candidate<'a> {
    pub rule: &'a Rule,
    pub nets: Vec<IpNet>,
}

/// An address family a source can cover in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// For each family the candidates cover in full, a minimal set of candidate indices that
/// does it.
type Cover = BTreeMap<Family, BTreeSet<usize>>;

/// Traffic a group admits from the whole internet: one protocol, one port range (or ICMP
/// type), the families that are public, and the rules that together make it so.
pub(crate) struct PublicRange<'a> {
    pub protocol: Protocol,
    pub ports: Ports,
    pub families: Vec<&'static str>,
    /// Sorted by location, never empty.
    pub rules: Vec<&'a Rule>,
}

fn covers_all(candidates: &[&Candidate<'_>], family: Family) -> bool {
    match family {
        Family::V4 => {
            let nets: Vec<Ipv4Net> = candidates
                .iter()
                .flat_map(|c| c.nets.iter())
                .filter_map(|n| match n {
                    IpNet::V4(n) => Some(*n),
                    IpNet::V6(_) => None,
                })
                .collect();
            Ipv4Net::aggregate(&nets)
                .iter()
                .any(|n| n.prefix_len() == 0)
        }
        Family::V6 => {
            let nets: Vec<Ipv6Net> = candidates
                .iter()
                .flat_map(|c| c.nets.iter())
                .filter_map(|n| match n {
                    IpNet::V6(n) => Some(*n),
                    IpNet::V4(_) => None,
                })
                .collect();
            Ipv6Net::aggregate(&nets)
                .iter()
                .any(|n| n.prefix_len() == 0)
        }
    }
}

/// How much a rule admits: rules that admit less are dropped first when the contributing set
/// is made minimal, so a narrow rule beside a world-wide one is not blamed.
fn breadth(rule: &Rule) -> u32 {
    match rule.protocol {
        Protocol::All => u32::MAX,
        _ => rule.ports.width(),
    }
}

/// Which families the candidates `covering` (indices into `all`) open to the whole internet,
/// each with a minimal set of the candidates that does it.
fn cover(all: &[Candidate<'_>], covering: &[usize]) -> Cover {
    let mut out = Cover::new();
    for family in [Family::V4, Family::V6] {
        let mut kept: Vec<usize> = covering.to_vec();
        kept.sort_by(|&a, &b| {
            let key = |i: usize| all.get(i).map(|c| (breadth(c.rule), &c.rule.location));
            key(a).cmp(&key(b))
        });
        let select = |ids: &[usize]| -> Vec<&Candidate<'_>> {
            ids.iter().filter_map(|&i| all.get(i)).collect()
        };
        if !covers_all(&select(&kept), family) {
            continue;
        }
        // Drop every rule the others do not need, narrowest first.
        let mut at = 0;
        while at < kept.len() {
            let mut trial = kept.clone();
            trial.remove(at);
            if covers_all(&select(&trial), family) {
                kept = trial;
            } else {
                at += 1;
            }
        }
        out.insert(family, kept.into_iter().collect());
    }
    out
}

/// The inclusive-exclusive port interval a candidate admits on a TCP/UDP protocol.
fn interval(rule: &Rule) -> (u32, u32) {
    match (rule.protocol, rule.ports) {
        (_, Ports::Range(from, to)) => (u32::from(from), u32::from(to) + 1),
        _ => (0, u32::from(MAX_PORT) + 1),
    }
}

fn ports_of(from: u32, end: u32) -> Ports {
    let top = u32::from(MAX_PORT) + 1;
    if from <= 1 && end == top {
        return Ports::Everything;
    }
    match (u16::try_from(from), u16::try_from(end.saturating_sub(1))) {
        (Ok(from), Ok(to)) => Ports::Range(from, to),
        _ => Ports::Everything,
    }
}

/// Removes the families already reported for wider traffic; `None` when nothing is left.
fn without(mut cover: Cover, reported: &BTreeSet<Family>) -> Option<Cover> {
    cover.retain(|family, _| !reported.contains(family));
    (!cover.is_empty()).then_some(cover)
}

fn range<'a>(
    all: &[Candidate<'a>],
    protocol: Protocol,
    ports: Ports,
    cover: &Cover,
) -> PublicRange<'a> {
    let ids: BTreeSet<usize> = cover.values().flatten().copied().collect();
    let mut rules: Vec<&Rule> = ids
        .iter()
        .filter_map(|&i| all.get(i).map(|c| c.rule))
        .collect();
    rules.sort_by(|a, b| a.location.cmp(&b.location).then(a.label.cmp(&b.label)));
    PublicRange {
        protocol,
        ports,
        families: cover.keys().map(|f| f.name()).collect(),
        rules,
    }
}

/// TCP or UDP: elementary intervals between rule boundaries, merged when adjacent with the
/// same public families.
fn port_ranges<'a>(
    all: &[Candidate<'a>],
    protocol: Protocol,
    reported: &BTreeSet<Family>,
    out: &mut Vec<PublicRange<'a>>,
) {
    let members: Vec<usize> = (0..all.len())
        .filter(|&i| {
            all.get(i)
                .is_some_and(|c| c.rule.protocol == protocol || c.rule.protocol == Protocol::All)
        })
        .collect();
    let mut bounds: BTreeSet<u32> = BTreeSet::new();
    for &i in &members {
        if let Some(c) = all.get(i) {
            let (from, end) = interval(c.rule);
            bounds.insert(from);
            bounds.insert(end);
        }
    }
    let bounds: Vec<u32> = bounds.into_iter().collect();

    // (from, end, cover) of the public elementary intervals, in port order.
    let mut open: Vec<(u32, u32, Cover)> = Vec::new();
    for pair in bounds.windows(2) {
        let [from, end] = pair else { continue };
        let covering: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| {
                all.get(i).is_some_and(|c| {
                    let (lo, hi) = interval(c.rule);
                    lo <= *from && *end <= hi
                })
            })
            .collect();
        let Some(found) = without(cover(all, &covering), reported) else {
            continue;
        };
        match open.last_mut() {
            Some((_, last_end, last)) if *last_end == *from && same_families(last, &found) => {
                *last_end = *end;
                for (family, ids) in found {
                    last.entry(family).or_default().extend(ids);
                }
            }
            _ => open.push((*from, *end, found)),
        }
    }
    for (from, end, found) in open {
        out.push(range(all, protocol, ports_of(from, end), &found));
    }
}

fn same_families(a: &Cover, b: &Cover) -> bool {
    a.keys().eq(b.keys())
}

/// ICMP types and codes, and protocols without ports: one key per distinct value written in
/// the rules, each covered by the rules that admit it and by all-protocol rules.
fn keyed_ranges<'a>(
    all: &[Candidate<'a>],
    protocol: Protocol,
    reported: &BTreeSet<Family>,
    out: &mut Vec<PublicRange<'a>>,
) {
    let keys: BTreeSet<Ports> = all
        .iter()
        .filter(|c| c.rule.protocol == protocol)
        .map(|c| c.rule.ports)
        .collect();
    // Wider ICMP keys (type -1) sort first; what they report is not repeated for narrower ones.
    let mut done: Vec<(Ports, BTreeSet<Family>)> = Vec::new();
    for key in keys {
        let covering: Vec<usize> = (0..all.len())
            .filter(|&i| {
                all.get(i).is_some_and(|c| {
                    c.rule.protocol == Protocol::All
                        || (c.rule.protocol == protocol && admits(c.rule.ports, key))
                })
            })
            .collect();
        let mut skip = reported.clone();
        for (wider, families) in &done {
            if admits(*wider, key) {
                skip.extend(families.iter().copied());
            }
        }
        let Some(found) = without(cover(all, &covering), &skip) else {
            continue;
        };
        done.push((key, found.keys().copied().collect()));
        out.push(range(all, protocol, key, &found));
    }
}

/// Whether a rule written with `rule` ports admits all of the traffic of `key` (both of the
/// same protocol).
fn admits(rule: Ports, key: Ports) -> bool {
    match (rule, key) {
        (Ports::IcmpType(rt, rc), Ports::IcmpType(kt, kc)) => {
            (rt == -1 || rt == kt) && (rc == -1 || rc == kc)
        }
        (rule, key) => rule == key || rule == Ports::Everything,
    }
}

/// Everything the ingress `candidates` of one group admit from the whole internet: first
/// all protocols (all-protocol rules only), then each TCP/UDP range, ICMP type and other
/// protocol, leaving out families an all-protocol range already reports.
pub(crate) fn public_ranges<'a>(all: &[Candidate<'a>]) -> Vec<PublicRange<'a>> {
    let mut out = Vec::new();
    let everything: Vec<usize> = (0..all.len())
        .filter(|&i| all.get(i).is_some_and(|c| c.rule.protocol == Protocol::All))
        .collect();
    let found = cover(all, &everything);
    let reported: BTreeSet<Family> = found.keys().copied().collect();
    if !found.is_empty() {
        out.push(range(all, Protocol::All, Ports::Everything, &found));
    }

    port_ranges(all, Protocol::Tcp, &reported, &mut out);
    port_ranges(all, Protocol::Udp, &reported, &mut out);
    let others: BTreeSet<Protocol> = all
        .iter()
        .map(|c| c.rule.protocol)
        .filter(|p| matches!(p, Protocol::Icmp | Protocol::Icmpv6 | Protocol::Other(_)))
        .collect();
    for protocol in others {
        keyed_ranges(all, protocol, &reported, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;
    use tenet_finding::Location;

    fn rule(name: &str, protocol: Protocol, ports: Ports) -> Rule {
        Rule {
            group: "sg-1".to_owned(),
            direction: Direction::Ingress,
            protocol,
            ports,
            peers: Vec::new(),
            location: Location::file("main.tf").with_pointer(name),
            label: name.to_owned(),
        }
    }

    fn summary(ranges: &[PublicRange<'_>]) -> Vec<(String, (i64, i64), Vec<String>)> {
        ranges
            .iter()
            .map(|r| {
                (
                    r.protocol.name(),
                    r.ports.bounds(),
                    r.rules.iter().map(|x| x.label.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn halves_on_partly_overlapping_ranges_open_only_the_overlap() {
        let a = rule("a", Protocol::Tcp, Ports::Range(0, 1000));
        let b = rule("b", Protocol::Tcp, Ports::Range(22, 22));
        let c = rule("c", Protocol::Tcp, Ports::Range(900, 2000));
        let all = [
            Candidate {
                rule: &a,
                nets: vec!["0.0.0.0/1".parse().unwrap()],
            },
            Candidate {
                rule: &b,
                nets: vec!["128.0.0.0/1".parse().unwrap()],
            },
            Candidate {
                rule: &c,
                nets: vec![
                    "128.0.0.0/2".parse().unwrap(),
                    "192.0.0.0/2".parse().unwrap(),
                ],
            },
        ];
        assert_eq!(
            summary(&public_ranges(&all)),
            vec![
                (
                    "tcp".to_owned(),
                    (22, 22),
                    vec!["a".to_owned(), "b".to_owned()]
                ),
                (
                    "tcp".to_owned(),
                    (900, 1000),
                    vec!["a".to_owned(), "c".to_owned()]
                ),
            ]
        );
    }

    #[test]
    fn narrow_rules_beside_a_world_wide_one_are_not_blamed() {
        let wide = rule("wide", Protocol::Tcp, Ports::Everything);
        let narrow = rule("narrow", Protocol::Tcp, Ports::Range(80, 80));
        let private = rule("private", Protocol::Tcp, Ports::Range(22, 22));
        let world: IpNet = "0.0.0.0/0".parse().unwrap();
        let all = [
            Candidate {
                rule: &narrow,
                nets: vec![world],
            },
            Candidate {
                rule: &wide,
                nets: vec![world],
            },
            Candidate {
                rule: &private,
                nets: vec!["10.0.0.0/8".parse().unwrap()],
            },
        ];
        assert_eq!(
            summary(&public_ranges(&all)),
            vec![("tcp".to_owned(), (0, 65535), vec!["wide".to_owned()])]
        );
    }

    #[test]
    fn all_protocol_exposure_is_not_repeated_per_port() {
        let all_rule = rule("all", Protocol::All, Ports::Everything);
        let ssh = rule("ssh", Protocol::Tcp, Ports::Range(22, 22));
        let ping = rule("ping", Protocol::Icmp, Ports::IcmpType(8, -1));
        let all = [
            Candidate {
                rule: &all_rule,
                nets: vec!["0.0.0.0/0".parse().unwrap()],
            },
            Candidate {
                rule: &ssh,
                nets: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            },
            Candidate {
                rule: &ping,
                nets: vec!["0.0.0.0/0".parse().unwrap()],
            },
        ];
        let ranges = public_ranges(&all);
        assert_eq!(
            summary(&ranges),
            vec![
                ("all".to_owned(), (0, 65535), vec!["all".to_owned()]),
                ("tcp".to_owned(), (22, 22), vec!["ssh".to_owned()]),
            ]
        );
        assert_eq!(ranges[1].families, vec!["IPv6"]);
    }
}
