//! The `webhook_endpoints` table: merchants' webhook endpoints (DESIGN §3), keyed by
//! merchant id ++ `\0` ++ endpoint id, so one merchant's endpoints are one prefix scan
//! (the committer's fan-out reads them for every merchant event) and no merchant can
//! reach another's by id. At most `webhooks.endpoints_max` per merchant (the HTTP layer
//! checks it before it writes).

use crate::domain::webhook_endpoint::WebhookEndpoint;
use crate::store::tables::Batches;
use crate::store::{codec, Store, StoreError};

/// Most endpoints read for one merchant: the configured maximum is validated below it,
/// so this only bounds a scan of a damaged store.
pub const ENDPOINTS_READ_MAX: usize = 1024;

fn merchant_prefix(merchant_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(merchant_id.len() + 1);
    key.extend_from_slice(merchant_id.as_bytes());
    key.push(0);
    key
}

fn key(merchant_id: &str, id: &str) -> Vec<u8> {
    let mut key = merchant_prefix(merchant_id);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Inserts or replaces `endpoint`.
///
/// # Errors
/// [`StoreError`] on a codec failure.
pub(crate) fn put(b: &mut Batches, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    b.webhook_endpoints.insert(
        key(&endpoint.merchant_id, &endpoint.id),
        codec::encode(endpoint)?,
    );
    Ok(())
}

/// Removes the endpoint `id` of `merchant_id`.
pub(crate) fn remove(b: &mut Batches, merchant_id: &str, id: &str) {
    b.webhook_endpoints.remove(key(merchant_id, id));
}

impl Store {
    /// The merchant's endpoints, in id (creation) order.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn webhook_endpoints(&self, merchant_id: &str) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.trees
            .webhook_endpoints
            .scan_prefix(merchant_prefix(merchant_id))
            .take(ENDPOINTS_READ_MAX)
            .map(|kv| codec::decode(&kv?.1))
            .collect()
    }

    /// The endpoint `id` of `merchant_id` (another merchant's is `None`).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn webhook_endpoint(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        match self.trees.webhook_endpoints.get(key(merchant_id, id))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::webhook_endpoint::{EndpointStatus, WebhookEndpoint};
    use crate::domain::write_set::WriteOp;
    use crate::store::tables::test_support::{commit, open};

    fn endpoint(merchant_id: &str, id: &str) -> WebhookEndpoint {
        WebhookEndpoint {
            id: id.into(),
            merchant_id: merchant_id.into(),
            url: "https://example.com/h".into(),
            description: String::new(),
            enabled_events: vec!["*".into()],
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret: "whsec_a".into(),
            previous_secret: None,
            failing_since_ms: None,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn endpoints_are_kept_per_merchant() {
        let (_dir, store) = open();
        commit(
            &store,
            vec![
                WriteOp::WebhookEndpoint(Box::new(endpoint("m_a", "we_1"))),
                WriteOp::WebhookEndpoint(Box::new(endpoint("m_a", "we_2"))),
                WriteOp::WebhookEndpoint(Box::new(endpoint("m_ab", "we_3"))),
            ],
        );
        let ids: Vec<String> = store
            .webhook_endpoints("m_a")
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["we_1", "we_2"]);
        assert!(store.webhook_endpoint("m_ab", "we_1").unwrap().is_none());
        commit(
            &store,
            vec![WriteOp::RemoveWebhookEndpoint {
                merchant_id: "m_a".into(),
                id: "we_1".into(),
            }],
        );
        assert!(store.webhook_endpoint("m_a", "we_1").unwrap().is_none());
        assert_eq!(store.webhook_endpoints("m_a").unwrap().len(), 1);
    }
}
