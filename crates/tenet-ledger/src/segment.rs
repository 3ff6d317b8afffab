//! Segment files: the append-only record store and its framing.
//!
//! A segment is `segments/<first index, 20 digits>.seg`: a 16-byte header (`TNTLSEG1` and the
//! index of its first entry, u64 little-endian) followed by records. A record is
//!
//! ```text
//! u32 LE length | entry bytes | first 8 bytes of the RFC 9162 leaf hash of the entry
//! ```
//!
//! The trailer is a prefix of the leaf hash rather than a CRC so that reading a record and
//! hashing it for the tree are one pass. It detects torn and damaged records; it is not the
//! tamper evidence (anyone can recompute it): the Merkle tree and signed checkpoints are.
//!
//! Beside each segment, `<first index>.idx` is its seek index: for every entry whose index is
//! a multiple of [`SEEK_EVERY`], the pair `u64 LE index | u64 LE offset of its record`. It is
//! a hint for finding an entry without reading the segment from its start, nothing more:
//! it is not synced, readers check a hinted record against the tree's leaf hash before
//! trusting the hint and read from the segment's start when it does not match, and opening
//! the ledger rewrites the last segment's index from the records it scans.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::hash::{Hash, leaf_hash};

/// Largest entry the ledger accepts, in bytes.
pub const MAX_ENTRY_LEN: usize = 16 * 1024 * 1024;

const MAGIC: [u8; 8] = *b"TNTLSEG1";
/// Bytes before the first record.
pub(crate) const HEADER_LEN: u64 = 16;
const PREFIX_LEN: u64 = 4;
const TRAILER_LEN: usize = 8;
const READ_BUFFER: usize = 1 << 20;
/// The seek index notes the record of every entry whose index is a multiple of this.
pub(crate) const SEEK_EVERY: u64 = 1024;
/// Bytes of one seek-index pair.
const HINT_LEN: u64 = 16;
/// The smallest record (an empty entry), which bounds how many pairs a segment can need.
const MIN_RECORD_LEN: u64 = PREFIX_LEN + TRAILER_LEN as u64;

/// The file name of the segment whose first entry is `first`.
pub(crate) fn segment_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, ordered by the first index in their names. A missing
/// directory has no segments; files with other names are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
            let path = entry.path();
            require_regular(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            out.push((first, path));
        }
    }
    out.sort_unstable_by_key(|(first, _)| *first);
    Ok(out)
}

/// Refuses a ledger file that exists but is not a regular file (following symlinks): a FIFO
/// would block its reader forever and a device such as `/dev/zero` never ends.
pub(crate) fn require_regular(path: &Path) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Append the framed record for `entry` (whose leaf hash is `leaf`) to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, entry: &[u8], leaf: &Hash) {
    let len = u32::try_from(entry.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(entry);
    buf.extend_from_slice(trailer(leaf));
}

fn trailer(leaf: &Hash) -> &[u8] {
    leaf.as_bytes().get(..TRAILER_LEN).unwrap_or_default()
}

/// Framed size of an entry of `len` bytes.
pub(crate) fn record_len(len: usize) -> u64 {
    PREFIX_LEN + len as u64 + TRAILER_LEN as u64
}

/// The seek index file of the segment at `segment`.
pub(crate) fn seek_index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// Append the seek-index pair of entry `index`, whose record starts at `offset`.
pub(crate) fn encode_hint(buf: &mut Vec<u8>, index: u64, offset: u64) {
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
}

/// The seek-index pair of `segment` (whose file is `segment_len` bytes) with the largest
/// index in `(first, at]`: where to start reading for entry `at`. Unchecked: see the module
/// documentation. A missing or unreadable index gives `None`; a torn final pair is ignored,
/// and no more is read than a segment of that length can need.
pub(crate) fn seek_hint(
    segment: &Path,
    first: u64,
    at: u64,
    segment_len: u64,
) -> Option<(u64, u64)> {
    let path = seek_index_path(segment);
    require_regular(&path).ok()?;
    let file = File::open(path).ok()?;
    let most = (segment_len / MIN_RECORD_LEN / SEEK_EVERY + 1) * HINT_LEN;
    let mut raw = Vec::new();
    file.take(most).read_to_end(&mut raw).ok()?;
    raw.chunks_exact(HINT_LEN as usize)
        .filter_map(|pair| {
            let (index, offset) = pair.split_at(8);
            Some((
                u64::from_le_bytes(index.try_into().ok()?),
                u64::from_le_bytes(offset.try_into().ok()?),
            ))
        })
        .filter(|(index, offset)| *index > first && *index <= at && *offset >= HEADER_LEN)
        .max_by_key(|(index, _)| *index)
}

/// The writer of a segment's seek index. Failing to write it costs readers time, not data,
/// so an error only stops the hints for this segment.
#[derive(Debug)]
struct SeekIndexWriter {
    file: Option<File>,
    len: u64,
}

impl SeekIndexWriter {
    /// Start the index of `segment` afresh with `pairs` (encoded by [`encode_hint`]).
    fn rewrite(segment: &Path, pairs: &[u8]) -> Self {
        let opened = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(seek_index_path(segment));
        let mut index = Self {
            file: opened.ok(),
            len: 0,
        };
        index.append(pairs);
        index
    }

    fn append(&mut self, pairs: &[u8]) {
        if pairs.is_empty() {
            return;
        }
        let Some(file) = &self.file else { return };
        if file.write_all_at(pairs, self.len).is_ok() {
            self.len += pairs.len() as u64;
        } else {
            self.file = None;
        }
    }
}

/// The open, last segment, written by one ledger.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    file: File,
    path: PathBuf,
    len: u64,
    seek: SeekIndexWriter,
}

impl SegmentWriter {
    /// Create a new segment file starting at entry `first`. With `sync`, its header is on
    /// stable storage before this returns; without, the caller syncs it later (with its
    /// records).
    pub(crate) fn create(path: PathBuf, first: u64, sync: bool) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(&header(first))?;
        if sync {
            file.sync_all()?;
        }
        let seek = SeekIndexWriter::rewrite(&path, &[]);
        Ok(Self {
            file,
            path,
            len: HEADER_LEN,
            seek,
        })
    }

    /// Reopen an existing segment whose valid content ends at `len` (cutting anything after),
    /// with `seek_pairs` (encoded by [`encode_hint`]) as its new seek index.
    pub(crate) fn reopen(path: PathBuf, len: u64, seek_pairs: &[u8]) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        let seek = SeekIndexWriter::rewrite(&path, seek_pairs);
        Ok(Self {
            file,
            path,
            len,
            seek,
        })
    }

    /// Rewrite the header of a segment whose header never reached the disk.
    pub(crate) fn recreate(path: PathBuf, first: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        file.set_len(0)?;
        file.write_all_at(&header(first), 0)?;
        file.sync_all()?;
        file.seek(SeekFrom::End(0))?;
        let seek = SeekIndexWriter::rewrite(&path, &[]);
        Ok(Self {
            file,
            path,
            len: HEADER_LEN,
            seek,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Append framed records in one write.
    pub(crate) fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.len)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Append pairs (encoded by [`encode_hint`]) to the seek index, for records appended.
    pub(crate) fn append_seek_hints(&mut self, pairs: &[u8]) {
        self.seek.append(pairs);
    }

    /// Cut the file back to `len` bytes (undoing a failed append).
    pub(crate) fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Another handle on the file, for syncing it from another thread.
    pub(crate) fn clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

fn header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    let (magic, index) = out.split_at_mut(MAGIC.len());
    magic.copy_from_slice(&MAGIC);
    index.copy_from_slice(&first.to_le_bytes());
    out
}

/// What the header of a segment file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A valid header naming the first entry.
    First(u64),
    /// Shorter than a header (a crash while creating the file).
    Short,
    /// Not a segment header.
    BadMagic,
}

/// One step of reading a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A record; `checksum_ok` is false when its trailer does not match its bytes.
    Record {
        offset: u64,
        leaf: Hash,
        checksum_ok: bool,
    },
    /// The clean end of the segment.
    End,
    /// The final record is incomplete or damaged the way a crash leaves it (only reported for
    /// the last segment): from `offset` to the end of the file. `leaf` is the hash of the
    /// damaged record when its frame was complete.
    Torn { offset: u64, leaf: Option<Hash> },
    /// The framing is unreadable at `offset`; nothing after it in this segment can be read.
    Broken { offset: u64, reason: &'static str },
}

/// Sequential reader of one segment file.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    reader: BufReader<File>,
    path: PathBuf,
    offset: u64,
    file_len: u64,
    entry: Vec<u8>,
    header: Header,
}

impl SegmentReader {
    /// Open a segment and read its header.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(READ_BUFFER, file);
        let mut raw = [0u8; HEADER_LEN as usize];
        let header = if file_len < HEADER_LEN {
            Header::Short
        } else {
            reader.read_exact(&mut raw)?;
            let (magic, index) = raw.split_at(MAGIC.len());
            match <[u8; 8]>::try_from(index) {
                Ok(index) if magic == MAGIC => Header::First(u64::from_le_bytes(index)),
                _ => Header::BadMagic,
            }
        };
        Ok(Self {
            reader,
            path: path.to_owned(),
            offset: HEADER_LEN.min(file_len),
            file_len,
            entry: Vec::new(),
            header,
        })
    }

    pub(crate) fn header(&self) -> Header {
        self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Where the next record starts.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The bytes of the record last returned by [`Self::next`].
    pub(crate) fn entry(&self) -> &[u8] {
        &self.entry
    }

    /// Continue reading at `offset`, which must be where a record starts.
    pub(crate) fn seek_to(&mut self, offset: u64) -> io::Result<()> {
        // Relative to where the reader is (which a refused record may have left other than
        // `self.offset`), so that a place still in the buffer is not read again.
        let at = self.reader.stream_position()?;
        match (i64::try_from(offset), i64::try_from(at)) {
            (Ok(to), Ok(at)) => self.reader.seek_relative(to - at)?,
            _ => {
                self.reader.seek(SeekFrom::Start(offset))?;
            }
        }
        self.offset = offset.min(self.file_len);
        Ok(())
    }

    /// Read the next record. `last` says whether this is the final segment of the log, the
    /// only place a crash can leave a torn record.
    pub(crate) fn next(&mut self, last: bool) -> io::Result<Step> {
        if !matches!(self.header, Header::First(_)) {
            return Ok(Step::End);
        }
        let offset = self.offset;
        let remaining = self.file_len - offset;
        if remaining == 0 {
            return Ok(Step::End);
        }
        let torn_or = |reason| {
            if last {
                Step::Torn { offset, leaf: None }
            } else {
                Step::Broken { offset, reason }
            }
        };
        if remaining < PREFIX_LEN {
            return Ok(torn_or("partial length prefix"));
        }
        let mut prefix = [0u8; PREFIX_LEN as usize];
        self.reader.read_exact(&mut prefix)?;
        let len = u32::from_le_bytes(prefix) as usize;
        if len > MAX_ENTRY_LEN {
            // A crash does not write a length: this is damage, not a torn write.
            return Ok(Step::Broken {
                offset,
                reason: "record length over the limit",
            });
        }
        let total = record_len(len);
        if total > remaining {
            return Ok(torn_or("record runs past the end of the segment"));
        }
        self.entry.resize(len, 0);
        self.reader.read_exact(&mut self.entry)?;
        let mut check = [0u8; TRAILER_LEN];
        self.reader.read_exact(&mut check)?;
        self.offset += total;

        let leaf = leaf_hash(&self.entry);
        let checksum_ok = check.as_slice() == trailer(&leaf);
        if !checksum_ok && last && self.rest_is_zero(self.offset)? {
            return Ok(Step::Torn {
                offset,
                leaf: Some(leaf),
            });
        }
        Ok(Step::Record {
            offset,
            leaf,
            checksum_ok,
        })
    }

    /// Skip the next record without hashing it; false at the end or at damage.
    pub(crate) fn skip(&mut self) -> io::Result<bool> {
        let remaining = self.file_len - self.offset;
        if !matches!(self.header, Header::First(_)) || remaining < PREFIX_LEN {
            return Ok(false);
        }
        let mut prefix = [0u8; PREFIX_LEN as usize];
        self.reader.read_exact(&mut prefix)?;
        let len = u32::from_le_bytes(prefix) as usize;
        let total = record_len(len);
        if len > MAX_ENTRY_LEN || total > remaining {
            return Ok(false);
        }
        let rest = i64::try_from(total - PREFIX_LEN).unwrap_or(i64::MAX);
        self.reader.seek_relative(rest)?;
        self.offset += total;
        Ok(true)
    }

    /// Whether every byte from `from` to the end of the file is zero (blocks a crash left
    /// allocated but unwritten).
    fn rest_is_zero(&self, from: u64) -> io::Result<bool> {
        let file = self.reader.get_ref();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut at = from;
        while at < self.file_len {
            let want = usize::try_from(self.file_len - at)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let part = chunk.get_mut(..want).unwrap_or_default();
            file.read_exact_at(part, at)?;
            if part.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += want as u64;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_segment(dir: &Path, entries: &[&[u8]]) -> PathBuf {
        let path = dir.join(segment_name(0));
        let mut w = SegmentWriter::create(path.clone(), 0, true).unwrap();
        let mut buf = Vec::new();
        for e in entries {
            encode_record(&mut buf, e, &leaf_hash(e));
        }
        w.append(&buf).unwrap();
        path
    }

    fn steps(path: &Path, last: bool) -> Vec<Step> {
        let mut r = SegmentReader::open(path).unwrap();
        let mut out = Vec::new();
        loop {
            let s = r.next(last).unwrap();
            out.push(s);
            if !matches!(s, Step::Record { .. }) {
                return out;
            }
        }
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.seg"), None);
    }

    #[test]
    fn records_read_back_and_a_cut_record_is_torn_only_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two", b"three"]);
        let s = steps(&path, true);
        assert_eq!(s.len(), 4);
        assert!(matches!(s[3], Step::End));

        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let s = steps(&path, true);
        assert!(matches!(s[2], Step::Torn { leaf: None, .. }), "{s:?}");
        let s = steps(&path, false);
        assert!(matches!(s[2], Step::Broken { .. }), "{s:?}");
    }

    #[test]
    fn zeroed_tail_is_torn_but_a_damaged_middle_record_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_segment(dir.path(), &[b"one", b"two"]);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len + 4096).unwrap();
        let s = steps(&path, true);
        assert!(matches!(s[2], Step::Torn { .. }), "{s:?}");

        // Flip a byte of the first entry: a checksum failure with data after it.
        file.write_all_at(b"X", HEADER_LEN + 4).unwrap();
        let s = steps(&path, true);
        assert!(
            matches!(
                s[0],
                Step::Record {
                    checksum_ok: false,
                    ..
                }
            ),
            "{s:?}"
        );
    }
}
