//! `tenet demo`: a throwaway deployment, a gateway and two upstream services in-process,
//! real mTLS requests that are allowed and denied, each step narrated with its decision and
//! its ledger entry, then the ledger verified as `tenet log verify` does, with an inclusion
//! proof of one decision. Exits non-zero if any step did not behave as expected.

use std::collections::HashMap;
use std::net::SocketAddr;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tenet_event::EventKind;
use tenet_gateway::{ASSERTION_HEADER, SvidResolver};
use tenet_identity::{
    BundleSet, CertificateAuthority, SpiffeId, SvidVerifier, TrustDomain, X509Svid,
};
use tenet_ledger::{Completeness, LedgerReader, StoredEvent, Verdict, VerifyOptions};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::config;

const TD: &str = "demo.tenet.test";

struct Upstream {
    addr: SocketAddr,
}

/// One request the demo sends, and what must happen.
struct Step {
    title: &'static str,
    caller: Option<&'static str>,
    method: &'static str,
    host: &'static str,
    sni: &'static str,
    path: &'static str,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    HandshakeRefused,
}

pub async fn run(keep: bool) -> Result<ExitCode> {
    let _ = crate::metrics::handle();
    let dir = tempfile::Builder::new().prefix("tenet-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    say!("Tenet demo: a throwaway deployment in {}", root.display());
    say!();

    // A deployment, two upstream services, and the gateway in front of them.
    let now = OffsetDateTime::now_utc();
    crate::init::run(&root, TD, false, now)?;
    let ca = crate::commands::load_ca(&config::load(Some(&root.join("tenet.toml")))?)?;
    let catalog = start_upstream(&ca, "catalog", true).await?;
    let orders = start_upstream(&ca, "orders", false).await?;
    std::fs::write(
        root.join("tenet.toml"),
        demo_config(catalog.addr, orders.addr),
    )?;
    std::fs::remove_file(root.join("policies/example.cedar"))?;
    std::fs::write(root.join("policies/shop.cedar"), SHOP_POLICIES)?;
    let config = config::load(Some(&root.join("tenet.toml")))?;
    let running = crate::up::start(&config).await?;
    let gateway = running
        .listeners
        .first()
        .map(|(_, a)| *a)
        .ok_or_else(|| anyhow!("the demo gateway has no listener"))?;
    let mut events = running.sink.subscribe();
    say!("gateway (PEP) on https://{gateway}, trust domain {TD}");
    say!(
        "  admin API on https://{} (mTLS, admin credential only)",
        running.admin_addr
    );
    say!(
        "  catalog upstream on https://{} (mTLS, verifies the gateway's SVID)",
        catalog.addr
    );
    say!("  orders upstream on http://{}", orders.addr);
    say!("  policies: {}", root.join("policies/shop.cedar").display());
    say!();

    let frontend = issue(&ca, "ns/shop/sa/frontend")?;
    let reporting = issue(&ca, "ns/analytics/sa/reporting")?;
    let rogue = rogue_svid("ns/shop/sa/frontend")?;
    let creds: HashMap<&str, &X509Svid> = [
        ("frontend", &frontend),
        ("reporting", &reporting),
        ("rogue", &rogue),
    ]
    .into();
    let client = DemoClient::new(&ca, gateway)?;

    let mut failures = 0;
    let mut n = 0;
    let mut first_decision = None;
    for step in STEPS {
        n += 1;
        let (ok, entry) = run_step(n, step, &client, &creds, &mut events).await;
        failures += usize::from(!ok);
        first_decision = first_decision.or(entry);
    }

    // Hot reload: a new policy lets reporting read the catalog, without a restart.
    n += 1;
    let before = running.policy.current().hash().to_string();
    std::fs::write(root.join("policies/analytics.cedar"), ANALYTICS_POLICY)?;
    let reloaded = wait_for_policy_change(&running, &before).await;
    say!("{n:>2}. policy file added (analytics.cedar); the gateway reloads it by itself");
    say!(
        "    {} {}",
        mark(reloaded),
        if reloaded { "reloaded" } else { "NOT reloaded" }
    );
    failures += usize::from(!reloaded);
    n += 1;
    let (ok, _) = run_step(n, &REPORTING_AFTER_RELOAD, &client, &creds, &mut events).await;
    failures += usize::from(!ok);

    // An invalid update is rejected and the last good set stays in force.
    n += 1;
    let before = running.policy.current().hash().to_string();
    std::fs::write(root.join("policies/broken.cedar"), BROKEN_POLICY)?;
    let outcome = running.reloader.reload("demo").await?;
    let kept = outcome.outcome == "rejected" && running.policy.current().hash() == before;
    say!("{n:>2}. an invalid policy (unknown attribute) is written");
    say!(
        "    {} {}: {}",
        mark(kept),
        outcome.outcome,
        outcome.errors.first().map(String::as_str).unwrap_or("")
    );
    failures += usize::from(!kept);
    n += 1;
    let (ok, _) = run_step(n, &REPORTING_AFTER_REJECTED, &client, &creds, &mut events).await;
    failures += usize::from(!ok);

    // Assume breach: the frontend's SVID is stolen. Revoking the identity refuses it on the
    // next request, although the certificate is still valid; releasing reopens it.
    n += 1;
    let recorder = crate::contain::Recorder::Running {
        sink: &running.sink,
        clock: &tenet_gateway::SystemClock,
    };
    let revoke = crate::contain::Change::Contain {
        target: tenet_contain::Target::Identity {
            spiffe_id: format!("spiffe://{TD}/ns/shop/sa/frontend"),
        },
        reason: "demo: the frontend's SVID was stolen".into(),
        for_secs: Some(3600),
    };
    let revoked = crate::contain::apply(
        &running.containment,
        &recorder,
        "demo",
        revoke,
        OffsetDateTime::now_utc(),
    )
    .await;
    say!("{n:>2}. tenet revoke spiffe://{TD}/ns/shop/sa/frontend (its SVID was stolen)");
    say!(
        "    {} {}",
        mark(revoked.is_ok()),
        match &revoked {
            Ok(actions) => format!(
                "revoked ({})",
                actions.first().map_or("", |a| a.id.as_str())
            ),
            Err(e) => format!("NOT revoked: {e}"),
        }
    );
    failures += usize::from(revoked.is_err());
    n += 1;
    let (ok, _) = run_step(n, &FRONTEND_REVOKED, &client, &creds, &mut events).await;
    failures += usize::from(!ok);
    n += 1;
    let released = crate::contain::apply(
        &running.containment,
        &recorder,
        "demo",
        crate::contain::Change::Release {
            selector: format!("spiffe://{TD}/ns/shop/sa/frontend"),
        },
        OffsetDateTime::now_utc(),
    )
    .await;
    say!("{n:>2}. tenet release spiffe://{TD}/ns/shop/sa/frontend");
    say!(
        "    {} {}",
        mark(released.is_ok()),
        if released.is_ok() {
            "released"
        } else {
            "NOT released"
        }
    );
    failures += usize::from(released.is_err());
    n += 1;
    let (ok, _) = run_step(n, &FRONTEND_RELEASED, &client, &creds, &mut events).await;
    failures += usize::from(!ok);

    // Shutting down signs the final checkpoint; then the ledger must verify in full.
    running.shutdown().await;
    say!();
    failures += usize::from(!show_ledger(&config, first_decision)?);
    if keep {
        let kept_dir = dir.keep();
        say!("deployment kept in {}", kept_dir.display());
    }
    if failures == 0 {
        say!("demo passed: every step behaved as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        say!("demo FAILED: {failures} step(s) did not behave as expected");
        Ok(ExitCode::FAILURE)
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

/// Wait (up to 5 s) for the watcher to swap in a policy set other than `before`.
async fn wait_for_policy_change(running: &crate::up::Running, before: &str) -> bool {
    for _ in 0..50 {
        if running.policy.current().hash() != before {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What `tenet log verify` says, the newest checkpoint, and an inclusion proof of the
/// decision at `decision` checked against it. True when the ledger verified, every entry is
/// covered by the final checkpoint and the proof holds.
fn show_ledger(config: &config::Config, decision: Option<u64>) -> Result<bool> {
    let dir = config.ledger_dir();
    let key = crate::ledger::verifier_key(&config.ledger_verifier_key())?;
    let options = VerifyOptions {
        origin: Some(key.name().to_owned()),
        ..VerifyOptions::default()
    };
    let report = tenet_ledger::verify_with(&dir, &key, &options)?;
    let reader = LedgerReader::open(&dir)?;
    let checkpoint = reader
        .latest_checkpoint()?
        .ok_or_else(|| anyhow!("the ledger in {} has no checkpoint", dir.display()))?;
    say!("ledger in {}", dir.display());
    say!(
        "  checkpoint: {}, {} entries, root {}",
        checkpoint.checkpoint().origin,
        checkpoint.size(),
        checkpoint.root()
    );
    let complete = matches!(
        report.completeness,
        Completeness::Anchored { unanchored: 0, .. }
    );
    let verified = report.verdict == Verdict::Verified && complete;
    say!("  tenet log verify (key {key}):");
    for line in report.to_string().lines() {
        say!("    {} {line}", mark(verified));
    }

    let Some(index) = decision else {
        say!("    {} no decision entry to prove", mark(false));
        return Ok(false);
    };
    let proof = reader.prove_inclusion(index, checkpoint.size())?;
    let proven = proof
        .verify_entry(&reader.entry(index)?, &checkpoint.root())
        .is_ok();
    say!(
        "  entry {index} (the first decision): inclusion proof of {} hashes against the \
         checkpoint",
        proof.hashes.len()
    );
    say!(
        "    {} {}",
        mark(proven),
        if proven { "proven" } else { "does NOT verify" }
    );
    Ok(verified && proven)
}

/// Send one step's request and check the answer; returns whether it behaved as expected and
/// the ledger entry of its decision.
async fn run_step(
    n: usize,
    step: &Step,
    client: &DemoClient,
    creds: &HashMap<&str, &X509Svid>,
    events: &mut broadcast::Receiver<Arc<StoredEvent>>,
) -> (bool, Option<u64>) {
    let who = step.caller.unwrap_or("no certificate");
    say!("{n:>2}. {}", step.title);
    say!(
        "    {who}: {} https://{}{} (SNI {})",
        step.method,
        step.host,
        step.path,
        step.sni
    );
    let svid = step.caller.and_then(|c| creds.get(c).copied());
    let result = client.send(svid, step).await;
    let mut entry = None;
    let (ok, detail) = match (&result, step.expect) {
        (Err(e), Expect::HandshakeRefused) => (true, format!("handshake refused: {e:#}")),
        (Err(e), Expect::Status(_)) => (false, format!("error: {e:#}")),
        (Ok(r), Expect::HandshakeRefused) => (false, format!("answered {}", r.status)),
        (Ok(r), Expect::Status(want)) => {
            let decision = match r.request_id.as_deref() {
                Some(id) => find_decision(events, id).await,
                None => None,
            };
            entry = decision.as_ref().map(|(index, _)| *index);
            let decision = match decision {
                Some((index, text)) => format!("{text} [ledger entry {index}]"),
                None => "no decision event".to_string(),
            };
            let mut detail = format!("{} {decision}", r.status);
            if !r.upstream_says.is_empty() {
                detail.push_str(&format!("; upstream saw {}", r.upstream_says));
            }
            (r.status == want && entry.is_some(), detail)
        }
    };
    say!("    {} {detail}", mark(ok));
    (ok, entry)
}

/// The decision event for `request_id` and its ledger index, from the live feed of stored
/// events.
async fn find_decision(
    events: &mut broadcast::Receiver<Arc<StoredEvent>>,
    request_id: &str,
) -> Option<(u64, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let stored = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()?
            .ok()?;
        let StoredEvent { index, event } = &*stored;
        let index = *index;
        match &event.kind {
            EventKind::Access(a) if a.request_id == request_id => {
                let contained = a.errors.iter().find(|e| e.starts_with("contained: "));
                let why = if let Some(c) = contained {
                    c.split(" (").next().unwrap_or(c).to_string()
                } else if a.reasons.is_empty() {
                    "default deny".to_string()
                } else {
                    a.reasons.join(", ")
                };
                let word = if a.disposition == tenet_event::Disposition::Allowed {
                    "allow"
                } else {
                    "deny"
                };
                return Some((index, format!("{word} ({why}) on {}{}", a.host, a.path)));
            }
            EventKind::Rejection(r) if r.request_id.as_deref() == Some(request_id) => {
                return Some((index, format!("rejected before policy: {}", r.kind)));
            }
            _ => {}
        }
    }
}

const STEPS: &[Step] = &[
    Step {
        title: "frontend reads the catalog",
        caller: Some("frontend"),
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products",
        expect: Expect::Status(200),
    },
    Step {
        title: "frontend places an order",
        caller: Some("frontend"),
        method: "POST",
        host: "orders.demo.tenet.test",
        sni: "orders.demo.tenet.test",
        path: "/orders",
        expect: Expect::Status(200),
    },
    Step {
        title: "frontend tries to delete a product (no policy allows it)",
        caller: Some("frontend"),
        method: "DELETE",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products/42",
        expect: Expect::Status(403),
    },
    Step {
        title: "frontend climbs out of /products with dot segments",
        caller: Some("frontend"),
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products/../admin/users",
        expect: Expect::Status(403),
    },
    Step {
        title: "frontend hides a slash in percent-encoding",
        caller: Some("frontend"),
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products/..%2Fadmin/users",
        expect: Expect::Status(400),
    },
    Step {
        title: "frontend sends SNI for one service and Host for another",
        caller: Some("frontend"),
        method: "GET",
        host: "orders.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/orders",
        expect: Expect::Status(421),
    },
    Step {
        title: "reporting reads the catalog (not allowed yet)",
        caller: Some("reporting"),
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products",
        expect: Expect::Status(403),
    },
    Step {
        title: "a caller without a client certificate",
        caller: None,
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products",
        expect: Expect::HandshakeRefused,
    },
    Step {
        title: "a certificate for frontend's ID from a foreign CA",
        caller: Some("rogue"),
        method: "GET",
        host: "catalog.demo.tenet.test",
        sni: "catalog.demo.tenet.test",
        path: "/products",
        expect: Expect::HandshakeRefused,
    },
];

const REPORTING_AFTER_RELOAD: Step = Step {
    title: "reporting reads the catalog under the reloaded policies",
    caller: Some("reporting"),
    method: "GET",
    host: "catalog.demo.tenet.test",
    sni: "catalog.demo.tenet.test",
    path: "/products",
    expect: Expect::Status(200),
};

const FRONTEND_REVOKED: Step = Step {
    title: "the frontend reads products with its still-valid certificate: refused",
    caller: Some("frontend"),
    method: "GET",
    host: "catalog.demo.tenet.test",
    sni: "catalog.demo.tenet.test",
    path: "/products",
    expect: Expect::Status(403),
};

const FRONTEND_RELEASED: Step = Step {
    title: "after the release the frontend reads products again",
    expect: Expect::Status(200),
    ..FRONTEND_REVOKED
};

const REPORTING_AFTER_REJECTED: Step = Step {
    title: "reporting still reads the catalog: the last good set stayed in force",
    ..REPORTING_AFTER_RELOAD
};

const SHOP_POLICIES: &str = r#"// The shop's policies. Everything not permitted here is denied.

@id("frontend-reads-catalog")
permit (
    principal == Tenet::Workload::"spiffe://demo.tenet.test/ns/shop/sa/frontend",
    action in Tenet::Action::"read",
    resource in Tenet::Service::"catalog"
) when { resource.path == "/products" || resource.path like "/products/*" };

@id("frontend-places-orders")
permit (
    principal == Tenet::Workload::"spiffe://demo.tenet.test/ns/shop/sa/frontend",
    action == Tenet::Action::"POST",
    resource in Tenet::Service::"orders"
) when { resource.path == "/orders" };

@id("no-admin-paths")
forbid (principal, action, resource) when { resource.path like "/admin*" };
"#;

const ANALYTICS_POLICY: &str = r#"@id("reporting-reads-catalog")
permit (
    principal == Tenet::Workload::"spiffe://demo.tenet.test/ns/analytics/sa/reporting",
    action == Tenet::Action::"GET",
    resource in Tenet::Service::"catalog"
) when { resource.path == "/products" || resource.path like "/products/*" };
"#;

const BROKEN_POLICY: &str = r#"@id("broken")
permit (principal, action, resource) when { resource.owner == "me" };
"#;

fn demo_config(catalog: SocketAddr, orders: SocketAddr) -> String {
    format!(
        r#"[deployment]
trust_domain = "{TD}"

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"
client_auth = "required"

[[routes]]
name = "catalog"
service = "catalog"
listener = "main"
host = "catalog.{TD}"
upstream = "https://{catalog}"
upstream_spiffe_id = "spiffe://{TD}/ns/shop/sa/catalog"

[[routes]]
name = "orders"
service = "orders"
listener = "main"
host = "orders.{TD}"
upstream = "http://{orders}"
"#
    )
}

fn issue(ca: &CertificateAuthority, path: &str) -> Result<X509Svid> {
    let id = SpiffeId::parse(&format!("spiffe://{TD}/{path}"))?;
    Ok(ca.issue_x509_svid(&id, Duration::from_secs(3600), OffsetDateTime::now_utc())?)
}

/// An SVID for an ID of the demo's trust domain, signed by a CA the deployment never trusted.
fn rogue_svid(path: &str) -> Result<X509Svid> {
    let td = TrustDomain::parse(TD)?;
    let rogue = CertificateAuthority::generate(&td, OffsetDateTime::now_utc())?;
    issue(&rogue, path)
}

/// An upstream service: echoes who called it, after verifying the gateway's identity
/// assertion against the trust bundle. With `mtls`, it also requires the gateway's SVID.
async fn start_upstream(
    ca: &CertificateAuthority,
    name: &'static str,
    mtls: bool,
) -> Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut bundles = BundleSet::new();
    bundles.insert(ca.bundle());
    let bundles = Arc::new(bundles);
    let acceptor = if mtls {
        let svid = issue(ca, &format!("ns/shop/sa/{name}"))?;
        let verifier = Arc::new(SvidVerifier::new(
            (*bundles).clone(),
            Duration::from_secs(60),
        ));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let resolver = Arc::new(SvidResolver::new(&svid)?);
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(tenet_identity::client_cert_verifier(verifier, true))
            .with_cert_resolver(resolver);
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
    } else {
        None
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let bundles = bundles.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let bundles = bundles.clone();
                    async move { Ok::<_, std::convert::Infallible>(echo(name, &bundles, req)) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Ok(Upstream { addr })
}

fn echo(service: &str, bundles: &BundleSet, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let token = req
        .headers()
        .get(&ASSERTION_HEADER)
        .and_then(|v| v.to_str().ok());
    let caller = token
        .map(|t| tenet_identity::verify_jwt_svid(t, bundles, service, OffsetDateTime::now_utc()));
    let (status, body) = match caller {
        Some(Ok(claims)) => (
            StatusCode::OK,
            serde_json::json!({"service": service, "caller": claims.spiffe_id.to_string(), "path": req.uri().path()}),
        ),
        Some(Err(e)) => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": format!("bad assertion: {e}")}),
        ),
        None => (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "no identity assertion"}),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

struct DemoClient {
    verifier: Arc<SvidVerifier>,
    gateway: SocketAddr,
    gateway_id: SpiffeId,
}

struct Answer {
    status: u16,
    request_id: Option<String>,
    upstream_says: String,
}

impl DemoClient {
    fn new(ca: &CertificateAuthority, gateway: SocketAddr) -> Result<Self> {
        let mut bundles = BundleSet::new();
        bundles.insert(ca.bundle());
        Ok(Self {
            verifier: Arc::new(SvidVerifier::new(bundles, Duration::from_secs(60))),
            gateway,
            gateway_id: SpiffeId::parse(&format!("spiffe://{TD}/tenet/gateway"))?,
        })
    }

    /// One request on a new connection, over HTTP/1.1, exactly as written in `step.path`.
    async fn send(&self, svid: Option<&X509Svid>, step: &Step) -> Result<Answer> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(tenet_identity::server_cert_verifier(
                self.verifier.clone(),
                Some(self.gateway_id.clone()),
            ));
        let tls = match svid {
            Some(svid) => builder.with_client_cert_resolver(Arc::new(SvidResolver::new(svid)?)),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = TcpStream::connect(self.gateway).await?;
        let name = ServerName::try_from(step.sni.to_string())?;
        let stream = connector
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(step.method)
            .uri(step.path)
            .header(http::header::HOST, step.host)
            .body(Full::new(Bytes::new()))?;
        // With TLS 1.3 a refused client certificate surfaces on the first read.
        let resp = sender
            .send_request(req)
            .await
            .context("the gateway closed the connection")?;
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get("x-tenet-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.into_body().collect().await?.to_bytes();
        let upstream_says = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("caller").and_then(|c| c.as_str()).map(str::to_string))
            .map(|caller| format!("verified caller {caller}"))
            .unwrap_or_default();
        Ok(Answer {
            status,
            request_id,
            upstream_says,
        })
    }
}
