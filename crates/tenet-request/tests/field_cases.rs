//! Field cases F001, F003, F004 and F005 (`/work/shared/cases/proxy-and-login.md`), as far
//! as they concern the request normaliser; the gateway adds socket-level tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use tenet_request::{
    CanonicalHost, HostProblem, Rejection, canonical_host, canonical_sni, check_framing,
    check_single_valued, check_sni, normalize_target, prepare_upstream_headers, request_host,
};

/// F001's policy: default deny, permit GET below `/public/`, forbid `/admin` and below.
fn f001_decision(path: &str) -> StatusCode {
    let below = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if below("/admin") || !path.starts_with("/public/") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    }
}

/// Normalise once, decide on that form, forward that form.
fn f001_gateway(target: &str) -> (StatusCode, Option<String>) {
    let uri: Uri = target.parse().unwrap();
    match normalize_target(&Method::GET, &uri) {
        Err(rejection) => (rejection.status(), None),
        Ok(path) => match f001_decision(path.as_str()) {
            StatusCode::OK => (StatusCode::OK, Some(path.path_and_query())),
            denied => (denied, None),
        },
    }
}

#[test]
fn f001_path_canonicalisation() {
    let cases = [
        ("/public/../admin/users", StatusCode::FORBIDDEN),
        ("/public/%2E%2E/admin/users", StatusCode::FORBIDDEN),
        ("/public/..%2Fadmin/users", StatusCode::BAD_REQUEST),
        ("/public/..%5Cadmin/users", StatusCode::BAD_REQUEST),
        ("//admin/users", StatusCode::FORBIDDEN),
        ("/public//..//admin/users", StatusCode::FORBIDDEN),
        ("/ADMIN/users", StatusCode::FORBIDDEN),
    ];
    for (target, expected) in cases {
        assert_eq!(f001_gateway(target), (expected, None), "{target}");
    }
    let control = f001_gateway("/public/docs/../index.html");
    assert_eq!(
        control,
        (StatusCode::OK, Some("/public/index.html".to_owned()))
    );
}

#[test]
fn f001_path_canonicalisation_more_of_the_class() {
    let bad_request = [
        "/public/..%2fadmin/users",
        "/public/..%5cadmin/users",
        "/public/..\\admin/users",
        "/public/..;/admin/users",
        "/public/%2e%2e;/admin/users",
        "/public/%252e%252e/admin/users",
        "/public/..%252fadmin/users",
        "/public/%C0%AE%C0%AE/admin/users",
        "/public/%c0%af../admin/users",
        "/public/..%00/admin/users",
        "/public/../../admin/users",
        "/public/%2e%2e/%2e%2e/admin/users",
        "/public/..%2",
    ];
    for target in bad_request {
        assert_eq!(
            f001_gateway(target),
            (StatusCode::BAD_REQUEST, None),
            "{target}"
        );
    }
    let forbidden = [
        "/public/.%2e/admin/users",
        "/public/%2e./admin",
        "/public/./../admin",
        "/./admin/users",
        "/%61dmin/users",
        "/public/x/../../admin/users",
        "/admin",
        "/admin/",
        "/public",
        "/Admin/users",
        "https://app.example.test/public/../admin/users",
    ];
    for target in forbidden {
        assert_eq!(
            f001_gateway(target),
            (StatusCode::FORBIDDEN, None),
            "{target}"
        );
    }
    let allowed = [
        ("/public/a/./b/../c", "/public/a/c"),
        ("/public//docs/", "/public/docs/"),
        ("/public/%7Euser/%41", "/public/~user/A"),
        (
            "/public/admin?next=/admin/../x",
            "/public/admin?next=/admin/../x",
        ),
    ];
    for (target, forwarded) in allowed {
        assert_eq!(
            f001_gateway(target),
            (StatusCode::OK, Some(forwarded.to_owned())),
            "{target}"
        );
    }
}

#[test]
fn f001_decided_form_is_a_fixed_point() {
    for target in [
        "/public/docs/../index.html",
        "/public//a/%2e/b?q=1",
        "/public/caf%c3%a9",
    ] {
        let uri: Uri = target.parse().unwrap();
        let first = normalize_target(&Method::GET, &uri).unwrap();
        let forwarded: Uri = first.path_and_query().parse().unwrap();
        assert_eq!(
            normalize_target(&Method::GET, &forwarded).unwrap(),
            first,
            "{target}"
        );
    }
}

/// F003's policy: the admin vhost needs group `admins`; user-B is not in it.
fn f003_decision(host: &CanonicalHost) -> StatusCode {
    if host.name() == "admin.example.test" {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    }
}

/// Canonical host, SNI check, then the decision on that host.
fn f003_gateway(sni: &str, version: Version, uri: &str, host: Option<&str>) -> StatusCode {
    let uri: Uri = uri.parse().unwrap();
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
    }
    let sni = canonical_sni(sni).unwrap();
    let checked = request_host(version, &uri, &headers, 443)
        .and_then(|host| check_sni(Some(&sni), &host).map(|()| host));
    match checked {
        Ok(host) => f003_decision(&host),
        Err(rejection) => rejection.status(),
    }
}

#[test]
fn f003_host_canonicalisation_and_sni() {
    let h1 = Version::HTTP_11;
    let www_to_admin = f003_gateway("www.example.test", h1, "/", Some("admin.example.test"));
    assert_eq!(www_to_admin, StatusCode::MISDIRECTED_REQUEST);

    for host in [
        "ADMIN.Example.Test",
        "admin.example.test.",
        "admin.example.test:443",
    ] {
        let status = f003_gateway("admin.example.test", h1, "/", Some(host));
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
    }
    let two_dots = f003_gateway("admin.example.test", h1, "/", Some("admin.example.test.."));
    assert_eq!(two_dots, StatusCode::BAD_REQUEST);

    let h2_stream = f003_gateway(
        "www.example.test",
        Version::HTTP_2,
        "https://admin.example.test/",
        None,
    );
    assert_eq!(h2_stream, StatusCode::MISDIRECTED_REQUEST);
}

#[test]
fn f003_host_canonicalisation_more_of_the_class() {
    let h1 = Version::HTTP_11;
    for host in [
        "Admin.Example.Test.:443",
        "ADMIN.EXAMPLE.TEST:00443",
        "admin.example.test.",
    ] {
        let status = f003_gateway("ADMIN.example.test.", h1, "/", Some(host));
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
    }
    for host in [
        "www.example.test",
        "WWW.example.test.",
        "www.example.test:443",
    ] {
        let status = f003_gateway("admin.example.test", h1, "/", Some(host));
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in [
        "admin.example.test...",
        "admin..example.test",
        "user@admin.example.test",
    ] {
        let status = f003_gateway("admin.example.test", h1, "/", Some(host));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{host}");
    }
    // Absolute-form naming one host while Host names another.
    let smuggled = f003_gateway(
        "www.example.test",
        h1,
        "https://admin.example.test/",
        Some("www.example.test"),
    );
    assert_eq!(smuggled, StatusCode::BAD_REQUEST);
    // HTTP/2 with :authority and a Host header that disagree.
    let h2_split = f003_gateway(
        "www.example.test",
        Version::HTTP_2,
        "https://www.example.test/",
        Some("admin.example.test"),
    );
    assert_eq!(h2_split, StatusCode::BAD_REQUEST);
    // The same canonical host for routing and authorisation.
    let spelled = [
        "ADMIN.Example.Test",
        "admin.example.test.",
        "admin.example.test:443",
    ];
    for host in spelled {
        assert_eq!(
            canonical_host(host, 443).unwrap().to_string(),
            "admin.example.test"
        );
    }
    assert!(matches!(
        canonical_host("admin.example.test..", 443),
        Err(Rejection::InvalidHost {
            problem: HostProblem::MultipleTrailingDots,
            ..
        })
    ));
}

fn f004_request() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let fields = [
        ("host", "app.example.test"),
        ("x-forwarded-for", "198.51.100.7"),
        ("x-tenet-user", "user-B"),
        ("x-role", "viewer"),
        ("x-role", "admin"),
        ("connection", "keep-alive, X-Tenet-User, X-Forwarded-For"),
    ];
    for (name, value) in fields {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers
}

#[test]
fn f004_repeated_forged_and_stripped_headers() {
    let headers = f004_request();
    // The repeated x-role is rejected once the deployment lists it as single-valued.
    let role = HeaderName::from_static("x-role");
    let rejection = check_single_valued(&headers, std::slice::from_ref(&role)).unwrap_err();
    assert_eq!(rejection, Rejection::DuplicateHeader(role));
    assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);

    // For a request that is allowed, the client's identity and forwarding fields are gone,
    // and the gateway's own survive: Connection was consumed before they were added.
    let mut upstream = headers.clone();
    prepare_upstream_headers(&mut upstream);
    assert!(upstream.get("x-tenet-user").is_none());
    assert!(upstream.get("x-forwarded-for").is_none());
    assert!(upstream.get(header::CONNECTION).is_none());
    assert_eq!(upstream.get_all("x-role").iter().count(), 2);

    upstream.insert("x-tenet-user", HeaderValue::from_static("user-A"));
    upstream.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.50"));
    assert_eq!(
        upstream.get_all("x-tenet-user").iter().collect::<Vec<_>>(),
        ["user-A"]
    );
    assert_eq!(
        upstream
            .get_all("x-forwarded-for")
            .iter()
            .collect::<Vec<_>>(),
        ["203.0.113.50"]
    );
}

#[test]
fn f004_more_of_the_class() {
    // Repeated forwarding and identity fields are rejected by default.
    for name in [
        "x-forwarded-for",
        "authorization",
        "x-forwarded-host",
        "forwarded",
        "host",
    ] {
        let mut headers = HeaderMap::new();
        headers.append(HeaderName::from_static(name), HeaderValue::from_static("a"));
        headers.append(HeaderName::from_static(name), HeaderValue::from_static("b"));
        let rejection = check_single_valued(&headers, &[]).unwrap_err();
        assert_eq!(rejection.kind(), "duplicate_header", "{name}");
    }
    // Every spelling of a forged identity or client address is dropped.
    let mut headers = HeaderMap::new();
    for name in [
        "x-tenet-user",
        "x-tenet-groups",
        "x-real-ip",
        "true-client-ip",
        "forwarded",
    ] {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static("forged"),
        );
    }
    headers.append(
        "X-Forwarded-Host",
        HeaderValue::from_static("admin.example.test"),
    );
    headers.append("x-original-url", HeaderValue::from_static("/admin/users"));
    headers.append("x-http-method-override", HeaderValue::from_static("DELETE"));
    prepare_upstream_headers(&mut headers);
    assert!(headers.is_empty(), "{headers:?}");
    // Host cannot be removed through Connection.
    let mut headers = HeaderMap::new();
    headers.append(header::HOST, HeaderValue::from_static("app.example.test"));
    headers.append(header::CONNECTION, HeaderValue::from_static("host"));
    prepare_upstream_headers(&mut headers);
    assert_eq!(headers.get(header::HOST).unwrap(), "app.example.test");
}

/// Header fields as they would arrive: name and raw value bytes.
type Fields<'a> = &'a [(&'a str, &'a [u8])];

fn f005_headers(fields: Fields<'_>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        headers.append(name, HeaderValue::from_bytes(value).unwrap());
    }
    headers
}

#[test]
fn f005_message_framing() {
    let cases: [(Fields<'_>, Rejection); 5] = [
        (
            &[("Content-Length", b"4"), ("Transfer-Encoding", b"chunked")],
            Rejection::ContentLengthWithTransferEncoding,
        ),
        (
            &[
                ("Content-Length", b"30"),
                ("Transfer-Encoding", b"chunked\t"),
            ],
            Rejection::ContentLengthWithTransferEncoding,
        ),
        (
            &[
                ("Transfer-Encoding", b"chunked"),
                ("Transfer-Encoding", b"identity"),
            ],
            Rejection::DuplicateHeader(header::TRANSFER_ENCODING),
        ),
        (
            &[("Content-Length", b"5"), ("Content-Length", b"0")],
            Rejection::DuplicateHeader(header::CONTENT_LENGTH),
        ),
        (
            &[("Content-Length", b"+5")],
            Rejection::InvalidContentLength("+5".to_owned()),
        ),
    ];
    for (fields, expected) in cases {
        let rejection = check_framing(&f005_headers(fields)).unwrap_err();
        assert_eq!(rejection, expected, "{fields:?}");
        assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
    }
    // "Transfer-Encoding : chunked" has a field name that cannot exist in a HeaderMap: the
    // HTTP/1 parser refuses the request before this crate sees it.
    assert!(HeaderName::from_bytes(b"Transfer-Encoding ").is_err());
}

#[test]
fn f005_more_of_the_class_and_own_framing_upstream() {
    let rejected: [Fields<'_>; 7] = [
        &[("Transfer-Encoding", b"chunked\t")],
        &[("Transfer-Encoding", b"gzip, chunked")],
        &[("Transfer-Encoding", b"chunked, identity")],
        &[("Transfer-Encoding", b"xchunked")],
        &[("Content-Length", b"5, 5")],
        &[("Content-Length", b"5 ")],
        &[("Content-Length", b"0x5")],
    ];
    for fields in rejected {
        let result = check_framing(&f005_headers(fields));
        assert_eq!(
            result.map_err(|r| r.status()),
            Err(StatusCode::BAD_REQUEST),
            "{fields:?}"
        );
    }
    let mut chunked = f005_headers(&[("Transfer-Encoding", b"CHUNKED")]);
    assert_eq!(check_framing(&chunked), Ok(()));
    prepare_upstream_headers(&mut chunked);
    assert!(chunked.get(header::TRANSFER_ENCODING).is_none());
}
