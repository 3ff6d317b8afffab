//! Detection and response end to end: a workload uses its SVID to probe a service outside its
//! learned baseline; the gateway denies, the analytics fire, the playbook revokes the identity
//! and notifies a webhook (signature checked by Python's hmac), and the next request with the
//! same, still valid, certificate is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::*;

const PAYMENTS_HOST: &str = "payments.example.org";

/// A deployment with a second service (payments), learning shortened for tests, and a
/// playbook that revokes on lateral movement or privilege escalation and calls a webhook.
fn deployment_with_response() -> (Deployment, KillOnDrop, std::path::PathBuf) {
    let mut d = Deployment::start();
    d.stop();
    let hooks = d.path("hooks.jsonl");
    let (receiver, hook_port) = start_python_server(&[
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/webhook_receiver.py"
        ),
        hooks.to_str().unwrap(),
        "test-hook-secret",
    ]);
    // A second service the frontend has never used (and may not use).
    payments_route_and_quick_learning(&d);
    std::fs::write(
        d.path("playbooks/contain.yaml"),
        format!(
            r#"playbooks:
  - name: contain-lateral-movement
    match:
      rules: [tenet.lateral-movement, tenet.service-fan-out, tenet.privilege-escalation]
      min_level: medium
    actions:
      - revoke_identity: {{for: 1h}}
      - notify: {{url: "http://127.0.0.1:{hook_port}/hook", secret_env: TENET_TEST_HOOK}}
"#
        ),
    )
    .unwrap();
    d.up_with_env(&[("TENET_TEST_HOOK", "test-hook-secret")]);
    (d, receiver, hooks)
}

/// Adds a second service the frontend has never used (payments, on the same upstream), the
/// playbooks folder, and a learning period short enough for a test (3 events).
fn payments_route_and_quick_learning(d: &Deployment) {
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(d.config())
        .unwrap();
    write!(
        config,
        r#"
[[routes]]
name = "payments"
service = "payments"
listener = "main"
host = "{PAYMENTS_HOST}"
upstream = "http://127.0.0.1:{}"

[detect]
playbooks = "playbooks"

[detect.analytics.learning]
period_secs = 0
min_events = 3
"#,
        d.upstream_port
    )
    .unwrap();
    std::fs::create_dir_all(d.path("playbooks")).unwrap();
}

#[test]
fn lateral_movement_is_detected_and_contained_by_a_playbook() {
    let (mut d, _receiver, hooks) = deployment_with_response();

    // Learn the baseline: the frontend reads the catalogue.
    for _ in 0..4 {
        assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    }
    // The probe: the same SVID against a service outside the baseline. Denied by policy.
    let probe = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("{PAYMENTS_HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(format!("https://{PAYMENTS_HOST}:{}/charge", d.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout), "403");

    // Contained: the certificate is still valid, the next request is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.curl(Some("frontend"), &[], "/products").0 != 403 {
        assert!(
            Instant::now() < deadline,
            "never contained; log:\n{}",
            d.up_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The record: the detection, the containment by the playbook, the playbook run.
    let events = d.events();
    let detection = events
        .iter()
        .find(|e| e["class_uid"] == 2004 && e["finding_info"]["uid"] == "tenet.lateral-movement")
        .unwrap_or_else(|| panic!("no detection recorded: {events:#?}"));
    assert_eq!(detection["unmapped"]["subject"], FRONTEND);
    let ops: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| {
            Some((
                e["api"]["operation"].as_str()?,
                e["unmapped"]["actor"].as_str()?,
            ))
        })
        .collect();
    assert!(
        ops.contains(&("containment.revoke", "playbook:contain-lateral-movement")),
        "{ops:?}"
    );
    assert!(
        ops.contains(&("playbook.run", "playbook:contain-lateral-movement")),
        "{ops:?}"
    );

    // The webhook got a correctly signed notification.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&hooks).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            let hook: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(hook["valid"], true, "{hook}");
            assert_eq!(hook["body"]["detection"]["rule"], "tenet.lateral-movement");
            break;
        }
        assert!(Instant::now() < deadline, "no webhook call");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The containment survives a restart.
    d.stop();
    d.up_with_env(&[("TENET_TEST_HOOK", "test-hook-secret")]);
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 403);
}

#[test]
fn a_broken_playbook_stops_tenet_up_with_the_reason() {
    let mut d = Deployment::start();
    d.stop();
    std::fs::create_dir_all(d.path("playbooks")).unwrap();
    std::fs::write(
        d.path("playbooks/bad.yaml"),
        "playbooks: [{name: x, match: {rules: [a]}, actions: [{reboot: {}}]}]\n",
    )
    .unwrap();
    let out = tenet()
        .arg("--config")
        .arg(d.config())
        .arg("up")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml") && err.contains("unknown variant"),
        "{err}"
    );

    // Playbooks that could never act in this deployment are refused too, with file and reason.
    for (text, says) in [
        (
            "playbooks: [{name: x, match: {rules: [tenet.lateral-movment]}, actions: [{revoke_identity: {}}]}]",
            "playbook \"x\": rules: \"tenet.lateral-movment\" matches no built-in analytic and no loaded Sigma rule",
        ),
        (
            "playbooks: [{name: x, match: {rules: [tenet.lateral-movement]}, actions: [{quarantine_service: {service: nosuch}}]}]",
            "playbook \"x\": quarantine_service: no route defines the service \"nosuch\"",
        ),
        (
            "playbooks: [{name: x, match: {rules: [tenet.lateral-movement]}, actions: [{quarantine_service: {service: catalog, direction: outbound, identities: [frontend]}}]}]",
            "\"frontend\" is not a SPIFFE ID",
        ),
        (
            "playbooks: [{name: x, match: {rules: [tenet.lateral-movement]}, actions: [{notify: {url: 'http://127.0.0.1:9/h', secret_env: TENET_TEST_HOOK_NEVER_SET}}]}]",
            "the secret variable TENET_TEST_HOOK_NEVER_SET is not set",
        ),
    ] {
        std::fs::write(d.path("playbooks/bad.yaml"), text).unwrap();
        let out = tenet()
            .arg("--config")
            .arg(d.config())
            .arg("up")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.yaml") && err.contains(says),
            "{text}: {err}"
        );
    }
}

fn drill(d: &Deployment, args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = tenet()
        .arg("--config")
        .arg(d.config())
        .arg("drill")
        .args(args)
        .args(["--format", "json", "--timeout", "15s"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn drills_measure_detection_and_containment_and_clean_up() {
    let (d, _receiver, _hooks) = deployment_with_response();
    for _ in 0..4 {
        assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    }

    let (code, r, err) = drill(&d, &["lateral-movement", "--as", FRONTEND]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["outcome"], "detected and contained");
    assert!(r["time_to_detect_ms"].as_u64().is_some());
    assert!(r["time_to_contain_ms"].as_u64() >= r["time_to_detect_ms"].as_u64());
    assert!(
        r["detections"]
            .to_string()
            .contains("tenet.lateral-movement"),
        "{r:#}"
    );
    assert!(
        r["reachable_before"]
            .to_string()
            .contains("catalog/catalog"),
        "{r:#}"
    );
    // Released afterwards: the real workload works again.
    assert_eq!(r["released"].as_array().unwrap().len(), 1, "{r:#}");
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);

    let (code, r, err) = drill(&d, &["privilege-escalation"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert!(
        r["detections"]
            .to_string()
            .contains("tenet.privilege-escalation"),
        "{r:#}"
    );
    assert!(
        !d.path("policies/zz-tenet-drill.cedar").exists(),
        "the drill policy was left behind"
    );

    let (code, r, err) = drill(&d, &["credential-stuffing"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert!(
        r["detections"]
            .to_string()
            .contains("tenet.auth-failure-burst"),
        "{r:#}"
    );

    let reports = d
        .events()
        .into_iter()
        .filter(|e| e["api"]["operation"] == "drill.report")
        .count();
    assert_eq!(reports, 3);

    let (code, _, err) = drill(&d, &["lateral-movement"]);
    assert_eq!(code, 1);
    assert!(err.contains("give --as"), "{err}");
    let (code, _, err) = drill(&d, &["tsunami"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown scenario"), "{err}");
}

/// The ledger's record of a playbook run names what did not happen: a webhook whose secret is
/// missing is not "notified", and a second containment of the same identity says so.
#[test]
fn a_playbook_run_records_the_steps_that_failed() {
    let mut d = Deployment::start();
    d.stop();
    payments_route_and_quick_learning(&d);
    std::fs::write(
        d.path("playbooks/contain.yaml"),
        r#"playbooks:
  - name: contain
    match: {rules: [tenet.lateral-movement]}
    actions:
      - revoke_identity: {for: 1h}
      - revoke_identity: {for: 2h}
      - notify: {url: "http://127.0.0.1:9/hook", secret_file: hook-secret}
"#,
    )
    .unwrap();
    // The secret is there at start (else `tenet up` refuses the playbook), then goes away.
    std::fs::write(d.path("playbooks/hook-secret"), "s3cret\n").unwrap();
    d.up();
    std::fs::remove_file(d.path("playbooks/hook-secret")).unwrap();
    for _ in 0..4 {
        assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    }
    let probe = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
        .arg("--resolve")
        .arg(format!("{PAYMENTS_HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(format!("https://{PAYMENTS_HOST}:{}/charge", d.port))
        .status()
        .unwrap();
    assert!(probe.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        let run = d
            .events()
            .into_iter()
            .find(|e| e["api"]["operation"] == "playbook.run");
        if let Some(run) = run {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "no playbook run; log:\n{}",
            d.up_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(run["unmapped"]["success"], false, "{run:#}");
    let detail: serde_json::Value =
        serde_json::from_str(run["unmapped"]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail["done"],
        serde_json::json!([
            format!("contained identity {FRONTEND}"),
            format!("identity {FRONTEND} already contained"),
        ]),
        "{detail:#}"
    );
    let failed = detail["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{detail:#}");
    assert!(
        failed[0].as_str().unwrap().contains("hook-secret"),
        "{detail:#}"
    );
}

/// The privilege-escalation drill without a playbook that contains it, a drill policy left
/// behind by a drill that was killed, and a drill interrupted by SIGTERM.
#[test]
fn drill_exits_per_its_help_and_leaves_no_policy_behind() {
    let mut d = Deployment::start();
    d.stop();
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(d.config())
        .unwrap();
    write!(
        config,
        "\n[detect]\nplaybooks = \"playbooks\"\n\n[detect.analytics.learning]\n\
         period_secs = 0\nmin_events = 3\n"
    )
    .unwrap();
    std::fs::create_dir_all(d.path("playbooks")).unwrap();
    // A playbook, but none for privilege escalation.
    std::fs::write(
        d.path("playbooks/contain.yaml"),
        "playbooks:\n  - name: lateral\n    match: {rules: [tenet.lateral-movement]}\n    \
         actions:\n      - revoke_identity: {for: 1h}\n",
    )
    .unwrap();

    // A drill policy left behind, as a drill killed with SIGKILL leaves it.
    let leftover = d.path("policies/zz-tenet-drill.cedar");
    std::fs::write(
        &leftover,
        "@id(\"tenet-drill-escalation\")\npermit (principal == \
         Tenet::Workload::\"spiffe://example.org/drill/privilege-escalation\", action, \
         resource in Tenet::Service::\"catalog\");\n",
    )
    .unwrap();
    let out = tenet()
        .arg("--config")
        .arg(d.config())
        .args(["policy", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("zz-tenet-drill.cedar was left by a `tenet drill privilege-escalation` that did not finish"),
        "{err}"
    );
    d.up();
    assert!(
        !leftover.exists(),
        "tenet up kept the leftover drill policy"
    );
    // The start line says what it counts.
    assert!(
        d.up_log()
            .contains("detection on analytics=10 sigma_rules=0 playbooks=1"),
        "{}",
        d.up_log()
    );
    assert!(
        d.up_log()
            .contains("removed a drill policy left by a `tenet drill"),
        "{}",
        d.up_log()
    );

    // Detected, and no playbook should contain it: exit 0, as `--help` says. What was
    // reachable is what the granted policy made reachable.
    let (code, r, err) = drill(&d, &["privilege-escalation"]);
    assert_eq!(code, 0, "{r:#}\n{err}");
    assert_eq!(r["outcome"], "detected; no playbook contains it", "{r:#}");
    assert!(
        r["detections"]
            .to_string()
            .contains("tenet.privilege-escalation"),
        "{r:#}"
    );
    assert!(
        r["reachable_before"]
            .to_string()
            .contains("catalog/catalog"),
        "{r:#}"
    );
    assert!(!leftover.exists());

    // SIGTERM while the drill policy is in place: removed before the drill exits.
    let child = tenet()
        .arg("--config")
        .arg(d.config())
        .args(["drill", "privilege-escalation", "--timeout", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !leftover.exists() {
        assert!(Instant::now() < deadline, "the drill wrote no policy");
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = wait_output(child, Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("SIGTERM: removed the drill policy"), "{err}");
    assert!(!leftover.exists(), "the interrupted drill left its policy");
}

/// A drill undoes only what it caused: a playbook containing a real workload while the drill
/// runs is left in force.
#[test]
fn a_real_containment_made_during_a_drill_survives_it() {
    let mut d = Deployment::start();
    d.stop();
    payments_route_and_quick_learning(&d);
    // Lateral movement is contained; the privilege-escalation drill is not, so it watches the
    // ledger for a while after its detection.
    std::fs::write(
        d.path("playbooks/contain.yaml"),
        "playbooks:\n  - name: lateral\n    match: {rules: [tenet.lateral-movement]}\n    \
         actions:\n      - revoke_identity: {for: 1h}\n",
    )
    .unwrap();
    d.up();
    for _ in 0..4 {
        assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    }

    let child = tenet()
        .arg("--config")
        .arg(d.config())
        .args([
            "drill",
            "privilege-escalation",
            "--format",
            "json",
            "--timeout",
            "20s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let policy = d.path("policies/zz-tenet-drill.cedar");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !policy.exists() {
        assert!(Instant::now() < deadline, "the drill wrote no policy");
        std::thread::sleep(Duration::from_millis(5));
    }
    // While the drill runs, the real frontend probes payments and is contained.
    let probe = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
        .arg("--resolve")
        .arg(format!("{PAYMENTS_HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(format!("https://{PAYMENTS_HOST}:{}/charge", d.port))
        .status()
        .unwrap();
    assert!(probe.success());
    while d.curl(Some("frontend"), &[], "/products").0 != 403 {
        assert!(
            Instant::now() < deadline,
            "never contained:\n{}",
            d.up_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = wait_output(child, Duration::from_secs(30));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{r:#}\n{err}");
    assert!(
        r["detections"]
            .to_string()
            .contains("tenet.privilege-escalation"),
        "{r:#}"
    );
    assert_eq!(r["released"], serde_json::json!([]), "{r:#}");
    assert!(
        r["notes"]
            .to_string()
            .contains("not caused by the drill: c-"),
        "{r:#}"
    );
    // The real containment is still in force.
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 403);
    let releases = d
        .events()
        .into_iter()
        .filter(|e| e["api"]["operation"] == "containment.release")
        .count();
    assert_eq!(releases, 0);
}

/// `curl` with the frontend's SVID against the payments service, outside its baseline.
fn probe_payments(d: &Deployment) -> String {
    let probe = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("{PAYMENTS_HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(format!("https://{PAYMENTS_HOST}:{}/charge", d.port))
        .output()
        .unwrap();
    String::from_utf8_lossy(&probe.stdout).into_owned()
}

#[test]
fn a_learned_baseline_survives_a_restart() {
    let (mut d, _receiver, _hooks) = deployment_with_response();
    let state = d.path("data/detect/baselines.json");

    // Learn the baseline (three events suffice here), then an orderly stop saves it.
    for _ in 0..4 {
        assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    }
    d.stop();
    let text = std::fs::read_to_string(&state).unwrap_or_else(|e| panic!("{e}: {}", d.up_log()));
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["principals"][0]["principal"], FRONTEND, "{saved}");
    assert_eq!(saved["principals"][0]["established"], true, "{saved}");
    assert_eq!(saved["principals"][0]["services"][0], "catalog", "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // After the restart the frontend is established at once: its usual service stays
    // quiet, and the first step outside the baseline is detected and contained (a fresh
    // learning period would have let it through unseen).
    d.up_with_env(&[("TENET_TEST_HOOK", "test-hook-secret")]);
    assert!(
        d.up_log().contains("learned baselines restored"),
        "{}",
        d.up_log()
    );
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    assert_eq!(probe_payments(&d), "403");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.curl(Some("frontend"), &[], "/products").0 != 403 {
        assert!(
            Instant::now() < deadline,
            "the restored baseline did not detect the move; log:\n{}",
            d.up_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_corrupt_baselines_file_is_moved_aside_and_learning_starts_fresh() {
    let mut d = Deployment::start();
    d.stop();
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(d.config())
        .unwrap();
    write!(config, "\n[detect]\nplaybooks = \"playbooks\"\n").unwrap();
    std::fs::create_dir_all(d.path("playbooks")).unwrap();
    std::fs::create_dir_all(d.path("data/detect")).unwrap();
    let state = d.path("data/detect/baselines.json");
    std::fs::write(
        &state,
        b"{\"format\":\"tenet-detect-baselines\",\"version\":1,\"princ",
    )
    .unwrap();

    d.up();
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
    let log = d.up_log();
    assert!(
        log.contains("saved baselines unusable, moved aside") && log.contains("baselines.json"),
        "{log}"
    );
    let aside: Vec<String> = std::fs::read_dir(d.path("data/detect"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("baselines.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // Learning starts fresh, and the next stop writes a good file.
    d.stop();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["principals"][0]["established"], false, "{saved}");
}
