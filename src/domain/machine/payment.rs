//! The payment's commands: a create (replay, refuse, or record the attempt and call the
//! provider), the provider's answer to a charge, and the charge of a resume.

use crate::domain::charge::{ChargeOutcome, ChargeRequest};
use crate::domain::error::DomainError;
use crate::domain::event::Event;
use crate::domain::idempotency::IdempotencyEntry;
use crate::domain::ids::payment_id;
use crate::domain::machine::replay::replay_or_conflict;
use crate::domain::machine::types::{
    after_provider_answer, refuse, response_for, store_response, CreateCommand, Ctx, Effect,
    KeyState,
};
use crate::domain::payment::{CreatePayment, Payment, PaymentStatus, RefundStatus};
use crate::domain::write_set::{Listed, WriteOp, WriteSet};

/// `POST /v1/payments`: replay, refuse (409 while the order is processing or paid, 422
/// when a new attempt changes the order), or record a new payment or attempt and charge.
pub(super) fn apply_create(
    mut state: KeyState,
    create: CreateCommand,
    ctx: &mut Ctx<'_>,
) -> (KeyState, Vec<Effect>) {
    if let Some((key, entry)) = state.entry.clone() {
        return replay_or_conflict(state, key, entry, &create.fingerprint);
    }
    let entry = IdempotencyEntry {
        order_no: create.request.order_no.clone(),
        fingerprint: create.fingerprint.clone(),
        response: None,
        created_at_ms: ctx.now_ms,
    };
    let is_new = state.payment.is_none();
    let payment = match state.payment.take() {
        None => new_payment(&create, ctx),
        Some(existing) => match existing.status {
            PaymentStatus::Processing | PaymentStatus::Succeeded => {
                let id = existing.id.clone();
                state.payment = Some(existing);
                return refuse(state, DomainError::OrderAlreadyPaid { payment_id: id });
            }
            PaymentStatus::Failed => {
                if let Err(problem) = check_same_order(&existing, &create.request) {
                    state.payment = Some(existing);
                    return refuse(state, problem);
                }
                new_attempt(existing, &create.request, ctx.now_ms)
            }
        },
    };
    let charge = charge_request(&payment);
    let mut write_set = WriteSet::default();
    write_set.push(WriteOp::Payment(payment.clone()));
    if is_new {
        write_set.push(WriteOp::List {
            list: Listed::Payment,
            merchant_id: payment.merchant_id.clone(),
            id: payment.id.clone(),
            created_at_ms: payment.created_at_ms,
        });
    }
    write_set.push(WriteOp::Idempotency {
        key: create.key.clone(),
        entry: entry.clone(),
    });
    state.payment = Some(payment);
    state.entry = Some((create.key, entry));
    (
        state,
        vec![Effect::Persist(write_set), Effect::CallProvider(charge)],
    )
}

/// A new attempt may change how the customer pays, not what the order costs.
fn check_same_order(existing: &Payment, request: &CreatePayment) -> Result<(), DomainError> {
    let mut fields = Vec::new();
    if existing.amount != request.amount {
        fields.push("amount".to_owned());
    }
    if existing.currency != request.currency {
        fields.push("currency".to_owned());
    }
    if fields.is_empty() {
        return Ok(());
    }
    Err(DomainError::OrderMismatch {
        payment_id: existing.id.clone(),
        fields,
    })
}

fn new_payment(create: &CreateCommand, ctx: &mut Ctx<'_>) -> Payment {
    let r = &create.request;
    Payment {
        id: payment_id(&create.merchant_id, &r.order_no),
        merchant_id: create.merchant_id.clone(),
        order_no: r.order_no.clone(),
        amount: r.amount,
        currency: r.currency.clone(),
        status: PaymentStatus::Processing,
        payment_method: r.payment_method.clone(),
        provider: ctx.provider.to_owned(),
        provider_payment_id: None,
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: r.description.clone(),
        customer_email: r.customer_email.clone(),
        metadata: r.metadata.clone(),
        created_at_ms: ctx.now_ms,
        updated_at_ms: ctx.now_ms,
        succeeded_at_ms: None,
    }
}

fn new_attempt(mut payment: Payment, request: &CreatePayment, now_ms: i64) -> Payment {
    payment.attempt_count += 1;
    payment.status = PaymentStatus::Processing;
    payment.payment_method = request.payment_method.clone();
    payment.description = request.description.clone();
    payment.customer_email = request.customer_email.clone();
    payment.metadata = request.metadata.clone();
    payment.provider_payment_id = None;
    payment.failure_code = None;
    payment.failure_message = None;
    payment.updated_at_ms = now_ms;
    payment
}

fn charge_request(payment: &Payment) -> ChargeRequest {
    ChargeRequest {
        merchant_id: payment.merchant_id.clone(),
        order_no: payment.order_no.clone(),
        attempt: payment.attempt_count,
        idempotency_key: payment.provider_key(),
        amount: payment.amount,
        currency: payment.currency.clone(),
        payment_method: payment.payment_method.clone(),
        description: payment.description.clone(),
    }
}

/// The provider answered the charge of `attempt`. Only the current attempt of a
/// `processing` payment changes; a stale or repeated answer changes nothing.
pub(super) fn apply_provider_result(
    mut state: KeyState,
    attempt: u32,
    outcome: ChargeOutcome,
    ctx: &mut Ctx<'_>,
) -> (KeyState, Vec<Effect>) {
    let Some(mut payment) = state.payment.take() else {
        return (state, Vec::new());
    };
    let current = payment.status == PaymentStatus::Processing && payment.attempt_count == attempt;
    let mut write_set = WriteSet::default();
    let mut retry = false;
    if current {
        match outcome {
            ChargeOutcome::Succeeded {
                provider_payment_id,
            } => {
                payment.status = PaymentStatus::Succeeded;
                payment.provider_payment_id = Some(provider_payment_id);
                payment.succeeded_at_ms = Some(ctx.now_ms);
            }
            ChargeOutcome::Declined {
                code,
                message,
                provider_payment_id,
            } => {
                payment.status = PaymentStatus::Failed;
                payment.failure_code = Some(code);
                payment.failure_message = Some(message);
                payment.provider_payment_id = provider_payment_id;
            }
            ChargeOutcome::Retryable { .. } => retry = true,
        }
        if !retry {
            payment.updated_at_ms = ctx.now_ms;
            let event = Event::for_payment_outcome(&payment, ctx.ids, ctx.now_ms);
            write_set.push(WriteOp::Payment(payment.clone()));
            write_set.push(WriteOp::Event(event));
        }
    }
    let mut reply = None;
    if let Some((key, entry)) = state.entry.as_mut() {
        if entry.response.is_none() {
            let response = response_for(&payment);
            if current && retry {
                // The create answers 202: the merchant hears `processing` now and the
                // outcome when the background retry resolves it (DESIGN §3).
                let event = Event::for_payment_processing(&payment, ctx.ids, ctx.now_ms);
                write_set.push(WriteOp::Event(event));
            }
            reply = Some(store_response(key, entry, response, false, &mut write_set));
        }
    }
    state.payment = Some(payment);
    let effects = after_provider_answer(write_set, reply, retry);
    (state, effects)
}

/// Background: the charge of a `processing` payment, sent again (same provider key).
pub(super) fn resume_effects(state: &KeyState) -> Vec<Effect> {
    match state.payment.as_ref() {
        Some(p) if p.status == PaymentStatus::Processing => {
            vec![Effect::CallProvider(charge_request(p))]
        }
        _ => Vec::new(),
    }
}
