//! The relying party against a real OpenID provider (panva's `oidc-provider` on Node.js),
//! started on 127.0.0.1 over HTTPS with a certificate made here.
//!
//! Needs `node` and the package installed in the workspace:
//! `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1`
//! (or `TENET_OIDC_PROVIDER_DIR` pointing at the package directory).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tenet_oidc::{
    AuthorizationResponse, Backoff, ClientSecret, OidcError, PendingLogin, Provider,
    ProviderConfig, ProviderSlot, TokenError,
};
use time::OffsetDateTime;
use url::Url;

const REDIRECT_URI: &str = "https://gateway.tenet.test/auth/callback";
const CLIENT_ID: &str = "tenet-gateway";

/// A running oidc-provider; the node process is killed when this is dropped.
struct Idp {
    child: Child,
    port: u16,
    ca_file: PathBuf,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider_package() -> PathBuf {
    let dir = std::env::var_os("TENET_OIDC_PROVIDER_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tools/oidc-provider/node_modules/oidc-provider")
        },
        PathBuf::from,
    );
    assert!(
        dir.join("lib/index.js").is_file(),
        "oidc-provider is not installed at {}: run `npm install --prefix \
         target/tools/oidc-provider oidc-provider@8.8.1` in the workspace, or set \
         TENET_OIDC_PROVIDER_DIR",
        dir.display()
    );
    dir
}

fn require_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        ok,
        "`node` (Node.js 20 or later) is required for the real-provider tests"
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM files.
fn write_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tenet-oidc test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "oidc-provider");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).unwrap();

    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, leaf_cert.pem()).unwrap();
    std::fs::write(&files.2, leaf_key.serialize_pem()).unwrap();
    (files.0, files.1, files.2)
}

impl Idp {
    fn start() -> Self {
        require_node();
        let package = provider_package();
        let dir = tempfile::tempdir().unwrap();
        let (ca_file, cert, key) = write_tls_files(dir.path());
        let secret = format!("secret-{}", rand::random::<u64>());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .args([&cert, &key])
            .arg(REDIRECT_URI)
            .arg(package)
            .env("TEST_CLIENT_SECRET", &secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start node");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Keep draining its stdout so the node process never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("[oidc-provider] {line}");
            }
        });
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("oidc-provider did not start (said {line:?}); see its stderr above");
        };
        Self {
            child,
            port,
            ca_file,
            secret,
            _dir: dir,
        }
    }

    fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn config(&self) -> ProviderConfig {
        let mut config = ProviderConfig::new("corp", self.issuer(), CLIENT_ID, REDIRECT_URI);
        config.client_secret = Some(ClientSecret::new(self.secret.clone()));
        config.scopes.push("groups".to_owned());
        config.allowed_algorithms = vec![tenet_oidc::JwsAlgorithm::RS256];
        config.ca_file = Some(self.ca_file.clone());
        config
    }

    /// A client playing the browser: trusts only the test CA, follows no redirect.
    fn browser(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca_file).unwrap();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .build()
            .unwrap()
    }

    /// POSTs to one of the script's test routes; its JSON answer.
    async fn admin(&self, route: &str) -> serde_json::Value {
        let url = format!("{}/test-admin/{route}", self.issuer());
        let response = self.browser().post(url).send().await.unwrap();
        assert!(response.status().is_success(), "{route}");
        response.json().await.unwrap()
    }

    /// Requests the JWKS endpoint has had.
    async fn jwks_requests(&self) -> u64 {
        let url = format!("{}/test-admin/jwks-requests", self.issuer());
        let response = self.browser().get(url).send().await.unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        body["count"].as_u64().unwrap()
    }

    async fn rotate_key(&self) -> String {
        let url = format!("{}/test-admin/rotate", self.issuer());
        let response = self.browser().post(url).send().await.unwrap();
        assert!(response.status().is_success());
        let body: serde_json::Value = response.json().await.unwrap();
        body["kid"].as_str().unwrap().to_owned()
    }

    /// Follows the authorization URL like a browser (keeping cookies) until the provider
    /// redirects to our callback, and returns that callback's query. The callback itself is
    /// not requested.
    async fn sign_in(&self, authorization_url: &Url) -> String {
        let browser = self.browser();
        let mut cookies: BTreeMap<String, String> = BTreeMap::new();
        let mut next = authorization_url.clone();
        for _ in 0..10 {
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let response = browser
                .get(next.clone())
                .header(http::header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            remember_cookies(&mut cookies, &response);
            let status = response.status();
            let location = response.headers().get(http::header::LOCATION).cloned();
            let Some(location) = location else {
                let body = response.text().await.unwrap_or_default();
                panic!("provider answered {status} without redirect at {next}: {body}");
            };
            let target = next.join(location.to_str().unwrap()).unwrap();
            if target.as_str().starts_with(REDIRECT_URI) {
                return target.query().unwrap_or_default().to_owned();
            }
            next = target;
        }
        panic!("too many redirects");
    }
}

fn remember_cookies(jar: &mut BTreeMap<String, String>, response: &reqwest::Response) {
    for value in response.headers().get_all(http::header::SET_COOKIE) {
        let text = value.to_str().unwrap_or_default();
        let pair = text.split(';').next().unwrap_or_default();
        if let Some((name, value)) = pair.split_once('=') {
            if value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }
}

async fn login_at(
    idp: &Idp,
    provider: &Provider,
    now: OffsetDateTime,
) -> (PendingLogin, AuthorizationResponse) {
    let redirect = provider.begin("/app/dashboard", now);
    let url = &redirect.authorization_url;
    let query: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["state"], redirect.pending.state());
    assert!(query.contains_key("nonce"));
    let callback = idp.sign_in(url).await;
    (
        redirect.pending,
        AuthorizationResponse::from_query(&callback).unwrap(),
    )
}

async fn login(idp: &Idp, provider: &Provider) -> (PendingLogin, AuthorizationResponse) {
    login_at(idp, provider, OffsetDateTime::now_utc()).await
}

#[tokio::test]
async fn login_against_real_provider_yields_the_identity() {
    let idp = Idp::start();
    let provider = Provider::discover(idp.config()).await.unwrap();
    let (pending, response) = login(&idp, &provider).await;
    assert_eq!(response.iss.as_deref(), Some(idp.issuer().as_str()));

    let identity = provider
        .complete(&pending, &response, OffsetDateTime::now_utc())
        .await;
    let identity = identity.unwrap();
    assert_eq!(identity.issuer, idp.issuer());
    assert_eq!(identity.subject, "user-A");
    assert_eq!(identity.email.as_deref(), Some("alice@example.test"));
    assert!(identity.email_verified);
    assert_eq!(identity.name.as_deref(), Some("Alice Example"));
    assert_eq!(identity.groups, ["engineering", "oncall"]);
    assert_eq!(pending.return_to(), "/app/dashboard");

    // The same code again: the provider refuses it, and says why.
    let replay = provider
        .complete(&pending, &response, OffsetDateTime::now_utc())
        .await;
    match replay {
        Err(OidcError::TokenEndpoint { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("replayed code gave {other:?}"),
    }
}

#[tokio::test]
async fn wrong_nonce_and_wrong_state_are_refused() {
    let idp = Idp::start();
    let provider = Provider::discover(idp.config()).await.unwrap();
    let (pending, response) = login(&idp, &provider).await;

    let mut wrong_state = response.clone();
    wrong_state.state.push('x');
    let result = provider
        .complete(&pending, &wrong_state, OffsetDateTime::now_utc())
        .await;
    assert!(
        matches!(result, Err(OidcError::StateMismatch)),
        "{result:?}"
    );

    // A pending login whose nonce is not the one the provider put in the ID token.
    let mut stored = serde_json::to_value(&pending).unwrap();
    stored["nonce"] = "another-nonce".into();
    let tampered: PendingLogin = serde_json::from_value(stored).unwrap();
    let result = provider
        .complete(&tampered, &response, OffsetDateTime::now_utc())
        .await;
    assert!(
        matches!(result, Err(OidcError::IdToken(TokenError::NonceMismatch))),
        "{result:?}"
    );
}

#[tokio::test]
async fn issuer_mismatch_in_discovery_is_refused() {
    let idp = Idp::start();
    let variants = [
        format!("{}/", idp.issuer()),
        format!("https://localhost:{}", idp.port),
    ];
    for issuer in variants {
        let mut config = idp.config();
        config.issuer.clone_from(&issuer);
        match Provider::discover(config).await {
            Err(OidcError::IssuerMismatch {
                configured,
                discovered,
            }) => {
                assert_eq!(configured, issuer);
                assert_eq!(discovered, idp.issuer());
            }
            other => panic!("issuer {issuer} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_slot_fills_once_discovery_succeeds_and_a_wrong_issuer_is_not_transient() {
    let idp = Idp::start();
    let mut wrong = idp.config();
    wrong.issuer = format!("https://localhost:{}", idp.port);
    let slot = ProviderSlot::new(wrong).unwrap();
    let error = slot.discover_once().await.unwrap_err();
    assert!(
        matches!(error, OidcError::IssuerMismatch { .. }) && !error.is_transient(),
        "{error:?}"
    );
    assert!(!slot.attempt(1, &Backoff::default()).await);
    assert!(slot.get().is_none());

    let slot = ProviderSlot::new(idp.config()).unwrap();
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(10));
    tokio::time::timeout(Duration::from_secs(20), slot.keep_discovering(backoff, 0))
        .await
        .unwrap();
    let provider = slot.get().unwrap();
    assert_eq!(provider.config().issuer, idp.issuer());
    // Filled once: another attempt is the same provider, without a request.
    assert!(std::sync::Arc::ptr_eq(
        provider,
        slot.discover_once().await.unwrap()
    ));
    let (pending, response) = login_at(&idp, provider, OffsetDateTime::now_utc()).await;
    let identity = provider
        .complete(&pending, &response, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(identity.subject, "user-A");
}

#[tokio::test]
async fn key_rotation_is_followed_by_one_rate_limited_refetch() {
    let idp = Idp::start();
    let provider = Provider::discover(idp.config()).await.unwrap();
    let t0 = OffsetDateTime::now_utc();
    let (pending, response) = login_at(&idp, &provider, t0).await;
    provider.complete(&pending, &response, t0).await.unwrap();

    // New key at the provider: the unknown kid triggers a refetch, and the login succeeds.
    assert_eq!(idp.rotate_key().await, "k2");
    let (pending, response) = login_at(&idp, &provider, t0).await;
    let identity = provider.complete(&pending, &response, t0).await.unwrap();
    assert_eq!(identity.subject, "user-A");

    // Another rotation within the refetch interval: no second refetch, the kid stays unknown.
    assert_eq!(idp.rotate_key().await, "k3");
    let (pending, response) = login_at(&idp, &provider, t0).await;
    let soon = t0 + Duration::from_secs(5);
    match provider.complete(&pending, &response, soon).await {
        Err(OidcError::IdToken(TokenError::UnknownKey { kid })) => assert_eq!(kid, "k3"),
        other => panic!("expected unknown kid, got {other:?}"),
    }

    // Once the interval has passed, the next login refetches and succeeds.
    let (pending, response) = login_at(&idp, &provider, t0).await;
    let later = t0 + Duration::from_secs(31);
    provider.complete(&pending, &response, later).await.unwrap();
}

/// Access tokens are verified with `current_keys` while a refetch for an unknown kid waits
/// for the provider: the keys in hand stay available, nobody waits for the provider.
#[tokio::test]
async fn the_current_keys_stay_available_while_a_refetch_waits_for_the_provider() {
    let idp = Idp::start();
    let provider = std::sync::Arc::new(Provider::discover(idp.config()).await.unwrap());
    let kids = |keys: &tenet_oidc::KeySet| -> Vec<String> {
        keys.keys()
            .iter()
            .map(|k| k.kid().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(&provider.current_keys()), ["k1"]);
    let before = idp.jwks_requests().await;

    idp.admin("jwks-hold").await;
    assert_eq!(idp.rotate_key().await, "k2");
    let refetch = tokio::spawn({
        let provider = std::sync::Arc::clone(&provider);
        async move {
            provider
                .refetch_for_kid("k2", OffsetDateTime::now_utc())
                .await
        }
    });
    // The refetch's request has reached the provider, which holds it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while idp.jwks_requests().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no refetch reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kids(&provider.current_keys()), ["k1"]);
    assert!(!refetch.is_finished());

    assert_eq!(idp.admin("jwks-release").await["released"], 1);
    refetch.await.unwrap().unwrap();
    assert_eq!(kids(&provider.current_keys()), ["k2"]);
}

/// Callers that meet unknown kids while a refetch is under way share it: one JWKS request,
/// whose end every caller can wait for (`refetch_under_way` finds it without starting one);
/// after it, within the refetch interval, an unknown kid starts no refetch, and a kid the
/// refetch brought is known at once.
#[tokio::test]
async fn a_refetch_under_way_is_shared_by_every_caller_that_meets_an_unknown_kid() {
    use tenet_oidc::KidRefetch;
    let idp = Idp::start();
    let provider = std::sync::Arc::new(Provider::discover(idp.config()).await.unwrap());
    let before = idp.jwks_requests().await;
    let now = OffsetDateTime::now_utc();

    idp.admin("jwks-hold").await;
    assert_eq!(idp.rotate_key().await, "k2");
    let mut waits = Vec::new();
    for kid in ["k2", "k2", "forged-1", "forged-2"] {
        match provider.refetch_for_kid_in_background(kid, now) {
            KidRefetch::Pending(done) => waits.push(done),
            other => panic!("{kid}: expected a refetch under way, got {other:?}"),
        }
    }
    match provider.refetch_under_way("forged-3") {
        KidRefetch::Pending(done) => waits.push(done),
        other => panic!("expected the refetch under way, got {other:?}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while idp.jwks_requests().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no refetch reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(idp.admin("jwks-release").await["released"], 1);
    for done in waits {
        done.wait().await;
    }
    assert_eq!(idp.jwks_requests().await, before + 1);

    assert!(matches!(
        provider.refetch_for_kid_in_background("k2", now),
        KidRefetch::Known
    ));
    assert!(matches!(
        provider.refetch_under_way("forged-3"),
        KidRefetch::NotNow
    ));
    assert!(matches!(
        provider.refetch_under_way("k2"),
        KidRefetch::Known
    ));
    let soon = now + Duration::from_secs(5);
    assert!(matches!(
        provider.refetch_for_kid_in_background("forged-3", soon),
        KidRefetch::NotNow
    ));
    assert_eq!(idp.jwks_requests().await, before + 1);
}

#[tokio::test]
async fn http_client_follows_no_redirect_and_bounds_the_body() {
    let idp = Idp::start();
    let mut config = idp.config();
    config.http.max_response_bytes = 200;
    match Provider::discover(config).await {
        Err(OidcError::Http(tenet_oidc::HttpError::TooLarge { limit, .. })) => {
            assert_eq!(limit, 200)
        }
        other => panic!("oversized discovery document gave {other:?}"),
    }

    // The authorization endpoint answers with a redirect; the client must not follow it.
    let config = idp.config();
    let http = tenet_oidc::HttpClient::new(&config.http, config.ca_file.as_deref()).unwrap();
    let provider = Provider::discover(config).await.unwrap();
    let url = provider
        .begin("/", OffsetDateTime::now_utc())
        .authorization_url;
    match http.get_ok(url.as_str(), "text/html").await {
        Err(tenet_oidc::HttpError::Status { status, .. }) => assert!((300..400).contains(&status)),
        other => panic!("redirect gave {other:?}"),
    }

    // Without the extra root CA the provider's certificate is not trusted.
    let mut untrusted = idp.config();
    untrusted.ca_file = None;
    let result = Provider::discover(untrusted).await;
    assert!(matches!(result, Err(OidcError::Http(_))), "{result:?}");
}
