//! `GET /v1/payments` without `order_no`: the merchant's payments, newest first, cursor-
//! paged (DESIGN §2; [`crate::http::list`]), filtered by `status` and the `created`
//! window. Each item is the payment as `GET /v1/payments/{id}` answers it.

use serde_json::Value;
use warp::reply::Response;

use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::refund::Refund;
use crate::http::list::{self, ListQuery};
use crate::http::State;
use crate::problem::Problem;
use crate::store::tables::merchant_index::{Cursor, Item, MerchantList};

/// The statuses `status` may name.
const STATUSES: [PaymentStatus; 3] = [
    PaymentStatus::Processing,
    PaymentStatus::Succeeded,
    PaymentStatus::Failed,
];

/// `merchant_id`'s payments as the raw `query` asks.
///
/// # Errors
/// 400 naming a query member that is unknown or out of range, or a cursor that is not one
/// of the merchant's payments; 500 when the store cannot be read.
pub fn list(state: &State, merchant_id: &str, query: &str) -> Result<Response, Problem> {
    let q = ListQuery::parse(query, &["status"], true)?;
    let status = match q.params.get("status") {
        None => None,
        Some(text) => Some(
            STATUSES
                .into_iter()
                .find(|s| s.as_str() == text)
                .ok_or_else(|| {
                    Problem::invalid("status", "status must be processing, succeeded or failed")
                })?,
        ),
    };
    let page = q.page(|id| cursor(state, merchant_id, id))?;
    let pick = |item: &Item| -> Result<Option<String>, Problem> {
        let Some(payment) = state.store.payment(&item.id)? else {
            return Ok(None);
        };
        if status.is_some_and(|s| s != payment.status) {
            return Ok(None);
        }
        Ok(Some(view(state, &payment)?))
    };
    let listed = state.store.list_page(
        MerchantList::Payments,
        merchant_id,
        &page,
        q.window,
        q.limit,
        pick,
    )?;
    Ok(list::answer("/v1/payments", &q, listed))
}

/// Where the payment `id` stands in `merchant_id`'s list; `None` when it is not theirs.
fn cursor(state: &State, merchant_id: &str, id: &str) -> Result<Option<Cursor>, Problem> {
    if !is_valid_id(id, prefix::PAYMENT) {
        return Ok(None);
    }
    let Some(payment) = state.store.payment(id)? else {
        return Ok(None);
    };
    if payment.merchant_id != merchant_id {
        return Ok(None);
    }
    let created = u64::try_from(payment.created_at_ms).unwrap_or(0);
    Ok(state
        .store
        .list_cursor(MerchantList::Payments, merchant_id, created, id)?)
}

/// The payment with its refunds embedded, oldest first, as the merchant API shows it: JSON
/// text with the members in the order the create answered them.
///
/// # Errors
/// 500 when the store cannot be read.
pub fn view(state: &State, payment: &Payment) -> Result<String, Problem> {
    let refunds: Vec<Value> = state
        .store
        .refunds_of_payment(&payment.id)?
        .iter()
        .map(Refund::to_value)
        .collect();
    serde_json::to_string(&payment.view(&refunds)).map_err(|_| Problem::internal())
}
