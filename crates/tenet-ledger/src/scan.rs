//! The verification pass: checkpoints first, then one streaming read of every record beside
//! the tree file, then classification of the first difference.

use std::path::{Path, PathBuf};

use crate::checkpoint::{SignedCheckpoint, StoredNotes, read_notes};
use crate::hash::Hash;
use crate::merkle::{Frontier, NodeSource};
use crate::note::VerifierKey;
use crate::reader::{CHECKPOINTS_FILE, SEGMENTS_DIR, TREE_FILE};
use crate::segment::{Header, SegmentReader, Step, list_segments};
use crate::tree_file::{TreeCursor, TreeFile};
use crate::verify::{
    CheckpointRef, Completeness, Finding, Report, Verdict, VerifyError, VerifyOptions, Warning,
};

/// A validly signed checkpoint the records are measured against.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    size: u64,
    root: Hash,
    source: CheckpointRef,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError {
    let path = path.to_owned();
    move |source| VerifyError::Io { path, source }
}

/// Verify the ledger in `dir` against checkpoints signed by `key`, with extra options.
pub fn verify_with(
    dir: &Path,
    key: &VerifierKey,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    if !dir.is_dir() {
        return Err(VerifyError::NoDirectory(dir.to_owned()));
    }
    let mut findings = Vec::new();
    let mut warnings = Vec::new();

    let (anchors, examined) = check_checkpoints(dir, key, options, &mut findings, &mut warnings)?;
    let limit = options.up_to.unwrap_or(u64::MAX);
    let mut scan = Scan::new(dir, &anchors, options.window, limit)?;
    scan.read_records(dir, &mut findings, &mut warnings)?;
    scan.finish_stored()?;
    classify(dir, &anchors, &scan, &mut findings)?;

    let entries = scan.entries;
    let stored = scan.cursor.leaves();
    let newest = anchors.iter().map(|a| a.size).max();
    if stored < entries {
        warnings.push(Warning::TreeBehind { stored, entries });
    } else if stored > entries && newest.is_none_or(|n| n <= entries) {
        warnings.push(Warning::TreeAhead { stored, entries });
    }

    // Entry findings by position, then checkpoint findings in the order found.
    findings.sort_by_key(|f| f.entry().unwrap_or(u64::MAX));
    findings.dedup();
    let more = findings.len().saturating_sub(options.max_findings);
    findings.truncate(options.max_findings);

    let completeness = match newest {
        None => Completeness::Unknown,
        Some(size) => Completeness::Anchored {
            size,
            unanchored: entries.saturating_sub(size),
        },
    };
    let verdict = match (findings.is_empty(), completeness) {
        (false, _) => Verdict::Tampered,
        (true, Completeness::Unknown) => Verdict::IntegrityOnly,
        (true, Completeness::Anchored { .. }) => Verdict::Verified,
    };
    Ok(Report {
        verdict,
        entries,
        root: scan.rec.root(),
        checkpoints: examined,
        completeness,
        findings,
        more_findings: more as u64,
        warnings,
    })
}

/// Check every stored and trusted checkpoint; return the valid ones as anchors sorted by
/// size (one per size) and how many were examined.
fn check_checkpoints(
    dir: &Path,
    key: &VerifierKey,
    options: &VerifyOptions,
    findings: &mut Vec<Finding>,
    warnings: &mut Vec<Warning>,
) -> Result<(Vec<Anchor>, usize), VerifyError> {
    let path = dir.join(CHECKPOINTS_FILE);
    let stored = if options.stored_checkpoints {
        read_notes(&path).map_err(io_err(&path))?
    } else {
        StoredNotes::default()
    };
    if stored.torn_bytes > 0 {
        warnings.push(Warning::TornCheckpoint {
            bytes: stored.torn_bytes,
        });
    }
    let mut origin = options.origin.clone();
    let mut anchors: Vec<Anchor> = Vec::new();
    let mut newest: Option<u64> = None;

    let limit = options.up_to.unwrap_or(u64::MAX);
    // A note repeated word for word needs its signature checked once (a checkpoints file
    // padded with copies must not make verification, or a start, take hours).
    let mut verified: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (n, text) in stored.notes.iter().enumerate() {
        let source = CheckpointRef::Stored(n);
        let anchor = if verified.contains(text.as_str()) {
            SignedCheckpoint::parse(text).ok().map(|signed| Anchor {
                size: signed.size(),
                root: signed.root(),
                source,
            })
        } else {
            check_one(text, source, key, &mut origin, findings)
        };
        let Some(anchor) = anchor else {
            continue;
        };
        verified.insert(text.as_str());
        if anchor.size > limit {
            // Signed past the part being verified (while it was verified).
            continue;
        }
        if let Some(before) = newest.filter(|b| anchor.size < *b) {
            findings.push(Finding::CheckpointRollback {
                checkpoint: source,
                size: anchor.size,
                newest: before,
            });
        }
        newest = newest.max(Some(anchor.size));
        add_anchor(&mut anchors, anchor, findings);
    }
    for (n, text) in options.trusted_checkpoints.iter().enumerate() {
        let source = CheckpointRef::Trusted(n);
        let Some(anchor) = check_one(text, source, key, &mut origin, findings) else {
            continue;
        };
        if anchor.size > limit {
            continue;
        }
        if newest.is_none_or(|b| anchor.size > b) {
            findings.push(Finding::CheckpointRollback {
                checkpoint: source,
                size: anchor.size,
                newest: newest.unwrap_or(0),
            });
        }
        add_anchor(&mut anchors, anchor, findings);
    }
    for (n, &(size, root)) in options.trusted_roots.iter().enumerate() {
        if size > 0 && size <= limit {
            let source = CheckpointRef::TrustedRoot(n);
            add_anchor(&mut anchors, Anchor { size, root, source }, findings);
        }
    }
    anchors.sort_by_key(|a| a.size);
    Ok((
        anchors,
        stored.notes.len() + options.trusted_checkpoints.len(),
    ))
}

fn check_one(
    text: &str,
    source: CheckpointRef,
    key: &VerifierKey,
    origin: &mut Option<String>,
    findings: &mut Vec<Finding>,
) -> Option<Anchor> {
    let signed = match SignedCheckpoint::parse(text) {
        Ok(signed) => signed,
        Err(e) => {
            findings.push(Finding::MalformedCheckpoint {
                checkpoint: source,
                reason: e.to_string(),
            });
            return None;
        }
    };
    if let Err(e) = signed.verify(key) {
        findings.push(Finding::BadSignature {
            checkpoint: source,
            reason: e.to_string(),
        });
        return None;
    }
    let this = &signed.checkpoint().origin;
    match origin {
        Some(expected) if expected != this => {
            findings.push(Finding::WrongOrigin {
                checkpoint: source,
                origin: this.clone(),
            });
            return None;
        }
        Some(_) => {}
        None => *origin = Some(this.clone()),
    }
    Some(Anchor {
        size: signed.size(),
        root: signed.root(),
        source,
    })
}

fn add_anchor(anchors: &mut Vec<Anchor>, anchor: Anchor, findings: &mut Vec<Finding>) {
    match anchors.iter().find(|a| a.size == anchor.size) {
        Some(same) if same.root != anchor.root => findings.push(Finding::ForkedCheckpoint {
            checkpoint: anchor.source,
            size: anchor.size,
        }),
        Some(_) => {}
        None => anchors.push(anchor),
    }
}

/// State of the streaming pass.
struct Scan<'a> {
    anchors: &'a [Anchor],
    next_anchor: usize,
    /// Per anchor: the recomputed root at its size matches.
    rec_ok: Vec<bool>,
    /// Per anchor: the root over the tree file's leaves at its size matches.
    stored_ok: Vec<bool>,
    /// Frontier over the recomputed leaves.
    rec: Frontier,
    /// Frontier over the stored leaves, once they differ from the recomputed ones.
    stored: Option<Frontier>,
    cursor: TreeCursor,
    tree_path: PathBuf,
    stored_read: u64,
    next_stored_anchor: usize,
    group: Vec<Hash>,
    stored_group: Vec<Hash>,
    /// First index whose stored leaf differs from the recomputed one.
    diverged_at: Option<u64>,
    /// First index whose stored subtree hashes differ while the leaves agree.
    tree_damage_at: Option<u64>,
    /// Recomputed leaves from `diverged_at` on, up to `window`.
    rec_window: Vec<Hash>,
    window: usize,
    entries: u64,
    /// No record at or past this index is read.
    limit: u64,
    unreadable: bool,
}

impl<'a> Scan<'a> {
    fn new(
        dir: &Path,
        anchors: &'a [Anchor],
        window: usize,
        limit: u64,
    ) -> Result<Self, VerifyError> {
        let tree_path = dir.join(TREE_FILE);
        let cursor = TreeCursor::open(&tree_path)
            .map_err(io_err(&tree_path))?
            .up_to(limit);
        let mut scan = Self {
            anchors,
            next_anchor: 0,
            rec_ok: vec![false; anchors.len()],
            stored_ok: vec![false; anchors.len()],
            rec: Frontier::default(),
            stored: None,
            cursor,
            tree_path,
            stored_read: 0,
            next_stored_anchor: 0,
            group: Vec::with_capacity(64),
            stored_group: Vec::with_capacity(64),
            diverged_at: None,
            tree_damage_at: None,
            rec_window: Vec::new(),
            window: window.max(1),
            entries: 0,
            limit,
            unreadable: false,
        };
        scan.check_anchors();
        Ok(scan)
    }

    /// Stream every segment in order.
    fn read_records(
        &mut self,
        dir: &Path,
        findings: &mut Vec<Finding>,
        warnings: &mut Vec<Warning>,
    ) -> Result<(), VerifyError> {
        let seg_dir = dir.join(SEGMENTS_DIR);
        let segments = list_segments(&seg_dir).map_err(io_err(&seg_dir))?;
        let newest = self.anchors.last().map_or(0, |a| a.size);
        let count = segments.len();
        for (n, (first, path)) in segments.iter().enumerate() {
            if self.entries >= self.limit || *first >= self.limit {
                // Past the bound: written after the verification started.
                return Ok(());
            }
            let last = n + 1 == count;
            let mut reader = SegmentReader::open(path).map_err(io_err(path))?;
            let unreadable = |entry, reason| Finding::Unreadable {
                entry,
                segment: path.clone(),
                offset: 0,
                reason,
            };
            match reader.header() {
                Header::First(h) if h != *first => {
                    findings.push(unreadable(self.entries, "header disagrees with file name"));
                    self.unreadable = true;
                    return Ok(());
                }
                Header::First(h) if h > self.entries => findings.push(Finding::Missing {
                    entry: self.entries,
                    count: h - self.entries,
                }),
                Header::First(h) if h < self.entries => findings.push(Finding::Inserted {
                    entry: h,
                    count: self.entries - h,
                }),
                Header::First(_) => {}
                Header::Short if last && self.entries >= newest => {
                    warnings.push(Warning::TornTail {
                        segment: path.clone(),
                        offset: 0,
                        bytes: reader.file_len(),
                    });
                    return Ok(());
                }
                Header::Short | Header::BadMagic => {
                    findings.push(unreadable(self.entries, "not a segment header"));
                    self.unreadable = true;
                    return Ok(());
                }
            }
            if !self.read_segment(&mut reader, last, newest, findings, warnings)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Read one segment; false when reading must stop.
    fn read_segment(
        &mut self,
        reader: &mut SegmentReader,
        last: bool,
        newest: u64,
        findings: &mut Vec<Finding>,
        warnings: &mut Vec<Warning>,
    ) -> Result<bool, VerifyError> {
        loop {
            if self.entries >= self.limit {
                return Ok(false);
            }
            match reader.next(last).map_err(io_err(reader.path()))? {
                Step::Record {
                    leaf, checksum_ok, ..
                } => {
                    if !checksum_ok {
                        findings.push(Finding::Modified {
                            entry: self.entries,
                        });
                    }
                    self.push_record(leaf)?;
                }
                Step::End => return Ok(true),
                // A checkpointed record was synced before it was signed: a crash cannot
                // have damaged it, so damage there is tampering.
                Step::Torn {
                    leaf: Some(leaf), ..
                } if self.entries < newest => {
                    findings.push(Finding::Modified {
                        entry: self.entries,
                    });
                    self.push_record(leaf)?;
                    return Ok(false);
                }
                Step::Torn { offset, .. } => {
                    warnings.push(Warning::TornTail {
                        segment: reader.path().to_owned(),
                        offset,
                        bytes: reader.file_len() - offset,
                    });
                    return Ok(false);
                }
                Step::Broken { offset, reason } => {
                    findings.push(Finding::Unreadable {
                        entry: self.entries,
                        segment: reader.path().to_owned(),
                        offset,
                        reason,
                    });
                    self.unreadable = true;
                    return Ok(false);
                }
            }
        }
    }

    fn push_record(&mut self, leaf: Hash) -> Result<(), VerifyError> {
        let index = self.entries;
        let stored_leaf = self.next_stored()?;

        if let Some(stored_leaf) = stored_leaf {
            if self.diverged_at.is_none() && stored_leaf != leaf {
                self.diverged_at = Some(index);
                self.stored = Some(self.rec.clone());
            }
            if let Some(stored) = &mut self.stored {
                stored.push(stored_leaf, |_| {});
            }
        }

        let group = &mut self.group;
        group.clear();
        self.rec.push(leaf, |h| group.push(*h));
        if stored_leaf.is_some()
            && self.diverged_at.is_none()
            && self.tree_damage_at.is_none()
            && self.group != self.stored_group
        {
            self.tree_damage_at = Some(index);
        }
        if self.diverged_at.is_some() && self.rec_window.len() < self.window {
            self.rec_window.push(leaf);
        }
        self.entries += 1;
        self.check_anchors();
        Ok(())
    }

    /// The next stored leaf group (leaf first, into `stored_group`).
    fn next_stored(&mut self) -> Result<Option<Hash>, VerifyError> {
        let mut parents = std::mem::take(&mut self.stored_group);
        let leaf = self
            .cursor
            .next_group(&mut parents)
            .map_err(io_err(&self.tree_path))?;
        if let Some(leaf) = leaf {
            parents.insert(0, leaf);
            self.stored_read += 1;
        }
        self.stored_group = parents;
        Ok(leaf)
    }

    /// Compare roots at every anchor the record count just reached.
    fn check_anchors(&mut self) {
        while let Some(anchor) = self.anchors.get(self.next_anchor) {
            if anchor.size != self.entries {
                break;
            }
            let rec_ok = self.rec.root() == anchor.root;
            let stored_ok = match &self.stored {
                None => self.stored_read >= anchor.size && rec_ok,
                Some(stored) => stored.size() == anchor.size && stored.root() == anchor.root,
            };
            if let Some(slot) = self.rec_ok.get_mut(self.next_anchor) {
                *slot = rec_ok;
            }
            if let Some(slot) = self.stored_ok.get_mut(self.next_anchor) {
                *slot = stored_ok;
            }
            self.next_anchor += 1;
        }
        self.next_stored_anchor = self.next_anchor;
    }

    /// Read the stored leaves past the last record, to learn whether the tree file matches
    /// checkpoints the records no longer reach.
    fn finish_stored(&mut self) -> Result<(), VerifyError> {
        while self.anchors.get(self.next_stored_anchor).is_some() {
            let Some(leaf) = self.next_stored()? else {
                break;
            };
            let stored = self.stored.get_or_insert_with(|| self.rec.clone());
            stored.push(leaf, |_| {});
            while let Some(anchor) = self.anchors.get(self.next_stored_anchor) {
                if anchor.size != stored.size() {
                    break;
                }
                if let Some(slot) = self.stored_ok.get_mut(self.next_stored_anchor) {
                    *slot = stored.root() == anchor.root;
                }
                self.next_stored_anchor += 1;
            }
        }
        Ok(())
    }
}

/// Turn root mismatches and the first stored/recomputed difference into findings.
fn classify(
    dir: &Path,
    anchors: &[Anchor],
    scan: &Scan<'_>,
    findings: &mut Vec<Finding>,
) -> Result<(), VerifyError> {
    let ok = |n: usize, v: &[bool]| v.get(n).copied().unwrap_or(false);
    // Entries before `good` are vouched for by a matching checkpoint.
    let good = anchors
        .iter()
        .enumerate()
        .filter(|(n, _)| ok(*n, &scan.rec_ok))
        .map(|(_, a)| a.size)
        .max()
        .unwrap_or(0);
    let authenticated = anchors
        .iter()
        .enumerate()
        .filter(|(n, _)| ok(*n, &scan.stored_ok))
        .map(|(_, a)| a.size)
        .max()
        .unwrap_or(0);

    let mut first_bad: Option<&Anchor> = None;
    for (n, anchor) in anchors.iter().enumerate() {
        if ok(n, &scan.rec_ok) {
            continue;
        }
        if anchor.size < good {
            // The log is vouched for past this size, so this signature is the liar.
            findings.push(Finding::ForkedCheckpoint {
                checkpoint: anchor.source,
                size: anchor.size,
            });
        } else if first_bad.is_none() {
            first_bad = Some(anchor);
        }
    }

    let mut used_divergence = false;
    if let Some(bad) = first_bad.filter(|b| !scan.unreadable || b.size <= scan.entries) {
        let finding = match scan.diverged_at {
            Some(at) if at >= good && at < bad.size && at < authenticated => {
                used_divergence = true;
                locate(dir, scan, at)?
            }
            _ if scan.entries < bad.size && scan.diverged_at.is_none_or(|at| at < good) => {
                // The records are a proven prefix when the tree file holding them is
                // authenticated past their end.
                let prefix = scan.diverged_at.is_none() && authenticated > scan.entries;
                Finding::Truncated {
                    entries: scan.entries,
                    expected: anchors.last().map_or(bad.size, |a| a.size),
                    vouched: if prefix { scan.entries } else { good },
                }
            }
            _ => Finding::Rewritten {
                from: good,
                to: bad.size.min(scan.entries + 1),
                checkpoint_size: bad.size,
            },
        };
        findings.push(finding);
    }
    if let Some(at) = scan.diverged_at.filter(|_| !used_divergence) {
        findings.push(Finding::TreeMismatch { entry: at });
    }
    if let Some(at) = scan.tree_damage_at {
        findings.push(Finding::TreeMismatch { entry: at });
    }
    Ok(())
}

/// Name the change at `at`, where an authenticated tree file and the records first differ, by
/// looking for each side's entry in a window of the other.
fn locate(dir: &Path, scan: &Scan<'_>, at: u64) -> Result<Finding, VerifyError> {
    let path = dir.join(TREE_FILE);
    let (tree, _) = TreeFile::open(&path, false).map_err(io_err(&path))?;
    let end = tree.leaves().min(at + scan.window as u64);
    let stored = (at..end)
        .map(|i| tree.perfect_node(0, i))
        .collect::<Result<Vec<Hash>, _>>()
        .map_err(io_err(&path))?;
    let records = &scan.rec_window;
    let (Some(rec0), Some(stored0)) = (records.first(), stored.first()) else {
        return Ok(Finding::Modified { entry: at });
    };
    let rec_in_stored = stored.iter().position(|h| h == rec0);
    let stored_in_rec = records.iter().position(|h| h == stored0);
    Ok(match (rec_in_stored, stored_in_rec) {
        (Some(k), None) => Finding::Missing {
            entry: at,
            count: k as u64,
        },
        (None, Some(j)) => Finding::Inserted {
            entry: at,
            count: j as u64,
        },
        (Some(k), Some(_)) => Finding::Reordered {
            entry: at,
            original: at + k as u64,
        },
        (None, None) => Finding::Modified { entry: at },
    })
}
