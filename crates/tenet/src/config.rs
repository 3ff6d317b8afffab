//! `tenet.toml`: finding it, reading it, and turning it into gateway parts.
//!
//! Lookup order: `--config`, then `TENET_CONFIG`, then `./tenet.toml`. Relative paths inside
//! the file are relative to the file's own directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tenet_gateway::{ClientAuth, ListenerSpec, RouteSpec, UpstreamProtocol, UpstreamSpec};
use tenet_identity::{SpiffeId, TrustDomain};
use tenet_ledger::SyncPolicy;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub deployment: DeploymentSection,
    #[serde(default)]
    pub events: EventsSection,
    pub admin: AdminSection,
    #[serde(default)]
    pub listeners: Vec<ListenerSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub detect: DetectSection,
    /// Sign-in for people routes.
    #[serde(default)]
    pub people: Option<crate::people::PeopleSection>,
}

/// `[detect]`: detection and response inside `tenet up`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSection {
    /// Detection and response on (default). Off: no analytics, rules, risk or playbooks
    /// (containment by hand still works).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Sigma rules (file or folder) run on every event; none when absent.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// Response playbooks (YAML files); a missing folder means none.
    #[serde(default = "default_playbook_dir")]
    pub playbooks: PathBuf,
    /// How long a principal whose risk crosses the cut-off threshold is revoked, or "off".
    #[serde(default = "default_cut_off")]
    pub cut_off: String,
    /// Tuning of the behavioural analytics (windows, thresholds, learning, risk).
    #[serde(default)]
    pub analytics: tenet_detect::AnalyticsConfig,
}

impl Default for DetectSection {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: None,
            playbooks: default_playbook_dir(),
            cut_off: default_cut_off(),
            analytics: tenet_detect::AnalyticsConfig::default(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_playbook_dir() -> PathBuf {
    PathBuf::from("playbooks")
}
fn default_cut_off() -> String {
    "15m".into()
}

/// Detection and response, resolved.
#[derive(Debug, Clone)]
pub struct DetectSpec {
    pub enabled: bool,
    pub rules: Option<PathBuf>,
    pub playbooks: PathBuf,
    pub cut_off: Option<Duration>,
    pub analytics: tenet_detect::AnalyticsConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSection {
    pub trust_domain: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_policy_dir")]
    pub policy_dir: PathBuf,
    /// Lifetime of the gateway's own SVID, e.g. "1h".
    #[serde(default = "default_svid_ttl")]
    pub svid_ttl: String,
    /// Clock skew tolerated on peer certificates, e.g. "60s".
    #[serde(default = "default_skew")]
    pub clock_skew: String,
    /// How long a forwarded request's body may go without a byte, e.g. "30s".
    #[serde(default)]
    pub request_body_idle_timeout: Option<String>,
    /// Most connections open at once from one source (an address, or an IPv6 /64); half of
    /// the connection limit when not set.
    #[serde(default)]
    pub max_connections_per_source: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// "interval" (fdatasync every 100 ms off the request path, the default), another
    /// interval such as "1s", "batch" (fdatasync every group commit before it is
    /// acknowledged), or "never".
    #[serde(default = "default_sync")]
    pub sync: String,
    /// Refused connections and requests recorded one by one per source (an address, or an
    /// IPv6 /64), stage and listener each minute; past it they are summarised.
    #[serde(default = "default_refusals_per_source")]
    pub refusals_per_source: u32,
    /// Refusal events recorded each minute across all sources, summaries included.
    #[serde(default = "default_refusals_overall")]
    pub refusals_overall: u32,
}

fn default_refusals_per_source() -> u32 {
    tenet_gateway::RefusalLimits::default().per_source
}

fn default_refusals_overall() -> u32 {
    tenet_gateway::RefusalLimits::default().overall
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            sync: default_sync(),
            refusals_per_source: default_refusals_per_source(),
            refusals_overall: default_refusals_overall(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: SocketAddr,
    /// SPIFFE IDs that may read checkpoints and proofs (and nothing else).
    #[serde(default)]
    pub witnesses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    pub name: String,
    pub listen: SocketAddr,
    #[serde(default = "default_client_auth")]
    pub client_auth: String,
    #[serde(default)]
    pub server_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub name: String,
    pub service: String,
    pub listener: String,
    pub host: String,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub upstream: String,
    #[serde(default)]
    pub upstream_spiffe_id: Option<String>,
    #[serde(default = "default_protocol")]
    pub upstream_protocol: String,
    /// A route for people: callers sign in (OpenID Connect, WebAuthn) and hold a session.
    #[serde(default)]
    pub people: bool,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}
fn default_svid_ttl() -> String {
    "1h".into()
}
fn default_skew() -> String {
    "60s".into()
}
fn default_sync() -> String {
    "interval".into()
}
fn default_client_auth() -> String {
    "required".into()
}
fn default_prefix() -> String {
    "/".into()
}
fn default_protocol() -> String {
    "auto".into()
}

/// A loaded and checked configuration with absolute paths.
#[derive(Debug)]
pub struct Config {
    pub trust_domain: TrustDomain,
    pub data_dir: PathBuf,
    pub policy_dir: PathBuf,
    pub svid_ttl: Duration,
    pub clock_skew: Duration,
    /// The gateway's idle limit on forwarded request bodies.
    pub request_body_idle: Duration,
    pub refusal_limits: tenet_gateway::RefusalLimits,
    pub max_connections_per_source: Option<usize>,
    pub sync: SyncPolicy,
    pub admin_listen: SocketAddr,
    /// Workloads allowed to read the ledger's checkpoints and proofs from the admin API.
    pub admin_witnesses: Vec<SpiffeId>,
    pub listeners: Vec<ListenerSpec>,
    pub routes: Vec<RouteSpec>,
    pub detect: DetectSpec,
    pub people: Option<crate::people::PeopleSpec>,
}

impl Config {
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }
    pub fn admin_dir(&self) -> PathBuf {
        self.data_dir.join("admin")
    }
    /// Revoked identities and quarantined services in force (`tenet-contain`).
    pub fn containment_path(&self) -> PathBuf {
        self.data_dir.join("containment.json")
    }
    /// The event ledger: segments, tree hashes and signed checkpoints.
    pub fn ledger_dir(&self) -> PathBuf {
        self.data_dir.join("ledger")
    }
    /// The checkpoint signing key and the signer's state (owner only).
    pub fn ledger_key_dir(&self) -> PathBuf {
        self.data_dir.join("ledger-key")
    }
    pub fn ledger_signing_key(&self) -> PathBuf {
        self.ledger_key_dir().join("signing.pem")
    }
    /// The last size and root signed, so a rolled-back checkpoints file is never re-signed.
    pub fn ledger_signer_state(&self) -> PathBuf {
        self.ledger_key_dir().join("signer.state")
    }
    /// The public verifier key, in C2SP note form.
    pub fn ledger_verifier_key(&self) -> PathBuf {
        self.data_dir.join("ledger.vkey")
    }
    /// The origin line of a new ledger's checkpoints (and its key name).
    pub fn ledger_origin(&self) -> String {
        format!("{}/tenet-ledger", self.trust_domain)
    }
    pub fn admin_id(&self) -> Result<SpiffeId> {
        admin_id(&self.trust_domain)
    }
    pub fn gateway_id(&self) -> Result<SpiffeId> {
        SpiffeId::parse(&format!("spiffe://{}/tenet/gateway", self.trust_domain))
            .map_err(|e| anyhow!("gateway SPIFFE ID: {e}"))
    }
}

/// The SPIFFE ID of the CLI's admin credential.
pub fn admin_id(td: &TrustDomain) -> Result<SpiffeId> {
    SpiffeId::parse(&format!("spiffe://{td}/tenet/admin")).map_err(|e| anyhow!("admin ID: {e}"))
}

/// `--config`, then `TENET_CONFIG`, then `./tenet.toml`.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("TENET_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("tenet.toml"),
    }
}

/// Read and check the configuration file.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    let path = locate(explicit);
    // A FIFO or a device would block or never end: only a regular file of sane size is read.
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            bail!("configuration {} is not a regular file", path.display());
        }
        if meta.len() > MAX_CONFIG_BYTES {
            bail!(
                "configuration {} is {} bytes; the limit is {MAX_CONFIG_BYTES}",
                path.display(),
                meta.len()
            );
        }
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading configuration {} (give --config, set TENET_CONFIG, or run `tenet init`)",
            path.display()
        )
    })?;
    let file: ConfigFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    resolve(&path, file).with_context(|| format!("in {}", path.display()))
}

fn resolve(path: &Path, file: ConfigFile) -> Result<Config> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let trust_domain = TrustDomain::parse(&file.deployment.trust_domain).map_err(|e| {
        anyhow!(
            "deployment.trust_domain {:?}: {e}",
            file.deployment.trust_domain
        )
    })?;
    let listeners = file
        .listeners
        .iter()
        .map(listener_spec)
        .collect::<Result<Vec<_>>>()?;
    unique("listener", listeners.iter().map(|l| l.name.as_str()))?;
    let routes = file
        .routes
        .iter()
        .map(route_spec)
        .collect::<Result<Vec<_>>>()?;
    unique("route", routes.iter().map(|r| r.name.as_str()))?;
    let mut places: Vec<(&str, &str)> = routes
        .iter()
        .map(|r| (r.host.as_str(), r.path_prefix.as_str()))
        .collect();
    places.sort_unstable();
    if let Some(pair) = places.windows(2).find(|w| w.first() == w.get(1))
        && let Some((host, prefix)) = pair.first()
    {
        bail!("two routes serve host {host:?} under path_prefix {prefix:?}; only one could match");
    }
    let admin_witnesses = witnesses(&trust_domain, &file.admin.witnesses)?;
    Ok(Config {
        admin_witnesses,
        trust_domain,
        data_dir: base.join(&file.deployment.data_dir),
        policy_dir: base.join(&file.deployment.policy_dir),
        svid_ttl: parse_duration(&file.deployment.svid_ttl).context("deployment.svid_ttl")?,
        clock_skew: bounded_skew(&file.deployment.clock_skew)?,
        request_body_idle: body_idle(file.deployment.request_body_idle_timeout.as_deref())?,
        sync: parse_sync(&file.events.sync).context("events.sync")?,
        refusal_limits: refusal_limits(&file.events)?,
        max_connections_per_source: per_source_limit(file.deployment.max_connections_per_source)?,
        admin_listen: file.admin.listen,
        people: crate::people::people_spec(&base, file.people, &routes, &listeners)?,
        listeners,
        detect: detect_spec(&base, file.detect)?,
        routes,
    })
}

fn detect_spec(base: &Path, d: DetectSection) -> Result<DetectSpec> {
    d.analytics
        .validate()
        .map_err(|e| anyhow!("detect.analytics: {e}"))?;
    let cut_off = match d.cut_off.trim() {
        "off" => None,
        other => Some(parse_duration(other).context("detect.cut_off")?),
    };
    Ok(DetectSpec {
        enabled: d.enabled,
        rules: d.rules.map(|r| base.join(r)),
        playbooks: base.join(d.playbooks),
        cut_off,
        analytics: d.analytics,
    })
}

fn unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w.first() == w.get(1))
        && let Some(name) = pair.first()
    {
        bail!("{what} name {name:?} is used twice; {what} names must be unique");
    }
    Ok(())
}

fn listener_spec(l: &ListenerSection) -> Result<ListenerSpec> {
    let client_auth = match l.client_auth.as_str() {
        "required" => ClientAuth::Required,
        "optional" => ClientAuth::Optional,
        other => bail!(
            "listener {:?}: client_auth {other:?} is not \"required\" or \"optional\"",
            l.name
        ),
    };
    let server_names = l
        .server_names
        .iter()
        .map(|n| canonical_host(n).with_context(|| format!("listener {:?}", l.name)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ListenerSpec {
        name: l.name.clone(),
        addr: l.listen,
        server_names,
        client_auth,
    })
}

fn route_spec(r: &RouteSection) -> Result<RouteSpec> {
    let ctx = || format!("route {:?}", r.name);
    let url: http::Uri = r
        .upstream
        .parse()
        .with_context(|| format!("upstream {:?} is not a URL", r.upstream))
        .with_context(ctx)?;
    if url.path_and_query().is_some_and(|p| p.as_str() != "/") {
        bail!("{}: upstream {:?} must not have a path", ctx(), r.upstream);
    }
    let spiffe_id = r
        .upstream_spiffe_id
        .as_deref()
        .map(|s| SpiffeId::parse(s).map_err(|e| anyhow!("upstream_spiffe_id {s:?}: {e}")))
        .transpose()
        .with_context(ctx)?;
    if url.scheme_str() == Some("https") && spiffe_id.is_none() {
        bail!(
            "{}: an https upstream needs upstream_spiffe_id, the identity it must present \
             (without it any workload of the trust domain could stand in for it)",
            ctx()
        );
    }
    let protocol = match r.upstream_protocol.as_str() {
        "auto" => UpstreamProtocol::Auto,
        "http2" => UpstreamProtocol::Http2,
        other => bail!(
            "{}: upstream_protocol {other:?} is not \"auto\" or \"http2\"",
            ctx()
        ),
    };
    if !r.path_prefix.starts_with('/') {
        bail!(
            "{}: path_prefix {:?} must start with '/'",
            ctx(),
            r.path_prefix
        );
    }
    Ok(RouteSpec {
        name: r.name.clone(),
        service: r.service.clone(),
        listener: r.listener.clone(),
        host: canonical_host(&r.host).with_context(ctx)?,
        path_prefix: r.path_prefix.clone(),
        upstream: UpstreamSpec {
            url,
            spiffe_id,
            protocol,
        },
        people: r.people,
    })
}

fn canonical_host(raw: &str) -> Result<String> {
    let host = tenet_request::canonical_host(raw, 443).map_err(|e| anyhow!("host {raw:?}: {e}"))?;
    if host.port().is_some() {
        bail!("host {raw:?}: give the name without a port");
    }
    Ok(host.name().to_string())
}

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Largest clock skew accepted: beyond it, expired credentials would effectively not expire.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

fn bounded_skew(text: &str) -> Result<Duration> {
    let skew = parse_duration(text).context("deployment.clock_skew")?;
    if skew > MAX_CLOCK_SKEW {
        bail!("deployment.clock_skew {text:?} is more than the 5m allowed");
    }
    Ok(skew)
}

/// Shortest and longest idle limit on forwarded request bodies: below a second, a client on a
/// slow link loses its uploads; above an hour, a stalled body holds its connection as if
/// there were no limit.
const BODY_IDLE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);

fn body_idle(text: Option<&str>) -> Result<Duration> {
    let Some(text) = text else {
        return Ok(tenet_gateway::DEFAULT_REQUEST_BODY_IDLE_TIMEOUT);
    };
    let idle = parse_duration(text).context("deployment.request_body_idle_timeout")?;
    if !BODY_IDLE_RANGE.contains(&idle) {
        bail!("deployment.request_body_idle_timeout {text:?} must be between 1s and 1h");
    }
    Ok(idle)
}

fn refusal_limits(events: &EventsSection) -> Result<tenet_gateway::RefusalLimits> {
    for (name, value) in [
        ("refusals_per_source", events.refusals_per_source),
        ("refusals_overall", events.refusals_overall),
    ] {
        if value == 0 {
            bail!("events.{name} must be at least 1");
        }
    }
    Ok(tenet_gateway::RefusalLimits {
        per_source: events.refusals_per_source,
        overall: events.refusals_overall,
    })
}

fn per_source_limit(limit: Option<usize>) -> Result<Option<usize>> {
    if limit == Some(0) {
        bail!("deployment.max_connections_per_source must be at least 1");
    }
    Ok(limit)
}

/// "90s", "15m", "1h", "2d", "500ms".
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        bail!("duration {text:?} must start with a number");
    }
    let too_large = || anyhow!("duration {text:?}: the number is too large");
    let n: u64 = num.parse().map_err(|_| too_large())?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => bail!("duration {text:?}: unit must be ms, s, m, h or d"),
    }
    .ok_or_else(too_large)?;
    if secs == 0 {
        bail!("duration {text:?} must be positive");
    }
    Ok(Duration::from_secs(secs))
}

/// The `[events] sync` setting as the ledger's sync policy.
fn parse_sync(text: &str) -> Result<SyncPolicy> {
    Ok(match text {
        "batch" => SyncPolicy::EveryBatch,
        "interval" => SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL),
        "never" => SyncPolicy::Never,
        other => {
            let every = parse_duration(other).map_err(|_| {
                anyhow!(
                    "{other:?} is not \"batch\", \"interval\", \"never\" or an interval such \
                     as \"100ms\""
                )
            })?;
            let (low, high) = SYNC_INTERVAL_BOUNDS;
            if every < low || every > high {
                bail!(
                    "{other:?}: a sync interval must be between 10ms and 1h (shorter ones keep a \
                     core busy syncing; for a sync before every acknowledgement say \"batch\")"
                );
            }
            SyncPolicy::Interval(every)
        }
    })
}

/// The sync intervals `[events] sync` accepts.
const SYNC_INTERVAL_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3600));

/// What `sync = "interval"` (the default) means.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// `[admin] witnesses`: SPIFFE IDs of this trust domain (the admin API verifies callers
/// against this deployment's bundle only, so another domain's ID could never sign in).
fn witnesses(trust_domain: &TrustDomain, ids: &[String]) -> Result<Vec<SpiffeId>> {
    ids.iter()
        .map(|s| {
            let id = SpiffeId::parse(s).map_err(|e| anyhow!("admin.witnesses {s:?}: {e}"))?;
            if id.trust_domain() != trust_domain {
                bail!(
                    "admin.witnesses {s:?}: not in this deployment's trust domain \
                     {trust_domain}, so it could never reach the admin API"
                );
            }
            Ok(id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5y").is_err());
        let message = |t: &str| parse_duration(t).unwrap_err().to_string();
        assert_eq!(
            message("99999999999999999999s"),
            "duration \"99999999999999999999s\": the number is too large"
        );
        assert_eq!(
            message("999999999999999999d"),
            "duration \"999999999999999999d\": the number is too large"
        );
        assert_eq!(message("h"), "duration \"h\" must start with a number");
    }

    #[test]
    fn refusal_limits_of_zero_are_refused() {
        let mut events = EventsSection::default();
        assert_eq!(
            refusal_limits(&events).unwrap(),
            tenet_gateway::RefusalLimits::default()
        );
        events.refusals_overall = 0;
        let e = refusal_limits(&events).unwrap_err().to_string();
        assert_eq!(e, "events.refusals_overall must be at least 1");
        events.refusals_per_source = 0;
        let e = refusal_limits(&events).unwrap_err().to_string();
        assert_eq!(e, "events.refusals_per_source must be at least 1");
    }

    #[test]
    fn a_source_connection_limit_of_zero_is_refused() {
        assert_eq!(per_source_limit(None).unwrap(), None);
        assert_eq!(per_source_limit(Some(5)).unwrap(), Some(5));
        let e = per_source_limit(Some(0)).unwrap_err().to_string();
        assert!(e.contains("deployment.max_connections_per_source"), "{e}");
    }

    #[test]
    fn request_body_idle_timeout_is_bounded() {
        assert_eq!(
            body_idle(None).unwrap(),
            tenet_gateway::DEFAULT_REQUEST_BODY_IDLE_TIMEOUT
        );
        assert_eq!(body_idle(Some("2s")).unwrap(), Duration::from_secs(2));
        assert_eq!(body_idle(Some("1h")).unwrap(), Duration::from_secs(3600));
        for refused in ["500ms", "2h", "0s"] {
            let e = format!("{:#}", body_idle(Some(refused)).unwrap_err());
            assert!(e.contains("request_body_idle_timeout"), "{refused}: {e}");
        }
    }

    #[test]
    fn sync_settings_map_to_the_ledger_policy() {
        assert_eq!(parse_sync("batch").unwrap(), SyncPolicy::EveryBatch);
        assert_eq!(parse_sync("never").unwrap(), SyncPolicy::Never);
        assert_eq!(
            parse_sync("interval").unwrap(),
            SyncPolicy::Interval(Duration::from_millis(100))
        );
        assert_eq!(
            parse_sync("250ms").unwrap(),
            SyncPolicy::Interval(Duration::from_millis(250))
        );
        let err = parse_sync("sometimes").unwrap_err().to_string();
        assert!(err.contains("\"sometimes\""), "{err}");
        for bad in ["0ms", "5ms", "2h"] {
            let err = parse_sync(bad).unwrap_err().to_string();
            assert!(err.contains("between 10ms and 1h"), "{bad}: {err}");
        }
        assert_eq!(
            parse_sync("10ms").unwrap(),
            SyncPolicy::Interval(Duration::from_millis(10))
        );
    }
}
