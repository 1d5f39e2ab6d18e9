//! The reconciliation tables: `reconciliations` (report id → report) and `discrepancies`
//! (discrepancy id → discrepancy; a resolve replaces it).

use crate::domain::reconciliation::{Discrepancy, ReconciliationReport};
use crate::store::engine::codec;
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// Stores a reconciliation report.
pub(crate) fn put_reconciliation(
    b: &mut Batches,
    r: &ReconciliationReport,
) -> Result<(), StoreError> {
    b.reconciliations.insert(r.id.as_bytes(), codec::encode(r)?);
    Ok(())
}

/// Stores (or replaces) a discrepancy.
pub(crate) fn put_discrepancy(b: &mut Batches, d: &Discrepancy) -> Result<(), StoreError> {
    b.discrepancies.insert(d.id.as_bytes(), codec::encode(d)?);
    Ok(())
}

impl Store {
    /// Up to `limit` reconciliation reports with id > `after`, oldest first (report ids are
    /// `rec_` + a ULID, so id order is creation order): the operator console's list.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn reconciliations_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReconciliationReport>, StoreError> {
        let start = match after {
            Some(after) => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => Vec::new(),
        };
        self.trees
            .reconciliations
            .range(start..)
            .take(limit)
            .map(|kv| codec::decode(&kv?.1))
            .collect()
    }

    /// The reconciliation report `id`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn reconciliation(&self, id: &str) -> Result<Option<ReconciliationReport>, StoreError> {
        self.trees
            .reconciliations
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The discrepancy `id`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn discrepancy(&self, id: &str) -> Result<Option<Discrepancy>, StoreError> {
        self.trees
            .discrepancies
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::domain::reconciliation::{
        Discrepancy, DiscrepancyKind, ReconciliationReport, ReportSource,
    };
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    /// A report is one key; a discrepancy is one key that its resolve replaces.
    #[test]
    fn reports_and_discrepancies_are_one_key_each() {
        let (_dir, store) = open();
        let report = ReconciliationReport {
            id: "rec_1".into(),
            date: "2026-11-30".into(),
            source: ReportSource::Csv,
            our_count: 1,
            our_total: 500,
            provider_count: 0,
            provider_total: 0,
            totals_by_currency: BTreeMap::new(),
            discrepancy_ids: vec!["dis_1".into()],
            discrepancies_dropped: 0,
            created_at_ms: 9,
        };
        let open_one = Discrepancy {
            id: "dis_1".into(),
            reconciliation_id: "rec_1".into(),
            kind: DiscrepancyKind::MissingInProvider,
            payment_id: Some("pay_1".into()),
            refund_id: None,
            provider_payment_id: None,
            our_amount: Some(500),
            provider_amount: None,
            our_currency: Some("USD".into()),
            provider_currency: None,
            our_status: Some("succeeded".into()),
            provider_status: None,
            resolved: false,
            resolution: None,
            resolved_by: None,
            resolved_at_ms: None,
        };
        commit(
            &store,
            vec![
                WriteOp::Reconciliation(Box::new(report.clone())),
                WriteOp::Discrepancy(Box::new(open_one.clone())),
            ],
        );
        assert_eq!(store.reconciliation("rec_1").unwrap(), Some(report));
        assert_eq!(store.discrepancy("dis_1").unwrap(), Some(open_one.clone()));
        let resolved = Discrepancy {
            resolved: true,
            resolved_by: Some("op".into()),
            ..open_one
        };
        commit(
            &store,
            vec![WriteOp::Discrepancy(Box::new(resolved.clone()))],
        );
        assert_eq!(store.discrepancy("dis_1").unwrap(), Some(resolved));
    }
}
