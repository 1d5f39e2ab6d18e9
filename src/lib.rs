//! paykeep: a single-node payment service for merchants' backends that charges exactly
//! once, however often a request is retried, and acknowledges only what is durable.
//!
//! The map, in the order a request travels (DESIGN §1):
//!
//! - [`http`] — warp routes: merchant Bearer auth, body limits, problem+json errors, one
//!   handler file per resource, plus `/healthz`, `/readyz`, `/metrics`, `/openapi.json`,
//!   and `/console`, the operator console: a page of plain HTML, CSS and JavaScript from
//!   `src/console/`, embedded in the binary, that works through the admin API; around them
//!   the access log, which gives every request its `X-Request-Id` and span.
//! - [`shard`] — the router hashes a payment key (merchant + order) to one of a fixed set
//!   of virtual partitions, mapped onto actix shard actors on their own Arbiter threads.
//!   A shard runs one job per key at a time; a slow key never blocks the other keys.
//!   `Idempotency-Key` header values, the one cross-key fact, are claimed with an atomic
//!   insert-if-absent ([`shard::claims`]).
//! - [`domain`] — the pure state machine `apply(state, command) -> (state, effects)` and the
//!   types it speaks: payments, idempotency entries, events, write sets. No I/O.
//! - [`store`] — sled trees, a versioned bincode codec, and the group committer: the one
//!   writer that logs the write sets of all shards as one write-ahead log record, syncs it
//!   once, stages it in memtables readers see, then acknowledges every waiter; an applier
//!   thread puts it in sled off that path, and checkpoints flush sled.
//!   Start-up recovery checks the log against sled (identity, LSNs) and refuses a store it
//!   cannot vouch for, applies what is left in the log, then resumes `processing`
//!   payments; a sweep expires header idempotency entries.
//! - [`notify`] — the outbox dispatcher and one supervised notifier actor per channel
//!   (Telegram, Slack, Discord, Feishu, e-mail, signed webhooks, and merchants' own webhook
//!   endpoints): deliveries fanned out at commit time, paced, retried with backoff,
//!   dead-lettered; never on the payment path.
//! - [`provider`] — the connector trait, the in-process simulator, the Stripe-compatible
//!   HTTP connector and the `paykeep sandbox` server (a Stripe-compatible provider with a
//!   durable ledger); every charge and refund carries its provider idempotency key, the same
//!   on every retry. Refunds run through the same state machine and shards as payments.
//! - [`recon`] — reconciliation of a UTC day against the provider's balance transactions or
//!   an uploaded settlement report; reports, discrepancies, resolution, the daily run.
//! - [`relay`] — the outbox relay to NATS JetStream (`[relay] kind = "nats"`): every event,
//!   in commit order, once in the stream, off the payment path; its state in `/readyz`.
//! - [`redact`] — the one redaction function: every configured secret, raw, percent-encoded
//!   or base64, out of attempt errors, logged provider text and admin answers.
//! - [`clock`] — where time comes from: the system clock in the service, a manual clock
//!   that tests move instead of sleeping; every schedule reads and sleeps on one.
//! - [`config`] — the keys of DESIGN §4, environment overrides, validation.
//! - [`metrics`] — the Prometheus registry.
//! - [`ops_metrics`] — the gauges sampled at each scrape (payments processing, refunds
//!   pending, the oldest undelivered event, store readiness), `paykeep_build_info`, and
//!   every labelled family at 0 from start-up; deploy/ alerts and dashboards on them.
//! - [`alerts`] — the service's own system alerts (provider failing, channel paused, dead
//!   letters, store refusing writes), raised by a watcher through the outbox.
//! - [`listener`] — the TCP listener and HTTP/1 connection driver every surface runs on
//!   (`serve` and the sandbox): connection cap, header and idle timeouts, descriptor budget.
//! - [`logging`] — the process's one subscriber: text or JSON lines, redacted, to stderr
//!   (or, in the load bench, a file).
//! - [`log_throttle`] — one error line per distinct store-failure cause per 10 s, with the
//!   count of repeats held back.
//! - [`memory`] — the global allocator (mimalloc) and transparent huge pages turned off.
//! - [`actor_thread`] — one actix system on its own thread, one Arbiter per actor: where the
//!   shards and the notifiers run.
//! - [`app`] — wiring it all together and serving until shutdown.

pub mod actor_thread;
pub mod alerts;
pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod listener;
pub mod log_throttle;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod ops_metrics;
pub mod problem;
pub mod provider;
pub mod recon;
pub mod redact;
pub mod relay;
pub mod shard;
pub mod store;
