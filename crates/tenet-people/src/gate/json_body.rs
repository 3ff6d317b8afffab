//! JSON request bodies of the sign-in endpoints, refused when an object gives a key twice.
//!
//! serde_json keeps the last of two equal keys, and another parser (a browser, a log reader, a
//! proxy) may keep the first: a body read differently by two parsers is refused instead. Every
//! JSON body the factor and enrolment endpoints read, including the WebAuthn responses that
//! `tenet-mfa` parses itself, passes [`check`] first.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use http::StatusCode;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

use super::answer::{Answer, error};

/// Why a JSON body was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// An object in the body gives the same key twice.
    #[error("the body gives the key \"{key}\" more than once (at {path})")]
    DuplicateKey {
        /// The key, as decoded (escapes resolved).
        key: String,
        /// Where the object is: `$` for the top level, then `.key` and `[index]` steps.
        path: String,
    },
    /// The body is not the JSON expected.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

impl BodyError {
    /// The answer to the client: 400 `duplicate_key` naming the key, or 400 `bad_body` with
    /// what the body should have been (`expected`) and what the parser said.
    pub(super) fn answer(&self, expected: &str) -> Answer {
        match self {
            BodyError::DuplicateKey { .. } => {
                error(StatusCode::BAD_REQUEST, "duplicate_key", &self.to_string())
            }
            BodyError::Json(e) => error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                &format!("{expected}: {e}"),
            ),
        }
    }
}

/// Checks that no object in `body` gives a key twice (the body must be JSON).
pub(super) fn check(body: &[u8]) -> Result<(), BodyError> {
    let duplicate = RefCell::new(None);
    let walk = Walk {
        path: "$".to_owned(),
        duplicate: &duplicate,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = walk.deserialize(&mut de).and_then(|()| de.end());
    match (duplicate.into_inner(), walked) {
        (Some((key, path)), _) => Err(BodyError::DuplicateKey { key, path }),
        (None, Err(e)) => Err(BodyError::Json(e)),
        (None, Ok(())) => Ok(()),
    }
}

/// Parses `body` as `T` once [`check`] found no key given twice.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    check(body)?;
    Ok(serde_json::from_slice(body)?)
}

/// One JSON value being walked, at `path`; the first key found twice goes to `duplicate`.
struct Walk<'a> {
    path: String,
    duplicate: &'a RefCell<Option<(String, String)>>,
}

impl Walk<'_> {
    fn child(&self, step: fmt::Arguments<'_>) -> Self {
        Walk {
            path: format!("{}{step}", self.path),
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while items
            .next_element_seed(self.child(format_args!("[{index}]")))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            let value = self.child(format_args!(".{key}"));
            if !seen.insert(key.clone()) {
                *self.duplicate.borrow_mut() = Some((key, self.path));
                return Err(A::Error::custom("a key is given twice"));
            }
            entries.next_value_seed(value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(body: &str) -> Option<(String, String)> {
        match check(body.as_bytes()) {
            Err(BodyError::DuplicateKey { key, path }) => Some((key, path)),
            _ => None,
        }
    }

    #[test]
    fn a_key_given_twice_is_named_with_where_it_is() {
        assert_eq!(
            duplicate(r#"{"code":"000000","code":"123456"}"#),
            Some(("code".into(), "$".into()))
        );
        let webauthn =
            r#"{"id":"a","response":{"clientDataJSON":"x","signature":"s","clientDataJSON":"y"}}"#;
        assert_eq!(
            duplicate(webauthn),
            Some(("clientDataJSON".into(), "$.response".into()))
        );
        assert_eq!(
            duplicate(r#"{"list":[{"a":1},{"a":1,"b":2,"a":3}]}"#),
            Some(("a".into(), "$.list[1]".into()))
        );
        // Escapes are resolved before keys are compared, as serde_json compares them.
        assert_eq!(
            duplicate(r#"{"token":"t","\u0074oken":"u"}"#),
            Some(("token".into(), "$".into()))
        );
    }

    #[test]
    fn unique_keys_pass_and_other_errors_are_json_errors() {
        for ok in [
            r#"{"code":"123456"}"#,
            r#"{"a":{"a":{"a":[1,2.5,-3,true,null,"s"]}},"b":{"a":1}}"#,
            "[]",
            " 7 ",
        ] {
            assert!(check(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in ["", "{", r#"{"a":1}x"#, r#"{"a":1,}"#] {
            assert!(
                matches!(check(bad.as_bytes()), Err(BodyError::Json(_))),
                "{bad}"
            );
        }
        let nested = "[".repeat(10_000);
        assert!(matches!(check(nested.as_bytes()), Err(BodyError::Json(_))));
    }

    #[test]
    fn parse_checks_before_it_reads() {
        #[derive(serde::Deserialize)]
        struct Code {
            code: String,
        }
        let parsed: Code = parse(br#"{"code":"123456"}"#).unwrap();
        assert_eq!(parsed.code, "123456");
        assert!(matches!(
            parse::<Code>(br#"{"code":"1","code":"2"}"#),
            Err(BodyError::DuplicateKey { .. })
        ));
    }
}
