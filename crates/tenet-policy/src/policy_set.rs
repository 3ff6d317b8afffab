//! Parsing policy sources into one Cedar policy set with stable ids, and strict validation.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use crate::error::{PolicyError, ValidationIssue, line_column};
use crate::index::ScopeIndex;

/// One named policy text (normally a `.cedar` file).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
}

/// How policies without an `@id` annotation are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `<source name>:policyN`, unique across files (policy directories).
    Qualified,
    /// Cedar's own `policyN` (a single source, as in Cedar's own tools and test corpus).
    Plain,
}

/// Parsed policies with unique ids, and the source each came from.
pub(crate) struct ParsedPolicies {
    pub(crate) set: PolicySet,
    /// Policy id -> index into the sources.
    origin: HashMap<String, usize>,
}

impl ParsedPolicies {
    /// Parses every source and gives each policy its id: the `@id` annotation when present,
    /// else the position id chosen by `naming`. Ids must be unique across all sources.
    pub(crate) fn parse(sources: &[Source<'_>], naming: Naming) -> Result<Self, PolicyError> {
        let mut set = PolicySet::new();
        let mut origin = HashMap::new();
        for (index, source) in sources.iter().enumerate() {
            let parsed = PolicySet::from_str(source.text).map_err(|e| parse_error(source, &e))?;
            if let Some(template) = parsed.templates().next() {
                return Err(PolicyError::Template {
                    file: source.name.to_owned(),
                    id: template.id().to_string(),
                });
            }
            for policy in parsed.policies() {
                let id = policy_id(source, policy, naming)?;
                if let Some(&first) = origin.get(&id) {
                    return Err(PolicyError::DuplicateId {
                        first_file: sources
                            .get(first)
                            .map_or_else(String::new, |s: &Source<'_>| s.name.to_owned()),
                        second_file: source.name.to_owned(),
                        id,
                    });
                }
                set.add(policy.new_id(PolicyId::new(&id))).map_err(|_| {
                    PolicyError::DuplicateId {
                        id: id.clone(),
                        first_file: source.name.to_owned(),
                        second_file: source.name.to_owned(),
                    }
                })?;
                origin.insert(id, index);
            }
        }
        Ok(Self { set, origin })
    }

    /// Sorted policy ids.
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.origin.keys().cloned().collect();
        ids.sort_unstable();
        ids
    }

    /// Each policy id with a digest of what the policy says, sorted by id.
    pub(crate) fn versions(&self) -> Vec<(String, String)> {
        let mut versions: Vec<(String, String)> = self
            .set
            .policies()
            .map(|p| (p.id().to_string(), policy_digest(p)))
            .collect();
        versions.sort_unstable();
        versions
    }

    /// Ids of `permit` policies with no scope constraint and no condition: they allow every
    /// principal every action on every resource. Sorted.
    pub(crate) fn unconditional_permits(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .set
            .policies()
            .filter(|p| p.effect() == cedar_policy::Effect::Permit)
            .filter(|p| {
                let Ok(json) = p.to_json() else {
                    return false;
                };
                let all = |key: &str| {
                    json.get(key)
                        .and_then(|c| c.get("op"))
                        .and_then(|o| o.as_str())
                        == Some("All")
                };
                let no_conditions = json
                    .get("conditions")
                    .and_then(|c| c.as_array())
                    .is_none_or(|c| c.is_empty());
                all("principal") && all("action") && all("resource") && no_conditions
            })
            .map(|p| p.id().to_string())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The scope index over these policies.
    pub(crate) fn index(&self, sources: &[Source<'_>]) -> Result<ScopeIndex, PolicyError> {
        ScopeIndex::build(self.set.policies()).map_err(|id| {
            // Unreachable in practice: `parse` already made the ids unique.
            let file = self
                .origin
                .get(&id)
                .and_then(|&i| sources.get(i))
                .map_or_else(String::new, |s| s.name.to_owned());
            PolicyError::DuplicateId {
                id,
                first_file: file.clone(),
                second_file: file,
            }
        })
    }

    /// Validates against `schema` in strict mode; returns the validator's warnings.
    pub(crate) fn validate(
        &self,
        schema: &Schema,
        sources: &[Source<'_>],
    ) -> Result<Vec<String>, PolicyError> {
        let validator = Validator::new(schema.clone());
        let result = validator.validate(&self.set, ValidationMode::Strict);
        let warnings = result
            .validation_warnings()
            .map(ToString::to_string)
            .collect();
        if result.validation_passed() {
            return Ok(warnings);
        }
        let mut issues: Vec<ValidationIssue> = result
            .validation_errors()
            .map(|e| {
                let policy_id = e.policy_id().to_string();
                let source = self.origin.get(&policy_id).and_then(|&i| sources.get(i));
                let (line, column) = source
                    .and_then(|s| first_offset(e).map(|o| line_column(s.text, o)))
                    .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                ValidationIssue {
                    file: source.map_or_else(String::new, |s| s.name.to_owned()),
                    policy_id,
                    line,
                    column,
                    message: e.to_string(),
                }
            })
            .collect();
        issues.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Err(PolicyError::Validation { issues })
    }
}

/// The id a policy is known by: its `@id`, else its position id.
fn policy_id(
    source: &Source<'_>,
    policy: &cedar_policy::Policy,
    naming: Naming,
) -> Result<String, PolicyError> {
    match policy.annotation("id") {
        Some("") => Err(PolicyError::EmptyId {
            file: source.name.to_owned(),
            policy: policy.id().to_string(),
        }),
        Some(id) => Ok(id.to_owned()),
        None => Ok(match naming {
            Naming::Qualified => format!("{}:{}", source.name, policy.id()),
            Naming::Plain => policy.id().to_string(),
        }),
    }
}

fn parse_error(source: &Source<'_>, errors: &cedar_policy::ParseErrors) -> PolicyError {
    let (line, column) = errors
        .iter()
        .next()
        .and_then(|e| first_offset(e))
        .map(|o| line_column(source.text, o))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    PolicyError::Parse {
        file: source.name.to_owned(),
        line,
        column,
        message,
    }
}

/// The byte offset of the first labelled span of a diagnostic.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic.labels()?.next().map(|label| label.offset())
}

/// SHA-256 (hex, first 16 digits) of the policy's effect, scope and conditions in Cedar's JSON
/// form, its annotations left out: the same for the same rule wherever and however it is
/// written, another one for a policy edited under the same id.
fn policy_digest(policy: &cedar_policy::Policy) -> String {
    let text = match policy.to_json() {
        Ok(mut json) => {
            if let Some(fields) = json.as_object_mut() {
                fields.remove("annotations");
            }
            json.to_string()
        }
        Err(_) => policy.to_string(),
    };
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest.get(..8).unwrap_or_default())
}
