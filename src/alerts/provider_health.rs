//! Whether the provider has been failing, and since when: a decorator around the connector
//! records every call's outcome, and the alert watcher reads the streak
//! (`system.provider_unavailable`).
//!
//! A call fails when its outcome is `Retryable` (a transport error, a 5xx, a timeout) or it
//! returns [`ProviderError::Unavailable`]; a call dropped before it finished (the shard's deadline
//! `provider.timeout_ms` ran out) fails too. A decline or a failed refund is an answer: the
//! provider works.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, SharedClock};
use crate::domain::charge::{
    ChargeOutcome, ChargeRequest, ProviderOutcome, RefundOutcome, RefundRequest,
};
use crate::provider::types::{ProviderError, ProviderPayment, SettlementRow};
use crate::provider::Connector;

/// Longest failure reason kept for the alert's payload, in bytes.
const REASON_BYTES_MAX: usize = 256;

/// The current failure streak of the provider.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    /// Unix ms of the first failure with no success since; 0 while the provider answers.
    failing_since_ms: AtomicI64,
    /// The last failure's reason (truncated), for the alert.
    last_reason: Mutex<String>,
}

impl ProviderHealth {
    /// Records a call that got an answer.
    pub fn succeeded(&self) {
        self.failing_since_ms.store(0, Ordering::Release);
    }

    /// Records a failed call at `now_ms`; the streak starts at the first one.
    pub fn failed(&self, reason: &str, now_ms: i64) {
        let _ = self.failing_since_ms.compare_exchange(
            0,
            now_ms.max(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let mut reason = reason.to_owned();
        crate::domain::delivery::truncate_utf8(&mut reason, REASON_BYTES_MAX);
        if let Ok(mut last) = self.last_reason.lock() {
            *last = reason;
        }
    }

    /// The streak: since when calls have been failing, and the last reason; `None` while
    /// the provider answers.
    pub fn failing(&self) -> Option<(i64, String)> {
        let since = self.failing_since_ms.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let reason = self
            .last_reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        Some((since, reason))
    }
}

/// Records a call as failed if it is dropped before [`CallGuard::finish`] (the caller's
/// deadline ran out).
struct CallGuard<'a> {
    health: &'a ProviderHealth,
    /// When a failure is recorded.
    clock: &'a dyn Clock,
    finished: bool,
}

impl<'a> CallGuard<'a> {
    fn new(health: &'a ProviderHealth, clock: &'a dyn Clock) -> CallGuard<'a> {
        CallGuard {
            health,
            clock,
            finished: false,
        }
    }

    fn finish(mut self, failure: Option<&str>) {
        self.finished = true;
        match failure {
            Some(reason) => self.health.failed(reason, self.clock.now_ms()),
            None => self.health.succeeded(),
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.health
                .failed("provider call timed out", self.clock.now_ms());
        }
    }
}

/// A connector that reports every outcome of `inner` to `health` and passes it on.
pub struct Watched {
    pub inner: Arc<dyn Connector>,
    pub health: Arc<ProviderHealth>,
    /// When a failure streak starts.
    pub clock: SharedClock,
}

impl Watched {
    /// Runs the write `call` (a charge or a refund) and reports its outcome: a retry
    /// later is a failure, anything else an answer.
    async fn reported<O: ProviderOutcome>(&self, call: impl Future<Output = O>) -> O {
        let guard = CallGuard::new(&self.health, self.clock.as_ref());
        let outcome = call.await;
        guard.finish(outcome.retry_reason());
        outcome
    }
}

#[async_trait]
impl Connector for Watched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        self.reported(self.inner.charge(request)).await
    }

    async fn refund(&self, request: &RefundRequest) -> RefundOutcome {
        self.reported(self.inner.refund(request)).await
    }

    async fn retrieve_payment(
        &self,
        provider_payment_id: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let guard = CallGuard::new(&self.health, self.clock.as_ref());
        let result = self.inner.retrieve_payment(provider_payment_id).await;
        guard.finish(unavailable(result.as_ref().err()).as_deref());
        result
    }

    async fn balance_transactions(
        &self,
        day: time::Date,
    ) -> Result<Vec<SettlementRow>, ProviderError> {
        let guard = CallGuard::new(&self.health, self.clock.as_ref());
        let result = self.inner.balance_transactions(day).await;
        guard.finish(unavailable(result.as_ref().err()).as_deref());
        result
    }
}

/// The reason of a read that failed because the provider did not answer; `None` for an
/// answer (a missing object and a refusal are answers).
fn unavailable(error: Option<&ProviderError>) -> Option<String> {
    match error {
        Some(error @ ProviderError::Unavailable { .. }) => Some(error.to_string()),
        Some(ProviderError::NotFound | ProviderError::Rejected { .. }) | None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_starts_at_the_first_failure_and_ends_at_a_success() {
        let health = ProviderHealth::default();
        assert!(health.failing().is_none());
        health.failed("connection refused", 1_000);
        health.failed("503", 2_000);
        assert_eq!(health.failing(), Some((1_000, "503".to_owned())));
        health.succeeded();
        assert!(health.failing().is_none());
        health.failed("again", 5_000);
        assert_eq!(health.failing().map(|f| f.0), Some(5_000));
    }

    #[test]
    fn a_dropped_call_counts_as_a_failure() {
        use crate::clock::SystemClock;
        let health = ProviderHealth::default();
        drop(CallGuard::new(&health, &SystemClock));
        assert_eq!(
            health.failing().map(|f| f.1),
            Some("provider call timed out".to_owned())
        );
        CallGuard::new(&health, &SystemClock).finish(None);
        assert!(health.failing().is_none());
    }
}
