//! Deliveries handed to a notifier and not yet finished, per channel, bounded. A slot is
//! taken by the dispatcher before it claims a delivery and released (by dropping the
//! guard) after the notifier committed the outcome, or when the notifier dropped the work
//! (panic, restart). A `sending` delivery in the store without a slot is an orphan: the
//! dispatcher records it as interrupted and retries it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::delivery::Channel;

/// Deliveries in flight per channel: bounds each notifier's work and mailbox.
pub const IN_FLIGHT_MAX_PER_CHANNEL: usize = 64;

/// The set of delivery ids in flight.
pub struct InFlight {
    ids: Mutex<HashSet<String>>,
    counts: [AtomicUsize; Channel::COUNT],
    wake: Arc<tokio::sync::Notify>,
}

/// Holds one slot; dropping it frees the slot and wakes the dispatcher.
pub struct InFlightGuard {
    in_flight: Arc<InFlight>,
    channel: Channel,
    id: String,
}

impl InFlight {
    pub fn new(wake: Arc<tokio::sync::Notify>) -> InFlight {
        InFlight {
            ids: Mutex::new(HashSet::new()),
            counts: Default::default(),
            wake,
        }
    }

    /// A slot for delivery `id` on `channel`, unless the channel is full or `id` is in
    /// flight already.
    pub fn try_acquire(self: &Arc<Self>, channel: Channel, id: &str) -> Option<InFlightGuard> {
        let mut ids = self.ids.lock().ok()?;
        let count = &self.counts[channel.index()];
        if count.load(Ordering::Acquire) >= IN_FLIGHT_MAX_PER_CHANNEL || ids.contains(id) {
            return None;
        }
        ids.insert(id.to_owned());
        count.fetch_add(1, Ordering::AcqRel);
        Some(InFlightGuard {
            in_flight: Arc::clone(self),
            channel,
            id: id.to_owned(),
        })
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.lock().map(|ids| ids.contains(id)).unwrap_or(true)
    }

    pub fn count(&self, channel: Channel) -> usize {
        self.counts[channel.index()].load(Ordering::Acquire)
    }
}

impl InFlightGuard {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.in_flight.ids.lock() {
            ids.remove(&self.id);
        }
        self.in_flight.counts[self.channel.index()].fetch_sub(1, Ordering::AcqRel);
        self.in_flight.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let in_flight = Arc::new(InFlight::new(Arc::new(tokio::sync::Notify::new())));
        let first = in_flight.try_acquire(Channel::Slack, "dlv_0").unwrap();
        assert!(in_flight.try_acquire(Channel::Slack, "dlv_0").is_none());
        let mut held = vec![first];
        for i in 1..IN_FLIGHT_MAX_PER_CHANNEL {
            held.push(
                in_flight
                    .try_acquire(Channel::Slack, &format!("dlv_{i}"))
                    .unwrap(),
            );
        }
        assert!(in_flight.try_acquire(Channel::Slack, "dlv_x").is_none());
        assert!(in_flight.try_acquire(Channel::Email, "dlv_x").is_some());
        held.pop();
        assert!(in_flight.contains("dlv_0"));
        assert_eq!(
            in_flight.count(Channel::Slack),
            IN_FLIGHT_MAX_PER_CHANNEL - 1
        );
        drop(held);
        assert!(!in_flight.contains("dlv_0"));
        assert_eq!(in_flight.count(Channel::Slack), 0);
    }
}
