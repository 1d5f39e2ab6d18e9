//! The one decorator around the provider connector: every provider call is timed
//! (`provider_request_duration_seconds{operation,outcome}`), bounded by
//! `provider.timeout_ms` where the caller has no deadline of its own (charges and refunds),
//! counted (`provider_calls_total{outcome}`) and logged when unresolved. Built once at
//! start-up around the configured connector; callers see a plain [`Connector`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus::{HistogramVec, IntCounterVec};

use crate::domain::charge::{
    ChargeOutcome, ChargeRequest, ProviderOutcome, RefundOutcome, RefundRequest,
};
use crate::provider::metrics::{operation, ProviderMetrics};
use crate::provider::types::{ProviderError, ProviderPayment, SettlementRow};
use crate::provider::Connector;

/// The outcome of a charge or refund that did not answer within the deadline.
const TIMED_OUT: &str = "provider call timed out";

/// A [`Connector`] that times, bounds, counts and logs the calls of `inner`.
pub struct Observed {
    inner: Arc<dyn Connector>,
    /// Deadline of one charge or refund (`provider.timeout_ms`); past it the outcome is
    /// `Retryable` and the call is retried later with the same idempotency key.
    timeout: Duration,
    /// `provider_calls_total{outcome}` of the core registry.
    calls_total: IntCounterVec,
    /// `provider_request_duration_seconds{operation,outcome}`.
    duration: HistogramVec,
}

impl Observed {
    /// Wraps `inner`; `calls_total` is the core's `provider_calls_total`.
    pub fn new(
        inner: Arc<dyn Connector>,
        timeout: Duration,
        calls_total: IntCounterVec,
        metrics: &ProviderMetrics,
    ) -> Observed {
        Observed {
            inner,
            timeout,
            calls_total,
            duration: metrics.provider_request_duration_seconds.clone(),
        }
    }

    fn observe(&self, operation: &str, outcome: &str, started: Instant) {
        self.duration
            .with_label_values(&[operation, outcome])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Runs the write `call` (a charge or a refund) within the deadline (past it: retry
    /// later), times it under `operation` and counts it in `provider_calls_total` as
    /// `counted_as` names its outcome.
    async fn bounded<O: ProviderOutcome>(
        &self,
        operation: &str,
        call: impl Future<Output = O>,
        counted_as: fn(&O) -> &'static str,
    ) -> O {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| O::retryable(TIMED_OUT.to_owned()));
        self.observe(operation, result.label(), started);
        self.calls_total
            .with_label_values(&[counted_as(&result)])
            .inc();
        result
    }
}

/// The outcome label of a read.
fn read_outcome<T>(result: &Result<T, ProviderError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ProviderError::NotFound) => "not_found",
        Err(ProviderError::Unavailable { .. }) => "unavailable",
        Err(ProviderError::Rejected { .. }) => "rejected",
    }
}

#[async_trait]
impl Connector for Observed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        let call = self.inner.charge(request);
        let result = self
            .bounded(operation::CHARGE, call, ChargeOutcome::label)
            .await;
        if let Some(reason) = result.retry_reason() {
            tracing::warn!(
                operation = "charge",
                merchant_id = %request.merchant_id,
                order_no = %request.order_no,
                attempt = request.attempt,
                %reason,
                "provider call unresolved; will retry with the same idempotency key"
            );
        }
        result
    }

    async fn refund(&self, request: &RefundRequest) -> RefundOutcome {
        // `provider_calls_total` names refund outcomes `refund_<outcome>` (as it always did).
        let counted_as = |result: &RefundOutcome| match result {
            RefundOutcome::Succeeded { .. } => "refund_succeeded",
            RefundOutcome::Failed { .. } => "refund_failed",
            RefundOutcome::Retryable { .. } => "refund_retryable",
        };
        let call = self.inner.refund(request);
        let result = self.bounded(operation::REFUND, call, counted_as).await;
        if let Some(reason) = result.retry_reason() {
            tracing::warn!(
                operation = "refund",
                refund_id = %request.refund_id,
                %reason,
                "provider refund unresolved; will retry with the same idempotency key"
            );
        }
        result
    }

    async fn retrieve_payment(
        &self,
        provider_payment_id: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let started = Instant::now();
        let result = self.inner.retrieve_payment(provider_payment_id).await;
        self.observe(operation::RETRIEVE_PAYMENT, read_outcome(&result), started);
        result
    }

    async fn balance_transactions(
        &self,
        day: time::Date,
    ) -> Result<Vec<SettlementRow>, ProviderError> {
        let started = Instant::now();
        let result = self.inner.balance_transactions(day).await;
        self.observe(
            operation::BALANCE_TRANSACTIONS,
            read_outcome(&result),
            started,
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// A connector that answers after `delay`, succeeding.
    struct Slow {
        delay: Duration,
    }

    #[async_trait]
    impl Connector for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn charge(&self, _: &ChargeRequest) -> ChargeOutcome {
            tokio::time::sleep(self.delay).await;
            ChargeOutcome::Succeeded {
                provider_payment_id: "pi_1".into(),
            }
        }
        async fn refund(&self, _: &RefundRequest) -> RefundOutcome {
            tokio::time::sleep(self.delay).await;
            RefundOutcome::Succeeded {
                provider_refund_id: "re_1".into(),
            }
        }
        async fn retrieve_payment(&self, _: &str) -> Result<ProviderPayment, ProviderError> {
            Err(ProviderError::NotFound)
        }
        async fn balance_transactions(
            &self,
            _: time::Date,
        ) -> Result<Vec<SettlementRow>, ProviderError> {
            Ok(Vec::new())
        }
    }

    fn charge_request() -> ChargeRequest {
        ChargeRequest {
            merchant_id: "m".into(),
            order_no: "o".into(),
            attempt: 1,
            idempotency_key: "pk_1".into(),
            amount: 100,
            currency: "USD".into(),
            payment_method: "pm_card_visa".into(),
            description: None,
        }
    }

    fn observed(delay: Duration, timeout: Duration) -> (Observed, Metrics, ProviderMetrics) {
        let metrics = Metrics::new();
        let provider = ProviderMetrics::register(&metrics);
        let connector = Observed::new(
            Arc::new(Slow { delay }),
            timeout,
            metrics.provider_calls_total.clone(),
            &provider,
        );
        (connector, metrics, provider)
    }

    #[tokio::test]
    async fn a_call_is_timed_and_counted_by_its_outcome() {
        let (connector, metrics, provider) = observed(Duration::ZERO, Duration::from_secs(5));
        let result = connector.charge(&charge_request()).await;
        assert!(matches!(result, ChargeOutcome::Succeeded { .. }));
        let histogram = provider
            .provider_request_duration_seconds
            .with_label_values(&["charge", "succeeded"]);
        assert_eq!(histogram.get_sample_count(), 1);
        assert_eq!(
            metrics
                .provider_calls_total
                .with_label_values(&["succeeded"])
                .get(),
            1
        );
        assert!(connector.retrieve_payment("pi_x").await.is_err());
        let reads = provider
            .provider_request_duration_seconds
            .with_label_values(&["retrieve_payment", "not_found"]);
        assert_eq!(reads.get_sample_count(), 1);
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_is_retryable() {
        let (connector, metrics, provider) =
            observed(Duration::from_secs(60), Duration::from_millis(20));
        let result = connector.charge(&charge_request()).await;
        assert_eq!(
            result,
            ChargeOutcome::Retryable {
                reason: TIMED_OUT.to_owned()
            }
        );
        assert_eq!(
            metrics
                .provider_calls_total
                .with_label_values(&["retryable"])
                .get(),
            1
        );
        let histogram = provider
            .provider_request_duration_seconds
            .with_label_values(&["charge", "retryable"]);
        assert_eq!(histogram.get_sample_count(), 1);
        assert!(histogram.get_sample_sum() >= 0.02);
    }
}
