//! Posture reports over the sign-in service: a device may send a few per window; more are
//! answered 429 and neither kept nor recorded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method, header};
use tenet_device::{DeviceKey, EnrolmentRequest, PostureReport, PostureRequirements};
use tenet_event::{Event, EventKind, EventSink, RecordFuture};
use tenet_gateway::{AuthRequest, PeopleGate, RiskSource};
use tenet_identity::{CertificateAuthority, TrustDomain, X509Svid};
use tenet_people::{Devices, REPORT_WINDOW, REPORTS_PER_DEVICE, SignIn, SignInParts};
use tenet_session::{SessionLimits, SessionStore};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

fn t0() -> OffsetDateTime {
    datetime!(2026-12-01 09:00 UTC)
}

#[derive(Default)]
struct Recorded(Mutex<Vec<Event>>);

impl EventSink for Recorded {
    fn record(&self, event: Event) -> RecordFuture {
        self.0.lock().unwrap().push(event);
        Box::pin(async { Ok(()) })
    }
}

struct NoRisk;

impl RiskSource for NoRisk {
    fn risk(&self, _principal: &str, _now: OffsetDateTime) -> u8 {
        0
    }
}

fn service(dir: &std::path::Path, events: Arc<Recorded>) -> (SignIn, Arc<CertificateAuthority>) {
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
    let devices = Devices::open(dir, &ca, requirements, Duration::from_secs(86_400)).unwrap();
    let sign_in = SignIn::new(SignInParts {
        providers: Vec::new(),
        relying_party,
        factors: tenet_mfa::FactorStore::open(dir.join("factors.json")).unwrap(),
        sessions: SessionStore::in_memory(SessionLimits::default()).unwrap(),
        rules: tenet_session::Rules::default(),
        devices: Arc::new(devices),
        ca: ca.clone(),
        risk: Arc::new(NoRisk),
        sink: events,
        require_webauthn: true,
        admin_groups: Vec::new(),
        bearer: None,
        sign_ins_per_source: 30,
    });
    (sign_in, ca)
}

fn enrol(sign_in: &SignIn, ca: &CertificateAuthority) -> (Uuid, X509Svid) {
    let devices = sign_in.devices();
    let token = devices
        .create_token(None, Duration::from_secs(600), t0())
        .unwrap();
    let key = DeviceKey::generate().unwrap();
    let request = EnrolmentRequest {
        token: token.token,
        csr: key.csr_pem().unwrap(),
        name: Some("laptop".into()),
        hardware_serial: None,
    };
    let enrolment = devices.enrol(ca, &request, t0()).unwrap();
    (enrolment.device_id, key.into_svid(enrolment.chain).unwrap())
}

fn report(device_id: Uuid, svid: &X509Svid, at: OffsetDateTime, encrypted: bool) -> String {
    let report = PostureReport {
        device_id,
        collected_at: at,
        os: Some("debian".into()),
        os_version: Some("12".into()),
        disk_encrypted: Some(encrypted),
        screen_lock: None,
        firewall: Some(true),
        endpoint_protection: None,
        agent_version: "test".into(),
        sequence: u64::try_from(at.unix_timestamp()).unwrap(),
    };
    tenet_device::sign_report(&report, svid).unwrap()
}

fn post(jws: &str, now: OffsetDateTime) -> AuthRequest {
    AuthRequest {
        method: Method::POST,
        host: "app.example.test".into(),
        port: 8443,
        path_and_query: "/.tenet/auth/device/report".into(),
        headers: HeaderMap::new(),
        body: bytes::Bytes::from(jws.to_owned()),
        source_ip: "192.0.2.10".parse().unwrap(),
        client_id: None,
        request_id: "r".into(),
        now,
    }
}

fn report_events(events: &Recorded) -> usize {
    let events = events.0.lock().unwrap();
    events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::Authentication(a) if a.activity == "device_report"),
        )
        .count()
}

#[tokio::test]
async fn a_device_sending_reports_too_fast_is_answered_429_and_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let events = Arc::new(Recorded::default());
    let (sign_in, ca) = service(dir.path(), events.clone());
    let (device, svid) = enrol(&sign_in, &ca);
    let compliant = |now| {
        let state = sign_in.devices().state(Some(device), now);
        state.facts.compliant
    };

    // Within the limit every valid report is kept and recorded.
    let limit = i64::from(REPORTS_PER_DEVICE);
    for i in 0..limit {
        let at = t0() + time::Duration::seconds(i);
        let answer = sign_in
            .serve(post(&report(device, &svid, at, true), at))
            .await;
        assert_eq!(answer.status(), 200, "{:?}", answer.body());
    }
    assert_eq!(report_events(&events), REPORTS_PER_DEVICE as usize);
    assert!(compliant(t0() + time::Duration::seconds(limit)));

    // Past it, valid reports are answered 429 until the window ends: not kept (the disk is
    // still encrypted as far as Tenet knows), not recorded.
    for i in limit..limit + 20 {
        let at = t0() + time::Duration::seconds(i);
        let answer = sign_in
            .serve(post(&report(device, &svid, at, false), at))
            .await;
        assert_eq!(answer.status(), 429, "{:?}", answer.body());
        let window = i64::try_from(REPORT_WINDOW.as_secs()).unwrap();
        assert_eq!(
            answer.headers()[header::RETRY_AFTER],
            (window - i).to_string().as_str()
        );
        let body = String::from_utf8_lossy(answer.body());
        assert!(body.contains("too_many_reports"), "{body}");
    }
    assert_eq!(report_events(&events), REPORTS_PER_DEVICE as usize);
    assert!(compliant(t0() + time::Duration::seconds(limit + 20)));

    // A new window takes the device's reports again.
    let at = t0() + time::Duration::try_from(REPORT_WINDOW).unwrap();
    let answer = sign_in
        .serve(post(&report(device, &svid, at, false), at))
        .await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    assert!(!compliant(at));
    assert_eq!(report_events(&events), REPORTS_PER_DEVICE as usize + 1);
}
