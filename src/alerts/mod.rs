//! The service's own system alerts (issue 17, seed 001's "system-alert helpers"):
//! `system.provider_unavailable`, `system.channel_paused`, `system.dead_letters` and
//! `system.store_refusing_writes`, raised by a watcher task and sent through the outbox
//! beside the order notifications. docs/operations.md has a runbook for each.
//!
//! - [`config`] — the `[alerts]` section: thresholds and the dedupe window.
//! - [`provider_health`] — a connector decorator that keeps the provider's failure streak.
//! - [`watcher`] — the periodic check: what is due (pure) and how it goes out.

pub mod config;
pub mod provider_health;
pub mod watcher;
