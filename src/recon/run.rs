//! Running a reconciliation and resolving a discrepancy: gather our money of the day (the
//! settlement index, [`crate::store::settled`]), the provider's (balance transactions, or an uploaded report),
//! compare, and store the report, its discrepancies and — when there are any — the
//! `reconciliation.discrepancies_found` event in one write set.

use std::collections::BTreeMap;
use std::time::Duration;

use dashmap::DashMap;

use crate::clock::Clock;
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::ids::{prefix, IdSource, UlidSource};
use crate::domain::payment::Payment;
use crate::domain::reconciliation::{Discrepancy, ReconciliationReport, ReportSource};
use crate::domain::refund::Refund;
use crate::domain::time::DAY_MS;
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::provider::types::{ProviderError, SettlementKind, SettlementRow};
use crate::provider::Connector;
use crate::recon::compare::{compare, Finding, OurRow, TotalOverflow};
use crate::store::committer::CommitterHandle;
use crate::store::tables::refunds::OurRecord;
use crate::store::{Store, StoreError};

/// Our records one day may hold for a run (beyond: refused, not silently cut).
pub const SETTLED_PER_DAY_MAX: usize = 1_000_000;
/// Discrepancies stored per report; more are counted in `discrepancies_dropped`.
pub const DISCREPANCIES_PER_REPORT_MAX: usize = 10_000;
/// Provider charges of a day that match none of our records and are looked up at the
/// provider one by one (`resolve_unmatched`); more refuse the run.
pub const UNMATCHED_CHARGES_MAX: usize = 10_000;
/// Longest a run may wait for the provider's balance transactions (all pages).
pub const PROVIDER_LIST_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a run or a resolve failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    #[error("provider: {0}")]
    Provider(#[from] ProviderError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("more than {SETTLED_PER_DAY_MAX} records settled that day")]
    TooMany,
    #[error("more than {UNMATCHED_CHARGES_MAX} provider charges of the day match none of ours")]
    TooManyUnmatched,
    #[error("no such discrepancy")]
    NotFound,
    #[error("already resolved with another resolution or operator")]
    AlreadyResolved,
    #[error("another resolve of this discrepancy is running")]
    Busy,
    /// A total would not fit in `i64` minor units; `row` names where it overflowed.
    #[error("the totals overflow at {row}")]
    TotalOverflow { row: String },
}

/// What a run needs.
pub struct Recon<'a> {
    pub store: &'a Store,
    pub committer: &'a CommitterHandle,
    pub connector: &'a dyn Connector,
    /// When the report is made.
    pub clock: &'a dyn Clock,
}

/// Unix days of a UTC date.
pub fn unix_day(date: time::Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp() * 1000 / DAY_MS
}

fn payment_row(p: &Payment) -> OurRow {
    OurRow {
        kind: SettlementKind::Charge,
        payment_id: p.id.clone(),
        refund_id: None,
        provider_id: p.provider_payment_id.clone(),
        amount: p.amount,
        currency: p.currency.clone(),
        status: p.status.as_str().to_owned(),
    }
}

fn refund_row(r: &Refund) -> OurRow {
    OurRow {
        kind: SettlementKind::Refund,
        payment_id: r.payment_id.clone(),
        refund_id: Some(r.id.clone()),
        provider_id: r.provider_refund_id.clone(),
        amount: r.amount_returned(),
        currency: r.currency.clone(),
        status: r.status.as_str().to_owned(),
    }
}

impl Recon<'_> {
    /// Our payment behind each provider charge that moved money and matches none of the
    /// day's records (provider id → payment id), found through the provider's record of its
    /// payment key (`metadata[merchant_id]`, `metadata[order_no]`: DESIGN §2), since the
    /// store keeps no index of payments by provider id. A charge the provider does not
    /// know, or that names no payment of ours, is left out (a `missing_in_ours` finding).
    /// At most [`UNMATCHED_CHARGES_MAX`] are looked up; beyond that the run is refused.
    ///
    /// # Errors
    /// [`ReconError::Provider`] when the provider cannot be read, [`ReconError::Store`].
    async fn resolve_unmatched(
        &self,
        ours: &[OurRow],
        rows: &[SettlementRow],
    ) -> Result<std::collections::HashMap<String, String>, ReconError> {
        let known: std::collections::HashSet<&str> = ours
            .iter()
            .filter_map(|o| o.provider_id.as_deref())
            .collect();
        let unmatched: Vec<&str> = rows
            .iter()
            .filter(|r| r.kind == SettlementKind::Charge && r.status == "succeeded")
            .map(|r| r.provider_id.as_str())
            .filter(|id| !known.contains(id))
            .collect();
        if unmatched.len() > UNMATCHED_CHARGES_MAX {
            return Err(ReconError::TooManyUnmatched);
        }
        let mut found = std::collections::HashMap::new();
        for provider_id in unmatched {
            let seen = match tokio::time::timeout(
                PROVIDER_LIST_TIMEOUT,
                self.connector.retrieve_payment(provider_id),
            )
            .await
            {
                Err(_) => {
                    return Err(ProviderError::Unavailable {
                        reason: "retrieving a payment timed out".to_owned(),
                    }
                    .into())
                }
                Ok(Err(ProviderError::NotFound)) => continue,
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(seen)) => seen,
            };
            let (Some(merchant_id), Some(order_no)) = (&seen.merchant_id, &seen.order_no) else {
                continue;
            };
            if let Some(payment) = self.store.payment_by_order(merchant_id, order_no)? {
                found.insert(provider_id.to_owned(), payment.id);
            }
        }
        Ok(found)
    }
}

fn load_row(store: &Store, record: &OurRecord) -> Result<Option<OurRow>, StoreError> {
    Ok(match record {
        OurRecord::Payment(id) => store.payment(id)?.as_ref().map(payment_row),
        OurRecord::Refund(id) => store.refund(id)?.as_ref().map(refund_row),
    })
}

impl Recon<'_> {
    /// Reconciles UTC day `date` against `uploaded` rows, or else the provider's balance
    /// transactions; stores and returns the report with its discrepancies.
    ///
    /// # Errors
    /// [`ReconError`]: the provider could not be listed, the store failed, or the day is
    /// too large.
    pub async fn run(
        &self,
        date: time::Date,
        uploaded: Option<Vec<SettlementRow>>,
    ) -> Result<(ReconciliationReport, Vec<Discrepancy>), ReconError> {
        let records = self
            .store
            .settled_on_day(unix_day(date), SETTLED_PER_DAY_MAX + 1)?;
        if records.len() > SETTLED_PER_DAY_MAX {
            return Err(ReconError::TooMany);
        }
        let mut ours = Vec::with_capacity(records.len());
        for record in &records {
            ours.extend(load_row(self.store, record)?);
        }
        let source = match uploaded {
            Some(_) => ReportSource::Csv,
            None => ReportSource::BalanceTransactions,
        };
        let rows = match uploaded {
            Some(rows) => rows,
            None => tokio::time::timeout(
                PROVIDER_LIST_TIMEOUT,
                self.connector.balance_transactions(date),
            )
            .await
            .map_err(|_| ProviderError::Unavailable {
                reason: "listing balance transactions timed out".to_owned(),
            })??,
        };
        let unmatched = self.resolve_unmatched(&ours, &rows).await?;
        let lookup = |provider_id: &str| {
            let record = match unmatched.get(provider_id) {
                Some(payment_id) => OurRecord::Payment(payment_id.clone()),
                None => OurRecord::Refund(self.store.refund_by_provider_id(provider_id).ok()??),
            };
            let mut row = load_row(self.store, &record).ok().flatten()?;
            if row.provider_id.as_deref() != Some(provider_id) {
                // An earlier attempt of the payment: in our books that attempt failed, even
                // if a later one succeeded. Money moved on it means a second charge.
                row.status = "failed".to_owned();
                row.provider_id = Some(provider_id.to_owned());
            }
            Some(row)
        };
        let comparison = compare(&ours, &rows, lookup).map_err(|overflow| {
            let row = match (&overflow, source) {
                (TotalOverflow::Provider { index, provider_id }, ReportSource::Csv) => {
                    format!("data row {} of the upload ({provider_id})", index + 1)
                }
                _ => overflow.to_string(),
            };
            ReconError::TotalOverflow { row }
        })?;
        let mut ids = UlidSource;
        let report_id = ids.next_id(prefix::RECONCILIATION);
        let found = comparison.findings.len();
        let discrepancies: Vec<Discrepancy> = comparison
            .findings
            .into_iter()
            .take(DISCREPANCIES_PER_REPORT_MAX)
            .map(|f| discrepancy(f, &report_id, &mut ids))
            .collect();
        let report = ReconciliationReport {
            id: report_id,
            date: date.to_string(),
            source,
            our_count: comparison.our_count,
            our_total: comparison.our_total,
            provider_count: comparison.provider_count,
            provider_total: comparison.provider_total,
            totals_by_currency: comparison.totals_by_currency,
            discrepancy_ids: discrepancies.iter().map(|d| d.id.clone()).collect(),
            discrepancies_dropped: (found - discrepancies.len()) as u64,
            created_at_ms: self.clock.now_ms(),
        };
        self.committer
            .commit(write_set(&report, &discrepancies, &mut ids))
            .await?;
        Ok((report, discrepancies))
    }
}

fn discrepancy(f: Finding, reconciliation_id: &str, ids: &mut dyn IdSource) -> Discrepancy {
    let ours = f.ours.as_ref();
    let theirs = f.provider.as_ref();
    Discrepancy {
        id: ids.next_id(prefix::DISCREPANCY),
        reconciliation_id: reconciliation_id.to_owned(),
        kind: f.kind,
        payment_id: ours.map(|o| o.payment_id.clone()),
        refund_id: ours.and_then(|o| o.refund_id.clone()),
        provider_payment_id: theirs
            .map(|t| t.provider_id.clone())
            .or_else(|| ours.and_then(|o| o.provider_id.clone())),
        our_amount: ours.map(|o| o.amount),
        provider_amount: theirs.map(|t| t.amount),
        our_currency: ours.map(|o| o.currency.clone()),
        provider_currency: theirs.map(|t| t.currency.clone()),
        our_status: ours.map(|o| o.status.clone()),
        provider_status: theirs.map(|t| t.status.clone()),
        resolved: false,
        resolution: None,
        resolved_by: None,
        resolved_at_ms: None,
    }
}

/// The report, its discrepancies, and the event when there are any.
fn write_set(
    report: &ReconciliationReport,
    discrepancies: &[Discrepancy],
    ids: &mut dyn IdSource,
) -> WriteSet {
    let mut write_set = WriteSet::default();
    write_set.push(WriteOp::Reconciliation(Box::new(report.clone())));
    for d in discrepancies {
        write_set.push(WriteOp::Discrepancy(Box::new(d.clone())));
    }
    let count = discrepancies.len() as u64 + report.discrepancies_dropped;
    if count > 0 {
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for d in discrepancies {
            *by_type.entry(d.kind.as_str()).or_default() += 1;
        }
        let payload = serde_json::json!({
            "reconciliation_id": report.id,
            "date": report.date,
            "source": report.source,
            "discrepancy_count": count,
            "by_type": by_type,
        });
        write_set.push(WriteOp::Event(Event {
            id: ids.next_id(prefix::EVENT),
            kind: kind::RECONCILIATION_DISCREPANCIES_FOUND.to_owned(),
            level: EventLevel::Warning,
            source: EventSource::Reconciliation,
            title: format!(
                "Reconciliation of {} found {count} discrepancies",
                report.date
            ),
            entity_type: "reconciliation".to_owned(),
            entity_id: report.id.clone(),
            dedupe_key: format!("{}:{}", kind::RECONCILIATION_DISCREPANCIES_FOUND, report.id),
            payload: payload.to_string(),
            created_at_ms: report.created_at_ms,
        }));
    }
    write_set
}

/// Resolves discrepancy `id`. Resolving again with the same resolution and operator
/// answers the discrepancy as it is; with others, [`ReconError::AlreadyResolved`].
/// Concurrent resolves of one discrepancy are kept apart by an insert-if-absent claim.
///
/// # Errors
/// [`ReconError::NotFound`], [`ReconError::AlreadyResolved`], [`ReconError::Busy`], or a
/// store failure.
pub async fn resolve(
    store: &Store,
    committer: &CommitterHandle,
    resolving: &DashMap<String, ()>,
    id: &str,
    resolution: &str,
    operator: &str,
    now_ms: i64,
) -> Result<Discrepancy, ReconError> {
    if resolving.insert(id.to_owned(), ()).is_some() {
        return Err(ReconError::Busy);
    }
    let result = resolve_claimed(store, committer, id, resolution, operator, now_ms).await;
    resolving.remove(id);
    result
}

async fn resolve_claimed(
    store: &Store,
    committer: &CommitterHandle,
    id: &str,
    resolution: &str,
    operator: &str,
    now_ms: i64,
) -> Result<Discrepancy, ReconError> {
    let mut d = store.discrepancy(id)?.ok_or(ReconError::NotFound)?;
    if d.resolved {
        let same = d.resolution.as_deref() == Some(resolution)
            && d.resolved_by.as_deref() == Some(operator);
        return if same {
            Ok(d)
        } else {
            Err(ReconError::AlreadyResolved)
        };
    }
    d.resolved = true;
    d.resolution = Some(resolution.to_owned());
    d.resolved_by = Some(operator.to_owned());
    d.resolved_at_ms = Some(now_ms);
    let write_set = WriteSet {
        ops: vec![WriteOp::Discrepancy(Box::new(d.clone()))],
    };
    committer.commit(write_set).await?;
    Ok(d)
}
