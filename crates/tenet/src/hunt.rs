//! `tenet hunt`: Sigma rules over log files, offline.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;

use crate::OutputFormat;

/// Exit code when an input named on the command line could not be read at all.
const EXIT_UNUSABLE_INPUT: u8 = 2;

/// Input size (as stored) from which a progress bar is worth showing.
const PROGRESS_THRESHOLD_BYTES: u64 = 32 << 20;

/// Whether to show a progress bar: only on a terminal, only for large inputs.
fn show_progress(stderr_is_terminal: bool, bytes_total: u64) -> bool {
    stderr_is_terminal && bytes_total >= PROGRESS_THRESHOLD_BYTES
}

/// A progress bar on standard error, in bytes read, with the events read so far.
struct Progress {
    interactive: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            interactive: std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn update(&mut self, p: tenet_sigma::HuntProgress) {
        if self.bar.is_none() && show_progress(self.interactive, p.bytes_total) {
            let bar = indicatif::ProgressBar::new(p.bytes_total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "hunting {bar:24} {bytes}/{total_bytes} {msg} ({eta})",
            ) {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(p.bytes_read);
            if p.events.is_multiple_of(4096) {
                bar.set_message(format!("{} events", p.events));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

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
    let mut progress = Progress::new();
    let report = tenet_sigma::hunt_with_progress(&set, inputs, &mut |p| progress.update(p));
    progress.finish();
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
        .filter(|s| inputs.iter().any(|i| tenet_sigma::input_name(i) == s.input))
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
    fn progress_only_on_a_terminal_and_for_large_inputs() {
        assert!(show_progress(true, PROGRESS_THRESHOLD_BYTES));
        assert!(!show_progress(true, PROGRESS_THRESHOLD_BYTES - 1));
        assert!(!show_progress(false, u64::MAX));
    }

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
