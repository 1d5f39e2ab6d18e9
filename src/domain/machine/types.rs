//! What the state machine speaks: the state of one payment key, the commands, the effects
//! and answers, and the small steps every command shares (refuse, store a response, put
//! a provider answer's effects in order). Imported by each command's file; imports none.

use crate::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use crate::domain::error::DomainError;
use crate::domain::idempotency::{Fingerprint, IdempotencyEntry, IdempotencyKey, StoredResponse};
use crate::domain::ids::IdSource;
use crate::domain::payment::{CreatePayment, Payment, PaymentStatus};
use crate::domain::refund::{CreateRefund, Refund, RefundRules, RefundState};
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

/// A validated refund request with its key, fingerprint and the rules in force.
#[derive(Debug, Clone)]
pub struct RefundCommand {
    pub merchant_id: String,
    pub payment_id: String,
    pub request: CreateRefund,
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    pub rules: RefundRules,
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

/// 201 when resolved, 202 while the provider has not answered for good.
fn stored(resolved: bool, body: String) -> StoredResponse {
    let status = if resolved {
        STATUS_RESOLVED
    } else {
        STATUS_PROCESSING
    };
    StoredResponse { status, body }
}

/// 201 with the payment when resolved, 202 while processing.
pub fn response_for(payment: &Payment) -> StoredResponse {
    stored(
        payment.status != PaymentStatus::Processing,
        payment.to_json(),
    )
}

/// 201 with the refund when resolved, 202 while `pending`.
pub fn response_for_refund(refund: &Refund) -> StoredResponse {
    stored(refund.status != RefundState::Pending, refund.to_json())
}

/// A refusal: the state as it was, `error` answered, nothing stored.
pub(super) fn refuse(state: KeyState, error: DomainError) -> (KeyState, Vec<Effect>) {
    (state, vec![Effect::Respond(Reply::Error(error))])
}

/// Keeps `response` as the answer of the key's entry (written with `write_set`); returns
/// the answer, `replayed` or not.
pub(super) fn store_response(
    key: &IdempotencyKey,
    entry: &mut IdempotencyEntry,
    response: StoredResponse,
    replayed: bool,
    write_set: &mut WriteSet,
) -> Reply {
    entry.response = Some(response.clone());
    write_set.push(WriteOp::Idempotency {
        key: key.clone(),
        entry: entry.clone(),
    });
    Reply::Response { response, replayed }
}

/// The effects after a provider's answer, in order: persist what changed (if anything),
/// answer the waiting request (if any), retry later (if unresolved).
pub(super) fn after_provider_answer(
    write_set: WriteSet,
    reply: Option<Reply>,
    retry: bool,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    if !write_set.is_empty() {
        effects.push(Effect::Persist(write_set));
    }
    if let Some(reply) = reply {
        effects.push(Effect::Respond(reply));
    }
    if retry {
        effects.push(Effect::RetryLater);
    }
    effects
}
