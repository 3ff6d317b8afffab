//! Terraform configuration read statically: `.tf` files through a real HCL parser (`hcl-rs`)
//! and `.tf.json` files, turned into [`Block`]s whose bodies are plain JSON.
//!
//! Tenet audits what a configuration *declares* (IAM policies, security groups) without
//! running Terraform, so expressions are evaluated only as far as they can be without a
//! provider: literals, lists, objects, `var.x` (the variable's default), `local.x`, string
//! templates, heredocs, `jsonencode(...)` and a few pure functions. A reference that needs
//! state (`aws_iam_policy.x.arn`, `data.aws_iam_policy_document.y.json`) is kept as
//! Terraform's own interpolation text, `"${aws_iam_policy.x.arn}"`, so an analysis can follow
//! it to the referenced block with [`Module::get`] and [`reference_target`].
//!
//! Nested blocks (`ingress { .. }`, `statement { .. }`) become arrays of objects under the
//! block name, in order. In `.tf.json` a nested block may be written as one object or an
//! array; [`Block::nested`] reads either.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod eval;

use std::collections::BTreeMap;

use hcl::structure::{Body, Structure};
use serde_json::{Map, Value};
use tenet_finding::Skipped;

use crate::eval::{Scope, body_to_json, lookup_path};

/// Files larger than this are not read (a Terraform file of 16 MiB is not hand-written).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Whether a block is a managed resource or a data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `resource "kind" "name" { .. }`
    Resource,
    /// `data "kind" "name" { .. }`
    Data,
}

/// One `resource` or `data` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Resource or data source.
    pub mode: Mode,
    /// The first label: `aws_iam_policy`, `aws_security_group`, `aws_iam_policy_document`.
    pub kind: String,
    /// The second label.
    pub name: String,
    /// `aws_iam_policy.x`, or `data.aws_iam_policy_document.x` for data sources.
    pub address: String,
    /// The file it was read from, as given.
    pub file: String,
    /// 1-based line of the block header, where it could be found.
    pub line: Option<u32>,
    /// The evaluated body: an object of attributes; nested blocks as arrays of objects.
    pub body: Value,
}

impl Block {
    /// An attribute of the body.
    pub fn attr(&self, name: &str) -> Option<&Value> {
        self.body.get(name)
    }

    /// A string attribute of the body.
    pub fn str_attr(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }

    /// The nested blocks called `name`, whether written as blocks, an array or (in
    /// `.tf.json`) a single object.
    pub fn nested(&self, name: &str) -> Vec<&Value> {
        nested_in(&self.body, name)
    }
}

/// The nested blocks called `name` inside any evaluated body or nested block.
pub fn nested_in<'a>(body: &'a Value, name: &str) -> Vec<&'a Value> {
    match body.get(name) {
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    }
}

/// If `value` is exactly one unresolved reference, `"${aws_iam_policy.x.arn}"`, the address
/// of the block it points at (`aws_iam_policy.x`, or `data.aws_iam_policy_document.y`) and
/// the attribute (`arn`, `json`).
pub fn reference_target(value: &str) -> Option<(String, String)> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    if inner.contains("${") || inner.contains(char::is_whitespace) {
        return None;
    }
    let parts: Vec<&str> = inner.split('.').collect();
    let take = if parts.first() == Some(&"data") { 3 } else { 2 };
    if parts.len() <= take {
        return None;
    }
    let address = parts.get(..take)?.join(".");
    // Drop an index such as `x[0]` from the block name.
    let address = match address.find('[') {
        Some(i) => address.get(..i)?.to_owned(),
        None => address,
    };
    let attribute = parts.get(take..)?.join(".");
    Some((address, attribute))
}

/// A Terraform configuration: the blocks of all files of one module.
#[derive(Debug, Clone, Default)]
pub struct Module {
    /// Resource and data blocks, in file order.
    pub blocks: Vec<Block>,
    /// Files, or parts of files, that could not be used, with the reason.
    pub skipped: Vec<Skipped>,
}

/// One parsed file before evaluation.
enum Parsed {
    Hcl {
        file: String,
        text: String,
        body: Body,
    },
    Json {
        file: String,
        value: Value,
    },
}

impl Module {
    /// Reads the files of one module (`name`, `text`): names ending in `.tf.json` are read as
    /// JSON, all others as HCL. Variables and locals are shared across the files.
    pub fn from_files(files: &[(String, String)]) -> Module {
        let mut module = Module::default();
        let mut parsed = Vec::new();
        for (name, text) in files {
            if text.len() > MAX_FILE_BYTES {
                module.skipped.push(Skipped::new(
                    name,
                    format!("larger than {MAX_FILE_BYTES} bytes; not read"),
                ));
                continue;
            }
            if name.ends_with(".tf.json") {
                match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => parsed.push(Parsed::Json {
                        file: name.clone(),
                        value,
                    }),
                    Ok(_) => module.skipped.push(Skipped::new(
                        name,
                        "Terraform JSON must be an object at the top level",
                    )),
                    Err(e) => module
                        .skipped
                        .push(Skipped::new(name, format!("invalid JSON: {e}"))),
                }
            } else if nesting_depth(text) > MAX_NESTING {
                module.skipped.push(Skipped::new(
                    name,
                    format!("brackets nested deeper than {MAX_NESTING}; not parsed"),
                ));
            } else {
                match hcl::parse(text) {
                    Ok(body) => parsed.push(Parsed::Hcl {
                        file: name.clone(),
                        text: text.clone(),
                        body,
                    }),
                    Err(e) => module.skipped.push(Skipped::new(
                        name,
                        format!("invalid HCL: {}", one_line(&e.to_string())),
                    )),
                }
            }
        }

        let scope = Scope::build(&parsed_inputs(&parsed));
        for p in &parsed {
            match p {
                Parsed::Hcl { file, text, body } => {
                    module.read_hcl_blocks(file, text, body, &scope);
                }
                Parsed::Json { file, value } => module.read_json_blocks(file, value, &scope),
            }
        }
        module
    }

    /// The block with this address (`aws_iam_policy.x`, `data.aws_iam_policy_document.y`).
    pub fn get(&self, address: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.address == address)
    }

    /// The blocks of one kind, resources and data sources alike.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |b| b.kind == kind)
    }

    fn read_hcl_blocks(&mut self, file: &str, text: &str, body: &Body, scope: &Scope) {
        for structure in body.iter() {
            let Structure::Block(block) = structure else {
                continue;
            };
            let mode = match block.identifier.as_str() {
                "resource" => Mode::Resource,
                "data" => Mode::Data,
                _ => continue,
            };
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let (Some(kind), Some(name), 2) = (labels.first(), labels.get(1), labels.len()) else {
                self.skipped.push(Skipped::new(
                    file,
                    format!(
                        "a {} block needs exactly two labels, found {}",
                        block.identifier.as_str(),
                        labels.len()
                    ),
                ));
                continue;
            };
            let line = header_line(text, block.identifier.as_str(), kind, name);
            let mut problems = Vec::new();
            let body = body_to_json(&block.body, scope, &mut problems);
            let address = match mode {
                Mode::Resource => format!("{kind}.{name}"),
                Mode::Data => format!("data.{kind}.{name}"),
            };
            for problem in problems {
                self.skipped
                    .push(Skipped::new(format!("{file}:{address}"), problem));
            }
            self.push(mode, kind, name, file, line, body);
        }
    }

    fn read_json_blocks(&mut self, file: &str, value: &Value, scope: &Scope) {
        for (section, mode) in [("resource", Mode::Resource), ("data", Mode::Data)] {
            let Some(kinds) = value.get(section) else {
                continue;
            };
            // Terraform JSON allows the section as an object or an array of objects.
            let kind_maps: Vec<&Map<String, Value>> = match kinds {
                Value::Object(m) => vec![m],
                Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
                _ => {
                    self.skipped
                        .push(Skipped::new(file, format!("`{section}` must be an object")));
                    continue;
                }
            };
            for kinds in kind_maps {
                for (kind, names) in kinds {
                    let Some(names) = names.as_object() else {
                        self.skipped.push(Skipped::new(
                            file,
                            format!("`{section}.{kind}` must be an object of named blocks"),
                        ));
                        continue;
                    };
                    for (name, body) in names {
                        // A block given as an array of bodies uses the first (Terraform
                        // rejects more than one for the same name).
                        let body = match body {
                            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                            other => other.clone(),
                        };
                        let body = scope.resolve_json(body);
                        self.push(mode, kind, name, file, None, body);
                    }
                }
            }
        }
    }

    fn push(
        &mut self,
        mode: Mode,
        kind: &str,
        name: &str,
        file: &str,
        line: Option<u32>,
        body: Value,
    ) {
        let address = match mode {
            Mode::Resource => format!("{kind}.{name}"),
            Mode::Data => format!("data.{kind}.{name}"),
        };
        self.blocks.push(Block {
            mode,
            kind: kind.to_owned(),
            name: name.to_owned(),
            address,
            file: file.to_owned(),
            line,
            body,
        });
    }
}

/// Variables (defaults) and locals as written, before evaluation.
pub(crate) struct Inputs<'a> {
    pub(crate) variables: BTreeMap<String, VarSource<'a>>,
    pub(crate) locals: Vec<(String, VarSource<'a>)>,
}

/// Where a variable default or local comes from.
pub(crate) enum VarSource<'a> {
    Hcl(&'a hcl::Expression),
    Json(&'a Value),
}

fn parsed_inputs(parsed: &[Parsed]) -> Inputs<'_> {
    let mut inputs = Inputs {
        variables: BTreeMap::new(),
        locals: Vec::new(),
    };
    for p in parsed {
        match p {
            Parsed::Hcl { body, .. } => {
                for structure in body.iter() {
                    let Structure::Block(block) = structure else {
                        continue;
                    };
                    match block.identifier.as_str() {
                        "variable" => {
                            let Some(name) = block.labels.first() else {
                                continue;
                            };
                            let default = block.body.iter().find_map(|s| match s {
                                Structure::Attribute(a) if a.key.as_str() == "default" => {
                                    Some(&a.expr)
                                }
                                _ => None,
                            });
                            if let Some(expr) = default {
                                inputs
                                    .variables
                                    .insert(name.as_str().to_owned(), VarSource::Hcl(expr));
                            }
                        }
                        "locals" => {
                            for s in block.body.iter() {
                                if let Structure::Attribute(a) = s {
                                    inputs
                                        .locals
                                        .push((a.key.as_str().to_owned(), VarSource::Hcl(&a.expr)));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            Parsed::Json { value, .. } => {
                if let Some(vars) = value.get("variable").and_then(Value::as_object) {
                    for (name, def) in vars {
                        if let Some(default) = def.get("default") {
                            inputs
                                .variables
                                .insert(name.clone(), VarSource::Json(default));
                        }
                    }
                }
                if let Some(locals) = value.get("locals").and_then(Value::as_object) {
                    for (name, v) in locals {
                        inputs.locals.push((name.clone(), VarSource::Json(v)));
                    }
                }
            }
        }
    }
    inputs
}

/// The 1-based line of `resource "kind" "name"` in `text`, found by reading the header
/// tokens of each line (hcl-rs does not keep positions).
fn header_line(text: &str, keyword: &str, kind: &str, name: &str) -> Option<u32> {
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix(keyword) else {
            continue;
        };
        let mut labels = Vec::new();
        let mut rest = rest.trim_start();
        while let Some(after_quote) = rest.strip_prefix('"') {
            let Some(end) = after_quote.find('"') else {
                break;
            };
            labels.push(after_quote.get(..end).unwrap_or_default());
            rest = after_quote.get(end + 1..).unwrap_or_default().trim_start();
        }
        if labels.len() == 2
            && labels.first() == Some(&kind)
            && labels.get(1) == Some(&name)
            && rest.starts_with('{')
        {
            return u32::try_from(i + 1).ok();
        }
    }
    None
}

/// HCL nested deeper than this is refused before parsing (the parser recurses).
const MAX_NESTING: usize = 256;

/// The deepest nesting of `{`, `[` and `(` in `text`, counting brackets inside strings too
/// (an over-estimate, which is the safe side for a guard).
fn nesting_depth(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut max = 0;
    for b in text.bytes() {
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Looks up `path` (`["a", "b"]`) inside a JSON value, for callers that walk bodies.
pub fn get_path<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    lookup_path(value, path)
}
