//! Metrics of the provider side, registered in the service's registry next to the core's
//! ([`crate::metrics::Metrics::registry`]): refunds answered, webhook deliveries, and
//! reconciliation discrepancies.

use prometheus::{IntCounterVec, Opts};

use crate::metrics::Metrics;

/// Counters of refunds, provider webhooks and reconciliations.
pub struct ProviderMetrics {
    /// `refunds_created_total{status}`: refunds made, by the status they answered with.
    pub refunds_created_total: IntCounterVec,
    /// `provider_webhooks_total{outcome}`: `applied`, `duplicate`, `ignored`,
    /// `invalid_signature`, `provider_unavailable`.
    pub provider_webhooks_total: IntCounterVec,
    /// `reconciliation_discrepancies_total{type}`: discrepancies found by runs.
    pub reconciliation_discrepancies_total: IntCounterVec,
}

impl ProviderMetrics {
    /// Creates the counters and registers them in `metrics`' registry.
    ///
    /// # Panics
    /// Only if a definition is malformed or registered twice (a programming error caught by
    /// every test that starts the service).
    pub fn register(metrics: &Metrics) -> ProviderMetrics {
        let counter = |name: &str, help: &str, label: &str| {
            let counter = IntCounterVec::new(Opts::new(name, help), &[label]).expect("metric");
            metrics
                .registry()
                .register(Box::new(counter.clone()))
                .expect("register metric");
            counter
        };
        ProviderMetrics {
            refunds_created_total: counter(
                "refunds_created_total",
                "Refunds made, by the status answered",
                "status",
            ),
            provider_webhooks_total: counter(
                "provider_webhooks_total",
                "Provider webhook deliveries by outcome",
                "outcome",
            ),
            reconciliation_discrepancies_total: counter(
                "reconciliation_discrepancies_total",
                "Discrepancies found by reconciliation runs, by type",
                "type",
            ),
        }
    }
}
