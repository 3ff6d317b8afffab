//! The `tenet` command: a thin CLI over Tenet's crates.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// `println!` for command output: a closed stdout (`tenet bundle | head -c1`) ends the
/// command quietly instead of panicking; any other write error is reported.
macro_rules! say {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` counterpart of [`say!`].
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

mod admin;
mod assess;
mod commands;
mod config;
mod contain;
mod demo;
mod descriptors;
mod detect;
mod drill;
mod files;
mod hunt;
mod init;
mod ledger;
mod log;
mod metrics;
mod people;
mod score;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

// Cedar's evaluator and the proxy path allocate many small objects per request; mimalloc
// serves them faster than the system allocator (see BENCHMARKS.md). The `system-allocator`
// feature leaves it out, so that heap profilers that hook malloc can see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tenet: zero-trust access in one binary.
#[derive(Debug, Parser)]
#[command(name = "tenet", version, about)]
struct Cli {
    /// Deployment configuration (default: $TENET_CONFIG, then ./tenet.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a deployment: tenet.toml, policies/, a CA and an admin credential.
    Init {
        /// Directory to create the deployment in.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// SPIFFE trust domain of the deployment.
        #[arg(long, default_value = "example.org")]
        trust_domain: String,
        /// Replace an existing deployment (regenerates the CA).
        #[arg(long)]
        force: bool,
    },
    /// Run the gateway listeners, admin API and policy watcher.
    Up,
    /// The whole loop on a throwaway deployment, narrated.
    Demo {
        /// Keep the throwaway deployment directory and print its path.
        #[arg(long)]
        keep: bool,
    },
    /// Issue SVIDs from the deployment CA.
    Svid {
        #[command(subcommand)]
        kind: SvidCommand,
    },
    /// Print the trust bundle.
    Bundle {
        #[arg(long, value_enum, default_value_t = BundleFormat::Pem)]
        format: BundleFormat,
    },
    /// Validate, explain and reload policies.
    Policy {
        #[command(subcommand)]
        action: PolicyCommand,
    },
    /// Read, verify, prove and export the event ledger.
    Log {
        #[command(subcommand)]
        action: LogCommand,
    },
    /// Audit IAM policies, Kubernetes manifests, security groups, Terraform and PostgreSQL
    /// grants for least privilege and segmentation.
    ///
    /// Exit status: 0 done, 1 a finding at or above --fail-on, 2 an input named here could not
    /// be assessed.
    Assess {
        /// Files, folders (read recursively) and postgres:// URLs.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// text, json or sarif (SARIF 2.1.0).
        #[arg(long, default_value = "text")]
        format: String,
        /// Exit 1 when a finding is at least this severe (info, low, medium, high, critical).
        #[arg(long, value_name = "SEVERITY")]
        fail_on: Option<String>,
        /// Also list the connections the Kubernetes NetworkPolicies allow between workloads.
        #[arg(long)]
        reach: bool,
        /// Write the report to FILE instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Decide IAM time conditions (aws:CurrentTime, aws:EpochTime, aws:TokenIssueTime) at
        /// this instant instead of now, for reproducible runs: RFC 3339
        /// (2025-06-01T00:00:00Z), a date (2025-06-01) or seconds since the epoch.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Generate default-deny Kubernetes NetworkPolicies for declared flows.
    Segment {
        #[command(subcommand)]
        action: SegmentCommand,
    },
    /// Cut off a workload identity (every request from its SPIFFE ID is refused, whatever
    /// certificate it presents) or one certificate serial, on the very next request.
    Revoke {
        /// The SPIFFE ID to revoke.
        spiffe_id: Option<String>,
        /// Revoke one certificate by serial (hex) instead.
        #[arg(long, value_name = "HEX", conflicts_with = "spiffe_id")]
        serial: Option<String>,
        /// End by itself after this long (e.g. 30m, 24h); default: until `tenet release`.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why (recorded in the ledger).
        #[arg(long, default_value = "revoked by an operator")]
        reason: String,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Quarantine a service: refuse requests to it (inbound), from its identities (outbound),
    /// or both.
    Quarantine {
        /// The service, as named in the routes.
        service: String,
        /// inbound, outbound or both.
        #[arg(long, default_value = "both")]
        direction: String,
        /// The SPIFFE IDs the service calls others with (default: its routes'
        /// upstream_spiffe_id); repeatable.
        #[arg(long = "identity", value_name = "SPIFFE_ID")]
        identities: Vec<String>,
        /// End by itself after this long; default: until `tenet release`.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why (recorded in the ledger).
        #[arg(long, default_value = "quarantined by an operator")]
        reason: String,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// End containments: by action id, SPIFFE ID, serial or service name.
    Release {
        selector: String,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Devices: enrolment tokens, enrolment and posture reports (the agent side), MDM imports.
    Device {
        #[command(subcommand)]
        action: crate::people::DeviceCommand,
    },
    /// People's sessions: list and revoke.
    Session {
        #[command(subcommand)]
        action: crate::people::SessionCommand,
    },
    /// List the containments in force.
    Containment {
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// What a principal can reach under the current policy and routes: directly, and through
    /// the services it can call acting with their own identities.
    BlastRadius {
        /// The SPIFFE ID (e.g. a workload you suspect is compromised).
        principal: String,
        /// text (a tree), json or dot (Graphviz).
        #[arg(long, default_value = "text")]
        format: String,
        /// Follow service identities at most this many hops.
        #[arg(long, default_value_t = 8)]
        depth: usize,
        /// Source address the requests are assumed to come from.
        #[arg(long, default_value = "127.0.0.1")]
        source_ip: String,
    },
    /// Run Sigma rules offline over log files: CloudTrail ({"Records": [...]}, JSON lines,
    /// gzip), Kubernetes audit logs, Okta System Log and Tenet's own ledger exports.
    ///
    /// Exit status: 0 done (with or without hits), 2 a file named here could not be read.
    Hunt {
        /// A Sigma rule file or folder (repeatable; SigmaHQ folders load as they are).
        #[arg(long = "rules", value_name = "PATH", required = true)]
        rules: Vec<PathBuf>,
        /// Log files or folders; `-` reads standard input (e.g. `tenet log export | tenet
        /// hunt --rules r -`).
        #[arg(required = true, value_name = "FILE")]
        inputs: Vec<PathBuf>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// A breach exercise against the running deployment with real requests: reports time to
    /// detect, time to contain and what was reachable before containment, and records the
    /// report in the ledger. Exit 0 when the drill was detected (and, where a playbook should
    /// act, contained); 1 otherwise; 130 or 143 when interrupted by SIGINT or SIGTERM (the
    /// drill's policy file is removed first).
    Drill {
        /// lateral-movement, credential-stuffing or privilege-escalation.
        scenario: String,
        /// The workload whose stolen SVID the drill uses (required for lateral-movement; it is
        /// cut off while the drill's containment lasts, then released).
        #[arg(long = "as", value_name = "SPIFFE_ID")]
        identity: Option<String>,
        /// How long to wait for detection and containment.
        #[arg(long, default_value = "30s")]
        timeout: String,
        /// Keep the containment the drill caused instead of releasing it.
        #[arg(long)]
        keep: bool,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Zero-trust maturity (CISA ZTMM v2) from this deployment and saved assessments, with
    /// the evidence for each stage and the next roadmap steps.
    Score {
        /// A report saved with `tenet assess --format json` (repeatable).
        #[arg(long = "assessment", value_name = "FILE")]
        assessments: Vec<PathBuf>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
enum SegmentCommand {
    /// Default deny per namespace plus exactly the declared flows (ingress on the target,
    /// egress on the source).
    Generate {
        /// YAML: `flows: [{from: ns/workload, to: ns/workload, port: 8080, protocol: TCP}]`,
        /// optionally `dns: true` to allow DNS to kube-dns.
        #[arg(long, value_name = "FILE")]
        flows: PathBuf,
        /// The manifests of the workloads (files or folders of .yaml/.yml/.json).
        #[arg(required = true, value_name = "MANIFEST")]
        manifests: Vec<PathBuf>,
        /// Write the policies to FILE instead of standard output.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum SvidCommand {
    /// An X.509-SVID: certificate chain, key and bundle as PEM.
    X509 {
        /// The SPIFFE ID, e.g. spiffe://example.org/ns/shop/sa/frontend.
        id: String,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Directory to write svid.pem, svid.key and bundle.pem into (default: print PEM).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Extra DNS SAN (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Allow an ID under /tenet/ (Tenet's own components, e.g. to renew the admin
        /// credential spiffe://TD/tenet/admin).
        #[arg(long)]
        allow_reserved: bool,
    },
    /// A JWT-SVID (ES256).
    Jwt {
        /// The SPIFFE ID.
        id: String,
        /// Audience (repeatable).
        #[arg(long, required = true)]
        audience: Vec<String>,
        /// Lifetime.
        #[arg(long, default_value = "5m")]
        ttl: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BundleFormat {
    Pem,
    Jwks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate the policies against the Tenet schema.
    Check {
        /// Policy directory (default: the deployment's).
        dir: Option<PathBuf>,
    },
    /// One decision with the policies that determined it (what-if).
    Explain {
        /// The caller: a SPIFFE ID, "anonymous", or a person as user:PROVIDER:SUBJECT.
        #[arg(long)]
        principal: String,
        /// A person's group (repeat for several).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// A person's verified email.
        #[arg(long)]
        email: Option<String>,
        /// A factor used in the person's session: oidc, webauthn, totp, recovery, bearer
        /// (repeat; webauthn makes the session phishing-resistant).
        #[arg(long = "factor", value_name = "FACTOR")]
        factors: Vec<String>,
        /// The webauthn sign-in verified the person with a PIN or biometric
        /// (context.session.user_verified; needs --factor webauthn).
        #[arg(long)]
        user_verified: bool,
        /// The caller's device is enrolled and compliant (posture one minute old).
        #[arg(long)]
        device_compliant: bool,
        /// The caller's risk score, 0-100 (context.risk).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        risk: u8,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        action: String,
        /// Route name (its host and service come from tenet.toml unless given).
        #[arg(long)]
        route: String,
        /// Service of the route.
        #[arg(long)]
        service: Option<String>,
        /// Host.
        #[arg(long)]
        host: Option<String>,
        /// Request path (normalised as the gateway would).
        #[arg(long, default_value = "/")]
        path: String,
        /// Source address.
        #[arg(long, default_value = "127.0.0.1")]
        source_ip: std::net::IpAddr,
        /// Policy directory (default: the deployment's).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Ask the running deployment to reload its policies now.
    Reload,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Recompute the ledger's tree and check every checkpoint's signature and consistency.
    /// Exit 0 when verified, 2 when intact but no checkpoint vouches for completeness,
    /// 3 when tampering was found, 1 when the key, the ledger or a --checkpoint file cannot
    /// be used.
    Verify {
        /// Ledger directory (default: the deployment's data/ledger).
        #[arg(long, value_name = "DIR")]
        ledger: Option<PathBuf>,
        /// Verifier key (default: the deployment's data/ledger.vkey). For an audit, give the
        /// key you obtained out of band: whoever can rewrite the data directory can also
        /// replace the key stored there.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// A signed checkpoint kept outside the ledger (by a witness); repeatable. A rolled
        /// back or rewritten log contradicts it. A file that is not a checkpoint signed by
        /// the key is refused.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Inclusion proof of entry INDEX in the newest checkpoint (JSON, with the checkpoint
    /// and the entry).
    Prove {
        /// Entry index (0-based, as `tenet log tail --format text` shows it).
        index: u64,
        /// Prove against the stored checkpoint of this many entries instead.
        #[arg(long)]
        size: Option<u64>,
    },
    /// Consistency proof that the log of NEW entries extends the log of OLD entries (JSON).
    Consistency {
        /// The older tree size.
        old: u64,
        /// The newer tree size (default: the newest checkpoint's).
        new: Option<u64>,
    },
    /// The event stream as JSON lines (OCSF); --format text for one-line summaries.
    Tail {
        /// Keep reading as events arrive.
        #[arg(long)]
        follow: bool,
        /// Start at entry N (0-based); past the ledger's end is refused, at the end prints
        /// nothing (with --follow, waits for the next entry).
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, value_enum, ignore_case = true, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
    },
    /// Write the ledger's events to stdout: `ocsf` is the stored OCSF events, one per line,
    /// byte for byte; `jsonl` wraps each as {"index", "leaf_hash", "event"} for matching
    /// with proofs.
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Ocsf)]
        format: ExportFormat,
        /// First entry (0-based); past the ledger's end is refused.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop before this entry (default: the end); before --from is refused.
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Ocsf,
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        // h2 warns once per connection it ends for the client's misbehaviour; the gateway
        // logs (and records) each such connection itself.
        Command::Up => "info,h2=error",
        Command::Demo { .. } => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only for a person at a terminal: logs written to files stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    // On one CPU (a container's allotment, or `taskset`) the work-stealing scheduler buys
    // nothing and costs its cross-thread bookkeeping on every wake-up.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
