//! Policies over the Tenet schema: decisions, reasons, validation errors, reload and scale.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Instant;

use tenet_policy::{
    AccessRequest, Decision, PolicyEngine, PolicyError, PolicySnapshot, Principal, RequestContext,
    RouteResource, TENET_SCHEMA, TlsFacts, example_policies,
};

/// 2024-01-01T10:30:00Z, a Monday.
const MONDAY_10_30: i64 = 1_704_105_000;

/// A request builder: `frontend` GETs `/products/1` on route `catalog` of service `shop`.
struct Req(AccessRequest);

impl Req {
    fn new() -> Self {
        Self(AccessRequest {
            principal: workload("example.org", "/ns/shop/sa/frontend"),
            action: "GET".to_owned(),
            resource: RouteResource {
                route: "catalog".to_owned(),
                service: "shop".to_owned(),
                host: "shop.example.org".to_owned(),
                path: "/products/1".to_owned(),
            },
            context: RequestContext {
                source_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
                tls: TlsFacts {
                    version: "TLSv1.3".to_owned(),
                    sni: "shop.example.org".to_owned(),
                    alpn: "h2".to_owned(),
                    mtls: true,
                    client_serial: "01ab".to_owned(),
                },
                unix_time: MONDAY_10_30,
                protocol: "HTTP/2".to_owned(),
                risk: 0,
                session: Default::default(),
                device: Default::default(),
            },
        })
    }
    fn principal(mut self, p: Principal) -> Self {
        self.0.principal = p;
        self
    }
    fn method(mut self, m: &str) -> Self {
        self.0.action = m.to_owned();
        self
    }
    fn route(mut self, route: &str, service: &str) -> Self {
        self.0.resource.route = route.to_owned();
        self.0.resource.service = service.to_owned();
        self
    }
    fn path(mut self, p: &str) -> Self {
        self.0.resource.path = p.to_owned();
        self
    }
    fn with(mut self, f: impl FnOnce(&mut RequestContext)) -> Self {
        f(&mut self.0.context);
        self
    }
}

fn workload(trust_domain: &str, path: &str) -> Principal {
    Principal::Workload {
        spiffe_id: format!("spiffe://{trust_domain}{path}"),
        trust_domain: trust_domain.to_owned(),
        path: path.to_owned(),
    }
}

fn snapshot(files: &[(&str, &str)]) -> Result<PolicySnapshot, PolicyError> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    PolicySnapshot::from_sources(&files)
}

fn one(text: &str) -> PolicySnapshot {
    snapshot(&[("main.cedar", text)]).unwrap_or_else(|e| panic!("{e}"))
}

fn allow(ids: &[&str]) -> Decision {
    Decision::Allow {
        policies: ids.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn deny(ids: &[&str]) -> Decision {
    Decision::Deny {
        policies: ids.iter().map(|s| (*s).to_owned()).collect(),
        errors: Vec::new(),
    }
}

fn decide(s: &PolicySnapshot, r: Req) -> Decision {
    s.authorize(&r.0)
}

#[test]
fn example_policies_validate_and_decide() {
    let s = one(&example_policies("example.org"));
    assert_eq!(
        s.policy_ids(),
        vec!["no-admin-paths", "shop-frontend-reads-catalog"]
    );
    let permit = &["shop-frontend-reads-catalog"];
    assert_eq!(decide(&s, Req::new()), allow(permit));
    assert_eq!(decide(&s, Req::new().method("HEAD")), allow(permit));
    assert_eq!(decide(&s, Req::new().path("/products")), allow(permit));
    assert_eq!(decide(&s, Req::new().method("POST")), deny(&[]));
    assert_eq!(decide(&s, Req::new().path("/cart")), deny(&[]));
    // The prefix ends on a segment boundary.
    assert_eq!(decide(&s, Req::new().path("/products-internal")), deny(&[]));
    assert_eq!(decide(&s, Req::new().route("cart", "shop")), deny(&[]));
    assert_eq!(
        decide(&s, Req::new().path("/admin/users")),
        deny(&["no-admin-paths"])
    );
    let other = workload("example.org", "/ns/shop/sa/backend");
    assert_eq!(decide(&s, Req::new().principal(other)), deny(&[]));
    let other_td = workload("evil.example", "/ns/shop/sa/frontend");
    assert_eq!(decide(&s, Req::new().principal(other_td)), deny(&[]));
    assert_eq!(
        decide(&s, Req::new().principal(Principal::Anonymous)),
        deny(&[])
    );
}

#[test]
fn example_policies_escape_odd_trust_domains() {
    let s = one(&example_policies("we\"ird\\td\n"));
    assert_eq!(s.policy_count(), 2);
    let p = workload("we\"ird\\td\n", "/ns/shop/sa/frontend");
    assert!(decide(&s, Req::new().principal(p)).is_allowed());
}

#[test]
fn forbid_beats_permit() {
    let s = one(r#"@id("all") permit (principal, action, resource);
           @id("no-admin") forbid (principal, action, resource) when { resource.path like "/admin*" };
           @id("no-delete") forbid (principal, action == Tenet::Action::"DELETE", resource);"#);
    assert_eq!(decide(&s, Req::new()), allow(&["all"]));
    assert_eq!(decide(&s, Req::new().path("/admin")), deny(&["no-admin"]));
    let both = Req::new().path("/admin/x").method("DELETE");
    assert_eq!(decide(&s, both), deny(&["no-admin", "no-delete"]));
}

#[test]
fn all_matching_permits_are_reasons() {
    let s = one(
        r#"@id("b") permit (principal in Tenet::TrustDomain::"example.org", action, resource);
           @id("a") permit (principal, action in Tenet::Action::"read", resource in Tenet::Service::"shop");"#,
    );
    assert_eq!(decide(&s, Req::new()), allow(&["a", "b"]));
    assert_eq!(decide(&s, Req::new().method("PUT")), allow(&["b"]));
}

#[test]
fn unknown_methods_are_denied_with_an_error() {
    let s = one(r#"permit (principal, action, resource);"#);
    for method in ["BREW", "get", "", "PROPFIND", "GET "] {
        let d = decide(&s, Req::new().method(method));
        assert!(!d.is_allowed(), "{method}");
        assert!(d.reasons().is_empty());
        assert_eq!(d.errors().len(), 1);
        assert!(d.errors()[0].contains("unknown method"), "{d:?}");
    }
    for method in [
        "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE",
    ] {
        assert!(
            decide(&s, Req::new().method(method)).is_allowed(),
            "{method}"
        );
    }
}

#[test]
fn action_groups() {
    let s = one(
        r#"@id("r") permit (principal, action in Tenet::Action::"read", resource);
           @id("w") permit (principal, action in Tenet::Action::"write", resource) when { context.tls.mtls };"#,
    );
    for (method, expected) in [
        ("GET", allow(&["r"])),
        ("HEAD", allow(&["r"])),
        ("OPTIONS", allow(&["r"])),
        ("POST", allow(&["w"])),
        ("PUT", allow(&["w"])),
        ("PATCH", allow(&["w"])),
        ("DELETE", allow(&["w"])),
        ("CONNECT", deny(&[])),
        ("TRACE", deny(&[])),
    ] {
        assert_eq!(decide(&s, Req::new().method(method)), expected, "{method}");
    }
    let plain = Req::new().method("POST").with(|c| c.tls.mtls = false);
    assert_eq!(decide(&s, plain), deny(&[]));
}

#[test]
fn principal_and_resource_hierarchy() {
    let s = one(
        r#"@id("td") permit (principal in Tenet::TrustDomain::"example.org", action, resource in Tenet::Service::"shop")
             when { principal.trust_domain == "example.org" && principal.path like "/ns/shop/*" };
           @id("anon") permit (principal == Tenet::Anonymous::"anonymous", action, resource == Tenet::Route::"public");
           @id("typed") permit (principal is Tenet::Workload, action, resource is Tenet::Route in Tenet::Service::"status")
             when { resource.host == "status.example.org" && resource.service == "status" };"#,
    );
    assert_eq!(decide(&s, Req::new()), allow(&["td"]));
    let outside = workload("example.org", "/ns/billing/sa/api");
    assert_eq!(decide(&s, Req::new().principal(outside.clone())), deny(&[]));
    assert_eq!(decide(&s, Req::new().route("catalog", "other")), deny(&[]));
    let anon = Req::new().principal(Principal::Anonymous);
    assert_eq!(decide(&s, anon.route("public", "www")), allow(&["anon"]));
    let anon = Req::new().principal(Principal::Anonymous);
    assert_eq!(decide(&s, anon), deny(&[]));
    let status = Req::new().principal(outside).route("health", "status");
    let status = Req(AccessRequest {
        resource: RouteResource {
            host: "status.example.org".to_owned(),
            ..status.0.resource.clone()
        },
        ..status.0
    });
    assert_eq!(decide(&s, status), allow(&["typed"]));
}

#[test]
fn context_attributes() {
    let s = one(r#"@id("office") permit (principal, action, resource)
             when { context.source_ip.isInRange(ip("10.0.0.0/8")) && context.protocol == "HTTP/2" };
           @id("hours") forbid (principal, action, resource)
             when { context.time.hour_utc < 8 || context.time.hour_utc >= 18 || context.time.weekday > 5 };
           @id("risky") forbid (principal, action, resource) when { context.risk >= 80 };
           @id("old-tls") forbid (principal, action, resource) when { context.tls.version != "TLSv1.3" };
           @id("serial") forbid (principal, action, resource) when { context.tls.client_serial == "dead" };
           @id("alpn") forbid (principal, action, resource) when { context.tls.alpn == "http/1.0" };
           @id("sni") forbid (principal, action, resource) when { context.tls.sni != "" && context.tls.sni != "shop.example.org" };
           @id("clock") forbid (principal, action, resource) when { context.time.unix < 1700000000 };"#);
    assert_eq!(decide(&s, Req::new()), allow(&["office"]));
    let v4 = |ip: Ipv4Addr| move |c: &mut RequestContext| c.source_ip = IpAddr::V4(ip);
    assert_eq!(
        decide(&s, Req::new().with(v4(Ipv4Addr::new(192, 0, 2, 1)))),
        deny(&[])
    );
    // An IPv4-mapped IPv6 address is the IPv4 address to policies.
    let mapped = Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped();
    assert_eq!(
        decide(&s, Req::new().with(|c| c.source_ip = IpAddr::V6(mapped))),
        allow(&["office"])
    );
    let v6 = |c: &mut RequestContext| c.source_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(decide(&s, Req::new().with(v6)), deny(&[]));
    let h1 = |c: &mut RequestContext| c.protocol = "HTTP/1.1".to_owned();
    assert_eq!(decide(&s, Req::new().with(h1)), deny(&[]));
    // 2024-01-01T07:59:59Z, Monday; then Saturday 2024-01-06 at 10:30.
    let early = |c: &mut RequestContext| c.unix_time = 1_704_095_999;
    assert_eq!(decide(&s, Req::new().with(early)), deny(&["hours"]));
    let saturday = |c: &mut RequestContext| c.unix_time = MONDAY_10_30 + 5 * 86_400;
    assert_eq!(decide(&s, Req::new().with(saturday)), deny(&["hours"]));
    let friday = |c: &mut RequestContext| c.unix_time = MONDAY_10_30 + 4 * 86_400;
    assert_eq!(decide(&s, Req::new().with(friday)), allow(&["office"]));
    let risky = |c: &mut RequestContext| c.risk = 80;
    assert_eq!(decide(&s, Req::new().with(risky)), deny(&["risky"]));
    let tls12 = |c: &mut RequestContext| c.tls.version = "TLSv1.2".to_owned();
    assert_eq!(decide(&s, Req::new().with(tls12)), deny(&["old-tls"]));
    let serial = |c: &mut RequestContext| c.tls.client_serial = "dead".to_owned();
    assert_eq!(decide(&s, Req::new().with(serial)), deny(&["serial"]));
    let alpn = |c: &mut RequestContext| c.tls.alpn = "http/1.0".to_owned();
    assert_eq!(decide(&s, Req::new().with(alpn)), deny(&["alpn"]));
    let sni = |c: &mut RequestContext| c.tls.sni = "other.example.org".to_owned();
    assert_eq!(decide(&s, Req::new().with(sni)), deny(&["sni"]));
    let no_sni = |c: &mut RequestContext| c.tls.sni = String::new();
    assert_eq!(decide(&s, Req::new().with(no_sni)), allow(&["office"]));
    let past = |c: &mut RequestContext| c.unix_time = 1_600_000_000;
    assert!(
        decide(&s, Req::new().with(past))
            .reasons()
            .contains(&"clock".to_owned())
    );
}

fn person(groups: &[&str]) -> Principal {
    Principal::User {
        provider: "corp".to_owned(),
        subject: "u-42".to_owned(),
        email: "jane@example.org".to_owned(),
        name: "Jane Doe".to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// The commented example that needs a verified person validates once uncommented, and refuses
/// a session whose sign-ins did not verify the person.
#[test]
fn a_policy_can_require_a_sign_in_that_verified_the_person() {
    let example = example_policies("example.org");
    let start = example
        .find("// @id(\"payroll-needs-verified-people\")")
        .unwrap();
    let uncommented: String = example[start..]
        .lines()
        .take_while(|l| l.starts_with("// ") && !l.trim_end().eq("//"))
        .map(|l| l.trim_start_matches("// "))
        .collect::<Vec<_>>()
        .join("\n");
    let s = one(&format!(
        "@id(\"all\") permit (principal, action, resource);\n{uncommented}"
    ));
    let payroll = || {
        Req::new()
            .principal(person(&[]))
            .route("pay", "payroll")
            .with(|c| {
                c.session.authenticated = true;
                c.session.factors = vec!["oidc".to_owned(), "webauthn".to_owned()];
                c.session.phishing_resistant = true;
            })
    };
    assert_eq!(
        decide(&s, payroll()),
        deny(&["payroll-needs-verified-people"])
    );
    let verified = payroll().with(|c| c.session.user_verified = true);
    assert_eq!(decide(&s, verified), allow(&["all"]));
    assert_eq!(
        decide(&s, Req::new().route("catalog", "shop")),
        allow(&["all"])
    );
}

/// People: groups are the user's parents, and policies see the session and the device.
#[test]
fn people_policies_see_groups_session_and_device() {
    let s = one(
        r#"@id("eng") permit (principal in Tenet::Group::"engineering", action, resource in Tenet::Service::"shop")
             when { context.session.authenticated && context.session.phishing_resistant
                    && context.session.factors.contains("webauthn") && context.device.compliant };
           @id("jane") permit (principal == Tenet::User::"corp:u-42", action in Tenet::Action::"read", resource)
             when { principal.email == "jane@example.org" && context.device.enrolled };
           @id("stale") forbid (principal is Tenet::User, action, resource)
             when { context.device.posture_age_secs < 0 || context.device.posture_age_secs > 3600 };
           @id("disk") forbid (principal, action, resource) when { context.device.disk_encrypted == "no" };
           @id("mfa-fresh") forbid (principal is Tenet::User, action in Tenet::Action::"write", resource)
             when { context.session.mfa_age_secs < 0 || context.session.mfa_age_secs > 900 };"#,
    );
    let good = |c: &mut RequestContext| {
        c.session.authenticated = true;
        c.session.factors = vec!["oidc".to_owned(), "webauthn".to_owned()];
        c.session.phishing_resistant = true;
        c.session.age_secs = 120;
        c.session.mfa_age_secs = 60;
        c.device.id = "d-1".to_owned();
        c.device.enrolled = true;
        c.device.compliant = true;
        c.device.posture_age_secs = 30;
        c.device.disk_encrypted = "yes".to_owned();
    };
    let eng = || Req::new().principal(person(&["engineering"])).with(good);
    assert_eq!(decide(&s, eng()), allow(&["eng", "jane"]));
    assert_eq!(decide(&s, eng().method("POST")), allow(&["eng"]));
    // Not in the group: only the per-user read permit.
    let other = Req::new().principal(person(&["sales"])).with(good);
    assert_eq!(decide(&s, other), allow(&["jane"]));
    // TOTP is not phishing-resistant.
    let totp = eng().with(|c| {
        c.session.factors = vec!["oidc".to_owned(), "totp".to_owned()];
        c.session.phishing_resistant = false;
    });
    assert_eq!(decide(&s, totp), allow(&["jane"]));
    // Posture: missing, stale, or a disk known unencrypted.
    let missing = eng().with(|c| c.device.posture_age_secs = -1);
    assert_eq!(decide(&s, missing), deny(&["stale"]));
    let stale = eng().with(|c| c.device.posture_age_secs = 7_200);
    assert_eq!(decide(&s, stale), deny(&["stale"]));
    let clear = eng().with(|c| c.device.disk_encrypted = "no".to_owned());
    assert_eq!(decide(&s, clear), deny(&["disk"]));
    // A write long after the last second factor needs a fresh one.
    let old_mfa = eng()
        .method("DELETE")
        .with(|c| c.session.mfa_age_secs = 3_600);
    assert_eq!(decide(&s, old_mfa), deny(&["mfa-fresh"]));
    // Workloads carry the defaults: no session, no device.
    assert_eq!(decide(&s, Req::new()), deny(&[]));
}

#[test]
fn evaluation_errors_deny_even_when_a_permit_matches() {
    let s = one(r#"@id("all") permit (principal, action, resource);
           @id("overflow") forbid (principal, action, resource)
             when { context.time.unix * 9223372036854775807 > 0 };"#);
    let explanation = s.explain(&Req::new().0);
    assert_eq!(explanation.errored_policies, vec!["overflow"]);
    match explanation.decision {
        Decision::Deny { policies, errors } => {
            assert!(policies.is_empty());
            assert_eq!(errors.len(), 1);
            assert!(errors[0].contains("overflow"), "{errors:?}");
        }
        d @ Decision::Allow { .. } => panic!("an erroring policy must deny, got {d:?}"),
    }
    // With unix time 0 the product does not overflow and the permit stands.
    let zero = Req::new().with(|c| c.unix_time = 0);
    assert_eq!(decide(&s, zero), allow(&["all"]));
}

#[test]
fn inconsistent_workload_principal_is_denied() {
    let s = one(r#"permit (principal, action, resource);"#);
    for (id, td, path) in [
        ("spiffe://example.org/ns/a", "example.org", "/ns/b"),
        ("spiffe://example.org/ns/a", "example.com", "/ns/a"),
        ("https://example.org/ns/a", "example.org", "/ns/a"),
        ("spiffe:///ns/a", "", "/ns/a"),
    ] {
        let p = Principal::Workload {
            spiffe_id: id.to_owned(),
            trust_domain: td.to_owned(),
            path: path.to_owned(),
        };
        let d = decide(&s, Req::new().principal(p));
        assert!(!d.is_allowed(), "{id}");
        assert!(d.errors()[0].contains("does not match"), "{d:?}");
    }
}

/// F013 at policy level: `.../sa/API` parses but is another principal, so default deny.
#[test]
fn f013_spiffe_path_case_is_another_principal() {
    let s = one(
        r#"@id("api") permit (principal == Tenet::Workload::"spiffe://prod.example.test/ns/payments/sa/api", action, resource);
           @id("admin") forbid (principal == Tenet::Workload::"spiffe://prod.example.test/ns/payments/sa/admin", action, resource);"#,
    );
    let td = "prod.example.test";
    let api = workload(td, "/ns/payments/sa/api");
    assert_eq!(decide(&s, Req::new().principal(api)), allow(&["api"]));
    let upper = workload(td, "/ns/payments/sa/API");
    assert_eq!(decide(&s, Req::new().principal(upper)), deny(&[]));
    let admin = workload(td, "/ns/payments/sa/admin");
    assert_eq!(decide(&s, Req::new().principal(admin)), deny(&["admin"]));
    // Spellings the identity parser rejects never reach the policy engine; if one did, it
    // would be a different principal and not match the permit either.
    let encoded = workload(td, "/ns/payments/sa/%61pi");
    assert_eq!(decide(&s, Req::new().principal(encoded)), deny(&[]));
}

#[test]
fn duplicate_ids_are_rejected() {
    let a = r#"@id("same") permit (principal, action, resource);"#;
    let b = r#"@id("same") forbid (principal, action, resource);"#;
    match snapshot(&[("a.cedar", a), ("b.cedar", b)]) {
        Err(PolicyError::DuplicateId {
            id,
            first_file,
            second_file,
        }) => assert_eq!(
            (id.as_str(), &*first_file, &*second_file),
            ("same", "a.cedar", "b.cedar")
        ),
        other => panic!("{other:?}"),
    }
    let twice = format!("{a}\n{b}");
    assert!(matches!(
        snapshot(&[("a.cedar", &twice)]),
        Err(PolicyError::DuplicateId { .. })
    ));
    // An @id equal to another file's position id is a duplicate too.
    let c = r#"@id("a.cedar:policy0") permit (principal, action, resource);"#;
    let plain = "permit (principal, action, resource);";
    assert!(matches!(
        snapshot(&[("a.cedar", plain), ("c.cedar", c)]),
        Err(PolicyError::DuplicateId { .. })
    ));
    assert!(matches!(
        snapshot(&[("a.cedar", plain), ("a.cedar", plain)]),
        Err(PolicyError::DuplicateSource { .. })
    ));
    let empty = r#"@id("") permit (principal, action, resource);"#;
    assert!(matches!(
        snapshot(&[("a.cedar", empty)]),
        Err(PolicyError::EmptyId { .. })
    ));
}

#[test]
fn unannotated_policies_are_named_by_file_and_position() {
    let s = snapshot(&[
        ("b.cedar", "permit (principal, action, resource);"),
        (
            "a.cedar",
            r#"forbid (principal, action == Tenet::Action::"DELETE", resource);
               permit (principal, action, resource) when { context.risk > 200 };"#,
        ),
    ])
    .unwrap();
    assert_eq!(
        s.policy_ids(),
        vec!["a.cedar:policy0", "a.cedar:policy1", "b.cedar:policy0"]
    );
    assert_eq!(s.source_files(), ["a.cedar", "b.cedar"]);
    assert_eq!(decide(&s, Req::new()), allow(&["b.cedar:policy0"]));
    assert_eq!(
        decide(&s, Req::new().method("DELETE")),
        deny(&["a.cedar:policy0"])
    );
}

#[test]
fn validation_errors_name_file_policy_and_line() {
    let good = r#"@id("ok") permit (principal, action, resource);"#;
    let bad = "// header\n@id(\"typo\")\npermit (principal, action, resource)\n  when { resource.pth == \"/\" };\n";
    let err = snapshot(&[("good.cedar", good), ("bad.cedar", bad)]).unwrap_err();
    let PolicyError::Validation { issues } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].file, "bad.cedar");
    assert_eq!(issues[0].policy_id, "typo");
    assert_eq!(issues[0].line, Some(4));
    assert!(issues[0].message.contains("pth"), "{}", issues[0].message);
    let text = err.to_string();
    assert!(
        text.contains("\"bad.cedar\" at 4:") && text.contains("policy \"typo\""),
        "{text}"
    );

    // Strict mode: comparing a Long with a String is an error, as are unknown actions and types.
    for policy in [
        r#"permit (principal, action, resource) when { context.risk == "high" };"#,
        r#"permit (principal, action == Tenet::Action::"get", resource);"#,
        r#"permit (principal == Tenet::Person::"alice", action, resource);"#,
        r#"permit (principal, action, resource) when { principal.path == "/x" };"#,
    ] {
        assert!(
            matches!(
                snapshot(&[("p.cedar", policy)]),
                Err(PolicyError::Validation { .. })
            ),
            "{policy}"
        );
    }
}

#[test]
fn parse_errors_and_templates_are_rejected() {
    let err = snapshot(&[(
        "x.cedar",
        "permit (principal, action, resource);\npermit (principal,,",
    )])
    .unwrap_err();
    match &err {
        PolicyError::Parse { file, line, .. } => {
            assert_eq!(file, "x.cedar");
            assert_eq!(*line, Some(2));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("cannot parse policy file \"x.cedar\" at 2:"),
        "{err}"
    );
    let template = "permit (principal == ?principal, action, resource);";
    assert!(matches!(
        snapshot(&[("t.cedar", template)]),
        Err(PolicyError::Template { .. })
    ));
}

#[test]
fn empty_policy_set_denies_everything() {
    let s = snapshot(&[]).unwrap();
    assert_eq!(s.policy_count(), 0);
    assert_eq!(decide(&s, Req::new()), deny(&[]));
    let dir = tempfile::tempdir().unwrap();
    let s = PolicySnapshot::load_dir(dir.path()).unwrap();
    assert_eq!(s.policy_count(), 0);
    assert_eq!(
        decide(&s, Req::new().principal(Principal::Anonymous)),
        deny(&[])
    );
}

#[test]
fn hash_covers_names_and_contents_not_order() {
    let a = ("a.cedar", "permit (principal, action, resource);");
    let b = (
        "b.cedar",
        r#"forbid (principal, action, resource) when { context.risk > 50 };"#,
    );
    let h1 = snapshot(&[a, b]).unwrap().hash().to_owned();
    let h2 = snapshot(&[b, a]).unwrap().hash().to_owned();
    assert_eq!(h1, h2);
    assert_eq!(h1.len(), 64);
    let renamed = snapshot(&[("c.cedar", a.1), b]).unwrap();
    assert_ne!(renamed.hash(), h1);
    let edited = snapshot(&[
        a,
        (
            "b.cedar",
            r#"forbid (principal, action, resource) when { context.risk > 60 };"#,
        ),
    ]);
    assert_ne!(edited.unwrap().hash(), h1);
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn load_dir_reads_cedar_files_and_checks_the_schema_copy() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.cedar", &example_policies("example.org"));
    write(dir.path(), "tenet.cedarschema", TENET_SCHEMA);
    write(dir.path(), "README.md", "not a policy");
    write(dir.path(), ".hidden.cedar", "this is not cedar");
    let s = PolicySnapshot::load_dir(dir.path()).unwrap();
    assert_eq!(s.policy_count(), 2);
    assert_eq!(s.source_files(), ["main.cedar"]);

    // Line endings and trailing whitespace of the copy do not matter; its content does.
    write(
        dir.path(),
        "tenet.cedarschema",
        &TENET_SCHEMA.replace('\n', "  \r\n"),
    );
    assert!(PolicySnapshot::load_dir(dir.path()).is_ok());
    let edited = TENET_SCHEMA.replace("risk: Long,", "risk: Long, admin: Bool,");
    write(dir.path(), "tenet.cedarschema", &edited);
    assert!(matches!(
        PolicySnapshot::load_dir(dir.path()),
        Err(PolicyError::SchemaMismatch { file }) if file == "tenet.cedarschema"
    ));
    // A deployment made before people existed, or before session.user_verified, keeps its
    // older copy: accepted (with a warning), and its policies validate against the current
    // schema.
    for older in [
        include_str!("../src/schema-v1.cedarschema"),
        include_str!("../src/schema-v2.cedarschema"),
    ] {
        assert_ne!(older, TENET_SCHEMA);
        write(dir.path(), "tenet.cedarschema", older);
        assert_eq!(
            PolicySnapshot::load_dir(dir.path()).unwrap().policy_count(),
            2
        );
    }
    fs::remove_file(dir.path().join("tenet.cedarschema")).unwrap();
    write(dir.path(), "mine.cedarschema", "entity User;");
    assert!(matches!(
        PolicySnapshot::load_dir(dir.path()),
        Err(PolicyError::SchemaMismatch { .. })
    ));
    let missing = dir.path().join("nope");
    assert!(matches!(
        PolicySnapshot::load_dir(&missing),
        Err(PolicyError::ReadDir { .. })
    ));
}

#[test]
fn invalid_reload_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "main.cedar", &example_policies("example.org"));
    let engine = PolicyEngine::new(PolicySnapshot::load_dir(dir.path()).unwrap());
    let good_hash = engine.current().hash().to_owned();
    assert!(engine.authorize(&Req::new().0).is_allowed());

    // Unchanged files: nothing to swap.
    let outcome = engine.reload_dir(dir.path()).unwrap();
    assert!(!outcome.changed);
    assert_eq!(
        (outcome.old_hash.as_str(), outcome.new_hash.as_str()),
        (&*good_hash, &*good_hash)
    );

    // A file that does not validate: rejected, the old set stays in force.
    write(
        dir.path(),
        "extra.cedar",
        r#"permit (principal, action, resource) when { context.nope };"#,
    );
    assert!(matches!(
        engine.reload_dir(dir.path()),
        Err(PolicyError::Validation { .. })
    ));
    write(dir.path(), "extra.cedar", "permit (principal, action");
    assert!(matches!(
        engine.reload_dir(dir.path()),
        Err(PolicyError::Parse { .. })
    ));
    assert_eq!(engine.current().hash(), good_hash);
    assert!(engine.authorize(&Req::new().0).is_allowed());
    assert!(!engine.authorize(&Req::new().method("POST").0).is_allowed());

    // A valid change goes in.
    write(
        dir.path(),
        "extra.cedar",
        r#"@id("posts") permit (principal, action == Tenet::Action::"POST", resource);"#,
    );
    let outcome = engine.reload_dir(dir.path()).unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.old_hash, good_hash);
    assert_ne!(outcome.new_hash, good_hash);
    assert_eq!(outcome.policy_count, 3);
    assert_eq!(
        engine.authorize(&Req::new().method("POST").0),
        allow(&["posts"])
    );
}

/// Principals, addresses and contexts are cached per snapshot: a repeated principal, address
/// or context must decide exactly as a fresh one. Requests alternate between callers that share
/// an entity id but differ in every other fact, so a cached value that leaked into another
/// caller's request would flip a decision.
#[test]
fn cached_request_parts_never_leak_between_callers() {
    let s = one(
        r#"@id("jane") permit (principal in Tenet::Group::"admins", action, resource)
             when { principal.email == "jane@example.org" && principal.name == "Jane Doe" };
           @id("app-path") permit (principal is Tenet::Workload, action, resource)
             when { principal.path == "/ns/shop/sa/frontend" };
           @id("lan") permit (principal, action, resource)
             when { context.source_ip.isInRange(ip("192.168.0.0/16")) && context.device.id == "" };
           @id("late") forbid (principal, action, resource) when { context.time.hour_utc >= 22 };"#,
    );
    let jane = person(&["admins"]);
    let same_id_other_groups = person(&["guests"]);
    let same_id_other_email = Principal::User {
        provider: "corp".to_owned(),
        subject: "u-42".to_owned(),
        email: "mallory@example.org".to_owned(),
        name: "Jane Doe".to_owned(),
        groups: vec!["admins".to_owned()],
    };
    let lan = |r: Req| r.with(|c| c.source_ip = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)));
    for round in 0..3 {
        let case = format!("round {round}");
        assert_eq!(
            decide(&s, Req::new().principal(jane.clone())),
            allow(&["jane"]),
            "{case}"
        );
        assert_eq!(
            decide(&s, Req::new().principal(same_id_other_groups.clone())),
            deny(&[]),
            "{case}"
        );
        assert_eq!(
            decide(&s, Req::new().principal(same_id_other_email.clone())),
            deny(&[]),
            "{case}"
        );
        // Two workloads of one trust domain: the path attribute is the caller's own.
        assert_eq!(decide(&s, Req::new()), allow(&["app-path"]), "{case}");
        let other = workload("example.org", "/ns/shop/sa/backend");
        assert_eq!(decide(&s, Req::new().principal(other.clone())), deny(&[]));
        // Contexts differing in one fact each.
        assert_eq!(
            decide(&s, lan(Req::new().principal(other.clone()))),
            allow(&["lan"]),
            "{case}"
        );
        let enrolled = lan(Req::new().principal(other.clone())).with(|c| c.device.id = "d".into());
        assert_eq!(decide(&s, enrolled), deny(&[]), "{case}");
        let late = lan(Req::new().principal(other.clone())).with(|c| c.unix_time += 12 * 3_600);
        assert_eq!(decide(&s, late), deny(&["late"]), "{case}");
        // IPv4 and the same address mapped into IPv6 are one address to policies.
        let mapped = Req::new()
            .principal(other)
            .with(|c| c.source_ip = IpAddr::V6(Ipv4Addr::new(192, 168, 1, 1).to_ipv6_mapped()));
        assert_eq!(decide(&s, mapped), allow(&["lan"]), "{case}");
    }
}

/// The caches belong to the snapshot: after a reload the same (cached) request is decided by
/// the new policies, and going back decides as before.
#[test]
fn a_reload_decides_repeated_requests_with_the_new_policies() {
    let v1 =
        r#"@id("v1") permit (principal in Tenet::TrustDomain::"example.org", action, resource);"#;
    let v2 = r#"@id("v2") forbid (principal == Tenet::Workload::"spiffe://example.org/ns/shop/sa/frontend", action, resource);
                @id("v2-permit") permit (principal, action, resource);"#;
    let engine = PolicyEngine::new(one(v1));
    for _ in 0..3 {
        assert_eq!(engine.authorize(&Req::new().0), allow(&["v1"]));
    }
    assert!(engine.install(one(v2)).changed);
    assert_eq!(engine.authorize(&Req::new().0), deny(&["v2"]));
    let other = Req::new().principal(workload("example.org", "/ns/shop/sa/backend"));
    assert_eq!(engine.authorize(&other.0), allow(&["v2-permit"]));
    assert!(engine.install(one(v1)).changed);
    assert_eq!(engine.authorize(&Req::new().0), allow(&["v1"]));
}

#[test]
fn readers_see_one_set_or_the_other_during_reloads() {
    let permit = r#"@id("v1") permit (principal, action, resource);"#;
    let forbid = r#"@id("v2") forbid (principal, action, resource);"#;
    let engine = std::sync::Arc::new(PolicyEngine::new(one(permit)));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = std::sync::Arc::clone(&engine);
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let d = engine.authorize(&Req::new().0);
                    assert!(d == allow(&["v1"]) || d == deny(&["v2"]), "{d:?}");
                }
            })
        })
        .collect();
    for i in 0..50 {
        let next = if i % 2 == 0 { forbid } else { permit };
        engine.install(one(next));
    }
    for r in readers {
        r.join().unwrap();
    }
}

/// 1,000 policies, one per workload and route, plus shared ones: every decision is right, the
/// scope index keeps the evaluated set small, and the latency is printed.
#[test]
fn thousand_policies() {
    let mut text = String::new();
    for i in 0..997 {
        text.push_str(&format!(
            "@id(\"p{i}\")\npermit (\n  principal == Tenet::Workload::\"spiffe://example.org/ns/n{i}/sa/s{i}\",\n  \
             action in [Tenet::Action::\"GET\", Tenet::Action::\"POST\"],\n  resource == Tenet::Route::\"r{i}\"\n)\n\
             when {{ context.tls.mtls && resource.path like \"/api/*\" }};\n"
        ));
    }
    text.push_str(
        r#"@id("td") permit (principal in Tenet::TrustDomain::"example.org", action == Tenet::Action::"HEAD", resource);
           @id("admin") forbid (principal, action, resource) when { resource.path like "/api/admin*" };
           @id("risk") forbid (principal, action, resource) when { context.risk > 90 };"#,
    );
    let s = one(&text);
    assert_eq!(s.policy_count(), 1000);

    let request = |i: usize, method: &str, path: &str| {
        Req::new()
            .principal(workload("example.org", &format!("/ns/n{i}/sa/s{i}")))
            .method(method)
            .route(&format!("r{i}"), "svc")
            .path(path)
    };
    let mut latencies = Vec::new();
    for i in 0..997 {
        let r = request(i, "GET", "/api/items");
        let start = Instant::now();
        let explanation = s.explain(&r.0);
        latencies.push(start.elapsed());
        assert_eq!(explanation.decision, allow(&[&format!("p{i}")]));
        // Only p{i} and the three shared policies can match.
        assert_eq!(explanation.policies_evaluated, 4);
    }
    assert_eq!(
        decide(&s, request(5, "GET", "/api/admin/x")),
        deny(&["admin"])
    );
    assert_eq!(decide(&s, request(5, "HEAD", "/x")), allow(&["td"]));
    assert_eq!(decide(&s, request(5, "DELETE", "/api/x")), deny(&[]));
    let crossed = request(5, "GET", "/api/x").route("r6", "svc");
    assert_eq!(decide(&s, crossed), deny(&[]));

    // A default deny names the closest permits among all 998; the others miss on two parts.
    let start = Instant::now();
    let explained = s.explain(&request(5, "DELETE", "/api/x").0);
    let near_miss_time = start.elapsed();
    let named: Vec<String> = explained
        .near_misses
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        named,
        ["p5: action not in scope", "td: action not in scope"]
    );

    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!("1,000 policies: authorize p50 {p50:?}, p99 {p99:?} (this build profile)");
    println!("1,000 policies: a default deny with its near misses {near_miss_time:?}");
}

/// A forbid must never disappear because its file was skipped: anything that could be a
/// policy file but cannot be read as one refuses the whole set.
#[test]
fn unusable_policy_entries_refuse_the_set() {
    use std::os::unix::ffi::OsStrExt;
    type MakeEntry = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, MakeEntry)> = vec![
        (
            "dangling link",
            Box::new(|d: &Path| {
                std::os::unix::fs::symlink("/nonexistent", d.join("f.cedar")).unwrap()
            }),
        ),
        (
            "directory",
            Box::new(|d: &Path| fs::create_dir(d.join("x.cedar")).unwrap()),
        ),
        (
            "non-UTF-8 name",
            Box::new(|d: &Path| {
                let name = std::ffi::OsStr::from_bytes(b"forbid\xff.cedar");
                fs::write(d.join(name), "forbid (principal, action, resource);").unwrap()
            }),
        ),
    ];
    for (what, make) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("ok.cedar"),
            "permit (principal, action, resource);",
        )
        .unwrap();
        make(dir.path());
        let err = PolicySnapshot::load_dir(dir.path()).err();
        assert!(
            matches!(err, Some(PolicyError::UnusableEntry { .. })),
            "{what}: {err:?}"
        );
    }
    // A link to a real file is followed.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real.txt");
    fs::write(&target, "forbid (principal, action, resource);").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("linked.cedar")).unwrap();
    assert_eq!(
        PolicySnapshot::load_dir(dir.path()).unwrap().policy_count(),
        1
    );
}
