//! Cedar's own integration corpus (cedar-policy/cedar-integration-tests), run through the
//! generic path: the validation verdict, and per request the decision, the determining policy
//! ids and the erroring policy ids. Each request is also decided by Cedar directly over the
//! whole set, so the scope index is checked against the unindexed answer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;
use tenet_policy::{Decision, RawEvaluator};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/cedar-integration-tests"
);

/// Every test file under `tests/`, sorted.
fn test_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in fs::read_dir(root.join("tests")).expect("corpus tests/ folder is missing") {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut ids: Vec<String> = value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Cedar's answer over the whole (unindexed) policy set: decision, reasons, erroring ids.
fn cedar_reference(
    schema: &str,
    policies: &str,
    entities: &str,
    request: &Value,
) -> (bool, Vec<String>, Vec<String>) {
    use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request, Schema};
    let schema = Schema::from_cedarschema_str(schema).unwrap().0;
    let set = PolicySet::from_str(policies).unwrap();
    let entities = Entities::from_json_str(entities, Some(&schema)).unwrap();
    let uid = |f: &str| EntityUid::from_json(request[f].clone()).unwrap();
    let action = uid("action");
    let context = Context::from_json_value(request["context"].clone(), Some((&schema, &action)));
    let request = Request::new(
        uid("principal"),
        action,
        uid("resource"),
        context.unwrap(),
        Some(&schema),
    )
    .unwrap();
    let response = Authorizer::new().is_authorized(&request, &set, &entities);
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    reasons.sort();
    let mut errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|cedar_policy::AuthorizationError::PolicyEvaluationError(e)| e.policy_id().to_string())
        .collect();
    errors.sort();
    (
        response.decision() == cedar_policy::Decision::Allow,
        reasons,
        errors,
    )
}

#[derive(Default)]
struct Tally {
    passed: usize,
    total: usize,
}

#[test]
fn cedar_integration_corpus() {
    let root = Path::new(CORPUS);
    assert!(root.is_dir(), "corpus missing at {CORPUS}");
    let mut per_folder: BTreeMap<String, Tally> = BTreeMap::new();
    let mut validation = Tally::default();
    let mut failures = Vec::new();

    for file in test_files(root) {
        let folder = file.parent().unwrap().file_name().unwrap();
        let folder = folder.to_string_lossy().into_owned();
        let test: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        let read = |key: &str| fs::read_to_string(root.join(test[key].as_str().unwrap())).unwrap();
        let (schema, policies, entities) = (read("schema"), read("policies"), read("entities"));
        let evaluator = RawEvaluator::new(&schema, &policies, &entities)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));

        validation.total += 1;
        let validates = evaluator.validate().is_ok();
        if validates == test["shouldValidate"].as_bool().unwrap() {
            validation.passed += 1;
        } else {
            failures.push(format!("{}: validation gave {validates}", file.display()));
        }

        for request in test["requests"].as_array().unwrap() {
            let tally = per_folder.entry(folder.clone()).or_default();
            tally.total += 1;
            let got = evaluator.explain(request);
            let expected_allow = request["decision"].as_str().unwrap() == "allow";
            let expected_reasons = sorted_strings(&request["reason"]);
            let expected_errors = sorted_strings(&request["errors"]);
            let reference = cedar_reference(&schema, &policies, &entities, request);

            let ok = got.decision.is_allowed() == expected_allow
                && got.decision.reasons() == expected_reasons.as_slice()
                && got.errored_policies == expected_errors
                && reference == (expected_allow, expected_reasons, expected_errors);
            if ok {
                tally.passed += 1;
            } else {
                failures.push(format!(
                    "{} \"{}\": got {:?} (errored {:?}), cedar {:?}",
                    file.display(),
                    request["description"].as_str().unwrap_or_default(),
                    got.decision,
                    got.errored_policies,
                    reference
                ));
            }
            // A default deny carries no reasons and no errors.
            if let Decision::Deny { policies, errors } = &got.decision
                && policies.is_empty()
            {
                assert!(errors.is_empty() || !got.errored_policies.is_empty());
            }
        }
    }

    let mut passed = 0;
    let mut total = 0;
    for (folder, tally) in &per_folder {
        println!(
            "cedar-integration-tests {folder}: {}/{} requests passed",
            tally.passed, tally.total
        );
        passed += tally.passed;
        total += tally.total;
    }
    println!("cedar-integration-tests requests: {passed}/{total} passed");
    println!(
        "cedar-integration-tests validation: {}/{} passed",
        validation.passed, validation.total
    );
    for failure in &failures {
        println!("FAILED {failure}");
    }
    // The corpus holds 22 policy sets and 74 requests; all must agree.
    assert_eq!(
        total, 74,
        "request count changed: the corpus is not the expected one"
    );
    assert_eq!(validation.total, 22);
    assert_eq!(passed, 74, "{failures:#?}");
    assert_eq!(validation.passed, 22, "{failures:#?}");
}
