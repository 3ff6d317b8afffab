//! Security groups: which ports of which groups are open to the whole internet, to unknown
//! sources, or to other groups, read from AWS CLI JSON and from Terraform.
//!
//! Inputs are collected into [`Groups`]: `aws ec2 describe-security-groups` output (or a bare
//! array of groups), `describe-managed-prefix-lists` and `get-managed-prefix-list-entries`
//! output (the entries file names its list by a `"PrefixListId"` member next to `"Entries"`,
//! or by the `pl-...` id in its file name), and Terraform modules through `tenet-terraform`.
//! Files may come in any order; prefix lists are resolved when [`Groups::assess`] runs.
//!
//! Semantics:
//! - exposure is computed per group over the union of all of its rules (inline rules,
//!   `aws_security_group_rule`, the VPC rule resources, every `IpPermissions` entry), per
//!   protocol and port: a port is public when the IPv4 sources (known prefix-list entries
//!   included) of the rules that admit it cover all of IPv4, or their IPv6 sources all of
//!   IPv6. `0.0.0.0/1` in one rule and `128.0.0.0/1` in another make the port public. Each
//!   public range is reported once per group, located at the first of a minimal set of rules
//!   that make it public, and naming all of them in the `rules` evidence when there are
//!   several;
//! - protocol `-1`/`all` (and any protocol other than TCP, UDP, ICMP) admits everything;
//!   TCP/UDP port ranges are inclusive; a negative or missing TCP/UDP port means all ports;
//!   ICMP "ports" are type and code and never match a port;
//! - a prefix list whose contents were not given, or a source that is not a literal CIDR, is
//!   reported as unknown exposure, never assumed private;
//! - group references are graph edges ([`Groups::edges`]); only all-traffic references
//!   (meshes) are findings, and never internet exposure.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod aws_json;
mod coverage;
mod exposure;
mod model;
mod terraform;

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;
use tenet_finding::{Location, Outcome, Skipped};

pub use model::Direction;
use model::Rule;

/// A reference from one group's rule to another group (or itself): members of `from` may
/// open connections to members of `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// The group whose members send the traffic.
    pub from: String,
    /// The group whose members receive it.
    pub to: String,
    /// The rule's direction: an ingress rule of `to`, or an egress rule of `from`.
    pub direction: Direction,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `all` or a protocol number.
    pub protocol: String,
    /// First port (ICMP type), inclusive; 0 for all.
    pub from_port: i64,
    /// Last port (ICMP code), inclusive; 65535 for all.
    pub to_port: i64,
    /// Where the rule is written.
    pub location: Location,
}

/// What is known about a group itself.
#[derive(Debug, Clone)]
pub(crate) struct GroupInfo {
    pub name: Option<String>,
}

/// What is known about a managed prefix list.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixList {
    pub name: Option<String>,
    /// `None` when only the list's description was given.
    pub entries: Option<Vec<IpNet>>,
    /// Some entries could not be read, so the list may hold more than `entries`.
    pub incomplete: bool,
}

/// Security groups, their rules and the prefix lists they use, gathered from any number of
/// inputs.
#[derive(Debug, Default)]
pub struct Groups {
    pub(crate) groups: BTreeMap<String, GroupInfo>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) prefix_lists: BTreeMap<String, PrefixList>,
    pub(crate) skipped: Vec<Skipped>,
}

impl Groups {
    /// No groups yet.
    pub fn new() -> Groups {
        Groups::default()
    }

    /// Adds one parsed JSON document named `file`. Returns `false`, and changes nothing, when
    /// it is not security-group or prefix-list content, so the caller can offer it to other
    /// analyses. Parts that are recognised but malformed are reported as skipped.
    pub fn add_json(&mut self, file: &str, value: &Value) -> bool {
        match aws_json::recognise(value) {
            Some(aws_json::Kind::Groups(groups, base)) => self.add_aws_groups(file, groups, base),
            Some(aws_json::Kind::PrefixLists(lists)) => self.add_aws_prefix_lists(file, lists),
            Some(aws_json::Kind::Entries(entries)) => self.add_aws_entries(file, value, entries),
            None => return false,
        }
        true
    }

    /// Adds the security groups, rules and managed prefix lists of a Terraform module. The
    /// module's own skipped files are not repeated here; the caller reports them once.
    pub fn add_terraform(&mut self, module: &tenet_terraform::Module) {
        self.add_module(module);
    }

    /// Number of groups and rules read so far (rules may name groups that were not defined
    /// in the inputs, such as `sg-...` ids in Terraform).
    pub fn len(&self) -> usize {
        self.rules.len() + self.groups.len()
    }

    /// Whether nothing has been read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `sg.*` findings over everything added, most severe first, with what was skipped.
    pub fn assess(&self) -> Outcome {
        let mut findings = exposure::findings(self);
        findings.sort_by(tenet_finding::Finding::report_order);
        Outcome {
            findings,
            skipped: self.skipped.clone(),
        }
    }

    /// Every group-to-group reference, sorted.
    pub fn edges(&self) -> Vec<Edge> {
        exposure::edges(self)
    }

    pub(crate) fn declare_group(&mut self, id: &str, name: Option<&str>) {
        self.groups.entry(id.to_owned()).or_insert(GroupInfo {
            name: name.map(str::to_owned),
        });
    }
}
