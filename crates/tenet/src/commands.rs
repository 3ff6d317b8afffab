//! Dispatch of the CLI's commands, and the small ones that need no module of their own.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use tenet_event::SvidEvent;
use tenet_gateway::{Clock, SystemClock};
use tenet_identity::{CertificateAuthority, SpiffeId};
use tenet_policy::{
    AccessRequest, Decision, Explanation, PolicySnapshot, Principal, RequestContext, RouteResource,
    TlsFacts,
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
            say!(
                "created a deployment for trust domain {trust_domain} in {}",
                dir.display()
            );
            say!("  config:           {}", dir.join("tenet.toml").display());
            say!("  policies:         {}", dir.join("policies").display());
            say!("  admin credential: {}", dir.join("data/admin").display());
            say!(
                "  event ledger:     {} (verifier key {})",
                dir.join("data/ledger").display(),
                dir.join("data/ledger.vkey").display()
            );
            say!("next: edit the routes in tenet.toml, then `tenet up`");
            Ok(ExitCode::SUCCESS)
        }
        Command::Up => up(explicit).await,
        Command::Demo { keep } => crate::demo::run(keep).await,
        Command::Svid { kind } => svid(&config::load(explicit)?, kind).await,
        Command::Bundle { format } => {
            let config = config::load(explicit)?;
            let ca = load_ca(&config)?;
            match format {
                BundleFormat::Pem => say_raw!("{}", ca.bundle().to_pem()),
                BundleFormat::Jwks => say!("{}", ca.bundle().to_jwks()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { action } => policy(explicit, action).await,
        Command::Log { action } => log(explicit, action).await,
        Command::Assess {
            paths,
            format,
            fail_on,
            reach,
            output,
            at,
        } => {
            crate::assess::run(crate::assess::Args {
                paths: &paths,
                format: &format,
                fail_on: fail_on.as_deref(),
                reach,
                output: output.as_deref(),
                at: at.as_deref(),
            })
            .await
        }
        Command::Segment {
            action:
                crate::SegmentCommand::Generate {
                    flows,
                    manifests,
                    output,
                },
        } => crate::assess::segment_generate(&flows, &manifests, output.as_deref()),
        Command::Revoke {
            spiffe_id,
            serial,
            duration,
            reason,
            format,
        } => {
            let config = config::load(explicit)?;
            let change = crate::contain::revoke(spiffe_id, serial, duration.as_deref(), reason)?;
            crate::contain::run_change(&config, change, format).await
        }
        Command::Quarantine {
            service,
            direction,
            identities,
            duration,
            reason,
            format,
        } => {
            let config = config::load(explicit)?;
            let change = crate::contain::quarantine(
                &config,
                service,
                &direction,
                identities,
                duration.as_deref(),
                reason,
            )?;
            crate::contain::run_change(&config, change, format).await
        }
        Command::Release { selector, format } => {
            let config = config::load(explicit)?;
            let change = crate::contain::Change::Release { selector };
            crate::contain::run_change(&config, change, format).await
        }
        Command::Device { action } => crate::people::run_device(explicit, action)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Session { action } => crate::people::run_session(explicit, action)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Containment { format } => {
            crate::contain::run_list(&config::load(explicit)?, format).await
        }
        Command::BlastRadius {
            principal,
            format,
            depth,
            source_ip,
        } => blast(explicit, &principal, &format, depth, &source_ip),
        Command::Hunt {
            rules,
            inputs,
            format,
        } => crate::hunt::run(&rules, &inputs, format),
        Command::Drill {
            scenario,
            identity,
            timeout,
            keep,
            format,
        } => {
            let config = config::load(explicit)?;
            let timeout = parse_duration(&timeout).context("--timeout")?;
            crate::drill::run(&config, &scenario, identity, timeout, keep, format).await
        }
        Command::Score {
            assessments,
            format,
        } => crate::score::run(explicit, &assessments, format),
    }
}

fn blast(
    explicit: Option<&Path>,
    principal: &str,
    format: &str,
    depth: usize,
    source_ip: &str,
) -> Result<ExitCode> {
    if !matches!(format, "text" | "json" | "dot") {
        bail!("--format {format:?}: expected text, json or dot");
    }
    let id = parse_id(principal)?;
    let source_ip: std::net::IpAddr = source_ip
        .parse()
        .map_err(|e| anyhow!("--source-ip {source_ip:?}: {e}"))?;
    let config = config::load(explicit)?;
    let snapshot = PolicySnapshot::load_dir(&config.policy_dir)
        .map_err(|e| anyhow!("policies in {}: {e}", config.policy_dir.display()))?;
    let routes: Vec<tenet_policy::RouteInfo> = config
        .routes
        .iter()
        .map(|r| tenet_policy::RouteInfo {
            route: r.name.clone(),
            service: r.service.clone(),
            host: r.host.clone(),
            path_prefix: r.path_prefix.clone(),
            service_identity: r.upstream.spiffe_id.as_ref().map(ToString::to_string),
        })
        .collect();
    let mut texts = Vec::new();
    for file in snapshot.source_files() {
        let path = config.policy_dir.join(file);
        texts.push(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        );
    }
    let assumptions = tenet_policy::Assumptions {
        source_ip,
        unix_time: OffsetDateTime::now_utc().unix_timestamp(),
        risk: 0,
        paths: tenet_policy::Assumptions::paths_in_policies(texts.iter().map(String::as_str)),
    };
    let b = tenet_policy::blast_radius(&snapshot, id.as_str(), &routes, &assumptions, depth);
    match format {
        "json" => say!("{}", serde_json::to_string_pretty(&b)?),
        "dot" => say_raw!("{}", b.to_dot()),
        _ => say_raw!("{}", b.to_text()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn log(explicit: Option<&Path>, action: LogCommand) -> Result<ExitCode> {
    match action {
        LogCommand::Verify {
            ledger,
            key,
            checkpoints,
            format,
        } => {
            // An auditor with a copied ledger and the key needs no deployment.
            let config = match (&ledger, &key) {
                (Some(_), Some(_)) => None,
                _ => Some(config::load(explicit)?),
            };
            let target = crate::log::Target::new(config.as_ref(), ledger, key)?;
            crate::log::verify(&target, &checkpoints, format)
        }
        LogCommand::Prove { index, size } => {
            crate::log::prove(&config::load(explicit)?, index, size)
        }
        LogCommand::Consistency { old, new } => {
            crate::log::consistency(&config::load(explicit)?, old, new)
        }
        LogCommand::Tail {
            follow,
            from,
            format,
        } => crate::log::tail(&config::load(explicit)?, follow, from, format).await,
        LogCommand::Export { format, from, to } => {
            crate::log::export(&config::load(explicit)?, format, from, to)
        }
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

/// The CLI issues only IDs of this deployment's trust domain, and IDs under `/tenet/` (the
/// gateway, the admin credential) only when asked explicitly.
fn check_issuable(config: &Config, id: &SpiffeId, allow_reserved: bool) -> Result<()> {
    if id.trust_domain() != &config.trust_domain {
        bail!(
            "{id} is not in this deployment's trust domain {}",
            config.trust_domain
        );
    }
    if id.path().starts_with("/tenet/") && !allow_reserved {
        bail!(
            "{id} is reserved for Tenet's own components (the gateway, the admin credential); \
             add --allow-reserved to issue it anyway"
        );
    }
    Ok(())
}

/// The `--principal` of `tenet policy explain` when it is neither a person nor anonymous:
/// a refusal names the forms that are accepted, since an email or a bare name is a natural
/// first guess for a person.
fn explain_workload(text: &str) -> Result<SpiffeId> {
    SpiffeId::parse(text).map_err(|e| {
        let email = if text.contains('@') && !text.starts_with("spiffe://") {
            "; an email address goes in --email beside the person"
        } else {
            ""
        };
        anyhow!(
            "--principal {text:?} is not a SPIFFE ID ({e}): give a workload's \
             spiffe://TRUST_DOMAIN/PATH, anonymous, or a person as user:PROVIDER:SUBJECT \
             (PROVIDER a [[people.providers]] name, SUBJECT the provider's sub claim){email}"
        )
    })
}

fn parse_id(text: &str) -> Result<SpiffeId> {
    SpiffeId::parse(text).map_err(|e| anyhow!("SPIFFE ID {text:?}: {e}"))
}

async fn svid(config: &Config, kind: SvidCommand) -> Result<ExitCode> {
    let ca = load_ca(config)?;
    let clock = SystemClock;
    // INVARIANT: an SVID is handed out (written or printed) only after its issuance is in
    // the ledger.
    match kind {
        SvidCommand::X509 {
            id,
            ttl,
            out,
            dns,
            allow_reserved,
        } => {
            let id = parse_id(&id)?;
            check_issuable(config, &id, allow_reserved)?;
            let ttl = parse_duration(&ttl).context("--ttl")?;
            for name in &dns {
                let host = tenet_request::canonical_host(name, 443)
                    .map_err(|e| anyhow!("--dns {name:?}: {e}"))?;
                if host.port().is_some() || host.is_ip_literal() || host.name() != name {
                    bail!("--dns {name:?}: give a lowercase DNS name without a port");
                }
            }
            let svid = ca.issue_x509_svid_with_dns(&id, &dns, ttl, clock.now())?;
            let entry =
                crate::ledger::record_svid(config, &crate::up::svid_event(&svid, "cli")).await?;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    svid.write_files(&dir, &ca.bundle())?;
                    say!(
                        "wrote {0}/svid.pem, {0}/svid.key and {0}/bundle.pem for {id} (serial {1}, \
                         expires {2}; ledger entry {entry})",
                        dir.display(),
                        svid.serial_hex(),
                        svid.not_after()
                    );
                }
                None => say_raw!("{}{}", svid.chain_pem(), svid.key_pem()),
            }
        }
        SvidCommand::Jwt { id, audience, ttl } => {
            let id = parse_id(&id)?;
            check_issuable(config, &id, false)?;
            let ttl = parse_duration(&ttl).context("--ttl")?;
            let token = ca.issue_jwt_svid(&id, &audience, ttl, clock.now())?;
            crate::ledger::record_svid(config, &jwt_svid_event(&id, &token)?).await?;
            say!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The event for a JWT-SVID: the token is a bearer credential, so the event names it by its
/// SHA-256 fingerprint, and takes the expiry from the token itself.
fn jwt_svid_event(id: &SpiffeId, token: &str) -> Result<SvidEvent> {
    use base64::Engine as _;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
        .ok_or_else(|| anyhow!("the issued JWT-SVID has no readable claims"))?;
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| anyhow!("the issued JWT-SVID has no exp claim"))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let fingerprint: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(SvidEvent {
        spiffe_id: id.to_string(),
        svid_type: "jwt".into(),
        serial: format!("sha256:{fingerprint}"),
        not_after: OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|e| anyhow!("the issued JWT-SVID's exp {exp}: {e}"))?,
        requested_by: "cli".into(),
    })
}

async fn policy(explicit: Option<&Path>, action: PolicyCommand) -> Result<ExitCode> {
    match action {
        PolicyCommand::Check { dir } => {
            let dir = match dir {
                Some(d) => d,
                None => config::load(explicit)?.policy_dir,
            };
            if let Some(file) = crate::drill::leftover_policy(&dir) {
                eprintln!(
                    "{}: policies rejected:\n{} was left by a `tenet drill privilege-escalation` \
                     that did not finish: it permits the drill identity a service. Remove it \
                     (`tenet up` removes it when it starts).",
                    dir.display(),
                    file.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            match PolicySnapshot::load_dir(&dir) {
                Ok(s) => {
                    say!(
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
            groups,
            email,
            factors,
            user_verified,
            device_compliant,
            risk,
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
            // Methods are case-sensitive, as on the wire: `get` is not `GET`.
            let method: http::Method = action
                .parse()
                .map_err(|_| anyhow!("--action {action:?} is not an HTTP method"))?;
            let target = tenet_request::normalize_target(&method, &uri)
                .map_err(|e| anyhow!("--path {path:?} would be rejected by the gateway: {e}"))?;
            let person = principal.strip_prefix("user:").map(|rest| {
                rest.split_once(':')
                    .filter(|(p, s)| !p.is_empty() && !s.is_empty())
                    .ok_or_else(|| {
                        anyhow!("--principal {principal:?}: a person is user:PROVIDER:SUBJECT")
                    })
            });
            let people_options =
                !groups.is_empty() || email.is_some() || !factors.is_empty() || user_verified;
            if person.is_none() && people_options {
                bail!(
                    "--group, --email, --factor and --user-verified describe a person: give --principal user:PROVIDER:SUBJECT"
                );
            }
            let mut session = tenet_policy::SessionFacts::default();
            let mut device = tenet_policy::DeviceFacts::default();
            if person.is_some() {
                for f in &factors {
                    if !["oidc", "webauthn", "totp", "recovery", "bearer"].contains(&f.as_str()) {
                        bail!("--factor {f:?} is not oidc, webauthn, totp, recovery or bearer");
                    }
                }
                session.authenticated = true;
                session.factors = factors.clone();
                session.factors.sort();
                session.factors.dedup();
                session.phishing_resistant = factors.iter().any(|f| f == "webauthn");
                if user_verified && !session.phishing_resistant {
                    bail!("--user-verified needs --factor webauthn");
                }
                session.user_verified = user_verified;
                session.age_secs = 60;
                session.mfa_age_secs = if factors.iter().any(|f| f != "oidc" && f != "bearer") {
                    60
                } else {
                    -1
                };
            }
            if device_compliant {
                device.id = "explain-device".into();
                device.enrolled = true;
                device.compliant = true;
                device.posture_age_secs = 60;
            }
            let principal = if let Some(person) = person {
                let (provider, subject) = person?;
                Principal::User {
                    provider: provider.to_owned(),
                    subject: subject.to_owned(),
                    email: email.clone().unwrap_or_default().to_ascii_lowercase(),
                    name: String::new(),
                    groups: groups.clone(),
                }
            } else if principal == "anonymous" {
                Principal::Anonymous
            } else {
                let id = explain_workload(&principal)?;
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
                    host: host.clone(),
                    path: target.as_str().to_string(),
                },
                context: RequestContext {
                    source_ip,
                    tls: TlsFacts {
                        version: "TLSv1.3".into(),
                        // What a client of that route over HTTP/1.1 presents.
                        sni: host,
                        alpn: "http/1.1".into(),
                        mtls: true,
                        client_serial: String::new(),
                    },
                    unix_time: OffsetDateTime::now_utc().unix_timestamp(),
                    protocol: "HTTP/1.1".into(),
                    risk,
                    session,
                    device,
                },
            };
            let explanation = snapshot.explain(&request);
            print_decision(&explanation, target.as_str(), format);
            Ok(if explanation.decision.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        PolicyCommand::Reload => {
            let config = config::load(explicit)?;
            let (status, body) =
                crate::admin::call(&config, http::Method::POST, "/v1/policy/reload").await?;
            say!("{body}");
            Ok(if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn print_decision(explanation: &Explanation, path: &str, format: OutputFormat) {
    let decision = &explanation.decision;
    let (word, errors) = match decision {
        Decision::Allow { .. } => ("allow", Vec::new()),
        Decision::Deny { errors, .. } => ("deny", errors.clone()),
    };
    if format == OutputFormat::Json {
        say!(
            "{}",
            serde_json::json!({
                "decision": word,
                "policies": decision.reasons(),
                "errors": errors,
                "near_misses": explanation.near_misses,
                "path": path,
            })
        );
        return;
    }
    say!("decision: {word}");
    say!("path as decided: {path}");
    if decision.reasons().is_empty() {
        say!("determined by: no policy matched (default deny)");
    } else {
        say!("determined by: {}", decision.reasons().join(", "));
    }
    for e in errors {
        say!("error: {e}");
    }
    for miss in &explanation.near_misses {
        say!("closest permit: {miss}");
    }
}
