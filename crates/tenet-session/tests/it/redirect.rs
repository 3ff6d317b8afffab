//! Post-login redirects: same-origin paths and the domain allow-list.

use tenet_session::{AllowedDomain, RedirectError, RedirectPolicy, ReturnTo};

fn f007_policy() -> RedirectPolicy {
    RedirectPolicy::new(
        vec![AllowedDomain::parse(".example.test").unwrap()],
        vec![443],
    )
}

#[test]
fn f007_allow_list_matches_on_label_boundaries() {
    let policy = f007_policy();
    let accepted = ["https://app.example.test/", "https://APP.Example.Test/"];
    for rd in accepted {
        assert!(
            matches!(policy.check(rd), Ok(ReturnTo::Absolute(_))),
            "{rd}"
        );
    }
    let refused = [
        ("https://badexample.test/", "host"),
        ("https://example.test.evil.example.net/", "host"),
        ("https://app.example.test:8443/", "port"),
    ];
    for (rd, why) in refused {
        let err = policy.check(rd).unwrap_err();
        let right = match why {
            "host" => matches!(err, RedirectError::HostNotAllowed(_)),
            _ => matches!(err, RedirectError::PortNotAllowed(_, 8443)),
        };
        assert!(right, "{rd}: {err}");
    }
}

#[test]
fn f007_domain_itself_and_configured_port_are_accepted() {
    let policy = RedirectPolicy::new(
        vec![AllowedDomain::parse(".example.test").unwrap()],
        vec![443, 8443],
    );
    assert!(policy.check("https://example.test/x").is_ok());
    assert!(policy.check("https://app.example.test:8443/").is_ok());
    assert!(policy.check("https://deep.app.example.test/").is_ok());
}

#[test]
fn same_origin_paths_are_accepted() {
    let policy = RedirectPolicy::default();
    for p in ["/", "/app", "/app?x=1#frag", "/a/b/../c", "/%2F%2Fevil"] {
        assert_eq!(policy.check(p), Ok(ReturnTo::Path(p.to_owned())), "{p}");
    }
}

type Expect = fn(&RedirectError) -> bool;

#[test]
fn dangerous_forms_are_refused() {
    let policy = f007_policy();
    let cases: [(&str, Expect); 12] = [
        ("", |e| matches!(e, RedirectError::Empty)),
        ("//evil.example.net/", |e| {
            matches!(e, RedirectError::SchemeRelative(_))
        }),
        ("/\\evil.example.net/", |e| {
            matches!(e, RedirectError::BadCharacter(_))
        }),
        ("/\t/evil.example.net/", |e| {
            matches!(e, RedirectError::BadCharacter(_))
        }),
        ("/app\r\nSet-Cookie: x=1", |e| {
            matches!(e, RedirectError::BadCharacter(_))
        }),
        (" /app", |e| matches!(e, RedirectError::BadCharacter(_))),
        ("javascript:alert(1)", |e| {
            matches!(e, RedirectError::NotHttps(_))
        }),
        ("http://app.example.test/", |e| {
            matches!(e, RedirectError::NotHttps(_))
        }),
        ("app.example.test/x", |e| {
            matches!(e, RedirectError::NotAUrl(_))
        }),
        ("https://user:pw@app.example.test/", |e| {
            matches!(e, RedirectError::Credentials(_))
        }),
        ("https://192.0.2.1/", |e| {
            matches!(e, RedirectError::HostNotAllowed(_))
        }),
        ("https:app.example.test.evil.example.net", |e| {
            matches!(e, RedirectError::HostNotAllowed(_))
        }),
    ];
    for (input, expected) in cases {
        let err = policy.check(input).unwrap_err();
        assert!(expected(&err), "{input:?}: {err:?}");
    }
    let long = format!("/{}", "a".repeat(3000));
    assert!(matches!(
        policy.check(&long),
        Err(RedirectError::TooLong(_))
    ));
}

#[test]
fn empty_allow_list_allows_no_absolute_url() {
    let err = RedirectPolicy::default()
        .check("https://app.example.test/")
        .unwrap_err();
    assert!(matches!(err, RedirectError::HostNotAllowed(_)));
}

#[test]
fn exact_entries_do_not_allow_subdomains() {
    let policy = RedirectPolicy::new(
        vec![AllowedDomain::parse("Example.Test").unwrap()],
        vec![443],
    );
    assert!(policy.check("https://example.test/").is_ok());
    assert!(policy.check("https://app.example.test/").is_err());
}

#[test]
fn unusable_allow_list_entries_are_rejected() {
    for bad in [
        "",
        ".",
        "..example.test",
        "example.test.",
        "exa mple.test",
        "*.example.test",
    ] {
        assert_eq!(AllowedDomain::parse(bad), None, "{bad:?}");
    }
}
