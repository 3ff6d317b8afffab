//! `aws iam get-account-authorization-details` output.

use serde_json::Value;
use tenet_finding::Skipped;

use crate::account::{Account, Kind, Principal};

/// Reads a dump into the account.
pub(crate) fn read(account: &mut Account, file: &str, dump: &Value) {
    for (i, p) in list(dump, "Policies").iter().enumerate() {
        let arn = str_of(p, "Arn").or_else(|| str_of(p, "PolicyName"));
        let Some(arn) = arn else {
            account.skipped.push(Skipped::new(
                format!("{file}#/Policies/{i}"),
                "policy without Arn or PolicyName",
            ));
            continue;
        };
        let versions = list(p, "PolicyVersionList");
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
            account.skipped.push(Skipped::new(
                format!("{file}#/Policies/{i}"),
                format!("policy {arn} has no default version document"),
            ));
            continue;
        };
        let pointer = format!("/Policies/{i}/PolicyVersionList/{j}/Document");
        if let Some(d) = account.add_doc(file, &pointer, None, &arn, doc, false, false) {
            account.managed.insert(arn.clone(), d);
            if let Some(name) = str_of(p, "PolicyName") {
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
        for (i, entry) in list(dump, section).iter().enumerate() {
            let at = format!("/{section}/{i}");
            let Some(name) = str_of(entry, name_key) else {
                account.skipped.push(Skipped::new(
                    format!("{file}#{at}"),
                    format!("entry without {name_key}"),
                ));
                continue;
            };
            let arn = str_of(entry, "Arn").unwrap_or_else(|| name.clone());
            let mut inline = Vec::new();
            for (j, pol) in list(entry, list_key).iter().enumerate() {
                let pname = str_of(pol, "PolicyName").unwrap_or_else(|| format!("#{j}"));
                if let Some(doc) = pol.get("PolicyDocument") {
                    let pointer = format!("{at}/{list_key}/{j}/PolicyDocument");
                    let subject = format!("{arn} inline policy {pname}");
                    if let Some(d) =
                        account.add_doc(file, &pointer, None, &subject, doc, false, false)
                    {
                        inline.push(d);
                    }
                }
            }
            let managed = list(entry, "AttachedManagedPolicies")
                .iter()
                .filter_map(|m| str_of(m, "PolicyArn").or_else(|| str_of(m, "PolicyName")))
                .collect();
            let groups = list(entry, "GroupList")
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect();
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
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}
