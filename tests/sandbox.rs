//! The Stripe connector against `paykeep sandbox` as a child process: the test payment
//! methods (each of Stripe's test cards the sandbox models: success, 3-D Secure, declines,
//! `processing_error`), Stripe's idempotency behaviour, refunds, retrieval, balance
//! transactions in Stripe's list shape with `starting_after` paging, a ledger that survives
//! a restart, and paykeep itself running on `provider.kind = "stripe"` against it.

mod common;
mod provider_common;

use std::time::Duration;

use paykeep::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use paykeep::domain::provider_key::charge_key;
use paykeep::provider::stripe::StripeConnector;
use paykeep::provider::types::{ProviderPaymentStatus, SettlementKind};
use paykeep::provider::Connector;
use provider_common::{refund, spawn_sandbox, Sandbox};
use serde_json::{json, Value};

const KEY: &str = "sk_test_sandbox";

fn connector(sandbox: &Sandbox) -> StripeConnector {
    StripeConnector::new(&sandbox.base, KEY, Duration::from_millis(2000)).unwrap()
}

const MERCHANT: &str = "m_1";

/// The first attempt of `order_no`, as paykeep builds it.
fn charge(order_no: &str, method: &str) -> ChargeRequest {
    ChargeRequest {
        merchant_id: MERCHANT.into(),
        order_no: order_no.into(),
        attempt: 1,
        idempotency_key: charge_key(MERCHANT, order_no, 1),
        amount: 1999,
        currency: "USD".into(),
        payment_method: method.into(),
        description: None,
    }
}

fn refund_of(provider_payment_id: &str, id: &str, amount: u64) -> RefundRequest {
    RefundRequest {
        refund_id: id.into(),
        provider_payment_id: provider_payment_id.into(),
        amount,
        currency: "USD".into(),
        idempotency_key: id.into(),
        reason: None,
    }
}

fn succeeded_id(outcome: ChargeOutcome) -> String {
    match outcome {
        ChargeOutcome::Succeeded {
            provider_payment_id,
        } => provider_payment_id,
        other => panic!("expected success: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_methods_and_stripe_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let c = connector(&sandbox);
    let first = succeeded_id(c.charge(&charge("o-a", "pm_card_visa")).await);
    assert!(first.starts_with("pi_"));
    let again = succeeded_id(c.charge(&charge("o-a", "pm_card_visa")).await);
    assert_eq!(again, first, "same key, same charge");
    let declined = c.charge(&charge("o-b", "pm_card_chargeDeclined")).await;
    assert!(
        matches!(&declined, ChargeOutcome::Declined { code, provider_payment_id: Some(_), .. } if code == "card_declined")
    );
    let funds = c
        .charge(&charge("o-c", "pm_card_chargeDeclinedInsufficientFunds"))
        .await;
    assert!(matches!(funds, ChargeOutcome::Declined { code, .. } if code == "insufficient_funds"));
    let transient = charge("o-d", "pm_sim_transient");
    assert!(matches!(
        c.charge(&transient).await,
        ChargeOutcome::Retryable { .. }
    ));
    succeeded_id(c.charge(&transient).await);
    let unknown = c.charge(&charge("o-e", "pm_nope")).await;
    assert!(matches!(unknown, ChargeOutcome::Declined { code, .. } if code == "resource_missing"));

    // Same key, other parameters: 400 idempotency_error; same parameters: replayed.
    let client = reqwest::Client::new();
    let post = |amount: &str| {
        client
            .post(format!("{}/v1/payment_intents", sandbox.base))
            .bearer_auth(KEY)
            .header("Idempotency-Key", charge_key(MERCHANT, "o-a", 1))
            .form(&[
                ("amount", amount),
                ("currency", "usd"),
                ("payment_method", "pm_card_visa"),
                ("payment_method_types[]", "card"),
                ("confirm", "true"),
                ("metadata[merchant_id]", MERCHANT),
                ("metadata[order_no]", "o-a"),
                ("metadata[attempt]", "1"),
            ])
            .send()
    };
    let replay = post("1999").await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], first.as_str());
    let other = post("2000").await.unwrap();
    assert_eq!(other.status(), 400);
    let body: Value = other.json().await.unwrap();
    assert_eq!(body["error"]["type"], "idempotency_error");
    let wrong_key = client
        .get(format!("{}/v1/payment_intents/{first}", sandbox.base))
        .bearer_auth("sk_test_other")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_retrieval_and_balance_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &[]);
    let c = connector(&sandbox);
    let pi = succeeded_id(c.charge(&charge("o-r", "pm_card_visa")).await);
    let payment = c.retrieve_payment(&pi).await.unwrap();
    assert_eq!(payment.status, ProviderPaymentStatus::Succeeded);
    assert_eq!(
        (payment.merchant_id.as_deref(), payment.order_no.as_deref()),
        (Some(MERCHANT), Some("o-r"))
    );
    assert_eq!(payment.attempt, Some(1));
    assert_eq!((payment.amount, payment.currency.as_str()), (1999, "USD"));
    let RefundOutcome::Succeeded { provider_refund_id } =
        c.refund(&refund_of(&pi, "re_1", 1500)).await
    else {
        panic!("refund failed")
    };
    let again = c.refund(&refund_of(&pi, "re_1", 1500)).await;
    assert_eq!(
        again,
        RefundOutcome::Succeeded {
            provider_refund_id: provider_refund_id.clone()
        },
        "same key, same refund"
    );
    let too_much = c.refund(&refund_of(&pi, "re_2", 500)).await;
    assert!(matches!(too_much, RefundOutcome::Failed { code, .. } if code == "amount_too_large"));
    let today = time::OffsetDateTime::now_utc().date();
    let rows = c.balance_transactions(today).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let charge_row = rows
        .iter()
        .find(|r| r.kind == SettlementKind::Charge)
        .unwrap();
    assert_eq!(
        (charge_row.provider_id.as_str(), charge_row.amount),
        (pi.as_str(), 1999)
    );
    let refund_row = rows
        .iter()
        .find(|r| r.kind == SettlementKind::Refund)
        .unwrap();
    assert_eq!(
        (refund_row.provider_id.as_str(), refund_row.amount),
        (provider_refund_id.as_str(), 1500)
    );
    let yesterday = today.previous_day().unwrap();
    assert!(c.balance_transactions(yesterday).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_newest_first_and_the_ledger_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &[]);
    let c = connector(&sandbox);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(succeeded_id(
            c.charge(&charge(&format!("o-{i}"), "pm_card_visa")).await,
        ));
    }
    drop(sandbox);
    let sandbox = spawn_sandbox(dir.path(), &[]);
    let client = reqwest::Client::new();
    let page = |after: Option<String>| {
        let mut url = format!("{}/v1/balance_transactions?limit=2", sandbox.base);
        if let Some(after) = after {
            url.push_str(&format!("&starting_after={after}"));
        }
        client.get(url).bearer_auth(KEY).send()
    };
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let list: Value = page(after.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(list["object"], "list");
        assert_eq!(list["url"], "/v1/balance_transactions");
        let data = list["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        for txn in data {
            assert_eq!(txn["object"], "balance_transaction");
            assert_eq!(txn["type"], "charge");
            assert!(txn["source"].as_str().unwrap().starts_with("ch_"));
            seen.push(txn["id"].as_str().unwrap().to_owned());
        }
        after = data.last().map(|t| t["id"].as_str().unwrap().to_owned());
        if list["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "every transaction once: {seen:?}");
    let intents: Value = client
        .get(format!("{}/v1/payment_intents?limit=100", sandbox.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = intents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    // The replay of a key written before the restart still answers the same charge.
    assert_eq!(
        succeeded_id(c_for(&sandbox).charge(&charge("o-0", "pm_card_visa")).await),
        ids[0]
    );
}

fn c_for(sandbox: &Sandbox) -> StripeConnector {
    connector(sandbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykeep_pays_and_refunds_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let base = sandbox.base.clone();
    let svc = common::start(move |c| {
        c.provider.kind = paykeep::config::ProviderKind::Stripe;
        c.provider.base_url = base;
        c.provider.secret_key = KEY.into();
    })
    .await;
    let paid = svc.create(Some("s-1"), common::order("sb-1")).await;
    assert_eq!(paid.status, 201, "{}", paid.text);
    let payment = paid.json();
    assert_eq!(payment["provider"], "stripe");
    assert_eq!(payment["status"], "succeeded");
    let pi = payment["provider_payment_id"].as_str().unwrap();
    assert!(pi.starts_with("pi_"));
    let declined = svc
        .create(
            None,
            common::order_with("sb-2", "pm_card_chargeDeclinedInsufficientFunds"),
        )
        .await
        .json();
    assert_eq!(declined["status"], "failed");
    assert_eq!(declined["failure_code"], "insufficient_funds");
    let id = payment["id"].as_str().unwrap();
    let refunded = refund(
        &svc.client,
        &svc.base,
        id,
        None,
        &json!({"amount": 999, "operator_id": "op"}),
    )
    .await;
    assert_eq!(refunded.status, 201, "{}", refunded.text);
    assert!(refunded.json()["provider_refund_id"]
        .as_str()
        .unwrap()
        .starts_with("re_"));
    let intent: Value = reqwest::Client::new()
        .get(format!("{}/v1/payment_intents/{pi}", sandbox.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The payment key travels as metadata, never our payment id (DESIGN §2 "Provider").
    assert_eq!(
        intent["metadata"],
        json!({"merchant_id": "m_demo", "order_no": "sb-1", "attempt": "1"})
    );
    assert_eq!(intent["amount"], 1999);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_reads_each_test_card_as_stripe_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let c = connector(&sandbox);
    for method in ["pm_card_mastercard", "pm_card_amex"] {
        let id = succeeded_id(c.charge(&charge(&format!("pay_{method}"), method)).await);
        let payment = c.retrieve_payment(&id).await.unwrap();
        assert_eq!(payment.status, ProviderPaymentStatus::Succeeded, "{method}");
    }
    // 3-D Secure: the PaymentIntent is left `requires_action`, which a server-side
    // confirmation cannot finish: a decline `authentication_required`, nothing charged.
    let action = c
        .charge(&charge("pay_3ds", "pm_card_authenticationRequired"))
        .await;
    let ChargeOutcome::Declined {
        code,
        provider_payment_id: Some(pi),
        ..
    } = action
    else {
        panic!("expected a decline: {action:?}")
    };
    assert_eq!(code, "authentication_required");
    let payment = c.retrieve_payment(&pi).await.unwrap();
    assert!(
        matches!(&payment.status, ProviderPaymentStatus::Failed { code, .. } if code == "authentication_required"),
        "{payment:?}"
    );
    for (method, expected) in [
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error"),
    ] {
        let request = charge(&format!("pay_{method}"), method);
        let outcome = c.charge(&request).await;
        assert!(
            matches!(&outcome, ChargeOutcome::Declined { code, provider_payment_id: Some(_), .. } if code == expected),
            "{method}: {outcome:?}"
        );
        // The key keeps its answer: retrying `processing_error` means a new attempt.
        assert_eq!(c.charge(&request).await, outcome, "{method} replayed");
    }
    let client = reqwest::Client::new();
    let txns: Value = client
        .get(format!(
            "{}/v1/balance_transactions?limit=100",
            sandbox.base
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        txns["data"].as_array().unwrap().len(),
        2,
        "only mastercard and amex moved money"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paykeep_retries_a_processing_error_as_a_new_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let base = sandbox.base.clone();
    let svc = common::start(move |c| {
        c.provider.kind = paykeep::config::ProviderKind::Stripe;
        c.provider.base_url = base;
        c.provider.secret_key = KEY.into();
    })
    .await;
    let order = |method: &str| common::order_with("sb-retry", method);
    let failed = svc
        .create(Some("k-1"), order("pm_card_chargeDeclinedProcessingError"))
        .await
        .json();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_code"], "processing_error");
    let three_ds = svc
        .create(
            None,
            common::order_with("sb-3ds", "pm_card_authenticationRequired"),
        )
        .await
        .json();
    assert_eq!(three_ds["status"], "failed", "{three_ds}");
    assert_eq!(three_ds["failure_code"], "authentication_required");
    let paid = svc.create(Some("k-2"), order("pm_card_mastercard")).await;
    let paid = paid.json();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["attempt_count"], 2);
    assert_eq!(paid["id"], failed["id"]);
    svc.shutdown().await;
}
