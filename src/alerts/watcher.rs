//! The system-alert watcher (issue 17, seed 001): every `alerts.check_interval_ms` it looks
//! at the provider's failure streak, the paused channels, the dead-letter count and the
//! store, decides which alerts are due ([`Watcher::check`], pure: the observation and the
//! clock reading in, the alerts out), and raises them as critical or warning events with
//! source `system`.
//!
//! - Each alert is raised once per cause (the provider, one channel, dead letters, the
//!   store) per `alerts.window_s`, and again after the window if the cause is still there.
//!   The event's `dedupe_key` carries the cause and the window's index too, so a restart
//!   inside a window does not repeat it either.
//! - Nothing is raised while `notifications.enabled` or `notifications.alert_enabled` is off
//!   (a cause still present when the gate opens is raised then).
//! - Events go through the outbox like any other: one commit, fanned out by the committer,
//!   delivered, retried and dead-lettered by the notifiers.
//! - `system.store_refusing_writes` cannot go through the outbox: a store that refuses
//!   writes refuses the event too, and it keeps refusing until the process restarts (a
//!   failed write leaves the store's state unknown, so it is never retried in-process). So
//!   that alert is sent straight to every enabled channel target, one attempt each, without
//!   a delivery record, pacing or retries; the log says which targets took it. Waiting for
//!   the store to write again would mean no alert at all until someone restarts the service,
//!   which is what the alert is there to prompt.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::json;

use crate::alerts::config::AlertsConfig;
use crate::alerts::provider_health::ProviderHealth;
use crate::domain::delivery::{Channel, Delivery, DeliveryStatus};
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::ids::{new_id, prefix};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::notify::{attempt, fanout, Core};

/// The span `system.dead_letters` counts over: an hour, as the issue says.
pub const DEAD_LETTER_SPAN_MS: i64 = 3_600_000;
/// Width of one bucket of the dead-letter count; the span holds at most
/// `DEAD_LETTER_SPAN_MS / DEAD_LETTER_BUCKET_MS` buckets however often the watcher checks.
pub const DEAD_LETTER_BUCKET_MS: i64 = 60_000;
const _: () = assert!(DEAD_LETTER_SPAN_MS % DEAD_LETTER_BUCKET_MS == 0);

/// What the watcher saw at one check.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Unix ms of the check.
    pub now_ms: i64,
    /// The provider's failure streak: since when, the last reason.
    pub provider_failing: Option<(i64, String)>,
    /// Channels paused because their credentials were refused.
    pub paused_channels: Vec<Channel>,
    /// Dead deliveries in the store now (its per-status counter).
    pub dead_total: i64,
    /// Whether the store refuses writes.
    pub store_refusing_writes: bool,
}

/// An alert due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: &'static str,
    /// What it is about: `provider`, a channel name, `dead_letters`, `store`.
    pub cause: String,
    pub level: EventLevel,
    pub title: String,
    /// One line for the operator (the message's `Detail`).
    pub detail: String,
}

impl Alert {
    /// The outbox event of this alert raised at `now_ms` in window `window_ms`.
    pub fn event(&self, now_ms: i64, window_ms: i64) -> Event {
        let window = now_ms / window_ms.max(1);
        Event {
            id: new_id(prefix::EVENT),
            kind: self.kind.to_owned(),
            level: self.level,
            source: EventSource::System,
            title: self.title.clone(),
            entity_type: "system".to_owned(),
            entity_id: self.cause.clone(),
            dedupe_key: format!("{}:{}:{window}", self.kind, self.cause),
            payload: json!({"cause": self.cause, "detail": self.detail}).to_string(),
            created_at_ms: now_ms,
        }
    }
}

/// New dead letters per minute over the last hour, from the store's dead count: each
/// check adds the rise since the previous one (a redrive lowers the count and is not a new
/// dead letter). Dead letters from before start-up are the baseline, not new.
#[derive(Debug, Default)]
pub struct DeadLetterWindow {
    last_total: Option<i64>,
    /// (bucket start ms, new dead letters), oldest first.
    buckets: VecDeque<(i64, u64)>,
}

impl DeadLetterWindow {
    /// Records the count `total` at `now_ms`; returns the new dead letters of the last hour.
    pub fn observe(&mut self, total: i64, now_ms: i64) -> u64 {
        let risen = match self.last_total {
            Some(last) => u64::try_from(total - last).unwrap_or(0),
            None => 0,
        };
        self.last_total = Some(total);
        let bucket = now_ms - now_ms.rem_euclid(DEAD_LETTER_BUCKET_MS);
        match self.buckets.back_mut() {
            Some((start, count)) if *start == bucket => *count += risen,
            _ => self.buckets.push_back((bucket, risen)),
        }
        while self.buckets.front().is_some_and(|(start, _)| {
            *start + DEAD_LETTER_BUCKET_MS <= now_ms - DEAD_LETTER_SPAN_MS
        }) {
            self.buckets.pop_front();
        }
        self.buckets.iter().map(|(_, count)| count).sum()
    }
}

/// The decision half of the watcher: which alerts are due, given what was seen.
#[derive(Debug)]
pub struct Watcher {
    config: AlertsConfig,
    /// When each cause (`kind` + cause) was last raised, in unix ms.
    raised: HashMap<String, i64>,
    dead_letters: DeadLetterWindow,
}

impl Watcher {
    pub fn new(config: AlertsConfig) -> Watcher {
        Watcher {
            config,
            raised: HashMap::new(),
            dead_letters: DeadLetterWindow::default(),
        }
    }

    fn window_ms(&self) -> i64 {
        crate::clock::millis(self.config.window)
    }

    /// The alerts whose condition holds in `seen` and whose cause was not raised within
    /// the window. Call [`Watcher::raised`] for each one that went out.
    pub fn check(&mut self, seen: &Observed) -> Vec<Alert> {
        let mut due = Vec::new();
        if seen.store_refusing_writes {
            due.push(Alert {
                kind: kind::SYSTEM_STORE_REFUSING_WRITES,
                cause: "store".to_owned(),
                level: EventLevel::Critical,
                title: "Store refusing writes".to_owned(),
                detail: "a write failed; the store refuses writes until paykeep is restarted \
                         (see the error log for the cause)"
                    .to_owned(),
            });
        }
        if let Some((since_ms, reason)) = &seen.provider_failing {
            let failing_ms = seen.now_ms - since_ms;
            let limit_ms = crate::clock::millis(self.config.provider_failing);
            if failing_ms > limit_ms {
                due.push(Alert {
                    kind: kind::SYSTEM_PROVIDER_UNAVAILABLE,
                    cause: "provider".to_owned(),
                    level: EventLevel::Critical,
                    title: "Payment provider unavailable".to_owned(),
                    detail: format!(
                        "provider calls failing for {} s with no success; last: {reason}",
                        failing_ms / 1000
                    ),
                });
            }
        }
        for channel in &seen.paused_channels {
            due.push(Alert {
                kind: kind::SYSTEM_CHANNEL_PAUSED,
                cause: channel.as_str().to_owned(),
                level: EventLevel::Warning,
                title: format!("Notification channel {} paused", channel.as_str()),
                detail: format!(
                    "{} refused paykeep's credentials; its deliveries wait until the settings are fixed",
                    channel.as_str()
                ),
            });
        }
        let new_dead = self.dead_letters.observe(seen.dead_total, seen.now_ms);
        if new_dead > self.config.dead_letters_max.get() {
            due.push(Alert {
                kind: kind::SYSTEM_DEAD_LETTERS,
                cause: "dead_letters".to_owned(),
                level: EventLevel::Warning,
                title: "Notification dead letters piling up".to_owned(),
                detail: format!(
                    "{new_dead} deliveries went dead in the last hour (more than {})",
                    self.config.dead_letters_max
                ),
            });
        }
        let window_ms = self.window_ms();
        due.retain(|alert| {
            self.raised
                .get(&cause_key(alert))
                .is_none_or(|at| seen.now_ms - at >= window_ms)
        });
        due
    }

    /// Records that `alert` went out at `now_ms`.
    pub fn raised(&mut self, alert: &Alert, now_ms: i64) {
        self.raised.insert(cause_key(alert), now_ms);
    }
}

fn cause_key(alert: &Alert) -> String {
    format!("{}:{}", alert.kind, alert.cause)
}

/// What the watcher task reads and writes through.
pub struct WatchDeps {
    pub config: AlertsConfig,
    /// The notification side: the store, the committer slot, the live settings, the client.
    pub notify: Arc<Core>,
    pub provider: Arc<ProviderHealth>,
}

/// Runs the watcher until the task is aborted (at shutdown): a check at once, then one
/// every `alerts.check_interval_ms` on the notification side's clock.
pub async fn run(deps: WatchDeps) {
    let interval = deps.config.check_interval;
    let mut watcher = Watcher::new(deps.config.clone());
    let window_ms = watcher.window_ms();
    loop {
        check_once(&deps, &mut watcher, window_ms).await;
        crate::clock::sleep(deps.notify.clock.as_ref(), interval).await;
    }
}

/// One check: observe, and raise the alerts that are due (unless the gate is closed).
async fn check_once(deps: &WatchDeps, watcher: &mut Watcher, window_ms: i64) {
    let seen = observe(deps);
    let gate = deps.notify.settings.current();
    if !(gate.enabled && gate.alert_enabled) {
        return;
    }
    for alert in watcher.check(&seen) {
        let event = alert.event(seen.now_ms, window_ms);
        let sent = match route(&alert, seen.store_refusing_writes) {
            Route::Outbox => commit(&deps.notify, &event).await,
            Route::Direct => send_direct(&deps.notify, &event).await,
            Route::Wait => false,
        };
        if sent {
            tracing::warn!(
                operation = "alert",
                alert = alert.kind,
                cause = %alert.cause,
                event_id = %event.id,
                "system alert raised"
            );
            watcher.raised(&alert, seen.now_ms);
        }
    }
}

/// How an alert due now goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Written as an outbox event (fanned out, delivered, retried like any event).
    Outbox,
    /// Sent straight to the channels: the store refuses writes (see the module doc).
    Direct,
    /// Not now: the store refuses writes, and only its own alert goes out without it.
    Wait,
}

/// The [`Route`] of `alert` while the store does (not) refuse writes.
pub fn route(alert: &Alert, store_refusing_writes: bool) -> Route {
    match (
        store_refusing_writes,
        alert.kind == kind::SYSTEM_STORE_REFUSING_WRITES,
    ) {
        (false, _) => Route::Outbox,
        (true, true) => Route::Direct,
        (true, false) => Route::Wait,
    }
}

fn observe(deps: &WatchDeps) -> Observed {
    let core = &deps.notify;
    let dead_total = core
        .store
        .delivery_counts()
        .iter()
        .find(|(status, _)| *status == DeliveryStatus::Dead)
        .map_or(0, |(_, count)| *count);
    Observed {
        now_ms: core.clock.now_ms(),
        provider_failing: deps.provider.failing(),
        paused_channels: Channel::ALL
            .into_iter()
            .filter(|c| core.settings.is_paused(*c))
            .collect(),
        dead_total,
        store_refusing_writes: core.store.is_failed(),
    }
}

/// Writes `event` through the outbox; whether it was committed.
async fn commit(core: &Core, event: &Event) -> bool {
    let write_set = WriteSet {
        ops: vec![WriteOp::Event(event.clone())],
    };
    match core.committer.commit(write_set).await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(operation = "alert", alert = %event.kind, %error, "system alert not committed");
            false
        }
    }
}

/// Sends `event` once to every enabled channel target that is not paused, with no record;
/// whether any target took it.
async fn send_direct(core: &Core, event: &Event) -> bool {
    let config = core.settings.current();
    let mut delivered = 0usize;
    let targets = fanout::targets(&config, event);
    let total = targets.len();
    for (channel, target) in targets {
        if core.settings.is_paused(channel) {
            continue;
        }
        let delivery = Delivery::new(
            new_id(prefix::DELIVERY),
            (&event.id, 0, &event.kind),
            channel,
            target,
            event.created_at_ms,
        );
        match attempt::send_once(core, channel, &config, &delivery, event).await {
            Ok(()) => delivered += 1,
            Err(error) => tracing::error!(
                operation = "alert",
                alert = %event.kind,
                channel = channel.as_str(),
                %error,
                "system alert not delivered (sent without a delivery record: the store refuses writes)"
            ),
        }
    }
    tracing::warn!(
        operation = "alert",
        alert = %event.kind,
        delivered,
        targets = total,
        "system alert sent straight to the channels: the store refuses writes"
    );
    delivered > 0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> AlertsConfig {
        AlertsConfig {
            check_interval: Duration::from_millis(1000),
            provider_failing: Duration::from_secs(60),
            dead_letters_max: std::num::NonZeroU64::new(2).expect("non-zero"),
            window: Duration::from_secs(3600),
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn provider_alert_only_after_the_streak_is_longer_than_the_threshold() {
        let mut watcher = Watcher::new(config());
        let mut seen = Observed {
            now_ms: 100_000,
            provider_failing: Some((50_000, "connection refused".into())),
            ..Observed::default()
        };
        assert!(
            watcher.check(&seen).is_empty(),
            "50 s is not longer than 60 s"
        );
        seen.now_ms = 110_001;
        let due = watcher.check(&seen);
        assert_eq!(kinds(&due), [kind::SYSTEM_PROVIDER_UNAVAILABLE]);
        assert!(due[0].detail.contains("connection refused"));
    }

    #[test]
    fn a_cause_is_raised_once_per_window_then_again() {
        let mut watcher = Watcher::new(config());
        let mut seen = Observed {
            now_ms: 1_000_000,
            paused_channels: vec![Channel::Slack],
            ..Observed::default()
        };
        let due = watcher.check(&seen);
        assert_eq!(kinds(&due), [kind::SYSTEM_CHANNEL_PAUSED]);
        watcher.raised(&due[0], seen.now_ms);
        seen.now_ms += 3_599_999;
        assert!(watcher.check(&seen).is_empty(), "within the window");
        seen.paused_channels.push(Channel::Telegram);
        let due = watcher.check(&seen);
        assert_eq!(due.len(), 1, "another channel is another cause");
        assert_eq!(due[0].cause, "telegram");
        seen.now_ms += 1;
        assert_eq!(watcher.check(&seen).len(), 2, "the window is over");
    }

    #[test]
    fn an_alert_not_sent_is_due_again_at_the_next_check() {
        let mut watcher = Watcher::new(config());
        let seen = Observed {
            now_ms: 5,
            store_refusing_writes: true,
            ..Observed::default()
        };
        assert_eq!(
            kinds(&watcher.check(&seen)),
            [kind::SYSTEM_STORE_REFUSING_WRITES]
        );
        assert_eq!(
            kinds(&watcher.check(&seen)),
            [kind::SYSTEM_STORE_REFUSING_WRITES]
        );
    }

    #[test]
    fn only_the_store_alert_bypasses_a_store_that_refuses_writes() {
        let mut watcher = Watcher::new(config());
        let seen = Observed {
            now_ms: 100_000,
            store_refusing_writes: true,
            paused_channels: vec![Channel::Discord],
            ..Observed::default()
        };
        let due = watcher.check(&seen);
        assert_eq!(
            kinds(&due),
            [
                kind::SYSTEM_STORE_REFUSING_WRITES,
                kind::SYSTEM_CHANNEL_PAUSED
            ]
        );
        assert_eq!(route(&due[0], true), Route::Direct);
        assert_eq!(route(&due[1], true), Route::Wait);
        assert_eq!(route(&due[1], false), Route::Outbox);
    }

    #[test]
    fn dead_letters_count_new_ones_in_the_last_hour() {
        let mut window = DeadLetterWindow::default();
        assert_eq!(
            window.observe(40, 0),
            0,
            "dead letters from before start are the baseline"
        );
        assert_eq!(window.observe(42, 1_000), 2);
        assert_eq!(
            window.observe(41, 2_000),
            2,
            "a redrive is not a new dead letter"
        );
        assert_eq!(window.observe(42, 120_000), 3);
        assert_eq!(
            window.observe(42, DEAD_LETTER_SPAN_MS + 60_000),
            1,
            "the first minute aged out"
        );
        assert_eq!(window.observe(42, 3 * DEAD_LETTER_SPAN_MS), 0);
    }

    #[test]
    fn dead_letter_alert_needs_more_than_the_maximum() {
        let mut watcher = Watcher::new(config());
        let mut seen = Observed::default();
        assert!(watcher.check(&seen).is_empty());
        seen.dead_total = 2;
        seen.now_ms = 10;
        assert!(watcher.check(&seen).is_empty(), "2 is not more than 2");
        seen.dead_total = 3;
        seen.now_ms = 20;
        assert_eq!(kinds(&watcher.check(&seen)), [kind::SYSTEM_DEAD_LETTERS]);
    }

    #[test]
    fn the_event_carries_cause_and_window_in_its_dedupe_key() {
        let alert = Alert {
            kind: kind::SYSTEM_CHANNEL_PAUSED,
            cause: "slack".into(),
            level: EventLevel::Warning,
            title: "t".into(),
            detail: "d".into(),
        };
        let a = alert.event(7_200_000, 3_600_000);
        let b = alert.event(7_200_000 + 3_599_999, 3_600_000);
        assert_eq!(a.dedupe_key, "system.channel_paused:slack:2");
        assert_eq!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.source, EventSource::System);
        assert!(a.payload.contains("\"detail\":\"d\""));
    }
}
