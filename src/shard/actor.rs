//! The shard actor: owns the payment keys of its partitions and serializes each key's
//! jobs. It runs on its own Arbiter thread; a job's I/O (commit, provider call) runs as a
//! future spawned on the actor's context, so a slow provider call on one key never delays
//! the shard's other keys.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use crate::domain::error::DomainError;
use crate::shard::job::{self, JobOutcome, ShardDeps};
use crate::shard::messages::{Job, PaymentKey, Ping, Submit};
use crate::shard::queue::{Enqueued, KeyQueues};

/// Mailbox bound of each shard; a full mailbox answers 503 with `Retry-After`.
pub const MAILBOX_CAPACITY: usize = 4_096;
/// First background retry of an unresolved charge, doubled each time.
pub const PROVIDER_RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between background retries (they go on until the charge resolves).
pub const PROVIDER_RETRY_MAX: Duration = Duration::from_secs(30);

pub struct ShardActor {
    index: usize,
    deps: Arc<ShardDeps>,
    queues: KeyQueues,
    in_flight_wait: Duration,
}

impl ShardActor {
    pub fn new(index: usize, deps: Arc<ShardDeps>, in_flight_wait: Duration) -> ShardActor {
        ShardActor {
            index,
            deps,
            queues: KeyQueues::default(),
            in_flight_wait,
        }
    }

    fn submit(&mut self, key: PaymentKey, job: Job, ctx: &mut Context<Self>) {
        match self.queues.enqueue(key.clone(), job) {
            Enqueued::Start(job) => self.start(key, job, ctx),
            Enqueued::Waiting => {
                // Check when this waiter's deadline passes (bounded: one timer per waiter).
                ctx.run_later(self.in_flight_wait, move |act, _| act.expire_waiting(&key));
            }
            Enqueued::Full(job) => {
                tracing::warn!(shard = self.index, "shard queue full; answering 503");
                job.reject(DomainError::Overloaded { retry_after_s: 1 });
            }
        }
    }

    fn start(&mut self, key: PaymentKey, job: Job, ctx: &mut Context<Self>) {
        let retry = match &job {
            Job::Resume { retry } => *retry,
            Job::Create(_) | Job::Refund(_) | Job::Sync(_) => 0,
        };
        let work = job::run(Arc::clone(&self.deps), key.clone(), job);
        ctx.spawn(
            work.into_actor(self)
                .map(move |outcome, act, ctx| act.finished(key, retry, outcome, ctx)),
        );
    }

    fn finished(
        &mut self,
        key: PaymentKey,
        retry: u32,
        outcome: JobOutcome,
        ctx: &mut Context<Self>,
    ) {
        if outcome.retry_later {
            let delay = retry_delay(retry);
            let again = key.clone();
            ctx.run_later(delay, move |act, ctx| {
                act.submit(again, Job::Resume { retry: retry + 1 }, ctx);
            });
        }
        if let Some(next) = self.queues.finish(&key) {
            self.start(key, next, ctx);
        }
    }

    fn expire_waiting(&mut self, key: &PaymentKey) {
        for job in self.queues.take_expired(key, Instant::now()) {
            self.deps.metrics.idempotency_conflicts_total.inc();
            job.reject(DomainError::IdempotencyKeyInUse { retry_after_s: 1 });
        }
    }
}

/// Background retry delay: 250 ms doubling, capped at 30 s.
pub fn retry_delay(retry: u32) -> Duration {
    PROVIDER_RETRY_FIRST
        .saturating_mul(1u32 << retry.min(16))
        .min(PROVIDER_RETRY_MAX)
}

impl Actor for ShardActor {
    type Context = Context<Self>;
}

impl Handler<Submit> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Submit, ctx: &mut Self::Context) {
        self.submit(msg.key, msg.job, ctx);
    }
}

impl Handler<Ping> for ShardActor {
    type Result = usize;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> usize {
        self.queues.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_and_caps() {
        assert_eq!(retry_delay(0), Duration::from_millis(250));
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(3), Duration::from_secs(2));
        assert_eq!(retry_delay(40), PROVIDER_RETRY_MAX);
    }
}
