//! Notification metrics (DESIGN §3 "Metrics"), registered in the service's registry.

use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use crate::domain::delivery::DeliveryStatus;
use crate::metrics::Define;

/// Send latency buckets in seconds: 1 ms .. 30 s.
const SEND_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct NotifyMetrics {
    /// `notification_delivery_success_total{channel}`.
    pub success_total: IntCounterVec,
    /// `notification_delivery_failure_total{channel,retryable}`.
    pub failure_total: IntCounterVec,
    /// `notification_delivery_duration_seconds{channel}`: one HTTP attempt.
    pub duration_seconds: HistogramVec,
    /// `mail_send_duration_seconds`: one e-mail API call.
    pub mail_send_duration_seconds: Histogram,
    /// `notification_deliveries{status}`: deliveries per status (gauge).
    pub deliveries: IntGaugeVec,
    /// `notifier_restarts_total{channel}`: supervised restarts after a panic.
    pub restarts_total: IntCounterVec,
}

impl NotifyMetrics {
    /// Registers the metrics in `registry`.
    ///
    /// # Panics
    /// Only if a metric definition is malformed or registered twice (start-up only).
    pub fn register(registry: &Registry) -> NotifyMetrics {
        let define = Define(registry);
        NotifyMetrics {
            success_total: define.counter_vec(
                "notification_delivery_success_total",
                "Deliveries delivered",
                &["channel"],
            ),
            failure_total: define.counter_vec(
                "notification_delivery_failure_total",
                "Failed delivery attempts, by whether they will be retried",
                &["channel", "retryable"],
            ),
            duration_seconds: define.histogram_vec(
                "notification_delivery_duration_seconds",
                "Time of one delivery attempt's HTTP request",
                SEND_BUCKETS_S,
                &["channel"],
            ),
            mail_send_duration_seconds: define.histogram(
                "mail_send_duration_seconds",
                "Time of one e-mail API call",
                SEND_BUCKETS_S,
            ),
            deliveries: define.gauge_vec(
                "notification_deliveries",
                "Deliveries by status",
                &["status"],
            ),
            restarts_total: define.counter_vec(
                "notifier_restarts_total",
                "Notifier actors restarted after a panic",
                &["channel"],
            ),
        }
    }

    /// Sets the `notification_deliveries` gauge from the store's counts.
    pub fn set_counts(&self, counts: &[(DeliveryStatus, i64)]) {
        for (status, count) in counts {
            self.deliveries
                .with_label_values(&[status.as_str()])
                .set(*count);
        }
    }
}
