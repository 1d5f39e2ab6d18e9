//! The sandbox's webhook sender: Stripe events (docs.stripe.com/api/events/object), signed
//! with the `Stripe-Signature` scheme, POSTed to one configured URL.
//!
//! Modes, for testing a receiver: `normal` sends each event once; `duplicate` sends each
//! event twice; `out-of-order` holds each event until the next one and sends the newer
//! first (a lone event goes out after [`OUT_OF_ORDER_HOLD`]). Each delivery is tried up to
//! [`DELIVERY_ATTEMPTS_MAX`] times; the queue is bounded ([`QUEUE_MAX`], newer events are
//! dropped with a warning when it is full).

use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::clock::{Clock, SharedClock};
use crate::provider::signature;
use crate::provider::stripe::STRIPE_VERSION;

/// Events waiting to be sent at most.
pub const QUEUE_MAX: usize = 1_024;
/// Tries per delivery.
pub const DELIVERY_ATTEMPTS_MAX: u32 = 3;
/// Pause between tries, doubled each time.
const RETRY_DELAY_FIRST: Duration = Duration::from_millis(200);
/// How long `out-of-order` holds a lone event for a successor.
pub const OUT_OF_ORDER_HOLD: Duration = Duration::from_millis(300);
/// Deadline of one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebhookMode {
    Normal,
    Duplicate,
    OutOfOrder,
}

/// Where events go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
    pub mode: WebhookMode,
}

/// Hands events to the sender task; a no-op without a target.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Value>>,
    /// What dates the events (`created`) and signs them (`Stripe-Signature`'s `t`).
    clock: SharedClock,
}

impl EventSink {
    /// Starts the sender task for `target` on the current runtime; events are dated and
    /// signed on `clock`.
    pub fn start(target: Option<WebhookTarget>, clock: SharedClock) -> EventSink {
        let Some(target) = target else {
            return EventSink { tx: None, clock };
        };
        let (tx, rx) = mpsc::channel(QUEUE_MAX);
        tokio::spawn(run(target, rx, Arc::clone(&clock)));
        EventSink {
            tx: Some(tx),
            clock,
        }
    }

    /// Queues the event `kind` about `object`.
    pub fn emit(&self, kind: &str, object: Value, idempotency_key: Option<&str>) {
        let Some(tx) = &self.tx else { return };
        let event = json!({
            "id": crate::domain::ids::new_id("evt_"),
            "object": "event",
            "api_version": STRIPE_VERSION,
            "created": self.clock.now_ms() / 1000,
            "data": {"object": object},
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": idempotency_key},
            "type": kind,
        });
        if tx.try_send(event).is_err() {
            tracing::warn!(
                operation = "sandbox_webhook",
                "event queue full; event dropped"
            );
        }
    }
}

async fn run(target: WebhookTarget, mut rx: mpsc::Receiver<Value>, clock: SharedClock) {
    let client = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut held: Option<Value> = None;
    loop {
        let next = match (&held, target.mode) {
            (Some(_), WebhookMode::OutOfOrder) => {
                match tokio::time::timeout(OUT_OF_ORDER_HOLD, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if let Some(event) = held.take() {
                            deliver(&client, &target, &event, clock.as_ref()).await;
                        }
                        continue;
                    }
                }
            }
            _ => rx.recv().await,
        };
        let Some(event) = next else { return };
        match target.mode {
            WebhookMode::Normal => deliver(&client, &target, &event, clock.as_ref()).await,
            WebhookMode::Duplicate => {
                deliver(&client, &target, &event, clock.as_ref()).await;
                deliver(&client, &target, &event, clock.as_ref()).await;
            }
            WebhookMode::OutOfOrder => match held.take() {
                Some(older) => {
                    deliver(&client, &target, &event, clock.as_ref()).await;
                    deliver(&client, &target, &older, clock.as_ref()).await;
                }
                None => held = Some(event),
            },
        }
    }
}

/// Signs (on `clock`) and POSTs one event, retrying a few times on failure.
async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    event: &Value,
    clock: &dyn Clock,
) {
    let body = event.to_string();
    let mut delay = RETRY_DELAY_FIRST;
    for attempt in 1..=DELIVERY_ATTEMPTS_MAX {
        let now_s = clock.now_ms() / 1000;
        let result = client
            .post(&target.url)
            .header("Content-Type", "application/json")
            .header(
                "Stripe-Signature",
                signature::header(&target.secret, now_s, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(
                operation = "sandbox_webhook",
                attempt,
                status = r.status().as_u16(),
                "delivery refused"
            ),
            Err(_) => tracing::warn!(operation = "sandbox_webhook", attempt, "delivery failed"),
        }
        crate::clock::sleep(clock, delay).await;
        delay *= 2;
    }
}
