//! Matching policy resource patterns against the catalogue's ARN templates.

use crate::pattern::variables_as_wildcards;

/// Whether a resource pattern written in a policy (with `*`, `?` and `${variables}`) can name
/// a resource of the type whose ARN template is given
/// (`arn:${Partition}:s3:::${BucketName}/${ObjectName}`).
pub fn pattern_fits_template(pattern: &str, template: &str) -> bool {
    let pattern = variables_as_wildcards(pattern);
    let tokens = compile(template);
    ["x", "x/x"]
        .iter()
        .any(|fill| matches(&tokens, &pattern.replace(['*', '?'], fill)))
}

/// Whether a resource pattern is the template itself with every variable widened to `*`
/// (for example `arn:*:cloudtrail:*:*:trail/*`): a Resource "*" in disguise.
pub fn effectively_star(pattern: &str, template: &str) -> bool {
    let widened = variables_as_wildcards(template);
    widened == pattern && pattern.contains('*')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Lit(u8),
    /// A variable; `slash` says whether it may contain `/`.
    Var {
        slash: bool,
    },
}

fn compile(template: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    let mut seen_slash = false;
    while let Some(&b) = bytes.get(i) {
        if b == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let close = template.get(i..).and_then(|r| r.find('}')).map(|e| i + e);
            if let Some(close) = close {
                let last = close + 1 == bytes.len();
                // Only a final variable after a '/' may hold a path (object keys, role paths).
                out.push(Token::Var {
                    slash: last && seen_slash,
                });
                i = close + 1;
                continue;
            }
        }
        if b == b'/' {
            seen_slash = true;
        }
        out.push(Token::Lit(b));
        i += 1;
    }
    out
}

/// Dynamic programming over (token, byte); variables never hold `:` unless final.
fn matches(tokens: &[Token], text: &str) -> bool {
    let t = text.as_bytes();
    let mut reach = vec![false; t.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for (ti, tok) in tokens.iter().enumerate() {
        let last = ti + 1 == tokens.len();
        let mut next = vec![false; t.len() + 1];
        for i in 0..=t.len() {
            if !reach.get(i).copied().unwrap_or(false) {
                continue;
            }
            match tok {
                Token::Lit(c) => {
                    if t.get(i).is_some_and(|b| b.eq_ignore_ascii_case(c))
                        && let Some(n) = next.get_mut(i + 1)
                    {
                        *n = true;
                    }
                }
                Token::Var { slash } => {
                    let mut j = i;
                    loop {
                        if let Some(n) = next.get_mut(j) {
                            *n = true;
                        }
                        match t.get(j) {
                            Some(b'/') if !slash => break,
                            Some(b':') if !last => break,
                            Some(_) => j += 1,
                            None => break,
                        }
                    }
                }
            }
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: &str = "arn:${Partition}:s3:::${BucketName}";
    const OBJECT: &str = "arn:${Partition}:s3:::${BucketName}/${ObjectName}";

    #[test]
    fn buckets_and_objects() {
        assert!(pattern_fits_template("arn:aws:s3:::b", BUCKET));
        assert!(!pattern_fits_template("arn:aws:s3:::b/*", BUCKET));
        assert!(pattern_fits_template("arn:aws:s3:::b/*", OBJECT));
        assert!(!pattern_fits_template("arn:aws:s3:::b", OBJECT));
        assert!(pattern_fits_template("arn:aws:s3:::*", OBJECT));
        assert!(pattern_fits_template(
            "arn:aws:iam::*:mfa/${aws:username}",
            "arn:${Partition}:iam::${Account}:mfa/${MfaTokenIdWithPath}"
        ));
        assert!(pattern_fits_template(
            "arn:aws:lambda:*:123456789012:layer:sol-*:*",
            "arn:${Partition}:lambda:${Region}:${Account}:layer:${LayerName}:${LayerVersion}"
        ));
    }

    #[test]
    fn effectively_star_patterns() {
        let trail = "arn:${Partition}:cloudtrail:${Region}:${Account}:trail/${TrailName}";
        assert!(effectively_star("arn:*:cloudtrail:*:*:trail/*", trail));
        assert!(!effectively_star(
            "arn:aws:cloudtrail:us-east-1:000000000000:trail/*",
            trail
        ));
    }
}
