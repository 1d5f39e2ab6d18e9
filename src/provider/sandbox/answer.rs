//! What a sandbox request answers (status, Stripe-shaped body, replay and stall flags, the
//! webhook events it sends), and Stripe's error body (<https://docs.stripe.com/api/errors>).

use serde_json::{json, Value};

/// What one request answers, and what the route does after.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    /// Answer only after the sandbox's stall delay (first call of `pm_sim_timeout`).
    pub stall: bool,
    /// Webhook events to send: (type, object).
    pub events: Vec<(String, Value)>,
}

impl Answer {
    pub fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            replayed: false,
            stall: false,
            events: Vec::new(),
        }
    }

    /// Adds the webhook event `kind` about `object`.
    pub fn with_event(mut self, kind: &str, object: &Value) -> Answer {
        self.events.push((kind.to_owned(), object.clone()));
        self
    }
}

/// A Stripe error answer: `{"error": {type, code, message}}` (a `null` code when none).
pub fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Answer {
    Answer::new(
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}
