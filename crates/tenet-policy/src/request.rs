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
    /// A person with a valid session, signed in through an OpenID Connect provider.
    User {
        /// The configured name of the provider that signed the person in.
        provider: String,
        /// The provider's subject (`sub`) for the person.
        subject: String,
        /// Verified email address, lowercase; empty when none was asserted.
        email: String,
        /// Display name; may be empty.
        name: String,
        /// Groups the provider asserted (the entity's parents).
        groups: Vec<String>,
    },
    /// A caller without a client certificate or session.
    Anonymous,
}

impl Principal {
    /// The Cedar entity id of a person: `<provider>:<subject>`.
    pub fn user_id(provider: &str, subject: &str) -> String {
        format!("{provider}:{subject}")
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A person's session; all defaults for workloads and anonymous callers.
    pub session: SessionFacts,
    /// The caller's device; all defaults when no device is known.
    pub device: DeviceFacts,
}

/// Facts about a person's session (the `session` record of the context).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionFacts {
    /// A valid session identified the caller.
    pub authenticated: bool,
    /// Names of the factors used in the session (`"oidc"`, `"webauthn"`, ...), sorted.
    pub factors: Vec<String>,
    /// A phishing-resistant factor was used in the session.
    pub phishing_resistant: bool,
    /// Seconds since sign-in (0 without a session).
    pub age_secs: i64,
    /// Seconds since the last second factor; -1 when none.
    pub mfa_age_secs: i64,
}

impl Default for SessionFacts {
    fn default() -> Self {
        SessionFacts {
            authenticated: false,
            factors: Vec::new(),
            phishing_resistant: false,
            age_secs: 0,
            mfa_age_secs: -1,
        }
    }
}

/// Facts about the caller's device (the `device` record of the context). The posture facts
/// are `"yes"`, `"no"` or `"unknown"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// The device id; empty when no device is known.
    pub id: String,
    /// The device presented its Tenet device certificate.
    pub enrolled: bool,
    /// Its posture meets the deployment's requirements.
    pub compliant: bool,
    /// Age of the posture in seconds; -1 when none is known.
    pub posture_age_secs: i64,
    /// Operating system name.
    pub os: String,
    /// Operating system version.
    pub os_version: String,
    /// Disk encryption.
    pub disk_encrypted: String,
    /// Host firewall.
    pub firewall: String,
    /// Screen lock.
    pub screen_lock: String,
    /// Endpoint protection running.
    pub endpoint_protection: String,
}

impl Default for DeviceFacts {
    fn default() -> Self {
        let unknown = || "unknown".to_owned();
        DeviceFacts {
            id: String::new(),
            enrolled: false,
            compliant: false,
            posture_age_secs: -1,
            os: String::new(),
            os_version: String::new(),
            disk_encrypted: unknown(),
            firewall: unknown(),
            screen_lock: unknown(),
            endpoint_protection: unknown(),
        }
    }
}

/// TLS facts of the connection; empty strings when a fact is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    user: EntityTypeName,
    group: EntityTypeName,
    anonymous: EntityUid,
    trust_domain: EntityTypeName,
    route: EntityTypeName,
    service: EntityTypeName,
    actions: Vec<ActionEntry>,
    addresses: AddressCache,
    contexts: ContextCache,
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
            user: type_name(types::USER)?,
            group: type_name(types::GROUP)?,
            anonymous: EntityUid::from_type_name_and_id(
                type_name(types::ANONYMOUS)?,
                EntityId::new(ANONYMOUS_ID),
            ),
            trust_domain: type_name(types::TRUST_DOMAIN)?,
            route: type_name(types::ROUTE)?,
            service: type_name(types::SERVICE)?,
            actions,
            addresses: AddressCache::default(),
            contexts: ContextCache::default(),
        })
    }

    /// Builds the Cedar request and entities for `req`, or says why it cannot be built.
    pub(crate) fn translate(&self, req: &AccessRequest) -> Result<CedarRequest, String> {
        let action = self
            .actions
            .iter()
            .find(|a| a.method == req.action)
            .ok_or_else(|| {
                format!(
                    "unknown method \"{}\": no such action",
                    req.action.escape_debug()
                )
            })?;

        let (principal, principal_entity, principal_keys) = self.principal(&req.principal)?;
        let (resource, resource_entity, resource_keys) = self.resource(&req.resource)?;
        let context = self.contexts.get_or_build(&req.context, || {
            context(&req.context, self.addresses.ip(req.context.source_ip))
        })?;

        // The entities are built to the schema's shapes; tests check them against the schema,
        // so no per-request schema check is needed here.
        let entities = request_entities(principal_entity, resource_entity, &action.entity)?;
        let request = Request::new(principal, action.uid.clone(), resource, context, None)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        Ok(CedarRequest {
            request,
            entities,
            principal_keys,
            resource_keys,
        })
    }

    fn principal(
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
            Principal::User {
                provider,
                subject,
                email,
                name,
                groups,
            } => {
                if provider.is_empty() || subject.is_empty() {
                    return Err("a user principal needs a provider and a subject".to_owned());
                }
                let uid = EntityUid::from_type_name_and_id(
                    self.user.clone(),
                    EntityId::new(Principal::user_id(provider, subject)),
                );
                let parents: HashSet<EntityUid> = groups
                    .iter()
                    .map(|g| EntityUid::from_type_name_and_id(self.group.clone(), EntityId::new(g)))
                    .collect();
                let attrs = HashMap::from([
                    ("email".to_owned(), string(email)),
                    ("name".to_owned(), string(name)),
                    ("provider".to_owned(), string(provider)),
                    ("subject".to_owned(), string(subject)),
                ]);
                let mut keys = vec![
                    ScopeKey::Any,
                    ScopeKey::Type(self.user.clone()),
                    ScopeKey::Under(uid.clone()),
                ];
                keys.extend(parents.iter().cloned().map(ScopeKey::Under));
                let entity = Entity::new(uid.clone(), attrs, parents)
                    .map_err(|e| format!("cannot build the principal entity: {e}"))?;
                Ok((uid, entity, keys))
            }
        }
    }

    fn resource(
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

/// The three entities of one request as a Cedar entity store.
///
/// INVARIANT: in the Tenet schema every hierarchy is one level deep (a workload in its trust
/// domain, a route in its service, a method in its action group), and the parents are never
/// entities of the store themselves. Each entity's parent set is therefore already its
/// transitive closure, so the store is built without Cedar recomputing it (a strongly
/// connected components pass that costs more than the rest of the request mapping); a
/// test compares the result with `Entities::from_entities`, which does recompute it.
fn request_entities(
    principal: Entity,
    resource: Entity,
    action: &Entity,
) -> Result<Entities, String> {
    use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
    let core =
        [principal, resource, action.clone()].map(|e| AsRef::<CoreEntity>::as_ref(&e).clone());
    CoreEntities::from_entities(
        core,
        None::<&NoEntitiesSchema>,
        TCComputation::AssumeAlreadyComputed,
        cedar_policy_core::extensions::Extensions::all_available(),
    )
    .map(Entities::from)
    .map_err(|e| format!("cannot build the request entities: {e}"))
}

type CoreEntity = cedar_policy_core::ast::Entity;

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
fn context(ctx: &RequestContext, source_ip: RestrictedExpression) -> Result<Context, String> {
    let tls = record([
        ("version", string(&ctx.tls.version)),
        ("sni", string(&ctx.tls.sni)),
        ("alpn", string(&ctx.tls.alpn)),
        ("mtls", RestrictedExpression::new_bool(ctx.tls.mtls)),
        ("client_serial", string(&ctx.tls.client_serial)),
    ])?;
    let time = record([
        ("unix", RestrictedExpression::new_long(ctx.unix_time)),
        (
            "hour_utc",
            RestrictedExpression::new_long(hour_utc(ctx.unix_time)),
        ),
        (
            "weekday",
            RestrictedExpression::new_long(iso_weekday(ctx.unix_time)),
        ),
    ])?;
    let session = &ctx.session;
    let session = record([
        (
            "authenticated",
            RestrictedExpression::new_bool(session.authenticated),
        ),
        (
            "factors",
            RestrictedExpression::new_set(session.factors.iter().map(|f| string(f))),
        ),
        (
            "phishing_resistant",
            RestrictedExpression::new_bool(session.phishing_resistant),
        ),
        ("age_secs", RestrictedExpression::new_long(session.age_secs)),
        (
            "mfa_age_secs",
            RestrictedExpression::new_long(session.mfa_age_secs),
        ),
    ])?;
    let d = &ctx.device;
    let device = record([
        ("id", string(&d.id)),
        ("enrolled", RestrictedExpression::new_bool(d.enrolled)),
        ("compliant", RestrictedExpression::new_bool(d.compliant)),
        (
            "posture_age_secs",
            RestrictedExpression::new_long(d.posture_age_secs),
        ),
        ("os", string(&d.os)),
        ("os_version", string(&d.os_version)),
        ("disk_encrypted", string(&d.disk_encrypted)),
        ("firewall", string(&d.firewall)),
        ("screen_lock", string(&d.screen_lock)),
        ("endpoint_protection", string(&d.endpoint_protection)),
    ])?;
    Context::from_pairs([
        ("session".to_owned(), session),
        ("device".to_owned(), device),
        ("source_ip".to_owned(), source_ip),
        ("tls".to_owned(), tls),
        ("time".to_owned(), time),
        ("protocol".to_owned(), string(&ctx.protocol)),
        (
            "risk".to_owned(),
            RestrictedExpression::new_long(i64::from(ctx.risk)),
        ),
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
struct AddressCache {
    entries: Mutex<HashMap<IpAddr, RestrictedExpression>>,
}

impl AddressCache {
    const CAPACITY: usize = 4_096;

    /// `ip("<address>")`, with an IPv4-mapped IPv6 address given as IPv4 (Cedar rejects the
    /// mixed notation, and IPv4 ranges in policies must apply to such callers).
    fn ip(&self, address: IpAddr) -> RestrictedExpression {
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

/// Cedar contexts by the facts they were built from. Building one evaluates every field as
/// a restricted expression (several microseconds); the facts of one connection change only
/// with the clock's second, so requests on a keep-alive connection mostly hit. Bounded
/// (cleared when full) and never waits for its lock, like [`AddressCache`].
#[derive(Default)]
struct ContextCache {
    entries: Mutex<HashMap<RequestContext, Context>>,
}

impl ContextCache {
    const CAPACITY: usize = 4_096;

    fn get_or_build(
        &self,
        facts: &RequestContext,
        build: impl FnOnce() -> Result<Context, String>,
    ) -> Result<Context, String> {
        if let Ok(entries) = self.entries.try_lock()
            && let Some(context) = entries.get(facts)
        {
            return Ok(context.clone());
        }
        let context = build()?;
        if let Ok(mut entries) = self.entries.try_lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(facts.clone(), context.clone());
        }
        Ok(context)
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

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use cedar_policy::{Entities, Request};

    use super::*;
    use crate::engine::tenet_schema;

    #[test]
    fn request_entities_equal_cedar_computing_the_closure_itself() {
        let vocabulary = Vocabulary::new().unwrap();
        for principal in [
            Principal::Anonymous,
            user(),
            Principal::Workload {
                spiffe_id: "spiffe://example.org/ns/a/sa/b".to_owned(),
                trust_domain: "example.org".to_owned(),
                path: "/ns/a/sa/b".to_owned(),
            },
        ] {
            let req = request(principal, IpAddr::V4(Ipv4Addr::LOCALHOST));
            for action in &vocabulary.actions {
                let (_, p, _) = vocabulary.principal(&req.principal).unwrap();
                let (_, r, _) = vocabulary.resource(&req.resource).unwrap();
                let ours = request_entities(p.clone(), r.clone(), &action.entity).unwrap();
                let cedar = Entities::from_entities([p, r, action.entity.clone()], None).unwrap();
                assert_eq!(ours, cedar, "{}", action.method);
            }
        }
    }

    fn request(principal: Principal, ip: IpAddr) -> AccessRequest {
        AccessRequest {
            principal,
            action: "PATCH".to_owned(),
            resource: RouteResource {
                route: "orders".to_owned(),
                service: "shop".to_owned(),
                host: "shop.example.org".to_owned(),
                path: "/orders/7".to_owned(),
            },
            context: RequestContext {
                source_ip: ip,
                tls: TlsFacts::default(),
                unix_time: -1,
                protocol: "gRPC".to_owned(),
                risk: 100,
                session: SessionFacts::default(),
                device: DeviceFacts::default(),
            },
        }
    }

    fn user() -> Principal {
        Principal::User {
            provider: "corp".to_owned(),
            subject: "248289761001".to_owned(),
            email: "jane@example.org".to_owned(),
            name: "Jane".to_owned(),
            groups: vec!["engineering".to_owned(), "admins".to_owned()],
        }
    }

    /// The request and entities built without a schema check conform to the schema.
    #[test]
    fn translated_requests_conform_to_the_schema() {
        let schema = tenet_schema().unwrap();
        let vocabulary = Vocabulary::new().unwrap();
        let workload = Principal::Workload {
            spiffe_id: "spiffe://example.org/ns/shop/sa/frontend".to_owned(),
            trust_domain: "example.org".to_owned(),
            path: "/ns/shop/sa/frontend".to_owned(),
        };
        let ips = [
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0x0102, 0x0304)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0x0102, 0x0304)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ];
        for principal in [workload, user(), Principal::Anonymous] {
            for ip in ips {
                for &(method, _) in &METHODS {
                    let mut req = request(principal.clone(), ip);
                    if matches!(principal, Principal::User { .. }) {
                        req.context.session = SessionFacts {
                            authenticated: true,
                            factors: vec!["oidc".to_owned(), "webauthn".to_owned()],
                            phishing_resistant: true,
                            age_secs: 30,
                            mfa_age_secs: 10,
                        };
                        req.context.device.id = "d1".to_owned();
                        req.context.device.enrolled = true;
                    }
                    req.action = method.to_owned();
                    let cedar = vocabulary.translate(&req).unwrap();
                    let r = &cedar.request;
                    Request::new(
                        r.principal().unwrap().clone(),
                        r.action().unwrap().clone(),
                        r.resource().unwrap().clone(),
                        r.context().unwrap().clone(),
                        Some(&schema),
                    )
                    .unwrap_or_else(|e| panic!("{method} {ip}: {e}"));
                    Entities::from_entities(cedar.entities.iter().cloned(), Some(&schema))
                        .unwrap_or_else(|e| panic!("{method} {ip}: {e}"));
                }
            }
        }
    }

    #[test]
    fn the_action_table_matches_the_schema() {
        let schema = tenet_schema().unwrap();
        let vocabulary = Vocabulary::new().unwrap();
        let from_schema = schema.action_entities().unwrap();
        assert_eq!(from_schema.len(), METHODS.len() + 2);
        for action in &vocabulary.actions {
            let declared = from_schema.get(&action.uid).expect(action.method);
            assert!(declared.deep_eq(&action.entity), "{}", action.method);
        }
    }

    fn value(expr: RestrictedExpression) -> cedar_policy::EvalResult {
        let context = Context::from_pairs([("ip".to_owned(), expr)]).unwrap();
        context.get("ip").unwrap()
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let cache = AddressCache::default();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        let expected = value(RestrictedExpression::new_ip("10.0.0.1"));
        assert_eq!(value(cache.ip(mapped)), expected);
        // Served from the cache the second time, with the same value.
        assert_eq!(value(cache.ip(mapped)), expected);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_ne!(value(cache.ip(other)), expected);
    }

    #[test]
    fn clock_fields() {
        // 1970-01-01 was a Thursday; 1969-12-31T23:59:59Z a Wednesday.
        assert_eq!((hour_utc(0), iso_weekday(0)), (0, 4));
        assert_eq!((hour_utc(-1), iso_weekday(-1)), (23, 3));
        // 2024-01-07T23:00:00Z, a Sunday; an hour later, Monday.
        assert_eq!(
            (hour_utc(1_704_668_400), iso_weekday(1_704_668_400)),
            (23, 7)
        );
        assert_eq!(
            (hour_utc(1_704_672_000), iso_weekday(1_704_672_000)),
            (0, 1)
        );
        for t in [i64::MIN, i64::MAX] {
            assert!((0..24).contains(&hour_utc(t)));
            assert!((1..=7).contains(&iso_weekday(t)));
        }
    }
}
