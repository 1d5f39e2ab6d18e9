//! The group committer: the store's one writer.
//!
//! Shards hand it write sets through a bounded channel. It takes the first, keeps gathering
//! for up to `commit_window_us` or until `commit_batch_max` write sets, logs them as one
//! write-ahead log record, syncs once, makes them visible to readers, then answers every
//! waiter; the applier puts them in sled later. While it syncs, the next batch queues up,
//! so the batch grows with load (TigerBeetle: "don't react to each event, batch").

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::domain::write_set::WriteSet;
use crate::log_throttle::STORE_FAILURES;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Write sets that may queue for the committer. Beyond it, [`CommitterHandle::commit`]
/// waits for room (back-pressure on the shards) instead of growing memory.
pub const COMMIT_QUEUE_MAX: usize = 65_536;

struct Pending {
    write_set: WriteSet,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Where shards send write sets. Cheap to clone.
#[derive(Clone)]
pub struct CommitterHandle {
    tx: Sender<Pending>,
}

/// Group-commit parameters (`[store]`).
#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    pub window: Duration,
    pub batch_max: usize,
}

impl CommitterHandle {
    /// Commits `write_set` and resolves once it is durable.
    ///
    /// # Errors
    /// The batch's [`StoreError`], or [`StoreError::Closed`] after shutdown.
    pub async fn commit(&self, write_set: WriteSet) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let mut pending = Pending { write_set, done };
        loop {
            match self.tx.try_send(pending) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
                Err(TrySendError::Full(back)) => {
                    // Bounded: wait for room instead of growing memory.
                    pending = back;
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
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
    let (tx, rx) = crossbeam_channel::bounded(COMMIT_QUEUE_MAX);
    let thread = std::thread::Builder::new()
        .name("paykeep-committer".to_owned())
        .spawn(move || run(&store, &rx, policy, &metrics))
        .expect("spawn committer thread");
    (CommitterHandle { tx }, thread)
}

fn run(store: &Store, rx: &Receiver<Pending>, policy: CommitPolicy, metrics: &Metrics) {
    let mut batch: Vec<Pending> = Vec::with_capacity(policy.batch_max);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        gather(rx, policy, &mut batch);
        let started = Instant::now();
        let write_sets: Vec<&WriteSet> = batch.iter().map(|p| &p.write_set).collect();
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
