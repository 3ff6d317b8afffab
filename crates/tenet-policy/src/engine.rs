//! Policy snapshots (a validated policy set) and the engine that swaps them on reload.

use std::fs;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use cedar_policy::Schema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::decision::{Decision, Explanation};
use crate::error::PolicyError;
use crate::index::ScopeIndex;
use crate::policy_set::{Naming, ParsedPolicies, Source};
use crate::request::{AccessRequest, AccessRequestRef, DecisionMemo, Vocabulary};
use crate::schema::TENET_SCHEMA;

/// An immutable policy set, validated (strict mode) against the built-in Tenet schema.
///
/// Policy ids are the `@id("...")` annotation when a policy has one, else
/// `<file name>:policyN` (N counts the policies of that file from 0). Ids are unique.
pub struct PolicySnapshot {
    index: ScopeIndex,
    vocabulary: Vocabulary,
    memo: DecisionMemo,
    ids: Vec<String>,
    versions: Vec<(String, String)>,
    unconditional: Vec<String>,
    files: Vec<String>,
    warnings: Vec<String>,
    hash: String,
}

impl std::fmt::Debug for PolicySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySnapshot")
            .field("hash", &self.hash)
            .field("files", &self.files)
            .field("policies", &self.ids.len())
            .finish_non_exhaustive()
    }
}

impl PolicySnapshot {
    /// Loads every `*.cedar` file of `dir` (not recursive; names starting with `.` are
    /// skipped). A `*.cedarschema` file there must equal [`TENET_SCHEMA`]: policies are always
    /// validated against the built-in schema, and a copy that says otherwise is an error.
    ///
    /// Every entry whose name ends in `.cedar` or `.cedarschema` (dot files excepted) must be
    /// a readable regular file (links are followed) of at most 16 MiB, and every name must be
    /// UTF-8; otherwise the whole set is refused, so that a policy is never dropped silently.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let read_dir = |source| PolicyError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let unusable = |reason: &str| PolicyError::UnusableEntry {
                path: path.clone(),
                reason: reason.to_owned(),
            };
            let raw_name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if raw_name.starts_with('.') {
                continue;
            }
            // INVARIANT: nothing that could be a policy file is skipped silently; a name that
            // is not UTF-8 could be one, so it is refused rather than ignored.
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                return Err(unusable("the file name is not UTF-8"));
            };
            let is_schema = name.ends_with(".cedarschema");
            if !(is_schema || name.ends_with(".cedar")) {
                continue;
            }
            // Follows links: the target must be a regular file of bounded size.
            let meta = fs::metadata(&path)
                .map_err(|e| unusable(&format!("cannot be read as a file ({e})")))?;
            if !meta.is_file() {
                return Err(unusable("is not a regular file"));
            }
            if meta.len() > MAX_POLICY_FILE_BYTES {
                return Err(unusable(&format!(
                    "is {} bytes; policy files are limited to {MAX_POLICY_FILE_BYTES}",
                    meta.len()
                )));
            }
            let text = fs::read_to_string(&path).map_err(|source| PolicyError::ReadFile {
                file: path.clone(),
                source,
            })?;
            if is_schema {
                if crate::schema::PREVIOUS_SCHEMAS
                    .iter()
                    .any(|old| same_text(&text, old))
                {
                    tracing::warn!(
                        file = %name,
                        "an older copy of the Tenet schema: policies are validated against the \
                         current built-in schema; replace the copy with the one a new \
                         `tenet init` writes"
                    );
                } else if !same_text(&text, TENET_SCHEMA) {
                    return Err(PolicyError::SchemaMismatch {
                        file: name.to_owned(),
                    });
                }
            } else {
                files.push((name.to_owned(), text));
            }
        }
        Self::from_sources(&files)
    }

    /// Builds a snapshot from named policy texts (the names play the part of file names).
    /// An empty list is a valid, empty set, which denies everything.
    pub fn from_sources(files: &[(String, String)]) -> Result<Self, PolicyError> {
        let mut sorted: Vec<&(String, String)> = files.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in sorted.windows(2) {
            if let [a, b] = pair
                && a.0 == b.0
            {
                return Err(PolicyError::DuplicateSource { name: a.0.clone() });
            }
        }
        let sources: Vec<Source<'_>> = sorted
            .iter()
            .map(|(name, text)| Source { name, text })
            .collect();

        let schema = tenet_schema()?;
        let parsed = ParsedPolicies::parse(&sources, Naming::Qualified)?;
        let warnings = parsed.validate(&schema, &sources)?;
        let index = parsed.index(&sources)?;
        let vocabulary = Vocabulary::new().map_err(|message| PolicyError::Schema { message })?;
        Ok(Self {
            index,
            vocabulary,
            memo: DecisionMemo::default(),
            ids: parsed.ids(),
            versions: parsed.versions(),
            unconditional: parsed.unconditional_permits(),
            files: sources.iter().map(|s| s.name.to_owned()).collect(),
            warnings,
            hash: content_hash(&sources),
        })
    }

    /// Authorizes one request. Never panics; any failure to build or evaluate the request
    /// denies with the reason in the decision's errors.
    pub fn authorize(&self, req: &AccessRequest) -> Decision {
        self.decide(req, false).decision
    }

    /// Authorizes one request and tells which policies errored and how many ran, and, for a
    /// default deny, which permits came closest and what they lacked (the allow and forbid
    /// paths cost what [`Self::authorize`] costs).
    pub fn explain(&self, req: &AccessRequest) -> Explanation {
        self.decide(req, true)
    }

    /// [`Self::explain`] for the gateway's hot path: an identical request (every field, the
    /// clock's second included) already decided by this snapshot is answered from a memo of
    /// its recent decisions. Decisions are pure functions of the snapshot and the request, so
    /// the answer is the one evaluation would give; a keep-alive caller repeating a request
    /// skips the request mapping and Cedar. Bounded: the memo is cleared when full.
    pub fn explain_memoized(&self, req: &AccessRequest) -> Arc<Explanation> {
        self.explain_memoized_ref(req.borrowed())
    }

    /// [`Self::explain_memoized`] by reference: a request the memo answers is never copied.
    pub fn explain_memoized_ref(&self, req: AccessRequestRef<'_>) -> Arc<Explanation> {
        self.memo
            .get_or_decide(req, |owned| self.decide(owned, true))
    }

    #[cfg(test)]
    pub(crate) fn memo_len(&self) -> usize {
        self.memo.len()
    }

    fn decide(&self, req: &AccessRequest, find_near_misses: bool) -> Explanation {
        match self.vocabulary.translate(req) {
            Ok(cedar) => cedar.decide(&self.index, find_near_misses),
            Err(error) => Explanation::failed(error),
        }
    }

    /// SHA-256 (hex) over the policy files sorted by name: for each, its name, a NUL byte, its
    /// length in bytes (8 bytes, big-endian) and its text.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The number of policies.
    pub fn policy_count(&self) -> usize {
        self.ids.len()
    }

    /// The policy ids, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Each policy id with a digest of its effect, scope and conditions (not its annotations),
    /// sorted by id: a policy edited under the same id has another digest.
    pub fn policy_versions(&self) -> &[(String, String)] {
        &self.versions
    }

    /// Ids of `permit` policies without any scope constraint or condition (they allow
    /// everything to everyone), sorted.
    pub fn unconditional_permits(&self) -> &[String] {
        &self.unconditional
    }

    /// The policy file names, sorted.
    pub fn source_files(&self) -> &[String] {
        &self.files
    }

    /// The validator's warnings (they do not reject the set).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The built-in schema, parsed.
pub(crate) fn tenet_schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(TENET_SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Schema {
            message: e.to_string(),
        })
}

/// Whether a schema file's text is the built-in schema (line endings and trailing whitespace
/// aside).
/// Equal but for trailing white space.
fn same_text(a: &str, b: &str) -> bool {
    fn lines(s: &str) -> impl Iterator<Item = &str> {
        s.trim_end().lines().map(str::trim_end)
    }
    lines(a).eq(lines(b))
}

fn content_hash(sources: &[Source<'_>]) -> String {
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.name.as_bytes());
        hasher.update([0]);
        hasher.update((source.text.len() as u64).to_be_bytes());
        hasher.update(source.text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// Whether the policy files differ from the ones in force (when not, nothing is swapped).
    pub changed: bool,
    /// The hash of the set in force before the reload.
    pub old_hash: String,
    /// The hash of the set in force after the reload.
    pub new_hash: String,
    /// The number of policies in force after the reload.
    pub policy_count: usize,
}

/// Largest policy file accepted.
const MAX_POLICY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The policy decision point's state: the snapshot in force, swapped whole on reload.
#[derive(Debug)]
pub struct PolicyEngine {
    current: RwLock<Arc<PolicySnapshot>>,
}

impl PolicyEngine {
    /// An engine with `initial` in force.
    pub fn new(initial: PolicySnapshot) -> Self {
        Self {
            current: RwLock::new(Arc::new(initial)),
        }
    }

    /// The snapshot in force. Hold it for the whole of one request so that the request is
    /// decided by one policy set.
    pub fn current(&self) -> Arc<PolicySnapshot> {
        // A panic elsewhere while the lock was held cannot leave the Arc half-written.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Authorizes one request against the snapshot in force.
    pub fn authorize(&self, req: &AccessRequest) -> Decision {
        self.current().authorize(req)
    }

    /// Loads and validates `dir`, then puts it in force. On any error the snapshot in force
    /// stays, and the error says why the new set was rejected.
    pub fn reload_dir(&self, dir: &Path) -> Result<ReloadOutcome, PolicyError> {
        let next = PolicySnapshot::load_dir(dir)?;
        Ok(self.install(next))
    }

    /// Puts an already validated snapshot in force (unless its hash equals the current one).
    pub fn install(&self, next: PolicySnapshot) -> ReloadOutcome {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old_hash = current.hash().to_owned();
        let changed = old_hash != next.hash();
        if changed {
            *current = Arc::new(next);
        }
        ReloadOutcome {
            changed,
            old_hash,
            new_hash: current.hash().to_owned(),
            policy_count: current.policy_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_serves_and_reloads() {
        let engine = Arc::new(PolicyEngine::new(
            PolicySnapshot::from_sources(&[]).unwrap(),
        ));
        let poisoner = Arc::clone(&engine);
        let result = std::thread::spawn(move || {
            let _guard = poisoner.current.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(result.is_err());
        assert!(engine.current.is_poisoned());
        assert_eq!(engine.current().policy_count(), 0);
        let files = [(
            "a.cedar".to_owned(),
            "permit (principal, action, resource);".to_owned(),
        )];
        let outcome = engine.install(PolicySnapshot::from_sources(&files).unwrap());
        assert!(outcome.changed);
        assert_eq!(engine.current().policy_count(), 1);
    }

    /// A policy's version follows its rule, not its file, layout or other annotations.
    #[test]
    fn a_policy_edited_under_the_same_id_has_another_version() {
        let version = |file: &str, text: &str| {
            let files = [(file.to_owned(), text.to_owned())];
            let snapshot = PolicySnapshot::from_sources(&files).unwrap();
            let [(id, version)] = snapshot.policy_versions() else {
                panic!("{:?}", snapshot.policy_versions());
            };
            assert_eq!(id, "read");
            version.clone()
        };
        let rule = r#"@id("read") permit (principal, action, resource)
            when { context.device.compliant };"#;
        let first = version("a.cedar", rule);
        assert_eq!(first.len(), 16);
        let moved = r#"@id("read") @owner("ops")
            permit (principal, action, resource) when {  context.device.compliant  };"#;
        assert_eq!(version("b.cedar", moved), first);
        let edited = r#"@id("read") permit (principal, action, resource);"#;
        assert_ne!(version("a.cedar", edited), first);
    }

    #[test]
    fn the_built_in_schema_parses_without_warnings() {
        let (_, warnings) = Schema::from_cedarschema_str(TENET_SCHEMA).unwrap();
        assert_eq!(warnings.count(), 0);
    }
}

#[cfg(test)]
mod unconditional_tests {
    use super::PolicySnapshot;

    #[test]
    fn unconditional_permits_are_listed() {
        let text = r#"
@id("open") permit(principal, action, resource);
@id("guarded") permit(principal, action, resource) when { context.risk < 50 };
@id("scoped") permit(principal == Tenet::Workload::"spiffe://example.org/a", action, resource);
@id("block") forbid(principal, action, resource);
"#;
        let snap = PolicySnapshot::from_sources(&[("p.cedar".into(), text.into())]).unwrap();
        assert_eq!(snap.unconditional_permits(), ["open".to_owned()]);
    }
}
