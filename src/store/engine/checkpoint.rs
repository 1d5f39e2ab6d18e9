//! Checkpoints: flush sled past a sealed write-ahead log segment, then delete the segment.
//!
//! The applier puts a group in sled only after the group's log record is durable, and it
//! hands over a sealed segment only after applying every record in it. So once `Db::flush`
//! (and the `fdatasync` of sled's files) returns after that hand-over, sled holds everything
//! in the segment durably, and the segment is no longer needed for recovery. Just before
//! the flush, the checkpoint writes the LSN sled will then hold into `meta`
//! (`checkpoint_lsn`), so recovery can tell a log that reaches back far enough from one
//! that lost segments. This runs on its own thread, so sled's flush is never on the path
//! of an acknowledgement.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::store::{meta, sync_error, wal, Durability, StoreError};

/// What a checkpoint may retire: the log segments with id ≤ `through_segment`, once sled
/// durably holds every record through `lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retire {
    pub through_segment: u64,
    pub lsn: u64,
}

/// Files sled writes outside its `db` log: values too large for a log segment go to
/// `blobs/`, which sled itself never syncs.
const BLOBS_DIR: &str = "blobs";

/// What a checkpoint needs of the store: sled, its `meta` tree, its data file, and the
/// failure flag.
pub struct Checkpointer {
    db: sled::Db,
    meta: sled::Tree,
    data_file: File,
    dir: PathBuf,
    durability: Durability,
    failed: Arc<AtomicBool>,
    /// Blob files already synced (pruned to those still present).
    synced_blobs: HashSet<OsString>,
}

impl Checkpointer {
    /// # Errors
    /// [`StoreError::Sync`] if sled's `db` file cannot be opened, [`StoreError::Sled`] if
    /// its `meta` tree cannot.
    pub fn new(
        db: sled::Db,
        dir: &Path,
        durability: Durability,
        failed: Arc<AtomicBool>,
    ) -> Result<Checkpointer, StoreError> {
        Ok(Checkpointer {
            meta: db.open_tree(meta::TREE)?,
            data_file: File::open(dir.join("db")).map_err(sync_error)?,
            db,
            dir: dir.to_path_buf(),
            durability,
            failed,
            synced_blobs: HashSet::new(),
        })
    }

    /// Makes everything applied to sled so far durable, and then, with `retire`, records
    /// its LSN and deletes the segments it names.
    ///
    /// # Errors
    /// [`StoreError`] from sled's flush or a sync; the segments are then kept.
    pub fn checkpoint(&mut self, retire: Option<Retire>) -> Result<(), StoreError> {
        if let Some(retire) = retire {
            meta::set_checkpoint_lsn(&self.meta, retire.lsn)?;
        }
        self.db.flush()?;
        if self.durability == Durability::FlushAndSync {
            self.data_file.sync_data().map_err(sync_error)?;
            self.sync_new_blobs()?;
        }
        if let Some(retire) = retire.filter(|r| r.through_segment > 0) {
            wal::remove_through(&self.dir, retire.through_segment)?;
        }
        Ok(())
    }

    /// Starts the checkpoint thread: it checkpoints each [`Retire`] it receives (the
    /// furthest, when several queued up) and stops when the sender is dropped.
    /// A failed checkpoint marks the store failed, so it refuses writes (a later sync could
    /// falsely succeed after a failed one); once the store has failed, no segment is deleted.
    pub fn spawn(mut self) -> (Sender<Retire>, JoinHandle<()>) {
        let (tx, rx): (Sender<Retire>, Receiver<Retire>) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("paykeep-checkpoint".to_owned())
            .spawn(move || {
                while let Ok(mut retire) = rx.recv() {
                    while let Ok(later) = rx.try_recv() {
                        retire = Retire {
                            through_segment: retire.through_segment.max(later.through_segment),
                            lsn: retire.lsn.max(later.lsn),
                        };
                    }
                    if self.failed.load(Ordering::Acquire) {
                        // A failed group may be in sled in part: keep the log that completes it.
                        continue;
                    }
                    if let Err(error) = self.checkpoint(Some(retire)) {
                        tracing::error!(operation = "checkpoint", %error, "checkpoint failed; store refuses writes");
                        self.failed.store(true, Ordering::Release);
                    }
                }
            })
            .expect("spawn checkpoint thread");
        (tx, thread)
    }

    /// `fdatasync`s blob files written since the last call, then their directory. Cheap
    /// when, as usual, there are none (one `readdir` of an empty directory).
    fn sync_new_blobs(&mut self) -> Result<(), StoreError> {
        let blobs = self.dir.join(BLOBS_DIR);
        let Ok(entries) = std::fs::read_dir(&blobs) else {
            return Ok(());
        };
        let mut present = HashSet::new();
        let mut any_new = false;
        for entry in entries {
            let name = entry.map_err(sync_error)?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(blobs.join(&name)).and_then(|f| f.sync_data()) {
                    Ok(()) => any_new = true,
                    // Garbage-collected by sled since the readdir: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(sync_error(e)),
                }
            }
            present.insert(name);
        }
        if any_new {
            File::open(&blobs)
                .and_then(|d| d.sync_all())
                .map_err(sync_error)?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}
