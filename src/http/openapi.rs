//! The OpenAPI 3.1 document of `/openapi.json`, assembled from one fragment per resource
//! (`src/http/openapi/*.json`, each `{"paths": {...}, "schemas": {...}}`) over `base.json`
//! (info, security schemes, shared responses). A test checks the result lists exactly
//! [`crate::http::ROUTES`]. Adding a resource: add its fragment file and one line below.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::domain::delivery::Channel;

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

/// The whole document as JSON text, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| assemble(BASE, FRAGMENTS).to_string())
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
    // The channel names come from the one list of channels, not from the fragment.
    if let Some(channel) = doc["components"]["schemas"]["Channel"].as_object_mut() {
        channel.insert("enum".to_owned(), Channel::ALL.map(Channel::as_str).into());
    }
    // So do the settings keys that are secrets (each channel's `SECRETS`): `writeOnly`, as
    // the settings API treats them; the console reads them to draw write-only inputs.
    if let Some(settings) = doc["components"]["schemas"]["NotificationSettings"]["properties"]
        ["settings"]
        .as_object_mut()
    {
        settings.insert("properties".to_owned(), secret_settings());
    }
    doc
}

/// `{section: {"type": "object", "properties": {key: {"type": "string", "writeOnly": true}}}}`
/// for every channel's secret settings keys.
fn secret_settings() -> Value {
    let mut sections = Map::new();
    for (section, secret) in crate::notify::channels::secret_paths() {
        let shown = if secret.is_url {
            "a secret URL, shown as its origin + \"/********\""
        } else {
            "a secret, shown as \"********\""
        };
        let entry = sections
            .entry(section)
            .or_insert_with(|| json!({"type": "object", "properties": {}}));
        if let Some(properties) = entry["properties"].as_object_mut() {
            properties.insert(
                secret.key.to_owned(),
                json!({"type": "string", "writeOnly": true, "description": shown}),
            );
        }
    }
    Value::Object(sections)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fragment_parses_and_merges() {
        for fragment in FRAGMENTS {
            let value: Value = serde_json::from_str(fragment).expect("fragment is JSON");
            assert!(value["paths"].is_object() && value["schemas"].is_object());
        }
        let doc: Value = serde_json::from_str(document()).expect("document is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["Payment"].is_object());
        assert!(doc["paths"]["/healthz"]["get"].is_object());
        let channels: Vec<&str> = doc["components"]["schemas"]["Channel"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(channels, Channel::ALL.map(Channel::as_str));
        let settings = &doc["components"]["schemas"]["NotificationSettings"]["properties"]
            ["settings"]["properties"];
        let paths = crate::notify::channels::secret_paths();
        assert!(!paths.is_empty());
        for (section, secret) in paths {
            assert_eq!(
                settings[section]["properties"][secret.key]["writeOnly"], true,
                "{section}.{}",
                secret.key
            );
        }
    }
}
