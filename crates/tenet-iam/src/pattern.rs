//! IAM wildcard matching: `*` matches any run of characters, `?` exactly one.

/// Whether `text` matches the IAM wildcard `pattern` (case-sensitive; callers lowercase both
/// sides where AWS compares case-insensitively).
///
/// Iterative with one backtrack point, so it runs in O(len(pattern) × len(text)) at worst and
/// cannot recurse deeply on hostile input.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob_match_bytes(pattern, text, false)
}

/// [`glob_match`] with `text` compared as if ASCII-lowercased (`pattern` must already be
/// lowercase), without allocating the lowercased text.
pub fn glob_match_lower(pattern: &str, text: &str) -> bool {
    glob_match_bytes(pattern, text, true)
}

fn glob_match_bytes(pattern: &str, text: &str, lower: bool) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let at = |i: usize| {
        t.get(i)
            .map(|c| if lower { c.to_ascii_lowercase() } else { *c })
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || Some(c) == at(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Whether the pattern contains a wildcard.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Replaces policy variables (`${aws:username}`) by `*`, so a resource written with variables
/// is compared as the set of resources it may name.
pub fn variables_as_wildcards(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    widened_pieces(value, |piece| {
        out.push_str(piece);
        true
    });
    out
}

/// Whether `text` is exactly `value` with its policy variables replaced as
/// [`variables_as_wildcards`] does, without building that string.
pub fn equals_variables_as_wildcards(value: &str, text: &str) -> bool {
    let mut rest = text;
    widened_pieces(value, |piece| match rest.strip_prefix(piece) {
        Some(r) => {
            rest = r;
            true
        }
        None => false,
    }) && rest.is_empty()
}

/// Gives the pieces of `value` with each policy variable replaced by `*` (`${*}`, `${?}` and
/// `${$}` by their literal character) to `piece`, in order, while it returns true. False if
/// `piece` stopped it.
fn widened_pieces(value: &str, mut piece: impl FnMut(&str) -> bool) -> bool {
    let mut rest = value;
    while let Some(start) = variable_start(rest) {
        let Some(end) = rest.get(start..).and_then(|r| r.find('}')) else {
            break;
        };
        let var = rest.get(start + 2..start + end).unwrap_or_default();
        // ${*}, ${?} and ${$} are escapes for the literal characters.
        let replaced = match var {
            "*" | "?" | "$" => var,
            _ => "*",
        };
        if !piece(rest.get(..start).unwrap_or_default()) || !piece(replaced) {
            return false;
        }
        rest = rest.get(start + end + 1..).unwrap_or_default();
    }
    piece(rest)
}

/// Where the first `${` of `text` starts.
fn variable_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes.get(from..)?.iter().position(|&b| b == b'$') {
        let at = from + i;
        if bytes.get(at + 1) == Some(&b'{') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("s3:get*", "s3:getobject"));
        assert!(glob_match("*", ""));
        assert!(glob_match("s3:*object*", "s3:putobjectacl"));
        assert!(!glob_match("s3:get*", "s3:putobject"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y"));
        assert!(!glob_match("ab", "abc"));
    }

    #[test]
    fn variables() {
        assert_eq!(variables_as_wildcards("home/${aws:username}/*"), "home/*/*");
        assert_eq!(variables_as_wildcards("a${*}b"), "a*b");
        assert_eq!(
            variables_as_wildcards("unterminated ${x"),
            "unterminated ${x"
        );
        assert_eq!(variables_as_wildcards("$$${a}$}${b"), "$$*$}${b");
        assert_eq!(variables_as_wildcards("${a}${$}${}x"), "*$*x");
    }

    /// The comparison without building the string agrees with building it.
    #[test]
    fn variables_compared_in_place() {
        let values = [
            "arn:${Partition}:s3:::${BucketName}/${ObjectName}",
            "home/${aws:username}/*",
            "a${*}b${?}c${$}",
            "unterminated ${x",
            "$$${a}$}${b",
            "",
            "plain",
        ];
        let texts = [
            "arn:*:s3:::*/*",
            "home/*/*",
            "a*b?c$",
            "unterminated ${x",
            "$$*$}${b",
            "",
            "plain",
            "plai",
            "plainx",
            "arn:*:s3:::*",
        ];
        for v in values {
            for t in texts {
                assert_eq!(
                    equals_variables_as_wildcards(v, t),
                    variables_as_wildcards(v) == t,
                    "{v} vs {t}"
                );
            }
        }
    }
}
