//! Recently finished idempotency entries, in memory, so a replay (a client's retry, which
//! usually comes seconds after the first request) is answered without a sled read.
//!
//! The committer fills it only after a group commit is durable, from the write sets it
//! just committed, and a replay that found a finished entry in sled (and waited for it to
//! be durable) fills it too, so a key that is retried repeatedly stays in memory. A
//! finished entry is immutable, so a hit is exactly what the store holds and never shows
//! state a crash could undo. A sweep's removal and an unfinished entry written under the
//! same key evict the slot; because a read-through fill can race with a sweep, a reader
//! also treats a header-key hit older than the retention as a miss (see
//! [`CachedReplay::created_at_ms`]). It is direct-mapped (a key's hash picks one
//! slot, a newer key overwrites it), so memory is bounded by [`SLOTS`] responses (about
//! 45 MiB at 600-byte bodies; 6 MiB of empty slots at start-up) and a miss only means the
//! sled path is taken. It holds roughly the last [`SLOTS`] finished keys: about ten
//! seconds at this machine's peak create rate, far longer at a merchant's usual rate. It
//! starts empty at every start-up.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use bytes::Bytes;

use crate::domain::idempotency::DIGEST_BYTES;

/// Slots in the cache.
pub const SLOTS: usize = 65_536;

/// A finished entry's fingerprint digest and the response to replay.
#[derive(Debug, Clone)]
pub struct CachedReplay {
    /// The first request's fingerprint digest ([`crate::domain::idempotency::Fingerprint`]).
    pub digest: [u8; DIGEST_BYTES],
    /// The stored response's HTTP status.
    pub status: u16,
    /// The stored response's body, shared (cloning is a reference count).
    pub body: Bytes,
    /// When the entry was created (ms since the Unix epoch): the sweep removes header-key
    /// entries older than `idempotency.retention_s`, so an older hit is not trusted.
    pub created_at_ms: i64,
}

impl CachedReplay {
    /// Whether the entry was created more than `retention_ms` before `now_ms`.
    pub fn outlived(&self, retention_ms: i64, now_ms: i64) -> bool {
        self.created_at_ms < now_ms.saturating_sub(retention_ms)
    }
}

struct Slot {
    /// The entry's `idempotency` tree key ([`super::keys::idempotency_key`]).
    key: Vec<u8>,
    replay: CachedReplay,
}

/// The cache; see the module docs.
pub struct ReplayCache {
    slots: Box<[Mutex<Option<Slot>>]>,
    hasher: RandomState,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl ReplayCache {
    fn slot(&self, key: &[u8]) -> &Mutex<Option<Slot>> {
        // The modulo keeps the index below SLOTS, so the cast cannot truncate a used bit.
        let index = (self.hasher.hash_one(key) % SLOTS as u64) as usize;
        &self.slots[index]
    }

    /// The cached finished entry under `key`, if this slot holds it.
    pub fn get(&self, key: &[u8]) -> Option<CachedReplay> {
        let slot = self.slot(key).lock().ok()?;
        slot.as_ref()
            .filter(|s| s.key == key)
            .map(|s| s.replay.clone())
    }

    /// Caches a finished entry (called once it is durable).
    pub fn put(&self, key: Vec<u8>, replay: CachedReplay) {
        if let Ok(mut slot) = self.slot(&key).lock() {
            *slot = Some(Slot { key, replay });
        }
    }

    /// Forgets `key` (its entry was swept or replaced by an unfinished one).
    pub fn remove(&self, key: &[u8]) {
        if let Ok(mut slot) = self.slot(key).lock() {
            if slot.as_ref().is_some_and(|s| s.key == key) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(byte: u8) -> CachedReplay {
        CachedReplay {
            digest: [byte; DIGEST_BYTES],
            status: 201,
            body: Bytes::from(format!("{{\"n\":{byte}}}")),
            created_at_ms: 0,
        }
    }

    #[test]
    fn an_entry_outlives_the_retention_only_after_it() {
        let entry = CachedReplay {
            created_at_ms: 10_000,
            ..replay(1)
        };
        assert!(!entry.outlived(1_000, 10_500));
        assert!(!entry.outlived(1_000, 11_000));
        assert!(entry.outlived(1_000, 11_001));
        assert!(!entry.outlived(i64::MAX, i64::MAX));
    }

    #[test]
    fn put_get_remove() {
        let cache = ReplayCache::default();
        assert!(cache.get(b"m\0h\0k1").is_none());
        cache.put(b"m\0h\0k1".to_vec(), replay(1));
        let hit = cache.get(b"m\0h\0k1").expect("cached");
        assert_eq!(hit.digest, [1; DIGEST_BYTES]);
        assert_eq!(hit.body, "{\"n\":1}");
        assert!(cache.get(b"m\0h\0k2").is_none());
        cache.remove(b"m\0h\0k2");
        assert!(cache.get(b"m\0h\0k1").is_some());
        cache.remove(b"m\0h\0k1");
        assert!(cache.get(b"m\0h\0k1").is_none());
    }

    #[test]
    fn a_colliding_key_overwrites_and_never_answers_for_another() {
        let cache = ReplayCache::default();
        let keys: Vec<Vec<u8>> = (0..(SLOTS * 3) as u32)
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            cache.put(key.clone(), replay((i % 251) as u8));
        }
        let mut hits = 0;
        for (i, key) in keys.iter().enumerate() {
            if let Some(hit) = cache.get(key) {
                assert_eq!(hit.digest, [(i % 251) as u8; DIGEST_BYTES]);
                hits += 1;
            }
        }
        assert!(hits <= SLOTS);
        assert!(hits > 0);
    }
}
