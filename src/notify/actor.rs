//! The notifier actor: one per channel, on its own Arbiter thread, supervised.
//!
//! It paces (reserving each send's slot in its [`Pacer`]) and runs each attempt as a
//! future on its context, so one slow endpoint holds only its in-flight slots. actix does
//! not catch panics, so every attempt runs inside `catch_unwind`; a panic stops the actor
//! and its [`actix::Supervisor`] restarts it (`restarting`). Stopping drops the attempts
//! it was running, whose slots are then released: the deliveries stay `sending` in the
//! store, the dispatcher finds them orphaned, records them interrupted and retries them.
//! Nothing is lost, because no delivery state lives in the actor.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Supervised, WrapFuture,
};
use futures::FutureExt;

use crate::domain::delivery::Channel;
use crate::notify::attempt::{self, Job};
use crate::notify::channels;
use crate::notify::in_flight::IN_FLIGHT_MAX_PER_CHANNEL;
use crate::notify::pacing::{Limits, Pacer};
use crate::notify::Core;

/// Mailbox bound: the dispatcher never has more than the in-flight bound outstanding.
pub const MAILBOX_CAPACITY: usize = IN_FLIGHT_MAX_PER_CHANNEL + 16;

/// "Deliver this claimed delivery."
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub job: Job,
    /// The delivery's target, for per-target pacing.
    pub target: String,
}

pub struct NotifierActor {
    channel: Channel,
    core: Arc<Core>,
    /// The pacer, and the settings it was built from (rebuilt when they change).
    pacer: (Pacer, bool, Limits),
}

impl NotifierActor {
    pub fn new(channel: Channel, core: Arc<Core>) -> NotifierActor {
        let pacer = Self::pacer_for(channel, &core);
        NotifierActor {
            channel,
            core,
            pacer,
        }
    }

    fn pacer_for(channel: Channel, core: &Core) -> (Pacer, bool, Limits) {
        let config = core.settings.current();
        let limits = channels::limits(channel, &config);
        (
            Pacer::new(limits.clone(), config.pacing),
            config.pacing,
            limits,
        )
    }

    /// The send slot of `target` (Unix milliseconds, rounded up), with the pacer following
    /// the live settings.
    fn reserve(&mut self, target: &str) -> i64 {
        let config = self.core.settings.current();
        let limits = channels::limits(self.channel, &config);
        if self.pacer.1 != config.pacing || self.pacer.2 != limits {
            self.pacer = (
                Pacer::new(limits.clone(), config.pacing),
                config.pacing,
                limits,
            );
        }
        let now = Duration::from_millis(self.core.clock.now_ms().max(0).unsigned_abs());
        let at = self.pacer.0.reserve(target, now);
        i64::try_from(at.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
    }
}

impl Actor for NotifierActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for NotifierActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.core
            .metrics
            .restarts_total
            .with_label_values(&[self.channel.as_str()])
            .inc();
        tracing::warn!(
            operation = "notify.restart",
            channel = self.channel.as_str(),
            "notifier restarted after a panic; its deliveries will be retried"
        );
    }
}

impl Handler<Deliver> for NotifierActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let not_before_ms = self.reserve(&msg.target);
        let channel = self.channel;
        let work = attempt::run(Arc::clone(&self.core), channel, msg.job, not_before_ms);
        let guarded = AssertUnwindSafe(work).catch_unwind();
        ctx.spawn(guarded.into_actor(self).map(move |result, _act, ctx| {
            if result.is_err() {
                tracing::error!(
                    operation = "notify.panic",
                    channel = channel.as_str(),
                    "notifier panicked during a delivery; restarting it"
                );
                ctx.stop();
            }
        }));
    }
}
