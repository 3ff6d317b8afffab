//! The deployment's event ledger: its checkpoint keys, the sink `tenet up` records into, and
//! the way a CLI command records an event while a deployment may hold the writer lock.
//!
//! ```text
//! data/ledger/                 the log (segments, tree hashes, signed checkpoints, LOCK)
//! data/ledger-key/signing.pem  Ed25519 checkpoint signing key (0600)
//! data/ledger-key/signer.state last size and root signed (the signer never goes below it)
//! data/ledger.vkey             the verifier key, public; its name is the checkpoint origin
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tenet_event::{Event, EventKind, SvidEvent};
use tenet_ledger::{
    CheckpointSigner, KeyError, Ledger, LedgerError, LedgerOptions, LedgerSink, Opened, SigningKey,
    SinkOptions, VerifierKey,
};
use tracing::{info, warn};

use crate::config::Config;

/// How long a command waits for another process to release the ledger's writer lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Pause between attempts to take the lock.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// The admin API path through which a CLI command records an SVID it issued while the
/// deployment is up (and so holds the ledger).
pub const SVID_EVENT_PATH: &str = "/v1/events/svid";

/// Create the checkpoint signing key (mode 0600) and the public verifier key, named after the
/// deployment. Existing keys are kept (they must match each other). Returns whether keys
/// were created.
pub fn create_keys(config: &Config) -> Result<bool> {
    let key_path = config.ledger_signing_key();
    let vkey_path = config.ledger_verifier_key();
    if key_path.exists() || vkey_path.exists() {
        signing_key(config)?;
        return Ok(false);
    }
    crate::init::make_dir(&config.ledger_key_dir(), 0o700)?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key = SigningKey::generate(&config.ledger_origin(), &rng)
        .context("generating the ledger signing key")?;
    key.save(&key_path)
        .with_context(|| format!("writing the ledger signing key {}", key_path.display()))?;
    key.verifier_key()
        .save(&vkey_path)
        .with_context(|| format!("writing the ledger verifier key {}", vkey_path.display()))?;
    Ok(true)
}

/// Read a verifier key file.
pub fn verifier_key(path: &Path) -> Result<VerifierKey> {
    VerifierKey::load(path).map_err(|e| match e {
        // The key error's text already carries the I/O error; as a source it would repeat.
        KeyError::Io { source, .. } => anyhow!(
            "reading the ledger verifier key {}: {source}",
            path.display()
        ),
        e => anyhow::Error::new(e).context(format!(
            "reading the ledger verifier key {}",
            path.display()
        )),
    })
}

/// The deployment's signing key, named as its verifier key says (the checkpoint origin),
/// checked to be the private half of that verifier key.
pub fn signing_key(config: &Config) -> Result<SigningKey> {
    let vkey = verifier_key(&config.ledger_verifier_key())?;
    let path = config.ledger_signing_key();
    let key = SigningKey::load(vkey.name(), &path)
        .with_context(|| format!("reading the ledger signing key {}", path.display()))?;
    if key.verifier_key() != vkey {
        bail!(
            "the ledger signing key {} does not belong to the verifier key {}",
            path.display(),
            config.ledger_verifier_key().display()
        );
    }
    Ok(key)
}

fn signer(config: &Config) -> Result<CheckpointSigner> {
    let state = config.ledger_signer_state();
    CheckpointSigner::new(signing_key(config)?)
        .with_state_file(&state)
        .with_context(|| format!("reading the signer state {}", state.display()))
}

fn options(config: &Config) -> LedgerOptions {
    LedgerOptions {
        sync: config.sync,
        ..LedgerOptions::default()
    }
}

/// Open the ledger in `dir` for writing, waiting up to [`LOCK_WAIT`] for a short-lived
/// writer (a CLI command recording an event) to let go of it.
fn open_dir(dir: &Path, options: &LedgerOptions) -> Result<Opened> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match Ledger::open(dir, options.clone()) {
            Err(LedgerError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY);
            }
            Err(LedgerError::Locked { .. }) => bail!(
                "the ledger in {} is held by another process (is `tenet up` running?)",
                dir.display()
            ),
            other => {
                return other.with_context(|| format!("opening the ledger in {}", dir.display()));
            }
        }
    }
}

/// Take the ledger in `dir` for a CLI command that must keep others from writing while it
/// works (`tenet init --force`), before it changes anything.
pub fn hold(dir: &Path) -> Result<Ledger> {
    let opened = open_dir(dir, &LedgerOptions::default())?;
    log_recovery(&opened);
    Ok(opened.ledger)
}

/// Append one event from a CLI command and sign a checkpoint over it, in `ledger` if the
/// command already holds it, else in the deployment's (waiting briefly for its lock).
pub fn record_directly(config: &Config, ledger: Option<Ledger>, kind: EventKind) -> Result<u64> {
    let mut signer = signer_for_cli(config)?;
    let mut ledger = match ledger {
        Some(ledger) => ledger,
        None => {
            let opened = open_dir(&config.ledger_dir(), &options(config))?;
            log_recovery(&opened);
            opened.ledger
        }
    };
    append_and_sign(&mut ledger, &mut signer, kind)
}

fn append_and_sign(
    ledger: &mut Ledger,
    signer: &mut CheckpointSigner,
    kind: EventKind,
) -> Result<u64> {
    let dir = ledger.dir().to_owned();
    ledger
        .check_nothing_appended_while_stopped(signer.stopped_at())
        .with_context(|| format!("checking the ledger in {}", dir.display()))?;
    let entry = Event::new(time::OffsetDateTime::now_utc(), kind).to_canonical_json();
    let index = ledger
        .append(&entry)
        .with_context(|| format!("appending to the ledger in {}", dir.display()))?;
    ledger
        .checkpoint(signer)
        .with_context(|| format!("signing a checkpoint in {}", dir.display()))?;
    // The command stops here with every entry signed, as a clean stop of `tenet up` does.
    signer
        .mark_stopped()
        .with_context(|| format!("recording the stop of the ledger in {}", dir.display()))?;
    Ok(index)
}

fn log_recovery(opened: &Opened) {
    for warning in &opened.warnings {
        warn!(ledger = %opened.ledger.dir().display(), %warning,
            "ledger repaired after an unclean stop");
    }
}

/// Keys for a deployment created before the ledger existed: created on first `tenet up`, but
/// only while no checkpoint exists that another key signed.
fn ensure_keys(config: &Config) -> Result<()> {
    if config.ledger_verifier_key().exists() || config.ledger_signing_key().exists() {
        return Ok(());
    }
    let checkpoints = config.ledger_dir().join("checkpoints");
    if checkpoints.exists() {
        bail!(
            "the ledger in {} has checkpoints but its keys {} and {} are missing",
            config.ledger_dir().display(),
            config.ledger_signing_key().display(),
            config.ledger_verifier_key().display()
        );
    }
    create_keys(config)?;
    warn!(key = %config.ledger_verifier_key().display(),
        "this deployment had no ledger keys; created them");
    Ok(())
}

/// Open the ledger and start its writer for `tenet up`: group commit, a checkpoint at least
/// every second while events arrive, and one on shutdown.
pub fn start_sink(config: &Config) -> Result<LedgerSink> {
    ensure_keys(config)?;
    let signer = signer(config)?;
    let origin = signer.origin().to_owned();
    let opened = open_dir(&config.ledger_dir(), &options(config))?;
    log_recovery(&opened);
    info!(ledger = %config.ledger_dir().display(), entries = opened.ledger.size(), %origin,
        "ledger open");
    LedgerSink::start(
        opened.ledger,
        signer,
        SinkOptions::default(),
        Arc::new(tenet_ledger::SystemClock),
    )
    .map_err(|e| anyhow!("starting the ledger writer: {e}"))
}

/// Record an SVID issued by a CLI command. When no process holds the ledger, the command
/// appends the event and signs a checkpoint itself. When `tenet up` holds it, the event goes
/// through the admin API, which records it like any other. A lock held by another command
/// is waited for. Fails (and the caller then hands out nothing) when neither works. Returns
/// the event's ledger index.
pub async fn record_svid(config: &Config, event: &SvidEvent) -> Result<u64> {
    let dir = config.ledger_dir();
    let deadline = Instant::now() + LOCK_WAIT;
    let mut signer = None;
    loop {
        let signer = match &mut signer {
            Some(s) => s,
            None => signer.insert(signer_for_cli(config)?),
        };
        match Ledger::open(&dir, options(config)) {
            Ok(mut opened) => {
                log_recovery(&opened);
                let kind = EventKind::Svid(event.clone());
                return append_and_sign(&mut opened.ledger, signer, kind);
            }
            Err(LedgerError::Locked { .. }) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("opening the ledger in {}", dir.display()));
            }
        }
        let body = serde_json::to_vec(event)?;
        match crate::admin::call_with(config, http::Method::POST, SVID_EVENT_PATH, body).await {
            Ok((status, answer)) if status.is_success() => {
                return serde_json::from_str::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|a| a.get("index").and_then(serde_json::Value::as_u64))
                    .ok_or_else(|| anyhow!("the admin API answered without an index: {answer}"));
            }
            Ok((status, answer)) => {
                bail!("the running deployment did not record the SVID ({status}): {answer}")
            }
            Err(e) if !crate::admin::unreachable(&e) => {
                return Err(e.context("recording the SVID through the admin API"));
            }
            Err(_) if Instant::now() >= deadline => bail!(
                "the ledger in {} is held by another process and no deployment answers on the \
                 admin API at {}",
                dir.display(),
                config.admin_listen
            ),
            Err(_) => tokio::time::sleep(LOCK_RETRY).await,
        }
    }
}

fn signer_for_cli(config: &Config) -> Result<CheckpointSigner> {
    ensure_keys(config)?;
    signer(config)
}
