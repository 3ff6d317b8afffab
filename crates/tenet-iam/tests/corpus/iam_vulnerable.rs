//! BishopFox iam-vulnerable: every privilege-escalation path found for its user or role;
//! tool-testing `fn*` flagged, `fp*` not flagged.

use std::collections::BTreeMap;
use std::path::Path;

use tenet_finding::Finding;
use tenet_iam::Account;
use tenet_terraform::Module;

fn module(dir: &Path) -> (Module, Vec<(String, String)>) {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tf") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, std::fs::read_to_string(&p).unwrap()));
        }
    }
    files.sort();
    (Module::from_files(&files), files)
}

fn assess(module: &Module) -> Vec<Finding> {
    let mut a = Account::new().at_time(super::NOW);
    a.add_terraform(module);
    a.assess().findings
}

/// Users and roles declared in one file, as findings name them: the Terraform address and,
/// where it is a literal, the `name` attribute.
fn principals_of(module: &Module, file: &str) -> Vec<String> {
    module
        .blocks
        .iter()
        .filter(|b| b.file == file && matches!(b.kind.as_str(), "aws_iam_user" | "aws_iam_role"))
        .map(|b| match b.str_attr("name") {
            Some(n) if !n.contains("${") => format!("{} ({n})", b.address),
            _ => b.address.clone(),
        })
        .collect()
}

/// iam-vulnerable's technique (file name) → Tenet method id.
fn method_for(technique: &str) -> &'static str {
    match technique {
        "AssumeRole" => "assume-role-chain",
        "cloudFormationUpdateStack" => "cloudformation-update-stack",
        "codeBuildCreateProjectPassRole" => "pass-role-to-codebuild",
        "ec2InstanceConnect" => "ec2-instance-connect",
        "sageMakerCreateNotebookPassRole" => "pass-role-to-sagemaker-notebook",
        "sageMakerCreatePresignedNotebookURL" => "sagemaker-presigned-notebook-url",
        "sageMakerCreateProcessingJob" => "pass-role-to-sagemaker-processing",
        "sageMakerCreateTrainingJob" => "pass-role-to-sagemaker-training",
        "ssmSendCommand" => "ssm-send-command",
        "ssmStartSession" => "ssm-start-session",
        "CreateNewPolicyVersion" => "create-policy-version",
        "SetExistingDefaultPolicyVersion" => "set-default-policy-version",
        "CreateEC2WithExistingIP" => "pass-role-to-ec2",
        "CreateAccessKey" => "create-access-key",
        "CreateLoginProfile" => "create-login-profile",
        "UpdateLoginProfile" => "update-login-profile",
        "AttachUserPolicy" => "attach-user-policy",
        "AttachGroupPolicy" => "attach-group-policy",
        "AttachRolePolicy" => "attach-role-policy",
        "PutUserPolicy" => "put-user-policy",
        "PutGroupPolicy" => "put-group-policy",
        "PutRolePolicy" => "put-role-policy",
        "AddUserToGroup" => "add-user-to-group",
        "UpdatingAssumeRolePolicy" => "update-assume-role-policy",
        "PassExistingRoleToNewLambdaThenInvoke" => "pass-role-to-lambda-invoke",
        "PassRoleToNewLambdaThenTriggerWithNewDynamo" => "pass-role-to-lambda-event-source",
        "EditExistingLambdaFunctionWithRole" => "update-lambda-code",
        "PassExistingRoleToNewGlueDevEndpoint" => "pass-role-to-glue-dev-endpoint",
        "UpdateExistingGlueDevEndpoint" => "update-glue-dev-endpoint",
        "PassExistingRoleToCloudFormation" => "pass-role-to-cloudformation",
        "PassExistingRoleToNewDataPipeline" => "pass-role-to-data-pipeline",
        other => panic!("no method mapped for iam-vulnerable technique {other}"),
    }
}

fn methods_by_subject(findings: &[Finding]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in findings {
        let method = match f.rule.as_str() {
            "iam.privilege-escalation" => f
                .evidence
                .get("methods")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect(),
            "iam.admin-equivalent" => vec!["admin".to_owned()],
            _ => continue,
        };
        out.entry(f.subject.clone()).or_default().extend(method);
    }
    out
}

#[test]
fn iam_vulnerable_paths() {
    let dir = super::corpus("iam-vulnerable/modules/free-resources/privesc-paths");
    let (module, files) = module(&dir);
    let by_subject = methods_by_subject(&assess(&module));
    let (mut passed, mut total) = (0, 0);
    for (file, _) in &files {
        let Some(stem) = file
            .strip_prefix("privesc")
            .and_then(|f| f.strip_suffix(".tf"))
        else {
            continue;
        };
        let technique = stem
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches('-');
        let method = method_for(technique);
        total += 1;
        let principals = principals_of(&module, file);
        let found = principals.iter().any(|p| {
            by_subject
                .get(p)
                .is_some_and(|m| m.iter().any(|m| m == method))
        });
        if found {
            passed += 1;
        } else {
            eprintln!("{file}: {method} not found for {principals:?}");
        }
    }
    println!("iam-vulnerable paths: {passed}/{total}");
    assert_eq!(total, 31);
    assert!(passed >= PATHS_FLOOR);
}

const PATHS_FLOOR: usize = 31;

#[test]
fn iam_vulnerable_traps() {
    let dir = super::corpus("iam-vulnerable/modules/free-resources/tool-testing");
    let (module, files) = module(&dir);
    let by_subject = methods_by_subject(&assess(&module));
    let (mut passed, mut total) = (0, 0);
    for (file, _) in &files {
        let must_flag = file.starts_with("fn");
        if !must_flag && !file.starts_with("fp") {
            continue;
        }
        total += 1;
        let principals = principals_of(&module, file);
        let flagged = principals.iter().any(|p| by_subject.contains_key(p));
        if flagged == must_flag {
            passed += 1;
        } else {
            eprintln!(
                "{file}: flagged={flagged} {:?}",
                principals
                    .iter()
                    .map(|p| by_subject.get(p))
                    .collect::<Vec<_>>()
            );
        }
    }
    println!("iam-vulnerable traps: {passed}/{total}");
    assert_eq!(total, 9);
    assert!(passed >= TRAPS_FLOOR);
}

const TRAPS_FLOOR: usize = 9;
