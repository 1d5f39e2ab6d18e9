//! The OpenAPI 3.1 document of `/openapi.json` (<https://spec.openapis.org/oas/v3.1.0>),
//! built once per server instance when it starts.
//!
//! Prose, examples and response shapes are hand-kept, one fragment per resource
//! (`src/http/openapi/*.json`, each `{"paths", "schemas", "parameters"}`) merged over
//! `base.json` (info, tags, security schemes, shared responses, headers and links). Every
//! fact that exists in code is written in from code when the document is built, and the
//! fragments do not repeat it:
//! - [`facts`]: `servers` from the bound address; the currency enum and the amount maximum
//!   from `[payments]`; the length limits and text rules from the consts the validators use;
//!   id shapes from the id prefixes; the channel, event type and merchant event type enums;
//!   the settings body from the `[notifications]` config's own shape;
//! - [`parameter_facts`]: page sizes and the dispatch limit from the handlers' consts;
//! - [`problem_facts`]: the `code` and `status` each problem answer can carry, from the
//!   domain's error table and the HTTP layer's problem constructors;
//! - [`complete_responses`]: the statuses every route of a kind can answer (401 where a token
//!   is needed, 400/408/413/415 where a JSON body is read, 404 on a path with an id) and
//!   `X-Request-Id` on every answer;
//! - [`webhooks`]: what a merchant endpoint is sent, one entry per merchant event type, signed
//!   by the Standard Webhooks scheme (<https://www.standardwebhooks.com/>).
//!
//! Tests check that every fact lands where it names, every `$ref` and link resolves, every
//! operation has a description and tags, and `tests/ops.rs` that the paths are exactly
//! [`crate::http::ROUTES`]. Adding a resource: its fragment file and one line in
//! [`FRAGMENTS`].

use std::net::SocketAddr;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::domain::delivery::{Channel, DeliveryStatus};
use crate::domain::event::kind;
use crate::domain::idempotency::HEADER_KEY_CHARS_MAX;
use crate::domain::ids::{prefix, ID_LENGTH_MAX};
use crate::domain::payment::{
    DESCRIPTION_CHARS_MAX, EMAIL_CHARS_MAX, METADATA_KEY_CHARS_MAX, METADATA_PAIRS_MAX,
    METADATA_VALUE_CHARS_MAX, ORDER_NO_CHARS_MAX, PAYMENT_METHOD_CHARS_MAX,
};
use crate::domain::refund::{OPERATOR_ID_CHARS_MAX, REASON_CHARS_MAX};
use crate::domain::webhook_endpoint as endpoint;
use crate::http::discrepancies::{OPERATOR_CHARS_MAX, RESOLUTION_CHARS_MAX};
use crate::http::problem::Problem;
use crate::http::request_id;

const BASE: &str = include_str!("openapi/base.json");

/// Every fragment, by resource.
const FRAGMENTS: &[&str] = &[
    include_str!("openapi/payments.json"),
    include_str!("openapi/refunds.json"),
    include_str!("openapi/lists.json"),
    include_str!("openapi/webhook_endpoints.json"),
    include_str!("openapi/events.json"),
    include_str!("openapi/provider_webhooks.json"),
    include_str!("openapi/reconciliations.json"),
    include_str!("openapi/ops.json"),
    include_str!("openapi/admin_notifications.json"),
    include_str!("openapi/console.json"),
    include_str!("openapi/admin_webhook_endpoints.json"),
];

/// Text without control characters (Rust's `char::is_control`, Unicode category Cc:
/// U+0000–U+001F and U+007F–U+009F), as ECMA-262 regular expressions (JSON Schema's
/// dialect): what `check_text` and the refund checks accept.
const TEXT_CHARS: &str = "\\x00-\\x1f\\x7f-\\x9f";

/// The document of a server listening on `addr` with `config`, as JSON text.
pub fn document(config: &Config, addr: SocketAddr) -> String {
    let mut doc = assemble(BASE, FRAGMENTS);
    for (pointer, key, value) in facts(config, addr) {
        if let Some(parent) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
            parent.insert(key.to_owned(), value);
        }
    }
    for (pointer, problems) in problem_facts() {
        let media = doc
            .pointer_mut(pointer)
            .and_then(|response| response.pointer_mut("/content/application~1problem+json"))
            .and_then(Value::as_object_mut);
        if let Some(media) = media {
            media.insert("schema".to_owned(), problem_schema(&problems));
        }
    }
    for (path, method, name, schema) in parameter_facts() {
        if let Some(parameter) = parameter_mut(&mut doc, path, method, name) {
            parameter.insert("schema".to_owned(), schema);
        }
    }
    complete_responses(&mut doc);
    doc["webhooks"] = webhooks();
    doc.to_string()
}

fn assemble(base: &str, fragments: &[&str]) -> Value {
    let mut doc: Value = serde_json::from_str(base).unwrap_or_else(|_| Value::Object(Map::new()));
    for fragment in fragments {
        let Ok(fragment) = serde_json::from_str::<Value>(fragment) else {
            continue;
        };
        merge_into(&mut doc["paths"], &fragment["paths"]);
        merge_into(&mut doc["components"]["schemas"], &fragment["schemas"]);
        merge_into(
            &mut doc["components"]["parameters"],
            &fragment["parameters"],
        );
    }
    doc
}

/// The `[notifications]` section's shape ([`shape_of`] its serialized defaults), with
/// each channel's secret keys (`SECRETS`) marked `"format": "password"` (OpenAPI 3.1
/// §4.2, "a hint to UIs to obscure input"); the console reads the marks to draw write-only
/// inputs. Not `writeOnly`: the settings answer does carry the keys, masked.
fn notifications_section(notifications: &Value) -> Value {
    let mut shape = shape_of(notifications);
    for (section, secret) in crate::notify::channels::secret_paths() {
        let shown = if secret.is_url {
            "a secret URL, shown as its origin + \"/********\""
        } else {
            "a secret, shown as \"********\""
        };
        let pointer = format!("/properties/{section}/properties/{}", secret.key);
        if let Some(key) = shape.pointer_mut(&pointer).and_then(Value::as_object_mut) {
            key.insert("format".to_owned(), "password".into());
            key.insert("description".to_owned(), shown.into());
        }
    }
    shape
}

fn merge_into(target: &mut Value, source: &Value) {
    let (Some(target), Some(source)) = (target.as_object_mut(), source.as_object()) else {
        return;
    };
    for (key, value) in source {
        match target.get_mut(key) {
            // The same path in two fragments (e.g. GET and POST): merge the operations.
            Some(existing) if existing.is_object() && value.is_object() => {
                merge_into(existing, value)
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Every fact the document takes from code: (JSON pointer of an object, member, value).
fn facts(config: &Config, addr: SocketAddr) -> Vec<(&'static str, &'static str, Value)> {
    const PAY: &str = "/components/schemas/CreatePayment/properties";
    const REFUND: &str = "/components/schemas/CreateRefund/properties";
    const ENDPOINT: &str = "/components/schemas/CreateWebhookEndpoint/properties";
    const UPDATE: &str = "/components/schemas/UpdateWebhookEndpoint/properties";
    let payments = &config.payments;
    let text = format!("^[^{TEXT_CHARS}]*$");
    let email_part = format!("[^@\\s{TEXT_CHARS}]");
    let amount_max = json!(payments.amount_minor_max);
    let url = json!({
        "type": "string",
        "maxLength": endpoint::URL_BYTES_MAX,
        "pattern": endpoint::URL_PATTERN,
        "description": "An absolute http(s) URI (RFC 3986: ASCII only, an international host in punycode). A host that is loopback, private or otherwise special is refused (422) unless notifications.allow_private_targets."
    });
    let events = json!({
        "description": "Merchant event types, or [\"*\"] for all of them.",
        "anyOf": [
            {"const": [endpoint::ALL_EVENTS]},
            {"type": "array", "minItems": 1, "maxItems": endpoint::ENABLED_EVENTS_MAX,
             "items": {"$ref": "#/components/schemas/MerchantEventType"}}
        ]
    });
    const RESOLVE: &str = "/components/schemas/ResolveDiscrepancy/properties";
    let id = |prefix: &str| json!({"type": "string", "pattern": format!("^{prefix}[0-9a-z]+$"), "maxLength": ID_LENGTH_MAX});
    let notifications = serde_json::to_value(&config.notifications).unwrap_or_default();
    vec![
        (
            "/components/schemas",
            "NotificationsSection",
            notifications_section(&notifications),
        ),
        ("/components/schemas", "PaymentId", id(prefix::PAYMENT)),
        ("/components/schemas", "RefundId", id(prefix::REFUND)),
        ("/components/schemas", "EventId", id(prefix::EVENT)),
        ("/components/schemas", "DeliveryId", id(prefix::DELIVERY)),
        (
            "/components/schemas",
            "ReconciliationId",
            id(prefix::RECONCILIATION),
        ),
        (
            "/components/schemas",
            "DiscrepancyId",
            id(prefix::DISCREPANCY),
        ),
        (
            "/components/schemas",
            "WebhookEndpointId",
            id(endpoint::ID_PREFIX),
        ),
        (
            RESOLVE,
            "resolution",
            json!({"type": "string", "minLength": 1, "maxLength": RESOLUTION_CHARS_MAX, "pattern": text}),
        ),
        (
            RESOLVE,
            "operator",
            json!({"type": "string", "minLength": 1, "maxLength": OPERATOR_CHARS_MAX, "pattern": text}),
        ),
        (
            "",
            "servers",
            json!([{"url": format!("http://{addr}"), "description": "This instance: the address it is bound to (server.bind, or --bind)."}]),
        ),
        (
            "/components/schemas/Channel",
            "enum",
            json!(Channel::ALL.map(Channel::as_str)),
        ),
        (
            "/components/schemas/DeliveryStatus",
            "enum",
            json!(DeliveryStatus::ALL.map(DeliveryStatus::as_str)),
        ),
        (
            "/components/parameters/IdempotencyKey",
            "schema",
            json!({"type": "string", "minLength": 1, "maxLength": HEADER_KEY_CHARS_MAX, "pattern": "^[!-~]([ -~]*[!-~])?$", "description": "Spaces inside only: HTTP drops them at either end (RFC 9110 section 5.5)."}),
        ),
        (
            "/components/schemas",
            "EventType",
            json!({"type": "string", "enum": kind::ALL}),
        ),
        (
            "/components/schemas/MerchantEventType",
            "enum",
            json!(crate::domain::event::MERCHANT_EVENT_TYPES),
        ),
        (
            "/components/schemas/Currency",
            "enum",
            json!(payments.currencies),
        ),
        (
            "/components/schemas/CreatePayment/examples/0",
            "currency",
            json!(payments.currencies.first()),
        ),
        (
            PAY,
            "order_no",
            json!({"type": "string", "minLength": 1, "maxLength": ORDER_NO_CHARS_MAX, "pattern": text, "description": "The merchant's order: one payment per order, forever."}),
        ),
        (
            PAY,
            "amount",
            json!({"type": "integer", "minimum": 1, "maximum": amount_max, "description": "Minor units of the currency (1999 = 19.99 USD); at most payments.amount_minor_max."}),
        ),
        (
            PAY,
            "payment_method",
            json!({"type": "string", "minLength": 1, "maxLength": PAYMENT_METHOD_CHARS_MAX, "pattern": "^[!-~]*$", "description": "A provider token, visible ASCII (pm_card_visa with the simulator)."}),
        ),
        (
            PAY,
            "description",
            json!({"type": ["string", "null"], "maxLength": DESCRIPTION_CHARS_MAX}),
        ),
        (
            PAY,
            "customer_email",
            json!({"type": ["string", "null"], "maxLength": EMAIL_CHARS_MAX, "pattern": format!("^{email_part}+@{email_part}*\\.{email_part}*$"), "description": "An e-mail address: something@domain.with.dot, no spaces."}),
        ),
        (
            PAY,
            "metadata",
            json!({"type": ["object", "null"], "maxProperties": METADATA_PAIRS_MAX, "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_CHARS_MAX, "pattern": text}, "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_CHARS_MAX}}),
        ),
        (
            REFUND,
            "amount",
            json!({"type": "integer", "minimum": 1, "maximum": amount_max, "description": "Minor units taken from the payment's refundable balance (the fee included)."}),
        ),
        (
            REFUND,
            "operator_id",
            json!({"type": "string", "minLength": 1, "maxLength": OPERATOR_ID_CHARS_MAX, "pattern": format!("^[^:{TEXT_CHARS}]*$"), "description": "Who asked for the refund; no ':' (it is part of the default key)."}),
        ),
        (
            REFUND,
            "reason",
            json!({"type": ["string", "null"], "maxLength": REASON_CHARS_MAX, "pattern": text}),
        ),
        (ENDPOINT, "url", url.clone()),
        (
            UPDATE,
            "url",
            json!({"anyOf": [url, {"type": "null"}], "description": "null or absent: unchanged."}),
        ),
        (ENDPOINT, "enabled_events", events.clone()),
        (
            UPDATE,
            "enabled_events",
            json!({"anyOf": [events, {"type": "null"}], "description": "null or absent: unchanged."}),
        ),
        (
            ENDPOINT,
            "description",
            json!({"type": ["string", "null"], "maxLength": endpoint::DESCRIPTION_CHARS_MAX}),
        ),
        (
            UPDATE,
            "description",
            json!({"type": ["string", "null"], "maxLength": endpoint::DESCRIPTION_CHARS_MAX, "description": "null or absent: unchanged."}),
        ),
        (
            "/components/parameters/OrderNo",
            "schema",
            json!({"type": "string", "minLength": 1, "maxLength": ORDER_NO_CHARS_MAX}),
        ),
    ]
}

/// The problem answers whose `code` and `status` come from code (the domain's error table
/// and the HTTP layer's constructors): (JSON pointer of a problem+json media type, the
/// problems it can carry). Its schema is the Problem narrowed to their codes and statuses,
/// so schemathesis checks an answer's code, not only its shape.
fn problem_facts() -> Vec<(&'static str, Vec<Problem>)> {
    use crate::domain::error::DomainError as E;
    use crate::http::{auth, body};
    let payment_id = String::new;
    let reused = || E::IdempotencyKeyReused { fields: Vec::new() };
    vec![
        (
            "/components/responses/InvalidRequest",
            vec![Problem::invalid("", "")],
        ),
        (
            "/components/responses/Unauthorized",
            vec![auth::unauthorized()],
        ),
        (
            "/components/responses/NotFound",
            vec![Problem::not_found("")],
        ),
        (
            "/components/responses/PayloadTooLarge",
            vec![body::too_large(0)],
        ),
        (
            "/components/responses/UnsupportedMediaType",
            vec![Problem::unsupported_media_type("")],
        ),
        (
            "/components/responses/RequestTimeout",
            vec![Problem::request_timeout(std::time::Duration::ZERO)],
        ),
        (
            "/components/responses/Conflict",
            vec![
                E::OrderAlreadyPaid {
                    payment_id: payment_id(),
                }
                .into(),
                E::IdempotencyKeyInUse { retry_after_s: 1 }.into(),
            ],
        ),
        (
            "/components/responses/Overloaded",
            vec![Problem::overloaded()],
        ),
        (
            "/paths/~1v1~1payments/post/responses/422",
            vec![
                reused().into(),
                E::OrderMismatch {
                    payment_id: payment_id(),
                    fields: Vec::new(),
                }
                .into(),
            ],
        ),
        (
            "/paths/~1v1~1payments~1{payment_id}~1refunds/post/responses/422",
            vec![
                reused().into(),
                E::PaymentNotSucceeded {
                    payment_id: payment_id(),
                    status: "",
                }
                .into(),
                E::RefundBelowFee {
                    payment_id: payment_id(),
                    fee_minor: 0,
                }
                .into(),
                E::RefundWindowExpired {
                    payment_id: payment_id(),
                    window_days: 0,
                }
                .into(),
                E::RefundExceedsPayment {
                    payment_id: payment_id(),
                    held_minor: 0,
                    amount_minor: 0,
                }
                .into(),
            ],
        ),
        (
            "/paths/~1v1~1webhook_endpoints/post/responses/422",
            vec![
                reused().into(),
                E::InvalidEndpoint {
                    field: String::new(),
                    detail: String::new(),
                }
                .into(),
                E::EndpointsLimit { endpoints_max: 0 }.into(),
            ],
        ),
        (
            "/paths/~1v1~1webhook_endpoints~1{webhook_endpoint_id}/patch/responses/422",
            vec![E::InvalidEndpoint {
                field: String::new(),
                detail: String::new(),
            }
            .into()],
        ),
    ]
}

/// The Problem schema narrowed to the codes and statuses of `problems`.
fn problem_schema(problems: &[Problem]) -> Value {
    let mut codes: Vec<&str> = problems.iter().map(|p| p.code).collect();
    codes.dedup();
    let mut statuses: Vec<u16> = problems.iter().map(|p| p.status).collect();
    statuses.dedup();
    json!({"allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {"properties": {"code": {"enum": codes}, "status": {"enum": statuses}}}
    ]})
}

/// The JSON Schema of the shape of `value` (a serialized config section): each member with
/// its JSON type, no other member (the config types refuse unknown fields), none required
/// (a settings change is any subset). Types only: no value, so no secret, reaches the
/// document. An empty list says only that it is a list.
fn shape_of(value: &Value) -> Value {
    match value {
        Value::Object(members) => {
            let properties: Map<String, Value> = members
                .iter()
                .map(|(name, member)| (name.clone(), shape_of(member)))
                .collect();
            json!({"type": "object", "additionalProperties": false, "properties": properties})
        }
        Value::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": shape_of(first)}),
            None => json!({"type": "array"}),
        },
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(number) if number.is_f64() => json!({"type": "number"}),
        Value::Number(_) => json!({"type": "integer"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Null => json!({}),
    }
}

/// The schema of each query parameter whose bounds are code: (path, method, name, schema).
fn parameter_facts() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    use crate::http::{admin, list};
    use crate::notify::dispatcher::{PASS_LIMIT_DEFAULT, PASS_LIMIT_MAX};
    let page = |default: usize, max: usize| json!({"type": "integer", "minimum": 1, "maximum": max, "default": default});
    let admin_page = page(admin::PAGE_LIMIT_DEFAULT, admin::PAGE_LIMIT_MAX);
    let list_page = page(list::LIMIT_DEFAULT, list::LIMIT_MAX);
    let created = json!({"anyOf": [
        {"type": "integer", "minimum": 0, "maximum": list::UNIX_SECONDS_MAX},
        {"type": "string", "format": "date-time"}
    ]});
    let by_created = ["/v1/payments", "/v1/refunds"]
        .into_iter()
        .flat_map(|path| list::CREATED.iter().map(move |name| (path, *name)))
        .map(|(path, name)| (path, "get", name, created.clone()));
    vec![
        ("/v1/events", "get", "limit", list_page.clone()),
        ("/v1/payments", "get", "limit", list_page.clone()),
        ("/v1/refunds", "get", "limit", list_page),
        (
            "/v1/payments",
            "get",
            "order_no",
            json!({"type": "string", "minLength": 1, "maxLength": ORDER_NO_CHARS_MAX}),
        ),
        ("/admin/events", "get", "limit", admin_page.clone()),
        ("/admin/deliveries", "get", "limit", admin_page.clone()),
        ("/admin/reconciliations", "get", "limit", admin_page),
        (
            "/admin/notifications/dispatch",
            "post",
            "limit",
            page(PASS_LIMIT_DEFAULT, PASS_LIMIT_MAX),
        ),
    ]
    .into_iter()
    .chain(by_created)
    .collect()
}

/// The parameter `name` of the operation `method path`, as written in its fragment.
fn parameter_mut<'a>(
    doc: &'a mut Value,
    path: &str,
    method: &str,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    doc["paths"][path][method]["parameters"]
        .as_array_mut()?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|parameter| parameter.get("name").and_then(Value::as_str) == Some(name))
}

/// Adds what every operation of a kind answers, where its fragment does not say more:
/// `X-Request-Id` on every answer, 401 (with `WWW-Authenticate`) where a token is needed,
/// 400, 408, 413 and 415 where a JSON body is read, 404 where the path names a resource.
fn complete_responses(doc: &mut Value) {
    static GENERIC: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| json!({"$ref": "#/components/responses/Problem"}));
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut().filter_map(Value::as_object_mut) {
            let secured = operation
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            let json_body = operation
                .get("requestBody")
                .and_then(|body| body.pointer("/content/application~1json"))
                .is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            // Absent, or the generic problem: the answer of this kind, which names its code.
            let mut add = |status: &str, name: &str| {
                let slot = responses.entry(status).or_insert_with(|| GENERIC.clone());
                if *slot == *GENERIC {
                    *slot = json!({"$ref": format!("#/components/responses/{name}")});
                }
            };
            if secured {
                add("401", "Unauthorized");
            }
            if json_body {
                add("400", "InvalidRequest");
                add("408", "RequestTimeout");
                add("413", "PayloadTooLarge");
                add("415", "UnsupportedMediaType");
            }
            if path.contains('{') {
                add("404", "NotFound");
            }
            for response in responses.values_mut().filter_map(Value::as_object_mut) {
                if response.contains_key("$ref") {
                    continue;
                }
                let headers = response
                    .entry("headers")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                if let Some(headers) = headers {
                    headers.insert(
                        request_id::HEADER.to_owned(),
                        json!({"$ref": "#/components/headers/XRequestId"}),
                    );
                }
            }
        }
    }
}

/// `webhooks`: what a merchant's endpoint is sent, one entry per merchant event type
/// (DESIGN §3): the event as `GET /v1/events/{id}` answers it, signed by the Standard
/// Webhooks scheme.
fn webhooks() -> Value {
    let mut out = Map::new();
    for kind in crate::domain::event::MERCHANT_EVENT_TYPES {
        let object = if kind.starts_with("payment.") {
            "Payment"
        } else {
            "Refund"
        };
        out.insert(
            (*kind).to_owned(),
            json!({"post": {
                "operationId": format!("webhook_{}", kind.replace('.', "_")),
                "tags": ["Webhooks"],
                "summary": format!("{kind}: sent to each of the merchant's enabled endpoints that want it"),
                "description": "Sent through the outbox with retries (notifications.retry_schedule_s) until the endpoint answers 2xx; a 410 disables the endpoint. Verify webhook-signature before trusting the body: v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\"> keyed with the base64 part of the endpoint's whsec_ secret (Standard Webhooks). The body's id is the webhook-id: deduplicate on it.",
                "parameters": [
                    {"$ref": "#/components/parameters/WebhookId"},
                    {"$ref": "#/components/parameters/WebhookTimestamp"},
                    {"$ref": "#/components/parameters/WebhookSignature"}
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/MerchantEvent"},
                        {"properties": {
                            "type": {"const": kind},
                            "data": {"properties": {"object": {"$ref": format!("#/components/schemas/{object}")}}}
                        }}
                    ]
                }}}},
                "responses": {
                    "2XX": {"description": "Received: the delivery is done."},
                    "410": {"description": "Gone: paykeep disables the endpoint."},
                    "default": {"description": "Anything else (or no answer): retried on the schedule, then dead."}
                }
            }}),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> (Config, Value) {
        let mut config = Config::embedded().expect("embedded config");
        config.payments.currencies = vec!["EUR".into(), "JPY".into()];
        config.payments.amount_minor_max = 4242;
        let addr: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let doc = serde_json::from_str(&document(&config, addr)).expect("document is JSON");
        (config, doc)
    }

    #[test]
    fn every_fragment_parses_and_every_fact_lands() {
        for fragment in FRAGMENTS {
            let value: Value = serde_json::from_str(fragment).expect("fragment is JSON");
            assert!(value["paths"].is_object() && value["schemas"].is_object());
        }
        let config = Config::embedded().unwrap();
        let doc = assemble(BASE, FRAGMENTS);
        for (pointer, key, _) in facts(&config, "127.0.0.1:1".parse().unwrap()) {
            assert!(
                doc.pointer(pointer).is_some_and(Value::is_object),
                "{pointer} (for {key}) is not in the fragments"
            );
        }
        for (pointer, _) in problem_facts() {
            assert!(
                doc.pointer(pointer)
                    .and_then(|r| r.pointer("/content/application~1problem+json"))
                    .is_some(),
                "{pointer} is no problem answer in the fragments"
            );
        }
        let mut doc = doc;
        for (path, method, name, _) in parameter_facts() {
            assert!(
                parameter_mut(&mut doc, path, method, name).is_some(),
                "{method} {path} has no parameter {name}"
            );
        }
    }

    /// Every `$ref` of `value` that points into the document, with where it is.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                    out.push((at.clone(), target));
                }
                for (key, inner) in map {
                    refs(inner, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (index, inner) in items.iter().enumerate() {
                    refs(inner, format!("{at}/{index}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let (_, doc) = built();
        let mut found = Vec::new();
        refs(&doc, String::new(), &mut found);
        assert!(found.len() > 100);
        for (at, target) in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                doc.pointer(pointer).is_some(),
                "{at}: {target} is not there"
            );
        }
    }

    #[test]
    fn every_link_names_an_operation() {
        let (_, doc) = built();
        let mut operations = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                operations.push(op["operationId"].clone());
            }
        }
        let mut links: Vec<&Value> = doc["components"]["links"]
            .as_object()
            .unwrap()
            .values()
            .collect();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    if let Some(found) = response["links"].as_object() {
                        links.extend(found.values().filter(|l| l.get("$ref").is_none()));
                    }
                }
            }
        }
        assert!(links.len() >= 10);
        for link in links {
            assert!(operations.contains(&link["operationId"]), "{link}");
        }
    }

    /// Each channel's secret keys are marked `"format": "password"` in the settings' shape
    /// (the console reads this to draw write-only inputs).
    #[test]
    fn secret_settings_are_marked_as_passwords() {
        let (_, doc) = built();
        let section = &doc["components"]["schemas"]["NotificationsSection"]["properties"];
        let paths = crate::notify::channels::secret_paths();
        assert!(!paths.is_empty());
        for (name, secret) in paths {
            let key = &section[name]["properties"][secret.key];
            assert_eq!(key["format"], "password", "{name}.{}", secret.key);
        }
    }

    #[test]
    fn no_configured_secret_reaches_the_document() {
        let mut config = Config::embedded().unwrap();
        config.admin.token = "admin_token_under_test".into();
        config.notifications.feishu.secret = "feishu_secret_under_test".into();
        let text = document(&config, "127.0.0.1:1".parse().unwrap());
        for secret in ["admin_token_under_test", "feishu_secret_under_test"]
            .into_iter()
            .chain(config.secrets())
            .filter(|secret| !secret.is_empty())
        {
            assert!(!text.contains(secret), "{secret} is in the document");
        }
    }

    #[test]
    fn every_domain_error_code_is_documented() {
        let (_, doc) = built();
        let codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap();
        for error in crate::domain::error::one_of_each() {
            assert!(codes.contains(&json!(error.code())), "{}", error.code());
        }
    }

    #[test]
    fn facts_come_from_the_config_and_the_code() {
        let (config, doc) = built();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:40123");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Currency"]["enum"],
            json!(config.payments.currencies)
        );
        let create = &schemas["CreatePayment"]["properties"];
        assert_eq!(create["amount"]["maximum"], 4242);
        assert_eq!(create["order_no"]["maxLength"], ORDER_NO_CHARS_MAX);
        assert_eq!(
            schemas["CreateRefund"]["properties"]["amount"]["maximum"],
            4242
        );
        assert_eq!(
            schemas["Channel"]["enum"],
            json!(Channel::ALL.map(Channel::as_str))
        );
        assert_eq!(schemas["EventType"]["enum"], json!(kind::ALL));
        assert_eq!(
            schemas["MerchantEventType"]["enum"],
            json!(crate::domain::event::MERCHANT_EVENT_TYPES)
        );
        let webhooks = doc["webhooks"].as_object().unwrap();
        assert_eq!(
            webhooks.len(),
            crate::domain::event::MERCHANT_EVENT_TYPES.len()
        );
    }

    #[test]
    fn every_operation_is_described_tagged_and_answers_its_kinds_statuses() {
        let (_, doc) = built();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let at = format!("{method} {path}");
                assert!(op["description"].is_string(), "{at}: no description");
                assert!(op["tags"].is_array(), "{at}: no tags");
                assert!(
                    ids.insert(op["operationId"].to_string()),
                    "{at}: operationId"
                );
                let responses = &op["responses"];
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    assert!(responses["401"].is_object(), "{at}: 401");
                }
                if path.contains('{') {
                    assert!(responses["404"].is_object(), "{at}: 404");
                }
            }
        }
    }
}
