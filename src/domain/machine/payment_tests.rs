//! Tests of the payment state machine [`apply`] against DESIGN §2 "Idempotency".
//!
//! Two halves, both pure (ids from [`SequentialIds`], a fixed clock):
//! - unit tests, one per rule, asserting the exact effects and replies;
//! - proptest properties over random command sequences, run through [`Sim`], a model of the
//!   shard loop: each job loads the payment and the key's entry from a model store built
//!   from the `Persist` effects, applies the command, and feeds every `CallProvider` back as
//!   a `ProviderResult` from a model provider that is idempotent per provider key. Jobs may
//!   crash after their first write or after the charge, as a killed process would.
//!
//! Owned with `payment.rs`, `replay.rs` and `mod.rs` beside it: a change to a rule there
//! changes a test here.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use serde_json::json;

use crate::domain::charge::{ChargeOutcome, ChargeRequest};
use crate::domain::event::{kind, Event, EventLevel, EventSource};
use crate::domain::idempotency::{
    Fingerprint, IdempotencyEntry, IdempotencyKey, KeyScope, StoredResponse,
};
use crate::domain::ids::{IdSource, SequentialIds};
use crate::domain::machine::{
    apply, Command, CreateCommand, Ctx, Effect, KeyState, Reply, STATUS_PROCESSING, STATUS_RESOLVED,
};
use crate::domain::payment::{CreatePayment, Payment, PaymentStatus, RefundStatus};
use crate::domain::provider_key::charge_key;
use crate::domain::write_set::{Listed, WriteOp, WriteSet};
use crate::http::problem::Problem;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The one clock reading every command sees.
const NOW_MS: i64 = 1_700_000_000_000;
const MERCHANT: &str = "mer_1";
const ORDER: &str = "o-1";
const PROVIDER: &str = "simulator";
/// The first payment id [`SequentialIds`] hands out.
/// The id every payment of `MERCHANT`'s `ORDER` has.
fn pay_id() -> String {
    crate::domain::ids::payment_id(MERCHANT, ORDER)
}

/// Applies commands with deterministic ids and a fixed clock.
#[derive(Default)]
struct Harness {
    ids: SequentialIds,
}

impl Harness {
    fn apply(&mut self, state: KeyState, command: Command) -> (KeyState, Vec<Effect>) {
        let mut ctx = Ctx {
            now_ms: NOW_MS,
            ids: &mut self.ids,
            provider: PROVIDER,
        };
        apply(state, command, &mut ctx)
    }
}

fn request_with(amount: u64, currency: &str, payment_method: &str) -> CreatePayment {
    CreatePayment {
        order_no: ORDER.to_owned(),
        amount,
        currency: currency.to_owned(),
        payment_method: payment_method.to_owned(),
        description: Some("socks".to_owned()),
        customer_email: None,
        metadata: Default::default(),
    }
}

fn request() -> CreatePayment {
    request_with(1999, "USD", "pm_card_visa")
}

fn header_key(value: &str) -> IdempotencyKey {
    IdempotencyKey {
        merchant_id: MERCHANT.to_owned(),
        scope: KeyScope::Header(value.to_owned()),
    }
}

/// The key of a create without an `Idempotency-Key` header: the order itself.
fn order_key() -> IdempotencyKey {
    IdempotencyKey {
        merchant_id: MERCHANT.to_owned(),
        scope: KeyScope::Order(ORDER.to_owned()),
    }
}

/// The fingerprint the HTTP layer computes: method, path and the JSON body as sent.
fn fingerprint(request: &CreatePayment) -> Fingerprint {
    let body = json!({
        "order_no": request.order_no,
        "amount": request.amount,
        "currency": request.currency,
        "payment_method": request.payment_method,
        "description": request.description,
        "customer_email": request.customer_email,
    });
    Fingerprint::new("POST", "/v1/payments", &body)
}

fn create(key: &IdempotencyKey, request: CreatePayment) -> Command {
    Command::Create(Box::new(CreateCommand {
        merchant_id: MERCHANT.to_owned(),
        fingerprint: fingerprint(&request),
        request,
        key: key.clone(),
    }))
}

fn provider_result(attempt: u32, outcome: ChargeOutcome) -> Command {
    Command::ProviderResult { attempt, outcome }
}

fn succeeded(provider_payment_id: &str) -> ChargeOutcome {
    ChargeOutcome::Succeeded {
        provider_payment_id: provider_payment_id.to_owned(),
    }
}

fn declined() -> ChargeOutcome {
    ChargeOutcome::Declined {
        code: "card_declined".to_owned(),
        message: "Your card was declined.".to_owned(),
        provider_payment_id: Some("pi_declined".to_owned()),
    }
}

fn retryable() -> ChargeOutcome {
    ChargeOutcome::Retryable {
        reason: "provider answered 503".to_owned(),
    }
}

/// The payment a first create of `request` makes.
fn expected_new_payment(request: &CreatePayment) -> Payment {
    Payment {
        id: pay_id(),
        merchant_id: MERCHANT.to_owned(),
        order_no: ORDER.to_owned(),
        amount: request.amount,
        currency: request.currency.clone(),
        status: PaymentStatus::Processing,
        payment_method: request.payment_method.clone(),
        provider: PROVIDER.to_owned(),
        provider_payment_id: None,
        failure_code: None,
        failure_message: None,
        attempt_count: 1,
        amount_refunded: 0,
        refund_status: RefundStatus::None,
        description: request.description.clone(),
        customer_email: request.customer_email.clone(),
        metadata: request.metadata.clone(),
        created_at_ms: NOW_MS,
        updated_at_ms: NOW_MS,
        succeeded_at_ms: None,
    }
}

/// The entry a create of `request` writes before calling the provider.
fn pending_entry(request: &CreatePayment) -> IdempotencyEntry {
    IdempotencyEntry {
        order_no: ORDER.to_owned(),
        fingerprint: fingerprint(request),
        response: None,
        created_at_ms: NOW_MS,
    }
}

fn completed_entry(request: &CreatePayment, response: &StoredResponse) -> IdempotencyEntry {
    IdempotencyEntry {
        response: Some(response.clone()),
        ..pending_entry(request)
    }
}

fn charge_of(payment: &Payment) -> ChargeRequest {
    ChargeRequest {
        merchant_id: payment.merchant_id.clone(),
        order_no: payment.order_no.clone(),
        attempt: payment.attempt_count,
        idempotency_key: charge_key(
            &payment.merchant_id,
            &payment.order_no,
            payment.attempt_count,
        ),
        amount: payment.amount,
        currency: payment.currency.clone(),
        payment_method: payment.payment_method.clone(),
        description: payment.description.clone(),
    }
}

fn stored(status: u16, payment: &Payment) -> StoredResponse {
    StoredResponse {
        status,
        body: payment.to_json(),
    }
}

fn write_set(ops: Vec<WriteOp>) -> WriteSet {
    WriteSet { ops }
}

fn respond(response: &StoredResponse, replayed: bool) -> Effect {
    Effect::Respond(Reply::Response {
        response: response.clone(),
        replayed,
    })
}

/// What a later job loads: the payment, and the entry of its own key (if any).
fn loaded(state: &KeyState, entry: Option<(IdempotencyKey, IdempotencyEntry)>) -> KeyState {
    KeyState {
        payment: state.payment.clone(),
        entry,
        refunds: Vec::new(),
    }
}

/// What a background job (resume) loads: the payment only.
fn background(state: &KeyState) -> KeyState {
    loaded(state, None)
}

fn payment_of(state: &KeyState) -> Payment {
    state.payment.clone().expect("a payment")
}

/// The effects are exactly one refusal; returns it as `http/` answers it.
fn only_problem(effects: &[Effect]) -> Problem {
    match effects {
        [Effect::Respond(Reply::Error(error))] => Problem::from(error.clone()),
        other => panic!("expected a lone problem answer, got {other:?}"),
    }
}

fn event_in(write_set: &WriteSet) -> &Event {
    let events: Vec<&Event> = write_set
        .ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 1, "one event per outcome: {write_set:?}");
    events[0]
}

/// Runs a create and feeds `outcome` back, as one job; returns the state after.
fn resolved(
    h: &mut Harness,
    key: &IdempotencyKey,
    request: CreatePayment,
    outcome: ChargeOutcome,
) -> KeyState {
    let (state, _) = h.apply(KeyState::default(), create(key, request));
    let (state, _) = h.apply(state, provider_result(1, outcome));
    state
}

// ---------------------------------------------------------------------------------------
// Unit tests: one rule each
// ---------------------------------------------------------------------------------------

#[test]
fn new_create_persists_the_intent_then_calls_the_provider() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (state, effects) = h.apply(KeyState::default(), create(&key, request()));

    let payment = expected_new_payment(&request());
    let entry = pending_entry(&request());
    let charge = ChargeRequest {
        merchant_id: MERCHANT.to_owned(),
        order_no: ORDER.to_owned(),
        attempt: 1,
        idempotency_key: charge_key(MERCHANT, ORDER, 1),
        amount: 1999,
        currency: "USD".to_owned(),
        payment_method: "pm_card_visa".to_owned(),
        description: Some("socks".to_owned()),
    };
    let intent = write_set(vec![
        WriteOp::Payment(payment.clone()),
        WriteOp::List {
            list: Listed::Payment,
            merchant_id: MERCHANT.to_owned(),
            id: payment.id.clone(),
            created_at_ms: payment.created_at_ms,
        },
        WriteOp::Idempotency {
            key: key.clone(),
            entry: entry.clone(),
        },
    ]);
    assert_eq!(
        effects,
        vec![Effect::Persist(intent), Effect::CallProvider(charge)]
    );
    assert_eq!(
        state,
        KeyState {
            payment: Some(payment),
            entry: Some((key, entry)),
            refunds: Vec::new(),
        }
    );
}

#[test]
fn the_charge_request_holds_no_payment_id_and_survives_a_new_one() {
    // A store lost and rebuilt starts over with fresh id sources; the same create must send
    // the provider the same key and parameters, or the provider would charge again (a new
    // key) or refuse (a reused key with other parameters).
    let charge_with_ids_from = |skip: usize| {
        let mut h = Harness::default();
        for _ in 0..skip {
            h.ids.next_id("x_");
        }
        let (state, effects) = h.apply(KeyState::default(), create(&header_key("k1"), request()));
        let payment_id = state.payment.map(|p| p.id).unwrap_or_default();
        match effects.as_slice() {
            [Effect::Persist(_), Effect::CallProvider(charge)] => (payment_id, charge.clone()),
            other => panic!("expected persist then charge, got {other:?}"),
        }
    };
    let (first_id, first) = charge_with_ids_from(0);
    let (second_id, second) = charge_with_ids_from(5);
    assert_eq!(
        first_id, second_id,
        "the payment id follows from the payment key"
    );
    assert_eq!(first, second);
    assert_eq!(first.idempotency_key, charge_key(MERCHANT, ORDER, 1));
    assert!(!format!("{first:?}").contains("pay_"), "{first:?}");
}

#[test]
fn success_stores_a_201_with_the_succeeded_event_and_answers_once() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (state, _) = h.apply(KeyState::default(), create(&key, request()));
    let (state, effects) = h.apply(state, provider_result(1, succeeded("pi_1")));

    let paid = Payment {
        status: PaymentStatus::Succeeded,
        provider_payment_id: Some("pi_1".to_owned()),
        succeeded_at_ms: Some(NOW_MS),
        ..expected_new_payment(&request())
    };
    let response = stored(STATUS_RESOLVED, &paid);
    let [Effect::Persist(writes), answer] = effects.as_slice() else {
        panic!("expected persist then respond, got {effects:?}");
    };
    assert_eq!(answer, &respond(&response, false));
    assert_eq!(writes.ops.len(), 3);
    assert_eq!(writes.ops[0], WriteOp::Payment(paid.clone()));
    assert_eq!(
        writes.ops[2],
        WriteOp::Idempotency {
            key: key.clone(),
            entry: completed_entry(&request(), &response),
        }
    );
    let event = event_in(writes);
    assert_eq!(event.id, "evt_0001");
    assert_eq!(event.kind, kind::PAYMENT_SUCCEEDED);
    assert_eq!(event.level, EventLevel::Info);
    assert_eq!(event.source, EventSource::Payment);
    assert_eq!(event.entity_id, pay_id());
    assert_eq!(event.dedupe_key, format!("payment.succeeded:{}", pay_id()));
    assert_eq!(event.created_at_ms, NOW_MS);
    assert_eq!(state.payment, Some(paid));
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("json body");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["provider_payment_id"], "pi_1");
}

#[test]
fn same_key_and_body_replays_the_stored_response_without_side_effects() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let state = resolved(&mut h, &key, request(), succeeded("pi_1"));
    let response = stored(STATUS_RESOLVED, &payment_of(&state));

    let (after, effects) = h.apply(state.clone(), create(&key, request()));

    assert_eq!(effects, vec![respond(&response, true)]);
    assert_eq!(after, state);
}

#[test]
fn same_key_with_another_body_is_422_naming_exactly_the_differing_fields() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let state = resolved(&mut h, &key, request(), succeeded("pi_1"));
    let other = CreatePayment {
        amount: 2500,
        description: Some("shoes".to_owned()),
        ..request()
    };

    let (after, effects) = h.apply(state.clone(), create(&key, other));

    let problem = only_problem(&effects);
    assert_eq!(problem.status, 422);
    assert_eq!(problem.code, "idempotency_key_reused");
    assert_eq!(problem.fields, vec!["amount", "description"]);
    assert!(
        problem.detail.contains("amount, description"),
        "{problem:?}"
    );
    assert_eq!(after, state);
}

#[test]
fn another_body_on_an_unfinished_entry_is_422_and_stores_nothing() {
    let mut h = Harness::default();
    let key = header_key("k1");
    // A crash after the intent was stored: the entry has no response yet.
    let (crashed, _) = h.apply(KeyState::default(), create(&key, request()));
    let other = request_with(1999, "USD", "pm_card_amex");

    let (after, effects) = h.apply(crashed.clone(), create(&key, other));

    let problem = only_problem(&effects);
    assert_eq!(
        (problem.status, problem.code),
        (422, "idempotency_key_reused")
    );
    assert_eq!(problem.fields, vec!["payment_method"]);
    assert_eq!(after, crashed);
}

#[test]
fn decline_fails_the_payment_stores_a_201_and_emits_payment_failed() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (state, _) = h.apply(KeyState::default(), create(&key, request()));
    let (state, effects) = h.apply(state, provider_result(1, declined()));

    let failed = Payment {
        status: PaymentStatus::Failed,
        provider_payment_id: Some("pi_declined".to_owned()),
        failure_code: Some("card_declined".to_owned()),
        failure_message: Some("Your card was declined.".to_owned()),
        ..expected_new_payment(&request())
    };
    let response = stored(STATUS_RESOLVED, &failed);
    let [Effect::Persist(writes), answer] = effects.as_slice() else {
        panic!("expected persist then respond, got {effects:?}");
    };
    assert_eq!(answer, &respond(&response, false));
    assert_eq!(writes.ops.len(), 3);
    assert_eq!(writes.ops[0], WriteOp::Payment(failed.clone()));
    assert_eq!(
        writes.ops[2],
        WriteOp::Idempotency {
            key,
            entry: completed_entry(&request(), &response),
        }
    );
    let event = event_in(writes);
    assert_eq!(event.kind, kind::PAYMENT_FAILED);
    assert_eq!(event.level, EventLevel::Warning);
    assert_eq!(event.dedupe_key, format!("payment.failed:{}:1", pay_id()));
    assert_eq!(state.payment, Some(failed));
}

#[test]
fn same_key_after_a_decline_replays_the_failure() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let state = resolved(&mut h, &key, request(), declined());
    let response = stored(STATUS_RESOLVED, &payment_of(&state));

    let (after, effects) = h.apply(state.clone(), create(&key, request()));

    assert_eq!(effects, vec![respond(&response, true)]);
    assert_eq!(after, state);
}

#[test]
fn without_a_header_the_order_is_the_key_so_a_new_card_is_key_reuse() {
    let mut h = Harness::default();
    let state = resolved(&mut h, &order_key(), request(), declined());
    let new_card = request_with(1999, "USD", "pm_card_amex");

    let (_, effects) = h.apply(state, create(&order_key(), new_card));

    let problem = only_problem(&effects);
    assert_eq!(
        (problem.status, problem.code),
        (422, "idempotency_key_reused")
    );
    assert_eq!(problem.fields, vec!["payment_method"]);
}

#[test]
fn new_key_after_a_decline_starts_attempt_two_on_the_same_payment() {
    let mut h = Harness::default();
    let first = resolved(&mut h, &header_key("k1"), request(), declined());
    let key = header_key("k2");
    let retry = CreatePayment {
        description: Some("socks, again".to_owned()),
        ..request_with(1999, "USD", "pm_card_amex")
    };

    let (state, effects) = h.apply(background(&first), create(&key, retry.clone()));

    let attempt = Payment {
        attempt_count: 2,
        payment_method: "pm_card_amex".to_owned(),
        description: Some("socks, again".to_owned()),
        ..expected_new_payment(&request())
    };
    let charge = charge_of(&attempt);
    assert_eq!(charge.idempotency_key, charge_key(MERCHANT, ORDER, 2));
    assert_ne!(charge.idempotency_key, charge_key(MERCHANT, ORDER, 1));
    let intent = write_set(vec![
        WriteOp::Payment(attempt.clone()),
        WriteOp::Idempotency {
            key: key.clone(),
            entry: pending_entry(&retry),
        },
    ]);
    assert_eq!(
        effects,
        vec![Effect::Persist(intent), Effect::CallProvider(charge)]
    );
    assert_eq!(state.payment, Some(attempt));
}

#[test]
fn attempt_two_succeeds_and_the_first_key_still_replays_its_failure() {
    let mut h = Harness::default();
    let first = resolved(&mut h, &header_key("k1"), request(), declined());
    let failure = stored(STATUS_RESOLVED, &payment_of(&first));
    let (state, _) = h.apply(background(&first), create(&header_key("k2"), request()));
    let (state, effects) = h.apply(state, provider_result(2, succeeded("pi_2")));

    let paid = payment_of(&state);
    assert_eq!(
        (paid.id.as_str(), paid.attempt_count, paid.status),
        (pay_id().as_str(), 2, PaymentStatus::Succeeded)
    );
    assert_eq!((paid.failure_code, paid.failure_message), (None, None));
    let Effect::Persist(writes) = &effects[0] else {
        panic!("expected a persist first, got {effects:?}");
    };
    assert_eq!(
        event_in(writes).dedupe_key,
        format!("payment.succeeded:{}", pay_id())
    );

    let k1_entry = first.entry.clone();
    let (_, effects) = h.apply(
        loaded(&state, k1_entry),
        create(&header_key("k1"), request()),
    );
    assert_eq!(effects, vec![respond(&failure, true)]);
}

#[test]
fn new_key_while_processing_is_409_order_already_paid_and_nothing_else() {
    let mut h = Harness::default();
    let (state, _) = h.apply(KeyState::default(), create(&header_key("k1"), request()));
    let state = background(&state);

    for key in [header_key("k2"), order_key()] {
        let (after, effects) = h.apply(state.clone(), create(&key, request()));
        let problem = only_problem(&effects);
        assert_eq!((problem.status, problem.code), (409, "order_already_paid"));
        assert_eq!(problem.payment_id.as_deref(), Some(pay_id().as_str()));
        assert_eq!(after, state);
    }
}

#[test]
fn new_key_after_success_is_409_order_already_paid_and_nothing_else() {
    let mut h = Harness::default();
    let state = background(&resolved(
        &mut h,
        &header_key("k1"),
        request(),
        succeeded("pi_1"),
    ));
    let new_card = request_with(1999, "USD", "pm_card_amex");

    let (after, effects) = h.apply(state.clone(), create(&header_key("k2"), new_card));

    let problem = only_problem(&effects);
    assert_eq!((problem.status, problem.code), (409, "order_already_paid"));
    assert_eq!(problem.payment_id.as_deref(), Some(pay_id().as_str()));
    assert_eq!(after, state);
}

#[test]
fn new_attempt_with_another_amount_or_currency_is_422_order_mismatch() {
    let mut h = Harness::default();
    let state = background(&resolved(&mut h, &header_key("k1"), request(), declined()));
    let cases = [
        (request_with(2500, "USD", "pm_card_visa"), vec!["amount"]),
        (request_with(1999, "EUR", "pm_card_visa"), vec!["currency"]),
        (
            request_with(2500, "EUR", "pm_card_visa"),
            vec!["amount", "currency"],
        ),
    ];

    for (changed, fields) in cases {
        let (after, effects) = h.apply(state.clone(), create(&header_key("k2"), changed));
        let problem = only_problem(&effects);
        assert_eq!((problem.status, problem.code), (422, "order_mismatch"));
        assert_eq!(problem.fields, fields);
        assert_eq!(problem.payment_id.as_deref(), Some(pay_id().as_str()));
        assert_eq!(after, state);
    }
}

#[test]
fn retryable_outcome_keeps_processing_stores_a_202_and_retries_later() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (state, _) = h.apply(KeyState::default(), create(&key, request()));
    let processing = payment_of(&state);

    let (state, effects) = h.apply(state, provider_result(1, retryable()));

    let response = stored(STATUS_PROCESSING, &processing);
    let entry = completed_entry(&request(), &response);
    // The 202 tells the merchant's endpoints `payment.processing` (DESIGN §3).
    let Effect::Persist(persisted) = &effects[0] else {
        panic!("persist first: {effects:?}");
    };
    let event = event_in(persisted).clone();
    assert_eq!(event.kind, "payment.processing");
    assert_eq!(
        event.dedupe_key,
        format!("payment.processing:{}:1", processing.id)
    );
    let writes = write_set(vec![
        WriteOp::Event(event),
        WriteOp::Idempotency {
            key: key.clone(),
            entry: entry.clone(),
        },
    ]);
    assert_eq!(
        effects,
        vec![
            Effect::Persist(writes),
            respond(&response, false),
            Effect::RetryLater,
        ]
    );
    assert_eq!(state.payment, Some(processing));
    assert_eq!(state.entry, Some((key, entry)));
}

#[test]
fn resume_recharges_with_the_same_provider_key_and_answers_nobody() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (state, first_effects) = h.apply(KeyState::default(), create(&key, request()));
    let first_charge = first_effects[1].clone();
    let (state, _) = h.apply(state, provider_result(1, retryable()));
    let pending_response = stored(STATUS_PROCESSING, &payment_of(&state));

    let (resumed, effects) = h.apply(background(&state), Command::Resume);
    assert_eq!(effects, vec![first_charge]);

    let (resumed, effects) = h.apply(resumed, provider_result(1, succeeded("pi_1")));
    let paid = payment_of(&resumed);
    assert_eq!(paid.status, PaymentStatus::Succeeded);
    let [Effect::Persist(writes)] = effects.as_slice() else {
        panic!("expected a lone persist (no waiter to answer), got {effects:?}");
    };
    assert_eq!(writes.ops.len(), 2);
    assert_eq!(writes.ops[0], WriteOp::Payment(paid));
    assert_eq!(event_in(writes).kind, kind::PAYMENT_SUCCEEDED);

    // The key keeps its first response (202), as DESIGN §2 replays "the first response".
    let (_, effects) = h.apply(loaded(&resumed, state.entry), create(&key, request()));
    assert_eq!(effects, vec![respond(&pending_response, true)]);
}

#[test]
fn resume_that_stays_unresolved_only_retries_later() {
    let mut h = Harness::default();
    let (state, _) = h.apply(KeyState::default(), create(&header_key("k1"), request()));
    let state = background(&state);

    let (resumed, effects) = h.apply(state.clone(), Command::Resume);
    assert_eq!(
        effects,
        vec![Effect::CallProvider(charge_of(&payment_of(&state)))]
    );
    let (after, effects) = h.apply(resumed, provider_result(1, retryable()));

    assert_eq!(effects, vec![Effect::RetryLater]);
    assert_eq!(after, state);
}

#[test]
fn resume_of_a_resolved_or_missing_payment_does_nothing() {
    let mut h = Harness::default();
    let paid = background(&resolved(
        &mut h,
        &header_key("k1"),
        request(),
        succeeded("pi_1"),
    ));
    let failed = background(&resolved(
        &mut Harness::default(),
        &header_key("k1"),
        request(),
        declined(),
    ));

    for state in [paid, failed, KeyState::default()] {
        let (after, effects) = h.apply(state.clone(), Command::Resume);
        assert_eq!(effects, vec![]);
        assert_eq!(after, state);
    }
}

#[test]
fn stale_provider_results_change_nothing() {
    let mut h = Harness::default();
    let (attempt_one, _) = h.apply(KeyState::default(), create(&header_key("k1"), request()));
    let attempt_one = background(&attempt_one);
    let paid = resolved(
        &mut Harness::default(),
        &header_key("k1"),
        request(),
        succeeded("pi_1"),
    );
    let failed = resolved(
        &mut Harness::default(),
        &header_key("k1"),
        request(),
        declined(),
    );
    let cases = [
        // Wrong attempt on a processing payment.
        (attempt_one.clone(), provider_result(2, succeeded("pi_x"))),
        (attempt_one, provider_result(0, declined())),
        // The payment is no longer processing (entries already answered).
        (paid.clone(), provider_result(1, declined())),
        (paid.clone(), provider_result(1, succeeded("pi_other"))),
        (background(&paid), provider_result(1, retryable())),
        (failed.clone(), provider_result(1, succeeded("pi_late"))),
        (
            KeyState::default(),
            provider_result(1, succeeded("pi_none")),
        ),
    ];

    for (state, command) in cases {
        let (after, effects) = h.apply(state.clone(), command);
        assert_eq!(effects, vec![], "from {state:?}");
        assert_eq!(after, state);
    }
}

#[test]
fn result_of_attempt_one_after_attempt_two_started_changes_nothing() {
    let mut h = Harness::default();
    let first = resolved(&mut h, &header_key("k1"), request(), declined());
    let (second, _) = h.apply(background(&first), create(&header_key("k2"), request()));
    let second = background(&second);

    let (after, effects) = h.apply(second.clone(), provider_result(1, succeeded("pi_1")));

    assert_eq!(effects, vec![]);
    assert_eq!(after, second);
}

#[test]
fn unfinished_entry_of_a_processing_payment_is_completed_with_a_202_replay() {
    let mut h = Harness::default();
    let key = header_key("k1");
    // The process died after the intent was durable: entry without a response.
    let (crashed, _) = h.apply(KeyState::default(), create(&key, request()));

    let (after, effects) = h.apply(crashed.clone(), create(&key, request()));

    let response = stored(STATUS_PROCESSING, &payment_of(&crashed));
    let entry = completed_entry(&request(), &response);
    let writes = write_set(vec![WriteOp::Idempotency {
        key: key.clone(),
        entry: entry.clone(),
    }]);
    assert_eq!(
        effects,
        vec![Effect::Persist(writes), respond(&response, true)]
    );
    assert_eq!(after.payment, crashed.payment);
    assert_eq!(after.entry, Some((key, entry)));
}

#[test]
fn unfinished_entry_of_a_resolved_payment_is_completed_with_a_201_replay() {
    let mut h = Harness::default();
    let key = header_key("k1");
    let (crashed, _) = h.apply(KeyState::default(), create(&key, request()));
    // Start-up resumed the charge in the background; it was declined.
    let (failed, _) = h.apply(background(&crashed), provider_result(1, declined()));
    let unfinished = loaded(&failed, crashed.entry);

    let (_, effects) = h.apply(unfinished, create(&key, request()));

    let response = stored(STATUS_RESOLVED, &payment_of(&failed));
    let writes = write_set(vec![WriteOp::Idempotency {
        key,
        entry: completed_entry(&request(), &response),
    }]);
    assert_eq!(
        effects,
        vec![Effect::Persist(writes), respond(&response, true)]
    );
}

// ---------------------------------------------------------------------------------------
// Properties: random command sequences through a model of the shard loop
// ---------------------------------------------------------------------------------------

/// How many idempotency keys the sequences draw from (index 0 is the order key).
const KEY_COUNT: usize = 4;

/// Request bodies: same order, differing in card, amount or currency.
const BODIES: [(u64, &str, &str); 5] = [
    (1999, "USD", "pm_card_visa"),
    (1999, "USD", "pm_card_chargeDeclined"),
    (1999, "USD", "pm_card_amex"),
    (2500, "USD", "pm_card_visa"),
    (1999, "EUR", "pm_card_visa"),
];

fn key_at(index: usize) -> IdempotencyKey {
    match index {
        0 => order_key(),
        n => header_key(&format!("k{n}")),
    }
}

fn body_at(index: usize) -> CreatePayment {
    let (amount, currency, payment_method) = BODIES[index];
    request_with(amount, currency, payment_method)
}

/// What the model provider answers the first time it sees a provider key.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    Declined,
    Retryable,
}

impl Outcome {
    fn answer(self, provider_key: &str) -> ChargeOutcome {
        match self {
            Outcome::Succeeded => succeeded(&format!("pi_{provider_key}")),
            Outcome::Declined => declined(),
            Outcome::Retryable => retryable(),
        }
    }
}

/// Where a job's process dies, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    Never,
    /// After the job's first write set is durable (the intent of a create).
    AfterFirstPersist,
    /// After the provider charged, before its answer is applied.
    AfterCharge,
}

#[derive(Debug, Clone)]
enum Op {
    /// `POST /v1/payments` with key `key` and body `body`.
    Create {
        key: usize,
        body: usize,
        outcome: Outcome,
        crash: Crash,
    },
    /// The background retry of a `processing` payment (also run at start-up).
    Resume { outcome: Outcome, crash: Crash },
    /// A provider answer for an attempt that is not the one in flight.
    Stale { attempt: u32, outcome: Outcome },
}

/// A response answered to a create, with the first response stored for its key then.
#[derive(Debug)]
struct Answer {
    response: StoredResponse,
    replayed: bool,
    first_stored: Option<StoredResponse>,
}

/// What a run observed; each property reads its part.
#[derive(Debug, Default)]
struct Trace {
    /// Every payment written, in commit order.
    payment_writes: Vec<Payment>,
    /// Every payment listed in its merchant's list, with the number of payment writes
    /// committed before the write set that listed it.
    listed: Vec<(String, usize)>,
    /// Every provider call, with the payment as loaded by the job that made it.
    calls: Vec<(Option<Payment>, ChargeRequest)>,
    /// Provider keys the model provider charged successfully.
    charged_keys: Vec<String>,
    /// Every response written under a key, in commit order.
    response_writes: Vec<(IdempotencyKey, StoredResponse)>,
    answers: Vec<Answer>,
    /// First-step effects of creates whose fingerprint differed from the stored one.
    mismatch_effects: Vec<Vec<Effect>>,
    /// New attempts the model expected to be accepted.
    accepted_new_attempts: u32,
    /// After each op: (attempt_count, 1 + accepted new attempts).
    attempt_counts: Vec<(u32, u32)>,
    /// Stale results: (state unchanged, effects).
    stale: Vec<(bool, Vec<Effect>)>,
}

/// The shard loop over a model store and a model provider.
#[derive(Default)]
struct Sim {
    harness: Harness,
    payment: Option<Payment>,
    entries: HashMap<IdempotencyKey, IdempotencyEntry>,
    first_responses: HashMap<IdempotencyKey, StoredResponse>,
    /// Resolved answers by provider key: the provider is idempotent per key.
    provider: HashMap<String, ChargeOutcome>,
    trace: Trace,
}

impl Sim {
    fn run(ops: &[Op]) -> Trace {
        let mut sim = Sim::default();
        for op in ops {
            match *op {
                Op::Create {
                    key,
                    body,
                    outcome,
                    crash,
                } => sim.create(key_at(key), body_at(body), outcome, crash),
                Op::Resume { outcome, crash } => sim.resume(outcome, crash),
                Op::Stale { attempt, outcome } => sim.stale(attempt, outcome),
            }
            if let Some(payment) = &sim.payment {
                let expected = 1 + sim.trace.accepted_new_attempts;
                sim.trace
                    .attempt_counts
                    .push((payment.attempt_count, expected));
            }
        }
        sim.trace
    }

    fn create(
        &mut self,
        key: IdempotencyKey,
        request: CreatePayment,
        outcome: Outcome,
        crash: Crash,
    ) {
        let entry = self.entries.get(&key).cloned();
        let digest = fingerprint(&request).digest;
        let mismatch = entry
            .as_ref()
            .is_some_and(|e| e.fingerprint.digest != digest);
        let new_attempt = entry.is_none()
            && self.payment.as_ref().is_some_and(|p| {
                p.status == PaymentStatus::Failed
                    && p.amount == request.amount
                    && p.currency == request.currency
            });
        if new_attempt {
            self.trace.accepted_new_attempts += 1;
        }
        let state = KeyState {
            payment: self.payment.clone(),
            entry: entry.map(|e| (key.clone(), e)),
            refunds: Vec::new(),
        };
        let (state, effects) = self.step(state, create(&key, request));
        if mismatch {
            self.trace.mismatch_effects.push(effects.clone());
        }
        self.drive(state, effects, Some(&key), outcome, crash);
    }

    fn resume(&mut self, outcome: Outcome, crash: Crash) {
        let state = KeyState {
            payment: self.payment.clone(),
            entry: None,
            refunds: Vec::new(),
        };
        let (state, effects) = self.step(state, Command::Resume);
        self.drive(state, effects, None, outcome, crash);
    }

    fn stale(&mut self, attempt: u32, outcome: Outcome) {
        let Some(payment) = self.payment.clone() else {
            return;
        };
        if payment.status == PaymentStatus::Processing && payment.attempt_count == attempt {
            return; // not stale: only the provider's own answer may resolve it
        }
        let state = KeyState {
            payment: Some(payment),
            entry: None,
            refunds: Vec::new(),
        };
        let answer = outcome.answer("stale");
        let (after, effects) = self.step(state.clone(), provider_result(attempt, answer));
        self.trace.stale.push((after == state, effects));
    }

    /// One `apply`, recording the provider calls it asks for.
    fn step(&mut self, state: KeyState, command: Command) -> (KeyState, Vec<Effect>) {
        let before = state.payment.clone();
        let (state, effects) = self.harness.apply(state, command);
        for effect in &effects {
            if let Effect::CallProvider(request) = effect {
                self.trace.calls.push((before.clone(), request.clone()));
            }
        }
        (state, effects)
    }

    /// Carries out effects in order, as `shard::job::execute` does.
    fn drive(
        &mut self,
        mut state: KeyState,
        effects: Vec<Effect>,
        key: Option<&IdempotencyKey>,
        outcome: Outcome,
        crash: Crash,
    ) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Persist(writes) => {
                    self.commit(writes);
                    if crash == Crash::AfterFirstPersist {
                        return;
                    }
                }
                Effect::CallProvider(request) => {
                    let answer = self.charge(&request, outcome);
                    if crash == Crash::AfterCharge {
                        return;
                    }
                    let (next, more) = self.step(state, provider_result(request.attempt, answer));
                    state = next;
                    queue.extend(more);
                }
                Effect::Respond(reply) => self.answer(key, reply),
                Effect::RetryLater => {}
                Effect::CallProviderRefund(_) => panic!("no refunds in payment sequences"),
            }
        }
    }

    fn commit(&mut self, writes: WriteSet) {
        for op in writes.ops {
            match op {
                WriteOp::Payment(payment) => {
                    self.trace.payment_writes.push(payment.clone());
                    self.payment = Some(payment);
                }
                WriteOp::Idempotency { key, entry } => {
                    if let Some(response) = &entry.response {
                        self.first_responses
                            .entry(key.clone())
                            .or_insert_with(|| response.clone());
                        self.trace
                            .response_writes
                            .push((key.clone(), response.clone()));
                    }
                    self.entries.insert(key, entry);
                }
                WriteOp::Event(_) => {}
                WriteOp::List {
                    list: Listed::Payment,
                    id,
                    ..
                } => {
                    let before = self.trace.payment_writes.len().saturating_sub(1);
                    self.trace.listed.push((id, before));
                }
                WriteOp::RemoveIdempotency { .. } => panic!("the machine never sweeps"),
                other => panic!("no such write in payment sequences: {other:?}"),
            }
        }
    }

    fn charge(&mut self, request: &ChargeRequest, outcome: Outcome) -> ChargeOutcome {
        let provider_key = &request.idempotency_key;
        if let Some(done) = self.provider.get(provider_key) {
            return done.clone();
        }
        let answer = outcome.answer(provider_key);
        match &answer {
            ChargeOutcome::Retryable { .. } => {}
            resolved => {
                if matches!(resolved, ChargeOutcome::Succeeded { .. }) {
                    self.trace.charged_keys.push(provider_key.clone());
                }
                self.provider.insert(provider_key.clone(), answer.clone());
            }
        }
        answer
    }

    fn answer(&mut self, key: Option<&IdempotencyKey>, reply: Reply) {
        let Some(key) = key else {
            panic!("a background job answered: {reply:?}");
        };
        if let Reply::Response { response, replayed } = reply {
            let first_stored = self.first_responses.get(key).cloned();
            self.trace.answers.push(Answer {
                response,
                replayed,
                first_stored,
            });
        }
    }
}

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        1 => Just(Outcome::Succeeded),
        2 => Just(Outcome::Declined),
        2 => Just(Outcome::Retryable),
    ]
}

fn crash_strategy() -> impl Strategy<Value = Crash> {
    prop_oneof![
        6 => Just(Crash::Never),
        1 => Just(Crash::AfterFirstPersist),
        1 => Just(Crash::AfterCharge),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let create = (
        0..KEY_COUNT,
        0..BODIES.len(),
        outcome_strategy(),
        crash_strategy(),
    )
        .prop_map(|(key, body, outcome, crash)| Op::Create {
            key,
            body,
            outcome,
            crash,
        });
    let resume = (outcome_strategy(), crash_strategy())
        .prop_map(|(outcome, crash)| Op::Resume { outcome, crash });
    let stale =
        (0u32..4, outcome_strategy()).prop_map(|(attempt, outcome)| Op::Stale { attempt, outcome });
    prop_oneof![6 => create, 2 => resume, 1 => stale]
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (1) A payment's (attempt_count, status) never decreases; once succeeded, its status
    /// and provider_payment_id never change.
    #[test]
    fn payment_only_moves_forward(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        for pair in trace.payment_writes.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            prop_assert_eq!(&after.id, &before.id);
            prop_assert!(after.progress() >= before.progress(), "{:?} -> {:?}", before, after);
            if before.status == PaymentStatus::Succeeded {
                prop_assert_eq!(after.status, PaymentStatus::Succeeded);
                prop_assert_eq!(&after.provider_payment_id, &before.provider_payment_id);
            }
        }
    }

    /// (1b) A payment is listed once, by the write set that first records it.
    #[test]
    fn a_payment_is_listed_once_with_its_first_write(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        if let Some(first) = trace.payment_writes.first() {
            prop_assert_eq!(&trace.listed, &vec![(first.id.clone(), 0)]);
        } else {
            prop_assert!(trace.listed.is_empty());
        }
    }

    /// (2) Never a second charge: no provider call while the payment is succeeded, at most
    /// one provider key charged, at most one write turns the payment succeeded.
    #[test]
    fn at_most_one_attempt_succeeds(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        for (before, call) in &trace.calls {
            let paid = before.as_ref().is_some_and(|p| p.status == PaymentStatus::Succeeded);
            prop_assert!(!paid, "charge {:?} of a succeeded payment", call);
        }
        prop_assert!(trace.charged_keys.len() <= 1, "charged {:?}", trace.charged_keys);
        let turned_succeeded = trace
            .payment_writes
            .iter()
            .filter(|p| p.status == PaymentStatus::Succeeded)
            .map(|p| (p.attempt_count, p.provider_payment_id.clone()))
            .collect::<std::collections::BTreeSet<_>>();
        prop_assert!(turned_succeeded.len() <= 1, "{:?}", turned_succeeded);
    }

    /// (3) A key's stored response never changes, and every replay is byte-identical to it.
    #[test]
    fn replays_are_byte_identical_to_the_first_stored_response(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        let mut first: HashMap<&IdempotencyKey, &StoredResponse> = HashMap::new();
        for (key, response) in &trace.response_writes {
            prop_assert_eq!(*first.entry(key).or_insert(response), response);
        }
        for answer in &trace.answers {
            // A fresh answer is written before it is sent, so both kinds must match.
            prop_assert_eq!(Some(&answer.response), answer.first_stored.as_ref(),
                "replayed: {}", answer.replayed);
        }
    }

    /// (4) A mismatching fingerprint only ever answers 422 `idempotency_key_reused`.
    #[test]
    fn mismatching_fingerprint_never_persists_or_charges(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        for effects in &trace.mismatch_effects {
            let touches = effects
                .iter()
                .any(|e| matches!(e, Effect::Persist(_) | Effect::CallProvider(_)));
            prop_assert!(!touches, "{:?}", effects);
            let problem = only_problem(effects);
            prop_assert_eq!((problem.status, problem.code), (422, "idempotency_key_reused"));
        }
    }

    /// (5) attempt_count is 1 + the new attempts the rules accept (new key, failed
    /// payment, same amount and currency).
    #[test]
    fn attempt_count_is_one_plus_accepted_new_attempts(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        for (actual, expected) in &trace.attempt_counts {
            prop_assert_eq!(actual, expected);
        }
    }

    /// Stale provider answers neither change the state nor produce effects.
    #[test]
    fn stale_results_are_ignored(ops in ops_strategy()) {
        let trace = Sim::run(&ops);
        for (unchanged, effects) in &trace.stale {
            prop_assert!(*unchanged);
            prop_assert!(effects.is_empty(), "{:?}", effects);
        }
    }
}

/// The generators can reach every path the properties speak about; this fixed sequence
/// proves the simulation itself does (replay, mismatch, new attempt, crash recovery).
#[test]
fn simulation_reaches_every_rule() {
    let create = |key, body, outcome, crash| Op::Create {
        key,
        body,
        outcome,
        crash,
    };
    let ops = vec![
        create(1, 0, Outcome::Declined, Crash::AfterFirstPersist),
        Op::Resume {
            outcome: Outcome::Declined,
            crash: Crash::Never,
        },
        create(1, 0, Outcome::Succeeded, Crash::Never), // crash recovery: 201 replay
        create(1, 2, Outcome::Succeeded, Crash::Never), // mismatch
        create(2, 3, Outcome::Succeeded, Crash::Never), // order mismatch
        create(2, 2, Outcome::Retryable, Crash::Never), // attempt 2, 202
        create(3, 2, Outcome::Succeeded, Crash::Never), // 409 while processing
        Op::Resume {
            outcome: Outcome::Succeeded,
            crash: Crash::AfterCharge,
        },
        Op::Resume {
            outcome: Outcome::Declined,
            crash: Crash::Never,
        }, // the provider remembers: succeeded
        create(2, 2, Outcome::Succeeded, Crash::Never), // replays the 202
        Op::Stale {
            attempt: 1,
            outcome: Outcome::Succeeded,
        },
    ];
    let trace = Sim::run(&ops);

    assert_eq!(trace.accepted_new_attempts, 1);
    assert_eq!(trace.attempt_counts.last(), Some(&(2, 2)));
    assert_eq!(trace.charged_keys, vec![charge_key(MERCHANT, ORDER, 2)]);
    assert_eq!(trace.mismatch_effects.len(), 1);
    assert_eq!(trace.stale.len(), 1);
    let replays: Vec<u16> = trace
        .answers
        .iter()
        .filter(|a| a.replayed)
        .map(|a| a.response.status)
        .collect();
    assert_eq!(replays, vec![STATUS_RESOLVED, STATUS_PROCESSING]);
    let last = trace.payment_writes.last().expect("writes");
    assert_eq!(
        (last.attempt_count, last.status),
        (2, PaymentStatus::Succeeded)
    );
}
