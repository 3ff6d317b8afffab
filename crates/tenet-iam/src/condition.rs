//! Condition blocks with AWS semantics: operator names are exact (case-sensitive), condition
//! key names are case-insensitive, `...IfExists`, `ForAnyValue:` / `ForAllValues:`, `Null`, and
//! the String, Arn, Numeric, Date, Bool, Binary and IP address families.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::pattern::glob_match;

/// The comparison family of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `String*`.
    String,
    /// `Arn*`.
    Arn,
    /// `Numeric*`.
    Numeric,
    /// `Date*`.
    Date,
    /// `Bool`.
    Bool,
    /// `BinaryEquals`.
    Binary,
    /// `IpAddress` / `NotIpAddress`.
    Ip,
    /// `Null`.
    Null,
}

/// The comparison an operator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// Equal.
    Equals,
    /// Equal ignoring ASCII case.
    EqualsIgnoreCase,
    /// Wildcard match.
    Like,
    /// Less than.
    LessThan,
    /// Less than or equal.
    LessThanEquals,
    /// Greater than.
    GreaterThan,
    /// Greater than or equal.
    GreaterThanEquals,
    /// In a CIDR range.
    InRange,
    /// Key absent (`true`) or present (`false`).
    IsNull,
}

/// A parsed condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// Comparison family.
    pub family: Family,
    /// The comparison.
    pub test: Test,
    /// Negated (`StringNotEquals`, `NotIpAddress`, ...).
    pub negated: bool,
    /// `...IfExists`: true when the key is absent.
    pub if_exists: bool,
    /// `ForAnyValue:` / `ForAllValues:` prefix.
    pub set: Option<SetOperator>,
}

/// Multi-valued key qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperator {
    /// At least one request value matches.
    ForAnyValue,
    /// Every request value matches (true when the key is absent).
    ForAllValues,
}

impl Operator {
    /// Parses an operator name exactly as AWS does (case-sensitive); `None` if AWS would reject
    /// it.
    pub fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Some(SetOperator::ForAnyValue), r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Some(SetOperator::ForAllValues), r)
        } else {
            (None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        use Family as F;
        use Test as T;
        let (family, test, negated) = match base {
            "StringEquals" => (F::String, T::Equals, false),
            "StringNotEquals" => (F::String, T::Equals, true),
            "StringEqualsIgnoreCase" => (F::String, T::EqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (F::String, T::EqualsIgnoreCase, true),
            "StringLike" => (F::String, T::Like, false),
            "StringNotLike" => (F::String, T::Like, true),
            "NumericEquals" => (F::Numeric, T::Equals, false),
            "NumericNotEquals" => (F::Numeric, T::Equals, true),
            "NumericLessThan" => (F::Numeric, T::LessThan, false),
            "NumericLessThanEquals" => (F::Numeric, T::LessThanEquals, false),
            "NumericGreaterThan" => (F::Numeric, T::GreaterThan, false),
            "NumericGreaterThanEquals" => (F::Numeric, T::GreaterThanEquals, false),
            "DateEquals" => (F::Date, T::Equals, false),
            "DateNotEquals" => (F::Date, T::Equals, true),
            "DateLessThan" => (F::Date, T::LessThan, false),
            "DateLessThanEquals" => (F::Date, T::LessThanEquals, false),
            "DateGreaterThan" => (F::Date, T::GreaterThan, false),
            "DateGreaterThanEquals" => (F::Date, T::GreaterThanEquals, false),
            "Bool" => (F::Bool, T::Equals, false),
            "BinaryEquals" => (F::Binary, T::Equals, false),
            "IpAddress" => (F::Ip, T::InRange, false),
            "NotIpAddress" => (F::Ip, T::InRange, true),
            "ArnEquals" => (F::Arn, T::Equals, false),
            "ArnLike" => (F::Arn, T::Like, false),
            "ArnNotEquals" => (F::Arn, T::Equals, true),
            "ArnNotLike" => (F::Arn, T::Like, true),
            "Null" if !if_exists && set.is_none() => (F::Null, T::IsNull, false),
            _ => return None,
        };
        Some(Operator {
            family,
            test,
            negated,
            if_exists,
            set,
        })
    }
}

/// One key test inside a Condition block.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator as written.
    pub operator_name: String,
    /// The operator, `None` if AWS does not know it.
    pub operator: Option<Operator>,
    /// The key as written.
    pub key: String,
    /// The key lowercased (AWS matches key names case-insensitively).
    pub key_lower: String,
    /// The values, as strings; `typed` records which were JSON booleans or numbers.
    pub values: Vec<String>,
    /// Whether every value was written as a JSON string.
    pub all_strings: bool,
}

impl Condition {
    /// Reads a `Condition` block: `{operator: {key: value | [values]}}`.
    pub fn read_block(value: &Value) -> Result<Vec<Condition>, String> {
        let Value::Object(ops) = value else {
            return Err("Condition is not an object".to_owned());
        };
        let mut out = Vec::new();
        for (op, keys) in ops {
            let Value::Object(keys) = keys else {
                return Err(format!(
                    "condition operator {op:?} does not map to an object"
                ));
            };
            for (key, v) in keys {
                let list: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                let mut values = Vec::with_capacity(list.len());
                let mut all_strings = true;
                for v in list {
                    match v {
                        Value::String(s) => values.push(s.clone()),
                        Value::Bool(b) => {
                            all_strings = false;
                            values.push(b.to_string());
                        }
                        Value::Number(n) => {
                            all_strings = false;
                            values.push(n.to_string());
                        }
                        _ => {
                            return Err(format!(
                                "condition {op:?} key {key:?} has a value that is not a string, \
                                 number or boolean"
                            ));
                        }
                    }
                }
                out.push(Condition {
                    operator_name: op.clone(),
                    operator: Operator::parse(op),
                    key: key.clone(),
                    key_lower: key.to_ascii_lowercase(),
                    values,
                    all_strings,
                });
            }
        }
        Ok(out)
    }

    /// The test as a reader would write it: `aws:TokenIssueTime DateLessThan 2020-01-01`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {}",
            self.key,
            self.operator_name,
            self.values.join(" or ")
        )
    }

    /// Evaluates against a request context. An unknown operator never matches (AWS rejects
    /// such a policy, so it grants nothing).
    pub fn matches(&self, ctx: &Context) -> bool {
        let Some(op) = self.operator else {
            return false;
        };
        let present = ctx.get(&self.key_lower);
        if op.family == Family::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return present.is_none() == want_absent;
        }
        let Some(request) = present else {
            return match op.set {
                Some(SetOperator::ForAllValues) => true,
                Some(SetOperator::ForAnyValue) => false,
                None => op.if_exists || op.negated,
            };
        };
        let policy: Vec<String> = self.values.iter().map(|v| ctx.substitute(v)).collect();
        let hit = |r: &str| policy.iter().any(|p| compare(op, p, r));
        match op.set {
            Some(SetOperator::ForAllValues) => {
                if op.negated {
                    request.iter().all(|r| !hit(r))
                } else {
                    request.iter().all(|r| hit(r))
                }
            }
            Some(SetOperator::ForAnyValue) | None => {
                if op.negated {
                    match op.set {
                        Some(_) => request.iter().any(|r| !hit(r)),
                        None => !request.iter().any(|r| hit(r)),
                    }
                } else {
                    request.iter().any(|r| hit(r))
                }
            }
        }
    }
}

/// The positive comparison of one policy value with one request value.
fn compare(op: Operator, policy: &str, request: &str) -> bool {
    match op.family {
        Family::String => match op.test {
            Test::EqualsIgnoreCase => policy.eq_ignore_ascii_case(request),
            Test::Like => glob_match(policy, request),
            _ => policy == request,
        },
        Family::Arn => match op.test {
            Test::Like => arn_like(policy, request),
            _ => policy == request,
        },
        Family::Binary => policy == request,
        Family::Bool => match (parse_bool(policy), parse_bool(request)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        Family::Numeric => match (policy.parse::<f64>(), request.parse::<f64>()) {
            (Ok(p), Ok(r)) => ordered(op.test, r.partial_cmp(&p)),
            _ => false,
        },
        Family::Date => match (parse_date(policy), parse_date(request)) {
            (Some(p), Some(r)) => ordered(op.test, Some(r.cmp(&p))),
            _ => false,
        },
        Family::Ip => ip_in_cidr(request, policy),
        Family::Null => false,
    }
}

fn ordered(test: Test, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    matches!(
        (test, ord),
        (Test::Equals, Some(Equal))
            | (Test::LessThan, Some(Less))
            | (Test::LessThanEquals, Some(Less | Equal))
            | (Test::GreaterThan, Some(Greater))
            | (Test::GreaterThanEquals, Some(Greater | Equal))
    )
}

/// ArnLike compares the six colon-separated parts; each policy part may hold wildcards.
fn arn_like(policy: &str, request: &str) -> bool {
    let p: Vec<&str> = policy.splitn(6, ':').collect();
    let r: Vec<&str> = request.splitn(6, ':').collect();
    if p.len() != r.len() {
        return policy == "*" || glob_match(policy, request);
    }
    p.iter().zip(&r).all(|(a, b)| glob_match(a, b))
}

/// `true` / `false`, case-insensitive.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses an ISO 8601 date (`2020-01-01`, `2020-01-01T00:00:01Z`, with fraction or offset) or
/// epoch seconds, into seconds since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if s.len() == 10 {
        return Some(secs);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let (h, m) = (num(11, 2)?, num(14, 2)?);
    let mut i = 16;
    let mut sec = 0;
    if b.get(16) == Some(&b':') {
        sec = num(17, 2)?;
        i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    secs += h * 3600 + m * 60 + sec;
    match b.get(i) {
        None => Some(secs),
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(secs),
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b.get(i + 3) == Some(&b':') => {
            let off = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            Some(if *sign == b'+' {
                secs - off
            } else {
                secs + off
            })
        }
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `ip` lies in `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
pub fn ip_in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let (Ok(ip), Ok(net)) = (ip.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The request context: condition keys (case-insensitive) to their values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets a key (any case) to one value.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, vec![value.into()]);
        self
    }

    /// Sets a key (any case) to several values.
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        self.values.insert(key.to_ascii_lowercase(), values);
    }

    /// The values of a key (lowercase).
    pub fn get(&self, key_lower: &str) -> Option<&[String]> {
        self.values.get(key_lower).map(Vec::as_slice)
    }

    /// Replaces `${key}` policy variables by the context's single value for the key.
    pub fn substitute(&self, value: &str) -> String {
        if !value.contains("${") {
            return value.to_owned();
        }
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            let Some(end) = rest.get(start..).and_then(|r| r.find('}')) else {
                break;
            };
            out.push_str(rest.get(..start).unwrap_or_default());
            let var = rest.get(start + 2..start + end).unwrap_or_default();
            match var {
                "*" | "?" | "$" => out.push_str(var),
                _ => match self.get(&var.to_ascii_lowercase()) {
                    Some([one]) => out.push_str(one),
                    _ => out.push_str(rest.get(start..=start + end).unwrap_or_default()),
                },
            }
            rest = rest.get(start + end + 1..).unwrap_or_default();
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: Value) -> Condition {
        Condition::read_block(&v).unwrap().remove(0)
    }

    #[test]
    fn operator_names_are_exact() {
        assert!(Operator::parse("StringEquals").is_some());
        assert!(Operator::parse("stringEquals").is_none());
        assert!(Operator::parse("ForAnyValue:StringLikeIfExists").is_some());
        assert!(Operator::parse("NullIfExists").is_none());
    }

    #[test]
    fn keys_are_case_insensitive_values_are_not() {
        let ctx = Context::new().with("aws:PrincipalTag/team", "payments");
        let c = cond(json!({"StringEquals": {"AWS:PRINCIPALTAG/TEAM": "Payments"}}));
        assert!(!c.matches(&ctx));
        let c = cond(json!({"StringEqualsIgnoreCase": {"aws:principaltag/team": "Payments"}}));
        assert!(c.matches(&ctx));
    }

    #[test]
    fn missing_keys() {
        let ctx = Context::new();
        assert!(!cond(json!({"StringEquals": {"k": "v"}})).matches(&ctx));
        assert!(cond(json!({"StringEqualsIfExists": {"k": "v"}})).matches(&ctx));
        assert!(cond(json!({"StringNotEquals": {"k": "v"}})).matches(&ctx));
        assert!(cond(json!({"ForAllValues:StringEquals": {"k": "v"}})).matches(&ctx));
        assert!(!cond(json!({"ForAnyValue:StringEquals": {"k": "v"}})).matches(&ctx));
        assert!(cond(json!({"Null": {"k": true}})).matches(&ctx));
        assert!(!cond(json!({"Null": {"k": "false"}})).matches(&ctx));
    }

    #[test]
    fn sets() {
        let mut ctx = Context::new();
        ctx.set("aws:TagKeys", vec!["a".into(), "b".into()]);
        assert!(
            cond(json!({"ForAllValues:StringEquals": {"aws:tagkeys": ["a","b","c"]}}))
                .matches(&ctx)
        );
        assert!(!cond(json!({"ForAllValues:StringEquals": {"aws:tagkeys": ["a"]}})).matches(&ctx));
        assert!(cond(json!({"ForAnyValue:StringEquals": {"aws:tagkeys": ["a"]}})).matches(&ctx));
    }

    #[test]
    fn dates_numbers_ips() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400));
        assert_eq!(parse_date("2020-01-01T00:00:01Z"), Some(1_577_836_801));
        assert_eq!(parse_date("2020-01-01T01:00:01+01:00"), Some(1_577_836_801));
        assert_eq!(parse_date("bad"), None);
        let ctx = Context::new().with("aws:CurrentTime", "2024-05-01T00:00:00Z");
        assert!(
            cond(json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
                .matches(&ctx)
        );
        assert!(
            !cond(json!({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
                .matches(&ctx)
        );
        let ctx = Context::new().with("aws:MultiFactorAuthAge", "30000");
        assert!(
            cond(json!({"NumericGreaterThan": {"aws:MultiFactorAuthAge": "28800"}})).matches(&ctx)
        );
        assert!(ip_in_cidr("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_in_cidr("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_in_cidr("2001:db8::1", "2001:db8::/32"));
        assert!(ip_in_cidr("1.2.3.4", "0.0.0.0/0"));
    }

    #[test]
    fn variables() {
        let ctx = Context::new()
            .with("aws:username", "alice")
            .with("s3:prefix", "home/alice/x");
        assert!(cond(json!({"StringLike": {"s3:prefix": "home/${aws:username}/*"}})).matches(&ctx));
    }
}
