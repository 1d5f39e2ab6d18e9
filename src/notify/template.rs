//! The message of an event, before any channel formats it: title, level, and the lines an
//! operator reads (amount in major units with its currency, payment id, order number,
//! failure reason). Each channel renders it in its own markup.

use serde_json::Value;

use crate::domain::event::{Event, EventLevel};
use crate::domain::time::format_rfc3339_ms;

/// Longest value shown on one line, in characters (merchant text can be long).
const LINE_VALUE_CHARS_MAX: usize = 200;

/// A channel-neutral message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub level: EventLevel,
    pub kind: String,
    /// (label, value) pairs in display order.
    pub lines: Vec<(&'static str, String)>,
    pub event_id: String,
    pub created_at: String,
}

impl Message {
    /// The message of `event`, with the payload fields that exist.
    pub fn of(event: &Event) -> Message {
        let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let text = |key: &str| -> Option<String> {
            match payload.get(key)? {
                Value::String(s) if !s.is_empty() => Some(clip(s)),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let mut lines = Vec::new();
        let fields: [(&'static str, &str); 6] = [
            ("Amount", "amount_display"),
            ("Payment", "payment_id"),
            ("Order", "order_no"),
            ("Merchant", "merchant_id"),
            ("Failure", "failure_message"),
            ("Detail", "detail"),
        ];
        for (label, key) in fields {
            if let Some(value) = text(key) {
                lines.push((label, value));
            }
        }
        if let Some(code) = text("failure_code") {
            lines.push(("Code", code));
        }
        lines.push(("Event", format!("{} ({})", event.kind, event.id)));
        Message {
            title: event.title.clone(),
            level: event.level,
            kind: event.kind.clone(),
            lines,
            event_id: event.id.clone(),
            created_at: format_rfc3339_ms(event.created_at_ms),
        }
    }

    /// `INFO`, `WARNING`, `CRITICAL`.
    pub fn level_label(&self) -> &'static str {
        match self.level {
            EventLevel::Info => "INFO",
            EventLevel::Warning => "WARNING",
            EventLevel::Critical => "CRITICAL",
        }
    }

    /// `[LEVEL] title`.
    pub fn headline(&self) -> String {
        format!("[{}] {}", self.level_label(), self.title)
    }

    /// The headline and one `Label: value` line each, newline-separated.
    pub fn plain_text(&self) -> String {
        let mut out = self.headline();
        for (label, value) in &self.lines {
            out.push('\n');
            out.push_str(label);
            out.push_str(": ");
            out.push_str(value);
        }
        out
    }
}

fn clip(text: &str) -> String {
    text.chars().take(LINE_VALUE_CHARS_MAX).collect()
}

/// Escapes `&`, `<`, `>` (and quotes) for HTML bodies (Telegram HTML mode, e-mail).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::event::EventSource;

    pub(crate) fn paid_event() -> Event {
        Event {
            id: "evt_1".into(),
            kind: "payment.succeeded".into(),
            level: EventLevel::Info,
            source: EventSource::Payment,
            title: "Order paid".into(),
            entity_type: "payment".into(),
            entity_id: "pay_1".into(),
            dedupe_key: "payment.succeeded:pay_1".into(),
            payload: serde_json::json!({
                "payment_id": "pay_1", "order_no": "o-<1>", "amount": 1999,
                "currency": "USD", "amount_display": "19.99 USD", "merchant_id": "m_demo",
                "failure_code": null,
            })
            .to_string(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn messages_carry_amount_payment_and_order() {
        let m = Message::of(&paid_event());
        assert_eq!(m.headline(), "[INFO] Order paid");
        let text = m.plain_text();
        assert!(text.contains("Amount: 19.99 USD"), "{text}");
        assert!(text.contains("Payment: pay_1"));
        assert!(text.contains("Order: o-<1>"));
        assert!(!text.contains("Code"));
        assert_eq!(escape_html("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
