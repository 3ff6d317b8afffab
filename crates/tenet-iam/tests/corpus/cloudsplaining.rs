//! Cloudsplaining's published scan report: per policy document and risk class, the flagged
//! actions (or services, or escalation techniques).

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use tenet_iam::{Hit, Options, Policy, analyze};

/// Cloudsplaining's technique names for Tenet's method ids (only methods Cloudsplaining knows
/// are compared).
fn technique(method: &str) -> Option<&'static str> {
    Some(match method {
        "create-policy-version" => "CreateNewPolicyVersion",
        "set-default-policy-version" => "SetExistingDefaultPolicyVersion",
        "pass-role-to-ec2" => "CreateEC2WithExistingIP",
        "create-access-key" => "CreateAccessKey",
        "create-login-profile" => "CreateLoginProfile",
        "update-login-profile" => "UpdateLoginProfile",
        "attach-user-policy" => "AttachUserPolicy",
        "attach-group-policy" => "AttachGroupPolicy",
        "attach-role-policy" => "AttachRolePolicy",
        "put-user-policy" => "PutUserPolicy",
        "put-group-policy" => "PutGroupPolicy",
        "put-role-policy" => "PutRolePolicy",
        "add-user-to-group" => "AddUserToGroup",
        "update-assume-role-policy" => "UpdateRolePolicyToAssumeIt",
        "pass-role-to-lambda-invoke" => "PassExistingRoleToNewLambdaThenInvoke",
        "pass-role-to-lambda-new-dynamo" => "PassExistingRoleToNewLambdaThenTriggerWithNewDynamo",
        "pass-role-to-lambda-event-source" => {
            "PassExistingRoleToNewLambdaThenTriggerWithExistingDynamo"
        }
        "pass-role-to-glue-dev-endpoint" => "PassExistingRoleToNewGlueDevEndpoint",
        "update-glue-dev-endpoint" => "UpdateExistingGlueDevEndpoint",
        "pass-role-to-cloudformation" => "PassExistingRoleToCloudFormation",
        "pass-role-to-data-pipeline" => "PassExistingRoleToNewDataPipeline",
        "update-lambda-code" => "EditExistingLambdaFunctionWithRole",
        _ => return None,
    })
}

fn evidence_list(e: &Map<String, Value>, key: &str) -> Vec<String> {
    e.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
        .collect()
}

/// Tenet's findings read as Cloudsplaining's classes. The published report counts the grants
/// of statements with Resource "*" whether or not they have a Condition (AWSCloudTrailFullAccess:
/// iam:PassRole under iam:PassedToService; AmazonRDSFullAccess: iam:CreateServiceLinkedRole
/// under iam:AWSServiceName; AWSCodeDeployFullAccess: codestar-notifications actions under
/// NotificationsForResource), as Cloudsplaining did before conditional statements were left
/// out by default; so a finding counts by the Resource of the statement it is about. A finding
/// stands for its own rule and the classes it implies.
fn classes(policy: &Policy, hits: &[Hit]) -> Vec<(&'static str, BTreeSet<String>)> {
    // Whether the statement a finding is about names Resource "*".
    let star = |pointer: &str| {
        policy
            .statements
            .iter()
            .any(|s| s.pointer == pointer && s.resource_is_star())
    };
    let parts: Vec<(String, Map<String, Value>, bool)> = hits
        .iter()
        .flat_map(|h| {
            let star = star(&h.pointer);
            super::classes_of(h)
                .into_iter()
                .map(move |(r, e)| (r, e, star))
        })
        .collect();
    let collect = |rule: &str, key: &str, keep: &dyn Fn(&Map<String, Value>, bool) -> bool| {
        parts
            .iter()
            .filter(|(r, e, star)| r == rule && keep(e, *star))
            .flat_map(|(_, e, _)| evidence_list(e, key))
            .collect::<BTreeSet<String>>()
    };
    let esc: BTreeSet<String> = collect("iam.privilege-escalation", "methods", &|_, _| true)
        .iter()
        .filter_map(|m| technique(m))
        .map(str::to_ascii_lowercase)
        .collect();
    let exfil = collect("iam.data-exfiltration", "actions", &|_, _| true);
    let mut infra = collect("iam.resource-star", "actions", &|_, _| true);
    infra.extend(exfil.iter().cloned());
    vec![
        ("PrivilegeEscalation", esc),
        ("DataExfiltration", exfil),
        (
            "ResourceExposure",
            collect("iam.permissions-management", "actions", &|_, star| star),
        ),
        (
            "ServiceWildcard",
            collect("iam.service-wildcard", "services", &|_, _| true),
        ),
        (
            "CredentialsExposure",
            collect("iam.credentials-exposure", "actions", &|_, star| star),
        ),
        ("InfrastructureModification", infra),
    ]
}

fn expected(entry: &Value, class: &str) -> BTreeSet<String> {
    entry[class]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::Object(o) => o["type"].as_str().unwrap().to_ascii_lowercase(),
            v => v.as_str().unwrap().to_ascii_lowercase(),
        })
        .collect()
}

#[test]
fn cloudsplaining_risk_classes() {
    let path = super::corpus("cloudsplaining/examples/files/iam-results-example.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let catalogue = tenet_iam::catalogue::catalogue();
    let (mut passed, mut total) = (0, 0);
    for section in [
        "aws_managed_policies",
        "customer_managed_policies",
        "inline_policies",
    ] {
        for entry in report[section].as_object().unwrap().values() {
            let doc = entry.get("PolicyDocument").cloned().unwrap_or_else(|| {
                let versions = entry["PolicyVersionList"].as_array().unwrap();
                versions
                    .iter()
                    .find(|v| v["IsDefaultVersion"].as_bool() != Some(false))
                    .unwrap()["Document"]
                    .clone()
            });
            let policy = Policy::from_value("c", &doc).unwrap();
            let hits = analyze(
                &policy,
                Options {
                    now: Some(super::NOW),
                    escalation: true,
                },
            );
            for (class, got) in classes(&policy, &hits) {
                total += 1;
                // Actions AWS has since retired are not in today's catalogue; they cannot be
                // expected of it.
                let want: BTreeSet<String> = expected(entry, class)
                    .into_iter()
                    .filter(|a| !a.contains(':') || catalogue.action(a).is_some())
                    .collect();
                if got == want {
                    passed += 1;
                } else {
                    let missing: Vec<_> = want.difference(&got).collect();
                    let extra: Vec<_> = got.difference(&want).collect();
                    eprintln!(
                        "{} {class}: missing {missing:?} extra {extra:?}",
                        entry["PolicyName"]
                    );
                }
            }
        }
    }
    println!("cloudsplaining risk classes: {passed}/{total}");
    assert!(passed >= FLOOR);
}

const FLOOR: usize = 151;

#[test]
fn cloudsplaining_account_dump_assesses() {
    let path = super::corpus("cloudsplaining/examples/files/example.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut account = tenet_iam::Account::new().at_time(super::NOW);
    assert!(account.add_json("example.json", &v));
    let out = account.assess();
    assert!(out.findings.iter().any(|f| {
        f.rule == "iam.privilege-escalation"
            && f.location
                .pointer
                .as_deref()
                .is_some_and(|p| p.starts_with("/UserDetailList/"))
    }));
    assert!(
        out.findings
            .iter()
            .any(|f| f.location.pointer.as_deref().is_some_and(
                |p| p.contains("/RolePolicyList/") && p.contains("/PolicyDocument/Statement")
            ))
    );
}
