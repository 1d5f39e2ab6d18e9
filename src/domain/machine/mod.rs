//! The state machine: `apply(state, command, ctx) -> (state', effects)`, no I/O.
//!
//! `state` is everything one payment key owns that a command reads: the order's payment,
//! its refunds and the idempotency entry of the request's key. Effects are data the shard
//! actor carries out in order: persist a write set (and wait until it is durable), call the
//! provider, answer the waiting request, schedule a background retry.
//!
//! One file per command family, all speaking [`types`]: [`payment`] (create, the charge's
//! answer, resume), [`refund`] (create, the refund's answer, resume, invariants), `replay`
//! (a key used before). This file only dispatches and checks what must hold after every
//! command. Dependencies point one way: this file → the commands → `types`.

pub mod payment;
pub mod refund;
mod replay;
pub mod types;

#[cfg(test)]
mod payment_tests;
#[cfg(test)]
mod refund_tests;

pub use types::{
    response_for, response_for_refund, Command, CreateCommand, Ctx, Effect, KeyState,
    RefundCommand, Reply, STATUS_PROCESSING, STATUS_RESOLVED,
};

use crate::domain::payment::{Payment, PaymentStatus};

/// Applies `command` to `state`.
///
/// # Panics
/// When a command would break an invariant (a payment moving backwards, refunds exceeding
/// the payment): corruption here is worse than a crash.
pub fn apply(state: KeyState, command: Command, ctx: &mut Ctx<'_>) -> (KeyState, Vec<Effect>) {
    let before = state.payment.as_ref().map(Payment::progress);
    let refunds_before = state.refunds.clone();
    let (state, effects) = match command {
        Command::Create(create) => payment::apply_create(state, *create, ctx),
        Command::ProviderResult { attempt, outcome } => {
            payment::apply_provider_result(state, attempt, outcome, ctx)
        }
        Command::Resume => {
            let mut effects = payment::resume_effects(&state);
            effects.extend(refund::resume_effects(&state));
            (state, effects)
        }
        Command::RefundCreate(command) => refund::apply_create(state, *command, ctx),
        Command::RefundProviderResult { refund_id, outcome } => {
            refund::apply_provider_result(state, &refund_id, outcome, ctx)
        }
    };
    refund::check_invariants(&refunds_before, &state);
    // Forward-only: a payment's (attempt, status) never decreases, and a succeeded payment
    // never changes status. Corruption here is worse than a crash.
    if let (Some(before), Some(after)) = (before, state.payment.as_ref()) {
        assert!(after.progress() >= before, "payment moved backwards");
        assert!(
            before.1 != 2 || after.status == PaymentStatus::Succeeded,
            "succeeded payment left succeeded"
        );
    }
    (state, effects)
}
