//! [`SignIn`]: the gateway's sign-in service for people routes.
//!
//! Sign-in, in order: `GET login` (an OpenID Connect authorization request with PKCE, state
//! and nonce, the transaction bound to the browser by a cookie) → the provider → `GET
//! callback` (the transaction consumed once, the ID token checked, a new session created)
//! → when a second factor is required, the session waits in step-up until `POST
//! webauthn/authenticate/finish` (or, for a person without a credential yet,
//! `webauthn/register/finish`) adds the factor, which gives the session a new id.
//! Every request of a people route is then [`SignIn::identify`]d: the session is looked up
//! (timeouts, device binding), re-evaluated (network, posture, risk, travel), and described
//! to policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Method, StatusCode, header};
use tenet_event::{AuthenticationEvent, Event, EventKind, EventSink};
use tenet_gateway::{
    AuthRequest, IdentifyWait, PeopleGate, Person, PersonRequest, PersonVerdict, RiskSource,
    ServeFuture,
};
use tenet_identity::CertificateAuthority;
use tenet_mfa::{CredentialKind, FactorStore, PendingAuthentication, PendingRegistration};
use tenet_mfa::{RelyingParty, UserAccount};
use tenet_oidc::{AuthorizationResponse, PendingLogin, Provider, ProviderSlot};
use tenet_policy::{Principal, SessionFacts};
use tenet_session::{
    CookieJar, FactorUse, LoginTransactions, NewSession, PostureSummary, Reason, ReasonCode,
    RedirectPolicy, ReturnTo, Rules, Session, SessionState, SessionStore, Signals, UserIdentity,
    Verdict,
};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

mod answer;
mod ends;
mod enrol;
mod factors;
mod json_body;
mod refusals;
mod signin;

use answer::{
    Answer, add_cookie, error, json, provider_unreachable, see_other, tenet_gateway_auth_path,
};

use crate::devices::Devices;
use crate::pages;
use tenet_throttle::{Pool, Throttle};

/// Most WebAuthn ceremonies open at once (one per session at most).
const MAX_CEREMONIES: usize = 10_000;
/// Most login transactions open at once.
const MAX_LOGINS: usize = 10_000;
/// The refusal reason of a bearer token naming a key no provider's key set has.
const BEARER_UNKNOWN_KID: &str = "bearer_unknown_kid";
/// Attribute names kept in the session's user record.
const ATTR_PROVIDER: &str = "provider";
const ATTR_DEVICE_COMPLIANT: &str = "device_compliant_at_login";

/// What the sign-in service is built from.
pub struct SignInParts {
    /// The OpenID Connect providers, discovered or not yet (a background task fills each
    /// slot once its provider answers); the first is the default.
    pub providers: Vec<Arc<ProviderSlot>>,
    /// The WebAuthn relying party.
    pub relying_party: RelyingParty,
    /// People's registered factors.
    pub factors: FactorStore,
    /// People's sessions.
    pub sessions: SessionStore,
    /// Continuous evaluation rules.
    pub rules: Rules,
    /// Enrolled devices and posture.
    pub devices: Arc<Devices>,
    /// The CA that signs device certificates at enrolment.
    pub ca: Arc<CertificateAuthority>,
    /// Detection risk per principal name.
    pub risk: Arc<dyn RiskSource>,
    /// Where authentication events go.
    pub sink: Arc<dyn EventSink>,
    /// Whether a WebAuthn factor is required after the provider's sign-in.
    pub require_webauthn: bool,
    /// Members of these groups always need a WebAuthn factor (administrators), whatever
    /// `require_webauthn` says.
    pub admin_groups: Vec<String>,
    /// API callers may present a provider's access token (`Authorization: Bearer`) instead
    /// of a session, when set: the audience the token must carry, and its kind.
    pub bearer: Option<BearerSettings>,
    /// Most sign-ins one source address may start per ten minutes.
    pub sign_ins_per_source: u32,
}

/// How bearer tokens are accepted on people routes.
#[derive(Debug, Clone)]
pub struct BearerSettings {
    /// The audience a token must carry (exact, case-sensitive); never a provider's client id,
    /// so an ID token cannot stand in for an access token.
    pub audience: String,
    /// The token kind required (`typ` header or `token_use` claim), or any.
    pub kind: tenet_oidc::TokenKind,
    /// Longest a request whose bearer token names a key the provider's key set lacks waits
    /// for the JWKS refetch under way before it is identified once more (and refused with
    /// `bearer_unknown_kid` if the key is still unknown); [`Self::DEFAULT_KEY_WAIT`] unless
    /// configured.
    pub key_wait: std::time::Duration,
}

impl BearerSettings {
    /// The default of [`Self::key_wait`]: 3 s.
    pub const DEFAULT_KEY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
}

/// A WebAuthn ceremony in progress for one session.
enum Ceremony {
    Register(Box<PendingRegistration>),
    Authenticate(Box<PendingAuthentication>),
}

/// The sign-in service (see the module documentation).
pub struct SignIn {
    providers: Vec<Arc<ProviderSlot>>,
    rp: RelyingParty,
    factors: Mutex<FactorStore>,
    sessions: SessionStore,
    logins: LoginTransactions,
    /// Open WebAuthn ceremonies by session handle, with when each started.
    ceremonies: Mutex<HashMap<String, (OffsetDateTime, Ceremony)>>,
    rules: Rules,
    devices: Arc<Devices>,
    ca: Arc<CertificateAuthority>,
    risk: Arc<dyn RiskSource>,
    sink: Arc<dyn EventSink>,
    require_webauthn: bool,
    admin_groups: Vec<String>,
    bearer: Option<BearerSettings>,
    return_paths: RedirectPolicy,
    /// Failed TOTP and recovery codes per person: 5 per 15 minutes.
    factor_failures: Throttle,
    /// Sign-ins started per source address per 10 minutes (pending logins are a shared,
    /// bounded table that a flood would otherwise empty).
    logins_per_source: Throttle,
    /// Refusals of requests without a session recorded in the ledger per source (see
    /// `refusals`).
    refusals_per_source: Throttle,
    /// Refusal events (one by one or a source's summary) recorded across all sources per
    /// window (see `refusals`).
    refusals_overall: Pool,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("providers", &self.providers.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SignIn {
    /// Builds the service.
    pub fn new(parts: SignInParts) -> Self {
        Self {
            providers: parts.providers,
            rp: parts.relying_party,
            factors: Mutex::new(parts.factors),
            sessions: parts.sessions,
            logins: LoginTransactions::new(MAX_LOGINS),
            ceremonies: Mutex::new(HashMap::new()),
            rules: parts.rules,
            devices: parts.devices,
            ca: parts.ca,
            risk: parts.risk,
            sink: parts.sink,
            require_webauthn: parts.require_webauthn,
            admin_groups: parts.admin_groups,
            bearer: parts.bearer,
            // Return addresses are paths on the gateway's own origin only.
            return_paths: RedirectPolicy::new(Vec::new(), Vec::new()),
            factor_failures: Throttle::new(5, time::Duration::minutes(15)),
            logins_per_source: Throttle::new(
                parts.sign_ins_per_source,
                time::Duration::minutes(10),
            ),
            refusals_per_source: Throttle::summarising(
                refusals::REFUSALS_PER_SOURCE,
                refusals::REFUSAL_WINDOW,
            ),
            refusals_overall: Pool::new(refusals::REFUSAL_EVENTS_OVERALL, refusals::REFUSAL_WINDOW),
        }
    }

    /// The session store (for the admin API: list and revoke).
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The devices (for the admin API).
    pub fn devices(&self) -> &Arc<Devices> {
        &self.devices
    }

    /// The identity providers, in configuration order, discovered or not.
    pub fn providers(&self) -> &[Arc<ProviderSlot>] {
        &self.providers
    }

    /// The sessions of the person named `name` (`user:<provider>:<subject>`), or of the
    /// person with that email address.
    fn selector(&self, name: &str) -> Option<tenet_session::UserSelector> {
        match name.strip_prefix("user:").and_then(|r| r.split_once(':')) {
            // A provider that is not configured names nobody (rather than the subject at
            // every provider).
            Some((provider, subject)) => self
                .providers
                .iter()
                .find(|p| p.config().name == provider)
                // Known from the configuration: a provider not discovered yet names its
                // people too.
                .map(|p| tenet_session::UserSelector::Subject {
                    issuer: Some(p.config().issuer.clone()),
                    subject: subject.to_owned(),
                }),
            None => Some(tenet_session::UserSelector::Email(name.to_owned())),
        }
    }

    /// Ends every session of a person (see [`SignIn::selector`] for `name`); returns how
    /// many. Used by playbooks, the risk cut-off and the CLI. Each end is recorded as a
    /// `session_end` (`revoked`) in the background: the caller does not wait for the ledger.
    pub fn revoke_person(&self, name: &str, now: OffsetDateTime) -> usize {
        let Some(selector) = self.selector(name) else {
            return 0;
        };
        match self.sessions.revoke_user(&selector, now) {
            Ok(ended) => {
                let ends = ended
                    .iter()
                    .map(|s| ends::session_end_event(s, "revoked: sessions revoked".into()))
                    .collect();
                ends::record_in_background(&self.sink, ends, now);
                ended.len()
            }
            Err(e) => {
                warn!(error = %e, "sessions could not be revoked");
                0
            }
        }
    }

    /// Makes every active session of a person step up with a fresh phishing-resistant factor
    /// before its next request goes through; returns how many sessions changed.
    pub fn step_up_person(&self, name: &str, why: &str, now: OffsetDateTime) -> usize {
        let reason = Reason::new(ReasonCode::StepUpPending, why);
        let Some(selector) = self.selector(name) else {
            return 0;
        };
        match self.sessions.require_step_up_user(&selector, &reason, now) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "step-up could not be required");
                0
            }
        }
    }

    fn person_name(session: &Session) -> String {
        Self::name_of(&session.user)
    }

    fn name_of(user: &UserIdentity) -> String {
        let provider = user
            .attributes
            .get(ATTR_PROVIDER)
            .map_or("unknown", String::as_str);
        format!("user:{provider}:{}", user.subject)
    }

    fn user_key(session: &Session) -> String {
        format!("{}|{}", session.user.issuer, session.user.subject)
    }

    async fn record(&self, now: OffsetDateTime, event: AuthenticationEvent) -> bool {
        match self
            .sink
            .record(Event::new(now, EventKind::Authentication(event)))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "authentication event could not be recorded");
                false
            }
        }
    }

    /// The session behind a request's cookie, whatever its state.
    fn session_of(
        &self,
        jar: &CookieJar,
        now: OffsetDateTime,
        device: Option<&str>,
    ) -> Option<Session> {
        let cookie = jar.session()?;
        self.sessions.lookup(cookie, device, now).ok()
    }

    fn device_of(&self, client: Option<&tenet_identity::SpiffeId>) -> Option<uuid::Uuid> {
        self.devices.device_of(client)
    }

    fn evaluate(
        &self,
        cookie: &str,
        session: &Session,
        req: &PersonRequest<'_>,
        device: Option<uuid::Uuid>,
        risk: u8,
    ) -> Evaluated {
        let state = self.devices.state(device, req.now);
        let compliant_at_login = session
            .user
            .attributes
            .get(ATTR_DEVICE_COMPLIANT)
            .map(String::as_str)
            == Some("true");
        // Posture is a session signal only for a device that was compliant when the person
        // signed in: losing compliance then calls for the configured action. A device that
        // never was compliant is for policy to judge (context.device.compliant).
        let posture =
            (device.is_some() && state.posture_required && compliant_at_login).then(|| {
                PostureSummary {
                    compliant: state.facts.compliant,
                    age: time::Duration::seconds(state.facts.posture_age_secs.max(0)),
                    changed_since_login: !state.facts.compliant,
                }
            });
        let signals = Signals {
            ip: req.source_ip,
            posture,
            risk,
        };
        let verdict = tenet_session::evaluate(session, &signals, &self.rules, req.now);
        // One store update per request: an allowed request records its use, a step-up or an
        // end changes the session's state.
        let updated = if verdict == Verdict::Allow {
            self.sessions
                .touch(cookie, req.source_ip, risk, req.now)
                .map(|_| None)
        } else {
            self.sessions.apply_verdict(cookie, &verdict, req.now)
        };
        let ended = updated.unwrap_or_else(|e| {
            warn!(error = %e, "session could not be updated");
            None
        });
        Evaluated {
            verdict,
            device: state.facts,
            ended,
        }
    }
}

/// A session's re-evaluation on one request.
struct Evaluated {
    verdict: Verdict,
    device: tenet_policy::DeviceFacts,
    /// The session as it was when this request's re-evaluation ended it (`None` also when
    /// a concurrent request ended it first).
    ended: Option<Session>,
}

fn session_facts(session: &Session, now: OffsetDateTime) -> SessionFacts {
    let mut factors: Vec<String> = session.factors.iter().map(|f| f.name.clone()).collect();
    factors.sort();
    factors.dedup();
    let last_mfa = session
        .factors
        .iter()
        .filter(|f| f.name != "oidc")
        .map(|f| f.at)
        .max();
    SessionFacts {
        authenticated: true,
        factors,
        phishing_resistant: session.factors.iter().any(|f| f.phishing_resistant),
        user_verified: session.factors.iter().any(|f| f.user_verified),
        age_secs: (now - session.created).whole_seconds().max(0),
        mfa_age_secs: last_mfa.map_or(-1, |at| (now - at).whole_seconds().max(0)),
    }
}

impl PeopleGate for SignIn {
    fn identify(&self, req: &PersonRequest<'_>) -> PersonVerdict {
        let sign_in = |reason: &str| PersonVerdict::SignInRequired {
            reason: reason.to_owned(),
        };
        let cookies = req
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let jar = match tenet_session::parse_cookie_headers(cookies) {
            Ok(jar) => jar,
            Err(e) => {
                info!(error = %e, "cookies refused");
                return sign_in("bad_cookie");
            }
        };
        let Some(cookie) = jar.session() else {
            return match req.headers.get(header::AUTHORIZATION) {
                Some(value) => self.identify_bearer(value, req),
                None => sign_in("no_session"),
            };
        };
        let device = self.device_of(req.client_id);
        let device_text = device.map(|d| d.to_string());
        let session = match self
            .sessions
            .lookup(cookie, device_text.as_deref(), req.now)
        {
            Ok(s) => s,
            // A session its device's revocation ended is refused naming the person.
            Err(tenet_session::SessionError::Revoked {
                cause: tenet_session::EndCause::DeviceRevoked,
                user: Some(user),
                ..
            }) => {
                return PersonVerdict::Ended {
                    name: Self::name_of(&user),
                    reason: "device_revoked".into(),
                    end: None,
                };
            }
            Err(e) => return sign_in(session_error_reason(&e)),
        };
        // A session counts only the device it was bound to at sign-in (the lookup refused any
        // other): one signed in without a device gets no device facts from whatever
        // certificate a later request presents, another person's device included.
        let device = device.filter(|_| session.device_id.is_some());
        let name = Self::person_name(&session);
        let risk = self.risk.risk(&name, req.now);
        let Evaluated {
            verdict,
            device: device_facts,
            ended,
        } = self.evaluate(cookie, &session, req, device, risk);
        match verdict {
            Verdict::Allow => {}
            Verdict::StepUp { reason } => {
                return PersonVerdict::StepUpRequired {
                    name,
                    reason: reason.code.as_str().to_owned(),
                };
            }
            Verdict::End { reason } => {
                // Recorded by the gateway, which is not waiting on the allow path here.
                let end = ended.map(|s| Box::new(ends::session_end_event(&s, reason.to_string())));
                return PersonVerdict::Ended {
                    name,
                    reason: reason.code.as_str().to_owned(),
                    end,
                };
            }
        }
        let user = &session.user;
        let provider = user
            .attributes
            .get(ATTR_PROVIDER)
            .cloned()
            .unwrap_or_default();
        let email = user.email.clone().unwrap_or_default();
        // Only a verified email (the only kind kept) or the principal name: never a display
        // name the person may choose at the provider.
        let display = user.email.clone().unwrap_or_else(|| name.clone());
        PersonVerdict::Person(Box::new(Person {
            principal: Principal::User {
                provider,
                subject: user.subject.clone(),
                email,
                name: user.display_name.clone().unwrap_or_default(),
                groups: user.groups.clone(),
            },
            name,
            display,
            session: session_facts(&session, req.now),
            device: device_facts,
        }))
    }

    fn serve(&self, request: AuthRequest) -> ServeFuture<'_> {
        Box::pin(async move { self.serve_inner(request).await })
    }

    /// A bearer token refused because it names a key a provider's key set lacks waits for
    /// the JWKS refetch under way for that key (the one `identify` started, or one already
    /// under way, shared by every request waiting), for at most
    /// [`BearerSettings::key_wait`]. No wait when the rate limit allowed no refetch, and the
    /// wait starts none, so unknown keys cause no more refetches than without it; other
    /// refusals never wait.
    fn wait_to_identify_again(
        &self,
        request: &PersonRequest<'_>,
        refusal: &PersonVerdict,
    ) -> Option<IdentifyWait> {
        match refusal {
            PersonVerdict::SignInRequired { reason } if reason == BEARER_UNKNOWN_KID => {
                self.bearer_key_wait(request)
            }
            _ => None,
        }
    }
}

impl SignIn {
    /// An API caller with a provider's access token: verified against every discovered
    /// provider's keys with the configured audience, kind and that provider's issuer. No
    /// session: the person is described by the token alone (factor `bearer`, never
    /// phishing-resistant). A token that no discovered provider accepts and that claims the
    /// issuer of a provider not discovered yet cannot be checked: it is refused (401) with the
    /// reason `bearer_provider_unreachable`, so that the caller can tell it from a bad token.
    fn identify_bearer(&self, value: &http::HeaderValue, req: &PersonRequest<'_>) -> PersonVerdict {
        let refused = |reason: String| PersonVerdict::SignInRequired { reason };
        let Some(settings) = &self.bearer else {
            return refused("bearer_not_accepted".into());
        };
        let Ok(value) = value.to_str() else {
            return refused("bearer_malformed".into());
        };
        let mut last = String::from("bearer_no_provider");
        let mut undiscovered = false;
        for slot in &self.providers {
            let Some(provider) = slot.get() else {
                undiscovered = true;
                continue;
            };
            let config = provider.config();
            let verifier = match bearer_verifier(settings, provider) {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %e, "bearer verification is misconfigured");
                    return refused("bearer_misconfigured".into());
                }
            };
            let claims = match verifier.verify_header(value, req.now) {
                Ok(claims) => claims,
                Err(e) => {
                    if let tenet_oidc::TokenError::UnknownKey { kid } = &e {
                        // Perhaps the provider rotated its key: fetch its keys in the
                        // background (rate-limited); the gateway waits for that refetch
                        // (`wait_to_identify_again`) and asks once more.
                        provider.refetch_for_kid_in_background(kid, req.now);
                    }
                    last = format!("bearer_{}", e.reason());
                    continue;
                }
            };
            let name = format!("user:{}:{}", config.name, claims.subject);
            let risk = self.risk.risk(&name, req.now);
            if risk >= self.rules.risk_end {
                return refused("risk_end".into());
            }
            let text = |key: &str| {
                claims
                    .claims
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            let verified = claims
                .claims
                .get("email_verified")
                .and_then(serde_json::Value::as_bool)
                == Some(true);
            let email = text("email")
                .filter(|_| verified)
                .map(|e| e.to_ascii_lowercase())
                .unwrap_or_default();
            let groups: Vec<String> = match claims.claims.get(&config.groups_claim) {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect(),
                Some(serde_json::Value::String(one)) => vec![one.clone()],
                _ => Vec::new(),
            };
            let issued = claims.claims.get("iat").and_then(serde_json::Value::as_i64);
            // A bearer token has no session to bind a device to: the certificate presented
            // counts only as a device of the token's person.
            let device = self.devices.device_for(
                req.client_id,
                Some(email.as_str()).filter(|e| !e.is_empty()),
            );
            let display = if email.is_empty() {
                name.clone()
            } else {
                email.clone()
            };
            return PersonVerdict::Person(Box::new(Person {
                principal: Principal::User {
                    provider: config.name.clone(),
                    subject: claims.subject.clone(),
                    email,
                    name: text("name").unwrap_or_default(),
                    groups,
                },
                name,
                display,
                session: SessionFacts {
                    authenticated: true,
                    factors: vec!["bearer".to_owned()],
                    phishing_resistant: false,
                    user_verified: false,
                    age_secs: issued.map_or(0, |iat| (req.now.unix_timestamp() - iat).max(0)),
                    mfa_age_secs: -1,
                },
                device: self.devices.state(device, req.now).facts,
            }));
        }
        if undiscovered
            && let Some(issuer) = tenet_oidc::claimed_issuer(value)
            && self
                .providers
                .iter()
                .any(|slot| !slot.is_discovered() && slot.config().issuer == issuer)
        {
            return refused("bearer_provider_unreachable".into());
        }
        refused(last)
    }
}

/// A verifier of `provider`'s access tokens with its current keys, the configured audience
/// and kind, and the provider's issuer.
fn bearer_verifier(
    settings: &BearerSettings,
    provider: &Provider,
) -> Result<tenet_oidc::BearerVerifier, tenet_oidc::ConfigError> {
    let policy = tenet_oidc::BearerPolicy::new(&settings.audience, settings.kind.clone())
        .with_issuer(&provider.config().issuer);
    tenet_oidc::BearerVerifier::new(provider.current_keys(), policy)
}

impl SignIn {
    /// The wait of [`PeopleGate::wait_to_identify_again`] for a bearer token with an unknown
    /// key: the refetches under way at the providers whose keys lack the token's key (this
    /// starts none), for at most [`BearerSettings::key_wait`]; no wait at all when a
    /// provider's keys gained the key meanwhile. `None` when no refetch is under way (the rate
    /// limit allowed none when `identify` asked).
    fn bearer_key_wait(&self, req: &PersonRequest<'_>) -> Option<IdentifyWait> {
        let settings = self.bearer.as_ref()?;
        let value = req.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let mut pending = Vec::new();
        for provider in self.providers.iter().filter_map(|slot| slot.get()) {
            let Ok(verifier) = bearer_verifier(settings, provider) else {
                continue;
            };
            let Err(tenet_oidc::TokenError::UnknownKey { kid }) =
                verifier.verify_header(value, req.now)
            else {
                continue;
            };
            // `identify` started the refetch when the rate limit allowed one.
            match provider.refetch_under_way(&kid) {
                tenet_oidc::KidRefetch::Known => return Some(Box::pin(std::future::ready(()))),
                tenet_oidc::KidRefetch::Pending(done) => pending.push(done),
                tenet_oidc::KidRefetch::NotNow => {}
            }
        }
        if pending.is_empty() {
            return None;
        }
        let key_wait = settings.key_wait;
        Some(Box::pin(async move {
            let refetches = async {
                for done in pending {
                    done.wait().await;
                }
            };
            if tokio::time::timeout(key_wait, refetches).await.is_err() {
                info!(
                    waited_ms = key_wait.as_millis(),
                    "JWKS refetch did not end within the bearer token's wait"
                );
            }
        }))
    }
}

impl SignIn {
    /// Fetches every discovered provider's keys again (retired keys stop verifying bearer
    /// tokens).
    pub async fn refresh_provider_keys(&self) {
        for provider in self.providers.iter().filter_map(|slot| slot.get()) {
            if let Err(e) = provider.refresh_keys().await {
                warn!(provider = %provider.config().name, error = %e, "provider keys not refreshed");
            }
        }
    }
}

fn session_error_reason(e: &tenet_session::SessionError) -> &'static str {
    use tenet_session::SessionError as E;
    match e {
        E::IdleExpired { .. } => "idle_timeout",
        E::AbsoluteExpired { .. } => "absolute_timeout",
        E::SecondFactorExpired { .. } => "second_factor_timeout",
        E::Revoked {
            cause: tenet_session::EndCause::DeviceRevoked,
            ..
        } => "device_revoked",
        E::Revoked { .. } => "revoked",
        E::DeviceMismatch { .. } => "device_mismatch",
        E::Malformed => "malformed_session",
        _ => "unknown_session",
    }
}

impl SignIn {
    async fn serve_inner(&self, req: AuthRequest) -> Answer {
        let (path, query) = match req.path_and_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (req.path_and_query.clone(), String::new()),
        };
        let endpoint = path
            .strip_prefix(tenet_gateway::AUTH_PREFIX)
            .unwrap_or_default()
            .to_owned();
        let cookies = req
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let jar = match tenet_session::parse_cookie_headers(cookies) {
            Ok(jar) => jar,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_cookie", &e.to_string()),
        };
        match (&req.method, endpoint.as_str()) {
            (&Method::GET, "login") => self.login(&req, &query).await,
            (&Method::GET, "callback") => self.callback(&req, &query, &jar).await,
            (&Method::GET, "mfa" | "stepup") => self.mfa_page(&req, &query, &jar),
            (&Method::GET, "webauthn.js") => pages::script(),
            (&Method::POST, "webauthn/register/begin") => self.ceremony_begin(&req, &jar, true),
            (&Method::POST, "webauthn/authenticate/begin") => {
                self.ceremony_begin(&req, &jar, false)
            }
            (&Method::POST, "webauthn/register/finish" | "webauthn/authenticate/finish") => {
                self.ceremony_finish(&req, &jar).await
            }
            (&Method::POST, "logout") => self.logout(&req, &jar).await,
            (&Method::POST, "totp/enrol") => self.totp_enrol(&req, &jar).await,
            (&Method::POST, "recovery/generate") => self.recovery_generate(&req, &jar).await,
            (&Method::POST, "totp/verify" | "recovery/redeem") => {
                self.weak_factor(&req, &jar, endpoint == "totp/verify")
                    .await
            }
            (&Method::POST, "device/enrol") => self.device_enrol(&req).await,
            (&Method::POST, "device/report") => self.device_report(&req).await,
            (
                _,
                "login"
                | "callback"
                | "mfa"
                | "stepup"
                | "webauthn.js"
                | "logout"
                | "device/enrol"
                | "device/report"
                | "webauthn/register/begin"
                | "webauthn/authenticate/begin"
                | "webauthn/register/finish"
                | "webauthn/authenticate/finish"
                | "totp/enrol"
                | "totp/verify"
                | "recovery/generate"
                | "recovery/redeem",
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such sign-in endpoint",
            ),
        }
    }
}
