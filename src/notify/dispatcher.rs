//! The outbox dispatcher: finds due deliveries and hands them to their channel's notifier.
//!
//! It wakes when a commit created deliveries (the fan-out hook pokes it), when an
//! in-flight slot frees up, and every [`SCAN_INTERVAL`] for due retries. A pass:
//! 1. orphans: `sending` deliveries that no notifier holds (a crash or panic cut the
//!    attempt short) are recorded as interrupted and rescheduled by the retry policy;
//! 2. due deliveries, per channel, earliest first: a paused channel's become `paused`, a
//!    disabled channel's `dead`, the rest are claimed (`sending`) up to the channel's free
//!    in-flight slots, committed in one write set, then sent to the notifiers. A channel
//!    at its bound is not even scanned, so a paced backlog costs nothing per pass;
//! 3. plans, on demand: when a channel that could send has no due record left, the next
//!    batch of fan-out plans is expanded into `pending` records (then claimed). Records are
//!    written as fast as the channels drain them, not as fast as payments create events,
//!    so under a payment burst the committer writes one plan record per group commit (the
//!    plans of its events) and little else.
//!
//! Passes are serialized (the admin API can run one too). The dispatcher never waits on
//! a send; a full channel simply leaves its deliveries due for the next pass.
//!
//! Whether a delivery is due is read on the core's [`crate::clock::Clock`] (a test moves
//! it past a retry's time instead of waiting); the pace of passes themselves
//! ([`SCAN_INTERVAL`], [`EXPAND_INTERVAL`]) is real time, because it bounds the work a pass
//! costs, and a manual clock that stood still must not stall the outbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use serde::Serialize;

use crate::domain::delivery::{Attempt, AttemptOutcome, Channel, Delivery, DeliveryStatus};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::notify::actor::{Deliver, NotifierActor};
use crate::notify::attempt::Job;
use crate::notify::channels;
use crate::notify::in_flight::IN_FLIGHT_MAX_PER_CHANNEL;
use crate::notify::retry::{jitter_sample, next_after_failure, Next, RetryPolicy};
use crate::notify::Core;
use crate::store::StoreError;

/// Longest pause between passes (a due retry waits at most this long past its time).
pub const SCAN_INTERVAL: Duration = Duration::from_millis(250);
/// Deliveries claimed by one automatic pass.
pub const PASS_LIMIT_DEFAULT: usize = 1024;
/// Largest `limit` of one pass (the admin API's `?limit=`).
pub const PASS_LIMIT_MAX: usize = 10_000;
/// Plans expanded per pass when a channel is hungry (or asked for by the admin API).
pub const EXPAND_EVENTS_MAX: usize = 64;
/// Plans expanded per periodic pass without demand, so deliveries of paused or disabled
/// channels still reach their records (and their `paused`/`dead` state).
pub const EXPAND_EVENTS_IDLE: usize = 8;
/// Shortest gap between demand-driven expansions, so a stream of events is expanded in
/// batches rather than one commit per event.
pub const EXPAND_INTERVAL: Duration = Duration::from_millis(10);
/// `sending` deliveries looked at per pass for orphans (at most 64 per channel are in
/// flight, so more means a crash left them).
pub const ORPHAN_SCAN_MAX: usize = 4096;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PassCounts {
    /// Planned deliveries written as records.
    pub expanded: usize,
    /// Claimed and handed to a notifier.
    pub claimed: usize,
    /// Found orphaned in `sending`, recorded as interrupted.
    pub interrupted: usize,
    /// Due but their channel is paused.
    pub paused: usize,
    /// Due but their channel is disabled: dead.
    pub dead: usize,
    /// Channels at their in-flight bound, not scanned this pass.
    pub full_channels: usize,
}

pub struct Dispatcher {
    core: Arc<Core>,
    notifiers: Vec<Addr<NotifierActor>>,
    /// Serializes passes; holds when plans were last expanded.
    pass_lock: tokio::sync::Mutex<Instant>,
}

/// How a pass expands plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expand {
    /// Woken: a batch if a channel is hungry and the last expansion is not too recent.
    IfHungry,
    /// Periodic: a batch if a channel is hungry, else a small one.
    Periodic,
    /// Asked for (admin): a full batch.
    Now,
}

impl Dispatcher {
    /// `notifiers` in [`crate::domain::delivery::Channel::ALL`] order.
    pub fn new(core: Arc<Core>, notifiers: Vec<Addr<NotifierActor>>) -> Dispatcher {
        Dispatcher {
            core,
            notifiers,
            pass_lock: tokio::sync::Mutex::new(Instant::now() - EXPAND_INTERVAL),
        }
    }

    /// Runs passes until the task is dropped. A pass woken by a commit or a freed slot
    /// only claims; orphans are looked for at start-up and every [`SCAN_INTERVAL`] (they
    /// come only from restarts, panics and failed commits), so a busy outbox does not
    /// rescan the in-flight deliveries on every wake.
    pub async fn run(self: Arc<Self>) {
        let mut orphans_checked = Instant::now() - SCAN_INTERVAL;
        loop {
            let periodic = orphans_checked.elapsed() >= SCAN_INTERVAL;
            if periodic {
                orphans_checked = Instant::now();
            }
            let expand = if periodic {
                Expand::Periodic
            } else {
                Expand::IfHungry
            };
            let mut wait = SCAN_INTERVAL;
            match self.pass_with(PASS_LIMIT_DEFAULT, periodic, expand).await {
                Ok((counts, plans_left)) => {
                    if plans_left {
                        // Come back soon for the rest, batched.
                        wait = EXPAND_INTERVAL;
                    }
                    if counts.claimed + counts.interrupted > 0 {
                        tracing::debug!(operation = "notify.dispatch", ?counts, "dispatch pass");
                    }
                }
                Err(error) => {
                    tracing::error!(operation = "notify.dispatch", %error, "dispatch pass failed")
                }
            }
            let _ = tokio::time::timeout(wait, self.core.wake.notified()).await;
        }
    }

    /// One pass, claiming at most `limit` deliveries.
    ///
    /// # Errors
    /// The first [`StoreError`]; claims not committed are not sent.
    pub async fn pass(&self, limit: usize) -> Result<PassCounts, StoreError> {
        self.pass_with(limit, true, Expand::Now)
            .await
            .map(|(counts, _)| counts)
    }

    /// A pass; also says whether a hungry channel waits for more plans to be expanded.
    async fn pass_with(
        &self,
        limit: usize,
        with_orphans: bool,
        expand: Expand,
    ) -> Result<(PassCounts, bool), StoreError> {
        let limit = limit.min(PASS_LIMIT_MAX);
        let mut last_expanded = self.pass_lock.lock().await;
        let mut counts = PassCounts::default();
        if with_orphans {
            self.recover_orphans(self.core.clock.now_ms(), &mut counts)
                .await?;
        }
        let hungry = self.claim_and_send(limit, &mut counts).await?;
        let batch = match expand {
            Expand::Now => EXPAND_EVENTS_MAX,
            Expand::Periodic if hungry => EXPAND_EVENTS_MAX,
            Expand::Periodic => EXPAND_EVENTS_IDLE,
            Expand::IfHungry if hungry && last_expanded.elapsed() >= EXPAND_INTERVAL => {
                EXPAND_EVENTS_MAX
            }
            Expand::IfHungry => 0,
        };
        let mut plans_left = false;
        if batch > 0 {
            plans_left = self.expand_plans(batch, &mut counts).await?;
            *last_expanded = Instant::now();
            if counts.expanded > 0 {
                let remaining = limit.saturating_sub(counts.claimed);
                self.claim_and_send(remaining, &mut counts).await?;
            }
        } else if hungry {
            plans_left = !self.core.store.plans(1)?.is_empty();
        }
        self.core
            .metrics
            .set_counts(&self.core.store.delivery_counts());
        Ok((counts, hungry && plans_left))
    }

    /// Claims due deliveries and hands them to the notifiers; true if a channel that could
    /// send ran out of due records (it is hungry for plans).
    async fn claim_and_send(
        &self,
        limit: usize,
        counts: &mut PassCounts,
    ) -> Result<bool, StoreError> {
        let (jobs, hungry) = self
            .claim_due(self.core.clock.now_ms(), limit, counts)
            .await?;
        for (channel_index, deliver) in jobs {
            // Never full (bounded by the in-flight slots); if it were, the dropped slot
            // makes the delivery an orphan that the next pass retries.
            let _ = self.notifiers[channel_index].try_send(deliver);
        }
        Ok(hungry)
    }

    /// Writes the oldest `batch` plans' deliveries as `pending` records; true if plans
    /// are left.
    async fn expand_plans(
        &self,
        batch: usize,
        counts: &mut PassCounts,
    ) -> Result<bool, StoreError> {
        let plans = self.core.store.plans(batch)?;
        if plans.is_empty() {
            return Ok(false);
        }
        let mut ops = Vec::new();
        let mut through_seq = 0;
        for (seq, plan) in &plans {
            for delivery in plan.deliveries(*seq) {
                ops.push(WriteOp::Delivery(delivery));
                counts.expanded += 1;
            }
            through_seq = through_seq.max(*seq);
        }
        ops.push(WriteOp::FanOutDone { through_seq });
        self.core.committer.commit(WriteSet { ops }).await?;
        Ok(plans.len() == batch)
    }

    async fn recover_orphans(&self, now: i64, counts: &mut PassCounts) -> Result<(), StoreError> {
        let sending = self
            .core
            .store
            .delivery_ids_with_status(DeliveryStatus::Sending, ORPHAN_SCAN_MAX)?;
        let mut ops = Vec::new();
        for id in sending {
            if self.core.in_flight.contains(&id) {
                continue;
            }
            // Read after the slot check: a notifier commits before it frees its slot.
            let Some(mut delivery) = self.core.store.delivery(&id)? else {
                continue;
            };
            if delivery.status != DeliveryStatus::Sending {
                continue;
            }
            self.interrupt(&mut delivery, now);
            counts.interrupted += 1;
            ops.push(WriteOp::Delivery(delivery));
        }
        if !ops.is_empty() {
            self.core.committer.commit(WriteSet { ops }).await?;
        }
        Ok(())
    }

    /// Records an attempt whose outcome is unknown and reschedules it.
    fn interrupt(&self, delivery: &mut Delivery, now: i64) {
        delivery.record(Attempt {
            at_ms: now,
            outcome: AttemptOutcome::Interrupted,
            http_status: None,
            error: Some("attempt interrupted (restart or panic); outcome unknown".to_owned()),
            duration_ms: 0,
        });
        let config = self.core.settings.current();
        let policy = RetryPolicy::from_config(&config);
        match next_after_failure(
            &policy,
            delivery.attempt_count,
            delivery.budget_started_at_ms,
            now,
            None,
            jitter_sample(),
        ) {
            Next::RetryAt(at) => delivery.schedule_retry(at, now),
            Next::Dead(reason) => delivery.mark_dead(reason, now),
        }
        tracing::warn!(
            operation = "notify.interrupted",
            channel = delivery.channel.as_str(),
            attempt = delivery.attempt_count,
            max_attempts = config.max_attempts,
            status = delivery.status.as_str(),
            delivery_id = %delivery.id,
            "delivery attempt interrupted; rescheduled"
        );
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        counts: &mut PassCounts,
    ) -> Result<(Vec<(usize, Deliver)>, bool), StoreError> {
        let config = self.core.settings.current();
        let mut ops = Vec::new();
        let mut jobs = Vec::new();
        let mut hungry = false;
        for channel in Channel::ALL {
            let remaining = limit.saturating_sub(ops.len());
            // A paused or disabled channel's due deliveries take no slot: move them all.
            let held =
                !channels::enabled(channel, &config) || self.core.settings.is_paused(channel);
            let free = IN_FLIGHT_MAX_PER_CHANNEL.saturating_sub(self.core.in_flight.count(channel));
            let take = if held { remaining } else { remaining.min(free) };
            if take == 0 {
                counts.full_channels += usize::from(!held && free == 0);
                continue;
            }
            let due = self.core.store.due_delivery_ids(channel, now, take)?;
            hungry |= !held && due.len() < take;
            for id in due {
                let Some(mut delivery) = self.core.store.delivery(&id)? else {
                    continue;
                };
                if delivery.due_at_ms().is_none_or(|due| due > now) {
                    continue;
                }
                if !channels::enabled(channel, &config) {
                    delivery.mark_dead("channel disabled before delivery", now);
                    counts.dead += 1;
                } else if self.core.settings.is_paused(channel) {
                    delivery.mark_paused("channel paused: credentials refused", now);
                    counts.paused += 1;
                } else if let Some(guard) = self.core.in_flight.try_acquire(channel, &id) {
                    delivery.claim(now);
                    let target = delivery.target.clone();
                    jobs.push((
                        channel.index(),
                        Deliver {
                            job: Job { id, guard },
                            target,
                        },
                    ));
                    counts.claimed += 1;
                } else {
                    continue;
                }
                ops.push(WriteOp::Delivery(delivery));
            }
        }
        if !ops.is_empty() {
            // On failure the jobs (and their slots) are dropped: nothing was claimed.
            self.core.committer.commit(WriteSet { ops }).await?;
        }
        Ok((jobs, hungry))
    }
}
