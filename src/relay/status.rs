//! What the relay shows the outside: its state for `/readyz` (ok, degraded and why, or
//! off) and the three Prometheus series of issue 18. The relay task writes it; `/readyz`
//! and `/metrics` read it.

use std::sync::Mutex;

use prometheus::{Gauge, IntCounter, IntGauge, Registry};
use serde::Serialize;

use crate::metrics::Define;

/// Where the relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayState {
    /// `relay.kind = ""`.
    Off,
    /// Connecting and finding its place in the stream for the first time.
    Starting,
    /// Publishing: the last attempt to reach the stream succeeded.
    Ok,
    /// The broker is away or refuses: the backlog grows, nothing is lost, payments go on.
    Degraded,
}

/// A copy of the relay's state, as `/readyz` shows it under `checks.relay`.
#[derive(Debug, Clone, Serialize)]
pub struct RelaySnapshot {
    pub status: RelayState,
    /// Why it is degraded (the last error), `None` otherwise.
    pub reason: Option<String>,
    /// Sequence of the last outbox event known to be in the stream.
    pub published_through_seq: u64,
    /// Outbox events committed but not yet acknowledged by the stream.
    pub lag_events: u64,
    /// Age in seconds of the oldest of those events; 0 when there is none.
    pub oldest_unpublished_seconds: f64,
}

/// The relay's metrics, registered in the service's registry.
pub struct RelayMetrics {
    /// `relay_published_total`: events the stream acknowledged as newly stored (a
    /// duplicate acknowledgement, an event the stream already held, is not counted).
    pub published_total: IntCounter,
    /// `relay_lag_events`: outbox events not yet in the stream.
    pub lag_events: IntGauge,
    /// `relay_oldest_unpublished_seconds`: age of the oldest of them, 0 when none.
    pub oldest_unpublished_seconds: Gauge,
}

impl RelayMetrics {
    /// Registers the three series (present at 0 from start-up, also with the relay off).
    ///
    /// # Panics
    /// If a series of the same name is already registered (a programming error).
    pub fn register(registry: &Registry) -> RelayMetrics {
        let define = Define(registry);
        RelayMetrics {
            published_total: define.counter(
                "relay_published_total",
                "Outbox events the JetStream stream acknowledged as newly stored",
            ),
            lag_events: define.gauge(
                "relay_lag_events",
                "Outbox events committed but not yet in the JetStream stream",
            ),
            oldest_unpublished_seconds: define.gauge_f64(
                "relay_oldest_unpublished_seconds",
                "Age of the oldest outbox event not yet in the JetStream stream (0 when none)",
            ),
        }
    }
}

/// The shared state: written by the relay task, read by `/readyz`.
pub struct RelayStatus {
    snapshot: Mutex<RelaySnapshot>,
    pub metrics: RelayMetrics,
}

impl RelayStatus {
    pub fn new(status: RelayState, metrics: RelayMetrics) -> RelayStatus {
        RelayStatus {
            snapshot: Mutex::new(RelaySnapshot {
                status,
                reason: None,
                published_through_seq: 0,
                lag_events: 0,
                oldest_unpublished_seconds: 0.0,
            }),
            metrics,
        }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> RelaySnapshot {
        self.lock().clone()
    }

    /// Publishing works again.
    pub fn set_ok(&self) {
        let mut s = self.lock();
        s.status = RelayState::Ok;
        s.reason = None;
    }

    /// The broker is away or refuses, because of `reason`.
    pub fn set_degraded(&self, reason: String) {
        let mut s = self.lock();
        s.status = RelayState::Degraded;
        s.reason = Some(reason);
    }

    /// Records how far the stream has got and what is left (also in the gauges).
    pub fn set_progress(&self, published_through_seq: u64, lag_events: u64, oldest_s: f64) {
        self.metrics
            .lag_events
            .set(i64::try_from(lag_events).unwrap_or(i64::MAX));
        self.metrics.oldest_unpublished_seconds.set(oldest_s);
        let mut s = self.lock();
        s.published_through_seq = published_through_seq;
        s.lag_events = lag_events;
        s.oldest_unpublished_seconds = oldest_s;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RelaySnapshot> {
        match self.snapshot.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
