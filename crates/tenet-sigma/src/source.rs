//! Which log an event came from, recognised by its content, and the Sigma logsource it implies.

use std::fmt;

use rsigma_parser::LogSource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The log an event came from. It decides which field mapping applies and which rules can
/// apply at all (a rule whose logsource names another product is never evaluated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Source {
    /// Tenet's own events: the OCSF-shaped JSON of `tenet_event::Event::to_ocsf`.
    Tenet,
    /// AWS CloudTrail records.
    #[serde(rename = "cloudtrail")]
    CloudTrail,
    /// Kubernetes API server audit events (`audit.k8s.io`).
    KubernetesAudit,
    /// Okta System Log events.
    Okta,
    /// Windows event log records as JSON (`Event.System` / `Event.EventData`, the shape of
    /// evtx dumps), such as SigmaHQ's regression data.
    Windows,
    /// Not recognised: fields are read as they are and every rule is evaluated.
    Unknown,
}

impl Source {
    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tenet => "tenet",
            Source::CloudTrail => "cloudtrail",
            Source::KubernetesAudit => "kubernetes_audit",
            Source::Okta => "okta",
            Source::Windows => "windows",
            Source::Unknown => "unknown",
        }
    }

    /// Recognises one event by its content. Object keys are compared without regard to case,
    /// because exporters differ (Panther, for one, lowercases Okta and some CloudTrail keys).
    pub fn recognise(event: &Value) -> Source {
        let Some(map) = event.as_object() else {
            return Source::Unknown;
        };
        if is_tenet(map) {
            return Source::Tenet;
        }
        let has = |key: &str| map.keys().any(|k| k.eq_ignore_ascii_case(key));
        let text = |key: &str| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str())
        };

        if text("eventSource").is_some_and(|s| s.ends_with(".amazonaws.com"))
            || (has("eventName") && has("eventVersion") && has("awsRegion"))
        {
            return Source::CloudTrail;
        }
        if text("apiVersion").is_some_and(|v| v.starts_with("audit.k8s.io/"))
            || (text("kind") == Some("Event") && has("verb") && has("auditID"))
            || (has("verb") && (has("objectRef") || has("requestURI")) && has("user"))
            || (text("kind") == Some("Event") && has("verb") && has("objectRef"))
        {
            return Source::KubernetesAudit;
        }
        let okta = has("eventType")
            && ((has("legacyEventType") || has("displayMessage"))
                || (has("actor") && has("published"))
                || (has("outcome") && has("actor"))
                || (has("uuid") && has("published")));
        if okta {
            return Source::Okta;
        }
        if map
            .get("Event")
            .and_then(|e| e.get("System"))
            .is_some_and(Value::is_object)
        {
            return Source::Windows;
        }
        Source::Unknown
    }

    /// The logsource the event implies, for conflict-based rule pruning: a rule is skipped
    /// only when it names a product, service or category that differs from this one.
    /// `None` for [`Source::Unknown`]: every rule is evaluated.
    pub(crate) fn logsource(self, event: &Value) -> Option<LogSource> {
        let ls = |product: &str, service: Option<&str>, category: Option<&str>| LogSource {
            product: Some(product.to_owned()),
            service: service.map(str::to_owned),
            category: category.map(str::to_owned),
            ..LogSource::default()
        };
        match self {
            Source::Tenet => {
                let kind = TenetKind::of(event);
                Some(ls("tenet", Some(kind.service()), kind.category()))
            }
            Source::CloudTrail => Some(ls("aws", Some("cloudtrail"), None)),
            Source::KubernetesAudit => Some(ls("kubernetes", Some("audit"), Some("application"))),
            Source::Okta => Some(ls("okta", Some("okta"), None)),
            Source::Windows => Some(windows_logsource(event)),
            Source::Unknown => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tenet's events carry `metadata.product.name = "Tenet"` and an OCSF class.
fn is_tenet(map: &Map<String, Value>) -> bool {
    map.get("metadata")
        .and_then(|m| m.get("product"))
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        == Some("Tenet")
        && map.get("class_uid").is_some_and(Value::is_u64)
}

/// The kinds of Tenet events, each with its own logsource service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenetKind {
    Access,
    Rejection,
    Svid,
    Policy,
    Admin,
}

impl TenetKind {
    pub(crate) fn of(event: &Value) -> TenetKind {
        if event.pointer("/unmapped/stage").is_some() {
            return TenetKind::Rejection;
        }
        match event.pointer("/api/operation").and_then(Value::as_str) {
            Some("svid.issue") => TenetKind::Svid,
            Some("policy.change") => TenetKind::Policy,
            Some(_) => TenetKind::Admin,
            None => TenetKind::Access,
        }
    }

    /// `logsource.service` for rules written against Tenet.
    pub(crate) fn service(self) -> &'static str {
        match self {
            TenetKind::Access => "access",
            TenetKind::Rejection => "rejection",
            TenetKind::Svid => "svid",
            TenetKind::Policy => "policy",
            TenetKind::Admin => "admin",
        }
    }

    /// `logsource.category`: gateway traffic is Sigma's `proxy` category, so SigmaHQ's
    /// generic proxy rules apply to it; the rest are Tenet's own administrative activity.
    pub(crate) fn category(self) -> Option<&'static str> {
        match self {
            TenetKind::Access | TenetKind::Rejection => Some("proxy"),
            TenetKind::Svid | TenetKind::Policy | TenetKind::Admin => None,
        }
    }
}

/// Windows: product `windows`, the service from the channel, the category from the Sysmon
/// event id (the mapping pySigma's Sysmon pipeline uses).
fn windows_logsource(event: &Value) -> LogSource {
    let system = event.pointer("/Event/System");
    let channel = system
        .and_then(|s| s.get("Channel"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let event_id = system
        .and_then(|s| s.get("EventID"))
        .and_then(event_id_number);
    let service = match channel {
        "Microsoft-Windows-Sysmon/Operational" => Some("sysmon"),
        "Security" => Some("security"),
        "System" => Some("system"),
        "Application" => Some("application"),
        "Microsoft-Windows-PowerShell/Operational" => Some("powershell"),
        _ => None,
    };
    let category = match (service, event_id) {
        (Some("sysmon"), Some(id)) => sysmon_category(id),
        (Some("security"), Some(4688)) => Some("process_creation"),
        _ => None,
    };
    LogSource {
        product: Some("windows".to_owned()),
        // A Sysmon event is known by its category; SigmaHQ's category rules name no service.
        service: if category.is_some() {
            None
        } else {
            service.map(str::to_owned)
        },
        category: category.map(str::to_owned),
        ..LogSource::default()
    }
}

/// `EventID` is a number, or `{"#text": "4688"}` in some evtx dumps.
pub(crate) fn event_id_number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Object(m) => m.get("#text").and_then(event_id_number),
        _ => None,
    }
}

fn sysmon_category(id: u64) -> Option<&'static str> {
    Some(match id {
        1 => "process_creation",
        2 => "file_change",
        3 => "network_connection",
        5 => "process_termination",
        6 => "driver_load",
        7 => "image_load",
        8 => "create_remote_thread",
        9 => "raw_access_thread",
        10 => "process_access",
        11 => "file_event",
        // 12-14 are registry_add/delete/set/rename by `EventType`, and all of them are
        // registry_event too: one category cannot say that, so none prunes them.
        15 => "create_stream_hash",
        17 | 18 => "pipe_created",
        19..=21 => "wmi_event",
        22 => "dns_query",
        23 | 26 => "file_delete",
        24 => "clipboard_capture",
        25 => "process_tampering",
        29 => "file_executable_detected",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recognises_each_source() {
        let ct = json!({"eventVersion":"1.08","eventSource":"s3.amazonaws.com",
                        "eventName":"PutBucketPolicy","awsRegion":"us-east-1"});
        assert_eq!(Source::recognise(&ct), Source::CloudTrail);
        let ct_lower = json!({"eventversion":"1.08","eventsource":"iam.amazonaws.com",
                              "eventname":"CreateUser","awsregion":"us-east-1"});
        assert_eq!(Source::recognise(&ct_lower), Source::CloudTrail);
        let k8s = json!({"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create",
                         "objectRef":{"resource":"pods"}});
        assert_eq!(Source::recognise(&k8s), Source::KubernetesAudit);
        let okta = json!({"eventType":"user.session.start","actor":{"id":"x"},
                          "outcome":{"result":"SUCCESS"},"published":"2024-01-01T00:00:00Z"});
        assert_eq!(Source::recognise(&okta), Source::Okta);
        let win = json!({"Event":{"System":{"EventID":1},"EventData":{"Image":"a"}}});
        assert_eq!(Source::recognise(&win), Source::Windows);
        let tenet = json!({"class_uid":4002,"metadata":{"product":{"name":"Tenet"}}});
        assert_eq!(Source::recognise(&tenet), Source::Tenet);
        assert_eq!(Source::recognise(&json!({"a":1})), Source::Unknown);
        assert_eq!(Source::recognise(&json!([1, 2])), Source::Unknown);
    }

    /// Each way of recognising a source, with the keys as the vendor spells them, in
    /// lowercase and in capitals.
    #[test]
    fn recognition_ignores_the_case_of_keys() {
        let cases = [
            (
                json!({"eventSource": "iam.amazonaws.com"}),
                Source::CloudTrail,
            ),
            (
                json!({"eventName": "x", "eventVersion": "1", "awsRegion": "r"}),
                Source::CloudTrail,
            ),
            (
                json!({"apiVersion": "audit.k8s.io/v1"}),
                Source::KubernetesAudit,
            ),
            (
                json!({"kind": "Event", "verb": "get", "auditID": "a"}),
                Source::KubernetesAudit,
            ),
            (
                json!({"verb": "get", "requestURI": "/api", "user": {}}),
                Source::KubernetesAudit,
            ),
            (
                json!({"verb": "get", "objectRef": {}, "user": {}}),
                Source::KubernetesAudit,
            ),
            (
                json!({"kind": "Event", "verb": "get", "objectRef": {}}),
                Source::KubernetesAudit,
            ),
            (
                json!({"eventType": "x", "legacyEventType": "y"}),
                Source::Okta,
            ),
            (
                json!({"eventType": "x", "displayMessage": "y"}),
                Source::Okta,
            ),
            (
                json!({"eventType": "x", "actor": {}, "published": "t"}),
                Source::Okta,
            ),
            (
                json!({"eventType": "x", "outcome": {}, "actor": {}}),
                Source::Okta,
            ),
            (
                json!({"eventType": "x", "uuid": "u", "published": "t"}),
                Source::Okta,
            ),
        ];
        for (event, source) in cases {
            assert_eq!(Source::recognise(&event), source, "{event}");
            for case in [str::to_lowercase, str::to_uppercase] {
                let recased: Map<String, Value> = event
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (case(k), v.clone()))
                    .collect();
                let recased = Value::Object(recased);
                assert_eq!(Source::recognise(&recased), source, "{recased}");
            }
        }
        // A value that is not text does not count as the text probe's.
        let not_text = json!({"eventSource": 1, "eventName": "x"});
        assert_eq!(Source::recognise(&not_text), Source::Unknown);
    }

    /// JSON reports name a source as text reports do.
    #[test]
    fn serialised_names_are_the_printed_names() {
        for source in [
            Source::Tenet,
            Source::CloudTrail,
            Source::KubernetesAudit,
            Source::Okta,
            Source::Windows,
            Source::Unknown,
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
    }

    #[test]
    fn sysmon_events_get_their_category() {
        let win = json!({"Event":{"System":{"EventID":7,
            "Channel":"Microsoft-Windows-Sysmon/Operational"}}});
        let ls = Source::Windows.logsource(&win).unwrap();
        assert_eq!(ls.category.as_deref(), Some("image_load"));
        assert_eq!(ls.product.as_deref(), Some("windows"));
    }
}
