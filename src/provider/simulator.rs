//! The in-process simulator provider (DESIGN §2 "Simulator payment methods").
//!
//! Payment methods (Stripe's test-token names where they exist):
//! `pm_card_visa` succeeds; `pm_card_chargeDeclined` → `card_declined`;
//! `pm_card_chargeDeclinedInsufficientFunds` → `insufficient_funds`; `pm_sim_transient`
//! fails once with a retryable 503, then succeeds; `pm_sim_timeout` answers only after
//! `provider.timeout_ms` once (the caller has given up by then, yet the charge happened),
//! then succeeds. Any other method is declined with `invalid_payment_method`.
//!
//! Like a real provider, the result of a key is stable: the provider payment id is derived
//! from the idempotency key, so a retry with the same key names the same charge.
//!
//! Refunds behave like the charge's payment method: a refund of a `pm_sim_transient`
//! payment fails once with a retryable 503, of a `pm_sim_timeout` payment answers late
//! once; others succeed. A bounded in-memory ledger ([`LEDGER_ENTRIES_MAX`]) records charges
//! and refunds for [`Connector::retrieve_payment`] and [`Connector::balance_transactions`];
//! it is lost on restart (the `paykeep sandbox` server keeps a durable one).

use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use crate::provider::types::{
    ProviderError, ProviderPayment, ProviderPaymentStatus, SettlementKind, SettlementRow,
};
use crate::provider::Connector;

/// Charges and refunds the in-memory ledger keeps; beyond it, new ones are not recorded
/// (answers stay correct, reads and reconciliation see fewer).
pub const LEDGER_ENTRIES_MAX: usize = 100_000;

/// One charge or refund in the simulator's ledger.
#[derive(Debug, Clone)]
struct Entry {
    payment: ProviderPayment,
    payment_method: String,
    kind: SettlementKind,
    /// For a refund: its own provider id; for a charge: the payment's.
    provider_id: String,
    amount: u64,
    created_at_ms: i64,
}

/// Keys whose first call already failed or timed out; bounded: a key leaves on success.
/// Past this many pending keys, the one-time failure is skipped (answers success).
pub const PENDING_KEYS_MAX: usize = 100_000;

/// Extra delay beyond `timeout_ms` for `pm_sim_timeout`, so the caller's deadline fires first.
const TIMEOUT_OVERSHOOT: Duration = Duration::from_millis(50);

pub struct Simulator {
    latency: Duration,
    timeout: Duration,
    /// Idempotency keys that have had their one failure.
    failed_once: DashMap<String, ()>,
    /// Provider id → charge or refund.
    ledger: DashMap<String, Entry>,
    /// What dates the ledger's entries (the service's clock: reconciliation reads a day of
    /// them).
    clock: SharedClock,
}

impl Simulator {
    /// A simulator answering after `latency`, its `pm_sim_timeout` calls after `timeout`
    /// (plus a margin), its ledger dated on `clock`.
    pub fn new(latency: Duration, timeout: Duration, clock: SharedClock) -> Simulator {
        Simulator {
            latency,
            timeout,
            failed_once: DashMap::new(),
            ledger: DashMap::new(),
            clock,
        }
    }

    /// `re_sim_` + 24 hex digits of SHA-256(key): stable per refund idempotency key.
    pub fn provider_refund_id(idempotency_key: &str) -> String {
        let digest = Sha256::digest(idempotency_key.as_bytes());
        format!("re_sim_{}", &hex::encode(digest)[..24])
    }

    fn record(&self, entry: Entry) {
        if self.ledger.len() < LEDGER_ENTRIES_MAX || self.ledger.contains_key(&entry.provider_id) {
            self.ledger
                .entry(entry.provider_id.clone())
                .or_insert(entry);
        }
    }

    fn record_charge(&self, request: &ChargeRequest, outcome: &ChargeOutcome) {
        let (id, status) = match outcome {
            ChargeOutcome::Succeeded {
                provider_payment_id,
            } => (provider_payment_id, ProviderPaymentStatus::Succeeded),
            ChargeOutcome::Declined {
                code,
                message,
                provider_payment_id: Some(id),
            } => (
                id,
                ProviderPaymentStatus::Failed {
                    code: code.clone(),
                    message: message.clone(),
                },
            ),
            _ => return,
        };
        self.record(Entry {
            payment: ProviderPayment {
                id: id.clone(),
                merchant_id: Some(request.merchant_id.clone()),
                order_no: Some(request.order_no.clone()),
                attempt: Some(request.attempt),
                amount: request.amount,
                currency: request.currency.clone(),
                status,
            },
            payment_method: request.payment_method.clone(),
            kind: SettlementKind::Charge,
            provider_id: id.clone(),
            amount: request.amount,
            created_at_ms: self.clock.now_ms(),
        });
    }

    /// `pi_sim_` + 24 hex digits of SHA-256(key): stable per idempotency key.
    pub fn provider_payment_id(idempotency_key: &str) -> String {
        let digest = Sha256::digest(idempotency_key.as_bytes());
        format!("pi_sim_{}", &hex::encode(digest)[..24])
    }

    /// True the first time a key is seen (its one failure), false after.
    fn first_call(&self, key: &str) -> bool {
        if self.failed_once.contains_key(key) {
            self.failed_once.remove(key);
            return false;
        }
        if self.failed_once.len() >= PENDING_KEYS_MAX {
            return false;
        }
        self.failed_once.insert(key.to_owned(), ());
        true
    }
}

/// A decline with `code`, its message from the same table as a real provider's.
fn declined(code: &str, key: &str) -> ChargeOutcome {
    ChargeOutcome::Declined {
        code: code.to_owned(),
        message: crate::provider::declines::charge_failure_message(code).to_owned(),
        provider_payment_id: Some(Simulator::provider_payment_id(key)),
    }
}

#[async_trait]
impl Connector for Simulator {
    fn name(&self) -> &'static str {
        "simulator"
    }

    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let stall =
            request.payment_method == "pm_sim_timeout" && self.first_call(&request.idempotency_key);
        let outcome = self.charge_outcome(request);
        // The charge happens before the late answer: a caller that gave up must find it.
        self.record_charge(request, &outcome);
        if stall {
            tokio::time::sleep(self.timeout + TIMEOUT_OVERSHOOT).await;
        }
        outcome
    }

    async fn refund(&self, request: &RefundRequest) -> RefundOutcome {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let key = request.idempotency_key.as_str();
        let charge = self
            .ledger
            .get(&request.provider_payment_id)
            .map(|e| e.value().clone());
        let method = charge.as_ref().map(|c| c.payment_method.as_str());
        match method {
            Some("pm_sim_transient") if self.first_call(key) => {
                return RefundOutcome::Retryable {
                    reason: "provider answered 503".to_owned(),
                }
            }
            Some("pm_sim_timeout") if self.first_call(key) => {
                tokio::time::sleep(self.timeout + TIMEOUT_OVERSHOOT).await;
            }
            _ => {}
        }
        let provider_refund_id = Simulator::provider_refund_id(key);
        if let Some(charge) = charge {
            self.record(Entry {
                payment: charge.payment,
                payment_method: charge.payment_method,
                kind: SettlementKind::Refund,
                provider_id: provider_refund_id.clone(),
                amount: request.amount,
                created_at_ms: self.clock.now_ms(),
            });
        }
        RefundOutcome::Succeeded { provider_refund_id }
    }

    async fn retrieve_payment(
        &self,
        provider_payment_id: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        match self.ledger.get(provider_payment_id) {
            Some(e) if e.kind == SettlementKind::Charge => Ok(e.payment.clone()),
            _ => Err(ProviderError::NotFound),
        }
    }

    async fn balance_transactions(
        &self,
        day: time::Date,
    ) -> Result<Vec<SettlementRow>, ProviderError> {
        let day_start_ms = day.midnight().assume_utc().unix_timestamp() * 1000;
        let range = day_start_ms..day_start_ms + crate::domain::time::DAY_MS;
        let mut rows: Vec<(i64, SettlementRow)> = self
            .ledger
            .iter()
            .filter(|e| range.contains(&e.created_at_ms))
            .filter(|e| {
                e.kind == SettlementKind::Refund
                    || e.payment.status == ProviderPaymentStatus::Succeeded
            })
            .map(|e| {
                let row = SettlementRow {
                    provider_id: e.provider_id.clone(),
                    kind: e.kind,
                    amount: e.amount,
                    currency: e.payment.currency.clone(),
                    status: "succeeded".to_owned(),
                };
                (e.created_at_ms, row)
            })
            .collect();
        rows.sort_by(|a, b| (a.0, &a.1.provider_id).cmp(&(b.0, &b.1.provider_id)));
        Ok(rows.into_iter().map(|(_, row)| row).collect())
    }
}

impl Simulator {
    fn charge_outcome(&self, request: &ChargeRequest) -> ChargeOutcome {
        let key = request.idempotency_key.as_str();
        let succeeded = ChargeOutcome::Succeeded {
            provider_payment_id: Simulator::provider_payment_id(key),
        };
        match request.payment_method.as_str() {
            "pm_card_visa" => succeeded,
            "pm_card_chargeDeclined" => declined("card_declined", key),
            "pm_card_chargeDeclinedInsufficientFunds" => declined("insufficient_funds", key),
            "pm_sim_transient" => {
                if self.first_call(key) {
                    ChargeOutcome::Retryable {
                        reason: "provider answered 503".to_owned(),
                    }
                } else {
                    succeeded
                }
            }
            // Its one late answer is the caller's (see `charge`).
            "pm_sim_timeout" => succeeded,
            _ => declined("invalid_payment_method", key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> ChargeRequest {
        let order_no = format!("o-{method}");
        ChargeRequest {
            merchant_id: "m_1".into(),
            idempotency_key: crate::domain::provider_key::charge_key("m_1", &order_no, 1),
            order_no,
            attempt: 1,
            amount: 100,
            currency: "USD".into(),
            payment_method: method.into(),
            description: None,
        }
    }

    #[tokio::test]
    async fn test_methods_behave_as_documented() {
        let sim = Simulator::new(
            Duration::ZERO,
            Duration::from_millis(20),
            std::sync::Arc::new(crate::clock::SystemClock),
        );
        assert!(matches!(
            sim.charge(&request("pm_card_visa")).await,
            ChargeOutcome::Succeeded { .. }
        ));
        let declined = sim.charge(&request("pm_card_chargeDeclined")).await;
        assert!(
            matches!(declined, ChargeOutcome::Declined { ref code, .. } if code == "card_declined")
        );
        let funds = sim
            .charge(&request("pm_card_chargeDeclinedInsufficientFunds"))
            .await;
        assert!(
            matches!(funds, ChargeOutcome::Declined { ref code, .. } if code == "insufficient_funds")
        );
        let transient = request("pm_sim_transient");
        assert!(matches!(
            sim.charge(&transient).await,
            ChargeOutcome::Retryable { .. }
        ));
        assert_eq!(
            sim.charge(&transient).await,
            ChargeOutcome::Succeeded {
                provider_payment_id: Simulator::provider_payment_id(&transient.idempotency_key)
            }
        );
        let slow = request("pm_sim_timeout");
        let first = tokio::time::timeout(Duration::from_millis(20), sim.charge(&slow)).await;
        assert!(
            first.is_err(),
            "first pm_sim_timeout call outlives the deadline"
        );
        let second = tokio::time::timeout(Duration::from_millis(20), sim.charge(&slow)).await;
        assert!(matches!(second, Ok(ChargeOutcome::Succeeded { .. })));
    }
}
