//! Reading a field path from a JSON event: exactly as rsigma's `JsonEvent` does, and without
//! regard to case. Values are borrowed from the event, so a mapped field costs no copy.

use std::borrow::Cow;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::{Map, Value};

/// Deepest nesting a path walk follows (arrays inside arrays count too), as in rsigma.
pub(crate) const MAX_DEPTH: usize = 64;

/// Whether `path` needs rsigma's full path syntax (`name[0]`, `\[` escapes).
fn has_brackets(path: &str) -> bool {
    path.contains('[') || path.contains('\\')
}

/// The value at `path`, with the semantics of rsigma's `JsonEvent`: a flat key first, then a
/// dot path that fans out over arrays (several hits become an array). Unlike `JsonEvent`, it
/// allocates nothing until the path meets an array, which is most of what rsigma asks of an
/// event: every field its candidate index probes and every field a rule compares.
pub(crate) fn lookup<'a>(event: &'a Value, path: &str) -> Option<EventValue<'a>> {
    lookup_with(event, path, false)
}

/// As [`lookup`], and with `fold_nested`, where the exact path is missing below a top-level
/// key the event has exactly, the path read without regard to case from that key on: the
/// answer of [`lookup_folded`] for such a path, without walking it a second time. (Keys in
/// another case at the top level, and paths with `[`/`\` syntax, are not folded here.)
pub(crate) fn lookup_with<'a>(
    event: &'a Value,
    path: &str,
    fold_nested: bool,
) -> Option<EventValue<'a>> {
    let Some(root) = event.as_object() else {
        return JsonEvent::borrow(event).get_field(path).map(into_owned);
    };
    if let Some(v) = root.get(path) {
        return Some(EventValue::from(v));
    }
    if has_brackets(path) {
        return JsonEvent::borrow(event).get_field(path).map(into_owned);
    }
    let (first, mut rest) = path.split_once('.')?;
    let mut current = root.get(first)?;
    // Whether a key in another case was taken on the way: from there on only a folded
    // answer is possible, as the exact path is known to be missing.
    let mut folded = false;
    loop {
        match current {
            Value::Object(map) => {
                let (segment, tail) = match rest.split_once('.') {
                    Some((segment, tail)) => (segment, Some(tail)),
                    None => (rest, None),
                };
                let next = match map.get(segment) {
                    Some(next) => next,
                    None if fold_nested => {
                        let ascii = segment.is_ascii();
                        folded = true;
                        map.iter().find(|(k, _)| eq_folded(k, segment, ascii))?.1
                    }
                    None => return None,
                };
                match tail {
                    Some(tail) => {
                        current = next;
                        rest = tail;
                    }
                    None => return Some(EventValue::from(next)),
                }
            }
            Value::Array(_) => {
                let segments: Vec<&str> = rest.split('.').collect();
                let mut out = Vec::new();
                let mut exact = false;
                if !folded {
                    walk(
                        current, &segments, false, true, MAX_DEPTH, &mut out, &mut exact,
                    );
                }
                if out.is_empty() && fold_nested {
                    walk(
                        current, &segments, true, !folded, MAX_DEPTH, &mut out, &mut exact,
                    );
                }
                return collected(out);
            }
            _ => return None,
        }
    }
}

/// The value at `path` read without regard to case, for a field the event does not carry
/// exactly; `None` when the exact path exists (the event's own value applies) or when no
/// spelling of it does. Where a key exists both exactly and in another case, the exact one is
/// followed. As in the lookup above, a flat key (`"a.b"` as one key) comes before a dot path.
pub(crate) fn lookup_folded<'a>(
    event: &'a Value,
    root: &'a Map<String, Value>,
    path: &str,
) -> Option<EventValue<'a>> {
    if root.contains_key(path) {
        return None;
    }
    if has_brackets(path) {
        return lookup_folded_slow(event, path);
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    let mut exact = false;
    walk(
        event, &segments, true, true, MAX_DEPTH, &mut out, &mut exact,
    );
    if exact {
        return None;
    }
    let ascii = path.is_ascii();
    if segments.len() > 1
        && let Some((_, v)) = root.iter().find(|(k, _)| eq_folded(k, path, ascii))
    {
        return Some(EventValue::from(v));
    }
    collected(out)
}

/// Rare paths with brackets: a case-folded copy of the event, read by rsigma itself.
fn lookup_folded_slow(event: &Value, path: &str) -> Option<EventValue<'static>> {
    if JsonEvent::borrow(event).get_field(path).is_some() {
        return None;
    }
    let folded = JsonEvent::owned(lowercase_keys(event, MAX_DEPTH));
    folded.get_field(&path.to_lowercase()).map(into_owned)
}

/// Follows `segments` from `value`, collecting every value reached. `fold` allows keys that
/// differ in case when no exact key exists; `exact_so_far` tracks whether the path taken so
/// far used exact keys only, and `any_exact` is set when a value was reached that way.
pub(crate) fn walk<'a, S: AsRef<str>>(
    value: &'a Value,
    segments: &[S],
    fold: bool,
    exact_so_far: bool,
    depth: usize,
    out: &mut Vec<EventValue<'a>>,
    any_exact: &mut bool,
) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(EventValue::from(value));
        *any_exact |= exact_so_far;
        return;
    };
    if depth == 0 {
        return;
    }
    match value {
        Value::Object(map) => {
            let segment = segment.as_ref();
            if let Some(next) = map.get(segment) {
                walk(next, rest, fold, exact_so_far, depth - 1, out, any_exact);
            } else if fold
                && let Some((_, next)) = {
                    let ascii = segment.is_ascii();
                    map.iter().find(|(k, _)| eq_folded(k, segment, ascii))
                }
            {
                walk(next, rest, fold, false, depth - 1, out, any_exact);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(
                    item,
                    segments,
                    fold,
                    exact_so_far,
                    depth - 1,
                    out,
                    any_exact,
                );
            }
        }
        _ => {}
    }
}

pub(crate) fn collected(mut out: Vec<EventValue<'_>>) -> Option<EventValue<'_>> {
    match out.len() {
        0 => None,
        1 => out.pop(),
        _ => Some(EventValue::Array(out)),
    }
}

/// Whether event key `key` is `name` without regard to case. For an ASCII `name` (every
/// SigmaHQ field name) that is ASCII case folding, decided mostly by the lengths; otherwise
/// both are lowercased.
pub(crate) fn eq_folded(key: &str, name: &str, name_is_ascii: bool) -> bool {
    if name_is_ascii {
        key.len() == name.len() && key.eq_ignore_ascii_case(name)
    } else {
        key.to_lowercase() == name.to_lowercase()
    }
}

/// Calls `f` with `key` lowercased, without allocating for short ASCII keys.
pub(crate) fn with_lowercase<R>(key: &str, f: impl FnOnce(&str) -> R) -> R {
    const SHORT: usize = 64;
    if !key.bytes().any(|b| b.is_ascii_uppercase()) && key.is_ascii() {
        return f(key);
    }
    let mut buf = [0u8; SHORT];
    if key.is_ascii()
        && let Some(dst) = buf.get_mut(..key.len())
    {
        dst.copy_from_slice(key.as_bytes());
        dst.make_ascii_lowercase();
        if let Ok(lower) = std::str::from_utf8(dst) {
            return f(lower);
        }
    }
    f(&key.to_lowercase())
}

fn into_owned(value: EventValue<'_>) -> EventValue<'static> {
    match value {
        EventValue::Str(s) => EventValue::Str(Cow::Owned(s.into_owned())),
        EventValue::Int(n) => EventValue::Int(n),
        EventValue::Float(f) => EventValue::Float(f),
        EventValue::Bool(b) => EventValue::Bool(b),
        EventValue::Null => EventValue::Null,
        EventValue::Array(items) => EventValue::Array(items.into_iter().map(into_owned).collect()),
        EventValue::Map(entries) => EventValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), into_owned(v)))
                .collect(),
        ),
    }
}

fn lowercase_keys(value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) if depth > 0 => Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v, depth - 1)))
                .collect(),
        ),
        Value::Array(items) if depth > 0 => {
            Value::Array(items.iter().map(|v| lowercase_keys(v, depth - 1)).collect())
        }
        Value::Object(_) | Value::Array(_) => Value::Null,
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: Option<EventValue<'_>>) -> Option<String> {
        v.and_then(|v| v.as_str().map(|s| s.into_owned()))
    }

    #[test]
    fn exact_lookup_agrees_with_rsigma() {
        let v = json!({"a": {"b": "x"}, "c.d": "flat", "c": {"d": "nested"},
                       "arr": [{"k": "1"}, {"k": "2"}], "idx": ["p", "q"], "": {"a": 1},
                       "deep": {"x": {"y": [1, 2]}, "list": [{"z": 1}, [{"z": 2}], {"q": 3}]}});
        for path in [
            "a.b",
            "c.d",
            "arr.k",
            "idx[1]",
            "a",
            "nosuch",
            "a.nosuch",
            "arr",
            "a.b.c",
            ".a",
            "a.",
            "deep.x.y",
            "deep.list.z",
        ] {
            assert_eq!(
                lookup(&v, path),
                JsonEvent::borrow(&v).get_field(path),
                "{path}"
            );
        }
    }

    /// `lookup_with(.., true)` answers what the exact lookup answers, and where it has no
    /// answer below a top-level key the event has exactly, what `lookup_folded` answers.
    #[test]
    fn one_walk_folding_agrees_with_exact_then_folded() {
        let events = [
            json!({"req": {"Bucket": "b", "inner": {"Key": "k"}, "list": [{"Name": "n1"},
                   {"name": "n2"}]}, "both": {"x": "exact", "X": "other"},
                   "arr": [{"K": {"v": 1}}, {"k": {"V": 2}}], "flat.key": "f", "s": "scalar"}),
            json!({"req": [{"BUCKET": "a"}, {"bucket": "b"}], "deep": {"A": {"B": {"C": "c"}}},
                   "e": {"": {"x": 1}}, "n": {"nul": null}}),
            json!({"ctx": {"Data": {"uri": "/a"}, "data": {"URI": "/b"}}}),
        ];
        let paths = [
            "req.bucket",
            "req.Bucket",
            "req.inner.key",
            "req.INNER.KEY",
            "req.list.name",
            "req.list.Name",
            "both.x",
            "both.X",
            "arr.k.v",
            "arr.K.v",
            "flat.key",
            "FLAT.KEY",
            "s.x",
            "req",
            "nosuch.x",
            "deep.a.b.c",
            "deep.A.b.C",
            "e..x",
            "n.NUL",
            "ctx.data.uri",
            "ctx.Data.URI",
            "Req.bucket",
            "req[0].bucket",
            "req.",
        ];
        for v in &events {
            let root = v.as_object().unwrap();
            for path in paths {
                let exact_root = path
                    .split_once('.')
                    .is_some_and(|(first, _)| root.contains_key(first));
                let expected = lookup(v, path).or_else(|| {
                    (exact_root && !has_brackets(path))
                        .then(|| lookup_folded(v, root, path))
                        .flatten()
                });
                assert_eq!(lookup_with(v, path, true), expected, "{path} in {v}");
                assert_eq!(lookup_with(v, path, false), lookup(v, path), "{path}");
            }
        }
        // And what it finds: the exact key first, else the first in another case.
        let v = &events[0];
        assert_eq!(
            text(lookup_with(v, "req.bucket", true)).as_deref(),
            Some("b")
        );
        assert_eq!(
            text(lookup_with(v, "both.x", true)).as_deref(),
            Some("exact")
        );
        assert_eq!(
            text(lookup_with(v, "req.inner.KEY", true)).as_deref(),
            Some("k")
        );
        assert_eq!(lookup_with(v, "Req.bucket", true), None);
    }

    #[test]
    fn folded_lookup_only_answers_case_misses() {
        let v = json!({"Outer": {"inner": "x"}, "exact": {"Key": "y"}, "arr": [{"K": "1"}]});
        let root = v.as_object().unwrap();
        assert_eq!(
            text(lookup_folded(&v, root, "outer.Inner")).as_deref(),
            Some("x")
        );
        assert_eq!(
            text(lookup_folded(&v, root, "exact.key")).as_deref(),
            Some("y")
        );
        assert_eq!(text(lookup_folded(&v, root, "arr.k")).as_deref(), Some("1"));
        // The exact path exists: the event's own value applies, nothing to add.
        assert_eq!(lookup_folded(&v, root, "exact.Key"), None);
        assert_eq!(lookup_folded(&v, root, "exact.nosuch"), None);
        assert_eq!(
            text(lookup_folded(&v, root, "ARR[0].k")).as_deref(),
            Some("1")
        );
    }
}
