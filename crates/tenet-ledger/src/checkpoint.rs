//! Checkpoints in the C2SP tlog-checkpoint format, the signer that refuses to go backwards,
//! and the checkpoints file.
//!
//! A checkpoint body is `<origin>\n<tree size>\n<base64 root>\n`
//! (<https://c2sp.org/tlog-checkpoint>), signed as a C2SP note. The checkpoints file holds the
//! signed notes one after another, each followed by one blank line, so it reads with `cat`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::hash::Hash;
use crate::note::{Note, NoteError, SIG_PREFIX, SigningKey, VerifierKey};

/// The unsigned content of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `tenet.example/ledger`.
    pub origin: String,
    /// Number of entries the checkpoint covers.
    pub size: u64,
    /// The RFC 9162 root of those entries.
    pub root: Hash,
}

/// A checkpoint that cannot be parsed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note around it is malformed or its signature fails.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body is not a C2SP checkpoint.
    #[error("checkpoint body is malformed: {0}")]
    Body(&'static str),
}

impl Checkpoint {
    /// The note body: origin, size and base64 root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }

    /// Parse a checkpoint body; extension lines after the root are allowed and ignored.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let mut lines = body.split_terminator('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(CheckpointError::Body("the origin line is empty"))?;
        let size = lines
            .next()
            .ok_or(CheckpointError::Body("no tree size line"))?;
        let valid_size = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = size
            .parse()
            .ok()
            .filter(|_| valid_size)
            .ok_or(CheckpointError::Body(
                "the tree size is not a decimal number",
            ))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Body("no root hash line"))?;
        let root = Hash::from_base64(root)
            .map_err(|_| CheckpointError::Body("the root hash is not base64 of 32 bytes"))?;
        if lines.any(str::is_empty) {
            return Err(CheckpointError::Body("an extension line is empty"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(CheckpointError::Body(
            "the origin must be one non-empty line without control characters",
        ));
    }
    Ok(())
}

/// A checkpoint with its signed note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Parse a signed checkpoint without checking any signature.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let note = Note::parse(text)?;
        let checkpoint = Checkpoint::parse_body(note.body())?;
        Ok(Self { checkpoint, note })
    }

    /// Parse and require a valid signature by `key`.
    pub fn open(text: &str, key: &VerifierKey) -> Result<Self, CheckpointError> {
        let signed = Self::parse(text)?;
        signed.verify(key)?;
        Ok(signed)
    }

    /// Check the signature by `key`.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), NoteError> {
        key.verify(&self.note)
    }

    /// The checkpoint content.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Number of entries covered.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// Root hash of those entries.
    pub fn root(&self) -> Hash {
        self.checkpoint.root
    }

    /// The whole signed note, as stored and as served.
    pub fn text(&self) -> &str {
        self.note.text()
    }
}

/// Why the signer refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The tree is smaller than one already signed.
    #[error("refusing to sign tree size {requested}: size {signed} was already signed")]
    Rollback {
        /// The size signed before.
        signed: u64,
        /// The size asked for.
        requested: u64,
    },
    /// A different root for a size already signed (a fork).
    #[error("refusing to sign a second root for tree size {size}")]
    Fork {
        /// The size.
        size: u64,
    },
    /// The signer's state file cannot be read or written.
    #[error("signer state file {path:?}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The signer's state file holds something else.
    #[error("signer state file {path:?} is not '<size> <root hex>'")]
    StateCorrupt {
        /// The file.
        path: PathBuf,
    },
}

/// Signs checkpoints for one origin and never signs a smaller tree, or a different root for
/// the same size, than it signed before. With a state file the floor survives restarts even
/// if the checkpoints file is rolled back.
#[derive(Debug)]
pub struct CheckpointSigner {
    key: SigningKey,
    origin: String,
    last: Option<(u64, Hash)>,
    state: Option<PathBuf>,
    /// The state file's mark of a clean stop: every entry was signed at this size.
    stopped: Option<u64>,
}

impl CheckpointSigner {
    /// A signer whose origin is the key name.
    pub fn new(key: SigningKey) -> Self {
        Self {
            origin: key.name().to_owned(),
            key,
            last: None,
            state: None,
            stopped: None,
        }
    }

    /// Use another origin line.
    pub fn with_origin(mut self, origin: &str) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        self.origin = origin.to_owned();
        Ok(self)
    }

    /// Keep the last signed size and root in `path` and start from what it holds. The ledger
    /// writes it once the checkpoint is stored ([`CheckpointSigner::prepare`],
    /// [`CheckpointSigner::record`]), so that the checkpoints file always holds the checkpoint
    /// the state names: a crash between the two leaves the state behind, never ahead.
    pub fn with_state_file(mut self, path: &Path) -> Result<Self, SignError> {
        if let Some(state) = read_signer(path)? {
            self.observe(state.size, state.root)?;
            self.stopped = state.stopped_at();
        }
        self.state = Some(path.to_owned());
        Ok(self)
    }

    /// Learn of a checkpoint signed earlier (e.g. the newest in the checkpoints file), raising
    /// the floor. A second root for the floor's size is a fork.
    pub fn observe(&mut self, size: u64, root: Hash) -> Result<(), SignError> {
        match self.last {
            Some((last, last_root)) if last == size && last_root != root => {
                Err(SignError::Fork { size })
            }
            Some((last, _)) if last >= size => Ok(()),
            _ => {
                self.last = Some((size, root));
                Ok(())
            }
        }
    }

    /// The newest size and root signed or observed.
    pub fn last_signed(&self) -> Option<(u64, Hash)> {
        self.last
    }

    /// The origin line this signer writes.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key for this signer's checkpoints.
    pub fn verifier_key(&self) -> VerifierKey {
        self.key.verifier_key()
    }

    /// Sign the checkpoint for a tree of `size` entries with `root` and record it in the state
    /// file: [`CheckpointSigner::prepare`] then [`CheckpointSigner::record`].
    pub fn sign(&mut self, size: u64, root: Hash) -> Result<SignedCheckpoint, SignError> {
        let signed = self.prepare(size, root)?;
        self.record(&signed)?;
        Ok(signed)
    }

    /// Record in the state file (when there is one) that `signed` was signed and stored.
    pub fn record(&mut self, signed: &SignedCheckpoint) -> Result<(), SignError> {
        self.write(signed.size(), &signed.root(), false)
    }

    /// The size at which the state file says the ledger's writer last stopped cleanly, every
    /// entry signed: entries past it were appended while no writer ran. `None` while a
    /// writer runs, after a crash, or without a state file.
    pub fn stopped_at(&self) -> Option<u64> {
        self.stopped
    }

    /// Mark in the state file that the writer stops cleanly with every entry signed (call
    /// after the final checkpoint covering them all).
    pub fn mark_stopped(&mut self) -> Result<(), SignError> {
        match self.last {
            Some((size, root)) => {
                self.write(size, &root, true)?;
                self.stopped = Some(size);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Clear the mark of a clean stop (a writer starts, having checked that nothing was
    /// appended since).
    pub fn mark_running(&mut self) -> Result<(), SignError> {
        match (self.stopped, self.last) {
            (Some(_), Some((size, root))) => self.write(size, &root, false),
            _ => Ok(()),
        }
    }

    fn write(&mut self, size: u64, root: &Hash, stopped: bool) -> Result<(), SignError> {
        if let Some(path) = &self.state {
            write_state(path, size, root, stopped).map_err(|source| SignError::State {
                path: path.clone(),
                source,
            })?;
        }
        self.stopped = stopped.then_some(size);
        Ok(())
    }

    /// Sign the checkpoint for a tree of `size` entries with `root`, raising this signer's
    /// floor, without writing the state file: store the checkpoint, then
    /// [`CheckpointSigner::record`] it.
    pub fn prepare(&mut self, size: u64, root: Hash) -> Result<SignedCheckpoint, SignError> {
        if let Some((signed, signed_root)) = self.last {
            if size < signed {
                return Err(SignError::Rollback {
                    signed,
                    requested: size,
                });
            }
            if size == signed && root != signed_root {
                return Err(SignError::Fork { size });
            }
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let note = self.key.sign_note(&checkpoint.body());
        self.last = Some((size, root));
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

/// The size and root a signer's state file says were last signed; `None` when there is no
/// such file (nothing signed yet).
pub fn read_signer_state(path: &Path) -> Result<Option<(u64, Hash)>, SignError> {
    Ok(read_signer(path)?.map(|s| (s.size, s.root)))
}

/// The size the signer's state file says every entry was signed at when the ledger's writer
/// last stopped cleanly; `None` when it is running, crashed, or never signed. Entries past
/// it were appended while no writer ran.
pub fn read_signer_stop(path: &Path) -> Result<Option<u64>, SignError> {
    Ok(read_signer(path)?.and_then(|s| s.stopped_at()))
}

/// What a signer's state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignerState {
    /// The size last signed.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The writer stopped cleanly with every entry signed at `size`.
    pub stopped: bool,
}

impl SignerState {
    /// `size` after a clean stop ([`read_signer_stop`]).
    pub fn stopped_at(&self) -> Option<u64> {
        self.stopped.then_some(self.size)
    }
}

/// The signer's state file, read once: `<size> <root hex>`, followed by ` stopped` after a
/// clean stop; `None` when there is no such file (nothing signed yet).
pub fn read_signer(path: &Path) -> Result<Option<SignerState>, SignError> {
    let text =
        match crate::segment::require_regular(path).and_then(|()| std::fs::read_to_string(path)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SignError::State {
                    path: path.to_owned(),
                    source,
                });
            }
        };
    let corrupt = || SignError::StateCorrupt {
        path: path.to_owned(),
    };
    let mut words = text.split_whitespace();
    let (Some(size), Some(root)) = (words.next(), words.next()) else {
        return Err(corrupt());
    };
    let stopped = match (words.next(), words.next()) {
        (None, None) => false,
        (Some(STOPPED), None) => true,
        _ => return Err(corrupt()),
    };
    let size = size.parse().map_err(|_| corrupt())?;
    let root = Hash::from_hex(root).map_err(|_| corrupt())?;
    Ok(Some(SignerState {
        size,
        root,
        stopped,
    }))
}

/// The state file's mark of a clean stop.
const STOPPED: &str = "stopped";

fn write_state(path: &Path, size: u64, root: &Hash, stopped: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    let mark = if stopped { " stopped" } else { "" };
    file.write_all(format!("{size} {}{mark}\n", root.to_hex()).as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The checkpoints file's notes, in order, and the length of an unterminated final note
/// (a write the process did not finish).
#[derive(Debug, Default)]
pub(crate) struct StoredNotes {
    pub(crate) notes: Vec<String>,
    pub(crate) complete_len: u64,
    pub(crate) torn_bytes: u64,
}

/// Read the checkpoints file; a missing file holds no notes.
pub(crate) fn read_notes(path: &Path) -> io::Result<StoredNotes> {
    crate::segment::require_regular(path)?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoredNotes::default()),
        Err(e) => return Err(e),
    };
    let find = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.windows(2).position(|w| w == b"\n\n"))
            .map(|at| from + at)
    };
    let mut notes = Vec::new();
    let mut pos = 0usize;
    // Each note is `body \n sigs \n` with body and sigs ending in '\n'.
    while let Some(body_end) = find(pos) {
        let Some(sigs_end) = find(body_end + 2) else {
            break;
        };
        let end = sigs_end + 2;
        let note = bytes.get(pos..end - 1).unwrap_or_default();
        notes.push(String::from_utf8_lossy(note).into_owned());
        pos = end;
    }
    let complete_len = pos as u64;
    Ok(StoredNotes {
        notes,
        complete_len,
        torn_bytes: bytes.len() as u64 - complete_len,
    })
}

/// What [`find_note`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoteLookup {
    /// The text of the last note of that size.
    Found(String),
    /// No complete note of that size.
    Absent,
    /// The search met a note it cannot use (unparseable, or longer than a note can be): the
    /// caller reads the file whole.
    Unusable,
}

/// How much of the file one probe reads first; a note is about 200 bytes.
const PROBE: u64 = 4096;
/// The longest note a probe looks for before giving up on the search.
const MAX_PROBE: u64 = 64 * 1024;
/// How a signature line starts.
const SIGNATURE_START: &[u8] = SIG_PREFIX.as_bytes();

/// The note at or after byte `pos`.
enum Probe {
    Note {
        start: u64,
        end: u64,
        text: String,
    },
    /// No complete note starts in `pos..`.
    None,
    /// No note boundary or end within [`MAX_PROBE`] bytes.
    TooLong,
}

/// The note starting at or after byte `pos` of the notes file (`len` bytes). A note starts
/// at 0 or after the blank line ending the one before: a `\n\n` not followed by a signature
/// line (the blank line between a note's body and its signatures is).
fn probe(file: &File, len: u64, pos: u64) -> io::Result<Probe> {
    use std::os::unix::fs::FileExt;
    let from = pos.saturating_sub(2);
    let mut window = PROBE;
    loop {
        let want = (len - from).min(window);
        let mut buf = vec![0u8; usize::try_from(want).unwrap_or(0)];
        file.read_exact_at(&mut buf, from)?;
        let at_eof = from + want == len;
        let blank = |after: usize| {
            buf.get(after..)
                .and_then(|rest| rest.windows(2).position(|w| w == b"\n\n"))
                .map(|at| after + at)
        };
        let mut start = (pos == 0).then_some(0usize);
        let mut cursor = 0usize;
        while start.is_none() {
            let Some(at) = blank(cursor) else { break };
            cursor = at + 1;
            let candidate = at + 2;
            if from + (candidate as u64) < pos {
                continue;
            }
            let rest = buf.get(candidate..).unwrap_or_default();
            if rest.len() < SIGNATURE_START.len() && !at_eof {
                break; // cannot tell yet: read more
            }
            if rest.is_empty() {
                return Ok(Probe::None);
            }
            if !rest.starts_with(SIGNATURE_START) {
                start = Some(candidate);
            }
        }
        if let Some(start) = start {
            let complete = blank(start).and_then(|body_end| blank(body_end + 2));
            if let Some(sigs_end) = complete {
                let note = buf.get(start..=sigs_end).unwrap_or_default();
                return Ok(Probe::Note {
                    start: from + start as u64,
                    end: from + sigs_end as u64 + 2,
                    text: String::from_utf8_lossy(note).into_owned(),
                });
            }
        }
        if at_eof {
            // Nothing after `pos`, or only a torn final note.
            return Ok(Probe::None);
        }
        if window >= MAX_PROBE {
            return Ok(Probe::TooLong);
        }
        window *= 4;
    }
}

/// The last stored note of a checkpoint of exactly `size` entries, by binary search over the
/// file (a few small reads however many checkpoints it holds): the signer never signs a
/// smaller tree after a larger one, so sizes do not decrease along the file. A file out of
/// that order (tampered with) can make the search miss; `tenet log verify` reports it.
pub(crate) fn find_note(path: &Path, size: u64) -> io::Result<NoteLookup> {
    crate::segment::require_regular(path)?;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(NoteLookup::Absent),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let (mut lo, mut hi) = (0u64, len);
    let mut found = None;
    // Notes starting in lo..hi are still in question; lo is always where a note starts.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match probe(&file, len, mid)? {
            Probe::TooLong => return Ok(NoteLookup::Unusable),
            Probe::None => hi = mid,
            Probe::Note { start, .. } if start >= hi => hi = mid,
            Probe::Note { start, end, text } => {
                let Ok(signed) = SignedCheckpoint::parse(&text) else {
                    return Ok(NoteLookup::Unusable);
                };
                match signed.size().cmp(&size) {
                    std::cmp::Ordering::Less => lo = end,
                    std::cmp::Ordering::Greater => hi = start,
                    std::cmp::Ordering::Equal => {
                        found = Some(text);
                        lo = end;
                    }
                }
            }
        }
    }
    Ok(found.map_or(NoteLookup::Absent, NoteLookup::Found))
}

/// The last complete note of the notes file and where the complete notes end, read from the
/// file's end (opening a ledger must not read years of checkpoints, one a second, to find the
/// newest): the same as [`read_notes`]'s last note, `complete_len` and `torn_bytes`.
pub(crate) fn read_last_note(path: &Path) -> io::Result<(Option<String>, StoredNotes)> {
    crate::segment::require_regular(path)?;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((None, StoredNotes::default()));
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut window = PROBE;
    loop {
        let from = len.saturating_sub(window);
        let mut pos = from;
        let mut last = None;
        while pos < len {
            match probe(&file, len, pos)? {
                Probe::Note { end, text, .. } => {
                    last = Some((end, text));
                    pos = end;
                }
                Probe::None => break,
                Probe::TooLong => pos = len, // look further back
            }
        }
        let tail = |complete_len: u64| {
            let torn_bytes = len - complete_len;
            if torn_bytes > MAX_PROBE {
                // An unfinished append leaves part of one note, never this much.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the file ends in {torn_bytes} bytes that are no complete checkpoint \
                         (an interrupted write leaves at most part of one)"
                    ),
                ));
            }
            Ok(StoredNotes {
                notes: Vec::new(),
                complete_len,
                torn_bytes,
            })
        };
        if let Some((end, text)) = last {
            return Ok((Some(text), tail(end)?));
        }
        if from == 0 || window > MAX_PROBE {
            return Ok((None, tail(0)?));
        }
        window *= 4;
    }
}

/// Append one signed note and its separator, then sync.
pub(crate) fn append_note(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_data()
}

/// Cut an unterminated final note.
pub(crate) fn cut_notes(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(SigningKey::from_seed("tenet.test/ledger", &[3u8; 32]).unwrap())
    }

    #[test]
    fn body_is_c2sp_and_round_trips() {
        let cp = Checkpoint {
            origin: "tenet.test/ledger".into(),
            size: 5,
            root: leaf_hash(b"x"),
        };
        let body = cp.body();
        assert_eq!(body.lines().count(), 3);
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
        assert!(Checkpoint::parse_body("o\n05\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n-1\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("\n1\nAAAA\n").is_err());
    }

    /// The binary search finds exactly what reading the whole file finds, for files of many
    /// lengths, notes of two lengths, repeated sizes, and a torn final note.
    #[test]
    fn find_note_agrees_with_reading_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 7;
        for count in [0usize, 1, 2, 3, 5, 17, 64, 300] {
            let path = dir.path().join(format!("notes-{count}"));
            let mut short = signer();
            let mut long = signer()
                .with_origin("tenet.test/a-much-longer-origin-line-for-this-ledger")
                .unwrap();
            let mut size = 0u64;
            for n in 0..count {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                size += (x >> 60) % 3;
                let signer = if n % 3 == 0 { &mut long } else { &mut short };
                let signed = signer.sign(size, leaf_hash(&size.to_le_bytes())).unwrap();
                append_note(&path, signed.text()).unwrap();
            }
            let check = |torn: bool| {
                let notes = read_notes(&path).unwrap();
                assert_eq!(notes.torn_bytes > 0, torn);
                for wanted in 0..=size + 6 {
                    let expected = notes
                        .notes
                        .iter()
                        .rev()
                        .find(|t| SignedCheckpoint::parse(t).unwrap().size() == wanted)
                        .cloned();
                    let expected = expected.map_or(NoteLookup::Absent, NoteLookup::Found);
                    assert_eq!(
                        find_note(&path, wanted).unwrap(),
                        expected,
                        "{count} notes, size {wanted}, torn {torn}"
                    );
                }
            };
            check(false);
            let last = |torn: bool| {
                let notes = read_notes(&path).unwrap();
                let (text, tail) = read_last_note(&path).unwrap();
                assert_eq!(
                    text.as_ref(),
                    notes.notes.last(),
                    "{count} notes, torn {torn}"
                );
                assert_eq!(
                    tail.complete_len, notes.complete_len,
                    "{count}, torn {torn}"
                );
                assert_eq!(tail.torn_bytes, notes.torn_bytes, "{count}, torn {torn}");
            };
            last(false);
            let next = short.sign(size + 5, leaf_hash(b"next")).unwrap();
            let text = format!("{}\n", next.text());
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap();
            file.write_all(&text.as_bytes()[..text.len() - 3]).unwrap();
            check(true);
            last(true);
        }
        // More junk after the notes than an interrupted write leaves: refused, not cut.
        let path = dir.path().join("notes-300");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&vec![b'x'; 100_000]).unwrap();
        let refused = read_last_note(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData, "{refused}");
    }

    #[test]
    fn signer_refuses_rollback_and_fork() {
        let mut s = signer();
        let a = leaf_hash(b"a");
        let signed = s.sign(5, a).unwrap();
        assert_eq!(signed.size(), 5);
        SignedCheckpoint::open(signed.text(), &s.verifier_key()).unwrap();
        assert!(matches!(
            s.sign(4, a),
            Err(SignError::Rollback {
                signed: 5,
                requested: 4
            })
        ));
        assert!(matches!(
            s.sign(5, leaf_hash(b"b")),
            Err(SignError::Fork { size: 5 })
        ));
        s.sign(5, a).unwrap();
        s.sign(6, a).unwrap();
    }

    #[test]
    fn state_file_keeps_the_floor_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("signer.state");
        let mut s = signer().with_state_file(&state).unwrap();
        s.sign(10, leaf_hash(b"r")).unwrap();
        let mut again = signer().with_state_file(&state).unwrap();
        assert!(matches!(
            again.sign(9, leaf_hash(b"r")),
            Err(SignError::Rollback { .. })
        ));
    }

    #[test]
    fn notes_file_splits_and_reports_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints");
        let mut s = signer();
        let one = s.sign(1, leaf_hash(b"1")).unwrap();
        let two = s.sign(2, leaf_hash(b"2")).unwrap();
        append_note(&path, one.text()).unwrap();
        append_note(&path, two.text()).unwrap();
        let stored = read_notes(&path).unwrap();
        assert_eq!(stored.notes, vec![one.text(), two.text()]);
        assert_eq!(stored.torn_bytes, 0);

        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"tenet.test/ledger\n3\n").unwrap();
        let stored = read_notes(&path).unwrap();
        assert_eq!(stored.notes.len(), 2);
        assert_eq!(stored.torn_bytes, 20);
    }
}
