//! The `payments` table: payment id → payment, and `processing` (payment id → ∅, the
//! payments start-up resumes). A payment id is a function of its payment key
//! ([`crate::domain::ids::payment_id`]), so there is no index by order.

use crate::domain::ids::payment_id;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::store::engine::codec;
use crate::store::tables::journal::JournalRecord;
use crate::store::tables::{refunds, Batches};
use crate::store::{Store, StoreError};

/// Writes of a payment: the record, its `processing` entry while it is processing, and its
/// settlement (in the group's journal record) once it succeeded.
pub(crate) fn put(
    b: &mut Batches,
    journal: &mut JournalRecord,
    p: &Payment,
) -> Result<(), StoreError> {
    b.payments.insert(p.id.as_bytes(), codec::encode(p)?);
    if p.status == PaymentStatus::Processing {
        b.processing.insert(p.id.as_bytes(), []);
    } else {
        b.processing.remove(p.id.as_bytes());
    }
    refunds::index_payment(journal, p);
    Ok(())
}

impl Store {
    /// The payment `id`, as last committed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn payment(&self, id: &str) -> Result<Option<Payment>, StoreError> {
        self.trees
            .payments
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The payment of an order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn payment_by_order(
        &self,
        merchant_id: &str,
        order_no: &str,
    ) -> Result<Option<Payment>, StoreError> {
        // The id is a function of the payment key (`ids::payment_id`), so no index is kept.
        let payment = self.payment(&payment_id(merchant_id, order_no))?;
        Ok(payment.filter(|p| p.merchant_id == merchant_id && p.order_no == order_no))
    }

    /// Ids of all payments left `processing` (start-up recovery resumes them).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn processing_payment_ids(&self) -> Result<Vec<String>, StoreError> {
        self.trees
            .processing
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }
}
