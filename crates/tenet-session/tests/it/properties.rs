//! Property tests: untrusted cookie headers, redirect strings and session ids never panic,
//! and what is accepted keeps its promises.

use proptest::prelude::*;
use tenet_session::{
    AllowedDomain, RedirectPolicy, ReturnTo, SESSION_COOKIE, parse_cookie_headers,
};

use crate::{memory_store, t0};

fn policy() -> RedirectPolicy {
    RedirectPolicy::new(
        vec![AllowedDomain::parse(".example.test").unwrap()],
        vec![443],
    )
}

/// Names that hit Tenet's cookies, short ordinary names, and empty or blank names.
const COOKIE_NAME: &str = "(__Host-tenet_session|__Host-tenet_login|[a-z]{1,4}| ?)";

proptest! {
    #[test]
    fn cookie_headers_never_panic(headers in proptest::collection::vec(".{0,200}", 0..4)) {
        let _ = parse_cookie_headers(headers.iter().map(String::as_str));
    }

    #[test]
    fn cookie_like_headers_never_panic(
        pairs in proptest::collection::vec((COOKIE_NAME, "[ -~]{0,20}"), 0..8)
    ) {
        let header = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        let count = pairs.iter().filter(|(n, _)| n == SESSION_COOKIE).count();
        if let Ok(jar) = parse_cookie_headers([header.as_str()]) {
            // A jar is only ever built with at most one session cookie in the header.
            prop_assert!(count <= 1);
            prop_assert_eq!(jar.session().is_some(), count == 1);
        }
    }

    #[test]
    fn redirects_never_panic_and_accepted_ones_are_safe(input in ".{0,120}") {
        if let Ok(target) = policy().check(&input) {
            match target {
                ReturnTo::Path(p) => {
                    prop_assert!(p.starts_with('/') && !p.starts_with("//"));
                    prop_assert!(!p.contains('\\') && !p.chars().any(char::is_control));
                }
                ReturnTo::Absolute(url) => {
                    prop_assert_eq!(url.scheme(), "https");
                    let host = url.host_str().unwrap_or_default();
                    prop_assert!(host == "example.test" || host.ends_with(".example.test"));
                }
            }
        }
    }

    #[test]
    fn url_like_redirects_never_panic(
        scheme in "(https?|javascript|)", sep in "(://|:/|:|//|/\\\\|)",
        host in "[a-zA-Z.\\-]{0,20}", rest in "[ -~]{0,30}"
    ) {
        let input = format!("{scheme}{sep}{host}{rest}");
        if let Ok(ReturnTo::Absolute(url)) = policy().check(&input) {
            let host = url.host_str().unwrap_or_default();
            prop_assert!(host == "example.test" || host.ends_with(".example.test"));
        }
    }

    #[test]
    fn presented_session_ids_never_panic(id in ".{0,60}") {
        let store = memory_store();
        prop_assert!(store.lookup(&id, None, t0()).is_err());
    }
}
