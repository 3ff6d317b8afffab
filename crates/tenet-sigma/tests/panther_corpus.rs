//! Panther's test events: every CloudTrail, Kubernetes audit and Okta event is recognised and
//! evaluated, and where a SigmaHQ rule describes the same behaviour as a Panther rule, how often
//! the two agree on Panther's labelled events.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tenet_sigma::{Engine, RuleSet, Source};

const PANTHER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/panther-analysis"
);
const SIGMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/sigma");

struct Test {
    file: String,
    name: String,
    expected: bool,
    log: Value,
    log_types: Vec<String>,
}

fn panther_tests(dir: &Path) -> Vec<Test> {
    assert!(dir.is_dir(), "corpus folder missing: {}", dir.display());
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "yml") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let doc: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let log_types: Vec<String> = doc["LogTypes"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let Some(tests) = doc["Tests"].as_sequence() else {
            continue;
        };
        for t in tests {
            if t.get("Mocks").is_some() {
                continue;
            }
            let Some(log) = t.get("Log") else { continue };
            let log: Value = match log.as_str() {
                Some(text) => serde_json::from_str(text).unwrap(),
                None => serde_json::to_value(log).unwrap(),
            };
            out.push(Test {
                file: file.file_name().unwrap().to_string_lossy().into_owned(),
                name: t["Name"].as_str().unwrap_or_default().to_owned(),
                expected: t["ExpectedResult"].as_bool().unwrap_or(false),
                log,
                log_types: log_types.clone(),
            });
        }
    }
    out
}

/// The source a Panther test event is labelled with: its `p_log_type`, else the rule's only
/// log type. `None` for other logs (GCP and Azure forms of Kubernetes events, VPC flow, ...).
fn labelled_source(t: &Test) -> Option<Source> {
    let label = t
        .log
        .get("p_log_type")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| (t.log_types.len() == 1).then(|| t.log_types[0].clone()))
        .or_else(|| {
            // Multi-log Kubernetes rules: the GCP and Azure forms have their own shapes.
            let gcp_or_azure =
                t.log.get("protoPayload").is_some() || t.log.get("operationName").is_some();
            (!gcp_or_azure && t.log_types.iter().any(|l| l == "Amazon.EKS.Audit"))
                .then(|| "Amazon.EKS.Audit".to_owned())
        })?;
    match label.as_str() {
        "AWS.CloudTrail" => Some(Source::CloudTrail),
        "Amazon.EKS.Audit" => Some(Source::KubernetesAudit),
        "Okta.SystemLog" => Some(Source::Okta),
        _ => None,
    }
}

#[test]
fn panther_events_ingest() {
    let sigma = PathBuf::from(SIGMA);
    assert!(sigma.is_dir(), "corpus folder missing: {SIGMA}");
    let rules = RuleSet::load_paths(&[
        sigma.join("rules/cloud/aws"),
        sigma.join("rules/identity/okta"),
        sigma.join("rules/application/kubernetes"),
    ]);
    let mut engine = Engine::new(rules);
    let tests = panther_tests(&Path::new(PANTHER).join("rules"));
    let (mut passed, mut total) = (0, 0);
    for t in &tests {
        let Some(expected) = labelled_source(t) else {
            continue;
        };
        total += 1;
        let got = Source::recognise(&t.log);
        // Evaluation must not fail on any of them; matches are not judged here.
        let _ = engine.observe(&t.log, got, 0);
        if got == expected {
            passed += 1;
        } else {
            println!(
                "  not recognised: {} / {}: {got} (labelled {expected})",
                t.file, t.name
            );
        }
    }
    println!("panther events ingested: {passed}/{total}");
    assert!(total >= 350, "only {total} events");
    assert!(
        passed >= total,
        "panther events ingested fell to {passed}/{total}"
    );
}

/// Panther rule file ↔ SigmaHQ rule file describing the same behaviour.
const PAIRS: &[(&str, &str)] = &[
    (
        "aws_root_activity.yml",
        "rules/cloud/aws/cloudtrail/aws_root_account_usage.yml",
    ),
    (
        "aws_vpc_flow_logs_deleted.yml",
        "rules/cloud/aws/cloudtrail/aws_cloudtrail_vpc_flow_logs_deleted.yml",
    ),
    (
        "aws_ec2_startup_script_change.yml",
        "rules/cloud/aws/cloudtrail/aws_ec2_startup_script_change.yml",
    ),
    (
        "aws_console_getsignintoken.yml",
        "rules/cloud/aws/cloudtrail/aws_console_getsignintoken.yml",
    ),
    (
        "aws_rds_master_pass_updated.yml",
        "rules/cloud/aws/cloudtrail/aws_rds_change_master_password.yml",
    ),
    (
        "aws_rds_publicrestore.yml",
        "rules/cloud/aws/cloudtrail/aws_rds_public_db_restore.yml",
    ),
    (
        "aws_securityhub_finding_evasion.yml",
        "rules/cloud/aws/cloudtrail/aws_securityhub_finding_evasion.yml",
    ),
    (
        "aws_sts_getsessiontoken_misuse.yml",
        "rules/cloud/aws/cloudtrail/aws_sts_getsessiontoken_misuse.yml",
    ),
    (
        "okta_user_account_locked.yml",
        "rules/identity/okta/okta_user_account_locked_out.yml",
    ),
    (
        "okta_phishing_attempt_blocked_by_fastpass.yml",
        "rules/identity/okta/okta_fastpass_phishing_detection.yml",
    ),
    (
        "okta_threatinsight_security_threat_detected.yml",
        "rules/identity/okta/okta_security_threat_detected.yml",
    ),
    (
        "okta_user_reported_suspicious_activity.yml",
        "rules/identity/okta/okta_suspicious_activity_enduser_report.yml",
    ),
    (
        "okta_app_unauthorized_access_attempt.yml",
        "rules/identity/okta/okta_unauthorized_access_to_app.yml",
    ),
    (
        "k8s_cronjob_created_or_modified.yml",
        "rules/application/kubernetes/audit/kubernetes_audit_cronjob_modification.yml",
    ),
    (
        "k8s_pod_hostpath_volume.yml",
        "rules/application/kubernetes/audit/kubernetes_audit_hostpath_mount.yml",
    ),
];

#[test]
fn panther_sigma_agreement() {
    let tests = panther_tests(&Path::new(PANTHER).join("rules"));
    let (mut agree, mut total) = (0, 0);
    for (panther_file, sigma_file) in PAIRS {
        let set = RuleSet::load_dir(&Path::new(SIGMA).join(sigma_file));
        assert_eq!(set.len(), 1, "{sigma_file}: {:?}", set.problems());
        let mut engine = Engine::new(set);
        let mut seen = 0;
        for t in tests.iter().filter(|t| t.file == *panther_file) {
            let Some(source) = labelled_source(t) else {
                continue;
            };
            seen += 1;
            total += 1;
            let fired = !engine.observe(&t.log, source, 0).is_empty();
            if fired == t.expected {
                agree += 1;
            } else {
                println!(
                    "  disagree: {panther_file} / {}: panther {}, sigma {fired}",
                    t.name, t.expected
                );
            }
        }
        assert!(seen > 0, "{panther_file} has no usable tests");
    }
    println!("panther/sigma agreement: {agree}/{total}");
    assert!(
        agree >= 37,
        "panther/sigma agreement fell to {agree}/{total}"
    );
}
