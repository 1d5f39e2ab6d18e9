//! `GET /v1/refunds` and `GET /v1/refunds/{refund_id}`: the merchant's refunds (DESIGN §2).
//! The list is newest first and cursor-paged ([`crate::http::list`]): all the merchant's
//! refunds, or with `payment_id` those of one payment (at most
//! [`crate::domain::refund::REFUNDS_PER_PAYMENT_MAX`], read at once). Another merchant's
//! refund is 404, as an unknown one.

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::domain::ids::{is_valid_id, prefix};
use crate::domain::refund::Refund;
use crate::http::list::{self, ListQuery};
use crate::http::{auth, json_response, route, State};
use crate::problem::Problem;
use crate::store::tables::merchant_index::{Cursor, Item, ListPage, MerchantList, Page};

/// Routes of this resource.
pub fn routes(
    state: &State,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    route::get_one_or_query(
        warp::path!("v1" / "refunds" / String),
        warp::path!("v1" / "refunds"),
        state,
        ("get_refund", get),
        ("list_refunds", list),
    )
}

/// The refund `id` if it is `merchant_id`'s.
fn merchants_refund(state: &State, merchant_id: &str, id: &str) -> Result<Option<Refund>, Problem> {
    if !is_valid_id(id, prefix::REFUND) {
        return Ok(None);
    }
    Ok(state
        .store
        .refund(id)?
        .filter(|r| r.merchant_id == merchant_id))
}

fn get(state: &State, authorization: Option<&str>, id: &str) -> Result<Response, Problem> {
    let merchant_id = auth::merchant(&state.config.merchants, authorization)?;
    let refund =
        merchants_refund(state, merchant_id, id)?.ok_or_else(|| Problem::not_found("refund"))?;
    Ok(json_response(StatusCode::OK, refund.to_value().to_string()))
}

fn list(state: &State, authorization: Option<&str>, query: &str) -> Result<Response, Problem> {
    let merchant_id = auth::merchant(&state.config.merchants, authorization)?;
    let q = ListQuery::parse(query, &["payment_id"], true)?;
    let listed = match q.params.get("payment_id") {
        Some(payment_id) => of_payment(state, merchant_id, payment_id, &q)?,
        None => {
            let page = q.page(|id| cursor(state, merchant_id, id))?;
            let pick = |item: &Item| -> Result<Option<String>, Problem> {
                Ok(state
                    .store
                    .refund(&item.id)?
                    .map(|r| r.to_value().to_string()))
            };
            state.store.list_page(
                MerchantList::Refunds,
                merchant_id,
                &page,
                q.window,
                q.limit,
                pick,
            )?
        }
    };
    Ok(list::answer("/v1/refunds", &q, listed))
}

/// Where the refund `id` stands in `merchant_id`'s list; `None` when it is not theirs.
fn cursor(state: &State, merchant_id: &str, id: &str) -> Result<Option<Cursor>, Problem> {
    let Some(refund) = merchants_refund(state, merchant_id, id)? else {
        return Ok(None);
    };
    let created = u64::try_from(refund.created_at_ms).unwrap_or(0);
    Ok(state
        .store
        .list_cursor(MerchantList::Refunds, merchant_id, created, id)?)
}

/// A page of one payment's refunds, newest first (they are few: read all, page here).
fn of_payment(
    state: &State,
    merchant_id: &str,
    payment_id: &str,
    q: &ListQuery,
) -> Result<Page<String>, Problem> {
    let payment = if is_valid_id(payment_id, prefix::PAYMENT) {
        state.store.payment(payment_id)?
    } else {
        None
    };
    if payment.is_none_or(|p| p.merchant_id != merchant_id) {
        return Err(Problem::invalid(
            "payment_id",
            format!("payment_id: no such payment `{payment_id}`"),
        ));
    }
    let mut refunds = state.store.refunds_of_payment(payment_id)?;
    refunds.retain(|r| q.window.holds(u64::try_from(r.created_at_ms).unwrap_or(0)));
    refunds.reverse();
    // A cursor here is the place of one of this payment's refunds in `refunds`.
    let page = q.page(|id| Ok(refunds.iter().position(|r| r.id == id)))?;
    let (start, end) = match page {
        ListPage::First => (0, refunds.len().min(q.limit)),
        ListPage::After(at) => (at + 1, refunds.len().min(at + 1 + q.limit)),
        ListPage::Before(at) => (at.saturating_sub(q.limit), at),
    };
    // More follow: continue from the page's last refund in the direction it was read.
    let next = match page {
        ListPage::Before(_) if start > 0 => Some(&refunds[start]),
        ListPage::First | ListPage::After(_) if end < refunds.len() => refunds.get(end - 1),
        _ => None,
    };
    Ok(Page {
        data: refunds[start..end]
            .iter()
            .map(|r| r.to_value().to_string())
            .collect(),
        next: next.map(|r| r.id.clone()),
    })
}
