//! `tenet up`: load a deployment and run its gateway listeners, admin API, policy watcher and
//! SVID rotation until told to stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use tenet_event::{Event, EventKind, PolicyEvent, SvidEvent};
use tenet_gateway::{
    CaAssertionIssuer, Clock, Gateway, GatewayHandle, GatewayParts, SvidResolver, SystemClock,
};
use tenet_identity::{BundleSet, CertificateAuthority, SvidVerifier, X509Svid};
use tenet_ledger::LedgerSink;
use tenet_policy::{PolicyEngine, PolicySnapshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::config::Config;

/// How long the policy directory must stay unchanged before a change is loaded.
const SETTLE: Duration = Duration::from_millis(300);
/// Most settle periods waited for before loading anyway.
const SETTLE_ROUNDS: usize = 20;
/// How often the policy directory is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(1);

/// A started deployment.
pub struct Running {
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin_addr: SocketAddr,
    pub policy: Arc<PolicyEngine>,
    pub reloader: Arc<PolicyReloader>,
    pub sink: LedgerSink,
    /// Revocations and quarantines in force.
    pub containment: Arc<tenet_contain::Containment>,
    /// The sign-in service, when `[people]` is configured.
    people: Option<Arc<tenet_people::SignIn>>,
    gateway: GatewayHandle,
    background: Vec<JoinHandle<()>>,
    /// Tells the detector to save its learned baselines and stop, and its task.
    detector: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Running {
    /// Stop accepting, drain, stop background tasks, then store what is queued and sign the
    /// final checkpoint.
    pub async fn shutdown(self) {
        for task in &self.background {
            task.abort();
        }
        self.gateway.shutdown().await;
        // The detector sees what the drained requests did, then saves its baselines.
        if let Some((stop, task)) = self.detector {
            let _ = stop.send(());
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                warn!("the detector did not stop within 10 s; learned baselines may be older");
            }
        }
        if let Some(people) = &self.people {
            if let Err(e) = people.sessions().flush() {
                warn!(error = %e, "sessions could not be written at shutdown");
            }
            // Refusals held back from the ledger so far are summarised before it closes.
            let now = time::OffsetDateTime::now_utc();
            people.record_refusal_summaries(now, true).await;
        }
        match self.sink.shutdown().await {
            Ok(Some(cp)) => {
                info!(entries = cp.size(), root = %cp.root(), "final checkpoint signed")
            }
            Ok(None) => info!("the ledger is empty; no checkpoint"),
            Err(e) => warn!(error = %e, "the final checkpoint could not be signed"),
        }
        info!("tenet stopped");
    }
}

/// Start everything the configuration describes.
pub async fn start(config: &Config) -> Result<Running> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ca = Arc::new(
        CertificateAuthority::load(&config.ca_dir()).with_context(|| {
            format!(
                "loading the CA from {} (run `tenet init` first)",
                config.ca_dir().display()
            )
        })?,
    );
    // A drill killed before it cleaned up left a permit behind: it goes before any request.
    if let Some(file) = crate::drill::remove_leftover_policy(&config.policy_dir)? {
        warn!(
            file = %file.display(),
            "removed a drill policy left by a `tenet drill privilege-escalation` that did not \
             finish (it granted the drill identity a service)"
        );
    }
    let snapshot = PolicySnapshot::load_dir(&config.policy_dir)
        .map_err(|e| anyhow!("policies in {}: {e}", config.policy_dir.display()))?;
    let policy = Arc::new(PolicyEngine::new(snapshot));

    let sink = crate::ledger::start_sink(config)?;
    let current = policy.current();
    record(
        &sink,
        &*clock,
        EventKind::Policy(PolicyEvent {
            outcome: "loaded".into(),
            active_hash: current.hash().to_string(),
            candidate_hash: None,
            policy_count: current.policy_count(),
            errors: vec![],
        }),
    )
    .await?;

    let svid = issue_gateway_svid(config, &ca, &*clock, &sink).await?;
    let resolver = Arc::new(SvidResolver::new(&svid)?);
    let mut bundles = BundleSet::new();
    bundles.insert(ca.bundle());
    let verifier = Arc::new(SvidVerifier::new(bundles, config.clock_skew));

    let containment = crate::contain::open(config)?;
    let (detector, risk): (
        Option<crate::detect::Detector>,
        Arc<dyn tenet_gateway::RiskSource>,
    ) = if config.detect.enabled {
        let services: Vec<String> = config.routes.iter().map(|r| r.service.clone()).collect();
        let (d, r) = crate::detect::load(
            &config.detect,
            &crate::detect::baselines_path(&config.data_dir),
            &services,
            containment.clone(),
            policy.clone(),
            sink.clone(),
            clock.clone(),
        )?;
        (Some(d), r)
    } else {
        info!("detection off ([detect] enabled = false)");
        (None, Arc::new(tenet_gateway::NoRisk))
    };
    let detector_feed = sink.subscribe();
    let people = match &config.people {
        Some(spec) => {
            let service = crate::people::build(
                spec,
                &config.data_dir.join("people"),
                ca.clone(),
                risk.clone(),
                Arc::new(sink.clone()),
            )
            .await?;
            let waiting: Vec<&str> = service
                .providers()
                .iter()
                .filter(|slot| !slot.is_discovered())
                .map(|slot| slot.config().name.as_str())
                .collect();
            if waiting.is_empty() {
                info!("sign-in for people routes ready");
            } else {
                warn!(
                    providers = ?waiting,
                    "sign-in for people routes ready, except through identity providers not \
                     reachable yet (503 until discovered; retried in the background)"
                );
            }
            Some(service)
        }
        None => None,
    };
    let gateway = Gateway::bind(GatewayParts {
        listeners: config.listeners.clone(),
        routes: config.routes.clone(),
        svid: resolver.clone(),
        verifier: verifier.clone(),
        policy: policy.clone(),
        sink: Arc::new(sink.clone()),
        assertions: Arc::new(CaAssertionIssuer::new(ca.clone(), Duration::from_secs(60))),
        clock: clock.clone(),
        max_connections: crate::descriptors::raise_limit(),
        max_connections_per_source: config.max_connections_per_source,
        containment: containment.clone(),
        risk,
        people: people
            .clone()
            .map(|p| p as Arc<dyn tenet_gateway::PeopleGate>),
        request_body_idle: config.request_body_idle,
        refusal_limits: config.refusal_limits,
    })
    .await?;
    let listeners = gateway.local_addrs();
    let gateway = gateway.spawn();

    let reloader = Arc::new(PolicyReloader::new(
        policy.clone(),
        config.policy_dir.clone(),
        sink.clone(),
        clock.clone(),
    ));
    let admin_state = Arc::new(AdminState {
        policy: policy.clone(),
        reloader: reloader.clone(),
        sink: sink.clone(),
        ledger_dir: config.ledger_dir(),
        bundle_pem: ca.bundle().to_pem(),
        trust_domain: config.trust_domain.to_string(),
        listeners: listeners.clone(),
        clock: clock.clone(),
        metrics: crate::metrics::handle(),
        containment: containment.clone(),
        people: people.clone(),
        witnesses: config.admin_witnesses.clone(),
    });
    let (admin_addr, admin_task) =
        admin::serve(config, admin_state, resolver.clone(), verifier).await?;

    let mut background = vec![
        admin_task,
        tokio::spawn(reloader.clone().watch()),
        tokio::spawn(rotate_svid(
            ca.clone(),
            resolver,
            svid,
            config.svid_ttl,
            gateway_dns_names(config),
            clock.clone(),
            sink.clone(),
        )),
        tokio::spawn(expire_containment(
            containment.clone(),
            sink.clone(),
            clock.clone(),
        )),
    ];
    if let (Some(people), Some(spec)) = (&people, &config.people) {
        background.push(tokio::spawn(keep_sessions(people.clone())));
        background.extend(crate::people::keep_discovering(spec, people));
    }
    let detector = detector.map(|detector| {
        let detector = detector.with_people(people.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        (stop, tokio::spawn(detector.run(detector_feed, stopped)))
    });
    for (name, addr) in &listeners {
        info!(listener = %name, %addr, "gateway listener up");
    }
    info!(%admin_addr, policies = current.policy_count(), "tenet up");
    Ok(Running {
        listeners,
        admin_addr,
        policy,
        reloader,
        sink,
        containment,
        people,
        gateway,
        background,
        detector,
    })
}

/// Every 30 s: sessions' last use written to their file (so idle timeouts survive a
/// restart), expired sessions dropped, and sign-in refusals held back from the ledger past a
/// source's limit summarised there; every 10 minutes the providers' keys fetched again
/// (retired keys stop verifying access tokens).
async fn keep_sessions(people: Arc<tenet_people::SignIn>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    let mut ticks: u32 = 0;
    loop {
        tick.tick().await;
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(20) {
            people.refresh_provider_keys().await;
        }
        let now = time::OffsetDateTime::now_utc();
        people.record_refusal_summaries(now, false).await;
        let sessions = people.sessions();
        if let Err(e) = sessions.purge_expired(now) {
            warn!(error = %e, "expired sessions could not be dropped");
        }
        if let Err(e) = sessions.flush() {
            warn!(error = %e, "sessions could not be written");
        }
    }
}

/// DNS names the gateway's SVID carries, so that ordinary TLS clients can verify it.
fn gateway_dns_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config.routes.iter().map(|r| r.host.clone()).collect();
    names.extend(
        config
            .listeners
            .iter()
            .flat_map(|l| l.server_names.iter().cloned()),
    );
    names.sort();
    names.dedup();
    names
}

async fn issue_gateway_svid(
    config: &Config,
    ca: &CertificateAuthority,
    clock: &dyn Clock,
    sink: &LedgerSink,
) -> Result<X509Svid> {
    let svid = ca.issue_x509_svid_with_dns(
        &config.gateway_id()?,
        &gateway_dns_names(config),
        config.svid_ttl,
        clock.now(),
    )?;
    let event = EventKind::Svid(svid_event(&svid, "tenet up"));
    record(sink, clock, event).await?;
    Ok(svid)
}

pub fn svid_event(svid: &X509Svid, requested_by: &str) -> SvidEvent {
    SvidEvent {
        spiffe_id: svid.spiffe_id().to_string(),
        svid_type: "x509".into(),
        serial: svid.serial_hex(),
        not_after: svid.not_after(),
        requested_by: requested_by.into(),
    }
}

/// Every second, record the end of time-boxed containments that expired.
async fn expire_containment(
    containment: Arc<tenet_contain::Containment>,
    sink: LedgerSink,
    clock: Arc<dyn Clock>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        crate::contain::record_expired(&containment, &sink, &*clock).await;
    }
}

/// Record one event and return its ledger index once it is stored.
pub async fn record(sink: &LedgerSink, clock: &dyn Clock, kind: EventKind) -> Result<u64> {
    sink.record_indexed(Event::new(clock.now(), kind))
        .await
        .map_err(|e| anyhow!("recording event: {e}"))
}

/// Re-issue the gateway SVID at half of its lifetime.
async fn rotate_svid(
    ca: Arc<CertificateAuthority>,
    resolver: Arc<SvidResolver>,
    mut svid: X509Svid,
    ttl: Duration,
    dns: Vec<String>,
    clock: Arc<dyn Clock>,
    sink: LedgerSink,
) {
    loop {
        tokio::time::sleep(ttl / 2).await;
        let id = svid.spiffe_id().clone();
        match ca.issue_x509_svid_with_dns(&id, &dns, ttl, clock.now()) {
            Ok(next) => {
                if let Err(e) = resolver.rotate(&next) {
                    warn!(error = %e, "gateway SVID rotation failed; keeping the current one");
                    continue;
                }
                let event = EventKind::Svid(svid_event(&next, "rotation"));
                if let Err(e) = record(&sink, &*clock, event).await {
                    warn!(error = %e, "SVID rotation not recorded");
                }
                info!(serial = %next.serial_hex(), "gateway SVID rotated");
                svid = next;
            }
            Err(e) => warn!(error = %e, "gateway SVID rotation failed; keeping the current one"),
        }
    }
}

/// A cheap fingerprint of the policy directory: names, sizes and modification times.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn dir_fingerprint(dir: &Path) -> Fingerprint {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            // Follow links (ConfigMap mounts swap a link's target), and keep entries whose
            // target is gone: their disappearance is a change too.
            let meta = std::fs::metadata(e.path()).ok();
            let len = meta.as_ref().map_or(u64::MAX, std::fs::Metadata::len);
            (e.path(), len, meta.and_then(|m| m.modified().ok()))
        })
        .collect();
    entries.sort();
    entries
}

/// Reloads the policy directory on request (admin API) or when it changes (watcher). Both
/// paths share the fingerprint of the directory as last loaded, so that a change made and
/// reverted between two polls after an explicit reload is still noticed.
pub struct PolicyReloader {
    pub policy: Arc<PolicyEngine>,
    dir: PathBuf,
    sink: LedgerSink,
    clock: Arc<dyn Clock>,
    seen: tokio::sync::Mutex<Fingerprint>,
}

impl PolicyReloader {
    pub fn new(
        policy: Arc<PolicyEngine>,
        dir: PathBuf,
        sink: LedgerSink,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let seen = tokio::sync::Mutex::new(dir_fingerprint(&dir));
        Self {
            policy,
            dir,
            sink,
            clock,
            seen,
        }
    }

    /// Validate and swap the policy set; a rejected set leaves the last good one in force.
    /// Both outcomes are events. Returns the event recorded.
    pub async fn reload(&self, trigger: &str) -> Result<PolicyEvent> {
        let mut seen = self.seen.lock().await;
        *seen = dir_fingerprint(&self.dir);
        // Parsing and validating a large set takes a while: off the async workers, so that
        // requests keep being served by the set in force meanwhile.
        let (policy, dir) = (self.policy.clone(), self.dir.clone());
        let reloaded = tokio::task::spawn_blocking(move || policy.reload_dir(&dir))
            .await
            .map_err(|e| anyhow::anyhow!("policy reload task failed: {e}"))?;
        let event = match reloaded {
            Ok(outcome) => {
                info!(trigger, hash = %outcome.new_hash, policies = outcome.policy_count,
                    changed = outcome.changed, "policies reloaded");
                PolicyEvent {
                    outcome: if outcome.changed {
                        "reloaded"
                    } else {
                        "unchanged"
                    }
                    .into(),
                    active_hash: outcome.new_hash,
                    candidate_hash: None,
                    policy_count: outcome.policy_count,
                    errors: vec![],
                }
            }
            Err(e) => {
                let current = self.policy.current();
                warn!(trigger, error = %e, active = %current.hash(),
                    "policy update rejected; the last good set stays in force");
                PolicyEvent {
                    outcome: "rejected".into(),
                    active_hash: current.hash().to_string(),
                    candidate_hash: None,
                    policy_count: current.policy_count(),
                    errors: e.to_string().lines().map(str::to_string).collect(),
                }
            }
        };
        drop(seen);
        record(&self.sink, &*self.clock, EventKind::Policy(event.clone())).await?;
        Ok(event)
    }

    /// Poll the directory and reload when it differs from what was last loaded.
    async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(POLICY_POLL).await;
            let mut current = dir_fingerprint(&self.dir);
            if *self.seen.lock().await == current {
                continue;
            }
            // Let a copy in progress finish: reload once the directory has stopped changing
            // for one settle period (bounded, so a directory that never settles still loads).
            for _ in 0..SETTLE_ROUNDS {
                tokio::time::sleep(SETTLE).await;
                let next = dir_fingerprint(&self.dir);
                if next == current {
                    break;
                }
                current = next;
            }
            if let Err(e) = self.reload("watcher").await {
                warn!(error = %e, "policy reload could not be recorded");
            }
        }
    }
}
