//! The request as the PEP describes it, and its mapping onto the Tenet schema's Cedar request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::RestrictedExpression;
use cedar_policy_core::ast::{
    self, Eid, Entity as CoreEntity, EntityType, EntityUID, EntityUIDEntry, PartialValue, Value,
};
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::evaluator::RestrictedEvaluator;
use cedar_policy_core::extensions::Extensions;
use serde::{Deserialize, Serialize};

use crate::decision::Explanation;
use crate::index::{Scope, ScopeIndex};
use crate::schema::{ANONYMOUS_ID, METHODS, types};

/// One request to authorize: plain data the gateway fills in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// An [`AccessRequest`] by reference, field for field: what the gateway looks its decision
/// memo up with ([`crate::PolicySnapshot::explain_memoized_ref`]), so that a request the memo
/// answers copies none of its text. The request's parts that a connection or a session repeats
/// (the principal, the TLS, session and device facts) are borrowed whole.
// Hashed through the references: a view hashes its referents, so equal views hash alike.
#[derive(Debug, Clone, Copy, Hash)]
pub struct AccessRequestRef<'a> {
    /// [`AccessRequest::principal`].
    pub principal: &'a Principal,
    /// [`AccessRequest::action`].
    pub action: &'a str,
    /// [`RouteResource::route`].
    pub route: &'a str,
    /// [`RouteResource::service`].
    pub service: &'a str,
    /// [`RouteResource::host`].
    pub host: &'a str,
    /// [`RouteResource::path`].
    pub path: &'a str,
    /// [`RequestContext::source_ip`].
    pub source_ip: IpAddr,
    /// [`RequestContext::tls`].
    pub tls: &'a TlsFacts,
    /// [`RequestContext::unix_time`].
    pub unix_time: i64,
    /// [`RequestContext::protocol`].
    pub protocol: &'a str,
    /// [`RequestContext::risk`].
    pub risk: u8,
    /// [`RequestContext::session`].
    pub session: &'a SessionFacts,
    /// [`RequestContext::device`].
    pub device: &'a DeviceFacts,
}

impl AccessRequest {
    /// This request by reference.
    pub fn borrowed(&self) -> AccessRequestRef<'_> {
        // Exhaustive: a new field does not compile until the view has it too.
        let Self {
            principal,
            action,
            resource:
                RouteResource {
                    route,
                    service,
                    host,
                    path,
                },
            context:
                RequestContext {
                    source_ip,
                    tls,
                    unix_time,
                    protocol,
                    risk,
                    session,
                    device,
                },
        } = self;
        AccessRequestRef {
            principal,
            action,
            route,
            service,
            host,
            path,
            source_ip: *source_ip,
            tls,
            unix_time: *unix_time,
            protocol,
            risk: *risk,
            session,
            device,
        }
    }
}

impl AccessRequestRef<'_> {
    /// The request this view borrows from, as owned data.
    pub fn to_request(&self) -> AccessRequest {
        let Self {
            principal,
            action,
            route,
            service,
            host,
            path,
            source_ip,
            tls,
            unix_time,
            protocol,
            risk,
            session,
            device,
        } = *self;
        AccessRequest {
            principal: principal.clone(),
            action: action.to_owned(),
            resource: RouteResource {
                route: route.to_owned(),
                service: service.to_owned(),
                host: host.to_owned(),
                path: path.to_owned(),
            },
            context: RequestContext {
                source_ip,
                tls: tls.clone(),
                unix_time,
                protocol: protocol.to_owned(),
                risk,
                session: session.clone(),
                device: device.clone(),
            },
        }
    }

    /// Every field equal to `other`'s (strings compared with [`same_str`]).
    fn same(&self, other: &AccessRequestRef<'_>) -> bool {
        // Exhaustive: a new field does not compile until it is compared here.
        let Self {
            principal,
            action,
            route,
            service,
            host,
            path,
            source_ip,
            tls,
            unix_time,
            protocol,
            risk,
            session,
            device,
        } = *self;
        same_str(action, other.action)
            && same_str(route, other.route)
            && same_str(service, other.service)
            && same_str(host, other.host)
            && same_str(path, other.path)
            && source_ip == other.source_ip
            && unix_time == other.unix_time
            && risk == other.risk
            && same_str(protocol, other.protocol)
            && principal.same(other.principal)
            && same_tls(tls, other.tls)
            && same_session(session, other.session)
            && same_device(device, other.device)
    }
}

/// The caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A sign-in in the session verified the person: a WebAuthn authenticator reported user
    /// verification (PIN or biometric). A security key used without it, TOTP and recovery
    /// codes never set it.
    #[serde(default)]
    pub user_verified: bool,
    /// Seconds since sign-in (0 without a session).
    pub age_secs: i64,
    /// Seconds since the last second factor; -1 when none.
    pub mfa_age_secs: i64,
}

impl SessionFacts {
    /// The facts of a caller without a session (the default), shared.
    pub fn none() -> &'static SessionFacts {
        static NONE: std::sync::LazyLock<SessionFacts> =
            std::sync::LazyLock::new(SessionFacts::default);
        &NONE
    }
}

impl Default for SessionFacts {
    fn default() -> Self {
        SessionFacts {
            authenticated: false,
            factors: Vec::new(),
            phishing_resistant: false,
            user_verified: false,
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

impl DeviceFacts {
    /// The facts of an unknown device (the default), shared.
    pub fn unknown() -> &'static DeviceFacts {
        static UNKNOWN: std::sync::LazyLock<DeviceFacts> =
            std::sync::LazyLock::new(DeviceFacts::default);
        &UNKNOWN
    }
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
    uid: EntityUID,
    entity: Arc<CoreEntity>,
}

/// The Cedar names of the Tenet schema, parsed once per policy snapshot, and the caches of
/// what requests repeat (principals, addresses, contexts), which therefore start empty with
/// every snapshot.
pub(crate) struct Vocabulary {
    workload: EntityType,
    user: EntityType,
    group: EntityType,
    anonymous: EntityUID,
    trust_domain: EntityType,
    route: EntityType,
    service: EntityType,
    actions: Vec<ActionEntry>,
    principals: PrincipalCache,
    addresses: AddressCache,
    contexts: ContextCache,
}

/// A request translated for Cedar, with the principal and resource the scope index looks up.
pub(crate) struct CedarRequest {
    request: ast::Request,
    entities: CoreEntities,
    principal: Arc<PrincipalEntity>,
    /// The route and its service.
    resource: [EntityUID; 2],
}

impl CedarRequest {
    /// Decides the request over `index`.
    pub(crate) fn decide(self, index: &ScopeIndex, find_near_misses: bool) -> Explanation {
        let Self {
            request,
            entities,
            principal,
            resource,
        } = self;
        let [route, _] = &resource;
        let resource = Scope {
            ty: route.entity_type(),
            uids: &resource,
        };
        index.explain(
            request,
            &entities,
            principal.scope(),
            resource,
            find_near_misses,
        )
    }
}

/// A principal as a Cedar entity, with its uid and ancestors for the scope index.
struct PrincipalEntity {
    entity: Arc<CoreEntity>,
    /// The uid first, then every ancestor (the entity's parents: hierarchies are one level).
    lineage: Vec<EntityUID>,
}

impl PrincipalEntity {
    fn new(entity: CoreEntity) -> Self {
        let lineage = std::iter::once(entity.uid().clone())
            .chain(entity.ancestors().cloned())
            .collect();
        Self {
            entity: Arc::new(entity),
            lineage,
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            ty: self.entity.uid().entity_type(),
            uids: &self.lineage,
        }
    }
}

impl Vocabulary {
    pub(crate) fn new() -> Result<Self, String> {
        let type_name = |name: &str| EntityType::from_str(name).map_err(|e| format!("{name}: {e}"));
        let action_type = type_name(types::ACTION)?;
        let action_uid =
            |id: &str| EntityUID::from_components(action_type.clone(), Eid::new(id), None);
        let actions = METHODS
            .iter()
            .map(|&(method, group)| {
                let uid = action_uid(method);
                let parents = group.map(action_uid).into_iter().collect();
                ActionEntry {
                    method,
                    entity: Arc::new(entity(uid.clone(), [], parents)),
                    uid,
                }
            })
            .collect();
        Ok(Self {
            workload: type_name(types::WORKLOAD)?,
            user: type_name(types::USER)?,
            group: type_name(types::GROUP)?,
            anonymous: EntityUID::from_components(
                type_name(types::ANONYMOUS)?,
                Eid::new(ANONYMOUS_ID),
                None,
            ),
            trust_domain: type_name(types::TRUST_DOMAIN)?,
            route: type_name(types::ROUTE)?,
            service: type_name(types::SERVICE)?,
            actions,
            principals: PrincipalCache::default(),
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

        let principal = self
            .principals
            .get_or_build(&req.principal, || self.principal(&req.principal))?;
        let (resource, resource_entity) = self.resource(&req.resource);
        let context = self.contexts.get_or_build(&req.context, || {
            Ok(context(
                &req.context,
                self.addresses.ip(req.context.source_ip)?,
            ))
        })?;

        // The entities are built to the schema's shapes; tests check them against the schema,
        // so no per-request schema check is needed here.
        let entities = request_entities(
            Arc::clone(&principal.entity),
            Arc::new(resource_entity),
            Arc::clone(&action.entity),
        )?;
        let [route, _] = &resource;
        let request = ast::Request::new_unchecked(
            EntityUIDEntry::known(principal.entity.uid().clone(), None),
            EntityUIDEntry::known(action.uid.clone(), None),
            EntityUIDEntry::known(route.clone(), None),
            Some(context),
        );
        Ok(CedarRequest {
            request,
            entities,
            principal,
            resource,
        })
    }

    fn principal(&self, principal: &Principal) -> Result<PrincipalEntity, String> {
        match principal {
            Principal::Anonymous => Ok(PrincipalEntity::new(CoreEntity::with_uid(
                self.anonymous.clone(),
            ))),
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
                let uid = self.uid(&self.workload, spiffe_id);
                let parent = self.uid(&self.trust_domain, trust_domain);
                Ok(PrincipalEntity::new(entity(
                    uid,
                    [("trust_domain", trust_domain), ("path", path)],
                    HashSet::from([parent]),
                )))
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
                let uid = self.uid(&self.user, &Principal::user_id(provider, subject));
                let parents = groups.iter().map(|g| self.uid(&self.group, g)).collect();
                Ok(PrincipalEntity::new(entity(
                    uid,
                    [
                        ("email", email),
                        ("name", name),
                        ("provider", provider),
                        ("subject", subject),
                    ],
                    parents,
                )))
            }
        }
    }

    /// The route's entity, with the uids of the route and of its service.
    fn resource(&self, route: &RouteResource) -> ([EntityUID; 2], CoreEntity) {
        let uid = self.uid(&self.route, &route.route);
        let parent = self.uid(&self.service, &route.service);
        let entity = entity(
            uid.clone(),
            [
                ("service", &route.service),
                ("host", &route.host),
                ("path", &route.path),
            ],
            HashSet::from([parent.clone()]),
        );
        ([uid, parent], entity)
    }

    fn uid(&self, ty: &EntityType, id: &str) -> EntityUID {
        EntityUID::from_components(ty.clone(), Eid::new(id), None)
    }
}

/// An entity with string attributes and its parents, built as Cedar's `Entity::new` builds it
/// from string expressions (tests compare the two).
fn entity<'a>(
    uid: EntityUID,
    attrs: impl IntoIterator<Item = (&'static str, &'a String)>,
    parents: HashSet<EntityUID>,
) -> CoreEntity {
    CoreEntity::new_with_attr_partial_value(
        uid,
        attrs
            .into_iter()
            .map(|(name, value)| (name.into(), PartialValue::from(string(value)))),
        HashSet::new(),
        parents,
        [],
    )
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
    principal: Arc<CoreEntity>,
    resource: Arc<CoreEntity>,
    action: Arc<CoreEntity>,
) -> Result<CoreEntities, String> {
    CoreEntities::new()
        .add_entities(
            [principal, resource, action],
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        )
        .map_err(|e| format!("cannot build the request entities: {e}"))
}

fn string(value: &str) -> Value {
    Value::from(value)
}

fn long(value: i64) -> Value {
    Value::from(value)
}

fn boolean(value: bool) -> Value {
    Value::from(value)
}

/// The `context` record of the schema; `source_ip` is the address as a Cedar `ip(...)` value.
/// Built as Cedar builds it from the record of restricted expressions (tests compare the two).
fn context(ctx: &RequestContext, source_ip: Value) -> ast::Context {
    let tls = Value::record(
        [
            ("version", string(&ctx.tls.version)),
            ("sni", string(&ctx.tls.sni)),
            ("alpn", string(&ctx.tls.alpn)),
            ("mtls", boolean(ctx.tls.mtls)),
            ("client_serial", string(&ctx.tls.client_serial)),
        ],
        None,
    );
    let time = Value::record(
        [
            ("unix", long(ctx.unix_time)),
            ("hour_utc", long(hour_utc(ctx.unix_time))),
            ("weekday", long(iso_weekday(ctx.unix_time))),
        ],
        None,
    );
    let session = &ctx.session;
    let session = Value::record(
        [
            ("authenticated", boolean(session.authenticated)),
            (
                "factors",
                Value::set(session.factors.iter().map(|f| string(f)), None),
            ),
            ("phishing_resistant", boolean(session.phishing_resistant)),
            ("user_verified", boolean(session.user_verified)),
            ("age_secs", long(session.age_secs)),
            ("mfa_age_secs", long(session.mfa_age_secs)),
        ],
        None,
    );
    let d = &ctx.device;
    let device = Value::record(
        [
            ("id", string(&d.id)),
            ("enrolled", boolean(d.enrolled)),
            ("compliant", boolean(d.compliant)),
            ("posture_age_secs", long(d.posture_age_secs)),
            ("os", string(&d.os)),
            ("os_version", string(&d.os_version)),
            ("disk_encrypted", string(&d.disk_encrypted)),
            ("firewall", string(&d.firewall)),
            ("screen_lock", string(&d.screen_lock)),
            ("endpoint_protection", string(&d.endpoint_protection)),
        ],
        None,
    );
    ast::Context::Value(Arc::new(BTreeMap::from([
        ("session".into(), session),
        ("device".into(), device),
        ("source_ip".into(), source_ip),
        ("tls".into(), tls),
        ("time".into(), time),
        ("protocol".into(), string(&ctx.protocol)),
        ("risk".into(), long(i64::from(ctx.risk))),
    ])))
}

/// A key of the caches: hashed as usual, compared field by field with [`same_str`].
trait CacheKey: Hash + Clone {
    fn same(&self, other: &Self) -> bool;
}

/// String equality that never calls `memcmp` for empty strings.
///
/// An empty `String` has a dangling pointer, and comparing two of them with `==` calls the C
/// library's `memcmp` with it and a zero length; on the benchmark machine (x86-64 with AVX-512,
/// glibc) that call measured 120 ns, against 1 ns for two equal short strings. The request
/// facts have many fields that are usually empty (a workload's device facts, absent TLS
/// facts), and the caches compare them on every hit.
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a.as_bytes() == b.as_bytes())
}

fn same_strs(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_str(a, b))
}

impl CacheKey for IpAddr {
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl CacheKey for Principal {
    // Every field is compared: the entity is built from all of them.
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Anonymous, Self::Anonymous) => true,
            (
                Self::Workload {
                    spiffe_id,
                    trust_domain,
                    path,
                },
                Self::Workload {
                    spiffe_id: spiffe_id_b,
                    trust_domain: trust_domain_b,
                    path: path_b,
                },
            ) => {
                same_str(spiffe_id, spiffe_id_b)
                    && same_str(trust_domain, trust_domain_b)
                    && same_str(path, path_b)
            }
            (
                Self::User {
                    provider,
                    subject,
                    email,
                    name,
                    groups,
                },
                Self::User {
                    provider: provider_b,
                    subject: subject_b,
                    email: email_b,
                    name: name_b,
                    groups: groups_b,
                },
            ) => {
                same_str(provider, provider_b)
                    && same_str(subject, subject_b)
                    && same_str(email, email_b)
                    && same_str(name, name_b)
                    && same_strs(groups, groups_b)
            }
            _ => false,
        }
    }
}

impl CacheKey for RequestContext {
    // Every field is compared: the context is built from all of them. The destructuring is
    // exhaustive, so a new field does not compile until it is compared here.
    fn same(&self, other: &Self) -> bool {
        let Self {
            source_ip,
            tls,
            unix_time,
            protocol,
            risk,
            session,
            device,
        } = self;
        *source_ip == other.source_ip
            && *unix_time == other.unix_time
            && *risk == other.risk
            && same_str(protocol, &other.protocol)
            && same_tls(tls, &other.tls)
            && same_session(session, &other.session)
            && same_device(device, &other.device)
    }
}

// The three comparisons below destructure exhaustively: a new fact does not compile until it
// is compared.

fn same_tls(a: &TlsFacts, b: &TlsFacts) -> bool {
    let TlsFacts {
        version,
        sni,
        alpn,
        mtls,
        client_serial,
    } = a;
    same_str(version, &b.version)
        && same_str(sni, &b.sni)
        && same_str(alpn, &b.alpn)
        && *mtls == b.mtls
        && same_str(client_serial, &b.client_serial)
}

fn same_session(a: &SessionFacts, b: &SessionFacts) -> bool {
    let SessionFacts {
        authenticated,
        factors,
        phishing_resistant,
        user_verified,
        age_secs,
        mfa_age_secs,
    } = a;
    *authenticated == b.authenticated
        && same_strs(factors, &b.factors)
        && *phishing_resistant == b.phishing_resistant
        && *user_verified == b.user_verified
        && *age_secs == b.age_secs
        && *mfa_age_secs == b.mfa_age_secs
}

fn same_device(a: &DeviceFacts, b: &DeviceFacts) -> bool {
    let DeviceFacts {
        id,
        enrolled,
        compliant,
        posture_age_secs,
        os,
        os_version,
        disk_encrypted,
        firewall,
        screen_lock,
        endpoint_protection,
    } = a;
    same_str(id, &b.id)
        && *enrolled == b.enrolled
        && *compliant == b.compliant
        && *posture_age_secs == b.posture_age_secs
        && same_str(os, &b.os)
        && same_str(os_version, &b.os_version)
        && same_str(disk_encrypted, &b.disk_encrypted)
        && same_str(firewall, &b.firewall)
        && same_str(screen_lock, &b.screen_lock)
        && same_str(endpoint_protection, &b.endpoint_protection)
}

/// A bounded map that never waits: when another thread holds it, the caller builds the value
/// afresh. When full it is cleared, so memory stays bounded whatever callers send.
///
/// Entries are filed under the key's hash and hold the key, which must be [`CacheKey::same`]
/// as the one looked up: two keys with one hash share a slot, the later replacing the earlier.
///
/// The map's own hasher is foldhash: its keys are already hashes (of a seed the callers do
/// not know), and a collision, contrived or not, costs no more than a miss.
struct Cache<K, V, S = RandomState> {
    hasher: S,
    entries: Mutex<HashMap<u64, (K, V), foldhash::fast::RandomState>>,
}

impl<K, V, S: Default> Default for Cache<K, V, S> {
    fn default() -> Self {
        Self {
            hasher: S::default(),
            entries: Mutex::new(HashMap::default()),
        }
    }
}

impl<K, V: Clone, S: BuildHasher> Cache<K, V, S> {
    const CAPACITY: usize = 4_096;

    /// The value filed under `probe`'s hash whose key `matches`, or the key and value `build`
    /// makes, filed under that hash. `matches(k)` must hold for the key `build` makes.
    fn get_or_insert_by<Q: Hash + ?Sized, E>(
        &self,
        probe: &Q,
        matches: impl Fn(&K) -> bool,
        build: impl FnOnce() -> Result<(K, V), E>,
    ) -> Result<V, E> {
        let hash = self.hasher.hash_one(probe);
        if let Ok(entries) = self.entries.try_lock()
            && let Some((_, value)) = entries.get(&hash).filter(|(k, _)| matches(k))
        {
            return Ok(value.clone());
        }
        let (key, value) = build()?;
        if let Ok(mut entries) = self.entries.try_lock() {
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
            entries.insert(hash, (key, value.clone()));
        }
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }
}

impl<K: CacheKey, V: Clone, S: BuildHasher> Cache<K, V, S> {
    fn get_or_build<E>(&self, key: &K, build: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        self.get_or_insert_by(key, |k| k.same(key), || Ok((key.clone(), build()?)))
    }
}

/// Principals as Cedar entities, by the principal they were built from. A principal's entity
/// depends on nothing else (every attribute and parent comes from the [`Principal`] value, and
/// the whole value is the key), and a caller repeats it on every request of a connection.
/// A principal that cannot be built is not cached.
#[derive(Default)]
struct PrincipalCache(Cache<Principal, Arc<PrincipalEntity>>);

impl PrincipalCache {
    fn get_or_build(
        &self,
        principal: &Principal,
        build: impl FnOnce() -> Result<PrincipalEntity, String>,
    ) -> Result<Arc<PrincipalEntity>, String> {
        self.0.get_or_build(principal, || build().map(Arc::new))
    }
}

/// Recently seen source addresses and their Cedar `ip("...")` values.
///
/// Evaluating that extension call costs several microseconds (Cedar parses the function name
/// each time), more than the rest of the context together, and callers repeat.
#[derive(Default)]
struct AddressCache(Cache<IpAddr, Value>);

impl AddressCache {
    /// `ip("<address>")`, with an IPv4-mapped IPv6 address given as IPv4 (Cedar rejects the
    /// mixed notation, and IPv4 ranges in policies must apply to such callers).
    fn ip(&self, address: IpAddr) -> Result<Value, String> {
        let address = address.to_canonical();
        self.0.get_or_build(&address, || {
            let expr = RestrictedExpression::new_ip(address.to_string());
            RestrictedEvaluator::new(Extensions::all_available())
                .interpret(expr.as_ref().as_borrowed())
                .map_err(|e| format!("cannot build the request context: {e}"))
        })
    }
}

/// The explanations of one policy snapshot's recent decisions, by the whole request.
///
/// A decision is a function of the snapshot and of the request alone: the entities are built
/// from the request, the context carries the clock's second, and Cedar's evaluation is pure.
/// So an identical request (every field equal, the second included) decided by the same
/// snapshot gets the same explanation, and the memo lives and dies with its snapshot (a
/// reload starts an empty one). A keep-alive caller repeating a request within a second hits;
/// anything else is decided afresh and remembered, at the cost of hashing the request.
///
/// Memory stays small whatever callers send: a request whose caller-chosen text (path, host,
/// method, a person's groups) exceeds [`DecisionMemo::MAX_REMEMBERED_TEXT`] bytes is decided
/// but not remembered, so the memo holds at most its capacity times that much of it.
///
/// Keys are hashed with foldhash, several times faster than SipHash on a request's few hundred
/// bytes: two requests with one hash share a slot (see [`Cache`]), so a collision costs a
/// decision, never a wrong answer.
#[derive(Default)]
pub(crate) struct DecisionMemo(Cache<AccessRequest, Arc<Explanation>, foldhash::fast::RandomState>);

impl DecisionMemo {
    /// The most caller-chosen text a remembered request holds.
    pub(crate) const MAX_REMEMBERED_TEXT: usize = 1_024;

    /// The memo's explanation of `req`, or `decide`'s of the owned request, remembered.
    pub(crate) fn get_or_decide(
        &self,
        req: AccessRequestRef<'_>,
        decide: impl FnOnce(&AccessRequest) -> Explanation,
    ) -> Arc<Explanation> {
        if caller_text_len(&req) > Self::MAX_REMEMBERED_TEXT {
            return Arc::new(decide(&req.to_request()));
        }
        // Filed under the view's hash, and every key is compared as a view: an owned request
        // is never hashed, so the two can never disagree.
        let Ok::<_, std::convert::Infallible>(explanation) = self.0.get_or_insert_by(
            &req,
            |key| key.borrowed().same(&req),
            || {
                let owned = req.to_request();
                let explanation = Arc::new(decide(&owned));
                Ok((owned, explanation))
            },
        );
        explanation
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The bytes of a request's text that its caller chooses freely; the rest is bounded by the
/// gateway (TLS facts, session and device facts, the route's names).
fn caller_text_len(req: &AccessRequestRef<'_>) -> usize {
    let principal = match req.principal {
        Principal::Workload { spiffe_id, .. } => spiffe_id.len() * 2,
        Principal::User {
            provider,
            subject,
            email,
            name,
            groups,
        } => {
            provider.len()
                + subject.len()
                + email.len()
                + name.len()
                + groups.iter().map(String::len).sum::<usize>()
        }
        Principal::Anonymous => 0,
    };
    principal + req.action.len() + req.host.len() + req.path.len()
}

/// Cedar contexts by the facts they were built from. Building one costs more than the rest of
/// the request mapping; the facts of one connection change only with the clock's second, so
/// requests on a keep-alive connection mostly hit.
#[derive(Default)]
struct ContextCache(Cache<RequestContext, ast::Context>);

impl ContextCache {
    fn get_or_build(
        &self,
        facts: &RequestContext,
        build: impl FnOnce() -> Result<ast::Context, String>,
    ) -> Result<ast::Context, String> {
        self.0.get_or_build(facts, build)
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

    use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, Request};

    use super::*;
    use crate::engine::tenet_schema;

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

    fn workload(path: &str) -> Principal {
        Principal::Workload {
            spiffe_id: format!("spiffe://example.org{path}"),
            trust_domain: "example.org".to_owned(),
            path: path.to_owned(),
        }
    }

    const IPS: [IpAddr; 6] = [
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0x0a00, 0, 0x0001)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0x0102, 0x0304)),
        IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0x0102, 0x0304)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];

    /// A request with every context fact set to something other than its default.
    fn busy(principal: Principal, ip: IpAddr) -> AccessRequest {
        let mut req = request(principal, ip);
        req.context.tls = TlsFacts {
            version: "TLSv1.3".to_owned(),
            sni: "shop.example.org".to_owned(),
            alpn: "h2".to_owned(),
            mtls: true,
            client_serial: "4f2a".to_owned(),
        };
        req.context.unix_time = 1_704_668_400;
        req.context.risk = 7;
        req.context.session = SessionFacts {
            authenticated: true,
            factors: vec!["webauthn".to_owned(), "oidc".to_owned()],
            phishing_resistant: true,
            user_verified: true,
            age_secs: 30,
            mfa_age_secs: 10,
        };
        req.context.device = DeviceFacts {
            id: "d1".to_owned(),
            enrolled: true,
            compliant: true,
            posture_age_secs: 12,
            os: "linux".to_owned(),
            os_version: "6.1".to_owned(),
            disk_encrypted: "yes".to_owned(),
            firewall: "no".to_owned(),
            screen_lock: "yes".to_owned(),
            endpoint_protection: "unknown".to_owned(),
        };
        req
    }

    /// How Cedar's public API builds the entities and the context from restricted
    /// expressions: the reference the direct construction must equal.
    mod reference {
        use std::collections::{HashMap, HashSet};

        use cedar_policy::{
            Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
        };

        use super::super::{Principal, RequestContext, RouteResource, hour_utc, iso_weekday};
        use crate::schema::{ANONYMOUS_ID, types};

        fn uid(ty: &str, id: &str) -> EntityUid {
            EntityUid::from_type_name_and_id(
                ty.parse::<EntityTypeName>().unwrap(),
                EntityId::new(id),
            )
        }

        fn string(value: &str) -> RestrictedExpression {
            RestrictedExpression::new_string(value.to_owned())
        }

        fn attrs<const N: usize>(
            pairs: [(&str, &String); N],
        ) -> HashMap<String, RestrictedExpression> {
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), string(v)))
                .collect()
        }

        pub(super) fn principal(principal: &Principal) -> Entity {
            match principal {
                Principal::Anonymous => Entity::with_uid(uid(types::ANONYMOUS, ANONYMOUS_ID)),
                Principal::Workload {
                    spiffe_id,
                    trust_domain,
                    path,
                } => Entity::new(
                    uid(types::WORKLOAD, spiffe_id),
                    attrs([("trust_domain", trust_domain), ("path", path)]),
                    HashSet::from([uid(types::TRUST_DOMAIN, trust_domain)]),
                )
                .unwrap(),
                Principal::User {
                    provider,
                    subject,
                    email,
                    name,
                    groups,
                } => Entity::new(
                    uid(types::USER, &Principal::user_id(provider, subject)),
                    attrs([
                        ("email", email),
                        ("name", name),
                        ("provider", provider),
                        ("subject", subject),
                    ]),
                    groups.iter().map(|g| uid(types::GROUP, g)).collect(),
                )
                .unwrap(),
            }
        }

        pub(super) fn resource(route: &RouteResource) -> Entity {
            Entity::new(
                uid(types::ROUTE, &route.route),
                attrs([
                    ("service", &route.service),
                    ("host", &route.host),
                    ("path", &route.path),
                ]),
                HashSet::from([uid(types::SERVICE, &route.service)]),
            )
            .unwrap()
        }

        fn record<const N: usize>(
            fields: [(&str, RestrictedExpression); N],
        ) -> RestrictedExpression {
            RestrictedExpression::new_record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .unwrap()
        }

        pub(super) fn context(ctx: &RequestContext) -> Context {
            let long = RestrictedExpression::new_long;
            let boolean = RestrictedExpression::new_bool;
            let (s, d) = (&ctx.session, &ctx.device);
            Context::from_pairs([
                (
                    "session".to_owned(),
                    record([
                        ("authenticated", boolean(s.authenticated)),
                        (
                            "factors",
                            RestrictedExpression::new_set(s.factors.iter().map(|f| string(f))),
                        ),
                        ("phishing_resistant", boolean(s.phishing_resistant)),
                        ("user_verified", boolean(s.user_verified)),
                        ("age_secs", long(s.age_secs)),
                        ("mfa_age_secs", long(s.mfa_age_secs)),
                    ]),
                ),
                (
                    "device".to_owned(),
                    record([
                        ("id", string(&d.id)),
                        ("enrolled", boolean(d.enrolled)),
                        ("compliant", boolean(d.compliant)),
                        ("posture_age_secs", long(d.posture_age_secs)),
                        ("os", string(&d.os)),
                        ("os_version", string(&d.os_version)),
                        ("disk_encrypted", string(&d.disk_encrypted)),
                        ("firewall", string(&d.firewall)),
                        ("screen_lock", string(&d.screen_lock)),
                        ("endpoint_protection", string(&d.endpoint_protection)),
                    ]),
                ),
                (
                    "source_ip".to_owned(),
                    RestrictedExpression::new_ip(ctx.source_ip.to_canonical().to_string()),
                ),
                (
                    "tls".to_owned(),
                    record([
                        ("version", string(&ctx.tls.version)),
                        ("sni", string(&ctx.tls.sni)),
                        ("alpn", string(&ctx.tls.alpn)),
                        ("mtls", boolean(ctx.tls.mtls)),
                        ("client_serial", string(&ctx.tls.client_serial)),
                    ]),
                ),
                (
                    "time".to_owned(),
                    record([
                        ("unix", long(ctx.unix_time)),
                        ("hour_utc", long(hour_utc(ctx.unix_time))),
                        ("weekday", long(iso_weekday(ctx.unix_time))),
                    ]),
                ),
                ("protocol".to_owned(), string(&ctx.protocol)),
                ("risk".to_owned(), long(i64::from(ctx.risk))),
            ])
            .unwrap()
        }
    }

    /// The entity store of a translated request equals the one Cedar builds from its public
    /// API (attributes evaluated from restricted expressions, the schema's action entity,
    /// the transitive closure computed), entity by entity and attribute by attribute.
    #[test]
    fn request_entities_equal_cedar_building_them_itself() {
        let schema = tenet_schema().unwrap();
        let actions = schema.action_entities().unwrap();
        let vocabulary = Vocabulary::new().unwrap();
        for principal in [Principal::Anonymous, user(), workload("/ns/a/sa/b")] {
            for &(method, _) in &METHODS {
                let mut req = busy(principal.clone(), IpAddr::V4(Ipv4Addr::LOCALHOST));
                req.action = method.to_owned();
                let cedar = vocabulary.translate(&req).unwrap();
                let action = EntityUid::from_type_name_and_id(
                    types::ACTION.parse::<EntityTypeName>().unwrap(),
                    EntityId::new(method),
                );
                let expected = Entities::from_entities(
                    [
                        reference::principal(&req.principal),
                        reference::resource(&req.resource),
                        actions.get(&action).unwrap().clone(),
                    ],
                    None,
                )
                .unwrap();
                assert!(
                    cedar.entities.deep_eq(expected.as_ref()),
                    "{method}: {:?}\n{:?}",
                    cedar.entities,
                    expected
                );
                // The deep comparison is not vacuous: another path differs.
                let mut other = req.clone();
                other.resource.path.push('x');
                let expected = Entities::from_entities(
                    [
                        reference::principal(&req.principal),
                        reference::resource(&other.resource),
                        actions.get(&action).unwrap().clone(),
                    ],
                    None,
                )
                .unwrap();
                assert!(!cedar.entities.deep_eq(expected.as_ref()));
            }
        }
    }

    /// The context of a translated request equals the one Cedar builds from a record of
    /// restricted expressions, for every address form and for default and set facts.
    #[test]
    fn contexts_equal_cedar_building_them_itself() {
        let vocabulary = Vocabulary::new().unwrap();
        for ip in IPS {
            for req in [request(user(), ip), busy(user(), ip)] {
                let cedar = vocabulary.translate(&req).unwrap();
                let expected = reference::context(&req.context);
                assert_eq!(cedar.request.context(), Some(expected.as_ref()), "{ip}");
            }
        }
        let a = vocabulary.translate(&busy(user(), IPS[0])).unwrap();
        let b = vocabulary.translate(&busy(user(), IPS[1])).unwrap();
        assert_ne!(a.request.context(), b.request.context());
    }

    /// The memo answers exactly what evaluation answers: a request that differs from a
    /// remembered one in any fact a policy reads gets its own decision, and only an identical
    /// request is answered from the memo.
    #[test]
    fn a_memoized_decision_is_the_evaluated_one() {
        let policies = r#"
            @id("frontend-mornings")
            permit (principal == Tenet::Workload::"spiffe://example.org/ns/shop/sa/frontend",
                    action == Tenet::Action::"PATCH", resource)
            when { context.risk < 50 && context.time.hour_utc < 12
                   && context.source_ip.isInRange(ip("192.0.2.0/24"))
                   && context.tls.mtls && resource.host == "shop.example.org" };
            @id("no-admin")
            forbid (principal, action, resource) when { resource.path like "/admin*" };
        "#;
        let files = [("a.cedar".to_owned(), policies.to_owned())];
        let snapshot = crate::PolicySnapshot::from_sources(&files).unwrap();
        let base = busy(workload("/ns/shop/sa/frontend"), IPS[0]);
        assert_eq!(hour_utc(base.context.unix_time), 23);
        let mut morning = base.clone();
        morning.context.unix_time -= 12 * 3_600;
        let variants: Vec<(&str, AccessRequest)> = vec![
            ("morning", morning.clone()),
            ("evening", base.clone()),
            ("risky", {
                let mut r = morning.clone();
                r.context.risk = 80;
                r
            }),
            ("elsewhere", {
                let mut r = morning.clone();
                r.context.source_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
                r
            }),
            ("no client certificate", {
                let mut r = morning.clone();
                r.context.tls.mtls = false;
                r
            }),
            ("other host", {
                let mut r = morning.clone();
                r.resource.host = "shop.example.com".to_owned();
                r
            }),
            ("admin path", {
                let mut r = morning.clone();
                r.resource.path = "/admin/users".to_owned();
                r
            }),
            ("other caller", {
                let mut r = morning.clone();
                r.principal = workload("/ns/shop/sa/backend");
                r
            }),
            ("other method", {
                let mut r = morning.clone();
                r.action = "DELETE".to_owned();
                r
            }),
            ("unknown method", {
                let mut r = morning.clone();
                r.action = "BREW".to_owned();
                r
            }),
        ];
        // Twice over: the first pass fills the memo, the second is answered from it.
        for pass in 0..2 {
            for (name, req) in &variants {
                let memoized = snapshot.explain_memoized(req);
                assert_eq!(*memoized, snapshot.explain(req), "{name}, pass {pass}");
                assert!(
                    Arc::ptr_eq(&memoized, &snapshot.explain_memoized(req)),
                    "{name}"
                );
            }
        }
        assert_eq!(snapshot.memo_len(), variants.len());
        let allowed: Vec<&str> = variants
            .iter()
            .filter(|(_, req)| snapshot.explain_memoized(req).decision.is_allowed())
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(allowed, ["morning"]);
        let admin = snapshot.explain_memoized(&variants[6].1);
        assert_eq!(admin.decision.reasons(), ["no-admin"]);

        // A request with more caller-chosen text than the memo keeps is decided, not kept.
        let mut long = variants[6].1.clone();
        long.resource.path = format!("/admin/{}", "a".repeat(DecisionMemo::MAX_REMEMBERED_TEXT));
        let decided = snapshot.explain_memoized(&long);
        assert_eq!(decided.decision.reasons(), ["no-admin"]);
        assert!(!Arc::ptr_eq(&decided, &snapshot.explain_memoized(&long)));
        assert_eq!(snapshot.memo_len(), variants.len());
    }

    /// A view is the request it borrows from: converted back it is an equal request, views of
    /// equal requests are the same and hash alike, and a change of any one fact makes them
    /// differ (which the memo's lookup relies on).
    #[test]
    fn a_borrowed_request_is_the_request() {
        let hasher = RandomState::new();
        let base = busy(user(), IPS[0]);
        assert_eq!(base.borrowed().to_request(), base);
        let copy = base.clone();
        assert!(base.borrowed().same(&copy.borrowed()));
        assert_eq!(
            hasher.hash_one(base.borrowed()),
            hasher.hash_one(copy.borrowed())
        );
        let changes: [fn(&mut AccessRequest); 18] = [
            |r| r.principal = workload("/ns/shop/sa/frontend"),
            |r| r.action = "GET".to_owned(),
            |r| r.resource.route.push('x'),
            |r| r.resource.service.push('x'),
            |r| r.resource.host.push('x'),
            |r| r.resource.path.push('x'),
            |r| r.context.source_ip = IPS[5],
            |r| r.context.tls.version.clear(),
            |r| r.context.tls.sni.push('x'),
            |r| r.context.tls.mtls = false,
            |r| r.context.tls.client_serial.push('0'),
            |r| r.context.unix_time += 1,
            |r| r.context.protocol = "HTTP/2".to_owned(),
            |r| r.context.risk += 1,
            |r| r.context.session.factors.pop().map_or((), drop),
            |r| r.context.session.mfa_age_secs += 1,
            |r| r.context.device.enrolled = false,
            |r| r.context.device.endpoint_protection = "yes".to_owned(),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(changed, base, "change {i} changes nothing");
            assert!(!base.borrowed().same(&changed.borrowed()), "change {i}");
            assert!(!changed.borrowed().same(&base.borrowed()), "change {i}");
        }
    }

    /// The request and entities built without a schema check conform to the schema.
    #[test]
    fn translated_requests_conform_to_the_schema() {
        let schema = tenet_schema().unwrap();
        let vocabulary = Vocabulary::new().unwrap();
        for principal in [
            workload("/ns/shop/sa/frontend"),
            user(),
            Principal::Anonymous,
        ] {
            for ip in IPS {
                for &(method, _) in &METHODS {
                    let mut req = if matches!(principal, Principal::User { .. }) {
                        busy(principal.clone(), ip)
                    } else {
                        request(principal.clone(), ip)
                    };
                    req.action = method.to_owned();
                    let cedar = vocabulary.translate(&req).unwrap();
                    let r = Request::from(cedar.request.clone());
                    Request::new(
                        r.principal().unwrap().clone(),
                        r.action().unwrap().clone(),
                        r.resource().unwrap().clone(),
                        r.context().unwrap().clone(),
                        Some(&schema),
                    )
                    .unwrap_or_else(|e| panic!("{method} {ip}: {e}"));
                    Entities::from_entities(
                        Entities::from(cedar.entities.clone()).iter().cloned(),
                        Some(&schema),
                    )
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
            let declared = from_schema
                .get(&EntityUid::from(action.uid.clone()))
                .expect(action.method);
            let ours = Entity::from(CoreEntity::clone(&action.entity));
            assert!(declared.deep_eq(&ours), "{}", action.method);
        }
    }

    fn value(expr: RestrictedExpression) -> Value {
        RestrictedEvaluator::new(Extensions::all_available())
            .interpret(expr.as_ref().as_borrowed())
            .unwrap()
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let cache = AddressCache::default();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        let expected = value(RestrictedExpression::new_ip("10.0.0.1"));
        assert_eq!(cache.ip(mapped).unwrap(), expected);
        // Served from the cache the second time, with the same value.
        assert_eq!(cache.0.len(), 1);
        assert_eq!(cache.ip(mapped).unwrap(), expected);
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_ne!(cache.ip(other).unwrap(), expected);
    }

    fn attr(entity: &CoreEntity, name: &str) -> Value {
        match entity.get(name) {
            Some(PartialValue::Value(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    /// A principal's entity is cached under the whole principal: the same uid with other
    /// attributes or groups is another entry and never sees the first one's facts.
    #[test]
    fn cached_principals_keep_their_own_attributes() {
        let vocabulary = Vocabulary::new().unwrap();
        let jane = user();
        let Principal::User {
            provider, subject, ..
        } = &jane
        else {
            unreachable!()
        };
        let impostor = Principal::User {
            provider: provider.clone(),
            subject: subject.clone(),
            email: "mallory@example.org".to_owned(),
            name: "Mallory".to_owned(),
            groups: vec!["guests".to_owned()],
        };
        let first = vocabulary
            .translate(&request(jane.clone(), IPS[0]))
            .unwrap();
        let other = vocabulary
            .translate(&request(impostor.clone(), IPS[0]))
            .unwrap();
        let again = vocabulary.translate(&request(jane, IPS[0])).unwrap();
        assert_eq!(vocabulary.principals.0.len(), 2);
        // The second request for Jane is served from the cache.
        assert!(Arc::ptr_eq(&first.principal, &again.principal));
        assert!(!Arc::ptr_eq(&first.principal, &other.principal));
        assert_eq!(first.principal.entity.uid(), other.principal.entity.uid());
        let (jane, mallory) = (&first.principal.entity, &other.principal.entity);
        assert_eq!(attr(jane, "email"), string("jane@example.org"));
        assert_eq!(attr(mallory, "email"), string("mallory@example.org"));
        assert_eq!(attr(mallory, "name"), string("Mallory"));
        let groups = |e: &CoreEntity| {
            let mut ids: Vec<String> = e.ancestors().map(|a| a.eid().escaped().into()).collect();
            ids.sort();
            ids
        };
        assert_eq!(groups(jane), ["admins", "engineering"]);
        assert_eq!(groups(mallory), ["guests"]);
        // The index sees the same lineage as the entity.
        assert_eq!(other.principal.lineage.len(), 2);
        assert_eq!(first.principal.lineage.len(), 3);
    }

    /// Cache keys differing in any one fact are not the same key.
    #[test]
    fn cache_keys_compare_every_field() {
        let base = busy(user(), IPS[0]).context;
        assert!(base.same(&base.clone()));
        let changes: [fn(&mut RequestContext); 25] = [
            |c| c.source_ip = IPS[1],
            |c| c.tls.version.clear(),
            |c| c.tls.sni.clear(),
            |c| c.tls.alpn.clear(),
            |c| c.tls.mtls = false,
            |c| c.tls.client_serial.clear(),
            |c| c.unix_time += 1,
            |c| c.protocol.clear(),
            |c| c.risk += 1,
            |c| c.session.authenticated = false,
            |c| c.session.factors.reverse(),
            |c| c.session.phishing_resistant = false,
            |c| c.session.user_verified = false,
            |c| c.session.age_secs += 1,
            |c| c.session.mfa_age_secs += 1,
            |c| c.device.id.clear(),
            |c| c.device.enrolled = false,
            |c| c.device.compliant = false,
            |c| c.device.posture_age_secs += 1,
            |c| c.device.os.clear(),
            |c| c.device.os_version.clear(),
            |c| c.device.disk_encrypted.clear(),
            |c| c.device.firewall.clear(),
            |c| c.device.screen_lock.clear(),
            |c| c.device.endpoint_protection.clear(),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut other = base.clone();
            change(&mut other);
            assert_ne!(other, base, "change {i}");
            assert!(!base.same(&other) && !other.same(&base), "change {i}");
        }

        let principals = [
            Principal::Anonymous,
            workload("/a"),
            workload("/b"),
            Principal::Workload {
                spiffe_id: "spiffe://example.com/a".to_owned(),
                trust_domain: "example.com".to_owned(),
                path: "/a".to_owned(),
            },
            user(),
        ];
        let user_changes: [fn(&mut Principal); 6] = [
            |p| set_user(p, |provider, _, _, _, _| provider.push('x')),
            |p| set_user(p, |_, subject, _, _, _| subject.push('x')),
            |p| set_user(p, |_, _, email, _, _| email.clear()),
            |p| set_user(p, |_, _, _, name, _| name.clear()),
            |p| set_user(p, |_, _, _, _, groups| groups.reverse()),
            |p| set_user(p, |_, _, _, _, groups| groups.push(String::new())),
        ];
        let mut all: Vec<Principal> = principals.to_vec();
        for change in user_changes {
            let mut p = user();
            change(&mut p);
            all.push(p);
        }
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a.same(b), i == j, "{a:?} {b:?}");
                assert_eq!(a.same(b), a == b, "{a:?} {b:?}");
            }
        }
    }

    fn set_user(
        principal: &mut Principal,
        f: impl FnOnce(&mut String, &mut String, &mut String, &mut String, &mut Vec<String>),
    ) {
        if let Principal::User {
            provider,
            subject,
            email,
            name,
            groups,
        } = principal
        {
            f(provider, subject, email, name, groups);
        }
    }

    /// Every key hashing alike: the cache files them in one slot, and a lookup only ever
    /// returns the value built for an equal key.
    #[test]
    fn colliding_keys_never_share_a_value() {
        #[derive(Default)]
        struct Constant;
        impl std::hash::Hasher for Constant {
            fn finish(&self) -> u64 {
                7
            }
            fn write(&mut self, _: &[u8]) {}
        }
        let cache: Cache<Principal, String, std::hash::BuildHasherDefault<Constant>> =
            Cache::default();
        let keys = [workload("/a"), workload("/b"), user(), Principal::Anonymous];
        for round in 0..2 {
            for key in &keys {
                let got = cache
                    .get_or_build(key, || Ok::<_, ()>(format!("{key:?}")))
                    .unwrap();
                assert_eq!(got, format!("{key:?}"), "round {round}");
            }
        }
        assert_eq!(cache.len(), 1);
        // The last key stays cached and is served without building.
        let last = &keys[3];
        assert!(cache.get_or_build(last, || Err(())).is_ok());
        assert!(cache.get_or_build(&keys[0], || Err(())).is_err());
    }

    /// The principal cache stays bounded, and a principal that cannot be built is not cached.
    #[test]
    fn the_principal_cache_is_bounded() {
        let vocabulary = Vocabulary::new().unwrap();
        let capacity = Cache::<Principal, Arc<PrincipalEntity>>::CAPACITY;
        for i in 0..capacity + 10 {
            let req = request(workload(&format!("/w{i}")), IPS[0]);
            vocabulary.translate(&req).unwrap();
            assert!(vocabulary.principals.0.len() <= capacity);
        }
        assert_eq!(vocabulary.principals.0.len(), 10);
        let inconsistent = Principal::Workload {
            spiffe_id: "spiffe://example.org/a".to_owned(),
            trust_domain: "example.org".to_owned(),
            path: "/b".to_owned(),
        };
        for _ in 0..2 {
            assert!(
                vocabulary
                    .translate(&request(inconsistent.clone(), IPS[0]))
                    .is_err()
            );
        }
        assert_eq!(vocabulary.principals.0.len(), 10);
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
