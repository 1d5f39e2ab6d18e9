//! Records shared by the crate's unit tests.

use crate::domain::payment::{Payment, PaymentStatus, RefundStatus};

/// A succeeded card payment in USD, with provider id `pi_1`, created, updated and paid at
/// `at_ms`.
pub(crate) fn paid_payment(
    id: &str,
    merchant_id: &str,
    order_no: &str,
    amount: u64,
    at_ms: i64,
) -> Payment {
    Payment {
        id: id.into(),
        merchant_id: merchant_id.into(),
        order_no: order_no.into(),
        amount,
        currency: "USD".into(),
        status: PaymentStatus::Succeeded,
        payment_method: "pm_card_visa".into(),
        provider: "simulator".into(),
        provider_payment_id: Some("pi_1".into()),
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: None,
        customer_email: None,
        metadata: Default::default(),
        created_at_ms: at_ms,
        updated_at_ms: at_ms,
        succeeded_at_ms: Some(at_ms),
    }
}
