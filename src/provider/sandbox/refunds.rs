//! `POST /v1/refunds` (docs.stripe.com/api/refunds/create): a refund of a captured charge,
//! named by `charge` or by `payment_intent`, up to what is left of it.

use serde_json::{json, Value};

use crate::provider::sandbox::answer::{error, Answer};
use crate::provider::sandbox::ledger::{new_id, transient, Ledger, List, Outcome};
use crate::provider::sandbox::params::{self, invalid, Params};

/// What `POST /v1/refunds` takes; anything else is `parameter_unknown`.
pub const CREATE_PARAMS: &[&str] = &[
    "charge",
    "payment_intent",
    "amount",
    "reason",
    "metadata[*]",
    "expand[*]",
];
/// Stripe's refund reasons a caller may give.
pub const REASONS: &[&str] = &["duplicate", "fraudulent", "requested_by_customer"];

/// A create's checked parameters.
struct Create {
    amount: Option<u64>,
    reason: Option<String>,
    metadata: Value,
    expand: Vec<String>,
}

fn create_params(params: &Params) -> Result<Create, Answer> {
    params::known(params, CREATE_PARAMS)?;
    let amount = params::positive(params, "amount")?;
    let reason = params::one_of(params, "reason", REASONS)?.map(str::to_owned);
    let metadata = params::metadata(params)?;
    let expand = params::expand(params, List::Refunds.expandable(), false)?;
    Ok(Create {
        amount,
        reason,
        metadata,
        expand,
    })
}

/// The PaymentIntent and charge a refund names.
fn target(ledger: &Ledger, params: &Params) -> Result<(Value, Value), Answer> {
    let named_pi = params.get("payment_intent").filter(|p| !p.is_empty());
    let charge = match (params.get("charge").filter(|c| !c.is_empty()), named_pi) {
        (Some(id), _) => ledger.object_of(List::Charges, id).ok_or_else(|| {
            let message = format!("No such charge: '{id}'");
            invalid(Some("resource_missing"), "charge", &message)
        })?,
        (None, Some(id)) => {
            let pi = ledger.object_of(List::PaymentIntents, id).ok_or_else(|| {
                let message = format!("No such payment_intent: '{id}'");
                invalid(Some("resource_missing"), "payment_intent", &message)
            })?;
            let charge = pi["latest_charge"].as_str().unwrap_or_default();
            ledger
                .object_of(List::Charges, charge)
                .unwrap_or_else(|| json!({"payment_intent": pi["id"], "status": "none"}))
        }
        (None, None) => {
            let message = "One of the following params should be provided for this request: \
                           payment_intent or charge.";
            return Err(invalid(Some("parameter_missing"), "charge", message));
        }
    };
    let pi_id = charge["payment_intent"].as_str().unwrap_or_default();
    if let Some(named) = named_pi.filter(|named| named.as_str() != pi_id) {
        let message = format!(
            "The charge {} does not belong to the PaymentIntent {named}.",
            charge["id"].as_str().unwrap_or_default()
        );
        return Err(invalid(None, "payment_intent", &message));
    }
    let pi = ledger
        .object_of(List::PaymentIntents, pi_id)
        .unwrap_or(Value::Null);
    Ok((pi, charge))
}

/// Why a charge cannot be refunded now, if it cannot (answers that ran: saved).
fn refusal(charge: &Value, amount: u64, left: u64) -> Option<Answer> {
    let id = charge["id"].as_str().unwrap_or_default();
    let refuse =
        |code: &str, message: &str| Some(error(400, "invalid_request_error", Some(code), message));
    if charge["refunded"] == true {
        return refuse(
            "charge_already_refunded",
            &format!("Charge {id} has already been refunded."),
        );
    }
    if charge["status"] != "succeeded" || charge["captured"] != true {
        let message = "This PaymentIntent does not have a successful, captured charge to refund.";
        return refuse("charge_not_refundable", message);
    }
    if amount > left {
        let message = format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
        );
        return Some(invalid(Some("amount_too_large"), "amount", &message));
    }
    None
}

/// `POST /v1/refunds`.
///
/// # Errors
/// A message when the ledger fails (the caller answers 500).
pub fn create(ledger: &Ledger, params: &Params, key: Option<&str>) -> Result<Outcome, String> {
    let checked = create_params(params).and_then(|c| Ok((target(ledger, params)?, c)));
    let ((pi, mut charge), create) = match checked {
        Ok(checked) => checked,
        Err(refused) => return Ok(Outcome::refused(refused)),
    };
    let captured = charge["amount_captured"].as_u64().unwrap_or(0);
    let left = captured.saturating_sub(charge["amount_refunded"].as_u64().unwrap_or(0));
    let amount = create.amount.unwrap_or(left);
    if let Some(refused) = refusal(&charge, amount, left) {
        return Ok(Outcome::ran(refused));
    }
    let method = pi["payment_method"].as_str().unwrap_or_default();
    if method == "pm_sim_transient" && ledger.first_call(key) {
        return Ok(transient());
    }
    let stall = method == "pm_sim_timeout" && ledger.first_call(key);
    let created = ledger.now_s();
    let refund_id = new_id("re_");
    let signed = -i64::try_from(amount).unwrap_or(i64::MAX);
    let txn = ledger.transaction("refund", signed, &charge["currency"], &refund_id, created)?;
    let refund = json!({
        "id": refund_id, "object": "refund", "amount": amount, "charge": charge["id"],
        "payment_intent": charge["payment_intent"], "currency": charge["currency"],
        "status": "succeeded", "created": created, "metadata": create.metadata,
        "reason": create.reason, "balance_transaction": txn,
    });
    ledger.insert(List::Refunds, &refund)?;
    let refunded = charge["amount_refunded"].as_u64().unwrap_or(0) + amount;
    debug_assert!(
        refunded <= captured,
        "refunds never exceed the captured amount"
    );
    charge["amount_refunded"] = json!(refunded);
    charge["refunded"] = json!(refunded == captured);
    ledger.put(&charge)?;
    let mut shown = refund.clone();
    ledger.expand(&mut shown, &create.expand);
    let mut answer = Answer::new(200, shown).with_event("charge.refunded", &charge);
    answer.stall = stall;
    Ok(Outcome::ran(answer))
}
