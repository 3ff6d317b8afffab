//! RBAC: Roles, ClusterRoles and their bindings, and the findings about who can do what.

use serde_json::Value;
use tenet_finding::{Finding, Location, Severity};

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

impl PolicyRule {
    /// Whether the rule grants `verb` on `resource` in `group` (`*` matches anything; an
    /// empty `verb` asks for any verb at all).
    fn grants(&self, group: &str, resource: &str, verb: &str) -> bool {
        let has = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let verb_ok = if verb.is_empty() {
            !self.verbs.is_empty()
        } else {
            has(&self.verbs, verb)
        };
        // As the API server matches: `*`, the exact resource, or `*/<subresource>`
        // (`pods/*` is not a pattern Kubernetes knows).
        let subresource = resource.split_once('/').map(|(_, sub)| sub);
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || r == resource
                || subresource.is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
        });
        has(&self.api_groups, group) && resource_ok && verb_ok
    }

    /// Every verb on every resource of every API group, or of the core group (which holds
    /// secrets, pods and service accounts, so amounts to the same).
    fn is_full_admin(&self) -> bool {
        let star = |list: &[String]| list.iter().any(|v| v == "*");
        let core_or_all = self.api_groups.iter().any(|g| g == "*" || g.is_empty());
        core_or_all && star(&self.resources) && star(&self.verbs)
    }
}

/// A Role (namespaced) or ClusterRole.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub cluster: bool,
    pub name: String,
    pub namespace: String,
    pub rules: Vec<PolicyRule>,
    /// One of the roles the API server creates and reconciles (`cluster-admin`, `admin`,
    /// `edit`, `view`, `system:*`, or labelled `kubernetes.io/bootstrapping: rbac-defaults`):
    /// editing it is undone, so a fix narrows the binding instead.
    pub builtin: bool,
    pub file: String,
    pub doc: usize,
    pub base: String,
}

/// Names of the ClusterRoles every cluster has.
const BUILTIN_CLUSTER_ROLES: [&str; 4] = ["cluster-admin", "admin", "edit", "view"];

fn is_bootstrap(value: &Value) -> bool {
    value
        .pointer("/metadata/labels/kubernetes.io~1bootstrapping")
        .and_then(Value::as_str)
        == Some("rbac-defaults")
}

/// A subject of a binding.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl Subject {
    fn display(&self) -> String {
        match &self.namespace {
            Some(ns) if self.kind == "ServiceAccount" => {
                format!("ServiceAccount:{ns}/{}", self.name)
            }
            _ => format!("{}:{}", self.kind, self.name),
        }
    }
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub cluster: bool,
    pub name: String,
    pub namespace: String,
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
    /// Labelled `kubernetes.io/bootstrapping: rbac-defaults`: one of the cluster's own.
    pub bootstrap: bool,
    pub file: String,
    pub doc: usize,
    pub base: String,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn meta_str<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value
        .get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

impl Role {
    pub fn parse(
        value: &Value,
        kind: &str,
        file: &str,
        doc: usize,
        base: &str,
    ) -> Result<Role, String> {
        let name =
            meta_str(value, "name").ok_or_else(|| format!("a {kind} without metadata.name"))?;
        let rules = match value.get("rules") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules
                .iter()
                .map(|r| PolicyRule {
                    api_groups: strings(r.get("apiGroups")),
                    resources: strings(r.get("resources")),
                    verbs: strings(r.get("verbs")),
                })
                .collect(),
            Some(_) => return Err(format!("{kind} {name}: rules must be a list")),
        };
        let cluster = kind == "ClusterRole";
        Ok(Role {
            cluster,
            name: name.to_owned(),
            namespace: meta_str(value, "namespace").unwrap_or("default").to_owned(),
            rules,
            builtin: is_bootstrap(value)
                || (cluster
                    && (BUILTIN_CLUSTER_ROLES.contains(&name) || name.starts_with("system:"))),
            file: file.to_owned(),
            doc,
            base: base.to_owned(),
        })
    }

    fn pointer(&self, path: &str) -> String {
        format!("#{}{}{}", self.doc, self.base, path)
    }
}

impl Binding {
    pub fn parse(
        value: &Value,
        kind: &str,
        file: &str,
        doc: usize,
        base: &str,
    ) -> Result<Binding, String> {
        let name =
            meta_str(value, "name").ok_or_else(|| format!("a {kind} without metadata.name"))?;
        let role_ref = value
            .get("roleRef")
            .ok_or_else(|| format!("{kind} {name}: no roleRef"))?;
        let role_kind = role_ref
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let role_name = role_ref
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{kind} {name}: roleRef has no name"))?
            .to_owned();
        let subjects = value
            .get("subjects")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|s| Subject {
                        kind: s
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        name: s
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        namespace: s
                            .get("namespace")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Binding {
            cluster: kind == "ClusterRoleBinding",
            name: name.to_owned(),
            namespace: meta_str(value, "namespace").unwrap_or("default").to_owned(),
            role_kind,
            role_name,
            subjects,
            bootstrap: is_bootstrap(value),
            file: file.to_owned(),
            doc,
            base: base.to_owned(),
        })
    }

    fn pointer(&self, path: &str) -> String {
        format!("#{}{}{}", self.doc, self.base, path)
    }

    fn display(&self) -> String {
        if self.cluster {
            format!("ClusterRoleBinding {}", self.name)
        } else {
            format!("RoleBinding {}/{}", self.namespace, self.name)
        }
    }
}

/// A capability worth a finding when a binding grants it.
struct Capability {
    rule: &'static str,
    severity: Severity,
    what: &'static str,
    /// (apiGroup, resource, verb) triples; any one suffices. An empty verb: any verb.
    grants: &'static [(&'static str, &'static str, &'static str)],
}

const CAPABILITIES: &[Capability] = &[
    Capability {
        rule: "k8s.rbac-read-secrets",
        severity: Severity::High,
        what: "read secrets (get/list/watch on secrets)",
        grants: &[
            ("", "secrets", "get"),
            ("", "secrets", "list"),
            ("", "secrets", "watch"),
        ],
    },
    Capability {
        rule: "k8s.rbac-pod-exec",
        severity: Severity::High,
        what: "run commands in containers (create on pods/exec or pods/attach)",
        grants: &[("", "pods/exec", "create"), ("", "pods/attach", "create")],
    },
    Capability {
        rule: "k8s.rbac-token-create",
        severity: Severity::High,
        what: "mint tokens for service accounts (create on serviceaccounts/token) and act as them",
        grants: &[("", "serviceaccounts/token", "create")],
    },
    Capability {
        rule: "k8s.rbac-node-proxy",
        severity: Severity::High,
        what: "reach the kubelet API of nodes (any verb on nodes/proxy), which runs commands in \
               every pod of the node and bypasses admission and audit",
        grants: &[("", "nodes/proxy", "")],
    },
    Capability {
        rule: "k8s.rbac-escalate",
        severity: Severity::High,
        what: "grant themselves more (escalate or bind on roles/clusterroles)",
        grants: &[
            ("rbac.authorization.k8s.io", "roles", "escalate"),
            ("rbac.authorization.k8s.io", "clusterroles", "escalate"),
            ("rbac.authorization.k8s.io", "roles", "bind"),
            ("rbac.authorization.k8s.io", "clusterroles", "bind"),
        ],
    },
    Capability {
        rule: "k8s.rbac-impersonate",
        severity: Severity::High,
        what: "impersonate users, groups or service accounts",
        grants: &[
            ("", "users", "impersonate"),
            ("", "groups", "impersonate"),
            ("", "serviceaccounts", "impersonate"),
        ],
    },
    Capability {
        rule: "k8s.rbac-create-pods",
        severity: Severity::Medium,
        what: "create pods (and so run as any service account of the namespace)",
        grants: &[("", "pods", "create")],
    },
    Capability {
        rule: "k8s.rbac-port-forward",
        severity: Severity::Medium,
        what: "port-forward into pods (create on pods/portforward)",
        grants: &[("", "pods/portforward", "create")],
    },
];

/// The role a binding refers to, as Kubernetes resolves it; `None` when it cannot be.
enum Resolved<'c> {
    Found(&'c Role),
    /// The built-in cluster-admin, not in the manifests.
    BuiltinClusterAdmin,
}

fn resolve<'c>(roles: &'c [Role], binding: &Binding) -> Option<Resolved<'c>> {
    let found = match binding.role_kind.as_str() {
        "ClusterRole" => roles
            .iter()
            .find(|r| r.cluster && r.name == binding.role_name),
        // Only a RoleBinding can refer to a Role, and only one of its own namespace.
        "Role" if !binding.cluster => roles.iter().find(|r| {
            !r.cluster && r.name == binding.role_name && r.namespace == binding.namespace
        }),
        _ => return None,
    };
    match found {
        Some(role) => Some(Resolved::Found(role)),
        None if binding.role_kind == "ClusterRole" && binding.role_name == "cluster-admin" => {
            Some(Resolved::BuiltinClusterAdmin)
        }
        None => None,
    }
}

/// All RBAC findings.
///
/// One binding of one subject to an all-powerful role is one finding: the admin finding names
/// the capabilities it implies as evidence instead of repeating each as a finding of its own.
pub(crate) fn findings(roles: &[Role], bindings: &[Binding]) -> Vec<Finding> {
    let mut out = Vec::new();
    for role in roles {
        wildcard_findings(role, &mut out);
    }
    for binding in bindings {
        binding_findings(roles, binding, &mut out);
    }
    out
}

/// What a binding grants through the role it names.
struct Grant {
    role_label: String,
    /// The role is built in: editing it is undone, and it is shared by every cluster user.
    builtin: bool,
    /// Every verb on every resource.
    admin: bool,
    capabilities: Vec<&'static Capability>,
    /// Writes, wildcards or sensitive subresources.
    dangerous: bool,
}

fn grant(roles: &[Role], binding: &Binding) -> Option<Grant> {
    let (rules, role_label, builtin) = match resolve(roles, binding)? {
        Resolved::Found(role) => (role.rules.as_slice(), role_label(role), role.builtin),
        Resolved::BuiltinClusterAdmin => (&[][..], "ClusterRole cluster-admin".to_owned(), true),
    };
    let admin = binding.role_kind == "ClusterRole" && binding.role_name == "cluster-admin"
        || rules.iter().any(PolicyRule::is_full_admin);
    let capabilities = CAPABILITIES
        .iter()
        .filter(|cap| {
            admin
                || cap
                    .grants
                    .iter()
                    .any(|(g, r, v)| rules.iter().any(|rule| rule.grants(g, r, v)))
        })
        .collect();
    Some(Grant {
        role_label,
        builtin,
        admin,
        capabilities,
        dangerous: admin || rules.iter().any(is_dangerous),
    })
}

fn binding_findings(roles: &[Role], binding: &Binding, out: &mut Vec<Finding>) {
    let grant = grant(roles, binding);
    let dangerous = grant.as_ref().is_some_and(|g| g.dangerous);
    for (i, subject) in binding.subjects.iter().enumerate() {
        let location =
            Location::file(&binding.file).with_pointer(binding.pointer(&format!("/subjects/{i}")));
        let who = subject_finding(binding, subject, dangerous, location.clone());
        match &grant {
            Some(grant) if grant.admin => {
                // The subject's own risk (anonymous, everyone, a default account) is part of
                // the same cause: one binding to fix.
                out.push(admin_finding(binding, subject, grant, location, who));
            }
            Some(grant) => {
                out.extend(who);
                for cap in &grant.capabilities {
                    out.push(capability_finding(
                        binding,
                        subject,
                        grant,
                        cap,
                        location.clone(),
                    ));
                }
            }
            None => out.extend(who),
        }
    }
}

fn capability_finding(
    binding: &Binding,
    subject: &Subject,
    grant: &Grant,
    cap: &Capability,
    location: Location,
) -> Finding {
    let role_label = &grant.role_label;
    let remediation = if grant.builtin {
        format!(
            "remove {} from {}, or bind it to a narrower role; {role_label} is built in and \
             reconciled by the API server, so do not edit it",
            subject.display(),
            binding.display()
        )
    } else {
        format!(
            "remove {} from {} or bind it to a narrower role; if no subject bound to \
             {role_label} needs to {}, remove that permission from the role",
            subject.display(),
            binding.display(),
            cap.what
        )
    };
    Finding::new(
        cap.rule,
        cap.severity,
        subject.display(),
        location,
        format!(
            "{} can {} {}",
            subject.display(),
            cap.what,
            scope_text(binding)
        ),
        format!(
            "{} binds {} to {role_label}, which lets it {}.",
            binding.display(),
            subject.display(),
            cap.what
        ),
    )
    .with_remediation(remediation)
    .with_evidence("binding", binding.display())
    .with_evidence("role", role_label.clone())
}

fn role_label(role: &Role) -> String {
    if role.cluster {
        format!("ClusterRole {}", role.name)
    } else {
        format!("Role {}/{}", role.namespace, role.name)
    }
}

fn scope_text(binding: &Binding) -> String {
    if binding.cluster {
        "in every namespace".to_owned()
    } else {
        format!("in namespace {}", binding.namespace)
    }
}

/// The one finding for a subject bound to every permission. `who` is the finding the
/// subject alone would give (anonymous, every authenticated identity, a default service
/// account); it is folded in.
fn admin_finding(
    binding: &Binding,
    subject: &Subject,
    grant: &Grant,
    location: Location,
    who: Option<Finding>,
) -> Finding {
    let (rule, severity) = if binding.cluster {
        ("k8s.rbac-cluster-admin", Severity::Critical)
    } else {
        ("k8s.rbac-namespace-admin", Severity::High)
    };
    let role_label = &grant.role_label;
    let rights: Vec<&str> = grant.capabilities.iter().map(|c| c.what).collect();
    let mut implies: Vec<&str> = grant.capabilities.iter().map(|c| c.rule).collect();
    let mut detail = format!(
        "{} binds {} to {role_label}, which allows every verb on every resource of every API \
         group {}; among others it can {}.",
        binding.display(),
        subject.display(),
        scope_text(binding),
        rights.join("; ")
    );
    if let Some(who) = &who {
        implies.push(&who.rule);
        detail.push(' ');
        detail.push_str(&who.detail);
    }
    let fix_role = if grant.builtin {
        format!(
            " Do not edit {role_label}: it is built in, shared by every admin binding, and the \
             API server restores it."
        )
    } else {
        String::new()
    };
    let remediation = format!(
        "remove {} from {} (delete the binding if it is its only subject), then grant it a \
         role listing only the verbs and resources it needs, bound with a RoleBinding in the \
         namespaces where it needs them.{fix_role}",
        subject.display(),
        binding.display()
    );
    Finding::new(
        rule,
        severity.max(who.as_ref().map_or(severity, |w| w.severity)),
        subject.display(),
        location,
        format!(
            "{} has every permission {} through {}",
            subject.display(),
            scope_text(binding),
            binding.display()
        ),
        detail,
    )
    .with_remediation(remediation)
    .with_evidence("binding", binding.display())
    .with_evidence("role", role_label.clone())
    .with_evidence("implied_rights", rights)
    .with_evidence("implies", implies)
}

fn wildcard_findings(role: &Role, out: &mut Vec<Finding>) {
    for (i, rule) in role.rules.iter().enumerate() {
        let fields = [
            ("apiGroups", &rule.api_groups),
            ("resources", &rule.resources),
            ("verbs", &rule.verbs),
        ];
        for (field, values) in fields {
            let Some(j) = values.iter().position(|v| v == "*") else {
                continue;
            };
            let label = role_label(role);
            out.push(
                Finding::new(
                    "k8s.rbac-wildcard",
                    Severity::Medium,
                    label.clone(),
                    Location::file(&role.file).with_pointer(role.pointer(&format!("/rules/{i}/{field}/{j}"))),
                    format!("{label} uses a wildcard in {field}"),
                    format!(
                        "rule {i} of {label} grants \"*\" {field}, which also covers any added later."
                    ),
                )
                .with_remediation(format!("list the {field} this role needs instead of \"*\"")),
            );
        }
    }
}

/// Whether a rule grants more than reading ordinary resources: a wildcard, a wildcard
/// subresource, a write or privilege verb, or one of the sensitive capabilities.
fn is_dangerous(rule: &PolicyRule) -> bool {
    const WRITE: [&str; 8] = [
        "*",
        "create",
        "update",
        "patch",
        "delete",
        "escalate",
        "bind",
        "impersonate",
    ];
    rule.api_groups
        .iter()
        .chain(&rule.resources)
        .any(|v| v == "*" || v.ends_with("/*"))
        || rule.verbs.iter().any(|v| WRITE.contains(&v.as_str()))
        || CAPABILITIES
            .iter()
            .any(|c| c.grants.iter().any(|(g, r, v)| rule.grants(g, r, v)))
}

/// The finding a subject gives by who it is, whatever the role: unauthenticated callers,
/// every authenticated identity (for a role that grants more than reads), or a default
/// service account.
fn subject_finding(
    binding: &Binding,
    subject: &Subject,
    dangerous: bool,
    location: Location,
) -> Option<Finding> {
    let target = format!("{} {}", binding.role_kind, binding.role_name);
    let finding = match (subject.kind.as_str(), subject.name.as_str()) {
        ("User" | "Group", "system:anonymous" | "system:unauthenticated") => Finding::new(
            "k8s.rbac-anonymous-binding",
            Severity::Critical,
            subject.display(),
            location,
            format!("{} binds unauthenticated callers to {target}", binding.display()),
            format!("anyone who can reach the API server gets {target} {}.", scope_text(binding)),
        )
        .with_remediation(format!("remove subject {} from {}", subject.name, binding.display())),
        ("Group", "system:authenticated") if dangerous => Finding::new(
            "k8s.rbac-all-authenticated-binding",
            Severity::High,
            subject.display(),
            location,
            format!("{} binds every authenticated identity to {target}", binding.display()),
            format!("any user or service account of the cluster gets {target} {}, which grants writes, \
                     wildcards or sensitive subresources.", scope_text(binding)),
        )
        .with_remediation("bind named users or groups instead of system:authenticated"),
        ("ServiceAccount", "default") if !binding.bootstrap => Finding::new(
            "k8s.rbac-default-service-account",
            Severity::Medium,
            subject.display(),
            location,
            format!("{} grants {target} to a default service account", binding.display()),
            "every pod that names no service account runs as the default one and gets these permissions."
                .to_owned(),
        )
        .with_remediation("create a dedicated service account for the workload that needs these permissions"),
        _ => return None,
    };
    Some(finding)
}
