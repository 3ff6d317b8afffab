//! `tenet assess` and `tenet segment generate`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use tenet_assess::{Format, Options, Progress};
use tenet_finding::Severity;

/// Exit code when a finding at or above `--fail-on` was made.
const EXIT_FINDINGS: u8 = 1;
/// Exit code when an input named on the command line could not be assessed.
const EXIT_UNUSABLE_INPUT: u8 = 2;

/// Files found before a progress bar is worth showing.
const PROGRESS_THRESHOLD: usize = 200;

pub async fn run(
    paths: &[String],
    format: &str,
    fail_on: Option<&str>,
    reach: bool,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let format: Format = format
        .parse()
        .map_err(|e: String| anyhow!("--format: {e}"))?;
    let fail_on: Option<Severity> = fail_on
        .map(|s| s.parse().map_err(|e| anyhow!("--fail-on: {e}")))
        .transpose()?;
    if paths.is_empty() {
        bail!("no input: give files, folders or postgres:// URLs to assess");
    }

    let mut bar: Option<indicatif::ProgressBar> = None;
    let interactive = std::io::stderr().is_terminal();
    let mut on_progress = |p: Progress| {
        if !interactive {
            return;
        }
        match p {
            Progress::Reading { done, total } if total >= PROGRESS_THRESHOLD => {
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new(total as u64);
                    if let Ok(style) = indicatif::ProgressStyle::with_template(
                        "reading {bar:40} {pos}/{len} files ({eta})",
                    ) {
                        b.set_style(style);
                    }
                    b
                });
                b.set_position(done as u64);
            }
            Progress::Analysing => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
            Progress::Reading { .. } => {}
        }
    };
    let report = tenet_assess::assess(paths, Options { reach }, &mut on_progress).await;

    let rendered = report.render(format);
    match output {
        Some(path) => std::fs::write(path, &rendered)
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => say_raw!("{rendered}"),
    }

    // An input named on the command line that could not be used is an error, not a
    // quiet skip (files found inside a folder are only listed).
    let unusable: Vec<&tenet_finding::Skipped> = report
        .skipped
        .iter()
        .filter(|s| paths.iter().any(|p| named_input(p) == s.input))
        .collect();
    for s in &unusable {
        eprintln!("error: {}: {}", s.input, s.reason);
    }
    if !unusable.is_empty() {
        return Ok(ExitCode::from(EXIT_UNUSABLE_INPUT));
    }
    if let (Some(threshold), Some(worst)) = (fail_on, report.worst())
        && worst >= threshold
    {
        eprintln!(
            "failing: {} finding(s) at or above {threshold}",
            report
                .findings
                .iter()
                .filter(|f| f.severity >= threshold)
                .count()
        );
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

/// How an argument appears in the report: database URLs without password.
fn named_input(arg: &str) -> String {
    if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
        tenet_pgaudit::redact_url(arg).unwrap_or_else(|_| "postgres://(unparsable URL)".into())
    } else {
        arg.to_owned()
    }
}

/// `tenet segment generate --flows FILE MANIFEST...`
pub fn segment_generate(
    flows: &Path,
    manifests: &[PathBuf],
    out: Option<&Path>,
) -> Result<ExitCode> {
    let flows_text = std::fs::read_to_string(flows)
        .with_context(|| format!("reading the flows file {}", flows.display()))?;
    let flows_parsed = tenet_k8s::Flows::from_yaml(&flows_text)
        .map_err(|e| anyhow!("flows file {}: {e}", flows.display()))?;
    if manifests.is_empty() {
        bail!("give the manifests of the workloads the flows name (files or folders)");
    }
    let mut cluster = tenet_k8s::Cluster::new();
    let mut files = Vec::new();
    for m in manifests {
        collect_yaml(m, &mut files)?;
    }
    if files.is_empty() {
        bail!("no .yaml, .yml or .json manifests found in the paths given");
    }
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the manifest {}", file.display()))?;
        cluster
            .add_text(&file.display().to_string(), &text)
            .map_err(|e| anyhow!("manifest {}: {e}", file.display()))?;
    }
    let yaml = tenet_k8s::generate_segmentation(&cluster, &flows_parsed)
        .map_err(|e| anyhow!("generating policies for {}: {e}", flows.display()))?;
    match out {
        Some(path) => {
            std::fs::write(path, &yaml)
                .with_context(|| format!("writing the policies to {}", path.display()))?;
            eprintln!(
                "wrote default-deny NetworkPolicies and {} flow(s) to {}",
                flows_parsed.flows.len(),
                path.display()
            );
        }
        None => say_raw!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn collect_yaml(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let is_manifest = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if p.is_file() && is_manifest {
            out.push(p);
        }
    }
    Ok(())
}
