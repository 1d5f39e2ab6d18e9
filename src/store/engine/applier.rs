//! The applier: applies durable group commits to sled, off the acknowledgement path.
//!
//! The committer logs a group, syncs it, stages its writes in the trees' memtables
//! ([`super::tree`]) and answers its waiters; this thread then applies the group to sled.
//! It takes every group queued since its last pass and writes each key once, with its last
//! value: a payment created and then settled a moment later is one sled write, not two,
//! and a `processing` index entry set and cleared within the same pass is not written at
//! all beyond a no-op removal. Once sled holds a pass, its last LSN goes into `meta`
//! (`applied_lsn`, which recovery checks the log reaches), the pass's keys leave the
//! memtables, and a sealed log segment it completed goes to the checkpoint thread.
//!
//! The queue is bounded ([`APPLY_QUEUE_MAX`] groups, and [`APPLY_QUEUE_BYTES_MAX`] bytes of
//! logged records: [`Backlog`]): when sled falls that far behind, the committer waits, so
//! the memtables, which hold exactly the queued groups' writes, stay under that bound.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::store::checkpoint::Retire;
use crate::store::wal::Sealed;
use crate::store::{meta, GroupRecord, StoreError, Trees};

/// Group commits that may wait for the applier before the committer waits in turn, and
/// the most one pass applies.
pub const APPLY_QUEUE_MAX: usize = 1024;

/// Bytes of logged records queued for the applier (and so staged in the memtables) before
/// the committer waits for it.
pub const APPLY_QUEUE_BYTES_MAX: usize = 64 << 20;

/// The bytes of logged groups the applier has not yet put in sled.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    bytes: Mutex<usize>,
    drained: Condvar,
}

impl Backlog {
    /// Waits until `bytes` more fit under [`APPLY_QUEUE_BYTES_MAX`] (a group always fits into
    /// an empty backlog, however large), then counts them. Called by the committer thread.
    pub fn admit(&self, bytes: usize) {
        let mut queued = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while *queued > 0 && *queued + bytes > APPLY_QUEUE_BYTES_MAX {
            queued = self.drained.wait(queued).unwrap_or_else(|e| e.into_inner());
        }
        *queued += bytes;
    }

    /// Counts `bytes` as applied and wakes a waiting committer.
    pub fn release(&self, bytes: usize) {
        let mut queued = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *queued = queued.saturating_sub(bytes);
        self.drained.notify_all();
    }

    /// Bytes queued now.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        *self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a group waits in the memtables before a pass applies it. Long enough that a
/// payment's two write sets (intent before the provider call, outcome after it), a few
/// milliseconds apart under load, usually fall into one pass and reach sled as one write.
pub const APPLY_DELAY: Duration = Duration::from_millis(100);

/// The applier thread's nice value (Linux: per thread, 0 is the default, 19 the lowest).
const APPLIER_NICE: libc::c_int = 10;

/// A durable group commit for the applier.
pub(crate) struct Logged {
    pub epoch: u64,
    /// The LSN of its log record.
    pub lsn: u64,
    /// When the committer handed it over (the pass deadline counts from the oldest).
    pub logged_at: Instant,
    pub record: Arc<GroupRecord>,
    /// A log segment the group's append sealed: it may be retired once this group is in sled.
    pub sealed: Option<Sealed>,
    /// Its log record's length, counted in the [`Backlog`] until it is in sled.
    pub bytes: usize,
}

/// Starts the applier thread. It stops, after applying what was queued, when the sender
/// is dropped. A failed apply marks the store failed; the memtables then keep every write
/// not in sled, so readers still see it, and no later segment is retired.
pub(crate) fn spawn(
    trees: Arc<Trees>,
    meta: sled::Tree,
    checkpoints: Sender<Retire>,
    failed: Arc<AtomicBool>,
    sled_writes: prometheus::IntCounterVec,
    backlog: Arc<Backlog>,
) -> (Sender<Logged>, JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::bounded(APPLY_QUEUE_MAX);
    let thread = std::thread::Builder::new()
        .name("paykeep-applier".to_owned())
        .spawn(move || {
            lower_priority();
            let sink = Sink {
                trees: &trees,
                meta: &meta,
                sled_writes: &sled_writes,
            };
            run(&sink, &rx, &checkpoints, &failed, &backlog)
        })
        .expect("spawn applier thread");
    (tx, thread)
}

/// Gives this thread a nice value of [`APPLIER_NICE`]: applying is not on the path of any
/// answer, so when the two cores are busy the threads that answer requests run first. The
/// bounded queue still holds the committer back if the applier falls too far behind.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread; no memory is shared with the kernel.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, APPLIER_NICE)
    };
    if result != 0 {
        tracing::debug!("could not lower the applier's priority");
    }
}

/// Where a pass goes: the trees, `meta`, and the count of sled writes per tree.
struct Sink<'a> {
    trees: &'a Trees,
    meta: &'a sled::Tree,
    sled_writes: &'a prometheus::IntCounterVec,
}

fn run(
    sink: &Sink<'_>,
    rx: &Receiver<Logged>,
    checkpoints: &Sender<Retire>,
    failed: &AtomicBool,
    backlog: &Backlog,
) {
    let mut broken = false;
    while let Ok(first) = rx.recv() {
        let deadline = first.logged_at + APPLY_DELAY;
        let mut pass = vec![first];
        while pass.len() < APPLY_QUEUE_MAX {
            match rx.recv_deadline(deadline) {
                Ok(next) => pass.push(next),
                Err(_) => break,
            }
        }
        let bytes: usize = pass.iter().map(|l| l.bytes).sum();
        if broken {
            // A failed store refuses writes; nothing more reaches sled, and the committer
            // must not wait for it.
            backlog.release(bytes);
            continue;
        }
        let applied = apply_pass(sink, &pass);
        backlog.release(bytes);
        if let Err(error) = applied {
            tracing::error!(operation = "apply", %error, "applying to sled failed; store refuses writes");
            failed.store(true, Ordering::Release);
            broken = true;
            continue;
        }
        if let Some(sealed) = pass
            .iter()
            .filter_map(|l| l.sealed)
            .max_by_key(|s| s.segment)
        {
            let _ = checkpoints.send(Retire {
                through_segment: sealed.segment,
                lsn: pass.iter().map(|l| l.lsn).max().unwrap_or(sealed.last_lsn),
            });
        }
    }
}

/// Applies the groups of `pass` (oldest first) to sled, each key once with its last value,
/// records the pass's last LSN in `meta`, then drops those keys from the memtables.
fn apply_pass(sink: &Sink<'_>, pass: &[Logged]) -> Result<(), StoreError> {
    let Sink {
        trees,
        meta,
        sled_writes,
    } = sink;
    let through_epoch = pass.iter().map(|l| l.epoch).max().unwrap_or(0);
    // Tree name → key → last value, in key order (sled then walks its leaves in order).
    let mut last: BTreeMap<&str, BTreeMap<&[u8], Option<&[u8]>>> = BTreeMap::new();
    for logged in pass {
        for (name, batch) in &logged.record.trees {
            let writes = last.entry(name.as_str()).or_default();
            for op in &batch.ops {
                writes.insert(op.key.as_slice(), op.value.as_deref());
            }
        }
    }
    for (name, writes) in &last {
        let tree = trees.by_name(name)?;
        let mut written = 0;
        for (key, value) in writes {
            written += u64::from(tree.apply(key, *value)?);
        }
        sled_writes.with_label_values(&[name]).inc_by(written);
    }
    if let Some(lsn) = pass.iter().map(|l| l.lsn).max() {
        meta::set_applied_lsn(meta, lsn)?;
    }
    for (name, writes) in &last {
        trees
            .by_name(name)?
            .unstage(through_epoch, writes.keys().copied());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committer waits while the backlog is full, and goes on once the applier has
    /// released enough; a group larger than the bound still enters an empty backlog.
    #[test]
    fn the_backlog_holds_the_committer_back_by_bytes() {
        let backlog = Arc::new(Backlog::default());
        backlog.admit(APPLY_QUEUE_BYTES_MAX - 10);
        let waiting = {
            let backlog = Arc::clone(&backlog);
            std::thread::spawn(move || backlog.admit(100))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "100 more bytes do not fit");
        backlog.release(APPLY_QUEUE_BYTES_MAX - 10);
        waiting.join().unwrap();
        assert_eq!(backlog.queued(), 100);
        backlog.release(100);
        backlog.admit(APPLY_QUEUE_BYTES_MAX * 2);
        assert_eq!(
            backlog.queued(),
            APPLY_QUEUE_BYTES_MAX * 2,
            "an empty backlog admits any group"
        );
    }
}
