//! Merchants' own webhook endpoints (DESIGN §3 "Merchant webhook endpoints"), the seventh
//! channel: one delivery per matching endpoint of the event's merchant, target = the
//! endpoint id. Signed like the operator's `webhook` channel, by the Standard Webhooks
//! specification
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>),
//! with the endpoint's own secret:
//!
//! - body: the event as `GET /v1/events/{id}` answers it (`{id, object: "event", type,
//!   created_at, data: {object}}`), the merchant's data only;
//! - `webhook-id`: the event id, the same on every retry; `webhook-timestamp`: Unix seconds
//!   of this attempt; `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//!   per signing secret, space-separated (the spec's list form), so during a rotation's
//!   overlap both the new and the previous secret verify.
//!
//! Classification is the shared one, except that nothing pauses the channel: one
//! merchant's 401 must not stop every other merchant's deliveries, so 401/403 are dead at
//! once like the other 4xx. A 410 is dead and disables the endpoint (the notifier does that,
//! `notify::attempt`).
//!
//! Pacing: ours to choose, `notifications.merchant.rate_per_s` per endpoint.

use serde::{Deserialize, Serialize};

use crate::config::check::{invalid, ConfigError};
use crate::notify::channels::webhook::{decode_secret, sign, WEBHOOK_RATE_PER_S_MAX};
use crate::notify::channels::{
    classify_http, Channel, Outgoing, Reply, Request, Secret, Section, Verdict,
};
use crate::notify::pacing::{Limit, Limits};

/// `[notifications.merchant]`: the channel of merchants' own webhook endpoints (DESIGN §3
/// "Merchant webhook endpoints"; the endpoints themselves are data, `/v1/webhook_endpoints`).
/// Unlike the operator's channels it is on when its section is missing: merchants who
/// registered an endpoint expect their events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantChannelConfig {
    /// The operator's kill switch: off, no merchant event goes to any endpoint.
    pub enabled: bool,
    /// Most requests per second to one endpoint (ours to choose: no vendor limit).
    pub rate_per_s: u32,
}

impl Default for MerchantChannelConfig {
    fn default() -> MerchantChannelConfig {
        MerchantChannelConfig {
            enabled: true,
            rate_per_s: 20,
        }
    }
}

impl Section for MerchantChannelConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, _allow_private_targets: bool) -> Result<(), ConfigError> {
        if self.rate_per_s == 0 || self.rate_per_s > WEBHOOK_RATE_PER_S_MAX {
            return Err(invalid(
                &format!("notifications.{section}.rate_per_s"),
                format!("must be 1..={WEBHOOK_RATE_PER_S_MAX}"),
            ));
        }
        Ok(())
    }
}

/// Most requests per second over all endpoints: the shared in-flight bound is the real
/// limit; this keeps one burst of events from opening hundreds of connections at once.
const CHANNEL_RATE_PER_S: u32 = 200;

/// The Merchant channel, as the notifier drives it.
pub struct Merchant;

impl Channel for Merchant {
    type Config = MerchantChannelConfig;
    /// Endpoint secrets are data, not settings: `notify::attempt` scrubs them.
    const SECRETS: &'static [Secret] = &[];

    /// None from the settings: the fan-out names the endpoints (`notify::fanout`).
    fn targets(_config: &MerchantChannelConfig) -> Vec<String> {
        Vec::new()
    }

    fn build(_config: &MerchantChannelConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        build(request)
    }

    fn classify(reply: &Reply) -> Verdict {
        match classify_http(reply) {
            Verdict::Credentials { error } => Verdict::Rejected { error },
            other => other,
        }
    }

    fn limits(config: &MerchantChannelConfig) -> Limits {
        Limits {
            channel: vec![Limit::per_second(CHANNEL_RATE_PER_S)],
            target: vec![Limit::per_second(config.rate_per_s.max(1))],
            ..Limits::default()
        }
    }
}

/// The signed request to the delivery's endpoint.
///
/// # Errors
/// [`Verdict::Rejected`] when the endpoint is gone or disabled, or its secret unusable.
pub fn build(request: &Request<'_>) -> Result<Outgoing, Verdict> {
    let endpoint = request.endpoint.ok_or_else(|| Verdict::Rejected {
        error: "the webhook endpoint was deleted".to_owned(),
    })?;
    if endpoint.status != crate::domain::webhook_endpoint::EndpointStatus::Enabled {
        return Err(Verdict::Rejected {
            error: "the webhook endpoint is disabled".to_owned(),
        });
    }
    let body = request
        .event
        .merchant_view(request.payment)
        .to_string()
        .into_bytes();
    let id = request.event.id.clone();
    let mut signatures = Vec::new();
    for secret in endpoint.signing_secrets(request.now_s.saturating_mul(1000)) {
        let key = decode_secret(secret).map_err(|e| Verdict::Rejected {
            error: e.to_owned(),
        })?;
        signatures.push(sign(&key, &id, request.now_s, &body));
    }
    Ok(Outgoing {
        url: endpoint.url.clone(),
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("webhook-id", id),
            ("webhook-timestamp", request.now_s.to_string()),
            ("webhook-signature", signatures.join(" ")),
        ],
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::{Channel as ChannelKind, Delivery};
    use crate::domain::webhook_endpoint::{EndpointStatus, WebhookEndpoint};
    use crate::notify::channels::tests::reply;
    use crate::notify::template::{tests::paid_event, Message};

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint {
            id: "we_1".into(),
            merchant_id: "m_demo".into(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            enabled_events: vec!["*".into()],
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            previous_secret: None,
            failing_since_ms: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn build_with(endpoint: Option<&WebhookEndpoint>, now_s: i64) -> Result<Outgoing, Verdict> {
        let event = paid_event();
        let message = Message::of(&event);
        let delivery = Delivery::new(
            "dlv_1".into(),
            (&event.id, 1, &event.kind),
            ChannelKind::Merchant,
            "we_1".into(),
            0,
        );
        build(&Request {
            message: &message,
            event: &event,
            delivery: &delivery,
            endpoint,
            payment: None,
            now_s,
        })
    }

    #[test]
    fn signs_with_every_secret_of_the_overlap() {
        let mut e = endpoint();
        let one = build_with(Some(&e), 100).unwrap();
        let header = |o: &Outgoing, name: &str| {
            o.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header(&one, "webhook-signature").split(' ').count(), 1);
        e.rotate(
            "whsec_c2Vjb25kIHNlY3JldCBrZXkgYnl0ZXM=".into(),
            100_000,
            1_000,
        );
        let two = build_with(Some(&e), 100).unwrap();
        let signatures = header(&two, "webhook-signature");
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        let after = build_with(Some(&e), 102).unwrap();
        assert_eq!(header(&after, "webhook-signature").split(' ').count(), 1);
        let body: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
        assert_eq!(body["object"], "event");
        assert_eq!(header(&one, "webhook-id"), body["id"].as_str().unwrap());
    }

    #[test]
    fn deleted_or_disabled_endpoints_and_credentials_are_dead_not_paused() {
        assert!(matches!(build_with(None, 1), Err(Verdict::Rejected { .. })));
        let mut e = endpoint();
        e.status = EndpointStatus::Disabled;
        assert!(matches!(
            build_with(Some(&e), 1),
            Err(Verdict::Rejected { .. })
        ));
        assert!(matches!(
            Merchant::classify(&reply(401, "")),
            Verdict::Rejected { .. }
        ));
        assert!(matches!(
            Merchant::classify(&reply(503, "")),
            Verdict::Retryable { .. }
        ));
    }
}
