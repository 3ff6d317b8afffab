//! Least-privilege advice for a Resource "*": per action, the resource types it requires and
//! their ARN templates, most relevant first; for `iam:PassRole` the role ARN and the
//! `iam:PassedToService` condition.

use std::collections::BTreeSet;

use crate::catalogue::{AccessLevel, Action, ActionSet, Service, catalogue};
use crate::policy::{ActionMatch, Statement};

/// How many actions the advice spells out; the rest are counted.
const SHOWN_ACTIONS: usize = 6;

/// The remediation for an Allow with NotAction: ARNs cannot be suggested for everything.
pub const NOT_ACTION_ADVICE: &str = "list the actions the holder needs in Action instead of \
     excluding some with NotAction, then narrow Resource to the ARNs those actions require";

/// The remediation for a statement that grants `actions` (which change resources) on
/// Resource "*".
pub fn narrow_resource(s: &Statement, actions: &ActionSet) -> String {
    if let ActionMatch::NotActions(_) = s.action {
        return NOT_ACTION_ADVICE.to_owned();
    }
    let c = catalogue();
    let mut services: Option<Vec<String>> = None;
    let mut parts: Vec<String> = Vec::new();
    // Permissions management first (who may do what), then writes, then tagging; in catalogue
    // order within each. Only the actions shown are picked, the others are counted.
    let rank = |id: usize| {
        c.actions.get(id).map(|a| match a.level {
            AccessLevel::PermissionsManagement => 0,
            AccessLevel::Write => 1,
            _ => 2,
        })
    };
    let total = actions.len();
    let mut shown: Vec<usize> = Vec::with_capacity(SHOWN_ACTIONS);
    for wanted in [None, Some(0), Some(1), Some(2)] {
        let room = SHOWN_ACTIONS.saturating_sub(shown.len());
        shown.extend(actions.iter().filter(|&id| rank(id) == wanted).take(room));
    }
    for &id in &shown {
        let Some(a) = c.actions.get(id) else { continue };
        let name = c.name(id);
        let svc = c.service_of(a);
        let types = ranked_types(a, svc);
        let Some(first) = types.first() else {
            continue;
        };
        let mut line = format!("{name} on {}", first.arn);
        if name.eq_ignore_ascii_case("iam:PassRole") {
            let services = services.get_or_insert_with(|| passed_to_services(actions));
            line.push_str(&pass_role_condition(services));
        }
        let also: Vec<&str> = types
            .iter()
            .skip(1)
            .filter(|k| k.required)
            .map(|k| k.name)
            .collect();
        if !also.is_empty() {
            line.push_str(&format!(
                " (it also requires {} ARNs, or \"*\" for them)",
                also.join(", ")
            ));
        }
        parts.push(line);
    }
    let mut out = format!(
        "narrow Resource per action to the resource types it requires: {}",
        parts.join("; ")
    );
    if total > SHOWN_ACTIONS {
        out.push_str(&format!(
            "; and {} more actions, each on the resource types the Service Authorization \
             Reference lists for it",
            total - SHOWN_ACTIONS
        ));
    }
    out
}

/// One resource type an action takes.
struct Takes<'a> {
    name: &'a str,
    arn: &'a str,
    required: bool,
}

/// The action's resource types: required ones first, then those whose name the action's
/// name contains (`RunInstances` → `instance`), then in catalogue order. Without required
/// types only the most relevant optional one is kept.
fn ranked_types<'a>(a: &Action, svc: &'a Service) -> Vec<Takes<'a>> {
    let action = normalise(&a.name);
    let mut types: Vec<(usize, Takes<'a>)> = a
        .resource_types
        .iter()
        .filter_map(|&(t, required)| {
            let r = svc.resources.get(t)?;
            Some((
                t,
                Takes {
                    name: &r.name,
                    arn: &r.arn,
                    required,
                },
            ))
        })
        .collect();
    types.sort_by_key(|(t, k)| (!k.required, !action.contains(&normalise(k.name)), *t));
    let any_required = types.iter().any(|(_, k)| k.required);
    types
        .into_iter()
        .map(|(_, k)| k)
        .filter(|k| k.required || !any_required)
        .take(if any_required { usize::MAX } else { 1 })
        .collect()
}

/// Lowercase without separators, singular enough to find `instance` in `runinstances`.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The service principals a role would be passed to, guessed from the other services of the
/// statement (`ec2:RunInstances` → `ec2.amazonaws.com`).
fn passed_to_services(actions: &ActionSet) -> Vec<String> {
    let c = catalogue();
    // Actions are numbered contiguously per service: each prefix is copied once.
    let mut names: Vec<&str> = actions
        .iter()
        .filter_map(|id| c.actions.get(id).map(|a| c.service_of(a).prefix.as_str()))
        .collect();
    names.dedup();
    let prefixes: BTreeSet<String> = names
        .into_iter()
        .filter(|p| *p != "iam" && *p != "sts")
        .map(str::to_owned)
        .collect();
    prefixes
        .into_iter()
        .map(|p| match p.as_str() {
            "ecs" => "ecs-tasks.amazonaws.com".to_owned(),
            other => format!("{other}.amazonaws.com"),
        })
        .collect()
}

fn pass_role_condition(services: &[String]) -> String {
    let example = if services.is_empty() {
        "the service that needs it, e.g. ec2.amazonaws.com".to_owned()
    } else {
        services.join(", ")
    };
    format!(
        " naming only the roles meant to be passed, with a Condition StringEquals \
         iam:PassedToService = {example}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn advice(statement: &str) -> String {
        let p = Policy::from_text("t", &format!(r#"{{"Statement":[{statement}]}}"#)).unwrap();
        let s = &p.statements[0];
        narrow_resource(s, &s.actions)
    }

    /// The user report: RunInstances + PassRole got capacity-reservation and elastic-gpu ARNs
    /// and no role ARN.
    #[test]
    fn run_instances_and_pass_role() {
        let text = advice(
            r#"{"Effect":"Allow","Action":["ec2:RunInstances","iam:PassRole"],"Resource":"*"}"#,
        );
        assert!(
            text.contains(
                "ec2:RunInstances on arn:${Partition}:ec2:${Region}:${Account}:instance/"
            ),
            "{text}"
        );
        assert!(
            text.contains("iam:PassRole on arn:${Partition}:iam::${Account}:role/"),
            "{text}"
        );
        assert!(
            text.contains("iam:PassedToService = ec2.amazonaws.com"),
            "{text}"
        );
        assert!(!text.contains("capacity-reservation"), "{text}");
        assert!(!text.contains("elastic-gpu"), "{text}");
    }

    #[test]
    fn not_action_asks_for_actions() {
        let text = advice(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#);
        assert!(text.starts_with("list the actions"), "{text}");
        assert!(!text.contains("inspector2"), "{text}");
    }
}
