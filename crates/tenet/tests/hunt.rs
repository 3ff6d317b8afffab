//! `tenet hunt` from the command line: the real binary over CloudTrail `Records` documents,
//! JSON lines, gzip, and inputs it cannot use, with its output and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::tenet;

const RULES: &str = r#"
title: Bucket policy changed
id: ct-bucket-policy
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: s3.amazonaws.com, eventName: PutBucketPolicy}
  condition: sel
level: medium
tags: [attack.impact, attack.t1485]
---
title: Okta user session
id: okta-session
logsource: {product: okta, service: okta}
detection:
  sel: {eventType: user.session.start}
  condition: sel
level: low
---
title: Not supported
id: bad-modifier
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName|nosuch: x}
  condition: sel
"#;

fn ct(name: &str) -> Value {
    json!({"eventVersion": "1.08", "eventSource": "s3.amazonaws.com", "eventName": name,
           "awsRegion": "us-east-1", "eventTime": "2024-01-01T00:00:00Z",
           "userIdentity": {"arn": "arn:aws:iam::111122223333:user/alice"}})
}

fn okta() -> Value {
    json!({"eventType": "user.session.start", "actor": {"id": "00u1"},
           "published": "2024-01-01T00:00:00Z", "outcome": {"result": "SUCCESS"}})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn hunt(dir: &Path, args: &[&str]) -> Output {
    tenet()
        .current_dir(dir)
        .args(["hunt", "--rules", "rules.yml"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let records = json!({"Records": [ct("GetObject"), ct("PutBucketPolicy")]});
    std::fs::write(
        dir.path().join("trail.json"),
        serde_json::to_string_pretty(&records).unwrap(),
    )
    .unwrap();
    let lines = format!(
        "{}\n{}\n\n{}\n",
        ct("ListBuckets"),
        okta(),
        ct("PutBucketPolicy")
    );
    std::fs::write(dir.path().join("mixed.jsonl"), &lines).unwrap();
    std::fs::write(dir.path().join("mixed.jsonl.gz"), gzip(lines.as_bytes())).unwrap();
    dir
}

#[test]
fn records_lines_and_gzip_in_text_and_json() {
    let dir = setup();
    let out = hunt(dir.path(), &["trail.json", "mixed.jsonl", "mixed.jsonl.gz"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "Tenet hunt: 2 rule(s) (1 not loaded), 8 event(s) (cloudtrail 6, okta 2), 5 hit(s)"
        ),
        "{text}"
    );
    assert!(text.contains("MEDIUM   ct-bucket-policy Bucket policy changed [attack.impact, attack.t1485]\n           at trail.json /Records/1 (cloudtrail)"), "{text}");
    assert!(text.contains("at mixed.jsonl:4 (cloudtrail)"), "{text}");
    assert!(
        text.contains(
            "LOW      okta-session Okta user session\n           at mixed.jsonl.gz:2 (okta)"
        ),
        "{text}"
    );
    assert!(
        text.contains("RULES NOT LOADED (1)\n  rules.yml rule bad-modifier: modifier |nosuch"),
        "{text}"
    );
    assert!(
        !stderr(&out).contains("hunting"),
        "no progress bar on a pipe"
    );

    let out = hunt(
        dir.path(),
        &["--format", "json", "trail.json", "mixed.jsonl.gz"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["rules"], 2);
    assert_eq!(v["events"], json!({"cloudtrail": 4, "okta": 1}));
    let hits: Vec<(String, String)> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let at = &h["event"];
            let place = match (at["line"].as_u64(), at["pointer"].as_str()) {
                (Some(l), _) => format!("{}:{l}", at["file"].as_str().unwrap()),
                (None, Some(p)) => format!("{} {p}", at["file"].as_str().unwrap()),
                (None, None) => at["file"].as_str().unwrap().to_owned(),
            };
            (h["rule_id"].as_str().unwrap().to_owned(), place)
        })
        .collect();
    let expect = |r: &str, p: &str| (r.to_owned(), p.to_owned());
    assert_eq!(
        hits,
        vec![
            expect("ct-bucket-policy", "trail.json /Records/1"),
            expect("okta-session", "mixed.jsonl.gz:2"),
            expect("ct-bucket-policy", "mixed.jsonl.gz:4"),
        ]
    );
    assert_eq!(v["hits"][0]["level"], "medium");
    assert_eq!(
        v["hits"][0]["attack"],
        json!(["attack.impact", "attack.t1485"])
    );
    assert_eq!(v["rule_problems"][0]["construct"], "modifier |nosuch");
}

#[test]
fn inputs_it_cannot_use_fail_the_run_and_are_named() {
    let dir = setup();
    // A file that is not JSON, one that does not exist: exit 2, each named on stderr.
    std::fs::write(dir.path().join("notes.txt"), "hello\nworld\n").unwrap();
    let out = hunt(dir.path(), &["trail.json", "notes.txt", "missing.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: notes.txt: neither a JSON document nor JSON lines"),
        "{err}"
    );
    assert!(err.contains("error: missing.json: unreadable"), "{err}");
    // The usable input was still hunted.
    assert!(stdout(&out).contains("at trail.json /Records/1"));

    // A truncated gzip: the events before the cut are hunted, the cut is an error.
    let mut lines = String::new();
    for i in 0..3_000 {
        let name = if i % 2 == 0 {
            "PutBucketPolicy"
        } else {
            "GetObject"
        };
        lines.push_str(&format!("{}\n", ct(name)));
    }
    let whole = gzip(lines.as_bytes());
    std::fs::write(dir.path().join("cut.jsonl.gz"), &whole[..whole.len() / 2]).unwrap();
    let out = hunt(dir.path(), &["--format", "json", "cut.jsonl.gz"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let events = v["events"]["cloudtrail"].as_u64().unwrap();
    assert!(events > 100 && events < 3_000, "{events}");
    assert_eq!(
        v["hits"].as_array().unwrap().len() as u64,
        events.div_ceil(2)
    );
    assert!(
        stderr(&out).contains(&format!(
            "error: cut.jsonl.gz: bad or truncated gzip data after {events} event(s)"
        )),
        "{}",
        stderr(&out)
    );

    // A byte order mark is accepted; nesting past the limit is said as such.
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(
        json!({"Records": [ct("PutBucketPolicy")]})
            .to_string()
            .as_bytes(),
    );
    std::fs::write(dir.path().join("bom.json"), bom).unwrap();
    let deep = format!("{}{}", "[".repeat(1_000), "]".repeat(1_000));
    std::fs::write(dir.path().join("deep.json"), deep).unwrap();
    let out = hunt(dir.path(), &["bom.json", "deep.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("at bom.json /Records/0"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("error: deep.json: not JSON: nested deeper than 128 levels"),
        "{}",
        stderr(&out)
    );

    // A gzip bomb (1 GiB of zeros in about 1 MB: one member of 1 MiB, 1,024 times) is
    // refused after a bounded read.
    let member = gzip(&vec![0_u8; 1 << 20]);
    std::fs::write(dir.path().join("bomb.gz"), member.repeat(1024)).unwrap();
    let started = std::time::Instant::now();
    let out = hunt(dir.path(), &["bomb.gz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("error: bomb.gz: a line longer than 16777216 bytes is not JSON"),
        "{}",
        stderr(&out)
    );
    eprintln!("gzip bomb refused in {:?}", started.elapsed());
}

#[test]
fn usage_errors() {
    let dir = setup();
    std::fs::write(dir.path().join("none.yml"), "title: x\nid: y\nlogsource: {product: x}\ndetection: {sel: {F|nosuch: a}, condition: sel}\n").unwrap();
    let out = tenet()
        .current_dir(dir.path())
        .args(["hunt", "--rules", "none.yml", "trail.json"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no rule in none.yml could be loaded (1 problem(s))"),
        "{}",
        stderr(&out)
    );
    let out = tenet()
        .current_dir(dir.path())
        .args(["hunt", "--rules", "nowhere", "trail.json"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("--rules nowhere: no such file or folder"));
}

/// `-` reads standard input (`tenet log export | tenet hunt --rules r -`), plain or gzip,
/// alongside files; hits on it are located as `stdin`.
#[test]
fn a_dash_reads_standard_input() {
    let dir = setup();
    let lines = std::fs::read(dir.path().join("mixed.jsonl")).unwrap();
    for input in [lines.clone(), gzip(&lines)] {
        let mut child = tenet()
            .current_dir(dir.path())
            .args(["hunt", "--rules", "rules.yml", "-", "trail.json"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with("Tenet hunt: 2 rule(s) (1 not loaded), 5 event(s)"),
            "{text}"
        );
        assert!(
            text.contains("LOW      okta-session Okta user session\n           at stdin:2 (okta)"),
            "{text}"
        );
        assert!(text.contains("at stdin:4 (cloudtrail)"), "{text}");
        assert!(text.contains("at trail.json /Records/1"), "{text}");
    }
    // Not JSON on standard input: named and exit 2, as for a file.
    let mut child = tenet()
        .current_dir(dir.path())
        .args(["hunt", "--rules", "rules.yml", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("error: stdin: "), "{}", stderr(&out));
}
