//! The generic path: any Cedar schema, entity set and request in Cedar's JSON formats, decided
//! by the same index and decision rules as Tenet requests. Used to check the engine against
//! Cedar's own integration corpus, and by `tenet policy explain` for what-if questions.

use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityUid, Request, Schema};
use cedar_policy_core::ast::EntityUID;
use serde_json::Value;

use crate::decision::Explanation;
use crate::error::PolicyError;
use crate::index::{Scope, ScopeIndex};
use crate::policy_set::{Naming, ParsedPolicies, Source};

/// The name the generic path gives its single policy text in messages.
const POLICIES_NAME: &str = "policies";

/// A schema, one policy text and an entity set, ready to answer requests.
///
/// Policies are named as Cedar names them (`policy0`, `policy1`, ... in text order) unless
/// they carry an `@id` annotation. Construction does not validate; call
/// [`RawEvaluator::validate`] for that, so an unvalidated set can still be evaluated, as
/// Cedar allows.
pub struct RawEvaluator {
    schema: Schema,
    policies_text: String,
    parsed: ParsedPolicies,
    index: ScopeIndex,
    entities: Entities,
}

impl std::fmt::Debug for RawEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEvaluator")
            .field("policies", &self.parsed.set.num_of_policies())
            .field("entities", &self.entities.len())
            .finish_non_exhaustive()
    }
}

impl RawEvaluator {
    /// Parses a schema (Cedar schema syntax), policies (Cedar syntax) and entities (Cedar's
    /// entity JSON, checked against the schema; the schema's actions are added).
    pub fn new(schema: &str, policies: &str, entities_json: &str) -> Result<Self, PolicyError> {
        let schema = Schema::from_cedarschema_str(schema)
            .map(|(schema, _warnings)| schema)
            .map_err(|e| PolicyError::Schema {
                message: e.to_string(),
            })?;
        let source = Source {
            name: POLICIES_NAME,
            text: policies,
        };
        let parsed = ParsedPolicies::parse(&[source], Naming::Plain)?;
        let index = parsed.index(&[source])?;
        let entities = Entities::from_json_str(entities_json, Some(&schema)).map_err(|e| {
            PolicyError::Entities {
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            schema,
            policies_text: policies.to_owned(),
            parsed,
            index,
            entities,
        })
    }

    /// Validates the policies against the schema in strict mode; returns the warnings.
    pub fn validate(&self) -> Result<Vec<String>, PolicyError> {
        let source = Source {
            name: POLICIES_NAME,
            text: &self.policies_text,
        };
        self.parsed.validate(&self.schema, &[source])
    }

    /// The policy ids, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        self.parsed.ids()
    }

    /// Decides one request given as JSON: `principal`, `action` and `resource` as
    /// `{"type": ..., "id": ...}` and `context` as an object (checked against the schema).
    /// A request that cannot be built is denied with the reason (fail closed).
    pub fn explain(&self, request: &Value) -> Explanation {
        match self.build(request) {
            Ok((request, principal, resource)) => {
                let principal_lineage = self.lineage(&principal);
                let resource_lineage = self.lineage(&resource);
                self.index.explain(
                    request.as_ref().clone(),
                    self.entities.as_ref(),
                    Scope {
                        ty: principal.as_ref().entity_type(),
                        uids: &principal_lineage,
                    },
                    Scope {
                        ty: resource.as_ref().entity_type(),
                        uids: &resource_lineage,
                    },
                    true,
                )
            }
            Err(error) => Explanation::failed(error),
        }
    }

    /// `uid`, then each of its ancestors in the entity set.
    fn lineage(&self, uid: &EntityUid) -> Vec<EntityUID> {
        std::iter::once(uid)
            .chain(self.entities.ancestors(uid).into_iter().flatten())
            .map(|u| u.as_ref().clone())
            .collect()
    }

    fn build(&self, request: &Value) -> Result<(Request, EntityUid, EntityUid), String> {
        let uid = |field: &str| {
            let value = request
                .get(field)
                .ok_or_else(|| format!("the request has no \"{field}\""))?;
            EntityUid::from_json(value.clone()).map_err(|e| format!("request {field}: {e}"))
        };
        let principal = uid("principal")?;
        let action = uid("action")?;
        let resource = uid("resource")?;
        let context_json = request
            .get("context")
            .cloned()
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        let context = Context::from_json_value(context_json, Some((&self.schema, &action)))
            .map_err(|e| format!("request context: {e}"))?;
        let request = Request::new(
            principal.clone(),
            action,
            resource.clone(),
            context,
            Some(&self.schema),
        )
        .map_err(|e| format!("request: {e}"))?;
        Ok((request, principal, resource))
    }
}

/// Decides one request over a schema, policies and entities (see [`RawEvaluator`]). Requests
/// given as JSON text; an unparsable request is denied, like any request that cannot be built.
pub fn evaluate_raw(
    schema: &str,
    policies: &str,
    entities_json: &str,
    request_json: &str,
) -> Result<Explanation, PolicyError> {
    let evaluator = RawEvaluator::new(schema, policies, entities_json)?;
    Ok(match Value::from_str(request_json) {
        Ok(request) => evaluator.explain(&request),
        Err(e) => Explanation::failed(format!("request is not JSON: {e}")),
    })
}
