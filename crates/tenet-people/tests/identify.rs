//! `SignIn::identify`, the per-request half of the sign-in service, with real stores, a real
//! CA and a real device enrolment: the session becomes a Cedar user with its session and
//! device facts, and re-evaluation steps up or ends it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, header};
use tenet_device::{DeviceKey, EnrolmentRequest, PostureRequirements};
use tenet_event::{Event, EventSink, RecordFuture};
use tenet_gateway::AuthRequest;
use tenet_gateway::{PeopleGate, PersonRequest, PersonVerdict, RiskSource};
use tenet_identity::{CertificateAuthority, SpiffeId, TrustDomain};
use tenet_people::{Devices, SignIn, SignInParts};
use tenet_policy::Principal;
use tenet_session::{FactorUse, NewSession, SessionLimits, SessionStore, UserIdentity};
use time::OffsetDateTime;
use time::macros::datetime;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

fn t0() -> OffsetDateTime {
    datetime!(2026-12-01 09:00 UTC)
}

/// Events the service recorded (the ledger's interface, kept in memory for the test).
#[derive(Default)]
struct Recorded(Mutex<Vec<Event>>);

impl EventSink for Recorded {
    fn record(&self, event: Event) -> RecordFuture {
        if let Ok(mut events) = self.0.lock() {
            events.push(event);
        }
        Box::pin(async { Ok(()) })
    }
}

/// A risk the test sets.
#[derive(Default)]
struct Risk(AtomicU8);

impl RiskSource for Risk {
    fn risk(&self, _principal: &str, _now: OffsetDateTime) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    ca: Arc<CertificateAuthority>,
    sign_in: SignIn,
    risk: Arc<Risk>,
    events: Arc<Recorded>,
}

fn fixture() -> Fixture {
    fixture_with(Vec::new(), None)
}

fn fixture_with(
    providers: Vec<Arc<tenet_oidc::ProviderSlot>>,
    bearer: Option<tenet_people::BearerSettings>,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let td = TrustDomain::parse("example.test").unwrap();
    let ca = Arc::new(CertificateAuthority::generate(&td, t0()).unwrap());
    let relying_party = tenet_mfa::RelyingParty::new(&tenet_mfa::RelyingPartyConfig {
        rp_id: "example.test".into(),
        rp_name: "Example".into(),
        origins: vec!["https://app.example.test:8443".into()],
        top_origins: Vec::new(),
        cross_origin_without_top_origin: false,
    })
    .unwrap();
    let requirements = PostureRequirements {
        max_age_secs: Some(3600),
        require_disk_encryption: true,
        ..PostureRequirements::default()
    };
    let devices = Arc::new(
        Devices::open(
            dir.path(),
            &ca,
            requirements,
            Duration::from_secs(90 * 86_400),
        )
        .unwrap(),
    );
    let risk = Arc::new(Risk::default());
    let events = Arc::new(Recorded::default());
    let sign_in = SignIn::new(SignInParts {
        providers,
        relying_party,
        factors: tenet_mfa::FactorStore::open(dir.path().join("factors.json")).unwrap(),
        sessions: SessionStore::in_memory(SessionLimits::default()).unwrap(),
        rules: tenet_session::Rules::default(),
        devices,
        ca: ca.clone(),
        risk: risk.clone(),
        sink: events.clone(),
        require_webauthn: true,
        admin_groups: Vec::new(),
        bearer,
        sign_ins_per_source: 30,
    });
    Fixture {
        _dir: dir,
        ca,
        sign_in,
        risk,
        events,
    }
}

fn jane() -> UserIdentity {
    let mut user =
        UserIdentity::new("https://idp.example.test", "u-42").with_email("jane@example.test");
    user.display_name = Some("Jane".into());
    user.groups = vec!["engineering".into()];
    user.attributes.insert("provider".into(), "corp".into());
    user
}

/// A device enrolled through the fixture's sign-in for `owner`, named `name`: its key and the
/// enrolment's answer.
fn enrol(f: &Fixture, owner: &str, name: &str) -> (DeviceKey, tenet_device::Enrolment) {
    let devices = f.sign_in.devices();
    let token = devices
        .create_token(Some(owner), Duration::from_secs(600), t0())
        .unwrap();
    let key = DeviceKey::generate().unwrap();
    let enrolment = devices
        .enrol(
            &f.ca,
            &EnrolmentRequest {
                token: token.token,
                csr: key.csr_pem().unwrap(),
                name: Some(name.into()),
                hardware_serial: None,
            },
            t0(),
        )
        .unwrap();
    (key, enrolment)
}

/// A signed-in session with a passkey, from `ip`, optionally bound to `device`.
fn session(f: &Fixture, ip: &str, device: Option<String>) -> String {
    let new = NewSession {
        user: jane(),
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: device,
        ip: ip.parse().unwrap(),
        risk: 0,
    };
    let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
    let key = FactorUse::new("webauthn", true, t0());
    let (token, _) = f
        .sign_in
        .sessions()
        .add_factor(token.as_str(), key, t0())
        .unwrap();
    token.as_str().to_owned()
}

fn identify(
    f: &Fixture,
    cookie: Option<&str>,
    ip: &str,
    client: Option<&SpiffeId>,
    now: OffsetDateTime,
) -> PersonVerdict {
    let mut headers = HeaderMap::new();
    if let Some(c) = cookie {
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; __Host-tenet_session={c}")).unwrap(),
        );
    }
    let ip: IpAddr = ip.parse().unwrap();
    f.sign_in.identify(&PersonRequest {
        method: &Method::GET,
        host: "app.example.test",
        port: 8443,
        path_and_query: "/",
        headers: &headers,
        source_ip: ip,
        client_id: client,
        now,
    })
}

fn reason(v: &PersonVerdict) -> String {
    match v {
        PersonVerdict::SignInRequired { reason }
        | PersonVerdict::StepUpRequired { reason, .. }
        | PersonVerdict::Ended { reason, .. } => reason.clone(),
        PersonVerdict::Person(p) => format!("person {}", p.name),
    }
}

#[test]
fn no_or_bad_cookie_means_sign_in() {
    let f = fixture();
    let v = identify(&f, None, "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "no_session");
    let v = identify(&f, Some("AAAA"), "192.0.2.10", None, t0());
    assert!(matches!(v, PersonVerdict::SignInRequired { .. }), "{v:?}");
}

#[test]
fn a_session_is_a_cedar_user_with_its_facts() {
    let f = fixture();
    let cookie = session(&f, "192.0.2.10", None);
    let later = t0() + time::Duration::minutes(2);
    let PersonVerdict::Person(p) = identify(&f, Some(&cookie), "192.0.2.11", None, later) else {
        panic!("not a person");
    };
    assert_eq!(p.name, "user:corp:u-42");
    assert_eq!(p.display, "jane@example.test");
    assert_eq!(
        p.principal,
        Principal::User {
            provider: "corp".into(),
            subject: "u-42".into(),
            email: "jane@example.test".into(),
            name: "Jane".into(),
            groups: vec!["engineering".into()],
        }
    );
    assert!(p.session.authenticated && p.session.phishing_resistant);
    assert_eq!(p.session.factors, vec!["oidc", "webauthn"]);
    assert_eq!((p.session.age_secs, p.session.mfa_age_secs), (120, 120));
    assert!(!p.device.enrolled);
    assert_eq!(p.device.posture_age_secs, -1);
}

#[test]
fn re_evaluation_steps_up_or_ends() {
    let f = fixture();
    // Another network: step up.
    let cookie = session(&f, "192.0.2.10", None);
    let v = identify(&f, Some(&cookie), "198.51.100.7", None, t0());
    assert!(matches!(v, PersonVerdict::StepUpRequired { .. }), "{v:?}");
    assert_eq!(reason(&v), "network_changed");
    // The session stays in step-up, even back on the first network.
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "step_up_pending");

    // High detection risk ends the session; it is gone afterwards.
    let cookie = session(&f, "192.0.2.10", None);
    f.risk.0.store(90, Ordering::SeqCst);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert!(matches!(v, PersonVerdict::Ended { .. }), "{v:?}");
    assert_eq!(reason(&v), "risk_end");
    f.risk.0.store(0, Ordering::SeqCst);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "revoked");
}

#[test]
fn responses_step_up_and_cut_a_persons_sessions() {
    let f = fixture();
    let cookie = session(&f, "192.0.2.10", None);
    // A provider that is not configured names nobody.
    assert_eq!(f.sign_in.step_up_person("user:other:u-42", "x", t0()), 0);
    assert_eq!(f.sign_in.revoke_person("user:other:u-42", t0()), 0);
    assert_eq!(f.sign_in.step_up_person("jane@example.test", "x", t0()), 1);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "step_up_pending");
    assert_eq!(f.sign_in.revoke_person("JANE@example.test", t0()), 1);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "revoked");
}

#[test]
fn device_binding_and_posture() {
    let f = fixture();
    let devices = f.sign_in.devices();
    let (key, enrolment) = enrol(&f, "jane@example.test", "laptop");
    let id = enrolment.device_id.to_string();
    let client = enrolment.spiffe_id.clone();
    let cookie = session(&f, "192.0.2.10", Some(id.clone()));

    // Enrolled, but no posture yet: not compliant, posture age unknown.
    let PersonVerdict::Person(p) = identify(&f, Some(&cookie), "192.0.2.10", Some(&client), t0())
    else {
        panic!("not a person");
    };
    assert!(p.device.enrolled && !p.device.compliant);
    assert_eq!(p.device.id, id);
    assert_eq!(p.device.posture_age_secs, -1);

    // A signed report with an encrypted disk makes it compliant.
    let svid = key.into_svid(enrolment.chain.clone()).unwrap();
    let report = tenet_device::PostureReport {
        device_id: enrolment.device_id,
        collected_at: t0(),
        os: Some("debian".into()),
        os_version: Some("12".into()),
        disk_encrypted: Some(true),
        screen_lock: None,
        firewall: Some(true),
        endpoint_protection: None,
        agent_version: "test".into(),
        sequence: 1,
    };
    let jws = tenet_device::sign_report(&report, &svid).unwrap();
    devices.report(&jws, t0()).unwrap();
    let PersonVerdict::Person(p) = identify(&f, Some(&cookie), "192.0.2.10", Some(&client), t0())
    else {
        panic!("not a person");
    };
    assert!(p.device.compliant);
    assert_eq!(p.device.disk_encrypted, "yes");

    // The same cookie without the device certificate is refused.
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "device_mismatch");
    // A revoked device no longer identifies the browser: the bound session is refused.
    devices.revoke(enrolment.device_id, t0()).unwrap();
    let v = identify(&f, Some(&cookie), "192.0.2.10", Some(&client), t0());
    assert_eq!(reason(&v), "device_mismatch");
}

/// A sign-in endpoint request from `ip` with the session cookie, as the gateway hands it over.
fn auth(path: &str, cookie: &str, ip: &str, body: &str) -> AuthRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("__Host-tenet_session={cookie}")).unwrap(),
    );
    headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://app.example.test:8443"),
    );
    AuthRequest {
        method: Method::POST,
        host: "app.example.test".into(),
        port: 8443,
        path_and_query: format!("/.tenet/auth/{path}?rd=%2Fwiki"),
        headers,
        body: bytes::Bytes::from(body.to_owned()),
        source_ip: ip.parse().unwrap(),
        client_id: None,
        request_id: "r".into(),
        now: t0(),
    }
}

/// The new session id a response sets.
fn new_cookie(response: &http::Response<bytes::Bytes>) -> String {
    let set = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap();
    let value = set.strip_prefix("__Host-tenet_session=").unwrap();
    value.split(';').next().unwrap().to_owned()
}

async fn ceremony(
    f: &Fixture,
    key: &mut SoftPasskey,
    cookie: &str,
    ip: &str,
    register: bool,
) -> String {
    let kind = if register { "register" } else { "authenticate" };
    let begin = f
        .sign_in
        .serve(auth(&format!("webauthn/{kind}/begin"), cookie, ip, "{}"))
        .await;
    assert_eq!(begin.status(), 200, "{:?}", begin.body());
    let origin = url::Url::parse("https://app.example.test:8443").unwrap();
    let answer = if register {
        let challenge = serde_json::from_slice(begin.body()).unwrap();
        serde_json::to_string(&key.do_registration(origin, challenge).unwrap()).unwrap()
    } else {
        let challenge = serde_json::from_slice(begin.body()).unwrap();
        serde_json::to_string(&key.do_authentication(origin, challenge).unwrap()).unwrap()
    };
    let finish = f
        .sign_in
        .serve(auth(
            &format!("webauthn/{kind}/finish"),
            cookie,
            ip,
            &answer,
        ))
        .await;
    assert_eq!(finish.status(), 200, "{:?}", finish.body());
    let body: serde_json::Value = serde_json::from_slice(finish.body()).unwrap();
    assert_eq!(body["redirect"], "/wiki");
    new_cookie(&finish)
}

/// A passkey step-up after a network change satisfies it: the session carries on from the new
/// network, the old id is refused, and the person is not asked again.
#[tokio::test]
async fn a_passkey_step_up_after_a_network_change_sticks() {
    let f = fixture();
    let new = NewSession {
        user: jane(),
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: None,
        ip: "192.0.2.10".parse().unwrap(),
        risk: 0,
    };
    let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
    let mut key = SoftPasskey::new(true);
    let cookie = ceremony(&f, &mut key, token.as_str(), "192.0.2.10", true).await;
    assert!(matches!(
        identify(&f, Some(&cookie), "192.0.2.10", None, t0()),
        PersonVerdict::Person(_)
    ));

    let v = identify(&f, Some(&cookie), "198.51.100.7", None, t0());
    assert_eq!(reason(&v), "network_changed");
    let stepped = ceremony(&f, &mut key, &cookie, "198.51.100.7", false).await;
    assert_ne!(stepped, cookie);
    assert_eq!(
        reason(&identify(&f, Some(&cookie), "198.51.100.7", None, t0())),
        "revoked"
    );
    for _ in 0..3 {
        let v = identify(&f, Some(&stepped), "198.51.100.7", None, t0());
        assert!(matches!(v, PersonVerdict::Person(_)), "{v:?}");
    }
}

/// A Cedar request for a GET of the payroll service by the person `identify` produced.
fn payroll_request(p: &tenet_gateway::Person) -> tenet_policy::AccessRequest {
    tenet_policy::AccessRequest {
        principal: p.principal.clone(),
        action: "GET".into(),
        resource: tenet_policy::RouteResource {
            route: "pay".into(),
            service: "payroll".into(),
            host: "app.example.test".into(),
            path: "/".into(),
        },
        context: tenet_policy::RequestContext {
            source_ip: "192.0.2.10".parse().unwrap(),
            tls: tenet_policy::TlsFacts::default(),
            unix_time: t0().unix_timestamp(),
            protocol: "HTTP/2".into(),
            risk: 0,
            session: p.session.clone(),
            device: p.device.clone(),
        },
    }
}

/// Whether each WebAuthn sign-in verified the person reaches policy as
/// `context.session.user_verified`: a security key used without user verification leaves it
/// false and a policy requiring it refuses; a later sign-in with verification (here the soft
/// passkey through the gate's own ceremony) sets it.
#[tokio::test]
async fn policy_sees_whether_a_sign_in_verified_the_person() {
    let f = fixture();
    let policies = tenet_policy::PolicySnapshot::from_sources(&[(
        "main.cedar".to_owned(),
        r#"@id("verified-payroll") permit (principal is Tenet::User, action, resource)
             when { context.session.phishing_resistant && context.session.user_verified };"#
            .to_owned(),
    )])
    .unwrap();
    let new = NewSession {
        user: jane(),
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: None,
        ip: "192.0.2.10".parse().unwrap(),
        risk: 0,
    };
    let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
    // A security key that signed in without UV, as tenet-mfa records it.
    let unverified = FactorUse::new("webauthn", true, t0()).with_user_verified(false);
    let (token, _) = f
        .sign_in
        .sessions()
        .add_factor(token.as_str(), unverified, t0())
        .unwrap();
    let PersonVerdict::Person(p) = identify(&f, Some(token.as_str()), "192.0.2.10", None, t0())
    else {
        panic!("not a person");
    };
    assert!(p.session.phishing_resistant && !p.session.user_verified);
    assert!(!policies.authorize(&payroll_request(&p)).is_allowed());

    let mut key = SoftPasskey::new(true);
    let cookie = ceremony(&f, &mut key, token.as_str(), "192.0.2.10", true).await;
    let cookie = ceremony(&f, &mut key, &cookie, "192.0.2.10", false).await;
    let PersonVerdict::Person(p) = identify(&f, Some(&cookie), "192.0.2.10", None, t0()) else {
        panic!("not a person");
    };
    assert!(p.session.user_verified);
    let session = f.sign_in.sessions().lookup(&cookie, None, t0()).unwrap();
    let verified: Vec<_> = session
        .factors
        .iter()
        .map(|f| (f.name.as_str(), f.user_verified))
        .collect();
    assert_eq!(
        verified,
        [
            ("oidc", false),
            ("webauthn", false),
            ("webauthn", true),
            ("webauthn", true)
        ]
    );
    assert!(policies.authorize(&payroll_request(&p)).is_allowed());
}

/// The second-factor endpoints refuse a POST from another site (login CSRF, forced
/// registration).
#[tokio::test]
async fn factor_endpoints_refuse_other_origins() {
    let f = fixture();
    let cookie = session(&f, "192.0.2.10", None);
    let mut request = auth("webauthn/register/begin", &cookie, "192.0.2.10", "{}");
    request.headers.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evilexample.test"),
    );
    assert_eq!(f.sign_in.serve(request).await.status(), 403);
    let mut request = auth("logout", &cookie, "192.0.2.10", "");
    request.headers.remove(header::ORIGIN);
    assert_eq!(f.sign_in.serve(request).await.status(), 403);
    assert!(matches!(
        identify(&f, Some(&cookie), "192.0.2.10", None, t0()),
        PersonVerdict::Person(_)
    ));
}

/// A person who lost their passkey: a fresh sign-in (provider only), a recovery code, then a
/// new passkey, and the session is usable. The code works once.
#[tokio::test]
async fn a_recovery_code_lets_a_person_register_a_new_passkey() {
    let f = fixture();
    let signed_in = |f: &Fixture| {
        let new = NewSession {
            user: jane(),
            factors: vec![FactorUse::new("oidc", false, t0())],
            device_id: None,
            ip: "192.0.2.10".parse().unwrap(),
            risk: 0,
        };
        let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
        token.as_str().to_owned()
    };
    let mut old_key = SoftPasskey::new(true);
    let cookie = ceremony(&f, &mut old_key, &signed_in(&f), "192.0.2.10", true).await;
    let codes = f
        .sign_in
        .serve(auth("recovery/generate", &cookie, "192.0.2.10", ""))
        .await;
    assert_eq!(codes.status(), 200, "{:?}", codes.body());
    let codes: serde_json::Value = serde_json::from_slice(codes.body()).unwrap();
    let code = codes["codes"][0].as_str().unwrap().to_owned();

    // The passkey is lost: a new sign-in has only the provider.
    let fresh = signed_in(&f);
    let mut new_key = SoftPasskey::new(true);
    let refused = f
        .sign_in
        .serve(auth("webauthn/register/begin", &fresh, "192.0.2.10", "{}"))
        .await;
    assert_eq!(refused.status(), 403);
    let body = serde_json::json!({ "code": code }).to_string();
    let redeemed = f
        .sign_in
        .serve(auth("recovery/redeem", &fresh, "192.0.2.10", &body))
        .await;
    assert_eq!(redeemed.status(), 200, "{:?}", redeemed.body());
    let recovered = new_cookie(&redeemed);
    let cookie = ceremony(&f, &mut new_key, &recovered, "192.0.2.10", true).await;
    assert!(matches!(
        identify(&f, Some(&cookie), "192.0.2.10", None, t0()),
        PersonVerdict::Person(_)
    ));
    let again = f
        .sign_in
        .serve(auth("recovery/redeem", &signed_in(&f), "192.0.2.10", &body))
        .await;
    assert_eq!(again.status(), 401);
}

/// Changing a person's factors needs a passkey verified in the last five minutes: a stolen
/// cookie of an older session cannot add the thief's passkey, replace the recovery codes or
/// enrol TOTP.
#[tokio::test]
async fn factor_changes_need_a_recent_passkey() {
    let f = fixture();
    let new = NewSession {
        user: jane(),
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: None,
        ip: "192.0.2.10".parse().unwrap(),
        risk: 0,
    };
    let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
    let mut key = SoftPasskey::new(true);
    let cookie = ceremony(&f, &mut key, token.as_str(), "192.0.2.10", true).await;
    let later = t0() + time::Duration::minutes(6);
    for path in ["webauthn/register/begin", "recovery/generate", "totp/enrol"] {
        let mut request = auth(path, &cookie, "192.0.2.10", "{}");
        request.now = later;
        let answer = f.sign_in.serve(request).await;
        assert_eq!(answer.status(), 403, "{path}: {:?}", answer.body());
    }
    // Within the window it works.
    let answer = f
        .sign_in
        .serve(auth("recovery/generate", &cookie, "192.0.2.10", ""))
        .await;
    assert_eq!(answer.status(), 200);
}

/// Wrong TOTP codes are limited per person (5 per 15 minutes), and sign-ins per source
/// address (30 per 10 minutes; an IPv6 source per /64), so neither can be guessed or flooded.
#[tokio::test]
async fn codes_and_sign_ins_are_rate_limited() {
    let f = fixture();
    let cookie = session(&f, "192.0.2.10", None);
    let enrolled = f
        .sign_in
        .serve(auth("totp/enrol", &cookie, "192.0.2.10", ""))
        .await;
    assert_eq!(enrolled.status(), 200, "{:?}", enrolled.body());
    let wrong = serde_json::json!({"code": "000000"}).to_string();
    for _ in 0..5 {
        let answer = f
            .sign_in
            .serve(auth("totp/verify", &cookie, "192.0.2.10", &wrong))
            .await;
        assert_eq!(answer.status(), 401, "{:?}", answer.body());
    }
    let answer = f
        .sign_in
        .serve(auth("totp/verify", &cookie, "192.0.2.10", &wrong))
        .await;
    assert_eq!(answer.status(), 429, "{:?}", answer.body());

    let login = |ip: &str| {
        let mut request = auth("login", "x", ip, "");
        request.method = Method::GET;
        request.path_and_query = "/.tenet/auth/login?rd=%2F".into();
        request
    };
    for _ in 0..30 {
        let answer = f.sign_in.serve(login("203.0.113.9")).await;
        assert_ne!(answer.status(), 429);
    }
    assert_eq!(f.sign_in.serve(login("203.0.113.9")).await.status(), 429);
    assert_ne!(f.sign_in.serve(login("203.0.113.10")).await.status(), 429);
    // An IPv6 source counts per /64, whichever of its addresses each sign-in comes from.
    for i in 0..30 {
        let answer = f
            .sign_in
            .serve(login(&format!("2001:db8:1:2::{i:x}")))
            .await;
        assert_ne!(answer.status(), 429);
    }
    let other_address = login("2001:db8:1:2:ffff::1");
    assert_eq!(f.sign_in.serve(other_address).await.status(), 429);
    assert_ne!(
        f.sign_in.serve(login("2001:db8:1:3::1")).await.status(),
        429
    );
}

/// A provider that has not answered discovery (never contacted here): signing in through it
/// is a 503 naming it (a page for a browser, JSON otherwise) that does not count toward the
/// source's sign-ins; sessions go on; a bearer token claiming its issuer is refused with a
/// reason of its own; a person of that provider can still be cut off.
#[tokio::test]
async fn a_provider_not_discovered_yet_refuses_sign_in_with_503_and_nothing_else() {
    let config = tenet_oidc::ProviderConfig::new(
        "corp",
        "https://idp.example.test",
        "tenet",
        "https://app.example.test:8443/.tenet/auth/callback",
    );
    let slot = Arc::new(tenet_oidc::ProviderSlot::new(config).unwrap());
    let bearer = tenet_people::BearerSettings {
        audience: "tenet-proxy".into(),
        kind: tenet_oidc::TokenKind::Any,
        key_wait: tenet_people::BearerSettings::DEFAULT_KEY_WAIT,
    };
    let f = fixture_with(vec![slot.clone()], Some(bearer));
    assert_eq!(f.sign_in.providers().len(), 1);
    assert!(!f.sign_in.providers()[0].is_discovered());

    let login = |query: &str, accept: Option<&'static str>| {
        let mut request = auth("login", "x", "203.0.113.9", "");
        request.method = Method::GET;
        request.path_and_query = format!("/.tenet/auth/login?{query}");
        if let Some(accept) = accept {
            request
                .headers
                .insert(header::ACCEPT, HeaderValue::from_static(accept));
        }
        request
    };
    // More than the 30 sign-ins a source may start: none is counted.
    for _ in 0..40 {
        let answer = f.sign_in.serve(login("rd=%2F", None)).await;
        assert_eq!(answer.status(), 503, "{:?}", answer.body());
    }
    let answer = f.sign_in.serve(login("rd=%2F", None)).await;
    assert_eq!(answer.headers()[header::RETRY_AFTER], "10");
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
    assert_eq!(body["error"], "provider_unreachable");
    assert_eq!(body["provider"], "corp");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("identity provider corp is not reachable yet"),
        "{body}"
    );
    let page = f
        .sign_in
        .serve(login("provider=corp&rd=%2F", Some("text/html,*/*")))
        .await;
    assert_eq!(page.status(), 503);
    assert!(
        page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    let text = std::str::from_utf8(page.body()).unwrap();
    assert!(
        text.contains("<strong>corp</strong> is not reachable yet"),
        "{text}"
    );
    // Another name is still an unknown provider.
    let answer = f.sign_in.serve(login("provider=other", None)).await;
    assert_eq!(answer.status(), 400, "{:?}", answer.body());

    // A session made before (at an earlier start, say) goes on.
    let cookie = session(&f, "192.0.2.10", None);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "person user:corp:u-42");

    // Bearer tokens: header.payload.signature, never verified here.
    // {"alg":"RS256","kid":"k1"}
    let header = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0";
    // {"iss":"https://idp.example.test","sub":"u-42","aud":"tenet-proxy"}
    let corp = "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLnRlc3QiLCJzdWIiOiJ1LTQyIiwiYXVkIjoidGVuZXQtcHJveHkifQ";
    // {"iss":"https://other.example.test","sub":"u-42","aud":"tenet-proxy"}
    let other = "eyJpc3MiOiJodHRwczovL290aGVyLmV4YW1wbGUudGVzdCIsInN1YiI6InUtNDIiLCJhdWQiOiJ0ZW5ldC1wcm94eSJ9";
    let with_bearer = |payload: &str| {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {header}.{payload}.c2lnbmF0dXJl");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        f.sign_in.identify(&PersonRequest {
            method: &Method::GET,
            host: "app.example.test",
            port: 8443,
            path_and_query: "/api",
            headers: &headers,
            source_ip: "192.0.2.10".parse().unwrap(),
            client_id: None,
            now: t0(),
        })
    };
    assert_eq!(reason(&with_bearer(corp)), "bearer_provider_unreachable");
    assert_eq!(reason(&with_bearer(other)), "bearer_no_provider");

    // The person is named by the configured provider and issuer, discovered or not.
    assert_eq!(f.sign_in.revoke_person("user:corp:u-42", t0()), 1);
    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert_eq!(reason(&v), "revoked");
}

/// The authentication events recorded so far, as (activity, success, reason).
fn recorded(f: &Fixture) -> Vec<(String, bool, String)> {
    f.events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            tenet_event::EventKind::Authentication(a) => {
                Some((a.activity.clone(), a.success, a.reason.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A sign-in that has not given its passkey yet is only good for giving it, ends ten minutes
/// after the provider's sign-in, and is complete once the passkey is registered.
#[tokio::test]
async fn a_sign_in_without_its_passkey_yet_ends_after_ten_minutes() {
    let f = fixture();
    let awaiting = |f: &Fixture| {
        let new = NewSession {
            user: jane(),
            factors: vec![FactorUse::new("oidc", false, t0())],
            device_id: None,
            ip: "192.0.2.10".parse().unwrap(),
            risk: 0,
        };
        let sessions = f.sign_in.sessions();
        let (token, _) = sessions
            .create_awaiting_second_factor(new, None, t0())
            .unwrap();
        token.as_str().to_owned()
    };
    let waiting = awaiting(&f);
    let v = identify(&f, Some(&waiting), "192.0.2.10", None, t0());
    assert!(matches!(v, PersonVerdict::StepUpRequired { .. }), "{v:?}");
    assert_eq!(reason(&v), "step_up_pending");
    let late = t0() + time::Duration::minutes(10);
    let v = identify(&f, Some(&waiting), "192.0.2.10", None, late);
    assert_eq!(reason(&v), "second_factor_timeout");

    let mut key = SoftPasskey::new(true);
    let done = ceremony(&f, &mut key, &awaiting(&f), "192.0.2.10", true).await;
    let v = identify(&f, Some(&done), "192.0.2.10", None, late);
    assert!(matches!(v, PersonVerdict::Person(_)), "{v:?}");
}

/// Refused callbacks and device requests (no session needed to send them) are recorded one by
/// one up to 50 per source and 10 minutes; past that they are answered 429 and summarised in one
/// event once the window ends. Other sources are not affected.
#[tokio::test]
async fn refusals_without_a_session_are_summarised_past_fifty_per_source() {
    let f = fixture();
    let get = |path: &str, ip: &str, now: OffsetDateTime| {
        let mut request = auth("callback", "x", ip, "");
        request.method = Method::GET;
        request.path_and_query = path.to_owned();
        request.now = now;
        request
    };
    let callback = "/.tenet/auth/callback?state=forged&code=c";
    for i in 0..50 {
        let request = if i % 2 == 0 {
            get(callback, "203.0.113.9", t0())
        } else {
            auth("device/report", "x", "203.0.113.9", "not.a.report")
        };
        let answer = f.sign_in.serve(request).await;
        assert_eq!(answer.status(), 400, "{:?}", answer.body());
    }
    assert_eq!(recorded(&f).len(), 50);
    for _ in 0..7 {
        let answer = f.sign_in.serve(get(callback, "203.0.113.9", t0())).await;
        assert_eq!(answer.status(), 429, "{:?}", answer.body());
        assert_eq!(answer.headers()[header::RETRY_AFTER], "600");
    }
    let answer = f.sign_in.serve(get(callback, "203.0.113.10", t0())).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(recorded(&f).len(), 51);

    let ended = t0() + time::Duration::minutes(10);
    assert_eq!(f.sign_in.record_refusal_summaries(t0(), false).await, 0);
    assert_eq!(f.sign_in.record_refusal_summaries(ended, false).await, 1);
    let events = recorded(&f);
    let (activity, success, why) = events.last().unwrap();
    assert_eq!((activity.as_str(), *success), ("throttled", false));
    assert!(
        why.contains("7 refused requests from 203.0.113.9 between 2026-12-01T09:00:00Z and 2026-12-01T09:10:00Z"),
        "{why}"
    );
    // The next window starts afresh.
    let answer = f.sign_in.serve(get(callback, "203.0.113.9", ended)).await;
    assert_eq!(answer.status(), 400);
}

/// 55 forged callbacks from each of 300 IPv6 sources, with how many got each answer.
async fn flood_of_callbacks(f: &Fixture, now: OffsetDateTime) -> Vec<(u16, u32)> {
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for source in 0..300 {
        for _ in 0..55 {
            let mut request = auth("callback", "x", &format!("2001:db8:{source:x}::1"), "");
            request.method = Method::GET;
            request.path_and_query = "/.tenet/auth/callback?state=forged&code=c".into();
            request.now = now;
            let status = f.sign_in.serve(request).await.status().as_u16();
            *answers.entry(status).or_default() += 1;
        }
    }
    answers.into_iter().collect()
}

/// The trial's flood: 300 sources each sending 55 bad callbacks wrote 15,000 events. Across
/// all sources at most 1,000 refusal events are recorded per 10 minutes; the rest, and the
/// sources' own summaries that do not fit, are counted into one summary of the window. Each
/// request keeps its answer: its refusal within its source's limit of 50, 429 past it.
#[tokio::test]
async fn refusals_from_many_sources_are_recorded_up_to_a_thousand_then_summarised_once() {
    let throttled = |f: &Fixture| {
        recorded(f)
            .into_iter()
            .filter(|(activity, _, _)| activity == "throttled")
            .map(|(_, _, why)| why)
            .collect::<Vec<_>>()
    };

    // At shutdown, the sources' summaries no longer fit this window: one summary in all.
    let f = fixture();
    let answers = flood_of_callbacks(&f, t0()).await;
    assert_eq!(answers, [(400, 15_000), (429, 1_500)]);
    assert_eq!(recorded(&f).len(), 1_000);
    let shutdown = t0() + time::Duration::minutes(1);
    assert_eq!(f.sign_in.record_refusal_summaries(shutdown, true).await, 1);
    assert_eq!(recorded(&f).len(), 1_001);
    let why = throttled(&f);
    assert!(
        why[0].starts_with(
            "refusals_not_recorded: 15500 refused requests from 300 sources between \
             2026-12-01T09:00:00Z and 2026-12-01T09:01:00Z were not recorded one by one"
        ),
        "{why:?}"
    );

    // Once the window has ended, the sources' summaries are recorded in the next one, and
    // the ended window's refusals past the thousand in one summary.
    let f = fixture();
    flood_of_callbacks(&f, t0()).await;
    let ended = t0() + time::Duration::minutes(10);
    assert_eq!(f.sign_in.record_refusal_summaries(ended, false).await, 301);
    let why = throttled(&f);
    assert_eq!(why.len(), 301);
    assert!(
        why.iter()
            .any(|w| w.contains("14000 refused requests from 280 sources")),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains("5 refused requests from 2001:db8:12b::/64"))
    );
}

/// A JSON body that gives a key twice is refused with 400 naming the key, on every endpoint
/// that reads one: the WebAuthn response (the ceremony is spent and the refusal recorded), the
/// TOTP and recovery codes, and a device enrolment.
#[tokio::test]
async fn bodies_giving_a_key_twice_are_refused() {
    let f = fixture();
    let duplicate = |answer: &http::Response<bytes::Bytes>, key: &str| {
        assert_eq!(answer.status(), 400, "{:?}", answer.body());
        let body: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(body["error"], "duplicate_key");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("\"{key}\"")), "{detail}");
    };
    let new = NewSession {
        user: jane(),
        factors: vec![FactorUse::new("oidc", false, t0())],
        device_id: None,
        ip: "192.0.2.10".parse().unwrap(),
        risk: 0,
    };
    let (token, _) = f.sign_in.sessions().create(new, None, t0()).unwrap();
    let cookie = token.as_str();
    let begin = f
        .sign_in
        .serve(auth("webauthn/register/begin", cookie, "192.0.2.10", "{}"))
        .await;
    assert_eq!(begin.status(), 200);
    let origin = url::Url::parse("https://app.example.test:8443").unwrap();
    let mut key = SoftPasskey::new(true);
    let challenge = serde_json::from_slice(begin.body()).unwrap();
    let answer = serde_json::to_string(&key.do_registration(origin, challenge).unwrap()).unwrap();
    // The same response with its type given twice: serde_json alone would take the last.
    let doubled = format!("{{\"type\":\"public-key\",{}", &answer[1..]);
    let finish = f
        .sign_in
        .serve(auth(
            "webauthn/register/finish",
            cookie,
            "192.0.2.10",
            &doubled,
        ))
        .await;
    duplicate(&finish, "type");
    let (activity, success, why) = recorded(&f).pop().unwrap();
    assert_eq!((activity.as_str(), success), ("mfa_register", false));
    assert!(why.contains("\"type\""), "{why}");
    let spent = f
        .sign_in
        .serve(auth(
            "webauthn/register/finish",
            cookie,
            "192.0.2.10",
            &answer,
        ))
        .await;
    assert_eq!(spent.status(), 400);

    for path in ["totp/verify", "recovery/redeem"] {
        let body = r#"{"code":"000000","code":"123456"}"#;
        let answer = f
            .sign_in
            .serve(auth(path, cookie, "192.0.2.10", body))
            .await;
        duplicate(&answer, "code");
    }
    let body = r#"{"token":"t","csr":"c","token":"u"}"#;
    let answer = f
        .sign_in
        .serve(auth("device/enrol", "x", "192.0.2.10", body))
        .await;
    duplicate(&answer, "token");
}

/// A session signed in without a device gets no device facts from a certificate presented
/// later (it could be anyone's), and a device enrolled for a named owner counts for nobody
/// else.
#[test]
fn only_the_device_bound_at_sign_in_and_owned_by_the_person_counts() {
    let f = fixture();
    let devices = f.sign_in.devices();
    let (_, enrolment) = enrol(&f, "mallory@example.test", "mallory-laptop");
    let client = enrolment.spiffe_id.clone();

    // Jane's session has no device: Mallory's certificate lends it nothing.
    let cookie = session(&f, "192.0.2.10", None);
    let PersonVerdict::Person(p) = identify(&f, Some(&cookie), "192.0.2.10", Some(&client), t0())
    else {
        panic!("not a person");
    };
    assert!(!p.device.enrolled, "{:?}", p.device);
    assert!(p.device.id.is_empty(), "{:?}", p.device);

    // At sign-in, the device counts only for its owner.
    assert_eq!(
        devices.device_for(Some(&client), Some("jane@example.test")),
        None
    );
    assert_eq!(devices.device_for(Some(&client), None), None);
    assert_eq!(
        devices.device_for(Some(&client), Some("Mallory@Example.test")),
        Some(enrolment.device_id)
    );
}

/// The Authentication events the service recorded with `activity`.
fn authentications(f: &Fixture, activity: &str) -> Vec<tenet_event::AuthenticationEvent> {
    f.events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            tenet_event::EventKind::Authentication(a) if a.activity == activity => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// An end by re-evaluation hands the gateway one `session_end` event to record, naming the
/// person and the reason; the next request on the ended session brings none.
#[test]
fn an_end_by_re_evaluation_gives_its_session_end_once() {
    let f = fixture();
    let cookie = session(&f, "192.0.2.10", None);
    f.risk.0.store(90, Ordering::SeqCst);
    let PersonVerdict::Ended { name, reason, end } =
        identify(&f, Some(&cookie), "192.0.2.10", None, t0())
    else {
        panic!("not ended");
    };
    assert_eq!(
        (name.as_str(), reason.as_str()),
        ("user:corp:u-42", "risk_end")
    );
    let end = end.expect("the ending request carries the session end");
    assert_eq!(end.activity, "session_end");
    assert_eq!(end.user, "user:corp:u-42");
    assert_eq!(end.provider.as_deref(), Some("corp"));
    assert!(end.reason.starts_with("risk_end: "), "{}", end.reason);
    assert_eq!(end.source_ip, "192.0.2.10".parse::<IpAddr>().unwrap());

    let v = identify(&f, Some(&cookie), "192.0.2.10", None, t0());
    assert!(matches!(v, PersonVerdict::SignInRequired { .. }), "{v:?}");
}

/// Revoking a device ends its sessions at once (gone from the list, each recorded as a
/// `session_end`), and a later request with one is refused as `device_revoked`, naming the
/// person, where before the session stayed listed and was refused as `device_mismatch`.
#[tokio::test]
async fn revoking_a_device_ends_its_sessions() {
    let f = fixture();
    let (_, enrolment) = enrol(&f, "jane@example.test", "laptop");
    let id = enrolment.device_id.to_string();
    let client = enrolment.spiffe_id.clone();
    let cookie = session(&f, "192.0.2.10", Some(id.clone()));
    let other = session(&f, "192.0.2.10", None);

    let ended = f.sign_in.revoke_device(enrolment.device_id, t0()).await;
    assert_eq!(ended.unwrap(), 1);
    assert_eq!(f.sign_in.sessions().len(), 1);
    let ends = authentications(&f, "session_end");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].user, "user:corp:u-42");
    assert_eq!(ends[0].device.as_deref(), Some(id.as_str()));
    assert!(
        ends[0].reason.starts_with("device_revoked"),
        "{}",
        ends[0].reason
    );

    let later = t0() + time::Duration::minutes(1);
    for presented in [Some(&client), None] {
        let v = identify(&f, Some(&cookie), "192.0.2.10", presented, later);
        let PersonVerdict::Ended { name, reason, end } = v else {
            panic!("not refused as ended: {v:?}");
        };
        assert_eq!(
            (name.as_str(), reason.as_str()),
            ("user:corp:u-42", "device_revoked")
        );
        assert!(end.is_none(), "the end was recorded at the revocation");
    }
    let v = identify(&f, Some(&other), "192.0.2.10", None, later);
    assert!(matches!(v, PersonVerdict::Person(_)), "{v:?}");
}

/// Cutting a person's sessions (the CLI, a playbook, the risk cut-off) records each end as a
/// `session_end` without the caller waiting for the ledger.
#[tokio::test]
async fn cut_sessions_are_recorded_as_session_ends() {
    let f = fixture();
    session(&f, "192.0.2.10", None);
    session(&f, "192.0.2.11", None);
    assert_eq!(f.sign_in.revoke_person("jane@example.test", t0()), 2);
    let mut ends = Vec::new();
    for _ in 0..100 {
        ends = authentications(&f, "session_end");
        if ends.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ends.len(), 2);
    assert!(
        ends.iter()
            .all(|e| e.user == "user:corp:u-42" && e.reason.starts_with("revoked"))
    );
    assert_eq!(f.sign_in.revoke_person("jane@example.test", t0()), 0);
}
