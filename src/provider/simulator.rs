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

use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::domain::charge::{ChargeOutcome, ChargeRequest};
use crate::provider::Connector;

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
}

impl Simulator {
    pub fn new(latency: Duration, timeout: Duration) -> Simulator {
        Simulator {
            latency,
            timeout,
            failed_once: DashMap::new(),
        }
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

fn declined(code: &str, message: &str, key: &str) -> ChargeOutcome {
    ChargeOutcome::Declined {
        code: code.to_owned(),
        message: message.to_owned(),
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
        let key = request.idempotency_key.as_str();
        let succeeded = ChargeOutcome::Succeeded {
            provider_payment_id: Simulator::provider_payment_id(key),
        };
        match request.payment_method.as_str() {
            "pm_card_visa" => succeeded,
            "pm_card_chargeDeclined" => declined("card_declined", "Your card was declined.", key),
            "pm_card_chargeDeclinedInsufficientFunds" => declined(
                "insufficient_funds",
                "Your card has insufficient funds.",
                key,
            ),
            "pm_sim_transient" => {
                if self.first_call(key) {
                    ChargeOutcome::Retryable {
                        reason: "provider answered 503".to_owned(),
                    }
                } else {
                    succeeded
                }
            }
            "pm_sim_timeout" => {
                if self.first_call(key) {
                    tokio::time::sleep(self.timeout + TIMEOUT_OVERSHOOT).await;
                }
                succeeded
            }
            _ => declined(
                "invalid_payment_method",
                "The payment method is not one the simulator knows.",
                key,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> ChargeRequest {
        ChargeRequest {
            payment_id: "pay_1".into(),
            attempt: 1,
            idempotency_key: format!("pay_1-{method}"),
            amount: 100,
            currency: "USD".into(),
            payment_method: method.into(),
            description: None,
        }
    }

    #[tokio::test]
    async fn test_methods_behave_as_documented() {
        let sim = Simulator::new(Duration::ZERO, Duration::from_millis(20));
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
