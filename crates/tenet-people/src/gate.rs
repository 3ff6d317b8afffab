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

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use tenet_event::{AuthenticationEvent, Event, EventKind, EventSink};
use tenet_gateway::{
    AuthRequest, PeopleGate, Person, PersonRequest, PersonVerdict, RiskSource, ServeFuture,
};
use tenet_identity::CertificateAuthority;
use tenet_mfa::{CredentialKind, FactorStore, PendingAuthentication, PendingRegistration};
use tenet_mfa::{RelyingParty, UserAccount};
use tenet_oidc::{AuthorizationResponse, PendingLogin, Provider};
use tenet_policy::{Principal, SessionFacts};
use tenet_session::{
    CookieJar, FactorUse, LoginTransactions, NewSession, PostureSummary, Reason, ReasonCode,
    RedirectPolicy, ReturnTo, Rules, Session, SessionState, SessionStore, Signals, UserIdentity,
    Verdict,
};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::devices::Devices;
use crate::pages;

/// Most WebAuthn ceremonies open at once (one per session at most).
const MAX_CEREMONIES: usize = 10_000;
/// Most login transactions open at once.
const MAX_LOGINS: usize = 10_000;
/// Attribute names kept in the session's user record.
const ATTR_PROVIDER: &str = "provider";
const ATTR_DEVICE_COMPLIANT: &str = "device_compliant_at_login";

/// What the sign-in service is built from.
pub struct SignInParts {
    /// The OpenID Connect providers, discovered; the first is the default.
    pub providers: Vec<Provider>,
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
}

/// A WebAuthn ceremony in progress for one session.
enum Ceremony {
    Register(Box<PendingRegistration>),
    Authenticate(Box<PendingAuthentication>),
}

/// The sign-in service (see the module documentation).
pub struct SignIn {
    providers: Vec<Provider>,
    rp: RelyingParty,
    factors: Mutex<FactorStore>,
    sessions: SessionStore,
    logins: LoginTransactions,
    ceremonies: Mutex<HashMap<String, Ceremony>>,
    rules: Rules,
    devices: Arc<Devices>,
    ca: Arc<CertificateAuthority>,
    risk: Arc<dyn RiskSource>,
    sink: Arc<dyn EventSink>,
    require_webauthn: bool,
    admin_groups: Vec<String>,
    return_paths: RedirectPolicy,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("providers", &self.providers.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// A response under construction.
type Answer = Response<Bytes>;

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
            // Return addresses are paths on the gateway's own origin only.
            return_paths: RedirectPolicy::new(Vec::new(), Vec::new()),
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

    /// The sessions of the person named `name` (`user:<provider>:<subject>`), or of the
    /// person with that email address.
    fn selector(&self, name: &str) -> tenet_session::UserSelector {
        match name.strip_prefix("user:").and_then(|r| r.split_once(':')) {
            Some((provider, subject)) => {
                let issuer = self
                    .providers
                    .iter()
                    .find(|p| p.config().name == provider)
                    .map(|p| p.config().issuer.clone());
                tenet_session::UserSelector::Subject {
                    issuer,
                    subject: subject.to_owned(),
                }
            }
            None => tenet_session::UserSelector::Email(name.to_owned()),
        }
    }

    /// Ends every session of a person (see [`SignIn::selector`] for `name`); returns how
    /// many. Used by playbooks, the risk cut-off and the CLI.
    pub fn revoke_person(&self, name: &str, now: OffsetDateTime) -> usize {
        match self.sessions.revoke_user(&self.selector(name), now) {
            Ok(n) => n,
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
        match self
            .sessions
            .require_step_up_user(&self.selector(name), &reason, now)
        {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "step-up could not be required");
                0
            }
        }
    }

    fn person_name(session: &Session) -> String {
        let provider = session
            .user
            .attributes
            .get(ATTR_PROVIDER)
            .map_or("unknown", String::as_str);
        format!("user:{provider}:{}", session.user.subject)
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
    ) -> (Verdict, tenet_policy::DeviceFacts) {
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
        if let Err(e) = self.sessions.apply_verdict(cookie, &verdict, req.now) {
            warn!(error = %e, "session verdict could not be applied");
        }
        if verdict == Verdict::Allow
            && let Err(e) = self.sessions.touch(cookie, req.source_ip, risk, req.now)
        {
            warn!(error = %e, "session could not be touched");
        }
        (verdict, state.facts)
    }
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
            return sign_in("no_session");
        };
        let device = self.device_of(req.client_id);
        let device_text = device.map(|d| d.to_string());
        let session = match self
            .sessions
            .lookup(cookie, device_text.as_deref(), req.now)
        {
            Ok(s) => s,
            Err(e) => return sign_in(session_error_reason(&e)),
        };
        let name = Self::person_name(&session);
        let risk = self.risk.risk(&name, req.now);
        let (verdict, device_facts) = self.evaluate(cookie, &session, req, device, risk);
        match verdict {
            Verdict::Allow => {}
            Verdict::StepUp { reason } => {
                return PersonVerdict::StepUpRequired {
                    name,
                    reason: reason.code.as_str().to_owned(),
                };
            }
            Verdict::End { reason } => {
                return PersonVerdict::Ended {
                    name,
                    reason: reason.code.as_str().to_owned(),
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
        let display = user
            .email
            .clone()
            .or_else(|| user.display_name.clone())
            .unwrap_or_else(|| name.clone());
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
}

fn session_error_reason(e: &tenet_session::SessionError) -> &'static str {
    use tenet_session::SessionError as E;
    match e {
        E::IdleExpired { .. } => "idle_timeout",
        E::AbsoluteExpired { .. } => "absolute_timeout",
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
                | "webauthn/authenticate/finish",
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

    /// The return path from a `rd` query parameter: a path on this origin, or `/`.
    fn return_path(&self, query: &str) -> Result<String, String> {
        let rd = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "rd")
            .map(|(_, v)| v.into_owned());
        match rd {
            None => Ok("/".to_owned()),
            Some(rd) => match self.return_paths.check(&rd) {
                Ok(ReturnTo::Path(p)) => Ok(p),
                Ok(ReturnTo::Absolute(_)) => Err("rd must be a path on this site".to_owned()),
                Err(e) => Err(format!("rd: {e}")),
            },
        }
    }

    async fn login(&self, req: &AuthRequest, query: &str) -> Answer {
        let rd = match self.return_path(query) {
            Ok(rd) => rd,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_return_path", &e),
        };
        let wanted = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "provider")
            .map(|(_, v)| v.into_owned());
        let provider = match &wanted {
            Some(name) => self.providers.iter().find(|p| p.config().name == *name),
            None => self.providers.first(),
        };
        let Some(provider) = provider else {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_provider",
                "no such identity provider",
            );
        };
        let redirect = provider.begin(rd.clone(), req.now);
        let payload = match serde_json::to_string(&redirect.pending) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &e.to_string(),
                );
            }
        };
        let started = match self
            .logins
            .begin(redirect.pending.state(), payload, rd, req.now)
        {
            Ok(s) => s,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "login_unavailable",
                    &e.to_string(),
                );
            }
        };
        let mut answer = see_other(redirect.authorization_url.as_str());
        let max_age = (started.expires - req.now).whole_seconds().max(1);
        add_cookie(
            &mut answer,
            &tenet_session::login_set_cookie(started.binding.as_str(), max_age),
        );
        answer
    }

    async fn callback(&self, req: &AuthRequest, query: &str, jar: &CookieJar) -> Answer {
        let failed = |reason: String| AuthenticationEvent {
            activity: "logon".into(),
            user: "unknown".into(),
            provider: None,
            factor: Some("oidc".into()),
            success: false,
            reason,
            source_ip: req.source_ip,
            device: None,
            request_id: Some(req.request_id.clone()),
        };
        let response = match AuthorizationResponse::from_query(query) {
            Ok(r) => r,
            Err(e) => {
                self.record(req.now, failed(format!("bad_callback: {e}")))
                    .await;
                return error(StatusCode::BAD_REQUEST, "bad_callback", &e.to_string());
            }
        };
        let completed = match self
            .logins
            .consume(&response.state, jar.login_binding(), req.now)
        {
            Ok(c) => c,
            Err(e) => {
                self.record(req.now, failed(format!("login_state: {e}")))
                    .await;
                return error(StatusCode::BAD_REQUEST, "bad_login_state", &e.to_string());
            }
        };
        let pending: PendingLogin = match serde_json::from_str(&completed.payload) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &e.to_string(),
                );
            }
        };
        let Some(provider) = self
            .providers
            .iter()
            .find(|p| p.config().name == pending.provider())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_provider",
                "the provider is no longer configured",
            );
        };
        let identity = match provider.complete(&pending, &response, req.now).await {
            Ok(i) => i,
            Err(e) => {
                let mut event = failed(format!("{}: {e}", e.reason()));
                event.provider = Some(provider.config().name.clone());
                self.record(req.now, event).await;
                return error(StatusCode::UNAUTHORIZED, "sign_in_failed", e.reason());
            }
        };
        let device = self.device_of(req.client_id.as_ref());
        let state = self.devices.state(device, req.now);
        let mut user = UserIdentity::new(identity.issuer.clone(), identity.subject.clone());
        user.email = identity
            .email
            .clone()
            .filter(|_| identity.email_verified)
            .map(|e| e.to_ascii_lowercase());
        user.display_name = identity.name.clone();
        user.groups = identity.groups.clone();
        user.attributes
            .insert(ATTR_PROVIDER.into(), provider.config().name.clone());
        user.attributes.insert(
            ATTR_DEVICE_COMPLIANT.into(),
            state.facts.compliant.to_string(),
        );
        let name = format!("user:{}:{}", provider.config().name, identity.subject);
        let risk = self.risk.risk(&name, req.now);
        let new = NewSession {
            user,
            factors: vec![FactorUse::new("oidc", false, req.now)],
            device_id: device.map(|d| d.to_string()),
            ip: req.source_ip,
            risk,
        };
        let (token, _) = match self.sessions.create(new, jar.session(), req.now) {
            Ok(created) => created,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "session_unavailable",
                    &e.to_string(),
                );
            }
        };
        let needs_webauthn = self.require_webauthn
            || identity
                .groups
                .iter()
                .any(|g| self.admin_groups.contains(g));
        let next = if needs_webauthn {
            let reason = Reason::new(
                ReasonCode::StepUpPending,
                "a second factor is required after sign-in",
            );
            if let Err(e) = self
                .sessions
                .require_step_up(token.as_str(), reason, req.now)
            {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "session_unavailable",
                    &e.to_string(),
                );
            }
            tenet_gateway_auth_path("mfa", &completed.return_to)
        } else {
            completed.return_to.clone()
        };
        let recorded = self
            .record(
                req.now,
                AuthenticationEvent {
                    activity: "logon".into(),
                    user: name,
                    provider: Some(provider.config().name.clone()),
                    factor: Some("oidc".into()),
                    success: true,
                    reason: if self.require_webauthn {
                        "second factor pending".into()
                    } else {
                        "signed in".into()
                    },
                    source_ip: req.source_ip,
                    device: device.map(|d| d.to_string()),
                    request_id: Some(req.request_id.clone()),
                },
            )
            .await;
        if !recorded {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sign-in could not be recorded",
            );
        }
        let mut answer = see_other(&next);
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        add_cookie(&mut answer, &tenet_session::login_clear_cookie());
        answer
    }

    fn mfa_page(&self, req: &AuthRequest, query: &str, jar: &CookieJar) -> Answer {
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let Some(session) = self.session_of(jar, req.now, device.as_deref()) else {
            let rd = self.return_path(query).unwrap_or_else(|_| "/".to_owned());
            return see_other(&tenet_gateway_auth_path("login", &rd));
        };
        let rd = match self.return_path(query) {
            Ok(rd) => rd,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_return_path", &e),
        };
        let has_credentials = self
            .lock_factors()
            .user(&Self::user_key(&session))
            .is_some_and(|u| !u.credentials().is_empty());
        let who = session
            .user
            .email
            .clone()
            .unwrap_or_else(|| session.user.subject.clone());
        pages::mfa(
            &who,
            &rd,
            if has_credentials {
                "authenticate"
            } else {
                "register"
            },
        )
    }

    fn lock_factors(&self) -> std::sync::MutexGuard<'_, FactorStore> {
        self.factors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_ceremonies(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ceremony>> {
        self.ceremonies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A browser POST must come from the gateway's own origin (CSRF).
    fn same_origin(req: &AuthRequest) -> bool {
        let expected = if req.port == 443 {
            format!("https://{}", req.host)
        } else {
            format!("https://{}:{}", req.host, req.port)
        };
        req.headers
            .get(header::ORIGIN)
            .is_some_and(|o| o.as_bytes().eq_ignore_ascii_case(expected.as_bytes()))
    }

    fn ceremony_begin(&self, req: &AuthRequest, jar: &CookieJar, register: bool) -> Answer {
        if !Self::same_origin(req) {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            );
        }
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let Some(session) = self.session_of(jar, req.now, device.as_deref()) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "no valid session",
            );
        };
        let key = Self::user_key(&session);
        let mut factors = self.lock_factors();
        let user = factors.user_mut(&key);
        let options = if register {
            // A first credential may be registered right after the provider's sign-in; another
            // one only in a session that already used a phishing-resistant factor.
            let first = user.credentials().is_empty();
            let proven = session.factors.iter().any(|f| f.phishing_resistant)
                && session.state == SessionState::Active;
            if !first && !proven {
                return error(
                    StatusCode::FORBIDDEN,
                    "step_up_required",
                    "sign in with an existing passkey to add another",
                );
            }
            let account = UserAccount {
                name: session
                    .user
                    .email
                    .clone()
                    .unwrap_or_else(|| session.user.subject.clone()),
                display_name: session
                    .user
                    .display_name
                    .clone()
                    .unwrap_or_else(|| session.user.subject.clone()),
            };
            match self
                .rp
                .start_registration(user, &account, CredentialKind::Passkey, req.now)
            {
                Ok((challenge, pending)) => {
                    self.keep_ceremony(&session, Ceremony::Register(Box::new(pending)));
                    serde_json::to_vec(&challenge)
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, "webauthn", &e.to_string()),
            }
        } else {
            match self.rp.start_authentication(user, req.now) {
                Ok((challenge, pending)) => {
                    self.keep_ceremony(&session, Ceremony::Authenticate(Box::new(pending)));
                    serde_json::to_vec(&challenge)
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, "webauthn", &e.to_string()),
            }
        };
        match options {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            ),
        }
    }

    fn keep_ceremony(&self, session: &Session, ceremony: Ceremony) {
        let mut ceremonies = self.lock_ceremonies();
        if ceremonies.len() >= MAX_CEREMONIES {
            warn!(
                open = ceremonies.len(),
                "too many WebAuthn ceremonies open; oldest dropped"
            );
            ceremonies.clear();
        }
        ceremonies.insert(session.handle.as_str().to_owned(), ceremony);
    }

    async fn ceremony_finish(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        if !Self::same_origin(req) {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            );
        }
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let (Some(cookie), Some(session)) = (
            jar.session(),
            self.session_of(jar, req.now, device.as_deref()),
        ) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "no valid session",
            );
        };
        let Some(ceremony) = self.lock_ceremonies().remove(session.handle.as_str()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "no_ceremony",
                "no WebAuthn ceremony in progress",
            );
        };
        let Ok(body) = std::str::from_utf8(&req.body) else {
            return error(StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8");
        };
        let key = Self::user_key(&session);
        let name = Self::person_name(&session);
        let (activity, outcome) = {
            let mut factors = self.lock_factors();
            let user = factors.user_mut(&key);
            let outcome = match &ceremony {
                Ceremony::Register(p) => (
                    "mfa_register",
                    self.rp
                        .finish_registration(user, p, body, req.now)
                        .map(drop),
                ),
                Ceremony::Authenticate(p) => (
                    "mfa",
                    self.rp
                        .finish_authentication(user, p, body, req.now)
                        .map(drop),
                ),
            };
            let saved = if outcome.1.is_ok() {
                factors.save().map_err(|e| e.to_string())
            } else {
                Ok(())
            };
            (outcome.0, outcome.1.map_err(|e| e.to_string()).and(saved))
        };
        let event = |success: bool, reason: String| AuthenticationEvent {
            activity: activity.into(),
            user: name.clone(),
            provider: session.user.attributes.get(ATTR_PROVIDER).cloned(),
            factor: Some("webauthn".into()),
            success,
            reason,
            source_ip: req.source_ip,
            device: device.clone(),
            request_id: Some(req.request_id.clone()),
        };
        if let Err(e) = outcome {
            self.record(req.now, event(false, e.clone())).await;
            return error(StatusCode::UNAUTHORIZED, "webauthn_failed", &e);
        }
        let (token, _) = match self.sessions.add_factor(
            cookie,
            FactorUse::new("webauthn", true, req.now),
            req.now,
        ) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::UNAUTHORIZED, "sign_in_required", &e.to_string()),
        };
        if !self
            .record(
                req.now,
                event(
                    true,
                    "phishing-resistant factor verified; session id rotated".into(),
                ),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sign-in could not be recorded",
            );
        }
        let rd = url::form_urlencoded::parse(
            req.path_and_query
                .split_once('?')
                .map_or("", |(_, q)| q)
                .as_bytes(),
        )
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .and_then(|rd| match self.return_paths.check(&rd) {
            Ok(ReturnTo::Path(p)) => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| "/".to_owned());
        let body = serde_json::json!({ "redirect": rd }).to_string();
        let mut answer = json(StatusCode::OK, body.into_bytes());
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        debug!(person = %name, "second factor added");
        answer
    }

    /// The session of a browser POST from this site that already proved a phishing-resistant
    /// factor and needs no step-up: the bar for changing a person's factors.
    fn strong_session(&self, req: &AuthRequest, jar: &CookieJar) -> Result<Session, Box<Answer>> {
        if !Self::same_origin(req) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            )));
        }
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let Some(session) = self.session_of(jar, req.now, device.as_deref()) else {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "no valid session",
            )));
        };
        let proven = session.factors.iter().any(|f| f.phishing_resistant);
        if !proven || session.state != SessionState::Active {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "confirm with your passkey first",
            )));
        }
        Ok(session)
    }

    async fn factor_event(
        &self,
        req: &AuthRequest,
        session: &Session,
        activity: &str,
        factor: &str,
        outcome: Result<&str, &str>,
    ) -> bool {
        let (success, reason) = match outcome {
            Ok(r) => (true, r.to_owned()),
            Err(r) => (false, r.to_owned()),
        };
        self.record(
            req.now,
            AuthenticationEvent {
                activity: activity.into(),
                user: Self::person_name(session),
                provider: session.user.attributes.get(ATTR_PROVIDER).cloned(),
                factor: Some(factor.into()),
                success,
                reason,
                source_ip: req.source_ip,
                device: session.device_id.clone(),
                request_id: Some(req.request_id.clone()),
            },
        )
        .await
    }

    /// `POST totp/enrol`: a TOTP secret for an authenticator app (a weaker factor: policy
    /// sees it as `totp`, never as phishing-resistant).
    async fn totp_enrol(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        let session = match self.strong_session(req, jar) {
            Ok(s) => s,
            Err(answer) => return *answer,
        };
        let account = session
            .user
            .email
            .clone()
            .unwrap_or_else(|| session.user.subject.clone())
            .replace(':', "_");
        let secret = tenet_mfa::TotpEnrolment::generate_secret(&mut rand::rng());
        let setup = {
            let mut factors = self.lock_factors();
            let (enrolment, setup) =
                match tenet_mfa::TotpEnrolment::enrol(secret, "Tenet", &account, req.now) {
                    Ok(pair) => pair,
                    Err(e) => return error(StatusCode::BAD_REQUEST, "totp", &e.to_string()),
                };
            factors.user_mut(&Self::user_key(&session)).totp = Some(enrolment);
            if let Err(e) = factors.save() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &e.to_string(),
                );
            }
            setup
        };
        if !self
            .factor_event(req, &session, "mfa_register", "totp", Ok("TOTP enrolled"))
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the enrolment could not be recorded",
            );
        }
        let body =
            serde_json::json!({"secret": setup.secret_base32, "otpauth_url": setup.otpauth_url});
        json(StatusCode::OK, body.to_string().into_bytes())
    }

    /// `POST recovery/generate`: ten single-use recovery codes, shown once (only hashes kept).
    async fn recovery_generate(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        let session = match self.strong_session(req, jar) {
            Ok(s) => s,
            Err(answer) => return *answer,
        };
        let codes = {
            let mut factors = self.lock_factors();
            let (stored, plain) = tenet_mfa::RecoveryCodes::generate(&mut rand::rng(), 10);
            factors.user_mut(&Self::user_key(&session)).recovery = stored;
            if let Err(e) = factors.save() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &e.to_string(),
                );
            }
            plain
        };
        if !self
            .factor_event(
                req,
                &session,
                "mfa_register",
                "recovery",
                Ok("recovery codes generated"),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the change could not be recorded",
            );
        }
        json(
            StatusCode::OK,
            serde_json::json!({"codes": codes}).to_string().into_bytes(),
        )
    }

    /// `POST totp/verify` or `recovery/redeem` with `{"code": ...}`: a weaker factor added to
    /// the session (new id). It does not satisfy a step-up; a recovery code lets the person
    /// register a new passkey for ten minutes.
    async fn weak_factor(&self, req: &AuthRequest, jar: &CookieJar, totp: bool) -> Answer {
        if !Self::same_origin(req) {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            );
        }
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let (Some(cookie), Some(session)) = (
            jar.session(),
            self.session_of(jar, req.now, device.as_deref()),
        ) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "no valid session",
            );
        };
        let code = serde_json::from_slice::<serde_json::Value>(&req.body)
            .ok()
            .and_then(|v| {
                v.get("code")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            });
        let Some(code) = code else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the body must be {\"code\": \"...\"}",
            );
        };
        let name = if totp { "totp" } else { "recovery" };
        let outcome = {
            let mut factors = self.lock_factors();
            let user = factors.user_mut(&Self::user_key(&session));
            let checked = if totp {
                match user.totp.as_mut() {
                    Some(t) => t
                        .verify(&code, req.now)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    None => Err("no TOTP enrolled".to_owned()),
                }
            } else {
                user.recovery
                    .redeem(&code, req.now)
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            // The used step or code must be stored before the factor counts (no replay).
            checked.and_then(|()| factors.save().map_err(|e| e.to_string()))
        };
        if let Err(e) = outcome {
            self.factor_event(req, &session, "mfa", name, Err(&e)).await;
            return error(StatusCode::UNAUTHORIZED, "factor_failed", &e);
        }
        let (token, _) =
            match self
                .sessions
                .add_factor(cookie, FactorUse::new(name, false, req.now), req.now)
            {
                Ok(r) => r,
                Err(e) => {
                    return error(StatusCode::UNAUTHORIZED, "sign_in_required", &e.to_string());
                }
            };
        if !self
            .factor_event(
                req,
                &session,
                "mfa",
                name,
                Ok("weaker factor verified; session id rotated"),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the factor could not be recorded",
            );
        }
        let mut answer = json(
            StatusCode::OK,
            serde_json::json!({"factor": name}).to_string().into_bytes(),
        );
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        answer
    }

    async fn logout(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        if !Self::same_origin(req) {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            );
        }
        if let Some(cookie) = jar.session()
            && let Some(handle) = tenet_session::Handle::of_text(cookie)
        {
            let name = self.sessions.get(&handle).map(|s| Self::person_name(&s));
            if let Ok(true) = self.sessions.revoke(&handle, req.now) {
                self.record(
                    req.now,
                    AuthenticationEvent {
                        activity: "logoff".into(),
                        user: name.unwrap_or_else(|| "unknown".into()),
                        provider: None,
                        factor: None,
                        success: true,
                        reason: "signed out".into(),
                        source_ip: req.source_ip,
                        device: None,
                        request_id: Some(req.request_id.clone()),
                    },
                )
                .await;
            }
        }
        let mut answer = json(StatusCode::OK, br#"{"signed_out":true}"#.to_vec());
        add_cookie(&mut answer, &tenet_session::session_clear_cookie());
        answer
    }

    async fn device_enrol(&self, req: &AuthRequest) -> Answer {
        let request: tenet_device::EnrolmentRequest = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    &format!("enrolment request: {e}"),
                );
            }
        };
        let outcome = self.devices.enrol(&self.ca, &request, req.now);
        let (success, reason, device) = match &outcome {
            Ok(e) => (true, "enrolled".to_owned(), Some(e.device_id.to_string())),
            Err(e) => (false, e.to_string(), None),
        };
        let user = device.clone().unwrap_or_else(|| "unknown".into());
        let event = AuthenticationEvent {
            activity: "device_enrol".into(),
            user,
            provider: None,
            factor: None,
            success,
            reason,
            source_ip: req.source_ip,
            device,
            request_id: Some(req.request_id.clone()),
        };
        let recorded = self.record(req.now, event).await;
        match outcome {
            Ok(e) if recorded => {
                let body = serde_json::json!({
                    "device_id": e.device_id.to_string(),
                    "spiffe_id": e.spiffe_id.as_str(),
                    "chain_pem": e.chain_pem(),
                    "not_after": e.not_after.unix_timestamp(),
                });
                json(StatusCode::OK, body.to_string().into_bytes())
            }
            Ok(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the enrolment could not be recorded",
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, "enrolment_refused", &e.to_string()),
        }
    }

    async fn device_report(&self, req: &AuthRequest) -> Answer {
        let Ok(jws) = std::str::from_utf8(&req.body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the report is not UTF-8",
            );
        };
        let outcome = self.devices.report(jws.trim(), req.now);
        let (success, reason, device) = match &outcome {
            Ok(id) => (true, "posture recorded".to_owned(), Some(id.to_string())),
            Err(e) => (false, e.to_string(), None),
        };
        let user = device.clone().unwrap_or_else(|| "unknown".into());
        let event = AuthenticationEvent {
            activity: "device_report".into(),
            user,
            provider: None,
            factor: None,
            success,
            reason,
            source_ip: req.source_ip,
            device,
            request_id: Some(req.request_id.clone()),
        };
        self.record(req.now, event).await;
        match outcome {
            Ok(id) => json(
                StatusCode::OK,
                serde_json::json!({"device_id": id.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, "report_refused", &e.to_string()),
        }
    }
}

/// `/.tenet/auth/<endpoint>?rd=<path>`.
fn tenet_gateway_auth_path(endpoint: &str, rd: &str) -> String {
    let rd: String =
        percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC).to_string();
    format!("{}{endpoint}?rd={rd}", tenet_gateway::AUTH_PREFIX)
}

fn see_other(location: &str) -> Answer {
    let mut answer = Response::new(Bytes::new());
    *answer.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(header::LOCATION, v);
    }
    answer
}

fn add_cookie(answer: &mut Answer, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Answer {
    let mut answer = Response::new(Bytes::from(body));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

fn error(status: StatusCode, code: &str, detail: &str) -> Answer {
    let body = serde_json::json!({ "error": code, "detail": detail }).to_string();
    json(status, body.into_bytes())
}
