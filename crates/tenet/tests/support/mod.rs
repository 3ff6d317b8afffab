//! A real deployment for the integration tests: `tenet init`, a Python upstream, `tenet up`
//! as a child process, and helpers to drive curl and openssl against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod idp;

pub const TD: &str = "example.org";
pub const HOST: &str = "catalog.example.org";
pub const FRONTEND: &str = "spiffe://example.org/ns/shop/sa/frontend";

pub fn tenet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenet"));
    c.env_remove("TENET_CONFIG").env("RUST_LOG", "info");
    c
}

/// A port for a test server, from below the kernel's ephemeral range (32768 and up), so that
/// the many outgoing connections of parallel tests cannot take it between this check and the
/// server's bind. Each call in a process gets a different port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(LOW + offset).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on 127.0.0.1:{port}");
}

/// Wait for a child server's port; if the child exits first, fail with its log.
/// The child must also have logged the address (`tenet up` logs each listener's and the admin
/// API's once bound): a port that answers while the child has not bound it belongs to another
/// process, and the child, failing to bind, is about to exit.
pub fn wait_for_child_port(child: &mut Child, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = format!("127.0.0.1:{port}");
    while Instant::now() < deadline {
        let logged = || std::fs::read_to_string(log).is_ok_and(|l| l.contains(&addr));
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && logged() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server meant for 127.0.0.1:{port} exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "nothing listening on 127.0.0.1:{port}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Python server script that prints its port on its first line of output.
pub fn start_python_server(args: &[&str]) -> (KillOnDrop, u16) {
    let mut child = Command::new("python3")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed for the interop tests (.ci/setup installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = KillOnDrop(child);
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{args:?} printed no port: {line:?}"));
    (child, port)
}

/// The Python echo upstream.
pub fn start_upstream() -> (KillOnDrop, u16) {
    start_python_server(&[concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/echo_upstream.py"
    )])
}

pub const POLICIES: &str = r#"
@id("frontend-reads-products")
permit (
    principal == Tenet::Workload::"spiffe://example.org/ns/shop/sa/frontend",
    action in Tenet::Action::"read",
    resource in Tenet::Service::"catalog"
) when { resource.path like "/products*" || resource.path like "/public/*" };

@id("frontend-posts-uploads")
permit (
    principal == Tenet::Workload::"spiffe://example.org/ns/shop/sa/frontend",
    action == Tenet::Action::"POST",
    resource in Tenet::Service::"catalog"
) when { resource.path == "/upload" };

@id("no-admin")
forbid (principal, action, resource) when { resource.path like "/admin*" };
"#;

/// A running deployment.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    gateway: Option<KillOnDrop>,
    _upstream: KillOnDrop,
}

impl Deployment {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        run_ok(
            tenet()
                .arg("init")
                .arg(dir.path())
                .args(["--trust-domain", TD]),
        );
        let (upstream, upstream_port) = start_upstream();
        let port = free_port();
        let admin_port = free_port();
        std::fs::write(
            dir.path().join("tenet.toml"),
            format!(
                r#"[deployment]
trust_domain = "{TD}"
[admin]
listen = "127.0.0.1:{admin_port}"
[[listeners]]
name = "main"
listen = "127.0.0.1:{port}"
[[routes]]
name = "catalog"
service = "catalog"
listener = "main"
host = "{HOST}"
upstream = "http://127.0.0.1:{upstream_port}"
"#
            ),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("policies/example.cedar")).unwrap();
        std::fs::write(dir.path().join("policies/test.cedar"), POLICIES).unwrap();
        let mut d = Self {
            dir,
            port,
            admin_port,
            upstream_port,
            gateway: None,
            _upstream: upstream,
        };
        d.svid(FRONTEND, "frontend");
        d.up();
        d
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("tenet.toml")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn up(&mut self) {
        self.up_with_env(&[]);
    }

    /// `tenet up` with extra environment variables.
    pub fn up_with_env(&mut self, env: &[(&str, &str)]) {
        let mut up = tenet();
        up.envs(env.iter().copied());
        self.up_as(up);
    }

    /// `tenet up` started with a descriptor limit of `soft` (and a hard one of `hard`).
    pub fn up_with_descriptors(&mut self, soft: u64, hard: u64) {
        let mut up = Command::new("prlimit");
        up.arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_tenet"))
            .env_remove("TENET_CONFIG")
            .env("RUST_LOG", "info");
        self.up_as(up);
    }

    /// `up`, a command that runs `tenet`, with the `up` command's arguments added.
    fn up_as(&mut self, mut up: Command) {
        let log_path = self.path("up.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = up
            .arg("--config")
            .arg(self.config())
            .arg("up")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_child_port(&mut child, self.port, &log_path);
        wait_for_child_port(&mut child, self.admin_port, &log_path);
        self.gateway = Some(KillOnDrop(child));
    }

    /// Issue an X.509-SVID into `<dir>/<name>/`.
    pub fn svid(&self, id: &str, name: &str) -> PathBuf {
        let out = self.path(name);
        run_ok(
            tenet()
                .arg("--config")
                .arg(self.config())
                .args(["svid", "x509", id, "--out"])
                .arg(&out),
        );
        out
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.port)
    }

    /// curl with the named credential (or none), returning (status, body).
    pub fn curl(&self, cred: Option<&str>, extra: &[&str], path: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "10",
            "--path-as-is",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", self.port))
        .arg("--cacert")
        .arg(self.path("data/admin/bundle.pem"));
        if let Some(cred) = cred {
            cmd.arg("--cert")
                .arg(self.path(&format!("{cred}/svid.pem")));
            cmd.arg("--key").arg(self.path(&format!("{cred}/svid.key")));
        }
        cmd.args(extra).arg(self.url(path));
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Raw bytes over TLS with openssl s_client (so nothing normalises them on the way).
    pub fn s_client_raw(&self, cred: &str, request: &[u8]) -> String {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-no_ign_eof", "-connect"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-servername", HOST])
            .arg("-cert")
            .arg(self.path(&format!("{cred}/svid.pem")))
            // Send the intermediate too: SPIFFE peers present their whole chain.
            .arg("-cert_chain")
            .arg(self.path(&format!("{cred}/svid.pem")))
            .arg("-key")
            .arg(self.path(&format!("{cred}/svid.key")))
            .arg("-CAfile")
            .arg(self.path("data/admin/bundle.pem"))
            .args(["-verify_return_error", "-alpn", "http/1.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.as_mut().unwrap().write_all(request).unwrap();
        let out = wait_output(child, Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        let out = run_ok(
            tenet()
                .arg("--config")
                .arg(self.config())
                .args(["log", "tail"]),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn up_log(&self) -> String {
        std::fs::read_to_string(self.path("up.log")).unwrap_or_default()
    }

    /// The pid of the running `tenet up`.
    pub fn pid(&self) -> u32 {
        self.gateway
            .as_ref()
            .expect("tenet up is not running")
            .0
            .id()
    }

    /// True while `tenet up` has not exited (a panic that kills it shows up here).
    pub fn gateway_alive(&mut self) -> bool {
        self.gateway
            .as_mut()
            .is_some_and(|g| g.0.try_wait().unwrap().is_none())
    }

    /// How many file descriptors `tenet up` holds open (sockets included).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// SIGKILL `tenet up` and reap it: no shutdown code runs.
    pub fn kill9(&mut self) {
        let mut gateway = self.gateway.take().expect("tenet up is not running");
        gateway.0.kill().unwrap();
        gateway.0.wait().unwrap();
    }

    /// SIGTERM `tenet up` and wait (up to 20 s) for its orderly exit; returns its status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut gateway = self.gateway.take().expect("tenet up is not running");
        run_ok(Command::new("kill").args(["-TERM", &gateway.0.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = gateway.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tenet up ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tenet log ARGS` against this deployment (any exit status).
    pub fn log(&self, args: &[&str]) -> Output {
        tenet()
            .arg("--config")
            .arg(self.config())
            .arg("log")
            .args(args)
            .output()
            .unwrap()
    }

    /// `GET path` on the admin API with the admin credential: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        self.admin_get_as("data/admin", path)
    }

    /// `GET path` on the admin API with the credential in `cred` (a folder holding
    /// `svid.pem` and `svid.key`): (status, body).
    pub fn admin_get_as(&self, cred: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg("--resolve")
            .arg(format!("{HOST}:{}:127.0.0.1", self.admin_port))
            .arg("--cacert")
            .arg(self.path("data/admin/bundle.pem"))
            .arg("--cert")
            .arg(self.path(&format!("{cred}/svid.pem")))
            .arg("--key")
            .arg(self.path(&format!("{cred}/svid.key")))
            .arg(format!("https://{HOST}:{}{path}", self.admin_port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The admin API's Prometheus text: `GET /metrics` with the admin credential. The admin
    /// API serves the gateway SVID, whose DNS SANs are the route hosts, so curl verifies it
    /// as `HOST`.
    pub fn metrics(&self) -> String {
        let out = run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "10"])
                .arg("--resolve")
                .arg(format!("{HOST}:{}:127.0.0.1", self.admin_port))
                .arg("--cacert")
                .arg(self.path("data/admin/bundle.pem"))
                .arg("--cert")
                .arg(self.path("data/admin/svid.pem"))
                .arg("--key")
                .arg(self.path("data/admin/svid.key"))
                .arg(format!("https://{HOST}:{}/metrics", self.admin_port)),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The sum of the samples of `name` whose labels include all of `labels`, in Prometheus text
/// (0 when no such series exists yet).
pub fn counter(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.trim().parse::<f64>().unwrap() as u64)
        .sum()
}

/// `text` without ANSI colour sequences (the tracing output in up.log may carry them).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Wait for a child with a deadline, killing it if it overruns (s_client keeps reading).
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
