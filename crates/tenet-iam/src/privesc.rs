//! Known privilege-escalation methods as rules, evaluated over everything a principal holds:
//! the Allow statements of all its policies together, minus what an unconditional Deny in any
//! of them removes, and ignoring grants whose resource or condition makes them unusable.

use crate::catalogue::{ActionId, ActionSet, catalogue};
use crate::condition::{Condition, Context};
use crate::pattern::glob_match;
use crate::policy::{ActionMatch, Effect, ResourceMatch, Statement};

/// One escalation method: the actions that together allow it.
#[derive(Debug, Clone, Copy)]
pub struct Method {
    /// Stable kebab-case id used in findings (`create-policy-version`).
    pub id: &'static str,
    /// The technique's usual name (Rhino Security Labs / iam-vulnerable / Cloudsplaining).
    pub name: &'static str,
    /// Rhino Security Labs' method number, where it has one.
    pub rhino: Option<u8>,
    /// Actions that must all be usable.
    pub actions: &'static [&'static str],
    /// Whether a role can use it on itself without also assuming another role; methods that
    /// change a role's permissions need `sts:AssumeRole` unless the holder is that role.
    pub needs_assume_unless_role: bool,
    /// How it is abused, one line.
    pub how: &'static str,
}

macro_rules! m {
    ($id:literal, $name:literal, $rhino:expr, [$($a:literal),+], $role:literal, $how:literal) => {
        Method {
            id: $id,
            name: $name,
            rhino: $rhino,
            actions: &[$($a),+],
            needs_assume_unless_role: $role,
            how: $how,
        }
    };
}

/// Every method Tenet checks.
pub const METHODS: &[Method] = &[
    m!(
        "create-policy-version",
        "CreateNewPolicyVersion",
        Some(1),
        ["iam:CreatePolicyVersion"],
        false,
        "publish a new default version of a policy attached to oneself granting *:*"
    ),
    m!(
        "set-default-policy-version",
        "SetExistingDefaultPolicyVersion",
        Some(2),
        ["iam:SetDefaultPolicyVersion"],
        false,
        "switch an attached policy to an older, more permissive version"
    ),
    m!(
        "pass-role-to-ec2",
        "CreateEC2WithExistingInstanceProfile",
        Some(3),
        ["iam:PassRole", "ec2:RunInstances"],
        false,
        "launch an instance with a privileged instance profile and use its credentials"
    ),
    m!(
        "create-access-key",
        "CreateAccessKey",
        Some(4),
        ["iam:CreateAccessKey"],
        false,
        "create access keys for a more privileged user"
    ),
    m!(
        "create-login-profile",
        "CreateLoginProfile",
        Some(5),
        ["iam:CreateLoginProfile"],
        false,
        "set a console password for a user who has none"
    ),
    m!(
        "update-login-profile",
        "UpdateLoginProfile",
        Some(6),
        ["iam:UpdateLoginProfile"],
        false,
        "change another user's console password"
    ),
    m!(
        "attach-user-policy",
        "AttachUserPolicy",
        Some(7),
        ["iam:AttachUserPolicy"],
        false,
        "attach AdministratorAccess to oneself"
    ),
    m!(
        "attach-group-policy",
        "AttachGroupPolicy",
        Some(8),
        ["iam:AttachGroupPolicy"],
        false,
        "attach AdministratorAccess to one's own group"
    ),
    m!(
        "attach-role-policy",
        "AttachRolePolicy",
        Some(9),
        ["iam:AttachRolePolicy"],
        true,
        "attach AdministratorAccess to a role one can use"
    ),
    m!(
        "put-user-policy",
        "PutUserPolicy",
        Some(10),
        ["iam:PutUserPolicy"],
        false,
        "write an inline *:* policy on oneself"
    ),
    m!(
        "put-group-policy",
        "PutGroupPolicy",
        Some(11),
        ["iam:PutGroupPolicy"],
        false,
        "write an inline *:* policy on one's own group"
    ),
    m!(
        "put-role-policy",
        "PutRolePolicy",
        Some(12),
        ["iam:PutRolePolicy"],
        true,
        "write an inline *:* policy on a role one can use"
    ),
    m!(
        "add-user-to-group",
        "AddUserToGroup",
        Some(13),
        ["iam:AddUserToGroup"],
        false,
        "join a more privileged group"
    ),
    m!(
        "update-assume-role-policy",
        "UpdateAssumeRolePolicy",
        Some(14),
        ["iam:UpdateAssumeRolePolicy", "sts:AssumeRole"],
        false,
        "rewrite a privileged role's trust policy to trust oneself, then assume it"
    ),
    m!(
        "pass-role-to-lambda-invoke",
        "PassExistingRoleToNewLambdaThenInvoke",
        Some(15),
        [
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:InvokeFunction"
        ],
        false,
        "create a function running as a privileged role and invoke it"
    ),
    m!(
        "pass-role-to-lambda-cross-account",
        "PassRoleToNewLambdaThenInvokeCrossAccount",
        Some(16),
        [
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:AddPermission"
        ],
        false,
        "create a function running as a privileged role and let another account invoke it"
    ),
    m!(
        "pass-role-to-lambda-event-source",
        "PassExistingRoleToNewLambdaThenTriggerWithExistingDynamo",
        Some(17),
        [
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping"
        ],
        false,
        "create a function running as a privileged role and trigger it from an event source"
    ),
    m!(
        "pass-role-to-lambda-new-dynamo",
        "PassExistingRoleToNewLambdaThenTriggerWithNewDynamo",
        None,
        [
            "iam:PassRole",
            "lambda:CreateFunction",
            "lambda:CreateEventSourceMapping",
            "dynamodb:CreateTable",
            "dynamodb:PutItem"
        ],
        false,
        "create a function running as a privileged role and trigger it from a new DynamoDB stream"
    ),
    m!(
        "update-lambda-code",
        "EditExistingLambdaFunctionWithRole",
        Some(18),
        ["lambda:UpdateFunctionCode"],
        false,
        "replace the code of a function that runs as a privileged role"
    ),
    m!(
        "pass-role-to-glue-dev-endpoint",
        "PassExistingRoleToNewGlueDevEndpoint",
        Some(19),
        ["iam:PassRole", "glue:CreateDevEndpoint"],
        false,
        "create a Glue development endpoint with a privileged role and log in to it"
    ),
    m!(
        "update-glue-dev-endpoint",
        "UpdateExistingGlueDevEndpoint",
        Some(20),
        ["glue:UpdateDevEndpoint"],
        false,
        "add one's SSH key to an existing Glue endpoint and use its role"
    ),
    m!(
        "pass-role-to-cloudformation",
        "PassExistingRoleToCloudFormation",
        Some(21),
        ["iam:PassRole", "cloudformation:CreateStack"],
        false,
        "create a stack that runs as a privileged role"
    ),
    m!(
        "pass-role-to-data-pipeline",
        "PassExistingRoleToNewDataPipeline",
        Some(22),
        [
            "iam:PassRole",
            "datapipeline:CreatePipeline",
            "datapipeline:PutPipelineDefinition"
        ],
        false,
        "create a pipeline that runs commands as a privileged role"
    ),
    m!(
        "codestar-project-from-template",
        "CodeStarCreateProjectFromTemplate",
        Some(23),
        ["codestar:CreateProjectFromTemplate"],
        false,
        "create a CodeStar project whose template grants more access"
    ),
    m!(
        "pass-role-to-codestar",
        "PassExistingRoleToNewCodeStarProject",
        Some(24),
        ["codestar:CreateProject", "iam:PassRole"],
        false,
        "create a CodeStar project that runs as a privileged role"
    ),
    m!(
        "codestar-associate-team-member",
        "CodeStarCreateProjectThenAssociateTeamMember",
        Some(25),
        ["codestar:CreateProject", "codestar:AssociateTeamMember"],
        false,
        "create a CodeStar project and make oneself its owner"
    ),
    m!(
        "lambda-add-layer",
        "AddLambdaLayerToExistingFunction",
        Some(26),
        ["lambda:UpdateFunctionConfiguration"],
        false,
        "attach a malicious layer to a function that runs as a privileged role"
    ),
    m!(
        "pass-role-to-sagemaker-notebook",
        "PassRoleToNewSageMakerNotebook",
        Some(27),
        [
            "sagemaker:CreateNotebookInstance",
            "sagemaker:CreatePresignedNotebookInstanceUrl",
            "iam:PassRole"
        ],
        false,
        "create a notebook with a privileged role and open it"
    ),
    m!(
        "sagemaker-presigned-notebook-url",
        "PresignedUrlForExistingSageMakerNotebook",
        Some(28),
        ["sagemaker:CreatePresignedNotebookInstanceUrl"],
        false,
        "open an existing notebook and use its role"
    ),
    m!(
        "pass-role-to-codebuild",
        "CodeBuildCreateProjectPassRole",
        None,
        [
            "iam:PassRole",
            "codebuild:CreateProject",
            "codebuild:StartBuild"
        ],
        false,
        "create a build project with a privileged role and run a build"
    ),
    m!(
        "pass-role-to-sagemaker-processing",
        "SageMakerCreateProcessingJobPassRole",
        None,
        ["iam:PassRole", "sagemaker:CreateProcessingJob"],
        false,
        "run a processing job as a privileged role"
    ),
    m!(
        "pass-role-to-sagemaker-training",
        "SageMakerCreateTrainingJobPassRole",
        None,
        ["iam:PassRole", "sagemaker:CreateTrainingJob"],
        false,
        "run a training job as a privileged role"
    ),
    m!(
        "cloudformation-update-stack",
        "CloudFormationUpdateStack",
        None,
        ["cloudformation:UpdateStack"],
        false,
        "change a stack that runs with a privileged service role"
    ),
    m!(
        "ec2-instance-connect",
        "EC2InstanceConnect",
        None,
        ["ec2-instance-connect:SendSSHPublicKey"],
        false,
        "log in to an instance with a privileged instance profile"
    ),
    m!(
        "ssm-send-command",
        "SSMSendCommand",
        None,
        ["ssm:SendCommand"],
        false,
        "run commands on an instance with a privileged instance profile"
    ),
    m!(
        "ssm-start-session",
        "SSMStartSession",
        None,
        ["ssm:StartSession"],
        false,
        "open a shell on an instance with a privileged instance profile"
    ),
];

/// Condition keys whose value an analysis knows: the time of the analysis.
const TIME_KEYS: &[&str] = &["aws:currenttime", "aws:epochtime", "aws:tokenissuetime"];

/// Everything one principal holds, as statements from all its policies.
#[derive(Debug)]
pub struct Grants<'a> {
    allows: Vec<&'a Statement>,
    denies: Vec<&'a Statement>,
    /// The actions an unconditional Deny on every resource removes (kept up to date by
    /// [`Grants::add`], so checking an action or subtracting them costs word operations).
    denied: ActionSet,
    time: Option<Context>,
    now: Option<i64>,
}

/// What a grant of one action rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usable<'a> {
    /// The Allow statement that grants it.
    pub pointer: &'a str,
}

impl<'a> Grants<'a> {
    /// Empty; `now` (seconds since the epoch) lets time conditions be decided.
    pub fn new(now: Option<i64>) -> Self {
        let time = now.map(|t| {
            let iso = crate::account::format_time(t);
            let mut c = Context::new();
            c.set("aws:CurrentTime", vec![iso.clone()]);
            c.set("aws:TokenIssueTime", vec![iso]);
            c.set("aws:EpochTime", vec![t.to_string()]);
            c
        });
        Grants {
            allows: Vec::new(),
            denies: Vec::new(),
            denied: catalogue().empty_set(),
            time,
            now,
        }
    }

    /// Adds the identity statements of one policy (statements with a Principal are skipped:
    /// they belong to resource policies).
    pub fn add(&mut self, statements: &'a [Statement]) {
        for s in statements {
            if s.principal.is_some() || s.not_principal.is_some() {
                continue;
            }
            match s.effect {
                Effect::Allow => self.allows.push(s),
                Effect::Deny => {
                    if s.resource_is_star() && s.conditions.iter().all(|c| self.condition_true(c)) {
                        self.denied.union_with(&s.actions);
                    }
                    self.denies.push(s);
                }
            }
        }
    }

    /// What the holder would have with `allow` as its only Allow statement, its Denies kept.
    pub fn only(&self, allow: &'a Statement) -> Grants<'a> {
        Grants {
            allows: vec![allow],
            denies: self.denies.clone(),
            denied: self.denied.clone(),
            time: self.time.clone(),
            now: self.now,
        }
    }

    /// Adds the Deny statements of another policy of the same holder (its Allows are
    /// analysed with that policy).
    pub fn add_denies(&mut self, statements: &'a [Statement]) {
        for s in statements {
            if s.effect == Effect::Deny {
                self.add(std::slice::from_ref(s));
            }
        }
    }

    /// The time of the analysis (seconds since the epoch), if one was set.
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// The first condition of `s` that the analysis decides false: a test of the time that
    /// fails at the time of the analysis, so the statement is not in effect.
    pub fn failing_time_condition<'s>(&self, s: &'s Statement) -> Option<&'s Condition> {
        let ctx = self.time.as_ref()?;
        s.conditions
            .iter()
            .find(|c| TIME_KEYS.contains(&c.key_lower.as_str()) && !c.matches(ctx))
    }

    /// A condition is decided false when it tests a key the analysis knows and fails.
    fn condition_false(&self, c: &Condition) -> bool {
        match &self.time {
            Some(ctx) if TIME_KEYS.contains(&c.key_lower.as_str()) => !c.matches(ctx),
            _ => c.operator.is_none(),
        }
    }

    fn condition_true(&self, c: &Condition) -> bool {
        match &self.time {
            Some(ctx) if TIME_KEYS.contains(&c.key_lower.as_str()) => c.matches(ctx),
            _ => false,
        }
    }

    /// Whether an unconditional Deny on every resource removes the action.
    pub fn denied(&self, id: ActionId) -> bool {
        self.denied.contains(id)
    }

    /// The actions of the Allow statement `allow` that an unconditional Deny of this holder
    /// removes wherever `allow` grants them: a Deny on every resource, or one whose Resource
    /// (or NotResource) covers every resource the Allow names (see [`deny_covers`]). A Deny
    /// with a Condition the analysis cannot decide true removes nothing.
    pub fn denied_for(&self, allow: &Statement) -> ActionSet {
        let mut set = self.denied.clone();
        for d in &self.denies {
            if !d.resource_is_star()
                && d.conditions.iter().all(|c| self.condition_true(c))
                && deny_covers(d, allow)
            {
                set.union_with(&d.actions);
            }
        }
        set
    }

    /// Every action an unconditional Deny on every resource removes.
    pub fn denied_set(&self) -> &ActionSet {
        &self.denied
    }

    /// The statement that makes the action usable, if any: an Allow whose resource can name
    /// a resource of a type the action takes (see [`Statement::fitting`]) that an attacker
    /// benefits from, and whose conditions are not known to fail, with no Deny removing it.
    pub fn usable(&self, id: ActionId) -> Option<Usable<'a>> {
        if self.denied(id) {
            return None;
        }
        self.allows
            .iter()
            .find(|s| {
                s.fitting.contains(id)
                    && exploitable_resource(&s.resource)
                    && !s.conditions.iter().any(|c| self.condition_false(c))
                    && !self.denies.iter().any(|d| {
                        d.actions.contains(id)
                            && d.conditions.iter().all(|c| self.condition_true(c))
                            && deny_covers(d, s)
                    })
            })
            .map(|s| Usable {
                pointer: s.pointer.as_str(),
            })
    }

    /// Like [`Grants::usable`] for an action the catalogue does not list, by its name.
    pub fn usable_by_name(&self, name: &str) -> Option<Usable<'a>> {
        let lower = name.to_ascii_lowercase();
        let hit = |s: &Statement| match &s.action {
            ActionMatch::Actions(p) => p
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), &lower)),
            ActionMatch::NotActions(p) => !p
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), &lower)),
        };
        let denied = self.denies.iter().any(|d| {
            hit(d) && d.resource_is_star() && d.conditions.iter().all(|c| self.condition_true(c))
        });
        if denied {
            return None;
        }
        self.allows
            .iter()
            .find(|s| {
                hit(s)
                    && exploitable_resource(&s.resource)
                    && !s.conditions.iter().any(|c| self.condition_false(c))
            })
            .map(|s| Usable {
                pointer: s.pointer.as_str(),
            })
    }

    /// Every usable action (resource- and condition-aware, denies removed).
    pub fn usable_set(&self) -> ActionSet {
        let c = catalogue();
        let mut set = c.empty_set();
        for s in &self.allows {
            if exploitable_resource(&s.resource)
                && !s.conditions.iter().any(|c| self.condition_false(c))
            {
                let mut granted = s.fitting.clone();
                granted.subtract(&self.denied_for(s));
                set.union_with(&granted);
            }
        }
        set
    }

    /// Whether every action is usable on every resource, with nothing denied: full admin.
    pub fn is_admin(&self) -> bool {
        let everything = self
            .allows
            .iter()
            .any(|s| s.covers_all_actions() && s.resource_is_star() && s.conditions.is_empty());
        everything && !self.denies.iter().any(|d| !d.actions.is_empty())
    }

    /// The methods this principal can use, with the statements each action rests on.
    /// `is_role` tells whether the holder is a role (see [`Method::needs_assume_unless_role`]).
    pub fn escalations(&self, is_role: bool) -> Vec<(&'static Method, Vec<(String, String)>)> {
        let c = catalogue();
        let mut out = Vec::new();
        for m in METHODS {
            let mut names: Vec<&str> = m.actions.to_vec();
            if m.needs_assume_unless_role && !is_role {
                names.push("sts:AssumeRole");
            }
            let mut used = Vec::new();
            let all = names.iter().all(|name| {
                let usable = match c.action(name) {
                    Some(id) => self.usable(id),
                    // Retired actions (CodeStar) are no longer in the catalogue; old policies
                    // may still grant them by name or wildcard.
                    None => self.usable_by_name(name),
                };
                match usable {
                    Some(u) => {
                        used.push(((*name).to_owned(), u.pointer.to_owned()));
                        true
                    }
                    None => false,
                }
            });
            if all {
                out.push((m, used));
            }
        }
        out
    }
}

/// Whether the Resource element of `deny` matches every resource the Resource element of
/// `allow` can name, so that the Deny removes its actions from the Allow entirely. Decided
/// conservatively: `*` covers everything; a pattern covers another when it matches it read as
/// text (a `*` of the covered pattern is only matched by a `*` of the covering one); a
/// NotResource Deny covers only literal ARNs it does not except; a pattern with a policy
/// variable covers nothing (its value is only known per request).
pub fn deny_covers(deny: &Statement, allow: &Statement) -> bool {
    let ResourceMatch::Resources(named) = &allow.resource else {
        // An Allow with NotResource names everything else: only a Deny on "*" covers it.
        return deny.resource_is_star();
    };
    if named.is_empty() {
        return false;
    }
    match &deny.resource {
        ResourceMatch::Resources(patterns) => named.iter().all(|r| {
            patterns.iter().any(|p| {
                // A variable's value is only known per request; a `?` may stand for a `*` of
                // the covered pattern, which matches more than one character.
                let unsure =
                    p.contains("${") || (p.contains('?') && crate::pattern::has_wildcard(r));
                p == "*" || (!unsure && glob_match(p, r))
            })
        }),
        ResourceMatch::NotResources(excepted) => named.iter().all(|r| {
            !crate::pattern::has_wildcard(r)
                && !r.contains("${")
                && !excepted
                    .iter()
                    .any(|e| glob_match(&crate::pattern::variables_as_wildcards(e), r))
        }),
        ResourceMatch::Absent => false,
    }
}

/// Whether a Resource element can name something worth taking. Resources owned by AWS
/// itself (account `aws`, e.g. AWS managed policies) cannot be changed by a customer.
fn exploitable_resource(r: &ResourceMatch) -> bool {
    match r {
        ResourceMatch::Resources(list) => list
            .iter()
            .any(|r| r == "*" || r.split(':').nth(4).is_none_or(|account| account != "aws")),
        ResourceMatch::NotResources(list) => !list.iter().any(|r| r == "*"),
        ResourceMatch::Absent => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_names_catalogue_actions() {
        let c = catalogue();
        for m in METHODS {
            for a in m.actions {
                // CodeStar projects were retired; the method stays for old policies.
                if a.starts_with("codestar:") {
                    continue;
                }
                assert!(c.action(a).is_some(), "{} uses unknown action {a}", m.id);
            }
        }
    }

    #[test]
    fn every_rhino_method_is_a_rule() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpus/rhino-iam-privesc-methods/rhino-iam-privesc-methods.json"
        );
        let text = std::fs::read_to_string(path).expect("rhino corpus present");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for method in v["methods"].as_array().unwrap() {
            let n = method["number"].as_u64().unwrap() as u8;
            let rule = METHODS
                .iter()
                .find(|m| m.rhino == Some(n))
                .unwrap_or_else(|| panic!("Rhino method {n} has no rule"));
            let mut want: Vec<String> = method["required_actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_ascii_lowercase())
                .collect();
            let mut have: Vec<String> = rule
                .actions
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
            want.sort();
            have.sort();
            assert_eq!(want, have, "Rhino method {n}");
        }
    }
}
