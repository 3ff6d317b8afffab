//! The event ledger behind `tenet up`: a kill -9 under load loses no answered decision,
//! `tenet log verify` names tampering, proofs from the CLI and the admin API verify with an
//! independent verifier, and CLI-issued SVIDs are recorded whether or not the deployment is
//! up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::*;
use tenet_identity::{BundleSet, SpiffeId, SvidVerifier, TrustBundle, TrustDomain, X509Svid};

const VERIFY_PROOF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tenet-ledger/tests/verify_proof.py"
);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr))
}

/// `tenet log verify --format json` as (exit code, report).
fn verify_json(d: &Deployment) -> (i32, Value) {
    let out = d.log(&["verify", "--format", "json"]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON report ({e}):\n{}", both(&out)));
    (out.status.code().unwrap(), report)
}

/// The request id of a stored event: the decision's, or the refusal's.
fn request_id(event: &Value) -> Option<&str> {
    event["http_request"]["uid"]
        .as_str()
        .or_else(|| event["unmapped"]["request_id"].as_str())
}

/// The stored entries, byte for byte, as `tenet log tail` prints them.
fn entries(d: &Deployment) -> Vec<String> {
    let out = d.log(&["tail"]);
    assert!(out.status.success(), "{}", both(&out));
    stdout(&out).lines().map(str::to_owned).collect()
}

// ---- kill -9 under load --------------------------------------------------------------------

/// A TLS client configuration presenting `<dir>/<cred>/` and verifying the gateway's SVID.
fn client_tls(d: &Deployment, cred: &str) -> Arc<rustls::ClientConfig> {
    let read = |p: &str| std::fs::read(d.path(p)).unwrap();
    let svid = X509Svid::load_pem(
        &read(&format!("{cred}/svid.pem")),
        &read(&format!("{cred}/svid.key")),
    )
    .unwrap();
    let bundle = TrustBundle::from_pem(
        TrustDomain::parse(TD).unwrap(),
        &read("data/admin/bundle.pem"),
    )
    .unwrap();
    let mut bundles = BundleSet::new();
    bundles.insert(bundle);
    let verifier = Arc::new(SvidVerifier::new(bundles, Duration::from_secs(60)));
    let gateway = SpiffeId::parse(&format!("spiffe://{TD}/tenet/gateway")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(tenet_identity::server_cert_verifier(
            verifier,
            Some(gateway),
        ))
        .with_client_cert_resolver(Arc::new(tenet_gateway::SvidResolver::new(&svid).unwrap()));
    Arc::new(tls)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(tls: &Arc<rustls::ClientConfig>, port: u16) -> Option<Sender> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// What one load worker saw: the answered requests (request id, status) and how many
/// exchanges the kill cut off (before the answer, or in the middle of its body).
#[derive(Default)]
struct Seen {
    answered: Vec<(String, u16)>,
    cut: usize,
}

/// Send allowed and denied requests on one keep-alive connection after another until the
/// gateway stops accepting connections.
async fn worker(tls: Arc<rustls::ClientConfig>, port: u16, count: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen::default();
    let mut n = 0u64;
    while let Some(mut sender) = connect(&tls, port).await {
        loop {
            n += 1;
            let path = if n.is_multiple_of(3) {
                "/admin/users"
            } else {
                "/products"
            };
            let req = http::Request::get(path)
                .header(http::header::HOST, HOST)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let Ok(resp) = sender.send_request(req).await else {
                seen.cut += 1;
                break;
            };
            let status = resp.status().as_u16();
            let id = resp
                .headers()
                .get("x-tenet-request-id")
                .map(|v| v.to_str().unwrap().to_owned())
                .expect("every answer carries x-tenet-request-id");
            // The status line and headers are the answer; a body cut off by the kill
            // does not make the request unanswered.
            seen.answered.push((id, status));
            count.fetch_add(1, Ordering::Relaxed);
            if resp.into_body().collect().await.is_err() {
                seen.cut += 1;
                break;
            }
        }
    }
    seen
}

#[test]
fn kill_9_under_load_loses_no_answered_decision() {
    let mut d = Deployment::start();
    let tls = client_tls(&d, "frontend");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| runtime.spawn(worker(tls.clone(), d.port, count.clone())))
        .collect();

    // Let the load run, then kill the gateway in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What the ledger adds to each request is measured (a histogram with fine buckets), and
    // the default interval syncs make the entries durable beside the writer.
    let metrics = d.metrics();
    let recorded = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tenet_gateway_record_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(recorded >= 400.0, "{metrics}");
    assert!(
        metrics.contains("tenet_gateway_record_seconds_bucket{le=\"0.0005\"}"),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = d.admin_get("/v1/status");
        assert_eq!(code, 200, "{body}");
        let status: Value = serde_json::from_str(&body).unwrap();
        // The ledger's entries at start were verified before it started.
        assert_eq!(
            status["ledger"]["history"]["state"], "verified",
            "{status:#}"
        );
        if status["ledger"]["durable_entries"].as_u64().unwrap_or(0) >= 400 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing made durable: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let seen: Vec<Seen> = workers
        .into_iter()
        .map(|w| runtime.block_on(w).unwrap())
        .collect();
    let answered: Vec<&(String, u16)> = seen.iter().flat_map(|s| &s.answered).collect();
    let cut: usize = seen.iter().map(|s| s.cut).sum();
    println!(
        "kill -9 after {} answered requests, {cut} exchanges in flight cut off",
        answered.len()
    );
    assert!(
        cut > 0,
        "the kill did not land while requests were in flight"
    );
    assert!(
        answered
            .iter()
            .all(|(_, status)| matches!(status, 200 | 403)),
        "unexpected statuses: {:?}",
        answered
            .iter()
            .filter(|(_, s)| !matches!(s, 200 | 403))
            .collect::<Vec<_>>()
    );

    // Restarted, the deployment recovers the ledger, which verifies in full.
    d.up();
    let (code, report) = verify_json(&d);
    assert_eq!(code, 0, "verify after the crash: {report:#}");
    assert_eq!(report["verdict"], "verified");
    assert_eq!(report["findings"], json!([]));

    // Every answered request has its decision event.
    let stored: HashSet<String> = d
        .events()
        .iter()
        .filter_map(|e| request_id(e).map(str::to_owned))
        .collect();
    let missing: Vec<_> = answered
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    println!(
        "answered requests with their decision in the ledger: {}/{}",
        answered.len() - missing.len(),
        answered.len()
    );
    assert!(missing.is_empty(), "answered but not recorded: {missing:?}");

    // An orderly stop signs a final checkpoint over everything.
    assert!(d.stop().success());
    let (code, report) = verify_json(&d);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["completeness"]["unanchored"], 0, "{report:#}");
}

// ---- tampering, through the CLI ------------------------------------------------------------

/// `tenet up` on a ledger it must refuse: its output once it has exited (within 20 s).
fn up_refused(d: &Deployment) -> Output {
    let up = wait_output(
        tenet()
            .arg("--config")
            .arg(d.config())
            .arg("up")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(20),
    );
    assert!(!up.status.success(), "tenet up started:\n{}", both(&up));
    up
}

fn segment(d: &Deployment) -> std::path::PathBuf {
    d.path("data/ledger/segments/00000000000000000000.seg")
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the entry is in the segment")
}

#[test]
fn verify_names_a_modified_entry_and_a_truncation() {
    let mut d = Deployment::start();
    for path in [
        "/products",
        "/admin",
        "/products/1",
        "/public/x",
        "/products/2",
    ] {
        d.curl(Some("frontend"), &[], path);
    }
    assert!(d.stop().success());
    let (code, report) = verify_json(&d);
    assert_eq!((code, &report["verdict"]), (0, &json!("verified")));

    let lines = entries(&d);
    let k = lines
        .iter()
        .position(|l| l.contains("/products/1"))
        .expect("the decision on /products/1 is stored");
    let original = std::fs::read(segment(&d)).unwrap();
    let start = find(&original, lines[k].as_bytes());

    // One byte of entry k changed (the path it records): verify names entry k.
    let mut modified = original.clone();
    let at = start + lines[k].find("/products/1").unwrap() + 10;
    modified[at] = b'9';
    std::fs::write(segment(&d), &modified).unwrap();
    let out = d.log(&["verify"]);
    let text = both(&out);
    println!("{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains(&format!("entry {k} was modified")), "{text}");
    assert!(
        text.contains(&format!("first bad entry: {k} (modified)")),
        "{text}"
    );
    // A tampered ledger is not written to: `tenet up` refuses to start on it.
    let up = up_refused(&d);
    assert!(
        !up.status.success(),
        "tenet up started on a tampered ledger"
    );
    assert!(both(&up).contains("ledger"), "{}", both(&up));

    // The log cut off at entry k, at a record boundary.
    std::fs::write(segment(&d), &original[..start - 4]).unwrap();
    let out = d.log(&["verify"]);
    let text = both(&out);
    println!("{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(&format!(
            "the log was truncated: {k} entries remain, a signed checkpoint covers {}",
            lines.len()
        )),
        "{text}"
    );

    // Restored, it verifies again. Without its checkpoints, the deployment's ledger is held
    // to what its signing key last signed (checkpoints were removed); the same files judged
    // by themselves have unknown completeness.
    std::fs::write(segment(&d), &original).unwrap();
    assert_eq!(d.log(&["verify"]).status.code(), Some(0));
    std::fs::rename(
        d.path("data/ledger/checkpoints"),
        d.path("checkpoints.saved"),
    )
    .unwrap();
    let out = d.log(&["verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        stdout(&out).contains(&format!(
            "finding: the signing key last signed {} entries, but the checkpoints file holds no \
             checkpoint of them (the newest stored covers 0): checkpoints were removed (a \
             checkpoint rollback)",
            lines.len()
        )),
        "{}",
        both(&out)
    );
    // `tenet up` refuses to sign on top of it (which would leave no trace of the removal).
    let up = up_refused(&d);
    assert!(!up.status.success(), "{}", both(&up));
    assert!(
        both(&up).contains("checkpoints were removed"),
        "{}",
        both(&up)
    );
    let ledger_dir = d.path("data/ledger");
    let out = d.log(&["verify", "--ledger", ledger_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stdout(&out).contains("completeness unknown"),
        "{}",
        both(&out)
    );
    // A witness kept the newest checkpoint: the deleted checkpoints file shows as a rollback,
    // and with the file back the log verifies against the witness's checkpoint too.
    let saved = std::fs::read_to_string(d.path("checkpoints.saved")).unwrap();
    std::fs::write(d.path("witness.checkpoint"), newest_note(&saved)).unwrap();
    let witness = d.path("witness.checkpoint");
    let witness = witness.to_str().unwrap();
    let out = d.log(&["verify", "--checkpoint", witness]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        stdout(&out).contains("checkpoint rollback"),
        "{}",
        both(&out)
    );
    std::fs::write(d.path("data/ledger/checkpoints"), &saved).unwrap();
    let out = d.log(&["verify", "--checkpoint", witness]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

/// A record rewritten with a matching checksum, its tree hashes and checkpoints untouched: the
/// segment reads cleanly and the tree still matches what was signed, so the ledger opens. The
/// history check at start finds the change and `tenet up` refuses to run on it. (A ledger too
/// large to verify before starting is verified while it runs, and requests are refused from
/// when the change is found: tenet-ledger's sink tests.)
#[test]
fn up_refuses_a_history_tampered_with_before_the_last_record() {
    let mut d = Deployment::start();
    for path in ["/products", "/products/1", "/products/2"] {
        d.curl(Some("frontend"), &[], path);
    }
    assert!(d.stop().success());
    let lines = entries(&d);
    let k = lines
        .iter()
        .position(|l| l.contains("/products/1"))
        .expect("the decision on /products/1 is stored");
    let mut bytes = std::fs::read(segment(&d)).unwrap();
    let start = find(&bytes, lines[k].as_bytes());
    let end = start + lines[k].len();
    bytes[start + lines[k].find("/products/1").unwrap() + 10] = b'9';
    let leaf = tenet_ledger::leaf_hash(&bytes[start..end]);
    bytes[end..end + 8].copy_from_slice(&leaf.as_bytes()[..8]);
    std::fs::write(segment(&d), &bytes).unwrap();

    let up = up_refused(&d);
    let text = both(&up);
    assert!(!up.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "the ledger's history was tampered with (entry {k} was modified)"
        )),
        "{text}"
    );
}

/// The last note of a checkpoints file: three body lines, a blank line, one signature line.
fn newest_note(checkpoints: &str) -> String {
    let lines: Vec<&str> = checkpoints.lines().collect();
    let sig = lines
        .iter()
        .rposition(|l| l.starts_with('\u{2014}'))
        .unwrap();
    format!("{}\n", lines[sig - 4..=sig].join("\n"))
}

/// Entries appended to a cleanly stopped deployment's ledger by anything but Tenet (records
/// and tree hashes written with the ledger library, no signing key) are refused by `tenet up`
/// and reported by `tenet log verify`; a CLI command that records and signs while the
/// deployment is stopped is Tenet's own and does not trip it.
#[test]
fn entries_appended_while_the_deployment_was_stopped_are_caught() {
    let mut d = Deployment::start();
    d.curl(Some("frontend"), &[], "/products");
    assert!(d.stop().success());
    d.svid("spiffe://example.org/ns/shop/sa/backend", "backend");
    assert_eq!(d.log(&["verify"]).status.code(), Some(0));

    let forged = tenet_ledger::Ledger::open(d.path("data/ledger"), Default::default())
        .unwrap()
        .ledger;
    let mut forged = forged;
    forged
        .append(br#"{"note":"an event that never happened"}"#)
        .unwrap();
    drop(forged);

    let out = d.log(&["verify"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("1 entries were appended while Tenet was stopped"),
        "{text}"
    );
    let up = up_refused(&d);
    assert!(
        both(&up).contains("were appended while Tenet was stopped"),
        "{}",
        both(&up)
    );
}

/// A workload named in `[admin] witnesses` reads checkpoints and proofs, and nothing else; any
/// other workload reads nothing. A witness of another trust domain is refused at load.
#[test]
fn a_witness_reads_checkpoints_and_proofs_and_nothing_else() {
    let mut d = Deployment::start();
    d.curl(Some("frontend"), &[], "/products");
    assert!(d.stop().success());
    let witness = "spiffe://example.org/ns/audit/sa/witness";
    d.svid(witness, "witness");
    let config = std::fs::read_to_string(d.config()).unwrap();
    let with_witness = config.replace(
        "[admin]\n",
        &format!("[admin]\nwitnesses = [\"{witness}\"]\n"),
    );
    assert_ne!(config, with_witness);
    std::fs::write(d.config(), &with_witness).unwrap();
    d.up();

    for path in [
        "/v1/log/checkpoint",
        "/v1/log/proof/inclusion?index=0",
        "/v1/log/proof/consistency?old=1",
    ] {
        let (status, body) = d.admin_get_as("witness", path);
        assert_eq!(status, 200, "{path}: {body}");
    }
    for path in ["/v1/status", "/v1/containment", "/metrics"] {
        let (status, body) = d.admin_get_as("witness", path);
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = d.admin_get_as("frontend", "/v1/log/checkpoint");
    assert_eq!(status, 403, "{body}");
    assert!(d.stop().success());

    let foreign = config.replace(
        "[admin]\n",
        "[admin]\nwitnesses = [\"spiffe://other.example/witness\"]\n",
    );
    std::fs::write(d.config(), foreign).unwrap();
    let out = d.log(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains("not in this deployment's trust domain"),
        "{}",
        both(&out)
    );
}

// ---- proofs, checked by an independent verifier --------------------------------------------

/// Run tests/verify_proof.py of tenet-ledger on `bundle`: (ok, output).
fn python_verify(bundle: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(VERIFY_PROOF)
        .arg(&path)
        .output()
        .expect("python3 runs the independent proof verifier");
    (out.status.success(), both(&out))
}

/// Sizes of the stored checkpoints, oldest first.
fn checkpoint_sizes(d: &Deployment, origin: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(d.path("data/ledger/checkpoints")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == origin)
        .map(|w| w[1].parse().unwrap())
        .collect()
}

fn run_json(d: &Deployment, args: &[&str]) -> Value {
    let out = d.log(args);
    assert!(out.status.success(), "tenet log {args:?}: {}", both(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn inclusion_item(proof: &Value, entry: &str) -> Value {
    json!({
        "proof": {
            "index": proof["index"],
            "tree_size": proof["tree_size"],
            "leaf_hash": proof["leaf_hash"],
            "hashes": proof["hashes"],
        },
        "entry_b64": STANDARD.encode(entry),
    })
}

#[test]
fn proofs_from_the_cli_and_the_admin_api_verify_independently() {
    let mut d = Deployment::start();
    let vkey = std::fs::read_to_string(d.path("data/ledger.vkey")).unwrap();
    let vkey = vkey.trim().to_owned();
    let origin = vkey.split('+').next().unwrap().to_owned();
    assert_eq!(origin, "example.org/tenet-ledger");

    // Two bursts of requests more than a second apart: at least two checkpoints.
    for round in 0..2 {
        for path in ["/products", "/admin", "/products/7"] {
            d.curl(Some("frontend"), &[], &format!("{path}?round={round}"));
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    let lines = entries(&d);

    // The admin API: the newest checkpoint, and proofs against it.
    let (status, checkpoint) = d.admin_get("/v1/log/checkpoint");
    assert_eq!(status, 200, "{checkpoint}");
    assert!(checkpoint.starts_with(&format!("{origin}\n{}\n", lines.len())));
    let mut inclusions = Vec::new();
    for (index, entry) in lines.iter().enumerate() {
        let (status, body) = d.admin_get(&format!("/v1/log/proof/inclusion?index={index}"));
        assert_eq!(status, 200, "{body}");
        let proof: Value = serde_json::from_str(&body).unwrap();
        // Each proof says the checkpoint it is against, as `tenet log prove` does.
        assert_eq!(proof["checkpoint"].as_str(), Some(checkpoint.as_str()));
        assert_eq!(proof["entry"].as_str(), Some(entry.as_str()));
        inclusions.push(inclusion_item(&proof, entry));
    }
    let sizes = checkpoint_sizes(&d, &origin);
    assert!(sizes.len() >= 2, "checkpoints: {sizes:?}");
    let mut checkpoints = vec![checkpoint.clone()];

    // A witness fetches an older checkpoint by its size, and proofs against exactly it.
    let (status, older) = d.admin_get(&format!("/v1/log/checkpoint?size={}", sizes[0]));
    assert_eq!(status, 200, "{older}");
    assert!(
        older.starts_with(&format!("{origin}\n{}\n", sizes[0])),
        "{older}"
    );
    let (status, body) = d.admin_get(&format!(
        "/v1/log/proof/inclusion?index=0&size={}",
        sizes[0]
    ));
    assert_eq!(status, 200, "{body}");
    let proof: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(proof["tree_size"], sizes[0]);
    assert_eq!(proof["checkpoint"].as_str(), Some(older.as_str()));
    inclusions.push(inclusion_item(&proof, &lines[0]));
    checkpoints.push(older.clone());
    let (status, body) = d.admin_get(&format!("/v1/log/proof/consistency?old={}", sizes[0]));
    assert_eq!(status, 200, "{body}");
    let consistency: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(consistency["old_checkpoint"].as_str(), Some(older.as_str()));
    assert_eq!(
        consistency["new_checkpoint"].as_str(),
        Some(checkpoint.as_str())
    );

    // A size no checkpoint was signed at is not found, named, with the ledger's size.
    let unsigned = u64::MAX;
    for path in [
        format!("/v1/log/checkpoint?size={unsigned}"),
        format!("/v1/log/proof/inclusion?index=0&size={unsigned}"),
        format!("/v1/log/proof/consistency?old=1&new={unsigned}"),
    ] {
        let (status, body) = d.admin_get(&path);
        assert_eq!(status, 404, "{path}: {body}");
        let error = serde_json::from_str::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            error.contains(&format!("size {unsigned}")),
            "{path}: {error}"
        );
        assert!(
            error.contains(&format!("holds {} entries", lines.len())),
            "{path}: {error}"
        );
    }
    let (status, body) = d.admin_get(&format!("/v1/log/proof/inclusion?index={}", 1u64 << 40));
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.admin_get(&format!("/v1/log/proof/consistency?old={unsigned}"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("checkpoint size {}", lines.len())),
        "{body}"
    );
    for path in [
        "/v1/log/proof/consistency?old=x",
        "/v1/log/proof/inclusion?index=+5",
        "/v1/log/checkpoint?size=x",
        "/v1/log/checkpoint?size=+5",
        "/v1/log/checkpoint?size=-1",
    ] {
        let (status, body) = d.admin_get(path);
        assert_eq!(status, 400, "{path}: {body}");
    }

    // The CLI, after an orderly stop: a proof per entry and one per pair of checkpoints.
    assert!(d.stop().success());
    let newest = *checkpoint_sizes(&d, &origin).last().unwrap();
    for index in [0, lines.len() / 2, lines.len() - 1] {
        let proof = run_json(&d, &["prove", &index.to_string()]);
        assert_eq!(proof["tree_size"], newest);
        assert_eq!(proof["entry"].as_str().unwrap(), lines[index]);
        checkpoints.push(proof["checkpoint"].as_str().unwrap().to_owned());
        inclusions.push(inclusion_item(&proof, &lines[index]));
    }
    let mut consistencies = vec![consistency];
    let sizes = checkpoint_sizes(&d, &origin);
    for pair in sizes.windows(2) {
        let proof = run_json(
            &d,
            &["consistency", &pair[0].to_string(), &pair[1].to_string()],
        );
        for side in ["old_checkpoint", "new_checkpoint"] {
            checkpoints.push(proof[side].as_str().unwrap().to_owned());
        }
        consistencies.push(proof);
    }
    // As the admin API: NEW must be a size a checkpoint was signed at.
    let unsigned = (1..newest)
        .find(|n| !sizes.contains(n))
        .expect("a size no checkpoint was signed at");
    let out = d.log(&["consistency", "1", &unsigned.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains(&format!("no checkpoint was signed at size {unsigned}")),
        "{}",
        both(&out)
    );

    let bundle = json!({
        "verifier_key": vkey,
        "checkpoints": checkpoints,
        "inclusions": inclusions,
        "consistencies": consistencies,
    });
    let (ok, out) = python_verify(&bundle);
    println!("python verifier: {}", out.trim());
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "{} inclusion proofs, {} consistency proofs",
            lines.len() + 4,
            sizes.len()
        )),
        "{out}"
    );

    // The same verifier rejects a proof with one hash changed.
    let mut altered = bundle;
    let hash = altered["inclusions"][1]["proof"]["hashes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if hash.starts_with('0') { "1" } else { "0" };
    altered["inclusions"][1]["proof"]["hashes"][0] = json!(format!("{flipped}{}", &hash[1..]));
    let (ok, out) = python_verify(&altered);
    assert!(!ok && out.contains("inclusion 1"), "{out}");

    // Export: the stored events byte for byte, or wrapped with their index and leaf hash.
    let out = d.log(&["export", "--format", "ocsf"]);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), lines);
    let out = d.log(&["export", "--format", "jsonl", "--from", "1", "--to", "3"]);
    let wrapped: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(wrapped.len(), 2);
    assert_eq!(wrapped[0]["index"], 1);
    assert_eq!(
        wrapped[0]["event"],
        serde_json::from_str::<Value>(&lines[1]).unwrap()
    );
    assert_eq!(wrapped[1]["leaf_hash"], inclusions[2]["proof"]["leaf_hash"]);
}

// ---- SVIDs issued by the CLI ---------------------------------------------------------------

fn svid_events(d: &Deployment) -> Vec<Value> {
    d.events()
        .into_iter()
        .filter(|e| e["api"]["operation"] == "svid.issue")
        .collect()
}

#[test]
fn cli_svids_are_recorded_directly_or_through_the_running_deployment() {
    let d = Deployment::start();
    // frontend was issued before `tenet up` (directly); reporting and a JWT while it runs.
    let reporting = "spiffe://example.org/ns/analytics/sa/reporting";
    d.svid(reporting, "reporting");
    let out = run_ok(tenet().arg("--config").arg(d.config()).args([
        "svid",
        "jwt",
        FRONTEND,
        "--audience",
        "catalog",
    ]));
    let token = stdout(&out).trim().to_owned();

    let events = svid_events(&d);
    let by_id = |id: &str, kind: &str| {
        events
            .iter()
            .find(|e| e["unmapped"]["spiffe_id"] == id && e["unmapped"]["svid_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} SVID event for {id}: {events:#?}"))
    };
    assert_eq!(by_id(FRONTEND, "x509")["unmapped"]["requested_by"], "cli");
    assert_eq!(
        by_id(reporting, "x509")["unmapped"]["requested_by"],
        "cli (admin API)"
    );
    let jwt = by_id(FRONTEND, "jwt");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(jwt["unmapped"]["serial"], format!("sha256:{hex}"));
    assert!(
        !stdout(&d.log(&["tail"])).contains(&token),
        "the bearer token itself is not logged"
    );

    // Re-initialising under a running deployment fails before it replaces anything.
    let root_ca = std::fs::read(d.path("data/ca/root.pem")).unwrap();
    let config = std::fs::read(d.config()).unwrap();
    let out = tenet()
        .arg("init")
        .arg(d.dir.path())
        .args(["--trust-domain", TD, "--force"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        both(&out).contains("held by another process"),
        "{}",
        both(&out)
    );
    assert_eq!(std::fs::read(d.path("data/ca/root.pem")).unwrap(), root_ca);
    assert_eq!(std::fs::read(d.config()).unwrap(), config);
}

#[test]
fn no_svid_is_handed_out_when_its_issuance_cannot_be_recorded() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(dir.path())
            .args(["--trust-domain", TD]),
    );
    // Nothing answers on the admin address, and another writer holds the ledger.
    let cfg = dir.path().join("tenet.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:8444", &format!("127.0.0.1:{}", free_port()));
    std::fs::write(&cfg, text).unwrap();
    let held = tenet_ledger::Ledger::open(
        dir.path().join("data/ledger"),
        tenet_ledger::LedgerOptions::default(),
    )
    .unwrap();
    let out_dir = dir.path().join("frontend");
    let out = tenet()
        .arg("--config")
        .arg(&cfg)
        .args(["svid", "x509", FRONTEND, "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        both(&out).contains("held by another process"),
        "{}",
        both(&out)
    );
    assert!(!out_dir.join("svid.key").exists());
    assert!(stdout(&out).is_empty(), "nothing printed: {}", stdout(&out));

    // Once the ledger is free the same command records and issues.
    drop(held);
    run_ok(
        tenet()
            .arg("--config")
            .arg(&cfg)
            .args(["svid", "x509", FRONTEND, "--out"])
            .arg(&out_dir),
    );
    assert!(out_dir.join("svid.key").exists());
    let out = tenet()
        .arg("--config")
        .arg(&cfg)
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
}

// ---- input the log commands cannot use -----------------------------------------------------

/// A deployment initialised (never started) whose ledger records one CLI-issued SVID; its
/// admin address points where nothing answers, so the CLI writes the ledger itself.
fn initialised(dir: &std::path::Path) -> std::path::PathBuf {
    run_ok(tenet().arg("init").arg(dir).args(["--trust-domain", TD]));
    let cfg = dir.join("tenet.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:8444", &format!("127.0.0.1:{}", free_port()));
    std::fs::write(&cfg, text).unwrap();
    issue(&cfg, &dir.join("frontend"));
    cfg
}

fn issue(cfg: &std::path::Path, out: &std::path::Path) {
    run_ok(
        tenet()
            .arg("--config")
            .arg(cfg)
            .args(["svid", "x509", FRONTEND, "--out"])
            .arg(out),
    );
}

fn log_cmd(cfg: &std::path::Path, args: &[&str]) -> Output {
    tenet()
        .arg("--config")
        .arg(cfg)
        .arg("log")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn log_commands_refuse_input_they_cannot_use() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = initialised(dir.path());
    initialised(other.path());
    let path = |rel: &str| dir.path().join(rel);
    let newest = |d: &tempfile::TempDir| {
        newest_note(&std::fs::read_to_string(d.path().join("data/ledger/checkpoints")).unwrap())
    };

    // A witness file that is not a checkpoint is a mistake in the command, not tampering.
    std::fs::write(path("garbage.checkpoint"), "not a checkpoint\n").unwrap();
    let garbage = path("garbage.checkpoint");
    let out = log_cmd(&cfg, &["verify", "--checkpoint", garbage.to_str().unwrap()]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains("TAMPERED"), "{text}");
    assert!(
        text.contains(&format!(
            "the witness checkpoint {} is not a signed checkpoint",
            garbage.display()
        )),
        "{text}"
    );
    // Nor is a checkpoint signed by another deployment's key.
    std::fs::write(path("foreign.checkpoint"), newest(&other)).unwrap();
    let foreign = path("foreign.checkpoint");
    let out = log_cmd(&cfg, &["verify", "--checkpoint", foreign.to_str().unwrap()]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "the witness checkpoint {} is not signed by the verifier key",
            foreign.display()
        )),
        "{text}"
    );
    // The deployment's own checkpoint, kept by a witness, verifies, also with blank lines an
    // editor or a shell added after it.
    std::fs::write(path("own.checkpoint"), newest(&dir)).unwrap();
    let own = path("own.checkpoint");
    let out = log_cmd(&cfg, &["verify", "--checkpoint", own.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    std::fs::write(&own, format!("{}\n\r\n", newest(&dir))).unwrap();
    let out = log_cmd(&cfg, &["verify", "--checkpoint", own.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    drop(other);

    // An entry past the end is named as such.
    let size = stdout(&log_cmd(&cfg, &["tail"])).lines().count();
    let out = log_cmd(&cfg, &["prove", &size.to_string()]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "there is no entry {size}: the ledger holds {size} entries"
        )),
        "{text}"
    );

    // A missing key and a ledger that is a file are each named once, as what they are.
    let nope = path("nope.vkey");
    let out = log_cmd(&cfg, &["verify", "--key", nope.to_str().unwrap()]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );
    assert!(text.contains(&nope.display().to_string()), "{text}");
    let out = log_cmd(
        &cfg,
        &["verify", "--ledger", path("tenet.toml").to_str().unwrap()],
    );
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("is a file, not a ledger directory"), "{text}");
    assert!(!text.contains("does not exist"), "{text}");

    // `--from` past the end is refused with the ledger's size; exactly the end is empty.
    let out = log_cmd(&cfg, &["tail"]);
    assert!(out.status.success(), "{}", both(&out));
    let size = stdout(&out).lines().count();
    assert!(size > 0);
    let past = (size + 1).to_string();
    let end = size.to_string();
    for args in [
        vec!["tail", "--from", &past],
        vec!["tail", "--follow", "--from", &past],
        vec!["export", "--from", &past],
    ] {
        let out = log_cmd(&cfg, &args);
        let text = both(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!(
                "--from {past} is past the end of the ledger, which holds {size} entries"
            )),
            "{args:?}: {text}"
        );
    }
    let out = log_cmd(&cfg, &["export", "--from", "10", "--to", "5"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--to 5 is before --from 10"), "{text}");
    for args in [vec!["tail", "--from", &end], vec!["export", "--from", &end]] {
        let out = log_cmd(&cfg, &args);
        assert!(out.status.success(), "{args:?}: {}", both(&out));
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    // `tail --follow` from the end waits for the next entry and prints it.
    let follow = tenet()
        .arg("--config")
        .arg(&cfg)
        .args(["log", "tail", "--follow", "--from", &end])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    issue(&cfg, &path("frontend-2"));
    let out = wait_output(follow, Duration::from_secs(3));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1, "{}", both(&out));
    assert!(printed.contains(FRONTEND), "{printed}");
}

/// A ledger rolled back whole (records and checkpoints restored from an earlier copy) verifies
/// by its own files, but the deployment's signer state remembers the larger tree its key signed:
/// `tenet log verify` says the ledger was rolled back and exits 3. With `--ledger` pointing
/// elsewhere the state is not the ledger's own and is not consulted.
#[test]
fn verify_holds_the_ledger_to_what_the_signing_key_last_signed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = initialised(dir.path());
    let ledger = dir.path().join("data/ledger");
    let copy = dir.path().join("ledger-then");
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(&ledger)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success());
    issue(&cfg, &dir.path().join("second"));
    issue(&cfg, &dir.path().join("third"));
    assert_eq!(log_cmd(&cfg, &["verify"]).status.code(), Some(0));

    std::fs::remove_dir_all(&ledger).unwrap();
    std::fs::rename(&copy, &ledger).unwrap();
    let out = log_cmd(&cfg, &["verify"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("finding: the signing key last signed"),
        "{text}"
    );
    assert!(text.contains("it was rolled back"), "{text}");
    assert!(
        text.starts_with(&format!("ledger: {}", ledger.display())),
        "{text}"
    );
    assert!(text.contains("\nTAMPERED: "), "{text}");
    let out = log_cmd(&cfg, &["verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["verdict"], "tampered", "{json}");
    assert_eq!(json["findings"][0]["kind"], "signed_history", "{json}");
    assert!(
        json["findings"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("rolled back")
    );

    // Another deployment's key named with --key is a mistake in the command, not tampering.
    let other = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(other.path())
            .args(["--trust-domain", "other.example"]),
    );
    let other_key = other.path().join("data/ledger.vkey");
    assert!(other_key.exists());
    let out = log_cmd(&cfg, &["verify", "--key", other_key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains("give this ledger's key with --key"),
        "{}",
        both(&out)
    );

    // The same files given with --ledger are judged by themselves.
    let out = log_cmd(&cfg, &["verify", "--ledger", ledger.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}
