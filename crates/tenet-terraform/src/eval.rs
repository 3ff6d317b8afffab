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
#[derive(Clone)]
pub(crate) struct Scope {
    variables: BTreeMap<String, Value>,
    locals: BTreeMap<String, Value>,
    /// Iterators of `dynamic` blocks being expanded: name -> `{"key": .., "value": ..}`.
    iterators: BTreeMap<String, Value>,
    /// Variables of `for` expressions being evaluated.
    bound: BTreeMap<String, Value>,
}

impl Scope {
    pub(crate) fn build(inputs: &Inputs<'_>) -> Scope {
        let mut scope = Scope {
            variables: BTreeMap::new(),
            locals: BTreeMap::new(),
            iterators: BTreeMap::new(),
            bound: BTreeMap::new(),
        };
        let empty = Scope {
            variables: BTreeMap::new(),
            locals: BTreeMap::new(),
            iterators: BTreeMap::new(),
            bound: BTreeMap::new(),
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
        if let Some(value) = self.bound.get(*root) {
            return lookup_path(value, rest).cloned();
        }
        if let Some(iterator) = self.iterators.get(*root) {
            return lookup_path(iterator, rest).cloned();
        }
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
/// `dynamic "x"` blocks are expanded into `x` blocks when their `for_each` is known; when it is
/// not, the block is left out and the reason is added to `problems`.
pub(crate) fn body_to_json(body: &Body, scope: &Scope, problems: &mut Vec<String>) -> Value {
    body_at(body, scope, 0, problems)
}

/// Expands one `dynamic "label" { for_each = ..; iterator = ..; content { .. } }` block.
fn expand_dynamic(
    block: &hcl::structure::Block,
    scope: &Scope,
    depth: usize,
    problems: &mut Vec<String>,
) -> Option<(String, Vec<Value>)> {
    let label = block.labels.first()?.as_str().to_owned();
    let attr = |name: &str| {
        block.body.iter().find_map(|s| match s {
            Structure::Attribute(a) if a.key.as_str() == name => Some(&a.expr),
            _ => None,
        })
    };
    let iterator = match attr("iterator") {
        Some(Expression::Variable(v)) => v.as_str().to_owned(),
        Some(_) => {
            problems.push(format!("dynamic block {label:?}: iterator must be a name"));
            return None;
        }
        None => label.clone(),
    };
    let Some(for_each) = attr("for_each") else {
        problems.push(format!("dynamic block {label:?} has no for_each"));
        return None;
    };
    let content = block.body.iter().find_map(|s| match s {
        Structure::Block(b) if b.identifier.as_str() == "content" => Some(&b.body),
        _ => None,
    });
    let Some(content) = content else {
        problems.push(format!("dynamic block {label:?} has no content block"));
        return None;
    };
    let items: Vec<(Value, Value)> = match eval(for_each, scope, depth) {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
        _ => {
            problems.push(format!(
                "dynamic block {label:?} not evaluated: its for_each is not known without running Terraform"
            ));
            return None;
        }
    };
    let mut out = Vec::new();
    for (key, value) in items {
        let mut inner = scope.clone();
        let mut binding = Map::new();
        binding.insert("key".into(), key);
        binding.insert("value".into(), value);
        inner
            .iterators
            .insert(iterator.clone(), Value::Object(binding));
        out.push(body_at(content, &inner, depth + 1, problems));
    }
    Some((label, out))
}

fn body_at(body: &Body, scope: &Scope, depth: usize, problems: &mut Vec<String>) -> Value {
    let mut map = Map::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                map.insert(attr.key.as_str().to_owned(), eval(&attr.expr, scope, depth));
            }
            Structure::Block(block)
                if block.identifier.as_str() == "dynamic" && depth <= MAX_DEPTH =>
            {
                if let Some((label, expanded)) = expand_dynamic(block, scope, depth, problems) {
                    let entry = map.entry(label).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(items) = entry {
                        items.extend(expanded);
                    }
                }
            }
            Structure::Block(block) => {
                let mut nested = if depth > MAX_DEPTH {
                    Value::Object(Map::new())
                } else {
                    body_at(&block.body, scope, depth + 1, problems)
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
        Expression::Variable(v) => scope
            .bound
            .get(v.as_str())
            .cloned()
            .unwrap_or_else(|| unresolved(expr)),
        Expression::ForExpr(for_expr) => eval_for(for_expr, expr, scope, d),
        Expression::Operation(op) => eval_operation(op, expr, scope, d),
        Expression::Conditional(cond) => match eval(&cond.cond_expr, scope, d) {
            Value::Bool(true) => eval(&cond.true_expr, scope, d),
            Value::Bool(false) => eval(&cond.false_expr, scope, d),
            _ => unresolved(expr),
        },
        _ => unresolved(expr),
    }
}

/// Comparison, logic and arithmetic over known operands.
fn eval_operation(op: &hcl::expr::Operation, expr: &Expression, scope: &Scope, d: usize) -> Value {
    use hcl::expr::{BinaryOperator as B, Operation, UnaryOperator as U};
    let result = match op {
        Operation::Unary(u) => match (u.operator, eval(&u.expr, scope, d)) {
            (U::Not, Value::Bool(b)) => Some(Value::Bool(!b)),
            (U::Neg, Value::Number(n)) => n.as_f64().and_then(|f| number(-f)),
            _ => None,
        },
        Operation::Binary(b) => {
            let lhs = eval(&b.lhs_expr, scope, d);
            let rhs = eval(&b.rhs_expr, scope, d);
            let unknown = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("${"));
            if unknown(&lhs) || unknown(&rhs) {
                None
            } else {
                let num = |v: &Value| v.as_f64();
                match b.operator {
                    B::Eq => Some(Value::Bool(lhs == rhs)),
                    B::NotEq => Some(Value::Bool(lhs != rhs)),
                    B::And => match (lhs, rhs) {
                        (Value::Bool(x), Value::Bool(y)) => Some(Value::Bool(x && y)),
                        _ => None,
                    },
                    B::Or => match (lhs, rhs) {
                        (Value::Bool(x), Value::Bool(y)) => Some(Value::Bool(x || y)),
                        _ => None,
                    },
                    op => match (num(&lhs), num(&rhs)) {
                        (Some(x), Some(y)) => match op {
                            B::Less => Some(Value::Bool(x < y)),
                            B::LessEq => Some(Value::Bool(x <= y)),
                            B::Greater => Some(Value::Bool(x > y)),
                            B::GreaterEq => Some(Value::Bool(x >= y)),
                            B::Plus => number(x + y),
                            B::Minus => number(x - y),
                            B::Mul => number(x * y),
                            B::Div if y != 0.0 => number(x / y),
                            B::Mod if y != 0.0 => number(x % y),
                            _ => None,
                        },
                        _ => None,
                    },
                }
            }
        }
    };
    result.unwrap_or_else(|| unresolved(expr))
}

/// A JSON number, integral when the value is.
fn number(f: f64) -> Option<Value> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        let i = f as i64;
        Some(Value::from(i))
    } else {
        serde_json::Number::from_f64(f).map(Value::Number)
    }
}

/// `[for v in coll : expr if cond]` and `{for k, v in coll : kexpr => vexpr}` over a known
/// collection; anything not known keeps the whole expression unresolved.
fn eval_for(f: &hcl::expr::ForExpr, expr: &Expression, scope: &Scope, d: usize) -> Value {
    let items: Vec<(Value, Value)> = match eval(&f.collection_expr, scope, d) {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
        _ => return unresolved(expr),
    };
    let mut list = Vec::new();
    let mut object = Map::new();
    for (key, value) in items {
        let mut inner = scope.clone();
        if let Some(k) = &f.key_var {
            inner.bound.insert(k.as_str().to_owned(), key);
        }
        inner.bound.insert(f.value_var.as_str().to_owned(), value);
        if let Some(cond) = &f.cond_expr {
            match eval(cond, &inner, d) {
                Value::Bool(true) => {}
                Value::Bool(false) => continue,
                _ => return unresolved(expr),
            }
        }
        let v = eval(&f.value_expr, &inner, d);
        match &f.key_expr {
            None => list.push(v),
            Some(kexpr) => {
                let Value::String(k) = eval(kexpr, &inner, d) else {
                    return unresolved(expr);
                };
                if f.grouping {
                    let entry = object.entry(k).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(group) = entry {
                        group.push(v);
                    }
                } else {
                    object.insert(k, v);
                }
            }
        }
    }
    if f.key_expr.is_some() {
        Value::Object(object)
    } else {
        Value::Array(list)
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
