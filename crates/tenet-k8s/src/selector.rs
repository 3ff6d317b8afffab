//! Kubernetes label selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
//! DoesNotExist), with the empty selector matching everything.

use std::collections::BTreeMap;

use serde_json::Value;

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// The operator of one `matchExpressions` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A parsed label selector. Requirements are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    pub match_labels: Labels,
    pub expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a selector object. An absent or `null` value is the empty selector.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let mut selector = LabelSelector::default();
        let object = match value {
            Value::Null => return Ok(selector),
            Value::Object(object) => object,
            other => return Err(format!("selector must be an object, found {}", kind(other))),
        };
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let value = scalar_string(value)
                        .ok_or_else(|| format!("matchLabels value of {key:?} is not a string"))?;
                    selector.match_labels.insert(key.clone(), value);
                }
            }
            Some(other) => return Err(format!("matchLabels must be a map, found {}", kind(other))),
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let requirement = parse_requirement(item)
                        .map_err(|e| format!("matchExpressions/{i}: {e}"))?;
                    selector.expressions.push(requirement);
                }
            }
            Some(other) => {
                return Err(format!(
                    "matchExpressions must be a list, found {}",
                    kind(other)
                ));
            }
        }
        Ok(selector)
    }

    /// True when the selector has no requirement (matches every label set).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.expressions.is_empty()
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let labels_ok = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok && self.expressions.iter().all(|r| r.matches(labels))
    }

    /// A selector requiring exactly these labels.
    pub fn from_labels(labels: &Labels) -> Self {
        LabelSelector {
            match_labels: labels.clone(),
            expressions: Vec::new(),
        }
    }
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

fn parse_requirement(item: &Value) -> Result<Requirement, String> {
    let key = item
        .get("key")
        .and_then(Value::as_str)
        .ok_or("missing key")?
        .to_owned();
    let operator = match item.get("operator").and_then(Value::as_str) {
        Some("In") => Operator::In,
        Some("NotIn") => Operator::NotIn,
        Some("Exists") => Operator::Exists,
        Some("DoesNotExist") => Operator::DoesNotExist,
        Some(other) => return Err(format!("unknown operator {other:?}")),
        None => return Err("missing operator".to_owned()),
    };
    let values = match item.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| scalar_string(v).ok_or_else(|| "values must be strings".to_owned()))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(format!("values must be a list, found {}", kind(other))),
    };
    let needs_values = matches!(operator, Operator::In | Operator::NotIn);
    if needs_values && values.is_empty() {
        return Err(format!("operator {operator:?} on {key:?} needs values"));
    }
    if !needs_values && !values.is_empty() {
        return Err(format!("operator {operator:?} on {key:?} takes no values"));
    }
    Ok(Requirement {
        key,
        operator,
        values,
    })
}

/// A label value as a string; YAML numbers and booleans are accepted as their text.
pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A short name of a JSON value's type for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let s = LabelSelector::parse(&json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}]}))
        .unwrap();
        assert!(s.matches(&labels(&[("tier", "web"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("tier", "web"), ("team", "a"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("tier", "db"), ("team", "a")])));
        assert!(!s.matches(&labels(&[("tier", "web")])));
        assert!(!s.matches(&labels(&[("tier", "web"), ("team", "a"), ("legacy", "")])));
    }

    #[test]
    fn empty_selector_matches_all_and_bad_operator_is_refused() {
        assert!(
            LabelSelector::parse(&json!({}))
                .unwrap()
                .matches(&Labels::new())
        );
        let err = LabelSelector::parse(&json!({"matchExpressions": [
            {"key": "a", "operator": "Like", "values": ["x"]}]}))
        .unwrap_err();
        assert!(err.contains("\"Like\""), "{err}");
        assert!(
            LabelSelector::parse(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))
                .is_err()
        );
    }
}
