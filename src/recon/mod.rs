//! Reconciliation (DESIGN §2, T+1): our money of a UTC day against the provider's balance
//! transactions, or an uploaded settlement report; four kinds of discrepancy; persisted
//! reports; resolution by an operator; an optional daily run.
//!
//! - The report and discrepancy records and their JSON are domain types
//!   ([`crate::domain::reconciliation`]): the write set and the store hold them too.
//! - [`compare`] — the pure comparison.
//! - [`csv_report`] — parsing an uploaded report.
//! - [`run`] — gathering both sides, storing the result with its event; resolving.
//! - [`schedule`] — the daily run.

pub mod compare;
pub mod csv_report;
pub mod run;
pub mod schedule;
