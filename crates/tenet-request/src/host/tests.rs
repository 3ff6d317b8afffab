//! Unit tests for host, server name and request host canonicalisation.

use http::HeaderValue;

use super::*;

fn host(raw: &str) -> Result<String, HostProblem> {
    match canonical_host(raw, 443) {
        Ok(host) => Ok(host.to_string()),
        Err(Rejection::InvalidHost { problem, .. }) => Err(problem),
        Err(other) => panic!("unexpected rejection {other:?}"),
    }
}

fn check(cases: &[(&str, Result<&str, HostProblem>)]) {
    for (input, expected) in cases {
        assert_eq!(host(input), expected.map(str::to_owned), "input {input:?}");
    }
}

#[test]
fn names_are_lowercased() {
    check(&[
        ("ADMIN.Example.Test", Ok("admin.example.test")),
        ("app.example.test", Ok("app.example.test")),
        ("svc_a.internal", Ok("svc_a.internal")),
        ("xn--caf-dma.example", Ok("xn--caf-dma.example")),
        ("localhost", Ok("localhost")),
    ]);
}

#[test]
fn one_trailing_dot_is_removed_and_more_are_rejected() {
    check(&[
        ("admin.example.test.", Ok("admin.example.test")),
        ("admin.example.test.:8443", Ok("admin.example.test:8443")),
        (
            "admin.example.test..",
            Err(HostProblem::MultipleTrailingDots),
        ),
        (
            "admin.example.test...",
            Err(HostProblem::MultipleTrailingDots),
        ),
        (".", Err(HostProblem::Empty)),
        ("..", Err(HostProblem::MultipleTrailingDots)),
    ]);
}

#[test]
fn default_port_is_removed_and_others_kept() {
    check(&[
        ("admin.example.test:443", Ok("admin.example.test")),
        ("admin.example.test:00443", Ok("admin.example.test")),
        ("admin.example.test:8443", Ok("admin.example.test:8443")),
        ("admin.example.test:80", Ok("admin.example.test:80")),
        ("admin.example.test:65535", Ok("admin.example.test:65535")),
    ]);
    let http = canonical_host("app.example.test:80", 80).unwrap();
    assert_eq!(http.port(), None);
    assert_eq!(http.name(), "app.example.test");
}

#[test]
fn invalid_ports_are_rejected() {
    let bad = Err(HostProblem::InvalidPort);
    check(&[
        ("a.test:", bad),
        ("a.test:0", bad),
        ("a.test:65536", bad),
        ("a.test:100000", bad),
        ("a.test:000443", bad),
        ("a.test:+443", bad),
        ("a.test:44 3", bad),
        ("a.test:443:443", bad),
        ("a.test:-1", bad),
    ]);
}

#[test]
fn malformed_names_are_rejected() {
    check(&[
        ("", Err(HostProblem::Empty)),
        ("a..test", Err(HostProblem::EmptyLabel)),
        (".a.test", Err(HostProblem::EmptyLabel)),
        ("a test", Err(HostProblem::InvalidCharacter(' '))),
        ("a\t.test", Err(HostProblem::InvalidCharacter('\t'))),
        ("a/b.test", Err(HostProblem::InvalidCharacter('/'))),
        ("a*.test", Err(HostProblem::InvalidCharacter('*'))),
        ("a.test,b.test", Err(HostProblem::InvalidCharacter(','))),
        ("a\\b.test", Err(HostProblem::InvalidCharacter('\\'))),
        ("café.test", Err(HostProblem::NotAscii)),
        ("::1", Err(HostProblem::InvalidPort)),
    ]);
}

#[test]
fn label_and_name_lengths_are_limited() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    assert_eq!(
        host(&format!("{label63}.test")),
        Ok(format!("{label63}.test"))
    );
    assert_eq!(
        host(&format!("{label64}.test")),
        Err(HostProblem::LabelTooLong)
    );

    let name253 = [label63.as_str(); 4]
        .join(".")
        .chars()
        .take(253)
        .collect::<String>();
    assert_eq!(name253.len(), 253);
    assert!(host(&name253).is_ok());
    assert!(host(&format!("{name253}.")).is_ok());
    assert_eq!(host(&format!("{name253}a")), Err(HostProblem::NameTooLong));
}

#[test]
fn userinfo_is_rejected() {
    check(&[
        ("user@app.example.test", Err(HostProblem::UserInfo)),
        ("user:pass@app.example.test:443", Err(HostProblem::UserInfo)),
        ("app.example.test@evil.test", Err(HostProblem::UserInfo)),
    ]);
}

#[test]
fn ipv4_literals_must_be_dotted_quads() {
    check(&[
        ("192.0.2.10", Ok("192.0.2.10")),
        ("192.0.2.10:8443", Ok("192.0.2.10:8443")),
        ("192.0.2.10.", Ok("192.0.2.10")),
        ("127.1", Err(HostProblem::InvalidIpv4)),
        ("2130706433", Err(HostProblem::InvalidIpv4)),
        ("0x7f.0.0.1", Err(HostProblem::InvalidIpv4)),
        ("127.0.0.0x1", Err(HostProblem::InvalidIpv4)),
        ("010.0.0.1", Err(HostProblem::InvalidIpv4)),
        ("1.2.3.4.5", Err(HostProblem::InvalidIpv4)),
        ("256.1.1.1", Err(HostProblem::InvalidIpv4)),
        ("a.0x", Err(HostProblem::InvalidIpv4)),
        ("1.2.3.example", Ok("1.2.3.example")),
        ("v4.0x1g", Ok("v4.0x1g")),
    ]);
    assert_eq!(
        canonical_host("192.0.2.10", 443).unwrap().kind(),
        HostKind::Ipv4
    );
}

#[test]
fn ipv6_literals_are_bracketed_and_compressed() {
    check(&[
        ("[::1]", Ok("[::1]")),
        ("[::1]:443", Ok("[::1]")),
        ("[0:0::1]:8443", Ok("[::1]:8443")),
        ("[2001:DB8:0:0:0:0:0:1]", Ok("[2001:db8::1]")),
        ("[::1", Err(HostProblem::InvalidIpv6)),
        ("[::1]x", Err(HostProblem::InvalidIpv6)),
        ("[fe80::1%25eth0]", Err(HostProblem::InvalidIpv6)),
        ("[example.test]", Err(HostProblem::InvalidIpv6)),
        ("[::1]:0", Err(HostProblem::InvalidPort)),
    ]);
    let v6 = canonical_host("[::1]", 443).unwrap();
    assert_eq!(v6.name(), "[::1]");
    assert!(v6.is_ip_literal());
}

#[test]
fn server_names_have_no_port_and_no_ip_literal() {
    let sni = canonical_sni("Admin.Example.Test.").unwrap();
    assert_eq!(sni.to_string(), "admin.example.test");
    assert_eq!(sni.kind(), HostKind::Dns);
    for (raw, problem) in [
        ("192.0.2.10", HostProblem::IpLiteralInSni),
        ("[::1]", HostProblem::IpLiteralInSni),
        ("a.test:443", HostProblem::InvalidCharacter(':')),
        ("a.test..", HostProblem::MultipleTrailingDots),
        ("", HostProblem::Empty),
    ] {
        assert_eq!(
            canonical_sni(raw),
            Err(Rejection::InvalidHost {
                host: raw.to_owned(),
                problem
            }),
            "{raw}"
        );
    }
}

fn headers(hosts: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in hosts {
        map.append(header::HOST, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn canonical(raw: &str) -> CanonicalHost {
    canonical_host(raw, 443).unwrap()
}

#[test]
fn http11_needs_exactly_one_host_header() {
    let origin: Uri = "/".parse().unwrap();
    let one = request_host(
        Version::HTTP_11,
        &origin,
        &headers(&["App.Example.Test."]),
        443,
    );
    assert_eq!(one, Ok(canonical("app.example.test")));
    let none = request_host(Version::HTTP_11, &origin, &headers(&[]), 443);
    assert_eq!(none, Err(Rejection::MissingHost));
    let two = request_host(
        Version::HTTP_11,
        &origin,
        &headers(&["a.test", "a.test"]),
        443,
    );
    assert_eq!(two, Err(Rejection::DuplicateHeader(header::HOST)));
}

#[test]
fn http11_absolute_form_must_agree_with_host() {
    let absolute: Uri = "https://APP.example.test:443/x".parse().unwrap();
    let same = request_host(
        Version::HTTP_11,
        &absolute,
        &headers(&["app.example.test"]),
        443,
    );
    assert_eq!(same, Ok(canonical("app.example.test")));
    let other = request_host(
        Version::HTTP_11,
        &absolute,
        &headers(&["admin.example.test"]),
        443,
    );
    assert_eq!(
        other,
        Err(Rejection::HostMismatch {
            host: canonical("admin.example.test"),
            authority: canonical("app.example.test"),
        })
    );
    let missing = request_host(Version::HTTP_11, &absolute, &headers(&[]), 443);
    assert_eq!(missing, Err(Rejection::MissingHost));
    let userinfo: Uri = "https://user@app.example.test/".parse().unwrap();
    let rejected = request_host(
        Version::HTTP_11,
        &userinfo,
        &headers(&["app.example.test"]),
        443,
    );
    assert_eq!(rejected.map_err(|r| r.kind()), Err("invalid_host"));
}

#[test]
fn http10_may_use_the_absolute_form_authority() {
    let absolute: Uri = "http://app.example.test/x".parse().unwrap();
    let host = request_host(Version::HTTP_10, &absolute, &headers(&[]), 80);
    assert_eq!(
        host.map(|h| h.to_string()),
        Ok("app.example.test".to_owned())
    );
    let origin: Uri = "/x".parse().unwrap();
    let missing = request_host(Version::HTTP_10, &origin, &headers(&[]), 80);
    assert_eq!(missing, Err(Rejection::MissingHost));
}

#[test]
fn http2_uses_authority_and_a_host_header_must_agree() {
    let uri: Uri = "https://admin.example.test/".parse().unwrap();
    let alone = request_host(Version::HTTP_2, &uri, &headers(&[]), 443);
    assert_eq!(alone, Ok(canonical("admin.example.test")));
    let agreeing = request_host(
        Version::HTTP_2,
        &uri,
        &headers(&["ADMIN.example.test."]),
        443,
    );
    assert_eq!(agreeing, Ok(canonical("admin.example.test")));
    let disagreeing = request_host(Version::HTTP_2, &uri, &headers(&["www.example.test"]), 443);
    assert_eq!(disagreeing.map_err(|r| r.kind()), Err("host_mismatch"));
    let origin: Uri = "/".parse().unwrap();
    let from_header = request_host(
        Version::HTTP_2,
        &origin,
        &headers(&["www.example.test"]),
        443,
    );
    assert_eq!(from_header, Ok(canonical("www.example.test")));
    let nothing = request_host(Version::HTTP_2, &origin, &headers(&[]), 443);
    assert_eq!(nothing, Err(Rejection::MissingHost));
}

#[test]
fn host_header_that_is_not_ascii_is_rejected() {
    let mut map = HeaderMap::new();
    map.insert(
        header::HOST,
        HeaderValue::from_bytes(b"caf\xc3\xa9.test").unwrap(),
    );
    let origin: Uri = "/".parse().unwrap();
    let result = request_host(Version::HTTP_11, &origin, &map, 443);
    assert!(matches!(
        result,
        Err(Rejection::InvalidHost {
            problem: HostProblem::NotAscii,
            ..
        })
    ));
}

#[test]
fn sni_must_name_the_request_host() {
    let admin = canonical("admin.example.test:8443");
    let www_sni = canonical_sni("www.example.test").unwrap();
    let admin_sni = canonical_sni("ADMIN.example.test").unwrap();
    assert_eq!(check_sni(Some(&admin_sni), &admin), Ok(()));
    assert_eq!(
        check_sni(Some(&www_sni), &admin),
        Err(Rejection::SniMismatch {
            sni: www_sni.clone(),
            host: admin.clone()
        })
    );
    assert_eq!(
        check_sni(None, &admin),
        Err(Rejection::MissingSni { host: admin })
    );
    assert_eq!(check_sni(None, &canonical("192.0.2.10")), Ok(()));
    assert!(check_sni(Some(&www_sni), &canonical("192.0.2.10")).is_err());
}

/// The character-by-character version [`canonical_name`] replaced (2026-12): the one-pass
/// version must give the same name, or the same problem, for every input.
fn canonical_name_by_chars(host: &str) -> Result<(String, HostKind), HostProblem> {
    if let Some(inside) = host.strip_prefix('[') {
        let literal = inside.strip_suffix(']').ok_or(HostProblem::InvalidIpv6)?;
        let address: Ipv6Addr = literal.parse().map_err(|_| HostProblem::InvalidIpv6)?;
        return Ok((format!("[{address}]"), HostKind::Ipv6));
    }
    if let Some(bad) = host.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(if bad.is_ascii() {
            HostProblem::InvalidCharacter(bad)
        } else {
            HostProblem::NotAscii
        });
    }
    let lower = host.to_ascii_lowercase();
    if let Some(bad) = lower
        .chars()
        .find(|c| !is_name_byte(*c as u8) || !c.is_ascii())
    {
        return Err(HostProblem::InvalidCharacter(bad));
    }
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.ends_with('.') {
        return Err(HostProblem::MultipleTrailingDots);
    }
    check_labels(name)?;
    if name.rsplit('.').next().is_some_and(is_numeric_label) {
        let address: Ipv4Addr = name.parse().map_err(|_| HostProblem::InvalidIpv4)?;
        return Ok((address.to_string(), HostKind::Ipv4));
    }
    Ok((name.to_owned(), HostKind::Dns))
}

proptest::proptest! {
    #[test]
    fn one_pass_names_match_the_character_version(
        raw in "([a-zA-Z0-9._\\-]{0,6}|\\PC|[ -~]|\\.|0x[0-9a-fA-F]{1,3}|[0-9]{1,4}){0,10}"
    ) {
        proptest::prop_assert_eq!(canonical_name(&raw), canonical_name_by_chars(&raw));
    }
}

#[test]
fn one_pass_names_match_the_character_version_on_edges() {
    for raw in [
        "",
        ".",
        "..",
        "a..",
        "A.B.C.",
        "Ex ample.org",
        "exa\u{e9}mple.org",
        "a/b\u{e9}",
        "\u{e9}a/b",
        "a/b c",
        "1.2.3.4",
        "0X7F.1",
        "1.2.3.4.",
        "a.0x1G",
        "[::1]",
        "[::1",
        "_srv.Example.ORG",
        "ex!ample",
        "EX!AMPLE",
    ] {
        assert_eq!(canonical_name(raw), canonical_name_by_chars(raw), "{raw:?}");
    }
}
