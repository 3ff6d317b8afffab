//! The event types and their OCSF-shaped canonical JSON.

use std::io::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// One thing that happened, with a unique id and the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A time-ordered unique id (UUID v7).
    pub id: Uuid,
    /// When the event happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of events Tenet records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// An authorization decision on a request at the PEP.
    Access(AccessEvent),
    /// Input refused before a decision could be made (TLS handshake, malformed HTTP).
    Rejection(RejectionEvent),
    /// An SVID was issued.
    Svid(SvidEvent),
    /// A policy set was loaded, reloaded or rejected.
    Policy(PolicyEvent),
    /// An administrative action.
    Admin(AdminEvent),
    /// A detection: a Sigma rule or a behavioural analytic fired.
    Detection(DetectionEvent),
    /// A person or device authenticated, or failed to: sign-in, a second factor, step-up,
    /// sign-out, a session ended by re-evaluation, a device enrolment or posture report.
    Authentication(AuthenticationEvent),
}

/// Whether a request went on to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The policy allowed it and it was forwarded.
    Allowed,
    /// It was denied and not forwarded.
    Blocked,
}

/// An authorization decision at the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// The request id the caller sees in the response.
    pub request_id: String,
    /// The gateway listener that took the request.
    pub listener: String,
    /// The caller's SPIFFE ID, or `anonymous`.
    pub principal: String,
    /// The HTTP method.
    pub action: String,
    /// The matched route, if any.
    pub route: Option<String>,
    /// The matched route's service, if any.
    pub service: Option<String>,
    /// Canonical host.
    pub host: String,
    /// Normalised path: exactly what was (or would have been) forwarded.
    pub path: String,
    /// The query string as forwarded (without its `?`), when the request had one: policy
    /// decides on the path, the record keeps what reached the service. Absent from the stored
    /// form when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The TCP peer address.
    pub source_ip: IpAddr,
    /// The TCP peer port.
    pub source_port: u16,
    /// "HTTP/1.1", "HTTP/2" or "gRPC".
    pub protocol: String,
    /// TLS protocol version of the connection.
    pub tls_version: String,
    /// Serial of the client certificate, hex, when one was presented.
    pub client_serial: Option<String>,
    /// Allowed or blocked.
    pub disposition: Disposition,
    /// The status code the gateway answered with when it answered itself (denials).
    pub status: Option<u16>,
    /// Ids of the policies that determined the decision (empty for default deny).
    pub reasons: Vec<String>,
    /// Evaluation errors (a decision with errors is a deny).
    pub errors: Vec<String>,
    /// For a default deny: the permit policies that came closest and what each lacked, one
    /// line each, closest first (see `tenet_policy::NearMiss`). Empty otherwise, and then
    /// absent from the stored form. Operator information: the caller never sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_misses: Vec<String>,
    /// Hash of the policy set the decision was made with.
    pub policy_hash: String,
    /// Time spent deciding, in microseconds.
    pub decision_us: u64,
}

/// The `kind` of a [`RejectionEvent`] that summarises refusals past a source's limit: its
/// `detail` says how many, from where and when.
pub const THROTTLED: &str = "throttled";

/// Input refused before an authorization decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectionEvent {
    /// Request id when the refusal happened at the HTTP layer.
    pub request_id: Option<String>,
    /// The gateway listener.
    pub listener: String,
    /// The TCP peer address.
    pub source_ip: IpAddr,
    /// The TCP peer port.
    pub source_port: u16,
    /// `tls` (handshake, client certificate), `http` (framing, normalisation) or `http2`
    /// (protocol violations); `all` for a summary across stages and sources.
    pub stage: String,
    /// A stable label for the kind of problem, e.g. `expired_certificate`, `encoded_slash`;
    /// [`THROTTLED`] for a summary of refusals that were not recorded one by one.
    pub kind: String,
    /// A human-readable description.
    pub detail: String,
    /// The claimed identity, when one could be read.
    pub principal: Option<String>,
    /// The status code sent, for HTTP refusals.
    pub status: Option<u16>,
}

/// An SVID was issued by Tenet's CA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvidEvent {
    /// The SPIFFE ID the SVID was issued to.
    pub spiffe_id: String,
    /// `x509` or `jwt`.
    pub svid_type: String,
    /// Certificate serial (X.509) or token id (JWT), hex.
    pub serial: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Who asked for it (CLI, gateway, admin API).
    pub requested_by: String,
}

/// A policy-set change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvent {
    /// `loaded`, `reloaded` or `rejected`.
    pub outcome: String,
    /// Hash of the set now in force.
    pub active_hash: String,
    /// Hash of the rejected candidate, for `rejected`.
    pub candidate_hash: Option<String>,
    /// Number of policies in force.
    pub policy_count: usize,
    /// Validation messages for `rejected`.
    pub errors: Vec<String>,
}

/// An administrative action through the CLI or admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminEvent {
    /// Who did it (admin SPIFFE ID or `local-cli`).
    pub actor: String,
    /// What was done, e.g. `policy.reload`.
    pub operation: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Free-form detail.
    pub detail: String,
}

/// An authentication step of a person or a device (OCSF Authentication, 3002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationEvent {
    /// `logon` (identity provider sign-in), `mfa` (a second factor verified), `mfa_register`
    /// (a factor registered), `step_up`, `logoff`, `session_end` (ended by re-evaluation or
    /// revocation), `device_enrol`, `device_report`, or `throttled` (how many refused sign-in
    /// requests from one source were not recorded one by one).
    pub activity: String,
    /// The person's principal name (`user:<provider>:<subject>`), a device's SPIFFE ID, or
    /// `unknown` when the step failed before anyone was identified.
    pub user: String,
    /// The identity provider, for sign-ins.
    pub provider: Option<String>,
    /// The factor used (`oidc`, `webauthn`, `totp`, `recovery`).
    pub factor: Option<String>,
    /// Whether the step succeeded.
    pub success: bool,
    /// Why it failed, or what happened (stable machine words first).
    pub reason: String,
    /// The peer address.
    pub source_ip: IpAddr,
    /// The device id, when one is known.
    pub device: Option<String>,
    /// The gateway's request id.
    pub request_id: Option<String>,
}

impl AuthenticationEvent {
    /// OCSF activity id and name for the activity.
    fn activity_ocsf(&self) -> (u8, &'static str) {
        match self.activity.as_str() {
            "logon" | "mfa" | "step_up" => (1, "Logon"),
            "logoff" | "session_end" => (2, "Logoff"),
            _ => (99, "Other"),
        }
    }
}

/// A detection raised by a Sigma rule or a built-in behavioural analytic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionEvent {
    /// The rule: a Sigma rule id, or `tenet.<analytic>` for the built-in analytics.
    pub rule: String,
    /// The rule's title.
    pub title: String,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub level: String,
    /// What it is about: a SPIFFE ID, a source address, a session.
    pub subject: String,
    /// What was seen, against which baseline or threshold.
    pub explanation: String,
    /// Rule tags, e.g. `attack.lateral_movement`.
    pub tags: Vec<String>,
    /// The events or counts that made it fire.
    pub evidence: Value,
    /// `analytics` or `sigma`.
    pub engine: String,
}

impl DetectionEvent {
    /// OCSF severity_id for the level (1 informational … 5 critical; 0 unknown).
    pub fn severity_id(&self) -> u8 {
        match self.level.as_str() {
            "informational" | "info" => 1,
            "low" => 2,
            "medium" => 3,
            "high" => 4,
            "critical" => 5,
            _ => 0,
        }
    }
}

impl Event {
    /// A new event of `kind` at `time` with a fresh time-ordered id.
    pub fn new(time: OffsetDateTime, kind: EventKind) -> Self {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(time.unix_timestamp()).unwrap_or(0),
            time.nanosecond(),
        );
        Self {
            id: Uuid::new_v7(ts),
            time,
            kind,
        }
    }

    /// The event's canonical bytes: compact JSON with object keys sorted, in OCSF shape.
    /// The same event always gives the same bytes; the ledger hashes exactly these.
    ///
    /// Access and rejection events (one per gateway request) are written straight into the
    /// buffer with their keys in sorted order; the other kinds go through [`Event::to_ocsf`]
    /// and a sort of every object's keys. Both give the bytes
    /// [`Event::canonical_json_via_value`] gives, byte for byte.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        match &self.kind {
            EventKind::Access(a) => {
                let mut out = Vec::with_capacity(access_len_hint(a));
                write_access(self, a, &mut out);
                out
            }
            EventKind::Rejection(r) => {
                let mut out = Vec::with_capacity(rejection_len_hint(r));
                write_rejection(self, r, &mut out);
                out
            }
            _ => self.canonical_json_via_value(),
        }
    }

    /// The canonical bytes built the general way: [`Event::to_ocsf`], then every object's
    /// keys sorted as it is written. This is the definition [`Event::to_canonical_json`]
    /// follows; kept for the tests and benchmarks that hold the direct writers to it.
    #[doc(hidden)]
    pub fn canonical_json_via_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        write_canonical(&self.to_ocsf(), &mut out);
        out
    }

    /// Milliseconds since the Unix epoch, as the OCSF `time` field carries them.
    fn time_ms(&self) -> i64 {
        i64::try_from(self.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }

    /// The event as an OCSF-shaped JSON value.
    pub fn to_ocsf(&self) -> Value {
        let time_ms = self.time_ms();
        let mut v = match &self.kind {
            EventKind::Access(a) => access_ocsf(a),
            EventKind::Rejection(r) => rejection_ocsf(r),
            EventKind::Svid(s) => api_ocsf(1, "Create", "svid.issue", json!(s)),
            EventKind::Policy(p) => api_ocsf(3, "Update", "policy.change", json!(p)),
            EventKind::Admin(a) => api_ocsf(3, "Update", &a.operation, json!(a)),
            EventKind::Detection(d) => detection_ocsf(d),
            EventKind::Authentication(a) => authentication_ocsf(a),
        };
        if let Value::Object(map) = &mut v {
            map.insert("time".into(), json!(time_ms));
            map.insert(
                "metadata".into(),
                json!({
                    "uid": self.id.to_string(),
                    "version": "1.3.0",
                    "product": {"name": "Tenet", "vendor_name": "Tenet",
                                "version": env!("CARGO_PKG_VERSION")},
                }),
            );
        }
        v
    }

    /// A one-line human summary, for `tenet log tail` and the demo.
    pub fn summary(&self) -> String {
        match &self.kind {
            EventKind::Access(a) => format!(
                "{} {} {} {}{} -> {} [{}]",
                a.request_id,
                a.principal,
                a.action,
                a.host,
                a.path,
                match a.disposition {
                    Disposition::Allowed => "allow",
                    Disposition::Blocked => "deny",
                },
                if a.reasons.is_empty() && a.errors.is_empty() {
                    default_deny_text(&a.near_misses)
                } else {
                    a.reasons
                        .iter()
                        .chain(&a.errors)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            EventKind::Rejection(r) if r.kind == THROTTLED => {
                format!("{} refusals summarised: {}", r.stage, r.detail)
            }
            EventKind::Rejection(r) => format!(
                "rejected {} from {}:{}: {} ({})",
                r.stage, r.source_ip, r.source_port, r.kind, r.detail
            ),
            EventKind::Svid(s) => format!("issued {} SVID for {}", s.svid_type, s.spiffe_id),
            EventKind::Policy(p) => format!(
                "policy {} ({} policies, {})",
                p.outcome, p.policy_count, p.active_hash
            ),
            EventKind::Admin(a) => format!("admin {} by {}: {}", a.operation, a.actor, a.detail),
            EventKind::Detection(d) => format!(
                "detection {} [{}] {}: {}",
                d.rule, d.level, d.subject, d.explanation
            ),
            EventKind::Authentication(a) => format!(
                "auth {} {} {} from {}: {}",
                a.activity,
                a.user,
                if a.success { "succeeded" } else { "failed" },
                a.source_ip,
                a.reason
            ),
        }
    }
}

/// Compact JSON with object keys sorted at every level. The key order is written here
/// rather than left to `serde_json::Map`, whose order depends on a cargo feature
/// (`preserve_order`) that any crate in a build can switch on.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serialising a string, number, bool or null into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

// The direct writers below give, for their kinds, exactly the bytes of
// `write_canonical(&event.to_ocsf())`: the same objects with their keys written in the
// order that sort gives (byte order), strings escaped and integers formatted by serde_json
// as `write_scalar` does, and `null` where `to_ocsf` has `None`. The tests in
// `tests/canonical.rs` compare the two on generated events.

/// A JSON string, escaped exactly as `write_scalar` escapes a `Value::String`.
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A string, or `null` for `None`.
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// An integer, formatted as a `Value::Number` holding it is.
fn put_int(out: &mut Vec<u8>, n: impl Into<i128>) {
    // Serialising an integer into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &n.into());
}

/// An array of strings.
fn put_str_array(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(out, item);
    }
    out.push(b']');
}

/// `"src_endpoint":{"ip":…,"port":…}`: the address as its `Display` text, as `to_ocsf`
/// stores it (digits, hex, dots and colons: nothing JSON escapes).
fn put_src_endpoint(out: &mut Vec<u8>, ip: IpAddr, port: u16) {
    out.extend_from_slice(b"\"src_endpoint\":{\"ip\":\"");
    // Formatting into a Vec cannot fail.
    let _ = write!(out, "{ip}");
    out.extend_from_slice(b"\",\"port\":");
    put_int(out, port);
    out.push(b'}');
}

/// `"http_response":null` or `"http_response":{"code":…}`.
fn put_http_response(out: &mut Vec<u8>, status: Option<u16>) {
    out.extend_from_slice(b"\"http_response\":");
    match status {
        Some(code) => {
            out.extend_from_slice(b"{\"code\":");
            put_int(out, code);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `"metadata":{…}`: the product, the event id and the OCSF schema version.
fn put_metadata(out: &mut Vec<u8>, id: &Uuid) {
    out.extend_from_slice(
        b"\"metadata\":{\"product\":{\"name\":\"Tenet\",\"vendor_name\":\"Tenet\",\"version\":",
    );
    put_str(out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b"},\"uid\":\"");
    let mut buf = Uuid::encode_buffer();
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.extend_from_slice(b"\",\"version\":\"1.3.0\"}");
}

/// What an event of these kinds takes beyond its strings, so the buffer is allocated once.
const FIXED_LEN: usize = 720;

fn access_len_hint(a: &AccessEvent) -> usize {
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let list = |l: &[String]| l.iter().map(|s| s.len() + 3).sum::<usize>();
    FIXED_LEN
        + a.request_id.len()
        + a.listener.len()
        + a.principal.len()
        + a.action.len()
        + optional(&a.route)
        + optional(&a.service)
        + a.host.len()
        + a.path.len()
        + optional(&a.query)
        + 16
        + a.protocol.len()
        + a.tls_version.len()
        + optional(&a.client_serial)
        + list(&a.reasons)
        + list(&a.errors)
        + list(&a.near_misses)
        + a.policy_hash.len()
}

fn rejection_len_hint(r: &RejectionEvent) -> usize {
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    FIXED_LEN
        + optional(&r.request_id)
        + r.listener.len()
        + r.stage.len()
        + r.kind.len()
        + r.detail.len()
        + optional(&r.principal)
}

/// `write_canonical(&access_ocsf(a) + time + metadata)`, written directly.
fn write_access(e: &Event, a: &AccessEvent, out: &mut Vec<u8>) {
    let (activity_id, activity) = http_activity(&a.action);
    let allowed = a.disposition == Disposition::Allowed;
    out.extend_from_slice(if allowed {
        b"{\"action\":\"Allowed\",\"action_id\":1,\"activity_id\":"
    } else {
        b"{\"action\":\"Denied\",\"action_id\":2,\"activity_id\":"
    });
    put_int(out, activity_id);
    out.extend_from_slice(b",\"activity_name\":");
    put_str(out, activity);
    out.extend_from_slice(b",\"actor\":{\"app_name\":");
    put_str(out, &a.principal);
    out.extend_from_slice(if allowed {
        b"},\"category_uid\":4,\"class_name\":\"HTTP Activity\",\"class_uid\":4002,\"disposition\":\"Allowed\",\"disposition_id\":1,\"http_request\":{\"http_method\":"
    } else {
        b"},\"category_uid\":4,\"class_name\":\"HTTP Activity\",\"class_uid\":4002,\"disposition\":\"Blocked\",\"disposition_id\":2,\"http_request\":{\"http_method\":"
    });
    put_str(out, &a.action);
    out.extend_from_slice(b",\"uid\":");
    put_str(out, &a.request_id);
    out.extend_from_slice(b",\"url\":{\"hostname\":");
    put_str(out, &a.host);
    out.extend_from_slice(b",\"path\":");
    put_str(out, &a.path);
    if let Some(query) = &a.query {
        out.extend_from_slice(b",\"query_string\":");
        put_str(out, query);
    }
    out.extend_from_slice(b"},\"version\":");
    put_str(out, &a.protocol);
    out.extend_from_slice(b"},");
    put_http_response(out, a.status);
    out.push(b',');
    put_metadata(out, &e.id);
    out.extend_from_slice(if allowed {
        b",\"severity_id\":1,"
    } else {
        b",\"severity_id\":3,"
    });
    put_src_endpoint(out, a.source_ip, a.source_port);
    out.extend_from_slice(if allowed {
        b",\"status_id\":1,\"time\":"
    } else {
        b",\"status_id\":2,\"time\":"
    });
    put_int(out, e.time_ms());
    out.extend_from_slice(b",\"tls\":{\"certificate\":{\"serial_number\":");
    put_opt_str(out, a.client_serial.as_deref());
    out.extend_from_slice(b"},\"version\":");
    put_str(out, &a.tls_version);
    out.extend_from_slice(b"},\"type_uid\":");
    put_int(out, 400_200 + u32::from(activity_id));
    out.extend_from_slice(b",\"unmapped\":{\"decision_us\":");
    put_int(out, a.decision_us);
    out.extend_from_slice(b",\"errors\":");
    put_str_array(out, &a.errors);
    out.extend_from_slice(b",\"listener\":");
    put_str(out, &a.listener);
    if !a.near_misses.is_empty() {
        out.extend_from_slice(b",\"near_misses\":");
        put_str_array(out, &a.near_misses);
    }
    out.extend_from_slice(b",\"policy_hash\":");
    put_str(out, &a.policy_hash);
    out.extend_from_slice(b",\"reasons\":");
    put_str_array(out, &a.reasons);
    out.extend_from_slice(b",\"route\":");
    put_opt_str(out, a.route.as_deref());
    out.extend_from_slice(b",\"service\":");
    put_opt_str(out, a.service.as_deref());
    out.extend_from_slice(b"}}");
}

/// The OCSF URL object of an access event: host, path and, when there was one, the query.
fn url_of(a: &AccessEvent) -> Value {
    let mut url = json!({"hostname": a.host, "path": a.path});
    if let (Some(query), Some(map)) = (&a.query, url.as_object_mut()) {
        map.insert("query_string".into(), json!(query));
    }
    url
}

/// `write_canonical(&rejection_ocsf(r) + time + metadata)`, written directly.
fn write_rejection(e: &Event, r: &RejectionEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"activity_id\":1,\"actor\":{\"app_name\":");
    put_opt_str(out, r.principal.as_deref());
    out.extend_from_slice(if r.stage == "tls" {
        b"},\"category_uid\":3,\"class_name\":\"Authentication\",\"class_uid\":3002,"
    } else {
        b"},\"category_uid\":4,\"class_name\":\"HTTP Activity\",\"class_uid\":4002,"
    });
    out.extend_from_slice(b"\"disposition\":\"Blocked\",\"disposition_id\":2,");
    put_http_response(out, r.status);
    out.push(b',');
    put_metadata(out, &e.id);
    out.extend_from_slice(b",\"severity_id\":3,");
    put_src_endpoint(out, r.source_ip, r.source_port);
    out.extend_from_slice(b",\"status\":\"Failure\",\"status_detail\":");
    put_str(out, &r.detail);
    out.extend_from_slice(b",\"status_id\":2,\"time\":");
    put_int(out, e.time_ms());
    out.extend_from_slice(if r.stage == "tls" {
        b",\"type_uid\":300201,\"unmapped\":{\"kind\":"
    } else {
        b",\"type_uid\":400201,\"unmapped\":{\"kind\":"
    });
    put_str(out, &r.kind);
    out.extend_from_slice(b",\"listener\":");
    put_str(out, &r.listener);
    out.extend_from_slice(b",\"request_id\":");
    put_opt_str(out, r.request_id.as_deref());
    out.extend_from_slice(b",\"stage\":");
    put_str(out, &r.stage);
    out.extend_from_slice(b"}}");
}

fn http_activity(method: &str) -> (u8, &'static str) {
    match method {
        "CONNECT" => (1, "Connect"),
        "DELETE" => (2, "Delete"),
        "GET" => (3, "Get"),
        "HEAD" => (4, "Head"),
        "OPTIONS" => (5, "Options"),
        "POST" => (6, "Post"),
        "PUT" => (7, "Put"),
        "TRACE" => (8, "Trace"),
        _ => (99, "Other"),
    }
}

fn access_ocsf(a: &AccessEvent) -> Value {
    let (activity_id, activity) = http_activity(&a.action);
    let allowed = a.disposition == Disposition::Allowed;
    let mut v = json!({
        "class_uid": 4002,
        "class_name": "HTTP Activity",
        "category_uid": 4,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 400_200 + u32::from(activity_id),
        "severity_id": if allowed { 1 } else { 3 },
        "action_id": if allowed { 1 } else { 2 },
        "action": if allowed { "Allowed" } else { "Denied" },
        "disposition_id": if allowed { 1 } else { 2 },
        "disposition": if allowed { "Allowed" } else { "Blocked" },
        "status_id": if allowed { 1 } else { 2 },
        "actor": {"app_name": a.principal},
        "src_endpoint": {"ip": a.source_ip.to_string(), "port": a.source_port},
        "http_request": {
            "http_method": a.action,
            "version": a.protocol,
            "uid": a.request_id,
            "url": url_of(a),
        },
        "http_response": a.status.map(|code| json!({"code": code})),
        "tls": {"version": a.tls_version, "certificate": {"serial_number": a.client_serial}},
        "unmapped": {
            "listener": a.listener,
            "route": a.route,
            "service": a.service,
            "reasons": a.reasons,
            "errors": a.errors,
            "policy_hash": a.policy_hash,
            "decision_us": a.decision_us,
        },
    });
    // Only a default deny has near misses; other events keep the form they always had.
    if !a.near_misses.is_empty()
        && let Some(Value::Object(unmapped)) = v.get_mut("unmapped")
    {
        unmapped.insert("near_misses".into(), json!(a.near_misses));
    }
    v
}

/// How a summary names a default deny: with the closest permits when there are any.
pub fn default_deny_text(near_misses: &[String]) -> String {
    if near_misses.is_empty() {
        "default deny".to_owned()
    } else {
        format!("default deny; closest: {}", near_misses.join(" | "))
    }
}

fn rejection_ocsf(r: &RejectionEvent) -> Value {
    let (class_uid, class_name, category) = if r.stage == "tls" {
        (3002, "Authentication", 3)
    } else {
        (4002, "HTTP Activity", 4)
    };
    json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category,
        "activity_id": 1,
        "type_uid": class_uid * 100 + 1,
        "severity_id": 3,
        "status_id": 2,
        "status": "Failure",
        "status_detail": r.detail,
        "disposition_id": 2,
        "disposition": "Blocked",
        "actor": {"app_name": r.principal},
        "src_endpoint": {"ip": r.source_ip.to_string(), "port": r.source_port},
        "http_response": r.status.map(|code| json!({"code": code})),
        "unmapped": {
            "request_id": r.request_id,
            "listener": r.listener,
            "stage": r.stage,
            "kind": r.kind,
        },
    })
}

/// OCSF Detection Finding (class 2004, category Findings).
fn detection_ocsf(d: &DetectionEvent) -> Value {
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200_401,
        "severity_id": d.severity_id(),
        "message": d.explanation,
        "finding_info": {
            "uid": d.rule,
            "title": d.title,
            "desc": d.explanation,
            "types": d.tags,
            "analytic": {"name": d.rule, "type": d.engine},
        },
        "resources": [{"name": d.subject}],
        "unmapped": {"subject": d.subject, "level": d.level, "evidence": d.evidence},
    })
}

fn authentication_ocsf(a: &AuthenticationEvent) -> Value {
    let (activity_id, activity) = a.activity_ocsf();
    let mfa = matches!(a.factor.as_deref(), Some("webauthn" | "totp" | "recovery"));
    json!({
        "class_uid": 3002,
        "class_name": "Authentication",
        "category_uid": 3,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 300_200 + u32::from(activity_id),
        "severity_id": if a.success { 1 } else { 3 },
        "status_id": if a.success { 1 } else { 2 },
        "status": if a.success { "Success" } else { "Failure" },
        "status_detail": a.reason,
        "is_mfa": mfa,
        "user": {"name": a.user},
        "auth_protocol": a.factor,
        "src_endpoint": {"ip": a.source_ip.to_string()},
        "device": a.device.as_ref().map(|d| json!({"uid": d})),
        "unmapped": {
            "activity": a.activity,
            "provider": a.provider,
            "request_id": a.request_id,
        },
    })
}

fn api_ocsf(activity_id: u8, activity: &str, operation: &str, detail: Value) -> Value {
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 600_300 + u32::from(activity_id),
        "severity_id": 1,
        "api": {"operation": operation},
        "unmapped": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Event {
        Event::new(
            OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            EventKind::Access(AccessEvent {
                request_id: "r1".into(),
                listener: "main".into(),
                principal: "spiffe://example.org/a".into(),
                action: "GET".into(),
                route: Some("catalog".into()),
                service: Some("catalog".into()),
                host: "catalog.example.test".into(),
                path: "/products".into(),
                query: None,
                source_ip: "127.0.0.1".parse().unwrap(),
                source_port: 4000,
                protocol: "HTTP/1.1".into(),
                tls_version: "TLSv1.3".into(),
                client_serial: Some("01".into()),
                disposition: Disposition::Blocked,
                status: Some(403),
                reasons: vec![],
                errors: vec![],
                near_misses: vec![],
                policy_hash: "abc".into(),
                decision_us: 4,
            }),
        )
    }

    #[test]
    fn canonical_json_is_stable_and_sorted() {
        let e = access();
        let a = e.to_canonical_json();
        assert_eq!(a, e.clone().to_canonical_json());
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with("{\"action\":\"Denied\""), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["class_uid"], 4002);
        assert_eq!(v["http_request"]["url"]["path"], "/products");
        assert_eq!(v["disposition"], "Blocked");
        assert_eq!(v["metadata"]["uid"], e.id.to_string());
    }

    #[test]
    fn canonical_json_sorts_nested_keys_whatever_the_map_order() {
        let mut out = Vec::new();
        let v: Value =
            serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":2,"x":"\u00e9"}]},"a":null}"#).unwrap();
        write_canonical(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":null,"b":{"a":[{"x":"é","y":2}],"z":1}}"#
        );
    }

    #[test]
    fn default_deny_is_named_in_summary() {
        assert!(access().summary().ends_with("-> deny [default deny]"));
    }

    #[test]
    fn a_refusal_summary_reads_as_one() {
        let summary = |kind: &str| {
            Event::new(
                time::macros::datetime!(2026-12-06 12:00 UTC),
                EventKind::Rejection(RejectionEvent {
                    request_id: None,
                    listener: "main".into(),
                    source_ip: "192.0.2.7".parse().unwrap(),
                    source_port: 0,
                    stage: "tls".into(),
                    kind: kind.into(),
                    detail: "refusals_not_recorded: 7 refused TLS handshakes".into(),
                    principal: None,
                    status: None,
                }),
            )
            .summary()
        };
        assert_eq!(
            summary(THROTTLED),
            "tls refusals summarised: refusals_not_recorded: 7 refused TLS handshakes"
        );
        assert!(summary("unknown_issuer").starts_with("rejected tls from 192.0.2.7:0: "));
    }

    #[test]
    fn a_default_deny_names_its_near_misses_in_summary_and_unmapped() {
        let mut e = access();
        let EventKind::Access(a) = &mut e.kind else {
            unreachable!()
        };
        a.near_misses = vec![
            "read: condition 1 (when { context.device.compliant }) is false".into(),
            "write: action not in scope".into(),
        ];
        assert!(e.summary().ends_with(
            "[default deny; closest: read: condition 1 (when { context.device.compliant }) \
             is false | write: action not in scope]"
        ));
        assert_eq!(
            e.to_ocsf()["unmapped"]["near_misses"][1],
            "write: action not in scope"
        );
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        // Without near misses the stored form has no such key.
        assert!(access().to_ocsf()["unmapped"].get("near_misses").is_none());
    }

    #[test]
    fn serde_round_trip() {
        let e = access();
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn detections_are_ocsf_detection_findings() {
        let e = Event::new(
            OffsetDateTime::UNIX_EPOCH,
            EventKind::Detection(DetectionEvent {
                rule: "tenet.lateral-movement".into(),
                title: "Lateral movement".into(),
                level: "high".into(),
                subject: "spiffe://example.org/a".into(),
                explanation: "reached 5 new services in 60 s".into(),
                tags: vec!["attack.lateral_movement".into()],
                evidence: json!({"services": 5}),
                engine: "analytics".into(),
            }),
        );
        let v = e.to_ocsf();
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["finding_info"]["uid"], "tenet.lateral-movement");
        let bytes = e.to_canonical_json();
        assert_eq!(bytes, e.to_canonical_json());
        assert!(
            e.summary()
                .starts_with("detection tenet.lateral-movement [high]")
        );
    }
}
