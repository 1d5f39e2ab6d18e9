//! The refund record, the refund request and its validation, the refund rules of
//! DESIGN §2 "Refunds", and the JSON view merchants see. Pure: no I/O, no clock.
//!
//! A refund belongs to its payment's key (merchant + order), so refunds of one payment are
//! serialized by the payment's shard actor with its creates. The money rule is
//! `sum(refunds not failed) + amount <= payment.amount`: a `pending` refund holds its part
//! of the payment until the provider answers.
//!
//! The fee (`payments.refund_fee_minor`) is kept by the merchant on each refund: a refund
//! of `amount` consumes `amount` of the payment's refundable balance, and the provider is
//! asked to return `amount - fee` to the customer (see docs/provider.md "Refund fee").

use serde::{Deserialize, Serialize};

use crate::domain::error::DomainError;
use crate::domain::idempotency::{IdempotencyKey, KeyScope};
use crate::domain::payment::{Payment, RefundStatus};
use crate::domain::provider_key::{self, RefundKeySource};
use crate::domain::time::{format_rfc3339_ms, DAY_MS};

/// `operator_id` length bound in characters.
pub const OPERATOR_ID_CHARS_MAX: usize = 64;
/// `reason` length bound in characters (Stripe's metadata value limit, where it travels).
pub const REASON_CHARS_MAX: usize = 500;
/// Refunds one payment may have (failed ones included): bounds the state a refund loads.
pub const REFUNDS_PER_PAYMENT_MAX: usize = 100;

/// Where a refund is: `pending` until the provider answers, then `succeeded` or `failed`
/// (final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundState {
    Pending,
    Succeeded,
    Failed,
}

impl RefundState {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
        }
    }
}

/// One refund of a payment. Amounts in the payment's minor unit; times Unix ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub merchant_id: String,
    /// What the refund takes from the payment's refundable balance.
    pub amount: u64,
    /// Kept by the merchant (`payments.refund_fee_minor` when the refund was made).
    pub fee: u64,
    pub currency: String,
    pub status: RefundState,
    pub reason: Option<String>,
    pub operator_id: String,
    pub provider_refund_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// The key of the request that created it (finds the refund of an entry a crash left
    /// without a response).
    pub idempotency_key: IdempotencyKey,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the provider confirmed it (the reconciliation day counts from it).
    pub succeeded_at_ms: Option<i64>,
}

impl Refund {
    /// What the provider returns to the customer: `amount - fee`.
    pub fn amount_returned(&self) -> u64 {
        self.amount.saturating_sub(self.fee)
    }

    /// The provider idempotency key of this refund of the payment of `order_no`, derived
    /// from the payment key and the refund's own key ([`provider_key::refund_key`]): its
    /// `Idempotency-Key` header, or without one its operator and amount. Never the refund or
    /// payment id, so a refund asked again after the store was lost (on the payment's new
    /// id) sends the same key, and the provider replays the first refund.
    pub fn provider_key(&self, order_no: &str) -> String {
        let source = match &self.idempotency_key.scope {
            KeyScope::Header(key) => RefundKeySource::Header(key),
            // The default key `refund:{payment_id}:{operator_id}:{amount}` holds the payment
            // id; only its operator and amount go into the provider key. (`Order` is a
            // create's scope, never a refund's; it falls back to the same parts.)
            KeyScope::Refund(_) | KeyScope::Order(_) => RefundKeySource::Operator {
                operator_id: &self.operator_id,
                amount: self.amount,
            },
        };
        provider_key::refund_key(&self.merchant_id, order_no, source)
    }

    /// The merchant-facing JSON object.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "refund",
            "payment_id": self.payment_id,
            "amount": self.amount,
            "fee": self.fee,
            "amount_returned": self.amount_returned(),
            "currency": self.currency,
            "status": self.status,
            "reason": self.reason,
            "operator_id": self.operator_id,
            "provider_refund_id": self.provider_refund_id,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created_at": format_rfc3339_ms(self.created_at_ms),
            "updated_at": format_rfc3339_ms(self.updated_at_ms),
        })
    }

    /// The JSON body of this refund.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

/// The `POST /v1/payments/{id}/refunds` body as sent; unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundBody {
    pub amount: u64,
    #[serde(default)]
    pub reason: Option<String>,
    pub operator_id: String,
}

/// A validated refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRefund {
    pub amount: u64,
    pub reason: Option<String>,
    pub operator_id: String,
}

impl CreateRefundBody {
    /// Validates every field; the problem names the first field at fault.
    ///
    /// # Errors
    /// 400 `invalid_request` naming the field.
    pub fn validate(self, amount_minor_max: u64) -> Result<CreateRefund, DomainError> {
        if self.amount == 0 || self.amount > amount_minor_max {
            return Err(DomainError::invalid(
                "amount",
                format!("amount must be an integer in minor units, 1..={amount_minor_max}"),
            ));
        }
        let operator_ok = !self.operator_id.is_empty()
            && self.operator_id.chars().count() <= OPERATOR_ID_CHARS_MAX
            && !self.operator_id.chars().any(|c| c.is_control() || c == ':');
        if !operator_ok {
            return Err(DomainError::invalid(
                "operator_id",
                format!(
                    "operator_id must be 1..={OPERATOR_ID_CHARS_MAX} characters without control characters or ':'"
                ),
            ));
        }
        if let Some(reason) = &self.reason {
            if reason.chars().count() > REASON_CHARS_MAX || reason.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "reason",
                    format!("reason must be at most {REASON_CHARS_MAX} characters without control characters"),
                ));
            }
        }
        Ok(CreateRefund {
            amount: self.amount,
            reason: self.reason,
            operator_id: self.operator_id,
        })
    }
}

/// The default refund key without an `Idempotency-Key` header (DESIGN §2):
/// `refund:{payment_id}:{operator_id}:{amount}`.
pub fn default_key_value(payment_id: &str, operator_id: &str, amount: u64) -> String {
    format!("refund:{payment_id}:{operator_id}:{amount}")
}

/// The refund rules of `[payments]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRules {
    /// `payments.refund_window_days` in milliseconds.
    pub window_ms: i64,
    /// `payments.refund_fee_minor`.
    pub fee_minor: u64,
}

impl RefundRules {
    /// The rules of a refund `window` (`payments.refund_window_days`) and a fee in minor
    /// units.
    pub fn new(window: std::time::Duration, fee_minor: u64) -> RefundRules {
        RefundRules {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            fee_minor,
        }
    }
}

/// What the refunds of a payment hold against its amount: pending and succeeded ones.
pub fn held_amount(refunds: &[Refund]) -> u64 {
    refunds
        .iter()
        .filter(|r| r.status != RefundState::Failed)
        .map(|r| r.amount)
        .sum()
}

/// What succeeded refunds took from the payment (its `amount_refunded`).
pub fn refunded_amount(refunds: &[Refund]) -> u64 {
    refunds
        .iter()
        .filter(|r| r.status == RefundState::Succeeded)
        .map(|r| r.amount)
        .sum()
}

/// `none`, `partial` or `full` for `amount_refunded` of `amount`.
pub fn refund_status_for(amount_refunded: u64, amount: u64) -> RefundStatus {
    if amount_refunded == 0 {
        RefundStatus::None
    } else if amount_refunded >= amount {
        RefundStatus::Full
    } else {
        RefundStatus::Partial
    }
}

/// At most [`REFUNDS_PER_PAYMENT_MAX`] refunds, each above the fee.
fn check_count_and_fee(
    payment: &Payment,
    refunds: &[Refund],
    amount: u64,
    rules: RefundRules,
) -> Result<(), DomainError> {
    let id = payment.id.as_str();
    if refunds.len() >= REFUNDS_PER_PAYMENT_MAX {
        return Err(DomainError::TooManyRefunds {
            payment_id: id.to_owned(),
            refunds_max: REFUNDS_PER_PAYMENT_MAX,
        });
    }
    if amount <= rules.fee_minor {
        return Err(DomainError::RefundBelowFee {
            payment_id: id.to_owned(),
            fee_minor: rules.fee_minor,
        });
    }
    Ok(())
}

/// Checks a new refund of `amount` against the payment and its refunds (DESIGN §2).
///
/// # Errors
/// 422 `payment_not_refundable` (not succeeded, or too many refunds),
/// `refund_window_expired`, `refund_below_fee`, `refund_exceeds_payment`.
pub fn check_refundable(
    payment: &Payment,
    refunds: &[Refund],
    amount: u64,
    rules: RefundRules,
    now_ms: i64,
) -> Result<(), DomainError> {
    let id = payment.id.as_str();
    let Some(succeeded_at_ms) = payment
        .succeeded_at_ms
        .filter(|_| payment.status == crate::domain::payment::PaymentStatus::Succeeded)
    else {
        return Err(DomainError::PaymentNotSucceeded {
            payment_id: id.to_owned(),
            status: payment.status.as_str(),
        });
    };
    if now_ms > succeeded_at_ms.saturating_add(rules.window_ms) {
        return Err(DomainError::RefundWindowExpired {
            payment_id: id.to_owned(),
            window_days: rules.window_ms / DAY_MS,
        });
    }
    check_count_and_fee(payment, refunds, amount, rules)?;
    let held = held_amount(refunds);
    if held.saturating_add(amount) > payment.amount {
        return Err(DomainError::RefundExceedsPayment {
            payment_id: id.to_owned(),
            held_minor: held,
            amount_minor: payment.amount,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> CreateRefundBody {
        CreateRefundBody {
            amount: 10,
            reason: Some("damaged".into()),
            operator_id: "op-1".into(),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(body().validate(100).is_ok());
        let field = |b: CreateRefundBody| b.validate(100).unwrap_err().fields()[0].clone();
        assert_eq!(
            field(CreateRefundBody {
                amount: 0,
                ..body()
            }),
            "amount"
        );
        assert_eq!(
            field(CreateRefundBody {
                amount: 101,
                ..body()
            }),
            "amount"
        );
        assert_eq!(
            field(CreateRefundBody {
                operator_id: String::new(),
                ..body()
            }),
            "operator_id"
        );
        assert_eq!(
            field(CreateRefundBody {
                operator_id: "a:b".into(),
                ..body()
            }),
            "operator_id"
        );
        assert_eq!(
            field(CreateRefundBody {
                reason: Some("x".repeat(501)),
                ..body()
            }),
            "reason"
        );
    }

    #[test]
    fn refund_status_follows_the_refunded_amount() {
        assert_eq!(refund_status_for(0, 10), RefundStatus::None);
        assert_eq!(refund_status_for(3, 10), RefundStatus::Partial);
        assert_eq!(refund_status_for(10, 10), RefundStatus::Full);
    }
}
