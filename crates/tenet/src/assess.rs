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

/// Exit code for usage errors and reports that could not be written.
const EXIT_ERROR: u8 = 2;

/// `tenet assess`: every failure other than a finding at `--fail-on` exits 2, so that CI can
/// tell "found something" from "could not look".
pub async fn run(
    paths: &[String],
    format: &str,
    fail_on: Option<&str>,
    reach: bool,
    output: Option<&Path>,
) -> Result<ExitCode> {
    match run_inner(paths, format, fail_on, reach, output).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", tenet_finding::printable(&format!("{e:#}")));
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

async fn run_inner(
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
    if reach && !report.analyses.iter().any(|a| a == "k8s") {
        eprintln!(
            "note: --reach: no Kubernetes manifests among the inputs, so there are no \
             connections to list"
        );
    }

    let rendered = report.render(format);
    match output {
        Some(path) => std::fs::write(path, &rendered)
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(rendered.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => {}
                // The reader went away (`| head`): what it wanted it has.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(anyhow!("writing the report to standard output: {e}")),
            }
        }
    }

    // An input named on the command line that could not be used is an error, not a
    // quiet skip (files found inside a folder are only listed).
    let unusable = tenet_assess::unusable(&report, paths);
    for (input, reason) in &unusable {
        eprintln!(
            "error: {}: {}",
            tenet_finding::printable(input),
            tenet_finding::printable(reason)
        );
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

/// `tenet segment generate --flows FILE MANIFEST...`
pub fn segment_generate(
    flows: &Path,
    manifests: &[PathBuf],
    out: Option<&Path>,
) -> Result<ExitCode> {
    let flows_text = crate::files::read_text(flows, "the flows file")?;
    let flows_parsed = tenet_k8s::Flows::from_yaml(&flows_text)
        .map_err(|e| anyhow!("{}: {e}", flows.display()))?;
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
        let text = crate::files::read_text(file, "the manifest")?;
        cluster
            .add_text(&file.display().to_string(), &text)
            .map_err(|e| anyhow!("manifest {}: {e}", file.display()))?;
    }
    let segmentation = tenet_k8s::generate_segmentation(&cluster, &flows_parsed)
        .map_err(|e| anyhow!("generating policies for {}: {e}", flows.display()))?;
    for w in &segmentation.warnings {
        eprintln!("warning: {}", tenet_finding::printable(&w.to_string()));
    }
    if !segmentation.warnings.is_empty() {
        eprintln!(
            "warning: NetworkPolicies add up: the existing policies above still allow more than \
             the declared flows; remove or narrow them"
        );
    }
    let yaml = segmentation.yaml;
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

/// Manifests under `path`: the file itself, or the .yaml/.yml/.json files of the folder and
/// its subfolders (links to folders are not followed inside a folder).
fn collect_yaml(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    collect_yaml_at(path, out, 0)
}

fn collect_yaml_at(path: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if depth > 32 {
        bail!("{} is nested more than 32 folders deep", path.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        let link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if p.is_dir() && !link {
            collect_yaml_at(&p, out, depth + 1)?;
            continue;
        }
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
