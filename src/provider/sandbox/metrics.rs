//! The sandbox's own `/metrics` (issue 17): what it was asked and how it answered, so a
//! load test or a dashboard can set the provider's side beside paykeep's. Prometheus text
//! format, no auth, like paykeep's `/metrics`.

use prometheus::{HistogramVec, IntCounterVec, Registry};

use crate::metrics::Define;

/// Latency buckets in seconds: 1 ms .. 30 s (the sandbox stalls on purpose up to
/// `--stall-ms`).
const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every `operation` label, present at 0 from start.
pub const OPERATIONS: &[&str] = &[
    "create_payment_intent",
    "capture",
    "cancel",
    "create_refund",
    "list",
    "retrieve",
    "metrics",
    "unrecognized",
];

/// The sandbox's registry.
pub struct SandboxMetrics {
    registry: Registry,
    /// `sandbox_requests_total{operation,status}`.
    pub requests_total: IntCounterVec,
    /// `sandbox_request_duration_seconds{operation}`, `--latency-ms` included.
    pub request_duration_seconds: HistogramVec,
}

impl SandboxMetrics {
    /// A fresh registry with every family registered.
    ///
    /// # Panics
    /// Only if a definition is malformed (start-up only).
    pub fn new() -> SandboxMetrics {
        let registry = Registry::new();
        let define = Define(&registry);
        let (requests_total, request_duration_seconds) = define.requests(
            "sandbox",
            "operation",
            [
                "Sandbox requests by operation and status",
                "Sandbox answer time by operation",
            ],
            LATENCY_BUCKETS_S,
        );
        define.build_info();
        for operation in OPERATIONS {
            request_duration_seconds.with_label_values(&[operation]);
            requests_total.with_label_values(&[operation, "500"]);
        }
        SandboxMetrics {
            registry,
            requests_total,
            request_duration_seconds,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        crate::metrics::render(&self.registry)
    }
}

impl Default for SandboxMetrics {
    fn default() -> Self {
        SandboxMetrics::new()
    }
}
