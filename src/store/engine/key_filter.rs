//! A Bloom filter over one tree's keys, so that a read of a key the tree has never held
//! costs no sled lookup: a new payment's create reads its payment, its idempotency entry
//! (in the HTTP handler and again on the shard) and finds nothing, and once those random-keyed
//! trees outgrow sled's cache each such lookup pages leaves in (BENCHMARKS.md, "Zero-filled
//! log segments and key filters").
//!
//! A filter never hides a key: every write of a key passes [`KeyFilter::insert`] before the
//! key becomes visible to a reader (the memtable's stage, sled's insert), and the keys
//! sled held at open are inserted by [`spawn_build`]'s thread. Until that thread is done the
//! filter answers "maybe" for every key, so a restarted store is ready as soon as before and
//! reads go to sled as they did. Removals leave their bits set (a Bloom filter cannot unset
//! one): a removed key costs the sled read it always did.
//!
//! Size: [`KEY_FILTER_BYTES`] per filtered tree, fixed. With [`KEY_FILTER_HASHES`] hashes it
//! answers "maybe" for an absent key about once in 50,000 reads at one million keys, once in
//! 1,400 at two million and once in 23 at five million (`(1 - e^(-k·n/m))^k`, which the
//! test checks against fastbloom's `expected_false_pos`); past that more absent reads fall
//! through to sled, never a wrong answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use fastbloom::AtomicBloomFilter;

use crate::store::engine::tree::Tree;

/// Bytes of one tree's filter (4 MiB): 33,554,432 bits.
pub const KEY_FILTER_BYTES: usize = 4 << 20;
/// Bits set and tested per key: each is one random memory access, and six keep the
/// false-positive rate under 0.1 % up to two million keys (16 bits per key).
pub const KEY_FILTER_HASHES: u32 = 6;
/// Keys the build inserts between looks at its stop flag.
pub(super) const BUILD_STOP_CHECK_KEYS: usize = 4_096;

/// One tree's filter.
pub struct KeyFilter {
    bloom: AtomicBloomFilter,
    /// Set once the keys sled held at open are all inserted; before that nothing is ruled
    /// out.
    built: AtomicBool,
}

impl Default for KeyFilter {
    fn default() -> KeyFilter {
        KeyFilter {
            bloom: AtomicBloomFilter::with_num_bits(KEY_FILTER_BYTES * 8).hashes(KEY_FILTER_HASHES),
            built: AtomicBool::new(false),
        }
    }
}

impl KeyFilter {
    /// Records that `key` may exist. Call before the key's value becomes visible.
    pub fn insert(&self, key: &[u8]) {
        self.bloom.insert(key);
    }

    /// `false` only if the tree has certainly never held `key` since the store was created
    /// (through this filter's build); `true` means "read the tree".
    pub fn may_contain(&self, key: &[u8]) -> bool {
        !self.built.load(Ordering::Acquire) || self.bloom.contains(key)
    }

    /// Whether the keys held at open are all in.
    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::Acquire)
    }

    pub(super) fn mark_built(&self) {
        self.built.store(true, Ordering::Release);
    }
}

/// The build of the filters of a store just opened, on its own thread; dropping it stops the
/// build early (the filters then stay unbuilt, answering "maybe") and waits for the thread.
pub struct Build {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Build {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts a thread that fills the filter of each tree `trees` names with the keys sled
/// holds, then marks it built ([`Tree::fill_key_filter`]); writes made meanwhile insert their
/// keys themselves. A tree whose keys cannot be read stays unbuilt (logged): correct, only
/// slower.
pub fn spawn_build<T: Send + Sync + 'static>(owner: Arc<T>, trees: fn(&T) -> Vec<&Tree>) -> Build {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("paykeep-keyfilter".to_owned())
        .spawn(move || {
            let started = std::time::Instant::now();
            for tree in trees(&owner) {
                match tree.fill_key_filter(&stopping) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => {
                        tracing::warn!(%error, "key filter not built; absent keys are read from sled");
                    }
                }
            }
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "key filters built");
        })
        .ok();
    if thread.is_none() {
        tracing::warn!("key filter build thread not started; absent keys are read from sled");
    }
    Build { stop, thread }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_ruled_out_before_the_build_and_inserted_keys_never_are() {
        let filter = KeyFilter::default();
        assert!(filter.may_contain(b"never-written"));
        filter.insert(b"written");
        filter.mark_built();
        assert!(filter.may_contain(b"written"));
        let absent = (0..10_000)
            .filter(|i| !filter.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        assert_eq!(
            absent, 10_000,
            "an almost empty filter rules out every other key"
        );
    }

    #[test]
    fn the_stated_false_positive_rates_hold() {
        let bloom = KeyFilter::default().bloom;
        // The module doc's "once in N reads", within a tenth.
        for (keys, one_in) in [
            (1_000_000, 50_000.0),
            (2_000_000, 1_400.0),
            (5_000_000, 23.0),
        ] {
            let one_in_measured = 1.0 / bloom.expected_false_pos(keys);
            assert!(
                (one_in_measured - one_in).abs() < one_in / 10.0,
                "{keys} keys: once in {one_in_measured:.0}, stated {one_in}"
            );
        }
    }
}
