//! `[people]` checked when the configuration loads, before any identity provider is contacted,
//! and the admin commands for people refusing what would do nothing silently:
//! `tenet session revoke` with a malformed person, `tenet device import` with a file too large
//! or with no row imported, and `tenet device enrol` refusing an output directory that holds
//! a credential, or curl's `--resolve HOST:PORT:IP`, before it spends the token.
//!
//! The tests against a running deployment need `node`, `python3` and the provider package in
//! the workspace: `npm install --prefix target/tools/oidc-provider oidc-provider@8.8.1` (or
//! `TENET_OIDC_PROVIDER_DIR` pointing at the package directory).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use support::idp;
use support::{free_port, tenet, wait_output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tenet --config DIR/tenet.toml ARGS`, finished.
fn run(dir: &Path, args: &[&str]) -> Output {
    tenet()
        .arg("--config")
        .arg(dir.join("tenet.toml"))
        .args(args)
        .output()
        .unwrap()
}

/// A deployment `tenet init` made, with `tail` appended to its tenet.toml.
fn deployment(tail: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    idp::init(dir.path());
    let config = dir.path().join("tenet.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(tail);
    std::fs::write(&config, text).unwrap();
    dir
}

/// A people listener on `port`, a people route on app.example.test, and `[people]` whose one
/// provider's issuer is `issuer`, with `redirect_uri` and the extra `[people]` lines `people`.
fn people_tail(port: u16, issuer: &str, redirect_uri: &str, people: &str) -> String {
    format!(
        r#"
[[listeners]]
name = "people"
listen = "127.0.0.1:{port}"
client_auth = "optional"

[[routes]]
name = "app"
service = "app"
listener = "people"
host = "app.example.test"
upstream = "http://127.0.0.1:9"
people = true

[people]
rp_id = "example.test"
origins = ["https://app.example.test:{port}"]
{people}
[[people.providers]]
name = "corp"
issuer = "{issuer}"
client_id = "tenet"
redirect_uri = "{redirect_uri}"
"#
    )
}

#[test]
fn people_config_errors_name_the_field_before_any_provider_is_contacted() {
    // The "provider": a port that records whether anyone connected.
    let provider = TcpListener::bind("127.0.0.1:0").unwrap();
    provider.set_nonblocking(true).unwrap();
    let issuer = format!(
        "https://127.0.0.1:{}",
        provider.local_addr().unwrap().port()
    );
    let port = free_port();
    let callback = |port: u16| format!("https://app.example.test:{port}/.tenet/auth/callback");
    let wrong_port = if port == 65535 { port - 1 } else { port + 1 };
    let cases = [
        (
            people_tail(port, &issuer, &callback(wrong_port), ""),
            vec![
                "people.providers[0].redirect_uri".to_owned(),
                format!("port {wrong_port}"),
            ],
        ),
        (
            people_tail(
                port,
                &issuer,
                &format!("http://app.example.test:{port}/.tenet/auth/callback"),
                "",
            ),
            vec![
                "people.providers[0].redirect_uri".into(),
                "must be https".into(),
            ],
        ),
        (
            people_tail(
                port,
                &issuer,
                &callback(port),
                "idle_timeout = \"2h\"\nabsolute_timeout = \"1h\"",
            ),
            vec![
                "people.idle_timeout".into(),
                "people.absolute_timeout".into(),
            ],
        ),
        (
            people_tail(
                port,
                &issuer,
                &callback(port),
                "risk_step_up = 90\nrisk_end = 60",
            ),
            vec!["people.risk_step_up".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "sign_ins_per_source = 0"),
            vec!["people.sign_ins_per_source".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "risk_end = 0"),
            vec!["people.risk_end 0".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "admin_groups = [\"\"]"),
            vec!["people.admin_groups[0]".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "rp_name = \"\""),
            vec!["people.rp_name".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "bearer_key_wait = \"0ms\""),
            vec!["people.bearer_key_wait \"0ms\"".into()],
        ),
        (
            people_tail(port, &issuer, &callback(port), "")
                + &format!(
                    "[[people.providers]]\nname = \"corp\"\nissuer = \"{issuer}\"\n\
                     client_id = \"other\"\nredirect_uri = \"{}\"\n",
                    callback(port)
                ),
            vec!["people.providers[1].name".into(), "unique".into()],
        ),
    ];
    for (tail, parts) in cases {
        let dir = deployment(&tail);
        let child = tenet()
            .arg("--config")
            .arg(dir.path().join("tenet.toml"))
            .arg("up")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        for part in &parts {
            assert!(err.contains(part.as_str()), "{part:?} not in: {err}");
        }
        assert!(
            provider.accept().is_err(),
            "the provider was contacted before the configuration was refused: {err}"
        );
    }
}

#[test]
fn malformed_people_and_oversized_imports_are_refused_before_the_admin_api() {
    let dir = deployment("");
    for user in ["", "user:", "user:corp:", "user:corp", "alice"] {
        let out = run(dir.path(), &["session", "revoke", user]);
        assert_eq!(out.status.code(), Some(1), "{user:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{user:?}"))
                && err.contains("user:PROVIDER:SUBJECT")
                && err.contains("an email address"),
            "{err}"
        );
    }

    let big = dir.path().join("intune-export.csv");
    let file = std::fs::File::create(&big).unwrap();
    // Sparse: over the limit without writing 16 MiB.
    file.set_len(16 * 1024 * 1024 + 1).unwrap();
    let out = run(
        dir.path(),
        &[
            "device",
            "import",
            big.to_str().unwrap(),
            "--match",
            "serial",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("intune-export.csv") && err.contains("16 MiB"),
        "{err}"
    );
}

#[test]
fn revoking_nobody_says_so_and_an_import_with_no_row_fails() {
    let d = idp::PeopleDeployment::start(
        "",
        "",
        r#"@id("engineers")
permit (principal in Tenet::Group::"engineering", action, resource in Tenet::Service::"app");
"#,
    );
    let dir = &d.dir;

    for user in [
        "bob@example.test",
        "user:corp:nobody",
        "user:elsewhere:nobody",
    ] {
        let out = run(dir.path(), &["session", "revoke", user]);
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["revoked"], 0, "{answer}");
        assert!(
            stderr(&out).contains(&format!("no live session of {user}")),
            "{}",
            stderr(&out)
        );
    }

    // 25 rows, none of an enrolled device: nothing imported, the first 20 problems shown.
    let export = dir.path().join("export.csv");
    let mut csv = String::from("serial number,encrypted\n");
    for n in 0..25 {
        csv.push_str(&format!("SN-UNKNOWN-{n},yes\n"));
    }
    std::fs::write(&export, csv).unwrap();
    let out = run(
        dir.path(),
        &[
            "device",
            "import",
            export.to_str().unwrap(),
            "--match",
            "serial",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("line 2:"), "{err}");
    assert!(err.contains("line 21:"), "{err}");
    assert!(!err.contains("line 22:"), "{err}");
    assert!(err.contains("... and 5 more"), "{err}");
    assert!(err.contains("no row was imported"), "{err}");
}

#[test]
fn enrol_refuses_a_used_output_directory_and_curls_resolve_form_before_contacting_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    gateway.set_nonblocking(true).unwrap();
    let origin = format!(
        "https://app.example.test:{}",
        gateway.local_addr().unwrap().port()
    );
    let out = dir.path().join("device");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("svid.key"), "the key of an earlier enrolment").unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, "").unwrap();
    let enrol = |out: &Path, resolve: &str| {
        tenet()
            .args(["device", "enrol", "--gateway", &origin, "--token", "tok"])
            .arg("--bundle")
            .arg(&bundle)
            .arg("--out")
            .arg(out)
            .args(["--resolve", resolve])
            .output()
            .unwrap()
    };

    let out_used = enrol(&out, "app.example.test:127.0.0.1");
    assert_eq!(out_used.status.code(), Some(1), "{}", stderr(&out_used));
    let err = stderr(&out_used);
    assert!(
        err.contains("svid.key already exists") && err.contains("the token is still unused"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("svid.key")).unwrap(),
        "the key of an earlier enrolment"
    );

    let curl_form = enrol(&dir.path().join("fresh"), "app.example.test:443:127.0.0.1");
    assert_eq!(curl_form.status.code(), Some(1), "{}", stderr(&curl_form));
    let err = stderr(&curl_form);
    assert!(
        err.contains("give HOST:IP (app.example.test:127.0.0.1)"),
        "{err}"
    );

    // Neither attempt reached the gateway.
    assert_eq!(
        gateway.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}
