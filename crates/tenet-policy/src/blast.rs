//! Blast radius: what a principal can reach under the current policy and routes, directly and
//! through the services it can call, acting with those services' own identities.
//!
//! Every route is asked for every method the schema knows, with the route's path prefix as
//! the path and a stated context (source address, time, TLS facts, risk 0). Reaching a
//! service whose identity is known (its upstream's SPIFFE ID) continues the search as that
//! identity, breadth first, each identity once: an attacker holding the first principal's
//! credential can make that service act for it, so whatever the service may call is within
//! reach too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::decision::Decision;
use crate::engine::PolicySnapshot;
use crate::request::{AccessRequest, Principal, RequestContext, RouteResource, TlsFacts};
use crate::schema::METHODS;

/// A route as blast-radius analysis needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Route name.
    pub route: String,
    /// Its service.
    pub service: String,
    /// Canonical host.
    pub host: String,
    /// Path prefix (used as the request path).
    pub path_prefix: String,
    /// The SPIFFE ID the service's upstream presents, when known (https upstreams).
    pub service_identity: Option<String>,
}

/// The context every question is asked with.
#[derive(Debug, Clone)]
pub struct Assumptions {
    /// Source address of the requests.
    pub source_ip: IpAddr,
    /// Seconds since the Unix epoch.
    pub unix_time: i64,
    /// Risk given to policies.
    pub risk: u8,
    /// Paths to ask about besides each route's prefix (those under the prefix are used),
    /// e.g. the path literals the policies mention; `*` in them stands for one segment.
    pub paths: Vec<String>,
}

impl Assumptions {
    /// The path literals in Cedar policy texts (`"/products"`, `"/products/*"`), as
    /// candidates for [`Assumptions::paths`].
    pub fn paths_in_policies<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for text in texts {
            let mut rest = text;
            while let Some(start) = rest.find("\"/") {
                let after = rest.get(start + 1..).unwrap_or("");
                let Some(end) = after.find('"') else {
                    break;
                };
                let literal = after.get(..end).unwrap_or("");
                if !literal.contains(char::is_whitespace) && literal.len() < 512 {
                    out.insert(literal.replace('*', "x"));
                }
                rest = after.get(end + 1..).unwrap_or("");
            }
        }
        out.into_iter().collect()
    }
}

/// One route a principal can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reach {
    /// Who makes the request: the principal itself or a service identity on its behalf.
    pub caller: String,
    /// The route.
    pub route: String,
    /// Its service.
    pub service: String,
    /// `host` + path prefix.
    pub target: String,
    /// Allowed methods (on at least one of `paths`).
    pub methods: Vec<String>,
    /// The paths asked about that were allowed.
    pub paths: Vec<String>,
    /// The policies that allowed it.
    pub policies: Vec<String>,
    /// Hops from the principal: 1 = directly.
    pub depth: usize,
    /// The chain of identities from the principal to `caller`.
    pub via: Vec<String>,
    /// The identity the route's service acts with, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_identity: Option<String>,
}

/// Everything a principal can reach.
#[derive(Debug, Clone, Serialize)]
pub struct BlastRadius {
    /// The principal analysed.
    pub principal: String,
    /// Reachable routes, directly first, then by depth, route name.
    pub reach: Vec<Reach>,
    /// Services reached whose identity is unknown, so what they could call was not followed.
    pub unfollowed: Vec<String>,
    /// The assumptions every question was asked with.
    pub assumptions: String,
}

/// Computes the blast radius of `principal` (a SPIFFE ID) up to `max_depth` hops.
pub fn blast_radius(
    snapshot: &PolicySnapshot,
    principal: &str,
    routes: &[RouteInfo],
    assumptions: &Assumptions,
    max_depth: usize,
) -> BlastRadius {
    let mut reach = Vec::new();
    let mut unfollowed = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::from([principal.to_owned()]);
    let mut queue: VecDeque<(String, usize, Vec<String>)> =
        VecDeque::from([(principal.to_owned(), 1, vec![principal.to_owned()])]);
    while let Some((caller, depth, via)) = queue.pop_front() {
        if depth > max_depth {
            continue;
        }
        for route in routes {
            let mut methods = Vec::new();
            let mut paths = BTreeSet::new();
            let mut policies = BTreeSet::new();
            let candidates = candidate_paths(route, &assumptions.paths);
            for (method, _) in METHODS {
                let mut allowed = false;
                for path in &candidates {
                    let request = request_for(&caller, method, route, path, assumptions);
                    if let Decision::Allow { policies: p } = snapshot.authorize(&request) {
                        allowed = true;
                        paths.insert(path.clone());
                        policies.extend(p);
                    }
                }
                if allowed {
                    methods.push(method.to_owned());
                }
            }
            if methods.is_empty() {
                continue;
            }
            reach.push(Reach {
                caller: caller.clone(),
                route: route.route.clone(),
                service: route.service.clone(),
                target: format!("{}{}", route.host, route.path_prefix),
                methods,
                paths: paths.into_iter().collect(),
                policies: policies.into_iter().collect(),
                depth,
                via: via.clone(),
                service_identity: route.service_identity.clone(),
            });
            match &route.service_identity {
                Some(next) if seen.insert(next.clone()) => {
                    let mut chain = via.clone();
                    chain.push(next.clone());
                    queue.push_back((next.clone(), depth + 1, chain));
                }
                Some(_) => {}
                None => {
                    unfollowed.insert(route.service.clone());
                }
            }
        }
    }
    reach.sort_by(|a, b| (a.depth, &a.caller, &a.route).cmp(&(b.depth, &b.caller, &b.route)));
    BlastRadius {
        principal: principal.to_owned(),
        reach,
        unfollowed: unfollowed.into_iter().collect(),
        assumptions: format!(
            "each route asked for every method at its path prefix and at the {} path(s) the \
             policies name under it, from {}, at unix time {}, over mTLS with TLS 1.3, risk {}",
            assumptions.paths.len(),
            assumptions.source_ip,
            assumptions.unix_time,
            assumptions.risk
        ),
    }
}

/// The route's prefix and every candidate path under it (on a segment boundary).
fn candidate_paths(route: &RouteInfo, extra: &[String]) -> Vec<String> {
    let prefix = route.path_prefix.as_str();
    let mut out = vec![prefix.to_owned()];
    for p in extra {
        let under = prefix == "/"
            || p == prefix
            || p.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') || prefix.ends_with('/'));
        if under && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

fn request_for(
    caller: &str,
    method: &str,
    route: &RouteInfo,
    path: &str,
    assumptions: &Assumptions,
) -> AccessRequest {
    let principal = match caller.strip_prefix("spiffe://").and_then(|rest| {
        let (td, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        (!td.is_empty()).then(|| (td.to_owned(), path.to_owned()))
    }) {
        Some((trust_domain, path)) => Principal::Workload {
            spiffe_id: caller.to_owned(),
            trust_domain,
            path,
        },
        None => Principal::Anonymous,
    };
    AccessRequest {
        principal,
        action: method.to_owned(),
        resource: RouteResource {
            route: route.route.clone(),
            service: route.service.clone(),
            host: route.host.clone(),
            path: path.to_owned(),
        },
        context: RequestContext {
            source_ip: assumptions.source_ip,
            tls: TlsFacts {
                version: "TLSv1.3".into(),
                sni: route.host.clone(),
                alpn: "http/1.1".into(),
                mtls: true,
                client_serial: String::new(),
            },
            unix_time: assumptions.unix_time,
            protocol: "HTTP/1.1".into(),
            risk: assumptions.risk,
            session: Default::default(),
            device: Default::default(),
        },
    }
}

impl BlastRadius {
    /// A tree: the principal, what it reaches, and under each service with a known identity
    /// what that identity reaches in turn.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.principal);
        let mut by_caller: BTreeMap<&str, Vec<&Reach>> = BTreeMap::new();
        for r in &self.reach {
            by_caller.entry(r.caller.as_str()).or_default().push(r);
        }
        let mut printed = BTreeSet::new();
        self.tree(&mut out, &by_caller, &self.principal, "", &mut printed);
        if self.reach.is_empty() {
            let _ = writeln!(out, "  (reaches nothing)");
        }
        let direct = self.reach.iter().filter(|r| r.depth == 1).count();
        let _ = writeln!(
            out,
            "\n{} route(s) directly, {} through other services; {} service(s) in reach",
            direct,
            self.reach.len() - direct,
            self.reach
                .iter()
                .map(|r| &r.service)
                .collect::<BTreeSet<_>>()
                .len()
        );
        if !self.unfollowed.is_empty() {
            let _ = writeln!(
                out,
                "not followed (service identity unknown: plain http upstream): {}",
                self.unfollowed.join(", ")
            );
        }
        let _ = writeln!(out, "assumptions: {}", self.assumptions);
        out
    }

    fn tree(
        &self,
        out: &mut String,
        by_caller: &BTreeMap<&str, Vec<&Reach>>,
        caller: &str,
        indent: &str,
        printed: &mut BTreeSet<String>,
    ) {
        if !printed.insert(caller.to_owned()) {
            return;
        }
        let Some(items) = by_caller.get(caller) else {
            return;
        };
        for (i, r) in items.iter().enumerate() {
            let last = i + 1 == items.len();
            let (branch, cont) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let _ = writeln!(
                out,
                "{indent}{branch}{} (route {}, {}) {} on {} [{}]",
                r.service,
                r.route,
                r.target,
                r.methods.join(" "),
                r.paths.join(" "),
                r.policies.join(", ")
            );
            // The identity this route's service acts with, if it leads further.
            if let Some(next) = &r.service_identity
                && by_caller.contains_key(next.as_str())
                && !printed.contains(next)
            {
                let _ = writeln!(out, "{indent}{cont}└── acting as {next}");
                let deeper = format!("{indent}{cont}    ");
                self.tree(out, by_caller, next, &deeper, printed);
            }
        }
    }

    /// Graphviz DOT: identities and services as nodes, allowed calls as edges labelled with
    /// the methods, "acts as" edges from a service to its identity.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph blast_radius {\n  rankdir=LR;\n");
        let _ = writeln!(out, "  {} [shape=box, style=bold];", q(&self.principal));
        let mut acts = BTreeSet::new();
        for r in &self.reach {
            let service = format!("service:{}", r.service);
            let _ = writeln!(out, "  {} [shape=ellipse];", q(&service));
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                q(&r.caller),
                q(&service),
                q(&format!("{} {}", r.route, r.methods.join(" ")))
            );
            if let Some(identity) = &r.service_identity
                && self.reach.iter().any(|x| &x.caller == identity)
                && acts.insert((service.clone(), identity.clone()))
            {
                let _ = writeln!(
                    out,
                    "  {} -> {} [style=dashed, label=\"acts as\"];",
                    q(&service),
                    q(identity)
                );
            }
        }
        out.push_str("}\n");
        out
    }
}
