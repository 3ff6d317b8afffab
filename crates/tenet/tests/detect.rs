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

#[test]
fn lateral_movement_is_detected_and_contained_by_a_playbook() {
    let mut d = Deployment::start();
    d.stop();
    let hooks = d.path("hooks.jsonl");
    let (_receiver, hook_port) = start_python_server(&[
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/webhook_receiver.py"
        ),
        hooks.to_str().unwrap(),
        "test-hook-secret",
    ]);
    // A second service the frontend has never used (and may not use).
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
    std::fs::write(
        d.path("playbooks/contain.yaml"),
        format!(
            r#"playbooks:
  - name: contain-lateral-movement
    match:
      rules: [tenet.lateral-movement, tenet.service-fan-out]
      min_level: medium
    actions:
      - revoke_identity: {{for: 1h}}
      - notify: {{url: "http://127.0.0.1:{hook_port}/hook", secret_env: TENET_TEST_HOOK}}
"#
        ),
    )
    .unwrap();
    d.up_with_env(&[("TENET_TEST_HOOK", "test-hook-secret")]);

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
}
