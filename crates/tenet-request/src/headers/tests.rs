//! Unit tests for single-valued fields and upstream header preparation.

use http::HeaderValue;

use super::*;

fn map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    names
}

#[test]
fn every_listed_single_valued_field_may_not_repeat() {
    for name in &SINGLE_VALUED_HEADERS {
        let headers = map(&[(name.as_str(), "a"), (name.as_str(), "b")]);
        assert_eq!(
            check_single_valued(&headers, &[]),
            Err(Rejection::DuplicateHeader(name.clone())),
            "{name}"
        );
    }
}

#[test]
fn extra_single_valued_fields_are_configurable() {
    let headers = map(&[("x-role", "viewer"), ("X-Role", "admin"), ("accept", "a")]);
    assert_eq!(check_single_valued(&headers, &[]), Ok(()));
    let role = HeaderName::from_static("x-role");
    assert_eq!(
        check_single_valued(&headers, std::slice::from_ref(&role)),
        Err(Rejection::DuplicateHeader(role))
    );
}

#[test]
fn single_values_and_other_repeats_pass() {
    let headers = map(&[
        ("host", "a.test"),
        ("authorization", "Bearer x"),
        ("x-forwarded-for", "192.0.2.1, 198.51.100.7"),
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
    ]);
    assert_eq!(check_single_valued(&headers, &[]), Ok(()));
}

#[test]
fn hop_by_hop_fields_are_removed() {
    let mut headers = map(&[
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("proxy-authenticate", "Basic"),
        ("accept", "*/*"),
    ]);
    prepare_upstream_headers(&mut headers);
    assert_eq!(names(&headers), ["accept"]);
}

#[test]
fn te_trailers_is_kept_for_grpc() {
    let mut grpc = map(&[("te", "trailers"), ("content-type", "application/grpc")]);
    prepare_upstream_headers(&mut grpc);
    assert_eq!(grpc.get(header::TE).unwrap(), "trailers");

    for fields in [
        &[("te", "trailers, deflate")][..],
        &[("te", "trailers"), ("te", "trailers")][..],
        &[("te", "deflate")][..],
    ] {
        let mut headers = map(fields);
        prepare_upstream_headers(&mut headers);
        assert!(headers.get(header::TE).is_none(), "{fields:?}");
    }
}

#[test]
fn fields_named_in_connection_are_removed() {
    let mut headers = map(&[
        ("connection", "close, X-Custom ,  x-other"),
        ("connection", "x-third,,not a name"),
        ("x-custom", "1"),
        ("x-other", "2"),
        ("x-third", "3"),
        ("authorization", "Bearer x"),
        ("accept", "*/*"),
    ]);
    prepare_upstream_headers(&mut headers);
    assert_eq!(names(&headers), ["accept", "authorization"]);
}

#[test]
fn host_and_content_length_cannot_be_removed_through_connection() {
    let mut headers = map(&[
        ("connection", "host, content-length"),
        ("host", "a.test"),
        ("content-length", "3"),
    ]);
    prepare_upstream_headers(&mut headers);
    assert_eq!(names(&headers), ["content-length", "host"]);
}

#[test]
fn gateway_only_and_client_claim_fields_are_removed() {
    let mut headers = map(&[
        ("x-tenet-user", "user-B"),
        ("X-Tenet-Anything", "x"),
        ("x-forwarded-for", "198.51.100.7"),
        ("x-forwarded-host", "admin.example.test"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-prefix", "/admin"),
        ("x-envoy-original-path", "/admin"),
        ("accept", "*/*"),
        ("x-tenetuser", "kept: not the prefix"),
    ]);
    for name in &CLIENT_CLAIM_HEADERS {
        headers.append(name.clone(), HeaderValue::from_static("forged"));
    }
    prepare_upstream_headers(&mut headers);
    assert_eq!(names(&headers), ["accept", "x-tenetuser"]);
}

#[test]
fn end_to_end_fields_pass_through_with_all_values() {
    let mut headers = map(&[
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("authorization", "Bearer x"),
        ("cookie", "a=1"),
        ("content-type", "text/plain"),
        ("content-length", "3"),
    ]);
    let before = headers.clone();
    prepare_upstream_headers(&mut headers);
    assert_eq!(headers, before);
}

#[test]
fn cookie_fields_are_joined_into_one() {
    let mut split = map(&[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2; c=3")]);
    prepare_upstream_headers(&mut split);
    let cookies: Vec<_> = split.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
    let mut one = map(&[("cookie", "a=1;b=2")]);
    prepare_upstream_headers(&mut one);
    let cookies: Vec<_> = one.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1;b=2"]);
}
