//! The comparison itself, pure: our money of a day against the provider's rows.
//!
//! Only money that moved is compared (DESIGN §2): our succeeded payments and refunds of the
//! day, and the provider's charge and refund rows. Rows are matched by the provider's id
//! (a payment's `pi_…`, a refund's `re_…`):
//! - ours, no provider row → `missing_in_provider`;
//! - both, the provider row not `succeeded` → `status_mismatch`;
//! - both, another amount or currency → `amount_mismatch`;
//! - a provider row that moved money and matches none of the day's: looked up among all our
//!   records — none → `missing_in_ours`; ours but not succeeded (a payment still
//!   `processing` or `failed`, a refund `pending` or `failed`) → `status_mismatch`; ours and
//!   succeeded on another UTC day → compared for amount only (days are cut at UTC midnight on
//!   both sides, and a charge near midnight may land on the neighbour day).

use std::collections::{BTreeMap, HashMap};

use crate::domain::reconciliation::{CurrencyTotals, DiscrepancyKind};
use crate::provider::types::{SettlementKind, SettlementRow};

/// One of our records, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurRow {
    pub kind: SettlementKind,
    pub payment_id: String,
    pub refund_id: Option<String>,
    pub provider_id: Option<String>,
    /// Money that moved: the payment's amount, or what a refund returned.
    pub amount: u64,
    pub currency: String,
    /// `succeeded`, or the record's other status.
    pub status: String,
}

/// A discrepancy before it gets its ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: DiscrepancyKind,
    pub ours: Option<OurRow>,
    pub provider: Option<SettlementRow>,
}

/// What a comparison found, with the counts and totals of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub findings: Vec<Finding>,
    pub our_count: u64,
    pub our_total: i64,
    pub provider_count: u64,
    pub provider_total: i64,
    pub totals_by_currency: BTreeMap<String, CurrencyTotals>,
}

const SUCCEEDED: &str = "succeeded";

/// The row whose amount would take a total out of `i64` minor units: a report never
/// shows a wrapped or clamped total.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotalOverflow {
    /// The provider's row at `index` (0-based) of the rows compared.
    #[error("provider row {index} ({provider_id})", index = .index + 1)]
    Provider { index: usize, provider_id: String },
    /// One of our records of the day.
    #[error("our record {payment_id}")]
    Ours { payment_id: String },
}

/// `total + amount` (a refund subtracts), `None` when it does not fit in `i64`.
fn add(total: i64, kind: SettlementKind, amount: u64) -> Option<i64> {
    let amount = i64::try_from(amount).ok()?;
    match kind {
        SettlementKind::Charge => total.checked_add(amount),
        SettlementKind::Refund => total.checked_sub(amount),
    }
}

/// Adds one row to a total and to its currency's total.
fn add_both(total: &mut i64, currency_total: &mut i64, kind: SettlementKind, amount: u64) -> bool {
    match (
        add(*total, kind, amount),
        add(*currency_total, kind, amount),
    ) {
        (Some(t), Some(c)) => {
            (*total, *currency_total) = (t, c);
            true
        }
        _ => false,
    }
}

/// Compares the day's `ours` with the provider's `rows`; `lookup` finds any of our records
/// by provider id (any day, any status).
///
/// # Errors
/// [`TotalOverflow`] naming the first row a total cannot take.
pub fn compare(
    ours: &[OurRow],
    rows: &[SettlementRow],
    lookup: impl Fn(&str) -> Option<OurRow>,
) -> Result<Comparison, TotalOverflow> {
    let mut out = Comparison::default();
    let moved: Vec<&SettlementRow> = rows.iter().filter(|r| r.status == SUCCEEDED).collect();
    for (index, row) in rows.iter().enumerate() {
        if row.status != SUCCEEDED {
            continue;
        }
        out.provider_count += 1;
        let totals = out
            .totals_by_currency
            .entry(row.currency.clone())
            .or_default();
        if !add_both(
            &mut out.provider_total,
            &mut totals.provider,
            row.kind,
            row.amount,
        ) {
            return Err(TotalOverflow::Provider {
                index,
                provider_id: row.provider_id.clone(),
            });
        }
    }
    let by_id: HashMap<&str, &SettlementRow> =
        rows.iter().map(|r| (r.provider_id.as_str(), r)).collect();
    let mut matched: HashMap<&str, ()> = HashMap::new();
    for our in ours {
        out.our_count += 1;
        let totals = out
            .totals_by_currency
            .entry(our.currency.clone())
            .or_default();
        if !add_both(&mut out.our_total, &mut totals.ours, our.kind, our.amount) {
            return Err(TotalOverflow::Ours {
                payment_id: our.payment_id.clone(),
            });
        }
        let row = our
            .provider_id
            .as_deref()
            .and_then(|id| by_id.get(id).copied());
        let Some(row) = row else {
            out.findings
                .push(finding(DiscrepancyKind::MissingInProvider, Some(our), None));
            continue;
        };
        matched.insert(row.provider_id.as_str(), ());
        if let Some(kind) = disagreement(our, row) {
            out.findings.push(finding(kind, Some(our), Some(row)));
        }
    }
    for row in moved {
        if matched.contains_key(row.provider_id.as_str()) {
            continue;
        }
        match lookup(&row.provider_id) {
            None => out
                .findings
                .push(finding(DiscrepancyKind::MissingInOurs, None, Some(row))),
            Some(our) => {
                if let Some(kind) = disagreement(&our, row) {
                    out.findings.push(finding(kind, Some(&our), Some(row)));
                }
            }
        }
    }
    Ok(out)
}

/// How a matched pair disagrees, if it does.
fn disagreement(our: &OurRow, row: &SettlementRow) -> Option<DiscrepancyKind> {
    if our.status != row.status {
        return Some(DiscrepancyKind::StatusMismatch);
    }
    if our.amount != row.amount || our.currency != row.currency {
        return Some(DiscrepancyKind::AmountMismatch);
    }
    None
}

fn finding(kind: DiscrepancyKind, ours: Option<&OurRow>, row: Option<&SettlementRow>) -> Finding {
    Finding {
        kind,
        ours: ours.cloned(),
        provider: row.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(id: &str, provider_id: &str, amount: u64) -> OurRow {
        OurRow {
            kind: SettlementKind::Charge,
            payment_id: id.into(),
            refund_id: None,
            provider_id: Some(provider_id.into()),
            amount,
            currency: "USD".into(),
            status: SUCCEEDED.into(),
        }
    }

    fn row(provider_id: &str, amount: u64, status: &str) -> SettlementRow {
        SettlementRow {
            provider_id: provider_id.into(),
            kind: SettlementKind::Charge,
            amount,
            currency: "USD".into(),
            status: status.into(),
        }
    }

    #[test]
    fn each_kind_of_discrepancy_is_found_once() {
        let day = vec![
            ours("pay_ok", "pi_ok", 100),
            ours("pay_gone", "pi_gone", 200),
            ours("pay_amount", "pi_amount", 300),
            ours("pay_failed_there", "pi_failed", 400),
        ];
        let provider = vec![
            row("pi_ok", 100, SUCCEEDED),
            row("pi_amount", 301, SUCCEEDED),
            row("pi_failed", 400, "failed"),
            row("pi_stranger", 50, SUCCEEDED),
            row("pi_processing", 60, SUCCEEDED),
            row("pi_other_day", 70, SUCCEEDED),
            row("pi_never_moved", 80, "failed"),
        ];
        let lookup = |id: &str| match id {
            "pi_processing" => Some(OurRow {
                status: "processing".into(),
                ..ours("pay_processing", "pi_processing", 60)
            }),
            "pi_other_day" => Some(ours("pay_yesterday", "pi_other_day", 70)),
            _ => None,
        };
        let c = compare(&day, &provider, lookup).unwrap();
        let kinds: Vec<(DiscrepancyKind, String)> = c
            .findings
            .iter()
            .map(|f| {
                let id = f.ours.as_ref().map_or_else(
                    || f.provider.as_ref().unwrap().provider_id.clone(),
                    |o| o.payment_id.clone(),
                );
                (f.kind, id)
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (DiscrepancyKind::MissingInProvider, "pay_gone".into()),
                (DiscrepancyKind::AmountMismatch, "pay_amount".into()),
                (DiscrepancyKind::StatusMismatch, "pay_failed_there".into()),
                (DiscrepancyKind::MissingInOurs, "pi_stranger".into()),
                (DiscrepancyKind::StatusMismatch, "pay_processing".into()),
            ]
        );
        assert_eq!((c.our_count, c.our_total), (4, 1000));
        assert_eq!(
            (c.provider_count, c.provider_total),
            (5, 100 + 301 + 50 + 60 + 70)
        );
    }

    #[test]
    fn refunds_count_negative_in_totals() {
        let refund = OurRow {
            kind: SettlementKind::Refund,
            refund_id: Some("re_1".into()),
            ..ours("pay_1", "re_p1", 40)
        };
        let provider = SettlementRow {
            kind: SettlementKind::Refund,
            ..row("re_p1", 40, SUCCEEDED)
        };
        let c = compare(
            &[ours("pay_1", "pi_1", 100), refund],
            &[row("pi_1", 100, SUCCEEDED), provider],
            |_| None,
        )
        .unwrap();
        assert!(c.findings.is_empty());
        assert_eq!((c.our_total, c.provider_total), (60, 60));
        assert_eq!(
            c.totals_by_currency["USD"],
            CurrencyTotals {
                ours: 60,
                provider: 60
            }
        );
    }

    #[test]
    fn a_total_that_would_overflow_names_the_row() {
        let big = u64::try_from(i64::MAX).unwrap();
        let rows = [
            row("pi_a", big, SUCCEEDED),
            row("pi_b", 7, "failed"),
            row("pi_c", 5, SUCCEEDED),
        ];
        assert_eq!(
            compare(&[], &rows, |_| None).unwrap_err(),
            TotalOverflow::Provider {
                index: 2,
                provider_id: "pi_c".into()
            }
        );
        // An amount past i64 on its own (a CSV's i64::MIN), and a refund below i64::MIN.
        let rows = [row("pi_a", big + 1, SUCCEEDED)];
        assert!(compare(&[], &rows, |_| None).is_err());
        let refund = |id: &str| SettlementRow {
            kind: SettlementKind::Refund,
            ..row(id, big, SUCCEEDED)
        };
        assert!(compare(&[], &[refund("re_a"), refund("re_b")], |_| None).is_err());
        // Ours.
        let err = compare(
            &[ours("pay_1", "pi_1", big), ours("pay_2", "pi_2", 1)],
            &[],
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "our record pay_2",
            "the record that overflowed"
        );
        // The largest totals that fit are kept exactly.
        let c = compare(
            &[],
            &[row("pi_a", big - 5, SUCCEEDED), row("pi_b", 5, SUCCEEDED)],
            |_| None,
        )
        .unwrap();
        assert_eq!(c.provider_total, i64::MAX);
    }
}
