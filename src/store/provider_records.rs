//! The store's provider-side records: refunds, the index of provider ids, and the index of
//! money that moved per UTC day (what reconciliation compares).
//!
//! Trees: `refunds` (id → Refund), `refunds_by_payment` (payment_id \0 refund_id → ∅),
//! `refunds_pending` (id → ∅, the refunds to resume at start-up, like `processing`),
//! `provider_ids` (provider id → `p`|`r` ++ our id), `settled_batches` (day ++ ULID → the
//! payments and refunds of one group commit that succeeded that day: [`super::settled`]),
//! `webhook_events` (provider event id →
//! ProcessedWebhook, the webhook dedupe), `reconciliations` (id → report), `discrepancies`
//! (id → discrepancy).

use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::reconciliation::{Discrepancy, ReconciliationReport};
use crate::domain::refund::{Refund, RefundState};
use crate::domain::time::DAY_MS;
use crate::domain::webhook::ProcessedWebhook;
use crate::store::settled::{self, SettledBatches};
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

/// Index writes of a payment: its provider id, and its day once succeeded.
pub(super) fn index_payment(b: &mut Batches, settled: &mut SettledBatches, p: &Payment) {
    if let Some(provider_id) = &p.provider_payment_id {
        b.provider_ids
            .insert(provider_id.as_bytes(), tagged(TAG_PAYMENT, &p.id));
    }
    if let (PaymentStatus::Succeeded, Some(at)) = (p.status, p.succeeded_at_ms) {
        settled.add(day_of_ms(at), TAG_PAYMENT, &p.id);
    }
}

/// Writes of a refund: the record, its payment index, its provider id and its day.
pub(super) fn put_refund(
    b: &mut Batches,
    settled: &mut SettledBatches,
    r: &Refund,
) -> Result<(), StoreError> {
    b.refunds.insert(r.id.as_bytes(), codec::encode(r)?);
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
        settled.add(day_of_ms(at), TAG_REFUND, &r.id);
    }
    Ok(())
}

/// Remembers a processed provider webhook event.
pub(super) fn put_webhook(b: &mut Batches, w: &ProcessedWebhook) -> Result<(), StoreError> {
    b.webhook_events.insert(w.id.as_bytes(), codec::encode(w)?);
    Ok(())
}

/// Stores a reconciliation report.
pub(super) fn put_reconciliation(
    b: &mut Batches,
    r: &ReconciliationReport,
) -> Result<(), StoreError> {
    b.reconciliations.insert(r.id.as_bytes(), codec::encode(r)?);
    Ok(())
}

/// Stores (or replaces) a discrepancy.
pub(super) fn put_discrepancy(b: &mut Batches, d: &Discrepancy) -> Result<(), StoreError> {
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

    /// The processed provider webhook event `id`, if it was processed.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn webhook_event(&self, id: &str) -> Result<Option<ProcessedWebhook>, StoreError> {
        self.trees
            .webhook_events
            .get(id.as_bytes())?
            .map(|v| codec::decode(&v))
            .transpose()
    }

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

    /// Which of our records a provider id names.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O failure.
    pub fn by_provider_id(&self, provider_id: &str) -> Result<Option<OurRecord>, StoreError> {
        let Some(v) = self.trees.provider_ids.get(provider_id.as_bytes())? else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&v[1..]).into_owned();
        Ok(match v.first() {
            Some(&TAG_PAYMENT) => Some(OurRecord::Payment(id)),
            Some(&TAG_REFUND) => Some(OurRecord::Refund(id)),
            _ => None,
        })
    }

    /// Our payments and refunds that succeeded on UTC day `day` (Unix days), each once,
    /// at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn settled_on_day(&self, day: i64, limit: usize) -> Result<Vec<OurRecord>, StoreError> {
        let records = settled::on_day(&self.trees, day, limit)?;
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

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of_ms(0), 0);
        assert_eq!(day_of_ms(DAY_MS - 1), 0);
        assert_eq!(day_of_ms(DAY_MS), 1);
        assert_eq!(day_of_ms(-1), -1);
    }
}
