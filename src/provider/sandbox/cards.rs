//! The sandbox's test payment methods: Stripe's test `PaymentMethod` ids
//! (docs.stripe.com/testing) and the simulator's `pm_sim_*` (DESIGN §2), each with the
//! outcome Stripe documents for it.

/// What confirming a PaymentIntent with a payment method does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authorized (and captured unless `capture_method=manual`).
    Succeeds,
    /// 3-D Secure is required: the PaymentIntent is left `requires_action`, nothing charged.
    RequiresAction,
    /// 402 `card_error` with a failed charge; the PaymentIntent is left
    /// `requires_payment_method`.
    Declines {
        code: &'static str,
        decline_code: Option<&'static str>,
        message: &'static str,
    },
}

/// A test card: its outcome, and what its charge shows of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Card {
    pub outcome: Outcome,
    pub brand: &'static str,
    pub last4: &'static str,
}

const fn card(outcome: Outcome, brand: &'static str, last4: &'static str) -> Card {
    Card {
        outcome,
        brand,
        last4,
    }
}

/// Every payment method the sandbox knows, by id.
const CARDS: &[(&str, Card)] = &[
    ("pm_card_visa", card(Outcome::Succeeds, "visa", "4242")),
    (
        "pm_card_mastercard",
        card(Outcome::Succeeds, "mastercard", "4444"),
    ),
    ("pm_card_amex", card(Outcome::Succeeds, "amex", "8431")),
    (
        "pm_card_authenticationRequired",
        card(Outcome::RequiresAction, "visa", "3184"),
    ),
    (
        "pm_card_chargeDeclined",
        card(
            Outcome::Declines {
                code: "card_declined",
                decline_code: Some("generic_decline"),
                message: "Your card was declined.",
            },
            "visa",
            "0002",
        ),
    ),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        card(
            Outcome::Declines {
                code: "card_declined",
                decline_code: Some("insufficient_funds"),
                message: "Your card has insufficient funds.",
            },
            "visa",
            "9995",
        ),
    ),
    (
        "pm_card_chargeDeclinedExpiredCard",
        card(
            Outcome::Declines {
                code: "expired_card",
                decline_code: Some("expired_card"),
                message: "Your card has expired.",
            },
            "visa",
            "0069",
        ),
    ),
    (
        // Stripe's advice for `processing_error`: the payment may be tried again (as a new
        // attempt: the same idempotency key replays this answer).
        "pm_card_chargeDeclinedProcessingError",
        card(
            Outcome::Declines {
                code: "processing_error",
                decline_code: None,
                message: "An error occurred while processing your card. Try again in a little bit.",
            },
            "visa",
            "0119",
        ),
    ),
    ("pm_sim_transient", card(Outcome::Succeeds, "visa", "4242")),
    ("pm_sim_timeout", card(Outcome::Succeeds, "visa", "4242")),
    ("pm_sim_slow", card(Outcome::Succeeds, "visa", "4242")),
];

/// The card of `payment_method`, if the sandbox knows it.
pub fn lookup(payment_method: &str) -> Option<Card> {
    CARDS
        .iter()
        .find(|(id, _)| *id == payment_method)
        .map(|(_, card)| *card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_card_id_is_listed_once() {
        for (i, (id, _)) in CARDS.iter().enumerate() {
            assert!(CARDS[i + 1..].iter().all(|(other, _)| other != id), "{id}");
        }
        assert!(lookup("pm_nope").is_none());
        assert_eq!(
            lookup("pm_card_authenticationRequired").unwrap().outcome,
            Outcome::RequiresAction
        );
    }
}
