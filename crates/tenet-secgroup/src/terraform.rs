//! Reading security groups from Terraform: `aws_security_group` with inline rules,
//! `aws_security_group_rule`, `aws_vpc_security_group_ingress_rule` / `_egress_rule`, and
//! the contents of `aws_ec2_managed_prefix_list` (with `_entry`) resources.

use serde_json::Value;
use tenet_finding::{Location, Skipped};
use tenet_terraform::{Block, Mode, Module, nested_in, reference_target};

use crate::Groups;
use crate::model::{Direction, Peer, Ports, Protocol, Rule, cidr_peer, int_field};

fn location(block: &Block) -> Location {
    let at = Location::file(&block.file).with_pointer(&block.address);
    match block.line {
        Some(line) => at.with_line(line),
        None => at,
    }
}

/// The block a `"${kind.name.id}"` reference points at, or the literal id (`sg-...`, `pl-...`).
fn id_or_reference(value: &str) -> String {
    match reference_target(value) {
        Some((address, attribute)) if attribute == "id" => address,
        _ => value.to_owned(),
    }
}

/// The strings of a list attribute; `null`/absent is empty; an unresolved whole-list value
/// (`"${var.x}"`) gives one unknown.
fn strings(body: &Value, key: &str) -> Result<Vec<String>, String> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{key} holds {other}, not a string")),
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(other) => Err(format!("{key} is {other}, not a list of strings")),
    }
}

fn single(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn is_true(body: &Value, key: &str) -> bool {
    matches!(body.get(key), Some(Value::Bool(true)))
        || body.get(key).and_then(Value::as_str) == Some("true")
}

fn protocol_and_ports(body: &Value, protocol_key: &str) -> Result<(Protocol, Ports), String> {
    let protocol = Protocol::parse(
        body.get(protocol_key)
            .ok_or_else(|| format!("no {protocol_key}"))?,
    )?;
    let from = int_field(body.get("from_port"), "from_port")?;
    let to = int_field(body.get("to_port"), "to_port")?;
    Ok((protocol, Ports::for_protocol(protocol, from, to)?))
}

/// Peers of the `aws_security_group` inline form and of `aws_security_group_rule`.
fn classic_peers(body: &Value, group: &str) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    for key in ["cidr_blocks", "ipv6_cidr_blocks"] {
        peers.extend(strings(body, key)?.iter().map(|c| cidr_peer(c)));
    }
    for id in strings(body, "prefix_list_ids")? {
        peers.push(Peer::PrefixList(id_or_reference(&id)));
    }
    for id in strings(body, "security_groups")? {
        peers.push(Peer::Group(id_or_reference(&id)));
    }
    if let Some(id) = single(body, "source_security_group_id") {
        peers.push(Peer::Group(id_or_reference(&id)));
    }
    if is_true(body, "self") {
        peers.push(Peer::Group(group.to_owned()));
    }
    Ok(peers)
}

fn vpc_rule_peers(body: &Value) -> Vec<Peer> {
    let mut peers = Vec::new();
    for key in ["cidr_ipv4", "cidr_ipv6"] {
        if let Some(cidr) = single(body, key) {
            peers.push(cidr_peer(&cidr));
        }
    }
    if let Some(id) = single(body, "prefix_list_id") {
        peers.push(Peer::PrefixList(id_or_reference(&id)));
    }
    if let Some(id) = single(body, "referenced_security_group_id") {
        peers.push(Peer::Group(id_or_reference(&id)));
    }
    peers
}

impl Groups {
    pub(crate) fn add_module(&mut self, module: &Module) {
        for block in module.blocks.iter().filter(|b| b.mode == Mode::Resource) {
            let result = match block.kind.as_str() {
                "aws_security_group" => {
                    self.add_tf_group(block);
                    Ok(())
                }
                "aws_security_group_rule" => self.add_tf_rule(block),
                "aws_vpc_security_group_ingress_rule" => {
                    self.add_tf_vpc_rule(block, Direction::Ingress)
                }
                "aws_vpc_security_group_egress_rule" => {
                    self.add_tf_vpc_rule(block, Direction::Egress)
                }
                "aws_ec2_managed_prefix_list" => {
                    self.add_tf_prefix_list(block);
                    Ok(())
                }
                "aws_ec2_managed_prefix_list_entry" => self.add_tf_prefix_list_entry(block),
                _ => Ok(()),
            };
            if let Err(reason) = result {
                self.skipped.push(Skipped::new(
                    format!("{} {}", block.file, block.address),
                    reason,
                ));
            }
        }
    }

    fn add_tf_group(&mut self, block: &Block) {
        let group = block.address.clone();
        self.declare_group(&group, block.str_attr("name"));
        for (key, direction) in [
            ("ingress", Direction::Ingress),
            ("egress", Direction::Egress),
        ] {
            for (i, rule) in nested_in(&block.body, key).into_iter().enumerate() {
                let parsed = protocol_and_ports(rule, "protocol")
                    .and_then(|(p, ports)| Ok((p, ports, classic_peers(rule, &group)?)));
                match parsed {
                    Ok((protocol, ports, peers)) => self.rules.push(Rule {
                        group: group.clone(),
                        direction,
                        protocol,
                        ports,
                        peers,
                        location: location(block),
                        label: format!("{key}[{i}]"),
                    }),
                    Err(reason) => self.skipped.push(Skipped::new(
                        format!("{} {} {key}[{i}]", block.file, block.address),
                        reason,
                    )),
                }
            }
        }
    }

    fn group_of(block: &Block) -> Result<String, String> {
        single(&block.body, "security_group_id")
            .map(|id| id_or_reference(&id))
            .ok_or_else(|| "no security_group_id".to_owned())
    }

    fn add_tf_rule(&mut self, block: &Block) -> Result<(), String> {
        let direction = match block.str_attr("type") {
            Some("ingress") => Direction::Ingress,
            Some("egress") => Direction::Egress,
            other => return Err(format!("type {other:?} is neither ingress nor egress")),
        };
        let group = Self::group_of(block)?;
        let (protocol, ports) = protocol_and_ports(&block.body, "protocol")?;
        let peers = classic_peers(&block.body, &group)?;
        self.push_tf_rule(block, group, direction, protocol, ports, peers);
        Ok(())
    }

    fn add_tf_vpc_rule(&mut self, block: &Block, direction: Direction) -> Result<(), String> {
        let group = Self::group_of(block)?;
        let (protocol, ports) = protocol_and_ports(&block.body, "ip_protocol")?;
        let peers = vpc_rule_peers(&block.body);
        self.push_tf_rule(block, group, direction, protocol, ports, peers);
        Ok(())
    }

    fn push_tf_rule(
        &mut self,
        block: &Block,
        group: String,
        direction: Direction,
        protocol: Protocol,
        ports: Ports,
        peers: Vec<Peer>,
    ) {
        self.rules.push(Rule {
            group,
            direction,
            protocol,
            ports,
            peers,
            location: location(block),
            label: block.kind.clone(),
        });
    }

    fn add_tf_prefix_list(&mut self, block: &Block) {
        let mut cidrs = Vec::new();
        for entry in block.nested("entry") {
            match single(entry, "cidr").map(|c| cidr_peer(&c)) {
                Some(Peer::Cidr(net)) => cidrs.push(net),
                _ => {
                    // One unknown entry makes the whole list's contents unknown.
                    self.prefix_lists
                        .entry(block.address.clone())
                        .or_default()
                        .incomplete = true;
                    return;
                }
            }
        }
        let list = self.prefix_lists.entry(block.address.clone()).or_default();
        list.name = block.str_attr("name").map(str::to_owned);
        list.entries.get_or_insert_with(Vec::new).extend(cidrs);
    }

    fn add_tf_prefix_list_entry(&mut self, block: &Block) -> Result<(), String> {
        let list = single(&block.body, "prefix_list_id")
            .map(|id| id_or_reference(&id))
            .ok_or("no prefix_list_id")?;
        match single(&block.body, "cidr").map(|c| cidr_peer(&c)) {
            Some(Peer::Cidr(net)) => {
                let entries = self.prefix_lists.entry(list).or_default();
                entries.entries.get_or_insert_with(Vec::new).push(net);
                Ok(())
            }
            _ => {
                self.prefix_lists.entry(list).or_default().incomplete = true;
                Ok(())
            }
        }
    }
}
