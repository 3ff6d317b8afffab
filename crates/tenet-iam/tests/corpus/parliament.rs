//! Parliament's unit-test policies: the exact set of finding ids per policy.

use std::collections::BTreeSet;

use tenet_iam::{Options, Policy, analyze};

/// Tenet rule → Parliament id. `community` ids exist only with Parliament's community
/// auditors enabled.
fn parliament_id(rule: &str, community: bool) -> Option<&'static str> {
    Some(match rule {
        "iam.policy-malformed" => "MALFORMED",
        "iam.duplicate-sid" => "DUPLICATE_SID",
        "iam.invalid-sid" => "INVALID_SID",
        "iam.unknown-action" => "UNKNOWN_ACTION",
        "iam.unknown-service" => "UNKNOWN_PREFIX",
        "iam.unknown-condition-key" => "UNKNOWN_CONDITION_FOR_ACTION",
        "iam.condition-type-mismatch" => "MISMATCHED_TYPE",
        "iam.condition-type-loose" => "MISMATCHED_TYPE_BUT_USABLE",
        "iam.unknown-condition-operator" => "UNKNOWN_OPERATOR",
        "iam.mfa-condition-pattern" => "BAD_PATTERN_FOR_MFA",
        "iam.invalid-arn" => "INVALID_ARN",
        "iam.resource-mismatch" => "RESOURCE_MISMATCH",
        "iam.resource-effectively-star" => "RESOURCE_EFFECTIVELY_STAR",
        "iam.resource-star" => "RESOURCE_STAR",
        "iam.resource-policy-escalation" => "RESOURCE_POLICY_PRIVILEGE_ESCALATION",
        "iam.credentials-exposure" if community => "CREDENTIALS_EXPOSURE",
        "iam.permissions-management" if community => "PERMISSIONS_MANAGEMENT_ACTIONS",
        "iam.privilege-escalation" if community => "PRIVILEGE_ESCALATION",
        _ => return None,
    })
}

#[test]
fn parliament_findings() {
    let path = super::corpus("parliament/parliament-test-cases.json");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    let mut passed = 0;
    for (i, case) in cases.iter().enumerate() {
        let community =
            case["analyze_options"]["include_community_auditors"].as_bool() == Some(true);
        let want: BTreeSet<String> = case["expected_finding_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let got: BTreeSet<String> =
            match Policy::from_text("case", case["policy"].as_str().unwrap()) {
                Err(_) => BTreeSet::from(["MALFORMED_JSON".to_owned()]),
                Ok(p) => analyze(
                    &p,
                    Options {
                        now: Some(super::NOW),
                        escalation: true,
                    },
                )
                .iter()
                .flat_map(super::classes_of)
                .filter_map(|(rule, _)| parliament_id(&rule, community))
                .map(str::to_owned)
                .collect(),
            };
        if got == want {
            passed += 1;
        } else {
            eprintln!(
                "parliament case {i} {}: want {want:?} got {got:?}",
                case["test"]
            );
        }
    }
    println!("parliament findings: {passed}/{}", cases.len());
    assert_eq!(cases.len(), 57);
    assert!(passed >= FLOOR, "parliament findings fell to {passed}");
}

const FLOOR: usize = 54;
