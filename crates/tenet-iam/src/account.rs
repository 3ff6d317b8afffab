//! Everything read about one AWS account, across files: policy documents, users, groups and
//! roles with their inline and attached policies, and the findings about them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::{Value, json};
use tenet_finding::{Finding, Location, Outcome, Severity, Skipped};

use crate::analysis::{self, Hit, Options};
use crate::builtin::{self, Builtin};
use crate::eval::principal_matches;
use crate::policy::{Effect, Policy, Principals};
use crate::privesc::Grants;

/// Where a document came from and what it is.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) file: String,
    /// Pointer of the document inside its file (`""` for a whole file).
    pub(crate) pointer: String,
    pub(crate) line: Option<u32>,
    /// Policy ARN, name or Terraform address.
    pub(crate) subject: String,
    pub(crate) policy: Policy,
    /// A document read on its own: escalation is reported for it alone.
    pub(crate) standalone: bool,
    /// A role trust policy (analysed only for trust).
    pub(crate) trust: bool,
    /// An AWS managed policy (`arn:aws:iam::aws:policy/...`, or a `get-policy-version`
    /// document as MAMIP publishes them): customers cannot edit it.
    pub(crate) aws_managed: bool,
}

/// User, group or role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Group,
    Role,
}

#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    /// ARN, or a Terraform reference standing for it.
    pub(crate) arn: String,
    /// How findings name it: the ARN, or the Terraform address with its literal name.
    pub(crate) display: String,
    /// Other strings that name this principal in trust policies (Terraform references).
    pub(crate) aliases: Vec<String>,
    pub(crate) file: String,
    pub(crate) pointer: String,
    pub(crate) line: Option<u32>,
    /// Inline policies (doc indices).
    pub(crate) inline: Vec<usize>,
    /// Attached managed policies, by ARN or Terraform reference.
    pub(crate) managed: Vec<String>,
    /// Groups (users only), by name.
    pub(crate) groups: Vec<String>,
    /// Trust policy (roles only).
    pub(crate) trust: Option<usize>,
}

/// Everything read so far, across files.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub(crate) docs: Vec<Doc>,
    /// Managed policy key (ARN, name, Terraform reference) to doc index.
    pub(crate) managed: HashMap<String, usize>,
    pub(crate) principals: Vec<Principal>,
    pub(crate) skipped: Vec<Skipped>,
    now: Option<i64>,
}

impl Account {
    /// An empty account.
    pub fn new() -> Self {
        Account::default()
    }

    /// Sets the time of the analysis (seconds since the epoch), so that conditions on
    /// `aws:CurrentTime` / `aws:TokenIssueTime` can be decided. Without it they are treated
    /// as satisfiable.
    pub fn at_time(mut self, now: i64) -> Self {
        self.now = Some(now);
        self
    }

    /// Reads IAM content from a JSON value. Recognises a policy document (`Statement`), an
    /// authorization-details dump (`UserDetailList`/`RoleDetailList`/`GroupDetailList`/
    /// `Policies`), a `get-policy-version` answer (`PolicyVersion.Document`) and an array of
    /// policy documents. Returns false if the value is none of these.
    pub fn add_json(&mut self, file: &str, value: &Value) -> bool {
        match value {
            Value::Object(map) if map.contains_key("Statement") => {
                self.add_doc(file, "", None, file, value, true, false);
                true
            }
            Value::Object(map)
                if [
                    "UserDetailList",
                    "RoleDetailList",
                    "GroupDetailList",
                    "Policies",
                ]
                .iter()
                .any(|k| map.contains_key(*k)) =>
            {
                crate::dump::read(self, file, value);
                true
            }
            Value::Object(map) => match map.get("PolicyVersion").and_then(|v| v.get("Document")) {
                Some(doc) => {
                    let d = self.add_doc(
                        file,
                        "/PolicyVersion/Document",
                        None,
                        file,
                        doc,
                        true,
                        false,
                    );
                    self.mark_aws_managed(d);
                    true
                }
                None => false,
            },
            Value::Array(items)
                if !items.is_empty() && items.iter().all(|i| i.get("Statement").is_some()) =>
            {
                for (i, item) in items.iter().enumerate() {
                    self.add_doc(file, &format!("/{i}"), None, file, item, true, false);
                }
                true
            }
            _ => false,
        }
    }

    /// Reads the IAM resources of a Terraform module.
    pub fn add_terraform(&mut self, module: &tenet_terraform::Module) {
        crate::terraform::read(self, module);
    }

    /// Adds one document; returns its index, or `None` if it could not be read (recorded as
    /// skipped).
    #[expect(
        clippy::too_many_arguments,
        reason = "one call per input shape; a struct would only rename them"
    )]
    pub(crate) fn add_doc(
        &mut self,
        file: &str,
        pointer: &str,
        line: Option<u32>,
        subject: &str,
        value: &Value,
        standalone: bool,
        trust: bool,
    ) -> Option<usize> {
        let parsed = Policy::from_value(file, value);
        self.add_parsed(file, pointer, line, subject, parsed, standalone, trust)
    }

    /// [`Account::add_doc`] for a document already parsed (or not readable).
    #[expect(
        clippy::too_many_arguments,
        reason = "add_doc's arguments, with the document parsed"
    )]
    pub(crate) fn add_parsed(
        &mut self,
        file: &str,
        pointer: &str,
        line: Option<u32>,
        subject: &str,
        parsed: Result<Policy, crate::policy::PolicyError>,
        standalone: bool,
        trust: bool,
    ) -> Option<usize> {
        match parsed {
            Ok(policy) => {
                self.docs.push(Doc {
                    file: file.to_owned(),
                    pointer: pointer.to_owned(),
                    line,
                    subject: subject.to_owned(),
                    policy,
                    standalone,
                    trust,
                    aws_managed: is_aws_managed_arn(subject),
                });
                Some(self.docs.len() - 1)
            }
            Err(e) => {
                let at = if pointer.is_empty() {
                    file.to_owned()
                } else {
                    format!("{file}#{pointer}")
                };
                self.skipped.push(Skipped::new(at, e.to_string()));
                None
            }
        }
    }

    /// Marks a document as an AWS managed policy.
    pub(crate) fn mark_aws_managed(&mut self, doc: Option<usize>) {
        if let Some(d) = doc.and_then(|d| self.docs.get_mut(d)) {
            d.aws_managed = true;
        }
    }

    /// All findings: per document, then per principal (escalation across all of a
    /// principal's policies, admin, and role chains).
    pub fn assess(&self) -> Outcome {
        // Documents are analysed independently, on all cores, their findings kept in order,
        // each with the Denies of the policies it is always held with.
        let held_with = self.held_with();
        let indexed: Vec<(usize, &Doc)> = self.docs.iter().enumerate().collect();
        let per_doc = crate::par::map(&indexed, |&(i, doc)| {
            let hits = if doc.trust {
                trust_hits(&doc.policy)
            } else {
                let others: Vec<&Policy> = held_with
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .filter_map(|&j| self.docs.get(j))
                    .filter(|d| !d.trust)
                    .map(|d| &d.policy)
                    .collect();
                analysis::analyze_held(
                    &doc.policy,
                    Options {
                        now: self.now,
                        escalation: doc.standalone,
                    },
                    &others,
                )
            };
            hits.into_iter()
                .map(|hit| self.doc_finding(doc, hit))
                .collect::<Vec<_>>()
        });
        let mut findings: Vec<Finding> = per_doc.into_iter().flatten().collect();
        findings.extend(self.principal_findings());
        findings.sort_by(Finding::report_order);
        Outcome {
            findings,
            skipped: self.skipped.clone(),
        }
    }

    /// For each document attached to a user, group or role, the other documents every one of
    /// its holders also has: their Denies apply to it whichever holder uses it.
    fn held_with(&self) -> HashMap<usize, BTreeSet<usize>> {
        let mut common: HashMap<usize, BTreeSet<usize>> = HashMap::new();
        for p in &self.principals {
            let mine: BTreeSet<usize> = self.docs_of(p).indices.into_iter().collect();
            // Only documents with a Deny can take anything away.
            let denying: BTreeSet<usize> = mine
                .iter()
                .copied()
                .filter(|&j| {
                    self.docs.get(j).is_some_and(|d| {
                        !d.trust && d.policy.statements.iter().any(|s| s.effect == Effect::Deny)
                    })
                })
                .collect();
            for &i in &mine {
                let others: BTreeSet<usize> = denying.iter().copied().filter(|&j| j != i).collect();
                common
                    .entry(i)
                    .and_modify(|c| c.retain(|j| others.contains(j)))
                    .or_insert(others);
            }
        }
        common.retain(|_, c| !c.is_empty());
        common
    }

    fn doc_finding(&self, doc: &Doc, mut hit: Hit) -> Finding {
        if doc.aws_managed {
            hit = aws_managed_remedy(hit);
        }
        let mut location =
            Location::file(&doc.file).with_pointer(format!("{}{}", doc.pointer, hit.pointer));
        if let Some(line) = doc.line {
            location = location.with_line(line);
        }
        finding(hit, &doc.subject, location)
    }

    /// The docs that apply to a principal: its inline policies, attached managed policies,
    /// and (for users) those of its groups. An attached policy whose document is not in the
    /// input is taken from Tenet's built-in knowledge when it is a well-known AWS managed
    /// policy, and is otherwise unresolved.
    fn docs_of(&self, p: &Principal) -> Resolved<'_> {
        let mut indices = p.inline.clone();
        let mut unresolved = Vec::new();
        let mut builtins: Vec<&'static Builtin> = Vec::new();
        let mut managed: Vec<&String> = p.managed.iter().collect();
        for g in &p.groups {
            if let Some(group) = self
                .principals
                .iter()
                .find(|x| x.kind == Kind::Group && (&x.name == g || x.aliases.contains(g)))
            {
                indices.extend(&group.inline);
                managed.extend(&group.managed);
            }
        }
        for m in managed {
            match (self.managed.get(m), builtin::lookup(m)) {
                (Some(&i), _) => indices.push(i),
                (None, Some(b)) => {
                    if !builtins.iter().any(|x| std::ptr::eq(*x, b)) {
                        builtins.push(b);
                    }
                }
                (None, None) => {
                    if !unresolved.contains(m) {
                        unresolved.push(m.clone());
                    }
                }
            }
        }
        indices.sort_unstable();
        indices.dedup();
        let mut docs: Vec<&Doc> = indices.iter().filter_map(|&i| self.docs.get(i)).collect();
        docs.extend(builtins.iter().map(|b| &b.doc));
        Resolved {
            docs,
            indices,
            builtins,
            unresolved,
        }
    }

    fn grants_of<'a>(&self, docs: &[&'a Doc]) -> Grants<'a> {
        let mut g = Grants::new(self.now);
        for d in docs {
            g.add(&d.policy.statements);
        }
        g
    }

    fn principal_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        // Per user/role: what it holds across all its policies.
        let mut powerful: HashMap<usize, String> = HashMap::new();
        let mut grants_by: HashMap<usize, Grants<'_>> = HashMap::new();
        // Built-in documents in use, with the principals they are attached to (in order).
        let mut builtins_used: Vec<(&'static Builtin, Vec<&Principal>)> = Vec::new();
        for (pi, p) in self.principals.iter().enumerate() {
            if p.kind == Kind::Group {
                continue;
            }
            let Resolved {
                docs,
                builtins,
                unresolved,
                ..
            } = self.docs_of(p);
            for b in &builtins {
                match builtins_used.iter_mut().find(|(x, _)| std::ptr::eq(*x, *b)) {
                    Some((_, holders)) => holders.push(p),
                    None => builtins_used.push((b, vec![p])),
                }
            }
            let grants = self.grants_of(&docs);
            let location = principal_location(p);
            let policy_names: Vec<String> = docs.iter().map(|d| d.subject.clone()).collect();
            let provenance: Vec<String> = builtins.iter().map(|b| builtin::provenance(b)).collect();
            if grants.is_admin() {
                powerful.insert(pi, "is an administrator".to_owned());
                let mut detail = "its policies together allow all actions on all resources with \
                                  nothing denied"
                    .to_owned();
                if !provenance.is_empty() {
                    detail.push_str(&format!(" ({})", provenance.join("; ")));
                }
                let mut f = Finding::new(
                    "iam.admin-equivalent",
                    Severity::Critical,
                    &p.display,
                    location.clone(),
                    format!(
                        "{} {} holds every action on every resource",
                        kind_name(p.kind),
                        p.name
                    ),
                    detail,
                )
                .with_remediation(
                    "replace the administrator grant with the actions and resources needed",
                )
                .with_evidence("policies", json!(policy_names));
                if !provenance.is_empty() {
                    f = with_builtin_evidence(f, &builtins);
                }
                out.push(f);
            } else {
                let escalations = grants.escalations(p.kind == Kind::Role);
                if let Some((m, _)) = escalations.first() {
                    powerful.insert(pi, format!("can escalate via {}", m.name));
                    let used: Vec<&Doc> = escalations
                        .iter()
                        .flat_map(|(_, used)| used)
                        .filter_map(|(action, ptr)| doc_holding(&docs, action, ptr))
                        .collect();
                    let mut hit = analysis::escalation_hit(&escalations);
                    analysis::note_conditions(
                        &mut hit,
                        escalations.iter().flat_map(|(_, used)| used).filter_map(
                            |(action, ptr)| {
                                doc_holding(&docs, action, ptr)?
                                    .policy
                                    .statements
                                    .iter()
                                    .find(|s| s.pointer == *ptr && s.effect == Effect::Allow)
                            },
                        ),
                    );
                    let managed: BTreeSet<&str> = used
                        .iter()
                        .filter(|d| d.aws_managed)
                        .map(|d| d.subject.as_str())
                        .collect();
                    if is_service_linked(p) {
                        hit.remediation = Some(service_linked_remedy(p));
                        hit.evidence.push(("service_linked", json!(true)));
                    } else if !managed.is_empty() {
                        hit.remediation = Some(format!(
                            "detach the AWS managed policy {} from {} (AWS managed policies \
                             cannot be edited) and attach a customer-managed policy with only \
                             the actions needed; {}",
                            managed.iter().copied().collect::<Vec<_>>().join(", "),
                            p.display,
                            hit.remediation.unwrap_or_default()
                        ));
                    }
                    let used_builtins: Vec<&'static Builtin> = builtins
                        .iter()
                        .copied()
                        .filter(|b| used.iter().any(|d| std::ptr::eq(*d, &b.doc)))
                        .collect();
                    if !used_builtins.is_empty() {
                        let notes: Vec<String> = used_builtins
                            .iter()
                            .map(|b| builtin::provenance(b))
                            .collect();
                        hit.detail = format!("{} ({})", hit.detail, notes.join("; "));
                    }
                    let used_names: BTreeSet<&str> =
                        used.iter().map(|d| d.subject.as_str()).collect();
                    let mut f = finding(hit, &p.display, location.clone())
                        .with_evidence("policies", json!(used_names));
                    if !used_builtins.is_empty() {
                        f = with_builtin_evidence(f, &used_builtins);
                    }
                    out.push(f);
                }
            }
            if !unresolved.is_empty() {
                let unresolved: Vec<String> = unresolved.iter().map(|u| readable(u)).collect();
                out.push(Finding::new(
                    "iam.unresolved-policy",
                    Severity::Info,
                    &p.display,
                    location,
                    "Attached policy not in the input",
                    format!(
                        "{} {} has attached policies whose documents were not given (and are \
                         not among the AWS managed policies Tenet knows): {}; what they allow \
                         is unknown, so the principal's rights are unknown and the analysis \
                         of its permissions is incomplete",
                        kind_name(p.kind),
                        p.name,
                        unresolved.join(", ")
                    ),
                ));
            }
            grants_by.insert(pi, grants);
        }
        out.extend(self.builtin_findings(&builtins_used));
        out.extend(self.role_chains(&powerful, &grants_by));
        out
    }

    /// The findings of each built-in AWS managed policy document in use, once per policy,
    /// located at the first principal it is attached to.
    fn builtin_findings(&self, used: &[(&'static Builtin, Vec<&Principal>)]) -> Vec<Finding> {
        let mut out = Vec::new();
        for (b, holders) in used {
            let Some(first) = holders.first() else {
                continue;
            };
            let attached: Vec<&str> = holders.iter().map(|p| p.display.as_str()).collect();
            let hits = analysis::analyze(
                &b.doc.policy,
                Options {
                    now: self.now,
                    escalation: false,
                },
            );
            for hit in hits {
                let mut hit = aws_managed_remedy(hit);
                hit.detail = format!("{} ({})", hit.detail, builtin::provenance(b));
                let f = finding(hit, &b.doc.subject, principal_location(first))
                    .with_evidence("attached_to", json!(attached));
                out.push(with_builtin_evidence(f, &[*b]));
            }
        }
        out
    }

    /// Roles a principal can assume, followed transitively: reaching a role that is an
    /// administrator or can escalate is an escalation for the starting principal.
    fn role_chains(
        &self,
        powerful: &HashMap<usize, String>,
        grants: &HashMap<usize, Grants<'_>>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let assume = crate::catalogue::catalogue().action("sts:AssumeRole");
        for (start, p) in self.principals.iter().enumerate() {
            if p.kind == Kind::Group || powerful.contains_key(&start) {
                continue;
            }
            let mut seen = HashSet::from([start]);
            let mut queue = VecDeque::from([(start, vec![p.name.clone()])]);
            let mut reported = false;
            while let Some((at, path)) = queue.pop_front() {
                if reported || path.len() > 6 {
                    break;
                }
                let can_assume_any = assume
                    .and_then(|id| grants.get(&at).and_then(|g| g.usable(id)))
                    .is_some();
                for (ri, role) in self.principals.iter().enumerate() {
                    if role.kind != Kind::Role || seen.contains(&ri) {
                        continue;
                    }
                    let Some(trust) = role.trust.and_then(|t| self.docs.get(t)) else {
                        continue;
                    };
                    let Some(from) = self.principals.get(at) else {
                        continue;
                    };
                    if !trusts(&trust.policy, from, can_assume_any) {
                        continue;
                    }
                    seen.insert(ri);
                    let mut chain = path.clone();
                    chain.push(role.name.clone());
                    if let Some(why) = powerful.get(&ri) {
                        out.push(
                            Finding::new(
                                "iam.privilege-escalation",
                                Severity::High,
                                &p.display,
                                principal_location(p),
                                "Privilege escalation: AssumeRole chain",
                                format!(
                                    "{} can assume {} (which {why})",
                                    p.name,
                                    chain.get(1..).unwrap_or_default().join(" → ")
                                ),
                            )
                            .with_remediation(format!(
                                "restrict the trust policy of {} to the principals that need it",
                                role.name
                            ))
                            .with_evidence("methods", json!(["assume-role-chain"]))
                            .with_evidence("techniques", json!(["AssumeRole"]))
                            .with_evidence("chain", json!(chain)),
                        );
                        reported = true;
                        break;
                    }
                    queue.push_back((ri, chain));
                }
            }
        }
        out
    }
}

/// The documents that apply to one principal.
struct Resolved<'a> {
    /// Its documents: those in the input, then built-in ones.
    docs: Vec<&'a Doc>,
    /// The indices of those in the input.
    indices: Vec<usize>,
    /// Attached AWS managed policies taken from Tenet's built-in knowledge.
    builtins: Vec<&'static Builtin>,
    /// Attached policies whose documents are unknown.
    unresolved: Vec<String>,
}

/// Which of a principal's docs holds the Allow statement at `pointer` (unique only per doc)
/// that grants `action`.
fn doc_holding<'a>(docs: &[&'a Doc], action: &str, pointer: &str) -> Option<&'a Doc> {
    let id = crate::catalogue::catalogue().action(action);
    let at = |d: &&'a Doc| {
        d.policy
            .statements
            .iter()
            .find(|s| s.pointer == pointer && s.effect == Effect::Allow)
    };
    docs.iter()
        .copied()
        .find(|d| at(d).is_some_and(|s| id.is_none_or(|id| s.fitting.contains(id))))
        .or_else(|| docs.iter().copied().find(|d| at(d).is_some()))
}

/// Says in the evidence that documents came from Tenet's built-in knowledge.
fn with_builtin_evidence(f: Finding, builtins: &[&'static Builtin]) -> Finding {
    let names: Vec<&str> = builtins.iter().map(|b| b.doc.subject.as_str()).collect();
    let notes: Vec<String> = builtins.iter().map(|b| builtin::provenance(b)).collect();
    f.with_evidence("builtin_policies", json!(names))
        .with_evidence("document_source", json!(notes))
}

/// Whether a trust policy lets `from` assume the role: an Allow of sts:AssumeRole that names
/// the principal itself, or names its account (or everyone) while the principal's own
/// policies allow sts:AssumeRole.
fn trusts(trust: &Policy, from: &Principal, identity_allows: bool) -> bool {
    trust.statements.iter().any(|s| {
        if s.effect != Effect::Allow {
            return false;
        }
        let Some(id) = crate::catalogue::catalogue().action("sts:AssumeRole") else {
            return false;
        };
        if !s.actions.contains(id) {
            return false;
        }
        let Some(Principals::Typed(list)) = &s.principal else {
            return identity_allows && s.principal.is_some();
        };
        let named = list
            .iter()
            .filter(|(k, _)| k == "AWS")
            .flat_map(|(_, v)| v)
            .any(|v| !v.is_empty() && (v == &from.arn || from.aliases.contains(v)));
        named
            || (identity_allows
                && s.principal.as_ref().is_some_and(|p| {
                    principal_matches(p, &from.arn) && from.arn.starts_with("arn:")
                }))
    })
}

/// A trust policy is analysed for who it lets in: everyone without a condition is critical.
fn trust_hits(policy: &Policy) -> Vec<Hit> {
    let mut hits: Vec<Hit> = analysis::analyze(policy, Options::default())
        .into_iter()
        .filter(|h| {
            matches!(
                h.rule,
                "iam.resource-policy-public"
                    | "iam.policy-malformed"
                    | "iam.unknown-condition-operator"
            )
        })
        .collect();
    hits.iter_mut()
        .filter(|h| h.rule == "iam.resource-policy-public")
        .for_each(|h| {
            h.rule = "iam.role-trust-public";
            h.severity = Severity::Critical;
            h.title = "Role trust policy lets anyone assume the role".to_owned();
        });
    hits
}

/// Whether a principal is a service-linked role (path `/aws-service-role/`): AWS creates it
/// for one service and does not let customers detach or edit its policies.
fn is_service_linked(p: &Principal) -> bool {
    p.kind == Kind::Role && p.arn.starts_with("arn:") && p.arn.contains(":role/aws-service-role/")
}

/// The advice for a service-linked role: it is managed by AWS, so detaching is not possible.
fn service_linked_remedy(p: &Principal) -> String {
    format!(
        "{} is a service-linked role (path /aws-service-role/), created and managed by AWS for \
         its service: AWS does not allow detaching or editing its policies, and only that \
         service can assume it; nothing needs changing on the role (delete it through its \
         service if the service is no longer used)",
        p.display
    )
}

/// Whether a policy ARN names an AWS managed policy (`arn:aws:iam::aws:policy/...`, in any
/// partition).
fn is_aws_managed_arn(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.contains(":iam::aws:policy/")
}

/// AWS managed policies cannot be edited: the fix is a narrower customer-managed policy.
/// Actions of a service the catalogue does not know grant nothing, so there they need no fix.
fn aws_managed_remedy(mut hit: Hit) -> Hit {
    if hit.rule == "iam.unknown-service" {
        hit.remediation = Some(
            "this is an AWS managed policy: the service is retired or unknown to the catalogue, \
             its actions grant nothing, and nothing needs doing (a customer-managed policy \
             with these actions would need them removed)"
                .to_owned(),
        );
        hit.evidence.push(("aws_managed", json!(true)));
        return hit;
    }
    let narrower = match hit.remediation.take() {
        Some(r) => format!(" that follows this advice: {r}"),
        None => String::new(),
    };
    hit.remediation = Some(format!(
        "this is an AWS managed policy, which cannot be edited: detach it where it is attached \
         and attach a narrower customer-managed policy instead{narrower}"
    ));
    hit.evidence.push(("aws_managed", json!(true)));
    hit
}

/// A policy reference as a reader knows it: `${aws_iam_policy.p.arn}` → `aws_iam_policy.p`.
fn readable(reference: &str) -> String {
    match tenet_terraform::reference_target(reference) {
        Some((address, _)) if reference.starts_with("${") => address,
        _ => reference.to_owned(),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::User => "user",
        Kind::Group => "group",
        Kind::Role => "role",
    }
}

fn principal_location(p: &Principal) -> Location {
    let mut l = Location::file(&p.file);
    if !p.pointer.is_empty() {
        l = l.with_pointer(&p.pointer);
    }
    if let Some(line) = p.line {
        l = l.with_line(line);
    }
    l
}

fn finding(hit: Hit, subject: &str, location: Location) -> Finding {
    let mut f = Finding::new(
        hit.rule,
        hit.severity,
        subject,
        location,
        hit.title,
        hit.detail,
    );
    f.remediation = hit.remediation;
    f.evidence = hit
        .evidence
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<BTreeMap<_, _>>();
    f
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Inverse of days_from_civil (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        for t in [0, 1_577_836_801, 1_700_000_000, 951_782_400] {
            assert_eq!(crate::condition::parse_date(&format_time(t)), Some(t));
        }
    }

    #[test]
    fn recognises_inputs() {
        let mut a = Account::new();
        assert!(a.add_json("p.json", &json!({"Statement": []})));
        assert!(!a.add_json("x.json", &json!({"kind": "Pod"})));
        assert!(a.add_json(
            "v.json",
            &json!({"PolicyVersion": {"Document": {"Statement": []}}})
        ));
    }
}
