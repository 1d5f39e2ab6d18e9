//! The domain's errors as data: why a request was refused or could not complete. The
//! state machines, validation and the shards return a [`DomainError`]; `http/` turns it
//! into an RFC 9457 problem (`crate::http::problem`). The one table of each variant's
//! stable `code`, HTTP status and title is [`DomainError::table`]; the detail is the
//! variant's `Display`; [`DomainError::payment_id`] and [`DomainError::fields`] are the
//! problem's extra members. Codes are documented in README "Error codes".

/// A refusal or failure the domain can name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A body, parameter or header failed validation; `field` is its JSON path or header
    /// name (empty: none in particular).
    #[error("{detail}")]
    Invalid { field: String, detail: String },
    /// No such resource (also another merchant's). `what` is its kind: `"payment"`.
    #[error("no such {what}")]
    NotFound { what: &'static str },
    /// The key was used with a different request; `fields` differ.
    #[error(
        "this idempotency key was used with a different request; differing fields: {}",
        fields.join(", ")
    )]
    IdempotencyKeyReused { fields: Vec<String> },
    /// An earlier request of the key is still running past `idempotency.in_flight_wait_ms`.
    #[error("an earlier request for this payment is still running; retry later")]
    IdempotencyKeyInUse { retry_after_s: u32 },
    /// A create with a new key while the order's payment is processing or succeeded.
    #[error(
        "the order's payment {payment_id} is processing or succeeded; a new attempt is refused"
    )]
    OrderAlreadyPaid { payment_id: String },
    /// A new attempt changed the order's amount or currency (`fields`).
    #[error(
        "a new attempt must keep the order's amount and currency; differing fields: {}",
        fields.join(", ")
    )]
    OrderMismatch {
        payment_id: String,
        fields: Vec<String>,
    },
    /// Only a succeeded payment can be refunded; `status` is the payment's.
    #[error("only a succeeded payment can be refunded; this one is {status}")]
    PaymentNotSucceeded {
        payment_id: String,
        status: &'static str,
    },
    /// The payment has its most refunds already.
    #[error("a payment has at most {refunds_max} refunds")]
    TooManyRefunds {
        payment_id: String,
        refunds_max: usize,
    },
    /// The refund amount does not exceed the fee the merchant keeps (minor units).
    #[error(
        "the refund amount must exceed the refund fee of {fee_minor} (the fee is kept by the merchant)"
    )]
    RefundBelowFee { payment_id: String, fee_minor: u64 },
    /// Past `payments.refund_window_days` after the payment succeeded.
    #[error("refunds are accepted within {window_days} days of payment")]
    RefundWindowExpired {
        payment_id: String,
        window_days: i64,
    },
    /// Refunds not failed would exceed the payment (amounts in minor units).
    #[error(
        "refunds not failed hold {held_minor} of {amount_minor}; at most {} more can be refunded",
        amount_minor.saturating_sub(*held_minor)
    )]
    RefundExceedsPayment {
        payment_id: String,
        held_minor: u64,
        amount_minor: u64,
    },
    /// A webhook endpoint's `url`, `enabled_events`, `description` or `status` cannot be
    /// used (not http(s), too long, refused by the egress rules, an unknown event type).
    #[error("{detail}")]
    InvalidEndpoint { field: String, detail: String },
    /// The merchant has `webhooks.endpoints_max` endpoints already.
    #[error("a merchant has at most {endpoints_max} webhook endpoints")]
    EndpointsLimit { endpoints_max: usize },
    /// Too much work in flight; retry after `retry_after_s`.
    #[error("too many requests in flight; retry after the given delay")]
    Overloaded { retry_after_s: u32 },
    /// Something failed inside (logged where it happened); never more detail than this.
    #[error(
        "the request could not be completed; it is safe to retry with the same Idempotency-Key"
    )]
    Internal,
}

/// One row of [`DomainError::table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRow {
    /// Stable machine-readable code (the problem's `code` and `type` suffix).
    pub code: &'static str,
    /// HTTP status, 400..=599.
    pub status: u16,
    /// Short human title, fixed per code.
    pub title: &'static str,
}

const fn row(code: &'static str, status: u16, title: &'static str) -> ErrorRow {
    ErrorRow {
        code,
        status,
        title,
    }
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
        DomainError::Invalid {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    /// The one table: each variant's code, status and title.
    pub fn table(&self) -> ErrorRow {
        use DomainError::*;
        match self {
            Invalid { .. } => row("invalid_request", 400, "Invalid request"),
            NotFound { .. } => row("not_found", 404, "Not found"),
            IdempotencyKeyReused { .. } => {
                row("idempotency_key_reused", 422, "Idempotency key reused")
            }
            IdempotencyKeyInUse { .. } => {
                row("idempotency_key_in_use", 409, "Idempotency key in use")
            }
            OrderAlreadyPaid { .. } => row("order_already_paid", 409, "Order already paid"),
            OrderMismatch { .. } => row("order_mismatch", 422, "Order mismatch"),
            PaymentNotSucceeded { .. } | TooManyRefunds { .. } => {
                row("payment_not_refundable", 422, "Payment not refundable")
            }
            RefundBelowFee { .. } => row("refund_below_fee", 422, "Refund below fee"),
            RefundWindowExpired { .. } => {
                row("refund_window_expired", 422, "Refund window expired")
            }
            RefundExceedsPayment { .. } => {
                row("refund_exceeds_payment", 422, "Refund exceeds payment")
            }
            InvalidEndpoint { .. } => {
                row("invalid_webhook_endpoint", 422, "Invalid webhook endpoint")
            }
            EndpointsLimit { .. } => {
                row("webhook_endpoints_limit", 422, "Too many webhook endpoints")
            }
            Overloaded { .. } => row("overloaded", 503, "Service overloaded"),
            Internal => row("internal_error", 500, "Internal error"),
        }
    }

    /// The stable code ([`DomainError::table`]).
    pub fn code(&self) -> &'static str {
        self.table().code
    }

    /// The payment concerned, where the code has one.
    pub fn payment_id(&self) -> Option<&str> {
        use DomainError::*;
        match self {
            OrderAlreadyPaid { payment_id }
            | OrderMismatch { payment_id, .. }
            | PaymentNotSucceeded { payment_id, .. }
            | TooManyRefunds { payment_id, .. }
            | RefundBelowFee { payment_id, .. }
            | RefundWindowExpired { payment_id, .. }
            | RefundExceedsPayment { payment_id, .. } => Some(payment_id),
            _ => None,
        }
    }

    /// The fields at fault, where the code has them.
    pub fn fields(&self) -> Vec<String> {
        use DomainError::*;
        match self {
            Invalid { field, .. } | InvalidEndpoint { field, .. } if !field.is_empty() => {
                vec![field.clone()]
            }
            IdempotencyKeyReused { fields } | OrderMismatch { fields, .. } => fields.clone(),
            RefundBelowFee { .. } | RefundExceedsPayment { .. } => vec!["amount".to_owned()],
            _ => Vec::new(),
        }
    }

    /// Seconds for a `Retry-After` header, where the code has one.
    pub fn retry_after_s(&self) -> Option<u32> {
        match self {
            DomainError::IdempotencyKeyInUse { retry_after_s }
            | DomainError::Overloaded { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }
}

/// One error of each variant, for tests that must cover every code (this table's, and the
/// OpenAPI document's list of codes).
#[cfg(test)]
pub(crate) fn one_of_each() -> Vec<DomainError> {
    vec![
        DomainError::invalid("amount", "amount must be positive"),
        DomainError::NotFound { what: "payment" },
        DomainError::IdempotencyKeyReused {
            fields: vec!["amount".into()],
        },
        DomainError::IdempotencyKeyInUse { retry_after_s: 1 },
        DomainError::OrderAlreadyPaid {
            payment_id: "pay_1".into(),
        },
        DomainError::OrderMismatch {
            payment_id: "pay_1".into(),
            fields: vec!["currency".into()],
        },
        DomainError::PaymentNotSucceeded {
            payment_id: "pay_1".into(),
            status: "failed",
        },
        DomainError::TooManyRefunds {
            payment_id: "pay_1".into(),
            refunds_max: 100,
        },
        DomainError::RefundBelowFee {
            payment_id: "pay_1".into(),
            fee_minor: 30,
        },
        DomainError::RefundWindowExpired {
            payment_id: "pay_1".into(),
            window_days: 7,
        },
        DomainError::RefundExceedsPayment {
            payment_id: "pay_1".into(),
            held_minor: 600,
            amount_minor: 1000,
        },
        DomainError::Overloaded { retry_after_s: 1 },
        DomainError::Internal,
        DomainError::InvalidEndpoint {
            field: "url".into(),
            detail: "bad".into(),
        },
        DomainError::EndpointsLimit { endpoints_max: 16 },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_status_and_title() {
        let samples = one_of_each();
        let mut by_code = std::collections::HashMap::new();
        for error in &samples {
            let row = error.table();
            assert!((400..=599).contains(&row.status), "{error:?}");
            assert!(row
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            let seen = by_code.entry(row.code).or_insert(row);
            assert_eq!(*seen, row, "one status and title per code");
        }
        assert_eq!(
            samples[10].to_string(),
            "refunds not failed hold 600 of 1000; at most 400 more can be refunded"
        );
        assert_eq!(samples[10].fields(), vec!["amount"]);
        assert_eq!(samples[4].payment_id(), Some("pay_1"));
        assert_eq!(samples[0].fields(), vec!["amount"]);
        assert_eq!(samples[3].retry_after_s(), Some(1));
    }
}
