//! Line numbers for JSON pointers: findings on JSON inputs carry a pointer such as
//! `/Statement/2`; this finds the line where that value starts in the original text, so
//! editors and code-scanning tools can jump to it.
//!
//! [`PointerIndex`] reads a document once and records the line of every value down to a
//! depth, so a file with thousands of findings is scanned once, not once per finding.

use std::collections::HashMap;

/// Values nested deeper than this are not indexed (their findings get the line of the
/// deepest indexed ancestor).
const INDEX_DEPTH: usize = 12;

/// The line of every value of one JSON text, by pointer.
#[derive(Debug, Default)]
pub struct PointerIndex {
    lines: HashMap<String, u32>,
}

impl PointerIndex {
    /// Indexes `text` (which should be JSON; anything else gives an empty or partial index).
    pub fn build(text: &str) -> PointerIndex {
        let mut scanner = Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            line: 1,
        };
        let mut index = PointerIndex::default();
        scanner.whitespace();
        let mut path = String::new();
        scanner.value(&mut path, 0, &mut index.lines);
        index
    }

    /// The 1-based line of the value at `pointer`, or of its deepest indexed ancestor.
    pub fn line(&self, pointer: &str) -> Option<u32> {
        let mut p = pointer;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            match p.rfind('/') {
                Some(i) => p = p.get(..i).unwrap_or(""),
                None => return None,
            }
        }
    }
}

/// The line where the value at `pointer` (RFC 6901) starts in `text` (one-off; use
/// [`PointerIndex`] for many pointers into one text).
pub fn line_of_pointer(text: &str, pointer: &str) -> Option<u32> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return None;
    }
    PointerIndex::build(text).line(pointer)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    line: u32,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// Records the value at the cursor under `path` and walks into it. False on malformed
    /// input (the index then stops growing).
    fn value(&mut self, path: &mut String, depth: usize, out: &mut HashMap<String, u32>) -> bool {
        if depth <= INDEX_DEPTH {
            out.entry(path.clone()).or_insert(self.line);
        }
        match self.peek() {
            Some(b'{') => {
                self.bump();
                let base = path.len();
                loop {
                    self.whitespace();
                    match self.peek() {
                        Some(b'}') => {
                            self.bump();
                            return true;
                        }
                        Some(b'"') => {}
                        _ => return false,
                    }
                    let Some(key) = self.key() else {
                        return false;
                    };
                    self.whitespace();
                    if self.bump() != Some(b':') {
                        return false;
                    }
                    self.whitespace();
                    path.push('/');
                    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    let ok = self.value(path, depth + 1, out);
                    path.truncate(base);
                    if !ok {
                        return false;
                    }
                    self.whitespace();
                    match self.bump() {
                        Some(b',') => {}
                        Some(b'}') => return true,
                        _ => return false,
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let base = path.len();
                let mut i = 0usize;
                loop {
                    self.whitespace();
                    if self.peek() == Some(b']') {
                        self.bump();
                        return true;
                    }
                    path.push('/');
                    path.push_str(&i.to_string());
                    let ok = self.value(path, depth + 1, out);
                    path.truncate(base);
                    if !ok {
                        return false;
                    }
                    self.whitespace();
                    match self.bump() {
                        Some(b',') => i += 1,
                        Some(b']') => return true,
                        _ => return false,
                    }
                }
            }
            Some(b'"') => self.skip_string(),
            Some(_) => {
                while !matches!(
                    self.peek(),
                    Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') | None
                ) {
                    self.bump();
                }
                true
            }
            None => false,
        }
    }

    /// Skips a string at the cursor (escapes honoured).
    fn skip_string(&mut self) -> bool {
        self.bump();
        loop {
            match self.bump() {
                Some(b'\\') => {
                    if self.bump().is_none() {
                        return false;
                    }
                }
                Some(b'"') => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// A key at the cursor, decoded (escapes are rare in keys: decoded only when present).
    fn key(&mut self) -> Option<String> {
        let start = self.at;
        let mut escaped = false;
        self.bump();
        loop {
            match self.bump()? {
                b'\\' => {
                    escaped = true;
                    self.bump()?;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = self.text.get(start..self.at)?;
        if escaped {
            serde_json::from_str(raw).ok()
        } else {
            raw.get(1..raw.len().saturating_sub(1)).map(str::to_owned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PointerIndex, line_of_pointer};

    const DOC: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
    {
      "Sid": "B",
      "Effect": "Allow",
      "Action": ["iam:*", "a\"b"],
      "Resource": "*"
    }
  ],
  "we/ird~key": {"x": [1, {"y": 2}]},
  "esc\u0061ped": {"z": 1}
}"#;

    #[test]
    fn finds_lines_of_pointers() {
        assert_eq!(line_of_pointer(DOC, ""), Some(1));
        assert_eq!(line_of_pointer(DOC, "/Statement"), Some(3));
        assert_eq!(line_of_pointer(DOC, "/Statement/0"), Some(4));
        assert_eq!(line_of_pointer(DOC, "/Statement/1"), Some(5));
        assert_eq!(line_of_pointer(DOC, "/Statement/1/Action"), Some(8));
        assert_eq!(line_of_pointer(DOC, "/we~1ird~0key/x/1/y"), Some(12));
        assert_eq!(line_of_pointer(DOC, "/escaped/z"), Some(13));
    }

    #[test]
    fn missing_parts_give_the_deepest_prefix() {
        assert_eq!(line_of_pointer(DOC, "/Statement/7"), Some(3));
        assert_eq!(line_of_pointer(DOC, "/Nope"), Some(1));
        assert_eq!(line_of_pointer(DOC, "no-slash"), None);
        assert_eq!(line_of_pointer("{\"a\": [", "/a/0"), Some(1));
        let index = PointerIndex::build(DOC);
        assert_eq!(index.line("/Statement/1/Sid"), Some(6));
    }
}
