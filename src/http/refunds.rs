//! `POST /v1/payments/{payment_id}/refunds`: create (or replay) a refund of a payment.
//!
//! The handler finds the payment (404 when absent or another merchant's), then hands the
//! refund to the shard owning the payment's key (merchant + order), so refunds of one
//! payment are serialized with each other and with its creates. Without an
//! `Idempotency-Key` header the key is `refund:{payment_id}:{operator_id}:{amount}`.

use std::time::Instant;

use tokio::sync::oneshot;
use warp::reply::Response;
use warp::Filter;

use crate::domain::idempotency::{Fingerprint, IdempotencyKey, KeyScope};
use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::machine::RefundCommand;
use crate::domain::refund::{default_key_value, CreateRefundBody, RefundRules};
use crate::http::payments::internal;
use crate::http::{body, idempotency_key, respond, shard_call, with_authorization, State};
use crate::problem::Problem;
use crate::shard::messages::{Job, PaymentKey, RefundJob};

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("v1" / "payments" / String / "refunds")
        .and(warp::post())
        .and(with_authorization(state))
        .and(idempotency_key())
        .and(body::head())
        .and(warp::body::stream())
        .then(
            |id: String, state: State, authorization, key, head, stream| async move {
                respond(&state.metrics, "create_refund", async {
                    let posted =
                        shard_call::read_posted(&state, authorization, key, head, stream).await?;
                    create(&state, &id, posted).await
                })
                .await
            },
        )
}

/// A refund of `payment_id`, once its merchant, header key and JSON body were read.
async fn create(
    state: &State,
    payment_id: &str,
    posted: shard_call::Posted,
) -> Result<Response, Problem> {
    let shard_call::Posted {
        merchant_id,
        header_key,
        body: value,
    } = posted;
    let fingerprint = Fingerprint::new(
        "POST",
        &format!("/v1/payments/{payment_id}/refunds"),
        &value,
    );
    let request =
        body::typed::<CreateRefundBody>(value)?.validate(state.config.payments.amount_minor_max)?;
    let payment = if is_valid_id(payment_id, prefix::PAYMENT) {
        state.store.payment(payment_id).map_err(internal)?
    } else {
        None
    };
    let payment = payment
        .filter(|p| p.merchant_id == merchant_id)
        .ok_or_else(|| Problem::not_found("payment"))?;
    let scope = match header_key {
        Some(key) => KeyScope::Header(key),
        None => KeyScope::Refund(default_key_value(
            payment_id,
            &request.operator_id,
            request.amount,
        )),
    };
    let key = IdempotencyKey {
        merchant_id: merchant_id.clone(),
        scope,
    };
    let claim = shard_call::claim(state, &key, &payment.order_no)?;
    let payments = &state.config.payments;
    let command = RefundCommand {
        merchant_id: merchant_id.clone(),
        payment_id: payment.id.clone(),
        request,
        key,
        fingerprint,
        rules: RefundRules::new(payments.refund_window, payments.refund_fee_minor),
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    let job = Job::Refund(Box::new(RefundJob {
        command,
        reply: reply_tx,
        claim,
        wait_deadline: Instant::now() + state.config.in_flight_wait(),
        span: tracing::Span::current(),
    }));
    let payment_key = PaymentKey {
        merchant_id,
        order_no: payment.order_no,
    };
    shard_call::submit(state, payment_key, job, reply_rx).await
}
