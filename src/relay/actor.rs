//! The relay actor: one tokio task that owns the relay's position and carries events from
//! the outbox to the stream, in commit order, off the payment path.
//!
//! A round: find where the stream stands ([`Broker::position`]); move the cursor to the
//! event that is the stream's last message (the stream, not the stored cursor, is the
//! truth about what it holds); then publish batches after the cursor until an error; then
//! back off and start a new round. The cursor is kept in the store as the setting
//! [`CURSOR_KEY`], written through the committer at most once per
//! [`CURSOR_WRITE_INTERVAL`] or [`CURSOR_WRITE_EVERY_EVENTS`] events: it only saves a
//! restart the scan from the outbox's beginning. Payments never wait on any of this: the
//! relay only reads the store, and writes one small setting now and then.
//!
//! Its schedules (the waits of [`RETRY_SCHEDULE`], [`CURSOR_WRITE_INTERVAL`]) and the age
//! of the oldest unpublished event are read on the [`Clock`](crate::clock::Clock) it was
//! handed, like every schedule of the service; the idle poll ([`IDLE_POLL`]) is real
//! time, because it paces the relay's reads, and a manual clock that stands still must
//! not stall it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, SharedClock};
use crate::domain::event::Event;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::log_throttle::Throttle;
use crate::relay::config::RelayConfig;
use crate::relay::jetstream::{Broker, BrokerError, StreamPosition};
use crate::relay::status::RelayStatus;
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// The setting that holds the relay's cursor: the outbox sequence (decimal) through which
/// every event is known to be in the stream.
pub const CURSOR_KEY: &str = "relay.cursor";

/// Events read from the outbox and published (pipelined) at once.
pub const PUBLISH_BATCH_MAX: usize = 256;

/// The cursor is written after this many events at the latest ...
pub const CURSOR_WRITE_EVERY_EVENTS: u64 = 4096;
/// ... or this long after it moved, whichever comes first.
pub const CURSOR_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// How often an idle relay looks for new events. Short, because it bounds the relay's lag
/// when the load is light; a look is one range read of the outbox.
pub const IDLE_POLL: Duration = Duration::from_millis(10);

/// Events scanned when looking for the stream's last event in the outbox; past it the
/// relay resumes from the cursor and lets the duplicate window drop what it republishes.
pub const POSITION_SCAN_MAX_EVENTS: u64 = 1_000_000;

/// The waits between failed rounds; the last one repeats.
pub const RETRY_SCHEDULE: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// One log line per cause per minute (issue 18, "Bad input").
pub static RELAY_FAILURES: Throttle = Throttle::new(Duration::from_secs(60));

/// The wait after the `failures`-th failure in a row (1-based).
pub fn retry_delay(failures: usize) -> Duration {
    RETRY_SCHEDULE[failures.saturating_sub(1).min(RETRY_SCHEDULE.len() - 1)]
}

/// Why a round ended.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("reading the outbox: {0}")]
    Store(#[from] StoreError),
}

/// The relay actor's state.
pub struct RelayActor {
    config: RelayConfig,
    store: Arc<Store>,
    committer: CommitterHandle,
    status: Arc<RelayStatus>,
    /// Where the retry waits, the cursor's write interval and the events' age are read.
    clock: SharedClock,
    /// Every event with a sequence ≤ this is in the stream.
    cursor: u64,
    /// The cursor as last written to the store, and when (Unix milliseconds on `clock`).
    persisted: u64,
    persisted_at_ms: i64,
}

impl RelayActor {
    /// The actor, its cursor read from the store (0 when never written).
    ///
    /// # Errors
    /// [`StoreError`] when the setting cannot be read.
    pub fn new(
        config: RelayConfig,
        store: Arc<Store>,
        committer: CommitterHandle,
        status: Arc<RelayStatus>,
        clock: SharedClock,
    ) -> Result<RelayActor, StoreError> {
        let cursor = store
            .setting(CURSOR_KEY)?
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(RelayActor {
            config,
            store,
            committer,
            status,
            persisted_at_ms: clock.now_ms(),
            clock,
            cursor,
            persisted: cursor,
        })
    }

    /// Runs until the task is aborted (at shutdown).
    pub async fn run(mut self) {
        let mut broker: Option<Broker> = None;
        let mut failures = 0usize;
        loop {
            let error = match &broker {
                None => match Broker::connect(&self.config).await {
                    Ok(b) => {
                        broker = Some(b);
                        continue;
                    }
                    Err(e) => RoundError::Broker(e),
                },
                Some(b) => self.round(b, &mut failures).await,
            };
            failures += 1;
            self.report(&error);
            self.observe_lag();
            self.persist_cursor().await;
            clock::sleep(self.clock.as_ref(), retry_delay(failures)).await;
        }
    }

    /// One round: position, then publish until an error (which it returns).
    async fn round(&mut self, broker: &Broker, failures: &mut usize) -> RoundError {
        let position = match broker.position().await {
            Ok(p) => p,
            Err(e) => return e.into(),
        };
        if let Err(e) = self.resume_at(&position).await {
            return e.into();
        }
        let mut stream_last = position.last_sequence;
        self.status.set_ok();
        loop {
            let events = match self.store.events_after(self.cursor, PUBLISH_BATCH_MAX) {
                Ok(events) => events,
                Err(e) => return e.into(),
            };
            self.observe_lag_with(events.first().map(|(_, e)| e));
            if events.is_empty() {
                self.persist_cursor().await;
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            let published = broker.publish(&events, stream_last).await;
            if published.in_stream > 0 {
                self.cursor = events[published.in_stream - 1].0;
                stream_last = published.last_sequence;
                self.status
                    .metrics
                    .published_total
                    .inc_by(published.newly_stored);
                *failures = 0;
            }
            if let Some(error) = published.error {
                return error.into();
            }
            self.persist_cursor().await;
        }
    }

    /// Moves the cursor to the event that is the stream's last message; a stream the relay
    /// just created starts from the outbox's beginning. The event is looked for after the
    /// cursor first (the stored cursor lags the stream), then before it (a broker that
    /// lost what it had acknowledged, e.g. a power loss within its sync interval: the
    /// lost events are published again). The scans run off the async threads.
    async fn resume_at(&mut self, position: &StreamPosition) -> Result<(), StoreError> {
        if position.created {
            self.cursor = 0;
            return Ok(());
        }
        let Some(id) = position.last_event_id.clone() else {
            return Ok(());
        };
        let store = Arc::clone(&self.store);
        let cursor = self.cursor;
        let found = tokio::task::spawn_blocking(move || match find_event(&store, cursor, &id)? {
            Some(seq) => Ok(Some(seq)),
            None => find_event(&store, 0, &id).map(|s| s.filter(|seq| *seq < cursor)),
        })
        .await
        .map_err(|e| StoreError::Sled {
            detail: format!("relay position scan: {e}"),
        })??;
        if let Some(seq) = found {
            self.cursor = seq;
        }
        Ok(())
    }

    /// Writes the cursor through the committer when it moved and is due.
    async fn persist_cursor(&mut self) {
        if self.cursor == self.persisted {
            return;
        }
        let due = self.cursor.saturating_sub(self.persisted) >= CURSOR_WRITE_EVERY_EVENTS
            || self.clock.now_ms().saturating_sub(self.persisted_at_ms)
                >= clock::millis(CURSOR_WRITE_INTERVAL);
        if !due {
            return;
        }
        let write = WriteSet {
            ops: vec![WriteOp::Setting {
                key: CURSOR_KEY.to_owned(),
                value: self.cursor.to_string(),
            }],
        };
        match self.committer.commit(write).await {
            Ok(()) => {
                self.persisted = self.cursor;
                self.persisted_at_ms = self.clock.now_ms();
            }
            Err(e) => {
                // Not fatal: the stream itself says where to resume.
                if let Some(suppressed) = RELAY_FAILURES.admit(&format!("cursor: {e}")) {
                    tracing::warn!(operation = "relay", error = %e, suppressed, "relay cursor not written");
                }
            }
        }
    }

    fn report(&self, error: &RoundError) {
        let reason = error.to_string();
        if let Some(suppressed) = RELAY_FAILURES.admit(&cause_of(error)) {
            tracing::warn!(
                operation = "relay",
                reason = %reason,
                suppressed,
                "relay degraded: events wait in the outbox"
            );
        }
        self.status.set_degraded(reason);
    }

    fn observe_lag(&self) {
        let first = self
            .store
            .events_after(self.cursor, 1)
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, e)| e);
        self.observe_lag_with(first.as_ref());
    }

    /// Sets the lag gauges from the first event after the cursor (`None`: none).
    fn observe_lag_with(&self, first_unpublished: Option<&Event>) {
        let last = self.store.last_event_seq().unwrap_or(self.cursor);
        let lag = last.saturating_sub(self.cursor);
        let now_ms = self.clock.now_ms();
        let oldest_s = first_unpublished
            .map(|e| (now_ms - e.created_at_ms).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.status.set_progress(self.cursor, lag, oldest_s);
    }
}

/// The log throttle's key for `error`: its kind, without the parts that change from one
/// attempt to the next (sequences, timings), so one cause is one line a minute.
fn cause_of(error: &RoundError) -> String {
    match error {
        RoundError::Broker(BrokerError::Publish { .. }) => "publish".to_owned(),
        RoundError::Broker(BrokerError::Unavailable { .. }) => "unavailable".to_owned(),
        other => other.to_string(),
    }
}

/// The outbox sequence of the event `id`, looked for after `after` (bounded by
/// [`POSITION_SCAN_MAX_EVENTS`]).
///
/// # Errors
/// [`StoreError`] when the outbox cannot be read.
pub fn find_event(store: &Store, after: u64, id: &str) -> Result<Option<u64>, StoreError> {
    let mut from = after;
    let mut scanned = 0u64;
    while scanned < POSITION_SCAN_MAX_EVENTS {
        let page = store.events_after(from, PUBLISH_BATCH_MAX * 4)?;
        let Some((last, _)) = page.last() else {
            return Ok(None);
        };
        if let Some((seq, _)) = page.iter().find(|(_, e)| e.id == id) {
            return Ok(Some(*seq));
        }
        from = *last;
        scanned += page.len() as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_grows_then_repeats_its_last_step() {
        assert_eq!(retry_delay(1), Duration::from_millis(100));
        assert_eq!(retry_delay(2), Duration::from_millis(250));
        assert_eq!(retry_delay(5), Duration::from_secs(2));
        assert_eq!(retry_delay(500), Duration::from_secs(2));
    }

    #[test]
    fn a_cause_is_one_log_key_whatever_its_changing_details() {
        let publish = |detail: &str| {
            cause_of(&RoundError::Broker(BrokerError::Publish {
                detail: detail.to_owned(),
            }))
        };
        assert_eq!(
            publish("wrong last sequence: 17"),
            publish("wrong last sequence: 18")
        );
        let connect = cause_of(&RoundError::Broker(BrokerError::Connect {
            url: "nats://127.0.0.1:1".to_owned(),
            detail: "connection refused".to_owned(),
        }));
        assert_ne!(connect, publish("timed out"));
        let throttle = Throttle::new(Duration::from_secs(60));
        let start = std::time::Instant::now();
        assert_eq!(throttle.admit_at(&connect, start), Some(0));
        assert_eq!(
            throttle.admit_at(&connect, start + Duration::from_secs(59)),
            None
        );
        assert_eq!(
            throttle.admit_at(&connect, start + Duration::from_secs(61)),
            Some(1)
        );
    }
}
