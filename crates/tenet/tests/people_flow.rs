//! People sign-in end to end without a browser: `tenet up` with a people route and a
//! `[people]` section, a real OpenID provider (panva's `oidc-provider` on Node.js, the script
//! of tenet-oidc's tests), the Python echo upstream, and reqwest playing the browser with a
//! cookie jar kept by the test (so that cookies can be planted and replayed) and
//! webauthn-authenticator-rs's soft passkey as the authenticator. Tests are named after the
//! field case they pin.
//!
//! One deployment serves every test that runs while another holds it, and the tests take
//! turns: they sign in the same person, and a sign-out or a revocation must not cut the session
//! of a test running beside it.
//!
//! Needs `node`, `python3` and the provider package in the workspace:
//! `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1`
//! (or `TENET_OIDC_PROVIDER_DIR` pointing at the package directory).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use http::{HeaderMap, Method, header};
use serde_json::Value;
use support::idp::{self, cookie_header, remember};
use tenet_mfa::json::{CreationChallengeResponse, RequestChallengeResponse};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

/// The person the provider script signs in.
const EMAIL: &str = "alice@example.test";
const PRINCIPAL: &str = "user:corp:user-A";
/// Tenet's cookies, as a browser sees them.
const SESSION: &str = "__Host-tenet_session";
const LOGIN: &str = "__Host-tenet_login";
const MFA_PAGE: &str = "/.tenet/auth/mfa?rd=%2F";
const LOGIN_PAGE: &str = "/.tenet/auth/login?rd=%2F";

const POLICY: &str = r#"
@id("engineers-with-a-passkey")
permit (principal in Tenet::Group::"engineering", action, resource in Tenet::Service::"app")
when { context.session.phishing_resistant };
"#;

/// A session whose device loses compliance ends (only sessions signed in through a compliant
/// device are concerned).
const PEOPLE: &str = "posture_action = \"end\"\n";

/// A device is compliant only when the MDM says so: an agent report alone is not enough,
/// whatever this machine's posture.
const POSTURE: &str = "[people.posture]\nrequire_mdm_compliant = true\n";

// ---------------------------------------------------------------------------------------------
// The deployment

/// `tenet up` with a people route, the provider, the upstream and the person's passkey.
struct Env {
    d: idp::PeopleDeployment,
    /// The person's authenticator; it keeps the credential across sign-ins.
    passkey: Mutex<SoftPasskey>,
    /// Held by the test whose turn it is.
    turn: tokio::sync::Mutex<()>,
}

static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());

/// The running deployment, started by the first test that needs it and stopped when the last
/// test holding it ends.
fn env() -> Arc<Env> {
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = slot.upgrade() {
        return env;
    }
    let env = Arc::new(Env::start());
    *slot = Arc::downgrade(&env);
    env
}

impl Env {
    fn start() -> Self {
        Self {
            d: idp::PeopleDeployment::start(PEOPLE, POSTURE, POLICY),
            passkey: Mutex::new(SoftPasskey::new(true)),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn origin(&self) -> String {
        idp::origin(self.d.port)
    }

    /// `tenet ARGS` against this deployment; stdout.
    fn cli(&self, args: &[&str]) -> String {
        idp::cli(self.d.dir.path(), args)
    }

    /// The live sessions, as `tenet session list` shows them.
    fn sessions(&self) -> Vec<Value> {
        let list: Value = serde_json::from_str(&self.cli(&["session", "list"])).unwrap();
        list["sessions"].as_array().unwrap().clone()
    }

    /// The ledger's Authentication events (OCSF class 3002), from `tenet log tail`.
    fn authentication_events(&self) -> Vec<Value> {
        self.cli(&["log", "tail"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["class_uid"] == 3002)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The browser

/// An answer, read whole.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> String {
        let location = self.headers.get(header::LOCATION);
        let location =
            location.unwrap_or_else(|| panic!("no Location in {}: {}", self.status, self.body));
        location.to_str().unwrap().to_owned()
    }

    /// The `Set-Cookie` line for `name`, if the answer sets it.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|line| line.starts_with(&format!("{name}=")))
    }

    /// The value the answer gives cookie `name` (empty when it clears it).
    fn cookie(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next().unwrap_or_default();
        Some(pair.split_once('=').unwrap().1.to_owned())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {}", self.status, self.body))
    }

    /// The echo upstream's view of the request's headers.
    fn upstream_headers(&self) -> BTreeMap<String, Vec<String>> {
        assert_eq!(
            self.status, 200,
            "the upstream was not reached: {}",
            self.body
        );
        serde_json::from_value(self.json()["headers"].clone()).unwrap()
    }
}

/// reqwest as a browser: follows no redirect, keeps the gateway's and the provider's cookies
/// in jars the test can read and write, and resolves the gateway's host to 127.0.0.1.
struct Browser {
    http: reqwest::Client,
    origin: String,
    /// Cookies of the gateway's origin.
    app: BTreeMap<String, String>,
    /// Cookies of the provider.
    idp: BTreeMap<String, String>,
}

impl Browser {
    fn new(env: &Env) -> Self {
        let http = idp::http_client(env.d.dir.path(), env.d.port)
            // HTTP/1.1, where a client can still send `Connection` (F004).
            .http1_only()
            .build()
            .unwrap();
        Self {
            http,
            origin: env.origin(),
            app: BTreeMap::new(),
            idp: BTreeMap::new(),
        }
    }

    /// A request to the gateway with the jar's cookies (plus `extra` headers); the answer's
    /// cookies go into the jar.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: String,
    ) -> Reply {
        let url = format!("{}{path}", self.origin);
        let mut request = self.http.request(method, &url).body(body);
        if !self.app.is_empty() {
            request = request.header(header::COOKIE, cookie_header(&self.app));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let reply = read(
            request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}")),
        )
        .await;
        remember(&mut self.app, &reply.headers);
        reply
    }

    async fn get(&mut self, path: &str, extra: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, extra, String::new()).await
    }

    /// A POST as the sign-in page's script makes it: JSON, from this origin.
    async fn post(&mut self, path: &str, body: String) -> Reply {
        let origin = self.origin.clone();
        let extra = [
            ("origin", origin.as_str()),
            ("content-type", "application/json"),
        ];
        self.send(Method::POST, path, &extra, body).await
    }

    fn session(&self) -> String {
        self.app.get(SESSION).cloned().expect("no session cookie")
    }

    fn plant_session(&mut self, value: &str) {
        self.app.insert(SESSION.to_owned(), value.to_owned());
    }

    /// Follows the provider's redirects (its test interaction signs user-A in and grants the
    /// scopes) until it sends the browser back to the gateway; returns that path and query.
    async fn at_provider(&mut self, authorization_url: &str) -> String {
        idp::through_provider(&self.http, &mut self.idp, authorization_url, &self.origin).await
    }
}

async fn read(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in, step by step

/// A navigation to `/` without a session → 302 to login → 303 to the provider (with the login
/// binding cookie) → the provider's sign-in. Returns the callback's path and query, not yet
/// requested.
async fn to_callback(b: &mut Browser) -> String {
    let r = b.get("/", &[("accept", "text/html")]).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(r.location(), LOGIN_PAGE);
    login(b).await
}

/// `GET login` → 303 to the provider with the login binding cookie → the provider's sign-in.
/// Returns the callback's path and query, not yet requested.
async fn login(b: &mut Browser) -> String {
    let r = b.get(LOGIN_PAGE, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let binding = r.set_cookie(LOGIN).expect("login sets no binding cookie");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(binding.contains(attribute), "{binding}");
    }
    assert!(r.set_cookie(SESSION).is_none(), "a session before sign-in");
    b.at_provider(&r.location()).await
}

/// The callback: a session waiting for its second factor. Returns its id.
async fn callback(b: &mut Browser, path: &str) -> String {
    let r = b.get(path, &[]).await;
    assert_eq!(r.status, 303, "callback: {}", r.body);
    assert_eq!(r.location(), MFA_PAGE);
    let session = r
        .set_cookie(SESSION)
        .expect("the callback sets no session cookie");
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert_eq!(
        r.cookie(LOGIN).as_deref(),
        Some(""),
        "the binding cookie is not cleared"
    );
    r.cookie(SESSION).unwrap()
}

/// The second-factor page's ceremony begun, and the soft passkey's response: the ceremony
/// the page asked for (`register` or `authenticate`) and the response, not yet sent.
async fn begin_second_factor(env: &Env, b: &mut Browser) -> (String, String) {
    let page = b.get(MFA_PAGE, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mode = page
        .body
        .split("data-mode=\"")
        .nth(1)
        .and_then(|r| r.split('"').next());
    let mode = mode.expect("the page names no ceremony").to_owned();

    let begin = b
        .post(
            &format!("/.tenet/auth/webauthn/{mode}/begin?rd=%2F"),
            "{}".into(),
        )
        .await;
    assert_eq!(begin.status, 200, "{mode} begin: {}", begin.body);
    let origin = Url::parse(&env.origin()).unwrap();
    let mut key = env.passkey.lock().unwrap_or_else(PoisonError::into_inner);
    let answer = if mode == "register" {
        let options: CreationChallengeResponse = serde_json::from_str(&begin.body).unwrap();
        serde_json::to_string(&key.do_registration(origin, options).unwrap()).unwrap()
    } else {
        let options: RequestChallengeResponse = serde_json::from_str(&begin.body).unwrap();
        serde_json::to_string(&key.do_authentication(origin, options).unwrap()).unwrap()
    };
    (mode, answer)
}

/// The second-factor page and its ceremony with the soft passkey. Returns the ceremony the
/// page asked for (`register` or `authenticate`).
async fn second_factor(env: &Env, b: &mut Browser) -> String {
    let (mode, answer) = begin_second_factor(env, b).await;
    let finish = b
        .post(
            &format!("/.tenet/auth/webauthn/{mode}/finish?rd=%2F"),
            answer,
        )
        .await;
    assert_eq!(finish.status, 200, "{mode} finish: {}", finish.body);
    assert_eq!(finish.json()["redirect"], "/");
    assert!(
        finish.set_cookie(SESSION).is_some(),
        "no new session id after the factor"
    );
    mode
}

/// What one complete sign-in left behind.
struct SignedIn {
    browser: Browser,
    /// The session id the callback gave.
    after_callback: String,
}

async fn sign_in(env: &Env) -> SignedIn {
    let mut browser = Browser::new(env);
    let path = to_callback(&mut browser).await;
    let after_callback = callback(&mut browser, &path).await;
    second_factor(env, &mut browser).await;
    SignedIn {
        browser,
        after_callback,
    }
}

/// A request for `path` as an API client with only `cookie` as the session: its status.
async fn status_with_session(env: &Env, cookie: &str, path: &str) -> u16 {
    let mut b = Browser::new(env);
    b.plant_session(cookie);
    b.get(path, &[]).await.status
}

/// The upstream saw the person, and none of Tenet's cookies.
fn assert_upstream_sees_alice(r: &Reply) {
    let seen = r.upstream_headers();
    assert_eq!(
        seen.get("x-tenet-user"),
        Some(&vec![EMAIL.to_owned()]),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("x-tenet-principal"),
        Some(&vec![PRINCIPAL.to_owned()]),
        "{seen:?}"
    );
    let cookies = seen.get("cookie").cloned().unwrap_or_default().join("; ");
    assert!(
        !cookies.contains("__Host-tenet_"),
        "Tenet's cookies reached the upstream: {cookies}"
    );
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn sign_in_reaches_the_upstream_as_the_person_without_tenet_cookies() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut s = sign_in(&env).await;
    s.browser.app.insert("theme".into(), "dark".into());
    let r = s.browser.get("/dashboard?tab=1", &[]).await;
    assert_upstream_sees_alice(&r);
    assert_eq!(r.json()["target"], "/dashboard?tab=1");
    assert_eq!(r.upstream_headers()["cookie"], ["theme=dark"]);
}

#[tokio::test]
async fn f011_1_a_planted_session_id_is_not_adopted() {
    let env = env();
    let _turn = env.turn.lock().await;
    // S0: a live session id the attacker holds (their own sign-in), planted in the victim's
    // browser before the victim signs in.
    let attacker = sign_in(&env).await;
    let s0 = attacker.browser.session();
    assert_eq!(status_with_session(&env, &s0, "/").await, 200);

    let mut victim = Browser::new(&env);
    victim.plant_session(&s0);
    let path = login(&mut victim).await;
    let s1 = callback(&mut victim, &path).await;
    assert_ne!(s1, s0, "the planted id was adopted");
    second_factor(&env, &mut victim).await;
    let s2 = victim.session();
    assert_ne!(s2, s0);

    assert_eq!(
        status_with_session(&env, &s0, "/").await,
        401,
        "S0 still works"
    );
    assert_upstream_sees_alice(&victim.get("/", &[]).await);
}

#[tokio::test]
async fn f011_2_a_callback_without_its_login_cookie_is_refused() {
    let env = env();
    let _turn = env.turn.lock().await;
    let before = env.sessions().len();

    // No binding cookie at all.
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    b.app.remove(LOGIN);
    let r = b.get(&path, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_login_state");
    assert!(r.set_cookie(SESSION).is_none());

    // Another login's binding cookie (X2) with this login's state (X1).
    let mut victim = Browser::new(&env);
    let x1 = to_callback(&mut victim).await;
    let mut attacker = Browser::new(&env);
    let _x2 = to_callback(&mut attacker).await;
    victim.app.insert(LOGIN.into(), attacker.app[LOGIN].clone());
    let r = victim.get(&x1, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.set_cookie(SESSION).is_none());

    assert_eq!(
        env.sessions().len(),
        before,
        "a refused callback created a session"
    );
    // The state is spent by the refused attempt, so the code cannot be used later either.
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    let mut stranger = Browser::new(&env);
    assert_eq!(stranger.get(&path, &[]).await.status, 400);
    assert_eq!(
        b.get(&path, &[]).await.status,
        400,
        "a spent state was accepted"
    );
}

#[tokio::test]
async fn f011_3_a_replayed_callback_is_refused() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    let binding = b.app[LOGIN].clone();
    callback(&mut b, &path).await;
    let before = env.sessions().len();

    // The same URL again, with the binding cookie the first callback cleared put back.
    let mut replay = Browser::new(&env);
    replay.app.insert(LOGIN.into(), binding);
    let r = replay.get(&path, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_login_state");
    assert!(r.set_cookie(SESSION).is_none());
    assert_eq!(b.get(&path, &[]).await.status, 400);
    assert_eq!(env.sessions().len(), before);
}

#[tokio::test]
async fn f011_4_the_webauthn_step_rotates_the_session_id() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    let s1 = callback(&mut b, &path).await;
    // Before the second factor the session opens nothing.
    assert_eq!(status_with_session(&env, &s1, "/").await, 401);
    // The ceremony is only for this origin's page.
    let r = b
        .send(
            Method::POST,
            "/.tenet/auth/webauthn/register/begin",
            &[],
            "{}".into(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    second_factor(&env, &mut b).await;
    let s2 = b.session();
    assert_ne!(s2, s1, "the id did not rotate");
    assert_eq!(
        status_with_session(&env, &s1, "/").await,
        401,
        "S1 still works"
    );
    assert_eq!(status_with_session(&env, &s2, "/").await, 200);
}

#[tokio::test]
async fn f004_forged_identity_headers_never_reach_the_upstream() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut s = sign_in(&env).await;
    let forged = [
        ("x-tenet-user", "mallory@example.test"),
        ("x-tenet-principal", "user:corp:mallory"),
        ("x-forwarded-for", "198.51.100.7"),
        (
            "connection",
            "keep-alive, x-tenet-user, x-tenet-principal, x-forwarded-for",
        ),
    ];
    let r = s.browser.get("/admin/api", &forged).await;
    assert_upstream_sees_alice(&r);
    assert_eq!(r.upstream_headers()["x-forwarded-for"], ["127.0.0.1"]);
    // The client really sends them: asked directly, the upstream sees every one.
    let direct = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .build()
        .unwrap();
    let mut request = direct.get(format!("http://127.0.0.1:{}/", env.d.upstream_port));
    for (name, value) in forged {
        request = request.header(name, value);
    }
    let seen = read(request.send().await.unwrap()).await.upstream_headers();
    for (name, value) in forged {
        assert_eq!(seen.get(name), Some(&vec![value.to_owned()]), "{seen:?}");
    }

    // The same names twice: still exactly one value each, Tenet's.
    let twice = [
        ("x-tenet-user", "a@example.test"),
        ("X-Tenet-User", "b@example.test"),
    ];
    let r = s.browser.get("/admin/api", &twice).await;
    assert_upstream_sees_alice(&r);

    // Without a session the forged header opens nothing.
    let mut anonymous = Browser::new(&env);
    let r = anonymous.get("/", &forged[..2]).await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn f007_return_addresses_off_this_site_are_refused_at_login() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut b = Browser::new(&env);
    for rd in ["https://badexample.test/", "//evil.example.net/", "/\\evil"] {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", rd)
            .finish();
        let r = b.get(&format!("/.tenet/auth/login?{query}"), &[]).await;
        assert_eq!(r.status, 400, "rd={rd}: {}", r.body);
        assert_eq!(r.json()["error"], "bad_return_path", "rd={rd}");
        assert!(r.headers.get(header::LOCATION).is_none(), "rd={rd}");
        assert!(r.set_cookie(LOGIN).is_none(), "rd={rd} began a login");
    }
    let r = b.get("/.tenet/auth/login?rd=%2Freports%3Fq%3D1", &[]).await;
    assert_eq!(r.status, 303, "a path on this site: {}", r.body);
}

#[tokio::test]
async fn api_calls_without_a_session_get_401_json() {
    let env = env();
    let _turn = env.turn.lock().await;
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    for cookie in [None, Some(random.as_str()), Some("not a token")] {
        let mut b = Browser::new(&env);
        if let Some(cookie) = cookie {
            b.plant_session(cookie);
        }
        let r = b.get("/api/items", &[("accept", "application/json")]).await;
        assert_eq!(r.status, 401, "cookie {cookie:?}: {}", r.body);
        let ct = r
            .headers
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(r.json()["error"], "sign_in_required", "cookie {cookie:?}");
        assert!(r.headers.get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn sign_out_needs_this_origin_and_ends_the_session() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut s = sign_in(&env).await;
    let session = s.browser.session();

    let r = s
        .browser
        .send(Method::POST, "/.tenet/auth/logout", &[], String::new())
        .await;
    assert_eq!(r.status, 403, "sign-out without Origin: {}", r.body);
    let r = s
        .browser
        .send(
            Method::POST,
            "/.tenet/auth/logout",
            &[("origin", "https://badexample.test")],
            String::new(),
        )
        .await;
    assert_eq!(r.status, 403, "sign-out from another origin: {}", r.body);
    assert_eq!(status_with_session(&env, &session, "/").await, 200);

    let r = s.browser.post("/.tenet/auth/logout", String::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.cookie(SESSION).as_deref(),
        Some(""),
        "the cookie is not cleared"
    );
    assert_eq!(status_with_session(&env, &session, "/").await, 401);
    let logoff = env
        .authentication_events()
        .into_iter()
        .any(|e| e["unmapped"]["activity"] == "logoff");
    assert!(logoff, "no logoff event");
}

#[tokio::test]
async fn ledger_records_the_logon_and_the_passkey_registration() {
    let env = env();
    let _turn = env.turn.lock().await;
    sign_in(&env).await;
    let events = env.authentication_events();
    let find = |activity: &str| {
        events
            .iter()
            .find(|e| e["unmapped"]["activity"] == activity && e["status"] == "Success")
            .unwrap_or_else(|| panic!("no successful {activity} event in {events:#?}"))
    };
    let logon = find("logon");
    assert_eq!(logon["user"]["name"], PRINCIPAL);
    assert_eq!(logon["auth_protocol"], "oidc");
    assert_eq!(logon["unmapped"]["provider"], "corp");
    let register = find("mfa_register");
    assert_eq!(register["user"]["name"], PRINCIPAL);
    assert_eq!(register["auth_protocol"], "webauthn");
    assert_eq!(register["is_mfa"], true);
}

#[tokio::test]
async fn a_second_sign_in_authenticates_with_the_registered_passkey() {
    let env = env();
    let _turn = env.turn.lock().await;
    // Whatever ran before, after this sign-in the person has a passkey.
    sign_in(&env).await;
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    callback(&mut b, &path).await;
    // The provider's sign-in alone cannot add a passkey to a person who has one.
    let r = b
        .post("/.tenet/auth/webauthn/register/begin", "{}".into())
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "step_up_required");
    let mode = second_factor(&env, &mut b).await;
    assert_eq!(mode, "authenticate");
    assert_upstream_sees_alice(&b.get("/", &[]).await);
    let mfa = env.authentication_events().into_iter().any(|e| {
        e["unmapped"]["activity"] == "mfa"
            && e["status"] == "Success"
            && e["user"]["name"] == PRINCIPAL
    });
    assert!(mfa, "no successful mfa event");
    // Registering another passkey needs a session that used one: this one did.
    let r = b
        .post("/.tenet/auth/webauthn/register/begin", "{}".into())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn session_list_shows_the_session_and_revoke_ends_it() {
    let env = env();
    let _turn = env.turn.lock().await;
    let mut s = sign_in(&env).await;
    assert_eq!(s.browser.get("/", &[]).await.status, 200);
    let sessions = env.sessions();
    let mine = sessions
        .iter()
        .find(|x| x["email"] == EMAIL && x["subject"] == "user-A");
    let mine = mine.unwrap_or_else(|| panic!("not listed: {sessions:#?}"));
    assert!(
        mine["factors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "webauthn"),
        "{mine}"
    );
    let listed = serde_json::to_string(&sessions).unwrap();
    assert!(
        !listed.contains(&s.browser.session()),
        "the list shows a session id"
    );
    assert!(!listed.contains(&s.after_callback));

    let ends_before = revoked_ends(&env);
    let out: Value = serde_json::from_str(&env.cli(&["session", "revoke", EMAIL])).unwrap();
    let revoked = out["revoked"].as_u64().unwrap();
    assert!(revoked >= 1, "{out}");
    let r = s.browser.get("/", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(env.sessions().iter().all(|x| x["email"] != EMAIL));
    // Each revoked session is a session_end of the person (recorded off the command's path).
    let mut ends = revoked_ends(&env);
    for _ in 0..50 {
        if ends >= ends_before + revoked {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ends = revoked_ends(&env);
    }
    assert_eq!(ends, ends_before + revoked);
}

/// How many session_end events of the person say `revoked`.
fn revoked_ends(env: &Env) -> u64 {
    let ends = env.authentication_events().into_iter().filter(|e| {
        e["unmapped"]["activity"] == "session_end"
            && e["user"]["name"] == PRINCIPAL
            && e["status_detail"]
                .as_str()
                .is_some_and(|r| r.starts_with("revoked"))
    });
    ends.count() as u64
}

/// A sign-in that has not given its passkey yet is listed as waiting for it, with when it
/// ends, until the passkey completes it; a WebAuthn response or a device enrolment giving a
/// key twice is answered 400 naming the key.
#[tokio::test]
async fn a_half_done_sign_in_is_listed_as_such_and_bodies_giving_a_key_twice_are_refused() {
    let env = env();
    let _turn = env.turn.lock().await;
    let waiting = |env: &Env| -> Vec<Value> {
        let sessions = env.sessions().into_iter();
        sessions
            .filter(|x| x["email"] == EMAIL && x["state"]["state"] == "second_factor_pending")
            .collect()
    };
    let before = waiting(&env).len();
    let mut b = Browser::new(&env);
    let path = to_callback(&mut b).await;
    callback(&mut b, &path).await;
    let now_waiting = waiting(&env);
    assert_eq!(now_waiting.len(), before + 1, "{now_waiting:#?}");
    assert!(
        now_waiting.iter().all(|x| x["state"]["until"].is_string()),
        "{now_waiting:#?}"
    );

    // The page's own ceremony, its response giving `type` twice.
    let (mode, answer) = begin_second_factor(&env, &mut b).await;
    let doubled = format!("{{\"type\":\"public-key\",{}", &answer[1..]);
    let finish = b
        .post(
            &format!("/.tenet/auth/webauthn/{mode}/finish?rd=%2F"),
            doubled,
        )
        .await;
    assert_eq!(finish.status, 400, "{}", finish.body);
    assert_eq!(finish.json()["error"], "duplicate_key");
    assert!(
        finish.json()["detail"]
            .as_str()
            .unwrap()
            .contains("\"type\"")
    );
    assert_eq!(waiting(&env).len(), before + 1);

    second_factor(&env, &mut b).await;
    assert_eq!(waiting(&env).len(), before);
    assert_eq!(b.get("/", &[]).await.status, 200);

    let enrol = b
        .post(
            "/.tenet/auth/device/enrol",
            r#"{"token":"a","csr":"b","token":"c"}"#.into(),
        )
        .await;
    assert_eq!(enrol.status, 400, "{}", enrol.body);
    assert_eq!(enrol.json()["error"], "duplicate_key");
}

/// The device agent commands against the running gateway: a token from the admin, `tenet
/// device enrol` (with --resolve, as a device would reach the gateway by name) and `tenet
/// device report` with this machine's real posture, whose verdict is printed and listed:
/// not compliant before the MDM vouches for the device, compliant after.
#[tokio::test]
async fn device_agent_commands_enrol_and_report() {
    let env = env();
    let _turn = env.turn.lock().await;
    let token: Value =
        serde_json::from_str(&env.cli(&["device", "token", "--owner", EMAIL])).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let gateway = format!("https://app.example.test:{}", env.d.port);
    let resolve = "app.example.test:127.0.0.1";
    let device_dir = env.d.dir.path().join("device");
    let bundle = env.d.dir.path().join("data/admin/bundle.pem");
    let run = |args: &[&str]| support::tenet().args(args).output().unwrap();
    let out = run(&[
        "device",
        "enrol",
        "--gateway",
        &gateway,
        "--token",
        &token,
        "--bundle",
        bundle.to_str().unwrap(),
        "--resolve",
        resolve,
        "--out",
        device_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enrolled = String::from_utf8_lossy(&out.stdout).into_owned();
    let device_id = enrolled
        .strip_prefix("enrolled device ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{enrolled}"))
        .to_owned();
    let report = || {
        let out = run(&[
            "device",
            "report",
            "--gateway",
            &gateway,
            "--dir",
            device_dir.to_str().unwrap(),
            "--resolve",
            resolve,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = || {
        let devices: Value = serde_json::from_str(&env.cli(&["device", "list"])).unwrap();
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == device_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{device_id} is not listed: {devices}"))
    };
    // No MDM has spoken for the device yet: the report is taken, and the verdict names the
    // unmet requirement, in the answer, in the device list and in the ledger.
    let said = report();
    assert!(
        said.contains("posture reported: NOT compliant: mdm compliant is unknown (required)"),
        "{said}"
    );
    let device = listed();
    assert_eq!(device["compliant"], false, "{device}");
    assert_eq!(
        device["failing"],
        serde_json::json!(["mdm_compliant"]),
        "{device}"
    );
    assert!(
        env.authentication_events().iter().any(|e| {
            e["unmapped"]["activity"] == "device_report"
                && e.to_string()
                    .contains("posture recorded: not compliant: mdm_compliant (unknown)")
        }),
        "the ledger has no verdict of the report"
    );
    // The MDM calls it compliant: the next report is compliant and so is the listing.
    let export = env.d.dir.path().join("mdm-compliant.csv");
    std::fs::write(
        &export,
        format!(
            "device_id,compliant,last_check_in\n{device_id},true,{}\n",
            time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        ),
    )
    .unwrap();
    let imported = env.cli(&[
        "device",
        "import",
        "--match",
        "device_id",
        export.to_str().unwrap(),
    ]);
    let imported: Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(imported["imported"], 1, "{imported}");
    assert_eq!(imported["stale"], 0, "{imported}");
    // The same export again is not newer than what Tenet has: stale, not imported.
    let again: Value = serde_json::from_str(&env.cli(&[
        "device",
        "import",
        "--match",
        "device_id",
        export.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["stale"], 1, "{again}");
    let said = report();
    assert!(said.contains("posture reported: compliant"), "{said}");
    let device = listed();
    assert_eq!(device["compliant"], true, "{device}");
    assert_eq!(device["failing"], serde_json::json!([]), "{device}");
    // The token was used up: a second enrolment is refused with the reason.
    let out = run(&[
        "device",
        "enrol",
        "--gateway",
        &gateway,
        "--token",
        &token,
        "--bundle",
        bundle.to_str().unwrap(),
        "--resolve",
        resolve,
        "--out",
        env.d.dir.path().join("device2").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enrolment refused"));
    let devices: Value = serde_json::from_str(&env.cli(&["device", "list"])).unwrap();
    let devices = devices["devices"].as_array().unwrap();
    assert!(devices.iter().any(|d| d["owner"] == EMAIL), "{devices:?}");
    // `tenet device import FILE | head -c 10`: a reader that has gone away before the answer
    // is printed ends the command quietly, not with a panic.
    let export = env.d.dir.path().join("mdm.csv");
    std::fs::write(&export, "serial,compliant\nNO-SUCH-SERIAL,true\n").unwrap();
    let mut child = support::tenet()
        .arg("--config")
        .arg(env.d.dir.path().join("tenet.toml"))
        .args(["device", "import", "--match", "serial"])
        .arg(&export)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// A device enrolled for the person with `tenet device enrol` into `name` under the
/// deployment's directory: its id and its directory (`svid.pem`, `svid.key`).
fn enrol_device(env: &Env, name: &str) -> (String, std::path::PathBuf) {
    let token: Value =
        serde_json::from_str(&env.cli(&["device", "token", "--owner", EMAIL])).unwrap();
    let dir = env.d.dir.path().join(name);
    let out = support::tenet()
        .args(["device", "enrol", "--gateway"])
        .arg(format!("https://app.example.test:{}", env.d.port))
        .args(["--token", token["token"].as_str().unwrap(), "--bundle"])
        .arg(env.d.dir.path().join("data/admin/bundle.pem"))
        .args(["--resolve", "app.example.test:127.0.0.1", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = said
        .strip_prefix("enrolled device ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{said}"));
    (id.to_owned(), dir)
}

/// A browser presenting the certificate of the device enrolled into `dir`.
fn device_browser(env: &Env, dir: &std::path::Path) -> Browser {
    let mut pem = std::fs::read(dir.join("svid.pem")).unwrap();
    pem.extend(std::fs::read(dir.join("svid.key")).unwrap());
    let mut b = Browser::new(env);
    b.http = idp::http_client(env.d.dir.path(), env.d.port)
        .http1_only()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    b
}

/// The MDM's word on `device`, checked in now.
fn mdm_says(env: &Env, device: &str, compliant: bool) {
    let now = time::OffsetDateTime::now_utc();
    let now = now.format(&time::format_description::well_known::Rfc3339);
    let export = env
        .d
        .dir
        .path()
        .join(format!("mdm-{device}-{compliant}.csv"));
    let csv = format!(
        "device_id,compliant,last_check_in\n{device},{compliant},{}\n",
        now.unwrap()
    );
    std::fs::write(&export, csv).unwrap();
    env.cli(&[
        "device",
        "import",
        "--match",
        "device_id",
        export.to_str().unwrap(),
    ]);
}

/// The ledger's session_end events of `device`.
fn session_ends_of(env: &Env, device: &str) -> Vec<Value> {
    let ends = env.authentication_events().into_iter();
    ends.filter(|e| e["unmapped"]["activity"] == "session_end" && e["device"]["uid"] == device)
        .collect()
}

/// A session signed in through a compliant device ends when the device loses compliance
/// (`posture_action = "end"`): the request is refused as `session_ended`
/// (`posture_noncompliant`), and the end is one session_end Authentication event (OCSF
/// Logoff) with the person, the reason and that request's id; the next request adds none.
/// Before, the end was only the access denial.
#[tokio::test]
async fn a_session_ended_by_re_evaluation_is_a_session_end_event() {
    let env = env();
    let _turn = env.turn.lock().await;
    let (device, dir) = enrol_device(&env, "losing-device");
    mdm_says(&env, &device, true);
    let mut b = device_browser(&env, &dir);
    let path = to_callback(&mut b).await;
    callback(&mut b, &path).await;
    second_factor(&env, &mut b).await;
    assert_upstream_sees_alice(&b.get("/", &[]).await);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    mdm_says(&env, &device, false);
    let r = b.get("/", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "session_ended", "{}", r.body);
    assert_eq!(r.json()["reason"], "posture_noncompliant", "{}", r.body);
    let request_id = r.headers["x-tenet-request-id"].to_str().unwrap().to_owned();
    let ends = session_ends_of(&env, &device);
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let end = &ends[0];
    assert_eq!(end["user"]["name"], PRINCIPAL, "{end}");
    assert_eq!(end["activity_name"], "Logoff", "{end}");
    assert_eq!(end["unmapped"]["request_id"], request_id.as_str(), "{end}");
    assert!(
        end["status_detail"]
            .as_str()
            .unwrap()
            .starts_with("posture_noncompliant"),
        "{end}"
    );

    assert_eq!(b.get("/", &[]).await.status, 401);
    assert_eq!(session_ends_of(&env, &device).len(), 1);
}

/// Revoking a device ends the sessions signed in through it at once: `tenet session list`
/// no longer shows them, the ledger has a session_end naming the person and the revocation,
/// and the next request with the session is refused as `session_ended` (`device_revoked`),
/// recorded as the person's (before, the session stayed listed as active and its requests
/// were refused as `device_mismatch` and recorded as anonymous).
#[tokio::test]
async fn revoking_a_device_ends_its_sessions_and_says_so() {
    let env = env();
    let _turn = env.turn.lock().await;
    let (device, dir) = enrol_device(&env, "revoked-device");
    let mut b = device_browser(&env, &dir);
    let path = to_callback(&mut b).await;
    callback(&mut b, &path).await;
    second_factor(&env, &mut b).await;
    let bound = |env: &Env| {
        let sessions = env.sessions();
        sessions
            .into_iter()
            .filter(|x| x["device"] == device.as_str())
            .count()
    };
    assert_eq!(bound(&env), 1, "the sign-in is not bound to the device");

    let out: Value = serde_json::from_str(&env.cli(&["device", "revoke", &device])).unwrap();
    assert_eq!(out["sessions_ended"], 1, "{out}");
    assert_eq!(bound(&env), 0, "the device's session is still listed");
    let ended = env.authentication_events().into_iter().find(|e| {
        e["unmapped"]["activity"] == "session_end" && e["device"]["uid"] == device.as_str()
    });
    let ended = ended.unwrap_or_else(|| panic!("no session_end for the device"));
    assert_eq!(ended["user"]["name"], PRINCIPAL, "{ended}");
    assert_eq!(ended["activity_name"], "Logoff", "{ended}");
    assert!(ended.to_string().contains("device_revoked"), "{ended}");

    let r = b.get("/", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "session_ended", "{}", r.body);
    assert_eq!(r.json()["reason"], "device_revoked", "{}", r.body);
    let request_id = r.headers["x-tenet-request-id"].to_str().unwrap().to_owned();
    let tail = env.cli(&["log", "tail"]);
    let refusal = tail
        .lines()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("request {request_id} not in the ledger"));
    assert!(
        refusal.contains(PRINCIPAL),
        "not recorded as the person: {refusal}"
    );
}

/// A sign-in endpoint whose request body stops arriving: `Content-Length: 1000` and three
/// bytes, the client's side kept open. The gateway answers 408 with the JSON error and closes
/// the connection instead of waiting for the rest.
#[test]
fn a_stalled_sign_in_body_is_answered_408_and_closed() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let env = env();
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{}", env.d.port))
        .args(["-servername", idp::APP_HOST])
        .arg("-CAfile")
        .arg(env.d.dir.path().join("data/admin/bundle.pem"))
        .args(["-verify_return_error", "-alpn", "http/1.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let head = format!(
        "POST /.tenet/auth/device/report HTTP/1.1\r\nHost: {}:{}\r\n\
         Content-Type: application/jose\r\nContent-Length: 1000\r\n\r\nabc",
        idp::APP_HOST,
        env.d.port
    );
    stdin.write_all(head.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The stdin stays open until the gateway has closed the connection (or the wait ends).
    let out = support::wait_output(child, std::time::Duration::from_secs(30));
    drop(stdin);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"reason\":\"body_timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        out.status.code().is_some(),
        "s_client was still connected when the wait ended"
    );
}
