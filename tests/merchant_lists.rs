//! The merchant's lists over real HTTP (DESIGN §2, "Lists"; Stripe's list shape): payments
//! paged newest first while creates run, never repeating or skipping one that existed when
//! the first page was read; the `status` and `created` filters; refunds listed by merchant
//! and by payment, and read by id; isolation between merchants; bad input refused as 400
//! naming the parameter.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use common::{create_at, get_at, order, order_with, Service, MERCHANT_KEY, OTHER_MERCHANT_KEY};

/// Pages through `path` (a list URL with its own query) with `limit`, from the newest,
/// passing each page's `next_starting_after` as the next `starting_after`; returns every
/// page's ids. Without a filter stopping at the scan bound, that cursor is the page's last
/// id, and only a page with `has_more` carries it.
async fn page_through(service: &Service, path: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let cursor = after
            .as_ref()
            .map(|id| format!("&starting_after={id}"))
            .unwrap_or_default();
        let answer = service
            .get(&format!("{path}{sep}limit={limit}{cursor}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let body = answer.json();
        assert_eq!(body["object"], "list");
        assert_eq!(body["url"], path.split('?').next().unwrap());
        let ids: Vec<String> = ids_of(&body);
        assert!(ids.len() <= limit);
        let has_more = body["has_more"].as_bool().expect("has_more");
        assert!(body.get("next_ending_before").is_none(), "{body}");
        if !has_more {
            assert!(body.get("next_starting_after").is_none(), "{body}");
            pages.push(ids);
            return pages;
        }
        let next = body["next_starting_after"]
            .as_str()
            .expect("next_starting_after");
        assert_eq!(Some(next), ids.last().map(String::as_str), "{body}");
        after = Some(next.to_owned());
        pages.push(ids);
    }
}

fn ids_of(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Creates `n` payments of orders `{prefix}-{i}`, 25 at a time; returns their ids.
async fn create_many(service: &Service, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let answers = futures::future::join_all(
            chunk
                .iter()
                .map(|i| service.create(None, order(&format!("{prefix}-{i}")))),
        )
        .await;
        for answer in answers {
            assert_eq!(answer.status, 201, "{}", answer.text);
            ids.push(answer.json()["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_250_payments_while_creates_run_returns_each_once() {
    let service = Arc::new(common::start(|_| {}).await);
    let existing = create_many(&service, "o", 250).await;

    // Creates keep coming, of this merchant and another, while the pages are read.
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (service, running) = (Arc::clone(&service), Arc::clone(&running));
        tokio::spawn(async move {
            let mut n = 0;
            while running.load(Ordering::Relaxed) {
                let key = if n % 2 == 0 {
                    MERCHANT_KEY
                } else {
                    OTHER_MERCHANT_KEY
                };
                let body = order(&format!("late-{n}"));
                let answer = create_at(&service.client, &service.base, key, None, &body).await;
                assert_eq!(answer.status, 201, "{}", answer.text);
                n += 1;
            }
            n
        })
    };
    let pages = page_through(&service, "/v1/payments", 100).await;
    // And backwards from the oldest, with `ending_before`.
    let oldest = pages.iter().flatten().last().cloned().expect("a payment");
    let mut backwards = vec![oldest.clone()];
    let mut before = oldest;
    loop {
        let answer = service
            .get(&format!("/v1/payments?limit=100&ending_before={before}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let body = answer.json();
        let mut ids = ids_of(&body);
        if ids.is_empty() {
            break;
        }
        before = ids[0].clone();
        let has_more = body["has_more"].as_bool().unwrap();
        // Read newer-wards, the page continues from its newest item, under the cursor
        // that reads that way.
        assert!(body.get("next_starting_after").is_none(), "{body}");
        let next = body.get("next_ending_before").and_then(Value::as_str);
        assert_eq!(next, has_more.then_some(before.as_str()), "{body}");
        ids.reverse();
        backwards.extend(ids);
        if !has_more {
            break;
        }
    }
    running.store(false, Ordering::Relaxed);
    let late = writer.await.expect("writer");
    assert!(late > 0, "no create ran while paging");

    let seen: Vec<&String> = pages.iter().flatten().collect();
    let unique: HashSet<&String> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a page repeated a payment");
    for id in &existing {
        assert!(unique.contains(id), "{id} was skipped");
    }
    assert!(
        pages[0].len() == 100 && pages.len() >= 3,
        "{:?}",
        pages.len()
    );
    let back_unique: HashSet<&String> = backwards.iter().collect();
    assert_eq!(
        back_unique.len(),
        backwards.len(),
        "ending_before repeated one"
    );
    for id in &existing {
        assert!(back_unique.contains(id), "{id} was skipped going back");
    }

    // Newest first: by creation time, to within the second the lists allow.
    let first = service.get("/v1/payments?limit=100").await.json();
    let times: Vec<i64> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(created_ms)
        .collect();
    for pair in times.windows(2) {
        assert!(pair[0] + 1_000 >= pair[1], "not newest first: {times:?}");
    }
    // The other merchant sees only its own.
    let other = get_at(
        &service.client,
        &service.base,
        OTHER_MERCHANT_KEY,
        "/v1/payments?limit=100",
    )
    .await
    .json();
    for payment in other["data"].as_array().unwrap() {
        assert!(!unique.contains(&payment["id"].as_str().unwrap().to_owned()));
        assert!(payment["order_no"].as_str().unwrap().starts_with("late-"));
    }
}

fn created_ms(payment: &Value) -> i64 {
    let text = payment["created_at"].as_str().expect("created_at");
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test]
async fn payment_filters_and_bad_input() {
    let service = common::start(|_| {}).await;
    let paid = create_many(&service, "paid", 3).await;
    let declined = service
        .create(None, order_with("declined-1", "pm_card_chargeDeclined"))
        .await;
    assert_eq!(declined.json()["status"], "failed", "{}", declined.text);
    let declined_id = declined.json()["id"].as_str().unwrap().to_owned();

    let failed = service.get("/v1/payments?status=failed").await;
    // Each item is the payment exactly as its own route answers it.
    let one = service.get(&format!("/v1/payments/{declined_id}")).await;
    assert!(failed.text.contains(&one.text), "{}", failed.text);
    let failed = failed.json();
    assert_eq!(ids_of(&failed), std::slice::from_ref(&declined_id));
    let succeeded = service.get("/v1/payments?status=succeeded").await.json();
    assert_eq!(
        ids_of(&succeeded).into_iter().collect::<HashSet<_>>(),
        paid.iter().cloned().collect::<HashSet<_>>()
    );
    assert_eq!(succeeded["has_more"], false);

    // The created window: Unix seconds and RFC 3339 bounds.
    let declined_at = created_ms(
        &service
            .get(&format!("/v1/payments/{declined_id}"))
            .await
            .json(),
    );
    let from = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(declined_at) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let window = service
        .get(&format!("/v1/payments?created[gte]={from}"))
        .await
        .json();
    assert!(ids_of(&window).contains(&declined_id));
    for payment in window["data"].as_array().unwrap() {
        assert!(created_ms(payment) >= declined_at);
    }
    let before = service
        .get(&format!("/v1/payments?created[lt]={from}"))
        .await
        .json();
    assert!(!ids_of(&before).contains(&declined_id));
    let far_past = service.get("/v1/payments?created[lt]=1000").await.json();
    assert_eq!(ids_of(&far_past), Vec::<String>::new());
    let in_seconds = service
        .get(&format!(
            "/v1/payments?created[gte]={}",
            declined_at / 1_000
        ))
        .await
        .json();
    assert!(ids_of(&in_seconds).contains(&declined_id));
    // With `order_no` the route still answers that order's payment.
    let by_order = service.get("/v1/payments?order_no=declined-1").await;
    assert_eq!(by_order.json()["id"], declined_id.as_str());

    // Bad input: 400 naming the member; another merchant's id is unknown here.
    let other = create_at(
        &service.client,
        &service.base,
        OTHER_MERCHANT_KEY,
        None,
        &order("theirs"),
    )
    .await
    .json();
    let theirs = other["id"].as_str().unwrap();
    for (query, member) in [
        ("limit=0".to_owned(), "limit"),
        ("limit=101".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("starting_after=pay_nope".to_owned(), "starting_after"),
        (format!("starting_after={theirs}"), "starting_after"),
        (format!("ending_before={theirs}"), "ending_before"),
        (
            format!("starting_after={}&ending_before={}", paid[0], paid[1]),
            "ending_before",
        ),
        ("status=paid".to_owned(), "status"),
        ("created[gte]=yesterday".to_owned(), "created[gte]"),
        ("created[after]=1".to_owned(), "created[after]"),
        ("order_no=declined-1&limit=5".to_owned(), "limit"),
    ] {
        let answer = service.get(&format!("/v1/payments?{query}")).await;
        let problem = answer.problem(400, "invalid_request");
        assert!(
            problem.to_string().contains(member),
            "{query}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn refunds_are_listed_by_merchant_and_by_payment_and_read_by_id() {
    let service = common::start(|_| {}).await;
    let payments = create_many(&service, "r", 2).await;
    let mut refunds = Vec::new();
    for (n, payment) in [&payments[0], &payments[0], &payments[1]]
        .into_iter()
        .enumerate()
    {
        let answer = service
            .client
            .post(service.url(&format!("/v1/payments/{payment}/refunds")))
            .bearer_auth(MERCHANT_KEY)
            .json(&json!({"amount": 100 + n, "reason": "damaged", "operator_id": "op"}))
            .send()
            .await
            .expect("request");
        let answer = common::read(answer).await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "{}",
            answer.text
        );
        refunds.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = refunds.iter().rev().cloned().collect();

    let all: Vec<String> = page_through(&service, "/v1/refunds", 2).await.concat();
    assert_eq!(all, newest_first);
    let of_first: Vec<String> = page_through(
        &service,
        &format!("/v1/refunds?payment_id={}", payments[0]),
        1,
    )
    .await
    .concat();
    assert_eq!(of_first, [refunds[1].clone(), refunds[0].clone()]);
    let before = service
        .get(&format!(
            "/v1/refunds?payment_id={}&ending_before={}",
            payments[0], refunds[0]
        ))
        .await
        .json();
    assert_eq!(ids_of(&before), [refunds[1].clone()]);
    assert_eq!(before["has_more"], false);
    assert!(before.get("next_ending_before").is_none(), "{before}");

    let one = service.get(&format!("/v1/refunds/{}", refunds[2])).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["object"], "refund");
    assert_eq!(one.json()["payment_id"], payments[1].as_str());

    // Another merchant sees none of them.
    let other = |path: String| {
        let service = &service;
        async move { get_at(&service.client, &service.base, OTHER_MERCHANT_KEY, &path).await }
    };
    other(format!("/v1/refunds/{}", refunds[2]))
        .await
        .problem(404, "not_found");
    let theirs = other("/v1/refunds".to_owned()).await.json();
    assert_eq!(ids_of(&theirs), Vec::<String>::new());
    let answer = other(format!("/v1/refunds?payment_id={}", payments[0])).await;
    assert!(answer
        .problem(400, "invalid_request")
        .to_string()
        .contains("payment_id"));
    let answer = other(format!("/v1/refunds?starting_after={}", refunds[0])).await;
    assert!(answer
        .problem(400, "invalid_request")
        .to_string()
        .contains("starting_after"));
    service
        .get("/v1/refunds/re_unknown")
        .await
        .problem(404, "not_found");
}
