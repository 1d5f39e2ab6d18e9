//! Where time comes from: every schedule in the service (notification retries and pacing,
//! which deliveries are due, the retention sweeps, the daily reconciliation, the alert
//! watcher, the relay's retries and cursor writes) and every timestamp it writes (the state
//! machines', the journal's commit time, the simulator's and the sandbox's ledgers) reads a
//! [`Clock`] it was handed and sleeps on it. The service runs on [`SystemClock`]; tests run
//! on a [`ManualClock`] and move it instead of sleeping.
//!
//! Durations of work (an HTTP request's latency, a provider call's timeout, a connection's
//! watchdog, an in-flight request's wait) are measured with `Instant` where they happen:
//! they are not schedules. Neither is the pace of polling loops (the dispatcher's passes,
//! the relay's idle poll), which stays real time so a manual clock that stands still does
//! not stall them, nor the log throttle's window ([`crate::log_throttle`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::time::now_ms;

/// A sleep on a [`Clock`], resolved once the clock reads its deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where time comes from, handed to what reads it.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The time in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Resolves once the clock reads `deadline_ms` (Unix milliseconds) or later; at once if
    /// it already does.
    fn sleep_until_ms(&self, deadline_ms: i64) -> Sleep;
}

/// The clock every production component shares.
pub type SharedClock = Arc<dyn Clock>;

/// Sleeps `duration` on `clock`.
pub fn sleep(clock: &dyn Clock, duration: Duration) -> Sleep {
    clock.sleep_until_ms(clock.now_ms().saturating_add(millis(duration)))
}

/// `duration` in whole milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock ([`now_ms`]); sleeps are tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn sleep_until_ms(&self, deadline_ms: i64) -> Sleep {
        let wait_ms = deadline_ms.saturating_sub(now_ms());
        if wait_ms <= 0 {
            // Due already: no timer, which would hold the caller until its next tick.
            return Box::pin(std::future::ready(()));
        }
        Box::pin(tokio::time::sleep(Duration::from_millis(
            wait_ms.unsigned_abs(),
        )))
    }
}

/// A clock that moves only when told to (tests); its sleepers wake when it passes their
/// deadline.
#[derive(Debug)]
pub struct ManualClock {
    ms: tokio::sync::watch::Sender<i64>,
}

impl ManualClock {
    /// A clock reading `start_ms` (Unix milliseconds).
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            ms: tokio::sync::watch::Sender::new(start_ms),
        }
    }

    /// A clock reading the wall clock's time now (so records it stamps look recent).
    pub fn starting_now() -> ManualClock {
        ManualClock::new(now_ms())
    }

    /// Moves the clock forward by `by` (whole milliseconds; saturating) and wakes the
    /// sleepers whose deadline it passed.
    pub fn advance(&self, by: Duration) {
        let by_ms = millis(by);
        self.ms.send_modify(|ms| *ms = ms.saturating_add(by_ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.ms.borrow()
    }

    fn sleep_until_ms(&self, deadline_ms: i64) -> Sleep {
        let mut reading = self.ms.subscribe();
        Box::pin(async move {
            // An error means the clock is gone: nothing will ever wake this sleeper.
            if reading.wait_for(|ms| *ms >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
        let wall: &dyn Clock = &SystemClock;
        assert!(wall.now_ms() > 1_700_000_000_000);
    }

    #[tokio::test]
    async fn a_sleeper_wakes_when_the_manual_clock_passes_its_deadline() {
        let clock = Arc::new(ManualClock::new(0));
        let sleeper = tokio::spawn(sleep(clock.as_ref(), Duration::from_secs(60)));
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken")
            .expect("no panic");
        // A deadline already passed resolves at once.
        clock.sleep_until_ms(0).await;
    }
}
