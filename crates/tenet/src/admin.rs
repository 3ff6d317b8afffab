//! The admin API: mTLS on its own address, only the deployment's admin credential accepted.
//!
//! `GET /v1/status`, `POST /v1/policy/reload`, `GET /v1/bundle`, `GET /metrics`, and for the
//! ledger: `GET /v1/log/checkpoint` (the newest signed checkpoint, C2SP note text),
//! `GET /v1/log/proof/inclusion?index=I[&size=S]`, `GET /v1/log/proof/consistency?old=O[&new=N]`
//! (proof JSON with the checkpoint it is against; the size defaults to the newest checkpoint's,
//! and `/v1/log/checkpoint?size=N` serves an older one), so that a witness can follow
//! the log, and `POST /v1/events/svid` (an SVID the CLI issued while the deployment holds the
//! ledger).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tenet_event::{AdminEvent, EventKind, SvidEvent};
use tenet_gateway::{Clock, SvidResolver};
use tenet_identity::{BundleSet, SpiffeId, SvidVerifier, X509Svid};
use tenet_ledger::{HistoryCheck, LedgerReader, LedgerSink, SignedCheckpoint};
use tenet_policy::PolicyEngine;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Config;
use crate::up::{PolicyReloader, record};

/// What admin requests act on.
pub struct AdminState {
    pub policy: Arc<PolicyEngine>,
    pub reloader: Arc<PolicyReloader>,
    pub sink: LedgerSink,
    /// The ledger directory, read for proofs.
    pub ledger_dir: std::path::PathBuf,
    pub bundle_pem: String,
    pub trust_domain: String,
    pub listeners: Vec<(String, SocketAddr)>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Option<PrometheusHandle>,
    pub containment: Arc<tenet_contain::Containment>,
    /// The sign-in service, when `[people]` is configured.
    pub people: Option<Arc<tenet_people::SignIn>>,
    /// Workloads allowed to read checkpoints and proofs (`[admin] witnesses`).
    pub witnesses: Vec<SpiffeId>,
}

/// What a witness may read: the ledger's checkpoints and proofs.
const WITNESS_PATHS: [&str; 3] = [
    "/v1/log/checkpoint",
    "/v1/log/proof/inclusion",
    "/v1/log/proof/consistency",
];

/// Whether `caller` is a witness asking for something a witness may read.
fn witness_read(req: &Request<Incoming>, caller: Option<&SpiffeId>, state: &AdminState) -> bool {
    caller.is_some_and(|id| state.witnesses.contains(id))
        && req.method() == Method::GET
        && WITNESS_PATHS.contains(&req.uri().path())
}

/// Bind the admin API and serve it in the background.
pub async fn serve(
    config: &Config,
    state: Arc<AdminState>,
    resolver: Arc<SvidResolver>,
    verifier: Arc<SvidVerifier>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(tenet_identity::client_cert_verifier(verifier, true))
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("admin API could not bind {}", config.admin_listen))?;
    let addr = listener.local_addr()?;
    let admin_id = config.admin_id()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let state = state.clone();
            let admin_id = admin_id.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(tcp),
                )
                .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        metrics::counter!("tenet_admin_handshakes_refused_total").increment(1);
                        return info!(%peer, error = %e, "admin handshake refused");
                    }
                    Err(_) => {
                        metrics::counter!("tenet_admin_handshakes_refused_total").increment(1);
                        return info!(%peer, "admin handshake timed out");
                    }
                };
                let caller = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| tenet_identity::peer_identity(c).ok())
                    .map(|p| p.id);
                let service = service_fn(move |req| {
                    let state = state.clone();
                    let caller = caller.clone();
                    let admin_id = admin_id.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            handle(req, caller, &admin_id, &state).await,
                        )
                    }
                });
                // Slow or idle admin clients do not hold a connection for long.
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tls), service);
                if let Err(e) = conn.await {
                    info!(%peer, error = %e, "admin connection error");
                }
            });
        }
    });
    Ok((addr, task))
}

pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    caller: Option<SpiffeId>,
    admin_id: &SpiffeId,
    state: &AdminState,
) -> Response<Full<Bytes>> {
    if caller.as_ref() != Some(admin_id) && !witness_read(&req, caller.as_ref(), state) {
        info!(caller = ?caller.as_ref().map(SpiffeId::as_str), path = %req.uri().path(),
            "admin request denied");
        // A workload probing the admin API is worth a record, like any other denial.
        let denied = EventKind::Admin(AdminEvent {
            actor: caller
                .as_ref()
                .map_or_else(|| "anonymous".into(), ToString::to_string),
            operation: format!("{} {}", req.method(), req.uri().path()),
            success: false,
            detail: "forbidden: not the admin credential, nor a witness reading the log".into(),
        });
        if let Err(e) = record(&state.sink, &*state.clock, denied).await {
            warn!(error = %e, "denied admin request not recorded");
        }
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "forbidden"}),
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/status") => {
            let current = state.policy.current();
            json(
                StatusCode::OK,
                serde_json::json!({
                    "trust_domain": state.trust_domain,
                    "policy_hash": current.hash(),
                    "policy_count": current.policy_count(),
                    "listeners": state.listeners.iter()
                        .map(|(n, a)| serde_json::json!({"name": n, "addr": a.to_string()}))
                        .collect::<Vec<_>>(),
                    "ledger": ledger_status(state),
                    "people": people_status(state),
                }),
            )
        }
        (&Method::POST, "/v1/policy/reload") => {
            let clock = &*state.clock;
            match state.reloader.reload("admin").await {
                Ok(event) => {
                    let ok = event.outcome != "rejected";
                    let _ = record(
                        &state.sink,
                        clock,
                        EventKind::Admin(AdminEvent {
                            actor: admin_id.to_string(),
                            operation: "policy.reload".into(),
                            success: ok,
                            detail: event.outcome.clone(),
                        }),
                    )
                    .await;
                    let status = if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    };
                    json(status, serde_json::to_value(&event).unwrap_or_default())
                }
                Err(e) => {
                    warn!(error = %e, "policy reload failed");
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"error": e.to_string()}),
                    )
                }
            }
        }
        (&Method::GET, "/v1/log/checkpoint") => checkpoint(state, req.uri().query().unwrap_or("")),
        (&Method::GET, "/v1/log/proof/inclusion") => {
            answer(inclusion(state, req.uri().query().unwrap_or("")))
        }
        (&Method::GET, "/v1/log/proof/consistency") => {
            answer(consistency(state, req.uri().query().unwrap_or("")))
        }
        (&Method::POST, crate::ledger::SVID_EVENT_PATH) => svid_event(req, state).await,
        (&Method::GET, crate::contain::CONTAIN_PATH) => {
            let now = state.clock.now();
            let actions: Vec<_> = state.containment.current().active(now).cloned().collect();
            json(StatusCode::OK, serde_json::json!({"actions": actions}))
        }
        (&Method::POST, crate::drill::DRILL_REPORT_PATH) => {
            drill_report(req, admin_id, state).await
        }
        (&Method::POST, crate::contain::CONTAIN_PATH) => {
            containment_change(req, admin_id, state).await
        }
        (_, path) if path.starts_with("/v1/people/") => {
            crate::people::admin(req, admin_id, state).await
        }
        (&Method::GET, "/v1/bundle") => {
            let mut r = Response::new(Full::new(Bytes::from(state.bundle_pem.clone())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/x-pem-file"),
            );
            r
        }
        (&Method::GET, "/metrics") => match &state.metrics {
            Some(h) => Response::new(Full::new(Bytes::from(h.render()))),
            None => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "metrics recorder not installed"}),
            ),
        },
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

/// The identity providers and whether each is discovered (sign-in through one that is not
/// answers 503); null without `[people]`.
fn people_status(state: &AdminState) -> serde_json::Value {
    let Some(people) = &state.people else {
        return serde_json::Value::Null;
    };
    let providers: Vec<serde_json::Value> = people
        .providers()
        .iter()
        .map(|slot| {
            serde_json::json!({
                "name": slot.config().name,
                "issuer": slot.config().issuer,
                "discovered": slot.is_discovered(),
            })
        })
        .collect();
    serde_json::json!({ "providers": providers })
}

fn ledger_status(state: &AdminState) -> serde_json::Value {
    let status = state.sink.status();
    serde_json::json!({
        "entries": status.size,
        "checkpoint_size": status.latest_checkpoint.as_ref().map(|c| c.size()),
        "durable_entries": status.durable,
        "failure": status.failure,
        "history": history_status(&status.history),
    })
}

/// The verification of the entries present at start, for the status answer.
fn history_status(history: &HistoryCheck) -> serde_json::Value {
    match history {
        HistoryCheck::Off => serde_json::json!({ "state": "off" }),
        HistoryCheck::Running { entries } => {
            serde_json::json!({ "state": "running", "entries": entries })
        }
        HistoryCheck::Verified { entries, anchored } => serde_json::json!({
            "state": "verified", "entries": entries, "anchored": anchored,
        }),
        HistoryCheck::Tampered(finding) => {
            serde_json::json!({ "state": "tampered", "finding": finding })
        }
        HistoryCheck::Failed(error) => serde_json::json!({ "state": "failed", "error": error }),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `GET /v1/log/checkpoint[?size=N]`: the newest signed checkpoint, or the one signed at
/// exactly `N` entries, as its C2SP note.
fn checkpoint(state: &AdminState, query: &str) -> Response<Full<Bytes>> {
    let found = query_u64(query, "size").and_then(|size| match size {
        None => newest_checkpoint(state),
        Some(size) => reader(state).and_then(|r| checkpoint_at(state, &r, size)),
    });
    match found {
        Ok(cp) => text(StatusCode::OK, cp.text().to_owned()),
        Err(e) => answer(Err(e)),
    }
}

/// A request the ledger cannot answer: bad parameters (400), no checkpoint of the size asked
/// for (404) or a read failure (500).
#[derive(Debug)]
enum ProofError {
    BadRequest(String),
    NotFound(String),
    Ledger(String),
}

fn answer(result: Result<serde_json::Value, ProofError>) -> Response<Full<Bytes>> {
    match result {
        Ok(value) => json(StatusCode::OK, value),
        Err(ProofError::BadRequest(e)) => {
            json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e}))
        }
        Err(ProofError::NotFound(e)) => {
            json(StatusCode::NOT_FOUND, serde_json::json!({"error": e}))
        }
        Err(ProofError::Ledger(e)) => {
            warn!(error = %e, "ledger proof failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": e}),
            )
        }
    }
}

/// The value of `name` in a query string, as a number written in decimal digits only (no
/// sign); `None` when absent.
fn query_u64(query: &str, name: &str) -> Result<Option<u64>, ProofError> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(ProofError::BadRequest(format!("{name} is given twice")));
        }
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        let n = value
            .parse::<u64>()
            .ok()
            .filter(|_| digits)
            .ok_or_else(|| {
                ProofError::BadRequest(format!(
                    "{name}={value:?} is not a non-negative integer written in digits"
                ))
            })?;
        found = Some(n);
    }
    Ok(found)
}

fn required(query: &str, name: &str) -> Result<u64, ProofError> {
    query_u64(query, name)?.ok_or_else(|| ProofError::BadRequest(format!("{name} is required")))
}

/// The newest signed checkpoint.
fn newest_checkpoint(state: &AdminState) -> Result<SignedCheckpoint, ProofError> {
    state.sink.status().latest_checkpoint.ok_or_else(|| {
        ProofError::NotFound(
            "no checkpoint has been signed yet (one follows within a second of an event)".into(),
        )
    })
}

/// The stored checkpoint signed at exactly `size` entries.
fn checkpoint_at(
    state: &AdminState,
    reader: &LedgerReader,
    size: u64,
) -> Result<SignedCheckpoint, ProofError> {
    reader
        .checkpoint_at(size)
        .map_err(|e| ProofError::Ledger(e.to_string()))?
        .ok_or_else(|| {
            let newest = state
                .sink
                .status()
                .latest_checkpoint
                .map_or_else(|| "none yet".to_owned(), |c| c.size().to_string());
            ProofError::NotFound(format!(
                "no checkpoint was signed at size {size} (the ledger holds {} entries; newest \
                 checkpoint size: {newest})",
                reader.size()
            ))
        })
}

/// The checkpoint a proof is against (the one of the size in `name`, else the newest) and a
/// reader opened after it was signed. Its root is checked against the stored tree, so that no
/// proof leads to a root the tree lacks.
fn proof_checkpoint(
    state: &AdminState,
    query: &str,
    name: &str,
) -> Result<(LedgerReader, SignedCheckpoint), ProofError> {
    let (reader, cp) = match query_u64(query, name)? {
        Some(size) => {
            let reader = reader(state)?;
            let cp = checkpoint_at(state, &reader, size)?;
            (reader, cp)
        }
        None => {
            let cp = newest_checkpoint(state)?;
            (reader(state)?, cp)
        }
    };
    let root = reader
        .root_at(cp.size())
        .map_err(|e| ProofError::Ledger(e.to_string()))?;
    if root != cp.root() {
        return Err(ProofError::Ledger(format!(
            "the ledger's tree of {} entries differs from its signed checkpoint; run `tenet log \
             verify`",
            cp.size()
        )));
    }
    Ok((reader, cp))
}

fn reader(state: &AdminState) -> Result<LedgerReader, ProofError> {
    LedgerReader::open(&state.ledger_dir).map_err(|e| ProofError::Ledger(e.to_string()))
}

fn ledger_error(e: tenet_ledger::LedgerError) -> ProofError {
    ProofError::Ledger(e.to_string())
}

/// `index=I[&size=N]`: the inclusion proof of entry `I` against the checkpoint of `N` entries
/// (else the newest), with that checkpoint's text and the entry, as `tenet log prove` answers.
fn inclusion(state: &AdminState, query: &str) -> Result<serde_json::Value, ProofError> {
    let index = required(query, "index")?;
    let (reader, cp) = proof_checkpoint(state, query, "size")?;
    if index >= cp.size() {
        return Err(ProofError::BadRequest(format!(
            "entry {index} is not covered by the checkpoint of {} entries",
            cp.size()
        )));
    }
    let proof = reader
        .prove_inclusion(index, cp.size())
        .map_err(ledger_error)?;
    let entry = reader.entry(index).map_err(ledger_error)?;
    proof
        .verify_entry(&entry, &cp.root())
        .map_err(|e| ProofError::Ledger(format!("the proof of entry {index} fails: {e}")))?;
    let entry = String::from_utf8(entry)
        .map_err(|_| ProofError::Ledger(format!("entry {index} is not UTF-8 text")))?;
    let mut out = serde_json::to_value(proof).map_err(|e| ProofError::Ledger(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut out {
        map.insert("checkpoint".into(), cp.text().into());
        map.insert("entry".into(), entry.into());
    }
    Ok(out)
}

/// `old=O[&new=N]`: the consistency proof from `O` entries to the checkpoint of `N` entries
/// (else the newest), with both checkpoints' texts (`old_checkpoint` null when none was signed
/// at `O`), as `tenet log consistency` answers.
fn consistency(state: &AdminState, query: &str) -> Result<serde_json::Value, ProofError> {
    let old = required(query, "old")?;
    let (reader, new_cp) = proof_checkpoint(state, query, "new")?;
    let new = new_cp.size();
    if old == 0 || old > new {
        return Err(ProofError::BadRequest(format!(
            "old={old} is not between 1 and the checkpoint size {new}"
        )));
    }
    let old_cp = match checkpoint_at(state, &reader, old) {
        Ok(cp) => Some(cp),
        Err(ProofError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let old_root = match &old_cp {
        Some(cp) => cp.root(),
        None => reader.root_at(old).map_err(ledger_error)?,
    };
    let proof = reader.prove_consistency(old, new).map_err(ledger_error)?;
    proof.verify(&old_root, &new_cp.root()).map_err(|e| {
        ProofError::Ledger(format!("the consistency proof {old} -> {new} fails: {e}"))
    })?;
    let mut out = serde_json::to_value(proof).map_err(|e| ProofError::Ledger(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut out {
        let old_text = old_cp.map_or(serde_json::Value::Null, |c| c.text().into());
        map.insert("old_checkpoint".into(), old_text);
        map.insert("new_checkpoint".into(), new_cp.text().into());
    }
    Ok(out)
}

/// Largest request body the admin API reads (an SVID event is a few hundred bytes).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A request's body, at most `limit` bytes; otherwise the 400 to answer.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(Box::new(json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("request body: {e}")}),
        ))),
    }
}

/// Record an SVID that the CLI issued from the CA files while this process holds the ledger.
/// The SPIFFE ID must belong to this deployment's trust domain.
async fn svid_event(req: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let mut event: SvidEvent = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("not an SVID event: {e}")}),
            );
        }
    };
    let in_domain = SpiffeId::parse(&event.spiffe_id)
        .is_ok_and(|id| id.trust_domain().as_str() == state.trust_domain);
    if !in_domain || !matches!(event.svid_type.as_str(), "x509" | "jwt") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!(
                "{:?} is not an x509 or jwt SVID of trust domain {}",
                event.spiffe_id, state.trust_domain
            )}),
        );
    }
    event.requested_by = "cli (admin API)".into();
    let clock = &*state.clock;
    match record(&state.sink, clock, EventKind::Svid(event)).await {
        Ok(index) => json(StatusCode::OK, serde_json::json!({"index": index})),
        Err(e) => {
            warn!(error = %e, "SVID issued by the CLI could not be recorded");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": e.to_string()}),
            )
        }
    }
}

/// `POST /v1/drill/report`: a drill's report (a JSON object) into the ledger.
async fn drill_report(
    req: Request<Incoming>,
    admin_id: &SpiffeId,
    state: &AdminState,
) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let report: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "a drill report is a JSON object"}),
            );
        }
    };
    let success =
        report.get("outcome").and_then(serde_json::Value::as_str) == Some("detected and contained");
    let event = EventKind::Admin(AdminEvent {
        actor: admin_id.to_string(),
        operation: "drill.report".into(),
        success,
        detail: report.to_string(),
    });
    match record(&state.sink, &*state.clock, event).await {
        Ok(index) => json(StatusCode::OK, serde_json::json!({"index": index})),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

/// `POST /v1/containment`: revoke, quarantine or release, as the admin.
async fn containment_change(
    req: Request<Incoming>,
    admin_id: &SpiffeId,
    state: &AdminState,
) -> Response<Full<Bytes>> {
    let body = match read_body(req, MAX_BODY).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let change: crate::contain::Change = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("not a containment change: {e}")}),
            );
        }
    };
    let recorder = crate::contain::Recorder::Running {
        sink: &state.sink,
        clock: &*state.clock,
    };
    match crate::contain::apply(
        &state.containment,
        &recorder,
        admin_id.as_str(),
        change,
        state.clock.now(),
    )
    .await
    {
        Ok(actions) => json(StatusCode::OK, serde_json::json!({"actions": actions})),
        Err(e) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({"error": format!("{e:#}")}),
        ),
    }
}

/// Whether `error` means that nothing listens on the admin address.
pub fn unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// The CLI side: call the admin API of the deployment in `config` with its admin credential.
pub async fn call(config: &Config, method: Method, path: &str) -> Result<(StatusCode, String)> {
    call_with(config, method, path, Vec::new()).await
}

/// How long the CLI waits for the admin API to connect and answer in full: a deployment that
/// accepts connections but does not answer (stopped, overloaded, or another program on its
/// address) must not hold a command forever.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`call`] with a JSON request body (none when empty).
pub async fn call_with(
    config: &Config,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, String)> {
    let addr = config.admin_listen;
    tokio::time::timeout(CALL_TIMEOUT, call_unbounded(config, method, path, body))
        .await
        .map_err(|_| {
            anyhow!(
                "the admin API at {addr} did not answer within {} s (is it a running `tenet \
                 up`?)",
                CALL_TIMEOUT.as_secs()
            )
        })?
}

async fn call_unbounded(
    config: &Config,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, String)> {
    let dir = config.admin_dir();
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("reading admin credential {}", p.display()))
    };
    let svid = X509Svid::load_pem(&read("svid.pem")?, &read("svid.key")?)
        .map_err(|e| anyhow!("admin credential in {}: {e}", dir.display()))?;
    let bundle =
        tenet_identity::TrustBundle::from_pem(config.trust_domain.clone(), &read("bundle.pem")?)
            .map_err(|e| anyhow!("admin bundle in {}: {e}", dir.display()))?;
    let mut bundles = BundleSet::new();
    bundles.insert(bundle);
    let verifier = Arc::new(SvidVerifier::new(bundles, config.clock_skew));
    let resolver = Arc::new(SvidResolver::new(&svid)?);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(tenet_identity::server_cert_verifier(
            verifier,
            Some(config.gateway_id()?),
        ))
        .with_client_cert_resolver(resolver);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let addr = config.admin_listen;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("connecting to the admin API at {addr} (is `tenet up` running?)")
        })?;
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = connector
        .connect(name, tcp)
        .await
        .context("admin API TLS handshake")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let resp = sender
        .send_request(req)
        .await
        .context("admin API request")?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status == StatusCode::FORBIDDEN {
        bail!(
            "the admin API refused the admin credential in {}",
            dir.display()
        );
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        assert_eq!(query_u64("index=3&size=7", "size").unwrap(), Some(7));
        assert_eq!(query_u64("index=3", "size").unwrap(), None);
        assert_eq!(query_u64("", "index").unwrap(), None);
        assert!(matches!(
            query_u64("index=-1", "index"),
            Err(ProofError::BadRequest(m)) if m.contains("\"-1\"")
        ));
        assert!(matches!(
            query_u64("index=+5", "index"),
            Err(ProofError::BadRequest(m)) if m.contains("\"+5\"")
        ));
        assert!(query_u64("index=", "index").is_err());
        assert_eq!(query_u64("index=007", "index").unwrap(), Some(7));
        assert!(query_u64("index=1&index=2", "index").is_err());
        assert!(query_u64("index", "index").is_err());
        assert!(required("size=1", "index").is_err());
    }
}
