//! The payment state machine: `apply(state, command, ctx) -> (state', effects)`, no I/O.
//!
//! `state` is everything one payment key owns that a command reads: the order's payment and
//! the idempotency entry of the request's key. Effects are data the shard actor carries out
//! in order: persist a write set (and wait until it is durable), call the provider, answer
//! the waiting request, schedule a background retry.

use crate::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use crate::domain::error::DomainError;
use crate::domain::event::Event;
use crate::domain::idempotency::{Fingerprint, IdempotencyEntry, IdempotencyKey, StoredResponse};
use crate::domain::ids::{prefix, IdSource};
use crate::domain::payment::{CreatePayment, Payment, PaymentStatus, RefundStatus};
use crate::domain::refund::Refund;
use crate::domain::refund_machine::{self, RefundCommand};
use crate::domain::write_set::{WriteOp, WriteSet};

/// HTTP status of a create whose attempt resolved (succeeded or declined).
pub const STATUS_RESOLVED: u16 = 201;
/// HTTP status of a create whose attempt is still `processing` (transient provider error).
pub const STATUS_PROCESSING: u16 = 202;

/// What one payment key holds that commands read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    pub payment: Option<Payment>,
    /// The entry of the key of the request being handled (`None` for background work).
    pub entry: Option<(IdempotencyKey, IdempotencyEntry)>,
    /// The payment's refunds, oldest first (at most `REFUNDS_PER_PAYMENT_MAX`).
    pub refunds: Vec<Refund>,
}

/// Inputs from outside the machine: the clock, ids, the connector's name.
pub struct Ctx<'a> {
    pub now_ms: i64,
    pub ids: &'a mut dyn IdSource,
    pub provider: &'a str,
}

/// A validated create with its key and fingerprint.
#[derive(Debug, Clone)]
pub struct CreateCommand {
    pub merchant_id: String,
    pub request: CreatePayment,
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
}

#[derive(Debug, Clone)]
pub enum Command {
    /// `POST /v1/payments`.
    Create(Box<CreateCommand>),
    /// The provider answered the charge of `attempt`.
    ProviderResult {
        attempt: u32,
        outcome: ChargeOutcome,
    },
    /// Background: re-send the charge of a `processing` payment and the refunds still
    /// `pending` (same provider keys).
    Resume,
    /// `POST /v1/payments/{id}/refunds`.
    RefundCreate(Box<RefundCommand>),
    /// The provider answered the refund `refund_id`.
    RefundProviderResult {
        refund_id: String,
        outcome: RefundOutcome,
    },
}

/// The answer to a waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A payment response; `replayed` adds `Idempotent-Replayed: true`.
    Response {
        response: StoredResponse,
        replayed: bool,
    },
    /// A refusal, as data: `http/` answers it as a problem.
    Error(DomainError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Apply atomically and wait until durable before the next effect.
    Persist(WriteSet),
    /// Charge; feed the outcome back as [`Command::ProviderResult`].
    CallProvider(ChargeRequest),
    /// Refund; feed the outcome back as [`Command::RefundProviderResult`].
    CallProviderRefund(RefundRequest),
    /// Answer the waiting request.
    Respond(Reply),
    /// The charge is unresolved: try again later in the background.
    RetryLater,
}

/// Applies `command` to `state`.
pub fn apply(state: KeyState, command: Command, ctx: &mut Ctx<'_>) -> (KeyState, Vec<Effect>) {
    let before = state.payment.as_ref().map(Payment::progress);
    let refunds_before = state.refunds.clone();
    let (state, effects) = match command {
        Command::Create(create) => apply_create(state, *create, ctx),
        Command::ProviderResult { attempt, outcome } => {
            apply_provider_result(state, attempt, outcome, ctx)
        }
        Command::Resume => apply_resume(state),
        Command::RefundCreate(refund) => refund_machine::apply_create(state, *refund, ctx),
        Command::RefundProviderResult { refund_id, outcome } => {
            refund_machine::apply_provider_result(state, &refund_id, outcome, ctx)
        }
    };
    refund_machine::check_invariants(&refunds_before, &state);
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

fn respond_problem(state: KeyState, error: DomainError) -> (KeyState, Vec<Effect>) {
    (state, vec![Effect::Respond(Reply::Error(error))])
}

fn apply_create(
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
    let payment = match state.payment.take() {
        None => new_payment(&create, ctx),
        Some(existing) => match existing.status {
            PaymentStatus::Processing | PaymentStatus::Succeeded => {
                let id = existing.id.clone();
                state.payment = Some(existing);
                return respond_problem(state, DomainError::OrderAlreadyPaid { payment_id: id });
            }
            PaymentStatus::Failed => {
                if let Err(problem) = check_same_order(&existing, &create.request) {
                    state.payment = Some(existing);
                    return respond_problem(state, problem);
                }
                new_attempt(existing, &create.request, ctx.now_ms)
            }
        },
    };
    let charge = charge_request(&payment);
    let mut write_set = WriteSet::default();
    write_set.push(WriteOp::Payment(payment.clone()));
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

/// The key was used before: replay, refuse a different request, or finish an entry that a
/// crash left without a response (with the refund of that key, or else the payment).
pub(crate) fn replay_or_conflict(
    mut state: KeyState,
    key: IdempotencyKey,
    entry: IdempotencyEntry,
    fingerprint: &Fingerprint,
) -> (KeyState, Vec<Effect>) {
    if entry.fingerprint.digest != fingerprint.digest {
        let fields = entry.fingerprint.differing_fields(fingerprint);
        return respond_problem(state, DomainError::IdempotencyKeyReused { fields });
    }
    if let Some(response) = entry.response {
        let reply = Reply::Response {
            response,
            replayed: true,
        };
        return (state, vec![Effect::Respond(reply)]);
    }
    // The first request was cut short by a crash after its intent was stored: answer with
    // the payment as it stands now and keep that as the key's response.
    let refund = state.refunds.iter().find(|r| r.idempotency_key == key);
    let response = match (refund, state.payment.as_ref()) {
        (Some(refund), _) => refund_machine::response_for_refund(refund),
        (None, Some(payment)) => response_for(payment),
        (None, None) => return respond_problem(state, DomainError::Internal),
    };
    let mut completed = entry;
    completed.response = Some(response.clone());
    let mut write_set = WriteSet::default();
    write_set.push(WriteOp::Idempotency {
        key: key.clone(),
        entry: completed.clone(),
    });
    state.entry = Some((key, completed));
    let reply = Reply::Response {
        response,
        replayed: true,
    };
    (
        state,
        vec![Effect::Persist(write_set), Effect::Respond(reply)],
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
        id: ctx.ids.next_id(prefix::PAYMENT),
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

/// 201 with the payment when resolved, 202 while processing.
pub fn response_for(payment: &Payment) -> StoredResponse {
    let status = match payment.status {
        PaymentStatus::Processing => STATUS_PROCESSING,
        PaymentStatus::Succeeded | PaymentStatus::Failed => STATUS_RESOLVED,
    };
    StoredResponse {
        status,
        body: payment.to_json(),
    }
}

fn apply_provider_result(
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
    let mut effects = Vec::new();
    let mut reply = None;
    if let Some((key, entry)) = state.entry.as_mut() {
        if entry.response.is_none() {
            let response = response_for(&payment);
            entry.response = Some(response.clone());
            write_set.push(WriteOp::Idempotency {
                key: key.clone(),
                entry: entry.clone(),
            });
            reply = Some(Reply::Response {
                response,
                replayed: false,
            });
        }
    }
    state.payment = Some(payment);
    if !write_set.is_empty() {
        effects.push(Effect::Persist(write_set));
    }
    if let Some(reply) = reply {
        effects.push(Effect::Respond(reply));
    }
    if retry {
        effects.push(Effect::RetryLater);
    }
    (state, effects)
}

fn apply_resume(state: KeyState) -> (KeyState, Vec<Effect>) {
    let mut effects = match state.payment.as_ref() {
        Some(p) if p.status == PaymentStatus::Processing => {
            vec![Effect::CallProvider(charge_request(p))]
        }
        _ => Vec::new(),
    };
    effects.extend(refund_machine::resume_effects(&state));
    (state, effects)
}
