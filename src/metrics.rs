//! Prometheus metrics (DESIGN §3 "Metrics"), one registry per running service so tests
//! that start several services in one process do not share counters.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: 50 µs .. 10 s.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Batch-size buckets (write sets per group commit).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Every metric paykeep exports.
pub struct Metrics {
    registry: Registry,
    /// `http_requests_total{route,status}`.
    pub http_requests_total: IntCounterVec,
    /// `http_request_duration_seconds{route}`.
    pub http_request_duration_seconds: HistogramVec,
    /// `payments_created_total{status}`: creates that made or re-attempted a payment, by
    /// the status they answered with.
    pub payments_created_total: IntCounterVec,
    /// `idempotent_replays_total`.
    pub idempotent_replays_total: IntCounter,
    /// `idempotency_conflicts_total`: 422 `idempotency_key_reused` and 409 in use.
    pub idempotency_conflicts_total: IntCounter,
    /// `store_commit_batch_size`: write sets per group commit.
    pub store_commit_batch_size: Histogram,
    /// `store_commit_duration_seconds`: apply + flush + sync of one group.
    pub store_commit_duration_seconds: Histogram,
    /// `provider_calls_total{outcome}`.
    pub provider_calls_total: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    ///
    /// # Panics
    /// Only if a metric definition is malformed (a programming error caught by tests).
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests_total = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .expect("metric");
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["route"],
        )
        .expect("metric");
        let payments_created_total = IntCounterVec::new(
            Opts::new(
                "payments_created_total",
                "Payment attempts made by status answered",
            ),
            &["status"],
        )
        .expect("metric");
        let idempotent_replays_total = IntCounter::new(
            "idempotent_replays_total",
            "Responses replayed for a repeated idempotency key",
        )
        .expect("metric");
        let idempotency_conflicts_total = IntCounter::new(
            "idempotency_conflicts_total",
            "Idempotency keys refused: reused with another request, or still in use",
        )
        .expect("metric");
        let store_commit_batch_size = Histogram::with_opts(
            HistogramOpts::new("store_commit_batch_size", "Write sets per group commit")
                .buckets(BATCH_BUCKETS.to_vec()),
        )
        .expect("metric");
        let store_commit_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "store_commit_duration_seconds",
                "Apply, flush and sync time of one group commit",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
        )
        .expect("metric");
        let provider_calls_total = IntCounterVec::new(
            Opts::new("provider_calls_total", "Provider charge calls by outcome"),
            &["outcome"],
        )
        .expect("metric");
        for collector in [
            Box::new(http_requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_request_duration_seconds.clone()),
            Box::new(payments_created_total.clone()),
            Box::new(idempotent_replays_total.clone()),
            Box::new(idempotency_conflicts_total.clone()),
            Box::new(store_commit_batch_size.clone()),
            Box::new(store_commit_duration_seconds.clone()),
            Box::new(provider_calls_total.clone()),
        ] {
            registry.register(collector).expect("register metric");
        }
        Metrics {
            registry,
            http_requests_total,
            http_request_duration_seconds,
            payments_created_total,
            idempotent_replays_total,
            idempotency_conflicts_total,
            store_commit_batch_size,
            store_commit_duration_seconds,
            provider_calls_total,
        }
    }

    /// The registry, for other modules to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `paykeep_build_info{version}`, set to 1 for this build (paykeep's and the sandbox's
/// `/metrics` both carry it); the caller registers it.
///
/// # Panics
/// Never: the definition is fixed.
pub fn build_info() -> IntGaugeVec {
    let build_info = IntGaugeVec::new(
        Opts::new(
            "paykeep_build_info",
            "Always 1; the running build in its labels",
        ),
        &["version"],
    )
    .expect("metric");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    build_info
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
