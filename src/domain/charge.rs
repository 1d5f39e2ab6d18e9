//! What the state machine asks of a payment provider and what it gets back; the provider
//! module's connectors speak these types.

use serde::{Deserialize, Serialize};

/// One charge attempt. `idempotency_key` is the same on every retry of the attempt.
///
/// Every field can be derived again from the payment key and the client's request, none is
/// an id paykeep generated (DESIGN §2 "Provider"): after the store is lost, the same create
/// builds the same request, which the provider replays instead of refusing (Stripe refuses
/// a reused key whose parameters differ) or charging again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The payment key: the merchant and its order, sent as metadata so webhooks and
    /// reconciliation find the payment whatever its id.
    pub merchant_id: String,
    pub order_no: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Sent as the provider's `Idempotency-Key` (Stripe keeps them ≥ 24 h):
    /// [`crate::domain::provider_key::charge_key`].
    pub idempotency_key: String,
    pub amount: u64,
    pub currency: String,
    pub payment_method: String,
    pub description: Option<String>,
}

/// The answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeOutcome {
    /// Money moved.
    Succeeded { provider_payment_id: String },
    /// A definitive refusal (a card decline or another terminal error): the attempt failed.
    Declined {
        code: String,
        message: String,
        provider_payment_id: Option<String>,
    },
    /// Unknown or transient (timeout, 5xx, connection error): retry with the same key.
    Retryable { reason: String },
}

/// One provider refund. `idempotency_key` is the same on every retry, so a retried refund
/// cannot return money twice.
///
/// What the provider is sent is derived from the payment key and the client's request only
/// (DESIGN §2 "Provider"): the provider payment id, the amount, the derived key and the
/// merchant's reason. `refund_id` is ours, for routing the answer back; connectors never
/// send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// Our refund id: names the refund the answer belongs to. Never sent to the provider.
    pub refund_id: String,
    /// The provider's id of the refunded payment (Stripe: the PaymentIntent `pi_…`).
    pub provider_payment_id: String,
    /// What the customer gets back: the refund's amount less the merchant's fee.
    pub amount: u64,
    pub currency: String,
    /// [`crate::domain::provider_key::refund_key`].
    pub idempotency_key: String,
    pub reason: Option<String>,
}

/// The answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundOutcome {
    /// The provider accepted and completed the refund.
    Succeeded { provider_refund_id: String },
    /// A definitive refusal: the refund failed and no money moved.
    Failed {
        code: String,
        message: String,
        provider_refund_id: Option<String>,
    },
    /// Unknown or transient: retry with the same key.
    Retryable { reason: String },
}

/// What a charge's and a refund's outcomes share: one case to retry later with the same
/// key (the answer is unknown or transient), and a stable name per variant.
pub trait ProviderOutcome: Sized {
    /// The outcome to retry later with the same key, for `reason`.
    fn retryable(reason: String) -> Self;

    /// `Some(reason)` when the outcome is to retry later.
    fn retry_reason(&self) -> Option<&str>;

    /// The variant's name (`succeeded`, `declined` or `failed`, `retryable`): the
    /// `outcome` label of the provider metrics.
    fn label(&self) -> &'static str;
}

/// [`ProviderOutcome`] for an outcome enum of the shape `Succeeded`, a refusal, `Retryable
/// { reason }`: the two outcomes are written once.
macro_rules! provider_outcome {
    ($outcome:ident, $refused:ident => $refused_label:literal) => {
        impl ProviderOutcome for $outcome {
            fn retryable(reason: String) -> $outcome {
                $outcome::Retryable { reason }
            }

            fn retry_reason(&self) -> Option<&str> {
                match self {
                    $outcome::Retryable { reason } => Some(reason),
                    $outcome::Succeeded { .. } | $outcome::$refused { .. } => None,
                }
            }

            fn label(&self) -> &'static str {
                match self {
                    $outcome::Succeeded { .. } => "succeeded",
                    $outcome::$refused { .. } => $refused_label,
                    $outcome::Retryable { .. } => "retryable",
                }
            }
        }
    };
}

provider_outcome!(ChargeOutcome, Declined => "declined");
provider_outcome!(RefundOutcome, Failed => "failed");
