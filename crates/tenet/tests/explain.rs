//! `tenet policy explain` for people and risk: the decision a person's request would get,
//! with the groups, factors, device and risk given on the command line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use support::tenet;

const POLICY: &str = r#"
@id("engineers-read-with-a-passkey")
permit (principal in Tenet::Group::"engineering", action in Tenet::Action::"read", resource)
  when { context.session.phishing_resistant && context.device.compliant };

@id("not-when-risky")
forbid (principal, action, resource) when { context.risk >= 50 };
"#;

fn explain(dir: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let config = dir.join("d/tenet.toml");
    let out = tenet()
        .arg("--config")
        .arg(&config)
        .args([
            "policy", "explain", "--route", "catalog", "--format", "json",
        ])
        .args(args)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn people_and_risk_reach_the_explained_decision() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenet()
        .current_dir(dir.path())
        .args(["init", "d", "--trust-domain", "example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.path().join("d/policies/people.cedar"), POLICY).unwrap();
    let person = [
        "--principal",
        "user:corp:42",
        "--group",
        "engineering",
        "--factor",
        "oidc",
        "--factor",
        "webauthn",
        "--device-compliant",
    ];
    let (code, v, err) = explain(dir.path(), &person);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        v["policies"],
        serde_json::json!(["engineers-read-with-a-passkey"])
    );

    // TOTP is not phishing-resistant; no device; too risky; not in the group.
    let totp = [
        "--principal",
        "user:corp:42",
        "--group",
        "engineering",
        "--factor",
        "totp",
        "--device-compliant",
    ];
    assert_eq!(explain(dir.path(), &totp).1["decision"], "deny");
    assert_eq!(explain(dir.path(), &person[..8]).1["decision"], "deny");
    let risky: Vec<&str> = person.iter().copied().chain(["--risk", "60"]).collect();
    let (_, v, _) = explain(dir.path(), &risky);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["policies"], serde_json::json!(["not-when-risky"]));
    let outsider = [
        "--principal",
        "user:corp:42",
        "--factor",
        "webauthn",
        "--device-compliant",
    ];
    assert_eq!(explain(dir.path(), &outsider).1["decision"], "deny");

    // Bad input names the option.
    let (code, _, err) = explain(dir.path(), &["--principal", "user:corp", "--group", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("user:PROVIDER:SUBJECT"), "{err}");
    let (code, _, err) = explain(
        dir.path(),
        &["--principal", "user:corp:42", "--factor", "sms"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--factor \"sms\""), "{err}");
    let (code, _, err) = explain(
        dir.path(),
        &["--principal", "spiffe://example.test/a", "--group", "x"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("describe a person"), "{err}");
}

/// `--user-verified` sets context.session.user_verified, and only with a webauthn factor.
#[test]
fn a_policy_on_user_verification_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenet()
        .current_dir(dir.path())
        .args(["init", "d", "--trust-domain", "example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let policy = r#"@id("verified-people-read")
permit (principal is Tenet::User, action, resource)
  when { context.session.user_verified };"#;
    std::fs::write(dir.path().join("d/policies/people.cedar"), policy).unwrap();
    let person = ["--principal", "user:corp:42", "--factor", "webauthn"];
    assert_eq!(explain(dir.path(), &person).1["decision"], "deny");
    let verified: Vec<&str> = person.iter().copied().chain(["--user-verified"]).collect();
    let (code, v, err) = explain(dir.path(), &verified);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["decision"], "allow");
    let (code, _, err) = explain(
        dir.path(),
        &[
            "--principal",
            "user:corp:42",
            "--factor",
            "totp",
            "--user-verified",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--user-verified needs --factor webauthn"),
        "{err}"
    );
}

/// A default deny names the permit that came closest and the clause that was false, in the
/// text and the JSON output.
#[test]
fn a_default_deny_names_the_closest_permit_and_its_false_clause() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenet()
        .current_dir(dir.path())
        .args(["init", "d", "--trust-domain", "example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let policy = r#"@id("engineers-read")
permit (principal in Tenet::Group::"engineering", action in Tenet::Action::"read", resource)
  when { context.session.phishing_resistant }
  when { context.device.compliant };"#;
    std::fs::write(dir.path().join("d/policies/people.cedar"), policy).unwrap();
    let person = [
        "--principal",
        "user:corp:42",
        "--group",
        "engineering",
        "--factor",
        "webauthn",
    ];

    let (code, v, err) = explain(dir.path(), &person);
    assert_eq!(code, 2, "{err}");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["near_misses"][0]["policy"], "engineers-read");
    assert_eq!(
        v["near_misses"][0]["unmet"],
        serde_json::json!([{"kind": "condition", "number": 2, "clause": "when",
                            "text": "context.device.compliant"}])
    );

    let out = tenet()
        .arg("--config")
        .arg(dir.path().join("d/tenet.toml"))
        .args(["policy", "explain", "--route", "catalog"])
        .args(person)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "closest permit: engineers-read: condition 2 (when { context.device.compliant }) \
             is false"
        ),
        "{text}"
    );

    // Allowed: nothing to name.
    let compliant: Vec<&str> = person
        .iter()
        .copied()
        .chain(["--device-compliant"])
        .collect();
    let (code, v, err) = explain(dir.path(), &compliant);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["near_misses"], serde_json::json!([]));
}

/// An email given as the principal is refused with the principal forms that are accepted,
/// the person's among them, and where the email goes.
#[test]
fn a_principal_that_is_not_one_is_refused_with_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenet()
        .current_dir(dir.path())
        .args(["init", "d", "--trust-domain", "example.test"])
        .output()
        .unwrap();
    assert!(out.status.success());

    let (code, _, err) = explain(dir.path(), &["--principal", "alice@example.test"]);
    assert_ne!(code, 0);
    assert_ne!(code, 2, "a refusal is not a deny: {err}");
    for form in [
        "\"alice@example.test\"",
        "spiffe://TRUST_DOMAIN/PATH",
        "anonymous",
        "user:PROVIDER:SUBJECT",
        "--email",
    ] {
        assert!(err.contains(form), "{form} missing from: {err}");
    }

    let (_, _, err) = explain(dir.path(), &["--principal", "alice"]);
    assert!(err.contains("user:PROVIDER:SUBJECT"), "{err}");
    assert!(!err.contains("--email"), "{err}");
}
