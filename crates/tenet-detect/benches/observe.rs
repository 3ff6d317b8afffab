//! Cost of `Analytics::observe` per gateway decision.
//!
//! `cargo bench -p tenet-detect --bench observe`
//!
//! - `steady`: 5,000 established principals, each using three of 50 services from its own
//!   /24, one request in ten denied: the common case.
//! - `flood`: every event from a principal and address never seen, with the tables full:
//!   the worst case of insertion and eviction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use tenet_detect::{Analytics, AnalyticsConfig};
use tenet_event::{AccessEvent, Disposition, Event, EventKind};
use time::{Duration, OffsetDateTime, macros::datetime};

const START: OffsetDateTime = datetime!(2026-03-02 09:00 UTC);
const PRINCIPALS: u32 = 5_000;

fn request(principal: u32, n: u32, time: OffsetDateTime) -> Event {
    let service = format!("svc-{}", (principal * 7 + n % 3) % 50);
    let denied = n.is_multiple_of(10);
    Event::new(
        time,
        EventKind::Access(AccessEvent {
            request_id: format!("r{n}"),
            listener: "main".into(),
            principal: format!("spiffe://bench.example/workload-{principal}"),
            action: "GET".into(),
            route: Some(service.clone()),
            service: Some(service.clone()),
            host: format!("{service}.bench.example"),
            path: "/items".into(),
            query: None,
            source_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (principal << 8) | (n % 200))),
            source_port: 40_000,
            protocol: "HTTP/1.1".into(),
            tls_version: "TLSv1.3".into(),
            client_serial: Some(format!("{principal:08x}")),
            disposition: if denied {
                Disposition::Blocked
            } else {
                Disposition::Allowed
            },
            status: denied.then_some(403),
            reasons: if denied {
                vec![]
            } else {
                vec![format!("allow-{service}")]
            },
            errors: vec![],
            near_misses: vec![],
            policy_hash: "3f5a9c".into(),
            decision_us: 4,
        }),
    )
}

fn steady(c: &mut Criterion) {
    let mut config = AnalyticsConfig::default();
    config.learning.period_secs = 3600;
    config.learning.min_events = 20;
    let mut analytics = Analytics::new(config).unwrap();

    // Two hours of learning: 30 requests per principal.
    let mut now = START;
    for n in 0..30 {
        for p in 0..PRINCIPALS {
            now += Duration::milliseconds(48);
            analytics.observe(&request(p, n, now), now);
        }
    }
    assert_eq!(analytics.tracked().principals, PRINCIPALS as usize);

    let events: Vec<Event> = (0..100_000u32)
        .map(|i| request(i % PRINCIPALS, 30 + i / PRINCIPALS, now))
        .collect();
    let mut i = 0usize;
    c.bench_function("observe/steady", |b| {
        b.iter(|| {
            now += Duration::milliseconds(1);
            let alerts = analytics.observe(&events[i % events.len()], now);
            i += 1;
            black_box(alerts)
        })
    });
}

fn flood(c: &mut Criterion) {
    let mut config = AnalyticsConfig::default();
    config.limits.max_principals = 10_000;
    config.limits.max_sources = 10_000;
    let mut analytics = Analytics::new(config).unwrap();
    let events: Vec<Event> = (0..200_000u32)
        .map(|i| request(PRINCIPALS + i, i, START))
        .collect();
    let mut now = START;
    for e in &events[..20_000] {
        analytics.observe(e, now);
    }
    let mut i = 20_000usize;
    c.bench_function("observe/flood", |b| {
        b.iter(|| {
            now += Duration::milliseconds(1);
            let alerts = analytics.observe(&events[i % events.len()], now);
            i += 1;
            black_box(alerts)
        })
    });
}

criterion_group!(benches, steady, flood);
criterion_main!(benches);
