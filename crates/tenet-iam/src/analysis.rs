//! Findings about one policy document: what each statement grants (admin, NotAction and
//! NotResource grants, service wildcards, Resource "*" on changes, credentials, data, public
//! resource policies), escalation within the document, and lint (unknown actions, condition
//! keys and operators, type mismatches, Sids).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

use serde_json::{Value, json};
use tenet_finding::Severity;

use crate::arn::effectively_star;
use crate::catalogue::{AccessLevel, ActionSet, KeyType, Unknown, catalogue};
use crate::condition::{Condition, Family, parse_bool, parse_date};
use crate::policy::{ActionMatch, Effect, Policy, Principals, ResourceMatch, Statement};
use crate::privesc::Grants;

/// Actions Cloudsplaining and Tenet treat as data exfiltration when unconstrained.
pub const EXFILTRATION_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "secretsmanager:GetSecretValue",
];

/// IAM actions that on their own make a holder (nearly) an administrator.
const NOTABLE_IAM: &[&str] = &[
    "iam:CreateUser",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:CreateAccessKey",
    "iam:CreatePolicyVersion",
    "iam:PassRole",
];

/// Condition keys that tie a grant to a known caller, account, organisation or network.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceip",
    "aws:userid",
    "aws:username",
    "aws:calledvia",
];

/// Keys that restrict a service principal to one account or resource (confused deputy).
const SOURCE_KEYS: &[&str] = &[
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceowner",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
];

/// A finding before it is tied to a file and subject.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Rule id.
    pub rule: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Pointer inside the document.
    pub pointer: String,
    /// One-line title.
    pub title: String,
    /// Explanation.
    pub detail: String,
    /// Least-privilege rewrite, if derivable.
    pub remediation: Option<String>,
    /// Evidence.
    pub evidence: Vec<(&'static str, Value)>,
}

impl Hit {
    fn new(
        rule: &'static str,
        severity: Severity,
        pointer: &str,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Hit {
        Hit {
            rule,
            severity,
            pointer: pointer.to_owned(),
            title: title.into(),
            detail: detail.into(),
            remediation: None,
            evidence: Vec::new(),
        }
    }

    fn fix(mut self, remediation: impl Into<String>) -> Hit {
        self.remediation = Some(remediation.into());
        self
    }

    fn ev(mut self, key: &'static str, value: Value) -> Hit {
        self.evidence.push((key, value));
        self
    }
}

/// Options for [`analyze`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Seconds since the epoch, to decide time conditions.
    pub now: Option<i64>,
    /// Whether to report escalation methods available from this document alone (off when
    /// the account view reports them per principal).
    pub escalation: bool,
}

/// Analyses one document.
pub fn analyze(policy: &Policy, opts: Options) -> Vec<Hit> {
    analyze_held(policy, opts, &[])
}

/// Analyses one document held together with `others` (the other policies of every principal
/// it is attached to): their unconditional Denies take away from its grants, as AWS
/// evaluates them (an explicit Deny in any policy wins).
pub fn analyze_held(policy: &Policy, opts: Options, others: &[&Policy]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = policy
        .issues
        .iter()
        .map(|i| {
            let severity = if i.rule == "iam.policy-malformed" {
                Severity::Medium
            } else {
                Severity::Low
            };
            Hit::new(
                i.rule,
                severity,
                &i.pointer,
                issue_title(i.rule),
                i.detail.clone(),
            )
        })
        .collect();
    match policy.version.as_deref() {
        Some("2012-10-17") => {}
        Some("2008-10-17") => hits.push(
            Hit::new(
                "iam.policy-version",
                Severity::Low,
                "/Version",
                "Old policy language version",
                "Version 2008-10-17 does not substitute policy variables such as ${aws:username}",
            )
            .fix("set \"Version\": \"2012-10-17\""),
        ),
        Some(v) => hits.push(Hit::new(
            "iam.policy-version",
            Severity::Medium,
            "/Version",
            "Unknown policy language version",
            format!("Version {v:?} is neither 2012-10-17 nor 2008-10-17"),
        )),
        None => {}
    }

    let mut grants = Grants::new(opts.now);
    grants.add(&policy.statements);
    for other in others {
        grants.add_denies(&other.statements);
    }
    let mut sids = HashSet::new();
    for s in &policy.statements {
        lint_statement(s, &mut sids, &mut hits);
        if s.effect == Effect::Allow {
            if s.principal.is_some() || s.not_principal.is_some() {
                resource_policy_statement(s, &mut hits);
            } else {
                identity_statement(s, &grants, &mut hits);
            }
        }
    }
    bucket_policy_escalation(policy, &mut hits);
    if opts.escalation {
        let paths = grants.escalations(false);
        if !paths.is_empty() {
            let mut hit = escalation_hit(&paths);
            note_conditions(
                &mut hit,
                paths
                    .iter()
                    .flat_map(|(_, used)| used)
                    .filter_map(|(_, ptr)| {
                        policy
                            .statements
                            .iter()
                            .find(|s| s.pointer == *ptr && s.effect == Effect::Allow)
                    }),
            );
            hits.push(hit);
        }
    }
    hits
}

/// The escalation methods one holder can use, each with the (action, statement pointer)
/// pairs it rests on.
pub type Paths = [(&'static crate::privesc::Method, Vec<(String, String)>)];

/// One finding for every escalation method a holder (a principal, or a document read on its
/// own) can use: the methods, their actions and statements are evidence.
pub fn escalation_hit(paths: &Paths) -> Hit {
    let pointer = paths
        .first()
        .and_then(|(_, used)| used.first())
        .map(|(_, p)| p.as_str())
        .unwrap_or("");
    let mut actions = BTreeSet::new();
    let mut statements = BTreeSet::new();
    let mut ways = Vec::new();
    let mut detail_paths = Vec::new();
    for (method, used) in paths {
        let names: Vec<&str> = used.iter().map(|(a, _)| a.as_str()).collect();
        actions.extend(names.iter().map(|a| (*a).to_owned()));
        statements.extend(used.iter().map(|(_, p)| p.clone()));
        ways.push(format!("{} ({})", method.how, names.join(" + ")));
        detail_paths.push(json!({
            "method": method.id,
            "technique": method.name,
            "actions": names,
            "statements": used.iter().map(|(_, p)| p).collect::<Vec<_>>(),
        }));
    }
    let methods: Vec<&str> = paths.iter().map(|(m, _)| m.id).collect();
    let techniques: Vec<&str> = paths.iter().map(|(m, _)| m.name).collect();
    let title = match techniques.as_slice() {
        [one] => format!("Privilege escalation: {one}"),
        [first, rest @ ..] => format!(
            "Privilege escalation: {first} and {} other method(s)",
            rest.len()
        ),
        [] => "Privilege escalation".to_owned(),
    };
    let actions: Vec<String> = actions.into_iter().collect();
    Hit::new(
        "iam.privilege-escalation",
        Severity::High,
        pointer,
        title,
        format!(
            "the holder can gain more privilege in {} way(s): {}",
            ways.len(),
            sample(&ways, 4)
        ),
    )
    .fix(format!(
        "remove {} or restrict their Resource to resources that cannot lead to more privilege",
        sample(&actions, 8)
    ))
    .ev("methods", json!(methods))
    .ev("techniques", json!(techniques))
    .ev("actions", json!(actions))
    .ev("statements", json!(statements))
    .ev("paths", json!(detail_paths))
}

/// Says in an escalation finding which Conditions limit the statements it rests on (those the
/// analysis could not decide: a time condition that fails removes the statement already).
pub(crate) fn note_conditions<'s>(hit: &mut Hit, statements: impl Iterator<Item = &'s Statement>) {
    let tests: BTreeSet<String> = statements
        .flat_map(|s| s.conditions.iter().map(Condition::describe))
        .collect();
    if tests.is_empty() {
        return;
    }
    let tests: Vec<String> = tests.into_iter().collect();
    hit.detail = format!(
        "{}; only where the Conditions of the statements granting them hold: {}",
        hit.detail,
        tests.join("; ")
    );
    hit.evidence.push(("conditions", json!(tests)));
}

fn issue_title(rule: &str) -> &'static str {
    match rule {
        "iam.invalid-arn" => "Resource is not an ARN",
        "iam.invalid-sid" => "Invalid Sid",
        "iam.policy-version" => "Invalid policy Version",
        _ => "Malformed policy",
    }
}

fn names(set: &ActionSet) -> Vec<String> {
    let c = catalogue();
    set.iter().map(|id| c.name(id)).collect()
}

/// [`EXFILTRATION_ACTIONS`] as a set, built once.
static EXFILTRATION_SET: LazyLock<ActionSet> = LazyLock::new(|| set_of(EXFILTRATION_ACTIONS));

/// [`IAM_SELF_GRANT`] as a set, built once.
static IAM_SELF_GRANT_SET: LazyLock<ActionSet> = LazyLock::new(|| set_of(IAM_SELF_GRANT));

fn set_of(list: &[&str]) -> ActionSet {
    let c = catalogue();
    let mut set = c.empty_set();
    for a in list {
        if let Some(id) = c.action(a) {
            set.insert(id);
        }
    }
    set
}

/// Actions of the statement that its Resource can apply to and that no unconditional Deny of
/// the same holder removes.
fn not_denied(s: &Statement, grants: &Grants<'_>) -> ActionSet {
    let mut set = s.fitting.clone();
    set.subtract(&grants.denied_for(s));
    set
}

/// The grant findings of one statement, in the order of their root cause: the first present
/// is the statement's finding, the others are what it implies.
const CAUSES: &[&str] = &[
    "iam.admin-equivalent",
    "iam.allow-all-but-denied",
    "iam.allow-not-action",
    "iam.allow-not-resource",
    "iam.service-wildcard",
    "iam.resource-star",
    "iam.credentials-exposure",
    "iam.data-exfiltration",
    "iam.permissions-management",
];

/// The grant findings of one Allow statement, each saying which Condition limits it. A
/// statement whose time condition fails at the time of the analysis is not in effect: its
/// findings are kept as information (a dead grant to remove), not rated as grants.
fn identity_statement(s: &Statement, grants: &Grants<'_>, hits: &mut Vec<Hit>) {
    let start = hits.len();
    identity_grants(s, grants, hits);
    if s.conditions.is_empty() {
        return;
    }
    let tests: Vec<String> = s.conditions.iter().map(Condition::describe).collect();
    let failing = grants.failing_time_condition(s);
    for h in hits.iter_mut().skip(start) {
        match (failing, grants.now()) {
            (Some(c), Some(now)) => {
                h.severity = Severity::Info;
                h.title = format!("{} (not in effect)", h.title);
                h.detail = format!(
                    "{}; but its Condition {} is false at the time of the analysis ({}), so \
                     the statement grants nothing now",
                    h.detail,
                    c.describe(),
                    crate::account::format_time(now)
                );
                h.remediation = Some("remove the statement, which can no longer apply".into());
                h.evidence.push(("in_effect", json!(false)));
            }
            _ => {
                h.detail = format!(
                    "{}; only where its Condition holds: {}",
                    h.detail,
                    tests.join("; ")
                );
            }
        }
        h.evidence.push(("conditions", json!(tests)));
    }
}

fn identity_grants(s: &Statement, grants: &Grants<'_>, hits: &mut Vec<Hit>) {
    let conditional = !s.conditions.is_empty();
    let star = s.resource_is_star();
    let not_resource = matches!(s.resource, ResourceMatch::NotResources(_));
    let allowed = not_denied(s, grants);
    if allowed.is_empty() {
        return;
    }

    if s.covers_all_actions() && (star || not_resource) && allowed.len() < s.fitting.len() {
        // Every action, less what a Deny of the same holder removes.
        let kept = denied_admin_hit(s, &allowed);
        hits.extend(merge_causes(
            std::iter::once(kept)
                .chain(implied_grants(s, &allowed, star, conditional))
                .collect(),
        ));
        return;
    }
    if s.covers_all_actions() && (star || not_resource) {
        hits.push(
            Hit::new(
                "iam.admin-equivalent",
                Severity::Critical,
                &s.pointer,
                "Grants every action on every resource",
                if conditional {
                    "the statement allows all actions on all resources (subject to its Condition)"
                } else {
                    "the statement allows all actions on all resources: full administrator"
                },
            )
            .fix("replace with the specific actions and resources the holder needs")
            .ev("conditional", json!(conditional)),
        );
        return;
    }

    let mut found = Vec::new();
    if let ActionMatch::NotActions(excluded) = &s.action {
        found.push(not_action_hit(
            s,
            excluded,
            &allowed,
            star || not_resource,
            grants,
        ));
    }
    if let ResourceMatch::NotResources(excluded) = &s.resource {
        found.push(
            Hit::new(
                "iam.allow-not-resource",
                Severity::High,
                &s.pointer,
                "Allow with NotResource grants every other resource",
                format!(
                    "the actions are allowed on every resource except {excluded:?}, including \
                     resources in other accounts that permit it"
                ),
            )
            .fix(
                "list the allowed resources in Resource instead of excluding some with NotResource",
            )
            .ev("excluded", json!(excluded)),
        );
    }
    if let ActionMatch::Actions(patterns) = &s.action {
        found.extend(service_wildcard_hit(
            s,
            patterns,
            &allowed,
            star || not_resource,
        ));
    }

    found.extend(implied_grants(s, &allowed, star, conditional));
    hits.extend(merge_causes(found));
}

/// The grant findings that follow from the actions a statement allows (`allowed`, denies
/// removed): Resource "*" on changes, permissions management, credentials, data.
fn implied_grants(s: &Statement, allowed: &ActionSet, star: bool, conditional: bool) -> Vec<Hit> {
    let c = catalogue();
    let mut found = Vec::new();
    let mut modify = allowed.clone();
    modify.intersect_with(c.modifying_set());
    modify.intersect_with(c.resource_level_set());
    if star && !modify.is_empty() {
        found.push(resource_star_hit(s, &modify, conditional));
    }

    let mut pm = allowed.clone();
    pm.intersect_with(c.level_set(AccessLevel::PermissionsManagement));
    if !pm.is_empty() {
        let list = names(&pm);
        found.push(
            Hit::new(
                "iam.permissions-management",
                if star {
                    Severity::Medium
                } else {
                    Severity::Low
                },
                &s.pointer,
                "Grants permissions-management actions",
                format!(
                    "{} permissions-management action(s) change who may access what: {}",
                    list.len(),
                    sample(&list, 8)
                ),
            )
            .ev("actions", json!(list))
            .ev("unrestricted", json!(star && !conditional)),
        );
    }

    let mut creds = allowed.clone();
    creds.intersect_with(c.credentials_actions());
    if !creds.is_empty() {
        let list = names(&creds);
        found.push(
            Hit::new(
                "iam.credentials-exposure",
                Severity::High,
                &s.pointer,
                "Grants actions that return credentials",
                format!("these actions return credentials or tokens: {}", sample(&list, 8)),
            )
            .fix("grant credential-returning actions only on the specific users, roles or clusters needed")
            .ev("actions", json!(list))
            .ev("unrestricted", json!(star && !conditional)),
        );
    }

    let mut exfil = allowed.clone();
    exfil.intersect_with(&EXFILTRATION_SET);
    if star && !exfil.is_empty() {
        let list = names(&exfil);
        found.push(
            Hit::new(
                "iam.data-exfiltration",
                Severity::Medium,
                &s.pointer,
                "Reads data or secrets on every resource",
                format!(
                    "{} on Resource \"*\" reads every object, parameter or secret",
                    list.join(", ")
                ),
            )
            .fix("restrict Resource to the buckets, parameters or secrets actually needed")
            .ev("actions", json!(list))
            .ev("conditional", json!(conditional)),
        );
    }
    found
}

/// An Allow of every action on every resource from which a Deny of the same holder takes
/// some actions away. While the holder keeps IAM permissions-management actions it can
/// rewrite or detach the policy that denies it, so it is still an administrator in effect
/// (critical); once the Deny removes those, what is left is a broad grant, rated by what
/// it keeps.
fn denied_admin_hit(s: &Statement, allowed: &ActionSet) -> Hit {
    let c = catalogue();
    let mut removed = s.fitting.clone();
    removed.subtract(allowed);
    let mut iam_pm = c
        .service("iam")
        .map(|svc| c.service_set(svc))
        .unwrap_or_default();
    iam_pm.intersect_with(c.level_set(AccessLevel::PermissionsManagement));
    iam_pm.intersect_with(allowed);
    let iam_kept = names(&iam_pm);
    let removed_names = names(&removed);
    let conditional = !s.conditions.is_empty();
    if !iam_kept.is_empty() {
        return Hit::new(
            "iam.admin-equivalent",
            Severity::Critical,
            &s.pointer,
            "Grants every action on every resource, less a Deny it can undo",
            format!(
                "the statement allows all actions on all resources{}; a Deny of the same \
                holder removes {} action(s) ({}), but the holder keeps IAM \
                permissions-management actions ({}) with which it can change or detach the \
                policy that denies it: administrator in effect",
                if conditional {
                    " (subject to its Condition)"
                } else {
                    ""
                },
                removed_names.len(),
                sample(&removed_names, 4),
                sample(&iam_kept, 5)
            ),
        )
        .fix("replace with the specific actions and resources the holder needs")
        .ev("conditional", json!(conditional))
        .ev("denied_count", json!(removed_names.len()))
        .ev("iam_actions", json!(iam_kept));
    }
    // What is left: changes on every resource make it high.
    let mut modify = allowed.clone();
    modify.intersect_with(c.modifying_set());
    let severity = if !modify.is_empty() {
        Severity::High
    } else {
        Severity::Medium
    };
    Hit::new(
        "iam.allow-all-but-denied",
        severity,
        &s.pointer,
        "Allows every action, narrowed only by a Deny",
        format!(
            "the statement allows all actions on all resources; a Deny of the same holder \
            removes {} action(s) ({}), including IAM permissions management, so it is not an \
            administrator, but it still grants {} action(s), {} of them changes, and any action \
            AWS adds later",
            removed_names.len(),
            sample(&removed_names, 4),
            allowed.len(),
            modify.len()
        ),
    )
    .fix("replace the Allow of \"*\" by the actions the holder needs, instead of removing some with a Deny")
    .ev("action_count", json!(allowed.len()))
    .ev("denied_count", json!(removed_names.len()))
    .ev("conditional", json!(conditional))
}

/// One finding per statement: the first root cause in [`CAUSES`] order, at the worst
/// severity of all, with the other risk classes (rule, severity and their evidence) under
/// `implies`.
fn merge_causes(mut found: Vec<Hit>) -> Option<Hit> {
    found.sort_by_key(|h| CAUSES.iter().position(|r| *r == h.rule));
    let mut rest = found.into_iter();
    let mut primary = rest.next()?;
    let implied: Vec<Hit> = rest.collect();
    if implied.is_empty() {
        return Some(primary);
    }
    let mut also = Vec::new();
    let mut remedies: Vec<String> = primary.remediation.iter().cloned().collect();
    let mut evidence = Vec::new();
    for h in &implied {
        primary.severity = primary.severity.max(h.severity);
        also.push(format!(
            "{} ({})",
            h.title.to_lowercase(),
            h.severity.as_str()
        ));
        if let Some(r) = &h.remediation
            && !remedies.contains(r)
        {
            remedies.push(r.clone());
        }
        let mut entry = serde_json::Map::new();
        entry.insert("rule".into(), json!(h.rule));
        entry.insert("severity".into(), json!(h.severity.as_str()));
        for (k, v) in &h.evidence {
            entry.insert((*k).into(), v.clone());
        }
        evidence.push(Value::Object(entry));
    }
    primary.detail = format!("{}. It also implies: {}", primary.detail, also.join("; "));
    if !remedies.is_empty() {
        primary.remediation = Some(remedies.join("; "));
    }
    Some(primary.ev("implies", Value::Array(evidence)))
}

/// Allow + NotAction. Near-admin (critical) when, on every resource, it keeps IAM changes or
/// an escalation path (assuming roles, running code as a role), as PowerUserAccess does.
fn not_action_hit(
    s: &Statement,
    excluded: &[String],
    allowed: &ActionSet,
    everywhere: bool,
    grants: &Grants<'_>,
) -> Hit {
    let c = catalogue();
    let iam_admin: Vec<String> = {
        let mut iam = c
            .service("iam")
            .map(|svc| c.service_set(svc))
            .unwrap_or_default();
        iam.intersect_with(allowed);
        iam.intersect_with(c.modifying_set());
        let mut list = names(&iam);
        // The actions that make it near-admin first, so the explanation names them.
        list.sort_by_key(|a| (!NOTABLE_IAM.contains(&a.as_str()), a.clone()));
        list
    };
    // The statement's own escalation paths, less what the holder's Denies remove.
    let alone = grants.only(s);
    let mut paths: Vec<&str> = Vec::new();
    if c.action("sts:AssumeRole")
        .is_some_and(|id| allowed.contains(id))
    {
        paths.push("AssumeRole (sts:AssumeRole on every role that trusts this account)");
    }
    let escalations = alone.escalations(false);
    paths.extend(escalations.iter().map(|(m, _)| m.name));

    let near_admin = everywhere && (!iam_admin.is_empty() || !paths.is_empty());
    let mut detail = format!(
        "Allow + NotAction {excluded:?} grants {} known actions",
        allowed.len()
    );
    if near_admin && !iam_admin.is_empty() {
        detail.push_str(&format!(", among them {}", sample(&iam_admin, 5)));
    } else if near_admin {
        detail.push_str(&format!(
            " on every resource: near-admin. IAM itself is excluded, but these paths to IAM \
             rights remain: {}",
            sample(
                &paths.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
                6
            )
        ));
    }
    let mut hit = Hit::new(
        "iam.allow-not-action",
        if near_admin {
            Severity::Critical
        } else {
            Severity::High
        },
        &s.pointer,
        match (near_admin, iam_admin.is_empty()) {
            (true, false) => {
                "Allow with NotAction grants nearly everything, including IAM administration"
            }
            (true, true) => "Allow with NotAction grants nearly everything: near-admin",
            _ => "Allow with NotAction grants everything not listed",
        },
        detail,
    )
    .fix(crate::advice::NOT_ACTION_ADVICE)
    .ev("excluded", json!(excluded))
    .ev("action_count", json!(allowed.len()));
    if near_admin && !iam_admin.is_empty() {
        hit = hit.ev("iam_actions", json!(iam_admin));
    }
    if near_admin && !paths.is_empty() {
        hit = hit.ev("escalation_paths", json!(paths));
    }
    hit
}

fn sample(list: &[String], n: usize) -> String {
    let mut s = list.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > n {
        s.push_str(&format!(" and {} more", list.len() - n));
    }
    s
}

/// IAM actions that let a holder give itself any permission (attach or write a `*:*`
/// policy on itself or a role it uses).
const IAM_SELF_GRANT: &[&str] = &[
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
    "iam:CreatePolicyVersion",
];

fn service_wildcard_hit(
    s: &Statement,
    patterns: &[String],
    allowed: &ActionSet,
    everywhere: bool,
) -> Option<Hit> {
    let c = catalogue();
    let mut services: Vec<String> = patterns
        .iter()
        .filter_map(|p| p.strip_suffix(":*"))
        .filter(|svc| !svc.contains(['*', '?']) && c.service(svc).is_some())
        .map(str::to_ascii_lowercase)
        .collect();
    services.sort();
    services.dedup();
    if services.is_empty() {
        return None;
    }
    let mut split = Vec::new();
    for svc in &services {
        let Some(service) = c.service(svc) else {
            continue;
        };
        for level in [
            AccessLevel::List,
            AccessLevel::Read,
            AccessLevel::Write,
            AccessLevel::PermissionsManagement,
            AccessLevel::Tagging,
        ] {
            let list: Vec<String> = (service.first..service.first + service.count)
                .filter(|&id| c.actions.get(id).is_some_and(|a| a.level == level))
                .map(|id| c.name(id))
                .collect();
            if !list.is_empty() {
                split.push(format!(
                    "{svc} {} ({}): {}",
                    level.as_str(),
                    list.len(),
                    sample(&list, 6)
                ));
            }
        }
    }
    let high = services
        .iter()
        .any(|s| matches!(s.as_str(), "iam" | "sts" | "organizations" | "kms"));
    // iam:* on every resource is full IAM control: the holder can attach AdministratorAccess
    // to itself, so it is an administrator in effect.
    let self_grant: Vec<String> = names(&{
        let mut set = IAM_SELF_GRANT_SET.clone();
        set.intersect_with(allowed);
        set
    });
    let iam_control = everywhere && services.iter().any(|s| s == "iam") && !self_grant.is_empty();
    let mut detail = "a service wildcard grants every current and future action of the service, \
                      including its permissions-management actions"
        .to_owned();
    if iam_control {
        detail.push_str(&format!(
            ". iam:* on every resource is full IAM control: the holder can attach \
             AdministratorAccess (or write a *:* policy) to itself with {}, so it is an \
             administrator in effect",
            self_grant.join(", ")
        ));
    }
    let mut hit = Hit::new(
        "iam.service-wildcard",
        if iam_control {
            Severity::Critical
        } else if high {
            Severity::High
        } else {
            Severity::Medium
        },
        &s.pointer,
        format!(
            "Service wildcard: {}",
            services
                .iter()
                .map(|s| format!("{s}:*"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        detail,
    )
    .fix(format!(
        "replace the wildcard by the actions needed, by access level — {}",
        split.join("; ")
    ))
    .ev("services", json!(services));
    if iam_control {
        hit = hit.ev("full_iam_control", json!(self_grant));
    }
    Some(hit)
}

fn resource_star_hit(s: &Statement, modify: &ActionSet, conditional: bool) -> Hit {
    let c = catalogue();
    let list = names(modify);
    let pm = modify.intersects(c.level_set(AccessLevel::PermissionsManagement));
    Hit::new(
        "iam.resource-star",
        if pm { Severity::High } else { Severity::Medium },
        &s.pointer,
        "Resource \"*\" on actions that change resources",
        format!(
            "{} write, tagging or permissions-management action(s) that support resource-level \
             restriction are granted on every resource: {}",
            list.len(),
            sample(&list, 8)
        ),
    )
    .fix(crate::advice::narrow_resource(s, modify))
    .ev("actions", json!(list))
    .ev("conditional", json!(conditional))
}

fn resource_policy_statement(s: &Statement, hits: &mut Vec<Hit>) {
    let everyone =
        s.principal.as_ref().is_some_and(Principals::is_anyone) || s.not_principal.is_some();
    let restricted = s
        .conditions
        .iter()
        .any(|c| c.operator.is_some() && RESTRICTING_KEYS.contains(&c.key_lower.as_str()));
    if everyone && !restricted {
        let c = catalogue();
        let modifies = s.actions.intersects(c.modifying_set()) || s.open;
        hits.push(
            Hit::new(
                "iam.resource-policy-public",
                if modifies { Severity::Critical } else { Severity::High },
                &s.pointer,
                "Resource policy open to everyone",
                "Principal \"*\" without a condition restricting the caller's account, \
                 organisation, source or network: anyone, including anonymous callers, is allowed",
            )
            .fix("name the principals, or add a condition such as aws:PrincipalOrgID or aws:SourceAccount"),
        );
    }
    let service_principal = matches!(&s.principal, Some(Principals::Typed(list))
        if list.iter().any(|(kind, v)| kind == "Service" && !v.is_empty()));
    let source_restricted = s
        .conditions
        .iter()
        .any(|c| c.operator.is_some() && SOURCE_KEYS.contains(&c.key_lower.as_str()));
    if service_principal && !source_restricted && !matches!(s.resource, ResourceMatch::Absent) {
        hits.push(
            Hit::new(
                "iam.service-principal-unrestricted",
                Severity::Medium,
                &s.pointer,
                "Service principal without a source restriction",
                "a service principal is allowed without aws:SourceAccount or aws:SourceArn, so the \
                 service acting for any other account can use the grant (confused deputy)",
            )
            .fix("add a condition on aws:SourceAccount and/or aws:SourceArn"),
        );
    }
}

/// S3: the right to change a bucket's policy or ACL on a bucket whose objects the holder
/// cannot read, write or delete lets it grant itself those rights.
fn bucket_policy_escalation(policy: &Policy, hits: &mut Vec<Hit>) {
    let c = catalogue();
    // Resources (with the statement granting each) on which the policy allows an action and
    // no unconditional Deny of the same policy removes it.
    let allowed_on = |action: &str| -> Vec<(&str, &str)> {
        let Some(id) = c.action(action) else {
            return Vec::new();
        };
        let mut denied = Patterns::default();
        for d in &policy.statements {
            if d.effect == Effect::Deny
                && d.actions.contains(id)
                && d.conditions.is_empty()
                && let ResourceMatch::Resources(list) = &d.resource
            {
                denied.extend(list);
            }
        }
        let mut out = Vec::new();
        for s in &policy.statements {
            if s.effect != Effect::Allow || !s.actions.contains(id) || s.principal.is_some() {
                continue;
            }
            if let ResourceMatch::Resources(list) = &s.resource {
                for r in list {
                    if !denied.matches(r) {
                        out.push((r.as_str(), s.pointer.as_str()));
                    }
                }
            }
        }
        out
    };
    let mut reported = HashSet::new();
    for (control, objects) in [
        (
            "s3:PutBucketPolicy",
            &["s3:PutObject", "s3:GetObject", "s3:DeleteObject"][..],
        ),
        ("s3:PutBucketAcl", &["s3:PutObject", "s3:GetObject"][..]),
        ("s3:PutLifecycleConfiguration", &["s3:DeleteObject"][..]),
    ] {
        let controls = allowed_on(control);
        if controls.is_empty() {
            continue;
        }
        for object in objects {
            let mut objs = Patterns::default();
            objs.extend(allowed_on(object).into_iter().map(|(r, _)| r));
            for &(r, pointer) in &controls {
                if reported.contains(pointer) {
                    continue;
                }
                let covered = objs.matches(r) || objs.matches(&format!("{r}/*"));
                if !covered && reported.insert(pointer) {
                    hits.push(
                        Hit::new(
                            "iam.resource-policy-escalation",
                            Severity::Medium,
                            pointer,
                            "Can rewrite a resource policy to grant itself more",
                            format!(
                                "{control} is allowed on {r} but {object} is not: the holder can \
                                 change the bucket's access rules to grant itself {object}"
                            ),
                        )
                        .fix(format!(
                            "remove {control} or grant it only where {object} is intended anyway"
                        ))
                        .ev("actions", json!([control, object])),
                    );
                }
            }
        }
    }
}

/// Resource patterns, split so that literal ones are found by hashing and only wildcard ones
/// are matched one by one.
#[derive(Default)]
struct Patterns<'a> {
    exact: HashSet<&'a str>,
    wild: Vec<&'a str>,
}

impl<'a> Patterns<'a> {
    fn extend<S: AsRef<str> + ?Sized + 'a>(&mut self, list: impl IntoIterator<Item = &'a S>) {
        for p in list {
            let p = p.as_ref();
            if crate::pattern::has_wildcard(p) {
                self.wild.push(p);
            } else {
                self.exact.insert(p);
            }
        }
    }

    /// Whether some pattern matches `text` (case-sensitive, like the comparison it replaces).
    fn matches(&self, text: &str) -> bool {
        self.exact.contains(text)
            || self
                .wild
                .iter()
                .any(|p| crate::pattern::glob_match(p, text))
    }
}

fn lint_statement(s: &Statement, sids: &mut HashSet<String>, hits: &mut Vec<Hit>) {
    if let Some(sid) = &s.sid {
        if !sid.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            hits.push(Hit::new(
                "iam.invalid-sid",
                Severity::Low,
                &format!("{}/Sid", s.pointer),
                "Invalid Sid",
                format!("Sid {sid:?} may only contain letters and digits"),
            ));
        }
        if !sid.is_empty() && !sids.insert(sid.clone()) {
            hits.push(Hit::new(
                "iam.duplicate-sid",
                Severity::Medium,
                &format!("{}/Sid", s.pointer),
                "Duplicate Sid",
                format!("Sid {sid:?} is used by more than one statement"),
            ));
        }
    }
    if let ActionMatch::Actions(patterns) = &s.action {
        // Actions of an unknown service are reported once per service, listing them.
        let mut services: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for &(i, why) in &s.unknown_actions {
            let Some(p) = patterns.get(i) else { continue };
            match why {
                Unknown::Service => {
                    let prefix = p.split(':').next().unwrap_or(p).to_ascii_lowercase();
                    services.entry(prefix).or_default().push(p.as_str());
                }
                Unknown::Action | Unknown::Malformed => hits.push(Hit::new(
                    "iam.unknown-action",
                    Severity::Low,
                    &format!("{}/Action", s.pointer),
                    "Unknown action",
                    format!("{p:?} matches no action in the AWS catalogue"),
                )),
            }
        }
        for (service, actions) in services {
            let detail = match actions.as_slice() {
                [one] => format!("{one:?} matches no action in the AWS catalogue"),
                _ => format!(
                    "{} actions of service prefix {service:?} match no action in the AWS \
                     catalogue: {}",
                    actions.len(),
                    sample(
                        &actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
                        5
                    )
                ),
            };
            hits.push(
                Hit::new(
                    "iam.unknown-service",
                    Severity::Low,
                    &format!("{}/Action", s.pointer),
                    "Unknown service prefix",
                    detail,
                )
                .fix(format!(
                    "the service prefix {service:?} is retired or unknown to the catalogue: \
                     remove its actions, or correct the prefix"
                ))
                .ev("service", json!(service))
                .ev("actions", json!(actions))
                .ev("count", json!(actions.len())),
            );
        }
    }
    for cond in &s.conditions {
        lint_condition(s, cond, hits);
    }
    if s.effect == Effect::Allow && s.principal.is_none() {
        resource_fit(s, hits);
    }
}

fn lint_condition(s: &Statement, cond: &Condition, hits: &mut Vec<Hit>) {
    let c = catalogue();
    let at = format!(
        "{}/Condition/{}",
        s.pointer,
        tenet_finding::pointer_token(&cond.operator_name)
    );
    let Some(op) = cond.operator else {
        hits.push(
            Hit::new(
                "iam.unknown-condition-operator",
                Severity::Medium,
                &at,
                "Unknown condition operator",
                format!(
                    "{:?} is not a condition operator (operator names are case-sensitive); AWS \
                     rejects the policy",
                    cond.operator_name
                ),
            )
            .ev("operator", json!(cond.operator_name)),
        );
        hits.push(Hit::new(
            "iam.condition-type-mismatch",
            Severity::Medium,
            &at,
            "Condition operator does not fit the key",
            format!("{:?} cannot test {:?}", cond.operator_name, cond.key),
        ));
        return;
    };
    if op.family == Family::Bool
        && s.effect == Effect::Allow
        && cond.key_lower == "aws:multifactorauthpresent"
        && !op.if_exists
        && cond.values.iter().any(|v| v.eq_ignore_ascii_case("false"))
    {
        hits.push(
            Hit::new(
                "iam.mfa-condition-pattern",
                Severity::Medium,
                &at,
                "MFA condition that never matches long-term keys",
                "aws:MultiFactorAuthPresent is absent (not false) for access-key requests, so \
                 Bool false does not catch them",
            )
            .fix("use BoolIfExists with false, or Null with true, in a Deny"),
        );
    }
    if op.family == Family::Null {
        if cond.values.iter().any(|v| parse_bool(v).is_none()) {
            hits.push(Hit::new(
                "iam.condition-type-mismatch",
                Severity::Medium,
                &at,
                "Null condition needs true or false",
                format!("Null on {:?} has a value other than true/false", cond.key),
            ));
        }
        return;
    }
    // Which type the key has for the statement's actions; unknown keys are reported.
    let key_type = if let Some(t) = crate::catalogue::global_key_type(&cond.key_lower) {
        Some(t)
    } else if matches!(s.action, ActionMatch::NotActions(_)) || s.actions.is_empty() {
        c.key_type(&cond.key_lower)
    } else {
        let found = s
            .actions
            .iter()
            .find_map(|id| c.key_type_for(id, &cond.key_lower));
        if found.is_none() {
            hits.push(
                Hit::new(
                    "iam.unknown-condition-key",
                    Severity::Medium,
                    &at,
                    "Condition key not supported by the statement's actions",
                    format!(
                        "{:?} is neither a global key nor documented for any action of the \
                         statement, so the condition never matches",
                        cond.key
                    ),
                )
                .ev("key", json!(cond.key)),
            );
        }
        found
    };
    let Some(key_type) = key_type else {
        return;
    };
    let (fits, loose) = match (op.family, key_type) {
        (_, KeyType::Unknown) => (true, false),
        (Family::String, KeyType::String) => (true, false),
        (Family::String, KeyType::Arn) => (true, true),
        (Family::Arn, KeyType::Arn) => (true, false),
        (Family::Numeric, KeyType::Numeric) => (true, false),
        (Family::Date, KeyType::Date | KeyType::Numeric) => (true, false),
        (Family::Bool, KeyType::Bool) => (true, false),
        (Family::Ip, KeyType::IpAddress) => (true, false),
        (Family::Binary, KeyType::Binary | KeyType::String) => (true, false),
        _ => (false, false),
    };
    let values_ok = cond.values.iter().all(|v| match op.family {
        Family::Numeric => v.parse::<f64>().is_ok(),
        Family::Date => parse_date(v).is_some(),
        Family::Bool => parse_bool(v).is_some(),
        _ => true,
    });
    if !fits || !values_ok {
        hits.push(Hit::new(
            "iam.condition-type-mismatch",
            Severity::Medium,
            &at,
            "Condition operator or value does not fit the key's type",
            format!(
                "{} on {:?} ({key_type:?}) with {:?}",
                cond.operator_name, cond.key, cond.values
            ),
        ));
    } else if loose {
        hits.push(
            Hit::new(
                "iam.condition-type-loose",
                Severity::Low,
                &at,
                "String operator on an ARN key",
                format!(
                    "{} compares the ARN key {:?} as a plain string",
                    cond.operator_name, cond.key
                ),
            )
            .fix(format!(
                "use {}",
                cond.operator_name.replacen("String", "Arn", 1)
            )),
        );
    }
}

/// Reports actions whose resource types no Resource pattern can name (AWS does not grant
/// them: the Resource is matched as a glob over the whole ARN of the request), and patterns
/// that are a Resource "*" in disguise.
fn resource_fit(s: &Statement, hits: &mut Vec<Hit>) {
    let ResourceMatch::Resources(resources) = &s.resource else {
        return;
    };
    if resources.is_empty() || resources.iter().any(|r| r == "*") || s.open {
        return;
    }
    let c = catalogue();
    let mut unfit = s.actions.clone();
    unfit.subtract(&s.fitting);
    let mut mismatched = Vec::new();
    let mut takes = Vec::new();
    for id in unfit.iter() {
        let Some(a) = c.actions.get(id) else { continue };
        let svc = c.service_of(a);
        let types: Vec<&str> = a
            .resource_types
            .iter()
            .filter_map(|(t, _)| svc.resources.get(*t).map(|r| r.name.as_str()))
            .collect();
        let name = c.name(id);
        takes.push(if types.is_empty() {
            format!("{name} (only \"*\")")
        } else {
            format!("{name} ({})", types.join(", "))
        });
        mismatched.push(name);
    }
    // Only a pattern with a `*` can be a Resource "*" in disguise; each (service, resource
    // type) the actions take is compared once, however many actions take it.
    let mut star_like = BTreeSet::new();
    if resources.iter().any(|r| r.contains('*')) {
        let mut types = BTreeSet::new();
        for id in s.actions.iter() {
            let Some(a) = c.actions.get(id) else { continue };
            types.extend(a.resource_types.iter().map(|&(t, _)| (a.service, t)));
        }
        for (svc, t) in types {
            let Some(rt) = c.services.get(svc).and_then(|svc| svc.resources.get(t)) else {
                continue;
            };
            for r in resources {
                if effectively_star(r, &rt.arn) {
                    star_like.insert(r.clone());
                }
            }
        }
    }
    if !mismatched.is_empty() {
        hits.push(
            Hit::new(
                "iam.resource-mismatch",
                Severity::Medium,
                &s.pointer,
                "Actions whose resources the statement does not name",
                format!(
                    "no Resource of the statement can name a resource these actions take, so \
                     AWS does not grant them: {}",
                    sample(&takes, 6)
                ),
            )
            .fix(
                "add an ARN of the resource type each action takes (\"*\" for actions without \
                 resource-level permissions), or remove the actions",
            )
            .ev("actions", json!(mismatched)),
        );
    }
    for r in star_like {
        hits.push(
            Hit::new(
                "iam.resource-effectively-star",
                Severity::Low,
                &s.pointer,
                "Resource pattern equivalent to \"*\"",
                format!("{r:?} matches every resource of its type in every account and region"),
            )
            .fix("name the partition, region, account and resource"),
        );
    }
}
