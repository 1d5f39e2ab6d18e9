//! Reconciliation records: the report of one run and its discrepancies (DESIGN §2
//! "Reconciliation"), stored in the trees `reconciliations` and `discrepancies`, and their
//! JSON views. Pure data; [`crate::recon`] makes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::time::format_rfc3339_ms;

/// The four kinds of disagreement between our books and the provider's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// Money moved on our side that day; the provider has no such movement.
    MissingInProvider,
    /// The provider moved money we have no record of.
    MissingInOurs,
    /// Both sides have it, with another amount or currency.
    AmountMismatch,
    /// Both sides have it, but one says the money moved and the other does not.
    StatusMismatch,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::MissingInProvider => "missing_in_provider",
            DiscrepancyKind::MissingInOurs => "missing_in_ours",
            DiscrepancyKind::AmountMismatch => "amount_mismatch",
            DiscrepancyKind::StatusMismatch => "status_mismatch",
        }
    }
}

/// What a report was compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// The provider's balance transactions of the day.
    BalanceTransactions,
    /// An uploaded settlement report (CSV).
    Csv,
}

/// One disagreement. Amounts in minor units; `None` where a side has no record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    pub id: String,
    pub reconciliation_id: String,
    pub kind: DiscrepancyKind,
    /// Our payment (for a refund: the refunded payment).
    pub payment_id: Option<String>,
    /// Our refund, when the row is a refund.
    pub refund_id: Option<String>,
    /// The provider's id: the payment's (`pi_…`), or for a refund the refund's (`re_…`).
    pub provider_payment_id: Option<String>,
    pub our_amount: Option<u64>,
    pub provider_amount: Option<u64>,
    pub our_currency: Option<String>,
    pub provider_currency: Option<String>,
    pub our_status: Option<String>,
    pub provider_status: Option<String>,
    pub resolved: bool,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at_ms: Option<i64>,
}

impl Discrepancy {
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "discrepancy",
            "reconciliation_id": self.reconciliation_id,
            "type": self.kind.as_str(),
            "payment_id": self.payment_id,
            "refund_id": self.refund_id,
            "provider_payment_id": self.provider_payment_id,
            "our_amount": self.our_amount,
            "provider_amount": self.provider_amount,
            "our_currency": self.our_currency,
            "provider_currency": self.provider_currency,
            "our_status": self.our_status,
            "provider_status": self.provider_status,
            "resolved": self.resolved,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at_ms.map(format_rfc3339_ms),
        })
    }
}

/// Net money of one currency on each side: charges minus refunds, minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyTotals {
    pub ours: i64,
    pub provider: i64,
}

/// One reconciliation run of a UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationReport {
    pub id: String,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub source: ReportSource,
    /// Our succeeded payments and refunds of the day.
    pub our_count: u64,
    /// Net of those (charges minus refunds returned), minor units summed across currencies;
    /// see `totals_by_currency` when a day has several.
    pub our_total: i64,
    pub provider_count: u64,
    pub provider_total: i64,
    pub totals_by_currency: BTreeMap<String, CurrencyTotals>,
    pub discrepancy_ids: Vec<String>,
    /// Discrepancies found beyond those stored (see `DISCREPANCIES_PER_REPORT_MAX`).
    pub discrepancies_dropped: u64,
    pub created_at_ms: i64,
}

impl ReconciliationReport {
    /// The report object with its discrepancies.
    pub fn to_value(&self, discrepancies: &[Discrepancy]) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "reconciliation",
            "date": self.date,
            "source": self.source,
            "our_count": self.our_count,
            "our_total": self.our_total,
            "provider_count": self.provider_count,
            "provider_total": self.provider_total,
            "totals_by_currency": self.totals_by_currency,
            "discrepancy_count": self.discrepancy_ids.len() as u64 + self.discrepancies_dropped,
            "discrepancies_dropped": self.discrepancies_dropped,
            "discrepancies": discrepancies.iter().map(Discrepancy::to_value).collect::<Vec<_>>(),
            "created_at": format_rfc3339_ms(self.created_at_ms),
        })
    }
}
