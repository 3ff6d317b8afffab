//! The canonical bytes of access and rejection events, written directly, against the
//! general path (`to_ocsf`, then every object's keys sorted): byte for byte on generated
//! events with awkward values, and against fixed bytes so that the format itself cannot
//! drift with both paths at once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use tenet_event::{AccessEvent, Disposition, Event, EventKind, RejectionEvent};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use uuid::Uuid;

/// Characters JSON escapes or that a careless writer gets wrong, among ordinary ones.
fn awkward_char() -> BoxedStrategy<char> {
    prop_oneof![
        3 => any::<char>(),
        3 => prop::char::range(' ', '~'),
        2 => prop::char::range('\u{0}', '\u{1f}'),
        2 => select(vec![
            '"', '\\', '/', '\u{7f}', '\u{80}', '\u{9f}', '\u{a0}', '\u{2028}', '\u{2029}',
            '\u{feff}', '\u{fffd}', '\u{d7ff}', '\u{e000}', '\u{10ffff}', 'é', 'ß', '中', '😀',
            '<', '>', '&', '\'', '%', '+',
        ]),
    ]
    .boxed()
}

fn awkward_string() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        12 => vec(awkward_char(), 0..24).prop_map(|c| c.into_iter().collect()),
        1 => vec(awkward_char(), 200..600).prop_map(|c| c.into_iter().collect()),
        2 => any::<String>(),
        2 => select(vec!["null", "true", "0", "-1", "{}", "[]", "\"", "\\u0000", "tls", "http"])
            .prop_map(String::from),
    ]
    .boxed()
}

/// Empty lists, short ones of any strings, and long ones (of short strings, to keep the
/// run short).
fn string_list() -> BoxedStrategy<Vec<String>> {
    let short = vec(awkward_char(), 0..6).prop_map(|c| c.into_iter().collect::<String>());
    prop_oneof![
        2 => Just(Vec::new()),
        5 => vec(awkward_string(), 1..4),
        1 => vec(short, 40..120),
    ]
    .boxed()
}

/// Methods with an OCSF activity of their own, and others (lower case, unknown, awkward).
fn method() -> BoxedStrategy<String> {
    prop_oneof![
        2 => select(vec![
            "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "TRACE", "PATCH",
            "get", "",
        ])
        .prop_map(String::from),
        1 => awkward_string(),
    ]
    .boxed()
}

fn ip() -> BoxedStrategy<IpAddr> {
    prop_oneof![
        3 => any::<IpAddr>(),
        1 => select(vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::BROADCAST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()),
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_compatible()),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff)),
        ]),
    ]
    .boxed()
}

fn u16_value() -> BoxedStrategy<u16> {
    prop_oneof![
        any::<u16>(),
        select(vec![0, 1, 9, 10, 99, 100, 403, u16::MAX])
    ]
    .boxed()
}

fn u64_value() -> BoxedStrategy<u64> {
    prop_oneof![
        any::<u64>(),
        select(vec![0, 1, 9, 10, u64::from(u32::MAX), u64::MAX])
    ]
    .boxed()
}

fn opt<S>(s: S) -> impl Strategy<Value = Option<S::Value>>
where
    S: Strategy,
    S::Value: Clone,
{
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)]
}

/// Times across the whole representable range, before and after the epoch, whole and
/// fractional milliseconds, in any offset.
fn time() -> BoxedStrategy<OffsetDateTime> {
    let min = PrimitiveDateTime::MIN.assume_utc().unix_timestamp_nanos();
    let max = PrimitiveDateTime::MAX.assume_utc().unix_timestamp_nanos();
    let nanos = prop_oneof![
        2 => min..=max,
        2 => -10_000_000_000_000_000_000i128..=10_000_000_000_000_000_000i128,
        1 => -2_000_000i128..=2_000_000i128,
        1 => select(vec![min, max, 0, -1, 1, -999_999, -1_000_000, -1_000_001, 999_999]),
    ];
    (nanos, -93_599i32..=93_599)
        .prop_map(|(n, offset)| {
            let utc = OffsetDateTime::from_unix_timestamp_nanos(n).unwrap();
            let offset = UtcOffset::from_whole_seconds(offset).unwrap();
            utc.checked_to_offset(offset).unwrap_or(utc)
        })
        .boxed()
}

fn id() -> BoxedStrategy<Uuid> {
    prop_oneof![
        4 => any::<u128>().prop_map(Uuid::from_u128),
        1 => select(vec![Uuid::nil(), Uuid::max()]),
    ]
    .boxed()
}

prop_compose! {
    fn access()(
        request_id in awkward_string(),
        listener in awkward_string(),
        principal in awkward_string(),
        action in method(),
        route in opt(awkward_string()),
        service in opt(awkward_string()),
        host in awkward_string(),
        path in awkward_string(),
        query in opt(awkward_string()),
        source_ip in ip(),
        source_port in u16_value(),
        protocol in awkward_string(),
        tls_version in awkward_string(),
        client_serial in opt(awkward_string()),
        allowed in any::<bool>(),
        status in opt(u16_value()),
        reasons in string_list(),
        errors in string_list(),
        near_misses in string_list(),
        policy_hash in awkward_string(),
        decision_us in u64_value(),
    ) -> AccessEvent {
        AccessEvent {
            request_id, listener, principal, action, route, service, host, path, query,
            source_ip, source_port, protocol, tls_version, client_serial,
            disposition: if allowed { Disposition::Allowed } else { Disposition::Blocked },
            status, reasons, errors, near_misses, policy_hash, decision_us,
        }
    }
}

prop_compose! {
    fn rejection()(
        request_id in opt(awkward_string()),
        listener in awkward_string(),
        source_ip in ip(),
        source_port in u16_value(),
        stage in prop_oneof![
            2 => select(vec!["tls", "http", "TLS", "tls ", ""]).prop_map(String::from),
            1 => awkward_string(),
        ],
        kind in awkward_string(),
        detail in awkward_string(),
        principal in opt(awkward_string()),
        status in opt(u16_value()),
    ) -> RejectionEvent {
        RejectionEvent {
            request_id, listener, source_ip, source_port, stage, kind, detail, principal, status,
        }
    }
}

fn same_bytes(event: &Event) -> Result<(), TestCaseError> {
    let fast = event.to_canonical_json();
    let general = event.canonical_json_via_value();
    prop_assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&general)
    );
    prop_assert_eq!(fast, general);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn access_bytes_are_the_general_bytes(id in id(), time in time(), a in access()) {
        same_bytes(&Event { id, time, kind: EventKind::Access(a) })?;
    }

    #[test]
    fn rejection_bytes_are_the_general_bytes(id in id(), time in time(), r in rejection()) {
        same_bytes(&Event { id, time, kind: EventKind::Rejection(r) })?;
    }
}

fn fixed_time() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap()
}

fn fixed_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn fixed_access(allowed: bool) -> Event {
    Event {
        id: fixed_id(),
        time: fixed_time(),
        kind: EventKind::Access(AccessEvent {
            request_id: "r-1".into(),
            listener: "main".into(),
            principal: "spiffe://example.org/ns/a".into(),
            action: if allowed { "GET" } else { "PATCH" }.into(),
            route: allowed.then(|| "catalog".into()),
            service: allowed.then(|| "catalog".into()),
            host: "catalog.example.test".into(),
            path: "/products/\"x\"\\é\u{1}".into(),
            query: None,
            source_ip: if allowed {
                "127.0.0.1".parse().unwrap()
            } else {
                "2001:db8::1".parse().unwrap()
            },
            source_port: 40_000,
            protocol: "HTTP/1.1".into(),
            tls_version: "TLSv1.3".into(),
            client_serial: allowed.then(|| "0a1b".into()),
            disposition: if allowed {
                Disposition::Allowed
            } else {
                Disposition::Blocked
            },
            status: (!allowed).then_some(403),
            reasons: if allowed {
                vec!["policy0".into(), "policy1".into()]
            } else {
                vec![]
            },
            errors: if allowed {
                vec![]
            } else {
                vec!["no route".into()]
            },
            near_misses: vec![],
            policy_hash: "abc123".into(),
            decision_us: 17,
        }),
    }
}

fn fixed_rejection(stage: &str) -> Event {
    Event {
        id: fixed_id(),
        time: fixed_time(),
        kind: EventKind::Rejection(RejectionEvent {
            request_id: (stage == "http").then(|| "r-2".into()),
            listener: "main".into(),
            source_ip: "192.0.2.7".parse().unwrap(),
            source_port: 5,
            stage: stage.into(),
            kind: "encoded_slash".into(),
            detail: "path has %2F\n".into(),
            principal: (stage == "tls").then(|| "spiffe://example.org/b".into()),
            status: (stage == "http").then_some(400),
        }),
    }
}

const META: &str = concat!(
    r#""metadata":{"product":{"name":"Tenet","vendor_name":"Tenet","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""},"uid":"01900000-0000-7000-8000-000000000001","version":"1.3.0"}"#
);

#[test]
fn access_bytes_are_fixed() {
    let allowed = [
        r#"{"action":"Allowed","action_id":1,"activity_id":3,"activity_name":"Get","actor":{"app_name":"spiffe://example.org/ns/a"},"category_uid":4,"class_name":"HTTP Activity","class_uid":4002,"disposition":"Allowed","disposition_id":1,"http_request":{"http_method":"GET","uid":"r-1","url":{"hostname":"catalog.example.test","path":"/products/\"x\"\\é\u0001"},"version":"HTTP/1.1"},"http_response":null,"#,
        META,
        r#","severity_id":1,"src_endpoint":{"ip":"127.0.0.1","port":40000},"status_id":1,"time":1700000000123,"tls":{"certificate":{"serial_number":"0a1b"},"version":"TLSv1.3"},"type_uid":400203,"unmapped":{"decision_us":17,"errors":[],"listener":"main","policy_hash":"abc123","reasons":["policy0","policy1"],"route":"catalog","service":"catalog"}}"#,
    ]
    .concat();
    let denied = [
        r#"{"action":"Denied","action_id":2,"activity_id":99,"activity_name":"Other","actor":{"app_name":"spiffe://example.org/ns/a"},"category_uid":4,"class_name":"HTTP Activity","class_uid":4002,"disposition":"Blocked","disposition_id":2,"http_request":{"http_method":"PATCH","uid":"r-1","url":{"hostname":"catalog.example.test","path":"/products/\"x\"\\é\u0001"},"version":"HTTP/1.1"},"http_response":{"code":403},"#,
        META,
        r#","severity_id":3,"src_endpoint":{"ip":"2001:db8::1","port":40000},"status_id":2,"time":1700000000123,"tls":{"certificate":{"serial_number":null},"version":"TLSv1.3"},"type_uid":400299,"unmapped":{"decision_us":17,"errors":["no route"],"listener":"main","policy_hash":"abc123","reasons":[],"route":null,"service":null}}"#,
    ]
    .concat();
    for (event, expected) in [(fixed_access(true), allowed), (fixed_access(false), denied)] {
        assert_eq!(
            String::from_utf8(event.to_canonical_json()).unwrap(),
            expected
        );
        assert_eq!(
            String::from_utf8(event.canonical_json_via_value()).unwrap(),
            expected
        );
    }
}

#[test]
fn rejection_bytes_are_fixed() {
    let tls = [
        r#"{"activity_id":1,"actor":{"app_name":"spiffe://example.org/b"},"category_uid":3,"class_name":"Authentication","class_uid":3002,"disposition":"Blocked","disposition_id":2,"http_response":null,"#,
        META,
        r#","severity_id":3,"src_endpoint":{"ip":"192.0.2.7","port":5},"status":"Failure","status_detail":"path has %2F\n","status_id":2,"time":1700000000123,"type_uid":300201,"unmapped":{"kind":"encoded_slash","listener":"main","request_id":null,"stage":"tls"}}"#,
    ]
    .concat();
    let http = [
        r#"{"activity_id":1,"actor":{"app_name":null},"category_uid":4,"class_name":"HTTP Activity","class_uid":4002,"disposition":"Blocked","disposition_id":2,"http_response":{"code":400},"#,
        META,
        r#","severity_id":3,"src_endpoint":{"ip":"192.0.2.7","port":5},"status":"Failure","status_detail":"path has %2F\n","status_id":2,"time":1700000000123,"type_uid":400201,"unmapped":{"kind":"encoded_slash","listener":"main","request_id":"r-2","stage":"http"}}"#,
    ]
    .concat();
    for (event, expected) in [
        (fixed_rejection("tls"), tls),
        (fixed_rejection("http"), http),
    ] {
        assert_eq!(
            String::from_utf8(event.to_canonical_json()).unwrap(),
            expected
        );
        assert_eq!(
            String::from_utf8(event.canonical_json_via_value()).unwrap(),
            expected
        );
    }
}
