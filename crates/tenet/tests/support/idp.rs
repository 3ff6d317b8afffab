//! A real OpenID provider for the people tests (panva's `oidc-provider` on Node.js, run by the
//! script of tenet-oidc's tests, behind a test CA made here), and what every people deployment
//! shares: its `tenet.toml`, `tenet up`, and an HTTP client that trusts both sides.
//!
//! Needs `node` and the provider package in the workspace:
//! `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1`
//! (or `TENET_OIDC_PROVIDER_DIR` pointing at the package directory).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::{KillOnDrop, free_port, run_ok, start_upstream, tenet, wait_for_child_port};

pub const TD: &str = "example.test";
pub const APP_HOST: &str = "app.example.test";
/// The one client of the provider script.
pub const CLIENT_ID: &str = "tenet-gateway";

/// The people route's origin on gateway port `port`.
pub fn origin(port: u16) -> String {
    format!("https://{APP_HOST}:{port}")
}

/// The gateway's callback on port `port`: the redirect URI the provider is started with.
pub fn redirect_uri(port: u16) -> String {
    format!("{}/.tenet/auth/callback", origin(port))
}

/// The provider package's directory, checked with a message saying how to install it.
pub fn provider_package() -> PathBuf {
    let dir = std::env::var_os("TENET_OIDC_PROVIDER_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tools/oidc-provider/node_modules/oidc-provider")
        },
        PathBuf::from,
    );
    assert!(
        dir.join("lib/index.js").is_file(),
        "oidc-provider is missing at {}: run `npm install --prefix target/tools/oidc-provider \
         oidc-provider@8.8.1` in the workspace, or set TENET_OIDC_PROVIDER_DIR",
        dir.display()
    );
    dir
}

/// A test CA and the provider's certificate for 127.0.0.1, written into `dir` as `idp-ca.pem`,
/// `idp-cert.pem` and `idp-key.pem`; returns those (CA, cert, key) files.
pub fn provider_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "people test provider CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let files = (
        dir.join("idp-ca.pem"),
        dir.join("idp-cert.pem"),
        dir.join("idp-key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, cert.pem()).unwrap();
    std::fs::write(&files.2, key.serialize_pem()).unwrap();
    files
}

/// The provider script on 127.0.0.1 (it exits when its stdin closes, and is killed when this
/// is dropped), or only its files and port while it is not started yet.
pub struct Provider {
    process: Option<KillOnDrop>,
    pub port: u16,
    /// Holds `client-secret` and the provider's TLS files (`idp-ca.pem` among them).
    pub dir: PathBuf,
    /// The secret of [`CLIENT_ID`].
    pub secret: String,
    /// The one redirect URI the provider accepts.
    pub redirect_uri: String,
}

impl Provider {
    /// Writes a fresh client secret (`client-secret`) and the TLS files into `dir`, then starts
    /// the script with them and `redirect_uri` on an ephemeral port.
    pub fn start(dir: &Path, redirect_uri: &str) -> Self {
        let mut provider = Self::prepared(dir, redirect_uri, 0);
        provider.run();
        provider
    }

    /// Writes the client secret and the TLS files into `dir` for a provider on `port`, and
    /// starts nothing: its issuer is known, nobody answers there until [`Provider::run`].
    pub fn prepared(dir: &Path, redirect_uri: &str, port: u16) -> Self {
        let secret = format!("secret-{}", uuid::Uuid::new_v4());
        std::fs::write(dir.join("client-secret"), &secret).unwrap();
        provider_tls(dir);
        Self {
            process: None,
            port,
            dir: dir.to_owned(),
            secret,
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    /// Starts the script on this provider's port (an ephemeral one when 0) with the files
    /// [`Provider::prepared`] wrote, and waits until it listens.
    pub fn run(&mut self) {
        assert!(self.process.is_none(), "the provider runs already");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenet-oidc/tests/oidc_provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .args([self.dir.join("idp-cert.pem"), self.dir.join("idp-key.pem")])
            .arg(&self.redirect_uri)
            .arg(provider_package())
            .env("TEST_CLIENT_SECRET", &self.secret)
            .env("TEST_PORT", self.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("`node` (Node.js 20 or later) is needed for the people tests");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("[oidc-provider] {line}");
            }
        });
        let process = KillOnDrop(child);
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok());
        self.port = port.unwrap_or_else(|| panic!("oidc-provider did not start: said {line:?}"));
        self.process = Some(process);
    }

    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// The `tenet.toml` of a deployment with one people route, `app` on [`APP_HOST`], signing in
/// with the provider as `corp`.
pub struct PeopleToml<'a> {
    /// The people listener's port.
    pub port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    pub provider: &'a Provider,
    /// More lines of `[people]`.
    pub people: &'a str,
    /// Tables after the provider's.
    pub tail: &'a str,
}

impl PeopleToml<'_> {
    pub fn render(&self) -> String {
        let Self {
            port,
            admin_port,
            upstream_port,
            provider,
            people,
            tail,
        } = self;
        // The gateway's own callback (a second gateway of a test has its own port; the
        // provider only needs to know the one that signs people in).
        let (origin, idp_port, redirect_uri) = (origin(*port), provider.port, redirect_uri(*port));
        format!(
            r#"[deployment]
trust_domain = "{TD}"
[admin]
listen = "127.0.0.1:{admin_port}"
[[listeners]]
name = "people"
listen = "127.0.0.1:{port}"
client_auth = "optional"
[[routes]]
name = "app"
service = "app"
listener = "people"
host = "{APP_HOST}"
upstream = "http://127.0.0.1:{upstream_port}"
people = true
[people]
rp_id = "{TD}"
origins = ["{origin}"]
{people}[[people.providers]]
name = "corp"
issuer = "https://127.0.0.1:{idp_port}"
client_id = "{CLIENT_ID}"
client_secret_file = "client-secret"
redirect_uri = "{redirect_uri}"
ca_file = "idp-ca.pem"
scopes = ["openid", "email", "profile", "groups"]
{tail}"#
        )
    }
}

/// `tenet init` into `dir` for [`TD`].
pub fn init(dir: &Path) {
    run_ok(tenet().arg("init").arg(dir).args(["--trust-domain", TD]));
}

/// In a directory `tenet init` made (holding `client-secret` and `idp-ca.pem`): writes
/// `tenet.toml` and `policy` as the only policy, starts `tenet up` with its log in `up.log`, and
/// waits for the people and admin listeners.
pub fn up(dir: &Path, config: &PeopleToml<'_>, policy: &str) -> KillOnDrop {
    std::fs::write(dir.join("tenet.toml"), config.render()).unwrap();
    std::fs::remove_file(dir.join("policies/example.cedar")).unwrap();
    std::fs::write(dir.join("policies/people.cedar"), policy).unwrap();
    let log = std::fs::File::create(dir.join("up.log")).unwrap();
    let mut gateway = tenet()
        .arg("--config")
        .arg(dir.join("tenet.toml"))
        .arg("up")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_child_port(&mut gateway, config.port, &dir.join("up.log"));
    wait_for_child_port(&mut gateway, config.admin_port, &dir.join("up.log"));
    KillOnDrop(gateway)
}

/// A running people deployment: `tenet init` in a fresh directory, the Python upstream, the
/// real provider (redirecting to the gateway's callback) and `tenet up` with the `[people]`
/// lines `people`, the lines `tail` after them, and `policy` as the only policy.
pub struct PeopleDeployment {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    pub provider: Provider,
    _gateway: KillOnDrop,
    _upstream: KillOnDrop,
}

impl PeopleDeployment {
    pub fn start(people: &str, tail: &str, policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path());
        let (upstream, upstream_port) = start_upstream();
        // The port comes first: it is part of the origin and of the provider's redirect URI.
        let (port, admin_port) = (free_port(), free_port());
        let provider = Provider::start(dir.path(), &redirect_uri(port));
        let config = PeopleToml {
            port,
            admin_port,
            upstream_port,
            provider: &provider,
            people,
            tail,
        };
        let gateway = up(dir.path(), &config, policy);
        Self {
            dir,
            port,
            admin_port,
            upstream_port,
            provider,
            _gateway: gateway,
            _upstream: upstream,
        }
    }
}

/// `tenet ARGS` against the deployment in `dir`; stdout.
pub fn cli(dir: &Path, args: &[&str]) -> String {
    let out = run_ok(
        tenet()
            .arg("--config")
            .arg(dir.join("tenet.toml"))
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An HTTP client builder trusting the gateway's bundle and the provider's CA (both in the
/// deployment directory `dir`), following no redirect, with [`APP_HOST`] resolved to
/// 127.0.0.1:`port`.
pub fn http_client(dir: &Path, port: u16) -> reqwest::ClientBuilder {
    let mut pem = std::fs::read(dir.join("data/admin/bundle.pem")).unwrap();
    pem.extend(std::fs::read(dir.join("idp-ca.pem")).unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .resolve(APP_HOST, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Applies an answer's `Set-Cookie` lines to a jar (an empty value or `Max-Age=0` removes).
pub fn remember(jar: &mut BTreeMap<String, String>, headers: &http::HeaderMap) {
    for line in headers.get_all(http::header::SET_COOKIE) {
        let line = line.to_str().unwrap();
        let pair = line.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        if value.is_empty() || line.contains("Max-Age=0") {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), value.to_owned());
        }
    }
}

/// Follows the provider's redirects from `authorization_url` (its test interaction signs
/// user-A in and grants the scopes), keeping the provider's cookies in `jar`, until it sends
/// the browser back to `origin`; returns that path and query.
pub async fn through_provider(
    http: &reqwest::Client,
    jar: &mut BTreeMap<String, String>,
    authorization_url: &str,
    origin: &str,
) -> String {
    let mut next = url::Url::parse(authorization_url).unwrap();
    for _ in 0..12 {
        let mut request = http.get(next.clone());
        if !jar.is_empty() {
            request = request.header(http::header::COOKIE, cookie_header(jar));
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.text().await.unwrap_or_default();
        remember(jar, &headers);
        let location = headers
            .get(http::header::LOCATION)
            .unwrap_or_else(|| panic!("the provider answered {status} without Location: {body}"));
        let target = next.join(location.to_str().unwrap()).unwrap();
        if let Some(rest) = target.as_str().strip_prefix(origin) {
            return rest.to_owned();
        }
        next = target;
    }
    panic!("the provider never sent the browser back");
}

/// A `Cookie` header value for the cookies in `jar`.
pub fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}
