//! `paykeep sandbox`: the simulator as a separate Stripe-compatible HTTP server with its own
//! durable ledger, so paykeep can be tested (and killed) against a real HTTP provider whose
//! books survive it.
//!
//! Stripe's shapes, form-encoded writes, `Authorization: Bearer` or HTTP Basic, Stripe's
//! validation and error objects ([`params`]). Writes: `POST /v1/payment_intents`
//! (`confirm=true`, `capture_method`), `…/{id}/capture`, `…/{id}/cancel` ([`intents`]),
//! `POST /v1/refunds` by `payment_intent` or `charge` ([`refunds`]). Reads: the lists
//! `GET /v1/{payment_intents,charges,refunds,balance_transactions}` (newest first, `limit`,
//! `starting_after`, `ending_before`, `created`, per-list filters, `expand[]=data.…`) and
//! each object by id ([`routes`]). Test cards in [`cards`]; `pm_sim_timeout`'s first call
//! per key answers after `--stall-ms`; `pm_sim_slow` (sandbox only) charges but answers
//! every call after `--stall-ms`; `--latency-ms` delays every answer. Optionally sends
//! signed events to `--webhook-url` (see [`events`]). `GET /metrics` (no auth) counts what
//! it was asked ([`metrics`]).

pub mod answer;
pub mod cards;
pub mod events;
pub mod intents;
pub mod ledger;
pub mod metrics;
pub mod params;
pub mod refunds;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::provider::sandbox::events::{EventSink, WebhookTarget};
use crate::provider::sandbox::ledger::Ledger;

/// How the sandbox runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// Delay before every answer.
    pub latency: Duration,
    /// How late the first call of a `pm_sim_timeout` key answers.
    pub stall: Duration,
    /// When set, the only accepted API key; otherwise any `sk_…` key.
    pub secret_key: Option<String>,
    pub webhook: Option<WebhookTarget>,
}

/// What the routes share.
pub struct Sandbox {
    pub ledger: Ledger,
    pub config: SandboxConfig,
    pub events: EventSink,
    /// What `GET /metrics` answers.
    pub metrics: metrics::SandboxMetrics,
}

/// Opens the ledger and serves until `shutdown` resolves, dating objects and events on
/// `clock`; returns the bound address and the server task.
///
/// # Errors
/// A message when the ledger cannot be opened or the address bound.
pub fn start(
    config: SandboxConfig,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let ledger = Ledger::open(&config.data_dir, Arc::clone(&clock))?;
    let events = EventSink::start(config.webhook.clone(), clock);
    let bind = config.bind;
    let sandbox = Arc::new(Sandbox {
        ledger,
        config,
        events,
        metrics: metrics::SandboxMetrics::new(),
    });
    // The same listener as `serve`, with DESIGN §4's default limits (issue 13: every
    // listener has a connection cap and header and idle timeouts).
    let listener =
        crate::listener::bind(bind).map_err(|e| format!("could not bind {bind}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("could not bind {bind}: {e}"))?;
    let nofile = crate::listener::raise_nofile_limit();
    let defaults = crate::listener::Limits::default();
    let limits = crate::listener::Limits {
        max_connections: crate::listener::connection_cap(defaults.max_connections, nofile),
        ..defaults
    };
    let server = crate::listener::serve(
        listener,
        warp::service(routes::routes(&sandbox)),
        limits,
        shutdown,
    );
    Ok((addr, tokio::spawn(server)))
}
