//! `tenet up` while its identity provider is down: the gateway starts (workload routes, the
//! admin API and people routes answer), signing in through the provider is a 503 naming it,
//! and once the provider (panva's `oidc-provider`, the script of tenet-oidc's tests) starts on
//! its reserved port, background discovery finds it and a whole sign-in works.
//!
//! Needs `node`, `python3`, `curl` and the provider package in the workspace:
//! `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1`
//! (or `TENET_OIDC_PROVIDER_DIR` pointing at the package directory).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::header;
use serde_json::Value;
use support::idp::{self, APP_HOST, PeopleToml, Provider, cookie_header, remember};
use support::{free_port, start_upstream, strip_ansi};

const SESSION: &str = "__Host-tenet_session";
const LOGIN_PAGE: &str = "/.tenet/auth/login?rd=%2F";
const MESH_HOST: &str = "catalog.example.test";
const FRONTEND: &str = "spiffe://example.test/frontend";

const POLICY: &str = r#"
@id("alice-uses-the-app")
permit (principal == Tenet::User::"corp:user-A", action, resource in Tenet::Service::"app");

@id("frontend-reads-the-catalog")
permit (
    principal == Tenet::Workload::"spiffe://example.test/frontend",
    action,
    resource in Tenet::Service::"catalog"
);
"#;

/// curl over mTLS with the credential in `cred` (svid.pem, svid.key), verifying the gateway
/// with the deployment's bundle, `host` resolved to 127.0.0.1:`port`: (status, body).
fn curl_mtls(dir: &Path, cred: &Path, host: &str, port: u16, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(dir.join("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(cred.join("svid.pem"))
        .arg("--key")
        .arg(cred.join("svid.key"))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The admin API's `GET /v1/status`, with the admin credential.
fn status(dir: &Path, admin_port: u16) -> Value {
    let (code, body) = curl_mtls(
        dir,
        &dir.join("data/admin"),
        APP_HOST,
        admin_port,
        "/v1/status",
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn up_log(dir: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(dir.join("up.log")).unwrap_or_default())
}

/// A GET on the people route with the cookies of `jar` and `accept`: (status, headers, body);
/// the answer's cookies go into the jar.
async fn get(
    http: &reqwest::Client,
    port: u16,
    jar: &mut BTreeMap<String, String>,
    path: &str,
    accept: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let mut request = http.get(format!("{}{path}", idp::origin(port)));
    if !jar.is_empty() {
        request = request.header(header::COOKIE, cookie_header(jar));
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    remember(jar, &headers);
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn the_gateway_starts_without_its_provider_and_signs_in_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    idp::init(d);
    let (_upstream, upstream_port) = start_upstream();
    let (port, admin_port, mesh_port) = (free_port(), free_port(), free_port());
    // The provider's port is reserved (and in the configuration), but nothing listens on it.
    let mut provider = Provider::prepared(d, &idp::redirect_uri(port), free_port());
    // A second provider whose issuer differs from the one the provider's document names (a
    // trailing slash): discovery can never succeed, and says so at error level each time.
    let mesh = format!(
        r#"[[people.providers]]
name = "mixup"
issuer = "{issuer}/"
client_id = "{client_id}"
client_secret_file = "client-secret"
redirect_uri = "{redirect_uri}"
ca_file = "idp-ca.pem"
[[listeners]]
name = "mesh"
listen = "127.0.0.1:{mesh_port}"
[[routes]]
name = "catalog"
service = "catalog"
listener = "mesh"
host = "{MESH_HOST}"
upstream = "http://127.0.0.1:{upstream_port}"
"#,
        issuer = provider.issuer(),
        client_id = idp::CLIENT_ID,
        redirect_uri = idp::redirect_uri(port),
    );
    let config = PeopleToml {
        port,
        admin_port,
        upstream_port,
        provider: &provider,
        people: "require_webauthn = false\ndiscovery_retry_max = \"1s\"\n",
        tail: &mesh,
    };
    let _gateway = idp::up(d, &config, POLICY);

    // Up without the provider, saying so, naming it.
    let log = up_log(d);
    assert!(
        log.contains("identity provider not reachable") && log.contains("provider=corp"),
        "{log}"
    );
    let providers = &status(d, admin_port)["people"]["providers"];
    assert_eq!(providers[0]["name"], "corp", "{providers}");
    assert_eq!(providers[0]["discovered"], false, "{providers}");
    assert_eq!(providers[1]["name"], "mixup", "{providers}");
    assert_eq!(providers[1]["discovered"], false, "{providers}");

    // The admin API issues a workload SVID (`tenet svid` records it through the admin API),
    // and the workload route serves it.
    let frontend = d.join("frontend");
    idp::cli(
        d,
        &[
            "svid",
            "x509",
            FRONTEND,
            "--out",
            frontend.to_str().unwrap(),
        ],
    );
    let (code, body) = curl_mtls(d, &frontend, MESH_HOST, mesh_port, "/products");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(FRONTEND), "{body}");

    // People routes: a browser without a session is still sent to sign in; signing in is a
    // 503 naming the provider, a page for a browser and JSON for anything else.
    let http = idp::http_client(d, port).build().unwrap();
    let mut jar = BTreeMap::new();
    let (code, headers, _) = get(&http, port, &mut jar, "/", Some("text/html")).await;
    assert_eq!(code, 302);
    assert_eq!(headers[header::LOCATION], LOGIN_PAGE);
    let (code, headers, body) = get(&http, port, &mut jar, LOGIN_PAGE, None).await;
    assert_eq!(code, 503, "{body}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"], "provider_unreachable", "{body}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("identity provider corp is not reachable yet"),
        "{body}"
    );
    let (code, _, page) = get(&http, port, &mut jar, LOGIN_PAGE, Some("text/html")).await;
    assert_eq!(code, 503);
    assert!(
        page.contains("<strong>corp</strong> is not reachable yet"),
        "{page}"
    );
    assert!(jar.is_empty(), "cookies without a sign-in: {jar:?}");

    // The provider starts on its port; discovery (retried at most a second apart) finds it.
    provider.run();
    let deadline = Instant::now() + Duration::from_secs(30);
    let authorization_url = loop {
        let (code, headers, body) = get(&http, port, &mut jar, LOGIN_PAGE, None).await;
        if code == 303 {
            break headers[header::LOCATION].to_str().unwrap().to_owned();
        }
        assert_eq!(code, 503, "{body}");
        assert!(
            Instant::now() < deadline,
            "the provider was not discovered: {}",
            up_log(d)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        authorization_url.starts_with(&provider.issuer()),
        "{authorization_url}"
    );
    assert!(
        up_log(d).contains("identity provider reachable"),
        "{}",
        up_log(d)
    );
    let providers = &status(d, admin_port)["people"]["providers"];
    assert_eq!(providers[0]["discovered"], true, "{providers}");

    // A whole sign-in: the provider, the callback (a session, no second factor configured),
    // and the people route reached as the person.
    let mut idp_jar = BTreeMap::new();
    let callback =
        idp::through_provider(&http, &mut idp_jar, &authorization_url, &idp::origin(port)).await;
    let (code, headers, body) = get(&http, port, &mut jar, &callback, None).await;
    assert_eq!(code, 303, "callback: {body}");
    assert_eq!(headers[header::LOCATION], "/");
    assert!(jar.contains_key(SESSION), "no session: {jar:?}");
    let (code, _, body) = get(&http, port, &mut jar, "/", None).await;
    assert_eq!(code, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echoed["headers"]["x-tenet-user"][0], "alice@example.test",
        "{echoed}"
    );

    // The provider with the wrong issuer stays undiscovered, its sign-in a 503, and every
    // attempt since the provider answers is an error naming the mismatch.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = up_log(d);
        let refused = log.lines().any(|l| {
            l.contains("ERROR") && l.contains("provider=mixup") && l.contains("issuer_mismatch")
        });
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "no error for mixup: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let providers = &status(d, admin_port)["people"]["providers"];
    assert_eq!(providers[1]["discovered"], false, "{providers}");
    let (code, _, body) = get(
        &http,
        port,
        &mut BTreeMap::new(),
        "/.tenet/auth/login?provider=mixup&rd=%2F",
        None,
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("identity provider mixup is not reachable yet"),
        "{body}"
    );
}
