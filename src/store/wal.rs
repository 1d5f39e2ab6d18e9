//! The write-ahead log: what makes a group commit durable and atomic.
//!
//! The committer appends each group as one record and syncs it before any reader sees the
//! group; the applier puts it in sled later ([`super::applier`]), and sled is flushed only
//! at checkpoints ([`super::checkpoint`]).
//! After a crash, recovery applies every logged record again, so a group that was logged is
//! in sled completely, and one that was not logged was never acknowledged.
//!
//! Layout: `wal/` in the store directory holds segment files `{id:020}.log`, ids rising.
//! A record is `len: u32 LE ++ crc32(payload): u32 LE ++ payload` (CRC-32/ISO-HDLC, the
//! zlib polynomial, as computed by `crc32fast`). A segment is sealed once it passes its
//! size bound; the next record goes to a new segment, and a sealed segment is deleted once
//! a checkpoint has flushed sled past it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::{sync_error, StoreError};

/// Segment size after which the log rolls to a new segment (unless the store was opened
/// with another bound). A create logs about 3 KiB, so at this machine's peak a segment
/// holds about a third of a second of creates: checkpoints stay small, and recovery
/// replays at most about one segment.
pub const SEGMENT_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
/// Bytes before each payload: length and CRC.
const HEADER_LEN: usize = 8;
/// Name of the log's directory inside the store directory.
pub const DIR: &str = "wal";

/// The open segment the committer appends to.
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    written: u64,
    segment_bytes: u64,
}

/// What recovery found: the payloads of every complete record, oldest first, and the
/// segment ids they came from.
pub struct Recovered {
    pub payloads: Vec<Vec<u8>>,
    pub segments: Vec<u64>,
}

/// Reads every segment in `store_dir/wal`, oldest first. A torn record (short, or with a
/// wrong CRC) ends the last segment: it was being written when the process died and was
/// never acknowledged. Anywhere else it is corruption.
///
/// # Errors
/// [`StoreError::Sync`] on an I/O error, [`StoreError::Corrupt`] on a bad record that is
/// not at the end of the last segment.
pub fn recover(store_dir: &Path) -> Result<Recovered, StoreError> {
    let segments = segment_ids(&store_dir.join(DIR))?;
    let mut payloads = Vec::new();
    for (i, &id) in segments.iter().enumerate() {
        let bytes = std::fs::read(segment_path(&store_dir.join(DIR), id)).map_err(sync_error)?;
        let (records, clean) = parse(&bytes);
        if !clean && i + 1 != segments.len() {
            return Err(StoreError::Corrupt {
                detail: format!("write-ahead log segment {id} has a bad record before its end"),
            });
        }
        payloads.extend(records.into_iter().map(<[u8]>::to_vec));
    }
    Ok(Recovered { payloads, segments })
}

/// The complete records of a segment, and whether the bytes ended cleanly after the last.
fn parse(mut bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < HEADER_LEN {
            return (records, false);
        }
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
            return (records, false);
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            return (records, false);
        }
        records.push(payload);
        bytes = &bytes[HEADER_LEN + len..];
    }
    (records, true)
}

impl Wal {
    /// Starts a new, empty segment after `after` (the last segment recovery saw, or 0).
    ///
    /// # Errors
    /// [`StoreError::Sync`] if the directory or file cannot be created and synced.
    pub fn create(store_dir: &Path, after: u64, segment_bytes: u64) -> Result<Wal, StoreError> {
        let dir = store_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(sync_error)?;
        sync_dir(store_dir)?;
        let segment = after + 1;
        let file = open_segment(&dir, segment)?;
        Ok(Wal {
            dir,
            file,
            segment,
            written: 0,
            segment_bytes: segment_bytes.max(1),
        })
    }

    /// Appends one record and, if `sync`, `fdatasync`s it. Returns the id of a segment
    /// this append sealed (the next append goes to a new one), for a checkpoint to retire.
    ///
    /// # Errors
    /// [`StoreError::Sync`] on a write or sync error; what reached the disk is then
    /// unknown, and the caller must stop writing.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> Result<Option<u64>, StoreError> {
        let len = u32::try_from(payload.len()).map_err(|_| StoreError::Codec {
            detail: "group commit record over 4 GiB".to_owned(),
        })?;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        // Two writes instead of a copy of the payload: a record torn between them fails
        // its CRC at recovery like any other torn record.
        self.file.write_all(&header).map_err(sync_error)?;
        self.file.write_all(payload).map_err(sync_error)?;
        if sync {
            self.file.sync_data().map_err(sync_error)?;
        }
        self.written += (HEADER_LEN + payload.len()) as u64;
        if self.written < self.segment_bytes {
            return Ok(None);
        }
        let sealed = self.segment;
        self.file = open_segment(&self.dir, sealed + 1)?;
        self.segment = sealed + 1;
        self.written = 0;
        Ok(Some(sealed))
    }
}

/// Deletes the segments with id ≤ `through`, then syncs the directory.
///
/// # Errors
/// [`StoreError::Sync`] on an I/O error.
pub fn remove_through(store_dir: &Path, through: u64) -> Result<(), StoreError> {
    let dir = store_dir.join(DIR);
    for id in segment_ids(&dir)?.into_iter().filter(|id| *id <= through) {
        std::fs::remove_file(segment_path(&dir, id)).map_err(sync_error)?;
    }
    sync_dir(&dir)
}

/// Creates segment `id` and makes its directory entry durable before anything is logged.
fn open_segment(dir: &Path, id: u64) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, id))
        .map_err(sync_error)?;
    sync_dir(dir)?;
    Ok(file)
}

fn segment_ids(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sync_error(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry.map_err(sync_error)?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(sync_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 0, 20).unwrap();
        assert_eq!(wal.append(b"first", true).unwrap(), None);
        assert_eq!(wal.append(b"second", true).unwrap(), Some(1));
        assert_eq!(wal.append(b"third", false).unwrap(), None);
        drop(wal);
        let recovered = recover(dir.path()).unwrap();
        assert_eq!(
            recovered.payloads,
            vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
        );
        assert_eq!(recovered.segments, vec![1, 2]);
        remove_through(dir.path(), 1).unwrap();
        assert_eq!(
            recover(dir.path()).unwrap().payloads,
            vec![b"third".to_vec()]
        );
    }

    /// A log of `payloads` with segments of `segment_bytes`, and the path of segment 1.
    fn logged(segment_bytes: u64, payloads: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), 0, segment_bytes).unwrap();
        for payload in payloads {
            wal.append(payload, true).unwrap();
        }
        let first = segment_path(&dir.path().join(DIR), 1);
        (dir, first)
    }

    /// Flips the lowest bit of byte `at` of the file (`None`: its last byte).
    fn flip(path: &Path, at: Option<usize>) {
        let mut bytes = std::fs::read(path).unwrap();
        let at = at.unwrap_or(bytes.len() - 1);
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_torn_tail_ends_the_last_segment() {
        let (dir, path) = logged(1 << 20, &[b"kept", b"torn record"]);
        let len = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let payloads = recover(dir.path()).unwrap().payloads;
        assert_eq!(payloads, vec![b"kept".to_vec()]);
    }

    #[test]
    fn a_flipped_byte_fails_the_crc() {
        let (dir, path) = logged(1 << 20, &[b"kept", b"flipped"]);
        flip(&path, None);
        let payloads = recover(dir.path()).unwrap().payloads;
        assert_eq!(payloads, vec![b"kept".to_vec()]);
    }

    #[test]
    fn a_bad_record_before_the_last_segment_is_corruption() {
        let (dir, path) = logged(10, &[b"segment one", b"segment two"]);
        flip(&path, Some(HEADER_LEN));
        assert!(matches!(
            recover(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
