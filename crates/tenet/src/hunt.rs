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
        bail!(
            "no rule in {} could be loaded ({} problem(s))",
            rules
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            set.problems().len()
        );
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
