//! Provider webhooks in the domain: the record of a processed event (deduplication by the
//! provider's event id) and the critical `payment.webhook_failed` event for deliveries whose
//! signature is refused.

use serde::{Deserialize, Serialize};

use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::ids::{prefix, IdSource};

/// Milliseconds per minute: `payment.webhook_failed` events are deduplicated per minute
/// and reason, so a flood of forged deliveries makes a bounded number of alerts.
const ALERT_BUCKET_MS: i64 = 60_000;

/// A provider event already applied; a second delivery of its id changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessedWebhook {
    /// The provider's event id (`evt_…`).
    pub id: String,
    /// The provider's event type (`payment_intent.succeeded`, …).
    pub kind: String,
    pub received_at_ms: i64,
}

/// The critical event of a refused delivery. `reason` is a stable word
/// ([`crate::provider::signature::SignatureError::reason`]); the payload never holds the
/// secret, only what helps an operator: the reason, the body's size and SHA-256.
pub fn webhook_failed_event(
    reason: &str,
    body_sha256: &str,
    body_bytes: usize,
    ids: &mut dyn IdSource,
    now_ms: i64,
) -> Event {
    let bucket = now_ms.div_euclid(ALERT_BUCKET_MS);
    let payload = serde_json::json!({
        "reason": reason,
        "body_sha256": body_sha256,
        "body_bytes": body_bytes,
    });
    Event {
        id: ids.next_id(prefix::EVENT),
        kind: kind::PAYMENT_WEBHOOK_FAILED.to_owned(),
        level: EventLevel::Critical,
        source: EventSource::Webhook,
        title: "Provider webhook rejected".to_owned(),
        entity_type: "webhook".to_owned(),
        entity_id: "provider_webhooks".to_owned(),
        dedupe_key: format!("{}:{reason}:{bucket}", kind::PAYMENT_WEBHOOK_FAILED),
        payload: payload.to_string(),
        created_at_ms: now_ms,
    }
}
