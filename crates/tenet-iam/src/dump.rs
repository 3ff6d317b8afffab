//! `aws iam get-account-authorization-details` output.
//!
//! Every part of the dump that has the wrong type (a section that is not an array, an entry
//! that is not an object, a name that is not a string) is reported as skipped with its JSON
//! pointer, never dropped without a word.

use std::collections::HashSet;

use serde_json::{Map, Value};
use tenet_finding::{Skipped, pointer_token};

use crate::account::{Account, Kind, Principal};
use crate::policy::{Policy, type_name};

/// Reads a dump into the account.
pub(crate) fn read(account: &mut Account, file: &str, dump: &Value) {
    let mut r = Reader {
        file,
        skipped: Vec::new(),
        seen: HashSet::new(),
    };
    let Some(root) = r.object(dump, "") else {
        account.skipped.append(&mut r.skipped);
        return;
    };
    // The managed policies' default documents: found in order, parsed on all cores, then
    // added in order.
    let mut managed = Vec::new();
    for (i, p) in r.list(root, "", "Policies").iter().enumerate() {
        let at = format!("/Policies/{i}");
        let Some(p) = r.object(p, &at) else {
            continue;
        };
        let arn = r
            .string(p, &at, "Arn")
            .or_else(|| r.string(p, &at, "PolicyName"));
        let Some(arn) = arn else {
            r.skip(&at, "policy without Arn or PolicyName");
            continue;
        };
        let versions = r.list(p, &at, "PolicyVersionList");
        let default = versions
            .iter()
            .position(|v| v.get("IsDefaultVersion").and_then(Value::as_bool) == Some(true))
            .or(if versions.len() == 1 { Some(0) } else { None });
        let Some((j, doc)) = default.and_then(|j| {
            versions
                .get(j)
                .and_then(|v| v.get("Document"))
                .map(|d| (j, d))
        }) else {
            r.skip(&at, format!("policy {arn} has no default version document"));
            continue;
        };
        let pointer = format!("{at}/PolicyVersionList/{j}/Document");
        managed.push((at, pointer, arn, p, doc));
    }
    let parsed = crate::par::map(&managed, |(_, _, _, _, doc)| Policy::from_value(file, doc));
    for ((at, pointer, arn, p, _), policy) in managed.into_iter().zip(parsed) {
        if let Some(d) = account.add_parsed(file, &pointer, None, &arn, policy, false, false) {
            account.managed.insert(arn, d);
            if let Some(name) = r.string(p, &at, "PolicyName") {
                account.managed.entry(name).or_insert(d);
            }
        }
    }
    for (section, kind, name_key, list_key) in [
        ("UserDetailList", Kind::User, "UserName", "UserPolicyList"),
        (
            "GroupDetailList",
            Kind::Group,
            "GroupName",
            "GroupPolicyList",
        ),
        ("RoleDetailList", Kind::Role, "RoleName", "RolePolicyList"),
    ] {
        for (i, entry) in r.list(root, "", section).iter().enumerate() {
            let at = format!("/{section}/{i}");
            let Some(entry) = r.object(entry, &at) else {
                continue;
            };
            let Some(name) = r.string(entry, &at, name_key) else {
                r.skip(&at, format!("entry without {name_key}"));
                continue;
            };
            let arn = r.string(entry, &at, "Arn").unwrap_or_else(|| name.clone());
            let mut inline = Vec::new();
            for (j, pol) in r.list(entry, &at, list_key).iter().enumerate() {
                let pat = format!("{at}/{list_key}/{j}");
                let Some(pol) = r.object(pol, &pat) else {
                    continue;
                };
                let pname = r
                    .string(pol, &pat, "PolicyName")
                    .unwrap_or_else(|| format!("#{j}"));
                let Some(doc) = pol.get("PolicyDocument") else {
                    r.skip(
                        &pat,
                        format!("inline policy {pname} of {arn} has no PolicyDocument"),
                    );
                    continue;
                };
                let pointer = format!("{pat}/PolicyDocument");
                let subject = format!("{arn} inline policy {pname}");
                if let Some(d) = account.add_doc(file, &pointer, None, &subject, doc, false, false)
                {
                    inline.push(d);
                }
            }
            let mut managed = Vec::new();
            for (j, m) in r
                .list(entry, &at, "AttachedManagedPolicies")
                .iter()
                .enumerate()
            {
                let mat = format!("{at}/AttachedManagedPolicies/{j}");
                let Some(m) = r.object(m, &mat) else {
                    continue;
                };
                match r
                    .string(m, &mat, "PolicyArn")
                    .or_else(|| r.string(m, &mat, "PolicyName"))
                {
                    Some(policy) => managed.push(policy),
                    None => r.skip(&mat, "attached policy without PolicyArn or PolicyName"),
                }
            }
            let mut groups = Vec::new();
            for (j, g) in r.list(entry, &at, "GroupList").iter().enumerate() {
                match g.as_str() {
                    Some(g) => groups.push(g.to_owned()),
                    None => r.skip(
                        &format!("{at}/GroupList/{j}"),
                        format!("group name is {}, not a string", type_name(g)),
                    ),
                }
            }
            let trust = entry.get("AssumeRolePolicyDocument").and_then(|doc| {
                let pointer = format!("{at}/AssumeRolePolicyDocument");
                account.add_doc(
                    file,
                    &pointer,
                    None,
                    &format!("{arn} trust policy"),
                    doc,
                    false,
                    true,
                )
            });
            account.principals.push(Principal {
                kind,
                name: name.clone(),
                display: arn.clone(),
                arn,
                aliases: vec![name],
                file: file.to_owned(),
                pointer: at,
                line: None,
                inline,
                managed,
                groups,
                trust,
            });
        }
    }
    account.skipped.append(&mut r.skipped);
}

/// Reads parts of one dump, recording every part of the wrong type.
struct Reader<'f> {
    file: &'f str,
    skipped: Vec<Skipped>,
    /// Pointers already skipped.
    seen: HashSet<String>,
}

impl Reader<'_> {
    /// Records a skip, once per pointer.
    fn skip(&mut self, pointer: &str, reason: impl Into<String>) {
        if self.seen.insert(pointer.to_owned()) {
            self.skipped
                .push(Skipped::new(format!("{}#{pointer}", self.file), reason));
        }
    }

    /// The value as an object, or a skip.
    fn object<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(map) => Some(map),
            other => {
                self.skip(
                    at,
                    format!(
                        "entry is {}, not an object; it was not read",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// The array under `key` (empty when absent), or a skip when it has another type.
    fn list<'v>(&mut self, map: &'v Map<String, Value>, at: &str, key: &str) -> &'v [Value] {
        match map.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(list)) => list,
            Some(other) => {
                self.skip(
                    &format!("{at}/{}", pointer_token(key)),
                    format!(
                        "{key} is {}, not an array; its entries were not read",
                        type_name(other)
                    ),
                );
                &[]
            }
        }
    }

    /// The string under `key` (`None` when absent), or a skip when it has another type.
    fn string(&mut self, map: &Map<String, Value>, at: &str, key: &str) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.skip(
                    &format!("{at}/{}", pointer_token(key)),
                    format!("{key} is {}, not a string", type_name(other)),
                );
                None
            }
        }
    }
}
