//! Builders for synthetic event streams made of tenet-event's real types.

use std::net::IpAddr;

use tenet_detect::{Alert, Analytics, AnalyticsConfig};
use tenet_event::{
    AccessEvent, AdminEvent, Disposition, Event, EventKind, PolicyEvent, RejectionEvent,
};
use time::{Duration, OffsetDateTime, macros::datetime};

/// Monday 2026-03-02 00:00 UTC: the start of every stream.
pub const T0: OffsetDateTime = datetime!(2026-03-02 00:00 UTC);

/// A configuration for tests: one day of learning and ten events.
pub fn config() -> AnalyticsConfig {
    let mut c = AnalyticsConfig::default();
    c.learning.period_secs = 24 * 3600;
    c.learning.min_events = 10;
    c
}

pub fn analytics() -> Analytics {
    Analytics::new(config()).unwrap()
}

pub fn spiffe(name: &str) -> String {
    format!("spiffe://example.org/{name}")
}

/// A request at the gateway, allowed by `allow-<service>` under policy set `h1` unless
/// changed.
#[derive(Clone)]
pub struct Req {
    pub event: AccessEvent,
}

impl Req {
    pub fn new(principal: &str, service: &str) -> Self {
        Self {
            event: AccessEvent {
                request_id: "r".into(),
                listener: "main".into(),
                principal: principal.into(),
                action: "GET".into(),
                route: Some(service.into()),
                service: Some(service.into()),
                host: format!("{service}.example.test"),
                path: "/".into(),
                query: None,
                source_ip: "10.0.0.10".parse().unwrap(),
                source_port: 40000,
                protocol: "HTTP/1.1".into(),
                tls_version: "TLSv1.3".into(),
                client_serial: Some("0a1b".into()),
                disposition: Disposition::Allowed,
                status: None,
                reasons: vec![format!("allow-{service}")],
                errors: vec![],
                near_misses: vec![],
                policy_hash: "h1".into(),
                decision_us: 5,
            },
        }
    }

    pub fn route(mut self, route: &str) -> Self {
        self.event.route = Some(route.into());
        self
    }

    pub fn method(mut self, method: &str) -> Self {
        self.event.action = method.into();
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.event.path = path.into();
        self
    }

    pub fn from(mut self, ip: &str) -> Self {
        self.event.source_ip = ip.parse().unwrap();
        self
    }

    pub fn serial(mut self, serial: Option<&str>) -> Self {
        self.event.client_serial = serial.map(str::to_string);
        self
    }

    pub fn policy(mut self, hash: &str, reasons: &[&str]) -> Self {
        self.event.policy_hash = hash.into();
        self.event.reasons = reasons.iter().map(|r| r.to_string()).collect();
        self
    }

    pub fn denied(mut self) -> Self {
        self.event.disposition = Disposition::Blocked;
        self.event.status = Some(403);
        self.event.reasons = vec![];
        self
    }

    pub fn no_route(mut self) -> Self {
        self.event.disposition = Disposition::Blocked;
        self.event.status = Some(404);
        self.event.route = None;
        self.event.service = None;
        self.event.reasons = vec![];
        self.event.errors = vec!["no route".into()];
        self
    }

    pub fn at(&self, time: OffsetDateTime) -> Event {
        Event::new(time, EventKind::Access(self.event.clone()))
    }
}

pub fn tls_refusal(ip: &str, kind: &str, time: OffsetDateTime) -> Event {
    connection_refusal(ip, "tls", kind, None, time)
}

/// An HTTP/2 connection the gateway ended because its client broke the protocol.
pub fn http2_violation(
    ip: &str,
    principal: Option<&str>,
    kind: &str,
    time: OffsetDateTime,
) -> Event {
    connection_refusal(ip, "http2", kind, principal, time)
}

/// A connection refused at `stage`, before any request of it was answered.
fn connection_refusal(
    ip: &str,
    stage: &str,
    kind: &str,
    principal: Option<&str>,
    time: OffsetDateTime,
) -> Event {
    Event::new(
        time,
        EventKind::Rejection(RejectionEvent {
            request_id: None,
            listener: "main".into(),
            source_ip: ip.parse::<IpAddr>().unwrap(),
            source_port: 50000,
            stage: stage.into(),
            kind: kind.into(),
            detail: format!("{stage} refused: {kind}"),
            principal: principal.map(String::from),
            status: None,
        }),
    )
}

pub fn http_refusal(ip: &str, kind: &str, time: OffsetDateTime) -> Event {
    Event::new(
        time,
        EventKind::Rejection(RejectionEvent {
            request_id: Some("r".into()),
            listener: "main".into(),
            source_ip: ip.parse::<IpAddr>().unwrap(),
            source_port: 50000,
            stage: "http".into(),
            kind: kind.into(),
            detail: kind.into(),
            principal: None,
            status: Some(400),
        }),
    )
}

pub fn policy_loaded(hash: &str, count: usize, time: OffsetDateTime) -> Event {
    Event::new(
        time,
        EventKind::Policy(PolicyEvent {
            outcome: "reloaded".into(),
            active_hash: hash.into(),
            candidate_hash: None,
            policy_count: count,
            errors: vec![],
        }),
    )
}

pub fn admin(actor: &str, operation: &str, success: bool, time: OffsetDateTime) -> Event {
    Event::new(
        time,
        EventKind::Admin(AdminEvent {
            actor: actor.into(),
            operation: operation.into(),
            success,
            detail: if success {
                "ok"
            } else {
                "forbidden: not the admin credential"
            }
            .into(),
        }),
    )
}

/// Observe `event` at its own time.
pub fn feed(a: &mut Analytics, event: &Event) -> Vec<Alert> {
    a.observe(event, event.time)
}

/// Two working days (09:00–17:00 UTC) of `principal` using `services` from 10.0.0.0/24, one
/// request per service every ten minutes. Returns the alerts (expected: none) and the time
/// after the learning period, on the next working day at 10:00.
pub fn learn(
    a: &mut Analytics,
    principal: &str,
    services: &[&str],
) -> (Vec<Alert>, OffsetDateTime) {
    let mut alerts = Vec::new();
    for day in 0..2 {
        for minute in (9 * 60..17 * 60).step_by(10) {
            for (i, service) in services.iter().enumerate() {
                let t = T0
                    + Duration::days(day)
                    + Duration::minutes(minute)
                    + Duration::seconds(i as i64);
                alerts.extend(feed(a, &Req::new(principal, service).at(t)));
            }
        }
    }
    (alerts, T0 + Duration::days(2) + Duration::hours(10))
}

/// The alerts of `rule`.
pub fn of<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}
