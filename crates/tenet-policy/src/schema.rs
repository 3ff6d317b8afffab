//! The built-in Tenet Cedar schema that every policy set is validated against.

/// The Tenet Cedar schema, in Cedar schema syntax (namespace `Tenet`).
///
/// Every request the gateway (the PEP) authorizes is one Cedar request shaped by this schema:
///
/// - **Principal**: the caller.
///   - `Tenet::Workload::"<SPIFFE ID>"` for a caller that presented a valid X509-SVID, e.g.
///     `Tenet::Workload::"spiffe://example.org/ns/shop/sa/frontend"`. Its attributes are
///     `trust_domain` (`"example.org"`) and `path` (`"/ns/shop/sa/frontend"`), and its parent is
///     `Tenet::TrustDomain::"example.org"`, so `principal in Tenet::TrustDomain::"example.org"`
///     matches every workload of that trust domain. IDs are compared exactly: paths are
///     case-sensitive and never decoded or rewritten.
///   - `Tenet::User::"<provider>:<subject>"` for a person signed in through an OpenID Connect
///     provider (the provider's configured name and the ID token's `sub`), e.g.
///     `Tenet::User::"corp:248289761001"`. Its attributes are `email` (lowercase; empty when
///     the provider did not assert a verified address), `name`, `provider` and `subject`; its
///     parents are the groups the provider asserted, `Tenet::Group::"<group>"`, so
///     `principal in Tenet::Group::"engineering"` matches its members.
///   - `Tenet::Anonymous::"anonymous"` for a caller without a client certificate or session.
/// - **Action**: the HTTP method, one action per method: `"GET"`, `"HEAD"`, `"OPTIONS"`,
///   `"POST"`, `"PUT"`, `"PATCH"`, `"DELETE"`, `"CONNECT"`, `"TRACE"`. The groups
///   `Tenet::Action::"read"` (GET, HEAD, OPTIONS) and `Tenet::Action::"write"` (POST, PUT,
///   PATCH, DELETE) allow `action in Tenet::Action::"read"`. A method outside this list has no
///   action and is denied before any policy runs.
/// - **Resource**: the route, `Tenet::Route::"<route name>"`, whose parent is the service it
///   belongs to, `Tenet::Service::"<service name>"`. Its attributes are `service`, `host` (the
///   canonical host) and `path` (the normalised path that will be forwarded upstream).
/// - **Context**, every attribute always present (empty strings when a fact is absent):
///   - `source_ip` (`ipaddr`): the peer address of the connection;
///   - `tls`: `version` (e.g. `"TLSv1.3"`), `sni`, `alpn`, `mtls` (a client certificate was
///     verified) and `client_serial` (hex serial of the client certificate);
///   - `time`: `unix` (seconds), `hour_utc` (0-23) and `weekday` (ISO 8601: 1 = Monday to
///     7 = Sunday, in UTC);
///   - `protocol`: `"HTTP/1.1"`, `"HTTP/2"`, `"gRPC"`, ...;
///   - `risk`: the caller's risk score, 0 (none) to 100;
///   - `session` (people): `authenticated` (a valid session), `factors` (the names of the
///     factors used in it: `"oidc"`, `"webauthn"`, `"totp"`, `"recovery"`),
///     `phishing_resistant` (a phishing-resistant factor was used), `user_verified` (a WebAuthn
///     sign-in verified the person with a PIN or biometric; a security key used without it,
///     TOTP and recovery codes do not), `age_secs` (since sign-in) and `mfa_age_secs` (since
///     the last second factor; -1 when none);
///   - `device`: `id` (empty when unknown), `enrolled` (the device presented its Tenet device
///     certificate), `compliant` (its posture meets the deployment's requirements),
///     `posture_age_secs` (-1 when no posture is known) and the posture facts `os`,
///     `os_version`, and `disk_encrypted`, `firewall`, `screen_lock`, `endpoint_protection`
///     each `"yes"`, `"no"` or `"unknown"`.
///
/// Policies are validated against this schema in strict mode when they are loaded; a file named
/// `tenet.cedarschema` next to the policies is only a copy for people and editors, and must
/// equal this text.
pub const TENET_SCHEMA: &str = r#"// The Tenet Cedar schema. Tenet validates policies against its built-in copy of this
// schema; this file is for people and editors and must not be edited.
namespace Tenet {
  // A SPIFFE trust domain, e.g. "example.org".
  entity TrustDomain;

  // A workload identified by its SPIFFE ID, e.g. "spiffe://example.org/ns/shop/sa/frontend".
  entity Workload in [TrustDomain] = {
    trust_domain: String,
    path: String,
  };

  // A group asserted by an identity provider, e.g. "engineering".
  entity Group;

  // A person signed in through an OpenID Connect provider: "<provider>:<subject>".
  entity User in [Group] = {
    email: String,
    name: String,
    provider: String,
    subject: String,
  };

  // A caller without a client certificate or session: Tenet::Anonymous::"anonymous".
  entity Anonymous;

  // A service behind the gateway.
  entity Service;

  // A route of a service; path is the normalised path forwarded upstream.
  entity Route in [Service] = {
    service: String,
    host: String,
    path: String,
  };

  type TlsFacts = {
    version: String,
    sni: String,
    alpn: String,
    mtls: Bool,
    client_serial: String,
  };

  type TimeFacts = {
    unix: Long,
    hour_utc: Long,
    weekday: Long,
  };

  type SessionFacts = {
    authenticated: Bool,
    factors: Set<String>,
    phishing_resistant: Bool,
    user_verified: Bool,
    age_secs: Long,
    mfa_age_secs: Long,
  };

  type DeviceFacts = {
    id: String,
    enrolled: Bool,
    compliant: Bool,
    posture_age_secs: Long,
    os: String,
    os_version: String,
    disk_encrypted: String,
    firewall: String,
    screen_lock: String,
    endpoint_protection: String,
  };

  type RequestContext = {
    source_ip: ipaddr,
    tls: TlsFacts,
    time: TimeFacts,
    protocol: String,
    risk: Long,
    session: SessionFacts,
    device: DeviceFacts,
  };

  // Action groups.
  action "read", "write";

  action "GET", "HEAD", "OPTIONS" in ["read"] appliesTo {
    principal: [Workload, User, Anonymous],
    resource: [Route],
    context: RequestContext,
  };

  action "POST", "PUT", "PATCH", "DELETE" in ["write"] appliesTo {
    principal: [Workload, User, Anonymous],
    resource: [Route],
    context: RequestContext,
  };

  action "CONNECT", "TRACE" appliesTo {
    principal: [Workload, User, Anonymous],
    resource: [Route],
    context: RequestContext,
  };
}
"#;

/// Earlier versions of [`TENET_SCHEMA`], as `tenet init` wrote them into deployments. A copy
/// of one of them next to the policies is accepted with a warning (policies are validated
/// against the built-in schema anyway), so an upgrade does not stop a deployment.
pub(crate) const PREVIOUS_SCHEMAS: &[&str] = &[
    include_str!("schema-v1.cedarschema"),
    // Before context.session.user_verified.
    include_str!("schema-v2.cedarschema"),
];

/// The HTTP methods that are actions of the Tenet schema, each with its action group.
pub(crate) const METHODS: [(&str, Option<&str>); 9] = [
    ("GET", Some("read")),
    ("HEAD", Some("read")),
    ("OPTIONS", Some("read")),
    ("POST", Some("write")),
    ("PUT", Some("write")),
    ("PATCH", Some("write")),
    ("DELETE", Some("write")),
    ("CONNECT", None),
    ("TRACE", None),
];

/// Entity type names of the Tenet schema.
pub(crate) mod types {
    pub(crate) const ACTION: &str = "Tenet::Action";
    pub(crate) const ANONYMOUS: &str = "Tenet::Anonymous";
    pub(crate) const GROUP: &str = "Tenet::Group";
    pub(crate) const USER: &str = "Tenet::User";
    pub(crate) const ROUTE: &str = "Tenet::Route";
    pub(crate) const SERVICE: &str = "Tenet::Service";
    pub(crate) const TRUST_DOMAIN: &str = "Tenet::TrustDomain";
    pub(crate) const WORKLOAD: &str = "Tenet::Workload";
}

/// The entity id of the anonymous principal.
pub(crate) const ANONYMOUS_ID: &str = "anonymous";
