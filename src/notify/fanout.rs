//! The fan-out policy the committer runs for each new event (DESIGN §3): which channel
//! targets get a delivery (the store keeps them as the event's plan), by the settings in force at commit time. Pure computation on
//! the committer thread: it reads the settings snapshot and makes records, nothing else.
//!
//! Gates: nothing when `enabled` is off. Payment and refund events are "order" events,
//! warning and critical events are "alerts"; an event is delivered when one of the gates
//! that apply to it is on (`payment.failed` is both: either gate lets it through). Events
//! that are neither (`notification.test`) pass whenever `enabled` is on. `payment.processing`
//! is a merchant's event only: operators hear of the outcome.
//!
//! Merchant webhook endpoints (the `merchant` channel, target = endpoint id) are not gated
//! by the operator's switches: a merchant's event goes to each of that merchant's enabled
//! endpoints whose `enabled_events` match, as long as `notifications.merchant.enabled` is on
//! (the operator's kill switch).

use std::sync::Arc;

use crate::config::NotificationsConfig;
use crate::domain::delivery::Channel;
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::webhook_endpoint::WebhookEndpoint;
use crate::notify::channels;
use crate::notify::settings::Settings;
use crate::store::deliveries::FanOut;

/// Fans out by the live [`Settings`] and wakes the dispatcher after durable commits.
pub struct SettingsFanOut {
    pub settings: Arc<Settings>,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Whether `event` creates deliveries under `config` (see the module doc).
pub fn wanted(config: &NotificationsConfig, event: &Event) -> bool {
    if !config.enabled || event.kind == kind::PAYMENT_PROCESSING {
        return false;
    }
    let is_order = matches!(event.source, EventSource::Payment | EventSource::Refund);
    let is_alert = matches!(event.level, EventLevel::Warning | EventLevel::Critical);
    if !is_order && !is_alert {
        return true;
    }
    (is_order && config.order_enabled) || (is_alert && config.alert_enabled)
}

/// The (channel, target) of each delivery of `event` under `config`: one per enabled
/// channel target (each Telegram chat id once).
pub fn targets(config: &NotificationsConfig, event: &Event) -> Vec<(Channel, String)> {
    if !wanted(config, event) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for channel in Channel::ALL {
        if channel == Channel::Merchant || !channels::enabled(channel, config) {
            continue;
        }
        let mut seen = std::collections::HashSet::new();
        for target in channels::targets(channel, config) {
            if seen.insert(target.clone()) {
                out.push((channel, target));
            }
        }
    }
    out
}

/// The merchant endpoints `event` goes to: those of `endpoints` (its merchant's) that want
/// its type, one delivery each, target = endpoint id.
pub fn merchant_targets(
    config: &NotificationsConfig,
    event: &Event,
    endpoints: &[WebhookEndpoint],
) -> Vec<(Channel, String)> {
    if !channels::enabled(Channel::Merchant, config) {
        return Vec::new();
    }
    endpoints
        .iter()
        .filter(|e| e.wants(&event.kind))
        .map(|e| (Channel::Merchant, e.id.clone()))
        .collect()
}

impl FanOut for SettingsFanOut {
    fn targets_for(&self, event: &Event, endpoints: &[WebhookEndpoint]) -> Vec<(Channel, String)> {
        let config = self.settings.current();
        let mut out = targets(&config, event);
        out.extend(merchant_targets(&config, event, endpoints));
        out
    }

    fn created(&self, _count: usize) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::notify::template::tests::paid_event;

    fn config() -> NotificationsConfig {
        let mut c = Config::embedded().unwrap().notifications;
        c.telegram.enabled = true;
        c.telegram.bot_token = "1:x".into();
        c.telegram.chat_ids = vec!["1".into(), "2".into()];
        c.webhook.enabled = true;
        c
    }

    #[test]
    fn one_delivery_per_enabled_target() {
        let mut c = config();
        c.telegram.chat_ids.push("1".into());
        let shape = targets(&c, &paid_event());
        assert_eq!(
            shape,
            vec![
                (Channel::Telegram, "1".to_owned()),
                (Channel::Telegram, "2".to_owned()),
                (Channel::Webhook, String::new())
            ]
        );
    }

    #[test]
    fn merchant_endpoints_get_their_types_whatever_the_operator_gates() {
        use crate::domain::webhook_endpoint::{EndpointStatus, WebhookEndpoint};
        let endpoint = |id: &str, events: &[&str], status| WebhookEndpoint {
            id: id.into(),
            merchant_id: "m_demo".into(),
            url: "https://example.com/h".into(),
            description: String::new(),
            enabled_events: events.iter().map(|e| (*e).to_owned()).collect(),
            status,
            disabled_reason: None,
            secret: "whsec_a".into(),
            previous_secret: None,
            failing_since_ms: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let endpoints = [
            endpoint("we_all", &["*"], EndpointStatus::Enabled),
            endpoint("we_failed", &["payment.failed"], EndpointStatus::Enabled),
            endpoint("we_off", &["*"], EndpointStatus::Disabled),
        ];
        let mut c = config();
        c.enabled = false;
        let paid = paid_event();
        assert_eq!(
            merchant_targets(&c, &paid, &endpoints),
            vec![(Channel::Merchant, "we_all".to_owned())]
        );
        let mut processing = paid_event();
        processing.kind = kind::PAYMENT_PROCESSING.into();
        c.enabled = true;
        assert!(
            targets(&c, &processing).is_empty(),
            "operators are not sent processing"
        );
        assert_eq!(merchant_targets(&c, &processing, &endpoints).len(), 1);
        c.merchant.enabled = false;
        assert!(merchant_targets(&c, &paid, &endpoints).is_empty());
    }

    #[test]
    fn gates_follow_the_event_kind() {
        let paid = paid_event();
        let mut failed = paid_event();
        failed.level = EventLevel::Warning;
        let mut test = paid_event();
        test.source = EventSource::System;
        let mut c = config();
        c.order_enabled = false;
        assert!(!wanted(&c, &paid));
        assert!(wanted(&c, &failed), "an alert passes the alert gate");
        assert!(wanted(&c, &test));
        c.alert_enabled = false;
        assert!(!wanted(&c, &failed));
        c.enabled = false;
        assert!(!wanted(&c, &test));
    }
}
