//! Request evaluation with AWS's rules: an explicit Deny in any policy wins, then an Allow in
//! any identity or resource policy allows, otherwise the request is implicitly denied.

use crate::condition::Context;
use crate::pattern::glob_match;
use crate::policy::{ActionMatch, Effect, Policy, Principals, ResourceMatch, Statement};

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The caller's ARN (`arn:aws:iam::111122223333:user/alice`).
    pub principal: &'a str,
    /// `service:Action`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: &'a str,
    /// Condition keys and values.
    pub context: Context,
}

/// Names one statement: the index of its policy in the list given to [`evaluate`] (identity
/// policies first, then resource policies) and its pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// Index of the policy.
    pub policy: usize,
    /// JSON pointer of the statement.
    pub pointer: String,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by these statements.
    Allow(Vec<StatementRef>),
    /// Denied by these Deny statements.
    ExplicitDeny(Vec<StatementRef>),
    /// No statement allowed it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Evaluates a request against the caller's identity policies and the resource's policies
/// (same-account semantics: an Allow in either is enough; any Deny in either wins).
pub fn evaluate(request: &Request<'_>, identity: &[&Policy], resource: &[&Policy]) -> Decision {
    let mut allows = Vec::new();
    let mut denies = Vec::new();
    let all = identity
        .iter()
        .map(|p| (p, false))
        .chain(resource.iter().map(|p| (p, true)));
    for (index, (policy, is_resource_policy)) in all.enumerate() {
        for s in &policy.statements {
            if !statement_applies(s, request, is_resource_policy) {
                continue;
            }
            let r = StatementRef {
                policy: index,
                pointer: s.pointer.clone(),
            };
            match s.effect {
                Effect::Deny => denies.push(r),
                Effect::Allow => allows.push(r),
            }
        }
    }
    // Every policy is read before deciding: a Deny anywhere overrides any Allow.
    if !denies.is_empty() {
        Decision::ExplicitDeny(denies)
    } else if !allows.is_empty() {
        Decision::Allow(allows)
    } else {
        Decision::ImplicitDeny
    }
}

/// Whether a statement matches the request (action, resource, principal, conditions).
pub fn statement_applies(s: &Statement, request: &Request<'_>, resource_policy: bool) -> bool {
    let action = request.action.to_ascii_lowercase();
    let action_hit = match &s.action {
        ActionMatch::Actions(p) => p
            .iter()
            .any(|p| glob_match(&p.to_ascii_lowercase(), &action)),
        ActionMatch::NotActions(p) => !p
            .iter()
            .any(|p| glob_match(&p.to_ascii_lowercase(), &action)),
    };
    if !action_hit {
        return false;
    }
    let resource_hit = |list: &[String]| {
        list.iter()
            .any(|p| glob_match(&request.context.substitute(p), request.resource))
    };
    let resource_ok = match &s.resource {
        ResourceMatch::Resources(list) => resource_hit(list),
        ResourceMatch::NotResources(list) => !resource_hit(list),
        ResourceMatch::Absent => true,
    };
    if !resource_ok {
        return false;
    }
    if resource_policy {
        let principal_ok = match (&s.principal, &s.not_principal) {
            (Some(p), _) => principal_matches(p, request.principal),
            (None, Some(np)) => !principal_matches(np, request.principal),
            (None, None) => false,
        };
        if !principal_ok {
            return false;
        }
    }
    s.conditions.iter().all(|c| c.matches(&request.context))
}

/// Whether a Principal element names the caller: `*`, the caller's ARN, or the caller's
/// account (`111122223333` or `arn:aws:iam::111122223333:root`).
pub fn principal_matches(p: &Principals, caller: &str) -> bool {
    let Principals::Typed(list) = p else {
        return true;
    };
    let account = caller.split(':').nth(4).unwrap_or_default();
    list.iter()
        .filter(|(kind, _)| kind == "AWS")
        .flat_map(|(_, values)| values)
        .any(|v| {
            v == "*"
                || v == caller
                || (!account.is_empty()
                    && (v == account || *v == format!("arn:aws:iam::{account}:root")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Policy {
        Policy::from_text("t", text).unwrap()
    }

    #[test]
    fn deny_in_identity_beats_allow_in_resource_policy() {
        let id = p(
            r#"{"Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/secret/*"}]}"#,
        );
        let bucket = p(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/user-A"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#,
        );
        let req = |r| Request {
            principal: "arn:aws:iam::111122223333:user/user-A",
            action: "s3:GetObject",
            resource: r,
            context: Context::new(),
        };
        assert!(matches!(
            evaluate(
                &req("arn:aws:s3:::reports/secret/q1.csv"),
                &[&id],
                &[&bucket]
            ),
            Decision::ExplicitDeny(_)
        ));
        assert!(
            evaluate(
                &req("arn:aws:s3:::reports/public/q1.csv"),
                &[&id],
                &[&bucket]
            )
            .is_allowed()
        );
    }
}
