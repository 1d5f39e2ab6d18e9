//! Merchant webhook endpoints (DESIGN §3 "Merchant webhook endpoints"): a merchant's own
//! URL that its events are signed and sent to, by the Standard Webhooks scheme. Pure data,
//! validation and decisions; the store keeps them (`store::tables::webhook_endpoints`),
//! `http::webhook_endpoints` serves them, the `merchant` notification channel sends to them.
//!
//! Secrets: `whsec_` + base64 of 32 random bytes, answered once (create, rotate). A rotated
//! secret keeps signing beside the new one until `previous_secret_expires_at_ms`
//! (`webhooks.rotation_overlap_s`), so receivers can switch without missing a message.

use serde::{Deserialize, Serialize};

use crate::domain::error::DomainError;
use crate::domain::event::{
    is_merchant_event, kind, Event, EventLevel, EventSource, MERCHANT_EVENT_TYPES,
};
use crate::domain::ids::{prefix, IdSource};
use crate::domain::time::format_rfc3339_ms;

/// Id prefix of an endpoint (Stripe's `we_`).
pub const ID_PREFIX: &str = "we_";
/// Longest endpoint URL, in bytes (browsers' and proxies' practical limit).
pub const URL_BYTES_MAX: usize = 2048;
/// Longest description, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 500;
/// An endpoint URL as the OpenAPI document states it (ECMA-262): http(s), then only the
/// characters of an RFC 3986 URI (unreserved, reserved and `%`; an international host goes
/// in punycode). [`validate_url`] refuses any other byte ([`is_uri_byte`]).
pub const URL_PATTERN: &str = "^https?://[A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=%-]+$";
/// Most entries of `enabled_events` (every merchant type once, or `*`).
pub const ENABLED_EVENTS_MAX: usize = 16;
/// The wildcard of `enabled_events`: every merchant event type.
pub const ALL_EVENTS: &str = "*";
/// Random bytes of a new secret (Standard Webhooks asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// The `disabled_reason` of an endpoint an operator disabled (the console, `POST
/// /admin/webhook_endpoints/{id}/disable`), so its merchant can tell who turned it off.
pub const OPERATOR_DISABLED_REASON: &str = "disabled by the operator";

/// Whether the endpoint takes events (a disabled one is kept, sent nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

impl EndpointStatus {
    pub fn parse(text: &str) -> Option<EndpointStatus> {
        match text {
            "enabled" => Some(EndpointStatus::Enabled),
            "disabled" => Some(EndpointStatus::Disabled),
            _ => None,
        }
    }
}

/// One merchant webhook endpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// `we_` + ULID.
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    pub description: String,
    /// Event types, or `["*"]`.
    pub enabled_events: Vec<String>,
    pub status: EndpointStatus,
    /// Why paykeep disabled it (410, failing too long); `None` when the merchant did.
    pub disabled_reason: Option<String>,
    /// `whsec_<base64>`: signs every message.
    pub secret: String,
    /// The secret before the last rotation, still signing until the time beside it.
    pub previous_secret: Option<(String, i64)>,
    /// Start of the current run of failed deliveries (`None` after a success): past
    /// `webhooks.disable_after_s` of it, the endpoint is disabled.
    pub failing_since_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The `POST /v1/webhook_endpoints` body; unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointBody {
    pub url: String,
    pub enabled_events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The `PATCH /v1/webhook_endpoints/{id}` body: any subset; unknown fields are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointBody {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
    pub status: Option<String>,
}

/// Where an endpoint's URL is checked against the egress rules (`notify::egress`), so the
/// domain stays free of name resolution.
pub type UrlCheck<'a> = &'a dyn Fn(&str) -> Result<(), String>;

/// Whether `byte` may appear in an RFC 3986 URI (section 2: unreserved, reserved, `%`).
pub fn is_uri_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&byte)
}

/// The URL, if it is an http(s) URI of RFC 3986 characters ([`URL_PATTERN`]), at most
/// [`URL_BYTES_MAX`] bytes, and allowed by `egress`.
///
/// # Errors
/// [`DomainError::InvalidEndpoint`] naming `url`.
pub fn validate_url(url: &str, egress: UrlCheck<'_>) -> Result<(), DomainError> {
    let refuse = |detail: String| DomainError::InvalidEndpoint {
        field: "url".to_owned(),
        detail,
    };
    if url.len() > URL_BYTES_MAX {
        return Err(refuse(format!("url must be at most {URL_BYTES_MAX} bytes")));
    }
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let uri_chars = url.bytes().all(is_uri_byte);
    if !scheme_ok || !uri_chars || url::Url::parse(url).is_err() {
        return Err(refuse("url must be an absolute http(s) URL".to_owned()));
    }
    egress(url).map_err(|reason| refuse(format!("url refused: {reason}")))
}

/// The event types, if each is a merchant type or the list is exactly `["*"]`.
///
/// # Errors
/// [`DomainError::InvalidEndpoint`] naming `enabled_events`.
pub fn validate_events(events: &[String]) -> Result<(), DomainError> {
    let refuse = |detail: String| DomainError::InvalidEndpoint {
        field: "enabled_events".to_owned(),
        detail,
    };
    if events.is_empty() || events.len() > ENABLED_EVENTS_MAX {
        return Err(refuse(format!(
            "enabled_events must hold 1..={ENABLED_EVENTS_MAX} event types"
        )));
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        if events.len() > 1 {
            return Err(refuse("`*` must be the only entry".to_owned()));
        }
        return Ok(());
    }
    if let Some(unknown) = events.iter().find(|e| !is_merchant_event(e)) {
        return Err(refuse(format!(
            "unknown event type `{unknown}`; expected `*` or one of {}",
            MERCHANT_EVENT_TYPES.join(", ")
        )));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), DomainError> {
    if description.chars().count() > DESCRIPTION_CHARS_MAX {
        return Err(DomainError::InvalidEndpoint {
            field: "description".to_owned(),
            detail: format!("description must be at most {DESCRIPTION_CHARS_MAX} characters"),
        });
    }
    Ok(())
}

impl CreateEndpointBody {
    /// The new endpoint, if the body is valid.
    ///
    /// # Errors
    /// [`DomainError::InvalidEndpoint`] naming the field.
    pub fn into_endpoint(
        self,
        merchant_id: &str,
        id: String,
        secret: String,
        egress: UrlCheck<'_>,
        now_ms: i64,
    ) -> Result<WebhookEndpoint, DomainError> {
        validate_url(&self.url, egress)?;
        validate_events(&self.enabled_events)?;
        let description = self.description.unwrap_or_default();
        validate_description(&description)?;
        Ok(WebhookEndpoint {
            id,
            merchant_id: merchant_id.to_owned(),
            url: self.url,
            description,
            enabled_events: self.enabled_events,
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret,
            previous_secret: None,
            failing_since_ms: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        })
    }
}

impl UpdateEndpointBody {
    /// `endpoint` with the body's changes, if they are valid. Enabling an endpoint clears
    /// what disabled it.
    ///
    /// # Errors
    /// [`DomainError::InvalidEndpoint`] naming the field.
    pub fn apply(
        self,
        mut endpoint: WebhookEndpoint,
        egress: UrlCheck<'_>,
        now_ms: i64,
    ) -> Result<WebhookEndpoint, DomainError> {
        if let Some(url) = self.url {
            validate_url(&url, egress)?;
            endpoint.url = url;
        }
        if let Some(events) = self.enabled_events {
            validate_events(&events)?;
            endpoint.enabled_events = events;
        }
        if let Some(description) = self.description {
            validate_description(&description)?;
            endpoint.description = description;
        }
        if let Some(status) = self.status {
            let status =
                EndpointStatus::parse(&status).ok_or_else(|| DomainError::InvalidEndpoint {
                    field: "status".to_owned(),
                    detail: "status must be enabled or disabled".to_owned(),
                })?;
            if status == EndpointStatus::Enabled {
                endpoint.disabled_reason = None;
                endpoint.failing_since_ms = None;
            }
            endpoint.status = status;
        }
        endpoint.updated_at_ms = now_ms;
        Ok(endpoint)
    }
}

/// What a delivery's outcome does to its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// The endpoint answered 410 Gone: the merchant took it down.
    Gone,
    Failed,
}

impl WebhookEndpoint {
    /// Whether an event of type `event_kind` goes to this endpoint now.
    pub fn wants(&self, event_kind: &str) -> bool {
        self.status == EndpointStatus::Enabled
            && is_merchant_event(event_kind)
            && self
                .enabled_events
                .iter()
                .any(|e| e == ALL_EVENTS || e == event_kind)
    }

    /// The secrets that sign a message sent at `now_ms`: the current one, and the previous
    /// one while its overlap lasts.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let mut out = vec![self.secret.as_str()];
        if let Some((previous, until_ms)) = &self.previous_secret {
            if now_ms < *until_ms {
                out.push(previous);
            }
        }
        out
    }

    /// A new secret; the current one keeps signing until `now_ms + overlap_ms`.
    pub fn rotate(&mut self, secret: String, now_ms: i64, overlap_ms: i64) {
        let old = std::mem::replace(&mut self.secret, secret);
        self.previous_secret = (overlap_ms > 0).then(|| (old, now_ms.saturating_add(overlap_ms)));
        self.updated_at_ms = now_ms;
    }

    /// The endpoint after a delivery `result` at `now_ms`: a success ends a failing run;
    /// a 410, or failures for `disable_after_ms` on end, disable it. Returns the endpoint if
    /// it changed, and whether this result disabled it.
    pub fn after_delivery(
        &self,
        result: DeliveryResult,
        now_ms: i64,
        disable_after_ms: i64,
    ) -> Option<(WebhookEndpoint, bool)> {
        let mut next = self.clone();
        match result {
            DeliveryResult::Delivered => {
                next.failing_since_ms = None;
            }
            DeliveryResult::Gone => {
                next.failing_since_ms.get_or_insert(now_ms);
                if next.status == EndpointStatus::Enabled {
                    next.status = EndpointStatus::Disabled;
                    next.disabled_reason = Some("the endpoint answered 410 Gone".to_owned());
                }
            }
            DeliveryResult::Failed => {
                let since = *next.failing_since_ms.get_or_insert(now_ms);
                if next.status == EndpointStatus::Enabled
                    && now_ms.saturating_sub(since) >= disable_after_ms
                {
                    next.status = EndpointStatus::Disabled;
                    next.disabled_reason = Some(format!(
                        "every delivery failed for {} s",
                        disable_after_ms / 1000
                    ));
                }
            }
        }
        if next == *self {
            return None;
        }
        let disabled = self.status == EndpointStatus::Enabled && next.status != self.status;
        next.updated_at_ms = now_ms;
        Some((next, disabled))
    }

    /// The endpoint disabled by an operator at `now_ms`, or unchanged if it is already
    /// disabled (whatever disabled it: the operator asking twice changes nothing, and the
    /// reason paykeep or the merchant had is kept).
    pub fn disabled_by_operator(&self, now_ms: i64) -> WebhookEndpoint {
        let mut next = self.clone();
        if next.status == EndpointStatus::Enabled {
            next.status = EndpointStatus::Disabled;
            next.disabled_reason = Some(OPERATOR_DISABLED_REASON.to_owned());
            next.updated_at_ms = now_ms;
        }
        next
    }

    /// The operator's view (admin API, console): the merchant API's view with the
    /// owning `merchant_id` and `failing_since` (RFC 3339, `null` when the last delivery
    /// succeeded). No secret.
    pub fn to_admin_value(&self) -> serde_json::Value {
        let mut value = self.to_value();
        value["merchant_id"] = serde_json::Value::String(self.merchant_id.clone());
        value["failing_since"] = self
            .failing_since_ms
            .map(format_rfc3339_ms)
            .map_or(serde_json::Value::Null, serde_json::Value::String);
        value
    }

    /// The merchant API's view: everything but the secrets.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "description": self.description,
            "enabled_events": self.enabled_events,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "created_at": format_rfc3339_ms(self.created_at_ms),
            "updated_at": format_rfc3339_ms(self.updated_at_ms),
        })
    }

    /// The view with the secret, answered once (create, rotate).
    pub fn to_value_with_secret(&self) -> serde_json::Value {
        let mut value = self.to_value();
        value["secret"] = serde_json::Value::String(self.secret.clone());
        value
    }
}

/// The operator alert of an endpoint paykeep disabled (DESIGN §3): warning, one per
/// endpoint and disabling (the dedupe key carries the time).
pub fn endpoint_disabled_event(
    endpoint: &WebhookEndpoint,
    ids: &mut dyn IdSource,
    now_ms: i64,
) -> Event {
    let reason = endpoint.disabled_reason.clone().unwrap_or_default();
    let payload = serde_json::json!({
        "merchant_id": endpoint.merchant_id,
        "endpoint_id": endpoint.id,
        "detail": format!("merchant {} endpoint {}: {reason}", endpoint.merchant_id, endpoint.id),
    });
    Event {
        id: ids.next_id(prefix::EVENT),
        kind: kind::WEBHOOK_ENDPOINT_DISABLED.to_owned(),
        level: EventLevel::Warning,
        source: EventSource::System,
        title: "Merchant webhook endpoint disabled".to_owned(),
        entity_type: "webhook_endpoint".to_owned(),
        entity_id: endpoint.id.clone(),
        dedupe_key: format!(
            "{}:{}:{now_ms}",
            kind::WEBHOOK_ENDPOINT_DISABLED,
            endpoint.id
        ),
        payload: payload.to_string(),
        created_at_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(_: &str) -> Result<(), String> {
        Ok(())
    }

    fn endpoint() -> WebhookEndpoint {
        CreateEndpointBody {
            url: "https://example.com/hook".into(),
            enabled_events: vec!["payment.succeeded".into()],
            description: None,
        }
        .into_endpoint("m_1", "we_1".into(), "whsec_a".into(), &allow, 1_000)
        .unwrap()
    }

    #[test]
    fn bad_urls_and_events_name_their_field() {
        for url in [
            "ftp://example.com/x",
            "example.com",
            &format!("https://e.com/{}", "a".repeat(URL_BYTES_MAX)),
        ] {
            let e = validate_url(url, &allow).unwrap_err();
            assert_eq!(e.fields(), vec!["url"], "{url}");
        }
        let refuse = |_: &str| Err("loopback".to_owned());
        assert_eq!(
            validate_url("http://127.0.0.1/", &refuse)
                .unwrap_err()
                .fields(),
            vec!["url"]
        );
        for events in [
            vec![],
            vec!["payment.bogus".to_owned()],
            vec!["*".into(), "payment.failed".into()],
        ] {
            assert_eq!(
                validate_events(&events).unwrap_err().fields(),
                vec!["enabled_events"]
            );
        }
        assert!(validate_events(&["*".to_owned()]).is_ok());
        assert!(validate_events(&["notification.test".to_owned()]).is_err());
    }

    #[test]
    fn wants_only_enabled_merchant_types() {
        let mut e = endpoint();
        assert!(e.wants("payment.succeeded"));
        assert!(!e.wants("payment.failed"));
        e.enabled_events = vec!["*".into()];
        assert!(e.wants("refund.failed"));
        assert!(!e.wants("system.dead_letters"));
        e.status = EndpointStatus::Disabled;
        assert!(!e.wants("payment.succeeded"));
    }

    #[test]
    fn a_rotated_secret_signs_during_the_overlap_only() {
        let mut e = endpoint();
        e.rotate("whsec_b".into(), 2_000, 500);
        assert_eq!(e.signing_secrets(2_499), vec!["whsec_b", "whsec_a"]);
        assert_eq!(e.signing_secrets(2_500), vec!["whsec_b"]);
    }

    #[test]
    fn an_operator_disable_is_idempotent_and_keeps_an_earlier_reason() {
        let e = endpoint();
        let off = e.disabled_by_operator(2_000);
        assert_eq!(off.status, EndpointStatus::Disabled);
        assert_eq!(
            off.disabled_reason.as_deref(),
            Some(OPERATOR_DISABLED_REASON)
        );
        assert_eq!(off.updated_at_ms, 2_000);
        assert_eq!(off.disabled_by_operator(3_000), off);
        let (gone, _) = e.after_delivery(DeliveryResult::Gone, 5, 100).unwrap();
        assert_eq!(gone.disabled_by_operator(3_000), gone);
        let admin = off.to_admin_value().to_string();
        assert!(!admin.contains("whsec_"), "{admin}");
        assert!(admin.contains("\"merchant_id\":\"m_1\""), "{admin}");
    }

    #[test]
    fn gone_or_failing_too_long_disables() {
        let e = endpoint();
        let (gone, disabled) = e.after_delivery(DeliveryResult::Gone, 5, 100).unwrap();
        assert!(disabled);
        assert_eq!(gone.status, EndpointStatus::Disabled);
        let (failing, disabled) = e.after_delivery(DeliveryResult::Failed, 10, 100).unwrap();
        assert!(!disabled);
        assert_eq!(failing.failing_since_ms, Some(10));
        assert!(failing
            .after_delivery(DeliveryResult::Failed, 50, 100)
            .is_none());
        let (off, disabled) = failing
            .after_delivery(DeliveryResult::Failed, 110, 100)
            .unwrap();
        assert!(disabled && off.status == EndpointStatus::Disabled);
        let (ok, _) = failing
            .after_delivery(DeliveryResult::Delivered, 60, 100)
            .unwrap();
        assert_eq!(ok.failing_since_ms, None);
        assert!(e
            .after_delivery(DeliveryResult::Delivered, 60, 100)
            .is_none());
    }
}
