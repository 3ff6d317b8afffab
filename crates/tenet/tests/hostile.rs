//! Hostile input against a running `tenet up`: malformed TLS, garbage HTTP, slow clients, an
//! unknown SNI and bad client certificates must each be refused with a log line, a counter and
//! an event, and leave the process alive, serving, and holding no leaked connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use support::*;
use time::OffsetDateTime;

/// OCSF class of a refused handshake (Authentication).
const TLS: u64 = 3002;
/// OCSF class of a refused request (HTTP Activity).
const HTTP: u64 = 4002;

/// The gateway's handshake timeout and header read timeout (`tenet-gateway/src/conn.rs`).
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection the gateway should close at once may stay open.
const PROMPT_CLOSE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Expectations shared by every test
// ---------------------------------------------------------------------------------------------

/// One refusal class: `count` connections refused for `kind` at the TLS or HTTP stage.
#[derive(Debug, Clone, Copy)]
struct Refused {
    class: u64,
    kind: &'static str,
    count: usize,
}

const fn tls(kind: &'static str, count: usize) -> Refused {
    Refused {
        class: TLS,
        kind,
        count,
    }
}

const fn http(kind: &'static str, count: usize) -> Refused {
    Refused {
        class: HTTP,
        kind,
        count,
    }
}

/// What the deployment shows about one refusal kind.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    events: usize,
    counter: u64,
    log_lines: usize,
}

fn counter_name(class: u64) -> &'static str {
    if class == TLS {
        "tenet_gateway_handshakes_refused_total"
    } else {
        "tenet_gateway_rejections_total"
    }
}

fn seen(events: &[serde_json::Value], metrics: &str, log: &str, r: Refused) -> Seen {
    let events = events
        .iter()
        .filter(|e| {
            e["class_uid"] == r.class
                && e["disposition"] == "Blocked"
                && e["unmapped"]["kind"] == r.kind
        })
        .count();
    let counter = counter(metrics, counter_name(r.class), &[("reason", r.kind)]);
    // tracing prints a `&str` field quoted.
    let reason = [
        format!("reason={}", r.kind),
        format!("reason=\"{}\"", r.kind),
    ];
    let log_lines = log
        .lines()
        .filter(|l| l.split_whitespace().any(|w| reason.iter().any(|r| r == w)))
        .count();
    Seen {
        events,
        counter,
        log_lines,
    }
}

/// Every expected refusal shows up as exactly `count` events and counter increments, and at
/// least `count` log lines naming the reason. The gateway records after closing, so poll.
fn expect_refusals(d: &Deployment, metrics_before: &str, expected: &[Refused]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = d.events();
        let metrics = d.metrics();
        let log = strip_ansi(&d.up_log());
        let mut wrong = Vec::new();
        for r in expected {
            let now = seen(&events, &metrics, &log, *r);
            let before = counter(metrics_before, counter_name(r.class), &[("reason", r.kind)]);
            let count = r.count;
            let ok = now.events == count
                && now.counter.saturating_sub(before) == count as u64
                && now.log_lines >= count;
            if !ok {
                wrong.push(format!(
                    "{} {}: want {count} events, +{count} counter, >= {count} log lines; \
                     got {now:?} (counter before: {before})",
                    r.class, r.kind
                ));
            }
        }
        if wrong.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let kinds: Vec<String> = events
                .iter()
                .filter(|e| e["class_uid"] == TLS || e["class_uid"] == HTTP)
                .map(|e| {
                    format!(
                        "{} {} {} {}",
                        e["class_uid"], e["disposition"], e["unmapped"]["kind"], e["status_detail"]
                    )
                })
                .collect();
            panic!(
                "refusals not recorded as expected:\n{}\n\nevents:\n{}\n\nmetrics:\n{}\n\n\
                 up.log:\n{}",
                wrong.join("\n"),
                kinds.join("\n"),
                metrics
                    .lines()
                    .filter(|l| l.starts_with("tenet_"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                log
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The refusals (Blocked events of `class`) recorded so far.
fn refusals(d: &Deployment, class: u64) -> Vec<serde_json::Value> {
    d.events()
        .into_iter()
        .filter(|e| e["class_uid"] == class && e["disposition"] == "Blocked")
        .collect()
}

/// Wait until `found` picks an event out of the refusals of `class` (the gateway records
/// after it has closed the connection).
fn wait_for_refusal(
    d: &Deployment,
    class: u64,
    what: &str,
    found: impl Fn(&[serde_json::Value]) -> Option<serde_json::Value>,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = refusals(d, class);
        if let Some(event) = found(&events) {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no {class} refusal event; have {events:#?}\n{}",
            d.up_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The refusal event of the connection from local port `port`.
fn refusal_of_port(d: &Deployment, class: u64, port: u16, what: &str) -> serde_json::Value {
    wait_for_refusal(d, class, what, |events| {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e["src_endpoint"]["port"] == port)
            .collect();
        assert!(mine.len() <= 1, "{what}: {mine:#?}");
        mine.first().map(|e| (*e).clone())
    })
}

/// The one refusal event of `class` recorded after the first `before` of them.
fn next_refusal(d: &Deployment, class: u64, before: usize, what: &str) -> serde_json::Value {
    let event = wait_for_refusal(d, class, what, |events| events.get(before).cloned());
    // Nothing else may have been recorded for the same case.
    std::thread::sleep(Duration::from_millis(100));
    let after = refusals(d, class).len();
    assert_eq!(after, before + 1, "{what}: more than one refusal event");
    event
}

/// Assert that `event` names one of `kinds`, and return that kind.
fn kind_of(event: &serde_json::Value, kinds: &[&'static str], what: &str) -> &'static str {
    let kind = event["unmapped"]["kind"].as_str().unwrap_or_default();
    kinds
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or_else(|| panic!("{what}: refused as {kind:?}, want one of {kinds:?}: {event:#}"))
}

/// up.log has a line about the connection from local port `port` giving `kind` as the reason.
fn assert_logged(d: &Deployment, port: u16, kind: &str) {
    let log = strip_ansi(&d.up_log());
    let peer = format!("peer=127.0.0.1:{port}");
    let reason = format!("reason=\"{kind}\"");
    assert!(
        log.lines()
            .any(|l| l.contains(&peer) && l.contains(&reason)),
        "no log line with {peer} {reason}:\n{log}"
    );
}

/// `(class, kind)` per case, grouped into counts.
fn grouped(cases: &[(u64, &'static str)]) -> Vec<Refused> {
    let mut out: Vec<Refused> = Vec::new();
    for &(class, kind) in cases {
        match out.iter_mut().find(|r| r.class == class && r.kind == kind) {
            Some(r) => r.count += 1,
            None => out.push(Refused {
                class,
                kind,
                count: 1,
            }),
        }
    }
    out
}

/// Open descriptors once they stop changing (connections just closed may still be counted).
fn settled_fds(d: &Deployment) -> usize {
    let mut last = d.open_fds();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = d.open_fds();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// A good request as the frontend: 200.
fn good_request(d: &Deployment) {
    let (code, body) = d.curl(Some("frontend"), &[], "/products");
    assert_eq!(code, 200, "{body}\n{}", d.up_log());
}

/// The gateway answers its first good request and reports the descriptors it then holds.
fn baseline(d: &Deployment) -> usize {
    good_request(d);
    settled_fds(d)
}

/// After the attacks: still running, no panic in its log, a good request is served, only the
/// good requests were allowed, and the descriptor count is back near `baseline`.
fn assert_healthy(d: &mut Deployment, baseline: usize, good_requests: usize) {
    assert!(d.gateway_alive(), "tenet up exited:\n{}", d.up_log());
    good_request(d);
    let log = d.up_log();
    assert!(!log.contains("panicked"), "tenet up panicked:\n{log}");

    let allowed = d
        .events()
        .iter()
        .filter(|e| e["class_uid"] == HTTP && e["disposition"] == "Allowed")
        .count();
    assert_eq!(
        allowed,
        good_requests + 1,
        "only the good requests may reach the upstream"
    );

    // Every hostile connection is closed: the descriptor count returns to the baseline
    // (give or take the upstream connection pool).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fds = d.open_fds();
    while fds > baseline + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fds = d.open_fds();
    }
    assert!(
        fds <= baseline + 2,
        "tenet up holds {fds} descriptors, {baseline} before the attacks: {:?}",
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .unwrap()
            .map(|e| std::fs::read_link(e.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Raw TCP and TLS clients
// ---------------------------------------------------------------------------------------------

/// What happened on one raw connection.
#[derive(Debug)]
struct Exchange {
    /// The client's local port: the event's `src_endpoint.port`.
    port: u16,
    reply: Vec<u8>,
    /// Whether the gateway closed the connection before the read limit.
    closed: bool,
    elapsed: Duration,
}

/// Connect to the gateway's TLS port, send `bytes` (then half-close if `half_close`), and read
/// until the gateway closes the connection or `limit` passes.
fn raw_exchange(d: &Deployment, bytes: &[u8], half_close: bool, limit: Duration) -> Exchange {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(d.addr()).unwrap();
    let port = tcp.local_addr().unwrap().port();
    // The gateway may close before reading everything: a failed write is part of the answer.
    let _ = tcp.write_all(bytes);
    if half_close {
        let _ = tcp.shutdown(Shutdown::Write);
    }
    let (reply, closed) = read_until_closed(&mut tcp, started + limit);
    Exchange {
        port,
        reply,
        closed,
        elapsed: started.elapsed(),
    }
}

fn read_until_closed(tcp: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (reply, false);
        };
        tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match tcp.read(&mut buf) {
            Ok(0) => return (reply, true),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (reply, true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (reply, false);
            }
            Err(e) => panic!("reading from the gateway: {e}"),
        }
    }
}

/// A real TLS 1.2/1.3 ClientHello record for `HOST`, as rustls sends it.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    // One handshake record holding one ClientHello.
    assert_eq!(hello[0], 0x16);
    assert_eq!(hello[5], 0x01);
    assert_eq!(
        usize::from(u16::from_be_bytes([hello[3], hello[4]])) + 5,
        hello.len()
    );
    hello
}

/// The ClientHello cut after `keep` bytes of its body, with the record and handshake lengths
/// rewritten to match: well framed, but the message inside ends early.
fn cut_client_hello(hello: &[u8], keep: usize) -> Vec<u8> {
    let body = &hello[9..9 + keep];
    let handshake_len = u32::try_from(keep).unwrap().to_be_bytes();
    let record_len = u16::try_from(keep + 4).unwrap().to_be_bytes();
    let mut out = vec![0x16, hello[1], hello[2], record_len[0], record_len[1], 0x01];
    out.extend_from_slice(&handshake_len[1..]);
    out.extend_from_slice(body);
    out
}

/// Deterministic noise (xorshift64) that starts with a byte no TLS record starts with.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    if (0x14..=0x18).contains(&out[0]) {
        out[0] ^= 0x80;
    }
    out
}

/// curl against `host` on the gateway port with the credential in `<deployment>/<cred>/`.
fn curl_as(d: &Deployment, cred: Option<&str>, host: &str) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .arg("--resolve")
    .arg(format!("{host}:{}:127.0.0.1", d.port))
    .arg("--cacert")
    .arg(d.path("data/admin/bundle.pem"));
    if let Some(cred) = cred {
        cmd.arg("--cert")
            .arg(d.path(&format!("{cred}/svid.pem")))
            .arg("--key")
            .arg(d.path(&format!("{cred}/svid.key")));
    }
    cmd.arg(format!("https://{host}:{}/products", d.port))
        .output()
        .unwrap()
}

/// curl failed without an HTTP answer (the handshake was refused).
fn assert_curl_refused(out: &Output, what: &str) {
    let code = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && code.trim() == "000",
        "{what}: curl got {code} ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl s_client` with the frontend SVID, stdin kept open for the caller to feed.
fn s_client(d: &Deployment) -> std::process::Child {
    s_client_speaking(d, "http/1.1")
}

/// [`s_client`] offering `alpn`.
fn s_client_speaking(d: &Deployment, alpn: &str) -> std::process::Child {
    Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{}", d.port))
        .args(["-servername", HOST])
        .arg("-cert")
        .arg(d.path("frontend/svid.pem"))
        .arg("-cert_chain")
        .arg(d.path("frontend/svid.pem"))
        .arg("-key")
        .arg(d.path("frontend/svid.key"))
        .arg("-CAfile")
        .arg(d.path("data/admin/bundle.pem"))
        .args(["-verify_return_error", "-alpn", alpn])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1 and 4: malformed TLS and an unknown SNI
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_tls_and_unknown_sni_are_refused_at_the_handshake() {
    let mut d = Deployment::start();
    let fds = baseline(&d);
    let before = d.metrics();
    let hello = client_hello();
    let body_len = hello.len() - 5;

    let cases: [(&str, Vec<u8>, bool, &str); 5] = [
        ("random bytes", noise(600), false, "malformed_tls"),
        (
            "an HTTP request in plaintext",
            format!("GET /products HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes(),
            false,
            "malformed_tls",
        ),
        // Framed correctly, but the ClientHello ends inside its random.
        (
            "a ClientHello cut inside",
            cut_client_hello(&hello, 20),
            false,
            "malformed_tls",
        ),
        // The record promises more than arrives before the client closes its side.
        (
            "a ClientHello cut mid-record, then EOF",
            hello[..5 + body_len / 2].to_vec(),
            true,
            "truncated_handshake",
        ),
        // A record header announcing more than a TLS record may carry.
        (
            "an oversized record",
            [&[0x16, 0x03, 0x01, 0xff, 0xff][..], &[0u8; 64]].concat(),
            false,
            "malformed_tls",
        ),
    ];
    let mut refused = Vec::new();
    for (what, bytes, half_close, kind) in &cases {
        let x = raw_exchange(&d, bytes, *half_close, PROMPT_CLOSE);
        assert!(
            x.closed,
            "{what}: the gateway kept the connection open: {x:?}"
        );
        assert!(
            !x.reply.starts_with(b"HTTP/"),
            "{what}: the gateway answered in plaintext: {x:?}"
        );
        // Anything that comes back is a TLS alert record, never handshake data.
        assert!(
            x.reply.is_empty() || x.reply[0] == 0x15,
            "{what}: not an alert: {x:?}"
        );
        let event = refusal_of_port(&d, TLS, x.port, what);
        refused.push((TLS, kind_of(&event, &[kind], what)));
        assert_logged(&d, x.port, kind);
    }

    // A name that is not among the route hosts: no certificate is chosen, the handshake fails.
    for host in ["evil.example.net", "catalog.example.org.evil.net"] {
        let seen = refusals(&d, TLS).len();
        assert_curl_refused(&curl_as(&d, Some("frontend"), host), host);
        let event = next_refusal(&d, TLS, seen, host);
        refused.push((TLS, kind_of(&event, &["unknown_sni"], host)));
    }

    // A client that connects and closes at once (a port scan) is counted, not recorded.
    let scans = counter(&before, counter_name(TLS), &[("reason", "client_closed")]);
    let seen = refusals(&d, TLS).len();
    let x = raw_exchange(&d, b"", true, PROMPT_CLOSE);
    assert!(x.closed && x.reply.is_empty(), "{x:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(
        &d.metrics(),
        counter_name(TLS),
        &[("reason", "client_closed")],
    ) == scans
    {
        assert!(Instant::now() < deadline, "the port scan was not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(refusals(&d, TLS).len(), seen, "a port scan is not an event");

    expect_refusals(&d, &before, &grouped(&refused));
    assert_healthy(&mut d, fds, 1);
}

/// The refusals of `class` from 127.0.0.1 recorded one by one (not summaries), and the
/// summaries.
fn refusals_and_summaries(
    d: &Deployment,
    class: u64,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    refusals(d, class)
        .into_iter()
        .partition(|e| e["unmapped"]["kind"] != "throttled")
}

#[test]
fn a_flood_of_refusals_is_recorded_up_to_the_source_limit_then_summarised() {
    const LIMIT: usize = 5;
    let mut d = Deployment::start();
    d.stop();
    let config = std::fs::read_to_string(d.config()).unwrap();
    write(
        &d.config(),
        &format!("{config}[events]\nrefusals_per_source = {LIMIT}\n"),
    );
    d.up();
    let fds = baseline(&d);
    let before = d.metrics();

    // 40 malformed handshakes from one address: each is refused at once as usual.
    const FLOOD: usize = 40;
    for _ in 0..FLOOD {
        let x = raw_exchange(&d, &noise(600), false, PROMPT_CLOSE);
        assert!(x.closed && !x.reply.starts_with(b"HTTP/"), "{x:?}");
    }
    // And 8 garbage request heads after good handshakes: the HTTP stage has a limit of its own.
    const GARBAGE: usize = 8;
    for _ in 0..GARBAGE {
        let answer = d.s_client_raw("frontend", b"GET /products HTTP/1.1\r\nHost\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    }

    // Every refusal is counted; only the first LIMIT of each stage are events.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = d.metrics();
        let refused = counter(&metrics, counter_name(TLS), &[("reason", "malformed_tls")])
            - counter(&before, counter_name(TLS), &[("reason", "malformed_tls")]);
        let held = |stage| {
            counter(
                &metrics,
                "tenet_gateway_refusal_events_held_total",
                &[("stage", stage)],
            )
        };
        if refused == FLOOD as u64
            && held("tls") == (FLOOD - LIMIT) as u64
            && held("http") == (GARBAGE - LIMIT) as u64
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refused {refused}, held tls {} http {}",
            held("tls"),
            held("http")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (tls, summaries) = refusals_and_summaries(&d, TLS);
    assert_eq!(tls.len(), LIMIT, "{tls:#?}");
    assert!(
        summaries.is_empty(),
        "the window has not ended: {summaries:#?}"
    );
    let (http, _) = refusals_and_summaries(&d, HTTP);
    assert_eq!(http.len(), LIMIT, "{http:#?}");
    let log = strip_ansi(&d.up_log());
    let warnings = log
        .lines()
        .filter(|l| l.contains("too many refusals from one source"))
        .count();
    assert_eq!(warnings, 2, "one warning per stage:\n{log}");
    // Held-back refusals are logged at debug, not info.
    let info_lines = log
        .lines()
        .filter(|l| l.contains("tls handshake refused") && l.contains("malformed_tls"))
        .count();
    assert_eq!(info_lines, LIMIT, "{log}");

    // Decisions are never held back: the good request is recorded as usual.
    assert_healthy(&mut d, fds, 1);

    // At shutdown the open windows are summarised: nothing is lost.
    assert!(d.stop().success());
    let (tls, summaries) = refusals_and_summaries(&d, TLS);
    assert_eq!(tls.len(), LIMIT);
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let summary = &summaries[0];
    assert_eq!(summary["src_endpoint"]["ip"], "127.0.0.1");
    assert_eq!(summary["unmapped"]["stage"], "tls");
    assert_eq!(summary["unmapped"]["listener"], "main");
    let detail = summary["status_detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "refusals_not_recorded: {} refused TLS handshakes from 127.0.0.1 between ",
            FLOOD - LIMIT
        )),
        "{detail}"
    );
    let (_, summaries) = refusals_and_summaries(&d, HTTP);
    let http_summary: Vec<_> = summaries
        .iter()
        .filter(|e| e["unmapped"]["stage"] == "http")
        .collect();
    assert_eq!(http_summary.len(), 1, "{summaries:#?}");
    assert!(
        http_summary[0]["status_detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "refusals_not_recorded: {} refused HTTP/1.1 requests from 127.0.0.1 ",
                GARBAGE - LIMIT
            )),
        "{:#}",
        http_summary[0]
    );
}

// ---------------------------------------------------------------------------------------------
// 2: garbage HTTP after a good handshake
// ---------------------------------------------------------------------------------------------

/// One garbage request head: the statuses and refusal kinds that are right for it.
struct Garbage {
    what: &'static str,
    raw: String,
    statuses: &'static [&'static str],
    kinds: &'static [&'static str],
}

const MALFORMED: &[&str] = &["malformed_head"];
const TOO_LARGE: &[&str] = &["request_head_too_large"];

#[test]
fn garbage_http_after_a_good_handshake_is_refused() {
    let mut d = Deployment::start();
    let fds = baseline(&d);
    let before = d.metrics();

    let get = |rest: &str| format!("GET /products HTTP/1.1\r\nHost: {HOST}\r\n{rest}\r\n");
    let garbage = |what, raw, statuses, kinds| Garbage {
        what,
        raw,
        statuses,
        kinds,
    };
    let many_headers: String = (0..150).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let huge_header = format!("X-Huge: {}\r\n", "a".repeat(70 * 1024));
    let cases = [
        garbage(
            "not HTTP at all",
            "\x16\x03\x01\x00\x05hello\r\n\r\n".to_string(),
            &["400"],
            MALFORMED,
        ),
        garbage(
            "invalid method characters",
            format!("G(T /products HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            &["400"],
            MALFORMED,
        ),
        garbage(
            "a request line without a version",
            format!("GET /products\r\nHost: {HOST}\r\n\r\n"),
            &["400"],
            MALFORMED,
        ),
        garbage(
            "a header without a colon",
            get("X-No-Colon\r\n"),
            &["400"],
            MALFORMED,
        ),
        garbage(
            "NUL in a header value",
            get("X-Nul: a\0b\r\n"),
            &["400"],
            &["malformed_head", "header_control_character"],
        ),
        garbage(
            "a header larger than 64 KiB",
            get(&huge_header),
            &["431", "400"],
            TOO_LARGE,
        ),
        garbage(
            "150 header fields",
            get(&many_headers),
            &["431", "400"],
            TOO_LARGE,
        ),
        // What hyper would refuse with a bare 400 of its own, the framing guard refuses first,
        // with the gateway's JSON answer.
        garbage(
            "angle brackets in the path",
            format!("GET /products/<x> HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            &["400"],
            &["invalid_target"],
        ),
        garbage(
            "a double quote in the query",
            format!("GET /products?q=\"a\" HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            &["400"],
            &["invalid_target"],
        ),
        // What hyper lets through, Tenet's own normaliser refuses (and records) itself.
        garbage(
            "a NUL in the path",
            format!("GET /products/%00 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
            &["400"],
            &["nul"],
        ),
    ];
    let mut refused = Vec::new();
    for Garbage {
        what,
        raw,
        statuses,
        kinds,
    } in &cases
    {
        let seen = refusals(&d, HTTP).len();
        let answer = d.s_client_raw("frontend", raw.as_bytes());
        let status = answer.get(9..12).unwrap_or_default().to_string();
        assert!(
            answer.starts_with("HTTP/1.1 ") && statuses.contains(&status.as_str()),
            "{what}: want {statuses:?}, got {answer:?}"
        );
        if kinds.contains(&"invalid_target") {
            assert!(
                answer.contains(r#""reason":"invalid_target""#),
                "{what}: {answer:?}"
            );
        }
        let event = next_refusal(&d, HTTP, seen, what);
        refused.push((HTTP, kind_of(&event, kinds, what)));
        // The event says what the client was told.
        assert_eq!(
            event["http_response"]["code"].to_string(),
            status,
            "{what}: {event:#}"
        );
        assert_eq!(event["actor"]["app_name"], FRONTEND, "{what}: {event:#}");
    }

    // A refused head's log line does not give the stand-in request's method as the client's.
    let log = strip_ansi(&d.up_log());
    let framing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request rejected") && l.contains("reason=\"malformed_head\""))
        .collect();
    assert!(!framing.is_empty(), "{log}");
    assert!(
        framing.iter().all(|l| l.contains("method=\"-\"")),
        "{framing:#?}"
    );
    expect_refusals(&d, &before, &grouped(&refused));
    assert_healthy(&mut d, fds, 1);
}

// ---------------------------------------------------------------------------------------------
// 3: slow clients
// ---------------------------------------------------------------------------------------------

/// How long until the gateway closed a connection that stalls `stall` (a TLS client that
/// never finishes its handshake).
fn stalled_handshake(d: &Deployment, stall: Vec<u8>) -> Exchange {
    raw_exchange(d, &stall, false, SERVER_TIMEOUT + Duration::from_secs(5))
}

/// s_client sends `head` after its handshake, then `dribble` one byte every 500 ms, and keeps
/// its side open; returns when the gateway closed the connection (or after 20 s).
fn stalled_request(d: &Deployment, head: String, dribble: String) -> (Duration, String) {
    let started = Instant::now();
    let mut child = s_client(d);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(head.as_bytes()).unwrap();
    stdin.flush().unwrap();
    for byte in dribble.bytes() {
        std::thread::sleep(Duration::from_millis(500));
        if child.try_wait().unwrap().is_some() || stdin.write_all(&[byte]).is_err() {
            break;
        }
    }
    let out = wait_output(
        child,
        Duration::from_secs(20).saturating_sub(started.elapsed()),
    );
    drop(stdin);
    (
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An HTTP/2 connection that asks for nothing (tests/support/h2_idle_client.py): the frame
/// types it received and "closed SECONDS" (or "open SECONDS" after 20 s).
fn idle_http2(d: &Deployment) -> (String, String) {
    raw_http2(d, 20, "")
}

/// An HTTP/2 connection that sends the raw `frames` (hex) after its preface and SETTINGS,
/// then only reads, for at most `limit` seconds: the frames it received and how it ended.
fn raw_http2(d: &Deployment, limit: u64, frames: &str) -> (String, String) {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/h2_idle_client.py"
        ))
        .arg(HOST)
        .arg(d.port.to_string())
        .arg(d.path("frontend/svid.pem"))
        .arg(d.path("frontend/svid.key"))
        .arg(d.path("data/admin/bundle.pem"))
        .arg(limit.to_string())
        .arg(frames)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let frames = lines.next().unwrap_or_default().to_owned();
    let close = lines.next().unwrap_or_default().to_owned();
    (frames, close)
}

/// Raw HTTP/2 frames as hex: a frame header (length, type, flags, stream) and its payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> String {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn http2_protocol_violations_are_refused_recorded_and_detected() {
    let mut d = Deployment::start();
    let fds = baseline(&d);
    let before = d.metrics();
    let overflow = h2_frame(8, 0, 0, &[0x7f, 0xff, 0xff, 0xff]);
    // GET https://frontend/ opened and reset at once, 200 times.
    let rapid_reset: String = (0..200u32)
        .map(|i| {
            let stream = 2 * i + 1;
            let head = [0x82, 0x87, 0x84, 0x01, 0x01, b'h'];
            h2_frame(1, 5, stream, &head) + &h2_frame(3, 0, stream, &[0, 0, 0, 8])
        })
        .collect();
    let cases = [
        (
            "DATA on stream 0",
            h2_frame(0, 0, 0, b"x"),
            1,
            "http2_protocol_error",
        ),
        (
            "the connection window raised past 2^31 - 1",
            overflow.repeat(2),
            3,
            "http2_flow_control_error",
        ),
        (
            "streams reset as soon as they are opened",
            rapid_reset,
            11,
            "http2_enhance_your_calm",
        ),
    ];
    let mut refused = Vec::new();
    for (what, frames, code, kind) in &cases {
        let seen = refusals(&d, HTTP).len();
        let (frames, _) = raw_http2(&d, 10, frames);
        assert!(
            frames
                .split_whitespace()
                .any(|f| f == format!("GOAWAY:{code}")),
            "{what}: want GOAWAY:{code}, got {frames}"
        );
        let event = next_refusal(&d, HTTP, seen, what);
        refused.push((HTTP, kind_of(&event, &[kind], what)));
        assert_eq!(event["actor"]["app_name"], FRONTEND, "{what}: {event:#}");
    }
    expect_refusals(&d, &before, &grouped(&refused));

    // The workload behind them is a detection's subject, once within the cool-down.
    let deadline = Instant::now() + Duration::from_secs(10);
    let detections = loop {
        let found: Vec<_> = d
            .events()
            .into_iter()
            .filter(|e| {
                e["class_uid"] == 2004 && e["finding_info"]["uid"] == "tenet.protocol-abuse"
            })
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert!(
        detections[0].to_string().contains(FRONTEND),
        "{:#}",
        detections[0]
    );
    assert_healthy(&mut d, fds, 1);
}

#[test]
fn a_low_descriptor_limit_is_raised_and_sets_the_connection_limit() {
    let mut d = Deployment::start();
    d.stop();
    d.up_with_descriptors(1_024, 4_096);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(open_files[3..5], ["4096", "4096"], "{limits}");
    let log = strip_ansi(&d.up_log());
    assert!(
        log.lines()
            .any(|l| l.contains("descriptor limit raised") && l.contains("from=1024 to=4096")),
        "{log}"
    );
    // Two descriptors per connection (the client's and its upstream's) after 512 for files.
    assert!(
        log.lines().any(
            |l| l.contains("connection limit set by the descriptor limit")
                && l.contains("connections=1792")
        ),
        "{log}"
    );
    good_request(&d);
    // One source may hold half of the connections by default.
    assert!(
        log.lines().any(|l| l.contains("connection limits")
            && l.contains("connections=1792")
            && l.contains("per_source=896")),
        "{log}"
    );
}

/// One source (here 127.0.0.1) holding its share of connections, idle in their handshake,
/// cannot open another; other sources still get through, and the source's slots come back
/// when its connections close.
#[test]
fn one_source_cannot_hold_more_than_its_share_of_connections() {
    const SHARE: usize = 3;
    let mut d = Deployment::start();
    d.stop();
    let config = std::fs::read_to_string(d.config()).unwrap();
    let config = config.replacen(
        "[deployment]\n",
        &format!("[deployment]\nmax_connections_per_source = {SHARE}\n"),
        1,
    );
    write(&d.config(), &config);
    d.up();
    let fds = baseline(&d);

    let idle: Vec<TcpStream> = (0..SHARE)
        .map(|_| TcpStream::connect(d.addr()).unwrap())
        .collect();
    // The gateway has accepted them once it holds their descriptors.
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.open_fds() < fds + SHARE {
        assert!(
            Instant::now() < deadline,
            "the idle connections were not accepted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // One more from the same address is dropped at once: not even a ServerHello.
    let x = raw_exchange(&d, &client_hello(), false, PROMPT_CLOSE);
    assert!(x.closed && x.reply.is_empty(), "{x:?}");
    assert_eq!(
        counter(
            &d.metrics(),
            "tenet_gateway_connections_refused_total",
            &[("reason", "source_limit")]
        ),
        1
    );
    let log = strip_ansi(&d.up_log());
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("a source holds as many connections as one source may")
            && l.contains("limit=3")),
        "{log}"
    );

    // Another source is served meanwhile.
    let (code, body) = d.curl(Some("frontend"), &["--interface", "127.0.0.2"], "/products");
    assert_eq!(code, 200, "{body}");

    // Once the idle connections close, the source is served again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, _) = d.curl(Some("frontend"), &[], "/products");
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "127.0.0.1 was not served again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slow_clients_are_cut_off_by_the_handshake_and_header_timeouts() {
    let mut d = Deployment::start();
    let fds = baseline(&d);
    let before = d.metrics();
    let hello = client_hello();
    let head = format!("GET /products HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ");

    let (silent, half_hello, stalled, dribbling, no_request, no_stream) = std::thread::scope(|s| {
        let silent = s.spawn(|| stalled_handshake(&d, Vec::new()));
        let half_hello = s.spawn(|| stalled_handshake(&d, hello[..hello.len() / 2].to_vec()));
        let stalled = s.spawn(|| stalled_request(&d, head.clone(), String::new()));
        let dribbling = s.spawn(|| stalled_request(&d, head.clone(), "a".repeat(40)));
        // A handshake, then nothing: no request ever starts.
        let no_request = s.spawn(|| stalled_request(&d, String::new(), String::new()));
        let no_stream = s.spawn(|| idle_http2(&d));

        // Slow clients hold no one else up: a good request is answered at once meanwhile.
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        good_request(&d);
        assert!(started.elapsed() < Duration::from_secs(2));

        (
            silent.join().unwrap(),
            half_hello.join().unwrap(),
            stalled.join().unwrap(),
            dribbling.join().unwrap(),
            no_request.join().unwrap(),
            no_stream.join().unwrap(),
        )
    });

    // Closed by the server's timeouts: not before them, and not much after.
    let window =
        SERVER_TIMEOUT - Duration::from_millis(500)..SERVER_TIMEOUT + Duration::from_secs(2);
    for (what, x) in [("silent TCP", &silent), ("half a ClientHello", &half_hello)] {
        assert!(x.closed, "{what}: still open: {x:?}");
        assert!(
            window.contains(&x.elapsed),
            "{what}: closed after {:?}",
            x.elapsed
        );
        assert!(x.reply.is_empty() || x.reply[0] == 0x15, "{what}: {x:?}");
    }
    for (what, (elapsed, answer)) in [("stalled head", &stalled), ("dribbled head", &dribbling)] {
        assert!(
            window.contains(elapsed),
            "{what}: closed after {elapsed:?}: {answer:?}"
        );
        // No request reached the pipeline; at most a 408 comes back.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{what}: {answer:?}"
        );
    }

    // A connection without a request is closed after the same time, without an answer
    // (there is no request to answer), and counted; it is not a refusal.
    let (elapsed, answer) = &no_request;
    assert!(
        window.contains(elapsed),
        "no request: closed after {elapsed:?}: {answer:?}"
    );
    assert!(answer.is_empty(), "no request: {answer:?}");

    // The same over HTTP/2, where hyper has no idle timeout of its own: a GOAWAY, then the
    // close.
    let (frames, close) = &no_stream;
    assert!(
        frames.contains("GOAWAY"),
        "HTTP/2 without a stream: {frames}"
    );
    let seconds: f64 = close
        .strip_prefix("closed ")
        .unwrap_or_else(|| panic!("HTTP/2 without a stream: {close}"))
        .parse()
        .unwrap();
    assert!(
        window.contains(&Duration::from_secs_f64(seconds)),
        "HTTP/2 without a stream: closed after {seconds} s"
    );
    assert_eq!(
        counter(
            &d.metrics(),
            "tenet_gateway_connections_timed_out_total",
            &[("reason", "no_request")]
        ),
        2
    );

    for (what, x) in [("silent TCP", &silent), ("half a ClientHello", &half_hello)] {
        let event = refusal_of_port(&d, TLS, x.port, what);
        kind_of(&event, &["handshake_timeout"], what);
        assert_logged(&d, x.port, "handshake_timeout");
    }
    expect_refusals(
        &d,
        &before,
        &[tls("handshake_timeout", 2), http("header_timeout", 2)],
    );
    assert_healthy(&mut d, fds, 2);
}

/// The body idle limit the request body test configures (`[deployment]
/// request_body_idle_timeout`), short so that the test stays short.
const BODY_IDLE: Duration = Duration::from_secs(2);

/// A deployment whose gateway cuts off request bodies after [`BODY_IDLE`] without a byte.
fn deployment_with_body_limit() -> Deployment {
    let mut d = Deployment::start();
    d.stop();
    let config = std::fs::read_to_string(d.config()).unwrap();
    let config = config.replacen(
        "[deployment]\n",
        &format!(
            "[deployment]\nrequest_body_idle_timeout = \"{}s\"\n",
            BODY_IDLE.as_secs()
        ),
        1,
    );
    write(&d.config(), &config);
    d.up();
    d
}

/// Established TCP connections from the gateway to its upstream (seen from the gateway's
/// side: the remote port is the upstream's).
fn upstream_connections(d: &Deployment) -> usize {
    let remote = format!("0100007F:{:04X}", d.upstream_port);
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2) == Some(&remote.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// s_client as the frontend sends `head`, then each of `body` after `gap`, and keeps its side
/// open; returns how long until the gateway closed the connection (at most 15 s), and what it
/// answered.
fn slow_body(d: &Deployment, head: &str, body: &[u8], gap: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut child = s_client(d);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(head.as_bytes()).unwrap();
    stdin.flush().unwrap();
    for byte in body {
        std::thread::sleep(gap);
        if child.try_wait().unwrap().is_some() || stdin.write_all(&[*byte]).is_err() {
            break;
        }
        let _ = stdin.flush();
    }
    let out = wait_output(
        child,
        Duration::from_secs(15).saturating_sub(started.elapsed()),
    );
    drop(stdin);
    (
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `POST /upload` with a `Content-Length` of `length`.
fn upload_head(length: usize, extra: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: text/plain\r\n\
         Content-Length: {length}\r\n{extra}\r\n"
    )
}

/// The JSON body of an HTTP/1.1 answer.
fn answer_json(answer: &str) -> serde_json::Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

/// A client that announces a body and stops sending it (slowloris on the body) is cut off
/// after the idle limit: 408 and the connection closed, the upstream request cancelled, the
/// cut-off counted and recorded beside the request's decision. A client that sends its body
/// slowly, each gap shorter than the limit, is served.
#[test]
fn a_request_body_that_stops_arriving_is_cut_off() {
    let mut d = deployment_with_body_limit();
    let fds = settled_fds(&d);
    let before = d.metrics();
    assert_eq!(upstream_connections(&d), 0);

    // The head and 3 of its 1000 bytes, then nothing. The upstream holds the request, waiting
    // for the rest.
    let (elapsed, answer) = std::thread::scope(|s| {
        let stalled = s.spawn(|| slow_body(&d, &upload_head(1000, ""), b"abc", Duration::ZERO));
        std::thread::sleep(BODY_IDLE / 2);
        assert_eq!(
            upstream_connections(&d),
            1,
            "the upstream has the request while the body stalls"
        );
        stalled.join().unwrap()
    });
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body: {answer:?}\n{}",
        d.up_log()
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
    let refused = answer_json(&answer);
    assert_eq!(refused["reason"], "body_timeout", "{answer:?}");
    // Closed by the limit: not before it, and not much after (the handshake included).
    assert!(
        (BODY_IDLE..BODY_IDLE + Duration::from_secs(3)).contains(&elapsed),
        "a stalled body was cut off after {elapsed:?}"
    );

    // The upstream request is cancelled: its connection is closed, not kept for the pool.
    let deadline = Instant::now() + Duration::from_secs(2);
    while upstream_connections(&d) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        upstream_connections(&d),
        0,
        "the upstream request was not cancelled"
    );

    // The decision stays what it was (allowed, recorded before forwarding); the cut-off is a
    // refusal of the same request beside it, counted once.
    let request_id = refused["request_id"].as_str().unwrap().to_owned();
    let event = wait_for_refusal(&d, HTTP, "stalled body", |events| {
        events
            .iter()
            .find(|e| e["unmapped"]["request_id"] == request_id.as_str())
            .cloned()
    });
    assert_eq!(event["unmapped"]["kind"], "body_timeout", "{event:#}");
    assert_eq!(event["http_response"]["code"], 408, "{event:#}");
    let counted = counter(
        &d.metrics(),
        "tenet_gateway_rejections_total",
        &[("reason", "body_timeout")],
    );
    assert_eq!(counted, 1, "the refusal is counted like any other");
    let decisions: Vec<serde_json::Value> = d
        .events()
        .into_iter()
        .filter(|e| e["http_request"]["uid"] == request_id.as_str())
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0]["disposition"], "Allowed", "{decisions:#?}");
    let metrics = d.metrics();
    let timed_out = |m: &str| {
        counter(
            m,
            "tenet_gateway_connections_timed_out_total",
            &[("reason", "request_body")],
        )
    };
    assert_eq!(timed_out(&metrics) - timed_out(&before), 1, "{metrics}");
    let log = strip_ansi(&d.up_log());
    assert!(
        log.lines()
            .any(|l| l.contains("request body not received in time") && l.contains(&request_id)),
        "{log}"
    );

    // Slow but steady: four bytes, each after most of the limit. The limit is on the gap,
    // not on the whole body.
    let gap = BODY_IDLE * 3 / 5;
    let (elapsed, answer) = slow_body(&d, &upload_head(4, "Connection: close\r\n"), b"wxyz", gap);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a slow body: {answer:?}"
    );
    assert_eq!(answer_json(&answer)["body"], "wxyz", "{answer:?}");
    assert!(elapsed > BODY_IDLE * 2, "{elapsed:?}");
    assert_eq!(timed_out(&d.metrics()) - timed_out(&before), 1);

    // The same over HTTP/2 (tests/support/h2_slow_body_client.py): a stream with three bytes
    // of body, then nothing.
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/h2_slow_body_client.py"
        ))
        .args([HOST, &d.port.to_string(), "/upload"])
        .arg(d.path("frontend/svid.pem"))
        .arg(d.path("frontend/svid.key"))
        .arg(d.path("data/admin/bundle.pem"))
        .arg("15")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (when, body) = text.split_once('\n').unwrap_or((&text, ""));
    let seconds: f64 = when
        .strip_prefix("answered ")
        .unwrap_or_else(|| panic!("HTTP/2: {text}"))
        .parse()
        .unwrap();
    let refused: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(refused["reason"], "body_timeout", "HTTP/2: {body}");
    assert!(
        (BODY_IDLE..BODY_IDLE + Duration::from_secs(3)).contains(&Duration::from_secs_f64(seconds)),
        "HTTP/2: cut off after {seconds} s"
    );
    assert_eq!(timed_out(&d.metrics()) - timed_out(&before), 2);

    // An upstream that answers before reading the body (the echo upstream reads no chunked
    // body): the answer reaches the client, and the stalled body is still cut off after the
    // limit, the upstream request cancelled, and counted.
    let chunked = "POST /upload HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3\r\nabc\r\n"
        .replace("HOST", HOST);
    let (elapsed, answer) = slow_body(&d, &chunked, b"", Duration::ZERO);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answered early: {answer:?}"
    );
    assert!(
        (BODY_IDLE..BODY_IDLE + Duration::from_secs(3)).contains(&elapsed),
        "answered early: the connection ended after {elapsed:?}"
    );
    assert_eq!(timed_out(&d.metrics()) - timed_out(&before), 3);
    let deadline = Instant::now() + Duration::from_secs(2);
    while upstream_connections(&d) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(upstream_connections(&d), 0, "answered early: not cancelled");
    assert!(
        strip_ansi(&d.up_log()).contains("request body stalled after the upstream answered"),
        "{}",
        d.up_log()
    );

    // The four uploads were allowed; three never reached their end.
    assert_healthy(&mut d, fds, 4);
}

// ---------------------------------------------------------------------------------------------
// 5: bad client certificates
// ---------------------------------------------------------------------------------------------

/// A CA that signs test leaves: the deployment's own intermediate, or a foreign root.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    chain_pem: String,
}

impl TestCa {
    /// The deployment's intermediate, from `data/ca/`.
    fn deployment(d: &Deployment) -> Self {
        let ca = d.path("data/ca");
        let read = |name: &str| std::fs::read_to_string(ca.join(name)).unwrap();
        let cert = read(tenet_identity::INTERMEDIATE_CERT_FILE);
        let key = KeyPair::from_pem(&read(tenet_identity::INTERMEDIATE_KEY_FILE)).unwrap();
        Self {
            issuer: Issuer::from_ca_cert_pem(&cert, key).unwrap(),
            chain_pem: cert,
        }
    }

    /// A self-signed root of `trust_domain` that the deployment has never heard of.
    fn foreign(trust_domain: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{trust_domain} rogue root"));
        params.subject_alt_names = vec![san(&format!("spiffe://{trust_domain}"))];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(30);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            chain_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Sign `leaf` and write `<deployment>/<name>/svid.pem` (leaf, then the CA) and `svid.key`.
    fn issue(&self, d: &Deployment, name: &str, leaf: CertificateParams) {
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &self.issuer).unwrap();
        let dir = d.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir.join("svid.pem"),
            &format!("{}{}", cert.pem(), self.chain_pem),
        );
        write(&dir.join("svid.key"), &key.serialize_pem());
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn san(uri: &str) -> SanType {
    SanType::URI(uri.try_into().unwrap())
}

/// An X509-SVID profile like the CA's own: one URI SAN, not a CA, digitalSignature, both EKUs,
/// valid from an hour ago for a day.
fn svid_params(id: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![san(id)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    params
}

#[test]
fn bad_client_certificates_are_refused_at_the_handshake() {
    let mut d = Deployment::start();
    let fds = baseline(&d);
    let before = d.metrics();
    let ours = TestCa::deployment(&d);
    let now = OffsetDateTime::now_utc();
    // Well outside the deployment's 60 s clock skew.
    let day = time::Duration::days(1);

    // The control: a leaf built here like the CA builds them is accepted.
    ours.issue(&d, "control", svid_params(FRONTEND));
    let (code, body) = d.curl(Some("control"), &[], "/products");
    assert_eq!(
        code,
        200,
        "the hand-built control SVID: {body}\n{}",
        d.up_log()
    );

    let mut expired = svid_params(FRONTEND);
    expired.not_before = now - day * 2;
    expired.not_after = now - day;
    ours.issue(&d, "expired", expired);

    let mut not_yet = svid_params(FRONTEND);
    not_yet.not_before = now + day;
    not_yet.not_after = now + day * 2;
    ours.issue(&d, "not-yet-valid", not_yet);

    TestCa::foreign("other.org").issue(
        &d,
        "foreign-ca",
        svid_params("spiffe://other.org/ns/shop/sa/frontend"),
    );
    TestCa::foreign(TD).issue(&d, "rogue-ca", svid_params(FRONTEND));

    let mut leaf_ca = svid_params(FRONTEND);
    leaf_ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ours.issue(&d, "leaf-is-ca", leaf_ca);

    let mut two_ids = svid_params(FRONTEND);
    two_ids.subject_alt_names = vec![san(FRONTEND), san("spiffe://example.org/ns/shop/sa/admin")];
    ours.issue(&d, "two-uri-sans", two_ids);

    ours.issue(
        &d,
        "other-domain-id",
        svid_params("spiffe://other.org/ns/shop/sa/frontend"),
    );

    let mut server_only = svid_params(FRONTEND);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    ours.issue(&d, "no-client-auth", server_only);

    let cases = [
        ("expired", "expired_certificate"),
        ("not-yet-valid", "certificate_not_yet_valid"),
        ("foreign-ca", "unknown_trust_domain"),
        ("rogue-ca", "untrusted_chain"),
        ("leaf-is-ca", "leaf_is_ca"),
        ("two-uri-sans", "multiple_uri_sans"),
        ("other-domain-id", "unknown_trust_domain"),
        ("no-client-auth", "wrong_key_usage"),
    ];
    let mut refused = Vec::new();
    for (cred, kind) in cases {
        let seen = refusals(&d, TLS).len();
        assert_curl_refused(&curl_as(&d, Some(cred), HOST), cred);
        let event = next_refusal(&d, TLS, seen, cred);
        refused.push((TLS, kind_of(&event, &[kind], cred)));
        // The event's detail is the verifier's message, not a debug dump.
        let detail = event["status_detail"].as_str().unwrap();
        assert!(!detail.contains("OtherError"), "{cred}: {detail}");
    }
    let seen = refusals(&d, TLS).len();
    assert_curl_refused(&curl_as(&d, None, HOST), "no certificate");
    let event = next_refusal(&d, TLS, seen, "no certificate");
    refused.push((
        TLS,
        kind_of(&event, &["no_client_certificate"], "no certificate"),
    ));

    expect_refusals(&d, &before, &grouped(&refused));
    assert_healthy(&mut d, fds, 2);
}

/// Connections with nothing to answer do not hold the gateway's shutdown for the whole drain
/// (5 s): an HTTP/2 connection that completed its TLS handshake and sent nothing more (not
/// even its preface), and an HTTP/1.1 connection whose upload was denied and then stopped
/// coming (the gateway reads a denied body to its end, but not past its stop).
#[test]
fn stopping_does_not_wait_for_silent_connections_or_unread_bodies() {
    use std::io::{BufRead, BufReader};

    let mut d = Deployment::start();
    let mut silent = s_client_speaking(&d, "h2");
    let mut uploader = s_client(&d);
    let head =
        format!("POST /admin/users HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\nabcd");
    uploader
        .stdin
        .as_mut()
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    let mut answer = BufReader::new(uploader.stdout.take().unwrap());
    let mut status = String::new();
    answer.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    // Time for the silent handshake (milliseconds on the loopback).
    std::thread::sleep(Duration::from_secs(1));
    assert!(silent.try_wait().unwrap().is_none(), "s_client ended early");
    let started = Instant::now();
    let exit = d.stop();
    let took = started.elapsed();
    for child in [&mut silent, &mut uploader] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(exit.success(), "{exit:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

/// An HTTP/2 client with a request in flight when the gateway stops gets its whole answer,
/// though it never answers the PING hyper sends before its last GOAWAY
/// (tests/support/h2_stop_client.py): the connection closes gracefully, within the drain.
#[test]
fn stopping_lets_a_request_in_flight_finish() {
    use std::io::{BufRead, BufReader};

    let mut d = Deployment::start();
    let mut client = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/h2_stop_client.py"
        ))
        .args([HOST, &d.port.to_string(), "/products?delay=1.5"])
        .arg(d.path("frontend/svid.pem"))
        .arg(d.path("frontend/svid.key"))
        .arg(d.path("data/admin/bundle.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "sent", "{line}");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = d.stop();
    let took = started.elapsed();
    let _ = client.kill();
    let _ = client.wait();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.contains("status 200") && rest.contains("ended"),
        "{rest}\n{}",
        d.up_log()
    );
    assert!(
        took < Duration::from_secs(7),
        "shutdown took {took:?}: {rest}"
    );
}
