//! Policy decision latency at 10, 100, 1,000 and 10,000 policies: Tenet's full path (request
//! mapping + scope index + Cedar) beside bare Cedar over the same set with a prebuilt request.
//!
//! Run: `cargo bench -p tenet-policy --bench decide` (add `-- --quick` for a short run).
//! Prints p50/p99/p99.9 per configuration; each sample is one decision timed on its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use tenet_policy::{
    AccessRequest, PolicySnapshot, Principal, RequestContext, RouteResource, TlsFacts,
};

// The allocator the `tenet` binary uses: Cedar's evaluator allocates heavily per policy.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TD: &str = "example.org";

fn policies(n: usize) -> String {
    let mut text = String::new();
    // A few deployment-wide guards without a scope, as real sets have.
    for (i, prefix) in ["/admin", "/internal", "/debug", "/metrics", "/.git"]
        .iter()
        .enumerate()
    {
        text.push_str(&format!(
            "@id(\"guard-{i}\")\nforbid (principal, action, resource) when {{ resource.path like \"{prefix}*\" }};\n"
        ));
    }
    for i in 0..n.saturating_sub(5) {
        text.push_str(&format!(
            "@id(\"p{i}\")\npermit (principal == Tenet::Workload::\"spiffe://{TD}/ns/ns{}/sa/app{i}\", \
             action in Tenet::Action::\"read\", resource in Tenet::Service::\"svc{}\") \
             when {{ resource.path like \"/api/v1/items*\" && context.tls.mtls }};\n",
            i % 50,
            i % 100
        ));
    }
    text
}

fn request(n: usize) -> AccessRequest {
    let i = n.saturating_sub(5) / 2;
    AccessRequest {
        principal: Principal::Workload {
            spiffe_id: format!("spiffe://{TD}/ns/ns{}/sa/app{i}", i % 50),
            trust_domain: TD.into(),
            path: format!("/ns/ns{}/sa/app{i}", i % 50),
        },
        action: "GET".into(),
        resource: RouteResource {
            route: format!("svc{}-route", i % 100),
            service: format!("svc{}", i % 100),
            host: "svc.example.org".into(),
            path: "/api/v1/items/42".into(),
        },
        context: RequestContext {
            source_ip: "10.1.2.3".parse().unwrap(),
            tls: TlsFacts {
                version: "TLSv1.3".into(),
                sni: "svc.example.org".into(),
                alpn: "h2".into(),
                mtls: true,
                client_serial: "4f2a".into(),
            },
            unix_time: 1_796_000_000,
            protocol: "HTTP/2".into(),
            risk: 0,
            session: Default::default(),
            device: Default::default(),
        },
    }
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    n: usize,
}

fn measure(budget: Duration, mut f: impl FnMut()) -> Percentiles {
    let warm = Instant::now();
    while warm.elapsed() < budget / 5 {
        f();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget && samples.len() < 2_000_000 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        n: samples.len(),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_millis(600)
    } else {
        Duration::from_secs(3)
    };
    println!(
        "{:>7} | {:>30} | {:>30}",
        "", "tenet (map + index + cedar)", "bare cedar (prebuilt request)"
    );
    println!(
        "{:>7} | {:>9} {:>9} {:>10} | {:>9} {:>9} {:>10}",
        "policies", "p50", "p99", "p99.9", "p50", "p99", "p99.9"
    );
    for n in [10, 100, 1_000, 10_000] {
        let text = policies(n);
        let snapshot =
            PolicySnapshot::from_sources(&[("bench.cedar".into(), text.clone())]).unwrap();
        let req = request(n);
        assert!(
            snapshot.authorize(&req).is_allowed(),
            "the benchmark request must be allowed"
        );
        let tenet = measure(budget, || {
            black_box(snapshot.authorize(black_box(&req)));
        });

        // Peer: Cedar alone, the request and entities built once outside the loop.
        let set = PolicySet::from_str(&text).unwrap();
        let i = n.saturating_sub(5) / 2;
        let principal = EntityUid::from_str(&format!(
            "Tenet::Workload::\"spiffe://{TD}/ns/ns{}/sa/app{i}\"",
            i % 50
        ))
        .unwrap();
        let action = EntityUid::from_str("Tenet::Action::\"GET\"").unwrap();
        let resource =
            EntityUid::from_str(&format!("Tenet::Route::\"svc{}-route\"", i % 100)).unwrap();
        let entities = Entities::from_json_value(
            serde_json::json!([
                {"uid": {"type": "Tenet::Workload", "id": format!("spiffe://{TD}/ns/ns{}/sa/app{i}", i % 50)},
                 "attrs": {"trust_domain": TD, "path": format!("/ns/ns{}/sa/app{i}", i % 50)},
                 "parents": [{"type": "Tenet::TrustDomain", "id": TD}]},
                {"uid": {"type": "Tenet::Route", "id": format!("svc{}-route", i % 100)},
                 "attrs": {"service": format!("svc{}", i % 100), "host": "svc.example.org",
                           "path": "/api/v1/items/42"},
                 "parents": [{"type": "Tenet::Service", "id": format!("svc{}", i % 100)}]},
                {"uid": {"type": "Tenet::Action", "id": "GET"}, "attrs": {},
                 "parents": [{"type": "Tenet::Action", "id": "read"}]}
            ]),
            None,
        )
        .unwrap();
        let context =
            Context::from_json_value(serde_json::json!({"tls": {"mtls": true}}), None).unwrap();
        let cedar_req = Request::new(principal, action, resource, context, None).unwrap();
        let authorizer = Authorizer::new();
        let bare = measure(budget, || {
            black_box(authorizer.is_authorized(black_box(&cedar_req), &set, &entities));
        });
        let us = |d: Duration| format!("{:.1}µs", d.as_secs_f64() * 1e6);
        println!(
            "{n:>7} | {:>9} {:>9} {:>10} | {:>9} {:>9} {:>10}   (samples {} / {})",
            us(tenet.p50),
            us(tenet.p99),
            us(tenet.p999),
            us(bare.p50),
            us(bare.p99),
            us(bare.p999),
            tenet.n,
            bare.n
        );
    }
}
