//! The normalised rule model both input formats are read into.

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;
use tenet_finding::Location;

/// Highest TCP/UDP port.
pub(crate) const MAX_PORT: u16 = 65535;

/// The IP protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Protocol {
    /// `-1` / `all`: every protocol, every port.
    All,
    Tcp,
    Udp,
    /// ICMP and ICMPv6: the "ports" are type and code.
    Icmp,
    Icmpv6,
    /// Any other IP protocol number (ESP, GRE, ...): no ports, all of its traffic.
    Other(u8),
}

impl Protocol {
    /// Parses `IpProtocol` / `protocol` / `ip_protocol`: a name or a protocol number, as a
    /// string or a number.
    pub(crate) fn parse(value: &Value) -> Result<Protocol, String> {
        let text = match value {
            Value::String(s) => s.trim().to_ascii_lowercase(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("protocol {other} is not a string or number")),
        };
        Ok(match text.as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "icmpv6" | "58" => Protocol::Icmpv6,
            other => match other.parse::<u8>() {
                Ok(n) => Protocol::Other(n),
                Err(_) => return Err(format!("unknown protocol {other:?}")),
            },
        })
    }

    pub(crate) fn name(self) -> String {
        match self {
            Protocol::All => "all".to_owned(),
            Protocol::Tcp => "tcp".to_owned(),
            Protocol::Udp => "udp".to_owned(),
            Protocol::Icmp => "icmp".to_owned(),
            Protocol::Icmpv6 => "icmpv6".to_owned(),
            Protocol::Other(n) => n.to_string(),
        }
    }

    /// Whether the rule's port fields are ports (and not ICMP type/code or ignored).
    pub(crate) fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

/// What the rule admits on its protocol: an inclusive TCP/UDP port range, or everything the
/// protocol carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ports {
    Range(u16, u16),
    /// All ports of TCP/UDP, or all traffic of a protocol without ports.
    Everything,
    /// ICMP type and code (-1 = any).
    IcmpType(i64, i64),
}

impl Ports {
    /// The ports for `protocol` from the raw from/to fields (`None` = absent).
    ///
    /// A negative or absent TCP/UDP port is read as "all ports": that is how `-1` is written
    /// for all-port rules, and reading an ambiguous rule as the wider one fails safe.
    pub(crate) fn for_protocol(
        protocol: Protocol,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Ports, String> {
        match protocol {
            Protocol::All | Protocol::Other(_) => Ok(Ports::Everything),
            Protocol::Icmp | Protocol::Icmpv6 => {
                Ok(Ports::IcmpType(from.unwrap_or(-1), to.unwrap_or(-1)))
            }
            Protocol::Tcp | Protocol::Udp => match (from, to) {
                (Some(f), Some(t)) if f >= 0 && t >= 0 => {
                    let f = u16::try_from(f).map_err(|_| format!("from port {f} > 65535"))?;
                    let t = u16::try_from(t).map_err(|_| format!("to port {t} > 65535"))?;
                    if f > t {
                        return Err(format!("from port {f} is above to port {t}"));
                    }
                    if f <= 1 && t == MAX_PORT {
                        Ok(Ports::Everything)
                    } else {
                        Ok(Ports::Range(f, t))
                    }
                }
                _ => Ok(Ports::Everything),
            },
        }
    }

    pub(crate) fn contains(self, port: u16) -> bool {
        match self {
            Ports::Range(f, t) => f <= port && port <= t,
            Ports::Everything => true,
            Ports::IcmpType(..) => false,
        }
    }

    /// Number of ports (65536 for everything, 0 for ICMP).
    pub(crate) fn width(self) -> u32 {
        match self {
            Ports::Range(f, t) => u32::from(t) - u32::from(f) + 1,
            Ports::Everything => u32::from(MAX_PORT) + 1,
            Ports::IcmpType(..) => 0,
        }
    }

    /// `(from, to)` for evidence; ICMP gives type and code.
    pub(crate) fn bounds(self) -> (i64, i64) {
        match self {
            Ports::Range(f, t) => (i64::from(f), i64::from(t)),
            Ports::Everything => (0, i64::from(MAX_PORT)),
            Ports::IcmpType(t, c) => (t, c),
        }
    }
}

/// One source (ingress) or destination (egress) of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Cidr(IpNet),
    /// A managed prefix list, resolved at assessment time.
    PrefixList(String),
    /// Another group, or the rule's own group (`self`).
    Group(String),
    /// A peer whose addresses cannot be known from the input, with why.
    Unknown(String),
}

/// Which way a rule admits traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic into members of the group.
    Ingress,
    /// Traffic out of members of the group.
    Egress,
}

/// One rule of a group, in either input format.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// The group id (`sg-...`) or Terraform address of the group it belongs to.
    pub group: String,
    pub direction: Direction,
    pub protocol: Protocol,
    pub ports: Ports,
    pub peers: Vec<Peer>,
    /// Where the rule is written: file and JSON pointer, or the Terraform resource address.
    pub location: Location,
    /// `ingress[0]`, `IpPermissions[2]`: which rule of the resource.
    pub label: String,
}

/// Reads an integer that may be written as a number or a numeric string; `null` is absent.
pub(crate) fn int_field(value: Option<&Value>, name: &str) -> Result<Option<i64>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} {n} is not an integer in range")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name} {s:?} is not an integer")),
        Some(other) => Err(format!("{name} {other} is not an integer")),
    }
}

/// Parses one CIDR; anything else becomes an unknown peer that says why.
pub(crate) fn cidr_peer(text: &str) -> Peer {
    match text.trim().parse::<IpNet>() {
        Ok(net) => Peer::Cidr(net.trunc()),
        Err(_) if text.contains("${") => {
            Peer::Unknown(format!("address {text} is not known before apply"))
        }
        Err(_) => Peer::Unknown(format!("{text:?} is not a CIDR block")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn protocols_parse_by_name_and_number() {
        assert_eq!(Protocol::parse(&json!("-1")), Ok(Protocol::All));
        assert_eq!(Protocol::parse(&json!(-1)), Ok(Protocol::All));
        assert_eq!(Protocol::parse(&json!("ALL")), Ok(Protocol::All));
        assert_eq!(Protocol::parse(&json!("6")), Ok(Protocol::Tcp));
        assert_eq!(Protocol::parse(&json!(50)), Ok(Protocol::Other(50)));
        assert!(Protocol::parse(&json!("bogus")).is_err());
        assert!(Protocol::parse(&json!(300)).is_err());
        assert!(Protocol::parse(&json!([1])).is_err());
    }

    #[test]
    fn ports_are_inclusive_and_icmp_is_not_ports() {
        let tcp = |f, t| Ports::for_protocol(Protocol::Tcp, f, t);
        assert_eq!(tcp(Some(22), Some(22)), Ok(Ports::Range(22, 22)));
        assert_eq!(tcp(Some(0), Some(65535)), Ok(Ports::Everything));
        assert_eq!(tcp(Some(-1), Some(-1)), Ok(Ports::Everything));
        assert_eq!(tcp(Some(0), Some(0)), Ok(Ports::Range(0, 0)));
        assert!(tcp(Some(10), Some(9)).is_err());
        assert!(tcp(Some(1), Some(70000)).is_err());
        assert!(Ports::Range(20, 22).contains(22));
        assert!(!Ports::Range(23, 25).contains(22));
        assert_eq!(Ports::Range(1000, 1100).width(), 101);
        let icmp = Ports::for_protocol(Protocol::Icmp, Some(8), Some(0)).unwrap();
        assert!(!icmp.contains(8));
        assert_eq!(
            Ports::for_protocol(Protocol::All, Some(22), Some(22)),
            Ok(Ports::Everything)
        );
    }

    #[test]
    fn cidrs_and_non_cidrs() {
        assert_eq!(
            cidr_peer("10.1.2.3/8"),
            Peer::Cidr("10.0.0.0/8".parse().unwrap())
        );
        assert!(matches!(cidr_peer("${var.x}"), Peer::Unknown(_)));
        assert!(matches!(cidr_peer("10.0.0.0/33"), Peer::Unknown(_)));
    }
}
