//! Pure types and state machines: money, payments, idempotency, events, write sets.
//! Nothing here does I/O or reads the clock; callers pass time and ids in.

pub mod charge;
pub mod delivery;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod ids;
pub mod machine;
pub mod money;
pub mod payment;
pub mod provider_key;
pub mod reconciliation;
pub mod refund;
pub mod time;
pub mod webhook;
pub mod webhook_endpoint;
pub mod write_set;

#[cfg(test)]
pub(crate) mod test_fixtures;
