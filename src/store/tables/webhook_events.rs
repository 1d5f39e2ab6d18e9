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
