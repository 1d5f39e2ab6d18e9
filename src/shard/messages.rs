//! What flows into a shard actor: a job for one payment key, with the channel its answer
//! goes back on.

use std::time::Instant;

use actix::Message;
use tokio::sync::oneshot;

use crate::domain::charge::ChargeOutcome;
use crate::domain::error::DomainError;
use crate::domain::machine::RefundCommand;
use crate::domain::machine::{CreateCommand, Reply};
use crate::shard::claims::ClaimGuard;

/// A payment key: `(merchant_id, order_no)`, the unit of serialization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentKey {
    pub merchant_id: String,
    pub order_no: String,
}

/// A create waiting for its key's turn.
#[derive(Debug)]
pub struct CreateJob {
    pub command: CreateCommand,
    pub reply: oneshot::Sender<Reply>,
    /// Holds the `Idempotency-Key` claim until the job is done.
    pub claim: Option<ClaimGuard>,
    /// Past this instant a still-waiting job answers 409 `idempotency_key_in_use`.
    pub wait_deadline: Instant,
    /// The request's span (its `X-Request-Id`): the job's log lines carry it.
    pub span: tracing::Span,
}

/// A refund waiting for its payment key's turn.
#[derive(Debug)]
pub struct RefundJob {
    pub command: RefundCommand,
    pub reply: oneshot::Sender<Reply>,
    /// Holds the `Idempotency-Key` claim until the job is done.
    pub claim: Option<ClaimGuard>,
    /// Past this instant a still-waiting job answers 409 `idempotency_key_in_use`.
    pub wait_deadline: Instant,
    /// The request's span (its `X-Request-Id`): the job's log lines carry it.
    pub span: tracing::Span,
}

/// A provider webhook's sync from the source of truth: apply the provider's final view of
/// an attempt (forward only: a `processing` attempt resolves, nothing else moves), then
/// re-send the payment's `pending` refunds.
#[derive(Debug)]
pub struct SyncJob {
    /// The attempt and its final outcome at the provider, when it has one.
    pub resolved: Option<(u32, ChargeOutcome)>,
    /// Signalled when the sync is done (dropped unsent if it could not run).
    pub done: oneshot::Sender<()>,
    /// The webhook request's span: the job's log lines carry its request id.
    pub span: tracing::Span,
}

/// Work for one payment key.
#[derive(Debug)]
pub enum Job {
    Create(Box<CreateJob>),
    /// A refund of the key's payment, serialized with its creates.
    Refund(Box<RefundJob>),
    /// A provider webhook's sync.
    Sync(Box<SyncJob>),
    /// Re-send the charge of a `processing` payment; `retry` counts background retries.
    Resume {
        retry: u32,
    },
}

impl Job {
    /// Answers the waiting request (if any) with `error`, dropping the job.
    pub fn reject(self, error: DomainError) {
        match self {
            Job::Create(create) => {
                let _ = create.reply.send(Reply::Error(error));
            }
            Job::Refund(refund) => {
                let _ = refund.reply.send(Reply::Error(error));
            }
            Job::Resume { .. } | Job::Sync(_) => {}
        }
    }

    /// The span the job runs in: its request's, none for background work.
    pub fn span(&self) -> tracing::Span {
        match self {
            Job::Create(create) => create.span.clone(),
            Job::Refund(refund) => refund.span.clone(),
            Job::Sync(sync) => sync.span.clone(),
            Job::Resume { .. } => tracing::Span::none(),
        }
    }

    /// When a waiting request gives up (`None` for background work, which never does).
    pub fn wait_deadline(&self) -> Option<Instant> {
        match self {
            Job::Create(create) => Some(create.wait_deadline),
            Job::Refund(refund) => Some(refund.wait_deadline),
            Job::Resume { .. } | Job::Sync(_) => None,
        }
    }
}

/// Enqueue `job` for `key` on the shard that owns it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Submit {
    pub key: PaymentKey,
    pub job: Job,
}

/// Readiness probe: the shard answers with how many jobs it holds.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Ping;
