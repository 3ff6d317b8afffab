//! Bearer tokens on a people route (field cases F008 and F009): `tenet up` with
//! `[people] bearer_audience = "tenet-proxy"`, a real OpenID provider (panva's `oidc-provider`
//! on Node.js, the script of tenet-oidc's tests) that issues RS256 JWT access tokens for the
//! resource servers its script defines, and the Python echo upstream.
//!
//! Real tokens come from the authorization-code flow with `resource=` for the gateway's client
//! (so `sub` is the person); forged ones are built here against the provider's published key.
//! Tests are named after the field case and input they pin.
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
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Method, header};
use serde_json::{Value, json};
use support::idp::{self, APP_HOST, CLIENT_ID, PeopleToml, Provider, cookie_header};
use support::{KillOnDrop, free_port, start_upstream};
use url::Url;

/// The audience the gateway accepts.
const AUDIENCE: &str = "tenet-proxy";
/// The person the provider signs in, as the gateway names them.
const PRINCIPAL: &str = "user:corp:user-A";

/// Resource indicators of the provider script, by the `aud` their access tokens carry.
const PROXY: &str = "https://tenet-proxy.example.test";
const BILLING: &str = "https://billing.example.test";
const UPPER: &str = "https://tenet-proxy-upper.example.test";
const SHARED: &str = "https://shared.example.test";

const POLICY: &str = r#"
@id("alice-uses-the-app")
permit (principal == Tenet::User::"corp:user-A", action, resource in Tenet::Service::"app")
when { context.session.authenticated };

@id("no-writes-with-a-bearer-token")
forbid (principal, action in Tenet::Action::"write", resource in Tenet::Service::"app")
when { context.session.factors.contains("bearer") };
"#;

// ---------------------------------------------------------------------------------------------
// The deployment

/// The provider, the upstream, two gateways that differ only in `bearer_audience`, and a
/// listener standing where a `jku` header points (it must never be contacted).
struct Env {
    /// Its one redirect URI is the main gateway's callback.
    provider: Provider,
    _upstream: KillOnDrop,
    /// The provider's TLS files and the client secret.
    _dir: tempfile::TempDir,
    /// `bearer_audience = "tenet-proxy"`.
    main: Gateway,
    /// `bearer_audience = "Tenet-Proxy"`.
    upper: Gateway,
    jku_port: u16,
    /// Connections the `jku` listener has accepted.
    jku_hits: Arc<AtomicUsize>,
}

static SHARED_ENV: Mutex<Weak<Env>> = Mutex::new(Weak::new());

/// The running deployment, started by the first test that needs it and stopped when the last
/// test holding it ends.
fn env() -> Arc<Env> {
    let mut slot = SHARED_ENV.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = slot.upgrade() {
        return env;
    }
    let env = Arc::new(Env::start());
    *slot = Arc::downgrade(&env);
    env
}

/// A listener on 127.0.0.1 that counts (and drops) every connection it gets.
fn start_jku_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, hits)
}

impl Env {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (upstream, upstream_port) = start_upstream();
        // The port comes first: it is part of the provider's one redirect URI.
        let main_port = free_port();
        let provider = Provider::start(dir.path(), &idp::redirect_uri(main_port));
        let main = Gateway::start(main_port, AUDIENCE, &provider, upstream_port);
        let upper = Gateway::start(free_port(), "Tenet-Proxy", &provider, upstream_port);
        let (jku_port, jku_hits) = start_jku_listener();
        Self {
            provider,
            _upstream: upstream,
            _dir: dir,
            main,
            upper,
            jku_port,
            jku_hits,
        }
    }

    fn issuer(&self) -> String {
        self.provider.issuer()
    }
}

/// One `tenet up` with a people route on `app.example.test`.
struct Gateway {
    _process: KillOnDrop,
    dir: tempfile::TempDir,
    port: u16,
}

impl Gateway {
    fn start(port: u16, audience: &str, provider: &Provider, upstream_port: u16) -> Self {
        Self::start_with(port, audience, provider, upstream_port, "", "")
    }

    /// [`Gateway::start`] with more `[people]` lines and more lines of the provider's table.
    fn start_with(
        port: u16,
        audience: &str,
        provider: &Provider,
        upstream_port: u16,
        people: &str,
        provider_lines: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        idp::init(dir.path());
        for file in ["idp-ca.pem", "client-secret"] {
            std::fs::copy(provider.dir.join(file), dir.path().join(file)).unwrap();
        }
        let people = format!("bearer_audience = \"{audience}\"\n{people}");
        let config = PeopleToml {
            port,
            admin_port: free_port(),
            upstream_port,
            provider,
            people: &people,
            // Lines before any table header: the provider's.
            tail: provider_lines,
        };
        let process = idp::up(dir.path(), &config, POLICY);
        Self {
            _process: process,
            dir,
            port,
        }
    }

    /// An HTTP client trusting this gateway's bundle and the provider's CA, following no
    /// redirect, with the gateway's host resolved to 127.0.0.1.
    fn http(&self) -> reqwest::Client {
        idp::http_client(self.dir.path(), self.port)
            .build()
            .unwrap()
    }

    /// The ledger's events, from `tenet log tail`.
    fn events(&self) -> Vec<Value> {
        idp::cli(self.dir.path(), &["log", "tail"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The ledger's HTTP Activity event for the request with this id (written before the
    /// answer, but read through another process, so this waits a little for it).
    fn event_of(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .events()
                .into_iter()
                .find(|e| e["http_request"]["uid"] == request_id);
            if let Some(event) = found {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no ledger event for request {request_id}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The provider, as the gateway's client

/// The provider's endpoints, from its discovery document.
struct Endpoints {
    authorization: Url,
    token: String,
    jwks: String,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn endpoints(provider: &Provider, http: &reqwest::Client) -> Endpoints {
    let url = format!("{}/.well-known/openid-configuration", provider.issuer());
    let doc = get_json(http, &url).await;
    let text = |name: &str| doc[name].as_str().unwrap().to_owned();
    Endpoints {
        authorization: Url::parse(&text("authorization_endpoint")).unwrap(),
        token: text("token_endpoint"),
        jwks: text("jwks_uri"),
    }
}

/// What the token endpoint gave for one authorization.
struct Tokens {
    access: String,
    id: String,
}

/// [`tokens_from`] the shared deployment's provider, as its main gateway's client.
async fn tokens_for(env: &Env, resource: &str) -> Tokens {
    tokens_from(&env.provider, &env.main, resource).await
}

/// The authorization-code flow for `resource` (PKCE S256), as the gateway's client: the
/// provider's test interaction signs user-A in; the code is taken from the redirect to the
/// gateway's callback (which is not requested) and exchanged with `resource=` again.
async fn tokens_from(provider: &Provider, gateway: &Gateway, resource: &str) -> Tokens {
    let http = gateway.http();
    let endpoints = endpoints(provider, &http).await;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut url = endpoints.authorization.clone();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &provider.redirect_uri)
        .append_pair("scope", "openid api")
        .append_pair("state", &uuid::Uuid::new_v4().to_string())
        .append_pair("nonce", &uuid::Uuid::new_v4().to_string())
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource);
    let code = code_from_provider(provider, &http, url).await;

    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", &provider.redirect_uri)
        .append_pair("code_verifier", &verifier)
        .append_pair("resource", resource)
        .finish();
    let response = http
        .post(&endpoints.token)
        .basic_auth(CLIENT_ID, Some(&provider.secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "token endpoint: {status} {body}");
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        id: body["id_token"].as_str().unwrap().to_owned(),
    }
}

/// Follows the provider's redirects, keeping its cookies, until it sends the browser to the
/// gateway's callback; returns the code.
async fn code_from_provider(provider: &Provider, http: &reqwest::Client, start: Url) -> String {
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut next = start;
    for _ in 0..12 {
        let response = http
            .get(next.clone())
            .header(header::COOKIE, cookie_header(&jar))
            .send()
            .await
            .unwrap();
        for line in response.headers().get_all(header::SET_COOKIE) {
            let pair = line.to_str().unwrap().split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let Some(location) = response.headers().get(header::LOCATION).cloned() else {
            let status = response.status();
            panic!(
                "provider: {status} without redirect: {}",
                response.text().await.unwrap()
            );
        };
        let target = next.join(location.to_str().unwrap()).unwrap();
        if target.as_str().starts_with(&provider.redirect_uri) {
            let query: BTreeMap<_, _> = target.query_pairs().into_owned().collect();
            return query
                .get("code")
                .unwrap_or_else(|| panic!("no code: {target}"))
                .clone();
        }
        next = target;
    }
    panic!("the provider never sent the browser back");
}

/// The provider's published signing key: (kid, its public key as SPKI PEM).
async fn provider_key(env: &Env) -> (String, String) {
    let http = env.main.http();
    let jwks = get_json(&http, &endpoints(&env.provider, &http).await.jwks).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let part = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(keys[0][name].as_str().unwrap())
            .unwrap()
    };
    let der = PublicKeyComponents {
        n: part("n"),
        e: part("e"),
    }
    .as_der()
    .unwrap();
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    (keys[0]["kid"].as_str().unwrap().to_owned(), pem)
}

// ---------------------------------------------------------------------------------------------
// Tokens made here

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The claims of every forged token: those of F008, with the provider as issuer.
fn forged_claims(env: &Env) -> Value {
    claims_from(&env.issuer())
}

/// The claims of F008 with `issuer` as `iss`.
fn claims_from(issuer: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"iss": issuer, "sub": "user-A", "aud": AUDIENCE, "iat": now, "exp": now + 300})
}

/// A key the attacker holds (never published by the provider).
struct Attacker(RsaKeyPair);

impl Attacker {
    fn new() -> Self {
        Self(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    /// The public key as a JWK.
    fn jwk(&self) -> Value {
        let components = PublicKeyComponents::<Vec<u8>>::from(self.0.public_key());
        json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(components.n),
               "e": URL_SAFE_NO_PAD.encode(components.e)})
    }

    /// `header.claims` signed with RS256 by this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let mut signature = vec![0; self.0.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.0
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// `header.claims` with a signature of raw bytes.
fn with_signature(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `header.claims` with an HMAC-SHA256 keyed with `secret`.
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

// ---------------------------------------------------------------------------------------------
// Requests through the gateway

/// What the gateway answered.
struct Reply {
    status: u16,
    request_id: String,
    body: Value,
}

/// `method /api/things` as an API client (JSON, no cookie) with `Authorization: Bearer token`.
async fn call(gateway: &Gateway, method: Method, token: &str) -> Reply {
    call_with(&gateway.http(), gateway.port, method, token).await
}

/// [`call`] with the client `http` (one of [`Gateway::http`]) to the gateway on `port`.
async fn call_with(http: &reqwest::Client, port: u16, method: Method, token: &str) -> Reply {
    let url = format!("https://{APP_HOST}:{port}/api/things");
    let response = http
        .request(method, &url)
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-tenet-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        request_id,
        body,
    }
}

/// The token gets 401 at `gateway`, and the ledger records the refusal with `reason`.
async fn assert_refused_at(gateway: &Gateway, token: &str, reason: &str) {
    let reply = call(gateway, Method::GET, token).await;
    assert_eq!(reply.status, 401, "{reason}: {}", reply.body);
    assert!(
        !reply.request_id.is_empty(),
        "no request id: {}",
        reply.body
    );
    let event = gateway.event_of(&reply.request_id);
    assert_eq!(event["disposition"], "Blocked", "{event}");
    assert_eq!(event["http_response"]["code"], 401, "{event}");
    assert_eq!(
        event["unmapped"]["errors"],
        json!([format!("session: sign_in_required ({reason})")]),
        "{event}"
    );
}

/// The token gets 401 at the main gateway (`tenet-proxy`), with `reason` in the ledger.
async fn assert_refused(env: &Env, token: &str, reason: &str) {
    assert_refused_at(&env.main, token, reason).await;
}

/// The request reached the upstream as user-A, authenticated by a bearer token; returns the
/// ledger's event for it.
fn assert_reached_as_alice(gateway: &Gateway, reply: &Reply) -> Value {
    assert_eq!(
        reply.status, 200,
        "the upstream was not reached: {}",
        reply.body
    );
    let seen = |name: &str| reply.body["headers"][name].clone();
    assert_eq!(
        seen("x-tenet-principal"),
        json!([PRINCIPAL]),
        "{}",
        reply.body
    );
    // No verified email in an access token: the person's name stands in for it.
    assert_eq!(seen("x-tenet-user"), json!([PRINCIPAL]), "{}", reply.body);
    // The token was for the gateway: the upstream cannot replay it.
    assert_eq!(seen("authorization"), Value::Null, "{}", reply.body);
    let event = gateway.event_of(&reply.request_id);
    assert_eq!(event["actor"]["app_name"], PRINCIPAL, "{event}");
    event
}

// ---------------------------------------------------------------------------------------------
// F008: verification inputs taken from the token header

#[tokio::test]
async fn f008_1_alg_none_is_refused() {
    let env = env();
    let header = json!({"alg": "none", "typ": "JWT"});
    let token = with_signature(&header, &forged_claims(&env), b"");
    assert_refused(&env, &token, "bearer_unsupported_algorithm").await;
}

#[tokio::test]
async fn f008_2_hs256_keyed_with_the_public_key_pem_is_refused() {
    let env = env();
    let (kid, pem) = provider_key(&env).await;
    let token = hs256(
        &json!({"alg": "HS256", "kid": kid}),
        &forged_claims(&env),
        pem.as_bytes(),
    );
    assert_refused(&env, &token, "bearer_unsupported_algorithm").await;
}

#[tokio::test]
async fn f008_3_and_4_kid_as_a_path_or_sql_is_only_an_unknown_key() {
    let env = env();
    let attacker = Attacker::new();
    for kid in ["../../../../dev/null", "x' UNION SELECT 'k"] {
        let token = attacker.sign(&json!({"alg": "RS256", "kid": kid}), &forged_claims(&env));
        assert_refused(&env, &token, "bearer_unknown_kid").await;
    }
}

#[tokio::test]
async fn f008_5_an_embedded_jwk_is_ignored() {
    let env = env();
    let attacker = Attacker::new();
    let header = json!({"alg": "RS256", "jwk": attacker.jwk()});
    let token = attacker.sign(&header, &forged_claims(&env));
    assert_refused(&env, &token, "bearer_bad_signature").await;
}

#[tokio::test]
async fn f008_6_a_jku_header_is_never_fetched() {
    let env = env();
    let attacker = Attacker::new();
    let jku = format!("https://127.0.0.1:{}/jwks.json", env.jku_port);
    let header = json!({"alg": "RS256", "jku": jku});
    let token = attacker.sign(&header, &forged_claims(&env));
    assert_refused(&env, &token, "bearer_bad_signature").await;
    assert_eq!(
        env.jku_hits.load(Ordering::SeqCst),
        0,
        "the gateway contacted the jku URL"
    );
}

#[tokio::test]
async fn f008_7_es256_with_a_zero_signature_is_refused() {
    let env = env();
    let (kid, _) = provider_key(&env).await;
    let header = json!({"alg": "ES256", "kid": kid});
    let token = with_signature(&header, &forged_claims(&env), &[0; 64]);
    assert_refused(&env, &token, "bearer_algorithm_mismatch").await;
}

#[tokio::test]
async fn f008_8_a_real_access_token_reaches_the_upstream_as_the_person() {
    let env = env();
    let tokens = tokens_for(&env, PROXY).await;
    let reply = call(&env.main, Method::GET, &tokens.access).await;
    let event = assert_reached_as_alice(&env.main, &reply);
    assert_eq!(event["disposition"], "Allowed", "{event}");
    assert_eq!(
        event["unmapped"]["reasons"],
        json!(["alice-uses-the-app"]),
        "{event}"
    );
}

// ---------------------------------------------------------------------------------------------
// F009: audience and token-kind binding

#[tokio::test]
async fn f009_2_a_real_token_for_another_resource_is_refused() {
    let env = env();
    let tokens = tokens_for(&env, BILLING).await;
    assert_refused(&env, &tokens.access, "bearer_audience_mismatch").await;
}

/// The provider emits the array through its JWT customizer hook (see the provider script).
#[tokio::test]
async fn f009_3_an_audience_array_containing_the_proxy_is_accepted() {
    let env = env();
    let tokens = tokens_for(&env, SHARED).await;
    let claims = tokens.access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["aud"], json!(["billing-svc", AUDIENCE]), "{claims}");
    let reply = call(&env.main, Method::GET, &tokens.access).await;
    assert_reached_as_alice(&env.main, &reply);
}

#[tokio::test]
async fn f009_4_a_token_for_tenet_proxy_in_other_case_is_refused() {
    let env = env();
    let tokens = tokens_for(&env, UPPER).await;
    assert_refused(&env, &tokens.access, "bearer_audience_mismatch").await;
}

/// The same comparison the other way: the gateway configured with `Tenet-Proxy` refuses a
/// `tenet-proxy` token and accepts one for `Tenet-Proxy` exactly.
#[tokio::test]
async fn f009_4_a_gateway_for_tenet_proxy_in_other_case_refuses_tenet_proxy() {
    let env = env();
    let lower = tokens_for(&env, PROXY).await;
    assert_refused_at(&env.upper, &lower.access, "bearer_audience_mismatch").await;
    let upper = tokens_for(&env, UPPER).await;
    let reply = call(&env.upper, Method::GET, &upper.access).await;
    assert_reached_as_alice(&env.upper, &reply);
}

#[tokio::test]
async fn f009_6_the_id_token_is_not_an_access_token() {
    let env = env();
    let tokens = tokens_for(&env, PROXY).await;
    assert_refused(&env, &tokens.id, "bearer_audience_mismatch").await;
}

// ---------------------------------------------------------------------------------------------
// The factor reaches Cedar

#[tokio::test]
async fn the_bearer_factor_reaches_cedar_reads_pass_writes_are_forbidden() {
    let env = env();
    let tokens = tokens_for(&env, PROXY).await;
    let read = call(&env.main, Method::GET, &tokens.access).await;
    assert_reached_as_alice(&env.main, &read);

    let write = call(&env.main, Method::POST, &tokens.access).await;
    assert_eq!(write.status, 403, "{}", write.body);
    let event = env.main.event_of(&write.request_id);
    assert_eq!(event["actor"]["app_name"], PRINCIPAL, "{event}");
    assert_eq!(event["disposition"], "Blocked", "{event}");
    assert_eq!(
        event["unmapped"]["reasons"],
        json!(["no-writes-with-a-bearer-token"]),
        "{event}"
    );
}

// ---------------------------------------------------------------------------------------------
// Key rotation at the provider (issue 6)

/// A deployment of its own for a test that rotates the provider's key (tokens of the shared
/// one must keep their key): the provider, the upstream and one gateway for `tenet-proxy`.
struct Rotation {
    provider: Provider,
    gateway: Gateway,
    _upstream: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Rotation {
    fn start() -> Self {
        Self::start_with("", "")
    }

    /// [`Rotation::start`] with more `[people]` lines and more lines of the provider's table.
    fn start_with(people: &str, provider_lines: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (upstream, upstream_port) = start_upstream();
        let port = free_port();
        let provider = Provider::start(dir.path(), &idp::redirect_uri(port));
        let gateway = Gateway::start_with(
            port,
            AUDIENCE,
            &provider,
            upstream_port,
            people,
            provider_lines,
        );
        Self {
            provider,
            gateway,
            _upstream: upstream,
            _dir: dir,
        }
    }

    /// A real access token for the gateway, signed with the provider's current key.
    async fn access_token(&self) -> String {
        tokens_from(&self.provider, &self.gateway, PROXY)
            .await
            .access
    }

    /// The provider's test route: a new signing key; the previous one stays published when
    /// `keep`. Returns the new key's id.
    async fn rotate(&self, keep: bool) -> String {
        let route = if keep { "rotate?keep=1" } else { "rotate" };
        self.admin(route).await["kid"].as_str().unwrap().to_owned()
    }

    /// POSTs to one of the provider script's test routes; its JSON answer.
    async fn admin(&self, route: &str) -> Value {
        let url = format!("{}/test-admin/{route}", self.provider.issuer());
        let response = self.gateway.http().post(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The key ids the provider publishes, in its JWKS order.
    async fn published_kids(&self) -> Vec<String> {
        let http = self.gateway.http();
        let jwks = get_json(&http, &endpoints(&self.provider, &http).await.jwks).await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Requests the provider's JWKS endpoint has had, counted by the provider script.
    async fn jwks_requests(&self) -> u64 {
        let url = format!("{}/test-admin/jwks-requests", self.provider.issuer());
        get_json(&self.gateway.http(), &url).await["count"]
            .as_u64()
            .unwrap()
    }

    /// Waits (at most ten seconds) until the JWKS endpoint has had `count` requests.
    async fn until_jwks_requests(&self, count: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.jwks_requests().await < count {
            assert!(Instant::now() < deadline, "the JWKS was not requested");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lines of `tenet up`'s log containing `text`.
    fn log_lines(&self, text: &str) -> usize {
        std::fs::read_to_string(self.gateway.dir.path().join("up.log"))
            .unwrap()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Waits (at most ten seconds) until `tenet up`'s log has `count` lines containing `text`.
    async fn until_log_lines(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_lines(text) < count {
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What `tenet up` logs when a request with an unknown key stopped waiting for the JWKS
/// refetch under way because the wait's bound passed.
const WAIT_BOUND_PASSED: &str = "JWKS refetch did not end within the bearer token's wait";

/// The `kid` of a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The rate limit of refetches for an unknown `kid` (tenet-oidc's `jwks_refetch_interval`).
const REFETCH_INTERVAL_SECS: u64 = 30;

/// After a rotation the first request with the new key's token waits for the one JWKS
/// refetch its unknown key starts (OpenID Connect Core 10.1.1) and reaches the upstream as
/// the person; the requests after it pass with no further fetch.
#[tokio::test]
async fn a_token_of_a_rotated_key_is_accepted_on_its_first_request_after_one_jwks_refetch() {
    let rot = Rotation::start();
    let first = rot.access_token().await;
    assert_eq!(kid_of(&first), "k1");
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &first).await);
    let fetched = rot.jwks_requests().await;

    assert_eq!(rot.rotate(false).await, "k2");
    let token = rot.access_token().await;
    assert_eq!(kid_of(&token), "k2");
    let reply = call(&rot.gateway, Method::GET, &token).await;
    let event = assert_reached_as_alice(&rot.gateway, &reply);
    assert_eq!(event["disposition"], "Allowed", "{event}");
    assert_eq!(
        rot.jwks_requests().await,
        fetched + 1,
        "the first request waited for one refetch"
    );
    for _ in 0..3 {
        let again = call(&rot.gateway, Method::GET, &token).await;
        assert_reached_as_alice(&rot.gateway, &again);
    }
    assert_eq!(
        rot.jwks_requests().await,
        fetched + 1,
        "one refetch for the new kid, none for the requests after it"
    );
    assert_eq!(rot.log_lines(WAIT_BOUND_PASSED), 0);
}

/// The provider holds its JWKS answer past the gateway's bound on the wait (3 s): the request
/// with the new key's token is answered 401 `bearer_unknown_kid` once the bound passes, while
/// the refetch still waits for the provider (the client gives up after 10 s, so a request that
/// hung would fail here). A token of the key Tenet has passes meanwhile without waiting. Once
/// the provider answers, the new key's token passes on its next request, with no other fetch.
#[tokio::test]
async fn a_token_of_a_rotated_key_is_refused_after_the_wait_when_the_provider_holds_its_jwks() {
    let rot = Rotation::start();
    let old = rot.access_token().await;
    assert_eq!(kid_of(&old), "k1");
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &old).await);
    let fetched = rot.jwks_requests().await;

    assert_eq!(rot.rotate(false).await, "k2");
    let new = rot.access_token().await;
    assert_eq!(kid_of(&new), "k2");
    rot.admin("jwks-hold").await;
    assert_refused_at(&rot.gateway, &new, "bearer_unknown_kid").await;
    assert_eq!(
        rot.jwks_requests().await,
        fetched + 1,
        "the refetch the request waited for reached the provider"
    );
    rot.until_log_lines(WAIT_BOUND_PASSED, 1).await;

    // The refetch is still held: the old key's token passes without waiting for it.
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &old).await);
    assert_eq!(rot.log_lines(WAIT_BOUND_PASSED), 1);

    assert_eq!(rot.admin("jwks-release").await["released"], 1);
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &new).await);
    assert_eq!(rot.jwks_requests().await, fetched + 1);
}

/// The provider's rotation removes the old key from its JWKS. Until Tenet fetches the keys
/// again its set still holds that key and the old token passes; the refetch the new key's
/// token starts (and waits for) replaces the set with what the provider publishes, and the
/// old token is then an unknown key: 401, with the reason in the ledger.
#[tokio::test]
async fn a_token_of_a_key_the_provider_removed_is_refused_once_tenet_refetched() {
    let rot = Rotation::start();
    let old = rot.access_token().await;
    assert_eq!(kid_of(&old), "k1");

    assert_eq!(rot.rotate(false).await, "k2");
    assert_eq!(rot.published_kids().await, ["k2"]);
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &old).await);

    let new = rot.access_token().await;
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &new).await);

    // Within the refetch interval: no refetch for the old key, no wait, refused.
    assert_refused_at(&rot.gateway, &old, "bearer_unknown_kid").await;
    // The new key still verifies: only the removed one is gone.
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &new).await);
}

/// A rotation that keeps the old key published: after the refetch both the old key's token
/// and the new key's token reach the upstream (the old one until it expires).
#[tokio::test]
async fn a_token_of_a_key_the_provider_still_publishes_stays_valid_after_the_refetch() {
    let rot = Rotation::start();
    let old = rot.access_token().await;
    assert_eq!(kid_of(&old), "k1");

    assert_eq!(rot.rotate(true).await, "k2");
    assert_eq!(rot.published_kids().await, ["k2", "k1"]);
    let new = rot.access_token().await;
    assert_eq!(kid_of(&new), "k2", "the provider signs with the new key");
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &new).await);

    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &old).await);
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &new).await);
}

/// Concurrent tokens naming keys the provider never had (signed by an attacker, with the
/// provider's issuer and the gateway's audience) make Tenet fetch the JWKS at most once per
/// refetch interval, counted at the provider; each waits for the refetch under way and is
/// then refused as an unknown key, and a real token sent among them still passes.
#[tokio::test]
async fn a_burst_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() {
    const BURST: usize = 24;
    let rot = Rotation::start();
    let real = rot.access_token().await;
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &real).await);
    let before = rot.jwks_requests().await;
    let started = Instant::now();

    let attacker = Attacker::new();
    let claims = claims_from(&rot.provider.issuer());
    let http = rot.gateway.http();
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let header = json!({"alg": "RS256", "kid": format!("unknown-{i}")});
        let forged = attacker.sign(&header, &claims);
        let (client, port) = (http.clone(), rot.gateway.port);
        burst.spawn(async move { (true, call_with(&client, port, Method::GET, &forged).await) });
        let (client, real) = (http.clone(), real.clone());
        burst.spawn(async move { (false, call_with(&client, port, Method::GET, &real).await) });
    }
    let replies = burst.join_all().await;

    let (forged, real_replies): (Vec<_>, Vec<_>) = replies.into_iter().partition(|r| r.0);
    for (_, reply) in &real_replies {
        assert_reached_as_alice(&rot.gateway, reply);
    }
    let events = rot.gateway.events();
    for (_, reply) in &forged {
        assert_eq!(reply.status, 401, "{}", reply.body);
        let event = events
            .iter()
            .find(|e| e["http_request"]["uid"] == reply.request_id.as_str())
            .unwrap_or_else(|| panic!("no ledger event for {}", reply.request_id));
        assert_eq!(
            event["unmapped"]["errors"],
            json!(["session: sign_in_required (bearer_unknown_kid)"]),
            "{event}"
        );
    }

    // The forged requests waited for the refetch that the first of them started.
    rot.until_log_lines("JWKS refetched", 1).await;
    let fetches = rot.jwks_requests().await - before;
    let intervals = 1 + started.elapsed().as_secs() / REFETCH_INTERVAL_SECS;
    assert!(
        (1..=intervals).contains(&fetches),
        "{BURST} unknown kids made {fetches} JWKS requests (at most {intervals} allowed)"
    );
    assert!(
        rot.log_lines("JWKS refetch rate-limited") >= BURST - usize::try_from(fetches).unwrap()
    );
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &real).await);
}

/// While Tenet's refetch for an unknown kid waits for the provider (which holds its JWKS
/// answer here), a token of a key Tenet has keeps passing: a token naming an unknown key, which
/// anyone can send, cannot make the gateway refuse the tokens it can verify. (The forged token
/// itself is refused once the wait's bound passes.)
#[tokio::test]
async fn a_real_token_passes_while_a_jwks_refetch_waits_for_the_provider() {
    let rot = Rotation::start();
    let real = rot.access_token().await;
    let before = rot.jwks_requests().await;

    rot.admin("jwks-hold").await;
    let header = json!({"alg": "RS256", "kid": "unknown"});
    let forged = Attacker::new().sign(&header, &claims_from(&rot.provider.issuer()));
    assert_refused_at(&rot.gateway, &forged, "bearer_unknown_kid").await;
    rot.until_jwks_requests(before + 1).await;
    for _ in 0..3 {
        let reply = call(&rot.gateway, Method::GET, &real).await;
        assert_reached_as_alice(&rot.gateway, &reply);
    }
    assert_eq!(rot.admin("jwks-release").await["released"], 1);
}

/// `[people] bearer_key_wait` bounds the wait: with "500ms", the new key's token is refused
/// half a second after the refetch the provider holds started, not after the default 3 s.
#[tokio::test]
async fn the_configured_bearer_key_wait_bounds_the_wait_for_a_held_jwks() {
    let rot = Rotation::start_with("bearer_key_wait = \"500ms\"\n", "");
    let old = rot.access_token().await;
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &old).await);
    assert_eq!(rot.rotate(false).await, "k2");
    let new = rot.access_token().await;

    rot.admin("jwks-hold").await;
    let started = Instant::now();
    let reply = call(&rot.gateway, Method::GET, &new).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        (Duration::from_millis(500)..Duration::from_millis(2500)).contains(&waited),
        "the request waited {waited:?}"
    );
    rot.until_log_lines(WAIT_BOUND_PASSED, 1).await;
    assert_eq!(rot.log_lines("waited_ms=500"), 1);
    assert_eq!(rot.admin("jwks-release").await["released"], 1);
}

/// A provider's `jwks_refetch_interval` sets the rate limit of refetches for unknown key ids:
/// with "1s", a second made-up key id right after the first is rate-limited, and one sent a
/// second later has the keys fetched again (the default 30 s would refuse it too).
#[tokio::test]
async fn a_providers_jwks_refetch_interval_sets_how_often_unknown_kids_refetch() {
    let rot = Rotation::start_with("", "jwks_refetch_interval = \"1s\"\n");
    let real = rot.access_token().await;
    assert_reached_as_alice(&rot.gateway, &call(&rot.gateway, Method::GET, &real).await);
    let before = rot.jwks_requests().await;

    let attacker = Attacker::new();
    let claims = claims_from(&rot.provider.issuer());
    let forged = |kid: &str| attacker.sign(&json!({"alg": "RS256", "kid": kid}), &claims);
    // Sent one right after the other (well within the second), each answered 401.
    for kid in ["unknown-1", "unknown-2"] {
        let reply = call(&rot.gateway, Method::GET, &forged(kid)).await;
        assert_eq!(reply.status, 401, "{kid}: {}", reply.body);
    }
    assert_eq!(rot.jwks_requests().await, before + 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_refused_at(&rot.gateway, &forged("unknown-3"), "bearer_unknown_kid").await;
    assert_eq!(rot.jwks_requests().await, before + 2);
}
