//! IAM resources of a Terraform module: policies (including `aws_iam_policy_document` data
//! sources), users, groups, roles, inline policies, attachments and memberships.

use serde_json::{Map, Value, json};
use tenet_finding::Skipped;
use tenet_terraform::{Block, Mode, Module, nested_in, reference_target};

use crate::account::{Account, Kind, Principal};

/// Reads every IAM block of the module.
pub(crate) fn read(account: &mut Account, module: &Module) {
    account.skipped.extend(module.skipped.iter().cloned());
    // Managed policies first, so attachments can find them.
    let mut policies = Vec::new();
    for b in module
        .blocks
        .iter()
        .filter(|b| b.mode == Mode::Resource && b.kind == "aws_iam_policy")
    {
        let Some(doc) = policy_value(module, b, "policy", account) else {
            continue;
        };
        if let Some(d) =
            account.add_doc(&b.file, &b.address, b.line, &b.address, &doc, false, false)
        {
            policies.push(d);
            account.managed.insert(format!("${{{}.arn}}", b.address), d);
            account.managed.insert(format!("${{{}.id}}", b.address), d);
            if let Some(name) = b.str_attr("name") {
                account.managed.entry(name.to_owned()).or_insert(d);
            }
        }
    }
    for b in module.blocks.iter().filter(|b| b.mode == Mode::Resource) {
        let kind = match b.kind.as_str() {
            "aws_iam_user" => Kind::User,
            "aws_iam_group" => Kind::Group,
            "aws_iam_role" => Kind::Role,
            _ => continue,
        };
        // Findings name the block by its address, with its name where it is a literal (an
        // interpolation such as "${var.prefix}-role" is only known at apply time).
        let raw_name = b.str_attr("name").map(str::to_owned);
        let literal = raw_name.clone().filter(|n| !n.contains("${"));
        let display = match &literal {
            Some(n) => format!("{} ({n})", b.address),
            None => b.address.clone(),
        };
        let mut p = Principal {
            kind,
            name: literal.unwrap_or_else(|| b.address.clone()),
            arn: format!("${{{}.arn}}", b.address),
            display,
            aliases: ["arn", "name", "id", "unique_id"]
                .iter()
                .map(|a| format!("${{{}.{a}}}", b.address))
                .chain([raw_name.unwrap_or_else(|| b.name.clone())])
                .collect(),
            file: b.file.clone(),
            pointer: b.address.clone(),
            line: b.line,
            inline: Vec::new(),
            managed: string_list(b.attr("managed_policy_arns")),
            groups: Vec::new(),
            trust: None,
        };
        if kind == Kind::Role
            && let Some(doc) = policy_value(module, b, "assume_role_policy", account)
        {
            p.trust = account.add_doc(
                &b.file,
                &format!("{}.assume_role_policy", b.address),
                b.line,
                &format!("{} trust policy", b.address),
                &doc,
                false,
                true,
            );
        }
        for (i, inline) in b.nested("inline_policy").into_iter().enumerate() {
            if let Some(text) = inline.get("policy")
                && let Some(doc) = resolve_doc(module, text, account, b)
            {
                let at = format!("{}.inline_policy[{i}]", b.address);
                if let Some(d) = account.add_doc(&b.file, &at, b.line, &at, &doc, false, false) {
                    p.inline.push(d);
                }
            }
        }
        account.principals.push(p);
    }
    for b in module.blocks.iter().filter(|b| b.mode == Mode::Resource) {
        match b.kind.as_str() {
            "aws_iam_role_policy" | "aws_iam_user_policy" | "aws_iam_group_policy" => {
                let owner_attr = match b.kind.as_str() {
                    "aws_iam_role_policy" => "role",
                    "aws_iam_user_policy" => "user",
                    _ => "group",
                };
                let Some(doc) = policy_value(module, b, "policy", account) else {
                    continue;
                };
                let Some(d) =
                    account.add_doc(&b.file, &b.address, b.line, &b.address, &doc, false, false)
                else {
                    continue;
                };
                let owner = b.str_attr(owner_attr).unwrap_or_default().to_owned();
                with_principal(account, b, &owner, |p| p.inline.push(d));
            }
            "aws_iam_role_policy_attachment"
            | "aws_iam_user_policy_attachment"
            | "aws_iam_group_policy_attachment" => {
                let owner_attr = match b.kind.as_str() {
                    "aws_iam_role_policy_attachment" => "role",
                    "aws_iam_user_policy_attachment" => "user",
                    _ => "group",
                };
                let arn = b.str_attr("policy_arn").unwrap_or_default().to_owned();
                let owner = b.str_attr(owner_attr).unwrap_or_default().to_owned();
                with_principal(account, b, &owner, |p| p.managed.push(arn));
            }
            "aws_iam_policy_attachment" => {
                let arn = b.str_attr("policy_arn").unwrap_or_default().to_owned();
                for attr in ["users", "roles", "groups"] {
                    for owner in string_list(b.attr(attr)) {
                        with_principal(account, b, &owner, |p| p.managed.push(arn.clone()));
                    }
                }
            }
            "aws_iam_group_membership" => {
                let group = b.str_attr("group").unwrap_or_default().to_owned();
                let group_name = principal_name(account, &group).unwrap_or(group);
                for user in string_list(b.attr("users")) {
                    with_principal(account, b, &user, |p| p.groups.push(group_name.clone()));
                }
            }
            "aws_iam_user_group_membership" => {
                let user = b.str_attr("user").unwrap_or_default().to_owned();
                for group in string_list(b.attr("groups")) {
                    let group_name = principal_name(account, &group).unwrap_or(group);
                    with_principal(account, b, &user, |p| p.groups.push(group_name.clone()));
                }
            }
            _ => {}
        }
    }
    // A policy no user, group or role of the input is attached to is analysed on its own,
    // like a policy document file: its escalation paths are reported for the document.
    for d in policies {
        let attached = account.principals.iter().any(|p| {
            p.managed
                .iter()
                .any(|m| account.managed.get(m).is_some_and(|&x| x == d))
        });
        if !attached && let Some(doc) = account.docs.get_mut(d) {
            doc.standalone = true;
        }
    }
    // Standalone policy documents that nothing uses are still worth a look.
    for b in module
        .blocks
        .iter()
        .filter(|b| b.mode == Mode::Data && b.kind == "aws_iam_policy_document")
    {
        let used = module
            .blocks
            .iter()
            .any(|o| o.body.to_string().contains(&format!("{}.json", b.address)));
        if !used {
            let doc = policy_document(module, b, 0);
            account.add_doc(&b.file, &b.address, b.line, &b.address, &doc, true, false);
        }
    }
}

fn principal_name(account: &Account, reference: &str) -> Option<String> {
    account
        .principals
        .iter()
        .find(|p| p.aliases.iter().any(|a| a == reference))
        .map(|p| p.name.clone())
}

fn with_principal(account: &mut Account, b: &Block, owner: &str, f: impl FnOnce(&mut Principal)) {
    match account
        .principals
        .iter_mut()
        .find(|p| p.aliases.iter().any(|a| a == owner))
    {
        Some(p) => f(p),
        None => account.skipped.push(Skipped::new(
            format!("{}:{}", b.file, b.address),
            format!("{owner:?} does not name a user, group or role of this configuration"),
        )),
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn policy_value(module: &Module, b: &Block, attr: &str, account: &mut Account) -> Option<Value> {
    let Some(v) = b.attr(attr) else {
        account.skipped.push(Skipped::new(
            format!("{}:{}", b.file, b.address),
            format!("no {attr} attribute"),
        ));
        return None;
    };
    resolve_doc(module, v, account, b)
}

/// A policy attribute: a JSON string, an object, or a reference to an
/// `aws_iam_policy_document` data source.
fn resolve_doc(module: &Module, v: &Value, account: &mut Account, b: &Block) -> Option<Value> {
    if let Some(text) = v.as_str()
        && let Some((address, attribute)) = reference_target(text)
    {
        if let Some(target) = module.get(&address)
            && target.kind == "aws_iam_policy_document"
            && attribute == "json"
        {
            return Some(policy_document(module, target, 0));
        }
        account.skipped.push(Skipped::new(
            format!("{}:{}", b.file, b.address),
            format!("policy {text} cannot be resolved statically"),
        ));
        return None;
    }
    Some(v.clone())
}

/// Builds the JSON an `aws_iam_policy_document` data source renders.
fn policy_document(module: &Module, b: &Block, depth: usize) -> Value {
    let mut statements = Vec::new();
    // source_policy_documents are merged first, as Terraform does.
    if depth < 4 {
        for src in string_list(b.attr("source_policy_documents")) {
            let doc = match reference_target(&src) {
                Some((address, _)) => module
                    .get(&address)
                    .map(|t| policy_document(module, t, depth + 1)),
                None => serde_json::from_str(&src).ok(),
            };
            if let Some(Value::Array(list)) = doc.as_ref().and_then(|d| d.get("Statement")) {
                statements.extend(list.iter().cloned());
            }
        }
    }
    for s in b.nested("statement") {
        let mut out = Map::new();
        if let Some(sid) = s.get("sid").and_then(Value::as_str) {
            out.insert("Sid".into(), json!(sid));
        }
        out.insert(
            "Effect".into(),
            json!(s.get("effect").and_then(Value::as_str).unwrap_or("Allow")),
        );
        for (tf, aws) in [
            ("actions", "Action"),
            ("not_actions", "NotAction"),
            ("resources", "Resource"),
            ("not_resources", "NotResource"),
        ] {
            if let Some(v) = s.get(tf) {
                out.insert(aws.into(), json!(string_list(Some(v))));
            }
        }
        for (tf, aws) in [
            ("principals", "Principal"),
            ("not_principals", "NotPrincipal"),
        ] {
            let blocks = nested_in(s, tf);
            if blocks.is_empty() {
                continue;
            }
            let mut map = Map::new();
            for p in blocks {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("AWS");
                let ids = string_list(p.get("identifiers"));
                if kind == "*" {
                    out.insert(aws.into(), json!("*"));
                    continue;
                }
                let entry = map.entry(kind.to_owned()).or_insert_with(|| json!([]));
                if let Value::Array(a) = entry {
                    a.extend(ids.into_iter().map(Value::String));
                }
            }
            if !map.is_empty() {
                out.insert(aws.into(), Value::Object(map));
            }
        }
        let mut cond = Map::new();
        for c in nested_in(s, "condition") {
            let (Some(test), Some(var)) = (
                c.get("test").and_then(Value::as_str),
                c.get("variable").and_then(Value::as_str),
            ) else {
                continue;
            };
            let entry = cond.entry(test.to_owned()).or_insert_with(|| json!({}));
            if let Value::Object(m) = entry {
                m.insert(var.to_owned(), json!(string_list(c.get("values"))));
            }
        }
        if !cond.is_empty() {
            out.insert("Condition".into(), Value::Object(cond));
        }
        statements.push(Value::Object(out));
    }
    json!({"Version": b.str_attr("version").unwrap_or("2012-10-17"), "Statement": statements})
}
