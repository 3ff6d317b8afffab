//! Unit tests for request-target normalisation, one table per rule.

use super::*;

fn normalize(target: &str) -> Result<String, Rejection> {
    normalize_with(target, TargetRules::STRICT)
}

fn normalize_with(target: &str, rules: TargetRules) -> Result<String, Rejection> {
    let uri: Uri = target.parse().unwrap();
    normalize_target_with(&Method::GET, &uri, rules).map(|path| path.path_and_query())
}

fn check(cases: &[(&str, Result<&str, Rejection>)]) {
    for (input, expected) in cases {
        let expected = expected.clone().map(str::to_owned);
        assert_eq!(normalize(input), expected, "input {input:?}");
    }
}

#[test]
fn plain_paths_pass_unchanged() {
    check(&[
        ("/", Ok("/")),
        ("/public/index.html", Ok("/public/index.html")),
        ("/a/b/", Ok("/a/b/")),
        ("/v1/things:batchGet", Ok("/v1/things:batchGet")),
        ("/user@host/!$&'()*+,=", Ok("/user@host/!$&'()*+,=")),
    ]);
}

#[test]
fn case_is_preserved() {
    check(&[
        ("/ADMIN/Users", Ok("/ADMIN/Users")),
        ("/a%2f", Err(Rejection::EncodedSlash)),
    ]);
}

#[test]
fn repeated_slashes_are_merged() {
    check(&[
        ("//admin/users", Ok("/admin/users")),
        ("/a///b", Ok("/a/b")),
        ("/a//", Ok("/a/")),
        ("//", Ok("/")),
    ]);
}

#[test]
fn dot_segments_are_resolved() {
    check(&[
        ("/public/../admin/users", Ok("/admin/users")),
        ("/public/docs/../index.html", Ok("/public/index.html")),
        ("/a/./b", Ok("/a/b")),
        ("/a/.", Ok("/a/")),
        ("/a/b/..", Ok("/a/")),
        ("/a/..", Ok("/")),
        ("/.", Ok("/")),
        ("/public//..//admin/users", Ok("/admin/users")),
        ("/a/.../b", Ok("/a/.../b")),
        ("/a/.b/..c", Ok("/a/.b/..c")),
    ]);
}

#[test]
fn dot_segments_climbing_above_the_root_are_rejected() {
    let climb = Err(Rejection::DotSegmentsClimbAboveRoot);
    check(&[
        ("/..", climb.clone()),
        ("/../a", climb.clone()),
        ("/a/../../b", climb.clone()),
        ("/a/%2e%2e/%2E%2E/b", climb.clone()),
        ("/./..", climb),
    ]);
}

#[test]
fn encoded_unreserved_characters_are_decoded() {
    check(&[
        ("/public/%2E%2E/admin/users", Ok("/admin/users")),
        ("/public/.%2e/admin", Ok("/admin")),
        ("/%61dmin", Ok("/admin")),
        ("/%41%5a%30%2D%5F%7E", Ok("/AZ0-_~")),
    ]);
}

#[test]
fn other_encodings_are_kept_with_uppercase_hex() {
    check(&[
        ("/a%3ab", Ok("/a%3Ab")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%2Bb", Ok("/a%2Bb")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/%40", Ok("/%40")),
    ]);
}

#[test]
fn characters_not_allowed_raw_are_encoded() {
    check(&[
        ("/café", Ok("/caf%C3%A9")),
        ("/%7B%22a%22%7D", Ok("/%7B%22a%22%7D")),
        ("/{\"a\"}", Ok("/%7B%22a%22%7D")),
        ("/[x]^|", Ok("/%5Bx%5D%5E%7C")),
    ]);
}

#[test]
fn slashes_and_backslashes_in_disguise_are_rejected() {
    check(&[
        ("/public/..%2Fadmin/users", Err(Rejection::EncodedSlash)),
        ("/public/..%2fadmin/users", Err(Rejection::EncodedSlash)),
        ("/public/..%5Cadmin/users", Err(Rejection::EncodedBackslash)),
        ("/public/..%5cadmin/users", Err(Rejection::EncodedBackslash)),
        ("/public/..\\admin/users", Err(Rejection::Backslash)),
    ]);
}

#[test]
fn nul_and_control_characters_are_rejected() {
    check(&[
        ("/a%00b", Err(Rejection::Nul)),
        ("/a%0Ab", Err(Rejection::ControlCharacter)),
        ("/a%0d%0aSet-Cookie:x", Err(Rejection::ControlCharacter)),
        ("/a%09", Err(Rejection::ControlCharacter)),
        ("/a%7f", Err(Rejection::ControlCharacter)),
    ]);
}

#[test]
fn raw_control_bytes_are_rejected_even_if_a_uri_carried_them() {
    let rules = TargetRules::STRICT;
    assert_eq!(check_raw_path_byte(0, rules), Err(Rejection::Nul));
    assert_eq!(
        check_raw_path_byte(b'\n', rules),
        Err(Rejection::ControlCharacter)
    );
    assert_eq!(
        check_raw_path_byte(0x7F, rules),
        Err(Rejection::ControlCharacter)
    );
    assert_eq!(check_query("a=\0"), Err(Rejection::Nul));
    assert_eq!(check_query("a=\r\n"), Err(Rejection::ControlCharacter));
}

#[test]
fn invalid_percent_encoding_is_rejected() {
    let invalid = Err(Rejection::InvalidPercentEncoding);
    check(&[
        ("/a%G1", invalid.clone()),
        ("/a%4", invalid.clone()),
        ("/a%", invalid.clone()),
        ("/a%%41", invalid.clone()),
        ("/a%4/b", invalid.clone()),
        ("/a%c3%", invalid),
    ]);
}

#[test]
fn encodings_that_are_not_utf8_are_rejected() {
    check(&[
        ("/%C0%AE%C0%AE/admin", Err(Rejection::InvalidUtf8)),
        ("/%C0%AF", Err(Rejection::InvalidUtf8)),
        ("/%FF", Err(Rejection::InvalidUtf8)),
        ("/%C3", Err(Rejection::InvalidUtf8)),
        ("/%C3/%A9", Err(Rejection::InvalidUtf8)),
        ("/%E2%82%AC", Ok("/%E2%82%AC")),
    ]);
}

#[test]
fn semicolons_and_encoded_percent_are_rejected_by_default() {
    check(&[
        ("/public/..;/admin", Err(Rejection::Semicolon)),
        ("/admin;x=1/users", Err(Rejection::Semicolon)),
        ("/admin%3Bx", Err(Rejection::Semicolon)),
        ("/public/%252e%252e/admin", Err(Rejection::EncodedPercent)),
        ("/public/..%252Fadmin", Err(Rejection::EncodedPercent)),
    ]);
}

#[test]
fn path_parameters_when_allowed_cannot_hide_dot_or_empty_segments() {
    let rules = TargetRules::STRICT.with_path_parameters();
    let cases = [
        ("/a;v=1/b", Ok("/a;v=1/b")),
        ("/a%3bv/b", Ok("/a%3Bv/b")),
        ("/public/..;/admin", Err(Rejection::AmbiguousPathParameter)),
        ("/public/.;x/admin", Err(Rejection::AmbiguousPathParameter)),
        ("/;/admin", Err(Rejection::AmbiguousPathParameter)),
        (
            "/public/%2e%2e%3Bx/admin",
            Err(Rejection::AmbiguousPathParameter),
        ),
        ("/a/..;", Err(Rejection::AmbiguousPathParameter)),
    ];
    for (input, expected) in cases {
        assert_eq!(
            normalize_with(input, rules),
            expected.map(str::to_owned),
            "{input}"
        );
    }
}

#[test]
fn encoded_percent_when_allowed_is_kept_encoded() {
    let rules = TargetRules::STRICT.with_encoded_percent();
    assert_eq!(
        normalize_with("/100%25/x%252f", rules),
        Ok("/100%25/x%252f".to_owned())
    );
    assert_eq!(normalize_with("/a;b", rules), Err(Rejection::Semicolon));
}

#[test]
fn query_is_verbatim_but_checked() {
    check(&[
        ("/search?q=a%2Fb&x=..%2f", Ok("/search?q=a%2Fb&x=..%2f")),
        ("/search?q=%e9", Ok("/search?q=%e9")),
        ("/search?", Ok("/search?")),
        ("/a/../b?c=/../d", Ok("/b?c=/../d")),
        ("/search?q=%00", Err(Rejection::Nul)),
        ("/search?q=%G0", Err(Rejection::InvalidPercentEncoding)),
        ("/search?q=%4", Err(Rejection::InvalidPercentEncoding)),
    ]);
}

#[test]
fn fragments_never_reach_the_normaliser() {
    check(&[("/public#/../../admin", Ok("/public"))]);
}

#[test]
fn absolute_form_uses_its_path() {
    check(&[
        ("http://app.example.test/public/../admin", Ok("/admin")),
        ("https://app.example.test", Ok("/")),
        ("https://app.example.test?x=1", Ok("/?x=1")),
        (
            "ftp://app.example.test/a",
            Err(Rejection::UnsupportedScheme("ftp".into())),
        ),
    ]);
}

#[test]
fn authority_form_and_connect_are_rejected() {
    check(&[("app.example.test:443", Err(Rejection::NotOriginForm))]);
    let uri: Uri = "app.example.test:443".parse().unwrap();
    assert_eq!(
        normalize_target(&Method::CONNECT, &uri),
        Err(Rejection::ConnectNotSupported)
    );
    let uri: Uri = "/tunnel".parse().unwrap();
    assert_eq!(
        normalize_target(&Method::CONNECT, &uri),
        Err(Rejection::ConnectNotSupported)
    );
}

#[test]
fn asterisk_form_only_with_options() {
    let uri: Uri = "*".parse().unwrap();
    let path = normalize_target(&Method::OPTIONS, &uri).unwrap();
    assert!(path.is_asterisk());
    assert_eq!(path.as_str(), "*");
    assert_eq!(path.query(), None);
    assert_eq!(
        normalize_target(&Method::GET, &uri),
        Err(Rejection::AsteriskForm {
            method: Method::GET
        })
    );
}

#[test]
fn accessors_split_path_and_query() {
    let uri: Uri = "/a/./b?x=1&y".parse().unwrap();
    let path = normalize_target(&Method::GET, &uri).unwrap();
    assert_eq!(path.as_str(), "/a/b");
    assert_eq!(path.query(), Some("x=1&y"));
    assert_eq!(path.path_and_query(), "/a/b?x=1&y");
    assert!(!path.is_asterisk());
}

#[test]
fn uppercase_hex_digits() {
    let mut out = String::new();
    for byte in [0x00, 0x0A, 0x9F, 0xFF] {
        push_percent_encoded(&mut out, byte);
    }
    assert_eq!(out, "%00%0A%9F%FF");
}
