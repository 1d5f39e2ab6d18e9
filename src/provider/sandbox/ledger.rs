//! The sandbox's durable ledger: Stripe-shaped objects (PaymentIntents, charges, refunds,
//! balance transactions) and idempotency keys in their own sled store, flushed after every
//! write, so tests can kill paykeep and still count what the provider charged.
//!
//! Idempotency follows docs.stripe.com/api/idempotent_requests: a key's first result is
//! saved with a fingerprint of the request (method, path, sorted parameters); the same key
//! with the same parameters replays it (`Idempotent-Replayed: true`), with other parameters
//! answers 400 `idempotency_error`. Requests that fail validation or answer 503 save
//! nothing, so a retry with the same key runs again. One lock serializes the ledger's
//! writes (a test tool: correctness over throughput).
//!
//! Trees: `objects` (id → JSON), `idempotency` (key → saved result), `failed_once`
//! (key → ∅: the one failure of `pm_sim_*` methods happened), `pi_order` (seq → id),
//! `bt_order` (created ++ seq → id), `order_keys` (id → its key in an order tree).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A request's form parameters (last value of a repeated name wins).
pub type Params = BTreeMap<String, String>;

/// Stripe's message for a key reused with other parameters.
fn idempotency_message(key: &str) -> String {
    format!(
        "Keys for idempotent requests can only be used with the same parameters they were \
         first used with. Try using a key other than '{key}' if you meant to execute a \
         different request."
    )
}

/// What one write request answers, and what the route does after.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    /// Answer only after the sandbox's stall delay (first call of `pm_sim_timeout`).
    pub stall: bool,
    /// Webhook events to send: (type, object).
    pub events: Vec<(String, Value)>,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            replayed: false,
            stall: false,
            events: Vec::new(),
        }
    }
}

/// A result that is saved under its key, or not.
struct Outcome {
    answer: Answer,
    save: bool,
}

/// A Stripe error answer: `{"error": {type, code, message, …}}`.
pub fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Answer {
    Answer::new(
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn invalid(code: &str, param: &str, message: &str) -> Outcome {
    let mut answer = error(400, "invalid_request_error", Some(code), message);
    answer.body["error"]["param"] = json!(param);
    Outcome {
        answer,
        save: false,
    }
}

pub struct Ledger {
    db: sled::Db,
    objects: sled::Tree,
    idempotency: sled::Tree,
    failed_once: sled::Tree,
    pi_order: sled::Tree,
    bt_order: sled::Tree,
    order_keys: sled::Tree,
    seq: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

fn now_s() -> i64 {
    crate::domain::time::now_ms() / 1000
}

fn new_id(prefix: &str) -> String {
    crate::domain::ids::new_id(prefix)
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`.
    ///
    /// # Errors
    /// A message when sled cannot open it.
    pub fn open(dir: &Path) -> Result<Ledger, String> {
        let db = sled::open(dir).map_err(|e| format!("cannot open the ledger: {e}"))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| e.to_string());
        let bt_order = tree("bt_order")?;
        let pi_order = tree("pi_order")?;
        let last = |t: &sled::Tree| {
            t.last()
                .ok()
                .flatten()
                .map(|(k, _)| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or([0; 8])))
                .unwrap_or(0)
        };
        let seq = last(&bt_order).max(last(&pi_order));
        Ok(Ledger {
            objects: tree("objects")?,
            idempotency: tree("idempotency")?,
            failed_once: tree("failed_once")?,
            order_keys: tree("order_keys")?,
            pi_order,
            bt_order,
            db,
            seq: AtomicU64::new(seq + 1),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A stored object by id.
    pub fn object(&self, id: &str) -> Option<Value> {
        let bytes = self.objects.get(id.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    fn put(&self, object: &Value) -> Result<(), String> {
        let id = object["id"].as_str().unwrap_or_default();
        let bytes = serde_json::to_vec(object).map_err(|e| e.to_string())?;
        self.objects
            .insert(id.as_bytes(), bytes)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn order(&self, tree: &sled::Tree, prefix: &[u8], id: &str) -> Result<(), String> {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&self.seq.fetch_add(1, Ordering::SeqCst).to_be_bytes());
        tree.insert(&key, id.as_bytes())
            .map_err(|e| e.to_string())?;
        self.order_keys
            .insert(id.as_bytes(), key)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// True the first time `key` asks for its one failure.
    fn first_call(&self, key: Option<&str>) -> bool {
        let Some(key) = key else { return false };
        matches!(self.failed_once.insert(key.as_bytes(), &[]), Ok(None))
    }

    /// Runs a write under `key`: replay, refuse, or run `op` and save its result.
    async fn idempotent(
        &self,
        path: &str,
        key: Option<&str>,
        params: &Params,
        op: impl FnOnce(&Ledger, &Params, Option<&str>) -> Result<Outcome, String>,
    ) -> Answer {
        let _serial = self.lock.lock().await;
        let fingerprint = fingerprint(path, params);
        if let Some(key) = key {
            if let Some(saved) = self.saved(key) {
                if saved["fingerprint"] != json!(fingerprint) {
                    return error(400, "idempotency_error", None, &idempotency_message(key));
                }
                let mut answer = Answer::new(
                    saved["status"].as_u64().unwrap_or(500) as u16,
                    saved["body"].clone(),
                );
                answer.replayed = true;
                return answer;
            }
        }
        let outcome = match op(self, params, key) {
            Ok(outcome) => outcome,
            Err(detail) => {
                tracing::error!(operation = "sandbox", %detail, "ledger write failed");
                return error(500, "api_error", None, "the sandbox ledger failed");
            }
        };
        if let (Some(key), true) = (key, outcome.save) {
            let saved = json!({"fingerprint": fingerprint, "status": outcome.answer.status,
                "body": outcome.answer.body});
            let _ = self
                .idempotency
                .insert(key.as_bytes(), saved.to_string().as_bytes());
        }
        if self.db.flush().is_err() {
            return error(500, "api_error", None, "the sandbox ledger could not flush");
        }
        outcome.answer
    }

    fn saved(&self, key: &str) -> Option<Value> {
        let bytes = self.idempotency.get(key.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// `POST /v1/payment_intents` with `confirm=true`.
    pub async fn create_payment_intent(&self, key: Option<&str>, params: &Params) -> Answer {
        self.idempotent("/v1/payment_intents", key, params, confirm_payment_intent)
            .await
    }

    /// `POST /v1/refunds`.
    pub async fn create_refund(&self, key: Option<&str>, params: &Params) -> Answer {
        self.idempotent("/v1/refunds", key, params, refund_payment_intent)
            .await
    }

    /// A Stripe list (`object: "list"`, newest first) of the ids in `tree` between the
    /// keys `from..to`, after `starting_after` (an id), at most `limit`.
    fn list(
        &self,
        tree: &sled::Tree,
        from: Vec<u8>,
        mut to: Vec<u8>,
        starting_after: Option<&str>,
        limit: usize,
        url: &str,
    ) -> Value {
        if let Some(after) = starting_after {
            if let Ok(Some(key)) = self.order_keys.get(after.as_bytes()) {
                to = to.min(key.to_vec());
            }
        }
        let mut ids: Vec<String> = tree
            .range(from..to)
            .rev()
            .take(limit + 1)
            .filter_map(|kv| kv.ok())
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
            .collect();
        let has_more = ids.len() > limit;
        ids.truncate(limit);
        let data: Vec<Value> = ids.iter().filter_map(|id| self.object(id)).collect();
        json!({"object": "list", "data": data, "has_more": has_more, "url": url})
    }

    /// `GET /v1/payment_intents`: newest first.
    pub fn list_payment_intents(&self, limit: usize, starting_after: Option<&str>) -> Value {
        let to = u64::MAX.to_be_bytes().to_vec();
        self.list(
            &self.pi_order,
            Vec::new(),
            to,
            starting_after,
            limit,
            "/v1/payment_intents",
        )
    }

    /// `GET /v1/balance_transactions`: newest first, `created` in `gte..lt` (Unix s),
    /// `source` expanded into its object when asked.
    pub fn list_balance_transactions(
        &self,
        gte_s: i64,
        lt_s: i64,
        limit: usize,
        starting_after: Option<&str>,
        expand_source: bool,
    ) -> Value {
        let key = |s: i64| s.max(0).to_be_bytes().to_vec();
        let url = "/v1/balance_transactions";
        let mut list = self.list(
            &self.bt_order,
            key(gte_s),
            key(lt_s),
            starting_after,
            limit,
            url,
        );
        if expand_source {
            if let Some(data) = list["data"].as_array_mut() {
                for txn in data {
                    let source = txn["source"].as_str().and_then(|id| self.object(id));
                    if let Some(source) = source {
                        txn["source"] = source;
                    }
                }
            }
        }
        list
    }
}

/// SHA-256 hex of method, path and the sorted parameters.
fn fingerprint(path: &str, params: &Params) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"POST ");
    hasher.update(path.as_bytes());
    for (k, v) in params {
        hasher.update(b"\n");
        hasher.update(k.as_bytes());
        hasher.update(b"=");
        hasher.update(v.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn metadata_of(params: &Params) -> Value {
    let map: serde_json::Map<String, Value> = params
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), json!(v)))
        })
        .collect();
    Value::Object(map)
}

/// A card's behaviour in the sandbox (the simulator's test methods, DESIGN §2).
enum Card {
    Succeeds,
    Declines {
        decline_code: &'static str,
        message: &'static str,
    },
    Unknown,
}

fn card(payment_method: &str) -> Card {
    match payment_method {
        "pm_card_visa" | "pm_sim_transient" | "pm_sim_timeout" | "pm_sim_slow" => Card::Succeeds,
        "pm_card_chargeDeclined" => Card::Declines {
            decline_code: "generic_decline",
            message: "Your card was declined.",
        },
        "pm_card_chargeDeclinedInsufficientFunds" => Card::Declines {
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
        },
        _ => Card::Unknown,
    }
}

/// A confirmed create's parameters: amount, currency, payment method, or the 400 refusal.
fn intent_params(params: &Params) -> Result<(u64, String, String, Card), Outcome> {
    let amount = params.get("amount").and_then(|a| a.parse::<u64>().ok());
    let Some(amount) = amount.filter(|a| *a > 0) else {
        return Err(invalid(
            "parameter_invalid_integer",
            "amount",
            "Invalid integer: amount",
        ));
    };
    let currency = params.get("currency").cloned().unwrap_or_default();
    if currency.len() != 3 {
        let message = "Missing required param: currency.";
        return Err(invalid("parameter_missing", "currency", message));
    }
    if params.get("confirm").map(String::as_str) != Some("true") {
        let message = "The sandbox only creates confirmed PaymentIntents (confirm=true).";
        return Err(invalid("parameter_invalid", "confirm", message));
    }
    let method = params.get("payment_method").cloned().unwrap_or_default();
    let card = card(&method);
    if let Card::Unknown = card {
        let message = format!("No such PaymentMethod: '{method}'");
        return Err(invalid("resource_missing", "payment_method", &message));
    }
    Ok((amount, currency, method, card))
}

/// The one 503 of a `pm_sim_transient` key; not saved, so the retry runs.
fn transient() -> Outcome {
    let message = "The sandbox is briefly unavailable (pm_sim_transient).";
    Outcome {
        answer: error(503, "api_error", None, message),
        save: false,
    }
}

/// The PaymentIntent of a confirmed create: charged, declined, or refused.
fn confirm_payment_intent(
    ledger: &Ledger,
    params: &Params,
    key: Option<&str>,
) -> Result<Outcome, String> {
    let (amount, currency, method, card) = match intent_params(params) {
        Ok(valid) => valid,
        Err(refused) => return Ok(refused),
    };
    if method == "pm_sim_transient" && ledger.first_call(key) {
        return Ok(transient());
    }
    let stall = method == "pm_sim_timeout" && ledger.first_call(key);
    let created = now_s();
    let charge_id = new_id("ch_");
    let mut pi = json!({
        "id": new_id("pi_"), "object": "payment_intent", "amount": amount,
        "amount_received": 0, "currency": currency, "status": "requires_payment_method",
        "created": created, "livemode": false, "metadata": metadata_of(params),
        "description": params.get("description"), "payment_method": method,
        "payment_method_types": ["card"], "capture_method": "automatic",
        "confirmation_method": "automatic", "latest_charge": charge_id,
        "last_payment_error": null,
    });
    let mut answer = match card {
        Card::Declines {
            decline_code,
            message,
        } => {
            let failure = json!({"type": "card_error", "code": "card_declined",
                "decline_code": decline_code, "message": message, "charge": charge_id});
            pi["last_payment_error"] = failure.clone();
            let mut body = json!({"error": failure});
            body["error"]["payment_intent"] = pi.clone();
            with_event(Answer::new(402, body), "payment_intent.payment_failed", &pi)
        }
        _ => {
            pi["status"] = json!("succeeded");
            pi["amount_received"] = json!(amount);
            ledger.charge(&pi, &charge_id, created)?;
            with_event(
                Answer::new(200, pi.clone()),
                "payment_intent.succeeded",
                &pi,
            )
        }
    };
    ledger.put(&pi)?;
    ledger.order(&ledger.pi_order, &[], pi["id"].as_str().unwrap_or_default())?;
    answer.stall = stall;
    Ok(Outcome { answer, save: true })
}

fn with_event(mut answer: Answer, kind: &str, object: &Value) -> Answer {
    answer.events.push((kind.to_owned(), object.clone()));
    answer
}

impl Ledger {
    /// Records the charge of a succeeded PaymentIntent and its balance transaction.
    fn charge(&self, pi: &Value, charge_id: &str, created: i64) -> Result<(), String> {
        let txn_id = new_id("txn_");
        let amount = pi["amount"].as_u64().unwrap_or(0);
        let charge = json!({
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": 0, "currency": pi["currency"], "payment_intent": pi["id"],
            "status": "succeeded", "paid": true, "refunded": false, "created": created,
            "balance_transaction": txn_id, "metadata": pi["metadata"], "livemode": false,
        });
        self.put(&charge)?;
        self.transaction(
            &txn_id,
            "charge",
            amount as i64,
            &pi["currency"],
            charge_id,
            created,
        )
    }

    /// A balance transaction (docs.stripe.com/api/balance_transactions/object); the
    /// sandbox charges no fee, so `net` equals `amount`.
    fn transaction(
        &self,
        txn_id: &str,
        kind: &str,
        amount: i64,
        currency: &Value,
        source: &str,
        created: i64,
    ) -> Result<(), String> {
        let txn = json!({
            "id": txn_id, "object": "balance_transaction", "amount": amount,
            "available_on": created + 2 * 86_400, "created": created, "currency": currency,
            "description": null, "fee": 0, "fee_details": [], "net": amount,
            "reporting_category": kind, "source": source, "status": "available", "type": kind,
        });
        self.put(&txn)?;
        self.order(&self.bt_order, &created.max(0).to_be_bytes(), txn_id)
    }
}

/// What a refund request names: the PaymentIntent, its charge and the amount, or the 400.
fn refund_target(ledger: &Ledger, params: &Params) -> Result<(Value, Value, u64), Outcome> {
    let pi_id = params.get("payment_intent").cloned().unwrap_or_default();
    let Some(pi) = ledger
        .object(&pi_id)
        .filter(|o| o["object"] == "payment_intent")
    else {
        let message = format!("No such payment_intent: '{pi_id}'");
        return Err(invalid("resource_missing", "payment_intent", &message));
    };
    let charge = pi["latest_charge"]
        .as_str()
        .and_then(|id| ledger.object(id));
    let Some(charge) = charge.filter(|_| pi["status"] == "succeeded") else {
        let message = "This PaymentIntent has no succeeded charge to refund.";
        let answer = error(
            400,
            "invalid_request_error",
            Some("charge_not_refundable"),
            message,
        );
        return Err(Outcome { answer, save: true });
    };
    let left =
        charge["amount"].as_u64().unwrap_or(0) - charge["amount_refunded"].as_u64().unwrap_or(0);
    let amount = match params.get("amount").map(|a| a.parse::<u64>()) {
        None => left,
        Some(Ok(a)) if a > 0 => a,
        Some(_) => {
            return Err(invalid(
                "parameter_invalid_integer",
                "amount",
                "Invalid integer: amount",
            ))
        }
    };
    if amount > left {
        let message = format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
        );
        let answer = error(
            400,
            "invalid_request_error",
            Some("amount_too_large"),
            &message,
        );
        return Err(Outcome { answer, save: true });
    }
    Ok((pi, charge, amount))
}

/// A refund of a succeeded PaymentIntent, up to what is left of it.
fn refund_payment_intent(
    ledger: &Ledger,
    params: &Params,
    key: Option<&str>,
) -> Result<Outcome, String> {
    let (pi, mut charge, amount) = match refund_target(ledger, params) {
        Ok(target) => target,
        Err(refused) => return Ok(refused),
    };
    let method = pi["payment_method"].as_str().unwrap_or_default();
    if method == "pm_sim_transient" && ledger.first_call(key) {
        return Ok(transient());
    }
    let stall = method == "pm_sim_timeout" && ledger.first_call(key);
    let created = now_s();
    let (refund_id, txn_id) = (new_id("re_"), new_id("txn_"));
    let refund = json!({
        "id": refund_id, "object": "refund", "amount": amount, "charge": charge["id"],
        "payment_intent": pi["id"], "currency": pi["currency"], "status": "succeeded",
        "created": created, "metadata": metadata_of(params), "reason": null,
        "balance_transaction": txn_id,
    });
    ledger.put(&refund)?;
    let signed = -i64::try_from(amount).unwrap_or(i64::MAX);
    ledger.transaction(
        &txn_id,
        "refund",
        signed,
        &pi["currency"],
        &refund_id,
        created,
    )?;
    let refunded = charge["amount_refunded"].as_u64().unwrap_or(0) + amount;
    charge["amount_refunded"] = json!(refunded);
    charge["refunded"] = json!(refunded == charge["amount"].as_u64().unwrap_or(0));
    ledger.put(&charge)?;
    let mut answer = with_event(Answer::new(200, refund), "charge.refunded", &charge);
    answer.stall = stall;
    Ok(Outcome { answer, save: true })
}
