//! Field mappings: how a Sigma field name is read from each source's events.
//!
//! The mapping is applied on the event side, at lookup, rather than by rewriting rules: a rule
//! is loaded once and works on every source whose events carry its fields, and a correlation's
//! `group-by` fields read through the same mapping as the detections.
//!
//! Lookup order for a field name:
//! 1. the event's own field (dot paths descend into objects and fan out over arrays);
//! 2. the source's aliases: common Sigma names onto the source's paths (Tenet's OCSF shape);
//! 3. for Tenet events, the Tenet-native field under `unmapped` (`route`, `reasons`, ...);
//! 4. for CloudTrail, Kubernetes audit and Okta, the same path without regard to case.
//!
//! Step 4 is case folding decided on purpose: the vendors' JSON uses camelCase, SigmaHQ's rules
//! mostly do too, but exporters and some rules differ (Panther lowercases Okta keys,
//! `eventtype` vs `eventType`), and none of these schemas has two fields that differ only in
//! case. Folding happens only after an exact miss and only when the first path segment exists
//! in some case, so the common path costs nothing. Windows and unknown events are read exactly,
//! as Sigma's Windows taxonomy is case-exact.

use std::borrow::Cow;
use std::sync::OnceLock;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::{Map, Value};

use crate::source::Source;

/// Maximum depth when building the case-folded copy of an event.
const MAX_DEPTH: usize = 64;

/// An event as rules see it: the raw JSON read through its source's field mapping.
pub(crate) struct SourceEvent<'a> {
    raw: JsonEvent<'a>,
    source: Source,
    /// Top-level object, for the case-folding pre-check.
    root: Option<&'a Map<String, Value>>,
    /// The event with every object key lowercased, built on the first case-folded lookup.
    folded: OnceLock<JsonEvent<'static>>,
    original: &'a Value,
}

impl<'a> SourceEvent<'a> {
    /// Wraps `event` from `source`. Windows records are flattened (`Event.EventData.*` and the
    /// useful `Event.System` fields at the top level, as Sigma's Windows taxonomy names them).
    pub(crate) fn new(event: &'a Value, source: Source) -> Self {
        let raw = match source {
            Source::Windows => JsonEvent::owned(flatten_windows(event)),
            _ => JsonEvent::borrow(event),
        };
        SourceEvent {
            raw,
            source,
            root: event.as_object(),
            folded: OnceLock::new(),
            original: event,
        }
    }

    fn folds_case(&self) -> bool {
        matches!(
            self.source,
            Source::CloudTrail | Source::KubernetesAudit | Source::Okta
        )
    }

    /// Whether the first segment of `path` is a Tenet-native field under `unmapped`.
    fn has_unmapped(&self, path: &str) -> bool {
        let first = path.split(['.', '[']).next().unwrap_or(path);
        self.original
            .get("unmapped")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(first))
    }

    fn folded_lookup(&self, path: &str) -> Option<EventValue<'_>> {
        let root = self.root?;
        let first = path.split(['.', '[']).next().unwrap_or(path);
        if !root.keys().any(|k| k.eq_ignore_ascii_case(first)) {
            return None;
        }
        let folded = self
            .folded
            .get_or_init(|| JsonEvent::owned(lowercase_keys(self.original, MAX_DEPTH)));
        folded.get_field(&path.to_lowercase())
    }
}

impl Event for SourceEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(v) = self.raw.get_field(path) {
            return Some(v);
        }
        for target in aliases(self.source, path) {
            if let Some(v) = self.raw.get_field(target) {
                return Some(v);
            }
        }
        if self.source == Source::Tenet && self.has_unmapped(path) {
            let native = format!("unmapped.{path}");
            if let Some(v) = self.raw.get_field(&native) {
                return Some(v);
            }
        }
        if self.folds_case() {
            return self.folded_lookup(path);
        }
        None
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.raw.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.raw.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.raw.visit_string_values(visit);
    }

    fn to_json(&self) -> Value {
        self.raw.to_json()
    }

    // `top_level_keys` keeps its default (`None`): aliases and case folding make names
    // resolvable that are not keys of the event, so the candidate index must probe them all.
}

/// Sigma field names for Tenet's OCSF events, tried in order. Proxy names (`c-ip`, `cs-method`,
/// `c-uri`, `cs-host`, `sc-status`) follow Sigma's proxy taxonomy so that SigmaHQ's generic
/// proxy rules read Tenet's gateway events.
fn aliases(source: Source, field: &str) -> &'static [&'static str] {
    match source {
        Source::Tenet => tenet_aliases(field),
        Source::CloudTrail => match field {
            "SourceIp" | "src_ip" | "ClientIp" => &["sourceIPAddress"],
            "User" | "user" => &["userIdentity.userName", "userIdentity.arn"],
            _ => &[],
        },
        Source::KubernetesAudit => match field {
            "User" | "user" => &["user.username"],
            "SourceIp" | "src_ip" => &["sourceIPs"],
            _ => &[],
        },
        Source::Okta => match field {
            "User" | "user" => &["actor.alternateId"],
            "SourceIp" | "src_ip" => &["client.ipAddress"],
            _ => &[],
        },
        Source::Windows | Source::Unknown => &[],
    }
}

fn tenet_aliases(field: &str) -> &'static [&'static str] {
    match field {
        "c-ip" | "SourceIp" | "src_ip" | "ClientIp" | "ClientIP" | "IpAddress" => {
            &["src_endpoint.ip"]
        }
        "c-port" | "SourcePort" | "src_port" => &["src_endpoint.port"],
        "cs-method" | "method" | "http_method" | "HttpMethod" => &["http_request.http_method"],
        "c-uri" | "c-uri-stem" | "uri" | "url" | "uri_path" | "UrlPath" => {
            &["http_request.url.path"]
        }
        "cs-host" | "Host" | "dest_host" | "hostname" => &["http_request.url.hostname"],
        "sc-status" | "status_code" | "StatusCode" => &["http_response.code"],
        "cs-version" | "http_version" => &["http_request.version"],
        "User" | "user" | "principal" | "SubjectUserName" => {
            &["actor.app_name", "unmapped.actor", "unmapped.spiffe_id"]
        }
        "request_id" => &["http_request.uid", "unmapped.request_id"],
        "operation" | "EventName" | "eventName" => &["api.operation"],
        "tls_version" => &["tls.version"],
        "client_serial" => &["tls.certificate.serial_number"],
        "reason" | "detail" => &["status_detail", "unmapped.detail"],
        _ => &[],
    }
}

/// `Event.EventData.*` and the `Event.System` fields Sigma names, at the top level.
fn flatten_windows(event: &Value) -> Value {
    let mut out = Map::new();
    let system = event.pointer("/Event/System");
    if let Some(system) = system.and_then(Value::as_object) {
        for (key, value) in system {
            if !value.is_object() {
                out.insert(key.clone(), value.clone());
            }
        }
        if let Some(id) = system
            .get("EventID")
            .and_then(crate::source::event_id_number)
        {
            out.insert("EventID".into(), Value::from(id));
        }
        if let Some(name) = event.pointer("/Event/System/Provider/#attributes/Name") {
            out.insert("Provider_Name".into(), name.clone());
        }
        if let Some(t) = event.pointer("/Event/System/TimeCreated/#attributes/SystemTime") {
            out.insert("TimeCreated".into(), t.clone());
        }
    }
    let data = event
        .pointer("/Event/EventData")
        .or_else(|| event.pointer("/Event/UserData"));
    if let Some(data) = data.and_then(Value::as_object) {
        for (key, value) in data {
            if key == "Data" {
                named_data(value, &mut out);
            } else if key != "#attributes" {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// `Data: [{"#attributes": {"Name": "X"}, "#text": "v"}, ...]`, the other evtx dump shape.
fn named_data(value: &Value, out: &mut Map<String, Value>) {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    for item in items {
        if let Some(name) = item.pointer("/#attributes/Name").and_then(Value::as_str) {
            let text = item.get("#text").cloned().unwrap_or(Value::Null);
            out.insert(name.to_owned(), text);
        }
    }
}

fn lowercase_keys(value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) if depth > 0 => Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v, depth - 1)))
                .collect(),
        ),
        Value::Array(items) if depth > 0 => {
            Value::Array(items.iter().map(|v| lowercase_keys(v, depth - 1)).collect())
        }
        Value::Object(_) | Value::Array(_) => Value::Null,
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(event: &SourceEvent<'_>, field: &str) -> Option<String> {
        event
            .get_field(field)
            .and_then(|v| v.as_str().map(|s| s.into_owned()))
    }

    #[test]
    fn okta_fields_fold_case_both_ways() {
        let lower = json!({"eventtype": "user.mfa.factor.deactivate",
                           "debugcontext": {"debugdata": {"requesturi": "/admin"}}});
        let e = SourceEvent::new(&lower, Source::Okta);
        assert_eq!(
            text(&e, "eventType").as_deref(),
            Some("user.mfa.factor.deactivate")
        );
        assert_eq!(
            text(&e, "debugContext.debugData.requestUri").as_deref(),
            Some("/admin")
        );
        let camel = json!({"eventType": "x", "displayMessage": "y"});
        let e = SourceEvent::new(&camel, Source::Okta);
        assert_eq!(text(&e, "eventtype").as_deref(), Some("x"));
        assert_eq!(text(&e, "nosuch"), None);
    }

    #[test]
    fn windows_and_unknown_are_case_exact() {
        let v = json!({"Image": "a"});
        assert_eq!(text(&SourceEvent::new(&v, Source::Unknown), "image"), None);
        let win = json!({"Event": {"System": {"EventID": 1, "Channel": "c",
            "Provider": {"#attributes": {"Name": "p"}}},
            "EventData": {"Image": "C:\\x.exe"}}});
        let e = SourceEvent::new(&win, Source::Windows);
        assert_eq!(text(&e, "Image").as_deref(), Some("C:\\x.exe"));
        assert_eq!(text(&e, "image"), None);
        assert_eq!(text(&e, "EventID").as_deref(), Some("1"));
        assert_eq!(text(&e, "Provider_Name").as_deref(), Some("p"));
    }

    #[test]
    fn tenet_names_map_onto_ocsf_paths() {
        let v = json!({"class_uid": 4002, "metadata": {"product": {"name": "Tenet"}},
            "src_endpoint": {"ip": "10.0.0.1"}, "actor": {"app_name": "spiffe://t/a"},
            "http_request": {"http_method": "GET", "url": {"path": "/x", "hostname": "h"}},
            "unmapped": {"route": "r1"}});
        let e = SourceEvent::new(&v, Source::Tenet);
        assert_eq!(text(&e, "c-ip").as_deref(), Some("10.0.0.1"));
        assert_eq!(text(&e, "cs-method").as_deref(), Some("GET"));
        assert_eq!(text(&e, "c-uri").as_deref(), Some("/x"));
        assert_eq!(text(&e, "User").as_deref(), Some("spiffe://t/a"));
        assert_eq!(text(&e, "route").as_deref(), Some("r1"));
    }

    #[test]
    fn windows_named_data_is_flattened() {
        let win = json!({"Event": {"System": {"EventID": {"#text": "4688"}},
            "EventData": {"Data": [{"#attributes": {"Name": "NewProcessName"}, "#text": "a"}]}}});
        let e = SourceEvent::new(&win, Source::Windows);
        assert_eq!(text(&e, "NewProcessName").as_deref(), Some("a"));
        assert_eq!(text(&e, "EventID").as_deref(), Some("4688"));
    }
}
