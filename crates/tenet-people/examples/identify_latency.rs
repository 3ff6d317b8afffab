//! Latency of the per-request people check: `SignIn::identify` (cookie parsing, session
//! lookup with timeouts and device binding, device posture facts, re-evaluation, touch) for
//! a signed-in person on an enrolled, compliant device, next to the Cedar decision the
//! gateway makes for the same request anyway. Prints p50, p99 and p99.9 of each.
//!
//!   cargo run --release -p tenet-people --example identify_latency [ITERATIONS]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, header};
use tenet_device::{DeviceKey, EnrolmentRequest, PostureReport, PostureRequirements};
use tenet_event::{Event, EventSink, RecordFuture};
use tenet_gateway::{NoRisk, PeopleGate, PersonRequest, PersonVerdict};
use tenet_identity::{CertificateAuthority, TrustDomain};
use tenet_people::{Devices, SignIn, SignInParts};
use tenet_policy::{AccessRequest, PolicySnapshot, RequestContext, RouteResource, TlsFacts};
use tenet_session::{FactorUse, NewSession, SessionLimits, SessionStore, UserIdentity};
use time::OffsetDateTime;

struct Discard(Mutex<usize>);

impl EventSink for Discard {
    fn record(&self, _event: Event) -> RecordFuture {
        if let Ok(mut n) = self.0.lock() {
            *n += 1;
        }
        Box::pin(async { Ok(()) })
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name}: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs ({} samples)",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().expect("ITERATIONS must be a number"));
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let td = TrustDomain::parse("example.test").unwrap();
    let ca = Arc::new(CertificateAuthority::generate(&td, now).unwrap());
    let requirements = PostureRequirements {
        max_age_secs: Some(3600),
        require_disk_encryption: true,
        require_firewall: true,
        ..PostureRequirements::default()
    };
    let devices = Arc::new(
        Devices::open(dir.path(), &ca, requirements, Duration::from_secs(86_400)).unwrap(),
    );
    let sign_in = SignIn::new(SignInParts {
        providers: Vec::new(),
        relying_party: tenet_mfa::RelyingParty::new(&tenet_mfa::RelyingPartyConfig {
            rp_id: "example.test".into(),
            rp_name: "Example".into(),
            origins: vec!["https://app.example.test:8443".into()],
            top_origins: Vec::new(),
            cross_origin_without_top_origin: false,
        })
        .unwrap(),
        factors: tenet_mfa::FactorStore::open(dir.path().join("factors.json")).unwrap(),
        sessions: SessionStore::in_memory(SessionLimits::default()).unwrap(),
        rules: tenet_session::Rules::default(),
        devices: devices.clone(),
        ca: ca.clone(),
        risk: Arc::new(NoRisk),
        sink: Arc::new(Discard(Mutex::new(0))),
        require_webauthn: true,
        admin_groups: Vec::new(),
        bearer: None,
        sign_ins_per_source: 30,
    });

    // An enrolled device with a fresh, compliant posture report.
    let token = devices
        .create_token(None, Duration::from_secs(600), now)
        .unwrap();
    let key = DeviceKey::generate().unwrap();
    let request = EnrolmentRequest {
        token: token.token,
        csr: key.csr_pem().unwrap(),
        name: None,
        hardware_serial: None,
    };
    let enrolment = devices.enrol(&ca, &request, now).unwrap();
    let svid = key.into_svid(enrolment.chain.clone()).unwrap();
    let report = PostureReport {
        device_id: enrolment.device_id,
        collected_at: now,
        os: Some("debian".into()),
        os_version: Some("12".into()),
        disk_encrypted: Some(true),
        screen_lock: Some(true),
        firewall: Some(true),
        endpoint_protection: None,
        agent_version: "bench".into(),
        sequence: 1,
    };
    devices
        .report(&tenet_device::sign_report(&report, &svid).unwrap(), now)
        .unwrap();

    // 10,000 other sessions, then the measured one with a passkey, bound to the device.
    let person = |subject: &str| {
        let mut user = UserIdentity::new("https://idp.example.test", subject)
            .with_email(format!("{subject}@example.test"));
        user.groups = vec!["engineering".into()];
        user.attributes.insert("provider".into(), "corp".into());
        user.attributes
            .insert("device_compliant_at_login".into(), "true".into());
        user
    };
    for i in 0..10_000 {
        let new = NewSession {
            user: person(&format!("other-{i}")),
            factors: vec![FactorUse::new("oidc", false, now)],
            device_id: None,
            ip: "192.0.2.10".parse().unwrap(),
            risk: 0,
        };
        sign_in.sessions().create(new, None, now).unwrap();
    }
    let new = NewSession {
        user: person("jane"),
        factors: vec![FactorUse::new("oidc", false, now)],
        device_id: Some(enrolment.device_id.to_string()),
        ip: "192.0.2.10".parse().unwrap(),
        risk: 0,
    };
    let (token, _) = sign_in.sessions().create(new, None, now).unwrap();
    let passkey = FactorUse::new("webauthn", true, now);
    let (token, _) = sign_in
        .sessions()
        .add_factor(token.as_str(), passkey, now)
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!(
            "_ga=GA1.2.3; __Host-tenet_session={}",
            token.as_str()
        ))
        .unwrap(),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
    let client = enrolment.spiffe_id.clone();
    let identify = || {
        sign_in.identify(&PersonRequest {
            method: &Method::GET,
            host: "app.example.test",
            port: 8443,
            path_and_query: "/wiki/start",
            headers: &headers,
            source_ip: "192.0.2.10".parse().unwrap(),
            client_id: Some(&client),
            now: OffsetDateTime::now_utc(),
        })
    };
    let PersonVerdict::Person(person) = identify() else {
        panic!("the measured session is not allowed");
    };
    assert!(person.device.compliant, "the device should be compliant");

    // The Cedar decision for the same request, as the gateway makes it after identify.
    let policies = PolicySnapshot::from_sources(&[(
        "people.cedar".to_owned(),
        r#"@id("eng") permit (principal in Tenet::Group::"engineering", action, resource)
           when { context.session.phishing_resistant && context.device.compliant };"#
            .to_owned(),
    )])
    .unwrap();
    let access = AccessRequest {
        principal: person.principal.clone(),
        action: "GET".into(),
        resource: RouteResource {
            route: "wiki".into(),
            service: "wiki".into(),
            host: "app.example.test".into(),
            path: "/wiki/start".into(),
        },
        context: RequestContext {
            source_ip: "192.0.2.10".parse().unwrap(),
            tls: TlsFacts::default(),
            unix_time: now.unix_timestamp(),
            protocol: "HTTP/1.1".into(),
            risk: 0,
            session: person.session.clone(),
            device: person.device.clone(),
        },
    };
    assert!(policies.authorize(&access).is_allowed());

    for _ in 0..10_000 {
        std::hint::black_box(identify());
        std::hint::black_box(policies.authorize(&access));
    }
    let mut people = Vec::with_capacity(iterations);
    let mut cedar = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        std::hint::black_box(identify());
        people.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(policies.authorize(&access));
        cedar.push(t.elapsed());
    }
    percentiles("identify (session + posture + re-evaluation)", people);
    percentiles("cedar decision (same request)", cedar);
}
