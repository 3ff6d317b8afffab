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

/// Percent-encodes everything but RFC 3986 unreserved characters, as the IAM API does.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn skipped_at<'a>(outcome: &'a tenet_finding::Outcome, at: &str) -> &'a tenet_finding::Skipped {
    outcome
        .skipped
        .iter()
        .find(|s| s.input == at)
        .unwrap_or_else(|| panic!("nothing skipped at {at}: {:?}", outcome.skipped))
}

/// The IAM API returns documents URL-encoded: they are decoded (RFC 3986, `+` stays a plus),
/// so an inline admin grant is found; a string that is neither JSON nor URL-encoded JSON is
/// a skip with its reason.
#[test]
fn url_encoded_documents_are_decoded() {
    let admin = url_encode(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    );
    assert!(admin.starts_with("%7B%22Version%22"), "{admin}");
    let trust = url_encode(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#,
    );
    let dump = json!({
        "UserDetailList":[{"UserName":"u","Arn":"arn:aws:iam::111122223333:user/u",
            "UserPolicyList":[
                {"PolicyName":"admin","PolicyDocument":admin},
                {"PolicyName":"garbage","PolicyDocument":"not a policy"},
                {"PolicyName":"bad-escape","PolicyDocument":"%7B%2"}]}],
        "RoleDetailList":[{"RoleName":"r","Arn":"arn:aws:iam::111122223333:role/r",
            "AssumeRolePolicyDocument":trust}]});
    let mut a = Account::new();
    assert!(a.add_json("dump.json", &dump));
    let outcome = a.assess();
    let admin = outcome
        .findings
        .iter()
        .find(|f| f.rule == "iam.admin-equivalent" && f.subject.ends_with(":user/u"))
        .unwrap_or_else(|| panic!("{:?}", outcome.findings));
    assert_eq!(admin.severity, Severity::Critical);
    assert!(
        outcome
            .findings
            .iter()
            .any(|f| f.rule == "iam.role-trust-public" && f.subject.contains("role/r")),
        "{:?}",
        outcome.findings
    );
    let garbage = skipped_at(
        &outcome,
        "dump.json#/UserDetailList/0/UserPolicyList/1/PolicyDocument",
    );
    assert!(
        garbage.reason.contains("neither JSON nor URL-encoded JSON"),
        "{garbage:?}"
    );
    let bad = skipped_at(
        &outcome,
        "dump.json#/UserDetailList/0/UserPolicyList/2/PolicyDocument",
    );
    assert!(bad.reason.contains("percent-escape"), "{bad:?}");

    // `+` is a plus, not a space.
    let doc = url_encode(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a"#,
    ) + "+b/*%22%7D%7D";
    let p = Policy::from_value("t", &json!(doc)).unwrap();
    assert_eq!(
        p.statements[0].resource,
        tenet_iam::policy::ResourceMatch::Resources(vec!["arn:aws:s3:::a+b/*".to_owned()])
    );
}

/// Well-known AWS managed policies attached by ARN but absent from the input are assessed
/// from Tenet's built-in knowledge, and the evidence says so; others stay unresolved, and
/// the finding says the principal's rights are unknown.
#[test]
fn builtin_aws_managed_policies() {
    let attach = |arn: &str| json!([{"PolicyName": "x", "PolicyArn": arn}]);
    let dump = json!({
        "UserDetailList":[
            {"UserName":"admin","Arn":"arn:aws:iam::111122223333:user/admin",
             "AttachedManagedPolicies": attach("arn:aws:iam::aws:policy/AdministratorAccess")},
            {"UserName":"iam","Arn":"arn:aws:iam::111122223333:user/iam",
             "AttachedManagedPolicies": attach("arn:aws:iam::aws:policy/IAMFullAccess")},
            {"UserName":"s3","Arn":"arn:aws:iam::111122223333:user/s3","GroupList":["data"]},
            {"UserName":"ro","Arn":"arn:aws:iam::111122223333:user/ro",
             "AttachedManagedPolicies": attach("arn:aws:iam::aws:policy/ReadOnlyAccess")}],
        "GroupDetailList":[{"GroupName":"data","Arn":"arn:aws:iam::111122223333:group/data",
             "AttachedManagedPolicies": attach("arn:aws:iam::aws:policy/AmazonS3FullAccess")}],
        "RoleDetailList":[{"RoleName":"power","Arn":"arn:aws:iam::111122223333:role/power",
             "AttachedManagedPolicies": attach("arn:aws:iam::aws:policy/PowerUserAccess")}]});
    let mut a = Account::new();
    assert!(a.add_json("dump.json", &dump));
    let findings = assess(&a);
    let find = |rule: &str, subject: &str| {
        findings
            .iter()
            .find(|f| f.rule == rule && f.subject.ends_with(subject))
            .unwrap_or_else(|| panic!("no {rule} for {subject}: {findings:#?}"))
    };
    let builtin_note = |f: &Finding| {
        let source = f.evidence.get("document_source").map(ToString::to_string);
        assert!(
            source.is_some_and(|s| s.contains("built-in knowledge of the AWS managed policy")),
            "{f:?}"
        );
    };

    let admin = find("iam.admin-equivalent", ":user/admin");
    assert_eq!(admin.severity, Severity::Critical);
    builtin_note(admin);
    let iam = find("iam.privilege-escalation", ":user/iam");
    builtin_note(iam);
    let power = find("iam.privilege-escalation", ":role/power");
    builtin_note(power);

    // The documents themselves, once each, naming who holds them.
    let not_action = find("iam.allow-not-action", "policy/PowerUserAccess");
    assert_eq!(not_action.severity, Severity::Critical);
    builtin_note(not_action);
    let iam_wildcard = find("iam.service-wildcard", "policy/IAMFullAccess");
    assert_eq!(iam_wildcard.severity, Severity::Critical);
    let s3 = find("iam.service-wildcard", "policy/AmazonS3FullAccess");
    builtin_note(s3);
    assert!(
        s3.evidence["attached_to"].to_string().contains("user/s3"),
        "{s3:?}"
    );

    for user in [":user/admin", ":user/iam", ":user/s3", ":role/power"] {
        assert!(
            !findings
                .iter()
                .any(|f| f.rule == "iam.unresolved-policy" && f.subject.ends_with(user)),
            "{user} is unresolved: {findings:#?}"
        );
    }
    let ro = find("iam.unresolved-policy", ":user/ro");
    assert_eq!(ro.severity, Severity::Info);
    assert!(ro.detail.contains("ReadOnlyAccess"), "{}", ro.detail);
    assert!(ro.detail.contains("rights are unknown"), "{}", ro.detail);
}

/// Parts of a dump with the wrong type are skipped with their pointer and the reason.
#[test]
fn wrong_typed_dump_sections_are_skipped() {
    let dump = json!({
        "GroupDetailList": "oops",
        "UserDetailList": [5, {"UserName":"u","Arn":"arn:aws:iam::111122223333:user/u",
            "UserPolicyList": {"not": "an array"}, "GroupList": ["g", 7]}],
        "RoleDetailList": [{"RoleName":"r","Arn":"arn:aws:iam::111122223333:role/r",
            "RolePolicyList": "nope", "AttachedManagedPolicies": [{"PolicyArn": 1}]}]});
    let mut a = Account::new();
    assert!(a.add_json("dump.json", &dump));
    let outcome = a.assess();
    for (at, says) in [
        (
            "dump.json#/GroupDetailList",
            "GroupDetailList is a string, not an array",
        ),
        (
            "dump.json#/UserDetailList/0",
            "entry is a number, not an object",
        ),
        (
            "dump.json#/UserDetailList/1/UserPolicyList",
            "UserPolicyList is an object, not an array",
        ),
        ("dump.json#/UserDetailList/1/GroupList/1", "not a string"),
        (
            "dump.json#/RoleDetailList/0/RolePolicyList",
            "RolePolicyList is a string, not an array",
        ),
        (
            "dump.json#/RoleDetailList/0/AttachedManagedPolicies/0/PolicyArn",
            "PolicyArn is a number, not a string",
        ),
    ] {
        let s = skipped_at(&outcome, at);
        assert!(s.reason.contains(says), "{at}: {s:?}");
    }
}

/// Wrong types and missing elements make a statement malformed, and a malformed statement
/// yields no grant finding from a guessed reading.
#[test]
fn malformed_statements_grant_nothing() {
    for (statement, says) in [
        (
            json!({"Effect":"Allow","Action":"*","Resource":1}),
            "Resource entry is a number",
        ),
        (
            json!({"Effect":"Allow","Action":[],"Resource":"*"}),
            "Action is an empty array",
        ),
        (
            json!({"Effect":"Allow","Action":"*","Resource":[]}),
            "Resource is an empty array",
        ),
        (
            json!({"Effect":"Allow","Action":"iam:*"}),
            "neither Resource nor NotResource",
        ),
        (
            json!({"Effect":"Allow","Resource":"*"}),
            "neither Action nor NotAction",
        ),
        (
            json!({"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}),
            "both Action and NotAction",
        ),
        (
            json!({"Effect":1,"Action":"*","Resource":"*"}),
            "Effect is a number",
        ),
    ] {
        let h = hits(json!([statement]));
        assert_eq!(
            rules(&h),
            vec!["iam.policy-malformed"],
            "{statement}: {h:?}"
        );
        assert!(h[0].detail.contains(says), "{statement}: {}", h[0].detail);
    }
    // A trust policy names a Principal and no Resource: that is well-formed.
    let p = Policy::from_value(
        "t",
        &json!({"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},
            "Action":"sts:AssumeRole"}]}),
    )
    .unwrap();
    assert!(p.issues.is_empty(), "{:?}", p.issues);
    assert_eq!(p.statements.len(), 1);
}

/// iam:* on every resource is full IAM control (the holder can attach AdministratorAccess to
/// itself): critical, with the reason.
#[test]
fn iam_star_is_critical() {
    let h = hits(json!([{"Effect":"Allow","Action":"iam:*","Resource":"*"}]));
    let w = h.iter().find(|h| h.rule == "iam.service-wildcard").unwrap();
    assert_eq!(w.severity, Severity::Critical);
    assert!(w.detail.contains("full IAM control"), "{}", w.detail);
    assert!(w.detail.contains("AdministratorAccess"), "{}", w.detail);
    // On one role only it is not full control.
    let h = hits(json!([{"Effect":"Allow","Action":"iam:*",
        "Resource":"arn:aws:iam::111122223333:role/app"}]));
    let w = h.iter().find(|h| h.rule == "iam.service-wildcard").unwrap();
    assert_eq!(w.severity, Severity::High);
}

/// Per-statement analysis costs the statement, not the catalogue: a thousand statements of
/// the costly kinds (NotAction on named resources, service wildcards, Denies, conditional
/// `*`) are assessed quickly even in a debug build (they took about 20 s before).
#[test]
fn thousand_costly_statements_are_all_assessed() {
    let statements: Vec<Value> = (0..1000)
        .map(|i| match i % 5 {
            0 => json!({"Effect":"Allow","NotAction":"iam:*","Resource":format!("arn:aws:s3:::b{i}/*")}),
            1 => json!({"Effect":"Allow","Action":["s3:*","ec2:*"],"Resource":format!("arn:aws:s3:::b{i}")}),
            2 => json!({"Effect":"Deny","Action":"ec2:*","Resource":"*"}),
            3 => json!({"Effect":"Allow","Action":["s3:GetObject","iam:PassRole","lambda:*"],
                        "Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":"eu-west-1"}}}),
            _ => json!({"Effect":"Allow","Action":"*","Resource":"*",
                        "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}),
        })
        .collect();
    let mut a = Account::new().at_time(super::NOW);
    assert!(a.add_json(
        "big.json",
        &json!({"Version":"2012-10-17","Statement":statements})
    ));
    // Speed is measured by bench/assess.sh, never asserted here.
    let findings = assess(&a);
    assert!(findings.len() >= 800, "{}", findings.len());
}

/// An Allow whose Action or Resource list holds entries that are not strings is analysed with
/// its string entries (what it certainly names); the malformed finding stays. A Deny with such
/// entries is left out, so it cancels nothing.
#[test]
fn well_formed_entries_of_a_malformed_list_are_analysed() {
    let h = hits(json!([{"Effect":"Allow","Action":["s3:GetObject",7,null],"Resource":"*"}]));
    let malformed: Vec<&str> = h
        .iter()
        .filter(|h| h.rule == "iam.policy-malformed")
        .map(|h| h.pointer.as_str())
        .collect();
    assert_eq!(
        malformed,
        ["/Statement/0/Action/1", "/Statement/0/Action/2"],
        "{h:?}"
    );
    let grant = h
        .iter()
        .find(|h| h.rule == "iam.data-exfiltration")
        .unwrap_or_else(|| panic!("s3:GetObject on * is analysed: {h:?}"));
    assert!(grant.detail.contains("s3:GetObject"), "{}", grant.detail);

    let h = hits(json!([{"Effect":"Allow","Action":["*",2],"Resource":"*"}]));
    assert!(rules(&h).contains(&"iam.policy-malformed"), "{h:?}");
    assert!(rules(&h).contains(&"iam.admin-equivalent"), "{h:?}");
    let h = hits(json!([{"Effect":"Allow","Action":"iam:*","Resource":[1,"*"]}]));
    assert!(rules(&h).contains(&"iam.policy-malformed"), "{h:?}");
    assert!(rules(&h).contains(&"iam.service-wildcard"), "{h:?}");

    // A list with no string entry left names nothing: the statement is still left out.
    let h = hits(json!([{"Effect":"Allow","NotAction":[7],"Resource":"*"}]));
    assert_eq!(rules(&h), vec!["iam.policy-malformed"], "{h:?}");

    // A malformed Deny cancels nothing.
    let h = hits(json!([
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
        {"Effect":"Deny","Action":["s3:GetObject",7],"Resource":"*"}
    ]));
    assert!(rules(&h).contains(&"iam.data-exfiltration"), "{h:?}");
}

/// An explicit Deny wins: an Allow of every action is admin-equivalent only while no
/// unconditional Deny of the same holder (in the same or another of its policies) takes IAM
/// permissions management away; what is left is reported as a broad Allow, rated by what it
/// keeps. A Deny with a Condition cancels nothing.
#[test]
fn a_deny_narrows_an_allow_of_everything() {
    let allow_all = json!({"Effect":"Allow","Action":"*","Resource":"*"});
    let severity_of = |h: &[Hit], rule: &str| h.iter().find(|h| h.rule == rule).map(|h| h.severity);

    // Deny everything but iam:Get*: only reads are left.
    let h = hits(json!([allow_all, {"Effect":"Deny","NotAction":"iam:Get*","Resource":"*"}]));
    assert!(!rules(&h).contains(&"iam.admin-equivalent"), "{h:?}");
    assert_eq!(
        severity_of(&h, "iam.allow-all-but-denied"),
        Some(Severity::Medium),
        "{h:?}"
    );
    assert!(!rules(&h).contains(&"iam.privilege-escalation"), "{h:?}");

    // Deny iam:*: no longer an administrator, but every other change is still granted.
    let h = hits(json!([allow_all, {"Effect":"Deny","Action":"iam:*","Resource":"*"}]));
    assert!(!rules(&h).contains(&"iam.admin-equivalent"), "{h:?}");
    assert_eq!(
        severity_of(&h, "iam.allow-all-but-denied"),
        Some(Severity::High),
        "{h:?}"
    );

    // A Deny that leaves IAM permissions management: the holder can undo it.
    let h = hits(json!([allow_all, {"Effect":"Deny","Action":"s3:DeleteBucket","Resource":"*"}]));
    let admin = h.iter().find(|h| h.rule == "iam.admin-equivalent").unwrap();
    assert_eq!(admin.severity, Severity::Critical);
    assert!(
        admin.detail.contains("administrator in effect"),
        "{}",
        admin.detail
    );

    // A conditional Deny cancels nothing.
    let h = hits(
        json!([allow_all, {"Effect":"Deny","NotAction":"iam:Get*","Resource":"*",
        "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]),
    );
    let admin = h.iter().find(|h| h.rule == "iam.admin-equivalent").unwrap();
    assert!(
        admin.detail.contains("full administrator"),
        "{}",
        admin.detail
    );

    // The same across two policies of one user.
    let dump = json!({"UserDetailList":[{"UserName":"u","Arn":"arn:aws:iam::111122223333:user/u",
        "UserPolicyList":[
            {"PolicyName":"all","PolicyDocument":{"Version":"2012-10-17","Statement":[allow_all]}},
            {"PolicyName":"fence","PolicyDocument":{"Version":"2012-10-17","Statement":[
                {"Effect":"Deny","NotAction":"iam:Get*","Resource":"*"}]}}]}]});
    let mut a = Account::new().at_time(super::NOW);
    assert!(a.add_json("dump.json", &dump));
    let findings = assess(&a);
    let ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    assert!(!ids.contains(&"iam.admin-equivalent"), "{findings:#?}");
    assert!(ids.contains(&"iam.allow-all-but-denied"), "{findings:#?}");
    assert!(!ids.contains(&"iam.privilege-escalation"), "{findings:#?}");

    // A Deny whose Resource (or NotResource) covers the Allow's resources removes the grant.
    for deny in [
        json!({"Effect":"Deny","Action":"iam:CreateAccessKey",
               "Resource":"arn:aws:iam::111122223333:user/*"}),
        json!({"Effect":"Deny","Action":"iam:CreateAccessKey",
               "NotResource":"arn:aws:iam::111122223333:user/self"}),
    ] {
        let allow = json!({"Effect":"Allow","Action":"iam:CreateAccessKey",
            "Resource":"arn:aws:iam::111122223333:user/admin"});
        let h = hits(json!([allow, deny]));
        assert!(
            !rules(&h).contains(&"iam.privilege-escalation")
                && !rules(&h).contains(&"iam.credentials-exposure"),
            "{deny}: {h:?}"
        );
    }
    // One that covers only some of them does not.
    let h = hits(json!([
        {"Effect":"Allow","Action":"iam:CreateAccessKey","Resource":"arn:aws:iam::111122223333:user/*"},
        {"Effect":"Deny","Action":"iam:CreateAccessKey","Resource":"arn:aws:iam::111122223333:user/admin"}
    ]));
    assert!(rules(&h).contains(&"iam.privilege-escalation"), "{h:?}");
}

/// A Terraform `aws_iam_policy` attached to no user, group or role is analysed like the same
/// document in a JSON file: its escalation paths are reported for it; an attached one is
/// reported per principal.
#[test]
fn unattached_terraform_policies_get_escalation_findings() {
    let document = json!({"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"iam:CreatePolicyVersion","Resource":"*"}]});
    let mut a = Account::new();
    assert!(a.add_json("p.json", &document));
    let from_json: Vec<String> = assess(&a).into_iter().map(|f| f.rule).collect();
    assert!(
        from_json.contains(&"iam.privilege-escalation".to_owned()),
        "{from_json:?}"
    );

    let tf = format!(
        "resource \"aws_iam_policy\" \"loose\" {{\n  name = \"loose\"\n  policy = <<EOT\n{document}\nEOT\n}}\n"
    );
    let module = tenet_terraform::Module::from_files(&[("main.tf".to_owned(), tf)]);
    let mut a = Account::new();
    a.add_terraform(&module);
    let found: Vec<(String, String)> = assess(&a)
        .into_iter()
        .map(|f| (f.rule, f.subject))
        .collect();
    assert!(
        found.contains(&(
            "iam.privilege-escalation".to_owned(),
            "aws_iam_policy.loose".to_owned()
        )),
        "{found:?}"
    );

    // Attached, it is reported once, for the role that holds it.
    let tf = format!(
        "resource \"aws_iam_policy\" \"loose\" {{\n  name = \"loose\"\n  policy = <<EOT\n{document}\nEOT\n}}\n\
         resource \"aws_iam_role\" \"r\" {{\n  name = \"r\"\n}}\n\
         resource \"aws_iam_role_policy_attachment\" \"a\" {{\n  role = aws_iam_role.r.name\n  policy_arn = aws_iam_policy.loose.arn\n}}\n"
    );
    let module = tenet_terraform::Module::from_files(&[("main.tf".to_owned(), tf)]);
    let mut a = Account::new();
    a.add_terraform(&module);
    let subjects: Vec<String> = assess(&a)
        .into_iter()
        .filter(|f| f.rule == "iam.privilege-escalation")
        .map(|f| f.subject)
        .collect();
    assert_eq!(subjects, ["aws_iam_role.r (r)"], "{subjects:?}");
}

/// Allow + NotAction is near-admin (critical) only for what the holder keeps after its
/// Denies: with everything but iam:Get* denied, no IAM change and no escalation path is left.
#[test]
fn a_deny_narrows_an_allow_with_not_action() {
    let h = hits(json!([
        {"Effect":"Allow","NotAction":"s3:DeleteBucket","Resource":"*"},
        {"Effect":"Deny","NotAction":"iam:Get*","Resource":"*"}
    ]));
    let hit = h.iter().find(|h| h.rule == "iam.allow-not-action").unwrap();
    assert_eq!(hit.severity, Severity::High, "{hit:?}");
    assert!(!hit.title.contains("near-admin"), "{}", hit.title);
    // Without the Deny it is near-admin.
    let h = hits(json!([{"Effect":"Allow","NotAction":"s3:DeleteBucket","Resource":"*"}]));
    let hit = h.iter().find(|h| h.rule == "iam.allow-not-action").unwrap();
    assert_eq!(hit.severity, Severity::Critical, "{hit:?}");
}

/// Actions of an unknown (retired) service give one finding per statement and service, with
/// the actions as evidence; in an AWS managed policy the advice is not to detach it.
#[test]
fn unknown_service_actions_are_grouped() {
    let h = hits(json!([
        {"Effect":"Allow","Action":["elastic-inference:Connect","elastic-inference:Describe",
            "s3:GetObject","gone:Thing"],"Resource":"*"},
        {"Effect":"Allow","Action":"elastic-inference:Other","Resource":"*"}
    ]));
    let unknown: Vec<&Hit> = h
        .iter()
        .filter(|h| h.rule == "iam.unknown-service")
        .collect();
    assert_eq!(unknown.len(), 3, "{unknown:?}");
    let first = unknown
        .iter()
        .find(|h| h.pointer == "/Statement/0/Action" && h.detail.contains("elastic-inference"))
        .unwrap();
    let evidence: std::collections::HashMap<&str, &Value> =
        first.evidence.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(evidence["count"], &json!(2));
    assert_eq!(
        evidence["actions"],
        &json!(["elastic-inference:Connect", "elastic-inference:Describe"])
    );

    let path = super::corpus("cloudsplaining/examples/files/example.json");
    let dump: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut a = Account::new();
    assert!(a.add_json("example.json", &dump));
    let unknown: Vec<Finding> = assess(&a)
        .into_iter()
        .filter(|f| f.rule == "iam.unknown-service")
        .collect();
    // 69 actions of retired services in three AWS managed policies, six services in all.
    let total: u64 = unknown
        .iter()
        .filter_map(|f| f.evidence.get("count")?.as_u64())
        .sum();
    assert_eq!(total, 69, "{unknown:?}");
    assert_eq!(unknown.len(), 8, "{unknown:?}");
    let view_only: Vec<&Finding> = unknown
        .iter()
        .filter(|f| f.subject.ends_with(":policy/job-function/ViewOnlyAccess"))
        .collect();
    assert_eq!(view_only.len(), 1, "{view_only:?}");
    assert_eq!(view_only[0].evidence.get("count"), Some(&json!(4)));
    for f in &unknown {
        let fix = f.remediation.as_deref().unwrap();
        assert!(!fix.contains("detach"), "{fix}");
        assert!(fix.contains("nothing needs doing"), "{fix}");
    }
}

/// Service-linked roles (path `/aws-service-role/`) cannot have their AWS managed policies
/// detached: the escalation advice says the role is service-linked and managed by AWS.
#[test]
fn service_linked_roles_get_no_detach_advice() {
    let path = super::corpus("cloudsplaining/examples/files/example.json");
    let dump: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut a = Account::new();
    assert!(a.add_json("example.json", &dump));
    let findings = assess(&a);
    let linked: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            f.rule == "iam.privilege-escalation" && f.subject.contains(":role/aws-service-role/")
        })
        .collect();
    assert!(!linked.is_empty());
    for f in &linked {
        let fix = f.remediation.as_deref().unwrap();
        assert!(!fix.contains("detach the AWS managed policy"), "{fix}");
        assert!(fix.contains("service-linked role"), "{fix}");
        assert!(fix.contains("managed by AWS"), "{fix}");
    }
    // Other roles holding an AWS managed policy keep the advice to detach it.
    assert!(findings.iter().any(|f| {
        f.rule == "iam.privilege-escalation"
            && !f.subject.contains(":role/aws-service-role/")
            && f.remediation
                .as_deref()
                .is_some_and(|r| r.contains("detach the AWS managed policy"))
    }));
}
