//! The group committer: the store's one writer.
//!
//! Shards hand it write sets through a bounded channel: [`CommitterHandle::commit`] awaits
//! room in the queue (a semaphore of [`COMMIT_QUEUE_MAX`] permits, one held by each queued
//! or committing write set), so back-pressure never polls or blocks a runtime thread. The
//! committer, on its own thread, takes the first, keeps gathering
//! for up to `commit_window_us` or until `commit_batch_max` write sets, logs them as one
//! write-ahead log record, syncs once, makes them visible to readers, then answers every
//! waiter; the applier puts them in sled later. While it syncs, the next batch queues up,
//! so the batch grows with load (TigerBeetle: "don't react to each event, batch").

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::domain::write_set::WriteSet;
use crate::log_throttle::STORE_FAILURES;
use crate::metrics::Metrics;
use crate::store::tables::PreparedWriteSet;
use crate::store::{Store, StoreError};

/// Write sets that may be queued for or in the committer's batch. Beyond it,
/// [`CommitterHandle::commit`] awaits room (back-pressure on the shards) instead of growing
/// memory.
pub const COMMIT_QUEUE_MAX: usize = 65_536;

struct Pending {
    write_set: PreparedWriteSet,
    done: oneshot::Sender<Result<(), StoreError>>,
    /// Its place in the queue, given back when it is answered.
    _room: OwnedSemaphorePermit,
}

/// Where shards send write sets. Cheap to clone.
#[derive(Clone)]
pub struct CommitterHandle {
    /// Unbounded itself: `room` bounds it.
    tx: Sender<Pending>,
    room: Arc<Semaphore>,
}

/// Group-commit parameters (`[store]`).
#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    pub window: Duration,
    pub batch_max: usize,
}

impl CommitterHandle {
    /// Commits `write_set` and resolves once it is durable. Its records are encoded here,
    /// on the caller's thread ([`PreparedWriteSet`]), so the committer thread only lays
    /// out keys, logs and syncs.
    ///
    /// # Errors
    /// The batch's [`StoreError`], or [`StoreError::Closed`] after shutdown.
    pub async fn commit(&self, write_set: WriteSet) -> Result<(), StoreError> {
        let write_set = PreparedWriteSet::new(write_set)?;
        // Bounded: wait for room instead of growing memory.
        let room = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            write_set,
            done,
            _room: room,
        };
        self.tx.send(pending).map_err(|_| StoreError::Closed)?;
        wait.await.unwrap_or(Err(StoreError::Closed))
    }
}

/// Starts the committer thread. It stops when every [`CommitterHandle`] is dropped, after
/// committing what was queued.
pub fn start(
    store: Arc<Store>,
    policy: CommitPolicy,
    metrics: Arc<Metrics>,
) -> (CommitterHandle, JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let room = Arc::new(Semaphore::new(COMMIT_QUEUE_MAX));
    let thread = std::thread::Builder::new()
        .name("paykeep-committer".to_owned())
        .spawn(move || run(&store, &rx, policy, &metrics))
        .expect("spawn committer thread");
    (CommitterHandle { tx, room }, thread)
}

fn run(store: &Store, rx: &Receiver<Pending>, policy: CommitPolicy, metrics: &Metrics) {
    let mut batch: Vec<Pending> = Vec::with_capacity(policy.batch_max);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        gather(rx, policy, &mut batch);
        let started = Instant::now();
        let write_sets: Vec<&PreparedWriteSet> = batch.iter().map(|p| &p.write_set).collect();
        let result = store.commit_group(&write_sets).map(|_events| ());
        metrics
            .store_commit_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.store_commit_batch_size.observe(batch.len() as f64);
        if let Err(error) = &result {
            if let Some(suppressed) = STORE_FAILURES.admit(&error.to_string()) {
                tracing::error!(operation = "commit", %error, suppressed, "group commit failed; store refuses writes");
            }
        }
        for pending in batch.drain(..) {
            let _ = pending.done.send(result.clone());
        }
    }
}

/// Adds to `batch` what is queued and, unless writes piled up during the previous commit
/// (then the batch is already formed and waiting would only add latency), what arrives
/// within the window, up to the batch bound.
fn gather(rx: &Receiver<Pending>, policy: CommitPolicy, batch: &mut Vec<Pending>) {
    while batch.len() < policy.batch_max {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    if batch.len() > 1 {
        return;
    }
    let deadline = Instant::now() + policy.window;
    while batch.len() < policy.batch_max {
        // Take what is already queued without waiting.
        match rx.try_recv() {
            Ok(p) => {
                batch.push(p);
                continue;
            }
            Err(_) if policy.window.is_zero() => return,
            Err(_) => {}
        }
        match rx.recv_deadline(deadline) {
            Ok(p) => batch.push(p),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_awaits_room_and_a_write_set_holds_its_place_until_answered() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let room = Arc::new(Semaphore::new(0));
        let handle = CommitterHandle {
            tx,
            room: Arc::clone(&room),
        };
        let commit = tokio::spawn(async move { handle.commit(WriteSet::default()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            rx.try_recv().is_err(),
            "nothing is queued while the queue is full"
        );
        assert!(!commit.is_finished());
        room.add_permits(1);
        let pending = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            room.available_permits(),
            0,
            "the queued write set holds its place"
        );
        let Pending { done, _room, .. } = pending;
        done.send(Ok(())).unwrap();
        drop(_room);
        assert!(commit.await.unwrap().is_ok());
        assert_eq!(room.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_stopped_committer_is_closed() {
        let (tx, rx) = crossbeam_channel::unbounded::<Pending>();
        drop(rx);
        let handle = CommitterHandle {
            tx,
            room: Arc::new(Semaphore::new(1)),
        };
        assert!(matches!(
            handle.commit(WriteSet::default()).await,
            Err(StoreError::Closed)
        ));
    }
}
