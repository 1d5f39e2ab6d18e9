//! Payment provider connectors behind one trait: the in-process simulator (default) and the
//! Stripe-compatible HTTP connector. The service calls the configured one through
//! [`observed::Observed`], which bounds charges and refunds by `provider.timeout_ms` and
//! times, counts and logs every call; the shard actor passes the attempt's provider
//! idempotency key.

pub mod declines;
pub mod metrics;
pub mod observed;
pub mod sandbox;
pub mod signature;
pub mod simulator;
pub mod stripe;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::config::{Config, ProviderKind};
use crate::domain::charge::{ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest};
use crate::provider::types::{ProviderError, ProviderPayment, SettlementRow};

/// A payment provider. Implementations must be idempotent per `idempotency_key`: the same
/// key always yields the same money movement (at most one charge).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Connector name stored on payments (`simulator`, `stripe`).
    fn name(&self) -> &'static str;

    /// Charges once per `request.idempotency_key`. Never panics on provider errors: every
    /// failure is an outcome (`Declined` terminal, `Retryable` unknown or transient).
    async fn charge(&self, request: &ChargeRequest) -> ChargeOutcome;

    /// Refunds once per `request.idempotency_key`; every failure is an outcome, like
    /// [`Connector::charge`].
    async fn refund(&self, request: &RefundRequest) -> RefundOutcome;

    /// The payment `provider_payment_id` as the provider sees it now (the source of truth
    /// webhooks sync from).
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn retrieve_payment(
        &self,
        provider_payment_id: &str,
    ) -> Result<ProviderPayment, ProviderError>;

    /// Every charge and refund that moved money on UTC day `day`.
    ///
    /// # Errors
    /// [`ProviderError`].
    async fn balance_transactions(
        &self,
        day: time::Date,
    ) -> Result<Vec<SettlementRow>, ProviderError>;
}

/// What the HTTP handlers of the provider side (webhooks, reconciliation) share: the
/// connector, and a committer handle for the writes they make outside any payment key.
pub struct ProviderSide {
    pub connector: Arc<dyn Connector>,
    pub committer: crate::store::committer::CommitterHandle,
    /// Discrepancy ids being resolved right now (an insert-if-absent claim each).
    pub resolving: dashmap::DashMap<String, ()>,
    pub metrics: Arc<metrics::ProviderMetrics>,
}

/// Builds the connector named by `provider.kind`; the simulator dates its ledger on `clock`.
///
/// # Errors
/// A message when the kind is not available in this build.
pub fn connector_for(config: &Config, clock: SharedClock) -> Result<Arc<dyn Connector>, String> {
    match config.provider.kind {
        ProviderKind::Simulator => Ok(Arc::new(simulator::Simulator::new(
            config.provider.latency,
            config.provider_timeout(),
            clock,
        ))),
        ProviderKind::Stripe => Ok(Arc::new(stripe::StripeConnector::new(
            &config.provider.base_url,
            &config.provider.secret_key,
            config.provider_timeout(),
        )?)),
    }
}
