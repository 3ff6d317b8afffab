//! Regression tests for problems a new user reported (one test per class of problem).

use serde_json::{Value, json};
use tenet_finding::{Finding, Severity};
use tenet_iam::{Account, Hit, Options, Policy, analyze};

fn hits(statements: Value) -> Vec<Hit> {
    let p =
        Policy::from_value("t", &json!({"Version":"2012-10-17","Statement":statements})).unwrap();
    analyze(
        &p,
        Options {
            now: Some(super::NOW),
            escalation: true,
        },
    )
}

fn rules(hits: &[Hit]) -> Vec<&'static str> {
    hits.iter().map(|h| h.rule).collect()
}

/// Log groups in the form AWS documents, log-group names with `/`, and the EC2 snapshot ARN
/// whose account field is empty are granted: no resource-mismatch.
#[test]
fn resource_mismatch_common_arns_are_granted() {
    let h = hits(json!([
        {"Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],
         "Resource":"arn:aws:logs:us-east-1:111122223333:log-group:myapp:*"},
        {"Effect":"Allow","Action":"logs:AssociateKmsKey","Resource":"arn:aws:logs:*:*:log-group:/app/*"},
        {"Effect":"Allow","Action":"ec2:DeleteSnapshot","Resource":"arn:aws:ec2:*:*:snapshot/*"}
    ]));
    assert!(!rules(&h).contains(&"iam.resource-mismatch"), "{h:?}");

    let path = super::corpus("mamip/policies/CloudWatchLambdaInsightsExecutionRolePolicy");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let p = Policy::from_value("m", &v["PolicyVersion"]["Document"]).unwrap();
    let h = analyze(&p, Options::default());
    assert!(!rules(&h).contains(&"iam.resource-mismatch"), "{h:?}");

    // A real mismatch stays: a bucket action on object ARNs only.
    let h =
        hits(json!([{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b/*"}]));
    assert!(rules(&h).contains(&"iam.resource-mismatch"), "{h:?}");
}

/// An action the Resource cannot name is not granted, so no grant finding names it.
#[test]
fn no_grant_finding_for_an_action_that_is_not_granted() {
    let h = hits(json!([{"Effect":"Allow",
        "Action":["iam:PassRole","iam:CreateAccessKey"],
        "Resource":"arn:aws:s3:::bucket/*"}]));
    assert!(rules(&h).contains(&"iam.resource-mismatch"), "{h:?}");
    for hit in &h {
        for (rule, e) in super::classes_of(hit) {
            if rule == "iam.resource-mismatch" {
                continue;
            }
            let actions = e
                .get("actions")
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                !actions.contains("iam:"),
                "{rule} names a mismatched action: {hit:?}"
            );
        }
    }
    assert!(!rules(&h).contains(&"iam.privilege-escalation"), "{h:?}");
}

/// One statement, one finding for its grant; escalation paths as one finding.
#[test]
fn one_finding_per_statement_and_escalation() {
    let h = hits(json!([{"Effect":"Allow","Action":["lambda:*","iam:PassRole"],"Resource":"*"}]));
    assert_eq!(
        rules(&h),
        vec!["iam.service-wildcard", "iam.privilege-escalation"],
        "{h:?}"
    );
    let wildcard = &h[0];
    assert_eq!(wildcard.severity, Severity::High);
    let implied: Vec<String> = super::classes_of(wildcard)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(
        implied.contains(&"iam.resource-star".to_owned()),
        "{implied:?}"
    );
    assert!(
        implied.contains(&"iam.permissions-management".to_owned()),
        "{implied:?}"
    );
    let methods = h[1].evidence.iter().find(|(k, _)| *k == "methods").unwrap();
    assert!(methods.1.as_array().unwrap().len() >= 3, "{methods:?}");
}

/// Allow + NotAction iam:* (PowerUserAccess) is near-admin: it keeps sts:AssumeRole on * and
/// escalation paths that do not need IAM.
#[test]
fn not_action_iam_is_near_admin() {
    let h = hits(json!([{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]));
    let not_action = h.iter().find(|h| h.rule == "iam.allow-not-action").unwrap();
    assert_eq!(not_action.severity, Severity::Critical);
    assert!(
        not_action.detail.contains("near-admin"),
        "{}",
        not_action.detail
    );
    assert!(
        not_action.detail.contains("sts:AssumeRole"),
        "{}",
        not_action.detail
    );
    assert!(
        not_action
            .detail
            .contains("EditExistingLambdaFunctionWithRole")
    );

    // On one bucket's objects it grants only object actions: high, not near-admin.
    let h = hits(json!([{"Effect":"Allow","NotAction":"s3:DeleteObject",
        "Resource":"arn:aws:s3:::b/*"}]));
    let not_action = h.iter().find(|h| h.rule == "iam.allow-not-action").unwrap();
    assert_eq!(not_action.severity, Severity::High);
}

fn assess(account: &Account) -> Vec<Finding> {
    account.assess().findings
}

/// AWS managed policies cannot be edited: the remediation says so.
#[test]
fn aws_managed_policy_remediation() {
    let doc = json!({"PolicyVersion":{"Document":{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["ec2:RunInstances","iam:PassRole"],"Resource":"*"}]}}});
    let mut a = Account::new();
    assert!(a.add_json("AmazonEC2Example", &doc));
    let findings = assess(&a);
    assert!(!findings.is_empty());
    for f in &findings {
        let fix = f.remediation.as_deref().unwrap_or_default();
        assert!(fix.contains("cannot be edited"), "{f:?}");
        assert!(fix.contains("customer-managed"), "{f:?}");
    }

    // In a dump, the principal's escalation says to detach the AWS managed policy.
    let arn = "arn:aws:iam::aws:policy/Example";
    let dump = json!({
        "Policies":[{"Arn":arn,"PolicyName":"Example","PolicyVersionList":[
            {"IsDefaultVersion":true,"Document":doc["PolicyVersion"]["Document"]}]}],
        "UserDetailList":[{"UserName":"u","Arn":"arn:aws:iam::111122223333:user/u",
            "AttachedManagedPolicies":[{"PolicyArn":arn}]}]});
    let mut a = Account::new();
    assert!(a.add_json("dump.json", &dump));
    let findings = assess(&a);
    let esc = findings
        .iter()
        .find(|f| f.rule == "iam.privilege-escalation" && f.subject.ends_with(":user/u"))
        .unwrap();
    let fix = esc.remediation.as_deref().unwrap();
    assert!(fix.contains("detach the AWS managed policy"), "{fix}");
    let doc_finding = findings.iter().find(|f| f.subject == arn).unwrap();
    assert!(
        doc_finding
            .remediation
            .as_deref()
            .unwrap()
            .contains("cannot be edited")
    );
}

/// Terraform principals are named by address (and literal name), never by interpolation.
#[test]
fn terraform_subjects_are_addresses() {
    let tf = r#"
resource "aws_iam_role" "named" {
  name = "privesc-role"
  assume_role_policy = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "sts:AssumeRole", Principal = {Service = "ec2.amazonaws.com"}}]})
}
resource "aws_iam_role" "computed" {
  name = "${var.prefix}-role"
  assume_role_policy = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "sts:AssumeRole", Principal = {Service = "ec2.amazonaws.com"}}]})
}
resource "aws_iam_role_policy" "p1" {
  role = aws_iam_role.named.name
  policy = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "iam:CreatePolicyVersion", Resource = "*"}]})
}
resource "aws_iam_role_policy" "p2" {
  role = aws_iam_role.computed.id
  policy = jsonencode({Version = "2012-10-17", Statement = [{Effect = "Allow", Action = "iam:CreatePolicyVersion", Resource = "*"}]})
}
"#;
    let module = tenet_terraform::Module::from_files(&[("main.tf".to_owned(), tf.to_owned())]);
    let mut a = Account::new();
    a.add_terraform(&module);
    let subjects: Vec<String> = assess(&a)
        .into_iter()
        .filter(|f| f.rule == "iam.privilege-escalation")
        .map(|f| f.subject)
        .collect();
    assert!(
        subjects.contains(&"aws_iam_role.named (privesc-role)".to_owned()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"aws_iam_role.computed".to_owned()),
        "{subjects:?}"
    );
    assert!(!subjects.iter().any(|s| s.contains("${")), "{subjects:?}");
}
