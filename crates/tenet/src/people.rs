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
use tenet_gateway::{RiskSource, RouteSpec};
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
    /// The token kind bearer tokens must declare: `typ:<media type>` (header) or
    /// `token_use:<value>` (claim). Any kind when absent.
    #[serde(default)]
    pub bearer_kind: Option<String>,
    /// Idle timeout of a session, e.g. "30m".
    #[serde(default = "default_idle")]
    pub idle_timeout: String,
    /// Absolute lifetime of a session, e.g. "12h".
    #[serde(default = "default_absolute")]
    pub absolute_timeout: String,
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
fn default_posture_action() -> String {
    "end".into()
}
fn default_risk_step_up() -> u8 {
    50
}
fn default_risk_end() -> u8 {
    80
}
fn default_speed() -> f64 {
    1000.0
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

/// `[people]`, checked, with paths made absolute.
#[derive(Debug)]
pub struct PeopleSpec {
    section: PeopleSection,
    base: PathBuf,
    idle: Duration,
    absolute: Duration,
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

/// Checks `[people]` against the routes: people routes need it, and every people route must
/// be on the host of the providers' redirect URIs (the session cookie is host-only).
pub fn people_spec(
    base: &Path,
    section: Option<PeopleSection>,
    routes: &[RouteSpec],
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
    for (i, p) in section.providers.iter().enumerate() {
        let url = url::Url::parse(&p.redirect_uri).map_err(|e| {
            anyhow!(
                "people.providers[{i}].redirect_uri {:?}: {e}",
                p.redirect_uri
            )
        })?;
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
    bearer_kind(section.bearer_kind.as_deref())?;
    if !matches!(section.posture_action.as_str(), "end" | "step_up") {
        bail!(
            "people.posture_action {:?} is not \"end\" or \"step_up\"",
            section.posture_action
        );
    }
    tenet_session::SiteTable::new(section.sites.clone())
        .map_err(|e| anyhow!("people.sites: {e}"))?;
    let idle = parse_duration(&section.idle_timeout).context("people.idle_timeout")?;
    let absolute = parse_duration(&section.absolute_timeout).context("people.absolute_timeout")?;
    Ok(Some(PeopleSpec {
        section,
        base: base.to_path_buf(),
        idle,
        absolute,
    }))
}

/// Builds the sign-in service: discovers every provider, opens the factor, session, device
/// and posture files in `data_dir`.
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
        let mut config =
            tenet_oidc::ProviderConfig::new(&p.name, &p.issuer, &p.client_id, &p.redirect_uri);
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
        if let Some(claim) = &p.groups_claim {
            config.groups_claim.clone_from(claim);
        }
        if let Some(scopes) = &p.scopes {
            config.scopes.clone_from(scopes);
        }
        let provider = tenet_oidc::Provider::discover(config)
            .await
            .with_context(|| format!("identity provider {:?} ({})", p.name, p.issuer))?;
        providers.push(provider);
    }
    let relying_party = tenet_mfa::RelyingParty::new(&tenet_mfa::RelyingPartyConfig {
        rp_id: s.rp_id.clone(),
        rp_name: s.rp_name.clone(),
        origins: s.origins.clone(),
    })
    .map_err(|e| anyhow!("people: {e}"))?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let factors =
        tenet_mfa::FactorStore::open(data_dir.join("factors.json")).map_err(|e| anyhow!("{e}"))?;
    let limits = tenet_session::SessionLimits {
        idle_timeout: time::Duration::try_from(spec.idle).context("people.idle_timeout")?,
        absolute_timeout: time::Duration::try_from(spec.absolute)
            .context("people.absolute_timeout")?,
        ..tenet_session::SessionLimits::default()
    };
    let now = time::OffsetDateTime::now_utc();
    let sessions = tenet_session::SessionStore::open(&data_dir.join("sessions.json"), limits, now)
        .map_err(|e| anyhow!("{e}"))?;
    let rules = tenet_session::Rules {
        step_up_on_network_change: s.step_up_on_network_change,
        posture_action: if s.posture_action == "step_up" {
            tenet_session::PostureAction::StepUp
        } else {
            tenet_session::PostureAction::End
        },
        posture_max_age: s
            .posture
            .max_age_secs
            .and_then(|secs| i64::try_from(secs).ok())
            .map_or(time::Duration::hours(24), time::Duration::seconds),
        risk_step_up: s.risk_step_up,
        risk_end: s.risk_end,
        sites: tenet_session::SiteTable::new(s.sites.clone())
            .map_err(|e| anyhow!("people.sites: {e}"))?,
        max_speed_kmh: s.max_travel_kmh,
    };
    rules.validate().map_err(|e| anyhow!("people: {e}"))?;
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
        relying_party,
        factors,
        sessions,
        rules,
        devices,
        ca,
        risk,
        sink,
        require_webauthn: s.require_webauthn,
        admin_groups: s.admin_groups.clone(),
        bearer: match &s.bearer_audience {
            Some(audience) => Some(tenet_people::BearerSettings {
                audience: audience.clone(),
                kind: bearer_kind(s.bearer_kind.as_deref())?,
            }),
            None => None,
        },
    })))
}

/// `/v1/people/...` on the admin API:
/// - `POST /v1/people/devices/tokens` `{"owner": EMAIL?, "ttl": "24h"?}`: an enrolment token;
/// - `GET /v1/people/devices`: enrolled devices;
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
    use http_body_util::BodyExt;
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
    let body = match http_body_util::Limited::new(req.into_body(), 8 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("request body: {e}")}),
            );
        }
    };
    let now = state.clock.now();
    let field = |name: &str| -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()?
            .get(name)?
            .as_str()
            .map(str::to_owned)
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
                    json!({"token": t.token, "expires_at": t.expires_at.unix_timestamp()}),
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
            return reply(StatusCode::OK, json!({"devices": people.devices().list()}));
        }
        (&Method::POST, "/v1/people/devices/revoke") => {
            let Some(id) = field("device").and_then(|d| uuid::Uuid::parse_str(&d).ok()) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "\"device\" must be a device id (UUID)"}),
                );
            };
            match people.devices().revoke(id, now) {
                Ok(()) => (
                    StatusCode::OK,
                    json!({"revoked": id.to_string()}),
                    "device.revoke",
                    id.to_string(),
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
                Ok(import) => {
                    let problems: Vec<_> = import
                        .problems
                        .iter()
                        .map(|p| json!({"line": p.line, "reason": p.reason}))
                        .collect();
                    let detail = format!(
                        "{}: {} rows imported, {} refused",
                        source,
                        import.records.len(),
                        problems.len()
                    );
                    (
                        StatusCode::OK,
                        json!({"imported": import.records.len(), "problems": problems}),
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

async fn admin_call(
    explicit: Option<&Path>,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<()> {
    let config = crate::config::load(explicit)?;
    let (status, text) = crate::admin::call_with(&config, method, path, body).await?;
    println!("{text}");
    if !status.is_success() {
        bail!("the admin API answered {status}");
    }
    Ok(())
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
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("source", &source)
                .append_pair("match", &match_by)
                .finish();
            admin_call(
                explicit,
                Method::POST,
                &format!("/v1/people/devices/mdm?{query}"),
                bytes,
            )
            .await
        }
        DeviceCommand::Enrol {
            gateway,
            token,
            bundle,
            out,
        } => enrol(&gateway, &token, &bundle, &out).await,
        DeviceCommand::Report { gateway, dir } => report(&gateway, &dir).await,
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
            let body = serde_json::json!({"user": user}).to_string();
            admin_call(
                explicit,
                Method::POST,
                "/v1/people/sessions/revoke",
                body.into_bytes(),
            )
            .await
        }
    }
}

fn gateway_client(bundle_pem: &[u8]) -> Result<reqwest::Client> {
    let certs = reqwest::Certificate::from_pem_bundle(bundle_pem).context("the trust bundle")?;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .tls_certs_only(certs)
        .build()
        .context("building the HTTPS client")
}

async fn enrol(gateway: &str, token: &str, bundle: &Path, out: &Path) -> Result<()> {
    let bundle_pem =
        std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
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
    let response = gateway_client(&bundle_pem)?
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
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    key.save(&out.join("svid.key"))
        .map_err(|e| anyhow!("{e}"))?;
    std::fs::write(out.join("svid.pem"), chain_pem)
        .with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(out.join("bundle.pem"), &bundle_pem)?;
    println!(
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

async fn report(gateway: &str, dir: &Path) -> Result<()> {
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
    let response = gateway_client(&read("bundle.pem")?)?
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
    println!("posture reported: {text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

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

    #[test]
    fn people_routes_need_a_people_section_on_the_callback_host() {
        let base = Path::new(".");
        let err = people_spec(base, None, &[route("app.example.test", true)]).unwrap_err();
        assert!(err.to_string().contains("no [people] section"), "{err}");
        assert!(
            people_spec(base, None, &[route("app.example.test", false)])
                .unwrap()
                .is_none()
        );

        let good = section("https://app.example.test:8443/.tenet/auth/callback");
        assert!(
            people_spec(base, Some(good), &[route("app.example.test", true)])
                .unwrap()
                .is_some()
        );

        let other_host = section("https://login.example.test:8443/.tenet/auth/callback");
        let err =
            people_spec(base, Some(other_host), &[route("app.example.test", true)]).unwrap_err();
        assert!(err.to_string().contains("must share it"), "{err}");

        let bad_path = section("https://app.example.test:8443/callback");
        let err =
            people_spec(base, Some(bad_path), &[route("app.example.test", true)]).unwrap_err();
        assert!(err.to_string().contains("/.tenet/auth/callback"), "{err}");

        let mut far = section("https://app.example.test:8443/.tenet/auth/callback");
        far.sites = vec![tenet_session::Site {
            network: "192.0.2.0/24".parse().unwrap(),
            name: "nowhere".into(),
            latitude: 123.0,
            longitude: 0.0,
        }];
        let err = people_spec(base, Some(far), &[]).unwrap_err();
        assert!(err.to_string().contains("people.sites"), "{err}");

        let mut id_tokens = section("https://app.example.test:8443/.tenet/auth/callback");
        id_tokens.bearer_audience = Some("tenet".into());
        let err = people_spec(base, Some(id_tokens), &[]).unwrap_err();
        assert!(err.to_string().contains("client id"), "{err}");
        let mut kind = section("https://app.example.test:8443/.tenet/auth/callback");
        kind.bearer_kind = Some("jwt".into());
        let err = people_spec(base, Some(kind), &[]).unwrap_err();
        assert!(err.to_string().contains("bearer_kind"), "{err}");

        let mut action = section("https://app.example.test:8443/.tenet/auth/callback");
        action.posture_action = "ignore".into();
        let err = people_spec(base, Some(action), &[]).unwrap_err();
        assert!(err.to_string().contains("posture_action"), "{err}");
    }
}
