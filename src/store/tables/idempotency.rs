//! The `idempotency` table: merchant ∅ tag ∅ value → entry (fingerprint, response,
//! created_at), tag `h` for an `Idempotency-Key` header, `o` for an order, `r` for a refund.
//! Components are joined with 0x00, which no component may contain (merchant ids are
//! `[A-Za-z0-9_-]`, order numbers and keys have no control bytes). Header-key entries
//! expire (the sweep finds them through the journal); the replay cache
//! ([`super::replay_cache`]) holds recent finished ones.

use crate::domain::idempotency::{IdempotencyEntry, IdempotencyKey, KeyScope};
use crate::domain::write_set::{WriteOp, WriteSet};
use crate::store::engine::codec;
use crate::store::tables::journal::{self, Expiring, JournalRecord};
use crate::store::tables::Trees;
use crate::store::tables::{replay_cache, Batches};
use crate::store::{Store, StoreError};

const SEP: u8 = 0;

/// `idempotency` tree: `merchant \0 tag \0 value`, tag `h` header, `o` order, `r` refund.
pub fn idempotency_key(key: &IdempotencyKey) -> Vec<u8> {
    let (tag, value) = match &key.scope {
        KeyScope::Header(v) => (b'h', v),
        KeyScope::Order(v) => (b'o', v),
        KeyScope::Refund(v) => (b'r', v),
    };
    let mut out = Vec::with_capacity(key.merchant_id.len() + value.len() + 4);
    out.extend_from_slice(key.merchant_id.as_bytes());
    out.push(SEP);
    out.push(tag);
    out.push(SEP);
    out.extend_from_slice(value.as_bytes());
    out
}

/// Parses an idempotency key back from its bytes.
pub fn parse_idempotency_key(bytes: &[u8]) -> Option<IdempotencyKey> {
    let mut parts = bytes.splitn(3, |b| *b == SEP);
    let merchant_id = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let tag = parts.next()?;
    let value = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let scope = match tag {
        b"h" => KeyScope::Header(value),
        b"o" => KeyScope::Order(value),
        b"r" => KeyScope::Refund(value),
        _ => return None,
    };
    Some(IdempotencyKey { merchant_id, scope })
}

/// Writes of an entry (`value`: its encoded form): the entry, and its listing for the sweep
/// in the group's journal record once it is finished (header keys only).
pub(crate) fn put(
    b: &mut Batches,
    journal: &mut JournalRecord,
    key: &IdempotencyKey,
    entry: &IdempotencyEntry,
    value: Vec<u8>,
) {
    let tree_key = idempotency_key(key);
    if key.expires() && entry.response.is_some() {
        journal.expiring.push(Expiring {
            created_at_ms: entry.created_at_ms,
            key: tree_key.clone(),
        });
    }
    b.idempotency.insert(tree_key, value);
}

/// What the idempotency sweep may remove: entries created before its cutoff (header key,
/// `created_at_ms`), the journal records listing them, and where the next look resumes.
#[derive(Debug, Default)]
pub struct Expired {
    pub entries: Vec<(IdempotencyKey, i64)>,
    /// Keys of the journal records whose `expiring` lists these entries.
    pub records: Vec<Vec<u8>>,
    /// The last journal key looked at (resume after it).
    pub resume_after: Option<Vec<u8>>,
}

impl Expired {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.records.is_empty()
    }
}

/// Expired header-key entries of the records after `after` (from the start when empty)
/// committed before `cutoff_ms`: whole records, until about `limit` entries. A record is
/// committed after each entry it lists was created, so this finds every entry created
/// before the cutoff, and stops at the first record committed at or after it.
///
/// # Errors
/// [`StoreError`] on an I/O or codec failure.
fn expired(
    trees: &Trees,
    after: &[u8],
    cutoff_ms: i64,
    limit: usize,
) -> Result<Expired, StoreError> {
    let start = if after.is_empty() {
        std::ops::Bound::Unbounded
    } else {
        std::ops::Bound::Excluded(after.to_vec())
    };
    let mut out = Expired::default();
    for kv in trees.journal.range((start, std::ops::Bound::Unbounded)) {
        if out.entries.len() >= limit {
            break;
        }
        let (k, v) = kv?;
        let record = journal::decode(&v)?;
        if record.committed_at_ms >= cutoff_ms {
            break;
        }
        out.resume_after = Some(k.to_vec());
        if record.expiring.is_empty() {
            continue;
        }
        for entry in record.expiring {
            if let Some(key) = parse_idempotency_key(&entry.key) {
                out.entries.push((key, entry.created_at_ms));
            }
        }
        out.records.push(k.to_vec());
    }
    Ok(out)
}

impl Store {
    /// The entry stored under an idempotency key.
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn idempotency(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotencyEntry>, StoreError> {
        self.trees
            .idempotency
            .get(idempotency_key(key))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The finished entry under `key` if a recent commit left it in the in-memory replay
    /// cache; `None` means "not cached", not "absent" (read [`Store::idempotency`] then).
    /// A hit is durable: the cache is filled only after its commit was made durable.
    pub fn cached_replay(&self, key: &IdempotencyKey) -> Option<replay_cache::CachedReplay> {
        self.replay_cache.get(&idempotency_key(key))
    }

    /// About `limit` header-key entries created before `cutoff_ms`, listed by journal
    /// records after `after` (a journal key; empty: from the start), and those records
    /// ([`expired`]).
    ///
    /// # Errors
    /// [`StoreError`] on an I/O or codec failure.
    pub fn expired_idempotency_keys(
        &self,
        after: &[u8],
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<Expired, StoreError> {
        expired(&self.trees, after, cutoff_ms, limit)
    }

    /// Refreshes the replay cache from a group that is now durable.
    pub(crate) fn cache_replays<'a>(&self, write_sets: impl Iterator<Item = &'a WriteSet>) {
        for op in write_sets.flat_map(|ws| ws.ops.iter()) {
            match op {
                WriteOp::Idempotency { key, entry } => self.remember_replay(key, entry),
                WriteOp::RemoveIdempotency { key, .. } => {
                    self.replay_cache.remove(&idempotency_key(key));
                }
                _ => {}
            }
        }
    }

    /// Puts a durable entry into the replay cache (finished) or evicts its key (unfinished).
    /// Every entry a reader can see is durable (the committer stages a group only after its
    /// sync), so an entry just read from the store qualifies.
    pub fn remember_replay(&self, key: &IdempotencyKey, entry: &IdempotencyEntry) {
        let cache_key = idempotency_key(key);
        match &entry.response {
            Some(response) => self.replay_cache.put(
                cache_key,
                replay_cache::CachedReplay {
                    digest: entry.fingerprint.digest,
                    status: response.status,
                    body: bytes::Bytes::from(response.body.clone()),
                    created_at_ms: entry.created_at_ms,
                },
            ),
            None => self.replay_cache.remove(&cache_key),
        }
    }

    /// The sweep's removal of `key`: only if its entry is still the one created at
    /// `created_at_ms` (as of the groups committed before this one; the sweep's write
    /// sets carry nothing else).
    pub(crate) fn remove_expired(
        &self,
        b: &mut Batches,
        key: &IdempotencyKey,
        created_at_ms: i64,
    ) -> Result<(), StoreError> {
        let tree_key = idempotency_key(key);
        let current = self.trees.idempotency.get(&tree_key)?;
        let entry: Option<IdempotencyEntry> = current.map(|v| codec::decode(&v)).transpose()?;
        if entry.is_some_and(|e| e.created_at_ms == created_at_ms) {
            b.idempotency.remove(tree_key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_round_trip() {
        for scope in [
            KeyScope::Header("a:b c".into()),
            KeyScope::Order("o-1".into()),
            KeyScope::Refund("refund:pay_1:op:5".into()),
        ] {
            let key = IdempotencyKey {
                merchant_id: "m_demo".into(),
                scope,
            };
            assert_eq!(
                parse_idempotency_key(&idempotency_key(&key)),
                Some(key.clone())
            );
        }
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::domain::idempotency::{Fingerprint, StoredResponse};
    use crate::domain::time::now_ms;
    use crate::store::tables::test_support::{commit, open};

    fn key(scope: KeyScope) -> IdempotencyKey {
        IdempotencyKey {
            merchant_id: "m_demo".into(),
            scope,
        }
    }

    fn entry(finished: bool, created_at_ms: i64) -> IdempotencyEntry {
        IdempotencyEntry {
            order_no: "o-1".into(),
            fingerprint: Fingerprint::new("POST", "/v1/payments", &serde_json::json!({})),
            response: finished.then(|| StoredResponse {
                status: 201,
                body: "{}".into(),
            }),
            created_at_ms,
        }
    }

    /// Every entry is one key; only finished header-key entries are listed for the sweep
    /// (order and refund keys never expire), and a removal applies only to the entry
    /// created at the instant the sweep saw.
    #[test]
    fn only_finished_header_key_entries_are_listed_and_removal_is_conditional() {
        let (_dir, store) = open();
        let now = now_ms();
        let header = key(KeyScope::Header("k-1".into()));
        let in_flight = key(KeyScope::Header("k-2".into()));
        let order = key(KeyScope::Order("o-1".into()));
        let refund = key(KeyScope::Refund("r-1".into()));
        commit(
            &store,
            vec![
                WriteOp::Idempotency {
                    key: header.clone(),
                    entry: entry(true, now),
                },
                WriteOp::Idempotency {
                    key: in_flight.clone(),
                    entry: entry(false, now),
                },
                WriteOp::Idempotency {
                    key: order.clone(),
                    entry: entry(true, now),
                },
                WriteOp::Idempotency {
                    key: refund.clone(),
                    entry: entry(true, now),
                },
            ],
        );
        for k in [&header, &in_flight, &order, &refund] {
            assert!(store.idempotency(k).unwrap().is_some(), "{k:?}");
        }
        let expired = store
            .expired_idempotency_keys(&[], now + 60_000, 10)
            .unwrap();
        assert_eq!(expired.entries, vec![(header.clone(), now)]);
        assert_eq!(expired.records.len(), 1);

        commit(
            &store,
            vec![WriteOp::RemoveIdempotency {
                key: order.clone(),
                created_at_ms: now - 1,
            }],
        );
        assert!(
            store.idempotency(&order).unwrap().is_some(),
            "another instant: kept"
        );
        commit(
            &store,
            vec![
                WriteOp::RemoveIdempotency {
                    key: header.clone(),
                    created_at_ms: now,
                },
                WriteOp::RemoveExpiring {
                    record: expired.records[0].clone(),
                },
            ],
        );
        assert_eq!(store.idempotency(&header).unwrap(), None);
        assert!(store
            .expired_idempotency_keys(&[], now + 60_000, 10)
            .unwrap()
            .is_empty());
    }
}
