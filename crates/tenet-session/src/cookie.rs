//! Cookies: strict parsing of the request's `Cookie` header(s) and the `Set-Cookie` values for
//! the session and login binding cookies.
//!
//! Several `Cookie` headers are joined with "; " as RFC 6265 (section 5.4) allows. Tenet's own
//! cookies are held to the strict grammar: each may appear once, with a well-formed value; a
//! second copy (a planted cookie shadowing the real one) refuses the whole request. Pairs of
//! other applications that do not follow the grammar are skipped.

use std::collections::HashMap;

/// The session cookie's name. `__Host-` makes the browser demand Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-tenet_session";

/// The login binding cookie's name.
pub const LOGIN_COOKIE: &str = "__Host-tenet_login";

/// The most bytes of `Cookie` header accepted in total.
pub const MAX_COOKIE_BYTES: usize = 16 * 1024;

/// The most cookie pairs accepted.
pub const MAX_COOKIE_PAIRS: usize = 200;

/// Attributes shared by Tenet's cookies.
const ATTRIBUTES: &str = "Path=/; Secure; HttpOnly; SameSite=Lax";

/// Why a `Cookie` header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// One of Tenet's cookies appears more than once.
    #[error("cookie '{name}' appears more than once")]
    Duplicate {
        /// The cookie's name.
        name: String,
    },
    /// One of Tenet's cookies has a value outside the cookie grammar.
    #[error("cookie '{name}' has a malformed value")]
    MalformedValue {
        /// The cookie's name.
        name: String,
    },
    /// The headers are larger than [`MAX_COOKIE_BYTES`] or hold more than [`MAX_COOKIE_PAIRS`].
    #[error("cookie headers too large ({bytes} bytes, {pairs} pairs)")]
    TooLarge {
        /// Total bytes.
        bytes: usize,
        /// Pairs counted so far.
        pairs: usize,
    },
}

/// The cookies of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieJar {
    cookies: HashMap<String, String>,
    skipped: usize,
}

impl CookieJar {
    /// The value of a cookie (the first one, for cookies other than Tenet's).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    /// The session cookie's value.
    pub fn session(&self) -> Option<&str> {
        self.get(SESSION_COOKIE)
    }

    /// The login binding cookie's value.
    pub fn login_binding(&self) -> Option<&str> {
        self.get(LOGIN_COOKIE)
    }

    /// How many malformed pairs of other applications were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Parses the values of every `Cookie` header of a request.
pub fn parse_cookie_headers<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Result<CookieJar, CookieError> {
    let mut jar = CookieJar::default();
    let (mut bytes, mut pairs) = (0usize, 0usize);
    for header in headers {
        bytes = bytes.saturating_add(header.len());
        if bytes > MAX_COOKIE_BYTES {
            return Err(refused(CookieError::TooLarge { bytes, pairs }));
        }
        for pair in header
            .split(';')
            .map(|p| p.trim_matches([' ', '\t']))
            .filter(|p| !p.is_empty())
        {
            pairs += 1;
            if pairs > MAX_COOKIE_PAIRS {
                return Err(refused(CookieError::TooLarge { bytes, pairs }));
            }
            add_pair(&mut jar, pair)?;
        }
    }
    Ok(jar)
}

fn add_pair(jar: &mut CookieJar, pair: &str) -> Result<(), CookieError> {
    let (name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
    let ours = name == SESSION_COOKIE || name == LOGIN_COOKIE;
    let value = cookie_value(raw_value);
    match (ours, value, is_token(name)) {
        (true, Some(_), _) if jar.cookies.contains_key(name) => {
            Err(refused(CookieError::Duplicate {
                name: name.to_owned(),
            }))
        }
        (true, None, _) => Err(refused(CookieError::MalformedValue {
            name: name.to_owned(),
        })),
        (_, Some(value), true) => {
            jar.cookies
                .entry(name.to_owned())
                .or_insert_with(|| value.to_owned());
            Ok(())
        }
        _ => {
            jar.skipped += 1;
            Ok(())
        }
    }
}

/// The value without optional double quotes, if it uses only cookie-octets (RFC 6265 4.1.1).
fn cookie_value(raw: &str) -> Option<&str> {
    let inner = match raw.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => raw,
    };
    let octet = |b: u8| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
    inner.bytes().all(octet).then_some(inner)
}

/// Whether a cookie name is an RFC 7230 token.
fn is_token(name: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.bytes().all(tchar)
}

fn refused(err: CookieError) -> CookieError {
    tracing::info!(error = %err, "cookie header refused");
    err
}

/// The `Set-Cookie` value that gives the browser its session id.
pub fn session_set_cookie(session_id: &str) -> String {
    format!("{SESSION_COOKIE}={session_id}; {ATTRIBUTES}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn session_clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; {ATTRIBUTES}; Max-Age=0")
}

/// The `Set-Cookie` value that binds a login transaction to the browser, for `max_age_secs`.
pub fn login_set_cookie(binding: &str, max_age_secs: i64) -> String {
    format!("{LOGIN_COOKIE}={binding}; {ATTRIBUTES}; Max-Age={max_age_secs}")
}

/// The `Set-Cookie` value that removes the login binding cookie.
pub fn login_clear_cookie() -> String {
    format!("{LOGIN_COOKIE}=; {ATTRIBUTES}; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_headers_are_joined() {
        let jar = parse_cookie_headers(["a=1; b=2", "__Host-tenet_session=abc"]).unwrap();
        assert_eq!(jar.get("a"), Some("1"));
        assert_eq!(jar.get("b"), Some("2"));
        assert_eq!(jar.session(), Some("abc"));
    }

    #[test]
    fn session_cookie_twice_is_refused_even_across_headers() {
        let err =
            parse_cookie_headers(["__Host-tenet_session=a", "__Host-tenet_session=b"]).unwrap_err();
        assert_eq!(
            err,
            CookieError::Duplicate {
                name: SESSION_COOKIE.into()
            }
        );
        let err = parse_cookie_headers(["__Host-tenet_login=a;__Host-tenet_login=a"]).unwrap_err();
        assert_eq!(
            err,
            CookieError::Duplicate {
                name: LOGIN_COOKIE.into()
            }
        );
    }

    #[test]
    fn other_duplicates_keep_the_first() {
        let jar = parse_cookie_headers(["x=1; x=2"]).unwrap();
        assert_eq!(jar.get("x"), Some("1"));
    }

    #[test]
    fn malformed_session_value_is_refused_others_skipped() {
        let err = parse_cookie_headers(["__Host-tenet_session=a b"]).unwrap_err();
        assert!(matches!(err, CookieError::MalformedValue { .. }));
        let err = parse_cookie_headers(["__Host-tenet_session=\"abc"]).unwrap_err();
        assert!(matches!(err, CookieError::MalformedValue { .. }));
        let jar = parse_cookie_headers(["bad name=1; ok=\"q\"; c=a,b; d=x\\y"]).unwrap();
        assert_eq!(jar.get("ok"), Some("q"));
        assert_eq!(jar.skipped(), 3);
    }

    #[test]
    fn lookalike_names_are_not_ours() {
        let jar = parse_cookie_headers(["tenet_session=x; __host-tenet_session=y"]).unwrap();
        assert_eq!(jar.session(), None);
    }

    #[test]
    fn oversized_headers_are_refused() {
        let big = "a=".to_owned() + &"b".repeat(MAX_COOKIE_BYTES);
        assert!(matches!(
            parse_cookie_headers([big.as_str()]),
            Err(CookieError::TooLarge { .. })
        ));
        let many = (0..=MAX_COOKIE_PAIRS)
            .map(|i| format!("c{i}=1"))
            .collect::<Vec<_>>()
            .join("; ");
        assert!(matches!(
            parse_cookie_headers([many.as_str()]),
            Err(CookieError::TooLarge { .. })
        ));
    }

    #[test]
    fn set_cookie_values_have_the_host_prefix_attributes() {
        assert_eq!(
            session_set_cookie("v"),
            "__Host-tenet_session=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(session_clear_cookie().ends_with("Max-Age=0"));
        assert!(session_clear_cookie().starts_with("__Host-tenet_session=;"));
        assert_eq!(
            login_set_cookie("b", 600),
            "__Host-tenet_login=b; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"
        );
        assert!(login_clear_cookie().starts_with("__Host-tenet_login=;"));
    }
}
