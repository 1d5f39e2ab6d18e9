//! The whole store lost, and every request retried (issue 11, item 3; DESIGN §2 "The provider
//! idempotency key" and "Provider"): the real binary on `provider.kind = "stripe"` against
//! `paykeep sandbox` acknowledges creates and refunds, is killed with SIGKILL, its data
//! directory deleted, and restarted empty on the same sandbox. Every request is retried with
//! its own key and body; refunds on the order's payment id, which the rebuilt store gives
//! again (it follows from the payment key). paykeep derives the same provider keys and sends
//! the same parameters, so the sandbox
//! replays its first answers (a key reused with other parameters would be a 400
//! `idempotency_error`, a new key a second charge), and its ledger shows one charge per
//! attempt and no refund twice. A second test pins the documented edge: an order's paying
//! second attempt retried without its declined first is refused, never charged again.

mod common;
mod provider_common;

use std::collections::{BTreeMap, HashMap};

use common::{create_at, get_at, spawn_binary, temp_data_dir, Answer, MERCHANT_KEY};
use provider_common::{list_all, refund, spawn_sandbox};
use serde_json::{json, Value};

const KEY: &str = "sk_test_sandbox";
/// The merchant of [`MERCHANT_KEY`] in the embedded config.
const MERCHANT_ID: &str = "m_demo";
/// Orders created; each with its own `Idempotency-Key`.
const ORDERS: usize = 40;
/// Every this many orders, the first attempt is declined and a second key pays.
const TWO_ATTEMPTS_EVERY: usize = 10;

/// One create as the merchant sent it.
struct Create {
    order_no: String,
    key: String,
    body: Value,
}

/// One refund as the merchant sent it, on the payment of `order_no`.
struct Refund {
    order_no: String,
    key: Option<String>,
    body: Value,
}

fn order_no(i: usize) -> String {
    format!("wr-{i}")
}

/// The creates of order `i`, in the order they are sent: a declined attempt first for every
/// [`TWO_ATTEMPTS_EVERY`]th order, then the one that pays.
fn creates_of(i: usize) -> Vec<Create> {
    let order_no = order_no(i);
    let body = |method: &str| {
        json!({"order_no": order_no, "amount": 1999, "currency": "USD",
            "payment_method": method, "description": format!("order {i}")})
    };
    let mut creates = Vec::new();
    if i % TWO_ATTEMPTS_EVERY == 0 {
        creates.push(Create {
            order_no: order_no.clone(),
            key: format!("wr-create-{i}-a"),
            body: body("pm_card_chargeDeclined"),
        });
    }
    creates.push(Create {
        order_no: order_no.clone(),
        key: format!("wr-create-{i}"),
        body: body("pm_card_visa"),
    });
    creates
}

/// The refunds of order `i`: partial ones with and without a header key, two on one order,
/// a full one, and none for some orders.
fn refunds_of(i: usize) -> Vec<Refund> {
    let on = |key: Option<String>, amount: u64, operator: &str| Refund {
        order_no: order_no(i),
        key,
        body: json!({"amount": amount, "operator_id": operator, "reason": format!("return {i}")}),
    };
    match i % 5 {
        0 => vec![on(Some(format!("wr-refund-{i}")), 500, "alice")],
        1 => vec![on(None, 700, "bob")],
        2 => vec![
            on(Some(format!("wr-refund-{i}-1")), 300, "carol"),
            on(None, 300, "carol"),
            on(None, 400, "dave"),
        ],
        3 => vec![on(None, 1999, "erin")],
        _ => Vec::new(),
    }
}

/// What the first run acknowledged: per order, the provider payment id and the payment id;
/// per refund, its provider refund id.
#[derive(Default)]
struct Acknowledged {
    provider_payment_ids: HashMap<String, String>,
    payment_ids: HashMap<String, String>,
    provider_refund_ids: Vec<String>,
}

fn assert_no_idempotency_error(answer: &Answer) {
    assert!(
        !answer.text.contains("idempotency_error"),
        "the provider refused a re-derived request: {}",
        answer.text
    );
}

/// The payment of `order_no` (`GET /v1/payments?order_no=`).
async fn payment_of(client: &reqwest::Client, base: &str, order_no: &str) -> Value {
    let answer = get_at(
        client,
        base,
        MERCHANT_KEY,
        &format!("/v1/payments?order_no={order_no}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()
}

/// paykeep's environment for the Stripe connector pointed at the sandbox at `base`.
fn stripe_env(base: &str) -> [(&'static str, &str); 3] {
    [
        ("PAYKEEP_PROVIDER__KIND", "stripe"),
        ("PAYKEEP_PROVIDER__BASE_URL", base),
        ("PAYKEEP_PROVIDER__SECRET_KEY", KEY),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_store_retried_charges_once_and_refunds_once() {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(sandbox_dir.path(), &["--secret-key", KEY]);
    let (_dir, data) = temp_data_dir();
    let env = stripe_env(&sandbox.base);
    let creates: Vec<Create> = (0..ORDERS).flat_map(creates_of).collect();
    let refunds: Vec<Refund> = (0..ORDERS).flat_map(refunds_of).collect();
    let client = reqwest::Client::new();

    // First life: every create and refund acknowledged.
    let bin = spawn_binary(&data, &env);
    let mut acked = Acknowledged::default();
    for create in &creates {
        let answer = create_at(
            &client,
            &bin.base,
            MERCHANT_KEY,
            Some(&create.key),
            &create.body,
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let payment = answer.json();
        if create.body["payment_method"] == "pm_card_visa" {
            assert_eq!(payment["status"], "succeeded", "{payment}");
            acked.provider_payment_ids.insert(
                create.order_no.clone(),
                payment["provider_payment_id"].as_str().unwrap().to_owned(),
            );
            acked.payment_ids.insert(
                create.order_no.clone(),
                payment["id"].as_str().unwrap().to_owned(),
            );
        } else {
            assert_eq!(payment["failure_code"], "card_declined", "{payment}");
        }
    }
    for r in &refunds {
        let id = &acked.payment_ids[&r.order_no];
        let answer = refund(&client, &bin.base, id, r.key.as_deref(), &r.body).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        let body = answer.json();
        assert_eq!(body["status"], "succeeded", "{body}");
        acked
            .provider_refund_ids
            .push(body["provider_refund_id"].as_str().unwrap().to_owned());
    }

    // Total loss: kill -9, then the whole data directory is gone.
    bin.kill9();
    std::fs::remove_dir_all(&data).unwrap();
    assert!(!data.exists());
    let bin = spawn_binary(&data, &env);

    // Every request again, with its own key and body, in the order first sent.
    for create in &creates {
        let answer = create_at(
            &client,
            &bin.base,
            MERCHANT_KEY,
            Some(&create.key),
            &create.body,
        )
        .await;
        assert_no_idempotency_error(&answer);
        assert_eq!(answer.status, 201, "{}", answer.text);
        assert!(
            !answer.replayed(),
            "the store is new: nothing to replay locally"
        );
        let payment = answer.json();
        if create.body["payment_method"] != "pm_card_visa" {
            assert_eq!(payment["failure_code"], "card_declined", "{payment}");
            continue;
        }
        assert_eq!(payment["status"], "succeeded", "{payment}");
        assert_eq!(
            payment["provider_payment_id"], acked.provider_payment_ids[&create.order_no],
            "the provider replayed the first charge of {}",
            create.order_no
        );
        assert_eq!(
            payment["id"], acked.payment_ids[&create.order_no],
            "the payment id follows from the payment key, so the rebuilt store gives {} the same id",
            create.order_no
        );
    }
    for (r, provider_refund_id) in refunds.iter().zip(&acked.provider_refund_ids) {
        let payment = payment_of(&client, &bin.base, &r.order_no).await;
        let id = payment["id"].as_str().unwrap();
        assert_eq!(id, acked.payment_ids[&r.order_no]);
        let answer = refund(&client, &bin.base, id, r.key.as_deref(), &r.body).await;
        assert_no_idempotency_error(&answer);
        assert_eq!(answer.status, 201, "{}", answer.text);
        let body = answer.json();
        assert_eq!(body["status"], "succeeded", "{body}");
        assert_eq!(
            &body["provider_refund_id"], provider_refund_id,
            "the provider replayed the first refund of {}: {body}",
            r.order_no
        );
    }
    for i in 0..ORDERS {
        let payment = payment_of(&client, &bin.base, &order_no(i)).await;
        let refunded: u64 = refunds_of(i)
            .iter()
            .map(|r| r.body["amount"].as_u64().unwrap())
            .sum();
        assert_eq!(payment["amount_refunded"], refunded, "{payment}");
    }

    // The provider's ledger: one PaymentIntent per attempt, one succeeded per order, each
    // refund made once.
    let intents = list_all(&sandbox.base, KEY, "/v1/payment_intents", "").await;
    let mut per_attempt: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut succeeded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for intent in &intents {
        let metadata = &intent["metadata"];
        assert_eq!(metadata["merchant_id"], MERCHANT_ID, "{intent}");
        assert!(
            metadata.get("payment_id").is_none(),
            "no payment id at the provider"
        );
        let order_no = metadata["order_no"].as_str().unwrap().to_owned();
        let attempt = metadata["attempt"].as_str().unwrap().to_owned();
        *per_attempt.entry((order_no.clone(), attempt)).or_default() += 1;
        if intent["status"] == "succeeded" {
            succeeded
                .entry(order_no)
                .or_default()
                .push(intent["id"].as_str().unwrap().to_owned());
        }
    }
    let attempts: usize = (0..ORDERS).map(|i| creates_of(i).len()).sum();
    assert_eq!(intents.len(), attempts, "one PaymentIntent per attempt");
    assert!(per_attempt.values().all(|n| *n == 1), "{per_attempt:?}");
    assert_eq!(succeeded.len(), ORDERS);
    for (order_no, ids) in &succeeded {
        assert_eq!(
            ids,
            &vec![acked.provider_payment_ids[order_no].clone()],
            "{order_no} charged once"
        );
    }

    let transactions = list_all(
        &sandbox.base,
        KEY,
        "/v1/balance_transactions",
        "&expand[]=data.source",
    )
    .await;
    let charges = transactions
        .iter()
        .filter(|t| t["type"] == "charge")
        .count();
    assert_eq!(charges, ORDERS, "one charge transaction per paid order");
    let mut refunded: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut refund_ids = Vec::new();
    for txn in transactions.iter().filter(|t| t["type"] == "refund") {
        let source = &txn["source"];
        refund_ids.push(source["id"].as_str().unwrap().to_owned());
        refunded
            .entry(source["payment_intent"].as_str().unwrap().to_owned())
            .or_default()
            .push(source["amount"].as_u64().unwrap());
    }
    refund_ids.sort();
    let mut expected_ids = acked.provider_refund_ids.clone();
    expected_ids.sort();
    assert_eq!(refund_ids, expected_ids, "each refund made once");
    for i in 0..ORDERS {
        let pi = &acked.provider_payment_ids[&order_no(i)];
        let mut expected: Vec<u64> = refunds_of(i)
            .iter()
            .map(|r| r.body["amount"].as_u64().unwrap())
            .collect();
        expected.sort_unstable();
        let mut made = refunded.get(pi).cloned().unwrap_or_default();
        made.sort_unstable();
        assert_eq!(made, expected, "refunds of order {i} at the provider");
    }
    bin.kill9();
}

/// The edge docs/durability.md names: attempt numbers restart at 1 after a loss. Retried
/// alone, the create that paid an order's second attempt derives the first attempt's key,
/// which the provider holds with the declined request's parameters: it is refused
/// (`idempotency_error`), and no money moves. A new key with the same body is attempt 2 and
/// gets the original charge replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_attempt_retried_alone_is_refused_then_replayed_never_charged_again() {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(sandbox_dir.path(), &["--secret-key", KEY]);
    let (_dir, data) = temp_data_dir();
    let env = stripe_env(&sandbox.base);
    let client = reqwest::Client::new();
    let [declined, paying] = [creates_of(0).remove(0), creates_of(0).pop().unwrap()];
    assert_eq!(declined.body["payment_method"], "pm_card_chargeDeclined");

    let bin = spawn_binary(&data, &env);
    let first = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some(&declined.key),
        &declined.body,
    )
    .await;
    assert_eq!(first.json()["status"], "failed", "{}", first.text);
    let paid = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some(&paying.key),
        &paying.body,
    )
    .await;
    let paid = paid.json();
    assert_eq!(
        (paid["status"].as_str(), paid["attempt_count"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    bin.kill9();
    std::fs::remove_dir_all(&data).unwrap();
    let bin = spawn_binary(&data, &env);

    let alone = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some(&paying.key),
        &paying.body,
    )
    .await;
    let alone = alone.json();
    assert_eq!(alone["status"], "failed", "{alone}");
    assert_eq!(alone["attempt_count"], 1);
    assert_eq!(alone["failure_code"], "idempotency_error", "{alone}");
    let again = create_at(
        &client,
        &bin.base,
        MERCHANT_KEY,
        Some("wr-create-0-c"),
        &paying.body,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.text);
    let again = again.json();
    assert_eq!(
        (again["status"].as_str(), again["attempt_count"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    assert_eq!(again["provider_payment_id"], paid["provider_payment_id"]);

    let intents = list_all(&sandbox.base, KEY, "/v1/payment_intents", "").await;
    assert_eq!(
        intents.len(),
        2,
        "the two first attempts, nothing more: {intents:?}"
    );
    let charged: Vec<&Value> = intents
        .iter()
        .filter(|i| i["status"] == "succeeded")
        .collect();
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0]["id"], paid["provider_payment_id"]);
    bin.kill9();
}
