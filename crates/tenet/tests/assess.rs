//! `tenet assess`, `tenet segment generate` and `tenet score` from the command line, on
//! files of every recognised kind, the real PostgreSQL on 127.0.0.1:5432, and SARIF checked
//! against the official SARIF 2.1.0 schema.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::tenet;

const IAM_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"S1","Effect":"Allow","NotAction":"s3:DeleteBucket","Resource":"*"},
    {"Sid":"S2","Effect":"Allow","NotAction":"example:NoSuchAction","Resource":"*"},
    {"Sid":"S3","Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::private-bucket/*"},
    {"Sid":"S4","Effect":"Deny","NotAction":"iam:Get*","Resource":"*"}]}"#;

const SECURITY_GROUPS: &str = r#"{"SecurityGroups":[
  {"GroupId":"sg-1","IpPermissions":[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"Ipv6Ranges":[{"CidrIpv6":"::/0"}]}]},
  {"GroupId":"sg-2","IpPermissions":[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]}]}"#;

const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: data}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec: {template: {metadata: {labels: {app: frontend}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec: {template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: data}
spec: {template: {metadata: {labels: {app: postgres}}, spec: {containers: [{name: c}]}}}
"#;

const TERRAFORM: &str = r#"
resource "aws_security_group" "db" {
  name = "db"
  ingress {
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
resource "aws_iam_user_policy" "admin" {
  name   = "admin"
  user   = "ops"
  policy = jsonencode({ Version = "2012-10-17", Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }] })
}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, args: &[&str]) -> Output {
    tenet().current_dir(dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sample_inputs(dir: &Path) {
    write(dir, "in/iam/policy.json", IAM_POLICY);
    write(dir, "in/aws/groups.json", SECURITY_GROUPS);
    write(dir, "in/k8s/workloads.yaml", WORKLOADS);
    write(dir, "in/tf/main.tf", TERRAFORM);
    write(dir, "in/notes.txt", "not configuration");
}

fn rules_of(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_folder_of_every_kind_gives_one_report() {
    let dir = tempfile::tempdir().unwrap();
    sample_inputs(dir.path());
    let out = run(dir.path(), &["assess", "in", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["analyses"],
        serde_json::json!(["iam", "k8s", "secgroup"])
    );
    let rules = rules_of(&report);
    for expected in [
        "iam.admin-equivalent",
        "sg.public-admin-port",
        "sg.public-all-ports",
        "sg.public-database-port",
        "k8s.namespace-without-network-policy",
    ] {
        assert!(
            rules.iter().any(|r| r == expected),
            "{expected} missing from {rules:?}"
        );
    }
    // The unknown file inside the folder is listed, not fatal.
    let skipped = report["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["input"] == "in/notes.txt"
            && s["reason"]
                .as_str()
                .unwrap()
                .contains("not a configuration file (.txt)")),
        "{skipped:?}"
    );
    // Terraform findings carry the file and line.
    let tf = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "sg.public-database-port")
        .unwrap();
    assert_eq!(tf["location"]["file"], "in/tf/main.tf");
    assert_eq!(tf["location"]["line"], 2);

    // JSON findings carry the line their pointer leads to. S2 allows every action, but S4
    // denies all but iam:Get*: not an administrator (an explicit Deny wins).
    let policy_findings = |rule: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule && f["location"]["file"] == "in/iam/policy.json")
            .cloned()
    };
    assert_eq!(policy_findings("iam.admin-equivalent"), None);
    let narrowed = policy_findings("iam.allow-all-but-denied").unwrap();
    assert_eq!(narrowed["location"]["pointer"], "/Statement/1");
    assert_eq!(narrowed["location"]["line"], 3);
    // YAML findings carry a line too.
    let ns = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["location"]["file"] == "in/k8s/workloads.yaml")
        .unwrap();
    assert!(ns["location"]["line"].as_u64().is_some(), "{ns}");

    // Same input, same bytes.
    let again = run(dir.path(), &["assess", "in", "--format", "json"]);
    assert_eq!(stdout(&again), stdout(&out));

    // The text report groups by severity, worst first, with a summary line.
    let text = stdout(&run(dir.path(), &["assess", "in"]));
    assert!(text.starts_with("Tenet assessment: "), "{text}");
    let critical = text.find("\nCRITICAL (").unwrap();
    for lower in ["\nHIGH (", "\nMEDIUM (", "\nLOW (", "\nINFO ("] {
        if let Some(at) = text.find(lower) {
            assert!(critical < at, "{text}");
        }
    }
    assert!(text.contains("\nSKIPPED ("));
}

fn sarif_schema() -> PathBuf {
    let path = std::env::var_os("TENET_SARIF_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/tools/sarif-2.1.0.json"
            ))
        });
    assert!(
        path.exists(),
        "the SARIF 2.1.0 schema is missing at {}: run .ci/setup, which fetches it, or set TENET_SARIF_SCHEMA",
        path.display()
    );
    path
}

/// A corpus file; the test fails (does not skip) when it is missing.
fn corpus(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    ))
    .join(rel);
    assert!(p.exists(), "corpus {} is missing", p.display());
    p
}

/// iam-vulnerable's fp5 trap grants iam:CreatePolicyVersion only to tokens issued before
/// 2020: assessed now (the default) or at a later `--at`, no privilege escalation is
/// reported and the dead grant is information; at a time before 2020 it is an escalation
/// whose finding names the condition that limits it.
#[test]
fn time_conditions_are_decided_at_the_time_of_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let tf = corpus(
        "iam-vulnerable/modules/free-resources/tool-testing/fp5-NonExploitableConditionConstraint.tf",
    );
    let tf = tf.to_str().unwrap();
    let report_at = |at: Option<&str>| -> Value {
        let mut args = vec!["assess", tf, "--format", "json"];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    for at in [None, Some("2025-06-01T00:00:00Z")] {
        let report = report_at(at);
        let findings = report["findings"].as_array().unwrap();
        assert!(
            !rules_of(&report)
                .iter()
                .any(|r| r == "iam.privilege-escalation"),
            "{at:?}: {report:#}"
        );
        assert!(
            findings.iter().all(|f| f["severity"] == "info"),
            "{at:?}: {report:#}"
        );
        let detail = findings[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains("aws:TokenIssueTime DateLessThan 2020-01-01T00:00:01Z is false"),
            "{detail}"
        );
    }
    let report = report_at(Some("2019-06-01T00:00:00Z"));
    let escalations: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "iam.privilege-escalation")
        .collect();
    assert_eq!(escalations.len(), 2, "{report:#}");
    for f in escalations {
        assert_eq!(f["severity"], "high");
        assert!(
            f["detail"]
                .as_str()
                .unwrap()
                .contains("aws:TokenIssueTime DateLessThan 2020-01-01T00:00:01Z"),
            "{f:#}"
        );
    }
    let out = run(dir.path(), &["assess", tf, "--at", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--at"), "{}", stderr(&out));
}

#[test]
fn sarif_is_valid_against_the_sarif_2_1_0_schema() {
    let dir = tempfile::tempdir().unwrap();
    sample_inputs(dir.path());
    let out = run(
        dir.path(),
        &["assess", "in", "--format", "sarif", "-o", "report.sarif"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.sarif")).unwrap())
            .unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(log["runs"][0]["results"].as_array().unwrap().len() > 5);
    let validate = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/validate_sarif.py"
        ))
        .arg(sarif_schema())
        .arg(dir.path().join("report.sarif"))
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "SARIF does not validate:\n{}{}",
        stdout(&validate),
        stderr(&validate)
    );
    // The validator is not a rubber stamp: a broken log fails it.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = Value::from("severe");
    write(dir.path(), "broken.sarif", &broken.to_string());
    let rejected = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/validate_sarif.py"
        ))
        .arg(sarif_schema())
        .arg(dir.path().join("broken.sarif"))
        .output()
        .unwrap();
    assert!(!rejected.status.success());
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    sample_inputs(dir.path());
    // The Terraform grants Action "*" on "*" and opens 5432 to the internet: critical.
    let out = run(dir.path(), &["assess", "in/tf", "--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("at or above critical"));
    let out = run(dir.path(), &["assess", "in/k8s", "--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(dir.path(), &["assess", "in", "--fail-on", "severe"]);
    assert_eq!(out.status.code(), Some(2), "a usage error is not a finding");
    assert!(stderr(&out).contains("--fail-on: unknown severity \"severe\""));
}

/// `--format` and `--fail-on` take their values in any case; `--reach` without Kubernetes
/// manifests says so instead of printing nothing.
#[test]
fn option_values_in_any_case_and_reach_without_manifests() {
    let dir = tempfile::tempdir().unwrap();
    sample_inputs(dir.path());
    let out = run(
        dir.path(),
        &["assess", "in/iam", "--format", "JSON", "--fail-on", "HIGH"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["analyses"], serde_json::json!(["iam"]));

    let out = run(dir.path(), &["assess", "in/iam", "--reach"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--reach: no Kubernetes manifests"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), &["assess", "in/k8s", "--reach"]);
    assert!(
        !stderr(&out).contains("no Kubernetes manifests"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn named_inputs_that_cannot_be_assessed_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "broken.json", "{\"Statement\": [");
    write(dir.path(), "notes.txt", "hello");
    write(dir.path(), "bad.tf", "resource \"aws_security_group\" {");
    write(dir.path(), "bad.yaml", "a: [1, 2\nb: }");
    write(
        dir.path(),
        "dup.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}],"Statement":[]}"#,
    );
    write(
        dir.path(),
        "dup.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n",
    );
    write(dir.path(), "empty.json", "  \n");
    write(dir.path(), "docs/README.md", "kind: not really\n");
    for (arg, reason) in [
        ("broken.json", "invalid JSON"),
        ("notes.txt", "not a configuration file (.txt)"),
        ("missing.json", "cannot read"),
        ("bad.tf", "invalid HCL"),
        ("bad.yaml", "invalid YAML"),
        ("postgres://tenet@127.0.0.1:1/none", "cannot connect"),
        ("dup.json", "duplicate key \"Statement\""),
        ("dup.yaml", "duplicate key \"metadata\""),
        ("empty.json", "empty file"),
        ("docs", "nothing in this folder could be assessed"),
        (
            "mysql://root:pw@127.0.0.1/x",
            "unsupported URL scheme \"mysql\"",
        ),
    ] {
        let out = run(dir.path(), &["assess", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{arg}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{arg}");
    }
    let out = run(
        dir.path(),
        &["assess", "postgres://tenet:hunter2@127.0.0.1:1/none"],
    );
    assert!(!stderr(&out).contains("hunter2") && !stdout(&out).contains("hunter2"));
}

#[test]
fn reach_on_too_many_workloads_is_refused_not_run_out_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let pods: Vec<String> = (0..2100)
        .map(|i| format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: a}}\nspec: {{containers: [{{name: c}}]}}\n"))
        .collect();
    write(dir.path(), "pods.yaml", &pods.join("---\n"));
    let out = run(dir.path(), &["assess", "pods.yaml", "--reach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--reach: 2100 workloads"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn control_characters_in_inputs_cannot_forge_report_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "evil.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: \"evil\\u001b[2J\\nCRITICAL (0)\"}\n",
    );
    let out = run(dir.path(), &["assess", "evil.yaml"]);
    let text = stdout(&out);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains("\nCRITICAL (0)"), "{text}");
    assert!(text.contains("\\u{1b}[2J\\u{a}CRITICAL (0)"), "{text}");
}

#[test]
fn postgres_is_assessed_over_a_real_connection() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "assess",
            "postgres://postgres@127.0.0.1:5432/test",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["analyses"], serde_json::json!(["pg"]));
    assert_eq!(
        report["inputs"],
        serde_json::json!(["postgres://postgres@127.0.0.1:5432/test"])
    );
    // The bootstrap superuser can log in on this machine: reported.
    assert!(
        rules_of(&report)
            .iter()
            .any(|r| r.starts_with("pg.superuser")),
        "{report}"
    );
}

#[test]
fn segment_generate_then_reach_shows_exactly_the_flows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "k8s/workloads.yaml", WORKLOADS);
    write(
        dir.path(),
        "flows.yaml",
        "flows:\n  - {from: shop/frontend, to: shop/api, port: 8080}\n  - {from: shop/api, to: data/postgres, port: 5432}\n",
    );
    let out = run(
        dir.path(),
        &[
            "segment",
            "generate",
            "--flows",
            "flows.yaml",
            "k8s",
            "-o",
            "k8s/generated.yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        dir.path(),
        &["assess", "k8s", "--reach", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["connections"],
        serde_json::json!([
            "shop/api[Deployment] => data/postgres[StatefulSet] : TCP 5432",
            "shop/frontend[Deployment] => shop/api[Deployment] : TCP 8080"
        ])
    );
    assert!(
        !rules_of(&report)
            .iter()
            .any(|r| r.starts_with("k8s.no-default-deny")),
        "{report}"
    );

    // An existing allow-all policy defeats segmentation: the generator says so.
    write(
        dir.path(),
        "open/open.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: frontend-open, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: frontend}}\n  ingress:\n  - {}\n",
    );
    let out = run(
        dir.path(),
        &[
            "segment",
            "generate",
            "--flows",
            "flows.yaml",
            "k8s/workloads.yaml",
            "open/open.yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning:") && stderr(&out).contains("frontend-open"),
        "{}",
        stderr(&out)
    );

    // A flow naming an unknown workload is refused with its name.
    write(
        dir.path(),
        "bad-flows.yaml",
        "flows:\n  - {from: shop/ghost, to: shop/api, port: 80}\n",
    );
    let out = run(
        dir.path(),
        &[
            "segment",
            "generate",
            "--flows",
            "bad-flows.yaml",
            "k8s/workloads.yaml",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad input exits 2, as in tenet assess"
    );
    assert!(stderr(&out).contains("shop/ghost"), "{}", stderr(&out));
}

/// `tenet segment generate` lists what it does not use (documents that are not Kubernetes
/// objects, objects it cannot read, folder entries it cannot use) and fails with exit 2, as
/// `tenet assess` does, when its input is unusable.
#[test]
fn segment_generate_lists_what_it_skips_and_exits_2_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "k8s/workloads.yaml",
        &format!(
            "{WORKLOADS}---\njust: data\n---\napiVersion: rbac.authorization.k8s.io/v1\n\
             kind: RoleBinding\nmetadata: {{namespace: shop}}\nroleRef: {{kind: Role, name: r}}\n"
        ),
    );
    write(dir.path(), "k8s/README.md", "notes\n");
    write(dir.path(), "k8s/broken.yaml", "a: [1, 2\nb: }");
    std::os::unix::fs::symlink("missing.yaml", dir.path().join("k8s/dangling.yaml")).unwrap();
    write(
        dir.path(),
        "flows.yaml",
        "flows:\n  - {from: shop/frontend, to: shop/api, port: 8080}\n",
    );
    let out = run(
        dir.path(),
        &[
            "segment",
            "generate",
            "--flows",
            "flows.yaml",
            "k8s",
            "-o",
            "out.yaml",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for (input, reason) in [
        ("k8s/workloads.yaml#5", "not a Kubernetes object"),
        ("k8s/workloads.yaml#6", "without metadata.name"),
        ("k8s/README.md", "not a .yaml, .yml or .json manifest"),
        ("k8s/broken.yaml", "manifest k8s/broken.yaml"),
        ("k8s/dangling.yaml", "broken symbolic link"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("skipped: {input}")) && l.contains(reason)),
            "{input}: {err}"
        );
    }

    for args in [
        &["segment", "generate", "--flows", "missing.yaml", "k8s"][..],
        &[
            "segment",
            "generate",
            "--flows",
            "flows.yaml",
            "k8s/broken.yaml",
        ][..],
        &[
            "segment",
            "generate",
            "--flows",
            "flows.yaml",
            "nothing-here",
        ][..],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    write(
        dir.path(),
        "unknown.yaml",
        "flows:\n  - {from: shop/nobody, to: shop/api, port: 8080}\n",
    );
    let out = run(
        dir.path(),
        &["segment", "generate", "--flows", "unknown.yaml", "k8s"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn score_uses_saved_assessments() {
    let dir = tempfile::tempdir().unwrap();
    sample_inputs(dir.path());
    let out = run(
        dir.path(),
        &["assess", "in/k8s", "--format", "json", "-o", "k8s.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        dir.path(),
        &["score", "--assessment", "k8s.json", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no deployment"), "{}", stderr(&out));
    let card: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let data = card["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "data access")
        .unwrap();
    // Audited, but the audit found namespaces without default deny: no audit credit until
    // they are fixed, so data access has not started.
    assert_eq!(data["stage"], "traditional");
    assert_eq!(
        data["missing"],
        serde_json::json!(["governance.config-audited"])
    );
    assert!(
        data["failed"][0][1]["detail"]
            .as_str()
            .unwrap()
            .contains("networks.default-deny-k8s failing"),
        "{data:#}"
    );
    assert_eq!(
        card["next"][0],
        "issue SVIDs to every workload and require mTLS"
    );
    // Deterministic, and --format takes any case (as `tenet assess` does).
    let again = run(
        dir.path(),
        &["score", "--assessment", "k8s.json", "--format", "JSON"],
    );
    assert_eq!(stdout(&again), stdout(&out));
}

/// The score sees people's sign-in, sessions and detection in the deployment itself.
/// A manifest folder where one manifest is invalid does not earn default deny in the score:
/// the report lists the invalid input and the score shows the fact as failed because of it.
#[test]
fn score_counts_invalid_manifests_against_default_deny() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                  metadata: {name: deny, namespace: shop}\n\
                  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";
    write(
        dir.path(),
        "k8s/ok.yaml",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{policy}"),
    );
    write(
        dir.path(),
        "k8s/broken.yaml",
        "apiVersion: v1\nkind: [Namespace\n",
    );
    let out = run(
        dir.path(),
        &["assess", "k8s", "--format", "json", "-o", "r.json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(
        report["invalid"]["k8s"],
        serde_json::json!(["k8s/broken.yaml"])
    );
    let out = run(dir.path(), &["score", "--assessment", "r.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("! failed  networks.default-deny-k8s: 1 input(s)")
            && text.contains("k8s/broken.yaml"),
        "{text}"
    );
    assert!(!text.contains("+ networks.default-deny-k8s"), "{text}");

    // Without the broken file the fact holds, and two reports are both its evidence.
    std::fs::remove_file(dir.path().join("k8s/broken.yaml")).unwrap();
    for name in ["r.json", "s.json"] {
        let out = run(
            dir.path(),
            &["assess", "k8s", "--format", "json", "-o", name],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(
        dir.path(),
        &["score", "--assessment", "s.json", "--assessment", "r.json"],
    );
    let text = stdout(&out);
    let r = text.find("+ networks.default-deny-k8s: Kubernetes assessed: every namespace has default deny [r.json]");
    let s = text.find("+ networks.default-deny-k8s: Kubernetes assessed: every namespace has default deny [s.json]");
    assert!(r.is_some() && s.is_some() && r < s, "{text}");
}

#[test]
fn score_observes_people_and_detection() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["init", "d", "--trust-domain", "example.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = dir.path().join("d/tenet.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        r#"
[[listeners]]
name = "people"
listen = "127.0.0.1:0"
client_auth = "optional"

[[routes]]
name = "wiki"
service = "wiki"
listener = "people"
host = "wiki.example.test"
upstream = "http://127.0.0.1:9"
people = true

[people]
rp_id = "example.test"
origins = ["https://wiki.example.test:8443"]

[[people.providers]]
name = "corp"
issuer = "https://login.example.test"
client_id = "tenet"
redirect_uri = "https://wiki.example.test:8443/.tenet/auth/callback"
"#,
    );
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let out = run(
        dir.path(),
        &["--config", &config, "score", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let card: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let all_missing: Vec<String> = card["functions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["missing"].as_array().unwrap().clone())
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    for seen in [
        "identity.user-sso",
        "identity.phishing-resistant-mfa",
        "identity.continuous-reauth",
        "visibility.detections",
        "automation.auto-containment",
    ] {
        assert!(!all_missing.iter().any(|m| m == seen), "{seen} missing");
    }
    // No device enrolled yet: the devices function has not started.
    assert!(
        all_missing.iter().any(|m| m == "devices.enrolment"),
        "devices.enrolment credited"
    );
}

/// A deployment fresh from `tenet init` is optimal in no function: its defaults satisfy
/// configuration facts, but optimal needs decisions recorded over days, and init's own
/// ledger event is not a decision.
#[test]
fn a_fresh_deployment_scores_optimal_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["init", "d", "--trust-domain", "example.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = dir.path().join("d/tenet.toml").display().to_string();
    let out = run(
        dir.path(),
        &["--config", &config, "score", "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let card: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let functions = card["functions"].as_array().unwrap();
    let optimal: Vec<&Value> = functions
        .iter()
        .filter(|f| f["stage"] == "optimal")
        .map(|f| &f["function"])
        .collect();
    assert!(optimal.is_empty(), "{optimal:?}");
    let visibility = functions
        .iter()
        .find(|f| f["function"] == "visibility and analytics")
        .unwrap();
    assert_eq!(visibility["stage"], "traditional");
    assert_eq!(
        visibility["missing"],
        serde_json::json!(["visibility.decision-events"])
    );
}
