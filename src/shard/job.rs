//! Running one job: load the key's state, apply the command, carry out the effects in
//! order (persist and wait for durability, call the provider, answer), feeding the
//! provider's answer back into the state machine. This is the effect executor and nothing
//! else: provider calls are bounded, timed, counted and logged by the connector's decorator
//! ([`crate::provider::observed`]); answers are counted from the state, not re-parsed.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::clock::Clock;
use crate::domain::error::DomainError;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::UlidSource;
use crate::domain::machine::{apply, Command, Ctx, Effect, KeyState, Reply};
use crate::domain::payment::PaymentStatus;
use crate::domain::refund::RefundState;
use crate::log_throttle::STORE_FAILURES;
use crate::metrics::Metrics;
use crate::provider::Connector;
use crate::shard::claims::ClaimGuard;
use crate::shard::messages::{Job, PaymentKey, SyncJob};
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// What every job of a shard needs; shared by all shards.
pub struct ShardDeps {
    pub store: Arc<Store>,
    pub committer: CommitterHandle,
    /// The configured connector inside its decorator
    /// ([`crate::provider::observed::Observed`]: deadline, metrics, logs).
    pub connector: Arc<dyn Connector>,
    pub metrics: Arc<Metrics>,
    /// Refund counters (the provider side's metrics).
    pub provider_metrics: Arc<crate::provider::metrics::ProviderMetrics>,
    /// The time the state machine is given for each command.
    pub clock: Arc<dyn Clock>,
}

/// How a job ended, for the actor.
#[derive(Debug, Default)]
pub struct JobOutcome {
    /// The charge is still unresolved: schedule a background retry.
    pub retry_later: bool,
}

/// Runs `job` for `key` to completion, inside its request's span.
pub async fn run(deps: Arc<ShardDeps>, key: PaymentKey, job: Job) -> JobOutcome {
    let span = job.span();
    run_job(deps, key, job).instrument(span).await
}

async fn run_job(deps: Arc<ShardDeps>, key: PaymentKey, job: Job) -> JobOutcome {
    match job {
        Job::Create(create) => {
            let entry_key = create.command.key.clone();
            let command = Command::Create(Box::new(create.command));
            run_request(&deps, &key, entry_key, command, create.reply, create.claim).await
        }
        Job::Refund(refund) => {
            let entry_key = refund.command.key.clone();
            let command = Command::RefundCreate(Box::new(refund.command));
            run_request(&deps, &key, entry_key, command, refund.reply, refund.claim).await
        }
        Job::Sync(sync) => run_sync(&deps, &key, *sync).await,
        Job::Resume { .. } => match load(&deps.store, &key, None) {
            Ok(state) => execute(&deps, state, Command::Resume, None).await,
            Err(error) => {
                log_load_failure(&error);
                JobOutcome { retry_later: true }
            }
        },
    }
}

/// Runs a client's request (a create or a refund): loads the state with the entry of its
/// idempotency key, applies `command`, answers on `reply`, then frees the key's claim.
async fn run_request(
    deps: &ShardDeps,
    key: &PaymentKey,
    entry_key: IdempotencyKey,
    command: Command,
    reply: oneshot::Sender<Reply>,
    claim: Option<ClaimGuard>,
) -> JobOutcome {
    if reply.is_closed() {
        // The client went away while waiting: nothing was done, nothing to do.
        return JobOutcome::default();
    }
    let outcome = match load(&deps.store, key, Some(&entry_key)) {
        Ok(state) => execute(deps, state, command, Some(reply)).await,
        Err(error) => {
            log_load_failure(&error);
            let _ = reply.send(Reply::Error(DomainError::Internal));
            JobOutcome::default()
        }
    };
    drop(claim);
    outcome
}

/// Applies a webhook's sync: the provider's final outcome of an attempt (the machine
/// ignores it unless that attempt is still `processing`), then pending refunds.
async fn run_sync(deps: &Arc<ShardDeps>, key: &PaymentKey, sync: SyncJob) -> JobOutcome {
    let mut outcome = JobOutcome::default();
    if let Some((attempt, result)) = sync.resolved {
        match load(&deps.store, key, None) {
            Ok(state) => {
                let command = Command::ProviderResult {
                    attempt,
                    outcome: result,
                };
                outcome = execute(deps, state, command, None).await;
            }
            Err(error) => {
                log_load_failure(&error);
                return JobOutcome { retry_later: true };
            }
        }
    }
    match load(&deps.store, key, None) {
        Ok(state)
            if state
                .refunds
                .iter()
                .any(|r| r.status == RefundState::Pending) =>
        {
            let resumed = execute(deps, state, Command::Resume, None).await;
            outcome.retry_later |= resumed.retry_later;
        }
        Ok(_) => {}
        Err(error) => {
            log_load_failure(&error);
            outcome.retry_later = true;
        }
    }
    let _ = sync.done.send(());
    outcome
}

fn load(
    store: &Store,
    key: &PaymentKey,
    entry_key: Option<&IdempotencyKey>,
) -> Result<KeyState, StoreError> {
    let payment = store.payment_by_order(&key.merchant_id, &key.order_no)?;
    let entry = match entry_key {
        Some(k) => store.idempotency(k)?.map(|e| (k.clone(), e)),
        None => None,
    };
    let refunds = match &payment {
        Some(p) => store.refunds_of_payment(&p.id)?,
        None => Vec::new(),
    };
    Ok(KeyState {
        payment,
        entry,
        refunds,
    })
}

fn step(deps: &ShardDeps, state: KeyState, command: Command) -> (KeyState, Vec<Effect>) {
    let mut ids = UlidSource;
    let mut ctx = Ctx {
        now_ms: deps.clock.now_ms(),
        ids: &mut ids,
        provider: deps.connector.name(),
    };
    apply(state, command, &mut ctx)
}

async fn execute(
    deps: &ShardDeps,
    state: KeyState,
    command: Command,
    mut reply: Option<oneshot::Sender<Reply>>,
) -> JobOutcome {
    let refunding = matches!(command, Command::RefundCreate(_));
    let was_processing = is_processing(&state);
    let (mut state, effects) = step(deps, state, command);
    let mut effects: VecDeque<Effect> = effects.into();
    let mut outcome = JobOutcome::default();
    while let Some(effect) = effects.pop_front() {
        match effect {
            Effect::Persist(write_set) => {
                if let Err(error) = deps.committer.commit(write_set).await {
                    // The committer has logged the cause; one line per cause per window.
                    if let Some(suppressed) = STORE_FAILURES.admit(&error.to_string()) {
                        tracing::error!(operation = "commit", %error, suppressed, "write set not committed");
                    }
                    if let Some(tx) = reply.take() {
                        let _ = tx.send(Reply::Error(DomainError::Internal));
                    }
                    // What is durable is unknown to this job: let a retry re-read it.
                    outcome.retry_later = true;
                    return outcome;
                }
            }
            Effect::CallProvider(request) => {
                let result = deps.connector.charge(&request).await;
                let command = Command::ProviderResult {
                    attempt: request.attempt,
                    outcome: result,
                };
                let (next, more) = step(deps, state, command);
                state = next;
                effects.extend(more);
            }
            Effect::CallProviderRefund(request) => {
                let result = deps.connector.refund(&request).await;
                let command = Command::RefundProviderResult {
                    refund_id: request.refund_id.clone(),
                    outcome: result,
                };
                let (next, more) = step(deps, state, command);
                state = next;
                effects.extend(more);
            }
            Effect::Respond(answer) => {
                count_reply(deps, &answer, &state, refunding);
                if let Some(tx) = reply.take() {
                    let _ = tx.send(answer);
                }
            }
            Effect::RetryLater => outcome.retry_later = true,
        }
    }
    if was_processing && !is_processing(&state) {
        log_resolved(&state);
    }
    outcome
}

fn is_processing(state: &KeyState) -> bool {
    state
        .payment
        .as_ref()
        .is_some_and(|p| p.status == PaymentStatus::Processing)
}

/// The line that closes the warning an unresolved charge logged: the payment that was
/// `processing` when this job started has its final answer now.
fn log_resolved(state: &KeyState) {
    if let Some(payment) = &state.payment {
        tracing::info!(
            operation = "charge",
            payment_id = %payment.id,
            attempt = payment.attempt_count,
            status = payment.status.as_str(),
            "processing payment resolved"
        );
    }
}

/// Counts an answer; `refunding` answers are refunds, not payment creates.
fn count_reply(deps: &ShardDeps, reply: &Reply, state: &KeyState, refunding: bool) {
    let metrics = &deps.metrics;
    match reply {
        Reply::Response { replayed: true, .. } => metrics.idempotent_replays_total.inc(),
        Reply::Response {
            replayed: false, ..
        } if refunding => {
            // The refund this request made: the one of the request's idempotency key.
            let key = state.entry.as_ref().map(|(key, _)| key);
            let status = state
                .refunds
                .iter()
                .find(|r| Some(&r.idempotency_key) == key)
                .map_or("unknown", |r| r.status.as_str());
            deps.provider_metrics
                .refunds_created_total
                .with_label_values(&[status])
                .inc();
        }
        Reply::Response {
            replayed: false, ..
        } => {
            let status = state
                .payment
                .as_ref()
                .map_or("unknown", |p| p.status.as_str());
            metrics
                .payments_created_total
                .with_label_values(&[status])
                .inc();
        }
        Reply::Error(DomainError::IdempotencyKeyReused { .. }) => {
            metrics.idempotency_conflicts_total.inc();
        }
        Reply::Error(_) => {}
    }
}

/// A failed state load, one line per cause per window ([`STORE_FAILURES`]).
fn log_load_failure(error: &StoreError) {
    if let Some(suppressed) = STORE_FAILURES.admit(&error.to_string()) {
        tracing::error!(operation = "load", %error, suppressed, "loading payment state failed");
    }
}
