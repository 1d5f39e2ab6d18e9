//! Assembling the service: open the store, start the committer, the shard actors and the
//! sweep, resume `processing` payments, and serve HTTP until the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::alerts::provider_health::{self, ProviderHealth};
use crate::alerts::watcher;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{parse_hh_mm, Config};
use crate::domain::event::store_recovered_with_loss_event;
use crate::domain::ids::UlidSource;
use crate::domain::payment::PaymentRules;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::notify::Notifications;
use crate::ops_metrics::{self, OpsMetrics};
use crate::provider;
use crate::recon::schedule;
use crate::shard::claims::Claims;
use crate::shard::job::ShardDeps;
use crate::shard::messages::{Job, PaymentKey};
use crate::shard::Shards;
use crate::store::committer::{self, CommitPolicy};
use crate::store::{retention, sweep, Durability, OpenOptions, Store, StoreError};

/// How long in-flight requests may take to finish after shutdown starts; idle keep-alive
/// connections held open by clients do not delay shutdown past it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("provider: {0}")]
    Provider(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("could not bind {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
}

/// A running service.
pub struct Running {
    /// The bound address (the real port when `server.bind` had port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, then stops the actors and the
    /// committer (which commits what was queued).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Resolves when the server has stopped.
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Starts the service described by `config` on the current tokio runtime; it stops when
/// `shutdown` resolves or [`Running::shutdown`] is called.
///
/// # Errors
/// [`StartError`] if the store cannot be opened, the provider built or the port bound.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    start_with(config, OpenOptions::new(Durability::FlushAndSync), shutdown).await
}

/// [`start`] with chosen store options: `accept_data_loss` (`paykeep serve
/// --accept-data-loss`), or another [`Durability`] (benchmarks compare the two).
///
/// # Errors
/// As [`start`].
pub async fn start_with(
    config: Config,
    store_options: OpenOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    start_on_clock(config, store_options, Arc::new(SystemClock), shutdown).await
}

/// [`start_with`] on `clock`: every schedule (retries, pacing, sweeps, the daily
/// reconciliation, alerts) and every timestamp the service writes reads it. Tests hand in a
/// [`crate::clock::ManualClock`] and move it instead of sleeping.
///
/// # Errors
/// As [`start`].
pub async fn start_on_clock(
    config: Config,
    store_options: OpenOptions,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    crate::memory::disable_transparent_huge_pages();
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let provider_health = Arc::new(ProviderHealth::default());
    let connector: Arc<dyn provider::Connector> = Arc::new(provider_health::Watched {
        inner: provider::connector_for(&config, Arc::clone(&clock))
            .map_err(StartError::Provider)?,
        health: Arc::clone(&provider_health),
        clock: Arc::clone(&clock),
    });
    let store_options = OpenOptions {
        cache_capacity_bytes: config.store.cache_capacity_mb.get() * 1024 * 1024,
        clock: Arc::clone(&clock),
        ..store_options
    };
    let store = Arc::new(Store::open_with(&config.store.data_dir, store_options)?);
    metrics
        .registry()
        .register(Box::new(store.sled_writes_metric().clone()))
        .map_err(|e| StartError::Metrics(e.to_string()))?;
    let policy = CommitPolicy {
        window: config.commit_window(),
        batch_max: config.store.commit_batch_max.get(),
    };
    let (committer, committer_thread) =
        committer::start(Arc::clone(&store), policy, Arc::clone(&metrics));
    let provider_metrics = Arc::new(provider::metrics::ProviderMetrics::register(&metrics));
    let connector: Arc<dyn provider::Connector> = Arc::new(provider::observed::Observed::new(
        connector,
        config.provider_timeout(),
        metrics.provider_calls_total.clone(),
        &provider_metrics,
    ));
    let provider_side = Arc::new(provider::ProviderSide {
        connector: Arc::clone(&connector),
        committer: committer.clone(),
        resolving: dashmap::DashMap::new(),
        metrics: Arc::clone(&provider_metrics),
    });
    // Before anything can commit an event: the fan-out must be in place.
    let notify = Arc::new(
        Notifications::start(
            Arc::clone(&store),
            committer.clone(),
            &config.notifications,
            &config.webhooks,
            &metrics,
            Arc::clone(&clock),
        )
        .await?,
    );
    let ops_metrics = Arc::new(OpsMetrics::register(&metrics));
    ops_metrics::zero_labelled_families(&metrics, &notify.core.metrics, &provider_metrics);
    let deps = Arc::new(ShardDeps {
        store: Arc::clone(&store),
        committer: committer.clone(),
        connector,
        metrics: Arc::clone(&metrics),
        provider_metrics,
        clock: Arc::clone(&clock),
    });
    let shards = Arc::new(Shards::start(
        config.shard_count(),
        config.shards.partitions.get(),
        deps,
        config.in_flight_wait(),
    ));
    report_loss(&store, &committer, clock.now_ms()).await?;
    let resumed = resume_processing(&store, &shards).await?;
    if resumed > 0 {
        tracing::info!(
            operation = "recovery",
            resumed,
            "resuming processing payments"
        );
    }
    let retention = config.idempotency.retention;
    let sweeper = tokio::spawn(sweep::run(
        Arc::clone(&store),
        committer.clone(),
        retention,
        Arc::clone(&clock),
    ));
    let retention_sweeper = tokio::spawn(retention::run(
        Arc::clone(&store),
        committer.clone(),
        config.retention(),
        Arc::clone(&clock),
    ));
    let daily_recon = parse_hh_mm(&config.reconciliation.daily_at).map(|minute| {
        tokio::spawn(schedule::run_daily(
            minute,
            Arc::clone(&store),
            committer.clone(),
            Arc::clone(&provider_side.connector),
            Arc::clone(&clock),
        ))
    });
    let alert_watcher = tokio::spawn(watcher::run(watcher::WatchDeps {
        config: config.alerts.clone(),
        notify: Arc::clone(&notify.core),
        provider: provider_health,
    }));
    let relay = Arc::new(
        crate::relay::Relay::start(
            &config.relay,
            Arc::clone(&store),
            committer.clone(),
            &metrics,
            Arc::clone(&clock),
        )
        .map_err(StartError::Store)?,
    );
    drop(committer);
    let create_history = Arc::new(http::admin_overview::CreateHistory::new(
        clock.now_ms(),
        http::admin_overview::create_totals(&metrics),
    ));
    let create_sampler = tokio::spawn(http::admin_overview::sample_creates(
        Arc::clone(&metrics),
        Arc::clone(&create_history),
        Arc::clone(&clock),
    ));
    let bind = config.server.bind;
    let listener = http::server::bind(bind).map_err(|e| StartError::Bind {
        addr: bind,
        detail: e.to_string(),
    })?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: bind,
        detail: e.to_string(),
    })?;
    let state = Arc::new(AppState {
        openapi: http::openapi::document(&config, addr),
        rules: PaymentRules {
            currencies: config.payments.currencies.clone(),
            amount_minor_max: config.payments.amount_minor_max,
        },
        config: Arc::clone(&config),
        store,
        shards: Arc::clone(&shards),
        claims: Arc::new(Claims::default()),
        metrics,
        ops_metrics,
        provider: provider_side,
        notify: Arc::clone(&notify),
        create_history,
        relay: Arc::clone(&relay),
        clock,
    });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stopping_signal = Arc::clone(&stopping);
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            _ = stop_rx => {}
        }
        stopping_signal.notify_one();
    };
    tracing::info!(
        operation = "start",
        version = env!("CARGO_PKG_VERSION"),
        %addr,
        provider = state.provider.connector.name(),
        data_dir = %config.store.data_dir.display(),
        shards = config.shard_count(),
        "paykeep started"
    );
    let limits = server_limits(&config.server);
    let server = http::server::serve(
        listener,
        http::access_log::AccessLog::new(warp::service(http::routes(&state))),
        limits,
        signal,
    );
    let server = tokio::spawn(async move {
        let grace_over = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            () = server => {}
            () = grace_over => {
                tracing::warn!(operation = "shutdown", "connections still open after the grace period; closing them");
            }
        }
        sweeper.abort();
        let _ = sweeper.await;
        retention_sweeper.abort();
        let _ = retention_sweeper.await;
        alert_watcher.abort();
        let _ = alert_watcher.await;
        create_sampler.abort();
        let _ = create_sampler.await;
        if let Some(daily) = daily_recon {
            daily.abort();
            let _ = daily.await;
        }
        // The relay holds a committer handle too.
        relay.stop().await;
        drop(state);
        // The shards hold the last committer handles: stopping them lets the committer
        // finish its queue and exit.
        let stopped = tokio::task::spawn_blocking(move || {
            notify.stop();
            if let Some(mut shards) = Arc::into_inner(shards) {
                shards.stop();
            }
            let _ = committer_thread.join();
        });
        let _ = stopped.await;
        tracing::info!(operation = "shutdown", "stopped");
    });
    Ok(Running {
        addr,
        shutdown: Some(stop_tx),
        server,
    })
}

/// Writes the critical `system.store_recovered_with_loss` event through the outbox if the
/// store was opened on damage with `accept_data_loss` (DESIGN §6).
async fn report_loss(
    store: &Store,
    committer: &committer::CommitterHandle,
    now_ms: i64,
) -> Result<(), StoreError> {
    let Some(loss) = store.recovery_loss() else {
        return Ok(());
    };
    let event = store_recovered_with_loss_event(
        &loss.findings,
        &loss.dropped,
        &loss.moved_to.display().to_string(),
        &mut UlidSource,
        now_ms,
    );
    committer
        .commit(WriteSet {
            ops: vec![WriteOp::Event(event)],
        })
        .await
}

/// The `[server]` limits, the connection cap lowered to what the file limit (raised to its
/// hard limit first) leaves beside the descriptors kept for the store.
fn server_limits(server: &crate::config::ServerConfig) -> http::server::Limits {
    let nofile = http::server::raise_nofile_limit();
    let max_connections = http::server::connection_cap(server.max_connections.get(), nofile);
    if max_connections < server.max_connections.get() {
        tracing::info!(
            operation = "start",
            max_connections,
            configured = server.max_connections.get(),
            nofile,
            "connection cap lowered to keep descriptors for the store"
        );
    }
    http::server::Limits {
        max_connections,
        header_read_timeout: server.header_read_timeout,
        idle_timeout: server.idle_timeout,
    }
}

/// Hands every payment left `processing`, and every payment with a refund left `pending`,
/// to its shard (same provider idempotency keys).
async fn resume_processing(store: &Store, shards: &Shards) -> Result<usize, StoreError> {
    let mut ids = store.processing_payment_ids()?;
    ids.extend(store.pending_refunds()?.into_iter().map(|r| r.payment_id));
    ids.sort();
    ids.dedup();
    let mut resumed = 0;
    for id in ids {
        let Some(payment) = store.payment(&id)? else {
            continue;
        };
        let key = PaymentKey {
            merchant_id: payment.merchant_id,
            order_no: payment.order_no,
        };
        // A full mailbox at start-up only delays the resume: the shard's own retry timers
        // are not armed yet, so try again shortly, without blocking the runtime.
        let mut job = Job::Resume { retry: 0 };
        let mut attempts = 0;
        loop {
            match shards.submit(key.clone(), job) {
                Ok(()) => {
                    resumed += 1;
                    break;
                }
                Err(_) if attempts + 1 >= RESUME_SUBMIT_ATTEMPTS_MAX => {
                    tracing::error!(
                        operation = "recovery",
                        payment_id = %id,
                        attempts = RESUME_SUBMIT_ATTEMPTS_MAX,
                        "resume not queued: the shard stayed full; the payment stays processing until a webhook, a retry of its request or the next start-up"
                    );
                    break;
                }
                Err(back) => {
                    if attempts == 0 {
                        tracing::warn!(operation = "recovery", payment_id = %id, "shard full; retrying the resume");
                    }
                    job = back;
                    attempts += 1;
                    tokio::time::sleep(RESUME_SUBMIT_PAUSE).await;
                }
            }
        }
    }
    Ok(resumed)
}

/// Tries to queue one start-up resume before giving up on it (logged): with
/// [`RESUME_SUBMIT_PAUSE`], about 5 s of a full shard.
const RESUME_SUBMIT_ATTEMPTS_MAX: u32 = 1000;
/// Pause between tries to queue a start-up resume on a full shard.
const RESUME_SUBMIT_PAUSE: Duration = Duration::from_millis(5);
