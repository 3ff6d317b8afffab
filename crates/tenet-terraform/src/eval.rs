//! Static evaluation of HCL expressions into JSON.
//!
//! What needs no provider is evaluated; everything else is kept as `"${<expression>}"`.

use std::collections::BTreeMap;

use hcl::expr::{Expression, FuncCall, ObjectKey, TemplateExpr, TraversalOperator};
use hcl::structure::{Body, Structure};
use hcl::template::{Element, Template};
use serde_json::{Map, Value};

use crate::{Inputs, VarSource};

/// Expressions nested deeper than this are kept unevaluated.
const MAX_DEPTH: usize = 64;

/// Variable defaults and locals, evaluated.
pub(crate) struct Scope {
    variables: BTreeMap<String, Value>,
    locals: BTreeMap<String, Value>,
}

impl Scope {
    pub(crate) fn build(inputs: &Inputs<'_>) -> Scope {
        let mut scope = Scope {
            variables: BTreeMap::new(),
            locals: BTreeMap::new(),
        };
        let empty = Scope {
            variables: BTreeMap::new(),
            locals: BTreeMap::new(),
        };
        for (name, source) in &inputs.variables {
            let value = match source {
                VarSource::Hcl(expr) => eval(expr, &empty, 0),
                VarSource::Json(v) => (*v).clone(),
            };
            scope.variables.insert(name.clone(), value);
        }
        // Locals may refer to each other in any order: evaluate until nothing changes, at
        // most once per local (a chain cannot be longer than that).
        for _ in 0..=inputs.locals.len().min(32) {
            let mut next = BTreeMap::new();
            for (name, source) in &inputs.locals {
                let value = match source {
                    VarSource::Hcl(expr) => eval(expr, &scope, 0),
                    VarSource::Json(v) => scope.resolve_json((*v).clone()),
                };
                next.insert(name.clone(), value);
            }
            let done = next == scope.locals;
            scope.locals = next;
            if done {
                break;
            }
        }
        scope
    }

    /// Resolves strings of `.tf.json` bodies that are exactly `${var.x}` or `${local.x}`.
    pub(crate) fn resolve_json(&self, value: Value) -> Value {
        self.resolve_json_at(value, 0)
    }

    fn resolve_json_at(&self, value: Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return value;
        }
        match value {
            Value::String(s) => {
                let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
                    return Value::String(s);
                };
                let path: Vec<&str> = inner.split('.').collect();
                match self.lookup(&path) {
                    Some(v) => v,
                    None => Value::String(s),
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.resolve_json_at(v, depth + 1))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.resolve_json_at(v, depth + 1)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// `var.x.y` or `local.x[0]` as a path of names.
    fn lookup(&self, path: &[&str]) -> Option<Value> {
        let (root, rest) = path.split_first()?;
        let (name, rest) = rest.split_first()?;
        let base = match *root {
            "var" => self.variables.get(*name)?,
            "local" => self.locals.get(*name)?,
            _ => return None,
        };
        lookup_path(base, rest).cloned()
    }
}

/// Follows object keys and array indices.
pub(crate) fn lookup_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = value;
    for step in path {
        current = match current {
            Value::Object(map) => map.get(*step)?,
            Value::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A block body as JSON: attributes evaluated, nested blocks as arrays under their name.
pub(crate) fn body_to_json(body: &Body, scope: &Scope) -> Value {
    body_at(body, scope, 0)
}

fn body_at(body: &Body, scope: &Scope, depth: usize) -> Value {
    let mut map = Map::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                map.insert(attr.key.as_str().to_owned(), eval(&attr.expr, scope, depth));
            }
            Structure::Block(block) => {
                let mut nested = if depth > MAX_DEPTH {
                    Value::Object(Map::new())
                } else {
                    body_at(&block.body, scope, depth + 1)
                };
                if !block.labels.is_empty()
                    && let Value::Object(m) = &mut nested
                {
                    m.insert(
                        "__labels".to_owned(),
                        Value::Array(
                            block
                                .labels
                                .iter()
                                .map(|l| Value::String(l.as_str().to_owned()))
                                .collect(),
                        ),
                    );
                }
                let entry = map
                    .entry(block.identifier.as_str().to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.push(nested);
                } else {
                    // An attribute and a block of the same name: keep both, block last.
                    let previous = entry.take();
                    *entry = Value::Array(vec![previous, nested]);
                }
            }
        }
    }
    Value::Object(map)
}

/// `${<expression>}`: an expression kept for a consumer to resolve.
fn unresolved(expr: &Expression) -> Value {
    let text = hcl::format::to_string(expr).unwrap_or_else(|_| "?".to_owned());
    Value::String(format!("${{{}}}", text.trim()))
}

pub(crate) fn eval(expr: &Expression, scope: &Scope, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return unresolved(expr);
    }
    let d = depth + 1;
    match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => Value::Array(items.iter().map(|e| eval(e, scope, d)).collect()),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                let key = match key {
                    ObjectKey::Identifier(id) => id.as_str().to_owned(),
                    ObjectKey::Expression(e) => match eval(e, scope, d) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => return unresolved(expr),
                };
                map.insert(key, eval(value, scope, d));
            }
            Value::Object(map)
        }
        Expression::TemplateExpr(template) => eval_template(template, expr, scope, d),
        Expression::Traversal(traversal) => {
            let Expression::Variable(root) = &traversal.expr else {
                return unresolved(expr);
            };
            let mut path = vec![root.as_str().to_owned()];
            for op in &traversal.operators {
                match op {
                    TraversalOperator::GetAttr(id) => path.push(id.as_str().to_owned()),
                    TraversalOperator::LegacyIndex(i) => path.push(i.to_string()),
                    TraversalOperator::Index(index) => match eval(index, scope, d) {
                        Value::String(s) => path.push(s),
                        Value::Number(n) => path.push(n.to_string()),
                        _ => return unresolved(expr),
                    },
                    TraversalOperator::AttrSplat | TraversalOperator::FullSplat => {
                        return unresolved(expr);
                    }
                }
            }
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            scope.lookup(&refs).unwrap_or_else(|| unresolved(expr))
        }
        Expression::FuncCall(call) => eval_call(call, expr, scope, d),
        Expression::Parenthesis(inner) => eval(inner, scope, d),
        Expression::Conditional(cond) => match eval(&cond.cond_expr, scope, d) {
            Value::Bool(true) => eval(&cond.true_expr, scope, d),
            Value::Bool(false) => eval(&cond.false_expr, scope, d),
            _ => unresolved(expr),
        },
        _ => unresolved(expr),
    }
}

fn eval_template(template: &TemplateExpr, expr: &Expression, scope: &Scope, d: usize) -> Value {
    let raw = match template {
        TemplateExpr::Heredoc(heredoc)
            if matches!(heredoc.strip, hcl::expr::HeredocStripMode::Indent) =>
        {
            strip_indent(&heredoc.template)
        }
        TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
        TemplateExpr::QuotedString(s) => s.clone(),
    };
    let Ok(parsed) = raw.parse::<Template>() else {
        return unresolved(expr);
    };
    let elements = parsed.elements();
    if let [Element::Interpolation(only)] = elements {
        return eval(&only.expr, scope, d);
    }
    let mut out = String::new();
    for element in elements {
        match element {
            Element::Literal(text) => out.push_str(text.as_str()),
            Element::Interpolation(interp) => match eval(&interp.expr, scope, d) {
                Value::String(s) => out.push_str(&s),
                Value::Null => {}
                other => out.push_str(&other.to_string()),
            },
            Element::Directive(_) => return unresolved(expr),
        }
    }
    Value::String(out)
}

/// `<<-EOT` heredocs: the smallest indentation of the non-blank lines is removed.
fn strip_indent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(
            line.get(indent.min(line.len() - line.trim_start().len())..)
                .unwrap_or(line),
        );
    }
    out
}

fn eval_call(call: &FuncCall, expr: &Expression, scope: &Scope, d: usize) -> Value {
    if !call.name.namespace.is_empty() || call.expand_final {
        return unresolved(expr);
    }
    let args: Vec<Value> = call.args.iter().map(|a| eval(a, scope, d)).collect();
    let one = || match args.as_slice() {
        [v] => Some(v.clone()),
        _ => None,
    };
    let result = match call.name.name.as_str() {
        "jsonencode" => one().and_then(|v| serde_json::to_string(&v).ok().map(Value::String)),
        "jsondecode" => one()
            .and_then(|v| v.as_str().map(str::to_owned))
            .and_then(|s| serde_json::from_str(&s).ok()),
        "tolist" | "toset" | "tomap" | "sensitive" | "nonsensitive" => one(),
        "tostring" => one().map(|v| match v {
            Value::String(s) => Value::String(s),
            other => Value::String(other.to_string()),
        }),
        "lower" => one().and_then(|v| v.as_str().map(|s| Value::String(s.to_lowercase()))),
        "upper" => one().and_then(|v| v.as_str().map(|s| Value::String(s.to_uppercase()))),
        "concat" => {
            let mut out = Vec::new();
            let mut ok = true;
            for a in &args {
                match a {
                    Value::Array(items) => out.extend(items.iter().cloned()),
                    _ => ok = false,
                }
            }
            ok.then_some(Value::Array(out))
        }
        "merge" => {
            let mut out = Map::new();
            let mut ok = true;
            for a in &args {
                match a {
                    Value::Object(m) => out.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    _ => ok = false,
                }
            }
            ok.then_some(Value::Object(out))
        }
        "join" => match args.as_slice() {
            [Value::String(sep), Value::Array(items)] => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(|parts| Value::String(parts.join(sep))),
            _ => None,
        },
        _ => None,
    };
    result.unwrap_or_else(|| unresolved(expr))
}
