//! Reading the paths given to `tenet assess` and recognising each input by its content.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::strict::StrictValue;
use serde_json::Value;
use tenet_finding::Skipped;

/// Files larger than this are not read.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// One recognised input.
#[derive(Debug, Clone)]
pub enum Input {
    /// A JSON document (IAM policy, authorization details, security groups, a Kubernetes
    /// object or List).
    Json {
        /// The file as named.
        file: String,
        /// Its content.
        value: Value,
        /// The text it was parsed from (for line numbers).
        text: String,
    },
    /// A YAML stream: its documents with their index (0-based). Empty documents are left out.
    Yaml {
        /// The file as named.
        file: String,
        /// The documents.
        docs: Vec<(usize, Value)>,
        /// The text they were parsed from (for line numbers).
        text: String,
    },
    /// The Terraform files (`.tf`, `.tf.json`) of one directory: one module.
    Terraform {
        /// The directory as named.
        dir: String,
        /// `(file, text)` pairs.
        files: Vec<(String, String)>,
    },
    /// A PostgreSQL connection URL.
    Postgres {
        /// The URL as given (it may hold a password: never print it).
        url: String,
    },
}

/// What [`gather`] found.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Recognised inputs, in path order.
    pub inputs: Vec<Input>,
    /// Files that were not used, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Reads every path (files, folders recursively, `postgres://` URLs).
/// `progress(done, total)` is called after each file. When a file that may hold IAM policies
/// (one that is not YAML) is among them, the AWS action catalogue is parsed on another thread
/// while the files are read.
pub fn gather(args: &[String], progress: &mut dyn FnMut(usize, usize)) -> Gathered {
    let mut gathered = Gathered::default();
    let mut files = Vec::new();
    for arg in args {
        match url_scheme(arg) {
            Some(scheme) if scheme == "postgres" || scheme == "postgresql" => {
                gathered.inputs.push(Input::Postgres { url: arg.clone() });
                continue;
            }
            Some(scheme) => {
                gathered.skipped.push(Skipped::new(
                    shown_arg(arg),
                    format!(
                        "unsupported URL scheme {scheme:?}: only postgres:// URLs are assessed"
                    ),
                ));
                continue;
            }
            None => {}
        }
        collect(Path::new(arg), arg, &mut files, &mut gathered.skipped, 0);
    }
    if files.iter().any(|f| {
        let lower = f.to_ascii_lowercase();
        !lower.ends_with(".yaml") && !lower.ends_with(".yml")
    }) {
        tenet_iam::catalogue::preload();
    }
    let total = files.len();
    let mut terraform: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (i, name) in files.iter().enumerate() {
        read_one(name, &mut gathered, &mut terraform);
        progress(i + 1, total);
    }
    for (dir, files) in terraform {
        gathered.inputs.push(Input::Terraform { dir, files });
    }
    gathered
}

/// The lowercase scheme when `arg` looks like a URL (`scheme://...`, any case, surrounding
/// spaces ignored).
pub fn url_scheme(arg: &str) -> Option<String> {
    let trimmed = arg.trim();
    let (scheme, _) = trimmed.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// How a command-line argument is shown: URLs without the password (`user:***@`).
pub fn shown_arg(arg: &str) -> String {
    if url_scheme(arg).is_none() {
        return arg.to_owned();
    }
    let trimmed = arg.trim();
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return trimmed.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            // A password can also sit in the query (`?password=`).
            let tail = mask_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", mask_query_password(tail)),
    }
}

fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", masked.join("&"))
}

/// Folders deeper than this are not walked (a loop through mounts, or a generated tree).
const MAX_DEPTH: usize = 32;

fn collect(
    path: &Path,
    shown: &str,
    out: &mut Vec<String>,
    skipped: &mut Vec<Skipped>,
    depth: usize,
) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            skipped.push(Skipped::new(shown, format!("cannot read: {e}")));
            return;
        }
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        match std::fs::metadata(path) {
            Ok(target) if target.is_file() => out.push(shown.to_owned()),
            // A link named on the command line is what the user asked for.
            Ok(target) if target.is_dir() && depth == 0 => {
                walk(path, shown, out, skipped, depth);
            }
            Ok(target) if target.is_dir() => skipped.push(Skipped::new(
                shown,
                "symbolic link to a folder inside a folder; not followed (name it to read it)",
            )),
            Ok(_) => skipped.push(Skipped::new(
                shown,
                "symbolic link to a special file (not a regular file or folder)",
            )),
            Err(e) => skipped.push(Skipped::new(shown, format!("broken symbolic link: {e}"))),
        }
        return;
    }
    if file_type.is_file() {
        out.push(shown.to_owned());
        return;
    }
    if !file_type.is_dir() {
        skipped.push(Skipped::new(shown, "not a regular file or folder"));
        return;
    }
    walk(path, shown, out, skipped, depth);
}

fn walk(path: &Path, shown: &str, out: &mut Vec<String>, skipped: &mut Vec<Skipped>, depth: usize) {
    if depth >= MAX_DEPTH {
        skipped.push(Skipped::new(
            shown,
            format!("folder nested deeper than {MAX_DEPTH}; not walked"),
        ));
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            skipped.push(Skipped::new(shown, format!("cannot list folder: {e}")));
            return;
        }
    };
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(raw) => skipped.push(Skipped::new(
                    format!("{}/{}", shown.trim_end_matches('/'), raw.to_string_lossy()),
                    "file name is not UTF-8",
                )),
            },
            Err(e) => skipped.push(Skipped::new(shown, format!("cannot list folder: {e}"))),
        }
    }
    names.sort();
    for name in names {
        // Tool state and version control, never configuration to audit.
        if matches!(
            name.as_str(),
            ".git" | ".terraform" | "node_modules" | ".hg" | ".svn"
        ) {
            continue;
        }
        // Kubernetes volume mounts keep each file twice: `..data/` (and `..<timestamp>/`)
        // hold the real files, the names beside them are links into it.
        if name.starts_with("..") {
            skipped.push(Skipped::new(
                format!("{}/{}", shown.trim_end_matches('/'), name),
                "Kubernetes volume internals; the files are read through the links beside them",
            ));
            continue;
        }
        let child_shown = format!("{}/{}", shown.trim_end_matches('/'), name);
        collect(&path.join(&name), &child_shown, out, skipped, depth + 1);
    }
}

fn read_one(
    name: &str,
    gathered: &mut Gathered,
    terraform: &mut BTreeMap<String, Vec<(String, String)>>,
) {
    let skip = |g: &mut Gathered, reason: String| g.skipped.push(Skipped::new(name, reason));
    match std::fs::metadata(name) {
        Ok(m) if m.len() > MAX_INPUT_BYTES => {
            return skip(
                gathered,
                format!("larger than {MAX_INPUT_BYTES} bytes; not read"),
            );
        }
        Ok(_) => {}
        Err(e) => return skip(gathered, format!("cannot read: {e}")),
    }
    let bytes = match std::fs::read(name) {
        Ok(b) => b,
        Err(e) => return skip(gathered, format!("cannot read: {e}")),
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => return skip(gathered, "not UTF-8 text".to_owned()),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
    if text.trim().is_empty() {
        return skip(gathered, "empty file".to_owned());
    }
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    let extension = base
        .trim_start_matches('.')
        .rsplit_once('.')
        .map(|(_, e)| e.to_owned());
    let kind = if lower.ends_with(".tf") || lower.ends_with(".tf.json") {
        Kind::Terraform
    } else if lower.ends_with(".json") {
        Kind::Json
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        Kind::Yaml
    } else if extension.is_none() {
        sniff(&text)
    } else if text.trim_start().starts_with(['{', '[']) {
        Kind::Json
    } else {
        return skip(
            gathered,
            format!(
                "not a configuration file (.{}): expected .json, .yaml, .yml, .tf or .tf.json, \
                 or a file without extension holding JSON, YAML or Terraform",
                extension.unwrap_or_default()
            ),
        );
    };
    match kind {
        Kind::Terraform => {
            let dir = match name.rfind('/') {
                Some(i) => name.get(..i).unwrap_or(".").to_owned(),
                None => ".".to_owned(),
            };
            terraform
                .entry(dir)
                .or_default()
                .push((name.to_owned(), text));
        }
        Kind::Json => match serde_json::from_str::<StrictValue>(&text).map(|v| v.0) {
            Ok(value) => gathered.inputs.push(Input::Json {
                file: name.to_owned(),
                value,
                text,
            }),
            Err(e) => skip(gathered, format!("invalid JSON: {e}")),
        },
        Kind::Yaml => {
            if flow_depth(&text) > MAX_FLOW_DEPTH {
                return skip(
                    gathered,
                    format!(
                        "YAML flow collections nested deeper than {MAX_FLOW_DEPTH}; not parsed"
                    ),
                );
            }
            let mut docs = Vec::new();
            for (i, doc) in yaml_serde::Deserializer::from_str(&text).enumerate() {
                match StrictValue::deserialize(doc).map(|v| v.0) {
                    Ok(Value::Null) => {}
                    Ok(value) => docs.push((i, value)),
                    Err(e) => {
                        // The whole file when its first document is broken, else the part.
                        let input = if docs.is_empty() {
                            name.to_owned()
                        } else {
                            format!("{name}#{i}")
                        };
                        gathered
                            .skipped
                            .push(Skipped::new(input, format!("invalid YAML: {e}")));
                        // After a syntax error the stream cannot be followed further.
                        break;
                    }
                }
            }
            if !docs.is_empty() {
                gathered.inputs.push(Input::Yaml {
                    file: name.to_owned(),
                    docs,
                    text,
                });
            } else if !gathered.skipped.iter().any(|s| s.input == name) {
                skip(gathered, "YAML with no documents".to_owned());
            }
        }
        Kind::Unknown => skip(
            gathered,
            "not a recognised format (expected JSON, YAML or Terraform by extension or content)"
                .to_owned(),
        ),
    }
}

/// YAML nested deeper than this in flow style (`[[[...]]]`) is refused before parsing: the
/// parser's cost grows with the square of the depth before its own limit applies.
const MAX_FLOW_DEPTH: usize = 256;

/// The deepest nesting of `[` and `{` (an over-estimate: brackets in strings count too).
fn flow_depth(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut max = 0;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

enum Kind {
    Json,
    Yaml,
    Terraform,
    Unknown,
}

/// Recognises a file without a telling extension by its first lines.
fn sniff(text: &str) -> Kind {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Kind::Json;
    }
    for line in text.lines().take(200) {
        let l = line.trim_start();
        if [
            "resource \"",
            "data \"",
            "variable \"",
            "provider \"",
            "module \"",
            "terraform {",
        ]
        .iter()
        .any(|p| l.starts_with(p))
        {
            return Kind::Terraform;
        }
        if l.starts_with("apiVersion:") || l.starts_with("kind:") {
            return Kind::Yaml;
        }
    }
    Kind::Unknown
}
