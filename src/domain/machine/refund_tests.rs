//! Tests of the refund commands of the state machine against DESIGN §2 "Refunds": one unit
//! test per rule, and a proptest property over random sequences of refund requests and
//! provider answers (money conserved: refunds not failed never exceed the payment, and
//! `amount_refunded` is exactly the sum of succeeded refunds).
//!
//! Owned with `refund.rs` beside it: a change to a rule there changes a test here.

use proptest::prelude::*;
use serde_json::json;

use crate::domain::charge::{RefundOutcome, RefundRequest};
use crate::domain::event::{kind, EventLevel};
use crate::domain::idempotency::{Fingerprint, IdempotencyKey, KeyScope};
use crate::domain::ids::{IdSource, SequentialIds};
use crate::domain::machine::{apply, Command, Ctx, Effect, KeyState, RefundCommand, Reply};
use crate::domain::payment::{Payment, PaymentStatus, RefundStatus};
use crate::domain::provider_key::{refund_key, RefundKeySource};
use crate::domain::refund::{default_key_value, CreateRefund, RefundRules, RefundState};
use crate::domain::test_fixtures::paid_payment;
use crate::domain::time::DAY_MS;
use crate::domain::write_set::{Listed, WriteOp};
use crate::http::problem::Problem;

const NOW_MS: i64 = 1_700_000_000_000;
const MERCHANT: &str = "m_1";
const PAYMENT_ID: &str = "pay_1";
const AMOUNT: u64 = 1000;
const RULES: RefundRules = RefundRules {
    window_ms: 7 * DAY_MS,
    fee_minor: 0,
};

struct Harness {
    ids: SequentialIds,
    now_ms: i64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            ids: SequentialIds::default(),
            now_ms: NOW_MS,
        }
    }

    fn apply(&mut self, state: KeyState, command: Command) -> (KeyState, Vec<Effect>) {
        let mut ctx = Ctx {
            now_ms: self.now_ms,
            ids: &mut self.ids,
            provider: "simulator",
        };
        apply(state, command, &mut ctx)
    }
}

fn paid() -> Payment {
    paid_payment(PAYMENT_ID, MERCHANT, "o-1", AMOUNT, NOW_MS - 1000)
}

fn state_of(payment: Payment) -> KeyState {
    KeyState {
        payment: Some(payment),
        entry: None,
        refunds: Vec::new(),
    }
}

fn key_of(amount: u64, operator: &str) -> IdempotencyKey {
    IdempotencyKey {
        merchant_id: MERCHANT.into(),
        scope: KeyScope::Refund(default_key_value(PAYMENT_ID, operator, amount)),
    }
}

fn refund_cmd(key: &IdempotencyKey, amount: u64, rules: RefundRules) -> Command {
    refund_cmd_on(PAYMENT_ID, key, amount, rules)
}

/// A refund request on the payment `payment_id`.
fn refund_cmd_on(
    payment_id: &str,
    key: &IdempotencyKey,
    amount: u64,
    rules: RefundRules,
) -> Command {
    let body = json!({"amount": amount, "operator_id": "op", "reason": "damaged"});
    Command::RefundCreate(Box::new(RefundCommand {
        merchant_id: MERCHANT.into(),
        payment_id: payment_id.into(),
        request: CreateRefund {
            amount,
            reason: Some("damaged".into()),
            operator_id: "op".into(),
        },
        key: key.clone(),
        fingerprint: Fingerprint::new("POST", &format!("/v1/payments/{payment_id}/refunds"), &body),
        rules,
    }))
}

/// What a later job of `key` loads from a model store: everything but the entry, which is
/// the key's own.
fn reload(state: &KeyState, key: Option<&IdempotencyKey>) -> KeyState {
    let entry = state
        .entry
        .clone()
        .filter(|(k, _)| key.is_some_and(|key| key == k));
    KeyState {
        payment: state.payment.clone(),
        entry,
        refunds: state.refunds.clone(),
    }
}

/// The effects are exactly one refusal; returns it as `http/` answers it.
fn only_problem(effects: &[Effect]) -> Problem {
    match effects {
        [Effect::Respond(Reply::Error(error))] => Problem::from(error.clone()),
        other => panic!("expected a lone problem, got {other:?}"),
    }
}

fn the_call(effects: &[Effect]) -> RefundRequest {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::CallProviderRefund(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a provider refund call")
}

fn answer_of(effects: &[Effect]) -> (u16, serde_json::Value) {
    for effect in effects {
        if let Effect::Respond(Reply::Response { response, .. }) = effect {
            return (
                response.status,
                serde_json::from_str(&response.body).unwrap(),
            );
        }
    }
    panic!("no response in {effects:?}")
}

fn succeeded(id: &str) -> RefundOutcome {
    RefundOutcome::Succeeded {
        provider_refund_id: id.into(),
    }
}

/// Creates a refund of `amount` and feeds `outcome` back, as one job.
fn refund_with(
    h: &mut Harness,
    state: KeyState,
    amount: u64,
    outcome: RefundOutcome,
) -> (KeyState, Vec<Effect>) {
    let key = key_of(amount, "op");
    let (state, effects) = h.apply(reload(&state, None), refund_cmd(&key, amount, RULES));
    let call = the_call(&effects);
    h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: call.refund_id,
            outcome,
        },
    )
}

#[test]
fn a_refund_persists_its_intent_then_calls_the_provider_with_its_own_key() {
    let mut h = Harness::new();
    let key = key_of(300, "op");
    let (state, effects) = h.apply(state_of(paid()), refund_cmd(&key, 300, RULES));
    let [Effect::Persist(writes), Effect::CallProviderRefund(call)] = effects.as_slice() else {
        panic!("expected persist then call: {effects:?}");
    };
    let WriteOp::Refund(refund) = &writes.ops[0] else {
        panic!("refund first: {writes:?}");
    };
    assert_eq!(refund.status, RefundState::Pending);
    assert_eq!(refund.id, "re_0001");
    assert_eq!(
        writes.ops[1],
        WriteOp::List {
            list: Listed::Refund,
            merchant_id: MERCHANT.to_owned(),
            id: refund.id.clone(),
            created_at_ms: refund.created_at_ms,
        }
    );
    assert!(
        matches!(&writes.ops[2], WriteOp::Idempotency { key: k, entry } if *k == key && entry.response.is_none())
    );
    assert_eq!(
        call.idempotency_key,
        refund_key(
            MERCHANT,
            "o-1",
            RefundKeySource::Operator {
                operator_id: "op",
                amount: 300
            }
        )
    );
    assert_eq!(call.provider_payment_id, "pi_1");
    assert_eq!(call.amount, 300);
    assert_eq!(state.refunds.len(), 1);
}

#[test]
fn success_updates_the_payment_emits_refund_succeeded_and_answers_201() {
    let mut h = Harness::new();
    let (state, effects) = refund_with(&mut h, state_of(paid()), 300, succeeded("re_p1"));
    let payment = state.payment.clone().unwrap();
    assert_eq!(payment.amount_refunded, 300);
    assert_eq!(payment.refund_status, RefundStatus::Partial);
    let Effect::Persist(writes) = &effects[0] else {
        panic!("{effects:?}");
    };
    let event = writes
        .ops
        .iter()
        .find_map(|op| match op {
            WriteOp::Event(e) => Some(e),
            _ => None,
        })
        .expect("event");
    assert_eq!(event.kind, kind::REFUND_SUCCEEDED);
    assert_eq!(event.level, EventLevel::Info);
    assert_eq!(event.dedupe_key, "refund.succeeded:re_0001");
    assert!(writes
        .ops
        .iter()
        .any(|op| matches!(op, WriteOp::Payment(p) if p.amount_refunded == 300)));
    let (status, body) = answer_of(&effects);
    assert_eq!(status, 201);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["provider_refund_id"], "re_p1");
    let (state, _) = refund_with(&mut h, state, 700, succeeded("re_p2"));
    let payment = state.payment.unwrap();
    assert_eq!(payment.amount_refunded, 1000);
    assert_eq!(payment.refund_status, RefundStatus::Full);
}

#[test]
fn only_a_succeeded_payment_is_refundable() {
    for status in [PaymentStatus::Processing, PaymentStatus::Failed] {
        let mut h = Harness::new();
        let mut payment = paid();
        payment.status = status;
        payment.succeeded_at_ms = None;
        let (state, effects) = h.apply(state_of(payment), refund_cmd(&key_of(1, "op"), 1, RULES));
        let p = only_problem(&effects);
        assert_eq!((p.status, p.code), (422, "payment_not_refundable"));
        assert!(state.refunds.is_empty());
    }
}

#[test]
fn the_refund_window_counts_from_success() {
    let mut h = Harness::new();
    h.now_ms = NOW_MS - 1000 + RULES.window_ms;
    let (_, effects) = h.apply(state_of(paid()), refund_cmd(&key_of(1, "op"), 1, RULES));
    assert!(
        matches!(effects[0], Effect::Persist(_)),
        "last instant is inside"
    );
    h.now_ms += 1;
    let (_, effects) = h.apply(state_of(paid()), refund_cmd(&key_of(1, "op"), 1, RULES));
    assert_eq!(only_problem(&effects).code, "refund_window_expired");
}

#[test]
fn refunds_not_failed_may_not_exceed_the_amount_and_pending_ones_count() {
    let mut h = Harness::new();
    let retry = RefundOutcome::Retryable {
        reason: "503".into(),
    };
    let (state, effects) = refund_with(&mut h, state_of(paid()), 600, retry);
    assert_eq!(answer_of(&effects).0, 202, "pending answers 202");
    assert!(effects.contains(&Effect::RetryLater));
    let (state, effects) = h.apply(
        reload(&state, None),
        refund_cmd(&key_of(401, "op"), 401, RULES),
    );
    let p = only_problem(&effects);
    assert_eq!((p.status, p.code), (422, "refund_exceeds_payment"));
    assert_eq!(p.fields, vec!["amount"]);
    let (state, effects) = h.apply(
        reload(&state, None),
        refund_cmd(&key_of(400, "op"), 400, RULES),
    );
    assert!(
        matches!(effects[0], Effect::Persist(_)),
        "exactly the rest fits"
    );
    assert_eq!(state.refunds.len(), 2);
}

#[test]
fn a_failed_refund_frees_its_amount_and_emits_refund_failed() {
    let mut h = Harness::new();
    let failed = RefundOutcome::Failed {
        code: "charge_disputed".into(),
        message: "disputed".into(),
        provider_refund_id: None,
    };
    let (state, effects) = refund_with(&mut h, state_of(paid()), 1000, failed);
    let (status, body) = answer_of(&effects);
    assert_eq!((status, body["status"].as_str()), (201, Some("failed")));
    assert_eq!(body["failure_code"], "charge_disputed");
    let Effect::Persist(writes) = &effects[0] else {
        panic!()
    };
    assert!(writes
        .ops
        .iter()
        .any(|op| matches!(op, WriteOp::Event(e) if e.kind == kind::REFUND_FAILED)));
    assert_eq!(state.payment.as_ref().unwrap().amount_refunded, 0);
    let (state, _) = refund_with(&mut h, state, 1000, succeeded("re_ok"));
    assert_eq!(state.payment.unwrap().refund_status, RefundStatus::Full);
}

#[test]
fn the_fee_is_kept_so_the_provider_returns_amount_less_fee() {
    let mut h = Harness::new();
    let rules = RefundRules {
        fee_minor: 50,
        ..RULES
    };
    let (_, effects) = h.apply(state_of(paid()), refund_cmd(&key_of(50, "op"), 50, rules));
    assert_eq!(only_problem(&effects).code, "refund_below_fee");
    let (state, effects) = h.apply(
        state_of(paid()),
        refund_cmd(&key_of(1000, "op"), 1000, rules),
    );
    let call = the_call(&effects);
    assert_eq!(call.amount, 950);
    assert_eq!(state.refunds[0].fee, 50);
    let (state, _) = h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: call.refund_id,
            outcome: succeeded("re_f"),
        },
    );
    let payment = state.payment.unwrap();
    assert_eq!(
        payment.amount_refunded, 1000,
        "the fee counts toward the sum"
    );
    assert_eq!(payment.refund_status, RefundStatus::Full);
}

#[test]
fn same_key_replays_and_another_body_is_key_reuse() {
    let mut h = Harness::new();
    let key = key_of(300, "op");
    let (state, first) = h.apply(state_of(paid()), refund_cmd(&key, 300, RULES));
    let call = the_call(&first);
    let (state, effects) = h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: call.refund_id,
            outcome: succeeded("re_x"),
        },
    );
    let stored = answer_of(&effects);
    let (state, again) = h.apply(reload(&state, Some(&key)), refund_cmd(&key, 300, RULES));
    match again.as_slice() {
        [Effect::Respond(Reply::Response {
            response,
            replayed: true,
        })] => {
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&response.body).unwrap(),
                stored.1
            );
        }
        other => panic!("expected a replay: {other:?}"),
    }
    let (_, other) = h.apply(reload(&state, Some(&key)), refund_cmd(&key, 301, RULES));
    let p = only_problem(&other);
    assert_eq!(p.code, "idempotency_key_reused");
    assert_eq!(p.fields, vec!["amount"]);
}

#[test]
fn resume_resends_pending_refunds_with_the_same_key_and_answers_nobody() {
    let mut h = Harness::new();
    let retry = RefundOutcome::Retryable {
        reason: "timeout".into(),
    };
    let key = key_of(300, "op");
    let (state, effects) = h.apply(state_of(paid()), refund_cmd(&key, 300, RULES));
    let first = the_call(&effects);
    let (state, effects) = h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: first.refund_id.clone(),
            outcome: retry,
        },
    );
    assert_eq!(answer_of(&effects).0, 202);
    let (state, effects) = h.apply(reload(&state, None), Command::Resume);
    assert_eq!(
        effects,
        vec![Effect::CallProviderRefund(first.clone())],
        "same request, same key"
    );
    let (state, effects) = h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: first.refund_id,
            outcome: succeeded("re_late"),
        },
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Respond(_))));
    assert_eq!(state.refunds[0].status, RefundState::Succeeded);
    let (_, effects) = h.apply(reload(&state, None), Command::Resume);
    assert!(effects.is_empty(), "nothing left to resume");
}

/// The provider call of a refund of `amount` under `key` on the order's payment `payment_id`,
/// with `skip` ids handed out first.
fn call_for(payment_id: &str, key: &IdempotencyKey, amount: u64, skip: usize) -> RefundRequest {
    let mut h = Harness::new();
    for _ in 0..skip {
        h.ids.next_id("x_");
    }
    let payment = paid_payment(payment_id, MERCHANT, "o-1", AMOUNT, NOW_MS - 1000);
    let (_, effects) = h.apply(
        state_of(payment),
        refund_cmd_on(payment_id, key, amount, RULES),
    );
    the_call(&effects)
}

#[test]
fn the_refund_call_holds_no_local_id_and_survives_a_new_payment_id() {
    // After the store is lost, the merchant asks the refund again on the order's new payment
    // id: the provider must be sent the same key and parameters (only `refund_id`, which is
    // never sent, may differ).
    let header = |value: &str| IdempotencyKey {
        merchant_id: MERCHANT.into(),
        scope: KeyScope::Header(value.into()),
    };
    let default_on = |payment_id: &str| IdempotencyKey {
        merchant_id: MERCHANT.into(),
        scope: KeyScope::Refund(default_key_value(payment_id, "op", 300)),
    };
    let sent = |call: RefundRequest| RefundRequest {
        refund_id: String::new(),
        ..call
    };
    for (before, after) in [
        (header("r-1"), header("r-1")),
        (default_on("pay_1"), default_on("pay_2")),
    ] {
        let first = call_for("pay_1", &before, 300, 0);
        let again = call_for("pay_2", &after, 300, 7);
        assert_ne!(first.refund_id, again.refund_id);
        assert_eq!(sent(first.clone()), sent(again));
        assert!(first.idempotency_key.starts_with("rk_"));
        assert!(!first.idempotency_key.contains("pay_"));
    }
    // The refund's own key tells the order's refunds apart.
    let by_header = call_for("pay_1", &header("r-1"), 300, 0).idempotency_key;
    assert_ne!(
        by_header,
        call_for("pay_1", &header("r-2"), 300, 0).idempotency_key
    );
    assert_ne!(
        by_header,
        call_for("pay_1", &default_on("pay_1"), 300, 0).idempotency_key
    );
    assert_eq!(
        by_header,
        refund_key(MERCHANT, "o-1", RefundKeySource::Header("r-1"))
    );
    assert_ne!(
        call_for("pay_1", &default_on("pay_1"), 300, 0).idempotency_key,
        call_for("pay_1", &key_of(400, "op"), 400, 0).idempotency_key
    );
}

#[test]
fn a_stale_answer_for_a_resolved_refund_changes_nothing() {
    let mut h = Harness::new();
    let (state, _) = refund_with(&mut h, state_of(paid()), 300, succeeded("re_a"));
    let before = reload(&state, None);
    let failed = RefundOutcome::Failed {
        code: "x".into(),
        message: "x".into(),
        provider_refund_id: None,
    };
    let (after, effects) = h.apply(
        before.clone(),
        Command::RefundProviderResult {
            refund_id: "re_0001".into(),
            outcome: failed,
        },
    );
    assert_eq!(after, before);
    assert!(effects.is_empty());
}

#[test]
fn an_entry_a_crash_left_unanswered_replays_the_refund_as_it_stands() {
    let mut h = Harness::new();
    let key = key_of(300, "op");
    let (state, _) = h.apply(state_of(paid()), refund_cmd(&key, 300, RULES));
    let unanswered = state.entry.clone();
    // Crash after the intent was stored: the entry has no response; a resume resolves it.
    let (state, effects) = h.apply(reload(&state, None), Command::Resume);
    let call = the_call(&effects);
    let (state, effects) = h.apply(
        state,
        Command::RefundProviderResult {
            refund_id: call.refund_id,
            outcome: succeeded("re_r"),
        },
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Respond(_))),
        "nobody waits"
    );
    let mut loaded = reload(&state, None);
    loaded.entry = unanswered;
    let (_, effects) = h.apply(loaded, refund_cmd(&key, 300, RULES));
    let [Effect::Persist(writes), Effect::Respond(Reply::Response {
        response,
        replayed: true,
    })] = effects.as_slice()
    else {
        panic!("expected the entry completed and a replay: {effects:?}");
    };
    assert_eq!(response.status, 201);
    assert!(response.body.contains("\"succeeded\""));
    assert!(
        matches!(&writes.ops[0], WriteOp::Idempotency { entry, .. } if entry.response.is_some())
    );
}

#[test]
fn another_merchants_payment_is_404() {
    let mut h = Harness::new();
    let mut payment = paid();
    payment.merchant_id = "m_other".into();
    let (_, effects) = h.apply(state_of(payment), refund_cmd(&key_of(1, "op"), 1, RULES));
    assert_eq!(only_problem(&effects).status, 404);
}

// ---------------------------------------------------------------------------------------
// Property: money is conserved over any sequence of refunds and answers
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Refund { amount: u64, answer: u8 },
    Resume { answer: u8 },
}

fn outcome_of(answer: u8, n: usize) -> RefundOutcome {
    match answer % 3 {
        0 => succeeded(&format!("re_p{n}")),
        1 => RefundOutcome::Failed {
            code: "declined".into(),
            message: "no".into(),
            provider_refund_id: None,
        },
        _ => RefundOutcome::Retryable {
            reason: "503".into(),
        },
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u64..=700, any::<u8>()).prop_map(|(amount, answer)| Op::Refund { amount, answer }),
        any::<u8>().prop_map(|answer| Op::Resume { answer }),
    ]
}

proptest! {
    #[test]
    fn refunds_never_exceed_the_payment(ops in prop::collection::vec(op_strategy(), 1..30)) {
        let mut h = Harness::new();
        let mut state = state_of(paid());
        for (n, op) in ops.into_iter().enumerate() {
            let (command, answer) = match op {
                Op::Refund { amount, answer } => {
                    let key = IdempotencyKey {
                        merchant_id: MERCHANT.into(),
                        scope: KeyScope::Header(format!("k{n}")),
                    };
                    (refund_cmd(&key, amount, RULES), answer)
                }
                Op::Resume { answer } => (Command::Resume, answer),
            };
            // `apply` asserts the invariants after every command.
            let (next, effects) = h.apply(reload(&state, None), command);
            state = next;
            let calls: Vec<RefundRequest> = effects.iter().filter_map(|e| match e {
                Effect::CallProviderRefund(r) => Some(r.clone()),
                _ => None,
            }).collect();
            for call in calls {
                let outcome = outcome_of(answer, n);
                let (next, _) = h.apply(state, Command::RefundProviderResult { refund_id: call.refund_id, outcome });
                state = next;
            }
            let payment = state.payment.clone().unwrap();
            let held: u64 = state.refunds.iter().filter(|r| r.status != RefundState::Failed).map(|r| r.amount).sum();
            prop_assert!(held <= payment.amount);
            prop_assert_eq!(payment.amount_refunded, state.refunds.iter().filter(|r| r.status == RefundState::Succeeded).map(|r| r.amount).sum::<u64>());
        }
    }
}
