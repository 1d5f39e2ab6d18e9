"""Drives `paykeep sandbox` with Stripe's official Python library and checks Stripe's
documented answers (docs.stripe.com/api), flow by flow.

Run by tests/sandbox_stripe_py.rs, which starts the sandbox and sets:
SANDBOX_BASE (http://127.0.0.1:PORT), SANDBOX_KEY (the sandbox's --secret-key),
WEBHOOK_PORT and WEBHOOK_SECRET (the sandbox sends its events to
http://127.0.0.1:WEBHOOK_PORT/ signed with WEBHOOK_SECRET).

Prints one line per flow; exits 1 when any flow fails.
"""

import base64
import json
import os
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import stripe

BASE = os.environ["SANDBOX_BASE"]
KEY = os.environ["SANDBOX_KEY"]
WEBHOOK_PORT = int(os.environ["WEBHOOK_PORT"])
WEBHOOK_SECRET = os.environ["WEBHOOK_SECRET"]

stripe.api_key = KEY
stripe.api_base = BASE
stripe.max_network_retries = 0

RUN = str(int(time.time() * 1000))


def key(name):
    """An idempotency key unique to this run."""
    return f"{RUN}-{name}"


def pay(method="pm_card_visa", amount=1999, currency="usd", **extra):
    return stripe.PaymentIntent.create(
        amount=amount,
        currency=currency,
        payment_method=method,
        payment_method_types=["card"],
        confirm=True,
        **extra,
    )


def refused(error_class, call, *, code=None, param=None, status=400):
    """Runs `call`, which must raise `error_class` with Stripe's error object fields."""
    try:
        call()
    except error_class as e:
        assert e.http_status == status, (e.http_status, status, e.user_message)
        assert e.code == code, (e.code, code, e.user_message)
        if param is not None:
            assert e.param == param, (e.param, param, e.user_message)
        assert e.error.type, e.json_body
        assert e.user_message, e.json_body
        return e
    raise AssertionError(f"expected {error_class.__name__}, got an answer")


# --- flows -------------------------------------------------------------------------


def flow_create_confirm_and_replay():
    options = dict(metadata={"order_no": "py-1"}, idempotency_key=key("replay"))
    pi = pay(**options)
    assert pi.object == "payment_intent" and pi.status == "succeeded", pi
    assert pi.amount_received == 1999 and pi.currency == "usd"
    assert pi.metadata["order_no"] == "py-1"
    assert pi.latest_charge.startswith("ch_")
    again = pay(**options)
    assert again.id == pi.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    e = refused(
        stripe.IdempotencyError,
        lambda: pay(amount=2000, metadata={"order_no": "py-1"}, idempotency_key=key("replay")),
    )
    assert e.error.type == "idempotency_error"
    fetched = stripe.PaymentIntent.retrieve(pi.id)
    assert fetched.status == "succeeded" and fetched.amount == 1999
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.retrieve("pi_missing"),
        code="resource_missing",
        status=404,
    )
    return pi


def flow_expand():
    pi = pay(expand=["latest_charge"])
    charge = pi.latest_charge
    assert charge.object == "charge" and charge.payment_intent == pi.id, charge
    assert charge.captured is True and charge.amount_captured == 1999
    assert charge.payment_method_details.card.brand == "visa"
    assert charge.balance_transaction.startswith("txn_")
    fetched = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge"])
    assert fetched.latest_charge.id == charge.id
    plain = stripe.PaymentIntent.retrieve(pi.id)
    assert plain.latest_charge == charge.id
    charge = stripe.Charge.retrieve(charge.id, expand=["balance_transaction"])
    assert charge.balance_transaction.object == "balance_transaction"
    assert charge.balance_transaction.source == charge.id
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.retrieve(pi.id, expand=["customer"]),
        param="expand",
    )


def flow_cards():
    for method, brand in [("pm_card_mastercard", "mastercard"), ("pm_card_amex", "amex")]:
        pi = pay(method, expand=["latest_charge"])
        assert pi.status == "succeeded", (method, pi.status)
        assert pi.latest_charge.payment_method_details.card.brand == brand
    pi = pay("pm_card_authenticationRequired")
    assert pi.status == "requires_action", pi.status
    assert pi.next_action.type == "use_stripe_sdk"
    assert pi.latest_charge is None and pi.amount_received == 0
    declines = [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", None),
    ]
    for method, code, decline_code in declines:
        e = refused(stripe.CardError, lambda: pay(method), code=code, status=402)
        assert e.error.type == "card_error"
        assert e.error.decline_code == decline_code, (method, e.error.decline_code)
        failed = e.error.payment_intent
        assert failed.status == "requires_payment_method", failed.status
        assert failed.last_payment_error.code == code
        charge = stripe.Charge.retrieve(failed.latest_charge)
        assert charge.status == "failed" and charge.failure_code == code
    refused(
        stripe.InvalidRequestError,
        lambda: pay("pm_card_nope"),
        code="resource_missing",
        param="payment_method",
    )


def flow_validation():
    invalid = stripe.InvalidRequestError
    refused(invalid, lambda: pay(foo="bar"), code="parameter_unknown", param="foo")
    refused(invalid, lambda: pay(currency="zzz"), param="currency")
    refused(invalid, lambda: pay(amount=49), code="amount_too_small", param="amount")
    refused(invalid, lambda: pay(amount=29, currency="gbp"), code="amount_too_small", param="amount")
    assert pay(amount=30, currency="gbp").status == "succeeded"
    refused(invalid, lambda: pay(amount=49, currency="jpy"), code="amount_too_small", param="amount")
    refused(invalid, lambda: pay(amount=100_000_000), code="amount_too_large", param="amount")
    refused(
        invalid,
        lambda: stripe.PaymentIntent.create(amount=1999, payment_method="pm_card_visa", confirm=True),
        code="parameter_missing",
        param="currency",
    )
    refused(invalid, lambda: pay(capture_method="later"), param="capture_method")
    refused(
        invalid,
        lambda: pay(metadata={"k": "v" * 501}),
        param="metadata[k]",
    )
    # A refused request stores nothing: the same key runs once corrected.
    refused(invalid, lambda: pay(amount=10, idempotency_key=key("fix")), code="amount_too_small")
    assert pay(idempotency_key=key("fix")).status == "succeeded"


def flow_manual_capture():
    pi = pay(capture_method="manual")
    assert pi.status == "requires_capture", pi.status
    assert pi.amount_capturable == 1999 and pi.amount_received == 0
    charge = stripe.Charge.retrieve(pi.latest_charge)
    assert charge.captured is False and charge.balance_transaction is None
    txns = stripe.BalanceTransaction.list(type="charge", limit=100)
    assert all(t.source != charge.id for t in txns.auto_paging_iter())
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.capture(pi.id, amount_to_capture=2000),
        code="amount_too_large",
        param="amount_to_capture",
    )
    captured = stripe.PaymentIntent.capture(pi.id, amount_to_capture=1500, expand=["latest_charge"])
    assert captured.status == "succeeded" and captured.amount_received == 1500
    assert captured.latest_charge.captured is True
    assert captured.latest_charge.amount_captured == 1500
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.capture(pi.id),
        code="payment_intent_unexpected_state",
    )
    refund = stripe.Refund.create(payment_intent=pi.id)
    assert refund.amount == 1500, refund.amount


def flow_cancel():
    pi = pay(capture_method="manual")
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.cancel(pi.id, cancellation_reason="bored"),
        param="cancellation_reason",
    )
    canceled = stripe.PaymentIntent.cancel(pi.id, cancellation_reason="requested_by_customer")
    assert canceled.status == "canceled", canceled.status
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.canceled_at
    charge = stripe.Charge.retrieve(pi.latest_charge)
    assert charge.refunded is True and charge.captured is False
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.cancel(pi.id),
        code="payment_intent_unexpected_state",
    )
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.Refund.create(payment_intent=pi.id),
        code="charge_already_refunded",
    )
    succeeded = pay()
    refused(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.cancel(succeeded.id),
        code="payment_intent_unexpected_state",
    )
    assert stripe.PaymentIntent.cancel(pay("pm_card_authenticationRequired").id).status == "canceled"


def flow_refunds():
    invalid = stripe.InvalidRequestError
    pi = pay()
    first = stripe.Refund.create(charge=pi.latest_charge, amount=500, reason="requested_by_customer")
    assert first.status == "succeeded" and first.amount == 500
    assert first.reason == "requested_by_customer"
    assert first.charge == pi.latest_charge and first.payment_intent == pi.id
    refused(invalid, lambda: stripe.Refund.create(charge=pi.latest_charge, reason="oops"), param="reason")
    refused(
        invalid,
        lambda: stripe.Refund.create(payment_intent=pi.id, amount=1500),
        code="amount_too_large",
        param="amount",
    )
    refused(invalid, lambda: stripe.Refund.create(), code="parameter_missing")
    refused(invalid, lambda: stripe.Refund.create(charge="ch_missing"), code="resource_missing", param="charge")
    refused(invalid, lambda: stripe.Refund.create(charge=pi.latest_charge, foo=1), code="parameter_unknown", param="foo")
    rest = stripe.Refund.create(payment_intent=pi.id, expand=["charge"])
    assert rest.amount == 1499 and rest.reason is None
    assert rest.charge.refunded is True and rest.charge.amount_refunded == 1999
    refused(invalid, lambda: stripe.Refund.create(charge=pi.latest_charge), code="charge_already_refunded")
    listed = stripe.Refund.list(charge=pi.latest_charge)
    assert [r.id for r in listed.data] == [rest.id, first.id], listed
    assert [r.id for r in stripe.Refund.list(payment_intent=pi.id).data] == [rest.id, first.id]
    fetched = stripe.Refund.retrieve(first.id, expand=["payment_intent"])
    assert fetched.payment_intent.id == pi.id
    declined = refused(stripe.CardError, lambda: pay("pm_card_chargeDeclined"), code="card_declined", status=402)
    refused(
        invalid,
        lambda: stripe.Refund.create(payment_intent=declined.error.payment_intent.id),
        code="charge_not_refundable",
    )


def flow_lists_and_paging():
    invalid = stripe.InvalidRequestError
    made = [pay(metadata={"page": str(i)}).id for i in range(5)]
    newest_first = list(reversed(made))
    page = stripe.PaymentIntent.list(limit=3)
    assert [p.id for p in page.data] == newest_first[:3] and page.has_more is True
    after = stripe.PaymentIntent.list(limit=2, starting_after=newest_first[2])
    assert [p.id for p in after.data] == newest_first[3:5]
    # ending_before: the objects just newer than the cursor, newest first.
    before = stripe.PaymentIntent.list(limit=2, ending_before=newest_first[3])
    assert [p.id for p in before.data] == newest_first[1:3], [p.id for p in before.data]
    assert before.has_more is True
    top = stripe.PaymentIntent.list(limit=2, ending_before=newest_first[0])
    assert top.data == [] and top.has_more is False
    backwards = stripe.PaymentIntent.list(limit=2, ending_before=newest_first[4])
    assert [p.id for p in backwards.auto_paging_iter()] == made[1:], "paged backwards, oldest first"
    everything = [p.id for p in stripe.PaymentIntent.list(limit=2).auto_paging_iter()]
    assert everything[:5] == newest_first and len(everything) == len(set(everything))
    for bad in [0, 101, "abc"]:
        refused(invalid, lambda: stripe.PaymentIntent.list(limit=bad), code="parameter_invalid_integer", param="limit")
    refused(invalid, lambda: stripe.PaymentIntent.list(starting_after="pi_missing"), code="resource_missing", param="starting_after")
    refused(invalid, lambda: stripe.PaymentIntent.list(ending_before="pi_missing"), code="resource_missing", param="ending_before")
    charge_id = stripe.PaymentIntent.retrieve(made[0]).latest_charge
    refused(invalid, lambda: stripe.PaymentIntent.list(starting_after=charge_id), code="resource_missing")
    refused(invalid, lambda: stripe.PaymentIntent.list(starting_after=made[0], ending_before=made[1]))
    refused(invalid, lambda: stripe.PaymentIntent.list(foo="bar"), code="parameter_unknown", param="foo")
    charges = stripe.Charge.list(limit=5)
    assert [c.payment_intent for c in charges.data] == newest_first
    assert [c.id for c in stripe.Charge.list(payment_intent=made[2]).data] == [
        stripe.PaymentIntent.retrieve(made[2]).latest_charge
    ]
    txns = list(stripe.BalanceTransaction.list(limit=100, expand=["data.source"]).auto_paging_iter())
    assert txns and all(not isinstance(t.source, str) for t in txns)
    charge_txns = list(stripe.BalanceTransaction.list(type="charge", limit=100).auto_paging_iter())
    assert charge_txns and all(t.type == "charge" for t in charge_txns)
    refund_txns = list(stripe.BalanceTransaction.list(type="refund", limit=100).auto_paging_iter())
    assert refund_txns and all(t.type == "refund" and t.amount < 0 for t in refund_txns)
    assert len(txns) == len(charge_txns) + len(refund_txns)
    refused(invalid, lambda: stripe.BalanceTransaction.list(type="bogus"), param="type")
    e = refused(invalid, lambda: stripe.BalanceTransaction.list(expand=["source"]), param="expand")
    assert "data.source" in e.user_message
    later = stripe.BalanceTransaction.list(created={"gte": int(time.time()) + 3600})
    assert later.data == [] and later.has_more is False
    txn = stripe.BalanceTransaction.retrieve(charge_txns[0].id, expand=["source"])
    assert txn.source.object == "charge"


def http(path, authorization):
    request = urllib.request.Request(BASE + path, headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def flow_basic_auth():
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    status, body = http("/v1/charges?limit=1", f"Basic {basic}")
    assert status == 200 and body["object"] == "list", (status, body)
    wrong = base64.b64encode(b"sk_test_wrong:").decode()
    status, body = http("/v1/charges?limit=1", f"Basic {wrong}")
    assert status == 401 and body["error"]["type"] == "invalid_request_error", (status, body)
    refused(
        stripe.AuthenticationError,
        lambda: stripe.Charge.list(api_key="sk_test_wrong"),
        status=401,
    )


class Receiver(BaseHTTPRequestHandler):
    """Collects the sandbox's webhook deliveries: (raw body, Stripe-Signature)."""

    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


WEBHOOK_KINDS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "payment_intent.canceled",
    "charge.refunded",
}


def flow_webhooks(paid):
    """Every kind of event the flows caused arrives, each verified by construct_event."""
    deadline = time.time() + 15
    while True:
        events = [
            stripe.Webhook.construct_event(body, signature, WEBHOOK_SECRET)
            for body, signature in list(Receiver.received)
        ]
        types = {e.type for e in events}
        paid_seen = any(
            e.type == "payment_intent.succeeded" and e.data.object.id == paid.id for e in events
        )
        if paid_seen and WEBHOOK_KINDS <= types:
            break
        if time.time() > deadline:
            raise AssertionError(f"missing {sorted(WEBHOOK_KINDS - types)} (paid seen: {paid_seen})")
        time.sleep(0.2)
    body, signature = Receiver.received[0]
    try:
        stripe.Webhook.construct_event(body + b" ", signature, WEBHOOK_SECRET)
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a changed body must fail verification")


def main():
    server = HTTPServer(("127.0.0.1", WEBHOOK_PORT), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    failures = 0
    paid = None

    def run(name, f, *args):
        nonlocal failures
        started = time.time()
        try:
            result = f(*args)
            print(f"ok    {name} ({time.time() - started:.2f}s)", flush=True)
            return result
        except Exception:
            failures += 1
            print(f"FAIL  {name}", flush=True)
            traceback.print_exc()
            return None

    paid = run("create_confirm_and_replay", flow_create_confirm_and_replay)
    run("expand", flow_expand)
    run("cards", flow_cards)
    run("validation", flow_validation)
    run("manual_capture", flow_manual_capture)
    run("cancel", flow_cancel)
    run("refunds", flow_refunds)
    run("lists_and_paging", flow_lists_and_paging)
    run("basic_auth", flow_basic_auth)
    if paid is not None:
        run("webhooks", flow_webhooks, paid)
    else:
        failures += 1
        print("FAIL  webhooks (no payment to look for)")
    server.shutdown()
    print(f"stripe {stripe.VERSION}: {failures} flow(s) failed", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
