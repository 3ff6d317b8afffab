//! The `sg.*` rules: internet exposure, unknown exposure, group meshes and open egress.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::json;
use tenet_finding::{Finding, Severity};

use crate::coverage::{self, Candidate, PublicRange};
use crate::model::{Direction, Peer, Ports, Protocol, Rule};
use crate::{Edge, Groups};

/// Administrative ports: remote shells and desktops.
const ADMIN_PORTS: &[(u16, &str)] = &[
    (22, "SSH"),
    (23, "Telnet"),
    (3389, "RDP"),
    (5900, "VNC"),
    (5985, "WinRM"),
    (5986, "WinRM over TLS"),
];

/// Database and cache ports.
const DATABASE_PORTS: &[(u16, &str)] = &[
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (2379, "etcd"),
    (3306, "MySQL"),
    (5432, "PostgreSQL"),
    (5984, "CouchDB"),
    (6379, "Redis"),
    (7000, "Cassandra"),
    (9042, "Cassandra"),
    (9200, "Elasticsearch"),
    (9300, "Elasticsearch"),
    (11211, "Memcached"),
    (27017, "MongoDB"),
    (27018, "MongoDB"),
];

/// Public ranges wider than this many ports are a finding on their own.
const WIDE_RANGE: u32 = 100;

/// Ports that are meant to be public: a web server.
const WEB_PORTS: [u16; 2] = [80, 443];

/// A rule's peers, resolved against the prefix lists.
#[derive(Default)]
struct Resolved {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
    unknown: Vec<String>,
    groups: Vec<String>,
}

impl Resolved {
    fn public_families(&self) -> Vec<&'static str> {
        let mut families = Vec::new();
        if Ipv4Net::aggregate(&self.v4)
            .iter()
            .any(|n| n.prefix_len() == 0)
        {
            families.push("IPv4");
        }
        if Ipv6Net::aggregate(&self.v6)
            .iter()
            .any(|n| n.prefix_len() == 0)
        {
            families.push("IPv6");
        }
        families
    }

    fn add(&mut self, net: IpNet) {
        match net {
            IpNet::V4(n) => self.v4.push(n),
            IpNet::V6(n) => self.v6.push(n),
        }
    }
}

fn resolve(groups: &Groups, rule: &Rule) -> Resolved {
    let mut r = Resolved::default();
    for peer in &rule.peers {
        match peer {
            Peer::Cidr(net) => r.add(*net),
            Peer::Group(id) => r.groups.push(id.clone()),
            Peer::Unknown(why) => r.unknown.push(why.clone()),
            Peer::PrefixList(id) => {
                let list = groups.prefix_lists.get(id);
                let named = match list.and_then(|l| l.name.as_deref()) {
                    Some(name) => format!("prefix list {id} ({name})"),
                    None => format!("prefix list {id}"),
                };
                match list.and_then(|l| l.entries.as_ref().map(|e| (e, l.incomplete))) {
                    Some((entries, incomplete)) => {
                        entries.iter().for_each(|n| r.add(*n));
                        if incomplete {
                            r.unknown
                                .push(format!("{named}: some entries are not known"));
                        }
                    }
                    None => r.unknown.push(format!("{named}: contents not given")),
                }
            }
        }
    }
    if rule.peers.is_empty() {
        r.unknown
            .push("the rule names no source or destination at all".to_owned());
    }
    r
}

fn port_names(ports: Ports, protocol: Protocol, table: &[(u16, &str)]) -> Vec<String> {
    let applies = |port: u16| match protocol {
        Protocol::Tcp | Protocol::All => true,
        // Over UDP only RDP and memcached (an amplification vector) listen on these ports.
        Protocol::Udp => matches!(port, 3389 | 11211),
        _ => false,
    };
    table
        .iter()
        .filter(|(port, _)| applies(*port) && ports.contains(*port))
        .map(|(port, name)| format!("{port} ({name})"))
        .collect()
}

fn describe_ports(protocol: Protocol, ports: Ports) -> String {
    match (protocol, ports) {
        (Protocol::All, _) => "all protocols and ports".to_owned(),
        (p, Ports::Everything) if p.has_ports() => format!("all {} ports", p.name()),
        (p, Ports::Range(f, t)) if f == t => format!("{f}/{}", p.name()),
        (p, Ports::Range(f, t)) => format!("{f}-{t}/{}", p.name()),
        (p, Ports::IcmpType(t, c)) => format!("{} type {t} code {c}", p.name()),
        (p, Ports::Everything) => format!("all traffic of IP protocol {}", p.name()),
    }
}

/// What a finding is about: traffic of one protocol and port range that one or more rules
/// of a group admit.
struct Context<'a> {
    subject: &'a str,
    protocol: Protocol,
    ports: Ports,
    /// The rules that admit it, sorted by location; the first is the finding's location.
    rules: Vec<&'a Rule>,
}

impl<'a> Context<'a> {
    fn of_rule(subject: &'a str, rule: &'a Rule) -> Context<'a> {
        Context {
            subject,
            protocol: rule.protocol,
            ports: rule.ports,
            rules: vec![rule],
        }
    }

    fn of_range(subject: &'a str, range: PublicRange<'a>) -> Context<'a> {
        Context {
            subject,
            protocol: range.protocol,
            ports: range.ports,
            rules: range.rules,
        }
    }

    fn describe(&self) -> String {
        describe_ports(self.protocol, self.ports)
    }

    fn all_ports(&self) -> bool {
        self.protocol == Protocol::All
            || (self.protocol.has_ports() && self.ports == Ports::Everything)
    }

    fn finding(&self, rule: &str, severity: Severity, title: String, detail: String) -> Finding {
        let (from, to) = self.ports.bounds();
        let location = self
            .rules
            .first()
            .map(|r| r.location.clone())
            .unwrap_or_default();
        let label = self.rules.first().map(|r| r.label.clone());
        let detail = match self.rules.as_slice() {
            [_, _, ..] => {
                let each: Vec<String> = self.rules.iter().map(|r| r.location.to_string()).collect();
                format!("{detail} The rules: {}.", each.join("; "))
            }
            _ => detail,
        };
        let finding = Finding::new(rule, severity, self.subject, location, title, detail)
            .with_evidence("rule", label)
            .with_evidence("protocol", self.protocol.name())
            .with_evidence("from_port", from)
            .with_evidence("to_port", to);
        if self.rules.len() < 2 {
            return finding;
        }
        // Several rules add up to the exposure: name every one of them.
        let rules: Vec<_> = self
            .rules
            .iter()
            .map(|r| json!({"rule": r.label, "location": r.location}))
            .collect();
        finding.with_evidence("rules", rules)
    }
}

fn subject(groups: &Groups, group: &str) -> String {
    match groups.groups.get(group).and_then(|g| g.name.as_deref()) {
        Some(name) if name != group => format!("{group} ({name})"),
        _ => group.to_owned(),
    }
}

fn candidate<'a>(rule: &'a Rule, resolved: &Resolved) -> Candidate<'a> {
    let nets = resolved
        .v4
        .iter()
        .map(|n| IpNet::V4(*n))
        .chain(resolved.v6.iter().map(|n| IpNet::V6(*n)))
        .collect();
    Candidate { rule, nets }
}

pub(crate) fn findings(groups: &Groups) -> Vec<Finding> {
    let mut by_group: BTreeMap<&str, Vec<(&Rule, Resolved)>> = BTreeMap::new();
    for rule in &groups.rules {
        by_group
            .entry(rule.group.as_str())
            .or_default()
            .push((rule, resolve(groups, rule)));
    }
    let mut out = Vec::new();
    for (group, rules) in by_group {
        let subject = subject(groups, group);
        group_findings(&subject, &rules, &mut out);
    }
    out
}

/// The findings of one group: its public ranges over the union of its ingress rules, open
/// egress over the union of its all-traffic egress rules, then per rule unknown sources and
/// meshes.
fn group_findings(subject: &str, rules: &[(&Rule, Resolved)], out: &mut Vec<Finding>) {
    let of = |direction: Direction| -> Vec<Candidate<'_>> {
        rules
            .iter()
            .filter(|(rule, _)| rule.direction == direction)
            .map(|(rule, resolved)| candidate(rule, resolved))
            .collect()
    };
    // What the whole internet reaches, per protocol and port range, and through which rules.
    let mut public: Vec<(Protocol, Ports, Vec<&Rule>)> = Vec::new();
    for range in coverage::public_ranges(&of(Direction::Ingress)) {
        let families = range.families.clone();
        public.push((range.protocol, range.ports, range.rules.clone()));
        public_ingress(&Context::of_range(subject, range), &families, out);
    }
    for (rule, resolved) in rules {
        if rule.direction == Direction::Ingress {
            wide_public(subject, rule, resolved, &public, out);
        }
    }

    let egress: Vec<Candidate<'_>> = of(Direction::Egress)
        .into_iter()
        .filter(|c| c.rule.protocol == Protocol::All)
        .collect();
    if let Some(range) = coverage::public_ranges(&egress).into_iter().next() {
        let families = range.families.clone();
        out.push(open_egress(&Context::of_range(subject, range), &families));
    }

    for (rule, resolved) in rules {
        if rule.direction != Direction::Ingress {
            continue;
        }
        let cx = Context::of_rule(subject, rule);
        // A rule that is public on its own is reported above; its unknown sources add nothing.
        if !resolved.unknown.is_empty() && resolved.public_families().is_empty() {
            out.push(unknown_exposure(&cx, &resolved.unknown));
        }
        mesh(&cx, &resolved.groups, out);
    }
}

fn public_ingress(cx: &Context<'_>, families: &[&str], out: &mut Vec<Finding>) {
    let what = cx.describe();
    let from = format!("the whole internet ({})", families.join(" and "));
    let admin = port_names(cx.ports, cx.protocol, ADMIN_PORTS);
    let database = port_names(cx.ports, cx.protocol, DATABASE_PORTS);
    let restrict = "Replace the world-wide source with the addresses or security groups that \
                    need it; reach administrative ports through SSM Session Manager or a \
                    bastion, and databases only from the application's security group.";
    if cx.all_ports() {
        out.push(
            cx.finding(
                "sg.public-all-ports",
                Severity::Critical,
                format!("{} admits {what} from {from}", cx.subject),
                format!(
                    "Every port is reachable from anywhere, including administrative ports \
                     ({}) and database ports ({}).",
                    admin.join(", "),
                    database.join(", ")
                ),
            )
            .with_evidence("admin_ports", json!(admin))
            .with_evidence("database_ports", json!(database))
            .with_evidence("families", json!(families))
            .with_remediation(restrict),
        );
        return;
    }
    let mut any = false;
    for (ids, rule_id, kind) in [
        (&admin, "sg.public-admin-port", "administrative"),
        (&database, "sg.public-database-port", "database"),
    ] {
        if ids.is_empty() {
            continue;
        }
        any = true;
        out.push(
            cx.finding(
                rule_id,
                Severity::Critical,
                format!(
                    "{} admits {kind} port {} from {from}",
                    cx.subject,
                    ids.join(", ")
                ),
                format!(
                    "{} for {what} expose{} {kind} services to every address on the \
                     internet, where they are scanned for within minutes.",
                    if cx.rules.len() > 1 {
                        "Together, the rules"
                    } else {
                        "The rule"
                    },
                    if cx.rules.len() > 1 { "" } else { "s" },
                ),
            )
            .with_evidence("ports", json!(ids))
            .with_evidence("families", json!(families))
            .with_remediation(restrict),
        );
    }
    let width = cx.ports.width();
    if cx.protocol.has_ports() && width > WIDE_RANGE {
        any = true;
        out.push(
            cx.finding(
                "sg.public-wide-port-range",
                Severity::High,
                format!("{} admits {width} ports ({what}) from {from}", cx.subject),
                "A wide public range exposes whatever happens to listen in it, now or later."
                    .to_owned(),
            )
            .with_evidence("families", json!(families))
            .with_remediation(restrict),
        );
    }
    if !any {
        out.push(narrow_public(cx, &what, &from, families));
    }
}

/// IPv4 sources with a prefix shorter than this are very wide: more addresses than any
/// organisation holds (a /8 is 16.7 million).
const WIDE_V4_PREFIX: u8 = 8;

/// IPv6 sources with a prefix shorter than this are very wide (a /16 is wider than the
/// allocations of regional registries to the largest networks).
const WIDE_V6_PREFIX: u8 = 16;

/// A rule's very wide public sources: IPv4 shorter than /8 outside multicast and reserved
/// space (224.0.0.0/3), IPv6 shorter than /16 that reach global unicast (2000::/3). A `/0` is
/// the whole internet and reported as such.
fn wide_sources(resolved: &Resolved) -> Vec<IpNet> {
    let mut out = Vec::new();
    let not_public_v4 = Ipv4Net::new(std::net::Ipv4Addr::new(224, 0, 0, 0), 3).ok();
    let global_v6 = Ipv6Net::new(std::net::Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3).ok();
    for n in Ipv4Net::aggregate(&resolved.v4) {
        let len = n.prefix_len();
        if len > 0 && len < WIDE_V4_PREFIX && !not_public_v4.is_some_and(|r| r.contains(&n)) {
            out.push(IpNet::V4(n));
        }
    }
    for n in Ipv6Net::aggregate(&resolved.v6) {
        let len = n.prefix_len();
        let global = global_v6.is_some_and(|g| g.contains(&n) || n.contains(&g));
        if len > 0 && len < WIDE_V6_PREFIX && global {
            out.push(IpNet::V6(n));
        }
    }
    out
}

/// Ingress from a very wide public range that is not the whole internet (`0.0.0.0/1` is half
/// of it): reported one step below what the same ports open to `0.0.0.0/0` would be, on the
/// ports of the rule that the whole internet does not already reach.
fn wide_public(
    subject: &str,
    rule: &Rule,
    resolved: &Resolved,
    public: &[(Protocol, Ports, Vec<&Rule>)],
    out: &mut Vec<Finding>,
) {
    let wide = wide_sources(resolved);
    if wide.is_empty() {
        return;
    }
    // The port ranges where this rule is already part of a whole-internet finding.
    let covered: Vec<Ports> = public
        .iter()
        .filter(|(protocol, _, rules)| {
            (*protocol == rule.protocol || *protocol == Protocol::All)
                && rules.iter().any(|r| std::ptr::eq(*r, rule))
        })
        .map(|(protocol, ports, _)| {
            if *protocol == Protocol::All {
                Ports::Everything
            } else {
                *ports
            }
        })
        .collect();
    let in_public = |port: u16| covered.iter().any(|p| p.contains(port));
    let fully_covered = if rule.protocol.has_ports() {
        let (from, to) = rule.ports.bounds();
        (from..=to).all(|p| u16::try_from(p).is_ok_and(in_public))
    } else {
        !covered.is_empty()
    };
    if fully_covered {
        return;
    }
    let cx = Context::of_rule(subject, rule);
    let what = cx.describe();
    let uncovered = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| {
                n.split(' ')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_none_or(|p| !in_public(p))
            })
            .collect()
    };
    let admin = uncovered(port_names(cx.ports, cx.protocol, ADMIN_PORTS));
    let database = uncovered(port_names(cx.ports, cx.protocol, DATABASE_PORTS));
    let web = matches!(cx.ports, Ports::Range(f, t)
        if cx.protocol == Protocol::Tcp && WEB_PORTS.contains(&f) && WEB_PORTS.contains(&t));
    let severity =
        if (cx.all_ports() && covered.is_empty()) || !admin.is_empty() || !database.is_empty() {
            Severity::High
        } else if cx.protocol.has_ports() && cx.ports.width() > WIDE_RANGE {
            Severity::Medium
        } else if matches!(cx.protocol, Protocol::Other(_)) {
            Severity::Low
        } else if web || matches!(cx.protocol, Protocol::Icmp | Protocol::Icmpv6) {
            Severity::Info
        } else {
            Severity::Low
        };
    let nets: Vec<String> = wide.iter().map(ToString::to_string).collect();
    let addresses: Vec<String> = wide
        .iter()
        .map(|n| match n {
            IpNet::V4(n) => format!("{n}: 2^{} addresses", 32 - n.prefix_len()),
            IpNet::V6(n) => format!("{n}: 2^{} addresses", 128 - n.prefix_len()),
        })
        .collect();
    let mut detail = format!(
        "The source is not the whole internet, but a public range wider than any organisation \
         holds ({}); treat it as the internet.",
        addresses.join("; ")
    );
    if !admin.is_empty() || !database.is_empty() {
        let ports: Vec<String> = admin.iter().chain(&database).cloned().collect();
        detail.push_str(&format!(
            " It exposes administrative or database ports: {}.",
            ports.join(", ")
        ));
    }
    out.push(
        cx.finding(
            "sg.wide-public-source",
            severity,
            format!(
                "{} admits {what} from {}, a very wide public range",
                cx.subject,
                nets.join(" and ")
            ),
            detail,
        )
        .with_evidence("cidrs", json!(nets))
        .with_evidence("admin_ports", json!(admin))
        .with_evidence("database_ports", json!(database))
        .with_remediation(
            "Replace the wide range with the addresses or security groups that need access; \
             reach administrative ports through SSM Session Manager or a bastion.",
        ),
    );
}

fn narrow_public(cx: &Context<'_>, what: &str, from: &str, families: &[&str]) -> Finding {
    let web = matches!(cx.ports, Ports::Range(f, t)
        if cx.protocol == Protocol::Tcp && WEB_PORTS.contains(&f) && WEB_PORTS.contains(&t));
    let (severity, detail) = match (cx.protocol, cx.ports) {
        _ if web => (
            Severity::Info,
            "A public web port; expected for a load balancer.",
        ),
        (Protocol::Icmp | Protocol::Icmpv6, _) => (
            Severity::Info,
            "ICMP from anywhere: reachability probes, no service exposed.",
        ),
        (Protocol::Other(_), _) => (
            Severity::Medium,
            "All traffic of this IP protocol is admitted from anywhere.",
        ),
        (_, Ports::Range(0, 0)) => (
            Severity::Low,
            "Port 0 is admitted from anywhere. AWS applies a TCP/UDP rule of 0-0 to port 0 \
             only; if all ports were meant, the rule does not do that (use 0-65535), and if \
             nothing was meant, remove it.",
        ),
        _ => (
            Severity::Low,
            "A service port is reachable from anywhere; make sure it is meant to be public.",
        ),
    };
    cx.finding(
        "sg.public-ingress",
        severity,
        format!("{} admits {what} from {from}", cx.subject),
        detail.to_owned(),
    )
    .with_evidence("families", json!(families))
}

fn unknown_exposure(cx: &Context<'_>, unknown: &[String]) -> Finding {
    let what = cx.describe();
    cx.finding(
        "sg.exposure-unknown",
        Severity::Medium,
        format!(
            "{} admits {what} from sources whose addresses are not known",
            cx.subject
        ),
        format!(
            "The exposure cannot be determined from the input: {}. Give the prefix-list \
             entries (get-managed-prefix-list-entries) or literal CIDRs to decide it.",
            unknown.join("; ")
        ),
    )
    .with_evidence("unknown_sources", json!(unknown))
}

fn open_egress(cx: &Context<'_>, families: &[&str]) -> Finding {
    cx.finding(
        "sg.unrestricted-egress",
        Severity::Low,
        format!(
            "{} allows all outbound traffic to the whole internet ({})",
            cx.subject,
            families.join(" and ")
        ),
        "Unrestricted egress lets a compromised instance download tools and send data \
         anywhere. It is the AWS default; restrict it where the destinations are known."
            .to_owned(),
    )
    .with_evidence("families", json!(families))
    .with_remediation(
        "Limit egress to the ports and destinations the workload needs (for example 443 to \
         a proxy or VPC endpoints).",
    )
}

fn mesh(cx: &Context<'_>, peers: &[String], out: &mut Vec<Finding>) {
    if !cx.all_ports() {
        return;
    }
    let own = cx.rules.first().map(|r| r.group.as_str());
    let peers: BTreeSet<&String> = peers.iter().collect();
    for peer in peers {
        let (title, detail) = if Some(peer.as_str()) == own {
            (
                format!(
                    "{} admits {} from its own members",
                    cx.subject,
                    cx.describe()
                ),
                "Every member can reach every other member on every port: one compromised \
                 instance reaches all of them. This is not internet exposure.",
            )
        } else {
            (
                format!(
                    "{} admits {} from members of {peer}",
                    cx.subject,
                    cx.describe()
                ),
                "Every member of the other group reaches every port of this group's members. \
                 This is not internet exposure.",
            )
        };
        out.push(
            cx.finding("sg.group-mesh", Severity::Medium, title, detail.to_owned())
                .with_evidence("peer_group", peer.clone())
                .with_remediation("Allow only the ports the members use to talk to each other."),
        );
    }
}

pub(crate) fn edges(groups: &Groups) -> Vec<Edge> {
    let mut edges = Vec::new();
    for rule in &groups.rules {
        let (from_port, to_port) = rule.ports.bounds();
        for peer in &rule.peers {
            let Peer::Group(peer) = peer else { continue };
            let (from, to) = match rule.direction {
                Direction::Ingress => (peer.clone(), rule.group.clone()),
                Direction::Egress => (rule.group.clone(), peer.clone()),
            };
            edges.push(Edge {
                from,
                to,
                direction: rule.direction,
                protocol: rule.protocol.name(),
                from_port,
                to_port,
                location: rule.location.clone(),
            });
        }
    }
    edges.sort();
    edges.dedup();
    edges
}
