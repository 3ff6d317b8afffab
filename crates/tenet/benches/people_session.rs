//! For bench/people_e2e.sh: a signed-in person on an enrolled, compliant device, against a
//! `tenet up` the script starts. Uses the people tests' provider (panva's `oidc-provider` on
//! Node.js) and webauthn-authenticator-rs's soft passkey.
//!
//!   people_session DIR PORT ADMIN_PORT IDP_PORT
//!
//! 1. Writes the provider's client secret and TLS files into the deployment directory DIR
//!    (`client-secret`, `idp-ca.pem`), starts the provider on 127.0.0.1:IDP_PORT with the
//!    gateway's callback on PORT as its redirect URI, and waits for the gateway's people
//!    listener (PORT) and admin API (ADMIN_PORT): the script starts `tenet up` once IDP_PORT
//!    answers.
//! 2. Enrols a device with `tenet device token` and `tenet device enrol` (into DIR/device),
//!    sends a signed, compliant posture report, and signs alice in through the provider and a
//!    passkey registration while presenting the device certificate, so that the session is
//!    bound to the device.
//! 3. Checks that the session reaches the upstream, prints the session cookie's value on
//!    stdout and stops the provider (requests with the session do not need it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use http::header;
use serde_json::Value;
use support::idp::{self, APP_HOST, cookie_header, remember};
use tenet_device::PostureReport;
use tenet_identity::X509Svid;
use tenet_mfa::json::{CreationChallengeResponse, RequestChallengeResponse};
use time::OffsetDateTime;
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const EMAIL: &str = "alice@example.test";
const SESSION: &str = "__Host-tenet_session";
const MFA_PAGE: &str = "/.tenet/auth/mfa?rd=%2F";

/// Parses the arguments (`cargo bench` adds `--bench`).
fn args() -> (std::path::PathBuf, u16, u16, u16) {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        // `cargo bench` runs every bench target without arguments: this one is only a step of
        // bench/people_e2e.sh.
        eprintln!("people_session: run by bench/people_e2e.sh; nothing to do on its own");
        std::process::exit(0);
    }
    let [dir, port, admin, idp] = args.as_slice() else {
        eprintln!("usage: people_session DIR PORT ADMIN_PORT IDP_PORT");
        std::process::exit(2);
    };
    let number = |p: &String| p.parse::<u16>().expect("ports are numbers");
    (dir.into(), number(port), number(admin), number(idp))
}

/// A request to the gateway's people route, with `jar`'s cookies; the answer's cookies go
/// into the jar. Returns (status, headers, body).
async fn send(
    http: &reqwest::Client,
    jar: &mut BTreeMap<String, String>,
    request: reqwest::RequestBuilder,
) -> (u16, http::HeaderMap, String) {
    let request = if jar.is_empty() {
        request
    } else {
        request.header(header::COOKIE, cookie_header(jar))
    };
    let response = http.execute(request.build().unwrap()).await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let body = response.text().await.unwrap_or_default();
    remember(jar, &headers);
    (status, headers, body)
}

fn location(headers: &http::HeaderMap) -> String {
    headers[header::LOCATION].to_str().unwrap().to_owned()
}

/// Enrols a device for alice with the device agent commands, into `dir/device`; returns its
/// credential.
fn enrol_device(dir: &Path, origin: &str) -> X509Svid {
    let token: Value =
        serde_json::from_str(&idp::cli(dir, &["device", "token", "--owner", EMAIL])).unwrap();
    let device_dir = dir.join("device");
    support::run_ok(support::tenet().args([
        "device",
        "enrol",
        "--gateway",
        origin,
        "--token",
        token["token"].as_str().unwrap(),
        "--bundle",
        dir.join("data/admin/bundle.pem").to_str().unwrap(),
        "--resolve",
        &format!("{APP_HOST}:127.0.0.1"),
        "--out",
        device_dir.to_str().unwrap(),
    ]));
    X509Svid::load_pem(
        &std::fs::read(device_dir.join("svid.pem")).unwrap(),
        &std::fs::read(device_dir.join("svid.key")).unwrap(),
    )
    .unwrap()
}

/// A signed posture report that meets the script's requirements.
fn compliant_report(svid: &X509Svid) -> String {
    let report = PostureReport {
        device_id: tenet_device::device_id_of(svid.spiffe_id()).unwrap(),
        collected_at: OffsetDateTime::now_utc(),
        os: Some("debian".into()),
        os_version: Some("12".into()),
        disk_encrypted: Some(true),
        screen_lock: Some(true),
        firewall: Some(true),
        endpoint_protection: Some(true),
        agent_version: "bench".into(),
        sequence: 1,
    };
    tenet_device::sign_report(&report, svid).unwrap()
}

#[tokio::main]
async fn main() {
    let (dir, port, admin_port, idp_port) = args();
    let origin = idp::origin(port);
    let mut provider = idp::Provider::prepared(&dir, &idp::redirect_uri(port), idp_port);
    provider.run();
    eprintln!("people_session: provider on 127.0.0.1:{}", provider.port);
    support::wait_for_port(port);
    support::wait_for_port(admin_port);

    let svid = enrol_device(&dir, &origin);
    let device_dir = dir.join("device");
    let mut pem = std::fs::read(device_dir.join("svid.pem")).unwrap();
    pem.extend(std::fs::read(device_dir.join("svid.key")).unwrap());
    let http = idp::http_client(&dir, port)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let (mut app, mut at_idp) = (BTreeMap::new(), BTreeMap::new());

    let report = http
        .post(format!("{origin}/.tenet/auth/device/report"))
        .body(compliant_report(&svid));
    let (status, _, body) = send(&http, &mut app, report).await;
    assert_eq!(status, 200, "posture report refused: {body}");

    // Sign-in: login, the provider, the callback, then a passkey registration.
    let login = http.get(format!("{origin}/.tenet/auth/login?rd=%2F"));
    let (status, headers, body) = send(&http, &mut app, login).await;
    assert_eq!(status, 303, "login: {body}");
    let callback = idp::through_provider(&http, &mut at_idp, &location(&headers), &origin).await;
    let (status, headers, body) =
        send(&http, &mut app, http.get(format!("{origin}{callback}"))).await;
    assert_eq!(status, 303, "callback: {body}");
    assert_eq!(location(&headers), MFA_PAGE);
    let (status, _, page) = send(&http, &mut app, http.get(format!("{origin}{MFA_PAGE}"))).await;
    assert_eq!(status, 200, "{page}");
    let mode = page
        .split("data-mode=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page names no ceremony")
        .to_owned();
    let ceremony = |step: &str, body: String| {
        http.post(format!(
            "{origin}/.tenet/auth/webauthn/{mode}/{step}?rd=%2F"
        ))
        .header("origin", &origin)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
    };
    let (status, _, options) = send(&http, &mut app, ceremony("begin", "{}".into())).await;
    assert_eq!(status, 200, "{mode} begin: {options}");
    let mut passkey = SoftPasskey::new(true);
    let rp = Url::parse(&origin).unwrap();
    let answer = if mode == "register" {
        let options: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
        serde_json::to_string(&passkey.do_registration(rp, options).unwrap())
    } else {
        let options: RequestChallengeResponse = serde_json::from_str(&options).unwrap();
        serde_json::to_string(&passkey.do_authentication(rp, options).unwrap())
    };
    let (status, _, body) = send(&http, &mut app, ceremony("finish", answer.unwrap())).await;
    assert_eq!(status, 200, "{mode} finish: {body}");

    let (status, _, body) = send(&http, &mut app, http.get(format!("{origin}/"))).await;
    assert_eq!(
        status, 200,
        "the session does not reach the upstream: {body}"
    );
    drop(provider);
    println!("{}", app.get(SESSION).expect("no session cookie"));
}
