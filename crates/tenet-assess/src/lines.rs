//! Line numbers for JSON pointers: findings on JSON inputs carry a pointer such as
//! `/Statement/2`; this finds the line where that value starts in the original text, so
//! editors and code-scanning tools can jump to it.

/// The 1-based line where the value at `pointer` (RFC 6901) starts in `text`, or where the
/// deepest existing prefix of it starts. `None` when not even the first token exists or the
/// text is not JSON.
pub fn line_of_pointer(text: &str, pointer: &str) -> Option<u32> {
    let tokens: Vec<String> = match pointer {
        "" => Vec::new(),
        p => p
            .strip_prefix('/')?
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    };
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
    };
    scanner.whitespace();
    let mut best = None;
    scanner.find(&tokens, 0, &mut best);
    best
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u32,
}

/// Deeper documents are not searched (serde_json refuses them anyway).
const MAX_DEPTH: usize = 256;

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

    /// At the start of a value whose path matches the first `depth` tokens: records its line
    /// and descends toward the rest. Returns true when the search is over.
    fn find(&mut self, tokens: &[String], depth: usize, best: &mut Option<u32>) -> bool {
        *best = Some(self.line);
        let Some(want) = tokens.get(depth) else {
            return true;
        };
        if depth >= MAX_DEPTH {
            return true;
        }
        match self.peek() {
            Some(b'{') => {
                self.bump();
                loop {
                    self.whitespace();
                    match self.peek() {
                        Some(b'"') => {}
                        _ => return true,
                    }
                    let Some(key) = self.string() else {
                        return true;
                    };
                    self.whitespace();
                    if self.bump() != Some(b':') {
                        return true;
                    }
                    self.whitespace();
                    if &key == want {
                        self.find(tokens, depth + 1, best);
                        return true;
                    }
                    if !self.skip_value() {
                        return true;
                    }
                    self.whitespace();
                    match self.bump() {
                        Some(b',') => {}
                        _ => return true,
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let Ok(index) = want.parse::<usize>() else {
                    return true;
                };
                let mut i = 0;
                loop {
                    self.whitespace();
                    if matches!(self.peek(), Some(b']') | None) {
                        return true;
                    }
                    if i == index {
                        self.find(tokens, depth + 1, best);
                        return true;
                    }
                    if !self.skip_value() {
                        return true;
                    }
                    self.whitespace();
                    match self.bump() {
                        Some(b',') => i += 1,
                        _ => return true,
                    }
                }
            }
            _ => true,
        }
    }

    /// Reads a string at the cursor and returns it decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.bump();
        loop {
            match self.bump()? {
                b'\\' => {
                    self.bump()?;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = std::str::from_utf8(self.bytes.get(start..self.at)?).ok()?;
        serde_json::from_str(raw).ok()
    }

    /// Skips one value; false on malformed input.
    fn skip_value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        Some(b'"') => {
                            if self.string().is_none() {
                                return false;
                            }
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.bump();
                                return true;
                            }
                        }
                        Some(_) => {}
                        None => return false,
                    }
                    self.bump();
                }
            }
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
}

#[cfg(test)]
mod tests {
    use super::line_of_pointer;

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
  "we/ird~key": {"x": [1, {"y": 2}]}
}"#;

    #[test]
    fn finds_lines_of_pointers() {
        assert_eq!(line_of_pointer(DOC, ""), Some(1));
        assert_eq!(line_of_pointer(DOC, "/Statement"), Some(3));
        assert_eq!(line_of_pointer(DOC, "/Statement/0"), Some(4));
        assert_eq!(line_of_pointer(DOC, "/Statement/1"), Some(5));
        assert_eq!(line_of_pointer(DOC, "/Statement/1/Action"), Some(8));
        assert_eq!(line_of_pointer(DOC, "/we~1ird~0key/x/1/y"), Some(12));
    }

    #[test]
    fn missing_parts_give_the_deepest_prefix() {
        assert_eq!(line_of_pointer(DOC, "/Statement/7"), Some(3));
        assert_eq!(line_of_pointer(DOC, "/Nope"), Some(1));
        assert_eq!(line_of_pointer(DOC, "no-slash"), None);
        assert_eq!(line_of_pointer("{\"a\": [", "/a/0"), Some(1));
        assert_eq!(line_of_pointer("", "/a"), Some(1));
    }
}
