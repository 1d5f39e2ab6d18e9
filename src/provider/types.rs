//! What connectors answer besides charges and refunds: a payment as the provider sees it
//! (webhooks sync from it) and the money that moved on a day (reconciliation compares it).

use serde::{Deserialize, Serialize};

/// A payment's state at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderPaymentStatus {
    /// Money moved (Stripe: `succeeded`).
    Succeeded,
    /// The attempt is over without money moving (Stripe: `requires_payment_method` after a
    /// failed confirmation, or `canceled`).
    Failed { code: String, message: String },
    /// Not final yet (Stripe: `processing`, `requires_action`, …).
    Pending,
}

/// A payment as the provider reports it (Stripe: a PaymentIntent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPayment {
    /// The provider's id (`pi_…`).
    pub id: String,
    /// The payment key it was charged for, from `metadata[merchant_id]` and
    /// `metadata[order_no]` (DESIGN §2 "Provider"): finds our payment when the provider id
    /// does not, e.g. after the store was rebuilt.
    pub merchant_id: Option<String>,
    pub order_no: Option<String>,
    /// Our attempt number, from `metadata[attempt]`.
    pub attempt: Option<u32>,
    pub amount: u64,
    /// Upper-case ISO 4217.
    pub currency: String,
    pub status: ProviderPaymentStatus,
}

/// Whether a settlement row is a charge or a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettlementKind {
    Charge,
    Refund,
}

/// One movement of money at the provider (Stripe: a balance transaction; or a row of an
/// uploaded settlement report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementRow {
    /// The payment's provider id for a charge (`pi_…`), the refund's for a refund (`re_…`).
    pub provider_id: String,
    pub kind: SettlementKind,
    /// Absolute amount in minor units (Stripe reports refunds as negative amounts).
    pub amount: u64,
    /// Upper-case ISO 4217.
    pub currency: String,
    /// `succeeded` when money moved (Stripe's `available` and `pending` both mean that);
    /// otherwise the provider's word, lower case.
    pub status: String,
}

/// Why a provider read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider has no such object")]
    NotFound,
    /// Timeout, connection error, 5xx, 429: try again later.
    #[error("provider unavailable: {reason}")]
    Unavailable { reason: String },
    /// Another 4xx or an answer we could not read.
    #[error("provider refused: {reason}")]
    Rejected { reason: String },
}
