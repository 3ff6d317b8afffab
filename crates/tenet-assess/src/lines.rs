//! Line numbers for JSON pointers: findings on JSON inputs carry a pointer such as
//! `/Statement/2`; this finds the line where that value starts in the original text, so
//! editors and code-scanning tools can jump to it.
//!
//! [`PointerIndex`] reads a document once and records the line of every value down to a
//! depth, so a file with thousands of findings is scanned once, not once per finding.
//! [`PointerIndex::build_for`] records only the values on the way to the pointers asked for
//! and walks past every other value without naming it.

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
        PointerIndex::scan(text, None)
    }

    /// Indexes only what [`PointerIndex::line`] needs to answer for `pointers`: the values at
    /// each pointer and at its ancestors. For a JSON text it answers those pointers as
    /// [`PointerIndex::build`] would; every other value is skipped by its brackets and strings
    /// alone, so in a text that is not JSON an error inside a skipped value goes unnoticed.
    pub fn build_for<'p>(text: &str, pointers: impl IntoIterator<Item = &'p str>) -> PointerIndex {
        // A text on one line (compact JSON): every value is on line 1, and the document's own
        // entry answers every pointer that names it or something in it, as the scan would.
        if !text.contains('\n') {
            let mut pointers = pointers.into_iter();
            let lines = if pointers.any(|p| p.is_empty() || p.starts_with('/')) {
                HashMap::from([(String::new(), 1)])
            } else {
                HashMap::new()
            };
            return PointerIndex { lines };
        }
        let mut wanted = Wanted::default();
        for pointer in pointers {
            wanted.add(pointer);
        }
        PointerIndex::scan(text, Some(&wanted))
    }

    fn scan(text: &str, wanted: Option<&Wanted<'_>>) -> PointerIndex {
        let mut scanner = Scanner {
            text,
            bytes: text.as_bytes(),
            at: 0,
            counted: 0,
            line: 1,
            wanted,
            lines: HashMap::new(),
        };
        scanner.whitespace();
        let mut path = String::new();
        let root = wanted.is_none_or(|w| w.root).then_some(&mut path);
        scanner.value(root, 0, 0);
        PointerIndex {
            lines: scanner.lines,
        }
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

/// The pointers asked for, as a tree of their reference tokens: node 0 is the document, and
/// a node's children are the members or elements on the way to some pointer. [`PointerIndex::line`]
/// looks a pointer up and then each prefix before a `/`, so every node is recorded.
#[derive(Debug, Default)]
struct Wanted<'p> {
    /// Whether any pointer names the document or something in it (`""` or `/...`; other
    /// text names nothing).
    root: bool,
    /// Each node's elements by array index (tokens that are array indices), sorted.
    indices: Vec<Vec<(usize, usize)>>,
    /// (node, reference token as written, `~0`/`~1` escapes included) to the child node.
    members: HashMap<(usize, &'p str), usize>,
}

impl<'p> Wanted<'p> {
    fn add(&mut self, pointer: &'p str) {
        if self.indices.is_empty() {
            self.indices.push(Vec::new());
        }
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return;
        }
        self.root = true;
        let mut node = 0;
        for token in pointer.split('/').skip(1) {
            let next = self.indices.len();
            let child = *self.members.entry((node, token)).or_insert(next);
            if child == next {
                self.indices.push(Vec::new());
                // An array element's token is its index in decimal, without leading zeros.
                let canonical = token.bytes().all(|b| b.is_ascii_digit())
                    && (token == "0" || !token.starts_with('0'));
                if canonical
                    && let Ok(i) = token.parse::<usize>()
                    && let Some(list) = self.indices.get_mut(node)
                {
                    let at = list.partition_point(|&(j, _)| j < i);
                    list.insert(at, (i, child));
                }
            }
            node = child;
        }
    }

    /// The child of `node` for the member whose escaped key is `token`.
    fn member(&self, node: usize, token: &str) -> Option<usize> {
        self.members.get(&(node, token)).copied()
    }

    /// The child of `node` for element `i`; `cursor` walks the node's sorted indices as the
    /// elements are visited in order.
    fn element(&self, node: usize, i: usize, cursor: &mut usize) -> Option<usize> {
        let list = self.indices.get(node)?;
        while list.get(*cursor).is_some_and(|&(j, _)| j < i) {
            *cursor += 1;
        }
        list.get(*cursor)
            .and_then(|&(j, child)| (j == i).then_some(child))
    }
}

struct Scanner<'a, 'w> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Lines are counted up to this byte, lazily: only a recorded value needs its line.
    counted: usize,
    /// The line at byte `counted`.
    line: u32,
    /// The pointers to record (`None`: every value down to [`INDEX_DEPTH`]).
    wanted: Option<&'w Wanted<'w>>,
    lines: HashMap<String, u32>,
}

impl Scanner<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// The line of the cursor.
    fn line_here(&mut self) -> u32 {
        let newlines = count_newlines(self.bytes.get(self.counted..self.at).unwrap_or_default());
        self.line = self
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
        self.counted = self.at;
        self.line
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    /// Records the value at the cursor under `path` (node `node` of the pointers wanted) and
    /// walks into it; with no path (a value that is not recorded, nor anything in it) it is
    /// only walked past. False on malformed input (the index then stops growing).
    fn value(&mut self, mut path: Option<&mut String>, node: usize, depth: usize) -> bool {
        if depth > INDEX_DEPTH {
            path = None;
        }
        match path.as_deref() {
            Some(p) => {
                let line = self.line_here();
                self.lines.entry(p.clone()).or_insert(line);
            }
            None if self.wanted.is_some() => return self.skip_value(),
            None => {}
        }
        match self.peek() {
            Some(b'{') => {
                self.bump();
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
                    let ok = match path.as_deref_mut() {
                        Some(p) => {
                            let Some(key) = self.key() else {
                                return false;
                            };
                            let base = p.len();
                            p.push('/');
                            if key.contains(['~', '/']) {
                                p.push_str(&key.replace('~', "~0").replace('/', "~1"));
                            } else {
                                p.push_str(&key);
                            }
                            let token = p.get(base + 1..).unwrap_or_default();
                            let ok = match self.wanted {
                                None => self.member(Some(p), 0, depth),
                                Some(w) => match w.member(node, token) {
                                    Some(child) => self.member(Some(p), child, depth),
                                    None => self.member(None, 0, depth),
                                },
                            };
                            p.truncate(base);
                            ok
                        }
                        None => self.skip_string() && self.member(None, 0, depth),
                    };
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
                let mut i = 0usize;
                let mut cursor = 0usize;
                loop {
                    self.whitespace();
                    if self.peek() == Some(b']') {
                        self.bump();
                        return true;
                    }
                    let child = match (self.wanted, path.is_some()) {
                        (_, false) => None,
                        (None, true) => Some(0),
                        (Some(w), true) => w.element(node, i, &mut cursor),
                    };
                    let ok = match (path.as_deref_mut(), child) {
                        (Some(p), Some(child)) => {
                            let base = p.len();
                            p.push('/');
                            push_index(p, i);
                            let ok = self.value(Some(p), child, depth + 1);
                            p.truncate(base);
                            ok
                        }
                        _ => self.value(None, 0, depth + 1),
                    };
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

    /// Moves past the value at the cursor by its brackets and strings alone (an object or
    /// array ends at the bracket that closes it). False if the text ends first.
    fn skip_value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => return self.skip_string(),
            Some(b'{' | b'[') => {}
            Some(_) => {
                while !matches!(
                    self.peek(),
                    Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n') | None
                ) {
                    self.bump();
                }
                return true;
            }
            None => return false,
        }
        let mut open = 0usize;
        loop {
            let Some(rest) = self.bytes.get(self.at..) else {
                return false;
            };
            let Some(i) = rest
                .iter()
                .position(|&b| matches!(b, b'"' | b'{' | b'[' | b'}' | b']'))
            else {
                self.at = self.bytes.len();
                return false;
            };
            self.at += i;
            match rest.get(i) {
                Some(b'"') => {
                    if !self.skip_string() {
                        return false;
                    }
                }
                Some(b'{' | b'[') => {
                    open += 1;
                    self.at += 1;
                }
                _ => {
                    open = open.saturating_sub(1);
                    self.at += 1;
                    if open == 0 {
                        return true;
                    }
                }
            }
        }
    }

    /// After a key: the colon and the member's value, recorded under `path` (node `node`)
    /// or, without a path, walked past.
    fn member(&mut self, path: Option<&mut String>, node: usize, depth: usize) -> bool {
        self.whitespace();
        if self.bump() != Some(b':') {
            return false;
        }
        self.whitespace();
        self.value(path, node, depth + 1)
    }

    /// Skips a string at the cursor (escapes honoured).
    fn skip_string(&mut self) -> bool {
        self.string_end().is_some()
    }

    /// Moves past the string at the cursor; whether it held an escape. `None` if it does not
    /// end.
    fn string_end(&mut self) -> Option<bool> {
        self.bump();
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let i = quote_or_backslash(rest)?;
            self.at += i + 1;
            if rest.get(i) == Some(&b'"') {
                return Some(escaped);
            }
            escaped = true;
            self.bump()?;
        }
    }

    /// A key at the cursor, decoded (escapes are rare in keys: decoded only when present).
    fn key(&mut self) -> Option<String> {
        let start = self.at;
        let escaped = self.string_end()?;
        let raw = self.text.get(start..self.at)?;
        if escaped {
            serde_json::from_str(raw).ok()
        } else {
            raw.get(1..raw.len().saturating_sub(1)).map(str::to_owned)
        }
    }
}

/// Where the first `"` or `\\` of `bytes` is. Eight bytes are tested at a time: a byte equal
/// to the one sought becomes zero after an exclusive or, and the lowest byte of
/// `(x - 0x01..01) & !x & 0x80..80` that is set marks the first zero byte of `x`.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let found =
            zero_bytes(x ^ (ONES * u64::from(b'"'))) | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|i| at + i)
}

/// How many `\n` bytes `bytes` holds: counted in byte-sized sums over chunks of 255 bytes,
/// which the compiler turns into wide vector compares.
fn count_newlines(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n')));
            usize::from(n)
        })
        .sum()
}

/// Appends an array index in decimal.
fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(path, "{i}");
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
    fn finds_quotes_and_backslashes() {
        let text = "abcdefgh\u{e9}ijklmnopq\"rstuvwxyz\\0123456789\"";
        let bytes = text.as_bytes();
        for start in 0..bytes.len() {
            let want = bytes[start..].iter().position(|&b| b == b'"' || b == b'\\');
            assert_eq!(super::quote_or_backslash(&bytes[start..]), want, "{start}");
        }
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for start in 0..all.len() {
            let want = all[start..].iter().position(|&b| b == b'"' || b == b'\\');
            assert_eq!(super::quote_or_backslash(&all[start..]), want, "{start}");
        }
    }

    #[test]
    fn counts_newlines() {
        let text: Vec<u8> = (0..2000u32)
            .map(|i| if i % 3 == 0 { b'\n' } else { b'x' })
            .collect();
        for len in [0, 1, 254, 255, 256, 765, 2000] {
            let want = text[..len].iter().filter(|&&b| b == b'\n').count();
            assert_eq!(super::count_newlines(&text[..len]), want, "{len}");
        }
        assert_eq!(super::count_newlines(&[b'\n'; 600]), 600);
    }

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

    /// The index of only the pointers asked for answers them as the full index does: every
    /// value of the document, pointers past its values, malformed pointers, a repeated key.
    #[test]
    fn index_for_pointers_agrees_with_full_index() {
        let repeated = "{\"a\": {\"b\": 1},\n \"a\": {\"c\": [2,\n 3]}}";
        let one_line = DOC.replace('\n', " ");
        for text in [
            DOC,
            &one_line,
            repeated,
            "[1, {\"x\"\n: 2}]",
            "{\"a\": {\"b\": [{\"c\": \"]}\\\"{\"}],\n\"d\": 1}}",
        ] {
            let full = PointerIndex::build(text);
            let mut pointers: Vec<String> = full.lines.keys().cloned().collect();
            pointers.extend(
                [
                    "/Statement/7",
                    "/Statement/01",
                    "/Statement/+1",
                    "/Statement/1/Action/01",
                    "/0",
                    "/1/",
                    "//",
                    "/Statement/1/Action/1/deeper",
                    "/Nope",
                    "no-slash",
                    "a/b",
                    "/a/c/1",
                    "/a/b/x",
                    "/1/x",
                ]
                .map(str::to_owned),
            );
            for p in &pointers {
                let one = PointerIndex::build_for(text, [p.as_str()]);
                assert_eq!(one.line(p), full.line(p), "{p} in {text}");
            }
            let all = PointerIndex::build_for(text, pointers.iter().map(String::as_str));
            for p in &pointers {
                assert_eq!(all.line(p), full.line(p), "{p} in {text}");
            }
        }
        assert_eq!(
            PointerIndex::build_for(repeated, ["/a/c/1"]).line("/a/c/1"),
            Some(3)
        );
        // Every line break counts, also one inside a string (and after an escaped quote).
        assert_eq!(
            line_of_pointer("{\"a\": \"\\é\",\n\"b\": 1}", "/b"),
            Some(2)
        );
        let broken = "{\"a\": \"x\\\"\n y\", \"b\\\"\": 2}";
        assert_eq!(line_of_pointer(broken, "/b\""), Some(2));
        assert_eq!(
            PointerIndex::build_for(broken, ["/b\""]).line("/b\""),
            Some(2)
        );
        assert!(PointerIndex::build_for(DOC, ["/Statement/0"]).lines.len() < 4);
        // Text that ends early: what was read is indexed, nothing panics.
        assert_eq!(
            PointerIndex::build_for("{\"a\": [", ["/a/0"]).line("/a/0"),
            Some(1)
        );
        assert_eq!(
            PointerIndex::build_for("{\"b\": [{\"x\n", ["/a/0"]).line("/a/0"),
            Some(1)
        );
    }
}
