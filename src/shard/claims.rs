//! Claims on `Idempotency-Key` header values: the one cross-key fact of the create path.
//!
//! A header key belongs to one order. Before a request is routed, it claims its key for
//! its order with an atomic insert-if-absent on a `DashMap` entry (the map's shard lock is
//! held only for that synchronous step, never across an await). A key already claimed, or
//! stored, for another order answers 422 `idempotency_key_reused`. The claim counts the
//! requests holding it and is released when the last one's job is done — after its entry
//! was committed — so a key cannot be taken by two orders at once.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use crate::domain::error::DomainError;
use crate::domain::idempotency::IdempotencyKey;
use crate::store::Store;

/// Live claims: key → (order_no, number of requests holding it).
#[derive(Debug, Default)]
pub struct Claims {
    map: DashMap<IdempotencyKey, (String, u32)>,
}

/// Releases its claim when dropped.
#[derive(Debug)]
pub struct ClaimGuard {
    claims: Arc<Claims>,
    key: IdempotencyKey,
}

/// Why a claim was refused.
#[derive(Debug)]
pub enum ClaimError {
    /// The key belongs to another order.
    OtherOrder,
    /// The store could not be read.
    Store,
}

impl Claims {
    /// Claims `key` for `order_no`.
    ///
    /// # Errors
    /// [`ClaimError::OtherOrder`] when the key is claimed or stored for another order.
    pub fn claim(
        self: &Arc<Self>,
        key: &IdempotencyKey,
        order_no: &str,
        store: &Store,
    ) -> Result<ClaimGuard, ClaimError> {
        match self.map.entry(key.clone()) {
            Entry::Occupied(mut held) => {
                if held.get().0 != order_no {
                    return Err(ClaimError::OtherOrder);
                }
                held.get_mut().1 += 1;
            }
            Entry::Vacant(vacant) => {
                // A claim is released only after its job's write set was committed, i.e.
                // durable and visible to store reads (memtables before sled has it), so
                // reading the store while holding this vacant entry cannot miss a claim.
                let stored = store.idempotency(key).map_err(|_| ClaimError::Store)?;
                if stored.is_some_and(|e| e.order_no != order_no) {
                    return Err(ClaimError::OtherOrder);
                }
                vacant.insert((order_no.to_owned(), 1));
            }
        }
        Ok(ClaimGuard {
            claims: Arc::clone(self),
            key: key.clone(),
        })
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.claims.map.remove_if_mut(&self.key, |_, (_, holders)| {
            *holders -= 1;
            *holders == 0
        });
    }
}

/// The refusal of a key that belongs to another order: reused, differing in `order_no`.
pub fn other_order_problem() -> DomainError {
    DomainError::IdempotencyKeyReused {
        fields: vec!["order_no".to_owned()],
    }
}
