//! The scope index: policies grouped by their principal and resource scope, so a request only
//! evaluates the policies whose scope can match it, with Cedar's decision rules applied over
//! the groups.
//!
//! Cedar evaluates every policy of a set for every request, which costs microseconds per
//! policy. Most policies name their principal or resource in the scope (`principal ==`,
//! `principal in`, `resource in`, `is`), and such a policy can only match a request whose
//! principal (resource) is that entity or one of its descendants, or has that type. The index
//! keys each policy by those two scope constraints; a request looks up the keys that its
//! principal and resource can satisfy and evaluates only those groups, each as its own Cedar
//! policy set. Every candidate still runs through Cedar in full, so the index only needs to be
//! sound (never drop a policy that could match); it does not decide anything itself.
//!
//! Cedar's answer for the whole set is then recomposed from the groups: deny when any forbid
//! matched (the forbids are the reasons), else allow when any permit matched (the permits are
//! the reasons), else default deny. A policy whose scope does not match cannot error (scope
//! constraints evaluate first and cannot fail), so no error is lost either.

use std::collections::HashMap;

use cedar_policy::{
    Authorizer, Entities, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
    Request, ResourceConstraint,
};

use crate::decision::{Decision, Explanation};

/// What a scope constraint requires of the principal (or resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ScopeKey {
    /// No constraint: every request is a candidate.
    Any,
    /// `is T`: the entity has type `T`.
    Type(EntityTypeName),
    /// `== E`, `in E` or `is T in E`: the entity is `E` or a descendant of `E`.
    Under(EntityUid),
}

impl ScopeKey {
    fn for_principal(constraint: PrincipalConstraint) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Is(ty) => Self::Type(ty),
            PrincipalConstraint::Eq(uid)
            | PrincipalConstraint::In(uid)
            | PrincipalConstraint::IsIn(_, uid) => Self::Under(uid),
        }
    }

    fn for_resource(constraint: ResourceConstraint) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Is(ty) => Self::Type(ty),
            ResourceConstraint::Eq(uid)
            | ResourceConstraint::In(uid)
            | ResourceConstraint::IsIn(_, uid) => Self::Under(uid),
        }
    }
}

/// The keys a request entity can satisfy: `Any`, its type, itself and each of its ancestors.
pub(crate) fn candidate_keys<'a>(
    uid: &EntityUid,
    ancestors: impl Iterator<Item = &'a EntityUid>,
) -> Vec<ScopeKey> {
    let mut keys = vec![
        ScopeKey::Any,
        ScopeKey::Type(uid.type_name().clone()),
        ScopeKey::Under(uid.clone()),
    ];
    keys.extend(ancestors.map(|a| ScopeKey::Under(a.clone())));
    keys
}

/// Policies grouped by (principal scope, resource scope).
pub(crate) struct ScopeIndex {
    groups: HashMap<ScopeKey, HashMap<ScopeKey, PolicySet>>,
    authorizer: Authorizer,
}

impl ScopeIndex {
    /// Groups `policies`; their ids must be unique (a duplicate is returned as the error).
    pub(crate) fn build<'a>(policies: impl Iterator<Item = &'a Policy>) -> Result<Self, String> {
        let mut groups: HashMap<ScopeKey, HashMap<ScopeKey, PolicySet>> = HashMap::new();
        for policy in policies {
            let principal = ScopeKey::for_principal(policy.principal_constraint());
            let resource = ScopeKey::for_resource(policy.resource_constraint());
            groups
                .entry(principal)
                .or_default()
                .entry(resource)
                .or_default()
                .add(policy.clone())
                .map_err(|_| policy.id().to_string())?;
        }
        Ok(Self {
            groups,
            authorizer: Authorizer::new(),
        })
    }

    /// Cedar's decision over every indexed policy, evaluating only the candidate groups.
    ///
    /// `principal` and `resource` are the keys the request's principal and resource satisfy
    /// (see [`candidate_keys`]); repeated keys are skipped. Any evaluation error denies (fail
    /// closed), even when a permit matched.
    pub(crate) fn explain(
        &self,
        request: &Request,
        entities: &Entities,
        principal: &[ScopeKey],
        resource: &[ScopeKey],
    ) -> Explanation {
        let mut tally = Tally::default();
        for (i, pkey) in principal.iter().enumerate() {
            let Some(by_resource) = self.groups.get(pkey) else {
                continue;
            };
            if principal.iter().take(i).any(|k| k == pkey) {
                continue;
            }
            for (j, rkey) in resource.iter().enumerate() {
                let Some(set) = by_resource.get(rkey) else {
                    continue;
                };
                if resource.iter().take(j).any(|k| k == rkey) {
                    continue;
                }
                tally.add(set, self.authorizer.is_authorized(request, set, entities));
            }
        }
        tally.finish()
    }
}

/// The running sums of the group answers.
#[derive(Default)]
struct Tally {
    permits: Vec<String>,
    forbids: Vec<String>,
    errors: Vec<String>,
    errored: Vec<String>,
    evaluated: usize,
}

impl Tally {
    fn add(&mut self, set: &PolicySet, response: cedar_policy::Response) {
        self.evaluated += set.num_of_policies();
        let diagnostics = response.diagnostics();
        // On allow the reasons are the matching permits; on deny, the matching forbids.
        let reasons = match response.decision() {
            cedar_policy::Decision::Allow => &mut self.permits,
            cedar_policy::Decision::Deny => &mut self.forbids,
        };
        reasons.extend(diagnostics.reason().map(ToString::to_string));
        for error in diagnostics.errors() {
            let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = error;
            self.errored.push(e.policy_id().to_string());
            self.errors.push(error.to_string());
        }
    }

    fn finish(mut self) -> Explanation {
        for ids in [
            &mut self.permits,
            &mut self.forbids,
            &mut self.errors,
            &mut self.errored,
        ] {
            ids.sort_unstable();
            ids.dedup();
        }
        let decision = if !self.forbids.is_empty() || !self.errors.is_empty() {
            Decision::Deny {
                policies: self.forbids,
                errors: self.errors,
            }
        } else if !self.permits.is_empty() {
            Decision::Allow {
                policies: self.permits,
            }
        } else {
            Decision::Deny {
                policies: Vec::new(),
                errors: Vec::new(),
            }
        };
        Explanation {
            decision,
            errored_policies: self.errored,
            policies_evaluated: self.evaluated,
        }
    }
}
