//! The metrics an operator alerts on (DESIGN §3, issue 17) beside the counters each part
//! keeps: gauges sampled from the store at every scrape (`payments_processing`,
//! `refunds_pending`, `outbox_oldest_undelivered_seconds`, `paykeep_store_ready`),
//! `paykeep_build_info{version}`, and every labelled family given its series at 0 at
//! start-up so an alert on a counter sees a series before the first event.
//!
//! deploy/prometheus/alerts.yml and deploy/grafana/paykeep.json are written against these
//! names; docs/operations.md lists them.

use prometheus::{IntCounterVec, IntGauge};

use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::payment::PaymentStatus;
use crate::domain::reconciliation::DiscrepancyKind;
use crate::domain::refund::RefundState;
use crate::metrics::{Define, Metrics};
use crate::notify::metrics::NotifyMetrics;
use crate::provider::metrics::ProviderMetrics;
use crate::store::Store;

/// The `route` label of every handler (the names passed to `http::respond`/`observe`),
/// plus `unmatched`; their `http_request_duration_seconds` and 5xx
/// `http_requests_total` series exist from start-up.
pub const ROUTE_LABELS: &[&str] = &[
    "create_payment",
    "get_payment",
    "list_payments",
    "create_refund",
    "list_refunds",
    "get_refund",
    "create_webhook_endpoint",
    "list_webhook_endpoints",
    "get_webhook_endpoint",
    "update_webhook_endpoint",
    "delete_webhook_endpoint",
    "rotate_webhook_endpoint_secret",
    "list_events",
    "get_event",
    "provider_webhook",
    "create_reconciliation",
    "get_reconciliation",
    "resolve_discrepancy",
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    "admin_dispatch",
    "admin_test_notification",
    "admin_events",
    "admin_overview",
    "admin_payment",
    "admin_payment_by_order",
    "admin_reconciliations",
    "console",
    "console_asset",
    "admin_deliveries",
    "admin_delivery",
    "admin_redrive",
    "admin_redrive_bulk",
    "admin_settings_get",
    "admin_settings_put",
    "admin_webhook_endpoints",
    "admin_webhook_endpoint_disable",
    "unmatched",
];

/// `provider_calls_total{outcome}` values (`shard::job`).
const PROVIDER_CALL_OUTCOMES: &[&str] = &[
    "succeeded",
    "declined",
    "retryable",
    "refund_succeeded",
    "refund_failed",
    "refund_retryable",
];

/// `provider_webhooks_total{outcome}` values (`http::provider_webhooks`).
const WEBHOOK_OUTCOMES: &[&str] = &[
    "applied",
    "duplicate",
    "ignored",
    "invalid_signature",
    "provider_unavailable",
    "refused",
];

/// Deliveries not delivered yet and not given up: the outbox's backlog.
const UNDELIVERED: [DeliveryStatus; 4] = [
    DeliveryStatus::Pending,
    DeliveryStatus::Sending,
    DeliveryStatus::RetryScheduled,
    DeliveryStatus::Paused,
];

/// The sampled gauges.
pub struct OpsMetrics {
    /// `payments_processing`: payments whose charge has no final answer yet.
    pub payments_processing: IntGauge,
    /// `refunds_pending`: refunds whose provider call has no final answer yet.
    pub refunds_pending: IntGauge,
    /// `outbox_oldest_undelivered_seconds`: age of the oldest delivery still pending,
    /// sending, scheduled for retry or paused; 0 when there is none.
    pub outbox_oldest_undelivered_seconds: IntGauge,
    /// `paykeep_store_ready`: 1 while the store reads and accepts writes, else 0 (the
    /// store half of `/readyz`).
    pub store_ready: IntGauge,
}

impl OpsMetrics {
    /// Registers the gauges and `paykeep_build_info` in `metrics`' registry.
    ///
    /// # Panics
    /// Only if a definition is malformed or registered twice (start-up only).
    pub fn register(metrics: &Metrics) -> OpsMetrics {
        let define = Define(metrics.registry());
        define.build_info();
        OpsMetrics {
            payments_processing: define.gauge(
                "payments_processing",
                "Payments whose charge has no final provider answer yet",
            ),
            refunds_pending: define.gauge(
                "refunds_pending",
                "Refunds whose provider call has no final answer yet",
            ),
            outbox_oldest_undelivered_seconds: define.gauge(
                "outbox_oldest_undelivered_seconds",
                "Age of the oldest delivery not yet delivered nor dead, 0 when none",
            ),
            store_ready: define.gauge(
                "paykeep_store_ready",
                "1 while the store reads and accepts writes, 0 otherwise",
            ),
        }
    }

    /// Samples the gauges from `store` (at every scrape; ages up to `now_ms`). A read that
    /// fails leaves its gauge as it was and marks the store not ready.
    pub fn refresh(&self, store: &Store, now_ms: i64) {
        let mut readable = true;
        match store.processing_payment_ids() {
            Ok(ids) => self.payments_processing.set(count(ids.len())),
            Err(_) => readable = false,
        }
        match store.pending_refunds() {
            Ok(refunds) => self.refunds_pending.set(count(refunds.len())),
            Err(_) => readable = false,
        }
        let mut oldest_ms: Option<i64> = None;
        for status in UNDELIVERED {
            match store.deliveries_with_status(status, None, 1) {
                Ok(first) => {
                    if let Some(d) = first.first() {
                        oldest_ms =
                            Some(oldest_ms.map_or(d.created_at_ms, |o| o.min(d.created_at_ms)));
                    }
                }
                Err(_) => readable = false,
            }
        }
        let age_s = oldest_ms.map_or(0, |created| (now_ms - created).max(0) / 1000);
        self.outbox_oldest_undelivered_seconds.set(age_s);
        self.store_ready
            .set(i64::from(readable && !store.is_failed()));
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Gives every labelled family its series at 0 (DESIGN §3), for the label values known
/// at start-up: statuses, channels, outcomes, discrepancy types, routes.
pub fn zero_labelled_families(
    metrics: &Metrics,
    notify: &NotifyMetrics,
    provider: &ProviderMetrics,
) {
    for route in ROUTE_LABELS {
        metrics
            .http_request_duration_seconds
            .with_label_values(&[route]);
        metrics
            .http_requests_total
            .with_label_values(&[route, "500"]);
    }
    let payment_statuses = [
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
    ];
    zero(
        &metrics.payments_created_total,
        payment_statuses.map(PaymentStatus::as_str),
    );
    zero(
        &metrics.provider_calls_total,
        PROVIDER_CALL_OUTCOMES.iter().copied(),
    );
    for channel in Channel::ALL {
        let channel = channel.as_str();
        notify.success_total.with_label_values(&[channel]);
        notify.failure_total.with_label_values(&[channel, "true"]);
        notify.failure_total.with_label_values(&[channel, "false"]);
        notify.duration_seconds.with_label_values(&[channel]);
        notify.restarts_total.with_label_values(&[channel]);
    }
    for status in DeliveryStatus::ALL {
        notify.deliveries.with_label_values(&[status.as_str()]);
    }
    let refund_states = [
        RefundState::Pending,
        RefundState::Succeeded,
        RefundState::Failed,
    ];
    zero(
        &provider.refunds_created_total,
        refund_states.map(RefundState::as_str),
    );
    zero(
        &provider.provider_webhooks_total,
        WEBHOOK_OUTCOMES.iter().copied(),
    );
    let discrepancy_kinds = [
        DiscrepancyKind::MissingInProvider,
        DiscrepancyKind::MissingInOurs,
        DiscrepancyKind::AmountMismatch,
        DiscrepancyKind::StatusMismatch,
    ];
    zero(
        &provider.reconciliation_discrepancies_total,
        discrepancy_kinds.map(DiscrepancyKind::as_str),
    );
}

/// Creates the series of the one-label `family` for each of `values`, at 0.
fn zero<'a>(family: &IntCounterVec, values: impl IntoIterator<Item = &'a str>) {
    for value in values {
        family.with_label_values(&[value]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The route label of each `respond(metrics, "label", …)` / `observe(metrics, "label", …)`
    /// call in `src/http`, or given to a `route::get_with_…` helper.
    fn labels_in_handlers() -> std::collections::BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut found = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("src/http") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            for call in ["respond(", "observe("] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let Some(comma) = rest.find(',') else {
                        continue;
                    };
                    let after = rest[comma + 1..].trim_start();
                    if let Some(quoted) = after.strip_prefix('"') {
                        if let Some(end) = quoted.find('"') {
                            found.insert(quoted[..end].to_owned());
                        }
                    }
                }
            }
            // `route::get_one_or_query(item, collection, state, ("label", read), ("label",
            // read))`: two labels, each opening a tuple after `state,`.
            for (at, _) in text.match_indices("route::get_one_or_query(") {
                let rest = &text[at..];
                let Some(state) = rest.find("state,") else {
                    continue;
                };
                for tuple in rest[state..].split("(\"").skip(1).take(2) {
                    if let Some(end) = tuple.find('"') {
                        found.insert(tuple[..end].to_owned());
                    }
                }
            }
            // `route::get_with_…(path, state, "label", handler)`: the label follows `state,`.
            for call in ["route::get_with_query(", "route::get_with_segment("] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let Some(state) = rest.find("state,") else {
                        continue;
                    };
                    let after = rest[state + "state,".len()..].trim_start();
                    if let Some(quoted) = after.strip_prefix('"') {
                        if let Some(end) = quoted.find('"') {
                            found.insert(quoted[..end].to_owned());
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn route_labels_are_the_handlers_labels() {
        let handlers = labels_in_handlers();
        assert!(handlers.len() >= 15, "{handlers:?}");
        let listed: std::collections::BTreeSet<String> = ROUTE_LABELS
            .iter()
            .filter(|l| **l != "unmatched")
            .map(|l| (*l).to_owned())
            .collect();
        assert_eq!(listed, handlers);
    }

    #[test]
    fn families_have_their_series_at_zero() {
        let metrics = Metrics::new();
        let notify = NotifyMetrics::register(metrics.registry());
        let provider = ProviderMetrics::register(&metrics);
        let ops = OpsMetrics::register(&metrics);
        zero_labelled_families(&metrics, &notify, &provider);
        let text = metrics.render();
        for series in [
            "notification_delivery_failure_total{channel=\"email\",retryable=\"true\"} 0",
            "notification_deliveries{status=\"dead\"} 0",
            "provider_calls_total{outcome=\"retryable\"} 0",
            "reconciliation_discrepancies_total{type=\"status_mismatch\"} 0",
            "http_request_duration_seconds_count{route=\"create_payment\"} 0",
            "payments_processing 0",
            "outbox_oldest_undelivered_seconds 0",
        ] {
            assert!(text.contains(series), "{series} missing");
        }
        assert!(text.contains(&format!(
            "paykeep_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        ops.store_ready.set(1);
    }
}
