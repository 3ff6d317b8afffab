//! `tenet log`: verify the deployment's ledger, prove entries and consistency, tail and
//! export its events.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tenet_ledger::{
    Finding, LedgerError, LedgerReader, SignedCheckpoint, SignerState, Verdict, VerifierKey,
    VerifyOptions, leaf_hash, read_signer, verify_with,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::Config;
use crate::{ExportFormat, OutputFormat};

/// How often `tail --follow` looks for new entries.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Exit code of `verify` when nothing is wrong but no checkpoint vouches for completeness.
const EXIT_UNANCHORED: u8 = 2;
/// Exit code of `verify` when tampering was found.
const EXIT_TAMPERED: u8 = 3;

/// The ledger to verify and the key to verify it with.
#[derive(Debug)]
pub struct Target {
    dir: PathBuf,
    key: PathBuf,
    /// The deployment's signer state (the size and root its key last signed), when the ledger
    /// is the deployment's own.
    signer_state: Option<PathBuf>,
    /// The key was named on the command line (not the deployment's own).
    key_given: bool,
}

impl Target {
    /// The given directory and key file, each defaulting to the deployment's.
    pub fn new(
        config: Option<&Config>,
        ledger: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Self> {
        let from_config = |what: &str| anyhow!("no deployment configuration to find the {what}");
        let signer_state = match (&ledger, config) {
            (None, Some(config)) => Some(config.ledger_signer_state()),
            _ => None,
        };
        Ok(Self {
            signer_state,
            key_given: key.is_some(),
            dir: match ledger {
                Some(dir) => dir,
                None => config.ok_or_else(|| from_config("ledger"))?.ledger_dir(),
            },
            key: match key {
                Some(key) => key,
                None => config
                    .ok_or_else(|| from_config("verifier key"))?
                    .ledger_verifier_key(),
            },
        })
    }
}

/// `tenet log verify`: recompute everything and report; the exit code carries the verdict.
pub fn verify(target: &Target, checkpoints: &[PathBuf], format: OutputFormat) -> Result<ExitCode> {
    let key = crate::ledger::verifier_key(&target.key)?;
    let trusted = checkpoints
        .iter()
        .map(|p| witness_checkpoint(p, &key))
        .collect::<Result<Vec<_>>>()?;
    if target.dir.exists() && !target.dir.is_dir() {
        bail!(
            "the ledger {} is a file, not a ledger directory",
            target.dir.display()
        );
    }
    if target.key_given {
        check_key_fits(&target.dir, &key)?;
    }
    let options = VerifyOptions {
        origin: Some(key.name().to_owned()),
        trusted_checkpoints: trusted,
        ..VerifyOptions::default()
    };
    // Read before the ledger: a running `tenet up` only signs entries already written, so what
    // the state says then is within what the verification reads.
    let signer = match &target.signer_state {
        Some(state) => read_signer(state)
            .with_context(|| format!("reading the signer state {}", state.display()))?,
        None => None,
    };
    let mut report = verify_with(&target.dir, &key, &options)
        .with_context(|| format!("verifying the ledger in {}", target.dir.display()))?;
    if let Some(signer) = signer
        && let Some(finding) = signed_history_finding(&target.dir, signer)?
    {
        report.findings.insert(0, finding);
        report.verdict = Verdict::Tampered;
    }
    let text = match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => {
            let mut text = format!(
                "ledger: {}\nverifier key: {key}\n{report}",
                target.dir.display()
            );
            if let (Some(entry), Some(first)) = (report.first_bad_entry(), report.first_finding()) {
                let kind = serde_json::to_value(first.kind())?;
                let kind = kind.as_str().unwrap_or("tampered");
                match first {
                    // Only a range is known: the records and tree were rewritten together.
                    Finding::Rewritten { from, to, .. } if entry == *from => {
                        text.push_str(&format!(
                            "first bad entry: one of {from} to {} ({kind})\n",
                            to.saturating_sub(1)
                        ))
                    }
                    _ => text.push_str(&format!("first bad entry: {entry} ({kind})\n")),
                }
            }
            text
        }
    };
    print_out(&text);
    Ok(match report.verdict {
        Verdict::Verified => ExitCode::SUCCESS,
        Verdict::IntegrityOnly => ExitCode::from(EXIT_UNANCHORED),
        Verdict::Tampered => ExitCode::from(EXIT_TAMPERED),
    })
}

/// A key named with `--key` whose name is the origin of none of the ledger's checkpoints is
/// the wrong key for it (a mistake in the command, exit 1), not evidence of tampering. With
/// the deployment's own key the same mismatch is tampering, and `verify` reports it.
fn check_key_fits(dir: &Path, key: &VerifierKey) -> Result<()> {
    // Whatever cannot be read here, verify_with reports.
    let newest = LedgerReader::open(dir)
        .ok()
        .and_then(|reader| reader.latest_checkpoint().ok().flatten());
    if let Some(newest) = newest
        && newest.checkpoint().origin != key.name()
    {
        bail!(
            "the verifier key is for the log {:?}, but the newest checkpoint in {} is for {:?}: \
             give this ledger's key with --key",
            key.name(),
            dir.display(),
            newest.checkpoint().origin
        );
    }
    Ok(())
}

/// What the signing key's last signed tree (`signed`, from the signer state) says against the
/// ledger in `dir`: a ledger holding fewer entries, or whose first entries have another root,
/// was rolled back or rewritten even when every checkpoint left in its directory verifies;
/// one whose checkpoints file lacks that checkpoint lost checkpoints; one that grew past the
/// size of the last clean stop (`stopped`) was appended to behind Tenet. `None` when it agrees,
/// or when the tree file cannot be read (the verification itself reports that).
fn signed_history_finding(dir: &Path, signer: SignerState) -> Result<Option<Finding>> {
    let Ok(reader) = LedgerReader::open(dir) else {
        return Ok(None);
    };
    let checked = reader
        .check_signed_history(Some((signer.size, signer.root)))
        .and_then(|()| reader.check_nothing_appended_while_stopped(signer.stopped_at()));
    match checked {
        Ok(()) => Ok(None),
        Err(LedgerError::NotWhatWasSigned {
            signed_size,
            reason,
        }) => Ok(Some(Finding::SignedHistory {
            signed_size,
            reason,
        })),
        Err(e) => Err(e).with_context(|| format!("reading the ledger in {}", dir.display())),
    }
}

/// The text of a witness's checkpoint file, refused unless it is a checkpoint signed by
/// `key`: a file that is not one is a mistake in the command, not evidence of tampering.
fn witness_checkpoint(path: &Path, key: &VerifierKey) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the witness checkpoint {}", path.display()))?;
    // A note ends with its last signature line; blank lines an editor or a shell added after
    // it are not part of it.
    let text = format!("{}\n", text.trim_end_matches(['\n', '\r']));
    let signed = SignedCheckpoint::parse(&text).map_err(|e| {
        anyhow!(
            "the witness checkpoint {} is not a signed checkpoint: {e}",
            path.display()
        )
    })?;
    signed.verify(key).map_err(|e| {
        anyhow!(
            "the witness checkpoint {} is not signed by the verifier key {key}: {e}",
            path.display()
        )
    })?;
    Ok(text)
}

/// The number of entries in the ledger in `dir`; 0 before the first one is written.
fn ledger_size(dir: &Path) -> Result<u64> {
    match LedgerReader::open(dir) {
        Ok(reader) => Ok(reader.size()),
        Err(LedgerError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("opening the ledger in {}", dir.display())),
    }
}

/// Refuse a `--from` past the end of the ledger: it would print nothing and look like an
/// empty log. Exactly the end is fine (nothing yet after it; `tail --follow` waits there).
fn check_from(dir: &Path, from: u64) -> Result<()> {
    let size = ledger_size(dir)?;
    if from > size {
        bail!("--from {from} is past the end of the ledger, which holds {size} entries");
    }
    Ok(())
}

fn open_reader(config: &Config) -> Result<LedgerReader> {
    let dir = config.ledger_dir();
    LedgerReader::open(&dir).with_context(|| format!("opening the ledger in {}", dir.display()))
}

/// The stored checkpoint of exactly `size` entries (unverified).
fn signed_at(
    reader: &LedgerReader,
    config: &Config,
    size: u64,
) -> Result<Option<SignedCheckpoint>> {
    reader.checkpoint_at(size).with_context(|| {
        format!(
            "reading the checkpoints of {}",
            config.ledger_dir().display()
        )
    })
}

/// The newest stored checkpoint (unverified).
fn newest_stored(reader: &LedgerReader, config: &Config) -> Result<Option<SignedCheckpoint>> {
    reader.latest_checkpoint().with_context(|| {
        format!(
            "reading the checkpoints of {}",
            config.ledger_dir().display()
        )
    })
}

/// The newest stored checkpoint (or the newest of `size` entries), checked to be signed by
/// `key` and to match the stored tree.
fn checkpoint_for(
    reader: &LedgerReader,
    config: &Config,
    key: &VerifierKey,
    size: Option<u64>,
) -> Result<SignedCheckpoint> {
    let found = match size {
        Some(size) => signed_at(reader, config, size)?,
        None => newest_stored(reader, config)?,
    };
    let cp = found.ok_or_else(|| match size {
        Some(size) => {
            let newest = newest_stored(reader, config)
                .ok()
                .flatten()
                .map_or_else(|| "none yet".to_owned(), |c| c.size().to_string());
            anyhow!(
                "no checkpoint was signed at size {size} (the ledger holds {} entries; newest \
                 checkpoint size: {newest})",
                reader.size()
            )
        }
        None => anyhow!(
            "the ledger has no checkpoint yet (`tenet up` signs one every second while events \
             arrive)"
        ),
    })?;
    cp.verify(key).map_err(|e| {
        anyhow!(
            "the checkpoint of {} entries does not verify: {e}; run `tenet log verify`",
            cp.size()
        )
    })?;
    let root = reader.root_at(cp.size())?;
    if root != cp.root() {
        bail!(
            "the ledger's tree of {} entries differs from its signed checkpoint; run `tenet log \
             verify`",
            cp.size()
        );
    }
    Ok(cp)
}

/// `tenet log prove INDEX`: the inclusion proof, the checkpoint it leads to, and the entry.
pub fn prove(config: &Config, index: u64, size: Option<u64>) -> Result<ExitCode> {
    let key = crate::ledger::verifier_key(&config.ledger_verifier_key())?;
    let reader = open_reader(config)?;
    let cp = checkpoint_for(&reader, config, &key, size)?;
    if index >= reader.size() {
        bail!(
            "there is no entry {index}: the ledger holds {} entries (0 to {})",
            reader.size(),
            reader.size().saturating_sub(1)
        );
    }
    if index >= cp.size() {
        bail!(
            "entry {index} is not covered by the checkpoint of {} entries (a newer checkpoint \
             follows within a second while `tenet up` runs)",
            cp.size()
        );
    }
    let proof = reader.prove_inclusion(index, cp.size())?;
    let entry = reader.entry(index)?;
    // Never hand out a proof that does not check out.
    proof.verify_entry(&entry, &cp.root()).map_err(|e| {
        anyhow!(
            "the proof of entry {index} does not lead to the signed root ({e}); run `tenet log \
             verify`"
        )
    })?;
    let entry = String::from_utf8(entry).map_err(|_| anyhow!("entry {index} is not UTF-8 text"))?;
    let mut out = serde_json::to_value(&proof)?;
    if let Value::Object(map) = &mut out {
        map.insert("checkpoint".into(), Value::String(cp.text().to_owned()));
        map.insert("entry".into(), Value::String(entry));
    }
    print_out(&format!("{}\n", serde_json::to_string_pretty(&out)?));
    Ok(ExitCode::SUCCESS)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// `tenet log consistency OLD [NEW]`: the proof from OLD entries to the checkpoint signed at
/// NEW (by default the newest), with both checkpoints (OLD's null when none was signed at that
/// size: a witness brings its own), as the admin API answers.
pub fn consistency(config: &Config, old: u64, new: Option<u64>) -> Result<ExitCode> {
    let key = crate::ledger::verifier_key(&config.ledger_verifier_key())?;
    let reader = open_reader(config)?;
    let new_cp = checkpoint_for(&reader, config, &key, new)?;
    let new = new_cp.size();
    if old == 0 || old > new {
        bail!("OLD {old} is not between 1 and the checkpoint size {new}");
    }
    let proof = reader.prove_consistency(old, new)?;
    let old_cp = signed_at(&reader, config, old)?.filter(|c| c.verify(&key).is_ok());
    let old_root = match &old_cp {
        Some(cp) => cp.root(),
        None => reader.root_at(old)?,
    };
    proof.verify(&old_root, &new_cp.root()).map_err(|e| {
        anyhow!(
            "the consistency proof {old} -> {new} does not check out ({e}); run `tenet log \
                 verify`"
        )
    })?;
    let mut out = serde_json::to_value(&proof)?;
    if let Value::Object(map) = &mut out {
        let text = |cp: Option<&SignedCheckpoint>| {
            cp.map_or(Value::Null, |c| Value::String(c.text().to_owned()))
        };
        map.insert("old_checkpoint".into(), text(old_cp.as_ref()));
        map.insert("new_checkpoint".into(), text(Some(&new_cp)));
    }
    print_out(&format!("{}\n", serde_json::to_string_pretty(&out)?));
    Ok(ExitCode::SUCCESS)
}

/// Write one entry as `tail` shows it. Returns false once stdout is closed (`| head`).
fn emit(out: &mut impl Write, index: u64, entry: &[u8], format: OutputFormat) -> Result<bool> {
    let written = match format {
        OutputFormat::Json => {
            check_json(index, entry)?;
            out.write_all(entry).and_then(|()| out.write_all(b"\n"))
        }
        OutputFormat::Text => {
            let event: Value = serde_json::from_slice(entry)
                .map_err(|e| anyhow!("entry {index} is not a JSON event: {e}"))?;
            writeln!(out, "{index:>6} {} {}", event_time(&event), summary(&event))
        }
    };
    Ok(written.is_ok())
}

/// An entry is written out as one line of JSON; anything else would break the framing.
fn check_json(index: u64, entry: &[u8]) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(entry)
        .map_err(|e| anyhow!("entry {index} is not JSON ({e}); run `tenet log verify`"))?;
    if entry.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        bail!("entry {index} spans several lines; run `tenet log verify`");
    }
    Ok(())
}

/// `tenet log tail`: the stored events from `from` on; with `follow`, then every new one.
pub async fn tail(
    config: &Config,
    follow: bool,
    from: u64,
    format: OutputFormat,
) -> Result<ExitCode> {
    let dir = config.ledger_dir();
    if !follow && !dir.is_dir() {
        bail!("no ledger in {} (has `tenet up` run?)", dir.display());
    }
    if dir.is_dir() {
        check_from(&dir, from)?;
    }
    let stdout = std::io::stdout();
    let mut next = from;
    let mut reader: Option<LedgerReader> = None;
    loop {
        for item in tenet_ledger::entries(&dir, next)? {
            let (index, entry) = item.with_context(|| format!("reading {}", dir.display()))?;
            let mut out = stdout.lock();
            if !emit(&mut out, index, &entry, format)? || out.flush().is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            next = index + 1;
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        // The tree file grows with every acknowledged batch: wait until it passes `next`.
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            match &mut reader {
                Some(r) => r.refresh()?,
                None => reader = LedgerReader::open(&dir).ok(),
            }
            if reader.as_ref().is_some_and(|r| r.size() > next) {
                break;
            }
        }
    }
}

/// `tenet log export`: entries `from..to` to stdout.
pub fn export(
    config: &Config,
    format: ExportFormat,
    from: u64,
    to: Option<u64>,
) -> Result<ExitCode> {
    let dir = config.ledger_dir();
    if !dir.is_dir() {
        bail!("no ledger in {}", dir.display());
    }
    if let Some(to) = to.filter(|to| *to < from) {
        bail!("--to {to} is before --from {from}: the range of entries is empty");
    }
    check_from(&dir, from)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for item in tenet_ledger::entries(&dir, from)? {
        let (index, entry) = item.with_context(|| format!("reading {}", dir.display()))?;
        if to.is_some_and(|to| index >= to) {
            break;
        }
        check_json(index, &entry)?;
        let written = match format {
            ExportFormat::Ocsf => out.write_all(&entry).and_then(|()| out.write_all(b"\n")),
            ExportFormat::Jsonl => write!(
                out,
                "{{\"index\":{index},\"leaf_hash\":\"{}\",\"event\":",
                leaf_hash(&entry)
            )
            .and_then(|()| out.write_all(&entry))
            .and_then(|()| out.write_all(b"}\n")),
        };
        if written.is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    // A closed pipe at the end is not an error either.
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

/// The event's OCSF `time` (milliseconds) as RFC 3339.
fn event_time(event: &Value) -> String {
    event
        .get("time")
        .and_then(Value::as_i64)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// A field of the event as text: strings as they are, numbers in decimal, else "-".
fn field(event: &Value, pointer: &str) -> String {
    match event.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "-".into(),
    }
}

fn strings(event: &Value, pointer: &str) -> Vec<String> {
    event
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A one-line summary of a stored event (OCSF form), as `tenet log tail --format text` and
/// the demo print it.
pub fn summary(event: &Value) -> String {
    let f = |pointer| field(event, pointer);
    let rejection = event.pointer("/unmapped/stage").is_some();
    match event.get("class_uid").and_then(Value::as_u64) {
        Some(4002) if !rejection => {
            let mut why = strings(event, "/unmapped/reasons");
            why.extend(strings(event, "/unmapped/errors"));
            let why = if why.is_empty() {
                tenet_event::default_deny_text(&strings(event, "/unmapped/near_misses"))
            } else {
                why.join(", ")
            };
            let decision = if f("/disposition") == "Allowed" {
                "allow"
            } else {
                "deny"
            };
            format!(
                "{} {} {} {}{} -> {decision} [{why}]",
                f("/http_request/uid"),
                f("/actor/app_name"),
                f("/http_request/http_method"),
                f("/http_request/url/hostname"),
                f("/http_request/url/path"),
            )
        }
        // A person's or a device's authentication step (a rejection has a stage).
        Some(3002) if !rejection => format!(
            "auth {} {} {} from {}: {}",
            f("/unmapped/activity"),
            f("/user/name"),
            if f("/status") == "Success" {
                "succeeded"
            } else {
                "failed"
            },
            f("/src_endpoint/ip"),
            f("/status_detail"),
        ),
        Some(3002 | 4002) => format!(
            "rejected {} from {}:{}: {} ({})",
            f("/unmapped/stage"),
            f("/src_endpoint/ip"),
            f("/src_endpoint/port"),
            f("/unmapped/kind"),
            f("/status_detail"),
        ),
        Some(6003) => match f("/api/operation").as_str() {
            "svid.issue" => format!(
                "issued {} SVID for {} ({})",
                f("/unmapped/svid_type"),
                f("/unmapped/spiffe_id"),
                f("/unmapped/requested_by"),
            ),
            "policy.change" => format!(
                "policy {} ({} policies, {})",
                f("/unmapped/outcome"),
                f("/unmapped/policy_count"),
                f("/unmapped/active_hash"),
            ),
            operation => format!(
                "admin {operation} by {}: {}",
                f("/unmapped/actor"),
                f("/unmapped/detail")
            ),
        },
        Some(2004) => format!(
            "detection {} [{}] {}: {}",
            f("/finding_info/uid"),
            f("/unmapped/level"),
            f("/unmapped/subject"),
            f("/finding_info/desc"),
        ),
        _ => format!("{} event", f("/class_name")),
    }
}

#[cfg(test)]
mod tests {
    use tenet_event::{
        AccessEvent, AdminEvent, DetectionEvent, Disposition, Event, EventKind, PolicyEvent,
        RejectionEvent, SvidEvent,
    };

    use super::*;

    fn stored(kind: EventKind) -> Value {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        serde_json::from_slice(&Event::new(at, kind).to_canonical_json()).unwrap()
    }

    fn access(disposition: Disposition, reasons: &[&str]) -> EventKind {
        EventKind::Access(AccessEvent {
            request_id: "r1".into(),
            listener: "main".into(),
            principal: "spiffe://example.org/a".into(),
            action: "GET".into(),
            route: Some("catalog".into()),
            service: Some("catalog".into()),
            host: "catalog.example.org".into(),
            path: "/products".into(),
            query: None,
            source_ip: "127.0.0.1".parse().unwrap(),
            source_port: 4000,
            protocol: "HTTP/1.1".into(),
            tls_version: "TLSv1.3".into(),
            client_serial: None,
            disposition,
            status: Some(200),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            errors: vec![],
            near_misses: vec![],
            policy_hash: "abc".into(),
            decision_us: 4,
        })
    }

    fn default_deny_with_near_misses() -> EventKind {
        let mut kind = access(Disposition::Blocked, &[]);
        if let EventKind::Access(a) = &mut kind {
            a.near_misses = vec![
                "read: condition 1 (when { context.device.compliant }) is false".into(),
                "write: action not in scope".into(),
            ];
        }
        kind
    }

    #[test]
    fn a_default_deny_reads_with_its_closest_permits() {
        assert_eq!(
            summary(&stored(default_deny_with_near_misses())),
            "r1 spiffe://example.org/a GET catalog.example.org/products -> deny [default deny; \
             closest: read: condition 1 (when { context.device.compliant }) is false | write: \
             action not in scope]"
        );
    }

    fn authentication(success: bool) -> EventKind {
        EventKind::Authentication(tenet_event::AuthenticationEvent {
            activity: "mfa".into(),
            user: "user:corp:alice".into(),
            provider: Some("corp".into()),
            factor: Some("webauthn".into()),
            success,
            reason: "factor verified".into(),
            source_ip: "127.0.0.1".parse().unwrap(),
            device: None,
            request_id: None,
        })
    }

    fn detection() -> EventKind {
        EventKind::Detection(DetectionEvent {
            rule: "tenet.privilege-escalation".into(),
            title: "Privilege escalation".into(),
            level: "high".into(),
            subject: "user:corp:alice".into(),
            explanation: "allowed read on catalog for the first time".into(),
            tags: vec!["attack.privilege_escalation".into()],
            evidence: serde_json::json!({"policy_hash": "h2"}),
            engine: "analytics".into(),
        })
    }

    #[test]
    fn a_detection_reads_with_its_rule_level_subject_and_explanation() {
        assert_eq!(
            summary(&stored(detection())),
            "detection tenet.privilege-escalation [high] user:corp:alice: allowed read on \
             catalog for the first time"
        );
    }

    /// The summary read back from the stored OCSF form says what `Event::summary` says.
    #[test]
    fn summaries_from_the_stored_form_match_the_event_model() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let kinds = [
            access(Disposition::Allowed, &["p1", "p2"]),
            access(Disposition::Blocked, &[]),
            default_deny_with_near_misses(),
            EventKind::Rejection(RejectionEvent {
                request_id: None,
                listener: "main".into(),
                source_ip: "10.0.0.1".parse().unwrap(),
                source_port: 5555,
                stage: "tls".into(),
                kind: "no_client_certificate".into(),
                detail: "no certificate".into(),
                principal: None,
                status: None,
            }),
            EventKind::Policy(PolicyEvent {
                outcome: "reloaded".into(),
                active_hash: "h1".into(),
                candidate_hash: None,
                policy_count: 3,
                errors: vec![],
            }),
            EventKind::Admin(AdminEvent {
                actor: "spiffe://example.org/tenet/admin".into(),
                operation: "policy.reload".into(),
                success: true,
                detail: "unchanged".into(),
            }),
            authentication(true),
            authentication(false),
            detection(),
        ];
        for kind in kinds {
            let expected = Event::new(at, kind.clone()).summary();
            assert_eq!(summary(&stored(kind)), expected);
        }
        let svid = stored(EventKind::Svid(SvidEvent {
            spiffe_id: "spiffe://example.org/w".into(),
            svid_type: "x509".into(),
            serial: "01".into(),
            not_after: at,
            requested_by: "cli".into(),
        }));
        assert_eq!(
            summary(&svid),
            "issued x509 SVID for spiffe://example.org/w (cli)"
        );
        assert_eq!(event_time(&svid), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn entries_that_would_break_the_line_framing_are_refused() {
        check_json(0, br#"{"a":1}"#).unwrap();
        assert!(check_json(1, b"{\"a\":\n1}").is_err());
        assert!(check_json(2, b"not json").is_err());
    }
}
