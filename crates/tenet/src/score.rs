//! `tenet score`: the facts Tenet can observe of its own deployment and of saved assessment
//! reports, scored by `tenet_assess::score`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use tenet_assess::{Facts, Report};
use tenet_gateway::ClientAuth;
use tenet_policy::PolicySnapshot;

use crate::OutputFormat;
use crate::config::{self, Config};

/// Days with recorded decisions before a deployment counts as operated, not just configured.
const SUSTAINED_DAYS: usize = 7;

/// The access and sign-in decisions in the ledger (OCSF HTTP Activity and Authentication
/// events) and the number of distinct UTC days they fall on. Administrative events (such
/// as `tenet init`'s) are not decisions. Reading stops at the first damaged entry.
fn decisions_in(ledger_dir: &Path) -> (u64, usize) {
    let Ok(entries) = tenet_ledger::entries(ledger_dir, 0) else {
        return (0, 0);
    };
    let mut decisions = 0u64;
    let mut days = std::collections::BTreeSet::new();
    for entry in entries {
        let Ok((_, bytes)) = entry else { break };
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let class = event.get("class_uid").and_then(serde_json::Value::as_u64);
        if !matches!(class, Some(4002 | 3002)) {
            continue;
        }
        decisions += 1;
        if let Some(ms) = event.get("time").and_then(serde_json::Value::as_i64) {
            days.insert(ms.div_euclid(86_400_000));
        }
    }
    (decisions, days.len())
}

/// SVIDs living at most this long count as short-lived.
const SHORT_LIVED_SVID: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn run(
    explicit: Option<&Path>,
    assessments: &[PathBuf],
    format: OutputFormat,
) -> Result<ExitCode> {
    let mut facts = Facts::default();
    let path = config::locate(explicit);
    if explicit.is_some() || path.exists() {
        let config = config::load(explicit)?;
        observe_deployment(&config, &path.display().to_string(), &mut facts)?;
    } else {
        eprintln!(
            "note: no deployment at {} (give --config); its facts count as missing",
            path.display()
        );
    }
    for file in assessments {
        let text = crate::files::read_text(file, "the assessment report")?;
        let report: Report = serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{} is not a `tenet assess --format json` report: {e}",
                file.display()
            )
        })?;
        if report.version != tenet_assess::report::REPORT_VERSION {
            bail!(
                "{} is a report of format version {}; this tenet reads version {}",
                file.display(),
                report.version,
                tenet_assess::report::REPORT_VERSION
            );
        }
        if let Some(unknown) = report
            .analyses
            .iter()
            .find(|a| !matches!(a.as_str(), "iam" | "k8s" | "secgroup" | "pg"))
        {
            bail!("{}: unknown analysis {unknown:?}", file.display());
        }
        facts.observe_report(&report, &file.display().to_string())?;
    }
    let card = tenet_assess::score(&facts);
    match format {
        OutputFormat::Text => say_raw!("{}", card.to_text()),
        OutputFormat::Json => say!("{}", serde_json::to_string_pretty(&card)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Facts of people's sign-in, sessions and devices (`[people]` and its data).
fn observe_people(config: &Config, source: &str, facts: &mut Facts) -> Result<()> {
    let Some(people) = &config.people else {
        return Ok(());
    };
    let routes = config.routes.iter().filter(|r| r.people).count();
    if routes == 0 {
        return Ok(());
    }
    facts.observe(
        "identity.user-sso",
        format!(
            "{routes} people route(s) sign in through {}",
            people.provider_names().join(", ")
        ),
        source,
    )?;
    if people.require_webauthn() {
        facts.observe(
            "identity.phishing-resistant-mfa",
            "[people] require_webauthn: a passkey or security key after every sign-in",
            source,
        )?;
    }
    facts.observe(
        "identity.continuous-reauth",
        "every request of a people route re-evaluates its session (network, posture, risk, travel)",
        source,
    )?;
    let people_dir = config.data_dir.join("people");
    let devices_file = people_dir.join("devices.json");
    let enrolled = tenet_device::DeviceRegistry::load(&devices_file)
        .map(|r| r.devices().iter().filter(|d| !d.is_revoked()).count())
        .unwrap_or(0);
    if enrolled > 0 {
        facts.observe(
            "devices.enrolment",
            format!("{enrolled} enrolled device(s) with their own certificate"),
            devices_file.display().to_string(),
        )?;
    }
    let requirements = people.posture();
    let checks = [
        requirements.require_disk_encryption,
        requirements.require_firewall,
        requirements.require_screen_lock,
        requirements.require_endpoint_protection,
        requirements.require_mdm_compliant,
        !requirements.min_os_versions.is_empty(),
    ];
    let posture_file = people_dir.join("posture.json");
    let reported = tenet_device::PostureStore::load(&posture_file)
        .map(|s| s.device_ids().count())
        .unwrap_or(0);
    if checks.iter().any(|c| *c) && reported > 0 {
        facts.observe(
            "devices.posture",
            format!("posture required ([people.posture]) and reported by {reported} device(s)"),
            posture_file.display().to_string(),
        )?;
    }
    Ok(())
}

/// Facts of detection and automatic response (`[detect]` and the playbooks).
fn observe_detection(config: &Config, source: &str, facts: &mut Facts) -> Result<()> {
    if !config.detect.enabled {
        return Ok(());
    }
    facts.observe(
        "visibility.detections",
        "[detect] on: behavioural analytics (and any Sigma rules) watch every event",
        source,
    )?;
    let playbooks = tenet_playbook::Playbooks::load_dir(&config.detect.playbooks)
        .map(|p| p.len())
        .unwrap_or(0);
    if playbooks > 0 || config.detect.cut_off.is_some() {
        facts.observe(
            "automation.auto-containment",
            format!(
                "{playbooks} playbook(s); risk cut-off {}",
                config
                    .detect
                    .cut_off
                    .map_or_else(|| "off".to_owned(), |d| format!("{}s", d.as_secs()))
            ),
            source,
        )?;
    }
    Ok(())
}

fn observe_deployment(config: &Config, source: &str, facts: &mut Facts) -> Result<()> {
    let ca_dir = config.ca_dir();
    if tenet_identity::CertificateAuthority::load(&ca_dir).is_ok() {
        facts.observe(
            "identity.workload-ca",
            format!("CA for trust domain {}", config.trust_domain),
            ca_dir.display().to_string(),
        )?;
    }
    if config.svid_ttl <= SHORT_LIVED_SVID {
        facts.observe(
            "identity.short-lived-svids",
            format!("svid_ttl = {}s", config.svid_ttl.as_secs()),
            source,
        )?;
    }
    // Workload listeners: those serving at least one route that is not for people.
    let workload_listeners: Vec<_> = config
        .listeners
        .iter()
        .filter(|l| {
            config
                .routes
                .iter()
                .any(|r| !r.people && r.listener == l.name)
        })
        .collect();
    if !workload_listeners.is_empty()
        && workload_listeners
            .iter()
            .all(|l| l.client_auth == ClientAuth::Required)
    {
        facts.observe(
            "identity.mtls-required",
            format!(
                "all {} workload listener(s) require a client SVID",
                workload_listeners.len()
            ),
            source,
        )?;
    }
    observe_people(config, source, facts)?;
    observe_detection(config, source, facts)?;
    if !config.routes.is_empty() {
        facts.observe(
            "networks.identity-aware-proxy",
            format!("{} route(s) behind the gateway", config.routes.len()),
            source,
        )?;
        // People routes forward the person's name (x-tenet-user), not a signed assertion.
        if config.routes.iter().all(|r| !r.people) {
            facts.observe(
                "apps.identity-assertion",
                "the gateway adds a JWT-SVID assertion (X-Tenet-Identity) to every forwarded request",
                source,
            )?;
        }
        if config
            .routes
            .iter()
            .all(|r| r.upstream.url.scheme_str() == Some("https"))
        {
            facts.observe(
                "networks.encrypted-upstreams",
                "every route's upstream is https with a pinned SPIFFE ID",
                source,
            )?;
        }
    }
    let policy_dir = config.policy_dir.display().to_string();
    if let Ok(snapshot) = PolicySnapshot::load_dir(&config.policy_dir) {
        facts.observe(
            "governance.policy-validated",
            format!(
                "{} policies valid against the schema (hash {})",
                snapshot.policy_count(),
                snapshot.hash()
            ),
            &policy_dir,
        )?;
        facts.observe(
            "automation.policy-reload",
            "tenet up reloads this policy folder on change and keeps the last good set",
            &policy_dir,
        )?;
        if snapshot.policy_count() > 0 && !config.routes.is_empty() {
            facts.observe(
                "apps.per-request-authz",
                format!(
                    "{} route(s) authorized per request against {} policies, default deny",
                    config.routes.len(),
                    snapshot.policy_count()
                ),
                &policy_dir,
            )?;
        }
        if snapshot.unconditional_permits().is_empty() {
            facts.observe(
                "apps.no-unconditional-permit",
                "no policy permits every principal, action and resource",
                &policy_dir,
            )?;
        }
    }
    let ledger_dir = config.ledger_dir();
    if let Ok(key) = crate::ledger::verifier_key(&config.ledger_verifier_key())
        && let Ok(report) = tenet_ledger::verify(&ledger_dir, &key)
    {
        let shown = ledger_dir.display().to_string();
        let (decisions, days) = decisions_in(&ledger_dir);
        if decisions > 0 {
            facts.observe(
                "visibility.decision-events",
                format!(
                    "{decisions} access or sign-in decision(s) among {} events in the ledger",
                    report.entries
                ),
                &shown,
            )?;
        }
        if days >= SUSTAINED_DAYS {
            facts.observe(
                "visibility.sustained-operation",
                format!("decisions recorded on {days} distinct days"),
                &shown,
            )?;
        }
        if report.is_intact() && report.checkpoints > 0 && report.entries > 0 {
            facts.observe(
                "visibility.tamper-evident-log",
                format!(
                    "ledger verifies: {} entries, {} signed checkpoint(s)",
                    report.entries, report.checkpoints
                ),
                &shown,
            )?;
        }
    }
    Ok(())
}
