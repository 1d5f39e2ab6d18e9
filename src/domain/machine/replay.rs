//! A request whose idempotency key was used before (a create's or a refund's): the first
//! answer replayed, a different request refused, or an entry that a crash left without an
//! answer finished with the state as it stands.

use crate::domain::error::DomainError;
use crate::domain::idempotency::{Fingerprint, IdempotencyEntry, IdempotencyKey};
use crate::domain::machine::types::{
    refuse, response_for, response_for_refund, store_response, Effect, KeyState, Reply,
};
use crate::domain::write_set::WriteSet;

/// The key was used before: replay, refuse a different request, or finish an entry that a
/// crash left without a response (with the refund of that key, or else the payment).
pub(super) fn replay_or_conflict(
    mut state: KeyState,
    key: IdempotencyKey,
    entry: IdempotencyEntry,
    fingerprint: &Fingerprint,
) -> (KeyState, Vec<Effect>) {
    if entry.fingerprint.digest != fingerprint.digest {
        let fields = entry.fingerprint.differing_fields(fingerprint);
        return refuse(state, DomainError::IdempotencyKeyReused { fields });
    }
    if let Some(response) = entry.response {
        let reply = Reply::Response {
            response,
            replayed: true,
        };
        return (state, vec![Effect::Respond(reply)]);
    }
    // The first request was cut short by a crash after its intent was stored: answer with
    // the payment as it stands now and keep that as the key's response.
    let refund = state.refunds.iter().find(|r| r.idempotency_key == key);
    let response = match (refund, state.payment.as_ref()) {
        (Some(refund), _) => response_for_refund(refund),
        (None, Some(payment)) => response_for(payment),
        (None, None) => return refuse(state, DomainError::Internal),
    };
    let mut completed = entry;
    let mut write_set = WriteSet::default();
    let reply = store_response(&key, &mut completed, response, true, &mut write_set);
    state.entry = Some((key, completed));
    (
        state,
        vec![Effect::Persist(write_set), Effect::Respond(reply)],
    )
}
