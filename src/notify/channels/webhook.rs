//! Signed webhooks by the Standard Webhooks specification
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! `POST` the URL with the JSON payload `{type, timestamp, data}` and headers
//! `webhook-id` (the event id, the same on every retry and for every delivery of the
//! event, so receivers deduplicate), `webhook-timestamp` (Unix seconds of this attempt)
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//! with the base64-decoded part of the `whsec_` secret.
//!
//! Classification is the shared one: 2xx delivered; 429 retried after `Retry-After`; 408,
//! 425, 5xx, network errors retried; 401/403 pause; 400, 404, 410 and other 4xx dead (the
//! spec asks senders to stop on 410 Gone).
//!
//! Pacing: ours to choose (`notifications.webhook.rate_per_s`, default 20 per second).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::check::{check_url, invalid, ConfigError};
use crate::domain::time::format_rfc3339_ms;
use crate::notify::channels::{
    classify_http, Channel, Outgoing, Reply, Request, Secret, Section, Verdict,
};
use crate::notify::pacing::{Limit, Limits};

/// The secret prefix of the specification.
pub const SECRET_PREFIX: &str = "whsec_";

/// Upper bound on `notifications.webhook.rate_per_s`.
pub const WEBHOOK_RATE_PER_S_MAX: u32 = 10_000;

/// `[notifications.webhook]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignedWebhookConfig {
    pub enabled: bool,
    pub url: String,
    /// `whsec_<base64>` (Standard Webhooks).
    pub secret: String,
    /// Most requests per second to the endpoint (it is ours to choose: no vendor limit).
    #[serde(default = "default_rate_per_s")]
    pub rate_per_s: u32,
}

fn default_rate_per_s() -> u32 {
    20
}

impl Default for SignedWebhookConfig {
    fn default() -> SignedWebhookConfig {
        SignedWebhookConfig {
            enabled: false,
            url: String::new(),
            secret: String::new(),
            rate_per_s: default_rate_per_s(),
        }
    }
}

impl Section for SignedWebhookConfig {
    fn enabled(&self) -> bool {
        self.enabled
    }

    fn validate(&self, section: &str, allow_private_targets: bool) -> Result<(), ConfigError> {
        let key = |name: &str| format!("notifications.{section}.{name}");
        if self.rate_per_s == 0 || self.rate_per_s > WEBHOOK_RATE_PER_S_MAX {
            return Err(invalid(
                &key("rate_per_s"),
                format!("must be 1..={WEBHOOK_RATE_PER_S_MAX}"),
            ));
        }
        check_url(&key("url"), &self.url, self.enabled, allow_private_targets)?;
        if self.enabled && !self.secret.starts_with(SECRET_PREFIX) {
            return Err(invalid(&key("secret"), "must be whsec_<base64> when enabled"));
        }
        Ok(())
    }
}

/// The Webhook channel, as the notifier drives it.
pub struct Webhook;

impl Channel for Webhook {
    type Config = SignedWebhookConfig;
    const SECRETS: &'static [Secret] = &[Secret::plain("secret"), Secret::url("url")];

    fn build(config: &SignedWebhookConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
        build(config, request)
    }

    fn classify(reply: &Reply) -> Verdict {
        classify_http(reply)
    }

    fn limits(config: &SignedWebhookConfig) -> Limits {
        let rate_per_s = config.rate_per_s;
        Limits {
            channel: vec![Limit::per_second(rate_per_s.max(1))],
            ..Limits::default()
        }
    }
}

/// The signing key of a `whsec_<base64>` secret.
///
/// # Errors
/// When the secret lacks the prefix or its rest is not base64.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or("the webhook secret must start with whsec_")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the webhook secret is not whsec_<base64>")
}

/// `v1,<signature>` of `body` for message `id` at `timestamp_s`.
pub fn sign(key: &[u8], id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The payload: the event as the admin API shows it, under the spec's `{type, timestamp,
/// data}` envelope.
fn payload(request: &Request<'_>) -> Value {
    let event = request.event;
    let data: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
    json!({
        "type": event.kind,
        "timestamp": format_rfc3339_ms(event.created_at_ms),
        "data": {
            "id": event.id,
            "level": event.level,
            "source": event.source,
            "title": event.title,
            "entity_type": event.entity_type,
            "entity_id": event.entity_id,
            "payload": data,
        },
    })
}

/// The signed request.
///
/// # Errors
/// [`Verdict::Credentials`] when the secret is not `whsec_<base64>` (fixing the setting
/// resumes the channel).
pub fn build(config: &SignedWebhookConfig, request: &Request<'_>) -> Result<Outgoing, Verdict> {
    let key = decode_secret(&config.secret).map_err(|e| Verdict::Credentials {
        error: e.to_owned(),
    })?;
    let body = payload(request).to_string().into_bytes();
    let id = request.event.id.clone();
    let signature = sign(&key, &id, request.now_s, &body);
    Ok(Outgoing::json(config.url.clone(), body)
        .header("webhook-id", id)
        .header("webhook-timestamp", request.now_s.to_string())
        .header("webhook-signature", signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vector.
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(decode_secret("whsec_not base64!").is_err());
    }
}
