//! The scope index: policies grouped by their principal and resource scope, so a request only
//! evaluates the policies whose scope can match it, with Cedar's decision rules applied over
//! the candidates.
//!
//! Cedar evaluates every policy of a set for every request, which costs microseconds per
//! policy. Most policies name their principal or resource in the scope (`principal ==`,
//! `principal in`, `resource in`, `is`), and such a policy can only match a request whose
//! principal (resource) is that entity or one of its descendants, or has that type. The index
//! keys each policy by those two scope constraints; a request looks up the keys that its
//! principal and resource can satisfy and evaluates only those groups. Every candidate still
//! runs through Cedar's evaluator in full, so the index only needs to be sound (never drop a
//! policy that could match); it does not decide anything itself.
//!
//! Cedar's answer for the whole set is then recomposed from the candidates as Cedar's
//! authorizer composes it: deny when any forbid matched (the forbids are the reasons), else
//! allow when any permit matched (the permits are the reasons), else default deny. A policy
//! whose scope does not match cannot error (scope constraints evaluate first and cannot fail),
//! so no error is lost either.
//!
//! The candidates are evaluated with one Cedar evaluator per request, each policy through the
//! condition Cedar's authorizer would build for it (scope constraints conjoined with the
//! `when` and `unless` clauses). The authorizer rebuilds that expression for every policy of
//! every request; here it is built once, when the set is loaded.

use std::collections::{HashMap, HashSet};

use cedar_policy::{Policy, PrincipalConstraint, ResourceConstraint};
use cedar_policy_core::ast::{self, EntityType, EntityUID, Literal, ValueKind};
use cedar_policy_core::authorizer::AuthorizationError;
use cedar_policy_core::entities::Entities;
use cedar_policy_core::est;
use cedar_policy_core::evaluator::{EvaluationError, Evaluator};
use cedar_policy_core::extensions::Extensions;

use crate::decision::{Decision, Explanation};
use crate::near_miss::{PermitParts, near_misses};

/// What a scope constraint requires of the principal (or resource).
enum ScopeKey {
    /// No constraint: every request is a candidate.
    Any,
    /// `is T`: the entity has type `T`.
    Type(EntityType),
    /// `== E`, `in E` or `is T in E`: the entity is `E` or a descendant of `E`.
    Under(EntityUID),
}

impl ScopeKey {
    fn for_principal(constraint: PrincipalConstraint) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Is(ty) => Self::Type(ty.as_ref().clone()),
            PrincipalConstraint::Eq(uid)
            | PrincipalConstraint::In(uid)
            | PrincipalConstraint::IsIn(_, uid) => Self::Under(uid.as_ref().clone()),
        }
    }

    fn for_resource(constraint: ResourceConstraint) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Is(ty) => Self::Type(ty.as_ref().clone()),
            ResourceConstraint::Eq(uid)
            | ResourceConstraint::In(uid)
            | ResourceConstraint::IsIn(_, uid) => Self::Under(uid.as_ref().clone()),
        }
    }
}

/// The request's principal (or resource) as the index sees it: its type, and its uid followed
/// by every one of its ancestors. A policy is a candidate when its scope key is `Any`, that
/// type, or one of those uids.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) ty: &'a EntityType,
    pub(crate) uids: &'a [EntityUID],
}

/// Values keyed by scope, looked up by the keys an entity satisfies.
struct Axis<T> {
    any: Option<T>,
    by_type: HashMap<EntityType, T>,
    under: HashMap<EntityUID, T>,
}

impl<T> Default for Axis<T> {
    fn default() -> Self {
        Self {
            any: None,
            by_type: HashMap::new(),
            under: HashMap::new(),
        }
    }
}

impl<T: Default> Axis<T> {
    fn entry(&mut self, key: ScopeKey) -> &mut T {
        match key {
            ScopeKey::Any => self.any.get_or_insert_with(T::default),
            ScopeKey::Type(ty) => self.by_type.entry(ty).or_default(),
            ScopeKey::Under(uid) => self.under.entry(uid).or_default(),
        }
    }
}

impl<T> Axis<T> {
    /// Calls `f` with every value whose key `scope` satisfies, each value once (a uid repeated
    /// in `scope` is skipped).
    fn matching<'s>(&'s self, scope: Scope<'_>, mut f: impl FnMut(&'s T)) {
        if let Some(value) = &self.any {
            f(value);
        }
        if !self.by_type.is_empty()
            && let Some(value) = self.by_type.get(scope.ty)
        {
            f(value);
        }
        if self.under.is_empty() {
            return;
        }
        for (i, uid) in scope.uids.iter().enumerate() {
            if scope.uids.iter().take(i).any(|u| u == uid) {
                continue;
            }
            if let Some(value) = self.under.get(uid) {
                f(value);
            }
        }
    }
}

/// One policy, ready to evaluate.
struct Indexed {
    /// The id as the public API spells it (`PolicyId`'s `Display`).
    id: String,
    policy: ast::Policy,
    /// `policy.condition()`, the expression Cedar's authorizer evaluates for the policy.
    condition: ast::Expr,
}

impl Indexed {
    fn new(policy: &Policy) -> Self {
        let core: &ast::Policy = policy.as_ref();
        let condition = core.condition();
        Self {
            id: policy.id().to_string(),
            condition: without_locations(core, &condition).unwrap_or(condition),
            policy: core.clone(),
        }
    }

    /// Whether the policy is satisfied, as Cedar's evaluator answers it. Anything but a boolean
    /// value is answered by Cedar's own `Evaluator::evaluate` over the policy, which evaluates
    /// the same expression and so reports the same error; a residual (impossible without
    /// unknowns, which no request here carries) is an error there too.
    fn satisfied(&self, evaluator: &Evaluator<'_>) -> Result<bool, Box<EvaluationError>> {
        if let Ok(value) = evaluator.interpret(&self.condition, self.policy.env())
            && let ValueKind::Lit(Literal::Bool(satisfied)) = value.value_kind()
        {
            return Ok(*satisfied);
        }
        evaluator.evaluate(&self.policy).map_err(Box::new)
    }
}

/// `condition` without source locations, or `None` when that copy cannot be made.
///
/// The evaluator gives every value it computes the location of its expression, which takes
/// and drops a reference on the policy file's text per node (a count all threads share); a
/// boolean answer does not use them. Errors are reported from the policy itself (see
/// [`Indexed::satisfied`]), so their locations stay. The copy goes through Cedar's JSON
/// policy structure (which has no locations) and back, and is used only when it equals the
/// original node for node (expression equality ignores locations).
fn without_locations(policy: &ast::Policy, condition: &ast::Expr) -> Option<ast::Expr> {
    let copy = est::Policy::from(policy.clone())
        .try_into_ast_policy(Some(policy.id().clone()))
        .ok()?;
    let stripped = copy.condition();
    (stripped == *condition).then_some(stripped)
}

/// Policies grouped by (principal scope, resource scope).
pub(crate) struct ScopeIndex {
    groups: Axis<Axis<Vec<Indexed>>>,
    /// Every permit policy taken apart, for the near misses of a default deny.
    permits: Vec<PermitParts>,
    /// Positions in `permits` by principal scope key, and by resource scope key. A near miss
    /// has at most one scope part outside, so its principal or its resource key matches.
    permits_by_principal: Axis<Vec<usize>>,
    permits_by_resource: Axis<Vec<usize>>,
}

impl ScopeIndex {
    /// Groups `policies`; their ids must be unique (a duplicate is returned as the error).
    pub(crate) fn build<'a>(policies: impl Iterator<Item = &'a Policy>) -> Result<Self, String> {
        let mut groups: Axis<Axis<Vec<Indexed>>> = Axis::default();
        let mut seen = HashSet::new();
        let mut permits = Vec::new();
        let mut permits_by_principal: Axis<Vec<usize>> = Axis::default();
        let mut permits_by_resource: Axis<Vec<usize>> = Axis::default();
        for policy in policies {
            let indexed = Indexed::new(policy);
            if !seen.insert(indexed.id.clone()) {
                return Err(indexed.id);
            }
            if let Some(parts) = PermitParts::new(policy) {
                let at = permits.len();
                permits.push(parts);
                permits_by_principal
                    .entry(ScopeKey::for_principal(policy.principal_constraint()))
                    .push(at);
                permits_by_resource
                    .entry(ScopeKey::for_resource(policy.resource_constraint()))
                    .push(at);
            }
            let principal = ScopeKey::for_principal(policy.principal_constraint());
            let resource = ScopeKey::for_resource(policy.resource_constraint());
            groups.entry(principal).entry(resource).push(indexed);
        }
        Ok(Self {
            groups,
            permits,
            permits_by_principal,
            permits_by_resource,
        })
    }

    /// The permits whose principal or resource scope key the request satisfies, each once:
    /// every permit that can have at most one scope part outside.
    fn near_miss_candidates(&self, principal: Scope<'_>, resource: Scope<'_>) -> Vec<&PermitParts> {
        let mut at: Vec<usize> = Vec::new();
        self.permits_by_principal
            .matching(principal, |positions| at.extend(positions));
        self.permits_by_resource
            .matching(resource, |positions| at.extend(positions));
        at.sort_unstable();
        at.dedup();
        at.into_iter().filter_map(|i| self.permits.get(i)).collect()
    }

    /// Cedar's decision over every indexed policy, evaluating only the candidates of
    /// `principal` and `resource` (see [`Scope`]). Any evaluation error denies (fail closed),
    /// even when a permit matched. With `find_near_misses`, a default deny also names the
    /// permits that came closest (see [`crate::NearMiss`]); nothing else is affected.
    pub(crate) fn explain(
        &self,
        request: ast::Request,
        entities: &Entities,
        principal: Scope<'_>,
        resource: Scope<'_>,
        find_near_misses: bool,
    ) -> Explanation {
        let evaluator = Evaluator::new(request, entities, Extensions::all_available());
        let mut tally = Tally::default();
        self.groups.matching(principal, |by_resource| {
            by_resource.matching(resource, |group| {
                for policy in group {
                    tally.add(policy, policy.satisfied(&evaluator));
                }
            });
        });
        let mut explanation = tally.finish();
        if find_near_misses && explanation.is_default_deny() {
            let candidates = self.near_miss_candidates(principal, resource);
            explanation.near_misses = near_misses(candidates, &evaluator);
        }
        explanation
    }
}

/// The running sums of the policy answers.
#[derive(Default)]
struct Tally {
    permits: Vec<String>,
    forbids: Vec<String>,
    errors: Vec<String>,
    errored: Vec<String>,
    evaluated: usize,
}

impl Tally {
    fn add(&mut self, policy: &Indexed, satisfied: Result<bool, Box<EvaluationError>>) {
        self.evaluated += 1;
        match satisfied {
            Ok(false) => {}
            Ok(true) => match policy.policy.effect() {
                ast::Effect::Permit => self.permits.push(policy.id.clone()),
                ast::Effect::Forbid => self.forbids.push(policy.id.clone()),
            },
            Err(error) => {
                self.errored.push(policy.id.clone());
                // Worded as Cedar's authorizer words it in its response.
                let error = cedar_policy::AuthorizationError::from(
                    AuthorizationError::PolicyEvaluationError {
                        id: policy.policy.id().clone(),
                        error: *error,
                    },
                );
                self.errors.push(error.to_string());
            }
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
            near_misses: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};

    use super::*;
    use crate::policy_set::{Naming, ParsedPolicies, Source};

    /// Unvalidated on purpose: some of these error at evaluation time.
    const POLICIES: &str = r#"
        @id("everyone") permit (principal, action, resource);
        @id("owner") permit (principal == User::"alice", action, resource)
            when { resource.owner == principal };
        @id("banned") forbid (principal in Group::"banned", action, resource);
        @id("overflow") forbid (principal, action, resource is Doc)
            when { resource.size * 9223372036854775807 > 0 };
        @id("missing") permit (principal, action == Action::"edit", resource)
            when { principal.missing == 1 };
        @id("not-bool") permit (principal is User, action, resource in Folder::"f") when { 1 };
        @id("secret") forbid (principal is User, action, resource in Folder::"secret")
            unless { context.clearance > 3 };
        @id("typed") permit (principal is Robot, action, resource is Doc);
        @id("robot-in") forbid (principal is Robot in Group::"banned", action, resource)
            when { resource.size < 0 };
    "#;

    const ENTITIES: &str = r#"[
        {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "bob"}, "attrs": {},
         "parents": [{"type": "Group", "id": "banned"}]},
        {"uid": {"type": "Robot", "id": "r2"}, "attrs": {},
         "parents": [{"type": "Group", "id": "banned"}]},
        {"uid": {"type": "Doc", "id": "big"},
         "attrs": {"size": 2, "owner": {"__entity": {"type": "User", "id": "alice"}}},
         "parents": [{"type": "Folder", "id": "secret"}]},
        {"uid": {"type": "Doc", "id": "empty"},
         "attrs": {"size": 0, "owner": {"__entity": {"type": "User", "id": "bob"}}},
         "parents": [{"type": "Folder", "id": "f"}]},
        {"uid": {"type": "Doc", "id": "minus"},
         "attrs": {"size": -1, "owner": {"__entity": {"type": "User", "id": "alice"}}},
         "parents": [{"type": "Folder", "id": "f"}]},
        {"uid": {"type": "Folder", "id": "secret"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Folder", "id": "f"}, "attrs": {}, "parents": []}
    ]"#;

    fn uid(text: &str) -> EntityUid {
        EntityUid::from_str(text).unwrap()
    }

    fn lineage(entities: &Entities, uid: &EntityUid) -> Vec<EntityUID> {
        std::iter::once(uid)
            .chain(entities.ancestors(uid).into_iter().flatten())
            .map(|u| u.as_ref().clone())
            .collect()
    }

    fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
        let mut items: Vec<String> = items.collect();
        items.sort();
        items
    }

    /// Over every request of a small universe, the index gives Cedar's own answer over the
    /// whole set: the same determining policies, the same erroring policies with the same
    /// messages, and Cedar's decision, except that an error denies (fail closed).
    #[test]
    fn the_index_answers_as_cedar_over_the_whole_set() {
        let source = Source {
            name: "test",
            text: POLICIES,
        };
        let set = ParsedPolicies::parse(&[source], Naming::Plain).unwrap().set;
        let index = ScopeIndex::build(set.policies()).unwrap();
        let entities = Entities::from_json_str(ENTITIES, None).unwrap();
        let mut seen_errors = 0;
        let mut skipped = 0;
        for principal in [r#"User::"alice""#, r#"User::"bob""#, r#"Robot::"r2""#] {
            for action in [r#"Action::"view""#, r#"Action::"edit""#] {
                for resource in [r#"Doc::"big""#, r#"Doc::"empty""#, r#"Doc::"minus""#] {
                    for clearance in [0, 5] {
                        let (p, r) = (uid(principal), uid(resource));
                        let context = Context::from_json_value(
                            serde_json::json!({ "clearance": clearance }),
                            None,
                        )
                        .unwrap();
                        let request =
                            Request::new(p.clone(), uid(action), r.clone(), context, None).unwrap();
                        let cedar = Authorizer::new().is_authorized(&request, &set, &entities);
                        let (p_lineage, r_lineage) =
                            (lineage(&entities, &p), lineage(&entities, &r));
                        let ours = index.explain(
                            request.as_ref().clone(),
                            entities.as_ref(),
                            Scope {
                                ty: p.as_ref().entity_type(),
                                uids: &p_lineage,
                            },
                            Scope {
                                ty: r.as_ref().entity_type(),
                                uids: &r_lineage,
                            },
                            true,
                        );
                        let case = format!("{principal} {action} {resource} {clearance}");
                        let diagnostics = cedar.diagnostics();
                        let errors = sorted(diagnostics.errors().map(ToString::to_string));
                        let errored = sorted(diagnostics.errors().map(
                            |cedar_policy::AuthorizationError::PolicyEvaluationError(e)| {
                                e.policy_id().to_string()
                            },
                        ));
                        let reasons = sorted(diagnostics.reason().map(ToString::to_string));
                        assert_eq!(ours.decision.errors(), errors.as_slice(), "{case}");
                        assert_eq!(ours.errored_policies, errored, "{case}");
                        let allowed = cedar.decision() == cedar_policy::Decision::Allow;
                        assert_eq!(
                            ours.decision.is_allowed(),
                            allowed && errors.is_empty(),
                            "{case}"
                        );
                        if errors.is_empty() || !allowed {
                            assert_eq!(ours.decision.reasons(), reasons.as_slice(), "{case}");
                        }
                        // Near misses are named for a default deny only.
                        assert!(
                            ours.is_default_deny() || ours.near_misses.is_empty(),
                            "{case}"
                        );
                        seen_errors += errors.len();
                        skipped += set.num_of_policies() - ours.policies_evaluated;
                    }
                }
            }
        }
        // The universe exercises errors and the index's skipping.
        assert!(seen_errors > 0);
        assert!(skipped > 0);
    }

    /// The near misses found among the index's candidates are those found among all the
    /// permits: a permit with at most one scope part outside is always a candidate.
    #[test]
    fn near_miss_candidates_lose_nothing() {
        let source = Source {
            name: "test",
            text: r#"
                @id("alice-views") permit (principal == User::"alice", action == Action::"view",
                    resource in Folder::"f") when { resource.size > 0 };
                @id("banned-edit") permit (principal in Group::"banned",
                    action == Action::"edit", resource);
                @id("robots") permit (principal is Robot, action, resource is Doc)
                    when { context.clearance > 3 };
                @id("secret-view") permit (principal, action == Action::"view",
                    resource in Folder::"secret") unless { context.clearance < 5 };
            "#,
        };
        let set = ParsedPolicies::parse(&[source], Naming::Plain).unwrap().set;
        let index = ScopeIndex::build(set.policies()).unwrap();
        let entities = Entities::from_json_str(ENTITIES, None).unwrap();
        let mut seen = 0;
        for principal in [r#"User::"alice""#, r#"User::"bob""#, r#"Robot::"r2""#] {
            for action in [r#"Action::"view""#, r#"Action::"edit""#] {
                for resource in [r#"Doc::"big""#, r#"Doc::"empty""#, r#"Doc::"minus""#] {
                    let (p, r) = (uid(principal), uid(resource));
                    let context =
                        Context::from_json_value(serde_json::json!({ "clearance": 0 }), None)
                            .unwrap();
                    let request =
                        Request::new(p.clone(), uid(action), r.clone(), context, None).unwrap();
                    let (p_lineage, r_lineage) = (lineage(&entities, &p), lineage(&entities, &r));
                    let ours = index.explain(
                        request.as_ref().clone(),
                        entities.as_ref(),
                        Scope {
                            ty: p.as_ref().entity_type(),
                            uids: &p_lineage,
                        },
                        Scope {
                            ty: r.as_ref().entity_type(),
                            uids: &r_lineage,
                        },
                        true,
                    );
                    if !ours.is_default_deny() {
                        continue;
                    }
                    let evaluator = Evaluator::new(
                        request.as_ref().clone(),
                        entities.as_ref(),
                        Extensions::all_available(),
                    );
                    let all = near_misses(index.permits.iter().collect(), &evaluator);
                    let case = format!("{principal} {action} {resource}");
                    assert_eq!(ours.near_misses, all, "{case}");
                    seen += all.len();
                }
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn conditions_are_kept_without_locations() {
        let set = PolicySet::from_str(POLICIES).unwrap();
        for policy in set.policies() {
            let indexed = Indexed::new(policy);
            let original = AsRef::<ast::Policy>::as_ref(policy).condition();
            assert!(original.source_loc().is_some());
            assert!(indexed.condition.source_loc().is_none(), "{}", indexed.id);
            assert_eq!(indexed.condition, original);
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let a = PolicySet::from_str(r#"@id("x") permit (principal, action, resource);"#).unwrap();
        let policy = a.policies().next().unwrap();
        assert_eq!(
            ScopeIndex::build([policy, policy].into_iter()).err(),
            Some("policy0".to_owned())
        );
    }
}
