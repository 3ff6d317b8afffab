//! `tenet hunt`: Sigma rules over log files, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;

use crate::OutputFormat;

/// Exit code when an input named on the command line could not be read at all.
const EXIT_UNUSABLE_INPUT: u8 = 2;

pub fn run(rules: &[PathBuf], inputs: &[PathBuf], format: OutputFormat) -> Result<ExitCode> {
    if rules.is_empty() {
        bail!("give the Sigma rules with --rules DIR (repeatable)");
    }
    if inputs.is_empty() {
        bail!("give the log files to hunt in");
    }
    for r in rules {
        if !r.exists() {
            bail!("--rules {}: no such file or folder", r.display());
        }
    }
    let set = tenet_sigma::RuleSet::load_paths(rules);
    if set.is_empty() {
        bail!("{}", nothing_loaded(rules, set.problems()));
    }
    let report = tenet_sigma::hunt(&set, inputs);
    match format {
        OutputFormat::Json => say!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "rules": set.len(),
                "rule_problems": set.problems().iter().map(|p| json!({
                    "file": p.file, "rule_id": p.rule_id, "construct": p.construct, "reason": p.reason,
                })).collect::<Vec<_>>(),
                "events": report.events,
                "hits": report.hits,
                "skipped": report.skipped,
            }))?
        ),
        OutputFormat::Text => {
            let per_source: Vec<String> = report
                .events
                .iter()
                .map(|(source, n)| format!("{source} {n}"))
                .collect();
            say!(
                "Tenet hunt: {} rule(s) ({} not loaded), {} event(s){}, {} hit(s), {} skipped",
                set.len(),
                set.problems().len(),
                report.event_count(),
                if per_source.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", per_source.join(", "))
                },
                report.hits.len(),
                report.skipped.len()
            );
            for h in &report.hits {
                let level = h
                    .level
                    .map_or("-".to_owned(), |l| l.as_str().to_uppercase());
                let attack = if h.attack.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", h.attack.join(", "))
                };
                let kind = if h.correlation { " (correlation)" } else { "" };
                say!(
                    "  {level:<8} {} {}{kind}{attack}\n           at {} ({})",
                    h.rule_id,
                    h.title,
                    h.event,
                    h.source
                );
            }
            if !set.problems().is_empty() {
                say!("\nRULES NOT LOADED ({})", set.problems().len());
                for p in set.problems() {
                    say!("  {}", tenet_finding::printable(&p.to_string()));
                }
            }
            if !report.skipped.is_empty() {
                say!("\nSKIPPED ({})", report.skipped.len());
                for s in &report.skipped {
                    say!(
                        "  {}: {}",
                        tenet_finding::printable(&s.input),
                        tenet_finding::printable(&s.reason)
                    );
                }
            }
        }
    }
    let unusable: Vec<&tenet_finding::Skipped> = report
        .skipped
        .iter()
        .filter(|s| inputs.iter().any(|i| i.display().to_string() == s.input))
        .collect();
    for s in &unusable {
        eprintln!("error: {}: {}", s.input, s.reason);
    }
    if unusable.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_UNUSABLE_INPUT))
    }
}

/// Why no rule could be loaded: every problem, so that the user can fix the rules.
fn nothing_loaded(rules: &[PathBuf], problems: &[tenet_sigma::LoadProblem]) -> String {
    let named = rules
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if problems.is_empty() {
        return format!("no Sigma rule in {named}: no non-empty .yml or .yaml file");
    }
    let mut out = format!(
        "no rule in {named} could be loaded ({} problem(s)):",
        problems.len()
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&tenet_finding::printable(&p.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_no_rule_loads_every_problem_is_named() {
        let set = tenet_sigma::RuleSet::from_yaml(
            "bad.yml",
            "title: t\nid: r1\nlogsource: {product: x}\n\
             detection: {sel: {F|foo: a}, condition: sel}\n",
        );
        assert!(set.is_empty());
        let message = nothing_loaded(&[PathBuf::from("bad.yml")], set.problems());
        assert!(
            message.starts_with("no rule in bad.yml could be loaded (1 problem(s)):\n  bad.yml"),
            "{message}"
        );
        assert!(
            message.contains("r1") && message.contains("modifier |foo"),
            "{message}"
        );
        let empty = nothing_loaded(&[PathBuf::from("rules")], &[]);
        assert!(empty.contains("no non-empty .yml or .yaml file"), "{empty}");
    }
}
