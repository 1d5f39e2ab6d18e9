//! The refund commands: create a refund, apply the provider's answer, resume pending
//! refunds. Same style as payments: pure, effects as data, the refund and its idempotency
//! entry persisted before the provider is called, the answer stored for replay.
//!
//! Invariants (asserted by [`check_invariants`] after every command): a refund only leaves
//! `pending`; refunds not failed never hold more than the payment's amount; the payment's
//! `amount_refunded` is the sum of its succeeded refunds and never decreases.

use crate::domain::charge::{RefundOutcome, RefundRequest};
use crate::domain::error::DomainError;
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::idempotency::IdempotencyEntry;
use crate::domain::ids::{prefix, IdSource};
use crate::domain::machine::replay::replay_or_conflict;
use crate::domain::machine::types::{
    after_provider_answer, refuse, response_for_refund, store_response, Ctx, Effect, KeyState,
    RefundCommand, Reply,
};
use crate::domain::money::format_major;
use crate::domain::payment::Payment;
use crate::domain::refund::{
    check_refundable, refund_status_for, refunded_amount, Refund, RefundState,
};
use crate::domain::write_set::{Listed, WriteOp, WriteSet};

/// `POST /v1/payments/{id}/refunds`: replay, refuse, or record a pending refund and call the
/// provider. Refusals (422) store nothing, as 409s of creates do: the key stays free.
pub(super) fn apply_create(
    mut state: KeyState,
    command: RefundCommand,
    ctx: &mut Ctx<'_>,
) -> (KeyState, Vec<Effect>) {
    if let Some((key, entry)) = state.entry.clone() {
        return replay_or_conflict(state, key, entry, &command.fingerprint);
    }
    let Some(payment) = state
        .payment
        .as_ref()
        .filter(|p| p.id == command.payment_id && p.merchant_id == command.merchant_id)
    else {
        return refuse(state, DomainError::NotFound { what: "payment" });
    };
    let request = &command.request;
    if let Err(p) = check_refundable(
        payment,
        &state.refunds,
        request.amount,
        command.rules,
        ctx.now_ms,
    ) {
        return refuse(state, p);
    }
    let refund = Refund {
        id: ctx.ids.next_id(prefix::REFUND),
        payment_id: payment.id.clone(),
        merchant_id: payment.merchant_id.clone(),
        amount: request.amount,
        fee: command.rules.fee_minor,
        currency: payment.currency.clone(),
        status: RefundState::Pending,
        reason: request.reason.clone(),
        operator_id: request.operator_id.clone(),
        provider_refund_id: None,
        failure_code: None,
        failure_message: None,
        idempotency_key: command.key.clone(),
        created_at_ms: ctx.now_ms,
        updated_at_ms: ctx.now_ms,
        succeeded_at_ms: None,
    };
    let entry = IdempotencyEntry {
        order_no: payment.order_no.clone(),
        fingerprint: command.fingerprint,
        response: None,
        created_at_ms: ctx.now_ms,
    };
    let call = refund_request(payment, &refund);
    let mut write_set = WriteSet::default();
    write_set.push(WriteOp::Refund(refund.clone()));
    write_set.push(WriteOp::List {
        list: Listed::Refund,
        merchant_id: refund.merchant_id.clone(),
        id: refund.id.clone(),
        created_at_ms: refund.created_at_ms,
    });
    write_set.push(WriteOp::Idempotency {
        key: command.key.clone(),
        entry: entry.clone(),
    });
    state.refunds.push(refund);
    state.entry = Some((command.key, entry));
    (
        state,
        vec![Effect::Persist(write_set), Effect::CallProviderRefund(call)],
    )
}

/// What the provider is asked: return `amount - fee` under the refund's own key.
pub fn refund_request(payment: &Payment, refund: &Refund) -> RefundRequest {
    RefundRequest {
        refund_id: refund.id.clone(),
        provider_payment_id: payment.provider_payment_id.clone().unwrap_or_default(),
        amount: refund.amount_returned(),
        currency: refund.currency.clone(),
        idempotency_key: refund.provider_key(&payment.order_no),
        reason: refund.reason.clone(),
    }
}

/// The provider answered the refund `refund_id`. Only a `pending` refund changes; a stale or
/// repeated answer changes nothing.
pub(super) fn apply_provider_result(
    mut state: KeyState,
    refund_id: &str,
    outcome: RefundOutcome,
    ctx: &mut Ctx<'_>,
) -> (KeyState, Vec<Effect>) {
    let Some(index) = state.refunds.iter().position(|r| r.id == refund_id) else {
        return (state, Vec::new());
    };
    let mut write_set = WriteSet::default();
    let mut retry = false;
    if state.refunds[index].status == RefundState::Pending {
        match outcome {
            RefundOutcome::Retryable { .. } => retry = true,
            resolved => resolve(&mut state, index, resolved, ctx, &mut write_set),
        }
    }
    let reply = complete_entry(&mut state, index, &mut write_set);
    let effects = after_provider_answer(write_set, reply, retry);
    (state, effects)
}

/// Moves refund `index` out of `pending`, updates the payment's refunded amount, and writes
/// both with the refund's event.
fn resolve(
    state: &mut KeyState,
    index: usize,
    outcome: RefundOutcome,
    ctx: &mut Ctx<'_>,
    write_set: &mut WriteSet,
) {
    let refund = &mut state.refunds[index];
    refund.updated_at_ms = ctx.now_ms;
    match outcome {
        RefundOutcome::Succeeded { provider_refund_id } => {
            refund.status = RefundState::Succeeded;
            refund.provider_refund_id = Some(provider_refund_id);
            refund.succeeded_at_ms = Some(ctx.now_ms);
        }
        RefundOutcome::Failed {
            code,
            message,
            provider_refund_id,
        } => {
            refund.status = RefundState::Failed;
            refund.failure_code = Some(code);
            refund.failure_message = Some(message);
            refund.provider_refund_id = provider_refund_id;
        }
        RefundOutcome::Retryable { .. } => return,
    }
    let refund = refund.clone();
    write_set.push(WriteOp::Refund(refund.clone()));
    if let Some(payment) = state.payment.as_mut() {
        if refund.status == RefundState::Succeeded {
            payment.amount_refunded = refunded_amount(&state.refunds);
            payment.refund_status = refund_status_for(payment.amount_refunded, payment.amount);
            payment.updated_at_ms = ctx.now_ms;
            write_set.push(WriteOp::Payment(payment.clone()));
        }
        write_set.push(WriteOp::Event(refund_event(
            &refund, payment, ctx.ids, ctx.now_ms,
        )));
    }
}

/// Stores the response of the request's key when it is this refund's and not yet answered.
fn complete_entry(state: &mut KeyState, index: usize, write_set: &mut WriteSet) -> Option<Reply> {
    let refund = &state.refunds[index];
    let (key, entry) = state.entry.as_mut()?;
    if entry.response.is_some() || *key != refund.idempotency_key {
        return None;
    }
    let response = response_for_refund(refund);
    Some(store_response(key, entry, response, false, write_set))
}

/// Background: re-send every `pending` refund of the payment (same provider keys).
pub(super) fn resume_effects(state: &KeyState) -> Vec<Effect> {
    let Some(payment) = state.payment.as_ref() else {
        return Vec::new();
    };
    state
        .refunds
        .iter()
        .filter(|r| r.status == RefundState::Pending)
        .map(|r| Effect::CallProviderRefund(refund_request(payment, r)))
        .collect()
}

/// `refund.succeeded` (info) or `refund.failed` (warning); dedupe key `{type}:{refund_id}`.
pub fn refund_event(
    refund: &Refund,
    payment: &Payment,
    ids: &mut dyn IdSource,
    now_ms: i64,
) -> Event {
    let (kind, level, title) = if refund.status == RefundState::Succeeded {
        (kind::REFUND_SUCCEEDED, EventLevel::Info, "Refund succeeded")
    } else {
        (kind::REFUND_FAILED, EventLevel::Warning, "Refund failed")
    };
    let payload = serde_json::json!({
        "refund_id": refund.id,
        "payment_id": payment.id,
        "merchant_id": payment.merchant_id,
        "order_no": payment.order_no,
        "amount": refund.amount,
        "fee": refund.fee,
        "amount_returned": refund.amount_returned(),
        "currency": refund.currency,
        "amount_display": format_major(refund.amount, &refund.currency),
        "status": refund.status,
        "reason": refund.reason,
        "operator_id": refund.operator_id,
        "provider_refund_id": refund.provider_refund_id,
        "failure_code": refund.failure_code,
        "amount_refunded": payment.amount_refunded,
        "refund_status": payment.refund_status,
        "object": refund.to_value(),
    });
    Event {
        id: ids.next_id(prefix::EVENT),
        kind: kind.to_owned(),
        level,
        source: EventSource::Refund,
        title: title.to_owned(),
        entity_type: "refund".to_owned(),
        entity_id: refund.id.clone(),
        dedupe_key: format!("{kind}:{}", refund.id),
        payload: payload.to_string(),
        created_at_ms: now_ms,
    }
}

/// Asserts the refund invariants between the state before and after a command. Money is
/// conserved or the process stops: corruption here is worse than a crash.
pub fn check_invariants(before: &[Refund], after: &KeyState) {
    for old in before {
        if let Some(new) = after.refunds.iter().find(|r| r.id == old.id) {
            assert!(
                old.status == RefundState::Pending || old.status == new.status,
                "a resolved refund changed status"
            );
        }
    }
    if let Some(payment) = after.payment.as_ref() {
        let held: u64 = crate::domain::refund::held_amount(&after.refunds);
        assert!(held <= payment.amount, "refunds exceed the payment");
        if !after.refunds.is_empty() {
            assert_eq!(
                payment.amount_refunded,
                refunded_amount(&after.refunds),
                "amount_refunded is the sum of succeeded refunds"
            );
        }
    }
}
