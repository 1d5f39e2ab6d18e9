//! `paykeep sandbox` over raw HTTP, as any client sees it: Stripe's refusals on every route
//! (unknown parameters, currency, minimum amount, refund `reason`, paging parameters and
//! cursors), each Stripe's error object with its `param`; manual capture and cancel;
//! `expand[]` and `expand[N]`; refunds by charge; the charge and refund lists;
//! `ending_before`; HTTP Basic auth. The same flows through Stripe's own Python library are
//! in `sandbox_stripe_py.rs`.

mod common;
mod provider_common;

use provider_common::{spawn_sandbox, Sandbox};
use serde_json::Value;

const KEY: &str = "sk_test_rules";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(sandbox: &Sandbox) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: sandbox.base.clone(),
        }
    }

    async fn post(&self, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .form(form);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = request.send().await.unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let answer = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    /// A confirmed PaymentIntent of `amount` USD with `method`, plus `extra` parameters.
    async fn pay(&self, method: &str, amount: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![
            ("amount", amount),
            ("currency", "usd"),
            ("payment_method", method),
            ("payment_method_types[]", "card"),
            ("confirm", "true"),
        ];
        form.extend_from_slice(extra);
        self.post("/v1/payment_intents", None, &form).await
    }
}

/// Asserts Stripe's error object: status, `type`, `code` (or none) and `param`.
#[track_caller]
fn refused(answer: &(u16, Value), status: u16, code: Option<&str>, param: &str) {
    let (got, body) = answer;
    let error = &body["error"];
    assert_eq!(*got, status, "{body}");
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(error["code"].as_str(), code, "{body}");
    assert_eq!(error["param"], param, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_what_stripe_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let c = &Client::new(&sandbox);
    let unknown = Some("parameter_unknown");
    refused(
        &c.pay("pm_card_visa", "1999", &[("foo", "bar")]).await,
        400,
        unknown,
        "foo",
    );
    let bad_currency = c
        .post(
            "/v1/payment_intents",
            None,
            &[("amount", "1999"), ("currency", "zzz"), ("confirm", "true")],
        )
        .await;
    refused(&bad_currency, 400, None, "currency");
    let small = c.pay("pm_card_visa", "49", &[]).await;
    refused(&small, 400, Some("amount_too_small"), "amount");
    let manual = [("capture_method", "sometimes")];
    refused(
        &c.pay("pm_card_visa", "1999", &manual).await,
        400,
        None,
        "capture_method",
    );

    let (_, paid) = c.pay("pm_card_visa", "1999", &[]).await;
    let pi = paid["id"].as_str().unwrap();
    let capture = format!("/v1/payment_intents/{pi}/capture");
    let cancel = format!("/v1/payment_intents/{pi}/cancel");
    refused(
        &c.post(&capture, None, &[("foo", "1")]).await,
        400,
        unknown,
        "foo",
    );
    refused(
        &c.post(&cancel, None, &[("foo", "1")]).await,
        400,
        unknown,
        "foo",
    );
    let refund = |extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![("payment_intent", pi)];
        form.extend_from_slice(extra);
        async move { c.post("/v1/refunds", None, &form).await }
    };
    refused(&refund(&[("foo", "1")]).await, 400, unknown, "foo");
    refused(
        &refund(&[("reason", "changed_mind")]).await,
        400,
        None,
        "reason",
    );
    refused(
        &refund(&[("amount", "0")]).await,
        400,
        Some("parameter_invalid_integer"),
        "amount",
    );
    let nothing = c.post("/v1/refunds", None, &[("amount", "1")]).await;
    refused(&nothing, 400, Some("parameter_missing"), "charge");

    for list in [
        "payment_intents",
        "charges",
        "refunds",
        "balance_transactions",
    ] {
        let path = |query: &str| format!("/v1/{list}?{query}");
        refused(&c.get(&path("foo=1")).await, 400, unknown, "foo");
        for limit in ["0", "101", "abc"] {
            let answer = c.get(&path(&format!("limit={limit}"))).await;
            refused(&answer, 400, Some("parameter_invalid_integer"), "limit");
        }
        let missing = Some("resource_missing");
        refused(
            &c.get(&path("starting_after=x_1")).await,
            400,
            missing,
            "starting_after",
        );
        refused(
            &c.get(&path("ending_before=x_1")).await,
            400,
            missing,
            "ending_before",
        );
        let both = c.get(&path("starting_after=a&ending_before=b")).await;
        refused(&both, 400, None, "ending_before");
        refused(
            &c.get(&path("created[gte]=soon")).await,
            400,
            Some("parameter_invalid_integer"),
            "created[gte]",
        );
    }
    // A cursor must be an object of the list it pages.
    let charge = paid["latest_charge"].as_str().unwrap();
    let wrong_kind = c
        .get(&format!("/v1/payment_intents?starting_after={charge}"))
        .await;
    refused(&wrong_kind, 400, Some("resource_missing"), "starting_after");
    let bad_type = c.get("/v1/balance_transactions?type=bonus").await;
    refused(&bad_type, 400, None, "type");
    let retrieve = c.get(&format!("/v1/payment_intents/{pi}?foo=1")).await;
    refused(&retrieve, 400, unknown, "foo");
    let missing = c.get("/v1/payment_intents/pi_missing").await;
    refused(&missing, 404, Some("resource_missing"), "intent");
    let (status, body) = c.get("/v1/payment_intents/search?query=x").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_store_nothing_and_a_changed_request_under_a_used_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &[]);
    let c = Client::new(&sandbox);
    let form = |amount: &'static str| {
        [
            ("amount", amount),
            ("currency", "usd"),
            ("payment_method", "pm_card_visa"),
            ("confirm", "true"),
        ]
    };
    let long_key = "k".repeat(256);
    let (status, long) = c
        .post("/v1/payment_intents", Some(&long_key), &form("1999"))
        .await;
    assert_eq!(status, 400, "{long}");
    assert_eq!(long["error"]["type"], "invalid_request_error");
    let (status, charges) = c.get("/v1/charges").await;
    assert_eq!(status, 200);
    assert_eq!(
        charges["data"],
        Value::Array(vec![]),
        "the long key charged nothing"
    );
    let small = c
        .post("/v1/payment_intents", Some("k-1"), &form("10"))
        .await;
    refused(&small, 400, Some("amount_too_small"), "amount");
    let (status, first) = c
        .post("/v1/payment_intents", Some("k-1"), &form("1999"))
        .await;
    assert_eq!((status, &first["status"]), (200, &Value::from("succeeded")));
    let (status, again) = c
        .post("/v1/payment_intents", Some("k-1"), &form("1999"))
        .await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (status, other) = c
        .post("/v1/payment_intents", Some("k-1"), &form("2000"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(other["error"]["type"], "idempotency_error", "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_capture_cancel_and_expand() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &[]);
    let c = Client::new(&sandbox);
    let manual = [("capture_method", "manual"), ("expand[]", "latest_charge")];
    let (status, pi) = c.pay("pm_card_mastercard", "1999", &manual).await;
    assert_eq!(status, 200, "{pi}");
    assert_eq!(pi["status"], "requires_capture");
    assert_eq!(
        (
            pi["amount_capturable"].as_u64(),
            pi["amount_received"].as_u64()
        ),
        (Some(1999), Some(0))
    );
    assert_eq!(pi["latest_charge"]["captured"], false);
    assert_eq!(
        pi["latest_charge"]["payment_method_details"]["card"]["brand"],
        "mastercard"
    );
    let id = pi["id"].as_str().unwrap();
    let (_, txns) = c.get("/v1/balance_transactions").await;
    assert_eq!(
        txns["data"].as_array().unwrap().len(),
        0,
        "an authorization moves no money"
    );
    let refund = c.post("/v1/refunds", None, &[("payment_intent", id)]).await;
    assert_eq!(
        refund.1["error"]["code"], "charge_not_refundable",
        "{}",
        refund.1
    );
    let capture = format!("/v1/payment_intents/{id}/capture");
    let too_much = c
        .post(&capture, None, &[("amount_to_capture", "2000")])
        .await;
    refused(
        &too_much,
        400,
        Some("amount_too_large"),
        "amount_to_capture",
    );
    let (status, captured) = c
        .post(
            &capture,
            None,
            &[
                ("amount_to_capture", "1500"),
                ("expand[0]", "latest_charge"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount_received"], 1500);
    assert_eq!(captured["latest_charge"]["amount_captured"], 1500);
    let (status, twice) = c.post(&capture, None, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(twice["error"]["code"], "payment_intent_unexpected_state");
    let (_, txns) = c.get("/v1/balance_transactions?expand[]=data.source").await;
    assert_eq!(txns["data"][0]["amount"], 1500);
    assert_eq!(txns["data"][0]["source"]["payment_intent"], id);

    let (_, held) = c
        .pay("pm_card_visa", "1999", &[("capture_method", "manual")])
        .await;
    let held_id = held["id"].as_str().unwrap();
    let cancel = format!("/v1/payment_intents/{held_id}/cancel");
    let (status, canceled) = c
        .post(&cancel, None, &[("cancellation_reason", "abandoned")])
        .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["cancellation_reason"], "abandoned");
    let (_, charge) = c
        .get(&format!(
            "/v1/charges/{}",
            held["latest_charge"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (charge["refunded"].as_bool(), charge["captured"].as_bool()),
        (Some(true), Some(false))
    );
    let (status, again) = c.post(&cancel, None, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"]["code"], "payment_intent_unexpected_state");
    let unknown_field = c
        .get(&format!("/v1/payment_intents/{id}?expand[]=customer"))
        .await;
    refused(&unknown_field, 400, None, "expand");
    let (_, retrieved) = c
        .get(&format!("/v1/payment_intents/{id}?expand[0]=latest_charge"))
        .await;
    assert_eq!(retrieved["latest_charge"]["object"], "charge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_by_charge_lists_and_ending_before() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = spawn_sandbox(dir.path(), &["--secret-key", KEY]);
    let c = &Client::new(&sandbox);
    let mut made = Vec::new();
    for _ in 0..4 {
        let (_, pi) = c.pay("pm_card_amex", "1000", &[]).await;
        made.push(pi);
    }
    let charge = made[0]["latest_charge"].as_str().unwrap();
    let reason = ("reason", "requested_by_customer");
    let (status, first) = c
        .post(
            "/v1/refunds",
            None,
            &[("charge", charge), ("amount", "400"), reason],
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["reason"], "requested_by_customer");
    assert_eq!(first["payment_intent"], made[0]["id"]);
    let (_, rest) = c.post("/v1/refunds", None, &[("charge", charge)]).await;
    assert_eq!(rest["amount"], 600);
    let (status, done) = c.post("/v1/refunds", None, &[("charge", charge)]).await;
    assert_eq!(status, 400);
    assert_eq!(done["error"]["code"], "charge_already_refunded", "{done}");
    let (_, refunds) = c.get(&format!("/v1/refunds?charge={charge}")).await;
    let ids: Vec<&Value> = refunds["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&rest["id"], &first["id"]]);
    let (_, charges) = c.get("/v1/charges?limit=2").await;
    assert_eq!(charges["url"], "/v1/charges");
    assert_eq!(charges["data"][0]["payment_intent"], made[3]["id"]);
    assert_eq!(charges["has_more"], true);

    let ids: Vec<&str> = made.iter().map(|p| p["id"].as_str().unwrap()).collect();
    let page = |query: String| async move {
        let (_, list) = c.get(&format!("/v1/payment_intents?{query}")).await;
        let data: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        (data, list["has_more"].as_bool().unwrap())
    };
    // Newest first: ids[3], ids[2], ids[1], ids[0].
    assert_eq!(
        page(format!("limit=2&ending_before={}", ids[3])).await,
        (vec![], false)
    );
    assert_eq!(
        page(format!("limit=1&ending_before={}", ids[1])).await,
        (vec![ids[2].to_owned()], true)
    );
    assert_eq!(
        page(format!("limit=5&ending_before={}", ids[0])).await,
        (
            vec![ids[3].to_owned(), ids[2].to_owned(), ids[1].to_owned()],
            false
        )
    );
    assert_eq!(
        page(format!("limit=2&starting_after={}", ids[2])).await,
        (vec![ids[1].to_owned(), ids[0].to_owned()], false)
    );

    let basic = c
        .http
        .get(format!("{}/v1/refunds", c.base))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let wrong = c
        .http
        .get(format!("{}/v1/refunds", c.base))
        .basic_auth("sk_test_other", None::<&str>)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}
