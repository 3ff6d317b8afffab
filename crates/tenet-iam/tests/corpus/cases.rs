//! Field cases from /work/shared/cases/policy-semantics.md.

use serde_json::json;
use tenet_finding::Severity;
use tenet_iam::{Context, Decision, Options, Policy, Request, analyze, evaluate};

fn policy(v: serde_json::Value) -> Policy {
    Policy::from_value("case", &v).unwrap()
}

fn request<'a>(principal: &'a str, action: &'a str, resource: &'a str) -> Request<'a> {
    Request {
        principal,
        action,
        resource,
        context: Context::new(),
    }
}

#[test]
fn f018_not_action_not_resource_with_allow() {
    let statements = [
        json!({"Sid":"S1","Effect":"Allow","NotAction":"s3:DeleteBucket","Resource":"*"}),
        json!({"Sid":"S2","Effect":"Allow","NotAction":"example:NoSuchAction","Resource":"*"}),
        json!({"Sid":"S3","Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::private-bucket/*"}),
        json!({"Sid":"S4","Effect":"Deny","NotAction":"iam:Get*","Resource":"*"}),
    ];
    let me = "arn:aws:iam::111122223333:user/u";
    let allowed: Vec<bool> = statements
        .iter()
        .map(|s| {
            let p = policy(json!({"Version":"2012-10-17","Statement":[s]}));
            evaluate(&request(me, "iam:CreateUser", "*"), &[&p], &[]).is_allowed()
        })
        .collect();
    assert_eq!(allowed, vec![true, true, false, false]);

    // Each statement alone, as the case asks.
    let hits_of = |i: usize| {
        analyze(
            &policy(json!({"Version":"2012-10-17","Statement":[statements[i]]})),
            Options::default(),
        )
    };
    let s1 = hits_of(0);
    assert!(
        s1.iter().any(|h| h.rule == "iam.allow-not-action"
            && h.severity == Severity::Critical
            && h.detail.contains("iam:CreateUser")),
        "{s1:?}"
    );
    assert!(
        hits_of(1)
            .iter()
            .any(|h| h.rule == "iam.admin-equivalent" && h.severity == Severity::Critical)
    );
    let s3 = hits_of(2);
    assert!(
        s3.iter()
            .any(|h| h.rule == "iam.allow-not-resource" && h.severity == Severity::High)
    );
    assert!(!s3.iter().any(|h| h.severity == Severity::Critical));
    let grants = [
        "iam.admin-equivalent",
        "iam.allow-not-action",
        "iam.allow-not-resource",
        "iam.resource-star",
        "iam.permissions-management",
        "iam.credentials-exposure",
    ];
    let s4 = hits_of(3);
    assert!(!s4.iter().any(|h| grants.contains(&h.rule)), "{s4:?}");
    // S4 denies everything except iam:Get*.
    let deny = policy(
        json!({"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}, statements[3]]}),
    );
    assert!(
        !evaluate(
            &request(me, "s3:GetObject", "arn:aws:s3:::b/k"),
            &[&deny],
            &[]
        )
        .is_allowed()
    );
    assert!(evaluate(&request(me, "iam:GetUser", "*"), &[&deny], &[]).is_allowed());
}

#[test]
fn f020_condition_key_case_and_operator_case() {
    let stmt = |cond: serde_json::Value| {
        policy(json!({"Version":"2012-10-17","Statement":[{
        "Effect":"Allow","Principal":{"Service":"logs.example-service.amazonaws.com"},
        "Action":"s3:PutObject","Resource":"arn:aws:s3:::logs/*","Condition":cond}]}))
    };
    let unrestricted = |p: &Policy| {
        analyze(p, Options::default())
            .iter()
            .any(|h| h.rule == "iam.service-principal-unrestricted")
    };
    let a = stmt(json!({"StringEquals":{"AWS:SOURCEACCOUNT":"111122223333"}}));
    let b = stmt(json!({"StringEquals":{"aws:SourceAccount":"111122223333"}}));
    let c = stmt(json!({"stringEquals":{"aws:SourceAccount":"111122223333"}}));
    assert!(!unrestricted(&a));
    assert!(!unrestricted(&b));
    assert!(
        analyze(&c, Options::default())
            .iter()
            .any(|h| h.rule == "iam.unknown-condition-operator")
    );
    assert!(
        !analyze(&a, Options::default())
            .iter()
            .any(|h| h.rule == "iam.unknown-condition-operator")
    );

    let caller = "arn:aws:iam::111122223333:user/u";
    let tagged = |p: &Policy| {
        let mut r = request(caller, "s3:PutObject", "arn:aws:s3:::logs/x");
        r.context = Context::new().with("aws:PrincipalTag/team", "payments");
        evaluate(&r, &[p], &[]).is_allowed()
    };
    let d = policy(
        json!({"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
        "Condition":{"StringEquals":{"aws:PrincipalTag/team":"Payments"}}}]}),
    );
    let e = policy(
        json!({"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*",
        "Condition":{"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"Payments"}}}]}),
    );
    assert!(!tagged(&d));
    assert!(tagged(&e));
}

#[test]
fn f021_explicit_deny_wins_across_sources() {
    let user = "arn:aws:iam::111122223333:user/user-A";
    let identity = policy(
        json!({"Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/secret/*"}]}),
    );
    let bucket = policy(
        json!({"Statement":[{"Effect":"Allow","Principal":{"AWS":user},"Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}),
    );
    let secret = evaluate(
        &request(user, "s3:GetObject", "arn:aws:s3:::reports/secret/q1.csv"),
        &[&identity],
        &[&bucket],
    );
    assert!(matches!(secret, Decision::ExplicitDeny(_)));
    assert!(
        evaluate(
            &request(user, "s3:GetObject", "arn:aws:s3:::reports/public/q1.csv"),
            &[&identity],
            &[&bucket]
        )
        .is_allowed()
    );

    let second = policy(json!({"Statement":[
        {"Effect":"Allow","Action":"s3:*","Resource":"*"},
        {"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}]}));
    assert!(matches!(
        evaluate(
            &request(user, "s3:PutObject", "arn:aws:s3:::reports/x"),
            &[&second],
            &[]
        ),
        Decision::ExplicitDeny(_)
    ));
    assert!(
        evaluate(
            &request(user, "s3:GetObject", "arn:aws:s3:::reports/x"),
            &[&second],
            &[]
        )
        .is_allowed()
    );
}
