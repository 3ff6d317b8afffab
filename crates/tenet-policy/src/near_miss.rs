//! Near misses: for a default deny, the permit policies that came closest to allowing the
//! request and what each of them lacked, so that an operator can tell what was missing.
//!
//! Computed only when a request is denied because no permit matched (never on the allow or
//! forbid path) and never part of the decision itself: Cedar's answer is the scope index's.
//! Each permit's parts are evaluated on their own with the request's evaluator: its principal,
//! action and resource scope, then (when the whole scope matches) each `when` and `unless`
//! clause in the policy's order. A clause evaluated alone can error where the policy did not
//! (Cedar stops at the first false clause), and is then reported as an error.
//!
//! A permit counts as close when at most one part of its scope is outside. So only the permits
//! whose principal or resource key the scope index finds for the request are looked at; any
//! other has two parts outside, and a default deny costs about what a decision costs.

use std::fmt;

use cedar_policy::Policy;
use cedar_policy_core::ast::{self, Literal, ValueKind};
use cedar_policy_core::est;
use cedar_policy_core::evaluator::Evaluator;
use serde::{Deserialize, Serialize};

/// At most this many near misses are reported for one request.
pub(crate) const MAX_NEAR_MISSES: usize = 5;

/// A clause's source text is shortened to this many characters.
const MAX_CLAUSE_CHARS: usize = 120;

/// A `when` clause is split into at most this many `&&` conjuncts (nested at most this deep);
/// a longer conjunction is named whole.
const MAX_CONJUNCTS: usize = 16;

/// A permit policy that did not match a default-denied request, and what it lacked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearMiss {
    /// The policy id.
    pub policy: String,
    /// What did not hold: the scope part that does not match, or else every `when` clause
    /// that is false and every `unless` clause that is true (or that errored), in order.
    pub unmet: Vec<Unmet>,
}

/// One part of a permit policy that a request did not satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unmet {
    /// The request's principal, action or resource is outside the policy's scope.
    Scope {
        /// Which part of the scope.
        part: ScopePart,
    },
    /// A `when` clause is false, or an `unless` clause is true.
    Condition {
        /// The clause's position among the policy's `when` and `unless` clauses, from 1.
        number: usize,
        /// `when` or `unless`.
        clause: ClauseKind,
        /// The clause's expression in Cedar syntax, shortened.
        text: String,
        /// For a `when` clause that is a conjunction (`a && b`), the first conjunct that is
        /// false, in Cedar syntax, shortened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conjunct: Option<String>,
    },
    /// A clause that could not be evaluated for this request.
    Error {
        /// The clause's position among the policy's `when` and `unless` clauses, from 1.
        number: usize,
        /// `when` or `unless`.
        clause: ClauseKind,
        /// The clause's expression in Cedar syntax, shortened.
        text: String,
        /// Cedar's evaluation error.
        error: String,
    },
}

/// A part of a policy's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopePart {
    /// `principal`.
    Principal,
    /// `action`.
    Action,
    /// `resource`.
    Resource,
}

/// The kind of a condition clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClauseKind {
    /// `when { ... }`: must be true.
    When,
    /// `unless { ... }`: must be false.
    Unless,
}

impl fmt::Display for ScopePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Principal => "principal",
            Self::Action => "action",
            Self::Resource => "resource",
        })
    }
}

impl fmt::Display for ClauseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::When => "when",
            Self::Unless => "unless",
        })
    }
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scope { part } => write!(f, "{part} not in scope"),
            Self::Condition {
                number,
                clause,
                text,
                conjunct,
            } => {
                let value = match clause {
                    ClauseKind::When => "false",
                    ClauseKind::Unless => "true",
                };
                write!(f, "condition {number} ({clause} {{ {text} }}) is {value}")?;
                match conjunct {
                    Some(conjunct) => write!(f, ": {conjunct} is false"),
                    None => Ok(()),
                }
            }
            Self::Error {
                number,
                clause,
                text,
                error,
            } => write!(
                f,
                "condition {number} ({clause} {{ {text} }}) errored: {error}"
            ),
        }
    }
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.policy)?;
        for (i, unmet) in self.unmet.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{unmet}")?;
        }
        Ok(())
    }
}

/// One `when` or `unless` clause, ready to evaluate on its own.
struct Clause {
    kind: ClauseKind,
    expr: ast::Expr,
    text: String,
    /// The conjuncts of a `when` clause that is a conjunction, in order; else empty.
    conjuncts: Vec<Conjunct>,
}

/// One operand of a `when` clause's `&&` chain, ready to evaluate on its own.
struct Conjunct {
    expr: ast::Expr,
    text: String,
}

/// A permit policy taken apart: its scope constraints and its clauses.
pub(crate) struct PermitParts {
    id: String,
    policy: ast::Policy,
    scope: [(ScopePart, ast::Expr); 3],
    clauses: Vec<Clause>,
}

impl PermitParts {
    /// `policy` taken apart, or `None` for a forbid policy.
    pub(crate) fn new(policy: &Policy) -> Option<Self> {
        let core: &ast::Policy = policy.as_ref();
        if core.effect() != ast::Effect::Permit {
            return None;
        }
        Some(Self {
            id: policy.id().to_string(),
            scope: [
                (ScopePart::Principal, core.principal_constraint().as_expr()),
                (ScopePart::Action, core.action_constraint().as_expr()),
                (ScopePart::Resource, core.resource_constraint().as_expr()),
            ],
            clauses: clauses(policy, core),
            policy: core.clone(),
        })
    }

    /// What this permit lacks for the evaluator's request, or `None` when more than one part
    /// of its scope does not match (it was not close) or nothing is unmet.
    fn near_miss(&self, evaluator: &Evaluator<'_>) -> Option<NearMiss> {
        let mut unmet: Vec<Unmet> = Vec::new();
        for (part, expr) in &self.scope {
            if self.holds(evaluator, expr) != Ok(true) {
                unmet.push(Unmet::Scope { part: *part });
            }
        }
        if unmet.len() > 1 {
            return None;
        }
        if unmet.is_empty() {
            for (i, clause) in self.clauses.iter().enumerate() {
                if let Some(failed) = self.check(evaluator, i + 1, clause) {
                    unmet.push(failed);
                }
            }
        }
        (!unmet.is_empty()).then(|| NearMiss {
            policy: self.id.clone(),
            unmet,
        })
    }

    /// What `clause` (number `number`) fails with, if it fails.
    fn check(&self, evaluator: &Evaluator<'_>, number: usize, clause: &Clause) -> Option<Unmet> {
        let wanted = clause.kind == ClauseKind::When;
        match self.holds(evaluator, &clause.expr) {
            Ok(value) if value == wanted => None,
            Ok(_) => Some(Unmet::Condition {
                number,
                clause: clause.kind,
                text: clause.text.clone(),
                conjunct: self.false_conjunct(evaluator, clause),
            }),
            Err(error) => Some(Unmet::Error {
                number,
                clause: clause.kind,
                text: clause.text.clone(),
                error,
            }),
        }
    }

    /// The first conjunct of a false `when` clause that is false. Evaluated in order as
    /// Cedar does, every earlier one is true; one that errors ends the search unnamed.
    fn false_conjunct(&self, evaluator: &Evaluator<'_>, clause: &Clause) -> Option<String> {
        for conjunct in &clause.conjuncts {
            match self.holds(evaluator, &conjunct.expr) {
                Ok(true) => {}
                Ok(false) => return Some(conjunct.text.clone()),
                Err(_) => return None,
            }
        }
        None
    }

    /// The boolean value of `expr` for the evaluator's request.
    fn holds(&self, evaluator: &Evaluator<'_>, expr: &ast::Expr) -> Result<bool, String> {
        let value = evaluator
            .interpret(expr, self.policy.env())
            .map_err(|e| e.to_string())?;
        match value.value_kind() {
            ValueKind::Lit(Literal::Bool(b)) => Ok(*b),
            _ => Err(format!("the value {value} is not a boolean")),
        }
    }
}

/// The policy's `when` and `unless` clauses, in order, from Cedar's JSON form (which keeps
/// them apart; its internal form joins them). Should that form be unavailable, the joined
/// condition stands as one `when` clause.
fn clauses(policy: &Policy, core: &ast::Policy) -> Vec<Clause> {
    let separate = policy.to_json().ok().and_then(|json| {
        let conditions = json.get("conditions")?.as_array()?;
        conditions
            .iter()
            .map(|c| clause_from_json(c, core.id()))
            .collect::<Option<Vec<Clause>>>()
    });
    separate.unwrap_or_else(|| {
        core.non_scope_constraints()
            .map(|expr| Clause {
                kind: ClauseKind::When,
                text: shorten(&expr.to_string()),
                expr: expr.clone(),
                conjuncts: Vec::new(),
            })
            .into_iter()
            .collect()
    })
}

fn clause_from_json(json: &serde_json::Value, id: &ast::PolicyID) -> Option<Clause> {
    let kind = match json.get("kind")?.as_str()? {
        "when" => ClauseKind::When,
        "unless" => ClauseKind::Unless,
        _ => return None,
    };
    let body: est::Expr = serde_json::from_value(json.get("body")?.clone()).ok()?;
    let text = shorten(&body.to_string());
    let conjuncts = match kind {
        ClauseKind::When => conjuncts(&body, id),
        ClauseKind::Unless => Vec::new(),
    };
    let expr = body.try_into_ast(id).ok()?;
    Some(Clause {
        kind,
        expr,
        text,
        conjuncts,
    })
}

/// The operands of `body`'s `&&` chain, or none when it is not a conjunction or is longer or
/// deeper than [`MAX_CONJUNCTS`].
fn conjuncts(body: &est::Expr, id: &ast::PolicyID) -> Vec<Conjunct> {
    let mut operands = Vec::new();
    if !flatten_and(body, 0, &mut operands) || operands.len() < 2 {
        return Vec::new();
    }
    operands
        .into_iter()
        .map(|operand| {
            Some(Conjunct {
                text: shorten(&operand.to_string()),
                expr: operand.clone().try_into_ast(id).ok()?,
            })
        })
        .collect::<Option<Vec<Conjunct>>>()
        .unwrap_or_default()
}

/// Appends the operands of `expr`'s `&&` chain to `out`, left to right; false when the chain
/// is too long or too deep.
fn flatten_and<'a>(expr: &'a est::Expr, depth: usize, out: &mut Vec<&'a est::Expr>) -> bool {
    match expr {
        est::Expr::ExprNoExt(est::ExprNoExt::And { left, right }) => {
            depth < MAX_CONJUNCTS
                && flatten_and(left, depth + 1, out)
                && flatten_and(right, depth + 1, out)
        }
        operand if out.len() < MAX_CONJUNCTS => {
            out.push(operand);
            true
        }
        _ => false,
    }
}

/// `text` cut to [`MAX_CLAUSE_CHARS`] characters, with an ellipsis when cut.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_CLAUSE_CHARS) {
        Some((end, _)) => format!("{}…", text.get(..end).unwrap_or(text)),
        None => text.to_owned(),
    }
}

/// The permits closest to matching the evaluator's request: those whose scope matches come
/// first (fewest unmet clauses first), then those with one scope part outside (a permit for
/// another resource last); ties by id. At most [`MAX_NEAR_MISSES`].
pub(crate) fn near_misses(permits: Vec<&PermitParts>, evaluator: &Evaluator<'_>) -> Vec<NearMiss> {
    let mut found: Vec<NearMiss> = permits
        .into_iter()
        .filter_map(|p| p.near_miss(evaluator))
        .collect();
    found.sort_by_cached_key(|miss| {
        let scope = miss
            .unmet
            .iter()
            .find_map(|u| match u {
                Unmet::Scope { part } => Some(*part),
                _ => None,
            })
            .map_or(0, |part| if part == ScopePart::Resource { 2 } else { 1 });
        (scope, miss.unmet.len(), miss.policy.clone())
    });
    found.truncate(MAX_NEAR_MISSES);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_clauses_are_shortened_on_a_character_boundary() {
        let long = "é".repeat(MAX_CLAUSE_CHARS + 5);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MAX_CLAUSE_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("context.risk < 50"), "context.risk < 50");
    }
}

#[cfg(test)]
mod decision_tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::{
        AccessRequest, Decision, PolicySnapshot, Principal, RequestContext, RouteResource, TlsFacts,
    };

    const POLICIES: &str = r#"
        @id("engineers-read")
        permit (principal in Tenet::Group::"engineering", action in Tenet::Action::"read",
                resource in Tenet::Service::"shop")
        when { context.session.phishing_resistant }
        when { context.device.compliant }
        unless { context.risk >= 50 };

        @id("engineers-write")
        permit (principal in Tenet::Group::"engineering", action == Tenet::Action::"POST",
                resource in Tenet::Service::"shop");

        @id("finance-payroll")
        permit (principal in Tenet::Group::"finance", action, resource in Tenet::Service::"payroll");

        @id("no-admin")
        forbid (principal, action, resource) when { resource.path like "/admin*" };
    "#;

    fn snapshot() -> PolicySnapshot {
        PolicySnapshot::from_sources(&[("p.cedar".to_owned(), POLICIES.to_owned())]).unwrap()
    }

    /// A person of `groups` GETs `/products` on the shop with a passkey, from a compliant
    /// device, at risk 0.
    fn request(groups: &[&str]) -> AccessRequest {
        let mut context = RequestContext {
            source_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            tls: TlsFacts {
                version: "TLSv1.3".into(),
                sni: "shop.example.org".into(),
                alpn: "h2".into(),
                mtls: false,
                client_serial: String::new(),
            },
            unix_time: 1_704_105_000,
            protocol: "HTTP/2".into(),
            risk: 0,
            session: Default::default(),
            device: Default::default(),
        };
        context.session.authenticated = true;
        context.session.factors = vec!["oidc".into(), "webauthn".into()];
        context.session.phishing_resistant = true;
        context.device.id = "d1".into();
        context.device.enrolled = true;
        context.device.compliant = true;
        AccessRequest {
            principal: Principal::User {
                provider: "corp".into(),
                subject: "42".into(),
                email: "ada@example.org".into(),
                name: "Ada".into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
            action: "GET".into(),
            resource: RouteResource {
                route: "catalog".into(),
                service: "shop".into(),
                host: "shop.example.org".into(),
                path: "/products".into(),
            },
            context,
        }
    }

    /// The explanation, checked against `authorize`: near misses never change the decision.
    fn explain(req: &AccessRequest) -> crate::Explanation {
        let snapshot = snapshot();
        let explanation = snapshot.explain(req);
        assert_eq!(explanation.decision, snapshot.authorize(req));
        explanation
    }

    fn condition(number: usize, clause: ClauseKind, text: &str) -> Unmet {
        Unmet::Condition {
            number,
            clause,
            text: text.to_owned(),
            conjunct: None,
        }
    }

    #[test]
    fn a_false_posture_clause_is_named_with_its_text() {
        let mut req = request(&["engineering"]);
        req.context.device.compliant = false;
        let explanation = explain(&req);
        assert!(explanation.is_default_deny());
        let [closest, other] = explanation.near_misses.as_slice() else {
            panic!("{:?}", explanation.near_misses);
        };
        assert_eq!(closest.policy, "engineers-read");
        assert_eq!(
            closest.unmet,
            [condition(2, ClauseKind::When, "context.device.compliant")]
        );
        assert_eq!(
            closest.to_string(),
            "engineers-read: condition 2 (when { context.device.compliant }) is false"
        );
        // A permit for another action is a scope mismatch, after the scope matches; the
        // payroll permit (other group, other service) is not close.
        assert_eq!(other.policy, "engineers-write");
        assert_eq!(
            other.unmet,
            [Unmet::Scope {
                part: ScopePart::Action
            }]
        );
    }

    #[test]
    fn every_unmet_clause_is_named_and_an_unless_that_holds_too() {
        let mut req = request(&["engineering"]);
        req.context.session.phishing_resistant = false;
        req.context.risk = 70;
        let explanation = explain(&req);
        let closest = explanation.near_misses.first().unwrap();
        assert_eq!(
            closest.unmet,
            [
                condition(1, ClauseKind::When, "context.session.phishing_resistant"),
                condition(3, ClauseKind::Unless, "context.risk >= 50"),
            ]
        );
        assert!(closest.to_string().contains("condition 3 (unless"));
    }

    #[test]
    fn a_missing_group_is_a_principal_scope_mismatch() {
        let explanation = explain(&request(&["guests"]));
        assert!(explanation.is_default_deny());
        let policies: Vec<&str> = explanation
            .near_misses
            .iter()
            .map(|m| m.policy.as_str())
            .collect();
        // The other two permits miss on two parts each (principal and action, principal and
        // resource): not close.
        assert_eq!(policies, ["engineers-read"]);
        assert_eq!(
            explanation.near_misses.first().unwrap().unmet,
            [Unmet::Scope {
                part: ScopePart::Principal
            }]
        );
    }

    #[test]
    fn allow_and_forbid_carry_no_near_misses() {
        let allowed = explain(&request(&["engineering"]));
        assert_eq!(
            allowed.decision,
            Decision::Allow {
                policies: vec!["engineers-read".into()]
            }
        );
        assert!(allowed.near_misses.is_empty());

        let mut req = request(&["guests"]);
        req.resource.path = "/admin/users".into();
        let forbidden = explain(&req);
        assert_eq!(
            forbidden.decision,
            Decision::Deny {
                policies: vec!["no-admin".into()],
                errors: Vec::new()
            }
        );
        assert!(forbidden.near_misses.is_empty());
    }

    /// Cedar stops at the first false clause; evaluated alone, a later clause may error, and
    /// is named with the error.
    #[test]
    fn a_clause_that_errors_alone_is_named_with_the_error() {
        let text = r#"@id("guarded") permit (principal, action, resource)
            when { context.risk > 100 }
            when { context.risk * 9223372036854775807 > 0 };"#;
        let snapshot = PolicySnapshot::from_sources(&[("p.cedar".into(), text.into())]).unwrap();
        let mut req = request(&[]);
        req.context.risk = 2;
        let explanation = snapshot.explain(&req);
        assert!(explanation.is_default_deny());
        let [miss] = explanation.near_misses.as_slice() else {
            panic!("{:?}", explanation.near_misses);
        };
        let [first, second] = miss.unmet.as_slice() else {
            panic!("{miss:?}");
        };
        assert_eq!(first, &condition(1, ClauseKind::When, "context.risk > 100"));
        let Unmet::Error {
            number: 2, error, ..
        } = second
        else {
            panic!("{second:?}");
        };
        assert!(error.contains("overflow"), "{error}");
    }

    /// A false `when` clause that is a conjunction names its first false conjunct, in the
    /// text and the JSON form; one too long to split is named whole.
    #[test]
    fn a_false_conjunction_names_its_first_false_conjunct() {
        let long: Vec<String> = (0..=MAX_CONJUNCTS)
            .map(|i| format!("context.risk != {i}"))
            .collect();
        let text = format!(
            r#"@id("posture") permit (principal, action, resource)
                when {{ context.session.authenticated && context.device.compliant
                        && context.risk < 50 }};
               @id("long") permit (principal, action, resource)
                when {{ {} && context.device.compliant }};"#,
            long.join(" && ")
        );
        let snapshot = PolicySnapshot::from_sources(&[("p.cedar".into(), text)]).unwrap();
        let mut req = request(&[]);
        req.context.device.compliant = false;
        req.context.risk = 70;
        let explanation = snapshot.explain(&req);
        assert!(explanation.is_default_deny());
        let [long, posture] = explanation.near_misses.as_slice() else {
            panic!("{:?}", explanation.near_misses);
        };

        let Some(Unmet::Condition { conjunct, text, .. }) = posture.unmet.first() else {
            panic!("{posture:?}");
        };
        assert_eq!(conjunct.as_deref(), Some("context.device.compliant"));
        assert_eq!(
            posture.to_string(),
            "posture: condition 1 (when { context.session.authenticated && \
             context.device.compliant && (context.risk < 50) }) is false: \
             context.device.compliant is false"
        );
        assert!(text.contains("context.session.authenticated"), "{text}");
        let json = serde_json::to_value(posture).unwrap();
        assert_eq!(json["unmet"][0]["conjunct"], "context.device.compliant");

        let Some(Unmet::Condition { conjunct, .. }) = long.unmet.first() else {
            panic!("{long:?}");
        };
        assert_eq!(conjunct, &None);
        let json = serde_json::to_value(long).unwrap();
        assert!(json["unmet"][0].get("conjunct").is_none(), "{json}");
    }

    #[test]
    fn at_most_five_are_named_closest_first() {
        let mut text = String::new();
        for i in 0..8 {
            text.push_str(&format!(
                "@id(\"p{i}\") permit (principal, action, resource) when {{ context.risk < {i} }};\n"
            ));
        }
        text.push_str(
            "@id(\"two\") permit (principal, action, resource) \
             when { context.risk < 0 } when { context.tls.mtls };\n",
        );
        let snapshot = PolicySnapshot::from_sources(&[("p.cedar".into(), text)]).unwrap();
        let mut req = request(&[]);
        req.context.risk = 10;
        let near = snapshot.explain(&req).near_misses;
        let policies: Vec<&str> = near.iter().map(|m| m.policy.as_str()).collect();
        assert_eq!(policies, ["p0", "p1", "p2", "p3", "p4"]);
        assert!(snapshot.authorize(&req) == snapshot.explain(&req).decision);
    }
}
