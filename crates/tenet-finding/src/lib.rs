//! The finding model shared by Tenet's configuration audits.
//!
//! Every analysis (`tenet-iam`, `tenet-k8s`, `tenet-secgroup`, `tenet-pgaudit`) reports what it
//! found as [`Finding`]s: a stable rule id, a [`Severity`], the subject it is about (a principal,
//! a policy, a namespace, a security group, a database role), where in the input it was found
//! ([`Location`]: file, JSON pointer or resource address, line where the format gives one), an
//! explanation, and where one can be derived a least-privilege rewrite. Inputs that an analysis
//! could not use are reported as [`Skipped`] with the reason; nothing is dropped silently.
//! `tenet-assess` gathers them into one report and renders it as text, JSON or SARIF.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a weakness on its own.
    Info,
    /// A weakness with little direct impact.
    Low,
    /// A weakness an attacker can use together with another.
    Medium,
    /// Direct exposure of data or systems, or a path to more privilege.
    High,
    /// Full control of an account, cluster or database, or exposure to the whole internet of
    /// an administrative or database port.
    Critical,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL_DESC: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of `info`, `low`, `medium`, `high`, `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}: expected one of info, low, medium, high, critical")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            _ => Err(UnknownSeverity(s.to_owned())),
        }
    }
}

/// Where in the input a finding was made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Location {
    /// The file as it was named on the command line (or the database URL without password).
    pub file: String,
    /// A JSON pointer (RFC 6901) into the document, a YAML path such as `/items/2/spec`, a
    /// Terraform resource address such as `aws_security_group.web`, or a catalogue object such
    /// as `role app_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// 1-based line, where the format lets it be known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

impl Location {
    /// A location naming only a file.
    pub fn file(file: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            pointer: None,
            line: None,
        }
    }

    /// The same file with a pointer into it.
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    /// The same location with a line.
    pub fn with_line(mut self, line: u32) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(pointer) = &self.pointer {
            write!(f, " {pointer}")?;
        }
        Ok(())
    }
}

/// One thing an audit found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, `<domain>.<name>`, e.g. `iam.admin-equivalent`,
    /// `k8s.no-default-deny-ingress`, `sg.public-ingress`, `pg.superuser`.
    pub rule: String,
    /// How bad it is.
    pub severity: Severity,
    /// One line, readable on its own.
    pub title: String,
    /// What the rule saw and why it matters.
    pub detail: String,
    /// What the finding is about: a principal or policy ARN or name, `namespace/workload`,
    /// a security group id, a database role.
    pub subject: String,
    /// Where it was found.
    pub location: Location,
    /// A least-privilege rewrite or the statements that fix it, where one can be derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// Structured evidence: the actions, ports, peers or privileges involved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, serde_json::Value>,
}

impl Finding {
    /// A finding without remediation or evidence.
    pub fn new(
        rule: impl Into<String>,
        severity: Severity,
        subject: impl Into<String>,
        location: Location,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Finding {
            rule: rule.into(),
            severity,
            title: title.into(),
            detail: detail.into(),
            subject: subject.into(),
            location,
            remediation: None,
            evidence: BTreeMap::new(),
        }
    }

    /// Adds a remediation.
    pub fn with_remediation(mut self, remediation: impl Into<String>) -> Self {
        self.remediation = Some(remediation.into());
        self
    }

    /// Adds one piece of evidence.
    pub fn with_evidence(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.evidence.insert(key.into(), value.into());
        self
    }

    /// The order reports use: most severe first, then file, pointer, rule and subject, so the
    /// same input always gives the same bytes.
    pub fn report_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.location.cmp(&b.location))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.title.cmp(&b.title))
    }
}

/// An input an analysis did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Skipped {
    /// The file (or part of a file, e.g. `deploy.yaml#3` for the third YAML document).
    pub input: String,
    /// Why it was not used: unreadable, not a recognised format, a parse error with its
    /// position, an unsupported construct.
    pub reason: String,
}

impl Skipped {
    /// A skipped input with its reason.
    pub fn new(input: impl Into<String>, reason: impl Into<String>) -> Self {
        Skipped {
            input: input.into(),
            reason: reason.into(),
        }
    }
}

/// What one analysis produced for one input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The findings.
    pub findings: Vec<Finding>,
    /// Inputs, or parts of inputs, that were not used.
    pub skipped: Vec<Skipped>,
}

impl Outcome {
    /// Appends another outcome.
    pub fn extend(&mut self, other: Outcome) {
        self.findings.extend(other.findings);
        self.skipped.extend(other.skipped);
    }
}

/// Text from an input made safe for a terminal: control characters (C0, DEL, C1), which
/// could clear the screen or forge report lines, and bidirectional formatting characters,
/// which could make a name display as another, are written as `\u{..}` escapes; `\t`
/// stays. Everything else is unchanged.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(
                c,
                '\u{2028}'
                    | '\u{2029}'
                    | '\u{200e}'
                    | '\u{200f}'
                    | '\u{061c}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
            )
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Escapes one reference token of a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        let err = "severe".parse::<Severity>().unwrap_err();
        assert!(err.to_string().contains("\"severe\""));
    }

    #[test]
    fn report_order_puts_worst_first_then_location() {
        let a = Finding::new("x.a", Severity::Low, "s", Location::file("a"), "t", "d");
        let b = Finding::new("x.b", Severity::High, "s", Location::file("b"), "t", "d");
        let c = Finding::new("x.c", Severity::High, "s", Location::file("a"), "t", "d");
        let mut v = vec![a.clone(), b.clone(), c.clone()];
        v.sort_by(Finding::report_order);
        assert_eq!(v, vec![c, b, a]);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text\tok"), "plain text\tok");
        assert_eq!(
            printable("evil\u{1b}[2J\nCRITICAL"),
            "evil\\u{1b}[2J\\u{a}CRITICAL"
        );
        assert_eq!(printable("c1\u{9b}x"), "c1\\u{9b}x");
        assert_eq!(
            printable("ns-\u{202e}nimda\u{2066}x\u{200f}"),
            "ns-\\u{202e}nimda\\u{2066}x\\u{200f}"
        );
        assert_eq!(printable("naïve ünïcode"), "naïve ünïcode");
    }

    #[test]
    fn pointer_tokens_escape() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn location_displays_file_line_pointer() {
        let l = Location::file("p.json")
            .with_line(3)
            .with_pointer("/Statement/0");
        assert_eq!(l.to_string(), "p.json:3 /Statement/0");
    }
}
