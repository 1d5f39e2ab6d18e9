//! PaymentIntent writes (docs.stripe.com/api/payment_intents): create with `confirm=true`
//! (charged, authorized only with `capture_method=manual`, `requires_action` or declined,
//! by the test card), `capture` and `cancel`. Each runs under the ledger's idempotency.

use serde_json::{json, Value};

use crate::provider::sandbox::answer::{error, Answer};
use crate::provider::sandbox::cards::{self, Card, Outcome as CardOutcome};
use crate::provider::sandbox::ledger::{new_id, no_such, transient, Ledger, List, Outcome};
use crate::provider::sandbox::params::{self, invalid, Params};

/// What `POST /v1/payment_intents` takes; anything else is `parameter_unknown`.
pub const CREATE_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "confirm",
    "payment_method",
    "payment_method_types[*]",
    "capture_method",
    "description",
    "metadata[*]",
    "expand[*]",
];
/// What `POST /v1/payment_intents/{id}/capture` takes.
pub const CAPTURE_PARAMS: &[&str] = &["amount_to_capture", "metadata[*]", "expand[*]"];
/// What `POST /v1/payment_intents/{id}/cancel` takes.
pub const CANCEL_PARAMS: &[&str] = &["cancellation_reason", "expand[*]"];
const CAPTURE_METHODS: &[&str] = &["automatic", "automatic_async", "manual"];
const CANCELLATION_REASONS: &[&str] = &[
    "duplicate",
    "fraudulent",
    "requested_by_customer",
    "abandoned",
];
/// Statuses from which Stripe cancels a PaymentIntent.
const CANCELABLE: &[&str] = &[
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
];

/// A create's checked parameters.
struct Create {
    amount: u64,
    currency: String,
    method: String,
    card: Card,
    capture_method: String,
    metadata: Value,
    expand: Vec<String>,
}

/// Checks a create as Stripe does: unknown names, then required values, then each value.
fn create_params(params: &Params) -> Result<Create, Answer> {
    params::known(params, CREATE_PARAMS)?;
    params::required(params, "amount")?;
    let currency = params::currency(params)?;
    let amount = params::charge_amount(params, &currency)?;
    let capture_method = params::one_of(params, "capture_method", CAPTURE_METHODS)?
        .unwrap_or("automatic")
        .to_owned();
    if let Some((name, kind)) = params
        .iter()
        .find(|(n, v)| n.starts_with("payment_method_types[") && v.as_str() != "card")
    {
        let message = format!(
            "The payment method type \"{kind}\" is invalid (the sandbox models cards only)."
        );
        return Err(invalid(Some("parameter_invalid"), name, &message));
    }
    let metadata = params::metadata(params)?;
    let expand = params::expand(params, List::PaymentIntents.expandable(), false)?;
    if params.get("confirm").map(String::as_str) != Some("true") {
        let message = "The sandbox only creates confirmed PaymentIntents (confirm=true).";
        return Err(invalid(Some("parameter_invalid"), "confirm", message));
    }
    let method = params::required(params, "payment_method")?.to_owned();
    let Some(card) = cards::lookup(&method) else {
        let message = format!("No such PaymentMethod: '{method}'");
        return Err(invalid(
            Some("resource_missing"),
            "payment_method",
            &message,
        ));
    };
    Ok(Create {
        amount,
        currency,
        method,
        card,
        capture_method,
        metadata,
        expand,
    })
}

/// `POST /v1/payment_intents` with `confirm=true`.
///
/// # Errors
/// A message when the ledger fails (the caller answers 500).
pub fn create(ledger: &Ledger, params: &Params, key: Option<&str>) -> Result<Outcome, String> {
    let create = match create_params(params) {
        Ok(create) => create,
        Err(refused) => return Ok(Outcome::refused(refused)),
    };
    if create.method == "pm_sim_transient" && ledger.first_call(key) {
        return Ok(transient());
    }
    let stall = create.method == "pm_sim_timeout" && ledger.first_call(key);
    let created = ledger.now_s();
    let mut pi = json!({
        "id": new_id("pi_"), "object": "payment_intent", "amount": create.amount,
        "amount_capturable": 0, "amount_received": 0, "currency": create.currency,
        "status": "requires_payment_method", "created": created, "livemode": false,
        "metadata": create.metadata, "description": params.get("description"),
        "payment_method": create.method, "payment_method_types": ["card"],
        "capture_method": create.capture_method, "confirmation_method": "automatic",
        "latest_charge": null, "last_payment_error": null, "next_action": null,
        "canceled_at": null, "cancellation_reason": null,
    });
    let mut answer = match create.card.outcome {
        CardOutcome::RequiresAction => {
            pi["status"] = json!("requires_action");
            pi["next_action"] = json!({"type": "use_stripe_sdk", "use_stripe_sdk": {
                "type": "three_d_secure_redirect", "stripe_js": "", "source": ""}});
            ledger.insert(List::PaymentIntents, &pi)?;
            Answer::new(200, pi.clone()).with_event("payment_intent.requires_action", &pi)
        }
        CardOutcome::Declines {
            code,
            decline_code,
            message,
        } => {
            let mut charge = charge_of(&pi, &create.card, created);
            charge["status"] = json!("failed");
            charge["paid"] = json!(false);
            charge["failure_code"] = json!(code);
            charge["failure_message"] = json!(message);
            ledger.insert(List::Charges, &charge)?;
            let failure = json!({"type": "card_error", "code": code,
                "decline_code": decline_code, "message": message, "charge": charge["id"]});
            pi["latest_charge"] = charge["id"].clone();
            pi["last_payment_error"] = failure.clone();
            ledger.insert(List::PaymentIntents, &pi)?;
            let mut shown = pi.clone();
            ledger.expand(&mut shown, &create.expand);
            let mut body = json!({"error": failure});
            body["error"]["payment_intent"] = shown;
            Answer::new(402, body).with_event("payment_intent.payment_failed", &pi)
        }
        CardOutcome::Succeeds => authorize(ledger, &mut pi, &create, created)?,
    };
    if answer.status == 200 {
        ledger.expand(&mut answer.body, &create.expand);
    }
    answer.stall = stall;
    Ok(Outcome::ran(answer))
}

/// The charge of a successful confirmation: captured at once, or (`manual`) authorized and
/// left for `capture`.
fn authorize(
    ledger: &Ledger,
    pi: &mut Value,
    create: &Create,
    created: i64,
) -> Result<Answer, String> {
    let mut charge = charge_of(pi, &create.card, created);
    pi["latest_charge"] = charge["id"].clone();
    let event = if create.capture_method == "manual" {
        pi["status"] = json!("requires_capture");
        pi["amount_capturable"] = json!(create.amount);
        "payment_intent.amount_capturable_updated"
    } else {
        settle(ledger, &mut charge, create.amount, created)?;
        pi["status"] = json!("succeeded");
        pi["amount_received"] = json!(create.amount);
        "payment_intent.succeeded"
    };
    ledger.insert(List::Charges, &charge)?;
    ledger.insert(List::PaymentIntents, pi)?;
    Ok(Answer::new(200, pi.clone()).with_event(event, pi))
}

/// A succeeded, not yet captured charge of `pi` (docs.stripe.com/api/charges/object).
fn charge_of(pi: &Value, card: &Card, created: i64) -> Value {
    json!({
        "id": new_id("ch_"), "object": "charge", "amount": pi["amount"], "amount_captured": 0,
        "amount_refunded": 0, "currency": pi["currency"], "payment_intent": pi["id"],
        "payment_method": pi["payment_method"], "payment_method_details": {"type": "card",
            "card": {"brand": card.brand, "last4": card.last4}},
        "status": "succeeded", "paid": true, "captured": false, "refunded": false,
        "created": created, "balance_transaction": null, "metadata": pi["metadata"],
        "description": pi["description"], "failure_code": null, "failure_message": null,
        "livemode": false,
    })
}

/// Captures `amount` of `charge`: the money moves (a balance transaction).
fn settle(ledger: &Ledger, charge: &mut Value, amount: u64, created: i64) -> Result<(), String> {
    let id = charge["id"].as_str().unwrap_or_default().to_owned();
    let signed = i64::try_from(amount).unwrap_or(i64::MAX);
    let txn = ledger.transaction("charge", signed, &charge["currency"], &id, created)?;
    charge["captured"] = json!(true);
    charge["amount_captured"] = json!(amount);
    charge["balance_transaction"] = json!(txn);
    Ok(())
}

/// Stripe's 400 for an action the PaymentIntent's status does not allow.
fn unexpected_state(pi: &Value, action: &str, allowed: &[&str]) -> Outcome {
    let message = format!(
        "This PaymentIntent could not be {action} because it has a status of {}. Only a \
         PaymentIntent with one of the following statuses may be {action}: {}.",
        pi["status"].as_str().unwrap_or_default(),
        allowed.join(", ")
    );
    let mut answer = error(
        400,
        "invalid_request_error",
        Some("payment_intent_unexpected_state"),
        &message,
    );
    answer.body["error"]["payment_intent"] = pi.clone();
    Outcome::ran(answer)
}

/// `POST /v1/payment_intents/{id}/capture`: all of a `requires_capture` PaymentIntent, or
/// `amount_to_capture` of it (the rest is released).
///
/// # Errors
/// A message when the ledger fails.
pub fn capture(ledger: &Ledger, params: &Params, id: &str) -> Result<Outcome, String> {
    let checked = params::known(params, CAPTURE_PARAMS)
        .and_then(|()| params::positive(params, "amount_to_capture"))
        .and_then(|amount| Ok((amount, params::metadata(params)?)))
        .and_then(|(amount, metadata)| {
            let expand = params::expand(params, List::PaymentIntents.expandable(), false)?;
            Ok((amount, metadata, expand))
        });
    let (amount, metadata, expand) = match checked {
        Ok(checked) => checked,
        Err(refused) => return Ok(Outcome::refused(refused)),
    };
    let Some(mut pi) = ledger.object_of(List::PaymentIntents, id) else {
        return Ok(Outcome::refused(no_such(List::PaymentIntents, id)));
    };
    if pi["status"] != "requires_capture" {
        return Ok(unexpected_state(&pi, "captured", &["requires_capture"]));
    }
    let capturable = pi["amount_capturable"].as_u64().unwrap_or(0);
    let amount = amount.unwrap_or(capturable);
    if amount > capturable {
        let message = format!(
            "The amount to capture ({amount}) is greater than the amount capturable \
             ({capturable})."
        );
        let answer = invalid(Some("amount_too_large"), "amount_to_capture", &message);
        return Ok(Outcome::ran(answer));
    }
    let charge_id = pi["latest_charge"].as_str().unwrap_or_default().to_owned();
    let Some(mut charge) = ledger.object_of(List::Charges, &charge_id) else {
        return Err(format!("payment intent {id} has no charge {charge_id}"));
    };
    settle(ledger, &mut charge, amount, ledger.now_s())?;
    ledger.put(&charge)?;
    merge_metadata(&mut pi, &metadata);
    pi["status"] = json!("succeeded");
    pi["amount_received"] = json!(amount);
    pi["amount_capturable"] = json!(0);
    ledger.put(&pi)?;
    let mut shown = pi.clone();
    ledger.expand(&mut shown, &expand);
    Ok(Outcome::ran(
        Answer::new(200, shown).with_event("payment_intent.succeeded", &pi),
    ))
}

fn merge_metadata(object: &mut Value, metadata: &Value) {
    if let (Some(into), Some(from)) = (object["metadata"].as_object_mut(), metadata.as_object()) {
        into.extend(from.clone());
    }
}

/// `POST /v1/payment_intents/{id}/cancel`: an uncaptured authorization is released (its
/// charge shows the whole amount refunded, no money moved).
///
/// # Errors
/// A message when the ledger fails.
pub fn cancel(ledger: &Ledger, params: &Params, id: &str) -> Result<Outcome, String> {
    let checked = params::known(params, CANCEL_PARAMS)
        .and_then(|()| params::one_of(params, "cancellation_reason", CANCELLATION_REASONS))
        .and_then(|reason| {
            let expand = params::expand(params, List::PaymentIntents.expandable(), false)?;
            Ok((reason.map(str::to_owned), expand))
        });
    let (reason, expand) = match checked {
        Ok(checked) => checked,
        Err(refused) => return Ok(Outcome::refused(refused)),
    };
    let Some(mut pi) = ledger.object_of(List::PaymentIntents, id) else {
        return Ok(Outcome::refused(no_such(List::PaymentIntents, id)));
    };
    let status = pi["status"].as_str().unwrap_or_default();
    if !CANCELABLE.contains(&status) {
        return Ok(unexpected_state(&pi, "canceled", CANCELABLE));
    }
    if status == "requires_capture" {
        let charge_id = pi["latest_charge"].as_str().unwrap_or_default().to_owned();
        if let Some(mut charge) = ledger.object_of(List::Charges, &charge_id) {
            charge["amount_refunded"] = charge["amount"].clone();
            charge["refunded"] = json!(true);
            ledger.put(&charge)?;
        }
    }
    pi["status"] = json!("canceled");
    pi["amount_capturable"] = json!(0);
    pi["canceled_at"] = json!(ledger.now_s());
    pi["cancellation_reason"] = json!(reason);
    ledger.put(&pi)?;
    let mut shown = pi.clone();
    ledger.expand(&mut shown, &expand);
    Ok(Outcome::ran(
        Answer::new(200, shown).with_event("payment_intent.canceled", &pi),
    ))
}
