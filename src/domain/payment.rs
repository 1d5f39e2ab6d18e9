//! The payment record, its status order, the create request and its validation, and the
//! JSON view merchants see (DESIGN §2 "Payment object").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::error::DomainError;
use crate::domain::provider_key;
use crate::domain::time::format_rfc3339_ms;

/// `order_no` length bound in characters (DESIGN §2).
pub const ORDER_NO_CHARS_MAX: usize = 64;
/// `payment_method` length bound (a provider token; Stripe's ids are far shorter).
pub const PAYMENT_METHOD_CHARS_MAX: usize = 255;
/// `description` length bound in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 1000;
/// `customer_email` length bound (RFC 5321 path limit).
pub const EMAIL_CHARS_MAX: usize = 254;
/// Metadata pairs per payment (DESIGN §2: ≤ 20).
pub const METADATA_PAIRS_MAX: usize = 20;
/// Metadata key bound in characters (Stripe: "up to 40 characters long").
pub const METADATA_KEY_CHARS_MAX: usize = 40;
/// Metadata value bound in characters (Stripe: "values up to 500 characters long").
pub const METADATA_VALUE_CHARS_MAX: usize = 500;

/// Where a payment is. Forward-only: within one attempt `processing` moves to `succeeded`
/// or `failed` and never back; only a new attempt (with a new idempotency key) takes a
/// `failed` payment back to `processing`; `succeeded` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Processing,
    Succeeded,
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
        }
    }

    fn rank(self) -> u8 {
        match self {
            PaymentStatus::Processing => 0,
            PaymentStatus::Failed => 1,
            PaymentStatus::Succeeded => 2,
        }
    }
}

/// How much of a payment was refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    None,
    Partial,
    Full,
}

/// One payment: the record stored per order. Amounts are minor units; times Unix ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub merchant_id: String,
    pub order_no: String,
    pub amount: u64,
    pub currency: String,
    pub status: PaymentStatus,
    pub payment_method: String,
    /// Connector name (`simulator`, `stripe`).
    pub provider: String,
    pub provider_payment_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// Attempts made; each has its own provider idempotency key (see [`Payment::provider_key`]).
    pub attempt_count: u32,
    pub amount_refunded: u64,
    pub refund_status: RefundStatus,
    pub description: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the payment succeeded (refund window and reconciliation day count from it).
    pub succeeded_at_ms: Option<i64>,
}

impl Payment {
    /// The provider idempotency key of the current attempt, derived from the payment key
    /// and the attempt number ([`provider_key::charge_key`]), never from the payment id. The
    /// same attempt always sends the same key, so a retried charge cannot charge twice, even
    /// after the store was lost and the payment made again under a new id.
    pub fn provider_key(&self) -> String {
        provider_key::charge_key(&self.merchant_id, &self.order_no, self.attempt_count)
    }

    /// Position in the forward-only order: (attempt, status rank).
    pub fn progress(&self) -> (u32, u8) {
        (self.attempt_count, self.status.rank())
    }

    /// The merchant-facing JSON object, `refunds` rendered by the caller.
    pub fn view<'a>(&'a self, refunds: &'a [serde_json::Value]) -> PaymentView<'a> {
        PaymentView {
            id: &self.id,
            object: "payment",
            merchant_id: &self.merchant_id,
            order_no: &self.order_no,
            amount: self.amount,
            currency: &self.currency,
            status: self.status,
            payment_method: &self.payment_method,
            provider: &self.provider,
            provider_payment_id: self.provider_payment_id.as_deref(),
            failure_code: self.failure_code.as_deref(),
            failure_message: self.failure_message.as_deref(),
            attempt_count: self.attempt_count,
            amount_refunded: self.amount_refunded,
            refund_status: self.refund_status,
            refunds,
            text: Some(PaymentText {
                description: self.description.as_deref(),
                customer_email: self.customer_email.as_deref(),
                metadata: &self.metadata,
            }),
            created_at: format_rfc3339_ms(self.created_at_ms),
            updated_at: format_rfc3339_ms(self.updated_at_ms),
        }
    }

    /// The JSON body of this payment with no refunds embedded.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.view(&[])).unwrap_or_default()
    }
}

/// The payment object of DESIGN §2, as serialized to merchants.
#[derive(Debug, Serialize)]
pub struct PaymentView<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub merchant_id: &'a str,
    pub order_no: &'a str,
    pub amount: u64,
    pub currency: &'a str,
    pub status: PaymentStatus,
    pub payment_method: &'a str,
    pub provider: &'a str,
    pub provider_payment_id: Option<&'a str>,
    pub failure_code: Option<&'a str>,
    pub failure_message: Option<&'a str>,
    pub attempt_count: u32,
    pub amount_refunded: u64,
    pub refund_status: RefundStatus,
    pub refunds: &'a [serde_json::Value],
    /// The merchant's own text; `None` leaves its members out (an event's snapshot of the
    /// payment, `domain::event::PAYMENT_TEXT_FIELDS`).
    #[serde(flatten)]
    pub text: Option<PaymentText<'a>>,
    pub created_at: String,
    pub updated_at: String,
}

/// The members of [`PaymentView`] that hold the merchant's own text, up to tens of KiB.
#[derive(Debug, Serialize)]
pub struct PaymentText<'a> {
    pub description: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub metadata: &'a BTreeMap<String, String>,
}

/// The `POST /v1/payments` body as sent; unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentBody {
    pub order_no: String,
    pub amount: u64,
    pub currency: String,
    pub payment_method: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    pub order_no: String,
    pub amount: u64,
    pub currency: String,
    pub payment_method: String,
    pub description: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// The limits a create is validated against (from `[payments]`).
#[derive(Debug, Clone)]
pub struct PaymentRules {
    pub currencies: Vec<String>,
    pub amount_minor_max: u64,
}

impl CreatePaymentBody {
    /// Validates every field; the problem names the first field at fault.
    ///
    /// # Errors
    /// 400 `invalid_request` naming the field.
    pub fn validate(self, rules: &PaymentRules) -> Result<CreatePayment, DomainError> {
        check_text("order_no", &self.order_no, ORDER_NO_CHARS_MAX)?;
        if self.amount == 0 || self.amount > rules.amount_minor_max {
            return Err(DomainError::invalid(
                "amount",
                format!(
                    "amount must be an integer in minor units, 1..={}",
                    rules.amount_minor_max
                ),
            ));
        }
        if !rules.currencies.iter().any(|c| c == &self.currency) {
            return Err(DomainError::invalid(
                "currency",
                format!(
                    "currency must be one of {} (upper-case ISO 4217)",
                    rules.currencies.join(", ")
                ),
            ));
        }
        check_token("payment_method", &self.payment_method)?;
        if let Some(description) = &self.description {
            check_length("description", description, DESCRIPTION_CHARS_MAX)?;
        }
        if let Some(email) = &self.customer_email {
            check_email(email)?;
        }
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        Ok(CreatePayment {
            order_no: self.order_no,
            amount: self.amount,
            currency: self.currency,
            payment_method: self.payment_method,
            description: self.description,
            customer_email: self.customer_email,
            metadata,
        })
    }
}

fn check_length(field: &str, value: &str, chars_max: usize) -> Result<(), DomainError> {
    if value.chars().count() > chars_max {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be at most {chars_max} characters"),
        ));
    }
    Ok(())
}

/// 1..=max characters, no control characters.
fn check_text(field: &str, value: &str, chars_max: usize) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    check_length(field, value, chars_max)?;
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// A provider token: 1..=255 visible ASCII characters.
fn check_token(field: &str, value: &str) -> Result<(), DomainError> {
    let visible = value.bytes().all(|b| b.is_ascii_graphic());
    if value.is_empty() || value.len() > PAYMENT_METHOD_CHARS_MAX || !visible {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be 1..={PAYMENT_METHOD_CHARS_MAX} visible ASCII characters"),
        ));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), DomainError> {
    let shaped = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    });
    let clean = !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !shaped || !clean || email.chars().count() > EMAIL_CHARS_MAX {
        return Err(DomainError::invalid(
            "customer_email",
            "customer_email must be an e-mail address of at most 254 characters",
        ));
    }
    Ok(())
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), DomainError> {
    if metadata.len() > METADATA_PAIRS_MAX {
        return Err(DomainError::invalid(
            "metadata",
            format!("metadata holds at most {METADATA_PAIRS_MAX} pairs"),
        ));
    }
    for (key, value) in metadata {
        let field = format!("metadata.{key}");
        check_text(&field, key, METADATA_KEY_CHARS_MAX).map_err(|_| {
            DomainError::invalid(
                &field,
                format!("metadata keys must be 1..={METADATA_KEY_CHARS_MAX} characters without control characters"),
            )
        })?;
        check_length(&field, value, METADATA_VALUE_CHARS_MAX)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PaymentRules {
        PaymentRules {
            currencies: vec!["USD".into(), "JPY".into()],
            amount_minor_max: 1000,
        }
    }

    fn body() -> CreatePaymentBody {
        CreatePaymentBody {
            order_no: "o-1".into(),
            amount: 10,
            currency: "USD".into(),
            payment_method: "pm_card_visa".into(),
            description: None,
            customer_email: None,
            metadata: None,
        }
    }

    fn field_of(b: CreatePaymentBody) -> String {
        b.validate(&rules()).unwrap_err().fields()[0].clone()
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(body().validate(&rules()).is_ok());
        assert_eq!(
            field_of(CreatePaymentBody {
                order_no: String::new(),
                ..body()
            }),
            "order_no"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                order_no: "x".repeat(65),
                ..body()
            }),
            "order_no"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                amount: 0,
                ..body()
            }),
            "amount"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                amount: 1001,
                ..body()
            }),
            "amount"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                currency: "usd".into(),
                ..body()
            }),
            "currency"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                payment_method: "a b".into(),
                ..body()
            }),
            "payment_method"
        );
        assert_eq!(
            field_of(CreatePaymentBody {
                customer_email: Some("nope".into()),
                ..body()
            }),
            "customer_email"
        );
        let many: BTreeMap<_, _> = (0..21).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            field_of(CreatePaymentBody {
                metadata: Some(many),
                ..body()
            }),
            "metadata"
        );
    }

    #[test]
    fn order_no_of_64_multibyte_characters_is_accepted() {
        let b = CreatePaymentBody {
            order_no: "é".repeat(64),
            ..body()
        };
        assert!(b.validate(&rules()).is_ok());
    }
}
