//! Tenet against real clients: `tenet up` as a process, a Python upstream, curl and openssl.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::*;

#[test]
fn init_writes_a_deployment_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(dir.path())
            .args(["--trust-domain", "example.org"]),
    );
    for f in [
        "tenet.toml",
        "policies/tenet.cedarschema",
        "policies/example.cedar",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir.path().join("data/ca")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
    let again = tenet().arg("init").arg(dir.path()).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    run_ok(tenet().arg("init").arg(dir.path()).arg("--force"));
    run_ok(
        tenet()
            .arg("--config")
            .arg(dir.path().join("tenet.toml"))
            .args(["policy", "check"]),
    );
}

#[test]
fn svid_x509_passes_openssl_inspection() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(dir.path())
            .args(["--trust-domain", "example.org"]),
    );
    let out = dir.path().join("fe");
    run_ok(
        tenet()
            .arg("--config")
            .arg(dir.path().join("tenet.toml"))
            .args(["svid", "x509", FRONTEND, "--out"])
            .arg(&out),
    );
    let text = run_ok(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(out.join("svid.pem")),
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("URI:{FRONTEND}")), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    // The chain verifies against the bundle with openssl's own verifier.
    let verify = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(out.join("bundle.pem"))
        .arg("-untrusted")
        .arg(out.join("svid.pem"))
        .arg(out.join("svid.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let bad = tenet()
        .arg("--config")
        .arg(dir.path().join("tenet.toml"))
        .args(["svid", "x509", "spiffe://example.org/ns/%61dmin"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("%61dmin"));
}

#[test]
fn bundle_formats() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(dir.path())
            .args(["--trust-domain", "example.org"]),
    );
    let cfg = dir.path().join("tenet.toml");
    let pem = run_ok(tenet().arg("--config").arg(&cfg).arg("bundle"));
    assert!(String::from_utf8_lossy(&pem.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
    let jwks = run_ok(
        tenet()
            .arg("--config")
            .arg(&cfg)
            .args(["bundle", "--format", "jwks"]),
    );
    let v: serde_json::Value = serde_json::from_slice(&jwks.stdout).unwrap();
    let uses: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["use"].as_str().unwrap())
        .collect();
    assert!(
        uses.contains(&"x509-svid") && uses.contains(&"jwt-svid"),
        "{v}"
    );
}

#[test]
fn config_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = tenet()
        .arg("--config")
        .arg(dir.path().join("nope.toml"))
        .arg("up")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.toml"));

    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[deployment]\ntrust_domain = \"Example.org\"\n[admin]\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let bad = tenet()
        .arg("--config")
        .arg(&cfg)
        .arg("up")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("bad.toml") && err.contains("trust_domain"),
        "{err}"
    );
}

#[test]
fn gateway_with_curl_and_openssl() {
    let d = Deployment::start();

    // Allowed: the upstream gets the normalised path, one XFF, Tenet's own identity headers.
    let (code, body) = d.curl(
        Some("frontend"),
        &[
            "-H",
            "X-Tenet-Identity: forged",
            "-H",
            "X-Forwarded-For: 198.51.100.7",
        ],
        "/products/./list",
    );
    assert_eq!(code, 200, "{body}\n{}", d.up_log());
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["target"], "/products/list");
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-tenet-principal"], serde_json::json!([FRONTEND]));
    let token = h["x-tenet-identity"][0].as_str().unwrap();
    assert_ne!(token, "forged");
    assert_eq!(token.split('.').count(), 3);

    // HTTP/2 over ALPN.
    let (code, _) = d.curl(Some("frontend"), &["--http2"], "/products");
    assert_eq!(code, 200);

    // Denials: 403 with a request id and nothing about the policies.
    let (code, body) = d.curl(Some("frontend"), &[], "/admin/users");
    assert_eq!(code, 403);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "forbidden");
    assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(!body.contains("no-admin"));
    // A default deny: the closest permits are for the operator, not in the answer.
    let (code, body) = d.curl(Some("frontend"), &["-X", "DELETE"], "/products/1");
    assert_eq!(code, 403);
    assert!(!body.contains("frontend-reads-products"), "{body}");

    // F001 through curl (--path-as-is keeps the raw target).
    for (path, want) in [
        ("/public/../admin/users", 403),
        ("/public/%2E%2E/admin/users", 403),
        ("/public/..%2Fadmin/users", 400),
        ("/public/..%5Cadmin/users", 400),
        ("//admin/users", 403),
        ("/public//..//admin/users", 403),
        ("/ADMIN/users", 403),
        ("/public/docs/../index.html", 200),
    ] {
        let (code, body) = d.curl(Some("frontend"), &[], path);
        assert_eq!(code, want, "{path}: {body}");
        if want == 200 {
            let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(echo["target"], "/public/index.html");
        }
    }

    // F003: SNI and Host must agree; Host is canonicalised before routing and policy.
    let (code, _) = d.curl(
        Some("frontend"),
        &["-H", "Host: other.example.org"],
        "/products",
    );
    assert_eq!(code, 421);
    let (code, _) = d.curl(
        Some("frontend"),
        &["-H", &format!("Host: CATALOG.Example.ORG.:{}", d.port)],
        "/products",
    );
    assert_eq!(code, 200);
    let (code, _) = d.curl(
        Some("frontend"),
        &["-H", "Host: catalog.example.org.."],
        "/products",
    );
    assert_eq!(code, 400);

    // No client certificate: the handshake is refused, curl fails.
    let (code, _) = d.curl(None, &[], "/products");
    assert_eq!(code, 0);

    // openssl s_client verifies the gateway's chain against the bundle, then speaks HTTP.
    let answer = d.s_client_raw(
        "frontend",
        format!("GET /products HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // F005: ambiguous framing is a 400 and is not forwarded.
    for raw in [
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Length: +5\r\n\r\nhello",
        "POST /upload HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ] {
        let answer = d.s_client_raw("frontend", raw.replace("HOST", HOST).as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400"), "{raw:?} got {answer:?}");
    }
    // The same upload with clean framing is allowed.
    let ok = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    let answer = d.s_client_raw("frontend", ok.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"body\": \"hello\""),
        "{answer}"
    );

    // F004: forged identity headers and Connection tricks.
    let raw = format!(
        "GET /products HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: 198.51.100.7\r\n\
         X-Tenet-Principal: spiffe://example.org/ns/shop/sa/admin\r\n\
         Connection: close, X-Tenet-Principal, X-Forwarded-For\r\n\r\n"
    );
    let answer = d.s_client_raw("frontend", raw.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let echo: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(
        echo["headers"]["x-tenet-principal"],
        serde_json::json!([FRONTEND])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );

    // The query string reaches the service and the record keeps it (policy decides on the path).
    let (code, _) = d.curl(Some("frontend"), &[], "/products?page=2&sort=name");
    assert_eq!(code, 200);

    // Every decision is an event, readable with `tenet log tail`.
    let events = d.events();
    assert!(
        events.iter().any(|e| e["class_uid"] == 4002
            && e["http_request"]["url"]["path"] == "/products"
            && e["http_request"]["url"]["query_string"] == "page=2&sort=name"),
        "the access event keeps the query string"
    );
    let access: Vec<_> = events
        .iter()
        .filter(|e| e["class_uid"] == 4002 && e["unmapped"]["reasons"].is_array())
        .collect();
    assert!(access.iter().any(|e| e["disposition"] == "Allowed"
        && e["unmapped"]["reasons"] == serde_json::json!(["frontend-reads-products"])));
    assert!(access.iter().any(|e| e["disposition"] == "Blocked"
        && e["unmapped"]["reasons"] == serde_json::json!(["no-admin"])));
    assert!(
        access
            .iter()
            .any(|e| e["http_request"]["http_method"] == "DELETE"
                && e["unmapped"]["near_misses"]
                    == serde_json::json!([
                        "frontend-posts-uploads: action not in scope",
                        "frontend-reads-products: action not in scope"
                    ]))
    );
    assert!(
        events.iter().any(|e| e["class_uid"] == 3002),
        "the refused handshake is an event"
    );
}

#[test]
fn policy_reload_keeps_the_last_good_set() {
    let d = Deployment::start();
    let cfg = d.config();
    let reporting = "spiffe://example.org/ns/analytics/sa/reporting";
    d.svid(reporting, "reporting");
    assert_eq!(d.curl(Some("reporting"), &[], "/products").0, 403);

    std::fs::write(
        d.path("policies/reporting.cedar"),
        format!(
            "@id(\"reporting-reads\")\npermit (principal == Tenet::Workload::\"{reporting}\", \
             action == Tenet::Action::\"GET\", resource in Tenet::Service::\"catalog\");\n"
        ),
    )
    .unwrap();
    let out = run_ok(tenet().arg("--config").arg(&cfg).args(["policy", "reload"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reloaded"));
    assert_eq!(d.curl(Some("reporting"), &[], "/products").0, 200);

    // An invalid set is rejected with the validator's message; the last good set stays.
    std::fs::write(
        d.path("policies/broken.cedar"),
        "permit (principal, action, resource) when { resource.nope };\n",
    )
    .unwrap();
    let check = tenet()
        .arg("--config")
        .arg(&cfg)
        .args(["policy", "check"])
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("broken.cedar"));
    let reload = tenet()
        .arg("--config")
        .arg(&cfg)
        .args(["policy", "reload"])
        .output()
        .unwrap();
    assert!(!reload.status.success());
    assert!(String::from_utf8_lossy(&reload.stdout).contains("rejected"));
    assert_eq!(d.curl(Some("reporting"), &[], "/products").0, 200);

    // The file watcher also picks up changes by itself.
    std::fs::remove_file(d.path("policies/broken.cedar")).unwrap();
    std::fs::remove_file(d.path("policies/reporting.cedar")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, body) = d.curl(Some("reporting"), &[], "/products");
        if code == 403 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "watcher did not reload: {code} {body}\n{}",
            d.up_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // explain gives the decision and the determining policies.
    let explain = run_ok(tenet().arg("--config").arg(&cfg).args([
        "policy",
        "explain",
        "--principal",
        FRONTEND,
        "--route",
        "catalog",
        "--path",
        "/products/x",
        "--format",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        v["policies"],
        serde_json::json!(["frontend-reads-products"])
    );
}

#[test]
fn an_http_1_0_upstream_does_not_close_the_callers_keep_alive_connection() {
    let mut d = Deployment::start();
    d.stop();
    // Python's http.server answers HTTP/1.0 and closes after each response.
    let port = free_port();
    let www = d.path("www");
    std::fs::create_dir_all(www.join("products")).unwrap();
    std::fs::write(www.join("products/index.html"), "ok").unwrap();
    let _upstream = KillOnDrop(
        std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&www)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    use_upstream(&d, port);
    d.up();
    let out = std::process::Command::new("curl")
        .args(["-sv", "--http1.1", "--max-time", "10", "-o", "/dev/null"])
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(d.url("/products/"))
        .arg(d.url("/products/"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("< HTTP/1.1 200").count(), 2, "{log}");
    assert!(log.contains("Re-using existing connection"), "{log}");
}

/// An upstream that answers `101 Switching Protocols` to a request that asked for no
/// upgrade (the gateway strips `Upgrade`) is a failed upstream: the caller gets the JSON 502,
/// not a bare 101 on a connection nobody can take over.
#[test]
fn an_unasked_switch_of_protocols_is_a_bad_gateway() {
    let mut d = Deployment::start();
    d.stop();
    let server = r#"
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk: break
        data += chunk
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    c.close()
"#;
    let (_upstream, port) = start_python_server(&["-c", server]);
    use_upstream(&d, port);
    d.up();
    for version in ["--http1.1", "--http2"] {
        let (status, body) = d.curl(Some("frontend"), &[version], "/products/x");
        assert_eq!(status, 502, "{version}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "upstream_unavailable", "{version}: {body}");
    }
}

/// Point the deployment's route at the upstream on `port` (the deployment must be stopped).
fn use_upstream(d: &Deployment, port: u16) {
    let config = std::fs::read_to_string(d.config()).unwrap().replace(
        &format!("http://127.0.0.1:{}", d.upstream_port),
        &format!("http://127.0.0.1:{port}"),
    );
    std::fs::write(d.config(), config).unwrap();
}

#[test]
fn a_request_in_flight_when_tenet_stops_is_answered_with_connection_close() {
    let mut d = Deployment::start();
    // The upstream holds the answer for 3 s; tenet up is told to stop 1 s in.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "-i", "--http1.1", "--max-time", "15"])
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", d.port))
        .arg("--cacert")
        .arg(d.path("data/admin/bundle.pem"))
        .arg("--cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("--key")
        .arg(d.path("frontend/svid.key"))
        .arg(d.url("/products/slow?delay=3"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(d.stop().success());
    let out = curl.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("http/1.1 200"), "{text}");
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        head.lines().any(|l| l.trim() == "connection: close"),
        "a response sent while stopping must close the connection: {head}"
    );
}

/// An HTTP/1.1 client whose upload is denied gets its 403 and keeps its connection, though
/// it sends the whole body before it reads the answer (Python's `http.client`, as most
/// libraries do): the gateway reads the refused body to its end instead of closing the
/// connection under the client, whose reset would take the answer with it.
#[test]
fn a_denied_upload_gets_its_answer() {
    const CLIENT: &str = r#"
import http.client, socket, ssl, sys
host, port, cert, key, ca = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
conn = http.client.HTTPConnection(host, int(port), timeout=10)
conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname=host)
def closed():
    raise ConnectionError("the gateway closed the connection")
conn.connect = closed
try:
    conn.request("POST", "/admin/users", body=b"u" * (8 << 20))
    answer = conn.getresponse()
    print(answer.status, answer.read().decode())
    conn.request("GET", "/products")
    answer = conn.getresponse()
    print(answer.status, answer.read().decode())
except OSError as e:
    print("error", type(e).__name__, e)
# A client that awaits 100 Continue and, denied, sends its next request instead of the body:
# that request must not be read as the body.
ctx.set_alpn_protocols(["http/1.1"])
raw = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))), server_hostname=host)
raw.settimeout(5)
raw.sendall(f"POST /admin/users HTTP/1.1\r\nHost: {host}\r\nContent-Length: 40\r\nExpect: 100-continue\r\n\r\n".encode())
print("expect", raw.recv(4096).split(b"\r\n")[0].decode())
raw.sendall(f"GET /products HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
try:
    after = raw.recv(4096)
    print("next", after.split(b"\r\n")[0].decode() if after else "closed")
except OSError as e:
    print("next", type(e).__name__)
"#;
    let d = Deployment::start();
    let out = std::process::Command::new("python3")
        .args(["-c", CLIENT, HOST, &d.port.to_string()])
        .arg(d.path("frontend/svid.pem"))
        .arg(d.path("frontend/svid.key"))
        .arg(d.path("data/admin/bundle.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let denied = lines.next().unwrap_or_default();
    assert!(
        denied.starts_with("403 ") && denied.contains("forbidden"),
        "{text}"
    );
    // The same connection serves the next request.
    let next = lines.next().unwrap_or_default();
    assert!(next.starts_with("200 "), "{text}");
    assert_eq!(
        lines.next(),
        Some("expect HTTP/1.1 403 Forbidden"),
        "{text}"
    );
    let after = lines.next().unwrap_or_default();
    assert!(
        after == "next closed" || after == "next HTTP/1.1 200 OK",
        "{text}"
    );
}
