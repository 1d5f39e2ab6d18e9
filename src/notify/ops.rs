//! Operations behind the admin API: redrive dead deliveries (one, or in bulk), enqueue a
//! test event, change the settings (validated, persisted, then in force, resuming the
//! channels they touch), and follow a Telegram chat migration. Every write goes through
//! the committer.

use serde_json::{json, Value};

use crate::domain::delivery::{Channel, Delivery, DeliveryStatus};
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::ids::{new_id, prefix};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::notify::settings::{SettingsError, SETTINGS_KEY};
use crate::notify::Core;
use crate::store::StoreError;

/// Records read and rewritten per write set by bulk operations.
pub const BULK_PAGE_MAX: usize = 512;
/// Most deliveries one bulk redrive puts back (the answer says whether more are left).
pub const REDRIVE_BULK_MAX: usize = 10_000;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no such delivery")]
    NotFound,
    #[error("the delivery is {status}, not dead")]
    NotDead { status: &'static str },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a bulk redrive did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    pub redriven: usize,
    /// More dead deliveries matched than one call redrives.
    pub has_more: bool,
}

/// Filter of a bulk redrive: channel, and a `[since, until)` window on creation time.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedriveFilter {
    pub channel: Option<Channel>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl RedriveFilter {
    fn matches(&self, d: &Delivery) -> bool {
        self.channel.is_none_or(|c| c == d.channel)
            && self.since_ms.is_none_or(|s| d.created_at_ms >= s)
            && self.until_ms.is_none_or(|u| d.created_at_ms < u)
    }
}

impl Core {
    /// Puts dead delivery `id` back to `pending` with a fresh retry budget.
    ///
    /// # Errors
    /// [`OpsError::NotFound`], [`OpsError::NotDead`], or a store failure.
    pub async fn redrive(&self, id: &str) -> Result<Delivery, OpsError> {
        let mut delivery = self
            .store
            .delivery_or_planned(id)?
            .ok_or(OpsError::NotFound)?;
        if delivery.status != DeliveryStatus::Dead {
            return Err(OpsError::NotDead {
                status: delivery.status.as_str(),
            });
        }
        delivery.requeue(self.clock.now_ms(), true);
        self.commit_deliveries(vec![delivery.clone()]).await?;
        Ok(delivery)
    }

    /// Redrives every dead delivery matching `filter`, up to [`REDRIVE_BULK_MAX`].
    ///
    /// # Errors
    /// A store failure (deliveries already redriven stay redriven).
    pub async fn redrive_bulk(&self, filter: RedriveFilter) -> Result<Redriven, OpsError> {
        let mut redriven = 0;
        let mut after = None;
        while let Some(page) = self.next_page(DeliveryStatus::Dead, &mut after)? {
            let now = self.clock.now_ms();
            let mut batch = Vec::new();
            for mut d in page.into_iter().filter(|d| filter.matches(d)) {
                if redriven + batch.len() >= REDRIVE_BULK_MAX {
                    self.commit_deliveries(batch).await?;
                    return Ok(Redriven {
                        redriven: REDRIVE_BULK_MAX,
                        has_more: true,
                    });
                }
                d.requeue(now, true);
                batch.push(d);
            }
            redriven += batch.len();
            self.commit_deliveries(batch).await?;
        }
        Ok(Redriven {
            redriven,
            has_more: false,
        })
    }

    /// Puts `channel`'s paused deliveries back to `pending` (same retry budget).
    ///
    /// # Errors
    /// A store failure.
    pub async fn requeue_paused(&self, channel: Channel) -> Result<usize, StoreError> {
        let mut requeued = 0;
        let mut after = None;
        while let Some(page) = self.next_page(DeliveryStatus::Paused, &mut after)? {
            let now = self.clock.now_ms();
            let batch: Vec<Delivery> = page
                .into_iter()
                .filter(|d| d.channel == channel)
                .map(|mut d| {
                    d.requeue(now, false);
                    d
                })
                .collect();
            requeued += batch.len();
            self.commit_deliveries(batch).await?;
        }
        Ok(requeued)
    }

    /// The next page of deliveries with `status` after `after`, which moves past it; `None`
    /// once there are no more.
    fn next_page(
        &self,
        status: DeliveryStatus,
        after: &mut Option<String>,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let page = self
            .store
            .deliveries_with_status(status, after.as_deref(), BULK_PAGE_MAX)?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        *after = Some(last.id.clone());
        Ok(Some(page))
    }

    async fn commit_deliveries(&self, deliveries: Vec<Delivery>) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let ops = deliveries.into_iter().map(WriteOp::Delivery).collect();
        self.committer.commit(WriteSet { ops }).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Enqueues a `notification.test` event; returns it with the deliveries it created.
    ///
    /// # Errors
    /// A store failure.
    pub async fn send_test(&self) -> Result<(Event, Vec<Delivery>), StoreError> {
        let now = self.clock.now_ms();
        let id = new_id(prefix::EVENT);
        let event = Event {
            id: id.clone(),
            kind: kind::NOTIFICATION_TEST.to_owned(),
            level: EventLevel::Info,
            source: EventSource::System,
            title: "Test notification".to_owned(),
            entity_type: "system".to_owned(),
            entity_id: "paykeep".to_owned(),
            dedupe_key: format!("{}:{id}", kind::NOTIFICATION_TEST),
            payload: json!({"detail": "a test from POST /admin/notifications/test"}).to_string(),
            created_at_ms: now,
        };
        self.committer
            .commit(WriteSet {
                ops: vec![WriteOp::Event(event.clone())],
            })
            .await?;
        let deliveries = self.store.deliveries_of_event(&id)?;
        Ok((event, deliveries))
    }

    /// Validates, persists and installs a settings change (a JSON subset of the section);
    /// a paused channel the change names is resumed. Returns the redacted settings.
    ///
    /// # Errors
    /// [`OpsError::Settings`] naming the key at fault, or a store failure.
    pub async fn apply_settings(&self, body: &Value) -> Result<Value, OpsError> {
        let _serial = self.settings_lock.lock().await;
        let change = self.settings.prepare(body)?;
        self.committer
            .commit(WriteSet {
                ops: vec![WriteOp::Setting {
                    key: SETTINGS_KEY.to_owned(),
                    value: change.patch_json.clone(),
                }],
            })
            .await?;
        let touched = change.touched.clone();
        self.settings.install(change);
        for channel in touched {
            self.requeue_paused(channel).await?;
        }
        self.wake.notify_one();
        tracing::info!(
            operation = "settings.update",
            "notification settings changed"
        );
        Ok(self.settings.redacted_json())
    }

    /// Telegram moved chat `from` to a supergroup `to`: later events go to `to`.
    ///
    /// # Errors
    /// As [`Core::apply_settings`].
    pub async fn migrate_chat(&self, from: &str, to: &str) -> Result<(), OpsError> {
        let ids = self.settings.current().telegram.chat_ids.clone();
        if !ids.iter().any(|id| id == from) {
            return Ok(());
        }
        let ids: Vec<String> = ids
            .into_iter()
            .map(|id| if id == from { to.to_owned() } else { id })
            .collect();
        self.apply_settings(&json!({"telegram": {"chat_ids": ids}}))
            .await
            .map(|_| ())
    }
}
