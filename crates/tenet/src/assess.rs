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

/// What `tenet assess` was asked.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    /// Files, folders and `postgres://` URLs.
    pub paths: &'a [String],
    /// `--format`.
    pub format: &'a str,
    /// `--fail-on`.
    pub fail_on: Option<&'a str>,
    /// `--reach`.
    pub reach: bool,
    /// `--output`.
    pub output: Option<&'a Path>,
    /// `--at`: the time of the analysis; now when absent.
    pub at: Option<&'a str>,
}

/// `tenet assess`: every failure other than a finding at `--fail-on` exits 2, so that CI can
/// tell "found something" from "could not look".
pub async fn run(args: Args<'_>) -> Result<ExitCode> {
    match run_inner(args).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", tenet_finding::printable(&format!("{e:#}")));
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// The time of the analysis: `--at` (RFC 3339, a date or epoch seconds), else now.
fn analysis_time(at: Option<&str>) -> Result<i64> {
    match at {
        Some(text) => tenet_assess::parse_time(text.trim()).ok_or_else(|| {
            anyhow!(
                "--at: {text:?} is not a time; give RFC 3339 (2025-06-01T00:00:00Z), a date \
                 (2025-06-01) or seconds since the epoch"
            )
        }),
        None => {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the system clock is before 1970")?;
            i64::try_from(since.as_secs()).context("the system clock is out of range")
        }
    }
}

async fn run_inner(args: Args<'_>) -> Result<ExitCode> {
    let Args {
        paths,
        format,
        fail_on,
        reach,
        output,
        at,
    } = args;
    let format: Format = format
        .parse()
        .map_err(|e: String| anyhow!("--format: {e}"))?;
    let fail_on: Option<Severity> = fail_on
        .map(|s| s.parse().map_err(|e| anyhow!("--fail-on: {e}")))
        .transpose()?;
    let now = analysis_time(at)?;
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
    let report = tenet_assess::assess(
        paths,
        Options {
            reach,
            now: Some(now),
        },
        &mut on_progress,
    )
    .await;
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

/// `tenet segment generate --flows FILE MANIFEST...`: like `tenet assess`, every failure
/// (unreadable flows file or named manifest, flows naming unknown workloads, usage) exits 2.
/// Inputs found inside folders that cannot be used, documents that are not Kubernetes objects
/// and objects that cannot be read are listed on standard error as skipped, with the reason.
pub fn segment_generate(
    flows: &Path,
    manifests: &[PathBuf],
    out: Option<&Path>,
) -> Result<ExitCode> {
    match segment_inner(flows, manifests, out) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", tenet_finding::printable(&format!("{e:#}")));
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn segment_inner(flows: &Path, manifests: &[PathBuf], out: Option<&Path>) -> Result<ExitCode> {
    let flows_text = crate::files::read_text(flows, "the flows file")?;
    let flows_parsed = tenet_k8s::Flows::from_yaml(&flows_text)
        .map_err(|e| anyhow!("{}: {e}", flows.display()))?;
    if manifests.is_empty() {
        bail!("give the manifests of the workloads the flows name (files or folders)");
    }
    let mut cluster = tenet_k8s::Cluster::new();
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for m in manifests {
        collect_yaml(m, &mut files, &mut skipped)?;
    }
    if files.is_empty() {
        for s in &skipped {
            print_skipped(s);
        }
        bail!("no .yaml, .yml or .json manifests found in the paths given");
    }
    for (file, named) in &files {
        let name = file.display().to_string();
        let read = crate::files::read_text(file, "the manifest").and_then(|text| {
            cluster
                .add_text(&name, &text)
                .map_err(|e| anyhow!("manifest {name}: {e}"))
        });
        match read {
            Ok(_) => {}
            // A manifest named on the command line must be usable; one found in a folder is
            // listed as skipped, as `tenet assess` does.
            Err(e) if *named => return Err(e),
            Err(e) => skipped.push(tenet_finding::Skipped::new(&name, format!("{e:#}"))),
        }
    }
    skipped.extend(cluster.skipped().iter().cloned());
    skipped.sort();
    skipped.dedup();
    for s in &skipped {
        print_skipped(s);
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

fn print_skipped(s: &tenet_finding::Skipped) {
    eprintln!(
        "skipped: {}: {}",
        tenet_finding::printable(&s.input),
        tenet_finding::printable(&s.reason)
    );
}

/// Manifests under `path`, each with whether it was named on the command line: the file
/// itself, or the .yaml/.yml/.json files of the folder and its subfolders (links to folders
/// are not followed inside a folder). Entries of a folder that are not used are added to
/// `skipped` with the reason.
fn collect_yaml(
    path: &Path,
    out: &mut Vec<(PathBuf, bool)>,
    skipped: &mut Vec<tenet_finding::Skipped>,
) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_file() {
        out.push((path.to_path_buf(), true));
        return Ok(());
    }
    if !meta.is_dir() {
        bail!("{} is neither a regular file nor a folder", path.display());
    }
    collect_yaml_at(path, out, skipped, 0);
    Ok(())
}

fn collect_yaml_at(
    path: &Path,
    out: &mut Vec<(PathBuf, bool)>,
    skipped: &mut Vec<tenet_finding::Skipped>,
    depth: usize,
) {
    if depth > 32 {
        skip(
            skipped,
            path,
            "folder nested more than 32 deep; not walked".to_owned(),
        );
        return;
    }
    let listing = match std::fs::read_dir(path) {
        Ok(l) => l,
        Err(e) => return skip(skipped, path, format!("cannot list folder: {e}")),
    };
    let mut entries = Vec::new();
    for entry in listing {
        match entry {
            Ok(e) => entries.push(e.path()),
            Err(e) => skip(skipped, path, format!("cannot list folder: {e}")),
        }
    }
    entries.sort();
    for p in entries {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            skip(skipped, &p, "file name is not UTF-8".to_owned());
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if link => {
                skip(skipped, &p, format!("broken symbolic link: {e}"));
                continue;
            }
            Err(e) => {
                skip(skipped, &p, format!("cannot read: {e}"));
                continue;
            }
        };
        if meta.is_dir() {
            if link {
                skip(
                    skipped,
                    &p,
                    "symbolic link to a folder inside a folder; not followed (name it to read it)"
                        .to_owned(),
                );
            } else {
                collect_yaml_at(&p, out, skipped, depth + 1);
            }
            continue;
        }
        let is_manifest = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if !meta.is_file() {
            skip(skipped, &p, "not a regular file or folder".to_owned());
        } else if is_manifest {
            out.push((p, false));
        } else {
            skip(
                skipped,
                &p,
                "not a .yaml, .yml or .json manifest".to_owned(),
            );
        }
    }
}

fn skip(skipped: &mut Vec<tenet_finding::Skipped>, path: &Path, reason: impl Into<String>) {
    skipped.push(tenet_finding::Skipped::new(
        path.display().to_string(),
        reason,
    ));
}
