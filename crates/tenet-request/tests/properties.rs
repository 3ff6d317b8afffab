//! Property tests: the normaliser never panics, its output is canonical and a fixed point,
//! and equivalent spellings of a path or host meet in one form.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri};
use proptest::prelude::*;
use tenet_request::{
    Rejection, TargetRules, canonical_host, canonical_sni, check_framing, normalize_target,
    normalize_target_with,
};

/// Pieces that exercise every path rule, mixed with arbitrary bytes.
fn path_piece() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: [&str; 35] = [
        "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5C", "%25", "%", "%4", "%41", "%7e", "%3a",
        "%3B", ";", "a", "Z", "~", "é", "\\", "%00", "%0a", "%c3%a9", "%C0%AE", "?", "#", ":", "@",
        "{", "|", "=", "+", "%20", "%ff",
    ];
    prop_oneof![
        9 => proptest::sample::select(&TOKENS[..]).prop_map(|t| t.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

fn raw_target() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(path_piece(), 0..24).prop_map(|pieces| {
        let mut target = vec![b'/'];
        target.extend(pieces.concat());
        target
    })
}

fn any_rules() -> impl Strategy<Value = TargetRules> {
    (any::<bool>(), any::<bool>()).prop_map(|(parameters, percent)| {
        let mut rules = TargetRules::STRICT;
        if parameters {
            rules = rules.with_path_parameters();
        }
        if percent {
            rules = rules.with_encoded_percent();
        }
        rules
    })
}

fn assert_canonical(path: &str) {
    assert!(path.starts_with('/'), "{path}");
    assert!(path.is_ascii(), "{path}");
    for bad in ["//", "/./", "/../"] {
        assert!(!path.contains(bad), "{path} contains {bad}");
    }
    assert!(!path.ends_with("/..") && !path.ends_with("/."), "{path}");
    assert!(!path.contains(['?', '#', '\\']), "{path}");
    // Every remaining escape is uppercase and stands for a byte that is not unreserved.
    for (i, _) in path.match_indices('%') {
        let hex = &path[i + 1..i + 3];
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{path}"
        );
        let byte = u8::from_str_radix(hex, 16).unwrap();
        assert!(
            !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
            "{path}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn path_normalisation_is_canonical_and_idempotent(raw in raw_target(), rules in any_rules()) {
        let Ok(uri) = Uri::try_from(raw.as_slice()) else { return Ok(()) };
        if let Ok(first) = normalize_target_with(&Method::GET, &uri, rules) {
            assert_canonical(first.as_str());
            let again: Uri = first.path_and_query().parse().unwrap();
            let second = normalize_target_with(&Method::GET, &again, rules).unwrap();
            prop_assert_eq!(second, first);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(uri) = Uri::try_from(bytes.as_slice()) {
            for method in [Method::GET, Method::OPTIONS, Method::CONNECT] {
                let _ = normalize_target(&method, &uri);
            }
        }
    }

    #[test]
    fn encoding_unreserved_characters_changes_nothing(
        segments in proptest::collection::vec("[A-Za-z0-9._~-]{0,6}", 1..8),
        mask in any::<u64>(),
    ) {
        let plain = format!("/{}", segments.join("/"));
        let encoded: String = plain
            .bytes()
            .enumerate()
            .map(|(i, b)| match (b, mask >> (i % 64) & 1) {
                (b'/', _) | (_, 0) => char::from(b).to_string(),
                (_, _) if i % 2 == 0 => format!("%{b:02x}"),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let plain_uri: Uri = plain.parse().unwrap();
        let encoded_uri: Uri = encoded.parse().unwrap();
        prop_assert_eq!(
            normalize_target(&Method::GET, &encoded_uri),
            normalize_target(&Method::GET, &plain_uri)
        );
    }

    #[test]
    fn dot_segments_resolve_like_a_stack_or_reject_climbing(
        segments in proptest::collection::vec(
            proptest::sample::select(&["a", "b", "..", ".", ""][..]), 1..12),
    ) {
        let mut stack = Vec::new();
        let mut climbed = false;
        for segment in &segments {
            match *segment {
                ".." => climbed |= stack.pop().is_none(),
                "." | "" => {}
                name => stack.push(name),
            }
        }
        let directory = matches!(segments.last(), Some(&(".." | "." | "")));
        let expected = if climbed {
            Err(Rejection::DotSegmentsClimbAboveRoot)
        } else if stack.is_empty() {
            Ok("/".to_owned())
        } else {
            Ok(format!("/{}{}", stack.join("/"), if directory { "/" } else { "" }))
        };
        let uri: Uri = format!("/{}", segments.join("/")).parse().unwrap();
        let actual = normalize_target(&Method::GET, &uri).map(|p| p.as_str().to_owned());
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn host_canonicalisation_never_panics_and_is_idempotent(raw in "\\PC{0,40}", port in 1u16..) {
        if let Ok(host) = canonical_host(&raw, port) {
            prop_assert_eq!(canonical_host(&host.to_string(), port), Ok(host.clone()));
            prop_assert!(!host.name().ends_with('.'));
            prop_assert_ne!(host.port(), Some(port));
            prop_assert!(!host.name().bytes().any(|b| b.is_ascii_uppercase()));
        }
        let _ = canonical_sni(&raw);
    }

    #[test]
    fn host_spellings_meet_in_one_form(
        labels in proptest::collection::vec("[a-z][a-z0-9_-]{0,10}", 1..5),
        flips in any::<u64>(),
        trailing_dot in any::<bool>(),
        default_port in any::<bool>(),
    ) {
        let name = labels.join(".");
        let mut spelled: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| if flips >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        if trailing_dot {
            spelled.push('.');
        }
        if default_port {
            spelled.push_str(":443");
        }
        let host = canonical_host(&spelled, 443).unwrap();
        prop_assert_eq!(host.name(), name.as_str());
        prop_assert_eq!(host.port(), None);
        let sni = canonical_sni(spelled.trim_end_matches(":443")).unwrap();
        prop_assert_eq!(sni.name(), name.as_str());
    }

    #[test]
    fn only_plain_decimal_content_lengths_pass(value in "[0-9+ ,x-]{0,24}") {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_str(&value).unwrap());
        let plain = !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u64>().is_ok();
        prop_assert_eq!(check_framing(&headers).is_ok(), plain);
    }

    #[test]
    fn only_exactly_chunked_passes(value in "[a-zA-Z, \t]{0,16}") {
        let mut headers = HeaderMap::new();
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_str(&value).unwrap());
        let chunked = value.eq_ignore_ascii_case("chunked");
        prop_assert_eq!(check_framing(&headers).is_ok(), chunked);
    }
}
