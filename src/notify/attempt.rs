//! One delivery attempt, start to finish: wait for the pacing slot, re-read the delivery
//! and its event from the store (the store, not the message, is the truth), build the
//! channel's request, send it with a deadline, classify the answer, and commit the
//! delivery's next state through the committer. Runs inside a notifier actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::NotificationsConfig;
use crate::domain::delivery::{
    truncate_utf8, Attempt, AttemptOutcome, Channel, Delivery, DeliveryStatus, ERROR_TEXT_BYTES_MAX,
};
use crate::domain::event::Event;
use crate::domain::ids::UlidSource;
use crate::domain::webhook_endpoint::endpoint_disabled_event;
use crate::domain::webhook_endpoint::{DeliveryResult, WebhookEndpoint};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::notify::channels::{self, Outgoing, Reply, Request, Verdict, RESPONSE_BODY_BYTES_MAX};
use crate::notify::retry::{jitter_sample, next_after_failure, Next, RetryPolicy};
use crate::notify::template::Message;
use crate::notify::{egress, Core};
use crate::redact::Redactor;

/// A delivery handed to a notifier, with its in-flight slot.
pub struct Job {
    pub id: String,
    pub guard: crate::notify::in_flight::InFlightGuard,
}

/// What one send produced.
struct Sent {
    verdict: Verdict,
    http_status: Option<u16>,
    duration: Duration,
}

/// Runs one attempt of `job` on `channel`, not before the core's clock reads
/// `not_before_ms`.
pub async fn run(core: Arc<Core>, channel: Channel, job: Job, not_before_ms: i64) {
    core.clock.sleep_until_ms(not_before_ms).await;
    let (delivery, event) = match load(&core, &job.id) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return,
        Err(error) => {
            tracing::error!(operation = "notify.load", channel = channel.as_str(), %error, "loading a delivery failed");
            return;
        }
    };
    #[cfg(any(test, feature = "fault-injection"))]
    crate::notify::fault::maybe_panic(channel);
    let config = core.settings.current();
    let mut migrated = None;
    let delivery = if !channels::enabled(channel, &config) {
        let mut d = delivery;
        d.mark_dead("channel disabled before delivery", core.clock.now_ms());
        d
    } else if core.settings.is_paused(channel) {
        let mut d = delivery;
        d.mark_paused("channel paused: credentials refused", core.clock.now_ms());
        d
    } else {
        let endpoint = match endpoint_of(&core, channel, &delivery, &event) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                // Left `sending`: retried as an orphan once the slot is free.
                tracing::error!(operation = "notify.load", channel = channel.as_str(), %error, "loading a webhook endpoint failed");
                return;
            }
        };
        let sent = send(
            &core,
            channel,
            &config,
            &delivery,
            &event,
            endpoint.as_ref(),
        )
        .await;
        let old_target = delivery.target.clone();
        let gone = sent.http_status == Some(410);
        let tried = sent.http_status.is_some() || matches!(sent.verdict, Verdict::Retryable { .. });
        let d = conclude(&core, channel, &config, delivery, sent);
        if d.target != old_target {
            migrated = Some((old_target, d.target.clone()));
        }
        if let (Some(endpoint), true) = (endpoint, tried) {
            let result = match (d.status, gone) {
                (DeliveryStatus::Delivered, _) => DeliveryResult::Delivered,
                (_, true) => DeliveryResult::Gone,
                _ => DeliveryResult::Failed,
            };
            endpoint_health(&core, &endpoint, result, d, job).await;
            return;
        }
        d
    };
    if let Some((from, to)) = migrated {
        // Later events go to the new chat too.
        if let Err(error) = core.migrate_chat(&from, &to).await {
            tracing::warn!(operation = "notify.migrate", channel = channel.as_str(), %error, "updating telegram.chat_ids failed");
        }
    }
    if let Err(error) = core.committer.commit(one(delivery)).await {
        // The delivery stays `sending` in the store: the dispatcher finds it orphaned once
        // the slot is released, records it interrupted and retries it.
        tracing::error!(operation = "notify.commit", channel = channel.as_str(), %error, "recording a delivery outcome failed");
    }
    drop(job.guard);
}

/// The endpoint of a `merchant` delivery, as stored now (`None` for other channels and
/// for an endpoint deleted since the fan-out).
fn endpoint_of(
    core: &Core,
    channel: Channel,
    delivery: &Delivery,
    event: &Event,
) -> Result<Option<WebhookEndpoint>, crate::store::StoreError> {
    if channel != Channel::Merchant {
        return Ok(None);
    }
    let Some(merchant_id) = event.merchant_id() else {
        return Ok(None);
    };
    core.store.webhook_endpoint(&merchant_id, &delivery.target)
}

/// Commits a `merchant` delivery's outcome with what it does to its endpoint (DESIGN §3):
/// a success ends a failing run, a 410 or `webhooks.disable_after_s` of failures disable
/// it and raise the operator alert `webhook_endpoint.disabled`, all in one write set. The
/// endpoint is re-read under the endpoints lock, so a merchant's change made meanwhile is
/// kept.
async fn endpoint_health(
    core: &Core,
    seen: &WebhookEndpoint,
    result: DeliveryResult,
    delivery: Delivery,
    job: Job,
) {
    let now = core.clock.now_ms();
    let disable_after_ms = core.webhooks.disable_after_ms();
    let mut write_set = one(delivery);
    let _guard;
    if seen.after_delivery(result, now, disable_after_ms).is_some() {
        _guard = core.endpoints_lock.lock().await;
        let current = core
            .store
            .webhook_endpoint(&seen.merchant_id, &seen.id)
            .ok()
            .flatten();
        if let Some((next, disabled)) =
            current.and_then(|e| e.after_delivery(result, now, disable_after_ms))
        {
            if disabled {
                tracing::warn!(operation = "notify.endpoint_disabled", channel = "merchant", endpoint_id = %next.id, merchant_id = %next.merchant_id, reason = next.disabled_reason.as_deref().unwrap_or_default(), "merchant webhook endpoint disabled");
                let alert = endpoint_disabled_event(&next, &mut UlidSource, now);
                write_set.push(WriteOp::Event(alert));
            }
            write_set.push(WriteOp::WebhookEndpoint(Box::new(next)));
        }
    }
    if let Err(error) = core.committer.commit(write_set).await {
        tracing::error!(operation = "notify.commit", channel = "merchant", %error, "recording a delivery outcome failed");
    }
    drop(job.guard);
}

fn one(delivery: Delivery) -> WriteSet {
    WriteSet {
        ops: vec![WriteOp::Delivery(delivery)],
    }
}

/// The delivery and its event, if the delivery is still `sending`.
fn load(core: &Core, id: &str) -> Result<Option<(Delivery, Event)>, crate::store::StoreError> {
    let Some(delivery) = core.store.delivery(id)? else {
        return Ok(None);
    };
    if delivery.status != DeliveryStatus::Sending {
        return Ok(None);
    }
    let Some(event) = core.store.event_at(delivery.event_seq)? else {
        return Ok(None);
    };
    Ok(Some((delivery, event)))
}

/// One request for `delivery` of `event`, outside the delivery machinery (no pacing, no
/// record, no retry): `alerts::watcher` sends `system.store_refusing_writes` this way when
/// the store cannot record a delivery.
///
/// # Errors
/// The verdict's error text (already scrubbed of secrets) when the channel did not take it.
pub(crate) async fn send_once(
    core: &Core,
    channel: Channel,
    config: &NotificationsConfig,
    delivery: &Delivery,
    event: &Event,
) -> Result<(), String> {
    match send(core, channel, config, delivery, event, None)
        .await
        .verdict
    {
        Verdict::Delivered => Ok(()),
        Verdict::Retryable { error, .. }
        | Verdict::Rejected { error }
        | Verdict::Credentials { error }
        | Verdict::Migrate { error, .. } => Err(error),
    }
}

/// Builds, sends and classifies one request; every error text is scrubbed of secrets.
async fn send(
    core: &Core,
    channel: Channel,
    config: &NotificationsConfig,
    delivery: &Delivery,
    event: &Event,
    endpoint: Option<&WebhookEndpoint>,
) -> Sent {
    let message = Message::of(event);
    // A merchant's payment event completes its object with the payment's merchant text;
    // unreadable now, the body goes without it rather than not at all.
    let payment = match endpoint {
        Some(_) if event.entity_type == "payment" => {
            core.store.payment(&event.entity_id).ok().flatten()
        }
        _ => None,
    };
    let request = Request {
        message: &message,
        event,
        delivery,
        endpoint,
        payment: payment.as_ref(),
        now_s: core.clock.now_ms() / 1000,
    };
    let mut secrets = channels::secrets(config);
    if let Some(endpoint) = endpoint {
        secrets.push(endpoint.url.clone());
        secrets.push(endpoint.secret.clone());
        if let Some((previous, _)) = &endpoint.previous_secret {
            secrets.push(previous.clone());
        }
    }
    let redactor = Redactor::new(secrets.iter().map(String::as_str));
    let outgoing = match channels::build(channel, config, &request) {
        Ok(outgoing) => outgoing,
        Err(verdict) => {
            return Sent {
                verdict: scrub(verdict, &redactor),
                http_status: None,
                duration: Duration::ZERO,
            }
        }
    };
    // The resolver checks every name at connect time; an IP literal is never resolved, so
    // it is checked here (and a URL refused since the settings were written, too).
    if let Err(reason) = egress::check_url(&outgoing.url, config.allow_private_targets) {
        return Sent {
            verdict: Verdict::Rejected {
                error: format!("target refused: {reason}"),
            },
            http_status: None,
            duration: Duration::ZERO,
        };
    }
    let timeout = config.request_timeout;
    let started = Instant::now();
    let result = post(&core.client, outgoing, timeout).await;
    let duration = started.elapsed();
    core.metrics
        .duration_seconds
        .with_label_values(&[channel.as_str()])
        .observe(duration.as_secs_f64());
    if channel == Channel::Email {
        core.metrics
            .mail_send_duration_seconds
            .observe(duration.as_secs_f64());
    }
    let (verdict, http_status) = match result {
        Ok(mut reply) => {
            // Before classification quotes (and cuts) it: a secret cut in half by the quote's
            // limit would no longer be found whole.
            reply.body = redactor.redact(&reply.body);
            (channels::classify(channel, &reply), Some(reply.status))
        }
        Err(error) => (
            Verdict::Retryable {
                error,
                retry_after: None,
            },
            None,
        ),
    };
    Sent {
        verdict: scrub(verdict, &redactor),
        http_status,
        duration,
    }
}

/// DESIGN §3: a stored attempt error is at most 512 bytes.
const _: () = assert!(ERROR_TEXT_BYTES_MAX <= 512);

/// The verdict with its error redacted, then cut to [`ERROR_TEXT_BYTES_MAX`] (in that
/// order, so a cut cannot leave part of a secret behind); a dead or paused delivery's
/// reason quotes it.
fn scrub(verdict: Verdict, redactor: &Redactor) -> Verdict {
    let clean = |e: String| {
        let mut clean = redactor.redact(&e);
        truncate_utf8(&mut clean, ERROR_TEXT_BYTES_MAX);
        clean
    };
    match verdict {
        Verdict::Delivered => Verdict::Delivered,
        Verdict::Retryable { error, retry_after } => Verdict::Retryable {
            error: clean(error),
            retry_after,
        },
        Verdict::Rejected { error } => Verdict::Rejected {
            error: clean(error),
        },
        Verdict::Credentials { error } => Verdict::Credentials {
            error: clean(error),
        },
        Verdict::Migrate { chat_id, error } => Verdict::Migrate {
            chat_id,
            error: clean(error),
        },
    }
}

/// POSTs `outgoing` and reads at most [`RESPONSE_BODY_BYTES_MAX`] of the answer.
///
/// # Errors
/// A description of the transport failure, without the URL (it may hold a token).
async fn post(
    client: &reqwest::Client,
    outgoing: Outgoing,
    timeout: Duration,
) -> Result<Reply, String> {
    let mut request = client
        .post(&outgoing.url)
        .timeout(timeout)
        .body(outgoing.body);
    for (name, value) in outgoing.headers {
        request = request.header(name, value);
    }
    let mut response = request.send().await.map_err(describe)?;
    let status = response.status().as_u16();
    let retry_after_header = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        let room = RESPONSE_BODY_BYTES_MAX.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(Reply {
        status,
        retry_after_header,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

/// The delivery after `sent`: recorded, then delivered, rescheduled, dead, paused or
/// moved to a migrated chat. Pauses the channel on a credentials error.
fn conclude(
    core: &Core,
    channel: Channel,
    config: &NotificationsConfig,
    mut delivery: Delivery,
    sent: Sent,
) -> Delivery {
    let now = core.clock.now_ms();
    let attempt = |outcome, error: Option<&str>| Attempt {
        at_ms: now,
        outcome,
        http_status: sent.http_status,
        error: error.map(str::to_owned),
        duration_ms: u64::try_from(sent.duration.as_millis()).unwrap_or(u64::MAX),
    };
    let label = channel.as_str();
    let failure = |retryable: &str| {
        core.metrics
            .failure_total
            .with_label_values(&[label, retryable])
            .inc();
    };
    match &sent.verdict {
        Verdict::Delivered => {
            delivery.record(attempt(AttemptOutcome::Delivered, None));
            delivery.mark_delivered(now);
            core.metrics.success_total.with_label_values(&[label]).inc();
        }
        Verdict::Retryable { error, retry_after } => {
            delivery.record(attempt(AttemptOutcome::Retryable, Some(error)));
            let policy = RetryPolicy::from_config(config);
            match next_after_failure(
                &policy,
                delivery.attempt_count,
                delivery.budget_started_at_ms,
                now,
                *retry_after,
                jitter_sample(),
            ) {
                Next::RetryAt(at) => delivery.schedule_retry(at, now),
                Next::Dead(reason) => {
                    delivery.mark_dead(format!("{reason}; last error: {error}"), now)
                }
            }
            failure("true");
        }
        Verdict::Rejected { error } => {
            delivery.record(attempt(AttemptOutcome::Rejected, Some(error)));
            delivery.mark_dead(error.clone(), now);
            failure("false");
        }
        Verdict::Credentials { error } => {
            delivery.record(attempt(AttemptOutcome::Credentials, Some(error)));
            delivery.mark_paused(format!("credentials refused: {error}"), now);
            if core.settings.pause(channel) {
                tracing::warn!(operation = "notify.pause", channel = label, %error, "credentials refused; channel paused until its settings change");
            }
            failure("false");
        }
        Verdict::Migrate { chat_id, error } => {
            delivery.record(attempt(AttemptOutcome::Migrated, Some(error)));
            delivery.target = chat_id.clone();
            delivery.requeue(now, false);
            failure("true");
        }
    }
    log_attempt(config, &delivery, channel, &sent);
    delivery
}

fn log_attempt(config: &NotificationsConfig, delivery: &Delivery, channel: Channel, sent: &Sent) {
    let error = match &sent.verdict {
        Verdict::Delivered => None,
        Verdict::Retryable { error, .. }
        | Verdict::Rejected { error }
        | Verdict::Credentials { error }
        | Verdict::Migrate { error, .. } => Some(error.as_str()),
    };
    let (operation, attempt, max_attempts, status) = (
        "notify.deliver",
        delivery.attempt_count,
        config.max_attempts,
        delivery.status.as_str(),
    );
    match error {
        None => tracing::info!(
            operation, attempt, max_attempts, status, channel = channel.as_str(),
            delivery_id = %delivery.id, event_id = %delivery.event_id, "delivery delivered"
        ),
        Some(error) => tracing::warn!(
            operation, attempt, max_attempts, status, channel = channel.as_str(),
            delivery_id = %delivery.id, event_id = %delivery.event_id, http_status = sent.http_status,
            error, "delivery attempt failed"
        ),
    }
}
