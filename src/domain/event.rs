//! Outbox events (DESIGN §3): written in the same atomic write set as the state change that
//! causes them; `dedupe_key` is unique, a second event with the same key is dropped.

use serde::{Deserialize, Serialize};

use crate::domain::ids::{prefix, IdSource};
use crate::domain::money::format_major;
use crate::domain::payment::{Payment, PaymentStatus, PaymentView};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    Payment,
    Refund,
    Webhook,
    Reconciliation,
    System,
}

/// Event types of DESIGN §3.
pub mod kind {
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    /// A create answered 202: the provider has not answered for good yet (merchant
    /// endpoints only; operators hear of the outcome).
    pub const PAYMENT_PROCESSING: &str = "payment.processing";
    pub const REFUND_SUCCEEDED: &str = "refund.succeeded";
    pub const REFUND_FAILED: &str = "refund.failed";
    pub const PAYMENT_WEBHOOK_FAILED: &str = "payment.webhook_failed";
    pub const RECONCILIATION_DISCREPANCIES_FOUND: &str = "reconciliation.discrepancies_found";
    pub const NOTIFICATION_TEST: &str = "notification.test";
    /// DESIGN §6: `paykeep serve --accept-data-loss` started on a store it could not vouch for.
    pub const SYSTEM_STORE_RECOVERED_WITH_LOSS: &str = "system.store_recovered_with_loss";
    /// Issue 17's system alerts, raised by `alerts::watcher`.
    pub const SYSTEM_PROVIDER_UNAVAILABLE: &str = "system.provider_unavailable";
    pub const SYSTEM_CHANNEL_PAUSED: &str = "system.channel_paused";
    pub const SYSTEM_DEAD_LETTERS: &str = "system.dead_letters";
    pub const SYSTEM_STORE_REFUSING_WRITES: &str = "system.store_refusing_writes";
    /// DESIGN §3: paykeep disabled a merchant's webhook endpoint (410, or failing for
    /// `webhooks.disable_after_s`); an operator alert.
    pub const WEBHOOK_ENDPOINT_DISABLED: &str = "webhook_endpoint.disabled";

    /// Every type above, listed beside them: the OpenAPI document's enum of event types
    /// (`/admin/events`) is this list. A type added above belongs here too.
    pub const ALL: &[&str] = &[
        PAYMENT_SUCCEEDED,
        PAYMENT_FAILED,
        PAYMENT_PROCESSING,
        REFUND_SUCCEEDED,
        REFUND_FAILED,
        PAYMENT_WEBHOOK_FAILED,
        RECONCILIATION_DISCREPANCIES_FOUND,
        NOTIFICATION_TEST,
        SYSTEM_STORE_RECOVERED_WITH_LOSS,
        SYSTEM_PROVIDER_UNAVAILABLE,
        SYSTEM_CHANNEL_PAUSED,
        SYSTEM_DEAD_LETTERS,
        SYSTEM_STORE_REFUSING_WRITES,
        WEBHOOK_ENDPOINT_DISABLED,
    ];
}

/// The event types a merchant receives (DESIGN §3): its payments and refunds, nothing of
/// the operator's (alerts, reconciliation, tests).
pub const MERCHANT_EVENT_TYPES: &[&str] = &[
    kind::PAYMENT_PROCESSING,
    kind::PAYMENT_SUCCEEDED,
    kind::PAYMENT_FAILED,
    kind::REFUND_SUCCEEDED,
    kind::REFUND_FAILED,
];

/// Whether events of type `event_kind` go to merchants.
pub fn is_merchant_event(event_kind: &str) -> bool {
    MERCHANT_EVENT_TYPES.contains(&event_kind)
}

/// One outbox event. `payload` is a JSON object kept as text (the store codec is bincode,
/// which cannot carry free-form JSON values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub level: EventLevel,
    pub source: EventSource,
    pub title: String,
    pub entity_type: String,
    pub entity_id: String,
    pub dedupe_key: String,
    pub payload: String,
    pub created_at_ms: i64,
}

impl Event {
    /// `payment.succeeded` (info, "Order paid") or `payment.failed` (warning) for `payment`'s
    /// current attempt. Dedupe keys: `payment.succeeded:{id}`, `payment.failed:{id}:{attempt}`.
    pub fn for_payment_outcome(payment: &Payment, ids: &mut dyn IdSource, now_ms: i64) -> Event {
        let succeeded = payment.status == PaymentStatus::Succeeded;
        let (kind, level, title, dedupe_key) = if succeeded {
            (
                kind::PAYMENT_SUCCEEDED,
                EventLevel::Info,
                "Order paid",
                format!("{}:{}", kind::PAYMENT_SUCCEEDED, payment.id),
            )
        } else {
            (
                kind::PAYMENT_FAILED,
                EventLevel::Warning,
                "Payment failed",
                format!(
                    "{}:{}:{}",
                    kind::PAYMENT_FAILED,
                    payment.id,
                    payment.attempt_count
                ),
            )
        };
        let outcome = Outcome {
            failure_code: payment.failure_code.as_deref(),
            failure_message: payment.failure_message.as_deref(),
            provider_payment_id: payment.provider_payment_id.as_deref(),
        };
        payment_event(
            payment,
            (kind, level, title),
            dedupe_key,
            payment_payload(payment, Some(outcome)),
            ids,
            now_ms,
        )
    }

    /// `payment.processing` (info) for `payment`'s current attempt: its create answered 202.
    /// Dedupe key `payment.processing:{id}:{attempt}`. Payload: what a merchant needs
    /// (`merchant_id`, the payment as `object`); operators are not sent it
    /// (`notify::fanout`).
    pub fn for_payment_processing(payment: &Payment, ids: &mut dyn IdSource, now_ms: i64) -> Event {
        let kind = kind::PAYMENT_PROCESSING;
        let dedupe_key = format!("{kind}:{}:{}", payment.id, payment.attempt_count);
        let head = (kind, EventLevel::Info, "Payment processing");
        payment_event(
            payment,
            head,
            dedupe_key,
            payment_payload(payment, None),
            ids,
            now_ms,
        )
    }

    /// The merchant the event belongs to: the `merchant_id` of a merchant event type's
    /// payload (`None` for the operator's own events).
    pub fn merchant_id(&self) -> Option<String> {
        if !is_merchant_event(&self.kind) {
            return None;
        }
        // Runs in the committer for every merchant event: read the one member, skip the
        // rest without building a tree.
        #[derive(Deserialize)]
        struct Owner<'a> {
            #[serde(borrow)]
            merchant_id: Option<std::borrow::Cow<'a, str>>,
        }
        let owner: Owner<'_> = serde_json::from_str(&self.payload).ok()?;
        owner.merchant_id.map(std::borrow::Cow::into_owned)
    }

    /// The event as a merchant sees it (`GET /v1/events/{id}`, and the body of a delivery
    /// to its endpoints): `{id, object: "event", type, created_at, data: {object}}`, where
    /// `data.object` is the payment or refund as the merchant API answered it then. A
    /// payment's merchant text (`description`, `customer_email`, `metadata`, up to tens of
    /// KiB) is not copied into every event ([`payment_object`]): it is taken from
    /// `payment`, the payment as stored now, when that is the event's.
    pub fn merchant_view(&self, payment: Option<&Payment>) -> serde_json::Value {
        let payload: serde_json::Value =
            serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null);
        let mut object = payload
            .get("object")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if let (Some(fields), Some(payment)) = (object.as_object_mut(), payment) {
            let is_this_payment = fields.get("object").and_then(|v| v.as_str()) == Some("payment")
                && fields.get("id").and_then(|v| v.as_str()) == Some(payment.id.as_str());
            if is_this_payment {
                let full = serde_json::to_value(payment.view(&[])).unwrap_or_default();
                for key in PAYMENT_TEXT_FIELDS {
                    if !fields.contains_key(*key) {
                        fields.insert((*key).to_owned(), full[*key].clone());
                    }
                }
            }
        }
        serde_json::json!({
            "id": self.id,
            "object": "event",
            "type": self.kind,
            "created_at": crate::domain::time::format_rfc3339_ms(self.created_at_ms),
            "data": {"object": object},
        })
    }
}

/// The payment fields that hold the merchant's own text, up to tens of KiB together: kept
/// in the payment record only, not in each of its events' `object`.
pub const PAYMENT_TEXT_FIELDS: &[&str] = &["description", "customer_email", "metadata"];

/// The payment as the merchant API answers it (no refunds: an event about a payment's
/// outcome comes before any), without [`PAYMENT_TEXT_FIELDS`]: the snapshot an event keeps.
pub fn payment_object(payment: &Payment) -> PaymentView<'_> {
    PaymentView {
        text: None,
        ..payment.view(&[])
    }
}

/// The members a payment event's payload adds once the charge was answered.
#[derive(Serialize)]
struct Outcome<'a> {
    failure_code: Option<&'a str>,
    failure_message: Option<&'a str>,
    provider_payment_id: Option<&'a str>,
}

/// The payload of a payment event: the payment's key facts, the [`Outcome`] members for an
/// outcome, and the payment itself as `object` ([`payment_object`]). Serialized straight
/// to its JSON text (this runs for every create).
#[derive(Serialize)]
struct PaymentPayload<'a> {
    payment_id: &'a str,
    merchant_id: &'a str,
    order_no: &'a str,
    amount: u64,
    currency: &'a str,
    amount_display: String,
    status: PaymentStatus,
    attempt_count: u32,
    #[serde(flatten)]
    outcome: Option<Outcome<'a>>,
    object: PaymentView<'a>,
}

/// The JSON text of a payment event's payload ([`PaymentPayload`]).
fn payment_payload(payment: &Payment, outcome: Option<Outcome<'_>>) -> String {
    let payload = PaymentPayload {
        payment_id: &payment.id,
        merchant_id: &payment.merchant_id,
        order_no: &payment.order_no,
        amount: payment.amount,
        currency: &payment.currency,
        amount_display: format_major(payment.amount, &payment.currency),
        status: payment.status,
        attempt_count: payment.attempt_count,
        outcome,
        object: payment_object(payment),
    };
    // Serializing plain strings, numbers and maps of strings into JSON cannot fail.
    serde_json::to_string(&payload).unwrap_or_default()
}

/// An event about `payment`: `head` is its type, level and title.
fn payment_event(
    payment: &Payment,
    head: (&str, EventLevel, &str),
    dedupe_key: String,
    payload: String,
    ids: &mut dyn IdSource,
    now_ms: i64,
) -> Event {
    let (kind, level, title) = head;
    Event {
        id: ids.next_id(prefix::EVENT),
        kind: kind.to_owned(),
        level,
        source: EventSource::Payment,
        title: title.to_owned(),
        entity_type: "payment".to_owned(),
        entity_id: payment.id.clone(),
        dedupe_key,
        payload,
        created_at_ms: now_ms,
    }
}

/// The critical event of a start with `--accept-data-loss` on a damaged store (DESIGN §6):
/// what recovery found, what it dropped (one line each) and where the unused files were
/// moved. One per start: the dedupe key carries the start's time.
pub fn store_recovered_with_loss_event(
    findings: &[String],
    dropped: &[String],
    moved_to: &str,
    ids: &mut dyn IdSource,
    now_ms: i64,
) -> Event {
    let payload = serde_json::json!({
        "findings": findings,
        "dropped": dropped,
        "moved_to": moved_to,
    });
    Event {
        id: ids.next_id(prefix::EVENT),
        kind: kind::SYSTEM_STORE_RECOVERED_WITH_LOSS.to_owned(),
        level: EventLevel::Critical,
        source: EventSource::System,
        title: "Store started with data loss".to_owned(),
        entity_type: "system".to_owned(),
        entity_id: "store".to_owned(),
        dedupe_key: format!("{}:{now_ms}", kind::SYSTEM_STORE_RECOVERED_WITH_LOSS),
        payload: payload.to_string(),
        created_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::SequentialIds;
    use crate::domain::test_fixtures::paid_payment;

    fn payment_with_text() -> Payment {
        let mut payment = paid_payment("pay_1", "m_demo", "order-1", 1999, 1_764_600_000_000);
        payment.description = Some("two <b>mugs</b>".into());
        payment.customer_email = Some("a@example.com".into());
        payment.metadata.insert("cart".into(), "42".into());
        payment
    }

    fn payload_of(event: &Event) -> serde_json::Value {
        serde_json::from_str(&event.payload).expect("the payload is JSON")
    }

    /// The outcome's payload has the key facts, the outcome members (null when absent) and
    /// the payment as `object`, without the merchant's text: exactly what the merchant API
    /// answers for the payment, less [`PAYMENT_TEXT_FIELDS`].
    #[test]
    fn outcome_payload_holds_the_payment_without_its_text() {
        let payment = payment_with_text();
        let event = Event::for_payment_outcome(&payment, &mut SequentialIds::default(), 1);
        let payload = payload_of(&event);
        assert_eq!(payload["payment_id"], "pay_1");
        assert_eq!(payload["merchant_id"], "m_demo");
        assert_eq!(payload["order_no"], "order-1");
        assert_eq!(payload["amount"], 1999);
        assert_eq!(payload["currency"], "USD");
        assert_eq!(payload["amount_display"], format_major(1999, "USD"));
        assert_eq!(payload["status"], "succeeded");
        assert_eq!(payload["attempt_count"], 1);
        assert_eq!(payload["provider_payment_id"], "pi_1");
        assert!(payload["failure_code"].is_null() && payload.get("failure_code").is_some());
        assert!(payload["failure_message"].is_null() && payload.get("failure_message").is_some());
        let mut full: serde_json::Value = serde_json::from_str(&payment.to_json()).unwrap();
        for key in PAYMENT_TEXT_FIELDS {
            assert!(full.get(*key).is_some(), "the merchant API answers {key}");
            full.as_object_mut().unwrap().remove(*key);
        }
        assert_eq!(payload["object"], full);
        assert_eq!(payload.as_object().unwrap().len(), 12);
    }

    #[test]
    fn processing_payload_has_no_outcome_members() {
        let mut payment = payment_with_text();
        payment.status = PaymentStatus::Processing;
        let event = Event::for_payment_processing(&payment, &mut SequentialIds::default(), 1);
        let payload = payload_of(&event);
        for key in ["failure_code", "failure_message", "provider_payment_id"] {
            assert!(payload.get(key).is_none(), "{key} is an outcome member");
        }
        assert_eq!(payload["status"], "processing");
    }

    /// The merchant's view of the event puts the text back from the stored payment: its
    /// `data.object` is the payment as the merchant API answers it.
    #[test]
    fn merchant_view_restores_the_text() {
        let payment = payment_with_text();
        let event = Event::for_payment_outcome(&payment, &mut SequentialIds::default(), 1);
        let view = event.merchant_view(Some(&payment));
        let full: serde_json::Value = serde_json::from_str(&payment.to_json()).unwrap();
        assert_eq!(view["data"]["object"], full);
        assert_eq!(view["type"], kind::PAYMENT_SUCCEEDED);
    }
}
