//! Deliveries (DESIGN §3): one outbox event to one target of one channel, with every
//! attempt recorded. Pure data and pure transitions; the notifier decides *what* happened
//! on the wire, this file decides what that does to the record.
//!
//! States: `pending → sending → delivered`, or `retry_scheduled` (with `next_attempt_at`),
//! or `dead` (with a reason), or `paused` while the channel's credentials are rejected.

use serde::{Deserialize, Serialize};

use crate::domain::time::format_rfc3339_ms;

/// Attempts kept on a record; older ones are dropped first (a redriven delivery may make
/// more attempts than `notifications.max_attempts` over its life).
pub const ATTEMPTS_KEPT_MAX: usize = 100;
/// Longest error text kept per attempt, in bytes (a response body can be anything).
pub const ERROR_TEXT_BYTES_MAX: usize = 300;

/// Most targets one event fans out to (a delivery id carries a three-digit index).
pub const TARGETS_PER_EVENT_MAX: usize = 999;

/// The id of the `index`-th delivery of event `event_id`: `dlv_`, the event id without its
/// `evt_` prefix, and a three-digit index. Deliveries of one event share a prefix and sort
/// in event order, like the event ids (ULIDs) they derive from.
pub fn delivery_id(event_id: &str, index: usize) -> String {
    let stem: String = event_id
        .strip_prefix(crate::domain::ids::prefix::EVENT)
        .unwrap_or(event_id)
        .chars()
        .filter(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        .collect();
    format!(
        "{}{stem}{:03}",
        crate::domain::ids::prefix::DELIVERY,
        index.min(TARGETS_PER_EVENT_MAX)
    )
}

/// What an event fans out to, decided at commit time by the settings then, stored in one
/// record beside the event (the payment's write set stays small). The dispatcher expands
/// it into [`Delivery`] records (all `pending`, created with the event) shortly after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutPlan {
    pub event_id: String,
    pub event_kind: String,
    pub created_at_ms: i64,
    /// (channel, target) per delivery, in delivery-index order.
    pub targets: Vec<(Channel, String)>,
}

impl FanOutPlan {
    /// The planned deliveries of the event stored at `event_seq`, as `pending` records.
    pub fn deliveries(&self, event_seq: u64) -> Vec<Delivery> {
        self.targets
            .iter()
            .enumerate()
            .map(|(index, (channel, target))| {
                Delivery::new(
                    delivery_id(&self.event_id, index),
                    (&self.event_id, event_seq, &self.event_kind),
                    *channel,
                    target.clone(),
                    self.created_at_ms,
                )
            })
            .collect()
    }
}

/// A notification channel (DESIGN §3 "Channels").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Telegram,
    Slack,
    Discord,
    Feishu,
    Email,
    Webhook,
}

impl Channel {
    /// Every channel, in a fixed order ([`Channel::index`]).
    pub const ALL: [Channel; 6] = [
        Channel::Telegram,
        Channel::Slack,
        Channel::Discord,
        Channel::Feishu,
        Channel::Email,
        Channel::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Slack => "slack",
            Channel::Discord => "discord",
            Channel::Feishu => "feishu",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Position in [`Channel::ALL`], for per-channel arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Delivered,
    RetryScheduled,
    Dead,
    Paused,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Delivered,
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::Dead,
        DeliveryStatus::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::RetryScheduled => "retry_scheduled",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Position in [`DeliveryStatus::ALL`]; also the one-byte tag of the status index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether a delivery in this status waits for a time (`next_attempt_at_ms`).
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
        )
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The channel accepted the message.
    Delivered,
    /// Network error, timeout, 5xx, 429: tried again on the schedule.
    Retryable,
    /// The destination refused it for good (chat not found, 404, 410, ...).
    Rejected,
    /// The channel's credentials were refused: the channel is paused.
    Credentials,
    /// Telegram moved the chat to a supergroup; retried at the new chat id.
    Migrated,
    /// The sender stopped mid-attempt (crash or panic); the outcome is unknown.
    Interrupted,
}

/// One attempt: when, how it ended, the HTTP status if any, and the error text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: i64,
    pub outcome: AttemptOutcome,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One event to one target of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    /// The event's outbox sequence number (its key in the `events` tree).
    pub event_seq: u64,
    pub event_kind: String,
    pub channel: Channel,
    /// The Telegram chat id; empty for single-target channels.
    pub target: String,
    pub status: DeliveryStatus,
    /// Attempts since the delivery was created or last redriven (the retry budget).
    pub attempt_count: u32,
    pub attempts: Vec<Attempt>,
    /// When a `pending` or `retry_scheduled` delivery is due.
    pub next_attempt_at_ms: Option<i64>,
    /// Why it is `dead` or `paused`.
    pub reason: Option<String>,
    /// Start of the retry budget (`max_age_s` counts from here): creation or last redrive.
    pub budget_started_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

impl Delivery {
    /// A new `pending` delivery, due at once.
    pub fn new(
        id: String,
        event: (&str, u64, &str),
        channel: Channel,
        target: String,
        now_ms: i64,
    ) -> Delivery {
        let (event_id, event_seq, event_kind) = event;
        Delivery {
            id,
            event_id: event_id.to_owned(),
            event_seq,
            event_kind: event_kind.to_owned(),
            channel,
            target,
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            attempts: Vec::new(),
            next_attempt_at_ms: Some(now_ms),
            reason: None,
            budget_started_at_ms: now_ms,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            delivered_at_ms: None,
        }
    }

    /// When the dispatcher should pick it up: only waiting deliveries are due.
    pub fn due_at_ms(&self) -> Option<i64> {
        if self.status.is_waiting() {
            self.next_attempt_at_ms
        } else {
            None
        }
    }

    /// Claimed by the dispatcher: handed to its channel's notifier.
    pub fn claim(&mut self, now_ms: i64) {
        debug_assert!(self.status.is_waiting());
        self.status = DeliveryStatus::Sending;
        self.next_attempt_at_ms = None;
        self.updated_at_ms = now_ms;
    }

    /// Appends an attempt (bounded) and counts it against the budget.
    pub fn record(&mut self, mut attempt: Attempt) {
        if let Some(error) = attempt.error.as_mut() {
            truncate_utf8(error, ERROR_TEXT_BYTES_MAX);
        }
        self.updated_at_ms = attempt.at_ms;
        self.attempt_count = self.attempt_count.saturating_add(1);
        if self.attempts.len() >= ATTEMPTS_KEPT_MAX {
            self.attempts.remove(0);
        }
        self.attempts.push(attempt);
    }

    pub fn mark_delivered(&mut self, now_ms: i64) {
        self.status = DeliveryStatus::Delivered;
        self.delivered_at_ms = Some(now_ms);
        self.next_attempt_at_ms = None;
        self.reason = None;
        self.updated_at_ms = now_ms;
    }

    pub fn schedule_retry(&mut self, at_ms: i64, now_ms: i64) {
        self.status = DeliveryStatus::RetryScheduled;
        self.next_attempt_at_ms = Some(at_ms);
        self.updated_at_ms = now_ms;
    }

    pub fn mark_dead(&mut self, reason: impl Into<String>, now_ms: i64) {
        self.status = DeliveryStatus::Dead;
        self.next_attempt_at_ms = None;
        self.reason = Some(reason.into());
        self.updated_at_ms = now_ms;
    }

    pub fn mark_paused(&mut self, reason: impl Into<String>, now_ms: i64) {
        self.status = DeliveryStatus::Paused;
        self.next_attempt_at_ms = None;
        self.reason = Some(reason.into());
        self.updated_at_ms = now_ms;
    }

    /// Back to `pending`, due now. A redrive (`fresh_budget`) also restarts the retry
    /// budget; resuming a paused channel keeps it.
    pub fn requeue(&mut self, now_ms: i64, fresh_budget: bool) {
        self.status = DeliveryStatus::Pending;
        self.next_attempt_at_ms = Some(now_ms);
        self.reason = None;
        self.updated_at_ms = now_ms;
        if fresh_budget {
            self.attempt_count = 0;
            self.budget_started_at_ms = now_ms;
        }
    }

    /// The admin API's JSON view.
    pub fn to_json_value(&self) -> serde_json::Value {
        let attempts: Vec<serde_json::Value> = self
            .attempts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "at": format_rfc3339_ms(a.at_ms),
                    "outcome": a.outcome,
                    "http_status": a.http_status,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                })
            })
            .collect();
        serde_json::json!({
            "id": self.id,
            "object": "delivery",
            "event_id": self.event_id,
            "event_type": self.event_kind,
            "channel": self.channel,
            "target": self.target,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "attempts": attempts,
            "next_attempt_at": self.next_attempt_at_ms.map(format_rfc3339_ms),
            "reason": self.reason,
            "created_at": format_rfc3339_ms(self.created_at_ms),
            "updated_at": format_rfc3339_ms(self.updated_at_ms),
            "delivered_at": self.delivered_at_ms.map(format_rfc3339_ms),
        })
    }
}

/// Cuts `text` to at most `max_bytes` on a character boundary.
pub fn truncate_utf8(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery::new(
            "dlv_1".into(),
            ("evt_1", 7, "payment.succeeded"),
            Channel::Webhook,
            String::new(),
            1_000,
        )
    }

    #[test]
    fn delivery_ids_derive_from_the_event_and_sort_with_it() {
        let a = delivery_id("evt_01m7yx14qc4fmbn84tthha8vhq", 0);
        assert_eq!(a, "dlv_01m7yx14qc4fmbn84tthha8vhq000");
        assert!(crate::domain::ids::is_valid_id(&a, "dlv_"));
        assert!(a < delivery_id("evt_01m7yx14qc4fmbn84tthha8vhq", 1));
        assert!(
            delivery_id("evt_01m7yx14qc4fmbn84tthha8vhq", 12)
                < delivery_id("evt_01m7yx14qd0000000000000000", 0)
        );
        let plan = FanOutPlan {
            event_id: "evt_1".into(),
            event_kind: "payment.succeeded".into(),
            created_at_ms: 5,
            targets: vec![
                (Channel::Telegram, "7".into()),
                (Channel::Email, String::new()),
            ],
        };
        let ds = plan.deliveries(3);
        assert_eq!(ds[1].id, "dlv_1001");
        assert_eq!(
            (ds[0].target.as_str(), ds[0].event_seq, ds[0].due_at_ms()),
            ("7", 3, Some(5))
        );
    }

    #[test]
    fn names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert_eq!(Channel::ALL[c.index()], c);
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(DeliveryStatus::ALL[s.index()], s);
        }
    }

    #[test]
    fn only_waiting_deliveries_are_due() {
        let mut d = delivery();
        assert_eq!(d.due_at_ms(), Some(1_000));
        d.claim(1_001);
        assert_eq!(d.due_at_ms(), None);
        d.schedule_retry(5_000, 1_002);
        assert_eq!(d.due_at_ms(), Some(5_000));
        d.mark_dead("gone", 1_003);
        assert_eq!(d.due_at_ms(), None);
        d.requeue(2_000, true);
        assert_eq!((d.due_at_ms(), d.attempt_count), (Some(2_000), 0));
    }

    #[test]
    fn attempts_are_bounded_and_errors_truncated() {
        let mut d = delivery();
        for i in 0..(ATTEMPTS_KEPT_MAX + 5) {
            d.record(Attempt {
                at_ms: i as i64,
                outcome: AttemptOutcome::Retryable,
                http_status: Some(500),
                error: Some("é".repeat(400)),
                duration_ms: 1,
            });
        }
        assert_eq!(d.attempts.len(), ATTEMPTS_KEPT_MAX);
        assert_eq!(d.attempt_count as usize, ATTEMPTS_KEPT_MAX + 5);
        let error = d.attempts[0].error.as_ref().unwrap();
        assert!(error.len() <= ERROR_TEXT_BYTES_MAX);
        assert_eq!(d.attempts[0].at_ms, 5);
    }
}
