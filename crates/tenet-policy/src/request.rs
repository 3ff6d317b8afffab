//! The request as the PEP describes it, and its mapping onto the Tenet schema's Cedar request.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};
use serde::{Deserialize, Serialize};

use crate::index::ScopeKey;
use crate::schema::{ANONYMOUS_ID, METHODS, types};

/// One request to authorize: plain data the gateway fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Who is calling.
    pub principal: Principal,
    /// The HTTP method, uppercase (`"GET"`, ...). A method the schema does not know is denied.
    pub action: String,
    /// The route the request was matched to.
    pub resource: RouteResource,
    /// Facts about the connection and the moment.
    pub context: RequestContext,
}

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// A workload that presented a valid X509-SVID.
    Workload {
        /// The full SPIFFE ID, e.g. `spiffe://example.org/ns/shop/sa/frontend`.
        spiffe_id: String,
        /// Its trust domain, e.g. `example.org`.
        trust_domain: String,
        /// Its path, e.g. `/ns/shop/sa/frontend`; `spiffe_id` must be
        /// `spiffe://{trust_domain}{path}` or the request is denied.
        path: String,
    },
    /// A caller without a client certificate.
    Anonymous,
}

/// The route a request was matched to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteResource {
    /// The route's name (the Cedar entity id of the resource).
    pub route: String,
    /// The service the route belongs to (the resource's parent).
    pub service: String,
    /// The canonical host.
    pub host: String,
    /// The normalised path that will be forwarded upstream.
    pub path: String,
}

/// Facts about the connection and the moment of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The peer address. An IPv4-mapped IPv6 address is given to policies as IPv4, so that
    /// IPv4 ranges in policies apply to it.
    pub source_ip: IpAddr,
    /// TLS facts.
    pub tls: TlsFacts,
    /// The time of the request, seconds since the Unix epoch (the caller's clock).
    pub unix_time: i64,
    /// `"HTTP/1.1"`, `"HTTP/2"`, `"gRPC"`, ...
    pub protocol: String,
    /// Risk score of the caller, 0 to 100.
    pub risk: u8,
}

/// TLS facts of the connection; empty strings when a fact is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFacts {
    /// The protocol version, e.g. `"TLSv1.3"`.
    pub version: String,
    /// The server name the client asked for.
    pub sni: String,
    /// The negotiated ALPN protocol, e.g. `"h2"`.
    pub alpn: String,
    /// Whether a client certificate was presented and verified.
    pub mtls: bool,
    /// The client certificate's serial number (hex).
    pub client_serial: String,
}

/// One action of the schema: the method, its Cedar id and its entity (with its group).
struct ActionEntry {
    method: &'static str,
    uid: EntityUid,
    entity: Entity,
}

/// The Cedar names of the Tenet schema, parsed once per policy snapshot.
pub(crate) struct Vocabulary {
    workload: EntityTypeName,
    anonymous: EntityUid,
    trust_domain: EntityTypeName,
    route: EntityTypeName,
    service: EntityTypeName,
    actions: Vec<ActionEntry>,
    pub(crate) addresses: AddressCache,
}

/// A request translated for Cedar, with the scope keys its principal and resource satisfy.
pub(crate) struct CedarRequest {
    pub(crate) request: Request,
    pub(crate) entities: Entities,
    pub(crate) principal_keys: Vec<ScopeKey>,
    pub(crate) resource_keys: Vec<ScopeKey>,
}

impl Vocabulary {
    pub(crate) fn new() -> Result<Self, String> {
        let type_name =
            |name: &str| EntityTypeName::from_str(name).map_err(|e| format!("{name}: {e}"));
        let action_type = type_name(types::ACTION)?;
        let action_uid =
            |id: &str| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(id));
        let actions = METHODS
            .iter()
            .map(|&(method, group)| {
                let uid = action_uid(method);
                let parents = group.map(action_uid).into_iter().collect();
                ActionEntry {
                    method,
                    entity: Entity::new_no_attrs(uid.clone(), parents),
                    uid,
                }
            })
            .collect();
        Ok(Self {
            workload: type_name(types::WORKLOAD)?,
            anonymous: EntityUid::from_type_name_and_id(
                type_name(types::ANONYMOUS)?,
                EntityId::new(ANONYMOUS_ID),
            ),
            trust_domain: type_name(types::TRUST_DOMAIN)?,
            route: type_name(types::ROUTE)?,
            service: type_name(types::SERVICE)?,
            actions,
            addresses: AddressCache::default(),
        })
    }

    /// Builds the Cedar request and entities for `req`, or says why it cannot be built.
    pub(crate) fn translate(&self, req: &AccessRequest) -> Result<CedarRequest, String> {
        let action = self
            .actions
            .iter()
            .find(|a| a.method == req.action)
            .ok_or_else(|| format!("unknown method \"{}\": no such action", req.action.escape_debug()))?;

        let (principal, principal_entity, principal_keys) = self.principal(&req.principal)?;
        let (resource, resource_entity, resource_keys) = self.resource(&req.resource)?;
        let context = context(&req.context, self.addresses.ip(req.context.source_ip))?;

        // The entities are built to the schema's shapes; tests check them against the schema,
        // so no per-request schema check is needed here.
        let entities =
            Entities::from_entities([principal_entity, resource_entity, action.entity.clone()], None)
                .map_err(|e| format!("cannot build the request entities: {e}"))?;
        let request = Request::new(principal, action.uid.clone(), resource, context, None)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        Ok(CedarRequest {
            request,
            entities,
            principal_keys,
            resource_keys,
        })
    }

    pub(crate) fn principal(
        &self,
        principal: &Principal,
    ) -> Result<(EntityUid, Entity, Vec<ScopeKey>), String> {
        match principal {
            Principal::Anonymous => {
                let uid = self.anonymous.clone();
                let keys = vec![
                    ScopeKey::Any,
                    ScopeKey::Type(uid.type_name().clone()),
                    ScopeKey::Under(uid.clone()),
                ];
                Ok((uid.clone(), Entity::with_uid(uid), keys))
            }
            Principal::Workload {
                spiffe_id,
                trust_domain,
                path,
            } => {
                // The id is what policies name; the parts must spell exactly that id.
                let consistent = spiffe_id
                    .strip_prefix("spiffe://")
                    .and_then(|rest| rest.strip_prefix(trust_domain.as_str()))
                    .is_some_and(|rest| rest == path);
                if !consistent || trust_domain.is_empty() {
                    return Err(format!(
                        "principal \"{}\" does not match its trust domain \"{}\" and path \"{}\"",
                        spiffe_id.escape_debug(),
                        trust_domain.escape_debug(),
                        path.escape_debug()
                    ));
                }
                let uid = EntityUid::from_type_name_and_id(
                    self.workload.clone(),
                    EntityId::new(spiffe_id),
                );
                let parent = EntityUid::from_type_name_and_id(
                    self.trust_domain.clone(),
                    EntityId::new(trust_domain),
                );
                let attrs = HashMap::from([
                    ("trust_domain".to_owned(), string(trust_domain)),
                    ("path".to_owned(), string(path)),
                ]);
                let keys = vec![
                    ScopeKey::Any,
                    ScopeKey::Type(self.workload.clone()),
                    ScopeKey::Under(uid.clone()),
                    ScopeKey::Under(parent.clone()),
                ];
                let entity = Entity::new(uid.clone(), attrs, HashSet::from([parent]))
                    .map_err(|e| format!("cannot build the principal entity: {e}"))?;
                Ok((uid, entity, keys))
            }
        }
    }

    pub(crate) fn resource(
        &self,
        route: &RouteResource,
    ) -> Result<(EntityUid, Entity, Vec<ScopeKey>), String> {
        let uid = EntityUid::from_type_name_and_id(self.route.clone(), EntityId::new(&route.route));
        let parent =
            EntityUid::from_type_name_and_id(self.service.clone(), EntityId::new(&route.service));
        let attrs = HashMap::from([
            ("service".to_owned(), string(&route.service)),
            ("host".to_owned(), string(&route.host)),
            ("path".to_owned(), string(&route.path)),
        ]);
        let keys = vec![
            ScopeKey::Any,
            ScopeKey::Type(self.route.clone()),
            ScopeKey::Under(uid.clone()),
            ScopeKey::Under(parent.clone()),
        ];
        let entity = Entity::new(uid.clone(), attrs, HashSet::from([parent]))
            .map_err(|e| format!("cannot build the resource entity: {e}"))?;
        Ok((uid, entity, keys))
    }
}

fn string(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_owned())
}

fn record(
    fields: impl IntoIterator<Item = (&'static str, RestrictedExpression)>,
) -> Result<RestrictedExpression, String> {
    RestrictedExpression::new_record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)))
        .map_err(|e| format!("cannot build the request context: {e}"))
}

/// The `context` record of the schema; `source_ip` is the address as a Cedar `ip(...)` value.
pub(crate) fn context(ctx: &RequestContext, source_ip: RestrictedExpression) -> Result<Context, String> {
    let tls = record([
        ("version", string(&ctx.tls.version)),
        ("sni", string(&ctx.tls.sni)),
        ("alpn", string(&ctx.tls.alpn)),
        ("mtls", RestrictedExpression::new_bool(ctx.tls.mtls)),
        ("client_serial", string(&ctx.tls.client_serial)),
    ])?;
    let time = record([
        ("unix", RestrictedExpression::new_long(ctx.unix_time)),
        ("hour_utc", RestrictedExpression::new_long(hour_utc(ctx.unix_time))),
        ("weekday", RestrictedExpression::new_long(iso_weekday(ctx.unix_time))),
    ])?;
    Context::from_pairs([
        ("source_ip".to_owned(), source_ip),
        ("tls".to_owned(), tls),
        ("time".to_owned(), time),
        ("protocol".to_owned(), string(&ctx.protocol)),
        ("risk".to_owned(), RestrictedExpression::new_long(i64::from(ctx.risk))),
    ])
    .map_err(|e| format!("cannot build the request context: {e}"))
}

/// Recently seen source addresses and their Cedar `ip("...")` expressions.
///
/// Building that expression costs several microseconds (Cedar parses the function name each
/// time), more than the rest of the context together, and callers repeat. The cache is bounded
/// (cleared when full) and never waits: when another thread holds it, the expression is built
/// afresh.
#[derive(Default)]
pub(crate) struct AddressCache {
    entries: Mutex<HashMap<IpAddr, RestrictedExpression>>,
}

impl AddressCache {
    const CAPACITY: usize = 4_096;

    /// `ip("<address>")`, with an IPv4-mapped IPv6 address given as IPv4 (Cedar rejects the
    /// mixed notation, and IPv4 ranges in policies must apply to such callers).
    pub(crate) fn ip(&self, address: IpAddr) -> RestrictedExpression {
        let address = address.to_canonical();
        if let Ok(entries) = self.entries.try_lock()
            && let Some(expr) = entries.get(&address)
        {
            return expr.clone();
        }
        let expr = RestrictedExpression::new_ip(address.to_string());
        if let Ok(mut entries) = self.entries.try_lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(address, expr.clone());
        }
        expr
    }
}

const SECONDS_PER_DAY: i64 = 86_400;

/// The hour of the day in UTC, 0-23.
pub(crate) fn hour_utc(unix: i64) -> i64 {
    unix.rem_euclid(SECONDS_PER_DAY) / 3_600
}

/// The ISO 8601 weekday in UTC: 1 = Monday to 7 = Sunday.
pub(crate) fn iso_weekday(unix: i64) -> i64 {
    // 1970-01-01 was a Thursday (ISO weekday 4).
    (unix.div_euclid(SECONDS_PER_DAY) + 3).rem_euclid(7) + 1
}
