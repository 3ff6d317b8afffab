//! `[people]` in tenet.toml: sign-in for people routes (OpenID Connect providers, WebAuthn,
//! sessions and their continuous evaluation, device posture requirements), and building the
//! gateway's sign-in service from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use tenet_device::PostureRequirements;
use tenet_event::EventSink;
use tenet_gateway::{ListenerSpec, RiskSource, RouteSpec};
use tenet_identity::CertificateAuthority;
use tenet_people::{Devices, SignIn, SignInParts};

use crate::config::parse_duration;

/// `[people]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleSection {
    /// The WebAuthn relying party id: the registrable domain of the people routes.
    pub rp_id: String,
    /// The name authenticators show.
    #[serde(default = "default_rp_name")]
    pub rp_name: String,
    /// The exact origins (https, with a non-default port) WebAuthn accepts.
    pub origins: Vec<String>,
    /// The sites (https origins) that may embed the people pages in a cross-origin frame and
    /// run a WebAuthn ceremony there. Empty (the default): cross-origin ceremonies are refused.
    #[serde(default)]
    pub top_origins: Vec<String>,
    /// Accept a cross-origin WebAuthn ceremony whose browser does not say which site embeds
    /// it (`crossOrigin: true` without `topOrigin`). Default false: any site allowed to frame
    /// the people pages could then run the ceremony in its frame, so framing protections must
    /// keep other sites out.
    #[serde(default)]
    pub cross_origin_without_top_origin: bool,
    /// Whether a WebAuthn factor is required after the provider's sign-in (default true).
    #[serde(default = "default_true")]
    pub require_webauthn: bool,
    /// Members of these provider groups always need a WebAuthn factor (administrators).
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Accept the providers' access tokens (`Authorization: Bearer`) from API callers
    /// without a session, when they carry exactly this audience. Off when absent.
    #[serde(default)]
    pub bearer_audience: Option<String>,
    /// Most sign-ins one source address may start per ten minutes (default 300; an office
    /// behind one NAT address needs room).
    #[serde(default = "default_sign_ins_per_source")]
    pub sign_ins_per_source: u32,
    /// The token kind bearer tokens must declare: `typ:<media type>` (header) or
    /// `token_use:<value>` (claim). Any kind when absent.
    #[serde(default)]
    pub bearer_kind: Option<String>,
    /// Longest a request whose bearer token names a key the provider has not published yet
    /// waits for the provider's keys to be fetched again, e.g. "3s" (the default; at most the
    /// 10 s the fetch itself may take).
    #[serde(default)]
    pub bearer_key_wait: Option<String>,
    /// Idle timeout of a session, e.g. "30m".
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
    /// Absolute lifetime of a session, e.g. "12h".
    #[serde(default = "default_absolute")]
    pub absolute_timeout: String,
    /// How long a sign-in may wait for its passkey after the provider's sign-in before it
    /// ends, e.g. "10m" (1s to 1h).
    #[serde(default = "default_second_factor_timeout")]
    pub second_factor_timeout: String,
    /// A change of source network (/24, /64) demands a step-up.
    #[serde(default = "default_true")]
    pub step_up_on_network_change: bool,
    /// What losing device compliance does to a session: "end" (default) or "step_up".
    #[serde(default = "default_posture_action")]
    pub posture_action: String,
    /// Detection risk at which a session must step up (default 50).
    #[serde(default = "default_risk_step_up")]
    pub risk_step_up: u8,
    /// Detection risk at which a session ends (default 80).
    #[serde(default = "default_risk_end")]
    pub risk_end: u8,
    /// Device posture requirements.
    #[serde(default)]
    pub posture: PostureRequirements,
    /// Where networks are, for impossible travel: `[[people.sites]]` with `network` (CIDR),
    /// `name`, `latitude`, `longitude`. Without sites, travel is not judged.
    #[serde(default)]
    pub sites: Vec<tenet_session::Site>,
    /// Fastest believable travel between two sites, km/h (default 1000).
    #[serde(default = "default_speed")]
    pub max_travel_kmh: f64,
    /// Longest wait between two discovery attempts of a provider that did not answer at
    /// start, e.g. "60s" (the waits start at one second and double up to it).
    #[serde(default = "default_discovery_retry_max")]
    pub discovery_retry_max: String,
    /// The identity providers; the first is the default.
    pub providers: Vec<ProviderSection>,
}

/// One `[[people.providers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (none: a public client with PKCE only).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The exact redirect URI registered at the provider: `https://HOST:PORT/.tenet/auth/callback`.
    pub redirect_uri: String,
    /// An extra root CA (PEM) for the provider's TLS certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Shortest time between two fetches of the provider's keys caused by tokens naming a
    /// key it has not published, e.g. "30s" (the default; 1s to 10m).
    #[serde(default)]
    pub jwks_refetch_interval: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_rp_name() -> String {
    "Tenet".into()
}
fn default_idle() -> String {
    "30m".into()
}
fn default_absolute() -> String {
    "12h".into()
}
fn default_second_factor_timeout() -> String {
    "10m".into()
}
fn default_posture_action() -> String {
    "end".into()
}
fn default_risk_step_up() -> u8 {
    50
}
fn default_risk_end() -> u8 {
    80
}
fn default_sign_ins_per_source() -> u32 {
    300
}
fn default_speed() -> f64 {
    1000.0
}
fn default_discovery_retry_max() -> String {
    "60s".into()
}

/// `typ:<media type>`, `token_use:<value>`, or any kind (absent).
fn bearer_kind(text: Option<&str>) -> Result<tenet_oidc::TokenKind> {
    match text.map(|t| t.split_once(':')) {
        None => Ok(tenet_oidc::TokenKind::Any),
        Some(Some(("typ", v))) if !v.is_empty() => Ok(tenet_oidc::TokenKind::Typ(v.to_owned())),
        Some(Some(("token_use", v))) if !v.is_empty() => {
            Ok(tenet_oidc::TokenKind::TokenUse(v.to_owned()))
        }
        Some(_) => bail!(
            "people.bearer_kind {:?} is not typ:<media type> or token_use:<value>",
            text.unwrap_or_default()
        ),
    }
}

/// The longest `absolute_timeout` accepted: a year (a session's end must stay a date).
const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
/// The longest `second_factor_timeout` accepted: an hour (a half-done sign-in stays short).
const MAX_SECOND_FACTOR_WAIT: Duration = Duration::from_secs(3600);
/// The largest `sign_ins_per_source` accepted: more is no limit at all.
const MAX_SIGN_INS_PER_SOURCE: u32 = 100_000;
/// The largest MDM export `tenet device import` sends and the admin API reads: 16 MiB.
const MAX_MDM_IMPORT: u64 = 16 * 1024 * 1024;
/// How many refused rows `tenet device import` shows.
const SHOWN_PROBLEMS: usize = 20;
/// The bounds of `discovery_retry_max`.
const DISCOVERY_RETRY_MAX: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
/// How long `tenet up` waits for the first discovery of the providers (all at once) before
/// it starts without those that have not answered.
const FIRST_DISCOVERY: Duration = Duration::from_secs(5);

/// `[people]`, checked, with paths made absolute. Everything that can be checked without the
/// network is checked and built here, at configuration load; [`build`] reads the providers'
/// files, tries to discover them once and opens the stores.
#[derive(Debug)]
pub struct PeopleSpec {
    section: PeopleSection,
    base: PathBuf,
    relying_party: tenet_mfa::RelyingParty,
    limits: tenet_session::SessionLimits,
    rules: tenet_session::Rules,
    bearer: Option<tenet_people::BearerSettings>,
    /// The waits between discovery attempts of a provider not reachable yet.
    backoff: tenet_oidc::Backoff,
}

impl PeopleSpec {
    /// The configured identity providers' names.
    pub fn provider_names(&self) -> Vec<&str> {
        self.section
            .providers
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Whether a WebAuthn factor is required after every provider sign-in.
    pub fn require_webauthn(&self) -> bool {
        self.section.require_webauthn
    }

    /// The device posture requirements.
    pub fn posture(&self) -> &PostureRequirements {
        &self.section.posture
    }
}

/// The configuration of `people.providers[i]` as far as it can be known without the network
/// (no client secret, no CA file), not validated yet.
fn provider_config(i: usize, p: &ProviderSection) -> Result<tenet_oidc::ProviderConfig> {
    let mut config =
        tenet_oidc::ProviderConfig::new(&p.name, &p.issuer, &p.client_id, &p.redirect_uri);
    if let Some(claim) = &p.groups_claim {
        config.groups_claim.clone_from(claim);
    }
    if let Some(scopes) = &p.scopes {
        config.scopes.clone_from(scopes);
    }
    if let Some(interval) = &p.jwks_refetch_interval {
        config.jwks_refetch_interval = parse_duration(interval)
            .with_context(|| format!("people.providers[{i}].jwks_refetch_interval"))?;
    }
    Ok(config)
}

/// Checks `[people]` against the routes and listeners: people routes need it; every people
/// route must be on the host of the providers' redirect URIs (the session cookie is
/// host-only), which must be https on the port of a listener serving people routes; provider
/// names are unique; and the WebAuthn relying party, the session timeouts and the session
/// rules are valid. Every error names its field.
pub fn people_spec(
    base: &Path,
    section: Option<PeopleSection>,
    routes: &[RouteSpec],
    listeners: &[ListenerSpec],
) -> Result<Option<PeopleSpec>> {
    let people_routes: Vec<&RouteSpec> = routes.iter().filter(|r| r.people).collect();
    let Some(section) = section else {
        if let Some(r) = people_routes.first() {
            bail!(
                "route {:?} has people = true, but there is no [people] section",
                r.name
            );
        }
        return Ok(None);
    };
    if section.providers.is_empty() {
        bail!("people.providers: at least one identity provider is needed");
    }
    // The listeners that serve people routes, with their ports. A listener on port 0 gets its
    // port from the system when it binds, so no redirect URI can be checked against it.
    let people_listeners: Vec<&ListenerSpec> = listeners
        .iter()
        .filter(|l| people_routes.iter().any(|r| r.listener == l.name))
        .collect();
    if let Some(l) = people_listeners
        .iter()
        .find(|l| l.client_auth == tenet_gateway::ClientAuth::Required)
    {
        bail!(
            "listener {:?} serves people routes but has client_auth = \"required\": browsers \
             without a device certificate would be refused in the handshake; use \"optional\"",
            l.name
        );
    }
    for (i, p) in section.providers.iter().enumerate() {
        if let Some(first) = section
            .providers
            .iter()
            .take(i)
            .find(|q| q.name.eq_ignore_ascii_case(&p.name))
        {
            bail!(
                "people.providers[{i}].name {:?} is already the name of another provider \
                 ({:?}); provider names must be unique",
                p.name,
                first.name
            );
        }
        provider_config(i, p)?
            .validate()
            .map_err(|e| anyhow!("people.providers[{i}] ({:?}): {e}", p.name))?;
        let url = url::Url::parse(&p.redirect_uri).map_err(|e| {
            anyhow!(
                "people.providers[{i}].redirect_uri {:?}: {e}",
                p.redirect_uri
            )
        })?;
        if url.scheme() != "https" {
            bail!(
                "people.providers[{i}].redirect_uri {:?}: must be https (people routes are \
                 served over TLS only)",
                p.redirect_uri
            );
        }
        if url.path() != "/.tenet/auth/callback" {
            bail!(
                "people.providers[{i}].redirect_uri {:?}: the path must be /.tenet/auth/callback",
                p.redirect_uri
            );
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(r) = people_routes.iter().find(|r| r.host != host) {
            bail!(
                "route {:?} (host {:?}) is for people, but people.providers[{i}].redirect_uri \
                 is on {host:?}; sessions are per host, so people routes must share it",
                r.name,
                r.host
            );
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let served = people_listeners
            .iter()
            .any(|l| l.addr.port() == port || l.addr.port() == 0);
        if !people_routes.is_empty() && !served {
            let ports: Vec<String> = people_listeners
                .iter()
                .map(|l| format!("{:?} on {}", l.name, l.addr.port()))
                .collect();
            bail!(
                "people.providers[{i}].redirect_uri {:?}: port {port} is not the port of a \
                 listener serving people routes ({}); the provider would send people where \
                 Tenet does not answer",
                p.redirect_uri,
                if ports.is_empty() {
                    "none is configured".to_owned()
                } else {
                    ports.join(", ")
                }
            );
        }
    }
    if let Some(audience) = &section.bearer_audience {
        if audience.is_empty() {
            bail!("people.bearer_audience must not be empty");
        }
        if let Some(p) = section.providers.iter().find(|p| p.client_id == *audience) {
            bail!(
                "people.bearer_audience {audience:?} is provider {:?}'s client id: ID tokens \
                 would pass as access tokens; use the audience of the access tokens",
                p.name
            );
        }
    }
    if section.sign_ins_per_source == 0 {
        bail!(
            "people.sign_ins_per_source 0: no sign-in could ever start; it is the most sign-ins \
             one source address may start per ten minutes (default 300)"
        );
    }
    if section.sign_ins_per_source > MAX_SIGN_INS_PER_SOURCE {
        bail!(
            "people.sign_ins_per_source {} is more than {MAX_SIGN_INS_PER_SOURCE}: it is the \
             most sign-ins one source address may start per ten minutes (default 300), and so \
             many would leave one source unlimited",
            section.sign_ins_per_source
        );
    }
    if let Some(i) = section
        .admin_groups
        .iter()
        .position(|g| g.trim().is_empty())
    {
        bail!("people.admin_groups[{i}] is empty; a group name is needed");
    }
    let key_wait = bearer_key_wait(section.bearer_key_wait.as_deref())?;
    let bearer = match &section.bearer_audience {
        Some(audience) => Some(tenet_people::BearerSettings {
            audience: audience.clone(),
            kind: bearer_kind(section.bearer_kind.as_deref())?,
            key_wait,
        }),
        None => {
            bearer_kind(section.bearer_kind.as_deref())?;
            None
        }
    };
    let relying_party = relying_party(&section)?;
    if let Some(warning) = single_label_rp_id(&section.rp_id) {
        tracing::warn!(rp_id = %section.rp_id, "{warning}");
    }
    check_origin_ports(&section.origins, &people_listeners)?;
    let limits = session_limits(&section)?;
    let rules = session_rules(&section)?;
    let backoff = discovery_backoff(&section.discovery_retry_max)?;
    Ok(Some(PeopleSpec {
        section,
        base: base.to_path_buf(),
        relying_party,
        limits,
        rules,
        bearer,
        backoff,
    }))
}

/// `bearer_key_wait`: positive and at most the time a fetch of the provider's keys may take
/// (the identity provider HTTP client's timeout, 10 s), since waiting longer never helps;
/// [`tenet_people::BearerSettings::DEFAULT_KEY_WAIT`] when absent.
fn bearer_key_wait(text: Option<&str>) -> Result<Duration> {
    let Some(text) = text else {
        return Ok(tenet_people::BearerSettings::DEFAULT_KEY_WAIT);
    };
    let wait = parse_duration(text).context("people.bearer_key_wait")?;
    let fetch = tenet_oidc::HttpLimits::default().timeout;
    if wait.is_zero() || wait > fetch {
        bail!(
            "people.bearer_key_wait {text:?} must be between 1ms and {}s, the longest a fetch \
             of the provider's keys takes",
            fetch.as_secs()
        );
    }
    Ok(wait)
}

/// Refuses a WebAuthn origin whose port is not the port of a listener serving people routes:
/// browsers reach a people listener on its own port (the provider's `redirect_uri` is held to
/// the same rule), so a ceremony from such an origin never comes. Nothing is compared when no
/// listener serves people routes or one takes its port when it binds (port 0).
fn check_origin_ports(origins: &[String], people_listeners: &[&ListenerSpec]) -> Result<()> {
    if people_listeners.is_empty() || people_listeners.iter().any(|l| l.addr.port() == 0) {
        return Ok(());
    }
    for origin in origins {
        // The origins were checked by the relying party: https URLs.
        let Some(port) = url::Url::parse(origin)
            .ok()
            .and_then(|u| u.port_or_known_default())
        else {
            continue;
        };
        if people_listeners.iter().all(|l| l.addr.port() != port) {
            let listeners: Vec<String> = people_listeners
                .iter()
                .map(|l| format!("{:?} on {}", l.name, l.addr.port()))
                .collect();
            bail!(
                "people.origins {origin:?}: port {port} is not the port of a listener serving \
                 people routes ({}); browsers reach people routes on the listener's own port, \
                 so passkey ceremonies from this origin would never arrive",
                listeners.join(", ")
            );
        }
    }
    Ok(())
}

/// The discovery retry waits: one second, doubling up to `discovery_retry_max` (1s to 1h).
fn discovery_backoff(max: &str) -> Result<tenet_oidc::Backoff> {
    let longest = parse_duration(max).context("people.discovery_retry_max")?;
    let (low, high) = DISCOVERY_RETRY_MAX;
    if longest < low || longest > high {
        bail!("people.discovery_retry_max {max:?} must be between 1s and 1h");
    }
    Ok(tenet_oidc::Backoff::new(
        tenet_oidc::Backoff::DEFAULT_FIRST.min(longest),
        longest,
    ))
}

/// The WebAuthn relying party of `[people]` (rp_id, rp_name, origins, top_origins).
fn relying_party(section: &PeopleSection) -> Result<tenet_mfa::RelyingParty> {
    tenet_mfa::RelyingParty::new(&tenet_mfa::RelyingPartyConfig {
        rp_id: section.rp_id.clone(),
        rp_name: section.rp_name.clone(),
        origins: section.origins.clone(),
        top_origins: section.top_origins.clone(),
        cross_origin_without_top_origin: section.cross_origin_without_top_origin,
    })
    .map_err(|e| match e {
        tenet_mfa::ConfigError::Invalid {
            field,
            value,
            reason,
        } => anyhow!("people.{field} {value:?}: {reason}"),
        other => anyhow!("people (rp_id, rp_name, origins, top_origins): {other}"),
    })
}

/// Why a single-label `rp_id` (`internal`, `corp`) is risky, or `None` for any other (and for
/// `localhost`): the Public Suffix List does not know such names, but on a company network
/// every host named under one (`wiki.internal`, `printer.internal`) may use its passkeys, as
/// under a public suffix.
fn single_label_rp_id(rp_id: &str) -> Option<String> {
    let name = rp_id.strip_suffix('.').unwrap_or(rp_id);
    if name.contains('.') || name.eq_ignore_ascii_case("localhost") {
        return None;
    }
    Some(format!(
        "people.rp_id {rp_id:?} is a single-label name: every host under it ({name:?} names \
         like wiki.{name}) may use the passkeys registered for it, as under a public suffix; \
         use a name under a domain of your own, such as login.example.com"
    ))
}

/// The session timeouts: positive, idle within absolute, absolute at most a year.
fn session_limits(section: &PeopleSection) -> Result<tenet_session::SessionLimits> {
    let idle = parse_duration(&section.idle_timeout).context("people.idle_timeout")?;
    let absolute = parse_duration(&section.absolute_timeout).context("people.absolute_timeout")?;
    if idle.is_zero() {
        bail!(
            "people.idle_timeout {:?} must be positive",
            section.idle_timeout
        );
    }
    if absolute > MAX_SESSION_LIFETIME {
        bail!(
            "people.absolute_timeout {:?} is longer than a year",
            section.absolute_timeout
        );
    }
    if idle > absolute {
        bail!(
            "people.idle_timeout {:?} is longer than people.absolute_timeout {:?}; a session \
             ends at the absolute timeout however busy it is",
            section.idle_timeout,
            section.absolute_timeout
        );
    }
    let second_factor =
        parse_duration(&section.second_factor_timeout).context("people.second_factor_timeout")?;
    if second_factor < Duration::from_secs(1) || second_factor > MAX_SECOND_FACTOR_WAIT {
        bail!(
            "people.second_factor_timeout {:?} must be between 1s and 1h: a sign-in waiting \
             for its passkey is kept only that long",
            section.second_factor_timeout
        );
    }
    if second_factor > absolute {
        bail!(
            "people.second_factor_timeout {:?} is longer than people.absolute_timeout {:?}; a \
             sign-in would wait for its passkey longer than the session it starts may last",
            section.second_factor_timeout,
            section.absolute_timeout
        );
    }
    Ok(tenet_session::SessionLimits {
        idle_timeout: time::Duration::try_from(idle).context("people.idle_timeout")?,
        absolute_timeout: time::Duration::try_from(absolute).context("people.absolute_timeout")?,
        second_factor_timeout: time::Duration::try_from(second_factor)
            .context("people.second_factor_timeout")?,
        ..tenet_session::SessionLimits::default()
    })
}

/// The continuous evaluation rules: posture action and age, risk thresholds, sites, speed.
fn session_rules(section: &PeopleSection) -> Result<tenet_session::Rules> {
    let posture_action = match section.posture_action.as_str() {
        "end" => tenet_session::PostureAction::End,
        "step_up" => tenet_session::PostureAction::StepUp,
        other => bail!("people.posture_action {other:?} is not \"end\" or \"step_up\""),
    };
    let posture_max_age = match section.posture.max_age_secs {
        None => time::Duration::hours(24),
        Some(secs) => i64::try_from(secs)
            .ok()
            .filter(|s| *s <= i64::try_from(MAX_SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX))
            .map(time::Duration::seconds)
            .ok_or_else(|| anyhow!("people.posture.max_age_secs {secs} is longer than a year"))?,
    };
    // Every risk score is at least 0: a threshold of 0 would step up or end every session on
    // its first request.
    for (key, value) in [
        ("risk_step_up", section.risk_step_up),
        ("risk_end", section.risk_end),
    ] {
        if value == 0 {
            bail!(
                "people.{key} 0: every session would reach it on its first request; use 1 to 100"
            );
        }
    }
    let rules = tenet_session::Rules {
        step_up_on_network_change: section.step_up_on_network_change,
        posture_action,
        posture_max_age,
        risk_step_up: section.risk_step_up,
        risk_end: section.risk_end,
        sites: tenet_session::SiteTable::new(section.sites.clone())
            .map_err(|e| anyhow!("people.sites: {e}"))?,
        max_speed_kmh: section.max_travel_kmh,
    };
    rules.validate().map_err(|e| match e {
        tenet_session::RulesError::Thresholds { .. } => anyhow!(
            "people.risk_step_up {} / people.risk_end {}: {e}",
            section.risk_step_up,
            section.risk_end
        ),
        tenet_session::RulesError::Speed => {
            anyhow!("people.max_travel_kmh {}: {e}", section.max_travel_kmh)
        }
        tenet_session::RulesError::PostureAge => anyhow!("people.posture.max_age_secs: {e}"),
        other => anyhow!("people (risk_step_up, risk_end, max_travel_kmh, posture): {other}"),
    })?;
    Ok(rules)
}

/// Builds the sign-in service: reads each provider's files (client secret, CA), tries to
/// discover every provider once (all at once, for at most five seconds), opens the factor,
/// session, device and posture files in `data_dir`. A provider that does not answer does not
/// stop the service: its slot stays empty (sign-in through it answers 503) until
/// [`keep_discovering`] fills it. A file that cannot be read does stop it. The configuration
/// was checked by [`people_spec`].
pub async fn build(
    spec: &PeopleSpec,
    data_dir: &Path,
    ca: Arc<CertificateAuthority>,
    risk: Arc<dyn RiskSource>,
    sink: Arc<dyn EventSink>,
) -> Result<Arc<SignIn>> {
    let s = &spec.section;
    let mut providers = Vec::new();
    for (i, p) in s.providers.iter().enumerate() {
        let mut config = provider_config(i, p)?;
        if let Some(file) = &p.client_secret_file {
            let path = spec.base.join(file);
            let secret = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "people.providers[{i}].client_secret_file {}",
                    path.display()
                )
            })?;
            config.client_secret = Some(tenet_oidc::ClientSecret::new(secret.trim()));
        }
        config.ca_file = p.ca_file.as_ref().map(|f| spec.base.join(f));
        let slot = tenet_oidc::ProviderSlot::new(config)
            .with_context(|| format!("people.providers[{i}] ({:?})", p.name))?;
        providers.push(Arc::new(slot));
    }
    first_discovery(&providers, spec.backoff).await;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let factors =
        tenet_mfa::FactorStore::open(data_dir.join("factors.json")).map_err(|e| anyhow!("{e}"))?;
    let now = time::OffsetDateTime::now_utc();
    let sessions =
        tenet_session::SessionStore::open(&data_dir.join("sessions.json"), spec.limits, now)
            .map_err(|e| anyhow!("{e}"))?;
    let devices = Arc::new(
        Devices::open(
            data_dir,
            &ca,
            s.posture.clone(),
            tenet_device::DEFAULT_DEVICE_CERT_TTL,
        )
        .map_err(|e| anyhow!("{e}"))?,
    );
    Ok(Arc::new(SignIn::new(SignInParts {
        providers,
        relying_party: spec.relying_party.clone(),
        factors,
        sessions,
        rules: spec.rules.clone(),
        devices,
        ca,
        risk,
        sink,
        require_webauthn: s.require_webauthn,
        admin_groups: s.admin_groups.clone(),
        sign_ins_per_source: s.sign_ins_per_source.max(1),
        bearer: spec.bearer.clone(),
    })))
}

/// One discovery attempt per provider, all at once, each logged by the slot; an attempt still
/// running after [`FIRST_DISCOVERY`] is given up (and logged) for the background to retry.
async fn first_discovery(
    providers: &[Arc<tenet_oidc::ProviderSlot>],
    backoff: tenet_oidc::Backoff,
) {
    let mut attempts = tokio::task::JoinSet::new();
    for slot in providers {
        let slot = Arc::clone(slot);
        attempts.spawn(async move {
            let attempt = tokio::time::timeout(FIRST_DISCOVERY, slot.attempt(1, &backoff));
            if attempt.await.is_err() {
                tracing::warn!(
                    provider = %slot.config().name,
                    issuer = %slot.config().issuer,
                    waited_secs = FIRST_DISCOVERY.as_secs(),
                    retry_in_secs = backoff.delay(1).as_secs_f64(),
                    "identity provider did not answer discovery in time; starting without it"
                );
            }
        });
    }
    while attempts.join_next().await.is_some() {}
}

/// Background discovery of every provider [`build`] could not discover: one task per
/// provider, retrying with the configured backoff until it answers (the first attempt has
/// failed already). The tasks end once their provider is discovered; abort them at shutdown.
pub fn keep_discovering(spec: &PeopleSpec, people: &SignIn) -> Vec<tokio::task::JoinHandle<()>> {
    let backoff = spec.backoff;
    people
        .providers()
        .iter()
        .filter(|slot| !slot.is_discovered())
        .map(|slot| {
            let slot = Arc::clone(slot);
            tokio::spawn(async move { slot.keep_discovering(backoff, 1).await })
        })
        .collect()
}

/// `/v1/people/...` on the admin API:
/// - `POST /v1/people/devices/tokens` `{"owner": EMAIL?, "ttl": "24h"?}`: an enrolment token;
/// - `GET /v1/people/devices`: enrolled devices, each with its compliance (`compliant`,
///   `failing`, `failures`, `posture_age_secs`, `max_age_secs`);
/// - `POST /v1/people/devices/revoke` `{"device": UUID}`;
/// - `POST /v1/people/devices/mdm?source=NAME&match=device_id|serial|name` (body: the export);
/// - `GET /v1/people/sessions`: live sessions (no session ids);
/// - `POST /v1/people/sessions/revoke` `{"user": "user:PROVIDER:SUBJECT" | EMAIL}`.
pub async fn admin(
    req: http::Request<hyper::body::Incoming>,
    admin_id: &tenet_identity::SpiffeId,
    state: &crate::admin::AdminState,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http::{Method, StatusCode};
    use serde_json::json;
    let reply = crate::admin::json;
    let Some(people) = &state.people else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "no [people] section is configured"}),
        );
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    // An MDM export may be large (as large as `tenet device import` sends); the rest is a
    // small JSON object.
    let limit = if path == "/v1/people/devices/mdm" {
        usize::try_from(MAX_MDM_IMPORT).unwrap_or(usize::MAX)
    } else {
        crate::admin::MAX_BODY
    };
    let body = match crate::admin::read_body(req, limit).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let now = state.clock.now();
    // Parsed once for the JSON endpoints; an MDM export is left to the importer.
    let document = (path != "/v1/people/devices/mdm")
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten();
    let field = |name: &str| -> Option<String> {
        document.as_ref()?.get(name)?.as_str().map(str::to_owned)
    };
    let (status, value, operation, detail) = match (&method, path.as_str()) {
        (&Method::POST, "/v1/people/devices/tokens") => {
            let ttl = match field("ttl").map(|t| parse_duration(&t)).transpose() {
                Ok(t) => t.unwrap_or(tenet_device::DEFAULT_TOKEN_TTL),
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("ttl: {e}")}),
                    );
                }
            };
            let owner = field("owner");
            match people.devices().create_token(owner.as_deref(), ttl, now) {
                Ok(t) => (
                    StatusCode::OK,
                    json!({
                        "token": t.token,
                        "expires_at": t
                            .expires_at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_else(|_| t.expires_at.unix_timestamp().to_string()),
                    }),
                    "device.token",
                    format!(
                        "enrolment token for {}",
                        owner.as_deref().unwrap_or("any owner")
                    ),
                ),
                Err(e) => (
                    StatusCode::BAD_REQUEST,
                    json!({"error": e.to_string()}),
                    "device.token",
                    e.to_string(),
                ),
            }
        }
        (&Method::GET, "/v1/people/devices") => {
            return reply(
                StatusCode::OK,
                json!({"devices": people.devices().list_with_compliance(now)}),
            );
        }
        (&Method::POST, "/v1/people/devices/revoke") => {
            let given = field("device");
            let Some(id) = given.as_deref().and_then(|d| uuid::Uuid::parse_str(d).ok()) else {
                let given = given.unwrap_or_default();
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!(
                        "device {given:?} is not a device id (a UUID, as `tenet device list` shows)"
                    )}),
                );
            };
            // The device's sessions end with it (each recorded as a session_end).
            match people.revoke_device(id, now).await {
                Ok(sessions) => (
                    StatusCode::OK,
                    json!({"revoked": id.to_string(), "sessions_ended": sessions}),
                    "device.revoke",
                    format!("{id} ({sessions} sessions ended)"),
                ),
                Err(e) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": e.to_string()}),
                    "device.revoke",
                    e.to_string(),
                ),
            }
        }
        (&Method::POST, "/v1/people/devices/mdm") => {
            let params: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
            let source = params
                .get("source")
                .cloned()
                .unwrap_or_else(|| "mdm".into());
            let match_by = match params.get("match").map(String::as_str) {
                None | Some("device_id") => tenet_device::MdmMatch::DeviceId,
                Some("serial") => tenet_device::MdmMatch::Serial,
                Some("name") => tenet_device::MdmMatch::Name,
                Some(other) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("match {other:?} is not device_id, serial or name")}),
                    );
                }
            };
            match people.devices().import_mdm(&source, &body, match_by, now) {
                Ok((import, applied)) => {
                    let problems: Vec<_> = import
                        .problems
                        .iter()
                        .map(|p| json!({"line": p.line, "reason": p.reason}))
                        .collect();
                    let detail = format!(
                        "{}: {} rows imported, {} stale (not newer than the MDM posture known), \
                         {} refused",
                        source,
                        applied.applied,
                        applied.stale,
                        problems.len()
                    );
                    (
                        StatusCode::OK,
                        json!({
                            "imported": applied.applied,
                            "stale": applied.stale,
                            "problems": problems,
                        }),
                        "device.mdm_import",
                        detail,
                    )
                }
                Err(e) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"error": e.to_string()}),
                    "device.mdm_import",
                    e.to_string(),
                ),
            }
        }
        (&Method::GET, "/v1/people/sessions") => {
            let sessions: Vec<_> = people
                .sessions()
                .list()
                .into_iter()
                .map(|s| {
                    json!({
                        "handle": s.handle.short(),
                        "issuer": s.user.issuer,
                        "subject": s.user.subject,
                        "email": s.user.email,
                        "factors": s.factors.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                        "device": s.device_id,
                        "created": s.created.unix_timestamp(),
                        "last_seen": s.last_seen.unix_timestamp(),
                        "state": s.state,
                    })
                })
                .collect();
            return reply(StatusCode::OK, json!({"sessions": sessions}));
        }
        (&Method::POST, "/v1/people/sessions/revoke") => {
            let Some(user) = field("user") else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "\"user\" (user:PROVIDER:SUBJECT or an email address) is required"}),
                );
            };
            if let Err(e) = check_person(&user) {
                return reply(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
            }
            let n = people.revoke_person(&user, now);
            (
                StatusCode::OK,
                json!({"revoked": n}),
                "session.revoke",
                format!("{n} sessions of {user}"),
            )
        }
        _ => return reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    };
    let event = tenet_event::EventKind::Admin(tenet_event::AdminEvent {
        actor: admin_id.to_string(),
        operation: operation.into(),
        success: status.is_success(),
        detail,
    });
    if let Err(e) = crate::up::record(&state.sink, &*state.clock, event).await {
        tracing::warn!(error = %e, "people admin action not recorded");
    }
    reply(status, value)
}

/// `tenet device ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DeviceCommand {
    /// Create a one-time enrolment token (admin; needs `tenet up` running).
    Token {
        /// The owner's email address, recorded with the device.
        #[arg(long)]
        owner: Option<String>,
        /// How long the token can be redeemed, e.g. "24h".
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List enrolled devices (admin).
    List,
    /// Revoke a device (admin).
    Revoke {
        /// The device id.
        device: String,
    },
    /// Import an MDM export, JSON (array of objects) or CSV (admin).
    Import {
        /// The export file.
        file: PathBuf,
        /// A name for the source, shown in events.
        #[arg(long, default_value = "mdm")]
        source: String,
        /// How rows name devices: device_id, serial or name.
        #[arg(long = "match", default_value = "device_id")]
        match_by: String,
    },
    /// On the device: generate a key, redeem an enrolment token at the gateway, and write the
    /// device certificate (svid.pem, svid.key, bundle.pem) into DIR.
    Enrol {
        /// The gateway's people origin, e.g. https://app.example.test:8443
        #[arg(long)]
        gateway: String,
        /// The enrolment token.
        #[arg(long)]
        token: String,
        /// The trust bundle (PEM) that the gateway's certificate chains to.
        #[arg(long)]
        bundle: PathBuf,
        /// Reach the gateway's host at this address (HOST:IP, without curl's port part).
        #[arg(long, value_name = "HOST:IP")]
        resolve: Option<String>,
        /// Where to write the device credential.
        #[arg(long)]
        out: PathBuf,
    },
    /// On the device: collect posture, sign it with the device key and send it to the gateway.
    Report {
        /// The gateway's people origin.
        #[arg(long)]
        gateway: String,
        /// The directory `tenet device enrol` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Reach the gateway's host at this address (HOST:IP, without curl's port part).
        #[arg(long, value_name = "HOST:IP")]
        resolve: Option<String>,
    },
}

/// `tenet session ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// List live sessions (no session ids are shown).
    List,
    /// End every session of a person: `user:PROVIDER:SUBJECT` or an email address.
    Revoke {
        /// The person.
        user: String,
    },
}

/// Calls the admin API and prints its answer; an answer other than 2xx is an error. Returns
/// the answer.
async fn admin_request(
    explicit: Option<&Path>,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<String> {
    let config = crate::config::load(explicit)?;
    let (status, text) = crate::admin::call_with(&config, method, path, body).await?;
    if !status.is_success() {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .unwrap_or(text);
        let hint = if reason.contains("no device id column") {
            " (rows can also be matched by --match serial or --match name)"
        } else {
            ""
        };
        bail!("the admin API refused ({status}): {reason}{hint}");
    }
    say!("{text}");
    Ok(text)
}

async fn admin_call(
    explicit: Option<&Path>,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<()> {
    admin_request(explicit, method, path, body).await.map(drop)
}

/// Checks the person `tenet session revoke` is given: `user:PROVIDER:SUBJECT` (neither part
/// empty) or an email address. A malformed one would name nobody and end nothing, silently.
fn check_person(user: &str) -> Result<()> {
    let printable = !user.is_empty() && !user.chars().any(char::is_control);
    let well_formed = match user.strip_prefix("user:") {
        Some(rest) => rest
            .split_once(':')
            .is_some_and(|(provider, subject)| !provider.is_empty() && !subject.is_empty()),
        None => user.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !user.chars().any(char::is_whitespace)
        }),
    };
    if !(printable && well_formed) {
        bail!(
            "session revoke {user:?}: expected user:PROVIDER:SUBJECT (e.g. user:corp:248289761001) \
             or an email address"
        );
    }
    Ok(())
}

/// The number in `{"revoked": n}`.
fn revoked_count(answer: &str) -> Result<u64> {
    serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v.get("revoked")?.as_u64())
        .ok_or_else(|| anyhow!("the admin API's answer has no revoked count: {answer}"))
}

/// Reads an MDM export whole, refusing one over [`MAX_MDM_IMPORT`] before reading it (and
/// one that grows past it while being read).
fn read_import(file: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let too_large = || {
        anyhow!(
            "{} is larger than {} MiB, the most an MDM import takes; split the export",
            file.display(),
            MAX_MDM_IMPORT / (1024 * 1024)
        )
    };
    let metadata =
        std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    if metadata.len() > MAX_MDM_IMPORT {
        return Err(too_large());
    }
    let opened =
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    opened
        .take(MAX_MDM_IMPORT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_MDM_IMPORT {
        return Err(too_large());
    }
    Ok(bytes)
}

/// What an MDM import answer (`{"imported": n, "problems": [{line, reason}]}`) says: the rows
/// imported, how many were refused, and the lines to show for them (the first
/// [`SHOWN_PROBLEMS`], then how many more).
fn import_outcome(answer: &str) -> Result<(u64, usize, Vec<String>)> {
    let value: serde_json::Value = serde_json::from_str(answer)
        .map_err(|e| anyhow!("the admin API's answer is not JSON ({e}): {answer}"))?;
    let imported = value
        .get("imported")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| anyhow!("the admin API's answer has no imported count: {answer}"))?;
    let problems = value
        .get("problems")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut lines: Vec<String> = problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(|p| {
            let reason = p
                .get("reason")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("refused");
            match p.get("line").and_then(serde_json::Value::as_u64) {
                Some(line) => format!("line {line}: {reason}"),
                None => reason.to_owned(),
            }
        })
        .collect();
    if problems.len() > SHOWN_PROBLEMS {
        lines.push(format!("... and {} more", problems.len() - SHOWN_PROBLEMS));
    }
    Ok((imported, problems.len(), lines))
}

/// Runs a `tenet device` command.
pub async fn run_device(explicit: Option<&Path>, action: DeviceCommand) -> Result<()> {
    use http::Method;
    match action {
        DeviceCommand::Token { owner, ttl } => {
            let body = serde_json::json!({"owner": owner, "ttl": ttl}).to_string();
            admin_call(
                explicit,
                Method::POST,
                "/v1/people/devices/tokens",
                body.into_bytes(),
            )
            .await
        }
        DeviceCommand::List => {
            admin_call(explicit, Method::GET, "/v1/people/devices", Vec::new()).await
        }
        DeviceCommand::Revoke { device } => {
            let body = serde_json::json!({"device": device}).to_string();
            admin_call(
                explicit,
                Method::POST,
                "/v1/people/devices/revoke",
                body.into_bytes(),
            )
            .await
        }
        DeviceCommand::Import {
            file,
            source,
            match_by,
        } => {
            let bytes = read_import(&file)?;
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("source", &source)
                .append_pair("match", &match_by)
                .finish();
            let answer = admin_request(
                explicit,
                Method::POST,
                &format!("/v1/people/devices/mdm?{query}"),
                bytes,
            )
            .await
            .with_context(|| format!("importing {}", file.display()))?;
            let (imported, refused, lines) = import_outcome(&answer)?;
            for line in &lines {
                eprintln!("{}: {line}", file.display());
            }
            if imported == 0 && refused > 0 {
                let rows = if refused == 1 { "row was" } else { "rows were" };
                bail!(
                    "{}: no row was imported; {refused} {rows} refused",
                    file.display()
                );
            }
            Ok(())
        }
        DeviceCommand::Enrol {
            gateway,
            token,
            bundle,
            resolve,
            out,
        } => enrol(&gateway, &token, &bundle, resolve.as_deref(), &out).await,
        DeviceCommand::Report {
            gateway,
            dir,
            resolve,
        } => report(&gateway, &dir, resolve.as_deref()).await,
    }
}

/// Runs a `tenet session` command.
pub async fn run_session(explicit: Option<&Path>, action: SessionCommand) -> Result<()> {
    use http::Method;
    match action {
        SessionCommand::List => {
            admin_call(explicit, Method::GET, "/v1/people/sessions", Vec::new()).await
        }
        SessionCommand::Revoke { user } => {
            check_person(&user)?;
            let body = serde_json::json!({"user": user}).to_string();
            let answer = admin_request(
                explicit,
                Method::POST,
                "/v1/people/sessions/revoke",
                body.into_bytes(),
            )
            .await?;
            if revoked_count(&answer)? == 0 {
                eprintln!("no live session of {user}");
            }
            Ok(())
        }
    }
}

/// `--resolve HOST:IP` (an IPv6 address bare or in brackets) as a host and the address to
/// reach it at. curl's `HOST:PORT:IP` is refused naming the form to give instead: the port
/// comes from `--gateway`.
fn parse_resolve(text: &str) -> Result<(&str, std::net::IpAddr)> {
    let expected =
        || anyhow!("--resolve {text:?}: expected HOST:IP, e.g. app.example.test:192.0.2.10");
    // A host name holds no ':', so the first one ends it.
    let (host, address) = text
        .split_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(expected)?;
    let ip_of = |a: &str| -> Option<std::net::IpAddr> {
        a.trim_start_matches('[').trim_end_matches(']').parse().ok()
    };
    // curl's PORT:IP, or a bare IPv6 address that reads as one (8443:2001:db8::1): refused
    // rather than guessed.
    if let Some((port, ip)) = address.split_once(':')
        && port.parse::<u16>().is_ok()
        && ip_of(ip).is_some()
    {
        if ip_of(address).is_some() {
            bail!("--resolve {text:?}: put an IPv6 address in brackets: HOST:[IP]");
        }
        bail!(
            "--resolve {text:?}: give HOST:IP ({host}:{ip}) without curl's port part; the port \
             comes from --gateway"
        );
    }
    if let Some(ip) = ip_of(address) {
        return Ok((host, ip));
    }
    Err(anyhow!(
        "--resolve {text:?}: {address:?} is not an IP address; expected HOST:IP"
    ))
}

fn gateway_client(bundle_pem: &[u8], resolve: Option<&str>) -> Result<reqwest::Client> {
    let certs = reqwest::Certificate::from_pem_bundle(bundle_pem).context("the trust bundle")?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .tls_certs_only(certs);
    if let Some(text) = resolve {
        let (host, ip) = parse_resolve(text)?;
        // The port comes from the gateway URL; reqwest uses it when the given one is 0.
        builder = builder.resolve(host, std::net::SocketAddr::new(ip, 0));
    }
    builder.build().context("building the HTTPS client")
}

/// The files `tenet device enrol` writes into its output directory.
const ENROL_FILES: [&str; 3] = ["svid.key", "svid.pem", "bundle.pem"];

/// Makes sure the credential can be written to `out` before the one-time token is spent: the
/// directory exists (created if need be) and takes a new file, and none of the credential
/// files is there already (the key is never overwritten).
fn prepare_enrol_out(out: &Path) -> Result<()> {
    for name in ENROL_FILES {
        let path = out.join(name);
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; move the old credential away or choose another --out \
                 (nothing was sent, the token is still unused)",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    tempfile::Builder::new()
        .prefix(".tenet-enrol-")
        .tempfile_in(out)
        .with_context(|| {
            format!(
                "{} does not take new files (nothing was sent, the token is still unused)",
                out.display()
            )
        })?;
    Ok(())
}

async fn enrol(
    gateway: &str,
    token: &str,
    bundle: &Path,
    resolve: Option<&str>,
    out: &Path,
) -> Result<()> {
    // Everything that can fail on the device fails before the token is spent.
    if let Some(text) = resolve {
        parse_resolve(text)?;
    }
    prepare_enrol_out(out)?;
    let bundle_pem =
        std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let client = gateway_client(&bundle_pem, resolve)?;
    let key = tenet_device::DeviceKey::generate().map_err(|e| anyhow!("{e}"))?;
    let csr = key.csr_pem().map_err(|e| anyhow!("{e}"))?;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned());
    let request = tenet_device::EnrolmentRequest {
        token: token.to_owned(),
        csr,
        name: hostname.filter(|h| !h.is_empty()),
        hardware_serial: None,
    };
    let url = format!("{}/.tenet/auth/device/enrol", gateway.trim_end_matches('/'));
    let response = client
        .post(&url)
        .json(&request)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("the enrolment answer")?;
    if !status.is_success() {
        bail!(
            "enrolment refused ({status}): {}",
            body.get("detail")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        );
    }
    let chain_pem = body
        .get("chain_pem")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("the answer has no chain_pem"))?;
    key.save(&out.join("svid.key"))
        .map_err(|e| anyhow!("{e}"))?;
    std::fs::write(out.join("svid.pem"), chain_pem)
        .with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(out.join("bundle.pem"), &bundle_pem)?;
    say!(
        "enrolled device {} ({})",
        body.get("device_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default(),
        body.get("spiffe_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    );
    Ok(())
}

async fn report(gateway: &str, dir: &Path, resolve: Option<&str>) -> Result<()> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let svid = tenet_identity::X509Svid::load_pem(&read("svid.pem")?, &read("svid.key")?)
        .map_err(|e| anyhow!("the device credential in {}: {e}", dir.display()))?;
    let Some(device) = tenet_device::device_id_of(svid.spiffe_id()) else {
        bail!(
            "{} is not a Tenet device certificate",
            dir.join("svid.pem").display()
        );
    };
    let now = time::OffsetDateTime::now_utc();
    let options = tenet_device::CollectOptions {
        device_id: device,
        // Reports are ordered by collection time first; the sequence breaks ties.
        sequence: u64::try_from(now.unix_timestamp()).unwrap_or(0),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        now,
        nft_ruleset: tenet_device::nft_ruleset(),
    };
    let report = tenet_device::collect_report(Path::new("/"), &options);
    let jws = tenet_device::sign_report(&report, &svid).map_err(|e| anyhow!("{e}"))?;
    let url = format!(
        "{}/.tenet/auth/device/report",
        gateway.trim_end_matches('/')
    );
    let response = gateway_client(&read("bundle.pem")?, resolve)?
        .post(&url)
        .body(jws)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("posture report refused ({status}): {text}");
    }
    say!("posture reported: {}", verdict_line(&text));
    Ok(())
}

/// The gateway's answer to a posture report as the operator reads it: `compliant`, or `NOT
/// compliant: disk_encryption is reported off (required), ...` with the age limit when
/// posture is too old; the raw answer when it carries no verdict.
fn verdict_line(answer: &str) -> String {
    let Ok(body) = serde_json::from_str::<serde_json::Value>(answer) else {
        return answer.to_owned();
    };
    let Some(compliant) = body.get("compliant").and_then(serde_json::Value::as_bool) else {
        return answer.to_owned();
    };
    if compliant {
        return "compliant".to_owned();
    }
    let max_age = body.get("max_age_secs").and_then(serde_json::Value::as_u64);
    let failures: Vec<String> = body
        .get("failures")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| {
                    let name = f
                        .get("name")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("requirement");
                    let reason = f
                        .get("reason")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default();
                    match (name, max_age) {
                        ("fresh", Some(max)) => format!("{reason}, at most {max} allowed"),
                        ("posture" | "fresh" | "os_version", _) => reason.to_owned(),
                        _ => format!("{} is {reason} (required)", name.replace('_', " ")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if failures.is_empty() {
        "NOT compliant: the device is revoked".to_owned()
    } else {
        format!("NOT compliant: {}", failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_report_answer_reads_as_a_verdict() {
        assert_eq!(
            verdict_line(r#"{"device_id":"d","compliant":true,"failing":[],"failures":[]}"#),
            "compliant"
        );
        let answer = concat!(
            r#"{"device_id":"d","compliant":false,"failing":["disk_encryption","os_version"],"#,
            r#""failures":[{"name":"disk_encryption","reason":"reported off"},"#,
            r#"{"name":"os_version","reason":"debian 11 is below 12"}],"max_age_secs":3600}"#
        );
        assert_eq!(
            verdict_line(answer),
            "NOT compliant: disk encryption is reported off (required); debian 11 is below 12"
        );
        let stale = r#"{"compliant":false,"failures":[{"name":"fresh","reason":"posture is 7200 seconds old"}],"max_age_secs":3600}"#;
        assert_eq!(
            verdict_line(stale),
            "NOT compliant: posture is 7200 seconds old, at most 3600 allowed"
        );
        assert_eq!(verdict_line("not json"), "not json");
    }

    fn route(host: &str, people: bool) -> RouteSpec {
        RouteSpec {
            name: "app".into(),
            service: "app".into(),
            listener: "people".into(),
            host: host.into(),
            path_prefix: "/".into(),
            upstream: tenet_gateway::UpstreamSpec {
                url: "http://127.0.0.1:8080".parse().unwrap(),
                spiffe_id: None,
                protocol: tenet_gateway::UpstreamProtocol::Auto,
            },
            people,
        }
    }

    fn listener(name: &str, port: u16) -> ListenerSpec {
        ListenerSpec {
            name: name.into(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            server_names: Vec::new(),
            client_auth: tenet_gateway::ClientAuth::Optional,
        }
    }

    fn section(redirect: &str) -> PeopleSection {
        toml::from_str(&format!(
            r#"rp_id = "example.test"
               origins = ["https://app.example.test:8443"]
               [[providers]]
               name = "corp"
               issuer = "https://idp.example.test"
               client_id = "tenet"
               redirect_uri = "{redirect}""#
        ))
        .unwrap()
    }

    const GOOD: &str = "https://app.example.test:8443/.tenet/auth/callback";

    /// `people_spec` of `section` with one people route on app.example.test served by the
    /// listener "people" on 8443 (and a "mesh" listener on 9443 serving no people route).
    fn check(section: PeopleSection) -> Result<Option<PeopleSpec>> {
        people_spec(
            Path::new("."),
            Some(section),
            &[route("app.example.test", true)],
            &[listener("people", 8443), listener("mesh", 9443)],
        )
    }

    /// The error `people_spec` gives for `section`, checked to contain every one of `parts`.
    fn refused(section: PeopleSection, parts: &[&str]) {
        let err = format!("{:#}", check(section).unwrap_err());
        for part in parts {
            assert!(err.contains(part), "{part:?} not in: {err}");
        }
    }

    #[test]
    fn people_routes_need_a_people_section_on_the_callback_host() {
        let base = Path::new(".");
        let listeners = [listener("people", 8443)];
        let err =
            people_spec(base, None, &[route("app.example.test", true)], &listeners).unwrap_err();
        assert!(err.to_string().contains("no [people] section"), "{err}");
        assert!(
            people_spec(base, None, &[route("app.example.test", false)], &listeners)
                .unwrap()
                .is_none()
        );

        assert!(check(section(GOOD)).unwrap().is_some());
        let mut strict = listener("people", 8443);
        strict.client_auth = tenet_gateway::ClientAuth::Required;
        let err = people_spec(
            base,
            Some(section(GOOD)),
            &[route("app.example.test", true)],
            &[strict],
        )
        .unwrap_err();
        assert!(err.to_string().contains("client_auth"), "{err}");

        refused(
            section("https://login.example.test:8443/.tenet/auth/callback"),
            &["must share it"],
        );
        refused(
            section("https://app.example.test:8443/callback"),
            &["redirect_uri", "/.tenet/auth/callback"],
        );

        let mut far = section(GOOD);
        far.sites = vec![tenet_session::Site {
            network: "192.0.2.0/24".parse().unwrap(),
            name: "nowhere".into(),
            latitude: 123.0,
            longitude: 0.0,
        }];
        let err = people_spec(base, Some(far), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("people.sites"), "{err}");

        let mut id_tokens = section(GOOD);
        id_tokens.bearer_audience = Some("tenet".into());
        let err = people_spec(base, Some(id_tokens), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("client id"), "{err}");
        let mut kind = section(GOOD);
        kind.bearer_kind = Some("jwt".into());
        let err = people_spec(base, Some(kind), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("bearer_kind"), "{err}");

        let mut action = section(GOOD);
        action.posture_action = "ignore".into();
        let err = people_spec(base, Some(action), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("posture_action"), "{err}");
    }

    #[test]
    fn the_redirect_uri_is_https_on_the_port_of_a_people_listener() {
        refused(
            section("http://app.example.test:8443/.tenet/auth/callback"),
            &["people.providers[0].redirect_uri", "must be https"],
        );
        // 9443 is a listener, but not one serving people routes.
        refused(
            section("https://app.example.test:9443/.tenet/auth/callback"),
            &[
                "people.providers[0].redirect_uri",
                "port 9443",
                "\"people\" on 8443",
            ],
        );
        // No port: 443.
        refused(
            section("https://app.example.test/.tenet/auth/callback"),
            &["people.providers[0].redirect_uri", "port 443"],
        );
        let routes = [route("app.example.test", true)];
        let on_443 = [listener("people", 443)];
        let mut default_port = section("https://app.example.test/.tenet/auth/callback");
        default_port.origins = vec!["https://app.example.test".into()];
        let spec = people_spec(Path::new("."), Some(default_port), &routes, &on_443);
        assert!(spec.unwrap().is_some());
        // A listener on port 0 takes its port when it binds: it cannot be compared.
        let any_port = [listener("people", 0)];
        let spec = people_spec(Path::new("."), Some(section(GOOD)), &routes, &any_port);
        assert!(spec.unwrap().is_some());
    }

    #[test]
    fn provider_names_are_unique_and_providers_valid() {
        let mut twice = section(GOOD);
        let mut second = section(GOOD).providers.remove(0);
        second.name = "Corp".into();
        second.issuer = "https://other.example.test".into();
        twice.providers.push(second);
        refused(
            twice,
            &["people.providers[1].name", "\"Corp\"", "must be unique"],
        );

        let mut plain = section(GOOD);
        plain.providers[0].issuer = "http://idp.example.test".into();
        refused(plain, &["people.providers[0]", "issuer", "https"]);
        let mut no_openid = section(GOOD);
        no_openid.providers[0].scopes = Some(vec!["email".into()]);
        refused(no_openid, &["people.providers[0]", "scopes"]);
        let mut bad_name = section(GOOD);
        bad_name.providers[0].name = "corp:evil".into();
        refused(bad_name, &["people.providers[0]", "name"]);
    }

    /// What `people_spec` of `section` logs at warn (and whether it loads).
    fn warnings_of(section: PeopleSection) -> (bool, String) {
        #[derive(Clone, Default)]
        struct Logged(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Logged {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logged = Logged::default();
        let writer = logged.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let loaded = tracing::subscriber::with_default(subscriber, || check(section).is_ok());
        let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
        (loaded, text)
    }

    #[test]
    fn people_values_that_would_load_but_should_not() {
        // A sign-in waiting for its passkey longer than the session it starts may last.
        let mut wait = section(GOOD);
        wait.idle_timeout = "10m".into();
        (wait.absolute_timeout, wait.second_factor_timeout) = ("20m".into(), "30m".into());
        refused(
            wait,
            &[
                "people.second_factor_timeout \"30m\"",
                "people.absolute_timeout \"20m\"",
            ],
        );
        let mut equal = section(GOOD);
        equal.idle_timeout = "10m".into();
        (equal.absolute_timeout, equal.second_factor_timeout) = ("30m".into(), "30m".into());
        assert!(check(equal).is_ok());

        // So many sign-ins per source are no limit at all.
        let mut many = section(GOOD);
        many.sign_ins_per_source = u32::MAX;
        refused(many, &["people.sign_ins_per_source 4294967295", "100000"]);
        let mut most = section(GOOD);
        most.sign_ins_per_source = MAX_SIGN_INS_PER_SOURCE;
        assert!(check(most).is_ok());

        // A single-label rp_id loads with a warning naming it; localhost and a dotted name
        // load silently.
        for single in ["internal", "corp"] {
            let mut rp = section(GOOD);
            rp.rp_id = single.into();
            rp.origins = vec![format!("https://app.{single}:8443")];
            let (loaded, logged) = warnings_of(rp);
            assert!(loaded, "{single}: {logged}");
            assert!(
                logged.contains("WARN") && logged.contains(&format!("people.rp_id {single:?}")),
                "{single}: {logged}"
            );
        }
        for quiet in ["localhost", "example.test"] {
            let mut rp = section(GOOD);
            rp.rp_id = quiet.into();
            rp.origins = vec![format!("https://app.{quiet}:8443")];
            let (loaded, logged) = warnings_of(rp);
            assert!(loaded && logged.is_empty(), "{quiet}: {logged}");
        }
    }

    /// A cross-origin ceremony without topOrigin is refused unless `[people]` opts in.
    #[test]
    fn cross_origin_without_top_origin_is_off_unless_configured() {
        let plain = section(GOOD);
        assert!(!plain.cross_origin_without_top_origin);
        assert!(relying_party(&plain).is_ok());
        let opted: PeopleSection = toml::from_str(
            r#"rp_id = "example.test"
               origins = ["https://app.example.test:8443"]
               cross_origin_without_top_origin = true
               [[providers]]
               name = "corp"
               issuer = "https://idp.example.test"
               client_id = "tenet"
               redirect_uri = "https://app.example.test:8443/.tenet/auth/callback""#,
        )
        .unwrap();
        assert!(opted.cross_origin_without_top_origin);
        assert!(relying_party(&opted).is_ok());
    }

    #[test]
    fn relying_party_timeouts_and_rules_are_checked_at_load() {
        // None of these reaches a provider: the issuer is never contacted by people_spec.
        let mut origin = section(GOOD);
        origin.origins = vec!["http://app.example.test:8443".into()];
        refused(origin, &["people.origins[0]"]);
        let mut top = section(GOOD);
        top.top_origins = vec!["http://portal.example.net".into()];
        refused(top, &["people.top_origins[0]"]);
        let mut rp_id = section(GOOD);
        rp_id.rp_id = "example.test:8443".into();
        refused(rp_id, &["people.rp_id"]);
        let mut name = section(GOOD);
        name.rp_name = " ".into();
        refused(name, &["people.rp_name"]);

        let mut idle = section(GOOD);
        idle.idle_timeout = "13h".into();
        refused(idle, &["people.idle_timeout", "people.absolute_timeout"]);
        let mut zero = section(GOOD);
        zero.idle_timeout = "0ms".into();
        refused(zero, &["people.idle_timeout", "positive"]);
        let mut long = section(GOOD);
        long.absolute_timeout = "400d".into();
        refused(long, &["people.absolute_timeout", "year"]);
        let mut unit = section(GOOD);
        unit.absolute_timeout = "12 hours".into();
        refused(unit, &["people.absolute_timeout"]);
        for wait in ["0ms", "500ms", "2h"] {
            let mut second = section(GOOD);
            second.second_factor_timeout = wait.into();
            refused(
                second,
                &["people.second_factor_timeout", "between 1s and 1h"],
            );
        }
        let mut second = section(GOOD);
        second.second_factor_timeout = "3m".into();
        let spec = check(second).unwrap().unwrap();
        assert_eq!(
            spec.limits.second_factor_timeout,
            time::Duration::minutes(3)
        );

        let mut risk = section(GOOD);
        risk.risk_step_up = 90;
        refused(risk, &["people.risk_step_up 90", "people.risk_end 80"]);
        for zero in [(0, 80), (50, 0), (0, 0)] {
            let mut risk = section(GOOD);
            (risk.risk_step_up, risk.risk_end) = zero;
            let key = if zero.0 == 0 {
                "people.risk_step_up 0"
            } else {
                "people.risk_end 0"
            };
            refused(risk, &[key, "first request"]);
        }
        let mut equal = section(GOOD);
        (equal.risk_step_up, equal.risk_end) = (1, 1);
        assert!(check(equal).is_ok());
        let mut sign_ins = section(GOOD);
        sign_ins.sign_ins_per_source = 0;
        refused(sign_ins, &["people.sign_ins_per_source 0"]);
        let mut one = section(GOOD);
        one.sign_ins_per_source = 1;
        assert!(check(one).is_ok());
        let mut groups = section(GOOD);
        groups.admin_groups = vec!["admins".into(), " ".into()];
        refused(groups, &["people.admin_groups[1]", "empty"]);
        let mut over = section(GOOD);
        over.risk_end = 101;
        refused(over, &["people.risk_end 101"]);
        let mut speed = section(GOOD);
        speed.max_travel_kmh = 0.0;
        refused(speed, &["people.max_travel_kmh"]);
        let mut age = section(GOOD);
        age.posture.max_age_secs = Some(0);
        refused(age, &["people.posture.max_age_secs"]);
        let mut old = section(GOOD);
        old.posture.max_age_secs = Some(u64::MAX);
        refused(old, &["people.posture.max_age_secs"]);

        let spec = check(section(GOOD)).unwrap().unwrap();
        assert_eq!(spec.limits.idle_timeout, time::Duration::minutes(30));
        assert_eq!(spec.limits.absolute_timeout, time::Duration::hours(12));
        assert_eq!(
            spec.limits.second_factor_timeout,
            time::Duration::minutes(10)
        );
        assert_eq!(spec.rules.posture_max_age, time::Duration::hours(24));
        assert_eq!(spec.relying_party.rp_id(), "example.test");
        assert!(spec.bearer.is_none());
    }

    /// An rp_id that is a public suffix is refused at load; so is an origin outside the rp_id.
    #[test]
    fn the_rp_id_is_no_public_suffix_and_origins_are_under_it() {
        for (rp_id, origin) in [
            ("com", "https://app.example.com:8443"),
            ("co.uk", "https://app.example.co.uk:8443"),
            ("github.io", "https://app.github.io:8443"),
        ] {
            let mut suffix = section(GOOD);
            suffix.rp_id = rp_id.into();
            suffix.origins = vec![origin.into()];
            refused(
                suffix,
                &[
                    &format!("people.rp_id {rp_id:?}"),
                    "public suffix",
                    "claim its credentials",
                ],
            );
        }
        let mut outside = section(GOOD);
        outside.origins = vec!["https://app.example.net:8443".into()];
        refused(
            outside,
            &[
                "people.origins[0] \"https://app.example.net:8443\"",
                "not the rp id \"example.test\"",
            ],
        );
        let mut lookalike = section(GOOD);
        lookalike.origins = vec!["https://appexample.test:8443".into()];
        refused(lookalike, &["people.origins[0]", "not the rp id"]);
    }

    /// A WebAuthn origin on another port than every people listener's is refused, naming the
    /// origin, the port and the people listeners (the mesh listener is not one).
    #[test]
    fn an_origin_on_another_port_than_the_people_listener_is_refused() {
        assert!(check(section(GOOD)).is_ok());

        let mut other_port = section(GOOD);
        other_port.origins = vec![
            "https://app.example.test:8443".into(),
            "https://app.example.test".into(),
        ];
        let error = format!("{:#}", check(other_port).unwrap_err());
        assert!(error.contains("\"https://app.example.test\""), "{error}");
        assert!(error.contains("port 443"), "{error}");
        assert!(error.contains("\"people\" on 8443"), "{error}");
        assert!(!error.contains("9443"), "{error}");
    }

    /// `bearer_key_wait` in `[people]` and `jwks_refetch_interval` per provider are read from
    /// tenet.toml, keep their defaults (3 s, 30 s) when absent, and refuse zero and absurd
    /// values naming the key.
    #[test]
    fn the_bearer_key_wait_and_the_jwks_refetch_interval_are_configurable_and_bounded() {
        let mut default = section(GOOD);
        default.bearer_audience = Some("tenet-proxy".into());
        let spec = check(default).unwrap().unwrap();
        let bearer = spec.bearer.unwrap();
        assert_eq!(bearer.key_wait, Duration::from_secs(3));
        let provider = provider_config(0, &spec.section.providers[0]).unwrap();
        assert_eq!(provider.jwks_refetch_interval, Duration::from_secs(30));

        let set: PeopleSection = toml::from_str(
            r#"rp_id = "example.test"
               origins = ["https://app.example.test:8443"]
               bearer_audience = "tenet-proxy"
               bearer_key_wait = "500ms"
               [[providers]]
               name = "corp"
               issuer = "https://idp.example.test"
               client_id = "tenet"
               redirect_uri = "https://app.example.test:8443/.tenet/auth/callback"
               jwks_refetch_interval = "2m""#,
        )
        .unwrap();
        let spec = check(set).unwrap().unwrap();
        assert_eq!(spec.bearer.unwrap().key_wait, Duration::from_millis(500));
        let provider = provider_config(0, &spec.section.providers[0]).unwrap();
        assert_eq!(provider.jwks_refetch_interval, Duration::from_secs(120));

        for bad in ["0s", "0ms", "11s", "1h", "soon"] {
            let mut wait = section(GOOD);
            wait.bearer_audience = Some("tenet-proxy".into());
            wait.bearer_key_wait = Some(bad.into());
            refused(wait, &["people.bearer_key_wait"]);
        }
        for good in ["1ms", "10s"] {
            let mut wait = section(GOOD);
            wait.bearer_key_wait = Some(good.into());
            assert!(check(wait).is_ok(), "{good}");
        }
        for bad in ["0s", "0ms", "500ms", "11m", "1d", "soon"] {
            let mut interval = section(GOOD);
            interval.providers[0].jwks_refetch_interval = Some(bad.into());
            refused(interval, &["people.providers[0]", "jwks_refetch_interval"]);
        }
        for good in ["1s", "10m"] {
            let mut interval = section(GOOD);
            interval.providers[0].jwks_refetch_interval = Some(good.into());
            assert!(check(interval).is_ok(), "{good}");
        }
    }

    #[test]
    fn discovery_retries_double_from_a_second_up_to_the_configured_cap() {
        let spec = check(section(GOOD)).unwrap().unwrap();
        let waits: Vec<u64> = (1..=8).map(|n| spec.backoff.delay(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);

        let mut fast = section(GOOD);
        fast.discovery_retry_max = "5s".into();
        let spec = check(fast).unwrap().unwrap();
        let waits: Vec<u64> = (1..=5).map(|n| spec.backoff.delay(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);

        for bad in ["500ms", "0s", "2h", "soon"] {
            let mut wrong = section(GOOD);
            wrong.discovery_retry_max = bad.into();
            refused(wrong, &["people.discovery_retry_max"]);
        }
    }

    #[test]
    fn session_revoke_takes_a_provider_and_subject_or_an_email() {
        for good in [
            "user:corp:248289761001",
            "user:corp:auth0|a:b",
            "alice@example.test",
        ] {
            check_person(good).unwrap();
        }
        for bad in [
            "",
            "user:",
            "user:corp",
            "user:corp:",
            "user::248289761001",
            "alice",
            "@example.test",
            "alice@",
            "alice@@example.test",
            "alice @example.test",
            "alice@example.test\n",
        ] {
            let err = check_person(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}"))
                    && err.contains("user:PROVIDER:SUBJECT")
                    && err.contains("email address"),
                "{err}"
            );
        }
        assert_eq!(revoked_count(r#"{"revoked": 0}"#).unwrap(), 0);
        assert_eq!(revoked_count(r#"{"revoked": 2}"#).unwrap(), 2);
        assert!(revoked_count(r#"{"error": "x"}"#).is_err());
    }

    #[test]
    fn import_shows_twenty_problems_then_how_many_more() {
        let problems: Vec<_> = (2..=26)
            .map(|line| serde_json::json!({"line": line, "reason": "no enrolled device"}))
            .collect();
        let answer = serde_json::json!({"imported": 0, "problems": problems}).to_string();
        let (imported, refused, lines) = import_outcome(&answer).unwrap();
        assert_eq!((imported, refused), (0, 25));
        assert_eq!(lines.len(), 21);
        assert_eq!(lines[0], "line 2: no enrolled device");
        assert_eq!(lines[19], "line 21: no enrolled device");
        assert_eq!(lines[20], "... and 5 more");

        let (imported, refused, lines) =
            import_outcome(r#"{"imported": 3, "problems": []}"#).unwrap();
        assert_eq!((imported, refused), (3, 0));
        assert!(lines.is_empty());
        assert!(import_outcome(r#"{"error": "x"}"#).is_err());
    }

    #[test]
    fn resolve_takes_host_and_ip_and_refuses_curls_port_form() {
        let v4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let v6: std::net::IpAddr = "::1".parse().unwrap();
        assert_eq!(
            parse_resolve("app.example.test:127.0.0.1").unwrap(),
            ("app.example.test", v4)
        );
        assert_eq!(
            parse_resolve("app.example.test:[::1]").unwrap(),
            ("app.example.test", v6)
        );
        assert_eq!(
            parse_resolve("app.example.test:::1").unwrap(),
            ("app.example.test", v6)
        );

        let err = parse_resolve("wiki.example.test:9443:127.0.0.1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("give HOST:IP (wiki.example.test:127.0.0.1)") && err.contains("--gateway"),
            "{err}"
        );
        let err = parse_resolve("wiki.example.test:8443:2001:db8::1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in brackets"), "{err}");
        assert_eq!(
            parse_resolve("wiki.example.test:[8443:2001:db8::1]")
                .unwrap()
                .0,
            "wiki.example.test"
        );
        let err = parse_resolve("wiki.example.test:9443:[::1]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("(wiki.example.test:[::1])"), "{err}");
        for text in [
            "",
            "app.example.test",
            ":127.0.0.1",
            "app.example.test:gateway",
        ] {
            let err = parse_resolve(text).unwrap_err().to_string();
            assert!(err.contains("expected HOST:IP"), "{text:?}: {err}");
        }
    }

    #[test]
    fn enrol_output_is_checked_before_the_token_is_spent() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/device");
        prepare_enrol_out(&out).unwrap();
        assert!(out.is_dir());
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "the probe file is removed"
        );

        for name in ENROL_FILES {
            let taken = dir.path().join(name);
            std::fs::create_dir_all(&taken).unwrap();
            std::fs::write(taken.join(name), "old").unwrap();
            let err = prepare_enrol_out(&taken).unwrap_err().to_string();
            assert!(
                err.contains("already exists") && err.contains(name),
                "{err}"
            );
        }

        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        assert!(prepare_enrol_out(&file.join("device")).is_err());
    }

    #[test]
    fn import_refuses_a_file_over_16_mib_before_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("export.csv");
        // Sparse: the size is there without the bytes.
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_MDM_IMPORT + 1).unwrap();
        let err = read_import(&big).unwrap_err().to_string();
        assert!(
            err.contains("export.csv") && err.contains("16 MiB"),
            "{err}"
        );
        file.set_len(3).unwrap();
        assert_eq!(read_import(&big).unwrap(), vec![0, 0, 0]);
        let err = read_import(&dir.path().join("missing.csv")).unwrap_err();
        assert!(err.to_string().contains("missing.csv"), "{err}");
    }
}
