//! Notifications (DESIGN §3): the outbox dispatcher and one supervised notifier actor per
//! channel, all working from delivery records in the store.
//!
//! - Fan-out is decided at commit time: the committer asks [`fanout`] which targets a new
//!   event goes to and writes that plan in the same batch as the event and the state
//!   change; the [`dispatcher`] expands plans into `pending` delivery records later.
//! - [`dispatcher`] claims due deliveries and hands them to the [`actor`] of their channel,
//!   which paces ([`pacing`]), sends ([`attempt`], one file per vendor in [`channels`]) and
//!   commits the outcome; [`retry`] decides the next attempt.
//! - [`settings`] holds the live `[notifications]` section (changed by the admin API and
//!   persisted), [`ops`] the admin operations (redrive, test event, settings changes).
//!
//! Payments never wait on any of this: the committer's fan-out is pure computation, and
//! HTTP happens only in the notifier actors, bounded per channel ([`in_flight`]).

pub mod actor;
pub mod attempt;
pub mod channels;
pub mod dispatcher;
pub mod egress;
pub mod fanout;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
pub mod in_flight;
pub mod metrics;
pub mod ops;
pub mod pacing;
pub mod retry;
pub mod settings;
pub mod template;

use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use actix::{Addr, Supervisor};

use crate::actor_thread;
use crate::clock::SharedClock;
use crate::config::{NotificationsConfig, WebhooksConfig};
use crate::domain::delivery::Channel;
use crate::domain::write_set::WriteSet;
use crate::metrics::Metrics;
use crate::notify::actor::NotifierActor;
use crate::notify::dispatcher::Dispatcher;
use crate::notify::in_flight::InFlight;
use crate::notify::metrics::NotifyMetrics;
use crate::notify::settings::{Settings, SETTINGS_KEY};
use crate::store::committer::CommitterHandle;
use crate::store::{Store, StoreError};

/// The committer handle of the notification side, taken away at shutdown so the committer
/// can finish (it stops when its last handle is dropped).
#[derive(Default)]
pub struct CommitSlot(RwLock<Option<CommitterHandle>>);

impl CommitSlot {
    /// Commits through the committer.
    ///
    /// # Errors
    /// The commit's [`StoreError`]; [`StoreError::Closed`] after shutdown.
    pub async fn commit(&self, write_set: WriteSet) -> Result<(), StoreError> {
        let handle = self.0.read().ok().and_then(|h| h.clone());
        match handle {
            Some(handle) => handle.commit(write_set).await,
            None => Err(StoreError::Closed),
        }
    }

    fn close(&self) {
        if let Ok(mut handle) = self.0.write() {
            handle.take();
        }
    }
}

/// What the dispatcher, the notifiers and the admin operations share.
pub struct Core {
    pub store: Arc<Store>,
    pub committer: CommitSlot,
    pub settings: Arc<Settings>,
    pub metrics: NotifyMetrics,
    pub in_flight: Arc<InFlight>,
    /// Poked after commits that created deliveries and when in-flight slots free up.
    pub wake: Arc<tokio::sync::Notify>,
    /// One pooled client for every channel (per-request deadlines).
    pub client: reqwest::Client,
    /// Serializes settings changes (read, merge, persist, install).
    pub settings_lock: tokio::sync::Mutex<()>,
    /// `[webhooks]`: merchant endpoints' limits, rotation overlap and disabling.
    pub webhooks: WebhooksConfig,
    /// Serializes changes to merchant webhook endpoints (the API's read, check, write and
    /// the notifier's health updates), which are rare: the count limit holds and no
    /// change overwrites another.
    pub endpoints_lock: tokio::sync::Mutex<()>,
    /// When deliveries are due, attempted and paced; a test moves it instead of sleeping.
    pub clock: SharedClock,
}

/// The running notification side.
pub struct Notifications {
    pub core: Arc<Core>,
    pub dispatcher: Arc<Dispatcher>,
    running: Mutex<Option<Running>>,
}

struct Running {
    task: tokio::task::JoinHandle<()>,
    system: actix::System,
    thread: JoinHandle<()>,
}

impl Notifications {
    /// Loads the settings (file section + persisted changes), installs the fan-out in the
    /// store, resumes deliveries a previous run left paused, and starts the notifier
    /// actors and the dispatcher. Call before anything can commit an event.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read or the resume cannot be committed.
    ///
    /// # Panics
    /// If the actor thread cannot be spawned (start-up only).
    pub async fn start(
        store: Arc<Store>,
        committer: CommitterHandle,
        base: &NotificationsConfig,
        webhooks: &WebhooksConfig,
        metrics: &Metrics,
        clock: SharedClock,
    ) -> Result<Notifications, StoreError> {
        let stored = store.setting(SETTINGS_KEY)?;
        let settings = Arc::new(Settings::load(base.clone(), stored.as_deref()));
        let wake = Arc::new(tokio::sync::Notify::new());
        store.set_fan_out(Arc::new(fanout::SettingsFanOut {
            settings: Arc::clone(&settings),
            wake: Arc::clone(&wake),
        }));
        let client = egress::client(in_flight::IN_FLIGHT_MAX_PER_CHANNEL, {
            let settings = Arc::clone(&settings);
            Arc::new(move || settings.current().allow_private_targets)
        })
        // Start-up only; a client without the egress rules is no fallback.
        .expect("the notification HTTP client (rustls) builds");
        let core = Arc::new(Core {
            store,
            committer: CommitSlot(RwLock::new(Some(committer))),
            settings,
            metrics: NotifyMetrics::register(metrics.registry()),
            in_flight: Arc::new(InFlight::new(Arc::clone(&wake))),
            wake,
            client,
            settings_lock: tokio::sync::Mutex::new(()),
            webhooks: webhooks.clone(),
            endpoints_lock: tokio::sync::Mutex::new(()),
            clock,
        });
        // A restart may come with fixed credentials: paused deliveries get another try
        // (and pause again at once if the credentials are still refused).
        for channel in Channel::ALL {
            core.requeue_paused(channel).await?;
        }
        let (notifiers, system, thread) = start_actors(&core);
        let dispatcher = Arc::new(Dispatcher::new(Arc::clone(&core), notifiers));
        let task = tokio::spawn(Arc::clone(&dispatcher).run());
        Ok(Notifications {
            core,
            dispatcher,
            running: Mutex::new(Some(Running {
                task,
                system,
                thread,
            })),
        })
    }

    /// Stops the dispatcher and the notifiers and lets go of the committer. Blocks until
    /// the actor thread has ended; in-flight attempts are dropped (they stay `sending`
    /// and are retried after the next start). Idempotent.
    pub fn stop(&self) {
        let running = self.running.lock().ok().and_then(|mut r| r.take());
        if let Some(running) = running {
            running.task.abort();
            running.system.stop();
            let _ = running.thread.join();
        }
        self.core.committer.close();
    }
}

/// One Arbiter per channel in a new actix system thread, each notifier supervised.
fn start_actors(core: &Arc<Core>) -> (Vec<Addr<NotifierActor>>, actix::System, JoinHandle<()>) {
    let core = Arc::clone(core);
    let started = actor_thread::spawn(
        "paykeep-notifiers",
        Channel::COUNT,
        move |index, arbiter| {
            let (channel, core) = (Channel::ALL[index], Arc::clone(&core));
            Supervisor::start_in_arbiter(arbiter, move |_| NotifierActor::new(channel, core))
        },
    );
    (started.addrs, started.system, started.thread)
}
