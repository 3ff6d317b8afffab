//! Dispatch of the CLI's commands, and the small ones that need no module of their own.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tenet_event::{Event, JsonlSink, JsonlSinkOptions};
use tenet_gateway::{Clock, SystemClock};
use tenet_identity::{CertificateAuthority, SpiffeId};
use tenet_policy::{
    AccessRequest, Decision, PolicySnapshot, Principal, RequestContext, RouteResource, TlsFacts,
};
use time::OffsetDateTime;

use crate::config::{self, Config, parse_duration};
use crate::{BundleFormat, Cli, Command, LogCommand, OutputFormat, PolicyCommand, SvidCommand};

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let explicit = cli.config.as_deref();
    match cli.command {
        Command::Init {
            dir,
            trust_domain,
            force,
        } => {
            crate::init::run(&dir, &trust_domain, force, OffsetDateTime::now_utc())?;
            println!(
                "created a deployment for trust domain {trust_domain} in {}",
                dir.display()
            );
            println!("  config:           {}", dir.join("tenet.toml").display());
            println!("  policies:         {}", dir.join("policies").display());
            println!("  admin credential: {}", dir.join("data/admin").display());
            println!("next: edit the routes in tenet.toml, then `tenet up`");
            Ok(ExitCode::SUCCESS)
        }
        Command::Up => up(explicit).await,
        Command::Demo { keep } => crate::demo::run(keep).await,
        Command::Svid { kind } => svid(&config::load(explicit)?, kind).await,
        Command::Bundle { format } => {
            let config = config::load(explicit)?;
            let ca = load_ca(&config)?;
            match format {
                BundleFormat::Pem => print!("{}", ca.bundle().to_pem()),
                BundleFormat::Jwks => println!("{}", ca.bundle().to_jwks()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { action } => policy(explicit, action).await,
        Command::Log {
            action:
                LogCommand::Tail {
                    follow,
                    from,
                    format,
                },
        } => tail(&config::load(explicit)?, follow, from, format).await,
    }
}

async fn up(explicit: Option<&Path>) -> Result<ExitCode> {
    let config = config::load(explicit)?;
    let running = crate::up::start(&config).await?;
    wait_for_signal().await;
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

pub fn load_ca(config: &Config) -> Result<CertificateAuthority> {
    CertificateAuthority::load(&config.ca_dir())
        .with_context(|| format!("loading the CA from {}", config.ca_dir().display()))
}

fn parse_id(text: &str) -> Result<SpiffeId> {
    SpiffeId::parse(text).map_err(|e| anyhow!("SPIFFE ID {text:?}: {e}"))
}

async fn svid(config: &Config, kind: SvidCommand) -> Result<ExitCode> {
    let ca = load_ca(config)?;
    let clock = SystemClock;
    let sink = JsonlSink::open(JsonlSinkOptions::new(config.events_path()))?;
    match kind {
        SvidCommand::X509 { id, ttl, out, dns } => {
            let id = parse_id(&id)?;
            if id.trust_domain() != &config.trust_domain {
                bail!(
                    "{id} is not in this deployment's trust domain {}",
                    config.trust_domain
                );
            }
            let ttl = parse_duration(&ttl).context("--ttl")?;
            let svid = ca.issue_x509_svid_with_dns(&id, &dns, ttl, clock.now())?;
            crate::up::record(&sink, &clock, crate::up::svid_event(&svid, "cli")).await?;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    svid.write_files(&dir, &ca.bundle())?;
                    println!(
                        "wrote {0}/svid.pem, {0}/svid.key and {0}/bundle.pem for {id} (serial {1}, \
                         expires {2})",
                        dir.display(),
                        svid.serial_hex(),
                        svid.not_after()
                    );
                }
                None => print!("{}{}", svid.chain_pem(), svid.key_pem()),
            }
        }
        SvidCommand::Jwt { id, audience, ttl } => {
            let id = parse_id(&id)?;
            if id.trust_domain() != &config.trust_domain {
                bail!(
                    "{id} is not in this deployment's trust domain {}",
                    config.trust_domain
                );
            }
            let ttl = parse_duration(&ttl).context("--ttl")?;
            let token = ca.issue_jwt_svid(&id, &audience, ttl, clock.now())?;
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn policy(explicit: Option<&Path>, action: PolicyCommand) -> Result<ExitCode> {
    match action {
        PolicyCommand::Check { dir } => {
            let dir = match dir {
                Some(d) => d,
                None => config::load(explicit)?.policy_dir,
            };
            match PolicySnapshot::load_dir(&dir) {
                Ok(s) => {
                    println!(
                        "{}: {} policies valid against the Tenet schema (hash {})",
                        dir.display(),
                        s.policy_count(),
                        s.hash()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: policies rejected:\n{e}", dir.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyCommand::Explain {
            principal,
            action,
            route,
            service,
            host,
            path,
            source_ip,
            dir,
            format,
        } => {
            let config = if service.is_none() || host.is_none() || dir.is_none() {
                Some(config::load(explicit)?)
            } else {
                None
            };
            let spec = config
                .as_ref()
                .and_then(|c| c.routes.iter().find(|r| r.name == route));
            let service = service
                .or_else(|| spec.map(|r| r.service.clone()))
                .ok_or_else(|| anyhow!("route {route:?} is not in tenet.toml; give --service"))?;
            let host = host
                .or_else(|| spec.map(|r| r.host.clone()))
                .ok_or_else(|| anyhow!("route {route:?} is not in tenet.toml; give --host"))?;
            let dir = dir
                .or_else(|| config.as_ref().map(|c| c.policy_dir.clone()))
                .ok_or_else(|| anyhow!("no policy directory"))?;
            let snapshot = PolicySnapshot::load_dir(&dir)
                .map_err(|e| anyhow!("policies in {}: {e}", dir.display()))?;
            let uri: http::Uri = path
                .parse()
                .map_err(|e| anyhow!("--path {path:?} is not a request path: {e}"))?;
            let method: http::Method = action
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| anyhow!("--action {action:?} is not an HTTP method"))?;
            let target = tenet_request::normalize_target(&method, &uri)
                .map_err(|e| anyhow!("--path {path:?} would be rejected by the gateway: {e}"))?;
            let principal = if principal == "anonymous" {
                Principal::Anonymous
            } else {
                let id = parse_id(&principal)?;
                Principal::Workload {
                    spiffe_id: id.to_string(),
                    trust_domain: id.trust_domain().to_string(),
                    path: id.path().to_string(),
                }
            };
            let request = AccessRequest {
                principal,
                action: method.to_string(),
                resource: RouteResource {
                    route: route.clone(),
                    service,
                    host,
                    path: target.as_str().to_string(),
                },
                context: RequestContext {
                    source_ip,
                    tls: TlsFacts {
                        version: "TLSv1.3".into(),
                        sni: String::new(),
                        alpn: "h2".into(),
                        mtls: true,
                        client_serial: String::new(),
                    },
                    unix_time: OffsetDateTime::now_utc().unix_timestamp(),
                    protocol: "HTTP/1.1".into(),
                    risk: 0,
                },
            };
            let decision = snapshot.authorize(&request);
            print_decision(&decision, target.as_str(), format);
            Ok(if decision.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        PolicyCommand::Reload => {
            let config = config::load(explicit)?;
            let (status, body) =
                crate::admin::call(&config, http::Method::POST, "/v1/policy/reload").await?;
            println!("{body}");
            Ok(if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn print_decision(decision: &Decision, path: &str, format: OutputFormat) {
    let (word, errors) = match decision {
        Decision::Allow { .. } => ("allow", Vec::new()),
        Decision::Deny { errors, .. } => ("deny", errors.clone()),
    };
    if format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({
                "decision": word,
                "policies": decision.reasons(),
                "errors": errors,
                "path": path,
            })
        );
        return;
    }
    println!("decision: {word}");
    println!("path as decided: {path}");
    if decision.reasons().is_empty() {
        println!("determined by: no policy matched (default deny)");
    } else {
        println!("determined by: {}", decision.reasons().join(", "));
    }
    for e in errors {
        println!("error: {e}");
    }
}

async fn tail(config: &Config, follow: bool, from: u64, format: OutputFormat) -> Result<ExitCode> {
    let path = config.events_path();
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {
            // Wait for the first event.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(f) = std::fs::File::open(&path) {
                    break f;
                }
            }
        }
        Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
    };
    let mut reader = BufReader::new(file);
    let mut index: u64 = 0;
    let mut line = String::new();
    let stdout = std::io::stdout();
    loop {
        line.clear();
        let pos = reader.stream_position()?;
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 || !line.ends_with('\n') {
            // End of file, or a record still being written.
            if !follow {
                break;
            }
            reader.seek(SeekFrom::Start(pos))?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let event: Event = serde_json::from_str(line.trim_end())
            .with_context(|| format!("{}: entry {index} is not a Tenet event", path.display()))?;
        if index >= from {
            let mut out = stdout.lock();
            let written = match format {
                OutputFormat::Json => out
                    .write_all(&event.to_canonical_json())
                    .and_then(|()| out.write_all(b"\n")),
                OutputFormat::Text => {
                    writeln!(out, "{index:>6} {} {}", event.time, event.summary())
                }
            };
            if written.and_then(|()| out.flush()).is_err() {
                // A closed pipe (`| head`) ends the command quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        index += 1;
    }
    Ok(ExitCode::SUCCESS)
}
