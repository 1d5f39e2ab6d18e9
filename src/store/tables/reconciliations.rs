//! The reconciliation tables: `reconciliations` (report id → report) and `discrepancies`
//! (discrepancy id → discrepancy; a resolve replaces it).

use crate::recon::report::{Discrepancy, ReconciliationReport};
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
