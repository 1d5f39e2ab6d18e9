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
//! (key → ∅: the one failure of `pm_sim_*` methods happened), one order tree per list
//! ([`List`]: seq → id; balance transactions: created ++ seq → id), `order_keys` (id → its
//! key in its order tree). Lists page these trees newest first; the writes themselves are in
//! [`intents`](super::intents) and [`refunds`](super::refunds).

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::provider::sandbox::answer::{error, Answer};
use crate::provider::sandbox::params::{invalid, Cursor, Page, Params};

/// Entries one list call looks at, at most, while filtering (a bounded scan).
pub const LIST_SCAN_MAX: usize = 100_000;

/// Stripe's message for a key reused with other parameters.
fn idempotency_message(key: &str) -> String {
    format!(
        "Keys for idempotent requests can only be used with the same parameters they were \
         first used with. Try using a key other than '{key}' if you meant to execute a \
         different request."
    )
}

/// A write's result, saved under its idempotency key or not.
pub struct Outcome {
    pub answer: Answer,
    pub save: bool,
}

impl Outcome {
    /// A result that ran (saved under the key, replayed on a retry).
    pub fn ran(answer: Answer) -> Outcome {
        Outcome { answer, save: true }
    }

    /// A refusal before anything ran (not saved: the key may be retried).
    pub fn refused(answer: Answer) -> Outcome {
        Outcome {
            answer,
            save: false,
        }
    }
}

/// The lists the sandbox serves, each an order tree of one object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    PaymentIntents,
    Charges,
    Refunds,
    BalanceTransactions,
}

impl List {
    pub const ALL: [List; 4] = [
        List::PaymentIntents,
        List::Charges,
        List::Refunds,
        List::BalanceTransactions,
    ];

    /// The list of `GET /v1/{collection}`.
    pub fn of_collection(collection: &str) -> Option<List> {
        List::ALL.into_iter().find(|l| l.collection() == collection)
    }

    /// The path segment: `payment_intents`.
    pub fn collection(self) -> &'static str {
        match self {
            List::PaymentIntents => "payment_intents",
            List::Charges => "charges",
            List::Refunds => "refunds",
            List::BalanceTransactions => "balance_transactions",
        }
    }

    /// The `object` of its items: `payment_intent`.
    pub fn object(self) -> &'static str {
        match self {
            List::PaymentIntents => "payment_intent",
            List::Charges => "charge",
            List::Refunds => "refund",
            List::BalanceTransactions => "balance_transaction",
        }
    }

    /// How Stripe names the object in "No such …" messages.
    pub fn noun(self) -> &'static str {
        match self {
            List::BalanceTransactions => "balance transaction",
            other => other.object(),
        }
    }

    /// Its fields `expand` may replace by the object they name (one level).
    pub fn expandable(self) -> &'static [&'static str] {
        match self {
            List::PaymentIntents => &["latest_charge"],
            List::Charges => &["balance_transaction", "payment_intent"],
            List::Refunds => &["balance_transaction", "charge", "payment_intent"],
            List::BalanceTransactions => &["source"],
        }
    }

    fn tree(self) -> &'static str {
        match self {
            List::PaymentIntents => "pi_order",
            List::Charges => "ch_order",
            List::Refunds => "re_order",
            List::BalanceTransactions => "bt_order",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub struct Ledger {
    db: sled::Db,
    objects: sled::Tree,
    idempotency: sled::Tree,
    failed_once: sled::Tree,
    /// One order tree per [`List`], by [`List::index`].
    orders: Vec<sled::Tree>,
    order_keys: sled::Tree,
    seq: AtomicU64,
    lock: tokio::sync::Mutex<()>,
    /// What dates the objects (`created`, `canceled_at`).
    clock: SharedClock,
}

pub fn new_id(prefix: &str) -> String {
    crate::domain::ids::new_id(prefix)
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`, dating its objects on `clock`.
    ///
    /// # Errors
    /// A message when sled cannot open it.
    pub fn open(dir: &Path, clock: SharedClock) -> Result<Ledger, String> {
        let db = sled::open(dir).map_err(|e| format!("cannot open the ledger: {e}"))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| e.to_string());
        let orders = List::ALL
            .iter()
            .map(|l| tree(l.tree()))
            .collect::<Result<Vec<_>, _>>()?;
        let last = |t: &sled::Tree| {
            t.last()
                .ok()
                .flatten()
                .map(|(k, _)| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap_or([0; 8])))
                .unwrap_or(0)
        };
        let seq = orders.iter().map(last).max().unwrap_or(0);
        Ok(Ledger {
            objects: tree("objects")?,
            idempotency: tree("idempotency")?,
            failed_once: tree("failed_once")?,
            order_keys: tree("order_keys")?,
            orders,
            db,
            seq: AtomicU64::new(seq + 1),
            lock: tokio::sync::Mutex::new(()),
            clock,
        })
    }

    /// The time on the ledger's clock in Unix seconds (Stripe's timestamps).
    pub fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// A stored object by id.
    pub fn object(&self, id: &str) -> Option<Value> {
        let bytes = self.objects.get(id.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// A stored object by id, only when it is a `kind`.
    pub fn object_of(&self, kind: List, id: &str) -> Option<Value> {
        self.object(id).filter(|o| o["object"] == kind.object())
    }

    /// Stores (or replaces) an object.
    ///
    /// # Errors
    /// A message when sled fails.
    pub fn put(&self, object: &Value) -> Result<(), String> {
        let id = object["id"].as_str().unwrap_or_default();
        let bytes = serde_json::to_vec(object).map_err(|e| e.to_string())?;
        self.objects
            .insert(id.as_bytes(), bytes)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Stores a new object and lists it in `list`, after every older one.
    ///
    /// # Errors
    /// A message when sled fails.
    pub fn insert(&self, list: List, object: &Value) -> Result<(), String> {
        debug_assert_eq!(object["object"], list.object());
        self.put(object)?;
        let id = object["id"].as_str().unwrap_or_default();
        let mut key = Vec::with_capacity(16);
        if list == List::BalanceTransactions {
            let created = object["created"].as_i64().unwrap_or(0).max(0);
            key.extend_from_slice(&created.to_be_bytes());
        }
        key.extend_from_slice(&self.seq.fetch_add(1, Ordering::SeqCst).to_be_bytes());
        self.orders[list.index()]
            .insert(&key, id.as_bytes())
            .map_err(|e| e.to_string())?;
        self.order_keys
            .insert(id.as_bytes(), key)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// True the first time `key` asks for its one failure.
    pub fn first_call(&self, key: Option<&str>) -> bool {
        let Some(key) = key else { return false };
        matches!(self.failed_once.insert(key.as_bytes(), &[]), Ok(None))
    }

    /// Runs a write under `key`: replay, refuse, or run `op` and save its result.
    pub async fn idempotent(
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

    /// Replaces each field of `fields` that holds an id by the object it names.
    pub fn expand(&self, object: &mut Value, fields: &[String]) {
        for field in fields {
            let named = object[field.as_str()]
                .as_str()
                .and_then(|id| self.object(id));
            if let Some(named) = named {
                object[field.as_str()] = named;
            }
        }
    }

    /// A Stripe list (`object: "list"`, newest first) of `list`'s objects that pass
    /// `filter` and `page`'s `created` window: after `starting_after` (older ones), or the
    /// `limit` just before `ending_before` (newer ones, still newest first, `has_more`
    /// telling whether there are newer still). Fields in `expand` are expanded.
    ///
    /// # Errors
    /// 400 `resource_missing` naming the cursor parameter when the cursor is not one of
    /// `list`'s objects.
    pub fn list(
        &self,
        list: List,
        page: &Page,
        filter: impl Fn(&Value) -> bool,
        expand: &[String],
    ) -> Result<Value, Answer> {
        let tree = &self.orders[list.index()];
        let cursor_key = match &page.cursor {
            Cursor::Newest => None,
            Cursor::StartingAfter(id) | Cursor::EndingBefore(id) => {
                let key = self
                    .object_of(list, id)
                    .and(self.order_keys.get(id.as_bytes()).ok().flatten());
                let Some(key) = key else {
                    let message = format!("No such {}: '{id}'", list.noun());
                    let param = page.cursor.param();
                    return Err(invalid(Some("resource_missing"), param, &message));
                };
                Some(key)
            }
        };
        let admits =
            |o: &Value| page.admits_created(o["created"].as_i64().unwrap_or(0)) && filter(o);
        let mut found = match (&page.cursor, cursor_key) {
            (Cursor::EndingBefore(_), Some(key)) => {
                let range = tree.range::<&[u8], _>((Bound::Excluded(&key[..]), Bound::Unbounded));
                self.matching(range, page.limit + 1, admits)
            }
            (Cursor::StartingAfter(_), Some(key)) => {
                self.matching(tree.range(..key).rev(), page.limit + 1, admits)
            }
            _ => self.matching(tree.iter().rev(), page.limit + 1, admits),
        };
        let has_more = found.len() > page.limit;
        found.truncate(page.limit);
        if matches!(page.cursor, Cursor::EndingBefore(_)) {
            found.reverse();
        }
        for object in &mut found {
            self.expand(object, expand);
        }
        let url = format!("/v1/{}", list.collection());
        Ok(json!({"object": "list", "data": found, "has_more": has_more, "url": url}))
    }

    /// The first `count` objects of `entries` (id values) that pass `admits`, looking at
    /// no more than [`LIST_SCAN_MAX`] entries.
    fn matching(
        &self,
        entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        count: usize,
        admits: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        entries
            .take(LIST_SCAN_MAX)
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, id)| self.object(&String::from_utf8_lossy(&id)))
            .filter(|object| admits(object))
            .take(count)
            .collect()
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

impl Ledger {
    /// Records a balance transaction (docs.stripe.com/api/balance_transactions/object) of
    /// `amount` (negative for money out) with `source` and returns its id; the sandbox
    /// charges no fee, so `net` equals `amount`.
    ///
    /// # Errors
    /// A message when sled fails.
    pub fn transaction(
        &self,
        kind: &str,
        amount: i64,
        currency: &Value,
        source: &str,
        created: i64,
    ) -> Result<String, String> {
        let id = new_id("txn_");
        let txn = json!({
            "id": id, "object": "balance_transaction", "amount": amount,
            "available_on": created + 2 * 86_400, "created": created, "currency": currency,
            "description": null, "fee": 0, "fee_details": [], "net": amount,
            "reporting_category": kind, "source": source, "status": "available", "type": kind,
        });
        self.insert(List::BalanceTransactions, &txn)?;
        Ok(id)
    }
}

/// The one 503 of a `pm_sim_transient` key; not saved, so the retry runs.
pub fn transient() -> Outcome {
    let message = "The sandbox is briefly unavailable (pm_sim_transient).";
    Outcome::refused(error(503, "api_error", None, message))
}

/// Stripe's 404 for an id in the path that names nothing of its kind; `param` is how
/// Stripe names that id (`intent` for a PaymentIntent, else `id`).
pub fn no_such(list: List, id: &str) -> Answer {
    let param = match list {
        List::PaymentIntents => "intent",
        _ => "id",
    };
    let mut answer = invalid(
        Some("resource_missing"),
        param,
        &format!("No such {}: '{id}'", list.noun()),
    );
    answer.status = 404;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::sandbox::params;

    fn page(query: &str) -> Page {
        params::page(&params::parse(query.as_bytes()).unwrap()).unwrap()
    }

    fn ids(list: &Value) -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A ledger holding seven PaymentIntents `pi_0` (oldest) … `pi_6`, created a second
    /// apart; the odd ones carry `metadata[odd]`.
    fn seven() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Ledger::open(dir.path(), std::sync::Arc::new(crate::clock::SystemClock)).unwrap();
        for i in 0..7 {
            let pi = json!({"id": format!("pi_{i}"), "object": "payment_intent",
                "created": 1_000 + i, "metadata": {"odd": (i % 2 == 1).to_string()}});
            ledger.insert(List::PaymentIntents, &pi).unwrap();
        }
        (dir, ledger)
    }

    #[test]
    fn both_cursors_walk_every_object_once_in_order() {
        let (_dir, ledger) = seven();
        let all = |_: &Value| true;
        let mut forward = Vec::new();
        let mut query = "limit=3".to_owned();
        loop {
            let list = ledger
                .list(List::PaymentIntents, &page(&query), all, &[])
                .unwrap();
            forward.extend(ids(&list));
            if list["has_more"] == false {
                break;
            }
            query = format!("limit=3&starting_after={}", forward.last().unwrap());
        }
        let newest_first: Vec<String> = (0..7).rev().map(|i| format!("pi_{i}")).collect();
        assert_eq!(forward, newest_first);
        // Backwards from the oldest, as the SDKs do: each page is newest first.
        let mut backward = Vec::new();
        let mut cursor = "pi_0".to_owned();
        loop {
            let query = format!("limit=3&ending_before={cursor}");
            let list = ledger
                .list(List::PaymentIntents, &page(&query), all, &[])
                .unwrap();
            let got = ids(&list);
            backward.extend(got.iter().rev().cloned());
            match got.first() {
                Some(newest) if list["has_more"] == true => cursor = newest.clone(),
                _ => break,
            }
        }
        let oldest_first: Vec<String> = (1..7).map(|i| format!("pi_{i}")).collect();
        assert_eq!(backward, oldest_first);
    }

    #[test]
    fn filters_and_created_apply_before_the_limit() {
        let (_dir, ledger) = seven();
        let odd = |o: &Value| o["metadata"]["odd"] == "true";
        let list = ledger
            .list(List::PaymentIntents, &page("limit=2"), odd, &[])
            .unwrap();
        assert_eq!(ids(&list), ["pi_5", "pi_3"]);
        assert_eq!(list["has_more"], true);
        let window = page("created[gte]=1002&created[lt]=1005");
        let list = ledger
            .list(List::PaymentIntents, &window, |_: &Value| true, &[])
            .unwrap();
        assert_eq!(ids(&list), ["pi_4", "pi_3", "pi_2"]);
        let before = page("limit=1&ending_before=pi_2");
        let list = ledger
            .list(List::PaymentIntents, &before, odd, &[])
            .unwrap();
        assert_eq!(
            (ids(&list), &list["has_more"]),
            (vec!["pi_3".to_owned()], &json!(true))
        );
    }

    #[test]
    fn a_cursor_must_be_an_object_of_the_list() {
        let (_dir, ledger) = seven();
        let txn = json!({"id": "txn_1", "object": "balance_transaction", "created": 1});
        ledger.insert(List::BalanceTransactions, &txn).unwrap();
        let all = |_: &Value| true;
        for query in ["starting_after=txn_1", "ending_before=pi_none"] {
            let refused = ledger
                .list(List::PaymentIntents, &page(query), all, &[])
                .unwrap_err();
            assert_eq!(refused.body["error"]["code"], "resource_missing", "{query}");
        }
    }
}
