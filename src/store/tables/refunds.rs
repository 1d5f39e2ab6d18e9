//! The refund tables, and what reconciliation reads of our side: `refunds` (id → Refund),
//! `refunds_by_payment` (payment_id \0 refund_id → ∅), `refunds_pending` (id → ∅, the
//! refunds to resume at start-up, like `processing`), `provider_ids` (a refund's provider
//! id → `r` ++ refund id); the payments and refunds settled per UTC day are in the journal
//! ([`super::journal`]).

use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::refund::{Refund, RefundState};
use crate::domain::time::DAY_MS;
use crate::store::journal::{self, JournalRecord, Settled};
use crate::store::{codec, Batches, Store, StoreError};

/// Tag of a payment in `provider_ids` and the settlement index.
const TAG_PAYMENT: u8 = b'p';
/// Tag of a refund in `provider_ids` and the settlement index.
const TAG_REFUND: u8 = b'r';

/// What a provider id names on our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OurRecord {
    Payment(String),
    Refund(String),
}

/// The UTC day (Unix days) of a Unix-ms instant.
pub fn day_of_ms(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(DAY_MS)
}

fn tagged(tag: u8, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + 1);
    out.push(tag);
    out.extend_from_slice(id.as_bytes());
    out
}

fn by_payment_key(payment_id: &str, refund_id: &str) -> Vec<u8> {
    let mut out = payment_id.as_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(refund_id.as_bytes());
    out
}

/// Index writes of a payment: its day once succeeded. A payment's provider id is not
/// indexed: the provider's record names the payment key (`metadata[merchant_id]`,
/// `metadata[order_no]`), from which the payment id follows (`ids::payment_id`), so
/// webhooks and reconciliation find the payment through the provider (DESIGN §2).
pub(crate) fn index_payment(journal: &mut JournalRecord, p: &Payment) {
    if let (PaymentStatus::Succeeded, Some(at)) = (p.status, p.succeeded_at_ms) {
        journal.settled.push(Settled {
            day: day_of_ms(at),
            tag: TAG_PAYMENT,
            id: p.id.clone(),
        });
    }
}

/// Writes of a refund: the record, its payment index, its provider id and its day.
pub(crate) fn put_refund(b: &mut Batches, journal: &mut JournalRecord, r: &Refund, value: Vec<u8>) {
    b.refunds.insert(r.id.as_bytes(), value);
    b.refunds_by_payment
        .insert(by_payment_key(&r.payment_id, &r.id), []);
    if r.status == RefundState::Pending {
        b.refunds_pending.insert(r.id.as_bytes(), []);
    } else {
        b.refunds_pending.remove(r.id.as_bytes());
    }
    if let Some(provider_id) = &r.provider_refund_id {
        b.provider_ids
            .insert(provider_id.as_bytes(), tagged(TAG_REFUND, &r.id));
    }
    if let (RefundState::Succeeded, Some(at)) = (r.status, r.succeeded_at_ms) {
        journal.settled.push(Settled {
            day: day_of_ms(at),
            tag: TAG_REFUND,
            id: r.id.clone(),
        });
    }
}

impl Store {
    /// The refund `id`, as last committed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn refund(&self, id: &str) -> Result<Option<Refund>, StoreError> {
        self.trees
            .refunds
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The refunds of a payment, oldest first (bounded by `REFUNDS_PER_PAYMENT_MAX`, which
    /// the state machine enforces).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn refunds_of_payment(&self, payment_id: &str) -> Result<Vec<Refund>, StoreError> {
        let mut prefix = payment_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.trees.refunds_by_payment.scan_prefix(&prefix) {
            let (k, _) = kv?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if let Some(refund) = self.refund(&id)? {
                out.push(refund);
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    /// The id of our refund with provider id `provider_refund_id` (refunds are indexed by
    /// provider id; payments are found through the provider's record of their payment key).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn refund_by_provider_id(
        &self,
        provider_refund_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(v) = self.trees.provider_ids.get(provider_refund_id.as_bytes())? else {
            return Ok(None);
        };
        Ok((v.first() == Some(&TAG_REFUND)).then(|| String::from_utf8_lossy(&v[1..]).into_owned()))
    }

    /// Our payments and refunds that succeeded on UTC day `day` (Unix days), each once,
    /// at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn settled_on_day(&self, day: i64, limit: usize) -> Result<Vec<OurRecord>, StoreError> {
        let records = journal::settled_on_day(&self.trees, day, limit)?;
        Ok(records
            .into_iter()
            .filter_map(|(tag, id)| match tag {
                TAG_PAYMENT => Some(OurRecord::Payment(id)),
                TAG_REFUND => Some(OurRecord::Refund(id)),
                _ => None,
            })
            .collect())
    }

    /// Refunds left `pending` (start-up recovery resumes their payments' keys).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn pending_refunds(&self) -> Result<Vec<Refund>, StoreError> {
        let mut out = Vec::new();
        for kv in self.trees.refunds_pending.iter() {
            let (k, _) = kv?;
            if let Some(refund) = self.refund(&String::from_utf8_lossy(&k))? {
                out.push(refund);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::idempotency::{IdempotencyKey, KeyScope};
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    fn refund(id: &str, status: RefundState, provider_id: Option<&str>) -> Refund {
        Refund {
            id: id.into(),
            payment_id: "pay_1".into(),
            merchant_id: "m_demo".into(),
            amount: 100,
            fee: 0,
            currency: "USD".into(),
            status,
            reason: None,
            operator_id: "op".into(),
            provider_refund_id: provider_id.map(Into::into),
            failure_code: None,
            failure_message: None,
            idempotency_key: IdempotencyKey {
                merchant_id: "m_demo".into(),
                scope: KeyScope::Refund(id.into()),
            },
            created_at_ms: 5,
            updated_at_ms: 5,
            succeeded_at_ms: (status == RefundState::Succeeded).then_some(DAY_MS + 5),
        }
    }

    /// A refund is listed under its payment, in `refunds_pending` while pending, by its
    /// provider id once it has one, and in its day's settlements once it succeeded.
    #[test]
    fn a_refund_keeps_its_indexes_in_step() {
        let (_dir, store) = open();
        commit(
            &store,
            vec![WriteOp::Refund(refund("re_1", RefundState::Pending, None))],
        );
        assert_eq!(store.pending_refunds().unwrap().len(), 1);
        assert_eq!(store.refunds_of_payment("pay_1").unwrap().len(), 1);
        assert_eq!(store.refund_by_provider_id("re_prov_1").unwrap(), None);

        let done = refund("re_1", RefundState::Succeeded, Some("re_prov_1"));
        commit(&store, vec![WriteOp::Refund(done.clone())]);
        assert!(store.pending_refunds().unwrap().is_empty());
        assert_eq!(
            store.refunds_of_payment("pay_1").unwrap(),
            vec![done.clone()]
        );
        assert_eq!(
            store.refund_by_provider_id("re_prov_1").unwrap().as_deref(),
            Some("re_1")
        );
        assert_eq!(store.refunds_of_payment("pay_2").unwrap(), vec![]);
        // Committed today, settled on day 1: found only if its record is in day 1's scan.
        assert!(store.settled_on_day(1, 10).unwrap().is_empty());
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of_ms(0), 0);
        assert_eq!(day_of_ms(DAY_MS - 1), 0);
        assert_eq!(day_of_ms(DAY_MS), 1);
        assert_eq!(day_of_ms(-1), -1);
    }
}
