//! The `failure_message` a merchant sees, from a fixed table per `failure_code`: a
//! provider's own error text never reaches a merchant (it could echo anything, up to our
//! `Authorization` header); it goes to the log, redacted.
//!
//! Codes and wording follow Stripe's decline codes (docs.stripe.com/declines/codes) and
//! error codes (docs.stripe.com/error-codes). Where Stripe advises not to tell the customer
//! the real reason (`fraudulent`, `lost_card`, `stolen_card`, `pickup_card`,
//! `restricted_card`, `security_violation`, `merchant_blacklist`), the message is the
//! generic decline, as Stripe recommends.

/// The message of a charge that failed with `code`; an unknown code gets the generic one.
pub fn charge_failure_message(code: &str) -> &'static str {
    CHARGE_MESSAGES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(GENERIC_DECLINE, |(_, m)| m)
}

/// The message of a refund that failed with `code`; an unknown code gets the generic one.
pub fn refund_failure_message(code: &str) -> &'static str {
    REFUND_MESSAGES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(REFUND_REFUSED, |(_, m)| m)
}

const GENERIC_DECLINE: &str = "The card was declined.";
const UNKNOWN_REASON: &str = "The card was declined for an unknown reason.";
const INVALID_CARD: &str = "The card, or the account it is connected to, is invalid.";
const REFUND_REFUSED: &str = "The provider could not complete the refund.";

/// `(failure_code, failure_message)`, Stripe's decline codes plus the error codes a charge
/// can fail with.
const CHARGE_MESSAGES: &[(&str, &str)] = &[
    ("approve_with_id", "The payment could not be authorized."),
    (
        "authentication_required",
        "The payment needs the customer's authentication.",
    ),
    ("call_issuer", UNKNOWN_REASON),
    ("card_declined", GENERIC_DECLINE),
    (
        "card_not_supported",
        "The card does not support this type of purchase.",
    ),
    (
        "card_velocity_exceeded",
        "The card's balance, credit limit or transaction limit was exceeded.",
    ),
    (
        "currency_not_supported",
        "The card does not support this currency.",
    ),
    ("do_not_honor", UNKNOWN_REASON),
    ("do_not_try_again", UNKNOWN_REASON),
    (
        "duplicate_transaction",
        "An identical payment was submitted very recently.",
    ),
    ("expired_card", "The card has expired."),
    ("fraudulent", GENERIC_DECLINE),
    ("generic_decline", GENERIC_DECLINE),
    ("incorrect_cvc", "The card's security code is incorrect."),
    ("incorrect_number", "The card number is incorrect."),
    ("incorrect_pin", "The PIN is incorrect."),
    ("incorrect_zip", "The postal code is incorrect."),
    ("insufficient_funds", "The card has insufficient funds."),
    ("invalid_account", INVALID_CARD),
    (
        "invalid_amount",
        "The payment amount is invalid or exceeds what is allowed.",
    ),
    ("invalid_cvc", "The card's security code is incorrect."),
    (
        "invalid_expiry_month",
        "The card's expiration month is invalid.",
    ),
    (
        "invalid_expiry_year",
        "The card's expiration year is invalid.",
    ),
    ("invalid_number", "The card number is incorrect."),
    (
        "invalid_payment_method",
        "The payment method is not one the provider knows.",
    ),
    ("invalid_pin", "The PIN is incorrect."),
    (
        "issuer_not_available",
        "The card issuer could not be reached.",
    ),
    ("lost_card", GENERIC_DECLINE),
    ("merchant_blacklist", GENERIC_DECLINE),
    ("new_account_information_available", INVALID_CARD),
    ("no_action_taken", UNKNOWN_REASON),
    ("not_permitted", "The payment is not permitted."),
    ("offline_pin_required", "The card needs its PIN."),
    ("online_or_offline_pin_required", "The card needs its PIN."),
    ("payment_failed", "The payment failed."),
    ("pickup_card", GENERIC_DECLINE),
    (
        "pin_try_exceeded",
        "The number of PIN attempts was exceeded.",
    ),
    (
        "processing_error",
        "An error occurred while processing the card.",
    ),
    (
        "reenter_transaction",
        "The payment could not be processed by the issuer.",
    ),
    ("restricted_card", GENERIC_DECLINE),
    ("revocation_of_all_authorizations", UNKNOWN_REASON),
    ("revocation_of_authorization", UNKNOWN_REASON),
    ("security_violation", GENERIC_DECLINE),
    ("service_not_allowed", UNKNOWN_REASON),
    ("stolen_card", GENERIC_DECLINE),
    ("stop_payment_order", UNKNOWN_REASON),
    ("testmode_decline", "A test card was used."),
    ("transaction_not_allowed", UNKNOWN_REASON),
    ("try_again_later", UNKNOWN_REASON),
    (
        "withdrawal_count_limit_exceeded",
        "The card's balance or credit limit was exceeded.",
    ),
];

/// `(failure_code, failure_message)` of refunds (docs.stripe.com/refunds, failure reasons).
const REFUND_MESSAGES: &[(&str, &str)] = &[
    (
        "charge_already_refunded",
        "The payment was already refunded.",
    ),
    ("charge_disputed", "The payment is disputed."),
    (
        "expired_or_canceled_card",
        "The card has expired or was canceled.",
    ),
    (
        "insufficient_funds",
        "The balance is insufficient for the refund.",
    ),
    (
        "lost_or_stolen_card",
        "The card was reported lost or stolen.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_fixed_message() {
        for table in [CHARGE_MESSAGES, REFUND_MESSAGES] {
            let mut codes: Vec<&str> = table.iter().map(|(c, _)| *c).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), table.len(), "a code listed twice");
        }
        assert_eq!(
            charge_failure_message("insufficient_funds"),
            "The card has insufficient funds."
        );
        assert_eq!(charge_failure_message("stolen_card"), GENERIC_DECLINE);
        assert_eq!(charge_failure_message("Bearer sk_live_x"), GENERIC_DECLINE);
        assert_eq!(refund_failure_message("whatever"), REFUND_REFUSED);
    }
}
