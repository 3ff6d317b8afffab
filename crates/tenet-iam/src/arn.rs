//! Matching policy resource patterns against the catalogue's ARN templates.
//!
//! IAM matches a Resource pattern against the whole ARN of the request: `*` stands for any run
//! of characters (including `:`, `/` and nothing at all) and `?` for exactly one. A catalogue
//! template (`arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}`) stands for
//! every ARN its variables can produce. A pattern can name a resource of the type when the two
//! languages intersect, which [`ResourcePattern::fits`] decides exactly.

use crate::pattern::variables_as_wildcards;

/// ARNs are at most 2,048 characters; a longer pattern is not judged (it is assumed to fit,
/// so no finding claims that something is not granted).
const MAX_PATTERN: usize = 4096;

/// A resource pattern written in a policy (with `*`, `?` and `${variables}`), read once to be
/// matched against the ARN templates of many resource types.
#[derive(Debug, Clone)]
pub struct ResourcePattern<'a> {
    /// The service field when it is literal (see [`literal_service`]).
    service: Option<&'a str>,
    /// The pattern with variables widened, compiled; `None` when it is too long to judge.
    compiled: Option<Vec<Pat>>,
}

impl<'a> ResourcePattern<'a> {
    /// Reads a pattern as written in a policy.
    pub fn new(pattern: &'a str) -> ResourcePattern<'a> {
        let widened = variables_as_wildcards(pattern);
        ResourcePattern {
            service: literal_service(pattern, false),
            compiled: (widened.len() <= MAX_PATTERN).then(|| compile_pattern(&widened)),
        }
    }

    /// Whether the pattern can name a resource of the type whose ARN template is given
    /// (`arn:${Partition}:s3:::${BucketName}/${ObjectName}`).
    pub fn fits(&self, template: &str) -> bool {
        // Quick answer when both name their service literally: different services never fit.
        if let (Some(p), Some(t)) = (self.service, literal_service(template, true))
            && !p.eq_ignore_ascii_case(t)
        {
            return false;
        }
        match &self.compiled {
            Some(pattern) => intersects(pattern, &compile_template(template)),
            None => true,
        }
    }
}

/// The service field of an ARN pattern or template (`arn:aws:s3:::b` → `s3`) when nothing
/// up to and including it is a wildcard or variable, so that it can only match that text.
/// In a template the partition may be a `${Partition}` variable: it never holds `:`.
fn literal_service(arn: &str, template: bool) -> Option<&str> {
    let mut fields = arn.splitn(4, ':');
    let (arn_field, partition, service) = (fields.next()?, fields.next()?, fields.next()?);
    fields.next()?;
    let literal = |f: &str| !f.contains(['*', '?', '$']);
    let partition_ok = literal(partition)
        || (template
            && partition.starts_with("${")
            && partition.ends_with('}')
            && partition.matches('$').count() == 1);
    (arn_field == "arn" && partition_ok && literal(service)).then_some(service)
}

/// Whether a resource pattern is the template itself with every variable widened to `*`
/// (for example `arn:*:cloudtrail:*:*:trail/*`): a Resource "*" in disguise.
pub fn effectively_star(pattern: &str, template: &str) -> bool {
    pattern.contains('*') && crate::pattern::equals_variables_as_wildcards(template, pattern)
}

/// One element of a policy pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    Lit(u8),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, possibly empty.
    Star,
}

/// What characters a template variable can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Anything, including `/` and `:`: the last variable of a template, where AWS appends
    /// qualifiers and paths (`log-group:${LogGroupName}` is authorized as
    /// `log-group:name:*`, device ids hold `:`, object keys hold `/`).
    Any,
    /// A name: `/` (paths, `/aws/lambda/x` log groups, object keys) but never `:`, which
    /// separates the parts of an ARN.
    Name,
    /// One ARN field or a bucket name: never `:` or `/`.
    Field,
}

/// One element of a catalogue template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tpl {
    Lit(u8),
    /// A `${Variable}` (or a literal `*` in the template): any value of its class, possibly
    /// empty (AWS leaves the account or region of some ARNs empty).
    Var(Class),
}

impl Class {
    fn allows(self, c: u8) -> bool {
        match self {
            Class::Any => true,
            Class::Name => c != b':',
            Class::Field => c != b':' && c != b'/',
        }
    }

    /// Variables whose values AWS restricts to one field: the partition, region and account
    /// fields of every ARN, and S3 bucket names (which cannot contain `/`).
    fn of(name: &str, last: bool) -> Class {
        match name {
            "Partition" | "Region" | "Account" | "AccountId" | "BucketName" => Class::Field,
            _ if last => Class::Any,
            _ => Class::Name,
        }
    }
}

fn compile_pattern(pattern: &str) -> Vec<Pat> {
    pattern
        .bytes()
        .map(|b| match b {
            b'*' => Pat::Star,
            b'?' => Pat::One,
            c => Pat::Lit(c.to_ascii_lowercase()),
        })
        .collect()
}

fn compile_template(template: &str) -> Vec<Tpl> {
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("${")
            && let Some(end) = after.find('}')
        {
            rest = after.get(end + 1..).unwrap_or_default();
            let name = after.get(..end).unwrap_or_default();
            out.push(Tpl::Var(Class::of(name, rest.is_empty())));
            continue;
        }
        let mut bytes = rest.bytes();
        match bytes.next() {
            Some(b'*') => out.push(Tpl::Var(Class::Any)),
            Some(c) => out.push(Tpl::Lit(c.to_ascii_lowercase())),
            None => break,
        }
        rest = rest.get(1..).unwrap_or_default();
    }
    out
}

/// Whether some string matches both the pattern and the template: a search over pairs of
/// positions (pattern element, template element), so it runs in O(|pattern| × |template|).
fn intersects(pattern: &[Pat], template: &[Tpl]) -> bool {
    let width = template.len() + 1;
    let mut seen = vec![false; (pattern.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let Some(slot) = seen.get_mut(i * width + j) else {
            continue;
        };
        if *slot {
            continue;
        }
        *slot = true;
        let (p, t) = (pattern.get(i), template.get(j));
        if p.is_none() && t.is_none() {
            return true;
        }
        // A `*` may end here; a variable may end here (both may be empty).
        if p == Some(&Pat::Star) {
            stack.push((i + 1, j));
        }
        if matches!(t, Some(Tpl::Var(_))) {
            stack.push((i, j + 1));
        }
        match (p, t) {
            (Some(Pat::Star), Some(Tpl::Lit(_))) => stack.push((i, j + 1)),
            (Some(Pat::Lit(a)), Some(Tpl::Lit(b))) if a == b => stack.push((i + 1, j + 1)),
            (Some(Pat::One), Some(Tpl::Lit(_))) => stack.push((i + 1, j + 1)),
            (Some(Pat::Lit(c)), Some(Tpl::Var(class))) if class.allows(*c) => {
                stack.push((i + 1, j));
            }
            (Some(Pat::One), Some(Tpl::Var(_))) => stack.push((i + 1, j)),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern_fits_template(pattern: &str, template: &str) -> bool {
        ResourcePattern::new(pattern).fits(template)
    }

    const BUCKET: &str = "arn:${Partition}:s3:::${BucketName}";
    const OBJECT: &str = "arn:${Partition}:s3:::${BucketName}/${ObjectName}";
    const LOG_GROUP: &str = "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}";
    const LOG_STREAM: &str = "arn:${Partition}:logs:${Region}:${Account}:log-group:\
                              ${LogGroupName}:log-stream:${LogStreamName}";
    const SNAPSHOT: &str = "arn:${Partition}:ec2:${Region}::snapshot/${SnapshotId}";

    #[test]
    fn buckets_and_objects() {
        assert!(pattern_fits_template("arn:aws:s3:::b", BUCKET));
        assert!(!pattern_fits_template("arn:aws:s3:::b/*", BUCKET));
        assert!(pattern_fits_template("arn:aws:s3:::b/*", OBJECT));
        assert!(!pattern_fits_template("arn:aws:s3:::b", OBJECT));
        assert!(pattern_fits_template("arn:aws:s3:::*", OBJECT));
        assert!(pattern_fits_template("arn:aws:s3:::*", BUCKET));
        assert!(pattern_fits_template(
            "arn:aws:iam::*:mfa/${aws:username}",
            "arn:${Partition}:iam::${Account}:mfa/${MfaTokenIdWithPath}"
        ));
        assert!(pattern_fits_template(
            "arn:aws:lambda:*:123456789012:layer:sol-*:*",
            "arn:${Partition}:lambda:${Region}:${Account}:layer:${LayerName}:${LayerVersion}"
        ));
    }

    /// The user report: log groups as AWS documents them, names with `/`, and the EC2
    /// snapshot ARN whose account field is empty.
    #[test]
    fn log_groups_and_snapshots_fit() {
        let documented = "arn:aws:logs:us-east-1:111122223333:log-group:myapp:*";
        assert!(pattern_fits_template(documented, LOG_GROUP));
        assert!(pattern_fits_template(documented, LOG_STREAM));
        assert!(pattern_fits_template(
            "arn:aws:logs:*:*:log-group:/app/*",
            LOG_GROUP
        ));
        assert!(pattern_fits_template(
            "arn:aws:logs:*:*:log-group:/aws/lambda-insights:*",
            LOG_STREAM
        ));
        assert!(pattern_fits_template(
            "arn:aws:ec2:*:*:snapshot/*",
            SNAPSHOT
        ));
        assert!(pattern_fits_template(
            "arn:aws:ec2:*::snapshot/snap-1",
            SNAPSHOT
        ));
        assert!(pattern_fits_template(
            "arn:aws:ec2:us-east-?::snapshot/*",
            SNAPSHOT
        ));
    }

    #[test]
    fn other_types_do_not_fit() {
        assert!(!pattern_fits_template("arn:aws:s3:::b/*", LOG_GROUP));
        assert!(!pattern_fits_template(
            "arn:aws:ec2:us-east-1:111122223333:volume/*",
            SNAPSHOT
        ));
        // Wildcards that span fields can reach any type whose last variable is free text
        // ("snapshot/x:1:volume/y"): no mismatch is claimed then, so "not granted" stays sound.
        assert!(pattern_fits_template("arn:aws:ec2:*:*:volume/*", SNAPSHOT));
        assert!(pattern_fits_template(
            "arn:aws:a4b:us-east-1:*:device/*/*:A2IWO7UEGWV4TL",
            "arn:${Partition}:a4b:${Region}:${Account}:device/${ResourceId}"
        ));
        assert!(!pattern_fits_template(
            "arn:aws:logs:us-east-1:111122223333:log-group:a:b:log-stream:*",
            LOG_STREAM
        ));
        // The snapshot ARN's account field is empty.
        assert!(!pattern_fits_template(
            "arn:aws:ec2:us-east-1:1:snapshot/x",
            SNAPSHOT
        ));
        assert!(!pattern_fits_template(
            "arn:aws:iam::111122223333:role/x",
            "arn:${Partition}:iam::${Account}:user/${UserNameWithPath}"
        ));
        assert!(pattern_fits_template(
            "arn:aws:iam::*:role/service-role/x",
            "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}"
        ));
    }

    #[test]
    fn literal_services() {
        assert_eq!(literal_service("arn:aws:s3:::b/*", false), Some("s3"));
        assert_eq!(literal_service(OBJECT, true), Some("s3"));
        assert_eq!(literal_service(OBJECT, false), None);
        assert_eq!(literal_service("arn:*:s3:::b", false), None);
        assert_eq!(literal_service("arn:aws:s*:::b", false), None);
        assert_eq!(literal_service("arn:aws:s3", false), None);
        // The quick answer agrees with the full search.
        assert!(!pattern_fits_template("arn:aws:ec2:*:*:volume/*", OBJECT));
        assert!(pattern_fits_template("arn:*:s3:::b/*", OBJECT));
    }

    #[test]
    fn hostile_patterns_finish() {
        let long = format!("{}/", "*a".repeat(2000));
        assert!(!pattern_fits_template(&long, BUCKET));
        assert!(pattern_fits_template(&"*".repeat(10_000), BUCKET));
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
