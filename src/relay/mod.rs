//! The outbox relay to NATS JetStream (DESIGN §4 `[relay]`, §5 `src/relay/`; issue 18).
//!
//! Other services of a merchant (orders, a ledger, analytics) need every payment and
//! refund event, in order per payment, from a broker rather than by polling. With
//! `relay.kind = "nats"`, the [`actor`] reads the outbox in commit order
//! ([`crate::store::Store::events_after`]) and publishes each event, as the JSON event
//! object of `GET /admin/events`, to `{subject_prefix}.{event type}` on `relay.stream`,
//! with `Nats-Msg-Id` = the event id ([`jetstream`]). The stream holds each event once, in
//! commit order, also across kill -9 of paykeep or of nats-server (docs/relay.md says how).
//!
//! - [`config`] — the `[relay]` keys and their validation.
//! - [`jetstream`] — the connection, the stream (created when missing), publishing.
//! - [`actor`] — the loop, its cursor, its retry schedule.
//! - [`status`] — the state `/readyz` shows and the `relay_*` metrics.
//!
//! A broker that is away, slow or full only grows the backlog: start-up never waits on
//! it, and the payment path never touches the relay.

pub mod actor;
pub mod config;
pub mod jetstream;
pub mod status;

use std::sync::{Arc, Mutex};

pub use config::RelayConfig;
pub use status::{RelaySnapshot, RelayState, RelayStatus};

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// The running relay (or the record that it is off).
pub struct Relay {
    status: Arc<RelayStatus>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    /// Registers the `relay_*` metrics and, when `config.kind` is `"nats"`, starts the
    /// relay actor on the current tokio runtime, its schedules on `clock`. Never waits for
    /// the broker.
    ///
    /// # Errors
    /// [`StoreError`] when the stored cursor cannot be read.
    pub fn start(
        config: &RelayConfig,
        store: Arc<Store>,
        committer: CommitterHandle,
        metrics: &Metrics,
        clock: SharedClock,
    ) -> Result<Relay, StoreError> {
        let relay_metrics = status::RelayMetrics::register(metrics.registry());
        if !config.enabled() {
            return Ok(Relay {
                status: Arc::new(RelayStatus::new(RelayState::Off, relay_metrics)),
                task: Mutex::new(None),
            });
        }
        let status = Arc::new(RelayStatus::new(RelayState::Starting, relay_metrics));
        let actor =
            actor::RelayActor::new(config.clone(), store, committer, Arc::clone(&status), clock)?;
        let task = tokio::spawn(actor.run());
        Ok(Relay {
            status,
            task: Mutex::new(Some(task)),
        })
    }

    /// The relay's state for `/readyz`.
    pub fn snapshot(&self) -> RelaySnapshot {
        self.status.snapshot()
    }

    /// Stops the actor and lets go of its committer handle (the committer stops when its
    /// last handle is dropped). What was not published stays in the outbox for the next
    /// start. Idempotent.
    pub async fn stop(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}
