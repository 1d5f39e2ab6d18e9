//! Reconciliation over real HTTP (DESIGN §2): a crafted CSV settlement report producing
//! each discrepancy type, the stored report and its event, resolution by an operator, a run
//! against the provider's balance transactions (simulator and sandbox), and bad inputs.

mod common;
mod provider_common;

use common::{order, order_with, start, Answer};
use paykeep::domain::event::kind;
use paykeep::store::{Durability, Store};
use provider_common::{refund, spawn_sandbox};
use serde_json::{json, Value};

const ADMIN: &str = "admin_demo_token";

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

async fn post_csv(svc: &common::Service, date: &str, csv: &str) -> Answer {
    let response = svc
        .client
        .post(svc.url(&format!("/admin/reconciliations?date={date}")))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    common::read(response).await
}

async fn post_json(svc: &common::Service, token: &str, body: Value) -> Answer {
    let response = svc
        .client
        .post(svc.url("/admin/reconciliations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    common::read(response).await
}

async fn get_admin(svc: &common::Service, path: &str) -> Answer {
    common::get_at(&svc.client, &svc.base, ADMIN, path).await
}

async fn resolve(svc: &common::Service, id: &str, body: Value) -> Answer {
    let response = svc
        .client
        .post(svc.url(&format!("/admin/discrepancies/{id}/resolve")))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    common::read(response).await
}

async fn paid(svc: &common::Service, order_no: &str) -> Value {
    svc.create(None, order(order_no)).await.json()
}

fn pi(payment: &Value) -> &str {
    payment["provider_payment_id"].as_str().unwrap()
}

fn of_type<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_csv_yields_every_discrepancy_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let data_dir = db.clone();
    let svc = start(move |c| c.store.data_dir = data_dir).await;
    let a = paid(&svc, "rc-a").await;
    let b = paid(&svc, "rc-b").await;
    let c = paid(&svc, "rc-c").await;
    let f = paid(&svc, "rc-f").await;
    let e = svc
        .create(None, order_with("rc-e", "pm_card_chargeDeclined"))
        .await
        .json();
    // G: a declined first attempt, then a paid second one; the provider shows money on both.
    let g1 = svc
        .create(Some("g-1"), order_with("rc-g", "pm_card_chargeDeclined"))
        .await
        .json();
    let g2 = svc.create(Some("g-2"), order("rc-g")).await.json();
    assert_eq!(
        (g2["status"].as_str(), g2["attempt_count"].as_u64()),
        (Some("succeeded"), Some(2))
    );
    let a_id = a["id"].as_str().unwrap();
    let r = refund(
        &svc.client,
        &svc.base,
        a_id,
        None,
        &json!({"amount": 500, "operator_id": "op"}),
    )
    .await
    .json();
    let csv = format!(
        "provider_payment_id,amount,currency,status\n\
         {},1999,USD,succeeded\n\
         {},-500,usd,succeeded\n\
         {},1000,USD,succeeded\n\
         pi_stranger,700,USD,succeeded\n\
         {},1999,USD,succeeded\n\
         {},1999,USD,failed\n\
         {},1999,USD,succeeded\n\
         {},1999,USD,succeeded\n\
         pi_never_moved,5,USD,failed\n",
        pi(&a),
        r["provider_refund_id"].as_str().unwrap(),
        pi(&b),
        pi(&e),
        pi(&f),
        pi(&g1),
        pi(&g2),
    );
    let created = post_csv(&svc, &today(), &csv).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let report = created.json();
    assert!(report["id"].as_str().unwrap().starts_with("rec_"));
    assert_eq!(report["date"], today());
    assert_eq!(report["source"], "csv");
    assert_eq!(
        report["our_count"], 6,
        "five payments and a refund moved money"
    );
    assert_eq!(report["our_total"], 5 * 1999 - 500);
    assert_eq!(report["provider_count"], 7);
    assert_eq!(report["discrepancy_count"], 6, "{report}");
    let amount = of_type(&report, "amount_mismatch");
    assert_eq!(amount.len(), 1);
    assert_eq!(amount[0]["payment_id"], b["id"]);
    assert_eq!(
        (
            amount[0]["our_amount"].as_u64(),
            amount[0]["provider_amount"].as_u64()
        ),
        (Some(1999), Some(1000))
    );
    let missing = of_type(&report, "missing_in_provider");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["payment_id"], c["id"]);
    assert_eq!(missing[0]["provider_payment_id"], c["provider_payment_id"]);
    let stranger = of_type(&report, "missing_in_ours");
    assert_eq!(stranger.len(), 1);
    assert_eq!(stranger[0]["provider_payment_id"], "pi_stranger");
    assert_eq!(stranger[0]["payment_id"], Value::Null);
    let status = of_type(&report, "status_mismatch");
    assert_eq!(status.len(), 3);
    let superseded = status
        .iter()
        .find(|d| d["provider_payment_id"] == g1["provider_payment_id"])
        .expect("money on a failed earlier attempt is reported");
    assert_eq!(
        (
            superseded["payment_id"].clone(),
            superseded["our_status"].as_str()
        ),
        (g1["id"].clone(), Some("failed"))
    );
    assert!(status.iter().any(|d| d["payment_id"] == e["id"]
        && d["our_status"] == "failed"
        && d["provider_status"] == "succeeded"));
    assert!(status.iter().any(|d| d["payment_id"] == f["id"]
        && d["our_status"] == "succeeded"
        && d["provider_status"] == "failed"));
    for d in report["discrepancies"].as_array().unwrap() {
        assert!(d["id"].as_str().unwrap().starts_with("dis_"));
        assert_eq!(d["resolved"], false);
    }

    // The stored report reads back the same.
    let rec_id = report["id"].as_str().unwrap();
    let stored = get_admin(&svc, &format!("/admin/reconciliations/{rec_id}")).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.json(), report);

    // Resolution.
    let dis = missing[0]["id"].as_str().unwrap();
    let body = json!({"resolution": "charged manually at the terminal", "operator": "alice"});
    let resolved = resolve(&svc, dis, body.clone()).await;
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    let d = resolved.json();
    assert_eq!(
        (d["resolved"].as_bool(), d["resolved_by"].as_str()),
        (Some(true), Some("alice"))
    );
    assert!(d["resolved_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        resolve(&svc, dis, body).await.json(),
        d,
        "same resolution again is idempotent"
    );
    resolve(&svc, dis, json!({"resolution": "other", "operator": "bob"}))
        .await
        .problem(409, "already_resolved");
    resolve(
        &svc,
        "dis_nope",
        json!({"resolution": "x", "operator": "y"}),
    )
    .await
    .problem(404, "not_found");
    resolve(&svc, dis, json!({"resolution": "", "operator": "y"}))
        .await
        .problem(400, "invalid_request");
    let metrics = svc.get("/metrics").await.text;
    assert!(
        metrics.contains("reconciliation_discrepancies_total{type=\"status_mismatch\"} 3"),
        "{metrics}"
    );
    let after = get_admin(&svc, &format!("/admin/reconciliations/{rec_id}"))
        .await
        .json();
    assert_eq!(
        of_type(&after, "missing_in_provider")[0]["resolution"],
        "charged manually at the terminal"
    );
    svc.shutdown().await;

    let store = Store::open(&db, Durability::FlushOnly).unwrap();
    let events = store.events_after(0, 1000).unwrap();
    let found: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.kind == kind::RECONCILIATION_DISCREPANCIES_FOUND)
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1.entity_id, rec_id);
    assert!(found[0].1.payload.contains("\"discrepancy_count\":6"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_day_against_the_simulator_has_no_discrepancies() {
    let svc = start(|_| {}).await;
    let a = paid(&svc, "rs-a").await;
    paid(&svc, "rs-b").await;
    svc.create(None, order_with("rs-c", "pm_card_chargeDeclined"))
        .await;
    refund(
        &svc.client,
        &svc.base,
        a["id"].as_str().unwrap(),
        None,
        &json!({"amount": 300, "operator_id": "op"}),
    )
    .await;
    let report = post_json(&svc, ADMIN, json!({"date": today()})).await;
    assert_eq!(report.status, 201, "{}", report.text);
    let report = report.json();
    assert_eq!(report["source"], "balance_transactions");
    assert_eq!(
        (
            report["our_count"].as_u64(),
            report["provider_count"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(report["our_total"], report["provider_total"]);
    assert_eq!(report["discrepancy_count"], 0, "{report}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_balance_transactions_reconcile_with_paykeep() {
    let sandbox_dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(sandbox_dir.path(), &[]);
    let base = sandbox.base.clone();
    let svc = start(move |c| {
        c.provider.kind = paykeep::config::ProviderKind::Stripe;
        c.provider.base_url = base;
        c.provider.secret_key = "sk_test_sandbox".into();
        c.payments.refund_fee_minor = 100;
    })
    .await;
    let a = paid(&svc, "rx-a").await;
    paid(&svc, "rx-b").await;
    let r = refund(
        &svc.client,
        &svc.base,
        a["id"].as_str().unwrap(),
        None,
        &json!({"amount": 600, "operator_id": "op"}),
    )
    .await;
    assert_eq!(r.json()["amount_returned"], 500);
    let report = post_json(&svc, ADMIN, json!({"date": today()}))
        .await
        .json();
    assert_eq!(report["discrepancy_count"], 0, "{report}");
    assert_eq!(report["our_total"], 1999 * 2 - 500);
    assert_eq!(report["provider_total"], 1999 * 2 - 500);
    assert_eq!(
        report["totals_by_currency"]["USD"],
        json!({"ours": 3498, "provider": 3498})
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused() {
    let svc = start(|_| {}).await;
    post_json(&svc, "sk_test_demo", json!({"date": today()}))
        .await
        .problem(401, "unauthorized");
    post_json(&svc, ADMIN, json!({"date": "2026-13-01"}))
        .await
        .problem(400, "invalid_request");
    post_json(&svc, ADMIN, json!({"date": "2999-01-01"}))
        .await
        .problem(400, "invalid_request");
    post_json(&svc, ADMIN, json!({"day": today()}))
        .await
        .problem(400, "invalid_request");
    let header = post_csv(&svc, &today(), "id,amount\npi_1,1\n").await;
    assert!(header.problem(400, "invalid_request")["detail"]
        .as_str()
        .unwrap()
        .contains("line 1"));
    let row = post_csv(
        &svc,
        &today(),
        "provider_payment_id,amount,currency,status\npi_1,abc,USD,succeeded\n",
    )
    .await;
    assert!(row.problem(400, "invalid_request")["detail"]
        .as_str()
        .unwrap()
        .contains("line 2"));
    let response = svc
        .client
        .post(svc.url("/admin/reconciliations"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body("provider_payment_id,amount,currency,status\n")
        .send()
        .await
        .unwrap();
    common::read(response).await.problem(400, "invalid_request");
    get_admin(&svc, "/admin/reconciliations/rec_nope")
        .await
        .problem(404, "not_found");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_that_would_overflow_are_422_naming_the_row() {
    let svc = start(|_| {}).await;
    let max = i64::MAX;
    // Issue 13: these rows once reported a provider total of 3.
    let csv = format!(
        "provider_payment_id,amount,currency,status\npi_max1,{max},USD,succeeded\npi_max2,{max},USD,succeeded\npi_five,5,USD,succeeded\n"
    );
    let answer = post_csv(&svc, &today(), &csv).await;
    let detail = answer.problem(422, "reconciliation_overflow")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("data row 2") && detail.contains("pi_max2"),
        "{detail}"
    );
    // The most negative amount the CSV can hold is past i64 on its own.
    let csv = format!(
        "provider_payment_id,amount,currency,status\nre_min,{},USD,succeeded\n",
        i64::MIN
    );
    let detail = post_csv(&svc, &today(), &csv)
        .await
        .problem(422, "reconciliation_overflow")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("data row 1") && detail.contains("re_min"),
        "{detail}"
    );
    // The largest total that fits is reported exactly.
    let csv = format!(
        "provider_payment_id,amount,currency,status\npi_a,{},USD,succeeded\npi_b,5,USD,succeeded\n",
        max - 5
    );
    let report = post_csv(&svc, &today(), &csv).await;
    assert_eq!(report.status, 201, "{}", report.text);
    assert_eq!(report.json()["provider_total"], json!(max));
    svc.shutdown().await;
}
