//! People sign-in end to end, in a real browser: `tenet up` with a people route and a
//! `[people]` section, a real OpenID provider (panva's `oidc-provider` on Node.js, the script
//! of tenet-oidc's tests), an enrolled device with signed posture reports, and headless
//! Chromium driven by playwright-core (`people_browser.mjs`) with a virtual authenticator.
//!
//! Needs `node`, `curl`, Debian's chromium, and two npm packages in the workspace:
//! `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1` and
//! `npm install --prefix target/tools/playwright playwright-core@1.64.1`
//! (or `TENET_OIDC_PROVIDER_DIR`, `TENET_PLAYWRIGHT_DIR`, `TENET_CHROMIUM`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::idp::{self, APP_HOST};
use support::wait_output;
use tenet_device::{DeviceKey, PostureReport};
use tenet_identity::X509Svid;
use time::OffsetDateTime;

const POLICY: &str = r#"
@id("engineers-with-a-passkey-on-an-enrolled-device")
permit (principal in Tenet::Group::"engineering", action, resource in Tenet::Service::"app")
when { context.session.phishing_resistant && context.device.enrolled };
"#;

/// `[people]` settings beyond the common ones.
const PEOPLE: &str = r#"rp_name = "Example"
require_webauthn = true
"#;

/// The device posture requirement.
const POSTURE: &str = r#"[people.posture]
max_age_secs = 3600
require_disk_encryption = true
"#;

fn workspace_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A package directory from `var`, or its place under the workspace's target/tools.
fn tool_dir(var: &str, default: &str, probe: &str, install: &str) -> PathBuf {
    let dir = std::env::var_os(var).map_or_else(|| workspace_path(default), PathBuf::from);
    assert!(
        dir.join(probe).is_file(),
        "{} is missing: run `{install}` in the workspace, or set {var}",
        dir.join(probe).display()
    );
    dir
}

/// The tools this test drives, each checked with a message saying how to install it.
struct Tools {
    playwright: PathBuf,
    chromium: PathBuf,
}

impl Tools {
    fn find() -> Self {
        for (tool, how) in [("node", "Node.js 20 or later"), ("curl", "curl")] {
            let ok = Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(ok, "`{tool}` ({how}) is required for the browser test");
        }
        let chromium = std::env::var_os("TENET_CHROMIUM")
            .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
        assert!(
            chromium.is_file(),
            "chromium is missing at {}: `apt-get install -y chromium`, or set TENET_CHROMIUM",
            chromium.display()
        );
        // Checked now, so that a missing package stops the test before anything starts.
        idp::provider_package();
        Self {
            playwright: tool_dir(
                "TENET_PLAYWRIGHT_DIR",
                "target/tools/playwright/node_modules/playwright-core",
                "index.mjs",
                "npm install --prefix target/tools/playwright playwright-core@1.64.1",
            ),
            chromium,
        }
    }
}

/// `tenet up` with a people route, the provider and a device posture requirement.
struct People {
    d: idp::PeopleDeployment,
}

impl People {
    fn start() -> Self {
        Self {
            d: idp::PeopleDeployment::start(PEOPLE, POSTURE, POLICY),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.d.dir.path().join(rel)
    }

    fn origin(&self) -> String {
        idp::origin(self.d.port)
    }

    fn tenet(&self, args: &[&str]) -> String {
        idp::cli(self.d.dir.path(), args)
    }

    /// curl against the people route, verifying the gateway with the Tenet bundle:
    /// (status, body).
    fn curl(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--resolve")
            .arg(format!("{APP_HOST}:{}:127.0.0.1", self.d.port))
            .arg("--cacert")
            .arg(self.path("data/admin/bundle.pem"))
            .args(extra)
            .arg(format!("{}{path}", self.origin()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn events(&self) -> Vec<Value> {
        self.tenet(&["log", "tail"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn up_log(&self) -> String {
        support::strip_ansi(&std::fs::read_to_string(self.path("up.log")).unwrap_or_default())
    }
}

/// An enrolled device: its credential files and what signs its reports.
struct Device {
    id: String,
    chain: PathBuf,
    key: PathBuf,
    svid: X509Svid,
}

/// Enrols a device through the gateway's endpoint with a token from `tenet device token`.
fn enrol_device(people: &People) -> Device {
    let answer = people.tenet(&["device", "token", "--owner", "alice@example.test"]);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let token = answer["token"]
        .as_str()
        .expect("tenet device token printed no token");
    let key = DeviceKey::generate().unwrap();
    let request = serde_json::json!({
        "token": token,
        "csr": key.csr_pem().unwrap(),
        "name": "browser-test-laptop",
    });
    let request = request.to_string();
    let (status, body) = people.curl(
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &request,
        ],
        "/.tenet/auth/device/enrol",
    );
    assert_eq!(status, 200, "device enrolment refused: {body}");
    let enrolment: Value = serde_json::from_str(&body).unwrap();
    let chain_pem = enrolment["chain_pem"].as_str().unwrap();
    let (chain, key_file) = (
        people.path("device/svid.pem"),
        people.path("device/svid.key"),
    );
    std::fs::create_dir_all(people.path("device")).unwrap();
    std::fs::write(&chain, chain_pem).unwrap();
    key.save(&key_file).unwrap();
    let svid =
        X509Svid::load_pem(chain_pem.as_bytes(), &std::fs::read(&key_file).unwrap()).unwrap();
    Device {
        id: enrolment["device_id"].as_str().unwrap().to_owned(),
        chain,
        key: key_file,
        svid,
    }
}

impl Device {
    /// A signed posture report of this device, collected at `at`.
    fn report(&self, at: OffsetDateTime, sequence: u64, disk_encrypted: bool) -> String {
        let report = PostureReport {
            device_id: self.id.parse().unwrap(),
            collected_at: at,
            os: Some("debian".into()),
            os_version: Some("12".into()),
            disk_encrypted: Some(disk_encrypted),
            screen_lock: Some(true),
            firewall: Some(true),
            endpoint_protection: Some(true),
            agent_version: "browser-test".into(),
            sequence,
        };
        tenet_device::sign_report(&report, &self.svid).unwrap()
    }
}

/// Runs the Playwright script and returns what it saw.
fn run_browser(tools: &Tools, people: &People, device: &Device, bad_report: &Path) -> Value {
    let settings = serde_json::json!({
        "playwright": tools.playwright,
        "chromium": tools.chromium,
        "host": APP_HOST,
        "origin": people.origin(),
        "cert": device.chain,
        "key": device.key,
        "bad_report": bad_report,
    });
    let settings_file = people.path("browser.json");
    std::fs::write(&settings_file, settings.to_string()).unwrap();
    let child = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/people_browser.mjs"))
        .arg(&settings_file)
        .env("NODE_EXTRA_CA_CERTS", people.path("data/admin/bundle.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start node");
    let out = wait_output(child, Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed ({}):\n{stderr}\n{stdout}\n--- tenet up ---\n{}",
        out.status,
        people.up_log()
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("the browser script printed no result:\n{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

/// The upstream's echo of one request header.
fn echoed<'a>(echo: &'a Value, header: &str) -> &'a Value {
    &echo["headers"][header][0]
}

/// An Authentication event (OCSF 3002) from the ledger.
#[derive(Debug)]
struct AuthEvent {
    activity: String,
    success: bool,
    device: Option<String>,
}

/// The Authentication events in the ledger, oldest first.
fn authentication_events(people: &People) -> Vec<AuthEvent> {
    people
        .events()
        .iter()
        .filter(|e| e["class_uid"] == 3002)
        .map(|e| AuthEvent {
            activity: e["unmapped"]["activity"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            success: e["status_id"] == 1,
            device: e["device"]["uid"].as_str().map(str::to_owned),
        })
        .collect()
}

#[test]
fn browser_signs_in_with_provider_and_passkey_and_loses_access_with_bad_posture() {
    let tools = Tools::find();
    let people = People::start();

    // 3. Without a session: 401 JSON for an API client, whatever cookie it forges.
    let (status, body) = people.curl(&["-H", "accept: application/json"], "/");
    assert_eq!(status, 401, "no cookie: {body}");
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "not JSON: {body}"
    );
    let forged = format!("cookie: __Host-tenet_session={}", "A".repeat(43));
    let (status, body) = people.curl(&["-H", "accept: application/json", "-H", &forged], "/");
    assert_eq!(status, 401, "forged cookie: {body}");
    assert!(
        serde_json::from_str::<Value>(&body).is_ok(),
        "not JSON: {body}"
    );

    // The device: enrolled with a token, compliant before the person signs in.
    let device = enrol_device(&people);
    let now = OffsetDateTime::now_utc();
    let good = device.report(now, 1, true);
    let (status, body) = people.curl(&["--data-binary", &good], "/.tenet/auth/device/report");
    assert_eq!(status, 200, "good posture report refused: {body}");
    let bad_report = people.path("device/bad-report.jws");
    std::fs::write(
        &bad_report,
        device.report(now + Duration::from_secs(1), 2, false),
    )
    .unwrap();

    let seen = run_browser(&tools, &people, &device, &bad_report);

    // 1. Provider, passkey registration, then the upstream with the person's identity.
    let first = &seen["first"];
    assert_eq!(
        echoed(first, "x-tenet-user"),
        "alice@example.test",
        "{first}"
    );
    assert_eq!(
        echoed(first, "x-tenet-principal"),
        "user:corp:user-A",
        "{first}"
    );
    let cookies = first["headers"]["cookie"].to_string();
    assert!(
        !cookies.contains("__Host-tenet_"),
        "Tenet cookie forwarded: {cookies}"
    );
    assert_eq!(seen["credentials"], 1, "{seen}");
    let hops: Vec<(String, u64)> = seen["navigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["url"].as_str().unwrap().to_owned(),
                n["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let origin = people.origin();
    assert!(hops.contains(&(format!("{origin}/"), 302)), "{hops:?}");
    assert!(
        hops.iter()
            .any(|(u, s)| u.starts_with(&format!("{origin}/.tenet/auth/login?rd=")) && *s == 303),
        "{hops:?}"
    );
    assert!(
        hops.iter()
            .any(|(u, s)| u.starts_with(&format!("{origin}/.tenet/auth/callback?")) && *s == 303),
        "{hops:?}"
    );

    // 2. Signed out, then in again with the same passkey (the authenticate ceremony).
    assert_eq!(seen["logout"]["status"], 200, "{seen}");
    let after_logout = seen["after_logout"]["status"].as_u64().unwrap();
    assert_eq!(after_logout, 302, "after sign-out: {seen}");
    assert_eq!(
        echoed(&seen["second"], "x-tenet-user"),
        "alice@example.test"
    );

    // 4. Posture turns bad: the next request does not reach the upstream.
    assert_eq!(seen["before_bad_posture"], 200, "{seen}");
    assert_eq!(seen["bad_report"]["status"], 200, "{seen}");
    let refused = &seen["after_bad_posture"];
    let status = refused["status"].as_u64().unwrap();
    let location = refused["location"].as_str().unwrap_or_default();
    let to_sign_in =
        location.starts_with("/.tenet/auth/login") || location.starts_with("/.tenet/auth/stepup");
    assert!(
        status == 401 || ((302..=303).contains(&status) && to_sign_in),
        "with bad posture the request was not refused nor stepped up: {refused}"
    );

    // 5. The ledger has the sign-ins: logon (provider) and mfa (registration, then passkey).
    let auth = authentication_events(&people);
    for activity in [
        "logon",
        "mfa_register",
        "mfa",
        "logoff",
        "device_enrol",
        "device_report",
    ] {
        assert!(
            auth.iter().any(|e| e.activity == activity && e.success),
            "no successful {activity} Authentication event: {auth:?}"
        );
    }
    // Both provider sign-ins happened on the enrolled device (its certificate was presented).
    let logons: Vec<&AuthEvent> = auth
        .iter()
        .filter(|e| e.activity == "logon" && e.success)
        .collect();
    assert_eq!(logons.len(), 2, "two provider sign-ins expected: {auth:?}");
    assert!(
        logons
            .iter()
            .all(|e| e.device.as_deref() == Some(device.id.as_str())),
        "sign-ins not on device {}: {auth:?}",
        device.id
    );
}
