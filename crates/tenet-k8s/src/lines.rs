//! Line numbers for findings: where each document of a YAML stream starts, and the line of
//! the node a `#<doc>/path` pointer names.
//!
//! Documents are split as a YAML parser splits them: a `---` or `...` marker counts only at
//! column 0 (YAML forbids both there inside any scalar, so an indented `---` inside a block
//! scalar is text), and a stream's leading comments and directives open no document.
//!
//! The node walk is indentation-aware and made for the block style kubectl and Helm emit
//! (`key: value`, `- item`, compact sequences under a key, block scalars, comments). It does
//! not enter flow collections: a node inside `{...}` or `[...]` gets the line where that
//! collection starts when it closes on the same line, else the document's start line. Where
//! the walk cannot follow a pointer (an alias, a merge key, a complex key), the document's
//! start line is used, never a guess.

use std::collections::BTreeMap;

use tenet_finding::Location;

/// One document of a stream: which lines it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocSpan {
    /// 0-based index of the first line after the `---` marker, or of the marker itself when
    /// content follows it on the same line.
    pub first: usize,
    /// 0-based index one past its last line.
    pub end: usize,
    /// 1-based line of its first content line (the marker's line for an empty document).
    pub start_line: u32,
}

/// A file's lines and its documents, by their index in the stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceLines {
    lines: Vec<String>,
    docs: Vec<DocSpan>,
}

/// The lines of every file read as text, by file name.
pub(crate) type Sources = BTreeMap<String, SourceLines>;

impl SourceLines {
    /// The lines and documents of `text`, which a YAML parser read as `documents`
    /// documents; `None` when the split disagrees, so that no line is given rather than a
    /// wrong one.
    pub(crate) fn new(text: &str, documents: usize) -> Option<SourceLines> {
        let docs = split_documents(text);
        (docs.len() == documents).then(|| SourceLines {
            lines: text.lines().map(str::to_owned).collect(),
            docs,
        })
    }

    /// The 1-based line of the node `pointer` (`#<doc>/path`) names: its own line where the
    /// walk finds it reliably, else the start of its document.
    pub(crate) fn line(&self, pointer: &str) -> Option<u32> {
        let rest = pointer.strip_prefix('#')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let doc: usize = rest.get(..digits)?.parse().ok()?;
        let path = rest.get(digits..)?;
        let span = self.docs.get(doc)?;
        let tokens: Vec<String> = match path {
            "" => Vec::new(),
            p => p
                .strip_prefix('/')?
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect(),
        };
        let lines = self.lines.get(span.first..span.end)?;
        let region = doc_region(lines, span.first);
        Some(walk(region, &tokens).unwrap_or(span.start_line))
    }
}

/// Fills `location.line` from `sources` where the file was read as text and the line is not
/// known yet.
pub(crate) fn fill(sources: &Sources, location: &mut Location) {
    if location.line.is_some() {
        return;
    }
    let line = sources
        .get(&location.file)
        .zip(location.pointer.as_deref())
        .and_then(|(source, pointer)| source.line(pointer));
    if let Some(line) = line {
        location.line = Some(line);
    }
}

/// `---` / `...` at column 0, alone or followed by whitespace; returns what follows it.
fn marker<'t>(line: &'t str, mark: &str) -> Option<&'t str> {
    let rest = line.strip_prefix(mark)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

/// Every document of the stream, empty ones included, in the order a YAML parser reports
/// them.
pub(crate) fn split_documents(text: &str) -> Vec<DocSpan> {
    struct Open {
        first: usize,
        explicit: bool,
        start_line: Option<u32>,
        marker_line: u32,
    }
    let close = |open: Option<Open>, end: usize, out: &mut Vec<DocSpan>| {
        if let Some(open) = open
            && (open.explicit || open.start_line.is_some())
        {
            out.push(DocSpan {
                first: open.first,
                end,
                start_line: open.start_line.unwrap_or(open.marker_line),
            });
        }
    };
    let line_no = |i: usize| u32::try_from(i + 1).unwrap_or(u32::MAX);

    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if let Some(rest) = marker(line, "---") {
            close(open.take(), i, &mut out);
            let inline = is_content(rest);
            open = Some(Open {
                first: if inline { i } else { i + 1 },
                explicit: true,
                start_line: inline.then(|| line_no(i)),
                marker_line: line_no(i),
            });
        } else if marker(line, "...").is_some() {
            close(open.take(), i, &mut out);
        } else if is_content(line) {
            match &mut open {
                Some(doc) => {
                    doc.start_line.get_or_insert(line_no(i));
                }
                // A directive (`%YAML`) belongs to the document its `---` opens.
                None if line.starts_with('%') => {}
                None => {
                    open = Some(Open {
                        first: i,
                        explicit: false,
                        start_line: Some(line_no(i)),
                        marker_line: line_no(i),
                    });
                }
            }
        }
    }
    close(open, text.lines().count(), &mut out);
    out
}

/// One line as the walk sees it: its number, its indentation and its text after it.
#[derive(Debug, Clone, Copy)]
struct Line<'t> {
    no: u32,
    indent: usize,
    text: &'t str,
}

impl Line<'_> {
    fn is_blank(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }
}

fn line_of(no: usize, raw: &str) -> Line<'_> {
    let raw = raw.trim_end();
    let text = raw.trim_start_matches(' ');
    Line {
        no: u32::try_from(no + 1).unwrap_or(u32::MAX),
        indent: raw.len() - text.len(),
        text,
    }
}

/// The document's lines, with content on its `---` line moved onto a line of its own.
fn doc_region(lines: &[String], first: usize) -> Vec<Line<'_>> {
    let mut out: Vec<Line<'_>> = Vec::with_capacity(lines.len());
    for (i, raw) in lines.iter().enumerate() {
        let line = line_of(first + i, raw);
        match (i, marker(raw, "---")) {
            (0, Some(rest)) => {
                let text = rest.trim_start();
                out.push(Line {
                    indent: raw.len() - text.len(),
                    text: text.trim_end(),
                    ..line
                });
            }
            _ => out.push(line),
        }
    }
    out
}

/// Follows `tokens` from the document root; `None` when the walk cannot place the node.
fn walk(mut region: Vec<Line<'_>>, tokens: &[String]) -> Option<u32> {
    let mut found = region.iter().find(|l| !l.is_blank())?.no;
    for token in tokens {
        let first = *region.iter().find(|l| !l.is_blank())?;
        if first.text.starts_with(['{', '[']) {
            // A flow collection: exact only when it closes on the line it opens.
            return closes_on_line(first.text).then_some(found);
        }
        let (line, child) = if is_item(first.text) {
            item(&region, first.indent, token.parse().ok()?)?
        } else {
            entry(&region, first.indent, token)?
        };
        found = line;
        region = child;
    }
    Some(found)
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Whether the brackets of a flow collection that opens the text close before it ends.
fn closes_on_line(text: &str) -> bool {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Item `index` of the block sequence whose dashes stand at `indent`: its line, and its
/// content as a region (the text after `- ` becomes a line of its own).
fn item<'t>(region: &[Line<'t>], indent: usize, index: usize) -> Option<(u32, Vec<Line<'t>>)> {
    let starts: Vec<usize> = region
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_blank() && l.indent == indent)
        .map(|(i, _)| i)
        .collect();
    // Anything but an item at the dashes' indentation means this is not a plain sequence.
    if starts
        .iter()
        .any(|&i| region.get(i).is_some_and(|l| !is_item(l.text)))
    {
        return None;
    }
    let at = *starts.get(index)?;
    let end = starts.get(index + 1).copied().unwrap_or(region.len());
    let head = region.get(at)?;
    let mut child: Vec<Line<'t>> = Vec::new();
    let rest = head.text.get(1..).unwrap_or_default();
    let text = rest.trim_start_matches(' ');
    if !text.is_empty() && !text.starts_with('#') {
        child.push(Line {
            no: head.no,
            indent: head.indent + 1 + (rest.len() - text.len()),
            text,
        });
    }
    child.extend(region.get(at + 1..end)?.iter().copied());
    Some((head.no, child))
}

/// The entry `key` of the block mapping whose keys stand at `indent`: its line, and its
/// value as a region.
fn entry<'t>(region: &[Line<'t>], indent: usize, key: &str) -> Option<(u32, Vec<Line<'t>>)> {
    let at = region
        .iter()
        .position(|l| !l.is_blank() && l.indent == indent && value_after(l.text, key).is_some())?;
    let head = region.get(at)?;
    let value = value_after(head.text, key)?;
    let value = strip_properties(value);
    let child = if value.starts_with(['|', '>', '*']) {
        // A block scalar or an alias: nothing to walk into.
        Vec::new()
    } else if value.is_empty() || value.starts_with('#') {
        // A block value: the deeper lines, or a compact sequence at the key's indentation.
        region
            .get(at + 1..)?
            .iter()
            .take_while(|l| {
                l.is_blank() || l.indent > indent || (l.indent == indent && is_item(l.text))
            })
            .copied()
            .collect()
    } else {
        vec![Line {
            no: head.no,
            indent: indent + head.text.len() - value.len(),
            text: value,
        }]
    };
    Some((head.no, child))
}

/// What follows `key:` on a line that starts with the key (plain or quoted), trimmed.
fn value_after<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let after_key = [
        text.strip_prefix(key),
        text.strip_prefix('"')
            .and_then(|t| t.strip_prefix(key))
            .and_then(|t| t.strip_prefix('"')),
        text.strip_prefix('\'')
            .and_then(|t| t.strip_prefix(key))
            .and_then(|t| t.strip_prefix('\'')),
    ];
    after_key.into_iter().flatten().find_map(|rest| {
        let rest = rest.strip_prefix(':')?;
        (rest.is_empty() || rest.starts_with([' ', '\t'])).then(|| rest.trim())
    })
}

/// Drops an anchor (`&name`) and a tag (`!tag`) before a value.
fn strip_properties(mut value: &str) -> &str {
    while value.starts_with(['&', '!']) {
        value = value
            .split_once([' ', '\t'])
            .map_or("", |(_, rest)| rest.trim_start());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> SourceLines {
        SourceLines::new(text, split_documents(text).len()).unwrap()
    }

    #[test]
    fn documents_split_only_at_column_zero_markers() {
        let text = "# leading comment\n%YAML 1.2\n---\na: 1\n---\n\n# c\nb: |\n  text\n  ---\n  more\n\
                    c: 2\n---\n--- d: 3\n...\ne: 4\n";
        let spans = split_documents(text);
        let starts: Vec<u32> = spans.iter().map(|s| s.start_line).collect();
        // a, b (the indented --- is block-scalar text), an empty document, d, e.
        assert_eq!(starts, vec![4, 8, 13, 14, 16]);
        assert!(split_documents("").is_empty());
        assert_eq!(split_documents("# only a comment\n").len(), 0);
        assert_eq!(split_documents("x: 1\n---\n").len(), 2);
    }

    #[test]
    fn pointers_walk_block_style_yaml() {
        let text = "\
---
# Source: chart/templates/policy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
  labels:
    app.kubernetes.io/name: web
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes:
  - Ingress
  ingress:
  - from:
    - namespaceSelector: {}
    - podSelector:
        matchLabels:
          app: client
    ports:
      - port: 80
        protocol: TCP
  description: |
    spec:
    - not: a node
";
        let s = source(text);
        assert_eq!(s.line("#0"), Some(3));
        assert_eq!(s.line("#0/spec"), Some(9));
        assert_eq!(s.line("#0/spec/podSelector"), Some(10));
        assert_eq!(s.line("#0/spec/podSelector/matchLabels"), Some(10));
        assert_eq!(s.line("#0/spec/policyTypes/0"), Some(12));
        assert_eq!(s.line("#0/spec/ingress/0"), Some(14));
        assert_eq!(s.line("#0/spec/ingress/0/from/1"), Some(16));
        assert_eq!(
            s.line("#0/spec/ingress/0/from/1/podSelector/matchLabels/app"),
            Some(18)
        );
        assert_eq!(s.line("#0/spec/ingress/0/ports/0/protocol"), Some(21));
        assert_eq!(
            s.line("#0/metadata/labels/app.kubernetes.io~1name"),
            Some(8)
        );
        // Not there, or past a leaf: the document's start, not a guess.
        assert_eq!(s.line("#0/spec/egress/0"), Some(3));
        assert_eq!(s.line("#0/spec/description/spec"), Some(3));
        assert_eq!(s.line("#1/spec"), None);
    }

    #[test]
    fn lists_quoted_keys_and_multi_line_flow() {
        let text = "a: 1\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n\
                    - apiVersion: v1\n  \"kind\": Role\n  rules: [\n    {verbs: [get]}]\n";
        let s = source(text);
        assert_eq!(s.line("#1/items/1"), Some(8));
        assert_eq!(s.line("#1/items/1/kind"), Some(9));
        assert_eq!(s.line("#1/items/1/rules"), Some(10));
        // Inside a flow collection that spans lines: the document's start.
        assert_eq!(s.line("#1/items/1/rules/0/verbs"), Some(3));
    }
}
