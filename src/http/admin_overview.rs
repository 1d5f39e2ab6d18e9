//! `GET /admin/overview`: what the console's first page shows in one read — readiness
//! (each check with its latency), payment creates and failures per minute over the last
//! hour, deliveries by status, paused channels and why, the oldest event still waiting
//! for a delivery, and the outbox's newest sequence number. Read-only, admin token only (DESIGN §7).
//!
//! Creates per minute come from `payments_created_total{status}` (attempts made, by the
//! status they answered with), sampled into [`CreateHistory`] every
//! [`HISTORY_SAMPLE_INTERVAL`] by [`sample_creates`] and once more at each read. The
//! history lives in memory: after a restart the chart starts empty (`history_since` says
//! from when); the store keeps no per-minute counts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::clock::SharedClock;
use crate::domain::delivery::{Channel, Delivery, DeliveryStatus};
use crate::domain::money::minor_unit_exponent;
use crate::domain::time::format_rfc3339_ms;
use crate::http::admin;
use crate::http::{respond, with_authorization, State};
use crate::metrics::Metrics;
use crate::problem::Problem;

/// Minutes of history kept and shown (the chart's last hour).
pub const HISTORY_MINUTES: usize = 60;
/// How often [`sample_creates`] moves new counts into the minute they happened in; a
/// create is charted at most this late, in the next minute at worst.
pub const HISTORY_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Paused deliveries read per paused channel to find why it is paused.
const PAUSED_SCAN_MAX: usize = 500;

const MINUTE_MS: i64 = 60_000;

/// Counter totals at one reading: attempts made, and those that answered `failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateTotals {
    pub created: u64,
    pub failed: u64,
}

/// Creates and failures of one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// Unix minute (ms / 60 000).
    pub minute: i64,
    pub created: u64,
    pub failed: u64,
}

/// Per-minute creates and failures of the last [`HISTORY_MINUTES`], built from counter
/// readings: each reading adds what the counters gained since the previous one to the
/// minute of the reading.
#[derive(Debug)]
pub struct CreateHistory {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug)]
struct HistoryInner {
    since_ms: i64,
    last: CreateTotals,
    minutes: VecDeque<MinuteCount>,
}

impl CreateHistory {
    /// An empty history starting at `now_ms`, when the counters read `totals` (zero at
    /// start-up).
    pub fn new(now_ms: i64, totals: CreateTotals) -> CreateHistory {
        CreateHistory {
            inner: Mutex::new(HistoryInner {
                since_ms: now_ms,
                last: totals,
                minutes: VecDeque::with_capacity(HISTORY_MINUTES + 1),
            }),
        }
    }

    /// Adds what the counters gained since the last reading to the minute of `now_ms`.
    pub fn record(&self, now_ms: i64, totals: CreateTotals) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let created = totals.created.saturating_sub(inner.last.created);
        let failed = totals.failed.saturating_sub(inner.last.failed);
        inner.last = totals;
        let minute = now_ms.div_euclid(MINUTE_MS);
        match inner.minutes.back_mut() {
            Some(last) if last.minute == minute => {
                last.created += created;
                last.failed += failed;
            }
            _ => inner.minutes.push_back(MinuteCount {
                minute,
                created,
                failed,
            }),
        }
        while inner.minutes.len() > HISTORY_MINUTES {
            inner.minutes.pop_front();
        }
    }

    /// The last [`HISTORY_MINUTES`] minutes up to `now_ms`'s, oldest first, every minute
    /// present (0 where nothing was counted), and when the history began.
    pub fn series(&self, now_ms: i64) -> (i64, Vec<MinuteCount>) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now_minute = now_ms.div_euclid(MINUTE_MS);
        let first = now_minute - HISTORY_MINUTES as i64 + 1;
        let series = (first..=now_minute)
            .map(|minute| {
                inner
                    .minutes
                    .iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(MinuteCount {
                        minute,
                        created: 0,
                        failed: 0,
                    })
            })
            .collect();
        (inner.since_ms, series)
    }
}

/// The counters' totals now.
pub fn create_totals(metrics: &Metrics) -> CreateTotals {
    let mut totals = CreateTotals::default();
    for family in prometheus::core::Collector::collect(&metrics.payments_created_total) {
        for metric in family.get_metric() {
            let value = metric.get_counter().get_value() as u64;
            totals.created += value;
            if metric
                .get_label()
                .iter()
                .any(|l| l.get_name() == "status" && l.get_value() == "failed")
            {
                totals.failed += value;
            }
        }
    }
    totals
}

/// Reads the counters into `history` at once and then every [`HISTORY_SAMPLE_INTERVAL`]
/// on `clock`, until aborted.
pub async fn sample_creates(
    metrics: Arc<Metrics>,
    history: Arc<CreateHistory>,
    clock: SharedClock,
) {
    loop {
        history.record(clock.now_ms(), create_totals(&metrics));
        crate::clock::sleep(clock.as_ref(), HISTORY_SAMPLE_INTERVAL).await;
    }
}

pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("admin" / "overview")
        .and(crate::http::get())
        .and(with_authorization(state))
        .then(|state: State, authorization: Option<String>| async move {
            respond(&state.metrics, "admin_overview", async {
                admin::authorize(&state, authorization.as_deref())?;
                overview(&state).await
            })
            .await
        })
}

async fn overview(state: &State) -> Result<Response, Problem> {
    let (ready, readiness) = crate::http::ops::readiness(state).await;
    let now = state.clock.now_ms();
    state
        .create_history
        .record(now, create_totals(&state.metrics));
    let (since_ms, series) = state.create_history.series(now);
    let per_minute: Vec<Value> = series
        .iter()
        .map(|m| {
            json!({
                "minute": format_rfc3339_ms(m.minute * MINUTE_MS),
                "created": m.created,
                "failed": m.failed,
            })
        })
        .collect();
    let last = series.last().copied();
    let by_status: BTreeMap<&str, i64> = state
        .store
        .delivery_counts()
        .iter()
        .map(|(status, count)| (status.as_str(), *count))
        .collect();
    let minor_units: BTreeMap<&str, u32> = state
        .config
        .payments
        .currencies
        .iter()
        .map(|c| (c.as_str(), minor_unit_exponent(c)))
        .collect();
    let body = json!({
        "object": "overview",
        "generated_at": format_rfc3339_ms(now),
        "ready": ready,
        "readiness": readiness,
        "payments": {
            "history_since": format_rfc3339_ms(since_ms),
            "this_minute": {
                "created": last.map_or(0, |m| m.created),
                "failed": last.map_or(0, |m| m.failed),
            },
            "per_minute": per_minute,
        },
        "deliveries": {"by_status": by_status},
        // The console opens the outbox at its newest page from here.
        "events": {
            "last_sequence": state.store.last_event_seq().map_err(admin::internal)?.to_string(),
        },
        "paused_channels": paused_channels(state)?,
        "oldest_undelivered": oldest_undelivered(state, now)?,
        "minor_units": minor_units,
    });
    Ok(admin::answer(state, StatusCode::OK, body.to_string()))
}

/// Each paused channel with the reason its oldest paused delivery gives.
fn paused_channels(state: &State) -> Result<Vec<Value>, Problem> {
    let settings = &state.notify.core.settings;
    let paused: Vec<Channel> = Channel::ALL
        .into_iter()
        .filter(|c| settings.is_paused(*c))
        .collect();
    if paused.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = state
        .store
        .deliveries_with_status(DeliveryStatus::Paused, None, PAUSED_SCAN_MAX)
        .map_err(admin::internal)?;
    Ok(paused
        .into_iter()
        .map(|channel| {
            // The oldest paused delivery is the one whose answer paused the channel (the
            // later ones only say the channel is paused).
            let first = deliveries.iter().find(|d| d.channel == channel);
            json!({
                "channel": channel,
                "reason": first.and_then(|d| d.reason.clone()),
                "since": first.map(|d| format_rfc3339_ms(d.updated_at_ms)),
            })
        })
        .collect())
}

/// The oldest event with a delivery still waiting, sending or paused: delivery ids sort
/// in event order, so it is the first delivery of each such status.
fn oldest_undelivered(state: &State, now: i64) -> Result<Value, Problem> {
    let mut oldest: Option<Delivery> = None;
    for status in [
        DeliveryStatus::Pending,
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::Sending,
        DeliveryStatus::Paused,
    ] {
        let first = state
            .store
            .deliveries_with_status(status, None, 1)
            .map_err(admin::internal)?;
        if let Some(d) = first.into_iter().next() {
            if oldest.as_ref().is_none_or(|o| d.id < o.id) {
                oldest = Some(d);
            }
        }
    }
    let Some(delivery) = oldest else {
        return Ok(Value::Null);
    };
    let event = state
        .store
        .event_at(delivery.event_seq)
        .map_err(admin::internal)?;
    let created_at_ms = event
        .as_ref()
        .map_or(delivery.created_at_ms, |e| e.created_at_ms);
    Ok(json!({
        "event_id": delivery.event_id,
        "event_type": delivery.event_kind,
        "title": event.map(|e| e.title),
        "created_at": format_rfc3339_ms(created_at_ms),
        "age_s": (now - created_at_ms).max(0) / 1000,
        "delivery_id": delivery.id,
        "channel": delivery.channel,
        "status": delivery.status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(created: u64, failed: u64) -> CreateTotals {
        CreateTotals { created, failed }
    }

    #[test]
    fn readings_land_in_their_minute_and_gaps_read_zero() {
        let start = 1_000 * MINUTE_MS;
        let history = CreateHistory::new(start, totals(0, 0));
        history.record(start + 10_000, totals(3, 1));
        history.record(start + 50_000, totals(5, 1));
        history.record(start + 3 * MINUTE_MS, totals(9, 4));
        let (since, series) = history.series(start + 3 * MINUTE_MS + 1);
        assert_eq!(since, start);
        assert_eq!(series.len(), HISTORY_MINUTES);
        let tail: Vec<(u64, u64)> = series[HISTORY_MINUTES - 4..]
            .iter()
            .map(|m| (m.created, m.failed))
            .collect();
        assert_eq!(tail, vec![(5, 1), (0, 0), (0, 0), (4, 3)]);
        assert_eq!(series.last().map(|m| m.minute), Some(1_003));
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let history = CreateHistory::new(0, totals(0, 0));
        for minute in 0..(HISTORY_MINUTES as i64 + 30) {
            history.record(minute * MINUTE_MS, totals(minute as u64 + 1, 0));
        }
        let now = (HISTORY_MINUTES as i64 + 29) * MINUTE_MS;
        let (_, series) = history.series(now);
        assert!(series.iter().all(|m| m.created == 1));
        assert_eq!(series[0].minute, 30);
    }
}
