//! The signed-in user as the ID token describes them, and the ID token's claim checks.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::login::same_secret;
use crate::token::{self, TokenError};

/// Who signed in, from a verified ID token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `iss`: the provider's issuer identifier.
    pub issuer: String,
    /// `sub`: the user's stable identifier at that issuer.
    pub subject: String,
    /// `email`, if released.
    pub email: Option<String>,
    /// `email_verified` (false when absent).
    pub email_verified: bool,
    /// `name`, if released.
    pub name: Option<String>,
    /// Group memberships from the configured groups claim (empty when absent).
    pub groups: Vec<String>,
    /// `amr`: authentication methods used.
    pub amr: Vec<String>,
    /// `acr`: authentication context class.
    pub acr: Option<String>,
    /// `auth_time`: when the user actually authenticated.
    #[serde(with = "time::serde::timestamp::option")]
    pub auth_time: Option<OffsetDateTime>,
    /// Every other claim, as sent.
    pub claims: Map<String, Value>,
}

/// What an ID token must match.
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub groups_claim: &'a str,
    pub skew: i64,
}

/// Checks issuer, audience, azp, times and nonce, then reads the identity.
pub(crate) fn validate(
    mut claims: Map<String, Value>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Identity, TokenError> {
    token::check_issuer(&claims, expected.issuer)?;
    let audiences = token::check_audience(&claims, expected.client_id)?;
    check_azp(&claims, &audiences, expected.client_id)?;
    token::check_times(&claims, now, expected.skew, true)?;
    let nonce = token::required_str(&claims, "nonce").map_err(|_| TokenError::NonceMismatch)?;
    if !same_secret(nonce, expected.nonce) {
        return Err(TokenError::NonceMismatch);
    }
    let subject = token::required_str(&claims, "sub")?;
    if subject.is_empty() {
        return Err(invalid("sub", "empty"));
    }
    let subject = subject.to_owned();

    let auth_time = token::numeric_date(&claims, "auth_time")?
        .map(|t| {
            OffsetDateTime::from_unix_timestamp(t).map_err(|_| invalid("auth_time", "out of range"))
        })
        .transpose()?;
    let identity = Identity {
        issuer: expected.issuer.to_owned(),
        subject,
        email: optional_str(&claims, "email")?,
        email_verified: email_verified(&claims)?,
        name: optional_str(&claims, "name")?,
        groups: string_list(&claims, expected.groups_claim, "groups")?,
        amr: string_list(&claims, "amr", "amr")?,
        acr: optional_str(&claims, "acr")?,
        auth_time,
        claims: Map::new(),
    };
    for used in REGISTERED.iter().copied().chain([expected.groups_claim]) {
        claims.remove(used);
    }
    Ok(Identity { claims, ..identity })
}

/// Claims that are checked or mapped to fields, and so left out of `Identity::claims`.
const REGISTERED: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "email",
    "email_verified",
    "name",
    "amr",
    "acr",
    "auth_time",
    "groups",
];

fn invalid(claim: &'static str, problem: &'static str) -> TokenError {
    TokenError::InvalidClaim { claim, problem }
}

/// With several audiences `azp` is required; when present it must be our client id.
fn check_azp(
    claims: &Map<String, Value>,
    audiences: &[String],
    client_id: &str,
) -> Result<(), TokenError> {
    let mismatch = || TokenError::AuthorizedPartyMismatch {
        expected: client_id.to_owned(),
    };
    match claims.get("azp") {
        None if audiences.len() > 1 => Err(mismatch()),
        None => Ok(()),
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(mismatch()),
    }
}

fn optional_str(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(name, "not a string")),
    }
}

/// Some providers send `"true"` as a string; anything else that is not a boolean is refused.
fn email_verified(claims: &Map<String, Value>) -> Result<bool, TokenError> {
    match claims.get("email_verified") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(invalid("email_verified", "not a boolean")),
    }
}

/// A claim holding a string or an array of strings; absent means empty.
fn string_list(
    claims: &Map<String, Value>,
    name: &str,
    label: &'static str,
) -> Result<Vec<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(invalid(label, "not an array of strings")),
        Some(_) => Err(invalid(label, "not an array of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://idp.test",
            client_id: "tenet",
            nonce: "n-1",
            groups_claim: "groups",
            skew: 60,
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://idp.test", "sub": "user-A", "aud": "tenet",
            "exp": NOW + 300, "iat": NOW, "nonce": "n-1",
            "email": "a@example.test", "email_verified": true, "groups": ["dev", "ops"],
            "amr": ["pwd"], "auth_time": NOW - 5, "sid": "s-1"
        });
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        serde_json::from_value(base).unwrap()
    }

    fn check(extra: Value) -> Result<Identity, TokenError> {
        validate(claims(extra), &expected(), NOW)
    }

    #[test]
    fn reads_the_identity() {
        let id = check(json!({})).unwrap();
        assert_eq!(id.subject, "user-A");
        assert_eq!(id.email.as_deref(), Some("a@example.test"));
        assert!(id.email_verified);
        assert_eq!(id.groups, ["dev", "ops"]);
        assert_eq!(id.amr, ["pwd"]);
        assert_eq!(id.auth_time.map(|t| t.unix_timestamp()), Some(NOW - 5));
        assert_eq!(id.claims.keys().collect::<Vec<_>>(), ["sid"]);
    }

    #[test]
    fn refuses_each_broken_claim() {
        let cases = [
            (json!({"iss": "https://idp.test/"}), "issuer_mismatch"),
            (json!({"aud": "other"}), "audience_mismatch"),
            (json!({"aud": ["other", "tenet"]}), "azp_mismatch"),
            (
                json!({"aud": ["other", "tenet"], "azp": "other"}),
                "azp_mismatch",
            ),
            (json!({"azp": "other"}), "azp_mismatch"),
            (json!({"exp": NOW - 61}), "expired"),
            (json!({"iat": NOW + 61}), "issued_in_future"),
            (json!({"iat": null}), "invalid_claim"),
            (json!({"nonce": "n-2"}), "nonce_mismatch"),
            (json!({"sub": ""}), "invalid_claim"),
            (json!({"groups": [1]}), "invalid_claim"),
            (json!({"email_verified": "yes"}), "invalid_claim"),
        ];
        for (extra, reason) in cases {
            let got = check(extra.clone()).map(|_| ()).map_err(|e| e.reason());
            assert_eq!(got, Err(reason), "{extra}");
        }
        assert!(check(json!({"aud": ["other", "tenet"], "azp": "tenet"})).is_ok());
        assert!(check(json!({"exp": NOW - 59})).is_ok(), "within skew");
    }

    #[test]
    fn missing_claims_are_refused() {
        for name in ["iss", "aud", "exp", "iat", "nonce", "sub"] {
            let mut c = claims(json!({}));
            c.remove(name);
            assert!(validate(c, &expected(), NOW).is_err(), "{name}");
        }
    }
}
