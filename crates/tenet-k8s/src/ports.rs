//! Sets of allowed connections: per protocol (SCTP, TCP, UDP), a set of port ranges over
//! 1–65535, printed the way netpol-analyzer prints them.

use std::fmt;

/// A transport protocol a NetworkPolicy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// SCTP.
    Sctp,
    /// TCP, the default when a policy port names none.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// All protocols in the order they are printed.
    pub const ALL: [Protocol; 3] = [Protocol::Sctp, Protocol::Tcp, Protocol::Udp];

    /// Parses `TCP`, `UDP` or `SCTP` (as Kubernetes spells them; case-insensitive here).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sctp => "SCTP",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    fn index(self) -> usize {
        match self {
            Protocol::Sctp => 0,
            Protocol::Tcp => 1,
            Protocol::Udp => 2,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lowest and highest port a policy can name.
pub const MIN_PORT: u16 = 1;
/// The highest port.
pub const MAX_PORT: u16 = 65535;

/// A set of ports: sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    /// Every port.
    pub fn all() -> Self {
        PortSet(vec![(MIN_PORT, MAX_PORT)])
    }

    /// One inclusive range (empty when `lo > hi`; clamped to 1–65535).
    pub fn range(lo: u16, hi: u16) -> Self {
        let lo = lo.max(MIN_PORT);
        if lo > hi {
            return PortSet::default();
        }
        PortSet(vec![(lo, hi)])
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// True when no port is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every port is in the set.
    pub fn is_all(&self) -> bool {
        self.0 == [(MIN_PORT, MAX_PORT)]
    }

    /// Whether the port is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// Adds every port of `other`.
    pub fn union_with(&mut self, other: &PortSet) {
        if other.is_empty() {
            return;
        }
        let mut all: Vec<(u16, u16)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(all.len());
        for (lo, hi) in all {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        self.0 = merged;
    }

    /// The ports in both sets.
    pub fn intersection(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a_lo, a_hi)), Some(&(b_lo, b_hi))) = (self.0.get(i), other.0.get(j)) {
            let lo = a_lo.max(b_lo);
            let hi = a_hi.min(b_hi);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortSet(out)
    }

    /// The ports of this set that are not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        // The complement of `other` within 1-65535, then the intersection with `self`.
        let mut gaps = Vec::new();
        let mut next = u32::from(MIN_PORT);
        for &(lo, hi) in &other.0 {
            if u32::from(lo) > next {
                gaps.push((next, u32::from(lo) - 1));
            }
            next = next.max(u32::from(hi) + 1);
        }
        if next <= u32::from(MAX_PORT) {
            gaps.push((next, u32::from(MAX_PORT)));
        }
        let complement = gaps
            .into_iter()
            .filter_map(|(lo, hi)| Some((u16::try_from(lo).ok()?, u16::try_from(hi).ok()?)))
            .collect();
        self.intersection(&PortSet(complement))
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Allowed connections: a port set per protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnSet([PortSet; 3]);

impl ConnSet {
    /// No connection.
    pub fn none() -> Self {
        ConnSet::default()
    }

    /// Every protocol and port.
    pub fn all() -> Self {
        ConnSet([PortSet::all(), PortSet::all(), PortSet::all()])
    }

    /// The ports of one protocol.
    pub fn ports(&self, protocol: Protocol) -> &PortSet {
        // INVARIANT: the array has one entry per protocol index.
        match self.0.get(protocol.index()) {
            Some(set) => set,
            None => &EMPTY,
        }
    }

    /// Adds ports for one protocol.
    pub fn add(&mut self, protocol: Protocol, ports: &PortSet) {
        if let Some(set) = self.0.get_mut(protocol.index()) {
            set.union_with(ports);
        }
    }

    /// Adds every connection of `other`.
    pub fn union_with(&mut self, other: &ConnSet) {
        for protocol in Protocol::ALL {
            self.add(protocol, other.ports(protocol));
        }
    }

    /// The connections in both sets.
    pub fn intersection(&self, other: &ConnSet) -> ConnSet {
        let mut out = ConnSet::none();
        for protocol in Protocol::ALL {
            let both = self.ports(protocol).intersection(other.ports(protocol));
            out.add(protocol, &both);
        }
        out
    }

    /// The connections of this set that are not in `other`.
    pub fn difference(&self, other: &ConnSet) -> ConnSet {
        let mut out = ConnSet::none();
        for protocol in Protocol::ALL {
            let left = self.ports(protocol).difference(other.ports(protocol));
            out.add(protocol, &left);
        }
        out
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(PortSet::is_empty)
    }

    /// True when every protocol and port is allowed.
    pub fn is_all(&self) -> bool {
        self.0.iter().all(PortSet::is_all)
    }

    /// Whether one protocol and port is allowed.
    pub fn allows(&self, protocol: Protocol, port: u16) -> bool {
        self.ports(protocol).contains(port)
    }
}

static EMPTY: PortSet = PortSet(Vec::new());

impl fmt::Display for ConnSet {
    /// `All Connections`, `No Connections`, or `SCTP 9003,TCP 80,8080-9090,UDP 53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for protocol in Protocol::ALL {
            let ports = self.ports(protocol);
            if ports.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{protocol} {ports}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_netpol_analyzer() {
        let mut c = ConnSet::none();
        c.add(Protocol::Udp, &PortSet::range(53, 53));
        c.add(Protocol::Tcp, &PortSet::range(8080, 9090));
        c.add(Protocol::Tcp, &PortSet::range(80, 80));
        assert_eq!(c.to_string(), "TCP 80,8080-9090,UDP 53");
        let mut all_but = ConnSet::all();
        let mut tcp = PortSet::range(1, 79);
        tcp.union_with(&PortSet::range(81, 65535));
        all_but = all_but.intersection(&{
            let mut x = ConnSet::all();
            x.0[1] = tcp;
            x
        });
        assert_eq!(
            all_but.to_string(),
            "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535"
        );
        assert_eq!(ConnSet::all().to_string(), "All Connections");
    }

    #[test]
    fn union_merges_adjacent_and_intersection_cuts() {
        let mut a = PortSet::range(1, 10);
        a.union_with(&PortSet::range(11, 20));
        assert_eq!(a.ranges(), &[(1, 20)]);
        let b = PortSet::range(15, 30);
        assert_eq!(a.intersection(&b).ranges(), &[(15, 20)]);
        assert!(PortSet::range(0, 65535).is_all());
    }

    #[test]
    fn difference_leaves_what_the_other_lacks() {
        let mut a = PortSet::range(1, 100);
        a.union_with(&PortSet::range(200, 300));
        let mut b = PortSet::range(50, 60);
        b.union_with(&PortSet::range(100, 250));
        assert_eq!(a.difference(&b).ranges(), &[(1, 49), (61, 99), (251, 300)]);
        assert!(a.difference(&PortSet::all()).is_empty());
        assert_eq!(
            PortSet::all()
                .difference(&PortSet::range(1, 65534))
                .ranges(),
            &[(65535, 65535)]
        );
        let mut tcp80 = ConnSet::none();
        tcp80.add(Protocol::Tcp, &PortSet::range(80, 80));
        let rest = ConnSet::all().difference(&tcp80);
        assert_eq!(
            rest.to_string(),
            "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535"
        );
        assert!(tcp80.difference(&ConnSet::all()).is_empty());
    }
}
