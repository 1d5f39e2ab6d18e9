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

/// The one declaration of the notification channels (DESIGN §3 "Channels"): one line a
/// channel, `Variant = tag, section, SectionConfig;`. Everything per channel follows from
/// this list: the [`Channel`] enum with [`Channel::ALL`], [`Channel::COUNT`] and names; the
/// channel's module `crate::notify::channels::<section>` (declared from this list), which
/// holds its implementation `<Variant>` (the `Channel` trait) and its settings
/// `SectionConfig` (the `Section` trait: checks, `enabled`); the `[notifications.<section>]`
/// field of [`crate::config::NotificationsConfig`]; its secrets in the settings API; the
/// admin filters. Adding a channel is its file plus its line here: docs/notifications.md.
///
/// `tag` is the channel's byte on disk (delivery records, the due index): never reuse or
/// renumber one; a new channel takes the next free tag. The list is passed to `$callback`,
/// a `macro_rules!` of the caller's that expands it into what that module needs.
macro_rules! for_each_channel {
    ($callback:ident) => {
        $callback! {
            Telegram = 0, telegram, TelegramConfig;
            Slack = 1, slack, WebhookUrlConfig;
            Discord = 2, discord, WebhookUrlConfig;
            Feishu = 3, feishu, FeishuConfig;
            Email = 4, email, EmailConfig;
            Webhook = 5, webhook, SignedWebhookConfig;
            Merchant = 6, merchant, MerchantChannelConfig;
        }
    };
}
pub(crate) use for_each_channel;

macro_rules! declare_channel_enum {
    ($($variant:ident = $tag:literal, $section:ident, $config:ident;)*) => {
        /// A notification channel (DESIGN §3 "Channels"), declared in [`for_each_channel`].
        /// On disk it is its [`Channel::tag`], in JSON its [`Channel::as_str`] name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Channel {
            $($variant,)*
        }

        impl Channel {
            /// Every channel, in declaration order ([`Channel::index`]).
            pub const ALL: [Channel; Channel::COUNT] = [$(Channel::$variant,)*];
            /// How many channels there are: the size of per-channel arrays.
            pub const COUNT: usize = [$($tag,)*].len();

            /// The channel's name: its config section, its JSON value, its metrics label.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Channel::$variant => stringify!($section),)*
                }
            }

            /// The channel's byte in stored records and keys; explicit, so reordering the
            /// declaration never changes what is on disk.
            pub const fn tag(self) -> u8 {
                match self {
                    $(Channel::$variant => $tag,)*
                }
            }

            /// The channel of a stored tag, if one has it.
            pub const fn from_tag(tag: u8) -> Option<Channel> {
                match tag {
                    $($tag => Some(Channel::$variant),)*
                    _ => None,
                }
            }
        }
    };
}
for_each_channel!(declare_channel_enum);

// Tags are distinct: two channels with one tag would read each other's records.
const _: () = {
    let mut i = 0;
    while i < Channel::COUNT {
        let mut j = i + 1;
        while j < Channel::COUNT {
            assert!(Channel::ALL[i].tag() != Channel::ALL[j].tag());
            j += 1;
        }
        i += 1;
    }
};

impl Channel {
    /// The channel named `text` ([`Channel::as_str`]), if any.
    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Position in [`Channel::ALL`], for per-channel arrays (`[_; Channel::COUNT]`). Only
    /// for memory: what is stored is [`Channel::tag`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Every channel's name, joined by `", "` (for error messages).
    pub fn names() -> String {
        Channel::ALL.map(Channel::as_str).join(", ")
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.as_str())
        } else {
            // A u32, as serde's derive wrote the variant index before tags were explicit:
            // the same bytes for every tag that equals its old position.
            serializer.serialize_u32(u32::from(self.tag()))
        }
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Channel, D::Error> {
        use serde::de::Error;
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Channel::parse(&text).ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown channel `{text}`, expected one of {}",
                    Channel::names()
                ))
            })
        } else {
            let tag = u32::deserialize(deserializer)?;
            u8::try_from(tag)
                .ok()
                .and_then(Channel::from_tag)
                .ok_or_else(|| D::Error::custom(format!("unknown channel tag {tag}")))
        }
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
    /// The Telegram chat id, or the merchant webhook endpoint id; empty for
    /// single-target channels.
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

    /// The on-disk tags are a file format: this table is the record of which byte means
    /// which channel. A change here is a data migration, not a refactoring.
    #[test]
    fn channel_tags_are_pinned() {
        let pinned = [
            ("telegram", 0u8),
            ("slack", 1),
            ("discord", 2),
            ("feishu", 3),
            ("email", 4),
            ("webhook", 5),
            ("merchant", 6),
        ];
        assert_eq!(Channel::COUNT, pinned.len());
        for (name, tag) in pinned {
            let channel = Channel::parse(name).unwrap();
            assert_eq!(channel.tag(), tag, "{name}");
            assert_eq!(Channel::from_tag(tag), Some(channel));
        }
        assert_eq!(Channel::from_tag(Channel::COUNT as u8), None);
        for (index, channel) in Channel::ALL.into_iter().enumerate() {
            assert_eq!(channel.index(), index);
        }
    }

    #[test]
    fn a_channel_is_its_tag_in_records_and_its_name_in_json() {
        for channel in Channel::ALL {
            let bytes =
                bincode::serde::encode_to_vec(channel, bincode::config::standard()).unwrap();
            assert_eq!(bytes, vec![channel.tag()]);
            let (back, _): (Channel, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            assert_eq!(back, channel);
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
        let unknown = bincode::serde::encode_to_vec(9u32, bincode::config::standard()).unwrap();
        assert!(bincode::serde::decode_from_slice::<Channel, _>(
            &unknown,
            bincode::config::standard()
        )
        .is_err());
        assert!(serde_json::from_str::<Channel>("\"pager\"").is_err());
    }
}
