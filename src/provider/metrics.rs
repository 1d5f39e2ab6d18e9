//! Metrics of the provider side, registered in the service's registry next to the core's
//! ([`crate::metrics::Metrics::registry`]): refunds answered, webhook deliveries, and
//! reconciliation discrepancies; and how long provider calls take
//! ([`crate::provider::observed`] observes every one).

use prometheus::{HistogramVec, IntCounterVec};

use crate::metrics::{Define, Metrics};

/// The `operation` label of `provider_request_duration_seconds`: one per connector call.
pub mod operation {
    pub const CHARGE: &str = "charge";
    pub const REFUND: &str = "refund";
    pub const RETRIEVE_PAYMENT: &str = "retrieve_payment";
    pub const BALANCE_TRANSACTIONS: &str = "balance_transactions";
}

/// Every `(operation, outcome)` pair of `provider_request_duration_seconds`, present (at 0)
/// from start-up (DESIGN §3). Charges: `succeeded`, `declined`, `retryable` (a timeout is
/// retryable); refunds: `succeeded`, `failed`, `retryable`; reads: `ok`, `not_found`,
/// `unavailable`, `rejected`.
pub const PROVIDER_REQUEST_LABELS: [(&str, &str); 14] = [
    (operation::CHARGE, "succeeded"),
    (operation::CHARGE, "declined"),
    (operation::CHARGE, "retryable"),
    (operation::REFUND, "succeeded"),
    (operation::REFUND, "failed"),
    (operation::REFUND, "retryable"),
    (operation::RETRIEVE_PAYMENT, "ok"),
    (operation::RETRIEVE_PAYMENT, "not_found"),
    (operation::RETRIEVE_PAYMENT, "unavailable"),
    (operation::RETRIEVE_PAYMENT, "rejected"),
    (operation::BALANCE_TRANSACTIONS, "ok"),
    (operation::BALANCE_TRANSACTIONS, "not_found"),
    (operation::BALANCE_TRANSACTIONS, "unavailable"),
    (operation::BALANCE_TRANSACTIONS, "rejected"),
];

/// Buckets of `provider_request_duration_seconds`, in seconds: from a simulator's
/// microseconds to a provider call at its 10 s default deadline and past it.
const PROVIDER_REQUEST_BUCKETS_S: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of refunds, provider webhooks and reconciliations, and the provider call
/// histogram.
pub struct ProviderMetrics {
    /// `refunds_created_total{status}`: refunds made, by the status they answered with.
    pub refunds_created_total: IntCounterVec,
    /// `provider_webhooks_total{outcome}`: `applied`, `duplicate`, `ignored`,
    /// `invalid_signature`, `provider_unavailable`.
    pub provider_webhooks_total: IntCounterVec,
    /// `reconciliation_discrepancies_total{type}`: discrepancies found by runs.
    pub reconciliation_discrepancies_total: IntCounterVec,
    /// `provider_request_duration_seconds{operation,outcome}`: one observation per
    /// connector call, in seconds, labelled by [`PROVIDER_REQUEST_LABELS`].
    pub provider_request_duration_seconds: HistogramVec,
}

impl ProviderMetrics {
    /// Creates the counters and registers them in `metrics`' registry.
    ///
    /// # Panics
    /// Only if a definition is malformed or registered twice (a programming error caught by
    /// every test that starts the service).
    pub fn register(metrics: &Metrics) -> ProviderMetrics {
        let define = Define(metrics.registry());
        let provider_request_duration_seconds = define.histogram_vec(
            "provider_request_duration_seconds",
            "Provider connector calls by operation and outcome, in seconds",
            &PROVIDER_REQUEST_BUCKETS_S,
            &["operation", "outcome"],
        );
        for (operation, outcome) in PROVIDER_REQUEST_LABELS {
            provider_request_duration_seconds.with_label_values(&[operation, outcome]);
        }
        ProviderMetrics {
            provider_request_duration_seconds,
            refunds_created_total: define.counter_vec(
                "refunds_created_total",
                "Refunds made, by the status answered",
                &["status"],
            ),
            provider_webhooks_total: define.counter_vec(
                "provider_webhooks_total",
                "Provider webhook deliveries by outcome",
                &["outcome"],
            ),
            reconciliation_discrepancies_total: define.counter_vec(
                "reconciliation_discrepancies_total",
                "Discrepancies found by reconciliation runs, by type",
                &["type"],
            ),
        }
    }
}
