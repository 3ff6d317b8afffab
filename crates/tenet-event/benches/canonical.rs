//! Cost of an event's canonical bytes, per event: the direct writers
//! (`Event::to_canonical_json`) against the general path (`to_ocsf`, then every object's
//! keys sorted; `Event::canonical_json_via_value`).
//!
//! `cargo bench -p tenet-event --bench canonical`
//!
//! - `access_allowed`: a forwarded request with a route, a client certificate and one
//!   policy as the reason: the common case.
//! - `access_denied`: a default deny with a status and no route.
//! - `rejection_http`: a request refused at the HTTP layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tenet_event::{AccessEvent, Disposition, Event, EventKind, RejectionEvent};
use time::macros::datetime;

fn access(allowed: bool) -> Event {
    Event::new(
        datetime!(2026-03-02 09:00:00.123 UTC),
        EventKind::Access(AccessEvent {
            request_id: "0195a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b".into(),
            listener: "main".into(),
            principal: "spiffe://bench.example/ns/shop/sa/frontend".into(),
            action: "GET".into(),
            route: allowed.then(|| "catalog".into()),
            service: allowed.then(|| "catalog".into()),
            host: "catalog.bench.example".into(),
            path: "/api/v1/products/12345/reviews".into(),
            query: None,
            source_ip: "10.20.30.40".parse().unwrap(),
            source_port: 51_234,
            protocol: "HTTP/1.1".into(),
            tls_version: "TLSv1.3".into(),
            client_serial: allowed.then(|| "3f2a9c0e11d4b7a8".into()),
            disposition: if allowed {
                Disposition::Allowed
            } else {
                Disposition::Blocked
            },
            status: (!allowed).then_some(403),
            reasons: if allowed {
                vec!["frontend-reads-catalog".into()]
            } else {
                vec![]
            },
            errors: vec![],
            near_misses: vec![],
            policy_hash: "9b1f0c6d2e7a4b8c5d3e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c".into(),
            decision_us: 42,
        }),
    )
}

fn rejection() -> Event {
    Event::new(
        datetime!(2026-03-02 09:00:00.456 UTC),
        EventKind::Rejection(RejectionEvent {
            request_id: Some("0195a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5c".into()),
            listener: "main".into(),
            source_ip: "2001:db8::42".parse().unwrap(),
            source_port: 443,
            stage: "http".into(),
            kind: "encoded_slash".into(),
            detail: "the path contains an encoded slash (%2F)".into(),
            principal: Some("spiffe://bench.example/ns/shop/sa/frontend".into()),
            status: Some(400),
        }),
    )
}

fn bench(c: &mut Criterion) {
    for (name, event) in [
        ("access_allowed", access(true)),
        ("access_denied", access(false)),
        ("rejection_http", rejection()),
    ] {
        assert_eq!(event.to_canonical_json(), event.canonical_json_via_value());
        let mut group = c.benchmark_group(name);
        group.bench_function("via_value", |b| {
            b.iter(|| black_box(&event).canonical_json_via_value());
        });
        group.bench_function("direct", |b| {
            b.iter(|| black_box(&event).to_canonical_json());
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
