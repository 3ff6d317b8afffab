//! IAM policy documents: parsing into statements, with structural problems kept as issues
//! instead of errors so that one bad statement does not hide the rest.

use serde_json::Value;

use crate::arn::ResourcePattern;
use crate::catalogue::{ActionSet, Unknown, catalogue};
use crate::condition::Condition;

/// Why a value could not be read as a policy document at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not JSON.
    #[error("policy {input:?} is not valid JSON: {reason}")]
    Json {
        /// The input's name.
        input: String,
        /// The parser's message with its position.
        reason: String,
    },
    /// The text is neither JSON nor URL-encoded JSON.
    #[error("policy {input:?} is neither JSON nor URL-encoded JSON: {reason}")]
    Encoding {
        /// The input's name.
        input: String,
        /// What was wrong: the bad percent-escape, or the JSON parser's message after
        /// decoding.
        reason: String,
    },
    /// The JSON is not an object.
    #[error("policy {input:?} is not a JSON object")]
    NotObject {
        /// The input's name.
        input: String,
    },
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Denies, overriding every Allow.
    Deny,
}

/// The Action or NotAction element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionMatch {
    /// `Action`: the listed patterns.
    Actions(Vec<String>),
    /// `NotAction`: everything except the listed patterns.
    NotActions(Vec<String>),
}

/// The Resource or NotResource element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceMatch {
    /// `Resource`.
    Resources(Vec<String>),
    /// `NotResource`: everything except these.
    NotResources(Vec<String>),
    /// Neither (a trust policy; malformed in an identity policy).
    Absent,
}

/// The Principal or NotPrincipal element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: anyone, including anonymous callers.
    Anyone,
    /// Typed principals: (`AWS` | `Service` | `Federated` | `CanonicalUser`, values).
    Typed(Vec<(String, Vec<String>)>),
}

impl Principals {
    /// Whether the element names everyone (`"*"` or `{"AWS": "*"}`).
    pub fn is_anyone(&self) -> bool {
        match self {
            Principals::Anyone => true,
            Principals::Typed(list) => list
                .iter()
                .any(|(kind, values)| kind == "AWS" && values.iter().any(|v| v == "*")),
        }
    }
}

/// One statement.
#[derive(Debug, Clone)]
pub struct Statement {
    /// JSON pointer of the statement inside its document (`/Statement/2`).
    pub pointer: String,
    /// The Sid, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Action or NotAction.
    pub action: ActionMatch,
    /// Resource or NotResource.
    pub resource: ResourceMatch,
    /// Principal (resource policies).
    pub principal: Option<Principals>,
    /// NotPrincipal.
    pub not_principal: Option<Principals>,
    /// Conditions; all must hold.
    pub conditions: Vec<Condition>,
    /// The catalogue actions the statement covers (NotAction already complemented).
    pub actions: ActionSet,
    /// Whether it also covers actions not in the catalogue (`*`, NotAction, unknown services).
    pub open: bool,
    /// The patterns of an Action element that name no catalogue action: their index in the
    /// element and why (empty for NotAction).
    pub unknown_actions: Vec<(usize, Unknown)>,
    /// The actions of [`Statement::actions`] that the Resource element can apply to: every one
    /// for `*`, NotResource or no Resource; otherwise those with a resource type some pattern
    /// can name (an action without resource types needs `*`). AWS grants no others.
    pub fitting: ActionSet,
}

impl Statement {
    /// Whether the statement covers every action (`*`, or a NotAction that excludes nothing
    /// known).
    pub fn covers_all_actions(&self) -> bool {
        self.open && self.actions.len() == catalogue().len()
    }

    /// Whether the Resource element covers every resource (`*`, or NotResource).
    pub fn resource_is_star(&self) -> bool {
        match &self.resource {
            ResourceMatch::Resources(r) => r.iter().any(|r| r == "*"),
            ResourceMatch::NotResources(_) | ResourceMatch::Absent => false,
        }
    }
}

/// A structural problem found while reading a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Tenet rule id (`iam.policy-malformed`, `iam.invalid-arn`, ...).
    pub rule: &'static str,
    /// Pointer into the document.
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The Version element.
    pub version: Option<String>,
    /// The statements that could be read.
    pub statements: Vec<Statement>,
    /// Structural problems.
    pub issues: Vec<Issue>,
}

/// Upper bound on statements read from one document; AWS's own size limits keep real
/// documents far below it.
const MAX_STATEMENTS: usize = 10_000;

impl Policy {
    /// Parses JSON text.
    pub fn from_text(input: &str, text: &str) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Json {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        Policy::from_value(input, &value)
    }

    /// Reads a document. A string value holding JSON (as Terraform and some APIs give it) is
    /// parsed first; one holding URL-encoded JSON (as the IAM API returns `PolicyDocument`,
    /// `AssumeRolePolicyDocument` and `Document`: `%7B%22Version%22...`) is percent-decoded
    /// (RFC 3986, so `+` stays a plus) and then parsed.
    pub fn from_value(input: &str, value: &Value) -> Result<Policy, PolicyError> {
        if let Value::String(text) = value {
            return match Policy::from_text(input, text) {
                Err(PolicyError::Json { reason, .. }) if text.contains('%') => {
                    let decoded = percent_decode(text).map_err(|e| PolicyError::Encoding {
                        input: input.to_owned(),
                        reason: format!("not JSON ({reason}), and {e}"),
                    })?;
                    let value: Value =
                        serde_json::from_str(&decoded).map_err(|e| PolicyError::Encoding {
                            input: input.to_owned(),
                            reason: format!("after URL-decoding: {e}"),
                        })?;
                    match value {
                        // A string inside a string is not a document: no second round.
                        Value::String(_) => Err(PolicyError::NotObject {
                            input: input.to_owned(),
                        }),
                        v => Policy::from_value(input, &v),
                    }
                }
                Err(PolicyError::Json { reason, .. }) => Err(PolicyError::Encoding {
                    input: input.to_owned(),
                    reason: format!("not JSON ({reason}), and it holds no percent-escape"),
                }),
                other => other,
            };
        }
        let Value::Object(doc) = value else {
            return Err(PolicyError::NotObject {
                input: input.to_owned(),
            });
        };
        let mut policy = Policy {
            version: None,
            statements: Vec::new(),
            issues: Vec::new(),
        };
        match doc.get("Version") {
            Some(Value::String(v)) => policy.version = Some(v.clone()),
            Some(_) => policy.issue("iam.policy-version", "/Version", "Version is not a string"),
            None => {}
        }
        match doc.get("Statement") {
            Some(Value::Array(list)) => {
                for (i, s) in list.iter().take(MAX_STATEMENTS).enumerate() {
                    policy.read_statement(format!("/Statement/{i}"), s);
                }
                if list.len() > MAX_STATEMENTS {
                    policy.issue(
                        "iam.policy-malformed",
                        "/Statement",
                        format!("more than {MAX_STATEMENTS} statements; the rest were not read"),
                    );
                }
            }
            Some(s @ Value::Object(_)) => policy.read_statement("/Statement".to_owned(), s),
            Some(_) => policy.issue(
                "iam.policy-malformed",
                "/Statement",
                "Statement is neither an object nor an array",
            ),
            None => policy.issue("iam.policy-malformed", "", "the policy has no Statement"),
        }
        Ok(policy)
    }

    fn issue(&mut self, rule: &'static str, pointer: impl Into<String>, detail: impl Into<String>) {
        self.issues.push(Issue {
            rule,
            pointer: pointer.into(),
            detail: detail.into(),
        });
    }

    fn read_statement(&mut self, pointer: String, value: &Value) {
        let Value::Object(s) = value else {
            self.issue(
                "iam.policy-malformed",
                pointer,
                "statement is not an object",
            );
            return;
        };
        // Every problem of the statement is reported; a statement with a structural problem
        // is then left out, so that no grant is inferred from a guessed reading of it. The one
        // exception is an Allow whose only problems are entries of an Action, NotAction,
        // Resource or NotResource list that are not strings: its string entries are what it
        // certainly names, so it is analysed with them (the malformed finding stays). A Deny
        // is never read in part: left out, it cancels nothing, which never hides a grant.
        let malformed_before = self.malformed_count();
        let issues_before = self.issues.len();
        let effect = match s.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => Some(Effect::Allow),
            Some(Value::String(e)) if e == "Deny" => Some(Effect::Deny),
            other => {
                let detail = match other {
                    Some(Value::String(e)) => {
                        format!("Effect {e:?} is neither \"Allow\" nor \"Deny\"")
                    }
                    Some(v) => format!("Effect is {}, not \"Allow\" or \"Deny\"", type_name(v)),
                    None => "the statement has no Effect".to_owned(),
                };
                let at = if other.is_some() {
                    format!("{pointer}/Effect")
                } else {
                    pointer.clone()
                };
                self.issue("iam.policy-malformed", at, detail);
                None
            }
        };
        let sid = match s.get("Sid") {
            Some(Value::String(sid)) => Some(sid.clone()),
            Some(v) => {
                self.issue(
                    "iam.invalid-sid",
                    format!("{pointer}/Sid"),
                    format!("Sid is {}, not a string", type_name(v)),
                );
                None
            }
            None => None,
        };
        let action = match (s.get("Action"), s.get("NotAction")) {
            (Some(a), None) => Some(ActionMatch::Actions(self.strings(&pointer, "Action", a))),
            (None, Some(a)) => Some(ActionMatch::NotActions(self.strings(
                &pointer,
                "NotAction",
                a,
            ))),
            (Some(_), Some(_)) => {
                self.issue(
                    "iam.policy-malformed",
                    pointer.clone(),
                    "the statement has both Action and NotAction",
                );
                None
            }
            (None, None) => {
                self.issue(
                    "iam.policy-malformed",
                    pointer.clone(),
                    "the statement has neither Action nor NotAction",
                );
                None
            }
        };
        let principal = self.principals(&pointer, "Principal", s.get("Principal"));
        let not_principal = self.principals(&pointer, "NotPrincipal", s.get("NotPrincipal"));
        if principal.is_some() && not_principal.is_some() {
            self.issue(
                "iam.policy-malformed",
                pointer.clone(),
                "the statement has both Principal and NotPrincipal",
            );
        }
        let resource = match (s.get("Resource"), s.get("NotResource")) {
            (Some(r), None) => ResourceMatch::Resources(self.resources(&pointer, "Resource", r)),
            (None, Some(r)) => {
                ResourceMatch::NotResources(self.resources(&pointer, "NotResource", r))
            }
            (Some(_), Some(_)) => {
                self.issue(
                    "iam.policy-malformed",
                    pointer.clone(),
                    "the statement has both Resource and NotResource",
                );
                ResourceMatch::Absent
            }
            // A role trust policy names a Principal and no Resource; an identity policy
            // statement (no Principal) must name its resources.
            (None, None) => {
                if principal.is_none() && not_principal.is_none() {
                    self.issue(
                        "iam.policy-malformed",
                        pointer.clone(),
                        "the statement has neither Resource nor NotResource (an identity \
                         policy statement must name its resources)",
                    );
                }
                ResourceMatch::Absent
            }
        };
        let conditions = match s.get("Condition") {
            Some(c) => match Condition::read_block(c) {
                Ok(list) => list,
                Err(detail) => {
                    self.issue(
                        "iam.policy-malformed",
                        format!("{pointer}/Condition"),
                        detail,
                    );
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let (Some(effect), Some(action)) = (effect, action) else {
            return;
        };
        let partly_read = effect == Effect::Allow
            && self.only_bad_entries(issues_before, &pointer)
            && !names_nothing(&action, &resource);
        if self.malformed_count() > malformed_before && !partly_read {
            return;
        }
        let (actions, open, unknown_actions) = compile(&action);
        let fitting = fitting_actions(&resource, &actions);
        self.statements.push(Statement {
            pointer,
            sid,
            effect,
            action,
            resource,
            principal,
            not_principal,
            conditions,
            actions,
            open,
            unknown_actions,
            fitting,
        });
    }

    /// Whether every malformed issue recorded since `from` is a non-string entry of the
    /// statement's Action, NotAction, Resource or NotResource list.
    fn only_bad_entries(&self, from: usize, pointer: &str) -> bool {
        self.issues
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(|i| i.rule == "iam.policy-malformed")
            .all(|i| {
                i.pointer
                    .strip_prefix(pointer)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(field, index)| {
                        matches!(field, "Action" | "NotAction" | "Resource" | "NotResource")
                            && !index.is_empty()
                            && index.bytes().all(|b| b.is_ascii_digit())
                    })
            })
    }

    fn malformed_count(&self) -> usize {
        self.issues
            .iter()
            .filter(|i| i.rule == "iam.policy-malformed")
            .count()
    }

    /// Action or NotAction: a string or a non-empty array of strings.
    fn strings(&mut self, pointer: &str, field: &str, value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) if list.is_empty() => {
                self.issue(
                    "iam.policy-malformed",
                    format!("{pointer}/{field}"),
                    format!("{field} is an empty array: the statement names no action"),
                );
                Vec::new()
            }
            Value::Array(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => self.issue(
                            "iam.policy-malformed",
                            format!("{pointer}/{field}/{i}"),
                            format!("{field} entry is {}, not a string", type_name(v)),
                        ),
                    }
                }
                out
            }
            v => {
                self.issue(
                    "iam.policy-malformed",
                    format!("{pointer}/{field}"),
                    format!(
                        "{field} is {}, neither a string nor an array of strings",
                        type_name(v)
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Resource or NotResource: a string or a non-empty array of strings, each `*` or an
    /// ARN. A string that is not an ARN, or an unresolved CloudFormation function, is an
    /// invalid ARN (the statement is kept without it); any other type is malformed.
    fn resources(&mut self, pointer: &str, field: &str, value: &Value) -> Vec<String> {
        let list: Vec<(String, &Value)> = match value {
            Value::Array(list) if list.is_empty() => {
                self.issue(
                    "iam.policy-malformed",
                    format!("{pointer}/{field}"),
                    format!("{field} is an empty array: the statement names no resource"),
                );
                return Vec::new();
            }
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{pointer}/{field}/{i}"), v))
                .collect(),
            v => vec![(format!("{pointer}/{field}"), v)],
        };
        let mut out = Vec::with_capacity(list.len());
        for (at, v) in list {
            match v {
                Value::String(r) if r == "*" || r.starts_with("arn:") => out.push(r.clone()),
                Value::String(r) => self.issue(
                    "iam.invalid-arn",
                    at,
                    format!("{field} {r:?} is neither \"*\" nor an ARN"),
                ),
                Value::Object(map) if is_intrinsic(map) => self.issue(
                    "iam.invalid-arn",
                    at,
                    format!(
                        "{field} entry is an unresolved CloudFormation function ({}), not an \
                         ARN: analyse the deployed policy or the resolved template",
                        map.keys().next().map(String::as_str).unwrap_or_default()
                    ),
                ),
                v => self.issue(
                    "iam.policy-malformed",
                    at,
                    format!("{field} entry is {}, not a string", type_name(v)),
                ),
            }
        }
        out
    }

    /// Principal or NotPrincipal: `"*"`, an ARN string, or an object of principal types to
    /// a string or an array of strings.
    fn principals(
        &mut self,
        pointer: &str,
        field: &str,
        value: Option<&Value>,
    ) -> Option<Principals> {
        let value = value?;
        let at = format!("{pointer}/{field}");
        match value {
            Value::String(s) if s == "*" => Some(Principals::Anyone),
            Value::String(s) => Some(Principals::Typed(vec![("AWS".to_owned(), vec![s.clone()])])),
            Value::Object(map) => {
                let mut typed = Vec::with_capacity(map.len());
                for (kind, v) in map {
                    let values = match v {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => {
                            let mut values = Vec::with_capacity(a.len());
                            for (i, x) in a.iter().enumerate() {
                                match x.as_str() {
                                    Some(x) => values.push(x.to_owned()),
                                    None => self.issue(
                                        "iam.policy-malformed",
                                        format!("{at}/{}/{i}", tenet_finding::pointer_token(kind)),
                                        format!(
                                            "{field} {kind} entry is {}, not a string",
                                            type_name(x)
                                        ),
                                    ),
                                }
                            }
                            values
                        }
                        v => {
                            self.issue(
                                "iam.policy-malformed",
                                format!("{at}/{}", tenet_finding::pointer_token(kind)),
                                format!(
                                    "{field} {kind} is {}, neither a string nor an array",
                                    type_name(v)
                                ),
                            );
                            Vec::new()
                        }
                    };
                    typed.push((kind.clone(), values));
                }
                Some(Principals::Typed(typed))
            }
            v => {
                self.issue(
                    "iam.policy-malformed",
                    at,
                    format!(
                        "{field} is {}, neither \"*\" nor an object of principals",
                        type_name(v)
                    ),
                );
                Some(Principals::Typed(Vec::new()))
            }
        }
    }
}

/// Whether the Action/NotAction or Resource/NotResource list is empty (after leaving out
/// entries that are not strings).
fn names_nothing(action: &ActionMatch, resource: &ResourceMatch) -> bool {
    let no_action = match action {
        ActionMatch::Actions(a) | ActionMatch::NotActions(a) => a.is_empty(),
    };
    let no_resource = match resource {
        ResourceMatch::Resources(r) | ResourceMatch::NotResources(r) => r.is_empty(),
        ResourceMatch::Absent => false,
    };
    no_action || no_resource
}

/// Decodes RFC 3986 percent-encoding: `%XX` becomes the byte XX, every other character stays
/// as it is (`+` included: it means a space only in HTML forms). The bytes must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |k: usize| bytes.get(k).and_then(|c| (*c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                let bad: String = text.get(i..).unwrap_or_default().chars().take(3).collect();
                return Err(format!(
                    "{bad:?} at byte {i} is not a percent-escape (% followed by two hex digits)"
                ));
            };
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| {
        format!(
            "the decoded bytes are not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// A CloudFormation intrinsic function (`{"Fn::Sub": ...}`, `{"Ref": ...}`): a value only
/// known once the template is deployed.
fn is_intrinsic(map: &serde_json::Map<String, Value>) -> bool {
    map.len() == 1 && map.keys().all(|k| k == "Ref" || k.starts_with("Fn::"))
}

/// How a JSON value's type is named in messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The catalogue actions an Action/NotAction element covers, and whether it is open to
/// actions outside the catalogue.
pub fn compile_actions(action: &ActionMatch) -> (ActionSet, bool) {
    let (set, open, _) = compile(action);
    (set, open)
}

/// [`compile_actions`], with the patterns of an Action element that name nothing known (see
/// [`Statement::unknown_actions`]).
fn compile(action: &ActionMatch) -> (ActionSet, bool, Vec<(usize, Unknown)>) {
    let c = catalogue();
    let patterns = match action {
        ActionMatch::Actions(p) | ActionMatch::NotActions(p) => p,
    };
    let mut set = c.empty_set();
    let mut open = false;
    let mut unknown = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        // Most patterns name one action: found by name, without expanding a pattern.
        if !crate::pattern::has_wildcard(p)
            && let Some(id) = c.action(p)
        {
            set.insert(id);
            continue;
        }
        let e = c.expand(p);
        set.union_with(&e.actions);
        open |= e.open;
        if let Some(why) = e.unknown {
            unknown.push((i, why));
        }
    }
    set.shrink();
    match action {
        ActionMatch::Actions(_) => (set, open, unknown),
        ActionMatch::NotActions(p) => {
            let excludes_everything = p.iter().any(|x| x == "*");
            (set.complement(c.len()), !excludes_everything, Vec::new())
        }
    }
}

/// The actions of `actions` a Resource element can apply to (see [`Statement::fitting`]).
/// Each (service, resource type) pair is matched once, so a NotAction statement with a few
/// ARNs costs one match per resource type, not per action.
pub fn fitting_actions(resource: &ResourceMatch, actions: &ActionSet) -> ActionSet {
    let ResourceMatch::Resources(patterns) = resource else {
        return actions.clone();
    };
    if patterns.iter().any(|p| p == "*") {
        return actions.clone();
    }
    let c = catalogue();
    // An action without resource-level permissions is authorized against "*".
    let takes_star = patterns.iter().any(|p| crate::pattern::glob_match(p, "*"));
    let patterns: Vec<ResourcePattern<'_>> =
        patterns.iter().map(|p| ResourcePattern::new(p)).collect();
    // Actions are numbered contiguously per service and visited in ascending order, so the
    // per-type answers of one service are kept only while its actions are visited.
    let mut current: Option<usize> = None;
    let mut memo: Vec<Option<bool>> = Vec::new();
    let mut out = c.empty_set();
    for id in actions.iter() {
        let Some(a) = c.actions.get(id) else { continue };
        let svc = c.service_of(a);
        if current != Some(a.service) {
            current = Some(a.service);
            memo.clear();
            memo.resize(svc.resources.len(), None);
        }
        let fits = if a.resource_types.is_empty() {
            takes_star
        } else {
            a.resource_types.iter().any(|&(t, _)| {
                let Some(r) = svc.resources.get(t) else {
                    return false;
                };
                match memo.get_mut(t) {
                    Some(Some(known)) => *known,
                    Some(slot) => {
                        let fit = patterns.iter().any(|p| p.fits(&r.arn));
                        *slot = Some(fit);
                        fit
                    }
                    None => patterns.iter().any(|p| p.fits(&r.arn)),
                }
            })
        };
        if fits {
            out.insert(id);
        }
    }
    out.shrink();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_statement_object() {
        let p = Policy::from_text(
            "t",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
        )
        .unwrap();
        assert_eq!(p.statements.len(), 1);
        assert_eq!(p.statements[0].pointer, "/Statement");
        assert!(p.issues.is_empty());
    }

    #[test]
    fn reports_structural_problems() {
        let p = Policy::from_text("t", r#"{"Version":"2012-10-17"}"#).unwrap();
        assert_eq!(p.issues[0].rule, "iam.policy-malformed");
        let p = Policy::from_text(
            "t",
            r#"{"Statement":[{"Effect":"Allow","Action":"a:b","NotAction":"a:b","Resource":"*"},
               {"Effect":"Allow","Action":"s3:GetObject","Resource":[{"Fn::Sub":"x"}]}]}"#,
        )
        .unwrap();
        let rules: Vec<_> = p.issues.iter().map(|i| i.rule).collect();
        assert_eq!(rules, vec!["iam.policy-malformed", "iam.invalid-arn"]);
        assert!(Policy::from_text("t", "not json").is_err());
        assert!(Policy::from_text("t", "[1]").is_err());
    }

    #[test]
    fn not_action_is_open() {
        let p = Policy::from_text(
            "t",
            r#"{"Statement":{"Effect":"Allow","NotAction":"example:NoSuchAction","Resource":"*"}}"#,
        )
        .unwrap();
        assert!(p.statements[0].covers_all_actions());
    }
}
