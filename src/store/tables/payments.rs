//! The `payments` table: payment id → payment, and `processing` (payment id → ∅, the
//! payments start-up resumes). A payment id is a function of its payment key
//! ([`crate::domain::ids::payment_id`]), so there is no index by order.

use crate::domain::ids::payment_id;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::store::engine::codec;
use crate::store::tables::journal::JournalRecord;
use crate::store::tables::{refunds, Batches};
use crate::store::{Store, StoreError};

/// Writes of a payment (`value`: its encoded record): the record, its `processing` entry
/// while it is processing, and its settlement (in the group's journal record) once it
/// succeeded.
pub(crate) fn put(b: &mut Batches, journal: &mut JournalRecord, p: &Payment, value: Vec<u8>) {
    b.payments.insert(p.id.as_bytes(), value);
    if p.status == PaymentStatus::Processing {
        b.processing.insert(p.id.as_bytes(), []);
    } else {
        b.processing.remove(p.id.as_bytes());
    }
    refunds::index_payment(journal, p);
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

#[cfg(test)]
mod tests {
    use crate::domain::payment::PaymentStatus;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::refunds::{day_of_ms, OurRecord};
    use crate::store::tables::test_support::{commit, open, payment};

    /// The payment is read by id and by order under the same key; `processing` holds it
    /// only while it is processing; once it succeeded it is in its day's settlements.
    #[test]
    fn a_payment_is_one_key_with_its_processing_entry_and_settlement() {
        let (_dir, store) = open();
        let processing = payment("o-1", PaymentStatus::Processing);
        commit(&store, vec![WriteOp::Payment(processing.clone())]);
        assert_eq!(
            store.payment(&processing.id).unwrap(),
            Some(processing.clone())
        );
        assert_eq!(
            store.payment_by_order("m_demo", "o-1").unwrap(),
            Some(processing.clone())
        );
        assert_eq!(store.payment_by_order("m_other", "o-1").unwrap(), None);
        assert_eq!(
            store.processing_payment_ids().unwrap(),
            vec![processing.id.clone()]
        );
        let day = day_of_ms(processing.created_at_ms);
        assert!(store.settled_on_day(day, 10).unwrap().is_empty());

        let paid = payment("o-1", PaymentStatus::Succeeded);
        commit(&store, vec![WriteOp::Payment(paid.clone())]);
        assert_eq!(store.payment(&paid.id).unwrap(), Some(paid.clone()));
        assert!(store.processing_payment_ids().unwrap().is_empty());
        let day = day_of_ms(paid.succeeded_at_ms.unwrap());
        assert_eq!(
            store.settled_on_day(day, 10).unwrap(),
            vec![OurRecord::Payment(paid.id.clone())]
        );
        // Written again (a refund changes it): still listed once.
        commit(&store, vec![WriteOp::Payment(paid.clone())]);
        assert_eq!(store.settled_on_day(day, 10).unwrap().len(), 1);
    }

    /// The payments tree is key-filtered: after a reopen, once its filter is built from
    /// sled, every payment written before and after is still found, and a new order is not.
    #[test]
    fn a_reopened_store_finds_every_payment_through_its_key_filter() {
        let (dir, store) = open();
        let before: Vec<_> = (0..300)
            .map(|i| payment(&format!("o-{i}"), PaymentStatus::Succeeded))
            .collect();
        for p in &before {
            commit(&store, vec![WriteOp::Payment(p.clone())]);
        }
        drop(store);
        let store = crate::store::Store::open(dir.path(), crate::store::Durability::FlushOnly)
            .expect("reopen");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let trees = &store.trees;
        while [&trees.payments, &trees.idempotency].map(|t| t.key_filter_built()) != [Some(true); 2]
        {
            assert!(std::time::Instant::now() < deadline, "filter never built");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let after = payment("o-after", PaymentStatus::Processing);
        commit(&store, vec![WriteOp::Payment(after.clone())]);
        for p in before.iter().chain([&after]) {
            assert_eq!(
                store
                    .payment_by_order("m_demo", &p.order_no)
                    .unwrap()
                    .as_ref(),
                Some(p)
            );
        }
        assert_eq!(store.payment_by_order("m_demo", "o-new").unwrap(), None);
    }
}
