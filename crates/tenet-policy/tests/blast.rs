//! Blast radius: direct reach, reach through a service acting with its own identity, and the
//! services whose identity is unknown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use tenet_policy::{Assumptions, PolicySnapshot, RouteInfo, blast_radius};

const POLICIES: &str = r#"
@id("frontend-reads-catalog")
permit (principal == Tenet::Workload::"spiffe://example.org/frontend",
        action in Tenet::Action::"read", resource in Tenet::Service::"catalog");
@id("catalog-charges")
permit (principal == Tenet::Workload::"spiffe://example.org/catalog",
        action == Tenet::Action::"POST", resource in Tenet::Service::"payments");
@id("payments-writes-ledger")
permit (principal == Tenet::Workload::"spiffe://example.org/payments",
        action in Tenet::Action::"write", resource in Tenet::Service::"ledger");
@id("frontend-reads-reports")
permit (principal == Tenet::Workload::"spiffe://example.org/frontend",
        action == Tenet::Action::"GET", resource in Tenet::Service::"reports");
@id("no-admin")
forbid (principal, action, resource) when { resource.path like "/admin*" };
"#;

fn route(name: &str, service: &str, prefix: &str, identity: Option<&str>) -> RouteInfo {
    RouteInfo {
        route: name.into(),
        service: service.into(),
        host: format!("{service}.example.org"),
        path_prefix: prefix.into(),
        service_identity: identity.map(str::to_owned),
    }
}

#[test]
fn reach_follows_service_identities() {
    let snapshot = PolicySnapshot::from_sources(&[("p.cedar".into(), POLICIES.into())]).unwrap();
    let routes = vec![
        route(
            "catalog",
            "catalog",
            "/",
            Some("spiffe://example.org/catalog"),
        ),
        route(
            "payments",
            "payments",
            "/",
            Some("spiffe://example.org/payments"),
        ),
        route("ledger", "ledger", "/", None),
        route("ledger-admin", "ledger", "/admin", None),
        route("reports", "reports", "/", None),
    ];
    let assumptions = Assumptions {
        source_ip: "10.0.0.1".parse().unwrap(),
        unix_time: 1_800_000_000,
        risk: 0,
        paths: vec![],
    };
    let b = blast_radius(
        &snapshot,
        "spiffe://example.org/frontend",
        &routes,
        &assumptions,
        8,
    );
    let got: Vec<(usize, &str, &str, String)> = b
        .reach
        .iter()
        .map(|r| {
            (
                r.depth,
                r.caller.as_str(),
                r.route.as_str(),
                r.methods.join(" "),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1,
                "spiffe://example.org/frontend",
                "catalog",
                "GET HEAD OPTIONS".to_owned()
            ),
            (
                1,
                "spiffe://example.org/frontend",
                "reports",
                "GET".to_owned()
            ),
            (
                2,
                "spiffe://example.org/catalog",
                "payments",
                "POST".to_owned()
            ),
            (
                3,
                "spiffe://example.org/payments",
                "ledger",
                "POST PUT PATCH DELETE".to_owned()
            ),
        ]
    );
    assert_eq!(b.reach[3].via.len(), 3);
    assert_eq!(b.unfollowed, vec!["ledger", "reports"]);

    let text = b.to_text();
    assert!(
        text.contains("└── acting as spiffe://example.org/catalog"),
        "{text}"
    );
    assert!(
        text.contains("2 route(s) directly, 2 through other services; 4 service(s) in reach"),
        "{text}"
    );
    let dot = b.to_dot();
    assert!(dot.starts_with("digraph blast_radius {"));
    assert!(
        dot.contains("\"service:catalog\" -> \"spiffe://example.org/catalog\" [style=dashed"),
        "{dot}"
    );

    // A depth limit of one keeps only the direct reach.
    let direct = blast_radius(
        &snapshot,
        "spiffe://example.org/frontend",
        &routes,
        &assumptions,
        1,
    );
    assert_eq!(direct.reach.len(), 2);
    // Paths the policies name are asked about too.
    let paths = Assumptions::paths_in_policies([
        r#"when { resource.path like "/products/*" || resource.path == "/x y" }"#,
    ]);
    assert_eq!(paths, vec!["/products/x"]);

    // Someone with no permit reaches nothing.
    let none = blast_radius(
        &snapshot,
        "spiffe://example.org/nobody",
        &routes,
        &assumptions,
        8,
    );
    assert!(none.reach.is_empty());
    assert!(none.to_text().contains("(reaches nothing)"));
}
