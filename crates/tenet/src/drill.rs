//! `tenet drill SCENARIO`: a breach exercise against the running deployment with real requests
//! through its gateway, measuring time to detect and time to contain from the ledger.
//!
//! - `lateral-movement`: a freshly issued SVID for an existing workload (`--as`, as if stolen)
//!   calls every route of the deployment, outside what it normally uses.
//! - `credential-stuffing`: TLS connections with certificates from a foreign CA, then requests
//!   without a certificate, from one source.
//! - `privilege-escalation`: a policy file granting the drill identity a new right is dropped
//!   into the policy folder, the right is used, and the file is removed again.
//!
//! The drill reads the ledger (read-only, beside `tenet up`) for the detections and the
//! containment it caused, checks that the gateway really refuses the contained credential,
//! releases what it caused (unless `--keep`), and records its report in the ledger through
//! the admin API. What it caused is what the response took on a detection of the drill's
//! own identity, certificates or source address (see [`Attribution`]): a containment of a
//! real workload made while the drill runs is never released by it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;
use tenet_identity::{CertificateAuthority, SpiffeId, TrustDomain};
use time::OffsetDateTime;

use crate::OutputFormat;
use crate::config::Config;

/// The admin API path that records a drill report.
pub const DRILL_REPORT_PATH: &str = "/v1/drill/report";

/// The policy file the privilege-escalation drill drops into the policy folder.
pub const DRILL_POLICY_FILE: &str = "zz-tenet-drill.cedar";
/// The id of the policy in it, by which a leftover is recognised.
const DRILL_POLICY_ID: &str = "tenet-drill-escalation";
/// After the first detection, how long to wait for a second one a playbook would act on,
/// when the first one has none.
const SETTLE_AFTER_DETECTION: Duration = Duration::from_secs(2);

/// The drill policy in `dir`, if one is there: left by a drill that did not finish (killed,
/// or its machine stopped), it still grants the drill identity a service.
pub fn leftover_policy(dir: &Path) -> Option<PathBuf> {
    let file = dir.join(DRILL_POLICY_FILE);
    let text = std::fs::read_to_string(&file).ok()?;
    text.contains(&format!("@id(\"{DRILL_POLICY_ID}\")"))
        .then_some(file)
}

/// Removes a leftover drill policy from `dir`; the file when one was removed.
pub fn remove_leftover_policy(dir: &Path) -> Result<Option<PathBuf>> {
    let Some(file) = leftover_policy(dir) else {
        return Ok(None);
    };
    std::fs::remove_file(&file)
        .with_context(|| format!("removing the leftover drill policy {}", file.display()))?;
    Ok(Some(file))
}

/// `tenet drill`: the drill, ended early by SIGINT or SIGTERM with its policy file removed
/// (and the policy reloaded), so that an interrupted drill leaves no permit behind.
pub async fn run(
    config: &Config,
    scenario: &str,
    identity: Option<String>,
    timeout: Duration,
    keep: bool,
    format: OutputFormat,
) -> Result<ExitCode> {
    // Listen before the drill starts: it may write its policy before its first await, and a
    // signal that came before the listeners existed would end the process with the policy
    // left in place.
    let signals = Interrupts::listen()?;
    let wrote_policy = Arc::new(AtomicBool::new(false));
    let drill = run_drill(
        config,
        scenario,
        identity,
        timeout,
        keep,
        format,
        wrote_policy.clone(),
    );
    let (signal, code) = tokio::select! {
        result = drill => return result,
        s = signals.recv() => s,
    };
    if wrote_policy.load(Ordering::SeqCst) {
        let file = config.policy_dir.join(DRILL_POLICY_FILE);
        match std::fs::remove_file(&file) {
            Ok(()) => eprintln!("{signal}: removed the drill policy {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "{signal}: the drill policy {} could not be removed: {e}; remove it by hand",
                file.display()
            ),
        }
        let reload = crate::admin::call(config, http::Method::POST, "/v1/policy/reload");
        let _ = tokio::time::timeout(Duration::from_secs(5), reload).await;
    }
    eprintln!(
        "{signal}: drill stopped; containments it caused may still be in force (tenet containment)"
    );
    Ok(ExitCode::from(code))
}

/// SIGINT and SIGTERM, listened to from creation on.
struct Interrupts {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        })
    }

    /// Waits for SIGINT or SIGTERM: its name and the exit code for it.
    async fn recv(mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.int.recv() => ("SIGINT", 130),
            _ = self.term.recv() => ("SIGTERM", 143),
        }
    }
}

/// Whether a playbook of the deployment would contain `id` for this detection (a Detection
/// Finding from the ledger).
fn playbook_contains(playbooks: &tenet_playbook::Playbooks, finding: &Value, id: &str) -> bool {
    let text = |p: &str| finding.pointer(p).and_then(Value::as_str).unwrap_or("");
    let trigger = tenet_playbook::Trigger {
        rule: text("/finding_info/uid").to_owned(),
        level: tenet_playbook::Level::parse(text("/unmapped/level"))
            .unwrap_or(tenet_playbook::Level::Informational),
        tags: finding
            .pointer("/finding_info/types")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        subject: text("/unmapped/subject").to_owned(),
        evidence: finding
            .pointer("/unmapped/evidence")
            .cloned()
            .unwrap_or(Value::Null),
    };
    playbooks.plan(&trigger).iter().any(|plan| {
        plan.steps.iter().any(|step| {
            matches!(
                step,
                tenet_playbook::Step::Contain {
                    target: tenet_contain::Target::Identity { spiffe_id },
                    ..
                } if spiffe_id == id
            )
        })
    })
}

/// What stands for the drill in the ledger: its identity, the serials of the certificates it
/// issued and, for credential stuffing, the address it connects from.
#[derive(Debug, Default)]
struct DrillSubjects {
    identity: String,
    serials: Vec<String>,
    sources: Vec<String>,
}

impl DrillSubjects {
    fn is_drill(&self, subject: &str) -> bool {
        subject == self.identity
            || self.serials.iter().any(|s| s.eq_ignore_ascii_case(subject))
            || self.sources.iter().any(|s| s == subject)
    }
}

/// The containments the response took because of the drill, read from the ledger in order.
///
/// The detector records a detection and then takes the containments its playbooks ask for,
/// one detection at a time, each with the reason `<rule>: <explanation>`. A containment by
/// the response is the drill's when it follows a detection of the drill's subject and
/// carries that detection's reason, or when it revokes a certificate the drill issued. Any
/// other containment (a playbook acting on a real workload while the drill runs, an
/// operator's) is not the drill's to undo.
#[derive(Debug, Default)]
struct Attribution {
    /// The latest detection: whether its subject is the drill's, and its reason.
    last_detection: Option<(bool, String)>,
    /// Action ids the drill caused, in order.
    caused: Vec<String>,
    /// Of those, the ones that revoke the drill's identity or certificates.
    contained_drill: Vec<String>,
    /// Containments taken during the drill that it did not cause: `id (target)`.
    not_caused: Vec<String>,
}

impl Attribution {
    fn observe(&mut self, v: &Value, drill: &DrillSubjects) {
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
        if v.get("class_uid").and_then(Value::as_u64) == Some(2004) {
            let reason = format!(
                "{}: {}",
                text("/finding_info/uid"),
                text("/finding_info/desc")
            );
            self.last_detection = Some((drill.is_drill(text("/unmapped/subject")), reason));
            return;
        }
        if !matches!(
            text("/api/operation"),
            "containment.revoke" | "containment.quarantine"
        ) {
            return;
        }
        let actor = text("/unmapped/actor");
        let by_response = actor.starts_with("playbook:") || actor.starts_with("tenet:");
        let actions: Vec<tenet_contain::Action> =
            serde_json::from_str(text("/unmapped/detail")).unwrap_or_default();
        for a in actions {
            let of_drill = match &a.target {
                tenet_contain::Target::Identity { spiffe_id } => *spiffe_id == drill.identity,
                tenet_contain::Target::Serial { serial } => {
                    drill.serials.iter().any(|s| s.eq_ignore_ascii_case(serial))
                }
                tenet_contain::Target::Service { .. } => false,
            };
            let after_drill_detection = matches!(
                &self.last_detection,
                Some((true, reason)) if *reason == a.reason
            );
            let issued_by_drill =
                of_drill && matches!(a.target, tenet_contain::Target::Serial { .. });
            if by_response && (after_drill_detection || issued_by_drill) {
                if !self.caused.contains(&a.id) {
                    self.caused.push(a.id.clone());
                }
                if of_drill && !self.contained_drill.contains(&a.id) {
                    self.contained_drill.push(a.id.clone());
                }
            } else {
                let what = format!("{} ({})", a.id, a.target);
                if !self.not_caused.contains(&what) {
                    self.not_caused.push(what);
                }
            }
        }
    }
}

/// What a drill found.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub scenario: String,
    pub identity: String,
    pub started: String,
    pub requests: usize,
    /// Routes the identity could reach before containment (blast radius).
    pub reachable_before: Vec<String>,
    pub detections: Vec<String>,
    pub time_to_detect_ms: Option<u64>,
    pub time_to_contain_ms: Option<u64>,
    /// Whether a request with the credential was refused because of the containment.
    pub containment_enforced: bool,
    pub released: Vec<String>,
    pub outcome: String,
    pub notes: Vec<String>,
}

async fn run_drill(
    config: &Config,
    scenario: &str,
    identity: Option<String>,
    timeout: Duration,
    keep: bool,
    format: OutputFormat,
    wrote_policy: Arc<AtomicBool>,
) -> Result<ExitCode> {
    // The deployment must be up: the drill talks to its gateway and admin API.
    let (status, _) = crate::admin::call(config, http::Method::GET, "/v1/status")
        .await
        .context("the drill needs the deployment running (`tenet up`)")?;
    if !status.is_success() {
        bail!("the admin API answered {status}");
    }
    let listener = config
        .listeners
        .first()
        .ok_or_else(|| anyhow!("the configuration has no listener to drill against"))?
        .addr;
    if config.routes.is_empty() {
        bail!("the configuration has no route to drill against");
    }
    let ledger_dir = config.ledger_dir();
    let from = ledger_size(&ledger_dir)?;
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    let mut report = DrillReport {
        scenario: scenario.to_owned(),
        identity: String::new(),
        started: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        requests: 0,
        reachable_before: Vec::new(),
        detections: Vec::new(),
        time_to_detect_ms: None,
        time_to_contain_ms: None,
        containment_enforced: false,
        released: Vec::new(),
        outcome: String::new(),
        notes: Vec::new(),
    };
    let mut policy_file: Option<PathBuf> = None;

    let id = match (scenario, identity) {
        ("lateral-movement", Some(id)) => parse(&id)?,
        ("lateral-movement", None) => bail!(
            "lateral-movement acts as an existing workload whose SVID was stolen: give --as \
             SPIFFE_ID (it is cut off while the drill's containment lasts, then released)"
        ),
        ("credential-stuffing", _) => parse(&format!(
            "spiffe://{}/drill/credential-stuffing",
            config.trust_domain
        ))?,
        ("privilege-escalation", Some(id)) => parse(&id)?,
        ("privilege-escalation", None) => parse(&format!(
            "spiffe://{}/drill/privilege-escalation",
            config.trust_domain
        ))?,
        (other, _) => bail!(
            "unknown scenario {other:?}: lateral-movement, credential-stuffing or privilege-escalation"
        ),
    };
    report.identity = id.to_string();
    let mut subjects = DrillSubjects {
        identity: id.to_string(),
        serials: Vec::new(),
        sources: if scenario == "credential-stuffing" {
            vec![source_address(listener).to_string()]
        } else {
            Vec::new()
        },
    };
    report.reachable_before = reachable(config, &id)?;
    // What the deployment's playbooks would do; a folder that does not load acts on nothing
    // (`tenet up` refuses to start with it), which the report then expects.
    let playbooks = match tenet_playbook::Playbooks::load_dir(&config.detect.playbooks) {
        Ok(playbooks) => playbooks,
        Err(e) => {
            tracing::warn!(folder = %config.detect.playbooks.display(), error = %e,
                "the playbooks do not load; the drill expects no containment");
            tenet_playbook::Playbooks::default()
        }
    };

    let ca = CertificateAuthority::load(&config.ca_dir())
        .with_context(|| format!("loading the CA from {}", config.ca_dir().display()))?;
    let bundle_pem = ca.bundle().to_pem();

    match scenario {
        "lateral-movement" => {
            let client =
                stolen_client(config, &ca, &id, &bundle_pem, listener, &mut subjects).await?;
            for route in &config.routes {
                let _ = send(&client, &route.host, listener.port(), &route.path_prefix).await;
                report.requests += 1;
            }
        }
        "credential-stuffing" => {
            let foreign = CertificateAuthority::generate(
                &TrustDomain::parse(config.trust_domain.as_str())?,
                OffsetDateTime::now_utc(),
            )?;
            let svid = foreign.issue_x509_svid(
                &id,
                Duration::from_secs(600),
                OffsetDateTime::now_utc(),
            )?;
            let pem = format!("{}{}", svid.chain_pem(), svid.key_pem());
            let bad = client_with(Some(&pem), &bundle_pem, config, listener)?;
            let anonymous = client_with(None, &bundle_pem, config, listener)?;
            let route = config.routes.first().ok_or_else(|| anyhow!("no route"))?;
            for _ in 0..15 {
                let _ = send(&bad, &route.host, listener.port(), &route.path_prefix).await;
                let _ = send(&anonymous, &route.host, listener.port(), &route.path_prefix).await;
                report.requests += 2;
            }
            report.notes.push(
                "the subject of a stuffing detection is the source address: no playbook action \
                 blocks an address, so containment is not expected"
                    .into(),
            );
        }
        _ => {
            // privilege-escalation: a policy change grants the identity a new right, then use it.
            let route = config.routes.first().ok_or_else(|| anyhow!("no route"))?;
            if let Some(old) = remove_leftover_policy(&config.policy_dir)? {
                eprintln!(
                    "warning: removed {}, left by an earlier drill that did not finish",
                    old.display()
                );
                report.notes.push(format!(
                    "removed {}, left by an earlier drill that did not finish",
                    old.display()
                ));
            }
            let file = config.policy_dir.join(DRILL_POLICY_FILE);
            wrote_policy.store(true, Ordering::SeqCst);
            std::fs::write(
                &file,
                format!(
                    "// Written by `tenet drill privilege-escalation` and removed when it ends.\n\
                     // Left here, it is from a drill that did not finish: `tenet up` and the\n\
                     // next drill remove it, `tenet policy check` refuses it.\n\
                     @id(\"{DRILL_POLICY_ID}\")\npermit (principal == Tenet::Workload::\"{id}\", \
                     action, resource in Tenet::Service::\"{}\");\n",
                    route.service
                ),
            )
            .with_context(|| format!("writing {}", file.display()))?;
            policy_file = Some(file);
            // Reachable before containment: with the right the policy change granted.
            report.reachable_before = reachable(config, &id)?;
            let (status, answer) =
                crate::admin::call(config, http::Method::POST, "/v1/policy/reload").await?;
            if !status.is_success() {
                bail!("the drill policy was refused: {answer}");
            }
            let client =
                stolen_client(config, &ca, &id, &bundle_pem, listener, &mut subjects).await?;
            for _ in 0..3 {
                let _ = send(&client, &route.host, listener.port(), &route.path_prefix).await;
                report.requests += 1;
            }
        }
    }

    // Watch the ledger for what the requests caused.
    let deadline = started + timeout;
    let mut next = from;
    // The containments the response took because of the drill, and only those, are undone.
    let mut attribution = Attribution::default();
    // Whether a playbook acts on a detection seen, so that containment is expected.
    let mut containment_expected = false;
    let mut first_detection: Option<Instant> = None;
    loop {
        for (_, v) in read_from(&ledger_dir, &mut next)? {
            let subject_matches = v.pointer("/unmapped/subject").and_then(Value::as_str)
                == Some(id.as_str())
                || scenario == "credential-stuffing";
            if v.get("class_uid").and_then(Value::as_u64) == Some(2004) && subject_matches {
                if let Some(rule) = v.pointer("/finding_info/uid").and_then(Value::as_str)
                    && !report.detections.iter().any(|d| d == rule)
                {
                    report.detections.push(rule.to_owned());
                }
                report.time_to_detect_ms.get_or_insert(elapsed_ms(started));
                first_detection.get_or_insert_with(Instant::now);
                containment_expected |= playbook_contains(&playbooks, &v, id.as_str());
            }
            attribution.observe(&v, &subjects);
        }
        if !attribution.contained_drill.is_empty()
            && !report.containment_enforced
            && scenario != "credential-stuffing"
        {
            // Check that the gateway refuses the credential now.
            let client =
                stolen_client(config, &ca, &id, &bundle_pem, listener, &mut subjects).await?;
            let route = config.routes.first().ok_or_else(|| anyhow!("no route"))?;
            let code = send(&client, &route.host, listener.port(), &route.path_prefix).await;
            report.requests += 1;
            if code == Some(403) {
                report.containment_enforced = true;
                report.time_to_contain_ms.get_or_insert(elapsed_ms(started));
            }
        }
        // Detected and no playbook acts on what was detected (after a moment for a later
        // detection a playbook does act on): nothing more will happen.
        let settled = !containment_expected
            && first_detection.is_some_and(|t| t.elapsed() >= SETTLE_AFTER_DETECTION);
        let done = match scenario {
            "credential-stuffing" => report.time_to_detect_ms.is_some(),
            _ => report.containment_enforced || settled,
        };
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Clean up what the drill caused.
    if let Some(file) = policy_file {
        if let Err(e) = std::fs::remove_file(&file) {
            report.notes.push(format!(
                "the drill policy {} could not be removed: {e}; remove it by hand",
                file.display()
            ));
        }
        wrote_policy.store(false, Ordering::SeqCst);
        let _ = crate::admin::call(config, http::Method::POST, "/v1/policy/reload").await;
    }
    let caused_ids = attribution.caused;
    if !attribution.not_caused.is_empty() {
        report.notes.push(format!(
            "left in force, not caused by the drill: {}",
            attribution.not_caused.join(", ")
        ));
    }
    if !keep {
        for aid in &caused_ids {
            let change = crate::contain::Change::Release {
                selector: aid.clone(),
            };
            let body = serde_json::to_vec(&change)?;
            match crate::admin::call_with(
                config,
                http::Method::POST,
                crate::contain::CONTAIN_PATH,
                body,
            )
            .await
            {
                Ok((s, _)) if s.is_success() => report.released.push(aid.clone()),
                Ok((s, answer)) => report
                    .notes
                    .push(format!("release of {aid} answered {s}: {answer}")),
                Err(e) => report.notes.push(format!("release of {aid} failed: {e}")),
            }
        }
    } else if !caused_ids.is_empty() {
        report
            .notes
            .push(format!("--keep: left in force: {}", caused_ids.join(", ")));
    }
    report.outcome = match (report.time_to_detect_ms, report.containment_enforced) {
        (_, true) => "detected and contained".into(),
        (Some(_), false) if containment_expected || scenario == "credential-stuffing" => {
            "detected, not contained".into()
        }
        (Some(_), false) => "detected; no playbook contains it".into(),
        (None, _) => "not detected".into(),
    };
    let body = serde_json::to_vec(&report)?;
    match crate::admin::call_with(config, http::Method::POST, DRILL_REPORT_PATH, body).await {
        Ok((s, _)) if s.is_success() => {}
        Ok((s, answer)) => report
            .notes
            .push(format!("recording the report answered {s}: {answer}")),
        Err(e) => report
            .notes
            .push(format!("recording the report failed: {e}")),
    }
    match format {
        OutputFormat::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => say_raw!("{}", text(&report)),
    }
    // As `tenet drill --help` says: detected, and contained where a playbook should act.
    let success = report.time_to_detect_ms.is_some()
        && (report.containment_enforced || !containment_expected);
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text(r: &DrillReport) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} ms"));
    let mut out = format!(
        "drill {} as {}: {}\n  requests sent:     {}\n  time to detect:    {}\n  time to contain:   {}\n",
        r.scenario,
        r.identity,
        r.outcome,
        r.requests,
        ms(r.time_to_detect_ms),
        ms(r.time_to_contain_ms)
    );
    out.push_str(&format!(
        "  detections:        {}\n",
        if r.detections.is_empty() {
            "none".into()
        } else {
            r.detections.join(", ")
        }
    ));
    out.push_str(&format!(
        "  reachable before containment ({}):\n",
        r.reachable_before.len()
    ));
    for route in &r.reachable_before {
        out.push_str(&format!("    {route}\n"));
    }
    if !r.released.is_empty() {
        out.push_str(&format!(
            "  released after the drill: {}\n",
            r.released.join(", ")
        ));
    }
    for n in &r.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out
}

fn parse(id: &str) -> Result<SpiffeId> {
    SpiffeId::parse(id).map_err(|e| anyhow!("SPIFFE ID {id:?}: {e}"))
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the identity can reach now, as `service/route (methods)`.
fn reachable(config: &Config, id: &SpiffeId) -> Result<Vec<String>> {
    let snapshot = tenet_policy::PolicySnapshot::load_dir(&config.policy_dir)
        .map_err(|e| anyhow!("policies in {}: {e}", config.policy_dir.display()))?;
    let routes: Vec<tenet_policy::RouteInfo> = config
        .routes
        .iter()
        .map(|r| tenet_policy::RouteInfo {
            route: r.name.clone(),
            service: r.service.clone(),
            host: r.host.clone(),
            path_prefix: r.path_prefix.clone(),
            service_identity: r.upstream.spiffe_id.as_ref().map(ToString::to_string),
        })
        .collect();
    let texts: Vec<String> = snapshot
        .source_files()
        .iter()
        .filter_map(|f| std::fs::read_to_string(config.policy_dir.join(f)).ok())
        .collect();
    let assumptions = tenet_policy::Assumptions {
        source_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        unix_time: OffsetDateTime::now_utc().unix_timestamp(),
        risk: 0,
        paths: tenet_policy::Assumptions::paths_in_policies(texts.iter().map(String::as_str)),
    };
    let b = tenet_policy::blast_radius(&snapshot, id.as_str(), &routes, &assumptions, 8);
    Ok(b.reach
        .iter()
        .map(|r| {
            format!(
                "{}/{} ({}) via {}",
                r.service,
                r.route,
                r.methods.join(" "),
                r.caller
            )
        })
        .collect())
}

/// The address the drill's connections to `listener` come from (the subject of a
/// detection about failures from one source).
fn source_address(listener: SocketAddr) -> std::net::IpAddr {
    let local: SocketAddr = if listener.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    std::net::UdpSocket::bind(local)
        .and_then(|s| {
            s.connect(listener)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or_else(|_| listener.ip())
}

/// A client holding a freshly issued SVID for `id`, as an attacker who stole it would.
async fn stolen_client(
    config: &Config,
    ca: &CertificateAuthority,
    id: &SpiffeId,
    bundle_pem: &str,
    listener: SocketAddr,
    subjects: &mut DrillSubjects,
) -> Result<reqwest::Client> {
    let now = OffsetDateTime::now_utc();
    let svid = ca.issue_x509_svid(id, Duration::from_secs(600), now)?;
    subjects.serials.push(svid.serial_hex());
    crate::ledger::record_svid(config, &crate::up::svid_event(&svid, "drill")).await?;
    let pem = format!("{}{}", svid.chain_pem(), svid.key_pem());
    client_with(Some(&pem), bundle_pem, config, listener)
}

fn client_with(
    identity_pem: Option<&str>,
    bundle_pem: &str,
    config: &Config,
    listener: SocketAddr,
) -> Result<reqwest::Client> {
    // Only the deployment's own bundle is trusted.
    let roots = reqwest::Certificate::from_pem_bundle(bundle_pem.as_bytes())?;
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(roots)
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0);
    if let Some(pem) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    for route in &config.routes {
        builder = builder.resolve(&route.host, listener);
    }
    Ok(builder.build()?)
}

async fn send(client: &reqwest::Client, host: &str, port: u16, path: &str) -> Option<u16> {
    let url = format!("https://{host}:{port}{path}");
    client
        .get(&url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

fn ledger_size(dir: &std::path::Path) -> Result<u64> {
    Ok(tenet_ledger::LedgerReader::open(dir)
        .with_context(|| format!("reading the ledger in {}", dir.display()))?
        .size())
}

/// Entries from `*next` on, as JSON; advances `*next`.
fn read_from(dir: &std::path::Path, next: &mut u64) -> Result<Vec<(u64, Value)>> {
    let mut out = Vec::new();
    for item in tenet_ledger::entries(dir, *next)? {
        let (index, bytes) = item?;
        *next = index + 1;
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            out.push((index, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use tenet_contain::{Action, Direction, Target};
    use tenet_event::{AdminEvent, DetectionEvent, Event, EventKind};

    const DRILL: &str = "spiffe://example.org/ns/shop/sa/frontend";
    const REAL: &str = "spiffe://example.org/ns/shop/sa/backend";

    fn detection(rule: &str, subject: &str, explanation: &str) -> Value {
        Event::new(
            OffsetDateTime::now_utc(),
            EventKind::Detection(DetectionEvent {
                rule: rule.into(),
                title: rule.into(),
                level: "high".into(),
                subject: subject.into(),
                explanation: explanation.into(),
                tags: Vec::new(),
                evidence: Value::Null,
                engine: "analytics".into(),
            }),
        )
        .to_ocsf()
    }

    fn containment(actor: &str, target: Target, reason: &str) -> (String, Value) {
        let action = Action::new(target, reason, actor, OffsetDateTime::now_utc(), None);
        let operation = match action.target {
            Target::Service { .. } => "containment.quarantine",
            _ => "containment.revoke",
        };
        let event = Event::new(
            OffsetDateTime::now_utc(),
            EventKind::Admin(AdminEvent {
                actor: actor.into(),
                operation: operation.into(),
                success: true,
                detail: serde_json::to_string(std::slice::from_ref(&action)).unwrap(),
            }),
        )
        .to_ocsf();
        (action.id, event)
    }

    fn identity(id: &str) -> Target {
        Target::Identity {
            spiffe_id: id.into(),
        }
    }

    #[test]
    fn only_containments_the_drill_caused_are_its_to_release() {
        let drill = DrillSubjects {
            identity: DRILL.into(),
            serials: vec!["4f2a01".into()],
            sources: Vec::new(),
        };
        let mut a = Attribution::default();
        let lateral = "tenet.lateral-movement";
        // The drill's detection and the playbook's answers to it: its identity revoked and a
        // service quarantined.
        a.observe(
            &detection(lateral, DRILL, "frontend reached payments"),
            &drill,
        );
        let (revoked, e) = containment(
            "playbook:contain",
            identity(DRILL),
            "tenet.lateral-movement: frontend reached payments",
        );
        a.observe(&e, &drill);
        let (quarantined, e) = containment(
            "playbook:contain",
            Target::Service {
                service: "payments".into(),
                direction: Direction::Inbound,
                identities: Vec::new(),
            },
            "tenet.lateral-movement: frontend reached payments",
        );
        a.observe(&e, &drill);
        // A real workload's detection during the drill, and the playbook's containment of it.
        a.observe(
            &detection(lateral, REAL, "backend reached payments"),
            &drill,
        );
        let (real, e) = containment(
            "playbook:contain",
            identity(REAL),
            "tenet.lateral-movement: backend reached payments",
        );
        a.observe(&e, &drill);
        // A containment by the playbook that does not carry the latest detection's reason,
        // even of the drill's identity (a real detection whose record was lost).
        let (unexplained, e) = containment(
            "playbook:contain",
            identity(DRILL),
            "tenet.lateral-movement: something else",
        );
        a.observe(&e, &drill);
        // An operator's containment of the drill identity.
        a.observe(&detection(lateral, DRILL, "again"), &drill);
        let (by_hand, e) = containment(
            "local-cli",
            identity(DRILL),
            "tenet.lateral-movement: again",
        );
        a.observe(&e, &drill);
        // A certificate the drill issued, revoked by the response.
        let (serial, e) = containment(
            "playbook:serials",
            Target::Serial {
                serial: "4F2A01".into(),
            },
            "a Sigma rule: anything",
        );
        a.observe(&e, &drill);

        assert_eq!(a.caused, vec![revoked.clone(), quarantined, serial.clone()]);
        assert_eq!(a.contained_drill, vec![revoked, serial]);
        for id in [real, unexplained, by_hand] {
            assert!(
                a.not_caused.iter().any(|n| n.starts_with(&id)),
                "{id}: {:?}",
                a.not_caused
            );
        }
    }
}
