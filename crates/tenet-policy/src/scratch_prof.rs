use std::time::Instant;
use crate::*;
#[test]
#[ignore]
fn prof() {
    let mut text = String::new();
    for i in 0..997 {
        text.push_str(&format!("@id(\"p{i}\") permit (principal == Tenet::Workload::\"spiffe://example.org/ns/n{i}/sa/s{i}\", action in [Tenet::Action::\"GET\", Tenet::Action::\"POST\"], resource == Tenet::Route::\"r{i}\") when {{ context.tls.mtls && resource.path like \"/api/*\" }};\n"));
    }
    text.push_str(r#"@id("td") permit (principal in Tenet::TrustDomain::"example.org", action == Tenet::Action::"HEAD", resource);
           @id("admin") forbid (principal, action, resource) when { resource.path like "/api/admin*" };
           @id("risk") forbid (principal, action, resource) when { context.risk > 90 };"#);
    let s = PolicySnapshot::from_sources(&[("m.cedar".into(), text)]).unwrap();
    let mk = |i: usize| AccessRequest {
        principal: Principal::Workload { spiffe_id: format!("spiffe://example.org/ns/n{i}/sa/s{i}"), trust_domain: "example.org".into(), path: format!("/ns/n{i}/sa/s{i}") },
        action: "GET".into(),
        resource: RouteResource { route: format!("r{i}"), service: "svc".into(), host: "h".into(), path: "/api/x".into() },
        context: RequestContext { source_ip: "10.0.0.1".parse().unwrap(), tls: TlsFacts { version: "TLSv1.3".into(), sni: "h".into(), alpn: "h2".into(), mtls: true, client_serial: "1".into() }, unix_time: 1_700_000_000, protocol: "HTTP/2".into(), risk: 0 },
    };
    let reqs: Vec<_> = (0..997).map(mk).collect();
    let mut t_tr = vec![]; let mut t_ev = vec![]; let mut t_ctx = vec![]; let mut t_ent = vec![];
    for _round in 0..5 { for r in &reqs {
        let t0 = Instant::now();
        let c = s.vocabulary.translate(r).unwrap();
        let t1 = Instant::now();
        let e = s.index.explain(&c.request, &c.entities, &c.principal_keys, &c.resource_keys);
        let t2 = Instant::now();
        assert!(e.decision.is_allowed());

        let t3 = Instant::now();
        let _ = cedar_policy::Entities::from_entities([cedar_policy::Entity::with_uid(c.request.principal().unwrap().clone())], None);
        let t4 = Instant::now();
        t_tr.push(t1-t0); t_ev.push(t2-t1); t_ctx.push(t3-t2); t_ent.push(t4-t3);
    }}
    for (n, v) in [("translate", &mut t_tr), ("explain", &mut t_ev), ("context", &mut t_ctx), ("entities1", &mut t_ent)] { v.sort(); println!("{n}: p50 {:?} p99 {:?}", v[v.len()/2], v[v.len()*99/100]); }
}
#[test]
#[ignore]
fn prof_ctx() {
    use cedar_policy::{Context, RestrictedExpression as R};
    let run = |name: &str, f: &dyn Fn()| { let mut v = vec![]; for _ in 0..3000 { let t = Instant::now(); f(); v.push(t.elapsed()); } v.sort(); println!("{name}: p50 {:?} p99 {:?}", v[v.len()/2], v[v.len()*99/100]); };
    run("str1", &|| { Context::from_pairs([("a".to_string(), R::new_string("x".into()))]).unwrap(); });
    run("long1", &|| { Context::from_pairs([("a".to_string(), R::new_long(1))]).unwrap(); });
    run("ip1", &|| { Context::from_pairs([("a".to_string(), R::new_ip("10.0.0.1"))]).unwrap(); });
    run("rec3", &|| { Context::from_pairs([("a".to_string(), R::new_record([("x".to_string(), R::new_long(1)),("y".to_string(), R::new_long(1)),("z".to_string(), R::new_long(1))]).unwrap())]).unwrap(); });
    run("newrec3", &|| { R::new_record([("x".to_string(), R::new_long(1)),("y".to_string(), R::new_long(1)),("z".to_string(), R::new_long(1))]).unwrap(); });
    run("empty", &|| { Context::from_pairs([]).unwrap(); });
}
#[test]
#[ignore]
fn prof_auth() {
    use cedar_policy::*;
    use std::str::FromStr;
    let run = |name: &str, f: &dyn Fn()| { let mut v = vec![]; for _ in 0..3000 { let t = Instant::now(); f(); v.push(t.elapsed()); } v.sort(); println!("{name}: p50 {:?} p99 {:?}", v[v.len()/2], v[v.len()*99/100]); };
    let s = PolicySnapshot::from_sources(&[]).unwrap();
    let r = AccessRequest {
        principal: Principal::Workload { spiffe_id: "spiffe://example.org/ns/n1/sa/s1".into(), trust_domain: "example.org".into(), path: "/ns/n1/sa/s1".into() },
        action: "GET".into(),
        resource: RouteResource { route: "r1".into(), service: "svc".into(), host: "h".into(), path: "/api/x".into() },
        context: RequestContext { source_ip: "10.0.0.1".parse().unwrap(), tls: TlsFacts { version: "TLSv1.3".into(), sni: "h".into(), alpn: "h2".into(), mtls: true, client_serial: "1".into() }, unix_time: 1_700_000_000, protocol: "HTTP/2".into(), risk: 0 },
    };
    let c = s.vocabulary.translate(&r).unwrap();
    let a = Authorizer::new();
    let empty = PolicySet::new();
    let one = PolicySet::from_str(r#"permit (principal == Tenet::Workload::"spiffe://example.org/ns/n1/sa/s1", action in [Tenet::Action::"GET", Tenet::Action::"POST"], resource == Tenet::Route::"r1") when { context.tls.mtls && resource.path like "/api/*" };"#).unwrap();
    let simple = PolicySet::from_str(r#"permit (principal, action, resource);"#).unwrap();
    let forbid = PolicySet::from_str(r#"forbid (principal, action, resource) when { context.risk > 90 };"#).unwrap();
    run("auth empty", &|| { a.is_authorized(&c.request, &empty, &c.entities); });
    run("auth simple", &|| { a.is_authorized(&c.request, &simple, &c.entities); });
    run("auth one", &|| { a.is_authorized(&c.request, &one, &c.entities); });
    run("auth forbid", &|| { a.is_authorized(&c.request, &forbid, &c.entities); });
    let ipx = RestrictedExpression::new_ip("10.0.0.1");
    run("new_ip", &|| { RestrictedExpression::new_ip("10.0.0.1"); });
    run("ctx cached ip", &|| { Context::from_pairs([("a".to_string(), ipx.clone())]).unwrap(); });
    run("translate", &|| { s.vocabulary.translate(&r).unwrap(); });
}
#[test]
#[ignore]
fn prof_tr() {
    use cedar_policy::*;
    use std::collections::{HashMap, HashSet};
    use std::str::FromStr;
    let run = |name: &str, f: &dyn Fn()| { let mut v = vec![]; for _ in 0..3000 { let t = Instant::now(); f(); v.push(t.elapsed()); } v.sort(); println!("{name}: p50 {:?} p99 {:?}", v[v.len()/2], v[v.len()*99/100]); };
    let wt = EntityTypeName::from_str("Tenet::Workload").unwrap();
    let tdt = EntityTypeName::from_str("Tenet::TrustDomain").unwrap();
    run("uid", &|| { EntityUid::from_type_name_and_id(wt.clone(), EntityId::new("spiffe://example.org/ns/n1/sa/s1")); });
    let uid = EntityUid::from_type_name_and_id(wt.clone(), EntityId::new("spiffe://example.org/ns/n1/sa/s1"));
    let par = EntityUid::from_type_name_and_id(tdt.clone(), EntityId::new("example.org"));
    run("entity noattrs", &|| { Entity::new_no_attrs(uid.clone(), HashSet::from([par.clone()])); });
    run("entity attrs", &|| { Entity::new(uid.clone(), HashMap::from([("trust_domain".to_owned(), RestrictedExpression::new_string("example.org".into())), ("path".to_owned(), RestrictedExpression::new_string("/ns".into()))]), HashSet::from([par.clone()])).unwrap(); });
    let e = Entity::new(uid.clone(), HashMap::from([("trust_domain".to_owned(), RestrictedExpression::new_string("example.org".into())), ("path".to_owned(), RestrictedExpression::new_string("/ns".into()))]), HashSet::from([par.clone()])).unwrap();
    run("entities1", &|| { Entities::from_entities([e.clone()], None).unwrap(); });
    run("entities3", &|| { Entities::from_entities([e.clone(), Entity::with_uid(par.clone()), Entity::with_uid(EntityUid::from_type_name_and_id(tdt.clone(), EntityId::new("x")))], None).unwrap(); });
    run("entity clone", &|| { let _ = e.clone(); });
    let ctx = Context::from_pairs([("a".to_string(), RestrictedExpression::new_long(1))]).unwrap();
    run("request", &|| { Request::new(uid.clone(), par.clone(), par.clone(), ctx.clone(), None).unwrap(); });
    run("with_uid", &|| { Entity::with_uid(uid.clone()); });
}
#[test]
#[ignore]
fn prof_tr2() {
    let run = |name: &str, f: &dyn Fn()| { let mut v = vec![]; for _ in 0..3000 { let t = Instant::now(); f(); v.push(t.elapsed()); } v.sort(); println!("{name}: p50 {:?} p99 {:?}", v[v.len()/2], v[v.len()*99/100]); };
    let s = PolicySnapshot::from_sources(&[]).unwrap();
    let r = AccessRequest {
        principal: Principal::Workload { spiffe_id: "spiffe://example.org/ns/n1/sa/s1".into(), trust_domain: "example.org".into(), path: "/ns/n1/sa/s1".into() },
        action: "GET".into(),
        resource: RouteResource { route: "r1".into(), service: "svc".into(), host: "h".into(), path: "/api/x".into() },
        context: RequestContext { source_ip: "10.0.0.1".parse().unwrap(), tls: TlsFacts { version: "TLSv1.3".into(), sni: "h".into(), alpn: "h2".into(), mtls: true, client_serial: "1".into() }, unix_time: 1_700_000_000, protocol: "HTTP/2".into(), risk: 0 },
    };
    let v = &s.vocabulary;
    run("principal", &|| { v.principal(&r.principal).unwrap(); });
    run("resource", &|| { v.resource(&r.resource).unwrap(); });
    run("ipcache", &|| { v.addresses.ip(r.context.source_ip); });
    run("context", &|| { crate::request::context(&r.context, v.addresses.ip(r.context.source_ip)).unwrap(); });
    run("translate", &|| { v.translate(&r).unwrap(); });
}
