//! The `webhook_events` table: provider event id → the processed event (type, when it was
//! received), the provider webhooks' dedupe; swept after `retention.webhook_event_ids_days`.

use std::ops::Bound;

use crate::domain::webhook::ProcessedWebhook;
use crate::store::engine::codec;
use crate::store::tables::Batches;
use crate::store::{Store, StoreError};

/// Remembers a processed provider webhook event.
pub(crate) fn put_webhook(b: &mut Batches, w: &ProcessedWebhook) -> Result<(), StoreError> {
    b.webhook_events.insert(w.id.as_bytes(), codec::encode(w)?);
    Ok(())
}

impl Store {
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
    /// Up to `limit` provider webhook records with an id after `after`, in id order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn webhook_events_after(
        &self,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, ProcessedWebhook)>, StoreError> {
        let start = if after.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(after.to_vec())
        };
        self.trees
            .webhook_events
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), codec::decode(&v)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::webhook::ProcessedWebhook;
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    fn processed(id: &str) -> ProcessedWebhook {
        ProcessedWebhook {
            id: id.into(),
            kind: "payment_intent.succeeded".into(),
            received_at_ms: 7,
        }
    }

    /// Provider event ids are keyed by themselves, read in id order from a cursor, and
    /// forgotten by the retention sweep.
    #[test]
    fn webhook_ids_are_read_in_id_order_and_removed() {
        let (_dir, store) = open();
        commit(
            &store,
            vec![
                WriteOp::WebhookEvent(processed("evt_b")),
                WriteOp::WebhookEvent(processed("evt_a")),
                WriteOp::WebhookEvent(processed("evt_c")),
            ],
        );
        assert_eq!(
            store.webhook_event("evt_a").unwrap(),
            Some(processed("evt_a"))
        );
        let after_a: Vec<Vec<u8>> = store
            .webhook_events_after(b"evt_a", 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(after_a, vec![b"evt_b".to_vec(), b"evt_c".to_vec()]);
        commit(
            &store,
            vec![WriteOp::RemoveWebhookEvent { id: "evt_b".into() }],
        );
        assert_eq!(store.webhook_event("evt_b").unwrap(), None);
        assert_eq!(store.webhook_events_after(&[], 10).unwrap().len(), 2);
    }
}
