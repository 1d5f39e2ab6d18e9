//! Prometheus metrics (DESIGN §3 "Metrics"), one registry per running service so tests
//! that start several services in one process do not share counters.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
        let define = Define(&registry);
        let (http_requests_total, http_request_duration_seconds) = define.requests(
            "http",
            "route",
            [
                "HTTP requests by route and status",
                "HTTP request latency by route",
            ],
            LATENCY_BUCKETS_S,
        );
        let payments_created_total = define.counter_vec(
            "payments_created_total",
            "Payment attempts made by status answered",
            &["status"],
        );
        let idempotent_replays_total = define.counter(
            "idempotent_replays_total",
            "Responses replayed for a repeated idempotency key",
        );
        let idempotency_conflicts_total = define.counter(
            "idempotency_conflicts_total",
            "Idempotency keys refused: reused with another request, or still in use",
        );
        let store_commit_batch_size = define.histogram(
            "store_commit_batch_size",
            "Write sets per group commit",
            BATCH_BUCKETS,
        );
        let store_commit_duration_seconds = define.histogram(
            "store_commit_duration_seconds",
            "Apply, flush and sync time of one group commit",
            LATENCY_BUCKETS_S,
        );
        let provider_calls_total = define.counter_vec(
            "provider_calls_total",
            "Provider charge calls by outcome",
            &["outcome"],
        );
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

/// Defines metrics and registers them in one registry: the shape of every module's
/// `register`, written once.
///
/// # Panics
/// Each method panics if its definition is malformed or its name is already registered in
/// the registry: a programming error, caught by any test that starts the service.
pub struct Define<'a>(pub &'a Registry);

impl Define<'_> {
    /// `metric`, registered.
    pub fn add<M: Collector + Clone + 'static>(&self, metric: prometheus::Result<M>) -> M {
        let metric = metric.expect("metric");
        self.0
            .register(Box::new(metric.clone()))
            .expect("register metric");
        metric
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help))
    }

    /// A gauge of fractional values (seconds).
    pub fn gauge_f64(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, labels))
    }

    /// The two families of a server's requests, named after `prefix`:
    /// `{prefix}_requests_total{label,status}` and
    /// `{prefix}_request_duration_seconds{label}` (in `buckets`, seconds), with `help` for
    /// each in that order.
    pub fn requests(
        &self,
        prefix: &str,
        label: &str,
        help: [&str; 2],
        buckets: &[f64],
    ) -> (IntCounterVec, HistogramVec) {
        let total = self.counter_vec(
            &format!("{prefix}_requests_total"),
            help[0],
            &[label, "status"],
        );
        let duration = self.histogram_vec(
            &format!("{prefix}_request_duration_seconds"),
            help[1],
            buckets,
            &[label],
        );
        (total, duration)
    }

    /// `paykeep_build_info{version}` at 1 for this build (paykeep's and the sandbox's
    /// `/metrics` both carry it).
    pub fn build_info(&self) {
        let build_info = self.gauge_vec(
            "paykeep_build_info",
            "Always 1; the running build in its labels",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
    }
}

/// Records one answered request: its time since `started` in `durations{label}` and one
/// more in `counts{label,status}` (paykeep's routes and the sandbox's operations).
pub fn record_request(
    durations: &HistogramVec,
    counts: &IntCounterVec,
    label: &str,
    started: std::time::Instant,
    status: &str,
) {
    durations
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    counts.with_label_values(&[label, status]).inc();
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
