//! The operator console in a real browser (DESIGN §7): headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs) against
//! the real `paykeep` binary on 127.0.0.1 with a temporary store and a loopback webhook sink.
//!
//! One chromedriver and one browser session run every step in turn (starting Chromium is
//! the slow part). Each step saves screenshots under `target/console-shots/`.
//! Without chromedriver the test is skipped with a message, except under `CI=true`, where
//! `.ci/run` has installed it and its absence is a failure.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN_TOKEN: &str = "admin_demo_token";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Longest wait for something to show on the page.
const PAGE_WAIT: Duration = Duration::from_secs(15);
/// Order numbers whose first webhook delivery the sink refuses with 404 (dead at once).
const DEAD_ORDERS: [&str; 2] = ["o-dead-1", "o-dead-2"];
/// The payment whose merchant strings carry markup.
const MARKUP_ORDER: &str = "<b>o-markup</b>";
const MARKUP_DESCRIPTION: &str =
    "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
/// The description of the merchant webhook endpoint the console disables.
const ENDPOINT_DESCRIPTION: &str = "<b>orders</b><img src=x onerror=\"window.__pwned=3\">";

/// chromedriver as a child process in its own process group, which the browser it starts
/// joins: dropping it (also when a step panics with the browser open) kills the group.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this test created; no memory is shared.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    candidates.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_driver(program: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(program)
        .arg(format!("--port={port}"))
        // A zone other than UTC, so local times on the page differ from the UTC ones.
        .env("TZ", "Asia/Tokyo")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url: format!("http://{addr}"),
    }
}

async fn start_browser(driver: &Driver, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,800",
                "--lang=en-US",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-shots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn element(browser: &Client, css: &str) -> Element {
    browser
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Waits until the text of `css` contains every one of `parts`; returns the text.
async fn text_containing(browser: &Client, css: &str, parts: &[&str]) -> String {
    let deadline = Instant::now() + PAGE_WAIT;
    let mut last = String::new();
    loop {
        if let Ok(found) = browser.find(Locator::Css(css)).await {
            if let Ok(text) = found.text().await {
                if parts.iter().all(|p| text.contains(p)) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed {parts:?}; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens `/console{hash}`; the same address again reloads the page (a same-document
/// navigation would not draw it anew).
async fn go(browser: &Client, base: &str, hash: &str) {
    let target = format!("{base}/console{hash}");
    let current = browser
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    if current == target {
        browser.refresh().await.expect("reload");
    } else {
        browser.goto(&target).await.expect("navigate");
    }
}

/// Fills the input `css` with `text` (replacing what it held).
async fn fill(browser: &Client, css: &str, text: &str) {
    let input = element(browser, css).await;
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Polls `probe` until it answers `Some`, for at most `PAGE_WAIT`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PAGE_WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Env {
    base: String,
    http: reqwest::Client,
    sink: MockServer,
}

impl Env {
    async fn admin_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin GET")
            .json()
            .await
            .expect("admin JSON")
    }

    async fn create(&self, body: Value) -> Value {
        let answer = self
            .http
            .post(format!("{}/v1/payments", self.base))
            .bearer_auth(common::MERCHANT_KEY)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert!(answer.status().is_success(), "create {body}");
        answer.json().await.expect("payment JSON")
    }

    /// The webhook deliveries to the sink whose body mentions `needle`.
    async fn sink_requests_with(&self, needle: &str) -> usize {
        self.sink
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| {
                r.url.path() == "/hook" && String::from_utf8_lossy(&r.body).contains(needle)
            })
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let (Some(driver_program), Some(chromium)) = (
        find_program(&["chromedriver"]),
        find_program(&["chromium", "chromium-browser", "google-chrome"]),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs chromium and chromedriver (.ci/run installs them)"
        );
        eprintln!("skipped: chromium or chromedriver not found (apt-get install chromium chromium-driver)");
        return;
    };
    let sink = MockServer::start().await;
    for order in DEAD_ORDERS {
        Mock::given(method("POST"))
            .and(path("/hook"))
            .and(body_string_contains(order))
            .respond_with(ResponseTemplate::new(404))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&sink)
            .await;
    }
    // Slack's answer to a revoked webhook: the channel pauses (DESIGN §3).
    Mock::given(method("POST"))
        .and(path("/slack"))
        .respond_with(ResponseTemplate::new(403).set_body_string("invalid_token"))
        .with_priority(1)
        .mount(&sink)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&sink)
        .await;
    let (_dir, data_dir) = common::temp_data_dir();
    let hook = format!("{}/hook", sink.uri());
    let slack = format!("{}/slack", sink.uri());
    let binary = common::spawn_binary(
        &data_dir,
        &[
            ("PAYKEEP_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "true"),
            ("PAYKEEP_NOTIFICATIONS__WEBHOOK__ENABLED", "true"),
            ("PAYKEEP_NOTIFICATIONS__WEBHOOK__URL", &hook),
            ("PAYKEEP_NOTIFICATIONS__WEBHOOK__SECRET", WEBHOOK_SECRET),
            ("PAYKEEP_NOTIFICATIONS__SLACK__ENABLED", "true"),
            ("PAYKEEP_NOTIFICATIONS__SLACK__WEBHOOK_URL", &slack),
        ],
    );
    let env = Env {
        base: binary.base.clone(),
        http: reqwest::Client::new(),
        sink,
    };
    served_with_its_policy(&env).await;

    let driver = start_driver(&driver_program);
    let browser = start_browser(&driver, &chromium).await;
    let started = Instant::now();
    sign_in(&browser, &env).await;
    dead_letters_are_redriven(&browser, &env).await;
    reconciliation_is_run_and_resolved(&browser, &env).await;
    payment_lookup_shows_refund_and_markup_as_text(&browser, &env).await;
    events_show_payloads_as_text(&browser, &env).await;
    settings_toggle_survives_a_reload(&browser, &env).await;
    webhook_endpoints_are_read_and_disabled(&browser, &env).await;
    overview_at_desktop_and_phone_width(&browser, &env).await;
    a_service_not_ready_and_a_failing_api_say_so(&browser, &env).await;
    eprintln!("browser steps took {:?}", started.elapsed());
    browser.close().await.expect("close the browser");
    drop(driver);
    drop(binary);
}

/// `/console` is HTML from the binary with a policy that allows only its own origin.
async fn served_with_its_policy(env: &Env) {
    for (path, media) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let answer = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .expect("GET console");
        assert_eq!(answer.status(), 200, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(media), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        for directive in ["script-src", "style-src", "connect-src", "img-src"] {
            assert!(
                policy.contains(&format!("{directive} 'self'")),
                "{directive} in {policy}"
            );
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("http"));
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let missing = env
        .http
        .get(format!("{}/console/nope.js", env.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
}

/// A wrong token shows the API's 401 title and detail; the right one opens the overview.
async fn sign_in(browser: &Client, env: &Env) {
    go(browser, &env.base, "").await;
    fill(browser, "#token", "not-the-admin-token").await;
    element(browser, "#sign-in-button")
        .await
        .click()
        .await
        .expect("click");
    let message = text_containing(
        browser,
        "#sign-in-message",
        &["The admin token was refused", "Unauthorized", "admin token"],
    )
    .await;
    assert!(message.contains("Bearer"), "{message}");
    shot(browser, "sign-in-refused").await;
    fill(browser, "#token", ADMIN_TOKEN).await;
    element(browser, "#sign-in-button")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#overview h1", &["Overview"]).await;
    text_containing(browser, "#readiness", &["store", "shards", "ms", "ready"]).await;
    let stored: Value = browser
        .execute(
            "return sessionStorage.getItem('paykeep.admin_token')",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(stored, json!(ADMIN_TOKEN));
}

/// Two deliveries die at the sink's 404; the dead-letter view is one click from the
/// overview; one is redriven from its row, the other by the bulk redrive after a
/// confirmation that says how many; both then reach the sink.
async fn dead_letters_are_redriven(browser: &Client, env: &Env) {
    for order in DEAD_ORDERS {
        env.create(json!({
            "order_no": order, "amount": 1999, "currency": "USD",
            "payment_method": "pm_card_visa",
        }))
        .await;
    }
    let dead: Vec<String> = eventually("two dead deliveries", || async {
        let page = env.admin_get("/admin/deliveries?status=dead").await;
        let ids: Vec<String> = page["data"]
            .as_array()?
            .iter()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    go(browser, &env.base, "#/overview").await;
    text_containing(browser, "#count-dead", &["dead letters: 2"]).await;
    shot(browser, "overview-with-dead-letters").await;
    // By keyboard alone: Tab through the page to the dead letters, Enter opens them.
    press_by_keyboard(browser, "count-dead").await;
    let listed = text_containing(browser, "#deliveries-table", &[&dead[0], &dead[1]]).await;
    assert!(
        listed.contains("dead") && listed.contains("webhook"),
        "{listed}"
    );
    text_containing(browser, "#deliveries h1", &["Dead letters"]).await;
    shot(browser, "dead-letters").await;

    // One from its row.
    let row = element(browser, &format!("tr[data-id='{}']", dead[0])).await;
    row.find(Locator::Css("button.redrive-one"))
        .await
        .expect("redrive button")
        .click()
        .await
        .expect("click");
    eventually("the first dead letter leaves the list", || async {
        let text = browser
            .find(Locator::Css("#deliveries-table"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (!text.contains(&dead[0]) && text.contains(&dead[1])).then_some(())
    })
    .await;

    // The rest in bulk, after a confirmation naming the count.
    element(browser, "#redrive-all")
        .await
        .click()
        .await
        .expect("click");
    let question = text_containing(browser, "#confirm-text", &["Redrive 1 dead delivery"]).await;
    assert!(question.contains("fresh retry budget"), "{question}");
    text_containing(browser, "#confirm-ok", &["Redrive 1"]).await;
    shot(browser, "bulk-redrive-confirmation").await;
    element(browser, "#confirm-ok")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#redrive-result", &["Redriven: 1"]).await;

    // Both delivered to the sink: the delivery view shows it and the sink got a second call.
    for (id, order) in dead.iter().zip(DEAD_ORDERS) {
        go(browser, &env.base, &format!("#/delivery/{id}")).await;
        eventually("the redriven delivery to be delivered", || async {
            if let Ok(refresh) = browser.find(Locator::Css("#refresh")).await {
                let _ = refresh.click().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = browser
                .find(Locator::Css("#delivery-status"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (status == "delivered").then_some(())
        })
        .await;
        text_containing(browser, "#attempts", &["404", "UTC", "local"]).await;
        assert_eq!(env.sink_requests_with(order).await, 2, "{order}");
    }
    shot(browser, "delivery-redriven").await;
}

/// An uploaded settlement report with a row we do not know and without our payments shows
/// its discrepancies; one is resolved from the page.
async fn reconciliation_is_run_and_resolved(browser: &Client, env: &Env) {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("settlement.csv");
    std::fs::write(
        &csv,
        "provider_payment_id,amount,currency,status\npi_not_ours_1,1234,USD,succeeded\n",
    )
    .expect("write CSV");
    let today = time::OffsetDateTime::now_utc().date();
    let today = format!(
        "{:04}-{:02}-{:02}",
        today.year(),
        u8::from(today.month()),
        today.day()
    );
    go(browser, &env.base, "#/reconciliations").await;
    element(browser, "#csv-date").await;
    browser
        .execute(
            "document.getElementById('csv-date').value = arguments[0]",
            vec![json!(today)],
        )
        .await
        .expect("set the date");
    element(browser, "#csv-file")
        .await
        .send_keys(csv.to_str().expect("path"))
        .await
        .expect("choose the file");
    element(browser, "#csv-button")
        .await
        .click()
        .await
        .expect("click");
    let table = text_containing(
        browser,
        "#discrepancies",
        &[
            "missing_in_ours",
            "pi_not_ours_1",
            "12.34 USD",
            "missing_in_provider",
        ],
    )
    .await;
    assert!(table.contains("19.99 USD"), "{table}");
    text_containing(browser, "#reconciliation h1", &[&today]).await;
    shot(browser, "reconciliation-report").await;
    let url = browser.current_url().await.expect("url");
    let report_id = url
        .fragment()
        .and_then(|f| f.rsplit('/').next())
        .expect("id");
    let report = env
        .admin_get(&format!("/admin/reconciliations/{report_id}"))
        .await;
    let theirs = report["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .find(|d| d["provider_payment_id"] == "pi_not_ours_1")
        .expect("the unknown row's discrepancy")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    fill(
        browser,
        &format!("#resolution-{theirs}"),
        "not ours: reported to the provider",
    )
    .await;
    fill(browser, &format!("#operator-{theirs}"), "alice").await;
    element(browser, &format!("#resolve-{theirs}"))
        .await
        .click()
        .await
        .expect("click");
    text_containing(
        browser,
        &format!("#dis-{theirs}"),
        &[
            "resolved",
            "not ours: reported to the provider",
            "by alice",
            "UTC",
        ],
    )
    .await;
    shot(browser, "reconciliation-resolved").await;
    let after = env
        .admin_get(&format!("/admin/reconciliations/{report_id}"))
        .await;
    let resolved = after["discrepancies"]
        .as_array()
        .expect("discrepancies")
        .iter()
        .find(|d| d["id"] == theirs.as_str())
        .expect("the discrepancy");
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["resolved_by"], "alice");
    // The list of reports links to it; a run against the provider adds another.
    go(browser, &env.base, "#/reconciliations").await;
    text_containing(browser, "#reports", &[&today, "csv"]).await;
    element(browser, "#run-date").await;
    browser
        .execute(
            "document.getElementById('run-date').value = arguments[0]",
            vec![json!(today)],
        )
        .await
        .expect("set the date");
    element(browser, "#run-button")
        .await
        .click()
        .await
        .expect("click");
    text_containing(
        browser,
        "#reconciliation",
        &[&today, "balance_transactions"],
    )
    .await;
    go(browser, &env.base, "#/reconciliations").await;
    text_containing(browser, "#reports", &["csv", "balance_transactions"]).await;
}

/// A payment found by id and by order shows its refund, events and deliveries; its
/// merchant strings with markup are shown as text, never run as HTML.
async fn payment_lookup_shows_refund_and_markup_as_text(browser: &Client, env: &Env) {
    let payment = env
        .create(json!({
            "order_no": MARKUP_ORDER, "amount": 1999, "currency": "USD",
            "payment_method": "pm_card_visa", "description": MARKUP_DESCRIPTION,
        }))
        .await;
    let id = payment["id"].as_str().expect("id").to_owned();
    let refund = env
        .http
        .post(format!("{}/v1/payments/{id}/refunds", env.base))
        .bearer_auth(common::MERCHANT_KEY)
        .json(&json!({"amount": 500, "reason": "<i>damaged</i>", "operator_id": "bob"}))
        .send()
        .await
        .expect("refund");
    assert!(refund.status().is_success());
    let refund: Value = refund.json().await.expect("refund JSON");

    go(browser, &env.base, "#/payments").await;
    fill(browser, "#lookup-id", &id).await;
    element(browser, "#lookup-by-id button")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#payment-id", &[&id]).await;
    let order = element(browser, "#payment-order")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(order, MARKUP_ORDER);
    let description = element(browser, "#payment-description")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(description, MARKUP_DESCRIPTION);
    text_containing(browser, "#payment-amount", &["19.99 USD"]).await;
    text_containing(browser, "#payment", &[" UTC", "local (UTC+09:00)"]).await;
    let refunds = text_containing(
        browser,
        "#refunds",
        &[
            refund["id"].as_str().expect("refund id"),
            "5.00 USD",
            "<i>damaged</i>",
            "bob",
        ],
    )
    .await;
    assert!(refunds.contains("succeeded"), "{refunds}");
    text_containing(
        browser,
        "#payment-events",
        &["payment.succeeded", "refund.succeeded"],
    )
    .await;
    text_containing(browser, "#payment-deliveries", &["webhook"]).await;
    for tag in ["img", "script", "b", "i"] {
        let injected = browser
            .find_all(Locator::Css(&format!("#payment {tag}, #refunds {tag}")))
            .await
            .expect("query");
        assert!(
            injected.is_empty(),
            "a <{tag}> element was made from merchant text"
        );
    }
    let pwned: Value = browser
        .execute("return window.__pwned === undefined", vec![])
        .await
        .expect("script");
    assert_eq!(pwned, json!(true));
    shot(browser, "payment").await;

    // By merchant and order.
    go(browser, &env.base, "#/payments").await;
    fill(browser, "#lookup-merchant", "m_demo").await;
    fill(browser, "#lookup-order", MARKUP_ORDER).await;
    element(browser, "#lookup-by-order button")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#payment-id", &[&id]).await;

    // An admin API error shows its problem title and detail.
    go(
        browser,
        &env.base,
        "#/payments?id=pay_01JZZZZZZZZZZZZZZZZZZZZZZZ",
    )
    .await;
    text_containing(
        browser,
        "#payments .problem",
        &["Not found", "no such payment"],
    )
    .await;
}

/// A toggle saved from the settings page is in force after a reload; an invalid change
/// shows the API's problem title and detail.
async fn settings_toggle_survives_a_reload(browser: &Client, env: &Env) {
    go(browser, &env.base, "#/settings").await;
    let toggle = element(browser, "#set-general-alert_enabled").await;
    assert!(toggle.is_selected().await.expect("state"));
    toggle.click().await.expect("click");
    element(browser, "#save-general")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#saved-general", &["Saved general settings"]).await;
    browser.refresh().await.expect("reload");
    let toggle = element(browser, "#set-general-alert_enabled").await;
    assert!(
        !toggle.is_selected().await.expect("state"),
        "the toggle did not survive a reload"
    );
    let settings = env.admin_get("/admin/settings/notifications").await;
    assert_eq!(settings["settings"]["alert_enabled"], false);
    // Secrets are write-only: the page never holds the webhook secret.
    let secret_field = element(browser, "#set-webhook-secret").await;
    assert_eq!(
        secret_field.prop("value").await.expect("value").as_deref(),
        Some("")
    );
    let page = browser.source().await.expect("source");
    assert!(!page.contains(WEBHOOK_SECRET));
    shot(browser, "settings").await;

    // Slack answered 403: paused, and the page says why.
    text_containing(browser, "#paused-slack", &["Paused", "403"]).await;
    text_containing(browser, "#save-slack", &["Save and resume slack"]).await;

    // Discord on without a webhook URL is refused: the problem shows on the page.
    element(browser, "#set-discord-enabled")
        .await
        .click()
        .await
        .expect("click");
    element(browser, "#save-discord")
        .await
        .click()
        .await
        .expect("click");
    text_containing(
        browser,
        "#banner .problem",
        &["Invalid settings", "discord.webhook_url"],
    )
    .await;
    shot(browser, "settings-refused").await;
}

/// Tabs through the page until the element with id `id` has the focus, then presses Enter.
async fn press_by_keyboard(browser: &Client, id: &str) {
    /// WebDriver's codes of the Tab and Enter keys.
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    let press = |key: &'static str| async move {
        let focused = browser.active_element().await.expect("focus");
        focused.send_keys(key).await.expect("a key press");
    };
    for _ in 0..60 {
        press(TAB).await;
        let focused: Value = browser
            .execute("return document.activeElement.id", vec![])
            .await
            .expect("script");
        if focused == json!(id) {
            press(ENTER).await;
            return;
        }
    }
    panic!("#{id} cannot be reached with Tab");
}

/// A merchant's endpoint, with markup in its description, is listed for its merchant (the
/// markup as text, no secret on the page) and disabled from the page by keyboard after a
/// confirmation; the merchant API then shows it disabled. A merchant that does not exist
/// shows the API's problem beside the form.
async fn webhook_endpoints_are_read_and_disabled(browser: &Client, env: &Env) {
    let created = env
        .http
        .post(format!("{}/v1/webhook_endpoints", env.base))
        .bearer_auth(common::MERCHANT_KEY)
        .json(&json!({
            "url": format!("{}/merchant-hook", env.sink.uri()),
            "enabled_events": ["payment.succeeded", "refund.succeeded"],
            "description": ENDPOINT_DESCRIPTION,
        }))
        .send()
        .await
        .expect("create an endpoint");
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("endpoint JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["secret"].as_str().expect("secret").to_owned();

    go(browser, &env.base, "#/webhook_endpoints").await;
    fill(browser, "#endpoints-merchant", "m_demo\u{E007}").await;
    let card = format!("#endpoint-{id}");
    let text = text_containing(
        browser,
        &card,
        &[
            &id,
            "enabled",
            "m_demo",
            "/merchant-hook",
            "payment.succeeded, refund.succeeded",
            "not failing",
            " UTC",
            "local (UTC+09:00)",
        ],
    )
    .await;
    assert!(!text.contains("disabled because"), "{text}");
    let description = element(browser, &format!("{card} .endpoint-description"))
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(description, ENDPOINT_DESCRIPTION);
    let injected = browser
        .find_all(Locator::Css(
            "#endpoints img, #endpoints b, #endpoints script",
        ))
        .await
        .expect("query");
    assert!(
        injected.is_empty(),
        "an element was made from merchant text"
    );
    let page = browser.source().await.expect("source");
    let key = secret.strip_prefix("whsec_").expect("whsec_");
    assert!(!page.contains(&secret) && !page.contains(key));
    shot(browser, "webhook-endpoints").await;

    // By keyboard: Tab to the endpoint's Disable button, Enter, confirm.
    let button = format!("disable-{id}");
    press_by_keyboard(browser, &button).await;
    let question = text_containing(browser, "#confirm-text", &[&id, "m_demo"]).await;
    assert!(question.contains("stops sending"), "{question}");
    shot(browser, "webhook-endpoint-disable-confirmation").await;
    element(browser, "#confirm-ok")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#endpoint-result", &["Disabled", &id]).await;
    text_containing(
        browser,
        &card,
        &["disabled", "disabled because", "disabled by the operator"],
    )
    .await;
    assert!(browser
        .find(Locator::Css(&format!("#{button}")))
        .await
        .is_err());
    shot(browser, "webhook-endpoint-disabled").await;
    let seen: Value = env
        .http
        .get(format!("{}/v1/webhook_endpoints/{id}", env.base))
        .bearer_auth(common::MERCHANT_KEY)
        .send()
        .await
        .expect("merchant GET")
        .json()
        .await
        .expect("endpoint JSON");
    assert_eq!(seen["status"], "disabled", "{seen}");
    assert_eq!(seen["disabled_reason"], "disabled by the operator");

    // A merchant that does not exist: the problem's title and detail, the form still there.
    go(
        browser,
        &env.base,
        "#/webhook_endpoints?merchant_id=m_nobody",
    )
    .await;
    text_containing(
        browser,
        "#webhook-endpoints .problem",
        &[
            "Invalid request",
            "merchant_id must be a configured merchant id",
        ],
    )
    .await;
    element(browser, "#endpoints-merchant").await;
    let pwned: Value = browser
        .execute("return window.__pwned === undefined", vec![])
        .await
        .expect("script");
    assert_eq!(pwned, json!(true));
}

/// The outbox page: events with their payloads, merchant markup shown as text.
async fn events_show_payloads_as_text(browser: &Client, env: &Env) {
    go(browser, &env.base, "#/events").await;
    text_containing(
        browser,
        "#events-table",
        &[
            "payment.succeeded",
            "refund.succeeded",
            "reconciliation.discrepancies_found",
        ],
    )
    .await;
    for summary in browser
        .find_all(Locator::Css("#events-table details summary"))
        .await
        .expect("payload toggles")
    {
        summary.click().await.expect("open a payload");
    }
    text_containing(
        browser,
        "#events-table",
        &[MARKUP_ORDER, "\"amount\": 1999"],
    )
    .await;
    let injected = browser
        .find_all(Locator::Css("#events-table b, #events-table img"))
        .await
        .expect("query");
    assert!(injected.is_empty(), "an element was made from event text");
    shot(browser, "events").await;
}

/// The overview at 1280×800 and at 390 px wide, without sideways scrolling on the phone.
async fn overview_at_desktop_and_phone_width(browser: &Client, env: &Env) {
    env.create(json!({
        "order_no": "o-declined", "amount": 500, "currency": "EUR",
        "payment_method": "pm_card_chargeDeclined",
    }))
    .await;
    browser.set_window_size(1280, 800).await.expect("resize");
    go(browser, &env.base, "#/overview").await;
    text_containing(browser, "#paused-channels", &["slack", "403"]).await;
    text_containing(browser, "#created-this-minute", &[]).await;
    let created: u64 = element(browser, "#created-this-minute")
        .await
        .text()
        .await
        .expect("text")
        .parse()
        .expect("a count");
    // Four payment attempts were made (one declined), all within the last minutes, by this
    // fresh process.
    let chart_label = element(browser, "#chart")
        .await
        .attr("aria-label")
        .await
        .expect("label")
        .unwrap_or_default();
    assert_eq!(chart_label, "Last hour: 4 payment attempts, 1 failed");
    assert!(created <= 4);
    text_containing(browser, "#deliveries-by-status", &["delivered"]).await;
    shot(browser, "overview").await;
    // The whole overview in one picture (README's docs/console-overview.png is one).
    browser.set_window_size(1280, 1100).await.expect("resize");
    shot(browser, "overview-full").await;
    browser.set_window_size(390, 844).await.expect("resize");
    go(browser, &env.base, "#/overview").await;
    element(browser, "#chart").await;
    shot(browser, "overview-phone").await;
    // No view makes the page scroll sideways on a phone (wide tables scroll in their box).
    let markup = env
        .admin_get(&format!(
            "/admin/payments?merchant_id=m_demo&order_no={}",
            MARKUP_ORDER
                .replace('<', "%3C")
                .replace('>', "%3E")
                .replace('/', "%2F")
        ))
        .await;
    let payment = format!(
        "#/payments?id={}",
        markup["payment"]["id"].as_str().expect("id")
    );
    for (hash, ready) in [
        ("#/overview", "#chart"),
        ("#/deliveries?status=delivered", "#deliveries-table"),
        ("#/events", "#events-table"),
        ("#/settings", "#settings-webhook"),
        ("#/reconciliations", "#reports"),
        ("#/webhook_endpoints?merchant_id=m_demo", "#endpoints li"),
        (payment.as_str(), "#payment-deliveries"),
    ] {
        go(browser, &env.base, hash).await;
        element(browser, ready).await;
        let fits: Value = browser
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(fits, json!(true), "{hash} scrolls sideways at 390 px");
        if hash.starts_with("#/webhook_endpoints") {
            shot(browser, "webhook-endpoints-phone").await;
        }
    }
    shot(browser, "payment-phone").await;
    browser.set_window_size(1280, 800).await.expect("resize");
}

/// A store that fails is hard to make on demand in a browser test, so the page is served
/// from a stand-in origin that answers with the real binary's files and its real overview
/// turned not ready, and with a 500 problem for the dead letters: the page says so, with
/// the problem's title and detail, instead of going blank.
async fn a_service_not_ready_and_a_failing_api_say_so(browser: &Client, env: &Env) {
    let stand_in = MockServer::start().await;
    for (file, media) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let body = env
            .http
            .get(format!("{}{file}", env.base))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        Mock::given(method("GET"))
            .and(path(file))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, media))
            .mount(&stand_in)
            .await;
    }
    let mut overview = env.admin_get("/admin/overview").await;
    overview["ready"] = json!(false);
    overview["readiness"]["status"] = json!("not_ready");
    overview["readiness"]["checks"]["store"]["status"] = json!("failing");
    Mock::given(method("GET"))
        .and(path("/admin/overview"))
        .respond_with(ResponseTemplate::new(200).set_body_json(overview))
        .mount(&stand_in)
        .await;
    Mock::given(method("GET"))
        .and(path("/admin/deliveries"))
        .and(query_param("status", "dead"))
        .respond_with(
            ResponseTemplate::new(500).set_body_raw(
                json!({
                    "type": "https://paykeep.dev/problems/internal_error",
                    "title": "Internal error",
                    "status": 500,
                    "code": "internal_error",
                    "detail": "the request could not be completed",
                })
                .to_string(),
                "application/problem+json",
            ),
        )
        .mount(&stand_in)
        .await;
    browser
        .goto(&format!("{}/console", stand_in.uri()))
        .await
        .expect("navigate");
    fill(browser, "#token", ADMIN_TOKEN).await;
    element(browser, "#sign-in-button")
        .await
        .click()
        .await
        .expect("click");
    text_containing(browser, "#not-ready", &["Service not ready", "store"]).await;
    text_containing(browser, "#readiness", &["failing"]).await;
    shot(browser, "not-ready").await;
    element(browser, "#nav-dead")
        .await
        .click()
        .await
        .expect("click");
    text_containing(
        browser,
        "#main .problem",
        &["Internal error", "the request could not be completed"],
    )
    .await;
    shot(browser, "api-error").await;
}
