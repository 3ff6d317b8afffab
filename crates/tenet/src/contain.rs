//! Containment from the command line, the admin API and playbooks: `tenet revoke`,
//! `tenet quarantine`, `tenet release`, `tenet containment`.
//!
//! A containment takes effect before it is recorded (cutting off must not wait for the
//! ledger); a release is recorded before it takes effect (nothing is reopened without a
//! record). Every change is an admin event `containment.<operation>` whose detail is the
//! action as JSON.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tenet_contain::{Action, Containment, Direction, Target};
use tenet_event::{AdminEvent, EventKind};
use tenet_gateway::Clock;
use tenet_ledger::LedgerSink;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::OutputFormat;
use crate::config::{Config, parse_duration};

/// The admin API path for containment changes (POST) and the list (GET).
pub const CONTAIN_PATH: &str = "/v1/containment";

/// A change asked of the containment state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Cut something off.
    Contain {
        /// What.
        target: Target,
        /// Why.
        reason: String,
        /// For how long (seconds); until released when absent.
        #[serde(default)]
        for_secs: Option<u64>,
    },
    /// End what matches an action id, SPIFFE ID, serial or service name.
    Release {
        /// The selector.
        selector: String,
    },
}

/// Where a change is recorded.
pub enum Recorder<'a> {
    /// Inside `tenet up`: its ledger writer.
    Running {
        /// The writer.
        sink: &'a LedgerSink,
        /// Its clock.
        clock: &'a dyn Clock,
    },
    /// A CLI command while no deployment runs: straight into the ledger.
    Direct(&'a Config),
}

impl Recorder<'_> {
    async fn record(&self, kind: EventKind) -> Result<u64> {
        match self {
            Recorder::Running { sink, clock } => crate::up::record(sink, *clock, kind).await,
            Recorder::Direct(config) => crate::ledger::record_directly(config, None, kind),
        }
    }
}

fn operation(target: &Target) -> &'static str {
    match target {
        Target::Identity { .. } | Target::Serial { .. } => "revoke",
        Target::Service { .. } => "quarantine",
    }
}

fn admin_event(actor: &str, operation: &str, actions: &[Action]) -> EventKind {
    EventKind::Admin(AdminEvent {
        actor: actor.to_owned(),
        operation: format!("containment.{operation}"),
        success: true,
        detail: serde_json::to_string(actions).unwrap_or_default(),
    })
}

/// Applies `change` by `actor` at `now` and records it. Returns the actions it took or ended.
pub async fn apply(
    containment: &Containment,
    recorder: &Recorder<'_>,
    actor: &str,
    change: Change,
    now: OffsetDateTime,
) -> Result<Vec<Action>> {
    match change {
        Change::Contain {
            target,
            reason,
            for_secs,
        } => {
            if reason.trim().is_empty() {
                bail!("a containment needs a reason");
            }
            let expires = match for_secs {
                Some(0) => bail!("a containment lasting 0 seconds does nothing"),
                Some(secs) => {
                    let too_long = || anyhow!("a containment of {secs} seconds is too long");
                    let secs = i64::try_from(secs).map_err(|_| too_long())?;
                    Some(
                        now.checked_add(time::Duration::seconds(secs))
                            .filter(|end| end.year() <= 9999)
                            .ok_or_else(too_long)?,
                    )
                }
                None => None,
            };
            let op = operation(&target);
            let action = Action::new(target, reason, actor, now, expires);
            containment.apply(action.clone())?;
            info!(id = %action.id, target = %action.target, actor, "containment in force");
            if let Err(e) = recorder
                .record(admin_event(actor, op, std::slice::from_ref(&action)))
                .await
            {
                warn!(error = %e, id = %action.id, "containment in force but not recorded");
                return Err(e.context(format!(
                    "{} is in force, but recording it in the ledger failed",
                    action.id
                )));
            }
            Ok(vec![action])
        }
        Change::Release { selector } => {
            let mut matching = containment.matching(&selector, now);
            // A serial may be given as `openssl x509 -text` prints it (4f:2a:01) or with 0x.
            let selector = match normalize_serial(&selector) {
                Ok(serial) if matching.is_empty() && serial != selector => {
                    matching = containment.matching(&serial, now);
                    serial
                }
                _ => selector,
            };
            if matching.is_empty() {
                bail!("nothing in force matches {selector:?}");
            }
            recorder
                .record(admin_event(actor, "release", &matching))
                .await
                .context("recording the release (nothing was released)")?;
            let released = containment.release(&selector, now)?;
            info!(selector = %selector, count = released.len(), actor, "containment released");
            Ok(released)
        }
    }
}

/// Records the end of actions that expired by themselves (run every second by `tenet up`).
pub async fn record_expired(containment: &Containment, sink: &LedgerSink, clock: &dyn Clock) {
    let due = containment.due(clock.now());
    if due.is_empty() {
        return;
    }
    let recorder = Recorder::Running { sink, clock };
    match recorder.record(admin_event("tenet", "expire", &due)).await {
        Ok(_) => {
            let ids: Vec<String> = due.iter().map(|a| a.id.clone()).collect();
            info!(count = ids.len(), "time-boxed containment ended");
            if let Err(e) = containment.mark_end_recorded(&ids) {
                warn!(error = %e, "could not note recorded containment ends");
            }
        }
        Err(e) => warn!(error = %e, "the end of a containment could not be recorded; will retry"),
    }
}

/// The containment state file of a deployment.
pub fn open(config: &Config) -> Result<Arc<Containment>> {
    let path = config.containment_path();
    Containment::open(&path)
        .map(Arc::new)
        .with_context(|| format!("reading the containment state {}", path.display()))
}

/// `tenet revoke | quarantine | release`: through the admin API when the deployment runs,
/// else directly on its files.
pub async fn run_change(config: &Config, change: Change, format: OutputFormat) -> Result<ExitCode> {
    let is_release = matches!(change, Change::Release { .. });
    let body = serde_json::to_vec(&change)?;
    let actions: Vec<Action> =
        match crate::admin::call_with(config, http::Method::POST, CONTAIN_PATH, body).await {
            Ok((status, answer)) if status.is_success() => {
                let v: serde_json::Value = serde_json::from_str(&answer)
                    .map_err(|e| anyhow!("the admin API answered {answer:?}: {e}"))?;
                serde_json::from_value(v.get("actions").cloned().unwrap_or_default())
                    .map_err(|e| anyhow!("the admin API answered {answer:?}: {e}"))?
            }
            Ok((status, answer)) => {
                let message = serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or(answer);
                bail!("the running deployment refused ({status}): {message}")
            }
            Err(e) if crate::admin::unreachable(&e) => {
                let containment = open(config)?;
                apply(
                    &containment,
                    &Recorder::Direct(config),
                    "local-cli",
                    change,
                    OffsetDateTime::now_utc(),
                )
                .await?
            }
            Err(e) => return Err(e.context("asking the running deployment")),
        };
    if is_release {
        print_released(&actions, format)?;
    } else {
        print_actions(&actions, format)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenet containment`: what is in force.
pub async fn run_list(config: &Config, format: OutputFormat) -> Result<ExitCode> {
    let actions: Vec<Action> =
        match crate::admin::call(config, http::Method::GET, CONTAIN_PATH).await {
            Ok((status, answer)) if status.is_success() => {
                let v: serde_json::Value = serde_json::from_str(&answer)?;
                serde_json::from_value(v.get("actions").cloned().unwrap_or_default())?
            }
            Ok((status, answer)) => bail!("the running deployment answered {status}: {answer}"),
            Err(e) if crate::admin::unreachable(&e) => {
                let now = OffsetDateTime::now_utc();
                open(config)?.current().active(now).cloned().collect()
            }
            Err(e) => return Err(e.context("asking the running deployment")),
        };
    print_actions(&actions, format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_actions(actions: &[Action], format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => say!("{}", serde_json::to_string_pretty(actions)?),
        OutputFormat::Text => {
            if actions.is_empty() {
                say!("nothing contained");
            }
            for a in actions {
                let until = a
                    .expires
                    .and_then(|e| {
                        e.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "released".into());
                say!(
                    "{}  {}  until {}  by {}: {}",
                    a.id,
                    a.target,
                    until,
                    a.actor,
                    a.reason
                );
            }
        }
    }
    Ok(())
}

/// What `tenet release` ended: each action as released, with what it had been.
fn print_released(actions: &[Action], format: OutputFormat) -> Result<()> {
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    match format {
        OutputFormat::Json => {
            let released: Vec<serde_json::Value> = actions
                .iter()
                .map(|a| {
                    let mut v = serde_json::to_value(a).unwrap_or_default();
                    if let Some(m) = v.as_object_mut() {
                        m.insert("released".into(), serde_json::Value::Bool(true));
                    }
                    v
                })
                .collect();
            say!("{}", serde_json::to_string_pretty(&released)?);
        }
        OutputFormat::Text => {
            for a in actions {
                say!(
                    "released {}  {}  (contained since {} by {}: {})",
                    a.id,
                    a.target,
                    rfc3339(a.created),
                    a.actor,
                    a.reason
                );
            }
        }
    }
    Ok(())
}

/// Builds the change for `tenet revoke`.
pub fn revoke(
    spiffe_id: Option<String>,
    serial: Option<String>,
    duration: Option<&str>,
    reason: String,
) -> Result<Change> {
    let target = match (spiffe_id, serial) {
        (Some(id), None) => {
            let parsed = tenet_identity::SpiffeId::parse(&id)
                .map_err(|e| anyhow!("{id:?} is not a SPIFFE ID: {e}"))?;
            if parsed.path().starts_with("/tenet/") {
                bail!(
                    "{id} is one of Tenet's own identities (/tenet/...): revoking it would not stop \
                     the component; rotate its credential instead"
                );
            }
            Target::Identity { spiffe_id: id }
        }
        (None, Some(serial)) => Target::Serial {
            serial: normalize_serial(&serial)?,
        },
        (Some(_), Some(_)) => bail!("give a SPIFFE ID or --serial, not both"),
        (None, None) => bail!("give the SPIFFE ID to revoke, or --serial HEX"),
    };
    Ok(Change::Contain {
        target,
        reason,
        for_secs: duration_secs(duration)?,
    })
}

/// Builds the change for `tenet quarantine`: outbound identities default to the SPIFFE IDs
/// the service's routes name as their upstream.
pub fn quarantine(
    config: &Config,
    service: String,
    direction: &str,
    identities: Vec<String>,
    duration: Option<&str>,
    reason: String,
) -> Result<Change> {
    let direction: Direction = direction.parse()?;
    if !config.routes.iter().any(|r| r.service == service) {
        bail!("no route in the configuration belongs to service {service:?}");
    }
    let mut ids = identities;
    for id in &ids {
        tenet_identity::SpiffeId::parse(id).map_err(|e| anyhow!("--identity {id:?}: {e}"))?;
    }
    if ids.is_empty() {
        ids = config
            .routes
            .iter()
            .filter(|r| r.service == service)
            .filter_map(|r| r.upstream.spiffe_id.as_ref().map(ToString::to_string))
            .collect();
        ids.sort();
        ids.dedup();
    }
    Ok(Change::Contain {
        target: Target::Service {
            service,
            direction,
            identities: ids,
        },
        reason,
        for_secs: duration_secs(duration)?,
    })
}

/// A certificate serial as the gateway sees it (the hex of the DER integer's bytes,
/// lowercase), from hex with or without `0x`, or the colon form `openssl x509 -text` prints
/// (`4f:2a:...`, which leaves out the leading `00` of a serial whose first bit is set).
fn normalize_serial(input: &str) -> Result<String> {
    let trimmed = input.trim();
    let hex: String = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("certificate serial {input:?} must be hexadecimal (4f2a01, 0x4f2a01 or 4f:2a:01)");
    }
    let mut hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    // DER's shortest form: no leading zero byte unless the next byte's first bit is set ...
    while hex.len() > 2 && hex.starts_with("00") && hex.get(2..3).is_some_and(|c| c < "8") {
        hex.drain(..2);
    }
    // ... and one when the first bit is set, since the serial is positive.
    if hex.get(..1).is_some_and(|c| c >= "8") {
        hex.insert_str(0, "00");
    }
    Ok(hex)
}

fn duration_secs(duration: Option<&str>) -> Result<Option<u64>> {
    duration
        .map(|d| {
            parse_duration(d)
                .map(|d| d.as_secs())
                .with_context(|| format!("--for {d:?}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_in_every_spelling_name_the_gateway_serial() {
        for (given, stored) in [
            ("4f2a01", "4f2a01"),
            ("0x4F2A01", "4f2a01"),
            ("4F:2A:01", "4f2a01"),
            ("80:01", "008001"),
            ("00:80:01", "008001"),
            ("00:4f", "4f"),
            ("1", "01"),
        ] {
            assert_eq!(normalize_serial(given).unwrap(), stored, "{given}");
        }
        for bad in ["", "0x", "zz", "4f:2a:0g", "4f 2a"] {
            let err = normalize_serial(bad).unwrap_err().to_string();
            assert!(err.contains("must be hexadecimal"), "{err}");
        }
        // Real serials, as `openssl x509 -text` prints them: the DER integer's value without
        // its sign byte, two hex digits per byte, colon-separated.
        let td = tenet_identity::TrustDomain::parse("example.org").unwrap();
        let now = time::OffsetDateTime::now_utc();
        let ca = tenet_identity::CertificateAuthority::generate(&td, now).unwrap();
        let id = tenet_identity::SpiffeId::parse("spiffe://example.org/w").unwrap();
        for _ in 0..16 {
            let svid = ca
                .issue_x509_svid(&id, std::time::Duration::from_secs(60), now)
                .unwrap();
            let gateway = svid.serial_hex();
            let value = gateway.strip_prefix("00").unwrap_or(&gateway);
            let bytes: Vec<&str> = (0..value.len())
                .step_by(2)
                .map(|i| &value[i..i + 2])
                .collect();
            let openssl = bytes.join(":");
            assert_eq!(normalize_serial(&openssl).unwrap(), gateway, "{openssl}");
        }
    }
}
