//! Reading the AWS CLI's JSON: `describe-security-groups` (or a bare array of groups),
//! `describe-managed-prefix-lists` and `get-managed-prefix-list-entries`.

use serde_json::Value;
use tenet_finding::{Location, Skipped, pointer_token};

use crate::model::{Direction, Peer, Ports, Protocol, Rule, cidr_peer, int_field};
use crate::{Groups, PrefixList};

/// What a JSON document holds, if it is one of ours.
pub(crate) enum Kind<'a> {
    Groups(&'a [Value], &'static str),
    PrefixLists(&'a [Value]),
    Entries(&'a [Value]),
}

pub(crate) fn recognise(value: &Value) -> Option<Kind<'_>> {
    if let Some(groups) = value.get("SecurityGroups").and_then(Value::as_array) {
        return Some(Kind::Groups(groups, "/SecurityGroups"));
    }
    if let Some(lists) = value.get("PrefixLists").and_then(Value::as_array) {
        return Some(Kind::PrefixLists(lists));
    }
    if let Some(entries) = value.get("Entries").and_then(Value::as_array) {
        return Some(Kind::Entries(entries));
    }
    let items = value.as_array()?;
    let looks_like_group = |g: &Value| {
        g.get("GroupId").is_some()
            && (g.get("IpPermissions").is_some() || g.get("IpPermissionsEgress").is_some())
    };
    (!items.is_empty() && items.iter().all(looks_like_group)).then_some(Kind::Groups(items, ""))
}

/// The `pl-...` id in a file name such as `pl-0abc123-entries.json`.
fn prefix_list_id_in_name(file: &str) -> Option<String> {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let start = base.find("pl-")?;
    let tail: String = base
        .get(start + 3..)?
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!tail.is_empty()).then(|| format!("pl-{tail}"))
}

impl Groups {
    pub(crate) fn add_aws_groups(&mut self, file: &str, groups: &[Value], base: &str) {
        for (i, group) in groups.iter().enumerate() {
            let pointer = format!("{base}/{i}");
            let Some(id) = group.get("GroupId").and_then(Value::as_str) else {
                self.skipped.push(Skipped::new(
                    format!("{file}#{pointer}"),
                    "security group without a string GroupId",
                ));
                continue;
            };
            let name = group.get("GroupName").and_then(Value::as_str);
            self.declare_group(id, name);
            for (field, direction) in [
                ("IpPermissions", Direction::Ingress),
                ("IpPermissionsEgress", Direction::Egress),
            ] {
                let permissions = match group.get(field) {
                    None | Some(Value::Null) => continue,
                    Some(Value::Array(p)) => p,
                    Some(_) => {
                        self.skipped.push(Skipped::new(
                            format!("{file}#{pointer}/{field}"),
                            format!("{field} is not an array"),
                        ));
                        continue;
                    }
                };
                for (j, permission) in permissions.iter().enumerate() {
                    let at = format!("{pointer}/{field}/{j}");
                    match aws_rule(permission) {
                        Ok((protocol, ports, peers)) => self.rules.push(Rule {
                            group: id.to_owned(),
                            direction,
                            protocol,
                            ports,
                            peers,
                            location: Location::file(file).with_pointer(at),
                            label: format!("{field}[{j}]"),
                        }),
                        Err(reason) => self
                            .skipped
                            .push(Skipped::new(format!("{file}#{at}"), reason)),
                    }
                }
            }
        }
    }

    pub(crate) fn add_aws_prefix_lists(&mut self, file: &str, lists: &[Value]) {
        for (i, list) in lists.iter().enumerate() {
            let Some(id) = list.get("PrefixListId").and_then(Value::as_str) else {
                self.skipped.push(Skipped::new(
                    format!("{file}#/PrefixLists/{i}"),
                    "prefix list without a string PrefixListId",
                ));
                continue;
            };
            let entry = self.prefix_lists.entry(id.to_owned()).or_default();
            if let Some(name) = list.get("PrefixListName").and_then(Value::as_str) {
                entry.name = Some(name.to_owned());
            }
        }
    }

    pub(crate) fn add_aws_entries(&mut self, file: &str, document: &Value, entries: &[Value]) {
        let id = document
            .get("PrefixListId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| prefix_list_id_in_name(file));
        let Some(id) = id else {
            self.skipped.push(Skipped::new(
                file,
                "prefix-list entries without a PrefixListId: add \"PrefixListId\" next to \
                 \"Entries\" or put the pl-... id in the file name",
            ));
            return;
        };
        let mut cidrs = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match entry.get("Cidr").and_then(Value::as_str).map(cidr_peer) {
                Some(Peer::Cidr(net)) => cidrs.push(net),
                _ => self.skipped.push(Skipped::new(
                    format!("{file}#/Entries/{}", pointer_token(&i.to_string())),
                    "prefix-list entry without a valid Cidr",
                )),
            }
        }
        let list: &mut PrefixList = self.prefix_lists.entry(id).or_default();
        list.entries.get_or_insert_with(Vec::new).extend(cidrs);
    }
}

fn aws_rule(permission: &Value) -> Result<(Protocol, Ports, Vec<Peer>), String> {
    let protocol = Protocol::parse(
        permission
            .get("IpProtocol")
            .ok_or("permission without IpProtocol")?,
    )?;
    let from = int_field(permission.get("FromPort"), "FromPort")?;
    let to = int_field(permission.get("ToPort"), "ToPort")?;
    let ports = Ports::for_protocol(protocol, from, to)?;

    let mut peers = Vec::new();
    let list = |key: &str| {
        permission
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    for (key, field) in [("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")] {
        for range in list(key) {
            match range.get(field).and_then(Value::as_str) {
                Some(cidr) => peers.push(cidr_peer(cidr)),
                None => peers.push(Peer::Unknown(format!("{key} entry without {field}"))),
            }
        }
    }
    for pl in list("PrefixListIds") {
        match pl.get("PrefixListId").and_then(Value::as_str) {
            Some(id) => peers.push(Peer::PrefixList(id.to_owned())),
            None => peers.push(Peer::Unknown("PrefixListIds entry without id".to_owned())),
        }
    }
    for pair in list("UserIdGroupPairs") {
        match pair.get("GroupId").and_then(Value::as_str) {
            Some(id) => peers.push(Peer::Group(id.to_owned())),
            None => peers.push(Peer::Unknown("group pair without GroupId".to_owned())),
        }
    }
    Ok((protocol, ports, peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_list_ids_come_from_file_names() {
        assert_eq!(
            prefix_list_id_in_name("dir/pl-0abc12-entries.json").as_deref(),
            Some("pl-0abc12")
        );
        assert_eq!(prefix_list_id_in_name("entries.json"), None);
    }
}
