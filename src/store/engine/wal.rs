//! The write-ahead log: what makes a group commit durable and atomic, and what lets
//! recovery prove it has every acknowledged write.
//!
//! The committer appends each group as one record and syncs it before any reader sees the
//! group; the applier puts it in sled later ([`super::applier`]), and sled is flushed only
//! at checkpoints ([`super::checkpoint`]). After a crash, recovery ([`super::recovery`])
//! applies every logged record again, so a group that was logged is in sled completely,
//! and one that was not logged was never acknowledged.
//!
//! Layout: `wal/` in the store directory holds segment files `{id:020}.log`, ids rising.
//! A segment starts with a [`SegmentHeader`] of [`SEGMENT_HEADER_LEN`] bytes (magic, format,
//! the store's identity, the segment id, the LSN of its first record, its preallocated
//! length, CRC) and is preallocated to that length by writing zeros, so the unwritten rest
//! reads as zeros and a file shorter than its header says has lost bytes it had. A record is
//! `len: u32 LE ++ crc32(lsn ++ payload): u32 LE ++ lsn: u64 LE ++ payload`; LSNs (log
//! sequence numbers) rise by one per record across segments. CRC-32 is CRC-32/ISO-HDLC,
//! the zlib polynomial, as computed by `crc32fast`. A segment is sealed once it passes its
//! size bound; the next record goes to a new segment, and a sealed segment is deleted once
//! a checkpoint has flushed sled past it. The newest segment is never deleted, so a store
//! always has a log that names it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crate::store::{sync_error, StoreError};

/// Segment size after which the log rolls to a new segment (unless the store was opened
/// with another bound), and the length a segment is preallocated to. A create logs about
/// 3 KiB, so at this machine's peak a segment holds about a third of a second of creates:
/// checkpoints stay small, and recovery replays at most about one segment.
pub const SEGMENT_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
/// Bytes of a segment's header.
pub const SEGMENT_HEADER_LEN: usize = 56;
/// Bytes before each record's payload: length, CRC and LSN.
pub const RECORD_HEADER_LEN: usize = 16;
/// Name of the log's directory inside the store directory.
pub const DIR: &str = "wal";
/// The first bytes of every segment.
const MAGIC: &[u8; 8] = b"PAYKEEPW";
/// The segment format this build writes and reads.
const FORMAT: u32 = 2;
/// Suffix of a segment being created (a crash may leave one; it never held a record).
const CREATING_SUFFIX: &str = ".log.creating";
/// Bytes of zeros written per call while filling a new segment.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;
/// How far past the expected LSN a record found after damage may be and still count as a
/// record of this log (a segment of 8 MiB holds far fewer records).
const RESYNC_LSN_WINDOW: u64 = 1 << 24;

/// A store's identity: 16 random bytes both halves (sled's `meta` and every log segment)
/// carry, so a log is never replayed onto another store's sled.
pub type StoreId = [u8; 16];

/// What a segment's first [`SEGMENT_HEADER_LEN`] bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub store_id: StoreId,
    pub segment: u64,
    /// LSN of the segment's first record (the one after the previous segment's last).
    pub first_lsn: u64,
    /// Length the segment was preallocated to; the file is never shorter.
    pub capacity: u64,
}

impl SegmentHeader {
    fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        out[12..28].copy_from_slice(&self.store_id);
        out[28..36].copy_from_slice(&self.segment.to_le_bytes());
        out[36..44].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[44..52].copy_from_slice(&self.capacity.to_le_bytes());
        let crc = crc32fast::hash(&out[..52]);
        out[52..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a header, or says what is wrong with it.
    fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        let Some(bytes) = bytes.get(..SEGMENT_HEADER_LEN) else {
            return Err(format!(
                "{} bytes, shorter than a segment header",
                bytes.len()
            ));
        };
        if &bytes[..8] != MAGIC {
            return Err("no paykeep log magic".to_owned());
        }
        if crc32fast::hash(&bytes[..52]) != u32_at(bytes, 52) {
            return Err("segment header fails its CRC".to_owned());
        }
        let format = u32_at(bytes, 8);
        if format != FORMAT {
            return Err(format!("log format {format}, this build reads {FORMAT}"));
        }
        let mut store_id = [0u8; 16];
        store_id.copy_from_slice(&bytes[12..28]);
        Ok(SegmentHeader {
            store_id,
            segment: u64_at(bytes, 28),
            first_lsn: u64_at(bytes, 36),
            capacity: u64_at(bytes, 44),
        })
    }
}

/// One whole record of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: u64,
    /// The segment it is in.
    pub segment: u64,
    /// Byte offset of its header in the segment file.
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// Bytes of a segment that are neither a whole record nor zero fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first bad byte.
    pub offset: u64,
    /// What the bytes there are, and what was expected.
    pub what: String,
}

/// What reading one segment found.
#[derive(Debug)]
pub struct Scan {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub file_len: u64,
    /// Whole records, in file order (LSNs consecutive from `header.first_lsn` unless
    /// `damage` is non-empty).
    pub records: Vec<Record>,
    /// Each stretch of bad bytes; a whole record found after one is in `records` too.
    pub damage: Vec<Damage>,
}

impl Scan {
    /// LSN of the last whole record, or the one before `first_lsn` for a segment without any.
    pub fn end_lsn(&self) -> u64 {
        self.records
            .last()
            .map_or(self.header.first_lsn.saturating_sub(1), |r| r.lsn)
    }

    /// Whether the only damage is a torn tail: one stretch of bad bytes after the last
    /// whole record, with no whole record anywhere after it.
    pub fn damage_is_torn_tail(&self) -> bool {
        match self.damage.as_slice() {
            [] => true,
            [only] => self.records.last().is_none_or(|r| r.offset < only.offset),
            _ => false,
        }
    }
}

/// Reads one segment file: its header, every whole record, and every stretch of damage.
/// After damage it looks for the next whole record at every later offset (a record whose
/// CRC holds and whose LSN is within [`RESYNC_LSN_WINDOW`] of the expected one), so
/// damage followed by a valid record is told apart from a torn tail.
///
/// # Errors
/// `Err(what)` when the file cannot be read or its header is not a segment header.
pub fn scan(path: &Path) -> Result<Scan, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let header = SegmentHeader::decode(&bytes)?;
    let mut records = Vec::new();
    let mut damage = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    let mut expected = header.first_lsn;
    while at < bytes.len() {
        match record_at(&bytes, at, expected, header.segment) {
            Ok(Some(record)) => {
                at += RECORD_HEADER_LEN + record.payload.len();
                expected = record.lsn + 1;
                records.push(record);
            }
            // Zeros from here to the end: the preallocated rest, not yet appended to.
            Ok(None) => break,
            Err(what) => {
                damage.push(Damage {
                    offset: at as u64,
                    what,
                });
                match resync(&bytes, at + 1, expected) {
                    Some((next, lsn)) => {
                        at = next;
                        expected = lsn;
                    }
                    None => break,
                }
            }
        }
    }
    Ok(Scan {
        path: path.to_path_buf(),
        header,
        file_len: bytes.len() as u64,
        records,
        damage,
    })
}

/// The record at `at`: `Ok(None)` if every byte from `at` on is zero, `Err` with what is
/// wrong if the bytes there are not a whole record with LSN `expected`.
fn record_at(
    bytes: &[u8],
    at: usize,
    expected: u64,
    segment: u64,
) -> Result<Option<Record>, String> {
    let rest = &bytes[at..];
    if rest.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    if rest.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than a record header",
            rest.len()
        ));
    }
    let len = u32_at(rest, 0) as usize;
    let lsn = u64_at(rest, 8);
    if len == 0 || rest.len() - RECORD_HEADER_LEN < len {
        return Err(format!(
            "a record of {len} bytes where {} remain",
            rest.len() - RECORD_HEADER_LEN
        ));
    }
    if record_crc(
        &rest[8..16],
        &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len],
    ) != u32_at(rest, 4)
    {
        return Err("a record that fails its CRC".to_owned());
    }
    if lsn != expected {
        return Err(format!(
            "a record with LSN {lsn} where LSN {expected} was due"
        ));
    }
    Ok(Some(Record {
        lsn,
        segment,
        offset: at as u64,
        payload: rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len].to_vec(),
    }))
}

/// The first offset at or after `from` that holds a whole record with an LSN in
/// `expected .. expected + RESYNC_LSN_WINDOW`, and that LSN.
fn resync(bytes: &[u8], from: usize, expected: u64) -> Option<(usize, u64)> {
    let found = (from..bytes.len().saturating_sub(RECORD_HEADER_LEN)).find(|&at| {
        let rest = &bytes[at..];
        let lsn = u64_at(rest, 8);
        if !(expected..expected.saturating_add(RESYNC_LSN_WINDOW)).contains(&lsn) {
            return false;
        }
        let len = u32_at(rest, 0) as usize;
        len > 0
            && rest.len() - RECORD_HEADER_LEN >= len
            && record_crc(
                &rest[8..16],
                &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len],
            ) == u32_at(rest, 4)
    })?;
    Some((found, u64_at(bytes, found + 8)))
}

fn record_crc(lsn: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(lsn);
    hasher.update(payload);
    hasher.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A segment the committer's append sealed: a checkpoint may retire it once sled holds
/// everything through `last_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub segment: u64,
    pub last_lsn: u64,
}

/// What one append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub lsn: u64,
    pub sealed: Option<Sealed>,
}

/// The open segment the committer appends to.
pub struct Wal {
    dir: PathBuf,
    file: File,
    store_id: StoreId,
    segment: u64,
    /// Where the next record goes.
    offset: u64,
    next_lsn: u64,
    segment_bytes: u64,
    /// The next segment's [`zeroed_file`], being made on a thread of its own so that the
    /// append that fills this segment does not wait for 8 MiB of zeros. Started by the
    /// first append (after open has removed the leftovers of earlier runs).
    spare: Option<JoinHandle<Result<File, StoreError>>>,
}

impl Drop for Wal {
    /// Waits for the spare's thread, so no write of this log outlives it (a store opened
    /// again in this process may reuse the spare's name), and removes the unused spare.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
            let _ = std::fs::remove_file(creating_path(&self.dir, self.segment + 1));
        }
    }
}

impl Wal {
    /// Starts segment `segment`, whose first record will have LSN `first_lsn`.
    ///
    /// # Errors
    /// [`StoreError::Sync`] if the directory or file cannot be created and synced.
    pub fn create(
        store_dir: &Path,
        store_id: StoreId,
        segment: u64,
        first_lsn: u64,
        segment_bytes: u64,
    ) -> Result<Wal, StoreError> {
        let dir = store_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(sync_error)?;
        sync_dir(store_dir)?;
        let segment_bytes = segment_bytes.max(SEGMENT_HEADER_LEN as u64 + 1);
        let file = create_segment(
            &dir,
            &SegmentHeader {
                store_id,
                segment,
                first_lsn,
                capacity: segment_bytes,
            },
        )?;
        Ok(Wal {
            dir,
            file,
            store_id,
            segment,
            offset: SEGMENT_HEADER_LEN as u64,
            next_lsn: first_lsn,
            segment_bytes,
            spare: None,
        })
    }

    /// The current segment's id and the LSN of the last record appended (the one before
    /// the next).
    pub fn position(&self) -> (u64, u64) {
        (self.segment, self.next_lsn.saturating_sub(1))
    }

    /// Appends one record and, if `sync`, `fdatasync`s it. Returns its LSN and the segment
    /// this append sealed, if any (the next append goes to a new one).
    ///
    /// # Errors
    /// [`StoreError::Sync`] on a write or sync error; what reached the disk is then
    /// unknown, and the caller must stop writing.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> Result<Appended, StoreError> {
        let len = u32::try_from(payload.len()).map_err(|_| StoreError::Codec {
            detail: "group commit record over 4 GiB".to_owned(),
        })?;
        if self.spare.is_none() {
            self.spare = spawn_spare(&self.dir, self.segment + 1, self.segment_bytes);
        }
        let lsn = self.next_lsn;
        let lsn_bytes = lsn.to_le_bytes();
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&record_crc(&lsn_bytes, payload).to_le_bytes());
        header[8..].copy_from_slice(&lsn_bytes);
        // Two writes instead of a copy of the payload: a record torn between them fails
        // its CRC at recovery like any other torn record.
        self.file
            .write_all_at(&header, self.offset)
            .map_err(sync_error)?;
        self.file
            .write_all_at(payload, self.offset + RECORD_HEADER_LEN as u64)
            .map_err(sync_error)?;
        if sync {
            self.file.sync_data().map_err(sync_error)?;
        }
        self.offset += (RECORD_HEADER_LEN + payload.len()) as u64;
        self.next_lsn += 1;
        if self.offset < self.segment_bytes {
            return Ok(Appended { lsn, sealed: None });
        }
        let sealed = Sealed {
            segment: self.segment,
            last_lsn: lsn,
        };
        let next = self.segment + 1;
        let spare = match self.spare.take().map(JoinHandle::join) {
            Some(Ok(Ok(file))) => file,
            // The thread failed (or never ran): once more here, where an error stops writes.
            _ => zeroed_file(&self.dir, next, self.segment_bytes)?,
        };
        self.file = install_segment(
            &self.dir,
            spare,
            &SegmentHeader {
                store_id: self.store_id,
                segment: next,
                first_lsn: self.next_lsn,
                capacity: self.segment_bytes,
            },
        )?;
        self.segment = next;
        self.offset = SEGMENT_HEADER_LEN as u64;
        Ok(Appended {
            lsn,
            sealed: Some(sealed),
        })
    }
}

/// The ids of the segment files in `store_dir/wal`, ascending, and every other entry there
/// (a leftover of a segment being created is removed only by [`remove_leftovers`]).
///
/// # Errors
/// [`StoreError::Sync`] if the directory exists but cannot be listed.
pub fn list(store_dir: &Path) -> Result<(Vec<u64>, Vec<PathBuf>), StoreError> {
    let dir = store_dir.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => {
            return Err(StoreError::Sync {
                detail: format!("{}: {e}", dir.display()),
            })
        }
    };
    let mut ids = Vec::new();
    let mut others = Vec::new();
    for entry in entries {
        let entry = entry.map_err(sync_error)?;
        let name = entry.file_name();
        match name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(id) => ids.push(id),
            None => others.push(entry.path()),
        }
    }
    ids.sort_unstable();
    others.sort();
    Ok((ids, others))
}

/// Whether `path` is what a crash while creating a segment leaves (never a record in it).
pub fn is_leftover(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(CREATING_SUFFIX))
}

/// Deletes what a crash while creating a segment left behind.
///
/// # Errors
/// [`StoreError::Sync`] on an I/O error.
pub fn remove_leftovers(store_dir: &Path) -> Result<(), StoreError> {
    let (_, others) = list(store_dir)?;
    for path in others.iter().filter(|p| is_leftover(p) && p.is_file()) {
        std::fs::remove_file(path).map_err(sync_error)?;
    }
    Ok(())
}

/// The path of segment `id`.
pub fn segment_path(store_dir: &Path, id: u64) -> PathBuf {
    store_dir.join(DIR).join(format!("{id:020}.log"))
}

/// Deletes the segments with id ≤ `through`, then syncs the directory.
///
/// # Errors
/// [`StoreError::Sync`] on an I/O error.
pub fn remove_through(store_dir: &Path, through: u64) -> Result<(), StoreError> {
    let (ids, _) = list(store_dir)?;
    for id in ids.into_iter().filter(|id| *id <= through) {
        std::fs::remove_file(segment_path(store_dir, id)).map_err(sync_error)?;
    }
    sync_dir(&store_dir.join(DIR))
}

/// Creates a segment on the caller's thread: zeros, then the header, under a temporary name,
/// synced, then renamed into place and the directory synced, so a crash never leaves a
/// segment without a header.
fn create_segment(dir: &Path, header: &SegmentHeader) -> Result<File, StoreError> {
    let file = zeroed_file(dir, header.segment, header.capacity)?;
    install_segment(dir, file, header)
}

/// Where segment `segment` is made before it is renamed into place.
fn creating_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}{CREATING_SUFFIX}"))
}

/// A file of `capacity` zero bytes, written and synced, under segment `segment`'s temporary
/// name. Written rather than `fallocate`d: a record appended into an unwritten extent makes
/// its `fdatasync` persist the extent's conversion too (on ext4 a second, synchronous
/// write of the inode), while one appended over written zeros is a pure overwrite, synced
/// with one data write and a cache flush: half the time and the CPU on this machine
/// (BENCHMARKS.md, "Zero-filled log segments and key filters").
fn zeroed_file(dir: &Path, segment: u64, capacity: u64) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(creating_path(dir, segment))
        .map_err(sync_error)?;
    let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
    let mut at = 0u64;
    while at < capacity {
        let n = usize::try_from(capacity - at).map_or(zeros.len(), |left| left.min(zeros.len()));
        file.write_all_at(&zeros[..n], at).map_err(sync_error)?;
        at += n as u64;
    }
    file.sync_all().map_err(sync_error)?;
    Ok(file)
}

/// Starts making segment `segment`'s [`zeroed_file`] on its own thread (`None` if no
/// thread could be started: the rotation then makes it).
fn spawn_spare(
    dir: &Path,
    segment: u64,
    capacity: u64,
) -> Option<JoinHandle<Result<File, StoreError>>> {
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("paykeep-wal-spare".to_owned())
        .spawn(move || zeroed_file(&dir, segment, capacity))
        .ok()
}

/// Makes a [`zeroed_file`] segment `header.segment`: its header written and synced, then
/// renamed into place, the directory synced. A crash before the rename leaves a leftover
/// that the next open removes; after it, a segment whose unwritten rest reads as zeros.
fn install_segment(dir: &Path, file: File, header: &SegmentHeader) -> Result<File, StoreError> {
    file.write_all_at(&header.encode(), 0).map_err(sync_error)?;
    file.sync_data().map_err(sync_error)?;
    let final_path = dir.join(format!("{:020}.log", header.segment));
    std::fs::rename(creating_path(dir, header.segment), &final_path).map_err(sync_error)?;
    sync_dir(dir)?;
    Ok(file)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(sync_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: StoreId = [7; 16];

    /// A log of `payloads` with segments of `segment_bytes`, and the path of segment 1.
    fn logged(segment_bytes: u64, payloads: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), ID, 1, 1, segment_bytes).unwrap();
        for payload in payloads {
            wal.append(payload, true).unwrap();
        }
        let first = segment_path(dir.path(), 1);
        (dir, first)
    }

    fn payloads(scan: &Scan) -> Vec<Vec<u8>> {
        scan.records.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn records_come_back_in_order_with_rising_lsns_across_segments() {
        let (dir, first) = logged(
            100,
            &[
                b"first",
                b"second which is longer than forty bytes",
                b"third",
            ],
        );
        let (ids, others) = list(dir.path()).unwrap();
        assert_eq!(ids, vec![1, 2]);
        assert!(others.is_empty());
        let one = scan(&first).unwrap();
        assert_eq!(one.header.first_lsn, 1);
        assert_eq!(one.header.capacity, 100);
        assert_eq!(
            one.file_len, 132,
            "the record that sealed it ran past the preallocation"
        );
        assert_eq!(
            std::fs::metadata(segment_path(dir.path(), 2))
                .unwrap()
                .len(),
            100,
            "preallocated to its capacity"
        );
        assert_eq!(payloads(&one).len(), 2);
        assert_eq!(one.end_lsn(), 2);
        let two = scan(&segment_path(dir.path(), 2)).unwrap();
        assert_eq!(two.header.first_lsn, 3);
        assert_eq!(payloads(&two), vec![b"third".to_vec()]);
        assert!(one.damage.is_empty() && two.damage.is_empty());
        remove_through(dir.path(), 1).unwrap();
        assert_eq!(list(dir.path()).unwrap().0, vec![2]);
    }

    #[test]
    fn append_reports_the_segment_it_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), ID, 4, 10, 80).unwrap();
        assert_eq!(
            wal.append(b"a", true).unwrap(),
            Appended {
                lsn: 10,
                sealed: None
            }
        );
        let sealed = wal.append(&[1u8; 40], true).unwrap();
        assert_eq!(
            sealed,
            Appended {
                lsn: 11,
                sealed: Some(Sealed {
                    segment: 4,
                    last_lsn: 11
                })
            }
        );
        assert_eq!(wal.position(), (5, 11));
    }

    #[test]
    fn the_next_segment_is_zero_filled_ahead_and_used_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), ID, 1, 1, 4096).unwrap();
        wal.append(b"first", true).unwrap();
        let spare = wal
            .spare
            .as_ref()
            .expect("the first append starts the spare");
        while !spare.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let spare_path = creating_path(&dir.path().join(DIR), 2);
        let bytes = std::fs::read(&spare_path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| *b == 0));
        assert!(is_leftover(&spare_path));
        let sealed = wal.append(&[1u8; 4096], true).unwrap();
        assert_eq!(sealed.sealed.map(|s| s.segment), Some(1));
        assert!(!spare_path.exists(), "installed as segment 2");
        wal.append(b"third", true).unwrap();
        drop(wal);
        let (ids, others) = list(dir.path()).unwrap();
        assert_eq!(ids, vec![1, 2]);
        assert!(
            others.is_empty(),
            "a dropped log leaves no spare: {others:?}"
        );
        let two = scan(&segment_path(dir.path(), 2)).unwrap();
        assert_eq!((two.header.segment, two.header.first_lsn), (2, 3));
        assert_eq!(payloads(&two), vec![b"third".to_vec()]);
        assert_eq!(two.file_len, 4096);
    }

    /// Flips the lowest bit of byte `at` of the file.
    fn flip(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_record_cut_mid_way_at_the_end_is_a_torn_tail() {
        let (_dir, path) = logged(1 << 12, &[b"kept", b"torn record"]);
        let whole = scan(&path).unwrap();
        let torn_at = whole.records[1].offset as usize + RECORD_HEADER_LEN + 3;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[torn_at..].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let torn = scan(&path).unwrap();
        assert_eq!(payloads(&torn), vec![b"kept".to_vec()]);
        assert_eq!(torn.damage.len(), 1);
        assert!(torn.damage_is_torn_tail());
    }

    #[test]
    fn a_flipped_byte_before_a_valid_record_is_not_a_torn_tail() {
        let (_dir, path) = logged(1 << 12, &[b"first", b"second", b"third"]);
        let whole = scan(&path).unwrap();
        flip(&path, whole.records[1].offset as usize + RECORD_HEADER_LEN);
        let damaged = scan(&path).unwrap();
        assert_eq!(damaged.damage.len(), 1);
        assert_eq!(damaged.damage[0].offset, whole.records[1].offset);
        assert_eq!(
            payloads(&damaged),
            vec![b"first".to_vec(), b"third".to_vec()]
        );
        assert!(!damaged.damage_is_torn_tail());
    }

    #[test]
    fn a_flipped_header_byte_is_refused_with_what_is_wrong() {
        let (_dir, path) = logged(1 << 12, &[b"first"]);
        flip(&path, 20);
        assert!(scan(&path).unwrap_err().contains("CRC"));
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        assert!(scan(&path).unwrap_err().contains("magic"));
    }

    #[test]
    fn garbage_never_panics_the_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (_dir, path) = logged(1 << 12, &[b"first", b"second", b"third"]);
        let good = std::fs::read(&path).unwrap();
        for _ in 0..500 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            bytes.truncate(rng.gen_range(0..=bytes.len()));
            std::fs::write(&path, &bytes).unwrap();
            let _ = scan(&path);
        }
    }
}
