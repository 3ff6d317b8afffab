//! gRPC through the gateway with grpcio (the reference implementation) on both ends: an h2c
//! upstream server and a TLS client presenting an X.509-SVID.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::{Command, Stdio};

use support::*;

const GRPC_HOST: &str = "greeter.example.org";
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/grpc_peer.py");

#[test]
fn grpc_passes_through_with_the_caller_identity() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        tenet()
            .arg("init")
            .arg(dir.path())
            .args(["--trust-domain", TD]),
    );
    let (_server, upstream) = start_python_server(&[PEER, "server"]);

    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("tenet.toml");
    std::fs::write(
        &cfg,
        format!(
            "[deployment]\ntrust_domain = \"{TD}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:{port}\"\n\
             [[routes]]\nname = \"greeter\"\nservice = \"greeter\"\nlistener = \"main\"\n\
             host = \"{GRPC_HOST}\"\nupstream = \"http://127.0.0.1:{upstream}\"\n\
             upstream_protocol = \"http2\"\n"
        ),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("policies/example.cedar")).unwrap();
    std::fs::write(
        dir.path().join("policies/grpc.cedar"),
        format!(
            "@id(\"frontend-says\")\npermit (principal == Tenet::Workload::\"{FRONTEND}\", \
             action == Tenet::Action::\"POST\", resource in Tenet::Service::\"greeter\") \
             when {{ resource.path == \"/tenet.test.Echo/Say\" && context.protocol == \"gRPC\" }};\n"
        ),
    )
    .unwrap();
    for (id, name) in [
        (FRONTEND, "frontend"),
        ("spiffe://example.org/ns/shop/sa/other", "other"),
    ] {
        run_ok(
            tenet()
                .arg("--config")
                .arg(&cfg)
                .args(["svid", "x509", id, "--out"])
                .arg(dir.path().join(name)),
        );
    }
    let _gateway = KillOnDrop(
        tenet()
            .arg("--config")
            .arg(&cfg)
            .arg("up")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);

    let call = |who: &str| {
        let d = dir.path().join(who);
        Command::new("python3")
            .args([PEER, "client", &format!("127.0.0.1:{port}"), GRPC_HOST])
            .arg(d.join("bundle.pem"))
            .arg(d.join("svid.pem"))
            .arg(d.join("svid.key"))
            .arg("tenet")
            .output()
            .unwrap()
    };
    let ok = call("frontend");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!("hello tenet from {FRONTEND}")
    );

    // Another workload is denied: gRPC clients see the 403 as PERMISSION_DENIED.
    let denied = call("other");
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
}
