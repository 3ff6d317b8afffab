//! Containment through the command line against a running deployment: `tenet revoke`,
//! `tenet quarantine`, `tenet release` and `tenet containment`, with curl and a keep-alive
//! Python client as the callers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn cli(d: &Deployment, args: &[&str]) -> std::process::Output {
    tenet()
        .arg("--config")
        .arg(d.config())
        .args(args)
        .output()
        .unwrap()
}

fn admin_ops(d: &Deployment) -> Vec<String> {
    d.events()
        .iter()
        .filter_map(|e| e["api"]["operation"].as_str().map(str::to_owned))
        .filter(|op| op.starts_with("containment."))
        .collect()
}

#[test]
fn revocation_cuts_an_open_connection_on_its_next_request_and_release_reopens() {
    let d = Deployment::start();
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);

    let mut client = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/keepalive_client.py"
        ))
        .args([HOST, &d.port.to_string()])
        .arg(d.path("frontend/svid.pem"))
        .arg(d.path("frontend/svid.key"))
        .arg(d.path("data/admin/bundle.pem"))
        .arg("/products")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "200");

    let out = cli(&d, &["revoke", FRONTEND, "--reason", "stolen SVID"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("identity spiffe://example.org/ns/shop/sa/frontend"),
        "{said}"
    );

    // The connection that was open before the revocation is refused on its next request.
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"again\n")
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "403 same-connection");
    drop(client.stdin.take());
    let _ = client.wait();
    // And so is a new one; the body names no policy internals.
    let (code, body) = d.curl(Some("frontend"), &[], "/products");
    assert_eq!(code, 403);
    assert!(!body.contains("contained"), "{body}");

    let listed = cli(&d, &["containment", "--format", "json"]);
    let actions: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(actions.as_array().unwrap().len(), 1);
    assert_eq!(actions[0]["target"]["spiffe_id"], FRONTEND);
    assert_eq!(actions[0]["reason"], "stolen SVID");

    let out = cli(&d, &["release", FRONTEND]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Said as released, not listed like a containment in force.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("released c-")
            && said.contains(&format!("identity {FRONTEND}"))
            && said.contains("stolen SVID")
            && !said.contains(" until "),
        "{said}"
    );
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);

    // Recorded: the revocation, the refused request with the reason, the release.
    assert_eq!(admin_ops(&d), ["containment.revoke", "containment.release"]);
    let refused = d
        .events()
        .into_iter()
        .filter(|e| e["class_uid"] == 4002)
        .filter(|e| {
            e["unmapped"]["errors"]
                .to_string()
                .contains("contained: c-")
        })
        .count();
    assert!(refused >= 2, "refusals not recorded with their reason");

    // Nothing left to release.
    let out = cli(&d, &["release", FRONTEND]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing in force matches"));

    // A serial revoked in one spelling is released in the one `openssl x509 -text` prints.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(d.path("frontend/svid.pem"))
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let out = cli(&d, &["revoke", "--serial", &serial, "--reason", "lost"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 403);
    let digits = serial.trim_start_matches("00");
    let colons: Vec<String> = digits
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect();
    let out = cli(&d, &["release", &colons.join(":")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("released c-"));
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
}

#[test]
fn time_boxed_revocation_set_while_down_holds_after_start_and_ends_by_itself() {
    let mut d = Deployment::start();
    d.stop();
    let serial = {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(d.path("frontend/svid.pem"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_owned()
    };
    // No deployment runs: the CLI changes the state file and the ledger itself.
    let out = cli(
        &d,
        &[
            "revoke", "--serial", &serial, "--for", "3s", "--reason", "drill",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.up();
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 403);
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.curl(Some("frontend"), &[], "/products").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the time-boxed revocation never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ops = admin_ops(&d);
        if ops == ["containment.revoke", "containment.expire"] {
            break;
        }
        assert!(Instant::now() < deadline, "expiry not recorded: {ops:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn quarantine_refuses_a_service_and_bad_requests_are_named() {
    let d = Deployment::start();
    let out = cli(
        &d,
        &[
            "quarantine",
            "catalog",
            "--direction",
            "inbound",
            "--for",
            "1h",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 403);
    assert!(cli(&d, &["release", "catalog"]).status.success());
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);

    for (args, says) in [
        (vec!["revoke", "not-an-id"], "is not a SPIFFE ID"),
        (vec!["revoke"], "give the SPIFFE ID to revoke"),
        (vec!["revoke", "--serial", "zz"], "must be hexadecimal"),
        (vec!["revoke", FRONTEND, "--for", "soon"], "--for \"soon\""),
        (
            vec!["quarantine", "payments"],
            "no route in the configuration belongs to service",
        ),
        (
            vec!["quarantine", "catalog", "--direction", "sideways"],
            "expected inbound, outbound or both",
        ),
        (
            vec!["quarantine", "catalog", "--direction", "outbound"],
            "outbound quarantine needs the SPIFFE IDs",
        ),
        (vec!["release", "c-nothing"], "nothing in force matches"),
        (vec!["revoke", FRONTEND, "--for", "1000000000h"], "too long"),
        (
            vec!["revoke", "spiffe://example.org/tenet/admin"],
            "one of Tenet's own identities",
        ),
    ] {
        let out = cli(&d, &args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(d.curl(Some("frontend"), &[], "/products").0, 200);
}

#[test]
fn blast_radius_names_what_a_workload_reaches() {
    let mut d = Deployment::start();
    d.stop();
    let out = cli(&d, &["blast-radius", FRONTEND, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reach = b["reach"].as_array().unwrap();
    assert_eq!(reach.len(), 1, "{b}");
    assert_eq!(reach[0]["route"], "catalog");
    assert!(
        reach[0]["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "GET")
    );
    assert_eq!(b["unfollowed"], serde_json::json!(["catalog"]));
    let dot = cli(&d, &["blast-radius", FRONTEND, "--format", "dot"]);
    assert!(String::from_utf8_lossy(&dot.stdout).starts_with("digraph blast_radius {"));
    let nobody = cli(&d, &["blast-radius", "spiffe://example.org/ns/x/sa/nobody"]);
    assert!(String::from_utf8_lossy(&nobody.stdout).contains("(reaches nothing)"));
    let bad = cli(&d, &["blast-radius", "frontend"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SPIFFE ID \"frontend\""));
}
