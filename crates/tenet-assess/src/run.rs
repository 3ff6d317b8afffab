//! One `tenet assess` run: gather the inputs, offer each to the analyses that recognise it,
//! and collect one [`Report`].

use serde_json::Value;
use tenet_finding::{Outcome, Skipped};

use crate::inputs::{Input, gather};
use crate::report::Report;

/// `--reach` lists pairs of workloads; above this many workloads it is refused rather than
/// run out of memory.
pub const MAX_REACH_WORKLOADS: usize = 2_000;

/// The name under which a refused `--reach` is reported as skipped.
pub const REACH_INPUT: &str = "--reach";

/// What to compute besides findings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// List the allowed connections between the Kubernetes workloads.
    pub reach: bool,
    /// The time of the analysis (seconds since the epoch): IAM conditions on
    /// `aws:CurrentTime`, `aws:EpochTime` and `aws:TokenIssueTime` are decided at it. Without
    /// it they are taken as satisfiable.
    pub now: Option<i64>,
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// `done` of `total` files read.
    Reading {
        /// Files read so far.
        done: usize,
        /// Files found.
        total: usize,
    },
    /// Inputs read; the analyses are running.
    Analysing,
}

/// Assesses every path: files, folders (recursively) and `postgres://` URLs.
///
/// Each input is recognised by its content and offered to the analyses in turn: IAM, then
/// security groups, then Kubernetes. Terraform files of one folder are read as one module
/// and offered to IAM and security groups. An input no analysis takes is reported as
/// skipped with the reason.
pub async fn assess(
    paths: &[String],
    options: Options,
    progress: &mut dyn FnMut(Progress),
) -> Report {
    let gathered = gather(paths, &mut |done, total| {
        progress(Progress::Reading { done, total })
    });
    progress(Progress::Analysing);
    let mut report = Report::default();
    for s in &gathered.skipped {
        if s.reason.starts_with("invalid YAML") || s.reason.starts_with("YAML flow collections") {
            report.mark_invalid(&["k8s"], &s.input);
        } else if s.reason.starts_with("invalid JSON") {
            report.mark_invalid(&["iam", "k8s", "secgroup"], &s.input);
        }
    }
    report.skipped = gathered.skipped;
    let mut iam = match options.now {
        Some(now) => tenet_iam::Account::new().at_time(now),
        None => tenet_iam::Account::new(),
    };
    let mut groups = tenet_secgroup::Groups::new();
    let mut cluster = tenet_k8s::Cluster::new();
    let (mut used_iam, mut used_k8s) = (false, false);
    let mut databases = Vec::new();
    let mut json_texts: std::collections::HashMap<String, String> =
        std::collections::HashMap::new();

    for input in gathered.inputs {
        match input {
            Input::Json { file, value, text } => {
                json_texts.insert(file.clone(), text);
                let taken = if iam.add_json(&file, &value) {
                    used_iam = true;
                    true
                } else if groups.add_json(&file, &value) {
                    true
                } else if is_kubernetes(&value) && cluster.add_object(&file, 0, &value) {
                    used_k8s = true;
                    true
                } else {
                    false
                };
                if !taken {
                    report.skipped.push(Skipped::new(
                        &file,
                        "JSON, but not an IAM policy, an authorization-details dump, security groups, a prefix list or a Kubernetes object",
                    ));
                    continue;
                }
                report.inputs.push(file);
            }
            Input::Yaml { file, docs, text } => {
                cluster.add_source(&file, &text);
                let mut used = false;
                for (i, doc) in &docs {
                    if cluster.add_object(&file, *i, doc) {
                        used = true;
                    } else {
                        report.skipped.push(Skipped::new(
                            format!("{file}#{i}"),
                            "YAML document that is not a Kubernetes object (no apiVersion and kind)",
                        ));
                    }
                }
                if used {
                    used_k8s = true;
                    report.inputs.push(file);
                } else if docs.is_empty() {
                    report
                        .skipped
                        .push(Skipped::new(&file, "YAML with no documents"));
                }
            }
            Input::Terraform { files, .. } => {
                let module = tenet_terraform::Module::from_files(&files);
                for s in &module.skipped {
                    report.mark_invalid(&["iam", "secgroup"], &s.input);
                }
                report.skipped.extend(module.skipped.iter().cloned());
                let before = groups.len();
                iam.add_terraform(&module);
                groups.add_terraform(&module);
                let has_iam = module.blocks.iter().any(|b| b.kind.starts_with("aws_iam_"));
                used_iam |= has_iam;
                if has_iam || groups.len() > before {
                    report.inputs.extend(
                        files
                            .into_iter()
                            .map(|(name, _)| name)
                            .filter(|name| !module.skipped.iter().any(|s| &s.input == name)),
                    );
                } else {
                    for (name, _) in &files {
                        if !module.skipped.iter().any(|s| &s.input == name) {
                            report.skipped.push(Skipped::new(
                                name,
                                "Terraform without IAM or security-group resources",
                            ));
                        }
                    }
                }
            }
            Input::Postgres { url } => databases.push(url),
        }
    }

    let mut outcome = Outcome::default();
    if used_iam {
        report.analyses.push("iam".into());
        let iam_outcome = iam.assess();
        for s in &iam_outcome.skipped {
            report.mark_invalid(&["iam"], &s.input);
        }
        outcome.extend(iam_outcome);
    }
    // Always: a file of groups that were all malformed has only skip reasons to report.
    let group_outcome = groups.assess();
    if !groups.is_empty() {
        report.analyses.push("secgroup".into());
    }
    for s in &group_outcome.skipped {
        report.mark_invalid(&["secgroup"], &s.input);
    }
    outcome.extend(group_outcome);
    // Kubernetes objects that could not be read, whether or not any other was.
    for s in cluster.skipped() {
        report.mark_invalid(&["k8s"], &s.input);
    }
    if used_k8s {
        report.analyses.push("k8s".into());
        outcome.extend(cluster.assess());
        if options.reach {
            let workloads = cluster.workload_count();
            if workloads > MAX_REACH_WORKLOADS {
                report.skipped.push(Skipped::new(
                    REACH_INPUT,
                    format!(
                        "{workloads} workloads: listing every allowed pair could take up to \
                         {workloads}\u{b2} lines; assess one namespace's manifests at a time \
                         (at most {MAX_REACH_WORKLOADS} workloads)"
                    ),
                ));
            } else {
                report.connections = cluster
                    .connections()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            }
        }
    } else {
        report.skipped.extend(cluster.skipped().iter().cloned());
    }
    for url in databases {
        // Named as `unusable` names it, so that a URL that does not even parse still fails
        // the run (exit 2) and says which argument it was.
        let shown = shown_database(&url);
        match tenet_pgaudit::assess_url(&url).await {
            Ok(db) => {
                report.analyses.push("pg".into());
                report.inputs.push(shown);
                outcome.extend(db);
            }
            Err(e) => {
                report.mark_invalid(&["pg"], &shown);
                report.skipped.push(Skipped::new(shown, error_chain(&e)));
            }
        }
    }
    // One index per file that has findings without a line, of the values those findings
    // point at.
    let mut wanted: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for finding in &outcome.findings {
        let location = &finding.location;
        if location.line.is_none()
            && let (Some((file, _)), Some(pointer)) =
                (json_texts.get_key_value(&location.file), &location.pointer)
        {
            wanted.entry(file.as_str()).or_default().push(pointer);
        }
    }
    let indexes: std::collections::HashMap<String, crate::lines::PointerIndex> = wanted
        .into_iter()
        .filter_map(|(file, pointers)| {
            let text = json_texts.get(file)?;
            Some((
                file.to_owned(),
                crate::lines::PointerIndex::build_for(text, pointers),
            ))
        })
        .collect();
    for finding in &mut outcome.findings {
        let location = &mut finding.location;
        if location.line.is_none()
            && let (Some(index), Some(pointer)) = (indexes.get(&location.file), &location.pointer)
        {
            location.line = index.line(pointer);
        }
    }
    report.findings = outcome.findings;
    report.skipped.extend(outcome.skipped);
    report.normalise();
    report
}

fn is_kubernetes(value: &Value) -> bool {
    value.get("apiVersion").is_some() && value.get("kind").is_some()
}

/// An error with its causes, `outer: inner: innermost`, skipping causes the outer message
/// already contains.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        source = cause.source();
    }
    text
}

/// How a database URL appears in reports: without its password.
pub fn shown_database(url: &str) -> String {
    tenet_pgaudit::redact_url(url.trim()).unwrap_or_else(|_| crate::inputs::shown_arg(url))
}

/// The command-line arguments that could not be assessed, each with the reason: a named file
/// (or database) that was skipped, wholly or in part, and a named folder from which no input
/// could be used.
pub fn unusable(report: &Report, args: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report
        .skipped
        .iter()
        .filter(|s| s.input == REACH_INPUT)
        .map(|s| (s.input.clone(), s.reason.clone()))
        .collect();
    for arg in args {
        let shown = match crate::inputs::url_scheme(arg).as_deref() {
            Some("postgres" | "postgresql") => shown_database(arg),
            Some(_) => crate::inputs::shown_arg(arg),
            None => arg.clone(),
        };
        let own = report
            .skipped
            .iter()
            .find(|s| s.input == shown || s.input.starts_with(&format!("{shown}#")));
        if let Some(s) = own {
            out.push((s.input.clone(), s.reason.clone()));
            continue;
        }
        if std::path::Path::new(arg).is_dir() {
            let prefix = format!("{}/", arg.trim_end_matches('/'));
            let used = report.inputs.iter().any(|i| i.starts_with(&prefix));
            if !used {
                let skipped = report
                    .skipped
                    .iter()
                    .filter(|s| s.input.starts_with(&prefix))
                    .count();
                out.push((
                    arg.clone(),
                    format!("nothing in this folder could be assessed ({skipped} file(s) skipped)"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a future that completes without waiting (no I/O is started).
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn an_unparsable_database_url_is_named_and_unusable() {
        for url in [
            "postgres://app:s3cret@127.0.0.1:99999/db",
            "postgres://[::1",
        ] {
            let args = vec![url.to_owned()];
            let report = ready(assess(&args, Options::default(), &mut |_| {}));
            assert!(report.inputs.is_empty(), "{url}: {:?}", report.inputs);
            let unusable = unusable(&report, &args);
            assert_eq!(unusable.len(), 1, "{url}: {:?}", report.skipped);
            let (input, reason) = &unusable[0];
            assert!(input.starts_with("postgres://"), "{input}");
            assert!(reason.contains("invalid PostgreSQL URL"), "{reason}");
            assert!(!input.contains("s3cret") && !reason.contains("s3cret"));
        }
        let shown: Vec<String> = ["postgres://app:s3cret@127.0.0.1:99999/db"]
            .iter()
            .map(|u| shown_database(u))
            .collect();
        assert_eq!(shown, ["postgres://app:***@127.0.0.1:99999/db"]);
    }
}
