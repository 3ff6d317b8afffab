//! The combined report and its renderings: text (grouped by severity), JSON, SARIF 2.1.0.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenet_finding::{Finding, Severity, Skipped};

/// Everything one `tenet assess` run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version of the JSON report.
    pub version: u32,
    /// The inputs that were read and used (files, database URLs without password).
    pub inputs: Vec<String>,
    /// Which analyses ran on at least one input: `iam`, `k8s`, `secgroup`, `pg`.
    pub analyses: Vec<String>,
    /// Findings, most severe first (see [`Finding::report_order`]).
    pub findings: Vec<Finding>,
    /// Inputs, or parts of inputs, that were not used, with the reason.
    pub skipped: Vec<Skipped>,
    /// With `--reach`: the allowed connections between workloads, one per line in
    /// netpol-analyzer's form (`ns/a[Deployment] => ns/b[Deployment] : TCP 8080`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Per analysis (`iam`, `k8s`, `secgroup`, `pg`), the skipped inputs that may have held
    /// its kind of input but were invalid (a manifest that does not parse, an object of a
    /// known kind that cannot be read, a database that could not be reached): what the
    /// analysis says is incomplete, and `tenet score` counts it against the facts it decides.
    /// A file that is not JSON at all may have held any kind, so it is listed under `iam`,
    /// `k8s` and `secgroup`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invalid: BTreeMap<String, Vec<String>>,
}

/// Version of the JSON report format.
pub const REPORT_VERSION: u32 = 1;

/// The output formats of `tenet assess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Readable text grouped by severity, with a summary.
    Text,
    /// The [`Report`] as JSON.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Read in any case, like `--fail-on` severities: `JSON` is `json`.
impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            other => Err(format!(
                "unknown format {other:?}: expected text, json or sarif"
            )),
        }
    }
}

impl Report {
    /// Sorts findings and skipped inputs into report order, so the same input gives the
    /// same bytes.
    pub fn normalise(&mut self) {
        self.version = REPORT_VERSION;
        self.findings.sort_by(Finding::report_order);
        self.findings.dedup();
        self.skipped.sort();
        self.skipped.dedup();
        self.inputs.sort();
        self.inputs.dedup();
        self.analyses.sort();
        self.analyses.dedup();
        for inputs in self.invalid.values_mut() {
            inputs.sort();
            inputs.dedup();
        }
        self.invalid.retain(|_, inputs| !inputs.is_empty());
    }

    /// Records that `input`, skipped as invalid, may have held input for `analyses`.
    pub fn mark_invalid(&mut self, analyses: &[&str], input: &str) {
        for a in analyses {
            self.invalid
                .entry((*a).to_owned())
                .or_default()
                .push(input.to_owned());
        }
    }

    /// Number of findings per severity, every severity present.
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut counts: BTreeMap<Severity, usize> =
            Severity::ALL_DESC.iter().map(|s| (*s, 0)).collect();
        for f in &self.findings {
            *counts.entry(f.severity).or_default() += 1;
        }
        counts
    }

    /// The most severe finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
                s.push('\n');
                s
            }
            Format::Sarif => {
                let mut s = serde_json::to_string_pretty(&self.to_sarif()).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }

    /// The readable report. Text taken from the inputs is made printable (control
    /// characters escaped), so a hostile name cannot forge report lines.
    pub fn to_text(&self) -> String {
        let p = |s: &str| tenet_finding::printable(s).into_owned();
        let mut out = String::new();
        let counts = self.counts();
        let _ = writeln!(
            out,
            "Tenet assessment: {} input(s) read, {} skipped, {} finding(s)",
            self.inputs.len(),
            self.skipped.len(),
            self.findings.len()
        );
        let summary: Vec<String> = Severity::ALL_DESC
            .iter()
            .map(|s| format!("{} {}", s, counts.get(s).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(out, "  {}", summary.join("  "));
        if !self.analyses.is_empty() {
            let _ = writeln!(out, "  analyses: {}", self.analyses.join(", "));
        }
        for severity in Severity::ALL_DESC {
            let group: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{} ({})",
                severity.as_str().to_uppercase(),
                group.len()
            );
            for f in group {
                if f.title.starts_with(&f.subject) {
                    let _ = writeln!(out, "  [{}] {}", p(&f.rule), p(&f.title));
                } else {
                    let _ = writeln!(out, "  [{}] {}: {}", p(&f.rule), p(&f.subject), p(&f.title));
                }
                let _ = writeln!(out, "      at {}", p(&f.location.to_string()));
                for line in f.detail.lines() {
                    let _ = writeln!(out, "      {}", p(line));
                }
                if let Some(fix) = &f.remediation {
                    let mut lines = fix.lines();
                    if let Some(first) = lines.next() {
                        let _ = writeln!(out, "      fix: {}", p(first));
                    }
                    for line in lines {
                        let _ = writeln!(out, "           {}", p(line));
                    }
                }
            }
        }
        if !self.connections.is_empty() {
            let _ = writeln!(out, "\nALLOWED CONNECTIONS ({})", self.connections.len());
            for c in &self.connections {
                let _ = writeln!(out, "  {}", p(c));
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSKIPPED ({})", self.skipped.len());
            for s in &self.skipped {
                let _ = writeln!(out, "  {}: {}", p(&s.input), p(&s.reason));
            }
        }
        out
    }

    /// SARIF 2.1.0: one run, one rule per Tenet rule id, one result per finding; skipped
    /// inputs as tool execution notifications.
    pub fn to_sarif(&self) -> Value {
        let mut rules: BTreeMap<&str, (&Finding, Severity)> = BTreeMap::new();
        for f in &self.findings {
            let entry = rules.entry(f.rule.as_str()).or_insert((f, f.severity));
            entry.1 = entry.1.max(f.severity);
        }
        let index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, k)| (*k, i)).collect();
        let rule_objects: Vec<Value> = rules
            .iter()
            .map(|(id, (example, severity))| {
                json!({
                    "id": id,
                    "name": rule_name(id),
                    "shortDescription": {"text": example.title},
                    "defaultConfiguration": {"level": sarif_level(*severity)},
                    "properties": {
                        "security-severity": security_severity(*severity),
                        "tags": ["security", domain_of(id)],
                    },
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut physical = serde_json::Map::new();
                physical.insert(
                    "artifactLocation".into(),
                    json!({"uri": artifact_uri(&f.location.file)}),
                );
                if let Some(line) = f.location.line.filter(|l| *l > 0) {
                    physical.insert("region".into(), json!({"startLine": line}));
                }
                let mut location = serde_json::Map::new();
                location.insert("physicalLocation".into(), Value::Object(physical));
                if let Some(pointer) = &f.location.pointer {
                    location.insert(
                        "logicalLocations".into(),
                        json!([{"fullyQualifiedName": pointer}]),
                    );
                }
                let mut properties = serde_json::Map::new();
                properties.insert("severity".into(), json!(f.severity.as_str()));
                properties.insert("subject".into(), json!(f.subject));
                if let Some(fix) = &f.remediation {
                    properties.insert("remediation".into(), json!(fix));
                }
                if !f.evidence.is_empty() {
                    properties.insert("evidence".into(), json!(f.evidence));
                }
                json!({
                    "ruleId": f.rule,
                    "ruleIndex": index.get(f.rule.as_str()).copied().unwrap_or(0),
                    "level": sarif_level(f.severity),
                    "message": {"text": format!("{}: {}. {}", f.subject, f.title, f.detail)},
                    "locations": [location],
                    "properties": properties,
                })
            })
            .collect();
        let notifications: Vec<Value> = self
            .skipped
            .iter()
            .map(|s| {
                json!({
                    "level": "warning",
                    "message": {"text": format!("skipped {}: {}", s.input, s.reason)},
                })
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "tenet",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rule_objects,
                }},
                "invocations": [{
                    "executionSuccessful": true,
                    "toolExecutionNotifications": notifications,
                }],
                "results": results,
            }],
        })
    }
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The 0–10 score code-scanning tools read from `properties.security-severity`.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

fn domain_of(rule: &str) -> &str {
    rule.split('.').next().unwrap_or(rule)
}

/// `iam.admin-equivalent` → `AdminEquivalent` (SARIF `name` is a PascalCase identifier).
fn rule_name(rule: &str) -> String {
    rule.split(['.', '-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// A relative file path as a URI reference (percent-encoding what a URI cannot carry); a
/// database location keeps its scheme.
fn artifact_uri(file: &str) -> String {
    if file.contains("://") {
        return file.to_owned();
    }
    let mut out = String::with_capacity(file.len());
    for c in file.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' | '/' => out.push(c),
            '\\' => out.push('/'),
            other => {
                let mut buf = [0u8; 4];
                for b in other.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenet_finding::Location;

    fn sample() -> Report {
        let mut r = Report {
            inputs: vec!["b.json".into(), "a.yaml".into()],
            analyses: vec!["iam".into()],
            findings: vec![
                Finding::new(
                    "iam.service-wildcard",
                    Severity::Medium,
                    "policy p",
                    Location::file("b.json").with_pointer("/Statement/0"),
                    "s3:* grants every S3 action",
                    "detail",
                ),
                Finding::new(
                    "iam.admin-equivalent",
                    Severity::Critical,
                    "policy p",
                    Location::file("my dir/b.json")
                        .with_pointer("/Statement/1")
                        .with_line(4),
                    "grants every action",
                    "detail line 1\nline 2",
                )
                .with_remediation("{\n  \"Action\": \"s3:GetObject\"\n}"),
            ],
            skipped: vec![Skipped::new("x.txt", "not a recognised format")],
            connections: vec![],
            invalid: BTreeMap::new(),
            version: 0,
        };
        r.normalise();
        r
    }

    #[test]
    fn text_groups_by_severity_worst_first() {
        let text = sample().to_text();
        let crit = text.find("CRITICAL (1)").unwrap();
        let med = text.find("MEDIUM (1)").unwrap();
        assert!(crit < med);
        assert!(text.contains("critical 1  high 0  medium 1  low 0  info 0"));
        assert!(text.contains("at my dir/b.json:4 /Statement/1"));
        assert!(text.contains("fix: {"));
        assert!(text.contains("SKIPPED (1)\n  x.txt: not a recognised format"));
    }

    #[test]
    fn json_round_trips_and_is_deterministic() {
        let r = sample();
        let a = r.render(Format::Json);
        let back: Report = serde_json::from_str(&a).unwrap();
        assert_eq!(back, r);
        let mut shuffled = r.clone();
        shuffled.findings.reverse();
        shuffled.normalise();
        assert_eq!(shuffled.render(Format::Json), a);
    }

    #[test]
    fn sarif_has_rules_results_and_notifications() {
        let s = sample().to_sarif();
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["id"], "iam.admin-equivalent");
        assert_eq!(rules[0]["name"], "IamAdminEquivalent");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results[0]["ruleIndex"], 0);
        assert_eq!(results[0]["level"], "error");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "my%20dir/b.json"
        );
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            4
        );
        assert_eq!(results[1]["level"], "warning");
        assert_eq!(
            run["invocations"][0]["toolExecutionNotifications"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!("sarif".parse::<Format>(), Ok(Format::Sarif));
        // Any case, as --fail-on reads severities.
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert_eq!("Text".parse::<Format>(), Ok(Format::Text));
        assert_eq!("Critical".parse::<Severity>(), Ok(Severity::Critical));
        assert!("xml".parse::<Format>().unwrap_err().contains("\"xml\""));
    }
}
