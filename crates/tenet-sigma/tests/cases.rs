//! Field cases from the detection-engine case list, named after their ids.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};
use tenet_sigma::{Engine, RuleSet, Source};

fn rule(id: &str, logsource: &str, detection: &str) -> String {
    format!(
        "title: {id}\nid: {id}\nlogsource: {logsource}\ndetection:\n{detection}\nlevel: medium\n"
    )
}

fn fires(engine: &mut Engine, event: &Value, source: Source) -> Vec<String> {
    let mut ids: Vec<String> = engine
        .observe(event, source, 0)
        .into_iter()
        .map(|m| m.rule_id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn f030_contains_all_and_list_linkage() {
    let text = rule(
        "f030",
        "{product: windows, category: process_creation}",
        "  sel:\n    CommandLine|contains|all: [' -enc ', 'hidden']\n  filter:\n    \
         - User|contains|all: ['SERVICE R', 'SEAU']\n    - SourceIp|startswith: '0:0:'\n  \
         condition: sel and not filter",
    );
    let set = RuleSet::from_yaml("f030.yml", &text);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let mut engine = Engine::new(set);
    let events = [
        json!({"CommandLine":"powershell -w hidden -enc AAAA","User":"user-A","SourceIp":"10.0.0.5"}),
        json!({"CommandLine":"powershell -enc AAAA","User":"user-A","SourceIp":"10.0.0.5"}),
        json!({"CommandLine":"POWERSHELL -W HIDDEN -ENC AAAA","User":"NT SERVICE RX","SourceIp":"10.0.0.5"}),
        json!({"CommandLine":"powershell -w hidden -enc AAAA","User":"SERVICE RESEAU","SourceIp":"10.0.0.5"}),
    ];
    let got: Vec<bool> = events
        .iter()
        .map(|e| !fires(&mut engine, e, Source::Unknown).is_empty())
        .collect();
    assert_eq!(got, vec![true, false, true, false]);

    let single = rule(
        "f030-single",
        "{product: windows}",
        "  sel:\n    Field|contains|all: 'x'\n  condition: sel",
    );
    let set = RuleSet::from_yaml("single.yml", &single);
    assert!(set.is_empty());
    assert_eq!(set.problems().len(), 1);
    assert_eq!(set.problems()[0].rule_id.as_deref(), Some("f030-single"));
    assert!(
        set.problems()[0].reason.contains("|all"),
        "{}",
        set.problems()[0]
    );
}

#[test]
fn f032_null_missing_and_empty() {
    let text = rule(
        "f032",
        "{product: windows, category: process_creation}",
        "  sel: {Image|endswith: '\\svchost.exe'}\n  filter: {CommandLine: null}\n  \
         condition: sel and not filter",
    );
    let set = RuleSet::from_yaml("f032.yml", &text);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let mut engine = Engine::new(set);
    let image = "C:\\Windows\\System32\\svchost.exe";
    let events = [
        json!({"Image": image}),
        json!({"Image": image, "CommandLine": null}),
        json!({"Image": image, "CommandLine": ""}),
        json!({"Image": image, "CommandLine": "svchost.exe -k netsvcs"}),
        json!({"Image": image, "CommandLine": "null"}),
    ];
    let got: Vec<bool> = events
        .iter()
        .map(|e| !fires(&mut engine, e, Source::Unknown).is_empty())
        .collect();
    assert_eq!(got, vec![false, false, true, true, true]);

    let mixed = rule(
        "f032-list",
        "{product: windows}",
        "  sel:\n    CommandLine: [null, 'x']\n  condition: sel",
    );
    let set = RuleSet::from_yaml("mixed.yml", &mixed);
    assert!(set.is_empty());
    assert_eq!(set.problems()[0].construct, "null in a value list");

    let missing = rule(
        "f032-missing",
        "{product: windows}",
        "  sel:\n    Parent|contains: 'x'\n  condition: not sel",
    );
    let set = RuleSet::from_yaml("missing.yml", &missing);
    assert!(set.problems().is_empty());
    let mut engine = Engine::new(set);
    assert_eq!(
        fires(&mut engine, &events[0], Source::Unknown),
        vec!["f032-missing"]
    );
}

const F033_RULES: &str = r#"
title: Bucket policy changed
id: f033-bucket-policy-changed
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: s3.amazonaws.com, eventName: PutBucketPolicy}
  failed: {errorCode|exists: true}
  condition: sel and not failed
level: high
---
title: Denied attempt to change bucket policy
id: f033-bucket-policy-denied
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: s3.amazonaws.com, eventName: PutBucketPolicy, errorCode: AccessDenied}
  condition: sel
level: low
---
title: Successful console login
id: f033-console-login-success
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: signin.amazonaws.com, eventName: ConsoleLogin}
  failed_code: {errorCode|exists: true}
  failed_response: {responseElements.ConsoleLogin: Failure}
  condition: sel and not 1 of failed_*
level: informational
---
title: Failed console login
id: f033-console-login-failure
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: signin.amazonaws.com, eventName: ConsoleLogin}
  failed_code: {errorCode|exists: true}
  failed_response: {responseElements.ConsoleLogin: Failure}
  condition: sel and 1 of failed_*
level: low
---
title: Instance launched
id: f033-instance-launched
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: ec2.amazonaws.com, eventName: RunInstances}
  failed: {errorCode|exists: true}
  condition: sel and not failed
level: medium
"#;

#[test]
fn f033_cloudtrail_calls_that_failed_or_did_not_take_effect() {
    let set = RuleSet::from_yaml("f033.yml", F033_RULES);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    assert_eq!(set.len(), 5);
    let mut engine = Engine::new(set);
    let events = [
        json!({"eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","awsRegion":"us-east-1",
               "userIdentity":{"arn":"arn:aws:iam::111122223333:user/user-A"},
               "requestParameters":{"bucketName":"example-bucket"},
               "errorCode":"AccessDenied","errorMessage":"Access Denied"}),
        json!({"eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy",
               "userIdentity":{"arn":"arn:aws:iam::111122223333:user/user-A"},
               "requestParameters":{"bucketName":"example-bucket"}}),
        json!({"eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin",
               "userIdentity":{"type":"IAMUser","userName":"user-B"},
               "responseElements":{"ConsoleLogin":"Failure"},"errorMessage":"Failed authentication"}),
        json!({"eventSource":"ec2.amazonaws.com","eventName":"RunInstances",
               "userIdentity":{"arn":"arn:aws:iam::111122223333:user/user-A"},
               "errorCode":"Client.DryRunOperation"}),
    ];
    for e in &events {
        assert_eq!(Source::recognise(e), Source::CloudTrail, "{e}");
    }
    let got: Vec<Vec<String>> = events
        .iter()
        .map(|e| fires(&mut engine, e, Source::recognise(e)))
        .collect();
    assert_eq!(
        got,
        vec![
            vec!["f033-bucket-policy-denied".to_owned()],
            vec!["f033-bucket-policy-changed".to_owned()],
            vec!["f033-console-login-failure".to_owned()],
            Vec::<String>::new(),
        ]
    );
}
